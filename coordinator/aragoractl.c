/*
 * aragoractl: the operator's command-line client for the coordinators' HTTP API.
 *
 * Flow: parse the command line into `struct ctl`, pick the endpoint list (--endpoint, then
 * ARAGORA_ENDPOINTS, then the default lab's three URLs), then run one command. Every request goes
 * through ctl_request(), which tries the endpoints in order and moves to the next one only when an
 * endpoint cannot be reached (connect error or timeout); an HTTP answer, even an error, is final.
 * Server errors are JSON {"error": code, "message": text} and their message is printed as is.
 *
 * Exit codes: 0 ok, 1 failed (including an HTTP error from the server), 2 usage, 3 no endpoint
 * reachable.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    const char *token_file; /* --token-file */
    const char *reason;     /* pause --reason */
    bool json;              /* status --json */
    bool verbose;           /* -v: say which endpoint was tried */
};

/* One HTTP answer. body is NUL-terminated and owned by the response. */
struct response {
    long status;
    char *body;
    size_t len;
    const char *endpoint; /* borrowed from struct ctl */
};

static const char usage_text[] =
    "Usage: aragoractl [OPTIONS] COMMAND\n"
    "\n"
    "Operator client for the Aragora failover coordinators.\n"
    "\n"
    "Commands:\n"
    "  status [--json]        members, roles, leader, term, epoch, primary, paused\n"
    "                         (--json prints the /v1/cluster document as served)\n"
    "  leader                 print the leader's region and API URL (exit 1 if there is none)\n"
    "  pause [--reason TEXT]  stop automatic failover (committed through the Raft log)\n"
    "  resume                 resume automatic failover\n"
    "  version                print this client's version and the answering node's version\n"
    "\n"
    "Options:\n"
    "  --endpoint URL[,URL...]  coordinator API URLs, tried in order; the next one is used when\n"
    "                           one cannot be reached (connect timeout 1 s, request timeout 5 s).\n"
    "                           Default: $ARAGORA_ENDPOINTS, else the default lab's\n"
    "                           " CTL_DEFAULT_ENDPOINTS "\n"
    "  --token-file FILE        bearer token for pause/resume (else $ARAGORA_API_TOKEN,\n"
    "                           else the file named by $ARAGORA_API_TOKEN_FILE)\n"
    "  --json                   machine-readable output (status)\n"
    "  -v, --verbose            report each endpoint tried on stderr\n"
    "  -h, --help               this text\n"
    "\n"
    "Exit status:\n"
    "  0  success\n"
    "  1  the command failed (including an HTTP error from the server; its message is printed)\n"
    "  2  usage error\n"
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

static size_t write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
    struct response *r = arg;
    size_t n = size * nmemb;
    if (r->len + n > CTL_MAX_BODY)
        return 0;
    char *b = realloc(r->body, r->len + n + 1);
    if (b == NULL)
        return 0;
    memcpy(b + r->len, data, n);
    r->len += n;
    b[r->len] = '\0';
    r->body = b;
    return n;
}

/* Errors after which the next endpoint is worth trying: the node is down, frozen or not there. */
static bool is_unreachable(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        return true;
    default:
        return false;
    }
}

/* One attempt against one endpoint. Returns the curl code; fills r on CURLE_OK. */
static CURLcode request_one(const char *endpoint, const char *method, const char *path,
                            const char *body, const char *token, struct response *r, long total_ms)
{
    char url[1024];
    char auth[600];
    struct curl_slist *hdr = NULL;
    CURLcode rc = CURLE_OUT_OF_MEMORY;
    CURL *h = curl_easy_init();
    if (h == NULL)
        return rc;
    snprintf(url, sizeof url, "%s%s", endpoint, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CTL_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, total_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "aragoractl/" AFC_VERSION);
    hdr = curl_slist_append(hdr, "Accept: application/json");
    if (token != NULL && token[0] != '\0') {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        hdr = curl_slist_append(hdr, auth);
    }
    if (strcmp(method, "POST") == 0) {
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body != NULL ? body : "{}");
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    rc = curl_easy_perform(h);
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return rc;
}

