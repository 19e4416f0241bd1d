/*
 * The Amazon Route 53 provider (include/afc/dns.h; docs/dns.md "Route53"). Every request is
 * signed with AWS Signature Version 4 (dns/sigv4.c; service "route53", the configured signing
 * region, the request time from the wall clock — SigV4 needs real time, not the monotonic clock).
 *
 *   get  GET /2013-04-01/hostedzone/{id}/rrset?maxitems=10&name={name}&type=A
 *        (ListResourceRecordSets). The list starts at (name, A) and is sorted by name then type,
 *        so the name's A/AAAA and TXT record sets come first; pages are followed while the next
 *        record still has our name (at most MAX_PAGES).
 *   cas  POST /2013-04-01/hostedzone/{id}/rrset/ (ChangeResourceRecordSets), Content-Type
 *        text/xml, ONE ChangeBatch: DELETE the expected address record (exact value and TTL) and
 *        the expected TXT stamp, CREATE the new ones (only the CREATEs when nothing is expected).
 *        Route53 applies a batch whole or not at all and a DELETE must match exactly: this is a
 *        real compare-and-set in the server. Then GET /2013-04-01/change/{id} (GetChange) until
 *        INSYNC — every Route53 authoritative server answers the new records — with backoff,
 *        bounded by POLL_DEADLINE_MS, before answering OK.
 *
 * The TXT's TTL for the DELETE: get() records it in found.provider_ref[1]; an expectation without
 * it uses expect->ttl (both records are always written with the same TTL).
 *
 * Errors (ErrorResponse/Error/{Type,Code,Message}, or the InvalidChangeBatch document):
 * InvalidChangeBatch (a DELETE that does not match, a CREATE of a record that exists) → CONFLICT,
 * after re-reading the name to report what is there; Throttling, PriorRequestNotComplete, 5xx,
 * unreachable → RETRY with a suggested wait; SignatureDoesNotMatch, InvalidClientTokenId,
 * ExpiredToken, AccessDenied, NoSuchHostedZone and other 4xx → FAILED.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "afc/sigv4.h"
#include "dns/http_op.h"

#define DEFAULT_ENDPOINT "https://route53.amazonaws.com"
#define DEFAULT_REGION   "us-east-1"
#define API_PREFIX       "/2013-04-01"
#define LIST_MAX_ITEMS   10
#define MAX_PAGES        4
#define POLL_FIRST_MS    500
#define POLL_MAX_MS      8000
#define POLL_DEADLINE_MS (180 * 1000)
#define BATCH_MAX        8192
#define PATH_MAX_LEN     (64 + 2 * 64)
#define QUERY_MAX_LEN    (3 * AFC_DNS_NAME_MAX + 128)
#define AUTHORITY_MAX    256

struct r53 {
    struct dns_op_list ops;
    char base[AFC_DNS_URL_MAX]; /* the endpoint without a trailing slash */
    char host[AUTHORITY_MAX];   /* the Host header: the endpoint's authority */
    char zone_id[64];
    const char *region;
};

struct r53_op {
    struct dns_op op; /* first */
    unsigned pages;
    bool conflict_reread; /* a CONFLICT is being completed with a fresh read */
    char conflict_msg[200];
    char change_id[64];
    unsigned polls;
    uint64_t poll_delay_ms, poll_deadline_ms;
};

/* ---- signed requests ---- */

static void amz_now(char out[AFC_SIGV4_DATE_LEN + 1])
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, AFC_SIGV4_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &tm);
}

