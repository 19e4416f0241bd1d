/*
 * Codec tests of the failover ops (observe, renew, failover-begin, failover-step): every field
 * broken one at a time (wrong type, missing, too long, out of range, unknown enum name), strings
 * at their exact limits, encoder-side checks, and the enum name tables. Round trips, truncations
 * and fuzzing of these ops run in test_codec.c over every op.
 */
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "afc/failover.h"
#include "afc/state.h"
#include "tests/test.h"
#include "tests/unit/failover_samples.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static struct afc_cmd sample(enum afc_op op)
{
    struct afc_cmd c;
    memset(&c, 0, sizeof c);
    c.op = op;
    c.wall_ms = 1718000000123;
    snprintf(c.by, sizeof c.by, "eu-west-1");
    sample_failover(&c);
    return c;
}

/* One replacement: key gets a value of `type` (s u i b n; a: an array of the '|'-separated strings
 * in s, "" = empty), or is dropped ('d'), or added. */
struct patch {
    const char *key;
    char type;
    const char *s;
    int64_t i;
};

static void pack_patch(msgpack_packer *pk, const struct patch *p)
{
    switch (p->type) {
    case 's':
        msgpack_pack_str_with_body(pk, p->s, strlen(p->s));
        break;
    case 'u':
        msgpack_pack_uint64(pk, (uint64_t)p->i);
        break;
    case 'i':
        msgpack_pack_int64(pk, p->i);
        break;
    case 'b':
        p->i ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        break;
    case 'a': {
        size_t n = p->s[0] != '\0';
        for (const char *c = p->s; *c; c++) {
            n += *c == '|';
        }
        msgpack_pack_array(pk, n);
        for (const char *c = p->s; n > 0; c += strcspn(c, "|") + 1, n--) {
            msgpack_pack_str_with_body(pk, c, strcspn(c, "|"));
        }
        break;
    }
    default:
        msgpack_pack_nil(pk);
        break;
    }
}

static bool key_is(const msgpack_object *k, const char *key)
{
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(key) &&
           memcmp(k->via.str.ptr, key, k->via.str.size) == 0;
}

/* Encode `c`, then rebuild its map with `p` applied; padded to 8. */
static void *patched(const struct afc_cmd *c, const struct patch *p, size_t *len)
{
    void *enc;
    size_t enc_len;
    msgpack_unpacked u;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    if (afc_cmd_encode(c, &enc, &enc_len) != 0) {
        return NULL;
    }
    msgpack_unpacked_init(&u);
    msgpack_unpack_next(&u, enc, enc_len, NULL);
    const msgpack_object_map *m = &u.data.via.map;
    bool found = false;
    for (uint32_t k = 0; k < m->size; k++) {
        found |= key_is(&m->ptr[k].key, p->key);
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, m->size + (found ? 0 : 1) - (p->type == 'd' ? 1 : 0));
    for (uint32_t k = 0; k < m->size; k++) {
        bool hit = key_is(&m->ptr[k].key, p->key);
        if (hit && p->type == 'd') {
            continue;
        }
        msgpack_pack_object(&pk, m->ptr[k].key);
        hit ? pack_patch(&pk, p) : (void)msgpack_pack_object(&pk, m->ptr[k].val);
    }
    if (!found) {
        msgpack_pack_str_with_body(&pk, p->key, strlen(p->key));
        pack_patch(&pk, p);
    }
    while (sb.size % 8 != 0) {
        msgpack_sbuffer_write(&sb, "", 1);
    }
    msgpack_unpacked_destroy(&u);
    free(enc);
    *len = sb.size;
    return msgpack_sbuffer_release(&sb);
}

static const char s31[] = "0123456789012345678901234567890";
static const char s32[] = "01234567890123456789012345678901";
static const char s95[] =
    "01234567890123456789012345678901234567890123456789012345678901234567890123"
    "456789012345678901234";
static const char s96[] =
    "01234567890123456789012345678901234567890123456789012345678901234567890123"
    "4567890123456789012345";
static const char s128[] = "0123456789012345678901234567890123456789012345678901234567890123"
                           "4567890123456789012345678901234567890123456789012345678901234567";

struct fo_case {
    enum afc_op op;
    struct patch p;
    int want;
    const char *why_has;
};

