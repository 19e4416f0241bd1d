/*
 * The PowerDNS Authoritative HTTP API provider (include/afc/dns.h; docs/dns.md "PowerDNS").
 *
 *   get  GET  {api_url}/api/v1/servers/{server_id}/zones/{zone}          X-API-Key
 *        PowerDNS 4.7 ignores the rrset_name/rrset_type filters of newer versions and returns the
 *        whole zone: the A/AAAA and TXT RRsets of the name are picked out of its "rrsets".
 *   cas  the same GET, dns_value_matches(), then ONE
 *        PATCH {api_url}/api/v1/servers/{server_id}/zones/{zone}
 *        {"rrsets":[{A or AAAA, REPLACE, the new address}, {TXT, REPLACE, "\"epoch=N region=R\""}
 *                   (, {the old address type, DELETE} when the family changes)]}
 *        which PowerDNS applies in one transaction (204 No Content).
 *
 * The API has no compare-and-set: between the GET and the PATCH another writer could change the
 * name. The caller holds Raft leadership with a valid lease while it writes (ARCHITECTURE.md §6);
 * a deposed leader's late write is refused as soon as its GET sees the newer stamp.
 *
 * Errors (lab-recipes §3.1, tested against 4.7.3): 401/403 (wrong key) → FAILED; 404 (no such
 * zone) → FAILED; 422 ({"error": "..."}: out of zone, not canonical, bad TTL) → FAILED with
 * PowerDNS's text; 5xx, unreachable, timeout → RETRY.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dns/http_op.h"

#define ZONE_URL_MAX (AFC_DNS_URL_MAX + 64 + 3 * 64 + 3 * AFC_DNS_NAME_MAX)

struct pdns {
    struct dns_op_list ops;
    char zone_url[ZONE_URL_MAX];
};

/* ---- reading (pure, declared in dns/parse.h) ---- */

static bool json_ttl(const json_t *j, unsigned *ttl)
{
    if (!json_is_integer(j) || json_integer_value(j) < 0 || json_integer_value(j) > 0x7fffffff) {
        return false;
    }
    *ttl = (unsigned)json_integer_value(j);
    return true;
}

/* One RRset of the name: 0, or -1 when malformed. */
static int read_rrset(const json_t *rr, bool is_addr, struct afc_dns_value *v, struct dns_seen *s)
{
    unsigned ttl;
    json_t *records = json_object_get(rr, "records"), *rec;
    size_t i;
    if (!json_ttl(json_object_get(rr, "ttl"), &ttl) || !json_is_array(records)) {
        return -1;
    }
    json_array_foreach(records, i, rec)
    {
        const char *content = json_string_value(json_object_get(rec, "content"));
        char text[512];
        if (content == NULL) {
            return -1;
        }
        if (json_is_true(json_object_get(rec, "disabled"))) {
            continue; /* not served */
        }
        if (is_addr) {
            dns_seen_address(v, s, content, ttl);
        } else {
            dns_seen_txt(s, dns_txt_unquote(content, text, sizeof text) ? text : "", ttl);
        }
    }
    return 0;
}

int dns_powerdns_read_zone(const char *body, size_t len, const char *name, struct afc_dns_value *v,
                           struct dns_seen *s, char *msg, size_t cap)
{
    json_t *doc = json_loadb(body, len, 0, NULL);
    json_t *rrsets = json_object_get(doc, "rrsets"), *rr;
    size_t i;
    int rc = 0;
    if (!json_is_array(rrsets)) {
        snprintf(msg, cap, "the zone answer has no \"rrsets\" array");
        json_decref(doc);
        return -1;
    }
    json_array_foreach(rrsets, i, rr)
    {
        const char *rname = json_string_value(json_object_get(rr, "name"));
        const char *type = json_string_value(json_object_get(rr, "type"));
        if (rname == NULL || type == NULL) {
            rc = -1;
            break;
        }
        bool is_addr = strcmp(type, "A") == 0 || strcmp(type, "AAAA") == 0;
        if (!dns_name_equal(rname, name) || (!is_addr && strcmp(type, "TXT") != 0)) {
            continue;
        }
        if ((rc = read_rrset(rr, is_addr, v, s)) != 0) {
            break;
        }
    }
    if (rc != 0) {
        snprintf(msg, cap, "rrset %zu of the zone answer is malformed", i);
    }
    json_decref(doc);
    return rc;
}

void dns_powerdns_read_error(const char *body, size_t len, char *msg, size_t cap)
{
    json_t *doc = json_loadb(body, len, 0, NULL);
    const char *text = json_string_value(json_object_get(doc, "error"));
    if (text != NULL) {
        dns_body_excerpt(text, strlen(text), msg, cap);
    } else {
        dns_body_excerpt(body, len, msg, cap);
    }
    json_decref(doc);
}

