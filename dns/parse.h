/*
 * Pure helpers of the HTTP DNS providers (dns/powerdns.c, cloudflare.c, route53.c): reading and
 * writing the providers' formats without any I/O, so that every parser is unit-tested
 * (tests/unit/test_dns_parse.c) with good, odd and malformed input.
 *
 * dns/parse.c is in the pure library (libc only). The JSON readers at the end need jansson, which
 * the pure library does not link: they live in the provider files that use them (powerdns.c,
 * cloudflare.c, in the io library) and are declared here so the unit test reaches them too.
 */
#ifndef AFC_DNS_PARSE_H
#define AFC_DNS_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "afc/dns.h"

/* ---- names, addresses, URLs ---- */

/* Case-insensitive DNS name equality, a trailing dot on either side ignored. */
bool dns_name_equal(const char *a, const char *b);
/* "primary.db.example." → "primary.db.example" (Cloudflare's form). false if it does not fit. */
bool dns_name_no_dot(const char *name, char *out, size_t cap);
/* Is `name` `zone` or below it? (both absolute, case-insensitive) */
bool dns_name_under_zone(const char *name, const char *zone);
/* "A" for an IPv4 literal, "AAAA" for an IPv6 literal, NULL for anything else. */
const char *dns_addr_type(const char *addr);
/* Percent-encode everything but RFC 3986's unreserved characters. false if it does not fit. */
bool dns_url_encode(const char *in, char *out, size_t cap);
/* A printable, one-line excerpt of an HTTP body for messages: control characters and runs of
 * white space become one space, non-ASCII bytes '?', cut at cap-1 (with "..." when cut). */
void dns_body_excerpt(const char *body, size_t len, char *out, size_t cap);

/* ---- TXT presentation form ---- */

/* One TXT record's text as the APIs show it — one or more quoted character-strings
 * ("a" "b" → ab; \" \\ and \DDD escapes) or, as Cloudflare's older records are, bare text — into
 * its value. false when malformed (unterminated quote, bad escape) or longer than cap-1. */
bool dns_txt_unquote(const char *in, char *out, size_t cap);
/* text → "text" with " and \ escaped (one character-string; the stamp is far below 255 bytes).
 * false when it does not fit. */
bool dns_txt_quote(const char *in, char *out, size_t cap);

/* ---- building what a name holds, record by record ---- */

/* What the readers saw at the name, besides the address (afc_dns_value). The readers are pure:
 * they keep the TXT text; dns_seen_finish() (dns/http_op.c) decides whether it is a stamp. */
struct dns_seen {
    unsigned n_addr;  /* A/AAAA records at the name */
    unsigned n_txt;   /* TXT records at the name */
    unsigned txt_ttl; /* the TXT RRset's TTL */
    char txt[256];    /* the first TXT record's value (unquoted) */
    bool txt_bad;     /* ... did not fit */
};

/* One A/AAAA record: the first sets v->address (and ttl); a second one makes the address
 * "a,b" so that it can never match one expected address (the name does not hold one address). */
void dns_seen_address(struct afc_dns_value *v, struct dns_seen *s, const char *addr, unsigned ttl);
/* One TXT record's value (unquoted). The name is stamped only when it holds exactly one TXT
 * record and that record parses as "epoch=N region=R" (dns_seen_finish). */
void dns_seen_txt(struct dns_seen *s, const char *text, unsigned ttl);
/* The TXT RRset holds something that is not one stamp: a compare-and-set must refuse, since
 * writing our stamp would replace (or sit beside) records aragora does not own. */
bool dns_seen_foreign_txt(const struct dns_seen *s, const struct afc_dns_value *v);

/* "10.0.0.1 ttl=5 epoch=3 region=eu-west-1" / "no address, no stamp", for messages. */
void dns_value_text(const struct afc_dns_value *v, char *out, size_t cap);

/* ---- Cloudflare ---- */

/* Cloudflare's TTL is 1 ("automatic") or 60..86400: a configured TTL below 60 is sent as 60, one
 * above 86400 as 86400. "Automatic" (300 s today) is never used: a failover wants the shortest. */
unsigned dns_cloudflare_ttl(unsigned ttl);

/* ---- a small, tolerant XML reader (Route53 answers) ---- */

/*
 * Not a validating parser: enough to read the elements Route53 documents, robustly. Element names
 * are matched by local name (a namespace prefix is ignored, as is the default namespace);
 * attributes are skipped (quoted values may hold '>'); comments, processing instructions and
 * CDATA sections are understood; a DOCTYPE with an internal subset is refused (no entity
 * definitions, so no entity expansion); the five predefined entities and numeric character
 * references are decoded in text.
 */
struct dns_xml {
    const char *p;
    size_t n;
};

/* The first direct child element of `in` named `name`: its content in *content and what follows
 * its end tag in *rest (for iterating). Returns 1 found, 0 none, -1 malformed. A document is
 * searched for its root element the same way. */
