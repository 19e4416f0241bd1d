/*
 * This region's Redis learns the authorized primary (publisher.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "afc/log.h"
#include "afc/redis_pub.h"
#include "coordinator/daemon.h"
#include "coordinator/http_internal.h"
#include "coordinator/publisher.h"
#include "coordinator/report.h"

#define WAIT_FOR_DNS_MS 10000 /* then publish even though routing is still pending */
#define RETRY_MS        2000  /* a failed write is tried again (the module also queues it) */
#define COMMIT_RETRY_MS 1000
#define CHECK_EVERY_MS  5000 /* read the key back for status */
#define EVENT_JSON_MAX  512

struct afc_publisher {
    struct afc_daemon *d;
    struct afc_redis_pub *redis;
    bool closing;
    /* the write */
    afc_epoch written;       /* the last epoch Redis confirmed holding */
    afc_epoch settled;       /* no more writes for epochs up to this (written, or refused) */
    afc_epoch in_flight;     /* a write of this epoch is waiting for its answer */
    uint64_t next_write_ms;  /* after a failure */
    afc_epoch seen_promoted; /* the failover epoch whose promotion this node saw, and when */
    uint64_t seen_promoted_ms;
    /* the commit of `published` */
    afc_epoch committed;
    bool commit_in_flight;
    uint64_t next_commit_ms;
    /* events */
    uint64_t events_from_index; /* history events above this index go to the channel */
    /* status */
    bool read_in_flight;
    uint64_t next_read_ms;
    struct afc_redis_read_result last_read;
    int64_t last_read_wall_ms;
};

static uint64_t now_ms(const struct afc_publisher *p)
{
    return uv_now(p->d->loop);
}

static const struct afc_state *state_of(const struct afc_publisher *p)
{
    return afc_node_state(&p->d->node);
}

