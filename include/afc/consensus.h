/*
 * The Raft wrapper: the only code that calls libraft.
 *
 * Rules it enforces (raft-0.15.md §3, §4): SIGPIPE ignored before anything starts; every entry
 * padded to a multiple of 8 (via afc_cmd_encode); pre-vote on; a barrier submitted the moment the
 * node becomes leader, and the node is *ready to act* only once that barrier has been applied in
 * the same term; leadership noticed by polling raft_state() from both a uv_prepare and a uv_check
 * handle; an exclusive flock() on the data directory; raft_uv auto_recovery off (a corrupt log is
 * refused, naming the file); bootstrap of the static member list on first start
 * (RAFT_CANTBOOTSTRAP on restart is normal).
 *
 * Single-threaded: every function must be called on the loop thread.
 */
#ifndef AFC_CONSENSUS_H
#define AFC_CONSENSUS_H

#include <stdbool.h>
#include <stdint.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "afc/error.h"
#include "afc/state.h"

/* ---- raft_fsm adapter (consensus/raft_fsm.c); also used by the raft_fixture tests ---- */

/* Hooks the adapter calls after each applied command (all optional, may be NULL). */
struct afc_fsm_hooks {
    void *data;
    /* after a command was applied (or rejected) at `index` */
    void (*applied)(void *data, uint64_t index, enum afc_apply_result r, const struct afc_err *why);
    /* after a snapshot was restored (at start or InstallSnapshot) */
    void (*restored)(void *data, uint64_t index);
};

/* Bind a zeroed `struct raft_fsm` (version 1) to `fsm`. apply() returns 0 for every command (even
 * rejected ones, so the apply loop never wedges), and passes the afc_apply_result back as the
 * result pointer (an integer cast, never heap). The index during apply is
 * raft_last_applied(r) + 1, so set the raft pointer with afc_raft_fsm_set_raft() after raft_init.
 */
struct afc_raft_fsm {
    struct raft_fsm raft_fsm; /* must be first */
    struct afc_fsm *fsm;
    struct raft *raft;
    struct afc_fsm_hooks hooks;
};
void afc_raft_fsm_init(struct afc_raft_fsm *a, struct afc_fsm *fsm, const struct afc_fsm_hooks *h);
void afc_raft_fsm_set_raft(struct afc_raft_fsm *a, struct raft *r);

/* ---- leadership tracker (consensus/leadership.c); also used by the raft_fixture tests ---- */

/* Tracks role changes by polling and does barrier-on-election. */
struct afc_leadership {
    struct raft *raft;
    int last_state; /* RAFT_FOLLOWER / RAFT_CANDIDATE / RAFT_LEADER / RAFT_UNAVAILABLE */
    raft_id last_leader_id;
    uint64_t leader_changes; /* times the known leader id changed (incl. to "none") */
    raft_term barrier_term;  /* term the pending/applied barrier was submitted in */
    bool barrier_pending;
    bool ready; /* leader AND barrier applied in current_term */
    /* raft io time of the previous poll (0 before the first); a gap above half the election
     * timeout means the loop stalled, so readiness is withdrawn (stall detection, leadership.c) */
    raft_time last_poll_ms;
    struct raft_barrier barrier_req;
    void *data;
    /* optional: called on every change of (state, leader id, ready). May be NULL. */
    void (*changed)(struct afc_leadership *l, int old_state, int new_state);
};
void afc_leadership_init(struct afc_leadership *l, struct raft *r);
/* Poll raft_state()/raft_leader(); on becoming leader submit raft_barrier() immediately; clear
 * `ready` the moment the node is not leader or the term moved. Idempotent; cheap. */
void afc_leadership_poll(struct afc_leadership *l);
/* true only if raft_state()==LEADER, current term == barrier_term and that barrier was applied. */
bool afc_leadership_is_ready(const struct afc_leadership *l);

/* ---- authenticated raft transport (consensus/transport.c) ---- */

/* Replaces raft_uv_tcp: every connection is authenticated (HMAC-SHA256 challenge-response over the
 * cluster secret, claimed id must be in member_ids) before a single byte reaches libraft; anything
 * else is dropped with one warn line. Addresses are IPv4 literals "a.b.c.d:port". Returns 0 or a
 * RAFT_* code; the secret and ids are copied. No handles are opened before raft calls listen. */
int afc_transport_init(struct raft_uv_transport *t, uv_loop_t *loop, const unsigned char *secret,
                       size_t secret_len, const raft_id *member_ids, unsigned n_members);
/* Listen on this address instead of the one raft passes to init (port must match). */
int afc_transport_set_bind_address(struct raft_uv_transport *t, const char *address);
/* Connect to member `id` at `address` instead of the address raft passes to connect (its
 * replicated raft_addr): a node-local detour through a proxy or a tunnel. Before raft_init. */
int afc_transport_set_dial_address(struct raft_uv_transport *t, raft_id id, const char *address);
/* Free the memory; only after raft closed it (its close cb ran) or if raft never used it. */
void afc_transport_release(struct raft_uv_transport *t);

/* ---- the node (consensus/node.c) ---- */

struct afc_node_member {
    afc_region_id id;
    char name[AFC_NAME_MAX];
    char raft_addr[AFC_ADDR_MAX]; /* IPv4 literal "a.b.c.d:port" (0.15 accepts nothing else) */
    char raft_dial[AFC_ADDR_MAX]; /* where this node connects for it; "" = raft_addr */
    char api_url[AFC_URL_MAX];
};

