/*
 * Forwarding a follower's POST to the leader: libcurl's multi interface on the daemon's uv loop.
 *
 * The integration follows curl's multi-uv example: CURLMOPT_SOCKETFUNCTION tells us which sockets
 * to watch (one uv_poll per socket, created and closed on curl's request), CURLMOPT_TIMERFUNCTION
 * arms one uv_timer, and both call curl_multi_socket_action(). After every action finished
 * transfers are collected with curl_multi_info_read() and their callbacks run. Nothing blocks: the
 * threaded resolver is curl's, connects and I/O are non-blocking.
 *
 * Each transfer: no redirects followed, no proxy (environment proxies are ignored), http/https
 * only, HTTP_FWD_TIMEOUT_MS in total, an answer larger than HTTP_FWD_RESP_MAX is refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "coordinator/http_internal.h"

#ifndef AFC_VERSION
#define AFC_VERSION "dev"
#endif

struct fwd_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct fwd_multi *m;
    struct fwd_sock *prev, *next; /* m->socks, while active */
};

struct fwd_req {
    struct fwd_multi *m;
    struct fwd_req *prev, *next; /* m->reqs */
    CURL *easy;
    struct curl_slist *hdrs;
    char *resp;
    size_t len, cap;
    char errbuf[CURL_ERROR_SIZE];
    fwd_cb cb;
    void *arg;
};

struct fwd_multi {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    struct fwd_req *reqs;
    struct fwd_sock *socks;
    int handles_open; /* timer + poll handles not yet closed */
    bool closing;
    void (*close_cb)(void *arg);
    void *close_arg;
};

/* ---- handle bookkeeping ---- */

static void handle_closed(struct fwd_multi *m)
{
    if (--m->handles_open > 0 || !m->closing) {
        return;
    }
    void (*cb)(void *) = m->close_cb;
    void *arg = m->close_arg;
    free(m);
    curl_global_cleanup();
    if (cb) {
        cb(arg);
    }
}

static void sock_closed_cb(uv_handle_t *handle)
{
    struct fwd_sock *s = handle->data;
    struct fwd_multi *m = s->m;
    free(s);
    handle_closed(m);
}

static void timer_closed_cb(uv_handle_t *handle)
{
    handle_closed(handle->data);
}

static void sock_close(struct fwd_sock *s)
{
    struct fwd_multi *m = s->m;
    if (s->prev) {
        s->prev->next = s->next;
    } else {
        m->socks = s->next;
    }
    if (s->next) {
        s->next->prev = s->prev;
    }
    uv_close((uv_handle_t *)&s->poll, sock_closed_cb); /* stops watching the fd at once */
}

/* ---- finished transfers ---- */

static void req_unlink(struct fwd_req *f)
{
    struct fwd_multi *m = f->m;
    if (f->prev) {
        f->prev->next = f->next;
    } else {
        m->reqs = f->next;
    }
    if (f->next) {
        f->next->prev = f->prev;
    }
    curl_multi_remove_handle(m->multi, f->easy);
}

static void req_free(struct fwd_req *f)
{
    curl_easy_cleanup(f->easy);
    curl_slist_free_all(f->hdrs);
    free(f->resp);
    free(f);
}

static void fill_result(struct fwd_req *f, CURLcode code, struct fwd_result *res)
{
    memset(res, 0, sizeof *res);
    res->curl_code = (int)code;
    if (code == CURLE_OK) {
        curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &res->status);
        res->body = f->resp ? f->resp : "";
        res->len = f->len;
        return;
    }
    long sent = 0;
    curl_easy_getinfo(f->easy, CURLINFO_REQUEST_SIZE, &sent);
    res->timed_out = code == CURLE_OPERATION_TIMEDOUT;
    res->connect_fail = sent == 0; /* nothing reached the leader */
    res->error = f->errbuf[0] ? f->errbuf : curl_easy_strerror(code);
}

static void check_done(struct fwd_multi *m)
{
    CURLMsg *msg;
    int pending;
    while ((msg = curl_multi_info_read(m->multi, &pending)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        char *priv = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        struct fwd_req *f = (struct fwd_req *)priv;
        CURLcode code = msg->data.result;
        struct fwd_result res;
        fill_result(f, code, &res);
        req_unlink(f); /* msg is invalid from here on */
        f->cb(f->arg, &res);
        req_free(f);
    }
}

/* ---- curl ↔ uv ---- */

static void poll_cb(uv_poll_t *p, int status, int events)
{
    struct fwd_sock *s = p->data;
    struct fwd_multi *m = s->m;
    int flags = 0;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    }
    if (events & UV_READABLE) {
        flags |= CURL_CSELECT_IN;
    }
    if (events & UV_WRITABLE) {
        flags |= CURL_CSELECT_OUT;
    }
    int running;
    curl_multi_socket_action(m->multi, s->fd, flags, &running);
    check_done(m);
}

static void timeout_cb(uv_timer_t *t)
{
    struct fwd_multi *m = t->data;
    int running;
    curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(m);
}

