/*
 * DNS messages for RFC 2136 updates and authoritative queries (dns/wire.h says what and why).
 *
 * Building: names, RRs and packets are ldns objects, turned into wire format by ldns_pkt2wire()
 * and signed by ldns_pkt_tsig_sign(). Decoding: ldns_wire2pkt(), which also lifts a trailing TSIG
 * RR out of the additional section (ldns_pkt_tsig()). The header and question checks the
 * transport makes on every datagram are done on the raw bytes: they run before anything is
 * believed and must not allocate.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ldns/ldns.h>

#include "dns/wire.h"

#define HEADER_LEN 12

const char *dns_rcode_name(int rcode, char *buf, size_t cap)
{
    switch (rcode) {
#define DNS_RCODE_CASE(name, value)                                                                \
    case value:                                                                                    \
        return #name;
        DNS_RCODES(DNS_RCODE_CASE)
#undef DNS_RCODE_CASE
    default:
        snprintf(buf, cap, "RCODE%d", rcode);
        return buf;
    }
}

/* ---- configuration ---- */

static int parse_port(const char *s, uint16_t *port)
{
    char *end;
    if (*s < '0' || *s > '9') {
        return -1;
    }
    unsigned long v = strtoul(s, &end, 10);
    if (*end != '\0' || v == 0 || v > 65535) {
        return -1;
    }
    *port = (uint16_t)v;
    return 0;
}

static int fill_address(const char *host, uint16_t port, bool v6_only, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof *out);
    struct sockaddr_in *in4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
    if (!v6_only && inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        return 0;
    }
    return -1;
}

int dns_server_parse(const char *text, struct sockaddr_storage *out, struct afc_err *err)
{
    char host[AFC_DNS_ADDR_MAX];
    const char *port_text = NULL;
    uint16_t port = DNS_PORT;
    size_t len = strlen(text);
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || (size_t)(close - text - 1) >= sizeof host ||
            (close[1] != '\0' && close[1] != ':')) {
            return afc_err_set(err, AFC_ECONFIG, "\"%s\": expected [IPv6]:port", text);
        }
        snprintf(host, sizeof host, "%.*s", (int)(close - text - 1), text + 1);
        port_text = close[1] == ':' ? close + 2 : NULL;
    } else {
        const char *colon = strchr(text, ':');
        bool one_colon = colon != NULL && strchr(colon + 1, ':') == NULL;
        size_t host_len = one_colon ? (size_t)(colon - text) : len;
        if (host_len >= sizeof host) {
            return afc_err_set(err, AFC_ECONFIG, "\"%.80s\": address too long", text);
        }
        snprintf(host, sizeof host, "%.*s", (int)host_len, text);
        port_text = one_colon ? colon + 1 : NULL; /* several colons: a bare IPv6 address */
    }
    if (port_text != NULL && parse_port(port_text, &port) != 0) {
        return afc_err_set(err, AFC_ECONFIG, "\"%s\": port must be 1-65535", text);
    }
    if (fill_address(host, port, text[0] == '[', out) != 0) {
        return afc_err_set(err, AFC_ECONFIG,
                           "\"%s\": not an IPv4 or IPv6 address (host names are not resolved)",
                           text);
    }
    return 0;
}

const char *dns_tsig_algorithm(const char *configured)
{
    /* What ldns 1.8.3's ldns_digest_function() can do, less MD5 (RFC 8945 §6: deprecated). Its
     * hmac-sha384 is unreachable (the table spells it "hmac-shac384."), so it is not offered. */
    static const char *const known[] = {"hmac-sha256.", "hmac-sha512.", "hmac-sha1."};
    if (configured[0] == '\0') {
        return known[0];
    }
    size_t n = strlen(configured);
    if (configured[n - 1] == '.') {
        n--;
    }
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strlen(known[i]) == n + 1 && strncasecmp(known[i], configured, n) == 0) {
            return known[i];
        }
    }
    return NULL;
}

