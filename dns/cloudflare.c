/*
 * The Cloudflare API v4 provider (include/afc/dns.h; docs/dns.md "Cloudflare").
 *
 *   get  GET {api_url}/zones/{zone_id}/dns_records?name=<name without the trailing
 * dot>&per_page=100 Authorization: Bearer <token>. One list by name returns the A, AAAA and TXT
 * records of the name together (one request instead of one per type: the API allows 1200 requests
 *        per 5 minutes per token).
 *   cas  the same list, compare, then write the address record, then the TXT stamp:
 *        PATCH {api_url}/zones/{zone_id}/dns_records/{id}  when the record exists,
 *        POST  {api_url}/zones/{zone_id}/dns_records        when it does not yet.
 *
 * There is no compare-and-set in the API (the batch endpoint applies several changes atomically
 * but checks nothing): the caller's Raft leadership covers the window between list and writes.
 *
 * Why the address first and the stamp last: the stamp is the commit mark. A stamp for epoch N on
 * the name proves that N's address was written before it, so a reader that sees its own epoch in
 * the TXT can trust the address beside it. A write cut in half (the address written, the stamp
 * not: a timeout, a 5xx, a crash) leaves "new address, old stamp": clients already reach the new
 * primary (the point of the step), a deposed leader's compare still fails (the address is not the
 * one it expects), and it is recognisable — the same caller's retry, finding its `next` address
 * with its `expect` stamp, resumes by writing only the stamp. The other order would leave "old
 * address, new stamp": a stamp claiming an address that is not there.
 *
 * TTL: Cloudflare accepts 1 (automatic) or 60..86400; the configured TTL is clamped to 60..86400
 * (a 5 s TTL is sent as 60). Records are written with proxied=false (a proxied record answers
 * Cloudflare's addresses, not the primary's).
 *
 * Errors: the envelope {success, errors[{code, message}], result}. Codes 10000 (authentication
 * error, HTTP 403) and 9109 (invalid access token), or HTTP 401/403 → FAILED; 429 → RETRY after
 * Retry-After; 5xx, unreachable, timeout → RETRY; anything else unsuccessful → FAILED.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dns/http_op.h"

#define DEFAULT_API_URL "https://api.cloudflare.com/client/v4"
#define RECORDS_URL_MAX (AFC_DNS_URL_MAX + 3 * 64 + 32)
#define LIST_URL_MAX    (RECORDS_URL_MAX + 3 * AFC_DNS_NAME_MAX + 32)

struct cf {
    struct dns_op_list ops;
    char records_url[RECORDS_URL_MAX]; /* {api_url}/zones/{zone_id}/dns_records */
    char list_url[LIST_URL_MAX];
    char auth[AFC_DNS_SECRET_MAX + 16]; /* "Bearer <token>" */
    char name[AFC_DNS_NAME_MAX];        /* without the trailing dot */
};

/* ---- reading (pure, declared in dns/parse.h) ---- */

static void add_error_text(char *out, size_t cap, long code, const char *message)
{
    size_t n = strlen(out);
    if (n < cap) {
        snprintf(out + n, cap - n, "%s%ld: %s", n > 0 ? "; " : "", code,
                 message != NULL ? message : "");
    }
}

void dns_cloudflare_read_envelope(const char *body, size_t len, struct dns_cf_envelope *env)
{
    json_t *doc = json_loadb(body, len, 0, NULL), *err;
    size_t i;
    memset(env, 0, sizeof *env);
    if (!json_is_object(doc)) {
        dns_body_excerpt(body, len, env->message, sizeof env->message);
        json_decref(doc);
        return;
    }
    env->json = true;
    env->success = json_is_true(json_object_get(doc, "success"));
    json_array_foreach(json_object_get(doc, "errors"), i, err)
    {
        json_t *code = json_object_get(err, "code");
        long c = json_is_integer(code) ? (long)json_integer_value(code) : 0;
        if (i == 0) {
            env->first_code = (int)c;
        }
        env->auth_error = env->auth_error || c == 10000 || c == 9109;
        add_error_text(env->message, sizeof env->message, c,
                       json_string_value(json_object_get(err, "message")));
    }
    json_decref(doc);
}

static bool id_ok(const char *id)
{
    size_t n = id != NULL ? strlen(id) : 0;
    if (n == 0 || n >= 64) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)id[i]) && id[i] != '-' && id[i] != '_') {
            return false; /* it goes into a URL path */
        }
    }
    return true;
}

