/*
 * The asynchronous HTTP client (include/afc/http_client.h): libcurl's multi interface on the
 * daemon's libuv loop. This is the one curl ↔ uv integration in the daemon; follower → leader
 * forwarding (forward.c), the DNS providers (dns/) and webhooks all go through it.
 *
 * The integration follows curl's multi-uv example (docs/examples/multi-uv.c in curl):
 * CURLMOPT_SOCKETFUNCTION tells us which sockets to watch (one uv_poll per socket, created and
 * closed on curl's request), CURLMOPT_TIMERFUNCTION arms one uv_timer, and both call
 * curl_multi_socket_action(). After every action, finished transfers are collected with
 * curl_multi_info_read() and their callbacks run — never from inside a curl callback, so a user
 * callback may start, cancel or close freely. Nothing blocks: the threaded resolver is curl's,
 * connects and I/O are non-blocking.
 *
 * Each transfer: http/https only, no redirects followed, no proxy (environment proxies are
 * ignored), a total and a connect timeout, an answer larger than AFC_HTTP_RESP_MAX fails it. The
 * Retry-After header (delta seconds) is read from the final response's headers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "afc/http_client.h"

#ifndef AFC_VERSION
#define AFC_VERSION "dev"
#endif

#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_CONNECT_MS 2000
#define MAX_CONNECTIONS    16L
#define RETRY_AFTER_MAX_S  86400 /* a larger value is taken as a day */

struct http_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct afc_http_client *c;
    struct http_sock *prev, *next; /* c->socks, while active */
};

struct afc_http_call {
    struct afc_http_client *c;
    struct afc_http_call *prev, *next; /* c->calls */
    CURL *easy;
    struct curl_slist *hdrs;
    char *resp; /* the answer's body, NUL-terminated */
    size_t len, cap;
    bool too_big;
    long retry_after_s;
    char errbuf[CURL_ERROR_SIZE];
    afc_http_cb cb;
    void *data;
};

struct afc_http_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    struct afc_http_call *calls;
    struct http_sock *socks;
    int handles_open; /* timer + poll handles not yet closed */
    bool closing;
    void (*done)(void *arg);
    void *done_arg;
};

/* ---- handle bookkeeping ---- */

static void handle_closed(struct afc_http_client *c)
{
    if (--c->handles_open > 0 || !c->closing) {
        return;
    }
    void (*done)(void *) = c->done;
    void *arg = c->done_arg;
    free(c);
    curl_global_cleanup();
    if (done != NULL) {
        done(arg);
    }
}

static void sock_closed_cb(uv_handle_t *handle)
{
    struct http_sock *s = handle->data;
    struct afc_http_client *c = s->c;
    free(s);
    handle_closed(c);
}

static void timer_closed_cb(uv_handle_t *handle)
{
    handle_closed(handle->data);
}

static void sock_close(struct http_sock *s)
{
    struct afc_http_client *c = s->c;
    if (s->prev) {
        s->prev->next = s->next;
    } else {
        c->socks = s->next;
    }
    if (s->next) {
        s->next->prev = s->prev;
    }
    uv_close((uv_handle_t *)&s->poll, sock_closed_cb); /* stops watching the fd at once */
}

/* ---- calls ---- */

static void call_unlink(struct afc_http_call *h)
{
    struct afc_http_client *c = h->c;
    if (h->prev) {
        h->prev->next = h->next;
    } else {
        c->calls = h->next;
    }
    if (h->next) {
        h->next->prev = h->prev;
    }
    if (c->multi != NULL) {
        curl_multi_remove_handle(c->multi, h->easy); /* also drops its pending DONE message */
    }
}

static void call_free(struct afc_http_call *h)
{
    if (h->easy != NULL) {
        curl_easy_cleanup(h->easy);
    }
    curl_slist_free_all(h->hdrs);
    free(h->resp);
    free(h);
}

