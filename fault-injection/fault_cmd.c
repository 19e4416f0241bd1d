/*
 * `aragora-chaos fault set|clear|show|profile --dir DIR`: change or show the network faults of a
 * running lab through its fault proxy's control API (proxy_http.c). The control address comes
 * from DIR/chaos/links.json. A blocking libcurl client: this is a one-shot CLI.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "chaos_cmd.h"

#define HTTP_TIMEOUT_MS 10000L

static const char fault_usage[] =
    "Usage: aragora-chaos fault COMMAND --dir DIR\n"
    "\n"
    "Commands:\n"
    "  set \"TEXT\"        replace the active fault set, e.g.\n"
    "                    \"us-east-2 -/- eu-west-1, eu-west-1 -> ap-south-1 delay 200ms+-50ms\"\n"
    "                    prints the canonical text applied\n"
    "  clear             remove every fault (the profile stays)\n"
    "  show [--json]     the faults, the profile and every link's state and connections\n"
    "  profile wan|none|\"TEXT\"\n"
    "                    the faults applied under the fault set (wan: WAN delays)\n"
    "\n"
    "Fault syntax (docs/chaos.md): A -/- B, A -/> B, isolate A, A -> B ACTION, A <-> B ACTION\n"
    "with ACTION one of delay D[+-J], loss P%, rate R(bps|kbps|mbps), reset, blackhole, cut;\n"
    "`*` means every region.\n"
    "\n"
    "Exit status: 0 success, 1 failure (the proxy's reason printed), 2 usage error.\n";

struct body {
    char *data;
    size_t len;
};

static size_t collect_cb(char *p, size_t size, size_t n, void *userdata)
{
    struct body *b = userdata;
    char *nd = realloc(b->data, b->len + size * n + 1);
    if (nd == NULL)
        return 0;
    memcpy(nd + b->len, p, size * n);
    b->data = nd;
    b->len += size * n;
    b->data[b->len] = '\0';
    return size * n;
}

/* The control address from DIR/chaos/links.json into url_base ("http://HOST:PORT"). */
static int control_url(const char *dir, char *out, size_t size)
{
    char path[1024];
    json_error_t err;
    snprintf(path, sizeof path, "%s/chaos/links.json", dir);
    json_t *doc = json_load_file(path, 0, &err);
    if (doc == NULL) {
        fprintf(stderr, "aragora-chaos fault: %s: %s (is the lab up with its proxy?)\n", path,
                err.text);
        return -1;
    }
    const char *control = json_string_value(json_object_get(doc, "control"));
    int rc = control != NULL ? 0 : -1;
    if (control != NULL)
        snprintf(out, size, "http://%s", control);
    else
        fprintf(stderr, "aragora-chaos fault: %s: key \"control\": missing\n", path);
    json_decref(doc);
    return rc;
}

/* One request; returns the status (0 when the proxy did not answer), the body in *answer. */
static long request(const char *method, const char *url, const char *payload, struct body *answer)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = NULL;
    long status = 0;
    if (h == NULL)
        return 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, HTTP_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, answer);
    if (payload != NULL) {
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
    }
    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    else
        fprintf(stderr, "aragora-chaos fault: %s %s: %s\n", method, url, curl_easy_strerror(rc));
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return status;
}

/* ---- output ---- */

static void state_text(json_t *st, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
#define ADD(...)                                                                                   \
    do {                                                                                           \
        int k_ = snprintf(out + used, size - used, __VA_ARGS__);                                   \
        if (k_ > 0 && (size_t)k_ < size - used)                                                    \
            used += (size_t)k_;                                                                    \
    } while (0)
    if (json_is_true(json_object_get(st, "cut")))
        ADD("%scut", used ? " " : "");
    if (json_is_true(json_object_get(st, "reset")))
        ADD("%sreset", used ? " " : "");
    if (json_is_true(json_object_get(st, "blackhole")))
        ADD("%sblackhole", used ? " " : "");
    json_int_t delay = json_integer_value(json_object_get(st, "delay_ms"));
    json_int_t jitter = json_integer_value(json_object_get(st, "jitter_ms"));
    if (delay > 0 || jitter > 0)
        ADD("%sdelay %lldms+-%lldms", used ? " " : "", (long long)delay, (long long)jitter);
    double loss = json_number_value(json_object_get(st, "loss_pct"));
    if (loss > 0)
        ADD("%sloss %.3g%%", used ? " " : "", loss);
    json_int_t rate = json_integer_value(json_object_get(st, "rate_bps"));
    if (rate > 0)
        ADD("%srate %lldbps", used ? " " : "", (long long)rate);
    if (used == 0)
        ADD("ok");
#undef ADD
}

/* Namespace mode: one row per ordered pair of regions (every service of theirs alike). */
static void print_netns(json_t *netns)
{
    char st[160];
    json_t *pairs = json_object_get(netns, "pairs"), *p;
    size_t i;
    printf("namespace mode: bridge %s, NFQUEUE %lld, %lld packets held now\n\n",
           json_string_value(json_object_get(netns, "bridge")),
           (long long)json_integer_value(json_object_get(netns, "queue")),
           (long long)json_integer_value(json_object_get(netns, "packets_held")));
    printf("%-14s %-14s %-28s %-34s %s\n", "FROM", "TO", "ADDRESSES", "STATE", "DELAYED");
    json_array_foreach(pairs, i, p)
    {
        char addrs[40];
        state_text(json_object_get(p, "state"), st, sizeof st);
        snprintf(addrs, sizeof addrs, "%s>%s",
                 json_string_value(json_object_get(p, "from_address")),
                 json_string_value(json_object_get(p, "to_address")));
        printf("%-14s %-14s %-28s %-34s %lld\n", json_string_value(json_object_get(p, "from")),
               json_string_value(json_object_get(p, "to")), addrs, st,
               (long long)json_integer_value(json_object_get(p, "packets_delayed")));
    }
}

