/*
 * The checkers (chaos.h), pure: what a run's record says about the coordinator. Each check fills
 * one chaos_check, in this order; every time is wall-clock microseconds from the one clock of the
 * lab machine, and the details give times in milliseconds relative to rec->start_us.
 *
 * An *authorization* of region R is a committed history event that made R the authorized primary:
 * `promoted` (CHAOS_EV_AUTHORIZED, an operator's or the coordinator's promote) or
 * `failover-decided` (CHAOS_EV_DECIDED: "epoch N created, B authorized", docs/events.md). An
 * automatic failover commits only the latter, so both count wherever the checks below speak of
 * "authorized".
 *
 * lost-writes     Every write acknowledged (ok) must be among the rows the final primary holds
 *                 (rec->rows). value = the acknowledged writes missing, value2 = the writes whose
 *                 client was told "failed" but that are there all the same (a lie about a commit:
 *                 always FAILED). With expect.lost_writes_max >= 0, more lost than that is FAILED;
 *                 with -1 the figure is reported, not asserted (asynchronous replication may lose
 *                 the last acknowledged writes on a failover). SKIPPED when the read-back failed.
 * split-brain     (a) An ok write a of region A that began after an ok write b of another region B
 *                 had been acknowledged (b.end_us < a.start_us) while A had not been authorized in
 *                 between (none in (b.start_us, a.end_us)), although A had written in that
 *                 same tenure before b began: A, then B, then A again, without A being made
 *                 primary again (a planned handover, where the new primary is authorized before
 *                 the old one stops writing, is not one). (b) An ok write a of region A
 *                 that began after another region B was promoted (CHAOS_EV_PROMOTED: B ran
 *                 pg_promote) with no authorization of A in (promoted.t_us, a.start_us): the old
 *                 primary acknowledged a write begun after the new one took over. value = the
 *                 violating writes (each once), FAILED if any; the first ones are named.
 *                 O(n log n + n * regions * log n).
 * rto             For each interval with failure set: the primary then (the last authorization
 *                 before interval.start_us, else rec->initial_primary) and the first acknowledged
 *                 write of any other region ending after interval.start_us: RTO = its end_us -
 *                 interval.start_us. value = the largest RTO in ms, value2 = failures measured.
 *                 SKIPPED without failure intervals. With expect.failover == 1, FAILED when a
 *                 failure has no such write, or an RTO exceeds expect.rto_max_us (when > 0).
 * write-gap       The longest time between consecutive acknowledgements (all regions, by end_us),
 *                 from the first one on. value = gap ms, value2 = its start in ms. Informational:
 *                 PASS, unless no write was ever acknowledged (FAILED).
 * convergence     Every final view that answered names the same primary, the same epoch among
 *                 those that know one, and that primary is the last authorized region (else
 *                 rec->initial_primary). FAILED naming the sources that disagree, or if none
 *                 answered.
 * false-failover  The failovers decided (DECIDED events): FAILED when expect.failover == 0 and
 *                 there was one, or expect.failover == 1 and there was none.
 * decisions       Every promotion on a node (NODE_PROMOTED_HERE, region R, epoch e) follows a
 *                 committed decision of that epoch for R (DECIDED, epoch e, to R, t_us no later);
 *                 two regions promoted in one epoch is a violation too. value = violations,
 *                 value2 = promotions on nodes.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chaos.h"
#include "workload.h"

#define NAMED_MAX 5 /* violations named in a detail */

/* ---- the index the checks share ---- */

/* An acknowledged write; per region, sorted by end_us. */
struct ok_op {
    int64_t start, end;
    size_t idx; /* in rec->ops */
};

/* Times of one kind of event per region, sorted: region r's are t[off[r] .. off[r+1]). */
struct timeline {
    int64_t *t;
    size_t off[CHAOS_MAX_REGIONS + 1];
};

