/*
 * The failover agent (coordinator/agent.h).
 *
 * One 100 ms tick drives everything that is not a callback: retrying observation reports that did
 * not reach the leader, renewing the lease, checking whether the local PostgreSQL must be fenced,
 * keeping the primary's synchronous standbys (sync mode, syncrep.c), and — on the ready leader —
 * running the decision core. Probe results arrive through the prober's `changed` callback; lease
 * renewals are confirmed by watching the applied state.
 *
 * Lifetime: the agent's memory lives until afc_agent_free() after the loop has ended, because a
 * report proposed locally completes only when the node closes, after the agent has stopped; its
 * callbacks then see `stopping` and do nothing.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "afc/log.h"
#include "afc/pg_probe.h"
#include "afc/run.h"
#include "coordinator/agent.h"
#include "coordinator/daemon.h"
#include "coordinator/delivery.h"
#include "coordinator/fence.h"
#include "coordinator/executor.h"
#include "coordinator/faultpoints.h"
#include "coordinator/report.h"
#include "coordinator/syncrep.h"

#define TICK_MS      100
#define RENEW_RING   64
#define STOP_TIMEOUT 60000 /* pg_ctl stop -m fast */
/* While the executor restarts our authorized primary, keep renewing for at most this long; then
 * the lease runs out and the cluster fails over as for a dead region. */
#define RESTART_GRACE_MS 10000

struct obs_slot {
    struct afc_agent *a;
    unsigned target; /* prober index */
    int member;      /* config member index */
    uint64_t gen;    /* bumped on every change */
    uint64_t sent_gen;
    bool dirty; /* the latest change is not committed yet */
    bool in_flight;
};

struct afc_agent {
    struct afc_daemon *d;
    struct afc_pg_prober *prober;
    unsigned n_targets;
    int self_target; /* prober index of our own region, -1 if not probed */
    struct obs_slot slots[AFC_MAX_MEMBERS];
    uv_timer_t tick;
    bool stopping;
    bool tick_closed, prober_stopped;
    void (*stop_cb)(struct afc_daemon *d);
    uint64_t obs_seq; /* last observation sequence number used (seeded from the wall clock) */
    /* lease (§4.2) */
    uint64_t renew_seq;
    uint64_t renew_sent_ms[RENEW_RING];
    uint64_t next_renew_ms;
    uint64_t lease_valid_until_ms;
    uint64_t lease_seq_seen;
    afc_epoch lease_epoch;
    uint64_t start_last_index; /* the last index of this node's log when this run started */
    /* fencing */
    bool fence_running;
    afc_epoch fenced_epoch;
    uint64_t next_fence_ms; /* after a failed stop, try again no sooner than this */
    /* leader */
    uint64_t ready_since_ms;
    bool decide_in_flight;
    struct afc_propose decide_req;
    char refused[AFC_DETAIL_MAX];
    struct afc_executor exec;
    struct afc_fence *dbfence; /* the in-database fence, NULL when postgres.fence is off */
    struct afc_syncrep sync;   /* replication.mode: sync: our synchronous standbys (syncrep.h) */
    bool local_dead; /* we gave up restarting our authorized primary (reported to the leader) */
};

static uint64_t now_ms(const struct afc_agent *a)
{
    return uv_now(a->d->loop);
}

static const struct afc_state *state_of(const struct afc_agent *a)
{
    return afc_node_state(&a->d->node);
}

static void cmd_init(const struct afc_agent *a, struct afc_cmd *cmd, enum afc_op op)
{
    afc_cmd_start(cmd, op, a->d->cfg.region);
}

/* ---- observations ---- */

/* The sequence number of our next report on `target`: above every one this run used, and above
 * the last one committed from us (a previous run whose clock ran ahead of ours). */
static uint64_t next_obs_seq(struct afc_agent *a, const char *target)
{
    const struct afc_state *s = state_of(a);
    uint64_t seq = a->obs_seq + 1;
    int i = -1, j = -1;
    for (unsigned k = 0; k < s->n_members && k < AFC_MAX_MEMBERS; k++) {
        i = strcmp(s->members[k].name, a->d->cfg.region) == 0 ? (int)k : i;
        j = strcmp(s->members[k].name, target) == 0 ? (int)k : j;
    }
    if (i >= 0 && j >= 0 && s->obs[i][j].valid && s->obs[i][j].seq >= seq) {
        seq = s->obs[i][j].seq + 1;
    }
    a->obs_seq = seq;
    return seq;
}

