/*
 * Scenario files (fault-injection/scenario.c): the fixtures in scenarios/ (argv[1]) parse to the
 * values they spell, and every kind of mistake gives its exact "FILE:LINE: KEY: reason". The bad
 * files are written into a fresh temporary directory, so each case shows its whole text.
 */
#include <stdlib.h>
#include <unistd.h>

#include "chaos.h"
#include "tests/test.h"

static const char *const regions[] = {"us-east-2", "eu-west-1", "ap-south-1"};
static const char *fixtures = "tests/chaos/report/scenarios";
static char tmpdir[256];

#define S(sec) ((int64_t)(sec)*1000000)

static int load_fixture(const char *name, struct chaos_scenario *sc, char *why, size_t size)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", fixtures, name);
    return chaos_scenario_load(path, regions, 3, sc, why, size);
}

static void test_full(void)
{
    static struct chaos_scenario sc;
    char why[1024] = "";
    int rv = load_fixture("full.yaml", &sc, why, sizeof why);
    if (rv != 0) {
        fprintf(stderr, "  %s\n", why);
    }
    REQUIRE(rv == 0);
    CHECK_EQ_STR(sc.name, "isolate-primary");
    CHECK_EQ_STR(sc.description, "Isolate the primary & watch a replica take over");
    CHECK_CONTAINS(sc.file, "full.yaml");
    CHECK_EQ_INT(sc.seed, 7);
    CHECK(sc.sync);
    CHECK(!sc.fence);
    CHECK(sc.wan);
    CHECK_EQ_STR(sc.dns, "rfc2136");
    CHECK(!sc.redis);
    CHECK_EQ_INT(sc.interval_ms, 50);
    CHECK_EQ_INT(sc.timeout_ms, 1500);
    CHECK_EQ_INT(sc.warmup_us, S(2));
    CHECK_EQ_INT(sc.duration_us, S(120));
    CHECK_EQ_INT(sc.settle_us, 500000);
    CHECK_EQ_INT(sc.expect.failover, 1);
    CHECK_EQ_INT(sc.expect.rto_max_us, S(90));
    CHECK_EQ_INT(sc.expect.lost_writes_max, 0);
    CHECK_EQ_INT(sc.expect.converge_us, S(30));
    REQUIRE(sc.n_steps == 15);

    const struct chaos_step *st = sc.steps;
    CHECK_EQ_INT(st[0].kind, CHAOS_STEP_NEMESIS);
    CHECK_EQ_INT(st[0].line, 18);
    CHECK_EQ_INT(st[0].at_us, S(5));
    CHECK(!st[0].relative);
    CHECK_EQ_INT(st[0].shape, CHAOS_SHAPE_ISOLATE);
    CHECK_EQ_INT(st[0].target, CHAOS_TARGET_PRIMARY);
    CHECK(st[0].failure); /* default: isolating the primary */

    CHECK_EQ_INT(st[1].kind, CHAOS_STEP_FAULT);
    CHECK_EQ_INT(st[1].line, 21);
    CHECK(st[1].relative);
    CHECK_EQ_INT(st[1].at_us, S(2));
    CHECK_EQ_STR(st[1].text, "us-east-2 -/- eu-west-1");
    CHECK_EQ_INT(st[1].target, CHAOS_TARGET_NONE);
    CHECK(!st[1].failure);

    CHECK_EQ_INT(st[2].kind, CHAOS_STEP_HEAL);
    CHECK(st[2].relative); /* no at: +0s */
    CHECK_EQ_INT(st[2].at_us, 0);

    CHECK_EQ_INT(st[3].kind, CHAOS_STEP_KILL);
    CHECK_EQ_STR(st[3].what, "coordinator");
    CHECK_EQ_INT(st[3].target, CHAOS_TARGET_LEADER);
    CHECK(!st[3].failure);

    CHECK_EQ_INT(st[4].kind, CHAOS_STEP_FREEZE);
    CHECK_EQ_STR(st[4].what, "postgres");
    CHECK_EQ_INT(st[4].target, CHAOS_TARGET_REGION);
    CHECK_EQ_INT(st[4].target_region, 1);
    CHECK(!st[4].failure); /* a region by name is not "the primary" */

    CHECK_EQ_INT(st[5].kind, CHAOS_STEP_THAW);
    CHECK_EQ_INT(st[5].line, 29);
    CHECK(!st[5].relative);
    CHECK_EQ_INT(st[5].at_us, S(40));

    CHECK_EQ_INT(st[6].kind, CHAOS_STEP_RESTART);
    CHECK_EQ_STR(st[6].what, "redis");
    CHECK_EQ_INT(st[6].target, CHAOS_TARGET_REPLICA);

    CHECK_EQ_INT(st[7].kind, CHAOS_STEP_FLAP);
    CHECK_EQ_INT(st[7].shape, CHAOS_SHAPE_ONE_WAY_FROM);
    CHECK_EQ_INT(st[7].target, CHAOS_TARGET_NEW_PRIMARY);
    CHECK_EQ_INT(st[7].down_us, 300000);
    CHECK_EQ_INT(st[7].up_us, 700000);
    CHECK_EQ_INT(st[7].for_us, S(10));

    CHECK_EQ_INT(st[8].kind, CHAOS_STEP_FAULT_POINT);
    CHECK_EQ_STR(st[8].point, "crash-after-decide");
    CHECK_EQ_INT(st[8].target, CHAOS_TARGET_LEADER);

    CHECK_EQ_INT(st[9].kind, CHAOS_STEP_DNS);
    CHECK_EQ_STR(st[9].what, "429");

    CHECK_EQ_INT(st[10].kind, CHAOS_STEP_WAIT);
    CHECK_EQ_STR(st[10].text, "failover-promoted");
    CHECK(st[10].what[0] != '\0' && strstr("failover-promoted", st[10].what) != NULL);
    CHECK_EQ_INT(st[10].timeout_us, S(90));

    CHECK_EQ_INT(st[11].kind, CHAOS_STEP_KILL);
    CHECK_EQ_STR(st[11].what, "dns");
    CHECK_EQ_INT(st[11].target, CHAOS_TARGET_NONE);

    CHECK_EQ_STR(st[12].what, "region");
    CHECK(st[12].failure); /* default: freezing the primary's region */

    CHECK_EQ_INT(st[13].shape, CHAOS_SHAPE_HALVES);
    CHECK_EQ_INT(st[13].target_region, 2);
    CHECK(st[13].failure);

    CHECK_EQ_INT(st[14].target, CHAOS_TARGET_OLD_PRIMARY);
    CHECK_EQ_INT(st[14].line, 50);
}