struct index {
    const struct chaos_record *rec;
    unsigned n_regions;
    struct ok_op *ok; /* region r's: ok[ok_off[r] .. ok_off[r+1]) */
    size_t ok_off[CHAOS_MAX_REGIONS + 1];
    size_t *best_start; /* best_start[i]: the one of region r's ok[off[r] .. i] begun last */
    struct timeline auth, promoted;
};

static unsigned region_count(const struct chaos_record *rec)
{
    return rec->n_regions < CHAOS_MAX_REGIONS ? rec->n_regions : CHAOS_MAX_REGIONS;
}

static double rel_ms(const struct chaos_record *rec, int64_t t)
{
    return (double)(t - rec->start_us) / 1000.0;
}

static const char *region_name(const struct chaos_record *rec, int r)
{
    if (r < 0 || (unsigned)r >= region_count(rec))
        return "none";
    return rec->regions[r];
}

static bool is_authorization(const struct chaos_event *e)
{
    return e->kind == CHAOS_EV_AUTHORIZED || e->kind == CHAOS_EV_DECIDED;
}

/* Append to a detail, truncated silently at its size. */
static void appendf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void appendf(char *buf, size_t size, const char *fmt, ...)
{
    size_t len = strlen(buf);
    if (len + 1 >= size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_ok_end(const void *a, const void *b)
{
    const struct ok_op *x = a, *y = b;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* How many of the sorted a[0 .. n) are below x. */
static size_t count_below(const int64_t *a, size_t n, int64_t x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The last time of region r's timeline below x, or INT64_MIN. */
static int64_t last_below(const struct timeline *tl, unsigned r, int64_t x)
{
    const int64_t *a = tl->t + tl->off[r];
    size_t k = count_below(a, tl->off[r + 1] - tl->off[r], x);
    return k == 0 ? INT64_MIN : a[k - 1];
}

static int timeline_build(struct timeline *tl, const struct chaos_record *rec, unsigned n_regions,
                          bool (*want)(const struct chaos_event *))
{
    size_t count[CHAOS_MAX_REGIONS] = {0};
    for (size_t i = 0; i < rec->n_events; i++) {
        if (want(&rec->events[i]) && rec->events[i].region < n_regions)
            count[rec->events[i].region]++;
    }
    tl->off[0] = 0;
    for (unsigned r = 0; r < CHAOS_MAX_REGIONS; r++)
        tl->off[r + 1] = tl->off[r] + (r < n_regions ? count[r] : 0);
    tl->t = malloc((tl->off[n_regions] + 1) * sizeof *tl->t);
    if (tl->t == NULL)
        return -1;
    size_t fill[CHAOS_MAX_REGIONS];
    memcpy(fill, tl->off, sizeof fill);
    for (size_t i = 0; i < rec->n_events; i++) {
        const struct chaos_event *e = &rec->events[i];
        if (want(e) && e->region < n_regions)
            tl->t[fill[e->region]++] = e->t_us;
    }
    for (unsigned r = 0; r < n_regions; r++)
        qsort(tl->t + tl->off[r], tl->off[r + 1] - tl->off[r], sizeof *tl->t, cmp_i64);
    return 0;
}

static bool want_promoted(const struct chaos_event *e)
{
    return e->kind == CHAOS_EV_PROMOTED;
}

static int ok_build(struct index *ix)
{
    const struct chaos_record *rec = ix->rec;
    size_t count[CHAOS_MAX_REGIONS] = {0}, fill[CHAOS_MAX_REGIONS];
    for (size_t i = 0; i < rec->n_ops; i++) {
        if (rec->ops[i].result == CHAOS_OK && rec->ops[i].region < ix->n_regions)
            count[rec->ops[i].region]++;
    }
    ix->ok_off[0] = 0;
    for (unsigned r = 0; r < CHAOS_MAX_REGIONS; r++)
        ix->ok_off[r + 1] = ix->ok_off[r] + (r < ix->n_regions ? count[r] : 0);
    size_t n = ix->ok_off[ix->n_regions];
    ix->ok = malloc((n + 1) * sizeof *ix->ok);
    ix->best_start = malloc((n + 1) * sizeof *ix->best_start);
    if (ix->ok == NULL || ix->best_start == NULL)
        return -1;
    memcpy(fill, ix->ok_off, sizeof fill);
    for (size_t i = 0; i < rec->n_ops; i++) {
        const struct chaos_op *op = &rec->ops[i];
        if (op->result == CHAOS_OK && op->region < ix->n_regions)
            ix->ok[fill[op->region]++] = (struct ok_op){op->start_us, op->end_us, i};
    }
    for (unsigned r = 0; r < ix->n_regions; r++) {
        size_t lo = ix->ok_off[r], hi = ix->ok_off[r + 1];
        qsort(ix->ok + lo, hi - lo, sizeof *ix->ok, cmp_ok_end);
        for (size_t i = lo; i < hi; i++) {
            bool later = i > lo && ix->ok[ix->best_start[i - 1]].start >= ix->ok[i].start;
            ix->best_start[i] = later ? ix->best_start[i - 1] : i;
        }
    }
    return 0;
}

static void index_free(struct index *ix)
{
    free(ix->ok);
    free(ix->best_start);
    free(ix->auth.t);
    free(ix->promoted.t);
}

static int index_build(struct index *ix, const struct chaos_record *rec)
{
    memset(ix, 0, sizeof *ix);
    ix->rec = rec;
    ix->n_regions = region_count(rec);
    if (ok_build(ix) != 0 || timeline_build(&ix->auth, rec, ix->n_regions, is_authorization) != 0 ||
        timeline_build(&ix->promoted, rec, ix->n_regions, want_promoted) != 0)
        return -1;
    return 0;
}

/* Of region r's acknowledged writes ending before x, the one begun last; NULL if none. */
static const struct ok_op *latest_started_ending_before(const struct index *ix, unsigned r,
                                                        int64_t x)
{
    size_t lo = ix->ok_off[r], hi = ix->ok_off[r + 1];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix->ok[mid].end < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == ix->ok_off[r] ? NULL : &ix->ok[ix->best_start[lo - 1]];
}

/* Of region r's acknowledged writes, the first ending after x; NULL if none. */
static const struct ok_op *first_ending_after(const struct index *ix, unsigned r, int64_t x)
{
    size_t lo = ix->ok_off[r], hi = ix->ok_off[r + 1];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix->ok[mid].end <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == ix->ok_off[r + 1] ? NULL : &ix->ok[lo];
}

/* The last authorization before t (any region): its event, or NULL. */
static const struct chaos_event *last_authorization(const struct chaos_record *rec, int64_t t)
{
    const struct chaos_event *best = NULL;
    for (size_t i = 0; i < rec->n_events; i++) {
        const struct chaos_event *e = &rec->events[i];
        if (is_authorization(e) && e->t_us < t && (best == NULL || e->t_us >= best->t_us))
            best = e;
    }
    return best;
}

/* The primary when a failure began at t. The replicated history's times have millisecond
 * resolution (the proposer's wall clock, truncated): a decision the failure itself caused (a
 * switchover asked for at t) can carry a time up to 1 ms before t, so only authorizations more
 * than 1 ms before t count as before it. */
static int primary_before(const struct chaos_record *rec, int64_t t)
{
    const struct chaos_event *e = last_authorization(rec, t - 1000);
    return e != NULL ? (int)e->region : rec->initial_primary;
}

static void set_check(struct chaos_check *c, const char *name, enum chaos_verdict v)
{
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->verdict = v;
}

/* ---- lost-writes ---- */

struct lost_count {
    long lost, failed_present, unknown, unknown_present;
    char lost_names[160], failed_names[160];
    unsigned n_lost_named, n_failed_named;
};

static void name_op(const struct chaos_record *rec, const struct chaos_op *op, char *buf,
                    size_t size, unsigned *named)
{
    if (*named >= NAMED_MAX)
        return;
    appendf(buf, size, "%s%s:%" PRIu64, *named ? ", " : "", region_name(rec, (int)op->region),
            op->seq);
    (*named)++;
}

static void count_lost(const struct chaos_record *rec, struct lost_count *n)
{
    for (size_t i = 0; i < rec->n_ops; i++) {
        const struct chaos_op *op = &rec->ops[i];
        bool has = chaos_rows_has(rec, op->region, op->seq);
        if (op->result == CHAOS_OK && !has) {
            n->lost++;
            name_op(rec, op, n->lost_names, sizeof n->lost_names, &n->n_lost_named);
        } else if (op->result == CHAOS_FAIL && has) {
            n->failed_present++;
            name_op(rec, op, n->failed_names, sizeof n->failed_names, &n->n_failed_named);
        } else if (op->result == CHAOS_UNKNOWN) {
            n->unknown++;
            n->unknown_present += has;
        }
    }
}

static void check_lost_writes(const struct chaos_record *rec, const struct chaos_expect *ex,
                              struct chaos_check *c)
{
    set_check(c, "lost-writes", CHAOS_PASS);
    if (!rec->rows_read) {
        c->verdict = CHAOS_SKIPPED;
        snprintf(c->detail, sizeof c->detail,
                 "read-back failed: the rows the final primary holds are not known");
        return;
    }
    struct lost_count n = {0};
    count_lost(rec, &n);
    c->value = (double)n.lost;
    c->value2 = (double)n.failed_present;
    if (ex->lost_writes_max < 0)
        appendf(c->detail, sizeof c->detail, "not asserted (asynchronous replication): ");
    appendf(c->detail, sizeof c->detail, "%ld acknowledged writes lost of %zu rows read back",
            n.lost, rec->n_rows);
    if (n.lost > 0)
        appendf(c->detail, sizeof c->detail, " (%s%s)", n.lost_names,
                n.lost > NAMED_MAX ? ", ..." : "");
    if (ex->lost_writes_max >= 0) {
        appendf(c->detail, sizeof c->detail, ", at most %ld allowed", ex->lost_writes_max);
        if (n.lost > ex->lost_writes_max)
            c->verdict = CHAOS_FAILED;
    }
    if (n.failed_present > 0) {
        c->verdict = CHAOS_FAILED;
        appendf(c->detail, sizeof c->detail, "; %ld writes reported failed were committed (%s%s)",
                n.failed_present, n.failed_names, n.failed_present > NAMED_MAX ? ", ..." : "");
    }
    appendf(c->detail, sizeof c->detail, "; %ld unknown, %ld of them committed", n.unknown,
            n.unknown_present);
}

/* ---- split-brain ---- */

struct violation {
    size_t op;     /* in rec->ops */
    char rule;     /* 'a' or 'b' */
    size_t other;  /* rule a: the earlier write of the other region (in rec->ops) */
    int other_reg; /* rule b: the region promoted */
    int64_t at;    /* rule b: when */
};

struct violations {
    size_t n;
    struct violation first[3]; /* the ones begun first, by start_us */
    unsigned n_first;
};

static void keep_first(const struct chaos_record *rec, struct violations *vs,
                       const struct violation *v)
{
    vs->n++;
    unsigned cap = sizeof vs->first / sizeof vs->first[0];
    unsigned k = vs->n_first < cap ? vs->n_first++ : cap;
    int64_t start = rec->ops[v->op].start_us;
    while (k > 0 && rec->ops[vs->first[k - 1].op].start_us > start) {
        if (k < cap)
            vs->first[k] = vs->first[k - 1];
        k--;
    }
    if (k < cap)
        vs->first[k] = *v;
}

/* Rule (a) for the acknowledged write a of region ra: a write b of another region acknowledged
 * before a began, begun at or after A's last authorization before a ended, while A had already
 * written in that same tenure before b began (A, then B, then A again). The last condition keeps a
 * planned handover legal: there the new primary is authorized (decided) before the old one has
 * stopped, so the old one's last writes follow the authorization, but precede every write of the
 * new one. A region has one write in flight at a time, so its writes ordered by end are also
 * ordered by start. */
static bool rule_a(const struct index *ix, unsigned ra, const struct ok_op *a, struct violation *v)
{
    int64_t auth = last_below(&ix->auth, ra, a->end);
    const struct ok_op *first = first_ending_after(ix, ra, auth);
    if (first == NULL || first->start < auth)
        return false;
    for (unsigned rb = 0; rb < ix->n_regions; rb++) {
        if (rb == ra)
            continue;
        const struct ok_op *b = latest_started_ending_before(ix, rb, a->start);
        if (b != NULL && b->start >= auth && first->end < b->start) {
            *v = (struct violation){.op = a->idx, .rule = 'a', .other = b->idx};
            return true;
        }
    }
    return false;
}

/* Rule (b): another region promoted before a began, A not authorized since. */
static bool rule_b(const struct index *ix, unsigned ra, const struct ok_op *a, struct violation *v)
{
    int64_t promoted = INT64_MIN;
    int who = -1;
    for (unsigned rb = 0; rb < ix->n_regions; rb++) {
        int64_t t = rb == ra ? INT64_MIN : last_below(&ix->promoted, rb, a->start);
        if (t > promoted) {
            promoted = t;
            who = (int)rb;
        }
    }
    if (who < 0 || last_below(&ix->auth, ra, a->start) > promoted)
        return false;
    *v = (struct violation){.op = a->idx, .rule = 'b', .other_reg = who, .at = promoted};
    return true;
}

static void describe_violation(const struct chaos_record *rec, const struct violation *v, char *buf,
                               size_t size)
{
    const struct chaos_op *a = &rec->ops[v->op];
    appendf(buf, size, "; %s:%" PRIu64 " acked [%+.1f, %+.1f] ms ",
            region_name(rec, (int)a->region), a->seq, rel_ms(rec, a->start_us),
            rel_ms(rec, a->end_us));
    if (v->rule == 'a') {
        const struct chaos_op *b = &rec->ops[v->other];
        appendf(buf, size, "after %s:%" PRIu64 " acked at %+.1f ms",
                region_name(rec, (int)b->region), b->seq, rel_ms(rec, b->end_us));
    } else {
        appendf(buf, size, "after %s was promoted at %+.1f ms", region_name(rec, v->other_reg),
                rel_ms(rec, v->at));
    }
    appendf(buf, size, ", %s not authorized since (rule %c)", region_name(rec, (int)a->region),
            v->rule);
}

static void check_split_brain(const struct index *ix, struct chaos_check *c)
{
    const struct chaos_record *rec = ix->rec;
    struct violations vs = {0};
    size_t rules[2] = {0, 0};
    set_check(c, "split-brain", CHAOS_PASS);
    for (unsigned r = 0; r < ix->n_regions; r++) {
        for (size_t i = ix->ok_off[r]; i < ix->ok_off[r + 1]; i++) {
            struct violation v;
            bool a = rule_a(ix, r, &ix->ok[i], &v);
            rules[0] += a;
            if (!a && !rule_b(ix, r, &ix->ok[i], &v))
                continue;
            rules[1] += v.rule == 'b';
            keep_first(rec, &vs, &v);
        }
    }
    c->value = (double)vs.n;
    snprintf(c->detail, sizeof c->detail,
             "%zu acknowledged writes by a region not authorized at the time (%zu by rule a, "
             "%zu more by rule b) of %zu acknowledged",
             vs.n, rules[0], rules[1], ix->ok_off[ix->n_regions]);
    if (vs.n == 0)
        return;
    c->verdict = CHAOS_FAILED;
    for (unsigned k = 0; k < vs.n_first; k++)
        describe_violation(rec, &vs.first[k], c->detail, sizeof c->detail);
}

/* ---- rto ---- */

/* The first acknowledgement after t by a region other than `primary`; NULL if none. */
static const struct ok_op *first_ack_elsewhere(const struct index *ix, int primary, int64_t t)
{
    const struct ok_op *best = NULL;
    for (unsigned r = 0; r < ix->n_regions; r++) {
        const struct ok_op *o = (int)r == primary ? NULL : first_ending_after(ix, r, t);
        if (o != NULL && (best == NULL || o->end < best->end))
            best = o;
    }
    return best;
}

static void check_rto(const struct index *ix, const struct chaos_expect *ex, struct chaos_check *c)
{
    const struct chaos_record *rec = ix->rec;
    unsigned failures = 0, measured = 0;
    bool bad = false;
    int64_t worst = 0;
    set_check(c, "rto", CHAOS_PASS);
    for (size_t i = 0; i < rec->n_intervals; i++) {
        const struct chaos_interval *iv = &rec->intervals[i];
        if (!iv->failure)
            continue;
        failures++;
        int primary = primary_before(rec, iv->start_us);
        const struct ok_op *o = first_ack_elsewhere(ix, primary, iv->start_us);
        appendf(c->detail, sizeof c->detail,
                "%s%s at %+.1f ms (primary %s): ", failures > 1 ? "; " : "", iv->label,
                rel_ms(rec, iv->start_us), region_name(rec, primary));
        if (o == NULL) {
            appendf(c->detail, sizeof c->detail, "no write acknowledged elsewhere since");
            bad = true;
            continue;
        }
        int64_t rto = o->end - iv->start_us;
        measured++;
        worst = rto > worst ? rto : worst;
        bad |= ex->rto_max_us > 0 && rto > ex->rto_max_us;
        appendf(c->detail, sizeof c->detail, "%.1f ms (%s)", rto / 1000.0,
                region_name(rec, (int)rec->ops[o->idx].region));
    }
    c->value = worst / 1000.0;
    c->value2 = measured;
    if (failures == 0) {
        c->verdict = CHAOS_SKIPPED;
        snprintf(c->detail, sizeof c->detail, "no failure in the schedule");
        return;
    }
    if (ex->rto_max_us > 0)
        appendf(c->detail, sizeof c->detail, "; bound %.1f ms", ex->rto_max_us / 1000.0);
    if (ex->failover == 1 && bad)
        c->verdict = CHAOS_FAILED;
}

/* ---- write-gap ---- */

static void check_write_gap(const struct index *ix, struct chaos_check *c)
{
    const struct chaos_record *rec = ix->rec;
    size_t n = ix->ok_off[ix->n_regions];
    set_check(c, "write-gap", CHAOS_PASS);
    if (n == 0) {
        c->verdict = CHAOS_FAILED;
        snprintf(c->detail, sizeof c->detail, "no write was ever acknowledged");
        return;
    }
    int64_t *ends = malloc(n * sizeof *ends);
    if (ends == NULL) {
        c->verdict = CHAOS_FAILED;
        snprintf(c->detail, sizeof c->detail, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++)
        ends[i] = ix->ok[i].end;
    qsort(ends, n, sizeof *ends, cmp_i64);
    int64_t gap = 0, at = ends[0];
    for (size_t i = 1; i < n; i++) {
        if (ends[i] - ends[i - 1] > gap) {
            gap = ends[i] - ends[i - 1];
            at = ends[i - 1];
        }
    }
    free(ends);
    c->value = gap / 1000.0;
    c->value2 = rel_ms(rec, at);
    snprintf(
        c->detail, sizeof c->detail,
        "longest time without an acknowledged write: %.1f ms, from %+.1f ms (%zu acknowledged)",
        c->value, c->value2, n);
}

/* ---- convergence ---- */

/* The epoch most sources that know one name (ties: the highest); 0 if none does. */
static uint64_t common_epoch(const struct chaos_record *rec)
{
    uint64_t best = 0;
    unsigned best_n = 0;
    for (unsigned i = 0; i < rec->n_finals; i++) {
        const struct chaos_final_view *f = &rec->finals[i];
        unsigned n = 0;
        if (!f->answered || f->epoch == 0)
            continue;
        for (unsigned j = 0; j < rec->n_finals; j++)
            n += rec->finals[j].answered && rec->finals[j].epoch == f->epoch;
        if (n > best_n || (n == best_n && f->epoch > best)) {
            best = f->epoch;
            best_n = n;
        }
    }
    return best;
}

static void check_convergence(const struct chaos_record *rec, struct chaos_check *c)
{
    const struct chaos_event *last = last_authorization(rec, INT64_MAX);
    int want = last != NULL ? (int)last->region : rec->initial_primary;
    uint64_t epoch = common_epoch(rec);
    unsigned answered = 0, disagree = 0, n_finals = rec->n_finals;
    char list[400] = "";
    set_check(c, "convergence", CHAOS_PASS);
    n_finals = n_finals < sizeof rec->finals / sizeof rec->finals[0]
                   ? n_finals
                   : sizeof rec->finals / sizeof rec->finals[0];
    for (unsigned i = 0; i < n_finals; i++) {
        const struct chaos_final_view *f = &rec->finals[i];
        if (!f->answered)
            continue;
        answered++;
        if (f->primary == want && (f->epoch == 0 || f->epoch == epoch))
            continue;
        disagree++;
        appendf(list, sizeof list, "%s%s says %s epoch %" PRIu64, disagree > 1 ? ", " : "",
                f->source, region_name(rec, f->primary), f->epoch);
    }
    c->value = disagree;
    c->value2 = answered;
    snprintf(c->detail, sizeof c->detail,
             "%u of %u sources answered; expected %s (%s), epoch %" PRIu64, answered, n_finals,
             region_name(rec, want), last != NULL ? "the last authorized" : "the initial primary",
             epoch);
    if (answered == 0) {
        c->verdict = CHAOS_FAILED;
        appendf(c->detail, sizeof c->detail, "; no source answered");
    } else if (disagree > 0) {
        c->verdict = CHAOS_FAILED;
        appendf(c->detail, sizeof c->detail, "; disagreeing: %s", list);
    }
}

/* ---- false-failover ---- */

static void check_false_failover(const struct chaos_record *rec, const struct chaos_expect *ex,
                                 struct chaos_check *c)
{
    unsigned n = 0;
    char list[300] = "";
    set_check(c, "false-failover", CHAOS_PASS);
    for (size_t i = 0; i < rec->n_events; i++) {
        const struct chaos_event *e = &rec->events[i];
        if (e->kind != CHAOS_EV_DECIDED)
            continue;
        if (++n <= NAMED_MAX)
            appendf(list, sizeof list, "%sepoch %" PRIu64 " to %s at %+.1f ms", n > 1 ? ", " : "",
                    e->epoch, region_name(rec, (int)e->region), rel_ms(rec, e->t_us));
    }
    c->value = n;
    snprintf(c->detail, sizeof c->detail, "%u failovers decided%s%s", n, n ? ": " : "", list);
    if (ex->failover == 0 && n > 0) {
        c->verdict = CHAOS_FAILED;
        appendf(c->detail, sizeof c->detail, "; none was warranted");
    } else if (ex->failover == 1 && n == 0) {
        c->verdict = CHAOS_FAILED;
        appendf(c->detail, sizeof c->detail, "; a failover was expected");
    }
}

/* ---- decisions ---- */

static bool has_decision(const struct chaos_record *rec, const struct chaos_event *p)
{
    for (size_t i = 0; i < rec->n_events; i++) {
        const struct chaos_event *d = &rec->events[i];
        if (d->kind == CHAOS_EV_DECIDED && d->epoch == p->epoch && d->region == p->region &&
            d->t_us <= p->t_us)
            return true;
    }
    return false;
}

/* Is p the first promotion of its epoch in a region other than an earlier one's (so that each
 * epoch promoted in two regions counts once)? */
static bool second_region(const struct chaos_record *rec, size_t k)
{
    const struct chaos_event *p = &rec->events[k];
    bool other = false;
    for (size_t i = 0; i < k; i++) {
        const struct chaos_event *q = &rec->events[i];
        if (q->kind != CHAOS_EV_NODE_PROMOTED_HERE || q->epoch != p->epoch)
            continue;
        if (q->region == p->region)
            return false; /* p's region already seen for this epoch */
        other = true;
    }
    return other;
}

static void check_decisions(const struct chaos_record *rec, struct chaos_check *c)
{
    unsigned promotions = 0, decided = 0, orphans = 0, doubles = 0;
    char list[300] = "";
    set_check(c, "decisions", CHAOS_PASS);
    for (size_t i = 0; i < rec->n_events; i++) {
        const struct chaos_event *p = &rec->events[i];
        decided += p->kind == CHAOS_EV_DECIDED;
        if (p->kind != CHAOS_EV_NODE_PROMOTED_HERE)
            continue;
        promotions++;
        if (!has_decision(rec, p) && ++orphans <= NAMED_MAX)
            appendf(list, sizeof list,
                    "%s%s promoted in epoch %" PRIu64 " at %+.1f ms without a "
                    "committed decision",
                    orphans + doubles > 1 ? "; " : "", region_name(rec, (int)p->region), p->epoch,
                    rel_ms(rec, p->t_us));
        if (second_region(rec, i) && ++doubles <= NAMED_MAX)
            appendf(list, sizeof list,
                    "%sepoch %" PRIu64 " promoted a second region, %s, at %+.1f ms",
                    orphans + doubles > 1 ? "; " : "", p->epoch, region_name(rec, (int)p->region),
                    rel_ms(rec, p->t_us));
    }
    c->value = orphans + doubles;
    c->value2 = promotions;
    snprintf(c->detail, sizeof c->detail, "%u promotions on nodes, %u decisions", promotions,
             decided);
    if (orphans + doubles == 0)
        return;
    c->verdict = CHAOS_FAILED;
    appendf(c->detail, sizeof c->detail, "; %s", list);
}

/* ---- all ---- */

static void fail_all(struct chaos_checks *out)
{
    static const char *const names[] = {"lost-writes", "split-brain",    "rto",      "write-gap",
                                        "convergence", "false-failover", "decisions"};
    out->n = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct chaos_check *c = &out->c[out->n++];
        set_check(c, names[i], CHAOS_FAILED);
        snprintf(c->detail, sizeof c->detail, "not checked: out of memory");
    }
    out->all_passed = false;
}

void chaos_check_all(const struct chaos_record *rec, const struct chaos_expect *ex,
                     struct chaos_checks *out)
{
    struct index ix;
    memset(out, 0, sizeof *out);
    if (index_build(&ix, rec) != 0) {
        index_free(&ix);
        fail_all(out);
        return;
    }
    check_lost_writes(rec, ex, &out->c[out->n++]);
    check_split_brain(&ix, &out->c[out->n++]);
    check_rto(&ix, ex, &out->c[out->n++]);
    check_write_gap(&ix, &out->c[out->n++]);
    check_convergence(rec, &out->c[out->n++]);
    check_false_failover(rec, ex, &out->c[out->n++]);
    check_decisions(rec, &out->c[out->n++]);
    index_free(&ix);
    out->all_passed = true;
    for (unsigned i = 0; i < out->n; i++)
        out->all_passed &= out->c[i].verdict != CHAOS_FAILED;
}
