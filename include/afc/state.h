/*
 * The replicated cluster state and the commands that change it.
 *
 * Data flow: a proposer builds a `struct afc_cmd`, afc_cmd_encode() turns it into a versioned
 * msgpack map padded with zeros to a multiple of 8 bytes (raft_uv 0.15 garbles unpadded entries,
 * see raft-0.15.md §4.2), the bytes go through the Raft log, and on every node afc_state_apply()
 * decodes and applies them in log order. Apply is deterministic: everything it records (history
 * entries, timestamps) comes from the command and the log index, never from the local clock, so
 * every node computes the same afc_state_digest() at the same index.
 *
 * Pure code: libc and msgpack only. No libuv, no libraft.
 */
#ifndef AFC_STATE_H
#define AFC_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "afc/error.h"
#include "afc/failover.h"

typedef uint64_t afc_epoch;     /* fencing token: strictly increasing */
typedef uint64_t afc_region_id; /* raft server id of a region's coordinator, >= 1 */

#define AFC_MAX_MEMBERS 9 /* members are a list; 3 and 5 are the tested sizes */
_Static_assert(AFC_MAX_MEMBERS == AFC_FO_MEMBERS, "failover.h sizes its per-member arrays");
#define AFC_NAME_MAX      32   /* region name incl. NUL, e.g. "us-east-2" */
#define AFC_ADDR_MAX      64   /* raft address "a.b.c.d:port" incl. NUL */
#define AFC_URL_MAX       128  /* API URL incl. NUL */
#define AFC_HISTORY_MAX   64   /* bounded event history (ring) */
#define AFC_DETAIL_MAX    128  /* history detail text incl. NUL */
#define AFC_DIGEST_RING   128  /* how many recent (index, digest) pairs a node remembers */
#define AFC_CMD_VERSION   1    /* wire format version written by this build */
#define AFC_CMD_MAX_SIZE  4096 /* larger encoded commands are rejected (AFC_ETOOBIG) */
#define AFC_FAILOVERS_MAX 16   /* failover receipts kept in the state (ring) */
/* Command operations. X(enum, wire-name) */
#define AFC_OPS(X)                                                                                 \
    X(AFC_OP_INIT, "init")       /* set the member list once (first leader after bootstrap) */     \
    X(AFC_OP_PAUSE, "pause")     /* set/clear the paused (maintenance) flag */                     \
    X(AFC_OP_PROMOTE, "promote") /* epoch CAS: epoch must equal expect_epoch + 1 */                \
    X(AFC_OP_DIGEST, "digest")   /* leader's state digest at an earlier index */                   \
    X(AFC_OP_NOTE, "note")       /* free-form operator/event note into history */                  \
    X(AFC_OP_OBSERVE, "observe") /* observer's view of one region's PostgreSQL changed */          \
    X(AFC_OP_RENEW, "renew")     /* the primary's coordinator renews its write lease */            \
    X(AFC_OP_FAILOVER_BEGIN, "failover-begin") /* epoch CAS: decide from → to */                 \
    X(AFC_OP_FAILOVER_STEP, "failover-step")   /* advance the current failover (step table) */     \
    X(AFC_OP_DRAIN, "drain")                   /* set/clear a member's drained flag */             \
    X(AFC_OP_ROUTED, "routed")       /* leader: DNS names the failover's primary, verified */      \
    X(AFC_OP_PUBLISHED, "published") /* a region's Redis holds the failover's primary */           \
    X(AFC_OP_SYNC_SET, "sync-set")   /* the primary's synchronous standby set (sync mode) */

enum afc_op {
#define AFC_OP_ENUM(e, s) e,
    AFC_OPS(AFC_OP_ENUM)
#undef AFC_OP_ENUM
        AFC_OP__COUNT
};

const char *afc_op_name(enum afc_op op);

struct afc_member {
    afc_region_id id;
    char name[AFC_NAME_MAX];
    char raft_addr[AFC_ADDR_MAX];
    char api_url[AFC_URL_MAX];
};

