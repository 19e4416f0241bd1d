/*
 * The fault vocabulary (faultspec.c) and the nemesis shapes (nemesis.c): every syntax form,
 * errors naming item and column, canonical round trips, how faults on one direction combine,
 * the shapes' reachability properties and the WAN profile's round trips.
 */
#include <stdlib.h>

#include "chaos.h"
#include "tests/test.h"

static const char *const R3[] = {"us-east-2", "eu-west-1", "ap-south-1"};
static const char *const R5[] = {"a", "b", "c", "d", "e"};

static int parse3(const char *text, struct chaos_faultset *s, char *why)
{
    return chaos_faultset_parse(text, R3, 3, s, why, 512);
}

static bool has(const struct chaos_faultset *s, enum chaos_fault_kind k, unsigned from, unsigned to)
{
    for (unsigned i = 0; i < s->n; i++)
        if (s->f[i].kind == k && s->f[i].from == from && s->f[i].to == to)
            return true;
    return false;
}

static bool same_set(const struct chaos_faultset *a, const struct chaos_faultset *b)
{
    if (a->n != b->n)
        return false;
    for (unsigned i = 0; i < a->n; i++) {
        bool found = false;
        for (unsigned j = 0; j < b->n && !found; j++)
            found = memcmp(&a->f[i], &b->f[j], sizeof a->f[i]) == 0;
        if (!found)
            return false;
    }
    return true;
}

static void test_empty(void)
{
    struct chaos_faultset s;
    char why[512], out[256];
    CHECK_EQ_INT(parse3("", &s, why), 0);
    CHECK_EQ_INT(s.n, 0);
    CHECK_EQ_INT(parse3("  none ", &s, why), 0);
    CHECK_EQ_INT(s.n, 0);
    CHECK_EQ_INT(chaos_faultset_format(&s, R3, 3, out, sizeof out), 0);
    CHECK_EQ_STR(out, "none");
}

static void test_partition_and_cut(void)
{
    struct chaos_faultset s;
    char why[512];
    REQUIRE(parse3("us-east-2 -/- eu-west-1", &s, why) == 0);
    CHECK_EQ_INT(s.n, 2);
    CHECK(has(&s, CHAOS_F_CUT, 0, 1) && has(&s, CHAOS_F_CUT, 1, 0));
    REQUIRE(parse3("us-east-2 -/> eu-west-1", &s, why) == 0);
    CHECK_EQ_INT(s.n, 1);
    CHECK(has(&s, CHAOS_F_CUT, 0, 1));
    CHECK(!chaos_faultset_passes(&s, 0, 1));
    CHECK(chaos_faultset_passes(&s, 1, 0));
    REQUIRE(parse3("us-east-2->eu-west-1 cut", &s, why) == 0); /* no spaces around the arrow */
    CHECK(s.n == 1 && has(&s, CHAOS_F_CUT, 0, 1));
    REQUIRE(parse3("us-east-2 <-> eu-west-1 cut", &s, why) == 0);
    CHECK_EQ_INT(s.n, 2);
    REQUIRE(parse3("isolate ap-south-1", &s, why) == 0);
    CHECK_EQ_INT(s.n, 4);
    CHECK(has(&s, CHAOS_F_CUT, 2, 0) && has(&s, CHAOS_F_CUT, 0, 2) && has(&s, CHAOS_F_CUT, 1, 2));
    CHECK(chaos_faultset_passes(&s, 0, 1) && chaos_faultset_passes(&s, 1, 0));
    REQUIRE(parse3("us-east-2 -/> *", &s, why) == 0);
    CHECK(s.n == 2 && has(&s, CHAOS_F_CUT, 0, 1) && has(&s, CHAOS_F_CUT, 0, 2));
    REQUIRE(parse3("* -/> us-east-2", &s, why) == 0);
    CHECK(s.n == 2 && has(&s, CHAOS_F_CUT, 1, 0) && has(&s, CHAOS_F_CUT, 2, 0));
    REQUIRE(parse3("* -/- *", &s, why) == 0);
    CHECK_EQ_INT(s.n, 6);
    REQUIRE(parse3("us-east-2 -/- eu-west-1, us-east-2 -/- eu-west-1", &s, why) == 0);
    CHECK_EQ_INT(s.n, 2); /* duplicates dropped */
}

