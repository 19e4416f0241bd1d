/*
 * The HTTP API: routing and handlers (docs/http-api.md is the reference).
 *
 * api_dispatch() looks the path up in one route table; a known path with the wrong method gets 405
 * with Allow, an unknown one 404. Read endpoints answer synchronously from the node's accessors
 * and the replicated state. pause/resume (the only mutating endpoints so far) check the bearer
 * token, then either propose on the ready leader (answer when the proposal's callback runs), or
 * forward to the leader from a follower (answer when the leader answers), or refuse with 503.
 * Asynchronous work holds a small heap object that outlives the request if needed: a proposal's
 * callback always runs exactly once, so the object is freed there even if the client went away.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "afc/log.h"
#include "coordinator/daemon.h"
#include "coordinator/faultpoints.h"
#include "coordinator/http_internal.h"
#include "coordinator/report.h"

#define CT_JSON    "application/json"
#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"

static void reply_json(struct http_req *r, unsigned status, json_t *doc)
{
    http_reply_json(r, status, doc);
}

/* ---- health and role probes ---- */

static void h_live(struct http_req *r)
{
    reply_json(r, 200, json_pack("{s:s}", "status", "alive"));
}

/* Which part of afc_daemon_is_ready() fails, in the order it is defined. */
static const char *not_ready_reason(const struct afc_daemon *d)
{
    if (d->stopping) {
        return "shutting down";
    }
    if (!d->joined) {
        return "member list not applied yet (init pending)";
    }
    if (afc_node_leader_id(&d->node) == 0) {
        return "no leader known";
    }
    if (afc_node_applied_index(&d->node) < afc_node_commit_index(&d->node)) {
        return "applying the log (applied index behind commit index)";
    }
    return "not ready";
}

static void h_ready(struct http_req *r)
{
    const struct afc_daemon *d = http_req_daemon(r);
    if (afc_daemon_is_ready(d)) {
        reply_json(r, 200, json_pack("{s:b}", "ready", 1));
        return;
    }
    reply_json(r, 503, json_pack("{s:b, s:s}", "ready", 0, "reason", not_ready_reason(d)));
}

static const char *leader_name(const struct afc_node *n)
{
    afc_region_id lid = afc_node_leader_id(n);
    const struct afc_node_member *m = lid ? afc_node_member(n, lid) : NULL;
    return m ? m->name : NULL;
}

static void h_leader(struct http_req *r)
{
    const struct afc_daemon *d = http_req_daemon(r);
    bool ready = afc_node_is_ready(&d->node);
    json_t *doc = json_pack("{s:o, s:s, s:b}", "leader", json_string_or_null(leader_name(&d->node)),
                            "self", d->cfg.region, "ready", ready);
    reply_json(r, ready ? 200 : 503, doc);
}

/* ---- state ---- */

static json_t *node_json(const struct afc_daemon *d)
{
    const struct afc_node *n = &d->node;
    return json_pack(
        "{s:I, s:s, s:s, s:b, s:b, s:I, s:I, s:I}", "id", (json_int_t)d->cfg.region_id, "region",
        d->cfg.region, "raft_state", afc_node_raft_state_name(afc_node_raft_state(n)), "ready",
        afc_daemon_is_ready(d), "leader_ready", afc_node_is_ready(n), "term",
        (json_int_t)afc_node_term(n), "commit_index", (json_int_t)afc_node_commit_index(n),
        "applied_index", (json_int_t)afc_node_applied_index(n));
}

static json_t *leader_json(const struct afc_node *n)
{
    afc_region_id lid = afc_node_leader_id(n);
    const struct afc_node_member *m = lid ? afc_node_member(n, lid) : NULL;
    if (m == NULL) {
        return json_null();
    }
    return json_pack("{s:I, s:s, s:s, s:o}", "id", (json_int_t)m->id, "region", m->name,
                     "raft_address", m->raft_addr, "api_url", json_string_or_null(m->api_url));
}

