/*
 * The PostgreSQL prober: libpq's asynchronous API driven by the daemon's libuv loop.
 *
 * Per target: a repeating `tick` timer starts a probe; a probe reuses the open connection or
 * starts one (PQconnectStart, then PQconnectPoll each time uv_poll says the socket is ready), sends
 * the health query (PQsendQuery, PQflush), reads it (PQconsumeInput, PQisBusy, PQgetResult), and
 * ends in finish_probe() with a sample, which goes through the pure hysteresis
 * (pg_hysteresis.c); a report calls the user's `changed` callback. A `deadline` timer bounds each
 * probe: on expiry the connection is dropped with PQfinish (PQcancel would block the loop) and the
 * probe counts as a failure. Nothing here blocks: the only libpq calls made are the non-blocking
 * ones, with PQsetnonblocking on.
 *
 * uv_poll and libpq's socket. libpq may close its socket and open another one inside
 * PQconnectPoll (next address, SSL retry) and of course in PQfinish; the new socket may even get
 * the same number, possibly already watched by another target. Closing a uv_poll handle tells
 * epoll to forget its fd *number*, so a handle must never outlive its socket. Hence the rule: a
 * poll handle is created for one wait and closed (uv_close, which deregisters at once) before any
 * libpq call that may touch the socket. That costs one epoll_ctl pair per wait, which at one probe
 * a second is nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <uv.h>

#include "afc/log.h"
#include "afc/pg_probe.h"

#define MAX_TARGETS 64

/*
 * The health query: one row, six columns, the same shape on a primary and a replica. CASE is
 * evaluated lazily at run time, which keeps pg_current_wal_lsn() (an error in recovery) off
 * replicas. Timeline: on a primary the current WAL file's name carries it (exact right after a
 * promotion, whereas pg_control_checkpoint() only moves at the next checkpoint); on a replica the
 * timeline it receives, else the last checkpoint's. Lag is 0 when everything received is
 * replayed: an idle primary would otherwise make a caught-up replica look ever more behind.
 */
static const char health_sql[] =
    "WITH w AS (SELECT received_tli, sender_host, sender_port FROM pg_stat_wal_receiver"
    " WHERE status = 'streaming' LIMIT 1), r AS (SELECT pg_is_in_recovery() AS rec)"
    " SELECT r.rec,"
    " CASE WHEN r.rec THEN COALESCE((SELECT received_tli FROM w),"
    " (SELECT timeline_id FROM pg_control_checkpoint()))::bigint"
    " ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint END,"
    " CASE WHEN r.rec THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END,"
    " CASE WHEN r.rec THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END,"
    " CASE WHEN NOT r.rec OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
    " ELSE (extract(epoch FROM now() - pg_last_xact_replay_timestamp()) * 1000)::bigint END,"
    " (SELECT sender_host || ':' || sender_port FROM w)"
    " FROM r";

enum phase { IDLE, CONNECTING, QUERYING };

struct target {
    struct afc_pg_prober *p;
    unsigned index;
    char name[AFC_FO_NAME_MAX];
    char *conninfo;
    char addr[AFC_PG_ADDR_MAX];
    uint64_t interval_ms;
    uint64_t deadline_ms;
    uv_timer_t tick;
    uv_timer_t deadline;
    uv_poll_t *poll; /* the current wait, or NULL; see the top comment */
    PGconn *conn;
    enum phase phase;
    bool reused;  /* this probe started on a connection kept from an earlier probe */
    bool flushed; /* the query has been sent completely */
    struct afc_pg_sample sample;
    struct afc_pg_sample last; /* the last finished probe's sample (reason set) */
    bool have_last;
    struct afc_pg_hyst hyst;
    unsigned changes; /* of the last report */
};

struct afc_pg_prober {
    uv_loop_t *loop;
    struct afc_pg_probe_config cfg;
    afc_pg_changed_cb cb;
    void *data;
    bool started, stopping;
    unsigned open_handles; /* initialised, not yet close-called-back */
    uv_timer_t closer;     /* only so that stop() can call back from the loop if never started */
    afc_pg_stop_cb stop_cb;
    void *stop_data;
    unsigned n;
    struct target t[];
};

static void start_connect(struct target *t);
static void finish_probe(struct target *t, enum afc_pg_reason reason);

/* ---- handle bookkeeping ---- */

