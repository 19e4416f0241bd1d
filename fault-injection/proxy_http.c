/*
 * The fault proxy's JSON surfaces: its configuration DIR/chaos/links.json (written by the lab,
 * lab_links.c), and its control API (proxy.h, docs/chaos.md "The fault layer"): a minimal HTTP/1.1
 * server on the proxy's loop, one request per connection (Connection: close), JSON bodies
 * (jansson). The runner and `aragora-chaos fault` are its clients.
 *
 *   GET    /v1/health                       200 {"status":"ok"}
 *   GET    /v1/faults                       200 the state (proxy_state_json)
 *   PUT    /v1/faults  {"faults":"TEXT"}    200 the state | 400 {"error": the parse reason}
 *   DELETE /v1/faults                       clear the faults (the profile stays)
 *   PUT    /v1/profile {"profile":"TEXT"}   "wan" means the WAN profile (chaos_wan_profile)
 *   DELETE /v1/profile                      no profile
 * Errors are JSON too: 400 malformed request or JSON, 404 unknown path, 405 wrong method, 413 a
 * body over 64 KiB, 431-as-400 headers over 16 KiB. A peer that sends garbage gets a 400 and
 * is closed; one that sends nothing is closed after 10 s.
 */
#define _GNU_SOURCE /* memmem */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy.h"

#define BODY_MAX   (64 * 1024)
#define HEADER_MAX (16 * 1024)
#define IDLE_MS    10000

/* ---- DIR/chaos/links.json ---- */

int proxy_parse_addr(const char *text, struct sockaddr_storage *out)
{
    char host[PROXY_ADDR_MAX];
    const char *colon = strrchr(text, ':');
    if (colon == NULL || (size_t)(colon - text) >= sizeof host)
        return -1;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || end == colon + 1 || port < 1 || port > 65535)
        return -1;
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out);
}

static const char *string_key(json_t *obj, const char *key, size_t max)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s != NULL && strlen(s) > 0 && strlen(s) < max ? s : NULL;
}

static int region_index(const struct proxy *px, const char *name)
{
    for (unsigned i = 0; name != NULL && i < px->n_regions; i++)
        if (strcmp(px->regions[i], name) == 0)
            return (int)i;
    return -1;
}

static int load_link(struct proxy *px, json_t *o, struct proxy_link *l, char *key, size_t ksize)
{
    const char *from = string_key(o, "from", CHAOS_NAME_MAX),
               *to = string_key(o, "to", CHAOS_NAME_MAX);
    const char *service = string_key(o, "service", CHAOS_NAME_MAX);
    const char *listen = string_key(o, "listen", PROXY_ADDR_MAX);
    const char *upstream = string_key(o, "upstream", PROXY_ADDR_MAX);
    int f = region_index(px, from), t = region_index(px, to);
    if (service != NULL && strcmp(service, "dns-api") == 0) {
        /* the DNS provider's API: outside every region, so no from and to */
        l->dns_front = true;
        f = 0;
        t = px->n_regions > 1 ? 1 : 0;
    }
    const char *bad = f < 0                                                              ? "from"
                      : t < 0 || t == f                                                  ? "to"
                      : service == NULL                                                  ? "service"
                      : listen == NULL || proxy_parse_addr(listen, &l->listen_addr) != 0 ? "listen"
                      : upstream == NULL || proxy_parse_addr(upstream, &l->upstream_addr) != 0
                          ? "upstream"
                          : NULL;
    if (bad != NULL) {
        snprintf(key, ksize, "%s", bad);
        return -1;
    }
    l->px = px;
    l->from = (unsigned)f;
    l->to = (unsigned)t;
    snprintf(l->service, sizeof l->service, "%s", service);
    snprintf(l->listen, sizeof l->listen, "%s", listen);
    snprintf(l->upstream, sizeof l->upstream, "%s", upstream);
    return 0;
}

