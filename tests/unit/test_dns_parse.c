/*
 * Table tests for the pure parts of the HTTP DNS providers (dns/parse.h): names, URLs, the TXT
 * presentation form, what a name holds, the small XML reader, Route53's documents (list, change,
 * errors, the ChangeBatch we send), and the JSON readers of PowerDNS and Cloudflare — good, odd
 * and malformed input for every reader.
 */
#include <stdlib.h>

#include "dns/http_op.h"
#include "dns/parse.h"
#include "tests/test.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- names, addresses, URLs ---- */

static void test_names(void)
{
    char out[16];
    CHECK(dns_name_equal("primary.db.example.", "PRIMARY.db.Example"));
    CHECK(dns_name_equal("a.", "a"));
    CHECK(!dns_name_equal("a.b.", "a.bb."));
    CHECK(!dns_name_equal("a.b.", "xa.b."));
    CHECK(dns_name_no_dot("db.example.", out, sizeof out));
    CHECK_EQ_STR(out, "db.example");
    CHECK(dns_name_no_dot("db.example", out, sizeof out));
    CHECK_EQ_STR(out, "db.example");
    CHECK(!dns_name_no_dot("a-very-long-name.example.", out, sizeof out));
    CHECK(dns_name_under_zone("primary.db.example.", "db.example."));
    CHECK(dns_name_under_zone("db.example.", "DB.example."));
    CHECK(!dns_name_under_zone("primary.xdb.example.", "db.example."));
    CHECK(!dns_name_under_zone("example.", "db.example."));
    CHECK(dns_name_under_zone("anything.", "."));
}

static void test_addresses(void)
{
    static const struct {
        const char *in, *type;
    } cases[] = {
        {"127.0.10.1", "A"}, {"fd00::10", "AAAA"},        {"::ffff:1.2.3.4", "AAAA"},
        {"1.2.3", NULL},     {"1.2.3.4 ", NULL},          {"", NULL},
        {"256.1.1.1", NULL}, {"10.0.0.1,10.0.0.2", NULL}, {"(alias)", NULL},
    };
    for (size_t i = 0; i < N(cases); i++) {
        const char *t = dns_addr_type(cases[i].in);
        if (cases[i].type == NULL) {
            CHECK(t == NULL);
        } else {
            CHECK_EQ_STR(t, cases[i].type);
        }
    }
    CHECK(dns_addr_type(NULL) == NULL);
}

static void test_url_encode_and_excerpt(void)
{
    char out[32];
    CHECK(dns_url_encode("primary.db.example.", out, sizeof out));
    CHECK_EQ_STR(out, "primary.db.example.");
    CHECK(dns_url_encode("a b/c&d=é", out, sizeof out));
    CHECK_EQ_STR(out, "a%20b%2Fc%26d%3D%C3%A9");
    CHECK(!dns_url_encode("0123456789012345678901234567890123", out, sizeof out));
    CHECK(!dns_url_encode("", out, 0));

    char ex[16];
    dns_body_excerpt("  Not\r\n\tFound  ", 15, ex, sizeof ex);
    CHECK_EQ_STR(ex, "Not Found");
    dns_body_excerpt("abcdefghijklmnopqrstuvwxyz", 26, ex, sizeof ex);
    CHECK_EQ_STR(ex, "abcdefghijkl...");
    dns_body_excerpt("\xc3\xa9t\x01\x7f", 5, ex, sizeof ex);
    CHECK_EQ_STR(ex, "??t");
    dns_body_excerpt("ab\0cd", 5, ex, sizeof ex); /* stops at NUL */
    CHECK_EQ_STR(ex, "ab");
}

/* ---- TXT ---- */

