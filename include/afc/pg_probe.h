/*
 * PostgreSQL health probing: a non-blocking prober on the daemon's libuv loop, and the pure
 * hysteresis that turns raw probe results into the observations the log carries.
 *
 * Data flow. Every target has a repeating timer. Each tick runs one probe on a kept-open libpq
 * connection (PQconnectStart/PQconnectPoll, then PQsendQuery of one query, all driven by uv_poll on
 * PQsocket), bounded by a per-probe deadline. The result is an afc_pg_sample; afc_pg_hyst_update()
 * (pure, coordinator/pg_hysteresis.c) applies the rise/fall counters and decides whether the
 * filtered observation changed enough to be reported. Only then does the `changed` callback run,
 * so the Raft log gets an AFC_OP_OBSERVE entry only on change (ARCHITECTURE.md §4.4). Transitions
 * are logged as events: +pg-healthy, +pg-unhealthy (with a layer-named reason, as HAProxy does),
 * +pg-role-changed.
 *
 * The pure part (everything above "the prober") needs libc only and lives in the afc_pure library;
 * the prober (coordinator/pg_probe.c) needs libuv and libpq. This header includes neither.
 */
#ifndef AFC_PG_PROBE_H
#define AFC_PG_PROBE_H

#include <stdbool.h>
#include <stdint.h>

#include "afc/error.h"
#include "afc/failover.h"

/* ---- why a probe failed: names are HAProxy-style and name the layer ---- */

/* X(enum, name) */
#define AFC_PG_REASONS(X)                                                                          \
    X(AFC_PG_OK, "ok")                                                                             \
    X(AFC_PG_L4_REFUSED, "l4-refused")     /* TCP connect refused (nothing listens) */             \
    X(AFC_PG_L4_TIMEOUT, "l4-timeout")     /* TCP connect did not complete by the deadline */      \
    X(AFC_PG_L4_ERROR, "l4-error")         /* other socket error, or the connection was lost */    \
    X(AFC_PG_L7_TIMEOUT, "l7-timeout")     /* connected, but no answer (startup or query) */       \
    X(AFC_PG_AUTH_FAILED, "auth-failed")   /* authentication rejected / no pg_hba entry */         \
    X(AFC_PG_L7_REJECTED, "l7-rejected")   /* server answered but refuses: starting, stopping */   \
    X(AFC_PG_QUERY_FAILED, "query-failed") /* the health query returned an error */                \
    X(AFC_PG_L7_PROTOCOL, "l7-protocol")   /* the answer did not have the expected shape */

enum afc_pg_reason {
#define AFC_PG_REASON_ENUM(e, s) e,
    AFC_PG_REASONS(AFC_PG_REASON_ENUM)
#undef AFC_PG_REASON_ENUM
        AFC_PG_REASON__COUNT
};

/* Static name of a reason ("l4-refused"); "unknown" for anything out of range. Never NULL. */
const char *afc_pg_reason_name(enum afc_pg_reason r);

/* ---- one raw probe result (before hysteresis) ---- */

struct afc_pg_sample {
    enum afc_pg_reason
        reason; /* AFC_PG_OK when the probe succeeded; other fields valid only then */
    enum afc_pg_role role;
    uint32_t timeline;
    uint64_t lsn;
    uint64_t replay_lsn;
    uint32_t lag_ms;
    char upstream[AFC_FO_NAME_MAX]; /* target name the replica streams from, "" if none */
};

/* ---- pure parsing of the health query's row ---- */

#define AFC_PG_COLS     6 /* in_recovery, timeline, lsn, replay_lsn, lag_ms, upstream "host:port" */
#define AFC_PG_ADDR_MAX 96

/*
 * Parse a PostgreSQL LSN "X/Y" (each 1..8 hex digits) into (X << 32) | Y.
 * Returns 0, or AFC_EINVAL if an argument is NULL, or AFC_EMALFORMED (then *out is untouched).
 */
int afc_pg_lsn_parse(const char *s, uint64_t *out);

/*
 * Parse the health query's row (vals[i] borrowed; NULL means SQL NULL) into *out and the raw
 * upstream address ("host:port", "" if not streaming) into addr (capacity addr_cap).
 * out->upstream is left "" — the caller maps addr to a target name with afc_pg_addr_find().
 * NULLs are tolerated where PostgreSQL legitimately returns them (LSNs before the first WAL is
 * received, lag without a replayed transaction): they become 0.
 * Returns 0 or AFC_EMALFORMED (a value that does not parse, a NULL role or timeline).
 */
