/*
 * The pure decision core (include/afc/failover.h): given the replicated state, the local lease
 * clock, the configuration and the current monotonic time, say what the leader should do next and
 * why. No I/O, no clock, no allocation: the caller acts on the result.
 *
 * Data flow: afc_decide() → (epoch 0) decide_adopt → ADOPT / REFUSE_ADOPT / NONE
 *                        → (epoch > 0) one predicate per §4 rule, in order, every one evaluated so
 *                          /v1/decision shows all values → BEGIN_FAILOVER only if all hold.
 * afc_select_candidate() implements §4.5 and explains every exclusion, including the sync-mode
 * rule (only members of the committed synchronous set, and all of them present to compare).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "afc/failover.h"
#include "afc/state.h"

static unsigned n_members(const struct afc_state *s)
{
    return s->n_members < AFC_MAX_MEMBERS ? s->n_members : AFC_MAX_MEMBERS;
}

static unsigned majority(const struct afc_state *s)
{
    return n_members(s) / 2 + 1;
}

static int member_index(const struct afc_state *s, const char *name)
{
    for (unsigned i = 0; i < n_members(s); i++) {
        if (strcmp(s->members[i].name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

__attribute__((format(printf, 4, 5))) static bool add_pred(struct afc_decision *d, const char *name,
                                                           bool ok, const char *fmt, ...)
{
    if (d->n_predicates >= AFC_DECIDE_MAX_PREDICATES) {
        return ok;
    }
    struct afc_predicate *p = &d->predicates[d->n_predicates++];
    p->name = name;
    p->ok = ok;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->value, sizeof p->value, fmt, ap);
    va_end(ap);
    if (!ok && d->blocking == NULL) {
        d->blocking = name;
    }
    return ok;
}

/* Append "; text" (or "text") to a bounded string. */
__attribute__((format(printf, 3, 4))) static void append(char *buf, size_t cap, const char *fmt,
                                                         ...)
{
    size_t off = strlen(buf);
    if (off + 3 >= cap) {
        return;
    }
    if (off > 0) {
        off += (size_t)snprintf(buf + off, cap - off, "; ");
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + off, cap - off, fmt, ap);
    va_end(ap);
}

static void fmt_bytes(uint64_t b, char *buf, size_t cap)
{
    if (b >= 1024 * 1024) {
        snprintf(buf, cap, "%" PRIu64 " MB", b / (1024 * 1024));
    } else if (b >= 1024) {
        snprintf(buf, cap, "%" PRIu64 " kB", b / 1024);
    } else {
        snprintf(buf, cap, "%" PRIu64 " B", b);
    }
}

/* ---- candidate selection (§4.5) ---- */

/* How many observers currently see member j healthy. */
static unsigned seen_healthy(const struct afc_state *s, unsigned j)
{
    unsigned n = 0;
    for (unsigned i = 0; i < n_members(s); i++) {
        n += s->obs[i][j].valid && s->obs[i][j].healthy && !s->obs[i][j].local_dead;
    }
    return n;
}

static bool is_self_healthy_replica(const struct afc_pg_obs *o)
{
    return o->valid && o->healthy && !o->local_dead && o->role == AFC_PG_REPLICA;
}

/* First filter (lag aside): healthy replica by its own report, seen by a majority, failover
 * allowed. Appends the reason to `why` when excluded. */
static bool is_eligible(const struct afc_state *s, const struct afc_decide_config *cfg, unsigned j,
                        char *why, size_t cap)
{
    const char *name = s->members[j].name;
    unsigned seen = seen_healthy(s, j);
    if (!is_self_healthy_replica(&s->obs[j][j])) {
        append(why, cap, "%s: not a healthy replica by its own report", name);
        return false;
    }
    if (seen < majority(s)) {
        append(why, cap, "%s: seen healthy by %u of %u (need %u)", name, seen, n_members(s),
               majority(s));
        return false;
    }
    if (j < cfg->n_members && cfg->nofailover[j]) {
        append(why, cap, "%s: nofailover", name);
        return false;
    }
    if (s->drained[j]) {
        append(why, cap, "%s is drained", name);
        return false;
    }
    if (afc_sync_rule_applies(s, cfg) && !s->sync.standby[j]) {
        append(why, cap, "%s: not a synchronous standby", name);
        return false;
    }
    return true;
}