struct afc_node_config {
    afc_region_id id;      /* this node */
    const char *data_dir;  /* created if missing (0700) */
    const char *bind_addr; /* NULL = the member's raft_addr */
    unsigned n_members;
    struct afc_node_member members[AFC_MAX_MEMBERS];
    unsigned election_timeout_ms;  /* default 1000 */
    unsigned heartbeat_timeout_ms; /* default 100 */
    unsigned snapshot_threshold;   /* default 1024 */
    unsigned snapshot_trailing;    /* default 128 */
    unsigned digest_interval_ms;   /* leader commits a digest this often; default 5000 */
    /* Shared by all members; every raft connection must prove it holds it (transport.c).
     * Required: init refuses a node without one. Copied at init. */
    const unsigned char *cluster_secret;
    size_t cluster_secret_len;
};

struct afc_node;

/* Events the node reports to its owner (the daemon). All optional. */
struct afc_node_hooks {
    void *data;
    /* state/leader/ready changed */
    void (*role_changed)(struct afc_node *n, int old_state, int new_state, bool ready);
    /* a command was applied (on every node) */
    void (*applied)(struct afc_node *n, uint64_t index, enum afc_apply_result r,
                    const struct afc_err *why);
    /* the state machine detected divergence at `index`; the node has stopped acting. The owner
     * must log and exit non-zero. */
    void (*diverged)(struct afc_node *n, uint64_t index);
};

struct afc_propose;
/* status: 0 = committed and applied locally with result r; AFC_ENOTLEADER; AFC_ELEADERSHIPLOST
 * (outcome unknown); AFC_ESHUTDOWN. */
typedef void (*afc_propose_cb)(struct afc_propose *req, int status, enum afc_apply_result r);
struct afc_propose {
    void *data;
    afc_propose_cb cb;
    /* private */
    struct raft_apply raft_req;
    struct afc_node *node;
};

struct afc_node {
    uv_loop_t *loop;
    struct afc_node_config cfg;
    struct afc_node_hooks hooks;
    int lock_fd;
    struct raft_uv_transport transport;
    struct raft_io io;
    struct afc_fsm fsm;
    struct afc_raft_fsm raft_fsm;
    struct raft raft;
    struct afc_leadership lead;
    uv_prepare_t prepare;
    uv_check_t check;
    uv_timer_t digest_timer;
    struct afc_propose digest_req;
    bool digest_in_flight;
    bool diverged_reported;
    /* leader only: when each member (configuration index) was last heard from (node.c) */
    uint64_t last_heard_ms[AFC_MAX_MEMBERS];
    bool was_leader; /* hooks.diverged already called (it runs at most once) */
    bool started;
    bool closing;
    void (*close_cb)(struct afc_node *n);
    int handles_open;
};

/* Lock the data dir (flock LOCK_EX|LOCK_NB on DIR/lock: AFC_ELOCKED with a message naming the dir
 * and, if known, the holder's pid), init raft_uv (auto_recovery off, small segments), raft_init,
 * tunables, bootstrap if the dir is new (RAFT_CANTBOOTSTRAP ignored). Corrupt log → AFC_ECORRUPT
 * with raft's message naming the file. Does not start; no callbacks before afc_node_start. */
int afc_node_init(struct afc_node *n, uv_loop_t *loop, const struct afc_node_config *cfg,
                  const struct afc_node_hooks *hooks, struct afc_err *err);
/* raft_start + polling handles + digest timer. */
int afc_node_start(struct afc_node *n, struct afc_err *err);
/* Stop timers, raft_close, then raft_uv_close/transport close; cb once everything is closed.
 * Pending proposals complete with AFC_ESHUTDOWN. Safe to call after a failed init (cb still runs
 * once). */
void afc_node_close(struct afc_node *n, void (*cb)(struct afc_node *n));

/* Propose a command. Only on a ready leader (else AFC_ENOTLEADER / AFC_ENOTREADY synchronously,
 * and cb never runs). On 0, cb runs exactly once. */
int afc_node_propose(struct afc_node *n, struct afc_propose *req, const struct afc_cmd *cmd,
                     afc_propose_cb cb);

/* Accessors (cheap, for the API and metrics). */
const struct afc_state *afc_node_state(const struct afc_node *n);
bool afc_node_is_ready(const struct afc_node *n);  /* ready leader */
int afc_node_raft_state(const struct afc_node *n); /* RAFT_FOLLOWER/CANDIDATE/LEADER/UNAVAILABLE */
const char *
afc_node_raft_state_name(int state); /* "follower", "candidate", "leader", "unavailable" */
uint64_t afc_node_term(const struct afc_node *n);
uint64_t afc_node_commit_index(const struct afc_node *n);
uint64_t afc_node_applied_index(const struct afc_node *n);
/* The index of the last entry in this node's log (appended, not necessarily committed). */
uint64_t afc_node_last_index(const struct afc_node *n);
uint64_t afc_node_leader_changes(const struct afc_node *n);
/* On the leader: true if member `id`'s coordinator sent us something within the last election
 * timeout (raft's check-quorum bookkeeping). Also true for ourselves, and everywhere but on the
 * leader (there it is unknown, and "unknown" must never count as "lost"). */
bool afc_node_member_heard(const struct afc_node *n, afc_region_id id);

/* Known leader (id 0 / NULL if none). */
afc_region_id afc_node_leader_id(const struct afc_node *n);
const struct afc_node_member *afc_node_member(const struct afc_node *n, afc_region_id id);

#endif
