/*
 * Between dns/provider.c (the dispatcher) and the provider files (dns/powerdns.c, rfc2136.c,
 * cloudflare.c, route53.c): the provider object and the table each provider fills.
 */
#ifndef AFC_DNS_PROVIDER_INTERNAL_H
#define AFC_DNS_PROVIDER_INTERNAL_H

#include "afc/dns.h"
#include "afc/http_client.h"

struct dns_provider_ops {
    const char *name;
    /* Set up p->impl from p->cfg; 0 or an error (AFC_ECONFIG with the key that is missing). */
    int (*init)(struct afc_dns_provider *p, struct afc_err *err);
    /* Cancel everything running (no callback afterwards) and free p->impl. */
    void (*free)(struct afc_dns_provider *p);
    int (*get)(struct afc_dns_provider *p, afc_dns_cb cb, void *data);
    int (*cas)(struct afc_dns_provider *p, const struct afc_dns_value *expect,
               const struct afc_dns_value *next, afc_dns_cb cb, void *data);
};

struct afc_dns_provider {
    const struct dns_provider_ops *ops;
    uv_loop_t *loop;
    struct afc_http_client *http; /* borrowed; NULL for rfc2136 and none */
    struct afc_dns_config cfg;
    void *impl;
};

extern const struct dns_provider_ops dns_powerdns_ops;
extern const struct dns_provider_ops dns_rfc2136_ops;
extern const struct dns_provider_ops dns_cloudflare_ops;
extern const struct dns_provider_ops dns_route53_ops;

/* Does the name hold `expect`? (exists, address, stamp epoch and region; ttl only if want_ttl.) */
bool dns_value_matches(const struct afc_dns_value *found, const struct afc_dns_value *expect,
                       bool want_ttl);

#endif