/* Sign and send; 0 or an error with op->res.message set. */
static int send_signed(struct dns_op *op, const char *method, const char *path, const char *query,
                       const char *body, dns_op_step step)
{
    struct r53 *r = op->p->impl;
    const struct afc_dns_config *c = &op->p->cfg;
    char date[AFC_SIGV4_DATE_LEN + 1], canonical[AFC_SIGV4_CANONICAL_SIZE_HINT + 2048];
    char authorization[AFC_SIGV4_AUTHORIZATION_SIZE_HINT];
    char url[AFC_DNS_URL_MAX + PATH_MAX_LEN + QUERY_MAX_LEN + 8];
    size_t body_len = body != NULL ? strlen(body) : 0;
    struct afc_sigv4_header sh[2] = {{"Host", r->host}, {"Content-Type", "text/xml"}};
    struct afc_sigv4_request sreq = {method, path, query, sh, body != NULL ? 2 : 1, body, body_len};
    const char *token = c->route53.session_token[0] != '\0' ? c->route53.session_token : NULL;
    struct afc_sigv4_credentials cred = {c->route53.access_key_id, c->route53.secret_access_key,
                                         token};
    struct afc_sigv4_params params = {
        .region = r->region, .service = "route53", .amz_date = date, .normalize_path = true};
    struct afc_sigv4_result out = {.canonical_request = canonical,
                                   .canonical_request_size = sizeof canonical,
                                   .authorization = authorization,
                                   .authorization_size = sizeof authorization};
    struct afc_err err = {0};
    amz_now(date);
    if (afc_sigv4_sign(&sreq, &cred, &params, &out, &err) != 0) {
        snprintf(op->res.message, sizeof op->res.message, "signing %s: %.200s", method, err.msg);
        return err.code;
    }
    snprintf(url, sizeof url, "%s%s%s%s", r->base, path, query != NULL ? "?" : "",
             query != NULL ? query : "");
    struct afc_http_request req = {
        .method = method,
        .url = url,
        .headers = {{"Host", r->host}, {"X-Amz-Date", date}, {"Authorization", authorization}},
        .n_headers = 3,
        .body = body,
        .body_len = body_len,
    };
    if (body != NULL) {
        req.headers[req.n_headers++] = (struct afc_http_header){"Content-Type", "text/xml"};
    }
    if (token != NULL) {
        req.headers[req.n_headers++] = (struct afc_http_header){"X-Amz-Security-Token", token};
    }
    return dns_op_send(op, &req, step);
}

static void send_signed_or_finish(struct dns_op *op, const char *method, const char *path,
                                  const char *query, const char *body, dns_op_step step)
{
    if (send_signed(op, method, path, query, body, step) != 0) {
        char msg[sizeof op->res.message];
        snprintf(msg, sizeof msg, "%s", op->res.message);
        dns_op_finish(op, AFC_DNS_FAILED, "%s", msg);
    }
}

/* An error answer: the outcome it means, finished here (except CONFLICT, returned). */
static enum afc_dns_outcome finish_error(struct dns_op *op, const struct afc_http_response *res,
                                         const char *what, bool finish_conflict)
{
    struct dns_r53_error e;
    unsigned wait_ms;
    if (!dns_route53_read_error(res->body, res->body_len, &e)) {
        dns_body_excerpt(res->body, res->body_len, e.message, sizeof e.message);
    }
    enum afc_dns_outcome o = dns_route53_classify(res->status, e.code, &wait_ms);
    if (o == AFC_DNS_OK) { /* a 2xx we could not read */
        o = AFC_DNS_FAILED;
    }
    if (o == AFC_DNS_CONFLICT && !finish_conflict) {
        struct r53_op *ro = (struct r53_op *)op;
        snprintf(ro->conflict_msg, sizeof ro->conflict_msg, "%.60s: %.130s", e.code, e.message);
        return o;
    }
    op->res.retry_after_ms = wait_ms;
    dns_op_finish(op, o, "%s: HTTP %ld %s: %s", what, res->status, e.code[0] ? e.code : "-",
                  e.message);
    return o;
}

/* ---- get: ListResourceRecordSets ---- */

static void list_cb(struct dns_op *op, const struct afc_http_response *res);

/* One page of the list, starting at (start_name, start_type). 0 or an error (message set). */
static int send_list(struct dns_op *op, const char *start_name, const char *start_type)
{
    struct r53 *r = op->p->impl;
    char path[PATH_MAX_LEN], query[QUERY_MAX_LEN], name[3 * AFC_DNS_NAME_MAX], type[48];
    if (!dns_url_encode(start_name, name, sizeof name) ||
        !dns_url_encode(start_type, type, sizeof type)) {
        snprintf(op->res.message, sizeof op->res.message, "record name too long");
        return AFC_ETOOBIG;
    }
    snprintf(path, sizeof path, API_PREFIX "/hostedzone/%s/rrset", r->zone_id);
    snprintf(query, sizeof query, "maxitems=%d&name=%s&type=%s", LIST_MAX_ITEMS, name, type);
    return send_signed(op, "GET", path, query, NULL, list_cb);
}