static int self_index(const struct afc_publisher *p)
{
    const struct afc_state *s = state_of(p);
    for (unsigned i = 0; i < s->n_members && i < AFC_MAX_MEMBERS; i++) {
        if (strcmp(s->members[i].name, p->d->cfg.region) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* Where clients connect to `region`'s PostgreSQL: host and port from its conninfo (libpq's own
 * parser), the DNS address when the conninfo names no host. */
static void client_endpoint(const struct afc_publisher *p, const char *region,
                            struct afc_redis_primary *rec)
{
    rec->port = 5432;
    for (unsigned i = 0; i < p->d->cfg.n_members; i++) {
        const struct afc_config_member *m = &p->d->cfg.members[i];
        if (strcmp(m->name, region) != 0) {
            continue;
        }
        snprintf(rec->host, sizeof rec->host, "%s", m->address);
        PQconninfoOption *opts = m->postgres[0] ? PQconninfoParse(m->postgres, NULL) : NULL;
        for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++) {
            if (o->val == NULL || o->val[0] == '\0') {
                continue;
            }
            if (strcmp(o->keyword, "host") == 0 && o->val[0] != '/') {
                snprintf(rec->host, sizeof rec->host, "%s", o->val);
            } else if (strcmp(o->keyword, "port") == 0) {
                rec->port = (unsigned)strtoul(o->val, NULL, 10);
            }
        }
        if (opts != NULL) {
            PQconninfoFree(opts);
        }
    }
}

/* ---- the write ---- */

/* The epoch to publish now, or 0. A failover's after its promotion, once routed (or routing has
 * been pending WAIT_FOR_DNS_MS); an adopted or operator-set epoch at once. */
static afc_epoch due_epoch(struct afc_publisher *p)
{
    const struct afc_state *s = state_of(p);
    const struct afc_failover *f = &s->failover;
    if (s->epoch == 0 || s->primary[0] == '\0' || s->epoch <= p->settled) {
        return 0;
    }
    if (f->epoch != s->epoch) {
        return s->epoch;
    }
    if (f->step != AFC_FO_PROMOTED && f->step != AFC_FO_DONE) {
        return 0;
    }
    if (p->seen_promoted != f->epoch) {
        p->seen_promoted = f->epoch;
        p->seen_promoted_ms = now_ms(p);
    }
    bool dns_done = p->d->cfg.dns.provider == AFC_DNS_NONE || f->routed_ms != 0;
    return dns_done || now_ms(p) - p->seen_promoted_ms >= WAIT_FOR_DNS_MS ? s->epoch : 0;
}

static void write_cb(void *data, const struct afc_redis_write_result *res)
{
    struct afc_publisher *p = data;
    if (res->outcome == AFC_REDIS_CLOSED || p->closing) {
        return;
    }
    if (res->epoch == p->in_flight) {
        p->in_flight = 0;
    }
    switch (res->outcome) {
    case AFC_REDIS_WRITTEN:
    case AFC_REDIS_CURRENT:
        p->written = res->epoch > p->written ? res->epoch : p->written;
        p->settled = res->epoch > p->settled ? res->epoch : p->settled;
        p->next_read_ms = 0; /* status shows it at once, not at the next periodic read */
        afc_event("redis-published", "epoch=%" PRIu64 " outcome=%s elapsed_ms=%" PRIu64, res->epoch,
                  afc_redis_outcome_name(res->outcome), res->elapsed_ms);
        break;
    case AFC_REDIS_REFUSED:
        /* a newer epoch is there (written by hand, or by a later failover this node has not
         * applied yet): never overwritten, and not reported as published */
        p->settled = res->epoch > p->settled ? res->epoch : p->settled;
        afc_event("redis-refused", "epoch=%" PRIu64 " stored_epoch=%" PRIu64, res->epoch,
                  res->stored_epoch);
        break;
    case AFC_REDIS_FAILED:
        p->next_write_ms = now_ms(p) + RETRY_MS;
        afc_event("redis-unavailable", "epoch=%" PRIu64 " queued=%s reason=\"%s\"", res->epoch,
                  res->queued ? "yes" : "no", res->message);
        break;
    default: /* SUPERSEDED: a newer write replaced it */
        break;
    }
}

static void maybe_write(struct afc_publisher *p)
{
    afc_epoch e = due_epoch(p);
    if (e == 0 || e == p->in_flight || now_ms(p) < p->next_write_ms) {
        return;
    }
    const struct afc_state *s = state_of(p);
    struct afc_redis_primary rec = {.epoch = e};
    snprintf(rec.region, sizeof rec.region, "%s", s->primary);
    client_endpoint(p, s->primary, &rec);
    const struct afc_failover *f = &s->failover;
    rec.since_ms = f->epoch == e && f->promoted_ms != 0 ? f->promoted_ms : afc_wall_now_ms();
    if (afc_redis_publish_primary(p->redis, &rec, write_cb, p) == 0) {
        p->in_flight = e;
    } else {
        p->next_write_ms = now_ms(p) + RETRY_MS;
    }
}

/* ---- the commit of `published` ---- */

static void commit_cb(void *data, int status, enum afc_apply_result result)
{
    struct afc_publisher *p = data;
    if (p->closing) {
        return;
    }
    p->commit_in_flight = false;
    if (status != 0 || (result != AFC_APPLY_OK && result != AFC_APPLY_NOOP)) {
        p->next_commit_ms = now_ms(p) + COMMIT_RETRY_MS;
    }
}

static void maybe_commit(struct afc_publisher *p)
{
    const struct afc_state *s = state_of(p);
    const struct afc_failover *f = &s->failover;
    int self = self_index(p);
    if (self < 0 || f->epoch != s->epoch || f->epoch == 0 || p->written < f->epoch ||
        f->published_ms[self] != 0 || p->commit_in_flight || now_ms(p) < p->next_commit_ms ||
        (f->step != AFC_FO_PROMOTED && f->step != AFC_FO_DONE)) {
        return;
    }
    struct afc_cmd cmd;
    afc_cmd_start(&cmd, AFC_OP_PUBLISHED, p->d->cfg.region);
    cmd.u.published.epoch = f->epoch;
    snprintf(cmd.u.published.region, sizeof cmd.u.published.region, "%s", p->d->cfg.region);
    snprintf(cmd.u.published.detail, sizeof cmd.u.published.detail, "key=%.100s",
             p->d->cfg.redis_key[0] ? p->d->cfg.redis_key : AFC_REDIS_KEY_DEFAULT);
    if (afc_report_send(p->d, &cmd, commit_cb, p) == 0) {
        p->commit_in_flight = true;
    } else {
        p->next_commit_ms = now_ms(p) + COMMIT_RETRY_MS;
    }
}

/* ---- events ---- */

static void publish_events(struct afc_publisher *p)
{
    const struct afc_state *s = state_of(p);
    if (p->events_from_index == 0) {
        p->events_from_index = s->applied_index; /* from now on: not the past at every start */
        return;
    }
    for (unsigned i = 0; i < s->history_len; i++) {
        const struct afc_event *e = afc_state_history_at(s, i);
        if (e == NULL || e->index <= p->events_from_index) {
            continue;
        }
        char when[40];
        json_format_time(e->wall_ms, when, sizeof when);
        json_t *doc = json_pack("{s:s, s:I, s:s, s:s, s:o}", "by", p->d->cfg.region, "index",
                                (json_int_t)e->index, "time", when, "kind", e->kind, "detail",
                                json_string_lossy(e->detail));
        char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
        if (text != NULL) {
            (void)afc_redis_publish_event(p->redis, text); /* best effort */
        }
        free(text);
        json_decref(doc);
        p->events_from_index = e->index;
    }
}

/* ---- status ---- */

static void read_cb(void *data, const struct afc_redis_read_result *res)
{
    struct afc_publisher *p = data;
    if (res->outcome == AFC_REDIS_CLOSED || p->closing) {
        return;
    }
    p->read_in_flight = false;
    p->last_read = *res;
    p->last_read_wall_ms = afc_wall_now_ms();
    /* A Redis that lost the key (restarted empty, flushed) or holds an older epoch than we wrote
     * gets it again: the write is compare-by-epoch, so this never undoes a newer one. */
    afc_epoch holds = res->outcome == AFC_REDIS_FOUND ? res->primary.epoch : 0;
    bool lost = res->outcome == AFC_REDIS_ABSENT || res->outcome == AFC_REDIS_MALFORMED ||
                (res->outcome == AFC_REDIS_FOUND && holds < p->written);
    if (lost && p->settled != 0) {
        afc_event("redis-republish", "holds=%" PRIu64 " written=%" PRIu64 " outcome=%s", holds,
                  p->written, afc_redis_outcome_name(res->outcome));
        p->settled = holds;
        p->written = holds;
    }
}

static void maybe_read(struct afc_publisher *p)
{
    if (p->read_in_flight || now_ms(p) < p->next_read_ms) {
        return;
    }
    p->next_read_ms = now_ms(p) + CHECK_EVERY_MS;
    if (afc_redis_read_primary(p->redis, read_cb, p) == 0) {
        p->read_in_flight = true;
    }
}

/* ---- interface ---- */

int afc_publisher_new(struct afc_daemon *d, struct afc_publisher **out, struct afc_err *err)
{
    *out = NULL;
    if (d->cfg.redis_url[0] == '\0') {
        return 0;
    }
    struct afc_publisher *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return afc_err_set(err, AFC_ENOMEM, "publisher: out of memory");
    }
    p->d = d;
    struct afc_redis_pub_config rc = {
        .url = d->cfg.redis_url,
        .key = d->cfg.redis_key[0] ? d->cfg.redis_key : NULL,
        .channel = d->cfg.redis_channel[0] ? d->cfg.redis_channel : NULL,
        .origin = d->cfg.region,
        .timeout_ms = d->cfg.redis_timeout_ms,
        .landed_cb = write_cb,
        .landed_data = p,
    };
    int rv = afc_redis_pub_new(d->loop, &rc, &p->redis, err);
    if (rv != 0) {
        free(p);
        return rv;
    }
    *out = p;
    return 0;
}

