/*
 * The replicated state machine: apply decoded commands in log order, keep a bounded history, and
 * snapshot/restore/digest the state.
 *
 * Data flow: afc_fsm_apply(index, bytes) -> afc_cmd_decode -> one handler per op (apply_handlers,
 * a table) -> applied_index = index -> push (index, digest) into the digest ring. Everything a
 * handler records comes from the command and the log index, never from the local clock, so every
 * node reaches the same bytes and the same digest at the same index.
 *
 * The snapshot encoding is canonical: fixed key order, shortest msgpack forms, strings up to their
 * NUL, history written oldest -> newest (not the raw ring), zero padding to a multiple of 8. Equal
 * states therefore give equal bytes, and the digest is FNV-1a 64 over exactly those bytes, streamed
 * through a hashing msgpack writer so that computing it never allocates (and cannot fail).
 *
 * Drain (per-member flag, "drained" in the snapshot) is applied here with pause and note.
 * The failover ops (observe, renew, failover-begin, failover-step) and the snapshot keys for what
 * they record (obs, lease, failover, failovers) live in state_failover.c.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "afc/state.h"
#include "consensus/msgpack_util.h"
#include "consensus/state_internal.h"

#define SNAPSHOT_VERSION 1 /* "v" of the snapshot map; independent of AFC_CMD_VERSION */

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME  0x100000001b3ULL

/* ---- lookups and history ---- */

const struct afc_member *afc_state_member_by_name(const struct afc_state *s, const char *name)
{
    for (unsigned i = 0; i < s->n_members && i < AFC_MAX_MEMBERS; i++) {
        if (strcmp(s->members[i].name, name) == 0) {
            return &s->members[i];
        }
    }
    return NULL;
}

const struct afc_member *afc_state_member_by_id(const struct afc_state *s, afc_region_id id)
{
    for (unsigned i = 0; i < s->n_members && i < AFC_MAX_MEMBERS; i++) {
        if (s->members[i].id == id) {
            return &s->members[i];
        }
    }
    return NULL;
}

const struct afc_event *afc_state_history_at(const struct afc_state *s, unsigned i)
{
    if (i >= s->history_len || s->history_len > AFC_HISTORY_MAX) {
        return NULL;
    }
    unsigned oldest = (s->history_next + AFC_HISTORY_MAX - s->history_len) % AFC_HISTORY_MAX;
    return &s->history[(oldest + i) % AFC_HISTORY_MAX];
}

/* Append an event; the oldest is overwritten once the ring is full. The detail is display text:
 * if it does not fit it is cut (deterministically, identically on every node). */
void state_record_event(struct afc_state *s, uint64_t index, int64_t wall_ms, const char *kind,
                        const char *fmt, ...)
{
    struct afc_event *e = &s->history[s->history_next % AFC_HISTORY_MAX];
    memset(e, 0, sizeof *e);
    e->index = index;
    e->wall_ms = wall_ms;
    snprintf(e->kind, sizeof e->kind, "%s", kind);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->detail, sizeof e->detail, fmt, ap);
    va_end(ap);
    s->history_next = (s->history_next + 1) % AFC_HISTORY_MAX;
    if (s->history_len < AFC_HISTORY_MAX) {
        s->history_len++;
    }
}

/* ---- snapshot encoding ---- */

static int pack_event(msgpack_packer *pk, const struct afc_event *e)
{
    int rc = msgpack_pack_map(pk, 4);
    rc |= codec_pack_kv_u64(pk, "index", e->index);
    rc |= codec_pack_kv_i64(pk, "t", e->wall_ms);
    rc |= codec_pack_kv_str(pk, "kind", e->kind);
    rc |= codec_pack_kv_str(pk, "detail", e->detail);
    return rc;
}

/* "drained" is written only when a member is drained, so a state that never used drain encodes
 * (and digests) exactly as before the key existed: nodes of the previous version agree. */
static bool any_drained(const struct afc_state *s, unsigned n_members)
{
    for (unsigned i = 0; i < n_members; i++) {
        if (s->drained[i]) {
            return true;
        }
    }
    return false;
}