/* InvalidChangeBatch, and the re-read failed: what the name holds is unknown. */
static void conflict_unread(struct dns_op *op)
{
    memset(&op->res.found, 0, sizeof op->res.found);
    dns_op_finish(op, AFC_DNS_CONFLICT, "refused (the name could not be re-read); %s",
                  ((struct r53_op *)op)->conflict_msg);
}

static void read_done(struct dns_op *op)
{
    struct r53_op *ro = (struct r53_op *)op;
    struct afc_dns_value *f = &op->res.found;
    char desc[160];
    dns_seen_finish(f, &op->seen);
    if (op->seen.n_txt > 0) {
        snprintf(f->provider_ref[1], sizeof f->provider_ref[1], "%u", op->seen.txt_ttl);
    }
    if (ro->conflict_reread) {
        dns_op_conflict(op, ro->conflict_msg);
        return;
    }
    dns_value_text(f, desc, sizeof desc);
    dns_op_finish(op, AFC_DNS_OK, "%s holds %s", op->p->cfg.name, desc);
}

static void list_cb(struct dns_op *op, const struct afc_http_response *res)
{
    struct r53_op *ro = (struct r53_op *)op;
    struct dns_r53_page page;
    if (res->curl_code != 0 && ro->conflict_reread) {
        conflict_unread(op);
        return;
    }
    if (dns_op_transport_failed(op, res)) {
        return;
    }
    if (res->status != 200) {
        if (ro->conflict_reread) {
            conflict_unread(op);
        } else {
            finish_error(op, res, "ListResourceRecordSets", true);
        }
        return;
    }
    if (dns_route53_read_rrsets(res->body, res->body_len, op->p->cfg.name, &op->res.found,
                                &op->seen, &page) != 0) {
        dns_op_finish(op, AFC_DNS_FAILED, "ListResourceRecordSets: malformed answer");
        return;
    }
    if (page.more && ++ro->pages < MAX_PAGES) {
        if (send_list(op, page.next_name, page.next_type) != 0) {
            char msg[sizeof op->res.message];
            snprintf(msg, sizeof msg, "%s", op->res.message);
            dns_op_finish(op, AFC_DNS_FAILED, "%s", msg);
        }
        return;
    }
    read_done(op);
}

/* After InvalidChangeBatch: read the name so that the CONFLICT says what is there. */
static void reread_for_conflict(struct dns_op *op)
{
    ((struct r53_op *)op)->conflict_reread = true;
    if (send_list(op, op->p->cfg.name, "A") != 0) {
        conflict_unread(op);
    }
}

/* ---- cas: ChangeResourceRecordSets, then GetChange until INSYNC ---- */

static void finish_insync(struct dns_op *op)
{
    struct r53_op *ro = (struct r53_op *)op;
    struct afc_dns_value *f = &op->res.found;
    memset(f, 0, sizeof *f);
    *f = op->next;
    f->exists = f->stamped = true;
    f->ttl = dns_cfg_ttl(&op->p->cfg);
    snprintf(f->provider_ref[1], sizeof f->provider_ref[1], "%u", f->ttl);
    dns_op_finish(op, AFC_DNS_OK, "%s now %s epoch=%llu region=%s (change %s INSYNC, %u polls)",
                  op->p->cfg.name, op->next.address, (unsigned long long)op->next.epoch,
                  op->next.region, ro->change_id, ro->polls);
}

static void poll_change(struct dns_op *op);

/* Poll again after the next backoff, or give up at the deadline (RETRY: the change was
 * accepted; a retried compare-and-set will find `next` in place and conflict with it). */
static void poll_later(struct dns_op *op, const char *why)
{
    struct r53_op *ro = (struct r53_op *)op;
    uint64_t now = uv_now(op->p->loop);
    if (now + ro->poll_delay_ms > ro->poll_deadline_ms) {
        dns_op_finish(op, AFC_DNS_RETRY, "change %s accepted but not INSYNC after %d s (%s)",
                      ro->change_id, POLL_DEADLINE_MS / 1000, why);
        return;
    }
    dns_op_after(op, ro->poll_delay_ms, poll_change);
    ro->poll_delay_ms = ro->poll_delay_ms * 2 > POLL_MAX_MS ? POLL_MAX_MS : ro->poll_delay_ms * 2;
}

