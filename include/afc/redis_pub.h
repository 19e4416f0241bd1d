/*
 * Publishing the authorized primary to this region's Redis (ARCHITECTURE.md §5 step 5, §6).
 *
 * Each coordinator keeps one key in its local Redis — `aragora:primary` by default — holding the
 * primary it knows as JSON:
 *
 *     {"epoch":7,"region":"eu-west-1","host":"10.1.0.5","port":5432,"since":1764158401417}
 *
 * and publishes events on a channel (`aragora:events`). The key is written by one Lua script that
 * compares epochs inside Redis: it writes only when the stored record's epoch is lower or absent,
 * so an older epoch never overwrites a newer one (a deposed coordinator's late write, a replayed
 * failover, a hand edit with a newer epoch), and it publishes the change in the same script, so a
 * subscriber sees an event exactly when the key changed. docs/redis.md has the formats.
 *
 * Everything runs on the daemon's libuv loop with hiredis's async API and never blocks it, and
 * Redis being down never delays the caller:
 *   - every operation that takes a callback answers within `timeout_ms` of the call (plus loop
 *     latency), whatever Redis does: refused connects, connects that never complete (hiredis 0.14
 *     does not report a refused async connect: our own watchdog covers it), commands that never
 *     answer (a stopped Redis);
 *   - host names are resolved with uv_getaddrinfo (hiredis would call getaddrinfo on the loop);
 *   - a lost connection is re-established with exponential backoff (reconnect_min_ms doubling to
 *     reconnect_max_ms); a new primary write reconnects at once;
 *   - only the latest (highest-epoch) primary write is kept while Redis is unreachable and is sent
 *     again on every reconnect until Redis answers it; its late outcome goes to `landed_cb`.
 *
 * Callbacks (libuv's rule): if a function returns an error, its callback never runs; if it returns
 * 0, the callback runs exactly once, always from the loop (never from inside the call).
 */
#ifndef AFC_REDIS_PUB_H
#define AFC_REDIS_PUB_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "afc/error.h"

#define AFC_REDIS_KEY_DEFAULT     "aragora:primary"
#define AFC_REDIS_CHANNEL_DEFAULT "aragora:events"
#define AFC_REDIS_REGION_MAX      32
#define AFC_REDIS_HOST_MAX        256
#define AFC_REDIS_MESSAGE_MAX     256

/* What the primary key holds. */
struct afc_redis_primary {
    uint64_t epoch; /* ≥ 1 (a record with epoch 0 is refused by publish) and < 2^53 (Lua numbers) */
    char region[AFC_REDIS_REGION_MAX]; /* the primary region */
    char host[AFC_REDIS_HOST_MAX];     /* where clients connect to it */
    unsigned port;                     /* 1..65535 */
    int64_t since_ms; /* wall clock (Unix ms) when it became primary, for display */
};

/* X(name, text): the outcomes of writes and reads, and their names for logs and JSON. */
#define AFC_REDIS_OUTCOMES(X)                                                                      \
    X(AFC_REDIS_WRITTEN, "written")       /* write: the key now holds this record */               \
    X(AFC_REDIS_CURRENT, "current")       /* write: the key already held this epoch; unchanged */  \
    X(AFC_REDIS_REFUSED, "refused-older") /* write: the key holds a newer epoch; unchanged */      \
    X(AFC_REDIS_SUPERSEDED,                                                                        \
      "superseded")                     /* write: replaced by a newer write before it was sent */  \
    X(AFC_REDIS_FOUND, "found")         /* read: a record is there */                              \
    X(AFC_REDIS_ABSENT, "absent")       /* read: no key */                                         \
    X(AFC_REDIS_MALFORMED, "malformed") /* read: the key holds something that is not a record */   \
    X(AFC_REDIS_FAILED, "failed")       /* unreachable, timed out, or an error reply */            \
    X(AFC_REDIS_CLOSED, "closed")       /* afc_redis_pub_close() came first */

