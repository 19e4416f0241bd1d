/*
 * The failover parts of the HTTP API: PostgreSQL as each node sees it, the lease, the current
 * failover and the synchronous standby set in /v1/cluster (and each member's drained flag), the
 * failover receipts in /v1/history,
 * and GET /v1/decision — every predicate of the decision core with its value and which one blocks
 * right now, or with ?assume_dead=R the same decision as if R's PostgreSQL had just died
 * (afc_decide_assume_dead: computed, never acted on).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/agent.h"
#include "coordinator/daemon.h"
#include "coordinator/delivery.h"
#include "coordinator/http_internal.h"

static json_t *lsn_json(uint64_t lsn)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRIX64 "/%" PRIX64, lsn >> 32, lsn & 0xffffffffu);
    return json_string(buf);
}

json_t *api_pg_obs_json(const struct afc_pg_obs *o)
{
    if (o == NULL || !o->valid) {
        return json_null();
    }
    return json_pack("{s:b, s:s, s:I, s:o, s:o, s:I, s:o, s:b}", "healthy", o->healthy, "role",
                     afc_pg_role_name(o->role), "timeline", (json_int_t)o->timeline, "lsn",
                     lsn_json(o->lsn), "replay_lsn", lsn_json(o->replay_lsn), "lag_ms",
                     (json_int_t)o->lag_ms, "upstream", json_string_or_null(o->upstream),
                     "local_dead", o->local_dead);
}

/* How many observers (replicated reports) say member j's PostgreSQL is healthy. */
static json_t *reports_json(const struct afc_state *s, unsigned j)
{
    unsigned healthy = 0, reported = 0;
    for (unsigned i = 0; i < s->n_members && i < AFC_MAX_MEMBERS; i++) {
        reported += s->obs[i][j].valid;
        healthy += s->obs[i][j].valid && s->obs[i][j].healthy;
    }
    return json_pack("{s:I, s:I}", "healthy", (json_int_t)healthy, "reported",
                     (json_int_t)reported);
}

/* "postgres": one entry per member of the replicated state. */
static json_t *postgres_json(const struct afc_daemon *d, const struct afc_state *s)
{
    json_t *arr = json_array();
    for (unsigned j = 0; arr != NULL && j < s->n_members && j < AFC_MAX_MEMBERS; j++) {
        unsigned cfg_index = d->cfg.n_members;
        for (unsigned k = 0; k < d->cfg.n_members; k++) {
            cfg_index = strcmp(d->cfg.members[k].name, s->members[j].name) == 0 ? k : cfg_index;
        }
        const struct afc_pg_obs *mine =
            cfg_index < d->cfg.n_members ? afc_agent_obs(d, cfg_index) : NULL;
        const struct afc_pg_obs *own = &s->obs[j][j];
        json_array_append_new(arr, json_pack("{s:s, s:o, s:o, s:o}", "region", s->members[j].name,
                                             "seen_here", api_pg_obs_json(mine),
                                             "seen_by_its_own_coordinator", api_pg_obs_json(own),
                                             "reports", reports_json(s, j)));
    }
    return arr;
}

static json_t *lease_json(const struct afc_daemon *d, const struct afc_state *s)
{
    int64_t remaining = 0;
    bool held = afc_agent_lease(d, &remaining);
    return json_pack("{s:o, s:I, s:I, s:I, s:b, s:I}", "region",
                     json_string_or_null(s->lease.region), "epoch", (json_int_t)s->lease.epoch,
                     "seq", (json_int_t)s->lease.seq, "index", (json_int_t)s->lease.index,
                     "held_here", held, "remaining_ms", (json_int_t)(held ? remaining : 0));
}

static json_t *time_or_null(int64_t wall_ms)
{
    char buf[40];
    if (wall_ms <= 0) {
        return json_null();
    }
    json_format_time(wall_ms, buf, sizeof buf);
    return json_string(buf);
}

/* {"us-east-2": time or null, ...}: when each region's Redis learned this failover's primary. */
static json_t *published_json(const struct afc_state *s, const struct afc_failover *f)
{
    json_t *o = json_object();
    for (unsigned i = 0; i < s->n_members && i < AFC_MAX_MEMBERS; i++) {
        json_object_set_new(o, s->members[i].name, time_or_null(f->published_ms[i]));
    }
    return o;
}

json_t *api_failover_json(const struct afc_state *s, const struct afc_failover *f)
{
    if (f->step == AFC_FO_NONE) {
        return json_null();
    }
    json_t *times =
        json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "detected",
                  time_or_null(f->detected_ms), "decided", time_or_null(f->decided_ms), "fenced",
                  time_or_null(f->fenced_ms), "promoted", time_or_null(f->promoted_ms), "routed",
                  time_or_null(f->routed_ms), "done", time_or_null(f->done_ms), "aborted",
                  time_or_null(f->aborted_ms), "published", published_json(s, f));
    return json_pack("{s:I, s:s, s:s, s:s, s:o, s:b, s:b, s:I, s:I, s:I, s:o, s:o, s:o, s:o}",
                     "epoch", (json_int_t)f->epoch, "from", f->from, "to", f->to, "step",
                     afc_fo_step_name(f->step), "reason", json_string_lossy(f->reason), "planned",
                     f->planned, "forced", f->forced, "decided_index", (json_int_t)f->decided_index,
                     "decided_term", (json_int_t)f->decided_term, "timeline",
                     (json_int_t)f->timeline, "promoted_lsn", lsn_json(f->promoted_lsn), "old_lsn",
                     lsn_json(f->old_lsn), "routed_address",
                     f->routed_address[0] != '\0' ? json_string(f->routed_address) : json_null(),
                     "times", times);
}