static void test_defaults(void)
{
    static struct chaos_scenario sc;
    char why[1024] = "";
    REQUIRE(load_fixture("minimal.yaml", &sc, why, sizeof why) == 0);
    CHECK_EQ_STR(sc.name, "minimal");
    CHECK_EQ_STR(sc.description, "");
    CHECK_EQ_INT(sc.seed, 1);
    CHECK(!sc.sync);
    CHECK(sc.fence);
    CHECK(!sc.wan);
    CHECK_EQ_STR(sc.dns, "powerdns");
    CHECK(sc.redis);
    CHECK_EQ_INT(sc.interval_ms, 20);
    CHECK_EQ_INT(sc.timeout_ms, 2000);
    CHECK_EQ_INT(sc.warmup_us, S(3));
    CHECK_EQ_INT(sc.duration_us, S(30));
    CHECK_EQ_INT(sc.settle_us, S(10));
    CHECK_EQ_INT(sc.expect.failover, -1);
    CHECK_EQ_INT(sc.expect.rto_max_us, 0);
    CHECK_EQ_INT(sc.expect.lost_writes_max, -1);
    CHECK_EQ_INT(sc.expect.converge_us, 0);
    REQUIRE(sc.n_steps == 1);
    CHECK_EQ_INT(sc.steps[0].kind, CHAOS_STEP_HEAL);
    CHECK_EQ_INT(sc.steps[0].line, 4);
    CHECK(sc.steps[0].relative);
    CHECK_EQ_INT(sc.steps[0].at_us, 0);
    CHECK(!sc.steps[0].failure);
}

/* Write text to TMPDIR/NAME.yaml and load it. */
static int load_text(const char *text, char *path, size_t path_size, struct chaos_scenario *sc,
                     char *why, size_t size)
{
    static unsigned counter;
    snprintf(path, path_size, "%s/case%u.yaml", tmpdir, counter++);
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return -2;
    }
    fputs(text, f);
    fclose(f);
    return chaos_scenario_load(path, regions, 3, sc, why, size);
}