static void test_txt(void)
{
    static const struct {
        const char *in, *out; /* out NULL: malformed */
    } cases[] = {
        {"\"epoch=3 region=eu-west-1\"", "epoch=3 region=eu-west-1"},
        {"epoch=3 region=eu-west-1", "epoch=3 region=eu-west-1"}, /* bare (old Cloudflare) */
        {"\"epoch=3 \" \"region=x\"", "epoch=3 region=x"},        /* split strings */
        {"  \"a\\\"b\\\\c\"", "a\"b\\c"},
        {"\"\\065\\066\"", "AB"},
        {"\"\"", ""},
        {"\"unterminated", NULL},
        {"\"a\" trailing", NULL},
        {"\"bad escape \\", NULL},
        {"\"\\999\"", NULL},
    };
    char out[64];
    for (size_t i = 0; i < N(cases); i++) {
        bool ok = dns_txt_unquote(cases[i].in, out, sizeof out);
        if (cases[i].out == NULL) {
            CHECK(!ok);
        } else {
            CHECK(ok);
            CHECK_EQ_STR(out, cases[i].out);
        }
    }
    CHECK(!dns_txt_unquote("\"0123456789\"", out, 8));
    CHECK(dns_txt_quote("epoch=1 region=r", out, sizeof out));
    CHECK_EQ_STR(out, "\"epoch=1 region=r\"");
    CHECK(dns_txt_quote("a\"b\\", out, sizeof out));
    CHECK_EQ_STR(out, "\"a\\\"b\\\\\"");
    CHECK(!dns_txt_quote("0123456789", out, 12));
    CHECK(dns_txt_quote("0123456789", out, 13));
}

/* ---- what a name holds ---- */

static void test_seen(void)
{
    struct afc_dns_value v = {0};
    struct dns_seen s = {0};
    dns_seen_address(&v, &s, "10.0.0.1", 5);
    dns_seen_txt(&s, "epoch=7 region=eu-west-1", 5);
    dns_seen_finish(&v, &s);
    CHECK(v.exists && v.stamped && v.epoch == 7 && v.ttl == 5);
    CHECK_EQ_STR(v.address, "10.0.0.1");
    CHECK_EQ_STR(v.region, "eu-west-1");
    CHECK(!dns_seen_foreign_txt(&s, &v));

    dns_seen_address(&v, &s, "10.0.0.2", 5); /* two addresses: never one expected address */
    CHECK_EQ_STR(v.address, "10.0.0.1,10.0.0.2");
    dns_seen_txt(&s, "v=spf1 -all", 5); /* two TXT records: not stamped, foreign */
    dns_seen_finish(&v, &s);
    CHECK(!v.stamped && v.epoch == 0 && v.region[0] == '\0');
    CHECK(dns_seen_foreign_txt(&s, &v));

    struct afc_dns_value w = {0};
    struct dns_seen t = {0};
    dns_seen_txt(&t, "not a stamp", 60);
    dns_seen_finish(&w, &t);
    CHECK(!w.exists && !w.stamped && dns_seen_foreign_txt(&t, &w));
    memset(&t, 0, sizeof t);
    dns_seen_finish(&w, &t);
    CHECK(!dns_seen_foreign_txt(&t, &w));

    char text[128];
    dns_value_text(&v, text, sizeof text);
    CHECK_EQ_STR(text, "10.0.0.1,10.0.0.2 ttl=5, no stamp");
}

static void test_cloudflare_ttl(void)
{
    static const unsigned in[] = {0, 1, 5, 59, 60, 61, 300, 86400, 86401, 4000000000u};
    static const unsigned out[] = {60, 60, 60, 60, 60, 61, 300, 86400, 86400, 86400};
    for (size_t i = 0; i < N(in); i++) {
        CHECK_EQ_INT(dns_cloudflare_ttl(in[i]), out[i]);
    }
}

/* ---- XML ---- */

static struct dns_xml X(const char *s) {
    return (struct dns_xml){s, strlen(s)};
}

