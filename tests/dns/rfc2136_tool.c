/*
 * Test driver for the rfc2136 provider and verification (tests/dns/test_rfc2136.py): one
 * operation per run, on a libuv loop, through the public interface (include/afc/dns.h); prints
 * one JSON line with the outcome, what was found and the message, then exits 0. Exit 1: the
 * operation did not start (the line says why); 2: usage.
 *
 *   rfc2136_tool get    --server H:P --zone Z --name N [--timeout-ms T]
 *   rfc2136_tool cas    --server H:P --zone Z --name N [--timeout-ms T] [--ttl S]
 *                       (--expect-none | --expect-address A [--expect-epoch E --expect-region R])
 *                       --address A --epoch E --region R
 *   rfc2136_tool verify --server H:P [--server H:P ...] --name N --address A --epoch E
 *                       --region R [--timeout-ms T]
 *
 * The TSIG key comes from the environment, never argv: ARAGORA_TSIG_SECRET (base64),
 * ARAGORA_TSIG_NAME (default "aragora-key."), ARAGORA_TSIG_ALGORITHM (default hmac-sha256).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "afc/dns.h"

struct args {
    const char *op;
    const char *servers[AFC_DNS_SERVERS];
    unsigned n_servers;
    const char *zone, *name;
    unsigned timeout_ms, ttl;
    bool expect_none;
    struct afc_dns_value expect, next;
};

struct run {
    const char *op;
    uint64_t started_ns;
    bool done;
};

static int usage(const char *why)
{
    fprintf(stderr,
            "rfc2136_tool: %s\n"
            "usage: rfc2136_tool get|cas|verify --server H:P [--zone Z] --name N [--timeout-ms T] "
            "[--ttl S]\n"
            "       [--expect-none | --expect-address A [--expect-epoch E --expect-region R]]\n"
            "       [--address A --epoch E --region R]\n"
            "TSIG from ARAGORA_TSIG_SECRET, ARAGORA_TSIG_NAME, ARAGORA_TSIG_ALGORITHM\n",
            why);
    return 2;
}

static json_t *value_json(const struct afc_dns_value *v)
{
    return json_pack("{s:b, s:s, s:I, s:b, s:I, s:s}", "exists", v->exists, "address", v->address,
                     "ttl", (json_int_t)v->ttl, "stamped", v->stamped, "epoch",
                     (json_int_t)v->epoch, "region", v->region);
}

static void print_json(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    printf("%s\n", s != NULL ? s : "{}");
    fflush(stdout);
    free(s);
    json_decref(o);
}

static json_int_t elapsed_ms(const struct run *r)
{
    return (json_int_t)((uv_hrtime() - r->started_ns) / 1000000);
}

static const char *outcome_name(enum afc_dns_outcome o)
{
    switch (o) {
    case AFC_DNS_OK:
        return "OK";
    case AFC_DNS_CONFLICT:
        return "CONFLICT";
    case AFC_DNS_RETRY:
        return "RETRY";
    case AFC_DNS_FAILED:
        return "FAILED";
    }
    return "?";
}

static void dns_done_cb(void *data, const struct afc_dns_result *res)
{
    struct run *r = data;
    r->done = true;
    print_json(json_pack("{s:s, s:s, s:o, s:s, s:I}", "op", r->op, "outcome",
                         outcome_name(res->outcome), "found", value_json(&res->found), "message",
                         res->message, "elapsed_ms", elapsed_ms(r)));
}

static void verify_done_cb(void *data, const struct afc_dns_verify_result *res)
{
    struct run *r = data;
    r->done = true;
    print_json(json_pack("{s:s, s:b, s:I, s:I, s:s, s:I}", "op", r->op, "all_agree", res->all_agree,
                         "n_servers", (json_int_t)res->n_servers, "n_agree",
                         (json_int_t)res->n_agree, "message", res->message, "elapsed_ms",
                         elapsed_ms(r)));
}

static int not_started(const char *op, int rc, const char *msg)
{
    print_json(json_pack("{s:s, s:s, s:s}", "op", op, "error", afc_errname(rc), "message", msg));
    return 1;
}

/* ---- arguments ---- */

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (s == NULL || *s < '0' || *s > '9') {
        return -1;
    }
    unsigned long long v = strtoull(s, &end, 10);
    *out = v;
    return *end == '\0' ? 0 : -1;
}