static struct fwd_sock *sock_new(struct fwd_multi *m, curl_socket_t fd)
{
    struct fwd_sock *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    if (uv_poll_init_socket(m->loop, &s->poll, fd) != 0) {
        free(s);
        return NULL;
    }
    s->fd = fd;
    s->m = m;
    s->poll.data = s;
    s->next = m->socks;
    if (m->socks) {
        m->socks->prev = s;
    }
    m->socks = s;
    m->handles_open++;
    curl_multi_assign(m->multi, fd, s);
    return s;
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    struct fwd_multi *m = userp;
    struct fwd_sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            curl_multi_assign(m->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (s == NULL && (s = sock_new(m, fd)) == NULL) {
        return -1; /* curl fails the transfer */
    }
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) {
        events |= UV_READABLE;
    }
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) {
        events |= UV_WRITABLE;
    }
    return uv_poll_start(&s->poll, events, poll_cb) == 0 ? 0 : -1;
}

/* curl asks for a wake-up; we never call socket_action from here (curl forbids re-entry). */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct fwd_multi *m = userp;
    if (timeout_ms < 0) {
        uv_timer_stop(&m->timer);
    } else {
        uv_timer_start(&m->timer, timeout_cb, (uint64_t)timeout_ms, 0);
    }
    return 0;
}

/* ---- public ---- */

struct fwd_multi *fwd_multi_new(uv_loop_t *loop)
{
    struct fwd_multi *m = calloc(1, sizeof *m);
    if (m == NULL || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(m);
        return NULL;
    }
    m->multi = curl_multi_init();
    if (m->multi == NULL) {
        curl_global_cleanup();
        free(m);
        return NULL;
    }
    m->loop = loop;
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 16L);
    uv_timer_init(loop, &m->timer);
    m->timer.data = m;
    m->handles_open = 1;
    return m;
}

void fwd_multi_close(struct fwd_multi *m, void (*cb)(void *arg), void *arg)
{
    m->closing = true;
    m->close_cb = cb;
    m->close_arg = arg;
    while (m->reqs != NULL) {
        fwd_cancel(m->reqs);
    }
    curl_multi_cleanup(m->multi); /* may still report sockets removed */
    m->multi = NULL;
    while (m->socks != NULL) {
        sock_close(m->socks);
    }
    uv_close((uv_handle_t *)&m->timer, timer_closed_cb);
}

void fwd_cancel(struct fwd_req *f)
{
    req_unlink(f);
    req_free(f);
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    struct fwd_req *f = userp;
    size_t n = size * nmemb;
    if (n > HTTP_FWD_RESP_MAX - f->len) {
        return 0; /* CURLE_WRITE_ERROR */
    }
    if (f->len + n + 1 > f->cap) {
        size_t cap = f->len + n + 1 > 1024 ? f->len + n + 1 : 1024;
        char *nr = realloc(f->resp, cap);
        if (nr == NULL) {
            return 0;
        }
        f->resp = nr;
        f->cap = cap;
    }
    memcpy(f->resp + f->len, data, n);
    f->len += n;
    f->resp[f->len] = '\0';
    return n;
}

static struct curl_slist *build_headers(const char *authorization)
{
    static const char *const fixed[] = {
        "Content-Type: application/json", "Accept: application/json", HTTP_FORWARDED_HDR ": 1",
        "Expect:", /* no 100-continue round trip */
    };
    struct curl_slist *l = NULL;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        struct curl_slist *n = curl_slist_append(l, fixed[i]);
        if (n == NULL) {
            curl_slist_free_all(l);
            return NULL;
        }
        l = n;
    }
    if (authorization == NULL) {
        return l;
    }
    size_t cap = strlen(authorization) + sizeof "Authorization: ";
    char *line = malloc(cap);
    if (line == NULL) {
        curl_slist_free_all(l);
        return NULL;
    }
    snprintf(line, cap, "Authorization: %s", authorization);
    struct curl_slist *n = curl_slist_append(l, line);
    free(line);
    if (n == NULL) {
        curl_slist_free_all(l);
    }
    return n;
}

static int setup_easy(struct fwd_req *f, const char *url, const char *body, size_t len)
{
    CURL *e = f->easy;
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_URL, url);
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    bad |= curl_easy_setopt(e, CURLOPT_PROXY, ""); /* ignore http_proxy & co. */
    bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)HTTP_FWD_TIMEOUT_MS);
    bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)HTTP_FWD_CONNECT_MS);
    bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "aragora-coordinator/" AFC_VERSION);
    bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->hdrs);
    bad |= curl_easy_setopt(e, CURLOPT_POST, 1L);
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)len);
    bad |= curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body ? body : "");
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
    bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, f->errbuf);
    bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)f);
    return bad ? -1 : 0;
}

struct fwd_req *fwd_post(struct fwd_multi *m, const char *url, const char *authorization,
                         const char *body, size_t len, fwd_cb cb, void *arg)
{
    if (m->closing) {
        return NULL;
    }
    struct fwd_req *f = calloc(1, sizeof *f);
    if (f == NULL) {
        return NULL;
    }
    f->m = m;
    f->cb = cb;
    f->arg = arg;
    f->easy = curl_easy_init();
    f->hdrs = build_headers(authorization);
    if (f->easy == NULL || f->hdrs == NULL || setup_easy(f, url, body, len) != 0 ||
        curl_multi_add_handle(m->multi, f->easy) != CURLM_OK) {
        req_free(f);
        return NULL;
    }
    f->next = m->reqs;
    if (m->reqs) {
        m->reqs->prev = f;
    }
    m->reqs = f;
    return f;
}
