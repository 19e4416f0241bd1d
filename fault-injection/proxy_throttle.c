/*
 * `dns 429` (docs/chaos.md): while it is in force, every connection accepted on the lab's
 * "dns-api" link (the coordinators' way to the PowerDNS API) is answered here instead of being
 * forwarded: read one HTTP request (headers, then Content-Length bytes of body), answer
 *   HTTP/1.1 429 Too Many Requests, Retry-After: N, Connection: close, a JSON error
 * and close. What a rate-limiting reverse proxy in front of a provider's API does; the request
 * never reaches PowerDNS. A peer that sends nothing complete within 10 s is closed.
 */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy.h"

#define THROTTLE_MAX_REQUEST (64 * 1024)
#define THROTTLE_TIMEOUT_MS  10000

struct throttle {
    struct throttle *prev, *next; /* on link->throttles */
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    struct proxy_link *link;
    char buf[THROTTLE_MAX_REQUEST];
    size_t len;
    char resp[512];
    bool answered;
    unsigned open_handles;
};

static void closed_cb(uv_handle_t *h)
{
    struct throttle *t = h->data;
    if (--t->open_handles == 0)
        free(t);
}

static void finish(struct throttle *t)
{
    if (uv_is_closing((uv_handle_t *)&t->tcp))
        return;
    struct proxy_link *l = t->link;
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        l->throttles = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    uv_timer_stop(&t->timer);
    uv_close((uv_handle_t *)&t->tcp, closed_cb);
    uv_close((uv_handle_t *)&t->timer, closed_cb);
}

static void written_cb(uv_write_t *req, int status)
{
    (void)status;
    finish(req->data);
}

/* Is a whole request in? Headers end with an empty line; the body is Content-Length bytes. */
static bool request_complete(const struct throttle *t)
{
    const char *end = memmem(t->buf, t->len, "\r\n\r\n", 4);
    if (end == NULL)
        return false;
    size_t head = (size_t)(end - t->buf) + 4, body = 0;
    for (const char *p = t->buf; p < end; p++) {
        if ((p == t->buf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0)
            body = strtoul(p + 15, NULL, 10);
    }
    return t->len >= head + body;
}

static void answer(struct throttle *t)
{
    static const char body[] = "{\"error\": \"Too Many Requests (aragora-chaos: dns 429)\"}";
    unsigned retry = t->link->px->faults.dns_429_retry_s;
    int n = snprintf(t->resp, sizeof t->resp,
                     "HTTP/1.1 429 Too Many Requests\r\nRetry-After: %u\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     retry > 0 ? retry : 1, sizeof body - 1, body);
    t->answered = true;
    t->link->throttled++;
    uv_buf_t b = uv_buf_init(t->resp, (unsigned)n);
    t->wreq.data = t;
    if (uv_write(&t->wreq, (uv_stream_t *)&t->tcp, &b, 1, written_cb) != 0)
        finish(t);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct throttle *t = h->data;
    *buf = uv_buf_init(t->buf + t->len, (unsigned)(sizeof t->buf - t->len));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct throttle *t = s->data;
    if (nread < 0 || t->answered) {
        if (nread < 0)
            finish(t);
        return;
    }
    t->len += (size_t)nread;
    if (request_complete(t) || t->len == sizeof t->buf) {
        uv_read_stop(s);
        answer(t);
    }
}

static void timeout_cb(uv_timer_t *timer)
{
    finish(timer->data);
}

void proxy_throttle_accept(struct proxy_link *l, uv_stream_t *server)
{
    struct throttle *t = calloc(1, sizeof *t);
    if (t == NULL)
        return; /* the kernel keeps it queued; the client times out */
    t->link = l;
    t->next = l->throttles;
    if (t->next != NULL)
        t->next->prev = t;
    l->throttles = t;
    uv_tcp_init(l->px->loop, &t->tcp);
    uv_timer_init(l->px->loop, &t->timer);
    t->tcp.data = t->timer.data = t;
    t->open_handles = 2;
    if (uv_accept(server, (uv_stream_t *)&t->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&t->tcp, alloc_cb, read_cb) != 0) {
        finish(t);
        return;
    }
    uv_timer_start(&t->timer, timeout_cb, THROTTLE_TIMEOUT_MS, 0);
}

void proxy_throttle_close_all(struct proxy_link *l)
{
    while (l->throttles != NULL)
        finish(l->throttles); /* unlinks it */
}