static void
test_xml_child(void)
{
    static const struct {
        const char *doc, *name;
        int rc;
        const char *text; /* the child's text, when rc == 1 and it is a leaf */
    } cases[] = {
        {"<a>x</a>", "a", 1, "x"},
        {"<?xml version=\"1.0\"?>\n<!-- c --><a> x </a>", "a", 1, "x"},
        {"<r53:a xmlns:r53=\"u\">x</r53:a>", "a", 1, "x"},
        {"<a attr=\"1>2\" b='/'>x</a>", "a", 1, "x"},
        {"<b><a>deep</a></b><a>top</a>", "a", 1, "top"}, /* direct children only */
        {"<a/>", "a", 1, ""},
        {"<a />", "a", 1, ""},
        {"<b>1</b><c/>", "a", 0, NULL},
        {"", "a", 0, NULL},
        {"text only", "a", 0, NULL},
        {"<a>x</b>", "a", -1, NULL},
        {"<a>x", "a", -1, NULL},
        {"</a>", "a", -1, NULL},
        {"<a", "a", -1, NULL},
        {"<>x</>", "a", -1, NULL},
        {"<!-- never closed <a>x</a>", "a", -1, NULL},
        {"<!DOCTYPE a [<!ENTITY e \"boom\">]><a>&e;</a>", "a", -1, NULL},
        {"<!DOCTYPE a><a>x</a>", "a", 1, "x"},
        {"<a><![CDATA[</a>]]></a>", "a", 1, "</a>"},
        {"<a>1 &lt; 2 &amp;&amp; &quot;q&quot; &apos;s&apos; &gt;</a>", "a", 1,
         "1 < 2 && \"q\" 's' >"},
        {"<a>&#65;&#x42;&#xe9;&#x20AC;&#x1F600;</a>", "a", 1,
         "AB\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"},
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct dns_xml content, rest;
        char text[64];
        int rc = dns_xml_child(X(cases[i].doc), cases[i].name, &content, &rest);
        if (rc != cases[i].rc) {
            fprintf(stderr, "  case %zu: %s\n", i, cases[i].doc);
        }
        CHECK_EQ_INT(rc, cases[i].rc);
        if (rc == 1 && cases[i].text != NULL) {
            CHECK_EQ_INT(dns_xml_text(content, text, sizeof text), 0);
            CHECK_EQ_STR(text, cases[i].text);
        }
    }
}

static void test_xml_text_and_path(void)
{
    static const char *const bad_text[] = {
        "<b>child</b>", "&bogus;",        "&#0;", "&#x110000;",
        "&#xZZ;",       "& no semicolon", "&;",   "<![CDATA[open",
    };
    char out[16];
    for (size_t i = 0; i < N(bad_text); i++) {
        CHECK_EQ_INT(dns_xml_text(X(bad_text[i]), out, sizeof out), -1);
    }
    CHECK_EQ_INT(dns_xml_text(X("0123456789abcdef"), out, sizeof out), -1); /* too long */
    CHECK_EQ_INT(dns_xml_text(X("  <!-- c -->ok<?pi x?>  "), out, sizeof out), 0);
    CHECK_EQ_STR(out, "ok");

    const char *doc = "<E><Error><Type>Sender</Type><Code>Throttling</Code></Error></E>";
    CHECK_EQ_INT(dns_xml_path_text(X(doc), "E/Error/Code", out, sizeof out), 1);
    CHECK_EQ_STR(out, "Throttling");
    CHECK_EQ_INT(dns_xml_path_text(X(doc), "E/Error/Message", out, sizeof out), 0);
    CHECK_EQ_INT(dns_xml_path_text(X(doc), "E/Error", out, sizeof out), -1); /* not a leaf */
    CHECK_EQ_INT(dns_xml_path_text(X(doc), "E//Code", out, sizeof out), -1);

    CHECK(dns_xml_escape("a<b>&\"c'", out, sizeof out) == false); /* 26 bytes needed */
    char big[64];
    CHECK(dns_xml_escape("a<b>&\"c'", big, sizeof big));
    CHECK_EQ_STR(big, "a&lt;b&gt;&amp;&quot;c&apos;");
}

/* ---- Route53 ---- */

static void test_route53_errors(void)
{
    struct dns_r53_error e;
    const char *resp = "<?xml version=\"1.0\"?>\n<ErrorResponse "
                       "xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error><Type>"
                       "Sender</Type><Code>InvalidChangeBatch</Code><Message>Tried to delete "
                       "resource record set [name='a.', type='A'] but it was not found</Message>"
                       "</Error><RequestId>x</RequestId></ErrorResponse>";
    CHECK(dns_route53_read_error(resp, strlen(resp), &e));
    CHECK_EQ_STR(e.code, "InvalidChangeBatch");
    CHECK_CONTAINS(e.message, "[name='a.', type='A'] but it was not found");

    const char *icb = "<InvalidChangeBatch xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/"
                      "\"><Messages><Message>values do not match</Message></Messages>"
                      "</InvalidChangeBatch>";
    CHECK(dns_route53_read_error(icb, strlen(icb), &e));
    CHECK_EQ_STR(e.code, "InvalidChangeBatch");
    CHECK_EQ_STR(e.message, "values do not match");

    const char *no_msg = "<ErrorResponse><Error><Code>Throttling</Code></Error></ErrorResponse>";
    CHECK(dns_route53_read_error(no_msg, strlen(no_msg), &e));
    CHECK_EQ_STR(e.code, "Throttling");
    CHECK_EQ_STR(e.message, "");

    static const char *const not_errors[] = {"", "<html>502 Bad Gateway</html>",
                                             "<ErrorResponse><Error>", "{\"error\":1}"};
    for (size_t i = 0; i < N(not_errors); i++) {
        CHECK(!dns_route53_read_error(not_errors[i], strlen(not_errors[i]), &e));
    }
    CHECK(!dns_route53_read_error(NULL, 0, &e));
}

