/*
 * State machine tests of the failover ops: OBSERVE (store, NOOP, pg-down/pg-up on flips), RENEW
 * (lease and the local lease clock, stale renewals), FAILOVER_BEGIN (epoch CAS, races, the
 * ABORTED rule), FAILOVER_STEP (every one of the 6x6 transitions through apply), receipts ring,
 * SYNC_SET (only the current primary, members, NOOP, the event), and snapshots/digests covering
 * the new fields.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "afc/state.h"
#include "tests/test.h"

static const char *const R[3] = {"us-east-2", "eu-west-1", "ap-south-1"};

static struct afc_cmd mk(enum afc_op op, int64_t wall_ms)
{
    struct afc_cmd c;
    memset(&c, 0, sizeof c);
    c.op = op;
    c.wall_ms = wall_ms;
    snprintf(c.by, sizeof c.by, "us-east-2");
    return c;
}

/* Apply an encoded command. A fenced/promoted step is reported by the failover's candidate, as
 * the executor does (the state machine refuses it from anyone else): set `by` accordingly unless
 * a test set it on purpose (mk() leaves "us-east-2"). */
static enum afc_apply_result apply_as_is(struct afc_fsm *f, struct afc_cmd c, struct afc_err *why);

static enum afc_apply_result apply(struct afc_fsm *f, struct afc_cmd c, struct afc_err *why)
{
    if (c.op == AFC_OP_FAILOVER_STEP && !strcmp(c.by, "us-east-2") &&
        (c.u.failover_step.step == AFC_FO_FENCED || c.u.failover_step.step == AFC_FO_PROMOTED) &&
        f->state.failover.to[0] != '\0') {
        snprintf(c.by, sizeof c.by, "%s", f->state.failover.to);
    }
    return apply_as_is(f, c, why);
}

static enum afc_apply_result apply_as_is(struct afc_fsm *f, struct afc_cmd c, struct afc_err *why)
{
    void *buf;
    size_t len;
    if (afc_cmd_encode(&c, &buf, &len) != 0) {
        fprintf(stderr, "  encode failed\n");
        test_failed_checks++;
        return (enum afc_apply_result) - 1;
    }
    enum afc_apply_result r = afc_fsm_apply(f, f->state.applied_index + 1, buf, len, why);
    free(buf);
    return r;
}

static struct afc_cmd mk_observe(const char *observer, const char *target, bool healthy,
                                 enum afc_pg_role role, uint64_t lsn, int64_t t)
{
    static uint64_t seq; /* every report newer than the last, as an observer sends them */
    struct afc_cmd c = mk(AFC_OP_OBSERVE, t);
    c.u.observe.obs.seq = ++seq;
    snprintf(c.u.observe.observer, AFC_NAME_MAX, "%s", observer);
    snprintf(c.u.observe.target, AFC_NAME_MAX, "%s", target);
    c.u.observe.obs.healthy = healthy;
    c.u.observe.obs.role = role;
    c.u.observe.obs.lsn = lsn;
    c.u.observe.obs.replay_lsn = lsn;
    c.u.observe.obs.timeline = 1;
    c.u.observe.obs.wall_ms = t;
    return c;
}

static struct afc_cmd mk_renew(const char *region, afc_epoch epoch, uint64_t seq)
{
    struct afc_cmd c = mk(AFC_OP_RENEW, 5000);
    snprintf(c.u.renew.region, AFC_NAME_MAX, "%s", region);
    c.u.renew.epoch = epoch;
    c.u.renew.seq = seq;
    return c;
}

static struct afc_cmd mk_begin(afc_epoch expect, const char *from, const char *to)
{
    struct afc_cmd c = mk(AFC_OP_FAILOVER_BEGIN, 6000);
    c.u.failover_begin.expect_epoch = expect;
    snprintf(c.u.failover_begin.from, AFC_NAME_MAX, "%s", from);
    snprintf(c.u.failover_begin.to, AFC_NAME_MAX, "%s", to);
    snprintf(c.u.failover_begin.reason, sizeof c.u.failover_begin.reason, "2 of 3 down");
    c.u.failover_begin.detected_ms = 5900;
    c.u.failover_begin.old_lsn = 0x1000;
    c.u.failover_begin.term = 4;
    return c;
}

static struct afc_cmd mk_step(afc_epoch epoch, enum afc_fo_step step, int64_t t)
{
    struct afc_cmd c = mk(AFC_OP_FAILOVER_STEP, t);
    c.u.failover_step.epoch = epoch;
    c.u.failover_step.step = (uint8_t)step;
    if (step == AFC_FO_PROMOTED) {
        c.u.failover_step.timeline = 3;
        c.u.failover_step.lsn = 0x16B374D848ULL;
    }
    return c;
}

/* Members, then us-east-2 adopted as primary of epoch 1. */
static void setup(struct afc_fsm *f)
{
    struct afc_cmd init = mk(AFC_OP_INIT, 1000), promote = mk(AFC_OP_PROMOTE, 2000);
    afc_fsm_init(f);
    init.u.init.n_members = 3;
    for (unsigned i = 0; i < 3; i++) {
        init.u.init.members[i].id = i + 1;
        snprintf(init.u.init.members[i].name, AFC_NAME_MAX, "%s", R[i]);
    }
    snprintf(promote.u.promote.region, AFC_NAME_MAX, "us-east-2");
    CHECK_EQ_INT(apply(f, init, NULL), AFC_APPLY_OK);
    CHECK_EQ_INT(apply(f, promote, NULL), AFC_APPLY_OK);
}

static const struct afc_event *last_event(const struct afc_fsm *f)
{
    return afc_state_history_at(&f->state, f->state.history_len - 1);
}

/* ---- OBSERVE ---- */

