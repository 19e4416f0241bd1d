/*
 * DNS messages for the rfc2136 provider and verification (dns/rfc2136.c, dns/verify.c): building
 * queries and TSIG-signed UPDATEs, recognising and decoding answers, checking an answer's TSIG,
 * and the small decisions made on what comes back (which RCODE means what, does a value agree).
 *
 * ldns builds, parses and signs; nothing here does I/O (dns/transport.c does, on the loop) and the
 * only clock read is ldns_pkt_tsig_sign()'s own gettimeofday() for the TSIG "time signed" (TSIG is
 * defined on wall time; RFC 8945 §5.2.3). Everything is unit-tested (tests/unit/test_dns_wire.c).
 */
#ifndef AFC_DNS_WIRE_H
#define AFC_DNS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "afc/dns.h"

#define DNS_PORT         53
#define DNS_TSIG_FUDGE_S 300      /* RFC 8945 §10: the recommended fudge */
#define DNS_MAC_MAX      (2 + 64) /* a TSIG MAC as ldns keeps it: length, then HMAC-SHA512 at most */

/* RR types and RCODEs used here (RFC 1035, 3596, 2136, 8945). */
enum {
    DNS_TYPE_A = 1,
    DNS_TYPE_TXT = 16,
    DNS_TYPE_AAAA = 28,
};

#define DNS_RCODES(X)                                                                              \
    X(NOERROR, 0)                                                                                  \
    X(FORMERR, 1)                                                                                  \
    X(SERVFAIL, 2)                                                                                 \
    X(NXDOMAIN, 3)                                                                                 \
    X(NOTIMP, 4)                                                                                   \
    X(REFUSED, 5)                                                                                  \
    X(YXDOMAIN, 6)                                                                                 \
    X(YXRRSET, 7)                                                                                  \
    X(NXRRSET, 8)                                                                                  \
    X(NOTAUTH, 9)                                                                                  \
    X(NOTZONE, 10)                                                                                 \
    X(BADSIG, 16)                                                                                  \
    X(BADKEY, 17)                                                                                  \
    X(BADTIME, 18)

enum dns_rcode {
#define DNS_RCODE_ENUM(name, value) DNS_RCODE_##name = value,
    DNS_RCODES(DNS_RCODE_ENUM)
#undef DNS_RCODE_ENUM
};

/* "NXRRSET"; "RCODE42" (in buf) for one not in the table. */
const char *dns_rcode_name(int rcode, char *buf, size_t cap);

/* ---- configuration ---- */

/*
 * A name server address: "192.0.2.1:53", "[2001:db8::1]:53", or without a port (53):
 * "192.0.2.1", "[2001:db8::1]", "2001:db8::1". Literal addresses only (no name resolution on the
 * loop). 0, or AFC_ECONFIG with err saying what is wrong.
 */
int dns_server_parse(const char *text, struct sockaddr_storage *out, struct afc_err *err);

/* The configured TSIG algorithm as ldns names it ("hmac-sha256" or "hmac-sha256." →
 * "hmac-sha256."; "" → the default hmac-sha256). NULL when ldns cannot do it. */
const char *dns_tsig_algorithm(const char *configured);

/* Is `name` an absolute domain name (trailing dot) equal to or below the absolute `zone`? */
bool dns_name_in_zone(const char *name, const char *zone);

/* Is `b64` base64 of a key of 1 to 512 bytes? */
bool dns_tsig_secret_is_valid(const char *b64);

struct dns_tsig_key {
    const char *name;      /* "aragora-key." */
    const char *algorithm; /* ldns form, from dns_tsig_algorithm() */
    const char *secret;    /* base64 */
};

/* The request's MAC, which the answer's MAC covers (RFC 8945 §4.3.1). */
struct dns_request_mac {
    uint8_t bytes[DNS_MAC_MAX];
    size_t len;
};

/* ---- raw checks the transport makes on every datagram (no parsing beyond the question) ---- */

/* Is `resp` an answer to `req`: same id, QR set, same opcode, and — when it carries a question —
 * the same question (QDCOUNT 1, name compared case-insensitively, type, class)? An answer without
 * a question is accepted only if its RCODE is not NOERROR (RFC 2136 §3.8 and FORMERR allow it). */
bool dns_wire_answers(const uint8_t *req, size_t req_len, const uint8_t *resp, size_t resp_len);
bool dns_wire_is_truncated(const uint8_t *msg, size_t len);

/* ---- building (every *wire is malloc'd: free() it) ---- */