/* Texts that parse. */
static void test_good_texts(void)
{
    static struct chaos_scenario sc;
    char path[512], why[1024] = "";
    REQUIRE(load_text("name: a\nduration: 1m\nsteps:\n  - at: +250ms\n    dns: down\n"
                      "expect:\n  lost_writes_max: unchecked\n  failover: false\n",
                      path, sizeof path, &sc, why, sizeof why) == 0);
    CHECK(sc.steps[0].relative);
    CHECK_EQ_INT(sc.steps[0].at_us, 250000);
    CHECK_EQ_STR(sc.steps[0].what, "down");
    CHECK_EQ_INT(sc.expect.lost_writes_max, -1);
    CHECK_EQ_INT(sc.expect.failover, 0);

    /* empty lab/workload mappings, a last target, a kill of the primary's postgres */
    REQUIRE(load_text("name: b-2\nlab:\nworkload:\nduration: 5s\nsteps:\n"
                      "  - kill: postgres\n    target: primary\n"
                      "  - restart: postgres\n    target: last\n",
                      path, sizeof path, &sc, why, sizeof why) == 0);
    CHECK(sc.steps[0].failure);
    CHECK_EQ_INT(sc.steps[1].target, CHAOS_TARGET_LAST);
    CHECK(!sc.steps[1].failure);

    /* a planned switchover, counted as the failure; a wait names its whole event */
    REQUIRE(load_text("name: c\nduration: 5s\nsteps:\n"
                      "  - switchover: true\n    target: replica\n    failure: true\n"
                      "  - wait: failover-promoted\n    timeout: 30s\n",
                      path, sizeof path, &sc, why, sizeof why) == 0);
    CHECK_EQ_INT(sc.steps[0].kind, CHAOS_STEP_SWITCHOVER);
    CHECK_EQ_INT(sc.steps[0].target, CHAOS_TARGET_REPLICA);
    CHECK(sc.steps[0].failure);
    CHECK_EQ_STR(sc.steps[1].what, "failover-promoted");
    CHECK_EQ_STR(chaos_step_kind_name(CHAOS_STEP_SWITCHOVER), "switchover");
}

struct bad_case {
    const char *text;
    const char *message; /* after "FILE:" */
};

