/*
 * Deterministic consensus tests on libraft's raft_fixture (in-memory io, virtual time).
 *
 * Every server runs the real state machine through afc_raft_fsm and the real leadership tracker
 * (barrier-on-election), polled after every raft_fixture_step — but only on servers that are
 * alive: a frozen process does not run its loop (raft-0.15.md §7). Partitions use saturate in
 * both directions (§7: disconnect is one-way and hides the leader from the fixture). Election
 * timeouts are set explicitly per server (§7: the fixture's defaults can livelock).
 *
 * Not covered here (the fixture does not encode or touch disk, §4.2/§7): entry padding, segment
 * corruption, SIGPIPE — those belong to the multi-process integration tests.
 */
#include <stdint.h>
#include <stdlib.h>

#include <raft.h>
#include <raft/fixture.h>

#include "afc/consensus.h"
#include "afc/log.h"
#include "tests/test.h"

#define N          3
#define MAX_PROPS  8
#define NO_SERVER  ((unsigned)-1)
#define LONG_WAIT  30000 /* virtual ms */
#define SHORT_WAIT 5000
#define MAX_LOG    64 /* per-server apply results are recorded for log indexes below this */

/* Server 0 times out first, so it wins the first election. */
static const unsigned DEFAULT_TIMEOUTS[N] = {1000, 1300, 1600};
/* 0.15 leader stickiness: a follower refuses (pre-)votes until its own election timer fired, and
 * the timer value is drawn when it became follower (heartbeats do not re-draw it). So of two
 * followers whose leader vanished, the one whose timer fires *second* wins. Figure 8 needs S1 to
 * win step 2: S2's timer must fire first. */
static const unsigned FIGURE8_TIMEOUTS[N] = {1000, 1600, 1300};

struct prop {
    struct raft_apply req;
    bool done;
    int status;
    enum afc_apply_result result;
};

/* What afc_fsm_hooks.applied reported on one server, by log index. */
struct applied_log {
    bool seen[MAX_LOG];
    enum afc_apply_result result[MAX_LOG];
};

struct cluster {
    struct raft_fixture f;
    struct afc_fsm fsm[N];
    struct afc_raft_fsm ad[N];
    struct afc_leadership lead[N];
    struct applied_log applied[N]; /* every server's own apply results (the hook) */
    bool barrier_on;               /* poll the trackers (which submit the barrier on election) */
    struct prop props[MAX_PROPS];
    unsigned n_props;
    /* observations from the `changed` callback */
    unsigned ready_before_barrier[N];     /* must stay 0 */
    unsigned leader_ready_at_election[N]; /* must stay 0 */
    raft_term mark_term;                  /* for leads_anew() */
};

/* ---- cluster setup ---- */

static unsigned index_of(struct cluster *c, const struct afc_leadership *l)
{
    return (unsigned)(l - c->lead);
}

/* Readiness must never precede the barrier's application; a fresh leader is never ready. */
static void lead_changed(struct afc_leadership *l, int old_state, int new_state)
{
    struct cluster *c = l->data;
    unsigned i = index_of(c, l);

    if (l->ready && raft_last_applied(l->raft) < l->barrier_req.index) {
        c->ready_before_barrier[i]++;
    }
    if (new_state == RAFT_LEADER && old_state != RAFT_LEADER && l->ready) {
        c->leader_ready_at_election[i]++;
    }
}

static void record_applied(void *data, uint64_t index, enum afc_apply_result r,
                           const struct afc_err *why)
{
    struct applied_log *log = data;

    (void)why;
    if (index < MAX_LOG) {
        log->seen[index] = true;
        log->result[index] = r;
    }
}

static struct cluster *cluster_new(bool barrier_on, const unsigned timeouts[N])
{
    struct cluster *c = calloc(1, sizeof *c);
    struct raft_configuration conf;
    int rv;

    /* 0.15 does not reset f->n in raft_fixture_initialize (§4.9): zeroed by calloc. */
    if (c == NULL || raft_fixture_initialize(&c->f) != 0) {
        free(c);
        return NULL;
    }
    c->barrier_on = barrier_on;
    for (unsigned i = 0; i < N; i++) {
        struct afc_fsm_hooks hooks = {.data = &c->applied[i], .applied = record_applied};
        afc_fsm_init(&c->fsm[i]);
        afc_raft_fsm_init(&c->ad[i], &c->fsm[i], &hooks);
        rv = raft_fixture_grow(&c->f, &c->ad[i].raft_fsm);
        if (rv != 0) {
            abort();
        }
        struct raft *r = raft_fixture_get(&c->f, i);
        afc_raft_fsm_set_raft(&c->ad[i], r);
        raft_set_pre_vote(r, true); /* as the node does */
        raft_fixture_set_randomized_election_timeout(&c->f, i, timeouts[i]);
        afc_leadership_init(&c->lead[i], r);
        c->lead[i].data = c;
        c->lead[i].changed = lead_changed;
    }
    raft_configuration_init(&conf);
    if (raft_fixture_configuration(&c->f, N, &conf) != 0 ||
        raft_fixture_bootstrap(&c->f, &conf) != 0 || raft_fixture_start(&c->f) != 0) {
        abort();
    }
    raft_configuration_close(&conf);
    return c;
}

