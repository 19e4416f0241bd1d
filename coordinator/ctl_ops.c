/*
 * aragoractl's failover commands: history, explain, plan --assume-dead R, drain-region R,
 * undrain-region R, switchover --to R, failover --to R [--force], promote-region R.
 *
 * Reads (explain, plan) go to the Raft leader — found through /v1/cluster — because only the
 * ready leader's decision is the one that acts; a follower's says "leader-ready: no". Writes go
 * through ctl_request like pause/resume (a follower forwards them to the leader).
 *
 * Destructive commands (switchover, failover, promote-region, drain-region) ask the operator to
 * type the region name on a terminal unless --yes; without a terminal and without --yes they exit
 * 2 (usage) before sending anything.
 */
#define _GNU_SOURCE /* timegm */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "coordinator/ctl.h"

/* ---- helpers ---- */

/* The leader's API URL as the cluster document names it, else NULL (borrowed from `cluster`). */
static const char *leader_url(json_t *cluster)
{
    return json_string_value(json_object_get(json_object_get(cluster, "leader"), "api_url"));
}

/* GET `path` from the leader (the answering node if no leader is known or it cannot be reached). */
static int get_from_leader(const struct ctl *ctl, const char *path, json_t **out)
{
    struct response r;
    json_t *cluster = NULL;
    int rc = ctl_get_json(ctl, "/v1/cluster", &cluster, &r);
    if (rc != EXIT_OK) {
        return rc;
    }
    free(r.body);
    struct ctl one = *ctl;
    const char *url = leader_url(cluster);
    char *copy = url != NULL ? strdup(url) : NULL;
    if (copy != NULL) { /* the leader first, then the configured endpoints */
        memmove(&one.endpoints[1], &one.endpoints[0],
                sizeof one.endpoints[0] * (CTL_MAX_ENDPOINTS - 1));
        one.endpoints[0] = copy;
        one.n_endpoints =
            ctl->n_endpoints < CTL_MAX_ENDPOINTS ? ctl->n_endpoints + 1 : CTL_MAX_ENDPOINTS;
    }
    json_decref(cluster);
    rc = ctl_get_json(&one, path, out, &r);
    if (rc == EXIT_OK) {
        free(r.body);
    }
    free(copy);
    return rc;
}

/* POST a JSON body with the token; prints errors. On EXIT_OK *answer is the 2xx JSON answer (a
 * new reference, may be NULL if not JSON). */
static int post_json(const struct ctl *ctl, const char *path, json_t *body, json_t **answer)
{
    char token[512];
    struct response r;
    *answer = NULL;
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL || ctl_load_token(ctl, token, sizeof token) != 0) {
        free(text);
        return EXIT_FAILED;
    }
    if (token[0] == '\0') {
        fprintf(stderr, "aragoractl: warning: no API token given (--token-file, "
                        "ARAGORA_API_TOKEN or ARAGORA_API_TOKEN_FILE)\n");
    }
    int rc = ctl_request(ctl, "POST", path, text, token, &r);
    free(text);
    if (rc != EXIT_OK) {
        return rc;
    }
    if (r.status < 200 || r.status > 299) {
        rc = ctl_report_http_error(&r);
    } else {
        *answer = json_loadb(r.body != NULL ? r.body : "", r.len, 0, NULL);
    }
    free(r.body);
    return rc;
}

/*
 * Destructive commands: on a terminal, the operator types the region name; otherwise --yes is
 * required. Returns EXIT_OK to go on, EXIT_USAGE (no terminal, no --yes) or EXIT_FAILED (typed
 * something else).
 */
static int confirm(const struct ctl *ctl, const char *what, const char *region)
{
    char line[128];
    if (ctl->yes) {
        return EXIT_OK;
    }
    if (!isatty(STDIN_FILENO)) {
        fprintf(stderr,
                "aragoractl: %s is destructive: run it on a terminal to confirm, or pass --yes\n",
                what);
        return EXIT_USAGE;
    }
    printf("%s\ntype the region name to confirm: ", what);
    fflush(stdout);
    if (fgets(line, sizeof line, stdin) == NULL) {
        line[0] = '\0';
    }
    line[strcspn(line, "\r\n")] = '\0';
    if (strcmp(line, region) != 0) {
        fprintf(stderr, "aragoractl: not confirmed (typed \"%s\", expected \"%s\"): nothing done\n",
                line, region);
        return EXIT_FAILED;
    }
    return EXIT_OK;
}