static json_t *member_json(const struct afc_daemon *d, afc_region_id id, const char *name,
                           const char *raft_addr, const char *api_url)
{
    afc_region_id lid = afc_node_leader_id(&d->node);
    return json_pack("{s:I, s:s, s:s, s:o, s:b, s:b}", "id", (json_int_t)id, "region", name,
                     "raft_address", raft_addr, "api_url", json_string_or_null(api_url), "leader",
                     lid != 0 && id == lid, "self", id == d->cfg.region_id);
}

/* From the replicated state once it has a member list, else from the configuration. */
static json_t *members_json(const struct afc_daemon *d, const struct afc_state *s)
{
    json_t *arr = json_array();
    bool from_state = s != NULL && s->n_members > 0;
    unsigned count = from_state ? s->n_members : d->cfg.n_members;
    for (unsigned i = 0; arr != NULL && i < count; i++) {
        json_t *m;
        if (from_state) {
            const struct afc_member *sm = &s->members[i];
            m = member_json(d, sm->id, sm->name, sm->raft_addr, sm->api_url);
        } else {
            const struct afc_config_member *cm = &d->cfg.members[i];
            m = member_json(d, cm->id, cm->name, cm->raft_addr, cm->api_url);
        }
        if (json_array_append_new(arr, m) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static void h_cluster(struct http_req *r)
{
    const struct afc_daemon *d = http_req_daemon(r);
    const struct afc_state *s = afc_node_state(&d->node);
    json_t *doc = json_pack("{s:o, s:o, s:o, s:I, s:o, s:b, s:s}", "node", node_json(d), "leader",
                            leader_json(&d->node), "members", members_json(d, s), "epoch",
                            (json_int_t)(s ? s->epoch : 0), "primary",
                            json_string_or_null(s ? s->primary : NULL), "paused",
                            s ? s->paused : false, "version", AFC_VERSION);
    if (doc != NULL && s != NULL) {
        api_cluster_add_failover(d, doc);
    }
    reply_json(r, 200, doc);
}

static json_t *event_json(const struct afc_event *e)
{
    char when[40];
    json_format_time(e->wall_ms, when, sizeof when);
    return json_pack("{s:I, s:s, s:o, s:o}", "index", (json_int_t)e->index, "time", when, "kind",
                     json_string_lossy(e->kind), "detail", json_string_lossy(e->detail));
}

static void h_history(struct http_req *r)
{
    const struct afc_daemon *d = http_req_daemon(r);
    const struct afc_state *s = afc_node_state(&d->node);
    json_t *events = json_array();
    unsigned n = s ? s->history_len : 0;
    for (unsigned i = 0; events != NULL && i < n; i++) {
        const struct afc_event *e = afc_state_history_at(s, i);
        if (e != NULL && json_array_append_new(events, event_json(e)) != 0) {
            json_decref(events);
            events = NULL;
        }
    }
    reply_json(r, 200,
               json_pack("{s:o, s:o}", "events", events, "failovers",
                         s ? api_failovers_json(s) : json_array()));
}

/* ---- metrics (Prometheus text format 0.0.4) ---- */

static void write_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"') {
            fputc('\\', f);
            fputc(*s, f);
        } else if (*s == '\n') {
            fputs("\\n", f);
        } else {
            fputc(*s, f);
        }
    }
}

static void metric_head(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{region="R"[,label="value"]} value */
static void metric_line(FILE *f, const struct afc_daemon *d, const char *name, const char *label,
                        const char *value, uint64_t v)
{
    fprintf(f, "%s{region=\"", name);
    write_escaped(f, d->cfg.region);
    if (label != NULL) {
        fprintf(f, "\",%s=\"", label);
        write_escaped(f, value);
    }
    fprintf(f, "\"} %llu\n", (unsigned long long)v);
}

static void metric_gauge(FILE *f, const struct afc_daemon *d, const char *name, const char *type,
                         const char *help, uint64_t v)
{
    metric_head(f, name, type, help);
    metric_line(f, d, name, NULL, NULL, v);
}

static void write_raft_state(FILE *f, const struct afc_daemon *d)
{
    static const int states[] = {RAFT_FOLLOWER, RAFT_CANDIDATE, RAFT_LEADER, RAFT_UNAVAILABLE};
    int cur = afc_node_raft_state(&d->node);
    metric_head(f, "aragora_raft_state", "gauge", "Raft role of this node (1 = current role).");
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
        metric_line(f, d, "aragora_raft_state", "state", afc_node_raft_state_name(states[i]),
                    states[i] == cur);
    }
}

