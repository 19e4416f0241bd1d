/*
 * The failover half of the replicated state machine: apply of OBSERVE, RENEW, FAILOVER_BEGIN,
 * FAILOVER_STEP, ROUTED, PUBLISHED and SYNC_SET, and the snapshot encoding of what they record (obs
 * matrix, lease, current failover, receipts ring, synchronous standby set).
 *
 * Safety rules implemented here (ARCHITECTURE.md §4, §5):
 *  - FAILOVER_BEGIN is a compare-and-set on the epoch (§4.1): expect_epoch must be the current
 *    epoch and `from` the current authorized primary, so of two leaders racing with the same view
 *    only the first committed wins. It makes `to` the authorized primary of epoch+1 and clears the
 *    lease, so the old primary's late renewals are rejected (RENEW must name primary and epoch).
 *  - FAILOVER_STEP follows the step table (consensus/failover.c); after PROMOTED only forward.
 *  - ABORTED leaves NO authorized primary (primary = ""): `to` was never promoted, and `from` was
 *    declared failed and fenced, so re-authorizing either silently could give two writers. The
 *    epoch stays consumed; the next FAILOVER_BEGIN names from = "" and picks a candidate afresh
 *    (docs/wire-format.md, "The ABORTED rule").
 *  - The local lease clock (fsm->lease_applied_ms) is set from fsm->apply_clock_ms only by a valid
 *    RENEW; it is node-local and never in the snapshot or digest.
 *
 * Everything recorded comes from the command and the log index (never a local clock), so every
 * node computes the same digest.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "consensus/msgpack_util.h"
#include "consensus/state_internal.h"

/* ---- helpers ---- */

static int member_index(const struct afc_state *s, const char *name)
{
    const struct afc_member *m = afc_state_member_by_name(s, name);
    return m == NULL ? -1 : (int)(m - s->members);
}

static const char *or_none(const char *name)
{
    return name[0] != '\0' ? name : "none";
}

static bool same_obs(const struct afc_pg_obs *a, const struct afc_pg_obs *b)
{
    return a->healthy == b->healthy && a->role == b->role && a->timeline == b->timeline &&
           a->lsn == b->lsn && a->replay_lsn == b->replay_lsn && a->lag_ms == b->lag_ms &&
           strcmp(a->upstream, b->upstream) == 0 && a->local_dead == b->local_dead;
}

static bool is_down(const struct afc_pg_obs *o)
{
    return !o->healthy || o->local_dead;
}

static void push_receipt(struct afc_state *s)
{
    s->failovers[s->failovers_next % AFC_FAILOVERS_MAX] = s->failover;
    s->failovers_next = (s->failovers_next + 1) % AFC_FAILOVERS_MAX;
    if (s->failovers_len < AFC_FAILOVERS_MAX) {
        s->failovers_len++;
    }
}

static const struct afc_failover *receipt_at(const struct afc_state *s, unsigned i)
{
    unsigned oldest =
        (s->failovers_next + AFC_FAILOVERS_MAX - s->failovers_len) % AFC_FAILOVERS_MAX;
    return &s->failovers[(oldest + i) % AFC_FAILOVERS_MAX];
}

/* ---- OBSERVE ---- */