static void cluster_free(struct cluster *c)
{
    /* Fires pending apply/barrier callbacks with RAFT_SHUTDOWN: trackers and props still live. */
    raft_fixture_close(&c->f);
    free(c);
}

static struct raft *R(struct cluster *c, unsigned i)
{
    return raft_fixture_get(&c->f, i);
}

/* ---- stepping ---- */

static void poll_alive(struct cluster *c)
{
    if (!c->barrier_on) {
        return;
    }
    for (unsigned i = 0; i < N; i++) {
        if (raft_fixture_alive(&c->f, i)) {
            afc_leadership_poll(&c->lead[i]);
        }
    }
}

static void step(struct cluster *c)
{
    raft_fixture_step(&c->f);
    poll_alive(c);
}

typedef bool (*pred_fn)(struct cluster *c, unsigned arg);

static bool step_until(struct cluster *c, pred_fn pred, unsigned arg, unsigned max_ms)
{
    raft_time deadline = raft_fixture_time(&c->f) + max_ms;

    while (!pred(c, arg)) {
        if (raft_fixture_time(&c->f) >= deadline) {
            return false;
        }
        step(c);
    }
    return true;
}

static void step_for(struct cluster *c, unsigned ms)
{
    raft_time end = raft_fixture_time(&c->f) + ms;

    while (raft_fixture_time(&c->f) < end) {
        step(c);
    }
}

/* Index of an alive, ready leader (any if arg == NO_SERVER, else not `arg`). */
static unsigned ready_leader(struct cluster *c, unsigned except)
{
    for (unsigned i = 0; i < N; i++) {
        if (i != except && raft_fixture_alive(&c->f, i) && afc_leadership_is_ready(&c->lead[i])) {
            return i;
        }
    }
    return NO_SERVER;
}

static bool has_ready_leader_except(struct cluster *c, unsigned except)
{
    return ready_leader(c, except) != NO_SERVER;
}

static bool is_leader(struct cluster *c, unsigned i)
{
    return raft_state(R(c, i)) == RAFT_LEADER;
}

static bool is_not_leader(struct cluster *c, unsigned i)
{
    return raft_state(R(c, i)) != RAFT_LEADER;
}

/* All alive servers applied at least up to `index`. */
static bool all_applied(struct cluster *c, unsigned index)
{
    for (unsigned i = 0; i < N; i++) {
        if (raft_fixture_alive(&c->f, i) && raft_last_applied(R(c, i)) < index) {
            return false;
        }
    }
    return true;
}

static bool prop_done(struct cluster *c, unsigned k)
{
    return c->props[k].done;
}

/* ---- proposals (raw raft_apply: the tests also play stale leaders) ---- */

static void prop_cb(struct raft_apply *req, int status, void *result)
{
    struct prop *p = req->data;

    p->done = true;
    p->status = status;
    p->result = (enum afc_apply_result)(uintptr_t)result;
}

/* Propose on server i; returns the prop slot, or NO_SERVER if raft_apply refused. */
static unsigned propose(struct cluster *c, unsigned i, const struct afc_cmd *cmd)
{
    struct prop *p = &c->props[c->n_props];
    struct raft_buffer buf;
    void *enc = NULL;
    size_t len = 0;

    if (c->n_props == MAX_PROPS || afc_cmd_encode(cmd, &enc, &len) != 0) {
        abort();
    }
    buf.base = raft_malloc(len);
    buf.len = len;
    memcpy(buf.base, enc, len);
    free(enc);
    p->req.data = p;
    if (raft_apply(R(c, i), &p->req, &buf, 1, prop_cb) != 0) {
        raft_free(buf.base);
        return NO_SERVER;
    }
    return c->n_props++;
}

static struct afc_cmd cmd_init(void)
{
    struct afc_cmd cmd;

    memset(&cmd, 0, sizeof cmd);
    cmd.op = AFC_OP_INIT;
    cmd.u.init.n_members = N;
    for (unsigned i = 0; i < N; i++) {
        struct afc_member *m = &cmd.u.init.members[i];
        m->id = i + 1;
        snprintf(m->name, sizeof m->name, "r%u", i + 1);
        snprintf(m->raft_addr, sizeof m->raft_addr, "%u", i + 1);
    }
    return cmd;
}

