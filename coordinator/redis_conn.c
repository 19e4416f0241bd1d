/*
 * The Redis publisher's connection (include/afc/redis_pub.h, docs/redis.md): one hiredis async
 * context on the daemon's loop (its libuv adapter), driven by a small machine:
 *
 *   IDLE → RESOLVING → CONNECTING → HANDSHAKE → READY ─(lost, timed out)→ BACKOFF → RESOLVING …
 *
 * Our own timers keep every promise about time, because hiredis 0.14 keeps none (no connect or
 * command timeout, and a refused async connect never calls back — lab-recipes.md §4):
 *   conn_timer  connect watchdog (resolve + TCP + AUTH/SELECT/PING), the backoff wait, and a
 *               deferred teardown (hiredis must not be freed from inside its own callbacks)
 *   cmd_timer   command watchdog: the oldest command in flight must be answered in timeout_ms
 * READY means Redis answered the handshake (a PING at least): a stopped Redis's kernel still
 * accepts TCP connections. Replies are routed to redis_pub.c (writes, reads).
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The adapter defines static functions that this file does not all use. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include <hiredis/adapters/libuv.h>
#pragma GCC diagnostic pop

#include "afc/log.h"
#include "coordinator/redis_internal.h"

static const char *const conn_names[] = {
#define CONN_NAME(name, text) text,
    CONN_STATES(CONN_NAME)
#undef CONN_NAME
};

#define BIT(s) (1u << (s))
/* allowed[from]: the states it may move to. */
static const unsigned conn_allowed[CONN_N] = {
    [CONN_IDLE] = BIT(CONN_RESOLVING) | BIT(CONN_CONNECTING) | BIT(CONN_CLOSED),
    [CONN_RESOLVING] = BIT(CONN_CONNECTING) | BIT(CONN_BACKOFF) | BIT(CONN_CLOSED),
    [CONN_CONNECTING] =
        BIT(CONN_HANDSHAKE) | BIT(CONN_READY) | BIT(CONN_BACKOFF) | BIT(CONN_CLOSED),
    [CONN_HANDSHAKE] = BIT(CONN_READY) | BIT(CONN_BACKOFF) | BIT(CONN_CLOSED),
    [CONN_READY] = BIT(CONN_BACKOFF) | BIT(CONN_CLOSED),
    [CONN_BACKOFF] = BIT(CONN_RESOLVING) | BIT(CONN_CONNECTING) | BIT(CONN_CLOSED),
    [CONN_CLOSED] = 0,
};

static const char *const cmd_names[] = {"AUTH", "SELECT", "PING",   "EVALSHA",
                                        "EVAL", "GET",    "PUBLISH"};

static void conn_failed(struct afc_redis_pub *p, bool reconnect_now);
static void arm_cmd_timer(struct afc_redis_pub *p);

const char *redis_state_name(enum conn_state s)
{
    return (unsigned)s < CONN_N ? conn_names[s] : "unknown";
}

void redis_move(struct afc_redis_pub *p, enum conn_state next)
{
    /* An illegal transition is a bug in this module, never a consequence of input. */
    if ((conn_allowed[p->state] & BIT(next)) == 0) {
        afc_error("redis %s: illegal move %s -> %s", p->addr, conn_names[p->state],
                  conn_names[next]);
        return;
    }
    afc_debug("redis %s: %s -> %s", p->addr, conn_names[p->state], conn_names[next]);
    p->state = next;
    p->state_since_ms = redis_now_ms(p);
}

static void inflight_remove(struct afc_redis_pub *p, struct cmd *c)
{
    struct cmd **pp = &p->inflight, *prev = NULL;
    while (*pp && *pp != c) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp == NULL) {
        return;
    }
    *pp = c->next;
    if (p->inflight_tail == c) {
        p->inflight_tail = prev;
    }
}

static void reply_cb(redisAsyncContext *ac, void *reply, void *privdata);

int redis_send(struct afc_redis_pub *p, enum cmd_kind kind, struct req *r, int argc,
               const char **argv, const size_t *lens)
{
    if (p->ac == NULL) {
        return AFC_EIO;
    }
    struct cmd *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return AFC_ENOMEM;
    }
    c->p = p;
    c->kind = kind;
    c->req = r;
    c->deadline_ms = redis_now_ms(p) + p->timeout_ms;
    if (redisAsyncCommandArgv(p->ac, reply_cb, c, argc, argv, lens) != REDIS_OK) {
        free(c);
        return AFC_EIO;
    }
    if (p->inflight_tail) {
        p->inflight_tail->next = c;
    } else {
        p->inflight = c;
    }
    p->inflight_tail = c;
    if (r != NULL) {
        r->in_flight = true;
    }
    arm_cmd_timer(p);
    return 0;
}

