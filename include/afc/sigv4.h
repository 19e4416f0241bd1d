/*
 * AWS Signature Version 4 (header signing), for the Route53 DNS provider.
 *
 * A pure function: no I/O, no clock, no global state, no allocation. The caller describes one HTTP
 * request (method, path, query, headers, body), the credentials, the region, the service and the
 * request time; afc_sigv4_sign() computes, exactly as AWS documents them ("Create a canonical
 * request", "Create a string to sign", "Calculate the signature" in the IAM user guide's "Signature
 * Version 4 signing process"):
 *
 *   canonical request   METHOD \n canonical URI \n canonical query \n canonical headers \n
 *                       signed headers \n hex(SHA256(body))
 *   string to sign      "AWS4-HMAC-SHA256" \n amz_date \n scope \n hex(SHA256(canonical request))
 *                       where scope = YYYYMMDD/region/service/aws4_request
 *   signature           hex(HMAC(HMAC(HMAC(HMAC(HMAC("AWS4" secret, YYYYMMDD), region), service),
 *                       "aws4_request"), string to sign))
 *   Authorization       "AWS4-HMAC-SHA256 Credential=<key id>/<scope>, SignedHeaders=<list>,
 *                       Signature=<signature>"
 *
 * Rules implemented (non-S3 services; checked against AWS's signing test suite, tests/vectors/):
 * - Canonical URI: the path is taken as it is sent on the wire (already percent-encoded by the
 *   caller, or raw) and every byte outside RFC 3986's unreserved set (A-Z a-z 0-9 - . _ ~) and '/'
 *   is percent-encoded with upper-case hex, '%' included — so an already-encoded "%20" becomes
 *   "%2520": the "encode twice" rule AWS applies to every service but S3. With normalize_path, dot
 *   segments are removed (RFC 3986 §5.2.4) and empty segments (double slashes) collapsed first; a
 *   trailing slash is kept. An empty path is "/".
 * - Canonical query: the query string is split on '&' (empty pieces dropped) and each piece on its
 *   first '='; names and values are percent-decoded ("%XX" only; '+' is a literal plus) and
 *   re-encoded as above ('/' included), then sorted by encoded name, then encoded value. A name
 *   without '=' gets an empty value ("name=").
 * - Canonical headers: names lower-cased, sorted; values trimmed of surrounding spaces and tabs,
 *   with every inner run of spaces and tabs collapsed to one space; several headers with the same
 *   name are joined with ',' in the order given. Every header passed is signed. The signer adds
 *   x-amz-date (always), x-amz-content-sha256 (when sign_body) and x-amz-security-token (when a
 *   session token is given and not session_token_unsigned).
 *
 * Not implemented: S3's rules (single URI encoding, no normalization, UNSIGNED-PAYLOAD), chunked
 * (streaming) payload signing, pre-signed URLs (query-string signing), SigV4a.
 *
 * What the caller sends: its own headers unchanged, plus
 *   X-Amz-Date: <params.amz_date>
 *   X-Amz-Security-Token: <credentials.session_token>        if a token is given
 *   x-amz-content-sha256: <result.payload_hash>             if params.sign_body
 *   Authorization: <result.authorization>
 * The Host header must be among the caller's headers, with the value the HTTP client will send.
 */
#ifndef AFC_SIGV4_H
#define AFC_SIGV4_H

#include <stdbool.h>
#include <stddef.h>

#include "afc/error.h"

/* ---- limits ---- */

#define AFC_SIGV4_DATE_LEN    16  /* "20150830T123600Z" */
#define AFC_SIGV4_NAME_MAX    63  /* region, service */
#define AFC_SIGV4_KEY_ID_MAX  128 /* access key id */
#define AFC_SIGV4_SECRET_MAX  128 /* secret access key */
#define AFC_SIGV4_MAX_HEADERS 64  /* headers passed by the caller (duplicates count each) */
#define AFC_SIGV4_MAX_PARAMS  128 /* query parameters */
#define AFC_SIGV4_HEX_SIZE    65  /* 64 hex digits + NUL */
#define AFC_SIGV4_STS_SIZE    256 /* the longest string to sign + NUL (249 with the limits above) */
#define AFC_SIGV4_ALGORITHM   "AWS4-HMAC-SHA256"
/* Sizes that hold a Route53 request with a handful of headers; not limits of the signer. */
#define AFC_SIGV4_CANONICAL_SIZE_HINT     8192
#define AFC_SIGV4_AUTHORIZATION_SIZE_HINT 1024

