/*
 * AWS Signature Version 4, header signing (include/afc/sigv4.h says what and why).
 *
 * Data flow: check every input (limits, alphabets, the date) → hash the body → write the canonical
 * request into the caller's buffer through a `sink` that counts past the end, so a buffer that is
 * too small is reported with the size it needs instead of being truncated → hash it into the
 * string to sign → derive the signing key (the HMAC chain of AWS's "Calculate the signature" page)
 * → sign → write the Authorization value through a second sink.
 *
 * No allocation: headers and query parameters are sorted as arrays of pointers into the caller's
 * strings (bounded by AFC_SIGV4_MAX_HEADERS / AFC_SIGV4_MAX_PARAMS), query names and values are
 * compared through an iterator that yields their canonical (decoded, re-encoded) bytes on the fly,
 * and dot segments are resolved by looking ahead in the path rather than by editing the output.
 *
 * libcrypto (OpenSSL) provides SHA-256 and HMAC-SHA256, as for the raft transport handshake.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "afc/sigv4.h"

#define SHA256_LEN   32
#define TERMINATOR   "aws4_request"
#define SIGNER_DATE  "x-amz-date"
#define SIGNER_HASH  "x-amz-content-sha256"
#define SIGNER_TOKEN "x-amz-security-token"

static const char hex_digits[] = "0123456789abcdef";
static const char hex_upper[] = "0123456789ABCDEF";

/* ---- character classes (ASCII only: never the locale's) ---- */