static void try_report(struct obs_slot *s);

static void obs_report_cb(void *data, int status, enum afc_apply_result result)
{
    struct obs_slot *s = data;
    s->in_flight = false;
    if (s->a->stopping) {
        return;
    }
    if (status == 0 && s->sent_gen == s->gen) {
        s->dirty = false;
    } else if (status != 0) {
        afc_debug("observation of %s not committed yet (%s); will retry",
                  s->a->d->cfg.members[s->member].name, afc_strerror(status));
    }
    (void)result;
}

static void try_report(struct obs_slot *s)
{
    struct afc_agent *a = s->a;
    const struct afc_pg_obs *obs = afc_pg_prober_obs(a->prober, s->target);
    if (s->in_flight || !s->dirty || obs == NULL || !obs->valid) {
        return;
    }
    struct afc_cmd cmd;
    cmd_init(a, &cmd, AFC_OP_OBSERVE);
    snprintf(cmd.u.observe.observer, AFC_NAME_MAX, "%s", a->d->cfg.region);
    snprintf(cmd.u.observe.target, AFC_NAME_MAX, "%s", a->d->cfg.members[s->member].name);
    cmd.u.observe.obs = *obs;
    cmd.u.observe.obs.wall_ms = cmd.wall_ms;
    cmd.u.observe.obs.seq = next_obs_seq(a, cmd.u.observe.target);
    if ((int)s->target == a->self_target) {
        cmd.u.observe.obs.local_dead = a->local_dead; /* our own verdict on our PostgreSQL */
    }
    s->sent_gen = s->gen;
    if (afc_report_send(a->d, &cmd, obs_report_cb, s) == 0) {
        s->in_flight = true;
    }
}

static void changed_cb(void *data, unsigned index, const struct afc_pg_obs *obs)
{
    struct afc_agent *a = data;
    (void)obs;
    if (index >= a->n_targets || a->stopping) {
        return;
    }
    a->slots[index].gen++;
    a->slots[index].dirty = true;
    try_report(&a->slots[index]);
}

/* ---- the lease ---- */

static bool is_authorized_primary(const struct afc_agent *a)
{
    const struct afc_state *s = state_of(a);
    return s->epoch > 0 && strcmp(s->primary, a->d->cfg.region) == 0;
}

static const struct afc_pg_obs *local_obs(const struct afc_agent *a)
{
    return a->self_target >= 0 ? afc_pg_prober_obs(a->prober, (unsigned)a->self_target) : NULL;
}

static bool local_is_primary(const struct afc_agent *a)
{
    const struct afc_pg_obs *o = local_obs(a);
    return o != NULL && o->valid && o->healthy && o->role == AFC_PG_PRIMARY;
}

static void renew_cb(void *data, int status, enum afc_apply_result result)
{
    (void)data;
    if (status != 0 || result != AFC_APPLY_OK) {
        afc_debug("lease renewal not applied: %s / %s", afc_strerror(status),
                  afc_apply_result_name(result));
    }
}

static bool restarting_in_grace(const struct afc_agent *a)
{
    uint64_t since = a->exec.restarting_since_ms;
    return since != 0 && now_ms(a) - since < RESTART_GRACE_MS;
}

/* A newly authorized epoch (adoption, or this region promoted): no renewal of it has been applied
 * yet. Grant lease - margin from now, when this node first sees it, and renew at once. The leader
 * counts the same lease from its own apply of the authorization (state.c), which happened no
 * later than ours: so ours ends first as long as the apply gap stays under 2 × margin. */
