/*
 * aragoractl: the operator's command-line client for the coordinators' HTTP API.
 *
 * Flow: parse the command line into `struct ctl`, pick the endpoint list (--endpoint, then
 * ARAGORA_ENDPOINTS, then the default lab's three URLs), then run one command. Every request goes
 * through ctl_request(), which tries the endpoints in order and moves to the next one only when an
 * endpoint cannot be reached (connect error or timeout); an HTTP answer, even an error, is final.
 * Server errors are JSON {"error": code, "message": text} and their message is printed as is.
 *
 * The failover commands (history, explain, plan, drain-region, undrain-region, switchover,
 * failover, promote-region) are in ctl_ops.c; the HTTP client in ctl_http.c.
 *
 * Exit codes: 0 ok, 1 failed (including an HTTP error from the server), 2 usage (including a
 * destructive command without --yes and without a terminal to confirm on), 3 no endpoint
 * reachable.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "coordinator/ctl.h"

static const char usage_text[] =
    "Usage: aragoractl [OPTIONS] COMMAND\n"
    "\n"
    "Operator client for the Aragora failover coordinators.\n"
    "\n"
    "Commands:\n"
    "  status [--json]        members, roles, PostgreSQL, leader, term, epoch, primary, lease,\n"
    "                         the current failover, replication (the synchronous standbys),\n"
    "                         paused\n"
    "                         (--json prints the /v1/cluster document as served)\n"
    "  status -W | --watch[=SECONDS]  the same, refreshed every SECONDS (default 2, at least\n"
    "                         0.1) until interrupted; an unreachable cluster is shown, not fatal\n"
    "  leader                 print the leader's region and API URL (exit 1 if there is none)\n"
    "  pause [--reason TEXT]  stop automatic failover (committed through the Raft log)\n"
    "  resume                 resume automatic failover\n"
    "  history                failover receipts (times, decided->promoted, detected->done) and\n"
    "                         the last events\n"
    "  explain                the leader's decision now: every failover predicate and its value\n"
    "  plan --assume-dead R   what the leader would do if R died now (changes nothing)\n"
    "  switchover --to R      planned move of the primary to R, without data loss      [*]\n"
    "  failover --to R [--force]  manual failover to R; --force accepts data loss      [*]\n"
    "  promote-region R       the same as switchover --to R                            [*]\n"
    "  drain-region R [--reason TEXT]  never choose R as primary; if R is the primary,\n"
    "                         switch over to the best other replica                    [*]\n"
    "  undrain-region R       R may be chosen again\n"
    "  version                print this client's version and the answering node's version\n"
    "\n"
    "  [*] destructive: asks to type the region name on a terminal; --yes skips the question.\n"
    "      Without a terminal and without --yes it exits 2 and sends nothing.\n"
    "\n"
    "Options:\n"
    "  --endpoint URL[,URL...]  coordinator API URLs, tried in order; the next one is used when\n"
    "                           one cannot be reached (connect timeout 1 s, request timeout 5 s).\n"
    "                           Default: $ARAGORA_ENDPOINTS, else the default lab's\n"
    "                           " CTL_DEFAULT_ENDPOINTS "\n"
    "  --token-file FILE        bearer token for the commands that change something (else\n"
    "                           $ARAGORA_API_TOKEN,\n"
    "                           else the file named by $ARAGORA_API_TOKEN_FILE)\n"
    "  --json                   machine-readable output (status)\n"
    "  -v, --verbose            report each endpoint tried on stderr\n"
    "  -h, --help               this text\n"
    "\n"
    "Exit status:\n"
    "  0  success\n"
    "  1  the command failed (including an HTTP error from the server; its message is printed)\n"
    "  2  usage error (including a destructive command not confirmed with --yes off a terminal)\n"
    "  3  no endpoint could be reached\n";

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "aragoractl: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'aragoractl --help'.\n");
}

/* Split a comma-separated list into ctl->endpoints (copies), dropping trailing slashes. */
static int add_endpoints(struct ctl *ctl, const char *list)
{
    const char *p = list;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        while (n > 0 && (p[n - 1] == '/' || p[n - 1] == ' '))
            n--;
        while (n > 0 && *p == ' ') {
            p++;
            n--;
        }
        if (n > 0) {
            if (ctl->n_endpoints == CTL_MAX_ENDPOINTS) {
                usage_error("too many endpoints (at most %d)", CTL_MAX_ENDPOINTS);
                return -1;
            }
            char *e = strndup(p, n);
            if (e == NULL)
                return -1;
            ctl->endpoints[ctl->n_endpoints++] = e;
        }
        p += strcspn(p, ",");
        if (*p == ',')
            p++;
    }
    return 0;
}

