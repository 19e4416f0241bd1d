/*
 * The node: one libraft 0.15 instance over raft_uv (authenticated TCP transport.c + on-disk log)
 * on the daemon's loop.
 *
 * Lifecycle (libuv style): afc_node_init → afc_node_start → ... → afc_node_close(cb); cb runs once
 * all handles are closed, after which uv_loop_close() returns 0.
 *
 * Data flow: proposals → afc_cmd_encode (padded to 8, raft-0.15.md §4.2) → raft_apply → commit →
 * raft_fsm.c on every node → hooks.applied. Role changes are polled (no state callback in 0.15,
 * §4.4) from a uv_prepare and a uv_check handle through leadership.c, which also does the
 * barrier-on-election that makes a leader "ready" (§4.3, ARCHITECTURE §4.1). A ready leader
 * commits a state digest every digest_interval_ms; a node whose state machine sees a different
 * digest stops proposing forever and tells its owner (hooks.diverged) from the loop.
 *
 * Wrapper rules applied here (raft-0.15.md §3, §4, §10): SIGPIPE ignored (§4.1); own flock on the
 * data dir (§4.7); auto_recovery off so a corrupt segment is refused, not silently truncated
 * (§4.7); small segments (§3 step 4); connect retry 200 ms, pre-vote on (§4.6); static
 * bootstrap with a byte-identical configuration (§3 step 7).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "afc/consensus.h"
#include "afc/log.h"

#define DEFAULT_ELECTION_TIMEOUT_MS  1000
#define DEFAULT_HEARTBEAT_TIMEOUT_MS 100
#define DEFAULT_SNAPSHOT_THRESHOLD   1024
#define DEFAULT_SNAPSHOT_TRAILING    128
#define DEFAULT_DIGEST_INTERVAL_MS   5000
/* InstallSnapshot retry, in election timeouts (see set_tunables; libraft's default is 30 s). */
#define INSTALL_SNAPSHOT_RETRY_ELECTIONS 2
/* raft_uv preallocates open segments of this size (default 8 MiB × 3 = 25 MB per node for a few
 * hundred bytes of state, §3 step 4). A multiple of every plausible direct-I/O block size. */
#define SEGMENT_SIZE           (1024 * 1024)
#define CONNECT_RETRY_DELAY_MS 200
#define LOCK_FILE              "lock"
#define N_OWN_HANDLES          3 /* prepare, check, digest timer */

/* ---- error mapping ---- */

static int afc_code_of_raft(int rv)
{
    switch (rv) {
    case 0:
        return 0;
    case RAFT_NOMEM:
        return AFC_ENOMEM;
    case RAFT_NOTLEADER:
        return AFC_ENOTLEADER;
    case RAFT_LEADERSHIPLOST:
        return AFC_ELEADERSHIPLOST;
    case RAFT_SHUTDOWN:
        return AFC_ESHUTDOWN;
    case RAFT_CORRUPT:
    case RAFT_MALFORMED:
        return AFC_ECORRUPT;
    case RAFT_TOOBIG:
        return AFC_ETOOBIG;
    case RAFT_BADID:
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS:
    case RAFT_BADROLE:
    case RAFT_INVALID:
        return AFC_ECONFIG;
    default:
        return AFC_EIO;
    }
}

/* ---- small helpers ---- */

const char *afc_node_raft_state_name(int state)
{
    switch (state) {
    case RAFT_FOLLOWER:
        return "follower";
    case RAFT_CANDIDATE:
        return "candidate";
    case RAFT_LEADER:
        return "leader";
    default:
        return "unavailable";
    }
}

const struct afc_node_member *afc_node_member(const struct afc_node *n, afc_region_id id)
{
    for (unsigned i = 0; i < n->cfg.n_members; i++) {
        if (n->cfg.members[i].id == id) {
            return &n->cfg.members[i];
        }
    }
    return NULL;
}

static const char *member_name(const struct afc_node *n, afc_region_id id)
{
    const struct afc_node_member *m = afc_node_member(n, id);

    if (id == 0) {
        return "none";
    }
    return m != NULL ? m->name : "unknown";
}

