/*
 * Operator hooks (coordinator/hooks.c) with real programs and a real HTTP server.
 *
 *   test_hooks HELPERS_DIR OUT_DIR WEBHOOK_PORT CLOSED_PORT
 *
 * HELPERS_DIR holds the shell hooks written for this test (hook_record.sh, hook_veto.sh,
 * hook_hang.sh); OUT_DIR is a fresh directory where they write what they saw; test_hooks.py runs
 * the webhook receiver on 127.0.0.1:WEBHOOK_PORT (paths /ok, /flaky, /notfound, /retry-after) and
 * checks afterwards what it received; nothing listens on CLOSED_PORT.
 *
 * Each case runs its own loop with a 10 ms ticker beside the hooks and waits for callbacks by
 * turning the loop (never by sleeping); "late" is how much the ticker was ever late, i.e. how
 * long the loop was stalled. Prints "N passed, M failed".
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "afc/hooks.h"
#include "afc/http_client.h"
#include "afc/log.h"
#include "tests/test.h"

#define TICK_MS     10
#define LATE_MAX_MS 250 /* generous: a stalled loop shows seconds */

static const char *helpers, *out_dir;
static unsigned webhook_port, closed_port;

struct fixture {
    uv_loop_t loop;
    uv_timer_t ticker;
    struct afc_hooks *h;
    struct afc_http_client *http;
    uint64_t last_tick_ns, max_late_ns;
    bool hooks_closed;
};

struct done {
    int calls;
    uint64_t at_ms; /* loop time of the callback */
    struct afc_hook_result res;
    struct afc_hook_verdict verdict;
    struct afc_webhook_report rep;
};

static void tick_cb(uv_timer_t *t)
{
    struct fixture *fx = t->data;
    uint64_t now = uv_hrtime();
    if (fx->last_tick_ns != 0) {
        uint64_t gap = now - fx->last_tick_ns, expected = (uint64_t)TICK_MS * 1000000;
        if (gap > expected && gap - expected > fx->max_late_ns) {
            fx->max_late_ns = gap - expected;
        }
    }
    fx->last_tick_ns = now;
}

static char *helper(const char *name)
{
    static char paths[4][512];
    static unsigned next;
    char *p = paths[next++ % 4];
    snprintf(p, sizeof paths[0], "%s/%s", helpers, name);
    return p;
}

static int fixture_start(struct fixture *fx, struct afc_hooks_config *cfg)
{
    static const char *const pass[] = {"PATH", "HOOK_OUT", "HOOK_SLEEP", NULL};
    struct afc_err err = {0};
    memset(fx, 0, sizeof *fx);
    uv_loop_init(&fx->loop);
    uv_timer_init(&fx->loop, &fx->ticker);
    fx->ticker.data = fx;
    uv_timer_start(&fx->ticker, tick_cb, TICK_MS, TICK_MS);
    if (cfg->n_webhook_urls > 0) {
        fx->http = afc_http_client_new(&fx->loop);
        cfg->http = fx->http;
    }
    cfg->region = "eu-west-1";
    if (cfg->pass_env == NULL) {
        cfg->pass_env = pass;
    }
    cfg->seed = 42;
    int rv = afc_hooks_new(&fx->loop, cfg, &fx->h, &err);
    if (rv != 0) {
        fprintf(stderr, "  afc_hooks_new: %s\n", err.msg);
    }
    return rv;
}