/* A query for `name` `type` IN with RD=0 and no EDNS. 0, AFC_EINVAL (bad name) or AFC_ENOMEM. */
int dns_query_encode(const char *name, uint16_t type, uint16_t id, uint8_t **wire, size_t *len,
                     struct afc_err *err);

/*
 * The compare-and-set UPDATE for `zone` (RFC 2136), TSIG-signed with `key`:
 *   prerequisites  expect->exists: the A (or AAAA, for an IPv6 address) RRset is exactly
 *                  {expect->address} (value-dependent, §2.4.2) and the TXT RRset is exactly
 *                  {stamp of expect} when expect->stamped, else "TXT RRset does not exist"
 *                  (§2.4.3); !expect->exists: A, AAAA and TXT RRsets do not exist (§2.4.3)
 *   update         delete the A, AAAA and TXT RRsets (§2.5.2), add next->address (A or AAAA)
 *                  and TXT "epoch=N region=R" of next, both with `ttl`
 * mac receives the request MAC. 0, AFC_EINVAL (a value that cannot be encoded; err says which),
 * AFC_ENOMEM, or AFC_EINTERNAL (ldns could not sign).
 */
struct dns_update {
    const char *zone;
    const char *name;
    const struct afc_dns_value *expect;
    const struct afc_dns_value *next;
    unsigned ttl;
    uint16_t id;
};
int dns_update_encode(const struct dns_update *u, const struct dns_tsig_key *key, uint8_t **wire,
                      size_t *len, struct dns_request_mac *mac, struct afc_err *err);

/* ---- decoding ---- */

/* The records of one type at one name in an answer. */
struct dns_rrset {
    int rcode;
    bool authoritative; /* AA */
    unsigned n;         /* records of the asked type owned by the name (CNAMEs are not followed) */
    unsigned ttl;       /* the first one's */
    char first[256];    /* the first one's value: an address, or a TXT's strings joined */
};

/* Decode an answer to a query for name/type. 0 or AFC_EMALFORMED (err says why). */
int dns_answer_decode(const uint8_t *wire, size_t len, const char *name, uint16_t type,
                      struct dns_rrset *out, struct afc_err *err);

/*
 * What a name holds, from its address and TXT RRsets: exists when there is an address; stamped
 * only when the TXT RRset is exactly one stamp (the RRset the UPDATE's prerequisite compares).
 * `note` receives a remark when something is odd (several addresses, a TXT that is not a stamp),
 * else "".
 */
void dns_value_compose(const struct dns_rrset *addr, const struct dns_rrset *txt,
                       struct afc_dns_value *out, char *note, size_t cap);

/* "10.0.0.2 epoch=3 region=eu-west-1", "10.0.0.2 (no stamp)", "no address epoch=…" — for logs. */
void dns_value_describe(const struct afc_dns_value *v, char *out, size_t cap);

/* Same address (compared as binary: "::1" equals "0::1"); false when either does not parse. */
bool dns_address_equal(const char *a, const char *b);

/* Does `found` hold `want`: the address, and the stamp when want has one (stamped or epoch > 0)? */
bool dns_value_agrees(const struct afc_dns_value *found, const struct afc_dns_value *want);

/* The answer to an UPDATE. */
struct dns_update_reply {
    int rcode;
    bool has_tsig;
    int tsig_error; /* the TSIG RR's error field (BADSIG, BADKEY, BADTIME), 0 if none */
    bool signed_ok; /* the TSIG is the key's, over the request MAC, and within the fudge */
    char why[128];  /* why it is not signed_ok */
};

/* Decode an UPDATE's answer and check its TSIG against `key` and the request `mac` at wall time
 * `now_s`. 0 or AFC_EMALFORMED. */
int dns_update_reply_decode(const uint8_t *wire, size_t len, const struct dns_tsig_key *key,
                            const struct dns_request_mac *mac, uint64_t now_s,
                            struct dns_update_reply *out, struct afc_err *err);

/*
 * Should the answer be believed? A signed_ok answer, always. An unsigned one only when it refuses
 * (NOTAUTH, REFUSED, FORMERR, NOTIMP, NOTZONE, or a TSIG error): a server that rejects the
 * signature cannot sign its answer (RFC 8945 §5.3.2), and believing a forged refusal costs a
 * retry, never a wrong "applied". An unsigned NOERROR or prerequisite failure is ignored.
 */
bool dns_update_reply_is_credible(const struct dns_update_reply *r);

/* RCODE (and TSIG error) → outcome: NOERROR OK; NXRRSET, YXRRSET, NXDOMAIN, YXDOMAIN CONFLICT;
 * SERVFAIL RETRY; anything else FAILED. */
enum afc_dns_outcome dns_update_outcome(int rcode, int tsig_error);

#endif