static const char *self_name(const struct afc_node *n)
{
    return member_name(n, n->cfg.id);
}

static int64_t wall_ms(void)
{
    struct timespec ts;

    /* Display only (history), never for decisions (CONVENTIONS "State machines and time"). */
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- configuration ---- */

static void apply_defaults(struct afc_node_config *c)
{
    if (c->election_timeout_ms == 0) {
        c->election_timeout_ms = DEFAULT_ELECTION_TIMEOUT_MS;
    }
    if (c->heartbeat_timeout_ms == 0) {
        c->heartbeat_timeout_ms = DEFAULT_HEARTBEAT_TIMEOUT_MS;
    }
    if (c->snapshot_threshold == 0) {
        c->snapshot_threshold = DEFAULT_SNAPSHOT_THRESHOLD;
    }
    if (c->snapshot_trailing == 0) {
        c->snapshot_trailing = DEFAULT_SNAPSHOT_TRAILING;
    }
    if (c->digest_interval_ms == 0) {
        c->digest_interval_ms = DEFAULT_DIGEST_INTERVAL_MS;
    }
}

static int validate_config(const struct afc_node_config *c, struct afc_err *err)
{
    if (c->data_dir == NULL || c->data_dir[0] == '\0') {
        return afc_err_set(err, AFC_ECONFIG, "data directory not set");
    }
    if (c->cluster_secret == NULL || c->cluster_secret_len == 0) {
        /* Without it any host reaching the raft port could pose as a member (§8). */
        return afc_err_set(err, AFC_ECONFIG, "cluster secret missing");
    }
    if (c->n_members == 0 || c->n_members > AFC_MAX_MEMBERS) {
        return afc_err_set(err, AFC_ECONFIG, "%u members (1..%d allowed)", c->n_members,
                           AFC_MAX_MEMBERS);
    }
    for (unsigned i = 0; i < c->n_members; i++) {
        if (c->members[i].id == c->id) {
            return 0;
        }
    }
    return afc_err_set(err, AFC_ECONFIG, "own id %" PRIu64 " is not in the member list", c->id);
}

/* ---- data directory and its lock (raft_uv does not lock, §4.7) ---- */

static int make_data_dir(const char *dir, struct afc_err *err)
{
    struct stat st;

    if (mkdir(dir, 0700) == 0) {
        return 0;
    }
    if (errno != EEXIST) {
        return afc_err_set(err, AFC_EIO, "create data directory %s: %s", dir, strerror(errno));
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return afc_err_set(err, AFC_EIO, "data directory %s exists but is not a directory", dir);
    }
    return 0;
}

static long read_lock_pid(int fd)
{
    char buf[32] = {0};
    ssize_t got = pread(fd, buf, sizeof buf - 1, 0);

    return got > 0 ? strtol(buf, NULL, 10) : 0;
}

static void write_lock_pid(int fd)
{
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());

    /* Informational only (names the holder to a second process); the flock is the lock. */
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)len, 0) != len) {
        afc_warn("data directory lock: cannot record pid: %s", strerror(errno));
    }
}

static int lock_data_dir(struct afc_node *n, struct afc_err *err)
{
    const char *dir = n->cfg.data_dir;
    char path[4096];
    long pid;
    int fd;

    snprintf(path, sizeof path, "%s/%s", dir, LOCK_FILE);
    /* O_CLOEXEC: hook scripts the daemon spawns must not inherit (and keep) the lock. */
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        return afc_err_set(err, AFC_EIO, "open %s: %s", path, strerror(errno));
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        pid = read_lock_pid(fd);
        close(fd);
        if (e != EWOULDBLOCK) {
            return afc_err_set(err, AFC_EIO, "lock %s: %s", path, strerror(e));
        }
        if (pid > 0) {
            return afc_err_set(err, AFC_ELOCKED,
                               "data directory %s is locked by pid %ld (another "
                               "aragora-coordinator is using it)",
                               dir, pid);
        }
        return afc_err_set(err, AFC_ELOCKED,
                           "data directory %s is locked by another process (another "
                           "aragora-coordinator is using it)",
                           dir);
    }
    write_lock_pid(fd);
    n->lock_fd = fd;
    return 0;
}

