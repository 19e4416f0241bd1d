/*
 * Drain and the operator what-ifs: the AFC_OP_DRAIN codec (strict like every op), its apply
 * (member check, NOOP, drained/undrained events), the per-member flag in the snapshot and digest
 * (absent while nothing is drained, so older digests still match), candidate selection excluding
 * drained members and the region that failed to promote after an ABORTED failover, and
 * afc_decide_assume_dead (plan --assume-dead).
 */
#define _GNU_SOURCE /* memmem */
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "afc/failover.h"
#include "afc/state.h"
#include "tests/test.h"
#include "tests/unit/cluster_fixture.h"

static struct afc_cmd mk(enum afc_op op)
{
    struct afc_cmd c;
    memset(&c, 0, sizeof c);
    c.op = op;
    c.wall_ms = 5000;
    snprintf(c.by, sizeof c.by, "us-east-2");
    return c;
}

static struct afc_cmd mk_drain(const char *region, bool drained, const char *reason)
{
    struct afc_cmd c = mk(AFC_OP_DRAIN);
    snprintf(c.u.drain.region, AFC_NAME_MAX, "%s", region);
    c.u.drain.drained = drained;
    snprintf(c.u.drain.reason, AFC_DETAIL_MAX, "%s", reason);
    return c;
}

static enum afc_apply_result apply(struct afc_fsm *f, struct afc_cmd c, struct afc_err *why)
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

static void setup(struct afc_fsm *f)
{
    struct afc_cmd init = mk(AFC_OP_INIT);
    afc_fsm_init(f);
    init.u.init.n_members = 3;
    for (unsigned i = 0; i < 3; i++) {
        init.u.init.members[i].id = i + 1;
        snprintf(init.u.init.members[i].name, AFC_NAME_MAX, "%s", R[i]);
    }
    CHECK_EQ_INT(apply(f, init, NULL), AFC_APPLY_OK);
}

static const struct afc_event *last_event(const struct afc_fsm *f)
{
    return afc_state_history_at(&f->state, f->state.history_len - 1);
}

/* ---- codec ---- */

/* A drain map with `skip` left out and, if `bad`, "drained" sent as a string. */
static int decode_drain_map(const char *skip, bool bad, const char *region)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    const char *keys[] = {"v", "op", "region", "drained", "reason", "by", "t"};
    unsigned n = 0;
    for (unsigned k = 0; k < 7; k++) {
        n += skip == NULL || strcmp(keys[k], skip) != 0;
    }
    msgpack_pack_map(&pk, n);
    for (unsigned k = 0; k < 7; k++) {
        const char *key = keys[k];
        if (skip != NULL && strcmp(key, skip) == 0) {
            continue;
        }
        msgpack_pack_str_with_body(&pk, key, strlen(key));
        if (strcmp(key, "v") == 0 || strcmp(key, "t") == 0) {
            msgpack_pack_uint64(&pk, 1);
        } else if (strcmp(key, "drained") == 0 && !bad) {
            msgpack_pack_true(&pk);
        } else {
            const char *v = strcmp(key, "op") == 0       ? "drain"
                            : strcmp(key, "region") == 0 ? region
                                                         : "x";
            msgpack_pack_str_with_body(&pk, v, strlen(v));
        }
    }
    struct afc_cmd c;
    int rc = afc_cmd_decode(sb.data, sb.size, &c, NULL);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static void test_codec(void)
{
    struct afc_cmd c = mk_drain(R[1], true, "maintenance"), d;
    void *buf;
    size_t len;
    REQUIRE(afc_cmd_encode(&c, &buf, &len) == 0);
    CHECK_EQ_INT(afc_cmd_decode(buf, len, &d, NULL), 0);
    CHECK_EQ_INT(d.op, AFC_OP_DRAIN);
    CHECK_EQ_STR(d.u.drain.region, R[1]);
    CHECK(d.u.drain.drained);
    CHECK_EQ_STR(d.u.drain.reason, "maintenance");
    free(buf);
    CHECK_EQ_STR(afc_op_name(AFC_OP_DRAIN), "drain");
    CHECK_EQ_INT(decode_drain_map(NULL, false, "eu-west-1"), 0);
    CHECK_EQ_INT(decode_drain_map("region", false, "eu-west-1"), AFC_EMALFORMED);
    CHECK_EQ_INT(decode_drain_map("drained", false, "eu-west-1"), AFC_EMALFORMED);
    CHECK_EQ_INT(decode_drain_map("reason", false, "eu-west-1"), AFC_EMALFORMED);
    CHECK_EQ_INT(decode_drain_map(NULL, true, "eu-west-1"), AFC_EMALFORMED);
    CHECK_EQ_INT(decode_drain_map(NULL, false, ""), AFC_EMALFORMED);
    CHECK_EQ_INT(decode_drain_map(NULL, false, "0123456789012345678901234567890123"),
                 AFC_EMALFORMED);
    c = mk_drain("", true, "");
    CHECK_EQ_INT(afc_cmd_encode(&c, &buf, &len), AFC_EINVAL);
}