/* Turn the loop until *counter reaches want or timeout_ms passes. */
static bool run_until(struct fixture *fx, const int *counter, int want, uint64_t timeout_ms)
{
    uint64_t deadline = uv_now(&fx->loop) + timeout_ms;
    while (*counter < want && uv_now(&fx->loop) < deadline) {
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    return *counter >= want;
}

static void hooks_closed_cb(void *arg)
{
    ((struct fixture *)arg)->hooks_closed = true;
}

static void closed_handle_cb(uv_handle_t *h)
{
    (void)h;
}

/* Close everything; the loop must end with no handle left. */
static void fixture_stop(struct fixture *fx)
{
    if (fx->h != NULL) {
        afc_hooks_close(fx->h, hooks_closed_cb, fx);
        int closed = 0;
        while (!fx->hooks_closed && uv_run(&fx->loop, UV_RUN_ONCE) >= 0 && closed++ < 100000) {
        }
        CHECK(fx->hooks_closed);
    }
    if (fx->http != NULL) {
        afc_http_client_close(fx->http, NULL, NULL);
    }
    uv_close((uv_handle_t *)&fx->ticker, closed_handle_cb);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&fx->loop), 0);
}

static void check_loop_on_time(const struct fixture *fx, const char *what)
{
    printf("  %s: the loop was at most %" PRIu64 " ms late\n", what, fx->max_late_ns / 1000000);
    CHECK(fx->max_late_ns / 1000000 < LATE_MAX_MS);
}

static uint64_t event_count(const char *name)
{
    const char *n;
    uint64_t c;
    unsigned total = afc_event_count(0, &n, &c);
    for (unsigned i = 0; i < total; i++) {
        afc_event_count(i, &n, &c);
        if (strcmp(n, name) == 0) {
            return c;
        }
    }
    return 0;
}

static void result_cb(void *data, const struct afc_hook_result *res)
{
    struct done *d = data;
    d->calls++;
    d->res = *res;
}

static void verdict_cb(void *data, const struct afc_hook_verdict *v)
{
    struct done *d = data;
    d->calls++;
    d->verdict = *v;
}

/* ---- hook output files ---- */

static char *read_file(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", out_dir, name);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return NULL;
    }
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void reset_out(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/calls", out_dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/hang.pids", out_dir);
    unlink(path);
}

/* Gone, or a zombie (dead, waiting for whoever reaps orphans in this container). */
static bool is_dead(int pid)
{
    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return true;
    }
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *paren = strrchr(stat, ')'); /* "pid (comm) S ..." */
    return paren != NULL && (paren[2] == 'Z' || paren[2] == 'X');
}

/* Both processes of hook_hang.sh are dead: the whole process group was killed. */
static void check_hang_killed(void)
{
    const char *pids = read_file("hang.pids");
    REQUIRE(pids != NULL);
    int shell = 0, child = 0;
    REQUIRE(sscanf(pids, "%d %d", &shell, &child) == 2);
    uint64_t deadline = uv_hrtime() + UINT64_C(5000000000); /* SIGKILL is not instantaneous */
    while (!(is_dead(shell) && is_dead(child)) && uv_hrtime() < deadline) {
        uv_sleep(10); /* polling a process state: there is no event to wait for */
    }
    CHECK(is_dead(shell));
    CHECK(is_dead(child)); /* the grandchild too */
    if (is_dead(child) && kill(child, 0) == 0) {
        printf("  (the killed grandchild %d is a zombie awaiting its reaper)\n", child);
    }
}

/* ---- on_role_change ---- */

