/*
 * The HTTP API server: libmicrohttpd 0.9.75 driven by the daemon's libuv loop (raft-0.15.md §9).
 *
 * MHD runs in external mode with its own epoll set (MHD_USE_EPOLL, no internal thread: raft must
 * only ever be called from the loop thread). A uv_poll watches MHD's epoll fd, a uv_timer is
 * re-armed from MHD_get_timeout() after every MHD_run(), and MHD_run() is called on each wake.
 *
 * Per request: the access handler accumulates the body (at most HTTP_BODY_MAX, else 413), then
 * calls api_dispatch() once. The handler either answers at once or goes asynchronous; then the
 * connection is suspended (MHD_ALLOW_SUSPEND_RESUME) and resumed by http_reply(), after which MHD
 * calls the access handler again and the stored answer is queued.
 *
 * Limits keep a slow or hostile client from disturbing the daemon: connection count (total and per
 * IP), idle timeout, header memory, body size. MHD itself answers 400/413/431 for unparseable HTTP.
 *
 * afc_http_stop: stop accepting (MHD_quiesce_daemon), abort asynchronous work and answer it with
 * 503, let the answers drain (at most HTTP_DRAIN_MS), then MHD_stop_daemon, close the uv handles
 * and the forwarder, and call the callback once everything is closed.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "afc/log.h"
#include "coordinator/daemon.h"
#include "coordinator/http_internal.h"

#define HTTP_CONN_LIMIT     256u
#define HTTP_PER_IP_LIMIT   64u
#define HTTP_IDLE_TIMEOUT_S 10u
#define HTTP_CONN_MEMORY    (32u * 1024u)   /* request line + headers must fit */
#define HTTP_DISCARD_MAX    (1024u * 1024u) /* past this, an oversized chunked body drops the peer */
#define HTTP_DRAIN_MS       1000
#define HTTP_STATUS_SLOTS   32

struct http_req {
    struct afc_http *h;
    struct MHD_Connection *conn;
    struct http_req *prev, *next; /* h->live */
    const char *method;           /* MHD's strings, valid until the request completes */
    const char *path;
    char *body;
    size_t body_len, body_cap;
    bool too_big;     /* body passed HTTP_BODY_MAX: being discarded, 413 at the end */
    size_t discarded; /* bytes seen while too_big */
    bool dispatched;
    bool want_suspend; /* api went asynchronous: suspend when the handler returns */
    bool suspended;
    bool answered; /* a response is stored (or queued) */
    bool queued;
    unsigned status;
    char *resp;
    size_t resp_len;
    const char *ctype;
    const char *hdr_name[HTTP_EXTRA_HDRS];
    const char *hdr_value[HTTP_EXTRA_HDRS];
    unsigned n_hdrs;
    http_abort_fn abort_fn;
    void *abort_arg;
};

struct afc_http {
    struct afc_daemon *d;
    struct MHD_Daemon *mhd;
    uv_poll_t poll;
    uv_timer_t timer;
    uv_timer_t drain_timer;
    struct fwd_multi *fwd;
    struct http_req *live;
    unsigned n_live;
    bool stopping;
    bool finishing;
    int handles_open;
    void (*stop_cb)(struct afc_daemon *d);
    unsigned n_codes;
    unsigned codes[HTTP_STATUS_SLOTS];
    uint64_t counts[HTTP_STATUS_SLOTS];
};

/* ---- accessors used by api.c ---- */

struct afc_daemon *http_req_daemon(const struct http_req *r)
{
    return r->h->d;
}

const char *http_req_method(const struct http_req *r)
{
    return r->method;
}

const char *http_req_path(const struct http_req *r)
{
    return r->path;
}

