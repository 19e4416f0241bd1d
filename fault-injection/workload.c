/*
 * `aragora-chaos workload`: the writer whose history the checkers judge (chaos.h, docs/chaos.md).
 *
 * One libpq connection per region, non-blocking, on one libuv loop: uv_poll on PQsocket drives
 * PQconnectPoll while connecting, then PQflush / PQconsumeInput / PQisBusy / PQgetResult. A timer
 * ticks every interval_ms; on each tick every region gets exactly one op, with the next seq:
 *
 *   - connected and idle: INSERT INTO chaos_writes(region, seq) is sent (start_us just before);
 *     its outcome is ok (PGRES_COMMAND_OK), fail (an ERROR from the server: not committed) or
 *     unknown (the connection broke after sending, a FATAL or PANIC that may come after the
 *     commit, or no answer within timeout_ms: the connection is then abandoned);
 *   - not connected: a fail op "connect: REASON" (nothing was sent), and a new connection is
 *     started if the last attempt is over (so at most one attempt per interval);
 *   - a write still in flight: nothing (one write in flight per region; never retried).
 *
 * Each op is appended to --out as one JSON line (chaos_history_write_op) and flushed, so a SIGKILL
 * loses at most the line being written. SIGTERM/SIGINT (or --duration-ms) stop sending; writes in
 * flight get at most timeout_ms to finish (then unknown), and the program exits 0. --ready-file is
 * created once every region has had its first op.
 *
 * `workload --readback CONNINFO --out FILE` reads chaos_writes back (blocking libpq: nothing else
 * runs) into FILE, one {"region":..,"seq":..} per row (workload.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "chaos.h"
#include "chaos_cmd.h"
#include "workload.h"

#define CONNECT_TIMEOUT_MS 2000 /* libpq ignores connect_timeout when polled: enforced here */

static const char insert_sql[] = "INSERT INTO chaos_writes(region, seq) VALUES ($1, $2)";

enum conn_state { CONN_NONE = 0, CONN_CONNECTING, CONN_READY };

struct workload;

/* A uv_poll on one socket; allocated, so that it can be closed (asynchronously) and replaced. */
struct poller {
    uv_poll_t h;
    int fd;
};

struct target {
    struct workload *w;
    unsigned region;
    char conninfo[1024];
    PGconn *conn;
    struct poller *poll;
    enum conn_state state;
    uint64_t connect_ms; /* monotonic: when the last attempt started */
    char last_error[80]; /* why the last connection failed */
    uint64_t next_seq;
    bool attempted; /* had its first op */
    /* the write in flight */
    bool in_flight, have_result, flushing;
    uint64_t sent_ms;
    struct chaos_op op;
};

struct options {
    unsigned interval_ms, timeout_ms;
    uint64_t duration_ms; /* 0: until a signal */
    const char *out, *ready_file, *readback;
};

struct workload {
    uv_loop_t loop;
    uv_timer_t tick;
    uv_signal_t sigterm, sigint;
    struct options o;
    struct chaos_record rec; /* only the region names (for chaos_history_write_op) */
    struct target t[CHAOS_MAX_REGIONS];
    FILE *out;
    uint64_t start_ms, stop_ms; /* stop_ms: when stopping began, 0 while running */
    bool ready_written, write_failed, closing;
};

static void target_on_poll(uv_poll_t *h, int status, int events);
static void workload_maybe_finish(struct workload *w);

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t mono_ms(void)
{
    return uv_hrtime() / 1000000;
}

/* The first line of a libpq message, without its "ERROR:  " prefix. */
static void first_line(char *out, size_t size, const char *msg)
{
    if (msg == NULL || *msg == '\0')
        msg = "unknown error";
    if (strncmp(msg, "ERROR:  ", 8) == 0 || strncmp(msg, "FATAL:  ", 8) == 0)
        msg += 8;
    snprintf(out, size, "%.*s", (int)strcspn(msg, "\n"), msg);
}

/* ---- the history ---- */

static void record_op(struct target *t, const struct chaos_op *op)
{
    struct workload *w = t->w;
    if (chaos_history_write_op(w->out, &w->rec, op) != 0 || fflush(w->out) != 0) {
        if (!w->write_failed)
            fprintf(stderr, "aragora-chaos: workload: writing %s: %s\n", w->o.out, strerror(errno));
        w->write_failed = true;
    }
    t->attempted = true;
}