bool dns_name_in_zone(const char *name, const char *zone)
{
    size_t nl = strlen(name), zl = strlen(zone);
    if (nl == 0 || zl == 0 || name[nl - 1] != '.' || zone[zl - 1] != '.') {
        return false;
    }
    ldns_rdf *n = ldns_dname_new_frm_str(name);
    ldns_rdf *z = ldns_dname_new_frm_str(zone);
    bool in =
        n != NULL && z != NULL && (ldns_dname_compare(n, z) == 0 || ldns_dname_is_subdomain(n, z));
    ldns_rdf_deep_free(n);
    ldns_rdf_deep_free(z);
    return in;
}

bool dns_tsig_secret_is_valid(const char *b64)
{
    size_t n = strlen(b64);
    if (n == 0 || n % 4 != 0 || n > 4 * (512 / 3 + 1)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = b64[i];
        bool pad = c == '=' && i >= n - 2 && (i == n - 1 || b64[n - 1] == '=');
        if (!pad && !(c >= 'A' && c <= 'Z') && !(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') &&
            c != '+' && c != '/') {
            return false;
        }
    }
    ldns_rdf *rdf = NULL;
    bool ok = ldns_str2rdf_b64(&rdf, b64) == LDNS_STATUS_OK && ldns_rdf_size(rdf) > 0;
    ldns_rdf_deep_free(rdf);
    return ok;
}

/* ---- raw checks ---- */

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint8_t ascii_lower(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

/* The end of the question starting at HEADER_LEN (an uncompressed name, type, class), or 0. */
static size_t question_end(const uint8_t *m, size_t len)
{
    size_t pos = HEADER_LEN;
    while (pos < len && m[pos] != 0) {
        if (m[pos] > 63) {
            return 0; /* a pointer or an extended label: never in the first question */
        }
        pos += 1 + m[pos];
    }
    return pos + 5 <= len ? pos + 5 : 0;
}

bool dns_wire_answers(const uint8_t *req, size_t req_len, const uint8_t *resp, size_t resp_len)
{
    if (req_len < HEADER_LEN || resp_len < HEADER_LEN || get16(req) != get16(resp) ||
        !(resp[2] & 0x80) || ((req[2] ^ resp[2]) & 0x78) != 0) {
        return false;
    }
    uint16_t qd = get16(resp + 4);
    if (qd == 0) {
        return (resp[3] & 0x0f) != 0;
    }
    size_t end = question_end(req, req_len);
    if (qd != 1 || end == 0 || question_end(resp, resp_len) != end) {
        return false;
    }
    for (size_t i = HEADER_LEN; i < end; i++) {
        if (ascii_lower(req[i]) != ascii_lower(resp[i])) {
            return false;
        }
    }
    return true;
}

bool dns_wire_is_truncated(const uint8_t *msg, size_t len)
{
    return len >= HEADER_LEN && (msg[2] & 0x02) != 0;
}

/* ---- building ---- */

static int pkt_to_wire(ldns_pkt *pkt, uint8_t **wire, size_t *len, struct afc_err *err)
{
    ldns_status st = ldns_pkt2wire(wire, pkt, len);
    if (st != LDNS_STATUS_OK) {
        return afc_err_set(err, AFC_EINTERNAL, "encode: %s", ldns_get_errorstr_by_id(st));
    }
    return 0;
}

int dns_query_encode(const char *name, uint16_t type, uint16_t id, uint8_t **wire, size_t *len,
                     struct afc_err *err)
{
    ldns_rdf *qname = ldns_dname_new_frm_str(name);
    if (qname == NULL) {
        return afc_err_set(err, AFC_EINVAL, "\"%s\" is not a domain name", name);
    }
    ldns_pkt *pkt = ldns_pkt_query_new(qname, type, LDNS_RR_CLASS_IN, 0); /* takes qname */
    if (pkt == NULL) {
        return afc_err_set(err, AFC_ENOMEM, "out of memory");
    }
    ldns_pkt_set_id(pkt, id);
    ldns_pkt_set_rd(pkt, false); /* the answer must be the server's own (authoritative) */
    int rc = pkt_to_wire(pkt, wire, len, err);
    ldns_pkt_free(pkt);
    return rc;
}

/* An RR for an update message; rdata (may be NULL: an RR with empty RDATA) is taken. */
static ldns_rr *update_rr(const char *name, ldns_rr_type type, ldns_rr_class cls, uint32_t ttl,
                          ldns_rdf *rdata)
{
    ldns_rr *rr = ldns_rr_new();
    ldns_rdf *owner = ldns_dname_new_frm_str(name);
    if (rr == NULL || owner == NULL) {
        ldns_rr_free(rr);
        ldns_rdf_deep_free(owner);
        ldns_rdf_deep_free(rdata);
        return NULL;
    }
    ldns_rr_set_owner(rr, owner);
    ldns_rr_set_type(rr, type);
    ldns_rr_set_class(rr, cls);
    ldns_rr_set_ttl(rr, ttl);
    if (rdata != NULL && !ldns_rr_push_rdf(rr, rdata)) {
        ldns_rdf_deep_free(rdata);
        ldns_rr_free(rr);
        return NULL;
    }
    return rr;
}

/* The address's RR type and RDATA, or 0 when it is neither IPv4 nor IPv6. */
static ldns_rr_type address_rdata(const char *address, ldns_rdf **rdata)
{
    unsigned char buf[16];
    if (inet_pton(AF_INET, address, buf) == 1) {
        *rdata = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_A, 4, buf);
        return LDNS_RR_TYPE_A;
    }
    if (inet_pton(AF_INET6, address, buf) == 1) {
        *rdata = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_AAAA, 16, buf);
        return LDNS_RR_TYPE_AAAA;
    }
    *rdata = NULL;
    return 0;
}

