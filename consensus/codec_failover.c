/*
 * Codec of the failover payloads: the failover commands (observe, renew, failover-begin,
 * failover-step, routed, published, sync-set) and the observation/receipt maps that the snapshot
 * (state_failover.c) shares with them. codec.c dispatches here for those ops; the rules are the
 * same as for the other ops (docs/wire-format.md): fixed key order on encode, strict types and
 * string caps on decode, and one semantic check run by both directions. Enums travel as their names
 * ("primary", "fenced"); an unknown name is malformed, never mapped to a default.
 *
 * Module-internal (prototypes in msgpack_util.h). Pure: libc + msgpack.
 */
#include <stdint.h>
#include <string.h>

#include "afc/state.h"
#include "consensus/msgpack_util.h"

/* ---- enum names ---- */

static int get_role(const msgpack_object *m, const char *key, enum afc_pg_role *r,
                    struct afc_err *why)
{
    char name[AFC_NAME_MAX];
    if (codec_get_str(m, key, name, sizeof name, why) != 0) {
        return AFC_EMALFORMED;
    }
    for (int i = AFC_PG_UNKNOWN; i <= AFC_PG_REPLICA; i++) {
        if (strcmp(name, afc_pg_role_name((enum afc_pg_role)i)) == 0) {
            *r = (enum afc_pg_role)i;
            return 0;
        }
    }
    return afc_err_set(why, AFC_EMALFORMED, "key \"%s\": unknown role \"%s\"", key, name);
}

static int get_step(const msgpack_object *m, const char *key, enum afc_fo_step *s,
                    struct afc_err *why)
{
    char name[AFC_NAME_MAX];
    if (codec_get_str(m, key, name, sizeof name, why) != 0) {
        return AFC_EMALFORMED;
    }
    for (int i = 0; i < AFC_FO__COUNT; i++) {
        if (strcmp(name, afc_fo_step_name((enum afc_fo_step)i)) == 0) {
            *s = (enum afc_fo_step)i;
            return 0;
        }
    }
    return afc_err_set(why, AFC_EMALFORMED, "key \"%s\": unknown step \"%s\"", key, name);
}

static bool is_role(enum afc_pg_role r)
{
    return (unsigned)r <= AFC_PG_REPLICA;
}

/* ---- observations ---- */

int codec_pack_obs_fields(msgpack_packer *pk, const struct afc_pg_obs *o)
{
    return codec_pack_kv_bool(pk, "healthy", o->healthy) |
           codec_pack_kv_str(pk, "role", afc_pg_role_name(o->role)) |
           codec_pack_kv_u64(pk, "timeline", o->timeline) | codec_pack_kv_u64(pk, "lsn", o->lsn) |
           codec_pack_kv_u64(pk, "replay_lsn", o->replay_lsn) |
           codec_pack_kv_u64(pk, "lag_ms", o->lag_ms) |
           codec_pack_kv_str(pk, "upstream", o->upstream) |
           codec_pack_kv_bool(pk, "local_dead", o->local_dead) |
           codec_pack_kv_i64(pk, "t_obs", o->wall_ms) | codec_pack_kv_u64(pk, "seq", o->seq);
}

int codec_decode_obs_fields(const msgpack_object *m, struct afc_pg_obs *o, struct afc_err *why)
{
    if (codec_get_bool(m, "healthy", &o->healthy, why) != 0 ||
        get_role(m, "role", &o->role, why) != 0 ||
        codec_get_u32(m, "timeline", &o->timeline, why) != 0 ||
        codec_get_u64(m, "lsn", &o->lsn, why) != 0 ||
        codec_get_u64(m, "replay_lsn", &o->replay_lsn, why) != 0 ||
        codec_get_u32(m, "lag_ms", &o->lag_ms, why) != 0 ||
        codec_get_str(m, "upstream", o->upstream, sizeof o->upstream, why) != 0 ||
        codec_get_bool(m, "local_dead", &o->local_dead, why) != 0 ||
        codec_get_i64(m, "t_obs", &o->wall_ms, why) != 0 ||
        codec_get_u64(m, "seq", &o->seq, why) != 0) {
        return AFC_EMALFORMED;
    }
    return 0;
}