static void notice_authorization(struct afc_agent *a)
{
    const struct afc_state *s = state_of(a);
    if (!is_authorized_primary(a) || a->lease_epoch == s->epoch) {
        return;
    }
    const struct afc_config *c = &a->d->cfg;
    a->lease_epoch = s->epoch;
    if (s->applied_index <= a->start_last_index) {
        /* replayed from this node's own log: not an authorization this run saw happen (§5: a
         * coordinator that restarts holds no lease, and its database's fence stays closed,
         * until a renewal it sent itself has been applied) */
        a->next_renew_ms = now_ms(a);
        return;
    }
    a->lease_valid_until_ms =
        now_ms(a) + c->lease_ms - (c->margin_ms < c->lease_ms ? c->margin_ms : 0);
    a->next_renew_ms = now_ms(a);
    afc_fence_renew(a->dbfence, s->epoch, a->lease_valid_until_ms);
}

/* This region is the candidate of the failover in progress: authorized already, its PostgreSQL
 * still a replica until pg_promote. It must hold the lease through the promotion, or the grace of
 * a slow promotion (a leader election in between) would run out and it would fence itself the
 * moment it became primary. */
static bool being_promoted(const struct afc_agent *a)
{
    const struct afc_failover *f = &state_of(a)->failover;
    return !afc_fo_step_is_final(f->step) && f->epoch == state_of(a)->epoch &&
           strcmp(f->to, a->d->cfg.region) == 0;
}

static bool local_may_write(const struct afc_agent *a);

/* Our authorized primary is stopped (fenced by us, or dead) and no failover is under way: ask
 * for the lease again; once a renewal is applied the executor may start it as primary. */
static bool stopped_but_authorized(const struct afc_agent *a)
{
    const struct afc_pg_obs *o = local_obs(a);
    /* Only until restarting it has used up the grace: a PostgreSQL that cannot be restarted must
     * let the lease lapse so that the cluster fails over (a renewed lease would block that). */
    uint64_t since = a->exec.restarting_since_ms;
    bool gave_up = a->local_dead || (since != 0 && now_ms(a) - since >= RESTART_GRACE_MS);
    return !gave_up && afc_fo_step_is_final(state_of(a)->failover.step) && o != NULL && o->valid &&
           !local_may_write(a);
}

static void maybe_renew(struct afc_agent *a)
{
    const struct afc_state *s = state_of(a);
    if (!is_authorized_primary(a) ||
        (!local_is_primary(a) && !restarting_in_grace(a) && !being_promoted(a) &&
         !stopped_but_authorized(a)) ||
        now_ms(a) < a->next_renew_ms) {
        return;
    }
    a->next_renew_ms = now_ms(a) + a->d->cfg.lease_renew_ms;
    struct afc_cmd cmd;
    cmd_init(a, &cmd, AFC_OP_RENEW);
    snprintf(cmd.u.renew.region, AFC_NAME_MAX, "%s", a->d->cfg.region);
    cmd.u.renew.epoch = s->epoch;
    if (strcmp(s->lease.region, a->d->cfg.region) == 0 && s->lease.epoch == s->epoch &&
        s->lease.seq > a->renew_seq) {
        a->renew_seq = s->lease.seq; /* a previous run's clock was ahead: stay above its seqs */
    }
    cmd.u.renew.seq = ++a->renew_seq;
    /* §4.2: the lease counts from when the renewal was *sent*, so record that now */
    a->renew_sent_ms[a->renew_seq % RENEW_RING] = now_ms(a);
    afc_report_send(a->d, &cmd, renew_cb, NULL);
}

void afc_agent_applied(struct afc_daemon *d)
{
    struct afc_agent *a = d->agent;
    if (a == NULL) {
        return;
    }
    const struct afc_state *s = state_of(a);
    if (strcmp(s->lease.region, d->cfg.region) != 0 || s->lease.epoch != s->epoch ||
        s->lease.seq == a->lease_seq_seen) {
        return;
    }
    a->lease_seq_seen = s->lease.seq;
    /* only our own renewals of this run: the send time is known for the last RENEW_RING */
    if (s->lease.seq == 0 || s->lease.seq > a->renew_seq ||
        a->renew_seq - s->lease.seq >= RENEW_RING) {
        return;
    }
    uint64_t until = a->renew_sent_ms[s->lease.seq % RENEW_RING] + d->cfg.lease_ms;
    if (until > a->lease_valid_until_ms || a->lease_epoch != s->epoch) {
        a->lease_valid_until_ms = until;
        a->lease_epoch = s->epoch;
        /* the database's own fence ends with the lease, never later (docs/fencing.md) */
        afc_fence_renew(a->dbfence, s->epoch, until);
    }
}