/* One command. Fields not used by an op are ignored by the encoder and zeroed by the decoder. */
struct afc_cmd {
    enum afc_op op;
    int64_t wall_ms; /* proposer's wall clock, for history display only (never for decisions) */
    char by[AFC_NAME_MAX]; /* proposing region */
    union {
        struct {
            unsigned n_members;
            struct afc_member members[AFC_MAX_MEMBERS];
        } init;
        struct {
            bool paused;
            char reason[AFC_DETAIL_MAX];
        } pause;
        struct {
            char region[AFC_NAME_MAX];
            afc_epoch expect_epoch; /* current epoch the proposer read after its barrier */
            char reason[AFC_DETAIL_MAX];
        } promote;
        struct {
            uint64_t at_index; /* index whose post-apply digest this is */
            uint64_t digest;
        } digest;
        struct {
            char kind[AFC_NAME_MAX];
            char detail[AFC_DETAIL_MAX];
        } note;
        struct {
            char observer[AFC_NAME_MAX];
            char target[AFC_NAME_MAX];
            struct afc_pg_obs obs; /* obs.valid is set by apply */
        } observe;
        struct {
            char region[AFC_NAME_MAX]; /* must be the authorized primary */
            afc_epoch epoch;           /* must be the current epoch */
            uint64_t seq;              /* renewer's sequence number, echoed in state.lease */
        } renew;
        struct {
            afc_epoch expect_epoch; /* CAS: state.epoch must equal it; the new epoch is +1 */
            char from[AFC_NAME_MAX];
            char to[AFC_NAME_MAX];
            char reason[96];
            bool planned;
            bool forced;
            int64_t detected_ms;
            uint64_t old_lsn;
            uint64_t term; /* proposer's Raft term, for the receipt */
        } failover_begin;
        struct {
            afc_epoch epoch; /* must be the current failover's epoch */
            uint8_t step;    /* enum afc_fo_step; legal per afc_fo_step_allowed() */
            uint32_t timeline;
            uint64_t lsn;
            char detail[AFC_DETAIL_MAX];
        } failover_step;
        struct {
            char region[AFC_NAME_MAX]; /* must be a member */
            bool drained;              /* true: never a failover candidate until undrained */
            char reason[AFC_DETAIL_MAX];
        } drain;
        struct {
            afc_epoch epoch;               /* must be the current failover's, promoted */
            char address[AFC_FO_ADDR_MAX]; /* what the name now answers */
            char detail[AFC_DETAIL_MAX];   /* provider, verification */
        } routed;
        struct {
            afc_epoch epoch;           /* must be the current failover's, promoted */
            char region[AFC_NAME_MAX]; /* whose Redis */
            char detail[AFC_DETAIL_MAX];
        } published;
        struct {
            char region[AFC_NAME_MAX]; /* must be the authorized primary */
            afc_epoch epoch;           /* must be the current epoch */
            bool active;               /* false: asynchronous (then no standbys) */
            unsigned n_standbys;
            char standbys[AFC_MAX_MEMBERS][AFC_NAME_MAX]; /* members other than region, unique */
            char detail[AFC_DETAIL_MAX];                  /* why, for the history */
        } sync_set;
    } u;
};

/* A history event, recorded by apply. */
struct afc_event {
    uint64_t index;          /* log index that produced it */
    int64_t wall_ms;         /* from the command */
    char kind[AFC_NAME_MAX]; /* stable event name without the '+', e.g. "promoted", "paused" */
    char detail[AFC_DETAIL_MAX];
};

struct afc_state {
    unsigned n_members;
    struct afc_member members[AFC_MAX_MEMBERS];
    afc_epoch epoch;            /* 0 = no primary adopted yet */
    char primary[AFC_NAME_MAX]; /* authorized primary for `epoch`, "" if none */
    bool paused;
    bool drained[AFC_MAX_MEMBERS]; /* per member (same order): excluded from candidate selection */
    uint64_t applied_index; /* last log index applied (commands only; set by apply/restore) */
    unsigned history_len;   /* number of valid events, <= AFC_HISTORY_MAX */
    unsigned history_next;  /* ring write position */
    struct afc_event history[AFC_HISTORY_MAX];

    /* obs[i][j]: what member i's coordinator last reported about member j's PostgreSQL */
    struct afc_pg_obs obs[AFC_MAX_MEMBERS][AFC_MAX_MEMBERS];

    /* the write lease of the authorized primary (§4.2) */
    struct {
        char region[AFC_NAME_MAX];
        afc_epoch epoch;
        uint64_t seq;
        uint64_t index; /* log index of the last applied renewal */
    } lease;

    /* the current (or last) failover, and the receipts of the last AFC_FAILOVERS_MAX ones */
    struct afc_failover failover;
    unsigned failovers_len;
    unsigned failovers_next;
    struct afc_failover failovers[AFC_FAILOVERS_MAX];

    /* the synchronous standby set (replication.mode: sync), set by the primary (sync-set) */
    struct afc_sync sync;
};

/* Outcome of applying one command; reaches the proposer only. */
enum afc_apply_result {
    AFC_APPLY_OK = 0,
    AFC_APPLY_REJECTED_MALFORMED, /* undecodable bytes: logged, state unchanged */
    AFC_APPLY_REJECTED_VERSION,   /* unknown format version: logged, state unchanged */
    AFC_APPLY_REJECTED_STALE,     /* promote with a stale expect_epoch */
    AFC_APPLY_REJECTED_INVALID,   /* well-formed but not allowed (unknown region, init twice...) */
    AFC_APPLY_NOOP,               /* accepted, nothing changed (pause when already paused) */
    AFC_APPLY_DIVERGED,           /* digest mismatch: the node must stop (see afc_fsm) */
    AFC_APPLY_RETRY,              /* out of memory while decoding: nothing changed, apply again
                                     (rejecting would make this node differ from the others) */
};