static void test_observe(void)
{
    static struct afc_fsm f;
    struct afc_err why;
    setup(&f);
    unsigned h = f.state.history_len;
    CHECK_EQ_INT(apply(&f, mk_observe("mars-1", R[0], true, AFC_PG_PRIMARY, 1, 1), &why),
                 AFC_APPLY_REJECTED_INVALID);
    CHECK_CONTAINS(why.msg, "mars-1 is not a member");
    CHECK_EQ_INT(apply(&f, mk_observe(R[1], "mars-1", true, AFC_PG_PRIMARY, 1, 1), NULL),
                 AFC_APPLY_REJECTED_INVALID);
    /* first healthy report: stored, no event */
    CHECK_EQ_INT(apply(&f, mk_observe(R[1], R[0], true, AFC_PG_PRIMARY, 100, 10), NULL),
                 AFC_APPLY_OK);
    const struct afc_pg_obs *o = &f.state.obs[1][0];
    CHECK(o->valid && o->healthy && o->role == AFC_PG_PRIMARY && o->lsn == 100 && o->wall_ms == 10);
    CHECK_EQ_INT(f.state.history_len, h);
    /* identical except the observer's clock: NOOP, only the sequence number advances */
    struct afc_cmd same = mk_observe(R[1], R[0], true, AFC_PG_PRIMARY, 100, 99);
    CHECK_EQ_INT(apply(&f, same, NULL), AFC_APPLY_NOOP);
    CHECK_EQ_INT(o->wall_ms, 10);
    CHECK(o->seq == same.u.observe.obs.seq);
    /* a new LSN is stored, still no event */
    CHECK_EQ_INT(apply(&f, mk_observe(R[1], R[0], true, AFC_PG_PRIMARY, 200, 11), NULL),
                 AFC_APPLY_OK);
    CHECK_EQ_INT(o->lsn, 200);
    CHECK_EQ_INT(f.state.history_len, h);
    /* healthy flips: pg-down, then pg-up */
    CHECK_EQ_INT(apply(&f, mk_observe(R[1], R[0], false, AFC_PG_UNKNOWN, 0, 12), NULL),
                 AFC_APPLY_OK);
    CHECK_EQ_STR(last_event(&f)->kind, "pg-down");
    CHECK_EQ_STR(last_event(&f)->detail, "observer=eu-west-1 target=us-east-2");
    CHECK_EQ_INT(last_event(&f)->wall_ms, 12);
    CHECK_EQ_INT(apply(&f, mk_observe(R[1], R[0], true, AFC_PG_PRIMARY, 300, 13), NULL),
                 AFC_APPLY_OK);
    CHECK_EQ_STR(last_event(&f)->kind, "pg-up");
    CHECK_EQ_INT(f.state.history_len, h + 2);
    /* a delayed report (older sequence number, other facts) and a replayed one are refused */
    struct afc_cmd late = mk_observe(R[1], R[0], false, AFC_PG_UNKNOWN, 0, 20);
    struct afc_cmd newer = mk_observe(R[1], R[0], true, AFC_PG_PRIMARY, 400, 21);
    CHECK_EQ_INT(apply(&f, newer, NULL), AFC_APPLY_OK);
    CHECK_EQ_INT(apply(&f, late, &why), AFC_APPLY_REJECTED_STALE);
    CHECK_EQ_INT(why.code, AFC_ESTALESEQ);
    CHECK_CONTAINS(why.msg, "(a delayed or replayed report)");
    CHECK_EQ_INT(apply(&f, newer, NULL), AFC_APPLY_REJECTED_STALE);
    CHECK(o->healthy && o->lsn == 400);
    /* the same facts after a newer report with other facts: the older one stays refused */
    struct afc_cmd a1 = mk_observe(R[2], R[0], true, AFC_PG_PRIMARY, 500, 22);
    struct afc_cmd a2 = mk_observe(R[2], R[0], false, AFC_PG_UNKNOWN, 0, 23);
    struct afc_cmd a3 = mk_observe(R[2], R[0], true, AFC_PG_PRIMARY, 500, 24);
    CHECK_EQ_INT(apply(&f, a1, NULL), AFC_APPLY_OK);
    CHECK_EQ_INT(apply(&f, a3, NULL), AFC_APPLY_NOOP); /* a2 still on its way */
    CHECK_EQ_INT(apply(&f, a2, NULL), AFC_APPLY_REJECTED_STALE);
    CHECK(f.state.obs[2][0].healthy);
    CHECK_EQ_INT(f.state.history_len, h + 2);
    /* local_dead flips (own coordinator gave up): pg-down */
    struct afc_cmd dead = mk_observe(R[0], R[0], true, AFC_PG_PRIMARY, 300, 14);
    CHECK_EQ_INT(apply(&f, dead, NULL), AFC_APPLY_OK);
    CHECK_EQ_INT(f.state.history_len, h + 2);
    dead = mk_observe(R[0], R[0], true, AFC_PG_PRIMARY, 300, 14);
    dead.u.observe.obs.local_dead = true;
    CHECK_EQ_INT(apply(&f, dead, NULL), AFC_APPLY_OK);
    CHECK_EQ_STR(last_event(&f)->kind, "pg-down");
    CHECK(f.state.obs[0][0].local_dead);
    /* a first report that is already down is an event */
    CHECK_EQ_INT(apply(&f, mk_observe(R[2], R[1], false, AFC_PG_UNKNOWN, 0, 15), NULL),
                 AFC_APPLY_OK);
    CHECK_EQ_STR(last_event(&f)->detail, "observer=ap-south-1 target=eu-west-1");
    CHECK_EQ_INT(f.rejected_commands, 5);
}

/* ---- RENEW and the local lease clock ---- */