static void test_route53_classify(void)
{
    static const struct {
        long status;
        const char *code;
        enum afc_dns_outcome outcome;
        bool waits;
    } cases[] = {
        {400, "InvalidChangeBatch", AFC_DNS_CONFLICT, false},
        {400, "Throttling", AFC_DNS_RETRY, true},
        {400, "PriorRequestNotComplete", AFC_DNS_RETRY, true},
        {403, "SignatureDoesNotMatch", AFC_DNS_FAILED, false},
        {403, "InvalidClientTokenId", AFC_DNS_FAILED, false},
        {403, "ExpiredToken", AFC_DNS_FAILED, false},
        {403, "AccessDenied", AFC_DNS_FAILED, false},
        {404, "NoSuchHostedZone", AFC_DNS_FAILED, false},
        {400, "InvalidInput", AFC_DNS_FAILED, false},
        {400, "SomethingNew", AFC_DNS_FAILED, false},
        {503, "", AFC_DNS_RETRY, false},
        {500, "InternalFailure", AFC_DNS_RETRY, false},
        {429, "", AFC_DNS_RETRY, false},
        {200, "", AFC_DNS_OK, false},
    };
    for (size_t i = 0; i < N(cases); i++) {
        unsigned wait = 12345;
        CHECK_EQ_INT(dns_route53_classify(cases[i].status, cases[i].code, &wait), cases[i].outcome);
        CHECK(cases[i].waits ? wait > 0 : wait == 0);
    }
    unsigned wait;
    CHECK_EQ_INT(dns_route53_classify(400, NULL, &wait), AFC_DNS_FAILED);
}

#define R53_LIST_HEAD                                                                              \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListResourceRecordSetsResponse "                 \
    "xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><ResourceRecordSets>"