static bool is_alnum(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* RFC 3986 §2.3 */
static bool is_unreserved(unsigned char c)
{
    return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* RFC 9110 §5.6.2 token characters: method and header names. */
static bool is_tchar(unsigned char c)
{
    return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* ---- output that never truncates silently ---- */

struct sink {
    char *buf;
    size_t size; /* bytes available, the NUL included */
    size_t len;  /* bytes produced so far, counted even past size: the size needed is len + 1 */
};

static void put_char(struct sink *s, char c)
{
    if (s->len + 1 < s->size) {
        s->buf[s->len] = c;
    }
    s->len++;
}

static void put_mem(struct sink *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        put_char(s, p[i]);
    }
}

static void put_str(struct sink *s, const char *p)
{
    put_mem(s, p, strlen(p));
}

/* NUL-terminate; false (and an empty buffer) if the output did not fit. */
static bool sink_end(struct sink *s)
{
    if (s->len + 1 > s->size) {
        if (s->size > 0) {
            s->buf[0] = '\0';
        }
        return false;
    }
    s->buf[s->len] = '\0';
    return true;
}

/* ---- URI encoding as an iterator: canonical bytes of a path segment or query component ---- */

struct enc {
    const unsigned char *p, *end;
    bool decode;     /* percent-decode "%XX" first (query components) */
    bool keep_slash; /* '/' passes unencoded (paths) */
    char pending[2]; /* hex digits still to yield after a '%' */
    int n_pending;
};

static struct enc enc_init(const char *p, size_t len, bool decode, bool keep_slash)
{
    struct enc e = {
        (const unsigned char *)p, (const unsigned char *)p + len, decode, keep_slash, {0, 0}, 0};
    return e;
}

/* Next canonical byte, or -1 at the end. */
static int enc_next(struct enc *e)
{
    if (e->n_pending > 0) {
        return e->pending[2 - e->n_pending--];
    }
    if (e->p == e->end) {
        return -1;
    }
    unsigned c = *e->p++;
    if (e->decode && c == '%' && e->end - e->p >= 2 && hex_value(e->p[0]) >= 0 &&
        hex_value(e->p[1]) >= 0) {
        c = (unsigned)(hex_value(e->p[0]) << 4 | hex_value(e->p[1]));
        e->p += 2;
    }
    if (is_unreserved((unsigned char)c) || (c == '/' && e->keep_slash)) {
        return (int)c;
    }
    e->pending[0] = hex_upper[c >> 4];
    e->pending[1] = hex_upper[c & 0xf];
    e->n_pending = 2;
    return '%';
}

static void put_encoded(struct sink *s, const char *p, size_t len, bool decode, bool keep_slash)
{
    struct enc e = enc_init(p, len, decode, keep_slash);
    for (int c = enc_next(&e); c >= 0; c = enc_next(&e)) {
        put_char(s, (char)c);
    }
}

/* strcmp() order of the canonical forms of two query components. */
static int enc_compare(const char *a, size_t a_len, const char *b, size_t b_len)
{
    struct enc x = enc_init(a, a_len, true, false), y = enc_init(b, b_len, true, false);
    for (;;) {
        int cx = enc_next(&x), cy = enc_next(&y);
        if (cx != cy) {
            return cx < cy ? -1 : 1;
        }
        if (cx < 0) {
            return 0;
        }
    }
}

/* ---- canonical URI ---- */

/* One piece of the path between slashes: [p, end). */
struct seg {
    const char *p, *end;
};

/* The piece starting at p (just after a '/'); its end is the next '/' or path_end. */
static struct seg seg_at(const char *p, const char *path_end)
{
    const char *slash = memchr(p, '/', (size_t)(path_end - p));
    struct seg s = {p, slash != NULL ? slash : path_end};
    return s;
}

static bool seg_is(struct seg s, const char *what)
{
    size_t n = strlen(what);
    return (size_t)(s.end - s.p) == n && memcmp(s.p, what, n) == 0;
}

/* Empty pieces (double slashes) and "." are dropped; ".." removes the segment before it. */
static bool seg_is_name(struct seg s)
{
    return s.end > s.p && !seg_is(s, ".") && !seg_is(s, "..");
}

/*
 * Does the name segment s survive dot-segment removal? It does unless a later ".." pops it: walk
 * the rest of the path counting the names pushed after s; a ".." met when none is pending pops s.
 * Quadratic in the number of segments, which is a handful for any API path.
 */
static bool seg_survives(struct seg s, const char *path_end)
{
    unsigned depth = 0;
    while (s.end < path_end) {
        s = seg_at(s.end + 1, path_end);
        if (seg_is(s, "..")) {
            if (depth == 0) {
                return false;
            }
            depth--;
        } else if (seg_is_name(s)) {
            depth++;
        }
    }
    return true;
}

/* RFC 3986 §5.2.4 plus collapsing empty segments; a trailing slash (or trailing "." / "..") is
 * kept as a trailing slash unless nothing is left but the root. */
static void put_normalized_path(struct sink *s, const char *path, size_t len)
{
    const char *end = path + len;
    bool any = false;
    struct seg g = seg_at(path + 1, end);
    for (;;) {
        if (seg_is_name(g) && seg_survives(g, end)) {
            put_char(s, '/');
            put_encoded(s, g.p, (size_t)(g.end - g.p), false, false);
            any = true;
        }
        if (g.end == end) {
            break;
        }
        g = seg_at(g.end + 1, end);
    }
    /* g is now the last piece. */
    if (!any || !seg_is_name(g)) {
        put_char(s, '/');
    }
}

static void put_canonical_uri(struct sink *s, const char *path, bool normalize)
{
    size_t len = path != NULL ? strlen(path) : 0;
    if (len == 0) {
        put_char(s, '/');
    } else if (normalize) {
        put_normalized_path(s, path, len);
    } else {
        put_encoded(s, path, len, false, true);
    }
}

/* ---- canonical query string ---- */

struct param {
    const char *name, *value;
    size_t name_len, value_len;
};

static int param_compare(const struct param *a, const struct param *b)
{
    int c = enc_compare(a->name, a->name_len, b->name, b->name_len);
    return c != 0 ? c : enc_compare(a->value, a->value_len, b->value, b->value_len);
}

static int split_query(const char *query, struct param *params, size_t *n, struct afc_err *err)
{
    *n = 0;
    for (const char *p = query; p != NULL && *p != '\0';) {
        const char *amp = strchr(p, '&');
        size_t len = amp != NULL ? (size_t)(amp - p) : strlen(p);
        if (len > 0) {
            if (*n == AFC_SIGV4_MAX_PARAMS) {
                return afc_err_set(err, AFC_ETOOBIG, "query: more than %d parameters",
                                   AFC_SIGV4_MAX_PARAMS);
            }
            const char *eq = memchr(p, '=', len);
            struct param *q = &params[(*n)++];
            q->name = p;
            q->name_len = eq != NULL ? (size_t)(eq - p) : len;
            q->value = eq != NULL ? eq + 1 : p + len;
            q->value_len = eq != NULL ? len - q->name_len - 1 : 0;
        }
        p = amp != NULL ? amp + 1 : p + len;
    }
    /* Insertion sort: stable, no allocation, n is small. */
    for (size_t i = 1; i < *n; i++) {
        struct param key = params[i];
        size_t j = i;
        for (; j > 0 && param_compare(&params[j - 1], &key) > 0; j--) {
            params[j] = params[j - 1];
        }
        params[j] = key;
    }
    return 0;
}

static void put_canonical_query(struct sink *s, const struct param *params, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            put_char(s, '&');
        }
        put_encoded(s, params[i].name, params[i].name_len, true, false);
        put_char(s, '=');
        put_encoded(s, params[i].value, params[i].value_len, true, false);
    }
}