/*
 * Send METHOD PATH to the first endpoint that answers. Returns EXIT_OK with r filled (any HTTP
 * status), EXIT_UNREACHABLE when none answered, EXIT_FAILED on another transport error.
 */
static int ctl_request(const struct ctl *ctl, const char *method, const char *path,
                       const char *body, const char *token, struct response *r)
{
    for (unsigned i = 0; i < ctl->n_endpoints; i++) {
        memset(r, 0, sizeof *r);
        CURLcode rc =
            request_one(ctl->endpoints[i], method, path, body, token, r, CTL_TOTAL_TIMEOUT_MS);
        if (rc == CURLE_OK) {
            r->endpoint = ctl->endpoints[i];
            if (ctl->verbose)
                fprintf(stderr, "aragoractl: %s %s%s: HTTP %ld\n", method, ctl->endpoints[i], path,
                        r->status);
            return EXIT_OK;
        }
        free(r->body);
        r->body = NULL;
        if (!is_unreachable(rc)) {
            fprintf(stderr, "aragoractl: %s %s%s: %s\n", method, ctl->endpoints[i], path,
                    curl_easy_strerror(rc));
            return EXIT_FAILED;
        }
        if (ctl->verbose || i + 1 == ctl->n_endpoints)
            fprintf(stderr, "aragoractl: %s: unreachable (%s)\n", ctl->endpoints[i],
                    curl_easy_strerror(rc));
    }
    fprintf(stderr, "aragoractl: no endpoint reachable (tried %u)\n", ctl->n_endpoints);
    return EXIT_UNREACHABLE;
}

/* Print the server's JSON error (or the raw body) for a non-2xx answer. Returns EXIT_FAILED. */
static int report_http_error(const struct response *r)
{
    json_t *doc = json_loadb(r->body != NULL ? r->body : "", r->len, 0, NULL);
    const char *code = json_string_value(json_object_get(doc, "error"));
    const char *msg = json_string_value(json_object_get(doc, "message"));
    if (msg != NULL)
        fprintf(stderr, "aragoractl: %s: HTTP %ld %s: %s\n", r->endpoint, r->status,
                code != NULL ? code : "error", msg);
    else
        fprintf(stderr, "aragoractl: %s: HTTP %ld%s%.200s\n", r->endpoint, r->status,
                r->len > 0 ? ": " : "", r->body != NULL ? r->body : "");
    json_decref(doc);
    return EXIT_FAILED;
}

/* GET a JSON document. On success *out is a new reference. */
static int get_json(const struct ctl *ctl, const char *path, json_t **out, struct response *r)
{
    int rc = ctl_request(ctl, "GET", path, NULL, NULL, r);
    if (rc != EXIT_OK)
        return rc;
    if (r->status < 200 || r->status > 299) {
        rc = report_http_error(r);
        free(r->body);
        return rc;
    }
    json_error_t jerr;
    *out = json_loadb(r->body != NULL ? r->body : "", r->len, 0, &jerr);
    if (*out == NULL || !json_is_object(*out)) {
        fprintf(stderr, "aragoractl: %s%s: invalid JSON answer: %s\n", r->endpoint, path,
                jerr.text);
        json_decref(*out);
        free(r->body);
        return EXIT_FAILED;
    }
    return EXIT_OK;
}

static const char *str_or(json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : dflt;
}

static long long int_or(json_t *o, const char *key, long long dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : dflt;
}

/* Each member's own view of itself (its /v1/cluster "node"), asked directly with a short timeout,
 * so a dead or frozen member shows as unreachable instead of as whatever the answering node
 * assumes. NULL if it did not answer. The answering node's view is reused for itself. */