static struct afc_cmd cmd_pause(bool paused)
{
    struct afc_cmd cmd;

    memset(&cmd, 0, sizeof cmd);
    cmd.op = AFC_OP_PAUSE;
    cmd.u.pause.paused = paused;
    snprintf(cmd.u.pause.reason, sizeof cmd.u.pause.reason, "maintenance");
    return cmd;
}

static struct afc_cmd cmd_promote(unsigned server, afc_epoch expect)
{
    struct afc_cmd cmd;

    memset(&cmd, 0, sizeof cmd);
    cmd.op = AFC_OP_PROMOTE;
    snprintf(cmd.u.promote.region, sizeof cmd.u.promote.region, "r%u", server + 1);
    cmd.u.promote.expect_epoch = expect;
    return cmd;
}

static struct afc_cmd cmd_note(const char *kind)
{
    struct afc_cmd cmd;

    memset(&cmd, 0, sizeof cmd);
    cmd.op = AFC_OP_NOTE;
    snprintf(cmd.u.note.kind, sizeof cmd.u.note.kind, "%s", kind);
    return cmd;
}

/* Propose on `leader` and step until it completes; returns the prop slot. */
static unsigned commit(struct cluster *c, unsigned leader, struct afc_cmd cmd)
{
    unsigned k = propose(c, leader, &cmd);

    if (k != NO_SERVER) {
        step_until(c, prop_done, k, SHORT_WAIT);
    }
    return k;
}

static bool history_has(const struct afc_state *s, const char *kind)
{
    for (unsigned i = 0; i < s->history_len; i++) {
        if (strcmp(afc_state_history_at(s, i)->kind, kind) == 0) {
            return true;
        }
    }
    return false;
}

/* Same applied index, same digest, same primary/epoch on every server listed in `mask`. */
static void check_same_state(struct cluster *c, unsigned mask)
{
    unsigned ref = NO_SERVER;

    for (unsigned i = 0; i < N; i++) {
        if (!(mask & (1u << i))) {
            continue;
        }
        if (ref == NO_SERVER) {
            ref = i;
            continue;
        }
        const struct afc_state *a = &c->fsm[ref].state, *b = &c->fsm[i].state;
        CHECK_EQ_INT(raft_last_applied(R(c, i)), raft_last_applied(R(c, ref)));
        CHECK_EQ_INT(b->applied_index, a->applied_index);
        CHECK(afc_state_digest(b) == afc_state_digest(a));
        CHECK_EQ_INT(b->epoch, a->epoch);
        CHECK_EQ_STR(b->primary, a->primary);
        CHECK_EQ_INT(b->paused, a->paused);
    }
}

/* ---- tests ---- */

/* (1) A leader is elected, is not ready at election, becomes ready only after its barrier was
 * applied; a proposed pause reaches all three with identical digests. */
static void test_elect_barrier_apply(void)
{
    struct cluster *c = cluster_new(true, DEFAULT_TIMEOUTS);
    unsigned l, k;

    REQUIRE(c != NULL);
    CHECK(step_until(c, has_ready_leader_except, NO_SERVER, LONG_WAIT));
    l = ready_leader(c, NO_SERVER);
    if (l == NO_SERVER) {
        goto out;
    }
    CHECK_EQ_INT(l, 0);
    CHECK(raft_last_applied(R(c, l)) >= c->lead[l].barrier_req.index);
    CHECK_EQ_INT(c->lead[l].barrier_term, R(c, l)->current_term);
    CHECK(c->lead[l].leader_changes >= 1);
    k = commit(c, l, cmd_init());
    CHECK(k != NO_SERVER && c->props[k].status == 0 && c->props[k].result == AFC_APPLY_OK);
    k = commit(c, l, cmd_pause(true));
    CHECK(k != NO_SERVER && c->props[k].status == 0 && c->props[k].result == AFC_APPLY_OK);
    CHECK(step_until(c, all_applied, (unsigned)raft_last_index(R(c, l)), SHORT_WAIT));
    for (unsigned i = 0; i < N; i++) {
        CHECK(c->fsm[i].state.paused);
        CHECK(history_has(&c->fsm[i].state, "paused"));
        CHECK_EQ_INT(c->ready_before_barrier[i], 0);
        CHECK_EQ_INT(c->leader_ready_at_election[i], 0);
        CHECK(i == l || !afc_leadership_is_ready(&c->lead[i]));
    }
    check_same_state(c, 7);
out:
    cluster_free(c);
}

