/*
 * The run report (fault-injection/report_out.c): a synthetic record of a 40 s run over three
 * regions (about 2000 writes, samples every 200 ms, a failover from us-east-2 to eu-west-1) and
 * checks made by hand are written into a fresh temporary directory; report.json is read back with
 * jansson and report.md searched for the verdict and every check.
 *
 * `test_report --write DIR [flap]` only writes that report into DIR (with `flap`: also a flap of
 * 20 intervals and an aborted failover): test_report_svg.py uses it to parse timeline.svg as XML.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chaos.h"
#include "tests/test.h"

#define T0    INT64_C(1764200000123000) /* 2025-11-26T23:33:20.123Z */
#define AT(s) (T0 + (int64_t)((s)*1e6))
#define RUN_S 40.0

struct fixture {
    struct chaos_record rec;
    struct chaos_checks checks;
    struct chaos_report_meta meta;
    size_t ok[3], fail[3], unknown[3];
};

/* Region r writes every `every` seconds; us-east-2's fail while it is isolated (10 s..25 s),
 * the few in flight at 10 s are unknown. */
static void add_ops(struct fixture *fx, unsigned r, double every)
{
    struct chaos_record *rec = &fx->rec;
    uint64_t seq = 1;
    for (double t = 0.05; t < RUN_S; t += every) {
        struct chaos_op *op = &rec->ops[rec->n_ops++];
        *op = (struct chaos_op){
            .region = r, .seq = seq++, .start_us = AT(t), .end_us = AT(t + 0.004)};
        op->result = CHAOS_OK;
        if (r == 0 && t >= 10 && t < 10.2) {
            op->result = CHAOS_UNKNOWN;
            snprintf(op->error, sizeof op->error, "timeout");
        } else if (r == 0 && t >= 10.2 && t < 25) {
            op->result = CHAOS_FAIL;
            snprintf(op->error, sizeof op->error, "25006 read-only");
        }
        fx->ok[r] += op->result == CHAOS_OK;
        fx->fail[r] += op->result == CHAOS_FAIL;
        fx->unknown[r] += op->result == CHAOS_UNKNOWN;
    }
}

static void add_samples(struct chaos_record *rec)
{
    for (double t = 0; t < RUN_S; t += 0.2) {
        struct chaos_sample *s = &rec->samples[rec->n_samples++];
        s->t_us = AT(t);
        for (unsigned i = 0; i < 3; i++) {
            s->leader[i] = t < 10 ? 0 : t < 11 ? -1 : 1;
            s->primary[i] = t < 12.5 ? 0 : 1;
            s->epoch[i] = t < 12.5 ? 2 : 3;
        }
        s->leader[0] = t >= 11 && t < 25 ? 0 : s->leader[0]; /* the isolated node's stale view */
        s->primary[0] = t >= 10 && t < 25 ? -1 : s->primary[0];
    }
}

static void add_event(struct chaos_record *rec, enum chaos_event_kind kind, double t, int region,
                      int from, uint64_t epoch)
{
    rec->events[rec->n_events++] = (struct chaos_event){
        .kind = kind, .t_us = AT(t), .region = (unsigned)region, .from = from, .epoch = epoch};
}

static void add_check(struct chaos_checks *c, const char *name, enum chaos_verdict v, double value,
                      double value2, const char *detail)
{
    struct chaos_check *k = &c->c[c->n++];
    snprintf(k->name, sizeof k->name, "%s", name);
    k->verdict = v;
    k->value = value;
    k->value2 = value2;
    snprintf(k->detail, sizeof k->detail, "%s", detail);
}

static void add_final(struct chaos_record *rec, const char *source, int primary, uint64_t epoch)
{
    struct chaos_final_view *v = &rec->finals[rec->n_finals++];
    snprintf(v->source, sizeof v->source, "%s", source);
    v->primary = primary;
    v->epoch = epoch;
    v->answered = primary >= 0;
}