static int load_regions(struct proxy *px, json_t *arr)
{
    size_t n = json_array_size(arr);
    if (n < 2 || n > CHAOS_MAX_REGIONS)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if (s == NULL || *s == '\0' || strlen(s) >= CHAOS_NAME_MAX || strchr(s, ',') != NULL ||
            region_index(px, s) >= 0)
            return -1;
        snprintf(px->region_names[i], CHAOS_NAME_MAX, "%s", s);
        px->regions[i] = px->region_names[i];
        px->n_regions = (unsigned)i + 1;
    }
    return 0;
}

static int config_error(const char *path, const char *key, const char *what)
{
    fprintf(stderr, "aragora-chaos proxy: %s: key \"%s\": %s\n", path, key, what);
    return -1;
}

static int load_links(struct proxy *px, json_t *arr, const char *path)
{
    char key[32], name[64];
    size_t n = json_array_size(arr);
    if (!json_is_array(arr) || n == 0)
        return config_error(path, "links", "expected a non-empty array");
    px->links = calloc(n, sizeof *px->links);
    if (px->links == NULL)
        return config_error(path, "links", "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (load_link(px, json_array_get(arr, i), &px->links[i], key, sizeof key) != 0) {
            snprintf(name, sizeof name, "links[%zu].%s", i, key);
            return config_error(path, name, "missing or invalid");
        }
        px->n_links = (unsigned)i + 1;
    }
    return 0;
}

int proxy_load_config(struct proxy *px)
{
    char path[PROXY_PATH_MAX + 32];
    json_error_t err;
    int pn = snprintf(path, sizeof path, "%s/chaos/links.json", px->dir);
    if (pn < 0 || (size_t)pn >= sizeof path)
        return config_error(px->dir, "dir", "path too long");
    json_t *doc = json_load_file(path, 0, &err);
    if (doc == NULL) {
        fprintf(stderr, "aragora-chaos proxy: %s:%d: %s\n", path, err.line, err.text);
        return -1;
    }
    int rc = -1;
    const char *control = string_key(doc, "control", PROXY_ADDR_MAX);
    json_t *profile = json_object_get(doc, "profile");
    struct sockaddr_storage ss;
    if (!json_is_object(doc))
        config_error(path, "(top level)", "expected an object");
    else if (control == NULL || proxy_parse_addr(control, &ss) != 0)
        config_error(path, "control", "expected \"HOST:PORT\"");
    else if (load_regions(px, json_object_get(doc, "regions")) != 0)
        config_error(path, "regions", "expected 2 to 9 distinct region names");
    else if (profile != NULL && !json_is_string(profile))
        config_error(path, "profile", "expected fault-set text");
    else if (profile != NULL && strlen(json_string_value(profile)) >= sizeof px->profile_text)
        config_error(path, "profile", "too long");
    else if (json_object_get(doc, "netns") != NULL) {
        /* namespace mode: no region links; at most the DNS API's front */
        rc = proxy_netns_load(px, json_object_get(doc, "netns"), path);
        if (rc == 0 && json_array_size(json_object_get(doc, "links")) > 0)
            rc = load_links(px, json_object_get(doc, "links"), path);
    } else if (load_links(px, json_object_get(doc, "links"), path) == 0)
        rc = 0;
    if (rc == 0 && profile != NULL)
        snprintf(px->profile_text, sizeof px->profile_text, "%s", json_string_value(profile));
    if (control != NULL)
        snprintf(px->control, sizeof px->control, "%s", control);
    json_decref(doc);
    return rc;
}

/* ---- the state as JSON ---- */

json_t *proxy_link_state_json(const struct chaos_link_state *st)
{
    return json_pack("{s:b,s:b,s:b,s:i,s:i,s:f,s:I}", "cut", st->cut, "reset", st->reset,
                     "blackhole", st->blackhole, "delay_ms", (int)st->delay_ms, "jitter_ms",
                     (int)st->jitter_ms, "loss_pct", st->loss_pct, "rate_bps",
                     (json_int_t)st->rate_bps);
}