/* (2) The ready leader freezes (kill = SIGSTOP-like); the other two elect a ready leader in a
 * higher term that holds the committed state and can commit more. */
static void test_leader_loss(void)
{
    struct cluster *c = cluster_new(true, DEFAULT_TIMEOUTS);
    unsigned old, l, k;
    raft_term term;

    REQUIRE(c != NULL);
    REQUIRE(step_until(c, has_ready_leader_except, NO_SERVER, LONG_WAIT));
    old = ready_leader(c, NO_SERVER);
    commit(c, old, cmd_init());
    commit(c, old, cmd_pause(true));
    step_for(c, 300); /* followers learn the commit index */
    term = R(c, old)->current_term;
    raft_fixture_kill(&c->f, old);
    CHECK(step_until(c, has_ready_leader_except, old, LONG_WAIT));
    l = ready_leader(c, old);
    if (l == NO_SERVER) {
        goto out;
    }
    CHECK(R(c, l)->current_term > term);
    CHECK(c->fsm[l].state.paused);
    k = commit(c, l, cmd_promote(l, 0));
    CHECK(k != NO_SERVER && c->props[k].status == 0 && c->props[k].result == AFC_APPLY_OK);
    CHECK(step_until(c, all_applied, (unsigned)raft_last_index(R(c, l)), SHORT_WAIT));
    check_same_state(c, 7u & ~(1u << old));
    CHECK_EQ_INT(c->fsm[l].state.epoch, 1);
out:
    cluster_free(c);
}

/* Saturate = silent drop (a WAN black hole), in both directions (§7: it is one-way). */
static void cut(struct cluster *c, unsigned i, unsigned j)
{
    raft_fixture_saturate(&c->f, i, j);
    raft_fixture_saturate(&c->f, j, i);
}

static void join(struct cluster *c, unsigned i, unsigned j)
{
    raft_fixture_desaturate(&c->f, i, j);
    raft_fixture_desaturate(&c->f, j, i);
}

static void isolate(struct cluster *c, unsigned i)
{
    for (unsigned j = 0; j < N; j++) {
        if (j != i) {
            cut(c, i, j);
        }
    }
}

static void heal(struct cluster *c, unsigned i)
{
    for (unsigned j = 0; j < N; j++) {
        if (j != i) {
            join(c, i, j);
        }
    }
}

/* (3) The leader is cut off both ways: check-quorum makes it step down, the majority elects a new
 * ready leader, and the proposal the old leader accepted while cut off is never applied anywhere
 * after the heal; its callback reports RAFT_LEADERSHIPLOST. */
static void test_partitioned_leader(void)
{
    struct cluster *c = cluster_new(true, DEFAULT_TIMEOUTS);
    struct afc_cmd stale_cmd = cmd_note("stale-note");
    unsigned old, l, stale, k;
    raft_time cut;

    REQUIRE(c != NULL);
    REQUIRE(step_until(c, has_ready_leader_except, NO_SERVER, LONG_WAIT));
    old = ready_leader(c, NO_SERVER);
    commit(c, old, cmd_init());
    step_for(c, 300);
    isolate(c, old);
    cut = raft_fixture_time(&c->f);
    /* A deposed-but-unaware leader accepts the proposal (raft-0.15.md §3 "Proposing"). */
    stale = propose(c, old, &stale_cmd);
    REQUIRE(stale != NO_SERVER);
    CHECK(step_until(c, is_not_leader, old, LONG_WAIT));
    printf("  # isolated leader stepped down after %llu ms (virtual)\n",
           (unsigned long long)(raft_fixture_time(&c->f) - cut));
    CHECK(!afc_leadership_is_ready(&c->lead[old]));
    CHECK(c->props[stale].done);
    CHECK_EQ_INT(c->props[stale].status, RAFT_LEADERSHIPLOST);
    CHECK(step_until(c, has_ready_leader_except, old, LONG_WAIT));
    l = ready_leader(c, old);
    if (l == NO_SERVER) {
        goto out;
    }
    k = commit(c, l, cmd_note("fresh-note"));
    CHECK(k != NO_SERVER && c->props[k].status == 0);
    heal(c, old);
    CHECK(step_until(c, all_applied, (unsigned)raft_last_index(R(c, l)), LONG_WAIT));
    step_for(c, 500);
    for (unsigned i = 0; i < N; i++) {
        CHECK(!history_has(&c->fsm[i].state, "stale-note"));
        CHECK(history_has(&c->fsm[i].state, "fresh-note"));
    }
    check_same_state(c, 7);
out:
    cluster_free(c);
}

/* Step until the revived ex-leader `old` has left its old term; count violations (ready in the
 * old term) and how many steps it still claimed leadership of that term. */