static const struct bad_case bad_cases[] = {
    /* unknown keys */
    {"name: x\nduration: 30s\ncolour: red\nsteps:\n  - heal: true\n",
     "3: colour: unknown key; expected one of: name, description, seed, lab, workload, warmup, "
     "duration, settle, steps, expect"},
    {"name: x\nduration: 30s\nlab:\n  fencing: true\nsteps:\n  - heal: true\n",
     "4: lab.fencing: unknown key; expected one of: replication, fence, wan, dns, redis"},
    {"name: x\nduration: 30s\nsteps:\n  - kill: coordinator\n    target: leader\n    timeout: 5s\n",
     "6: steps[0].timeout: unknown key in a kill step; expected one of: kill, at, target, "
     "failure"},
    {"name: x\nduration: 30s\nsteps:\n  - heal: true\n    colour: red\n",
     "5: steps[0].colour: unknown key in a heal step; expected one of: heal, at"},
    /* two action keys, none */
    {"name: x\nduration: 30s\nsteps:\n  - heal: true\n  - kill: coordinator\n"
     "    freeze: coordinator\n    target: leader\n",
     "6: steps[1].freeze: a second action key (the step already has \"kill\" at line 5); a step "
     "has exactly one"},
    {"name: x\nduration: 30s\nsteps:\n  - at: 5s\n",
     "4: steps[0]: expected one action key (nemesis, fault, heal, kill, freeze, thaw, restart, "
     "flap, fault_point, dns, wait, switchover), got none"},
    /* missing parameters */
    {"name: x\nduration: 30s\nsteps:\n  - wait: failover-done\n",
     "4: steps[0].wait: missing required key \"timeout\""},
    {"name: x\nduration: 30s\nsteps:\n  - kill: coordinator\n",
     "4: steps[0].kill: missing required key \"target\""},
    {"name: x\nduration: 30s\nsteps:\n  - flap: isolate\n    target: primary\n    down: 1s\n"
     "    up: 1s\n",
     "4: steps[0].flap: missing required key \"for\""},
    {"name: x\nduration: 30s\nsteps:\n  - kill: dns\n    target: leader\n",
     "5: steps[0].kill: takes no target with dns"},
    /* durations */
    {"name: x\nduration: 30s\nsteps:\n  - at: 5x\n    heal: true\n",
     "4: steps[0].at: expected a time such as 5s, or +2s after the previous step, got \"5x\""},
    {"name: x\nwarmup: 5x\nduration: 30s\nsteps:\n  - heal: true\n",
     "2: warmup: expected a duration such as 250ms, 3s or 2m, got \"5x\""},
    {"name: x\nduration: 0s\nsteps:\n  - heal: true\n",
     "2: duration: expected a duration greater than 0, got \"0s\""},
    {"name: x\nduration: +3s\nsteps:\n  - heal: true\n",
     "2: duration: expected a duration such as 250ms, 3s or 2m, got \"+3s\""},
    {"name: x\nduration: 30s\nsteps:\n  - wait: settled\n    timeout: 1h\n",
     "5: steps[0].timeout: expected a duration such as 250ms, 3s or 2m, got \"1h\""},
    /* shapes and targets */
    {"name: x\nduration: 30s\nsteps:\n  - nemesis: sideways\n    target: primary\n",
     "4: steps[0].nemesis: unknown shape \"sideways\" (isolate, halves, random-halves, "
     "majority-ring, bridge, one-way-from, one-way-to)"},
    {"name: x\nduration: 30s\nsteps:\n  - heal: true\n  - heal: true\n  - kill: coordinator\n"
     "    target: mars\n",
     "7: steps[2].kill: unknown target \"mars\" (primary, leader, replica, new-primary, "
     "old-primary, last, us-east-2, eu-west-1, ap-south-1)"},
    {"name: x\nduration: 30s\nsteps:\n  - kill: pgbouncer\n    target: leader\n",
     "4: steps[0].kill: expected one of coordinator, postgres, region, redis, dns, got "
     "\"pgbouncer\""},
    {"name: x\nduration: 30s\nsteps:\n  - wait: failover-maybe\n    timeout: 5s\n",
     "4: steps[0].wait: expected one of failover-decided, failover-promoted, failover-done, "
     "settled, got \"failover-maybe\""},
    /* required top-level keys, steps */
    {"duration: 30s\nsteps:\n  - heal: true\n", "1: name: missing required key"},
    {"name: x\nsteps:\n  - heal: true\n", "1: duration: missing required key"},
    {"name: x\nduration: 30s\n", "1: steps: missing required key"},
    {"name: x\nduration: 30s\nsteps: []\n", "3: steps: expected 1 to 48 steps, got 0"},
    {"name: x\nduration: 30s\nsteps:\n", "3: steps: expected a sequence of steps, got nothing"},
    /* wrong types */
    {"name: x\nseed: seven\nduration: 30s\nsteps:\n  - heal: true\n",
     "2: seed: expected an integer from 0 to 18446744073709551615, got \"seven\""},
    {"name: x\nlab: 5\nduration: 30s\nsteps:\n  - heal: true\n",
     "2: lab: expected a mapping, got \"5\""},
    {"name: x\nduration: 30s\nsteps: heal\n",
     "3: steps: expected a sequence of steps, got \"heal\""},
    {"name: x\nduration: 30s\nsteps:\n  - heal\n",
     "4: steps[0]: expected a mapping with one action key, got \"heal\""},
    {"name: x\nlab:\n  fence: maybe\nduration: 30s\nsteps:\n  - heal: true\n",
     "3: lab.fence: expected true or false, got \"maybe\""},
    {"name: x\nlab:\n  replication: semi\nduration: 30s\nsteps:\n  - heal: true\n",
     "3: lab.replication: expected one of async, sync, got \"semi\""},
    {"name: x\nworkload:\n  interval_ms: 0\nduration: 30s\nsteps:\n  - heal: true\n",
     "3: workload.interval_ms: expected an integer from 1 to 10000, got \"0\""},
    {"name: x\nduration: 30s\nsteps:\n  - heal: true\nexpect:\n  failover: maybe\n",
     "6: expect.failover: expected one of false, true, any, got \"maybe\""},
    {"name: x\nduration: 30s\nsteps:\n  - heal: true\nexpect:\n  lost_writes_max: -3\n",
     "6: expect.lost_writes_max: expected an integer from 0 to 1000000000 or \"unchecked\", got "
     "\"-3\""},
    {"name: x\nduration: 30s\nsteps:\n  - heal: false\n",
     "4: steps[0].heal: expected true, got \"false\""},
    {"name: x\nduration: 30s\nsteps:\n  - fault: [a, b]\n",
     "4: steps[0].fault: expected a string, got a sequence"},
    {"name: x\nduration: 30s\nsteps:\n  - kill: coordinator\n    target: leader\n"
     "    failure: 1\n",
     "6: steps[0].failure: expected true or false, got \"1\""},
    {"name: Isolate_Primary\nduration: 30s\nsteps:\n  - heal: true\n",
     "1: name: expected a name of a-z, 0-9 and '-', got \"Isolate_Primary\""},
    {"name: x\nduration: 30s\nsteps:\n  - fault_point: Crash!\n    target: leader\n",
     "4: steps[0].fault_point: expected a fault point name of a-z, 0-9, '-' and '_', got "
     "\"Crash!\""},
    /* duplicates, documents */
    {"name: x\nduration: 30s\nname: y\nsteps:\n  - heal: true\n",
     "3: name: duplicate key (first set at line 1)"},
    {"name: x\nduration: 30s\nsteps:\n  - at: 1s\n    at: 2s\n    heal: true\n",
     "5: steps[0].at: duplicate key"},
    {"- name: x\n", "1: expected a mapping of scenario keys, got a sequence"},
    {"", "1: expected a mapping of scenario keys, got an empty document"},
    {"name: x\nduration: 30s\nsteps:\n  - heal: true\n---\nname: y\n",
     "6: expected a single YAML document"},
};

