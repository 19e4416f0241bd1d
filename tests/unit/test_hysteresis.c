/*
 * Table tests for the pure half of the PostgreSQL prober (coordinator/pg_hysteresis.c): rise/fall
 * counting, what counts as a significant change, LSN and row parsing (including malformed input),
 * and upstream address matching.
 */
#include "afc/pg_probe.h"
#include "tests/test.h"

/* ---- rise/fall ---- */

/* A script of probe outcomes ('+' success, '-' failure) and, per step, the expected health after
 * it ('?' unknown, 'H' healthy, 'U' unhealthy) and whether a report is expected ('r' or '.'). */
struct rise_fall_case {
    unsigned rise, fall;
    const char *probes;
    const char *health;
    const char *reports;
};

static const struct rise_fall_case rise_fall_cases[] = {
    {2, 3, "++", "?H", ".r"},
    {2, 3, "---", "??U", "..r"},
    {2, 3, "++--+---", "?HHHHHHU", ".r.....r"},
    {2, 3, "++-+-+--", "?HHHHHHH", ".r......"}, /* flapping below fall never reports */
    {2, 3, "---+-++", "??UUUUH", "..r...r"},
    {1, 1, "+-+", "HUH", "rrr"},
    {0, 0, "-+", "UH", "rr"}, /* zero means 1 */
    {3, 2, "++-+++--", "?????HHU", ".....r.r"},
};

static void sample_ok(struct afc_pg_sample *s)
{
    memset(s, 0, sizeof(*s));
    s->reason = AFC_PG_OK;
    s->role = AFC_PG_PRIMARY;
    s->timeline = 1;
    s->lsn = s->replay_lsn = 0x3000000;
}

static char health_char(const struct afc_pg_obs *o)
{
    return !o->valid ? '?' : o->healthy ? 'H' : 'U';
}

static void run_rise_fall(const struct rise_fall_case *c)
{
    struct afc_pg_hyst_config cfg;
    struct afc_pg_hyst h;
    struct afc_pg_sample s;

    afc_pg_hyst_config_default(&cfg);
    cfg.rise = c->rise;
    cfg.fall = c->fall;
    afc_pg_hyst_init(&h);
    for (size_t i = 0; c->probes[i] != '\0'; i++) {
        sample_ok(&s);
        if (c->probes[i] == '-')
            s.reason = AFC_PG_L4_REFUSED;
        unsigned chg = afc_pg_hyst_update(&h, &cfg, &s, 1000 * i);
        char want = c->health[i];
        if (health_char(&h.obs) != want || (chg != 0) != (c->reports[i] == 'r')) {
            fprintf(stderr, "  rise=%u fall=%u %s step %zu: health %c want %c, chg %#x\n", c->rise,
                    c->fall, c->probes, i, health_char(&h.obs), want, chg);
            test_failed_checks++;
        }
    }
}

static void test_rise_fall(void)
{
    for (size_t i = 0; i < sizeof(rise_fall_cases) / sizeof(rise_fall_cases[0]); i++)
        run_rise_fall(&rise_fall_cases[i]);
}

/* ---- significant change ---- */

enum field { F_NONE, F_ROLE, F_TIMELINE, F_UPSTREAM, F_LAG, F_LSN, F_LSN_BACK };

struct change_case {
    const char *what;
    enum field field;
    uint64_t value;
    uint64_t dt_ms; /* since the last report */
    unsigned want;
};

static const struct change_case change_cases[] = {
    {"same", F_NONE, 0, 100000, 0},
    {"role", F_ROLE, AFC_PG_REPLICA, 10, AFC_PG_CHG_ROLE},
    {"timeline", F_TIMELINE, 2, 10, AFC_PG_CHG_TIMELINE},
    {"upstream", F_UPSTREAM, 0, 10, AFC_PG_CHG_UPSTREAM},
    {"lag within bucket", F_LAG, 900, 10, 0},
    {"lag crosses 1 s", F_LAG, 1000, 10, AFC_PG_CHG_LAG},
    {"lag crosses 60 s", F_LAG, 70000, 10, AFC_PG_CHG_LAG},
    {"lsn advanced, fresh", F_LSN, 0x10, 4999, 0},
    {"lsn advanced, stale", F_LSN, 0x10, 5000, AFC_PG_CHG_LSN},
    {"lsn backwards, fresh", F_LSN_BACK, 0x10, 1, AFC_PG_CHG_LSN},
};

static void apply_field(struct afc_pg_sample *s, const struct change_case *c)
{
    switch (c->field) {
    case F_ROLE:
        s->role = (enum afc_pg_role)c->value;
        break;
    case F_TIMELINE:
        s->timeline = (uint32_t)c->value;
        break;
    case F_UPSTREAM:
        strcpy(s->upstream, "eu-west-1");
        break;
    case F_LAG:
        s->lag_ms = (uint32_t)c->value;
        break;
    case F_LSN:
        s->lsn += c->value;
        break;
    case F_LSN_BACK:
        s->lsn -= c->value;
        break;
    case F_NONE:
        break;
    }
}

