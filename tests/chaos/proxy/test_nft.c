/*
 * Namespace mode's packet filter (nft.c): the rule set a fault set compiles to. Each fault kind
 * gives its rule on exactly the ordered pair it names, a profile combines with the faults
 * (chaos_link_combine), the text is one transaction that replaces the table, and a buffer too
 * small is an error rather than a truncated rule set. That nft itself accepts this text is
 * checked by the namespace-mode integration tests (test_netns.py), which apply it for real.
 */
#include <stdlib.h>

#include "chaos.h"
#include "tests/test.h"

static const char *const R3[] = {"us-east-2", "eu-west-1", "ap-south-1"};
static const char *const A3[] = {"10.1.2.1", "10.1.2.2", "10.1.2.3"};

/* The rule set for `text` (over `profile`), into out. */
static int compile(const char *text, const char *profile, char *out, size_t size)
{
    struct chaos_faultset f, p;
    struct chaos_link_state st[9];
    char why[256];
    if (chaos_faultset_parse(text, R3, 3, &f, why, sizeof why) != 0 ||
        chaos_faultset_parse(profile, R3, 3, &p, why, sizeof why) != 0) {
        fprintf(stderr, "  parse: %s\n", why);
        return -1;
    }
    for (unsigned a = 0; a < 3; a++) {
        for (unsigned b = 0; b < 3; b++) {
            struct chaos_link_state x, y;
            chaos_faultset_link(&p, a, b, &x);
            chaos_faultset_link(&f, a, b, &y);
            chaos_link_combine(&x, &y, &st[a * 3 + b]);
        }
    }
    return chaos_nft_ruleset(st, 3, A3, out, size);
}

