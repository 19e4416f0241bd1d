/*
 * The primary's synchronous standby set, kept (coordinator/syncrep.h).
 *
 * Data flow, one step at a time, driven by the agent's 100 ms tick while this region manages:
 *   poll (psql: synchronous_standby_names, pg_current_wal_lsn(), pg_stat_replication)
 *     → parse into struct afc_sync_live → afc_sync_plan() (pure, syncplan.c) →
 *       COMMIT: a sync-set entry through the log (report.c), then poll again
 *       APPLY:  ALTER SYSTEM SET synchronous_standby_names + pg_reload_conf(), then poll again
 *       WAIT / NONE: poll again after probe_local_ms
 * Nothing here writes data, so nothing here waits on a synchronous standby: ALTER SYSTEM writes a
 * file, and the poll and pg_reload_conf() are read-only. Every step is decided on a poll that has
 * just completed, and rechecked (still managing, same epoch) before it starts.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "afc/log.h"
#include "afc/run.h"
#include "coordinator/agent.h"
#include "coordinator/daemon.h"
#include "coordinator/psql.h"
#include "coordinator/report.h"
#include "coordinator/syncrep.h"

#define POLL_TIMEOUT_MS  5000
#define APPLY_TIMEOUT_MS 15000
/* After this region's PostgreSQL became primary (a promotion, a restart of it or of the
 * coordinator), the replicas need a moment to re-point or reconnect (a walreceiver retries every
 * wal_retrieve_retry_interval, 5 s by default): until one has streamed, or this long, a healthy
 * replica counts as attached, and a non-strict primary does not go asynchronous for want of it. */
#define ATTACH_GRACE_MS 10000
/* After an APPLY, walsenders and backends reload the setting on their next loop: poll a little
 * later so that the LSN read then is past everything acknowledged under the old setting. */
#define AFTER_APPLY_MS 200
/* A standby name no region's standby can use ('.' is not allowed in region or slot names). */
#define NO_STANDBY "aragora.none"

enum busy { BUSY_NONE = 0, BUSY_POLL, BUSY_APPLY, BUSY_COMMIT };

static uint64_t now_ms(const struct afc_syncrep *r)
{
    return uv_now(r->d->loop);
}

static const struct afc_state *state_of(const struct afc_syncrep *r)
{
    return afc_node_state(&r->d->node);
}

static unsigned n_members(const struct afc_state *s)
{
    return s->n_members < AFC_MAX_MEMBERS ? s->n_members : AFC_MAX_MEMBERS;
}