/* One TXT character-string holding the stamp of v; NULL when v's stamp is not one that
 * afc_dns_stamp_parse() would read back (epoch 0, a region outside a-z 0-9 -). */
static ldns_rdf *stamp_rdata(const struct afc_dns_value *v)
{
    char text[AFC_DNS_REGION_MAX + 48], region[AFC_DNS_REGION_MAX];
    uint8_t buf[sizeof text + 1];
    uint64_t epoch;
    if (afc_dns_stamp_format(v->epoch, v->region, text, sizeof text) != 0 ||
        !afc_dns_stamp_parse(text, &epoch, region, sizeof region) || epoch != v->epoch ||
        strcmp(region, v->region) != 0) {
        return NULL;
    }
    size_t n = strlen(text);
    buf[0] = (uint8_t)n;
    memcpy(buf + 1, text, n);
    return ldns_rdf_new_frm_data(LDNS_RDF_TYPE_STR, n + 1, buf);
}

/* Appends rr (taken) to list; false when rr is NULL or memory runs out. */
static bool push(ldns_rr_list *list, ldns_rr *rr)
{
    if (rr == NULL || !ldns_rr_list_push_rr(list, rr)) {
        ldns_rr_free(rr);
        return false;
    }
    return true;
}

static int add_prerequisites(ldns_rr_list *pr, const struct dns_update *u, struct afc_err *err)
{
    const char *n = u->name;
    const struct afc_dns_value *e = u->expect;
    bool ok;
    if (!e->exists) {
        ok = push(pr, update_rr(n, LDNS_RR_TYPE_A, LDNS_RR_CLASS_NONE, 0, NULL)) &&
             push(pr, update_rr(n, LDNS_RR_TYPE_AAAA, LDNS_RR_CLASS_NONE, 0, NULL)) &&
             push(pr, update_rr(n, LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_NONE, 0, NULL));
        return ok ? 0 : afc_err_set(err, AFC_ENOMEM, "out of memory");
    }
    ldns_rdf *addr;
    ldns_rr_type type = address_rdata(e->address, &addr);
    if (type == 0) {
        return afc_err_set(err, AFC_EINVAL, "expected address \"%s\" is not IPv4 or IPv6",
                           e->address);
    }
    if (e->stamped) {
        ldns_rdf *txt = stamp_rdata(e);
        if (txt == NULL) {
            ldns_rdf_deep_free(addr);
            return afc_err_set(err, AFC_EINVAL, "expected stamp (region \"%s\") cannot be encoded",
                               e->region);
        }
        ok = push(pr, update_rr(n, type, LDNS_RR_CLASS_IN, 0, addr)) &&
             push(pr, update_rr(n, LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_IN, 0, txt));
    } else {
        ok = push(pr, update_rr(n, type, LDNS_RR_CLASS_IN, 0, addr)) &&
             push(pr, update_rr(n, LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_NONE, 0, NULL));
    }
    return ok ? 0 : afc_err_set(err, AFC_ENOMEM, "out of memory");
}

