/*
 * Decision core tests (coordinator/decide.c): failover detection table (quorum, lease, pause,
 * progress, cooldown, leadership, local_dead), candidate selection (§4.5) with the reason for
 * every exclusion, and adoption at epoch 0.
 */
#include <string.h>

#include "afc/failover.h"
#include "afc/state.h"
#include "tests/test.h"
#include "tests/unit/cluster_fixture.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define MB   (1024ULL * 1024ULL)

static struct afc_decide_config cfg3(void)
{
    struct afc_decide_config c;
    memset(&c, 0, sizeof c);
    c.lease_ms = 2000;
    c.margin_ms = 200;
    c.max_lag_bytes = 16 * MB;
    c.cooldown_ms = 300000;
    c.n_members = 3;
    return c;
}

static void primary_down(struct afc_state *s, int observers)
{
    for (int i = 0; i < observers; i++) {
        s->obs[i][0].healthy = false;
    }
}

static const struct afc_predicate *pred(const struct afc_decision *d, const char *name)
{
    for (unsigned k = 0; k < d->n_predicates; k++) {
        if (strcmp(d->predicates[k].name, name) == 0) {
            return &d->predicates[k];
        }
    }
    return NULL;
}

/* ---- detection ---- */

struct detect_case {
    const char *name;
    int down;           /* observers reporting the primary down */
    bool local_dead;    /* the primary's own coordinator gave up */
    bool region_gone;   /* the leader hears nothing from the primary's coordinator */
    bool ready, paused; /* leader state */
    enum afc_fo_step step;
    uint64_t now, lease_applied, last_failover;
    enum afc_action want;
    const char *blocking;
    const char *value_has; /* in the blocking predicate, or in reason when none blocks */
};

static const struct detect_case detect_cases[] = {
    {"majority down, lease expired", 2, false, false, true, false, AFC_FO_DONE, 10000, 7000, 0,
     AFC_ACT_BEGIN_FAILOVER, NULL, "2 of 3 observers report us-east-2 down"},
    {"all down", 3, false, false, true, false, AFC_FO_NONE, 10000, 7000, 0, AFC_ACT_BEGIN_FAILOVER,
     NULL, "3 of 3"},
    {"one observer down", 1, false, false, true, false, AFC_FO_DONE, 10000, 7000, 0, AFC_ACT_NONE,
     "primary-failed-by-quorum", "1 of 3 observers report us-east-2 down (need 2)"},
    {"lease not yet expired", 2, false, false, true, false, AFC_FO_DONE, 9000, 7000, 0,
     AFC_ACT_NONE, "lease-expired", "expires in 200 ms (counted from last renewal applied here)"},
    {"lease exactly at deadline", 2, false, false, true, false, AFC_FO_DONE, 9200, 7000, 0,
     AFC_ACT_BEGIN_FAILOVER, NULL, "down"},
    {"no renewal seen: count from ready", 2, false, false, true, false, AFC_FO_DONE, 3000, 0, 0,
     AFC_ACT_NONE, "lease-expired", "counted from this leader became ready"},
    {"paused", 2, false, false, true, true, AFC_FO_DONE, 10000, 7000, 0, AFC_ACT_NONE, "not-paused",
     "maintenance"},
    {"not leader", 2, false, false, false, false, AFC_FO_DONE, 10000, 7000, 0, AFC_ACT_NONE,
     "leader-ready", "not the ready leader"},
    {"failover in progress", 2, false, false, true, false, AFC_FO_FENCED, 10000, 7000, 0,
     AFC_ACT_NONE, "no-failover-in-progress", "at step fenced"},
    {"cooldown", 2, false, false, true, false, AFC_FO_DONE, 100000, 7000, 50000, AFC_ACT_NONE,
     "cooldown-elapsed", "cooldown 300000 ms"},
    {"cooldown elapsed", 2, false, false, true, false, AFC_FO_DONE, 400000, 7000, 50000,
     AFC_ACT_BEGIN_FAILOVER, NULL, "down"},
    {"local_dead counts alone", 0, true, false, true, false, AFC_FO_DONE, 10000, 7000, 0,
     AFC_ACT_BEGIN_FAILOVER, NULL, "own coordinator reports it dead"},
    {"local_dead overrides cooldown", 0, true, false, true, false, AFC_FO_DONE, 100000, 7000, 50000,
     AFC_ACT_BEGIN_FAILOVER, NULL, "dead"},
    {"local_dead still waits for the lease", 0, true, false, true, false, AFC_FO_DONE, 8000, 7000,
     0, AFC_ACT_NONE, "lease-expired", "expires in 1200 ms"},
    {"whole region of the new primary gone overrides cooldown", 2, false, true, true, false,
     AFC_FO_DONE, 100000, 7000, 50000, AFC_ACT_BEGIN_FAILOVER, NULL, "down"},
    {"only looks down (its coordinator still heard): cooldown holds", 2, false, false, true, false,
     AFC_FO_DONE, 100000, 7000, 50000, AFC_ACT_NONE, "cooldown-elapsed", "cooldown 300000 ms"},
};