json_t *proxy_state_json(const struct proxy *px)
{
    json_t *links = json_array();
    for (unsigned i = 0; i < px->n_links; i++) {
        const struct proxy_link *l = &px->links[i];
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:i,s:I}", "from",
                              l->dns_front ? "(regions)" : px->regions[l->from], "to",
                              l->dns_front ? "(dns provider)" : px->regions[l->to], "service",
                              l->service, "listen", l->listen, "upstream", l->upstream, "state",
                              proxy_link_state_json(&l->st[0]), "connections", (int)l->n_conns,
                              "bytes_forwarded", (json_int_t)l->bytes);
        if (o != NULL && l->dns_front)
            json_object_set_new(o, "throttled", json_integer((json_int_t)l->throttled));
        json_array_append_new(links, o);
    }
    json_t *doc = json_pack("{s:s,s:s,s:I,s:I,s:o,s:s}", "faults", px->faults_text, "profile",
                            px->profile_text, "version", (json_int_t)px->version, "since_us",
                            (json_int_t)px->since_us, "links", links, "mode",
                            px->netns != NULL ? "netns" : "proxy");
    if (doc != NULL && px->netns != NULL)
        json_object_set_new(doc, "netns", proxy_netns_json(px));
    return doc;
}

/* ---- the control API ---- */

struct hconn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    struct proxy *px;
    char *buf;
    size_t len, cap;
    char *resp;
    bool answered;
    unsigned open_handles;
};

struct request {
    char method[16];
    char path[256];
    const char *body;
    size_t body_len;
};

static void hconn_closed_cb(uv_handle_t *h)
{
    struct hconn *hc = h->data;
    if (--hc->open_handles > 0)
        return;
    free(hc->buf);
    free(hc->resp);
    free(hc);
}

static void hconn_close(struct hconn *hc)
{
    if (uv_is_closing((uv_handle_t *)&hc->tcp))
        return;
    uv_close((uv_handle_t *)&hc->timer, hconn_closed_cb);
    uv_close((uv_handle_t *)&hc->tcp, hconn_closed_cb);
}

static void written_cb(uv_write_t *req, int status)
{
    (void)status;
    hconn_close(req->data);
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    default:
        return "Internal Server Error";
    }
}

/* Send status and body (a reference taken), then close. */
static void respond(struct hconn *hc, int status, json_t *body)
{
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL) {
        status = 500;
        text = strdup("{\"error\":\"out of memory\"}");
    }
    hc->answered = true;
    uv_read_stop((uv_stream_t *)&hc->tcp);
    size_t blen = text != NULL ? strlen(text) : 0, size = blen + 256;
    hc->resp = malloc(size);
    if (hc->resp == NULL || text == NULL) {
        free(text);
        hconn_close(hc);
        return;
    }
    int n = snprintf(hc->resp, size,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s\n",
                     status, reason_phrase(status), blen + 1, text);
    free(text);
    uv_buf_t b = uv_buf_init(hc->resp, (unsigned)n);
    hc->wreq.data = hc;
    if (uv_write(&hc->wreq, (uv_stream_t *)&hc->tcp, &b, 1, written_cb) != 0)
        hconn_close(hc);
}

static void respond_error(struct hconn *hc, int status, const char *msg)
{
    respond(hc, status, json_pack("{s:s}", "error", msg));
}

/* ---- routes ---- */

/* The string member `key` of a JSON body, or an error answered. */
static const char *body_string(struct hconn *hc, const struct request *rq, const char *key,
                               json_t **doc)
{
    json_error_t err;
    char msg[256];
    *doc = json_loadb(rq->body, rq->body_len, 0, &err);
    if (*doc == NULL) {
        snprintf(msg, sizeof msg, "malformed JSON: %s (line %d, column %d)", err.text, err.line,
                 err.column);
        respond_error(hc, 400, msg);
        return NULL;
    }
    const char *s = json_string_value(json_object_get(*doc, key));
    if (s == NULL) {
        snprintf(msg, sizeof msg, "expected {\"%s\": \"TEXT\"}", key);
        respond_error(hc, 400, msg);
        json_decref(*doc);
        *doc = NULL;
    }
    return s;
}