static int check_obs(const struct afc_pg_obs *o, int code, struct afc_err *why)
{
    if (!is_role(o->role)) {
        return afc_err_set(why, code, "observe: role %d out of range", (int)o->role);
    }
    if (!codec_is_terminated(o->upstream, sizeof o->upstream)) {
        return afc_err_set(why, code, "observe: upstream: unterminated string");
    }
    return 0;
}

/* ---- failover receipts (snapshot) ---- */

int codec_pack_failover(msgpack_packer *pk, const struct afc_failover *f)
{
    int rc = msgpack_pack_map(pk, 21);
    rc |= codec_pack_kv_u64(pk, "epoch", f->epoch);
    rc |= codec_pack_kv_str(pk, "from", f->from);
    rc |= codec_pack_kv_str(pk, "to", f->to);
    rc |= codec_pack_kv_str(pk, "step", afc_fo_step_name(f->step));
    rc |= codec_pack_kv_str(pk, "reason", f->reason);
    rc |= codec_pack_kv_bool(pk, "planned", f->planned);
    rc |= codec_pack_kv_bool(pk, "forced", f->forced);
    rc |= codec_pack_kv_u64(pk, "decided_index", f->decided_index);
    rc |= codec_pack_kv_u64(pk, "decided_term", f->decided_term);
    rc |= codec_pack_kv_i64(pk, "detected_ms", f->detected_ms);
    rc |= codec_pack_kv_i64(pk, "decided_ms", f->decided_ms);
    rc |= codec_pack_kv_i64(pk, "fenced_ms", f->fenced_ms);
    rc |= codec_pack_kv_i64(pk, "promoted_ms", f->promoted_ms);
    rc |= codec_pack_kv_i64(pk, "done_ms", f->done_ms);
    rc |= codec_pack_kv_i64(pk, "aborted_ms", f->aborted_ms);
    rc |= codec_pack_kv_u64(pk, "timeline", f->timeline);
    rc |= codec_pack_kv_u64(pk, "promoted_lsn", f->promoted_lsn);
    rc |= codec_pack_kv_u64(pk, "old_lsn", f->old_lsn);
    rc |= codec_pack_kv_i64(pk, "routed_ms", f->routed_ms);
    rc |= codec_pack_kv_str(pk, "routed_address", f->routed_address);
    rc |= codec_pack_cstr(pk, "published_ms") | msgpack_pack_array(pk, AFC_FO_MEMBERS);
    for (unsigned i = 0; i < AFC_FO_MEMBERS; i++) {
        rc |= msgpack_pack_int64(pk, f->published_ms[i]);
    }
    return rc;
}

static int decode_published(const msgpack_object *o, struct afc_failover *f, struct afc_err *why)
{
    const msgpack_object *a = codec_map_find(o, "published_ms");
    if (a == NULL || a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size != AFC_FO_MEMBERS) {
        return afc_err_set(why, AFC_EMALFORMED, "published_ms: not an array of %d times",
                           AFC_FO_MEMBERS);
    }
    for (unsigned i = 0; i < AFC_FO_MEMBERS; i++) {
        const msgpack_object *t = &a->via.array.ptr[i];
        if (t->type == MSGPACK_OBJECT_POSITIVE_INTEGER && t->via.u64 <= INT64_MAX) {
            f->published_ms[i] = (int64_t)t->via.u64;
        } else if (t->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
            f->published_ms[i] = t->via.i64;
        } else {
            return afc_err_set(why, AFC_EMALFORMED, "published_ms[%u]: not an integer", i);
        }
    }
    return 0;
}

