/*
 * Failover: the types the replicated state carries about PostgreSQL, and the pure decision core.
 *
 * Data flow. Each coordinator probes every region's PostgreSQL (coordinator/pg_probe.c) and, when
 * its hysteresis-filtered view of a target changes, reports it to the leader, which commits an
 * AFC_OP_OBSERVE entry: so state.obs[observer][target] is what each coordinator last *said*, the
 * same on every node. The primary's coordinator renews its lease through the log (AFC_OP_RENEW).
 * On the leader, afc_decide() reads the state, the local monotonic time of the last renewal's apply
 * and the configuration, and returns what should happen next (pure: no clock, no I/O). A failover
 * is a resumable sequence of committed steps (AFC_OP_FAILOVER_BEGIN, then AFC_OP_FAILOVER_STEP),
 * each checked against the step table below, so a new leader continues where the old one stopped.
 *
 * Pure: libc only.
 */
#ifndef AFC_FAILOVER_H
#define AFC_FAILOVER_H

#include <stdbool.h>
#include <stdint.h>

#define AFC_FO_NAME_MAX 32 /* == AFC_NAME_MAX */
#define AFC_FO_ADDR_MAX 64 /* an IPv4/IPv6 address in text form */
#define AFC_FO_MEMBERS  9  /* = AFC_MAX_MEMBERS (state.h includes this header) */

/* ---- what a coordinator observed about one region's PostgreSQL ---- */

enum afc_pg_role { AFC_PG_UNKNOWN = 0, AFC_PG_PRIMARY, AFC_PG_REPLICA };
const char *afc_pg_role_name(enum afc_pg_role r); /* "unknown", "primary", "replica" */

struct afc_pg_obs {
    bool valid;   /* this observer has reported on this target at least once */
    bool healthy; /* reachable and answering, after rise/fall hysteresis */
    enum afc_pg_role role;
    uint32_t timeline;
    uint64_t lsn;        /* primary: pg_current_wal_lsn(); replica: pg_last_wal_receive_lsn() */
    uint64_t replay_lsn; /* replica: pg_last_wal_replay_lsn(); primary: = lsn */
    uint32_t lag_ms;     /* replica: now() - pg_last_xact_replay_timestamp(), 0 if unknown */
    char upstream[AFC_FO_NAME_MAX]; /* replica: region it streams from, "" if not streaming */
    bool local_dead; /* observer is the target's own coordinator and gave up restarting it */
    int64_t wall_ms; /* observer's wall clock when reported (display only) */
    uint64_t seq;    /* observer's sequence number for this target: a report whose seq is not
                        above the stored one is delayed or replayed, and refused */
};

/* ---- synchronous replication (replication.mode: sync; docs/failover.md "Synchronous mode") ----
 */

/*
 * The committed synchronous standby set: the replicas the primary's PostgreSQL may wait on
 * (synchronous_standby_names = 'ANY 1 (...)'), so that every commit it acknowledged is on at least
 * one of them. Set only by the authorized primary's coordinator (AFC_OP_SYNC_SET), and ordered
 * against PostgreSQL's own setting so that this set always contains every standby PostgreSQL may
 * count: it grows here before PostgreSQL's setting grows, and shrinks here only after
 * PostgreSQL's setting shrank and a remaining standby has flushed past that point
 * (afc_sync_plan). A new primary inherits its predecessor's set until it commits its own.
 */
struct afc_sync {
    char region[AFC_FO_NAME_MAX]; /* the primary that set it; "" = never set (asynchronous) */
    uint64_t epoch;               /* that primary's epoch when it set it */
    bool active; /* false: that primary fell back to asynchronous replication (no standby) */
    bool standby[AFC_FO_MEMBERS]; /* per member (state order): in the set */
    uint64_t index;               /* log index of the sync-set entry */
};

/* ---- the failover step machine (§5 of the design) ---- */

/* X(enum, name) — NONE means "no failover has ever run". */
#define AFC_FO_STEPS(X)                                                                            \
    X(AFC_FO_NONE, "none")                                                                         \
    X(AFC_FO_DECIDED, "decided")   /* epoch+1 committed, `to` authorized; replicas detach */       \
    X(AFC_FO_FENCED, "fenced")     /* old primary cannot write: replicas detached / it stopped */  \
    X(AFC_FO_PROMOTED, "promoted") /* `to` runs pg_promote; timeline and LSN recorded */           \
    X(AFC_FO_DONE, "done")         /* followers re-pointed; the sequence is over */                \
    X(AFC_FO_ABORTED, "aborted")   /* gave up before PROMOTED (e.g. promote failed) */

