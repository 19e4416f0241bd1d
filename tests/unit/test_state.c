/*
 * State machine tests: apply semantics per op, promote CAS, history ring, rejected commands,
 * digests and the digest ring, snapshot round trip and malformed snapshots, determinism of two
 * fsms fed the same log (and of one restored from a snapshot mid-way).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "afc/state.h"
#include "tests/test.h"

/* ---- helpers ---- */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static const char *const regions[3] = {"us-east-2", "eu-west-1", "ap-south-1"};

static struct afc_cmd mk(enum afc_op op, int64_t wall_ms)
{
    struct afc_cmd c;
    memset(&c, 0, sizeof c);
    c.op = op;
    c.wall_ms = wall_ms;
    snprintf(c.by, sizeof c.by, "us-east-2");
    return c;
}

static struct afc_cmd mk_init(unsigned n)
{
    struct afc_cmd c = mk(AFC_OP_INIT, 1000);
    c.u.init.n_members = n;
    for (unsigned i = 0; i < n; i++) {
        struct afc_member *m = &c.u.init.members[i];
        m->id = i + 1;
        snprintf(m->name, sizeof m->name, "%s", i < 3 ? regions[i] : "extra");
        snprintf(m->raft_addr, sizeof m->raft_addr, "10.0.0.%u:7000", i + 1);
        snprintf(m->api_url, sizeof m->api_url, "https://10.0.0.%u", i + 1);
    }
    return c;
}

static struct afc_cmd mk_promote(const char *region, afc_epoch expect, const char *reason)
{
    struct afc_cmd c = mk(AFC_OP_PROMOTE, 2000);
    snprintf(c.u.promote.region, sizeof c.u.promote.region, "%s", region);
    c.u.promote.expect_epoch = expect;
    snprintf(c.u.promote.reason, sizeof c.u.promote.reason, "%s", reason);
    return c;
}

static struct afc_cmd mk_pause(bool paused, const char *reason)
{
    struct afc_cmd c = mk(AFC_OP_PAUSE, 3000);
    c.u.pause.paused = paused;
    snprintf(c.u.pause.reason, sizeof c.u.pause.reason, "%s", reason);
    return c;
}

static struct afc_cmd mk_note(const char *kind, const char *detail, int64_t wall_ms)
{
    struct afc_cmd c = mk(AFC_OP_NOTE, wall_ms);
    snprintf(c.u.note.kind, sizeof c.u.note.kind, "%s", kind);
    snprintf(c.u.note.detail, sizeof c.u.note.detail, "%s", detail);
    return c;
}

static struct afc_cmd mk_digest(uint64_t at, uint64_t digest)
{
    struct afc_cmd c = mk(AFC_OP_DIGEST, 4000);
    c.u.digest.at_index = at;
    c.u.digest.digest = digest;
    return c;
}

/* Encode and apply; a failed encode is reported and yields an impossible result. */
static enum afc_apply_result apply(struct afc_fsm *f, uint64_t index, struct afc_cmd c,
                                   struct afc_err *why)
{
    void *buf;
    size_t len;
    int rc = afc_cmd_encode(&c, &buf, &len);
    if (rc != 0) {
        fprintf(stderr, "  encode failed: %d\n", rc);
        test_failed_checks++;
        return (enum afc_apply_result) - 1;
    }
    enum afc_apply_result r = afc_fsm_apply(f, index, buf, len, why);
    free(buf);
    return r;
}

/* Digest the state would have if only applied_index had moved to `index`. */
static uint64_t digest_with_index(const struct afc_state *s, uint64_t index)
{
    struct afc_state *copy = malloc(sizeof *copy);
    *copy = *s;
    copy->applied_index = index;
    uint64_t d = afc_state_digest(copy);
    free(copy);
    return d;
}

static void init3(struct afc_fsm *f)
{
    afc_fsm_init(f);
    CHECK_EQ_INT(apply(f, 1, mk_init(3), NULL), AFC_APPLY_OK);
}

/* ---- apply semantics ---- */

