/*
 * This region's Redis learns the authorized primary (ARCHITECTURE.md §5 step 5, §6): every
 * coordinator writes `aragora:primary` in its own region's Redis, compare-by-epoch (redis_pub.c's
 * script: an older epoch never overwrites a newer one), and commits `published` for a failover's
 * epoch so that the receipt shows when each region knew. For a failover it waits until DNS has
 * been moved (`routed`), or until routing has been pending for 10 s — clients that read Redis are
 * not held hostage by a DNS outage; an adopted epoch is published at once. New history events go
 * to the `aragora:events` channel as JSON. Redis being down delays nothing else: writes are
 * retried in the background and the latest one wins.
 */
#ifndef AFC_PUBLISHER_H
#define AFC_PUBLISHER_H

#include <jansson.h>

#include "afc/error.h"

struct afc_daemon;
struct afc_publisher;

/* NULL *out when redis.url is not set. */
int afc_publisher_new(struct afc_daemon *d, struct afc_publisher **out, struct afc_err *err);
/* Closes the connection (pending callbacks report "closed" and are ignored), frees; done (may be
 * NULL) runs once closed. */
void afc_publisher_close(struct afc_publisher *p, void (*done)(void *arg), void *arg);
void afc_publisher_tick(struct afc_publisher *p);
/* {"url", "state", "holds": {epoch, region, host, port} | null, "agrees", "checked",
 * "last_error"}; null without Redis. */
json_t *afc_publisher_json(const struct afc_publisher *p);

#endif
