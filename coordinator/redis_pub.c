/*
 * The primary record in this region's Redis, the callers' side (include/afc/redis_pub.h,
 * docs/redis.md). The connection lives in redis_conn.c, the formats in redis_format.c; the
 * shared structures in redis_internal.h.
 *
 * Two uv timers of the publisher are driven from here:
 *   req_timer      the callers' deadlines: every request is answered within timeout_ms
 *   deliver_timer  runs callers' callbacks from the loop (0 ms), never from inside a call or a
 *                  hiredis callback; at close, also the last step before the handles close
 *
 * Requests (struct req): a primary write sits in exactly one place at a time — the single
 * `queued` slot (the highest epoch not yet sent), or a command in flight — and is freed once it
 * is in neither and its callback has run. A write whose connection is lost goes back to the slot
 * (unless a higher epoch is there), so after a reconnect the latest write lands; if its caller
 * was already told FAILED, the answer goes to landed_cb.
 *
 * The compare-by-epoch rule is the Lua script below, run with EVALSHA (EVAL after NOSCRIPT).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "afc/log.h"
#include "coordinator/redis_internal.h"

#define DEFAULT_TIMEOUT_MS       1000
#define DEFAULT_RECONNECT_MIN_MS 100
#define DEFAULT_RECONNECT_MAX_MS 5000
#define EPOCH_LIMIT              (UINT64_C(1) << 53) /* exact in a Lua number */
#define RECORD_MAX               (AFC_REDIS_REGION_MAX + AFC_REDIS_HOST_MAX * 2 + 160)

/*
 * KEYS[1] the primary key; ARGV[1] the new record (JSON), ARGV[2] its epoch, ARGV[3] the events
 * channel, ARGV[4] the event (JSON). Answers {code, epoch}: 1 written, 3 written over a value
 * without a readable epoch, 0 refused (the key holds a newer epoch), 2 current (the same epoch;
 * unchanged). The event is published only when the key was written.
 */
static const char script[] =
    "local new = tonumber(ARGV[2])\n"
    "local cur = redis.call('GET', KEYS[1])\n"
    "local code = 1\n"
    "if cur then\n"
    "  local ok, rec = pcall(cjson.decode, cur)\n"
    "  local old = nil\n"
    "  if ok and type(rec) == 'table' then old = tonumber(rec['epoch']) end\n"
    "  if old == nil then code = 3\n"
    "  elseif old > new then return {0, old}\n"
    "  elseif old == new then return {2, old} end\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1])\n"
    "redis.call('PUBLISH', ARGV[3], ARGV[4])\n"
    "return {code, new}\n";

/* ---- delivering results to callers (always from deliver_timer) ---- */

void redis_req_release(struct req *r)
{
    if (r->notified && !r->in_deliver && !r->in_slot && !r->in_flight) {
        free(r);
    }
}

static void live_remove(struct afc_redis_pub *p, struct req *r)
{
    if (r->prev) {
        r->prev->next = r->next;
    } else {
        p->live = r->next;
    }
    if (r->next) {
        r->next->prev = r->prev;
    } else {
        p->live_tail = r->prev;
    }
    r->prev = r->next = NULL;
}

static void deliver_cb(uv_timer_t *t);

static void kick_delivery(struct afc_redis_pub *p)
{
    uv_timer_start(&p->deliver_timer, deliver_cb, 0, 0);
}

/* Decide r's result (already filled in r->wres / r->rres) and queue its callback. */
static void notify(struct afc_redis_pub *p, struct req *r)
{
    if (r->notified) {
        return;
    }
    r->notified = true;
    live_remove(p, r);
    uint64_t elapsed = redis_now_ms(p) - r->start_ms;
    r->wres.elapsed_ms = elapsed;
    r->rres.elapsed_ms = elapsed;
    r->in_deliver = true;
    r->dnext = NULL;
    if (p->deliver_tail) {
        p->deliver_tail->dnext = r;
    } else {
        p->deliver = r;
    }
    p->deliver_tail = r;
    kick_delivery(p);
}