/* "2026-11-26T13:40:22.123Z" -> ms since the epoch; -1 if absent or unparsable. */
static long long parse_time_ms(json_t *v)
{
    const char *s = json_string_value(v);
    struct tm tm;
    int ms = 0;
    memset(&tm, 0, sizeof tm);
    if (s == NULL || sscanf(s, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                            &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7) {
        return -1;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (long long)timegm(&tm) * 1000 + ms;
}

/* "1234 ms" between two receipt times, or "-". */
static void fmt_span(json_t *times, const char *a, const char *b, char *buf, size_t cap)
{
    long long ta = parse_time_ms(json_object_get(times, a));
    long long tb = parse_time_ms(json_object_get(times, b));
    if (ta < 0 || tb < 0) {
        snprintf(buf, cap, "-");
    } else {
        snprintf(buf, cap, "%lld ms", tb - ta);
    }
}

/* ---- history ---- */

static void print_receipt(json_t *f)
{
    static const char *const steps[] = {"detected", "decided", "fenced", "promoted",
                                        "routed",   "done",    "aborted"};
    json_t *times = json_object_get(f, "times");
    char to_promoted[32], to_done[32], move[80];
    fmt_span(times, "decided", "promoted", to_promoted, sizeof to_promoted);
    fmt_span(times, "detected", "done", to_done, sizeof to_done);
    snprintf(move, sizeof move, "%s -> %s", ctl_str_or(f, "from", "none"),
             ctl_str_or(f, "to", "?"));
    printf("%-6lld %-28s %-9s %-12s %-12s %s%s%s\n", ctl_int_or(f, "epoch", 0), move,
           ctl_str_or(f, "step", "?"), to_promoted, to_done,
           json_is_true(json_object_get(f, "planned")) ? "[switchover] " : "",
           json_is_true(json_object_get(f, "forced")) ? "[forced] " : "",
           ctl_str_or(f, "reason", ""));
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        const char *t = json_string_value(json_object_get(times, steps[k]));
        if (t != NULL) {
            printf("       %-9s %s\n", steps[k], t);
        }
    }
    const char *name;
    json_t *t;
    json_object_foreach(json_object_get(times, "published"), name, t)
    {
        if (json_is_string(t)) {
            printf("       %-9s %s  (%s's Redis)\n", "published", json_string_value(t), name);
        }
    }
}

static int cmd_history(const struct ctl *ctl)
{
    struct response r;
    json_t *doc = NULL;
    int rc = ctl_get_json(ctl, "/v1/history", &doc, &r);
    if (rc != EXIT_OK) {
        return rc;
    }
    json_t *fos = json_object_get(doc, "failovers"), *events = json_object_get(doc, "events");
    size_t i;
    json_t *f;
    printf("%-6s %-28s %-9s %-12s %-12s %s\n", "EPOCH", "FROM -> TO", "STEP", "DECIDED>PROM",
           "DETECT>DONE", "REASON");
    json_array_foreach(fos, i, f)
    {
        print_receipt(f);
    }
    if (json_array_size(fos) == 0) {
        printf("(no failover yet)\n");
    }
    size_t n = json_array_size(events), first = n > 15 ? n - 15 : 0;
    printf("\nlast events:\n");
    for (i = first; i < n; i++) {
        json_t *e = json_array_get(events, i);
        printf("  %-24s %-18s %s\n", ctl_str_or(e, "time", "?"), ctl_str_or(e, "kind", "?"),
               ctl_str_or(e, "detail", ""));
    }
    json_decref(doc);
    free(r.body);
    return EXIT_OK;
}

/* ---- explain and plan ---- */

static void print_predicates(json_t *dec)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(dec, "predicates"), i, p)
    {
        printf("  %s %-26s %s\n", json_is_true(json_object_get(p, "ok")) ? "\u2713" : "\u2717",
               ctl_str_or(p, "name", "?"), ctl_str_or(p, "value", ""));
    }
}

/* The value of the predicate named `name`, or "". */
static const char *pred_value(json_t *dec, const char *name)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(dec, "predicates"), i, p)
    {
        if (strcmp(ctl_str_or(p, "name", ""), name) == 0) {
            return ctl_str_or(p, "value", "");
        }
    }
    return "";
}

