/*
 * dns/wire.c: server addresses, TSIG settings, the raw answer checks, the query and the
 * compare-and-set UPDATE as they go on the wire (decoded again with ldns), answers and their TSIG
 * (signed here with ldns as a server would), and the RCODE → outcome table. Malformed input for
 * every decoder.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <time.h>

#include <ldns/ldns.h>

#include "dns/transport.h"
#include "dns/wire.h"
#include "tests/test.h"

#define KEY_NAME "aragora-key."
#define SECRET   "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=" /* 32 bytes */
#define ZONE     "db.example."
#define NAME     "primary.db.example."

static const struct dns_tsig_key key = {KEY_NAME, "hmac-sha256.", SECRET};

/* ---- configuration ---- */

static void test_server_parse(void)
{
    static const struct {
        const char *text;
        int family;
        const char *addr;
        unsigned port;
    } good[] = {
        {"127.0.0.1:5300", AF_INET, "127.0.0.1", 5300},
        {"10.1.2.3", AF_INET, "10.1.2.3", 53},
        {"[::1]:5353", AF_INET6, "::1", 5353},
        {"[2001:db8::1]", AF_INET6, "2001:db8::1", 53},
        {"2001:db8::1", AF_INET6, "2001:db8::1", 53},
        {"127.0.0.1:65535", AF_INET, "127.0.0.1", 65535},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct sockaddr_storage ss;
        char text[64] = "";
        unsigned port = 0;
        CHECK_EQ_INT(dns_server_parse(good[i].text, &ss, NULL), 0);
        CHECK_EQ_INT(ss.ss_family, good[i].family);
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
            port = ntohs(in->sin_port);
        } else {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
            port = ntohs(in6->sin6_port);
        }
        CHECK_EQ_STR(text, good[i].addr);
        CHECK_EQ_INT(port, good[i].port);
    }
    static const char *const bad[] = {"",
                                      "ns1.example:53",
                                      "127.0.0.1:0",
                                      "127.0.0.1:65536",
                                      "127.0.0.1:",
                                      "127.0.0.1:5x",
                                      "127.0.0.1:-53",
                                      "[::1",
                                      "[::1]x",
                                      "[::1]:",
                                      "1.2.3.4.5:53",
                                      ":53",
                                      "[127.0.0.1]:53",
                                      "::1::2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct sockaddr_storage ss;
        struct afc_err err = {0};
        int rc = dns_server_parse(bad[i], &ss, &err);
        CHECK_EQ_INT(rc, AFC_ECONFIG);
        if (rc != AFC_ECONFIG) {
            fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
        }
        CHECK(err.msg[0] != '\0');
    }
}

