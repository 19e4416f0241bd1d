/*
 * Operator hooks (include/afc/hooks.h, docs/hooks.md): on_role_change, pre_promote, webhooks.
 *
 * Programs are jobs run through afc_run (no shell, the process group killed at the timeout). The
 * on_role_change slot holds at most one running job and one waiting job; a new role change
 * replaces the waiting one (coalesced), and when the running one ends the waiting one starts.
 * pre_promote runs one job at a time and turns its end into a verdict.
 *
 * Webhooks: each event becomes one `notify` (the JSON body, built once) and one `delivery` per
 * URL. A delivery is a small loop of attempt → HTTP answer → (retry timer | done), every attempt
 * started from its own uv timer, so nothing starts inside afc_hooks_notify().
 *
 * Every caller's callback goes through one deferred queue run by a 0 ms timer: callbacks never
 * run inside an API call, and close can answer everything without re-entering its caller.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "afc/hooks.h"
#include "afc/http_client.h"
#include "afc/log.h"
#include "afc/run.h"

#define DEFAULT_ROLE_TIMEOUT_MS    30000
#define DEFAULT_PROMOTE_TIMEOUT_MS 10000
#define DEFAULT_WEBHOOK_TIMEOUT_MS 5000
#define DEFAULT_WEBHOOK_ATTEMPTS   5
#define DEFAULT_BACKOFF_MS         500
#define DEFAULT_BACKOFF_MAX_MS     30000
#define PASS_ENV_MAX               16
#define ENV_MAX                    (PASS_ENV_MAX + 16) /* + ARAGORA_* (12) */

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static const char *const default_pass_env[] = {"PATH", "HOME",   "LANG", "LC_ALL",  "LC_CTYPE",
                                               "TZ",   "TMPDIR", "USER", "LOGNAME", NULL};

/* A caller's callback waiting to run from the defer timer. */
struct deferred {
    struct deferred *next;
    void (*fire)(struct deferred *d);
};

enum job_kind { JOB_ROLE, JOB_PROMOTE };

struct job {
    struct deferred dn;
    struct afc_hooks *h;
    enum job_kind kind;
    char *argv[6]; /* program, action, role, region, epoch, NULL */
    char *env[ENV_MAX + 1];
    unsigned n_env;
    unsigned timeout_ms;
    afc_hook_done_cb done_cb;
    afc_hook_verdict_cb verdict_cb;
    void *data;
    struct afc_run *run; /* while running */
    struct afc_hook_result res;
    struct afc_hook_verdict verdict;
};

struct notify {
    struct deferred dn;
    struct afc_hooks *h;
    char *body;
    char id[96];
    char event[64];
    unsigned outstanding;
    struct afc_webhook_report rep;
    afc_webhook_done_cb cb;
    void *data;
};

struct delivery {
    struct delivery *prev, *next; /* h->deliveries */
    struct notify *n;
    unsigned url;     /* index into h->urls */
    unsigned attempt; /* attempts started */
    struct afc_http_call *call;
    bool answered;    /* this attempt's callback ran */
    uv_timer_t timer; /* the next attempt */
    bool done;
};

struct afc_hooks {
    uv_loop_t *loop;
    char *region;
    char *role_program, *promote_program;
    unsigned role_timeout_ms, promote_timeout_ms;
    char **pass_env; /* NULL-terminated, owned */
    struct afc_http_client *http;
    char *urls[AFC_HOOKS_MAX_WEBHOOKS];
    char log_urls[AFC_HOOKS_MAX_WEBHOOKS][128]; /* scheme://host:port/… : paths may be secret */
    unsigned n_urls;
    char *auth_header; /* "Bearer <token>" or NULL */
    unsigned webhook_timeout_ms, attempts, backoff_ms, backoff_max_ms;
    uint64_t rng;
    uint64_t seq;

    struct job *role_running, *role_waiting, *promote_running;
    unsigned runs;       /* afc_run jobs not yet ended */
    unsigned deliveries; /* deliveries whose timer is not yet closed */
    struct delivery *dlist;

    struct deferred *defer, *defer_tail;
    uv_timer_t defer_timer;
    bool closing, closed_handle;
    void (*done)(void *arg);
    void *done_arg;
};

static void start_role_job(struct afc_hooks *h, struct job *j);
static void maybe_finish(struct afc_hooks *h);