static int decode_failover_times(const msgpack_object *o, struct afc_failover *f,
                                 struct afc_err *why)
{
    return codec_get_i64(o, "detected_ms", &f->detected_ms, why) ||
           codec_get_i64(o, "decided_ms", &f->decided_ms, why) ||
           codec_get_i64(o, "fenced_ms", &f->fenced_ms, why) ||
           codec_get_i64(o, "promoted_ms", &f->promoted_ms, why) ||
           codec_get_i64(o, "done_ms", &f->done_ms, why) ||
           codec_get_i64(o, "aborted_ms", &f->aborted_ms, why);
}

int codec_decode_failover(const msgpack_object *o, struct afc_failover *f, struct afc_err *why)
{
    memset(f, 0, sizeof *f);
    if (codec_check_map(o, "failover", why) != 0 ||
        codec_get_u64(o, "epoch", &f->epoch, why) != 0 ||
        codec_get_str(o, "from", f->from, sizeof f->from, why) != 0 ||
        codec_get_str(o, "to", f->to, sizeof f->to, why) != 0 ||
        get_step(o, "step", &f->step, why) != 0 ||
        codec_get_str(o, "reason", f->reason, sizeof f->reason, why) != 0 ||
        codec_get_bool(o, "planned", &f->planned, why) != 0 ||
        codec_get_bool(o, "forced", &f->forced, why) != 0 ||
        codec_get_u64(o, "decided_index", &f->decided_index, why) != 0 ||
        codec_get_u64(o, "decided_term", &f->decided_term, why) != 0 ||
        decode_failover_times(o, f, why) != 0 ||
        codec_get_u32(o, "timeline", &f->timeline, why) != 0 ||
        codec_get_u64(o, "promoted_lsn", &f->promoted_lsn, why) != 0 ||
        codec_get_u64(o, "old_lsn", &f->old_lsn, why) != 0 ||
        codec_get_i64(o, "routed_ms", &f->routed_ms, why) != 0 ||
        codec_get_str(o, "routed_address", f->routed_address, sizeof f->routed_address, why) != 0 ||
        decode_published(o, f, why) != 0) {
        return AFC_EMALFORMED;
    }
    return 0;
}

int codec_check_failover(const struct afc_failover *f, int code, struct afc_err *why)
{
    if ((unsigned)f->step >= AFC_FO__COUNT) {
        return afc_err_set(why, code, "failover: step %d out of range", (int)f->step);
    }
    if (!codec_is_terminated(f->from, sizeof f->from) ||
        !codec_is_terminated(f->to, sizeof f->to) ||
        !codec_is_terminated(f->reason, sizeof f->reason) ||
        !codec_is_terminated(f->routed_address, sizeof f->routed_address)) {
        return afc_err_set(why, code, "failover: unterminated string");
    }
    return 0;
}

/* ---- name lists (sync-set's standbys) ---- */

int codec_pack_names(msgpack_packer *pk, const char (*names)[AFC_NAME_MAX], unsigned n)
{
    int rc = msgpack_pack_array(pk, n);
    for (unsigned i = 0; i < n && rc == 0; i++) {
        rc |= codec_pack_cstr(pk, names[i]);
    }
    return rc;
}

int codec_decode_names(const msgpack_object *arr, const char *what, char (*names)[AFC_NAME_MAX],
                       unsigned *n, struct afc_err *why)
{
    if (arr == NULL || arr->type != MSGPACK_OBJECT_ARRAY) {
        return afc_err_set(why, AFC_EMALFORMED, "%s: missing or not an array", what);
    }
    if (arr->via.array.size > AFC_MAX_MEMBERS) {
        return afc_err_set(why, AFC_EMALFORMED, "%s: %u names (max %d)", what, arr->via.array.size,
                           AFC_MAX_MEMBERS);
    }
    *n = arr->via.array.size;
    for (unsigned i = 0; i < *n; i++) {
        const msgpack_object *o = &arr->via.array.ptr[i];
        if (o->type != MSGPACK_OBJECT_STR || o->via.str.size >= AFC_NAME_MAX ||
            memchr(o->via.str.ptr, '\0', o->via.str.size) != NULL) {
            return afc_err_set(why, AFC_EMALFORMED, "%s[%u]: not a name of at most %d bytes", what,
                               i, AFC_NAME_MAX - 1);
        }
        memcpy(names[i], o->via.str.ptr, o->via.str.size);
        names[i][o->via.str.size] = '\0';
    }
    return 0;
}

