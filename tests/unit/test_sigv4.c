/*
 * The built-in cases of the AWS SigV4 signer (dns/sigv4.c): a Route53 ChangeResourceRecordSets
 * request (with and without a session token), AWS's documented IAM example, path and query
 * canonicalization tables, header trimming, buffers too small, malformed dates, invalid input.
 * Pinned signatures were cross-checked with botocore 1.43's SigV4Auth. AWS's own test suite runs
 * through test_sigv4_vectors.c.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "afc/sigv4.h"
#include "tests/test.h"

#define N(a)        (sizeof(a) / sizeof((a)[0]))
#define KEY_ID      "AKIDEXAMPLE"
#define SECRET      "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define EMPTY_SHA   "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define VECTOR_DATE "20150830T123600Z"

/* ======================================================================================== */
/* Built-in cases                                                                           */
/* ======================================================================================== */

struct out {
    char creq[AFC_SIGV4_CANONICAL_SIZE_HINT];
    char authz[AFC_SIGV4_AUTHORIZATION_SIZE_HINT];
    struct afc_sigv4_result r;
    struct afc_err err;
};

static void out_init(struct out *o)
{
    memset(o, 0, sizeof *o);
    o->r.canonical_request = o->creq;
    o->r.canonical_request_size = sizeof o->creq;
    o->r.authorization = o->authz;
    o->r.authorization_size = sizeof o->authz;
}

static const struct afc_sigv4_credentials example_cred = {KEY_ID, SECRET, NULL};

static struct afc_sigv4_params params_for(const char *service, const char *date)
{
    struct afc_sigv4_params p = {"us-east-1", service, date, true, false, false};
    return p;
}

/* Sign GET <path>?<query> with only a Host header (the vectors' shape); returns the code. */
static int sign_simple(const char *path, const char *query, bool normalize, struct out *o)
{
    static const struct afc_sigv4_header host[] = {{"Host", "example.amazonaws.com"}};
    struct afc_sigv4_request req = {"GET", path, query, host, 1, NULL, 0};
    struct afc_sigv4_params params = params_for("service", VECTOR_DATE);
    params.normalize_path = normalize;
    out_init(o);
    return afc_sigv4_sign(&req, &example_cred, &params, &o->r, &o->err);
}

/* Line `n` (0-based) of the canonical request, into buf. */
static const char *creq_line(const struct out *o, int n, char *buf, size_t size)
{
    const char *p = o->creq;
    for (int i = 0; i < n && p != NULL; i++) {
        p = strchr(p, '\n');
        p = p != NULL ? p + 1 : NULL;
    }
    if (p == NULL) {
        return "(no such line)";
    }
    size_t len = strcspn(p, "\n");
    snprintf(buf, size, "%.*s", (int)len, p);
    return buf;
}

/* ---- Route53 ---- */

/* ChangeResourceRecordSets as the Route53 provider will send it: DELETE the old value and CREATE
 * the new one in one batch (compare-and-set). 696 bytes. */
