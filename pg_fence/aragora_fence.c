/*
 * aragora_fence: the in-database write fence (docs/fencing.md, ARCHITECTURE.md §4.3).
 *
 * The coordinator of this node's region pushes (epoch, deadline) into shared memory with
 * aragora.fence_renew() at every lease renewal (fence_sql.c). Every transaction that wrote data is
 * checked just before it commits (or prepares): it commits only while the fence is open and its
 * deadline, on CLOCK_MONOTONIC, has not passed. A coordinator that is frozen, crashed or
 * partitioned away therefore leaves a primary that refuses writes within its lease, with no
 * process having to act. The shared state starts closed at every PostgreSQL start, crash restarts
 * included (shared memory is re-created).
 *
 * Data flow:
 *   fence_sql.c --fence_shared_renew/close--> shared state (spinlock for writers, a sequence
 *   counter so readers take no lock) <--fence_shared_read-- commit check (xact callback), and
 *   the checks of COMMIT PREPARED and of statements PostgreSQL would not undo at abort (utility
 *   hook, before they run) --> fence_decide_commit (fence_core.c) --> ERROR or pass.
 *
 * "Wrote data" = the top-level transaction was assigned a TransactionId. Exempt: autovacuum,
 * VACUUM, parallel workers (their leader is checked), single-user mode and binary upgrade. Why
 * each, and what that means for sequences, temporary tables and two-phase commit: docs/fencing.md.
 *
 * The module's state lives in file-level statics: PostgreSQL's hook interface (one process per
 * backend, hooks as global function pointers) leaves no other place for it.
 */
#include "postgres.h"

#include <time.h>

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/utility.h"
#include "utils/guc.h"

#include "fence.h"

PG_MODULE_MAGIC;

/* PostgreSQL 15's fmgr.h does not declare it (16 does). */
extern PGDLLEXPORT void _PG_init(void);

/* In shared memory: one per cluster. */
struct fence_shared {
    slock_t mutex;                /* serializes writers (renew, close) */
    pg_atomic_uint32 changecount; /* odd while a writer is changing `state` */
    struct fence_state state;
};

static struct fence_shared *shared;

static shmem_request_hook_type prev_shmem_request_hook;
static shmem_startup_hook_type prev_shmem_startup_hook;
static ProcessUtility_hook_type prev_process_utility_hook;

/* Settings (docs/fencing.md) */
static char *renew_role_setting;
static char *session_epoch_setting;
static uint64 session_epoch; /* parsed aragora_fence.epoch; 0 = not checked */

/* > 0 while this backend runs a VACUUM command, whose own transactions are exempt. */
static int vacuum_depth;

/* ---- clock and shared state ---- */

int64 fence_now_ns(void)
{
    struct timespec ts;
    /* cannot fail for CLOCK_MONOTONIC with a valid pointer (clock_gettime(2)) */
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64)ts.tv_sec * INT64CONST(1000000000) + ts.tv_nsec;
}

void fence_require_loaded(const char *function)
{
    if (shared == NULL)
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("aragora fence: %s: the aragora_fence module is not loaded", function),
                 errhint("Add its absolute path to shared_preload_libraries and restart "
                         "PostgreSQL.")));
}

/* A seqlock read (the pattern of PostgreSQL's PgBackendStatus.st_changecount): retry while a
 * writer is inside or finished meanwhile. Writers are rare (one renewal per lease period). */
void fence_shared_read(struct fence_state *out)
{
    for (;;) {
        uint32 before = pg_atomic_read_u32(&shared->changecount);
        pg_read_barrier();
        *out = shared->state;
        pg_read_barrier();
        uint32 after = pg_atomic_read_u32(&shared->changecount);
        if (before == after && (before & 1) == 0)
            return;
        pg_spin_delay();
    }
}

/* Caller holds shared->mutex. pg_atomic_fetch_add_u32 is a full barrier on both sides. */
static void shared_store(const struct fence_state *next)
{
    pg_atomic_fetch_add_u32(&shared->changecount, 1);
    shared->state = *next;
    pg_atomic_fetch_add_u32(&shared->changecount, 1);
}

