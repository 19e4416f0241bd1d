/*
 * Moving the global DNS name to the new primary (ARCHITECTURE.md §5 step 4, §6): one interface,
 * five providers (dns/), and verification against the authoritative servers.
 *
 * The record: `name` (an A or AAAA record, one address) and, beside it at the same name, a TXT
 * record "epoch=N region=R" saying which failover put the address there. Every write is a
 * compare-and-set on both: the caller passes what it expects to find (usually what get()
 * returned) and the provider changes nothing when the name holds something else — then it answers
 * AFC_DNS_CONFLICT with what it found. A deposed leader's late write therefore fails: the TXT
 * record already carries a newer epoch than the one it expected to replace.
 *
 * How each provider compares:
 *   rfc2136     in the server, atomically: the UPDATE's prerequisites are the expected A and TXT
 *               RRsets (value-dependent, RFC 2136 §2.4.2), or "RRset does not exist" for A,
 *               AAAA and TXT (§2.4.3)
 *   route53     in the server, atomically: one ChangeBatch DELETEs the expected A and TXT (exact
 *               value and TTL) and CREATEs the new ones; a stale batch fails whole
 *               (InvalidChangeBatch)
 *   powerdns    no compare-and-set in the API: read (GET zone), compare, then one PATCH with both
 *               RRsets (applied in one transaction). The window between the read and the PATCH is
 *               covered by the caller holding Raft leadership; documented in docs/dns.md
 *   cloudflare  no compare-and-set: list both records, compare, PATCH each by id (documented)
 *   none        get answers "not managed"; cas succeeds without doing anything
 *
 * All providers run on the daemon's libuv loop and never block it. Callbacks run on the loop,
 * exactly once per started operation, unless the provider is freed first (then never).
 */
#ifndef AFC_DNS_H
#define AFC_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "afc/error.h"

struct afc_http_client; /* afc/http_client.h */

#define AFC_DNS_NAME_MAX   256 /* a DNS name in text form, with the trailing dot */
#define AFC_DNS_ADDR_MAX   64  /* an IPv4 or IPv6 address in text form */
#define AFC_DNS_REGION_MAX 32
#define AFC_DNS_URL_MAX    512
#define AFC_DNS_SECRET_MAX 512
#define AFC_DNS_SERVERS    4 /* authoritative servers asked by verify */

enum afc_dns_provider_kind {
    AFC_DNS_NONE = 0,
    AFC_DNS_POWERDNS,
    AFC_DNS_RFC2136,
    AFC_DNS_CLOUDFLARE,
    AFC_DNS_ROUTE53,
};

/* The `dns:` section of the configuration (docs/configuration.md). Secrets are loaded from their
 * files or the environment into the fields below before a provider is created. */
struct afc_dns_config {
    enum afc_dns_provider_kind provider;
    char name[AFC_DNS_NAME_MAX]; /* "primary.db.example." (absolute, trailing dot) */
    char zone[AFC_DNS_NAME_MAX]; /* "db.example." */
    unsigned ttl;                /* seconds, for both records; default 5 */
    unsigned timeout_ms;         /* per request to the provider; default 5000 */
    /* verify: ask these servers directly (host:port, IPv4 or IPv6 literal); none = no check */
    char verify_servers[AFC_DNS_SERVERS][AFC_DNS_ADDR_MAX + 8];
    unsigned n_verify_servers;
    struct {
        char api_url[AFC_DNS_URL_MAX]; /* "http://127.0.0.1:8081" (without /api/v1) */
        char server_id[64];            /* "localhost" */
        char api_key[AFC_DNS_SECRET_MAX];
    } powerdns;
    struct {
        char server[AFC_DNS_ADDR_MAX + 8];    /* host:port of the primary name server */
        char tsig_name[AFC_DNS_NAME_MAX];     /* key name, e.g. "aragora-key." */
        char tsig_algorithm[32];              /* "hmac-sha256" (default), "hmac-sha512" */
        char tsig_secret[AFC_DNS_SECRET_MAX]; /* base64, as in a BIND key file */
    } rfc2136;
    struct {
        char api_url[AFC_DNS_URL_MAX]; /* default "https://api.cloudflare.com/client/v4" */
        char zone_id[64];
        char token[AFC_DNS_SECRET_MAX]; /* API token with DNS:Edit on the zone */
    } cloudflare;
    struct {
        char endpoint[AFC_DNS_URL_MAX]; /* default "https://route53.amazonaws.com" */
        char hosted_zone_id[64];        /* "Z0123456789ABC" (without "/hostedzone/") */
        char region[32];                /* signing region, default "us-east-1" */
        char access_key_id[128];
        char secret_access_key[AFC_DNS_SECRET_MAX];
        char session_token[2048]; /* optional (temporary credentials) */
    } route53;
};