bool afc_agent_lease(const struct afc_daemon *d, int64_t *remaining_ms)
{
    const struct afc_agent *a = d->agent;
    if (a == NULL || !is_authorized_primary(a) || a->lease_epoch != state_of(a)->epoch) {
        *remaining_ms = 0;
        return false;
    }
    *remaining_ms = (int64_t)a->lease_valid_until_ms - (int64_t)now_ms(a);
    return *remaining_ms > 0;
}

/* ---- fencing: our PostgreSQL runs as primary without the right to (§4.2, §4.3 layer 1) ---- */

/* Tell the leader at once that our PostgreSQL is down, instead of waiting for the probe's fall
 * count: in a switchover the candidate waits for exactly this before it detaches. */
static void report_stopped(struct afc_agent *a)
{
    const struct afc_pg_obs *o = local_obs(a);
    if (o == NULL) {
        return;
    }
    struct afc_cmd cmd;
    cmd_init(a, &cmd, AFC_OP_OBSERVE);
    snprintf(cmd.u.observe.observer, AFC_NAME_MAX, "%s", a->d->cfg.region);
    snprintf(cmd.u.observe.target, AFC_NAME_MAX, "%s", a->d->cfg.region);
    cmd.u.observe.obs = *o;
    cmd.u.observe.obs.valid = true;
    cmd.u.observe.obs.healthy = false;
    cmd.u.observe.obs.upstream[0] = '\0';
    cmd.u.observe.obs.wall_ms = cmd.wall_ms;
    cmd.u.observe.obs.seq = next_obs_seq(a, cmd.u.observe.target);
    afc_report_send(a->d, &cmd, NULL, NULL); /* best effort: the probe reports it too */
}

static void fence_done_cb(struct afc_run *run, const struct afc_run_result *res, void *data)
{
    struct afc_agent *a = data;
    char how[96];
    (void)run;
    a->fence_running = false;
    afc_run_describe(res, how, sizeof how);
    if (res->term_signal == 0 && res->exit_status == 0) {
        afc_event("fenced", "region=%s epoch=%" PRIu64 " how=pg_ctl-stop-fast", a->d->cfg.region,
                  a->fenced_epoch);
        /* the probe needs a few rounds (fall) to see it stopped: do not stop it twice */
        a->next_fence_ms = now_ms(a) + 5000;
        report_stopped(a);
    } else {
        afc_error("while fencing %s: pg_ctl stop: %s: %s", a->d->cfg.region, how, res->output);
        a->next_fence_ms = now_ms(a) + 2000;
    }
}

static void fence(struct afc_agent *a, const char *why)
{
    const struct afc_config *c = &a->d->cfg;
    char pg_ctl[AFC_PATH_MAX + 16];
    snprintf(pg_ctl, sizeof pg_ctl, "%s/pg_ctl", c->pg_bin_dir);
    const char *argv[] = {pg_ctl, "stop", "-D", c->pg_data_dir, "-m", "fast", "-w", NULL};
    struct afc_run_options opt = {.argv = argv, .run_as = c->pg_run_as, .timeout_ms = STOP_TIMEOUT};
    struct afc_err err = {0};
    a->fenced_epoch = state_of(a)->epoch;
    afc_event("fencing", "region=%s epoch=%" PRIu64 " reason=%s", c->region, a->fenced_epoch, why);
    if (!is_authorized_primary(a)) {
        /* deposed: close the database's fence at once (it refuses writes even before the stop
         * completes) and refuse renewals of this epoch; an expired lease closed it already */
        afc_fence_shut(a->dbfence, a->fenced_epoch);
    }
    if (afc_run_start(a->d->loop, &opt, fence_done_cb, a, NULL, &err) == 0) {
        a->fence_running = true;
    } else {
        afc_error("while fencing %s: %s", c->region, err.msg);
    }
}