static void unlock_data_dir(struct afc_node *n)
{
    if (n->lock_fd >= 0) {
        close(n->lock_fd); /* releases the flock; the file stays (unlinking would race) */
        n->lock_fd = -1;
    }
}

/* ---- raft setup ---- */

/* Every node builds the same configuration from cfg.members in the given order, so the bootstrap
 * entry is byte-identical on all of them (§3 step 7). */
static int bootstrap(struct afc_node *n, struct afc_err *err)
{
    struct raft_configuration conf;
    int rv = 0;

    raft_configuration_init(&conf);
    for (unsigned i = 0; i < n->cfg.n_members && rv == 0; i++) {
        const struct afc_node_member *m = &n->cfg.members[i];
        rv = raft_configuration_add(&conf, m->id, m->raft_addr, RAFT_VOTER);
    }
    if (rv != 0) {
        raft_configuration_close(&conf);
        return afc_err_set(err, afc_code_of_raft(rv), "raft configuration: %s", raft_strerror(rv));
    }
    rv = raft_bootstrap(&n->raft, &conf);
    raft_configuration_close(&conf);
    if (rv == RAFT_CANTBOOTSTRAP) {
        afc_info("raft: existing state in %s, not bootstrapping", n->cfg.data_dir);
        return 0;
    }
    if (rv != 0) {
        return afc_err_set(err, afc_code_of_raft(rv), "raft bootstrap: %s", raft_errmsg(&n->raft));
    }
    afc_info("raft: bootstrapped %u-member configuration in %s", n->cfg.n_members, n->cfg.data_dir);
    return 0;
}

static void set_tunables(struct afc_node *n)
{
    struct raft *r = &n->raft;

    raft_set_election_timeout(r, n->cfg.election_timeout_ms);
    raft_set_heartbeat_timeout(r, n->cfg.heartbeat_timeout_ms);
    /* Pre-vote: ~1.2 s faster failover on 0.15 and no term inflation by a resumed follower. */
    raft_set_pre_vote(r, true);
    raft_set_snapshot_threshold(r, n->cfg.snapshot_threshold);
    raft_set_snapshot_trailing(r, n->cfg.snapshot_trailing);
    /* 0.15 silently drops an InstallSnapshot that arrives while the follower is taking or
     * installing another snapshot (RAFT_BUSY, no reply), and the leader, which waits in snapshot
     * mode and ignores the follower's heartbeat rejections meanwhile, only re-sends it after
     * install_snapshot_timeout: 30 s by default. A follower restarted behind the leader's snapshot
     * hits this when stale messages queued while it was down (an old AppendEntries that makes it
     * take its own snapshot, or an older InstallSnapshot) reach it first. Our snapshot is a few
     * KiB, so a re-send is cheap: retry after two election timeouts, which still covers a WAN
     * round trip plus the follower's fsync and restore many times over. */
    raft_set_install_snapshot_timeout(r, INSTALL_SNAPSHOT_RETRY_ELECTIONS * r->election_timeout);
}

/*
 * raft_uv 0.15 treats a checksum failure inside an *open* segment as a torn tail write and
 * truncates the segment there, whatever auto_recovery says: a byte flipped mid-segment silently
 * dropped six valid entries after it (manual experiment; closed segments are refused either way).
 * A torn tail is the normal aftermath of a crash, so refusing to start would be wrong; but an
 * operator must see it, since entries this node acknowledged may be gone. The only hook 0.15
 * offers is its tracer, so we install one that turns that message into an event (and still
 * honours LIBRAFT_TRACE for debugging). It has no per-node state, hence one static instance.
 */
