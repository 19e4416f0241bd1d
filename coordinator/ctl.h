/*
 * Private declarations shared by aragoractl's files: aragoractl.c (command line, status, leader,
 * pause/resume, version), ctl_http.c (requests against the endpoint list, errors, token) and
 * ctl_ops.c (history, explain, plan, drain/undrain, switchover, failover, promote-region).
 *
 * Exit codes (documented in --help and docs/operations.md): 0 ok, 1 failed (including an HTTP
 * error from the server), 2 usage (including a destructive command without confirmation), 3 no
 * endpoint reachable.
 */
#ifndef AFC_CTL_H
#define AFC_CTL_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>
#include <jansson.h>

#ifndef AFC_VERSION
#define AFC_VERSION "unknown"
#endif

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

#define CTL_MAX_ENDPOINTS      16
#define CTL_CONNECT_TIMEOUT_MS 1000L
#define CTL_TOTAL_TIMEOUT_MS   5000L
#define CTL_PEEK_TIMEOUT_MS    1500L /* asking each member for its own view in `status` */
#define CTL_MAX_BODY           (4u << 20)
#define CTL_DEFAULT_ENDPOINTS  "http://127.0.0.1:21000,http://127.0.0.1:21010,http://127.0.0.1:21020"

struct ctl {
    char *endpoints[CTL_MAX_ENDPOINTS];
    unsigned n_endpoints;
    const char *token_file;  /* --token-file */
    const char *reason;      /* pause/drain-region --reason */
    const char *to;          /* switchover/failover --to */
    const char *assume_dead; /* plan --assume-dead */
    const char *arg;         /* the command's region argument (drain-region R, ...) */
    bool force;              /* failover --force */
    bool yes;                /* skip the confirmation of destructive commands */
    bool json;               /* status --json */
    unsigned watch_ms;       /* status --watch[=SECONDS]: refresh until interrupted (0 = once) */
    bool verbose;            /* -v: say which endpoint was tried */
};

/* One HTTP answer. body is NUL-terminated and owned by the response. */
struct response {
    long status;
    char *body;
    size_t len;
    const char *endpoint; /* borrowed from struct ctl */
};

/* ---- ctl_http.c ---- */

/* One attempt against one endpoint. Returns the curl code; fills r on CURLE_OK. */
CURLcode ctl_request_one(const char *endpoint, const char *method, const char *path,
                         const char *body, const char *token, struct response *r, long total_ms);
/* METHOD PATH against the first endpoint that answers. EXIT_OK with r filled (any HTTP status),
 * EXIT_UNREACHABLE when none answered, EXIT_FAILED on another transport error. */
int ctl_request(const struct ctl *ctl, const char *method, const char *path, const char *body,
                const char *token, struct response *r);
/* Print the server's JSON error (or the raw body) for a non-2xx answer. Returns EXIT_FAILED. */
int ctl_report_http_error(const struct response *r);
/* GET a JSON object. On EXIT_OK *out is a new reference and r->body must be freed. */
int ctl_get_json(const struct ctl *ctl, const char *path, json_t **out, struct response *r);
const char *ctl_str_or(json_t *o, const char *key, const char *dflt);
long long ctl_int_or(json_t *o, const char *key, long long dflt);
/* --token-file, then ARAGORA_API_TOKEN, then ARAGORA_API_TOKEN_FILE; "" when none. 0 or -1. */
int ctl_load_token(const struct ctl *ctl, char *buf, size_t size);

/* ---- ctl_ops.c ---- */

/* Is `cmd` one of ctl_ops.c's commands? */
bool ctl_ops_has(const char *cmd);
/* Run one of them (ctl_ops_has(cmd) is true). Returns an exit code. */
int ctl_ops_run(const struct ctl *ctl, const char *cmd);

#endif
