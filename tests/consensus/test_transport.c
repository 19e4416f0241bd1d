/*
 * The authenticated raft transport (consensus/transport.c) on a real loop over 127.0.0.1 (ports
 * 24900-24999). The test plays raft: its accept/connect callbacks take the streams over.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "afc/consensus.h"
#include "afc/log.h"
#include "tests/test.h"

static const unsigned char SECRET[] = "correct horse battery staple 0123";
static const unsigned char WRONG[] = "not the cluster secret at all....";
static const raft_id MEMBERS[] = {1, 2, 3};

#define ADDR_A "127.0.0.1:24901"
#define ADDR_B "127.0.0.1:24902"

/* ---- a fake raft: one transport + what its callbacks saw ---- */

struct peer {
    struct raft_uv_transport t;
    int accepts;
    raft_id accepted_id;
    char accepted_addr[64];
    uv_stream_t *accepted;
    int connects;
    int connect_status;
    uv_stream_t *connected;
    bool closed;
    bool connect_cb_before_close; /* connect cb had run when the close cb ran */
    struct raft_uv_connect req;
    char rbuf[64];
    size_t rlen;
};

static void accept_cb(struct raft_uv_transport *t, raft_id id, const char *address,
                      uv_stream_t *stream)
{
    struct peer *p = t->data;
    p->accepts++;
    p->accepted_id = id;
    snprintf(p->accepted_addr, sizeof p->accepted_addr, "%s", address);
    p->accepted = stream;
    stream->data = p;
}

static void connect_cb(struct raft_uv_connect *req, uv_stream_t *stream, int status)
{
    struct peer *p = req->data;
    p->connects++;
    p->connect_status = status;
    p->connected = stream;
    if (stream != NULL) {
        stream->data = p;
    }
}

static void transport_closed(struct raft_uv_transport *t)
{
    struct peer *p = t->data;
    p->closed = true;
    p->connect_cb_before_close = p->connects > 0;
}

static int peer_init(struct peer *p, uv_loop_t *loop, const unsigned char *secret, raft_id id,
                     const char *addr)
{
    memset(p, 0, sizeof *p);
    int rv = afc_transport_init(&p->t, loop, secret, sizeof SECRET - 1, MEMBERS, 3);
    if (rv == 0) {
        p->t.data = p;
        p->req.data = p;
        rv = p->t.init(&p->t, id, addr);
    }
    return rv;
}