static void uv_trace_emit(struct raft_tracer *t, const char *file, int line, const char *message)
{
    /* 0.15 traces "<segment> has non-zero trail" just before "truncate open segment ..." when the
     * bytes after the last good batch are not the zeros the segment was preallocated with. Without
     * it the "truncation" only drops never-written preallocated space: the normal state of an open
     * segment after SIGKILL (it happens on every crash-restart), not a loss of entries. */
    static bool nonzero_trail;
    (void)t;
    if (strstr(message, "has non-zero trail") != NULL) {
        nonzero_trail = true;
    }
    if (strstr(message, "since it has corrupted entries") != NULL) {
        if (nonzero_trail) {
            afc_event("raft-log-truncated", "detail=\"%s\"", message);
            afc_warn("raft log truncated at start (torn write after a crash, or corruption): "
                     "entries after that point are gone from this node and come back from the "
                     "leader only if the others hold them");
        } else {
            afc_info("raft: open segment ends in preallocated zeros after an unclean stop (%s); "
                     "no entries lost",
                     message);
        }
        nonzero_trail = false;
    }
    if (getenv("LIBRAFT_TRACE") != NULL) {
        fprintf(stderr, "LIBRAFT %s:%d %s\n", file, line, message);
    }
}

static struct raft_tracer uv_tracer = {.enabled = true, .emit = uv_trace_emit};

/* The authenticated transport (transport.c, replaces raft_uv_tcp: §8) + raft_uv. On failure
 * everything created here is released again. */
static int init_io(struct afc_node *n, struct afc_err *err)
{
    raft_id ids[AFC_MAX_MEMBERS];
    for (unsigned i = 0; i < n->cfg.n_members; i++) {
        ids[i] = n->cfg.members[i].id;
    }
    int rv = afc_transport_init(&n->transport, n->loop, n->cfg.cluster_secret,
                                n->cfg.cluster_secret_len, ids, n->cfg.n_members);
    if (rv != 0) {
        return afc_err_set(err, afc_code_of_raft(rv), "raft transport: %s", raft_strerror(rv));
    }
    if (n->cfg.bind_addr != NULL) {
        /* Must precede raft_init; the port must equal the advertised one (§3 step 3). */
        rv = afc_transport_set_bind_address(&n->transport, n->cfg.bind_addr);
        if (rv != 0) {
            afc_transport_release(&n->transport);
            return afc_err_set(err, AFC_ECONFIG, "raft bind address %s: expected a.b.c.d:port",
                               n->cfg.bind_addr);
        }
    }
    for (unsigned i = 0; i < n->cfg.n_members; i++) {
        const struct afc_node_member *m = &n->cfg.members[i];
        if (m->raft_dial[0] != '\0' &&
            afc_transport_set_dial_address(&n->transport, m->id, m->raft_dial) != 0) {
            afc_transport_release(&n->transport);
            return afc_err_set(err, AFC_ECONFIG, "raft dial address %s: expected a.b.c.d:port",
                               m->raft_dial);
        }
    }
    rv = raft_uv_init(&n->io, n->loop, n->cfg.data_dir, &n->transport);
    if (rv != 0) {
        afc_transport_release(&n->transport);
        return afc_err_set(err, afc_code_of_raft(rv), "raft storage in %s: %s", n->cfg.data_dir,
                           n->io.errmsg[0] ? n->io.errmsg : raft_strerror(rv));
    }
    /* Off: the default deletes a corrupt segment and everything after it at start — a silent log
     * truncation on this node. We refuse to start instead, naming the file (§4.7). */
    raft_uv_set_auto_recovery(&n->io, false);
    raft_uv_set_segment_size(&n->io, SEGMENT_SIZE);
    raft_uv_set_connect_retry_delay(&n->io, CONNECT_RETRY_DELAY_MS);
    raft_uv_set_tracer(&n->io, &uv_tracer);
    return 0;
}

static int init_raft(struct afc_node *n, struct afc_err *err)
{
    const struct afc_node_member *self = afc_node_member(n, n->cfg.id);
    int rv = raft_init(&n->raft, &n->io, &n->raft_fsm.raft_fsm, self->id, self->raft_addr);

    if (rv != 0) {
        int code = afc_err_set(err, afc_code_of_raft(rv), "raft init (id %" PRIu64 ", %s): %s",
                               self->id, self->raft_addr, raft_errmsg(&n->raft));
        raft_uv_close(&n->io);
        afc_transport_release(&n->transport);
        return code;
    }
    n->raft.data = n;
    /* Marks "raft initialised": afc_node_close must raft_close it. */
    afc_raft_fsm_set_raft(&n->raft_fsm, &n->raft);
    set_tunables(n);
    return 0;
}