static int cmd_explain(const struct ctl *ctl)
{
    json_t *dec = NULL;
    int rc = get_from_leader(ctl, "/v1/decision", &dec);
    if (rc != EXIT_OK) {
        return rc;
    }
    const char *blocking = ctl_str_or(dec, "blocking", NULL);
    printf("decision on %s: %s", ctl_str_or(dec, "region", "?"), ctl_str_or(dec, "action", "?"));
    if (json_is_string(json_object_get(dec, "to"))) {
        printf(" (%s -> %s)", ctl_str_or(dec, "from", "none"), ctl_str_or(dec, "to", "?"));
    }
    printf("\n");
    if (blocking != NULL) {
        printf("blocked by: %s (%s)\n", blocking, pred_value(dec, blocking));
    } else {
        printf("blocked by: nothing\n");
    }
    print_predicates(dec);
    json_decref(dec);
    return EXIT_OK;
}

/* The leader's what-if decision for `region` (GET /v1/decision?assume_dead=R). */
static int get_plan(const struct ctl *ctl, const char *region, json_t **dec)
{
    char path[160];
    char *esc = curl_easy_escape(NULL, region, 0);
    if (esc == NULL) {
        return EXIT_FAILED;
    }
    snprintf(path, sizeof path, "/v1/decision?assume_dead=%s", esc);
    curl_free(esc);
    return get_from_leader(ctl, path, dec);
}

static int cmd_plan(const struct ctl *ctl)
{
    json_t *dec = NULL;
    int rc = get_plan(ctl, ctl->assume_dead, &dec);
    if (rc != EXIT_OK) {
        return rc;
    }
    const char *blocking = ctl_str_or(dec, "blocking", NULL);
    if (strcmp(ctl_str_or(dec, "action", ""), "begin-failover") == 0) {
        printf("if %s died now: would fail over to %s (from %s)\n", ctl->assume_dead,
               ctl_str_or(dec, "to", "?"), ctl_str_or(dec, "from", "none"));
        printf("  candidate: %s\n", pred_value(dec, "candidate-available"));
    } else {
        printf("if %s died now: would not fail over, because %s: %s\n", ctl->assume_dead,
               blocking != NULL ? blocking : "no action",
               blocking ? pred_value(dec, blocking) : "");
    }
    printf("(computed by %s; nothing was changed)\n", ctl_str_or(dec, "region", "?"));
    print_predicates(dec);
    json_decref(dec);
    return EXIT_OK;
}

/* ---- actions ---- */

static void print_move(json_t *a)
{
    printf("epoch %lld: %s -> %s, step %s\n", ctl_int_or(a, "epoch", 0),
           ctl_str_or(a, "from", "none"), ctl_str_or(a, "to", "?"), ctl_str_or(a, "step", "?"));
    long long loss = ctl_int_or(a, "may_lose_bytes", 0);
    if (loss > 0) {
        printf("warning: up to %lld bytes of WAL may be lost\n", loss);
    }
    printf("follow it with: aragoractl history\n");
}

/* switchover (planned) or failover (forced when --force) to `to`. */
static int move_primary(const struct ctl *ctl, const char *to, bool planned, bool ask)
{
    char what[160];
    snprintf(what, sizeof what, "%s the primary to %s",
             planned      ? "switch over"
             : ctl->force ? "force a failover of"
                          : "fail over",
             to);
    int rc = ask ? confirm(ctl, what, to) : EXIT_OK;
    if (rc != EXIT_OK) {
        return rc;
    }
    json_t *body = planned ? json_pack("{s:s}", "to", to)
                           : json_pack("{s:s, s:b}", "to", to, "force", ctl->force);
    json_t *answer = NULL;
    if (body == NULL) {
        return EXIT_FAILED;
    }
    rc = post_json(ctl, planned ? "/v1/switchover" : "/v1/failover", body, &answer);
    if (rc == EXIT_OK) {
        print_move(answer);
    }
    json_decref(answer);
    return rc;
}