static void record_fail(struct target *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void record_fail(struct target *t, const char *fmt, ...)
{
    struct chaos_op op = {.region = t->region, .seq = t->next_seq++, .result = CHAOS_FAIL};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(op.error, sizeof op.error, fmt, ap);
    va_end(ap);
    op.start_us = op.end_us = wall_us();
    record_op(t, &op);
}

/* The write in flight is over: record it (with `result`/`error` unless a result came already). */
static void end_write(struct target *t)
{
    t->in_flight = t->have_result = t->flushing = false;
    record_op(t, &t->op);
    workload_maybe_finish(t->w);
}

/* The exchange ended abnormally (the connection broke, no answer in time): `result` unless an
 * error result already said "not committed". A write whose INSERT completed but whose commit was
 * never confirmed (the connection broke before ReadyForQuery: a fast shutdown cancelling a
 * synchronous-replication wait says "committed locally, might not have been replicated") is
 * unknown, never ok. */
static void finish_write(struct target *t, enum chaos_result result, const char *error)
{
    if (!t->in_flight)
        return;
    if (!t->have_result || t->op.result == CHAOS_OK) {
        t->op.result = result;
        t->op.end_us = wall_us();
        snprintf(t->op.error, sizeof t->op.error, "%s", error);
    }
    t->in_flight = t->have_result = t->flushing = false;
    record_op(t, &t->op);
    workload_maybe_finish(t->w);
}

/* ---- the connection ---- */

static void poller_free_cb(uv_handle_t *h)
{
    free(h);
}

static void poller_close(struct target *t)
{
    if (t->poll == NULL)
        return;
    uv_close((uv_handle_t *)&t->poll->h, poller_free_cb);
    t->poll = NULL;
}

/* Poll the connection's current socket for `events` (it may change while connecting). */
static int poller_watch(struct target *t, int events)
{
    int fd = PQsocket(t->conn);
    if (fd < 0)
        return -1;
    if (t->poll != NULL && t->poll->fd != fd)
        poller_close(t);
    if (t->poll == NULL) {
        struct poller *p = calloc(1, sizeof *p);
        if (p == NULL || uv_poll_init(&t->w->loop, &p->h, fd) != 0) {
            free(p);
            return -1;
        }
        p->fd = fd;
        p->h.data = t;
        t->poll = p;
    }
    return uv_poll_start(&t->poll->h, events, target_on_poll) == 0 ? 0 : -1;
}

/* Abandon the connection (the socket is unwatched before PQfinish closes it). */
static void conn_drop(struct target *t, const char *why)
{
    poller_close(t);
    if (t->conn != NULL)
        PQfinish(t->conn);
    t->conn = NULL;
    t->state = CONN_NONE;
    if (why != NULL)
        snprintf(t->last_error, sizeof t->last_error, "%s", why);
}

static void conn_failed(struct target *t)
{
    char msg[sizeof t->last_error];
    first_line(msg, sizeof msg, t->conn ? PQerrorMessage(t->conn) : "out of memory");
    conn_drop(t, msg);
}

static void notice_ignore(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static void conn_start(struct target *t)
{
    /* connect_timeout first: the target's conninfo (expanded from dbname) may override it */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *values[] = {"2", "aragora-chaos-workload", t->conninfo, NULL};
    t->connect_ms = mono_ms();
    t->conn = PQconnectStartParams(keys, values, 1);
    if (t->conn == NULL || PQstatus(t->conn) == CONNECTION_BAD) {
        conn_failed(t);
        return;
    }
    PQsetNoticeProcessor(t->conn, notice_ignore, NULL);
    t->state = CONN_CONNECTING;
    /* libpq: after PQconnectStart, act as if PQconnectPoll had said PGRES_POLLING_WRITING */
    if (poller_watch(t, UV_WRITABLE) != 0)
        conn_drop(t, "cannot watch the socket");
}

static void conn_poll(struct target *t)
{
    switch (PQconnectPoll(t->conn)) {
    case PGRES_POLLING_READING:
        if (poller_watch(t, UV_READABLE) != 0)
            conn_drop(t, "cannot watch the socket");
        return;
    case PGRES_POLLING_WRITING:
        if (poller_watch(t, UV_WRITABLE) != 0)
            conn_drop(t, "cannot watch the socket");
        return;
    case PGRES_POLLING_OK:
        t->state = CONN_READY;
        if (PQsetnonblocking(t->conn, 1) != 0 || poller_watch(t, UV_READABLE) != 0)
            conn_failed(t);
        return;
    default:
        conn_failed(t);
        return;
    }
}

/* ---- the write ---- */

/* The outcome a result means; the error text into op.error. */
static enum chaos_result classify(const PGresult *res, char *error, size_t size)
{
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK) {
        error[0] = '\0';
        return CHAOS_OK;
    }
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    char msg[160];
    first_line(msg, sizeof msg, PQresultErrorMessage(res));
    if (state == NULL) { /* libpq's own: the connection broke */
        snprintf(error, size, "connection lost: %.70s", msg);
        return CHAOS_UNKNOWN;
    }
    snprintf(error, size, "%.5s %.85s", state, msg);
    /* an error ends the transaction uncommitted; a session ending may come after the commit */
    if (st != PGRES_FATAL_ERROR || (severity != NULL && strcmp(severity, "ERROR") != 0))
        return CHAOS_UNKNOWN;
    return CHAOS_FAIL;
}

static void write_send(struct target *t)
{
    struct workload *w = t->w;
    char seq[24];
    snprintf(seq, sizeof seq, "%" PRIu64, t->next_seq);
    const char *params[2] = {w->rec.regions[t->region], seq};
    t->op = (struct chaos_op){.region = t->region, .seq = t->next_seq++};
    t->op.start_us = wall_us();
    t->sent_ms = mono_ms();
    t->in_flight = true;
    t->attempted = true;
    if (PQsendQueryParams(t->conn, insert_sql, 2, NULL, params, NULL, NULL, 0) == 0) {
        char msg[80], error[sizeof t->op.error];
        first_line(msg, sizeof msg, PQerrorMessage(t->conn));
        snprintf(error, sizeof error, "send: %.70s", msg);
        conn_drop(t, msg);
        finish_write(t, CHAOS_FAIL, error); /* not sent: not committed */
        return;
    }
    int r = PQflush(t->conn);
    t->flushing = r == 1;
    if (r < 0 || poller_watch(t, r == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE) != 0) {
        char msg[80], error[sizeof t->op.error];
        first_line(msg, sizeof msg, PQerrorMessage(t->conn));
        snprintf(error, sizeof error, "connection lost: %.70s", msg);
        conn_drop(t, msg);
        finish_write(t, CHAOS_UNKNOWN, error);
    }
}

/* Read what arrived; record the write once its last result is in. */
static void conn_read(struct target *t)
{
    while (t->conn != NULL && !PQisBusy(t->conn)) {
        PGresult *res = PQgetResult(t->conn);
        if (res == NULL) { /* ReadyForQuery: the exchange is over, its outcome final */
            if (!t->have_result)
                finish_write(t, CHAOS_UNKNOWN, "no result");
            else if (t->in_flight)
                end_write(t);
            return;
        }
        /* An implicit transaction commits at Sync, after the INSERT's CommandComplete: an
         * error raised by the commit (the in-database fence's pre-commit check, a deferred
         * constraint) comes as a second result and overrides the first one's "ok". */
        char error[sizeof t->op.error];
        enum chaos_result r = t->in_flight ? classify(res, error, sizeof error) : CHAOS_OK;
        if (t->in_flight && (!t->have_result || (t->op.result == CHAOS_OK && r != CHAOS_OK))) {
            t->op.end_us = wall_us();
            t->op.result = r;
            memcpy(t->op.error, error, sizeof error);
            t->have_result = true;
        }
        PQclear(res);
        if (PQstatus(t->conn) == CONNECTION_BAD) {
            char msg[80];
            first_line(msg, sizeof msg, PQerrorMessage(t->conn));
            conn_drop(t, msg);
            finish_write(t, CHAOS_UNKNOWN, "connection lost");
            return;
        }
    }
}

static void conn_broken(struct target *t)
{
    char msg[80], error[sizeof t->op.error];
    first_line(msg, sizeof msg, PQerrorMessage(t->conn));
    snprintf(error, sizeof error, "connection lost: %.70s", msg);
    conn_drop(t, msg);
    finish_write(t, CHAOS_UNKNOWN, error);
}

static void conn_io(struct target *t, int events)
{
    if ((events & UV_WRITABLE) && t->flushing) {
        int r = PQflush(t->conn);
        if (r < 0) {
            conn_broken(t);
            return;
        }
        t->flushing = r == 1;
        if (r == 0 && poller_watch(t, UV_READABLE) != 0) {
            conn_broken(t);
            return;
        }
    }
    if (!(events & UV_READABLE))
        return;
    if (PQconsumeInput(t->conn) == 0) {
        conn_broken(t);
        return;
    }
    if (t->in_flight) {
        conn_read(t);
        return;
    }
    /* idle: only a closing server talks now; drain it and notice the end */
    PGresult *res;
    while (!PQisBusy(t->conn) && (res = PQgetResult(t->conn)) != NULL)
        PQclear(res);
    if (PQstatus(t->conn) == CONNECTION_BAD)
        conn_failed(t);
}

static void target_on_poll(uv_poll_t *h, int status, int events)
{
    struct target *t = h->data;
    if (t == NULL || t->conn == NULL)
        return;
    if (t->state == CONN_CONNECTING) {
        conn_poll(t);
        return;
    }
    /* an error on the socket: let libpq find out what it is */
    conn_io(t, status < 0 ? UV_READABLE : events);
}

/* ---- the tick ---- */

static void target_tick(struct target *t, uint64_t now)
{
    struct workload *w = t->w;
    if (t->in_flight) {
        if (now - t->sent_ms < w->o.timeout_ms)
            return;
        char error[sizeof t->op.error];
        snprintf(error, sizeof error, "timeout: no answer within %u ms", w->o.timeout_ms);
        conn_drop(t, "abandoned after a timeout");
        finish_write(t, CHAOS_UNKNOWN, error);
        return;
    }
    if (w->stop_ms != 0)
        return;
    if (t->state == CONN_CONNECTING && now - t->connect_ms >= CONNECT_TIMEOUT_MS)
        conn_drop(t, "timeout: not connected within 2000 ms");
    if (t->state == CONN_NONE && now - t->connect_ms >= w->o.interval_ms)
        conn_start(t);
    if (t->state == CONN_READY) {
        write_send(t);
        return;
    }
    if (t->state != CONN_CONNECTING)
        record_fail(t, "connect: %s", t->last_error);
    else if (t->last_error[0] != '\0')
        record_fail(t, "connect: connecting for %" PRIu64 " ms; before: %s", now - t->connect_ms,
                    t->last_error);
    else
        record_fail(t, "connect: connecting for %" PRIu64 " ms", now - t->connect_ms);
}

static void write_ready_file(struct workload *w)
{
    if (w->ready_written || w->o.ready_file == NULL)
        return;
    for (unsigned i = 0; i < w->rec.n_regions; i++) {
        if (!w->t[i].attempted)
            return;
    }
    FILE *f = fopen(w->o.ready_file, "w");
    bool ok = f != NULL && fprintf(f, "%d\n", (int)getpid()) > 0;
    if ((f != NULL && fclose(f) != 0) || !ok)
        fprintf(stderr, "aragora-chaos: workload: %s: %s\n", w->o.ready_file, strerror(errno));
    w->ready_written = true;
}

static void workload_stop(struct workload *w)
{
    if (w->stop_ms == 0)
        w->stop_ms = mono_ms();
    workload_maybe_finish(w);
}

static void on_tick(uv_timer_t *h)
{
    struct workload *w = h->data;
    uint64_t now = mono_ms();
    if (w->o.duration_ms > 0 && now - w->start_ms >= w->o.duration_ms)
        workload_stop(w);
    for (unsigned i = 0; i < w->rec.n_regions && !w->closing; i++)
        target_tick(&w->t[i], now);
    write_ready_file(w);
    if (w->stop_ms != 0 && !w->closing && now - w->stop_ms >= w->o.timeout_ms) {
        for (unsigned i = 0; i < w->rec.n_regions; i++) {
            conn_drop(&w->t[i], NULL);
            finish_write(&w->t[i], CHAOS_UNKNOWN, "stopped: no answer before the exit");
        }
    }
    workload_maybe_finish(w);
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    workload_stop(h->data);
}

/* Once stopping and nothing is in flight: close every handle; uv_run then returns. */
static void workload_maybe_finish(struct workload *w)
{
    if (w->stop_ms == 0 || w->closing)
        return;
    for (unsigned i = 0; i < w->rec.n_regions; i++) {
        if (w->t[i].in_flight)
            return;
    }
    w->closing = true;
    for (unsigned i = 0; i < w->rec.n_regions; i++)
        conn_drop(&w->t[i], NULL);
    uv_close((uv_handle_t *)&w->tick, NULL);
    uv_close((uv_handle_t *)&w->sigterm, NULL);
    uv_close((uv_handle_t *)&w->sigint, NULL);
}

/* ---- the command line ---- */

static const char usage[] =
    "Usage: aragora-chaos workload --target REGION=CONNINFO [--target ...] --out FILE\n"
    "           [--interval-ms 20] [--timeout-ms 2000] [--duration-ms N] [--ready-file PATH]\n"
    "       aragora-chaos workload --readback CONNINFO --out FILE\n"
    "\n"
    "  Every interval, one INSERT INTO chaos_writes(region, seq) per region (the table must\n"
    "  exist), seq from 1, never retried, one write in flight per region; each outcome (ok,\n"
    "  fail, unknown) is appended to FILE as a JSON line. A write not answered within the\n"
    "  timeout is unknown and its connection abandoned. SIGTERM/SIGINT or --duration-ms: stop\n"
    "  sending, wait at most the timeout for writes in flight, exit 0. --ready-file is created\n"
    "  once every region had its first write.\n"
    "  --readback: SELECT region, seq FROM chaos_writes into FILE, one JSON line per row.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "aragora-chaos: workload: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n%s", usage);
    va_end(ap);
    return 2;
}

