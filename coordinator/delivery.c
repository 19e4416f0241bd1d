/*
 * After the promotion: DNS, Redis, hooks (delivery.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "afc/hooks.h"
#include "afc/http_client.h"
#include "afc/log.h"
#include "coordinator/daemon.h"
#include "coordinator/delivery.h"
#include "coordinator/publisher.h"
#include "coordinator/router.h"

struct afc_delivery {
    struct afc_daemon *d;
    struct afc_http_client *http;
    struct afc_router *router;
    struct afc_publisher *publisher;
    struct afc_hooks *hooks;
    void (*stop_cb)(struct afc_daemon *d);
    /* on_role_change: the role this node last announced, and for which epoch */
    enum afc_hook_role role;
    uint64_t role_epoch;
    /* webhooks (leader only): history events above this index are announced */
    uint64_t notified_index;
    /* pre_promote: one verdict at a time */
    void (*verdict_cb)(void *data, bool allow, const char *reason);
    void *verdict_data;
};

/* ---- hooks ---- */

static int start_hooks(struct afc_delivery *v, struct afc_err *err)
{
    const struct afc_config *c = &v->d->cfg;
    struct afc_hooks_config hc = {
        .region = c->region,
        .on_role_change = c->hook_on_role_change,
        .on_role_change_timeout_ms = c->hook_timeout_ms,
        .pre_promote = c->hook_pre_promote,
        .pre_promote_timeout_ms = c->pre_promote_timeout_ms,
        .http = v->http,
        .webhook_token = c->webhook_token[0] ? c->webhook_token : NULL,
        .webhook_attempts = c->webhook_attempts,
    };
    for (unsigned i = 0; i < c->n_webhooks && i < AFC_HOOKS_MAX_WEBHOOKS; i++) {
        hc.webhook_urls[hc.n_webhook_urls++] = c->webhook_urls[i];
    }
    return afc_hooks_new(v->d->loop, &hc, &v->hooks, err);
}

static const struct afc_config_member *member_cfg(const struct afc_daemon *d, const char *name)
{
    for (unsigned i = 0; i < d->cfg.n_members; i++) {
        if (strcmp(d->cfg.members[i].name, name) == 0) {
            return &d->cfg.members[i];
        }
    }
    return NULL;
}

/* This node's role by the committed state: primary once its promotion is committed (or it was
 * adopted / set by an operator), demoted when it was primary and is not any more, else replica. */
static enum afc_hook_role authorized_role(const struct afc_delivery *v)
{
    const struct afc_state *s = afc_node_state(&v->d->node);
    const struct afc_failover *f = &s->failover;
    if (s->epoch == 0 || s->primary[0] == '\0') {
        return AFC_HOOK_ROLE_UNKNOWN;
    }
    if (strcmp(s->primary, v->d->cfg.region) == 0) {
        bool promoting =
            f->epoch == s->epoch && f->step != AFC_FO_PROMOTED && f->step != AFC_FO_DONE;
        return promoting ? AFC_HOOK_ROLE_UNKNOWN : AFC_HOOK_ROLE_PRIMARY;
    }
    if (v->role == AFC_HOOK_ROLE_PRIMARY || v->role == AFC_HOOK_ROLE_DEMOTED) {
        return AFC_HOOK_ROLE_DEMOTED;
    }
    return AFC_HOOK_ROLE_REPLICA;
}

static void role_tick(struct afc_delivery *v)
{
    const struct afc_state *s = afc_node_state(&v->d->node);
    enum afc_hook_role role = authorized_role(v);
    if (role == AFC_HOOK_ROLE_UNKNOWN || (role == v->role && s->epoch == v->role_epoch)) {
        return;
    }
    if (role == AFC_HOOK_ROLE_REPLICA && v->role == AFC_HOOK_ROLE_REPLICA &&
        s->failover.epoch == s->epoch && s->failover.step != AFC_FO_PROMOTED &&
        s->failover.step != AFC_FO_DONE) {
        return; /* a replica follows the new primary once it is promoted */
    }
    const struct afc_config_member *m = member_cfg(v->d, s->primary);
    struct afc_role_change rc = {
        .role = role,
        .previous = v->role,
        .epoch = s->epoch,
        .primary_region = s->primary,
        .primary_host = m != NULL ? m->address : "",
        .reason = s->failover.epoch == s->epoch ? s->failover.reason : "",
    };
    afc_event("db-role-changed", "region=%s role=%s previous=%s epoch=%" PRIu64, v->d->cfg.region,
              afc_hook_role_name(role), afc_hook_role_name(v->role), s->epoch);
    v->role = role;
    v->role_epoch = s->epoch;
    (void)afc_hooks_role_changed(v->hooks, &rc, NULL, NULL); /* asynchronous, coalesced */
}

