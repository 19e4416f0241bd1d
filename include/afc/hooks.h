/*
 * Operator hooks (ARCHITECTURE.md §5 step 5; docs/hooks.md): programs the operator configures
 * and webhooks, run when this node's role changes and before it promotes.
 *
 *   on_role_change  asynchronous, fire-and-forget (Patroni's callback): run when this node's
 *                   PostgreSQL was promoted, demoted (fenced), or follows a new primary. At most
 *                   one runs at a time; while it runs only the latest further change waits
 *                   (coalesced), so a burst of changes never piles up processes.
 *   pre_promote     synchronous for the failover sequence (Patroni's pre_promote, orchestrator's
 *                   PreFailoverProcesses): the caller waits for the verdict before pg_promote.
 *                   Exit 0 allows; anything else — a non-zero exit, a signal, the timeout, a
 *                   program that cannot be started — vetoes, with a reason.
 *   webhooks        a JSON POST of an event to every configured URL, retried with exponential
 *                   backoff and jitter up to a bounded number of attempts.
 *
 * Programs run through afc_run (include/afc/run.h): spawned on the loop without a shell, stdout
 * and stderr captured (the last 4 KiB), killed with their whole process group at their timeout.
 * They are called like Patroni's callbacks, with positional arguments
 *
 *     <program> on_role_change <role> <region> <epoch>
 *     <program> pre_promote primary <region> <epoch>
 *
 * and ARAGORA_* environment variables (docs/hooks.md has the table). They do NOT inherit the
 * daemon's environment — it may hold secrets (REDIS_URL, DNS credentials, the API token) — only
 * PATH, HOME, LANG, LC_ALL, LC_CTYPE, TZ, TMPDIR, USER, LOGNAME, or the names in `pass_env`.
 *
 * Nothing here blocks the loop or waits for a hook: a hook that hangs is killed at its timeout, a
 * webhook receiver that is down costs timers, not time.
 *
 * Callbacks (libuv's rule): if a function returns an error, its callback never runs; if it returns
 * 0, the callback (when not NULL) runs exactly once, from the loop, never from inside the call.
 */
#ifndef AFC_HOOKS_H
#define AFC_HOOKS_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "afc/error.h"

struct afc_http_client; /* afc/http_client.h */

#define AFC_HOOKS_MAX_WEBHOOKS   8
#define AFC_HOOKS_MAX_DELIVERIES 64 /* webhook deliveries outstanding (each URL of each event) */
#define AFC_HOOK_MESSAGE_MAX     256

/* X(name, text): this node's role, as hooks are told. */
#define AFC_HOOK_ROLES(X)                                                                          \
    X(AFC_HOOK_ROLE_UNKNOWN, "unknown")                                                            \
    X(AFC_HOOK_ROLE_PRIMARY, "primary") /* promoted: accepts writes for the epoch */               \
    X(AFC_HOOK_ROLE_REPLICA, "replica") /* follows the epoch's primary */                          \
    X(AFC_HOOK_ROLE_DEMOTED, "demoted") /* was primary, fenced: stopped or read-only */

enum afc_hook_role {
#define AFC_HOOK_ROLE_ENUM(name, text) name,
    AFC_HOOK_ROLES(AFC_HOOK_ROLE_ENUM)
#undef AFC_HOOK_ROLE_ENUM
};

/* X(name, text): how a hook run ended. */
#define AFC_HOOK_OUTCOMES(X)                                                                       \
    X(AFC_HOOK_OK, "ok")               /* exit 0 */                                                \
    X(AFC_HOOK_FAILED, "failed")       /* non-zero exit, or killed by a signal not ours */         \
    X(AFC_HOOK_TIMED_OUT, "timed-out") /* killed (SIGKILL, process group) at its timeout */        \
    X(AFC_HOOK_NOT_RUN, "not-run") /* could not be started (no such program, not executable) */    \
    X(AFC_HOOK_NONE, "none")       /* no program configured: nothing ran */                        \
    X(AFC_HOOK_COALESCED, "coalesced") /* replaced by a later role change before it started */     \
    X(AFC_HOOK_CLOSED, "closed")       /* afc_hooks_close() came first (a running hook is killed) */