static void test_actions(void)
{
    struct chaos_faultset s;
    struct chaos_link_state st;
    char why[512];
    REQUIRE(parse3("us-east-2 -> eu-west-1 delay 200ms\xc2\xb1"
                   "50ms",
                   &s, why) == 0);
    REQUIRE(s.n == 1);
    CHECK(s.f[0].kind == CHAOS_F_DELAY && s.f[0].delay_ms == 200 && s.f[0].jitter_ms == 50);
    REQUIRE(parse3("us-east-2 <-> eu-west-1 delay 0.2s +- 5ms", &s, why) == 0);
    CHECK(s.n == 2 && s.f[0].delay_ms == 200 && s.f[0].jitter_ms == 5);
    REQUIRE(parse3("us-east-2 -> eu-west-1 delay 1s", &s, why) == 0);
    CHECK(s.f[0].delay_ms == 1000 && s.f[0].jitter_ms == 0);
    REQUIRE(parse3("eu-west-1 -> ap-south-1 loss 20%", &s, why) == 0);
    CHECK(s.f[0].kind == CHAOS_F_LOSS && s.f[0].loss_pct == 20.0 && s.f[0].from == 1);
    REQUIRE(parse3("eu-west-1 -> ap-south-1 rate 64kbps", &s, why) == 0);
    CHECK(s.f[0].kind == CHAOS_F_RATE && s.f[0].rate_bps == 64000);
    REQUIRE(parse3("eu-west-1 -> ap-south-1 rate 2mbps", &s, why) == 0);
    CHECK(s.f[0].rate_bps == 2000000);
    REQUIRE(parse3("eu-west-1 -> ap-south-1 rate 800bps", &s, why) == 0);
    CHECK(s.f[0].rate_bps == 800);
    REQUIRE(parse3("eu-west-1 <-> ap-south-1 reset", &s, why) == 0);
    CHECK(s.n == 2 && has(&s, CHAOS_F_RESET, 2, 1));
    chaos_faultset_link(&s, 1, 2, &st);
    CHECK(st.reset && !st.cut);
    CHECK(!chaos_faultset_passes(&s, 2, 1));
    REQUIRE(parse3("eu-west-1 -> ap-south-1 blackhole", &s, why) == 0);
    CHECK(s.n == 1 && has(&s, CHAOS_F_BLACKHOLE, 1, 2));
    CHECK(!chaos_faultset_passes(&s, 1, 2) && chaos_faultset_passes(&s, 2, 1));
}

static void test_combine(void)
{
    struct chaos_faultset s;
    struct chaos_link_state st;
    char why[512];
    REQUIRE(parse3("us-east-2 -> eu-west-1 delay 100ms+-10ms, us-east-2 -> eu-west-1 loss 50%, "
                   "us-east-2 <-> eu-west-1 loss 20%, us-east-2 -> eu-west-1 rate 1mbps, "
                   "us-east-2 -> eu-west-1 rate 64kbps, us-east-2 -> eu-west-1 delay 20ms",
                   &s, why) == 0);
    chaos_faultset_link(&s, 0, 1, &st);
    CHECK_EQ_INT(st.delay_ms, 120);
    CHECK_EQ_INT(st.jitter_ms, 10);
    CHECK(st.loss_pct > 59.9 && st.loss_pct < 60.1); /* independent 50% and 20% losses */
    CHECK_EQ_INT(st.rate_bps, 64000);                /* the tighter limit */
    CHECK(!st.cut && !st.reset && !st.blackhole);
    CHECK(chaos_faultset_passes(&s, 0, 1));
    chaos_faultset_link(&s, 1, 0, &st);
    CHECK(st.delay_ms == 0 && st.loss_pct > 19.9 && st.loss_pct < 20.1 && st.rate_bps == 0);
    chaos_faultset_link(&s, 0, 2, &st);
    CHECK(st.delay_ms == 0 && st.loss_pct == 0);
}