/* ---- input ---- */

struct afc_sigv4_header {
    const char *name;  /* an HTTP token, any case */
    const char *value; /* no CR, LF or other control character except tab; trimmed by the signer */
};

/* Everything borrowed for the duration of the call. */
struct afc_sigv4_request {
    const char *method; /* "GET", "POST"… (an HTTP token; used as given) */
    const char *path;   /* "/2013-04-01/hostedzone/Z123/rrset/"; no '?' or '#'; NULL or "" = "/" */
    const char *query;  /* raw query string without the '?'; NULL or "" = none */
    const struct afc_sigv4_header *headers; /* n_headers of them; must include Host */
    size_t n_headers;
    const void *body; /* body_len bytes; may be NULL when body_len is 0 */
    size_t body_len;
};

struct afc_sigv4_credentials {
    const char *access_key_id; /* 1..AFC_SIGV4_KEY_ID_MAX printable ASCII, no space, '/' or ',' */
    const char *secret_key;    /* 1..AFC_SIGV4_SECRET_MAX bytes */
    const char *session_token; /* NULL or "" when the credentials are not temporary */
};

struct afc_sigv4_params {
    const char *region;   /* "us-east-1"; 1..AFC_SIGV4_NAME_MAX of A-Z a-z 0-9 - _ . */
    const char *service;  /* "route53"; same alphabet and limit */
    const char *amz_date; /* request time, UTC, "YYYYMMDD'T'HHMMSS'Z'" — a real calendar time */
    bool normalize_path;  /* remove dot segments and double slashes (true for all but S3) */
    bool sign_body;       /* also send and sign x-amz-content-sha256 */
    /* Send X-Amz-Security-Token but leave it out of the signature: a few services require the
     * token to be added after signing. Route53 accepts it signed (false). */
    bool session_token_unsigned;
};

/* ---- output ---- */

/*
 * The caller points canonical_request and authorization at its own buffers and sets their sizes
 * (bytes, including the NUL) before the call; the fixed arrays are filled by the call. On any error
 * every string here is left empty ("" where a buffer exists): nothing half-built is ever returned.
 */
struct afc_sigv4_result {
    char *canonical_request; /* caller's buffer, canonical_request_size bytes */
    size_t canonical_request_size;
    char *authorization; /* caller's buffer: the Authorization header value */
    size_t authorization_size;
    char string_to_sign[AFC_SIGV4_STS_SIZE];
    char signature[AFC_SIGV4_HEX_SIZE];    /* 64 lower-case hex digits */
    char payload_hash[AFC_SIGV4_HEX_SIZE]; /* hex SHA256 of the body */
};

/*
 * Sign one request with the Authorization header (see the top of this file).
 *
 * Returns 0 and fills *out, or:
 *   AFC_EINVAL     a NULL argument or field that is required, a character not allowed in the
 *                  method, a header name or value, the path ('?' or '#'), the key id, region or
 *                  service; a missing Host header; a header the signer adds itself passed by the
 *                  caller (x-amz-date, authorization; x-amz-content-sha256 with sign_body;
 *                  x-amz-security-token with a session token);
 *   AFC_EMALFORMED amz_date is not a valid "YYYYMMDD'T'HHMMSS'Z'" time;
 *   AFC_ETOOBIG    a caller buffer is too small (the message says how many bytes are needed), or
 *                  more than AFC_SIGV4_MAX_HEADERS headers, AFC_SIGV4_MAX_PARAMS query parameters,
 *                  a key id, secret, region or service over its limit;
 *   AFC_EINTERNAL  libcrypto failed to hash.
 * err (may be NULL) gets the message. Secrets never appear in messages.
 */
int afc_sigv4_sign(const struct afc_sigv4_request *req, const struct afc_sigv4_credentials *cred,
                   const struct afc_sigv4_params *params, struct afc_sigv4_result *out,
                   struct afc_err *err);

#endif