bool afc_sync_rule_applies(const struct afc_state *s, const struct afc_decide_config *cfg)
{
    return cfg->sync_mode && s->sync.region[0] != '\0' && s->sync.active;
}

/* Sync mode: PostgreSQL acknowledged a commit once ANY one member of the committed set had it, so
 * the one with the most WAL can only be known when every member other than `exclude` (the failed
 * primary) can be compared: a healthy replica by its own report, seen healthy by a majority. */
static bool sync_set_complete(const struct afc_state *s, const struct afc_decide_config *cfg,
                              int exclude, char *why, size_t cap)
{
    bool complete = true;
    if (!afc_sync_rule_applies(s, cfg)) {
        return true;
    }
    for (unsigned j = 0; j < n_members(s); j++) {
        if ((int)j == exclude || !s->sync.standby[j]) {
            continue;
        }
        if (!is_self_healthy_replica(&s->obs[j][j]) || seen_healthy(s, j) < majority(s)) {
            append(why, cap,
                   "%s: synchronous standby unavailable (it may hold acknowledged writes)",
                   s->members[j].name);
            complete = false;
        }
    }
    return complete;
}

/* The region that failed to promote in the last failover, if that failover ABORTED: it is passed
 * over by the next selection (a retry on the same node would likely fail the same way), unless
 * no other replica qualifies. -1 if none. */
static int aborted_target(const struct afc_state *s)
{
    if (s->failover.step != AFC_FO_ABORTED) {
        return -1;
    }
    return member_index(s, s->failover.to);
}

/* Best LSN known: what any observer last reported for the excluded (old) primary or a candidate. */
static uint64_t best_known_lsn(const struct afc_state *s, int exclude, const bool *eligible)
{
    uint64_t best = 0;
    for (unsigned j = 0; j < n_members(s); j++) {
        if ((int)j != exclude && !eligible[j]) {
            continue;
        }
        for (unsigned i = 0; i < n_members(s); i++) {
            if (s->obs[i][j].valid && s->obs[i][j].lsn > best) {
                best = s->obs[i][j].lsn;
            }
        }
    }
    return best;
}

static int priority(const struct afc_decide_config *cfg, unsigned j)
{
    return j < cfg->n_members ? cfg->priority[j] : 0;
}

/* Is j better than the current best b (-1 = none)? LSN, then priority, then member order. */
static bool is_better(const struct afc_state *s, const struct afc_decide_config *cfg, unsigned j,
                      int b)
{
    if (b < 0) {
        return true;
    }
    uint64_t lj = s->obs[j][j].lsn, lb = s->obs[b][b].lsn;
    if (lj != lb) {
        return lj > lb;
    }
    return priority(cfg, j) > priority(cfg, (unsigned)b);
}

static bool is_within_lag(const struct afc_state *s, const struct afc_decide_config *cfg,
                          unsigned j, uint64_t best, char *why, size_t cap)
{
    uint64_t lsn = s->obs[j][j].lsn, lag = best > lsn ? best - lsn : 0;
    if (cfg->max_lag_bytes == 0 || lag <= cfg->max_lag_bytes) {
        return true;
    }
    char a[32], b[32];
    fmt_bytes(lag, a, sizeof a);
    fmt_bytes(cfg->max_lag_bytes, b, sizeof b);
    append(why, cap, "%s lags %s > %s", s->members[j].name, a, b);
    return false;
}