enum afc_redis_outcome {
#define AFC_REDIS_OUTCOME_ENUM(name, text) name,
    AFC_REDIS_OUTCOMES(AFC_REDIS_OUTCOME_ENUM)
#undef AFC_REDIS_OUTCOME_ENUM
};

/* "written", "refused-older", ...; "unknown" outside the table. */
const char *afc_redis_outcome_name(enum afc_redis_outcome o);

struct afc_redis_write_result {
    enum afc_redis_outcome outcome; /* WRITTEN, CURRENT, REFUSED, SUPERSEDED, FAILED, CLOSED */
    uint64_t epoch;                 /* the epoch this write carried */
    uint64_t stored_epoch;          /* WRITTEN/CURRENT/REFUSED: the key's epoch afterwards */
    bool replaced_malformed;        /* WRITTEN over a value without a readable epoch */
    bool queued;                    /* FAILED: still the pending write, sent on reconnect */
    uint64_t elapsed_ms;            /* from the call (or, for landed_cb, from the first call) */
    char message[AFC_REDIS_MESSAGE_MAX]; /* FAILED: why ("connect 127.0.0.1:6379: timed out") */
};

struct afc_redis_read_result {
    enum afc_redis_outcome outcome;   /* FOUND, ABSENT, MALFORMED, FAILED, CLOSED */
    struct afc_redis_primary primary; /* FOUND */
    uint64_t elapsed_ms;
    char message[AFC_REDIS_MESSAGE_MAX]; /* MALFORMED, FAILED: why */
};

typedef void (*afc_redis_write_cb)(void *data, const struct afc_redis_write_result *res);
typedef void (*afc_redis_read_cb)(void *data, const struct afc_redis_read_result *res);

struct afc_redis_pub_config {
    const char *url;           /* "redis://[[user]:password@]host[:port][/db]"; copied. Required */
    const char *key;           /* NULL = AFC_REDIS_KEY_DEFAULT; copied */
    const char *channel;       /* NULL = AFC_REDIS_CHANNEL_DEFAULT; copied */
    const char *origin;        /* this coordinator's region, put as "by" into events; NULL = none */
    unsigned timeout_ms;       /* connect, and each command; 0 = 1000 */
    unsigned reconnect_min_ms; /* 0 = 100 */
    unsigned reconnect_max_ms; /* 0 = 5000 */
    /* Optional: a primary write whose own callback reported FAILED (queued) was answered later,
     * after a reconnect: outcome WRITTEN, CURRENT or REFUSED. Runs from the loop. */
    afc_redis_write_cb landed_cb;
    void *landed_data;
};

/* A parsed redis:// URL (afc_redis_url_parse). */
struct afc_redis_url {
    char host[AFC_REDIS_HOST_MAX]; /* name or address, IPv6 without brackets */
    unsigned port;                 /* default 6379 */
    unsigned db;                   /* default 0 */
    char user[128];                /* ACL user (Redis 6+), "" = none */
    char password[256];            /* "" = no AUTH; %XX-decoded */
};

/* What the connection is doing now, for /v1/cluster and aragoractl status. */
struct afc_redis_status {
    bool connected;          /* ready for commands */
    const char *state;       /* "connecting", "ready", "backoff", ... (static) */
    uint64_t state_ms;       /* how long in that state (monotonic) */
    uint64_t pending_epoch;  /* the queued primary write's epoch, 0 = none */
    uint64_t written_epoch;  /* the last epoch Redis confirmed holding (by a write), 0 = none */
    uint64_t events_dropped; /* publish_event calls dropped while disconnected */
    char last_error[AFC_REDIS_MESSAGE_MAX]; /* the last connect or command failure, "" = none */
};

struct afc_redis_pub;

/*
 * Parse `url` into `out`. Pure. Errors: AFC_ECONFIG (not redis://, rediss:// — hiredis 0.14 has
 * no TLS —, a bad port or db number, an unterminated [IPv6]); the message never contains the
 * password.
 */