static void test_route53_list(void)
{
    const char *doc = R53_LIST_HEAD
        "<ResourceRecordSet><Name>primary.db.example.</Name><Type>A</Type><TTL>5</TTL>"
        "<ResourceRecords><ResourceRecord><Value>127.0.10.1</Value></ResourceRecord>"
        "</ResourceRecords></ResourceRecordSet>"
        "<ResourceRecordSet><Name>Primary.DB.example.</Name><Type>TXT</Type><TTL>7</TTL>"
        "<ResourceRecords><ResourceRecord><Value>&quot;epoch=3 region=eu-west-1&quot;</Value>"
        "</ResourceRecord></ResourceRecords></ResourceRecordSet>"
        "<ResourceRecordSet><Name>zzz.db.example.</Name><Type>A</Type><TTL>300</TTL>"
        "<ResourceRecords><ResourceRecord><Value>192.0.2.1</Value></ResourceRecord>"
        "</ResourceRecords></ResourceRecordSet>"
        "</ResourceRecordSets><IsTruncated>true</IsTruncated><NextRecordName>zzz2.db.example."
        "</NextRecordName><NextRecordType>A</NextRecordType><MaxItems>3</MaxItems>"
        "</ListResourceRecordSetsResponse>";
    struct afc_dns_value v = {0};
    struct dns_seen s = {0};
    struct dns_r53_page page;
    REQUIRE(dns_route53_read_rrsets(doc, strlen(doc), "primary.db.example.", &v, &s, &page) == 0);
    dns_seen_finish(&v, &s);
    CHECK(v.exists && v.ttl == 5 && v.stamped && v.epoch == 3);
    CHECK_EQ_STR(v.address, "127.0.10.1");
    CHECK_EQ_STR(v.region, "eu-west-1");
    CHECK_EQ_INT(s.txt_ttl, 7);
    CHECK(!page.more); /* the next record is another name */

    const char *paged = R53_LIST_HEAD
        "<ResourceRecordSet><Name>primary.db.example.</Name><Type>A</Type><TTL>5</TTL>"
        "<ResourceRecords><ResourceRecord><Value>127.0.10.1</Value></ResourceRecord>"
        "<ResourceRecord><Value>127.0.10.2</Value></ResourceRecord></ResourceRecords>"
        "</ResourceRecordSet></ResourceRecordSets><IsTruncated>true</IsTruncated>"
        "<NextRecordName>primary.db.example.</NextRecordName><NextRecordType>TXT"
        "</NextRecordType><MaxItems>1</MaxItems></ListResourceRecordSetsResponse>";
    memset(&v, 0, sizeof v);
    memset(&s, 0, sizeof s);
    REQUIRE(dns_route53_read_rrsets(paged, strlen(paged), "primary.db.example.", &v, &s, &page) ==
            0);
    CHECK(page.more);
    CHECK_EQ_STR(page.next_type, "TXT");
    CHECK_EQ_STR(v.address, "127.0.10.1,127.0.10.2");

    const char *alias = R53_LIST_HEAD
        "<ResourceRecordSet><Name>primary.db.example.</Name><Type>A</Type><AliasTarget>"
        "<HostedZoneId>Z2</HostedZoneId><DNSName>lb.example.</DNSName><EvaluateTargetHealth>"
        "false</EvaluateTargetHealth></AliasTarget></ResourceRecordSet></ResourceRecordSets>"
        "<IsTruncated>false</IsTruncated><MaxItems>10</MaxItems>"
        "</ListResourceRecordSetsResponse>";
    memset(&v, 0, sizeof v);
    memset(&s, 0, sizeof s);
    REQUIRE(dns_route53_read_rrsets(alias, strlen(alias), "primary.db.example.", &v, &s, &page) ==
            0);
    CHECK(v.exists);
    CHECK_EQ_STR(v.address, "(alias)");

    static const char *const malformed[] = {
        "",
        "<ListResourceRecordSetsResponse></ListResourceRecordSetsResponse>",
        R53_LIST_HEAD "<ResourceRecordSet><Name>primary.db.example.</Name><Type>A</Type><TTL>"
                      "five</TTL><ResourceRecords/></ResourceRecordSet></ResourceRecordSets>"
                      "</ListResourceRecordSetsResponse>",
        R53_LIST_HEAD "<ResourceRecordSet><Type>A</Type></ResourceRecordSet></ResourceRecordSets>"
                      "</ListResourceRecordSetsResponse>",
        R53_LIST_HEAD "<ResourceRecordSet><Name>primary.db.example.</Name><Type>A</Type><TTL>5"
                      "</TTL></ResourceRecordSet></ResourceRecordSets>"
                      "</ListResourceRecordSetsResponse>",
        R53_LIST_HEAD "<ResourceRecordSet><Name>primary.db.example.</Name><Type>A</Type>",
        R53_LIST_HEAD "<ResourceRecordSet><Name>primary.db.example.</Name><Type>A</Type><TTL>5"
                      "</TTL><ResourceRecords><ResourceRecord></ResourceRecord></ResourceRecords>"
                      "</ResourceRecordSet></ResourceRecordSets></ListResourceRecordSetsResponse>",
    };
    for (size_t i = 0; i < N(malformed); i++) {
        memset(&v, 0, sizeof v);
        memset(&s, 0, sizeof s);
        CHECK_EQ_INT(dns_route53_read_rrsets(malformed[i], strlen(malformed[i]),
                                             "primary.db.example.", &v, &s, &page),
                     -1);
    }
}