int dns_xml_child(struct dns_xml in, const char *name, struct dns_xml *content,
                  struct dns_xml *rest);
/* The text of a leaf element's content (entities decoded, CDATA kept, surrounding white space
 * trimmed) into out. 0, or -1 when malformed, holding an element, or longer than cap-1. */
int dns_xml_text(struct dns_xml content, char *out, size_t cap);
/* Follow a path of direct children ("ErrorResponse/Error/Code") from `in` and read the leaf's
 * text. 1 found, 0 missing, -1 malformed or too long. */
int dns_xml_path_text(struct dns_xml in, const char *path, char *out, size_t cap);
/* Escape &, <, >, " and ' for element text. false when it does not fit. */
bool dns_xml_escape(const char *in, char *out, size_t cap);

/* ---- Route53 ---- */

struct dns_r53_error {
    char code[64];     /* "InvalidChangeBatch", "Throttling", ... ("" when none could be read) */
    char message[200]; /* AWS's message */
};

/* An error answer: ErrorResponse/Error/{Code,Message}, or the InvalidChangeBatch document
 * (InvalidChangeBatch/Messages/Message). false when the body is neither. */
bool dns_route53_read_error(const char *body, size_t len, struct dns_r53_error *e);

/* What an error code means for the caller (include/afc/dns.h), and the wait it suggests.
 * status is the HTTP status, code the error's Code ("" when unknown). */
enum afc_dns_outcome dns_route53_classify(long status, const char *code, unsigned *retry_after_ms);

/* Where a ListResourceRecordSets answer leaves off. */
struct dns_r53_page {
    bool more; /* IsTruncated and the next record still has our name */
    char next_name[AFC_DNS_NAME_MAX];
    char next_type[16];
};

/* One ListResourceRecordSets page: add the A/AAAA and TXT records whose name is `name` to *v
 * and *s (TXT values unquoted; alias and routing-policy record sets make the address
 * "(alias)" / "(routing policy)" so that they never match). 0, or -1 malformed. */
int dns_route53_read_rrsets(const char *body, size_t len, const char *name, struct afc_dns_value *v,
                            struct dns_seen *s, struct dns_r53_page *page);

/* A ChangeResourceRecordSets or GetChange answer: ChangeInfo/Id without its "/change/" prefix,
 * and ChangeInfo/Status ("PENDING", "INSYNC"). 0, or -1 malformed. */
int dns_route53_read_change(const char *body, size_t len, char *id, size_t id_cap, char *status,
                            size_t status_cap);

/*
 * The ChangeResourceRecordSetsRequest body: when expect->exists, DELETE its A/AAAA record
 * (address, expect->ttl); when old_stamp is not NULL, DELETE the TXT holding it (txt_ttl); then
 * CREATE the new address record and the new stamp, both with `ttl`. One batch: Route53 applies all
 * or nothing, and a DELETE that does not match exactly fails it — the compare-and-set. 0, or
 * AFC_EINVAL (an address that is not an IP literal, an old stamp without an old address),
 * AFC_ETOOBIG (does not fit).
 */
int dns_route53_change_batch(const char *name, const struct afc_dns_value *expect,
                             const char *old_stamp, unsigned txt_ttl, const char *address,
                             const char *stamp, unsigned ttl, const char *comment, char *out,
                             size_t cap);

/* ---- JSON readers (jansson; implemented in powerdns.c and cloudflare.c) ---- */

/* A PowerDNS zone document (GET /api/v1/servers/{id}/zones/{zone}): the A/AAAA and TXT RRsets
 * of `name` (disabled records ignored). 0, or -1 with msg set (not JSON, no "rrsets"). */
int dns_powerdns_read_zone(const char *body, size_t len, const char *name, struct afc_dns_value *v,
                           struct dns_seen *s, char *msg, size_t cap);
/* PowerDNS's {"error": "..."} text, or an excerpt of the body. */
void dns_powerdns_read_error(const char *body, size_t len, char *msg, size_t cap);

/* Cloudflare's envelope {success, errors[{code,message}], result}. */
struct dns_cf_envelope {
    bool json; /* the body was a JSON object */
    bool success;
    int first_code;    /* errors[0].code, 0 when none */
    bool auth_error;   /* an error code 10000 (authentication) or 9109 (invalid access token) */
    char message[200]; /* "code: message" of every error, joined with "; " */
};
void dns_cloudflare_read_envelope(const char *body, size_t len, struct dns_cf_envelope *env);
/* A list answer's result[]: the A/AAAA and TXT records named `name` (no trailing dot); record
 * ids go to v->provider_ref[0] (address) and [1] (TXT). 0, or -1 with msg set. */
int dns_cloudflare_read_records(const char *body, size_t len, const char *name,
                                struct afc_dns_value *v, struct dns_seen *s, char *msg, size_t cap);

#endif