/* What the name says: its address and the epoch stamp beside it. */
struct afc_dns_value {
    bool exists;                     /* an A/AAAA record is there */
    char address[AFC_DNS_ADDR_MAX];  /* its (single) value */
    unsigned ttl;                    /* its TTL (route53 needs it to DELETE exactly) */
    bool stamped;                    /* a TXT "epoch=N region=R" is there */
    uint64_t epoch;                  /* from the TXT; 0 when not stamped */
    char region[AFC_DNS_REGION_MAX]; /* from the TXT */
    char provider_ref[2][64];        /* provider-private (cloudflare record ids: A, TXT) */
};

enum afc_dns_outcome {
    AFC_DNS_OK = 0,
    AFC_DNS_CONFLICT, /* compare-and-set refused: the name holds something else (in `found`) */
    AFC_DNS_RETRY,    /* transient: unreachable, timeout, 5xx, 429, Throttling,
                         PriorRequestNotComplete — try again after retry_after_ms (0 = caller's
                         backoff) */
    AFC_DNS_FAILED,   /* permanent until the configuration changes: auth refused, no such zone,
                         malformed answer */
};

struct afc_dns_result {
    enum afc_dns_outcome outcome;
    struct afc_dns_value found; /* get: the current value; CONFLICT: what was found, if known */
    unsigned retry_after_ms;
    char message[256]; /* for the log and history: what the provider said */
};

typedef void (*afc_dns_cb)(void *data, const struct afc_dns_result *res);

struct afc_dns_provider;

/*
 * A provider for cfg (copied). http may be NULL for rfc2136 and none. Returns 0, or an error
 * with err set (AFC_ECONFIG: a field the provider needs is missing or malformed).
 */
int afc_dns_provider_new(uv_loop_t *loop, struct afc_http_client *http,
                         const struct afc_dns_config *cfg, struct afc_dns_provider **out,
                         struct afc_err *err);
/* Cancels what is running (no callback runs afterwards) and frees the provider. */
void afc_dns_provider_free(struct afc_dns_provider *p);
const char *afc_dns_provider_name(const struct afc_dns_provider *p); /* "powerdns", ... */

/* Reads the A/AAAA record and its TXT stamp. 0 = started (cb will run), else an error. */
int afc_dns_get(struct afc_dns_provider *p, afc_dns_cb cb, void *data);
/*
 * Compare-and-set: if the name holds `expect` (exists, address, and stamp epoch+region; for
 * route53 also ttl), make it hold `next` (address, stamped with next->epoch and next->region,
 * TTL from the configuration). expect->exists == false means "expect no A record" (and then no
 * stamp either). 0 = started (cb will run), else an error.
 */
int afc_dns_cas(struct afc_dns_provider *p, const struct afc_dns_value *expect,
                const struct afc_dns_value *next, afc_dns_cb cb, void *data);

/* ---- verification: ask the authoritative servers directly (dns/verify.c) ---- */

struct afc_dns_verify_result {
    bool all_agree; /* every server answered `want` (address and stamp) */
    unsigned n_servers, n_agree;
    char message[256]; /* e.g. "127.0.0.1:5300 answers 127.0.10.1 epoch=3" */
};

typedef void (*afc_dns_verify_cb)(void *data, const struct afc_dns_verify_result *res);

struct afc_dns_verify;

/*
 * One round: query every server in cfg->verify_servers for `name` A/AAAA and TXT (UDP, retry
 * over TCP when truncated; each query bounded by cfg->timeout_ms) and compare with want->address
 * and want->epoch/region. No recursion is asked for (RD=0): the answer must be authoritative.
 * *out (may be NULL) lets the caller cancel. 0 = started (cb will run), else an error.
 */
int afc_dns_verify_start(uv_loop_t *loop, const struct afc_dns_config *cfg,
                         const struct afc_dns_value *want, afc_dns_verify_cb cb, void *data,
                         struct afc_dns_verify **out);
void afc_dns_verify_cancel(struct afc_dns_verify *v);

/* "epoch=N region=R" ⇄ fields (the TXT record's text, without quotes). */
int afc_dns_stamp_format(uint64_t epoch, const char *region, char *out, size_t cap);
bool afc_dns_stamp_parse(const char *txt, uint64_t *epoch, char *region, size_t cap);

#endif
