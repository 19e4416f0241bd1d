/*
 * Shared by the executor's files (coordinator/executor.c: the failover steps; executor_rejoin.c:
 * keeping the local PostgreSQL running and bringing a deposed primary back as a replica).
 */
#ifndef AFC_EXECUTOR_INTERNAL_H
#define AFC_EXECUTOR_INTERNAL_H

#include <stdio.h>
#include <string.h>

#include "afc/run.h"
#include "coordinator/daemon.h"
#include "coordinator/executor.h"

#define SQL_TIMEOUT_MS 15000

enum action {
    ACT_NONE = 0,
    ACT_DETACH,
    ACT_CATCHUP,
    ACT_PROMOTE,
    ACT_REPOINT,
    ACT_START,
    ACT_QUARANTINE,
    ACT_SLOTS,
    ACT_REWIND,
    ACT_BASEBACKUP,
    ACT_DIVERGE_CHECK, /* a replica that does not follow the new primary: did it diverge? */
    ACT_STOP,          /* stopping a diverged replica so that it can be rewound */
};

static inline uint64_t now_ms(const struct afc_executor *x)
{
    return uv_now(x->d->loop);
}

static inline const struct afc_state *state_of(const struct afc_executor *x)
{
    return afc_node_state(&x->d->node);
}

static inline const char *self_name(const struct afc_executor *x)
{
    return x->d->cfg.region;
}

static inline const struct afc_config_member *cfg_member(const struct afc_executor *x,
                                                         const char *name)
{
    for (unsigned i = 0; i < x->d->cfg.n_members; i++) {
        if (strcmp(x->d->cfg.members[i].name, name) == 0) {
            return &x->d->cfg.members[i];
        }
    }
    return NULL;
}

/* Replication slot name of a region: '-' is not allowed in slot names. */
static inline void slot_name(const char *region, char *out, size_t cap)
{
    snprintf(out, cap, "%s", region);
    for (char *c = out; *c; c++) {
        *c = *c == '-' ? '_' : *c;
    }
}

/* Runs argv (as the configured PostgreSQL user) as the executor's one action. */
void exec_start_action(struct afc_executor *x, enum action act, const char *what,
                       const char *const *argv, unsigned timeout_ms);
/* afc_run callback for an action started some other way (x->running set by the caller). */
void exec_run_cb(struct afc_run *run, const struct afc_run_result *res, void *data);

/* executor_rejoin.c: the local PostgreSQL's part of the tick, and its actions' results. */
void exec_local_tick(struct afc_executor *x);
void exec_local_done(struct afc_executor *x, enum action act, bool ok, const char *output);
/* pg_ctl stop -m fast of the local PostgreSQL, as the executor's action `act`. */
void exec_pg_stop(struct afc_executor *x, enum action act, const char *why);

#endif