static void become_ready(struct afc_redis_pub *p)
{
    uv_timer_stop(&p->conn_timer);
    redis_move(p, CONN_READY);
    p->backoff_ms = p->reconnect_min_ms;
    p->last_error[0] = '\0';
    p->down = false;
    afc_event("redis-up", "addr=%s", p->addr);
    redis_flush(p);
}

static void handshake_reply(struct afc_redis_pub *p, struct cmd *c, const redisReply *rep)
{
    if (rep == NULL || p->state != CONN_HANDSHAKE || p->teardown_pending) {
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        redis_schedule_teardown(p, "%s: %.160s", cmd_names[c->kind], rep->str);
        return;
    }
    if (--p->handshake_left == 0) {
        become_ready(p);
    }
}

static void reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct cmd *c = privdata;
    struct afc_redis_pub *p = c->p;
    const redisReply *rep = reply;
    (void)ac;
    inflight_remove(p, c);
    if (c->req != NULL) {
        c->req->in_flight = false;
    }
    switch (c->kind) {
    case CMD_AUTH:
    case CMD_SELECT:
    case CMD_PING:
        handshake_reply(p, c, rep);
        break;
    case CMD_EVALSHA:
    case CMD_EVAL:
        redis_write_reply(p, c, rep);
        break;
    case CMD_GET:
        redis_read_reply(p, c->req, rep);
        break;
    case CMD_PUBLISH:
        if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
            afc_warn("redis %s: PUBLISH %s: %.160s", p->addr, p->channel, rep->str);
        }
        break;
    }
    if (c->req != NULL) {
        redis_req_release(c->req);
    }
    free(c);
    arm_cmd_timer(p);
}

/* ---- connecting ---- */

/* Free the hiredis context now: every command in flight gets its callback with a NULL reply
 * (writes go back to the slot). Only from our own timer callbacks or close, never from inside a
 * hiredis callback. */
static void drop_connection(struct afc_redis_pub *p)
{
    redisAsyncContext *ac = p->ac;
    if (ac == NULL) {
        return;
    }
    p->ac = NULL; /* disconnect_cb ignores a context that is no longer ours */
    redisAsyncFree(ac);
    uv_timer_stop(&p->cmd_timer);
}

static void abandon_resolve(struct afc_redis_pub *p)
{
    if (p->resolving != NULL) {
        p->resolving->p = NULL;
        uv_cancel((uv_req_t *)&p->resolving->req); /* best effort; its callback frees it */
        p->resolving = NULL;
    }
}

static void set_error(struct afc_redis_pub *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_error(struct afc_redis_pub *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->last_error, sizeof p->last_error, fmt, ap);
    va_end(ap);
}

static void teardown_cb(uv_timer_t *t)
{
    struct afc_redis_pub *p = t->data;
    p->teardown_pending = false;
    drop_connection(p);
    conn_failed(p, false);
}