static int parse_ms(const char *s, unsigned min, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || *s == '-' || v < min || v > 86400000ULL)
        return -1;
    *out = v;
    return 0;
}

static int add_target(struct workload *w, const char *arg)
{
    const char *eq = strchr(arg, '=');
    size_t n = eq ? (size_t)(eq - arg) : 0;
    if (eq == NULL || n == 0 || n >= CHAOS_NAME_MAX || eq[1] == '\0')
        return usage_error("--target %s: expected REGION=CONNINFO", arg);
    if (w->rec.n_regions == CHAOS_MAX_REGIONS)
        return usage_error("--target %s: too many targets", arg);
    char name[CHAOS_NAME_MAX];
    snprintf(name, sizeof name, "%.*s", (int)n, arg);
    if (chaos_region_find(&w->rec, name) >= 0)
        return usage_error("--target %s: region given twice", arg);
    struct target *t = &w->t[w->rec.n_regions];
    if (strlen(eq + 1) >= sizeof t->conninfo)
        return usage_error("--target %s: conninfo too long", arg);
    snprintf(w->rec.regions[w->rec.n_regions], CHAOS_NAME_MAX, "%s", name);
    snprintf(t->conninfo, sizeof t->conninfo, "%s", eq + 1);
    t->region = w->rec.n_regions++;
    return 0;
}