static bool raft_is_initialised(const struct afc_node *n)
{
    return n->raft_fsm.raft != NULL;
}

/* ---- events: role changes, divergence ---- */

/* Events (docs/events.md): role-changed on a raft state change; leader-changed when only the
 * known leader changed; leader-elected / leader-unready when only this leader's readiness
 * changed (ready implies LEADER, and a barrier cannot commit in the poll that saw the election,
 * so LEADER→LEADER is always a readiness change); leader-stepped-down on leaving LEADER. */
static void lead_changed(struct afc_leadership *l, int old_state, int new_state)
{
    struct afc_node *n = l->data;
    unsigned long long term = n->raft.current_term;
    const char *leader = member_name(n, l->last_leader_id);

    if (old_state != new_state) {
        afc_event("role-changed", "from=%s to=%s term=%llu leader=%s",
                  afc_node_raft_state_name(old_state), afc_node_raft_state_name(new_state), term,
                  leader);
    } else if (new_state != RAFT_LEADER) {
        afc_event("leader-changed", "term=%llu leader=%s", term, leader);
    }
    if (old_state == RAFT_LEADER && new_state != RAFT_LEADER) {
        afc_event("leader-stepped-down", "term=%llu to=%s", term,
                  afc_node_raft_state_name(new_state));
    }
    if (l->ready) {
        afc_event("leader-elected", "term=%llu leader=%s", term, self_name(n));
    } else if (old_state == RAFT_LEADER && new_state == RAFT_LEADER) {
        afc_event("leader-unready", "term=%llu", term);
    }
    if (n->hooks.role_changed != NULL) {
        n->hooks.role_changed(n, old_state, new_state, l->ready);
    }
}

/*
 * Report divergence once, from the loop rather than from inside raft's apply callback (the owner
 * will typically log and close/exit, which must not happen under raft's feet). The digest timer
 * is stopped here and never restarted: a diverged node commits no more digests.
 */
static void report_divergence(struct afc_node *n)
{
    if (!n->fsm.diverged || n->diverged_reported) {
        return;
    }
    n->diverged_reported = true;
    uv_timer_stop(&n->digest_timer);
    afc_event("diverged", "index=%llu", (unsigned long long)n->fsm.diverged_index);
    afc_error("replicated state diverged at index %llu: this node stops proposing; restore its "
              "data directory from a healthy member",
              (unsigned long long)n->fsm.diverged_index);
    if (n->hooks.diverged != NULL) {
        n->hooks.diverged(n, n->fsm.diverged_index);
    }
}

/* On the leader, turn libraft's recent_recv flags (set on every AppendEntries result, cleared at
 * every check-quorum tick) into a time last heard from each member, so that "not heard lately"
 * does not flicker true right after each tick. A new leader counts everyone as just heard. */
static void track_heard(struct afc_node *n)
{
    const struct raft *r = &n->raft;
    uint64_t now = uv_now(n->loop);
    bool leader = r->state == RAFT_LEADER;
    unsigned count = r->configuration.n < AFC_MAX_MEMBERS ? r->configuration.n : AFC_MAX_MEMBERS;
    for (unsigned i = 0; i < count; i++) {
        if (!leader || !n->was_leader || r->leader_state.progress[i].recent_recv) {
            n->last_heard_ms[i] = now;
        }
    }
    n->was_leader = leader;
}

static void node_poll(struct afc_node *n)
{
    if (n->closing) {
        return;
    }
    afc_leadership_poll(&n->lead);
    if (raft_is_initialised(n)) {
        track_heard(n);
    }
    report_divergence(n);
}

/* Both are needed: prepare sees tick-driven changes (election timeout, check-quorum step-down),
 * check sees message-driven ones in the same turn (§4.4). */
static void prepare_cb(uv_prepare_t *h)
{
    node_poll(h->data);
}

static void check_cb(uv_check_t *h)
{
    node_poll(h->data);
}

static void fsm_applied(void *data, uint64_t index, enum afc_apply_result r,
                        const struct afc_err *why)
{
    struct afc_node *n = data;

    if (n->hooks.applied != NULL) {
        n->hooks.applied(n, index, r, why);
    }
}

