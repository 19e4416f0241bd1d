/*
 * The failover agent: what each coordinator does about PostgreSQL (ARCHITECTURE.md §4, §5).
 *
 * On every node:
 *  - probes every region's PostgreSQL (pg_probe) and reports each significant change to the leader
 *    as an AFC_OP_OBSERVE (report.c), retrying until it is committed;
 *  - if its region is the authorized primary, renews the write lease through the log every
 *    lease_renew_ms, and counts the lease as valid until send time + lease_ms of the last renewal
 *    that was applied (§4.2); when the lease is gone, or the region is no longer authorized, it
 *    fences its own PostgreSQL (fast stop).
 * On the ready leader only:
 *  - every tick runs the pure decision core (afc_decide) and proposes what it says: adopting the
 *    running primary as epoch 1 at bootstrap, or beginning a failover.
 */
#ifndef AFC_AGENT_H
#define AFC_AGENT_H

#include <jansson.h>

#include <stdbool.h>
#include <stdint.h>

#include "afc/error.h"
#include "afc/failover.h"

struct afc_daemon;
struct afc_agent;

/* Create and start the agent (no-op agent when no member has a `postgres` conninfo). */
int afc_agent_start(struct afc_daemon *d, struct afc_err *err);
/* Stop timers and the prober; cb(d) once everything is closed. */
void afc_agent_stop(struct afc_daemon *d, void (*cb)(struct afc_daemon *d));
/* Free the agent once the loop has ended (callbacks of local proposals may run until then). */
void afc_agent_free(struct afc_daemon *d);

/* The node's role/readiness changed (from the node hook). */
void afc_agent_role_changed(struct afc_daemon *d, bool ready);
/* An entry was applied (from the node hook): notices renewals of our own lease. */
void afc_agent_applied(struct afc_daemon *d);

/* The decision core's inputs as of now, exactly as the live decision uses them (cfg is filled
 * and in->cfg points at it): for what-if questions such as /v1/decision?assume_dead=R. */
void afc_agent_decide_input(const struct afc_daemon *d, struct afc_decide_input *in,
                            struct afc_decide_config *cfg);
/* Run the decision core as of now, for /v1/decision. */
void afc_agent_decide(const struct afc_daemon *d, struct afc_decision *out);

/* This node's live view of member `index` (config order), NULL if not probed. */
const struct afc_pg_obs *afc_agent_obs(const struct afc_daemon *d, unsigned index);
/* Local lease view: held (our region is primary and the lease is valid now) and ms left. */
bool afc_agent_lease(const struct afc_daemon *d, int64_t *remaining_ms);
/* The in-database fence as this node keeps it (fence.h), for /v1/cluster. */
json_t *afc_agent_fence_json(const struct afc_daemon *d);
/* The synchronous standby set as this node keeps it while it is the primary in sync mode
 * (syncrep.h: synchronous_standby_names, pg_stat_replication), JSON null otherwise. */
json_t *afc_agent_sync_json(const struct afc_daemon *d);

#endif