enum afc_apply_result state_apply_observe(struct afc_fsm *fsm, uint64_t index,
                                          const struct afc_cmd *c, struct afc_err *why)
{
    struct afc_state *s = &fsm->state;
    int i = member_index(s, c->u.observe.observer), j = member_index(s, c->u.observe.target);
    if (i < 0 || j < 0) {
        afc_err_set(why, AFC_EUNKNOWNMEMBER, "observe: %s is not a member",
                    i < 0 ? c->u.observe.observer : c->u.observe.target);
        return AFC_APPLY_REJECTED_INVALID;
    }
    struct afc_pg_obs *old = &s->obs[i][j], now = c->u.observe.obs;
    now.valid = true;
    /* Reports travel concurrently and may be retried or replayed: only a newer one counts. */
    if (old->valid && now.seq <= old->seq) {
        afc_err_set(why, AFC_ESTALESEQ,
                    "observe: %s on %s: seq %" PRIu64 " is not after %" PRIu64
                    " (a delayed or replayed report)",
                    c->u.observe.observer, c->u.observe.target, now.seq, old->seq);
        return AFC_APPLY_REJECTED_STALE;
    }
    if (old->valid && same_obs(old, &now)) {
        old->seq = now.seq; /* so that an older report with other facts stays refused */
        afc_err_set(why, 0, "observe: %s on %s unchanged", c->u.observe.observer,
                    c->u.observe.target);
        return AFC_APPLY_NOOP;
    }
    /* History only on transitions (HAProxy style): a first report counts only if it is "down". */
    bool flipped = old->valid ? old->healthy != now.healthy || old->local_dead != now.local_dead
                              : is_down(&now);
    *old = now;
    if (flipped) {
        state_record_event(s, index, c->wall_ms, is_down(&now) ? "pg-down" : "pg-up",
                           "observer=%s target=%s", c->u.observe.observer, c->u.observe.target);
    }
    return AFC_APPLY_OK;
}

/* ---- RENEW ---- */

enum afc_apply_result state_apply_renew(struct afc_fsm *fsm, uint64_t index,
                                        const struct afc_cmd *c, struct afc_err *why)
{
    struct afc_state *s = &fsm->state;
    if (s->primary[0] == '\0' || strcmp(c->u.renew.region, s->primary) != 0 ||
        c->u.renew.epoch != s->epoch) {
        afc_err_set(why, AFC_ESTALEEPOCH,
                    "renew %s epoch %" PRIu64 ": authorized primary is %s at epoch %" PRIu64,
                    c->u.renew.region, c->u.renew.epoch, or_none(s->primary), s->epoch);
        return AFC_APPLY_REJECTED_STALE;
    }
    /* The renewer's sequence only grows (seeded from its wall clock at start): a delayed or
     * replayed renewal must not extend the lease. */
    if (strcmp(s->lease.region, c->u.renew.region) == 0 && s->lease.epoch == c->u.renew.epoch &&
        c->u.renew.seq <= s->lease.seq) {
        afc_err_set(why, AFC_ESTALESEQ,
                    "renew %s epoch %" PRIu64 ": seq %" PRIu64 " is not after %" PRIu64
                    " (a delayed or replayed renewal)",
                    c->u.renew.region, c->u.renew.epoch, c->u.renew.seq, s->lease.seq);
        return AFC_APPLY_REJECTED_STALE;
    }
    snprintf(s->lease.region, sizeof s->lease.region, "%s", c->u.renew.region);
    s->lease.epoch = c->u.renew.epoch;
    s->lease.seq = c->u.renew.seq;
    s->lease.index = index;
    fsm->lease_applied_ms = fsm->apply_clock_ms;
    return AFC_APPLY_OK;
}

/* ---- FAILOVER_BEGIN ---- */

static enum afc_apply_result check_begin(const struct afc_state *s, const struct afc_cmd *c,
                                         struct afc_err *why)
{
    const __typeof__(c->u.failover_begin) *b = &c->u.failover_begin;
    if (b->expect_epoch != s->epoch) {
        afc_err_set(why, AFC_ESTALEEPOCH,
                    "failover-begin: expect_epoch %" PRIu64 " but current epoch is %" PRIu64,
                    b->expect_epoch, s->epoch);
        return AFC_APPLY_REJECTED_STALE;
    }
    if (strcmp(b->from, s->primary) != 0) {
        afc_err_set(why, AFC_ESTALEEPOCH, "failover-begin: from %s but the primary is %s",
                    or_none(b->from), or_none(s->primary));
        return AFC_APPLY_REJECTED_STALE;
    }
    if (s->primary[0] == '\0' && s->failover.step != AFC_FO_ABORTED) {
        afc_err_set(why, AFC_EINVAL, "failover-begin: no primary adopted yet");
        return AFC_APPLY_REJECTED_INVALID;
    }
    if (member_index(s, b->to) < 0 || strcmp(b->to, b->from) == 0) {
        afc_err_set(why, AFC_EUNKNOWNMEMBER, "failover-begin: to %s is not another member", b->to);
        return AFC_APPLY_REJECTED_INVALID;
    }
    if (!afc_fo_step_is_final(s->failover.step) || s->epoch == UINT64_MAX) {
        afc_err_set(why, AFC_EINVAL, "failover-begin: failover of epoch %" PRIu64 " is %s",
                    s->failover.epoch, afc_fo_step_name(s->failover.step));
        return AFC_APPLY_REJECTED_INVALID;
    }
    return AFC_APPLY_OK;
}