const char *afc_apply_result_name(enum afc_apply_result r);

/* ---- codec (consensus/codec.c) ---- */

/* Encode `cmd` as a msgpack map {"v":AFC_CMD_VERSION,"op":name,...} padded with zeros to a
 * multiple of 8. On success *out is malloc'd (caller frees with free()), *len is the padded length.
 * Errors: AFC_EINVAL (bad op or unterminated string field), AFC_ENOMEM, AFC_ETOOBIG. */
int afc_cmd_encode(const struct afc_cmd *cmd, void **out, size_t *len);

/* Decode bytes (trailing zero padding allowed) into *cmd. Never crashes on any input.
 * Errors: AFC_EMALFORMED (not a map, wrong types, missing keys, strings too long, trailing
 * garbage that is not zero padding), AFC_EVERSION (version != 1), AFC_ETOOBIG (len >
 * AFC_CMD_MAX_SIZE). `why` (may be NULL) receives a short reason on error. */
int afc_cmd_decode(const void *buf, size_t len, struct afc_cmd *cmd, struct afc_err *why);

/* ---- state machine (consensus/state.c) ---- */

/* The pure state machine plus its digest ring. Embed; init with afc_fsm_init. */
struct afc_fsm {
    struct afc_state state;
    /* recent post-apply digests, for checking AFC_OP_DIGEST commands */
    uint64_t ring_index[AFC_DIGEST_RING];
    uint64_t ring_digest[AFC_DIGEST_RING];
    unsigned ring_next;
    /* set when a digest mismatch was detected: the node must stop and never act again */
    bool diverged;
    uint64_t diverged_index;
    /* counters for metrics */
    uint64_t rejected_commands;
    /* Local, never replicated, never in the digest: the adapter sets apply_clock_ms to the node's
     * monotonic clock (raft io->time) before each apply; applying a RENEW of the current primary
     * and epoch copies it into lease_applied_ms (§4.2: the leader counts the lease from the
     * *apply* time of the last renewal). */
    uint64_t apply_clock_ms;
    uint64_t lease_applied_ms;
    /* Local too: when the last failover-begin was applied here (monotonic), for the cooldown.
     * Every node has it, so a change of leader does not reset the cooldown. 0 = unknown. */
    uint64_t failover_applied_ms;
};

void afc_fsm_init(struct afc_fsm *fsm);

/* Apply the entry at log `index` (bytes as stored in the log). Returns the result; never fails
 * hard: malformed/unknown-version input is rejected (state unchanged, rejected_commands++) and
 * `why` (may be NULL) says why. Records history events. After every apply, including rejected ones,
 * state.applied_index = index and (index, digest) is pushed to the ring. A DIGEST command whose
 * at_index is in the ring and whose digest differs sets diverged/diverged_index and returns
 * AFC_APPLY_DIVERGED. A DIGEST whose at_index is not in the ring is ignored (AFC_APPLY_NOOP). */
enum afc_apply_result afc_fsm_apply(struct afc_fsm *fsm, uint64_t index, const void *buf,
                                    size_t len, struct afc_err *why);

/* Digest of the replicated content of `s` (members, epoch, primary, paused, drained, history;
 * applied_index included). FNV-1a 64 over the canonical snapshot encoding. */
uint64_t afc_state_digest(const struct afc_state *s);

/* Digest recorded after applying `index`, if still in the ring. Returns true if found. */
bool afc_fsm_digest_at(const struct afc_fsm *fsm, uint64_t index, uint64_t *digest);

/* Snapshot: canonical msgpack encoding of the state (versioned, padded to 8). *out malloc'd. */
int afc_state_encode(const struct afc_state *s, void **out, size_t *len);

/* Restore from a snapshot encoding. Errors: AFC_EMALFORMED, AFC_EVERSION. On error *s untouched. */
int afc_state_decode(const void *buf, size_t len, struct afc_state *s, struct afc_err *why);

/* Replace the fsm state with a restored one (clears the digest ring, pushes the restored
 * index/digest). */
void afc_fsm_restore(struct afc_fsm *fsm, const struct afc_state *s);

/* Lookups. */
const struct afc_member *afc_state_member_by_name(const struct afc_state *s, const char *name);
const struct afc_member *afc_state_member_by_id(const struct afc_state *s, afc_region_id id);

/* History iteration oldest → newest: i in [0, history_len). */
const struct afc_event *afc_state_history_at(const struct afc_state *s, unsigned i);

#endif