/* One record of the list: 0, or -1 when malformed. */
static int read_record(const json_t *rec, const char *name, struct afc_dns_value *v,
                       struct dns_seen *s)
{
    const char *rname = json_string_value(json_object_get(rec, "name"));
    const char *type = json_string_value(json_object_get(rec, "type"));
    const char *content = json_string_value(json_object_get(rec, "content"));
    const char *id = json_string_value(json_object_get(rec, "id"));
    json_t *ttl = json_object_get(rec, "ttl");
    char text[512];
    if (rname == NULL || type == NULL || content == NULL || !id_ok(id) || !json_is_integer(ttl) ||
        json_integer_value(ttl) < 0 || json_integer_value(ttl) > 0x7fffffff) {
        return -1;
    }
    unsigned t = (unsigned)json_integer_value(ttl);
    bool is_addr = strcmp(type, "A") == 0 || strcmp(type, "AAAA") == 0;
    if (!dns_name_equal(rname, name) || (!is_addr && strcmp(type, "TXT") != 0)) {
        return 0;
    }
    int slot = is_addr ? 0 : 1;
    if (v->provider_ref[slot][0] == '\0') {
        snprintf(v->provider_ref[slot], sizeof v->provider_ref[slot], "%s", id);
    }
    if (is_addr) {
        dns_seen_address(v, s, content, t);
    } else {
        /* Quoted character-strings today; bare text in records created before Cloudflare
         * required quotes. */
        dns_seen_txt(s, dns_txt_unquote(content, text, sizeof text) ? text : "", t);
    }
    return 0;
}

int dns_cloudflare_read_records(const char *body, size_t len, const char *name,
                                struct afc_dns_value *v, struct dns_seen *s, char *msg, size_t cap)
{
    json_t *doc = json_loadb(body, len, 0, NULL);
    json_t *result = json_object_get(doc, "result"), *rec;
    size_t i;
    int rc = 0;
    if (!json_is_array(result)) {
        snprintf(msg, cap, "the list answer has no \"result\" array");
        json_decref(doc);
        return -1;
    }
    json_array_foreach(result, i, rec)
    {
        if ((rc = read_record(rec, name, v, s)) != 0) {
            snprintf(msg, cap, "record %zu of the list answer is malformed", i);
            break;
        }
    }
    json_decref(doc);
    return rc;
}

/* ---- requests ---- */

/* The common checks of an answer; false when the operation was finished here. */
static bool answer_ok(struct dns_op *op, const struct afc_http_response *res, const char *what)
{
    struct dns_cf_envelope env;
    long st = res->status;
    if (dns_op_transport_failed(op, res)) {
        return false;
    }
    dns_cloudflare_read_envelope(res->body, res->body_len, &env);
    if (st == 429) {
        op->res.retry_after_ms = res->retry_after_s > 0 ? (unsigned)res->retry_after_s * 1000 : 0;
        dns_op_finish(op, AFC_DNS_RETRY, "%s: rate limited (HTTP 429, Retry-After %ld s)", what,
                      res->retry_after_s);
    } else if (env.auth_error || st == 401 || st == 403) {
        dns_op_finish(op, AFC_DNS_FAILED, "%s: token refused (HTTP %ld): %s", what, st,
                      env.message);
    } else if (st >= 500) {
        dns_op_finish(op, AFC_DNS_RETRY, "%s: server error (HTTP %ld): %s", what, st, env.message);
    } else if (st >= 200 && st <= 299 && !env.json) {
        dns_op_finish(op, AFC_DNS_FAILED,
                      "%s: malformed answer (HTTP %ld, not a JSON envelope): %s", what, st,
                      env.message);
    } else if (st < 200 || st > 299 || !env.success) {
        dns_op_finish(op, AFC_DNS_FAILED, "%s: refused (HTTP %ld): %s", what, st, env.message);
    } else {
        return true;
    }
    return false;
}

static void base_request(struct dns_op *op, struct afc_http_request *req, const char *method,
                         const char *url)
{
    struct cf *c = op->p->impl;
    *req = (struct afc_http_request){
        .method = method,
        .url = url,
        .headers = {{"Authorization", c->auth}, {"Accept", "application/json"}},
        .n_headers = 2,
    };
}