static unsigned watch_revived(struct cluster *c, unsigned old, raft_term term, unsigned *stale)
{
    raft_time deadline = raft_fixture_time(&c->f) + LONG_WAIT;
    unsigned violations = 0;

    *stale = 0;
    for (;;) {
        struct raft *r = R(c, old);
        bool old_term_leader = raft_state(r) == RAFT_LEADER && r->current_term == term;
        if (afc_leadership_is_ready(&c->lead[old]) && r->current_term == term) {
            violations++;
        }
        *stale += old_term_leader ? 1 : 0;
        if ((!old_term_leader && r->current_term > term) || raft_fixture_time(&c->f) >= deadline) {
            return violations;
        }
        step(c);
    }
}

/* (4) A frozen-then-revived leader does not act: right after revive it still reports LEADER of
 * its old term, yet is not ready; it stays not ready until it wins a new term with a barrier. */
static void test_revived_leader_not_ready(void)
{
    struct cluster *c = cluster_new(true, DEFAULT_TIMEOUTS);
    unsigned old, l, stale_steps, violations;
    raft_term term;

    REQUIRE(c != NULL);
    REQUIRE(step_until(c, has_ready_leader_except, NO_SERVER, LONG_WAIT));
    old = ready_leader(c, NO_SERVER);
    commit(c, old, cmd_init());
    step_for(c, 300);
    term = R(c, old)->current_term;
    raft_fixture_kill(&c->f, old);
    REQUIRE(step_until(c, has_ready_leader_except, old, LONG_WAIT));
    l = ready_leader(c, old);
    CHECK(R(c, l)->current_term > term);
    commit(c, l, cmd_note("while-frozen"));
    raft_fixture_revive(&c->f, old);
    /* The moment of danger (raft-0.15.md §4.5, §7): still LEADER of the old term. */
    REQUIRE(raft_state(R(c, old)) == RAFT_LEADER && R(c, old)->current_term == term);
    CHECK(!afc_leadership_is_ready(&c->lead[old])); /* before any poll: stall seen live */
    afc_leadership_poll(&c->lead[old]);
    CHECK(!afc_leadership_is_ready(&c->lead[old]));
    violations = watch_revived(c, old, term, &stale_steps);
    CHECK_EQ_INT(violations, 0);
    CHECK(R(c, old)->current_term > term);
    printf("  # revived ex-leader claimed term %llu leadership for %u more steps, never ready\n",
           (unsigned long long)term, stale_steps);
    CHECK(step_until(c, all_applied, (unsigned)raft_last_index(R(c, l)), LONG_WAIT));
    step_for(c, 500);
    CHECK(history_has(&c->fsm[old].state, "while-frozen"));
    check_same_state(c, 7);
    for (unsigned i = 0; i < N; i++) {
        CHECK_EQ_INT(c->ready_before_barrier[i], 0);
    }
    cluster_free(c);
}

/* ---- (5) Figure 8 (Raft §5.4.2, raft-0.15.md §4.3) ---- */

/* Server i leads in a term above c->mark_term. */
static bool leads_anew(struct cluster *c, unsigned i)
{
    return is_leader(c, i) && R(c, i)->current_term > c->mark_term;
}

static bool s0_usable(struct cluster *c, unsigned unused)
{
    (void)unused;
    return c->barrier_on ? afc_leadership_is_ready(&c->lead[0]) : is_leader(c, 0);
}

static bool s1_or_s2_leads(struct cluster *c, unsigned unused)
{
    (void)unused;
    if (c->barrier_on) {
        return has_ready_leader_except(c, 0);
    }
    return is_leader(c, 1) || is_leader(c, 2);
}

static bool s0_applied(struct cluster *c, unsigned index)
{
    return raft_last_applied(R(c, 0)) >= index;
}

static bool s1_s2_applied(struct cluster *c, unsigned index)
{
    return raft_last_applied(R(c, 1)) >= index && raft_last_applied(R(c, 2)) >= index;
}

static void set_timeouts(struct cluster *c, unsigned t0, unsigned t1, unsigned t2)
{
    raft_fixture_set_randomized_election_timeout(&c->f, 0, t0);
    raft_fixture_set_randomized_election_timeout(&c->f, 1, t1);
    raft_fixture_set_randomized_election_timeout(&c->f, 2, t2);
}