enum fence_renew_result fence_shared_renew(uint64 epoch, int64 deadline_ns,
                                           struct fence_state *before, struct fence_state *after)
{
    SpinLockAcquire(&shared->mutex);
    *before = shared->state;
    enum fence_renew_result r = fence_compute_renew(before, epoch, deadline_ns, after);
    if (r == FENCE_RENEWED)
        shared_store(after);
    SpinLockRelease(&shared->mutex);
    return r;
}

void fence_shared_close(uint64 epoch, struct fence_state *before, struct fence_state *after)
{
    SpinLockAcquire(&shared->mutex);
    *before = shared->state;
    fence_compute_close(before, epoch, after);
    shared_store(after);
    SpinLockRelease(&shared->mutex);
}

const char *fence_renew_role(void)
{
    return renew_role_setting != NULL ? renew_role_setting : "";
}

static void fence_shmem_request(void)
{
    if (prev_shmem_request_hook != NULL)
        prev_shmem_request_hook();
    RequestAddinShmemSpace(MAXALIGN(sizeof(struct fence_shared)));
}

/* Runs in the postmaster at every start and after every crash: shared memory is new, so the fence
 * starts closed, never armed (epoch 0). */
static void fence_shmem_startup(void)
{
    bool found;
    if (prev_shmem_startup_hook != NULL)
        prev_shmem_startup_hook();
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    shared = ShmemInitStruct("aragora_fence", sizeof(struct fence_shared), &found);
    if (!found) {
        SpinLockInit(&shared->mutex);
        pg_atomic_init_u32(&shared->changecount, 0);
        memset(&shared->state, 0, sizeof shared->state);
    }
    LWLockRelease(AddinShmemInitLock);
    if (!found)
        ereport(LOG, (errmsg("aragora fence: closed (epoch 0): transactions that write are "
                             "refused until aragora.fence_renew() is called")));
}

/* ---- the commit check ---- */

/* Processes whose commits are never checked (docs/fencing.md, "Exempt processes"). Processes that
 * never commit a transaction (checkpointer, background writer, WAL writer, startup, WAL receiver,
 * archiver, logger) never reach the check at all. Client backends, WAL senders (a
 * replication=database connection can run SQL) and background workers (logical replication apply
 * workers, extensions' job schedulers) are checked. */
static bool is_exempt_process(void)
{
    if (!IsUnderPostmaster || IsBinaryUpgrade)
        return true; /* single-user mode, pg_upgrade: no coordinator, the operator decides */
    return MyBackendType == B_AUTOVAC_WORKER || MyBackendType == B_AUTOVAC_LAUNCHER;
}

/* What a refused client should do next. */
static const char *const retry_hint =
    "This node is not, or can no longer show that it is, the authorized primary. The transaction "
    "was rolled back; retry it on the current primary.";
static const char *const prepared_hint =
    "The prepared transaction stays prepared. Commit it on the current primary (the PREPARE "
    "reached the replicas through WAL), or roll it back here with ROLLBACK PREPARED.";

/* ERROR with SQLSTATE 25006 read_only_sql_transaction (docs/fencing.md, "SQLSTATE"). */
static void refuse(const char *action, const char *hint, enum fence_verdict v,
                   const struct fence_state *s, int64 now_ns)
{
    switch (v) {
    case FENCE_NEVER_ARMED:
        ereport(ERROR,
                (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
                 errmsg("aragora fence: cannot %s: the write fence has not been armed since "
                        "PostgreSQL started (epoch 0)",
                        action),
                 errdetail("A primary accepts writes only once its coordinator has renewed the "
                           "fence (aragora.fence_renew). Read-only transactions are not affected."),
                 errhint("%s", hint)));
        break;
    case FENCE_CLOSED:
        ereport(
            ERROR,
            (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
             errmsg("aragora fence: cannot %s: the write fence was closed at epoch " UINT64_FORMAT,
                    action, s->epoch),
             errdetail("The coordinator closed it (aragora.fence_close): this node was "
                       "demoted or is rejoining. Read-only transactions are not "
                       "affected."),
             errhint("%s", hint)));
        break;
    case FENCE_EXPIRED:
        ereport(ERROR, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
                        errmsg("aragora fence: cannot %s: the write lease of epoch " UINT64_FORMAT
                               " expired " INT64_FORMAT " ms ago",
                               action, s->epoch, fence_expired_ms(s, now_ns)),
                        errdetail("The coordinator did not renew the fence in time. Read-only "
                                  "transactions are not affected."),
                        errhint("%s", hint)));
        break;
    case FENCE_EPOCH_MISMATCH:
        ereport(ERROR,
                (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
                 errmsg("aragora fence: cannot %s: this session expects epoch " UINT64_FORMAT
                        " but the fence is at epoch " UINT64_FORMAT,
                        action, session_epoch, s->epoch),
                 errdetail("The session set aragora_fence.epoch; the primary changed since."),
                 errhint("Look the primary and its epoch up again, and retry there.")));
        break;
    case FENCE_ALLOW:
        break;
    }
}