/* The best of the eligible members that are within the lag limit, skipping `skip` (-1 = none). */
static int pick_best(const struct afc_state *s, const struct afc_decide_config *cfg,
                     const bool *eligible, uint64_t best_lsn, int skip, char *why, size_t cap)
{
    int best = -1;
    for (unsigned j = 0; j < n_members(s); j++) {
        if (eligible[j] && (int)j != skip && is_within_lag(s, cfg, j, best_lsn, why, cap) &&
            is_better(s, cfg, j, best)) {
            best = (int)j;
        }
    }
    return best;
}

int afc_select_candidate(const struct afc_state *s, const struct afc_decide_config *cfg,
                         const char *exclude, char *why, unsigned why_cap)
{
    char reasons[256] = "";
    bool eligible[AFC_MAX_MEMBERS] = {false};
    int ex = member_index(s, exclude != NULL ? exclude : ""), ab = aborted_target(s);
    for (unsigned j = 0; j < n_members(s); j++) {
        eligible[j] = (int)j != ex && is_eligible(s, cfg, j, reasons, sizeof reasons);
    }
    uint64_t best_lsn = best_known_lsn(s, ex, eligible);
    int best = -1;
    char missing[256] = ""; /* said alone: it is what blocks */
    if (!sync_set_complete(s, cfg, ex, missing, sizeof missing)) {
        if (why != NULL && why_cap > 0) {
            snprintf(why, why_cap, "%s", missing);
        }
        return -1;
    }
    if (ab >= 0 && eligible[ab]) {
        char skipped[256] = "";
        best = pick_best(s, cfg, eligible, best_lsn, ab, skipped, sizeof skipped);
        if (best >= 0) {              /* else it is the only one left, and allowed (second pass) */
            char all[sizeof reasons]; /* the most telling reason first */
            snprintf(all, sizeof all, "%s failed to promote in epoch %" PRIu64, s->members[ab].name,
                     s->failover.epoch);
            if (reasons[0] != '\0') {
                append(all, sizeof all, "%s", reasons);
            }
            if (skipped[0] != '\0') {
                append(all, sizeof all, "%s", skipped);
            }
            snprintf(reasons, sizeof reasons, "%s", all);
        }
    }
    if (best < 0) {
        best = pick_best(s, cfg, eligible, best_lsn, -1, reasons, sizeof reasons);
    }
    if (why != NULL && why_cap > 0) {
        snprintf(why, why_cap, "%s", best >= 0 || reasons[0] ? reasons : "no healthy replica");
    }
    return best;
}

/* ---- adoption at epoch 0 (§8 bootstrap) ---- */

int afc_more_wal_elsewhere(const struct afc_state *s, const struct afc_decide_config *cfg,
                           const char *self, const char *from, uint64_t own_lsn, bool *waiting)
{
    int best = -1;
    uint64_t most = own_lsn;
    *waiting = false;
    for (unsigned j = 0; j < n_members(s); j++) {
        const struct afc_pg_obs *o = &s->obs[j][j];
        const char *name = s->members[j].name;
        char why[128] = "";
        if (strcmp(name, self) == 0 || strcmp(name, from) == 0 ||
            !is_eligible(s, cfg, j, why, sizeof why)) {
            continue;
        }
        *waiting = *waiting || strcmp(o->upstream, from) == 0;
        if (o->lsn > most) {
            most = o->lsn;
            best = (int)j;
        }
    }
    return best;
}

static void decide_adopt(const struct afc_decide_input *in, struct afc_decision *d)
{
    const struct afc_state *s = in->state;
    int first = -1, second = -1;
    unsigned n = 0;
    for (unsigned i = 0; i < n_members(s); i++) {
        const struct afc_pg_obs *o = &s->obs[i][i];
        if (o->valid && o->healthy && !o->local_dead && o->role == AFC_PG_PRIMARY) {
            first = first < 0 ? (int)i : first;
            second = n == 1 ? (int)i : second;
            n++;
        }
    }
    bool ready = in->leader_ready && !s->paused;
    if (n == 1) {
        add_pred(d, "single-running-primary", true, "%s reports itself primary",
                 s->members[first].name);
    } else if (n == 0) {
        add_pred(d, "single-running-primary", false,
                 "none of %u regions reports itself a healthy primary", n_members(s));
    } else {
        add_pred(d, "single-running-primary", false, "%u regions report primary: %s and %s", n,
                 s->members[first].name, s->members[second].name);
    }
    if (!ready || n == 0) {
        return;
    }
    d->expect_epoch = 0;
    if (n == 1) {
        d->action = AFC_ACT_ADOPT;
        snprintf(d->to, sizeof d->to, "%s", s->members[first].name);
        snprintf(d->reason, sizeof d->reason, "adopt running primary %s", d->to);
        return;
    }
    d->action = AFC_ACT_REFUSE_ADOPT;
    snprintf(d->reason, sizeof d->reason, "refusing to adopt: %s and %s both run as primary",
             s->members[first].name, s->members[second].name);
}

