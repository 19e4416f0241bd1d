/*
 * DNS routing on the leader, and every node's check of what the name says (router.h).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "afc/http_client.h"
#include "afc/log.h"
#include "coordinator/daemon.h"
#include "coordinator/report.h"
#include "coordinator/router.h"
#include "coordinator/http_internal.h"

#define BACKOFF_MIN_MS    500
#define BACKOFF_MAX_MS    30000
#define VERIFY_EVERY_MS   250   /* between rounds while the servers do not agree yet */
#define VERIFY_GIVE_UP_MS 60000 /* then read and write again */
#define COMMIT_RETRY_MS   1000
#define STATUS_EVERY_MS   5000
#define TOKENS            8

enum phase {
    P_GET = 0, /* next: read the name */
    P_VERIFY,  /* next: a verification round */
    P_COMMIT,  /* next: commit `routed` */
    P_BUSY,    /* an operation is running */
    P_DONE,    /* this epoch is routed */
    P_REFUSED, /* a newer epoch owns the name: this leader is behind */
};

static const char *const phase_names[] = {"reading", "checking", "committing",
                                          "busy",    "routed",   "refused"};

/* A callback's ticket: which router, and which job (a dropped job's late answers are ignored). */
struct token {
    struct afc_router *r;
    uint64_t gen;
    bool in_use;
};

struct afc_router {
    struct afc_daemon *d;
    struct afc_dns_provider *dns;
    struct token tokens[TOKENS];
    uint64_t gen;
    /* the job: the epoch being routed, on this leader */
    afc_epoch epoch;  /* 0 = none */
    bool is_failover; /* commit `routed` at the end */
    struct afc_dns_value target;
    enum phase phase;
    const char *doing; /* while P_BUSY */
    unsigned failures;
    uint64_t next_ms;
    uint64_t verify_since_ms;
    uint64_t started_ms;
    bool noted;
    afc_epoch done_epoch; /* the last epoch routed by this node (adopted epochs have no record) */
    char last_error[256];
    struct afc_dns_verify *verify;
    struct token *verify_token; /* released by hand when the round is cancelled */
    /* status: what the authoritative servers say about the authorized primary */
    struct afc_dns_verify *status_verify;
    struct token *status_token;
    uint64_t next_status_ms;
    bool status_known, status_agrees;
    char status_detail[256];
    int64_t status_wall_ms;
};

static uint64_t now_ms(const struct afc_router *r)
{
    return uv_now(r->d->loop);
}

static const struct afc_state *state_of(const struct afc_router *r)
{
    return afc_node_state(&r->d->node);
}

static const struct afc_config_member *member_cfg(const struct afc_router *r, const char *name)
{
    for (unsigned i = 0; i < r->d->cfg.n_members; i++) {
        if (strcmp(r->d->cfg.members[i].name, name) == 0) {
            return &r->d->cfg.members[i];
        }
    }
    return NULL;
}

static struct token *token_take(struct afc_router *r)
{
    for (unsigned i = 0; i < TOKENS; i++) {
        if (!r->tokens[i].in_use) {
            r->tokens[i] = (struct token){.r = r, .gen = r->gen, .in_use = true};
            return &r->tokens[i];
        }
    }
    return NULL;
}

/* The token's router if its job is still the current one; the token is released either way. */
static struct afc_router *token_redeem(void *data)
{
    struct token *t = data;
    struct afc_router *r = t->r;
    bool current = t->gen == r->gen;
    t->in_use = false;
    return current ? r : NULL;
}

/* ---- the job ---- */

/* The epoch the leader should route now, or 0: the authorized primary's, once its promotion is
 * committed (a failover's epoch) or at once (adopted, or set by an operator's promote). */