static void write_counters(FILE *f, const struct afc_daemon *d)
{
    const char *name;
    uint64_t count;
    metric_head(f, "aragora_events_total", "counter", "Named events emitted by this node.");
    unsigned n = afc_event_count(0, &name, &count);
    for (unsigned i = 0; i < n; i++) {
        afc_event_count(i, &name, &count);
        metric_line(f, d, "aragora_events_total", "event", name, count);
    }
    metric_head(f, "aragora_http_requests_total", "counter", "HTTP API answers by status code.");
    unsigned code;
    n = http_status_count(d, 0, &code, &count);
    for (unsigned i = 0; i < n; i++) {
        char num[16];
        http_status_count(d, i, &code, &count);
        snprintf(num, sizeof num, "%u", code);
        metric_line(f, d, "aragora_http_requests_total", "code", num, count);
    }
}

static void write_metrics(FILE *f, const struct afc_daemon *d)
{
    const struct afc_node *n = &d->node;
    const struct afc_state *s = afc_node_state(n);
    metric_gauge(f, d, "aragora_raft_term", "gauge", "Current Raft term.", afc_node_term(n));
    write_raft_state(f, d);
    metric_gauge(f, d, "aragora_raft_leader_changes_total", "counter",
                 "Times the known Raft leader changed.", afc_node_leader_changes(n));
    metric_gauge(f, d, "aragora_raft_commit_index", "gauge", "Raft commit index.",
                 afc_node_commit_index(n));
    metric_gauge(f, d, "aragora_raft_applied_index", "gauge", "Last log index applied locally.",
                 afc_node_applied_index(n));
    metric_gauge(f, d, "aragora_epoch", "gauge", "Fencing epoch of the authorized primary.",
                 s ? s->epoch : 0);
    metric_gauge(f, d, "aragora_paused", "gauge", "1 if automatic failover is paused.",
                 s && s->paused);
    metric_gauge(f, d, "aragora_ready", "gauge", "1 if this node is ready (see /health/ready).",
                 afc_daemon_is_ready(d));
    metric_gauge(f, d, "aragora_rejected_commands_total", "counter",
                 "Replicated commands rejected by the state machine.", n->fsm.rejected_commands);
    write_counters(f, d);
}

static void h_metrics(struct http_req *r)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    write_metrics(f, http_req_daemon(r));
    if (fclose(f) != 0 || text == NULL) {
        free(text);
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    http_reply(r, 200, text, len, CT_METRICS);
}

/* ---- pause / resume ---- */

/* Constant-time over the presented token; only the lengths' equality leaks. */
static bool token_equal(const char *given, size_t glen, const char *want, size_t wlen)
{
    unsigned char diff = glen != wlen;
    for (size_t i = 0; i < glen; i++) {
        diff |= (unsigned char)given[i] ^ (unsigned char)want[i % wlen];
    }
    return diff == 0;
}

/* NULL if authorized, else the reason for the 401. */
static const char *check_auth(struct http_req *r)
{
    const struct afc_daemon *d = http_req_daemon(r);
    const char *want = d->cfg.api_token;
    if (want[0] == '\0') {
        return "no API token is configured on this node: mutating endpoints are disabled";
    }
    const char *h = http_req_header(r, "Authorization");
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
        return "missing \"Authorization: Bearer <token>\"";
    }
    const char *tok = h + 7;
    while (*tok == ' ') {
        tok++;
    }
    if (!token_equal(tok, strlen(tok), want, strlen(want))) {
        return "invalid token";
    }
    return NULL;
}

/* A proposal in flight. Freed by its callback (which always runs once); `r` is cleared if the
 * request ends first. */
struct pause_op {
    struct afc_propose prop;
    struct http_req *r;
    bool paused;
};

static void pause_abort(struct http_req *r, void *arg)
{
    (void)r;
    struct pause_op *op = arg;
    op->r = NULL;
}