static void test_renew(void)
{
    static struct afc_fsm f;
    struct afc_err why;
    setup(&f);
    f.apply_clock_ms = 777;
    CHECK_EQ_INT(apply(&f, mk_renew(R[0], 1, 1), &why), AFC_APPLY_OK);
    CHECK_EQ_STR(f.state.lease.region, R[0]);
    CHECK_EQ_INT(f.state.lease.epoch, 1);
    CHECK_EQ_INT(f.state.lease.seq, 1);
    CHECK_EQ_INT(f.state.lease.index, f.state.applied_index);
    CHECK_EQ_INT(f.lease_applied_ms, 777);
    /* the local clock is not replicated content */
    uint64_t d = afc_state_digest(&f.state);
    f.lease_applied_ms = 5;
    f.apply_clock_ms = 900;
    CHECK(afc_state_digest(&f.state) == d);
    /* not the primary, or not the epoch: stale, lease and local clock untouched */
    CHECK_EQ_INT(apply(&f, mk_renew(R[1], 1, 2), &why), AFC_APPLY_REJECTED_STALE);
    CHECK_EQ_INT(why.code, AFC_ESTALEEPOCH);
    CHECK_CONTAINS(why.msg, "authorized primary is us-east-2 at epoch 1");
    CHECK_EQ_INT(apply(&f, mk_renew(R[0], 2, 3), NULL), AFC_APPLY_REJECTED_STALE);
    CHECK_EQ_INT(apply(&f, mk_renew(R[0], 0, 4), NULL), AFC_APPLY_REJECTED_STALE);
    CHECK_EQ_INT(f.lease_applied_ms, 5);
    CHECK_EQ_INT(f.state.lease.seq, 1);
    CHECK_EQ_INT(apply(&f, mk_renew(R[0], 1, 5), NULL), AFC_APPLY_OK);
    CHECK_EQ_INT(f.lease_applied_ms, 900);
    /* a replayed or delayed renewal does not extend the lease */
    f.apply_clock_ms = 1500;
    CHECK_EQ_INT(apply(&f, mk_renew(R[0], 1, 5), &why), AFC_APPLY_REJECTED_STALE);
    CHECK_EQ_INT(why.code, AFC_ESTALESEQ);
    CHECK_CONTAINS(why.msg, "seq 5 is not after 5");
    CHECK_EQ_INT(apply(&f, mk_renew(R[0], 1, 4), NULL), AFC_APPLY_REJECTED_STALE);
    CHECK_EQ_INT(f.lease_applied_ms, 900);
    CHECK_EQ_INT(apply(&f, mk_renew(R[0], 1, 6), NULL), AFC_APPLY_OK);
    CHECK_EQ_INT(f.lease_applied_ms, 1500);
    /* before any primary: nobody can renew */
    static struct afc_fsm g;
    afc_fsm_init(&g);
    g.apply_clock_ms = 1;
    CHECK_EQ_INT(apply(&g, mk_renew(R[0], 0, 1), NULL), AFC_APPLY_REJECTED_STALE);
    CHECK_EQ_INT(g.lease_applied_ms, 0);
}

/* ---- a full failover ---- */

static void test_failover_sequence(void)
{
    static struct afc_fsm f;
    struct afc_err why;
    setup(&f);
    f.apply_clock_ms = 100;
    CHECK_EQ_INT(apply(&f, mk_renew(R[0], 1, 1), NULL), AFC_APPLY_OK);
    CHECK_EQ_INT(apply(&f, mk_begin(1, R[0], R[1]), &why), AFC_APPLY_OK);
    const struct afc_failover *fo = &f.state.failover;
    CHECK_EQ_INT(f.state.epoch, 2);
    CHECK_EQ_STR(f.state.primary, R[1]);
    CHECK(fo->epoch == 2 && fo->step == AFC_FO_DECIDED && !strcmp(fo->from, R[0]));
    CHECK(fo->decided_index == f.state.applied_index && fo->decided_term == 4);
    CHECK(fo->decided_ms == 6000 && fo->detected_ms == 5900 && fo->old_lsn == 0x1000);
    CHECK_EQ_STR(f.state.lease.region, "");
    CHECK_EQ_INT(f.lease_applied_ms, 100); /* counted from the decision's apply */
    CHECK_EQ_STR(last_event(&f)->kind, "failover-decided");
    CHECK_EQ_STR(last_event(&f)->detail, "epoch=2 from=us-east-2 to=eu-west-1 reason=2 of 3 down");
    /* the deposed primary's late renewal is stale, at either epoch */
    CHECK_EQ_INT(apply(&f, mk_renew(R[0], 1, 2), NULL), AFC_APPLY_REJECTED_STALE);
    CHECK_EQ_INT(apply(&f, mk_renew(R[0], 2, 2), NULL), AFC_APPLY_REJECTED_STALE);
    CHECK_EQ_STR(f.state.lease.region, "");
    /* a step of another epoch is stale */
    CHECK_EQ_INT(apply(&f, mk_step(1, AFC_FO_FENCED, 7000), NULL), AFC_APPLY_REJECTED_STALE);
    /* only the candidate may say it is fenced or promoted: another region's report is refused */
    struct afc_cmd stranger = mk_step(2, AFC_FO_FENCED, 7000);
    snprintf(stranger.by, sizeof stranger.by, "%s", R[2]);
    CHECK_EQ_INT(apply_as_is(&f, stranger, &why), AFC_APPLY_REJECTED_INVALID);
    CHECK_CONTAINS(why.msg, "only the candidate");
    CHECK_EQ_INT(apply(&f, mk_step(2, AFC_FO_FENCED, 7000), NULL), AFC_APPLY_OK);
    CHECK_EQ_STR(last_event(&f)->kind, "failover-fenced");
    CHECK_EQ_INT(fo->fenced_ms, 7000);
    CHECK_EQ_INT(apply(&f, mk_step(2, AFC_FO_PROMOTED, 7100), NULL), AFC_APPLY_OK);
    CHECK_EQ_STR(last_event(&f)->kind, "failover-promoted");
    CHECK_CONTAINS(last_event(&f)->detail, "timeline=3 lsn=16/B374D848");
    CHECK(fo->timeline == 3 && fo->promoted_lsn == 0x16B374D848ULL && fo->promoted_ms == 7100);
    CHECK_EQ_INT(f.state.failovers_len, 0);
    CHECK_EQ_INT(apply(&f, mk_step(2, AFC_FO_DONE, 7200), NULL), AFC_APPLY_OK);
    CHECK_EQ_STR(last_event(&f)->kind, "failover-done");
    REQUIRE(f.state.failovers_len == 1);
    CHECK(f.state.failovers[0].step == AFC_FO_DONE && f.state.failovers[0].done_ms == 7200);
    /* the new primary renews at the new epoch */
    f.apply_clock_ms = 8000;
    CHECK_EQ_INT(apply(&f, mk_renew(R[1], 2, 1), NULL), AFC_APPLY_OK);
    CHECK_EQ_INT(f.lease_applied_ms, 8000);
}

