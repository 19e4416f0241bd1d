/*
 * The rfc2136 provider: RFC 2136 dynamic UPDATE signed with TSIG (RFC 8945), whose
 * prerequisites make it a real compare-and-set (include/afc/dns.h; docs/dns.md "RFC 2136 with
 * TSIG").
 *
 * get  dns/lookup.c asks the configured server for the name's A (or AAAA) and TXT, RD=0.
 * cas  dns/wire.c builds one UPDATE for the zone — prerequisites: the expected A/AAAA RRset and
 *      TXT stamp RRset, value-dependent (§2.4.2), or their absence (§2.4.3); updates: delete
 *      both RRsets, add the new address and stamp — signs it, and dns/transport.c sends it over
 *      UDP (retransmitted; TCP when the answer is truncated). The server evaluates the
 *      prerequisites and applies the update atomically, so a deposed leader's late write, whose
 *      expected stamp carries an older epoch, fails whole. An answer whose TSIG does not verify is
 *      ignored (dns_update_reply_is_credible()), as a forged one would be. The RCODE decides the
 *      outcome (dns_update_outcome()); on CONFLICT the name is read again to report what it
 *      holds.
 *
 * A retransmitted UPDATE whose first copy was applied (its answer lost) fails its own
 * prerequisites; when the name then holds exactly the new value, the outcome is OK.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dns/lookup.h"
#include "dns/provider_internal.h"
#include "dns/transport.h"
#include "dns/wire.h"

#define DEFAULT_TIMEOUT_MS 5000

struct op;

struct rfc2136 {
    struct sockaddr_storage server;
    const char *algorithm; /* ldns form, static */
    struct op *ops;        /* running operations, cancelled by free */
};

struct op {
    struct op *prev, *next;
    struct afc_dns_provider *p;
    afc_dns_cb cb;
    void *data;
    bool is_cas;
    struct dns_lookup *lookup;     /* running read, or NULL */
    struct dns_exchange *exchange; /* running UPDATE, or NULL */
    struct afc_dns_value next_value;
    struct dns_request_mac mac;
    struct dns_update_reply reply;
    bool
        sent_twice; /* a UDP retransmission, or UDP then TCP: the server may have seen two copies */
    char rcode_text[48]; /* "NXRRSET", "NOTAUTH (TSIG BADSIG)" */
    struct afc_dns_result res;
};

/* The result's message (vsnprintf: a long server answer is cut, never overflows). */
static void say(struct afc_dns_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void say(struct afc_dns_result *res, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof res->message, fmt, ap);
    va_end(ap);
}

static struct rfc2136 *impl(const struct afc_dns_provider *p)
{
    return p->impl;
}

static unsigned timeout_ms(const struct afc_dns_provider *p)
{
    return p->cfg.timeout_ms != 0 ? p->cfg.timeout_ms : DEFAULT_TIMEOUT_MS;
}

/* ---- set-up ---- */

static int check_config(const struct afc_dns_config *c, struct afc_err *err)
{
    if (c->rfc2136.server[0] == '\0') {
        return afc_err_set(err, AFC_ECONFIG, "dns.rfc2136.server is required");
    }
    if (!dns_name_in_zone(c->name, c->zone)) {
        return afc_err_set(
            err, AFC_ECONFIG,
            "dns.name \"%s\" must be an absolute name (trailing dot) inside dns.zone "
            "\"%s\"",
            c->name, c->zone);
    }
    if (c->rfc2136.tsig_name[0] == '\0' || c->rfc2136.tsig_secret[0] == '\0') {
        return afc_err_set(err, AFC_ECONFIG,
                           "dns.rfc2136.tsig_name and tsig_secret are required (updates are "
                           "always signed)");
    }
    if (!dns_tsig_secret_is_valid(c->rfc2136.tsig_secret)) {
        return afc_err_set(err, AFC_ECONFIG, "dns.rfc2136.tsig_secret is not valid base64");
    }
    if (dns_tsig_algorithm(c->rfc2136.tsig_algorithm) == NULL) {
        return afc_err_set(err, AFC_ECONFIG,
                           "dns.rfc2136.tsig_algorithm \"%s\": use hmac-sha256, hmac-sha512 or "
                           "hmac-sha1",
                           c->rfc2136.tsig_algorithm);
    }
    return 0;
}

static int rfc_init(struct afc_dns_provider *p, struct afc_err *err)
{
    struct sockaddr_storage server;
    int rc = check_config(&p->cfg, err);
    if (rc == 0 && (rc = dns_server_parse(p->cfg.rfc2136.server, &server, err)) != 0) {
        afc_err_wrap(err, "dns.rfc2136.server");
    }
    if (rc != 0) {
        return afc_err_wrap(err, "dns (rfc2136)");
    }
    struct rfc2136 *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return afc_err_set(err, AFC_ENOMEM, "dns (rfc2136): out of memory");
    }
    r->server = server;
    r->algorithm = dns_tsig_algorithm(p->cfg.rfc2136.tsig_algorithm);
    p->impl = r;
    return 0;
}

/* ---- operations ---- */