/* Each member's own /v1/cluster document, asked directly with a short timeout, so a dead or
 * frozen member shows as unreachable instead of as whatever the answering node assumes. NULL if
 * it did not answer. The answering node's document is reused for itself. */
static json_t *member_view(json_t *m, json_t *answered)
{
    if (json_is_true(json_object_get(m, "self")))
        return json_incref(answered);
    const char *api = json_string_value(json_object_get(m, "api_url"));
    struct response r;
    memset(&r, 0, sizeof r);
    if (api == NULL ||
        ctl_request_one(api, "GET", "/v1/cluster", NULL, NULL, &r, CTL_PEEK_TIMEOUT_MS) !=
            CURLE_OK ||
        r.status != 200) {
        free(r.body);
        return NULL;
    }
    json_t *doc = json_loadb(r.body != NULL ? r.body : "", r.len, 0, NULL);
    free(r.body);
    if (!json_is_object(json_object_get(doc, "node"))) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* What the member's own Redis holds: "e2 ok", "e1 STALE", "down", "-" (no Redis). */
static void redis_cell(json_t *doc, char *buf, size_t cap)
{
    json_t *redis = json_object_get(doc, "redis"), *holds = json_object_get(redis, "holds");
    if (!json_is_object(redis)) {
        snprintf(buf, cap, "-");
    } else if (json_is_object(holds)) {
        snprintf(buf, cap, "e%lld %s", ctl_int_or(holds, "epoch", 0),
                 json_is_true(json_object_get(redis, "agrees")) ? "ok" : "STALE");
    } else if (json_is_false(json_object_get(redis, "agrees"))) {
        snprintf(buf, cap, "empty");
    } else {
        snprintf(buf, cap, "%s", ctl_str_or(redis, "state", "?"));
    }
}

/* PostgreSQL as its own coordinator reports it (else as the answering node sees it), e.g.
 * "replica<-us-east-2 lag 12ms", "primary", "down"; ",drained" when drained. */
static void pg_cell(json_t *cluster, json_t *member, char *buf, size_t cap)
{
    const char *region = ctl_str_or(member, "region", "");
    size_t i;
    json_t *p, *o = NULL;
    json_array_foreach(json_object_get(cluster, "postgres"), i, p)
    {
        if (strcmp(ctl_str_or(p, "region", ""), region) == 0) {
            o = json_object_get(p, "seen_by_its_own_coordinator");
            o = json_is_object(o) ? o : json_object_get(p, "seen_here");
        }
    }
    const char *drained = json_is_true(json_object_get(member, "drained")) ? ",drained" : "";
    if (!json_is_object(o)) {
        snprintf(buf, cap, "-%s", drained);
    } else if (!json_is_true(json_object_get(o, "healthy"))) {
        snprintf(buf, cap, "down%s", drained);
    } else if (strcmp(ctl_str_or(o, "role", ""), "replica") == 0) {
        snprintf(buf, cap, "replica<-%s lag %lldms%s", ctl_str_or(o, "upstream", "none"),
                 ctl_int_or(o, "lag_ms", 0), drained);
    } else {
        snprintf(buf, cap, "%s%s", ctl_str_or(o, "role", "?"), drained);
    }
}

static void print_members(json_t *cluster)
{
    json_t *members = json_object_get(cluster, "members");
    size_t i;
    json_t *m;
    printf("%-14s %-3s %-12s %-5s %-8s %-6s %-34s %-10s %-22s %s\n", "REGION", "ID", "ROLE", "TERM",
           "APPLIED", "READY", "POSTGRES", "REDIS", "RAFT-ADDRESS", "API");
    json_array_foreach(members, i, m)
    {
        json_t *doc = member_view(m, cluster), *view = json_object_get(doc, "node");
        char term[24] = "-", applied[24] = "-", pg[64], redis[32] = "-";
        pg_cell(cluster, m, pg, sizeof pg);
        if (view != NULL) {
            snprintf(term, sizeof term, "%lld", ctl_int_or(view, "term", 0));
            snprintf(applied, sizeof applied, "%lld", ctl_int_or(view, "applied_index", 0));
            redis_cell(doc, redis, sizeof redis);
        }
        printf("%-14s %-3lld %-12s %-5s %-8s %-6s %-34s %-10s %-22s %s%s\n",
               ctl_str_or(m, "region", "?"), ctl_int_or(m, "id", 0),
               view ? ctl_str_or(view, "raft_state", "?") : "unreachable", term, applied,
               view ? (json_is_true(json_object_get(view, "ready")) ? "yes" : "no") : "-", pg,
               redis, ctl_str_or(m, "raft_address", "-"), ctl_str_or(m, "api_url", "-"),
               json_is_true(json_object_get(m, "self")) ? "  (answered)" : "");
        json_decref(doc);
    }
}

static void print_lease_failover(json_t *cluster)
{
    json_t *lease = json_object_get(cluster, "lease"), *f = json_object_get(cluster, "failover");
    if (json_is_object(lease) && json_is_string(json_object_get(lease, "region"))) {
        printf("lease:    %s, epoch %lld, renewal %lld (log index %lld)",
               ctl_str_or(lease, "region", "?"), ctl_int_or(lease, "epoch", 0),
               ctl_int_or(lease, "seq", 0), ctl_int_or(lease, "index", 0));
        if (json_is_true(json_object_get(lease, "held_here")))
            printf(", held here for %lld ms more", ctl_int_or(lease, "remaining_ms", 0));
        printf("\n");
    } else {
        printf("lease:    none\n");
    }
    if (json_is_object(f))
        printf("failover: epoch %lld %s -> %s: %s%s (%s)\n", ctl_int_or(f, "epoch", 0),
               ctl_str_or(f, "from", "none"), ctl_str_or(f, "to", "?"), ctl_str_or(f, "step", "?"),
               json_is_true(json_object_get(f, "planned")) ? ", planned" : "",
               ctl_str_or(f, "reason", ""));
    else
        printf("failover: none yet\n");
    json_t *dns = json_object_get(cluster, "dns");
    if (json_is_object(dns)) {
        json_t *answer = json_object_get(dns, "answer"), *routing = json_object_get(dns, "routing");
        json_t *agrees = json_object_get(answer, "agrees");
        printf("dns:      %s %s: %s", ctl_str_or(dns, "provider", "?"),
               ctl_str_or(dns, "name", "?"),
               json_is_true(agrees)    ? "names the primary"
               : json_is_false(agrees) ? "DOES NOT name the primary"
                                       : "not checked yet");
        if (json_is_false(agrees))
            printf(" (%s)", ctl_str_or(answer, "detail", ""));
        if (json_is_object(routing) && strcmp(ctl_str_or(routing, "phase", ""), "routed") != 0)
            printf("; routing epoch %lld: %s, %lld failures%s%s", ctl_int_or(routing, "epoch", 0),
                   ctl_str_or(routing, "phase", "?"), ctl_int_or(routing, "failures", 0),
                   ctl_str_or(routing, "last_error", "")[0] ? ", last: " : "",
                   ctl_str_or(routing, "last_error", ""));
        printf("\n");
    }
}

/* "a, b" from a JSON array of strings ("none" if empty). */
static void join_names(json_t *arr, char *buf, size_t cap)
{
    size_t i, off = 0;
    json_t *v;
    snprintf(buf, cap, "none");
    json_array_foreach(arr, i, v)
    {
        if (json_is_string(v) && off < cap) {
            int n = snprintf(buf + off, cap - off, "%s%s", off ? ", " : "", json_string_value(v));
            off += n > 0 ? (size_t)n : 0;
        }
    }
}

/* What the primary's PostgreSQL waits on now (its own node's "replication"."here"). */
static void print_sync_here(json_t *here)
{
    size_t i;
    json_t *w;
    printf("          %s: synchronous_standby_names = '%s' (%s)", ctl_str_or(here, "region", "?"),
           ctl_str_or(here, "synchronous_standby_names", ""), ctl_str_or(here, "phase", "?"));
    json_array_foreach(json_object_get(here, "standbys"), i, w)
    {
        json_t *region = json_object_get(w, "region");
        printf("%s %s %s %s", i ? "," : ";",
               json_is_string(region) ? json_string_value(region)
                                      : ctl_str_or(w, "application_name", "?"),
               ctl_str_or(w, "state", "?"), ctl_str_or(w, "sync_state", "?"));
    }
    printf("\n");
}

/* replication: the mode, the committed synchronous standby set, and — asked of the primary's
 * own node when another answered — what its PostgreSQL waits on. */
static void print_replication(json_t *cluster)
{
    json_t *rep = json_object_get(cluster, "replication");
    json_t *committed = json_object_get(rep, "committed"), *here = json_object_get(rep, "here");
    char names[256];
    if (!json_is_object(rep)) {
        return;
    }
    printf("replication: %s%s", ctl_str_or(rep, "mode", "?"),
           json_is_true(json_object_get(rep, "sync_strict")) ? " (strict)" : "");
    if (json_is_object(committed) && json_is_true(json_object_get(committed, "active"))) {
        join_names(json_object_get(committed, "standbys"), names, sizeof names);
        printf(", synchronous standbys: ANY 1 of %s (set by %s in epoch %lld)", names,
               ctl_str_or(committed, "region", "?"), ctl_int_or(committed, "epoch", 0));
    } else if (json_is_object(committed)) {
        printf(", ASYNCHRONOUS: no synchronous standby (set by %s in epoch %lld)",
               ctl_str_or(committed, "region", "?"), ctl_int_or(committed, "epoch", 0));
    } else if (strcmp(ctl_str_or(rep, "mode", ""), "sync") == 0) {
        printf(", no synchronous standby set committed yet");
    }
    printf("\n");
    json_t *doc = NULL, *m;
    size_t i;
    const char *primary = json_string_value(json_object_get(cluster, "primary"));
    if (!json_is_object(here) && primary != NULL) {
        json_array_foreach(json_object_get(cluster, "members"), i, m)
        {
            if (doc == NULL && strcmp(ctl_str_or(m, "region", ""), primary) == 0) {
                doc = member_view(m, cluster);
            }
        }
        here = json_object_get(json_object_get(doc, "replication"), "here");
    }
    if (json_is_object(here)) {
        print_sync_here(here);
    }
    json_decref(doc);
}

static void print_status(json_t *cluster, const char *endpoint)
{
    json_t *node = json_object_get(cluster, "node");
    json_t *leader = json_object_get(cluster, "leader");
    json_t *primary = json_object_get(cluster, "primary");
    char primary_buf[64];

    print_members(cluster);
    printf("\n");
    if (json_is_object(leader))
        printf("leader:   %s (id %lld, %s)\n", ctl_str_or(leader, "region", "?"),
               ctl_int_or(leader, "id", 0), ctl_str_or(leader, "api_url", "-"));
    else
        printf("leader:   none known\n");
    printf("term:     %lld\n", ctl_int_or(node, "term", 0));
    printf("epoch:    %lld\n", ctl_int_or(cluster, "epoch", 0));
    if (json_is_string(primary))
        snprintf(primary_buf, sizeof primary_buf, "%s", json_string_value(primary));
    else if (json_is_integer(primary) && json_integer_value(primary) != 0)
        snprintf(primary_buf, sizeof primary_buf, "%lld", (long long)json_integer_value(primary));
    else
        snprintf(primary_buf, sizeof primary_buf, "none");
    printf("primary:  %s\n", primary_buf);
    print_lease_failover(cluster);
    print_replication(cluster);
    printf("paused:   %s\n", json_is_true(json_object_get(cluster, "paused")) ? "yes" : "no");
    printf("answered: %s (%s, %s, commit %lld, applied %lld)\n", endpoint,
           ctl_str_or(node, "region", "?"),
           json_is_true(json_object_get(node, "ready")) ? "ready" : "not ready",
           ctl_int_or(node, "commit_index", 0), ctl_int_or(node, "applied_index", 0));
}

static int cmd_status(const struct ctl *ctl)
{
    struct response r;
    json_t *cluster = NULL;
    int rc = ctl_get_json(ctl, "/v1/cluster", &cluster, &r);
    if (rc != EXIT_OK)
        return rc;
    if (ctl->json) {
        char *s = json_dumps(cluster, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s != NULL)
            printf("%s\n", s);
        free(s);
    } else {
        print_status(cluster, r.endpoint);
    }
    json_decref(cluster);
    free(r.body);
    return EXIT_OK;
}

static volatile sig_atomic_t watch_stop;

static void watch_signal(int sig)
{
    (void)sig;
    watch_stop = 1;
}

/* status --watch: like `watch aragoractl status`, without a second tool. Ends on SIGINT/SIGTERM
 * with exit 0; the terminal is cleared before each refresh only when stdout is one. */
static int cmd_status_watch(const struct ctl *ctl)
{
    struct sigaction sa = {.sa_handler = watch_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    bool tty = isatty(STDOUT_FILENO);
    while (!watch_stop) {
        char when[32];
        time_t now = time(NULL);
        struct tm tm;
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime_r(&now, &tm));
        printf("%sEvery %.1fs: aragoractl status    %s\n\n", tty ? "\033[H\033[2J" : "",
               ctl->watch_ms / 1000.0, when);
        fflush(stdout);
        (void)cmd_status(ctl); /* an unreachable cluster is printed on stderr; keep watching */
        if (!tty) {
            printf("\n");
        }
        fflush(stdout);
        struct timespec left = {.tv_sec = ctl->watch_ms / 1000,
                                .tv_nsec = (long)(ctl->watch_ms % 1000) * 1000000L};
        while (!watch_stop && nanosleep(&left, &left) != 0) {
        }
    }
    return EXIT_OK;
}

/* --watch=SECONDS: a decimal number of seconds, at least 0.1. */
static int parse_watch(struct ctl *ctl, const char *value)
{
    char *end = NULL;
    double s = strtod(value, &end);
    if (end == value || *end != '\0' || !(s >= 0.1 && s <= 86400)) {
        usage_error("--watch: expected seconds between 0.1 and 86400, got '%s'", value);
        return EXIT_USAGE;
    }
    ctl->watch_ms = (unsigned)(s * 1000.0 + 0.5);
    return EXIT_OK;
}

static int cmd_leader(const struct ctl *ctl)
{
    struct response r;
    json_t *cluster = NULL;
    int rc = ctl_get_json(ctl, "/v1/cluster", &cluster, &r);
    if (rc != EXIT_OK)
        return rc;
    json_t *leader = json_object_get(cluster, "leader");
    if (json_is_object(leader)) {
        printf("%s %s\n", ctl_str_or(leader, "region", "?"), ctl_str_or(leader, "api_url", "-"));
    } else {
        fprintf(stderr, "aragoractl: no leader known to %s\n", r.endpoint);
        rc = EXIT_FAILED;
    }
    json_decref(cluster);
    free(r.body);
    return rc;
}

static int cmd_action(const struct ctl *ctl, const char *path, const char *done)
{
    char token[512];
    struct response r;
    char *body = NULL;
    if (ctl_load_token(ctl, token, sizeof token) != 0)
        return EXIT_FAILED;
    if (token[0] == '\0')
        fprintf(stderr, "aragoractl: warning: no API token given (--token-file, "
                        "ARAGORA_API_TOKEN or ARAGORA_API_TOKEN_FILE)\n");
    json_t *req = json_object();
    if (req == NULL)
        return EXIT_FAILED;
    if (ctl->reason != NULL)
        json_object_set_new(req, "reason", json_string(ctl->reason));
    body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (body == NULL)
        return EXIT_FAILED;
    int rc = ctl_request(ctl, "POST", path, body, token, &r);
    free(body);
    if (rc != EXIT_OK)
        return rc;
    if (r.status >= 200 && r.status <= 299)
        printf("%s (via %s)\n", done, r.endpoint);
    else
        rc = ctl_report_http_error(&r);
    free(r.body);
    return rc;
}

static int cmd_version(const struct ctl *ctl)
{
    struct response r;
    json_t *cluster = NULL;
    printf("aragoractl %s\n", AFC_VERSION);
    fflush(stdout);
    int rc = ctl_get_json(ctl, "/v1/cluster", &cluster, &r);
    if (rc != EXIT_OK)
        return rc;
    printf("coordinator %s (%s at %s)\n", ctl_str_or(cluster, "version", "unknown"),
           ctl_str_or(json_object_get(cluster, "node"), "region", "?"), r.endpoint);
    json_decref(cluster);
    free(r.body);
    return EXIT_OK;
}

/* The slot of an option that takes a value ("--to" or "--to=R"), NULL if `name` is not one. */
static const char **value_slot(struct ctl *ctl, const char *name, size_t len,
                               const char **endpoints)
{
    static const char *const names[] = {"--endpoint", "--endpoints", "--token-file",
                                        "--reason",   "--to",        "--assume-dead"};
    const char **slots[] = {endpoints,    endpoints, &ctl->token_file,
                            &ctl->reason, &ctl->to,  &ctl->assume_dead};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        if (strlen(names[k]) == len && strncmp(name, names[k], len) == 0)
            return slots[k];
    }
    return NULL;
}