/* ---- ROUTED and PUBLISHED ---- */

static struct afc_cmd mk_routed(afc_epoch epoch, const char *address, int64_t t)
{
    struct afc_cmd c = mk(AFC_OP_ROUTED, t);
    c.u.routed.epoch = epoch;
    snprintf(c.u.routed.address, sizeof c.u.routed.address, "%s", address);
    snprintf(c.u.routed.detail, sizeof c.u.routed.detail, "provider=powerdns verified=1/1");
    return c;
}

static struct afc_cmd mk_published(afc_epoch epoch, const char *region, int64_t t)
{
    struct afc_cmd c = mk(AFC_OP_PUBLISHED, t);
    c.u.published.epoch = epoch;
    snprintf(c.u.published.region, AFC_NAME_MAX, "%s", region);
    return c;
}

static void test_routed_published(void)
{
    static struct afc_fsm f;
    struct afc_err why;
    setup(&f);
    const struct afc_failover *fo = &f.state.failover;
    /* nothing to route before a failover has promoted */
    CHECK_EQ_INT(apply(&f, mk_routed(1, "127.0.10.1", 5000), &why), AFC_APPLY_REJECTED_STALE);
    CHECK_EQ_INT(apply(&f, mk_begin(1, R[0], R[1]), NULL), AFC_APPLY_OK);
    CHECK_EQ_INT(apply(&f, mk_routed(2, "127.0.10.2", 6100), &why), AFC_APPLY_REJECTED_INVALID);
    CHECK_CONTAINS(why.msg, "is at decided, not promoted");
    CHECK_EQ_INT(apply(&f, mk_published(2, R[2], 6100), NULL), AFC_APPLY_REJECTED_INVALID);
    CHECK_EQ_INT(apply(&f, mk_step(2, AFC_FO_FENCED, 7000), NULL), AFC_APPLY_OK);
    CHECK_EQ_INT(apply(&f, mk_step(2, AFC_FO_PROMOTED, 7100), NULL), AFC_APPLY_OK);
    /* a deposed leader's report for an older epoch is stale */
    CHECK_EQ_INT(apply(&f, mk_routed(1, "127.0.10.1", 7150), &why), AFC_APPLY_REJECTED_STALE);
    CHECK_EQ_INT(why.code, AFC_ESTALEEPOCH);
    CHECK_EQ_INT(apply(&f, mk_routed(2, "127.0.10.2", 7200), NULL), AFC_APPLY_OK);
    CHECK(fo->routed_ms == 7200 && !strcmp(fo->routed_address, "127.0.10.2"));
    CHECK_EQ_STR(last_event(&f)->kind, "routed");
    CHECK_EQ_STR(last_event(&f)->detail,
                 "epoch=2 region=eu-west-1 address=127.0.10.2 provider=powerdns verified=1/1");
    unsigned h = f.state.history_len;
    CHECK_EQ_INT(apply(&f, mk_routed(2, "127.0.10.9", 7300), NULL), AFC_APPLY_NOOP);
    CHECK(fo->routed_ms == 7200 && !strcmp(fo->routed_address, "127.0.10.2"));
    CHECK_EQ_INT(f.state.history_len, h);
    /* each region's Redis once; an unknown region is refused */
    CHECK_EQ_INT(apply(&f, mk_published(2, R[2], 7400), NULL), AFC_APPLY_OK);
    CHECK_EQ_INT(fo->published_ms[2], 7400);
    CHECK_EQ_STR(last_event(&f)->detail, "epoch=2 region=ap-south-1");
    CHECK_EQ_INT(apply(&f, mk_published(2, R[2], 7500), NULL), AFC_APPLY_NOOP);
    CHECK_EQ_INT(apply(&f, mk_published(2, "mars-1", 7500), &why), AFC_APPLY_REJECTED_INVALID);
    CHECK_CONTAINS(why.msg, "mars-1 is not a member");
    /* after DONE the pushed receipt learns the late news too */
    CHECK_EQ_INT(apply(&f, mk_step(2, AFC_FO_DONE, 7600), NULL), AFC_APPLY_OK);
    REQUIRE(f.state.failovers_len == 1);
    CHECK_EQ_INT(apply(&f, mk_published(2, R[1], 7700), NULL), AFC_APPLY_OK);
    CHECK_EQ_INT(f.state.failovers[0].published_ms[1], 7700);
    CHECK_EQ_INT(f.state.failovers[0].routed_ms, 7200);
    /* survives a snapshot */
    static struct afc_fsm g;
    void *buf = NULL;
    size_t len = 0;
    REQUIRE(afc_state_encode(&f.state, &buf, &len) == 0);
    afc_fsm_init(&g);
    REQUIRE(afc_state_decode(buf, len, &g.state, &why) == 0);
    free(buf);
    CHECK(g.state.failover.routed_ms == 7200 && g.state.failover.published_ms[1] == 7700 &&
          g.state.failover.published_ms[2] == 7400 &&
          !strcmp(g.state.failover.routed_address, "127.0.10.2"));
    CHECK_EQ_INT(g.state.failovers[0].published_ms[1], 7700);
    CHECK(afc_state_digest(&g.state) == afc_state_digest(&f.state));
    /* a newer failover makes them stale */
    CHECK_EQ_INT(apply(&f, mk_begin(2, R[1], R[2]), NULL), AFC_APPLY_OK);
    CHECK_EQ_INT(apply(&f, mk_published(2, R[0], 8000), NULL), AFC_APPLY_REJECTED_STALE);
    CHECK_EQ_INT(fo->routed_ms, 0);
}