static void fail_req(struct afc_redis_pub *p, struct req *r, enum afc_redis_outcome o,
                     const char *why)
{
    if (r->notified) {
        return;
    }
    if (r->kind == REQ_WRITE) {
        r->wres.outcome = o;
        r->wres.queued = o == AFC_REDIS_FAILED && (r->in_slot || r->in_flight) && !p->closing;
        snprintf(r->wres.message, sizeof r->wres.message, "%s", why);
    } else {
        r->rres.outcome = o;
        snprintf(r->rres.message, sizeof r->rres.message, "%s", why);
    }
    notify(p, r);
}

static void queue_landed(struct afc_redis_pub *p, const struct afc_redis_write_result *res)
{
    if (p->landed_cb == NULL || p->closing) {
        return;
    }
    struct landed *l = calloc(1, sizeof *l);
    if (l == NULL) {
        afc_warn("redis %s: out of memory reporting a late write result", p->addr);
        return;
    }
    l->res = *res;
    if (p->landed_tail) {
        p->landed_tail->next = l;
    } else {
        p->landed = l;
    }
    p->landed_tail = l;
    kick_delivery(p);
}

static void handle_closed_cb(uv_handle_t *h)
{
    struct afc_redis_pub *p = h->data;
    if (--p->handles_open > 0) {
        return;
    }
    if (p->done) {
        p->done(p->done_arg);
    }
    free(p->key);
    free(p->channel);
    free(p->origin);
    free(p);
}

static void close_handles(struct afc_redis_pub *p)
{
    uv_timer_t *ts[] = {&p->conn_timer, &p->cmd_timer, &p->req_timer, &p->deliver_timer};
    for (unsigned i = 0; i < 4; i++) {
        uv_close((uv_handle_t *)ts[i], handle_closed_cb);
    }
}

static void deliver_cb(uv_timer_t *t)
{
    struct afc_redis_pub *p = t->data;
    /* Callbacks may call the API again (and close): take one item at a time. */
    for (;;) {
        struct req *r = p->deliver;
        if (r != NULL) {
            p->deliver = r->dnext;
            if (p->deliver == NULL) {
                p->deliver_tail = NULL;
            }
            r->in_deliver = false;
            if (r->kind == REQ_WRITE && r->wcb) {
                r->wcb(r->data, &r->wres);
            } else if (r->kind == REQ_READ && r->rcb) {
                r->rcb(r->data, &r->rres);
            }
            redis_req_release(r);
            continue;
        }
        struct landed *l = p->landed;
        if (l == NULL) {
            break;
        }
        p->landed = l->next;
        if (p->landed == NULL) {
            p->landed_tail = NULL;
        }
        if (!p->closing) {
            p->landed_cb(p->landed_data, &l->res);
        }
        free(l);
    }
    if (p->closing && p->handles_open == 4 && !uv_is_closing((uv_handle_t *)t)) {
        close_handles(p);
    }
}

/* ---- caller deadlines ---- */

static void arm_req_timer(struct afc_redis_pub *p);

static void req_timer_cb(uv_timer_t *t)
{
    struct afc_redis_pub *p = t->data;
    uint64_t now = redis_now_ms(p);
    struct req *r = p->live;
    while (r != NULL) {
        struct req *next = r->next;
        if (r->deadline_ms <= now) {
            char why[AFC_REDIS_MESSAGE_MAX + 128];
            snprintf(why, sizeof why, "redis %s: no answer within %u ms%s%.140s", p->addr,
                     p->timeout_ms, p->last_error[0] ? "; last error: " : "", p->last_error);
            fail_req(p, r, AFC_REDIS_FAILED, why);
        }
        r = next;
    }
    arm_req_timer(p);
}

static void arm_req_timer(struct afc_redis_pub *p)
{
    uint64_t first = UINT64_MAX, now = redis_now_ms(p);
    for (struct req *r = p->live; r != NULL; r = r->next) {
        first = r->deadline_ms < first ? r->deadline_ms : first;
    }
    if (first == UINT64_MAX || p->closing) {
        uv_timer_stop(&p->req_timer);
        return;
    }
    uv_timer_start(&p->req_timer, req_timer_cb, first > now ? first - now : 0, 0);
}