/* ---- requests ---- */

static void finish_http_error(struct dns_op *op, const struct afc_http_response *res,
                              const char *what)
{
    char text[160];
    long st = res->status;
    dns_powerdns_read_error(res->body, res->body_len, text, sizeof text);
    if (st == 401 || st == 403) {
        dns_op_finish(op, AFC_DNS_FAILED, "%s: API key refused (HTTP %ld): %s", what, st, text);
    } else if (st == 404) {
        dns_op_finish(op, AFC_DNS_FAILED, "%s: zone %s not found (HTTP 404): %s", what,
                      op->p->cfg.zone, text);
    } else if (st == 429) {
        /* PowerDNS itself never limits, but the reverse proxy an operator puts in front of its
         * API may: a throttled write is tried again, no sooner than it asks */
        op->res.retry_after_ms = res->retry_after_s > 0 ? (unsigned)res->retry_after_s * 1000 : 0;
        dns_op_finish(op, AFC_DNS_RETRY, "%s: rate limited (HTTP 429, Retry-After %ld s)", what,
                      res->retry_after_s);
    } else if (st >= 500) {
        dns_op_finish(op, AFC_DNS_RETRY, "%s: server error (HTTP %ld): %s", what, st, text);
    } else {
        dns_op_finish(op, AFC_DNS_FAILED, "%s: refused (HTTP %ld): %s", what, st, text);
    }
}

static void base_request(struct dns_op *op, struct afc_http_request *req, const char *method)
{
    struct pdns *d = op->p->impl;
    *req = (struct afc_http_request){
        .method = method,
        .url = d->zone_url,
        .headers = {{"X-API-Key", op->p->cfg.powerdns.api_key}, {"Accept", "application/json"}},
        .n_headers = 2,
    };
}

static json_t *rrset_json(const char *name, const char *type, unsigned ttl, const char *content)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:[{s:s, s:b}]}", "name", name, "type", type, "ttl",
                     (json_int_t)ttl, "changetype", "REPLACE", "records", "content", content,
                     "disabled", 0);
}

/* The PATCH body, or NULL when out of memory. */
static char *patch_body(const struct dns_op *op, const char *stamp)
{
    const char *name = op->p->cfg.name;
    const char *type = dns_addr_type(op->next.address);
    const char *old_type = op->expect.exists ? dns_addr_type(op->expect.address) : NULL;
    unsigned ttl = dns_cfg_ttl(&op->p->cfg);
    char quoted[128];
    if (!dns_txt_quote(stamp, quoted, sizeof quoted)) {
        return NULL;
    }
    json_t *rrsets = json_array();
    json_array_append_new(rrsets, rrset_json(name, type, ttl, op->next.address));
    json_array_append_new(rrsets, rrset_json(name, "TXT", ttl, quoted));
    if (old_type != NULL && strcmp(old_type, type) != 0) { /* IPv4 → IPv6 or back */
        json_array_append_new(rrsets, json_pack("{s:s, s:s, s:s}", "name", name, "type", old_type,
                                                "changetype", "DELETE"));
    }
    json_t *doc = json_pack("{s:o}", "rrsets", rrsets);
    char *text = doc != NULL && json_array_size(rrsets) >= 2 ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return text;
}

static void patched_cb(struct dns_op *op, const struct afc_http_response *res)
{
    if (dns_op_transport_failed(op, res)) {
        return;
    }
    if (res->status != 204 && res->status != 200) {
        finish_http_error(op, res, "PATCH");
        return;
    }
    op->res.found = op->next;
    op->res.found.exists = true;
    op->res.found.stamped = true;
    op->res.found.ttl = dns_cfg_ttl(&op->p->cfg);
    dns_op_finish(op, AFC_DNS_OK, "%s now %s epoch=%llu region=%s", op->p->cfg.name,
                  op->next.address, (unsigned long long)op->next.epoch, op->next.region);
}

static void write_new(struct dns_op *op)
{
    char stamp[AFC_DNS_REGION_MAX + 48];
    afc_dns_stamp_format(op->next.epoch, op->next.region, stamp, sizeof stamp); /* checked */
    char *body = patch_body(op, stamp);
    if (body == NULL) {
        dns_op_finish(op, AFC_DNS_FAILED, "out of memory building the PATCH");
        return;
    }
    struct afc_http_request req;
    base_request(op, &req, "PATCH");
    req.headers[req.n_headers++] = (struct afc_http_header){"Content-Type", "application/json"};
    req.body = body;
    req.body_len = strlen(body);
    dns_op_send_or_finish(op, &req, patched_cb); /* the client copied the body */
    free(body);
}

