/*
 * Executing the failover steps (ARCHITECTURE.md §5).
 *
 * Called from the agent's tick. Each node looks at the committed failover record and its own
 * role in it, and runs at most one external action at a time (psql, pg_ctl, pg_rewind through
 * afc_run, so the loop never blocks). Every action is idempotent and keyed by the failover's
 * epoch; progress is reported through the log (report.c), so a new leader, or this node after a
 * restart, continues from the committed step:
 *
 *   candidate (`to`):   DECIDED  → detach from the old primary, wait (bounded) until replay has
 *                                  caught up with what was received and the other replicas have
 *                                  stopped streaming → report FENCED, or ABORTED when another
 *                                  replica has more WAL (the leader then decides again)
 *                       FENCED   → (sync mode: set synchronous_standby_names from the committed
 *                                  set first) pg_promote, create slots for the others → report
 *                                  PROMOTED (timeline, LSN); a failed promotion reports ABORTED
 *   other replicas:     DECIDED  → detach (stop following the old primary)
 *                       PROMOTED → follow the new primary (ALTER SYSTEM + reload, no restart)
 *   leader:             PROMOTED → DONE once every live replica streams from the new primary
 * Keeping this node's own PostgreSQL running, and the deposed old primary's rejoin, are in
 * executor_rejoin.c.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "afc/log.h"
#include "afc/run.h"
#include "coordinator/agent.h"
#include "coordinator/daemon.h"
#include "coordinator/delivery.h"
#include "coordinator/executor.h"
#include "coordinator/executor_internal.h"
#include "coordinator/faultpoints.h"
#include "coordinator/fence.h"
#include "coordinator/psql.h"
#include "coordinator/report.h"
#include "coordinator/syncrep.h"

#define PROMOTE_TIMEOUT_MS 70000
#define CATCHUP_MAX_MS     5000  /* candidate waits at most this for replay to catch up */
#define OLD_STOP_MAX_MS    30000 /* switchover: the old primary must have stopped by then */
#define REPOINT_RETRY_MS   10000 /* re-point again if still not streaming from the new primary */
#define DONE_AFTER_MS      15000 /* leader closes the sequence even if a replica lags behind */
/* The leader aborts a failover that makes no progress: at DECIDED the candidate only has to
 * detach and catch up; at FENCED it may be inside two pg_promote attempts (70 s each). Much
 * sooner when the candidate's coordinator has gone silent. */
#define DECIDED_DEADLINE_MS        30000
#define FENCED_DEADLINE_MS         150000
#define SILENT_DECIDED_DEADLINE_MS 5000
#define SILENT_FENCED_DEADLINE_MS  30000

/* ---- running things ---- */

static void action_done(struct afc_executor *x, enum action act, bool ok, const char *output);

void exec_run_cb(struct afc_run *run, const struct afc_run_result *res, void *data)
{
    struct afc_executor *x = data;
    (void)run;
    enum action act = x->running;
    bool ok = !res->timed_out && res->term_signal == 0 && res->exit_status == 0;
    x->running = ACT_NONE;
    if (!ok) {
        char how[96];
        afc_run_describe(res, how, sizeof how);
        afc_warn("%s: %s: %s", x->what, how, res->output);
    }
    if (!x->stopping) {
        action_done(x, act, ok, res->output);
    }
}

void exec_start_action(struct afc_executor *x, enum action act, const char *what,
                       const char *const *argv, unsigned timeout_ms)
{
    struct afc_run_options opt = {
        .argv = argv, .run_as = x->d->cfg.pg_run_as, .timeout_ms = timeout_ms};
    struct afc_err err = {0};
    snprintf(x->what, sizeof x->what, "%s", what);
    if (afc_run_start(x->d->loop, &opt, exec_run_cb, x, NULL, &err) == 0) {
        x->running = act;
    } else {
        afc_error("while %s: %s", what, err.msg);
    }
}

/* psql against the local PostgreSQL; each statement is its own -c (ALTER SYSTEM refuses to run
 * inside the implicit transaction of a multi-statement string). */
static void run_sql(struct afc_executor *x, enum action act, const char *what,
                    const char *const *stmts, unsigned timeout_ms)
{
    struct afc_psql p;
    afc_psql_build(&p, &x->d->cfg, stmts);
    exec_start_action(x, act, what, p.argv, timeout_ms);
}