/* Run the loop until *flag or ms elapsed (a timer bounds the wait). */
static void timeout_cb(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static void run_until(uv_loop_t *loop, const bool *flag, int *counter, unsigned ms)
{
    bool expired = false;
    uv_timer_t timer;
    uv_timer_init(loop, &timer);
    timer.data = &expired;
    uv_timer_start(&timer, timeout_cb, ms, 0);
    while (!expired && !(flag != NULL && *flag) && !(counter != NULL && *counter > 0)) {
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

/* What raft does with a stream it owns. */
static void close_stream(uv_stream_t *s)
{
    if (s != NULL) {
        uv_close((uv_handle_t *)s, (uv_close_cb)raft_free);
    }
}

static void close_peer(uv_loop_t *loop, struct peer *p)
{
    p->t.close(&p->t, transport_closed);
    run_until(loop, &p->closed, NULL, 3000);
    CHECK(p->closed);
    afc_transport_release(&p->t);
}

static void finish_loop(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(loop), 0);
}

/* ---- reading/writing on handed-over streams ---- */

static void rd_alloc(uv_handle_t *h, size_t n, uv_buf_t *buf)
{
    struct peer *p = h->data;
    (void)n;
    *buf = uv_buf_init(p->rbuf + p->rlen, (unsigned)(sizeof p->rbuf - 1 - p->rlen));
}

static void rd_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct peer *p = s->data;
    (void)buf;
    if (n > 0) {
        p->rlen += (size_t)n;
    }
}

/* ---- tests ---- */

static void test_authenticated_exchange(void)
{
    uv_loop_t loop;
    struct peer a, b;
    uv_loop_init(&loop);
    REQUIRE(peer_init(&a, &loop, SECRET, 1, ADDR_A) == 0);
    REQUIRE(peer_init(&b, &loop, SECRET, 2, ADDR_B) == 0);
    REQUIRE(a.t.listen(&a.t, accept_cb) == 0);
    REQUIRE(b.t.connect(&b.t, &b.req, 1, ADDR_A, connect_cb) == 0);
    run_until(&loop, NULL, &b.connects, 3000);
    run_until(&loop, NULL, &a.accepts, 1000);
    CHECK_EQ_INT(b.connects, 1);
    CHECK_EQ_INT(b.connect_status, 0);
    CHECK_EQ_INT(a.accepts, 1);
    CHECK_EQ_INT(a.accepted_id, 2);
    CHECK_EQ_STR(a.accepted_addr, ADDR_B);
    if (a.accepted != NULL && b.connected != NULL) {
        /* Bytes written right after the handshake all arrive: none was eaten by it. */
        uv_write_t w;
        uv_buf_t msg = uv_buf_init((char *)"raft frame bytes", 16);
        uv_read_start(a.accepted, rd_alloc, rd_cb);
        CHECK_EQ_INT(uv_write(&w, b.connected, &msg, 1, NULL), 0);
        for (int i = 0; i < 100 && a.rlen < 16; i++) {
            uv_run(&loop, UV_RUN_ONCE);
        }
        CHECK_EQ_STR(a.rbuf, "raft frame bytes");
    }
    close_stream(a.accepted);
    close_stream(b.connected);
    close_peer(&loop, &a);
    close_peer(&loop, &b);
    finish_loop(&loop);
}

static void test_wrong_secret_refused(void)
{
    uv_loop_t loop;
    struct peer a, b;
    uv_loop_init(&loop);
    REQUIRE(peer_init(&a, &loop, SECRET, 1, ADDR_A) == 0);
    REQUIRE(peer_init(&b, &loop, WRONG, 2, ADDR_B) == 0);
    REQUIRE(a.t.listen(&a.t, accept_cb) == 0);
    REQUIRE(b.t.connect(&b.t, &b.req, 1, ADDR_A, connect_cb) == 0);
    run_until(&loop, NULL, &b.connects, 3000);
    CHECK_EQ_INT(b.connects, 1);
    CHECK_EQ_INT(b.connect_status, RAFT_NOCONNECTION);
    CHECK(b.connected == NULL);
    CHECK_EQ_INT(a.accepts, 0);
    close_peer(&loop, &a);
    close_peer(&loop, &b);
    finish_loop(&loop);
}

/* ---- raw clients: strangers speaking whatever ---- */

enum raw_mode { RAW_GARBAGE, RAW_ZEROS, RAW_MAGIC_GARBAGE, RAW_NOTHING, RAW_HELLO };

struct raw {
    enum raw_mode mode;
    const unsigned char *secret;
    raft_id id;
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t w;
    unsigned char in[64];
    size_t got;
    unsigned char out[200];
    bool done, acked;
};

static void raw_closed(uv_handle_t *h)
{
    struct raw *r = h->data;
    r->done = true;
}

static void raw_send(struct raw *r, size_t len)
{
    uv_buf_t buf = uv_buf_init((char *)r->out, (unsigned)len);
    uv_write(&r->w, (uv_stream_t *)&r->tcp, &buf, 1, NULL);
}

/* The real hello format, built independently of transport.c. */
static void raw_hello(struct raw *r)
{
    unsigned char msg[32 + 80];
    unsigned int len = 32;
    memset(r->out, 0, sizeof r->out);
    memcpy(r->out, "AFCRAFT1", 8);
    for (int i = 0; i < 8; i++) {
        r->out[8 + i] = (unsigned char)(r->id >> (8 * i));
    }
    memcpy(r->out + 16, "127.0.0.1:24999", 15);
    memcpy(msg, r->in, 32);
    memcpy(msg + 32, r->out, 80);
    HMAC(EVP_sha256(), r->secret, (int)(sizeof SECRET - 1), msg, sizeof msg, r->out + 80, &len);
    raw_send(r, 112);
}

static void raw_alloc(uv_handle_t *h, size_t n, uv_buf_t *buf)
{
    struct raw *r = h->data;
    (void)n;
    *buf = uv_buf_init((char *)r->in + r->got, (unsigned)(sizeof r->in - r->got));
}

static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct raw *r = s->data;
    (void)buf;
    if (n < 0) {
        uv_close((uv_handle_t *)s, raw_closed); /* dropped by the server */
        return;
    }
    size_t before = r->got;
    r->got += (size_t)n;
    if (r->mode == RAW_HELLO && before < 32 && r->got >= 32) {
        raw_hello(r);
    }
    if (r->got > 32 && r->in[32] == 0x01) {
        r->acked = true;
        uv_close((uv_handle_t *)s, raw_closed);
    }
}

static void raw_connected(uv_connect_t *c, int status)
{
    struct raw *r = c->data;
    if (status != 0) {
        uv_close((uv_handle_t *)&r->tcp, raw_closed);
        return;
    }
    uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read);
    if (r->mode == RAW_GARBAGE || r->mode == RAW_MAGIC_GARBAGE) {
        for (size_t i = 0; i < sizeof r->out; i++) {
            r->out[i] = (unsigned char)rand();
        }
        if (r->mode == RAW_MAGIC_GARBAGE) {
            memcpy(r->out, "AFCRAFT1", 8);
        }
        raw_send(r, sizeof r->out);
    } else if (r->mode == RAW_ZEROS) {
        memset(r->out, 0, sizeof r->out);
        raw_send(r, sizeof r->out);
    }
}