static const char route53_body[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ChangeResourceRecordSetsRequest xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">"
    "<ChangeBatch><Changes>"
    "<Change><Action>DELETE</Action><ResourceRecordSet><Name>db.example.com.</Name>"
    "<Type>CNAME</Type><TTL>30</TTL><ResourceRecords><ResourceRecord>"
    "<Value>pg.us-east-2.example.com</Value></ResourceRecord></ResourceRecords>"
    "</ResourceRecordSet></Change>"
    "<Change><Action>CREATE</Action><ResourceRecordSet><Name>db.example.com.</Name>"
    "<Type>CNAME</Type><TTL>30</TTL><ResourceRecords><ResourceRecord>"
    "<Value>pg.eu-west-1.example.com</Value></ResourceRecord></ResourceRecords>"
    "</ResourceRecordSet></Change>"
    "</Changes></ChangeBatch></ChangeResourceRecordSetsRequest>";

#define ROUTE53_BODY_SHA "de5b4775b560c03130e584d540519d9b1c458faff57e27a8ca27821d062fc6b7"

static const struct afc_sigv4_header route53_headers[] = {
    {"Host", "route53.amazonaws.com"},
    {"Content-Type", "text/xml"},
};

static int sign_route53(const struct afc_sigv4_credentials *cred, bool token_unsigned,
                        struct out *o)
{
    struct afc_sigv4_request req = {"POST",
                                    "/2013-04-01/hostedzone/Z123/rrset/",
                                    NULL,
                                    route53_headers,
                                    N(route53_headers),
                                    route53_body,
                                    sizeof route53_body - 1};
    struct afc_sigv4_params params = params_for("route53", "20240115T093000Z");
    params.session_token_unsigned = token_unsigned;
    out_init(o);
    return afc_sigv4_sign(&req, cred, &params, &o->r, &o->err);
}

static void test_route53_change_rrsets(void)
{
    struct out o;
    CHECK_EQ_INT(sizeof route53_body - 1, 696);
    REQUIRE(sign_route53(&example_cred, false, &o) == 0);
    CHECK_EQ_STR(o.r.payload_hash, ROUTE53_BODY_SHA);
    CHECK_EQ_STR(o.creq, "POST\n"
                         "/2013-04-01/hostedzone/Z123/rrset/\n"
                         "\n"
                         "content-type:text/xml\n"
                         "host:route53.amazonaws.com\n"
                         "x-amz-date:20240115T093000Z\n"
                         "\n"
                         "content-type;host;x-amz-date\n" ROUTE53_BODY_SHA);
    CHECK_EQ_STR(o.r.string_to_sign,
                 "AWS4-HMAC-SHA256\n20240115T093000Z\n20240115/us-east-1/route53/aws4_request\n"
                 "4a296684f7cf52f3ef32c72938810dff3a2f24a91737b4c0342997be8308f4d8");
    CHECK_EQ_STR(o.r.signature, "16cfdf24bee17e88905c90162680a1bb85c395e04055a2ccc472a0e7120a5143");
    CHECK_EQ_STR(o.authz,
                 "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240115/us-east-1/route53/"
                 "aws4_request, SignedHeaders=content-type;host;x-amz-date, "
                 "Signature=16cfdf24bee17e88905c90162680a1bb85c395e04055a2ccc472a0e7120a5143");
}

static void test_route53_session_token_signed(void)
{
    struct afc_sigv4_credentials cred = {KEY_ID, SECRET, "FQoGZXIvYXdzEXAMPLETOKEN=="};
    struct out o;
    REQUIRE(sign_route53(&cred, false, &o) == 0);
    CHECK_CONTAINS(o.creq, "\nx-amz-security-token:FQoGZXIvYXdzEXAMPLETOKEN==\n\n"
                           "content-type;host;x-amz-date;x-amz-security-token\n");
    CHECK_EQ_STR(o.r.signature, "0863e21cfb8d406eff028ee3cdde485d2c064b1d68fe7d76d221673a71f421eb");
    CHECK_CONTAINS(o.authz, "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, ");
}

/* Token sent after signing (the vectors' omit_session_token): same signature as without one. */
static void test_route53_session_token_unsigned(void)
{
    struct afc_sigv4_credentials cred = {KEY_ID, SECRET, "FQoGZXIvYXdzEXAMPLETOKEN=="};
    struct out o;
    REQUIRE(sign_route53(&cred, true, &o) == 0);
    CHECK(strstr(o.creq, "security-token") == NULL);
    CHECK_EQ_STR(o.r.signature, "16cfdf24bee17e88905c90162680a1bb85c395e04055a2ccc472a0e7120a5143");
}

/* The worked example of AWS's "Signature Version 4 signing process" pages (IAM ListUsers). */
static void test_aws_documented_iam_example(void)
{
    static const struct afc_sigv4_header h[] = {
        {"Host", "iam.amazonaws.com"},
        {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
    };
    struct afc_sigv4_request req = {"GET", "/", "Action=ListUsers&Version=2010-05-08", h, N(h),
                                    NULL,  0};
    struct afc_sigv4_params params = params_for("iam", VECTOR_DATE);
    struct out o;
    out_init(&o);
    REQUIRE(afc_sigv4_sign(&req, &example_cred, &params, &o.r, &o.err) == 0);
    CHECK_CONTAINS(o.r.string_to_sign,
                   "\nf536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59");
    CHECK_EQ_STR(o.r.signature, "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");
    CHECK_EQ_STR(o.r.payload_hash, EMPTY_SHA);
}

/* ---- canonicalization tables ---- */

static void test_path_double_encoding(void)
{
    struct out o;
    char line[256];
    REQUIRE(sign_simple("/example%20space/", NULL, true, &o) == 0);
    CHECK_EQ_STR(creq_line(&o, 1, line, sizeof line), "/example%2520space/");
    CHECK_EQ_STR(o.r.signature, "446b817944c553435b35e813c261ff4e161fff982d1bacdef1c87f6785dd1662");
}

struct path_case {
    const char *path;
    bool normalize;
    const char *want;
};

static const struct path_case path_cases[] = {
    {"/a/b/../c/./d", true, "/a/c/d"},
    {"/../a", true, "/a"},
    {"/..", true, "/"},
    {"/a/b/..", true, "/a/"},
    {"/a/.", true, "/a/"},
    {"/a/../../b/", true, "/b/"},
    {"//a///b", true, "/a/b"},
    {"/a/b/c/../../d/./../e", true, "/a/e"},
    {"", true, "/"},
    {NULL, true, "/"},
    {"/", true, "/"},
    {"/a b/\xc3\xbc", true, "/a%20b/%C3%BC"},
    {"/a:b@c!$&'()*+,;=", true, "/a%3Ab%40c%21%24%26%27%28%29%2A%2B%2C%3B%3D"},
    {"/a/../b//", false, "/a/../b//"},
    {"/a%2Fb", false, "/a%252Fb"},
};

static void test_path_canonicalization(void)
{
    for (size_t i = 0; i < N(path_cases); i++) {
        const struct path_case *c = &path_cases[i];
        struct out o;
        char line[256];
        int rc = sign_simple(c->path, NULL, c->normalize, &o);
        CHECK_EQ_INT(rc, 0);
        const char *got = creq_line(&o, 1, line, sizeof line);
        if (strcmp(got, c->want) != 0) {
            fprintf(stderr, "  path \"%s\" (normalize %d): got \"%s\" want \"%s\"\n",
                    c->path ? c->path : "(null)", c->normalize, got, c->want);
            test_failed_checks++;
        }
    }
}

struct query_case {
    const char *query, *want;
};

static const struct query_case query_cases[] = {
    {"b=2&a=1&a=0&c", "a=0&a=1&b=2&c="},
    {"a-b=1&a=2", "a=2&a-b=1"}, /* by name first, not by "name=value" */
    {"x=a%2fb", "x=a%2Fb"},     /* decoded and re-encoded: upper-case hex */
    {"q=a+b c", "q=a%2Bb%20c"}, /* '+' is a literal plus */
    {"%zz=1&%4=2", "%254=2&%25zz=1"},
    {"&&a=1&", "a=1"},
    {"a=1=2", "a=1%3D2"},
    {"%7E%41=%2D", "~A=-"},
    {"", ""},
    {NULL, ""},
};

static void test_query_canonicalization(void)
{
    for (size_t i = 0; i < N(query_cases); i++) {
        const struct query_case *c = &query_cases[i];
        struct out o;
        char line[256];
        int rc = sign_simple("/", c->query, true, &o);
        CHECK_EQ_INT(rc, 0);
        const char *got = creq_line(&o, 2, line, sizeof line);
        if (strcmp(got, c->want) != 0) {
            fprintf(stderr, "  query \"%s\": got \"%s\" want \"%s\"\n",
                    c->query ? c->query : "(null)", got, c->want);
            test_failed_checks++;
        }
    }
}

/* Is s made only of unreserved bytes, '%XX' (upper-case hex) and, if allowed, '/'? */
static bool is_canonical_encoding(const char *s, bool slash)
{
    for (; *s != '\0'; s++) {
        if (*s == '%') {
            if (strspn(s + 1, "0123456789ABCDEF") < 2) {
                return false;
            }
            s += 2;
        } else if (!(strchr("-._~", *s) != NULL || (*s >= '0' && *s <= '9') ||
                     (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
                     (slash && *s == '/'))) {
            return false;
        }
    }
    return true;
}

/* "n=v&n=v…": every pair has one '=', both sides canonically encoded, pairs sorted by name then
 * value, no empty pair. */
static bool is_canonical_query(const char *q)
{
    const char *prev = NULL;
    size_t prev_name = 0, prev_len = 0;
    for (const char *pair = q; *q != '\0'; pair += prev_len + 1) {
        size_t len = strcspn(pair, "&"), name = strcspn(pair, "=");
        char n[256], v[256];
        if (len == 0 || name >= len || memchr(pair + name + 1, '=', len - name - 1) != NULL) {
            return false;
        }
        snprintf(n, sizeof n, "%.*s", (int)name, pair);
        snprintf(v, sizeof v, "%.*s", (int)(len - name - 1), pair + name + 1);
        if (!is_canonical_encoding(n, false) || !is_canonical_encoding(v, false)) {
            return false;
        }
        if (prev != NULL) {
            char pn[256], pv[256];
            snprintf(pn, sizeof pn, "%.*s", (int)prev_name, prev);
            snprintf(pv, sizeof pv, "%.*s", (int)(prev_len - prev_name - 1), prev + prev_name + 1);
            int c = strcmp(pn, n);
            if (c > 0 || (c == 0 && strcmp(pv, v) > 0)) {
                return false;
            }
        }
        prev = pair;
        prev_name = name;
        prev_len = len;
        if (pair[len] == '\0') {
            return true;
        }
    }
    return true;
}

static uint32_t rng_state = 0x2545f491u;

static uint32_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* Random paths and queries over an alphabet rich in '/', '.', '%', '&', '=' and non-ASCII: the
 * signer never fails on them, and what it writes is canonical: normalized paths keep no empty,
 * "." or ".." segment; everything is encoded; query pairs come out sorted. Fixed seed. */
static void test_random_paths_and_queries(void)
{
    static const char alphabet[] = "//..%%&&==aZ09-_~+ #?\x01\xc3\xbc";
    for (int round = 0; round < 2000; round++) {
        char path[40] = "/", query[40] = "";
        size_t plen = rng_next() % 30, qlen = rng_next() % 30;
        for (size_t i = 1; i < plen; i++) {
            char c = alphabet[rng_next() % (sizeof alphabet - 1)];
            path[i] = c == '?' || c == '#' ? '/' : c;
        }
        path[plen > 0 ? plen : 1] = '\0';
        for (size_t i = 0; i < qlen; i++) {
            query[i] = alphabet[rng_next() % (sizeof alphabet - 1)];
        }
        query[qlen] = '\0';
        bool normalize = rng_next() % 2 == 0;
        struct out o;
        char uri[256], q[512];
        REQUIRE(sign_simple(path, query, normalize, &o) == 0);
        creq_line(&o, 1, uri, sizeof uri);
        creq_line(&o, 2, q, sizeof q);
        bool ok = uri[0] == '/' && is_canonical_encoding(uri, true);
        ok = ok && (!normalize || (strstr(uri, "//") == NULL && strstr(uri, "/./") == NULL &&
                                   strstr(uri, "/../") == NULL && strcmp(uri, "/.") != 0));
        ok = ok && is_canonical_query(q);
        if (!ok) {
            fprintf(stderr, "  round %d: path \"%s\" query \"%s\" -> \"%s\" \"%s\"\n", round, path,
                    query, uri, q);
            test_failed_checks++;
            return;
        }
    }
}

static void test_header_canonicalization(void)
{
    static const struct afc_sigv4_header h[] = {
        {"X-B", "  two  \t words  "},
        {"host", "example.amazonaws.com"},
        {"x-a", ""},
        {"X-b", "second"},
        {"X-C", "\t"},
    };
    struct afc_sigv4_request req = {"PUT", "/", NULL, h, N(h), "x", 1};
    struct afc_sigv4_params params = params_for("service", VECTOR_DATE);
    params.sign_body = true;
    struct out o;
    out_init(&o);
    REQUIRE(afc_sigv4_sign(&req, &example_cred, &params, &o.r, &o.err) == 0);
    CHECK_EQ_STR(o.r.payload_hash,
                 "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881");
    CHECK_CONTAINS(o.creq, "\nhost:example.amazonaws.com\nx-a:\nx-amz-content-sha256:"
                           "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881\n"
                           "x-amz-date:20150830T123600Z\nx-b:two words,second\nx-c:\n\n"
                           "host;x-a;x-amz-content-sha256;x-amz-date;x-b;x-c\n");
}

/* ---- errors ---- */

/* "needs N bytes" from the message, or 0. */
static size_t needed_bytes(const char *msg)
{
    const char *p = strstr(msg, "needs ");
    return p != NULL ? (size_t)strtoul(p + 6, NULL, 10) : 0;
}

static bool result_is_empty(const struct out *o)
{
    return o->creq[0] == '\0' && o->authz[0] == '\0' && o->r.string_to_sign[0] == '\0' &&
           o->r.signature[0] == '\0' && o->r.payload_hash[0] == '\0';
}

static void test_canonical_buffer_too_small(void)
{
    struct afc_sigv4_credentials cred = example_cred;
    struct out o;
    REQUIRE(sign_route53(&cred, false, &o) == 0);
    size_t exact = strlen(o.creq) + 1;

    struct afc_sigv4_request req = {"POST",
                                    "/2013-04-01/hostedzone/Z123/rrset/",
                                    NULL,
                                    route53_headers,
                                    N(route53_headers),
                                    route53_body,
                                    sizeof route53_body - 1};
    struct afc_sigv4_params params = params_for("route53", "20240115T093000Z");
    size_t sizes[] = {0, 1, 64, exact - 1};
    for (size_t i = 0; i < N(sizes); i++) {
        out_init(&o);
        memset(o.creq, 'x', sizeof o.creq - 1); /* nothing may be left behind */
        o.r.canonical_request_size = sizes[i];
        CHECK_EQ_INT(afc_sigv4_sign(&req, &cred, &params, &o.r, &o.err), AFC_ETOOBIG);
        CHECK_EQ_INT(o.err.code, AFC_ETOOBIG);
        CHECK_CONTAINS(o.err.msg, "canonical request: needs");
        CHECK_EQ_INT(needed_bytes(o.err.msg), exact);
        CHECK(sizes[i] == 0 || o.creq[0] == '\0');
        CHECK(o.authz[0] == '\0' && o.r.signature[0] == '\0' && o.r.string_to_sign[0] == '\0');
    }
    out_init(&o);
    o.r.canonical_request_size = exact;
    CHECK_EQ_INT(afc_sigv4_sign(&req, &cred, &params, &o.r, &o.err), 0);
    CHECK_EQ_STR(o.r.signature, "16cfdf24bee17e88905c90162680a1bb85c395e04055a2ccc472a0e7120a5143");
}

static void test_authorization_buffer_too_small(void)
{
    struct out o;
    REQUIRE(sign_simple("/", NULL, true, &o) == 0);
    size_t exact = strlen(o.authz) + 1;
    static const struct afc_sigv4_header host[] = {{"Host", "example.amazonaws.com"}};
    struct afc_sigv4_request req = {"GET", "/", NULL, host, 1, NULL, 0};
    struct afc_sigv4_params params = params_for("service", VECTOR_DATE);

    out_init(&o);
    o.r.authorization_size = exact - 1;
    CHECK_EQ_INT(afc_sigv4_sign(&req, &example_cred, &params, &o.r, &o.err), AFC_ETOOBIG);
    CHECK_CONTAINS(o.err.msg, "authorization: needs");
    CHECK_EQ_INT(needed_bytes(o.err.msg), exact);
    CHECK(result_is_empty(&o));

    out_init(&o);
    o.r.authorization_size = exact;
    CHECK_EQ_INT(afc_sigv4_sign(&req, &example_cred, &params, &o.r, &o.err), 0);
    CHECK_EQ_STR(o.r.signature, /* get-vanilla */
                 "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

static const char *const bad_dates[] = {
    "",
    "20150830T123600",   /* no Z */
    "20150830T123600Z ", /* trailing space */
    "2015-08-30T12:36:00Z",
    "20150830t123600Z",
    "20150830 123600Z",
    "2015083OT123600Z", /* letter O */
    "20151330T123600Z", /* month 13 */
    "20150030T123600Z", /* month 0 */
    "20150832T123600Z", /* day 32 */
    "20150230T123600Z", /* February 30 */
    "20230229T000000Z", /* not a leap year */
    "21000229T000000Z", /* not a leap year either */
    "20150830T243600Z", /* hour 24 */
    "20150830T126000Z", /* minute 60 */
    "20150830T123660Z", /* second 60 */
    "+0150830T123600Z",
};

static void test_malformed_date(void)
{
    for (size_t i = 0; i < N(bad_dates); i++) {
        static const struct afc_sigv4_header host[] = {{"Host", "example.amazonaws.com"}};
        struct afc_sigv4_request req = {"GET", "/", NULL, host, 1, NULL, 0};
        struct afc_sigv4_params params = params_for("service", bad_dates[i]);
        struct out o;
        out_init(&o);
        int rc = afc_sigv4_sign(&req, &example_cred, &params, &o.r, &o.err);
        if (rc != AFC_EMALFORMED) {
            fprintf(stderr, "  date \"%s\": %d, want AFC_EMALFORMED\n", bad_dates[i], rc);
            test_failed_checks++;
        }
        CHECK_CONTAINS(o.err.msg, "amz_date");
        CHECK(result_is_empty(&o));
    }
    /* Leap days that exist; a missing date is a programming error, not a malformed one. */
    struct out o;
    static const struct afc_sigv4_header host[] = {{"Host", "example.amazonaws.com"}};
    struct afc_sigv4_request req = {"GET", "/", NULL, host, 1, NULL, 0};
    const char *good[] = {"20240229T235959Z", "20000229T000000Z"};
    for (size_t i = 0; i < N(good); i++) {
        struct afc_sigv4_params params = params_for("service", good[i]);
        out_init(&o);
        CHECK_EQ_INT(afc_sigv4_sign(&req, &example_cred, &params, &o.r, &o.err), 0);
    }
    struct afc_sigv4_params params = params_for("service", NULL);
    out_init(&o);
    CHECK_EQ_INT(afc_sigv4_sign(&req, &example_cred, &params, &o.r, &o.err), AFC_EINVAL);
}

/* One invalid input per case, applied to an otherwise valid request. */
struct bad_case {
    const char *what;
    int want;
    bool null_method;
    const char *method, *path, *region, *service, *key_id, *secret, *token;
    const struct afc_sigv4_header *headers; /* NULL: a single valid Host */
    size_t n_headers;
    bool sign_body;
};

static const struct afc_sigv4_header h_crlf[] = {{"Host", "a"}, {"X-A", "v\r\nX-Evil: 1"}};
static const struct afc_sigv4_header h_name[] = {{"Host", "a"}, {"X A", "v"}};
static const struct afc_sigv4_header h_empty_name[] = {{"Host", "a"}, {"", "v"}};
static const struct afc_sigv4_header h_null_value[] = {{"Host", "a"}, {"X-A", NULL}};
static const struct afc_sigv4_header h_no_host[] = {{"X-A", "v"}};
static const struct afc_sigv4_header h_date[] = {{"Host", "a"}, {"X-Amz-Date", VECTOR_DATE}};
static const struct afc_sigv4_header h_authz[] = {{"Host", "a"}, {"authorization", "x"}};
static const struct afc_sigv4_header h_hash[] = {{"Host", "a"}, {"X-Amz-Content-SHA256", "x"}};
static const struct afc_sigv4_header h_token[] = {{"Host", "a"}, {"X-Amz-Security-Token", "t"}};

static const struct bad_case bad_cases[] = {
    {"NULL method", AFC_EINVAL, .null_method = true},
    {"method with a space", AFC_EINVAL, .method = "GE T"},
    {"path with a query", AFC_EINVAL, .path = "/a?b=1"},
    {"path with a fragment", AFC_EINVAL, .path = "/a#b"},
    {"relative path", AFC_EINVAL, .path = "a/b"},
    {"region with a slash", AFC_EINVAL, .region = "us/east"},
    {"empty region", AFC_EINVAL, .region = ""},
    {"long service", AFC_ETOOBIG,
     .service = "s123456789012345678901234567890123456789012345678901234567890123"},
    {"empty key id", AFC_EINVAL, .key_id = ""},
    {"key id with a slash", AFC_EINVAL, .key_id = "AKID/X"},
    {"empty secret", AFC_EINVAL, .secret = ""},
    {"token with a newline", AFC_EINVAL, .token = "abc\ndef"},
    {"header value with CRLF", AFC_EINVAL, .headers = h_crlf, .n_headers = N(h_crlf)},
    {"header name with a space", AFC_EINVAL, .headers = h_name, .n_headers = N(h_name)},
    {"empty header name", AFC_EINVAL, .headers = h_empty_name, .n_headers = N(h_empty_name)},
    {"NULL header value", AFC_EINVAL, .headers = h_null_value, .n_headers = N(h_null_value)},
    {"no Host", AFC_EINVAL, .headers = h_no_host, .n_headers = N(h_no_host)},
    {"caller's X-Amz-Date", AFC_EINVAL, .headers = h_date, .n_headers = N(h_date)},
    {"caller's Authorization", AFC_EINVAL, .headers = h_authz, .n_headers = N(h_authz)},
    {"caller's content hash with sign_body", AFC_EINVAL, .headers = h_hash, .n_headers = N(h_hash),
     .sign_body = true},
    {"caller's token header with a token", AFC_EINVAL, .headers = h_token, .n_headers = N(h_token),
     .token = "t"},
};

static void test_invalid_input(void)
{
    static const struct afc_sigv4_header host[] = {{"Host", "example.amazonaws.com"}};
    for (size_t i = 0; i < N(bad_cases); i++) {
        const struct bad_case *c = &bad_cases[i];
        struct afc_sigv4_request req = {c->null_method ? NULL
                                        : c->method    ? c->method
                                                       : "GET",
                                        c->path ? c->path : "/",
                                        NULL,
                                        c->headers ? c->headers : host,
                                        c->headers ? c->n_headers : 1,
                                        NULL,
                                        0};
        struct afc_sigv4_credentials cred = {c->key_id ? c->key_id : KEY_ID,
                                             c->secret ? c->secret : SECRET, c->token};
        struct afc_sigv4_params params =
            params_for(c->service ? c->service : "service", VECTOR_DATE);
        params.region = c->region ? c->region : "us-east-1";
        params.sign_body = c->sign_body;
        struct out o;
        out_init(&o);
        int rc = afc_sigv4_sign(&req, &cred, &params, &o.r, &o.err);
        if (rc != c->want || !result_is_empty(&o) || o.err.msg[0] == '\0') {
            fprintf(stderr, "  %s: %s (%s), want %s\n", c->what, afc_errname(rc), o.err.msg,
                    afc_errname(c->want));
            test_failed_checks++;
        }
    }
}

static void test_limits(void)
{
    struct afc_sigv4_header h[AFC_SIGV4_MAX_HEADERS + 1];
    char query[AFC_SIGV4_MAX_PARAMS * 4 + 8] = "";
    for (size_t i = 0; i < N(h); i++) {
        h[i] = (struct afc_sigv4_header){i == 0 ? "Host" : "X-Many", "v"};
    }
    struct afc_sigv4_request req = {"GET", "/", NULL, h, AFC_SIGV4_MAX_HEADERS, NULL, 0};
    struct afc_sigv4_params params = params_for("service", VECTOR_DATE);
    struct out o;
    out_init(&o);
    CHECK_EQ_INT(afc_sigv4_sign(&req, &example_cred, &params, &o.r, &o.err), 0);
    req.n_headers = AFC_SIGV4_MAX_HEADERS + 1;
    out_init(&o);
    CHECK_EQ_INT(afc_sigv4_sign(&req, &example_cred, &params, &o.r, &o.err), AFC_ETOOBIG);

    req.n_headers = 1;
    for (int i = 0; i < AFC_SIGV4_MAX_PARAMS; i++) {
        strcat(query, i == 0 ? "a=1" : "&a=1");
    }
    req.query = query;
    out_init(&o);
    CHECK_EQ_INT(afc_sigv4_sign(&req, &example_cred, &params, &o.r, &o.err), 0);
    strcat(query, "&b");
    out_init(&o);
    CHECK_EQ_INT(afc_sigv4_sign(&req, &example_cred, &params, &o.r, &o.err), AFC_ETOOBIG);
    CHECK_CONTAINS(o.err.msg, "query");
    CHECK_EQ_INT(afc_sigv4_sign(NULL, &example_cred, &params, &o.r, NULL), AFC_EINVAL);
}

int main(void)
{
    TEST_RUN(test_route53_change_rrsets);
    TEST_RUN(test_route53_session_token_signed);
    TEST_RUN(test_route53_session_token_unsigned);
    TEST_RUN(test_aws_documented_iam_example);
    TEST_RUN(test_path_double_encoding);
    TEST_RUN(test_path_canonicalization);
    TEST_RUN(test_query_canonicalization);
    TEST_RUN(test_random_paths_and_queries);
    TEST_RUN(test_header_canonicalization);
    TEST_RUN(test_canonical_buffer_too_small);
    TEST_RUN(test_authorization_buffer_too_small);
    TEST_RUN(test_malformed_date);
    TEST_RUN(test_invalid_input);
    TEST_RUN(test_limits);
    TEST_END();
}