static void test_role_change_args_and_env(void)
{
    struct fixture fx;
    struct afc_hooks_config cfg = {.on_role_change = helper("hook_record.sh")};
    struct done d = {0};
    reset_out();
    setenv("SECRET_TOKEN", "hunter2", 1);      /* must not reach the hook */
    setenv("ARAGORA_PRIMARY", "us-east-2", 1); /* the daemon's bootstrap hint: not the hook's */
    REQUIRE(fixture_start(&fx, &cfg) == 0);
    struct afc_role_change rc = {.role = AFC_HOOK_ROLE_PRIMARY,
                                 .previous = AFC_HOOK_ROLE_REPLICA,
                                 .epoch = 7,
                                 .primary_region = "eu-west-1",
                                 .primary_host = "10.1.0.5",
                                 .primary_port = 5432,
                                 .reason = "failover: lease expired"};
    CHECK_EQ_INT(afc_hooks_role_changed(fx.h, &rc, result_cb, &d), 0);
    CHECK_EQ_INT(d.calls, 0); /* never from inside the call */
    CHECK(run_until(&fx, &d.calls, 1, 10000));
    CHECK_EQ_INT(d.res.outcome, AFC_HOOK_OK);
    CHECK_EQ_STR(d.res.first_line, "recorded on_role_change epoch 7");
    const char *calls = read_file("calls");
    REQUIRE(calls != NULL);
    CHECK_CONTAINS(calls, "call on_role_change primary eu-west-1 7\n");
    static const char *const want[] = {"env ARAGORA_HOOK=on_role_change\n",
                                       "env ARAGORA_EVENT=promoted\n",
                                       "env ARAGORA_ROLE=primary\n",
                                       "env ARAGORA_PREVIOUS_ROLE=replica\n",
                                       "env ARAGORA_REGION=eu-west-1\n",
                                       "env ARAGORA_EPOCH=7\n",
                                       "env ARAGORA_PRIMARY=eu-west-1\n",
                                       "env ARAGORA_PRIMARY_HOST=10.1.0.5\n",
                                       "env ARAGORA_PRIMARY_PORT=5432\n",
                                       "env ARAGORA_REASON=failover: lease expired\n",
                                       "env ARAGORA_TIMEOUT_MS=30000\n",
                                       "env HOOK_OUT=",
                                       "env PATH="};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        CHECK_CONTAINS(calls, want[i]);
    }
    CHECK(strstr(calls, "SECRET_TOKEN") == NULL);
    CHECK(strstr(calls, "us-east-2") == NULL);
    fixture_stop(&fx);
    unsetenv("SECRET_TOKEN");
    unsetenv("ARAGORA_PRIMARY");
}

/* Three changes while the first runs: the second is replaced by the third. */
static void test_role_change_coalesced(void)
{
    struct fixture fx;
    struct afc_hooks_config cfg = {.on_role_change = helper("hook_record.sh")};
    struct done d[3] = {{0}};
    int total = 0;
    reset_out();
    setenv("HOOK_SLEEP", "0.3", 1);
    REQUIRE(fixture_start(&fx, &cfg) == 0);
    enum afc_hook_role roles[3] = {AFC_HOOK_ROLE_REPLICA, AFC_HOOK_ROLE_DEMOTED,
                                   AFC_HOOK_ROLE_REPLICA};
    for (int i = 0; i < 3; i++) {
        struct afc_role_change rc = {
            .role = roles[i], .epoch = (uint64_t)i + 1, .primary_region = "us-east-2"};
        CHECK_EQ_INT(afc_hooks_role_changed(fx.h, &rc, result_cb, &d[i]), 0);
    }
    uint64_t deadline = uv_now(&fx.loop) + 10000;
    while ((total = d[0].calls + d[1].calls + d[2].calls) < 3 && uv_now(&fx.loop) < deadline) {
        uv_run(&fx.loop, UV_RUN_ONCE);
        if (d[1].calls == 1 && d[1].at_ms == 0) {
            d[1].at_ms = uv_now(&fx.loop);
        }
        if (d[0].calls == 1 && d[0].at_ms == 0) {
            d[0].at_ms = uv_now(&fx.loop);
        }
    }
    CHECK_EQ_INT(total, 3);
    CHECK_EQ_INT(d[0].res.outcome, AFC_HOOK_OK);
    CHECK_EQ_INT(d[1].res.outcome, AFC_HOOK_COALESCED);
    CHECK_EQ_INT(d[2].res.outcome, AFC_HOOK_OK);
    CHECK(d[1].at_ms <= d[0].at_ms); /* answered when replaced, not after the run */
    const char *calls = read_file("calls");
    REQUIRE(calls != NULL);
    const char *first = strstr(calls, "call on_role_change replica eu-west-1 1\n");
    const char *third = strstr(calls, "call on_role_change replica eu-west-1 3\n");
    CHECK(first != NULL && third != NULL && first < third);
    CHECK(strstr(calls, "eu-west-1 2\n") == NULL); /* the replaced one never ran */
    printf("  ran epochs 1 and 3; epoch 2: %s\n", d[1].res.message);
    fixture_stop(&fx);
    unsetenv("HOOK_SLEEP");
}