static afc_epoch job_epoch(const struct afc_router *r, bool *is_failover)
{
    const struct afc_state *s = state_of(r);
    const struct afc_failover *f = &s->failover;
    *is_failover = f->epoch == s->epoch && f->epoch != 0;
    if (s->epoch == 0 || s->primary[0] == '\0') {
        return 0;
    }
    if (*is_failover) {
        bool promoted = f->step == AFC_FO_PROMOTED || f->step == AFC_FO_DONE;
        return promoted && f->routed_ms == 0 ? s->epoch : 0;
    }
    return r->done_epoch == s->epoch ? 0 : s->epoch;
}

static void drop_job(struct afc_router *r)
{
    r->gen++;
    if (r->verify != NULL) {
        afc_dns_verify_cancel(r->verify); /* its callback never runs: release its token */
        r->verify = NULL;
        r->verify_token->in_use = false;
        r->verify_token = NULL;
    }
    for (unsigned i = 0; i < TOKENS; i++) {
        if (r->tokens[i].in_use && &r->tokens[i] != r->status_token) {
            r->tokens[i].gen = 0; /* provider answers still come; they are ignored */
        }
    }
    r->epoch = 0;
    r->phase = P_GET;
}

static void start_job(struct afc_router *r, afc_epoch epoch, bool is_failover)
{
    const struct afc_state *s = state_of(r);
    const struct afc_config_member *m = member_cfg(r, s->primary);
    drop_job(r);
    r->epoch = epoch;
    r->is_failover = is_failover;
    r->failures = 0;
    r->next_ms = 0;
    r->noted = false;
    r->started_ms = now_ms(r);
    r->last_error[0] = '\0';
    memset(&r->target, 0, sizeof r->target);
    r->target.exists = true;
    r->target.stamped = true;
    r->target.epoch = epoch;
    r->target.ttl = r->d->cfg.dns.ttl;
    snprintf(r->target.region, sizeof r->target.region, "%s", s->primary);
    snprintf(r->target.address, sizeof r->target.address, "%s", m != NULL ? m->address : "");
    r->phase = P_GET;
    if (r->target.address[0] == '\0') {
        r->phase = P_REFUSED;
        snprintf(r->last_error, sizeof r->last_error, "%s has no address in the configuration",
                 s->primary);
        afc_event("routing-refused", "epoch=%" PRIu64 " region=%s reason=\"%s\"", epoch, s->primary,
                  r->last_error);
        return;
    }
    afc_event("routing", "epoch=%" PRIu64 " name=%s address=%s provider=%s", epoch,
              r->d->cfg.dns.name, r->target.address, afc_dns_provider_name(r->dns));
}

