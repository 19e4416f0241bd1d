/*
 * Command codec tests: round trip of every op, a pinned encoding, malformed inputs (hand-built
 * maps, truncations, random bytes and random mutations from a fixed-seed PRNG), version and size
 * limits, padding.
 */
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "afc/state.h"
#include "tests/test.h"
#include "tests/unit/failover_samples.h"

/* ---- helpers ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void set_member(struct afc_member *m, afc_region_id id, const char *name)
{
    memset(m, 0, sizeof *m);
    m->id = id;
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->raft_addr, sizeof m->raft_addr, "10.0.0.%u:7000", (unsigned)id);
    snprintf(m->api_url, sizeof m->api_url, "https://10.0.0.%u:8443", (unsigned)id);
}

static struct afc_cmd sample(enum afc_op op)
{
    struct afc_cmd c;
    memset(&c, 0, sizeof c);
    c.op = op;
    c.wall_ms = 1718000000123;
    snprintf(c.by, sizeof c.by, "us-east-2");
    switch (op) {
    case AFC_OP_INIT:
        c.u.init.n_members = 3;
        set_member(&c.u.init.members[0], 1, "us-east-2");
        set_member(&c.u.init.members[1], 2, "eu-west-1");
        set_member(&c.u.init.members[2], 3, "ap-south-1");
        break;
    case AFC_OP_PAUSE:
        c.u.pause.paused = true;
        snprintf(c.u.pause.reason, sizeof c.u.pause.reason, "maintenance window");
        break;
    case AFC_OP_PROMOTE:
        snprintf(c.u.promote.region, sizeof c.u.promote.region, "eu-west-1");
        c.u.promote.expect_epoch = 41;
        snprintf(c.u.promote.reason, sizeof c.u.promote.reason, "lease expired");
        break;
    case AFC_OP_DIGEST:
        c.u.digest.at_index = 123456789;
        c.u.digest.digest = 0xfedcba9876543210ULL;
        break;
    case AFC_OP_NOTE:
        snprintf(c.u.note.kind, sizeof c.u.note.kind, "failover-decided");
        snprintf(c.u.note.detail, sizeof c.u.note.detail, "epoch=7 from=a to=b");
        break;
    default:
        sample_failover(&c);
        break;
    }
    return c;
}

static bool members_equal(const struct afc_cmd *a, const struct afc_cmd *b)
{
    if (a->u.init.n_members != b->u.init.n_members) {
        return false;
    }
    for (unsigned i = 0; i < a->u.init.n_members; i++) {
        const struct afc_member *x = &a->u.init.members[i], *y = &b->u.init.members[i];
        if (x->id != y->id || strcmp(x->name, y->name) || strcmp(x->raft_addr, y->raft_addr) ||
            strcmp(x->api_url, y->api_url)) {
            return false;
        }
    }
    return true;
}

static bool cmd_equal(const struct afc_cmd *a, const struct afc_cmd *b)
{
    if (a->op != b->op || a->wall_ms != b->wall_ms || strcmp(a->by, b->by) != 0) {
        return false;
    }
    switch (a->op) {
    case AFC_OP_INIT:
        return members_equal(a, b);
    case AFC_OP_PAUSE:
        return a->u.pause.paused == b->u.pause.paused &&
               strcmp(a->u.pause.reason, b->u.pause.reason) == 0;
    case AFC_OP_PROMOTE:
        return strcmp(a->u.promote.region, b->u.promote.region) == 0 &&
               a->u.promote.expect_epoch == b->u.promote.expect_epoch &&
               strcmp(a->u.promote.reason, b->u.promote.reason) == 0;
    case AFC_OP_DIGEST:
        return a->u.digest.at_index == b->u.digest.at_index &&
               a->u.digest.digest == b->u.digest.digest;
    case AFC_OP_NOTE:
        return strcmp(a->u.note.kind, b->u.note.kind) == 0 &&
               strcmp(a->u.note.detail, b->u.note.detail) == 0;
    default:
        return failover_cmd_equal(a, b);
    }
}

/* A hand-built map: each entry is a key and a typed value. */
struct kv {
    const char *key;
    char type; /* s=str u=uint i=int b=bool n=nil a=array of `u` nils m=map raw=R (no value) */
    const char *s;
    int64_t i;
};

