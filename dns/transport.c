/*
 * One DNS exchange over UDP, then TCP when truncated (dns/transport.h says what and why).
 *
 * Handles: a connected UDP socket, a TCP socket (only after a truncated answer), a deadline timer
 * and a retransmission timer, all embedded here. The exchange ends in finish(): every handle is
 * closed, the callback runs, and the memory is freed by the last close callback — so the callback
 * may free whatever owns the exchange, and nothing here touches user memory afterwards.
 * Errors noticed while starting are reported through a zero-delay deadline, so that the callback
 * never runs inside dns_exchange_start().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "afc/error.h"
#include "dns/transport.h"
#include "dns/wire.h"

#define UDP_BUF 4096 /* answers without EDNS are at most 512 bytes; larger is read as truncated */
#define TCP_MAX (2 + 65535)

struct dns_exchange {
    uv_loop_t *loop;
    struct sockaddr_storage server;
    uint8_t *msg;
    size_t len;
    unsigned timeout_ms;
    unsigned resend_ms;
    dns_exchange_accept_fn accept;
    dns_exchange_cb cb;
    void *data;

    uv_udp_t udp;
    uv_tcp_t tcp;
    uv_timer_t deadline;
    uv_timer_t resend;
    unsigned open_handles;
    bool tcp_open;
    bool done;

    uv_udp_send_t send_req;
    bool send_busy;
    uint8_t udp_buf[UDP_BUF];

    uv_connect_t connect_req;
    uv_write_t write_req;
    uint8_t tcp_prefix[2];
    uint8_t *tcp_buf;
    size_t tcp_have;

    int early_error; /* a libuv error met while starting, reported by the deadline */
    unsigned transmissions;
    unsigned ignored;
    char ignored_why[96];
};

unsigned dns_retransmit_first_ms(unsigned timeout_ms)
{
    unsigned ms = timeout_ms / 4;
    return ms < 50 ? 50 : ms > 1000 ? 1000 : ms;
}

/* ---- ending ---- */

static void handle_closed_cb(uv_handle_t *h)
{
    struct dns_exchange *x = h->data;
    if (--x->open_handles == 0) {
        free(x->tcp_buf);
        free(x->msg);
        free(x);
    }
}

static void close_all(struct dns_exchange *x)
{
    x->done = true;
    uv_close((uv_handle_t *)&x->udp, handle_closed_cb);
    uv_close((uv_handle_t *)&x->deadline, handle_closed_cb);
    uv_close((uv_handle_t *)&x->resend, handle_closed_cb);
    if (x->tcp_open) {
        uv_close((uv_handle_t *)&x->tcp, handle_closed_cb);
    }
}

/* Ends the exchange: with an answer (wire != NULL) or with the error in res. */
static void finish(struct dns_exchange *x, struct dns_exchange_result *res)
{
    dns_exchange_cb cb = x->cb;
    void *data = x->data;
    res->transmissions = x->transmissions;
    res->over_tcp = x->tcp_open;
    close_all(x);
    if (cb != NULL) {
        cb(data, res);
    }
}

static void finish_answer(struct dns_exchange *x, const uint8_t *wire, size_t len)
{
    struct dns_exchange_result res = {.status = 0, .wire = wire, .len = len};
    finish(x, &res);
}

/* Ends with an error; `what` is "udp receive", "tcp connect", ... and code a libuv error. */
static void finish_error(struct dns_exchange *x, const char *what, int code)
{
    struct dns_exchange_result res = {.status = AFC_EIO};
    snprintf(res.error, sizeof res.error, "%s: %s", what, uv_strerror(code));
    finish(x, &res);
}

static void deadline_cb(uv_timer_t *t)
{
    struct dns_exchange *x = t->data;
    if (x->early_error != 0) {
        finish_error(x, "udp", x->early_error);
        return;
    }
    struct dns_exchange_result res = {.status = AFC_EIO, .timed_out = true};
    char ignored[128] = "";
    if (x->ignored > 0) {
        snprintf(ignored, sizeof ignored, ", %u answer%s ignored: %s", x->ignored,
                 x->ignored == 1 ? "" : "s", x->ignored_why);
    }
    snprintf(res.error, sizeof res.error, "timeout after %u ms (%u datagram%s sent%s%s)",
             x->timeout_ms, x->transmissions, x->transmissions == 1 ? "" : "s",
             x->tcp_open ? ", then TCP" : "", ignored);
    finish(x, &res);
}