/* ---- canonical headers ---- */

struct hdr {
    const char *name, *value;
};

static int name_compare(const char *a, const char *b)
{
    for (;; a++, b++) {
        unsigned char x = lower((unsigned char)*a), y = lower((unsigned char)*b);
        if (x != y || x == '\0') {
            return x < y ? -1 : x > y ? 1 : 0;
        }
    }
}

/* Stable: headers of the same name keep the caller's order, which their joined value follows. */
static void sort_headers(struct hdr *h, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        struct hdr key = h[i];
        size_t j = i;
        for (; j > 0 && name_compare(h[j - 1].name, key.name) > 0; j--) {
            h[j] = h[j - 1];
        }
        h[j] = key;
    }
}

static void put_lower(struct sink *s, const char *p)
{
    for (; *p != '\0'; p++) {
        put_char(s, (char)lower((unsigned char)*p));
    }
}

/* AWS's Trimall: no surrounding whitespace, inner runs of whitespace become one space. */
static void put_trimmed(struct sink *s, const char *v)
{
    bool gap = false, started = false;
    for (; *v != '\0'; v++) {
        if (is_space((unsigned char)*v)) {
            gap = started;
            continue;
        }
        if (gap) {
            put_char(s, ' ');
        }
        put_char(s, *v);
        gap = false;
        started = true;
    }
}

/* "name:v1,v2\n" per distinct name, in sorted order. */
static void put_canonical_headers(struct sink *s, const struct hdr *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bool same = i > 0 && name_compare(h[i - 1].name, h[i].name) == 0;
        if (same) {
            put_char(s, ',');
        } else {
            if (i > 0) {
                put_char(s, '\n');
            }
            put_lower(s, h[i].name);
            put_char(s, ':');
        }
        put_trimmed(s, h[i].value);
    }
    put_char(s, '\n');
}

/* "host;x-amz-date": each distinct name once. */
static void put_signed_headers(struct sink *s, const struct hdr *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && name_compare(h[i - 1].name, h[i].name) == 0) {
            continue;
        }
        if (i > 0) {
            put_char(s, ';');
        }
        put_lower(s, h[i].name);
    }
}

/* ---- input checks ---- */

static bool is_token(const char *s)
{
    if (s == NULL || *s == '\0') {
        return false;
    }
    for (; *s != '\0'; s++) {
        if (!is_tchar((unsigned char)*s)) {
            return false;
        }
    }
    return true;
}

/* Field values: no control characters but tab (so no CR/LF header injection). */
static bool is_field_value(const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return false;
        }
    }
    return true;
}

