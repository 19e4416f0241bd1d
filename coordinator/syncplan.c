/*
 * The primary's synchronous standby set, planned (include/afc/failover.h, afc_sync_plan).
 *
 * Data flow: coordinator/syncrep.c polls the primary's PostgreSQL (synchronous_standby_names,
 * pg_stat_replication) into a struct afc_sync_live, and asks for the one next step: COMMIT a
 * sync-set entry, APPLY a new synchronous_standby_names, WAIT for a standby to catch up, or
 * NONE. It does that step, waits for it to complete, polls again and asks again.
 *
 * Why the order matters (docs/failover.md, "Synchronous mode"): PostgreSQL acknowledges a commit
 * once ANY one standby of its set has flushed it; the leader, choosing a candidate after the
 * primary died, only knows the committed record. So the record must name every standby
 * PostgreSQL may have counted on: it grows before PostgreSQL's set grows, and shrinks only after
 * PostgreSQL's set shrank and a remaining standby has flushed past the LSN of that moment (from
 * then on, anything acknowledged is on it). Falling back to asynchronous replication is committed
 * before PostgreSQL stops waiting, so a primary cut off from the majority (which cannot commit)
 * keeps waiting: it never degrades on its own.
 *
 * Pure: libc only.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "afc/failover.h"
#include "afc/state.h"

static unsigned n_members(const struct afc_state *s)
{
    return s->n_members < AFC_MAX_MEMBERS ? s->n_members : AFC_MAX_MEMBERS;
}

/* A majority of observers report member j's PostgreSQL down (a partitioned standby whose
 * walsender has not timed out yet still looks "streaming" here). */
static bool is_reported_down(const struct afc_state *s, unsigned j)
{
    unsigned down = 0;
    for (unsigned i = 0; i < n_members(s); i++) {
        const struct afc_pg_obs *o = &s->obs[i][j];
        down += o->valid && (!o->healthy || o->local_dead);
    }
    return down >= n_members(s) / 2 + 1;
}

/* Could member j ever be a synchronous standby: another member, with PostgreSQL, failover
 * allowed (a standby that alone holds a commit must be promotable), not drained. */
static bool may_be_standby(const struct afc_sync_input *in, unsigned j)
{
    return j != in->self && !in->excluded[j] && !in->state->drained[j];
}

static bool is_attached(const struct afc_sync_input *in, unsigned j)
{
    const struct afc_pg_obs *own = &in->state->obs[j][j];
    if (!may_be_standby(in, j) || is_reported_down(in->state, j)) {
        return false;
    }
    if (in->live->streaming[j]) {
        return true;
    }
    return in->awaited[j] && own->valid && own->healthy && !own->local_dead &&
           own->role == AFC_PG_REPLICA;
}

/* A member that may still attach: awaited, and not reported down. */
static bool is_awaited(const struct afc_sync_input *in)
{
    for (unsigned j = 0; j < n_members(in->state); j++) {
        if (in->awaited[j] && may_be_standby(in, j) && !is_reported_down(in->state, j)) {
            return true;
        }
    }
    return false;
}

static bool is_subset(const bool *a, const bool *b, unsigned n)
{
    for (unsigned j = 0; j < n; j++) {
        if (a[j] && !b[j]) {
            return false;
        }
    }
    return true;
}

static bool is_equal(const bool *a, const bool *b, unsigned n)
{
    return is_subset(a, b, n) && is_subset(b, a, n);
}

/* "a,b" ("none" if empty) into buf. */
static void names(const struct afc_state *s, const bool *set, char *buf, size_t cap)
{
    size_t off = 0;
    snprintf(buf, cap, "none");
    for (unsigned j = 0; j < n_members(s) && off < cap; j++) {
        if (set[j]) {
            int k = snprintf(buf + off, cap - off, "%s%s", off ? "," : "", s->members[j].name);
            off += k > 0 ? (size_t)k : 0;
        }
    }
}

/* Is the committed record this primary's own, for this epoch? */
static bool is_own_record(const struct afc_sync_input *in)
{
    const struct afc_state *s = in->state;
    return strcmp(s->sync.region, s->members[in->self].name) == 0 && s->sync.epoch == s->epoch;
}

/* Where it is heading: the attached standbys; or, when none is, every possible one (strict) or
 * asynchronous (non-strict). Returns false when there is nothing to do but wait (non-strict,
 * none attached yet, one still awaited). */