const char *afc_hook_role_name(enum afc_hook_role r)
{
    static const char *const names[] = {
#define AFC_HOOK_ROLE_NAME(name, text) text,
        AFC_HOOK_ROLES(AFC_HOOK_ROLE_NAME)
#undef AFC_HOOK_ROLE_NAME
    };
    return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "unknown";
}

const char *afc_hook_outcome_name(enum afc_hook_outcome o)
{
    static const char *const names[] = {
#define AFC_HOOK_OUTCOME_NAME(name, text) text,
        AFC_HOOK_OUTCOMES(AFC_HOOK_OUTCOME_NAME)
#undef AFC_HOOK_OUTCOME_NAME
    };
    return (unsigned)o < sizeof names / sizeof names[0] ? names[o] : "unknown";
}

/* ---- the deferred queue ---- */

static void defer_cb(uv_timer_t *t)
{
    struct afc_hooks *h = t->data;
    struct deferred *d;
    while ((d = h->defer) != NULL) { /* a callback may queue more, or close */
        h->defer = d->next;
        if (h->defer == NULL) {
            h->defer_tail = NULL;
        }
        d->fire(d);
    }
    maybe_finish(h);
}

static void defer(struct afc_hooks *h, struct deferred *d, void (*fire)(struct deferred *d))
{
    d->fire = fire;
    d->next = NULL;
    if (h->defer_tail) {
        h->defer_tail->next = d;
    } else {
        h->defer = d;
    }
    h->defer_tail = d;
    uv_timer_start(&h->defer_timer, defer_cb, 0, 0);
}

static void defer_closed_cb(uv_handle_t *handle)
{
    struct afc_hooks *h = handle->data;
    void (*done)(void *) = h->done;
    void *arg = h->done_arg;
    free(h->region);
    free(h->role_program);
    free(h->promote_program);
    for (char **e = h->pass_env; e && *e; e++) {
        free(*e);
    }
    free(h->pass_env);
    for (unsigned i = 0; i < h->n_urls; i++) {
        free(h->urls[i]);
    }
    free(h->auth_header);
    free(h);
    if (done) {
        done(arg);
    }
}

/* Closing ends when no run, delivery or deferred callback is left. */
static void maybe_finish(struct afc_hooks *h)
{
    if (!h->closing || h->closed_handle || h->runs > 0 || h->deliveries > 0 || h->defer) {
        return;
    }
    h->closed_handle = true;
    uv_close((uv_handle_t *)&h->defer_timer, defer_closed_cb);
}

/* ---- jobs (programs) ---- */

static void job_free(struct job *j)
{
    for (unsigned i = 0; i < 5; i++) {
        free(j->argv[i]);
    }
    for (unsigned i = 0; i < j->n_env; i++) {
        free(j->env[i]);
    }
    free(j);
}