static int check_scope_name(const char *what, const char *s, struct afc_err *err)
{
    if (s == NULL || *s == '\0') {
        return afc_err_set(err, AFC_EINVAL, "%s: missing", what);
    }
    size_t len = strlen(s);
    if (len > AFC_SIGV4_NAME_MAX) {
        return afc_err_set(err, AFC_ETOOBIG, "%s: %zu characters, at most %d", what, len,
                           AFC_SIGV4_NAME_MAX);
    }
    for (const char *p = s; *p != '\0'; p++) {
        if (!is_alnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.') {
            return afc_err_set(err, AFC_EINVAL, "%s \"%s\": only A-Z a-z 0-9 - _ . allowed", what,
                               s);
        }
    }
    return 0;
}

static int digits(const char *p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

static int days_in_month(int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

/* "YYYYMMDD'T'HHMMSS'Z'" (ISO 8601 basic format, UTC), a time that exists. */
static int check_date(const char *d, struct afc_err *err)
{
    if (d == NULL) {
        return afc_err_set(err, AFC_EINVAL, "amz_date: missing");
    }
    size_t len = strnlen(d, AFC_SIGV4_DATE_LEN + 1);
    bool shape = len == AFC_SIGV4_DATE_LEN && d[8] == 'T' && d[15] == 'Z';
    for (size_t i = 0; shape && i < AFC_SIGV4_DATE_LEN; i++) {
        shape = i == 8 || i == 15 || (d[i] >= '0' && d[i] <= '9');
    }
    if (!shape) {
        return afc_err_set(err, AFC_EMALFORMED,
                           "amz_date \"%.32s\": not of the form YYYYMMDDTHHMMSSZ", d);
    }
    int year = digits(d, 4), month = digits(d + 4, 2), day = digits(d + 6, 2);
    int hour = digits(d + 9, 2), minute = digits(d + 11, 2), second = digits(d + 13, 2);
    if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 ||
        minute > 59 || second > 59) {
        return afc_err_set(err, AFC_EMALFORMED, "amz_date \"%s\": no such date or time", d);
    }
    return 0;
}

static int check_credentials(const struct afc_sigv4_credentials *cred, struct afc_err *err)
{
    const char *id = cred->access_key_id;
    if (id == NULL || *id == '\0' || cred->secret_key == NULL || *cred->secret_key == '\0') {
        return afc_err_set(err, AFC_EINVAL, "credentials: access key id or secret key missing");
    }
    if (strlen(id) > AFC_SIGV4_KEY_ID_MAX) {
        return afc_err_set(err, AFC_ETOOBIG, "credentials: access key id over %d characters",
                           AFC_SIGV4_KEY_ID_MAX);
    }
    if (strlen(cred->secret_key) > AFC_SIGV4_SECRET_MAX) {
        return afc_err_set(err, AFC_ETOOBIG, "credentials: secret key over %d characters",
                           AFC_SIGV4_SECRET_MAX);
    }
    for (const char *p = id; *p != '\0'; p++) {
        if (*p <= ' ' || *p > '~' || *p == '/' || *p == ',') {
            return afc_err_set(err, AFC_EINVAL,
                               "credentials: access key id: space, control, / or ,");
        }
    }
    if (cred->session_token != NULL && !is_field_value(cred->session_token)) {
        return afc_err_set(err, AFC_EINVAL, "credentials: session token has a control character");
    }
    return 0;
}

static bool has_token(const struct afc_sigv4_credentials *cred)
{
    return cred->session_token != NULL && *cred->session_token != '\0';
}

/* Is this header one the signer adds itself (so the caller must not pass it)? */
static bool is_signer_header(const char *name, const struct afc_sigv4_credentials *cred,
                             const struct afc_sigv4_params *params)
{
    return name_compare(name, SIGNER_DATE) == 0 || name_compare(name, "authorization") == 0 ||
           (params->sign_body && name_compare(name, SIGNER_HASH) == 0) ||
           (has_token(cred) && name_compare(name, SIGNER_TOKEN) == 0);
}

static int check_request(const struct afc_sigv4_request *req, struct afc_err *err)
{
    if (!is_token(req->method)) {
        return afc_err_set(err, AFC_EINVAL, "method: missing or not an HTTP token");
    }
    if (req->path != NULL && (strchr(req->path, '?') != NULL || strchr(req->path, '#') != NULL)) {
        return afc_err_set(err, AFC_EINVAL, "path \"%.200s\": '?' or '#' (the query goes apart)",
                           req->path);
    }
    if (req->path != NULL && req->path[0] != '\0' && req->path[0] != '/') {
        return afc_err_set(err, AFC_EINVAL, "path \"%.200s\": does not start with '/'", req->path);
    }
    if (req->body == NULL && req->body_len > 0) {
        return afc_err_set(err, AFC_EINVAL, "body: NULL with a length of %zu", req->body_len);
    }
    if (req->n_headers > 0 && req->headers == NULL) {
        return afc_err_set(err, AFC_EINVAL, "headers: NULL with a count of %zu", req->n_headers);
    }
    if (req->n_headers > AFC_SIGV4_MAX_HEADERS) {
        return afc_err_set(err, AFC_ETOOBIG, "headers: %zu, at most %d", req->n_headers,
                           AFC_SIGV4_MAX_HEADERS);
    }
    return 0;
}

/* The caller's headers, checked, plus those the signer adds; sorted. */
static int collect_headers(const struct afc_sigv4_request *req,
                           const struct afc_sigv4_credentials *cred,
                           const struct afc_sigv4_params *params, const char *payload_hash,
                           struct hdr *h, size_t *n, struct afc_err *err)
{
    bool host = false;
    *n = 0;
    for (size_t i = 0; i < req->n_headers; i++) {
        const struct afc_sigv4_header *in = &req->headers[i];
        if (!is_token(in->name)) {
            return afc_err_set(err, AFC_EINVAL, "header %zu: name missing or not an HTTP token", i);
        }
        if (in->value == NULL || !is_field_value(in->value)) {
            return afc_err_set(err, AFC_EINVAL, "header %s: value missing or with a control byte",
                               in->name);
        }
        if (is_signer_header(in->name, cred, params)) {
            return afc_err_set(err, AFC_EINVAL, "header %s: added by the signer, not the caller",
                               in->name);
        }
        host = host || name_compare(in->name, "host") == 0;
        h[(*n)++] = (struct hdr){in->name, in->value};
    }
    if (!host) {
        return afc_err_set(err, AFC_EINVAL, "headers: no Host (SigV4 always signs it)");
    }
    h[(*n)++] = (struct hdr){SIGNER_DATE, params->amz_date};
    if (params->sign_body) {
        h[(*n)++] = (struct hdr){SIGNER_HASH, payload_hash};
    }
    if (has_token(cred) && !params->session_token_unsigned) {
        h[(*n)++] = (struct hdr){SIGNER_TOKEN, cred->session_token};
    }
    sort_headers(h, *n);
    return 0;
}

static int check_inputs(const struct afc_sigv4_request *req,
                        const struct afc_sigv4_credentials *cred,
                        const struct afc_sigv4_params *params, const struct afc_sigv4_result *out,
                        struct afc_err *err)
{
    if (out->canonical_request == NULL || out->authorization == NULL) {
        return afc_err_set(err, AFC_EINVAL, "result: canonical_request or authorization not set");
    }
    int rc = check_request(req, err);
    if (rc == 0) {
        rc = check_credentials(cred, err);
    }
    if (rc == 0) {
        rc = check_scope_name("region", params->region, err);
    }
    if (rc == 0) {
        rc = check_scope_name("service", params->service, err);
    }
    if (rc == 0) {
        rc = check_date(params->amz_date, err);
    }
    return rc;
}

/* ---- hashing ---- */

static void to_hex(const unsigned char *bytes, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex_digits[bytes[i] >> 4];
        out[2 * i + 1] = hex_digits[bytes[i] & 0xf];
    }
    out[2 * n] = '\0';
}