static void test_init(void)
{
    struct afc_fsm f;
    struct afc_err why;
    init3(&f);
    CHECK_EQ_INT(f.state.n_members, 3);
    CHECK_EQ_INT(f.state.applied_index, 1);
    CHECK(afc_state_member_by_name(&f.state, "eu-west-1") == &f.state.members[1]);
    CHECK(afc_state_member_by_id(&f.state, 3) == &f.state.members[2]);
    CHECK(afc_state_member_by_name(&f.state, "nowhere") == NULL);
    CHECK(afc_state_member_by_id(&f.state, 4) == NULL);
    REQUIRE(f.state.history_len == 1);
    CHECK_EQ_STR(afc_state_history_at(&f.state, 0)->kind, "initialized");
    CHECK_CONTAINS(afc_state_history_at(&f.state, 0)->detail,
                   "members=us-east-2,eu-west-1,ap-south-1");

    /* identical init again: accepted, nothing changes */
    CHECK_EQ_INT(apply(&f, 2, mk_init(3), &why), AFC_APPLY_NOOP);
    CHECK_EQ_INT(f.state.history_len, 1);
    CHECK_EQ_INT(f.rejected_commands, 0);
    /* a different list: rejected */
    uint64_t before = digest_with_index(&f.state, 3);
    CHECK_EQ_INT(apply(&f, 3, mk_init(4), &why), AFC_APPLY_REJECTED_INVALID);
    CHECK_CONTAINS(why.msg, "already set");
    CHECK_EQ_INT(f.state.n_members, 3);
    CHECK_EQ_INT(f.rejected_commands, 1);
    CHECK(afc_state_digest(&f.state) == before);
    struct afc_cmd other = mk_init(3);
    snprintf(other.u.init.members[2].api_url, AFC_URL_MAX, "https://moved");
    CHECK_EQ_INT(apply(&f, 4, other, NULL), AFC_APPLY_REJECTED_INVALID);
}

static void test_promote_cas(void)
{
    struct afc_fsm f;
    struct afc_err why;
    afc_fsm_init(&f);
    /* before init nobody is a member */
    CHECK_EQ_INT(apply(&f, 1, mk_promote("eu-west-1", 0, "x"), &why), AFC_APPLY_REJECTED_INVALID);
    CHECK_EQ_INT(why.code, AFC_EUNKNOWNMEMBER);
    CHECK_EQ_INT(apply(&f, 2, mk_init(3), NULL), AFC_APPLY_OK);

    CHECK_EQ_INT(apply(&f, 3, mk_promote("eu-west-1", 0, "lease expired"), &why), AFC_APPLY_OK);
    CHECK_EQ_INT(f.state.epoch, 1);
    CHECK_EQ_STR(f.state.primary, "eu-west-1");
    const struct afc_event *e = afc_state_history_at(&f.state, f.state.history_len - 1);
    REQUIRE(e != NULL);
    CHECK_EQ_STR(e->kind, "promoted");
    CHECK_EQ_STR(e->detail, "epoch=1 region=eu-west-1 reason=lease expired");
    CHECK_EQ_INT(e->index, 3);
    CHECK_EQ_INT(e->wall_ms, 2000);

    /* the same promote again (a retried proposal) is stale */
    uint64_t before = digest_with_index(&f.state, 4);
    CHECK_EQ_INT(apply(&f, 4, mk_promote("ap-south-1", 0, "retry"), &why),
                 AFC_APPLY_REJECTED_STALE);
    CHECK_EQ_INT(why.code, AFC_ESTALEEPOCH);
    CHECK_CONTAINS(why.msg, "expect_epoch 0 but current epoch is 1");
    CHECK(afc_state_digest(&f.state) == before);
    CHECK_EQ_STR(f.state.primary, "eu-west-1");
    /* from the future is stale too: the CAS is exact */
    CHECK_EQ_INT(apply(&f, 5, mk_promote("ap-south-1", 5, ""), NULL), AFC_APPLY_REJECTED_STALE);
    CHECK_EQ_INT(f.rejected_commands, 3);
    /* exact expect_epoch wins */
    CHECK_EQ_INT(apply(&f, 6, mk_promote("ap-south-1", 1, "manual"), NULL), AFC_APPLY_OK);
    CHECK_EQ_INT(f.state.epoch, 2);
    CHECK_EQ_STR(f.state.primary, "ap-south-1");
    /* unknown region with the right epoch is still invalid */
    CHECK_EQ_INT(apply(&f, 7, mk_promote("mars-1", 2, ""), NULL), AFC_APPLY_REJECTED_INVALID);
    CHECK_EQ_INT(f.state.epoch, 2);
    /* the epoch cannot wrap */
    f.state.epoch = UINT64_MAX;
    CHECK_EQ_INT(apply(&f, 8, mk_promote("us-east-2", UINT64_MAX, ""), NULL),
                 AFC_APPLY_REJECTED_INVALID);
    CHECK(f.state.epoch == UINT64_MAX);
}