static int pack_drained(msgpack_packer *pk, const struct afc_state *s, unsigned n_members)
{
    int rc = codec_pack_cstr(pk, "drained") | msgpack_pack_array(pk, n_members);
    for (unsigned i = 0; i < n_members && rc == 0; i++) {
        rc |= s->drained[i] ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    }
    return rc;
}

/* Counts are clamped so that even a corrupted struct never makes the packer read out of bounds. */
static int pack_state(msgpack_packer *pk, const struct afc_state *s)
{
    unsigned n_members = s->n_members < AFC_MAX_MEMBERS ? s->n_members : AFC_MAX_MEMBERS;
    unsigned n_events = s->history_len < AFC_HISTORY_MAX ? s->history_len : AFC_HISTORY_MAX;
    struct afc_state view = *s;
    view.history_len = n_events;
    bool drained = any_drained(s, n_members);
    int rc = msgpack_pack_map(pk, 7 + drained + state_failover_key_count(s));
    rc |= codec_pack_kv_u64(pk, "v", SNAPSHOT_VERSION);
    rc |= codec_pack_cstr(pk, "members");
    rc |= codec_pack_members(pk, s->members, n_members);
    rc |= codec_pack_kv_u64(pk, "epoch", s->epoch);
    rc |= codec_pack_kv_str(pk, "primary", s->primary);
    rc |= codec_pack_kv_bool(pk, "paused", s->paused);
    if (drained) {
        rc |= pack_drained(pk, s, n_members);
    }
    rc |= codec_pack_kv_u64(pk, "applied_index", s->applied_index);
    rc |= codec_pack_cstr(pk, "history");
    rc |= msgpack_pack_array(pk, n_events);
    for (unsigned i = 0; i < n_events && rc == 0; i++) {
        rc |= pack_event(pk, afc_state_history_at(&view, i));
    }
    return rc | state_pack_failover(pk, s);
}

/* The state must be one apply/decode could have produced: strings terminated, counts in range. */
static bool is_encodable(const struct afc_state *s)
{
    if (s->n_members > AFC_MAX_MEMBERS || s->history_len > AFC_HISTORY_MAX ||
        !codec_is_terminated(s->primary, sizeof s->primary) ||
        codec_check_members(s->members, s->n_members, AFC_EINVAL, NULL) != 0) {
        return false;
    }
    for (unsigned i = 0; i < s->history_len; i++) {
        const struct afc_event *e = afc_state_history_at(s, i);
        if (!codec_is_terminated(e->kind, sizeof e->kind) ||
            !codec_is_terminated(e->detail, sizeof e->detail)) {
            return false;
        }
    }
    return state_failover_is_encodable(s);
}

int afc_state_encode(const struct afc_state *s, void **out, size_t *len)
{
    if (s == NULL || out == NULL || len == NULL || !is_encodable(s)) {
        return AFC_EINVAL;
    }
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (pack_state(&pk, s) != 0) {
        msgpack_sbuffer_destroy(&sb);
        return AFC_ENOMEM;
    }
    return codec_finish(&sb, 0, out, len);
}

/* ---- digest: FNV-1a 64 over the snapshot bytes, streamed ---- */

struct fnv {
    uint64_t hash;
    size_t len;
};

static void fnv_update(struct fnv *f, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    for (size_t i = 0; i < len; i++) {
        f->hash = (f->hash ^ p[i]) * FNV_PRIME;
    }
    f->len += len;
}

static int fnv_write(void *data, const char *buf, size_t len)
{
    fnv_update(data, buf, len);
    return 0;
}

uint64_t afc_state_digest(const struct afc_state *s)
{
    static const uint8_t zeros[8];
    struct fnv f = {FNV_OFFSET, 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &f, fnv_write);
    pack_state(&pk, s); /* fnv_write cannot fail */
    fnv_update(&f, zeros, codec_pad_len(f.len));
    return f.hash;
}

/* ---- snapshot decoding ---- */