static bool sha256_hex(const void *data, size_t len, char out[AFC_SIGV4_HEX_SIZE])
{
    unsigned char md[SHA256_LEN];
    unsigned int md_len = 0;
    if (EVP_Digest(data != NULL ? data : "", len, md, &md_len, EVP_sha256(), NULL) != 1 ||
        md_len != SHA256_LEN) {
        return false;
    }
    to_hex(md, SHA256_LEN, out);
    return true;
}

static bool hmac(const void *key, size_t key_len, const char *msg, unsigned char out[SHA256_LEN])
{
    unsigned int len = SHA256_LEN;
    return HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, strlen(msg), out,
                &len) != NULL &&
           len == SHA256_LEN;
}

/* AWS's key derivation: kDate, kRegion, kService, kSigning; then the signature. */
static bool compute_signature(const char *secret, const struct afc_sigv4_params *params,
                              const char *string_to_sign, char out[AFC_SIGV4_HEX_SIZE])
{
    char date[9];
    char k_secret[4 + AFC_SIGV4_SECRET_MAX + 1];
    /* Two buffers in turn: HMAC() is not documented to allow its key and output to overlap. */
    unsigned char k_date[SHA256_LEN], k_region[SHA256_LEN], k_service[SHA256_LEN];
    unsigned char k_signing[SHA256_LEN], sig[SHA256_LEN];
    memcpy(date, params->amz_date, 8);
    date[8] = '\0';
    int n = snprintf(k_secret, sizeof k_secret, "AWS4%s", secret);
    bool ok = n > 0 && (size_t)n < sizeof k_secret && hmac(k_secret, (size_t)n, date, k_date) &&
              hmac(k_date, SHA256_LEN, params->region, k_region) &&
              hmac(k_region, SHA256_LEN, params->service, k_service) &&
              hmac(k_service, SHA256_LEN, TERMINATOR, k_signing) &&
              hmac(k_signing, SHA256_LEN, string_to_sign, sig);
    if (ok) {
        to_hex(sig, SHA256_LEN, out);
    }
    OPENSSL_cleanse(k_secret, sizeof k_secret);
    OPENSSL_cleanse(k_date, sizeof k_date);
    OPENSSL_cleanse(k_region, sizeof k_region);
    OPENSSL_cleanse(k_service, sizeof k_service);
    OPENSSL_cleanse(k_signing, sizeof k_signing);
    return ok;
}