static void test_pause_resume(void)
{
    struct afc_fsm f;
    init3(&f);
    CHECK_EQ_INT(apply(&f, 2, mk_pause(false, "already running"), NULL), AFC_APPLY_NOOP);
    CHECK_EQ_INT(f.state.history_len, 1);
    CHECK_EQ_INT(apply(&f, 3, mk_pause(true, "db upgrade"), NULL), AFC_APPLY_OK);
    CHECK(f.state.paused);
    CHECK_EQ_INT(apply(&f, 4, mk_pause(true, "again"), NULL), AFC_APPLY_NOOP);
    CHECK_EQ_INT(apply(&f, 5, mk_pause(false, "done"), NULL), AFC_APPLY_OK);
    CHECK(!f.state.paused);
    REQUIRE(f.state.history_len == 3);
    const struct afc_event *p = afc_state_history_at(&f.state, 1);
    const struct afc_event *r = afc_state_history_at(&f.state, 2);
    CHECK_EQ_STR(p->kind, "paused");
    CHECK_EQ_STR(p->detail, "by=us-east-2 reason=db upgrade");
    CHECK_EQ_INT(p->index, 3);
    CHECK_EQ_INT(p->wall_ms, 3000);
    CHECK_EQ_STR(r->kind, "resumed");
    CHECK_CONTAINS(r->detail, "reason=done");
    CHECK_EQ_INT(r->index, 5);
    CHECK_EQ_INT(f.rejected_commands, 0);
}

static void test_note_and_history_ring(void)
{
    struct afc_fsm f;
    init3(&f);
    const unsigned total = AFC_HISTORY_MAX + 10; /* plus the init event */
    for (unsigned i = 0; i < total; i++) {
        char detail[32];
        snprintf(detail, sizeof detail, "n=%u", i);
        CHECK_EQ_INT(apply(&f, 2 + i, mk_note("note", detail, 10000 + i), NULL), AFC_APPLY_OK);
    }
    CHECK_EQ_INT(f.state.history_len, AFC_HISTORY_MAX);
    CHECK(afc_state_history_at(&f.state, AFC_HISTORY_MAX) == NULL);
    /* the oldest surviving is note #(total - AFC_HISTORY_MAX), newest is the last */
    const struct afc_event *oldest = afc_state_history_at(&f.state, 0);
    const struct afc_event *newest = afc_state_history_at(&f.state, AFC_HISTORY_MAX - 1);
    char want[32];
    snprintf(want, sizeof want, "n=%u", total - AFC_HISTORY_MAX);
    CHECK_EQ_STR(oldest->detail, want);
    snprintf(want, sizeof want, "n=%u", total - 1);
    CHECK_EQ_STR(newest->detail, want);
    CHECK_EQ_INT(newest->index, 1 + total);
    CHECK_EQ_INT(newest->wall_ms, 10000 + total - 1);
    for (unsigned i = 1; i < AFC_HISTORY_MAX; i++) {
        CHECK_EQ_INT(afc_state_history_at(&f.state, i)->index,
                     afc_state_history_at(&f.state, i - 1)->index + 1);
    }
    /* the same note again (a retried or replayed report) is not a second event; the same text
     * from another moment is */
    struct afc_err why;
    uint64_t at = 2 + total;
    CHECK_EQ_INT(apply(&f, at, mk_note("note", want, 10000 + total - 1), &why), AFC_APPLY_NOOP);
    CHECK_CONTAINS(why.msg, "already recorded at index");
    CHECK_EQ_INT(afc_state_history_at(&f.state, AFC_HISTORY_MAX - 1)->index, 1 + total);
    CHECK_EQ_INT(apply(&f, at + 1, mk_note("note", want, 20000), NULL), AFC_APPLY_OK);
    CHECK_EQ_INT(afc_state_history_at(&f.state, AFC_HISTORY_MAX - 1)->index, at + 1);
}