static void fill_response(struct afc_http_call *h, CURLcode code, struct afc_http_response *res)
{
    memset(res, 0, sizeof *res);
    res->curl_code = (int)code;
    res->retry_after_s = h->retry_after_s;
    res->body = h->resp != NULL ? h->resp : "";
    res->body_len = h->len;
    curl_easy_getinfo(h->easy, CURLINFO_TOTAL_TIME, &res->total_s);
    curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &res->status);
    if (code == CURLE_OK) {
        return;
    }
    long sent = 0;
    curl_easy_getinfo(h->easy, CURLINFO_REQUEST_SIZE, &sent);
    res->nothing_sent = sent == 0;
    if (h->too_big) {
        snprintf(res->error, sizeof res->error, "answer larger than %d bytes", AFC_HTTP_RESP_MAX);
    } else {
        snprintf(res->error, sizeof res->error, "%s",
                 h->errbuf[0] != '\0' ? h->errbuf : curl_easy_strerror(code));
    }
}

/* Run the callbacks of finished transfers. Stops when a callback closed the client. */
static void check_done(struct afc_http_client *c)
{
    CURLMsg *msg;
    int pending;
    while (!c->closing && (msg = curl_multi_info_read(c->multi, &pending)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        char *priv = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        struct afc_http_call *h = (struct afc_http_call *)priv;
        struct afc_http_response res;
        fill_response(h, msg->data.result, &res);
        call_unlink(h); /* msg is invalid from here on */
        h->cb(h->data, &res);
        call_free(h);
    }
}

/* ---- curl ↔ uv ---- */

static void poll_cb(uv_poll_t *p, int status, int events)
{
    struct http_sock *s = p->data;
    struct afc_http_client *c = s->c;
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
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    check_done(c);
}

static void timeout_cb(uv_timer_t *t)
{
    struct afc_http_client *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

static struct http_sock *sock_new(struct afc_http_client *c, curl_socket_t fd)
{
    struct http_sock *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
        free(s);
        return NULL;
    }
    s->fd = fd;
    s->c = c;
    s->poll.data = s;
    s->next = c->socks;
    if (c->socks) {
        c->socks->prev = s;
    }
    c->socks = s;
    c->handles_open++;
    curl_multi_assign(c->multi, fd, s);
    return s;
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    struct afc_http_client *c = userp;
    struct http_sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            if (c->multi != NULL) {
                curl_multi_assign(c->multi, fd, NULL);
            }
            sock_close(s);
        }
        return 0;
    }
    if (s == NULL && (s = sock_new(c, fd)) == NULL) {
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
    struct afc_http_client *c = userp;
    if (c->closing) {
        return 0;
    }
    if (timeout_ms < 0) {
        uv_timer_stop(&c->timer);
    } else {
        uv_timer_start(&c->timer, timeout_cb, (uint64_t)timeout_ms, 0);
    }
    return 0;
}

/* ---- client ---- */

struct afc_http_client *afc_http_client_new(uv_loop_t *loop)
{
    struct afc_http_client *c = calloc(1, sizeof *c);
    if (c == NULL || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(c);
        return NULL;
    }
    c->multi = curl_multi_init();
    if (c->multi == NULL) {
        curl_global_cleanup();
        free(c);
        return NULL;
    }
    c->loop = loop;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, MAX_CONNECTIONS);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->handles_open = 1;
    return c;
}

void afc_http_client_close(struct afc_http_client *c, void (*done)(void *arg), void *arg)
{
    if (c == NULL) {
        if (done != NULL) {
            done(arg);
        }
        return;
    }
    c->closing = true;
    c->done = done;
    c->done_arg = arg;
    while (c->calls != NULL) {
        afc_http_cancel(c->calls);
    }
    CURLM *multi = c->multi;
    c->multi = NULL;
    curl_multi_cleanup(multi); /* may still report sockets removed */
    while (c->socks != NULL) {
        sock_close(c->socks);
    }
    uv_close((uv_handle_t *)&c->timer, timer_closed_cb);
}

void afc_http_cancel(struct afc_http_call *h)
{
    call_unlink(h);
    call_free(h);
}