static void change_status(struct dns_op *op, const struct afc_http_response *res)
{
    struct r53_op *ro = (struct r53_op *)op;
    char id[64], status[32];
    if (dns_route53_read_change(res->body, res->body_len, id, sizeof id, status, sizeof status) !=
        0) {
        dns_op_finish(op, AFC_DNS_FAILED, "change %s: malformed ChangeInfo", ro->change_id);
        return;
    }
    snprintf(ro->change_id, sizeof ro->change_id, "%s", id);
    if (strcmp(status, "INSYNC") == 0) {
        finish_insync(op);
    } else {
        poll_later(op, status);
    }
}

static void poll_cb(struct dns_op *op, const struct afc_http_response *res)
{
    struct dns_r53_error e;
    unsigned wait_ms;
    if (res->curl_code != 0) {
        poll_later(op, res->error);
        return;
    }
    if (res->status == 200) {
        change_status(op, res);
        return;
    }
    if (!dns_route53_read_error(res->body, res->body_len, &e)) {
        e.code[0] = '\0';
    }
    if (dns_route53_classify(res->status, e.code, &wait_ms) == AFC_DNS_RETRY) {
        poll_later(op, e.code[0] ? e.code : "server error");
        return;
    }
    finish_error(op, res, "GetChange (the change was accepted)", true);
}

static void poll_change(struct dns_op *op)
{
    struct r53_op *ro = (struct r53_op *)op;
    char path[PATH_MAX_LEN];
    ro->polls++;
    snprintf(path, sizeof path, API_PREFIX "/change/%s", ro->change_id);
    send_signed_or_finish(op, "GET", path, NULL, NULL, poll_cb);
}

static void changed_cb(struct dns_op *op, const struct afc_http_response *res)
{
    struct r53_op *ro = (struct r53_op *)op;
    if (dns_op_transport_failed(op, res)) {
        return;
    }
    if (res->status != 200) {
        if (finish_error(op, res, "ChangeResourceRecordSets", false) == AFC_DNS_CONFLICT) {
            reread_for_conflict(op);
        }
        return;
    }
    ro->poll_delay_ms = POLL_FIRST_MS;
    ro->poll_deadline_ms = uv_now(op->p->loop) + POLL_DEADLINE_MS;
    change_status(op, res);
}

/* The TXT TTL to DELETE: what get() saw (provider_ref[1]), else the address record's. */
static unsigned expected_txt_ttl(const struct afc_dns_value *expect)
{
    char *end;
    unsigned long v = strtoul(expect->provider_ref[1], &end, 10);
    if (expect->provider_ref[1][0] == '\0' || *end != '\0' || v > 0x7fffffffUL) {
        return expect->ttl;
    }
    return (unsigned)v;
}

static int build_batch(const struct dns_op *op, char *body, size_t cap)
{
    const struct afc_dns_value *e = &op->expect, *n = &op->next;
    char stamp[AFC_DNS_REGION_MAX + 48], old_stamp[AFC_DNS_REGION_MAX + 48], comment[128];
    if (afc_dns_stamp_format(n->epoch, n->region, stamp, sizeof stamp) != 0 ||
        (e->exists && e->stamped &&
         afc_dns_stamp_format(e->epoch, e->region, old_stamp, sizeof old_stamp) != 0)) {
        return AFC_EINVAL;
    }
    snprintf(comment, sizeof comment, "aragora failover epoch %llu to %s",
             (unsigned long long)n->epoch, n->region);
    return dns_route53_change_batch(op->p->cfg.name, e, e->exists && e->stamped ? old_stamp : NULL,
                                    expected_txt_ttl(e), n->address, stamp,
                                    dns_cfg_ttl(&op->p->cfg), comment, body, cap);
}

/* ---- the provider ---- */

static int start(struct afc_dns_provider *p, const struct afc_dns_value *expect,
                 const struct afc_dns_value *next, afc_dns_cb cb, void *data)
{
    struct r53 *r = p->impl;
    char path[PATH_MAX_LEN], *body = NULL;
    struct dns_op *op = dns_op_new(p, &r->ops, sizeof(struct r53_op), cb, data);
    if (op == NULL) {
        return AFC_ENOMEM;
    }
    int rc;
    if (next == NULL) {
        rc = send_list(op, p->cfg.name, "A");
    } else {
        op->is_cas = true;
        op->expect = *expect;
        op->next = *next;
        body = malloc(BATCH_MAX);
        rc = body == NULL ? AFC_ENOMEM : build_batch(op, body, BATCH_MAX);
        snprintf(path, sizeof path, API_PREFIX "/hostedzone/%s/rrset/", r->zone_id);
        rc = rc != 0 ? rc : send_signed(op, "POST", path, NULL, body, changed_cb);
        free(body); /* copied by the client */
    }
    if (rc != 0) {
        dns_op_abort(op);
    }
    return rc;
}

