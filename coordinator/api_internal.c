/*
 * POST /v1/internal/propose: how a coordinator that is not the leader gets its observation, lease
 * renewal or failover-step report into the log (coordinator/report.h).
 *
 * The body is one encoded command (the same msgpack bytes that go into the log); the request is
 * signed with HMAC-SHA256 over the body with the cluster secret. Only the ops a coordinator reports
 * are accepted; decisions (failover-begin, promote, pause) are never taken from the network. The
 * answer comes once the entry is applied on this node: 200 {"index":N,"result":"ok"|...}.
 */
#include <stdlib.h>
#include <string.h>

#include "afc/log.h"
#include "coordinator/daemon.h"
#include "coordinator/http_internal.h"
#include "coordinator/report.h"

struct internal_op {
    struct afc_propose prop;
    struct http_req *r; /* NULL once the client is gone */
};

static void internal_abort(struct http_req *r, void *arg)
{
    (void)r;
    struct internal_op *op = arg;
    op->r = NULL; /* the proposal still completes; its callback frees op */
}

static void internal_done_cb(struct afc_propose *p, int status, enum afc_apply_result result)
{
    struct internal_op *op = p->data;
    if (op->r != NULL) {
        if (status == 0) {
            http_reply_json(op->r, 200,
                            json_pack("{s:I, s:s}", "index", (json_int_t)p->raft_req.index,
                                      "result", afc_apply_result_name(result)));
        } else {
            http_reply_error(op->r, 503,
                             status == AFC_ELEADERSHIPLOST ? "leadership_lost" : "not_committed",
                             afc_strerror(status));
        }
    }
    free(op);
}

static bool is_reportable(enum afc_op op)
{
    return op == AFC_OP_OBSERVE || op == AFC_OP_RENEW || op == AFC_OP_FAILOVER_STEP ||
           op == AFC_OP_NOTE || op == AFC_OP_ROUTED || op == AFC_OP_PUBLISHED ||
           op == AFC_OP_SYNC_SET;
}

void api_internal_propose(struct http_req *r)
{
    struct afc_daemon *d = http_req_daemon(r);
    size_t len;
    const char *body = http_req_body(r, &len);
    if (!afc_signature_ok(d->cfg.cluster_secret, d->cfg.cluster_secret_len, body, len,
                          http_req_header(r, "Authorization"))) {
        http_reply_error(r, 401, "bad_signature",
                         "internal requests must be signed with the cluster secret");
        return;
    }
    struct afc_cmd cmd;
    struct afc_err why = {0};
    if (afc_cmd_decode(body, len, &cmd, &why) != 0) {
        http_reply_error(r, 400, "bad_command", why.msg);
        return;
    }
    if (!is_reportable(cmd.op)) {
        http_reply_error(
            r, 403, "op_not_allowed",
            "only observe, renew, failover-step, note, routed, published and sync-set");
        return;
    }
    if (!afc_node_is_ready(&d->node)) {
        http_reply_error(r, 503, "not_leader", "this node is not the ready leader");
        return;
    }
    struct internal_op *op = calloc(1, sizeof *op);
    if (op == NULL) {
        http_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    op->prop.data = op;
    int rv = afc_node_propose(&d->node, &op->prop, &cmd, internal_done_cb);
    if (rv != 0) {
        free(op);
        http_reply_error(r, 503, "not_leader", afc_strerror(rv));
        return;
    }
    op->r = r;
    http_suspend(r, internal_abort, op);
}