static void test_detection(void)
{
    static struct afc_state s;
    struct afc_decide_config c = cfg3();
    for (size_t k = 0; k < N(detect_cases); k++) {
        const struct detect_case *t = &detect_cases[k];
        healthy_cluster(&s);
        primary_down(&s, t->down);
        s.obs[0][0].local_dead = t->local_dead;
        s.paused = t->paused;
        s.failover.step = t->step;
        struct afc_decide_input in = {
            &s, &c, t->ready, t->now, t->lease_applied, 1000, t->last_failover, {false}};
        in.coordinator_lost[0] = t->region_gone;
        struct afc_decision d;
        afc_decide(&in, &d);
        const char *where = t->blocking ? pred(&d, t->blocking)->value : d.reason;
        bool good =
            d.action == t->want &&
            (t->blocking == NULL ? d.blocking == NULL
                                 : d.blocking != NULL && !strcmp(d.blocking, t->blocking)) &&
            strstr(where, t->value_has) != NULL && d.n_predicates == 7;
        if (!good) {
            fprintf(stderr, "  case \"%s\": action %d blocking %s value \"%s\"\n", t->name,
                    d.action, d.blocking ? d.blocking : "-", where);
            test_failed_checks++;
        }
        if (d.action == AFC_ACT_BEGIN_FAILOVER) {
            CHECK_EQ_STR(d.from, "us-east-2");
            CHECK_EQ_STR(d.to, "eu-west-1");
            CHECK_EQ_INT(d.expect_epoch, 3);
        }
    }
}

static void test_all_predicates_listed(void)
{
    static struct afc_state s;
    struct afc_decide_config c = cfg3();
    healthy_cluster(&s);
    s.paused = true;
    struct afc_decide_input in = {&s, &c, false, 5000, 4000, 1000, 0};
    struct afc_decision d;
    afc_decide(&in, &d);
    static const char *const names[] = {
        "leader-ready",  "not-paused",       "no-failover-in-progress", "primary-failed-by-quorum",
        "lease-expired", "cooldown-elapsed", "candidate-available"};
    REQUIRE(d.n_predicates == N(names));
    for (size_t k = 0; k < N(names); k++) {
        CHECK_EQ_STR(d.predicates[k].name, names[k]);
    }
    CHECK_EQ_STR(d.blocking, "leader-ready"); /* the first failure, though several fail */
    CHECK(!d.predicates[1].ok && !d.predicates[3].ok && !d.predicates[4].ok);
    CHECK_CONTAINS(d.predicates[3].value, "0 of 3");
}

static void test_after_abort(void)
{
    static struct afc_state s;
    struct afc_decide_config c = cfg3();
    healthy_cluster(&s);
    s.primary[0] = '\0';
    s.failover.step = AFC_FO_ABORTED;
    set_obs(&s, 0, 0, false, AFC_PG_UNKNOWN, 0);
    struct afc_decide_input in = {&s, &c, true, 10000, 7000, 1000, 0};
    struct afc_decision d;
    afc_decide(&in, &d);
    CHECK_EQ_INT(d.action, AFC_ACT_BEGIN_FAILOVER);
    CHECK_EQ_STR(d.from, "");
    CHECK_EQ_STR(d.to, "eu-west-1");
    CHECK_CONTAINS(pred(&d, "primary-failed-by-quorum")->value, "no authorized primary");
    in.now_ms = 8000; /* the aborted `to` may still hold a lease */
    afc_decide(&in, &d);
    CHECK_EQ_STR(d.blocking, "lease-expired");
}

/* ---- candidate selection ---- */