static int fixture_init(struct fixture *fx)
{
    static const char *const names[] = {"us-east-2", "eu-west-1", "ap-south-1"};
    struct chaos_record *rec = &fx->rec;
    memset(fx, 0, sizeof *fx);
    rec->n_regions = 3;
    for (unsigned i = 0; i < 3; i++) {
        snprintf(rec->regions[i], sizeof rec->regions[i], "%s", names[i]);
    }
    rec->start_us = T0;
    rec->end_us = AT(RUN_S);
    rec->initial_primary = 0;
    rec->ops = calloc(4000, sizeof *rec->ops);
    rec->samples = calloc(400, sizeof *rec->samples);
    rec->events = calloc(16, sizeof *rec->events);
    rec->intervals = calloc(64, sizeof *rec->intervals);
    if (!rec->ops || !rec->samples || !rec->events || !rec->intervals) {
        return -1;
    }
    add_ops(fx, 0, 0.033);
    add_ops(fx, 1, 0.066);
    add_ops(fx, 2, 0.2);
    add_samples(rec);
    add_event(rec, CHAOS_EV_LEADER, 11.0, 1, -1, 5);
    add_event(rec, CHAOS_EV_DECIDED, 12.0, 1, 0, 3);
    add_event(rec, CHAOS_EV_AUTHORIZED, 12.5, 1, 0, 3);
    add_event(rec, CHAOS_EV_PROMOTED, 13.0, 1, 0, 3);
    add_event(rec, CHAOS_EV_NODE_PROMOTED_HERE, 13.1, 1, -1, 3);
    add_event(rec, CHAOS_EV_DONE, 14.25, 1, 0, 3);
    rec->intervals[0] = (struct chaos_interval){
        .start_us = AT(10), .end_us = AT(25), .label = "isolate us-east-2", .failure = true};
    rec->intervals[1] = (struct chaos_interval){
        .start_us = AT(30), .end_us = 0, .label = "eu-west-1 -> ap-south-1 delay 200ms & <more>"};
    strcat(rec->intervals[1].label, " \xc2"); /* "±" cut in half */
    rec->n_intervals = 2;
    add_final(rec, "coordinator us-east-2", 1, 3);
    add_final(rec, "coordinator eu-west-1", 1, 3);
    add_final(rec, "coordinator ap-south-1", 1, 3);
    add_final(rec, "dns", 1, 0);
    add_final(rec, "redis ap-south-1", -1, 0);

    add_check(&fx->checks, "lost-writes", CHAOS_PASS, 0, 0, "0 of 1650 acknowledged writes lost");
    add_check(&fx->checks, "split-brain", CHAOS_PASS, 0, 0, "one writable primary at a time");
    add_check(&fx->checks, "rto", CHAOS_FAILED, 14250, 10000,
              "RTO 14.25 s > rto_max 10 s | from \"isolate\" at t+10.0 s");
    add_check(&fx->checks, "write-gap", CHAOS_SKIPPED, 0, 0, "not applicable");
    add_check(&fx->checks, "convergence", CHAOS_PASS, 1200, 0, "every source agrees in 1.2 s");
    fx->checks.all_passed = false;

    fx->meta = (struct chaos_report_meta){.scenario = "isolate-primary",
                                          .file = "tests/chaos/scenarios/isolate-primary.yaml",
                                          .description = "Isolate the primary <us-east-2> & watch",
                                          .seed = 7,
                                          .mode = "proxy",
                                          .wan = false,
                                          .replication = "async",
                                          .fence = true};
    return 0;
}

/* A flap (20 intervals with one label: one row) and an aborted failover, for the SVG test. */
static void fixture_flap(struct fixture *fx)
{
    struct chaos_record *rec = &fx->rec;
    for (int i = 0; i < 20; i++) {
        struct chaos_interval *v = &rec->intervals[rec->n_intervals++];
        *v = (struct chaos_interval){.start_us = AT(31 + i * 0.4),
                                     .end_us = AT(31.15 + i * 0.4),
                                     .label = "flap isolate eu-west-1"};
    }
    add_event(rec, CHAOS_EV_DECIDED, 34.0, 2, 1, 4);
    add_event(rec, CHAOS_EV_ABORTED, 36.0, 2, -1, 4);
}

static void fixture_free(struct fixture *fx)
{
    free(fx->rec.ops);
    free(fx->rec.samples);
    free(fx->rec.events);
    free(fx->rec.intervals);
}