static json_t *member_view(json_t *m, json_t *answered_node)
{
    if (json_is_true(json_object_get(m, "self")))
        return json_incref(answered_node);
    const char *api = json_string_value(json_object_get(m, "api_url"));
    struct response r;
    memset(&r, 0, sizeof r);
    if (api == NULL ||
        request_one(api, "GET", "/v1/cluster", NULL, NULL, &r, CTL_PEEK_TIMEOUT_MS) != CURLE_OK ||
        r.status != 200) {
        free(r.body);
        return NULL;
    }
    json_t *doc = json_loadb(r.body != NULL ? r.body : "", r.len, 0, NULL);
    free(r.body);
    json_t *node = json_incref(json_object_get(doc, "node"));
    json_decref(doc);
    return json_is_object(node) ? node : (json_decref(node), NULL);
}

static void print_members(json_t *cluster)
{
    json_t *members = json_object_get(cluster, "members");
    size_t i;
    json_t *m;
    printf("%-14s %-3s %-12s %-5s %-8s %-6s %-22s %s\n", "REGION", "ID", "ROLE", "TERM", "APPLIED",
           "READY", "RAFT-ADDRESS", "API");
    json_array_foreach(members, i, m)
    {
        json_t *view = member_view(m, json_object_get(cluster, "node"));
        char term[24] = "-", applied[24] = "-";
        if (view != NULL) {
            snprintf(term, sizeof term, "%lld", int_or(view, "term", 0));
            snprintf(applied, sizeof applied, "%lld", int_or(view, "applied_index", 0));
        }
        printf("%-14s %-3lld %-12s %-5s %-8s %-6s %-22s %s%s\n", str_or(m, "region", "?"),
               int_or(m, "id", 0), view ? str_or(view, "raft_state", "?") : "unreachable", term,
               applied, view ? (json_is_true(json_object_get(view, "ready")) ? "yes" : "no") : "-",
               str_or(m, "raft_address", "-"), str_or(m, "api_url", "-"),
               json_is_true(json_object_get(m, "self")) ? "  (answered)" : "");
        json_decref(view);
    }
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
        printf("leader:   %s (id %lld, %s)\n", str_or(leader, "region", "?"),
               int_or(leader, "id", 0), str_or(leader, "api_url", "-"));
    else
        printf("leader:   none known\n");
    printf("term:     %lld\n", int_or(node, "term", 0));
    printf("epoch:    %lld\n", int_or(cluster, "epoch", 0));
    if (json_is_string(primary))
        snprintf(primary_buf, sizeof primary_buf, "%s", json_string_value(primary));
    else if (json_is_integer(primary) && json_integer_value(primary) != 0)
        snprintf(primary_buf, sizeof primary_buf, "%lld", (long long)json_integer_value(primary));
    else
        snprintf(primary_buf, sizeof primary_buf, "none");
    printf("primary:  %s\n", primary_buf);
    printf("paused:   %s\n", json_is_true(json_object_get(cluster, "paused")) ? "yes" : "no");
    printf("answered: %s (%s, %s, commit %lld, applied %lld)\n", endpoint,
           str_or(node, "region", "?"),
           json_is_true(json_object_get(node, "ready")) ? "ready" : "not ready",
           int_or(node, "commit_index", 0), int_or(node, "applied_index", 0));
}