enum afc_apply_result state_apply_failover_begin(struct afc_fsm *fsm, uint64_t index,
                                                 const struct afc_cmd *c, struct afc_err *why)
{
    struct afc_state *s = &fsm->state;
    const __typeof__(c->u.failover_begin) *b = &c->u.failover_begin;
    enum afc_apply_result r = check_begin(s, c, why);
    if (r != AFC_APPLY_OK) {
        return r;
    }
    struct afc_failover *f = &s->failover;
    memset(f, 0, sizeof *f);
    s->epoch++;
    f->epoch = s->epoch;
    snprintf(f->from, sizeof f->from, "%s", b->from);
    snprintf(f->to, sizeof f->to, "%s", b->to);
    snprintf(f->reason, sizeof f->reason, "%s", b->reason);
    f->step = AFC_FO_DECIDED;
    f->planned = b->planned;
    f->forced = b->forced;
    f->decided_index = index;
    f->decided_term = b->term;
    f->detected_ms = b->detected_ms;
    f->decided_ms = c->wall_ms;
    f->old_lsn = b->old_lsn;
    snprintf(s->primary, sizeof s->primary, "%s", b->to);
    memset(&s->lease, 0, sizeof s->lease);
    fsm->lease_applied_ms = fsm->apply_clock_ms; /* as for promote (state.c): from this apply */
    fsm->failover_applied_ms = fsm->apply_clock_ms;
    state_record_event(s, index, c->wall_ms, "failover-decided",
                       "epoch=%" PRIu64 " from=%s to=%s reason=%s", f->epoch, or_none(f->from),
                       f->to, f->reason);
    return AFC_APPLY_OK;
}

/* ---- FAILOVER_STEP ---- */

static enum afc_apply_result check_step(const struct afc_state *s, const struct afc_cmd *c,
                                        struct afc_err *why)
{
    const struct afc_failover *f = &s->failover;
    enum afc_fo_step to = (enum afc_fo_step)c->u.failover_step.step;
    if (c->u.failover_step.epoch != f->epoch) {
        afc_err_set(why, AFC_ESTALEEPOCH,
                    "failover-step %s: epoch %" PRIu64 " but the current failover is %" PRIu64,
                    afc_fo_step_name(to), c->u.failover_step.epoch, f->epoch);
        return AFC_APPLY_REJECTED_STALE;
    }
    if (!afc_fo_step_allowed(f->step, to)) {
        afc_err_set(why, AFC_EINVAL, "failover-step: %s -> %s not allowed",
                    afc_fo_step_name(f->step), afc_fo_step_name(to));
        return AFC_APPLY_REJECTED_INVALID;
    }
    /* Only the candidate knows it has detached and caught up, or promoted: a report from anyone
     * else (a late action of another node, a confused peer) must not advance the sequence. */
    if ((to == AFC_FO_FENCED || to == AFC_FO_PROMOTED) && strcmp(c->by, f->to) != 0) {
        afc_err_set(why, AFC_EINVAL, "failover-step %s by %s: only the candidate %s reports it",
                    afc_fo_step_name(to), c->by, f->to);
        return AFC_APPLY_REJECTED_INVALID;
    }
    /* Steps that act need the failover's epoch to still be current: an operator promote since
     * then superseded it (it can still be closed with DONE/ABORTED). */
    if ((to == AFC_FO_FENCED || to == AFC_FO_PROMOTED) && s->epoch != f->epoch) {
        afc_err_set(why, AFC_ESTALEEPOCH,
                    "failover-step %s: epoch %" PRIu64 " superseded by %" PRIu64,
                    afc_fo_step_name(to), f->epoch, s->epoch);
        return AFC_APPLY_REJECTED_STALE;
    }
    return AFC_APPLY_OK;
}