/* ---- failover detection (§4.2, §4.4, §5) ---- */

static bool pred_failed_by_quorum(const struct afc_decide_input *in, struct afc_decision *d)
{
    const struct afc_state *s = in->state;
    int p = member_index(s, s->primary);
    if (p < 0) {
        return add_pred(d, "primary-failed-by-quorum", true,
                        "no authorized primary (last failover aborted)");
    }
    if (s->obs[p][p].valid && s->obs[p][p].local_dead) {
        return add_pred(d, "primary-failed-by-quorum", true, "%s's own coordinator reports it dead",
                        s->primary);
    }
    if (in->cfg->db_fence && p < 9 && in->coordinator_lost[p]) {
        return add_pred(d, "primary-failed-by-quorum", true,
                        "%s's coordinator is lost; its database fence closes with the lease",
                        s->primary);
    }
    unsigned down = 0;
    for (unsigned i = 0; i < n_members(s); i++) {
        const struct afc_pg_obs *o = &s->obs[i][p];
        down += o->valid && (!o->healthy || o->local_dead);
    }
    return add_pred(d, "primary-failed-by-quorum", down >= majority(s),
                    "%u of %u observers report %s down (need %u)", down, n_members(s), s->primary,
                    majority(s));
}

static bool pred_lease_expired(const struct afc_decide_input *in, struct afc_decision *d)
{
    bool applied = in->lease_applied_ms != 0;
    uint64_t base = applied ? in->lease_applied_ms : in->ready_since_ms;
    uint64_t deadline = base + in->cfg->lease_ms + in->cfg->margin_ms;
    const char *from = applied ? "last renewal applied here" : "this leader became ready";
    if (in->now_ms >= deadline) {
        return add_pred(d, "lease-expired", true, "expired %" PRIu64 " ms ago (counted from %s)",
                        in->now_ms - deadline, from);
    }
    return add_pred(d, "lease-expired", false, "expires in %" PRIu64 " ms (counted from %s)",
                    deadline - in->now_ms, from);
}

static bool pred_cooldown(const struct afc_decide_input *in, struct afc_decision *d)
{
    const struct afc_state *s = in->state;
    int p = member_index(s, s->primary);
    if (in->last_failover_ms == 0) {
        return add_pred(d, "cooldown-elapsed", true, "no failover decided by this leader");
    }
    uint64_t since = in->now_ms - in->last_failover_ms;
    if (since >= in->cfg->cooldown_ms) {
        return add_pred(d, "cooldown-elapsed", true, "last failover %" PRIu64 " ms ago", since);
    }
    /* §5: the cooldown yields when the new primary is dead too: its own coordinator says so, or
     * its whole region is gone (the leader hears nothing from that coordinator). A primary that
     * only *looks* down from the other regions (a flapping network) does not qualify. */
    if (p >= 0 && s->obs[p][p].valid && s->obs[p][p].local_dead) {
        return add_pred(d, "cooldown-elapsed", true,
                        "last failover %" PRIu64 " ms ago, but %s is dead", since, s->primary);
    }
    if (p >= 0 && p < 9 && in->coordinator_lost[p]) {
        return add_pred(d, "cooldown-elapsed", true,
                        "last failover %" PRIu64 " ms ago, but %s's whole region is gone", since,
                        s->primary);
    }
    return add_pred(d, "cooldown-elapsed", false,
                    "last failover %" PRIu64 " ms ago (cooldown %" PRIu64 " ms)", since,
                    in->cfg->cooldown_ms);
}

