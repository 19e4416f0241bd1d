/*
 * A three-region cluster state for the decision-core tests (test_decide.c, test_drain.c): the
 * region names, an observation setter, and the healthy starting point both build on.
 */
#ifndef AFC_TEST_CLUSTER_FIXTURE_H
#define AFC_TEST_CLUSTER_FIXTURE_H

#include <stdio.h>
#include <string.h>

#include "afc/failover.h"
#include "afc/state.h"

static const char *const R[3] = {"us-east-2", "eu-west-1", "ap-south-1"};

static inline void set_obs(struct afc_state *s, int i, int j, bool healthy, enum afc_pg_role role,
                           uint64_t lsn)
{
    struct afc_pg_obs *o = &s->obs[i][j];
    memset(o, 0, sizeof *o);
    o->valid = true;
    o->healthy = healthy;
    o->role = role;
    o->lsn = lsn;
}

/* us-east-2 primary at epoch 3, everyone sees everyone healthy; eu-west-1 (lsn 1000) ahead of
 * ap-south-1 (900). */
static inline void healthy_cluster(struct afc_state *s)
{
    memset(s, 0, sizeof *s);
    s->n_members = 3;
    for (unsigned i = 0; i < 3; i++) {
        s->members[i].id = i + 1;
        snprintf(s->members[i].name, AFC_NAME_MAX, "%s", R[i]);
    }
    s->epoch = 3;
    snprintf(s->primary, AFC_NAME_MAX, "%s", R[0]);
    s->failover.step = AFC_FO_DONE;
    for (int i = 0; i < 3; i++) {
        set_obs(s, i, 0, true, AFC_PG_PRIMARY, 1000);
        set_obs(s, i, 1, true, AFC_PG_REPLICA, 1000);
        set_obs(s, i, 2, true, AFC_PG_REPLICA, 900);
    }
}

#endif
