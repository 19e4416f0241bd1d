/*
 * Operator actions on the primary, and the role probes load balancers use.
 *
 *   POST /v1/switchover {"to": R}                planned: the old primary is stopped cleanly
 *                                                (a fast shutdown sends its last WAL to the
 *                                                replicas), R waits until it has received and
 *                                                replayed everything, then is promoted: no loss
 *   POST /v1/failover {"to": R, "force": true}   manual and immediate: R is promoted with what it
 *                                                has; the answer says how much may be lost
 *   GET  /primary, /replica[?lag=16MB]           200 / 503 with JSON (Patroni's convention)
 *
 * Both actions commit the same FAILOVER_BEGIN the automatic path uses (planned or forced), on the
 * ready leader (followers forward), and answer 202 once it is committed: the sequence then runs
 * as committed steps, visible in /v1/cluster and /v1/history. Manual actions are allowed while
 * paused (pause stops only *automatic* decisions).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "coordinator/agent.h"
#include "coordinator/daemon.h"
#include "coordinator/http_internal.h"
#include "coordinator/report.h"

struct action_op {
    struct afc_propose prop;
    struct http_req *r;
    char from[AFC_NAME_MAX];
    char to[AFC_NAME_MAX];
    afc_epoch epoch;
    uint64_t may_lose_bytes;
    bool planned;
};

static int member_index(const struct afc_state *s, const char *name)
{
    for (unsigned i = 0; i < s->n_members && i < AFC_MAX_MEMBERS; i++) {
        if (strcmp(s->members[i].name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static void action_abort(struct http_req *r, void *arg)
{
    (void)r;
    ((struct action_op *)arg)->r = NULL;
}

static void action_done_cb(struct afc_propose *p, int status, enum afc_apply_result result)
{
    struct action_op *op = p->data;
    if (op->r == NULL) {
        free(op);
        return;
    }
    if (status != 0) {
        http_reply_error(op->r, 503, "not_committed", afc_strerror(status));
    } else if (result != AFC_APPLY_OK) {
        http_reply_error(op->r, 409, "conflict",
                         "the state changed meanwhile (another failover or epoch); retry");
    } else {
        http_reply_json(op->r, 202,
                        json_pack("{s:I, s:s, s:s, s:s, s:b, s:I}", "epoch", (json_int_t)op->epoch,
                                  "from", op->from, "to", op->to, "step", "decided", "planned",
                                  op->planned, "may_lose_bytes", (json_int_t)op->may_lose_bytes));
    }
    free(op);
}

/* Parse {"to": R, "force": bool}; answers 400 and returns -1 on a bad body. */
static int parse_action(struct http_req *r, char *to, bool *force)
{
    size_t len;
    const char *body = http_req_body(r, &len);
    json_error_t jerr;
    json_t *doc = json_loadb(body != NULL ? body : "", len, 0, &jerr);
    json_t *t = json_object_get(doc, "to");
    json_t *f = json_object_get(doc, "force");
    int rc = 0;
    if (!json_is_object(doc) || !json_is_string(t) ||
        strlen(json_string_value(t)) >= AFC_NAME_MAX || (f != NULL && !json_is_boolean(f))) {
        http_reply_error(r, 400, "bad_request",
                         "expected a JSON object {\"to\": \"<region>\"[, \"force\": true]}");
        rc = -1;
    } else {
        snprintf(to, AFC_NAME_MAX, "%s", json_string_value(t));
        *force = json_is_true(f);
    }
    json_decref(doc);
    return rc;
}