static struct op *op_new(struct afc_dns_provider *p, afc_dns_cb cb, void *data)
{
    struct op *op = calloc(1, sizeof *op);
    if (op == NULL) {
        return NULL;
    }
    op->p = p;
    op->cb = cb;
    op->data = data;
    op->next = impl(p)->ops;
    if (op->next != NULL) {
        op->next->prev = op;
    }
    impl(p)->ops = op;
    return op;
}

static void op_free(struct op *op)
{
    struct rfc2136 *r = impl(op->p);
    if (op->prev != NULL) {
        op->prev->next = op->next;
    } else {
        r->ops = op->next;
    }
    if (op->next != NULL) {
        op->next->prev = op->prev;
    }
    dns_lookup_cancel(op->lookup);
    dns_exchange_cancel(op->exchange);
    free(op);
}

/* Frees the operation, then reports: the callback may free the provider. */
static void complete(struct op *op)
{
    afc_dns_cb cb = op->cb;
    void *data = op->data;
    struct afc_dns_result res = op->res;
    op_free(op);
    cb(data, &res);
}

static void rfc_free(struct afc_dns_provider *p)
{
    struct rfc2136 *r = impl(p);
    if (r == NULL) {
        return;
    }
    while (r->ops != NULL) {
        op_free(r->ops);
    }
    free(r);
    p->impl = NULL;
}

/* ---- reading ---- */

static void after_conflict_read(struct op *op, const struct dns_lookup_result *r)
{
    struct afc_dns_result *res = &op->res;
    if (r->outcome != AFC_DNS_OK) {
        say(res,
            "prerequisites not met (%s): the name holds something else; reading it failed: "
            "%s",
            op->rcode_text, r->message);
        return;
    }
    res->found = r->value;
    char desc[128];
    dns_value_describe(&r->value, desc, sizeof desc);
    if (op->sent_twice && r->value.exists && r->value.stamped &&
        dns_value_agrees(&r->value, &op->next_value)) {
        res->outcome = AFC_DNS_OK;
        say(res,
            "applied: the name holds %s (an earlier copy of this UPDATE was applied; the "
            "retransmission found its prerequisites gone: %s)",
            desc, op->rcode_text);
        return;
    }
    say(res, "prerequisites not met (%s): the name holds %s, not the expected value",
        op->rcode_text, desc);
}

static void read_cb(void *data, const struct dns_lookup_result *r)
{
    struct op *op = data;
    op->lookup = NULL;
    if (op->is_cas) {
        after_conflict_read(op, r);
    } else {
        op->res.outcome = r->outcome;
        op->res.found = r->value;
        say(&op->res, "%s", r->message);
    }
    complete(op);
}

static int start_read(struct op *op)
{
    const struct afc_dns_provider *p = op->p;
    return dns_lookup_start(p->loop, (const struct sockaddr *)&impl(p)->server,
                            p->cfg.rfc2136.server, p->cfg.name, timeout_ms(p), read_cb, op,
                            &op->lookup);
}

static int rfc_get(struct afc_dns_provider *p, afc_dns_cb cb, void *data)
{
    struct op *op = op_new(p, cb, data);
    if (op == NULL) {
        return AFC_ENOMEM;
    }
    int rc = start_read(op);
    if (rc != 0) {
        op_free(op);
    }
    return rc;
}

/* ---- the UPDATE ---- */

static struct dns_tsig_key tsig_key(const struct afc_dns_provider *p)
{
    return (struct dns_tsig_key){.name = p->cfg.rfc2136.tsig_name,
                                 .algorithm = impl(p)->algorithm,
                                 .secret = p->cfg.rfc2136.tsig_secret};
}

static bool update_accept(void *data, const uint8_t *wire, size_t len, char *why, size_t cap)
{
    struct op *op = data;
    struct dns_tsig_key key = tsig_key(op->p);
    struct afc_err err = {0};
    /* TSIG's "time signed" is wall-clock time by definition (RFC 8945 §5.2.3). */
    uint64_t now_s = (uint64_t)time(NULL);
    if (dns_update_reply_decode(wire, len, &key, &op->mac, now_s, &op->reply, &err) != 0) {
        snprintf(why, cap, "%s", err.msg);
        return false;
    }
    if (!dns_update_reply_is_credible(&op->reply)) {
        snprintf(why, cap, "%s", op->reply.why);
        return false;
    }
    return true;
}

/* Why the server refused, and what to check. */
static const char *failure_hint(const struct dns_update_reply *r)
{
    if (r->tsig_error != 0 || r->rcode == DNS_RCODE_NOTAUTH || r->rcode == DNS_RCODE_REFUSED) {
        return "the server does not accept this key for the zone: check dns.rfc2136.tsig_name, "
               "tsig_secret and tsig_algorithm, and on PowerDNS the zone's TSIG-ALLOW-DNSUPDATE "
               "metadata and allow-dnsupdate-from";
    }
    if (r->rcode == DNS_RCODE_NOTZONE) {
        return "dns.name is not inside dns.zone as the server sees it";
    }
    if (r->rcode == DNS_RCODE_NOTIMP) {
        return "the server does not do dynamic updates (PowerDNS: dnsupdate=yes)";
    }
    return "the server could not use the update";
}