static void test_route53_change(void)
{
    char id[32], status[16];
    const char *ok = "<ChangeResourceRecordSetsResponse xmlns=\"x\"><ChangeInfo><Id>/change/"
                     "C2682N5HXP0BZ4</Id><Status>PENDING</Status><SubmittedAt>2017-03-10T01:36:"
                     "41.958Z</SubmittedAt></ChangeInfo></ChangeResourceRecordSetsResponse>";
    CHECK_EQ_INT(dns_route53_read_change(ok, strlen(ok), id, sizeof id, status, sizeof status), 0);
    CHECK_EQ_STR(id, "C2682N5HXP0BZ4");
    CHECK_EQ_STR(status, "PENDING");
    const char *get = "<GetChangeResponse><ChangeInfo><Id>C1</Id><Status>INSYNC</Status>"
                      "</ChangeInfo></GetChangeResponse>";
    CHECK_EQ_INT(dns_route53_read_change(get, strlen(get), id, sizeof id, status, sizeof status),
                 0);
    CHECK_EQ_STR(id, "C1");
    CHECK_EQ_STR(status, "INSYNC");
    static const char *const bad[] = {
        "<GetChangeResponse><ChangeInfo><Id>/change/</Id><Status>INSYNC</Status></ChangeInfo>"
        "</GetChangeResponse>",
        "<GetChangeResponse><ChangeInfo><Id>/change/../x</Id><Status>INSYNC</Status>"
        "</ChangeInfo></GetChangeResponse>",
        "<GetChangeResponse><ChangeInfo><Id>C1?x</Id><Status>INSYNC</Status></ChangeInfo>"
        "</GetChangeResponse>",
        "<GetChangeResponse><ChangeInfo><Id>C1</Id></ChangeInfo></GetChangeResponse>",
        "<Other><ChangeInfo><Id>C1</Id><Status>INSYNC</Status></ChangeInfo></Other>",
        "<GetChangeResponse><ChangeInfo><Id>C0123456789012345678901234567890123</Id><Status>"
        "INSYNC</Status></ChangeInfo></GetChangeResponse>",
    };
    for (size_t i = 0; i < N(bad); i++) {
        CHECK_EQ_INT(
            dns_route53_read_change(bad[i], strlen(bad[i]), id, sizeof id, status, sizeof status),
            -1);
    }
}

#define BATCH_HEAD                                                                                 \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ChangeResourceRecordSetsRequest "                \
    "xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><ChangeBatch><Comment>c &amp; d"      \
    "</Comment><Changes>"
#define CHANGE(action, type, ttl, value)                                                           \
    "<Change><Action>" action "</Action><ResourceRecordSet><Name>p.db.example.</Name><Type>" type  \
    "</Type><TTL>" ttl "</TTL><ResourceRecords><ResourceRecord><Value>" value                      \
    "</Value></ResourceRecord></ResourceRecords></ResourceRecordSet></Change>"
#define BATCH_TAIL "</Changes></ChangeBatch></ChangeResourceRecordSetsRequest>\n"

static void test_route53_batch(void)
{
    char out[4096];
    struct afc_dns_value none = {0};
    CHECK_EQ_INT(dns_route53_change_batch("p.db.example.", &none, NULL, 0, "10.0.0.2",
                                          "epoch=2 region=b", 5, "c & d", out, sizeof out),
                 0);
    CHECK_EQ_STR(out, BATCH_HEAD CHANGE("CREATE", "A", "5", "10.0.0.2")
                          CHANGE("CREATE", "TXT", "5", "&quot;epoch=2 region=b&quot;") BATCH_TAIL);

    struct afc_dns_value old = {.exists = true, .address = "10.0.0.1", .ttl = 60};
    CHECK_EQ_INT(dns_route53_change_batch("p.db.example.", &old, "epoch=1 region=a", 30, "fd00::2",
                                          "epoch=2 region=b", 5, "c & d", out, sizeof out),
                 0);
    CHECK_EQ_STR(out, BATCH_HEAD CHANGE("DELETE", "A", "60", "10.0.0.1")
                          CHANGE("DELETE", "TXT", "30", "&quot;epoch=1 region=a&quot;")
                              CHANGE("CREATE", "AAAA", "5", "fd00::2")
                                  CHANGE("CREATE", "TXT", "5", "&quot;epoch=2 region=b&quot;")
                                      BATCH_TAIL);

    CHECK_EQ_INT(
        dns_route53_change_batch("p.", &none, NULL, 0, "not-an-ip", "e", 5, "", out, sizeof out),
        AFC_EINVAL);
    struct afc_dns_value bad_old = {.exists = true, .address = "1.2.3.4,5.6.7.8"};
    CHECK_EQ_INT(
        dns_route53_change_batch("p.", &bad_old, NULL, 0, "1.1.1.1", "e", 5, "", out, sizeof out),
        AFC_EINVAL);
    CHECK_EQ_INT(dns_route53_change_batch("p.", &none, "epoch=1 region=a", 5, "1.1.1.1", "e", 5, "",
                                          out, sizeof out),
                 AFC_EINVAL);
    CHECK_EQ_INT(dns_route53_change_batch("p.", &none, NULL, 0, "1.1.1.1", "e", 5, "", out, 100),
                 AFC_ETOOBIG);
}