struct close_ctx {
    struct afc_publisher *p;
    void (*done)(void *arg);
    void *arg;
};

static void closed(void *arg)
{
    struct close_ctx *c = arg;
    void (*done)(void *arg) = c->done;
    void *done_arg = c->arg;
    free(c->p);
    free(c);
    if (done != NULL) {
        done(done_arg);
    }
}

void afc_publisher_close(struct afc_publisher *p, void (*done)(void *arg), void *arg)
{
    if (p == NULL) {
        if (done != NULL) {
            done(arg);
        }
        return;
    }
    struct close_ctx *c = calloc(1, sizeof *c);
    p->closing = true;
    if (c == NULL) { /* cannot wait for it: close anyway, leak the context-less struct */
        afc_redis_pub_close(p->redis, NULL, NULL);
        if (done != NULL) {
            done(arg);
        }
        return;
    }
    *c = (struct close_ctx){.p = p, .done = done, .arg = arg};
    afc_redis_pub_close(p->redis, closed, c);
}

void afc_publisher_tick(struct afc_publisher *p)
{
    if (p == NULL || p->closing) {
        return;
    }
    maybe_write(p);
    maybe_commit(p);
    publish_events(p);
    maybe_read(p);
}

json_t *afc_publisher_json(const struct afc_publisher *p)
{
    if (p == NULL) {
        return json_null();
    }
    const struct afc_state *s = state_of(p);
    struct afc_redis_status st;
    afc_redis_pub_status(p->redis, &st);
    struct afc_redis_url url;
    struct afc_err err = {0};
    char where[AFC_REDIS_HOST_MAX + 16] = "?";
    if (afc_redis_url_parse(p->d->cfg.redis_url, &url, &err) == 0) {
        snprintf(where, sizeof where, "%s:%u/%u", url.host, url.port, url.db); /* no password */
    }
    json_t *holds = json_null(), *agrees = json_null();
    const struct afc_redis_read_result *r = &p->last_read;
    if (p->last_read_wall_ms != 0 && r->outcome == AFC_REDIS_FOUND) {
        holds = json_pack("{s:I, s:s, s:s, s:I}", "epoch", (json_int_t)r->primary.epoch, "region",
                          r->primary.region, "host", r->primary.host, "port",
                          (json_int_t)r->primary.port);
        agrees = json_boolean(r->primary.epoch == s->epoch &&
                              strcmp(r->primary.region, s->primary) == 0);
    } else if (p->last_read_wall_ms != 0 && r->outcome != AFC_REDIS_FAILED) {
        agrees = json_false(); /* absent or malformed */
    }
    char when[40] = "";
    if (p->last_read_wall_ms != 0) {
        json_format_time(p->last_read_wall_ms, when, sizeof when);
    }
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:s}", "region", p->d->cfg.region, "redis",
                     where, "state", st.state != NULL ? st.state : "?", "holds", holds, "agrees",
                     agrees, "checked", when[0] ? json_string(when) : json_null(), "last_error",
                     st.last_error);
}