/*
 * The schedule (S0..S2 = servers 0..2; entries after the init command):
 *   1. S0 leads; it is cut off and accepts A = "promote r1 (expect epoch 0)" — A only on S0.
 *   2. S1 wins a higher term with S2's vote, accepts B = "promote r2 (expect 0)" at the same
 *      index, and is cut off before anything reaches S2 — B only on S1.
 *   3. S0 rejoins S2 only, wins a still higher term, replicates A to S2. 0.15 commits A by
 *      counting replicas (no current-term entry needed) and S0 applies it; S0 is cut off at once.
 *   4. S1 rejoins S2. Its last entry (B, term 3) beats S2's (A, term 2), so S1 wins, overwrites
 *      A with B and commits it: S1 and S2 apply B where S0 applied A.
 * With barrier-on-election, S0's barrier (term 4) travels with A in step 3, so S2's last entry
 * beats S1's in step 4 and B can never be committed. Returns A's index (0 if the schedule could
 * not be driven).
 */
static uint64_t figure8_fail(const char *step)
{
    printf("  # figure 8 schedule could not be driven: %s\n", step);
    return 0;
}

static uint64_t figure8(struct cluster *c)
{
    struct afc_cmd a = cmd_promote(0, 0), b = cmd_promote(1, 0);
    unsigned ka, kb;

    if (!step_until(c, s0_usable, 0, LONG_WAIT) || commit(c, 0, cmd_init()) == NO_SERVER) {
        return figure8_fail("initial leader");
    }
    step_for(c, 300);
    isolate(c, 0); /* 1 */
    if ((ka = propose(c, 0, &a)) == NO_SERVER) {
        return figure8_fail("propose A");
    }
    c->mark_term = R(c, 0)->current_term;
    if (!step_until(c, leads_anew, 1, LONG_WAIT)) {
        return figure8_fail("S1 elected");
    }
    kb = propose(c, 1, &b);
    isolate(c, 1);
    /* B (after S1's barrier, if on) must not have reached S2: A's index is free there. */
    if (kb == NO_SERVER || raft_last_index(R(c, 2)) >= c->props[ka].req.index) {
        return figure8_fail("B only on S1");
    }
    c->mark_term = R(c, 1)->current_term; /* 3 */
    set_timeouts(c, 1000, 10000, 10000);
    join(c, 0, 2);
    if (!step_until(c, leads_anew, 0, LONG_WAIT)) {
        return figure8_fail("S0 re-elected");
    }
    if (!step_until(c, s0_applied, (unsigned)c->props[ka].req.index, LONG_WAIT)) {
        return figure8_fail("S0 applies A");
    }
    isolate(c, 0);
    set_timeouts(c, 10000, 1000, 1600); /* 4: S1 wins unless S2's log is more up to date */
    join(c, 1, 2);
    if (!step_until(c, s1_or_s2_leads, 0, LONG_WAIT)) {
        return figure8_fail("S1/S2 leader");
    }
    if (!step_until(c, s1_s2_applied, (unsigned)c->props[ka].req.index, LONG_WAIT)) {
        return figure8_fail("S1/S2 apply");
    }
    return c->props[ka].req.index;
}

static bool same_digest_at(struct cluster *c, unsigned i, unsigned j, uint64_t index)
{
    uint64_t di = 0, dj = 0;

    return afc_fsm_digest_at(&c->fsm[i], index, &di) && afc_fsm_digest_at(&c->fsm[j], index, &dj) &&
           di == dj;
}

/* With barrier-on-election every server ends with the same state. */
static void test_figure8_with_barrier(void)
{
    struct cluster *c = cluster_new(true, FIGURE8_TIMEOUTS);
    uint64_t ia;

    REQUIRE(c != NULL);
    ia = figure8(c);
    CHECK(ia != 0);
    /* S2 learned the commit of A from S0 in step 3 or from the new leader in step 4. */
    CHECK(same_digest_at(c, 0, 1, ia));
    CHECK(same_digest_at(c, 0, 2, ia));
    heal(c, 0);
    set_timeouts(c, 1000, 1300, 1600);
    CHECK(step_until(c, has_ready_leader_except, NO_SERVER, LONG_WAIT));
    unsigned l = ready_leader(c, NO_SERVER);
    if (l != NO_SERVER) {
        commit(c, l, cmd_note("after-heal"));
        CHECK(step_until(c, all_applied, (unsigned)raft_last_index(R(c, l)), LONG_WAIT));
        step_for(c, 500);
    }
    check_same_state(c, 7);
    for (unsigned i = 0; i < N; i++) {
        CHECK_EQ_INT(c->fsm[i].state.epoch, 1);
        CHECK_EQ_STR(c->fsm[i].state.primary, "r1");
        CHECK_EQ_INT(c->ready_before_barrier[i], 0);
    }
    printf(
        "  # figure 8 with barrier-on-election: consistent, primary=%s epoch=%llu at index %llu\n",
        c->fsm[0].state.primary, (unsigned long long)c->fsm[0].state.epoch, (unsigned long long)ia);
    cluster_free(c);
}

