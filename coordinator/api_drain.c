/*
 * POST /v1/drain {"region": R, "drained": true|false, "reason": "..."}: set or clear a member's
 * replicated drained flag (AFC_OP_DRAIN). A drained member is never chosen as a failover candidate
 * (coordinator/decide.c) until it is undrained. Draining does not move the primary by itself:
 * `aragoractl drain-region` follows with a switchover when R is the primary.
 *
 * Flow, like pause/resume (api.c): bearer token (api_authorized), body parsed, then on the ready
 * leader the command is proposed and the answer sent from the proposal's callback; a follower
 * forwards to the leader (api_on_leader), which answers with the log index so the follower can
 * wait until it has applied the change itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coordinator/daemon.h"
#include "coordinator/http_internal.h"
#include "coordinator/report.h"

struct drain_req {
    char region[AFC_NAME_MAX];
    bool drained;
    char reason[AFC_DETAIL_MAX];
};

/* A proposal in flight; freed by its callback (which always runs once). `r` is cleared if the
 * request ends first. */
struct drain_op {
    struct afc_propose prop;
    struct http_req *r;
    struct drain_req req;
};

/* Returns NULL and fills *out, or the reason the body is refused (static text). */
static const char *parse_body(const char *body, size_t len, struct drain_req *out)
{
    json_t *doc = json_loadb(body != NULL ? body : "", len, 0, NULL);
    json_t *region = json_object_get(doc, "region");
    json_t *drained = json_object_get(doc, "drained");
    json_t *reason = json_object_get(doc, "reason");
    const char *why = NULL;
    if (!json_is_object(doc)) {
        why =
            "expected a JSON object {\"region\": R, \"drained\": true|false, \"reason\": \"...\"}";
    } else if (!json_is_string(region) || json_string_length(region) == 0 ||
               json_string_length(region) >= AFC_NAME_MAX) {
        why = "\"region\" must be a non-empty region name";
    } else if (!json_is_boolean(drained)) {
        why = "\"drained\" must be true or false";
    } else if (reason != NULL &&
               (!json_is_string(reason) || json_string_length(reason) >= AFC_DETAIL_MAX)) {
        why = "\"reason\" must be a string of at most 127 bytes";
    } else {
        snprintf(out->region, sizeof out->region, "%s", json_string_value(region));
        out->drained = json_is_true(drained);
        snprintf(out->reason, sizeof out->reason, "%s", reason ? json_string_value(reason) : "");
    }
    json_decref(doc);
    return why;
}

static void drain_abort(struct http_req *r, void *arg)
{
    (void)r;
    ((struct drain_op *)arg)->r = NULL;
}

static void drain_answer(struct drain_op *op, int status, enum afc_apply_result res)
{
    struct http_req *r = op->r;
    if (status == 0 && (res == AFC_APPLY_OK || res == AFC_APPLY_NOOP)) {
        http_reply_json(r, 200,
                        json_pack("{s:s, s:b, s:b, s:I}", "region", op->req.region, "drained",
                                  op->req.drained, "changed", res == AFC_APPLY_OK, "index",
                                  (json_int_t)op->prop.raft_req.index));
    } else if (status == 0) {
        http_reply_error(r, 409, "rejected", afc_apply_result_name(res));
    } else if (status == AFC_ELEADERSHIPLOST) {
        http_reply_error(r, 503, "leadership_lost",
                         "leadership lost before the command committed: outcome unknown, retry");
    } else if (status == AFC_ESHUTDOWN) {
        http_reply_error(r, 503, "shutting_down", "the coordinator is shutting down");
    } else {
        http_reply_error(r, status == AFC_ENOTLEADER ? 503 : 500,
                         status == AFC_ENOTLEADER ? "not_leader" : "internal",
                         afc_strerror(status));
    }
}

static void drain_done_cb(struct afc_propose *p, int status, enum afc_apply_result res)
{
    struct drain_op *op = p->data;
    if (op->r != NULL) {
        drain_answer(op, status, res);
    }
    free(op);
}

static void propose_drain(struct http_req *r, const struct drain_req *req)
{
    struct afc_daemon *d = http_req_daemon(r);
    struct drain_op *op = calloc(1, sizeof *op);
    if (op == NULL) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    struct afc_cmd cmd;
    afc_cmd_start(&cmd, AFC_OP_DRAIN, d->cfg.region);
    snprintf(cmd.u.drain.region, sizeof cmd.u.drain.region, "%s", req->region);
    cmd.u.drain.drained = req->drained;
    snprintf(cmd.u.drain.reason, sizeof cmd.u.drain.reason, "%s", req->reason);
    op->req = *req;
    op->prop.data = op;
    int rc = afc_node_propose(&d->node, &op->prop, &cmd, drain_done_cb);
    if (rc != 0) {
        free(op);
        http_reply_error(r, rc == AFC_ENOTLEADER || rc == AFC_ENOTREADY ? 503 : 500,
                         rc == AFC_ENOTLEADER ? "not_leader" : "propose_failed", afc_strerror(rc));
        return;
    }
    op->r = r;
    http_suspend(r, drain_abort, op);
}

void api_drain(struct http_req *r)
{
    if (!api_authorized(r)) {
        return;
    }
    struct drain_req req;
    size_t len;
    const char *body = http_req_body(r, &len);
    const char *why = parse_body(body, len, &req);
    if (why != NULL) {
        http_reply_error(r, 400, "bad_request", why);
        return;
    }
    if (!api_on_leader(r)) {
        return; /* forwarded to the leader, or answered 503 */
    }
    const struct afc_state *s = afc_node_state(&http_req_daemon(r)->node);
    if (s == NULL || afc_state_member_by_name(s, req.region) == NULL) {
        char msg[96];
        snprintf(msg, sizeof msg, "%s is not a member", req.region);
        http_reply_error(r, 400, "unknown_region", msg);
        return;
    }
    propose_drain(r, &req);
}