static void test_begin_cas_race(void)
{
    static struct afc_fsm f;
    struct afc_err why;
    setup(&f);
    /* two leaders with the same view: the first committed wins, the second is stale */
    CHECK_EQ_INT(apply(&f, mk_begin(1, R[0], R[1]), NULL), AFC_APPLY_OK);
    uint64_t d = afc_state_digest(&f.state);
    CHECK_EQ_INT(apply(&f, mk_begin(1, R[0], R[2]), &why), AFC_APPLY_REJECTED_STALE);
    CHECK_CONTAINS(why.msg, "expect_epoch 1 but current epoch is 2");
    f.state.applied_index--;
    CHECK(afc_state_digest(&f.state) == d);
    f.state.applied_index++;
    /* right epoch, wrong from: stale; right both but in progress: invalid */
    CHECK_EQ_INT(apply(&f, mk_begin(2, R[0], R[2]), &why), AFC_APPLY_REJECTED_STALE);
    CHECK_CONTAINS(why.msg, "from us-east-2 but the primary is eu-west-1");
    CHECK_EQ_INT(apply(&f, mk_begin(2, R[1], R[2]), &why), AFC_APPLY_REJECTED_INVALID);
    CHECK_CONTAINS(why.msg, "is decided");
    /* bad targets */
    CHECK_EQ_INT(apply(&f, mk_step(2, AFC_FO_ABORTED, 1), NULL), AFC_APPLY_OK);
    CHECK_EQ_INT(apply(&f, mk_begin(2, "", "mars-1"), NULL), AFC_APPLY_REJECTED_INVALID);
    CHECK_EQ_INT(f.state.epoch, 2);
    /* no adopted primary yet: nothing to fail over from */
    static struct afc_fsm g;
    afc_fsm_init(&g);
    CHECK_EQ_INT(apply(&g, mk_begin(0, "", R[1]), &why), AFC_APPLY_REJECTED_INVALID);
    CHECK_CONTAINS(why.msg, "no primary adopted yet");
}

/* Bring a fresh fsm's failover to `step` (epoch 2). */
static void reach(struct afc_fsm *f, enum afc_fo_step step)
{
    static const enum afc_fo_step path[][4] = {
        [AFC_FO_NONE] = {AFC_FO_NONE},
        [AFC_FO_DECIDED] = {AFC_FO_NONE},
        [AFC_FO_FENCED] = {AFC_FO_FENCED},
        [AFC_FO_PROMOTED] = {AFC_FO_FENCED, AFC_FO_PROMOTED},
        [AFC_FO_DONE] = {AFC_FO_FENCED, AFC_FO_PROMOTED, AFC_FO_DONE},
        [AFC_FO_ABORTED] = {AFC_FO_ABORTED},
    };
    setup(f);
    if (step == AFC_FO_NONE) {
        return;
    }
    CHECK_EQ_INT(apply(f, mk_begin(1, R[0], R[1]), NULL), AFC_APPLY_OK);
    for (int k = 0; k < 4 && path[step][k] != AFC_FO_NONE; k++) {
        CHECK_EQ_INT(apply(f, mk_step(2, path[step][k], 10 + k), NULL), AFC_APPLY_OK);
    }
    CHECK_EQ_INT(f->state.failover.step, step);
}

static void test_step_table_through_apply(void)
{
    static struct afc_fsm f;
    unsigned ok = 0;
    for (int a = 0; a < AFC_FO__COUNT; a++) {
        for (int b = 0; b < AFC_FO__COUNT; b++) {
            reach(&f, (enum afc_fo_step)a);
            uint64_t d = afc_state_digest(&f.state);
            struct afc_err why;
            bool legal = afc_fo_step_allowed((enum afc_fo_step)a, (enum afc_fo_step)b);
            enum afc_apply_result r =
                apply(&f, mk_step(f.state.failover.epoch, (enum afc_fo_step)b, 50), &why);
            if (r != (legal ? AFC_APPLY_OK : AFC_APPLY_REJECTED_INVALID)) {
                fprintf(stderr, "  %s -> %s: %s\n", afc_fo_step_name(a), afc_fo_step_name(b),
                        afc_apply_result_name(r));
                test_failed_checks++;
            }
            if (legal) {
                ok++;
                CHECK_EQ_INT(f.state.failover.step, b);
            } else {
                CHECK_CONTAINS(why.msg, "not allowed");
                f.state.applied_index--;
                CHECK(afc_state_digest(&f.state) == d);
            }
        }
    }
    CHECK_EQ_INT(ok, 5);
}