/* ---- apply, snapshot, digest ---- */

static void test_apply(void)
{
    static struct afc_fsm f;
    struct afc_err why;
    setup(&f);
    CHECK_EQ_INT(apply(&f, mk_drain("nowhere", true, ""), &why), AFC_APPLY_REJECTED_INVALID);
    CHECK_CONTAINS(why.msg, "not a member");
    CHECK_EQ_INT(apply(&f, mk_drain(R[1], false, ""), &why), AFC_APPLY_NOOP);
    CHECK_EQ_INT(apply(&f, mk_drain(R[1], true, "disk swap"), NULL), AFC_APPLY_OK);
    CHECK(f.state.drained[1] && !f.state.drained[0] && !f.state.drained[2]);
    CHECK_EQ_STR(last_event(&f)->kind, "drained");
    CHECK_CONTAINS(last_event(&f)->detail, "region=eu-west-1 by=us-east-2 reason=disk swap");
    unsigned events = f.state.history_len;
    CHECK_EQ_INT(apply(&f, mk_drain(R[1], true, "again"), &why), AFC_APPLY_NOOP);
    CHECK_CONTAINS(why.msg, "already drained");
    CHECK_EQ_INT(f.state.history_len, events);
    CHECK_EQ_INT(apply(&f, mk_drain(R[1], false, "done"), NULL), AFC_APPLY_OK);
    CHECK(!f.state.drained[1]);
    CHECK_EQ_STR(last_event(&f)->kind, "undrained");
}

static void test_snapshot_digest(void)
{
    static struct afc_fsm f;
    static struct afc_state s, plain;
    setup(&f);
    plain = f.state;
    CHECK_EQ_INT(apply(&f, mk_drain(R[2], true, ""), NULL), AFC_APPLY_OK);
    void *buf, *buf2;
    size_t len, len2;
    REQUIRE(afc_state_encode(&f.state, &buf, &len) == 0);
    REQUIRE(afc_state_decode(buf, len, &s, NULL) == 0);
    CHECK(s.drained[2] && !s.drained[0] && !s.drained[1]);
    CHECK(afc_state_digest(&s) == afc_state_digest(&f.state));
    s.drained[2] = false;
    CHECK(afc_state_digest(&s) != afc_state_digest(&f.state));
    /* nothing drained: the key is absent, so the encoding is the pre-drain one */
    REQUIRE(afc_state_encode(&plain, &buf2, &len2) == 0);
    CHECK(memmem(buf2, len2, "drained", 7) == NULL);
    CHECK(memmem(buf, len, "drained", 7) != NULL);
    REQUIRE(afc_state_decode(buf2, len2, &s, NULL) == 0);
    CHECK(!s.drained[0] && !s.drained[1] && !s.drained[2]);
    /* a corrupted "drained" (non-bool) is refused */
    char *p = memmem(buf, len, "drained", 7);
    REQUIRE(p != NULL);
    p[8] = (char)0xc0; /* first element after the array header: nil instead of a bool */
    CHECK_EQ_INT(afc_state_decode(buf, len, &s, NULL), AFC_EMALFORMED);
    free(buf);
    free(buf2);
}

/* ---- decisions ---- */

static struct afc_decide_config cfg3(void)
{
    struct afc_decide_config c;
    memset(&c, 0, sizeof c);
    c.lease_ms = 2000;
    c.margin_ms = 200;
    c.cooldown_ms = 300000;
    c.n_members = 3;
    return c;
}

static const struct afc_predicate *pred(const struct afc_decision *d, const char *name)
{
    for (unsigned k = 0; k < d->n_predicates; k++) {
        if (strcmp(d->predicates[k].name, name) == 0) {
            return &d->predicates[k];
        }
    }
    return NULL;
}

static void test_drained_never_chosen(void)
{
    static struct afc_state s;
    struct afc_decide_config c = cfg3();
    char why[160];
    healthy_cluster(&s);
    CHECK_EQ_INT(afc_select_candidate(&s, &c, R[0], why, sizeof why), 1);
    CHECK_EQ_STR(why, "");
    s.drained[1] = true;
    CHECK_EQ_INT(afc_select_candidate(&s, &c, R[0], why, sizeof why), 2);
    CHECK_EQ_STR(why, "eu-west-1 is drained");
    s.drained[2] = true;
    CHECK_EQ_INT(afc_select_candidate(&s, &c, R[0], why, sizeof why), -1);
    CHECK_CONTAINS(why, "eu-west-1 is drained");
    CHECK_CONTAINS(why, "ap-south-1 is drained");
    /* through afc_decide: the exclusion is in the candidate predicate's value */
    s.drained[2] = false;
    for (int i = 0; i < 3; i++) {
        s.obs[i][0].healthy = false;
    }
    struct afc_decide_input in = {&s, &c, true, 10000, 7000, 1000, 0};
    struct afc_decision d;
    afc_decide(&in, &d);
    CHECK_EQ_INT(d.action, AFC_ACT_BEGIN_FAILOVER);
    CHECK_EQ_STR(d.to, "ap-south-1");
    CHECK_CONTAINS(pred(&d, "candidate-available")->value, "passed over: eu-west-1 is drained");
}