static void record_step(struct afc_state *s, uint64_t index, const struct afc_cmd *c)
{
    const struct afc_failover *f = &s->failover;
    char kind[AFC_NAME_MAX], lsn[48] = "";
    const char *detail = c->u.failover_step.detail;
    snprintf(kind, sizeof kind, "failover-%s", afc_fo_step_name(f->step));
    if (f->step == AFC_FO_PROMOTED) {
        snprintf(lsn, sizeof lsn, " timeline=%" PRIu32 " lsn=%X/%X", f->timeline,
                 (unsigned)(f->promoted_lsn >> 32), (unsigned)(f->promoted_lsn & 0xffffffffu));
    }
    state_record_event(s, index, c->wall_ms, kind, "epoch=%" PRIu64 " from=%s to=%s%s%s%s",
                       f->epoch, or_none(f->from), f->to, lsn, detail[0] ? " detail=" : "", detail);
}

enum afc_apply_result state_apply_failover_step(struct afc_fsm *fsm, uint64_t index,
                                                const struct afc_cmd *c, struct afc_err *why)
{
    struct afc_state *s = &fsm->state;
    struct afc_failover *f = &s->failover;
    enum afc_apply_result r = check_step(s, c, why);
    if (r != AFC_APPLY_OK) {
        return r;
    }
    f->step = (enum afc_fo_step)c->u.failover_step.step;
    switch (f->step) {
    case AFC_FO_FENCED:
        f->fenced_ms = c->wall_ms;
        break;
    case AFC_FO_PROMOTED:
        f->promoted_ms = c->wall_ms;
        f->timeline = c->u.failover_step.timeline;
        f->promoted_lsn = c->u.failover_step.lsn;
        break;
    case AFC_FO_DONE:
        f->done_ms = c->wall_ms;
        break;
    default: /* ABORTED: the table allows nothing else here */
        f->aborted_ms = c->wall_ms;
        if (s->epoch == f->epoch) {
            s->primary[0] = '\0'; /* the ABORTED rule: nobody is authorized (see top) */
            memset(s->primary, 0, sizeof s->primary);
        }
        break;
    }
    record_step(s, index, c);
    if (afc_fo_step_is_final(f->step)) {
        push_receipt(s);
    }
    return AFC_APPLY_OK;
}

/* ---- SYNC_SET: the primary's synchronous standby set (replication.mode: sync) ---- */

/* "a,b" from a per-member flag array, "none" if empty. */
static void set_names(const struct afc_state *s, const bool *set, char *buf, size_t cap)
{
    size_t off = 0;
    snprintf(buf, cap, "none");
    for (unsigned i = 0; i < s->n_members && i < AFC_MAX_MEMBERS && off < cap; i++) {
        if (set[i]) {
            int n = snprintf(buf + off, cap - off, "%s%s", off ? "," : "", s->members[i].name);
            off += n > 0 ? (size_t)n : 0;
        }
    }
}