static int add_updates(ldns_rr_list *up, const struct dns_update *u, struct afc_err *err)
{
    const char *n = u->name;
    ldns_rdf *addr;
    ldns_rr_type type = address_rdata(u->next->address, &addr);
    if (type == 0) {
        return afc_err_set(err, AFC_EINVAL, "new address \"%s\" is not IPv4 or IPv6",
                           u->next->address);
    }
    ldns_rdf *txt = stamp_rdata(u->next);
    if (txt == NULL) {
        ldns_rdf_deep_free(addr);
        return afc_err_set(err, AFC_EINVAL, "new stamp (region \"%s\") cannot be encoded",
                           u->next->region);
    }
    /* Deletes first: the update section is applied in order (RFC 2136 §3.4.2). */
    bool ok = push(up, update_rr(n, LDNS_RR_TYPE_A, LDNS_RR_CLASS_ANY, 0, NULL)) &&
              push(up, update_rr(n, LDNS_RR_TYPE_AAAA, LDNS_RR_CLASS_ANY, 0, NULL)) &&
              push(up, update_rr(n, LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_ANY, 0, NULL));
    if (!ok) {
        ldns_rdf_deep_free(addr);
        ldns_rdf_deep_free(txt);
        return afc_err_set(err, AFC_ENOMEM, "out of memory");
    }
    ok = push(up, update_rr(n, type, LDNS_RR_CLASS_IN, u->ttl, addr));
    if (!ok) {
        ldns_rdf_deep_free(txt);
        return afc_err_set(err, AFC_ENOMEM, "out of memory");
    }
    ok = push(up, update_rr(n, LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_IN, u->ttl, txt));
    return ok ? 0 : afc_err_set(err, AFC_ENOMEM, "out of memory");
}

static int sign_and_encode(ldns_pkt *pkt, const struct dns_tsig_key *key, uint8_t **wire,
                           size_t *len, struct dns_request_mac *mac, struct afc_err *err)
{
    ldns_status st =
        ldns_pkt_tsig_sign(pkt, key->name, key->secret, DNS_TSIG_FUDGE_S, key->algorithm, NULL);
    if (st != LDNS_STATUS_OK || ldns_pkt_tsig(pkt) == NULL) {
        return afc_err_set(err, AFC_EINTERNAL, "TSIG sign with %s: %s", key->algorithm,
                           ldns_get_errorstr_by_id(st));
    }
    const ldns_rdf *m = ldns_rr_rdf(ldns_pkt_tsig(pkt), 3);
    if (m == NULL || ldns_rdf_size(m) > sizeof mac->bytes) {
        return afc_err_set(err, AFC_EINTERNAL, "TSIG sign: unexpected MAC");
    }
    memcpy(mac->bytes, ldns_rdf_data(m), ldns_rdf_size(m));
    mac->len = ldns_rdf_size(m);
    return pkt_to_wire(pkt, wire, len, err);
}