enum afc_hook_outcome {
#define AFC_HOOK_OUTCOME_ENUM(name, text) name,
    AFC_HOOK_OUTCOMES(AFC_HOOK_OUTCOME_ENUM)
#undef AFC_HOOK_OUTCOME_ENUM
};

const char *afc_hook_role_name(enum afc_hook_role r);       /* "primary", ...; "unknown" */
const char *afc_hook_outcome_name(enum afc_hook_outcome o); /* "ok", ...; "unknown" */

struct afc_hook_result {
    enum afc_hook_outcome outcome;
    int64_t exit_status; /* when the program exited */
    int term_signal;     /* the signal that ended it, 0 if none */
    uint64_t duration_ms;
    char first_line[AFC_HOOK_MESSAGE_MAX]; /* first non-empty line of its output (last 4 KiB) */
    char message[AFC_HOOK_MESSAGE_MAX]; /* "exit 1: <first line>", "timed out after 500 ms", ... */
};

/* The pre_promote verdict. */
struct afc_hook_verdict {
    bool allow;
    char reason[AFC_HOOK_MESSAGE_MAX]; /* veto: the first line of the output, "exit 1", "timed out
                                          after 10000 ms", "could not run: ..."; allow: "" */
    struct afc_hook_result run;
};

struct afc_hooks_config {
    const char *region; /* this node's region (argument 3, ARAGORA_REGION); copied; required */
    /* Programs: a path (or a name found in PATH), no shell, no arguments of its own; copied.
     * NULL or "" = none. */
    const char *on_role_change;
    unsigned on_role_change_timeout_ms; /* 0 = 30000 */
    const char *pre_promote;
    unsigned pre_promote_timeout_ms; /* 0 = 10000 */
    /* Names of daemon environment variables the programs also get; NULL = the default list
     * (PATH HOME LANG LC_ALL LC_CTYPE TZ TMPDIR USER LOGNAME). At most 16. Copied. */
    const char *const *pass_env;
    /* Webhooks: JSON POST to each URL (http:// or https://, copied). */
    struct afc_http_client *http; /* borrowed; required when there are webhooks; must outlive
                                     the hooks (close the hooks first) */
    const char *webhook_urls[AFC_HOOKS_MAX_WEBHOOKS];
    unsigned n_webhook_urls;
    const char *webhook_token;   /* "Authorization: Bearer <token>"; NULL = none. Never logged */
    unsigned webhook_timeout_ms; /* per attempt; 0 = 5000 */
    unsigned webhook_attempts;   /* total attempts per URL, first included; 0 = 5 */
    unsigned webhook_backoff_ms; /* delay before the second attempt; 0 = 500 */
    unsigned webhook_backoff_max_ms; /* cap of the doubling; 0 = 30000 */
    uint64_t seed;                   /* jitter generator seed; 0 = from the clock */
};

/* A role change of this node. Strings are copied. */
struct afc_role_change {
    enum afc_hook_role role;     /* the new role */
    enum afc_hook_role previous; /* AFC_HOOK_ROLE_UNKNOWN when not known */
    uint64_t epoch;              /* the epoch that made it so */
    const char *primary_region;  /* the epoch's primary (this region when role is primary) */
    const char *primary_host;    /* where clients reach it; NULL = "" */
    unsigned primary_port;
    const char *reason; /* free text for the operator ("failover: lease expired"); NULL = "" */
};

/* The promotion this node is about to make. Strings are copied. */
struct afc_promote_request {
    uint64_t epoch;              /* the epoch of the failover (or switchover) */
    const char *previous_region; /* the old primary; NULL = "" */
    const char *host;            /* this node's PostgreSQL as clients will reach it; NULL = "" */
    unsigned port;
    const char *reason; /* NULL = "" */
};

