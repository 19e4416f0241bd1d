/*
 * Authenticated raft transport: a `struct raft_uv_transport` that replaces raft_uv_tcp.
 *
 * Why: raft_uv_tcp accepts anyone and trusts the claimed server id, and libraft 0.15 crashes on
 * garbage frames (raft-0.15.md §8). Here no byte from a peer reaches libraft before that peer has
 * proved it holds the cluster secret, so a stranger speaking garbage is dropped by us, not fed to
 * raft's decoder.
 *
 * Handshake (all lengths fixed; nothing the peer sends is used as a length):
 *   listener  -> dialer   nonce            32 random bytes (fresh per connection: no replay)
 *   dialer    -> listener hello            "AFCRAFT1" | id u64 LE | address[64] NUL padded |
 *                                          HMAC-SHA256(secret, nonce | magic | id | address)
 *   listener  -> dialer   ack              1 byte (0x01), only after the MAC and id check
 * then the stream is handed to raft: accept_cb on the listener, connect_cb on the dialer.
 *
 * Ownership as raft 0.15 expects (uv_recv.c / uv_send.c): the uv_tcp_t handed over is allocated
 * with raft_malloc; raft uv_close()s it and raft_free()s it. A failed or cancelled connect calls
 * the connect cb with a NULL stream (RAFT_NOCONNECTION / RAFT_CANCELED) once our handles are
 * closed, never synchronously from connect(). close() cancels every handshake in progress and
 * calls its cb only after every handle this file opened is closed.
 *
 * Every handshake reads into a per-connection buffer with reads sized to exactly the bytes still
 * expected, so no raft frame sent right after the ack is ever consumed here.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "afc/consensus.h"
#include "afc/log.h"

#define MAGIC                "AFCRAFT1"
#define MAGIC_LEN            8
#define NONCE_LEN            32
#define ADDR_FIELD           64
#define MAC_LEN              32
#define HELLO_BODY           (MAGIC_LEN + 8 + ADDR_FIELD)
#define HELLO_LEN            (HELLO_BODY + MAC_LEN)
#define ACK_BYTE             0x01
#define HANDSHAKE_TIMEOUT_MS 2000
#define SECRET_MAX           1024
/* Incoming handshakes in progress; beyond this a new connection is dropped at once, so a
 * connection flood cannot exhaust our file descriptors for long (each lives at most 2 s). */
#define MAX_INCOMING 32
/* At most this many "dropped connection" lines per window; the rest are counted. */
#define LOG_WINDOW_MS  10000
#define LOG_PER_WINDOW 10

struct hs;

struct afc_tr {
    struct raft_uv_transport *t;
    uv_loop_t *loop;
    unsigned char secret[SECRET_MAX];
    size_t secret_len;
    raft_id members[AFC_MAX_MEMBERS];
    char dial[AFC_MAX_MEMBERS][ADDR_FIELD]; /* per member: "" = the address raft gives */
    unsigned n_members;
    raft_id id;               /* ours, from transport->init */
    char address[ADDR_FIELD]; /* ours, sent in the hello */
    char bind[ADDR_FIELD];    /* "" = listen on `address` */
    uv_tcp_t listener;
    bool listener_open;
    uv_idle_t closer; /* closed in close() only so that the close cb is always asynchronous */
    raft_uv_accept_cb accept_cb;
    struct hs *hs_list; /* handshakes in progress (both directions) */
    unsigned n_incoming;
    unsigned live; /* hs objects + own handles not yet released; close cb waits for 0 */
    bool closing;
    raft_uv_transport_close_cb close_cb;
    uint64_t log_window_start;
    unsigned log_count, log_suppressed;
};

/* One connection during its handshake. Freed when its last handle is closed. */
struct hs {
    struct afc_tr *tr;
    struct hs *next, *prev;
    bool outgoing, failed, verified, got_nonce;
    int status;            /* outgoing: what the connect cb gets on failure */
    unsigned open_handles; /* of tcp and timer, still to be closed by us */
    unsigned writes_pending;
    uv_tcp_t *tcp; /* raft_malloc'd; NULL once handed to raft */
    uv_timer_t timer;
    uv_connect_t connect;
    uv_write_t wreq[2]; /* listener: nonce, ack; dialer: hello */
    struct raft_uv_connect *req;
    unsigned char nonce[NONCE_LEN];
    unsigned char in[HELLO_LEN];
    size_t want, got;
    unsigned char out[HELLO_LEN];
    unsigned char ack;
    char peer[ADDR_FIELD]; /* IP:PORT for log lines */
};