/* Every handle's data is its target (the closer's: target 0), so this finds the prober. */
static void handle_closed_cb(uv_handle_t *h)
{
    struct afc_pg_prober *p = ((struct target *)h->data)->p;
    afc_pg_stop_cb cb;
    void *data;

    if (h->type == UV_POLL)
        free(h);
    p->open_handles--;
    if (!p->stopping || p->open_handles > 0)
        return;
    cb = p->stop_cb;
    data = p->stop_data;
    free(p);
    if (cb != NULL)
        cb(data);
}

static void handle_close(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, handle_closed_cb);
}

static void unwatch(struct target *t)
{
    if (t->poll != NULL) {
        handle_close((uv_handle_t *)t->poll);
        t->poll = NULL;
    }
}

static void drop_conn(struct target *t)
{
    unwatch(t); /* before PQfinish closes the socket */
    if (t->conn != NULL) {
        PQfinish(t->conn);
        t->conn = NULL;
    }
}

static void on_ready(uv_poll_t *h, int status, int events);

/* Wait for `events` on the connection's current socket. Returns false when it cannot wait. */
static bool watch(struct target *t, int events)
{
    int fd = PQsocket(t->conn);
    uv_poll_t *h;

    unwatch(t);
    if (fd < 0)
        return false;
    h = malloc(sizeof(*h));
    if (h == NULL)
        return false;
    if (uv_poll_init(t->p->loop, h, fd) != 0) {
        free(h);
        return false;
    }
    h->data = t;
    t->p->open_handles++;
    t->poll = h;
    if (uv_poll_start(h, events, on_ready) != 0) {
        unwatch(t);
        return false;
    }
    return true;
}

/* ---- classification ---- */

/* libpq reports connection failures as text only; these are its and the server's messages
 * (fe-connect.c, postmaster.c, auth.c), matched case-sensitively as they are not translated with
 * lc_messages=C, which the server uses for pre-authentication errors. */
static enum afc_pg_reason classify_conn_error(const PGconn *conn)
{
    const char *m = conn ? PQerrorMessage(conn) : "";

    if (strstr(m, "Connection refused") != NULL)
        return AFC_PG_L4_REFUSED;
    if (strstr(m, "timed out") != NULL || strstr(m, "timeout expired") != NULL)
        return AFC_PG_L4_TIMEOUT;
    if (strstr(m, "authentication failed") != NULL || strstr(m, "no pg_hba.conf entry") != NULL ||
        strstr(m, "password") != NULL)
        return AFC_PG_AUTH_FAILED;
    if (strstr(m, "starting up") != NULL || strstr(m, "shutting down") != NULL ||
        strstr(m, "recovery mode") != NULL || strstr(m, "too many") != NULL ||
        strstr(m, "does not exist") != NULL)
        return AFC_PG_L7_REJECTED;
    return AFC_PG_L4_ERROR;
}

/* The deadline hit: was TCP still connecting, or did the server go quiet after it? */
static enum afc_pg_reason classify_timeout(const struct target *t)
{
    if (t->phase == CONNECTING && t->conn != NULL && PQstatus(t->conn) == CONNECTION_STARTED)
        return AFC_PG_L4_TIMEOUT;
    return AFC_PG_L7_TIMEOUT;
}

/* A broken connection kept from an earlier probe says nothing about the server now (it may have
 * restarted): reconnect once within this probe before counting a failure. */
static bool retry_fresh(struct target *t)
{
    if (!t->reused || PQstatus(t->conn) != CONNECTION_BAD)
        return false;
    t->reused = false;
    drop_conn(t);
    start_connect(t);
    return true;
}

/* ---- the query ---- */

static void fill_sample(struct target *t, PGresult *res)
{
    const char *vals[AFC_PG_COLS];
    char addr[AFC_PG_ADDR_MAX];
    const char *addrs[MAX_TARGETS];
    struct afc_pg_prober *p = t->p;
    int i;

    if (PQntuples(res) != 1 || PQnfields(res) != AFC_PG_COLS) {
        t->sample.reason = AFC_PG_L7_PROTOCOL;
        return;
    }
    for (i = 0; i < AFC_PG_COLS; i++)
        vals[i] = PQgetisnull(res, 0, i) ? NULL : PQgetvalue(res, 0, i);
    if (afc_pg_row_parse(vals, &t->sample, addr, sizeof(addr)) != 0) {
        t->sample.reason = AFC_PG_L7_PROTOCOL;
        return;
    }
    for (unsigned k = 0; k < p->n; k++)
        addrs[k] = p->t[k].addr;
    i = afc_pg_addr_find(addr, addrs, p->n);
    /* An upstream we do not know is still worth reporting: it is shown raw (truncated). */
    snprintf(t->sample.upstream, sizeof(t->sample.upstream), "%.*s",
             (int)sizeof(t->sample.upstream) - 1, i >= 0 ? p->t[i].name : addr);
}