enum afc_apply_result state_apply_sync_set(struct afc_fsm *fsm, uint64_t index,
                                           const struct afc_cmd *c, struct afc_err *why)
{
    struct afc_state *s = &fsm->state;
    const __typeof__(c->u.sync_set) *y = &c->u.sync_set;
    /* Only the authorized primary of the current epoch says what its PostgreSQL waits on: a
     * deposed primary's late report must not change the set the next decision relies on. */
    if (s->primary[0] == '\0' || strcmp(y->region, s->primary) != 0 || y->epoch != s->epoch) {
        afc_err_set(why, AFC_ESTALEEPOCH,
                    "sync-set %s epoch %" PRIu64 ": authorized primary is %s at epoch %" PRIu64,
                    y->region, y->epoch, or_none(s->primary), s->epoch);
        return AFC_APPLY_REJECTED_STALE;
    }
    bool set[AFC_MAX_MEMBERS] = {false};
    for (unsigned k = 0; k < y->n_standbys && k < AFC_MAX_MEMBERS; k++) {
        int j = member_index(s, y->standbys[k]);
        if (j < 0) {
            afc_err_set(why, AFC_EUNKNOWNMEMBER, "sync-set: %s is not a member", y->standbys[k]);
            return AFC_APPLY_REJECTED_INVALID;
        }
        set[j] = true;
    }
    struct afc_sync *r = &s->sync;
    if (strcmp(r->region, y->region) == 0 && r->epoch == y->epoch && r->active == y->active &&
        memcmp(r->standby, set, sizeof set) == 0) {
        afc_err_set(why, 0, "sync-set %s: unchanged", y->region);
        return AFC_APPLY_NOOP;
    }
    memset(r, 0, sizeof *r);
    snprintf(r->region, sizeof r->region, "%s", y->region);
    r->epoch = y->epoch;
    r->active = y->active;
    memcpy(r->standby, set, sizeof set);
    r->index = index;
    char names[AFC_DETAIL_MAX];
    set_names(s, r->standby, names, sizeof names);
    state_record_event(s, index, c->wall_ms, "sync-standbys",
                       "region=%s epoch=%" PRIu64 " %s%s%s%s", r->region, r->epoch,
                       r->active ? "standbys=" : "async", r->active ? names : "",
                       y->detail[0] ? " detail=" : "", y->detail);
    return AFC_APPLY_OK;
}

/* ---- snapshot ---- */

static int pack_obs(msgpack_packer *pk, const struct afc_state *s, unsigned n)
{
    int rc = codec_pack_cstr(pk, "obs") | msgpack_pack_array(pk, n);
    for (unsigned i = 0; i < n && rc == 0; i++) {
        rc |= msgpack_pack_array(pk, n);
        for (unsigned j = 0; j < n && rc == 0; j++) {
            const struct afc_pg_obs *o = &s->obs[i][j];
            rc |= o->valid ? msgpack_pack_map(pk, CODEC_OBS_KEYS) | codec_pack_obs_fields(pk, o)
                           : msgpack_pack_nil(pk);
        }
    }
    return rc;
}

/* "sync" is written only once a primary has set it, so a cluster that never ran in sync mode
 * encodes (and digests) exactly as before the key existed. */
static bool has_sync(const struct afc_state *s)
{
    return s->sync.region[0] != '\0';
}

unsigned state_failover_key_count(const struct afc_state *s)
{
    return 4 + has_sync(s);
}

static int pack_sync(msgpack_packer *pk, const struct afc_state *s, unsigned n)
{
    char names[AFC_MAX_MEMBERS][AFC_NAME_MAX];
    unsigned k = 0;
    for (unsigned i = 0; i < n; i++) {
        if (s->sync.standby[i]) {
            memcpy(names[k++], s->members[i].name, AFC_NAME_MAX);
        }
    }
    return codec_pack_cstr(pk, "sync") | msgpack_pack_map(pk, 5) |
           codec_pack_kv_str(pk, "region", s->sync.region) |
           codec_pack_kv_u64(pk, "epoch", s->sync.epoch) |
           codec_pack_kv_bool(pk, "active", s->sync.active) | codec_pack_cstr(pk, "standbys") |
           codec_pack_names(pk, (const char(*)[AFC_NAME_MAX])names, k) |
           codec_pack_kv_u64(pk, "index", s->sync.index);
}