static void print_table(json_t *doc)
{
    char st[160];
    printf("faults:  %s\n", json_string_value(json_object_get(doc, "faults")));
    printf("profile: %s\n", json_string_value(json_object_get(doc, "profile")));
    printf("version: %lld\n\n", (long long)json_integer_value(json_object_get(doc, "version")));
    json_t *netns = json_object_get(doc, "netns");
    if (netns != NULL) {
        print_netns(netns);
        return;
    }
    printf("%-14s %-14s %-10s %-40s %s\n", "FROM", "TO", "SERVICE", "STATE", "CONNS");
    json_t *links = json_object_get(doc, "links"), *l;
    size_t i;
    json_array_foreach(links, i, l)
    {
        state_text(json_object_get(l, "state"), st, sizeof st);
        printf("%-14s %-14s %-10s %-40s %lld\n", json_string_value(json_object_get(l, "from")),
               json_string_value(json_object_get(l, "to")),
               json_string_value(json_object_get(l, "service")), st,
               (long long)json_integer_value(json_object_get(l, "connections")));
    }
}

/* Print the outcome of a request: what key says on success, the error on failure. */
static int report(long status, struct body *answer, const char *key, bool json_out)
{
    json_t *doc = answer->data != NULL ? json_loads(answer->data, 0, NULL) : NULL;
    int rc = 1;
    if (status == 200 && doc != NULL) {
        rc = 0;
        if (json_out)
            fputs(answer->data, stdout);
        else if (key == NULL)
            print_table(doc);
        else
            printf("%s\n", json_string_value(json_object_get(doc, key)));
    } else if (status != 0) {
        const char *e = json_string_value(json_object_get(doc, "error"));
        fprintf(stderr, "aragora-chaos fault: the proxy refused (HTTP %ld): %s\n", status,
                e != NULL              ? e
                : answer->data != NULL ? answer->data
                                       : "(no body)");
    }
    json_decref(doc);
    free(answer->data);
    return rc;
}

/* ---- commands ---- */

static int put_text(const char *base, const char *path, const char *key, const char *text)
{
    char url[256];
    struct body answer = {0};
    snprintf(url, sizeof url, "%s%s", base, path);
    json_t *b = json_pack("{s:s}", key, text);
    char *payload = b != NULL ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    if (payload == NULL)
        return 1;
    long status = request("PUT", url, payload, &answer);
    free(payload);
    return report(status, &answer, key, false);
}

static int simple(const char *base, const char *method, const char *path, const char *key,
                  bool json_out)
{
    char url[256];
    struct body answer = {0};
    snprintf(url, sizeof url, "%s%s", base, path);
    return report(request(method, url, NULL, &answer), &answer, key, json_out);
}

struct args {
    const char *verb, *text, *dir;
    bool json, help;
};

static int parse_args(int argc, char **argv, struct args *a)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            a->help = true;
        else if (strcmp(argv[i], "--json") == 0)
            a->json = true;
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            a->dir = argv[++i];
        else if (a->verb == NULL)
            a->verb = argv[i];
        else if (a->text == NULL)
            a->text = argv[i];
        else
            return -1;
    }
    return 0;
}

static bool verb_is(const struct args *a, const char *v)
{
    return strcmp(a->verb, v) == 0;
}

static int usage_error(const char *what)
{
    fprintf(stderr, "aragora-chaos fault: %s\n\n%s", what, fault_usage);
    return 2;
}

static int dispatch(const struct args *a, const char *base)
{
    if (verb_is(a, "set"))
        return put_text(base, "/v1/faults", "faults", a->text);
    if (verb_is(a, "clear"))
        return simple(base, "DELETE", "/v1/faults", "faults", false);
    if (verb_is(a, "show"))
        return simple(base, "GET", "/v1/faults", NULL, a->json);
    if (strcmp(a->text, "none") == 0)
        return simple(base, "DELETE", "/v1/profile", "profile", false);
    return put_text(base, "/v1/profile", "profile", a->text);
}

int chaos_fault_main(int argc, char **argv)
{
    struct args a = {0};
    char base[128];
    if (parse_args(argc, argv, &a) != 0)
        return usage_error("too many arguments");
    if (a.help) {
        fputs(fault_usage, stdout);
        return 0;
    }
    if (a.verb == NULL)
        return usage_error("a command is required");
    bool needs_text = verb_is(&a, "set") || verb_is(&a, "profile");
    if (!needs_text && !verb_is(&a, "clear") && !verb_is(&a, "show"))
        return usage_error("unknown command");
    if (needs_text != (a.text != NULL))
        return usage_error(needs_text ? "the fault text is missing" : "unexpected argument");
    if (a.json && !verb_is(&a, "show"))
        return usage_error("--json goes with show");
    if (a.dir == NULL)
        return usage_error("--dir DIR is required");
    if (control_url(a.dir, base, sizeof base) != 0)
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = dispatch(&a, base);
    curl_global_cleanup();
    return rc;
}