void redis_schedule_teardown(struct afc_redis_pub *p, const char *fmt, ...)
{
    if (p->teardown_pending) {
        return; /* keep the first reason (AUTH failed, not the NOAUTH that follows) */
    }
    char msg[AFC_REDIS_MESSAGE_MAX - 40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    set_error(p, "redis %s: %s", p->addr, msg);
    p->teardown_pending = true;
    uv_timer_start(&p->conn_timer, teardown_cb, 0, 0);
}

static void backoff_cb(uv_timer_t *t)
{
    redis_connect(t->data);
}

/*
 * The connection is gone or never came: report it (once per outage), answer the callers who
 * are waiting for a connection, and try again — at once after losing a working connection,
 * else after the backoff.
 */
static void conn_failed(struct afc_redis_pub *p, bool reconnect_now)
{
    if (p->closing || p->state == CONN_BACKOFF) {
        return;
    }
    abandon_resolve(p);
    p->teardown_pending = false; /* conn_timer is the backoff timer from here on */
    if (!p->down) {
        afc_event("redis-down", "addr=%s error=\"%s\"", p->addr, p->last_error);
        p->down = true;
    }
    /* A working connection that dropped (Redis restarted) is retried at once, and the writes
     * waiting for it keep waiting (their deadline still holds); anything else backs off. */
    bool immediate = reconnect_now && p->state == CONN_READY;
    redis_move(p, CONN_BACKOFF);
    redis_fail_waiting(p, immediate);
    uint64_t wait = immediate ? 0 : p->backoff_ms;
    if (!immediate) {
        p->backoff_ms =
            p->backoff_ms * 2 > p->reconnect_max_ms ? p->reconnect_max_ms : p->backoff_ms * 2;
    }
    uv_timer_start(&p->conn_timer, backoff_cb, wait, 0);
}

static void connect_timeout_cb(uv_timer_t *t)
{
    struct afc_redis_pub *p = t->data;
    set_error(p, "redis %s: %s timed out after %u ms", p->addr,
              p->state == CONN_HANDSHAKE ? "AUTH/SELECT" : "connect", p->timeout_ms);
    drop_connection(p);
    conn_failed(p, false);
}

/* [AUTH [user] password] [SELECT db] PING: pipelined right after the connect. */
static int send_handshake(struct afc_redis_pub *p)
{
    char db[16];
    snprintf(db, sizeof db, "%u", p->url.db);
    p->handshake_left = 0;
    if (p->url.password[0] != '\0') {
        const char *argv[3] = {"AUTH", p->url.user, p->url.password};
        size_t lens[3] = {4, strlen(p->url.user), strlen(p->url.password)};
        int rv = p->url.user[0] != '\0'
                     ? redis_send(p, CMD_AUTH, NULL, 3, argv, lens)
                     : redis_send(p, CMD_AUTH, NULL, 2, (const char *[]){"AUTH", argv[2]},
                                  (const size_t[]){4, lens[2]});
        if (rv != 0) {
            return rv;
        }
        p->handshake_left++;
    }
    if (p->url.db != 0) {
        const char *argv[2] = {"SELECT", db};
        size_t lens[2] = {6, strlen(db)};
        int rv = redis_send(p, CMD_SELECT, NULL, 2, argv, lens);
        if (rv != 0) {
            return rv;
        }
        p->handshake_left++;
    }
    /* Always one command: a TCP connect alone proves nothing (a stopped Redis's kernel still
     * accepts), so "ready" means Redis answered. */
    const char *ping[1] = {"PING"};
    size_t ping_len[1] = {4};
    int rv = redis_send(p, CMD_PING, NULL, 1, ping, ping_len);
    if (rv != 0) {
        return rv;
    }
    p->handshake_left++;
    return 0;
}

static void connect_cb(const redisAsyncContext *ac, int status)
{
    struct afc_redis_pub *p = ac->data;
    if (p == NULL || p->ac != ac) {
        return;
    }
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback returns */
        set_error(p, "redis %s: connect: %s", p->addr, ac->errstr[0] ? ac->errstr : "failed");
        p->ac = NULL;
        uv_timer_stop(&p->conn_timer);
        conn_failed(p, false);
        return;
    }
    redis_move(p, CONN_HANDSHAKE);
    if (send_handshake(p) != 0) {
        redis_schedule_teardown(p, "could not send AUTH/SELECT");
    } else if (p->handshake_left == 0) {
        become_ready(p);
    }
}

static void disconnect_cb(const redisAsyncContext *ac, int status)
{
    struct afc_redis_pub *p = ac->data;
    (void)status;
    if (p == NULL || p->ac != ac) {
        return; /* our own redisAsyncFree, or a context we already let go */
    }
    /* hiredis lost the connection (Redis closed it or a read/write failed) and frees the context
     * after this callback; commands in flight have had their NULL replies. */
    set_error(p, "redis %s: connection lost: %s", p->addr,
              ac->errstr[0] ? ac->errstr : "closed by the server");
    p->ac = NULL;
    uv_timer_stop(&p->cmd_timer);
    conn_failed(p, true);
}