static int self_index(const struct afc_syncrep *r)
{
    const struct afc_state *s = state_of(r);
    for (unsigned i = 0; i < n_members(s); i++) {
        if (strcmp(s->members[i].name, r->d->cfg.region) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* ---- names ---- */

/* The slot name of a region (executor.c): '-' is not allowed in slot names. */
static void slot_of(const char *region, char *out, size_t cap)
{
    snprintf(out, cap, "%s", region);
    for (char *c = out; *c; c++) {
        *c = *c == '-' ? '_' : *c;
    }
}

/* The member a standby name stands for: its region name, or its slot name (what the executor
 * writes as application_name). -1 if none. */
static int member_of(const struct afc_state *s, const char *name)
{
    char slot[AFC_NAME_MAX];
    for (unsigned i = 0; i < n_members(s); i++) {
        slot_of(s->members[i].name, slot, sizeof slot);
        if (strcmp(name, s->members[i].name) == 0 || strcmp(name, slot) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* The name to write for member j: the application_name it streams under in the last poll;
 * else the name the current setting already uses for it (so that a standby reconnecting does
 * not make us rewrite the setting); else its slot name. */
static const char *standby_name(const struct afc_syncrep *r, unsigned j, const char *slot)
{
    for (unsigned k = 0; r != NULL && r->have_live && k < r->n_rows; k++) {
        if (r->rows[k].member == (int)j && strcmp(r->rows[k].state, "streaming") == 0) {
            return r->rows[k].application_name;
        }
    }
    return r != NULL && r->have_live && r->named_as[j][0] != '\0' ? r->named_as[j] : slot;
}

static void append_name(char *buf, size_t cap, const char *name, bool first)
{
    size_t off = strlen(buf);
    bool plain = strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(name);
    snprintf(buf + off, cap - off, "%s%s%s%s", first ? "" : ", ", plain ? "" : "\"", name,
             plain ? "" : "\"");
}

void afc_syncrep_format(const struct afc_state *s, const struct afc_syncrep *r, bool active,
                        const bool *set, char *buf, size_t cap)
{
    char slot[AFC_NAME_MAX];
    bool first = true;
    buf[0] = '\0';
    if (!active) {
        return;
    }
    snprintf(buf, cap, "ANY 1 (");
    for (unsigned j = 0; j < n_members(s); j++) {
        if (set[j]) {
            slot_of(s->members[j].name, slot, sizeof slot);
            append_name(buf, cap, standby_name(r, j, slot), first);
            first = false;
        }
    }
    if (first) {
        append_name(buf, cap, NO_STANDBY, true);
    }
    size_t off = strlen(buf);
    snprintf(buf + off, cap - off, ")");
}

/* Which members synchronous_standby_names names, and as what: every token (a double-quoted
 * name, or a run of characters other than space , ( ) ") that is a member's region or slot
 * name. */
static void parse_named(struct afc_syncrep *r, const char *v, bool *named)
{
    const struct afc_state *s = state_of(r);
    char tok[AFC_NAME_MAX * 2];
    memset(named, 0, sizeof(bool) * AFC_MAX_MEMBERS);
    memset(r->named_as, 0, sizeof r->named_as);
    while (*v != '\0') {
        size_t n;
        if (*v == '"') {
            n = strcspn(v + 1, "\"");
            snprintf(tok, sizeof tok, "%.*s", (int)(n < sizeof tok ? n : sizeof tok - 1), v + 1);
            v += n + 1 + (v[n + 1] == '"');
        } else {
            n = strcspn(v, " ,()\"");
            if (n == 0) {
                v++;
                continue;
            }
            snprintf(tok, sizeof tok, "%.*s", (int)(n < sizeof tok ? n : sizeof tok - 1), v);
            v += n;
        }
        int m = member_of(s, tok);
        if (m >= 0) {
            named[m] = true;
            snprintf(r->named_as[m], sizeof r->named_as[m], "%.31s", tok); /* a name: fits */
        }
    }
}

/* ---- running psql ---- */

static void run_done_cb(struct afc_run *run, const struct afc_run_result *res, void *data);

static int run_psql(struct afc_syncrep *r, enum busy what, const char *const *stmts,
                    unsigned timeout_ms)
{
    const struct afc_config *c = &r->d->cfg;
    struct afc_psql p;
    afc_psql_build(&p, c, stmts);
    struct afc_run_options opt = {.argv = p.argv, .run_as = c->pg_run_as, .timeout_ms = timeout_ms};
    struct afc_err err = {0};
    if (afc_run_start(r->d->loop, &opt, run_done_cb, r, NULL, &err) != 0) {
        snprintf(r->last_error, sizeof r->last_error, "%.120s", err.msg);
        afc_warn("synchronous standbys of %s: %s", c->region, err.msg);
        return -1;
    }
    r->busy = what;
    return 0;
}

static void start_poll(struct afc_syncrep *r)
{
    static const char *const stmts[] = {
        "SELECT 'S|' || pg_current_wal_lsn() || '|' || current_setting('synchronous_standby_names')"
        " UNION ALL SELECT 'R|' || coalesce(flush_lsn, '0/0'::pg_lsn) || '|' || "
        "coalesce(state, '') || '|' || coalesce(sync_state, '') || '|' || "
        "coalesce(application_name, '') FROM pg_stat_replication",
        NULL};
    if (run_psql(r, BUSY_POLL, stmts, POLL_TIMEOUT_MS) != 0) {
        r->next_poll_ms = now_ms(r) + r->d->cfg.probe_local_ms;
    }
}

static uint64_t parse_lsn(const char *s)
{
    unsigned long hi = 0, lo = 0;
    return sscanf(s, "%lx/%lx", &hi, &lo) == 2 ? ((uint64_t)hi << 32) | lo : 0;
}

/* "R|flush|state|sync_state|application_name" */
static void parse_row(struct afc_syncrep *r, const char *line)
{
    struct afc_syncrep_row *w = &r->rows[r->n_rows];
    char flush[32];
    int used = 0;
    memset(w, 0, sizeof *w);
    if (r->n_rows >= AFC_SYNCREP_ROWS ||
        sscanf(line, "R|%31[^|]|%15[^|]|%15[^|]|%n", flush, w->state, w->sync_state, &used) < 3 ||
        used == 0) {
        return;
    }
    snprintf(w->application_name, sizeof w->application_name, "%s", line + used);
    w->flush_lsn = parse_lsn(flush);
    w->member = member_of(state_of(r), w->application_name);
    r->n_rows++;
}

/* The poll's output into r->live, r->value and r->rows. false if it is not what was asked. */
static bool parse_poll(struct afc_syncrep *r, const char *out)
{
    const struct afc_state *s = state_of(r);
    struct afc_sync_live *live = &r->live;
    bool have_s = false;
    memset(live, 0, sizeof *live);
    r->n_rows = 0;
    for (const char *line = out; *line != '\0';) {
        size_t n = strcspn(line, "\n");
        char buf[AFC_SYNCREP_VALUE + 64];
        snprintf(buf, sizeof buf, "%.*s", (int)(n < sizeof buf ? n : sizeof buf - 1), line);
        if (strncmp(buf, "S|", 2) == 0) {
            char *bar = strchr(buf + 2, '|');
            have_s = bar != NULL;
            live->current_lsn = parse_lsn(buf + 2);
            snprintf(r->value, sizeof r->value, "%s", bar != NULL ? bar + 1 : "");
        } else if (strncmp(buf, "R|", 2) == 0) {
            parse_row(r, buf);
        }
        line += n + (line[n] == '\n');
    }
    for (unsigned k = 0; k < r->n_rows; k++) {
        const struct afc_syncrep_row *w = &r->rows[k];
        if (w->member >= 0 && strcmp(w->state, "streaming") == 0) {
            live->streaming[w->member] = true;
            if (w->flush_lsn > live->flush_lsn[w->member]) {
                live->flush_lsn[w->member] = w->flush_lsn;
            }
        }
    }
    parse_named(r, r->value, live->named);
    live->active = strspn(r->value, " ") != strlen(r->value);
    r->have_live = have_s; /* the rows were read for format's application names */
    char mine[AFC_SYNCREP_VALUE];
    afc_syncrep_format(s, r, live->active, live->named, mine, sizeof mine);
    live->exact = strcmp(mine, r->value) == 0;
    return have_s;
}

/* ---- acting on the plan ---- */

static bool still_managing(const struct afc_syncrep *r)
{
    const struct afc_state *s = state_of(r);
    int64_t left;
    return !r->stopping && r->managing && s->epoch == r->epoch &&
           strcmp(s->primary, r->d->cfg.region) == 0 && afc_agent_lease(r->d, &left);
}

static void commit_cb(void *data, int status, enum afc_apply_result result)
{
    struct afc_syncrep *r = data;
    if (r->stopping) {
        return;
    }
    r->busy = BUSY_NONE;
    r->next_poll_ms = now_ms(r);
    if (status != 0 || (result != AFC_APPLY_OK && result != AFC_APPLY_NOOP)) {
        snprintf(r->last_error, sizeof r->last_error, "sync-set not applied: %s / %s",
                 afc_strerror(status), afc_apply_result_name(result));
        afc_info("synchronous standbys of %s: %s; will retry", r->d->cfg.region, r->last_error);
        r->next_poll_ms = now_ms(r) + r->d->cfg.probe_local_ms;
    }
}

static void commit(struct afc_syncrep *r, const struct afc_sync_plan *p)
{
    const struct afc_state *s = state_of(r);
    struct afc_cmd cmd;
    afc_cmd_start(&cmd, AFC_OP_SYNC_SET, r->d->cfg.region);
    snprintf(cmd.u.sync_set.region, AFC_NAME_MAX, "%s", r->d->cfg.region);
    cmd.u.sync_set.epoch = r->epoch;
    cmd.u.sync_set.active = p->active;
    for (unsigned j = 0; p->active && j < n_members(s); j++) {
        if (p->standby[j]) {
            snprintf(cmd.u.sync_set.standbys[cmd.u.sync_set.n_standbys++], AFC_NAME_MAX, "%s",
                     s->members[j].name);
        }
    }
    snprintf(cmd.u.sync_set.detail, sizeof cmd.u.sync_set.detail, "%s", p->why);
    afc_info("synchronous standbys of %s: committing %u standby(s)%s (%s)", r->d->cfg.region,
             cmd.u.sync_set.n_standbys, p->active ? "" : ", asynchronous", p->why);
    if (afc_report_send(r->d, &cmd, commit_cb, r) == 0) {
        r->busy = BUSY_COMMIT;
    } else {
        r->next_poll_ms = now_ms(r) + r->d->cfg.probe_local_ms;
    }
}

static void apply(struct afc_syncrep *r, const struct afc_sync_plan *p)
{
    char set[AFC_SYNCREP_VALUE + 96];
    afc_syncrep_format(state_of(r), r, p->active, p->standby, r->applying, sizeof r->applying);
    /* the value holds only names of [a-z0-9_.-], double quotes, commas and parentheses (the
     * application names used are those that name a member) */
    snprintf(set, sizeof set, "ALTER SYSTEM SET synchronous_standby_names = '%s'", r->applying);
    const char *const stmts[] = {set, "SELECT pg_reload_conf()", NULL};
    afc_info("synchronous standbys of %s: setting synchronous_standby_names = '%s' (%s)",
             r->d->cfg.region, r->applying, p->why);
    run_psql(r, BUSY_APPLY, stmts, APPLY_TIMEOUT_MS);
}

/* Events on transitions of the plan's direction (docs/events.md). */
static void report_transitions(struct afc_syncrep *r, const struct afc_sync_plan *p)
{
    const char *region = r->d->cfg.region;
    if (p->degraded && !r->said_degraded) {
        afc_event("sync-degraded",
                  "region=%s epoch=%" PRIu64
                  " reason=\"no synchronous standby attached\" next=asynchronous",
                  region, r->epoch);
    } else if (!p->degraded && r->said_degraded) {
        const struct afc_state *s = state_of(r);
        char names[AFC_SYNCREP_VALUE] = "";
        for (unsigned j = 0; j < n_members(s); j++) {
            if (p->target[j]) {
                size_t off = strlen(names);
                snprintf(names + off, sizeof names - off, "%s%s", off ? "," : "",
                         s->members[j].name);
            }
        }
        afc_event("sync-restored", "region=%s epoch=%" PRIu64 " standbys=%s", region, r->epoch,
                  names);
    }
    if (p->blocking && !r->said_blocking) {
        afc_event("sync-blocking",
                  "region=%s epoch=%" PRIu64
                  " reason=\"no synchronous standby attached, sync_strict\" commits=waiting",
                  region, r->epoch);
    }
    r->said_degraded = p->degraded;
    r->said_blocking = p->blocking;
}

static void plan_and_act(struct afc_syncrep *r)
{
    const struct afc_state *s = state_of(r);
    const struct afc_config *c = &r->d->cfg;
    int self = self_index(r);
    if (self < 0 || !still_managing(r)) {
        return;
    }
    struct afc_sync_input in = {.state = s,
                                .self = (unsigned)self,
                                .strict = c->repl_sync_strict,
                                .live = &r->live,
                                .ref_lsn = r->ref_lsn};
    for (unsigned j = 0; j < n_members(s); j++) {
        r->streamed[j] = r->streamed[j] || r->live.streaming[j];
        in.awaited[j] = now_ms(r) < r->grace_until_ms && !r->streamed[j];
        const struct afc_config_member *m = NULL;
        for (unsigned k = 0; k < c->n_members; k++) {
            m = strcmp(c->members[k].name, s->members[j].name) == 0 ? &c->members[k] : m;
        }
        in.excluded[j] = m == NULL || m->nofailover || m->postgres[0] == '\0';
    }
    afc_sync_plan(&in, &r->plan);
    report_transitions(r, &r->plan);
    r->next_poll_ms = now_ms(r) + c->probe_local_ms;
    switch (r->plan.step) {
    case AFC_SYNC_COMMIT:
        commit(r, &r->plan);
        break;
    case AFC_SYNC_APPLY:
        apply(r, &r->plan);
        break;
    case AFC_SYNC_WAIT:
        if (r->ref_lsn == 0 && r->plan.need_lsn != 0) {
            r->ref_lsn = r->plan.need_lsn; /* the LSN when the shrink was first seen */
        }
        break;
    case AFC_SYNC_NONE:
        break;
    }
}

static void run_done_cb(struct afc_run *run, const struct afc_run_result *res, void *data)
{
    struct afc_syncrep *r = data;
    (void)run;
    if (r->stopping) {
        return;
    }
    enum busy what = (enum busy)r->busy;
    bool ok = !res->timed_out && res->term_signal == 0 && res->exit_status == 0;
    r->busy = BUSY_NONE;
    r->next_poll_ms = now_ms(r) + r->d->cfg.probe_local_ms;
    if (!ok) {
        char how[96];
        afc_run_describe(res, how, sizeof how);
        snprintf(r->last_error, sizeof r->last_error, "%.60s: %.60s", how, res->output);
        afc_warn("synchronous standbys of %s: while %s: %s: %s", r->d->cfg.region,
                 what == BUSY_POLL ? "polling" : "setting synchronous_standby_names", how,
                 res->output);
        return;
    }
    r->last_error[0] = '\0';
    if (what == BUSY_APPLY) {
        afc_event("sync-standby-names", "region=%s epoch=%" PRIu64 " value='%s'", r->d->cfg.region,
                  r->epoch, r->applying);
        r->ref_lsn = 0; /* read again on a poll after the reload has taken effect */
        r->next_poll_ms = now_ms(r) + AFTER_APPLY_MS;
        return;
    }
    if (!r->managing || !parse_poll(r, res->output)) {
        return;
    }
    r->polled_at_ms = now_ms(r);
    plan_and_act(r);
}

/* ---- the tick ---- */

void afc_syncrep_init(struct afc_syncrep *r, struct afc_daemon *d)
{
    memset(r, 0, sizeof *r);
    r->d = d;
}

void afc_syncrep_tick(struct afc_syncrep *r, bool managing)
{
    const struct afc_state *s = state_of(r);
    r->managing = managing;
    if (!managing) {
        r->epoch = 0;
        r->have_live = false;
        r->said_degraded = r->said_blocking = false;
        return;
    }
    if (r->epoch != s->epoch) { /* newly primary here (a promotion, or this process started) */
        r->epoch = s->epoch;
        r->grace_until_ms = now_ms(r) + ATTACH_GRACE_MS;
        memset(r->streamed, 0, sizeof r->streamed);
        r->ref_lsn = 0;
        r->have_live = false;
        r->next_poll_ms = now_ms(r);
    }
    if (r->busy == BUSY_NONE && now_ms(r) >= r->next_poll_ms) {
        start_poll(r);
    }
}

void afc_syncrep_stop(struct afc_syncrep *r)
{
    r->stopping = true;
}

/* ---- status ---- */

static const char *phase(const struct afc_syncrep *r)
{
    if (r->plan.blocking) {
        return "blocking"; /* strict: no standby attached, commits wait */
    }
    if (r->plan.degraded) {
        return r->plan.step == AFC_SYNC_NONE ? "async" : "degrading";
    }
    switch (r->plan.step) {
    case AFC_SYNC_NONE:
        return "sync";
    case AFC_SYNC_WAIT:
        return "waiting";
    default:
        return "changing";
    }
}

static json_t *lsn_json(uint64_t lsn)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
    return json_string(buf);
}

json_t *afc_syncrep_json(const struct afc_syncrep *r)
{
    if (r == NULL || !r->managing || !r->have_live) {
        return json_null();
    }
    const struct afc_state *s = state_of(r);
    json_t *rows = json_array();
    for (unsigned k = 0; rows != NULL && k < r->n_rows; k++) {
        const struct afc_syncrep_row *w = &r->rows[k];
        json_array_append_new(
            rows, json_pack("{s:s, s:o, s:s, s:s, s:o}", "application_name", w->application_name,
                            "region",
                            w->member >= 0 ? json_string(s->members[w->member].name) : json_null(),
                            "state", w->state, "sync_state", w->sync_state, "flush_lsn",
                            lsn_json(w->flush_lsn)));
    }
    return json_pack("{s:s, s:s, s:s, s:o, s:I, s:o, s:o}", "region", r->d->cfg.region, "phase",
                     phase(r), "synchronous_standby_names", r->value, "current_lsn",
                     lsn_json(r->live.current_lsn), "polled_ms_ago",
                     (json_int_t)(now_ms(r) - r->polled_at_ms), "standbys", rows, "last_error",
                     r->last_error[0] ? json_string(r->last_error) : json_null());
}