static int decode_event(const msgpack_object *o, struct afc_event *e, struct afc_err *why)
{
    if (codec_check_map(o, "event", why) != 0 || codec_get_u64(o, "index", &e->index, why) != 0 ||
        codec_get_i64(o, "t", &e->wall_ms, why) != 0 ||
        codec_get_str(o, "kind", e->kind, sizeof e->kind, why) != 0 ||
        codec_get_str(o, "detail", e->detail, sizeof e->detail, why) != 0) {
        return AFC_EMALFORMED;
    }
    if (e->kind[0] == '\0') {
        return afc_err_set(why, AFC_EMALFORMED, "empty kind");
    }
    return 0;
}

static int decode_history(const msgpack_object *arr, struct afc_state *s, struct afc_err *why)
{
    if (arr == NULL || arr->type != MSGPACK_OBJECT_ARRAY) {
        return afc_err_set(why, AFC_EMALFORMED, "history: missing or not an array");
    }
    if (arr->via.array.size > AFC_HISTORY_MAX) {
        return afc_err_set(why, AFC_EMALFORMED, "history: %u events (max %d)", arr->via.array.size,
                           AFC_HISTORY_MAX);
    }
    s->history_len = arr->via.array.size;
    s->history_next = s->history_len % AFC_HISTORY_MAX;
    for (unsigned i = 0; i < s->history_len; i++) {
        if (decode_event(&arr->via.array.ptr[i], &s->history[i], why) != 0) {
            return afc_err_wrap(why, "history event %u", i);
        }
    }
    return 0;
}

/* "drained": one bool per member; absent in snapshots written before drain existed = none. */
static int decode_drained(const msgpack_object *arr, struct afc_state *s, struct afc_err *why)
{
    if (arr == NULL) {
        return 0;
    }
    if (arr->type != MSGPACK_OBJECT_ARRAY || arr->via.array.size != s->n_members) {
        return afc_err_set(why, AFC_EMALFORMED, "drained: not an array of %u", s->n_members);
    }
    for (unsigned i = 0; i < s->n_members; i++) {
        if (arr->via.array.ptr[i].type != MSGPACK_OBJECT_BOOLEAN) {
            return afc_err_set(why, AFC_EMALFORMED, "drained[%u]: not a boolean", i);
        }
        s->drained[i] = arr->via.array.ptr[i].via.boolean;
    }
    return 0;
}

static int decode_state_map(const msgpack_object *m, struct afc_state *s, struct afc_err *why)
{
    int rc = codec_check_map(m, "snapshot", why);
    if (rc == 0) {
        rc = codec_check_version(m, SNAPSHOT_VERSION, why);
    }
    if (rc != 0) {
        return rc;
    }
    if (codec_decode_members(codec_map_find(m, "members"), s->members, &s->n_members, why) != 0 ||
        codec_get_u64(m, "epoch", &s->epoch, why) != 0 ||
        codec_get_str(m, "primary", s->primary, sizeof s->primary, why) != 0 ||
        codec_get_bool(m, "paused", &s->paused, why) != 0 ||
        decode_drained(codec_map_find(m, "drained"), s, why) != 0 ||
        codec_get_u64(m, "applied_index", &s->applied_index, why) != 0 ||
        decode_history(codec_map_find(m, "history"), s, why) != 0 ||
        state_decode_failover(m, s, why) != 0) {
        return AFC_EMALFORMED;
    }
    if (s->primary[0] != '\0' && afc_state_member_by_name(s, s->primary) == NULL) {
        return afc_err_set(why, AFC_EMALFORMED, "primary \"%s\" is not a member", s->primary);
    }
    return 0;
}

int afc_state_decode(const void *buf, size_t len, struct afc_state *s, struct afc_err *why)
{
    struct afc_state *tmp = calloc(1, sizeof *tmp);
    msgpack_unpacked u;
    if (tmp == NULL) {
        return afc_err_set(why, AFC_ENOMEM, "snapshot: out of memory");
    }
    int rc = codec_unpack(buf, len, &u, why);
    if (rc == 0) {
        rc = decode_state_map(&u.data, tmp, why);
        msgpack_unpacked_destroy(&u);
    }
    if (rc == 0) {
        *s = *tmp;
    } else {
        afc_err_wrap(why, "snapshot");
    }
    free(tmp);
    return rc;
}