enum afc_fo_step {
#define AFC_FO_ENUM(e, s) e,
    AFC_FO_STEPS(AFC_FO_ENUM)
#undef AFC_FO_ENUM
        AFC_FO__COUNT
};
const char *afc_fo_step_name(enum afc_fo_step s);
/* The table: DECIDED→FENCED, DECIDED→ABORTED, FENCED→PROMOTED, FENCED→ABORTED, PROMOTED→DONE.
 * After PROMOTED the sequence only moves forward. Everything else is illegal. */
bool afc_fo_step_allowed(enum afc_fo_step from, enum afc_fo_step to);
/* A new failover may begin only when none is in progress (NONE, DONE or ABORTED). */
bool afc_fo_step_is_final(enum afc_fo_step s);

/* One failover's receipt: what /v1/history shows. Times are proposers' wall clocks. */
struct afc_failover {
    uint64_t epoch; /* the epoch this failover created */
    char from[AFC_FO_NAME_MAX];
    char to[AFC_FO_NAME_MAX];
    enum afc_fo_step step;
    char reason[96];
    bool planned; /* switchover: zero loss by construction */
    bool forced;  /* operator skipped the lag checks */
    uint64_t decided_index;
    uint64_t decided_term;
    int64_t detected_ms, decided_ms, fenced_ms, promoted_ms, done_ms, aborted_ms;
    uint32_t timeline; /* after promotion */
    uint64_t promoted_lsn;
    uint64_t old_lsn; /* last LSN of the old primary known at decision (RPO bound) */
    /* after PROMOTED, independent of DONE: clients find the new primary */
    int64_t routed_ms;                    /* DNS moved and verified (0 = not yet / none) */
    char routed_address[AFC_FO_ADDR_MAX]; /* what the name answers since */
    int64_t published_ms[AFC_FO_MEMBERS]; /* per member (state order): its Redis updated */
};

/* ---- the pure decision core (coordinator/decide.c, in the pure library) ---- */

struct afc_state; /* state.h */

#define AFC_DECIDE_MAX_PREDICATES 16

struct afc_predicate {
    const char *name; /* stable: "leader-ready", "not-paused", "primary-failed-by-quorum", ... */
    bool ok;
    char value[128]; /* human-readable value, e.g. "2 of 3 observers report it down" */
};

enum afc_action {
    AFC_ACT_NONE = 0,
    AFC_ACT_ADOPT,          /* no epoch yet: commit promote(region, 0) for the running primary */
    AFC_ACT_BEGIN_FAILOVER, /* commit FAILOVER_BEGIN(expect_epoch, from, to) */
    AFC_ACT_REFUSE_ADOPT,   /* two regions run as primary at bootstrap: refuse and say which */
};

struct afc_decide_config {
    uint64_t lease_ms;      /* 2000 */
    uint64_t margin_ms;     /* max(200, lease/10) */
    uint64_t max_lag_bytes; /* maximum_lag_on_failover; 0 = no limit */
    uint64_t cooldown_ms;   /* failover_cooldown_ms: 300000 */
    /* per member (same order as state.members): priority (higher wins), nofailover */
    unsigned n_members;
    int priority[9];
    bool nofailover[9];
    /* replication.mode: sync. While the committed set (state.sync) is active, only its members
     * are candidates, and every one of them must be there to be compared (below). */
    bool sync_mode;
    /* postgres.fence (docs/fencing.md), which must be the same on every node: every primary's
     * PostgreSQL refuses to commit once its lease has run out, whether or not its coordinator
     * is alive. Then a primary whose coordinator this leader has lost (coordinator_lost) counts
     * as failed once the lease has expired, even while its PostgreSQL still answers probes: it
     * can no longer commit, so promoting another region is safe, and it is the only way writes
     * resume (a frozen, crashed or OOM-killed coordinator beside a running PostgreSQL). */
    bool db_fence;
};

struct afc_decide_input {
    const struct afc_state *state;
    const struct afc_decide_config *cfg;
    bool leader_ready;         /* this node is the ready leader */
    uint64_t now_ms;           /* this node's monotonic clock */
    uint64_t lease_applied_ms; /* local monotonic time the last RENEW of the current primary and
                                  epoch was applied here; 0 = never (e.g. after a restart: then
                                  the leader counts from when it became ready) */
    uint64_t ready_since_ms;   /* when this node became ready leader (monotonic) */
    uint64_t last_failover_ms; /* local monotonic time the last failover was decided, 0 = never */
    /* coordinator_lost[i] (state.members order): this leader has heard nothing from member i's
     * coordinator within the last election timeout (the whole region is gone, not only its
     * PostgreSQL). Only a leader knows; false everywhere else. */
    bool coordinator_lost[9];
};