/* Why `to` cannot take over now, or NULL. */
static const char *refuse(const struct afc_state *s, const char *to)
{
    int j = member_index(s, to);
    if (j < 0) {
        return "not a member";
    }
    if (s->epoch == 0 || s->primary[0] == '\0') {
        return "there is no authorized primary to move away from";
    }
    if (strcmp(s->primary, to) == 0) {
        return "it is already the primary";
    }
    if (!afc_fo_step_is_final(s->failover.step)) {
        return "a failover is in progress";
    }
    if (s->drained[j]) {
        return "it is drained (undrain-region it first)";
    }
    const struct afc_pg_obs *o = &s->obs[j][j];
    if (!o->valid || !o->healthy || o->role != AFC_PG_REPLICA) {
        return "its own coordinator does not report it as a healthy replica";
    }
    return NULL;
}

static uint64_t primary_lsn(const struct afc_state *s)
{
    int p = member_index(s, s->primary);
    uint64_t best = 0;
    for (unsigned i = 0; p >= 0 && i < s->n_members && i < AFC_MAX_MEMBERS; i++) {
        best = s->obs[i][p].valid && s->obs[i][p].lsn > best ? s->obs[i][p].lsn : best;
    }
    return best;
}

static void begin(struct http_req *r, bool planned)
{
    struct afc_daemon *d = http_req_daemon(r);
    const struct afc_state *s = afc_node_state(&d->node);
    char to[AFC_NAME_MAX], msg[160];
    bool force = false;
    if (!api_authorized(r) || parse_action(r, to, &force) != 0) {
        return;
    }
    if (!planned && !force) {
        http_reply_error(r, 400, "force_required",
                         "a manual failover may lose data: send \"force\": true, or use "
                         "/v1/switchover for a planned move without loss");
        return;
    }
    if (!api_on_leader(r)) {
        return;
    }
    /* §4.2 holds for every promotion, forced or not: the old primary must have lost its lease
     * first, or two primaries could write (forcing skips the lag check, not the lease). A
     * switchover waits for the old primary to stop instead, in the executor. */
    if (!planned) {
        struct afc_decision dec;
        afc_agent_decide(d, &dec);
        for (unsigned i = 0; i < dec.n_predicates; i++) {
            if (strcmp(dec.predicates[i].name, "lease-expired") == 0 && !dec.predicates[i].ok) {
                snprintf(msg, sizeof msg, "the old primary's lease is still valid (%s); retry then",
                         dec.predicates[i].value);
                http_reply_error(r, 409, "lease_valid", msg);
                return;
            }
        }
    }
    const char *why = refuse(s, to);
    if (why != NULL) {
        snprintf(msg, sizeof msg, "cannot move the primary to %s: %s", to, why);
        http_reply_error(r, 412, "precondition_failed", msg);
        return;
    }
    struct action_op *op = calloc(1, sizeof *op);
    if (op == NULL) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    struct afc_cmd cmd;
    afc_cmd_start(&cmd, AFC_OP_FAILOVER_BEGIN, d->cfg.region);
    cmd.u.failover_begin.expect_epoch = s->epoch;
    snprintf(cmd.u.failover_begin.from, AFC_NAME_MAX, "%s", s->primary);
    snprintf(cmd.u.failover_begin.to, AFC_NAME_MAX, "%s", to);
    snprintf(cmd.u.failover_begin.reason, sizeof cmd.u.failover_begin.reason, "%s",
             planned ? "switchover requested by an operator" : "forced failover by an operator");
    cmd.u.failover_begin.planned = planned;
    cmd.u.failover_begin.forced = !planned;
    cmd.u.failover_begin.detected_ms = cmd.wall_ms;
    cmd.u.failover_begin.old_lsn = primary_lsn(s);
    cmd.u.failover_begin.term = afc_node_term(&d->node);
    int j = member_index(s, to);
    uint64_t has = s->obs[j][j].lsn, old = cmd.u.failover_begin.old_lsn;
    *op = (struct action_op){.r = r,
                             .epoch = s->epoch + 1,
                             .planned = planned,
                             .may_lose_bytes = planned || old <= has ? 0 : old - has};
    snprintf(op->from, sizeof op->from, "%s", s->primary);
    snprintf(op->to, sizeof op->to, "%s", to);
    op->prop.data = op;
    int rv = afc_node_propose(&d->node, &op->prop, &cmd, action_done_cb);
    if (rv != 0) {
        free(op);
        http_reply_error(r, 503, "not_leader", afc_strerror(rv));
        return;
    }
    http_suspend(r, action_abort, op);
}