static void test_significant_change(void)
{
    struct afc_pg_hyst_config cfg;
    afc_pg_hyst_config_default(&cfg);
    for (size_t i = 0; i < sizeof(change_cases) / sizeof(change_cases[0]); i++) {
        const struct change_case *c = &change_cases[i];
        struct afc_pg_hyst h;
        struct afc_pg_sample s;
        afc_pg_hyst_init(&h);
        sample_ok(&s);
        afc_pg_hyst_update(&h, &cfg, &s, 0);
        CHECK_EQ_INT(afc_pg_hyst_update(&h, &cfg, &s, 100), AFC_PG_CHG_FIRST);
        apply_field(&s, c);
        unsigned chg = afc_pg_hyst_update(&h, &cfg, &s, 100 + c->dt_ms);
        if (chg != c->want) {
            fprintf(stderr, "  change %s: got %#x want %#x\n", c->what, chg, c->want);
            test_failed_checks++;
        }
    }
}

/* A failure while healthy does not lose facts; an unhealthy target keeps its last known LSN. */
static void test_facts_kept_when_unhealthy(void)
{
    struct afc_pg_hyst_config cfg;
    struct afc_pg_hyst h;
    struct afc_pg_sample s;

    afc_pg_hyst_config_default(&cfg);
    afc_pg_hyst_init(&h);
    sample_ok(&s);
    afc_pg_hyst_update(&h, &cfg, &s, 0);
    afc_pg_hyst_update(&h, &cfg, &s, 1);
    memset(&s, 0, sizeof(s));
    s.reason = AFC_PG_L7_TIMEOUT;
    CHECK_EQ_INT(afc_pg_hyst_update(&h, &cfg, &s, 2), 0);
    CHECK_EQ_INT(afc_pg_hyst_update(&h, &cfg, &s, 3), 0);
    CHECK_EQ_INT(afc_pg_hyst_update(&h, &cfg, &s, 4), AFC_PG_CHG_HEALTH);
    CHECK(!h.obs.healthy);
    CHECK_EQ_INT(h.obs.lsn, 0x3000000);
    CHECK_EQ_INT(h.obs.role, AFC_PG_PRIMARY);
    CHECK_EQ_INT(h.last_reason, AFC_PG_L7_TIMEOUT);
    CHECK_EQ_STR(afc_pg_reason_name(h.last_reason), "l7-timeout");
    CHECK_EQ_STR(afc_pg_reason_name((enum afc_pg_reason)99), "unknown");
}

static void test_lag_bucket(void)
{
    struct afc_pg_hyst_config cfg;
    static const struct {
        uint32_t lag;
        unsigned bucket;
    } t[] = {{0, 0}, {999, 0}, {1000, 1}, {9999, 1}, {10000, 2}, {60000, 3}, {UINT32_MAX, 3}};

    afc_pg_hyst_config_default(&cfg);
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        CHECK_EQ_INT(afc_pg_lag_bucket(&cfg, t[i].lag), t[i].bucket);
    memset(cfg.lag_bounds_ms, 0, sizeof(cfg.lag_bounds_ms));
    CHECK_EQ_INT(afc_pg_lag_bucket(&cfg, 123456), 0);
}

/* ---- parsing ---- */

static void test_lsn_parse(void)
{
    static const struct {
        const char *in;
        int rv;
        uint64_t want;
    } t[] = {
        {"0/0", 0, 0},
        {"0/3000148", 0, 0x3000148},
        {"16/B374D848", 0, 0x16B374D848ull},
        {"FFFFFFFF/FFFFFFFF", 0, UINT64_MAX},
        {"a/b", 0, 0xa0000000b},
        {"", AFC_EMALFORMED, 0},
        {"/", AFC_EMALFORMED, 0},
        {"0/", AFC_EMALFORMED, 0},
        {"/0", AFC_EMALFORMED, 0},
        {"0", AFC_EMALFORMED, 0},
        {"100000000/0", AFC_EMALFORMED, 0},
        {"0/0/0", AFC_EMALFORMED, 0},
        {"g/0", AFC_EMALFORMED, 0},
        {" 0/0", AFC_EMALFORMED, 0},
        {"0/0 ", AFC_EMALFORMED, 0},
        {"-1/0", AFC_EMALFORMED, 0},
    };

    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        uint64_t v = 42;
        int rv = afc_pg_lsn_parse(t[i].in, &v);
        if (rv != t[i].rv || (rv == 0 && v != t[i].want) || (rv != 0 && v != 42)) {
            fprintf(stderr, "  lsn \"%s\": rv %d v %" PRIx64 "\n", t[i].in, rv, v);
            test_failed_checks++;
        }
    }
    CHECK_EQ_INT(afc_pg_lsn_parse(NULL, NULL), AFC_EINVAL);
}