/* ---- reports ---- */

static void step_report_cb(void *data, int status, enum afc_apply_result result)
{
    struct afc_executor *x = data;
    if (status != 0 || (result != AFC_APPLY_OK && result != AFC_APPLY_NOOP)) {
        afc_info("failover step report not applied (%s / %s); will retry", afc_strerror(status),
                 afc_apply_result_name(result));
        if (!x->stopping) {
            x->step_reported = AFC_FO_NONE;
        }
    }
}

/* A failover-step command from this node. */
static void step_cmd(const struct afc_executor *x, afc_epoch epoch, enum afc_fo_step step,
                     const char *detail, struct afc_cmd *cmd)
{
    afc_cmd_start(cmd, AFC_OP_FAILOVER_STEP, self_name(x));
    cmd->u.failover_step.epoch = epoch;
    cmd->u.failover_step.step = (uint8_t)step;
    snprintf(cmd->u.failover_step.detail, sizeof cmd->u.failover_step.detail, "%s", detail);
}

static void report_step(struct afc_executor *x, enum afc_fo_step step, uint32_t timeline,
                        uint64_t lsn, const char *detail)
{
    struct afc_cmd cmd;
    step_cmd(x, x->epoch, step, detail, &cmd);
    cmd.u.failover_step.timeline = timeline;
    cmd.u.failover_step.lsn = lsn;
    x->step_reported = step;
    if (afc_report_send(x->d, &cmd, step_report_cb, x) != 0) {
        x->step_reported = AFC_FO_NONE; /* no leader right now: the next tick tries again */
    }
}

/* ---- the candidate ---- */

static void detach(struct afc_executor *x, const char *why)
{
    static const char *const stmts[] = {"ALTER SYSTEM SET primary_conninfo = ''",
                                        "SELECT pg_reload_conf()", NULL};
    afc_event("detaching", "region=%s epoch=%" PRIu64 " reason=%s", self_name(x), x->epoch, why);
    run_sql(x, ACT_DETACH, "detaching from the old primary", stmts, SQL_TIMEOUT_MS);
}

/* Output: "t|f LSN" — has replay caught up with what was received, and the most WAL we have. */
static void check_catchup(struct afc_executor *x)
{
    static const char *const stmts[] = {
        "SELECT CASE WHEN coalesce(pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn(), true) "
        "THEN 't' ELSE 'f' END || ' ' || "
        "coalesce(greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text, '0/0')",
        NULL};
    run_sql(x, ACT_CATCHUP, "waiting for replay to catch up", stmts, SQL_TIMEOUT_MS);
}

/*
 * Sync mode: what this node's PostgreSQL waits on from its first commit as primary (set while it
 * is still a replica: ALTER SYSTEM works there). The committed record is still the predecessor's
 * until this node's coordinator commits its own (syncrep.c), so the set is taken from it: its
 * standbys other than this node that could be standbys (PostgreSQL, failover allowed, not
 * drained). They re-point at us right after PROMOTED; the first commits wait for one of them.
 * With none: '' (asynchronous) — or, sync_strict, a name no standby has, so commits wait until
 * the coordinator has committed and set its own standbys.
 */
static void sync_before_promote(const struct afc_executor *x, char *sql, size_t cap)
{
    const struct afc_state *s = state_of(x);
    bool set[AFC_MAX_MEMBERS] = {false}, any = false;
    char value[AFC_SYNCREP_VALUE];
    for (unsigned j = 0; j < s->n_members && j < AFC_MAX_MEMBERS; j++) {
        const struct afc_config_member *m = cfg_member(x, s->members[j].name);
        set[j] = s->sync.active && s->sync.standby[j] &&
                 strcmp(s->members[j].name, self_name(x)) != 0 && m != NULL && !m->nofailover &&
                 m->postgres[0] != '\0' && !s->drained[j];
        any = any || set[j];
    }
    afc_syncrep_format(s, NULL, any || x->d->cfg.repl_sync_strict, set, value, sizeof value);
    snprintf(sql, cap, "ALTER SYSTEM SET synchronous_standby_names = '%s'", value);
}