static void route_set(struct hconn *hc, const struct request *rq, bool profile)
{
    char why[1024];
    json_t *doc;
    const char *text = body_string(hc, rq, profile ? "profile" : "faults", &doc);
    if (text == NULL)
        return;
    int rc = profile ? proxy_set_profile(hc->px, text, why, sizeof why)
                     : proxy_set_faults(hc->px, text, why, sizeof why);
    json_decref(doc);
    if (rc != 0) {
        respond_error(hc, rc == -2 ? 500 : 400, why);
        return;
    }
    respond(hc, 200, proxy_state_json(hc->px));
}

static void route_clear(struct hconn *hc, bool profile)
{
    char why[256];
    int rc = profile ? proxy_set_profile(hc->px, "", why, sizeof why)
                     : proxy_set_faults(hc->px, "", why, sizeof why);
    if (rc != 0) {
        respond_error(hc, 500, why);
        return;
    }
    respond(hc, 200, proxy_state_json(hc->px));
}

static void route(struct hconn *hc, const struct request *rq)
{
    bool get = strcmp(rq->method, "GET") == 0, put = strcmp(rq->method, "PUT") == 0;
    bool del = strcmp(rq->method, "DELETE") == 0;
    if (strcmp(rq->path, "/v1/health") == 0) {
        if (!get)
            return respond_error(hc, 405, "use GET /v1/health");
        return respond(hc, 200, json_pack("{s:s}", "status", "ok"));
    }
    bool faults = strcmp(rq->path, "/v1/faults") == 0;
    if (!faults && strcmp(rq->path, "/v1/profile") != 0)
        return respond_error(hc, 404, "unknown path (try /v1/health, /v1/faults, /v1/profile)");
    if (get)
        return respond(hc, 200, proxy_state_json(hc->px));
    if (put)
        return route_set(hc, rq, !faults);
    if (del)
        return route_clear(hc, !faults);
    respond_error(hc, 405,
                  faults ? "use GET, PUT or DELETE /v1/faults"
                         : "use GET, PUT or DELETE /v1/profile");
}

/* ---- parsing ---- */

/* The value of header `name` in [start, end) (a copy in out), or false. */
static bool header_value(const char *start, const char *end, const char *name, char *out,
                         size_t size)
{
    size_t nlen = strlen(name);
    for (const char *p = start; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            size_t vlen = (size_t)(eol - v);
            while (vlen > 0 && isspace((unsigned char)v[vlen - 1]))
                vlen--;
            if (vlen >= size)
                vlen = size - 1;
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return true;
        }
        p = eol + 1;
    }
    return false;
}

static bool parse_request_line(const char *buf, const char *eol, struct request *rq)
{
    char line[512], version[16];
    size_t len = (size_t)(eol - buf);
    if (len >= sizeof line)
        return false;
    memcpy(line, buf, len);
    line[len] = '\0';
    if (len > 0 && line[len - 1] == '\r')
        line[len - 1] = '\0';
    if (sscanf(line, "%15[A-Z] %255[^ ] %15s", rq->method, rq->path, version) != 3)
        return false;
    if (strncmp(version, "HTTP/1.", 7) != 0 || rq->path[0] != '/')
        return false;
    char *q = strchr(rq->path, '?');
    if (q != NULL)
        *q = '\0';
    return true;
}