int dns_update_encode(const struct dns_update *u, const struct dns_tsig_key *key, uint8_t **wire,
                      size_t *len, struct dns_request_mac *mac, struct afc_err *err)
{
    int rc = AFC_ENOMEM;
    ldns_pkt *pkt = NULL;
    ldns_rr_list *pr = ldns_rr_list_new();
    ldns_rr_list *up = ldns_rr_list_new();
    ldns_rdf *zone = ldns_dname_new_frm_str(u->zone);
    if (pr == NULL || up == NULL || zone == NULL) {
        afc_err_set(err, AFC_ENOMEM, "out of memory");
        goto free_lists;
    }
    if ((rc = add_prerequisites(pr, u, err)) != 0 || (rc = add_updates(up, u, err)) != 0) {
        goto free_lists;
    }
    pkt = ldns_update_pkt_new(zone, LDNS_RR_CLASS_IN, pr, up, NULL); /* takes zone, copies lists */
    zone = NULL;
    if (pkt == NULL) {
        rc = afc_err_set(err, AFC_ENOMEM, "out of memory");
        goto free_lists;
    }
    ldns_pkt_set_id(pkt, u->id);
    ldns_pkt_set_rd(pkt, false); /* ldns sets it; in an UPDATE that bit is Z (RFC 2136 §2.2) */
    rc = sign_and_encode(pkt, key, wire, len, mac, err);
    ldns_pkt_free(pkt);
free_lists:
    ldns_rdf_deep_free(zone);
    ldns_rr_list_deep_free(pr);
    ldns_rr_list_deep_free(up);
    return rc;
}

/* ---- decoding ---- */

/* A record's value in text: an address, or a TXT's character-strings joined (non-printable
 * bytes shown as '?'). */
static void rdata_text(const ldns_rr *rr, char *out, size_t cap)
{
    out[0] = '\0';
    const ldns_rdf *r0 = ldns_rr_rdf(rr, 0);
    if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_A && r0 != NULL && ldns_rdf_size(r0) == 4) {
        inet_ntop(AF_INET, ldns_rdf_data(r0), out, (socklen_t)cap);
        return;
    }
    if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_AAAA && r0 != NULL && ldns_rdf_size(r0) == 16) {
        inet_ntop(AF_INET6, ldns_rdf_data(r0), out, (socklen_t)cap);
        return;
    }
    size_t used = 0;
    for (size_t i = 0; i < ldns_rr_rd_count(rr); i++) {
        const ldns_rdf *s = ldns_rr_rdf(rr, i);
        const uint8_t *d = ldns_rdf_data(s);
        size_t n = ldns_rdf_size(s) > 0 ? d[0] : 0;
        for (size_t k = 0; k < n && k + 1 < ldns_rdf_size(s) && used + 1 < cap; k++) {
            uint8_t c = d[k + 1];
            out[used++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
        }
    }
    out[used] = '\0';
}

int dns_answer_decode(const uint8_t *wire, size_t len, const char *name, uint16_t type,
                      struct dns_rrset *out, struct afc_err *err)
{
    memset(out, 0, sizeof *out);
    ldns_rdf *qname = ldns_dname_new_frm_str(name);
    if (qname == NULL) {
        return afc_err_set(err, AFC_EINVAL, "\"%s\" is not a domain name", name);
    }
    ldns_pkt *pkt = NULL;
    ldns_status st = ldns_wire2pkt(&pkt, wire, len);
    if (st != LDNS_STATUS_OK) {
        ldns_rdf_deep_free(qname);
        return afc_err_set(err, AFC_EMALFORMED, "malformed answer: %s",
                           ldns_get_errorstr_by_id(st));
    }
    out->rcode = ldns_pkt_get_rcode(pkt);
    out->authoritative = ldns_pkt_aa(pkt);
    const ldns_rr_list *answer = ldns_pkt_answer(pkt);
    for (size_t i = 0; i < ldns_rr_list_rr_count(answer); i++) {
        const ldns_rr *rr = ldns_rr_list_rr(answer, i);
        if (ldns_rr_get_type(rr) != type || ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN ||
            ldns_dname_compare(ldns_rr_owner(rr), qname) != 0) {
            continue;
        }
        if (out->n++ == 0) {
            out->ttl = ldns_rr_ttl(rr);
            rdata_text(rr, out->first, sizeof out->first);
        }
    }
    ldns_pkt_free(pkt);
    ldns_rdf_deep_free(qname);
    return 0;
}