/* ---- proposals ---- */

static void apply_cb(struct raft_apply *ar, int status, void *result)
{
    struct afc_propose *req = ar->data;
    enum afc_apply_result r = AFC_APPLY_OK;

    if (status == 0) {
        r = (enum afc_apply_result)(uintptr_t)result;
    } else if (status == RAFT_LEADERSHIPLOST) {
        /* 0.15 fails pending requests while stepping down but before leaving the LEADER state
         * (check-quorum keeps the term too), so afc_leadership_is_ready() would still say yes
         * inside this callback, and a retry from req->cb would raft_apply into a log being torn
         * down. Withdraw readiness now; the next poll reports the change. */
        req->node->lead.barrier_term = 0;
    }
    /* LEADERSHIPLOST is an unknown outcome: the entry may still be committed by the next leader
     * (§3 "Proposing"); commands are CAS/idempotent so the caller re-reads after a barrier. */
    if (req->cb != NULL) {
        req->cb(req, afc_code_of_raft(status), r);
    }
}

int afc_node_propose(struct afc_node *n, struct afc_propose *req, const struct afc_cmd *cmd,
                     afc_propose_cb cb)
{
    struct raft_buffer buf;
    void *enc = NULL;
    size_t len = 0;
    int rv;

    if (n->closing || !n->started) {
        return AFC_ESHUTDOWN;
    }
    if (n->fsm.diverged) {
        return AFC_EDIVERGED;
    }
    if (raft_state(&n->raft) != RAFT_LEADER) {
        return AFC_ENOTLEADER;
    }
    if (!afc_leadership_is_ready(&n->lead)) {
        return AFC_ENOTREADY;
    }
    rv = afc_cmd_encode(cmd, &enc, &len); /* already padded to a multiple of 8 (§4.2) */
    if (rv != 0) {
        return rv;
    }
    /* raft_apply requires raft_malloc'd payloads; ownership passes only if it returns 0. */
    buf.base = raft_malloc(len);
    if (buf.base == NULL) {
        free(enc);
        return AFC_ENOMEM;
    }
    memcpy(buf.base, enc, len);
    buf.len = len;
    free(enc);
    req->cb = cb;
    req->node = n;
    req->raft_req.data = req;
    rv = raft_apply(&n->raft, &req->raft_req, &buf, 1, apply_cb);
    if (rv != 0) {
        raft_free(buf.base);
        return afc_code_of_raft(rv);
    }
    return 0;
}

/* ---- digest timer ---- */

static void digest_cb(struct afc_propose *req, int status, enum afc_apply_result r)
{
    struct afc_node *n = req->data;

    n->digest_in_flight = false;
    if (status != 0 && status != AFC_ESHUTDOWN) {
        afc_info("digest proposal: %s", afc_strerror(status));
    } else if (status == 0 && r != AFC_APPLY_OK && r != AFC_APPLY_NOOP) {
        afc_warn("digest proposal applied with result %s", afc_apply_result_name(r));
    }
}

/* A ready leader commits the digest of its state at its applied index; every node compares it
 * with its own digest at that index (ARCHITECTURE §4.1). Only one in flight. */
static void digest_timer_cb(uv_timer_t *t)
{
    struct afc_node *n = t->data;
    struct afc_cmd cmd;
    uint64_t at = n->fsm.state.applied_index;
    uint64_t digest;
    int rv;

    if (n->closing || n->digest_in_flight || !afc_node_is_ready(n) ||
        !afc_fsm_digest_at(&n->fsm, at, &digest)) {
        return;
    }
    memset(&cmd, 0, sizeof cmd);
    cmd.op = AFC_OP_DIGEST;
    cmd.wall_ms = wall_ms();
    snprintf(cmd.by, sizeof cmd.by, "%s", self_name(n));
    cmd.u.digest.at_index = at;
    cmd.u.digest.digest = digest;
    n->digest_req.data = n;
    rv = afc_node_propose(n, &n->digest_req, &cmd, digest_cb);
    if (rv == 0) {
        n->digest_in_flight = true;
    } else {
        afc_info("digest proposal at index %llu: %s", (unsigned long long)at, afc_strerror(rv));
    }
}

