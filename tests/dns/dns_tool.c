/*
 * dns_tool: run ONE DNS provider operation (include/afc/dns.h) on a libuv loop and print its
 * result as one JSON line — the test driver of tests/dns/test_providers.py, and a way to try a
 * provider by hand (docs/dns.md).
 *
 *   dns_tool --provider powerdns|cloudflare|route53 --name N --zone Z [--ttl T] [--timeout-ms MS]
 *            [provider options] get
 *   dns_tool ... cas (--expect-none | --expect-address A [--expect-ttl T] [--expect-txt-ttl T]
 *                     [--expect-epoch E --expect-region R])
 *                    --address A --epoch E --region R
 *
 *   powerdns    --api-url URL [--server-id ID]            key: ARAGORA_DNS_POWERDNS_API_KEY
 *   cloudflare  [--api-url URL] --zone-id ID              token: ARAGORA_DNS_CLOUDFLARE_TOKEN
 *   route53     [--endpoint URL] --hosted-zone-id ID [--signing-region R]
 *               credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (optional)
 *
 * Secrets come only from the environment, never the command line (ps shows arguments).
 *
 * Output: {"outcome":"ok|conflict|retry|failed","found":{...},"message":"...",
 * "retry_after_ms":N}. The exit status is 0 whatever the outcome; 2 on a usage or configuration
 * error (with a message on stderr).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "afc/dns.h"
#include "afc/http_client.h"

struct tool {
    struct afc_dns_config cfg;
    bool cas, expect_none, have_expect;
    struct afc_dns_value expect, next;
    unsigned expect_txt_ttl;
    bool have_expect_txt_ttl;
    struct afc_dns_provider *provider;
    struct afc_http_client *http;
    bool answered;
};

enum opt {
    O_PROVIDER = 256,
    O_NAME,
    O_ZONE,
    O_TTL,
    O_TIMEOUT,
    O_API_URL,
    O_SERVER_ID,
    O_ZONE_ID,
    O_ENDPOINT,
    O_HOSTED_ZONE,
    O_SIGNING_REGION,
    O_EXPECT_NONE,
    O_EXPECT_ADDRESS,
    O_EXPECT_TTL,
    O_EXPECT_TXT_TTL,
    O_EXPECT_EPOCH,
    O_EXPECT_REGION,
    O_ADDRESS,
    O_EPOCH,
    O_REGION,
};

static const struct option options[] = {
    {"provider", required_argument, NULL, O_PROVIDER},
    {"name", required_argument, NULL, O_NAME},
    {"zone", required_argument, NULL, O_ZONE},
    {"ttl", required_argument, NULL, O_TTL},
    {"timeout-ms", required_argument, NULL, O_TIMEOUT},
    {"api-url", required_argument, NULL, O_API_URL},
    {"server-id", required_argument, NULL, O_SERVER_ID},
    {"zone-id", required_argument, NULL, O_ZONE_ID},
    {"endpoint", required_argument, NULL, O_ENDPOINT},
    {"hosted-zone-id", required_argument, NULL, O_HOSTED_ZONE},
    {"signing-region", required_argument, NULL, O_SIGNING_REGION},
    {"expect-none", no_argument, NULL, O_EXPECT_NONE},
    {"expect-address", required_argument, NULL, O_EXPECT_ADDRESS},
    {"expect-ttl", required_argument, NULL, O_EXPECT_TTL},
    {"expect-txt-ttl", required_argument, NULL, O_EXPECT_TXT_TTL},
    {"expect-epoch", required_argument, NULL, O_EXPECT_EPOCH},
    {"expect-region", required_argument, NULL, O_EXPECT_REGION},
    {"address", required_argument, NULL, O_ADDRESS},
    {"epoch", required_argument, NULL, O_EPOCH},
    {"region", required_argument, NULL, O_REGION},
    {NULL, 0, NULL, 0},
};

static int usage(const char *why)
{
    fprintf(stderr,
            "dns_tool: %s\n"
            "usage: dns_tool --provider powerdns|cloudflare|route53 --name N --zone Z [--ttl T]\n"
            "                [--timeout-ms MS] [provider options] get\n"
            "       dns_tool ... cas (--expect-none | --expect-address A [--expect-ttl T]\n"
            "                [--expect-txt-ttl T] [--expect-epoch E --expect-region R])\n"
            "                --address A --epoch E --region R\n",
            why);
    return 2;
}

static bool copy(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) {
        return false;
    }
    memcpy(dst, src, n + 1);
    return true;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (s[0] < '0' || s[0] > '9') {
        return false;
    }
    unsigned long long v = strtoull(s, &end, 10);
    *out = v;
    return *end == '\0';
}

static bool parse_unsigned(const char *s, unsigned *out)
{
    uint64_t v;
    if (!parse_u64(s, &v) || v > 0xffffffffu) {
        return false;
    }
    *out = (unsigned)v;
    return true;
}

static bool set_provider(struct afc_dns_config *c, const char *name)
{
    static const struct {
        const char *name;
        enum afc_dns_provider_kind kind;
    } kinds[] = {{"powerdns", AFC_DNS_POWERDNS},
                 {"cloudflare", AFC_DNS_CLOUDFLARE},
                 {"route53", AFC_DNS_ROUTE53},
                 {"none", AFC_DNS_NONE}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(name, kinds[i].name) == 0) {
            c->provider = kinds[i].kind;
            return true;
        }
    }
    return false;
}

/* The URL options mean the API of whichever provider is chosen. */
static bool set_url(struct afc_dns_config *c, const char *url)
{
    return copy(c->powerdns.api_url, sizeof c->powerdns.api_url, url) &&
           copy(c->cloudflare.api_url, sizeof c->cloudflare.api_url, url);
}