/* A webhook event. Strings are copied. docs/hooks.md has the JSON. */
struct afc_hook_event {
    const char *event;          /* "primary-changed", "failover-decided", ...; required */
    uint64_t epoch;             /* 0 = not sent */
    const char *primary_region; /* NULL = no "primary" object */
    const char *primary_host;
    unsigned primary_port;
    const char *previous_primary; /* NULL = not sent */
    const char *detail;           /* NULL = not sent */
};

/* Once every URL of an event was delivered or given up. */
struct afc_webhook_report {
    unsigned n_urls;
    unsigned delivered; /* answered 2xx */
    unsigned failed;    /* gave up: attempts used up, a permanent answer (4xx but 408/425/429),
                           or closed */
    unsigned attempts;  /* over all URLs */
    bool closed;        /* afc_hooks_close() ended some deliveries */
    char last_error[AFC_HOOK_MESSAGE_MAX]; /* of the last failed attempt, "" if none */
};

typedef void (*afc_hook_done_cb)(void *data, const struct afc_hook_result *res);
typedef void (*afc_hook_verdict_cb)(void *data, const struct afc_hook_verdict *v);
typedef void (*afc_webhook_done_cb)(void *data, const struct afc_webhook_report *rep);

struct afc_hooks;

/* Errors: AFC_EINVAL (no region; webhooks without an http client; more than
 * AFC_HOOKS_MAX_WEBHOOKS URLs; more than 16 pass_env names), AFC_ENOMEM. The hooks own one uv
 * timer (and one per webhook delivery); close them with afc_hooks_close() before the loop. */
int afc_hooks_new(uv_loop_t *loop, const struct afc_hooks_config *cfg, struct afc_hooks **out,
                  struct afc_err *err);

/*
 * Kill the running programs, cancel webhook deliveries, and answer everything still waiting
 * (outcome CLOSED; a pre_promote verdict is a veto "closing"); once every handle is closed and
 * every run has ended, `done` (may be NULL) runs and the hooks are freed. Calls after close
 * return AFC_ESHUTDOWN. May be called from inside a hooks callback.
 */
void afc_hooks_close(struct afc_hooks *h, void (*done)(void *arg), void *arg);

/*
 * Run on_role_change for `rc`. If it is running, `rc` waits; a later call replaces a waiting
 * one (whose cb gets COALESCED). cb (may be NULL) gets the run's result (NONE when no program is
 * configured). Failures are logged as +hook-failed. Errors: AFC_EINVAL (role UNKNOWN, no primary
 * region), AFC_ESHUTDOWN, AFC_ENOMEM.
 */
int afc_hooks_role_changed(struct afc_hooks *h, const struct afc_role_change *rc,
                           afc_hook_done_cb cb, void *data);

/*
 * Ask pre_promote. cb gets the verdict within pre_promote_timeout_ms (plus the kill): allow when
 * it exits 0 or no program is configured; otherwise a veto with its reason, logged as
 * +hook-vetoed. What a veto does to the failover is the caller's decision (docs/hooks.md).
 * Errors: AFC_EALREADY (a pre_promote is running), AFC_ESHUTDOWN, AFC_ENOMEM; cb is required.
 */
int afc_hooks_pre_promote(struct afc_hooks *h, const struct afc_promote_request *rq,
                          afc_hook_verdict_cb cb, void *data);

/*
 * POST `ev` as JSON to every webhook URL, each retried on its own (transport error, 408, 425,
 * 429, 5xx) after webhook_backoff_ms · 2^(n-1), capped, jittered into [d/2, d], at least the
 * Retry-After of a 429/503, up to webhook_attempts attempts. A URL that gives up is logged as
 * +webhook-failed. cb (may be NULL) gets the report once all URLs are done (at once, with
 * n_urls 0, when none is configured). Errors: AFC_EINVAL (no event name), AFC_ETOOBIG (more than
 * AFC_HOOKS_MAX_DELIVERIES deliveries would be outstanding: receivers are not keeping up),
 * AFC_ESHUTDOWN, AFC_ENOMEM.
 */
int afc_hooks_notify(struct afc_hooks *h, const struct afc_hook_event *ev, afc_webhook_done_cb cb,
                     void *data);

#endif