static void promote(struct afc_executor *x)
{
    /* With the in-database fence, armed with the new epoch before anything can commit on this
     * node as a primary (it works on a replica): the grace the agent grants a new authorization
     * (lease - margin), extended by its renewals from then on. */
    static char arm[128], sync[AFC_SYNCREP_VALUE + 64];
    const struct afc_config *c = &x->d->cfg;
    bool sync_mode = c->repl_mode == AFC_REPL_SYNC;
    afc_fence_arm_sql(x->d, x->epoch, c->lease_ms - (c->margin_ms < c->lease_ms ? c->margin_ms : 0),
                      arm, sizeof arm);
    if (sync_mode) {
        sync_before_promote(x, sync, sizeof sync);
    }
    const char *const stmts[] = {
        arm[0] != '\0' ? arm : "SELECT 1", sync_mode ? sync : "SELECT 1",
        sync_mode ? "SELECT pg_reload_conf()" : "SELECT 1",
        "SELECT CASE WHEN pg_is_in_recovery() THEN pg_promote(true, 60) ELSE true END",
        /* the timeline from the current WAL file name: exact right after the promotion */
        "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int || "
        "' ' || pg_current_wal_lsn()",
        NULL};
    if (afc_fault_hit("fail-promote")) { /* test builds: as if pg_promote had failed for good */
        report_step(x, AFC_FO_ABORTED, 0, 0, "pg_promote failed (fault point)");
        return;
    }
    x->promote_attempts++;
    afc_event("promoting", "region=%s epoch=%" PRIu64 " attempt=%u", self_name(x), x->epoch,
              x->promote_attempts);
    run_sql(x, ACT_PROMOTE, "promoting", stmts, PROMOTE_TIMEOUT_MS);
}

/* After PROMOTED, best effort: a replication slot for every other member (idempotent). A failure
 * here (max_replication_slots) must not undo the promotion; replicas then stream without one. */
static void create_slots(struct afc_executor *x)
{
    static char slots[1024];
    char one[160], name[AFC_NAME_MAX];
    const struct afc_state *s = state_of(x);
    snprintf(slots, sizeof slots,
             "SELECT count(pg_create_physical_replication_slot(n)) FROM "
             "unnest(ARRAY[''");
    for (unsigned i = 0; i < s->n_members && i < AFC_MAX_MEMBERS; i++) {
        if (strcmp(s->members[i].name, self_name(x)) != 0) {
            slot_name(s->members[i].name, name, sizeof name);
            snprintf(one, sizeof one, ", '%s'", name);
            strncat(slots, one, sizeof slots - strlen(slots) - 1);
        }
    }
    strncat(slots,
            "]) AS n WHERE n <> '' AND NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE "
            "slot_name = n)",
            sizeof slots - strlen(slots) - 1);
    const char *const stmts[] = {slots, NULL};
    run_sql(x, ACT_SLOTS, "creating replication slots", stmts, SQL_TIMEOUT_MS);
}

static uint64_t parse_lsn(const char *s)
{
    unsigned long hi = 0, lo = 0;
    return sscanf(s, "%lx/%lx", &hi, &lo) == 2 ? ((uint64_t)hi << 32) | lo : 0;
}

/* The last line of psql's output is "TIMELINE LSN". */
static void promoted(struct afc_executor *x, const char *output)
{
    const char *last = output, *nl;
    while ((nl = strchr(last, '\n')) != NULL && nl[1] != '\0') {
        last = nl + 1;
    }
    unsigned tli = 0;
    char lsn[32] = "";
    if (sscanf(last, "%u %31s", &tli, lsn) != 2) {
        afc_warn("promoted, but could not read the timeline and LSN from '%s'", last);
    }
    if (afc_fault_hit("crash-after-promote")) {
        _exit(AFC_FAULT_EXIT); /* promoted, PROMOTED not reported: no cleanup (test builds) */
    }
    afc_event("promoted-here", "region=%s epoch=%" PRIu64 " timeline=%u lsn=%s", self_name(x),
              x->epoch, tli, lsn);
    report_step(x, AFC_FO_PROMOTED, tli, parse_lsn(lsn), "pg_promote done");
}