/* ---- small helpers ---- */

static void put_u64le(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static uint64_t get_u64le(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* "a.b.c.d:port" → sockaddr; 0.15's own transport accepts nothing else either. */
static int parse_ipv4(const char *addr, struct sockaddr_in *sa)
{
    char host[ADDR_FIELD];
    if (addr == NULL || strlen(addr) >= sizeof host) {
        return -1;
    }
    memcpy(host, addr, strlen(addr) + 1);
    char *colon = strrchr(host, ':');
    if (colon == NULL) {
        return -1;
    }
    *colon = '\0';
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || port < 1 || port > 65535) {
        return -1;
    }
    return uv_ip4_addr(host, (int)port, sa) == 0 ? 0 : -1;
}

/* MAC over nonce | hello body: binds the hello to this connection's fresh nonce. */
static void hello_mac(const struct afc_tr *tr, const unsigned char *nonce,
                      const unsigned char *body, unsigned char *mac)
{
    unsigned char msg[NONCE_LEN + HELLO_BODY];
    unsigned int len = MAC_LEN;
    memcpy(msg, nonce, NONCE_LEN);
    memcpy(msg + NONCE_LEN, body, HELLO_BODY);
    if (HMAC(EVP_sha256(), tr->secret, (int)tr->secret_len, msg, sizeof msg, mac, &len) == NULL) {
        /* Cannot happen with SHA-256; a random MAC simply fails verification. */
        RAND_bytes(mac, MAC_LEN);
    }
}

static bool is_member(const struct afc_tr *tr, raft_id id)
{
    for (unsigned i = 0; id != 0 && i < tr->n_members; i++) {
        if (tr->members[i] == id) {
            return true;
        }
    }
    return false;
}

/* One line per dropped connection, at most LOG_PER_WINDOW per window, so a flood of strangers
 * cannot flood the log. */
static void log_drop(struct afc_tr *tr, const struct hs *h, const char *reason)
{
    uint64_t now = uv_now(tr->loop);
    if (now - tr->log_window_start >= LOG_WINDOW_MS) {
        if (tr->log_suppressed > 0) {
            afc_warn("raft transport: %u more dropped connections not logged", tr->log_suppressed);
        }
        tr->log_window_start = now;
        tr->log_count = 0;
        tr->log_suppressed = 0;
    }
    if (tr->log_count++ < LOG_PER_WINDOW) {
        afc_warn("raft transport: dropped connection from %s: %s", h->peer, reason);
    } else {
        tr->log_suppressed++;
    }
}

static void tr_maybe_closed(struct afc_tr *tr)
{
    if (tr->closing && tr->live == 0 && tr->close_cb != NULL) {
        raft_uv_transport_close_cb cb = tr->close_cb;
        tr->close_cb = NULL;
        cb(tr->t);
    }
}

/* ---- handshake object lifecycle ---- */

static void hs_unlink(struct hs *h)
{
    if (h->prev != NULL) {
        h->prev->next = h->next;
    } else if (h->tr->hs_list == h) {
        h->tr->hs_list = h->next;
    }
    if (h->next != NULL) {
        h->next->prev = h->prev;
    }
    h->next = h->prev = NULL;
    if (!h->outgoing) {
        h->tr->n_incoming--;
    }
}

/* Last handle closed: report a failed/cancelled connect, release memory. */
static void hs_handle_closed(uv_handle_t *handle)
{
    struct hs *h = handle->data;
    if (--h->open_handles > 0) {
        return;
    }
    struct afc_tr *tr = h->tr;
    if (h->tcp != NULL) {
        raft_free(h->tcp);
    }
    if (h->req != NULL) {
        h->req->cb(h->req, NULL, h->status);
    }
    free(h);
    tr->live--;
    tr_maybe_closed(tr);
}

static struct hs *hs_new(struct afc_tr *tr, bool outgoing)
{
    struct hs *h = calloc(1, sizeof *h);
    uv_tcp_t *tcp = raft_malloc(sizeof *tcp);
    if (h == NULL || tcp == NULL || uv_tcp_init(tr->loop, tcp) != 0) {
        free(h);
        raft_free(tcp);
        return NULL;
    }
    uv_timer_init(tr->loop, &h->timer);
    h->tr = tr;
    h->outgoing = outgoing;
    h->status = RAFT_NOCONNECTION;
    h->tcp = tcp;
    tcp->data = h;
    h->timer.data = h;
    h->open_handles = 2;
    h->next = tr->hs_list;
    if (h->next != NULL) {
        h->next->prev = h;
    }
    tr->hs_list = h;
    tr->n_incoming += outgoing ? 0 : 1;
    tr->live++;
    return h;
}

/* Abort the handshake: close both handles; the rest happens in hs_handle_closed. `reason` NULL =
 * not worth a line (transport closing). */
static void hs_fail(struct hs *h, const char *reason)
{
    if (h->failed) {
        return;
    }
    h->failed = true;
    hs_unlink(h);
    if (reason != NULL && !h->outgoing) {
        log_drop(h->tr, h, reason);
    } else if (reason != NULL) {
        afc_debug("raft transport: connect to %s failed: %s", h->peer, reason);
    }
    uv_close((uv_handle_t *)h->tcp, hs_handle_closed);
    uv_close((uv_handle_t *)&h->timer, hs_handle_closed);
}

/* Hand the stream to raft once it is verified and our own writes are done (a write still pending
 * on a stream raft owns would call back into freed memory). */
static void hs_maybe_done(struct hs *h)
{
    if (h->failed || !h->verified || h->writes_pending > 0) {
        return;
    }
    struct afc_tr *tr = h->tr;
    uv_stream_t *stream = (uv_stream_t *)h->tcp;
    struct raft_uv_connect *req = h->req;
    raft_id peer_id = 0;
    char address[ADDR_FIELD] = "";
    if (!h->outgoing) { /* verified by check_hello: a member id and a NUL-terminated address */
        peer_id = get_u64le(h->in + MAGIC_LEN);
        memcpy(address, h->in + MAGIC_LEN + 8, ADDR_FIELD);
    }

    h->failed = true; /* no more callbacks act on this object */
    hs_unlink(h);
    uv_read_stop(stream);
    h->tcp = NULL;
    h->req = NULL;
    stream->data = NULL;
    h->open_handles = 1;
    uv_close((uv_handle_t *)&h->timer, hs_handle_closed);
    if (h->outgoing) {
        req->cb(req, stream, 0);
    } else {
        tr->accept_cb(tr->t, peer_id, address, stream);
    }
}

/* ---- I/O primitives ---- */

static void hs_write_cb(uv_write_t *w, int status)
{
    struct hs *h = w->data;
    h->writes_pending--;
    if (status != 0) {
        hs_fail(h, uv_strerror(status));
        return;
    }
    hs_maybe_done(h);
}

static void hs_write(struct hs *h, unsigned slot, const unsigned char *data, size_t len)
{
    uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
    h->wreq[slot].data = h;
    int rv = uv_write(&h->wreq[slot], (uv_stream_t *)h->tcp, &buf, 1, hs_write_cb);
    if (rv != 0) {
        hs_fail(h, uv_strerror(rv));
        return;
    }
    h->writes_pending++;
}

/* Offer exactly the bytes still missing, never more: the rest of the stream belongs to raft. */
static void hs_alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct hs *h = handle->data;
    (void)suggested;
    *buf = uv_buf_init((char *)h->in + h->got, (unsigned)(h->want - h->got));
}