static void test_tsig_settings(void)
{
    CHECK_EQ_STR(dns_tsig_algorithm(""), "hmac-sha256.");
    CHECK_EQ_STR(dns_tsig_algorithm("hmac-sha256"), "hmac-sha256.");
    CHECK_EQ_STR(dns_tsig_algorithm("HMAC-SHA512."), "hmac-sha512.");
    CHECK_EQ_STR(dns_tsig_algorithm("hmac-sha1"), "hmac-sha1.");
    CHECK(dns_tsig_algorithm("hmac-md5") == NULL);
    CHECK(dns_tsig_algorithm("hmac-sha384") == NULL); /* ldns 1.8.3 cannot (see wire.c) */
    CHECK(dns_tsig_algorithm("hmac-sha2566") == NULL);
    CHECK(dns_tsig_algorithm("sha256") == NULL);
    CHECK(dns_tsig_algorithm(".") == NULL);

    CHECK(dns_tsig_secret_is_valid(SECRET));
    CHECK(dns_tsig_secret_is_valid("YQ=="));
    CHECK(dns_tsig_secret_is_valid("YWI="));
    CHECK(dns_tsig_secret_is_valid("AAAA"));
    static const char *const bad[] = {"",     "abc",  "a===",  "ab=c", "YQ=a",
                                      "$$$$", "YQ= ", "Y Q==", "=AAA"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(!dns_tsig_secret_is_valid(bad[i]));
    }
    char big[800];
    memset(big, 'A', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK(!dns_tsig_secret_is_valid(big));
}

static void test_name_in_zone(void)
{
    CHECK(dns_name_in_zone(NAME, ZONE));
    CHECK(dns_name_in_zone(ZONE, ZONE));
    CHECK(dns_name_in_zone("PRIMARY.DB.Example.", ZONE));
    CHECK(dns_name_in_zone("a.b.db.example.", ZONE));
    CHECK(!dns_name_in_zone("primary.db.example", ZONE));
    CHECK(!dns_name_in_zone(NAME, "db.example"));
    CHECK(!dns_name_in_zone("xdb.example.", ZONE));
    CHECK(!dns_name_in_zone("primary.other.", ZONE));
    CHECK(!dns_name_in_zone("", ZONE));
}

/* ---- queries and the raw checks ---- */

static ldns_pkt *decode(const uint8_t *wire, size_t len)
{
    ldns_pkt *pkt = NULL;
    return ldns_wire2pkt(&pkt, wire, len) == LDNS_STATUS_OK ? pkt : NULL;
}

static void test_query_encode(void)
{
    uint8_t *wire = NULL;
    size_t len = 0;
    REQUIRE(dns_query_encode(NAME, DNS_TYPE_TXT, 0xbeef, &wire, &len, NULL) == 0);
    ldns_pkt *pkt = decode(wire, len);
    REQUIRE(pkt != NULL);
    CHECK_EQ_INT(ldns_pkt_id(pkt), 0xbeef);
    CHECK(!ldns_pkt_rd(pkt));
    CHECK(!ldns_pkt_qr(pkt));
    CHECK_EQ_INT(ldns_pkt_get_opcode(pkt), LDNS_PACKET_QUERY);
    CHECK_EQ_INT(ldns_pkt_qdcount(pkt), 1);
    CHECK_EQ_INT(ldns_pkt_ancount(pkt) + ldns_pkt_nscount(pkt) + ldns_pkt_arcount(pkt), 0);
    CHECK(!ldns_pkt_edns(pkt));
    ldns_rr *q = ldns_rr_list_rr(ldns_pkt_question(pkt), 0);
    char *owner = ldns_rdf2str(ldns_rr_owner(q));
    CHECK_EQ_STR(owner, NAME);
    CHECK_EQ_INT(ldns_rr_get_type(q), LDNS_RR_TYPE_TXT);
    CHECK_EQ_INT(ldns_rr_get_class(q), LDNS_RR_CLASS_IN);
    free(owner);
    ldns_pkt_free(pkt);
    free(wire);

    struct afc_err err = {0};
    CHECK_EQ_INT(dns_query_encode("a..b.", DNS_TYPE_A, 1, &wire, &len, &err), AFC_EINVAL);
    CHECK_CONTAINS(err.msg, "not a domain name");
}

/* A copy of the query turned into an answer header: QR, AA, rcode. */
static uint8_t *as_answer(const uint8_t *q, size_t len, int rcode)
{
    uint8_t *a = malloc(len);
    memcpy(a, q, len);
    a[2] |= 0x84;
    a[3] = (uint8_t)((a[3] & 0xf0) | rcode);
    return a;
}

static void test_wire_answers(void)
{
    uint8_t *q = NULL;
    size_t len = 0;
    REQUIRE(dns_query_encode(NAME, DNS_TYPE_A, 0x1234, &q, &len, NULL) == 0);
    uint8_t *a = as_answer(q, len, 0);
    CHECK(dns_wire_answers(q, len, a, len));
    CHECK(!dns_wire_answers(q, len, q, len));     /* QR not set: a query, not an answer */
    CHECK(!dns_wire_answers(q, len, a, 11));      /* shorter than a header */
    CHECK(!dns_wire_answers(q, len, a, len - 1)); /* question cut */

    a[1] ^= 1; /* another id */
    CHECK(!dns_wire_answers(q, len, a, len));
    a[1] ^= 1;
    a[2] ^= 5 << 3; /* another opcode */
    CHECK(!dns_wire_answers(q, len, a, len));
    a[2] ^= 5 << 3;
    a[13] ^= 0x20; /* "Primary": names compare without case */
    CHECK(dns_wire_answers(q, len, a, len));
    a[13] ^= 0x20;
    a[13] ^= 1; /* another name */
    CHECK(!dns_wire_answers(q, len, a, len));
    a[13] ^= 1;
    a[len - 3] ^= 1; /* another type */
    CHECK(!dns_wire_answers(q, len, a, len));
    a[len - 3] ^= 1;
    a[12] = 0xc0; /* a compression pointer as the question's name */
    CHECK(!dns_wire_answers(q, len, a, len));
    free(a);

    /* Without a question: only an error (FORMERR, or an UPDATE's answer per RFC 2136 §3.8). */
    a = as_answer(q, 12, 0);
    a[5] = 0;
    CHECK(!dns_wire_answers(q, len, a, 12));
    a[3] = (uint8_t)((a[3] & 0xf0) | DNS_RCODE_FORMERR);
    CHECK(dns_wire_answers(q, len, a, 12));
    a[5] = 2; /* two questions */
    CHECK(!dns_wire_answers(q, len, a, 12));
    free(a);

    a = as_answer(q, len, 0);
    CHECK(!dns_wire_is_truncated(a, len));
    a[2] |= 0x02;
    CHECK(dns_wire_is_truncated(a, len));
    CHECK(!dns_wire_is_truncated(a, 5));
    free(a);
    free(q);
}

/* ---- answers ---- */

/* An answer built with ldns, as a server would send it: `rrs` in zone-file syntax. */
static uint8_t *make_answer(const char *qname, ldns_rr_type qtype, int rcode, bool aa,
                            const char *const *rrs, size_t *len)
{
    ldns_pkt *pkt = ldns_pkt_query_new(ldns_dname_new_frm_str(qname), qtype, LDNS_RR_CLASS_IN, 0);
    ldns_pkt_set_qr(pkt, true);
    ldns_pkt_set_aa(pkt, aa);
    ldns_pkt_set_rcode(pkt, (uint8_t)rcode);
    for (size_t i = 0; rrs != NULL && rrs[i] != NULL; i++) {
        ldns_rr *rr = NULL;
        if (ldns_rr_new_frm_str(&rr, rrs[i], 0, NULL, NULL) != LDNS_STATUS_OK) {
            fprintf(stderr, "  bad test RR %s\n", rrs[i]);
            continue;
        }
        ldns_pkt_push_rr(pkt, LDNS_SECTION_ANSWER, rr);
    }
    uint8_t *wire = NULL;
    ldns_pkt2wire(&wire, pkt, len);
    ldns_pkt_free(pkt);
    return wire;
}

static void test_answer_decode(void)
{
    struct dns_rrset r;
    size_t len;
    const char *one_a[] = {NAME " 5 IN A 10.0.0.2", "other.db.example. 5 IN A 10.9.9.9", NULL};
    uint8_t *w = make_answer(NAME, LDNS_RR_TYPE_A, 0, true, one_a, &len);
    CHECK_EQ_INT(dns_answer_decode(w, len, NAME, DNS_TYPE_A, &r, NULL), 0);
    CHECK_EQ_INT(r.rcode, 0);
    CHECK(r.authoritative);
    CHECK_EQ_INT(r.n, 1); /* the other name's record is not counted */
    CHECK_EQ_INT(r.ttl, 5);
    CHECK_EQ_STR(r.first, "10.0.0.2");
    /* malformed: every shorter prefix of the answer */
    for (size_t cut = 0; cut < len; cut++) {
        struct afc_err err = {0};
        int rc = dns_answer_decode(w, cut, NAME, DNS_TYPE_A, &r, &err);
        CHECK_EQ_INT(rc, AFC_EMALFORMED);
        if (rc != AFC_EMALFORMED) {
            fprintf(stderr, "  accepted a prefix of %zu of %zu bytes\n", cut, len);
            break;
        }
    }
    free(w);

    const char *two_aaaa[] = {"Primary.DB.example. 60 IN AAAA 2001:db8::1",
                              NAME " 60 IN AAAA 2001:db8::2", NULL};
    w = make_answer(NAME, LDNS_RR_TYPE_AAAA, 0, false, two_aaaa, &len);
    CHECK_EQ_INT(dns_answer_decode(w, len, NAME, DNS_TYPE_AAAA, &r, NULL), 0);
    CHECK(!r.authoritative);
    CHECK_EQ_INT(r.n, 2);
    CHECK_EQ_STR(r.first, "2001:db8::1");
    free(w);

    const char *txt[] = {NAME " 5 IN TXT \"epoch=3 \" \"region=eu-west-1\"", NULL};
    w = make_answer(NAME, LDNS_RR_TYPE_TXT, 0, true, txt, &len);
    CHECK_EQ_INT(dns_answer_decode(w, len, NAME, DNS_TYPE_TXT, &r, NULL), 0);
    CHECK_EQ_STR(r.first, "epoch=3 region=eu-west-1"); /* strings joined (RFC 7208 §3.3 style) */
    free(w);

    const char *odd[] = {NAME " 5 IN TXT \"a\\010b\\255\"", NULL};
    w = make_answer(NAME, LDNS_RR_TYPE_TXT, 0, true, odd, &len);
    CHECK_EQ_INT(dns_answer_decode(w, len, NAME, DNS_TYPE_TXT, &r, NULL), 0);
    CHECK_EQ_STR(r.first, "a?b?");
    free(w);

    w = make_answer(NAME, LDNS_RR_TYPE_A, DNS_RCODE_NXDOMAIN, true, NULL, &len);
    CHECK_EQ_INT(dns_answer_decode(w, len, NAME, DNS_TYPE_A, &r, NULL), 0);
    CHECK_EQ_INT(r.rcode, DNS_RCODE_NXDOMAIN);
    CHECK_EQ_INT(r.n, 0);
    free(w);

    const uint8_t junk[] = {0x12, 0x34, 0x84, 0x00, 0x00, 0x01, 0x00, 0x01, 0, 0, 0, 0, 0x40};
    CHECK_EQ_INT(dns_answer_decode(junk, sizeof junk, NAME, DNS_TYPE_A, &r, NULL), AFC_EMALFORMED);
}

static struct dns_rrset rrset(unsigned n, const char *first)
{
    struct dns_rrset r = {.rcode = 0, .authoritative = true, .n = n, .ttl = 5};
    snprintf(r.first, sizeof r.first, "%s", first);
    return r;
}

static void test_value_compose(void)
{
    struct afc_dns_value v;
    char note[160], desc[128];
    struct dns_rrset a1 = rrset(1, "10.0.0.2"), a2 = rrset(2, "10.0.0.2"), a0 = rrset(0, "");
    struct dns_rrset stamp = rrset(1, "epoch=3 region=eu-west-1");
    struct dns_rrset not_stamp = rrset(1, "v=spf1 -all"), two_txt = rrset(2, "epoch=3 region=x");

    dns_value_compose(&a1, &stamp, &v, note, sizeof note);
    CHECK(v.exists && v.stamped);
    CHECK_EQ_STR(v.address, "10.0.0.2");
    CHECK_EQ_INT(v.epoch, 3);
    CHECK_EQ_STR(v.region, "eu-west-1");
    CHECK_EQ_INT(v.ttl, 5);
    CHECK_EQ_STR(note, "");
    dns_value_describe(&v, desc, sizeof desc);
    CHECK_EQ_STR(desc, "10.0.0.2 epoch=3 region=eu-west-1");

    dns_value_compose(&a1, &not_stamp, &v, note, sizeof note);
    CHECK(v.exists && !v.stamped);
    CHECK_CONTAINS(note, "not an epoch stamp");
    dns_value_describe(&v, desc, sizeof desc);
    CHECK_EQ_STR(desc, "10.0.0.2 (no stamp)");

    dns_value_compose(&a1, &two_txt, &v, note, sizeof note);
    CHECK(!v.stamped); /* the prerequisite compares the whole RRset: two records never match */
    CHECK_CONTAINS(note, "2 TXT records");

    dns_value_compose(&a2, &stamp, &v, note, sizeof note);
    CHECK(v.exists && v.stamped);
    CHECK_CONTAINS(note, "2 address records");

    dns_value_compose(&a0, &a0, &v, note, sizeof note);
    CHECK(!v.exists && !v.stamped);
    dns_value_describe(&v, desc, sizeof desc);
    CHECK_EQ_STR(desc, "no address (no stamp)");
}

static void test_value_agrees(void)
{
    struct afc_dns_value want = {
        .exists = true, .address = "::1", .stamped = true, .epoch = 4, .region = "r2"};
    struct afc_dns_value found = want;
    snprintf(found.address, sizeof found.address, "0:0::1");
    CHECK(dns_value_agrees(&found, &want));
    found.epoch = 3;
    CHECK(!dns_value_agrees(&found, &want));
    found.epoch = 4;
    snprintf(found.region, sizeof found.region, "r1");
    CHECK(!dns_value_agrees(&found, &want));
    snprintf(found.region, sizeof found.region, "r2");
    found.stamped = false;
    CHECK(!dns_value_agrees(&found, &want));
    found.stamped = true;
    found.exists = false;
    CHECK(!dns_value_agrees(&found, &want));
    found.exists = true;
    snprintf(found.address, sizeof found.address, "::2");
    CHECK(!dns_value_agrees(&found, &want));

    struct afc_dns_value bare = {.exists = true, .address = "10.0.0.1"}; /* no stamp asked */
    struct afc_dns_value f2 = {.exists = true, .address = "10.0.0.1", .stamped = true, .epoch = 9};
    CHECK(dns_value_agrees(&f2, &bare));
    CHECK(dns_address_equal("10.0.0.1", "10.0.0.1"));
    CHECK(!dns_address_equal("10.0.0.1", "::ffff:10.0.0.1"));
    CHECK(!dns_address_equal("x", "x"));
}

/* ---- the UPDATE ---- */

static char *rr_text(const ldns_rr_list *list, size_t i)
{
    char *s = ldns_rr2str(ldns_rr_list_rr(list, i));
    size_t n = s != NULL ? strlen(s) : 0;
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t')) {
        s[--n] = '\0';
    }
    for (char *p = s; p != NULL && *p != '\0'; p++) {
        if (*p == '\t') {
            *p = ' ';
        }
    }
    return s;
}