struct row_case {
    const char *vals[AFC_PG_COLS];
    int rv;
    enum afc_pg_role role;
    uint32_t tli;
    uint64_t lsn, replay;
    uint32_t lag;
    const char *addr;
};

static const struct row_case row_cases[] = {
    {{"f", "1", "0/3000148", "0/3000148", "0", NULL},
     0,
     AFC_PG_PRIMARY,
     1,
     0x3000148,
     0x3000148,
     0,
     ""},
    {{"t", "2", "0/5000000", "0/4000000", "1500", "127.0.0.1:24950"},
     0,
     AFC_PG_REPLICA,
     2,
     0x5000000,
     0x4000000,
     1500,
     "127.0.0.1:24950"},
    {{"t", "1", NULL, NULL, NULL, NULL}, 0, AFC_PG_REPLICA, 1, 0, 0, 0, ""},
    {{"t", "1", "0/1", "0/1", "-20", NULL}, 0, AFC_PG_REPLICA, 1, 1, 1, 0, ""},
    {{"t", "1", "0/1", "0/1", "99999999999", NULL}, 0, AFC_PG_REPLICA, 1, 1, 1, UINT32_MAX, ""},
    {{NULL, "1", "0/1", "0/1", "0", NULL}, AFC_EMALFORMED, 0, 0, 0, 0, 0, ""},
    {{"yes", "1", "0/1", "0/1", "0", NULL}, AFC_EMALFORMED, 0, 0, 0, 0, 0, ""},
    {{"f", NULL, "0/1", "0/1", "0", NULL}, AFC_EMALFORMED, 0, 0, 0, 0, 0, ""},
    {{"f", "0", "0/1", "0/1", "0", NULL}, AFC_EMALFORMED, 0, 0, 0, 0, 0, ""},
    {{"f", "4294967296", "0/1", "0/1", "0", NULL}, AFC_EMALFORMED, 0, 0, 0, 0, 0, ""},
    {{"f", "1x", "0/1", "0/1", "0", NULL}, AFC_EMALFORMED, 0, 0, 0, 0, 0, ""},
    {{"f", "1", "zz", "0/1", "0", NULL}, AFC_EMALFORMED, 0, 0, 0, 0, 0, ""},
    {{"f", "1", "0/1", "0/1", "1.5", NULL}, AFC_EMALFORMED, 0, 0, 0, 0, 0, ""},
    {{"t", "1", "0/1", "0/1", "0",
      "a-very-long-host-name-that-does-not-fit-in-the-address-buffer-at-all-no-never.example:5432"},
     AFC_EMALFORMED,
     0,
     0,
     0,
     0,
     0,
     ""},
};

static void test_row_parse(void)
{
    for (size_t i = 0; i < sizeof(row_cases) / sizeof(row_cases[0]); i++) {
        const struct row_case *c = &row_cases[i];
        struct afc_pg_sample s;
        char addr[64];
        int rv = afc_pg_row_parse(c->vals, &s, addr, sizeof(addr));
        CHECK_EQ_INT(rv, c->rv);
        if (rv != 0 || c->rv != 0)
            continue;
        CHECK_EQ_INT(s.reason, AFC_PG_OK);
        CHECK_EQ_INT(s.role, c->role);
        CHECK_EQ_INT(s.timeline, c->tli);
        CHECK(s.lsn == c->lsn && s.replay_lsn == c->replay);
        CHECK_EQ_INT(s.lag_ms, c->lag);
        CHECK_EQ_STR(addr, c->addr);
        CHECK_EQ_STR(s.upstream, "");
    }
}

static void test_addr_find(void)
{
    const char *addrs[] = {"127.0.0.1:24950", NULL, "10.0.0.2:5432"};

    CHECK_EQ_INT(afc_pg_addr_find("127.0.0.1:24950", addrs, 3), 0);
    CHECK_EQ_INT(afc_pg_addr_find("10.0.0.2:5432", addrs, 3), 2);
    CHECK_EQ_INT(afc_pg_addr_find("10.0.0.2:5433", addrs, 3), -1);
    CHECK_EQ_INT(afc_pg_addr_find("", addrs, 3), -1);
    CHECK_EQ_INT(afc_pg_addr_find(NULL, addrs, 3), -1);
    CHECK_EQ_INT(afc_pg_addr_find("10.0.0.2:5432", addrs, 2), -1);
}

int main(void)
{
    TEST_RUN(test_rise_fall);
    TEST_RUN(test_significant_change);
    TEST_RUN(test_facts_kept_when_unhealthy);
    TEST_RUN(test_lag_bucket);
    TEST_RUN(test_lsn_parse);
    TEST_RUN(test_row_parse);
    TEST_RUN(test_addr_find);
    TEST_END();
}
