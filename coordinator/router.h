/*
 * Moving the global DNS name to the authorized primary (ARCHITECTURE.md §5 step 4, §6), on the
 * ready leader only, once per epoch; and every node's view of what the name says now, for status.
 *
 * For the current epoch's primary R (after its promotion is committed — never before — or at once
 * for an epoch that was adopted or set by an operator): read the name (provider get); if its stamp
 * carries a newer epoch, refuse (this leader is behind: `+routing-refused`, never forced); if it
 * already says R at this epoch, go to the check; else compare-and-set from what was read to
 * {R's address, "epoch=N region=R"}. Then ask the authoritative servers until every one answers
 * the new value, and commit `routed` (for a failover's epoch). Failures back off (0.5 s doubling to
 * 30 s, ±25 % jitter, at least the provider's Retry-After) and try again, forever: the database
 * failover never waits for DNS; the first failure of an epoch leaves a `routing-pending` note in
 * the history.
 */
#ifndef AFC_ROUTER_H
#define AFC_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "afc/dns.h"
#include "afc/error.h"
#include "afc/state.h"

struct afc_daemon;
struct afc_http_client;
struct afc_router;

/* NULL *out when dns.provider is none (routing then does nothing and status says so). */
int afc_router_new(struct afc_daemon *d, struct afc_http_client *http, struct afc_router **out,
                   struct afc_err *err);
/* Cancels everything (no callback runs afterwards) and frees. NULL is fine. */
void afc_router_free(struct afc_router *r);
/* From the agent's tick. */
void afc_router_tick(struct afc_router *r);
/* {"provider", "name", "answer": {"agrees", "detail", "checked"}, "routing": {...}} for
 * /v1/cluster; null when there is no router. */
json_t *afc_router_json(const struct afc_router *r);

#endif
