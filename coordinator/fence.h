/*
 * Keeping this node's PostgreSQL's in-database fence (pg_fence/, docs/fencing.md) in step with
 * the write lease: every lease renewal applied here also renews the fence to the same deadline;
 * a demoted node's fence is closed. Through psql on the loop (afc_run), one statement at a time;
 * while one runs only the latest wish is kept. Enabled by postgres.fence in the configuration.
 */
#ifndef AFC_FENCE_H
#define AFC_FENCE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

struct afc_daemon;
struct afc_fence;

/* NULL when postgres.fence is off (every call below then does nothing). */
struct afc_fence *afc_fence_new(struct afc_daemon *d);
/* No new statement starts; a running one completes silently. Frees. */
void afc_fence_free(struct afc_fence *f);
/* Open the fence for `epoch` until `until_ms` (the daemon's monotonic clock): the ttl is computed
 * when the statement is sent; a deadline already past sends nothing. */
void afc_fence_renew(struct afc_fence *f, uint64_t epoch, uint64_t until_ms);
/* Close it now for `epoch` (demoted, or about to be stopped or rewound). */
void afc_fence_shut(struct afc_fence *f, uint64_t epoch);
/* {"enabled", "renewed_epoch", "renewals", "failures", "last_error"}. */
json_t *afc_fence_json(const struct afc_fence *f);

/* The statement that arms a node about to be promoted, for the executor's promotion script:
 * "SELECT aragora.fence_renew(EPOCH, TTL)" into buf, or "" when the fence is off. */
void afc_fence_arm_sql(const struct afc_daemon *d, uint64_t epoch, unsigned ttl_ms, char *buf,
                       size_t cap);

#endif