static int env_add(struct job *j, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int env_add(struct job *j, const char *name, const char *fmt, ...)
{
    char value[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    if (j->n_env >= ENV_MAX) {
        return AFC_ETOOBIG;
    }
    char *e = malloc(strlen(name) + strlen(value) + 2);
    if (e == NULL) {
        return AFC_ENOMEM;
    }
    sprintf(e, "%s=%s", name, value);
    j->env[j->n_env++] = e;
    return 0;
}

/* The variables of the daemon's environment that hooks may see. */
static int env_pass(struct job *j, char *const *names)
{
    for (char *const *n = names; *n != NULL; n++) {
        const char *v = getenv(*n);
        int rv = 0;
        if (v != NULL) {
            rv = env_add(j, *n, "%s", v);
        } else if (strcmp(*n, "PATH") == 0) {
            rv = env_add(j, "PATH", "%s",
                         "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        }
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

static struct job *job_new(struct afc_hooks *h, enum job_kind kind, const char *program,
                           const char *action, enum afc_hook_role role, uint64_t epoch)
{
    struct job *j = calloc(1, sizeof *j);
    if (j == NULL) {
        return NULL;
    }
    char epoch_s[24];
    snprintf(epoch_s, sizeof epoch_s, "%" PRIu64, epoch);
    j->h = h;
    j->kind = kind;
    j->timeout_ms = kind == JOB_ROLE ? h->role_timeout_ms : h->promote_timeout_ms;
    const char *args[5] = {program ? program : "", action, afc_hook_role_name(role), h->region,
                           epoch_s};
    for (unsigned i = 0; i < 5; i++) {
        if ((j->argv[i] = strdup(args[i])) == NULL) {
            job_free(j);
            return NULL;
        }
    }
    if (env_pass(j, h->pass_env) != 0 || env_add(j, "ARAGORA_HOOK", "%s", action) != 0 ||
        env_add(j, "ARAGORA_ROLE", "%s", afc_hook_role_name(role)) != 0 ||
        env_add(j, "ARAGORA_REGION", "%s", h->region) != 0 ||
        env_add(j, "ARAGORA_EPOCH", "%s", epoch_s) != 0 ||
        env_add(j, "ARAGORA_TIMEOUT_MS", "%u", j->timeout_ms) != 0) {
        job_free(j);
        return NULL;
    }
    return j;
}

/* First non-empty line of the output, trimmed. */
static void first_line(const char *out, char *buf, size_t cap)
{
    while (*out == '\n' || *out == '\r' || *out == ' ' || *out == '\t') {
        out++;
    }
    size_t n = strcspn(out, "\r\n");
    while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t')) {
        n--;
    }
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(buf, out, n);
    buf[n] = '\0';
}

static void describe(struct job *j, const struct afc_run_result *rr)
{
    struct afc_hook_result *r = &j->res;
    r->exit_status = rr->exit_status;
    r->term_signal = rr->term_signal;
    r->duration_ms = rr->duration_ms;
    first_line(rr->output ? rr->output : "", r->first_line, sizeof r->first_line);
    if (rr->timed_out) {
        r->outcome = AFC_HOOK_TIMED_OUT;
        snprintf(r->message, sizeof r->message, "timed out after %u ms", j->timeout_ms);
    } else if (rr->term_signal != 0) {
        r->outcome = AFC_HOOK_FAILED;
        snprintf(r->message, sizeof r->message, "killed by signal %d (%s)", rr->term_signal,
                 strsignal(rr->term_signal));
    } else {
        r->outcome = rr->exit_status == 0 ? AFC_HOOK_OK : AFC_HOOK_FAILED;
        snprintf(r->message, sizeof r->message, "exit %" PRId64 "%s%.200s", rr->exit_status,
                 r->first_line[0] ? ": " : "", r->first_line);
    }
}

/* The verdict from a pre_promote result. */
static void decide_verdict(struct job *j)
{
    struct afc_hook_verdict *v = &j->verdict;
    const struct afc_hook_result *r = &j->res;
    v->run = *r;
    v->allow = r->outcome == AFC_HOOK_OK || r->outcome == AFC_HOOK_NONE;
    if (v->allow) {
        v->reason[0] = '\0';
    } else if (r->outcome == AFC_HOOK_CLOSED) {
        snprintf(v->reason, sizeof v->reason, "closing");
    } else if (r->outcome == AFC_HOOK_FAILED && r->term_signal == 0 && r->first_line[0]) {
        snprintf(v->reason, sizeof v->reason, "%s", r->first_line);
    } else {
        snprintf(v->reason, sizeof v->reason, "%s", r->message);
    }
}

static void job_fire(struct deferred *d)
{
    struct job *j = container_of(d, struct job, dn);
    if (j->kind == JOB_ROLE && j->done_cb) {
        j->done_cb(j->data, &j->res);
    } else if (j->kind == JOB_PROMOTE) {
        j->verdict_cb(j->data, &j->verdict);
    }
    job_free(j);
}

static void log_job(const struct job *j)
{
    const struct afc_hook_result *r = &j->res;
    const char *name = j->argv[1];
    if (j->kind == JOB_PROMOTE && r->outcome != AFC_HOOK_NONE) {
        if (j->verdict.allow) {
            afc_info("hook %s epoch=%s: allowed (%s, %" PRIu64 " ms)", name, j->argv[4], r->message,
                     r->duration_ms);
        } else {
            afc_event("hook-vetoed", "hook=%s epoch=%s reason=\"%s\" result=\"%s\"", name,
                      j->argv[4], j->verdict.reason, r->message);
        }
        return;
    }
    if (r->outcome == AFC_HOOK_OK) {
        afc_info("hook %s role=%s epoch=%s: %s in %" PRIu64 " ms", name, j->argv[2], j->argv[4],
                 r->message, r->duration_ms);
    } else if (r->outcome == AFC_HOOK_FAILED || r->outcome == AFC_HOOK_TIMED_OUT ||
               r->outcome == AFC_HOOK_NOT_RUN) {
        afc_event("hook-failed", "hook=%s role=%s epoch=%s result=%s detail=\"%s\"", name,
                  j->argv[2], j->argv[4], afc_hook_outcome_name(r->outcome), r->message);
    }
}

/* The job is over (ran, or never will): log, queue the caller's callback. */
static void job_finished(struct afc_hooks *h, struct job *j)
{
    if (j->kind == JOB_PROMOTE) {
        decide_verdict(j);
    }
    log_job(j);
    defer(h, &j->dn, job_fire);
}

static void run_cb(struct afc_run *run, const struct afc_run_result *rr, void *data)
{
    struct job *j = data;
    struct afc_hooks *h = j->h;
    (void)run;
    h->runs--;
    describe(j, rr);
    if (h->closing) {
        j->res.outcome = AFC_HOOK_CLOSED;
        snprintf(j->res.message, sizeof j->res.message, "closing: killed");
    }
    if (j->kind == JOB_ROLE) {
        h->role_running = NULL;
        job_finished(h, j);
        struct job *next = h->role_waiting;
        h->role_waiting = NULL;
        if (next != NULL) {
            start_role_job(h, next);
        }
    } else {
        h->promote_running = NULL;
        job_finished(h, j);
    }
    maybe_finish(h);
}

/* Start j's program. One that cannot start ends the job at once (NOT_RUN): false. */
static bool start_job(struct afc_hooks *h, struct job *j)
{
    struct afc_err err = {0};
    struct afc_run_options opt = {.argv = (const char *const *)j->argv,
                                  .env = (const char *const *)j->env,
                                  .env_only = true,
                                  .timeout_ms = j->timeout_ms};
    if (afc_run_start(h->loop, &opt, run_cb, j, &j->run, &err) == 0) {
        h->runs++;
        return true;
    }
    j->res.outcome = AFC_HOOK_NOT_RUN;
    snprintf(j->res.message, sizeof j->res.message, "could not run: %.200s", err.msg);
    job_finished(h, j);
    return false;
}

static void start_role_job(struct afc_hooks *h, struct job *j)
{
    h->role_running = j;
    if (!start_job(h, j)) {
        h->role_running = NULL; /* not started: nothing will end it */
    }
}

static const char *role_event(enum afc_hook_role r)
{
    return r == AFC_HOOK_ROLE_PRIMARY   ? "promoted"
           : r == AFC_HOOK_ROLE_DEMOTED ? "demoted"
                                        : "following";
}

int afc_hooks_role_changed(struct afc_hooks *h, const struct afc_role_change *rc,
                           afc_hook_done_cb cb, void *data)
{
    if (h->closing) {
        return AFC_ESHUTDOWN;
    }
    if (rc == NULL || rc->role == AFC_HOOK_ROLE_UNKNOWN || rc->role > AFC_HOOK_ROLE_DEMOTED ||
        rc->primary_region == NULL) {
        return AFC_EINVAL;
    }
    struct job *j = job_new(h, JOB_ROLE, h->role_program, "on_role_change", rc->role, rc->epoch);
    if (j == NULL || env_add(j, "ARAGORA_EVENT", "%s", role_event(rc->role)) != 0 ||
        env_add(j, "ARAGORA_PREVIOUS_ROLE", "%s", afc_hook_role_name(rc->previous)) != 0 ||
        env_add(j, "ARAGORA_PRIMARY", "%s", rc->primary_region) != 0 ||
        env_add(j, "ARAGORA_PRIMARY_HOST", "%s", rc->primary_host ? rc->primary_host : "") != 0 ||
        env_add(j, "ARAGORA_PRIMARY_PORT", "%u", rc->primary_port) != 0 ||
        env_add(j, "ARAGORA_REASON", "%s", rc->reason ? rc->reason : "") != 0) {
        if (j) {
            job_free(j);
        }
        return AFC_ENOMEM;
    }
    j->done_cb = cb;
    j->data = data;
    if (h->role_program == NULL) {
        j->res.outcome = AFC_HOOK_NONE;
        snprintf(j->res.message, sizeof j->res.message, "no on_role_change program");
        job_finished(h, j);
        return 0;
    }
    if (h->role_running == NULL) {
        start_role_job(h, j);
        return 0;
    }
    if (h->role_waiting != NULL) { /* coalesce: only the latest change waits */
        struct job *old = h->role_waiting;
        old->res.outcome = AFC_HOOK_COALESCED;
        snprintf(old->res.message, sizeof old->res.message,
                 "replaced by a later role change (epoch %" PRIu64 ") before it started",
                 rc->epoch);
        afc_info("hook on_role_change role=%s epoch=%s: coalesced", old->argv[2], old->argv[4]);
        job_finished(h, old);
    }
    h->role_waiting = j;
    return 0;
}

int afc_hooks_pre_promote(struct afc_hooks *h, const struct afc_promote_request *rq,
                          afc_hook_verdict_cb cb, void *data)
{
    if (h->closing) {
        return AFC_ESHUTDOWN;
    }
    if (rq == NULL || cb == NULL) {
        return AFC_EINVAL;
    }
    if (h->promote_running != NULL) {
        return AFC_EALREADY;
    }
    struct job *j = job_new(h, JOB_PROMOTE, h->promote_program, "pre_promote",
                            AFC_HOOK_ROLE_PRIMARY, rq->epoch);
    if (j == NULL || env_add(j, "ARAGORA_EVENT", "pre_promote") != 0 ||
        env_add(j, "ARAGORA_PREVIOUS_ROLE", "replica") != 0 ||
        env_add(j, "ARAGORA_PRIMARY", "%s", h->region) != 0 ||
        env_add(j, "ARAGORA_PRIMARY_HOST", "%s", rq->host ? rq->host : "") != 0 ||
        env_add(j, "ARAGORA_PRIMARY_PORT", "%u", rq->port) != 0 ||
        env_add(j, "ARAGORA_PREVIOUS_PRIMARY", "%s",
                rq->previous_region ? rq->previous_region : "") != 0 ||
        env_add(j, "ARAGORA_REASON", "%s", rq->reason ? rq->reason : "") != 0) {
        if (j) {
            job_free(j);
        }
        return AFC_ENOMEM;
    }
    j->verdict_cb = cb;
    j->data = data;
    if (h->promote_program == NULL) {
        j->res.outcome = AFC_HOOK_NONE;
        snprintf(j->res.message, sizeof j->res.message, "no pre_promote program");
        job_finished(h, j);
        return 0;
    }
    h->promote_running = j;
    if (!start_job(h, j)) {
        h->promote_running = NULL;
    }
    return 0;
}

/* ---- webhooks ---- */

/* splitmix64: the injected-seed generator for the jitter. */
static uint64_t next_random(struct afc_hooks *h)
{
    uint64_t z = (h->rng += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Delay before attempt n+1 after n attempts: base·2^(n-1), capped, jittered into [d/2, d]. */
static uint64_t backoff_delay(struct afc_hooks *h, unsigned attempts)
{
    uint64_t d = h->backoff_ms;
    for (unsigned i = 1; i < attempts && d < h->backoff_max_ms; i++) {
        d *= 2;
    }
    if (d > h->backoff_max_ms) {
        d = h->backoff_max_ms;
    }
    return d / 2 + next_random(h) % (d / 2 + 1);
}

static void notify_fire(struct deferred *d)
{
    struct notify *n = container_of(d, struct notify, dn);
    if (n->cb) {
        n->cb(n->data, &n->rep);
    }
    free(n->body);
    free(n);
}

static void delivery_closed_cb(uv_handle_t *handle)
{
    struct delivery *d = handle->data;
    struct afc_hooks *h = d->n->h;
    struct notify *n = d->n;
    free(d);
    h->deliveries--;
    if (--n->outstanding == 0) {
        defer(h, &n->dn, notify_fire);
    }
    maybe_finish(h);
}

static void delivery_done(struct delivery *d, bool delivered, const char *error)
{
    struct afc_hooks *h = d->n->h;
    struct notify *n = d->n;
    d->done = true;
    n->rep.attempts += d->attempt;
    if (delivered) {
        n->rep.delivered++;
    } else {
        n->rep.failed++;
        snprintf(n->rep.last_error, sizeof n->rep.last_error, "%s", error);
        if (!h->closing) {
            afc_event("webhook-failed", "url=%s event=%s id=%s attempts=%u last=\"%s\"",
                      h->log_urls[d->url], n->event, n->id, d->attempt, error);
        }
    }
    if (d->prev) {
        d->prev->next = d->next;
    } else {
        h->dlist = d->next;
    }
    if (d->next) {
        d->next->prev = d->prev;
    }
    uv_close((uv_handle_t *)&d->timer, delivery_closed_cb);
}

static bool is_retryable(const struct afc_http_response *res)
{
    return res->curl_code != 0 || res->status == 408 || res->status == 425 || res->status == 429 ||
           res->status >= 500;
}

static void attempt_cb(uv_timer_t *t);

static void http_done_cb(void *data, const struct afc_http_response *res)
{
    struct delivery *d = data;
    struct afc_hooks *h = d->n->h;
    char error[AFC_HOOK_MESSAGE_MAX];
    d->call = NULL;
    d->answered = true;
    if (res->curl_code == 0 && res->status >= 200 && res->status < 300) {
        afc_debug("webhook %s event=%s: HTTP %ld after %u attempt(s)", h->log_urls[d->url],
                  d->n->event, res->status, d->attempt);
        delivery_done(d, true, NULL);
        return;
    }
    if (res->curl_code != 0) {
        snprintf(error, sizeof error, "%.200s", res->error);
    } else {
        snprintf(error, sizeof error, "HTTP %ld", res->status);
    }
    if (!is_retryable(res) || d->attempt >= h->attempts) {
        delivery_done(d, false, error);
        return;
    }
    uint64_t delay = backoff_delay(h, d->attempt);
    if (res->retry_after_s >= 0 && (res->status == 429 || res->status == 503)) {
        uint64_t ra = (uint64_t)res->retry_after_s * 1000;
        delay = ra > delay ? (ra < h->backoff_max_ms ? ra : h->backoff_max_ms) : delay;
    }
    afc_debug("webhook %s event=%s attempt %u: %s; next in %" PRIu64 " ms", h->log_urls[d->url],
              d->n->event, d->attempt, error, delay);
    uv_timer_start(&d->timer, attempt_cb, delay, 0);
}

static void attempt_cb(uv_timer_t *t)
{
    struct delivery *d = t->data;
    struct afc_hooks *h = d->n->h;
    struct afc_err err = {0};
    char attempt[16];
    snprintf(attempt, sizeof attempt, "%u", ++d->attempt);
    struct afc_http_request req = {
        .method = "POST",
        .url = h->urls[d->url],
        .headers = {{"Content-Type", "application/json"},
                    {"User-Agent", "aragora-coordinator/" AFC_VERSION},
                    {"X-Aragora-Event", d->n->event},
                    {"X-Aragora-Delivery", d->n->id},
                    {"X-Aragora-Attempt", attempt}},
        .n_headers = 5,
        .body = d->n->body,
        .body_len = strlen(d->n->body),
        .timeout_ms = h->webhook_timeout_ms,
    };
    if (h->auth_header != NULL) {
        req.headers[req.n_headers++] = (struct afc_http_header){"Authorization", h->auth_header};
    }
    d->answered = false;
    struct afc_http_call *call = afc_http_call_start(h->http, &req, http_done_cb, d, &err);
    if (call == NULL) { /* a bad URL or out of memory: retrying will not help */
        delivery_done(d, false, err.msg);
        return;
    }
    /* The client's callback is not expected inside the call; if it ever were, the call is over
     * and must not be cancelled at close. */
    d->call = d->answered ? NULL : call;
}

static void format_time(char *buf, size_t cap)
{
    uv_timeval64_t tv;
    struct tm tm;
    uv_gettimeofday(&tv); /* wall clock: for the receiver's display only */
    time_t s = (time_t)tv.tv_sec;
    gmtime_r(&s, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%03dZ", (int)(tv.tv_usec / 1000));
}

/* The JSON body (docs/hooks.md). NULL when out of memory. */
static char *event_body(struct afc_hooks *h, const struct afc_hook_event *ev, const char *id)
{
    char when[40];
    format_time(when, sizeof when);
    json_t *o = json_object();
    int rv = o ? 0 : -1;
    rv |= json_object_set_new(o, "id", json_string(id));
    rv |= json_object_set_new(o, "event", json_string(ev->event));
    rv |= json_object_set_new(o, "node", json_string(h->region));
    if (ev->epoch != 0) {
        rv |= json_object_set_new(o, "epoch", json_integer((json_int_t)ev->epoch));
    }
    if (ev->primary_region != NULL) {
        rv |= json_object_set_new(o, "primary",
                                  json_pack("{s:s, s:s, s:I}", "region", ev->primary_region, "host",
                                            ev->primary_host ? ev->primary_host : "", "port",
                                            (json_int_t)ev->primary_port));
    }
    if (ev->previous_primary != NULL) {
        rv |= json_object_set_new(o, "previous_primary", json_string(ev->previous_primary));
    }
    if (ev->detail != NULL) {
        rv |= json_object_set_new(o, "detail", json_string(ev->detail));
    }
    rv |= json_object_set_new(o, "time", json_string(when));
    char *body = rv == 0 ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return body;
}

static int start_delivery(struct afc_hooks *h, struct notify *n, unsigned url)
{
    struct delivery *d = calloc(1, sizeof *d);
    if (d == NULL) {
        return AFC_ENOMEM;
    }
    d->n = n;
    d->url = url;
    uv_timer_init(h->loop, &d->timer);
    d->timer.data = d;
    d->next = h->dlist;
    if (h->dlist) {
        h->dlist->prev = d;
    }
    h->dlist = d;
    h->deliveries++;
    n->outstanding++;
    uv_timer_start(&d->timer, attempt_cb, 0, 0); /* the first attempt, from the loop */
    return 0;
}

int afc_hooks_notify(struct afc_hooks *h, const struct afc_hook_event *ev, afc_webhook_done_cb cb,
                     void *data)
{
    if (h->closing) {
        return AFC_ESHUTDOWN;
    }
    if (ev == NULL || ev->event == NULL || ev->event[0] == '\0') {
        return AFC_EINVAL;
    }
    if (h->deliveries + h->n_urls > AFC_HOOKS_MAX_DELIVERIES) {
        afc_warn("webhooks: %u deliveries outstanding; event %s dropped", h->deliveries, ev->event);
        return AFC_ETOOBIG;
    }
    struct notify *n = calloc(1, sizeof *n);
    if (n == NULL) {
        return AFC_ENOMEM;
    }
    uv_timeval64_t tv;
    uv_gettimeofday(&tv);
    snprintf(n->id, sizeof n->id, "%.40s-%" PRId64 "-%" PRIu64, h->region,
             (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000, ++h->seq);
    snprintf(n->event, sizeof n->event, "%s", ev->event);
    n->h = h;
    n->cb = cb;
    n->data = data;
    n->rep.n_urls = h->n_urls;
    if ((n->body = event_body(h, ev, n->id)) == NULL) {
        free(n);
        return AFC_ENOMEM;
    }
    if (h->n_urls == 0) {
        defer(h, &n->dn, notify_fire);
        return 0;
    }
    for (unsigned i = 0; i < h->n_urls; i++) {
        if (start_delivery(h, n, i) != 0) { /* the started ones still report through n */
            n->rep.failed += h->n_urls - i;
            n->rep.n_urls = h->n_urls;
            snprintf(n->rep.last_error, sizeof n->rep.last_error, "out of memory");
            if (i == 0) {
                free(n->body);
                free(n);
                return AFC_ENOMEM;
            }
            break;
        }
    }
    return 0;
}

/* ---- life cycle ---- */

/* "https://hooks.example.com:8443/…": the path of a webhook URL is often its secret. */
static void url_for_log(const char *url, char *buf, size_t cap)
{
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    size_t n = (size_t)(host - url) + strcspn(host, "/?#");
    snprintf(buf, cap, "%.*s%s", (int)(n < cap - 8 ? n : cap - 8), url,
             host[strcspn(host, "/?#")] ? "/…" : "");
}

static char *dup_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? strdup(s) : NULL;
}

static int copy_pass_env(struct afc_hooks *h, const char *const *names)
{
    size_t n = 0;
    names = names ? names : default_pass_env;
    while (names[n] != NULL) {
        n++;
    }
    if (n > PASS_ENV_MAX) {
        return AFC_EINVAL;
    }
    if ((h->pass_env = calloc(n + 1, sizeof *h->pass_env)) == NULL) {
        return AFC_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if ((h->pass_env[i] = strdup(names[i])) == NULL) {
            return AFC_ENOMEM;
        }
    }
    return 0;
}

static int copy_config(struct afc_hooks *h, const struct afc_hooks_config *cfg)
{
    h->region = strdup(cfg->region);
    h->role_program = dup_or_null(cfg->on_role_change);
    h->promote_program = dup_or_null(cfg->pre_promote);
    if (h->region == NULL || (cfg->on_role_change && cfg->on_role_change[0] && !h->role_program) ||
        (cfg->pre_promote && cfg->pre_promote[0] && !h->promote_program)) {
        return AFC_ENOMEM;
    }
    h->role_timeout_ms =
        cfg->on_role_change_timeout_ms ? cfg->on_role_change_timeout_ms : DEFAULT_ROLE_TIMEOUT_MS;
    h->promote_timeout_ms =
        cfg->pre_promote_timeout_ms ? cfg->pre_promote_timeout_ms : DEFAULT_PROMOTE_TIMEOUT_MS;
    h->http = cfg->http;
    for (unsigned i = 0; i < cfg->n_webhook_urls; i++) {
        if ((h->urls[i] = strdup(cfg->webhook_urls[i])) == NULL) {
            return AFC_ENOMEM;
        }
        h->n_urls++;
        url_for_log(h->urls[i], h->log_urls[i], sizeof h->log_urls[i]);
    }
    if (cfg->webhook_token != NULL && cfg->webhook_token[0] != '\0') {
        h->auth_header = malloc(strlen(cfg->webhook_token) + 8);
        if (h->auth_header == NULL) {
            return AFC_ENOMEM;
        }
        sprintf(h->auth_header, "Bearer %s", cfg->webhook_token);
    }
    h->webhook_timeout_ms =
        cfg->webhook_timeout_ms ? cfg->webhook_timeout_ms : DEFAULT_WEBHOOK_TIMEOUT_MS;
    h->attempts = cfg->webhook_attempts ? cfg->webhook_attempts : DEFAULT_WEBHOOK_ATTEMPTS;
    h->backoff_ms = cfg->webhook_backoff_ms ? cfg->webhook_backoff_ms : DEFAULT_BACKOFF_MS;
    h->backoff_max_ms =
        cfg->webhook_backoff_max_ms ? cfg->webhook_backoff_max_ms : DEFAULT_BACKOFF_MAX_MS;
    if (h->backoff_max_ms < h->backoff_ms) {
        h->backoff_max_ms = h->backoff_ms;
    }
    h->rng = cfg->seed ? cfg->seed : uv_hrtime();
    return copy_pass_env(h, cfg->pass_env);
}

static void free_partial(struct afc_hooks *h)
{
    free(h->region);
    free(h->role_program);
    free(h->promote_program);
    for (char **e = h->pass_env; e && *e; e++) {
        free(*e);
    }
    free(h->pass_env);
    for (unsigned i = 0; i < h->n_urls; i++) {
        free(h->urls[i]);
    }
    free(h->auth_header);
    free(h);
}

int afc_hooks_new(uv_loop_t *loop, const struct afc_hooks_config *cfg, struct afc_hooks **out,
                  struct afc_err *err)
{
    if (cfg == NULL || cfg->region == NULL || cfg->region[0] == '\0') {
        return afc_err_set(err, AFC_EINVAL, "hooks: no region");
    }
    if (cfg->n_webhook_urls > AFC_HOOKS_MAX_WEBHOOKS) {
        return afc_err_set(err, AFC_EINVAL, "hooks: more than %d webhooks", AFC_HOOKS_MAX_WEBHOOKS);
    }
    if (cfg->n_webhook_urls > 0 && cfg->http == NULL) {
        return afc_err_set(err, AFC_EINVAL, "hooks: webhooks need an HTTP client");
    }
    struct afc_hooks *h = calloc(1, sizeof *h);
    if (h == NULL) {
        return afc_err_set(err, AFC_ENOMEM, "hooks: out of memory");
    }
    h->loop = loop;
    int rv = copy_config(h, cfg);
    if (rv != 0) {
        free_partial(h);
        return afc_err_set(err, rv, "hooks: %s", afc_strerror(rv));
    }
    uv_timer_init(loop, &h->defer_timer);
    h->defer_timer.data = h;
    *out = h;
    return 0;
}

void afc_hooks_close(struct afc_hooks *h, void (*done)(void *arg), void *arg)
{
    if (h->closing) {
        return;
    }
    h->closing = true;
    h->done = done;
    h->done_arg = arg;
    if (h->role_waiting != NULL) {
        struct job *w = h->role_waiting;
        h->role_waiting = NULL;
        w->res.outcome = AFC_HOOK_CLOSED;
        snprintf(w->res.message, sizeof w->res.message, "closing: not started");
        job_finished(h, w);
    }
    /* Running programs are killed; their run_cb answers CLOSED once they are gone. */
    struct job *running[2] = {h->role_running, h->promote_running};
    for (unsigned i = 0; i < 2; i++) {
        if (running[i] != NULL) {
            afc_info("hooks: closing, killing %s", running[i]->argv[1]);
            afc_run_kill(running[i]->run);
        }
    }
    for (struct delivery *d = h->dlist, *next; d != NULL; d = next) {
        next = d->next;
        if (d->call != NULL) {
            afc_http_cancel(d->call);
            d->call = NULL;
        }
        d->n->rep.closed = true;
        delivery_done(d, false, "closing");
    }
    uv_timer_start(&h->defer_timer, defer_cb, 0, 0); /* finishes when nothing is left */
}