void dns_value_compose(const struct dns_rrset *addr, const struct dns_rrset *txt,
                       struct afc_dns_value *out, char *note, size_t cap)
{
    memset(out, 0, sizeof *out);
    note[0] = '\0';
    if (addr->n > 0) {
        out->exists = true;
        out->ttl = addr->ttl;
        snprintf(out->address, sizeof out->address, "%.63s", addr->first); /* an address: < 46 */
    }
    if (txt->n == 1) {
        out->stamped =
            afc_dns_stamp_parse(txt->first, &out->epoch, out->region, sizeof out->region);
        if (!out->stamped) {
            snprintf(note, cap, "the TXT record \"%.60s\" is not an epoch stamp", txt->first);
        }
    } else if (txt->n > 1) {
        snprintf(note, cap, "%u TXT records at the name (expected one epoch stamp)", txt->n);
    }
    if (addr->n > 1 && note[0] == '\0') {
        snprintf(note, cap, "%u address records at the name (expected one)", addr->n);
    }
}

void dns_value_describe(const struct afc_dns_value *v, char *out, size_t cap)
{
    const char *addr = v->exists ? v->address : "no address";
    if (v->stamped) {
        snprintf(out, cap, "%s epoch=%" PRIu64 " region=%s", addr, v->epoch, v->region);
    } else {
        snprintf(out, cap, "%s (no stamp)", addr);
    }
}

bool dns_address_equal(const char *a, const char *b)
{
    unsigned char x[16], y[16];
    if (inet_pton(AF_INET, a, x) == 1) {
        return inet_pton(AF_INET, b, y) == 1 && memcmp(x, y, 4) == 0;
    }
    if (inet_pton(AF_INET6, a, x) == 1) {
        return inet_pton(AF_INET6, b, y) == 1 && memcmp(x, y, 16) == 0;
    }
    return false;
}

bool dns_value_agrees(const struct afc_dns_value *found, const struct afc_dns_value *want)
{
    if (!found->exists || !dns_address_equal(found->address, want->address)) {
        return false;
    }
    if (!want->stamped && want->epoch == 0) {
        return true;
    }
    return found->stamped && found->epoch == want->epoch &&
           strcmp(found->region, want->region) == 0;
}

/* The TSIG "time signed": 48 bits, seconds since the epoch. */
static bool tsig_time(const ldns_rdf *r, uint64_t *out)
{
    if (r == NULL || ldns_rdf_size(r) != 6) {
        return false;
    }
    const uint8_t *d = ldns_rdf_data(r);
    *out = 0;
    for (int i = 0; i < 6; i++) {
        *out = *out << 8 | d[i];
    }
    return true;
}

static bool rdf_is_int16(const ldns_rdf *r)
{
    return r != NULL && ldns_rdf_size(r) == 2;
}