static void test_bad_texts(void)
{
    static struct chaos_scenario sc;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        char path[512], why[1024] = "", want[1536];
        CHECK_EQ_INT(load_text(bad_cases[i].text, path, sizeof path, &sc, why, sizeof why), -1);
        snprintf(want, sizeof want, "%s:%s", path, bad_cases[i].message);
        CHECK_EQ_STR(why, want);
    }
}

static void test_syntax_error(void)
{
    static struct chaos_scenario sc;
    char path[512], why[1024] = "", want[600];
    CHECK_EQ_INT(load_text("name: x\nduration: 30s\nsteps:\n  - heal: [true\n", path, sizeof path,
                           &sc, why, sizeof why),
                 -1);
    snprintf(want, sizeof want, "%s:5: invalid YAML: ", path);
    CHECK(strncmp(why, want, strlen(want)) == 0);
}

static void test_missing_file(void)
{
    static struct chaos_scenario sc;
    char why[1024] = "", path[512], want[600];
    snprintf(path, sizeof path, "%s/nope.yaml", tmpdir);
    CHECK_EQ_INT(chaos_scenario_load(path, regions, 3, &sc, why, sizeof why), -1);
    snprintf(want, sizeof want, "%s: No such file or directory", path);
    CHECK_EQ_STR(why, want);
}

static void test_too_many_steps(void)
{
    static struct chaos_scenario sc;
    static char text[8192];
    char path[512], why[1024] = "", want[600];
    size_t used = (size_t)snprintf(text, sizeof text, "name: x\nduration: 30s\nsteps:\n");
    for (int i = 0; i < CHAOS_MAX_STEPS + 1; i++) {
        used += (size_t)snprintf(text + used, sizeof text - used, "  - heal: true\n");
    }
    CHECK_EQ_INT(load_text(text, path, sizeof path, &sc, why, sizeof why), -1);
    snprintf(want, sizeof want, "%s:4: steps: expected 1 to %d steps, got %d", path,
             CHAOS_MAX_STEPS, CHAOS_MAX_STEPS + 1);
    CHECK_EQ_STR(why, want);
}

static void test_names(void)
{
    CHECK_EQ_STR(chaos_step_kind_name(CHAOS_STEP_FAULT_POINT), "fault_point");
    CHECK_EQ_STR(chaos_step_kind_name(CHAOS_STEP_WAIT), "wait");
    CHECK_EQ_STR(chaos_step_kind_name(CHAOS_STEP_FAULT), "fault");
    CHECK_EQ_STR(chaos_target_name(CHAOS_TARGET_NEW_PRIMARY), "new-primary");
    CHECK_EQ_STR(chaos_target_name(CHAOS_TARGET_OLD_PRIMARY), "old-primary");
    CHECK_EQ_STR(chaos_target_name(CHAOS_TARGET_REGION), "region");
    CHECK_EQ_STR(chaos_target_name(CHAOS_TARGET_NONE), "none");
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        fixtures = argv[1];
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_scenario.XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    TEST_RUN(test_full);
    TEST_RUN(test_defaults);
    TEST_RUN(test_good_texts);
    TEST_RUN(test_bad_texts);
    TEST_RUN(test_syntax_error);
    TEST_RUN(test_missing_file);
    TEST_RUN(test_too_many_steps);
    TEST_RUN(test_names);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    TEST_END();
}
