/*
 * A and TXT (then AAAA) for one name at one server (dns/lookup.h says what and why).
 *
 * Two queries leave at once, each its own dns_exchange; each answer is decoded into a dns_rrset.
 * When the A answer is empty the same slot asks AAAA. The first failure cancels the other query
 * and ends the lookup; when both slots hold an answer, dns_value_compose() turns them into the
 * value. The callback runs last, after the lookup has been freed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns/lookup.h"
#include "dns/transport.h"
#include "dns/wire.h"

struct slot {
    struct dns_lookup *l;
    uint16_t type;
    struct dns_exchange *x; /* NULL when not running */
    bool done;
    struct dns_rrset rrset;
};

struct dns_lookup {
    uv_loop_t *loop;
    struct sockaddr_storage server;
    char server_text[AFC_DNS_ADDR_MAX + 8];
    char name[AFC_DNS_NAME_MAX];
    unsigned timeout_ms;
    dns_lookup_cb cb;
    void *data;
    struct slot addr, txt;
};

int dns_random_id(uint16_t *id)
{
    return uv_random(NULL, NULL, id, sizeof *id, 0, NULL) == 0 ? 0 : AFC_EIO;
}

static const char *type_name(uint16_t type)
{
    return type == DNS_TYPE_A ? "A" : type == DNS_TYPE_AAAA ? "AAAA" : "TXT";
}

/* Ends the lookup: cancels what still runs, frees it, then calls back. */
static void end(struct dns_lookup *l, struct dns_lookup_result *res)
{
    dns_exchange_cancel(l->addr.x);
    dns_exchange_cancel(l->txt.x);
    dns_lookup_cb cb = l->cb;
    void *data = l->data;
    free(l);
    cb(data, res);
}

static void say(struct dns_lookup_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The result's message (vsnprintf: a long answer is cut, never overflows). */
static void say(struct dns_lookup_result *res, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof res->message, fmt, ap);
    va_end(ap);
}

static void end_error(struct dns_lookup *l, enum afc_dns_outcome outcome, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void end_error(struct dns_lookup *l, enum afc_dns_outcome outcome, const char *fmt, ...)
{
    struct dns_lookup_result res = {.outcome = outcome};
    size_t used = strlen(l->server_text) + 2; /* "<server>: <what>"; the server text is < 80 */
    snprintf(res.message, sizeof res.message, "%.80s: ", l->server_text);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res.message + used, sizeof res.message - used, fmt, ap);
    va_end(ap);
    end(l, &res);
}

static void end_with_value(struct dns_lookup *l)
{
    struct dns_lookup_result res = {.outcome = AFC_DNS_OK};
    char note[160], desc[128];
    dns_value_compose(&l->addr.rrset, &l->txt.rrset, &res.value, note, sizeof note);
    dns_value_describe(&res.value, desc, sizeof desc);
    say(&res, "%s answers %s%s%s", l->server_text, desc, note[0] != '\0' ? "; " : "", note);
    end(l, &res);
}

static int slot_start(struct slot *s);

/* Judges one decoded answer; false when the lookup has ended. */
static bool judge(struct slot *s)
{
    struct dns_lookup *l = s->l;
    const char *t = type_name(s->type);
    char buf[16];
    int rc = s->rrset.rcode;
    if (rc == DNS_RCODE_SERVFAIL) {
        end_error(l, AFC_DNS_RETRY, "%s query: %s", t, "SERVFAIL");
        return false;
    }
    if (rc != DNS_RCODE_NOERROR && rc != DNS_RCODE_NXDOMAIN) {
        end_error(l, AFC_DNS_FAILED, "%s query: %s (is the server authoritative for the name?)", t,
                  dns_rcode_name(rc, buf, sizeof buf));
        return false;
    }
    if (!s->rrset.authoritative) {
        end_error(l, AFC_DNS_FAILED, "%s query: %s", t,
                  "the answer is not authoritative (AA not set): not a server for the zone");
        return false;
    }
    return true;
}

static void slot_cb(void *data, const struct dns_exchange_result *res)
{
    struct slot *s = data;
    struct dns_lookup *l = s->l;
    struct afc_err err = {0};
    s->x = NULL;
    if (res->status != 0) {
        end_error(l, AFC_DNS_RETRY, "%s query: %s", type_name(s->type), res->error);
        return;
    }
    if (dns_answer_decode(res->wire, res->len, l->name, s->type, &s->rrset, &err) != 0) {
        end_error(l, AFC_DNS_FAILED, "%s query: %s", type_name(s->type), err.msg);
        return;
    }
    if (!judge(s)) {
        return;
    }
    if (s->type == DNS_TYPE_A && s->rrset.n == 0 && s->rrset.rcode == DNS_RCODE_NOERROR) {
        s->type = DNS_TYPE_AAAA; /* no A: perhaps the primary has an IPv6 address */
        int rc = slot_start(s);
        if (rc != 0) {
            end_error(l, AFC_DNS_FAILED, "%s query: %s", "AAAA", afc_strerror(rc));
        }
        return;
    }
    s->done = true;
    if (l->addr.done && l->txt.done) {
        end_with_value(l);
    }
}

static int slot_start(struct slot *s)
{
    struct dns_lookup *l = s->l;
    uint8_t *wire = NULL;
    size_t len = 0;
    uint16_t id;
    int rc = dns_random_id(&id);
    if (rc == 0) {
        rc = dns_query_encode(l->name, s->type, id, &wire, &len, NULL);
    }
    if (rc != 0) {
        return rc;
    }
    struct dns_exchange_params p = {.server = (const struct sockaddr *)&l->server,
                                    .msg = wire,
                                    .len = len,
                                    .timeout_ms = l->timeout_ms,
                                    .cb = slot_cb,
                                    .data = s};
    rc = dns_exchange_start(l->loop, &p, &s->x);
    free(wire);
    return rc;
}

int dns_lookup_start(uv_loop_t *loop, const struct sockaddr *server, const char *server_text,
                     const char *name, unsigned timeout_ms, dns_lookup_cb cb, void *data,
                     struct dns_lookup **out)
{
    size_t addr_len = server->sa_family == AF_INET    ? sizeof(struct sockaddr_in)
                      : server->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                      : 0;
    if (addr_len == 0 || strlen(name) >= AFC_DNS_NAME_MAX) {
        return AFC_EINVAL;
    }
    struct dns_lookup *l = calloc(1, sizeof *l);
    if (l == NULL) {
        return AFC_ENOMEM;
    }
    l->loop = loop;
    memcpy(&l->server, server, addr_len);
    snprintf(l->server_text, sizeof l->server_text, "%s", server_text);
    snprintf(l->name, sizeof l->name, "%s", name);
    l->timeout_ms = timeout_ms;
    l->cb = cb;
    l->data = data;
    l->addr = (struct slot){.l = l, .type = DNS_TYPE_A};
    l->txt = (struct slot){.l = l, .type = DNS_TYPE_TXT};
    int rc = slot_start(&l->addr);
    if (rc == 0) {
        rc = slot_start(&l->txt);
    }
    if (rc != 0) {
        dns_exchange_cancel(l->addr.x);
        free(l);
        return rc;
    }
    if (out != NULL) {
        *out = l;
    }
    return 0;
}

void dns_lookup_cancel(struct dns_lookup *l)
{
    if (l != NULL) {
        dns_exchange_cancel(l->addr.x);
        dns_exchange_cancel(l->txt.x);
        free(l);
    }
}