/* ---- the signer ---- */

static void clear_result(struct afc_sigv4_result *out)
{
    if (out->canonical_request != NULL && out->canonical_request_size > 0) {
        out->canonical_request[0] = '\0';
    }
    if (out->authorization != NULL && out->authorization_size > 0) {
        out->authorization[0] = '\0';
    }
    out->string_to_sign[0] = '\0';
    out->signature[0] = '\0';
    out->payload_hash[0] = '\0';
}

static int build_canonical_request(const struct afc_sigv4_request *req,
                                   const struct afc_sigv4_params *params, const struct hdr *h,
                                   size_t n_h, const struct param *q, size_t n_q,
                                   struct afc_sigv4_result *out, struct afc_err *err)
{
    struct sink s = {out->canonical_request, out->canonical_request_size, 0};
    put_str(&s, req->method);
    put_char(&s, '\n');
    put_canonical_uri(&s, req->path, params->normalize_path);
    put_char(&s, '\n');
    put_canonical_query(&s, q, n_q);
    put_char(&s, '\n');
    put_canonical_headers(&s, h, n_h);
    put_char(&s, '\n');
    put_signed_headers(&s, h, n_h);
    put_char(&s, '\n');
    put_str(&s, out->payload_hash);
    if (!sink_end(&s)) {
        return afc_err_set(err, AFC_ETOOBIG, "canonical request: needs %zu bytes, buffer has %zu",
                           s.len + 1, s.size);
    }
    return 0;
}