/* Might our PostgreSQL be accepting writes? Judged on its last known role, not on health: a
 * primary that fails our probe (a changed password, too many clients, a slow disk) may still
 * commit for its pooled sessions. Only "nothing listens" proves it is not running — and an
 * answer saying "in recovery" proves it is a replica right now, even before the hysteresis has
 * caught up (a PostgreSQL the executor just started as a replica after a rewind must not be
 * fenced for the role it had before). */
static bool local_may_write(const struct afc_agent *a)
{
    const struct afc_pg_obs *o = local_obs(a);
    if (o == NULL || !o->valid || o->role != AFC_PG_PRIMARY) {
        return false;
    }
    unsigned self = (unsigned)a->self_target;
    const struct afc_pg_sample *now = afc_pg_prober_last_sample(a->prober, self);
    if (now != NULL && now->reason == AFC_PG_OK) {
        return now->role == AFC_PG_PRIMARY;
    }
    return !(afc_pg_prober_failing(a->prober, self) > 0 &&
             afc_pg_prober_last_reason(a->prober, self) == AFC_PG_L4_REFUSED);
}

static void maybe_fence(struct afc_agent *a)
{
    const struct afc_state *s = state_of(a);
    if (a->d->cfg.pg_data_dir[0] == '\0' || a->fence_running || s->epoch == 0 ||
        now_ms(a) < a->next_fence_ms || !local_may_write(a)) {
        return;
    }
    if (!is_authorized_primary(a)) {
        fence(a, "not-authorized");
    } else if (now_ms(a) >= a->lease_valid_until_ms) {
        fence(a, "lease-expired");
    }
}

/* ---- the leader's decisions ---- */

static void decide_config(const struct afc_daemon *d, struct afc_decide_config *c)
{
    const struct afc_state *s = afc_node_state(&d->node);
    memset(c, 0, sizeof *c);
    c->lease_ms = d->cfg.lease_ms;
    c->margin_ms = d->cfg.margin_ms;
    c->max_lag_bytes = d->cfg.max_lag_bytes;
    c->cooldown_ms = d->cfg.failover_cooldown_ms;
    c->sync_mode = d->cfg.repl_mode == AFC_REPL_SYNC;
    c->db_fence = d->cfg.pg_fence;
    c->n_members = s->n_members;
    for (unsigned i = 0; i < s->n_members && i < AFC_MAX_MEMBERS; i++) {
        c->priority[i] = 100;
        for (unsigned j = 0; j < d->cfg.n_members; j++) {
            if (strcmp(d->cfg.members[j].name, s->members[i].name) == 0) {
                c->priority[i] = (int)d->cfg.members[j].priority;
                c->nofailover[i] = d->cfg.members[j].nofailover;
            }
        }
    }
}

/* When the cooldown counts from: this node's apply of the last failover-begin; an aborted one
 * does not count; unknown (0, after a restart or a snapshot) counts from becoming ready leader. */
static uint64_t cooldown_base(const struct afc_daemon *d, const struct afc_state *s,
                              const struct afc_agent *a)
{
    if (s->failover.step == AFC_FO_NONE || s->failover.step == AFC_FO_ABORTED) {
        return 0;
    }
    uint64_t applied = d->node.fsm.failover_applied_ms;
    return applied != 0 ? applied : (a != NULL ? a->ready_since_ms : 0);
}

void afc_agent_decide_input(const struct afc_daemon *d, struct afc_decide_input *in,
                            struct afc_decide_config *cfg)
{
    const struct afc_agent *a = d->agent;
    const struct afc_state *s = afc_node_state(&d->node);
    decide_config(d, cfg);
    *in = (struct afc_decide_input){
        .state = s,
        .cfg = cfg,
        .leader_ready = afc_node_is_ready(&d->node),
        .now_ms = uv_now(d->loop),
        .lease_applied_ms = d->node.fsm.lease_applied_ms,
        .ready_since_ms = a != NULL ? a->ready_since_ms : 0,
        /* from the replicated decision's apply time here, so a new leader keeps the cooldown;
         * an aborted failover established no new primary: it does not start the cooldown */
        .last_failover_ms = cooldown_base(d, s, a),
    };
    for (unsigned i = 0; i < s->n_members && i < AFC_MAX_MEMBERS; i++) {
        in->coordinator_lost[i] = !afc_node_member_heard(&d->node, s->members[i].id);
    }
}