/* ---- one request ---- */

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    struct afc_http_call *h = userp;
    size_t n = size * nmemb;
    if (n > AFC_HTTP_RESP_MAX - h->len) {
        h->too_big = true;
        return 0; /* CURLE_WRITE_ERROR */
    }
    if (h->len + n + 1 > h->cap) {
        size_t cap = h->len + n + 1 > 1024 ? h->len + n + 1 : 1024;
        char *nr = realloc(h->resp, cap);
        if (nr == NULL) {
            return 0;
        }
        h->resp = nr;
        h->cap = cap;
    }
    memcpy(h->resp + h->len, data, n);
    h->len += n;
    h->resp[h->len] = '\0';
    return n;
}

/* "Retry-After: 120" → 120; the HTTP-date form and anything else → -1 (absent). */
static long parse_retry_after(const char *v, size_t n)
{
    size_t i = 0;
    while (i < n && (v[i] == ' ' || v[i] == '\t')) {
        i++;
    }
    long s = 0;
    size_t digits = 0;
    for (; i < n && v[i] >= '0' && v[i] <= '9'; i++, digits++) {
        s = s < RETRY_AFTER_MAX_S ? s * 10 + (v[i] - '0') : s;
    }
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == '\r' || v[i] == '\n')) {
        i++;
    }
    if (digits == 0 || i != n) {
        return -1;
    }
    return s > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : s;
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *userp)
{
    static const char name[] = "retry-after:";
    struct afc_http_call *h = userp;
    size_t n = size * nitems;
    if (n >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        h->retry_after_s = -1; /* a new response (after 1xx): forget the previous headers */
    } else if (n >= sizeof name - 1 && strncasecmp(buf, name, sizeof name - 1) == 0) {
        h->retry_after_s = parse_retry_after(buf + sizeof name - 1, n - (sizeof name - 1));
    }
    return n;
}

static bool is_token_char(char ch)
{
    return ch > ' ' && ch < 127 && strchr("()<>@,;:\\\"/[]?={}", ch) == NULL;
}

static bool header_ok(const struct afc_http_header *hd)
{
    if (hd->name == NULL || hd->value == NULL || hd->name[0] == '\0') {
        return false;
    }
    for (const char *p = hd->name; *p; p++) {
        if (!is_token_char(*p)) {
            return false;
        }
    }
    return strpbrk(hd->value, "\r\n") == NULL;
}

static int slist_add(struct curl_slist **l, const char *name, const char *value)
{
    size_t cap = strlen(name) + strlen(value) + 3;
    char *line = malloc(cap);
    if (line == NULL) {
        return AFC_ENOMEM;
    }
    /* curl sends "Name;" as a header with an empty value ("Name:" would remove it). */
    if (value[0] == '\0') {
        snprintf(line, cap, "%s;", name);
    } else {
        snprintf(line, cap, "%s: %s", name, value);
    }
    struct curl_slist *n = curl_slist_append(*l, line);
    free(line);
    if (n == NULL) {
        return AFC_ENOMEM;
    }
    *l = n;
    return 0;
}

static int build_headers(const struct afc_http_request *req, struct curl_slist **out,
                         struct afc_err *err)
{
    bool has_expect = false;
    for (unsigned i = 0; i < req->n_headers; i++) {
        if (!header_ok(&req->headers[i])) {
            return afc_err_set(err, AFC_EINVAL, "http: header %u: invalid name or value", i);
        }
        has_expect = has_expect || strcasecmp(req->headers[i].name, "Expect") == 0;
        if (slist_add(out, req->headers[i].name, req->headers[i].value) != 0) {
            return afc_err_set(err, AFC_ENOMEM, "http: out of memory");
        }
    }
    if (!has_expect) {
        struct curl_slist *n = curl_slist_append(*out, "Expect:"); /* no 100-continue trip */
        if (n == NULL) {
            return afc_err_set(err, AFC_ENOMEM, "http: out of memory");
        }
        *out = n;
    }
    return 0;
}

