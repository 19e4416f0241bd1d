/*
 * Private declarations shared by the HTTP API files (http.c, api.c, forward.c, json.c).
 *
 * Data flow: http.c owns libmicrohttpd on the daemon's uv loop and turns each complete request
 * (headers + body of at most HTTP_BODY_MAX bytes) into one call of api_dispatch(). api.c routes it
 * and either answers at once (http_reply) or goes asynchronous (http_suspend) and answers later
 * from a proposal callback or a forward completion. forward.c forwards to the leader through the
 * HTTP client (http_client.c: libcurl's multi interface on the same loop). json.c builds the
 * bodies. Everything runs on the loop thread; nothing blocks.
 */
#ifndef AFC_HTTP_INTERNAL_H
#define AFC_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

struct afc_daemon;

#define HTTP_BODY_MAX       (64 * 1024) /* request bodies larger than this get 413 */
#define HTTP_FWD_TIMEOUT_MS 5000        /* whole forwarded request */
#define HTTP_FWD_CONNECT_MS 2000
#define HTTP_FWD_RESP_MAX   (64 * 1024) /* a leader's answer larger than this is a bad answer */
#define HTTP_FORWARDED_HDR  "X-Aragora-Forwarded"

/* ---- one request (http.c) ---- */

struct http_req;

/* Called by http.c when a request that went asynchronous ends without being answered (client gone,
 * daemon stopping). The owner must drop every pointer to `r`; `r` is freed right after. */
typedef void (*http_abort_fn)(struct http_req *r, void *arg);

struct afc_daemon *http_req_daemon(const struct http_req *r);
const char *http_req_method(const struct http_req *r);
const char *http_req_path(const struct http_req *r);
/* Header value (case-insensitive name) or NULL. Borrowed: valid until the request ends. */
const char *http_req_header(const struct http_req *r, const char *name);
/* A query-string argument (?name=value, decoded) or NULL. Borrowed: valid until the request ends.
 */
const char *http_req_query(const struct http_req *r, const char *name);
/* The accumulated body (not NUL-terminated; NULL if empty). Borrowed. */
const char *http_req_body(const struct http_req *r, size_t *len);
/* The daemon's forwarder (forward.c), for api.c. */
struct fwd_multi *http_fwd(const struct http_req *r);
/* The same, from the daemon (report.c); NULL before the API started or after it stopped. */
struct fwd_multi *http_daemon_fwd(const struct afc_daemon *d);

/* Answer. `body` is transferred (malloc'd, freed by http.c, may be NULL for empty). `ctype` is
 * borrowed (a string literal). Only the first answer counts; later ones are freed and ignored. If
 * the request is suspended it is resumed. */
void http_reply(struct http_req *r, unsigned status, char *body, size_t len, const char *ctype);
/* Answer with a JSON document; `doc` is transferred (json_decref'd). Out of memory → 500. */
void http_reply_json(struct http_req *r, unsigned status, json_t *doc);
/* Answer {"error":code,"message":message}. */
void http_reply_error(struct http_req *r, unsigned status, const char *code, const char *message);
/* Extra response header for the coming answer (e.g. Allow, WWW-Authenticate). Both borrowed
 * literals. At most HTTP_EXTRA_HDRS. */
#define HTTP_EXTRA_HDRS 4
void http_add_header(struct http_req *r, const char *name, const char *value);

/* Go asynchronous: the connection is suspended until http_reply. `abort_fn(r, arg)` runs instead if
 * the request ends first. Call only from api_dispatch. */
void http_suspend(struct http_req *r, http_abort_fn abort_fn, void *arg);

/* Number of answers per status code, for /metrics. i in [0, n); returns n. */
unsigned http_status_count(const struct afc_daemon *d, unsigned i, unsigned *code, uint64_t *count);

/* ---- routing and handlers (api.c) ---- */

/* Handle one complete request: reply synchronously or http_suspend. Never fails. */
void api_dispatch(struct http_req *r);
/* For handlers of mutating endpoints (api.c): false after answering 401 (bearer token). */
bool api_authorized(struct http_req *r);
/* true on the ready leader; otherwise answers (forwards to the leader, or 503) and returns false.
 */