static int parse_option(struct workload *w, const char *opt, const char *val)
{
    uint64_t v;
    if (strcmp(opt, "--target") == 0)
        return add_target(w, val);
    if (strcmp(opt, "--out") == 0)
        w->o.out = val;
    else if (strcmp(opt, "--ready-file") == 0)
        w->o.ready_file = val;
    else if (strcmp(opt, "--readback") == 0)
        w->o.readback = val;
    else if (strcmp(opt, "--interval-ms") == 0 && parse_ms(val, 1, &v) == 0)
        w->o.interval_ms = (unsigned)v;
    else if (strcmp(opt, "--timeout-ms") == 0 && parse_ms(val, 1, &v) == 0)
        w->o.timeout_ms = (unsigned)v;
    else if (strcmp(opt, "--duration-ms") == 0 && parse_ms(val, 0, &v) == 0)
        w->o.duration_ms = v;
    else
        return usage_error("bad option or value: %s", opt);
    return 0;
}

static int parse_args(struct workload *w, int argc, char **argv)
{
    w->o = (struct options){.interval_ms = 20, .timeout_ms = 2000};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 1;
        }
        if (i + 1 >= argc)
            return usage_error("%s: a value is missing", argv[i]);
        int rc = parse_option(w, argv[i], argv[i + 1]);
        if (rc != 0)
            return rc;
        i++;
    }
    if (w->o.out == NULL)
        return usage_error("%s", "--out FILE is required");
    if (w->o.readback != NULL && w->rec.n_regions > 0)
        return usage_error("%s", "--readback takes no --target");
    if (w->o.readback == NULL && w->rec.n_regions == 0)
        return usage_error("%s", "at least one --target REGION=CONNINFO is required");
    return 0;
}