/* Drain every result libpq has; returns false while the server still owes us one. */
static bool read_results(struct target *t)
{
    PGresult *res;

    while (!PQisBusy(t->conn)) {
        res = PQgetResult(t->conn);
        if (res == NULL)
            return true;
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
            fill_sample(t, res);
        else if (t->sample.reason == AFC_PG_OK)
            t->sample.reason =
                PQstatus(t->conn) == CONNECTION_BAD ? AFC_PG_L4_ERROR : AFC_PG_QUERY_FAILED;
        PQclear(res);
    }
    return false;
}

static void query_step(struct target *t, int events)
{
    int f = 0;

    unwatch(t);
    if (!t->flushed && (events & UV_WRITABLE)) {
        f = PQflush(t->conn);
        t->flushed = f == 0;
    }
    if (f < 0 || PQconsumeInput(t->conn) == 0) {
        if (!retry_fresh(t))
            finish_probe(t, AFC_PG_L4_ERROR);
        return;
    }
    if (!read_results(t)) {
        if (!watch(t, t->flushed ? UV_READABLE : UV_READABLE | UV_WRITABLE))
            finish_probe(t, AFC_PG_L4_ERROR);
        return;
    }
    if (t->sample.reason == AFC_PG_L4_ERROR && retry_fresh(t))
        return;
    finish_probe(t, t->sample.reason);
}

static void send_query(struct target *t)
{
    int f;

    t->phase = QUERYING;
    memset(&t->sample, 0, sizeof(t->sample));
    t->sample.reason = AFC_PG_OK;
    if (PQsetnonblocking(t->conn, 1) != 0 || PQsendQuery(t->conn, health_sql) == 0 ||
        (f = PQflush(t->conn)) < 0) {
        if (!retry_fresh(t))
            finish_probe(t, AFC_PG_L4_ERROR);
        return;
    }
    t->flushed = f == 0;
    if (!watch(t, t->flushed ? UV_READABLE : UV_READABLE | UV_WRITABLE))
        finish_probe(t, AFC_PG_L4_ERROR);
}

/* ---- connecting ---- */

/* Act on what PQconnectPoll (or PQconnectStart, as WRITING) asked for. */
static void connect_next(struct target *t, PostgresPollingStatusType st)
{
    switch (st) {
    case PGRES_POLLING_READING:
        if (!watch(t, UV_READABLE))
            finish_probe(t, AFC_PG_L4_ERROR);
        return;
    case PGRES_POLLING_WRITING:
        if (!watch(t, UV_WRITABLE))
            finish_probe(t, AFC_PG_L4_ERROR);
        return;
    case PGRES_POLLING_OK:
        send_query(t);
        return;
    default:
        finish_probe(t, classify_conn_error(t->conn));
        return;
    }
}

/* libpq prints server notices ("terminating connection due to immediate shutdown") to stderr
 * by default; they belong in our log, at debug: the probe result already says what happened. */
static void on_notice(void *arg, const char *message)
{
    const struct target *t = arg;

    afc_debug("pg probe %s: notice: %.*s", t->name, (int)strcspn(message, "\n"), message);
}

static void start_connect(struct target *t)
{
    t->phase = CONNECTING;
    t->conn = PQconnectStart(t->conninfo);
    if (t->conn == NULL) {
        finish_probe(t, AFC_PG_L4_ERROR);
        return;
    }
    if (PQstatus(t->conn) == CONNECTION_BAD) {
        finish_probe(t, classify_conn_error(t->conn));
        return;
    }
    PQsetNoticeProcessor(t->conn, on_notice, t);
    /* libpq's documented start: behave as if PQconnectPoll had returned PGRES_POLLING_WRITING. */
    connect_next(t, PGRES_POLLING_WRITING);
}

static void on_ready(uv_poll_t *h, int status, int events)
{
    struct target *t = h->data;

    (void)status; /* an error on the socket is libpq's to find and report */
    if (t->poll != h || t->p->stopping)
        return;
    unwatch(t);
    if (t->phase == CONNECTING)
        connect_next(t, PQconnectPoll(t->conn));
    else if (t->phase == QUERYING)
        query_step(t, events);
}

/* ---- probe lifecycle ---- */

