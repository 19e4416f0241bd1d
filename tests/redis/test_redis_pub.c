/*
 * The Redis publisher (coordinator/redis_pub.c) on a real libuv loop.
 *
 *   test_redis_pub unit
 *       Pure parts, table-driven: redis:// URLs (good and malformed) and the stored record's JSON
 *       (round trip, malformed values). Prints "N passed, M failed".
 *
 *   test_redis_pub drive URL [timeout_ms [reconnect_max_ms]]
 *       A driver for test_redis.py, which starts and stops a real redis-server around it. It
 *       reads one command per line from stdin (a uv pipe: the loop never blocks on it) and
 *       prints one line per answer on stdout:
 *         publish EPOCH REGION HOST PORT SINCE → "call rv=R epoch=E", later
 *                                              "write epoch=E outcome=O stored=S queued=Q ms=M
 *                                               msg=..."
 *         read                                 → "read outcome=O epoch=E region=R host=H port=P
 *                                               ms=M msg=..."
 *         event JSON                           → "event rv=R"
 *         status                               → "status connected=C state=S pending=P
 *                                               written=W dropped=D error=..."
 *         ticks                                → "ticks n=N max_late_ms=L" (and reset)
 *         quit                                 → closes the publisher: "closed", then
 *                                               "loop-closed rc=0" when every handle is gone
 *       A late answer to a write whose callback said FAILED prints "landed epoch=E outcome=O
 *       stored=S ms=M". A 10 ms ticker runs all the time: "ticks" reports how late it ever was,
 *       which is how the tests see that Redis being down never stalls the loop.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "afc/log.h"
#include "afc/redis_pub.h"
#include "tests/test.h"

/* ---- unit ---- */

struct url_case {
    const char *url;
    int rv;
    const char *host;
    unsigned port, db;
    const char *user, *password;
};

