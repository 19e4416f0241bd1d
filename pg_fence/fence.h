/*
 * Inside the aragora_fence module: what the SQL functions (fence_sql.c) use from the module's
 * core (aragora_fence.c): the shared fence state, the clock and the renew_role setting.
 * Include after postgres.h.
 */
#ifndef AFC_PG_FENCE_H
#define AFC_PG_FENCE_H

#include "fence_core.h"

/* SQLSTATE of a renewal refused because its epoch is stale or was closed here. Class "ZF": a class
 * beginning with I-Z is left to implementations by the SQL standard (A-H and 0-4 are the
 * standard's own), so it cannot collide with a future standard code. */
#define FENCE_ERRCODE_STALE_EPOCH MAKE_SQLSTATE('Z', 'F', '0', '0', '1')

/* ereport(ERROR) unless the module was loaded through shared_preload_libraries (it then has shared
 * memory); `function` names the caller in the message. */
void fence_require_loaded(const char *function);

/* CLOCK_MONOTONIC in nanoseconds: system-wide, so every backend compares against the same clock
 * as the coordinator that computed the lease. */
int64 fence_now_ns(void);

/* A consistent copy of the shared state, without taking a lock (a sequence counter). */
void fence_shared_read(struct fence_state *out);

/* Renew or close under the writers' lock; *before and *after receive the state around the change
 * (equal when a renewal is refused). Never throws while holding the lock. */
enum fence_renew_result fence_shared_renew(uint64 epoch, int64 deadline_ns,
                                           struct fence_state *before, struct fence_state *after);
void fence_shared_close(uint64 epoch, struct fence_state *before, struct fence_state *after);

/* aragora_fence.renew_role: "" = superusers only. */
const char *fence_renew_role(void);

#endif
