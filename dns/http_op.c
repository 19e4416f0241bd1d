/*
 * The operations of the HTTP DNS providers (dns/http_op.h): a chain of requests on the daemon's
 * HTTP client, a timer, one callback per started operation, cancellation when the provider goes.
 *
 * Memory: an operation is freed in its timer's close callback, so that uv never holds a pointer
 * into freed memory; the provider may be freed before that (the operation no longer points at
 * it once unlinked).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "dns/http_op.h"

#define DEFAULT_TTL 5

static void op_closed_cb(uv_handle_t *h)
{
    free(h->data);
}

static void op_unlink(struct dns_op *op)
{
    if (op->list == NULL) {
        return;
    }
    if (op->link_prev) {
        op->link_prev->link_next = op->link_next;
    } else {
        op->list->head = op->link_next;
    }
    if (op->link_next) {
        op->link_next->link_prev = op->link_prev;
    }
    op->list = NULL;
    op->link_prev = op->link_next = NULL;
}

/* Unlinked, nothing in flight: stop the timer and free once it is closed. */
static void op_release(struct dns_op *op)
{
    if (op->call != NULL) {
        afc_http_cancel(op->call);
        op->call = NULL;
    }
    uv_timer_stop(&op->timer);
    uv_close((uv_handle_t *)&op->timer, op_closed_cb);
}

struct dns_op *dns_op_new(struct afc_dns_provider *p, struct dns_op_list *list, size_t size,
                          afc_dns_cb cb, void *data)
{
    struct dns_op *op = calloc(1, size);
    if (op == NULL) {
        return NULL;
    }
    op->p = p;
    op->cb = cb;
    op->data = data;
    uv_timer_init(p->loop, &op->timer);
    op->timer.data = op;
    op->list = list;
    op->link_next = list->head;
    if (list->head != NULL) {
        list->head->link_prev = op;
    }
    list->head = op;
    return op;
}

static void http_done_cb(void *data, const struct afc_http_response *res)
{
    struct dns_op *op = data;
    op->call = NULL;
    op->step(op, res);
}

int dns_op_send(struct dns_op *op, const struct afc_http_request *req, dns_op_step step)
{
    struct afc_http_request r = *req;
    struct afc_err err = {0};
    if (r.timeout_ms == 0) {
        r.timeout_ms = op->p->cfg.timeout_ms;
    }
    op->step = step;
    op->call = afc_http_call_start(op->p->http, &r, http_done_cb, op, &err);
    if (op->call == NULL) {
        snprintf(op->res.message, sizeof op->res.message, "%s not started: %.200s", req->method,
                 err.msg);
        return err.code != 0 ? err.code : AFC_EINTERNAL;
    }
    return 0;
}

void dns_op_send_or_finish(struct dns_op *op, const struct afc_http_request *req, dns_op_step step)
{
    if (dns_op_send(op, req, step) != 0) {
        char msg[sizeof op->res.message];
        snprintf(msg, sizeof msg, "%s", op->res.message);
        dns_op_finish(op, AFC_DNS_FAILED, "%s", msg);
    }
}

static void timer_cb(uv_timer_t *t)
{
    struct dns_op *op = t->data;
    op->on_timer(op);
}

void dns_op_after(struct dns_op *op, uint64_t delay_ms, dns_op_timer_fn fn)
{
    op->on_timer = fn;
    uv_timer_start(&op->timer, timer_cb, delay_ms, 0);
}

void dns_op_finish(struct dns_op *op, enum afc_dns_outcome outcome, const char *fmt, ...)
{
    char text[sizeof op->res.message - 16]; /* room for the provider's name */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    snprintf(op->res.message, sizeof op->res.message, "%.12s: %s", op->p->ops->name, text);
    op->res.outcome = outcome;
    if (outcome != AFC_DNS_RETRY) {
        op->res.retry_after_ms = 0;
    }
    op_unlink(op);
    op->cb(op->data, &op->res); /* may free the provider: op->p is not used after this */
    op_release(op);
}

void dns_op_abort(struct dns_op *op)
{
    op_unlink(op);
    op_release(op);
}

void dns_op_cancel_all(struct dns_op_list *list)
{
    while (list->head != NULL) {
        struct dns_op *op = list->head;
        op_unlink(op);
        op->p = NULL;
        op_release(op);
    }
}

bool dns_op_transport_failed(struct dns_op *op, const struct afc_http_response *res)
{
    if (res->curl_code == 0) {
        return false;
    }
    const char *what = res->curl_code == CURLE_OPERATION_TIMEDOUT ? "timed out" : "unreachable";
    const char *sent = res->nothing_sent ? "nothing was sent" : "outcome unknown";
    op->res.retry_after_ms = 0;
    dns_op_finish(op, AFC_DNS_RETRY, "%s (%s): %s", what, sent, res->error);
    return true;
}

void dns_seen_finish(struct afc_dns_value *v, const struct dns_seen *s)
{
    v->stamped = s->n_txt == 1 && !s->txt_bad &&
                 afc_dns_stamp_parse(s->txt, &v->epoch, v->region, sizeof v->region);
    if (!v->stamped) {
        v->epoch = 0;
        v->region[0] = '\0';
    }
}

unsigned dns_cfg_ttl(const struct afc_dns_config *cfg)
{
    return cfg->ttl != 0 ? cfg->ttl : DEFAULT_TTL;
}

bool dns_base_url(const char *url, char *out, size_t cap)
{
    if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
        return false;
    }
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/') {
        n--;
    }
    if (n + 1 > cap) {
        return false;
    }
    memcpy(out, url, n);
    out[n] = '\0';
    return true;
}

int dns_check_names(const struct afc_dns_config *cfg, struct afc_err *err)
{
    size_t n = strlen(cfg->name), z = strlen(cfg->zone);
    if (n < 2 || cfg->name[n - 1] != '.') {
        return afc_err_set(err, AFC_ECONFIG, "dns.name: '%s' is not an absolute name", cfg->name);
    }
    if (z < 1 || cfg->zone[z - 1] != '.') {
        return afc_err_set(err, AFC_ECONFIG, "dns.zone: '%s' is not an absolute name", cfg->zone);
    }
    if (!dns_name_under_zone(cfg->name, cfg->zone)) {
        return afc_err_set(err, AFC_ECONFIG, "dns.name: '%s' is not in zone '%s'", cfg->name,
                           cfg->zone);
    }
    return 0;
}

int dns_check_cas(const struct afc_dns_value *expect, const struct afc_dns_value *next, char *stamp,
                  size_t cap)
{
    uint64_t epoch;
    char region[AFC_DNS_REGION_MAX];
    (void)expect; /* an expectation that cannot hold simply conflicts */
    if (dns_addr_type(next->address) == NULL || next->epoch == 0 ||
        afc_dns_stamp_format(next->epoch, next->region, stamp, cap) != 0 ||
        !afc_dns_stamp_parse(stamp, &epoch, region, sizeof region)) {
        return AFC_EINVAL;
    }
    return 0;
}

void dns_op_conflict(struct dns_op *op, const char *why)
{
    char want[112], got[112];
    dns_value_text(&op->expect, want, sizeof want);
    dns_value_text(&op->res.found, got, sizeof got);
    if (why[0] != '\0') { /* the provider's reason says what did not match */
        dns_op_finish(op, AFC_DNS_CONFLICT, "refused: found %s; %s", got, why);
    } else {
        dns_op_finish(op, AFC_DNS_CONFLICT, "refused: found %s, expected %s", got, want);
    }
}