/* ---- the ABORTED rule ---- */

static void test_aborted_rule(void)
{
    static struct afc_fsm f;
    struct afc_err why;
    reach(&f, AFC_FO_FENCED);
    f.apply_clock_ms = 50;
    CHECK_EQ_INT(apply(&f, mk_renew(R[1], 2, 1), NULL), AFC_APPLY_OK); /* `to` renewed */
    CHECK_EQ_INT(apply(&f, mk_step(2, AFC_FO_ABORTED, 60), NULL), AFC_APPLY_OK);
    CHECK_EQ_STR(last_event(&f)->kind, "failover-aborted");
    CHECK_EQ_STR(f.state.primary, "");
    CHECK_EQ_INT(f.state.epoch, 2);       /* consumed */
    CHECK_EQ_INT(f.lease_applied_ms, 50); /* kept: `to` may still hold its lease */
    CHECK(f.state.failovers_len == 1 && f.state.failovers[0].aborted_ms == 60);
    /* nobody is authorized: neither side can renew */
    CHECK_EQ_INT(apply(&f, mk_renew(R[1], 2, 2), NULL), AFC_APPLY_REJECTED_STALE);
    CHECK_EQ_INT(apply(&f, mk_renew(R[0], 2, 2), NULL), AFC_APPLY_REJECTED_STALE);
    /* the next failover starts from "" with a new epoch */
    CHECK_EQ_INT(apply(&f, mk_begin(2, R[1], R[2]), &why), AFC_APPLY_REJECTED_STALE);
    CHECK_EQ_INT(apply(&f, mk_begin(2, "", R[2]), &why), AFC_APPLY_OK);
    CHECK_EQ_INT(f.state.epoch, 3);
    CHECK_EQ_STR(f.state.primary, R[2]);
    CHECK_CONTAINS(last_event(&f)->detail, "from=none to=ap-south-1");
    /* an operator promote supersedes a failover: it can still be closed, not advanced, and an
     * abort then leaves the operator's primary alone */
    struct afc_cmd promote = mk(AFC_OP_PROMOTE, 1);
    snprintf(promote.u.promote.region, AFC_NAME_MAX, "%s", R[0]);
    promote.u.promote.expect_epoch = 3;
    CHECK_EQ_INT(apply(&f, promote, NULL), AFC_APPLY_OK);
    CHECK_EQ_INT(apply(&f, mk_step(3, AFC_FO_FENCED, 1), &why), AFC_APPLY_REJECTED_STALE);
    CHECK_CONTAINS(why.msg, "superseded");
    CHECK_EQ_INT(apply(&f, mk_step(3, AFC_FO_ABORTED, 1), NULL), AFC_APPLY_OK);
    CHECK_EQ_STR(f.state.primary, R[0]);
}

static void test_receipts_ring(void)
{
    static struct afc_fsm f;
    setup(&f);
    for (afc_epoch e = 1; e <= AFC_FAILOVERS_MAX + 4; e++) {
        const char *from = f.state.primary;
        char from_copy[AFC_NAME_MAX];
        snprintf(from_copy, sizeof from_copy, "%s", from);
        CHECK_EQ_INT(
            apply(&f, mk_begin(e, from_copy, R[e % 3] == f.state.primary ? R[0] : R[e % 3]), NULL),
            AFC_APPLY_OK);
        CHECK_EQ_INT(apply(&f, mk_step(e + 1, AFC_FO_ABORTED, (int64_t)e), NULL), AFC_APPLY_OK);
        CHECK_EQ_STR(f.state.primary, "");
    }
    CHECK_EQ_INT(f.state.failovers_len, AFC_FAILOVERS_MAX);
    /* snapshot writes them oldest first and decodes into an equal state */
    void *buf, *buf2;
    size_t len, len2;
    static struct afc_state s;
    REQUIRE(afc_state_encode(&f.state, &buf, &len) == 0);
    REQUIRE(afc_state_decode(buf, len, &s, NULL) == 0);
    CHECK(afc_state_digest(&s) == afc_state_digest(&f.state));
    CHECK_EQ_INT(s.failovers[0].epoch, 6); /* epochs 2..21: the oldest kept is 21 - 16 + 1 */
    REQUIRE(afc_state_encode(&s, &buf2, &len2) == 0);
    CHECK(len == len2 && memcmp(buf, buf2, len) == 0);
    free(buf);
    free(buf2);
}

/* ---- SYNC_SET ---- */

static struct afc_cmd mk_sync(const char *region, afc_epoch epoch, bool active, const char *a,
                              const char *b, int64_t t)
{
    struct afc_cmd c = mk(AFC_OP_SYNC_SET, t);
    snprintf(c.by, sizeof c.by, "%s", region);
    snprintf(c.u.sync_set.region, AFC_NAME_MAX, "%s", region);
    c.u.sync_set.epoch = epoch;
    c.u.sync_set.active = active;
    const char *names[2] = {a, b};
    for (unsigned k = 0; k < 2; k++) {
        if (names[k] != NULL) {
            snprintf(c.u.sync_set.standbys[c.u.sync_set.n_standbys++], AFC_NAME_MAX, "%s",
                     names[k]);
        }
    }
    return c;
}