/* ---- answers ---- */

static void ignore(struct dns_exchange *x, const char *why)
{
    x->ignored++;
    snprintf(x->ignored_why, sizeof x->ignored_why, "%s", why);
}

/* Takes the answer if the caller accepts it; true when the exchange has ended. */
static bool offer(struct dns_exchange *x, const uint8_t *wire, size_t len)
{
    char why[96] = "declined";
    if (x->accept != NULL && !x->accept(x->data, wire, len, why, sizeof why)) {
        ignore(x, why);
        return false;
    }
    finish_answer(x, wire, len);
    return true;
}

/* ---- TCP (after a truncated answer) ---- */

static void tcp_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct dns_exchange *x = h->data;
    (void)suggested;
    *buf = uv_buf_init((char *)x->tcp_buf + x->tcp_have, (unsigned)(TCP_MAX - x->tcp_have));
}

static void tcp_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct dns_exchange *x = s->data;
    (void)buf;
    if (x->done || nread == 0) {
        return;
    }
    if (nread < 0) {
        finish_error(x, nread == UV_EOF ? "tcp: closed before the whole answer" : "tcp read",
                     (int)nread);
        return;
    }
    x->tcp_have += (size_t)nread;
    if (x->tcp_have < 2) {
        return;
    }
    size_t want = 2 + (size_t)(x->tcp_buf[0] << 8 | x->tcp_buf[1]);
    if (x->tcp_have < want) {
        return;
    }
    const uint8_t *wire = x->tcp_buf + 2;
    if (!dns_wire_answers(x->msg, x->len, wire, want - 2)) {
        struct dns_exchange_result res = {.status = AFC_EIO};
        snprintf(res.error, sizeof res.error, "tcp: the answer does not match the question");
        finish(x, &res);
        return;
    }
    if (!offer(x, wire, want - 2)) {
        struct dns_exchange_result res = {.status = AFC_EIO};
        snprintf(res.error, sizeof res.error, "tcp: answer ignored: %s", x->ignored_why);
        finish(x, &res);
    }
}

static void tcp_write_cb(uv_write_t *req, int status)
{
    struct dns_exchange *x = req->data;
    if (status < 0 && !x->done) {
        finish_error(x, "tcp write", status);
    }
}

static void tcp_connect_cb(uv_connect_t *req, int status)
{
    struct dns_exchange *x = req->data;
    if (x->done) {
        return;
    }
    if (status < 0) {
        finish_error(x, "tcp connect", status);
        return;
    }
    x->tcp_prefix[0] = (uint8_t)(x->len >> 8);
    x->tcp_prefix[1] = (uint8_t)x->len;
    uv_buf_t bufs[2] = {uv_buf_init((char *)x->tcp_prefix, 2),
                        uv_buf_init((char *)x->msg, (unsigned)x->len)};
    x->write_req.data = x;
    int rc = uv_write(&x->write_req, (uv_stream_t *)&x->tcp, bufs, 2, tcp_write_cb);
    if (rc == 0) {
        rc = uv_read_start((uv_stream_t *)&x->tcp, tcp_alloc_cb, tcp_read_cb);
    }
    if (rc < 0) {
        finish_error(x, "tcp", rc);
    }
}

static void start_tcp(struct dns_exchange *x)
{
    uv_udp_recv_stop(&x->udp);
    uv_timer_stop(&x->resend);
    x->tcp_buf = malloc(TCP_MAX);
    if (x->tcp_buf == NULL) {
        finish_error(x, "tcp", UV_ENOMEM);
        return;
    }
    int rc = uv_tcp_init(x->loop, &x->tcp);
    if (rc < 0) {
        finish_error(x, "tcp", rc);
        return;
    }
    x->tcp.data = x;
    x->tcp_open = true;
    x->open_handles++;
    x->connect_req.data = x;
    rc = uv_tcp_connect(&x->connect_req, &x->tcp, (const struct sockaddr *)&x->server,
                        tcp_connect_cb);
    if (rc < 0) {
        finish_error(x, "tcp connect", rc);
    }
}

/* ---- UDP ---- */

static void udp_send_cb(uv_udp_send_t *req, int status)
{
    struct dns_exchange *x = req->data;
    x->send_busy = false;
    if (status < 0 && status != UV_ECANCELED && !x->done) {
        finish_error(x, "udp send", status);
    }
}