static void check_or_refuse(const char *action, const char *hint)
{
    struct fence_state s;
    fence_shared_read(&s);
    int64 now_ns = fence_now_ns();
    enum fence_verdict v = fence_decide_commit(&s, now_ns, session_epoch);
    if (v != FENCE_ALLOW)
        refuse(action, hint, v, &s, now_ns);
}

/* XACT_EVENT_PRE_COMMIT / PRE_PREPARE run before the commit (prepare) record is written, and an
 * ERROR there aborts the transaction. XACT_EVENT_PARALLEL_PRE_COMMIT is left alone: it fires only
 * in parallel workers, whose work becomes durable only through their leader's commit, which is
 * checked here. */
static void fence_xact_cb(XactEvent event, void *arg)
{
    const char *action;
    (void)arg;
    switch (event) {
    case XACT_EVENT_PRE_COMMIT:
        action = "commit";
        break;
    case XACT_EVENT_PRE_PREPARE:
        action = "PREPARE TRANSACTION";
        break;
    default:
        return;
    }
    /* the cheap test first: a transaction without an xid wrote nothing (docs/fencing.md) */
    if (!TransactionIdIsValid(GetTopTransactionIdIfAny()))
        return;
    if (vacuum_depth > 0 || is_exempt_process())
        return;
    check_or_refuse(action, retry_hint);
}

static void call_next_utility(PlannedStmt *pstmt, const char *query, bool read_only_tree,
                              ProcessUtilityContext context, ParamListInfo params,
                              QueryEnvironment *env, DestReceiver *dest, QueryCompletion *qc)
{
    if (prev_process_utility_hook != NULL)
        prev_process_utility_hook(pstmt, query, read_only_tree, context, params, env, dest, qc);
    else
        standard_ProcessUtility(pstmt, query, read_only_tree, context, params, env, dest, qc);
}

/* Statements whose effects PostgreSQL does not fully undo when their transaction aborts at
 * commit: DROP DATABASE and DROP TABLESPACE remove (and WAL-log the removal of) their files before
 * committing, CREATE DATABASE and CREATE TABLESPACE create them, ALTER DATABASE SET TABLESPACE
 * moves them, REINDEX and CREATE INDEX CONCURRENTLY commit several transactions of their own.
 * Refused before they start, whether or not they would change anything (DROP ... IF EXISTS);
 * every one of them would be refused at commit anyway. NULL for any other statement. */
static const char *irreversible_action(const Node *stmt)
{
    switch (nodeTag(stmt)) {
    case T_CreatedbStmt:
        return "CREATE DATABASE";
    case T_DropdbStmt:
        return "DROP DATABASE";
    case T_AlterDatabaseStmt:
        return "ALTER DATABASE";
    case T_CreateTableSpaceStmt:
        return "CREATE TABLESPACE";
    case T_DropTableSpaceStmt:
        return "DROP TABLESPACE";
    case T_ReindexStmt:
        return "REINDEX";
    case T_IndexStmt:
        return ((const IndexStmt *)stmt)->concurrent ? "CREATE INDEX CONCURRENTLY" : NULL;
    default:
        return NULL;
    }
}