/* Every name terminated, non-empty, not `self`, no duplicates; 0 or `code`. */
static int check_sync_names(const struct afc_cmd *c, int code, struct afc_err *why)
{
    const __typeof__(c->u.sync_set) *y = &c->u.sync_set;
    if (y->n_standbys > AFC_MAX_MEMBERS) {
        return afc_err_set(why, code, "sync-set: %u standbys (max %d)", y->n_standbys,
                           AFC_MAX_MEMBERS);
    }
    if (!y->active && y->n_standbys > 0) {
        return afc_err_set(why, code, "sync-set: standbys listed while not active");
    }
    for (unsigned i = 0; i < y->n_standbys; i++) {
        if (!codec_is_terminated(y->standbys[i], AFC_NAME_MAX) || y->standbys[i][0] == '\0') {
            return afc_err_set(why, code, "sync-set: standbys[%u]: empty or unterminated", i);
        }
        if (strcmp(y->standbys[i], y->region) == 0) {
            return afc_err_set(why, code, "sync-set: %s lists itself", y->region);
        }
        for (unsigned k = 0; k < i; k++) {
            if (strcmp(y->standbys[k], y->standbys[i]) == 0) {
                return afc_err_set(why, code, "sync-set: %s listed twice", y->standbys[i]);
            }
        }
    }
    return 0;
}

/* ---- the four commands ---- */

unsigned codec_failover_field_count(enum afc_op op)
{
    switch (op) {
    case AFC_OP_OBSERVE:
        return 2 + CODEC_OBS_KEYS;
    case AFC_OP_RENEW:
        return 3;
    case AFC_OP_FAILOVER_BEGIN:
        return 9;
    case AFC_OP_FAILOVER_STEP:
        return 5;
    case AFC_OP_ROUTED:
    case AFC_OP_PUBLISHED:
        return 3;
    case AFC_OP_SYNC_SET:
        return 5;
    default:
        return 0;
    }
}

static int check_name(const char *s, size_t cap, const char *field, bool required, int code,
                      struct afc_err *why)
{
    if (!codec_is_terminated(s, cap)) {
        return afc_err_set(why, code, "%s: unterminated string", field);
    }
    if (required && s[0] == '\0') {
        return afc_err_set(why, code, "%s: empty", field);
    }
    return 0;
}

int codec_check_failover_cmd(const struct afc_cmd *c, int code, struct afc_err *why)
{
    switch (c->op) {
    case AFC_OP_OBSERVE:
        return check_name(c->u.observe.observer, AFC_NAME_MAX, "observer", true, code, why) ||
                       check_name(c->u.observe.target, AFC_NAME_MAX, "target", true, code, why) ||
                       check_obs(&c->u.observe.obs, code, why)
                   ? code
                   : 0;
    case AFC_OP_RENEW:
        return check_name(c->u.renew.region, AFC_NAME_MAX, "region", true, code, why);
    case AFC_OP_FAILOVER_BEGIN:
        return check_name(c->u.failover_begin.from, AFC_NAME_MAX, "from", false, code, why) ||
                       check_name(c->u.failover_begin.to, AFC_NAME_MAX, "to", true, code, why) ||
                       check_name(c->u.failover_begin.reason, sizeof c->u.failover_begin.reason,
                                  "reason", false, code, why)
                   ? code
                   : 0;
    case AFC_OP_FAILOVER_STEP:
        if (c->u.failover_step.step >= AFC_FO__COUNT) {
            return afc_err_set(why, code, "step %u out of range", c->u.failover_step.step);
        }
        return check_name(c->u.failover_step.detail, AFC_DETAIL_MAX, "detail", false, code, why);
    case AFC_OP_ROUTED:
        return check_name(c->u.routed.address, sizeof c->u.routed.address, "address", true, code,
                          why) ||
                       check_name(c->u.routed.detail, AFC_DETAIL_MAX, "detail", false, code, why)
                   ? code
                   : 0;
    case AFC_OP_PUBLISHED:
        return check_name(c->u.published.region, AFC_NAME_MAX, "region", true, code, why) ||
                       check_name(c->u.published.detail, AFC_DETAIL_MAX, "detail", false, code, why)
                   ? code
                   : 0;
    case AFC_OP_SYNC_SET:
        return check_name(c->u.sync_set.region, AFC_NAME_MAX, "region", true, code, why) ||
                       check_name(c->u.sync_set.detail, AFC_DETAIL_MAX, "detail", false, code,
                                  why) ||
                       check_sync_names(c, code, why)
                   ? code
                   : 0;
    default:
        return 0;
    }
}

