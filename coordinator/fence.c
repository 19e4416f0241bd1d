/*
 * The in-database fence's client side (fence.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "afc/log.h"
#include "afc/run.h"
#include "coordinator/daemon.h"
#include "coordinator/fence.h"
#include "coordinator/psql.h"

#define STATEMENT_TIMEOUT_MS 5000

enum wish { W_NONE = 0, W_RENEW, W_SHUT };

struct afc_fence {
    struct afc_daemon *d;
    bool running, freed;
    /* the latest wish, sent when nothing runs */
    enum wish wish;
    uint64_t epoch;
    uint64_t until_ms;
    /* what happened */
    uint64_t renewed_epoch;
    uint64_t renewals, failures;
    char last_error[AFC_RUN_OUTPUT_MAX > 600 ? 600 : AFC_RUN_OUTPUT_MAX];
};

static void send_wish(struct afc_fence *f);

static void done_cb(struct afc_run *run, const struct afc_run_result *res, void *data)
{
    struct afc_fence *f = data;
    (void)run;
    f->running = false;
    if (f->freed) {
        free(f);
        return;
    }
    if (res->timed_out || res->term_signal != 0 || res->exit_status != 0) {
        char how[96];
        afc_run_describe(res, how, sizeof how);
        snprintf(f->last_error, sizeof f->last_error, "%.96s: %.400s", how, res->output);
        if (f->failures++ == 0 || f->failures % 20 == 0) {
            afc_event("db-fence-failed", "region=%s failures=%" PRIu64 " detail=\"%s\"",
                      f->d->cfg.region, f->failures, f->last_error);
        }
    } else {
        f->renewals++;
    }
    send_wish(f);
}

static void send_wish(struct afc_fence *f)
{
    if (f->running || f->wish == W_NONE) {
        return;
    }
    char sql[160];
    uint64_t now = uv_now(f->d->loop);
    if (f->wish == W_RENEW) {
        if (f->until_ms <= now) {
            f->wish = W_NONE; /* expired before it could be sent: the fence closes on its own */
            return;
        }
        /* the three-argument form counts the ttl from our own clock reading (CLOCK_MONOTONIC,
         * the clock the module uses), so psql's start-up and the connection do not lengthen
         * the fence past the lease */
        snprintf(sql, sizeof sql,
                 "SELECT aragora.fence_renew(%" PRIu64 ", %" PRIu64 ", %" PRIu64 ")", f->epoch,
                 f->until_ms - now, uv_hrtime() / 1000000u);
    } else {
        snprintf(sql, sizeof sql, "SELECT aragora.fence_close(%" PRIu64 ")", f->epoch);
    }
    enum wish sent = f->wish;
    f->wish = W_NONE;
    const struct afc_config *c = &f->d->cfg;
    const char *const stmts[] = {sql, NULL};
    struct afc_psql p;
    afc_psql_build(&p, c, stmts);
    struct afc_run_options opt = {
        .argv = p.argv, .run_as = c->pg_run_as, .timeout_ms = STATEMENT_TIMEOUT_MS};
    struct afc_err err = {0};
    if (afc_run_start(f->d->loop, &opt, done_cb, f, NULL, &err) == 0) {
        f->running = true;
        if (sent == W_RENEW) {
            f->renewed_epoch = f->epoch;
        } else {
            afc_event("db-fence-closed", "region=%s epoch=%" PRIu64, c->region, f->epoch);
        }
    } else {
        f->failures++;
        snprintf(f->last_error, sizeof f->last_error, "%.500s", err.msg);
    }
}

struct afc_fence *afc_fence_new(struct afc_daemon *d)
{
    if (!d->cfg.pg_fence || d->cfg.database_url[0] == '\0') {
        return NULL;
    }
    struct afc_fence *f = calloc(1, sizeof *f);
    if (f != NULL) {
        f->d = d;
    }
    return f;
}

void afc_fence_free(struct afc_fence *f)
{
    if (f == NULL) {
        return;
    }
    if (f->running) {
        f->freed = true; /* done_cb frees it */
        return;
    }
    free(f);
}

void afc_fence_renew(struct afc_fence *f, uint64_t epoch, uint64_t until_ms)
{
    if (f == NULL || f->freed) {
        return;
    }
    f->wish = W_RENEW;
    f->epoch = epoch;
    f->until_ms = until_ms;
    send_wish(f);
}

void afc_fence_shut(struct afc_fence *f, uint64_t epoch)
{
    if (f == NULL || f->freed) {
        return;
    }
    f->wish = W_SHUT;
    f->epoch = epoch;
    send_wish(f);
}

json_t *afc_fence_json(const struct afc_fence *f)
{
    if (f == NULL) {
        return json_pack("{s:b}", "enabled", 0);
    }
    return json_pack("{s:b, s:I, s:I, s:I, s:s}", "enabled", 1, "renewed_epoch",
                     (json_int_t)f->renewed_epoch, "renewals", (json_int_t)f->renewals, "failures",
                     (json_int_t)f->failures, "last_error", f->last_error);
}

void afc_fence_arm_sql(const struct afc_daemon *d, uint64_t epoch, unsigned ttl_ms, char *buf,
                       size_t cap)
{
    if (!d->cfg.pg_fence) {
        snprintf(buf, cap, "%s", "");
        return;
    }
    snprintf(buf, cap, "SELECT aragora.fence_renew(%" PRIu64 ", %u, %" PRIu64 ")", epoch, ttl_ms,
             uv_hrtime() / 1000000u);
}