/* Which history events go to the webhooks: the failover's steps and the delivery's news. */
static bool notifiable(const char *kind)
{
    static const char *const kinds[] = {"failover-decided", "failover-fenced",  "failover-promoted",
                                        "failover-done",    "failover-aborted", "routed",
                                        "routing-pending",  "routing-refused",  "published",
                                        "paused",           "resumed",          "promoted",
                                        "drained",          "undrained"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(kind, kinds[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* The leader announces new history events (once cluster-wide, as long as it stays leader). */
static void webhook_tick(struct afc_delivery *v)
{
    const struct afc_state *s = afc_node_state(&v->d->node);
    if (v->d->cfg.n_webhooks == 0) {
        return;
    }
    if (v->notified_index == 0 || !afc_node_is_ready(&v->d->node)) {
        v->notified_index = s->applied_index; /* from now on, not the past */
        return;
    }
    const struct afc_config_member *m = member_cfg(v->d, s->primary);
    for (unsigned i = 0; i < s->history_len; i++) {
        const struct afc_event *e = afc_state_history_at(s, i);
        if (e == NULL || e->index <= v->notified_index) {
            continue;
        }
        v->notified_index = e->index;
        if (!notifiable(e->kind)) {
            continue;
        }
        struct afc_hook_event ev = {
            .event = e->kind,
            .epoch = s->epoch,
            .primary_region = s->primary[0] ? s->primary : NULL,
            .primary_host = m != NULL ? m->address : NULL,
            .detail = e->detail,
        };
        (void)afc_hooks_notify(v->hooks, &ev, NULL, NULL);
    }
}

static void verdict_cb(void *data, const struct afc_hook_verdict *vd)
{
    struct afc_delivery *v = data;
    void (*cb)(void *data, bool allow, const char *reason) = v->verdict_cb;
    void *cb_data = v->verdict_data;
    v->verdict_cb = NULL;
    if (cb != NULL && v->stop_cb == NULL) {
        cb(cb_data, vd->allow, vd->reason);
    }
}

int afc_delivery_pre_promote(struct afc_daemon *d, uint64_t epoch, const char *previous,
                             void (*cb)(void *data, bool allow, const char *reason), void *data)
{
    struct afc_delivery *v = d->delivery;
    if (v == NULL || v->hooks == NULL || d->cfg.hook_pre_promote[0] == '\0') {
        return AFC_EALREADY;
    }
    if (v->verdict_cb != NULL || v->stop_cb != NULL) {
        return AFC_ENOTREADY;
    }
    const struct afc_config_member *m = member_cfg(d, d->cfg.region);
    struct afc_promote_request rq = {
        .epoch = epoch,
        .previous_region = previous,
        .host = m != NULL ? m->address : "",
        .reason = afc_node_state(&d->node)->failover.reason,
    };
    v->verdict_cb = cb;
    v->verdict_data = data;
    int rc = afc_hooks_pre_promote(v->hooks, &rq, verdict_cb, v);
    if (rc != 0) {
        v->verdict_cb = NULL;
    }
    return rc;
}

int afc_delivery_start(struct afc_daemon *d, struct afc_err *err)
{
    struct afc_delivery *v = calloc(1, sizeof *v);
    if (v == NULL) {
        return afc_err_set(err, AFC_ENOMEM, "delivery: out of memory");
    }
    v->d = d;
    v->http = afc_http_client_new(d->loop);
    if (v->http == NULL) {
        free(v);
        return afc_err_set(err, AFC_ENOMEM, "delivery: out of memory");
    }
    int rc = afc_router_new(d, v->http, &v->router, err);
    if (rc == 0) {
        rc = afc_publisher_new(d, &v->publisher, err);
    }
    if (rc == 0) {
        rc = start_hooks(v, err);
    }
    if (rc != 0) {
        afc_router_free(v->router);
        afc_publisher_close(v->publisher, NULL, NULL);
        afc_http_client_close(v->http, NULL, NULL);
        free(v);
        return rc;
    }
    d->delivery = v;
    return 0;
}

void afc_delivery_tick(struct afc_daemon *d)
{
    struct afc_delivery *v = d->delivery;
    if (v == NULL || v->stop_cb != NULL) {
        return;
    }
    afc_router_tick(v->router);
    afc_publisher_tick(v->publisher);
    role_tick(v);
    webhook_tick(v);
}

static void http_closed(void *arg)
{
    struct afc_delivery *v = arg;
    struct afc_daemon *d = v->d;
    void (*cb)(struct afc_daemon * d) = v->stop_cb;
    d->delivery = NULL;
    free(v);
    cb(d);
}

static void hooks_closed(void *arg)
{
    struct afc_delivery *v = arg;
    v->hooks = NULL;
    afc_http_client_close(v->http, http_closed, v); /* after the webhooks that use it */
}

static void publisher_closed(void *arg)
{
    struct afc_delivery *v = arg;
    v->publisher = NULL;
    afc_hooks_close(v->hooks, hooks_closed, v);
}

void afc_delivery_stop(struct afc_daemon *d, void (*cb)(struct afc_daemon *d))
{
    struct afc_delivery *v = d->delivery;
    if (v == NULL || v->stop_cb != NULL) {
        cb(d);
        return;
    }
    v->stop_cb = cb;
    afc_router_free(v->router); /* before the HTTP client its provider uses */
    v->router = NULL;
    afc_publisher_close(v->publisher, publisher_closed, v);
}

json_t *afc_delivery_json(const struct afc_daemon *d)
{
    const struct afc_delivery *v = d->delivery;
    return json_pack("{s:o, s:o}", "dns", v != NULL ? afc_router_json(v->router) : json_null(),
                     "redis", v != NULL ? afc_publisher_json(v->publisher) : json_null());
}