static int udp_transmit(struct dns_exchange *x)
{
    if (x->send_busy) {
        return 0; /* the previous datagram has not left yet: this one would add nothing */
    }
    uv_buf_t buf = uv_buf_init((char *)x->msg, (unsigned)x->len);
    x->send_req.data = x;
    int rc = uv_udp_send(&x->send_req, &x->udp, &buf, 1, NULL, udp_send_cb);
    if (rc == 0) {
        x->send_busy = true;
        x->transmissions++;
    }
    return rc;
}

static void resend_cb(uv_timer_t *t)
{
    struct dns_exchange *x = t->data;
    int rc = udp_transmit(x);
    if (rc < 0) {
        finish_error(x, "udp send", rc);
        return;
    }
    x->resend_ms *= 2;
    uv_timer_start(&x->resend, resend_cb, x->resend_ms, 0);
}

static void udp_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct dns_exchange *x = h->data;
    (void)suggested;
    *buf = uv_buf_init((char *)x->udp_buf, sizeof x->udp_buf);
}

static void udp_recv_cb(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                        const struct sockaddr *addr, unsigned flags)
{
    struct dns_exchange *x = h->data;
    if (x->done || (nread == 0 && addr == NULL)) {
        return;
    }
    if (nread < 0) {
        finish_error(x, "udp receive", (int)nread); /* ECONNREFUSED: nobody listens there */
        return;
    }
    const uint8_t *wire = (const uint8_t *)buf->base;
    size_t len = (size_t)nread;
    if (flags & UV_UDP_PARTIAL) {
        if (len >= 2 && wire[0] == x->msg[0] && wire[1] == x->msg[1]) {
            start_tcp(x); /* larger than any answer without EDNS: ask again over TCP */
        }
        return;
    }
    if (!dns_wire_answers(x->msg, x->len, wire, len)) {
        ignore(x, "an answer that does not match the question");
        return;
    }
    if (dns_wire_is_truncated(wire, len)) {
        start_tcp(x);
        return;
    }
    offer(x, wire, len);
}

/* ---- start, cancel ---- */

static int start_udp(struct dns_exchange *x)
{
    int rc = uv_udp_connect(&x->udp, (const struct sockaddr *)&x->server);
    if (rc == 0) {
        rc = uv_udp_recv_start(&x->udp, udp_alloc_cb, udp_recv_cb);
    }
    if (rc == 0) {
        rc = udp_transmit(x);
    }
    return rc;
}

int dns_exchange_start(uv_loop_t *loop, const struct dns_exchange_params *p,
                       struct dns_exchange **out)
{
    size_t addr_len = p->server->sa_family == AF_INET    ? sizeof(struct sockaddr_in)
                      : p->server->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                         : 0;
    if (addr_len == 0 || p->len < 12 || p->len > 65535 || p->cb == NULL) {
        return AFC_EINVAL;
    }
    struct dns_exchange *x = calloc(1, sizeof *x);
    uint8_t *msg = malloc(p->len);
    if (x == NULL || msg == NULL) {
        free(x);
        free(msg);
        return AFC_ENOMEM;
    }
    x->loop = loop;
    memcpy(&x->server, p->server, addr_len);
    memcpy(msg, p->msg, p->len);
    x->msg = msg;
    x->len = p->len;
    x->timeout_ms = p->timeout_ms;
    x->resend_ms = dns_retransmit_first_ms(p->timeout_ms);
    x->accept = p->accept;
    x->cb = p->cb;
    x->data = p->data;
    int rc = uv_udp_init(loop, &x->udp);
    if (rc < 0) {
        free(msg);
        free(x);
        return AFC_EIO;
    }
    uv_timer_init(loop, &x->deadline);
    uv_timer_init(loop, &x->resend);
    x->udp.data = x->deadline.data = x->resend.data = x;
    x->open_handles = 3;
    x->early_error = start_udp(x);
    uv_timer_start(&x->deadline, deadline_cb, x->early_error != 0 ? 0 : p->timeout_ms, 0);
    if (x->early_error == 0) {
        uv_timer_start(&x->resend, resend_cb, x->resend_ms, 0);
    }
    if (out != NULL) {
        *out = x;
    }
    return 0;
}

void dns_exchange_cancel(struct dns_exchange *x)
{
    if (x != NULL && !x->done) {
        x->cb = NULL;
        close_all(x);
    }
}