static char *slurp(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    char *buf = calloc(1, 4 << 20);
    if (buf != NULL) {
        size_t n = fread(buf, 1, (4 << 20) - 1, f);
        buf[n] = '\0';
    }
    fclose(f);
    return buf;
}

static bool exists(const char *dir, const char *name)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

static char tmpdir[256];

static void check_json_meta(json_t *root)
{
    json_t *sc = json_object_get(root, "scenario");
    CHECK_EQ_INT(json_integer_value(json_object_get(root, "format")), 1);
    CHECK_EQ_STR(json_string_value(json_object_get(sc, "name")), "isolate-primary");
    CHECK_EQ_STR(json_string_value(json_object_get(sc, "description")),
                 "Isolate the primary <us-east-2> & watch");
    CHECK_EQ_INT(json_integer_value(json_object_get(sc, "seed")), 7);
    CHECK_EQ_STR(json_string_value(json_object_get(sc, "mode")), "proxy");
    CHECK_EQ_STR(json_string_value(json_object_get(sc, "replication")), "async");
    CHECK(json_is_true(json_object_get(sc, "fence")));
    CHECK(json_is_false(json_object_get(sc, "wan")));
    CHECK_EQ_STR(json_string_value(json_object_get(root, "start")), "2025-11-26T23:33:20.123Z");
    CHECK_EQ_STR(json_string_value(json_object_get(root, "end")), "2025-11-26T23:34:00.123Z");
    CHECK(fabs(json_number_value(json_object_get(root, "duration_s")) - 40.0) < 1e-6);
    CHECK_EQ_STR(json_string_value(json_object_get(root, "verdict")), "fail");
    CHECK_EQ_STR(json_string_value(json_object_get(root, "initial_primary")), "us-east-2");
    CHECK_EQ_INT(json_array_size(json_object_get(root, "regions")), 3);
}

static void check_json_checks(json_t *root)
{
    json_t *checks = json_object_get(root, "checks");
    REQUIRE(json_array_size(checks) == 5);
    json_t *rto = json_array_get(checks, 2);
    CHECK_EQ_STR(json_string_value(json_object_get(rto, "name")), "rto");
    CHECK_EQ_STR(json_string_value(json_object_get(rto, "verdict")), "fail");
    CHECK(fabs(json_number_value(json_object_get(rto, "value")) - 14250) < 1e-6);
    CHECK(fabs(json_number_value(json_object_get(rto, "value2")) - 10000) < 1e-6);
    CHECK_CONTAINS(json_string_value(json_object_get(rto, "detail")), "rto_max 10 s");
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(checks, 0), "verdict")), "pass");
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(checks, 3), "verdict")),
                 "skipped");
}

static void check_json_writes(json_t *root, const struct fixture *fx)
{
    json_t *writes = json_object_get(root, "writes");
    size_t total = 0;
    CHECK_EQ_INT(json_object_size(writes), 3);
    for (unsigned r = 0; r < 3; r++) {
        json_t *w = json_object_get(writes, fx->rec.regions[r]);
        CHECK_EQ_INT(json_integer_value(json_object_get(w, "ok")), fx->ok[r]);
        CHECK_EQ_INT(json_integer_value(json_object_get(w, "fail")), fx->fail[r]);
        CHECK_EQ_INT(json_integer_value(json_object_get(w, "unknown")), fx->unknown[r]);
        total += (size_t)(json_integer_value(json_object_get(w, "ok")) +
                          json_integer_value(json_object_get(w, "fail")) +
                          json_integer_value(json_object_get(w, "unknown")));
    }
    CHECK_EQ_INT(total, fx->rec.n_ops);
    CHECK(fx->fail[0] > 100 && fx->unknown[0] > 0);
}

