/*
 * The checkers (fault-injection/checkers.c) on recorded histories, and the history files
 * (history.c). Usage: test_checkers DIR, DIR holding the cases of histories/ (make_histories.py
 * there says how they were made): CASE.json names a history.jsonl and a rows.jsonl, and gives
 * the events, failure intervals, final views and expectations of a run, and the verdict every
 * check must give. Each case is one test; so are the malformed-file tables and a 50k-op history
 * that must be checked quickly.
 */
#define _GNU_SOURCE
#include <jansson.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "chaos.h"
#include "../../test.h"
#include "workload.h"

static const char *cases_dir = "tests/chaos/checkers/histories";

static const char *const check_names[] = {"lost-writes", "split-brain",    "rto",      "write-gap",
                                          "convergence", "false-failover", "decisions"};

/* ---- loading a case ---- */

static int region_of(const struct chaos_record *rec, json_t *v)
{
    return json_is_string(v) ? chaos_region_find(rec, json_string_value(v)) : -1;
}

static int event_kind(const char *s, enum chaos_event_kind *out)
{
    static const struct {
        const char *name;
        enum chaos_event_kind kind;
    } kinds[] = {{"decided", CHAOS_EV_DECIDED},
                 {"promoted", CHAOS_EV_PROMOTED},
                 {"done", CHAOS_EV_DONE},
                 {"aborted", CHAOS_EV_ABORTED},
                 {"authorized", CHAOS_EV_AUTHORIZED},
                 {"node-promoted-here", CHAOS_EV_NODE_PROMOTED_HERE},
                 {"leader", CHAOS_EV_LEADER}};
    for (size_t i = 0; s != NULL && i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(s, kinds[i].name) == 0) {
            *out = kinds[i].kind;
            return 0;
        }
    }
    return -1;
}

static int load_events(struct chaos_record *rec, json_t *arr)
{
    rec->n_events = json_array_size(arr);
    rec->events = calloc(rec->n_events + 1, sizeof *rec->events);
    for (size_t i = 0; i < rec->n_events; i++) {
        json_t *e = json_array_get(arr, i);
        struct chaos_event *ev = &rec->events[i];
        int r = region_of(rec, json_object_get(e, "region"));
        if (r < 0 || event_kind(json_string_value(json_object_get(e, "kind")), &ev->kind) != 0)
            return -1;
        ev->region = (unsigned)r;
        ev->t_us = json_integer_value(json_object_get(e, "t_us"));
        ev->epoch = json_integer_value(json_object_get(e, "epoch"));
        ev->from = region_of(rec, json_object_get(e, "from"));
    }
    return 0;
}

static void load_intervals(struct chaos_record *rec, json_t *arr)
{
    rec->n_intervals = json_array_size(arr);
    rec->intervals = calloc(rec->n_intervals + 1, sizeof *rec->intervals);
    for (size_t i = 0; i < rec->n_intervals; i++) {
        json_t *v = json_array_get(arr, i);
        struct chaos_interval *iv = &rec->intervals[i];
        iv->start_us = json_integer_value(json_object_get(v, "start_us"));
        iv->end_us = json_integer_value(json_object_get(v, "end_us"));
        iv->failure = json_is_true(json_object_get(v, "failure"));
        snprintf(iv->label, sizeof iv->label, "%s", json_string_value(json_object_get(v, "label")));
    }
}

static void load_finals(struct chaos_record *rec, json_t *arr)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        struct chaos_final_view *f = &rec->finals[rec->n_finals++];
        snprintf(f->source, sizeof f->source, "%s",
                 json_string_value(json_object_get(v, "source")));
        f->primary = region_of(rec, json_object_get(v, "primary"));
        f->answered = f->primary >= 0;
        f->epoch = json_integer_value(json_object_get(v, "epoch"));
    }
}