static void pause_answer(struct pause_op *op, int status, enum afc_apply_result res)
{
    struct http_req *r = op->r;
    if (status == 0 && (res == AFC_APPLY_OK || res == AFC_APPLY_NOOP)) {
        reply_json(r, 200,
                   json_pack("{s:b, s:I, s:b}", "paused", op->paused, "index",
                             (json_int_t)op->prop.raft_req.index, "changed", res == AFC_APPLY_OK));
    } else if (status == 0) {
        http_reply_error(r, 409, "rejected", afc_apply_result_name(res));
    } else if (status == AFC_ELEADERSHIPLOST) {
        http_reply_error(r, 503, "leadership_lost",
                         "leadership lost before the command committed: outcome unknown, retry");
    } else if (status == AFC_ESHUTDOWN) {
        http_reply_error(r, 503, "shutting_down", "the coordinator is shutting down");
    } else if (status == AFC_ENOTLEADER) {
        http_reply_error(r, 503, "not_leader", "this node is no longer the leader; retry");
    } else {
        http_reply_error(r, 500, "internal", afc_strerror(status));
    }
}

static void pause_done_cb(struct afc_propose *req, int status, enum afc_apply_result res)
{
    struct pause_op *op = req->data;
    if (op->r != NULL) {
        pause_answer(op, status, res);
    }
    free(op);
}

static void propose_pause(struct http_req *r, bool paused, const char *reason)
{
    struct afc_daemon *d = http_req_daemon(r);
    struct pause_op *op = calloc(1, sizeof *op);
    if (op == NULL) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    struct afc_cmd cmd;
    afc_cmd_start(&cmd, AFC_OP_PAUSE, d->cfg.region);
    cmd.u.pause.paused = paused;
    snprintf(cmd.u.pause.reason, sizeof cmd.u.pause.reason, "%s", reason);
    op->prop.data = op;
    op->paused = paused;
    int rc = afc_node_propose(&d->node, &op->prop, &cmd, pause_done_cb);
    if (rc != 0) {
        free(op);
        http_reply_error(r, rc == AFC_ENOTLEADER || rc == AFC_ENOTREADY ? 503 : 500,
                         rc == AFC_ENOTLEADER ? "not_leader" : "propose_failed", afc_strerror(rc));
        return;
    }
    op->r = r;
    http_suspend(r, pause_abort, op);
}

/*
 * A forward in flight. After the leader has answered with the log index of the change, the
 * follower holds the answer until it has applied that index itself (bounded by
 * FWD_APPLY_WAIT_MS), so a client that then reads from the same node sees its own write.
 * Freed (through the close of its timer) when answered or when the request ends first.
 */
#define FWD_APPLY_WAIT_MS 2000
#define FWD_APPLY_POLL_MS 10

struct fwd_op {
    struct http_req *r;
    struct fwd_req *f; /* NULL once the leader has answered */
    char leader[AFC_NAME_MAX];
    uv_timer_t wait; /* polls the local applied index while holding the leader's answer */
    char *body;      /* the held answer (malloc'd) */
    size_t len;
    unsigned status;
    uint64_t index;
    uint64_t deadline_ms;
};

static void fwd_op_closed_cb(uv_handle_t *h)
{
    struct fwd_op *op = h->data;
    free(op->body);
    free(op);
}

static void fwd_op_free(struct fwd_op *op)
{
    uv_close((uv_handle_t *)&op->wait, fwd_op_closed_cb);
}

static void fwd_abort(struct http_req *r, void *arg)
{
    (void)r;
    struct fwd_op *op = arg;
    if (op->f != NULL) {
        fwd_cancel(op->f);
    }
    fwd_op_free(op);
}

static void fwd_release(struct fwd_op *op)
{
    if (op->status == 401) {
        http_add_header(op->r, "WWW-Authenticate", "Bearer realm=\"aragora\"");
    }
    http_reply(op->r, op->status, op->body, op->len, CT_JSON);
    op->body = NULL; /* transferred to http_reply */
    fwd_op_free(op);
}