const char *http_req_header(const struct http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_req_query(const struct http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_req_body(const struct http_req *r, size_t *len)
{
    *len = r->body_len;
    return r->body_len ? r->body : NULL;
}

struct fwd_multi *http_fwd(const struct http_req *r)
{
    return r->h->fwd;
}

struct fwd_multi *http_daemon_fwd(const struct afc_daemon *d)
{
    return d->http != NULL && !d->http->stopping ? d->http->fwd : NULL;
}

unsigned http_status_count(const struct afc_daemon *d, unsigned i, unsigned *code, uint64_t *count)
{
    const struct afc_http *h = d->http;
    if (h == NULL) {
        return 0;
    }
    if (i < h->n_codes) {
        *code = h->codes[i];
        *count = h->counts[i];
    }
    return h->n_codes;
}

/* ---- the MHD loop on uv ---- */

static void maybe_finish(struct afc_http *h);

static void timer_cb(uv_timer_t *t);

/* Re-arm the wake-up timer from MHD's own idea of its next deadline (connection timeouts, data
 * already buffered, resumed connections). */
static void arm_timer(struct afc_http *h)
{
    MHD_UNSIGNED_LONG_LONG ms = 0;
    if (MHD_get_timeout(h->mhd, &ms) != MHD_YES) {
        uv_timer_stop(&h->timer);
        return;
    }
    uv_timer_start(&h->timer, timer_cb, (uint64_t)ms, 0);
}

static void run_mhd(struct afc_http *h)
{
    if (h->finishing) {
        return;
    }
    MHD_run(h->mhd);
    arm_timer(h);
    maybe_finish(h);
}

static void poll_cb(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    run_mhd(p->data);
}

static void timer_cb(uv_timer_t *t)
{
    run_mhd(t->data);
}

/* Run MHD on the next loop iteration (after a resume), never from inside MHD_run itself. */
static void kick(struct afc_http *h)
{
    if (!h->finishing) {
        uv_timer_start(&h->timer, timer_cb, 0, 0);
    }
}

/* ---- answers ---- */

static void count_status(struct afc_http *h, unsigned status)
{
    for (unsigned i = 0; i < h->n_codes; i++) {
        if (h->codes[i] == status) {
            h->counts[i]++;
            return;
        }
    }
    if (h->n_codes < HTTP_STATUS_SLOTS) {
        h->codes[h->n_codes] = status;
        h->counts[h->n_codes++] = 1;
    }
}

/* Client-supplied path made safe for a log line: printable ASCII only, bounded. */
static void log_safe(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (; in && *in && n + 1 < cap; in++) {
        unsigned char c = (unsigned char)*in;
        out[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    out[n] = '\0';
}

static void log_answer(const struct http_req *r)
{
    if (r->status >= 200 && r->status < 300) {
        return;
    }
    char method[16], path[160];
    log_safe(r->method, method, sizeof method);
    log_safe(r->path, path, sizeof path);
    afc_info("http: %s %s -> %u", method, path, r->status);
}

static struct MHD_Response *build_response(struct http_req *r)
{
    struct MHD_Response *resp;
    if (r->resp != NULL) {
        resp = MHD_create_response_from_buffer(r->resp_len, r->resp, MHD_RESPMEM_MUST_FREE);
        if (resp != NULL) {
            r->resp = NULL; /* MHD owns it now */
        }
    } else {
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    if (resp == NULL) {
        return NULL;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    for (unsigned i = 0; i < r->n_hdrs; i++) {
        MHD_add_response_header(resp, r->hdr_name[i], r->hdr_value[i]);
    }
    if (r->h->stopping) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    }
    return resp;
}

static enum MHD_Result queue_answer(struct http_req *r)
{
    struct MHD_Response *resp = build_response(r);
    if (resp == NULL) {
        return MHD_NO; /* out of memory: drop the connection */
    }
    enum MHD_Result rc = MHD_queue_response(r->conn, r->status, resp);
    MHD_destroy_response(resp);
    if (rc == MHD_YES) {
        r->queued = true;
        count_status(r->h, r->status);
        log_answer(r);
    }
    return rc;
}

void http_reply(struct http_req *r, unsigned status, char *body, size_t len, const char *ctype)
{
    if (r->answered) {
        free(body);
        return;
    }
    r->answered = true;
    r->status = status;
    r->resp = body;
    r->resp_len = body ? len : 0;
    r->ctype = ctype;
    r->abort_fn = NULL;
    if (r->suspended) {
        r->suspended = false;
        MHD_resume_connection(r->conn);
        kick(r->h);
    }
}

void http_reply_json(struct http_req *r, unsigned status, json_t *doc)
{
    size_t len = 0;
    char *text = doc ? json_render(doc, &len) : NULL;
    json_decref(doc);
    if (text == NULL) {
        static const char oom[] = "{\"error\":\"internal\",\"message\":\"out of memory\"}\n";
        char *copy = strdup(oom);
        http_reply(r, 500, copy, copy ? sizeof oom - 1 : 0, "application/json");
        return;
    }
    http_reply(r, status, text, len, "application/json");
}

void http_reply_error(struct http_req *r, unsigned status, const char *code, const char *message)
{
    http_reply_json(r, status, json_error_new(code, message));
}

void http_add_header(struct http_req *r, const char *name, const char *value)
{
    if (r->n_hdrs < HTTP_EXTRA_HDRS) {
        r->hdr_name[r->n_hdrs] = name;
        r->hdr_value[r->n_hdrs++] = value;
    }
}

void http_suspend(struct http_req *r, http_abort_fn abort_fn, void *arg)
{
    r->want_suspend = true;
    r->abort_fn = abort_fn;
    r->abort_arg = arg;
}

/* ---- per-request lifecycle ---- */

static struct http_req *req_new(struct afc_http *h, struct MHD_Connection *c, const char *method,
                                const char *url)
{
    struct http_req *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return NULL;
    }
    r->h = h;
    r->conn = c;
    r->method = method;
    r->path = url;
    r->next = h->live;
    if (h->live) {
        h->live->prev = r;
    }
    h->live = r;
    h->n_live++;
    return r;
}

static void req_free(struct http_req *r)
{
    struct afc_http *h = r->h;
    if (r->abort_fn) {
        http_abort_fn fn = r->abort_fn;
        r->abort_fn = NULL;
        fn(r, r->abort_arg);
    }
    if (r->prev) {
        r->prev->next = r->next;
    } else {
        h->live = r->next;
    }
    if (r->next) {
        r->next->prev = r->prev;
    }
    h->n_live--;
    free(r->body);
    free(r->resp);
    free(r);
}

static void completed_cb(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    if (*con_cls != NULL) {
        req_free(*con_cls);
        *con_cls = NULL;
    }
}

static bool declared_too_big(struct MHD_Connection *c)
{
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl == NULL) {
        return false;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(cl, &end, 10);
    return errno != 0 || n > HTTP_BODY_MAX;
}

static void reply_too_big(struct http_req *r)
{
    http_add_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    http_reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large",
                     "request body exceeds 65536 bytes");
}

/* Append a chunk of the body: 0, AFC_ETOOBIG past the limit, AFC_ENOMEM. */
static int append_body(struct http_req *r, const char *data, size_t n)
{
    if (n > HTTP_BODY_MAX - r->body_len) {
        return AFC_ETOOBIG;
    }
    if (r->body_len + n > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 1024;
        while (cap < r->body_len + n) {
            cap *= 2;
        }
        char *nb = realloc(r->body, cap);
        if (nb == NULL) {
            return AFC_ENOMEM;
        }
        r->body = nb;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    return 0;
}

/* First call for a request: headers only. */
static enum MHD_Result on_headers(struct afc_http *h, struct MHD_Connection *c, const char *url,
                                  const char *method, void **con_cls)
{
    struct http_req *r = req_new(h, c, method, url);
    if (r == NULL) {
        return MHD_NO;
    }
    *con_cls = r;
    if (declared_too_big(c)) {
        reply_too_big(r);
        return queue_answer(r);
    }
    return MHD_YES;
}

static enum MHD_Result on_body(struct http_req *r, const char *data, size_t *size)
{
    size_t n = *size;
    *size = 0;
    if (r->answered) {
        return MHD_YES; /* 413 already queued at the headers: MHD skips the body */
    }
    if (r->too_big) {
        /* A body without Content-Length (chunked) passed the limit: MHD 0.9.75 cannot answer in
         * the middle of a body, so discard up to HTTP_DISCARD_MAX and answer 413 at the end. */
        r->discarded += n;
        return r->discarded <= HTTP_DISCARD_MAX ? MHD_YES : MHD_NO;
    }
    int rc = append_body(r, data, n);
    if (rc == AFC_ETOOBIG) {
        r->too_big = true;
        r->discarded = r->body_len + n;
    }
    return rc == AFC_ENOMEM ? MHD_NO : MHD_YES;
}

static enum MHD_Result on_complete(struct http_req *r)
{
    if (!r->dispatched) {
        r->dispatched = true;
        if (r->too_big) {
            reply_too_big(r);
        } else if (r->h->stopping) {
            http_reply_error(r, 503, "shutting_down", "the coordinator is shutting down");
        } else {
            api_dispatch(r);
        }
    }
    if (r->answered) {
        return r->queued ? MHD_YES : queue_answer(r);
    }
    if (r->want_suspend && !r->suspended) {
        r->want_suspend = false;
        r->suspended = true;
        MHD_suspend_connection(r->conn);
    }
    return MHD_YES;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct http_req *r = *con_cls;
    if (r == NULL) {
        return on_headers(cls, c, url, method, con_cls);
    }
    if (*upload_data_size > 0) {
        return on_body(r, upload_data, upload_data_size);
    }
    return on_complete(r);
}

__attribute__((format(printf, 2, 0))) static void mhd_log_cb(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char text[512];
    vsnprintf(text, sizeof text, fmt, ap);
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r')) {
        text[--n] = '\0';
    }
    afc_debug("http: mhd: %s", text);
}

/* ---- start ---- */

/* "host:port", "[v6]:port" → a bound, listening, non-blocking socket. */
static int split_listen(const char *addr, char *host, size_t cap, const char **port)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon[1] == '\0') {
        return -1;
    }
    const char *h = addr;
    size_t hl = (size_t)(colon - addr);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl >= cap) {
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = colon + 1;
    return 0;
}

static int bind_listen(const struct addrinfo *ai, struct afc_err *err, const char *addr)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return afc_err_set(err, AFC_EIO, "api listen %s: socket: %s", addr, strerror(errno));
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 128) != 0) {
        int e = errno;
        close(fd);
        return afc_err_set(err, AFC_EIO, "api listen %s: bind: %s", addr, strerror(e));
    }
    return fd;
}