static void live_append(struct afc_redis_pub *p, struct req *r)
{
    r->prev = p->live_tail;
    r->next = NULL;
    if (p->live_tail) {
        p->live_tail->next = r;
    } else {
        p->live = r;
    }
    p->live_tail = r;
    arm_req_timer(p);
}

void redis_fail_waiting(struct afc_redis_pub *p, bool keep_writes)
{
    for (struct req *r = p->live, *next; r != NULL; r = next) {
        next = r->next;
        if (!r->in_flight && !(keep_writes && r->kind == REQ_WRITE)) {
            fail_req(p, r, AFC_REDIS_FAILED, p->last_error);
        }
    }
    arm_req_timer(p);
}

/* ---- the primary write and the read ---- */

static int send_write(struct afc_redis_pub *p, struct req *r, bool full_script)
{
    char record[RECORD_MAX], event[RECORD_MAX + 256], epoch[24];
    size_t rl = 0, el = 0;
    uv_timeval64_t tv;
    uv_gettimeofday(&tv); /* wall clock: display only */
    int64_t at_ms = tv.tv_sec * 1000 + tv.tv_usec / 1000;
    if (afc_redis_primary_encode(&r->rec, record, sizeof record) < 0 ||
        !redis_put_raw(event, sizeof event, &el, "{\"event\":\"primary\",") ||
        !redis_put_record(event, sizeof event, &el, &r->rec) ||
        !redis_put_raw(event, sizeof event, &el, ",\"by\":") ||
        !redis_put_json_string(event, sizeof event, &el, p->origin ? p->origin : "") ||
        !redis_put_raw(event, sizeof event, &el, ",\"at\":%" PRId64 "}", at_ms)) {
        return AFC_ETOOBIG; /* cannot happen: publish checked the lengths */
    }
    rl = strlen(record);
    snprintf(epoch, sizeof epoch, "%" PRIu64, r->rec.epoch);
    const char *argv[] = {full_script ? "EVAL" : "EVALSHA",
                          full_script ? script : p->sha,
                          "1",
                          p->key,
                          record,
                          epoch,
                          p->channel,
                          event};
    size_t lens[] = {strlen(argv[0]), strlen(argv[1]),    1, strlen(p->key), rl,
                     strlen(epoch),   strlen(p->channel), el};
    return redis_send(p, full_script ? CMD_EVAL : CMD_EVALSHA, r, 8, argv, lens);
}

/* Decide a write from the script's answer {code, epoch}. */
static void write_answered(struct afc_redis_pub *p, struct req *r, const redisReply *rep)
{
    struct afc_redis_write_result res;
    memset(&res, 0, sizeof res);
    res.epoch = r->rec.epoch;
    long long code = rep->element[0]->integer;
    res.stored_epoch = (uint64_t)rep->element[1]->integer;
    res.outcome = code == 0 ? AFC_REDIS_REFUSED : code == 2 ? AFC_REDIS_CURRENT : AFC_REDIS_WRITTEN;
    res.replaced_malformed = code == 3;
    if (res.stored_epoch > p->written_epoch) {
        p->written_epoch = res.stored_epoch;
    }
    /* Log lines, not events: what a write means for the failover (+redis-published, …) is the
     * caller's event to raise, once, with its own context. */
    if (res.outcome == AFC_REDIS_WRITTEN) {
        afc_info("redis %s: wrote epoch=%" PRIu64 " region=%s%s", p->addr, r->rec.epoch,
                 r->rec.region, res.replaced_malformed ? " (replaced a malformed value)" : "");
    } else if (res.outcome == AFC_REDIS_REFUSED) {
        afc_info("redis %s: refused epoch=%" PRIu64 ": the key holds epoch %" PRIu64, p->addr,
                 r->rec.epoch, res.stored_epoch);
    }
    if (r->notified) {
        res.elapsed_ms = redis_now_ms(p) - r->start_ms;
        queue_landed(p, &res);
        return;
    }
    r->wres = res;
    notify(p, r);
}