static bool choose_target(const struct afc_sync_input *in, struct afc_sync_plan *out)
{
    unsigned n = n_members(in->state);
    bool any = false;
    for (unsigned j = 0; j < n; j++) {
        out->target[j] = is_attached(in, j);
        any = any || out->target[j];
    }
    out->active = true;
    if (any) {
        return true;
    }
    if (in->strict) {
        for (unsigned j = 0; j < n; j++) {
            out->target[j] = may_be_standby(in, j);
        }
        out->blocking = true;
        return true;
    }
    if (is_awaited(in)) {
        out->step = AFC_SYNC_WAIT;
        snprintf(out->why, sizeof out->why, "no standby attached yet (just became primary)");
        return false;
    }
    out->active = false;
    out->degraded = true;
    return true;
}

/* The highest flush LSN among the target's streaming standbys; 0 if none streams. */
static uint64_t target_flush(const struct afc_sync_input *in, const bool *target)
{
    uint64_t best = 0;
    for (unsigned j = 0; j < n_members(in->state); j++) {
        if (target[j] && in->live->streaming[j] && in->live->flush_lsn[j] > best) {
            best = in->live->flush_lsn[j];
        }
    }
    return best;
}

static void plan_async(const struct afc_sync_input *in, struct afc_sync_plan *out)
{
    const struct afc_state *s = in->state;
    if (!is_own_record(in) || s->sync.active) {
        out->step = AFC_SYNC_COMMIT; /* committed first: a cut-off primary cannot degrade */
        snprintf(out->why, sizeof out->why, "no synchronous standby attached: asynchronous");
    } else if (in->live->active) {
        out->step = AFC_SYNC_APPLY;
        snprintf(out->why, sizeof out->why, "asynchronous (committed): stop waiting");
    }
}

static void plan_sync(const struct afc_sync_input *in, struct afc_sync_plan *out)
{
    const struct afc_state *s = in->state;
    const struct afc_sync_live *live = in->live;
    unsigned n = n_members(s);
    bool own = is_own_record(in) && s->sync.active, need[AFC_MAX_MEMBERS] = {false};
    char a[96];
    for (unsigned j = 0; j < n; j++) {
        need[j] = j != in->self && (out->target[j] || live->named[j]);
    }
    names(s, out->target, a, sizeof a);
    if (!own || !is_subset(need, s->sync.standby, n)) {
        /* grow the record first: what PostgreSQL waits on now, and what it will */
        for (unsigned j = 0; j < n; j++) {
            out->standby[j] = need[j] || (own && s->sync.standby[j]);
        }
        out->step = AFC_SYNC_COMMIT;
        snprintf(out->why, sizeof out->why, "%s: PostgreSQL is to wait on %.60s",
                 !is_own_record(in) ? "new primary"
                 : !own             ? "back to synchronous"
                                    : "ahead of PostgreSQL",
                 a);
        return;
    }
    if (!live->active || !live->exact || !is_equal(live->named, out->target, n)) {
        memcpy(out->standby, out->target, sizeof out->standby);
        out->step = AFC_SYNC_APPLY;
        snprintf(out->why, sizeof out->why, "wait on ANY 1 of %.90s", a);
        return;
    }
    if (!is_equal(s->sync.standby, out->target, n)) {
        /* PostgreSQL's set shrank: the record follows once a remaining standby has everything
         * that may have been acknowledged before */
        uint64_t ref = in->ref_lsn != 0 ? in->ref_lsn : live->current_lsn;
        uint64_t flush = target_flush(in, out->target);
        if (flush != 0 && flush >= ref) {
            memcpy(out->standby, out->target, sizeof out->standby);
            out->step = AFC_SYNC_COMMIT;
            snprintf(out->why, sizeof out->why, "PostgreSQL's set shrank, %X/%X flushed",
                     (unsigned)(ref >> 32), (unsigned)ref);
        } else {
            out->step = AFC_SYNC_WAIT;
            out->need_lsn = ref;
            snprintf(out->why, sizeof out->why,
                     "a standby of %.40s must flush %X/%X before the record shrinks", a,
                     (unsigned)(ref >> 32), (unsigned)ref);
        }
    }
}

void afc_sync_plan(const struct afc_sync_input *in, struct afc_sync_plan *out)
{
    memset(out, 0, sizeof *out);
    if (in->self >= n_members(in->state) || !choose_target(in, out)) {
        return;
    }
    if (out->active) {
        plan_sync(in, out);
    } else {
        plan_async(in, out);
    }
}