struct afc_decision {
    enum afc_action action;
    char from[AFC_FO_NAME_MAX];
    char to[AFC_FO_NAME_MAX];
    uint64_t expect_epoch;
    char reason[96];
    unsigned n_predicates;
    struct afc_predicate predicates[AFC_DECIDE_MAX_PREDICATES];
    const char *blocking; /* name of the first failed predicate, NULL if none blocks */
};

/*
 * Decide what the leader should do now. Never acts; fills *out. Predicates are listed in order
 * (all of them, even after the first failure, so /v1/decision shows every value):
 *   leader-ready, not-paused, no-failover-in-progress, primary-failed-by-quorum (a majority of
 *   observers report the primary unhealthy, or its own coordinator reports local_dead, or - with
 *   cfg->db_fence - the leader has lost the primary's coordinator),
 *   lease-expired (now >= lease base + lease_ms + margin_ms, base = lease_applied_ms or, if 0,
 *   ready_since_ms), cooldown-elapsed, candidate-available.
 */
void afc_decide(const struct afc_decide_input *in, struct afc_decision *out);

/*
 * Choose the failover candidate among members other than `exclude` (§4.5): its own coordinator's
 * observation says healthy replica; a majority of observers see it healthy; not nofailover; lag
 * within max_lag_bytes of the best known LSN (unless max_lag_bytes == 0); then highest receive LSN,
 * then priority, then member order. Never a drained member ("eu-west-1 is drained"). After an
 * ABORTED failover, its `to` (the region that failed to promote) is passed over ("eu-west-1
 * failed to promote in epoch 3") unless no other member qualifies. Returns the member index or
 * -1. `why` (may be NULL) receives every exclusion, "; "-separated ("" if none when a candidate
 * was found; "no healthy replica", "eu-west-1 lags 20 MB > 16 MB", ... when none qualifies).
 *
 * Sync mode (cfg->sync_mode and an active committed set, afc_sync_rule_applies): a replica outside
 * the set is never chosen, however much WAL it has ("ap-south-1: not a synchronous standby"); and
 * since PostgreSQL acknowledged each commit once ANY one member of the set had it, every member
 * other than `exclude` must be a healthy replica seen by a majority, or none is chosen
 * ("eu-west-1: synchronous standby unavailable (it may hold acknowledged writes)", said alone).
 * The highest LSN among them then holds every acknowledged write. Only an operator's forced
 * failover (which does not come through here) goes past this.
 */
int afc_select_candidate(const struct afc_state *s, const struct afc_decide_config *cfg,
                         const char *exclude, char *why, unsigned why_cap);

/*
 * The candidate's last check before it reports FENCED: does another replica hold WAL it lacks?
 * The leader ranked the candidates on observations that may be seconds old (LSNs are refreshed
 * every few seconds); once a replica has stopped streaming from the old primary, its receive LSN
 * cannot grow, and its coordinator reports it at once (the upstream changed). Only members that
 * could be chosen instead count (as afc_select_candidate's first filter: a healthy replica by its
 * own report, seen healthy by a majority, not nofailover, not drained) — otherwise the candidate
 * would abort in favour of a replica the leader can never choose, and the leader would choose it
 * again. For each such member other than `self` and `from`: if its reported LSN is above
 * own_lsn, it counts (an LSN only grows); if it still streams from `from`, *waiting is set (its
 * LSN may still grow: ask again). Returns the member with the most WAL above own_lsn, or -1 when
 * no such replica is known to have more than the candidate.
 */
int afc_more_wal_elsewhere(const struct afc_state *s, const struct afc_decide_config *cfg,
                           const char *self, const char *from, uint64_t own_lsn, bool *waiting);

/* Does the sync rule restrict candidates now: sync_mode, and the committed set is active. */
bool afc_sync_rule_applies(const struct afc_state *s, const struct afc_decide_config *cfg);

/*
 * ---- the synchronous standby set of the primary (coordinator/syncplan.c, pure) ----
 *
 * The primary's coordinator polls its PostgreSQL (coordinator/syncrep.c) and asks afc_sync_plan()
 * for one next step at a time; it commits or applies that step, waits for it to complete, polls
 * again and asks again, until the plan says NONE.
 */