/* One stranger against a listener; returns whether the server acked it. */
static bool raw_run(uv_loop_t *loop, struct raw *r)
{
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 24901, &sa);
    uv_tcp_init(loop, &r->tcp);
    r->tcp.data = r;
    r->conn.data = r;
    uv_tcp_connect(&r->conn, &r->tcp, (const struct sockaddr *)&sa, raw_connected);
    run_until(loop, &r->done, NULL, 4000);
    CHECK(r->done);
    return r->acked;
}

static void test_strangers_dropped(void)
{
    uv_loop_t loop;
    struct peer a;
    uv_loop_init(&loop);
    REQUIRE(peer_init(&a, &loop, SECRET, 1, ADDR_A) == 0);
    REQUIRE(a.t.listen(&a.t, accept_cb) == 0);
    struct raw cases[] = {
        {.mode = RAW_GARBAGE},
        {.mode = RAW_ZEROS},
        {.mode = RAW_MAGIC_GARBAGE},
        {.mode = RAW_HELLO, .secret = WRONG, .id = 2},  /* plausible, wrong MAC */
        {.mode = RAW_HELLO, .secret = SECRET, .id = 9}, /* right MAC, not a member */
        {.mode = RAW_HELLO, .secret = SECRET, .id = 0}, /* right MAC, id 0 */
        {.mode = RAW_NOTHING},                          /* silent: 2 s timeout */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(!raw_run(&loop, &cases[i]));
        CHECK_EQ_INT(a.accepts, 0);
    }
    /* Sanity check of the raw client itself: a correct hello is accepted. */
    struct raw good = {.mode = RAW_HELLO, .secret = SECRET, .id = 3};
    CHECK(raw_run(&loop, &good));
    run_until(&loop, NULL, &a.accepts, 1000);
    CHECK_EQ_INT(a.accepts, 1);
    CHECK_EQ_INT(a.accepted_id, 3);
    close_stream(a.accepted);
    close_peer(&loop, &a);
    finish_loop(&loop);
}

/* A listener that never accepts: TCP connects (backlog), the nonce never comes. */
static int silent_listener(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 8) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void cancel_case(unsigned run_ms)
{
    uv_loop_t loop;
    struct peer b;
    int fd = silent_listener(24903);
    REQUIRE(fd >= 0);
    uv_loop_init(&loop);
    REQUIRE(peer_init(&b, &loop, SECRET, 2, ADDR_B) == 0);
    REQUIRE(b.t.connect(&b.t, &b.req, 3, "127.0.0.1:24903", connect_cb) == 0);
    if (run_ms > 0) {
        run_until(&loop, NULL, &b.connects, run_ms);
    }
    CHECK_EQ_INT(b.connects, 0);
    close_peer(&loop, &b);
    CHECK_EQ_INT(b.connects, 1);
    CHECK_EQ_INT(b.connect_status, RAFT_CANCELED);
    CHECK(b.connected == NULL);
    CHECK(b.connect_cb_before_close);
    finish_loop(&loop);
    close(fd);
}

static void test_close_cancels_pending_connect(void)
{
    cancel_case(0);   /* TCP connect still in flight */
    cancel_case(300); /* connected, waiting for the nonce */
}

static void test_connect_timeout(void)
{
    uv_loop_t loop;
    struct peer b;
    int fd = silent_listener(24904);
    REQUIRE(fd >= 0);
    uv_loop_init(&loop);
    REQUIRE(peer_init(&b, &loop, SECRET, 2, ADDR_B) == 0);
    REQUIRE(b.t.connect(&b.t, &b.req, 3, "127.0.0.1:24904", connect_cb) == 0);
    run_until(&loop, NULL, &b.connects, 4000);
    CHECK_EQ_INT(b.connects, 1);
    CHECK_EQ_INT(b.connect_status, RAFT_NOCONNECTION);
    close_peer(&loop, &b);
    finish_loop(&loop);
    close(fd);
}

static void test_init_refuses_no_secret(void)
{
    struct raft_uv_transport t;
    uv_loop_t loop;
    uv_loop_init(&loop);
    CHECK(afc_transport_init(&t, &loop, NULL, 0, MEMBERS, 3) != 0);
    CHECK(afc_transport_init(&t, &loop, SECRET, 0, MEMBERS, 3) != 0);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

int main(void)
{
    afc_log_setup(AFC_LOG_WARN, 0, "test_transport", stderr);
    TEST_RUN(test_init_refuses_no_secret);
    TEST_RUN(test_authenticated_exchange);
    TEST_RUN(test_wrong_secret_refused);
    TEST_RUN(test_strangers_dropped);
    TEST_RUN(test_close_cancels_pending_connect);
    TEST_RUN(test_connect_timeout);
    TEST_END();
}