/* ---- the fsm ---- */

static void ring_push(struct afc_fsm *fsm, uint64_t index, uint64_t digest)
{
    unsigned slot = fsm->ring_next % AFC_DIGEST_RING;
    fsm->ring_index[slot] = index;
    fsm->ring_digest[slot] = digest;
    fsm->ring_next = (slot + 1) % AFC_DIGEST_RING;
}

void afc_fsm_init(struct afc_fsm *fsm)
{
    memset(fsm, 0, sizeof *fsm);
}

/* Index 0 is never a log index, so zeroed slots never match. Newest first. */
bool afc_fsm_digest_at(const struct afc_fsm *fsm, uint64_t index, uint64_t *digest)
{
    if (index == 0) {
        return false;
    }
    for (unsigned k = 1; k <= AFC_DIGEST_RING; k++) {
        unsigned slot = (fsm->ring_next + AFC_DIGEST_RING - k) % AFC_DIGEST_RING;
        if (fsm->ring_index[slot] == index) {
            if (digest != NULL) {
                *digest = fsm->ring_digest[slot];
            }
            return true;
        }
    }
    return false;
}

void afc_fsm_restore(struct afc_fsm *fsm, const struct afc_state *s)
{
    fsm->state = *s;
    memset(fsm->ring_index, 0, sizeof fsm->ring_index);
    memset(fsm->ring_digest, 0, sizeof fsm->ring_digest);
    fsm->ring_next = 0;
    fsm->lease_applied_ms = 0; /* unknown when the restored renewal was applied: count from now */
    ring_push(fsm, s->applied_index, afc_state_digest(s));
}

/* ---- apply handlers: one per op ---- */

typedef enum afc_apply_result (*apply_fn)(struct afc_fsm *fsm, uint64_t index,
                                          const struct afc_cmd *c, struct afc_err *why);

static bool same_members(const struct afc_state *s, const struct afc_cmd *c)
{
    if (s->n_members != c->u.init.n_members) {
        return false;
    }
    for (unsigned i = 0; i < s->n_members; i++) {
        const struct afc_member *a = &s->members[i], *b = &c->u.init.members[i];
        if (a->id != b->id || strcmp(a->name, b->name) != 0 ||
            strcmp(a->raft_addr, b->raft_addr) != 0 || strcmp(a->api_url, b->api_url) != 0) {
            return false;
        }
    }
    return true;
}

/* Comma-separated member names for the "initialized" event. */
static void member_names(const struct afc_state *s, char *buf, size_t cap)
{
    size_t off = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < s->n_members && off < cap; i++) {
        int n = snprintf(buf + off, cap - off, "%s%s", i ? "," : "", s->members[i].name);
        off += n > 0 ? (size_t)n : 0;
    }
}

static enum afc_apply_result apply_init(struct afc_fsm *fsm, uint64_t index,
                                        const struct afc_cmd *c, struct afc_err *why)
{
    struct afc_state *s = &fsm->state;
    if (s->n_members != 0) {
        if (same_members(s, c)) {
            afc_err_set(why, 0, "init: identical member list already set");
            return AFC_APPLY_NOOP;
        }
        afc_err_set(why, AFC_EINVAL, "init: member list already set (%u members)", s->n_members);
        return AFC_APPLY_REJECTED_INVALID;
    }
    s->n_members = c->u.init.n_members;
    memcpy(s->members, c->u.init.members, sizeof s->members);
    char names[AFC_DETAIL_MAX];
    member_names(s, names, sizeof names);
    state_record_event(s, index, c->wall_ms, "initialized", "by=%s members=%s", c->by, names);
    return AFC_APPLY_OK;
}