static void hs_on_input(struct hs *h);

static void hs_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct hs *h = stream->data;
    (void)buf;
    if (nread == 0 || h->failed) {
        return;
    }
    if (nread < 0) {
        hs_fail(h, nread == UV_EOF ? "closed by peer during handshake" : uv_strerror((int)nread));
        return;
    }
    h->got += (size_t)nread;
    if (h->got == h->want) {
        uv_read_stop(stream);
        hs_on_input(h);
    }
}

static void hs_expect(struct hs *h, size_t n)
{
    h->want = n;
    h->got = 0;
    int rv = uv_read_start((uv_stream_t *)h->tcp, hs_alloc_cb, hs_read_cb);
    if (rv != 0) {
        hs_fail(h, uv_strerror(rv));
    }
}

static void hs_timer_cb(uv_timer_t *timer)
{
    hs_fail(timer->data, "handshake timeout");
}

/* ---- listener side ---- */

/* NULL if the hello is acceptable, else why not. The MAC is checked before anything else the peer
 * claims is believed. */
static const char *check_hello(const struct hs *h)
{
    unsigned char mac[MAC_LEN];
    if (memcmp(h->in, MAGIC, MAGIC_LEN) != 0) {
        return "bad magic (not an aragora raft peer)";
    }
    hello_mac(h->tr, h->nonce, h->in, mac);
    if (CRYPTO_memcmp(mac, h->in + HELLO_BODY, MAC_LEN) != 0) {
        return "bad MAC (wrong cluster secret?)";
    }
    if (!is_member(h->tr, get_u64le(h->in + MAGIC_LEN))) {
        return "server id is not a member";
    }
    const unsigned char *addr = h->in + MAGIC_LEN + 8;
    if (addr[0] == '\0' || memchr(addr, '\0', ADDR_FIELD) == NULL) {
        return "bad address field";
    }
    return NULL;
}