static const struct fo_case cases[] = {
    /* observe */
    {AFC_OP_OBSERVE, {"observer", 's', s31, 0}, 0, ""},
    {AFC_OP_OBSERVE, {"observer", 's', s32, 0}, AFC_EMALFORMED, "too long"},
    {AFC_OP_OBSERVE, {"observer", 's', "", 0}, AFC_EMALFORMED, "observer: empty"},
    {AFC_OP_OBSERVE, {"target", 'd', NULL, 0}, AFC_EMALFORMED, "\"target\""},
    {AFC_OP_OBSERVE, {"target", 's', "", 0}, AFC_EMALFORMED, "target: empty"},
    {AFC_OP_OBSERVE, {"healthy", 'u', NULL, 1}, AFC_EMALFORMED, "\"healthy\""},
    {AFC_OP_OBSERVE, {"role", 's', "leader", 0}, AFC_EMALFORMED, "unknown role \"leader\""},
    {AFC_OP_OBSERVE, {"role", 's', "Primary", 0}, AFC_EMALFORMED, "unknown role"},
    {AFC_OP_OBSERVE, {"role", 'u', NULL, 1}, AFC_EMALFORMED, "\"role\""},
    {AFC_OP_OBSERVE, {"role", 's', "primary", 0}, 0, ""},
    {AFC_OP_OBSERVE, {"timeline", 'u', NULL, 1LL << 32}, AFC_EMALFORMED, "32 bits"},
    {AFC_OP_OBSERVE, {"timeline", 'i', NULL, -1}, AFC_EMALFORMED, "\"timeline\""},
    {AFC_OP_OBSERVE, {"lsn", 's', "0/0", 0}, AFC_EMALFORMED, "\"lsn\""},
    {AFC_OP_OBSERVE, {"replay_lsn", 'd', NULL, 0}, AFC_EMALFORMED, "\"replay_lsn\""},
    {AFC_OP_OBSERVE, {"lag_ms", 'u', NULL, 1LL << 32}, AFC_EMALFORMED, "32 bits"},
    {AFC_OP_OBSERVE, {"upstream", 's', s32, 0}, AFC_EMALFORMED, "too long"},
    {AFC_OP_OBSERVE, {"upstream", 's', "", 0}, 0, ""},
    {AFC_OP_OBSERVE, {"local_dead", 'n', NULL, 0}, AFC_EMALFORMED, "\"local_dead\""},
    {AFC_OP_OBSERVE, {"t_obs", 's', "now", 0}, AFC_EMALFORMED, "\"t_obs\""},
    {AFC_OP_OBSERVE, {"t_obs", 'i', NULL, -9}, 0, ""},
    {AFC_OP_OBSERVE, {"valid", 'b', NULL, 1}, 0, ""}, /* unknown key: ignored */
    /* renew */
    {AFC_OP_RENEW, {"region", 'd', NULL, 0}, AFC_EMALFORMED, "\"region\""},
    {AFC_OP_RENEW, {"region", 's', "", 0}, AFC_EMALFORMED, "region: empty"},
    {AFC_OP_RENEW, {"epoch", 'i', NULL, -1}, AFC_EMALFORMED, "\"epoch\""},
    {AFC_OP_RENEW, {"seq", 's', "1", 0}, AFC_EMALFORMED, "\"seq\""},
    /* failover-begin */
    {AFC_OP_FAILOVER_BEGIN, {"expect_epoch", 'd', NULL, 0}, AFC_EMALFORMED, "\"expect_epoch\""},
    {AFC_OP_FAILOVER_BEGIN, {"from", 's', "", 0}, 0, ""}, /* after an abort */
    {AFC_OP_FAILOVER_BEGIN, {"from", 's', s32, 0}, AFC_EMALFORMED, "too long"},
    {AFC_OP_FAILOVER_BEGIN, {"to", 's', "", 0}, AFC_EMALFORMED, "to: empty"},
    {AFC_OP_FAILOVER_BEGIN, {"reason", 's', s95, 0}, 0, ""},
    {AFC_OP_FAILOVER_BEGIN, {"reason", 's', s96, 0}, AFC_EMALFORMED, "too long"},
    {AFC_OP_FAILOVER_BEGIN, {"planned", 'u', NULL, 0}, AFC_EMALFORMED, "\"planned\""},
    {AFC_OP_FAILOVER_BEGIN, {"forced", 'd', NULL, 0}, AFC_EMALFORMED, "\"forced\""},
    {AFC_OP_FAILOVER_BEGIN, {"detected_ms", 's', "x", 0}, AFC_EMALFORMED, "\"detected_ms\""},
    {AFC_OP_FAILOVER_BEGIN, {"old_lsn", 'i', NULL, -2}, AFC_EMALFORMED, "\"old_lsn\""},
    {AFC_OP_FAILOVER_BEGIN, {"term", 'd', NULL, 0}, AFC_EMALFORMED, "\"term\""},
    /* failover-step */
    {AFC_OP_FAILOVER_STEP, {"step", 's', "promoting", 0}, AFC_EMALFORMED, "unknown step"},
    {AFC_OP_FAILOVER_STEP, {"step", 's', "", 0}, AFC_EMALFORMED, "unknown step"},
    {AFC_OP_FAILOVER_STEP, {"step", 'u', NULL, 2}, AFC_EMALFORMED, "\"step\""},
    {AFC_OP_FAILOVER_STEP, {"step", 's', "none", 0}, 0, ""}, /* a name; apply rejects it */
    {AFC_OP_FAILOVER_STEP, {"step", 's', "aborted", 0}, 0, ""},
    {AFC_OP_FAILOVER_STEP, {"epoch", 'd', NULL, 0}, AFC_EMALFORMED, "\"epoch\""},
    {AFC_OP_FAILOVER_STEP, {"timeline", 'u', NULL, 1LL << 32}, AFC_EMALFORMED, "32 bits"},
    {AFC_OP_FAILOVER_STEP, {"lsn", 'b', NULL, 1}, AFC_EMALFORMED, "\"lsn\""},
    {AFC_OP_FAILOVER_STEP, {"detail", 's', s128, 0}, AFC_EMALFORMED, "too long"},
    /* sync-set */
    {AFC_OP_SYNC_SET, {"region", 's', "", 0}, AFC_EMALFORMED, "region: empty"},
    {AFC_OP_SYNC_SET, {"region", 'd', NULL, 0}, AFC_EMALFORMED, "\"region\""},
    {AFC_OP_SYNC_SET, {"epoch", 'i', NULL, -1}, AFC_EMALFORMED, "\"epoch\""},
    {AFC_OP_SYNC_SET, {"active", 'u', NULL, 1}, AFC_EMALFORMED, "\"active\""},
    {AFC_OP_SYNC_SET, {"standbys", 'd', NULL, 0}, AFC_EMALFORMED, "standbys: missing"},
    {AFC_OP_SYNC_SET, {"standbys", 's', "eu-west-1", 0}, AFC_EMALFORMED, "not an array"},
    {AFC_OP_SYNC_SET, {"standbys", 'a', "", 0}, 0, ""}, /* active, waiting on nobody (strict) */
    {AFC_OP_SYNC_SET, {"standbys", 'a', "eu-west-1", 0}, 0, ""},
    {AFC_OP_SYNC_SET, {"standbys", 'a', s31, 0}, 0, ""},
    {AFC_OP_SYNC_SET, {"standbys", 'a', s32, 0}, AFC_EMALFORMED, "standbys[0]: not a name"},
    {AFC_OP_SYNC_SET, {"standbys", 'a', "eu-west-1|", 0}, AFC_EMALFORMED, "empty"},
    {AFC_OP_SYNC_SET, {"standbys", 'a', "eu-west-1|eu-west-1", 0}, AFC_EMALFORMED, "twice"},
    {AFC_OP_SYNC_SET, {"standbys", 'a', "us-east-2", 0}, AFC_EMALFORMED, "lists itself"},
    {AFC_OP_SYNC_SET, {"standbys", 'a', "a|b|c|d|e|f|g|h|i|j", 0}, AFC_EMALFORMED, "max 9"},
    {AFC_OP_SYNC_SET, {"active", 'b', NULL, 0}, AFC_EMALFORMED, "while not active"},
    {AFC_OP_SYNC_SET, {"detail", 's', s128, 0}, AFC_EMALFORMED, "too long"},
};