static bool is_array_of_two_integers(const redisReply *rep)
{
    return rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
           rep->element[0]->type == REDIS_REPLY_INTEGER &&
           rep->element[1]->type == REDIS_REPLY_INTEGER;
}

/* Errors that say "not now" rather than "never": the write stays queued, reconnect later. */
static bool is_transient_error(const char *msg)
{
    static const char *const transient[] = {"LOADING",    "BUSY",     "TRYAGAIN",
                                            "MASTERDOWN", "READONLY", "OOM"};
    for (unsigned i = 0; i < sizeof transient / sizeof transient[0]; i++) {
        if (strncmp(msg, transient[i], strlen(transient[i])) == 0) {
            return true;
        }
    }
    return false;
}

/* The connection is going away with this write in flight: put it back in the slot. */
static void requeue_write(struct afc_redis_pub *p, struct req *r)
{
    if (p->closing) {
        fail_req(p, r, AFC_REDIS_CLOSED, "closed");
        return;
    }
    if (p->queued != NULL && p->queued->rec.epoch > r->rec.epoch) {
        fail_req(p, r, AFC_REDIS_SUPERSEDED, "a newer write is pending");
        return;
    }
    if (p->queued != NULL) {
        struct req *old = p->queued;
        old->in_slot = false;
        fail_req(p, old, AFC_REDIS_SUPERSEDED, "a newer write is pending");
        redis_req_release(old);
    }
    p->queued = r;
    r->in_slot = true;
}