int codec_pack_failover_cmd(msgpack_packer *pk, const struct afc_cmd *c)
{
    switch (c->op) {
    case AFC_OP_OBSERVE:
        return codec_pack_kv_str(pk, "observer", c->u.observe.observer) |
               codec_pack_kv_str(pk, "target", c->u.observe.target) |
               codec_pack_obs_fields(pk, &c->u.observe.obs);
    case AFC_OP_RENEW:
        return codec_pack_kv_str(pk, "region", c->u.renew.region) |
               codec_pack_kv_u64(pk, "epoch", c->u.renew.epoch) |
               codec_pack_kv_u64(pk, "seq", c->u.renew.seq);
    case AFC_OP_FAILOVER_BEGIN: {
        const __typeof__(c->u.failover_begin) *b = &c->u.failover_begin;
        return codec_pack_kv_u64(pk, "expect_epoch", b->expect_epoch) |
               codec_pack_kv_str(pk, "from", b->from) | codec_pack_kv_str(pk, "to", b->to) |
               codec_pack_kv_str(pk, "reason", b->reason) |
               codec_pack_kv_bool(pk, "planned", b->planned) |
               codec_pack_kv_bool(pk, "forced", b->forced) |
               codec_pack_kv_i64(pk, "detected_ms", b->detected_ms) |
               codec_pack_kv_u64(pk, "old_lsn", b->old_lsn) |
               codec_pack_kv_u64(pk, "term", b->term);
    }
    case AFC_OP_FAILOVER_STEP:
        return codec_pack_kv_u64(pk, "epoch", c->u.failover_step.epoch) |
               codec_pack_kv_str(pk, "step",
                                 afc_fo_step_name((enum afc_fo_step)c->u.failover_step.step)) |
               codec_pack_kv_u64(pk, "timeline", c->u.failover_step.timeline) |
               codec_pack_kv_u64(pk, "lsn", c->u.failover_step.lsn) |
               codec_pack_kv_str(pk, "detail", c->u.failover_step.detail);
    case AFC_OP_ROUTED:
        return codec_pack_kv_u64(pk, "epoch", c->u.routed.epoch) |
               codec_pack_kv_str(pk, "address", c->u.routed.address) |
               codec_pack_kv_str(pk, "detail", c->u.routed.detail);
    case AFC_OP_PUBLISHED:
        return codec_pack_kv_u64(pk, "epoch", c->u.published.epoch) |
               codec_pack_kv_str(pk, "region", c->u.published.region) |
               codec_pack_kv_str(pk, "detail", c->u.published.detail);
    case AFC_OP_SYNC_SET:
        return codec_pack_kv_str(pk, "region", c->u.sync_set.region) |
               codec_pack_kv_u64(pk, "epoch", c->u.sync_set.epoch) |
               codec_pack_kv_bool(pk, "active", c->u.sync_set.active) |
               codec_pack_cstr(pk, "standbys") |
               codec_pack_names(pk, c->u.sync_set.standbys, c->u.sync_set.n_standbys) |
               codec_pack_kv_str(pk, "detail", c->u.sync_set.detail);
    default:
        return -1;
    }
}