int afc_pg_row_parse(const char *const vals[AFC_PG_COLS], struct afc_pg_sample *out, char *addr,
                     unsigned addr_cap);

/*
 * Find the index of `addr` ("host:port") in addrs[0..n) (borrowed; NULL entries are skipped).
 * Exact string match: the caller gives each target's address as replicas see it. Returns -1 if
 * none matches or addr is NULL/empty.
 */
int afc_pg_addr_find(const char *addr, const char *const *addrs, unsigned n);

/* ---- pure hysteresis ---- */

#define AFC_PG_LAG_BOUNDS_MAX 4

struct afc_pg_hyst_config {
    unsigned rise;       /* consecutive successes to become healthy (default 2, min 1) */
    unsigned fall;       /* consecutive failures to become unhealthy (default 3, min 1) */
    uint64_t refresh_ms; /* an advanced LSN is reported only if the last report is this old */
    /* Ascending lag thresholds; crossing one is a significant change. 0 ends the list. */
    uint32_t lag_bounds_ms[AFC_PG_LAG_BOUNDS_MAX];
};

/* Fill *c with the defaults: rise 2, fall 3, refresh 5000 ms, lag bounds 1 s, 10 s, 60 s. */
void afc_pg_hyst_config_default(struct afc_pg_hyst_config *c);

/* Bits returned by afc_pg_hyst_update(): what differs from the last report. */
enum {
    AFC_PG_CHG_FIRST = 1 << 0,    /* the first report about this target */
    AFC_PG_CHG_HEALTH = 1 << 1,   /* healthy flipped */
    AFC_PG_CHG_ROLE = 1 << 2,     /* role changed */
    AFC_PG_CHG_TIMELINE = 1 << 3, /* timeline changed */
    AFC_PG_CHG_UPSTREAM = 1 << 4, /* upstream changed */
    AFC_PG_CHG_LAG = 1 << 5,      /* lag crossed a bound */
    AFC_PG_CHG_LSN = 1 << 6,      /* LSN moved (backwards: always; forwards: after refresh_ms) */
};

/* Per-target filter state. Initialise with afc_pg_hyst_init(); plain data, no resources. */
struct afc_pg_hyst {
    unsigned ok_run;                /* consecutive successes */
    unsigned fail_run;              /* consecutive failures */
    enum afc_pg_reason last_reason; /* reason of the most recent failure */
    struct afc_pg_obs obs;          /* the filtered view now */
    struct afc_pg_obs reported;     /* what was last reported (valid=false: nothing yet) */
    uint64_t reported_ms;           /* monotonic time of the last report */
};

void afc_pg_hyst_init(struct afc_pg_hyst *h);

/*
 * Feed one probe result taken at monotonic time now_ms. A target starts with unknown health
 * (obs.valid false); it becomes healthy after `rise` consecutive successes and unhealthy after
 * `fall` consecutive failures, from unknown or from the other state. While healthy, successful
 * samples update role/timeline/LSNs/lag/upstream; while unhealthy those keep their last known
 * values (the last LSN of a dead primary is what the RPO bound needs).
 * Returns 0 when nothing significant changed since the last report; otherwise a mask of
 * AFC_PG_CHG_* bits, h->obs is the observation to report, and h->reported/reported_ms are updated.
 * obs.wall_ms is not touched (the caller stamps it). Pure: no clock, no I/O.
 */
unsigned afc_pg_hyst_update(struct afc_pg_hyst *h, const struct afc_pg_hyst_config *c,
                            const struct afc_pg_sample *s, uint64_t now_ms);

/* Index of the lag bucket lag_ms falls in (0 = below the first bound). */
unsigned afc_pg_lag_bucket(const struct afc_pg_hyst_config *c, uint32_t lag_ms);

/* ---- the prober (coordinator/pg_probe.c: libuv + libpq) ---- */

struct uv_loop_s;
struct afc_pg_prober;

#define AFC_PG_INTERVAL_LOCAL_MS  500 /* ARCHITECTURE.md §9 */
#define AFC_PG_INTERVAL_REMOTE_MS 1000
#define AFC_PG_DEADLINE_MAX_MS    3000