static enum afc_apply_result apply_pause(struct afc_fsm *fsm, uint64_t index,
                                         const struct afc_cmd *c, struct afc_err *why)
{
    struct afc_state *s = &fsm->state;
    if (s->paused == c->u.pause.paused) {
        afc_err_set(why, 0, "pause: already %s", s->paused ? "paused" : "running");
        return AFC_APPLY_NOOP;
    }
    s->paused = c->u.pause.paused;
    state_record_event(s, index, c->wall_ms, s->paused ? "paused" : "resumed", "by=%s reason=%s",
                       c->by, c->u.pause.reason);
    return AFC_APPLY_OK;
}

/* Compare-and-set on the fencing token: the proposer read `expect_epoch` after its barrier; any
 * promote committed since then makes this one stale, deterministically on every node. */
static enum afc_apply_result apply_promote(struct afc_fsm *fsm, uint64_t index,
                                           const struct afc_cmd *c, struct afc_err *why)
{
    struct afc_state *s = &fsm->state;
    const char *region = c->u.promote.region;
    if (afc_state_member_by_name(s, region) == NULL) {
        afc_err_set(why, AFC_EUNKNOWNMEMBER, "promote %s: not a member", region);
        return AFC_APPLY_REJECTED_INVALID;
    }
    if (c->u.promote.expect_epoch != s->epoch) {
        afc_err_set(why, AFC_ESTALEEPOCH,
                    "promote %s: expect_epoch %" PRIu64 " but current epoch is %" PRIu64, region,
                    c->u.promote.expect_epoch, s->epoch);
        return AFC_APPLY_REJECTED_STALE;
    }
    if (s->epoch == UINT64_MAX) {
        afc_err_set(why, AFC_EINVAL, "promote %s: epoch exhausted", region);
        return AFC_APPLY_REJECTED_INVALID;
    }
    s->epoch = c->u.promote.expect_epoch + 1;
    snprintf(s->primary, sizeof s->primary, "%s", region);
    /* The newly authorized primary has not renewed yet; it is granted lease - margin from when it
     * notices (agent.c). Count the leader's side of that lease from this apply, never from 0:
     * a follower applies this entry no earlier than the leader does. */
    fsm->lease_applied_ms = fsm->apply_clock_ms;
    state_record_event(s, index, c->wall_ms, "promoted", "epoch=%" PRIu64 " region=%s reason=%s",
                       s->epoch, region, c->u.promote.reason);
    return AFC_APPLY_OK;
}

static enum afc_apply_result apply_digest(struct afc_fsm *fsm, uint64_t index,
                                          const struct afc_cmd *c, struct afc_err *why)
{
    uint64_t at = c->u.digest.at_index, mine = 0;
    if (!afc_fsm_digest_at(fsm, at, &mine)) {
        afc_err_set(why, 0, "digest: index %" PRIu64 " no longer in the ring", at);
        return AFC_APPLY_NOOP;
    }
    if (mine == c->u.digest.digest) {
        return AFC_APPLY_OK;
    }
    if (!fsm->diverged) {
        fsm->diverged = true;
        fsm->diverged_index = at;
    }
    afc_err_set(why, AFC_EDIVERGED,
                "state diverged at index %" PRIu64 " (digest command at index %" PRIu64
                "): leader digest %016" PRIx64 ", local digest %016" PRIx64,
                at, index, c->u.digest.digest, mine);
    return AFC_APPLY_DIVERGED;
}

static enum afc_apply_result apply_note(struct afc_fsm *fsm, uint64_t index,
                                        const struct afc_cmd *c, struct afc_err *why)
{
    /* The same note again (a retried or replayed report: same kind, detail and proposer's clock)
     * is not a second event. */
    const struct afc_state *s = &fsm->state;
    for (unsigned k = 0; k < s->history_len; k++) {
        const struct afc_event *e = &s->history[k];
        if (e->wall_ms == c->wall_ms && strcmp(e->kind, c->u.note.kind) == 0 &&
            strcmp(e->detail, c->u.note.detail) == 0) {
            afc_err_set(why, 0, "note %s: already recorded at index %" PRIu64, e->kind, e->index);
            return AFC_APPLY_NOOP;
        }
    }
    state_record_event(&fsm->state, index, c->wall_ms, c->u.note.kind, "%s", c->u.note.detail);
    return AFC_APPLY_OK;
}