static void test_role_change_hang_killed(void)
{
    struct fixture fx;
    struct afc_hooks_config cfg = {.on_role_change = helper("hook_hang.sh"),
                                   .on_role_change_timeout_ms = 300};
    struct done d = {0};
    reset_out();
    uint64_t failed_before = event_count("hook-failed");
    REQUIRE(fixture_start(&fx, &cfg) == 0);
    struct afc_role_change rc = {
        .role = AFC_HOOK_ROLE_REPLICA, .epoch = 4, .primary_region = "us-east-2"};
    CHECK_EQ_INT(afc_hooks_role_changed(fx.h, &rc, result_cb, &d), 0);
    CHECK(run_until(&fx, &d.calls, 1, 10000));
    printf("  hanging on_role_change: %s after %" PRIu64 " ms (%s)\n",
           afc_hook_outcome_name(d.res.outcome), d.res.duration_ms, d.res.message);
    CHECK_EQ_INT(d.res.outcome, AFC_HOOK_TIMED_OUT);
    CHECK_EQ_INT(d.res.term_signal, SIGKILL);
    CHECK_EQ_STR(d.res.message, "timed out after 300 ms");
    CHECK(d.res.duration_ms >= 300 && d.res.duration_ms < 3000);
    CHECK_EQ_INT(event_count("hook-failed"), failed_before + 1);
    check_hang_killed();
    check_loop_on_time(&fx, "hanging on_role_change");
    fixture_stop(&fx);
}

static void test_role_change_none_and_missing(void)
{
    struct fixture fx;
    struct afc_hooks_config cfg = {0};
    struct done d = {0};
    REQUIRE(fixture_start(&fx, &cfg) == 0);
    struct afc_role_change rc = {
        .role = AFC_HOOK_ROLE_PRIMARY, .epoch = 1, .primary_region = "eu-west-1"};
    CHECK_EQ_INT(afc_hooks_role_changed(fx.h, &rc, result_cb, &d), 0);
    CHECK(run_until(&fx, &d.calls, 1, 5000));
    CHECK_EQ_INT(d.res.outcome, AFC_HOOK_NONE);
    rc.role = AFC_HOOK_ROLE_UNKNOWN;
    CHECK_EQ_INT(afc_hooks_role_changed(fx.h, &rc, result_cb, &d), AFC_EINVAL);
    fixture_stop(&fx);

    struct afc_hooks_config missing = {.on_role_change = "/nonexistent/hook"};
    struct done m = {0};
    REQUIRE(fixture_start(&fx, &missing) == 0);
    rc.role = AFC_HOOK_ROLE_PRIMARY;
    CHECK_EQ_INT(afc_hooks_role_changed(fx.h, &rc, result_cb, &m), 0);
    CHECK(run_until(&fx, &m.calls, 1, 5000));
    CHECK_EQ_INT(m.res.outcome, AFC_HOOK_NOT_RUN);
    CHECK_CONTAINS(m.res.message, "could not run");
    fixture_stop(&fx);
}