static void pack_value(msgpack_packer *pk, const struct kv *e)
{
    switch (e->type) {
    case 's':
        msgpack_pack_str(pk, strlen(e->s));
        msgpack_pack_str_body(pk, e->s, strlen(e->s));
        break;
    case 'u':
        msgpack_pack_uint64(pk, (uint64_t)e->i);
        break;
    case 'i':
        msgpack_pack_int64(pk, e->i);
        break;
    case 'b':
        e->i ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        break;
    case 'a':
        msgpack_pack_array(pk, (size_t)e->i);
        for (int64_t k = 0; k < e->i; k++) {
            msgpack_pack_nil(pk);
        }
        break;
    default:
        msgpack_pack_nil(pk);
        break;
    }
}

/* Pack a map of `n` entries into a malloc'd buffer padded to 8. */
static void *build(const struct kv *kvs, size_t n, size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, n);
    for (size_t k = 0; k < n; k++) {
        msgpack_pack_str(&pk, strlen(kvs[k].key));
        msgpack_pack_str_body(&pk, kvs[k].key, strlen(kvs[k].key));
        pack_value(&pk, &kvs[k]);
    }
    while (sb.size % 8 != 0) {
        msgpack_sbuffer_write(&sb, "", 1);
    }
    *len = sb.size;
    return msgpack_sbuffer_release(&sb);
}