void afc_agent_decide(const struct afc_daemon *d, struct afc_decision *out)
{
    struct afc_decide_config c;
    struct afc_decide_input in;
    afc_agent_decide_input(d, &in, &c);
    afc_decide(&in, out);
}

static void decide_done_cb(struct afc_propose *p, int status, enum afc_apply_result result)
{
    struct afc_agent *a = p->data;
    a->decide_in_flight = false;
    if (status != 0 || (result != AFC_APPLY_OK && result != AFC_APPLY_NOOP)) {
        afc_warn("decision not applied: %s / %s", afc_strerror(status),
                 afc_apply_result_name(result));
    }
    if (status == 0 && result == AFC_APPLY_OK && state_of(a)->failover.step == AFC_FO_DECIDED &&
        afc_fault_hit("crash-after-decide")) {
        _exit(AFC_FAULT_EXIT); /* a crash right after the commit: no cleanup (test builds) */
    }
}

static void propose_decision(struct afc_agent *a, const struct afc_cmd *cmd)
{
    a->decide_req.data = a;
    if (afc_node_propose(&a->d->node, &a->decide_req, cmd, decide_done_cb) == 0) {
        a->decide_in_flight = true;
    }
}

static void act_adopt(struct afc_agent *a, const struct afc_decision *dec)
{
    struct afc_cmd cmd;
    cmd_init(a, &cmd, AFC_OP_PROMOTE);
    snprintf(cmd.u.promote.region, AFC_NAME_MAX, "%s", dec->to);
    cmd.u.promote.expect_epoch = 0;
    snprintf(cmd.u.promote.reason, sizeof cmd.u.promote.reason, "%s", "adopted running primary");
    afc_event("adopting", "region=%s", dec->to);
    propose_decision(a, &cmd);
}

static uint64_t last_known_lsn(const struct afc_state *s, const char *region)
{
    uint64_t best = 0;
    for (unsigned j = 0; j < s->n_members && j < AFC_MAX_MEMBERS; j++) {
        if (strcmp(s->members[j].name, region) != 0) {
            continue;
        }
        for (unsigned i = 0; i < s->n_members && i < AFC_MAX_MEMBERS; i++) {
            best = s->obs[i][j].valid && s->obs[i][j].lsn > best ? s->obs[i][j].lsn : best;
        }
    }
    return best;
}

static void act_begin(struct afc_agent *a, const struct afc_decision *dec)
{
    struct afc_cmd cmd;
    cmd_init(a, &cmd, AFC_OP_FAILOVER_BEGIN);
    cmd.u.failover_begin.expect_epoch = dec->expect_epoch;
    snprintf(cmd.u.failover_begin.from, AFC_NAME_MAX, "%s", dec->from);
    snprintf(cmd.u.failover_begin.to, AFC_NAME_MAX, "%s", dec->to);
    snprintf(cmd.u.failover_begin.reason, sizeof cmd.u.failover_begin.reason, "%s", dec->reason);
    cmd.u.failover_begin.detected_ms = cmd.wall_ms;
    cmd.u.failover_begin.old_lsn = last_known_lsn(state_of(a), dec->from);
    cmd.u.failover_begin.term = afc_node_term(&a->d->node);
    propose_decision(a, &cmd);
}

static void leader_tick(struct afc_agent *a)
{
    if (!afc_node_is_ready(&a->d->node) || a->decide_in_flight) {
        return;
    }
    struct afc_decision dec;
    afc_agent_decide(a->d, &dec);
    switch (dec.action) {
    case AFC_ACT_ADOPT:
        act_adopt(a, &dec);
        break;
    case AFC_ACT_BEGIN_FAILOVER:
        act_begin(a, &dec);
        break;
    case AFC_ACT_REFUSE_ADOPT:
        if (strcmp(a->refused, dec.reason) != 0) {
            snprintf(a->refused, sizeof a->refused, "%s", dec.reason);
            afc_event("adopt-refused", "reason=\"%s\"", dec.reason);
        }
        break;
    case AFC_ACT_NONE:
        break;
    }
}