/* Build a log-entry buffer holding a map with a given "v" and op "note". */
static void *raw_note(uint64_t version, size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    const char *keys[6] = {"v", "op", "by", "t", "kind", "detail"};
    for (int k = 0; k < 6; k++) {
        msgpack_pack_str_with_body(&pk, keys[k], strlen(keys[k]));
        if (k == 0 || k == 3) {
            msgpack_pack_uint64(&pk, k == 0 ? version : 1);
        } else {
            msgpack_pack_str_with_body(&pk, k == 1 ? "note" : "x", k == 1 ? 4 : 1);
        }
    }
    while (sb.size % 8) {
        msgpack_sbuffer_write(&sb, "", 1);
    }
    *len = sb.size;
    return msgpack_sbuffer_release(&sb);
}

static void test_rejected_leave_state(void)
{
    struct afc_fsm f;
    struct afc_err why;
    init3(&f);
    CHECK_EQ_INT(apply(&f, 2, mk_promote("us-east-2", 0, ""), NULL), AFC_APPLY_OK);
    size_t v1_len, v2_len;
    void *v1 = raw_note(1, &v1_len), *v2 = raw_note(2, &v2_len);
    static const unsigned char garbage[] = {0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04};
    unsigned char trailing[64] = {0};
    memcpy(trailing, v1, v1_len);
    trailing[v1_len + 3] = 0x7f;
    struct {
        const void *buf;
        size_t len;
        enum afc_apply_result want;
        const char *why_has;
    } cases[] = {
        {garbage, sizeof garbage, AFC_APPLY_REJECTED_MALFORMED, "index 3: decode"},
        {"", 0, AFC_APPLY_REJECTED_MALFORMED, "empty"},
        {v2, v2_len, AFC_APPLY_REJECTED_VERSION, "version 2"},
        {trailing, v1_len + 8, AFC_APPLY_REJECTED_MALFORMED, "non-zero"},
        {v1, v1_len - 8, AFC_APPLY_REJECTED_MALFORMED, "truncated"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        uint64_t index = 3 + k;
        uint64_t want_digest = digest_with_index(&f.state, index);
        uint64_t rejected = f.rejected_commands;
        unsigned hist = f.state.history_len;
        CHECK_EQ_INT(afc_fsm_apply(&f, index, cases[k].buf, cases[k].len, &why), cases[k].want);
        CHECK_CONTAINS(why.msg, cases[k].why_has);
        CHECK(why.code != 0);
        CHECK_EQ_INT(f.state.applied_index, index);
        CHECK(afc_state_digest(&f.state) == want_digest);
        CHECK_EQ_INT(f.rejected_commands, rejected + 1);
        CHECK_EQ_INT(f.state.history_len, hist);
        uint64_t ring = 0;
        CHECK(afc_fsm_digest_at(&f, index, &ring) && ring == want_digest);
    }
    /* the valid v1 note is accepted */
    CHECK_EQ_INT(afc_fsm_apply(&f, 20, v1, v1_len, &why), AFC_APPLY_OK);
    CHECK_EQ_INT(why.code, 0);
    free(v1);
    free(v2);
}

/* ---- digests ---- */

static void test_digest_command(void)
{
    struct afc_fsm f;
    struct afc_err why;
    init3(&f);
    CHECK_EQ_INT(apply(&f, 2, mk_promote("us-east-2", 0, ""), NULL), AFC_APPLY_OK);
    uint64_t d2 = 0;
    REQUIRE(afc_fsm_digest_at(&f, 2, &d2));
    CHECK(d2 == afc_state_digest(&f.state));
    CHECK(!afc_fsm_digest_at(&f, 3, NULL));
    CHECK(!afc_fsm_digest_at(&f, 0, NULL));

    CHECK_EQ_INT(apply(&f, 3, mk_digest(2, d2), &why), AFC_APPLY_OK);
    CHECK(!f.diverged);
    CHECK_EQ_INT(apply(&f, 4, mk_digest(999, 1), &why), AFC_APPLY_NOOP); /* not in the ring */
    CHECK(!f.diverged);
    CHECK_EQ_INT(f.state.history_len, 1 + 1); /* digests record no events */

    CHECK_EQ_INT(apply(&f, 5, mk_digest(2, d2 ^ 1), &why), AFC_APPLY_DIVERGED);
    CHECK(f.diverged);
    CHECK_EQ_INT(f.diverged_index, 2);
    CHECK_EQ_INT(why.code, AFC_EDIVERGED);
    CHECK_CONTAINS(why.msg, "diverged at index 2");
    CHECK_CONTAINS(why.msg, "digest command at index 5");
    char hex[32];
    snprintf(hex, sizeof hex, "%016" PRIx64, d2);
    CHECK_CONTAINS(why.msg, hex);
    snprintf(hex, sizeof hex, "%016" PRIx64, d2 ^ 1);
    CHECK_CONTAINS(why.msg, hex);
    /* sticky: a later mismatch does not move diverged_index */
    CHECK_EQ_INT(apply(&f, 6, mk_digest(3, 0), NULL), AFC_APPLY_DIVERGED);
    CHECK_EQ_INT(f.diverged_index, 2);
}

static void test_digest_ring_window(void)
{
    struct afc_fsm f;
    init3(&f);
    uint64_t last = 1 + AFC_DIGEST_RING + 5;
    for (uint64_t i = 2; i <= last; i++) {
        CHECK_EQ_INT(apply(&f, i, mk_note("tick", "", (int64_t)i), NULL), AFC_APPLY_OK);
    }
    CHECK(!afc_fsm_digest_at(&f, last - AFC_DIGEST_RING, NULL));
    CHECK(afc_fsm_digest_at(&f, last - AFC_DIGEST_RING + 1, NULL));
    uint64_t d = 0;
    CHECK(afc_fsm_digest_at(&f, last, &d) && d == afc_state_digest(&f.state));
}

static void test_digest_covers_content(void)
{
    struct afc_fsm a, b;
    init3(&a);
    init3(&b);
    CHECK(afc_state_digest(&a.state) == afc_state_digest(&b.state));
    b.state.paused = true;
    CHECK(afc_state_digest(&a.state) != afc_state_digest(&b.state));
    init3(&b);
    b.state.history[0].wall_ms++;
    CHECK(afc_state_digest(&a.state) != afc_state_digest(&b.state));
    init3(&b);
    b.state.members[2].api_url[0] = 'x';
    CHECK(afc_state_digest(&a.state) != afc_state_digest(&b.state));
    init3(&b);
    b.state.applied_index++;
    CHECK(afc_state_digest(&a.state) != afc_state_digest(&b.state));
    /* bytes past a string's NUL are not content */
    init3(&b);
    b.state.primary[5] = 'z';
    CHECK(afc_state_digest(&a.state) == afc_state_digest(&b.state));
}

/* ---- determinism ---- */

/* A seeded random log: mostly valid commands, some stale or invalid, some garbage. */
static void random_entry(uint64_t index, unsigned char *buf, size_t *len, const struct afc_fsm *ref)
{
    struct afc_cmd c;
    unsigned pick = rng_next() % 10;
    const char *region = regions[rng_next() % 3];
    if (index == 1) {
        c = mk_init(3);
    } else if (pick < 3) {
        c = mk_promote(region, ref->state.epoch - (rng_next() % 4 == 0), "random");
    } else if (pick < 5) {
        c = mk_pause(rng_next() % 2, "random");
    } else if (pick < 7) {
        c = mk_note("note", region, (int64_t)index);
    } else if (pick < 9) {
        c = mk_digest(index - 1 - rng_next() % 3, 0);
        afc_fsm_digest_at(ref, c.u.digest.at_index, &c.u.digest.digest);
    } else {
        *len = 8 + rng_next() % 40;
        for (size_t i = 0; i < *len; i++) {
            buf[i] = (unsigned char)rng_next();
        }
        return;
    }
    void *enc;
    REQUIRE(afc_cmd_encode(&c, &enc, len) == 0);
    memcpy(buf, enc, *len);
    free(enc);
}

static void test_two_fsms_same_log(void)
{
    static struct afc_fsm a, b, c;
    unsigned char buf[AFC_CMD_MAX_SIZE];
    size_t len = 0;
    int c_started = 0;
    unsigned ok = 0;
    afc_fsm_init(&a);
    afc_fsm_init(&b);
    rng_state = 0x5eed5eed5eed5eedULL;
    for (uint64_t i = 1; i <= 600; i++) {
        random_entry(i, buf, &len, &a);
        enum afc_apply_result ra = afc_fsm_apply(&a, i, buf, len, NULL);
        enum afc_apply_result rb = afc_fsm_apply(&b, i, buf, len, NULL);
        CHECK_EQ_INT(ra, rb);
        CHECK(ra != AFC_APPLY_DIVERGED);
        ok += ra == AFC_APPLY_OK;
        CHECK(afc_state_digest(&a.state) == afc_state_digest(&b.state));
        if (c_started) {
            /* c's digest ring starts at the snapshot: a digest check of an older index is a
             * NOOP there, never a different state */
            enum afc_apply_result rc = afc_fsm_apply(&c, i, buf, len, NULL);
            CHECK(rc == ra || (ra == AFC_APPLY_OK && rc == AFC_APPLY_NOOP));
            CHECK(afc_state_digest(&c.state) == afc_state_digest(&a.state));
        }
        if (i == 300) { /* a third node joins from a snapshot of a */
            void *snap;
            size_t snap_len;
            static struct afc_state restored;
            REQUIRE(afc_state_encode(&a.state, &snap, &snap_len) == 0);
            REQUIRE(afc_state_decode(snap, snap_len, &restored, NULL) == 0);
            free(snap);
            afc_fsm_init(&c);
            afc_fsm_restore(&c, &restored);
            c_started = 1;
        }
    }
    CHECK(a.state.epoch > 3);
    CHECK(a.state.history_len == AFC_HISTORY_MAX);
    CHECK(a.rejected_commands > 0 && a.rejected_commands == b.rejected_commands);
    printf("     600 entries: %u ok, %" PRIu64 " rejected, epoch %" PRIu64 "\n", ok,
           a.rejected_commands, a.state.epoch);
}

/* ---- snapshots ---- */

static void build_busy_state(struct afc_fsm *f)
{
    init3(f);
    uint64_t i = 2;
    for (afc_epoch e = 0; e < 5; e++) {
        CHECK_EQ_INT(apply(f, i++, mk_promote(regions[e % 3], e, "rotate"), NULL), AFC_APPLY_OK);
    }
    CHECK_EQ_INT(apply(f, i++, mk_pause(true, "maint"), NULL), AFC_APPLY_OK);
    for (unsigned k = 0; k < AFC_HISTORY_MAX + 3; k++) { /* wrap the ring */
        CHECK_EQ_INT(apply(f, i++, mk_note("note", "wrap", -(int64_t)k), NULL), AFC_APPLY_OK);
    }
}

static void test_snapshot_round_trip(void)
{
    static struct afc_fsm f, g;
    static struct afc_state s;
    build_busy_state(&f);
    void *buf, *buf2;
    size_t len, len2;
    struct afc_err why = {0};
    REQUIRE(afc_state_encode(&f.state, &buf, &len) == 0);
    CHECK_EQ_INT(len % 8, 0);
    CHECK_EQ_INT(afc_state_decode(buf, len, &s, &why), 0);
    CHECK(afc_state_digest(&s) == afc_state_digest(&f.state));
    CHECK_EQ_INT(s.epoch, 5);
    CHECK(s.paused);
    CHECK_EQ_INT(s.applied_index, f.state.applied_index);
    CHECK_EQ_INT(s.history_len, AFC_HISTORY_MAX);
    for (unsigned i = 0; i < AFC_HISTORY_MAX; i++) {
        const struct afc_event *x = afc_state_history_at(&s, i);
        const struct afc_event *y = afc_state_history_at(&f.state, i);
        CHECK(x->index == y->index && x->wall_ms == y->wall_ms && !strcmp(x->kind, y->kind) &&
              !strcmp(x->detail, y->detail));
    }
    REQUIRE(afc_state_encode(&s, &buf2, &len2) == 0);
    CHECK(len == len2 && memcmp(buf, buf2, len) == 0);
    /* the digest is FNV-1a 64 over exactly these bytes */
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t k = 0; k < len; k++) {
        h = (h ^ ((unsigned char *)buf)[k]) * 0x100000001b3ULL;
    }
    CHECK(h == afc_state_digest(&f.state));
    /* restore: the ring holds the restored index, and applies continue identically */
    afc_fsm_init(&g);
    afc_fsm_restore(&g, &s);
    uint64_t d = 0;
    CHECK(afc_fsm_digest_at(&g, s.applied_index, &d) && d == afc_state_digest(&f.state));
    uint64_t next = f.state.applied_index + 1;
    CHECK_EQ_INT(apply(&g, next, mk_promote("us-east-2", 5, ""), NULL), AFC_APPLY_OK);
    CHECK_EQ_INT(apply(&f, next, mk_promote("us-east-2", 5, ""), NULL), AFC_APPLY_OK);
    CHECK(afc_state_digest(&g.state) == afc_state_digest(&f.state));
    free(buf);
    free(buf2);
}