int state_pack_failover(msgpack_packer *pk, const struct afc_state *s)
{
    unsigned n = s->n_members < AFC_MAX_MEMBERS ? s->n_members : AFC_MAX_MEMBERS;
    unsigned nf = s->failovers_len < AFC_FAILOVERS_MAX ? s->failovers_len : AFC_FAILOVERS_MAX;
    struct afc_state view = *s;
    view.failovers_len = nf;
    int rc = pack_obs(pk, s, n);
    rc |= codec_pack_cstr(pk, "lease") | msgpack_pack_map(pk, 4);
    rc |= codec_pack_kv_str(pk, "region", s->lease.region);
    rc |= codec_pack_kv_u64(pk, "epoch", s->lease.epoch);
    rc |= codec_pack_kv_u64(pk, "seq", s->lease.seq);
    rc |= codec_pack_kv_u64(pk, "index", s->lease.index);
    rc |= codec_pack_cstr(pk, "failover") | codec_pack_failover(pk, &s->failover);
    rc |= codec_pack_cstr(pk, "failovers") | msgpack_pack_array(pk, nf);
    for (unsigned i = 0; i < nf && rc == 0; i++) {
        rc |= codec_pack_failover(pk, receipt_at(&view, i));
    }
    if (has_sync(s)) {
        rc |= pack_sync(pk, s, n);
    }
    return rc;
}

bool state_failover_is_encodable(const struct afc_state *s)
{
    if (s->failovers_len > AFC_FAILOVERS_MAX ||
        !codec_is_terminated(s->lease.region, sizeof s->lease.region) ||
        !codec_is_terminated(s->sync.region, sizeof s->sync.region) ||
        codec_check_failover(&s->failover, AFC_EINVAL, NULL) != 0) {
        return false;
    }
    for (unsigned i = 0; i < s->failovers_len; i++) {
        if (codec_check_failover(receipt_at(s, i), AFC_EINVAL, NULL) != 0) {
            return false;
        }
    }
    for (unsigned i = 0; i < s->n_members && i < AFC_MAX_MEMBERS; i++) {
        for (unsigned j = 0; j < s->n_members && j < AFC_MAX_MEMBERS; j++) {
            const struct afc_pg_obs *o = &s->obs[i][j];
            if (o->valid && ((unsigned)o->role > AFC_PG_REPLICA ||
                             !codec_is_terminated(o->upstream, sizeof o->upstream))) {
                return false;
            }
        }
    }
    return true;
}

static int decode_obs_row(const msgpack_object *row, struct afc_state *s, unsigned i,
                          struct afc_err *why)
{
    if (row->type != MSGPACK_OBJECT_ARRAY || row->via.array.size != s->n_members) {
        return afc_err_set(why, AFC_EMALFORMED, "obs row %u: not an array of %u", i, s->n_members);
    }
    for (unsigned j = 0; j < s->n_members; j++) {
        const msgpack_object *o = &row->via.array.ptr[j];
        if (o->type == MSGPACK_OBJECT_NIL) {
            continue;
        }
        if (codec_check_map(o, "obs", why) != 0 ||
            codec_decode_obs_fields(o, &s->obs[i][j], why) != 0) {
            return afc_err_wrap(why, "obs[%u][%u]", i, j);
        }
        s->obs[i][j].valid = true;
    }
    return 0;
}

static int decode_obs(const msgpack_object *arr, struct afc_state *s, struct afc_err *why)
{
    if (arr == NULL) {
        return 0;
    }
    if (arr->type != MSGPACK_OBJECT_ARRAY || arr->via.array.size != s->n_members) {
        return afc_err_set(why, AFC_EMALFORMED, "obs: not an array of %u rows", s->n_members);
    }
    for (unsigned i = 0; i < s->n_members; i++) {
        if (decode_obs_row(&arr->via.array.ptr[i], s, i, why) != 0) {
            return AFC_EMALFORMED;
        }
    }
    return 0;
}

