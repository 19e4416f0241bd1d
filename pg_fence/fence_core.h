/*
 * The in-database fence's decisions, pure: no PostgreSQL header, no clock, no shared memory.
 * aragora_fence.c reads the shared state and the clock, asks these functions what to do, and acts
 * (refuses a commit, stores a renewed state). tests/pg_fence/test_fence_core.c tests them with
 * tables. docs/fencing.md describes the behaviour for operators.
 *
 * Time is CLOCK_MONOTONIC in nanoseconds (int64_t: 292 years of uptime), epochs are the
 * coordinator's fencing tokens (uint64_t, 0 = none).
 */
#ifndef AFC_PG_FENCE_CORE_H
#define AFC_PG_FENCE_CORE_H

#include <stdbool.h>
#include <stdint.h>

#define FENCE_NS_PER_MS INT64_C(1000000)

/* What the fence knows. Starts all zero (never armed: no writes) at every PostgreSQL start. */
struct fence_state {
    uint64_t epoch;        /* highest epoch renewed or closed since start; 0 = never armed */
    uint64_t closed_epoch; /* renewals of this epoch or an older one are refused (fence_close) */
    int64_t deadline_ns;   /* writes may commit while open and now < deadline_ns */
    bool open;             /* renewed and not closed since */
};

/* The verdict on a transaction that wrote data. The X-macro keeps the enum and its names (used in
 * log lines) together. */
#define FENCE_VERDICTS(X)                                                                          \
    X(FENCE_ALLOW, "allow")                                                                        \
    X(FENCE_NEVER_ARMED, "never-armed")                                                            \
    X(FENCE_CLOSED, "closed")                                                                      \
    X(FENCE_EXPIRED, "expired")                                                                    \
    X(FENCE_EPOCH_MISMATCH, "epoch-mismatch")

#define FENCE_VERDICT_ENUM(name, text) name,
enum fence_verdict { FENCE_VERDICTS(FENCE_VERDICT_ENUM) };
#undef FENCE_VERDICT_ENUM

/* "allow", "never-armed", ...; "unknown" for a value outside the enum. Static storage. */
const char *fence_verdict_name(enum fence_verdict v);

/* May a transaction that wrote data commit at now_ns? session_epoch is the session's
 * aragora_fence.epoch (0: not checked). Checked in this order: never armed, closed, expired,
 * epoch mismatch. */
enum fence_verdict fence_decide_commit(const struct fence_state *s, int64_t now_ns,
                                       uint64_t session_epoch);

/* Writes allowed right now, not counting a session's epoch. */
bool fence_is_open(const struct fence_state *s, int64_t now_ns);

/* Milliseconds left before the deadline (rounded down), 0 when not open. */
int64_t fence_remaining_ms(const struct fence_state *s, int64_t now_ns);

/* Milliseconds since the deadline passed (rounded down, >= 0). */
int64_t fence_expired_ms(const struct fence_state *s, int64_t now_ns);

enum fence_renew_result {
    FENCE_RENEWED,      /* *next holds the new state */
    FENCE_RENEW_STALE,  /* epoch < s->epoch: a newer epoch was seen here */
    FENCE_RENEW_CLOSED, /* epoch <= s->closed_epoch: that epoch was closed here */
};

/* Renew for `epoch` until deadline_ns (which may be earlier than the current deadline: the caller
 * knows its lease best). On FENCE_RENEWED, *next is the new state (epoch raised, open); otherwise
 * *next is a copy of *s. epoch must be > 0 (the caller checks). */
enum fence_renew_result fence_compute_renew(const struct fence_state *s, uint64_t epoch,
                                            int64_t deadline_ns, struct fence_state *next);

/* Close now and refuse later renewals of `epoch` or older; the epoch is raised to `epoch` if it is
 * higher. Always succeeds: closing is never unsafe, so a late close with an older epoch still
 * closes (and a renewal of the current epoch re-opens). */
void fence_compute_close(const struct fence_state *s, uint64_t epoch, struct fence_state *next);

/* The deadline of a renewal received at now_ns: ttl_ms counted from now_ns, or from sent_at_ms
 * (the caller's CLOCK_MONOTONIC in ms when it computed ttl_ms) if has_sent_at and that is earlier
 * than now_ns, so that the time the request spent in transit is not added to the lease. A
 * sent_at_ms in the future (another clock) counts from now_ns. ttl_ms and sent_at_ms must be >= 0
 * (the caller checks). Never overflows. */
int64_t fence_compute_deadline(int64_t now_ns, int32_t ttl_ms, bool has_sent_at,
                               int64_t sent_at_ms);

/* Parse a decimal epoch for the aragora_fence.epoch setting: digits only (surrounding blanks
 * allowed), 0 .. INT64_MAX (epochs are bigint in SQL). 0 on success, -1 on anything else. */
int fence_parse_epoch(const char *text, uint64_t *out);

#endif