static void test_candidates(void)
{
    static struct afc_state s;
    struct afc_decide_config c = cfg3();
    char why[160];

    healthy_cluster(&s); /* highest LSN wins */
    CHECK_EQ_INT(afc_select_candidate(&s, &c, R[0], why, sizeof why), 1);
    s.obs[2][2].lsn = 1001;
    CHECK_EQ_INT(afc_select_candidate(&s, &c, R[0], why, sizeof why), 2);
    s.obs[2][2].lsn = 1000; /* tie: priority, then member order */
    CHECK_EQ_INT(afc_select_candidate(&s, &c, R[0], why, sizeof why), 1);
    c.priority[2] = 5;
    CHECK_EQ_INT(afc_select_candidate(&s, &c, R[0], why, sizeof why), 2);
    c.priority[2] = 0;
    c.nofailover[1] = true; /* nofailover excluded */
    CHECK_EQ_INT(afc_select_candidate(&s, &c, R[0], why, sizeof why), 2);
    c.nofailover[2] = true;
    CHECK_EQ_INT(afc_select_candidate(&s, &c, R[0], why, sizeof why), -1);
    CHECK_CONTAINS(why, "eu-west-1: nofailover");
    CHECK_CONTAINS(why, "ap-south-1: nofailover");

    c = cfg3(); /* lag beyond the limit, relative to the old primary's last LSN */
    healthy_cluster(&s);
    s.obs[1][0].lsn = 40 * MB;
    s.obs[1][1].lsn = 20 * MB;
    s.obs[2][2].lsn = 30 * MB;
    CHECK_EQ_INT(afc_select_candidate(&s, &c, R[0], why, sizeof why), 2);
    s.obs[2][2].lsn = 4 * MB;
    CHECK_EQ_INT(afc_select_candidate(&s, &c, R[0], why, sizeof why), -1);
    CHECK_CONTAINS(why, "eu-west-1 lags 20 MB > 16 MB");
    CHECK_CONTAINS(why, "ap-south-1 lags 36 MB > 16 MB");
    c.max_lag_bytes = 0; /* no limit */
    CHECK_EQ_INT(afc_select_candidate(&s, &c, R[0], why, sizeof why), 1);

    c = cfg3(); /* seen healthy only by a minority: excluded */
    healthy_cluster(&s);
    s.obs[0][1].healthy = false;
    s.obs[2][1].healthy = false;
    CHECK_EQ_INT(afc_select_candidate(&s, &c, R[0], why, sizeof why), 2);
    s.obs[0][2].healthy = false;
    s.obs[1][2].healthy = false;
    CHECK_EQ_INT(afc_select_candidate(&s, &c, R[0], why, sizeof why), -1);
    CHECK_CONTAINS(why, "eu-west-1: seen healthy by 1 of 3 (need 2)");

    healthy_cluster(&s); /* its own report must say healthy replica */
    s.obs[1][1].role = AFC_PG_PRIMARY;
    s.obs[2][2].valid = false;
    CHECK_EQ_INT(afc_select_candidate(&s, &c, R[0], why, sizeof why), -1);
    CHECK_CONTAINS(why, "eu-west-1: not a healthy replica by its own report");

    memset(&s, 0, sizeof s); /* nothing known */
    s.n_members = 3;
    for (unsigned i = 0; i < 3; i++) {
        snprintf(s.members[i].name, AFC_NAME_MAX, "%s", R[i]);
    }
    CHECK_EQ_INT(afc_select_candidate(&s, &c, R[0], NULL, 0), -1);
    healthy_cluster(&s);
    s.n_members = 1;
    CHECK_EQ_INT(afc_select_candidate(&s, &c, R[0], why, sizeof why), -1);
    CHECK_EQ_STR(why, "no healthy replica");
}

/* The candidate's check after detaching (afc_more_wal_elsewhere): eu-west-1 is the candidate,
 * us-east-2 the old primary, ap-south-1 the other replica. */
struct more_wal_case {
    const char *name;
    uint64_t own, other_lsn, old_lsn;
    const char *other_upstream;
    bool other_healthy;
    enum afc_pg_role other_role;
    bool other_excluded; /* drained: the leader could never choose it */
    int want;
    bool want_waiting;
};

static const struct more_wal_case more_wal_cases[] = {
    {"other stopped, behind", 1000, 900, 5000, "", true, AFC_PG_REPLICA, false, -1, false},
    {"other stopped, equal", 1000, 1000, 5000, "", true, AFC_PG_REPLICA, false, -1, false},
    {"other stopped, ahead", 1000, 1200, 5000, "", true, AFC_PG_REPLICA, false, 2, false},
    {"other still streaming, behind", 1000, 900, 5000, "us-east-2", true, AFC_PG_REPLICA, false, -1,
     true},
    {"other still streaming, already ahead", 1000, 1200, 5000, "us-east-2", true, AFC_PG_REPLICA,
     false, 2, true},
    {"other follows someone else, ahead", 1000, 1200, 5000, "eu-west-1", true, AFC_PG_REPLICA,
     false, 2, false},
    {"other unhealthy: not counted", 1000, 1200, 5000, "", false, AFC_PG_REPLICA, false, -1, false},
    {"other is no replica: not counted", 1000, 1200, 5000, "", true, AFC_PG_PRIMARY, false, -1,
     false},
    {"the old primary's LSN is not a replica's", 1000, 900, 9000, "", true, AFC_PG_REPLICA, false,
     -1, false},
    {"other ahead but drained: not counted", 1000, 1200, 5000, "", true, AFC_PG_REPLICA, true, -1,
     false},
};