/* How many lines of text contain needle. */
static unsigned count(const char *text, const char *needle)
{
    unsigned n = 0;
    for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_empty_set_replaces_table(void)
{
    char out[4096];
    REQUIRE(compile("none", "", out, sizeof out) == 0);
    /* create (so the delete cannot fail), delete, recreate: one transaction, no leftovers */
    CHECK(strncmp(out,
                  "table ip aragora_chaos\ndelete table ip aragora_chaos\ntable ip aragora_chaos {",
                  77) == 0);
    CHECK_CONTAINS(out, "type filter hook forward priority -10; policy accept;");
    CHECK_EQ_INT(count(out, "ip saddr"), 0);
}

static void test_partition_and_one_way(void)
{
    char out[4096];
    REQUIRE(compile("us-east-2 -/- eu-west-1, ap-south-1 -/> us-east-2", "", out, sizeof out) == 0);
    CHECK_CONTAINS(out, "ip saddr 10.1.2.1 ip daddr 10.1.2.2 drop\n");
    CHECK_CONTAINS(out, "ip saddr 10.1.2.2 ip daddr 10.1.2.1 drop\n");
    CHECK_CONTAINS(out, "ip saddr 10.1.2.3 ip daddr 10.1.2.1 drop\n");
    CHECK(strstr(out, "ip saddr 10.1.2.1 ip daddr 10.1.2.3") == NULL); /* the other way passes */
    CHECK_EQ_INT(count(out, " drop\n"), 3);
}

static void test_each_action(void)
{
    char out[4096];
    REQUIRE(compile("us-east-2 -> eu-west-1 delay 200ms±50ms, eu-west-1 -> ap-south-1 loss 12.5%, "
                    "ap-south-1 -> us-east-2 rate 800kbps, us-east-2 -> ap-south-1 reset, "
                    "eu-west-1 -> us-east-2 blackhole",
                    "", out, sizeof out) == 0);
    CHECK_CONTAINS(out, "ip saddr 10.1.2.1 ip daddr 10.1.2.2 meta mark set 0xafc01\n");
    CHECK_CONTAINS(out,
                   "ip saddr 10.1.2.2 ip daddr 10.1.2.3 numgen random mod 10000 < 1250 drop\n");
    /* 800 kbit/s = 100000 bytes/s, a burst of a tenth of that */
    CHECK_CONTAINS(out, "ip saddr 10.1.2.3 ip daddr 10.1.2.1 limit rate over 100000 "
                        "bytes/second burst 10000 bytes drop\n");
    /* reset: TCP gets a RST, anything else is dropped, in that order */
    CHECK_CONTAINS(out, "    ip saddr 10.1.2.1 ip daddr 10.1.2.3 meta l4proto tcp reject with tcp "
                        "reset\n    ip saddr 10.1.2.1 ip daddr 10.1.2.3 drop\n");
    CHECK_CONTAINS(out, "ip saddr 10.1.2.2 ip daddr 10.1.2.1 drop\n");
    CHECK_EQ_INT(count(out, "ip saddr"), 6); /* one each, two for the reset */
    CHECK_EQ_INT(CHAOS_NFT_MARK(2, 1), 0xafc21);
    CHECK_EQ_INT(CHAOS_NFT_MARK(2, 1) & CHAOS_NFT_MARK_MASK, CHAOS_NFT_MARK_BASE);
}

static void test_small_rates_and_losses(void)
{
    char out[4096];
    /* a tiny rate keeps a burst of two full packets; 100 % loss is a plain drop */
    REQUIRE(compile("us-east-2 -> eu-west-1 rate 8kbps, eu-west-1 -> us-east-2 loss 100%", "", out,
                    sizeof out) == 0);
    CHECK_CONTAINS(out, "limit rate over 1000 bytes/second burst 3000 bytes drop\n");
    CHECK_CONTAINS(out, "ip saddr 10.1.2.2 ip daddr 10.1.2.1 drop\n");
    CHECK(strstr(out, "mod 10000 < 10000") == NULL);
}

static void test_profile_under_faults(void)
{
    char out[8192];
    /* the WAN profile marks every pair; a cut on one pair replaces its mark by a drop */
    char wan[CHAOS_TEXT_MAX];
    REQUIRE(chaos_wan_profile(R3, 3, wan, sizeof wan) == 0);
    REQUIRE(compile("none", wan, out, sizeof out) == 0);
    CHECK_EQ_INT(count(out, "meta mark set"), 6);
    REQUIRE(compile("us-east-2 -/> eu-west-1", wan, out, sizeof out) == 0);
    CHECK_EQ_INT(count(out, "meta mark set"), 5);
    CHECK_CONTAINS(out, "ip saddr 10.1.2.1 ip daddr 10.1.2.2 drop\n");
    CHECK(strstr(out, "0xafc01") == NULL);
    /* loss over a delay: both rules, the drop first */
    REQUIRE(compile("us-east-2 -> eu-west-1 loss 5%", wan, out, sizeof out) == 0);
    const char *loss = strstr(out, "ip saddr 10.1.2.1 ip daddr 10.1.2.2 numgen");
    const char *mark = strstr(out, "ip saddr 10.1.2.1 ip daddr 10.1.2.2 meta mark set 0xafc01");
    REQUIRE(loss != NULL && mark != NULL);
    CHECK(loss < mark);
}

static void test_too_small_is_an_error(void)
{
    char out[4096];
    REQUIRE(compile("isolate us-east-2", "", out, sizeof out) == 0);
    size_t need = strlen(out) + 1;
    char *small = malloc(need - 1);
    REQUIRE(small != NULL);
    CHECK(compile("isolate us-east-2", "", small, need - 1) == -1);
    CHECK(compile("isolate us-east-2", "", out, need) == 0);
    free(small);
    struct chaos_link_state st[1] = {{0}};
    CHECK(chaos_nft_ruleset(st, 0, A3, out, sizeof out) == -1);
    CHECK(chaos_nft_ruleset(st, CHAOS_MAX_REGIONS + 1, A3, out, sizeof out) == -1);
}

int main(void)
{
    TEST_RUN(test_empty_set_replaces_table);
    TEST_RUN(test_partition_and_one_way);
    TEST_RUN(test_each_action);
    TEST_RUN(test_small_rates_and_losses);
    TEST_RUN(test_profile_under_faults);
    TEST_RUN(test_too_small_is_an_error);
    TEST_END();
}