static void test_decode_broken_fields(void)
{
    for (size_t k = 0; k < N(cases); k++) {
        const struct fo_case *t = &cases[k];
        struct afc_cmd c = sample(t->op), d;
        struct afc_err why = {0};
        size_t len = 0;
        void *buf = patched(&c, &t->p, &len);
        REQUIRE(buf != NULL);
        int rc = afc_cmd_decode(buf, len, &d, &why);
        if (rc != t->want || strstr(why.msg, t->why_has) == NULL) {
            fprintf(stderr, "  case %zu (%s %s): rc %d (want %d), why \"%s\" (want \"%s\")\n", k,
                    afc_op_name(t->op), t->p.key, rc, t->want, why.msg, t->why_has);
            test_failed_checks++;
        }
        if (rc == 0) { /* whatever decodes re-encodes */
            void *again;
            size_t again_len;
            CHECK_EQ_INT(afc_cmd_encode(&d, &again, &again_len), 0);
            free(again);
        }
        free(buf);
    }
}

static void test_decoded_values(void)
{
    struct afc_cmd c = sample(AFC_OP_FAILOVER_STEP), d;
    struct patch p = {"step", 's', "fenced", 0};
    size_t len;
    void *buf = patched(&c, &p, &len);
    REQUIRE(afc_cmd_decode(buf, len, &d, NULL) == 0);
    CHECK_EQ_INT(d.u.failover_step.step, AFC_FO_FENCED);
    CHECK(d.u.failover_step.timeline == UINT32_MAX);
    free(buf);
    c = sample(AFC_OP_OBSERVE);
    struct patch q = {"role", 's', "primary", 0};
    buf = patched(&c, &q, &len);
    REQUIRE(afc_cmd_decode(buf, len, &d, NULL) == 0);
    CHECK_EQ_INT(d.u.observe.obs.role, AFC_PG_PRIMARY);
    CHECK(!d.u.observe.obs.valid); /* set by apply, never by the wire */
    CHECK_EQ_STR(d.u.observe.obs.upstream, "us-east-2");
    free(buf);
}