static int open_listen(const char *addr, struct afc_err *err)
{
    char host[AFC_ADDR_MAX];
    const char *port = NULL;
    if (split_listen(addr, host, sizeof host, &port) != 0) {
        return afc_err_set(err, AFC_EIO, "api listen '%s': expected host:port", addr);
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        return afc_err_set(err, AFC_EIO, "api listen %s: %s", addr, gai_strerror(rc));
    }
    int fd = bind_listen(res, err, addr);
    freeaddrinfo(res);
    return fd;
}

static struct MHD_Daemon *start_mhd(struct afc_http *h, int fd)
{
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    return MHD_start_daemon(
        flags, 0, NULL, NULL, access_cb, h, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
        MHD_OPTION_NOTIFY_COMPLETED, completed_cb, h, MHD_OPTION_CONNECTION_LIMIT, HTTP_CONN_LIMIT,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, HTTP_PER_IP_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
        HTTP_IDLE_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log_cb, h, MHD_OPTION_END);
}

static void free_on_close_cb(uv_handle_t *handle)
{
    free(handle->data);
}

static int start_loop_handles(struct afc_http *h, struct afc_err *err)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (info == NULL) {
        return afc_err_set(err, AFC_EIO, "api: libmicrohttpd has no epoll fd");
    }
    int rc = uv_poll_init(h->d->loop, &h->poll, info->epoll_fd);
    if (rc != 0) {
        return afc_err_set(err, AFC_EIO, "api: uv_poll_init: %s", uv_strerror(rc));
    }
    h->poll.data = h;
    h->fwd = fwd_multi_new(h->d->loop);
    if (h->fwd == NULL) {
        uv_close((uv_handle_t *)&h->poll, free_on_close_cb); /* frees h */
        return afc_err_set(err, AFC_ENOMEM, "api: curl multi: out of memory");
    }
    uv_timer_init(h->d->loop, &h->timer);
    uv_timer_init(h->d->loop, &h->drain_timer);
    h->timer.data = h;
    h->drain_timer.data = h;
    h->handles_open = 3;
    uv_poll_start(&h->poll, UV_READABLE, poll_cb);
    arm_timer(h);
    return 0;
}