void afc_agent_role_changed(struct afc_daemon *d, bool ready)
{
    struct afc_agent *a = d->agent;
    if (a != NULL && ready) {
        a->ready_since_ms = uv_now(d->loop);
    }
}

/* ---- our own PostgreSQL, declared dead ---- */

/* §4.4: "or its own coordinator reports it dead after a bounded local restart attempt". Once
 * restarting our authorized primary has gone on longer than the grace (renewals have stopped
 * then), say so in our observation of it; take it back when it is healthy again. */
static void update_local_dead(struct afc_agent *a)
{
    const struct afc_pg_obs *o = local_obs(a);
    uint64_t since = a->exec.restarting_since_ms;
    bool dead = since != 0 && now_ms(a) - since >= RESTART_GRACE_MS &&
                !(o != NULL && o->valid && o->healthy);
    if (dead == a->local_dead || a->self_target < 0) {
        return;
    }
    a->local_dead = dead;
    if (dead) {
        afc_event("pg-dead", "region=%s restarting for %llu ms", a->d->cfg.region,
                  (unsigned long long)(now_ms(a) - since));
    }
    struct obs_slot *s = &a->slots[a->self_target];
    s->gen++;
    s->dirty = true;
    try_report(s);
}

/* ---- synchronous replication (replication.mode: sync) ---- */

/* We keep the synchronous standby set while our PostgreSQL is the primary with the right to be:
 * authorized, holding the lease, running as primary, not being fenced. */
static bool sync_managing(const struct afc_agent *a)
{
    int64_t left;
    return a->d->cfg.repl_mode == AFC_REPL_SYNC && a->d->cfg.database_url[0] != '\0' &&
           !a->fence_running && is_authorized_primary(a) && local_is_primary(a) &&
           afc_agent_lease(a->d, &left);
}

/* ---- the tick ---- */

static void tick_cb(uv_timer_t *t)
{
    struct afc_agent *a = t->data;
    if (a->stopping) {
        return;
    }
    for (unsigned i = 0; i < a->n_targets; i++) {
        try_report(&a->slots[i]);
    }
    notice_authorization(a);
    update_local_dead(a);
    maybe_renew(a);
    maybe_fence(a);
    leader_tick(a);
    unsigned self = (unsigned)a->self_target;
    bool refused = a->self_target >= 0 && afc_pg_prober_failing(a->prober, self) > 0 &&
                   afc_pg_prober_last_reason(a->prober, self) == AFC_PG_L4_REFUSED;
    int64_t left;
    a->exec.fencing = a->fence_running;
    afc_executor_tick(&a->exec, local_obs(a), refused, afc_agent_lease(a->d, &left));
    afc_syncrep_tick(&a->sync, sync_managing(a));
    afc_delivery_tick(a->d);
}

/* ---- start / stop ---- */

static int start_prober(struct afc_agent *a, struct afc_err *err)
{
    const struct afc_config *c = &a->d->cfg;
    struct afc_pg_target targets[AFC_MAX_MEMBERS];
    struct afc_pg_probe_config pc;
    afc_pg_probe_config_default(&pc);
    pc.hyst.rise = c->probe_rise;
    pc.hyst.fall = c->probe_fall;
    for (unsigned i = 0; i < c->n_members; i++) {
        if (c->members[i].postgres[0] == '\0') {
            continue;
        }
        bool self = strcmp(c->members[i].name, c->region) == 0;
        unsigned k = a->n_targets++;
        targets[k] = (struct afc_pg_target){
            .name = c->members[i].name,
            .conninfo = c->members[i].postgres,
            .interval_ms = self ? c->probe_local_ms : c->probe_remote_ms,
        };
        a->slots[k] = (struct obs_slot){.a = a, .target = k, .member = (int)i};
        a->self_target = self ? (int)k : a->self_target;
    }
    if (a->n_targets == 0) {
        return 0;
    }
    int rv =
        afc_pg_prober_new(a->d->loop, targets, a->n_targets, &pc, changed_cb, a, &a->prober, err);
    return rv != 0 ? rv : afc_pg_prober_start(a->prober);
}