/* ---- lifecycle ---- */

static void init_own_handles(struct afc_node *n)
{
    /* Initialised first and unconditionally so that afc_node_close always has handles whose close
     * callbacks deliver the user's cb asynchronously, even after a failed init. */
    uv_prepare_init(n->loop, &n->prepare);
    uv_check_init(n->loop, &n->check);
    uv_timer_init(n->loop, &n->digest_timer);
    n->prepare.data = n;
    n->check.data = n;
    n->digest_timer.data = n;
}

int afc_node_init(struct afc_node *n, uv_loop_t *loop, const struct afc_node_config *cfg,
                  const struct afc_node_hooks *hooks, struct afc_err *err)
{
    struct afc_fsm_hooks fh = {.data = n, .applied = fsm_applied};
    int rv;

    /* libuv leaves SIGPIPE at default: a peer dying mid-write would kill this process (§4.1). */
    signal(SIGPIPE, SIG_IGN);
    memset(n, 0, sizeof *n);
    n->loop = loop;
    n->cfg = *cfg;
    n->lock_fd = -1;
    if (hooks != NULL) {
        n->hooks = *hooks;
    }
    apply_defaults(&n->cfg);
    init_own_handles(n);
    afc_fsm_init(&n->fsm);
    afc_raft_fsm_init(&n->raft_fsm, &n->fsm, &fh);
    afc_leadership_init(&n->lead, &n->raft);
    n->lead.data = n;
    n->lead.changed = lead_changed;

    /* Each step undoes its own partial work on failure; what completed is released by
     * afc_node_close, which the owner must call after a failed init too. */
    if ((rv = validate_config(&n->cfg, err)) != 0 || (rv = make_data_dir(cfg->data_dir, err)) ||
        (rv = lock_data_dir(n, err)) != 0 || (rv = init_io(n, err)) != 0 ||
        (rv = init_raft(n, err)) != 0 || (rv = bootstrap(n, err)) != 0) {
        return rv;
    }
    return 0;
}

/* The address raft will listen on: the bind address if set, else this member's raft address. */
static const char *listen_addr(const struct afc_node *n)
{
    if (n->cfg.bind_addr != NULL) {
        return n->cfg.bind_addr;
    }
    const struct afc_node_member *self = afc_node_member(n, n->cfg.id);
    return self != NULL ? self->raft_addr : "";
}

/* libraft 0.15 reports a failed listen as a bare "I/O error", indistinguishable from a data
 * directory problem. Bind the address ourselves first (SO_REUSEADDR, as raft_uv does) so that an
 * operator reads "address already in use" with the address. */
static int check_listen(const char *addr, struct afc_err *err)
{
    char host[AFC_ADDR_MAX];
    snprintf(host, sizeof host, "%s", addr);
    char *colon = strrchr(host, ':');
    struct sockaddr_in sa = {.sin_family = AF_INET};
    if (colon == NULL || (*colon = '\0', inet_pton(AF_INET, host, &sa.sin_addr)) != 1) {
        return afc_err_set(err, AFC_ECONFIG, "raft address %s: expected a.b.c.d:port", addr);
    }
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    int rv = fd < 0 ? -1 : setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (rv == 0) {
        rv = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    }
    int saved = errno;
    if (fd >= 0) {
        close(fd);
    }
    if (rv != 0) {
        return afc_err_set(err, AFC_EIO, "raft address %s: cannot listen: %s", addr,
                           strerror(saved));
    }
    return 0;
}

