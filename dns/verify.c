/*
 * Verification (include/afc/dns.h, afc_dns_verify_start): does every authoritative server answer
 * the new address and stamp? One round asks each server in cfg->verify_servers at once, through
 * dns/lookup.c (A/AAAA and TXT, RD=0, UDP then TCP when truncated, each query bounded by
 * cfg->timeout_ms), and compares what each holds with `want` (dns_value_agrees()). The round ends
 * when every server has answered or failed; the message names each server that does not agree
 * and what it said, so an operator sees which one lags or is down.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/lookup.h"
#include "dns/wire.h"

#define DEFAULT_TIMEOUT_MS 5000

struct server {
    struct afc_dns_verify *v;
    struct dns_lookup *lookup; /* running, or NULL */
    bool done;
    bool agrees;
    char said[256]; /* the lookup's message */
};

struct afc_dns_verify {
    afc_dns_verify_cb cb;
    void *data;
    struct afc_dns_value want;
    unsigned n;
    unsigned pending;
    struct server s[AFC_DNS_SERVERS];
    uv_timer_t defer; /* only with no server: answers on the next loop turn */
    bool defer_open;
};

static void summarize(const struct afc_dns_verify *v, struct afc_dns_verify_result *res)
{
    char want[128];
    dns_value_describe(&v->want, want, sizeof want);
    res->n_servers = v->n;
    for (unsigned i = 0; i < v->n; i++) {
        res->n_agree += v->s[i].agrees;
    }
    res->all_agree = res->n_agree == res->n_servers;
    if (v->n == 0) {
        snprintf(res->message, sizeof res->message, "no dns.verify_servers: nothing checked");
        return;
    }
    if (res->all_agree) {
        snprintf(res->message, sizeof res->message, "all %u server%s answer %s", v->n,
                 v->n == 1 ? "" : "s", want);
        return;
    }
    /* Only those that do not agree, each "<server> answers …" or "<server>: <what failed>". */
    size_t used = (size_t)snprintf(res->message, sizeof res->message, "%u of %u agree on %s; ",
                                   res->n_agree, v->n, want);
    for (unsigned i = 0; i < v->n && used < sizeof res->message; i++) {
        if (!v->s[i].agrees) {
            int n = snprintf(res->message + used, sizeof res->message - used, "%s%s", v->s[i].said,
                             "; ");
            used += n > 0 ? (size_t)n : 0;
        }
    }
    size_t len = strlen(res->message);
    if (len >= 2 && strcmp(res->message + len - 2, "; ") == 0) {
        res->message[len - 2] = '\0';
    }
}

static void finish(struct afc_dns_verify *v)
{
    struct afc_dns_verify_result res = {0};
    summarize(v, &res);
    afc_dns_verify_cb cb = v->cb;
    void *data = v->data;
    free(v);
    cb(data, &res);
}

static void server_cb(void *data, const struct dns_lookup_result *r)
{
    struct server *s = data;
    struct afc_dns_verify *v = s->v;
    s->lookup = NULL;
    s->done = true;
    s->agrees = r->outcome == AFC_DNS_OK && dns_value_agrees(&r->value, &v->want);
    snprintf(s->said, sizeof s->said, "%s", r->message);
    if (--v->pending == 0) {
        finish(v);
    }
}

static void defer_closed_cb(uv_handle_t *h)
{
    free(h->data);
}

static void defer_cb(uv_timer_t *t)
{
    struct afc_dns_verify *v = t->data;
    struct afc_dns_verify_result res = {0};
    summarize(v, &res);
    v->defer_open = false;
    uv_close((uv_handle_t *)&v->defer, defer_closed_cb);
    v->cb(v->data, &res);
}

static void cancel_lookups(struct afc_dns_verify *v)
{
    for (unsigned i = 0; i < v->n; i++) {
        dns_lookup_cancel(v->s[i].lookup);
        v->s[i].lookup = NULL;
    }
}

/* Starts one lookup per server; 0 or an error (AFC_ECONFIG: an address that does not parse). */
static int start_servers(uv_loop_t *loop, const struct afc_dns_config *cfg,
                         struct afc_dns_verify *v)
{
    unsigned timeout = cfg->timeout_ms != 0 ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
    for (unsigned i = 0; i < v->n; i++) {
        struct sockaddr_storage addr;
        int rc = dns_server_parse(cfg->verify_servers[i], &addr, NULL);
        if (rc == 0) {
            v->s[i].v = v;
            rc = dns_lookup_start(loop, (const struct sockaddr *)&addr, cfg->verify_servers[i],
                                  cfg->name, timeout, server_cb, &v->s[i], &v->s[i].lookup);
        }
        if (rc != 0) {
            cancel_lookups(v);
            return rc;
        }
        v->pending++;
    }
    return 0;
}

int afc_dns_verify_start(uv_loop_t *loop, const struct afc_dns_config *cfg,
                         const struct afc_dns_value *want, afc_dns_verify_cb cb, void *data,
                         struct afc_dns_verify **out)
{
    if (cfg->n_verify_servers > AFC_DNS_SERVERS || want == NULL || cb == NULL) {
        return AFC_EINVAL;
    }
    struct afc_dns_verify *v = calloc(1, sizeof *v);
    if (v == NULL) {
        return AFC_ENOMEM;
    }
    v->cb = cb;
    v->data = data;
    v->want = *want;
    v->n = cfg->n_verify_servers;
    int rc = 0;
    if (v->n == 0) {
        uv_timer_init(loop, &v->defer);
        v->defer.data = v;
        v->defer_open = true;
        uv_timer_start(&v->defer, defer_cb, 0, 0);
    } else {
        rc = start_servers(loop, cfg, v);
    }
    if (rc != 0) {
        free(v);
        return rc;
    }
    if (out != NULL) {
        *out = v;
    }
    return 0;
}

void afc_dns_verify_cancel(struct afc_dns_verify *v)
{
    if (v == NULL) {
        return;
    }
    cancel_lookups(v);
    if (v->defer_open) {
        v->defer_open = false;
        uv_close((uv_handle_t *)&v->defer, defer_closed_cb); /* frees v */
        return;
    }
    free(v);
}