/* Checked before the statement runs:
 *  - COMMIT PREPARED runs in a transaction of its own that gets no xid, so the commit check does
 *    not see it. ROLLBACK PREPARED is never refused.
 *  - irreversible_action() statements.
 * VACUUM (never in a transaction block, a function or a pipeline: PreventInTransactionBlock)
 * commits its own transactions inside this call; they are exempt like autovacuum's. */
static void fence_process_utility(PlannedStmt *pstmt, const char *query, bool read_only_tree,
                                  ProcessUtilityContext context, ParamListInfo params,
                                  QueryEnvironment *env, DestReceiver *dest, QueryCompletion *qc)
{
    Node *stmt = pstmt->utilityStmt;
    const char *action = irreversible_action(stmt);
    if (action != NULL && !is_exempt_process())
        check_or_refuse(action, retry_hint);
    if (IsA(stmt, TransactionStmt) &&
        ((TransactionStmt *)stmt)->kind == TRANS_STMT_COMMIT_PREPARED && !is_exempt_process())
        check_or_refuse("COMMIT PREPARED", prepared_hint);
    if (!IsA(stmt, VacuumStmt) || !((VacuumStmt *)stmt)->is_vacuumcmd) {
        call_next_utility(pstmt, query, read_only_tree, context, params, env, dest, qc);
        return;
    }
    vacuum_depth++;
    PG_TRY();
    {
        call_next_utility(pstmt, query, read_only_tree, context, params, env, dest, qc);
    }
    PG_FINALLY();
    {
        vacuum_depth--;
    }
    PG_END_TRY();
}

/* ---- settings ---- */

static bool check_session_epoch(char **newval, void **extra, GucSource source)
{
    uint64_t parsed;
    (void)extra;
    (void)source;
    if (fence_parse_epoch(*newval, &parsed) != 0) {
        GUC_check_errdetail("aragora_fence.epoch must be a whole number from 0 (not checked) to "
                            "9223372036854775807.");
        return false;
    }
    return true;
}

static void assign_session_epoch(const char *newval, void *extra)
{
    uint64_t parsed = 0;
    (void)extra;
    (void)fence_parse_epoch(newval, &parsed); /* validated by check_session_epoch */
    session_epoch = parsed;
}

static bool check_renew_role(char **newval, void **extra, GucSource source)
{
    (void)extra;
    (void)source;
    if (strlen(*newval) >= NAMEDATALEN) {
        GUC_check_errdetail("A role name is at most %d bytes long.", NAMEDATALEN - 1);
        return false;
    }
    return true; /* whether the role exists is checked at each renewal (no catalog access here) */
}

static void define_settings(void)
{
    DefineCustomStringVariable(
        "aragora_fence.renew_role",
        "Role whose members may renew and close the write fence, besides superusers.",
        "Empty: superusers only. Checked inside the functions, in addition to the EXECUTE "
        "privilege granted on them.",
        &renew_role_setting, "", PGC_SIGHUP, 0, check_renew_role, NULL, NULL);
    DefineCustomStringVariable(
        "aragora_fence.epoch",
        "Refuse this session's writes unless the write fence is at this epoch (0: not checked).",
        "For clients that looked up the primary together with its epoch.", &session_epoch_setting,
        "0", PGC_USERSET, 0, check_session_epoch, assign_session_epoch, NULL);
    MarkGUCPrefixReserved("aragora_fence");
}

void _PG_init(void)
{
    /* Loaded by a backend for CREATE FUNCTION or a call, without being preloaded: no shared
     * memory can be had now. Install nothing; the SQL functions say what is missing. */
    if (!process_shared_preload_libraries_in_progress)
        return;
    define_settings();
    prev_shmem_request_hook = shmem_request_hook;
    shmem_request_hook = fence_shmem_request;
    prev_shmem_startup_hook = shmem_startup_hook;
    shmem_startup_hook = fence_shmem_startup;
    prev_process_utility_hook = ProcessUtility_hook;
    ProcessUtility_hook = fence_process_utility;
    RegisterXactCallback(fence_xact_cb, NULL);
}