static int decode_lease(const msgpack_object *o, struct afc_state *s, struct afc_err *why)
{
    if (o == NULL) {
        return 0;
    }
    if (codec_check_map(o, "lease", why) != 0 ||
        codec_get_str(o, "region", s->lease.region, sizeof s->lease.region, why) != 0 ||
        codec_get_u64(o, "epoch", &s->lease.epoch, why) != 0 ||
        codec_get_u64(o, "seq", &s->lease.seq, why) != 0 ||
        codec_get_u64(o, "index", &s->lease.index, why) != 0) {
        return afc_err_wrap(why, "lease");
    }
    if (s->lease.region[0] != '\0' && member_index(s, s->lease.region) < 0) {
        return afc_err_set(why, AFC_EMALFORMED, "lease: %s is not a member", s->lease.region);
    }
    return 0;
}

static int decode_receipts(const msgpack_object *arr, struct afc_state *s, struct afc_err *why)
{
    if (arr == NULL) {
        return 0;
    }
    if (arr->type != MSGPACK_OBJECT_ARRAY || arr->via.array.size > AFC_FAILOVERS_MAX) {
        return afc_err_set(why, AFC_EMALFORMED, "failovers: not an array of at most %d",
                           AFC_FAILOVERS_MAX);
    }
    s->failovers_len = arr->via.array.size;
    s->failovers_next = s->failovers_len % AFC_FAILOVERS_MAX;
    for (unsigned i = 0; i < s->failovers_len; i++) {
        if (codec_decode_failover(&arr->via.array.ptr[i], &s->failovers[i], why) != 0) {
            return afc_err_wrap(why, "failovers[%u]", i);
        }
    }
    return 0;
}

/* "sync": absent = never set. Its standbys must be members other than its region. */
static int decode_sync(const msgpack_object *o, struct afc_state *s, struct afc_err *why)
{
    char names[AFC_MAX_MEMBERS][AFC_NAME_MAX];
    unsigned n = 0;
    struct afc_sync *r = &s->sync;
    if (o == NULL) {
        return 0;
    }
    if (codec_check_map(o, "sync", why) != 0 ||
        codec_get_str(o, "region", r->region, sizeof r->region, why) != 0 ||
        codec_get_u64(o, "epoch", &r->epoch, why) != 0 ||
        codec_get_bool(o, "active", &r->active, why) != 0 ||
        codec_decode_names(codec_map_find(o, "standbys"), "standbys", names, &n, why) != 0 ||
        codec_get_u64(o, "index", &r->index, why) != 0) {
        return afc_err_wrap(why, "sync");
    }
    if (member_index(s, r->region) < 0) {
        return afc_err_set(why, AFC_EMALFORMED, "sync: region \"%s\" is not a member", r->region);
    }
    for (unsigned k = 0; k < n; k++) {
        int j = member_index(s, names[k]);
        if (j < 0 || strcmp(names[k], r->region) == 0 || r->standby[j]) {
            return afc_err_set(why, AFC_EMALFORMED,
                               "sync: standby \"%s\" is not another member, or listed twice",
                               names[k]);
        }
        r->standby[j] = true;
    }
    return 0;
}

int state_decode_failover(const msgpack_object *m, struct afc_state *s, struct afc_err *why)
{
    const msgpack_object *f = codec_map_find(m, "failover");
    if (decode_obs(codec_map_find(m, "obs"), s, why) != 0 ||
        decode_lease(codec_map_find(m, "lease"), s, why) != 0 ||
        (f != NULL && codec_decode_failover(f, &s->failover, why) != 0) ||
        decode_receipts(codec_map_find(m, "failovers"), s, why) != 0 ||
        decode_sync(codec_map_find(m, "sync"), s, why) != 0) {
        return AFC_EMALFORMED;
    }
    return 0;
}

/* ---- ROUTED and PUBLISHED: after the promotion, clients are told (ARCHITECTURE.md §5, 4–5) ----
 */

/* Both need the failover of their epoch to be current and past its promotion (they may come
 * after DONE: the database side does not wait for DNS or Redis). */