/* Closing kills a running hook and answers it (CLOSED), and the waiting one too. */
static void test_close_kills_running(void)
{
    struct fixture fx;
    struct afc_hooks_config cfg = {.on_role_change = helper("hook_hang.sh"),
                                   .on_role_change_timeout_ms = 60000};
    struct done running = {0}, waiting = {0};
    reset_out();
    REQUIRE(fixture_start(&fx, &cfg) == 0);
    struct afc_role_change rc = {
        .role = AFC_HOOK_ROLE_REPLICA, .epoch = 1, .primary_region = "us-east-2"};
    CHECK_EQ_INT(afc_hooks_role_changed(fx.h, &rc, result_cb, &running), 0);
    rc.epoch = 2;
    CHECK_EQ_INT(afc_hooks_role_changed(fx.h, &rc, result_cb, &waiting), 0);
    /* wait until the hook is really running (it wrote its pids) */
    uint64_t deadline = uv_now(&fx.loop) + 10000;
    while (read_file("hang.pids") == NULL && uv_now(&fx.loop) < deadline) {
        uv_run(&fx.loop, UV_RUN_ONCE);
    }
    uint64_t t0 = uv_hrtime();
    fixture_stop(&fx); /* closes the hooks and waits for their done callback */
    printf("  close with a hanging hook took %" PRIu64 " ms\n", (uv_hrtime() - t0) / 1000000);
    CHECK_EQ_INT(running.calls, 1);
    CHECK_EQ_INT(running.res.outcome, AFC_HOOK_CLOSED);
    CHECK_EQ_INT(waiting.calls, 1);
    CHECK_EQ_INT(waiting.res.outcome, AFC_HOOK_CLOSED);
    check_hang_killed();
}

/* ---- pre_promote ---- */

static void promote(struct fixture *fx, struct done *d)
{
    struct afc_promote_request rq = {.epoch = 8,
                                     .previous_region = "us-east-2",
                                     .host = "10.1.0.5",
                                     .port = 5432,
                                     .reason = "us-east-2 lease expired"};
    CHECK_EQ_INT(afc_hooks_pre_promote(fx->h, &rq, verdict_cb, d), 0);
    CHECK(run_until(fx, &d->calls, 1, 10000));
}

static void test_pre_promote_allows(void)
{
    struct fixture fx;
    struct afc_hooks_config cfg = {.pre_promote = helper("hook_record.sh")};
    struct done d = {0};
    reset_out();
    REQUIRE(fixture_start(&fx, &cfg) == 0);
    promote(&fx, &d);
    CHECK(d.verdict.allow);
    CHECK_EQ_STR(d.verdict.reason, "");
    CHECK_EQ_INT(d.verdict.run.outcome, AFC_HOOK_OK);
    const char *calls = read_file("calls");
    REQUIRE(calls != NULL);
    CHECK_CONTAINS(calls, "call pre_promote primary eu-west-1 8\n");
    CHECK_CONTAINS(calls, "env ARAGORA_HOOK=pre_promote\n");
    CHECK_CONTAINS(calls, "env ARAGORA_PREVIOUS_PRIMARY=us-east-2\n");
    CHECK_CONTAINS(calls, "env ARAGORA_PRIMARY=eu-west-1\n");
    CHECK_CONTAINS(calls, "env ARAGORA_PRIMARY_HOST=10.1.0.5\n");
    CHECK_CONTAINS(calls, "env ARAGORA_TIMEOUT_MS=10000\n");
    fixture_stop(&fx);
}

static void test_pre_promote_vetoes(void)
{
    struct fixture fx;
    struct afc_hooks_config cfg = {.pre_promote = helper("hook_veto.sh")};
    struct done d = {0};
    uint64_t vetoed_before = event_count("hook-vetoed");
    REQUIRE(fixture_start(&fx, &cfg) == 0);
    promote(&fx, &d);
    printf("  veto: \"%s\" (%s)\n", d.verdict.reason, d.verdict.run.message);
    CHECK(!d.verdict.allow);
    CHECK_EQ_STR(d.verdict.reason, "replica lag 42 MB exceeds the limit");
    CHECK_EQ_INT(d.verdict.run.exit_status, 3);
    CHECK_EQ_INT(event_count("hook-vetoed"), vetoed_before + 1);
    fixture_stop(&fx);
}