/* The same schedule without barrier-on-election reproduces 0.15's hole deterministically. This
 * guards the test above against passing vacuously. (libraft >= 0.17.1 fixes the hole; there this
 * check would fail and should be inverted.) */
static void test_figure8_without_barrier_diverges(void)
{
    struct cluster *c = cluster_new(false, FIGURE8_TIMEOUTS);
    uint64_t ia;

    REQUIRE(c != NULL);
    ia = figure8(c);
    CHECK(ia != 0);
    CHECK(!same_digest_at(c, 0, 1, ia));
    CHECK(same_digest_at(c, 1, 2, ia));
    CHECK_EQ_STR(c->fsm[0].state.primary, "r1");
    CHECK_EQ_STR(c->fsm[1].state.primary, "r2");
    CHECK_EQ_STR(c->fsm[2].state.primary, "r2");
    printf("  # figure 8 without barrier: at index %llu S0 applied primary=%s epoch=%llu, S1/S2 "
           "applied primary=%s/%s epoch=%llu/%llu\n",
           (unsigned long long)ia, c->fsm[0].state.primary,
           (unsigned long long)c->fsm[0].state.epoch, c->fsm[1].state.primary,
           c->fsm[2].state.primary, (unsigned long long)c->fsm[1].state.epoch,
           (unsigned long long)c->fsm[2].state.epoch);
    /* Not healed: S0 would have to truncate an applied entry. */
    cluster_free(c);
}

/* ---- (6) digest divergence (ARCHITECTURE §4.1, the AFC_OP_DIGEST check) ---- */

#define DIV_FOLLOWER 1 /* the follower whose state is corrupted */
#define DIV_WITNESS  2 /* the other follower */

struct digest_run {
    unsigned leader;
    uint64_t at;           /* the digest's at_index: leader's applied index when it proposed */
    uint64_t digest_index; /* log index of the DIGEST command itself */
    unsigned prop;         /* its prop slot on the leader */
};

static bool digest_fail(const char *step)
{
    printf("  # digest schedule could not be driven: %s\n", step);
    return false;
}

/*
 * The schedule: S0 leads and commits init + pause. The leader→S1 link is saturated (one way: S1
 * still reaches the others, and the cut is far shorter than its election timeout) and the leader
 * commits a note at index K with S2 alone. With `corrupt`, S1's replicated state is changed in
 * memory now — before S1 applies K, so the digest S1 records for K is computed over the corrupted
 * state (a bit flip, a buggy build). The link heals, S1 catches up to K, and the leader commits
 * DIGEST {at_index = K, digest = its own digest at K}: S1 must find a different digest at K.
 */
static bool digest_schedule(struct cluster *c, bool corrupt, struct digest_run *run)
{
    struct afc_cmd cmd;
    uint64_t k, digest = 0;
    unsigned l, kn;

    if (!step_until(c, has_ready_leader_except, NO_SERVER, LONG_WAIT)) {
        return digest_fail("ready leader");
    }
    l = run->leader = ready_leader(c, NO_SERVER);
    if (l != 0) {
        return digest_fail("S0 leads");
    }
    commit(c, l, cmd_init());
    commit(c, l, cmd_pause(true));
    if (!step_until(c, all_applied, (unsigned)raft_last_index(R(c, l)), SHORT_WAIT)) {
        return digest_fail("init + pause applied everywhere");
    }
    raft_fixture_saturate(&c->f, l, DIV_FOLLOWER);
    kn = commit(c, l, cmd_note("before-digest"));
    if (kn == NO_SERVER || !c->props[kn].done || c->props[kn].status != 0) {
        return digest_fail("note committed without S1");
    }
    k = c->props[kn].req.index;
    if (c->fsm[DIV_FOLLOWER].state.applied_index >= k || c->fsm[l].state.applied_index != k) {
        return digest_fail("S1 has not applied K, the leader has");
    }
    if (corrupt) {
        c->fsm[DIV_FOLLOWER].state.paused = !c->fsm[DIV_FOLLOWER].state.paused;
    }
    raft_fixture_desaturate(&c->f, l, DIV_FOLLOWER);
    if (!step_until(c, all_applied, (unsigned)k, SHORT_WAIT)) {
        return digest_fail("S1 catches up to K");
    }
    /* What the node's digest timer does on a ready leader. */
    run->at = c->fsm[l].state.applied_index;
    if (!afc_leadership_is_ready(&c->lead[l]) || !afc_fsm_digest_at(&c->fsm[l], run->at, &digest)) {
        return digest_fail("leader ready with its digest at K");
    }
    memset(&cmd, 0, sizeof cmd);
    cmd.op = AFC_OP_DIGEST;
    snprintf(cmd.by, sizeof cmd.by, "r%u", l + 1);
    cmd.u.digest.at_index = run->at;
    cmd.u.digest.digest = digest;
    run->prop = commit(c, l, cmd);
    if (run->prop == NO_SERVER || !c->props[run->prop].done) {
        return digest_fail("digest committed");
    }
    run->digest_index = c->props[run->prop].req.index;
    if (run->digest_index >= MAX_LOG ||
        !step_until(c, all_applied, (unsigned)run->digest_index, SHORT_WAIT)) {
        return digest_fail("digest applied everywhere");
    }
    return true;
}