int afc_redis_url_parse(const char *url, struct afc_redis_url *out, struct afc_err *err);

/*
 * The record's JSON, as stored in the key ("epoch","region","host","port","since"; nothing else).
 * Returns the length written (< cap) or AFC_ETOOBIG / AFC_EINVAL (region empty).
 */
int afc_redis_primary_encode(const struct afc_redis_primary *rec, char *buf, size_t cap);

/*
 * Parse a stored value. Requires "epoch" (an integer ≥ 0) and "region" (a string); "host",
 * "port" and "since" default to "", 0 and 0; other members are ignored. Errors: AFC_EMALFORMED
 * with the reason in err.
 */
int afc_redis_primary_decode(const char *json, size_t len, struct afc_redis_primary *out,
                             struct afc_err *err);

/*
 * Create the publisher and start connecting (in the background). cfg is copied. Errors:
 * AFC_ECONFIG (bad URL), AFC_ENOMEM. The publisher owns four uv timers on `loop`; close it with
 * afc_redis_pub_close() before closing the loop.
 */
int afc_redis_pub_new(uv_loop_t *loop, const struct afc_redis_pub_config *cfg,
                      struct afc_redis_pub **out, struct afc_err *err);

/*
 * Stop: every operation whose callback has not run yet gets it with outcome CLOSED (the pending
 * primary write is dropped), the Redis connection is freed, and once every handle is closed
 * `done` (may be NULL) runs from the loop and the publisher is freed. Any call after close
 * returns AFC_ESHUTDOWN. May be called from inside one of the publisher's callbacks.
 */
void afc_redis_pub_close(struct afc_redis_pub *p, void (*done)(void *arg), void *arg);

/*
 * Write `rec` (copied) to the key by epoch compare-and-set and, when it was written, publish a
 * "primary" event on the channel (docs/redis.md). `cb` runs once within timeout_ms:
 *   WRITTEN / CURRENT / REFUSED (with stored_epoch) — Redis answered;
 *   FAILED — Redis unreachable or too slow; `queued` = this record is kept as the pending write
 *            and sent again on each reconnect (landed_cb reports what Redis finally answers);
 *   SUPERSEDED — a write with a higher (or equal) epoch was asked for before this one was sent;
 *   CLOSED.
 * Coalescing: only one write waits to be sent — the highest epoch asked for. A call with an
 * epoch lower than the waiting one is SUPERSEDED at once; a call with an equal or higher epoch
 * takes its place (the one replaced is SUPERSEDED, unless its callback already ran). Writes
 * already sent are answered by Redis in order (the script decides between them).
 * Errors (cb never runs): AFC_EINVAL (epoch 0 or ≥ 2^53, empty region, port 0 or > 65535, strings
 * too long), AFC_ESHUTDOWN, AFC_ENOMEM.
 */
int afc_redis_publish_primary(struct afc_redis_pub *p, const struct afc_redis_primary *rec,
                              afc_redis_write_cb cb, void *data);

/* GET the key and parse it. `cb` runs once within timeout_ms: FOUND, ABSENT, MALFORMED, FAILED
 * or CLOSED. Not retried. Errors: AFC_ESHUTDOWN, AFC_ENOMEM. */
int afc_redis_read_primary(struct afc_redis_pub *p, afc_redis_read_cb cb, void *data);

/*
 * PUBLISH `json` (copied; expected to be a JSON object with an "event" member, not checked) on
 * the channel, best effort: returns 0 when handed to the connection, AFC_EIO when Redis is not
 * connected right now (the event is dropped and counted in events_dropped, never queued),
 * AFC_ESHUTDOWN, AFC_ENOMEM.
 */
int afc_redis_publish_event(struct afc_redis_pub *p, const char *json);

void afc_redis_pub_status(const struct afc_redis_pub *p, struct afc_redis_status *out);

#endif