static void note(struct afc_router *r, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void note(struct afc_router *r, const char *kind, const char *fmt, ...)
{
    struct afc_cmd cmd;
    va_list ap;
    afc_cmd_start(&cmd, AFC_OP_NOTE, r->d->cfg.region);
    snprintf(cmd.u.note.kind, sizeof cmd.u.note.kind, "%s", kind);
    va_start(ap, fmt);
    vsnprintf(cmd.u.note.detail, sizeof cmd.u.note.detail, fmt, ap);
    va_end(ap);
    afc_report_send(r->d, &cmd, NULL, NULL);
}

/* Back off and read again. The first failure of an epoch goes into the history. */
static void failed(struct afc_router *r, const char *why, unsigned retry_after_ms)
{
    uint64_t backoff = BACKOFF_MIN_MS;
    for (unsigned i = 1; i < r->failures + 1 && backoff < BACKOFF_MAX_MS; i++) {
        backoff *= 2;
    }
    backoff = backoff > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff;
    backoff = backoff * (75 + (uint64_t)(rand() % 51)) / 100; /* ±25 % */
    if (retry_after_ms > backoff) {
        backoff = retry_after_ms;
    }
    r->failures++;
    r->next_ms = now_ms(r) + backoff;
    r->phase = P_GET;
    snprintf(r->last_error, sizeof r->last_error, "%s", why);
    afc_event("routing-retry", "epoch=%" PRIu64 " attempt=%u retry_in_ms=%" PRIu64 " reason=\"%s\"",
              r->epoch, r->failures, backoff, why);
    if (!r->noted) {
        r->noted = true;
        note(r, "routing-pending", "epoch=%" PRIu64 " region=%s provider=%s: %.60s", r->epoch,
             r->target.region, afc_dns_provider_name(r->dns), why);
    }
}

static void refused(struct afc_router *r, const struct afc_dns_value *found)
{
    r->phase = P_REFUSED;
    snprintf(r->last_error, sizeof r->last_error,
             "the name is stamped epoch=%" PRIu64 " region=%s, newer than %" PRIu64, found->epoch,
             found->region, r->epoch);
    afc_event("routing-refused", "epoch=%" PRIu64 " found_epoch=%" PRIu64 " found_region=%s",
              r->epoch, found->epoch, found->region);
    note(r, "routing-refused",
         "epoch=%" PRIu64 ": the name already says epoch=%" PRIu64 " region=%s; not overwritten",
         r->epoch, found->epoch, found->region);
}

static bool says_target(const struct afc_router *r, const struct afc_dns_value *v)
{
    return v->exists && v->stamped && v->epoch == r->target.epoch &&
           strcmp(v->address, r->target.address) == 0 && strcmp(v->region, r->target.region) == 0;
}

static void cas_cb(void *data, const struct afc_dns_result *res);

static void get_cb(void *data, const struct afc_dns_result *res)
{
    struct afc_router *r = token_redeem(data);
    if (r == NULL) {
        return;
    }
    if (res->outcome != AFC_DNS_OK) {
        failed(r, res->message, res->retry_after_ms);
        return;
    }
    if (res->found.stamped && res->found.epoch > r->epoch) {
        refused(r, &res->found);
        return;
    }
    if (says_target(r, &res->found)) {
        r->phase = P_VERIFY;
        r->verify_since_ms = now_ms(r);
        return;
    }
    if (!afc_node_is_ready(&r->d->node)) {
        drop_job(r); /* no longer the leader: whoever is will route */
        return;
    }
    struct token *t = token_take(r);
    int rc = t != NULL ? afc_dns_cas(r->dns, &res->found, &r->target, cas_cb, t) : AFC_ENOMEM;
    if (rc != 0) {
        if (t != NULL) {
            t->in_use = false;
        }
        failed(r, afc_strerror(rc), 0);
        return;
    }
    r->doing = "writing";
    afc_event("routing-write",
              "epoch=%" PRIu64 " from=\"%s epoch=%" PRIu64 " region=%s\" to=\"%s\"", r->epoch,
              res->found.exists ? res->found.address : "(none)", res->found.epoch,
              res->found.region[0] ? res->found.region : "-", r->target.address);
}

static void cas_cb(void *data, const struct afc_dns_result *res)
{
    struct afc_router *r = token_redeem(data);
    if (r == NULL) {
        return;
    }
    switch (res->outcome) {
    case AFC_DNS_OK:
        r->phase = P_VERIFY;
        r->verify_since_ms = now_ms(r);
        break;
    case AFC_DNS_CONFLICT:
        if (says_target(r, &res->found)) {
            /* an earlier attempt of ours landed after all (its answer was lost) */
            r->phase = P_VERIFY;
            r->verify_since_ms = now_ms(r);
            break;
        }
        afc_event("routing-conflict", "epoch=%" PRIu64 " detail=\"%s\"", r->epoch, res->message);
        if (res->found.stamped && res->found.epoch > r->epoch) {
            refused(r, &res->found);
        } else {
            failed(r, res->message, 0); /* it changed since we read it: read again */
        }
        break;
    default:
        failed(r, res->message, res->retry_after_ms);
        break;
    }
}

static void commit_cb(void *data, int status, enum afc_apply_result result)
{
    struct afc_router *r = token_redeem(data);
    if (r == NULL) {
        return;
    }
    if (status == 0 && (result == AFC_APPLY_OK || result == AFC_APPLY_NOOP)) {
        r->phase = P_DONE;
        r->done_epoch = r->epoch;
        return;
    }
    r->phase = P_COMMIT;
    r->next_ms = now_ms(r) + COMMIT_RETRY_MS;
}

static void routed(struct afc_router *r, const char *verified)
{
    afc_event("routed", "epoch=%" PRIu64 " name=%s address=%s verified=%s elapsed_ms=%" PRIu64,
              r->epoch, r->d->cfg.dns.name, r->target.address, verified, now_ms(r) - r->started_ms);
    if (!r->is_failover) {
        r->phase = P_DONE;
        r->done_epoch = r->epoch;
        return;
    }
    struct afc_cmd cmd;
    afc_cmd_start(&cmd, AFC_OP_ROUTED, r->d->cfg.region);
    cmd.u.routed.epoch = r->epoch;
    snprintf(cmd.u.routed.address, sizeof cmd.u.routed.address, "%s", r->target.address);
    snprintf(cmd.u.routed.detail, sizeof cmd.u.routed.detail,
             "provider=%s name=%.60s verified=%.16s attempts=%u", afc_dns_provider_name(r->dns),
             r->d->cfg.dns.name, verified, r->failures + 1);
    struct token *t = token_take(r);
    if (t == NULL || afc_report_send(r->d, &cmd, commit_cb, t) != 0) {
        if (t != NULL) {
            t->in_use = false;
        }
        r->phase = P_COMMIT;
        r->next_ms = now_ms(r) + COMMIT_RETRY_MS;
        return;
    }
    r->phase = P_BUSY;
    r->doing = "committing";
}

static void verify_cb(void *data, const struct afc_dns_verify_result *res)
{
    struct afc_router *r = token_redeem(data);
    if (r == NULL) {
        return;
    }
    r->verify = NULL;
    r->verify_token = NULL;
    if (res->all_agree) {
        char v[32];
        snprintf(v, sizeof v, "%u/%u", res->n_agree, res->n_servers);
        routed(r, v);
    } else if (now_ms(r) - r->verify_since_ms > VERIFY_GIVE_UP_MS) {
        failed(r, res->message, 0);
    } else {
        r->phase = P_VERIFY;
        r->next_ms = now_ms(r) + VERIFY_EVERY_MS;
    }
}

static void step(struct afc_router *r)
{
    struct token *t = token_take(r);
    int rc = 0;
    if (t == NULL) {
        return;
    }
    switch (r->phase) {
    case P_GET:
        rc = afc_dns_get(r->dns, get_cb, t);
        r->doing = "reading";
        break;
    case P_VERIFY:
        if (r->d->cfg.dns.n_verify_servers == 0) {
            t->in_use = false;
            routed(r, "not-checked");
            return;
        }
        rc = afc_dns_verify_start(r->d->loop, &r->d->cfg.dns, &r->target, verify_cb, t, &r->verify);
        r->verify_token = rc == 0 ? t : NULL;
        r->doing = "checking";
        break;
    case P_COMMIT:
        t->in_use = false;
        routed(r, "earlier");
        return;
    default:
        t->in_use = false;
        return;
    }
    if (rc != 0) {
        t->in_use = false;
        failed(r, afc_strerror(rc), 0);
        return;
    }
    r->phase = P_BUSY;
}

/* ---- status: what the authoritative servers say about the authorized primary ---- */

static void status_cb(void *data, const struct afc_dns_verify_result *res)
{
    struct token *t = data;
    struct afc_router *r = t->r;
    t->in_use = false;
    r->status_token = NULL;
    r->status_verify = NULL;
    r->status_known = true;
    r->status_agrees = res->all_agree;
    r->status_wall_ms = afc_wall_now_ms();
    snprintf(r->status_detail, sizeof r->status_detail, "%s", res->message);
}

static void status_tick(struct afc_router *r)
{
    const struct afc_state *s = state_of(r);
    if (r->status_verify != NULL || now_ms(r) < r->next_status_ms ||
        r->d->cfg.dns.n_verify_servers == 0 || s->primary[0] == '\0') {
        return;
    }
    const struct afc_config_member *m = member_cfg(r, s->primary);
    struct afc_dns_value want = {.exists = true, .stamped = true, .epoch = s->epoch};
    snprintf(want.address, sizeof want.address, "%s", m != NULL ? m->address : "");
    snprintf(want.region, sizeof want.region, "%s", s->primary);
    r->next_status_ms = now_ms(r) + STATUS_EVERY_MS;
    struct token *t = token_take(r);
    if (t == NULL) {
        return;
    }
    t->gen = 0; /* never redeemed as a job's */
    if (afc_dns_verify_start(r->d->loop, &r->d->cfg.dns, &want, status_cb, t, &r->status_verify) !=
        0) {
        t->in_use = false;
        return;
    }
    r->status_token = t;
}

/* ---- interface ---- */

int afc_router_new(struct afc_daemon *d, struct afc_http_client *http, struct afc_router **out,
                   struct afc_err *err)
{
    *out = NULL;
    if (d->cfg.dns.provider == AFC_DNS_NONE) {
        return 0;
    }
    struct afc_router *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return afc_err_set(err, AFC_ENOMEM, "router: out of memory");
    }
    r->d = d;
    r->gen = 1;
    int rc = afc_dns_provider_new(d->loop, http, &d->cfg.dns, &r->dns, err);
    if (rc != 0) {
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void afc_router_free(struct afc_router *r)
{
    if (r == NULL) {
        return;
    }
    if (r->verify != NULL) {
        afc_dns_verify_cancel(r->verify);
    }
    if (r->status_verify != NULL) {
        afc_dns_verify_cancel(r->status_verify);
    }
    afc_dns_provider_free(r->dns); /* no callback runs after this */
    free(r);
}

void afc_router_tick(struct afc_router *r)
{
    if (r == NULL) {
        return;
    }
    status_tick(r);
    bool is_failover = false;
    afc_epoch want = afc_node_is_ready(&r->d->node) ? job_epoch(r, &is_failover) : 0;
    if (want == 0) {
        if (r->epoch != 0 && r->phase != P_DONE) {
            drop_job(r);
        }
        r->epoch = r->phase == P_DONE ? r->epoch : 0;
        return;
    }
    if (r->epoch != want) {
        start_job(r, want, is_failover);
    }
    if (r->phase == P_BUSY || r->phase == P_DONE || r->phase == P_REFUSED ||
        now_ms(r) < r->next_ms) {
        return;
    }
    step(r);
}

json_t *afc_router_json(const struct afc_router *r)
{
    if (r == NULL) {
        return json_null();
    }
    json_t *answer = json_object();
    if (r->status_known) {
        char when[40];
        json_format_time(r->status_wall_ms, when, sizeof when);
        json_object_set_new(answer, "agrees", json_boolean(r->status_agrees));
        json_object_set_new(answer, "detail", json_string_lossy(r->status_detail));
        json_object_set_new(answer, "checked", json_string(when));
    } else {
        json_object_set_new(answer, "agrees", json_null());
    }
    json_t *doc = json_pack("{s:s, s:s, s:o}", "provider", afc_dns_provider_name(r->dns), "name",
                            r->d->cfg.dns.name, "answer", answer);
    if (r->epoch != 0) {
        json_object_set_new(doc, "routing",
                            json_pack("{s:I, s:s, s:s, s:I, s:s}", "epoch", (json_int_t)r->epoch,
                                      "address", r->target.address, "phase",
                                      r->phase == P_BUSY ? r->doing : phase_names[r->phase],
                                      "failures", (json_int_t)r->failures, "last_error",
                                      r->last_error));
    }
    return doc;
}