static int load_case(json_t *doc, struct chaos_record *rec, struct chaos_expect *ex, char *why,
                     size_t why_size)
{
    char path[1024];
    size_t i;
    json_t *v;
    memset(rec, 0, sizeof *rec);
    json_array_foreach(json_object_get(doc, "regions"), i, v)
        snprintf(rec->regions[rec->n_regions++], CHAOS_NAME_MAX, "%s", json_string_value(v));
    rec->initial_primary = region_of(rec, json_object_get(doc, "initial_primary"));
    rec->start_us = json_integer_value(json_object_get(doc, "start_us"));
    rec->end_us = json_integer_value(json_object_get(doc, "end_us"));
    snprintf(path, sizeof path, "%s/%s", cases_dir,
             json_string_value(json_object_get(doc, "history")));
    if (chaos_history_load(path, rec, why, why_size) != 0)
        return -1;
    json_t *rows = json_object_get(doc, "rows");
    if (json_is_string(rows)) {
        snprintf(path, sizeof path, "%s/%s", cases_dir, json_string_value(rows));
        if (chaos_rows_load(path, rec, why, why_size) != 0)
            return -1;
    }
    if (load_events(rec, json_object_get(doc, "events")) != 0) {
        snprintf(why, why_size, "bad event");
        return -1;
    }
    load_intervals(rec, json_object_get(doc, "intervals"));
    load_finals(rec, json_object_get(doc, "finals"));
    json_t *e = json_object_get(doc, "expect");
    ex->failover = (int)json_integer_value(json_object_get(e, "failover"));
    ex->rto_max_us = json_integer_value(json_object_get(e, "rto_max_us"));
    ex->lost_writes_max = (long)json_integer_value(json_object_get(e, "lost_writes_max"));
    ex->converge_us = 0;
    return 0;
}

/* ---- checking a case ---- */

static void check_case(json_t *doc, const struct chaos_checks *out)
{
    json_t *want = json_object_get(doc, "want"), *values = json_object_get(doc, "want_value");
    json_t *details = json_object_get(doc, "want_detail");
    bool all = true;
    CHECK_EQ_INT(out->n, 7);
    for (unsigned i = 0; i < out->n && i < 7; i++) {
        const struct chaos_check *c = &out->c[i];
        CHECK_EQ_STR(c->name, check_names[i]);
        const char *w = json_string_value(json_object_get(want, c->name));
        CHECK_EQ_STR(chaos_verdict_name(c->verdict), w);
        all &= c->verdict != CHAOS_FAILED;
        json_t *value = json_object_get(values, c->name);
        if (value != NULL &&
            (long long)(c->value * 10) != (long long)(json_number_value(value) * 10))
            CHECK_EQ_INT(c->value * 10, json_number_value(value) * 10);
        const char *d = json_string_value(json_object_get(details, c->name));
        if (d != NULL)
            CHECK_CONTAINS(c->detail, d);
        if (w == NULL || strcmp(chaos_verdict_name(c->verdict), w) != 0 || d != NULL)
            fprintf(stderr, "    %s %s: %s\n", c->name, chaos_verdict_name(c->verdict), c->detail);
    }
    CHECK(out->all_passed == all);
}

static void run_case(const char *name)
{
    char path[1024], why[512];
    json_error_t err;
    snprintf(path, sizeof path, "%s/%s.json", cases_dir, name);
    json_t *doc = json_load_file(path, 0, &err);
    if (doc == NULL)
        fprintf(stderr, "  %s: %s\n", path, err.text);
    REQUIRE(doc != NULL);
    struct chaos_record rec;
    struct chaos_expect ex;
    struct chaos_checks out;
    int rc = load_case(doc, &rec, &ex, why, sizeof why);
    if (rc != 0)
        fprintf(stderr, "  %s: %s\n", name, why);
    CHECK_EQ_INT(rc, 0);
    if (rc == 0) {
        CHECK(rec.n_ops > 100);
        chaos_check_all(&rec, &ex, &out);
        check_case(doc, &out);
    }
    chaos_record_free(&rec);
    json_decref(doc);
}