/* Drained members are never failover candidates (coordinator/decide.c). Draining the current
 * primary does not move it by itself: the operator's drain-region follows with a switchover. */
static enum afc_apply_result apply_drain(struct afc_fsm *fsm, uint64_t index,
                                         const struct afc_cmd *c, struct afc_err *why)
{
    struct afc_state *s = &fsm->state;
    const char *region = c->u.drain.region;
    const struct afc_member *m = afc_state_member_by_name(s, region);
    if (m == NULL) {
        afc_err_set(why, AFC_EUNKNOWNMEMBER, "drain %s: not a member", region);
        return AFC_APPLY_REJECTED_INVALID;
    }
    bool *flag = &s->drained[m - s->members];
    if (*flag == c->u.drain.drained) {
        afc_err_set(why, 0, "drain %s: already %s", region, *flag ? "drained" : "undrained");
        return AFC_APPLY_NOOP;
    }
    *flag = c->u.drain.drained;
    state_record_event(s, index, c->wall_ms, *flag ? "drained" : "undrained",
                       "region=%s by=%s reason=%s", region, c->by, c->u.drain.reason);
    return AFC_APPLY_OK;
}

static const apply_fn apply_handlers[AFC_OP__COUNT] = {
    [AFC_OP_INIT] = apply_init,
    [AFC_OP_PAUSE] = apply_pause,
    [AFC_OP_PROMOTE] = apply_promote,
    [AFC_OP_DIGEST] = apply_digest,
    [AFC_OP_NOTE] = apply_note,
    [AFC_OP_OBSERVE] = state_apply_observe,
    [AFC_OP_RENEW] = state_apply_renew,
    [AFC_OP_FAILOVER_BEGIN] = state_apply_failover_begin,
    [AFC_OP_FAILOVER_STEP] = state_apply_failover_step,
    [AFC_OP_DRAIN] = apply_drain,
    [AFC_OP_ROUTED] = state_apply_routed,
    [AFC_OP_PUBLISHED] = state_apply_published,
    [AFC_OP_SYNC_SET] = state_apply_sync_set,
};

static bool is_rejection(enum afc_apply_result r)
{
    return r == AFC_APPLY_REJECTED_MALFORMED || r == AFC_APPLY_REJECTED_VERSION ||
           r == AFC_APPLY_REJECTED_STALE || r == AFC_APPLY_REJECTED_INVALID;
}

static enum afc_apply_result apply_bytes(struct afc_fsm *fsm, uint64_t index, const void *buf,
                                         size_t len, struct afc_err *why)
{
    struct afc_cmd cmd;
    int rc = afc_cmd_decode(buf, len, &cmd, why);
    if (rc == AFC_ENOMEM) {
        return AFC_APPLY_RETRY;
    }
    if (rc != 0) {
        afc_err_wrap(why, "index %" PRIu64 ": decode", index);
        return rc == AFC_EVERSION ? AFC_APPLY_REJECTED_VERSION : AFC_APPLY_REJECTED_MALFORMED;
    }
    return apply_handlers[cmd.op](fsm, index, &cmd, why);
}

enum afc_apply_result afc_fsm_apply(struct afc_fsm *fsm, uint64_t index, const void *buf,
                                    size_t len, struct afc_err *why)
{
    if (why != NULL) {
        why->code = 0;
        why->msg[0] = '\0';
    }
    enum afc_apply_result r = apply_bytes(fsm, index, buf, len, why);
    if (r == AFC_APPLY_RETRY) {
        return r; /* transient: the state is untouched and the same entry will be applied again */
    }
    if (is_rejection(r)) {
        fsm->rejected_commands++;
    }
    fsm->state.applied_index = index;
    ring_push(fsm, index, afc_state_digest(&fsm->state));
    return r;
}