static int pred_candidate(const struct afc_state *s, const struct afc_decide_config *cfg,
                          struct afc_decision *d)
{
    char why[128];
    int c = afc_select_candidate(s, cfg, s->primary, why, sizeof why);
    if (c >= 0) {
        add_pred(d, "candidate-available", true, "%s (receive lsn %X/%X)%s%s", s->members[c].name,
                 (unsigned)(s->obs[c][c].lsn >> 32), (unsigned)(s->obs[c][c].lsn & 0xffffffffu),
                 why[0] ? "; passed over: " : "", why);
    } else {
        add_pred(d, "candidate-available", false, "%s", why);
    }
    return c;
}

static void decide_failover(const struct afc_decide_input *in, struct afc_decision *d)
{
    const struct afc_state *s = in->state;
    const struct afc_failover *f = &s->failover;
    bool ok = afc_fo_step_is_final(f->step);
    if (ok) {
        add_pred(d, "no-failover-in-progress", true, "none in progress");
    } else {
        add_pred(d, "no-failover-in-progress", false, "failover of epoch %" PRIu64 " is at step %s",
                 f->epoch, afc_fo_step_name(f->step));
    }
    unsigned failed_at = d->n_predicates;
    ok = pred_failed_by_quorum(in, d) & ok;
    ok = pred_lease_expired(in, d) & ok;
    ok = pred_cooldown(in, d) & ok;
    int c = pred_candidate(s, in->cfg, d);
    if (!ok || c < 0 || d->blocking != NULL) {
        return;
    }
    d->action = AFC_ACT_BEGIN_FAILOVER;
    d->expect_epoch = s->epoch;
    snprintf(d->from, sizeof d->from, "%s", s->primary);
    snprintf(d->to, sizeof d->to, "%s", s->members[c].name);
    snprintf(d->reason, sizeof d->reason, "%s", d->predicates[failed_at].value);
}

void afc_decide(const struct afc_decide_input *in, struct afc_decision *out)
{
    memset(out, 0, sizeof *out);
    add_pred(out, "leader-ready", in->leader_ready, "%s",
             in->leader_ready ? "this node is the ready leader"
                              : "this node is not the ready leader");
    add_pred(out, "not-paused", !in->state->paused, "%s",
             in->state->paused ? "paused (maintenance mode)" : "automatic decisions enabled");
    if (in->state->epoch == 0) {
        decide_adopt(in, out);
        return;
    }
    decide_failover(in, out);
}

/* ---- what-if: the decision if a region died now (aragoractl plan --assume-dead) ---- */

/* Far enough in the past that any lease counted from it has expired (lease and margin are
 * seconds), yet non-zero so it counts as "a renewal was applied". */
#define ASSUME_DEAD_LEASE_MS 1

int afc_decide_assume_dead(const struct afc_decide_input *in, const char *region,
                           struct afc_state *scratch, struct afc_decision *out)
{
    int r = member_index(in->state, region);
    if (r < 0) {
        return AFC_EUNKNOWNMEMBER;
    }
    *scratch = *in->state;
    for (unsigned i = 0; i < n_members(scratch); i++) {
        struct afc_pg_obs *o = &scratch->obs[i][r];
        o->valid = true;
        o->healthy = false;
    }
    struct afc_decide_input what_if = *in;
    what_if.state = scratch;
    what_if.lease_applied_ms = ASSUME_DEAD_LEASE_MS;
    if (what_if.now_ms < ASSUME_DEAD_LEASE_MS + in->cfg->lease_ms + in->cfg->margin_ms) {
        what_if.now_ms = ASSUME_DEAD_LEASE_MS + in->cfg->lease_ms + in->cfg->margin_ms;
    }
    afc_decide(&what_if, out);
    return 0;
}