/* 1: answered or complete and routed; 0: need more bytes. */
static int try_request(struct hconn *hc)
{
    struct request rq = {0};
    char *end = hc->len >= 4 ? memmem(hc->buf, hc->len, "\r\n\r\n", 4) : NULL;
    if (end == NULL) {
        if (hc->len > HEADER_MAX)
            return respond_error(hc, 400, "request headers too long"), 1;
        const char *nl = memchr(hc->buf, '\n', hc->len);
        if (nl != NULL && !parse_request_line(hc->buf, nl, &rq))
            return respond_error(hc, 400, "malformed HTTP request line"), 1;
        return 0;
    }
    const char *eol = memchr(hc->buf, '\n', (size_t)(end - hc->buf) + 2);
    if (eol == NULL || !parse_request_line(hc->buf, eol, &rq))
        return respond_error(hc, 400, "malformed HTTP request line"), 1;
    char value[32];
    size_t clen = 0;
    if (header_value(eol + 1, end + 2, "Transfer-Encoding", value, sizeof value))
        return respond_error(hc, 400, "chunked bodies are not supported; send Content-Length"), 1;
    if (header_value(eol + 1, end + 2, "Content-Length", value, sizeof value)) {
        char *e;
        unsigned long long v = strtoull(value, &e, 10);
        if (*e != '\0' || e == value)
            return respond_error(hc, 400, "malformed Content-Length"), 1;
        if (v > BODY_MAX)
            return respond_error(hc, 413, "body over 64 KiB"), 1;
        clen = (size_t)v;
    }
    size_t head = (size_t)(end - hc->buf) + 4;
    if (hc->len < head + clen)
        return 0;
    rq.body = hc->buf + head;
    rq.body_len = clen;
    route(hc, &rq);
    return 1;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct hconn *hc = h->data;
    (void)suggested;
    if (hc->cap - hc->len < 4096) {
        size_t cap = hc->cap * 2;
        char *nb = realloc(hc->buf, cap);
        if (nb == NULL) {
            *buf = uv_buf_init(NULL, 0);
            return;
        }
        hc->buf = nb;
        hc->cap = cap;
    }
    *buf = uv_buf_init(hc->buf + hc->len, (unsigned)(hc->cap - hc->len));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct hconn *hc = s->data;
    (void)buf;
    if (hc->answered || nread == 0)
        return;
    if (nread < 0) {
        if (nread == UV_EOF && hc->len > 0)
            return respond_error(hc, 400, "incomplete HTTP request");
        return hconn_close(hc);
    }
    hc->len += (size_t)nread;
    if (hc->len > HEADER_MAX + BODY_MAX + 4)
        return respond_error(hc, 413, "request too large");
    try_request(hc);
}

static void idle_cb(uv_timer_t *t)
{
    hconn_close(t->data);
}

static void accept_cb(uv_stream_t *server, int status)
{
    struct proxy *px = server->data;
    if (status < 0 || px->stopping)
        return;
    struct hconn *hc = calloc(1, sizeof *hc);
    char *buf = malloc(8192);
    if (hc == NULL || buf == NULL) {
        free(hc);
        free(buf);
        return;
    }
    hc->px = px;
    hc->buf = buf;
    hc->cap = 8192;
    uv_tcp_init(px->loop, &hc->tcp);
    uv_timer_init(px->loop, &hc->timer);
    hc->tcp.data = hc->timer.data = hc;
    hc->open_handles = 2;
    if (uv_accept(server, (uv_stream_t *)&hc->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&hc->tcp, alloc_cb, read_cb) != 0) {
        hconn_close(hc);
        return;
    }
    uv_timer_start(&hc->timer, idle_cb, IDLE_MS, 0);
    /* a client still connected does not keep a stopping proxy alive */
    uv_unref((uv_handle_t *)&hc->tcp);
    uv_unref((uv_handle_t *)&hc->timer);
}

int proxy_http_start(struct proxy *px)
{
    struct sockaddr_in sin;
    char host[PROXY_ADDR_MAX];
    const char *colon = strrchr(px->control, ':');
    if (colon == NULL || (size_t)(colon - px->control) >= sizeof host)
        return -1;
    memcpy(host, px->control, (size_t)(colon - px->control));
    host[colon - px->control] = '\0';
    int rc = uv_ip4_addr(host, atoi(colon + 1), &sin);
    uv_tcp_init(px->loop, &px->control_server);
    px->control_server.data = px;
    px->control_open = true;
    if (rc == 0)
        rc = uv_tcp_bind(&px->control_server, (const struct sockaddr *)&sin, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&px->control_server, 64, accept_cb);
    if (rc != 0) {
        fprintf(stderr, "aragora-chaos proxy: control API: listen %s: %s\n", px->control,
                uv_strerror(rc));
        return -1;
    }
    return 0;
}

void proxy_http_stop(struct proxy *px)
{
    if (!px->control_open)
        return;
    px->control_open = false;
    uv_close((uv_handle_t *)&px->control_server, NULL);
}