static void stamp_wall(struct afc_pg_obs *o)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    o->wall_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Events are logged on transitions only (CONVENTIONS.md), never per probe. */
static void log_transition(const struct target *t, unsigned chg, enum afc_pg_role old_role)
{
    const struct afc_pg_obs *o = &t->hyst.obs;

    if (chg & (AFC_PG_CHG_FIRST | AFC_PG_CHG_HEALTH)) {
        if (o->healthy)
            afc_event("pg-healthy", "target=%s role=%s timeline=%u lsn=%X/%X", t->name,
                      afc_pg_role_name(o->role), o->timeline, (unsigned)(o->lsn >> 32),
                      (unsigned)o->lsn);
        else
            afc_event("pg-unhealthy", "target=%s reason=%s", t->name,
                      afc_pg_reason_name(t->hyst.last_reason));
    }
    if ((chg & AFC_PG_CHG_ROLE) && !(chg & AFC_PG_CHG_FIRST))
        afc_event("pg-role-changed", "target=%s from=%s to=%s timeline=%u", t->name,
                  afc_pg_role_name(old_role), afc_pg_role_name(o->role), o->timeline);
}

static void finish_probe(struct target *t, enum afc_pg_reason reason)
{
    struct afc_pg_prober *p = t->p;
    enum afc_pg_role old_role = t->hyst.reported.role;
    struct afc_pg_obs obs;
    unsigned chg;

    uv_timer_stop(&t->deadline);
    unwatch(t);
    t->last = t->sample;
    t->last.reason = reason;
    t->have_last = true;
    if (reason != AFC_PG_OK) {
        afc_debug("pg probe %s failed: %s", t->name, afc_pg_reason_name(reason));
        drop_conn(t); /* a failed connection is never reused */
    }
    t->phase = IDLE;
    t->sample.reason = reason;
    chg = afc_pg_hyst_update(&t->hyst, &p->cfg.hyst, &t->sample, uv_now(p->loop));
    if (chg == 0)
        return;
    t->changes = chg;
    stamp_wall(&t->hyst.obs);
    t->hyst.reported.wall_ms = t->hyst.obs.wall_ms;
    log_transition(t, chg, old_role);
    obs = t->hyst.obs; /* the callback may stop the prober; hand it a stable copy */
    p->cb(p->data, t->index, &obs);
}

static void on_deadline(uv_timer_t *h)
{
    struct target *t = h->data;

    if (t->phase == IDLE || t->p->stopping)
        return;
    finish_probe(t, classify_timeout(t));
}

static void on_tick(uv_timer_t *h)
{
    struct target *t = h->data;

    if (t->phase != IDLE || t->p->stopping)
        return; /* probes never overlap: a slow one makes this tick a no-op */
    if (uv_timer_start(&t->deadline, on_deadline, t->deadline_ms, 0) != 0)
        return;
    t->reused = t->conn != NULL && PQstatus(t->conn) == CONNECTION_OK;
    if (t->reused) {
        send_query(t);
        return;
    }
    drop_conn(t);
    start_connect(t);
}

/* ---- public API ---- */

void afc_pg_probe_config_default(struct afc_pg_probe_config *c)
{
    memset(c, 0, sizeof(*c));
    afc_pg_hyst_config_default(&c->hyst);
    c->deadline_max_ms = AFC_PG_DEADLINE_MAX_MS;
}

/* host:port from the conninfo: what a replica's primary_conninfo would most likely say. */
static int derive_addr(const char *conninfo, char *out, size_t cap)
{
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    const char *host = NULL, *hostaddr = NULL, *port = NULL;

    if (opts == NULL)
        return AFC_ECONFIG;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (o->val == NULL || o->val[0] == '\0')
            continue;
        if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0)
            hostaddr = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
    }
    snprintf(out, cap, "%s:%s", host ? host : hostaddr ? hostaddr : "", port ? port : "5432");
    PQconninfoFree(opts);
    return 0;
}

static int init_target(struct afc_pg_prober *p, unsigned i, const struct afc_pg_target *src,
                       struct afc_err *err)
{
    struct target *t = &p->t[i];
    uint64_t d;

    if (src->name == NULL || src->conninfo == NULL || strlen(src->name) >= sizeof(t->name) ||
        (src->addr != NULL && strlen(src->addr) >= sizeof(t->addr)))
        return afc_err_set(err, AFC_ECONFIG, "target %u: bad name, conninfo or addr", i);
    t->p = p;
    t->index = i;
    strcpy(t->name, src->name);
    t->conninfo = strdup(src->conninfo);
    if (t->conninfo == NULL)
        return afc_err_set(err, AFC_ENOMEM, "target %s: out of memory", src->name);
    if (src->addr != NULL)
        strcpy(t->addr, src->addr);
    else if (derive_addr(src->conninfo, t->addr, sizeof(t->addr)) != 0)
        return afc_err_set(err, AFC_ECONFIG, "target %s: conninfo does not parse", src->name);
    t->interval_ms = src->interval_ms ? src->interval_ms : AFC_PG_INTERVAL_REMOTE_MS;
    d = t->interval_ms * 2;
    t->deadline_ms = d < p->cfg.deadline_max_ms ? d : p->cfg.deadline_max_ms;
    afc_pg_hyst_init(&t->hyst);
    return 0;
}