static int build_string_to_sign(const struct afc_sigv4_params *params, struct afc_sigv4_result *out,
                                struct afc_err *err)
{
    char creq_hash[AFC_SIGV4_HEX_SIZE];
    if (!sha256_hex(out->canonical_request, strlen(out->canonical_request), creq_hash)) {
        return afc_err_set(err, AFC_EINTERNAL, "libcrypto: SHA-256 of the canonical request");
    }
    /* Every part is bounded by the checks above, so this always fits; checked all the same. */
    int n = snprintf(out->string_to_sign, sizeof out->string_to_sign,
                     AFC_SIGV4_ALGORITHM "\n%s\n%.8s/%s/%s/" TERMINATOR "\n%s", params->amz_date,
                     params->amz_date, params->region, params->service, creq_hash);
    if (n < 0 || (size_t)n >= sizeof out->string_to_sign) {
        return afc_err_set(err, AFC_EINTERNAL, "string to sign: over %d bytes",
                           AFC_SIGV4_STS_SIZE - 1);
    }
    return 0;
}

static int build_authorization(const struct afc_sigv4_credentials *cred,
                               const struct afc_sigv4_params *params, const struct hdr *h,
                               size_t n_h, struct afc_sigv4_result *out, struct afc_err *err)
{
    struct sink s = {out->authorization, out->authorization_size, 0};
    put_str(&s, AFC_SIGV4_ALGORITHM " Credential=");
    put_str(&s, cred->access_key_id);
    put_char(&s, '/');
    put_mem(&s, params->amz_date, 8);
    put_char(&s, '/');
    put_str(&s, params->region);
    put_char(&s, '/');
    put_str(&s, params->service);
    put_str(&s, "/" TERMINATOR ", SignedHeaders=");
    put_signed_headers(&s, h, n_h);
    put_str(&s, ", Signature=");
    put_str(&s, out->signature);
    if (!sink_end(&s)) {
        return afc_err_set(err, AFC_ETOOBIG, "authorization: needs %zu bytes, buffer has %zu",
                           s.len + 1, s.size);
    }
    return 0;
}

static int sign(const struct afc_sigv4_request *req, const struct afc_sigv4_credentials *cred,
                const struct afc_sigv4_params *params, struct afc_sigv4_result *out,
                struct afc_err *err)
{
    struct hdr h[AFC_SIGV4_MAX_HEADERS + 3];
    struct param q[AFC_SIGV4_MAX_PARAMS];
    size_t n_h = 0, n_q = 0;

    int rc = check_inputs(req, cred, params, out, err);
    if (rc != 0) {
        return rc;
    }
    if (!sha256_hex(req->body, req->body_len, out->payload_hash)) {
        return afc_err_set(err, AFC_EINTERNAL, "libcrypto: SHA-256 of the body");
    }
    rc = collect_headers(req, cred, params, out->payload_hash, h, &n_h, err);
    if (rc == 0) {
        rc = split_query(req->query, q, &n_q, err);
    }
    if (rc == 0) {
        rc = build_canonical_request(req, params, h, n_h, q, n_q, out, err);
    }
    if (rc == 0) {
        rc = build_string_to_sign(params, out, err);
    }
    if (rc == 0 &&
        !compute_signature(cred->secret_key, params, out->string_to_sign, out->signature)) {
        rc = afc_err_set(err, AFC_EINTERNAL, "libcrypto: HMAC-SHA256 of the signing key chain");
    }
    if (rc == 0) {
        rc = build_authorization(cred, params, h, n_h, out, err);
    }
    return rc;
}

int afc_sigv4_sign(const struct afc_sigv4_request *req, const struct afc_sigv4_credentials *cred,
                   const struct afc_sigv4_params *params, struct afc_sigv4_result *out,
                   struct afc_err *err)
{
    if (req == NULL || cred == NULL || params == NULL || out == NULL) {
        return afc_err_set(err, AFC_EINVAL, "sigv4: NULL argument");
    }
    clear_result(out);
    int rc = sign(req, cred, params, out, err);
    if (rc != 0) {
        clear_result(out);
    }
    return rc;
}