static void fwd_wait_cb(uv_timer_t *t)
{
    struct fwd_op *op = t->data;
    const struct afc_daemon *d = http_req_daemon(op->r);
    uint64_t applied = afc_node_applied_index(&d->node);
    if (applied < op->index && uv_now(t->loop) < op->deadline_ms) {
        return;
    }
    if (applied < op->index) {
        afc_info("http: forwarded change at index %llu not applied here after %d ms (applied %llu)",
                 (unsigned long long)op->index, FWD_APPLY_WAIT_MS, (unsigned long long)applied);
    }
    uv_timer_stop(t);
    fwd_release(op);
}

/* The log index a successful leader answer carries, or 0. */
static uint64_t answer_index(const json_t *doc, long status)
{
    json_t *idx = status == 200 ? json_object_get(doc, "index") : NULL;
    return json_is_integer(idx) && json_integer_value(idx) > 0 ? (uint64_t)json_integer_value(idx)
                                                               : 0;
}

/* Relay the leader's answer; returns true if the op now waits for the local apply (op kept). */
static bool relay_answer(struct fwd_op *op, const struct fwd_result *res)
{
    json_t *doc = json_loadb(res->body, res->len, 0, NULL);
    if (doc == NULL || res->status < 100 || res->status > 599) {
        json_decref(doc);
        afc_info("http: forward to leader %s: answer is not JSON (status %ld)", op->leader,
                 res->status);
        http_reply_error(op->r, 502, "bad_leader_response", "the leader's answer was not JSON");
        return false;
    }
    op->index = answer_index(doc, res->status);
    json_decref(doc);
    op->body = malloc(res->len + 1);
    if (op->body == NULL) {
        http_reply_error(op->r, 500, "internal", "out of memory");
        return false;
    }
    memcpy(op->body, res->body, res->len);
    op->len = res->len;
    op->status = (unsigned)res->status;
    const struct afc_daemon *d = http_req_daemon(op->r);
    if (op->index == 0 || afc_node_applied_index(&d->node) >= op->index) {
        fwd_release(op);
        return true;
    }
    op->deadline_ms = uv_now(d->loop) + FWD_APPLY_WAIT_MS;
    uv_timer_start(&op->wait, fwd_wait_cb, FWD_APPLY_POLL_MS, FWD_APPLY_POLL_MS);
    return true;
}

static void fwd_done_cb(void *arg, const struct fwd_result *res)
{
    struct fwd_op *op = arg;
    struct http_req *r = op->r;
    char msg[AFC_ERR_MSG_MAX];
    op->f = NULL; /* the transfer is over */
    if (res->curl_code == 0) {
        if (relay_answer(op, res)) {
            return; /* answered and freed, or waiting for the local apply */
        }
    } else if (res->connect_fail) {
        snprintf(msg, sizeof msg, "leader %s unreachable (nothing was sent): %s", op->leader,
                 res->error);
        http_reply_error(r, 502, "leader_unreachable", msg);
    } else if (res->timed_out) {
        snprintf(msg, sizeof msg, "leader %s did not answer in time: outcome unknown, retry",
                 op->leader);
        http_reply_error(r, 503, "leader_timeout", msg);
    } else {
        snprintf(msg, sizeof msg, "forward to leader %s failed: %s", op->leader, res->error);
        http_reply_error(r, 502, "leader_error", msg);
    }
    fwd_op_free(op);
}

static int build_url(char *url, size_t cap, const char *base, const char *path)
{
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/') {
        n--;
    }
    int w = snprintf(url, cap, "%.*s%s", (int)n, base, path);
    return w < 0 || (size_t)w >= cap ? -1 : 0;
}