bool api_on_leader(struct http_req *r);

/* POST /v1/internal/propose (api_internal.c). */
void api_internal_propose(struct http_req *r);

/* ---- failover views (api_failover.c) ---- */

struct afc_pg_obs;
struct afc_failover;
struct afc_state;
json_t *api_pg_obs_json(const struct afc_pg_obs *o); /* null if not valid */
/* null if none ever ran; s names the members of the per-region times */
json_t *api_failover_json(const struct afc_state *s, const struct afc_failover *f);
json_t *api_failovers_json(const struct afc_state *s); /* receipts, oldest first */
/* Add "postgres", "lease" and "failover" to a /v1/cluster document. */
void api_cluster_add_failover(const struct afc_daemon *d, json_t *doc);
/* GET /v1/decision[?assume_dead=R] */
void api_decision(struct http_req *r);

/* POST /v1/drain (api_drain.c) */
void api_drain(struct http_req *r);

/* ---- actions and role probes (api_actions.c) ---- */
void api_switchover(struct http_req *r); /* POST /v1/switchover */
void api_failover(struct http_req *r);   /* POST /v1/failover */
void api_primary(struct http_req *r);    /* GET /primary */
void api_replica(struct http_req *r);    /* GET /replica[?lag=] */

/* ---- forwarding to the leader (forward.c) ---- */

struct fwd_multi;
struct fwd_req;

struct fwd_result {
    int curl_code;     /* CURLcode; 0 = the leader answered */
    bool timed_out;    /* CURLE_OPERATION_TIMEDOUT */
    bool connect_fail; /* could not resolve or connect: nothing was sent */
    long status;       /* the leader's HTTP status (curl_code == 0) */
    const char *body;  /* the leader's body, borrowed for the duration of the callback */
    size_t len;
    const char *error; /* curl's message (curl_code != 0) */
};

typedef void (*fwd_cb)(void *arg, const struct fwd_result *res);

/* Create the curl multi handle and its uv timer on `loop`. NULL on failure. */
struct fwd_multi *fwd_multi_new(uv_loop_t *loop);
/* Abort every transfer (their callbacks never run), close the uv handles, free; cb(arg) once all
 * handles are closed. */
void fwd_multi_close(struct fwd_multi *m, void (*cb)(void *arg), void *arg);

/* POST `body` to `url` with the given Authorization header value (may be NULL) and
 * X-Aragora-Forwarded: 1. Copies everything. No redirects followed, no proxy, 5 s timeout. On
 * success returns the transfer and cb runs exactly once (unless fwd_cancel); NULL on failure (cb
 * never runs). */
struct fwd_req *fwd_post(struct fwd_multi *m, const char *url, const char *authorization,
                         const char *body, size_t len, fwd_cb cb, void *arg);
/* Abort a transfer; its callback never runs. */
void fwd_cancel(struct fwd_req *f);

/* ---- JSON helpers (json.c) ---- */

/* {"error":code,"message":message}; NULL on OOM. */
json_t *json_error_new(const char *code, const char *message);
/* Serialise compactly with a trailing newline. Returns malloc'd text, *len set; NULL on OOM. */
char *json_render(const json_t *doc, size_t *len);
/* json_string or json_null when s is NULL or empty. */
json_t *json_string_or_null(const char *s);
/* json_string, with bytes of invalid UTF-8 replaced by '?' instead of failing. */
json_t *json_string_lossy(const char *s);
/* ISO-8601 UTC with milliseconds, "1970-01-01T00:00:00.000Z". */
void json_format_time(int64_t wall_ms, char *buf, size_t len);
/* Parse an optional pause/resume body: empty → reason "" ; a JSON object whose optional "reason"
 * is a string of < cap bytes. Returns 0, or -1 with *why set to a static message. */
int json_parse_reason(const char *body, size_t len, char *reason, size_t cap, const char **why);

#endif
