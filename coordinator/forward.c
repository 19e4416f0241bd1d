/*
 * Forwarding a follower's POST to the leader, through the daemon's HTTP client (http_client.c:
 * libcurl's multi interface on the uv loop). This file only shapes the request (JSON, the
 * caller's Authorization, X-Aragora-Forwarded: 1, 5 s in total, 2 s to connect) and translates
 * the answer into a fwd_result; the transfer itself is the client's.
 *
 * An answer larger than HTTP_FWD_RESP_MAX is refused as a failed transfer (CURLE_WRITE_ERROR),
 * as before the client existed: the leader never sends one, so it is not the leader's answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "afc/http_client.h"
#include "coordinator/http_internal.h"

struct fwd_multi {
    struct afc_http_client *http;
    struct fwd_req *reqs; /* in flight */
    void (*close_cb)(void *arg);
    void *close_arg;
};

struct fwd_req {
    struct fwd_multi *m;
    struct fwd_req *prev, *next; /* m->reqs */
    struct afc_http_call *call;
    fwd_cb cb;
    void *arg;
};

static void req_unlink_free(struct fwd_req *f)
{
    if (f->prev) {
        f->prev->next = f->next;
    } else {
        f->m->reqs = f->next;
    }
    if (f->next) {
        f->next->prev = f->prev;
    }
    free(f);
}

struct fwd_multi *fwd_multi_new(uv_loop_t *loop)
{
    struct fwd_multi *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return NULL;
    }
    m->http = afc_http_client_new(loop);
    if (m->http == NULL) {
        free(m);
        return NULL;
    }
    return m;
}

static void http_closed_cb(void *arg)
{
    struct fwd_multi *m = arg;
    void (*cb)(void *) = m->close_cb;
    void *cb_arg = m->close_arg;
    free(m);
    if (cb != NULL) {
        cb(cb_arg);
    }
}

void fwd_multi_close(struct fwd_multi *m, void (*cb)(void *arg), void *arg)
{
    m->close_cb = cb;
    m->close_arg = arg;
    while (m->reqs != NULL) {
        fwd_cancel(m->reqs); /* their callbacks never run */
    }
    afc_http_client_close(m->http, http_closed_cb, m);
}

void fwd_cancel(struct fwd_req *f)
{
    afc_http_cancel(f->call);
    req_unlink_free(f);
}

static void fwd_done_cb(void *data, const struct afc_http_response *res)
{
    struct fwd_req *f = data;
    struct fwd_result r = {.curl_code = res->curl_code, .status = res->status};
    char error[64];
    if (res->curl_code == CURLE_OK && res->body_len > HTTP_FWD_RESP_MAX) {
        snprintf(error, sizeof error, "answer larger than %d bytes", HTTP_FWD_RESP_MAX);
        r.curl_code = CURLE_WRITE_ERROR;
        r.error = error;
    } else if (res->curl_code == CURLE_OK) {
        r.body = res->body;
        r.len = res->body_len;
    } else {
        r.timed_out = res->curl_code == CURLE_OPERATION_TIMEDOUT;
        r.connect_fail = res->nothing_sent; /* nothing reached the leader */
        r.error = res->error;
    }
    fwd_cb cb = f->cb;
    void *arg = f->arg;
    req_unlink_free(f); /* the call is over: the owner drops its pointer in the callback */
    cb(arg, &r);
}

struct fwd_req *fwd_post(struct fwd_multi *m, const char *url, const char *authorization,
                         const char *body, size_t len, fwd_cb cb, void *arg)
{
    struct afc_http_request req = {
        .method = "POST",
        .url = url,
        .headers = {{"Content-Type", "application/json"},
                    {"Accept", "application/json"},
                    {HTTP_FORWARDED_HDR, "1"}},
        .n_headers = 3,
        .body = body != NULL ? body : "",
        .body_len = body != NULL ? len : 0,
        .timeout_ms = HTTP_FWD_TIMEOUT_MS,
        .connect_timeout_ms = HTTP_FWD_CONNECT_MS,
    };
    if (authorization != NULL) {
        req.headers[req.n_headers++] = (struct afc_http_header){"Authorization", authorization};
    }
    struct fwd_req *f = calloc(1, sizeof *f);
    if (f == NULL) {
        return NULL;
    }
    f->m = m;
    f->cb = cb;
    f->arg = arg;
    f->call = afc_http_call_start(m->http, &req, fwd_done_cb, f, NULL);
    if (f->call == NULL) {
        free(f);
        return NULL;
    }
    f->next = m->reqs;
    if (m->reqs != NULL) {
        m->reqs->prev = f;
    }
    m->reqs = f;
    return f;
}