static int parse_option(struct args *a, const char *opt, const char *val)
{
    uint64_t n;
    if (strcmp(opt, "--server") == 0 && a->n_servers < AFC_DNS_SERVERS) {
        a->servers[a->n_servers++] = val;
    } else if (strcmp(opt, "--zone") == 0) {
        a->zone = val;
    } else if (strcmp(opt, "--name") == 0) {
        a->name = val;
    } else if (strcmp(opt, "--timeout-ms") == 0 && parse_u64(val, &n) == 0) {
        a->timeout_ms = (unsigned)n;
    } else if (strcmp(opt, "--ttl") == 0 && parse_u64(val, &n) == 0) {
        a->ttl = (unsigned)n;
    } else if (strcmp(opt, "--expect-address") == 0) {
        a->expect.exists = true;
        snprintf(a->expect.address, sizeof a->expect.address, "%s", val);
    } else if (strcmp(opt, "--expect-epoch") == 0 && parse_u64(val, &a->expect.epoch) == 0) {
        a->expect.stamped = true;
    } else if (strcmp(opt, "--expect-region") == 0) {
        snprintf(a->expect.region, sizeof a->expect.region, "%s", val);
    } else if (strcmp(opt, "--address") == 0) {
        snprintf(a->next.address, sizeof a->next.address, "%s", val);
    } else if (strcmp(opt, "--epoch") == 0 && parse_u64(val, &a->next.epoch) == 0) {
        a->next.stamped = true;
    } else if (strcmp(opt, "--region") == 0) {
        snprintf(a->next.region, sizeof a->next.region, "%s", val);
    } else {
        return -1;
    }
    return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
    *a = (struct args){.zone = "", .name = "", .timeout_ms = 5000, .ttl = 5};
    if (argc < 2) {
        return -1;
    }
    a->op = argv[1];
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--expect-none") == 0) {
            a->expect_none = true;
        } else if (i + 1 >= argc || parse_option(a, argv[i], argv[i + 1]) != 0) {
            fprintf(stderr, "rfc2136_tool: bad option %s\n", argv[i]);
            return -1;
        } else {
            i++;
        }
    }
    a->next.exists = true;
    return a->n_servers > 0 && a->name[0] != '\0' ? 0 : -1;
}

static void fill_config(const struct args *a, struct afc_dns_config *cfg)
{
    const char *secret = getenv("ARAGORA_TSIG_SECRET");
    const char *key = getenv("ARAGORA_TSIG_NAME");
    const char *alg = getenv("ARAGORA_TSIG_ALGORITHM");
    memset(cfg, 0, sizeof *cfg);
    cfg->provider = AFC_DNS_RFC2136;
    snprintf(cfg->name, sizeof cfg->name, "%s", a->name);
    snprintf(cfg->zone, sizeof cfg->zone, "%s", a->zone);
    cfg->ttl = a->ttl;
    cfg->timeout_ms = a->timeout_ms;
    for (unsigned i = 0; i < a->n_servers; i++) {
        snprintf(cfg->verify_servers[i], sizeof cfg->verify_servers[i], "%s", a->servers[i]);
    }
    cfg->n_verify_servers = a->n_servers;
    snprintf(cfg->rfc2136.server, sizeof cfg->rfc2136.server, "%s", a->servers[0]);
    snprintf(cfg->rfc2136.tsig_name, sizeof cfg->rfc2136.tsig_name, "%s",
             key != NULL ? key : "aragora-key.");
    snprintf(cfg->rfc2136.tsig_algorithm, sizeof cfg->rfc2136.tsig_algorithm, "%s",
             alg != NULL ? alg : "hmac-sha256");
    snprintf(cfg->rfc2136.tsig_secret, sizeof cfg->rfc2136.tsig_secret, "%s",
             secret != NULL ? secret : "");
}

/* ---- running ---- */

static int run_provider(uv_loop_t *loop, const struct args *a, const struct afc_dns_config *cfg,
                        struct run *r)
{
    struct afc_dns_provider *p = NULL;
    struct afc_err err = {0};
    int rc = afc_dns_provider_new(loop, NULL, cfg, &p, &err);
    if (rc != 0) {
        return not_started(a->op, rc, err.msg);
    }
    if (strcmp(a->op, "get") == 0) {
        rc = afc_dns_get(p, dns_done_cb, r);
    } else {
        struct afc_dns_value none = {0};
        rc = afc_dns_cas(p, a->expect_none ? &none : &a->expect, &a->next, dns_done_cb, r);
    }
    if (rc == 0) {
        uv_run(loop, UV_RUN_DEFAULT);
    }
    afc_dns_provider_free(p);
    return rc == 0 ? 0 : not_started(a->op, rc, afc_strerror(rc));
}

static int run_verify(uv_loop_t *loop, const struct args *a, const struct afc_dns_config *cfg,
                      struct run *r)
{
    int rc = afc_dns_verify_start(loop, cfg, &a->next, verify_done_cb, r, NULL);
    if (rc != 0) {
        return not_started(a->op, rc, afc_strerror(rc));
    }
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}

int main(int argc, char **argv)
{
    struct args a;
    if (parse_args(argc, argv, &a) != 0) {
        return usage("missing or bad arguments");
    }
    struct afc_dns_config cfg;
    fill_config(&a, &cfg);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct run r = {.op = a.op, .started_ns = uv_hrtime()};
    int rc;
    if (strcmp(a.op, "get") == 0 || strcmp(a.op, "cas") == 0) {
        rc = run_provider(&loop, &a, &cfg, &r);
    } else if (strcmp(a.op, "verify") == 0) {
        rc = run_verify(&loop, &a, &cfg, &r);
    } else {
        rc = usage("unknown operation");
    }
    if (rc == 0 && !r.done) {
        rc = not_started(a.op, AFC_EINTERNAL, "the loop ended without a callback");
    }
    /* Every handle must be closed by now: a leftover one would keep this loop from closing. */
    if (uv_loop_close(&loop) != 0) {
        fprintf(stderr, "rfc2136_tool: handles left open on the loop\n");
        rc = rc == 0 ? 3 : rc;
    }
    return rc;
}