/* A flag option; false if `a` is not one. */
static bool set_flag(struct ctl *ctl, const char *a, bool *help)
{
    bool *flag = strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0      ? help
                 : strcmp(a, "--json") == 0                            ? &ctl->json
                 : strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0 ? &ctl->verbose
                 : strcmp(a, "--force") == 0                           ? &ctl->force
                 : strcmp(a, "--yes") == 0 || strcmp(a, "-y") == 0     ? &ctl->yes
                                                                       : NULL;
    if (flag != NULL)
        *flag = true;
    return flag != NULL;
}

/* The command and at most one argument (a region). */
static int set_positional(struct ctl *ctl, const char *a, const char **cmd)
{
    if (*cmd == NULL) {
        *cmd = a;
    } else if (ctl->arg == NULL) {
        ctl->arg = a;
    } else {
        usage_error("unexpected argument '%s'", a);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* Options may come before or after the command. Returns EXIT_OK or EXIT_USAGE. */
static int parse_args(struct ctl *ctl, int argc, char **argv, const char **cmd, bool *help)
{
    const char *endpoints = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '=');
        const char **slot =
            value_slot(ctl, a, eq != NULL ? (size_t)(eq - a) : strlen(a), &endpoints);
        if (strcmp(a, "-W") == 0 || strcmp(a, "--watch") == 0) {
            ctl->watch_ms = 2000;
        } else if (strncmp(a, "--watch=", 8) == 0) {
            if (parse_watch(ctl, a + 8) != EXIT_OK) {
                return EXIT_USAGE;
            }
        } else if (slot != NULL && eq != NULL) {
            *slot = eq + 1;
        } else if (slot != NULL) {
            if (i + 1 >= argc) {
                usage_error("option '%s' needs a value", a);
                return EXIT_USAGE;
            }
            *slot = argv[++i];
        } else if (set_flag(ctl, a, help)) {
            continue;
        } else if (a[0] == '-') {
            usage_error("unknown option '%s'", a);
            return EXIT_USAGE;
        } else if (set_positional(ctl, a, cmd) != EXIT_OK) {
            return EXIT_USAGE;
        }
    }
    if (endpoints == NULL)
        endpoints = getenv("ARAGORA_ENDPOINTS");
    if (endpoints == NULL || endpoints[0] == '\0')
        endpoints = CTL_DEFAULT_ENDPOINTS;
    if (add_endpoints(ctl, endpoints) != 0)
        return EXIT_USAGE;
    if (ctl->n_endpoints == 0) {
        usage_error("no endpoint in '%s'", endpoints);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

static int run(struct ctl *ctl, const char *cmd)
{
    bool is_pause = strcmp(cmd, "pause") == 0;
    if ((ctl->json || ctl->watch_ms != 0) && strcmp(cmd, "status") != 0) {
        usage_error("%s applies to 'status' only, not '%s'", ctl->json ? "--json" : "--watch", cmd);
        return EXIT_USAGE;
    }
    if (ctl->reason != NULL && !is_pause && strcmp(cmd, "drain-region") != 0 &&
        strcmp(cmd, "undrain-region") != 0) {
        usage_error("--reason applies to 'pause' and 'drain-region' only, not '%s'", cmd);
        return EXIT_USAGE;
    }
    if (ctl_ops_has(cmd))
        return ctl_ops_run(ctl, cmd);
    if (ctl->arg != NULL || ctl->to != NULL || ctl->assume_dead != NULL || ctl->force) {
        usage_error("'%s' takes no region, --to, --assume-dead or --force", cmd);
        return EXIT_USAGE;
    }
    if (strcmp(cmd, "status") == 0)
        return ctl->watch_ms != 0 ? cmd_status_watch(ctl) : cmd_status(ctl);
    if (strcmp(cmd, "leader") == 0)
        return cmd_leader(ctl);
    if (is_pause)
        return cmd_action(ctl, "/v1/pause", "paused: automatic failover is off");
    if (strcmp(cmd, "resume") == 0)
        return cmd_action(ctl, "/v1/resume", "resumed: automatic failover is on");
    if (strcmp(cmd, "version") == 0)
        return cmd_version(ctl);
    usage_error("unknown command '%s'", cmd);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    struct ctl ctl = {0};
    const char *cmd = NULL;
    bool help = false;
    int rc = parse_args(&ctl, argc, argv, &cmd, &help);
    if (rc == EXIT_OK && help) {
        fputs(usage_text, stdout);
    } else if (rc == EXIT_OK && cmd == NULL) {
        fputs(usage_text, stderr);
        rc = EXIT_USAGE;
    } else if (rc == EXIT_OK) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            fprintf(stderr, "aragoractl: curl_global_init failed\n");
            rc = EXIT_FAILED;
        } else {
            rc = run(&ctl, cmd);
            curl_global_cleanup();
        }
    }
    for (unsigned i = 0; i < ctl.n_endpoints; i++)
        free(ctl.endpoints[i]);
    return rc;
}