struct afc_pg_target {
    const char *name;     /* region name, < AFC_FO_NAME_MAX bytes; copied */
    const char *conninfo; /* libpq conninfo; copied. Use a numeric host or hostaddr: libpq
                             resolves host names synchronously inside PQconnectStart. */
    const char *addr;     /* "host:port" as replicas name this server in primary_conninfo (what
                             pg_stat_wal_receiver shows as sender_host:sender_port); copied.
                             NULL: derived from conninfo's host (or hostaddr) and port (5432). */
    uint64_t interval_ms; /* probe period; 0 = AFC_PG_INTERVAL_REMOTE_MS */
};

struct afc_pg_probe_config {
    struct afc_pg_hyst_config hyst;
    uint64_t deadline_max_ms; /* per probe: min(2 * interval, this); 0 = AFC_PG_DEADLINE_MAX_MS */
};

/* Fill *c with defaults (afc_pg_hyst_config_default, deadline max 3 s). */
void afc_pg_probe_config_default(struct afc_pg_probe_config *c);

/*
 * Called on the loop when target `index`'s filtered observation changed significantly (see
 * afc_pg_hyst_update). obs is borrowed for the duration of the call; afc_pg_prober_changes() says
 * what changed. The callback may call afc_pg_prober_stop(); it must not free the prober otherwise.
 */
typedef void (*afc_pg_changed_cb)(void *data, unsigned index, const struct afc_pg_obs *obs);

/* Called exactly once when a stop completes; the prober has been freed before it runs. */
typedef void (*afc_pg_stop_cb)(void *data);

/*
 * Create a prober for n targets (1..64) on loop (borrowed; must outlive the prober). targets and
 * their strings are copied; cfg is copied (NULL = defaults). cb/data are kept. Nothing runs until
 * afc_pg_prober_start(). Returns 0 and *out, or AFC_EINVAL / AFC_ENOMEM / AFC_ECONFIG (bad target
 * or conninfo) with err (may be NULL) saying which target.
 */
int afc_pg_prober_new(struct uv_loop_s *loop, const struct afc_pg_target *targets, unsigned n,
                      const struct afc_pg_probe_config *cfg, afc_pg_changed_cb cb, void *data,
                      struct afc_pg_prober **out, struct afc_err *err);

/*
 * Start probing every target: the first probe runs at once, then every interval_ms. A probe still
 * running at the next tick makes that tick a no-op (probes never overlap per target).
 * Returns 0, AFC_EALREADY if started, AFC_ESHUTDOWN if stopping, or AFC_EINTERNAL if libuv refused.
 */
int afc_pg_prober_start(struct afc_pg_prober *p);

/*
 * Stop everything: timers, polls, connections (PQfinish; no PQcancel, which blocks). Any probe in
 * flight is abandoned without a report; `changed` never runs after this call. Once every uv handle
 * has closed the prober is freed and cb(data) runs exactly once, from the loop (never from inside
 * this call). May be called from inside `changed`, and on a prober that was never started.
 * Calling it twice is a programming error.
 */
void afc_pg_prober_stop(struct afc_pg_prober *p, afc_pg_stop_cb cb, void *data);

/* The current filtered observation of target index (borrowed; valid until the next loop turn). */
const struct afc_pg_obs *afc_pg_prober_obs(const struct afc_pg_prober *p, unsigned index);

/* The reason of target index's most recent failed probe (AFC_PG_OK if none yet). */
enum afc_pg_reason afc_pg_prober_last_reason(const struct afc_pg_prober *p, unsigned index);

/* How many probes of target index have failed in a row up to now (0: the last one succeeded).
 * Unlike the reason above, this says whether the target is failing *now*. */
unsigned afc_pg_prober_failing(const struct afc_pg_prober *p, unsigned index);

/* The raw sample of target index's last finished probe, before hysteresis (NULL if none yet):
 * reason AFC_PG_OK means it answered, and then role says what it is right now. */
const struct afc_pg_sample *afc_pg_prober_last_sample(const struct afc_pg_prober *p,
                                                      unsigned index);

/* The AFC_PG_CHG_* mask of target index's most recent report (0 if none yet). */
unsigned afc_pg_prober_changes(const struct afc_pg_prober *p, unsigned index);

/* The address ("host:port") the prober uses to recognise target index as an upstream. */
const char *afc_pg_prober_addr(const struct afc_pg_prober *p, unsigned index);

#endif