/* Checks the answer's TSIG; sets out->signed_ok or out->why. */
static void check_tsig(ldns_pkt *pkt, const uint8_t *wire, size_t len,
                       const struct dns_tsig_key *key, const struct dns_request_mac *mac,
                       uint64_t now_s, struct dns_update_reply *out)
{
    ldns_rr *tsig = ldns_pkt_tsig(pkt);
    ldns_rdf *key_name = ldns_dname_new_frm_str(key->name);
    ldns_rdf *alg = ldns_dname_new_frm_str(key->algorithm);
    uint64_t signed_s = 0;
    if (key_name == NULL || alg == NULL) {
        snprintf(out->why, sizeof out->why, "out of memory");
    } else if (ldns_dname_compare(ldns_rr_owner(tsig), key_name) != 0) {
        snprintf(out->why, sizeof out->why, "signed with another key");
    } else if (ldns_dname_compare(ldns_rr_rdf(tsig, 0), alg) != 0) {
        snprintf(out->why, sizeof out->why, "signed with another algorithm");
    } else if (!tsig_time(ldns_rr_rdf(tsig, 1), &signed_s) || !rdf_is_int16(ldns_rr_rdf(tsig, 2))) {
        snprintf(out->why, sizeof out->why, "malformed TSIG");
    } else {
        ldns_rdf *req_mac = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_INT16_DATA, mac->len, mac->bytes);
        bool mac_ok = req_mac != NULL &&
                      ldns_pkt_tsig_verify(pkt, wire, len, key->name, key->secret, req_mac);
        ldns_rdf_deep_free(req_mac);
        if (ldns_pkt_tsig(pkt) == NULL) {
            ldns_pkt_set_tsig(pkt, tsig); /* ldns leaves it detached when it cannot compute */
        }
        uint64_t fudge = ldns_rdf2native_int16(ldns_rr_rdf(tsig, 2));
        uint64_t skew = now_s > signed_s ? now_s - signed_s : signed_s - now_s;
        if (!mac_ok) {
            snprintf(out->why, sizeof out->why, "the TSIG MAC does not verify");
        } else if (skew > (fudge < DNS_TSIG_FUDGE_S ? fudge : DNS_TSIG_FUDGE_S)) {
            snprintf(out->why, sizeof out->why,
                     "signed %" PRIu64 " s away from our clock (fudge %" PRIu64 " s)", skew, fudge);
        } else {
            out->signed_ok = true;
        }
    }
    ldns_rdf_deep_free(key_name);
    ldns_rdf_deep_free(alg);
}

int dns_update_reply_decode(const uint8_t *wire, size_t len, const struct dns_tsig_key *key,
                            const struct dns_request_mac *mac, uint64_t now_s,
                            struct dns_update_reply *out, struct afc_err *err)
{
    memset(out, 0, sizeof *out);
    ldns_pkt *pkt = NULL;
    ldns_status st = ldns_wire2pkt(&pkt, wire, len);
    if (st != LDNS_STATUS_OK) {
        return afc_err_set(err, AFC_EMALFORMED, "malformed answer: %s",
                           ldns_get_errorstr_by_id(st));
    }
    out->rcode = ldns_pkt_get_rcode(pkt);
    ldns_rr *tsig = ldns_pkt_tsig(pkt);
    if (tsig == NULL) {
        snprintf(out->why, sizeof out->why, "the answer is not signed");
    } else if (ldns_rr_rd_count(tsig) < 7 || !rdf_is_int16(ldns_rr_rdf(tsig, 5))) {
        snprintf(out->why, sizeof out->why, "malformed TSIG");
    } else {
        out->has_tsig = true;
        out->tsig_error = ldns_rdf2native_int16(ldns_rr_rdf(tsig, 5));
        check_tsig(pkt, wire, len, key, mac, now_s, out);
    }
    ldns_pkt_free(pkt);
    return 0;
}

bool dns_update_reply_is_credible(const struct dns_update_reply *r)
{
    if (r->signed_ok) {
        return true;
    }
    switch (r->rcode) {
    case DNS_RCODE_NOTAUTH:
    case DNS_RCODE_REFUSED:
    case DNS_RCODE_FORMERR:
    case DNS_RCODE_NOTIMP:
    case DNS_RCODE_NOTZONE:
        return true;
    default:
        return r->tsig_error != 0;
    }
}

enum afc_dns_outcome dns_update_outcome(int rcode, int tsig_error)
{
    if (tsig_error != 0) {
        return AFC_DNS_FAILED;
    }
    switch (rcode) {
    case DNS_RCODE_NOERROR:
        return AFC_DNS_OK;
    case DNS_RCODE_NXRRSET:
    case DNS_RCODE_YXRRSET:
    case DNS_RCODE_NXDOMAIN:
    case DNS_RCODE_YXDOMAIN:
        return AFC_DNS_CONFLICT;
    case DNS_RCODE_SERVFAIL:
        return AFC_DNS_RETRY;
    default:
        return AFC_DNS_FAILED;
    }
}