static void test_encode_rejects_invalid(void)
{
    void *buf = NULL;
    size_t len = 0;
    struct afc_cmd c = sample(AFC_OP_OBSERVE);
    c.u.observe.obs.role = (enum afc_pg_role)3;
    CHECK_EQ_INT(afc_cmd_encode(&c, &buf, &len), AFC_EINVAL);
    c = sample(AFC_OP_OBSERVE);
    memset(c.u.observe.obs.upstream, 'u', sizeof c.u.observe.obs.upstream);
    CHECK_EQ_INT(afc_cmd_encode(&c, &buf, &len), AFC_EINVAL);
    c = sample(AFC_OP_OBSERVE);
    c.u.observe.target[0] = '\0';
    CHECK_EQ_INT(afc_cmd_encode(&c, &buf, &len), AFC_EINVAL);
    c = sample(AFC_OP_RENEW);
    memset(c.u.renew.region, 'r', sizeof c.u.renew.region);
    CHECK_EQ_INT(afc_cmd_encode(&c, &buf, &len), AFC_EINVAL);
    c = sample(AFC_OP_FAILOVER_BEGIN);
    c.u.failover_begin.to[0] = '\0';
    CHECK_EQ_INT(afc_cmd_encode(&c, &buf, &len), AFC_EINVAL);
    c = sample(AFC_OP_FAILOVER_BEGIN);
    memset(c.u.failover_begin.reason, 'x', sizeof c.u.failover_begin.reason);
    CHECK_EQ_INT(afc_cmd_encode(&c, &buf, &len), AFC_EINVAL);
    c = sample(AFC_OP_FAILOVER_STEP);
    c.u.failover_step.step = AFC_FO__COUNT;
    CHECK_EQ_INT(afc_cmd_encode(&c, &buf, &len), AFC_EINVAL);
    c = sample(AFC_OP_SYNC_SET);
    c.u.sync_set.active = false; /* asynchronous names no standby */
    CHECK_EQ_INT(afc_cmd_encode(&c, &buf, &len), AFC_EINVAL);
    c = sample(AFC_OP_SYNC_SET);
    c.u.sync_set.n_standbys = AFC_MAX_MEMBERS + 1;
    CHECK_EQ_INT(afc_cmd_encode(&c, &buf, &len), AFC_EINVAL);
    c = sample(AFC_OP_SYNC_SET);
    snprintf(c.u.sync_set.standbys[1], AFC_NAME_MAX, "us-east-2");
    CHECK_EQ_INT(afc_cmd_encode(&c, &buf, &len), AFC_EINVAL);
    CHECK(buf == NULL);
    c = sample(AFC_OP_SYNC_SET); /* asynchronous, no standbys: fine */
    c.u.sync_set.active = false;
    c.u.sync_set.n_standbys = 0;
    CHECK_EQ_INT(afc_cmd_encode(&c, &buf, &len), 0);
    struct afc_cmd d;
    REQUIRE(afc_cmd_decode(buf, len, &d, NULL) == 0);
    CHECK(!d.u.sync_set.active && d.u.sync_set.n_standbys == 0);
    free(buf);
}