static void test_more_wal_elsewhere(void)
{
    static struct afc_state s;
    struct afc_decide_config c = cfg3();
    for (size_t k = 0; k < N(more_wal_cases); k++) {
        const struct more_wal_case *t = &more_wal_cases[k];
        healthy_cluster(&s);
        s.obs[0][0].lsn = t->old_lsn;
        s.obs[1][1].lsn = 99999; /* the candidate's own report is stale: own_lsn counts */
        set_obs(&s, 2, 2, t->other_healthy, t->other_role, t->other_lsn);
        snprintf(s.obs[2][2].upstream, sizeof s.obs[2][2].upstream, "%s", t->other_upstream);
        s.drained[2] = t->other_excluded;
        bool waiting = !t->want_waiting;
        int got = afc_more_wal_elsewhere(&s, &c, R[1], R[0], t->own, &waiting);
        if (got != t->want || waiting != t->want_waiting) {
            printf("  case '%s': got %d waiting=%d, want %d waiting=%d\n", t->name, got, waiting,
                   t->want, t->want_waiting);
        }
        CHECK_EQ_INT(got, t->want);
        CHECK(waiting == t->want_waiting);
    }
}

static void test_no_candidate_blocks(void)
{
    static struct afc_state s;
    struct afc_decide_config c = cfg3();
    healthy_cluster(&s);
    primary_down(&s, 3);
    c.nofailover[1] = c.nofailover[2] = true;
    struct afc_decide_input in = {&s, &c, true, 10000, 7000, 1000, 0};
    struct afc_decision d;
    afc_decide(&in, &d);
    CHECK_EQ_INT(d.action, AFC_ACT_NONE);
    CHECK_EQ_STR(d.blocking, "candidate-available");
    CHECK_CONTAINS(pred(&d, "candidate-available")->value, "nofailover");
}

/* ---- adoption ---- */

static void test_adopt(void)
{
    static struct afc_state s;
    struct afc_decide_config c = cfg3();
    struct afc_decision d;
    healthy_cluster(&s);
    s.epoch = 0;
    s.primary[0] = '\0';
    s.failover.step = AFC_FO_NONE;
    struct afc_decide_input in = {&s, &c, true, 10000, 0, 1000, 0};
    afc_decide(&in, &d); /* us-east-2 reports itself primary */
    CHECK_EQ_INT(d.action, AFC_ACT_ADOPT);
    CHECK_EQ_STR(d.to, "us-east-2");
    CHECK_EQ_INT(d.expect_epoch, 0);
    CHECK(d.blocking == NULL);
    /* only the region's own coordinator's word counts */
    s.obs[0][0].role = AFC_PG_REPLICA;
    afc_decide(&in, &d);
    CHECK_EQ_INT(d.action, AFC_ACT_NONE);
    CHECK_EQ_STR(d.blocking, "single-running-primary");
    CHECK_CONTAINS(pred(&d, "single-running-primary")->value, "none of 3 regions");
    /* two primaries: refuse, naming both */
    s.obs[0][0].role = AFC_PG_PRIMARY;
    s.obs[2][2].role = AFC_PG_PRIMARY;
    afc_decide(&in, &d);
    CHECK_EQ_INT(d.action, AFC_ACT_REFUSE_ADOPT);
    CHECK_CONTAINS(d.reason, "us-east-2 and ap-south-1");
    CHECK_CONTAINS(pred(&d, "single-running-primary")->value, "us-east-2 and ap-south-1");
    /* not leader, or paused: nothing */
    s.obs[2][2].role = AFC_PG_REPLICA;
    in.leader_ready = false;
    afc_decide(&in, &d);
    CHECK_EQ_INT(d.action, AFC_ACT_NONE);
    CHECK_EQ_STR(d.blocking, "leader-ready");
    in.leader_ready = true;
    s.paused = true;
    afc_decide(&in, &d);
    CHECK_EQ_INT(d.action, AFC_ACT_NONE);
    CHECK_EQ_STR(d.blocking, "not-paused");
}

int main(void)
{
    TEST_RUN(test_detection);
    TEST_RUN(test_all_predicates_listed);
    TEST_RUN(test_after_abort);
    TEST_RUN(test_candidates);
    TEST_RUN(test_no_candidate_blocks);
    TEST_RUN(test_more_wal_elsewhere);
    TEST_RUN(test_adopt);
    TEST_END();
}