static int cmd_status(const struct ctl *ctl)
{
    struct response r;
    json_t *cluster = NULL;
    int rc = get_json(ctl, "/v1/cluster", &cluster, &r);
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

static int cmd_leader(const struct ctl *ctl)
{
    struct response r;
    json_t *cluster = NULL;
    int rc = get_json(ctl, "/v1/cluster", &cluster, &r);
    if (rc != EXIT_OK)
        return rc;
    json_t *leader = json_object_get(cluster, "leader");
    if (json_is_object(leader)) {
        printf("%s %s\n", str_or(leader, "region", "?"), str_or(leader, "api_url", "-"));
    } else {
        fprintf(stderr, "aragoractl: no leader known to %s\n", r.endpoint);
        rc = EXIT_FAILED;
    }
    json_decref(cluster);
    free(r.body);
    return rc;
}

/* Read the first line of a token file into buf. */
static int read_token_file(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "aragoractl: token file %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fgets(buf, (int)size, f) == NULL)
        buf[0] = '\0';
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    if (buf[0] == '\0') {
        fprintf(stderr, "aragoractl: token file %s is empty\n", path);
        return -1;
    }
    return 0;
}

/* --token-file, then ARAGORA_API_TOKEN, then ARAGORA_API_TOKEN_FILE. "" when none is given. */
static int load_token(const struct ctl *ctl, char *buf, size_t size)
{
    const char *env = getenv("ARAGORA_API_TOKEN");
    const char *env_file = getenv("ARAGORA_API_TOKEN_FILE");
    buf[0] = '\0';
    if (ctl->token_file != NULL)
        return read_token_file(ctl->token_file, buf, size);
    if (env != NULL && env[0] != '\0') {
        snprintf(buf, size, "%s", env);
        return 0;
    }
    if (env_file != NULL && env_file[0] != '\0')
        return read_token_file(env_file, buf, size);
    return 0;
}

static int cmd_action(const struct ctl *ctl, const char *path, const char *done)
{
    char token[512];
    struct response r;
    char *body = NULL;
    if (load_token(ctl, token, sizeof token) != 0)
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
        rc = report_http_error(&r);
    free(r.body);
    return rc;
}

static int cmd_version(const struct ctl *ctl)
{
    struct response r;
    json_t *cluster = NULL;
    printf("aragoractl %s\n", AFC_VERSION);
    fflush(stdout);
    int rc = get_json(ctl, "/v1/cluster", &cluster, &r);
    if (rc != EXIT_OK)
        return rc;
    printf("coordinator %s (%s at %s)\n", str_or(cluster, "version", "unknown"),
           str_or(json_object_get(cluster, "node"), "region", "?"), r.endpoint);
    json_decref(cluster);
    free(r.body);
    return EXIT_OK;
}

/* Options may come before or after the command. Returns EXIT_OK or EXIT_USAGE. */
static int parse_args(struct ctl *ctl, int argc, char **argv, const char **cmd, bool *help)
{
    const char *endpoints = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            *help = true;
        } else if (strcmp(a, "--json") == 0) {
            ctl->json = true;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            ctl->verbose = true;
        } else if (strcmp(a, "--endpoint") == 0 || strcmp(a, "--endpoints") == 0) {
            slot = &endpoints;
        } else if (strcmp(a, "--token-file") == 0) {
            slot = &ctl->token_file;
        } else if (strcmp(a, "--reason") == 0) {
            slot = &ctl->reason;
        } else if (strncmp(a, "--endpoint=", 11) == 0) {
            endpoints = a + 11;
        } else if (strncmp(a, "--token-file=", 13) == 0) {
            ctl->token_file = a + 13;
        } else if (strncmp(a, "--reason=", 9) == 0) {
            ctl->reason = a + 9;
        } else if (a[0] == '-') {
            usage_error("unknown option '%s'", a);
            return EXIT_USAGE;
        } else if (*cmd == NULL) {
            *cmd = a;
        } else {
            usage_error("unexpected argument '%s'", a);
            return EXIT_USAGE;
        }
        if (slot != NULL) {
            if (i + 1 >= argc) {
                usage_error("option '%s' needs a value", a);
                return EXIT_USAGE;
            }
            *slot = argv[++i];
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
    if (ctl->json && strcmp(cmd, "status") != 0) {
        usage_error("--json applies to 'status' only, not '%s'", cmd);
        return EXIT_USAGE;
    }
    if (ctl->reason != NULL && !is_pause) {
        usage_error("--reason applies to 'pause' only, not '%s'", cmd);
        return EXIT_USAGE;
    }
    if (strcmp(cmd, "status") == 0)
        return cmd_status(ctl);
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