void redis_write_reply(struct afc_redis_pub *p, struct cmd *c, const redisReply *rep)
{
    struct req *r = c->req;
    if (rep == NULL) {
        requeue_write(p, r);
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0 &&
        c->kind == CMD_EVALSHA) {
        if (send_write(p, r, true) == 0) {
            return;
        }
        requeue_write(p, r);
        redis_schedule_teardown(p, "EVAL after NOSCRIPT could not be sent");
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR && is_transient_error(rep->str)) {
        requeue_write(p, r);
        redis_schedule_teardown(p, "%.*s", 120, rep->str);
        return;
    }
    if (!is_array_of_two_integers(rep)) {
        char why[AFC_REDIS_MESSAGE_MAX];
        snprintf(why, sizeof why, "redis %s: write refused: %.120s", p->addr,
                 rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply to the script");
        afc_warn("%s (epoch %" PRIu64 ")", why, r->rec.epoch);
        fail_req(p, r, AFC_REDIS_FAILED, why);
        return;
    }
    write_answered(p, r, rep);
}

void redis_read_reply(struct afc_redis_pub *p, struct req *r, const redisReply *rep)
{
    struct afc_err err = {0};
    if (r->notified) {
        return; /* its caller's deadline passed: nobody is waiting any more */
    }
    if (rep == NULL) {
        fail_req(p, r, p->closing ? AFC_REDIS_CLOSED : AFC_REDIS_FAILED,
                 p->closing ? "closed" : "connection lost");
        return;
    }
    if (rep->type == REDIS_REPLY_NIL) {
        r->rres.outcome = AFC_REDIS_ABSENT;
    } else if (rep->type == REDIS_REPLY_STRING) {
        if (afc_redis_primary_decode(rep->str, rep->len, &r->rres.primary, &err) == 0) {
            r->rres.outcome = AFC_REDIS_FOUND;
        } else {
            r->rres.outcome = AFC_REDIS_MALFORMED;
            snprintf(r->rres.message, sizeof r->rres.message, "%.60s: %.180s", p->key, err.msg);
        }
    } else {
        r->rres.outcome = AFC_REDIS_FAILED;
        snprintf(r->rres.message, sizeof r->rres.message, "redis %s: GET %.40s: %.100s", p->addr,
                 p->key, rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
    }
    notify(p, r);
}

/* ---- the operations ---- */

/* Send what waits for a connection: the queued write, then the reads. */
void redis_flush(struct afc_redis_pub *p)
{
    if (p->state != CONN_READY) {
        return;
    }
    struct req *w = p->queued;
    if (w != NULL) {
        p->queued = NULL;
        w->in_slot = false;
        if (send_write(p, w, false) != 0) {
            requeue_write(p, w);
            redis_schedule_teardown(p, "could not send the primary write");
            return;
        }
    }
    for (struct req *r = p->live; r != NULL; r = r->next) {
        if (r->kind != REQ_READ || r->sent) {
            continue;
        }
        const char *argv[] = {"GET", p->key};
        size_t lens[] = {3, strlen(p->key)};
        if (redis_send(p, CMD_GET, r, 2, argv, lens) != 0) {
            redis_schedule_teardown(p, "could not send GET");
            return;
        }
        r->sent = true;
    }
}

static bool valid_record(const struct afc_redis_primary *rec)
{
    return rec->epoch >= 1 && rec->epoch < EPOCH_LIMIT && rec->region[0] != '\0' &&
           memchr(rec->region, '\0', sizeof rec->region) != NULL &&
           memchr(rec->host, '\0', sizeof rec->host) != NULL && rec->port >= 1 &&
           rec->port <= 65535;
}

static struct req *new_req(struct afc_redis_pub *p, enum req_kind kind, void *data)
{
    struct req *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return NULL;
    }
    r->kind = kind;
    r->data = data;
    r->start_ms = redis_now_ms(p);
    r->deadline_ms = r->start_ms + p->timeout_ms;
    return r;
}

int afc_redis_publish_primary(struct afc_redis_pub *p, const struct afc_redis_primary *rec,
                              afc_redis_write_cb cb, void *data)
{
    if (p->closing) {
        return AFC_ESHUTDOWN;
    }
    if (rec == NULL || !valid_record(rec)) {
        return AFC_EINVAL;
    }
    struct req *r = new_req(p, REQ_WRITE, data);
    if (r == NULL) {
        return AFC_ENOMEM;
    }
    r->wcb = cb;
    r->rec = *rec;
    r->wres.epoch = rec->epoch;
    live_append(p, r);
    if (p->queued != NULL && p->queued->rec.epoch > rec->epoch) {
        fail_req(p, r, AFC_REDIS_SUPERSEDED, "a write with a higher epoch is pending");
        return 0;
    }
    if (p->queued != NULL) {
        struct req *old = p->queued;
        old->in_slot = false;
        fail_req(p, old, AFC_REDIS_SUPERSEDED, "replaced by a newer write");
        redis_req_release(old);
    }
    p->queued = r;
    r->in_slot = true;
    if (p->state == CONN_READY) {
        redis_flush(p);
    } else if (p->state == CONN_BACKOFF) {
        /* A new primary is rare and urgent: try now rather than after the backoff. */
        uv_timer_stop(&p->conn_timer);
        redis_connect(p);
    }
    return 0;
}

int afc_redis_read_primary(struct afc_redis_pub *p, afc_redis_read_cb cb, void *data)
{
    if (p->closing) {
        return AFC_ESHUTDOWN;
    }
    struct req *r = new_req(p, REQ_READ, data);
    if (r == NULL) {
        return AFC_ENOMEM;
    }
    r->rcb = cb;
    live_append(p, r);
    if (p->state == CONN_BACKOFF) { /* known down: answer at once, do not shorten the backoff */
        fail_req(p, r, AFC_REDIS_FAILED, p->last_error);
    } else {
        redis_flush(p);
    }
    return 0;
}

int afc_redis_publish_event(struct afc_redis_pub *p, const char *json)
{
    if (p->closing) {
        return AFC_ESHUTDOWN;
    }
    if (p->state != CONN_READY) {
        p->events_dropped++;
        return AFC_EIO;
    }
    const char *argv[] = {"PUBLISH", p->channel, json};
    size_t lens[] = {7, strlen(p->channel), strlen(json)};
    int rv = redis_send(p, CMD_PUBLISH, NULL, 3, argv, lens);
    if (rv == AFC_EIO) {
        p->events_dropped++;
    }
    return rv;
}

void afc_redis_pub_status(const struct afc_redis_pub *p, struct afc_redis_status *out)
{
    memset(out, 0, sizeof *out);
    out->connected = p->state == CONN_READY;
    out->state = redis_state_name(p->state);
    out->state_ms = uv_now(p->loop) - p->state_since_ms;
    out->pending_epoch = p->queued ? p->queued->rec.epoch : 0;
    out->written_epoch = p->written_epoch;
    out->events_dropped = p->events_dropped;
    snprintf(out->last_error, sizeof out->last_error, "%s", p->last_error);
}

/* ---- life cycle ---- */

static int script_sha1(char out[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (EVP_Digest(script, strlen(script), md, &n, EVP_sha1(), NULL) != 1 || n != 20) {
        return AFC_EINTERNAL;
    }
    for (unsigned i = 0; i < n; i++) {
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
    return 0;
}

static int copy_config(struct afc_redis_pub *p, const struct afc_redis_pub_config *cfg)
{
    p->key = strdup(cfg->key ? cfg->key : AFC_REDIS_KEY_DEFAULT);
    p->channel = strdup(cfg->channel ? cfg->channel : AFC_REDIS_CHANNEL_DEFAULT);
    p->origin = cfg->origin ? strdup(cfg->origin) : NULL;
    if (p->key == NULL || p->channel == NULL || (cfg->origin && p->origin == NULL)) {
        return AFC_ENOMEM;
    }
    p->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
    p->reconnect_min_ms = cfg->reconnect_min_ms ? cfg->reconnect_min_ms : DEFAULT_RECONNECT_MIN_MS;
    p->reconnect_max_ms = cfg->reconnect_max_ms ? cfg->reconnect_max_ms : DEFAULT_RECONNECT_MAX_MS;
    if (p->reconnect_max_ms < p->reconnect_min_ms) {
        p->reconnect_max_ms = p->reconnect_min_ms;
    }
    p->backoff_ms = p->reconnect_min_ms;
    p->landed_cb = cfg->landed_cb;
    p->landed_data = cfg->landed_data;
    return script_sha1(p->sha);
}

int afc_redis_pub_new(uv_loop_t *loop, const struct afc_redis_pub_config *cfg,
                      struct afc_redis_pub **out, struct afc_err *err)
{
    struct afc_redis_pub *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return afc_err_set(err, AFC_ENOMEM, "redis: out of memory");
    }
    p->loop = loop;
    int rv = afc_redis_url_parse(cfg->url, &p->url, err);
    if (rv == 0 && (rv = copy_config(p, cfg)) != 0) {
        afc_err_set(err, rv, "redis: %s", afc_strerror(rv));
    }
    if (rv != 0) {
        free(p->key);
        free(p->channel);
        free(p->origin);
        free(p);
        return rv;
    }
    bool v6 = strchr(p->url.host, ':') != NULL;
    snprintf(p->addr, sizeof p->addr, "%s%.64s%s:%u/%u", v6 ? "[" : "", p->url.host, v6 ? "]" : "",
             p->url.port, p->url.db);
    uv_timer_t *ts[] = {&p->conn_timer, &p->cmd_timer, &p->req_timer, &p->deliver_timer};
    for (unsigned i = 0; i < 4; i++) {
        uv_timer_init(loop, ts[i]);
        ts[i]->data = p;
    }
    p->handles_open = 4;
    p->state = CONN_IDLE;
    p->state_since_ms = uv_now(loop);
    redis_connect(p);
    *out = p;
    return 0;
}

void afc_redis_pub_close(struct afc_redis_pub *p, void (*done)(void *arg), void *arg)
{
    if (p->closing) {
        return;
    }
    p->closing = true;
    p->done = done;
    p->done_arg = arg;
    uv_timer_stop(&p->req_timer);
    redis_conn_close(p); /* writes in flight come back through requeue_write: CLOSED */
    if (p->queued != NULL) {
        struct req *w = p->queued;
        p->queued = NULL;
        w->in_slot = false;
        fail_req(p, w, AFC_REDIS_CLOSED, "closed");
        redis_req_release(w);
    }
    while (p->live != NULL) {
        fail_req(p, p->live, AFC_REDIS_CLOSED, "closed");
    }
    redis_move(p, CONN_CLOSED);
    kick_delivery(p); /* deliver_cb delivers what is left, then closes the handles */
}