static void fmt_lsn(uint64_t lsn, char *buf, size_t cap)
{
    snprintf(buf, cap, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
}

/*
 * The candidate has detached: report FENCED once replay has caught up and no other replica that
 * stopped streaming holds more WAL (the leader ranked us on LSNs that may be seconds old). A
 * replica with more WAL aborts this epoch, so that the leader decides again on the fresh LSNs
 * (this candidate is then passed over); an operator's forced failover skips the comparison. Both
 * waits end at the catch-up deadline, and then we go on with what we know.
 */
static void catchup_checked(struct afc_executor *x, bool ok, const char *output)
{
    const struct afc_state *s = state_of(x);
    const struct afc_failover *f = &s->failover;
    bool caught = ok && output[0] == 't', late = now_ms(x) > x->catchup_deadline_ms;
    if (x->step_reported == AFC_FO_ABORTED || (!caught && !late)) {
        return;
    }
    bool waiting = false;
    uint64_t own = ok && strlen(output) > 2 ? parse_lsn(output + 2) : 0;
    struct afc_decide_input in;
    struct afc_decide_config cfg;
    afc_agent_decide_input(x->d, &in, &cfg);
    int more = ok && !f->forced
                   ? afc_more_wal_elsewhere(s, &cfg, self_name(x), f->from, own, &waiting)
                   : -1;
    if (more >= 0) {
        char a[24], b[24], detail[AFC_DETAIL_MAX];
        fmt_lsn(s->obs[more][more].lsn, a, sizeof a);
        fmt_lsn(own, b, sizeof b);
        snprintf(detail, sizeof detail, "%s has more WAL (%s > %s here)", s->members[more].name, a,
                 b);
        afc_event("candidate-behind", "region=%s epoch=%" PRIu64 " %s", self_name(x), x->epoch,
                  detail);
        report_step(x, AFC_FO_ABORTED, 0, 0, detail);
        return;
    }
    if (waiting && !late) {
        return; /* another replica has not stopped streaming yet: its LSN may still grow */
    }
    report_step(x, AFC_FO_FENCED, 0, 0,
                caught ? (waiting ? "detached, replay caught up, not every replica compared"
                                  : "detached, replay caught up, most WAL of the replicas")
                       : "detached, catch-up wait ended");
}

/* Is the old primary still running? Its own coordinator knows first (it reports the stop as soon
 * as its fence completes); our remote probe is only the fallback when that coordinator has never
 * reported. */
static bool old_primary_running(const struct afc_executor *x, const struct afc_failover *f)
{
    const struct afc_state *s = state_of(x);
    int from = -1, self = -1;
    for (unsigned i = 0; i < s->n_members && i < AFC_MAX_MEMBERS; i++) {
        from = strcmp(s->members[i].name, f->from) == 0 ? (int)i : from;
        self = strcmp(s->members[i].name, self_name(x)) == 0 ? (int)i : self;
    }
    if (from < 0 || self < 0) {
        return false;
    }
    const struct afc_pg_obs *a = &s->obs[self][from], *b = &s->obs[from][from];
    if (b->valid) {
        return b->healthy && b->role == AFC_PG_PRIMARY;
    }
    return a->valid && a->healthy && a->role == AFC_PG_PRIMARY;
}

enum { VERDICT_WAITING = 0, VERDICT_ALLOW, VERDICT_VETO };

static void verdict_cb(void *data, bool allow, const char *reason)
{
    struct afc_executor *x = data;
    if (x->stopping) {
        return;
    }
    x->verdict = allow ? VERDICT_ALLOW : VERDICT_VETO;
    snprintf(x->veto_reason, sizeof x->veto_reason, "%s", reason);
}

/* The operator's pre_promote hook decides, once per epoch, before pg_promote (docs/hooks.md): a
 * veto aborts this epoch, and the leader passes this region over in the next decision. */
static void ask_pre_promote(struct afc_executor *x, const struct afc_failover *f)
{
    x->verdict_epoch = x->epoch;
    x->verdict = VERDICT_WAITING;
    int rc = afc_delivery_pre_promote(x->d, x->epoch, f->from, verdict_cb, x);
    if (rc == AFC_EALREADY) {
        x->verdict = VERDICT_ALLOW; /* no pre_promote hook configured */
    } else if (rc != 0) {
        x->verdict = VERDICT_VETO;
        snprintf(x->veto_reason, sizeof x->veto_reason, "could not ask it: %s", afc_strerror(rc));
    } else {
        afc_event("pre-promote", "region=%s epoch=%" PRIu64, self_name(x), x->epoch);
    }
}

static void candidate_tick(struct afc_executor *x, const struct afc_failover *f)
{
    if (x->step_reported == AFC_FO_ABORTED || x->hung) {
        return; /* we gave up on this epoch: never detach or promote after saying so */
    }
    if (f->step == AFC_FO_DECIDED && afc_fault_hit("hang-after-decided")) {
        x->hung = true; /* test builds: a candidate that stops acting but keeps talking */
        return;
    }
    if (x->local_refused) {
        return; /* our PostgreSQL is down: let local_tick restart it first */
    }
    if (f->step == AFC_FO_DECIDED && x->step_reported != AFC_FO_FENCED &&
        x->step_reported != AFC_FO_ABORTED && f->planned && old_primary_running(x, f)) {
        /* A switchover: the old primary's coordinator stops it with a fast shutdown, which
         * sends every WAL record to the connected replicas first. Detaching before that would
         * cut the stream short, so wait for it (bounded). */
        if (now_ms(x) > x->planned_deadline_ms) {
            report_step(x, AFC_FO_ABORTED, 0, 0, "switchover: the old primary did not stop");
        }
        return;
    }
    if (f->step == AFC_FO_DECIDED && x->step_reported != AFC_FO_FENCED) {
        if (!x->detached) {
            detach(x, "candidate");
        } else {
            check_catchup(x);
        }
    } else if (f->step == AFC_FO_FENCED && x->step_reported != AFC_FO_PROMOTED &&
               x->step_reported != AFC_FO_ABORTED) {
        if (x->verdict_epoch != x->epoch) {
            ask_pre_promote(x, f);
        } else if (x->verdict == VERDICT_VETO) {
            char detail[AFC_DETAIL_MAX];
            snprintf(detail, sizeof detail, "pre_promote vetoed: %s", x->veto_reason);
            afc_event("promote-vetoed", "region=%s epoch=%" PRIu64 " reason=\"%s\"", self_name(x),
                      x->epoch, x->veto_reason);
            report_step(x, AFC_FO_ABORTED, 0, 0, detail);
        } else if (x->verdict == VERDICT_ALLOW) {
            promote(x);
        }
    } else if ((f->step == AFC_FO_PROMOTED || f->step == AFC_FO_DONE) && !x->slots_done &&
               x->slot_attempts++ < 3) {
        create_slots(x);
    }
}

/* ---- the other replicas ---- */

static void repoint(struct afc_executor *x, const char *to)
{
    const struct afc_config_member *m = cfg_member(x, to);
    char slot[AFC_NAME_MAX], conninfo[AFC_PATH_MAX + 96], s1[AFC_PATH_MAX + 160], s2[128];
    if (m == NULL || m->postgres[0] == '\0' || strchr(m->postgres, '\'') != NULL) {
        afc_error("cannot follow %s: no usable postgres conninfo in the configuration", to);
        return;
    }
    slot_name(self_name(x), slot, sizeof slot);
    snprintf(conninfo, sizeof conninfo, "%s application_name=%s", m->postgres, slot);
    snprintf(s1, sizeof s1, "ALTER SYSTEM SET primary_conninfo = '%s'", conninfo);
    snprintf(s2, sizeof s2, "ALTER SYSTEM SET primary_slot_name = '%s'", slot);
    const char *const stmts[] = {s1, s2, "SELECT pg_reload_conf()", NULL};
    afc_event("repointing", "region=%s to=%s epoch=%" PRIu64, self_name(x), to, x->epoch);
    x->repointed_at_ms = now_ms(x);
    run_sql(x, ACT_REPOINT, "following the new primary", stmts, SQL_TIMEOUT_MS);
}

/*
 * A replica re-pointed at the new primary that still does not stream from it may have replayed
 * WAL of the old timeline past the point where the new primary's timeline forked off (it had
 * more than the candidate: a forced failover, or a candidate chosen at the catch-up deadline).
 * PostgreSQL then refuses to follow ("new timeline forked off current database system timeline
 * before current recovery point"). Compare our replay position with the fork point in the new
 * primary's timeline history. Arguments: bin_dir local_conninfo primary_conninfo. Last line:
 * "diverged ..." or "follows ..." (or an error).
 */
static const char diverge_sh[] =
    "set -eu\n"
    "bin=$1; here=$2; src=$3\n"
    "q() { \"$bin/psql\" -X -A -t -q -v ON_ERROR_STOP=1 -d \"$1\" -c \"$2\"; }\n"
    "tl=$(q \"$here\" \"SELECT timeline_id FROM pg_control_checkpoint()\")\n"
    "replay=$(q \"$here\" \"SELECT pg_last_wal_replay_lsn()\")\n"
    "newtl=$(q \"$src\" \"SELECT ('x'||substr(pg_walfile_name(pg_current_wal_lsn()),1,8))"
    "::bit(32)::int\")\n"
    "if [ \"$newtl\" -le \"$tl\" ]; then echo \"follows timeline=$tl (primary on $newtl)\"; "
    "exit 0; fi\n"
    "hist=$(printf 'pg_wal/%08X.history' \"$newtl\")\n"
    "fork=$(q \"$src\" \"SELECT split_part(l, E'\\t', 2) FROM regexp_split_to_table("
    "pg_read_file('$hist'), E'\\n') l WHERE split_part(l, E'\\t', 1) = '$tl'\")\n"
    "[ -n \"$fork\" ] || { echo \"no fork point for timeline $tl in $hist\"; exit 3; }\n"
    "if [ \"$(q \"$here\" \"SELECT '$replay'::pg_lsn > '$fork'::pg_lsn\")\" = t ]; then\n"
    "  echo \"diverged timeline=$tl fork_lsn=$fork replay_lsn=$replay\"\n"
    "else echo \"follows timeline=$tl fork_lsn=$fork replay_lsn=$replay\"; fi\n";

static void check_diverged(struct afc_executor *x, const char *to)
{
    const struct afc_config_member *m = cfg_member(x, to);
    if (m == NULL || m->postgres[0] == '\0') {
        return;
    }
    const struct afc_config *c = &x->d->cfg;
    const char *argv[] = {"/bin/sh",       "-c",        diverge_sh, "diverge-check", c->pg_bin_dir,
                          c->database_url, m->postgres, NULL};
    struct afc_run_options opt = {.argv = argv, .timeout_ms = SQL_TIMEOUT_MS};
    struct afc_err err = {0};
    x->diverge_checked_at_ms = now_ms(x);
    snprintf(x->what, sizeof x->what, "%s", "checking whether this replica diverged");
    if (afc_run_start(x->d->loop, &opt, exec_run_cb, x, NULL, &err) == 0) {
        x->running = ACT_DIVERGE_CHECK;
    } else {
        afc_error("while checking whether this replica diverged: %s", err.msg);
    }
}

static void diverge_checked(struct afc_executor *x, bool ok, const char *output)
{
    const char *last = output, *nl;
    while ((nl = strchr(last, '\n')) != NULL && nl[1] != '\0') {
        last = nl + 1;
    }
    if (!ok || strncmp(last, "diverged ", 9) != 0) {
        return; /* not diverged (or unknown): re-point again at the next turn */
    }
    afc_event("replica-diverged", "region=%s primary=%s epoch=%" PRIu64 " %.*s", self_name(x),
              state_of(x)->failover.to, state_of(x)->epoch, (int)strcspn(last + 9, "\n"), last + 9);
    /* stopped, it is rewound like a deposed primary: its divergent WAL saved first */
    x->rewind_needed_epoch = state_of(x)->epoch;
    exec_pg_stop(x, ACT_STOP, "diverged from the new primary's timeline");
}

static void replica_tick(struct afc_executor *x, const struct afc_failover *f)
{
    const struct afc_pg_obs *mine = x->local;
    if (mine == NULL || !mine->healthy || mine->role != AFC_PG_REPLICA) {
        return;
    }
    if ((f->step == AFC_FO_DECIDED || f->step == AFC_FO_FENCED) && !x->detached) {
        detach(x, "replica");
    } else if ((f->step == AFC_FO_PROMOTED || f->step == AFC_FO_DONE) &&
               strcmp(mine->upstream, f->to) != 0 &&
               (x->repointed_at_ms == 0 || now_ms(x) - x->repointed_at_ms > REPOINT_RETRY_MS)) {
        if (x->repointed_at_ms != 0 && x->diverge_checked_at_ms < x->repointed_at_ms &&
            x->rewind_needed_epoch != state_of(x)->epoch) {
            check_diverged(x, f->to); /* the last re-point did not take: find out why */
        } else {
            repoint(x, f->to);
        }
    }
}

/* ---- the leader closes the sequence ---- */

static bool replicas_follow(const struct afc_state *s, const struct afc_failover *f)
{
    for (unsigned i = 0; i < s->n_members && i < AFC_MAX_MEMBERS; i++) {
        const struct afc_pg_obs *o = &s->obs[i][i];
        bool other =
            strcmp(s->members[i].name, f->to) != 0 && strcmp(s->members[i].name, f->from) != 0;
        if (other && o->valid && o->healthy && o->role == AFC_PG_REPLICA &&
            strcmp(o->upstream, f->to) != 0) {
            return false;
        }
    }
    return true;
}

static void done_report_cb(void *data, int status, enum afc_apply_result result)
{
    struct afc_executor *x = data;
    if ((status != 0 || (result != AFC_APPLY_OK && result != AFC_APPLY_NOOP)) && !x->stopping) {
        x->done_epoch = 0; /* not committed: the next tick tries again */
    }
}

static void leader_report(struct afc_executor *x, const struct afc_failover *f,
                          enum afc_fo_step step, const char *detail)
{
    struct afc_cmd cmd;
    step_cmd(x, f->epoch, step, detail, &cmd);
    x->done_epoch = f->epoch;
    if (afc_report_send(x->d, &cmd, done_report_cb, x) != 0) {
        x->done_epoch = 0;
    }
}

/* A failover stuck at DECIDED or FENCED (the candidate died, hangs, or its PostgreSQL cannot
 * promote) would block every later failover: abort it after a deadline. */
static void leader_watch_progress(struct afc_executor *x, const struct afc_failover *f)
{
    if (f->epoch != x->watch_epoch || f->step != x->watch_step) {
        x->watch_epoch = f->epoch;
        x->watch_step = f->step;
        x->watch_since_ms = now_ms(x);
        return;
    }
    const struct afc_state *s = state_of(x);
    afc_region_id to_id = 0;
    for (unsigned i = 0; i < s->n_members && i < AFC_MAX_MEMBERS; i++) {
        to_id = strcmp(s->members[i].name, f->to) == 0 ? s->members[i].id : to_id;
    }
    bool silent = to_id != 0 && !afc_node_member_heard(&x->d->node, to_id);
    uint64_t limit = f->step == AFC_FO_DECIDED
                         ? (silent ? SILENT_DECIDED_DEADLINE_MS : DECIDED_DEADLINE_MS)
                         : (silent ? SILENT_FENCED_DEADLINE_MS : FENCED_DEADLINE_MS);
    if (now_ms(x) - x->watch_since_ms > limit && x->done_epoch != f->epoch) {
        char detail[96];
        snprintf(detail, sizeof detail, "no progress at %s for %llu ms%s",
                 afc_fo_step_name(f->step), (unsigned long long)limit,
                 silent ? " (candidate's coordinator silent)" : "");
        afc_event("failover-stuck", "epoch=%" PRIu64 " step=%s to=%s", f->epoch,
                  afc_fo_step_name(f->step), f->to);
        leader_report(x, f, AFC_FO_ABORTED, detail);
    }
}

/* The leader's part, independent of this node's own PostgreSQL and of its running action: it
 * keeps its own record of which epoch it closed and names that epoch explicitly. */
static void leader_tick(struct afc_executor *x, const struct afc_failover *f)
{
    if (!afc_node_is_ready(&x->d->node)) {
        x->promoted_seen_ms = 0;
        x->watch_epoch = 0;
        return;
    }
    if (f->step == AFC_FO_DECIDED || f->step == AFC_FO_FENCED) {
        leader_watch_progress(x, f);
    }
    if (f->step != AFC_FO_PROMOTED) {
        x->promoted_seen_ms = 0;
        return;
    }
    if (x->promoted_seen_ms == 0) {
        x->promoted_seen_ms = now_ms(x);
    }
    bool all = replicas_follow(state_of(x), f);
    if ((!all && now_ms(x) - x->promoted_seen_ms <= DONE_AFTER_MS) || x->done_epoch == f->epoch) {
        return;
    }
    leader_report(x, f, AFC_FO_DONE,
                  all ? "replicas follow the new primary" : "closed with replicas lagging");
}

/* ---- results ---- */

static void action_done(struct afc_executor *x, enum action act, bool ok, const char *output)
{
    switch (act) {
    case ACT_DETACH:
        x->detached = ok;
        x->catchup_deadline_ms = now_ms(x) + CATCHUP_MAX_MS; /* the catch-up wait starts now */
        break;
    case ACT_CATCHUP:
        catchup_checked(x, ok, output);
        break;
    case ACT_PROMOTE:
        if (ok) {
            promoted(x, output);
        } else if (x->promote_attempts < 2) {
            /* pg_promote may have succeeded, or still be finishing, even though this run failed
             * (a timeout, a lost connection): the statement is idempotent, so ask again before
             * declaring the promotion failed; an abort must never undo a real promotion. */
            x->step_reported = AFC_FO_NONE;
        } else {
            report_step(x, AFC_FO_ABORTED, 0, 0, "pg_promote failed twice");
        }
        break;
    case ACT_SLOTS:
        x->slots_done = ok;
        break;
    case ACT_QUARANTINE:
    case ACT_REWIND:
    case ACT_BASEBACKUP:
    case ACT_START:
        exec_local_done(x, act, ok, output);
        break;
    case ACT_DIVERGE_CHECK:
        diverge_checked(x, ok, output);
        break;
    case ACT_STOP:
        x->down_since_ms = 0; /* the rewind starts once the probe sees it down */
        break;
    case ACT_REPOINT:
    case ACT_NONE:
        break;
    }
}

/* ---- the tick ---- */

void afc_executor_tick(struct afc_executor *x, const struct afc_pg_obs *local, bool local_refused,
                       bool lease_valid)
{
    const struct afc_state *s = state_of(x);
    const struct afc_failover *f = &s->failover;
    x->local = local;
    x->local_refused = local_refused;
    x->lease_valid = lease_valid;
    /* Closing a failover needs no local PostgreSQL and no idle executor: a leader without one, or
     * busy rewinding its own, must still commit DONE. */
    leader_tick(x, f);
    if (x->fencing) {
        return; /* the agent is stopping our PostgreSQL: start nothing meanwhile */
    }
    if (local != NULL && local->valid && local->healthy) {
        x->restarting_since_ms = 0;
    }
    if (x->running != ACT_NONE || x->d->cfg.pg_data_dir[0] == '\0' ||
        x->d->cfg.database_url[0] == '\0') {
        return;
    }
    if (f->epoch != x->epoch) { /* a new failover: forget the per-epoch progress */
        x->epoch = f->epoch;
        x->detached = false;
        x->step_reported = AFC_FO_NONE;
        x->promote_attempts = 0;
        x->slots_done = false;
        x->slot_attempts = 0;
        x->repointed_at_ms = 0;
        x->catchup_deadline_ms = now_ms(x) + CATCHUP_MAX_MS;
        x->planned_deadline_ms = now_ms(x) + OLD_STOP_MAX_MS;
    }
    bool active = !afc_fo_step_is_final(f->step) || f->step == AFC_FO_DONE;
    if (active && strcmp(f->to, self_name(x)) == 0) {
        candidate_tick(x, f);
    } else if (active && strcmp(f->from, self_name(x)) != 0) {
        replica_tick(x, f);
    }
    if (x->running == ACT_NONE) {
        exec_local_tick(x);
    }
}

void afc_executor_init(struct afc_executor *x, struct afc_daemon *d)
{
    memset(x, 0, sizeof *x);
    x->d = d;
}

void afc_executor_stop(struct afc_executor *x)
{
    x->stopping = true;
}