/* ---- PowerDNS ---- */

static void test_powerdns_zone(void)
{
    const char *zone =
        "{\"name\":\"db.example.\",\"rrsets\":["
        "{\"name\":\"db.example.\",\"type\":\"SOA\",\"ttl\":3600,\"records\":[{\"content\":\"x\","
        "\"disabled\":false}]},"
        "{\"name\":\"PRIMARY.db.example.\",\"type\":\"A\",\"ttl\":5,\"records\":["
        "{\"content\":\"127.0.10.9\",\"disabled\":true},"
        "{\"content\":\"127.0.10.1\",\"disabled\":false}],\"comments\":[]},"
        "{\"name\":\"primary.db.example.\",\"type\":\"TXT\",\"ttl\":5,\"records\":["
        "{\"content\":\"\\\"epoch=4 region=us-east-2\\\"\",\"disabled\":false}]},"
        "{\"name\":\"other.db.example.\",\"type\":\"TXT\",\"ttl\":5,\"records\":["
        "{\"content\":\"\\\"epoch=9 region=x\\\"\",\"disabled\":false}]}]}";
    struct afc_dns_value v = {0};
    struct dns_seen s = {0};
    char msg[128];
    REQUIRE(dns_powerdns_read_zone(zone, strlen(zone), "primary.db.example.", &v, &s, msg,
                                   sizeof msg) == 0);
    dns_seen_finish(&v, &s);
    CHECK(v.exists && v.ttl == 5 && v.stamped && v.epoch == 4);
    CHECK_EQ_STR(v.address, "127.0.10.1");
    CHECK_EQ_STR(v.region, "us-east-2");
    CHECK_EQ_INT(s.n_addr, 1);

    static const char *const malformed[] = {
        "",
        "not json",
        "{\"rrsets\":{}}",
        "{\"rrsets\":[{\"name\":\"primary.db.example.\",\"type\":\"A\",\"records\":[]}]}",
        "{\"rrsets\":[{\"name\":\"primary.db.example.\",\"type\":\"A\",\"ttl\":-1,\"records\":[]}"
        "]}",
        "{\"rrsets\":[{\"name\":\"primary.db.example.\",\"type\":\"A\",\"ttl\":5,\"records\":"
        "[{\"content\":5}]}]}",
        "{\"rrsets\":[{\"type\":\"A\"}]}",
    };
    for (size_t i = 0; i < N(malformed); i++) {
        memset(&v, 0, sizeof v);
        memset(&s, 0, sizeof s);
        msg[0] = '\0';
        CHECK_EQ_INT(dns_powerdns_read_zone(malformed[i], strlen(malformed[i]),
                                            "primary.db.example.", &v, &s, msg, sizeof msg),
                     -1);
        CHECK(msg[0] != '\0');
    }
    /* Another name's malformed RRset does not matter... but a nameless one does (above). */
    const char *other = "{\"rrsets\":[{\"name\":\"x.db.example.\",\"type\":\"A\"}]}";
    memset(&v, 0, sizeof v);
    CHECK_EQ_INT(dns_powerdns_read_zone(other, strlen(other), "primary.db.example.", &v, &s, msg,
                                        sizeof msg),
                 0);
    CHECK(!v.exists);

    const char *e422 = "{\"error\": \"Key 'ttl' not an Integer or not present\"}";
    dns_powerdns_read_error(e422, strlen(e422), msg, sizeof msg);
    CHECK_EQ_STR(msg, "Key 'ttl' not an Integer or not present");
    dns_powerdns_read_error("Unauthorized", 12, msg, sizeof msg);
    CHECK_EQ_STR(msg, "Unauthorized");
}

/* ---- Cloudflare ---- */