#define CASE(name)                                                                                 \
    static void name(void)                                                                         \
    {                                                                                              \
        run_case(#name);                                                                           \
    }
CASE(clean_failover)
CASE(lost_ack)
CASE(lost_ack_async)
CASE(failed_present)
CASE(readback_failed)
CASE(split_brain_a)
CASE(split_brain_b)
CASE(switchback)
CASE(handover)
CASE(rto_over_bound)
CASE(failover_expected_none)
CASE(false_failover)
CASE(no_convergence)
CASE(promotion_before_decision)
CASE(two_promotions_one_epoch)
CASE(no_ack)

/* ---- history files ---- */

static void three_regions(struct chaos_record *rec)
{
    memset(rec, 0, sizeof *rec);
    rec->n_regions = 3;
    snprintf(rec->regions[0], CHAOS_NAME_MAX, "us-east-2");
    snprintf(rec->regions[1], CHAOS_NAME_MAX, "eu-west-1");
    snprintf(rec->regions[2], CHAOS_NAME_MAX, "ap-south-1");
}

/* A fresh directory with FILE holding `text`; path into out. */
static void write_temp(const char *text, char *dir, size_t dir_size, char *out, size_t size)
{
    snprintf(dir, dir_size, "/tmp/test-checkers-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        out[0] = '\0';
        return;
    }
    snprintf(out, size, "%s/file.jsonl", dir);
    FILE *f = fopen(out, "w");
    if (f != NULL) {
        fputs(text, f);
        fclose(f);
    }
}

static void remove_temp(const char *dir, const char *path)
{
    unlink(path);
    rmdir(dir);
}

#define GOOD                                                                                       \
    "{\"region\":\"us-east-2\",\"seq\":1,\"start_us\":10,\"end_us\":20,\"result\":\"ok\"}\n"

static void malformed_history(void)
{
    static const struct {
        const char *line, *reason;
    } bad[] = {
        {"{\"region\":\"us-east-2\",\n", "not JSON"},
        {"[1,2]\n", "not a JSON object"},
        {"{\"seq\":1,\"start_us\":1,\"end_us\":2,\"result\":\"ok\"}\n", "\"region\""},
        {"{\"region\":\"mars-1\",\"seq\":1,\"start_us\":1,\"end_us\":2,\"result\":\"ok\"}\n",
         "unknown region"},
        {"{\"region\":\"us-east-2\",\"seq\":0,\"start_us\":1,\"end_us\":2,\"result\":\"ok\"}\n",
         "\"seq\" is 0"},
        {"{\"region\":\"us-east-2\",\"seq\":\"1\",\"start_us\":1,\"end_us\":2,\"result\":\"ok\"}\n",
         "\"seq\" missing or not an integer"},
        {"{\"region\":\"us-east-2\",\"seq\":1,\"start_us\":5,\"end_us\":2,\"result\":\"ok\"}\n",
         "end_us before start_us"},
        {"{\"region\":\"us-east-2\",\"seq\":1,\"start_us\":1,\"end_us\":2,\"result\":\"maybe\"}\n",
         "\"result\" must be"},
        {"{\"region\":\"us-east-2\",\"seq\":1,\"start_us\":1,\"end_us\":2,\"result\":\"ok\","
         "\"error\":3}\n",
         "\"error\" not a string"},
        {"{\"region\":\"us-east-2\",\"seq\":1,\"start_us\":1}\n", "\"end_us\" missing"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char dir[64], path[128], text[512], why[512] = "", want[200];
        struct chaos_record rec;
        three_regions(&rec);
        snprintf(text, sizeof text, GOOD "%s" GOOD, bad[i].line);
        write_temp(text, dir, sizeof dir, path, sizeof path);
        CHECK_EQ_INT(chaos_history_load(path, &rec, why, sizeof why), -1);
        snprintf(want, sizeof want, "%s:2: ", path);
        CHECK_CONTAINS(why, want);
        CHECK_CONTAINS(why, bad[i].reason);
        CHECK_EQ_INT(rec.n_ops, 0);
        chaos_record_free(&rec);
        remove_temp(dir, path);
    }
}

static void torn_last_line(void)
{
    char dir[64], path[128], why[512] = "";
    struct chaos_record rec;
    three_regions(&rec);
    /* SIGKILLed while writing its third line: the torn line without a newline is ignored */
    write_temp(GOOD "\n" GOOD "{\"region\":\"us-ea", dir, sizeof dir, path, sizeof path);
    CHECK_EQ_INT(chaos_history_load(path, &rec, why, sizeof why), 0);
    CHECK_EQ_INT(rec.n_ops, 2);
    chaos_record_free(&rec);
    remove_temp(dir, path);
    /* the same torn text followed by a newline is no torn line: an error */
    write_temp(GOOD "{\"region\":\"us-ea\n" GOOD, dir, sizeof dir, path, sizeof path);
    CHECK_EQ_INT(chaos_history_load(path, &rec, why, sizeof why), -1);
    CHECK_CONTAINS(why, ":2: not JSON");
    chaos_record_free(&rec);
    remove_temp(dir, path);
    CHECK_EQ_INT(chaos_history_load("/nonexistent/h.jsonl", &rec, why, sizeof why), -1);
    CHECK_CONTAINS(why, "/nonexistent/h.jsonl: ");
}

static void rows_files(void)
{
    char dir[64], path[128], why[512] = "";
    struct chaos_record rec;
    three_regions(&rec);
    write_temp("{\"region\":\"eu-west-1\",\"seq\":3}\n{\"region\":\"us-east-2\",\"seq\":9}\n"
               "{\"region\":\"us-east-2\",\"seq\":2}\n",
               dir, sizeof dir, path, sizeof path);
    CHECK_EQ_INT(chaos_rows_load(path, &rec, why, sizeof why), 0);
    CHECK(rec.rows_read);
    REQUIRE(rec.n_rows == 3);
    CHECK_EQ_INT(rec.rows[0].region, 0);
    CHECK_EQ_INT(rec.rows[0].seq, 2);
    CHECK_EQ_INT(rec.rows[2].region, 1);
    CHECK(chaos_rows_has(&rec, 0, 9));
    CHECK(chaos_rows_has(&rec, 1, 3));
    CHECK(!chaos_rows_has(&rec, 1, 9));
    CHECK(!chaos_rows_has(&rec, 2, 3));
    remove_temp(dir, path);
    write_temp("{\"region\":\"eu-west-1\",\"seq\":3}\n{\"region\":\"eu-west-1\",\"seq\":-3}\n", dir,
               sizeof dir, path, sizeof path);
    CHECK_EQ_INT(chaos_rows_load(path, &rec, why, sizeof why), -1);
    CHECK_CONTAINS(why, ":2: \"seq\" is -3");
    CHECK(!rec.rows_read);
    CHECK_EQ_INT(rec.n_rows, 0);
    chaos_record_free(&rec);
    remove_temp(dir, path);
}

static void write_and_read_back(void)
{
    char dir[64], path[128], why[512] = "";
    struct chaos_record rec;
    three_regions(&rec);
    write_temp("", dir, sizeof dir, path, sizeof path);
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL);
    struct chaos_op ops[3] = {
        {.region = 0, .seq = 1, .start_us = 100, .end_us = 105, .result = CHAOS_OK},
        {.region = 1,
         .seq = 7,
         .start_us = 200,
         .end_us = 201,
         .result = CHAOS_FAIL,
         .error = "25006 cannot \"execute\" INSERT \xc3"},
        {.region = 2,
         .seq = 9,
         .start_us = 300,
         .end_us = 2300,
         .result = CHAOS_UNKNOWN,
         .error = "timeout: no answer within 2000 ms"},
    };
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(chaos_history_write_op(f, &rec, &ops[i]), 0);
    struct chaos_op bad = {.region = 5, .seq = 1};
    CHECK_EQ_INT(chaos_history_write_op(f, &rec, &bad), -1);
    fclose(f);
    CHECK_EQ_INT(chaos_history_load(path, &rec, why, sizeof why), 0);
    REQUIRE(rec.n_ops == 3);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(rec.ops[i].region, ops[i].region);
        CHECK_EQ_INT(rec.ops[i].seq, ops[i].seq);
        CHECK_EQ_INT(rec.ops[i].start_us, ops[i].start_us);
        CHECK_EQ_INT(rec.ops[i].end_us, ops[i].end_us);
        CHECK_EQ_INT(rec.ops[i].result, ops[i].result);
    }
    CHECK_EQ_STR(rec.ops[1].error, "25006 cannot \"execute\" INSERT ?");
    CHECK_EQ_STR(chaos_result_name(CHAOS_UNKNOWN), "unknown");
    CHECK_EQ_STR(chaos_verdict_name(CHAOS_SKIPPED), "SKIPPED");
    chaos_record_free(&rec);
    remove_temp(dir, path);
}

