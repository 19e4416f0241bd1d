/*
 * The fence's SQL functions (created by aragora_fence.sql, docs/fencing.md):
 *
 *   aragora.fence_renew(epoch bigint, ttl_ms integer [, sent_at_ms bigint])
 *   aragora.fence_close(epoch bigint)                  -- both: renew_role or superuser
 *   aragora.fence_state()  -> (epoch, open, remaining_ms)  -- anyone
 *   aragora.fence_epoch()  -> bigint                        -- anyone
 *
 * None of them writes to the database, so they work on a hot standby too: the coordinator arms a
 * replica before promoting it. Their effect is immediate and not transactional (a ROLLBACK does
 * not undo a renewal), like a sequence's nextval.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"

#include "fence.h"

PG_FUNCTION_INFO_V1(aragora_fence_renew);
PG_FUNCTION_INFO_V1(aragora_fence_close);
PG_FUNCTION_INFO_V1(aragora_fence_state);
PG_FUNCTION_INFO_V1(aragora_fence_epoch);

/* Superusers, and members of aragora_fence.renew_role when it is set. This is checked besides
 * the EXECUTE privilege so that a stray GRANT (or a setup run that forgot the REVOKE) does not
 * let any role re-open a fence. */
static void require_renew_privilege(const char *function)
{
    const char *role = fence_renew_role();
    if (superuser())
        return;
    if (role[0] == '\0')
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("aragora fence: permission denied for %s", function),
                        errdetail("aragora_fence.renew_role is not set: only superusers may "
                                  "change the fence.")));
    Oid role_oid = get_role_oid(role, true);
    if (!OidIsValid(role_oid))
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("aragora fence: permission denied for %s", function),
                        errdetail("aragora_fence.renew_role names role \"%s\", which does not "
                                  "exist: only superusers may change the fence.",
                                  role)));
    if (!has_privs_of_role(GetUserId(), role_oid))
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("aragora fence: permission denied for %s", function),
                        errdetail("Only superusers and members of role \"%s\" "
                                  "(aragora_fence.renew_role) may change the fence.",
                                  role)));
}

static uint64 epoch_arg(FunctionCallInfo fcinfo, const char *function)
{
    int64 epoch = PG_GETARG_INT64(0);
    if (epoch <= 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("aragora fence: %s: epoch must be positive, not " INT64_FORMAT,
                               function, epoch)));
    return (uint64)epoch;
}

/* The (epoch, open, remaining_ms) row that fence_state, fence_renew and fence_close return. */
static Datum state_row(FunctionCallInfo fcinfo, const struct fence_state *s, int64 now_ns)
{
    TupleDesc desc;
    Datum values[3];
    bool nulls[3] = {false, false, false};
    if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
        ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                        errmsg("aragora fence: function returning a record called in a context "
                               "that cannot accept one")));
    desc = BlessTupleDesc(desc);
    values[0] = Int64GetDatum((int64)s->epoch);
    values[1] = BoolGetDatum(fence_is_open(s, now_ns));
    values[2] = Int64GetDatum(fence_remaining_ms(s, now_ns));
    return HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
}

Datum aragora_fence_renew(PG_FUNCTION_ARGS)
{
    const char *fn = "fence_renew";
    fence_require_loaded(fn);
    require_renew_privilege(fn);
    uint64 epoch = epoch_arg(fcinfo, fn);
    int32 ttl_ms = PG_GETARG_INT32(1);
    bool has_sent_at = PG_NARGS() > 2;
    int64 sent_at_ms = has_sent_at ? PG_GETARG_INT64(2) : 0;
    if (ttl_ms <= 0)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("aragora fence: fence_renew: ttl_ms must be positive, not %d", ttl_ms)));
    if (sent_at_ms < 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("aragora fence: fence_renew: sent_at_ms must be a CLOCK_MONOTONIC "
                               "time in milliseconds, not " INT64_FORMAT,
                               sent_at_ms)));

    int64 now_ns = fence_now_ns();
    int64 deadline_ns = fence_compute_deadline(now_ns, ttl_ms, has_sent_at, sent_at_ms);
    struct fence_state before, after;
    switch (fence_shared_renew(epoch, deadline_ns, &before, &after)) {
    case FENCE_RENEW_CLOSED:
        ereport(ERROR,
                (errcode(FENCE_ERRCODE_STALE_EPOCH),
                 errmsg("aragora fence: epoch " UINT64_FORMAT " was closed on this node", epoch),
                 errdetail("aragora.fence_close() closed epoch " UINT64_FORMAT
                           " here; only a newer epoch can open the fence again.",
                           before.closed_epoch)));
        break;
    case FENCE_RENEW_STALE:
        ereport(ERROR,
                (errcode(FENCE_ERRCODE_STALE_EPOCH),
                 errmsg("aragora fence: epoch " UINT64_FORMAT
                        " is older than the fence's epoch " UINT64_FORMAT,
                        epoch, before.epoch),
                 errdetail("The fence never goes back to an older epoch: the caller's view of "
                           "the cluster is out of date.")));
        break;
    case FENCE_RENEWED:
        /* log transitions, not every renewal */
        if (!fence_is_open(&before, now_ns) || before.epoch != after.epoch)
            ereport(LOG, (errmsg("aragora fence: opened at epoch " UINT64_FORMAT
                                 " for " INT64_FORMAT " ms",
                                 after.epoch, fence_remaining_ms(&after, now_ns))));
        break;
    }
    return state_row(fcinfo, &after, now_ns);
}

Datum aragora_fence_close(PG_FUNCTION_ARGS)
{
    const char *fn = "fence_close";
    fence_require_loaded(fn);
    require_renew_privilege(fn);
    uint64 epoch = epoch_arg(fcinfo, fn);
    struct fence_state before, after;
    fence_shared_close(epoch, &before, &after);
    int64 now_ns = fence_now_ns();
    if (before.open || before.closed_epoch != after.closed_epoch)
        ereport(LOG, (errmsg("aragora fence: closed at epoch " UINT64_FORMAT
                             " (renewals of epoch " UINT64_FORMAT " or older are refused)",
                             after.epoch, after.closed_epoch)));
    return state_row(fcinfo, &after, now_ns);
}

Datum aragora_fence_state(PG_FUNCTION_ARGS)
{
    struct fence_state s;
    fence_require_loaded("fence_state");
    fence_shared_read(&s);
    return state_row(fcinfo, &s, fence_now_ns());
}

Datum aragora_fence_epoch(PG_FUNCTION_ARGS)
{
    struct fence_state s;
    (void)fcinfo;
    fence_require_loaded("fence_epoch");
    fence_shared_read(&s);
    PG_RETURN_INT64((int64)s.epoch);
}