/* What the primary's own PostgreSQL says (pg_stat_replication, synchronous_standby_names). */
struct afc_sync_live {
    bool named[AFC_FO_MEMBERS];     /* synchronous_standby_names names this member (state order) */
    bool active;                    /* synchronous_standby_names is not empty */
    bool exact;                     /* it is exactly what the coordinator writes for `named` */
    bool streaming[AFC_FO_MEMBERS]; /* a walsender is streaming to this member */
    uint64_t flush_lsn[AFC_FO_MEMBERS]; /* its flush_lsn there */
    uint64_t current_lsn;               /* pg_current_wal_lsn() */
};

struct afc_sync_input {
    const struct afc_state *state; /* the committed state (record: state->sync) */
    unsigned self;                 /* member index of the primary (this region) */
    bool strict;                   /* replication.sync_strict */
    bool excluded[AFC_FO_MEMBERS]; /* never a synchronous standby: nofailover, no PostgreSQL */
    /* awaited[j]: this node's PostgreSQL became primary moments ago (a promotion, a restart) and
     * member j has not streamed from it since: while it is a healthy replica by its own report
     * it counts as attached (it is still re-pointing or reconnecting), and as long as one such
     * member may come, a non-strict primary waits for it rather than go asynchronous */
    bool awaited[AFC_FO_MEMBERS];
    const struct afc_sync_live *live;
    uint64_t ref_lsn; /* current LSN when PostgreSQL's set last shrank; 0 = unknown */
};

enum afc_sync_step {
    AFC_SYNC_NONE = 0, /* converged: the record and PostgreSQL say the same */
    AFC_SYNC_COMMIT,   /* commit sync-set {active, standby} first */
    AFC_SYNC_APPLY,    /* ALTER SYSTEM SET synchronous_standby_names to `standby` (or '') */
    AFC_SYNC_WAIT,     /* a remaining standby must flush past need_lsn before the record shrinks;
                          or (non-strict, in grace) no standby has attached yet */
};

struct afc_sync_plan {
    enum afc_sync_step step;
    bool active;                  /* COMMIT: the record's flag; APPLY: false = '' (asynchronous) */
    bool standby[AFC_FO_MEMBERS]; /* COMMIT: the record's set; APPLY: PostgreSQL's */
    bool target[AFC_FO_MEMBERS];  /* where it is heading: the standbys that are attached */
    bool degraded;                /* non-strict, no standby attached: heading for asynchronous */
    bool blocking;                /* strict, no standby attached: commits wait for one */
    uint64_t need_lsn;            /* WAIT: the flush LSN a remaining standby must reach */
    char why[128];                /* for logs and events */
};

/*
 * The one next step towards: PostgreSQL waits on ANY 1 of the attached standbys — members other
 * than self, not excluded, not drained, not reported down by a majority of observers, streaming
 * from us (or awaited and a healthy replica by their own report) — and the committed record names
 * exactly those. When none is attached: strict keeps (or sets) every possible standby, so commits
 * wait; non-strict falls back to asynchronous replication, commit first (unless a member not
 * reported down is still awaited: then it waits).
 * Ordering (what makes "zero acknowledged-write loss" hold): the record grows (COMMIT) before
 * PostgreSQL's set does (APPLY); PostgreSQL's set shrinks (APPLY) before the record does, and the
 * record shrinks only once an attached standby has flushed past the LSN at that change (ref_lsn,
 * or live->current_lsn when unknown: then need_lsn says which to remember). Going asynchronous is
 * committed before PostgreSQL stops waiting; coming back, the record is committed before
 * PostgreSQL waits again. A record of another region or epoch (the predecessor's) is replaced by
 * this primary's own. Pure; fills *out.
 */
void afc_sync_plan(const struct afc_sync_input *in, struct afc_sync_plan *out);

/*
 * What-if for `aragoractl plan --assume-dead R`: the decision afc_decide() would make if R's
 * PostgreSQL were reported down by every observer and its lease had long expired. Copies
 * in->state into the caller's `scratch` (borrowed, overwritten: struct afc_state is large, so it
 * is not put on the stack here), marks obs[*][R] valid and unhealthy, sets lease_applied_ms far in
 * the past and now_ms past the lease deadline, and runs afc_decide into *out. Pure; acts on
 * nothing. Returns 0, or AFC_EUNKNOWNMEMBER if R is not a member (then *out is untouched).
 */
int afc_decide_assume_dead(const struct afc_decide_input *in, const char *region,
                           struct afc_state *scratch, struct afc_decision *out);

#endif