int afc_node_start(struct afc_node *n, struct afc_err *err)
{
    int rv = check_listen(listen_addr(n), err);
    if (rv != 0) {
        return rv;
    }
    rv = raft_start(&n->raft);
    if (rv != 0) {
        /* The address is free, so what failed is loading the data directory: a corrupt or
         * unreadable segment, snapshot or metadata file. With auto_recovery off it is refused,
         * never truncated; raft's message names the file. */
        const char *msg = raft_errmsg(&n->raft);
        return afc_err_set(err, rv == RAFT_NOMEM ? AFC_ENOMEM : AFC_ECORRUPT,
                           "data directory %s refused: %s", n->cfg.data_dir,
                           msg != NULL && msg[0] ? msg : raft_strerror(rv));
    }
    n->started = true;
    uv_prepare_start(&n->prepare, prepare_cb);
    uv_check_start(&n->check, check_cb);
    uv_timer_start(&n->digest_timer, digest_timer_cb, n->cfg.digest_interval_ms,
                   n->cfg.digest_interval_ms);
    afc_info("raft started: id=%" PRIu64 " (%s) term=%llu last_index=%llu", n->cfg.id, self_name(n),
             (unsigned long long)n->raft.current_term,
             (unsigned long long)raft_last_index(&n->raft));
    return 0;
}

static void close_step_done(struct afc_node *n)
{
    if (--n->handles_open > 0) {
        return;
    }
    unlock_data_dir(n);
    if (n->close_cb != NULL) {
        n->close_cb(n);
    }
}

static void handle_closed_cb(uv_handle_t *h)
{
    close_step_done(h->data);
}

static void raft_closed_cb(struct raft *r)
{
    struct afc_node *n = r->data;

    /* Only now may the io and the transport be released (§3 step 10). */
    raft_uv_close(&n->io);
    afc_transport_release(&n->transport);
    close_step_done(n);
}

void afc_node_close(struct afc_node *n, void (*cb)(struct afc_node *n))
{
    if (n->closing) {
        return;
    }
    n->closing = true;
    n->close_cb = cb;
    n->handles_open = N_OWN_HANDLES + (raft_is_initialised(n) ? 1 : 0);
    uv_close((uv_handle_t *)&n->prepare, handle_closed_cb);
    uv_close((uv_handle_t *)&n->check, handle_closed_cb);
    uv_close((uv_handle_t *)&n->digest_timer, handle_closed_cb);
    if (raft_is_initialised(n)) {
        /* Pending proposals and the barrier complete with RAFT_SHUTDOWN during this call. */
        raft_close(&n->raft, raft_closed_cb);
    }
}

/* ---- accessors ---- */

const struct afc_state *afc_node_state(const struct afc_node *n)
{
    return &n->fsm.state;
}

bool afc_node_is_ready(const struct afc_node *n)
{
    return n->started && !n->closing && !n->fsm.diverged && afc_leadership_is_ready(&n->lead);
}

int afc_node_raft_state(const struct afc_node *n)
{
    return n->raft.state; /* what raft_state() returns; a zeroed struct reads UNAVAILABLE */
}

uint64_t afc_node_term(const struct afc_node *n)
{
    return n->raft.current_term;
}

uint64_t afc_node_commit_index(const struct afc_node *n)
{
    return n->raft.commit_index;
}

uint64_t afc_node_applied_index(const struct afc_node *n)
{
    return n->raft.last_applied;
}

uint64_t afc_node_last_index(const struct afc_node *n)
{
    return raft_last_index((struct raft *)&n->raft);
}

uint64_t afc_node_leader_changes(const struct afc_node *n)
{
    return n->lead.leader_changes;
}

bool afc_node_member_heard(const struct afc_node *n, afc_region_id id)
{
    const struct raft *r = &n->raft;
    if (!raft_is_initialised(n) || r->state != RAFT_LEADER || id == n->cfg.id) {
        return true;
    }
    for (unsigned i = 0; i < r->configuration.n && i < AFC_MAX_MEMBERS; i++) {
        if (r->configuration.servers[i].id == id) {
            /* two election timeouts: recent_recv is cleared once per timeout, so a live member
             * sets it again within one; a member silent for two is gone */
            return uv_now(n->loop) - n->last_heard_ms[i] < 2ull * n->cfg.election_timeout_ms;
        }
    }
    return true;
}

afc_region_id afc_node_leader_id(const struct afc_node *n)
{
    raft_id id = 0;
    const char *addr = NULL;

    if (!raft_is_initialised(n)) {
        return 0;
    }
    /* raft_leader() only reads; 0.15 lacks const in its signature. */
    raft_leader((struct raft *)&n->raft, &id, &addr);
    return id;
}