static void test_pre_promote_hang_vetoes(void)
{
    struct fixture fx;
    struct afc_hooks_config cfg = {.pre_promote = helper("hook_hang.sh"),
                                   .pre_promote_timeout_ms = 300};
    struct done d = {0};
    reset_out();
    REQUIRE(fixture_start(&fx, &cfg) == 0);
    promote(&fx, &d);
    printf("  hanging pre_promote: \"%s\" after %" PRIu64 " ms\n", d.verdict.reason,
           d.verdict.run.duration_ms);
    CHECK(!d.verdict.allow);
    CHECK_EQ_STR(d.verdict.reason, "timed out after 300 ms");
    CHECK_EQ_INT(d.verdict.run.outcome, AFC_HOOK_TIMED_OUT);
    CHECK(d.verdict.run.duration_ms < 3000);
    check_hang_killed();
    check_loop_on_time(&fx, "hanging pre_promote");
    fixture_stop(&fx);
}

static void test_pre_promote_edges(void)
{
    struct fixture fx;
    struct afc_hooks_config none = {0};
    struct done d = {0};
    REQUIRE(fixture_start(&fx, &none) == 0);
    promote(&fx, &d);
    CHECK(d.verdict.allow); /* nothing configured: allowed */
    CHECK_EQ_INT(d.verdict.run.outcome, AFC_HOOK_NONE);
    fixture_stop(&fx);

    struct afc_hooks_config missing = {.pre_promote = "/nonexistent/pre-promote"};
    struct done m = {0};
    REQUIRE(fixture_start(&fx, &missing) == 0);
    promote(&fx, &m);
    CHECK(!m.verdict.allow); /* a fence that cannot run is not a fence that passed */
    CHECK_CONTAINS(m.verdict.reason, "could not run");
    fixture_stop(&fx);

    struct afc_hooks_config hang = {.pre_promote = helper("hook_hang.sh"),
                                    .pre_promote_timeout_ms = 200};
    struct done first = {0}, second = {0};
    reset_out();
    REQUIRE(fixture_start(&fx, &hang) == 0);
    struct afc_promote_request rq = {.epoch = 9};
    CHECK_EQ_INT(afc_hooks_pre_promote(fx.h, &rq, verdict_cb, &first), 0);
    CHECK_EQ_INT(afc_hooks_pre_promote(fx.h, &rq, verdict_cb, &second), AFC_EALREADY);
    CHECK(run_until(&fx, &first.calls, 1, 10000));
    CHECK(!first.verdict.allow);
    CHECK_EQ_INT(second.calls, 0);
    fixture_stop(&fx);
}

/* ---- webhooks ---- */

static char *url(const char *path)
{
    static char urls[4][128];
    static unsigned next;
    char *u = urls[next++ % 4];
    snprintf(u, sizeof urls[0], "http://127.0.0.1:%u%s", webhook_port, path);
    return u;
}

static void report_cb(void *data, const struct afc_webhook_report *rep)
{
    struct done *d = data;
    d->calls++;
    d->rep = *rep;
}

static const struct afc_hook_event event = {.event = "primary-changed",
                                            .epoch = 7,
                                            .primary_region = "eu-west-1",
                                            .primary_host = "10.1.0.5",
                                            .primary_port = 5432,
                                            .previous_primary = "us-east-2",
                                            .detail = "failover: lease expired"};

static struct done notify_once(struct afc_hooks_config *cfg, uint64_t *took_ms,
                               struct fixture *fx_out)
{
    struct fixture fx;
    struct done d = {0};
    cfg->webhook_backoff_ms = cfg->webhook_backoff_ms ? cfg->webhook_backoff_ms : 50;
    if (fixture_start(&fx, cfg) != 0) {
        CHECK(false);
        return d;
    }
    uint64_t t0 = uv_now(&fx.loop);
    CHECK_EQ_INT(afc_hooks_notify(fx.h, &event, report_cb, &d), 0);
    CHECK_EQ_INT(d.calls, 0);
    CHECK(run_until(&fx, &d.calls, 1, 30000));
    *took_ms = uv_now(&fx.loop) - t0;
    if (fx_out != NULL) {
        fx_out->max_late_ns = fx.max_late_ns;
    }
    fixture_stop(&fx);
    return d;
}