static void check_section(const ldns_rr_list *list, const char *const *want)
{
    size_t n = 0;
    while (want[n] != NULL) {
        n++;
    }
    CHECK_EQ_INT(ldns_rr_list_rr_count(list), n);
    for (size_t i = 0; i < n && i < ldns_rr_list_rr_count(list); i++) {
        char *got = rr_text(list, i);
        CHECK_EQ_STR(got, want[i]);
        free(got);
    }
}

static ldns_pkt *encode_update(const struct afc_dns_value *expect, const struct afc_dns_value *next,
                               struct dns_request_mac *mac, uint8_t **wire, size_t *len)
{
    struct dns_update u = {ZONE, NAME, expect, next, 5, 0x4242};
    if (dns_update_encode(&u, &key, wire, len, mac, NULL) != 0) {
        return NULL;
    }
    return decode(*wire, *len);
}

static const char *const update_section[] = {NAME " 0 ANY A \\# 0",
                                             NAME " 0 ANY AAAA \\# 0",
                                             NAME " 0 ANY TXT \\# 0",
                                             NAME " 5 IN A 10.0.0.3",
                                             NAME " 5 IN TXT \"epoch=4 region=r3\"",
                                             NULL};

static void test_update_encode_expect_stamped(void)
{
    struct afc_dns_value expect = {
        .exists = true, .address = "10.0.0.2", .stamped = true, .epoch = 3, .region = "r2"};
    struct afc_dns_value next = {
        .exists = true, .address = "10.0.0.3", .stamped = true, .epoch = 4, .region = "r3"};
    struct dns_request_mac mac;
    uint8_t *wire;
    size_t len;
    ldns_pkt *pkt = encode_update(&expect, &next, &mac, &wire, &len);
    REQUIRE(pkt != NULL);
    CHECK_EQ_INT(ldns_pkt_get_opcode(pkt), LDNS_PACKET_UPDATE);
    CHECK_EQ_INT(ldns_pkt_id(pkt), 0x4242);
    CHECK(!ldns_pkt_rd(pkt));
    const char *zone[] = {ZONE " IN SOA", NULL};
    check_section(ldns_pkt_question(pkt), zone);
    const char *pre[] = {NAME " 0 IN A 10.0.0.2", NAME " 0 IN TXT \"epoch=3 region=r2\"", NULL};
    check_section(ldns_pkt_answer(pkt), pre);
    check_section(ldns_pkt_authority(pkt), update_section);

    /* Signed with the key: ldns verifies the request as the server will. */
    ldns_rr *tsig = ldns_pkt_tsig(pkt);
    REQUIRE(tsig != NULL);
    char *owner = ldns_rdf2str(ldns_rr_owner(tsig));
    CHECK_EQ_STR(owner, KEY_NAME);
    free(owner);
    char *alg = ldns_rdf2str(ldns_rr_rdf(tsig, 0));
    CHECK_EQ_STR(alg, "hmac-sha256.");
    free(alg);
    CHECK_EQ_INT(mac.len, 2 + 32);
    CHECK(memcmp(mac.bytes, ldns_rdf_data(ldns_rr_rdf(tsig, 3)), mac.len) == 0);
    CHECK(ldns_pkt_tsig_verify(pkt, wire, len, KEY_NAME, SECRET, NULL));
    CHECK(!ldns_pkt_tsig_verify(pkt, wire, len, KEY_NAME,
                                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", NULL));
    ldns_pkt_free(pkt);
    free(wire);
}

static void test_update_encode_other_expectations(void)
{
    struct afc_dns_value next = {
        .exists = true, .address = "10.0.0.3", .stamped = true, .epoch = 4, .region = "r3"};
    struct dns_request_mac mac;
    uint8_t *wire;
    size_t len;

    struct afc_dns_value nothing = {0};
    ldns_pkt *pkt = encode_update(&nothing, &next, &mac, &wire, &len);
    REQUIRE(pkt != NULL);
    const char *absent[] = {NAME " 0 NONE A \\# 0", NAME " 0 NONE AAAA \\# 0",
                            NAME " 0 NONE TXT \\# 0", NULL};
    check_section(ldns_pkt_answer(pkt), absent);
    check_section(ldns_pkt_authority(pkt), update_section);
    ldns_pkt_free(pkt);
    free(wire);

    struct afc_dns_value unstamped_v6 = {.exists = true, .address = "2001:db8::7"};
    pkt = encode_update(&unstamped_v6, &next, &mac, &wire, &len);
    REQUIRE(pkt != NULL);
    const char *pre[] = {NAME " 0 IN AAAA 2001:db8::7", NAME " 0 NONE TXT \\# 0", NULL};
    check_section(ldns_pkt_answer(pkt), pre);
    ldns_pkt_free(pkt);
    free(wire);

    struct afc_dns_value v6_next = next;
    snprintf(v6_next.address, sizeof v6_next.address, "2001:db8::8");
    pkt = encode_update(&nothing, &v6_next, &mac, &wire, &len);
    REQUIRE(pkt != NULL);
    char *add = rr_text(ldns_pkt_authority(pkt), 3);
    CHECK_EQ_STR(add, NAME " 5 IN AAAA 2001:db8::8");
    free(add);
    ldns_pkt_free(pkt);
    free(wire);
}

static void test_update_encode_invalid(void)
{
    struct afc_dns_value good = {
        .exists = true, .address = "10.0.0.3", .stamped = true, .epoch = 4, .region = "r3"};
    struct afc_dns_value bad_addr = good, bad_expect = good, bad_region = good;
    snprintf(bad_addr.address, sizeof bad_addr.address, "10.0.0.300");
    snprintf(bad_expect.address, sizeof bad_expect.address, "primary.example");
    snprintf(bad_region.region, sizeof bad_region.region, "EU-West"); /* not a-z 0-9 - */
    struct dns_request_mac mac;
    uint8_t *wire = NULL;
    size_t len;
    struct afc_err err = {0};
    struct dns_update u = {ZONE, NAME, &good, &bad_addr, 5, 1};
    CHECK_EQ_INT(dns_update_encode(&u, &key, &wire, &len, &mac, &err), AFC_EINVAL);
    CHECK_CONTAINS(err.msg, "new address");
    u = (struct dns_update){ZONE, NAME, &bad_expect, &good, 5, 1};
    CHECK_EQ_INT(dns_update_encode(&u, &key, &wire, &len, &mac, &err), AFC_EINVAL);
    CHECK_CONTAINS(err.msg, "expected address");
    u = (struct dns_update){ZONE, NAME, &good, &bad_region, 5, 1};
    CHECK_EQ_INT(dns_update_encode(&u, &key, &wire, &len, &mac, &err), AFC_EINVAL);
    CHECK_CONTAINS(err.msg, "new stamp");
    struct afc_dns_value zero_epoch = good;
    zero_epoch.epoch = 0;
    u = (struct dns_update){ZONE, NAME, &zero_epoch, &good, 5, 1};
    CHECK_EQ_INT(dns_update_encode(&u, &key, &wire, &len, &mac, &err), AFC_EINVAL);
    CHECK_CONTAINS(err.msg, "expected stamp");
    CHECK(wire == NULL);
}

/* ---- the UPDATE's answer ---- */

/* The server's answer to `req`: the zone section only, rcode, signed with (name, secret) over the
 * request MAC unless name is NULL. */
static uint8_t *make_reply(ldns_pkt *req, int rcode, const char *name, const char *secret,
                           size_t *len)
{
    ldns_pkt *a = ldns_pkt_clone(req);
    ldns_rr *req_tsig = ldns_pkt_tsig(req);
    ldns_rr_free(ldns_pkt_tsig(a)); /* the clone copied the request TSIG: the answer gets its own */
    ldns_pkt_set_tsig(a, NULL);
    ldns_pkt_set_qr(a, true);
    ldns_pkt_set_aa(a, true);
    ldns_pkt_set_rcode(a, (uint8_t)rcode);
    ldns_rr_list_deep_free(ldns_pkt_answer(a));
    ldns_pkt_set_answer(a, ldns_rr_list_new());
    ldns_pkt_set_ancount(a, 0);
    ldns_rr_list_deep_free(ldns_pkt_authority(a));
    ldns_pkt_set_authority(a, ldns_rr_list_new());
    ldns_pkt_set_nscount(a, 0);
    if (name != NULL) {
        ldns_pkt_tsig_sign(a, name, secret, 300, "hmac-sha256.", ldns_rr_rdf(req_tsig, 3));
    }
    uint8_t *wire = NULL;
    ldns_pkt2wire(&wire, a, len);
    ldns_pkt_free(a);
    return wire;
}

static void test_update_reply(void)
{
    struct afc_dns_value expect = {
        .exists = true, .address = "10.0.0.2", .stamped = true, .epoch = 3, .region = "r2"};
    struct afc_dns_value next = {
        .exists = true, .address = "10.0.0.3", .stamped = true, .epoch = 4, .region = "r3"};
    struct dns_request_mac mac;
    uint8_t *req_wire;
    size_t req_len, len;
    ldns_pkt *req = encode_update(&expect, &next, &mac, &req_wire, &req_len);
    REQUIRE(req != NULL);
    uint64_t now = (uint64_t)time(NULL);
    struct dns_update_reply r;

    uint8_t *w = make_reply(req, DNS_RCODE_NOERROR, KEY_NAME, SECRET, &len);
    CHECK(dns_wire_answers(req_wire, req_len, w, len));
    CHECK_EQ_INT(dns_update_reply_decode(w, len, &key, &mac, now, &r, NULL), 0);
    CHECK(r.signed_ok && r.has_tsig);
    CHECK_EQ_INT(r.rcode, 0);
    CHECK(dns_update_reply_is_credible(&r));
    /* the clock 10 minutes away */
    CHECK_EQ_INT(dns_update_reply_decode(w, len, &key, &mac, now + 600, &r, NULL), 0);
    CHECK(!r.signed_ok && !dns_update_reply_is_credible(&r));
    CHECK_CONTAINS(r.why, "away from our clock");
    /* over another request's MAC */
    struct dns_request_mac other = mac;
    other.bytes[5] ^= 1;
    CHECK_EQ_INT(dns_update_reply_decode(w, len, &key, &other, now, &r, NULL), 0);
    CHECK(!r.signed_ok);
    CHECK_CONTAINS(r.why, "does not verify");
    /* one bit of the answer changed (its rcode: NOERROR → FORMERR would be credible, so use AA) */
    w[2] ^= 0x04;
    CHECK_EQ_INT(dns_update_reply_decode(w, len, &key, &mac, now, &r, NULL), 0);
    CHECK(!r.signed_ok && !dns_update_reply_is_credible(&r));
    w[2] ^= 0x04;
    /* every prefix is malformed */
    for (size_t cut = 0; cut < len; cut++) {
        if (dns_update_reply_decode(w, cut, &key, &mac, now, &r, NULL) == 0 && r.signed_ok) {
            fprintf(stderr, "  a %zu-byte prefix verified\n", cut);
            CHECK(false);
            break;
        }
    }
    free(w);

    w = make_reply(req, DNS_RCODE_NXRRSET, "another-key.", SECRET, &len);
    CHECK_EQ_INT(dns_update_reply_decode(w, len, &key, &mac, now, &r, NULL), 0);
    CHECK(!r.signed_ok && !dns_update_reply_is_credible(&r));
    CHECK_CONTAINS(r.why, "another key");
    free(w);

    w = make_reply(req, DNS_RCODE_NXRRSET, KEY_NAME,
                   "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", &len);
    CHECK_EQ_INT(dns_update_reply_decode(w, len, &key, &mac, now, &r, NULL), 0);
    CHECK(!r.signed_ok && !dns_update_reply_is_credible(&r));
    free(w);

    /* Unsigned: a refusal is believed (the server could not sign it), a success is not. */
    static const struct {
        int rcode;
        bool credible;
    } unsigned_cases[] = {{DNS_RCODE_REFUSED, true},  {DNS_RCODE_NOTAUTH, true},
                          {DNS_RCODE_FORMERR, true},  {DNS_RCODE_NOTZONE, true},
                          {DNS_RCODE_NOERROR, false}, {DNS_RCODE_NXRRSET, false},
                          {DNS_RCODE_YXRRSET, false}, {DNS_RCODE_SERVFAIL, false}};
    for (size_t i = 0; i < sizeof unsigned_cases / sizeof unsigned_cases[0]; i++) {
        w = make_reply(req, unsigned_cases[i].rcode, NULL, NULL, &len);
        CHECK_EQ_INT(dns_update_reply_decode(w, len, &key, &mac, now, &r, NULL), 0);
        CHECK(!r.has_tsig && !r.signed_ok);
        CHECK_EQ_INT(dns_update_reply_is_credible(&r), unsigned_cases[i].credible);
        free(w);
    }
    const uint8_t junk[] = {0x42, 0x42, 0xa8, 0x00, 0x00, 0x01};
    CHECK_EQ_INT(dns_update_reply_decode(junk, sizeof junk, &key, &mac, now, &r, NULL),
                 AFC_EMALFORMED);
    ldns_pkt_free(req);
    free(req_wire);
}

static void test_outcomes(void)
{
    static const struct {
        int rcode, tsig_error;
        enum afc_dns_outcome outcome;
    } table[] = {
        {DNS_RCODE_NOERROR, 0, AFC_DNS_OK},
        {DNS_RCODE_NXRRSET, 0, AFC_DNS_CONFLICT},
        {DNS_RCODE_YXRRSET, 0, AFC_DNS_CONFLICT},
        {DNS_RCODE_NXDOMAIN, 0, AFC_DNS_CONFLICT},
        {DNS_RCODE_YXDOMAIN, 0, AFC_DNS_CONFLICT},
        {DNS_RCODE_SERVFAIL, 0, AFC_DNS_RETRY},
        {DNS_RCODE_NOTAUTH, 0, AFC_DNS_FAILED},
        {DNS_RCODE_REFUSED, 0, AFC_DNS_FAILED},
        {DNS_RCODE_NOTAUTH, DNS_RCODE_BADSIG, AFC_DNS_FAILED},
        {DNS_RCODE_NOTAUTH, DNS_RCODE_BADKEY, AFC_DNS_FAILED},
        {DNS_RCODE_NOTAUTH, DNS_RCODE_BADTIME, AFC_DNS_FAILED},
        {DNS_RCODE_NOERROR, DNS_RCODE_BADTIME, AFC_DNS_FAILED},
        {DNS_RCODE_FORMERR, 0, AFC_DNS_FAILED},
        {DNS_RCODE_NOTIMP, 0, AFC_DNS_FAILED},
        {DNS_RCODE_NOTZONE, 0, AFC_DNS_FAILED},
        {11, 0, AFC_DNS_FAILED},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        CHECK_EQ_INT(dns_update_outcome(table[i].rcode, table[i].tsig_error), table[i].outcome);
    }
    char buf[16];
    CHECK_EQ_STR(dns_rcode_name(8, buf, sizeof buf), "NXRRSET");
    CHECK_EQ_STR(dns_rcode_name(16, buf, sizeof buf), "BADSIG");
    CHECK_EQ_STR(dns_rcode_name(42, buf, sizeof buf), "RCODE42");
    CHECK_EQ_INT(dns_retransmit_first_ms(5000), 1000);
    CHECK_EQ_INT(dns_retransmit_first_ms(1000), 250);
    CHECK_EQ_INT(dns_retransmit_first_ms(100), 50);
    CHECK_EQ_INT(dns_retransmit_first_ms(0), 50);
}

static void test_stamp(void)
{
    char text[64], region[AFC_DNS_REGION_MAX];
    uint64_t epoch;
    CHECK_EQ_INT(afc_dns_stamp_format(7, "eu-west-1", text, sizeof text), 0);
    CHECK_EQ_STR(text, "epoch=7 region=eu-west-1");
    CHECK(afc_dns_stamp_parse(text, &epoch, region, sizeof region));
    CHECK_EQ_INT(epoch, 7);
    CHECK_EQ_STR(region, "eu-west-1");
    static const char *const bad[] = {
        "epoch=0 region=r", "epoch=1", "epoch=1 region=", "epoch=1 region=R", "epoch=x region=r",
        "epoch=1 region=r extra", "region=r epoch=1",
        /* sscanf-style leniency that would misread the epoch */
        "epoch=-1 region=r", "epoch=+5 region=r", "epoch= 5 region=r", "epoch=5  region=r",
        "epoch=5region=r", "epoch=05 region=r", "epoch=18446744073709551616 region=r",
        "epoch=1 region=r ", "epoch=1 region=r_1",
        "epoch=1 region=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(!afc_dns_stamp_parse(bad[i], &epoch, region, sizeof region));
    }
    CHECK_EQ_INT(afc_dns_stamp_format(7, "eu-west-1", text, 10), AFC_ETOOBIG);
    CHECK(afc_dns_stamp_parse("epoch=18446744073709551615 region=a-1", &epoch, region,
                              sizeof region));
    CHECK(epoch == UINT64_MAX);
    CHECK(!afc_dns_stamp_parse("epoch=1 region=eu-west-1", &epoch, region, 9)); /* cap */
    CHECK(afc_dns_stamp_parse("epoch=1 region=eu-west-1", &epoch, region, 10));
}

int main(void)
{
    TEST_RUN(test_server_parse);
    TEST_RUN(test_tsig_settings);
    TEST_RUN(test_name_in_zone);
    TEST_RUN(test_query_encode);
    TEST_RUN(test_wire_answers);
    TEST_RUN(test_answer_decode);
    TEST_RUN(test_value_compose);
    TEST_RUN(test_value_agrees);
    TEST_RUN(test_update_encode_expect_stamped);
    TEST_RUN(test_update_encode_other_expectations);
    TEST_RUN(test_update_encode_invalid);
    TEST_RUN(test_update_reply);
    TEST_RUN(test_outcomes);
    TEST_RUN(test_stamp);
    TEST_END();
}
