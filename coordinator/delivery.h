/*
 * After the promotion: telling the clients (ARCHITECTURE.md §5 steps 4–5, §6). Owns the HTTP
 * client that the DNS providers and webhooks use, the DNS router (router.c, leader only), this
 * region's Redis publication and the operator's hooks. Driven by the agent's tick; nothing here
 * ever delays the database side of a failover.
 */
#ifndef AFC_DELIVERY_H
#define AFC_DELIVERY_H

#include <jansson.h>

#include "afc/error.h"

struct afc_daemon;

/* Sets d->delivery. Errors: a DNS provider that cannot be set up from the configuration. */
int afc_delivery_start(struct afc_daemon *d, struct afc_err *err);
void afc_delivery_tick(struct afc_daemon *d);
/* Cancels what runs (no callback afterwards), closes the HTTP client, frees; cb once done. */
void afc_delivery_stop(struct afc_daemon *d, void (*cb)(struct afc_daemon *d));
/* For /v1/cluster: {"dns": ..., "redis": ...} (this node's view; null when not configured). */
json_t *afc_delivery_json(const struct afc_daemon *d);

/* The operator's pre_promote hook for this node's promotion in `epoch` (docs/hooks.md): cb runs
 * once with allow or veto. Returns AFC_EALREADY when no pre_promote hook is configured (then cb
 * never runs: promote), another error if it could not start (then cb never runs: the caller
 * treats it as a veto). */
int afc_delivery_pre_promote(struct afc_daemon *d, uint64_t epoch, const char *previous,
                             void (*cb)(void *data, bool allow, const char *reason), void *data);

#endif