static void test_webhook_delivered(void)
{
    struct afc_hooks_config cfg = {
        .webhook_urls = {url("/ok")}, .n_webhook_urls = 1, .webhook_token = "tok-123"};
    uint64_t took;
    struct done d = notify_once(&cfg, &took, NULL);
    printf("  /ok: delivered=%u attempts=%u in %" PRIu64 " ms\n", d.rep.delivered, d.rep.attempts,
           took);
    CHECK_EQ_INT(d.rep.n_urls, 1);
    CHECK_EQ_INT(d.rep.delivered, 1);
    CHECK_EQ_INT(d.rep.failed, 0);
}

static void test_webhook_retries_5xx(void)
{
    struct afc_hooks_config cfg = {.webhook_urls = {url("/flaky")}, .n_webhook_urls = 1};
    uint64_t took;
    struct done d = notify_once(&cfg, &took, NULL);
    printf("  /flaky (500, 500, 200): delivered=%u attempts=%u in %" PRIu64 " ms\n",
           d.rep.delivered, d.rep.attempts, took);
    CHECK_EQ_INT(d.rep.delivered, 1);
    CHECK_EQ_INT(d.rep.attempts, 3);
    CHECK(took >= 25 + 50); /* two backoffs: [25,50] then [50,100] ms */
}

static void test_webhook_retry_after(void)
{
    struct afc_hooks_config cfg = {.webhook_urls = {url("/retry-after")}, .n_webhook_urls = 1};
    uint64_t took;
    struct done d = notify_once(&cfg, &took, NULL);
    printf("  /retry-after (429 Retry-After: 1, then 200): attempts=%u in %" PRIu64 " ms\n",
           d.rep.attempts, took);
    CHECK_EQ_INT(d.rep.delivered, 1);
    CHECK_EQ_INT(d.rep.attempts, 2);
    CHECK(took >= 1000);
}

static void test_webhook_permanent_failure(void)
{
    struct afc_hooks_config cfg = {.webhook_urls = {url("/notfound")}, .n_webhook_urls = 1};
    uint64_t took;
    uint64_t before = event_count("webhook-failed");
    struct done d = notify_once(&cfg, &took, NULL);
    CHECK_EQ_INT(d.rep.failed, 1);
    CHECK_EQ_INT(d.rep.attempts, 1); /* a 404 is not retried */
    CHECK_EQ_STR(d.rep.last_error, "HTTP 404");
    CHECK_EQ_INT(event_count("webhook-failed"), before + 1);
}

static void test_webhook_unreachable_gives_up(void)
{
    char closed[128];
    snprintf(closed, sizeof closed, "http://127.0.0.1:%u/secret-path", closed_port);
    struct afc_hooks_config cfg = {.webhook_urls = {closed, url("/ok")},
                                   .n_webhook_urls = 2,
                                   .webhook_attempts = 4,
                                   .webhook_backoff_ms = 100,
                                   .webhook_backoff_max_ms = 200,
                                   .webhook_timeout_ms = 1000};
    uint64_t took;
    struct fixture fx = {0};
    struct done d = notify_once(&cfg, &took, &fx);
    printf("  unreachable + /ok: delivered=%u failed=%u attempts=%u in %" PRIu64 " ms: %s\n",
           d.rep.delivered, d.rep.failed, d.rep.attempts, took, d.rep.last_error);
    CHECK_EQ_INT(d.rep.n_urls, 2);
    CHECK_EQ_INT(d.rep.delivered, 1);
    CHECK_EQ_INT(d.rep.failed, 1);
    CHECK_EQ_INT(d.rep.attempts, 5); /* 4 for the closed port, 1 for /ok */
    /* backoffs at most 100 + 200 + 200 ms, each attempt refused at once: bounded (10x slack) */
    CHECK(took < 10 * (500 + 4 * 1000));
    check_loop_on_time(&fx, "unreachable webhook");
}