static void test_sync_set(void)
{
    static struct afc_fsm f, g;
    static struct afc_state s;
    struct afc_err why;
    setup(&f);
    const struct afc_sync *y = &f.state.sync;
    uint64_t before = afc_state_digest(&f.state);
    void *buf;
    size_t len;
    /* never set: the snapshot has no "sync" key (a cluster that never ran in sync mode encodes
     * exactly as before the key existed) */
    REQUIRE(afc_state_encode(&f.state, &buf, &len) == 0);
    for (size_t k = 0; k + 5 <= len; k++) {
        CHECK(memcmp((const char *)buf + k, "\xa4sync", 5) != 0);
    }
    free(buf);
    /* only the authorized primary of the current epoch */
    CHECK_EQ_INT(apply(&f, mk_sync(R[1], 1, true, R[0], NULL, 10), &why), AFC_APPLY_REJECTED_STALE);
    CHECK_CONTAINS(why.msg, "authorized primary is us-east-2 at epoch 1");
    CHECK_EQ_INT(apply(&f, mk_sync(R[0], 2, true, R[1], NULL, 10), &why), AFC_APPLY_REJECTED_STALE);
    CHECK_EQ_INT(why.code, AFC_ESTALEEPOCH);
    CHECK_EQ_INT(apply(&f, mk_sync(R[0], 1, true, "mars-1", NULL, 10), &why),
                 AFC_APPLY_REJECTED_INVALID);
    CHECK_CONTAINS(why.msg, "mars-1 is not a member");
    CHECK_EQ_STR(y->region, "");
    CHECK(afc_state_digest(&f.state) != before); /* applied_index moved */
    /* set, unchanged, shrunk, asynchronous */
    CHECK_EQ_INT(apply(&f, mk_sync(R[0], 1, true, R[1], R[2], 11), NULL), AFC_APPLY_OK);
    CHECK(!strcmp(y->region, R[0]) && y->epoch == 1 && y->active && !y->standby[0] &&
          y->standby[1] && y->standby[2] && y->index == f.state.applied_index);
    CHECK_EQ_STR(last_event(&f)->kind, "sync-standbys");
    CHECK_EQ_STR(last_event(&f)->detail, "region=us-east-2 epoch=1 standbys=eu-west-1,ap-south-1");
    CHECK_EQ_INT(apply(&f, mk_sync(R[0], 1, true, R[2], R[1], 12), NULL), AFC_APPLY_NOOP);
    struct afc_cmd one = mk_sync(R[0], 1, true, R[1], NULL, 13);
    snprintf(one.u.sync_set.detail, AFC_DETAIL_MAX, "ap-south-1 stopped streaming");
    CHECK_EQ_INT(apply(&f, one, NULL), AFC_APPLY_OK);
    CHECK(y->standby[1] && !y->standby[2]);
    CHECK_EQ_STR(last_event(&f)->detail,
                 "region=us-east-2 epoch=1 standbys=eu-west-1 detail=ap-south-1 stopped streaming");
    CHECK_EQ_INT(apply(&f, mk_sync(R[0], 1, false, NULL, NULL, 14), NULL), AFC_APPLY_OK);
    CHECK(!y->active && !y->standby[1]);
    CHECK_EQ_STR(last_event(&f)->detail, "region=us-east-2 epoch=1 async");
    CHECK_EQ_INT(apply(&f, mk_sync(R[0], 1, true, R[1], R[2], 15), NULL), AFC_APPLY_OK);
    /* survives a snapshot, and the digest covers it */
    REQUIRE(afc_state_encode(&f.state, &buf, &len) == 0);
    REQUIRE(afc_state_decode(buf, len, &s, &why) == 0);
    CHECK(!strcmp(s.sync.region, R[0]) && s.sync.active && s.sync.standby[1] && s.sync.standby[2] &&
          !s.sync.standby[0] && s.sync.index == y->index);
    CHECK(afc_state_digest(&s) == afc_state_digest(&f.state));
    s.sync.standby[2] = false;
    CHECK(afc_state_digest(&s) != afc_state_digest(&f.state));
    s = f.state;
    s.sync.active = false;
    CHECK(afc_state_digest(&s) != afc_state_digest(&f.state));
    /* a snapshot naming a non-member, or the region itself, is malformed */
    unsigned char *m = malloc(len);
    unsigned char *hit = NULL;
    memcpy(m, buf, len);
    for (size_t k = 0; k + 10 <= len && hit == NULL; k++) {
        hit = memcmp(m + k,
                     "\xa9"
                     "eu-west-1",
                     10) == 0 &&
                      k > 0 && m[k - 1] == 0x92
                  ? m + k
                  : NULL;
    }
    REQUIRE(hit != NULL);
    memcpy(hit + 1, "us-east-2", 9);
    CHECK_EQ_INT(afc_state_decode(m, len, &s, &why), AFC_EMALFORMED);
    CHECK_CONTAINS(why.msg, "not another member");
    free(m);
    free(buf);
    /* a failover keeps the predecessor's set until the new primary sets its own; the old
     * primary can no longer change it */
    CHECK_EQ_INT(apply(&f, mk_begin(1, R[0], R[1]), NULL), AFC_APPLY_OK);
    CHECK(!strcmp(y->region, R[0]) && y->epoch == 1 && y->standby[1]);
    CHECK_EQ_INT(apply(&f, mk_sync(R[0], 1, false, NULL, NULL, 16), NULL),
                 AFC_APPLY_REJECTED_STALE);
    CHECK_EQ_INT(apply(&f, mk_sync(R[1], 2, true, R[2], NULL, 17), NULL), AFC_APPLY_OK);
    CHECK(!strcmp(y->region, R[1]) && y->epoch == 2 && y->standby[2] && !y->standby[1]);
    /* a restored node continues identically */
    afc_fsm_init(&g);
    afc_fsm_restore(&g, &f.state);
    CHECK_EQ_INT(apply(&g, mk_sync(R[1], 2, true, R[2], R[0], 18), NULL), AFC_APPLY_OK);
    CHECK_EQ_INT(apply(&f, mk_sync(R[1], 2, true, R[2], R[0], 18), NULL), AFC_APPLY_OK);
    CHECK(afc_state_digest(&g.state) == afc_state_digest(&f.state));
}

