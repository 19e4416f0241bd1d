/*
 * One operation (get or compare-and-set) of an HTTP DNS provider — powerdns.c, cloudflare.c,
 * route53.c — as a short chain of requests on the daemon's HTTP client, and the bookkeeping they
 * share: the list of operations a provider has running (so that freeing the provider cancels
 * them), a timer for backoff and polling, and exactly one callback per started operation.
 *
 * A provider embeds struct dns_op first in its own operation struct and passes its size to
 * dns_op_new(). Each request names the step that handles its answer; a step either sends the
 * next request, arms the timer, or finishes. Lifecycle: new → (send | after)* → finish, or
 * new → abort when the very first request could not start (get/cas then return the error and no
 * callback runs), or cancel_all when the provider is freed (no callback).
 */
#ifndef AFC_DNS_HTTP_OP_H
#define AFC_DNS_HTTP_OP_H

#include <stdint.h>

#include "dns/parse.h"
#include "dns/provider_internal.h"

struct dns_op;
typedef void (*dns_op_step)(struct dns_op *op, const struct afc_http_response *res);
typedef void (*dns_op_timer_fn)(struct dns_op *op);

/* The operations a provider has running; zero-initialised. */
struct dns_op_list {
    struct dns_op *head;
};

struct dns_op {
    struct afc_dns_provider *p; /* NULL once cancelled */
    struct dns_op_list *list;
    struct dns_op *link_prev, *link_next; /* list */
    struct afc_http_call *call;           /* the request in flight, or NULL */
    dns_op_step step;
    uv_timer_t timer;
    dns_op_timer_fn on_timer;
    afc_dns_cb cb;
    void *data;
    bool is_cas;
    struct afc_dns_value expect, next; /* cas: copies of the caller's */
    struct dns_seen seen;              /* what the last read found besides res.found */
    struct afc_dns_result res;         /* built up, then passed to cb */
};

/* A zeroed operation of `size` bytes (>= sizeof(struct dns_op)) on p, in list. NULL when out of
 * memory. */
struct dns_op *dns_op_new(struct afc_dns_provider *p, struct dns_op_list *list, size_t size,
                          afc_dns_cb cb, void *data);
/* Start a request whose answer goes to `step`. The request's timeout is the configuration's
 * (dns.timeout_ms) unless set. 0, or the client's error code with op->res.message set. */
int dns_op_send(struct dns_op *op, const struct afc_http_request *req, dns_op_step step);
/* dns_op_send, and when it cannot start, finish with FAILED. From a step only. */
void dns_op_send_or_finish(struct dns_op *op, const struct afc_http_request *req, dns_op_step step);
/* Run fn(op) after delay_ms on the loop. */
void dns_op_after(struct dns_op *op, uint64_t delay_ms, dns_op_timer_fn fn);
/* Report: outcome and message ("<provider>: " + fmt), with op->res.found as it stands; the
 * callback runs now (the operation is unlinked first, so the callback may free the provider),
 * then the operation is freed. */
void dns_op_finish(struct dns_op *op, enum afc_dns_outcome outcome, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The first request could not start: free without calling back. */
void dns_op_abort(struct dns_op *op);
/* The provider is being freed: cancel every operation (no callback runs). */
void dns_op_cancel_all(struct dns_op_list *list);

/* A transport failure (no HTTP answer): finish with RETRY ("unreachable" or "timed out", and
 * whether anything was sent) and return true. */
bool dns_op_transport_failed(struct dns_op *op, const struct afc_http_response *res);
/* After a read: decide whether the TXT is a stamp (afc_dns_stamp_parse). */
void dns_seen_finish(struct afc_dns_value *v, const struct dns_seen *s);
/* The configuration's TTL (dns.ttl; 5 when 0). */
unsigned dns_cfg_ttl(const struct afc_dns_config *cfg);
/* Copy an http(s) base URL without its trailing slashes; false when it is not http(s) or does
 * not fit. */
bool dns_base_url(const char *url, char *out, size_t cap);

/* cfg's name and zone: absolute (trailing dot), the name inside the zone. 0 or AFC_ECONFIG. */
int dns_check_names(const struct afc_dns_config *cfg, struct afc_err *err);
/* cas input: next->address an IP literal, next->epoch > 0, next->region a stamp region; the stamp
 * text into stamp. 0 or AFC_EINVAL. */
int dns_check_cas(const struct afc_dns_value *expect, const struct afc_dns_value *next, char *stamp,
                  size_t cap);
/* CONFLICT with what was found: "expected X, found Y" (op->res.found set by the caller). */
void dns_op_conflict(struct dns_op *op, const char *why);

#endif