static int decode_kvs(const struct kv *kvs, size_t n, struct afc_cmd *out, struct afc_err *why)
{
    size_t len = 0;
    void *buf = build(kvs, n, &len);
    int rc = afc_cmd_decode(buf, len, out, why);
    free(buf);
    return rc;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char long127[] = "0123456789012345678901234567890123456789012345678901234567890123"
                              "456789012345678901234567890123456789012345678901234567890123456";
static const char long128[] = "0123456789012345678901234567890123456789012345678901234567890123"
                              "4567890123456789012345678901234567890123456789012345678901234567";

/* ---- tests ---- */

static void test_round_trip_every_op(void)
{
    for (int op = 0; op < AFC_OP__COUNT; op++) {
        struct afc_cmd c = sample((enum afc_op)op), d, e;
        void *buf = NULL, *buf2 = NULL;
        size_t len = 0, len2 = 0;
        struct afc_err why = {0};
        REQUIRE(afc_cmd_encode(&c, &buf, &len) == 0);
        CHECK_EQ_INT(len % 8, 0);
        CHECK(len <= AFC_CMD_MAX_SIZE);
        CHECK_EQ_INT(afc_cmd_decode(buf, len, &d, &why), 0);
        CHECK(cmd_equal(&c, &d));
        /* canonical: re-encoding the decoded command gives the same bytes */
        CHECK_EQ_INT(afc_cmd_encode(&d, &buf2, &len2), 0);
        CHECK(len2 == len && memcmp(buf, buf2, len) == 0);
        /* more zero padding is still padding */
        unsigned char *big = calloc(1, len + 24);
        memcpy(big, buf, len);
        CHECK_EQ_INT(afc_cmd_decode(big, len + 24, &e, NULL), 0);
        CHECK(cmd_equal(&c, &e));
        free(big);
        free(buf);
        free(buf2);
    }
}

static void test_round_trip_edges(void)
{
    struct afc_cmd c = sample(AFC_OP_INIT), d;
    void *buf;
    size_t len;
    c.wall_ms = -5; /* negative wall clock still round-trips */
    c.u.init.n_members = AFC_MAX_MEMBERS;
    for (unsigned i = 0; i < AFC_MAX_MEMBERS; i++) {
        char name[AFC_NAME_MAX];
        snprintf(name, sizeof name, "%.*s%u", 29, long127, i); /* 30 chars: near the limit */
        set_member(&c.u.init.members[i], 100 + i, name);
        memset(c.u.init.members[i].api_url, 'u', AFC_URL_MAX - 1);
        c.u.init.members[i].api_url[AFC_URL_MAX - 1] = '\0';
    }
    REQUIRE(afc_cmd_encode(&c, &buf, &len) == 0);
    CHECK_EQ_INT(len % 8, 0);
    CHECK_EQ_INT(afc_cmd_decode(buf, len, &d, NULL), 0);
    CHECK(cmd_equal(&c, &d));
    free(buf);

    c = sample(AFC_OP_PROMOTE);
    c.u.promote.expect_epoch = UINT64_MAX;
    c.wall_ms = INT64_MIN;
    snprintf(c.u.promote.reason, sizeof c.u.promote.reason, "%s", long127);
    REQUIRE(afc_cmd_encode(&c, &buf, &len) == 0);
    CHECK_EQ_INT(afc_cmd_decode(buf, len, &d, NULL), 0);
    CHECK(cmd_equal(&c, &d));
    free(buf);
}

/* The wire format must not drift silently: this is the exact encoding of one pause command. */
static void test_pinned_encoding(void)
{
    static const unsigned char want[] = {
        0x86, 0xa1, 'v',  0x01, 0xa2, 'o',  'p',  0xa5, 'p',  'a', 'u', 's', 'e',  0xa6, 'p', 'a',
        'u',  's',  'e',  'd',  0xc3, 0xa6, 'r',  'e',  'a',  's', 'o', 'n', 0xa2, 'u',  'p', 0xa2,
        'b',  'y',  0xa1, 'x',  0xa1, 't',  0xcd, 0x03, 0xe8, 0,   0,   0,   0,    0,    0,   0,
    };
    struct afc_cmd c;
    memset(&c, 0, sizeof c);
    c.op = AFC_OP_PAUSE;
    c.u.pause.paused = true;
    snprintf(c.u.pause.reason, sizeof c.u.pause.reason, "up");
    snprintf(c.by, sizeof c.by, "x");
    c.wall_ms = 1000;
    void *buf;
    size_t len;
    REQUIRE(afc_cmd_encode(&c, &buf, &len) == 0);
    CHECK_EQ_INT(len, sizeof want);
    CHECK(len == sizeof want && memcmp(buf, want, len) == 0);
    free(buf);
}

static void test_encode_rejects_invalid(void)
{
    struct afc_cmd c;
    void *buf = NULL;
    size_t len = 0;

    c = sample(AFC_OP_NOTE);
    c.op = AFC_OP__COUNT;
    CHECK_EQ_INT(afc_cmd_encode(&c, &buf, &len), AFC_EINVAL);
    c = sample(AFC_OP_NOTE);
    memset(c.by, 'x', sizeof c.by); /* unterminated */
    CHECK_EQ_INT(afc_cmd_encode(&c, &buf, &len), AFC_EINVAL);
    c = sample(AFC_OP_NOTE);
    c.u.note.kind[0] = '\0';
    CHECK_EQ_INT(afc_cmd_encode(&c, &buf, &len), AFC_EINVAL);
    c = sample(AFC_OP_PAUSE);
    memset(c.u.pause.reason, 'r', sizeof c.u.pause.reason);
    CHECK_EQ_INT(afc_cmd_encode(&c, &buf, &len), AFC_EINVAL);
    c = sample(AFC_OP_INIT);
    c.u.init.n_members = 0;
    CHECK_EQ_INT(afc_cmd_encode(&c, &buf, &len), AFC_EINVAL);
    c.u.init.n_members = AFC_MAX_MEMBERS + 1;
    CHECK_EQ_INT(afc_cmd_encode(&c, &buf, &len), AFC_EINVAL);
    c = sample(AFC_OP_INIT);
    c.u.init.members[2].id = 1; /* duplicate id */
    CHECK_EQ_INT(afc_cmd_encode(&c, &buf, &len), AFC_EINVAL);
    c = sample(AFC_OP_INIT);
    snprintf(c.u.init.members[2].name, AFC_NAME_MAX, "us-east-2"); /* duplicate name */
    CHECK_EQ_INT(afc_cmd_encode(&c, &buf, &len), AFC_EINVAL);
    c = sample(AFC_OP_INIT);
    c.u.init.members[1].id = 0;
    CHECK_EQ_INT(afc_cmd_encode(&c, &buf, &len), AFC_EINVAL);
    c = sample(AFC_OP_INIT);
    c.u.init.members[1].name[0] = '\0';
    CHECK_EQ_INT(afc_cmd_encode(&c, &buf, &len), AFC_EINVAL);
    CHECK(buf == NULL);
}

/* Valid base fields for a pause command, to which each case adds or breaks one thing. */
#define PAUSE_BASE                                                                                 \
    {"v", 'u', NULL, 1}, {"op", 's', "pause", 0}, {"by", 's', "us-east-2", 0},                     \
    {                                                                                              \
        "t", 'i', NULL, 5                                                                          \
    }

static void test_decode_hand_built(void)
{
    struct afc_cmd c;
    struct afc_err why = {0};
    const struct kv ok[] = {PAUSE_BASE, {"paused", 'b', NULL, 1}, {"reason", 's', "r", 0}};
    CHECK_EQ_INT(decode_kvs(ok, N(ok), &c, &why), 0);
    CHECK(c.op == AFC_OP_PAUSE && c.u.pause.paused && c.wall_ms == 5);

    /* unknown extra keys are ignored (forward compatibility) */
    const struct kv extra[] = {
        PAUSE_BASE, {"paused", 'b', NULL, 0}, {"reason", 's', "r", 0}, {"future", 'a', NULL, 3}};
    CHECK_EQ_INT(decode_kvs(extra, N(extra), &c, &why), 0);
    CHECK(c.op == AFC_OP_PAUSE && !c.u.pause.paused);

    /* reason of 127 bytes fits exactly */
    const struct kv fits[] = {PAUSE_BASE, {"paused", 'b', NULL, 1}, {"reason", 's', long127, 0}};
    CHECK_EQ_INT(decode_kvs(fits, N(fits), &c, &why), 0);
    CHECK_EQ_STR(c.u.pause.reason, long127);
}

struct bad_case {
    const char *name;
    struct kv kvs[8];
    size_t n;
    int want;
    const char *why_has;
};

static const struct bad_case bad_cases[] = {
    {"missing v", {{"op", 's', "note", 0}}, 1, AFC_EMALFORMED, "\"v\""},
    {"v string", {{"v", 's', "1", 0}, {"op", 's', "note", 0}}, 2, AFC_EMALFORMED, "\"v\""},
    {"v negative", {{"v", 'i', NULL, -1}}, 1, AFC_EMALFORMED, "\"v\""},
    {"v 2", {{"v", 'u', NULL, 2}, {"op", 's', "warp", 0}}, 2, AFC_EVERSION, "version 2"},
    {"v 0", {{"v", 'u', NULL, 0}}, 1, AFC_EVERSION, "version 0"},
    {"missing op",
     {{"v", 'u', NULL, 1}, {"by", 's', "x", 0}, {"t", 'u', NULL, 1}},
     3,
     AFC_EMALFORMED,
     "\"op\""},
    {"op int", {{"v", 'u', NULL, 1}, {"op", 'u', NULL, 2}}, 2, AFC_EMALFORMED, "\"op\""},
    {"unknown op", {{"v", 'u', NULL, 1}, {"op", 's', "explode", 0}}, 2, AFC_EMALFORMED, "explode"},
    {"missing by",
     {{"v", 'u', NULL, 1},
      {"op", 's', "digest", 0},
      {"t", 'u', NULL, 1},
      {"at_index", 'u', 0, 1},
      {"digest", 'u', 0, 1}},
     5,
     AFC_EMALFORMED,
     "\"by\""},
    {"missing t",
     {{"v", 'u', NULL, 1},
      {"op", 's', "digest", 0},
      {"by", 's', "x", 0},
      {"at_index", 'u', 0, 1},
      {"digest", 'u', 0, 1}},
     5,
     AFC_EMALFORMED,
     "\"t\""},
    {"t string",
     {{"v", 'u', NULL, 1},
      {"op", 's', "pause", 0},
      {"by", 's', "x", 0},
      {"t", 's', "now", 0},
      {"paused", 'b', 0, 1},
      {"reason", 's', "", 0}},
     6,
     AFC_EMALFORMED,
     "\"t\""},
    {"duplicate t", {PAUSE_BASE, {"t", 'u', NULL, 6}}, 5, AFC_EMALFORMED, "duplicate key \"t\""},
    {"t huge",
     {{"v", 'u', NULL, 1},
      {"op", 's', "pause", 0},
      {"by", 's', "x", 0},
      {"t", 'u', NULL, -1},
      {"paused", 'b', 0, 1},
      {"reason", 's', "", 0}},
     6,
     AFC_EMALFORMED,
     "\"t\""},
    {"paused int",
     {PAUSE_BASE, {"paused", 'u', NULL, 1}, {"reason", 's', "", 0}},
     6,
     AFC_EMALFORMED,
     "\"paused\""},
    {"missing reason", {PAUSE_BASE, {"paused", 'b', NULL, 1}}, 5, AFC_EMALFORMED, "\"reason\""},
    {"reason too long",
     {PAUSE_BASE, {"paused", 'b', NULL, 1}, {"reason", 's', long128, 0}},
     6,
     AFC_EMALFORMED,
     "too long"},
    {"reason nil",
     {PAUSE_BASE, {"paused", 'b', NULL, 1}, {"reason", 'n', NULL, 0}},
     6,
     AFC_EMALFORMED,
     "\"reason\""},
    {"by too long",
     {{"v", 'u', NULL, 1},
      {"op", 's', "pause", 0},
      {"by", 's', "0123456789012345678901234567890123", 0},
      {"t", 'u', NULL, 1},
      {"paused", 'b', 0, 1},
      {"reason", 's', "", 0}},
     6,
     AFC_EMALFORMED,
     "too long"},
    {"duplicate op", {PAUSE_BASE, {"op", 's', "promote", 0}}, 5, AFC_EMALFORMED, "duplicate"},
    {"promote expect_epoch negative",
     {{"v", 'u', NULL, 1},
      {"op", 's', "promote", 0},
      {"by", 's', "x", 0},
      {"t", 'u', NULL, 1},
      {"region", 's', "eu", 0},
      {"expect_epoch", 'i', NULL, -3},
      {"reason", 's', "", 0}},
     7,
     AFC_EMALFORMED,
     "\"expect_epoch\""},
    {"promote region too long",
     {{"v", 'u', NULL, 1},
      {"op", 's', "promote", 0},
      {"by", 's', "x", 0},
      {"t", 'u', NULL, 1},
      {"region", 's', "0123456789012345678901234567890123", 0},
      {"expect_epoch", 'u', NULL, 3},
      {"reason", 's', "", 0}},
     7,
     AFC_EMALFORMED,
     "too long"},
    {"note empty kind",
     {{"v", 'u', NULL, 1},
      {"op", 's', "note", 0},
      {"by", 's', "x", 0},
      {"t", 'u', NULL, 1},
      {"kind", 's', "", 0},
      {"detail", 's', "d", 0}},
     6,
     AFC_EMALFORMED,
     "empty kind"},
    {"digest missing at_index",
     {{"v", 'u', NULL, 1},
      {"op", 's', "digest", 0},
      {"by", 's', "x", 0},
      {"t", 'u', NULL, 1},
      {"digest", 'u', NULL, 7}},
     5,
     AFC_EMALFORMED,
     "\"at_index\""},
    {"init members not array",
     {{"v", 'u', NULL, 1},
      {"op", 's', "init", 0},
      {"by", 's', "x", 0},
      {"t", 'u', NULL, 1},
      {"members", 's', "all", 0}},
     5,
     AFC_EMALFORMED,
     "members"},
    {"init member not a map",
     {{"v", 'u', NULL, 1},
      {"op", 's', "init", 0},
      {"by", 's', "x", 0},
      {"t", 'u', NULL, 1},
      {"members", 'a', NULL, 2}},
     5,
     AFC_EMALFORMED,
     "not a map"},
    {"init too many members",
     {{"v", 'u', NULL, 1},
      {"op", 's', "init", 0},
      {"by", 's', "x", 0},
      {"t", 'u', NULL, 1},
      {"members", 'a', NULL, AFC_MAX_MEMBERS + 1}},
     5,
     AFC_EMALFORMED,
     "max"},
    {"init no members",
     {{"v", 'u', NULL, 1},
      {"op", 's', "init", 0},
      {"by", 's', "x", 0},
      {"t", 'u', NULL, 1},
      {"members", 'a', NULL, 0}},
     5,
     AFC_EMALFORMED,
     "empty member list"},
};

static void test_decode_bad_cases(void)
{
    for (size_t k = 0; k < N(bad_cases); k++) {
        const struct bad_case *b = &bad_cases[k];
        struct afc_cmd c;
        struct afc_err why = {0};
        int rc = decode_kvs(b->kvs, b->n, &c, &why);
        if (rc != b->want || strstr(why.msg, b->why_has) == NULL) {
            fprintf(stderr, "  case \"%s\": rc %d (want %d), why \"%s\" (want \"%s\")\n", b->name,
                    rc, b->want, why.msg, b->why_has);
            test_failed_checks++;
        }
    }
}

/* Member-level errors: encode a valid init, then patch members through a raw msgpack build. */
static void *build_init(const char *names[3], const uint64_t ids[3], bool drop_api, size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    const struct kv head[] = {
        {"v", 'u', NULL, 1}, {"op", 's', "init", 0}, {"by", 's', "x", 0}, {"t", 'u', NULL, 9}};
    for (size_t k = 0; k < N(head); k++) {
        msgpack_pack_str_with_body(&pk, head[k].key, strlen(head[k].key));
        pack_value(&pk, &head[k]);
    }
    msgpack_pack_str_with_body(&pk, "members", 7);
    msgpack_pack_array(&pk, 3);
    for (int m = 0; m < 3; m++) {
        bool drop = drop_api && m == 2;
        msgpack_pack_map(&pk, drop ? 3 : 4);
        const struct kv f[] = {{"id", 'u', NULL, (int64_t)ids[m]},
                               {"name", 's', names[m], 0},
                               {"raft", 's', "1.2.3.4:5", 0},
                               {"api", 's', "http://a", 0}};
        for (size_t k = 0; k < (drop ? 3u : 4u); k++) {
            msgpack_pack_str_with_body(&pk, f[k].key, strlen(f[k].key));
            pack_value(&pk, &f[k]);
        }
    }
    *len = sb.size;
    return msgpack_sbuffer_release(&sb);
}

static void test_decode_bad_members(void)
{
    const char *good[3] = {"a", "b", "c"}, *dup[3] = {"a", "b", "a"}, *empty[3] = {"a", "", "c"};
    const uint64_t ids[3] = {1, 2, 3}, dup_ids[3] = {1, 2, 2}, zero_id[3] = {0, 2, 3};
    struct {
        const char **names;
        const uint64_t *ids;
        bool drop_api;
        int want;
        const char *why_has;
    } cases[] = {
        {good, ids, false, 0, ""},
        {dup, ids, false, AFC_EMALFORMED, "duplicate name"},
        {empty, ids, false, AFC_EMALFORMED, "empty name"},
        {good, dup_ids, false, AFC_EMALFORMED, "duplicate id"},
        {good, zero_id, false, AFC_EMALFORMED, "id must be >= 1"},
        {good, ids, true, AFC_EMALFORMED, "\"api\""},
    };
    for (size_t k = 0; k < N(cases); k++) {
        size_t len;
        void *buf = build_init(cases[k].names, cases[k].ids, cases[k].drop_api, &len);
        struct afc_cmd c;
        struct afc_err why = {0};
        int rc = afc_cmd_decode(buf, len, &c, &why);
        CHECK_EQ_INT(rc, cases[k].want);
        CHECK_CONTAINS(why.msg, cases[k].why_has);
        if (rc == 0) {
            CHECK(c.op == AFC_OP_INIT && c.u.init.n_members == 3 && c.u.init.members[2].id == 3);
        }
        free(buf);
    }
}

static void test_decode_raw_bytes(void)
{
    struct afc_cmd c;
    struct afc_err why = {0};
    static const unsigned char nul_in_str[] = {0x84, 0xa1, 'v',  0x01, 0xa2, 'o', 'p',  0xa4,
                                               'n',  'o',  0x00, 'e', /* "no\0e" */
                                               0xa2, 'b',  'y',  0xa0, 0xa1, 't', 0x00, 0x00};
    static const unsigned char dup_key[] = {0x82, 0xa1, 'v', 0x01, 0xa1, 'v', 0x01, 0x00};
    static const unsigned char int_key[] = {0x81, 0x01, 0x01, 0, 0, 0, 0, 0};
    static const unsigned char not_map[] = {0x93, 0x01, 0x02, 0x03, 0, 0, 0, 0};
    static const unsigned char huge_array[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0, 0, 0};
    static const unsigned char huge_map[] = {0xdf, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0};
    static const unsigned char huge_str[] = {0xdb, 0xff, 0xff, 0xff, 0xf0, 'a', 0, 0};
    static const unsigned char reserved[] = {0xc1, 0, 0, 0, 0, 0, 0, 0};
    struct {
        const unsigned char *buf;
        size_t len;
        const char *why_has;
    } cases[] = {
        {nul_in_str, sizeof nul_in_str, "NUL"},       {dup_key, sizeof dup_key, "duplicate"},
        {int_key, sizeof int_key, "non-string key"},  {not_map, sizeof not_map, "not a map"},
        {huge_array, sizeof huge_array, "truncated"}, {huge_map, sizeof huge_map, "truncated"},
        {huge_str, sizeof huge_str, "truncated"},     {reserved, sizeof reserved, "invalid"},
        {(const unsigned char *)"", 0, "empty"},
    };
    for (size_t k = 0; k < N(cases); k++) {
        why.msg[0] = '\0';
        CHECK_EQ_INT(afc_cmd_decode(cases[k].buf, cases[k].len, &c, &why), AFC_EMALFORMED);
        CHECK_CONTAINS(why.msg, cases[k].why_has);
    }
    CHECK_EQ_INT(afc_cmd_decode(NULL, 0, &c, NULL), AFC_EMALFORMED);

    /* nesting deeper than msgpack-c's stack: rejected, not crashed */
    unsigned char deep[512];
    memset(deep, 0x91, sizeof deep);
    deep[sizeof deep - 1] = 0x00;
    CHECK_EQ_INT(afc_cmd_decode(deep, sizeof deep, &c, NULL), AFC_EMALFORMED);

    /* an unknown key nesting 15 arrays deep (16 levels with the map) is accepted, 16 is not */
    for (int depth = 15; depth <= 16; depth++) {
        size_t len;
        const struct kv base[] = {
            {"v", 'u', NULL, 1},   {"op", 's', "note", 0}, {"by", 's', "x", 0}, {"t", 'u', NULL, 1},
            {"kind", 's', "k", 0}, {"detail", 's', "", 0}, {"zz", 'n', NULL, 0}};
        unsigned char *buf = build(base, N(base), &len);
        unsigned char *nested = calloc(1, len + 32);
        size_t nil_at = len - 1;
        while (buf[nil_at] != 0xc0) { /* the value of "zz" is the last non-zero byte */
            nil_at--;
        }
        memcpy(nested, buf, nil_at);
        memset(nested + nil_at, 0x91, (size_t)depth);
        nested[nil_at + (size_t)depth] = 0xc0;
        int rc = afc_cmd_decode(nested, len + 32, &c, &why);
        CHECK_EQ_INT(rc, depth == 15 ? 0 : AFC_EMALFORMED);
        free(nested);
        free(buf);
    }
}

static void test_trailing_garbage_and_size(void)
{
    struct afc_cmd c = sample(AFC_OP_PROMOTE), d;
    void *buf;
    size_t len;
    REQUIRE(afc_cmd_encode(&c, &buf, &len) == 0);
    unsigned char *big = calloc(1, AFC_CMD_MAX_SIZE + 8);
    REQUIRE(big != NULL);
    memcpy(big, buf, len);
    /* zero padding up to exactly the limit is fine, one byte more is too big */
    CHECK_EQ_INT(afc_cmd_decode(big, AFC_CMD_MAX_SIZE, &d, NULL), 0);
    CHECK(cmd_equal(&c, &d));
    struct afc_err why = {0};
    CHECK_EQ_INT(afc_cmd_decode(big, AFC_CMD_MAX_SIZE + 1, &d, &why), AFC_ETOOBIG);
    CHECK_CONTAINS(why.msg, "4097");
    /* a non-zero byte anywhere after the map */
    for (size_t pos = len - 1; pos < len + 16; pos++) {
        memset(big + len, 0, 16);
        memcpy(big, buf, len);
        if (big[pos] != 0) {
            continue; /* inside the map itself */
        }
        big[pos] = 0x01;
        CHECK_EQ_INT(afc_cmd_decode(big, len + 16, &d, &why), AFC_EMALFORMED);
        CHECK_CONTAINS(why.msg, "non-zero");
    }
    /* a second object (not padding) after the map */
    memset(big + len, 0, 16);
    big[len] = 0xc0;
    CHECK_EQ_INT(afc_cmd_decode(big, len + 8, &d, NULL), AFC_EMALFORMED);
    free(big);
    free(buf);
}

static void test_truncated_prefixes(void)
{
    for (int op = 0; op < AFC_OP__COUNT; op++) {
        struct afc_cmd c = sample((enum afc_op)op), d;
        void *buf;
        size_t len;
        REQUIRE(afc_cmd_encode(&c, &buf, &len) == 0);
        for (size_t cut = 0; cut < len; cut++) {
            int rc = afc_cmd_decode(buf, cut, &d, NULL);
            if (cut + 8 <= len) { /* cuts into the map itself (padding is < 8 bytes) */
                CHECK_EQ_INT(rc, AFC_EMALFORMED);
            } else if (rc == 0) { /* only the padding was cut */
                CHECK(cmd_equal(&c, &d));
            }
        }
        free(buf);
    }
}

/* Any successful decode must yield a command the encoder accepts and that round-trips. */
static void check_fuzz_result(int rc, const struct afc_cmd *d)
{
    if (rc != 0) {
        CHECK(rc == AFC_EMALFORMED || rc == AFC_EVERSION || rc == AFC_ETOOBIG);
        return;
    }
    void *buf;
    size_t len;
    struct afc_cmd e;
    CHECK_EQ_INT(afc_cmd_encode(d, &buf, &len), 0);
    if (buf != NULL) {
        CHECK_EQ_INT(afc_cmd_decode(buf, len, &e, NULL), 0);
        CHECK(cmd_equal(d, &e));
        free(buf);
    }
}

static void test_fuzz_random_bytes(void)
{
    unsigned char buf[320];
    int decoded = 0;
    rng_state = 0x1234567890abcdefULL;
    for (int k = 0; k < 5000; k++) {
        size_t len = rng_next() % sizeof buf;
        for (size_t i = 0; i < len; i++) {
            buf[i] = (unsigned char)rng_next();
        }
        if (k % 2 == 0 && len > 0) {
            buf[0] = (unsigned char)(0x80 | (rng_next() % 16)); /* start with a fixmap */
        }
        struct afc_cmd d;
        int rc = afc_cmd_decode(buf, len, &d, NULL);
        decoded += rc == 0;
        check_fuzz_result(rc, &d);
    }
    printf("     random bytes: %d of 5000 decoded\n", decoded);
}

static void test_fuzz_mutations(void)
{
    int decoded = 0;
    rng_state = 0xdeadbeefcafef00dULL;
    for (int k = 0; k < 5000; k++) {
        struct afc_cmd c = sample((enum afc_op)(k % AFC_OP__COUNT)), d;
        unsigned char *buf;
        size_t len;
        REQUIRE(afc_cmd_encode(&c, (void **)&buf, &len) == 0);
        unsigned flips = 1 + rng_next() % 4;
        for (unsigned f = 0; f < flips; f++) {
            size_t pos = rng_next() % len;
            buf[pos] = rng_next() % 3 == 0 ? (unsigned char)rng_next() : buf[pos] ^ (1u << (k % 8));
        }
        int rc = afc_cmd_decode(buf, len, &d, NULL);
        decoded += rc == 0;
        check_fuzz_result(rc, &d);
        free(buf);
    }
    printf("     mutations: %d of 5000 decoded\n", decoded);
}

static void test_names(void)
{
    CHECK_EQ_STR(afc_op_name(AFC_OP_INIT), "init");
    CHECK_EQ_STR(afc_op_name(AFC_OP_PAUSE), "pause");
    CHECK_EQ_STR(afc_op_name(AFC_OP_PROMOTE), "promote");
    CHECK_EQ_STR(afc_op_name(AFC_OP_DIGEST), "digest");
    CHECK_EQ_STR(afc_op_name(AFC_OP_NOTE), "note");
    CHECK_EQ_STR(afc_op_name(AFC_OP__COUNT), "unknown");
    CHECK_EQ_STR(afc_apply_result_name(AFC_APPLY_OK), "ok");
    CHECK_EQ_STR(afc_apply_result_name(AFC_APPLY_REJECTED_STALE), "rejected-stale");
    CHECK_EQ_STR(afc_apply_result_name(AFC_APPLY_DIVERGED), "diverged");
    CHECK_EQ_STR(afc_apply_result_name((enum afc_apply_result)99), "unknown");
}

int main(void)
{
    TEST_RUN(test_round_trip_every_op);
    TEST_RUN(test_round_trip_edges);
    TEST_RUN(test_pinned_encoding);
    TEST_RUN(test_encode_rejects_invalid);
    TEST_RUN(test_decode_hand_built);
    TEST_RUN(test_decode_bad_cases);
    TEST_RUN(test_decode_bad_members);
    TEST_RUN(test_decode_raw_bytes);
    TEST_RUN(test_trailing_garbage_and_size);
    TEST_RUN(test_truncated_prefixes);
    TEST_RUN(test_fuzz_random_bytes);
    TEST_RUN(test_fuzz_mutations);
    TEST_RUN(test_names);
    TEST_END();
}