void api_switchover(struct http_req *r)
{
    begin(r, true);
}

void api_failover(struct http_req *r)
{
    begin(r, false);
}

/* ---- role probes ---- */

static int self_index(const struct afc_daemon *d)
{
    for (unsigned i = 0; i < d->cfg.n_members; i++) {
        if (strcmp(d->cfg.members[i].name, d->cfg.region) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static json_t *role_doc(const struct afc_daemon *d, const struct afc_pg_obs *o, const char *role)
{
    const struct afc_state *s = afc_node_state(&d->node);
    return json_pack("{s:s, s:s, s:I, s:o, s:o}", "region", d->cfg.region, "role", role, "epoch",
                     (json_int_t)s->epoch, "primary", json_string_or_null(s->primary), "postgres",
                     api_pg_obs_json(o));
}

void api_primary(struct http_req *r)
{
    const struct afc_daemon *d = http_req_daemon(r);
    const struct afc_state *s = afc_node_state(&d->node);
    int i = self_index(d);
    const struct afc_pg_obs *o = i >= 0 ? afc_agent_obs(d, (unsigned)i) : NULL;
    /* both: authorized by the log, and really running as primary */
    int64_t left;
    /* authorized by the log, holding the lease right now, and really running as primary */
    bool ok = s->epoch > 0 && strcmp(s->primary, d->cfg.region) == 0 && o != NULL && o->valid &&
              o->healthy && o->role == AFC_PG_PRIMARY && afc_agent_lease(d, &left);
    http_reply_json(r, ok ? 200 : 503, role_doc(d, o, ok ? "primary" : "not-primary"));
}

/* "16MB", "512kB", "1024" → bytes; -1 if malformed. */
static int64_t parse_size(const char *v)
{
    char *end = NULL;
    long long n = strtoll(v, &end, 10);
    if (end == v || n < 0) {
        return -1;
    }
    if (*end == '\0' || strcasecmp(end, "B") == 0) {
        return n;
    }
    if (strcasecmp(end, "kB") == 0) {
        return n * 1024;
    }
    if (strcasecmp(end, "MB") == 0) {
        return n * 1024 * 1024;
    }
    if (strcasecmp(end, "GB") == 0) {
        return n * 1024 * 1024 * 1024;
    }
    return -1;
}

void api_replica(struct http_req *r)
{
    const struct afc_daemon *d = http_req_daemon(r);
    const struct afc_state *s = afc_node_state(&d->node);
    int i = self_index(d);
    const struct afc_pg_obs *o = i >= 0 ? afc_agent_obs(d, (unsigned)i) : NULL;
    const char *lag_arg = http_req_query(r, "lag");
    int64_t max_lag = lag_arg != NULL ? parse_size(lag_arg) : -1;
    if (lag_arg != NULL && max_lag < 0) {
        http_reply_error(r, 400, "bad_request", "lag: expected bytes, e.g. 1048576 or 16MB");
        return;
    }
    bool ok = o != NULL && o->valid && o->healthy && o->role == AFC_PG_REPLICA;
    uint64_t behind = 0, head = primary_lsn(s);
    if (ok && head > o->replay_lsn) {
        behind = head - o->replay_lsn;
    }
    if (ok && max_lag >= 0 && behind > (uint64_t)max_lag) {
        ok = false;
    }
    json_t *doc = role_doc(d, o, ok ? "replica" : "not-replica");
    json_object_set_new(doc, "lag_bytes", json_integer((json_int_t)behind));
    http_reply_json(r, ok ? 200 : 503, doc);
}