static void zone_read_cb(struct dns_op *op, const struct afc_http_response *res)
{
    char msg[160], desc[160];
    if (dns_op_transport_failed(op, res)) {
        return;
    }
    if (res->status != 200) {
        finish_http_error(op, res, "GET zone");
        return;
    }
    memset(&op->res.found, 0, sizeof op->res.found);
    memset(&op->seen, 0, sizeof op->seen);
    if (dns_powerdns_read_zone(res->body, res->body_len, op->p->cfg.name, &op->res.found, &op->seen,
                               msg, sizeof msg) != 0) {
        dns_op_finish(op, AFC_DNS_FAILED, "malformed answer: %s", msg);
        return;
    }
    dns_seen_finish(&op->res.found, &op->seen);
    if (!op->is_cas) {
        dns_value_text(&op->res.found, desc, sizeof desc);
        dns_op_finish(op, AFC_DNS_OK, "%s holds %s", op->p->cfg.name, desc);
    } else if (dns_seen_foreign_txt(&op->seen, &op->res.found)) {
        dns_op_conflict(op, "the TXT RRset holds records that are not one aragora stamp");
    } else if (!dns_value_matches(&op->res.found, &op->expect, false)) {
        dns_op_conflict(op, "");
    } else {
        write_new(op);
    }
}

/* ---- the provider ---- */

static int start(struct afc_dns_provider *p, bool is_cas, const struct afc_dns_value *expect,
                 const struct afc_dns_value *next, afc_dns_cb cb, void *data)
{
    struct pdns *d = p->impl;
    struct dns_op *op = dns_op_new(p, &d->ops, sizeof *op, cb, data);
    if (op == NULL) {
        return AFC_ENOMEM;
    }
    op->is_cas = is_cas;
    if (is_cas) {
        op->expect = *expect;
        op->next = *next;
    }
    struct afc_http_request req;
    base_request(op, &req, "GET");
    int rc = dns_op_send(op, &req, zone_read_cb);
    if (rc != 0) {
        dns_op_abort(op);
    }
    return rc;
}

static int pdns_get(struct afc_dns_provider *p, afc_dns_cb cb, void *data)
{
    return start(p, false, NULL, NULL, cb, data);
}

static int pdns_cas(struct afc_dns_provider *p, const struct afc_dns_value *expect,
                    const struct afc_dns_value *next, afc_dns_cb cb, void *data)
{
    char stamp[AFC_DNS_REGION_MAX + 48];
    if (dns_check_cas(expect, next, stamp, sizeof stamp) != 0) {
        return AFC_EINVAL;
    }
    return start(p, true, expect, next, cb, data);
}

static int build_zone_url(struct pdns *d, const struct afc_dns_config *c, struct afc_err *err)
{
    char base[AFC_DNS_URL_MAX], server[3 * 64], zone[3 * AFC_DNS_NAME_MAX];
    const char *server_id = c->powerdns.server_id[0] != '\0' ? c->powerdns.server_id : "localhost";
    if (!dns_base_url(c->powerdns.api_url, base, sizeof base)) {
        return afc_err_set(err, AFC_ECONFIG, "dns.powerdns.api_url: '%s' is not an http(s) URL",
                           c->powerdns.api_url);
    }
    if (!dns_url_encode(server_id, server, sizeof server) ||
        !dns_url_encode(c->zone, zone, sizeof zone)) {
        return afc_err_set(err, AFC_ECONFIG, "dns.powerdns: server id or zone too long");
    }
    snprintf(d->zone_url, sizeof d->zone_url, "%s/api/v1/servers/%s/zones/%s", base, server, zone);
    return 0;
}

static int pdns_init(struct afc_dns_provider *p, struct afc_err *err)
{
    const struct afc_dns_config *c = &p->cfg;
    int rc = dns_check_names(c, err);
    if (rc != 0) {
        return rc;
    }
    if (p->http == NULL) {
        return afc_err_set(err, AFC_EINVAL, "dns: the powerdns provider needs the HTTP client");
    }
    if (c->powerdns.api_key[0] == '\0') {
        return afc_err_set(err, AFC_ECONFIG,
                           "dns.powerdns: no API key (from its file or the "
                           "environment)");
    }
    struct pdns *d = calloc(1, sizeof *d);
    if (d == NULL) {
        return afc_err_set(err, AFC_ENOMEM, "dns: out of memory");
    }
    if ((rc = build_zone_url(d, c, err)) != 0) {
        free(d);
        return rc;
    }
    p->impl = d;
    return 0;
}

static void pdns_free(struct afc_dns_provider *p)
{
    struct pdns *d = p->impl;
    if (d != NULL) {
        dns_op_cancel_all(&d->ops);
        free(d);
        p->impl = NULL;
    }
}

const struct dns_provider_ops dns_powerdns_ops = {
    .name = "powerdns",
    .init = pdns_init,
    .free = pdns_free,
    .get = pdns_get,
    .cas = pdns_cas,
};