static int r53_get(struct afc_dns_provider *p, afc_dns_cb cb, void *data)
{
    return start(p, NULL, NULL, cb, data);
}

static int r53_cas(struct afc_dns_provider *p, const struct afc_dns_value *expect,
                   const struct afc_dns_value *next, afc_dns_cb cb, void *data)
{
    char stamp[AFC_DNS_REGION_MAX + 48];
    if (dns_check_cas(expect, next, stamp, sizeof stamp) != 0 ||
        (expect->exists && dns_addr_type(expect->address) == NULL)) {
        return AFC_EINVAL; /* a DELETE needs the exact address */
    }
    return start(p, expect, next, cb, data);
}

/* "https://route53.amazonaws.com" → host "route53.amazonaws.com"; no path, no user info. */
static bool endpoint_authority(const char *base, char *host, size_t cap)
{
    const char *a = strstr(base, "://");
    a = a != NULL ? a + 3 : NULL;
    if (a == NULL || *a == '\0' || strpbrk(a, "/?#@") != NULL || strlen(a) + 1 > cap) {
        return false;
    }
    snprintf(host, cap, "%s", a);
    return true;
}

static int check_config(const struct afc_dns_config *c, struct afc_err *err)
{
    const char *z = c->route53.hosted_zone_id;
    if (strncmp(z, "/hostedzone/", 12) == 0) {
        z += 12;
    }
    char enc[3 * 64];
    if (z[0] == '\0' || !dns_url_encode(z, enc, sizeof enc) || strcmp(enc, z) != 0) {
        return afc_err_set(err, AFC_ECONFIG, "dns.route53.hosted_zone_id: missing or malformed");
    }
    if (c->route53.access_key_id[0] == '\0' || c->route53.secret_access_key[0] == '\0') {
        return afc_err_set(err, AFC_ECONFIG,
                           "dns.route53: no access key id or secret access key "
                           "(from their files or the environment)");
    }
    char name[3 * AFC_DNS_NAME_MAX];
    if (!dns_url_encode(c->name, name, sizeof name)) {
        return afc_err_set(err, AFC_ECONFIG, "dns.name: too long");
    }
    return 0;
}

static int r53_init(struct afc_dns_provider *p, struct afc_err *err)
{
    const struct afc_dns_config *c = &p->cfg;
    const char *endpoint = c->route53.endpoint[0] != '\0' ? c->route53.endpoint : DEFAULT_ENDPOINT;
    int rc = dns_check_names(c, err);
    if (rc == 0) {
        rc = check_config(c, err);
    }
    if (rc != 0) {
        return rc;
    }
    if (p->http == NULL) {
        return afc_err_set(err, AFC_EINVAL, "dns: the route53 provider needs the HTTP client");
    }
    struct r53 *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return afc_err_set(err, AFC_ENOMEM, "dns: out of memory");
    }
    if (!dns_base_url(endpoint, r->base, sizeof r->base) ||
        !endpoint_authority(r->base, r->host, sizeof r->host)) {
        free(r);
        return afc_err_set(err, AFC_ECONFIG,
                           "dns.route53.endpoint: '%s' is not an http(s) URL without a path",
                           endpoint);
    }
    const char *z = c->route53.hosted_zone_id;
    snprintf(r->zone_id, sizeof r->zone_id, "%s", strncmp(z, "/hostedzone/", 12) == 0 ? z + 12 : z);
    r->region = c->route53.region[0] != '\0' ? c->route53.region : DEFAULT_REGION;
    p->impl = r;
    return 0;
}

static void r53_free(struct afc_dns_provider *p)
{
    struct r53 *r = p->impl;
    if (r != NULL) {
        dns_op_cancel_all(&r->ops);
        free(r);
        p->impl = NULL;
    }
}

const struct dns_provider_ops dns_route53_ops = {
    .name = "route53",
    .init = r53_init,
    .free = r53_free,
    .get = r53_get,
    .cas = r53_cas,
};