int afc_http_start(struct afc_daemon *d, struct afc_err *err)
{
    struct afc_http *h = calloc(1, sizeof *h);
    if (h == NULL) {
        return afc_err_set(err, AFC_ENOMEM, "api: out of memory");
    }
    h->d = d;
    int fd = open_listen(d->cfg.api_listen, err);
    if (fd < 0) {
        free(h);
        return fd;
    }
    h->mhd = start_mhd(h, fd);
    if (h->mhd == NULL) {
        close(fd);
        free(h);
        return afc_err_set(err, AFC_EIO, "api listen %s: libmicrohttpd failed to start",
                           d->cfg.api_listen);
    }
    int rc = start_loop_handles(h, err);
    if (rc != 0) {
        MHD_stop_daemon(h->mhd); /* closes fd */
        if (rc != AFC_ENOMEM) {
            free(h);
        }
        return rc;
    }
    d->http = h;
    afc_info("http: api listening on %s", d->cfg.api_listen);
    return 0;
}

/* ---- stop ---- */

/* One of the 3 uv handles or the forwarder finished closing; the last one frees and calls back. */
static void closed_one(struct afc_http *h)
{
    if (--h->handles_open > 0) {
        return;
    }
    struct afc_daemon *d = h->d;
    void (*cb)(struct afc_daemon *) = h->stop_cb;
    d->http = NULL;
    free(h);
    if (cb) {
        cb(d);
    }
}

