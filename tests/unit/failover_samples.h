/*
 * Sample failover commands (observe, renew, failover-begin, failover-step, drain, routed,
 * published, sync-set) and equality,
 * shared by test_codec.c (round trips, truncation, fuzzing over every op) and
 * test_codec_failover.c.
 */
#ifndef AFC_TESTS_FAILOVER_SAMPLES_H
#define AFC_TESTS_FAILOVER_SAMPLES_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "afc/state.h"

/* Fill the op-specific fields of `c` (already zeroed, op set). */
static inline void sample_failover(struct afc_cmd *c)
{
    switch (c->op) {
    case AFC_OP_OBSERVE: {
        struct afc_pg_obs *o = &c->u.observe.obs;
        snprintf(c->u.observe.observer, AFC_NAME_MAX, "eu-west-1");
        snprintf(c->u.observe.target, AFC_NAME_MAX, "us-east-2");
        o->healthy = true;
        o->role = AFC_PG_REPLICA;
        o->timeline = 7;
        o->lsn = 0x16B3748000ULL;
        o->replay_lsn = 0x16B3740000ULL;
        o->lag_ms = 120;
        snprintf(o->upstream, sizeof o->upstream, "us-east-2");
        o->wall_ms = 1718000000100;
        o->seq = 1718000000042;
        break;
    }
    case AFC_OP_RENEW:
        snprintf(c->u.renew.region, AFC_NAME_MAX, "us-east-2");
        c->u.renew.epoch = 7;
        c->u.renew.seq = 991;
        break;
    case AFC_OP_FAILOVER_BEGIN:
        c->u.failover_begin.expect_epoch = 7;
        snprintf(c->u.failover_begin.from, AFC_NAME_MAX, "us-east-2");
        snprintf(c->u.failover_begin.to, AFC_NAME_MAX, "eu-west-1");
        snprintf(c->u.failover_begin.reason, sizeof c->u.failover_begin.reason, "2 of 3 down");
        c->u.failover_begin.forced = true;
        c->u.failover_begin.detected_ms = -3;
        c->u.failover_begin.old_lsn = UINT64_MAX;
        c->u.failover_begin.term = 12;
        break;
    case AFC_OP_DRAIN:
        snprintf(c->u.drain.region, AFC_NAME_MAX, "eu-west-1");
        c->u.drain.drained = true;
        snprintf(c->u.drain.reason, AFC_DETAIL_MAX, "hardware maintenance");
        break;
    case AFC_OP_ROUTED:
        c->u.routed.epoch = 9;
        snprintf(c->u.routed.address, sizeof c->u.routed.address, "2001:db8::10");
        snprintf(c->u.routed.detail, AFC_DETAIL_MAX, "provider=rfc2136 verified=2/2");
        break;
    case AFC_OP_PUBLISHED:
        c->u.published.epoch = 10;
        snprintf(c->u.published.region, AFC_NAME_MAX, "ap-south-1");
        snprintf(c->u.published.detail, AFC_DETAIL_MAX, "redis=written");
        break;
    case AFC_OP_SYNC_SET:
        snprintf(c->u.sync_set.region, AFC_NAME_MAX, "us-east-2");
        c->u.sync_set.epoch = 11;
        c->u.sync_set.active = true;
        c->u.sync_set.n_standbys = 2;
        snprintf(c->u.sync_set.standbys[0], AFC_NAME_MAX, "eu-west-1");
        snprintf(c->u.sync_set.standbys[1], AFC_NAME_MAX, "ap-south-1");
        snprintf(c->u.sync_set.detail, AFC_DETAIL_MAX, "record the synchronous standbys");
        break;
    default:
        c->u.failover_step.epoch = 8;
        c->u.failover_step.step = AFC_FO_PROMOTED;
        c->u.failover_step.timeline = UINT32_MAX;
        c->u.failover_step.lsn = 0x16B374D848ULL;
        snprintf(c->u.failover_step.detail, AFC_DETAIL_MAX, "pg_promote ok");
        break;
    }
}

static inline bool obs_equal(const struct afc_pg_obs *a, const struct afc_pg_obs *b)
{
    return a->healthy == b->healthy && a->role == b->role && a->timeline == b->timeline &&
           a->lsn == b->lsn && a->replay_lsn == b->replay_lsn && a->lag_ms == b->lag_ms &&
           strcmp(a->upstream, b->upstream) == 0 && a->local_dead == b->local_dead &&
           a->wall_ms == b->wall_ms && a->seq == b->seq;
}

/* Op-specific fields equal (the caller compares op, by, wall_ms). */
static inline bool failover_cmd_equal(const struct afc_cmd *a, const struct afc_cmd *b)
{
    switch (a->op) {
    case AFC_OP_OBSERVE:
        return !strcmp(a->u.observe.observer, b->u.observe.observer) &&
               !strcmp(a->u.observe.target, b->u.observe.target) &&
               obs_equal(&a->u.observe.obs, &b->u.observe.obs);
    case AFC_OP_RENEW:
        return !strcmp(a->u.renew.region, b->u.renew.region) &&
               a->u.renew.epoch == b->u.renew.epoch && a->u.renew.seq == b->u.renew.seq;
    case AFC_OP_FAILOVER_BEGIN: {
        const __typeof__(a->u.failover_begin) *x = &a->u.failover_begin, *y = &b->u.failover_begin;
        return x->expect_epoch == y->expect_epoch && !strcmp(x->from, y->from) &&
               !strcmp(x->to, y->to) && !strcmp(x->reason, y->reason) && x->planned == y->planned &&
               x->forced == y->forced && x->detected_ms == y->detected_ms &&
               x->old_lsn == y->old_lsn && x->term == y->term;
    }
    case AFC_OP_DRAIN:
        return !strcmp(a->u.drain.region, b->u.drain.region) &&
               a->u.drain.drained == b->u.drain.drained &&
               !strcmp(a->u.drain.reason, b->u.drain.reason);
    case AFC_OP_ROUTED:
        return a->u.routed.epoch == b->u.routed.epoch &&
               !strcmp(a->u.routed.address, b->u.routed.address) &&
               !strcmp(a->u.routed.detail, b->u.routed.detail);
    case AFC_OP_PUBLISHED:
        return a->u.published.epoch == b->u.published.epoch &&
               !strcmp(a->u.published.region, b->u.published.region) &&
               !strcmp(a->u.published.detail, b->u.published.detail);
    case AFC_OP_SYNC_SET: {
        const __typeof__(a->u.sync_set) *x = &a->u.sync_set, *y = &b->u.sync_set;
        bool same = !strcmp(x->region, y->region) && x->epoch == y->epoch &&
                    x->active == y->active && x->n_standbys == y->n_standbys &&
                    !strcmp(x->detail, y->detail);
        for (unsigned i = 0; same && i < x->n_standbys && i < AFC_MAX_MEMBERS; i++) {
            same = !strcmp(x->standbys[i], y->standbys[i]);
        }
        return same;
    }
    default: {
        const __typeof__(a->u.failover_step) *x = &a->u.failover_step, *y = &b->u.failover_step;
        return x->epoch == y->epoch && x->step == y->step && x->timeline == y->timeline &&
               x->lsn == y->lsn && !strcmp(x->detail, y->detail);
    }
    }
}

#endif