static enum afc_apply_result check_delivery(const struct afc_state *s, const char *op,
                                            afc_epoch epoch, struct afc_err *why)
{
    const struct afc_failover *f = &s->failover;
    if (epoch != f->epoch || s->epoch != f->epoch) {
        afc_err_set(why, AFC_ESTALEEPOCH,
                    "%s: epoch %" PRIu64 " but the current failover is %" PRIu64
                    " and the epoch %" PRIu64,
                    op, epoch, f->epoch, s->epoch);
        return AFC_APPLY_REJECTED_STALE;
    }
    if (f->step != AFC_FO_PROMOTED && f->step != AFC_FO_DONE) {
        afc_err_set(why, AFC_EINVAL, "%s: the failover of epoch %" PRIu64 " is at %s, not promoted",
                    op, epoch, afc_fo_step_name(f->step));
        return AFC_APPLY_REJECTED_INVALID;
    }
    return AFC_APPLY_OK;
}

/* The receipt already pushed at DONE gets the late news too. */
static struct afc_failover *pushed_receipt(struct afc_state *s, afc_epoch epoch)
{
    for (unsigned i = 0; i < s->failovers_len && i < AFC_FAILOVERS_MAX; i++) {
        if (s->failovers[i].epoch == epoch) {
            return &s->failovers[i];
        }
    }
    return NULL;
}

enum afc_apply_result state_apply_routed(struct afc_fsm *fsm, uint64_t index,
                                         const struct afc_cmd *c, struct afc_err *why)
{
    struct afc_state *s = &fsm->state;
    struct afc_failover *f = &s->failover;
    enum afc_apply_result r = check_delivery(s, "routed", c->u.routed.epoch, why);
    if (r != AFC_APPLY_OK) {
        return r;
    }
    if (f->routed_ms != 0) {
        afc_err_set(why, 0, "routed: epoch %" PRIu64 " already routed", f->epoch);
        return AFC_APPLY_NOOP;
    }
    f->routed_ms = c->wall_ms != 0 ? c->wall_ms : 1;
    snprintf(f->routed_address, sizeof f->routed_address, "%s", c->u.routed.address);
    struct afc_failover *pushed = pushed_receipt(s, f->epoch);
    if (pushed != NULL) {
        pushed->routed_ms = f->routed_ms;
        memcpy(pushed->routed_address, f->routed_address, sizeof f->routed_address);
    }
    state_record_event(s, index, c->wall_ms, "routed", "epoch=%" PRIu64 " region=%s address=%s%s%s",
                       f->epoch, f->to, f->routed_address, c->u.routed.detail[0] ? " " : "",
                       c->u.routed.detail);
    return AFC_APPLY_OK;
}

enum afc_apply_result state_apply_published(struct afc_fsm *fsm, uint64_t index,
                                            const struct afc_cmd *c, struct afc_err *why)
{
    struct afc_state *s = &fsm->state;
    struct afc_failover *f = &s->failover;
    int i = member_index(s, c->u.published.region);
    if (i < 0) {
        afc_err_set(why, AFC_EUNKNOWNMEMBER, "published: %s is not a member",
                    c->u.published.region);
        return AFC_APPLY_REJECTED_INVALID;
    }
    enum afc_apply_result r = check_delivery(s, "published", c->u.published.epoch, why);
    if (r != AFC_APPLY_OK) {
        return r;
    }
    if (f->published_ms[i] != 0) {
        afc_err_set(why, 0, "published: epoch %" PRIu64 " already in %s's Redis", f->epoch,
                    c->u.published.region);
        return AFC_APPLY_NOOP;
    }
    f->published_ms[i] = c->wall_ms != 0 ? c->wall_ms : 1;
    struct afc_failover *pushed = pushed_receipt(s, f->epoch);
    if (pushed != NULL) {
        pushed->published_ms[i] = f->published_ms[i];
    }
    state_record_event(s, index, c->wall_ms, "published", "epoch=%" PRIu64 " region=%s%s%s",
                       f->epoch, c->u.published.region, c->u.published.detail[0] ? " " : "",
                       c->u.published.detail);
    return AFC_APPLY_OK;
}