static bool apply_value_opt(struct tool *t, int o, const char *arg)
{
    switch (o) {
    case O_EXPECT_NONE:
        t->expect_none = true;
        return true;
    case O_EXPECT_ADDRESS:
        t->have_expect = t->expect.exists = true;
        return copy(t->expect.address, sizeof t->expect.address, arg);
    case O_EXPECT_TTL:
        return parse_unsigned(arg, &t->expect.ttl);
    case O_EXPECT_TXT_TTL:
        t->have_expect_txt_ttl = true;
        return parse_unsigned(arg, &t->expect_txt_ttl);
    case O_EXPECT_EPOCH:
        return parse_u64(arg, &t->expect.epoch);
    case O_EXPECT_REGION:
        return copy(t->expect.region, sizeof t->expect.region, arg);
    case O_ADDRESS:
        return copy(t->next.address, sizeof t->next.address, arg);
    case O_EPOCH:
        return parse_u64(arg, &t->next.epoch);
    case O_REGION:
        return copy(t->next.region, sizeof t->next.region, arg);
    }
    return false;
}

static bool apply_opt(struct tool *t, int o, const char *arg)
{
    struct afc_dns_config *c = &t->cfg;
    switch (o) {
    case O_PROVIDER:
        return set_provider(c, arg);
    case O_NAME:
        return copy(c->name, sizeof c->name, arg);
    case O_ZONE:
        return copy(c->zone, sizeof c->zone, arg);
    case O_TTL:
        return parse_unsigned(arg, &c->ttl);
    case O_TIMEOUT:
        return parse_unsigned(arg, &c->timeout_ms);
    case O_API_URL:
        return set_url(c, arg);
    case O_SERVER_ID:
        return copy(c->powerdns.server_id, sizeof c->powerdns.server_id, arg);
    case O_ZONE_ID:
        return copy(c->cloudflare.zone_id, sizeof c->cloudflare.zone_id, arg);
    case O_ENDPOINT:
        return copy(c->route53.endpoint, sizeof c->route53.endpoint, arg);
    case O_HOSTED_ZONE:
        return copy(c->route53.hosted_zone_id, sizeof c->route53.hosted_zone_id, arg);
    case O_SIGNING_REGION:
        return copy(c->route53.region, sizeof c->route53.region, arg);
    }
    return apply_value_opt(t, o, arg);
}

static bool env_secret(char *dst, size_t cap, const char *var)
{
    const char *v = getenv(var);
    return v == NULL || copy(dst, cap, v);
}

static int load_secrets(struct afc_dns_config *c)
{
    if (!env_secret(c->powerdns.api_key, sizeof c->powerdns.api_key,
                    "ARAGORA_DNS_POWERDNS_API_KEY") ||
        !env_secret(c->cloudflare.token, sizeof c->cloudflare.token,
                    "ARAGORA_DNS_CLOUDFLARE_TOKEN") ||
        !env_secret(c->route53.access_key_id, sizeof c->route53.access_key_id,
                    "AWS_ACCESS_KEY_ID") ||
        !env_secret(c->route53.secret_access_key, sizeof c->route53.secret_access_key,
                    "AWS_SECRET_ACCESS_KEY") ||
        !env_secret(c->route53.session_token, sizeof c->route53.session_token,
                    "AWS_SESSION_TOKEN")) {
        return usage("a secret in the environment is too long");
    }
    return 0;
}