static int post_drain(const struct ctl *ctl, const char *region, bool drained)
{
    json_t *body = json_pack("{s:s, s:b, s:s}", "region", region, "drained", drained, "reason",
                             ctl->reason != NULL ? ctl->reason : "");
    json_t *answer = NULL;
    if (body == NULL) {
        return EXIT_FAILED;
    }
    int rc = post_json(ctl, "/v1/drain", body, &answer);
    if (rc == EXIT_OK) {
        printf("%s %s%s\n", region, drained ? "drained" : "undrained",
               json_is_false(json_object_get(answer, "changed")) ? " (it already was)" : "");
    }
    json_decref(answer);
    return rc;
}

/* drain-region R: mark R drained; if R is the primary, switch over to where a failover would go. */
static int cmd_drain(const struct ctl *ctl, const char *region)
{
    char what[128];
    snprintf(what, sizeof what, "drain %s (never chosen as primary; moved away if primary)",
             region);
    int rc = confirm(ctl, what, region);
    if (rc == EXIT_OK) {
        rc = post_drain(ctl, region, true);
    }
    json_t *dec = NULL, *cluster = NULL;
    struct response r;
    if (rc != EXIT_OK || ctl_get_json(ctl, "/v1/cluster", &cluster, &r) != EXIT_OK) {
        return rc;
    }
    free(r.body);
    bool is_primary = strcmp(ctl_str_or(cluster, "primary", ""), region) == 0;
    json_decref(cluster);
    if (!is_primary) {
        return EXIT_OK;
    }
    rc = get_plan(ctl, region, &dec);
    const char *to = rc == EXIT_OK ? ctl_str_or(dec, "to", NULL) : NULL;
    if (rc == EXIT_OK && to == NULL) {
        fprintf(stderr, "aragoractl: %s is the primary and no replica can take over: %s\n", region,
                pred_value(dec, "candidate-available"));
        rc = EXIT_FAILED;
    } else if (rc == EXIT_OK) {
        printf("%s is the primary: switching over to %s\n", region, to);
        rc = move_primary(ctl, to, true, false);
    }
    json_decref(dec);
    return rc;
}

/* ---- dispatch ---- */

static const char *const ops[] = {"history",        "explain",    "plan",     "drain-region",
                                  "undrain-region", "switchover", "failover", "promote-region"};

bool ctl_ops_has(const char *cmd)
{
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        if (strcmp(cmd, ops[i]) == 0) {
            return true;
        }
    }
    return false;
}

static bool needs_region(const char *cmd)
{
    return strcmp(cmd, "drain-region") == 0 || strcmp(cmd, "undrain-region") == 0 ||
           strcmp(cmd, "promote-region") == 0;
}

__attribute__((format(printf, 1, 2))) static int usage(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "aragoractl: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'aragoractl --help'.\n");
    return EXIT_USAGE;
}

int ctl_ops_run(const struct ctl *ctl, const char *cmd)
{
    bool moves = strcmp(cmd, "switchover") == 0 || strcmp(cmd, "failover") == 0;
    if (needs_region(cmd) != (ctl->arg != NULL)) {
        return ctl->arg ? usage("'%s' takes no region argument", cmd)
                        : usage("'%s' needs a region: %s REGION", cmd, cmd);
    }
    if (moves != (ctl->to != NULL)) {
        return moves ? usage("'%s' needs --to REGION", cmd)
                     : usage("--to applies to switchover and failover, not '%s'", cmd);
    }
    if ((strcmp(cmd, "plan") == 0) != (ctl->assume_dead != NULL)) {
        return usage(ctl->assume_dead ? "--assume-dead applies to 'plan' only, not '%s'"
                                      : "'%s' needs --assume-dead REGION",
                     cmd);
    }
    if (ctl->force && strcmp(cmd, "failover") != 0) {
        return usage("--force applies to 'failover' only, not '%s'", cmd);
    }
    if (strcmp(cmd, "history") == 0) {
        return cmd_history(ctl);
    }
    if (strcmp(cmd, "explain") == 0) {
        return cmd_explain(ctl);
    }
    if (strcmp(cmd, "plan") == 0) {
        return cmd_plan(ctl);
    }
    if (strcmp(cmd, "drain-region") == 0) {
        return cmd_drain(ctl, ctl->arg);
    }
    if (strcmp(cmd, "undrain-region") == 0) {
        return post_drain(ctl, ctl->arg, false);
    }
    if (strcmp(cmd, "promote-region") == 0) {
        return move_primary(ctl, ctl->arg, true, true);
    }
    return move_primary(ctl, ctl->to, strcmp(cmd, "switchover") == 0, true);
}