/* ---- read-back ---- */

static int readback_rows(PGresult *res, FILE *f)
{
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *row = json_pack("{s:s, s:I}", "region", PQgetvalue(res, i, 0), "seq",
                                (json_int_t)strtoll(PQgetvalue(res, i, 1), NULL, 10));
        char *text = row ? json_dumps(row, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(row);
        int rc = text != NULL && fprintf(f, "%s\n", text) > 0 ? 0 : -1;
        free(text);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int readback(const struct options *o)
{
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *values[] = {"5", "aragora-chaos-readback", o->readback, NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 1);
    PGresult *res = NULL;
    int rc = 1;
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "aragora-chaos: workload: read-back: connect: %s", PQerrorMessage(conn));
        goto finish;
    }
    res = PQexec(conn, "SELECT region, seq FROM chaos_writes ORDER BY 1, 2");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "aragora-chaos: workload: read-back: %s", PQerrorMessage(conn));
        goto finish;
    }
    FILE *f = fopen(o->out, "w");
    bool ok = f != NULL && readback_rows(res, f) == 0;
    if ((f != NULL && fclose(f) != 0) || !ok) {
        fprintf(stderr, "aragora-chaos: workload: read-back: writing %s: %s\n", o->out,
                strerror(errno));
        unlink(o->out);
        goto finish;
    }
    rc = 0;