static void free_unstarted(struct afc_pg_prober *p)
{
    for (unsigned i = 0; i < p->n; i++)
        free(p->t[i].conninfo);
    free(p);
}

int afc_pg_prober_new(struct uv_loop_s *loop, const struct afc_pg_target *targets, unsigned n,
                      const struct afc_pg_probe_config *cfg, afc_pg_changed_cb cb, void *data,
                      struct afc_pg_prober **out, struct afc_err *err)
{
    struct afc_pg_prober *p;
    int rv;

    if (loop == NULL || targets == NULL || n == 0 || n > MAX_TARGETS || cb == NULL || out == NULL)
        return afc_err_set(err, AFC_EINVAL, "pg prober: bad arguments");
    p = calloc(1, sizeof(*p) + n * sizeof(p->t[0]));
    if (p == NULL)
        return afc_err_set(err, AFC_ENOMEM, "pg prober: out of memory");
    p->loop = loop;
    if (cfg != NULL)
        p->cfg = *cfg;
    else
        afc_pg_probe_config_default(&p->cfg);
    if (p->cfg.deadline_max_ms == 0)
        p->cfg.deadline_max_ms = AFC_PG_DEADLINE_MAX_MS;
    p->cb = cb;
    p->data = data;
    p->n = n;
    for (unsigned i = 0; i < n; i++) {
        rv = init_target(p, i, &targets[i], err);
        if (rv != 0) {
            free_unstarted(p);
            return rv;
        }
    }
    *out = p;
    return 0;
}

int afc_pg_prober_start(struct afc_pg_prober *p)
{
    if (p->stopping)
        return AFC_ESHUTDOWN;
    if (p->started)
        return AFC_EALREADY;
    p->started = true;
    for (unsigned i = 0; i < p->n; i++) {
        struct target *t = &p->t[i];
        uv_timer_init(p->loop, &t->tick);
        uv_timer_init(p->loop, &t->deadline);
        t->tick.data = t;
        t->deadline.data = t;
        p->open_handles += 2;
        if (uv_timer_start(&t->tick, on_tick, 0, t->interval_ms) != 0)
            return AFC_EINTERNAL;
    }
    return 0;
}

void afc_pg_prober_stop(struct afc_pg_prober *p, afc_pg_stop_cb cb, void *data)
{
    p->stopping = true;
    p->stop_cb = cb;
    p->stop_data = data;
    for (unsigned i = 0; i < p->n; i++) {
        struct target *t = &p->t[i];
        drop_conn(t);
        free(t->conninfo);
        t->conninfo = NULL;
        if (p->started) {
            handle_close((uv_handle_t *)&t->tick);
            handle_close((uv_handle_t *)&t->deadline);
        }
    }
    if (!p->started) {
        /* No handle was ever made; one short-lived handle keeps the promise that cb runs from
         * the loop, never from inside this call. */
        uv_timer_init(p->loop, &p->closer);
        p->closer.data = &p->t[0];
        p->open_handles++;
        handle_close((uv_handle_t *)&p->closer);
    }
}

const struct afc_pg_obs *afc_pg_prober_obs(const struct afc_pg_prober *p, unsigned index)
{
    return index < p->n ? &p->t[index].hyst.obs : NULL;
}

enum afc_pg_reason afc_pg_prober_last_reason(const struct afc_pg_prober *p, unsigned index)
{
    return index < p->n ? p->t[index].hyst.last_reason : AFC_PG_OK;
}

unsigned afc_pg_prober_failing(const struct afc_pg_prober *p, unsigned index)
{
    return index < p->n ? p->t[index].hyst.fail_run : 0;
}

const struct afc_pg_sample *afc_pg_prober_last_sample(const struct afc_pg_prober *p, unsigned index)
{
    return index < p->n && p->t[index].have_last ? &p->t[index].last : NULL;
}

unsigned afc_pg_prober_changes(const struct afc_pg_prober *p, unsigned index)
{
    return index < p->n ? p->t[index].changes : 0;
}

const char *afc_pg_prober_addr(const struct afc_pg_prober *p, unsigned index)
{
    return index < p->n ? p->t[index].addr : NULL;
}
