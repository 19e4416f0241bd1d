/*
 * The primary's synchronous standby set (replication.mode: sync; docs/failover.md "Synchronous
 * mode"), kept by the primary's coordinator (coordinator/syncrep.c).
 *
 * While this region is the authorized primary, holds the lease and its PostgreSQL runs as
 * primary, the agent's tick calls afc_syncrep_tick(). It polls PostgreSQL with psql on the loop
 * (synchronous_standby_names, pg_current_wal_lsn(), pg_stat_replication), asks the pure planner
 * (afc_sync_plan, coordinator/syncplan.c) for the next step and does it: commit a sync-set entry
 * through the log (report.c), or ALTER SYSTEM SET synchronous_standby_names + pg_reload_conf().
 * One thing at a time; the loop never blocks.
 */
#ifndef AFC_SYNCREP_H
#define AFC_SYNCREP_H

#include <jansson.h>

#include <stdbool.h>
#include <stdint.h>

#include "afc/failover.h"
#include "afc/state.h"

struct afc_daemon;

#define AFC_SYNCREP_ROWS  16  /* pg_stat_replication rows kept for display */
#define AFC_SYNCREP_VALUE 512 /* synchronous_standby_names as read or written */

/* One pg_stat_replication row, as last polled. */
struct afc_syncrep_row {
    char application_name[64];
    char state[16];      /* streaming, catchup, startup, backup, stopping */
    char sync_state[16]; /* quorum, sync, potential, async */
    uint64_t flush_lsn;
    int member; /* state member index it names (by region or slot name), -1 if none */
};

struct afc_syncrep {
    struct afc_daemon *d;
    bool stopping;
    int busy; /* what is in flight: 0 nothing; see syncrep.c */
    bool managing;
    afc_epoch epoch;                /* the epoch it manages; 0 = not managing */
    uint64_t grace_until_ms;        /* members not streamed yet are awaited until then */
    bool streamed[AFC_MAX_MEMBERS]; /* has streamed from us since we manage this epoch */
    uint64_t next_poll_ms;
    uint64_t ref_lsn; /* LSN when PostgreSQL's set last shrank (0 = not known yet) */
    /* the last poll */
    bool have_live;
    uint64_t polled_at_ms;
    struct afc_sync_live live;
    char value[AFC_SYNCREP_VALUE];                /* synchronous_standby_names */
    char named_as[AFC_MAX_MEMBERS][AFC_NAME_MAX]; /* the name it uses for each member, "" */
    unsigned n_rows;
    struct afc_syncrep_row rows[AFC_SYNCREP_ROWS];
    /* the last plan, and what was reported */
    struct afc_sync_plan plan;
    char applying[AFC_SYNCREP_VALUE]; /* the value of the last APPLY */
    bool said_degraded, said_blocking;
    char last_error[128];
};

void afc_syncrep_init(struct afc_syncrep *r, struct afc_daemon *d);

/* One step of work. `managing`: sync mode, this region is the authorized primary, holds the
 * lease, and its PostgreSQL runs as primary (the agent knows). When false, nothing starts and the
 * live view is dropped (a running statement completes and is ignored). */
void afc_syncrep_tick(struct afc_syncrep *r, bool managing);

/* No more actions start; a running one completes silently. */
void afc_syncrep_stop(struct afc_syncrep *r);

/*
 * synchronous_standby_names for `set` (state member order): "" when !active; else
 * 'ANY 1 (a, b)' naming each member as its walsender's application_name in `r`'s last poll when
 * it streams (r may be NULL), else as the setting polled last names it, else by its slot name
 * (region with '-' → '_'); double-quoted when it has characters other than [a-z0-9_]. An active
 * empty set names no real standby (ANY 1 ("aragora.none"): '.' is in no region or slot name): every
 * commit waits. buf has at least AFC_SYNCREP_VALUE bytes.
 */
void afc_syncrep_format(const struct afc_state *s, const struct afc_syncrep *r, bool active,
                        const bool *set, char *buf, size_t cap);

/* The live view for /v1/cluster ("replication"."here"), or JSON null when not managing. */
json_t *afc_syncrep_json(const struct afc_syncrep *r);

#endif