finish:
    PQclear(res);
    PQfinish(conn);
    return rc;
}

/* ---- main ---- */

static int workload_init(struct workload *w)
{
    w->out = fopen(w->o.out, "w");
    if (w->out == NULL) {
        fprintf(stderr, "aragora-chaos: workload: %s: %s\n", w->o.out, strerror(errno));
        return -1;
    }
    if (uv_loop_init(&w->loop) != 0) {
        fclose(w->out);
        return -1;
    }
    uv_timer_init(&w->loop, &w->tick);
    uv_signal_init(&w->loop, &w->sigterm);
    uv_signal_init(&w->loop, &w->sigint);
    w->tick.data = w->sigterm.data = w->sigint.data = w;
    return 0;
}

static int workload_run(struct workload *w)
{
    w->start_ms = mono_ms();
    for (unsigned i = 0; i < w->rec.n_regions; i++) {
        w->t[i].w = w;
        w->t[i].next_seq = 1;
        conn_start(&w->t[i]);
    }
    uv_signal_start(&w->sigterm, on_signal, SIGTERM);
    uv_signal_start(&w->sigint, on_signal, SIGINT);
    uv_timer_start(&w->tick, on_tick, w->o.interval_ms, w->o.interval_ms);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&w->loop) == 0 ? 0 : 1;
    if (fclose(w->out) != 0 || w->write_failed) {
        fprintf(stderr, "aragora-chaos: workload: %s: the history is incomplete\n", w->o.out);
        rc = 1;
    }
    return rc;
}

int chaos_workload_main(int argc, char **argv)
{
    struct workload *w = calloc(1, sizeof *w);
    if (w == NULL) {
        fprintf(stderr, "aragora-chaos: workload: out of memory\n");
        return 1;
    }
    int rc = parse_args(w, argc, argv);
    if (rc != 0) {
        free(w);
        return rc == 1 ? 0 : rc;
    }
    if (w->o.readback != NULL)
        rc = readback(&w->o);
    else
        rc = workload_init(w) == 0 ? workload_run(w) : 1;
    free(w);
    return rc;
}
