/*
 * Inside the Redis publisher (include/afc/redis_pub.h): the structures shared by its three files.
 *
 *   redis_format.c  pure: redis:// URLs, the record's JSON (no I/O)
 *   redis_conn.c    the connection machine: resolve, connect, handshake, the connect and command
 *                   watchdogs, backoff, teardown; sends commands and routes their replies
 *   redis_pub.c     the callers' side: requests, coalescing, deadlines, delivery of callbacks,
 *                   the compare-by-epoch script, life cycle
 */
#ifndef AFC_REDIS_INTERNAL_H
#define AFC_REDIS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "afc/redis_pub.h"

#define CONN_STATES(X)                                                                             \
    X(CONN_IDLE, "idle")                                                                           \
    X(CONN_RESOLVING, "resolving")                                                                 \
    X(CONN_CONNECTING, "connecting")                                                               \
    X(CONN_HANDSHAKE, "handshake")                                                                 \
    X(CONN_READY, "ready")                                                                         \
    X(CONN_BACKOFF, "backoff")                                                                     \
    X(CONN_CLOSED, "closed")

enum conn_state {
#define CONN_ENUM(name, text) name,
    CONN_STATES(CONN_ENUM)
#undef CONN_ENUM
        CONN_N
};

enum req_kind { REQ_WRITE, REQ_READ };

struct req {
    struct req *prev, *next; /* p->live: callback not yet run */
    struct req *dnext;       /* p->deliver queue */
    enum req_kind kind;
    uint64_t start_ms, deadline_ms;
    bool notified; /* result decided (callback queued or run) */
    bool in_deliver;
    bool in_slot;   /* p->queued == this */
    bool in_flight; /* a command carries it */
    bool sent;      /* read: GET sent */
    afc_redis_write_cb wcb;
    afc_redis_read_cb rcb;
    void *data;
    struct afc_redis_primary rec; /* write */
    struct afc_redis_write_result wres;
    struct afc_redis_read_result rres;
};

enum cmd_kind { CMD_AUTH, CMD_SELECT, CMD_PING, CMD_EVALSHA, CMD_EVAL, CMD_GET, CMD_PUBLISH };

struct cmd {
    struct cmd *next; /* p->inflight, oldest first */
    struct afc_redis_pub *p;
    enum cmd_kind kind;
    struct req *req; /* NULL for AUTH, SELECT, PUBLISH */
    uint64_t deadline_ms;
};

/* A late answer to a write whose caller was already told FAILED (for landed_cb). */
struct landed {
    struct landed *next;
    struct afc_redis_write_result res;
};

struct resolve {
    uv_getaddrinfo_t req;
    struct afc_redis_pub *p; /* NULL once abandoned (timeout, close) */
};

struct afc_redis_pub {
    uv_loop_t *loop;
    struct afc_redis_url url;
    char addr[96]; /* "host:port/db" for messages; never the password */
    char *key, *channel, *origin;
    unsigned timeout_ms, reconnect_min_ms, reconnect_max_ms, backoff_ms;
    afc_redis_write_cb landed_cb;
    void *landed_data;
    char sha[41]; /* the script's SHA-1, hex */

    enum conn_state state;
    uint64_t state_since_ms;
    bool down;             /* a failure was reported (+redis-down) and no success since */
    bool teardown_pending; /* schedule_teardown() ran; teardown_cb has not yet */
    redisAsyncContext *ac;
    struct resolve *resolving;
    unsigned handshake_left;
    struct cmd *inflight, *inflight_tail;

    struct req *live, *live_tail;
    struct req *queued; /* the pending primary write */
    struct req *deliver, *deliver_tail;
    struct landed *landed, *landed_tail;

    uint64_t written_epoch, events_dropped;
    char last_error[AFC_REDIS_MESSAGE_MAX];

    uv_timer_t conn_timer, cmd_timer, req_timer, deliver_timer;
    unsigned handles_open;
    bool closing;
    void (*done)(void *arg);
    void *done_arg;
};

static inline uint64_t redis_now_ms(const struct afc_redis_pub *p)
{
    return uv_now(p->loop);
}

/* redis_format.c: append to a JSON text in buf (false when it does not fit). */
bool redis_put_raw(char *buf, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
bool redis_put_json_string(char *buf, size_t cap, size_t *len, const char *s);
/* The record's members without braces: "epoch":…,"region":…,"host":…,"port":…,"since":… */
bool redis_put_record(char *buf, size_t cap, size_t *len, const struct afc_redis_primary *r);

/* redis_conn.c */
void redis_move(struct afc_redis_pub *p, enum conn_state next);
const char *redis_state_name(enum conn_state s);
void redis_connect(struct afc_redis_pub *p);    /* start an attempt now (connect watchdog on) */
void redis_conn_close(struct afc_redis_pub *p); /* stop timers, abandon resolve, free hiredis */
/* Send a command on the ready connection; r (may be NULL) is marked in flight. 0, AFC_EIO (no
 * connection, hiredis refused) or AFC_ENOMEM. */
int redis_send(struct afc_redis_pub *p, enum cmd_kind kind, struct req *r, int argc,
               const char **argv, const size_t *lens);
/* Drop the connection from the loop (never inside a hiredis callback) and back off. */
void redis_schedule_teardown(struct afc_redis_pub *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* redis_pub.c, called by redis_conn.c */
void redis_req_release(struct req *r);     /* free r if nothing refers to it any more */
void redis_flush(struct afc_redis_pub *p); /* the connection is ready: send what waits */
void redis_write_reply(struct afc_redis_pub *p, struct cmd *c, const redisReply *rep);
void redis_read_reply(struct afc_redis_pub *p, struct req *r, const redisReply *rep);
/* The connection failed: answer FAILED to the requests waiting for one (writes stay queued);
 * keep_writes: the writes keep waiting (an immediate reconnect follows). */
void redis_fail_waiting(struct afc_redis_pub *p, bool keep_writes);

#endif
