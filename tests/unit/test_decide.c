/*
 * Decision core tests (coordinator/decide.c): failover detection table (quorum, lease, pause,
 * progress, cooldown, leadership, local_dead), candidate selection (§4.5) with the reason for
 * every exclusion, the sync-mode rule (only synchronous standbys, all of them present), the
 * primary's synchronous standby plan (coordinator/syncplan.c), and adoption at epoch 0.
 */
#include <inttypes.h>
#include <string.h>

#include "afc/failover.h"
#include "afc/state.h"
#include "tests/test.h"
#include "tests/unit/cluster_fixture.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define MB   (1024ULL * 1024ULL)
#define R0_  "us-east-2" /* the primary of healthy_cluster() */

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

/* postgres.fence: a primary whose coordinator the leader has lost counts as failed once the lease
 * has expired, though every observer still sees its PostgreSQL healthy (it can no longer commit);
 * without the fence that would be split-brain, so it never counts alone. */
static void test_lost_coordinator_with_db_fence(void)
{
    static struct afc_state s;
    struct afc_decide_config c = cfg3();
    healthy_cluster(&s);
    struct afc_decide_input in = {&s, &c, true, 10000, 7000, 1000, 0, {false}};
    in.coordinator_lost[0] = true;
    struct afc_decision d;
    afc_decide(&in, &d); /* no fence: the healthy-looking primary is left alone */
    CHECK_EQ_INT(d.action, AFC_ACT_NONE);
    CHECK_EQ_STR(d.blocking, "primary-failed-by-quorum");
    CHECK_CONTAINS(pred(&d, "primary-failed-by-quorum")->value, "0 of 3");
    c.db_fence = true;
    afc_decide(&in, &d);
    CHECK_EQ_INT(d.action, AFC_ACT_BEGIN_FAILOVER);
    CHECK_EQ_STR(d.to, "eu-west-1");
    CHECK_CONTAINS(d.reason, "us-east-2's coordinator is lost");
    in.now_ms = 8000; /* the fence closes with the lease: not before */
    afc_decide(&in, &d);
    CHECK_EQ_STR(d.blocking, "lease-expired");
    in.now_ms = 10000; /* its coordinator heard again: nothing is wrong */
    in.coordinator_lost[0] = false;
    afc_decide(&in, &d);
    CHECK_EQ_INT(d.action, AFC_ACT_NONE);
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

/* ---- sync mode: only synchronous standbys (afc_select_candidate, afc_more_wal_elsewhere) ---- */

/* The committed record: set by `by` (its epoch 3, the current one), active, these standbys. */
static void sync_record(struct afc_state *s, const char *by, bool active, bool eu, bool ap)
{
    memset(&s->sync, 0, sizeof s->sync);
    snprintf(s->sync.region, sizeof s->sync.region, "%s", by);
    s->sync.epoch = 3;
    s->sync.active = active;
    s->sync.standby[1] = active && eu;
    s->sync.standby[2] = active && ap;
}

struct sync_case {
    const char *name;
    bool sync_mode;
    const char *record_by; /* NULL: never set */
    bool active, eu, ap;   /* the record */
    uint64_t ap_lsn;       /* eu-west-1 has 1000 */
    bool ap_down;          /* ap-south-1's own report: unhealthy */
    bool ap_minority;      /* ap-south-1 seen healthy by itself only */
    bool ap_nofailover;
    bool primary_in_record; /* an inherited record names the current primary too */
    int want;
    const char *why_has; /* "" = anything */
};

static const struct sync_case sync_cases[] = {
    {"async mode ignores the record: most WAL wins", false, R0_, true, false, true, 900, false,
     false, false, false, 1, ""},
    {"async mode: a more advanced async replica wins", false, R0_, true, false, true, 1100, false,
     false, false, false, 2, ""},
    {"sync: only the synchronous standby, though it has less WAL", true, R0_, true, false, true,
     900, false, false, false, false, 2, "eu-west-1: not a synchronous standby"},
    {"sync: of two synchronous standbys, the most WAL", true, R0_, true, true, true, 900, false,
     false, false, false, 1, ""},
    {"sync: of two synchronous standbys, the most WAL (ap ahead)", true, R0_, true, true, true,
     1100, false, false, false, false, 2, ""},
    {"sync: fell back to async (committed): any replica", true, R0_, false, false, false, 900,
     false, false, false, false, 1, ""},
    {"sync: never set: any replica", true, NULL, false, false, false, 900, false, false, false,
     false, 1, ""},
    {"sync: a synchronous standby is down: nobody (it may hold acknowledged writes)", true, R0_,
     true, true, true, 900, true, false, false, false, -1,
     "ap-south-1: synchronous standby unavailable (it may hold acknowledged writes)"},
    {"sync: the only synchronous standby is down: not the async one", true, R0_, true, false, true,
     900, true, false, false, false, -1, "ap-south-1: synchronous standby unavailable"},
    {"sync: a synchronous standby seen by a minority only: nobody", true, R0_, true, true, true,
     900, false, true, false, false, -1, "ap-south-1: synchronous standby unavailable"},
    {"sync: the synchronous standby is nofailover: nobody", true, R0_, true, false, true, 900,
     false, false, true, false, -1, "eu-west-1: not a synchronous standby"},
    {"sync: an inherited record naming the primary: the primary is passed", true, "eu-west-1", true,
     false, true, 900, false, false, false, true, 2, "eu-west-1: not a synchronous standby"},
};

static void test_sync_candidates(void)
{
    static struct afc_state s;
    char why[256];
    for (size_t k = 0; k < N(sync_cases); k++) {
        const struct sync_case *t = &sync_cases[k];
        struct afc_decide_config c = cfg3();
        c.sync_mode = t->sync_mode;
        c.nofailover[2] = t->ap_nofailover;
        healthy_cluster(&s);
        s.obs[2][2].lsn = t->ap_lsn;
        if (t->record_by != NULL) {
            sync_record(&s, t->record_by, t->active, t->eu, t->ap);
            s.sync.standby[0] = t->primary_in_record;
        }
        if (t->ap_down) {
            s.obs[2][2].healthy = false;
        }
        if (t->ap_minority) {
            s.obs[0][2].healthy = s.obs[1][2].healthy = false;
        }
        int got = afc_select_candidate(&s, &c, R[0], why, sizeof why);
        if (got != t->want || strstr(why, t->why_has) == NULL) {
            fprintf(stderr, "  case \"%s\": got %d (want %d), why \"%s\" (want \"%s\")\n", t->name,
                    got, t->want, why, t->why_has);
            test_failed_checks++;
        }
    }
}

/* /v1/decision names what blocks: the candidate-available predicate says it. */
static void test_sync_decision_says_why(void)
{
    static struct afc_state s;
    struct afc_decide_config c = cfg3();
    c.sync_mode = true;
    healthy_cluster(&s);
    primary_down(&s, 3);
    sync_record(&s, R[0], true, false, true);
    s.obs[2][2].healthy = false; /* the one synchronous standby died with the primary */
    struct afc_decide_input in = {&s, &c, true, 10000, 7000, 1000, 0};
    struct afc_decision d;
    afc_decide(&in, &d);
    CHECK_EQ_INT(d.action, AFC_ACT_NONE);
    CHECK_EQ_STR(d.blocking, "candidate-available");
    CHECK_EQ_STR(pred(&d, "candidate-available")->value,
                 "ap-south-1: synchronous standby unavailable (it may hold acknowledged writes)");
    c.nofailover[2] = true; /* alive but never promoted: eu-west-1 is not synchronous */
    s.obs[2][2].healthy = true;
    afc_decide(&in, &d);
    CHECK_EQ_STR(d.blocking, "candidate-available");
    CHECK_CONTAINS(pred(&d, "candidate-available")->value, "eu-west-1: not a synchronous standby");
    CHECK_CONTAINS(pred(&d, "candidate-available")->value, "ap-south-1: nofailover");
    c.nofailover[2] = false; /* a candidate found: the passed-over ones are named */
    afc_decide(&in, &d);
    CHECK_EQ_INT(d.action, AFC_ACT_BEGIN_FAILOVER);
    CHECK_EQ_STR(d.to, "ap-south-1");
    CHECK_CONTAINS(pred(&d, "candidate-available")->value,
                   "passed over: eu-west-1: not a synchronous standby");
    CHECK(afc_sync_rule_applies(&s, &c));
    c.sync_mode = false;
    CHECK(!afc_sync_rule_applies(&s, &c));
}

/* The candidate's last check counts only replicas the leader could choose: in sync mode, an
 * asynchronous replica with more WAL does not make it abort. */
static void test_sync_more_wal_elsewhere(void)
{
    static struct afc_state s;
    struct afc_decide_config c = cfg3();
    bool waiting;
    c.sync_mode = true;
    healthy_cluster(&s);
    s.obs[2][2].lsn = 5000;
    sync_record(&s, R[0], true, true, false);
    CHECK_EQ_INT(afc_more_wal_elsewhere(&s, &c, R[1], R[0], 1000, &waiting), -1);
    sync_record(&s, R[0], true, true, true);
    CHECK_EQ_INT(afc_more_wal_elsewhere(&s, &c, R[1], R[0], 1000, &waiting), 2);
    c.sync_mode = false;
    sync_record(&s, R[0], true, true, false);
    CHECK_EQ_INT(afc_more_wal_elsewhere(&s, &c, R[1], R[0], 1000, &waiting), 2);
}

/* ---- sync mode: the primary's plan (afc_sync_plan) ---- */

/* sets as 3-bit masks over (us-east-2, eu-west-1, ap-south-1): EU = 2, AP = 4, SELF = 1 */
#define SELF    1u
#define EU      2u
#define AP      4u
#define BOTH    6u /* EU | AP */
#define SELF_EU 3u
#define ALL3    7u

struct plan_case {
    const char *name;
    struct {
        const char *by; /* NULL: never set; "old": ap-south-1 at epoch 2 (the predecessor) */
        bool active;
        unsigned set;
    } rec; /* the committed record */
    struct {
        unsigned named;
        bool active, exact;
        unsigned streaming;
        uint64_t flush, current; /* flush: of every streaming standby */
    } pg;                        /* what the primary's PostgreSQL says */
    struct {
        uint64_t ref;
        bool strict;
        unsigned awaited;   /* just became primary: not streamed from us yet */
        unsigned down;      /* reported down by every observer */
        unsigned unhealthy; /* their own report: unhealthy */
        unsigned excluded, drained;
    } env;
    struct {
        enum afc_sync_step step;
        bool active;
        unsigned set;
        bool degraded, blocking;
        uint64_t need_lsn;
    } want;
};

#define OWN "us-east-2"

static const struct plan_case plan_cases[] = {
    {"steady: record and PostgreSQL agree",
     {OWN, true, BOTH},
     {BOTH, true, true, BOTH, 100, 100},
     {0, false, 0, 0, 0, 0, 0},
     {AFC_SYNC_NONE, true, 0, false, false, 0}},
    {"first time: the record before PostgreSQL waits",
     {NULL, false, 0},
     {0, false, true, BOTH, 100, 100},
     {0, false, 0, 0, 0, 0, 0},
     {AFC_SYNC_COMMIT, true, BOTH, false, false, 0}},
    {"record committed: PostgreSQL waits on both",
     {OWN, true, BOTH},
     {0, false, true, BOTH, 100, 100},
     {0, false, 0, 0, 0, 0, 0},
     {AFC_SYNC_APPLY, true, BOTH, false, false, 0}},
    {"a standby stopped streaming: PostgreSQL's set shrinks first",
     {OWN, true, BOTH},
     {BOTH, true, true, EU, 100, 100},
     {0, false, 0, 0, 0, 0, 0},
     {AFC_SYNC_APPLY, true, EU, false, false, 0}},
    {"PostgreSQL shrank: the record waits for the remaining standby",
     {OWN, true, BOTH},
     {EU, true, true, EU, 90, 100},
     {0, false, 0, 0, 0, 0, 0},
     {AFC_SYNC_WAIT, true, 0, false, false, 100}},
    {"remaining standby caught up: the record shrinks",
     {OWN, true, BOTH},
     {EU, true, true, EU, 100, 100},
     {0, false, 0, 0, 0, 0, 0},
     {AFC_SYNC_COMMIT, true, EU, false, false, 0}},
    {"the LSN remembered after the change counts, not the current one",
     {OWN, true, BOTH},
     {EU, true, true, EU, 960, 2000},
     {950, false, 0, 0, 0, 0, 0},
     {AFC_SYNC_COMMIT, true, EU, false, false, 0}},
    {"...and the remaining standby is not there yet",
     {OWN, true, BOTH},
     {EU, true, true, EU, 940, 2000},
     {950, false, 0, 0, 0, 0, 0},
     {AFC_SYNC_WAIT, true, 0, false, false, 950}},
    {"a standby came back: the record grows first",
     {OWN, true, EU},
     {EU, true, true, BOTH, 100, 100},
     {0, false, 0, 0, 0, 0, 0},
     {AFC_SYNC_COMMIT, true, BOTH, false, false, 0}},
    {"non-strict, no standby left: asynchronous, committed first",
     {OWN, true, EU},
     {EU, true, true, 0, 0, 100},
     {0, false, 0, 0, 0, 0, 0},
     {AFC_SYNC_COMMIT, false, 0, true, false, 0}},
    {"asynchronous committed: PostgreSQL stops waiting",
     {OWN, false, 0},
     {EU, true, true, 0, 0, 100},
     {0, false, 0, 0, 0, 0, 0},
     {AFC_SYNC_APPLY, false, 0, true, false, 0}},
    {"asynchronous on both sides",
     {OWN, false, 0},
     {0, false, true, 0, 0, 100},
     {0, false, false, 0, 0, 0, 0},
     {AFC_SYNC_NONE, false, 0, true, false, 0}},
    {"back from asynchronous: the record first",
     {OWN, false, 0},
     {0, false, true, EU, 100, 100},
     {0, false, false, 0, 0, 0, 0},
     {AFC_SYNC_COMMIT, true, EU, false, false, 0}},
    {"strict, no standby left: every possible standby, commits wait",
     {OWN, true, EU},
     {EU, true, true, 0, 0, 100},
     {0, true, 0, 0, 0, 0, 0},
     {AFC_SYNC_COMMIT, true, BOTH, false, true, 0}},
    {"strict, recorded: PostgreSQL waits on any of them",
     {OWN, true, BOTH},
     {EU, true, true, 0, 0, 100},
     {0, true, 0, 0, 0, 0, 0},
     {AFC_SYNC_APPLY, true, BOTH, false, true, 0}},
    {"just promoted: healthy replicas count as attached",
     {"old", true, SELF_EU},
     {EU, true, true, 0, 0, 100},
     {0, false, BOTH, 0, 0, 0, 0},
     {AFC_SYNC_COMMIT, true, BOTH, false, false, 0}},
    {"just promoted, no healthy replica: wait, do not degrade yet",
     {OWN, true, EU},
     {EU, true, true, 0, 0, 100},
     {0, false, BOTH, 0, BOTH, 0, 0},
     {AFC_SYNC_WAIT, true, 0, false, false, 0}},
    {"just promoted, only a dead replica awaited: asynchronous",
     {OWN, true, EU},
     {EU, true, true, 0, 0, 100},
     {0, false, AP, AP, 0, 0, 0},
     {AFC_SYNC_COMMIT, false, 0, true, false, 0}},
    {"just promoted, awaited but one attached already: it alone",
     {OWN, true, BOTH},
     {BOTH, true, true, EU, 100, 100},
     {0, false, AP, 0, AP, 0, 0},
     {AFC_SYNC_APPLY, true, EU, false, false, 0}},
    {"the predecessor's record is replaced by our own",
     {"old", true, SELF_EU},
     {EU, true, true, EU, 100, 100},
     {0, false, 0, 0, 0, 0, 0},
     {AFC_SYNC_COMMIT, true, EU, false, false, 0}},
    {"streaming, but reported down by a majority: not attached",
     {OWN, true, BOTH},
     {BOTH, true, true, BOTH, 100, 100},
     {0, false, 0, AP, 0, 0, 0},
     {AFC_SYNC_APPLY, true, EU, false, false, 0}},
    {"nofailover / no PostgreSQL: never a standby",
     {NULL, false, 0},
     {0, false, true, BOTH, 100, 100},
     {0, false, 0, 0, 0, AP, 0},
     {AFC_SYNC_COMMIT, true, EU, false, false, 0}},
    {"drained: never a standby",
     {NULL, false, 0},
     {0, false, true, BOTH, 100, 100},
     {0, false, false, 0, 0, 0, EU},
     {AFC_SYNC_COMMIT, true, AP, false, false, 0}},
    {"someone else's value: rewritten",
     {OWN, true, BOTH},
     {BOTH, true, false, BOTH, 100, 100},
     {0, false, 0, 0, 0, 0, 0},
     {AFC_SYNC_APPLY, true, BOTH, false, false, 0}},
    {"a copied setting names the primary itself: never recorded",
     {OWN, true, BOTH},
     {ALL3, true, false, BOTH, 100, 100},
     {0, false, 0, 0, 0, 0, 0},
     {AFC_SYNC_APPLY, true, BOTH, false, false, 0}},
};

static void mask_to(unsigned mask, bool *out)
{
    for (unsigned j = 0; j < 3; j++) {
        out[j] = (mask >> j) & 1u;
    }
}

static unsigned to_mask(const bool *set)
{
    unsigned m = 0;
    for (unsigned j = 0; j < 3; j++) {
        m |= set[j] ? 1u << j : 0;
    }
    return m;
}

static void plan_state(struct afc_state *s, const struct plan_case *t)
{
    healthy_cluster(s);
    if (t->rec.by != NULL) {
        bool old = strcmp(t->rec.by, "old") == 0;
        snprintf(s->sync.region, sizeof s->sync.region, "%s", old ? R[2] : t->rec.by);
        s->sync.epoch = old ? 2 : 3;
        s->sync.active = t->rec.active;
        mask_to(t->rec.set, s->sync.standby);
    }
    for (unsigned j = 1; j < 3; j++) {
        for (unsigned i = 0; i < 3 && (t->env.down >> j & 1u); i++) {
            s->obs[i][j].healthy = false;
        }
        s->obs[j][j].healthy = s->obs[j][j].healthy && !(t->env.unhealthy >> j & 1u);
    }
    mask_to(t->env.drained, s->drained);
}

static void test_sync_plan(void)
{
    static struct afc_state s;
    for (size_t k = 0; k < N(plan_cases); k++) {
        const struct plan_case *t = &plan_cases[k];
        struct afc_sync_live live;
        memset(&live, 0, sizeof live);
        plan_state(&s, t);
        mask_to(t->pg.named, live.named);
        mask_to(t->pg.streaming, live.streaming);
        live.active = t->pg.active;
        live.exact = t->pg.exact;
        live.current_lsn = t->pg.current;
        for (unsigned j = 0; j < 3; j++) {
            live.flush_lsn[j] = live.streaming[j] ? t->pg.flush : 0;
        }
        struct afc_sync_input in = {
            .state = &s, .self = 0, .strict = t->env.strict, .live = &live, .ref_lsn = t->env.ref};
        mask_to(t->env.excluded, in.excluded);
        mask_to(t->env.awaited, in.awaited);
        struct afc_sync_plan p;
        afc_sync_plan(&in, &p);
        bool set_matters = p.step == AFC_SYNC_COMMIT || p.step == AFC_SYNC_APPLY;
        bool good = p.step == t->want.step && (!set_matters || p.active == t->want.active) &&
                    (!set_matters || !p.active || to_mask(p.standby) == t->want.set) &&
                    p.degraded == t->want.degraded && p.blocking == t->want.blocking &&
                    p.need_lsn == t->want.need_lsn && !p.standby[0];
        if (!good) {
            fprintf(stderr,
                    "  case \"%s\": step %d active %d set %u degraded %d blocking %d need %" PRIu64
                    " (want step %d active %d set %u degraded %d blocking %d need %" PRIu64
                    "): %s\n",
                    t->name, p.step, p.active, to_mask(p.standby), p.degraded, p.blocking,
                    p.need_lsn, t->want.step, t->want.active, t->want.set, t->want.degraded,
                    t->want.blocking, t->want.need_lsn, p.why);
            test_failed_checks++;
        }
    }
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
    TEST_RUN(test_lost_coordinator_with_db_fence);
    TEST_RUN(test_after_abort);
    TEST_RUN(test_candidates);
    TEST_RUN(test_no_candidate_blocks);
    TEST_RUN(test_more_wal_elsewhere);
    TEST_RUN(test_sync_candidates);
    TEST_RUN(test_sync_decision_says_why);
    TEST_RUN(test_sync_more_wal_elsewhere);
    TEST_RUN(test_sync_plan);
    TEST_RUN(test_adopt);
    TEST_END();
}