struct bad_case {
    const char *text;
    const char *want;
};

static void test_errors(void)
{
    static const struct bad_case cases[] = {
        {"us-east-2 -/- eu-west-1, us-east-2 -> mars delay 5ms",
         "item 2 (\"us-east-2 -> mars delay 5ms\"), column 14: unknown region \"mars\" (known: "
         "us-east-2, eu-west-1, ap-south-1)"},
        {"venus -/- eu-west-1", "item 1 (\"venus -/- eu-west-1\"), column 1: unknown region"},
        {"us-east-2 eu-west-1", "column 1: expected \"A -/- B\""},
        {"us-east-2 -> eu-west-1", "column 23: expected an action after \"->\""},
        {"us-east-2 -> eu-west-1 jump", "column 24: unknown action \"jump\""},
        {"us-east-2 -> eu-west-1 delay", "column 29: expected a delay"},
        {"us-east-2 -> eu-west-1 delay 5", "column 31: expected a unit ms or s"},
        {"us-east-2 -> eu-west-1 delay 5ms+-x", "column 35: expected a number"},
        {"us-east-2 -> eu-west-1 loss 20", "column 31: expected %"},
        {"us-east-2 -> eu-west-1 loss 120%", "column 29: loss must be above 0%"},
        {"us-east-2 -> eu-west-1 rate 64kb", "column 31: expected a unit bps"},
        {"us-east-2 -/- eu-west-1 delay 5ms", "column 25: unexpected \"delay\""},
        {"us-east-2 -/- us-east-2", "column 15: a region cannot fault its own links"},
        {"us-east-2 -/- eu-west-1,", "item 2 (\"\"), column 1: empty item"},
        {"isolate", "item 1 (\"isolate\"), column 8: expected a region name"},
        {"isolate us-east-2 now", "column 19: unexpected \"now\""},
        {"us-east-2 x -> eu-west-1 reset", "column 11: unexpected \"x\" before \"->\""},
        {"us-east-2 -> eu-west-1 reset now", "column 30: unexpected \"now\""},
        {"dns 500", "column 5: expected \"dns 429\""},
        {"dns 429 retry-after 500ms", "column 21: Retry-After is whole seconds"},
        {"dns 429 retry-after", "column 20: expected a"},
        {"dns 429 soon", "column 9: unexpected \"soon\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct chaos_faultset s;
        char why[512] = "";
        int rc = parse3(cases[i].text, &s, why);
        CHECK_EQ_INT(rc, -1);
        CHECK_CONTAINS(why, cases[i].want);
        CHECK(strchr(why, '\n') == NULL);
    }
}

static void round_trip(const char *const *regions, unsigned n, const char *text)
{
    struct chaos_faultset a, b;
    char why[512], out[CHAOS_TEXT_MAX];
    if (chaos_faultset_parse(text, regions, n, &a, why, sizeof why) != 0) {
        fprintf(stderr, "  parse \"%s\": %s\n", text, why);
        test_failed_checks++;
        return;
    }
    CHECK_EQ_INT(chaos_faultset_format(&a, regions, n, out, sizeof out), 0);
    CHECK_EQ_INT(chaos_faultset_parse(out, regions, n, &b, why, sizeof why), 0);
    if (!same_set(&a, &b)) {
        fprintf(stderr, "  round trip \"%s\" -> \"%s\" differs\n", text, out);
        test_failed_checks++;
    }
}

static void test_round_trip(void)
{
    static const char *const texts[] = {
        "us-east-2 -/- eu-west-1",
        "us-east-2 -/> eu-west-1, ap-south-1 -/> us-east-2",
        "isolate eu-west-1, us-east-2 -> ap-south-1 delay 200ms+-50ms",
        "* <-> * delay 10ms, us-east-2 -> eu-west-1 loss 12.5%, eu-west-1 -> us-east-2 loss 0.1%",
        "us-east-2 <-> eu-west-1 rate 64kbps, ap-south-1 -> eu-west-1 rate 1234bps",
        "us-east-2 -> eu-west-1 rate 3mbps, eu-west-1 <-> ap-south-1 reset",
        "ap-south-1 <-> * blackhole, us-east-2 -> eu-west-1 delay 1ms",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        round_trip(R3, 3, texts[i]);
    struct chaos_faultset s;
    char why[512], out[256];
    REQUIRE(parse3("eu-west-1 -/- us-east-2", &s, why) == 0);
    REQUIRE(chaos_faultset_format(&s, R3, 3, out, sizeof out) == 0);
    CHECK_EQ_STR(out, "eu-west-1 -/- us-east-2");
    REQUIRE(parse3("us-east-2 -> eu-west-1 delay 200ms +- 50ms", &s, why) == 0);
    REQUIRE(chaos_faultset_format(&s, R3, 3, out, sizeof out) == 0);
    CHECK_EQ_STR(out, "us-east-2 -> eu-west-1 delay 200ms\xc2\xb1"
                      "50ms");
    CHECK_EQ_INT(chaos_faultset_format(&s, R3, 3, out, 10), -1); /* does not fit */
}

/* Node i sees j when j's bytes reach i. */
static void views(const struct chaos_faultset *s, unsigned n, bool seen[][CHAOS_MAX_REGIONS])
{
    for (unsigned i = 0; i < n; i++)
        for (unsigned j = 0; j < n; j++)
            seen[i][j] = i == j || chaos_faultset_passes(s, j, i);
}

static void check_majority_ring(const char *const *regions, unsigned n)
{
    char out[CHAOS_TEXT_MAX], why[256];
    struct chaos_faultset s;
    bool seen[CHAOS_MAX_REGIONS][CHAOS_MAX_REGIONS];
    REQUIRE(chaos_shape_faults(CHAOS_SHAPE_MAJORITY_RING, regions, n, 0, 1, out, sizeof out, why,
                               sizeof why) == 0);
    REQUIRE(chaos_faultset_parse(out, regions, n, &s, why, sizeof why) == 0);
    CHECK(s.n > 0);
    views(&s, n, seen);
    for (unsigned i = 0; i < n; i++) {
        unsigned count = 0;
        for (unsigned j = 0; j < n; j++)
            count += seen[i][j];
        CHECK_EQ_INT(count, n / 2 + 1); /* exactly a majority */
        for (unsigned k = i + 1; k < n; k++)
            CHECK(memcmp(seen[i], seen[k], sizeof seen[i]) != 0); /* no two the same */
    }
}

static void test_majority_ring(void)
{
    check_majority_ring(R3, 3);
    check_majority_ring(R5, 5);
    check_majority_ring(R5, 4);
    char out[CHAOS_TEXT_MAX], why[256];
    REQUIRE(chaos_shape_faults(CHAOS_SHAPE_MAJORITY_RING, R5, 5, 0, 1, out, sizeof out, why,
                               sizeof why) == 0);
    CHECK(strstr(out, "-/>") == NULL); /* symmetric for five */
    CHECK_EQ_INT(chaos_shape_faults(CHAOS_SHAPE_MAJORITY_RING, R3, 2, 0, 1, out, sizeof out, why,
                                    sizeof why),
                 -1);
    CHECK_CONTAINS(why, "needs 3");
}

static void shape(enum chaos_shape sh, const char *const *r, unsigned n, unsigned node,
                  uint64_t seed, struct chaos_faultset *s, char *out)
{
    char why[256];
    s->n = 0;
    out[0] = '\0';
    if (chaos_shape_faults(sh, r, n, node, seed, out, CHAOS_TEXT_MAX, why, sizeof why) != 0 ||
        chaos_faultset_parse(out, r, n, s, why, sizeof why) != 0) {
        fprintf(stderr, "  shape %s: %s\n", chaos_shape_name(sh), why);
        test_failed_checks++;
    }
}

static void test_shapes(void)
{
    struct chaos_faultset s;
    char out[CHAOS_TEXT_MAX], why[256];
    shape(CHAOS_SHAPE_BRIDGE, R3, 3, 1, 0, &s, out);
    CHECK(chaos_faultset_passes(&s, 1, 0) && chaos_faultset_passes(&s, 0, 1));
    CHECK(chaos_faultset_passes(&s, 1, 2) && chaos_faultset_passes(&s, 2, 1));
    CHECK(!chaos_faultset_passes(&s, 0, 2) && !chaos_faultset_passes(&s, 2, 0));
    shape(CHAOS_SHAPE_BRIDGE, R5, 5, 0, 0, &s, out); /* halves {1,2} and {3,4} */
    for (unsigned j = 1; j < 5; j++)
        CHECK(chaos_faultset_passes(&s, 0, j) && chaos_faultset_passes(&s, j, 0));
    CHECK(chaos_faultset_passes(&s, 1, 2) && !chaos_faultset_passes(&s, 1, 3));
    shape(CHAOS_SHAPE_ISOLATE, R3, 3, 2, 0, &s, out);
    CHECK(s.n == 4 && !chaos_faultset_passes(&s, 2, 0) && chaos_faultset_passes(&s, 0, 1));
    shape(CHAOS_SHAPE_HALVES, R5, 5, 3, 0, &s, out); /* {3,4} | {0,1,2} */
    CHECK(s.n == 12 && !chaos_faultset_passes(&s, 3, 0) && chaos_faultset_passes(&s, 3, 4));
    shape(CHAOS_SHAPE_ONE_WAY_FROM, R3, 3, 0, 0, &s, out);
    CHECK(s.n == 2 && !chaos_faultset_passes(&s, 0, 1) && chaos_faultset_passes(&s, 1, 0));
    shape(CHAOS_SHAPE_ONE_WAY_TO, R3, 3, 0, 0, &s, out);
    CHECK(s.n == 2 && chaos_faultset_passes(&s, 0, 1) && !chaos_faultset_passes(&s, 1, 0));
    CHECK_EQ_INT(
        chaos_shape_faults(CHAOS_SHAPE_ISOLATE, R3, 3, 3, 0, out, sizeof out, why, sizeof why), -1);
    CHECK_CONTAINS(why, "out of range");
    for (unsigned i = 0; i <= CHAOS_SHAPE_ONE_WAY_TO; i++) {
        enum chaos_shape back;
        CHECK_EQ_INT(chaos_shape_from_name(chaos_shape_name((enum chaos_shape)i), &back), 0);
        CHECK_EQ_INT(back, i);
    }
    enum chaos_shape x;
    CHECK_EQ_INT(chaos_shape_from_name("triangle", &x), -1);
}

static void test_random_halves(void)
{
    char a[CHAOS_TEXT_MAX], b[CHAOS_TEXT_MAX];
    struct chaos_faultset s;
    unsigned distinct = 0;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        shape(CHAOS_SHAPE_RANDOM_HALVES, R5, 5, 0, seed, &s, a);
        CHECK_EQ_INT(s.n, 12); /* 2 x 3 nodes, both ways */
        shape(CHAOS_SHAPE_RANDOM_HALVES, R5, 5, 0, seed, &s, b);
        CHECK_EQ_STR(a, b); /* the same seed, the same shape */
        shape(CHAOS_SHAPE_RANDOM_HALVES, R5, 5, 0, seed + 100, &s, b);
        distinct += strcmp(a, b) != 0;
    }
    CHECK(distinct >= 10); /* 10 possible splits: most seed pairs differ */
    uint64_t st1 = 42, st2 = 42;
    CHECK(chaos_rand_next(&st1) == chaos_rand_next(&st2));
    uint64_t z = 0;
    CHECK(chaos_rand_next(&z) == 0xe220a8397b1dcdafULL); /* splitmix64 reference, seed 0 */
}

static void test_wan_profile(void)
{
    static const char *const R9[] = {"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8"};
    for (unsigned n = 2; n <= 9; n++) {
        char out[CHAOS_TEXT_MAX], why[512];
        struct chaos_faultset s;
        REQUIRE(chaos_wan_profile(R9, n, out, sizeof out) == 0);
        REQUIRE(chaos_faultset_parse(out, R9, n, &s, why, sizeof why) == 0);
        CHECK_EQ_INT(s.n, n * (n - 1));
        for (unsigned i = 0; i < n; i++) {
            for (unsigned j = i + 1; j < n; j++) {
                struct chaos_link_state go, back;
                chaos_faultset_link(&s, i, j, &go);
                chaos_faultset_link(&s, j, i, &back);
                unsigned rtt = go.delay_ms + back.delay_ms;
                CHECK(rtt >= 80 && rtt <= 250);
                CHECK(go.jitter_ms > 0 && go.jitter_ms < go.delay_ms);
            }
        }
        round_trip(R9, n, out);
    }
    char out[CHAOS_TEXT_MAX];
    REQUIRE(chaos_wan_profile(R3, 3, out, sizeof out) == 0);
    CHECK_CONTAINS(out, "us-east-2 <-> eu-west-1 delay 40ms");
    CHECK_EQ_INT(chaos_wan_profile(R3, 3, out, 20), -1);
}

/* `dns 429`: not a link fault; it parses, prints back, and leaves every link alone. */
static void test_dns_429(void)
{
    struct chaos_faultset s, back;
    char why[512], text[CHAOS_TEXT_MAX];
    REQUIRE(parse3("dns 429", &s, why) == 0);
    CHECK_EQ_INT(s.dns_429_retry_s, 1);
    CHECK_EQ_INT(s.n, 0);
    REQUIRE(chaos_faultset_format(&s, R3, 3, text, sizeof text) == 0);
    CHECK_EQ_STR(text, "dns 429 retry-after 1s");
    REQUIRE(parse3("isolate ap-south-1, dns 429 retry-after 3s", &s, why) == 0);
    CHECK_EQ_INT(s.dns_429_retry_s, 3);
    CHECK_EQ_INT(s.n, 4);
    REQUIRE(chaos_faultset_format(&s, R3, 3, text, sizeof text) == 0);
    CHECK_CONTAINS(text, ", dns 429 retry-after 3s");
    REQUIRE(parse3(text, &back, why) == 0);
    CHECK(same_set(&s, &back) && back.dns_429_retry_s == 3);
    CHECK(chaos_faultset_passes(&s, 0, 1)); /* us-east-2 <-> eu-west-1 untouched */
    /* parsing anew forgets an earlier set's throttle */
    REQUIRE(parse3("none", &s, why) == 0);
    CHECK_EQ_INT(s.dns_429_retry_s, 0);
}

int main(void)
{
    TEST_RUN(test_empty);
    TEST_RUN(test_partition_and_cut);
    TEST_RUN(test_actions);
    TEST_RUN(test_combine);
    TEST_RUN(test_errors);
    TEST_RUN(test_round_trip);
    TEST_RUN(test_majority_ring);
    TEST_RUN(test_shapes);
    TEST_RUN(test_random_halves);
    TEST_RUN(test_wan_profile);
    TEST_RUN(test_dns_429);
    TEST_END();
}
