/*
 * What one name server says the name holds: its A record (AAAA when it has no A) and the TXT
 * stamp beside it, asked without recursion (dns/lookup.c). For the rfc2136 provider's get and
 * for verification, which asks every authoritative server the same way.
 */
#ifndef AFC_DNS_LOOKUP_H
#define AFC_DNS_LOOKUP_H

#include <sys/socket.h>

#include <uv.h>

#include "afc/dns.h"

struct dns_lookup;

struct dns_lookup_result {
    /* OK: value is what the server holds (exists == false when it holds no address).
     * RETRY: no answer (timeout, unreachable) or SERVFAIL. FAILED: the server refuses, is not
     * authoritative for the name, or its answer is malformed. */
    enum afc_dns_outcome outcome;
    struct afc_dns_value value;
    /* "127.0.0.1:5300 answers 10.0.0.2 epoch=3 region=eu-west-1", or what went wrong, prefixed
     * with the server */
    char message[256];
};

/* Called once per started lookup unless it was cancelled; the lookup is gone when it runs. */
typedef void (*dns_lookup_cb)(void *data, const struct dns_lookup_result *res);

/*
 * Asks `server` (shown as `server_text` in messages; both copied) for `name` A and TXT at once,
 * then AAAA when there is no A. Each query is bounded by timeout_ms. 0: cb will run (never from
 * inside this call); else an error (AFC_ENOMEM, AFC_EINVAL) and cb never runs.
 */
int dns_lookup_start(uv_loop_t *loop, const struct sockaddr *server, const char *server_text,
                     const char *name, unsigned timeout_ms, dns_lookup_cb cb, void *data,
                     struct dns_lookup **out);

/* Stops it: cb never runs. */
void dns_lookup_cancel(struct dns_lookup *l);

/* A random 16-bit message id from the operating system's generator (unpredictable ids are part
 * of the defence against forged answers, RFC 5452 §9.2; a seeded generator would not do). */
int dns_random_id(uint16_t *id);

#endif