static void describe_rcode(struct op *op)
{
    char a[16], b[16];
    const char *rc = dns_rcode_name(op->reply.rcode, a, sizeof a);
    if (op->reply.tsig_error != 0) {
        snprintf(op->rcode_text, sizeof op->rcode_text, "%s (TSIG %s)", rc,
                 dns_rcode_name(op->reply.tsig_error, b, sizeof b));
    } else {
        snprintf(op->rcode_text, sizeof op->rcode_text, "%s", rc);
    }
}

static void update_answered(struct op *op)
{
    struct afc_dns_provider *p = op->p;
    struct afc_dns_result *res = &op->res;
    char desc[128];
    describe_rcode(op);
    res->outcome = dns_update_outcome(op->reply.rcode, op->reply.tsig_error);
    switch (res->outcome) {
    case AFC_DNS_OK:
        res->found = op->next_value;
        dns_value_describe(&res->found, desc, sizeof desc);
        say(res, "%s applied the UPDATE: %s now holds %s", p->cfg.rfc2136.server, p->cfg.name,
            desc);
        break;
    case AFC_DNS_CONFLICT: {
        int rc = start_read(op);
        if (rc == 0) {
            return; /* read_cb completes */
        }
        say(res, "prerequisites not met (%s); reading the name failed: %s", op->rcode_text,
            afc_strerror(rc));
        break;
    }
    case AFC_DNS_RETRY:
        say(res, "%s answered the UPDATE with %s", p->cfg.rfc2136.server, op->rcode_text);
        break;
    case AFC_DNS_FAILED:
        say(res, "%s refused the UPDATE with %s: %s", p->cfg.rfc2136.server, op->rcode_text,
            failure_hint(&op->reply));
        break;
    }
    complete(op);
}

static void update_cb(void *data, const struct dns_exchange_result *x)
{
    struct op *op = data;
    op->exchange = NULL;
    op->sent_twice = x->transmissions > 1 || x->over_tcp;
    if (x->status != 0) {
        op->res.outcome = AFC_DNS_RETRY;
        say(&op->res, "UPDATE to %s: %s", op->p->cfg.rfc2136.server, x->error);
        complete(op);
        return;
    }
    update_answered(op);
}

static bool address_is_valid(const char *a)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, a, buf) == 1 || inet_pton(AF_INET6, a, buf) == 1;
}

/* The stamp of v survives formatting and parsing (epoch > 0, region of a-z 0-9 -). */
static bool stamp_is_valid(const struct afc_dns_value *v)
{
    char text[AFC_DNS_REGION_MAX + 48], region[AFC_DNS_REGION_MAX];
    uint64_t epoch;
    return afc_dns_stamp_format(v->epoch, v->region, text, sizeof text) == 0 &&
           afc_dns_stamp_parse(text, &epoch, region, sizeof region) && epoch == v->epoch &&
           strcmp(region, v->region) == 0;
}

static int start_update(struct op *op, const struct afc_dns_value *expect)
{
    const struct afc_dns_provider *p = op->p;
    struct dns_tsig_key key = tsig_key(p);
    struct dns_update u = {.zone = p->cfg.zone,
                           .name = p->cfg.name,
                           .expect = expect,
                           .next = &op->next_value,
                           .ttl = p->cfg.ttl};
    uint8_t *wire = NULL;
    size_t len = 0;
    int rc = dns_random_id(&u.id);
    if (rc == 0) {
        rc = dns_update_encode(&u, &key, &wire, &len, &op->mac, NULL);
    }
    if (rc != 0) {
        return rc;
    }
    struct dns_exchange_params x = {.server = (const struct sockaddr *)&impl(p)->server,
                                    .msg = wire,
                                    .len = len,
                                    .timeout_ms = timeout_ms(p),
                                    .accept = update_accept,
                                    .cb = update_cb,
                                    .data = op};
    rc = dns_exchange_start(p->loop, &x, &op->exchange);
    free(wire);
    return rc;
}

static int rfc_cas(struct afc_dns_provider *p, const struct afc_dns_value *expect,
                   const struct afc_dns_value *next, afc_dns_cb cb, void *data)
{
    if (!address_is_valid(next->address) || !stamp_is_valid(next) ||
        (expect->exists && !address_is_valid(expect->address)) ||
        (expect->exists && expect->stamped && !stamp_is_valid(expect))) {
        return AFC_EINVAL;
    }
    struct op *op = op_new(p, cb, data);
    if (op == NULL) {
        return AFC_ENOMEM;
    }
    op->is_cas = true;
    op->next_value = *next;
    op->next_value.exists = true;
    op->next_value.stamped = true;
    op->next_value.ttl = p->cfg.ttl;
    int rc = start_update(op, expect);
    if (rc != 0) {
        op_free(op);
    }
    return rc;
}

const struct dns_provider_ops dns_rfc2136_ops = {
    .name = "rfc2136", .init = rfc_init, .free = rfc_free, .get = rfc_get, .cas = rfc_cas};
