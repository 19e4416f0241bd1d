/*
 * The failover step machine's table and the names of its enums (include/afc/failover.h).
 *
 * The step table is the only place that says which step may follow which (§5 of the design):
 * apply (state_failover.c) checks every FAILOVER_STEP against it, so an illegal transition is
 * rejected identically on every node instead of being scattered as `step = X` assignments.
 *
 * Pure: libc only.
 */
#include <stddef.h>

#include "afc/failover.h"

static const char *const step_names[AFC_FO__COUNT] = {
#define AFC_FO_NAME(e, s) [e] = s,
    AFC_FO_STEPS(AFC_FO_NAME)
#undef AFC_FO_NAME
};

const char *afc_fo_step_name(enum afc_fo_step s)
{
    if ((unsigned)s >= AFC_FO__COUNT) {
        return "unknown";
    }
    return step_names[s];
}

const char *afc_pg_role_name(enum afc_pg_role r)
{
    switch (r) {
    case AFC_PG_UNKNOWN:
        return "unknown";
    case AFC_PG_PRIMARY:
        return "primary";
    case AFC_PG_REPLICA:
        return "replica";
    }
    return "invalid";
}

/* allowed[from][to]. Abort is allowed up to FENCED; after PROMOTED the sequence only moves forward
 * (a promoted region has accepted writes on a new timeline: aborting would strand them). */
static const bool allowed[AFC_FO__COUNT][AFC_FO__COUNT] = {
    [AFC_FO_DECIDED] = {[AFC_FO_FENCED] = true, [AFC_FO_ABORTED] = true},
    [AFC_FO_FENCED] = {[AFC_FO_PROMOTED] = true, [AFC_FO_ABORTED] = true},
    [AFC_FO_PROMOTED] = {[AFC_FO_DONE] = true},
};

bool afc_fo_step_allowed(enum afc_fo_step from, enum afc_fo_step to)
{
    if ((unsigned)from >= AFC_FO__COUNT || (unsigned)to >= AFC_FO__COUNT) {
        return false;
    }
    return allowed[from][to];
}

bool afc_fo_step_is_final(enum afc_fo_step s)
{
    return s == AFC_FO_NONE || s == AFC_FO_DONE || s == AFC_FO_ABORTED;
}