static void test_cloudflare_envelope(void)
{
    struct dns_cf_envelope env;
    const char *ok = "{\"success\":true,\"errors\":[],\"messages\":[],\"result\":[]}";
    dns_cloudflare_read_envelope(ok, strlen(ok), &env);
    CHECK(env.json && env.success && !env.auth_error && env.first_code == 0);
    const char *expired = "{\"success\":false,\"errors\":[{\"code\":9109,\"message\":\"Invalid "
                          "access token\"}],\"messages\":[],\"result\":null}";
    dns_cloudflare_read_envelope(expired, strlen(expired), &env);
    CHECK(env.json && !env.success && env.auth_error && env.first_code == 9109);
    CHECK_EQ_STR(env.message, "9109: Invalid access token");
    const char *two = "{\"success\":false,\"errors\":[{\"code\":1004,\"message\":\"DNS Validation "
                      "Error\"},{\"code\":10000,\"message\":\"Authentication error\"}]}";
    dns_cloudflare_read_envelope(two, strlen(two), &env);
    CHECK(env.auth_error && env.first_code == 1004);
    CHECK_EQ_STR(env.message, "1004: DNS Validation Error; 10000: Authentication error");
    dns_cloudflare_read_envelope("<html>", 6, &env);
    CHECK(!env.json && !env.success);
    CHECK_EQ_STR(env.message, "<html>");
    dns_cloudflare_read_envelope("[1]", 3, &env);
    CHECK(!env.json);
}

static void test_cloudflare_records(void)
{
    const char *list =
        "{\"success\":true,\"errors\":[],\"result\":["
        "{\"id\":\"372e67954025e0ba6aaa6d586b9e0b59\",\"type\":\"A\",\"name\":\"primary.db."
        "example\","
        "\"content\":\"198.51.100.4\",\"proxied\":false,\"ttl\":60},"
        "{\"id\":\"472e67954025e0ba6aaa6d586b9e0b59\",\"type\":\"TXT\",\"name\":"
        "\"primary.db.example\",\"content\":\"epoch=2 region=eu-west-1\",\"ttl\":60},"
        "{\"id\":\"572e67954025e0ba6aaa6d586b9e0b59\",\"type\":\"MX\",\"name\":"
        "\"primary.db.example\",\"content\":\"mx.example\",\"ttl\":60}]}";
    struct afc_dns_value v = {0};
    struct dns_seen s = {0};
    char msg[128];
    REQUIRE(dns_cloudflare_read_records(list, strlen(list), "primary.db.example", &v, &s, msg,
                                        sizeof msg) == 0);
    dns_seen_finish(&v, &s);
    CHECK(v.exists && v.stamped && v.epoch == 2 && v.ttl == 60);
    CHECK_EQ_STR(v.address, "198.51.100.4");
    CHECK_EQ_STR(v.provider_ref[0], "372e67954025e0ba6aaa6d586b9e0b59");
    CHECK_EQ_STR(v.provider_ref[1], "472e67954025e0ba6aaa6d586b9e0b59");

    static const char *const malformed[] = {
        "{\"result\":null}",
        "{\"result\":[{\"id\":\"1\",\"type\":\"A\",\"name\":\"p\",\"content\":\"1.1.1.1\"}]}",
        "{\"result\":[{\"id\":\"../x\",\"type\":\"A\",\"name\":\"p\",\"content\":\"1.1.1.1\","
        "\"ttl\":60}]}",
        "{\"result\":[{\"id\":\"1\",\"type\":\"A\",\"content\":\"1.1.1.1\",\"ttl\":60}]}",
        "nope",
    };
    for (size_t i = 0; i < N(malformed); i++) {
        memset(&v, 0, sizeof v);
        memset(&s, 0, sizeof s);
        CHECK_EQ_INT(dns_cloudflare_read_records(malformed[i], strlen(malformed[i]), "p", &v, &s,
                                                 msg, sizeof msg),
                     -1);
    }
}

int main(void)
{
    TEST_RUN(test_names);
    TEST_RUN(test_addresses);
    TEST_RUN(test_url_encode_and_excerpt);
    TEST_RUN(test_txt);
    TEST_RUN(test_seen);
    TEST_RUN(test_cloudflare_ttl);
    TEST_RUN(test_xml_child);
    TEST_RUN(test_xml_text_and_path);
    TEST_RUN(test_route53_errors);
    TEST_RUN(test_route53_classify);
    TEST_RUN(test_route53_list);
    TEST_RUN(test_route53_change);
    TEST_RUN(test_route53_batch);
    TEST_RUN(test_powerdns_zone);
    TEST_RUN(test_cloudflare_envelope);
    TEST_RUN(test_cloudflare_records);
    TEST_END();
}