/* A receiver that accepts and never answers: each attempt ends at its timeout. */
static void test_webhook_timeout(void)
{
    struct afc_hooks_config cfg = {.webhook_urls = {url("/slow")},
                                   .n_webhook_urls = 1,
                                   .webhook_attempts = 2,
                                   .webhook_timeout_ms = 300};
    uint64_t took;
    struct fixture fx = {0};
    struct done d = notify_once(&cfg, &took, &fx);
    printf("  /slow (no answer for 3 s): failed=%u attempts=%u in %" PRIu64 " ms: %s\n",
           d.rep.failed, d.rep.attempts, took, d.rep.last_error);
    CHECK_EQ_INT(d.rep.failed, 1);
    CHECK_EQ_INT(d.rep.attempts, 2);
    CHECK(took >= 600 && took < 10 * (2 * 300 + 50));
    check_loop_on_time(&fx, "hung webhook receiver");
}

static void test_webhook_none_configured(void)
{
    struct fixture fx;
    struct afc_hooks_config cfg = {0};
    struct done d = {0};
    REQUIRE(fixture_start(&fx, &cfg) == 0);
    CHECK_EQ_INT(afc_hooks_notify(fx.h, &event, report_cb, &d), 0);
    CHECK(run_until(&fx, &d.calls, 1, 5000));
    CHECK_EQ_INT(d.rep.n_urls, 0);
    struct afc_hook_event nameless = {0};
    CHECK_EQ_INT(afc_hooks_notify(fx.h, &nameless, report_cb, &d), AFC_EINVAL);
    fixture_stop(&fx);
}

/* Closing with a delivery waiting for its retry: answered, closed, nothing left on the loop. */
static void test_webhook_close_pending(void)
{
    char closed[128];
    snprintf(closed, sizeof closed, "http://127.0.0.1:%u/x", closed_port);
    struct fixture fx;
    struct afc_hooks_config cfg = {.webhook_urls = {closed},
                                   .n_webhook_urls = 1,
                                   .webhook_attempts = 10,
                                   .webhook_backoff_ms = 5000};
    struct done d = {0};
    REQUIRE(fixture_start(&fx, &cfg) == 0);
    CHECK_EQ_INT(afc_hooks_notify(fx.h, &event, report_cb, &d), 0);
    for (int i = 0; i < 20; i++) { /* let the first attempt fail and the retry wait */
        uv_run(&fx.loop, UV_RUN_ONCE);
    }
    fixture_stop(&fx);
    CHECK_EQ_INT(d.calls, 1);
    CHECK(d.rep.closed);
    CHECK_EQ_INT(d.rep.failed, 1);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s HELPERS_DIR OUT_DIR WEBHOOK_PORT CLOSED_PORT\n", argv[0]);
        return 2;
    }
    helpers = argv[1];
    out_dir = argv[2];
    webhook_port = (unsigned)atoi(argv[3]);
    closed_port = (unsigned)atoi(argv[4]);
    setenv("HOOK_OUT", out_dir, 1);
    afc_log_setup(AFC_LOG_INFO, 0, "test-hooks", stderr);
    TEST_RUN(test_role_change_args_and_env);
    TEST_RUN(test_role_change_coalesced);
    TEST_RUN(test_role_change_hang_killed);
    TEST_RUN(test_role_change_none_and_missing);
    TEST_RUN(test_close_kills_running);
    TEST_RUN(test_pre_promote_allows);
    TEST_RUN(test_pre_promote_vetoes);
    TEST_RUN(test_pre_promote_hang_vetoes);
    TEST_RUN(test_pre_promote_edges);
    TEST_RUN(test_webhook_delivered);
    TEST_RUN(test_webhook_retries_5xx);
    TEST_RUN(test_webhook_retry_after);
    TEST_RUN(test_webhook_permanent_failure);
    TEST_RUN(test_webhook_unreachable_gives_up);
    TEST_RUN(test_webhook_timeout);
    TEST_RUN(test_webhook_none_configured);
    TEST_RUN(test_webhook_close_pending);
    TEST_END();
}