static void listener_got_hello(struct hs *h)
{
    const char *why = check_hello(h);
    if (why != NULL) {
        hs_fail(h, why);
        return;
    }
    h->verified = true;
    h->ack = ACK_BYTE;
    hs_write(h, 1, &h->ack, 1);
}

static void peer_name(struct hs *h)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (uv_tcp_getpeername(h->tcp, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
        uv_ip4_name(sin, ip, sizeof ip);
        port = ntohs(sin->sin_port);
    }
    snprintf(h->peer, sizeof h->peer, "%s:%d", ip, port);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct afc_tr *tr = listener->data;
    if (status != 0 || tr->closing) {
        return;
    }
    struct hs *h = hs_new(tr, false);
    if (h == NULL) {
        /* Out of memory: leave it in the backlog; the peer times out and retries. */
        return;
    }
    if (uv_accept(listener, (uv_stream_t *)h->tcp) != 0) {
        snprintf(h->peer, sizeof h->peer, "?");
        hs_fail(h, "accept failed");
        return;
    }
    peer_name(h);
    if (tr->n_incoming > MAX_INCOMING) {
        hs_fail(h, "too many handshakes in progress");
        return;
    }
    if (RAND_bytes(h->nonce, NONCE_LEN) != 1) {
        hs_fail(h, "no randomness for the nonce");
        return;
    }
    uv_timer_start(&h->timer, hs_timer_cb, HANDSHAKE_TIMEOUT_MS, 0);
    hs_write(h, 0, h->nonce, NONCE_LEN);
    if (!h->failed) {
        hs_expect(h, HELLO_LEN);
    }
}

/* ---- dialer side ---- */

static void dialer_got_nonce(struct hs *h)
{
    struct afc_tr *tr = h->tr;
    memcpy(h->nonce, h->in, NONCE_LEN);
    h->got_nonce = true;
    memset(h->out, 0, sizeof h->out);
    memcpy(h->out, MAGIC, MAGIC_LEN);
    put_u64le(h->out + MAGIC_LEN, tr->id);
    memcpy(h->out + MAGIC_LEN + 8, tr->address, strlen(tr->address));
    hello_mac(tr, h->nonce, h->out, h->out + HELLO_BODY);
    hs_write(h, 0, h->out, HELLO_LEN);
    if (!h->failed) {
        hs_expect(h, 1);
    }
}

static void hs_on_input(struct hs *h)
{
    if (!h->outgoing) {
        listener_got_hello(h);
    } else if (!h->got_nonce) {
        dialer_got_nonce(h);
    } else if (h->in[0] != ACK_BYTE) {
        hs_fail(h, "handshake refused by peer");
    } else {
        h->verified = true;
        hs_maybe_done(h);
    }
}

static void on_connected(uv_connect_t *c, int status)
{
    struct hs *h = c->data;
    if (h->failed) {
        return; /* cancelled: hs_handle_closed reports it */
    }
    if (status != 0) {
        hs_fail(h, uv_strerror(status));
        return;
    }
    hs_expect(h, NONCE_LEN);
}

/* ---- the raft_uv_transport vtable ---- */

static int tr_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct afc_tr *tr = t->impl;
    if (strlen(address) >= ADDR_FIELD) {
        snprintf(t->errmsg, sizeof t->errmsg, "address too long: %s", address);
        return RAFT_NAMETOOLONG;
    }
    tr->id = id;
    snprintf(tr->address, sizeof tr->address, "%s", address);
    return 0;
}

static int tr_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct afc_tr *tr = t->impl;
    struct sockaddr_in sa;
    const char *addr = tr->bind[0] != '\0' ? tr->bind : tr->address;
    if (parse_ipv4(addr, &sa) != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "listen address %s: expected a.b.c.d:port", addr);
        return RAFT_INVALID;
    }
    tr->accept_cb = cb;
    if (uv_tcp_init(tr->loop, &tr->listener) != 0) {
        return RAFT_IOERR;
    }
    tr->listener.data = tr;
    tr->listener_open = true;
    tr->live++;
    /* libuv's bind sets SO_REUSEADDR, as raft_uv_tcp does. */
    int rv = uv_tcp_bind(&tr->listener, (const struct sockaddr *)&sa, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&tr->listener, 64, on_connection);
    }
    if (rv != 0) {
        snprintf(t->errmsg, sizeof t->errmsg, "listen on %s: %s", addr, uv_strerror(rv));
        return RAFT_IOERR;
    }
    return 0;
}