static void test_names_and_table(void)
{
    CHECK_EQ_STR(afc_op_name(AFC_OP_OBSERVE), "observe");
    CHECK_EQ_STR(afc_op_name(AFC_OP_RENEW), "renew");
    CHECK_EQ_STR(afc_op_name(AFC_OP_FAILOVER_BEGIN), "failover-begin");
    CHECK_EQ_STR(afc_op_name(AFC_OP_FAILOVER_STEP), "failover-step");
    CHECK_EQ_STR(afc_op_name(AFC_OP_SYNC_SET), "sync-set");
    CHECK_EQ_STR(afc_pg_role_name(AFC_PG_UNKNOWN), "unknown");
    CHECK_EQ_STR(afc_pg_role_name(AFC_PG_PRIMARY), "primary");
    CHECK_EQ_STR(afc_pg_role_name(AFC_PG_REPLICA), "replica");
    CHECK_EQ_STR(afc_pg_role_name((enum afc_pg_role)9), "invalid");
    static const char *const want[] = {"none", "decided", "fenced", "promoted", "done", "aborted"};
    for (int s = 0; s < AFC_FO__COUNT; s++) {
        CHECK_EQ_STR(afc_fo_step_name((enum afc_fo_step)s), want[s]);
    }
    CHECK_EQ_STR(afc_fo_step_name(AFC_FO__COUNT), "unknown");
    /* the whole table: exactly the five documented transitions */
    unsigned legal = 0;
    for (int a = 0; a <= AFC_FO__COUNT; a++) {
        for (int b = 0; b <= AFC_FO__COUNT; b++) {
            legal += afc_fo_step_allowed((enum afc_fo_step)a, (enum afc_fo_step)b);
        }
    }
    CHECK_EQ_INT(legal, 5);
    CHECK(afc_fo_step_allowed(AFC_FO_DECIDED, AFC_FO_FENCED));
    CHECK(afc_fo_step_allowed(AFC_FO_DECIDED, AFC_FO_ABORTED));
    CHECK(afc_fo_step_allowed(AFC_FO_FENCED, AFC_FO_PROMOTED));
    CHECK(afc_fo_step_allowed(AFC_FO_FENCED, AFC_FO_ABORTED));
    CHECK(afc_fo_step_allowed(AFC_FO_PROMOTED, AFC_FO_DONE));
    CHECK(!afc_fo_step_allowed(AFC_FO_PROMOTED, AFC_FO_ABORTED));
    CHECK(afc_fo_step_is_final(AFC_FO_NONE) && afc_fo_step_is_final(AFC_FO_DONE) &&
          afc_fo_step_is_final(AFC_FO_ABORTED));
    CHECK(!afc_fo_step_is_final(AFC_FO_DECIDED) && !afc_fo_step_is_final(AFC_FO_FENCED) &&
          !afc_fo_step_is_final(AFC_FO_PROMOTED));
}

int main(void)
{
    TEST_RUN(test_decode_broken_fields);
    TEST_RUN(test_decoded_values);
    TEST_RUN(test_encode_rejects_invalid);
    TEST_RUN(test_names_and_table);
    TEST_END();
}
