/*
 * The DNS provider dispatcher (include/afc/dns.h), the `none` provider, and the epoch stamp.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/provider_internal.h"

/* ---- none: routing is done elsewhere (Redis, the /primary endpoint) ---- */

static int none_init(struct afc_dns_provider *p, struct afc_err *err)
{
    (void)p;
    (void)err;
    return 0;
}

static void none_free(struct afc_dns_provider *p)
{
    (void)p;
}

/* Answers synchronously would surprise callers that expect the loop in between: defer. */
struct none_call {
    uv_idle_t idle;
    afc_dns_cb cb;
    void *data;
    struct afc_dns_result res;
};

static void none_closed(uv_handle_t *h)
{
    free(h->data);
}

static void none_idle(uv_idle_t *idle)
{
    struct none_call *c = idle->data;
    uv_idle_stop(idle);
    c->cb(c->data, &c->res);
    uv_close((uv_handle_t *)idle, none_closed);
}

static int none_answer(struct afc_dns_provider *p, afc_dns_cb cb, void *data, const char *msg)
{
    struct none_call *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return AFC_ENOMEM;
    }
    c->cb = cb;
    c->data = data;
    c->res.outcome = AFC_DNS_OK;
    snprintf(c->res.message, sizeof c->res.message, "%s", msg);
    uv_idle_init(p->loop, &c->idle);
    c->idle.data = c;
    uv_idle_start(&c->idle, none_idle);
    return 0;
}

static int none_get(struct afc_dns_provider *p, afc_dns_cb cb, void *data)
{
    return none_answer(p, cb, data, "dns.provider is none: no record is managed");
}

static int none_cas(struct afc_dns_provider *p, const struct afc_dns_value *expect,
                    const struct afc_dns_value *next, afc_dns_cb cb, void *data)
{
    (void)expect;
    (void)next;
    return none_answer(p, cb, data, "dns.provider is none: nothing to change");
}

static const struct dns_provider_ops dns_none_ops = {
    .name = "none", .init = none_init, .free = none_free, .get = none_get, .cas = none_cas};

/* ---- dispatch ---- */

static const struct dns_provider_ops *ops_for(enum afc_dns_provider_kind kind)
{
    switch (kind) {
    case AFC_DNS_POWERDNS:
        return &dns_powerdns_ops;
    case AFC_DNS_RFC2136:
        return &dns_rfc2136_ops;
    case AFC_DNS_CLOUDFLARE:
        return &dns_cloudflare_ops;
    case AFC_DNS_ROUTE53:
        return &dns_route53_ops;
    case AFC_DNS_NONE:
        break;
    }
    return &dns_none_ops;
}

int afc_dns_provider_new(uv_loop_t *loop, struct afc_http_client *http,
                         const struct afc_dns_config *cfg, struct afc_dns_provider **out,
                         struct afc_err *err)
{
    struct afc_dns_provider *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return afc_err_set(err, AFC_ENOMEM, "dns: out of memory");
    }
    p->ops = ops_for(cfg->provider);
    p->loop = loop;
    p->http = http;
    p->cfg = *cfg;
    int rc = p->ops->init(p, err);
    if (rc != 0) {
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void afc_dns_provider_free(struct afc_dns_provider *p)
{
    if (p != NULL) {
        p->ops->free(p);
        free(p);
    }
}

const char *afc_dns_provider_name(const struct afc_dns_provider *p)
{
    return p->ops->name;
}

int afc_dns_get(struct afc_dns_provider *p, afc_dns_cb cb, void *data)
{
    return p->ops->get(p, cb, data);
}

int afc_dns_cas(struct afc_dns_provider *p, const struct afc_dns_value *expect,
                const struct afc_dns_value *next, afc_dns_cb cb, void *data)
{
    return p->ops->cas(p, expect, next, cb, data);
}

/* ---- the stamp ---- */

int afc_dns_stamp_format(uint64_t epoch, const char *region, char *out, size_t cap)
{
    int n = snprintf(out, cap, "epoch=%" PRIu64 " region=%s", epoch, region);
    return n < 0 || (size_t)n >= cap ? AFC_ETOOBIG : 0;
}

/*
 * Exactly what afc_dns_stamp_format() writes: "epoch=", 1 to 20 digits without sign or leading
 * zero and within 64 bits, one space, "region=", 1 to 31 of a-z 0-9 '-'. Read leniently (sscanf's
 * %llu takes "-1" and saturates on overflow), a hand-edited "epoch=-1" would pass for the newest
 * epoch there can be.
 */
bool afc_dns_stamp_parse(const char *txt, uint64_t *epoch, char *region, size_t cap)
{
    uint64_t e = 0;
    if (strncmp(txt, "epoch=", 6) != 0 || txt[6] < '1' || txt[6] > '9') {
        return false;
    }
    const char *p = txt + 6;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (e > (UINT64_MAX - d) / 10) {
            return false;
        }
        e = e * 10 + d;
    }
    if (strncmp(p, " region=", 8) != 0) {
        return false;
    }
    p += 8;
    size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789-");
    if (n == 0 || n >= AFC_DNS_REGION_MAX || n >= cap || p[n] != '\0') {
        return false;
    }
    *epoch = e;
    memcpy(region, p, n);
    region[n] = '\0';
    return true;
}

bool dns_value_matches(const struct afc_dns_value *found, const struct afc_dns_value *expect,
                       bool want_ttl)
{
    if (found->exists != expect->exists) {
        return false;
    }
    if (!expect->exists) {
        return !found->stamped; /* "nothing there yet": no stamp either */
    }
    return strcmp(found->address, expect->address) == 0 && found->stamped == expect->stamped &&
           (!expect->stamped ||
            (found->epoch == expect->epoch && strcmp(found->region, expect->region) == 0)) &&
           (!want_ttl || found->ttl == expect->ttl);
}