/* PATCH the record `slot` (0 address, 1 TXT) by id, or POST it when the name has none. */
static void write_record(struct dns_op *op, int slot, const char *type, const char *content,
                         dns_op_step step)
{
    struct cf *c = op->p->impl;
    char url[RECORDS_URL_MAX + 80];
    const char *id = op->res.found.provider_ref[slot];
    bool create = id[0] == '\0';
    json_t *doc = json_pack("{s:s, s:s, s:s, s:I}", "type", type, "name", c->name, "content",
                            content, "ttl", (json_int_t)dns_cloudflare_ttl(op->p->cfg.ttl));
    if (doc != NULL && slot == 0) {
        json_object_set_new(doc, "proxied", json_false());
    }
    char *body = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (body == NULL) {
        dns_op_finish(op, AFC_DNS_FAILED, "out of memory building a record");
        return;
    }
    snprintf(url, sizeof url, "%s%s%s", c->records_url, create ? "" : "/", id);
    struct afc_http_request req;
    base_request(op, &req, create ? "POST" : "PATCH", url);
    req.headers[req.n_headers++] = (struct afc_http_header){"Content-Type", "application/json"};
    req.body = body;
    req.body_len = strlen(body);
    dns_op_send_or_finish(op, &req, step);
    free(body);
}

static void txt_written_cb(struct dns_op *op, const struct afc_http_response *res)
{
    if (!answer_ok(op, res, "writing the TXT stamp (the address is already written)")) {
        return;
    }
    struct afc_dns_value *f = &op->res.found;
    snprintf(f->address, sizeof f->address, "%s", op->next.address);
    f->exists = f->stamped = true;
    f->ttl = dns_cloudflare_ttl(op->p->cfg.ttl);
    f->epoch = op->next.epoch;
    snprintf(f->region, sizeof f->region, "%s", op->next.region);
    dns_op_finish(op, AFC_DNS_OK, "%s now %s epoch=%llu region=%s", op->p->cfg.name,
                  op->next.address, (unsigned long long)op->next.epoch, op->next.region);
}

static void write_stamp(struct dns_op *op)
{
    char stamp[AFC_DNS_REGION_MAX + 48], quoted[AFC_DNS_REGION_MAX + 64];
    afc_dns_stamp_format(op->next.epoch, op->next.region, stamp, sizeof stamp); /* checked */
    dns_txt_quote(stamp, quoted, sizeof quoted);
    write_record(op, 1, "TXT", quoted, txt_written_cb);
}

static void addr_written_cb(struct dns_op *op, const struct afc_http_response *res)
{
    if (!answer_ok(op, res, "writing the address")) {
        return;
    }
    write_stamp(op);
}

/* Does the name hold our own half-done write (next's address, expect's stamp)? */
static bool is_half_done(const struct dns_op *op)
{
    const struct afc_dns_value *f = &op->res.found, *e = &op->expect;
    return f->exists && op->seen.n_addr == 1 && strcmp(f->address, op->next.address) == 0 &&
           f->stamped == (e->exists && e->stamped) &&
           (!f->stamped || (f->epoch == e->epoch && strcmp(f->region, e->region) == 0));
}

static void compare_and_write(struct dns_op *op)
{
    const struct afc_dns_value *f = &op->res.found;
    unsigned ttl = dns_cloudflare_ttl(op->p->cfg.ttl);
    if (dns_seen_foreign_txt(&op->seen, f)) {
        dns_op_conflict(op, "the TXT records at the name are not one aragora stamp");
        return;
    }
    bool matches = dns_value_matches(f, &op->expect, false);
    if (!matches && !is_half_done(op)) {
        dns_op_conflict(op, "");
        return;
    }
    const char *type = dns_addr_type(op->next.address);
    bool addr_in_place = f->exists && op->seen.n_addr == 1 &&
                         strcmp(f->address, op->next.address) == 0 && f->ttl == ttl;
    if (addr_in_place) {
        write_stamp(op); /* resuming a half-done write, or the address did not change */
    } else {
        write_record(op, 0, type, op->next.address, addr_written_cb);
    }
}

static void list_cb(struct dns_op *op, const struct afc_http_response *res)
{
    char msg[160], desc[160];
    if (!answer_ok(op, res, "listing the records")) {
        return;
    }
    struct cf *c = op->p->impl;
    memset(&op->res.found, 0, sizeof op->res.found);
    memset(&op->seen, 0, sizeof op->seen);
    if (dns_cloudflare_read_records(res->body, res->body_len, c->name, &op->res.found, &op->seen,
                                    msg, sizeof msg) != 0) {
        dns_op_finish(op, AFC_DNS_FAILED, "malformed answer: %s", msg);
        return;
    }
    dns_seen_finish(&op->res.found, &op->seen);
    if (op->is_cas) {
        compare_and_write(op);
        return;
    }
    dns_value_text(&op->res.found, desc, sizeof desc);
    dns_op_finish(op, AFC_DNS_OK, "%s holds %s", op->p->cfg.name, desc);
}