static void test_snapshot_empty_state(void)
{
    struct afc_fsm f;
    static struct afc_state s;
    afc_fsm_init(&f);
    void *buf;
    size_t len;
    REQUIRE(afc_state_encode(&f.state, &buf, &len) == 0);
    CHECK_EQ_INT(len % 8, 0);
    CHECK_EQ_INT(afc_state_decode(buf, len, &s, NULL), 0);
    CHECK_EQ_INT(s.n_members, 0);
    CHECK(afc_state_digest(&s) == afc_state_digest(&f.state));
    free(buf);
    f.state.n_members = AFC_MAX_MEMBERS + 1;
    CHECK_EQ_INT(afc_state_encode(&f.state, &buf, &len), AFC_EINVAL);
}

/* A snapshot map with one field replaced by a raw value: key `bad_key` gets `bad` bytes. */
static void *patched_snapshot(const char *bad_key, void (*bad)(msgpack_packer *), uint64_t version,
                              size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 7);
    const char *keys[7] = {"v",      "members",       "epoch",  "primary",
                           "paused", "applied_index", "history"};
    for (int k = 0; k < 7; k++) {
        msgpack_pack_str_with_body(&pk, keys[k], strlen(keys[k]));
        if (bad_key != NULL && strcmp(bad_key, keys[k]) == 0) {
            bad(&pk);
        } else if (k == 0) {
            msgpack_pack_uint64(&pk, version);
        } else if (k == 1 || k == 6) {
            msgpack_pack_array(&pk, 0);
        } else if (k == 3) {
            msgpack_pack_str_with_body(&pk, "", 0);
        } else if (k == 4) {
            msgpack_pack_false(&pk);
        } else {
            msgpack_pack_uint64(&pk, 7);
        }
    }
    *len = sb.size;
    return msgpack_sbuffer_release(&sb);
}