static void test_url_table(void)
{
    static const struct url_case cases[] = {
        {"redis://127.0.0.1:6380/2", 0, "127.0.0.1", 6380, 2, "", ""},
        {"redis://localhost", 0, "localhost", 6379, 0, "", ""},
        {"redis://localhost/", 0, "localhost", 6379, 0, "", ""},
        {"redis://[::1]:7000/3", 0, "::1", 7000, 3, "", ""},
        {"redis://[::1]", 0, "::1", 6379, 0, "", ""},
        {"redis://:s%40cret@10.0.0.1:6379/0", 0, "10.0.0.1", 6379, 0, "", "s@cret"},
        {"redis://app:pw@h:1/1", 0, "h", 1, 1, "app", "pw"},
        {"redis://pwonly@h", 0, "h", 6379, 0, "", "pwonly"},
        {"rediss://h:6379", AFC_ECONFIG, NULL, 0, 0, NULL, NULL},
        {"http://h:6379", AFC_ECONFIG, NULL, 0, 0, NULL, NULL},
        {"redis://", AFC_ECONFIG, NULL, 0, 0, NULL, NULL},
        {"redis://:6379", AFC_ECONFIG, NULL, 0, 0, NULL, NULL},
        {"redis://h:0", AFC_ECONFIG, NULL, 0, 0, NULL, NULL},
        {"redis://h:65536", AFC_ECONFIG, NULL, 0, 0, NULL, NULL},
        {"redis://h:12x", AFC_ECONFIG, NULL, 0, 0, NULL, NULL},
        {"redis://h:6379/x", AFC_ECONFIG, NULL, 0, 0, NULL, NULL},
        {"redis://[::1:6379", AFC_ECONFIG, NULL, 0, 0, NULL, NULL},
        {"redis://[::1]x", AFC_ECONFIG, NULL, 0, 0, NULL, NULL},
        {"redis://:bad%4@h", AFC_ECONFIG, NULL, 0, 0, NULL, NULL},
        {"redis://:bad%zz@h", AFC_ECONFIG, NULL, 0, 0, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct url_case *c = &cases[i];
        struct afc_redis_url u;
        struct afc_err err = {0};
        int rv = afc_redis_url_parse(c->url, &u, &err);
        if (rv != c->rv) {
            fprintf(stderr, "  %s: rv %d, expected %d (%s)\n", c->url, rv, c->rv, err.msg);
        }
        CHECK_EQ_INT(rv, c->rv);
        if (rv != 0) {
            CHECK(err.msg[0] != '\0');
            CHECK(strstr(err.msg, "bad%") == NULL); /* the password is never echoed */
            continue;
        }
        CHECK_EQ_STR(u.host, c->host);
        CHECK_EQ_INT(u.port, c->port);
        CHECK_EQ_INT(u.db, c->db);
        CHECK_EQ_STR(u.user, c->user);
        CHECK_EQ_STR(u.password, c->password);
    }
}

static void test_record_round_trip(void)
{
    struct afc_redis_primary in = {.epoch = 7, .port = 5432, .since_ms = 1764158401417};
    snprintf(in.region, sizeof in.region, "eu-\"west\"-1");
    snprintf(in.host, sizeof in.host, "db\\1\n");
    char buf[512];
    int n = afc_redis_primary_encode(&in, buf, sizeof buf);
    REQUIRE(n > 0);
    CHECK_EQ_STR(buf, "{\"epoch\":7,\"region\":\"eu-\\\"west\\\"-1\",\"host\":\"db\\\\1\\u000a\","
                      "\"port\":5432,\"since\":1764158401417}");
    struct afc_redis_primary out;
    struct afc_err err = {0};
    REQUIRE(afc_redis_primary_decode(buf, (size_t)n, &out, &err) == 0);
    CHECK_EQ_INT(out.epoch, 7);
    CHECK_EQ_STR(out.region, in.region);
    CHECK_EQ_STR(out.host, in.host);
    CHECK_EQ_INT(out.port, 5432);
    CHECK_EQ_INT(out.since_ms, 1764158401417);
    CHECK_EQ_INT(afc_redis_primary_encode(&in, buf, 20), AFC_ETOOBIG);
    in.region[0] = '\0';
    CHECK_EQ_INT(afc_redis_primary_encode(&in, buf, sizeof buf), AFC_EINVAL);
}

static void test_record_malformed(void)
{
    static const char *const bad[] = {
        "",
        "not json",
        "[1,2]",
        "{\"region\":\"a\"}",
        "{\"epoch\":\"5\",\"region\":\"a\"}",
        "{\"epoch\":-1,\"region\":\"a\"}",
        "{\"epoch\":5}",
        "{\"epoch\":5,\"region\":7}",
        "{\"epoch\":5,\"region\":\"a\",\"port\":70000}",
        "{\"epoch\":5,\"region\":\"a\",\"port\":\"5432\"}",
        "{\"epoch\":5,\"region\":\"a\",\"since\":1.5}",
        "{\"epoch\":5,\"region\":\"a\",\"host\":[]}",
        "{\"epoch\":5,\"epoch\":6,\"region\":\"a\"}",
        "{\"epoch\":5,\"region\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct afc_redis_primary out;
        struct afc_err err = {0};
        int rv = afc_redis_primary_decode(bad[i], strlen(bad[i]), &out, &err);
        if (rv != AFC_EMALFORMED) {
            fprintf(stderr, "  accepted: %s\n", bad[i]);
        }
        CHECK_EQ_INT(rv, AFC_EMALFORMED);
        CHECK(err.msg[0] != '\0');
    }
    /* optional members default; unknown members are ignored */
    struct afc_redis_primary out;
    const char *minimal = "{\"epoch\":0,\"region\":\"a\",\"extra\":{}}";
    CHECK_EQ_INT(afc_redis_primary_decode(minimal, strlen(minimal), &out, NULL), 0);
    CHECK_EQ_INT(out.port, 0);
    CHECK_EQ_STR(out.host, "");
}

static void test_outcome_names(void)
{
    CHECK_EQ_STR(afc_redis_outcome_name(AFC_REDIS_WRITTEN), "written");
    CHECK_EQ_STR(afc_redis_outcome_name(AFC_REDIS_REFUSED), "refused-older");
    CHECK_EQ_STR(afc_redis_outcome_name(AFC_REDIS_CLOSED), "closed");
    CHECK_EQ_STR(afc_redis_outcome_name((enum afc_redis_outcome)99), "unknown");
}

static void test_new_rejects_bad_url(void)
{
    uv_loop_t loop;
    struct afc_redis_pub *p = NULL;
    struct afc_err err = {0};
    struct afc_redis_pub_config cfg = {.url = "rediss://h"};
    uv_loop_init(&loop);
    CHECK_EQ_INT(afc_redis_pub_new(&loop, &cfg, &p, &err), AFC_ECONFIG);
    CHECK(p == NULL);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

static int run_unit(void)
{
    TEST_RUN(test_url_table);
    TEST_RUN(test_record_round_trip);
    TEST_RUN(test_record_malformed);
    TEST_RUN(test_outcome_names);
    TEST_RUN(test_new_rejects_bad_url);
    TEST_END();
}

/* ---- the driver ---- */

#define TICK_MS 10

static struct {
    uv_loop_t loop;
    uv_pipe_t in;
    uv_timer_t ticker;
    struct afc_redis_pub *pub;
    char line[4096];
    size_t len;
    uint64_t last_tick_ns, max_late_ns, ticks;
    bool quitting;
} drv;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static void print_write(const char *what, const struct afc_redis_write_result *res)
{
    say("%s epoch=%" PRIu64 " outcome=%s stored=%" PRIu64 " queued=%d malformed=%d ms=%" PRIu64
        " msg=%s",
        what, res->epoch, afc_redis_outcome_name(res->outcome), res->stored_epoch, res->queued,
        res->replaced_malformed, res->elapsed_ms, res->message);
}

static void write_cb(void *data, const struct afc_redis_write_result *res)
{
    (void)data;
    print_write("write", res);
}

static void landed_cb(void *data, const struct afc_redis_write_result *res)
{
    (void)data;
    print_write("landed", res);
}

static void read_cb(void *data, const struct afc_redis_read_result *res)
{
    (void)data;
    const struct afc_redis_primary *r = &res->primary;
    say("read outcome=%s epoch=%" PRIu64 " region=%s host=%s port=%u since=%" PRId64 " ms=%" PRIu64
        " msg=%s",
        afc_redis_outcome_name(res->outcome), r->epoch, r->region, r->host, r->port, r->since_ms,
        res->elapsed_ms, res->message);
}

static void tick_cb(uv_timer_t *t)
{
    uint64_t now = uv_hrtime();
    (void)t;
    if (drv.last_tick_ns != 0) {
        uint64_t gap = now - drv.last_tick_ns, expected = (uint64_t)TICK_MS * 1000000;
        if (gap > expected && gap - expected > drv.max_late_ns) {
            drv.max_late_ns = gap - expected;
        }
    }
    drv.last_tick_ns = now;
    drv.ticks++;
}

static void closed_cb(void *arg)
{
    (void)arg;
    say("closed");
    drv.pub = NULL;
}

static void handle_closed_cb(uv_handle_t *h)
{
    (void)h;
}

static void cmd_publish(char *args)
{
    struct afc_redis_primary rec;
    memset(&rec, 0, sizeof rec);
    unsigned long long epoch = 0;
    long long since = 0;
    if (sscanf(args, "%llu %31s %255s %u %lld", &epoch, rec.region, rec.host, &rec.port, &since) <
        4) {
        say("error usage: publish EPOCH REGION HOST PORT [SINCE]");
        return;
    }
    rec.epoch = epoch;
    rec.since_ms = since;
    int rv = afc_redis_publish_primary(drv.pub, &rec, write_cb, NULL);
    say("call rv=%d epoch=%llu", rv, epoch);
}

static void cmd_status(void)
{
    struct afc_redis_status st;
    afc_redis_pub_status(drv.pub, &st);
    say("status connected=%d state=%s pending=%" PRIu64 " written=%" PRIu64 " dropped=%" PRIu64
        " error=%s",
        st.connected, st.state, st.pending_epoch, st.written_epoch, st.events_dropped,
        st.last_error);
}

static void run_command(char *line)
{
    char *args = strchr(line, ' ');
    if (args != NULL) {
        *args++ = '\0';
    } else {
        args = line + strlen(line);
    }
    if (drv.pub == NULL) {
        say("error closed");
    } else if (strcmp(line, "publish") == 0) {
        cmd_publish(args);
    } else if (strcmp(line, "read") == 0) {
        int rv = afc_redis_read_primary(drv.pub, read_cb, NULL);
        if (rv != 0) {
            say("read-call rv=%d", rv);
        }
    } else if (strcmp(line, "event") == 0) {
        say("event rv=%d", afc_redis_publish_event(drv.pub, args));
    } else if (strcmp(line, "status") == 0) {
        cmd_status();
    } else if (strcmp(line, "ticks") == 0) {
        say("ticks n=%" PRIu64 " max_late_ms=%" PRIu64, drv.ticks, drv.max_late_ns / 1000000);
        drv.ticks = 0;
        drv.max_late_ns = 0;
    } else if (strcmp(line, "quit") == 0) {
        drv.quitting = true;
        afc_redis_pub_close(drv.pub, closed_cb, NULL);
        uv_close((uv_handle_t *)&drv.ticker, handle_closed_cb);
        uv_close((uv_handle_t *)&drv.in, handle_closed_cb);
    } else if (line[0] != '\0') {
        say("error unknown command '%s'", line);
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char chunk[4096];
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(chunk, sizeof chunk);
}

static void stdin_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n < 0) { /* EOF: behave as quit */
        uv_read_stop(s);
        if (!drv.quitting) {
            char quit[] = "quit";
            run_command(quit);
        }
        return;
    }
    for (ssize_t i = 0; i < n && !drv.quitting; i++) {
        char c = buf->base[i];
        if (c == '\n') {
            drv.line[drv.len] = '\0';
            drv.len = 0;
            run_command(drv.line);
        } else if (drv.len + 1 < sizeof drv.line) {
            drv.line[drv.len++] = c;
        }
    }
}

static int run_driver(const char *url, unsigned timeout_ms, unsigned reconnect_max_ms)
{
    struct afc_err err = {0};
    struct afc_redis_pub_config cfg = {.url = url,
                                       .origin = "test-region",
                                       .timeout_ms = timeout_ms,
                                       .reconnect_min_ms = 50,
                                       .reconnect_max_ms = reconnect_max_ms,
                                       .landed_cb = landed_cb};
    afc_log_setup(AFC_LOG_INFO, 0, "test-redis", stderr);
    uv_loop_init(&drv.loop);
    if (afc_redis_pub_new(&drv.loop, &cfg, &drv.pub, &err) != 0) {
        say("error new: %s", err.msg);
        return 2;
    }
    uv_timer_init(&drv.loop, &drv.ticker);
    uv_timer_start(&drv.ticker, tick_cb, TICK_MS, TICK_MS);
    uv_pipe_init(&drv.loop, &drv.in, 0);
    uv_pipe_open(&drv.in, 0);
    uv_read_start((uv_stream_t *)&drv.in, alloc_cb, stdin_cb);
    say("ready url=%s timeout_ms=%u", url, timeout_ms);
    uv_run(&drv.loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&drv.loop);
    say("loop-closed rc=%d", rc);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "unit") == 0) {
        return run_unit();
    }
    if (argc >= 3 && strcmp(argv[1], "drive") == 0) {
        unsigned timeout_ms = argc >= 4 ? (unsigned)atoi(argv[3]) : 500;
        unsigned reconnect_max_ms = argc >= 5 ? (unsigned)atoi(argv[4]) : 1000;
        return run_driver(argv[2], timeout_ms, reconnect_max_ms);
    }
    fprintf(stderr, "usage: %s unit | drive URL [timeout_ms [reconnect_max_ms]]\n", argv[0]);
    return 2;
}