static bool method_known(const char *m)
{
    static const char *const known[] = {"GET", "POST", "PATCH", "PUT", "DELETE"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strcmp(m, known[i]) == 0) {
            return true;
        }
    }
    return false;
}

static int check_request(const struct afc_http_client *c, const struct afc_http_request *req,
                         struct afc_err *err)
{
    if (c->closing) {
        return afc_err_set(err, AFC_ESHUTDOWN, "http: client closing");
    }
    if (req->method == NULL || !method_known(req->method)) {
        return afc_err_set(err, AFC_EINVAL, "http: unknown method");
    }
    if (req->url == NULL ||
        (strncasecmp(req->url, "http://", 7) != 0 && strncasecmp(req->url, "https://", 8) != 0)) {
        return afc_err_set(err, AFC_EINVAL, "http: the URL must start with http:// or https://");
    }
    if (req->n_headers > AFC_HTTP_MAX_HEADERS) {
        return afc_err_set(err, AFC_ETOOBIG, "http: more than %d headers", AFC_HTTP_MAX_HEADERS);
    }
    if (req->body == NULL && req->body_len != 0) {
        return afc_err_set(err, AFC_EINVAL, "http: body_len without a body");
    }
    return 0;
}

/* A body is sent when there is one, and for POST, PUT and PATCH always (an empty one has
 * Content-Length: 0); GET and DELETE without a body send none. COPYPOSTFIELDS copies the body,
 * binary included (its size is set first). */
static int set_method(CURL *e, const struct afc_http_request *req)
{
    bool bodyless = strcmp(req->method, "GET") == 0 || strcmp(req->method, "DELETE") == 0;
    int bad = 0;
    if (req->body == NULL && bodyless) {
        bad |= curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        bad |= curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body ? req->body : "");
    }
    if (strcmp(req->method, "POST") != 0) {
        bad |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    }
    return bad;
}

static int setup_easy(struct afc_http_call *h, const struct afc_http_request *req)
{
    CURL *e = h->easy;
    unsigned total = req->timeout_ms != 0 ? req->timeout_ms : DEFAULT_TIMEOUT_MS;
    unsigned conn = req->connect_timeout_ms;
    if (conn == 0) {
        conn = total < DEFAULT_CONNECT_MS ? total : DEFAULT_CONNECT_MS;
    }
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_URL, req->url);
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    bad |= curl_easy_setopt(e, CURLOPT_PROXY, ""); /* ignore http_proxy & co. */
    bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)total);
    bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)conn);
    bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "aragora-coordinator/" AFC_VERSION);
    bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->hdrs);
    bad |= set_method(e, req);
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
    bad |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    bad |= curl_easy_setopt(e, CURLOPT_HEADERDATA, h);
    bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf);
    bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)h);
    return bad ? -1 : 0;
}

struct afc_http_call *afc_http_call_start(struct afc_http_client *c,
                                          const struct afc_http_request *req, afc_http_cb cb,
                                          void *data, struct afc_err *err)
{
    if (c == NULL || req == NULL || cb == NULL) {
        afc_err_set(err, AFC_EINVAL, "http: missing client, request or callback");
        return NULL;
    }
    if (check_request(c, req, err) != 0) {
        return NULL;
    }
    struct afc_http_call *h = calloc(1, sizeof *h);
    if (h == NULL) {
        afc_err_set(err, AFC_ENOMEM, "http: out of memory");
        return NULL;
    }
    h->c = c;
    h->cb = cb;
    h->data = data;
    h->retry_after_s = -1;
    if (build_headers(req, &h->hdrs, err) != 0) {
        call_free(h);
        return NULL;
    }
    h->easy = curl_easy_init();
    if (h->easy == NULL || setup_easy(h, req) != 0 ||
        curl_multi_add_handle(c->multi, h->easy) != CURLM_OK) {
        call_free(h);
        afc_err_set(err, AFC_ENOMEM, "http: curl refused the transfer");
        return NULL;
    }
    h->next = c->calls;
    if (c->calls) {
        c->calls->prev = h;
    }
    c->calls = h;
    return h;
}