/* "drained" on each /v1/cluster member entry (false while the member list is the config's). */
static void add_drained(const struct afc_state *s, json_t *members)
{
    size_t k;
    json_t *m;
    json_array_foreach(members, k, m)
    {
        const struct afc_member *sm =
            afc_state_member_by_name(s, json_string_value(json_object_get(m, "region")));
        json_object_set_new(m, "drained", json_boolean(sm != NULL && s->drained[sm - s->members]));
    }
}

/* "replication": the mode, the committed synchronous standby set (identical on every node) and,
 * on the primary's own node, what its PostgreSQL says right now (syncrep.h). */
static json_t *replication_json(const struct afc_daemon *d, const struct afc_state *s)
{
    const struct afc_sync *y = &s->sync;
    json_t *standbys = json_array(), *committed = json_null();
    for (unsigned j = 0; standbys != NULL && j < s->n_members && j < AFC_MAX_MEMBERS; j++) {
        if (y->active && y->standby[j]) {
            json_array_append_new(standbys, json_string(s->members[j].name));
        }
    }
    if (y->region[0] != '\0') {
        committed = json_pack("{s:s, s:I, s:b, s:O, s:I}", "region", y->region, "epoch",
                              (json_int_t)y->epoch, "active", y->active, "standbys", standbys,
                              "index", (json_int_t)y->index);
    }
    return json_pack("{s:s, s:b, s:o, s:o, s:o}", "mode",
                     d->cfg.repl_mode == AFC_REPL_SYNC ? "sync" : "async", "sync_strict",
                     d->cfg.repl_sync_strict, "sync_standbys", standbys, "committed", committed,
                     "here", afc_agent_sync_json(d));
}

void api_cluster_add_failover(const struct afc_daemon *d, json_t *doc)
{
    const struct afc_state *s = afc_node_state(&d->node);
    add_drained(s, json_object_get(doc, "members"));
    json_object_set_new(doc, "postgres", postgres_json(d, s));
    json_object_set_new(doc, "lease", lease_json(d, s));
    json_object_set_new(doc, "failover", api_failover_json(s, &s->failover));
    json_object_update_new(doc, afc_delivery_json(d)); /* "dns", "redis" */
    json_object_set_new(doc, "db_fence", afc_agent_fence_json(d));
    json_object_set_new(doc, "replication", replication_json(d, s));
}

json_t *api_failovers_json(const struct afc_state *s)
{
    json_t *arr = json_array();
    unsigned n = s->failovers_len < AFC_FAILOVERS_MAX ? s->failovers_len : AFC_FAILOVERS_MAX;
    unsigned first = (s->failovers_next + AFC_FAILOVERS_MAX - n) % AFC_FAILOVERS_MAX;
    for (unsigned i = 0; arr != NULL && i < n; i++) {
        json_array_append_new(arr,
                              api_failover_json(s, &s->failovers[(first + i) % AFC_FAILOVERS_MAX]));
    }
    return arr;
}

static const char *action_name(enum afc_action a)
{
    switch (a) {
    case AFC_ACT_ADOPT:
        return "adopt";
    case AFC_ACT_BEGIN_FAILOVER:
        return "begin-failover";
    case AFC_ACT_REFUSE_ADOPT:
        return "refuse-adopt";
    case AFC_ACT_NONE:
        break;
    }
    return "none";
}

/* ?assume_dead=R: 0, or answers 400/500 and returns -1. */
static int decide_assume_dead(struct http_req *r, const char *region, struct afc_decision *dec)
{
    const struct afc_daemon *d = http_req_daemon(r);
    const struct afc_state *s = afc_node_state(&d->node);
    struct afc_decide_config c;
    struct afc_decide_input in;
    if (s == NULL || s->n_members == 0) {
        http_reply_error(r, 503, "not_joined", "the member list is not applied here yet");
        return -1;
    }
    afc_agent_decide_input(d, &in, &c);
    struct afc_state *scratch = malloc(sizeof *scratch);
    if (scratch == NULL) {
        http_reply_error(r, 500, "internal", "out of memory");
        return -1;
    }
    int rc = afc_decide_assume_dead(&in, region, scratch, dec);
    free(scratch);
    if (rc != 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "assume_dead: %s is not a member", region);
        http_reply_error(r, 400, "unknown_region", msg);
        return -1;
    }
    return 0;
}

void api_decision(struct http_req *r)
{
    const struct afc_daemon *d = http_req_daemon(r);
    const char *assume_dead = http_req_query(r, "assume_dead");
    struct afc_decision dec;
    if (assume_dead == NULL) {
        afc_agent_decide(d, &dec);
    } else if (decide_assume_dead(r, assume_dead, &dec) != 0) {
        return;
    }
    json_t *preds = json_array();
    for (unsigned i = 0; preds != NULL && i < dec.n_predicates; i++) {
        const struct afc_predicate *p = &dec.predicates[i];
        json_array_append_new(preds, json_pack("{s:s, s:b, s:o}", "name", p->name, "ok", p->ok,
                                               "value", json_string_lossy(p->value)));
    }
    json_t *doc =
        json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o}", "region", d->cfg.region, "action",
                  action_name(dec.action), "from", json_string_or_null(dec.from), "to",
                  json_string_or_null(dec.to), "reason", json_string_lossy(dec.reason), "blocking",
                  json_string_or_null(dec.blocking), "predicates", preds);
    if (doc != NULL && assume_dead != NULL) {
        json_object_set_new(doc, "assume_dead", json_string_lossy(assume_dead));
    }
    http_reply_json(r, 200, doc);
}
