/*
 * Executing the committed failover steps on this node, and keeping its PostgreSQL running
 * (coordinator/executor.c). Driven by the agent's tick; one external action at a time.
 */
#ifndef AFC_EXECUTOR_H
#define AFC_EXECUTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "afc/config.h"
#include "afc/failover.h"
#include "afc/state.h"

struct afc_daemon;

struct afc_executor {
    struct afc_daemon *d;
    int running;   /* enum action in executor.c; 0 = idle */
    char what[64]; /* what the running action is doing, for messages */
    bool stopping;
    /* progress in the current failover (reset when its epoch changes) */
    afc_epoch epoch;
    bool detached;
    enum afc_fo_step step_reported; /* last step this node reported for `epoch` */
    uint64_t catchup_deadline_ms;
    uint64_t planned_deadline_ms; /* switchover: give up if the old primary still runs then */
    uint64_t repointed_at_ms;
    uint64_t promoted_seen_ms; /* leader: when it first saw PROMOTED */
    /* the local PostgreSQL */
    const struct afc_pg_obs *local; /* this node's live view of it (borrowed for the tick) */
    bool local_refused;             /* its last probe failed with nothing listening */
    uint64_t down_since_ms;
    uint64_t hold_until_ms;       /* after a successful start, no local action before this */
    uint64_t restarting_since_ms; /* restarting the authorized primary since (0 = not) */
    bool lease_valid;             /* this node holds the write lease now (from the agent) */
    char rewind_from[AFC_NAME_MAX];
    afc_epoch quarantined_epoch; /* the divergent WAL was saved (or tried) for this epoch */
    unsigned promote_attempts;   /* in this epoch */
    afc_epoch done_epoch;        /* leader: the failover it reported DONE/ABORTED for */
    afc_epoch watch_epoch;       /* leader: the failover step whose progress it is timing */
    enum afc_fo_step watch_step;
    uint64_t watch_since_ms;
    bool hung;    /* test builds: hang-after-decided fired */
    bool fencing; /* set by the agent while it stops our PostgreSQL */
    bool slots_done;
    unsigned slot_attempts;
    /* the rejoin (executor_rejoin.c): pg_rewind, or a base backup when rewinding cannot work */
    afc_epoch rewind_epoch;         /* the epoch whose pg_rewind failures are counted */
    unsigned rewind_failures;       /* consecutive ones that count towards a base backup */
    afc_epoch basebackup_due_epoch; /* a base backup was decided in this epoch (0 = none) */
    bool basebackup_pending;        /* old data directory moved aside, no backup completed yet */
    char moved_aside[AFC_PATH_MAX + 64]; /* where it went */
    uint64_t target_dev, target_ino;     /* the data directory we created for the backup */
    unsigned basebackup_attempts;        /* since it was moved aside */
    uint64_t basebackup_started_ms;
    /* a replica that received WAL past the new primary's fork point cannot follow it */
    uint64_t diverge_checked_at_ms; /* last check (after a re-point that did not take) */
    afc_epoch rewind_needed_epoch;  /* this replica diverged in this epoch: rewind it */
    /* the operator's pre_promote hook, asked once per epoch before this node promotes */
    afc_epoch verdict_epoch;
    int verdict;          /* 0 asked, waiting; 1 allow; 2 veto */
    char veto_reason[96]; /* the hook's first output line, or why it could not run */
};

void afc_executor_init(struct afc_executor *x, struct afc_daemon *d);
/* One step of work: local = this node's live observation of its own PostgreSQL (NULL if not
 * probed), local_refused = its last probe found nothing listening. */
void afc_executor_tick(struct afc_executor *x, const struct afc_pg_obs *local, bool local_refused,
                       bool lease_valid);
/* No more actions start; a running one completes silently. */
void afc_executor_stop(struct afc_executor *x);

#endif