/* ---- snapshots and digests ---- */

static void test_snapshot_new_fields(void)
{
    static struct afc_fsm f, g;
    static struct afc_state s;
    setup(&f);
    CHECK_EQ_INT(apply(&f, mk_observe(R[1], R[0], true, AFC_PG_PRIMARY, 9, 1), NULL), AFC_APPLY_OK);
    struct afc_cmd o = mk_observe(R[2], R[2], true, AFC_PG_REPLICA, 8, 2);
    snprintf(o.u.observe.obs.upstream, AFC_NAME_MAX, "%s", R[0]);
    o.u.observe.obs.lag_ms = 42;
    CHECK_EQ_INT(apply(&f, o, NULL), AFC_APPLY_OK);
    CHECK_EQ_INT(apply(&f, mk_renew(R[0], 1, 3), NULL), AFC_APPLY_OK);
    CHECK_EQ_INT(apply(&f, mk_begin(1, R[0], R[2]), NULL), AFC_APPLY_OK);
    CHECK_EQ_INT(apply(&f, mk_step(2, AFC_FO_FENCED, 3), NULL), AFC_APPLY_OK);
    CHECK_EQ_INT(apply(&f, mk_renew(R[2], 2, 4), NULL), AFC_APPLY_OK);
    void *buf;
    size_t len;
    REQUIRE(afc_state_encode(&f.state, &buf, &len) == 0);
    REQUIRE(afc_state_decode(buf, len, &s, NULL) == 0);
    CHECK(afc_state_digest(&s) == afc_state_digest(&f.state));
    CHECK(s.obs[2][2].valid && s.obs[2][2].lag_ms == 42 && !strcmp(s.obs[2][2].upstream, R[0]));
    CHECK(!s.obs[0][1].valid);
    CHECK(s.lease.seq == 4 && !strcmp(s.lease.region, R[2]));
    CHECK(s.failover.step == AFC_FO_FENCED && s.failover.epoch == 2);
    /* a restored node continues identically */
    afc_fsm_init(&g);
    afc_fsm_restore(&g, &s);
    CHECK_EQ_INT(apply(&g, mk_step(2, AFC_FO_PROMOTED, 4), NULL), AFC_APPLY_OK);
    CHECK_EQ_INT(apply(&f, mk_step(2, AFC_FO_PROMOTED, 4), NULL), AFC_APPLY_OK);
    CHECK(afc_state_digest(&g.state) == afc_state_digest(&f.state));
    /* the digest covers each new field */
    s = f.state;
    s.obs[1][0].lsn++;
    CHECK(afc_state_digest(&s) != afc_state_digest(&f.state));
    s = f.state;
    s.lease.seq++;
    CHECK(afc_state_digest(&s) != afc_state_digest(&f.state));
    s = f.state;
    s.failover.promoted_ms++;
    CHECK(afc_state_digest(&s) != afc_state_digest(&f.state));
    s = f.state;
    s.obs[0][1].valid = true;
    CHECK(afc_state_digest(&s) != afc_state_digest(&f.state));
    /* unencodable content is refused */
    s = f.state;
    s.failover.step = AFC_FO__COUNT;
    void *bad;
    CHECK_EQ_INT(afc_state_encode(&s, &bad, &len), AFC_EINVAL);
    free(buf);
}

/* Byte-level corruption of the new keys: truncations and flips never crash, errors are clean. */
static void test_snapshot_corrupt(void)
{
    static struct afc_fsm f;
    static struct afc_state s;
    reach(&f, AFC_FO_PROMOTED);
    CHECK_EQ_INT(apply(&f, mk_observe(R[1], R[0], true, AFC_PG_PRIMARY, 9, 1), NULL), AFC_APPLY_OK);
    void *buf;
    size_t len;
    REQUIRE(afc_state_encode(&f.state, &buf, &len) == 0);
    for (size_t cut = 0; cut + 8 <= len; cut++) {
        CHECK_EQ_INT(afc_state_decode(buf, cut, &s, NULL), AFC_EMALFORMED);
    }
    /* rename the value of "step" to "promotex": an unknown step name is malformed */
    unsigned char *m = malloc(len);
    memcpy(m, buf, len);
    unsigned char *hit = NULL;
    for (size_t k = 0; k + 13 <= len && hit == NULL; k++) {
        hit = memcmp(m + k, "step\xa8promoted", 13) == 0 ? m + k + 5 : NULL;
    }
    REQUIRE(hit != NULL);
    hit[7] = 'x';
    struct afc_err why = {0};
    CHECK_EQ_INT(afc_state_decode(m, len, &s, &why), AFC_EMALFORMED);
    CHECK_CONTAINS(why.msg, "unknown step \"promotex\"");
    uint64_t rng = 0x2545F4914F6CDD1DULL;
    for (int k = 0; k < 3000; k++) {
        memcpy(m, buf, len);
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        m[rng % len] ^= (unsigned char)(1 + (rng >> 32) % 255);
        int rc = afc_state_decode(m, len, &s, NULL);
        CHECK(rc == 0 || rc == AFC_EMALFORMED || rc == AFC_EVERSION);
    }
    free(m);
    free(buf);
}

int main(void)
{
    TEST_RUN(test_observe);
    TEST_RUN(test_renew);
    TEST_RUN(test_failover_sequence);
    TEST_RUN(test_routed_published);
    TEST_RUN(test_begin_cas_race);
    TEST_RUN(test_step_table_through_apply);
    TEST_RUN(test_aborted_rule);
    TEST_RUN(test_receipts_ring);
    TEST_RUN(test_sync_set);
    TEST_RUN(test_snapshot_new_fields);
    TEST_RUN(test_snapshot_corrupt);
    TEST_END();
}