/* The expectation as the caller of afc_dns_cas passes it. */
static int finish_expect(struct tool *t)
{
    if (t->expect_none == t->have_expect) {
        return usage("cas needs --expect-none or --expect-address");
    }
    if (t->expect_none) {
        memset(&t->expect, 0, sizeof t->expect);
    } else {
        t->expect.stamped = t->expect.epoch != 0;
        if (t->expect.stamped != (t->expect.region[0] != '\0')) {
            return usage("--expect-epoch and --expect-region go together");
        }
        if (t->expect.ttl == 0) {
            t->expect.ttl = t->cfg.ttl != 0 ? t->cfg.ttl : 5;
        }
        if (t->have_expect_txt_ttl) { /* route53's DELETE of the TXT (dns/route53.c) */
            snprintf(t->expect.provider_ref[1], sizeof t->expect.provider_ref[1], "%u",
                     t->expect_txt_ttl);
        }
    }
    if (t->next.address[0] == '\0' || t->next.epoch == 0 || t->next.region[0] == '\0') {
        return usage("cas needs --address, --epoch and --region");
    }
    return 0;
}

static int parse_args(struct tool *t, int argc, char **argv)
{
    int o;
    t->cfg.ttl = 5;
    t->cfg.timeout_ms = 5000;
    while ((o = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (o == '?' || !apply_opt(t, o, optarg != NULL ? optarg : "")) {
            return usage(o == '?' ? "unknown option" : "bad option value");
        }
    }
    if (optind != argc - 1) {
        return usage("one operation: get or cas");
    }
    if (strcmp(argv[optind], "cas") == 0) {
        t->cas = true;
    } else if (strcmp(argv[optind], "get") != 0) {
        return usage("the operation is get or cas");
    }
    if (t->cfg.name[0] == '\0' || t->cfg.zone[0] == '\0') {
        return usage("--name and --zone are required");
    }
    int rc = load_secrets(&t->cfg);
    return rc != 0 || !t->cas ? rc : finish_expect(t);
}

static const char *outcome_name(enum afc_dns_outcome o)
{
    switch (o) {
    case AFC_DNS_OK:
        return "ok";
    case AFC_DNS_CONFLICT:
        return "conflict";
    case AFC_DNS_RETRY:
        return "retry";
    case AFC_DNS_FAILED:
        return "failed";
    }
    return "unknown";
}

static void print_result(const struct afc_dns_result *res)
{
    const struct afc_dns_value *f = &res->found;
    json_t *found = json_pack("{s:b, s:s, s:I, s:b, s:I, s:s, s:[s, s]}", "exists", f->exists,
                              "address", f->address, "ttl", (json_int_t)f->ttl, "stamped",
                              f->stamped, "epoch", (json_int_t)f->epoch, "region", f->region,
                              "provider_ref", f->provider_ref[0], f->provider_ref[1]);
    json_t *doc =
        json_pack("{s:s, s:o, s:s, s:I}", "outcome", outcome_name(res->outcome), "found", found,
                  "message", res->message, "retry_after_ms", (json_int_t)res->retry_after_ms);
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    printf("%s\n", text != NULL ? text : "{\"outcome\":\"unknown\"}");
    fflush(stdout);
    free(text);
    json_decref(doc);
}

static void done_cb(void *data, const struct afc_dns_result *res)
{
    struct tool *t = data;
    t->answered = true;
    print_result(res);
    afc_dns_provider_free(t->provider);
    t->provider = NULL;
    afc_http_client_close(t->http, NULL, NULL);
    t->http = NULL;
}

static int run(struct tool *t, uv_loop_t *loop)
{
    struct afc_err err = {0};
    t->http = afc_http_client_new(loop);
    if (t->http == NULL) {
        fprintf(stderr, "dns_tool: out of memory\n");
        return 2;
    }
    int rc = afc_dns_provider_new(loop, t->http, &t->cfg, &t->provider, &err);
    if (rc != 0) {
        fprintf(stderr, "dns_tool: %s (%s)\n", err.msg, afc_errname(rc));
    } else {
        rc = t->cas ? afc_dns_cas(t->provider, &t->expect, &t->next, done_cb, t)
                    : afc_dns_get(t->provider, done_cb, t);
        if (rc != 0) {
            fprintf(stderr, "dns_tool: the operation did not start: %s\n", afc_strerror(rc));
            afc_dns_provider_free(t->provider);
        }
    }
    if (rc != 0) {
        afc_http_client_close(t->http, NULL, NULL);
    }
    uv_run(loop, UV_RUN_DEFAULT); /* the operation, then the handles' close callbacks */
    return rc != 0 ? 2 : 0;
}

int main(int argc, char **argv)
{
    static struct tool t; /* large (the configuration holds the secrets' buffers) */
    int rc = parse_args(&t, argc, argv);
    if (rc != 0) {
        return rc;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    rc = run(&t, &loop);
    if (rc == 0 && !t.answered) {
        fprintf(stderr, "dns_tool: the loop ended without an answer\n");
        rc = 1;
    }
    uv_loop_close(&loop);
    explicit_bzero(&t.cfg, sizeof t.cfg);
    return rc;
}