static int tr_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                      const char *address, raft_uv_connect_cb cb)
{
    struct afc_tr *tr = t->impl;
    struct sockaddr_in sa;
    if (tr->closing) {
        return RAFT_CANCELED;
    }
    for (unsigned i = 0; i < tr->n_members; i++) {
        if (tr->members[i] == id && tr->dial[i][0] != '\0') {
            address = tr->dial[i];
        }
    }
    if (parse_ipv4(address, &sa) != 0) {
        return RAFT_NOCONNECTION;
    }
    struct hs *h = hs_new(tr, true);
    if (h == NULL) {
        return RAFT_NOMEM;
    }
    snprintf(h->peer, sizeof h->peer, "%s", address);
    h->connect.data = h;
    if (uv_tcp_connect(&h->connect, h->tcp, (const struct sockaddr *)&sa, on_connected) != 0) {
        /* Failing synchronously: raft retries itself, so the cb must not run as well. */
        hs_fail(h, "connect failed");
        return RAFT_NOCONNECTION;
    }
    req->cb = cb;
    h->req = req;
    uv_timer_start(&h->timer, hs_timer_cb, HANDSHAKE_TIMEOUT_MS, 0);
    return 0;
}

static void tr_handle_closed(uv_handle_t *handle)
{
    struct afc_tr *tr = handle->data;
    tr->live--;
    tr_maybe_closed(tr);
}

static void tr_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct afc_tr *tr = t->impl;
    if (tr->closing) {
        return;
    }
    tr->closing = true;
    tr->close_cb = cb;
    if (tr->listener_open) {
        tr->listener_open = false;
        uv_close((uv_handle_t *)&tr->listener, tr_handle_closed);
    }
    /* Pending connects complete with RAFT_CANCELED, as raft's uv_send.c asserts. */
    while (tr->hs_list != NULL) {
        tr->hs_list->status = RAFT_CANCELED;
        hs_fail(tr->hs_list, NULL);
    }
    uv_idle_init(tr->loop, &tr->closer);
    tr->closer.data = tr;
    tr->live++;
    uv_close((uv_handle_t *)&tr->closer, tr_handle_closed);
}

/* ---- public ---- */

int afc_transport_init(struct raft_uv_transport *t, uv_loop_t *loop, const unsigned char *secret,
                       size_t secret_len, const raft_id *member_ids, unsigned n_members)
{
    if (secret == NULL || secret_len == 0 || secret_len > SECRET_MAX || n_members == 0 ||
        n_members > AFC_MAX_MEMBERS) {
        return RAFT_INVALID;
    }
    struct afc_tr *tr = calloc(1, sizeof *tr);
    if (tr == NULL) {
        return RAFT_NOMEM;
    }
    tr->t = t;
    tr->loop = loop;
    memcpy(tr->secret, secret, secret_len);
    tr->secret_len = secret_len;
    memcpy(tr->members, member_ids, n_members * sizeof *member_ids);
    tr->n_members = n_members;
    tr->log_window_start = uv_now(loop);
    memset(t, 0, sizeof *t);
    t->impl = tr;
    t->init = tr_init;
    t->listen = tr_listen;
    t->connect = tr_connect;
    t->close = tr_close;
    return 0;
}

int afc_transport_set_bind_address(struct raft_uv_transport *t, const char *address)
{
    struct afc_tr *tr = t->impl;
    struct sockaddr_in sa;
    if (parse_ipv4(address, &sa) != 0) {
        return RAFT_INVALID;
    }
    snprintf(tr->bind, sizeof tr->bind, "%s", address);
    return 0;
}

int afc_transport_set_dial_address(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct afc_tr *tr = t->impl;
    struct sockaddr_in sa;
    if (parse_ipv4(address, &sa) != 0 || strlen(address) >= ADDR_FIELD) {
        return RAFT_INVALID;
    }
    for (unsigned i = 0; i < tr->n_members; i++) {
        if (tr->members[i] == id) {
            snprintf(tr->dial[i], sizeof tr->dial[i], "%s", address);
            return 0;
        }
    }
    return RAFT_NOTFOUND;
}

void afc_transport_release(struct raft_uv_transport *t)
{
    struct afc_tr *tr = t->impl;
    if (tr != NULL) {
        OPENSSL_cleanse(tr->secret, sizeof tr->secret);
        free(tr);
        t->impl = NULL;
    }
}