static void check_json_timeline(json_t *root)
{
    json_t *events = json_object_get(root, "events"), *faults = json_object_get(root, "faults");
    REQUIRE(json_array_size(events) == 6);
    json_t *d = json_array_get(events, 1);
    CHECK_EQ_STR(json_string_value(json_object_get(d, "kind")), "failover-decided");
    CHECK(fabs(json_number_value(json_object_get(d, "t")) - 12.0) < 1e-6);
    CHECK_EQ_STR(json_string_value(json_object_get(d, "region")), "eu-west-1");
    CHECK_EQ_STR(json_string_value(json_object_get(d, "from")), "us-east-2");
    CHECK_EQ_INT(json_integer_value(json_object_get(d, "epoch")), 3);
    CHECK(json_is_null(json_object_get(json_array_get(events, 0), "from")));
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(events, 0), "kind")),
                 "leader-elected");
    REQUIRE(json_array_size(faults) == 2);
    json_t *f0 = json_array_get(faults, 0), *f1 = json_array_get(faults, 1);
    CHECK_EQ_STR(json_string_value(json_object_get(f0, "label")), "isolate us-east-2");
    CHECK(fabs(json_number_value(json_object_get(f0, "start_s")) - 10) < 1e-6);
    CHECK(fabs(json_number_value(json_object_get(f0, "end_s")) - 25) < 1e-6);
    CHECK(json_is_true(json_object_get(f0, "failure")));
    CHECK(json_is_null(json_object_get(f1, "end_s")));
    CHECK_EQ_STR(json_string_value(json_object_get(f1, "label")),
                 "eu-west-1 -> ap-south-1 delay 200ms & <more> ?");
    CHECK(json_is_false(json_object_get(f1, "failure")));
}

static void check_json_finals(json_t *root)
{
    json_t *finals = json_object_get(root, "final");
    REQUIRE(json_array_size(finals) == 5);
    json_t *dns = json_array_get(finals, 3), *redis = json_array_get(finals, 4);
    CHECK_EQ_STR(json_string_value(json_object_get(dns, "source")), "dns");
    CHECK_EQ_STR(json_string_value(json_object_get(dns, "primary")), "eu-west-1");
    CHECK(json_is_true(json_object_get(dns, "answered")));
    CHECK(json_is_null(json_object_get(redis, "primary")));
    CHECK(json_is_false(json_object_get(redis, "answered")));
}

static void test_json(void)
{
    static struct fixture fx;
    json_error_t err;
    REQUIRE(fixture_init(&fx) == 0);
    CHECK(fx.rec.n_ops > 1800 && fx.rec.n_ops < 2200);
    REQUIRE(chaos_report_write(tmpdir, &fx.meta, &fx.rec, &fx.checks) == 0);
    CHECK(exists(tmpdir, "report.json") && exists(tmpdir, "report.md"));
    CHECK(exists(tmpdir, "timeline.svg"));
    CHECK(!exists(tmpdir, "report.json.tmp") && !exists(tmpdir, "timeline.svg.tmp"));
    char path[512];
    snprintf(path, sizeof path, "%s/report.json", tmpdir);
    json_t *root = json_load_file(path, 0, &err);
    if (root == NULL) {
        fprintf(stderr, "  %s:%d: %s\n", path, err.line, err.text);
    }
    if (root != NULL) {
        check_json_meta(root);
        check_json_checks(root);
        check_json_writes(root, &fx);
        check_json_timeline(root);
        check_json_finals(root);
    }
    CHECK(root != NULL);
    json_decref(root);
    fixture_free(&fx);
}