/* ---- a long history ---- */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* 60,000 ops over 400 s: a failover at 200 s; the checks must take well under a second each. */
static void long_history(void)
{
    struct chaos_record rec;
    struct chaos_expect ex = {.failover = 1, .rto_max_us = 0, .lost_writes_max = 0};
    struct chaos_checks out;
    three_regions(&rec);
    rec.initial_primary = 0;
    rec.start_us = 1000000;
    rec.n_ops = 60000;
    rec.ops = calloc(rec.n_ops, sizeof *rec.ops);
    REQUIRE(rec.ops != NULL);
    for (size_t i = 0; i < rec.n_ops; i++) {
        struct chaos_op *op = &rec.ops[i];
        op->region = (unsigned)(i % 3);
        op->seq = i / 3 + 1;
        op->start_us = rec.start_us + (int64_t)(i / 3) * 20000;
        op->end_us = op->start_us + 3000;
        bool primary = op->start_us < 200000000 ? op->region == 0 : op->region == 1;
        op->result = primary ? CHAOS_OK : CHAOS_FAIL;
    }
    struct chaos_event ev[2] = {
        {.kind = CHAOS_EV_DECIDED, .t_us = 200000000, .region = 1, .from = 0, .epoch = 2},
        {.kind = CHAOS_EV_PROMOTED, .t_us = 200000100, .region = 1, .from = 0, .epoch = 2}};
    rec.events = malloc(sizeof ev);
    REQUIRE(rec.events != NULL);
    memcpy(rec.events, ev, sizeof ev);
    rec.n_events = 2;
    double t0 = mono_s();
    chaos_check_all(&rec, &ex, &out);
    double took = mono_s() - t0;
    CHECK(took < 1.0);
    CHECK_EQ_STR(chaos_verdict_name(out.c[1].verdict), "PASS");
    CHECK_EQ_STR(chaos_verdict_name(out.c[0].verdict), "SKIPPED");
    /* the old primary acknowledges one more write after the promotion: caught */
    rec.ops[30000].result = CHAOS_OK; /* region 0, start 200 s */
    rec.ops[30000].start_us = 200000200;
    chaos_check_all(&rec, &ex, &out);
    CHECK_EQ_STR(chaos_verdict_name(out.c[1].verdict), "FAILED");
    CHECK(out.c[1].value >= 1);
    chaos_record_free(&rec);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        cases_dir = argv[1];
    TEST_RUN(clean_failover);
    TEST_RUN(lost_ack);
    TEST_RUN(lost_ack_async);
    TEST_RUN(failed_present);
    TEST_RUN(readback_failed);
    TEST_RUN(split_brain_a);
    TEST_RUN(split_brain_b);
    TEST_RUN(switchback);
    TEST_RUN(handover);
    TEST_RUN(rto_over_bound);
    TEST_RUN(failover_expected_none);
    TEST_RUN(false_failover);
    TEST_RUN(no_convergence);
    TEST_RUN(promotion_before_decision);
    TEST_RUN(two_promotions_one_epoch);
    TEST_RUN(no_ack);
    TEST_RUN(malformed_history);
    TEST_RUN(torn_last_line);
    TEST_RUN(rows_files);
    TEST_RUN(write_and_read_back);
    TEST_RUN(long_history);
    TEST_END();
}