static void test_failed_promote_passed_over(void)
{
    static struct afc_state s;
    struct afc_decide_config c = cfg3();
    char why[160];
    healthy_cluster(&s);
    s.primary[0] = '\0';
    s.epoch = 4;
    s.failover.epoch = 4;
    s.failover.step = AFC_FO_ABORTED;
    snprintf(s.failover.to, AFC_NAME_MAX, "%s", R[1]);
    set_obs(&s, 0, 0, false, AFC_PG_UNKNOWN, 0);
    CHECK_EQ_INT(afc_select_candidate(&s, &c, "", why, sizeof why), 2);
    CHECK_EQ_STR(why, "eu-west-1 failed to promote in epoch 4; us-east-2: not a healthy replica by "
                      "its own report");
    struct afc_decide_input in = {&s, &c, true, 10000, 7000, 1000, 0};
    struct afc_decision d;
    afc_decide(&in, &d);
    CHECK_EQ_INT(d.action, AFC_ACT_BEGIN_FAILOVER);
    CHECK_EQ_STR(d.to, "ap-south-1");
    CHECK_CONTAINS(pred(&d, "candidate-available")->value, "failed to promote in epoch 4");
    /* the only healthy replica left: chosen again */
    for (int i = 0; i < 3; i++) {
        s.obs[i][2].healthy = false;
    }
    CHECK_EQ_INT(afc_select_candidate(&s, &c, "", why, sizeof why), 1);
    CHECK(strstr(why, "failed to promote") == NULL);
    /* only right after ABORTED: a completed failover does not exclude its target */
    healthy_cluster(&s);
    snprintf(s.failover.to, AFC_NAME_MAX, "%s", R[1]);
    CHECK_EQ_INT(afc_select_candidate(&s, &c, R[0], why, sizeof why), 1);
    /* drained beats "the only one left": a drained aborted target is never chosen */
    healthy_cluster(&s);
    s.failover.step = AFC_FO_ABORTED;
    snprintf(s.failover.to, AFC_NAME_MAX, "%s", R[1]);
    s.drained[1] = true;
    s.drained[2] = true;
    CHECK_EQ_INT(afc_select_candidate(&s, &c, R[0], why, sizeof why), -1);
}

static void test_assume_dead(void)
{
    static struct afc_state s, scratch;
    struct afc_decide_config c = cfg3();
    healthy_cluster(&s);
    /* healthy, lease fresh: nothing to do now */
    struct afc_decide_input in = {&s, &c, true, 10000, 9500, 1000, 0};
    struct afc_decision d;
    afc_decide(&in, &d);
    CHECK_EQ_INT(d.action, AFC_ACT_NONE);
    /* if the primary died now: fail over to the best replica; the state is not touched */
    CHECK_EQ_INT(afc_decide_assume_dead(&in, R[0], &scratch, &d), 0);
    CHECK_EQ_INT(d.action, AFC_ACT_BEGIN_FAILOVER);
    CHECK_EQ_STR(d.from, "us-east-2");
    CHECK_EQ_STR(d.to, "eu-west-1");
    CHECK(s.obs[1][0].healthy);
    CHECK(pred(&d, "lease-expired")->ok && pred(&d, "primary-failed-by-quorum")->ok);
    /* drained eu-west-1: ap-south-1 instead */
    s.drained[1] = true;
    CHECK_EQ_INT(afc_decide_assume_dead(&in, R[0], &scratch, &d), 0);
    CHECK_EQ_STR(d.to, "ap-south-1");
    /* a replica dying causes no failover; the answer says why */
    CHECK_EQ_INT(afc_decide_assume_dead(&in, R[2], &scratch, &d), 0);
    CHECK_EQ_INT(d.action, AFC_ACT_NONE);
    CHECK_EQ_STR(d.blocking, "primary-failed-by-quorum");
    /* early clock (now < lease + margin): still counts as expired */
    in.now_ms = 5;
    CHECK_EQ_INT(afc_decide_assume_dead(&in, R[0], &scratch, &d), 0);
    CHECK(pred(&d, "lease-expired")->ok);
    /* paused or not the leader: the same blocking predicate as the real decision */
    s.paused = true;
    CHECK_EQ_INT(afc_decide_assume_dead(&in, R[0], &scratch, &d), 0);
    CHECK_EQ_STR(d.blocking, "not-paused");
    CHECK_EQ_INT(afc_decide_assume_dead(&in, "nowhere", &scratch, &d), AFC_EUNKNOWNMEMBER);
}

int main(void)
{
    TEST_RUN(test_codec);
    TEST_RUN(test_apply);
    TEST_RUN(test_snapshot_digest);
    TEST_RUN(test_drained_never_chosen);
    TEST_RUN(test_failed_promote_passed_over);
    TEST_RUN(test_assume_dead);
    TEST_END();
}