static void test_markdown(void)
{
    static struct fixture fx;
    REQUIRE(fixture_init(&fx) == 0);
    REQUIRE(chaos_report_write(tmpdir, &fx.meta, &fx.rec, &fx.checks) == 0);
    char *md = slurp(tmpdir, "report.md");
    REQUIRE(md != NULL);
    CHECK_CONTAINS(md, "# Chaos run isolate-primary: FAIL");
    CHECK_CONTAINS(md, "Isolate the primary <us-east-2> & watch");
    for (unsigned i = 0; i < fx.checks.n; i++) {
        CHECK_CONTAINS(md, fx.checks.c[i].name);
    }
    CHECK_CONTAINS(md, "| rto | **FAIL** | 14250 ms / 10000 | RTO 14.25 s > rto_max 10 s \\| from");
    CHECK_CONTAINS(md, "| write-gap | skipped | - |");
    CHECK_CONTAINS(md, "| us-east-2 |");
    CHECK_CONTAINS(md, "- t+12.000 s: failover-decided epoch 3: us-east-2 → eu-west-1");
    CHECK_CONTAINS(md, "- t+10.000 s: fault on: `isolate us-east-2` (failure)");
    CHECK_CONTAINS(md, "- t+25.000 s: fault off: `isolate us-east-2`");
    CHECK_CONTAINS(md, "- t+14.250 s: failover-done epoch 3 eu-west-1");
    CHECK_CONTAINS(md, "| redis ap-south-1 | no | - | 0 |");
    CHECK_CONTAINS(md, "timeline.svg");
    /* the timeline is in time order */
    CHECK(strstr(md, "t+10.000 s") < strstr(md, "t+11.000 s"));
    CHECK(strstr(md, "t+14.250 s") < strstr(md, "t+25.000 s"));
    free(md);

    fx.checks.all_passed = true; /* written again over the same files */
    fx.checks.c[2].verdict = CHAOS_PASS;
    REQUIRE(chaos_report_write(tmpdir, &fx.meta, &fx.rec, &fx.checks) == 0);
    md = slurp(tmpdir, "report.md");
    CHECK_CONTAINS(md, "# Chaos run isolate-primary: PASS");
    free(md);
    fixture_free(&fx);
}

static void test_svg_basics(void)
{
    static struct fixture fx;
    REQUIRE(fixture_init(&fx) == 0);
    REQUIRE(chaos_report_write(tmpdir, &fx.meta, &fx.rec, &fx.checks) == 0);
    char *svg = slurp(tmpdir, "timeline.svg");
    REQUIRE(svg != NULL);
    CHECK_CONTAINS(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\"");
    CHECK_CONTAINS(svg, "id=\"lane-leader\"");
    CHECK_CONTAINS(svg, "id=\"lane-primary\"");
    CHECK_CONTAINS(svg, "id=\"lane-faults\"");
    CHECK_CONTAINS(svg, "id=\"lane-writes-ap-south-1\"");
    CHECK_CONTAINS(svg, "delay 200ms &amp; &lt;more&gt;");
    CHECK_CONTAINS(svg, "decided e3 → eu-west-1");
    CHECK(strstr(svg, "<more>") == NULL);
    free(svg);
    fixture_free(&fx);
}

/* An empty record (no samples, ops or events) still gives three well-formed files. */
static void test_empty_record(void)
{
    struct chaos_record rec = {.n_regions = 1, .start_us = T0, .end_us = T0, .initial_primary = -1};
    struct chaos_checks checks = {.n = 0, .all_passed = true};
    struct chaos_report_meta meta = {.scenario = "empty"};
    char dir[300];
    snprintf(rec.regions[0], sizeof rec.regions[0], "solo");
    snprintf(dir, sizeof dir, "%s/empty", tmpdir);
    REQUIRE(chaos_report_write(dir, &meta, &rec, &checks) == 0);
    char *md = slurp(dir, "report.md");
    CHECK_CONTAINS(md, "PASS");
    CHECK_CONTAINS(md, "(no events)");
    free(md);
    CHECK(exists(dir, "timeline.svg"));
}

static void test_unwritable(void)
{
    static struct fixture fx;
    char dir[300];
    REQUIRE(fixture_init(&fx) == 0);
    snprintf(dir, sizeof dir, "%s/report.json/sub", tmpdir); /* a file in the way */
    CHECK_EQ_INT(chaos_report_write(dir, &fx.meta, &fx.rec, &fx.checks), -1);
    fixture_free(&fx);
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--write") == 0) { /* --write DIR [flap] */
        static struct fixture fx;
        int rv = fixture_init(&fx);
        if (rv == 0 && argc == 4 && strcmp(argv[3], "flap") == 0) {
            fixture_flap(&fx);
        }
        rv = rv == 0 && chaos_report_write(argv[2], &fx.meta, &fx.rec, &fx.checks) == 0 ? 0 : 1;
        fixture_free(&fx);
        return rv;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_report.XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    TEST_RUN(test_json);
    TEST_RUN(test_markdown);
    TEST_RUN(test_svg_basics);
    TEST_RUN(test_empty_record);
    TEST_RUN(test_unwritable);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    TEST_END();
}