/* ---- the provider ---- */

static int start(struct afc_dns_provider *p, bool is_cas, const struct afc_dns_value *expect,
                 const struct afc_dns_value *next, afc_dns_cb cb, void *data)
{
    struct cf *c = p->impl;
    struct dns_op *op = dns_op_new(p, &c->ops, sizeof *op, cb, data);
    if (op == NULL) {
        return AFC_ENOMEM;
    }
    op->is_cas = is_cas;
    if (is_cas) {
        op->expect = *expect;
        op->next = *next;
    }
    struct afc_http_request req;
    base_request(op, &req, "GET", c->list_url);
    int rc = dns_op_send(op, &req, list_cb);
    if (rc != 0) {
        dns_op_abort(op);
    }
    return rc;
}

static int cf_get(struct afc_dns_provider *p, afc_dns_cb cb, void *data)
{
    return start(p, false, NULL, NULL, cb, data);
}

static int cf_cas(struct afc_dns_provider *p, const struct afc_dns_value *expect,
                  const struct afc_dns_value *next, afc_dns_cb cb, void *data)
{
    char stamp[AFC_DNS_REGION_MAX + 48];
    if (dns_check_cas(expect, next, stamp, sizeof stamp) != 0) {
        return AFC_EINVAL;
    }
    return start(p, true, expect, next, cb, data);
}

static int build_urls(struct cf *c, const struct afc_dns_config *cfg, struct afc_err *err)
{
    char base[AFC_DNS_URL_MAX], zone[3 * 64], name[3 * AFC_DNS_NAME_MAX];
    const char *api =
        cfg->cloudflare.api_url[0] != '\0' ? cfg->cloudflare.api_url : DEFAULT_API_URL;
    if (!dns_base_url(api, base, sizeof base)) {
        return afc_err_set(err, AFC_ECONFIG, "dns.cloudflare.api_url: '%s' is not an http(s) URL",
                           api);
    }
    if (!id_ok(cfg->cloudflare.zone_id) ||
        !dns_url_encode(cfg->cloudflare.zone_id, zone, sizeof zone)) {
        return afc_err_set(err, AFC_ECONFIG, "dns.cloudflare.zone_id: missing or malformed");
    }
    if (!dns_name_no_dot(cfg->name, c->name, sizeof c->name) ||
        !dns_url_encode(c->name, name, sizeof name)) {
        return afc_err_set(err, AFC_ECONFIG, "dns.name: too long");
    }
    snprintf(c->records_url, sizeof c->records_url, "%s/zones/%s/dns_records", base, zone);
    snprintf(c->list_url, sizeof c->list_url, "%s?name=%s&per_page=100", c->records_url, name);
    return 0;
}

static int cf_init(struct afc_dns_provider *p, struct afc_err *err)
{
    const struct afc_dns_config *cfg = &p->cfg;
    int rc = dns_check_names(cfg, err);
    if (rc != 0) {
        return rc;
    }
    if (p->http == NULL) {
        return afc_err_set(err, AFC_EINVAL, "dns: the cloudflare provider needs the HTTP client");
    }
    if (cfg->cloudflare.token[0] == '\0') {
        return afc_err_set(err, AFC_ECONFIG,
                           "dns.cloudflare: no API token (from its file or the "
                           "environment)");
    }
    struct cf *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return afc_err_set(err, AFC_ENOMEM, "dns: out of memory");
    }
    if ((rc = build_urls(c, cfg, err)) != 0) {
        free(c);
        return rc;
    }
    snprintf(c->auth, sizeof c->auth, "Bearer %s", cfg->cloudflare.token);
    p->impl = c;
    return 0;
}

static void cf_free(struct afc_dns_provider *p)
{
    struct cf *c = p->impl;
    if (c != NULL) {
        dns_op_cancel_all(&c->ops);
        explicit_bzero(c->auth, sizeof c->auth);
        free(c);
        p->impl = NULL;
    }
}

const struct dns_provider_ops dns_cloudflare_ops = {
    .name = "cloudflare",
    .init = cf_init,
    .free = cf_free,
    .get = cf_get,
    .cas = cf_cas,
};
