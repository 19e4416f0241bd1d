/*
 * Leadership tracker: notices role changes by polling and does barrier-on-election.
 *
 * libraft 0.15 has no state-change callback (raft-0.15.md §4.4), so the owner calls
 * afc_leadership_poll() from a uv_prepare and a uv_check handle (the fixture tests call it after
 * every raft_fixture_step). 0.15 also appends no no-op when a node wins an election and can commit
 * an older-term entry by counting replicas (Raft §5.4.2 "Figure 8", raft-0.15.md §4.3), so a new
 * leader's FSM may lag the log it is about to act on. Hence:
 *
 *   became leader (or term moved while leader) → raft_barrier() in the same loop turn
 *   barrier cb status 0, still leader, same term  → ready (state read now is complete)
 *   anything else (not leader, new term, stall)    → not ready; a new barrier when possible
 *
 * The barrier callback only records its outcome; the next poll turns it into `ready` and reports
 * the change, so the `changed` callback never runs inside raft's apply loop.
 *
 * Stall detection (raft-0.15.md §4.5, §7 "a revived ex-leader is still RAFT_LEADER of its old
 * term"): a process that was frozen (SIGSTOP, VM pause, fixture kill) resumes believing it leads
 * in its old term; its tick may even pass check-quorum on stale per-peer flags before it reads the
 * higher term from its sockets. If the raft clock moved more than STALL_FRACTION of the election
 * timeout since the previous poll, the loop did not run for that long: readiness is withdrawn and
 * a fresh barrier must commit before the node is ready again. A stale leader cannot commit it (the
 * majority moved to a higher term), so it stays not-ready until it steps down and wins anew.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "afc/consensus.h"
#include "afc/log.h"

/* Polls happen at least every heartbeat (raft's tick timer wakes the loop); a gap of half an
 * election timeout cannot be normal operation. */
#define STALL_FRACTION_DIV 2

static raft_time raft_now(const struct afc_leadership *l)
{
    return l->raft->io->time(l->raft->io);
}

/* True if the loop has not polled for an abnormally long time (see the file comment). */
static bool has_stalled(const struct afc_leadership *l, raft_time now)
{
    raft_time gap = now - l->last_poll_ms; /* unsigned: wrap-safe */

    return gap > l->raft->election_timeout / STALL_FRACTION_DIV;
}

static struct afc_leadership *leadership_of(struct raft_barrier *req)
{
    return (struct afc_leadership *)((char *)req - offsetof(struct afc_leadership, barrier_req));
}

/* The barrier applied in `barrier_term` and we still lead in that term. barrier_term 0 means
 * "none valid" (terms start at 1 after bootstrap). */
static bool barrier_holds(const struct afc_leadership *l)
{
    struct raft *r = l->raft;

    return !l->barrier_pending && l->barrier_term != 0 && raft_state(r) == RAFT_LEADER &&
           r->current_term == l->barrier_term;
}

static void barrier_cb(struct raft_barrier *req, int status);

/* Submit a barrier if we lead and have none pending or applied for the current term. Only one is
 * ever in flight: barrier_req must stay untouched until its callback. */
static void maybe_submit_barrier(struct afc_leadership *l)
{
    struct raft *r = l->raft;
    int rv;

    if (raft_state(r) != RAFT_LEADER || l->barrier_pending || l->barrier_term == r->current_term) {
        return;
    }
    rv = raft_barrier(r, &l->barrier_req, barrier_cb);
    if (rv != 0) {
        /* Retried at the next poll (next loop turn); nothing to undo. */
        afc_warn("raft barrier in term %llu: %s", (unsigned long long)r->current_term,
                 raft_strerror(rv));
        return;
    }
    l->barrier_pending = true;
    l->barrier_term = r->current_term;
}

static void barrier_cb(struct raft_barrier *req, int status)
{
    struct afc_leadership *l = leadership_of(req);
    struct raft *r = l->raft;

    l->barrier_pending = false;
    if (status != 0 || raft_state(r) != RAFT_LEADER || r->current_term != l->barrier_term) {
        /* Lost leadership (LEADERSHIPLOST), shutting down, or a newer term began while this
         * barrier was in flight: it proves nothing about the current term. */
        l->barrier_term = 0;
    }
    /* If a new term started while this barrier was pending, its barrier is submitted by the next
     * poll (same loop turn: uv_check runs right after the I/O callbacks), never from here: 0.15
     * fails pending requests while stepping down *before* it leaves the LEADER state, so a
     * raft_barrier() from this callback would append to a log that is being torn down (it
     * crashed in the revived-leader fixture test). */
}

void afc_leadership_init(struct afc_leadership *l, struct raft *r)
{
    memset(l, 0, sizeof *l);
    l->raft = r;
    l->last_state = RAFT_UNAVAILABLE;
}

/* Withdraw readiness (and invalidate a pending barrier) if the loop stalled since the last poll.
 * The first poll only starts the clock. */
static void check_stall(struct afc_leadership *l, raft_time now)
{
    raft_time gap = now - l->last_poll_ms;
    bool stalled = l->last_state != RAFT_UNAVAILABLE && has_stalled(l, now);

    l->last_poll_ms = now;
    if (!stalled || l->barrier_term == 0) {
        return;
    }
    afc_warn("raft: event loop stalled for %llu ms while leader in term %llu; readiness withdrawn "
             "until a new barrier commits",
             (unsigned long long)gap, (unsigned long long)l->raft->current_term);
    l->barrier_term = 0;
}

void afc_leadership_poll(struct afc_leadership *l)
{
    struct raft *r = l->raft;
    int old_state = l->last_state;
    bool old_ready = l->ready;
    raft_id leader_id = 0;
    const char *leader_addr = NULL;
    int state;
    bool changed;

    check_stall(l, raft_now(l));
    state = raft_state(r);
    raft_leader(r, &leader_id, &leader_addr);
    maybe_submit_barrier(l);
    l->ready = barrier_holds(l);

    changed = state != old_state || leader_id != l->last_leader_id || l->ready != old_ready;
    if (leader_id != l->last_leader_id) {
        l->leader_changes++;
    }
    l->last_state = state;
    l->last_leader_id = leader_id;
    if (changed && l->changed != NULL) {
        l->changed(l, old_state, state);
    }
}

bool afc_leadership_is_ready(const struct afc_leadership *l)
{
    /* Re-check live: raft may have stepped down, or the loop may just have resumed from a stall,
     * since the last poll (e.g. a daemon timer firing right after SIGCONT, before any poll). */
    return l->ready && barrier_holds(l) && !has_stalled(l, raft_now(l));
}