static void connect_addr(struct afc_redis_pub *p, const char *ip)
{
    redisAsyncContext *ac = redisAsyncConnect(ip, (int)p->url.port);
    if (ac == NULL || ac->err) {
        set_error(p, "redis %s: connect: %s", p->addr, ac ? ac->errstr : "out of memory");
        if (ac) {
            redisAsyncFree(ac);
        }
        conn_failed(p, false);
        return;
    }
    ac->data = p;
    if (redisLibuvAttach(ac, p->loop) != REDIS_OK) {
        set_error(p, "redis %s: cannot watch the socket on the loop", p->addr);
        redisAsyncFree(ac);
        conn_failed(p, false);
        return;
    }
    redisAsyncSetConnectCallback(ac, connect_cb);
    redisAsyncSetDisconnectCallback(ac, disconnect_cb);
    p->ac = ac;
}

static void resolved_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct resolve *rs = req->data;
    struct afc_redis_pub *p = rs->p;
    char ip[INET6_ADDRSTRLEN] = "";
    /* The first IPv4 address, else the first IPv6 one: hiredis's own preference (it resolves
     * AF_INET first), and "localhost" must not end up on ::1 when Redis binds 127.0.0.1. */
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *ai = status == 0 ? res : NULL; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET || (pick == NULL && ai->ai_family == AF_INET6)) {
            pick = ai;
            if (ai->ai_family == AF_INET) {
                break;
            }
        }
    }
    if (p != NULL && pick != NULL) {
        const void *a = pick->ai_family == AF_INET6
                            ? (const void *)&((struct sockaddr_in6 *)pick->ai_addr)->sin6_addr
                            : (const void *)&((struct sockaddr_in *)pick->ai_addr)->sin_addr;
        inet_ntop(pick->ai_family, a, ip, sizeof ip);
    }
    uv_freeaddrinfo(res);
    free(rs);
    if (p == NULL) {
        return; /* abandoned: timed out or closed */
    }
    p->resolving = NULL;
    if (ip[0] == '\0') {
        set_error(p, "redis %s: resolve %s: %s", p->addr, p->url.host,
                  status ? uv_strerror(status) : "no address");
        uv_timer_stop(&p->conn_timer);
        conn_failed(p, false);
        return;
    }
    redis_move(p, CONN_CONNECTING);
    connect_addr(p, ip);
}

static bool is_ip_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

void redis_connect(struct afc_redis_pub *p)
{
    uv_timer_start(&p->conn_timer, connect_timeout_cb, p->timeout_ms, 0);
    if (is_ip_literal(p->url.host)) {
        redis_move(p, CONN_CONNECTING);
        connect_addr(p, p->url.host);
        return;
    }
    struct resolve *rs = calloc(1, sizeof *rs);
    if (rs == NULL) {
        set_error(p, "redis %s: out of memory", p->addr);
        redis_move(p, CONN_RESOLVING);
        conn_failed(p, false);
        return;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    rs->p = p;
    rs->req.data = rs;
    redis_move(p, CONN_RESOLVING);
    int rv = uv_getaddrinfo(p->loop, &rs->req, resolved_cb, p->url.host, NULL, &hints);
    if (rv != 0) {
        free(rs);
        set_error(p, "redis %s: resolve: %s", p->addr, uv_strerror(rv));
        conn_failed(p, false);
        return;
    }
    p->resolving = rs;
}

/* ---- the command watchdog ---- */

static void cmd_timeout_cb(uv_timer_t *t)
{
    struct afc_redis_pub *p = t->data;
    struct cmd *c = p->inflight;
    if (c == NULL || c->deadline_ms > redis_now_ms(p)) {
        arm_cmd_timer(p);
        return;
    }
    set_error(p, "redis %s: %s not answered within %u ms", p->addr, cmd_names[c->kind],
              p->timeout_ms);
    afc_warn("%s; dropping the connection", p->last_error);
    drop_connection(p);
    conn_failed(p, false);
}

static void arm_cmd_timer(struct afc_redis_pub *p)
{
    if (p->inflight == NULL || p->closing) {
        uv_timer_stop(&p->cmd_timer);
        return;
    }
    uint64_t now = redis_now_ms(p), d = p->inflight->deadline_ms;
    uv_timer_start(&p->cmd_timer, cmd_timeout_cb, d > now ? d - now : 0, 0);
}

void redis_conn_close(struct afc_redis_pub *p)
{
    uv_timer_stop(&p->conn_timer);
    uv_timer_stop(&p->cmd_timer);
    abandon_resolve(p);
    drop_connection(p); /* commands in flight get their NULL replies now */
}