static bool applied_as(struct cluster *c, unsigned i, uint64_t index, enum afc_apply_result r)
{
    return index < MAX_LOG && c->applied[i].seen[index] && c->applied[i].result[index] == r;
}

/* A follower whose state was corrupted before it applied K detects the divergence when the
 * leader's digest at K is applied; the leader and the other follower do not. */
static void test_digest_divergence(void)
{
    struct cluster *c = cluster_new(true, DEFAULT_TIMEOUTS);
    struct digest_run run = {0};
    unsigned l;

    REQUIRE(c != NULL);
    if (!digest_schedule(c, true, &run)) {
        CHECK(!"digest schedule");
        goto out;
    }
    l = run.leader;
    CHECK(c->fsm[DIV_FOLLOWER].diverged);
    CHECK_EQ_INT(c->fsm[DIV_FOLLOWER].diverged_index, run.at);
    CHECK(applied_as(c, DIV_FOLLOWER, run.digest_index, AFC_APPLY_DIVERGED));
    CHECK(!c->fsm[DIV_WITNESS].diverged);
    CHECK(applied_as(c, DIV_WITNESS, run.digest_index, AFC_APPLY_OK));
    CHECK(!c->fsm[l].diverged);
    CHECK(applied_as(c, l, run.digest_index, AFC_APPLY_OK));
    /* The proposer's result is the leader's own apply. */
    CHECK_EQ_INT(c->props[run.prop].status, 0);
    CHECK_EQ_INT(c->props[run.prop].result, AFC_APPLY_OK);
    CHECK(same_digest_at(c, l, DIV_WITNESS, run.at));
    CHECK(!same_digest_at(c, l, DIV_FOLLOWER, run.at));
    printf("  # S%u corrupted before applying index %llu: digest command at index %llu applied "
           "as %s on S%u, %s on S%u and S%u (diverged_index=%llu)\n",
           DIV_FOLLOWER, (unsigned long long)run.at, (unsigned long long)run.digest_index,
           afc_apply_result_name(c->applied[DIV_FOLLOWER].result[run.digest_index]), DIV_FOLLOWER,
           afc_apply_result_name(c->applied[DIV_WITNESS].result[run.digest_index]), l, DIV_WITNESS,
           (unsigned long long)c->fsm[DIV_FOLLOWER].diverged_index);
out:
    cluster_free(c);
}

/* Control: the same schedule without the corruption (the lagging follower catches up through the
 * log) gives no divergence anywhere. */
static void test_digest_no_divergence(void)
{
    struct cluster *c = cluster_new(true, DEFAULT_TIMEOUTS);
    struct digest_run run = {0};

    REQUIRE(c != NULL);
    if (!digest_schedule(c, false, &run)) {
        CHECK(!"digest schedule");
        goto out;
    }
    for (unsigned i = 0; i < N; i++) {
        CHECK(!c->fsm[i].diverged);
        CHECK(applied_as(c, i, run.digest_index, AFC_APPLY_OK));
        CHECK(same_digest_at(c, run.leader, i, run.at));
    }
    check_same_state(c, 7);
    printf("  # control: digest of index %llu (command at index %llu) applied as %s/%s/%s on "
           "S0/S1/S2\n",
           (unsigned long long)run.at, (unsigned long long)run.digest_index,
           afc_apply_result_name(c->applied[0].result[run.digest_index]),
           afc_apply_result_name(c->applied[1].result[run.digest_index]),
           afc_apply_result_name(c->applied[2].result[run.digest_index]));
out:
    cluster_free(c);
}

int main(void)
{
    afc_log_setup(AFC_LOG_WARN, 0, "fixture", stderr);
    TEST_RUN(test_elect_barrier_apply);
    TEST_RUN(test_leader_loss);
    TEST_RUN(test_partitioned_leader);
    TEST_RUN(test_revived_leader_not_ready);
    TEST_RUN(test_figure8_with_barrier);
    TEST_RUN(test_figure8_without_barrier_diverges);
    TEST_RUN(test_digest_divergence);
    TEST_RUN(test_digest_no_divergence);
    TEST_END();
}