static void forward_to_leader(struct http_req *r)
{
    struct afc_daemon *d = http_req_daemon(r);
    afc_region_id lid = afc_node_leader_id(&d->node);
    const struct afc_node_member *m = lid ? afc_node_member(&d->node, lid) : NULL;
    char url[AFC_URL_MAX + 64];
    if (lid == 0 || m == NULL || lid == d->cfg.region_id) {
        http_reply_error(r, 503, "no_leader", "no leader known; retry later");
        return;
    }
    if (m->api_url[0] == '\0' || build_url(url, sizeof url, m->api_url, http_req_path(r)) != 0) {
        http_reply_error(r, 503, "no_leader_url", "the leader has no usable api_url");
        return;
    }
    struct fwd_op *op = calloc(1, sizeof *op);
    if (op == NULL) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    size_t len;
    const char *body = http_req_body(r, &len);
    op->r = r;
    uv_timer_init(d->loop, &op->wait);
    op->wait.data = op;
    snprintf(op->leader, sizeof op->leader, "%s", m->name);
    op->f =
        fwd_post(http_fwd(r), url, http_req_header(r, "Authorization"), body, len, fwd_done_cb, op);
    if (op->f == NULL) {
        fwd_op_free(op);
        http_reply_error(r, 503, "forward_failed", "could not start forwarding to the leader");
        return;
    }
    afc_debug("http: forwarding %s to leader %s", http_req_path(r), m->name);
    http_suspend(r, fwd_abort, op);
}

bool api_authorized(struct http_req *r)
{
    const char *why = check_auth(r);
    if (why != NULL) {
        http_add_header(r, "WWW-Authenticate", "Bearer realm=\"aragora\"");
        http_reply_error(r, 401, "unauthorized", why);
        return false;
    }
    return true;
}

bool api_on_leader(struct http_req *r)
{
    const struct afc_node *n = &http_req_daemon(r)->node;
    if (afc_node_is_ready(n)) {
        return true;
    }
    if (afc_node_raft_state(n) == RAFT_LEADER) {
        http_reply_error(r, 503, "leader_not_ready",
                         "this node is the leader but has not applied its election barrier yet; "
                         "retry");
    } else if (http_req_header(r, HTTP_FORWARDED_HDR) != NULL) {
        http_reply_error(r, 503, "not_leader",
                         "forwarded request reached a node that is not the leader; retry");
    } else {
        forward_to_leader(r);
    }
    return false;
}

static void pause_or_resume(struct http_req *r, bool paused)
{
    if (!api_authorized(r)) {
        return;
    }
    size_t len;
    const char *why = NULL;
    const char *body = http_req_body(r, &len);
    char reason[AFC_DETAIL_MAX];
    if (json_parse_reason(body, len, reason, sizeof reason, &why) != 0) {
        http_reply_error(r, 400, "bad_request", why);
        return;
    }
    if (api_on_leader(r)) {
        propose_pause(r, paused, reason);
    }
}

static void h_pause(struct http_req *r)
{
    pause_or_resume(r, true);
}

static void h_resume(struct http_req *r)
{
    pause_or_resume(r, false);
}

/* ---- routing ---- */

struct route {
    const char *path;
    bool post; /* POST only; otherwise GET and HEAD */
    void (*fn)(struct http_req *r);
};

static const struct route routes[] = {
    {"/health/live", false, h_live},
    {"/health/ready", false, h_ready},
    {"/leader", false, h_leader},
    {"/v1/cluster", false, h_cluster},
    {"/v1/history", false, h_history},
    {"/metrics", false, h_metrics},
    {"/v1/pause", true, h_pause},
    {"/v1/resume", true, h_resume},
    {"/v1/internal/propose", true, api_internal_propose},
    {"/v1/decision", false, api_decision},
    {"/v1/drain", true, api_drain},
    {"/v1/switchover", true, api_switchover},
    {"/v1/failover", true, api_failover},
    {"/primary", false, api_primary},
    {"/read-write", false, api_primary},
    {"/replica", false, api_replica},
#ifdef AFC_FAULT_POINTS
    {"/v1/test/fault-points", true, afc_fault_points_api}, /* test builds only */
#endif
};

static bool method_allowed(const struct route *rt, const char *method)
{
    if (rt->post) {
        return strcmp(method, "POST") == 0;
    }
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

void api_dispatch(struct http_req *r)
{
    const char *path = http_req_path(r);
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const struct route *rt = &routes[i];
        if (strcmp(path, rt->path) != 0) {
            continue;
        }
        if (!method_allowed(rt, http_req_method(r))) {
            http_add_header(r, "Allow", rt->post ? "POST" : "GET, HEAD");
            http_reply_error(r, 405, "method_not_allowed", "method not allowed on this path");
            return;
        }
        rt->fn(r);
        return;
    }
    http_reply_error(r, 404, "not_found", "no such endpoint");
}