static void bad_string(msgpack_packer *pk)
{
    msgpack_pack_str_with_body(pk, "oops", 4);
}

static void bad_history_too_long(msgpack_packer *pk)
{
    msgpack_pack_array(pk, AFC_HISTORY_MAX + 1);
    for (int k = 0; k < AFC_HISTORY_MAX + 1; k++) {
        msgpack_pack_map(pk, 4);
        msgpack_pack_str_with_body(pk, "index", 5);
        msgpack_pack_uint64(pk, 1);
        msgpack_pack_str_with_body(pk, "t", 1);
        msgpack_pack_int64(pk, 1);
        msgpack_pack_str_with_body(pk, "kind", 4);
        msgpack_pack_str_with_body(pk, "k", 1);
        msgpack_pack_str_with_body(pk, "detail", 6);
        msgpack_pack_str_with_body(pk, "", 0);
    }
}

static void bad_event_no_kind(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "index", 5);
    msgpack_pack_uint64(pk, 1);
}

static void test_snapshot_malformed(void)
{
    static struct afc_state s, before;
    struct afc_fsm f;
    init3(&f);
    s = f.state;
    before = s;
    struct afc_err why;
    struct {
        const char *key;
        void (*bad)(msgpack_packer *);
        uint64_t version;
        int want;
        const char *why_has;
    } cases[] = {
        {NULL, NULL, 1, 0, ""},
        {NULL, NULL, 2, AFC_EVERSION, "version 2"},
        {"epoch", bad_string, 1, AFC_EMALFORMED, "\"epoch\""},
        {"members", bad_string, 1, AFC_EMALFORMED, "members"},
        {"primary", bad_string, 1, AFC_EMALFORMED, "not a member"},
        {"history", bad_history_too_long, 1, AFC_EMALFORMED, "max"},
        {"history", bad_event_no_kind, 1, AFC_EMALFORMED, "\"t\""},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t len;
        void *buf = patched_snapshot(cases[k].key, cases[k].bad, cases[k].version, &len);
        why.msg[0] = '\0';
        s = before;
        int rc = afc_state_decode(buf, len, &s, &why);
        CHECK_EQ_INT(rc, cases[k].want);
        CHECK_CONTAINS(why.msg, cases[k].why_has);
        if (rc != 0) {
            CHECK(memcmp(&s, &before, sizeof s) == 0); /* untouched on error */
        } else {
            CHECK_EQ_INT(s.applied_index, 7);
        }
        free(buf);
    }
    /* truncations and random bytes */
    void *buf;
    size_t len;
    build_busy_state(&f);
    REQUIRE(afc_state_encode(&f.state, &buf, &len) == 0);
    for (size_t cut = 0; cut + 8 <= len; cut++) {
        CHECK_EQ_INT(afc_state_decode(buf, cut, &s, NULL), AFC_EMALFORMED);
    }
    rng_state = 0xabcdef0123456789ULL;
    unsigned char *m = malloc(len);
    for (int k = 0; k < 2000; k++) {
        memcpy(m, buf, len);
        m[rng_next() % len] ^= (unsigned char)(1 + rng_next() % 255);
        int rc = afc_state_decode(m, len, &s, NULL);
        CHECK(rc == 0 || rc == AFC_EMALFORMED || rc == AFC_EVERSION);
    }
    free(m);
    free(buf);
}

int main(void)
{
    TEST_RUN(test_init);
    TEST_RUN(test_promote_cas);
    TEST_RUN(test_pause_resume);
    TEST_RUN(test_note_and_history_ring);
    TEST_RUN(test_rejected_leave_state);
    TEST_RUN(test_digest_command);
    TEST_RUN(test_digest_ring_window);
    TEST_RUN(test_digest_covers_content);
    TEST_RUN(test_two_fsms_same_log);
    TEST_RUN(test_snapshot_round_trip);
    TEST_RUN(test_snapshot_empty_state);
    TEST_RUN(test_snapshot_malformed);
    TEST_END();
}