static int decode_begin(const msgpack_object *m, struct afc_cmd *c, struct afc_err *why)
{
    __typeof__(c->u.failover_begin) *b = &c->u.failover_begin;
    return codec_get_u64(m, "expect_epoch", &b->expect_epoch, why) ||
           codec_get_str(m, "from", b->from, sizeof b->from, why) ||
           codec_get_str(m, "to", b->to, sizeof b->to, why) ||
           codec_get_str(m, "reason", b->reason, sizeof b->reason, why) ||
           codec_get_bool(m, "planned", &b->planned, why) ||
           codec_get_bool(m, "forced", &b->forced, why) ||
           codec_get_i64(m, "detected_ms", &b->detected_ms, why) ||
           codec_get_u64(m, "old_lsn", &b->old_lsn, why) || codec_get_u64(m, "term", &b->term, why);
}

static int decode_step(const msgpack_object *m, struct afc_cmd *c, struct afc_err *why)
{
    enum afc_fo_step step = AFC_FO_NONE;
    if (codec_get_u64(m, "epoch", &c->u.failover_step.epoch, why) != 0 ||
        get_step(m, "step", &step, why) != 0 ||
        codec_get_u32(m, "timeline", &c->u.failover_step.timeline, why) != 0 ||
        codec_get_u64(m, "lsn", &c->u.failover_step.lsn, why) != 0 ||
        codec_get_str(m, "detail", c->u.failover_step.detail, AFC_DETAIL_MAX, why) != 0) {
        return AFC_EMALFORMED;
    }
    c->u.failover_step.step = (uint8_t)step;
    return 0;
}

int codec_decode_failover_cmd(const msgpack_object *m, struct afc_cmd *c, struct afc_err *why)
{
    switch (c->op) {
    case AFC_OP_OBSERVE:
        return codec_get_str(m, "observer", c->u.observe.observer, AFC_NAME_MAX, why) ||
               codec_get_str(m, "target", c->u.observe.target, AFC_NAME_MAX, why) ||
               codec_decode_obs_fields(m, &c->u.observe.obs, why);
    case AFC_OP_RENEW:
        return codec_get_str(m, "region", c->u.renew.region, AFC_NAME_MAX, why) ||
               codec_get_u64(m, "epoch", &c->u.renew.epoch, why) ||
               codec_get_u64(m, "seq", &c->u.renew.seq, why);
    case AFC_OP_FAILOVER_BEGIN:
        return decode_begin(m, c, why);
    case AFC_OP_FAILOVER_STEP:
        return decode_step(m, c, why);
    case AFC_OP_ROUTED:
        return codec_get_u64(m, "epoch", &c->u.routed.epoch, why) ||
               codec_get_str(m, "address", c->u.routed.address, sizeof c->u.routed.address, why) ||
               codec_get_str(m, "detail", c->u.routed.detail, AFC_DETAIL_MAX, why);
    case AFC_OP_PUBLISHED:
        return codec_get_u64(m, "epoch", &c->u.published.epoch, why) ||
               codec_get_str(m, "region", c->u.published.region, AFC_NAME_MAX, why) ||
               codec_get_str(m, "detail", c->u.published.detail, AFC_DETAIL_MAX, why);
    case AFC_OP_SYNC_SET:
        return codec_get_str(m, "region", c->u.sync_set.region, AFC_NAME_MAX, why) ||
               codec_get_u64(m, "epoch", &c->u.sync_set.epoch, why) ||
               codec_get_bool(m, "active", &c->u.sync_set.active, why) ||
               codec_decode_names(codec_map_find(m, "standbys"), "standbys", c->u.sync_set.standbys,
                                  &c->u.sync_set.n_standbys, why) ||
               codec_get_str(m, "detail", c->u.sync_set.detail, AFC_DETAIL_MAX, why);
    default:
        return AFC_EMALFORMED;
    }
}