static void handle_closed_cb(uv_handle_t *handle)
{
    closed_one(handle->data);
}

static void fwd_closed_cb(void *arg)
{
    closed_one(arg);
}

/* Everything answered (or the drain deadline passed): tear down. Never called inside MHD_run. */
static void finish(struct afc_http *h)
{
    h->finishing = true;
    h->handles_open++; /* the forwarder counts as one */
    uv_close((uv_handle_t *)&h->poll, handle_closed_cb);
    uv_close((uv_handle_t *)&h->timer, handle_closed_cb);
    uv_close((uv_handle_t *)&h->drain_timer, handle_closed_cb);
    /* The poll handle is closed before MHD closes the epoll fd it watches. Remaining connections
     * (idle keep-alive, slow readers) are closed; notify_completed frees their requests. */
    MHD_stop_daemon(h->mhd);
    h->mhd = NULL;
    fwd_multi_close(h->fwd, fwd_closed_cb, h);
}

static void maybe_finish(struct afc_http *h)
{
    if (h->stopping && !h->finishing && h->n_live == 0) {
        finish(h);
    }
}

static void drain_timer_cb(uv_timer_t *t)
{
    struct afc_http *h = t->data;
    if (h->finishing) {
        return;
    }
    MHD_run(h->mhd); /* let resumed connections leave the suspended list */
    finish(h);
}

void afc_http_stop(struct afc_daemon *d, void (*cb)(struct afc_daemon *d))
{
    struct afc_http *h = d->http;
    if (h == NULL || h->stopping) {
        if (h == NULL && cb) {
            cb(d);
        }
        return;
    }
    h->stopping = true;
    h->stop_cb = cb;
    MHD_socket lfd = MHD_quiesce_daemon(h->mhd);
    if (lfd != MHD_INVALID_SOCKET) {
        close(lfd); /* external mode: ours to close now */
    }
    for (struct http_req *r = h->live; r != NULL; r = r->next) {
        if (r->abort_fn) {
            http_abort_fn fn = r->abort_fn;
            r->abort_fn = NULL;
            fn(r, r->abort_arg);
            http_reply_error(r, 503, "shutting_down", "the coordinator is shutting down");
        }
    }
    uv_timer_start(&h->drain_timer, drain_timer_cb, HTTP_DRAIN_MS, 0);
    kick(h);
}
