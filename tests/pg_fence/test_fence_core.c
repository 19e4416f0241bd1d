/*
 * The in-database fence's pure decisions (pg_fence/fence_core.c), table-driven: the commit verdict,
 * renew and close transitions, the deadline arithmetic and the epoch setting's parser. No
 * PostgreSQL needed; test_fence.py runs the module itself in a real server.
 *
 * `test_fence_core bench` instead times what the commit check adds to a writing commit besides
 * two shared-memory reads: a CLOCK_MONOTONIC reading and the decision (docs/performance.md).
 */
#include <stdint.h>
#include <time.h>

#include "pg_fence/fence_core.h"
#include "tests/test.h"

#define MS FENCE_NS_PER_MS

static void test_verdicts(void)
{
    static const struct {
        const char *name;
        struct fence_state s;
        int64_t now_ns;
        uint64_t session_epoch;
        enum fence_verdict want;
    } cases[] = {
        {"after start", {0, 0, 0, false}, 5 * MS, 0, FENCE_NEVER_ARMED},
        {"after start, session epoch", {0, 0, 0, false}, 5 * MS, 3, FENCE_NEVER_ARMED},
        {"open", {3, 0, 100 * MS, true}, 99 * MS, 0, FENCE_ALLOW},
        {"open, last ns", {3, 0, 100 * MS, true}, 100 * MS - 1, 0, FENCE_ALLOW},
        {"deadline reached", {3, 0, 100 * MS, true}, 100 * MS, 0, FENCE_EXPIRED},
        {"deadline passed", {3, 0, 100 * MS, true}, 250 * MS, 0, FENCE_EXPIRED},
        {"closed", {3, 3, 0, false}, 1 * MS, 0, FENCE_CLOSED},
        {"closed before any renewal", {4, 4, 0, false}, 1 * MS, 0, FENCE_CLOSED},
        {"session epoch matches", {3, 0, 100 * MS, true}, 1 * MS, 3, FENCE_ALLOW},
        {"session epoch older", {3, 0, 100 * MS, true}, 1 * MS, 2, FENCE_EPOCH_MISMATCH},
        {"session epoch newer", {3, 0, 100 * MS, true}, 1 * MS, 4, FENCE_EPOCH_MISMATCH},
        {"expired wins over mismatch", {3, 0, 100 * MS, true}, 200 * MS, 4, FENCE_EXPIRED},
        {"closed wins over mismatch", {3, 3, 0, false}, 1 * MS, 4, FENCE_CLOSED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum fence_verdict got =
            fence_decide_commit(&cases[i].s, cases[i].now_ns, cases[i].session_epoch);
        if (got != cases[i].want)
            fprintf(stderr, "  case \"%s\": got %s, want %s\n", cases[i].name,
                    fence_verdict_name(got), fence_verdict_name(cases[i].want));
        CHECK_EQ_INT(got, cases[i].want);
    }
    CHECK_EQ_STR(fence_verdict_name(FENCE_EPOCH_MISMATCH), "epoch-mismatch");
    CHECK_EQ_STR(fence_verdict_name((enum fence_verdict)99), "unknown");
}

static void test_open_and_remaining(void)
{
    struct fence_state s = {3, 0, 100 * MS, true};
    CHECK(fence_is_open(&s, 0));
    CHECK_EQ_INT(fence_remaining_ms(&s, 0), 100);
    CHECK_EQ_INT(fence_remaining_ms(&s, 40 * MS + 1), 59); /* rounded down */
    CHECK(!fence_is_open(&s, 100 * MS));
    CHECK_EQ_INT(fence_remaining_ms(&s, 100 * MS), 0);
    CHECK_EQ_INT(fence_expired_ms(&s, 99 * MS), 0);
    CHECK_EQ_INT(fence_expired_ms(&s, 1350 * MS), 1250);
    s.open = false;
    CHECK(!fence_is_open(&s, 0));
    CHECK_EQ_INT(fence_remaining_ms(&s, 0), 0);
}

static void test_renew(void)
{
    static const struct {
        const char *name;
        struct fence_state s;
        uint64_t epoch;
        enum fence_renew_result want;
    } cases[] = {
        {"first renewal", {0, 0, 0, false}, 1, FENCE_RENEWED},
        {"same epoch, open", {5, 0, 10 * MS, true}, 5, FENCE_RENEWED},
        {"same epoch, expired", {5, 0, 10 * MS, true}, 5, FENCE_RENEWED},
        {"newer epoch", {5, 0, 10 * MS, true}, 9, FENCE_RENEWED},
        {"older epoch", {5, 0, 10 * MS, true}, 4, FENCE_RENEW_STALE},
        {"closed epoch", {5, 5, 0, false}, 5, FENCE_RENEW_CLOSED},
        {"older than the closed one", {5, 5, 0, false}, 2, FENCE_RENEW_CLOSED},
        {"newer than the closed one", {5, 5, 0, false}, 6, FENCE_RENEWED},
        {"late close of an older epoch", {7, 5, 0, false}, 7, FENCE_RENEWED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fence_state next;
        enum fence_renew_result got =
            fence_compute_renew(&cases[i].s, cases[i].epoch, 500 * MS, &next);
        if (got != cases[i].want)
            fprintf(stderr, "  case \"%s\": got %d, want %d\n", cases[i].name, got, cases[i].want);
        CHECK_EQ_INT(got, cases[i].want);
        if (got == FENCE_RENEWED) {
            CHECK_EQ_INT(next.epoch, cases[i].epoch);
            CHECK_EQ_INT(next.deadline_ns, 500 * MS);
            CHECK(next.open);
            CHECK_EQ_INT(next.closed_epoch, cases[i].s.closed_epoch);
        } else {
            CHECK(memcmp(&next, &cases[i].s, sizeof next) == 0);
        }
    }
    /* a renewal may shorten the deadline: the coordinator knows its lease best */
    struct fence_state s = {5, 0, 900 * MS, true}, next;
    CHECK_EQ_INT(fence_compute_renew(&s, 5, 300 * MS, &next), FENCE_RENEWED);
    CHECK_EQ_INT(next.deadline_ns, 300 * MS);
}

static void test_close(void)
{
    struct fence_state next;
    struct fence_state open5 = {5, 0, 900 * MS, true};
    fence_compute_close(&open5, 5, &next);
    CHECK(!next.open);
    CHECK_EQ_INT(next.epoch, 5);
    CHECK_EQ_INT(next.closed_epoch, 5);
    CHECK_EQ_INT(fence_decide_commit(&next, 1 * MS, 0), FENCE_CLOSED);

    /* closing with a newer epoch raises the epoch: a deposed node learns the new one */
    fence_compute_close(&open5, 8, &next);
    CHECK_EQ_INT(next.epoch, 8);
    CHECK_EQ_INT(next.closed_epoch, 8);

    /* a late close of an older epoch still closes, and the current epoch can re-open */
    fence_compute_close(&open5, 3, &next);
    CHECK(!next.open);
    CHECK_EQ_INT(next.epoch, 5);
    CHECK_EQ_INT(next.closed_epoch, 3);
    struct fence_state again;
    CHECK_EQ_INT(fence_compute_renew(&next, 5, 1000 * MS, &again), FENCE_RENEWED);

    /* closed_epoch never goes down */
    struct fence_state closed9 = {9, 9, 0, false};
    fence_compute_close(&closed9, 4, &next);
    CHECK_EQ_INT(next.closed_epoch, 9);
    CHECK_EQ_INT(next.epoch, 9);

    /* a close before any renewal after a restart */
    struct fence_state fresh = {0, 0, 0, false};
    fence_compute_close(&fresh, 2, &next);
    CHECK_EQ_INT(fence_decide_commit(&next, 1 * MS, 0), FENCE_CLOSED);
}

static void test_deadline(void)
{
    static const struct {
        const char *name;
        int64_t now_ns;
        int32_t ttl_ms;
        bool has_sent_at;
        int64_t sent_at_ms;
        int64_t want_ns;
    } cases[] = {
        {"ttl from now", 1000 * MS, 300, false, 0, 1300 * MS},
        {"sent earlier: counted from then", 1000 * MS, 300, true, 950, 1250 * MS},
        {"sent long ago: already past", 1000 * MS, 300, true, 100, 400 * MS},
        {"sent at the same ms", 1000 * MS + 5, 300, true, 1000, 1300 * MS},
        {"sent in the future (other clock)", 1000 * MS, 300, true, 5000, 1300 * MS},
        {"sent at a huge time", 1000 * MS, 300, true, INT64_MAX, 1300 * MS},
        {"negative sent_at ignored", 1000 * MS, 300, true, -5, 1300 * MS},
        {"largest ttl", 1000 * MS, INT32_MAX, false, 0, 1000 * MS + (int64_t)INT32_MAX * MS},
        {"no overflow near the end of time", INT64_MAX - 10, 300, false, 0, INT64_MAX},
        {"zero ttl", 1000 * MS, 0, false, 0, 1000 * MS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t got = fence_compute_deadline(cases[i].now_ns, cases[i].ttl_ms, cases[i].has_sent_at,
                                             cases[i].sent_at_ms);
        if (got != cases[i].want_ns)
            fprintf(stderr, "  case \"%s\"\n", cases[i].name);
        CHECK_EQ_INT(got, cases[i].want_ns);
    }
}

static void test_parse_epoch(void)
{
    static const struct {
        const char *text;
        int rc;
        uint64_t want;
    } cases[] = {
        {"0", 0, 0},
        {"7", 0, 7},
        {" 42 ", 0, 42},
        {"9223372036854775807", 0, INT64_MAX},
        {"9223372036854775808", -1, 0},
        {"18446744073709551616", -1, 0},
        {"", -1, 0},
        {" ", -1, 0},
        {"-1", -1, 0},
        {"+1", -1, 0},
        {"1x", -1, 0},
        {"1 2", -1, 0},
        {"0x10", -1, 0},
        {"1e3", -1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t got = 12345;
        int rc = fence_parse_epoch(cases[i].text, &got);
        if (rc != cases[i].rc)
            fprintf(stderr, "  case \"%s\"\n", cases[i].text);
        CHECK_EQ_INT(rc, cases[i].rc);
        if (rc == 0)
            CHECK(got == cases[i].want);
        else
            CHECK(got == 12345); /* untouched on error */
    }
    uint64_t v;
    CHECK_EQ_INT(fence_parse_epoch(NULL, &v), -1);
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int bench(void)
{
    enum { N = 10000000 };
    struct fence_state s = {7, 0, INT64_MAX, true};
    unsigned allowed = 0;
    int64_t start = mono_ns();
    for (int i = 0; i < N; i++)
        allowed += fence_decide_commit(&s, mono_ns(), 0) == FENCE_ALLOW;
    int64_t elapsed = mono_ns() - start;
    printf("commit check (clock_gettime(CLOCK_MONOTONIC) + fence_decide_commit): %.1f ns per "
           "call over %d calls (%u allowed)\n",
           (double)elapsed / N, N, allowed);
    return allowed == N ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "bench") == 0)
        return bench();
    TEST_RUN(test_verdicts);
    TEST_RUN(test_open_and_remaining);
    TEST_RUN(test_renew);
    TEST_RUN(test_close);
    TEST_RUN(test_deadline);
    TEST_RUN(test_parse_epoch);
    TEST_END();
}