int afc_agent_start(struct afc_daemon *d, struct afc_err *err)
{
    struct afc_agent *a = calloc(1, sizeof *a);
    if (a == NULL) {
        return afc_err_set(err, AFC_ENOMEM, "agent: out of memory");
    }
    a->d = d;
    a->self_target = -1;
    a->dbfence = afc_fence_new(d);
    afc_executor_init(&a->exec, d);
    afc_syncrep_init(&a->sync, d);
    /* No lease at start: the state on disk may be stale (the others may have failed over while
     * this process was down), so the epoch found there is not one this process saw authorized.
     * A primary found running is fenced until a renewal sent by this run has been applied. */
    a->lease_valid_until_ms = 0;
    a->lease_epoch = afc_node_state(&d->node)->epoch;
    /* The same for an authorization the node applies later but that its log already held: a
     * restarted follower applies its own old entries as soon as it learns the commit index, and
     * only then fetches the newer ones (a failover, perhaps) - one round trip of stale state. */
    a->start_last_index = afc_node_last_index(&d->node);
    a->renew_seq = (uint64_t)afc_wall_now_ms(); /* never reuse a previous run's sequence numbers */
    a->obs_seq = a->renew_seq;
    d->agent = a;
    int rv = start_prober(a, err);
    if (rv != 0) {
        return rv;
    }
    uv_timer_init(d->loop, &a->tick);
    a->tick.data = a;
    uv_timer_start(&a->tick, tick_cb, TICK_MS, TICK_MS);
    return 0;
}

static void maybe_stopped(struct afc_agent *a)
{
    if (a->tick_closed && a->prober_stopped && a->stop_cb != NULL) {
        void (*cb)(struct afc_daemon *) = a->stop_cb;
        a->stop_cb = NULL;
        cb(a->d);
    }
}

static void tick_closed_cb(uv_handle_t *h)
{
    struct afc_agent *a = h->data;
    a->tick_closed = true;
    maybe_stopped(a);
}

static void prober_stopped_cb(void *data)
{
    struct afc_agent *a = data;
    a->prober = NULL;
    a->prober_stopped = true;
    maybe_stopped(a);
}

void afc_agent_stop(struct afc_daemon *d, void (*cb)(struct afc_daemon *d))
{
    struct afc_agent *a = d->agent;
    if (a == NULL || a->stopping) {
        cb(d);
        return;
    }
    a->stopping = true;
    a->stop_cb = cb;
    afc_executor_stop(&a->exec);
    afc_syncrep_stop(&a->sync);
    afc_fence_free(a->dbfence); /* a statement still running completes on its own */
    a->dbfence = NULL;
    if (a->tick.loop != NULL) { /* initialised (start got that far) */
        uv_close((uv_handle_t *)&a->tick, tick_closed_cb);
    } else {
        a->tick_closed = true;
    }
    if (a->prober != NULL) {
        afc_pg_prober_stop(a->prober, prober_stopped_cb, a);
    } else {
        a->prober_stopped = true;
    }
    maybe_stopped(a);
}

void afc_agent_free(struct afc_daemon *d)
{
    free(d->agent);
    d->agent = NULL;
}

const struct afc_pg_obs *afc_agent_obs(const struct afc_daemon *d, unsigned member)
{
    const struct afc_agent *a = d->agent;
    if (a == NULL || a->prober == NULL) {
        return NULL;
    }
    for (unsigned k = 0; k < a->n_targets; k++) {
        if (a->slots[k].member == (int)member) {
            return afc_pg_prober_obs(a->prober, k);
        }
    }
    return NULL;
}

json_t *afc_agent_fence_json(const struct afc_daemon *d)
{
    return afc_fence_json(d->agent != NULL ? d->agent->dbfence : NULL);
}

json_t *afc_agent_sync_json(const struct afc_daemon *d)
{
    return afc_syncrep_json(d->agent != NULL ? &d->agent->sync : NULL);
}
