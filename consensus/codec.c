/*
 * The command codec: struct afc_cmd <-> the bytes that travel through the Raft log.
 *
 * Wire format (docs/wire-format.md): one msgpack map
 *   {"v":1, "op":"<name>", <op fields>, "by":"<region>", "t":<wall_ms>}
 * followed by zero bytes up to a multiple of 8 (raft_uv 0.15 garbles unpadded entries,
 * raft-0.15.md §4.2). The encoder always writes keys in that order with msgpack's shortest forms,
 * so equal commands give equal bytes. The decoder accepts keys in any order, ignores keys it does
 * not know (a newer minor writer may add optional fields), and rejects everything else that is
 * off: wrong types, missing keys, too-long strings, unknown ops, non-zero trailing bytes.
 *
 * Both directions run the same semantic check (cmd_check) so whatever the encoder accepts, every
 * decoder accepts too. The failover ops (observe, renew, failover-begin, failover-step) are
 * encoded, decoded and checked in codec_failover.c with the same rules; this file dispatches to it.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "afc/state.h"
#include "consensus/msgpack_util.h"

static const char *const op_names[AFC_OP__COUNT] = {
#define AFC_OP_NAME(e, s) [e] = s,
    AFC_OPS(AFC_OP_NAME)
#undef AFC_OP_NAME
};

const char *afc_op_name(enum afc_op op)
{
    if ((unsigned)op >= AFC_OP__COUNT) {
        return "unknown";
    }
    return op_names[op];
}

const char *afc_apply_result_name(enum afc_apply_result r)
{
    switch (r) {
    case AFC_APPLY_OK:
        return "ok";
    case AFC_APPLY_REJECTED_MALFORMED:
        return "rejected-malformed";
    case AFC_APPLY_REJECTED_VERSION:
        return "rejected-version";
    case AFC_APPLY_REJECTED_STALE:
        return "rejected-stale";
    case AFC_APPLY_REJECTED_INVALID:
        return "rejected-invalid";
    case AFC_APPLY_NOOP:
        return "noop";
    case AFC_APPLY_DIVERGED:
        return "diverged";
    case AFC_APPLY_RETRY:
        return "retry";
    }
    return "unknown";
}

/* ---- members (shared with the snapshot) ---- */

static int check_member(const struct afc_member *m, unsigned i, int code, struct afc_err *why)
{
    if (m->id < 1) {
        return afc_err_set(why, code, "member %u: id must be >= 1", i);
    }
    if (!codec_is_terminated(m->name, sizeof m->name) ||
        !codec_is_terminated(m->raft_addr, sizeof m->raft_addr) ||
        !codec_is_terminated(m->api_url, sizeof m->api_url)) {
        return afc_err_set(why, code, "member %u: unterminated string", i);
    }
    if (m->name[0] == '\0') {
        return afc_err_set(why, code, "member %u: empty name", i);
    }
    return 0;
}

int codec_check_members(const struct afc_member *m, unsigned n, int code, struct afc_err *why)
{
    if (n > AFC_MAX_MEMBERS) {
        return afc_err_set(why, code, "%u members (max %d)", n, AFC_MAX_MEMBERS);
    }
    for (unsigned i = 0; i < n; i++) {
        if (check_member(&m[i], i, code, why) != 0) {
            return code;
        }
        for (unsigned j = 0; j < i; j++) {
            if (m[j].id == m[i].id) {
                return afc_err_set(why, code, "member %u: duplicate id %" PRIu64, i, m[i].id);
            }
            if (strcmp(m[j].name, m[i].name) == 0) {
                return afc_err_set(why, code, "member %u: duplicate name \"%s\"", i, m[i].name);
            }
        }
    }
    return 0;
}

int codec_pack_members(msgpack_packer *pk, const struct afc_member *m, unsigned n)
{
    int rc = msgpack_pack_array(pk, n);
    for (unsigned i = 0; i < n && rc == 0; i++) {
        rc |= msgpack_pack_map(pk, 4);
        rc |= codec_pack_kv_u64(pk, "id", m[i].id);
        rc |= codec_pack_kv_str(pk, "name", m[i].name);
        rc |= codec_pack_kv_str(pk, "raft", m[i].raft_addr);
        rc |= codec_pack_kv_str(pk, "api", m[i].api_url);
    }
    return rc;
}

static int decode_member(const msgpack_object *o, struct afc_member *m, struct afc_err *why)
{
    if (codec_check_map(o, "member", why) != 0 || codec_get_u64(o, "id", &m->id, why) != 0 ||
        codec_get_str(o, "name", m->name, sizeof m->name, why) != 0 ||
        codec_get_str(o, "raft", m->raft_addr, sizeof m->raft_addr, why) != 0 ||
        codec_get_str(o, "api", m->api_url, sizeof m->api_url, why) != 0) {
        return AFC_EMALFORMED;
    }
    return 0;
}

int codec_decode_members(const msgpack_object *arr, struct afc_member *m, unsigned *n,
                         struct afc_err *why)
{
    if (arr == NULL || arr->type != MSGPACK_OBJECT_ARRAY) {
        return afc_err_set(why, AFC_EMALFORMED, "members: missing or not an array");
    }
    if (arr->via.array.size > AFC_MAX_MEMBERS) {
        return afc_err_set(why, AFC_EMALFORMED, "members: %u entries (max %d)", arr->via.array.size,
                           AFC_MAX_MEMBERS);
    }
    memset(m, 0, sizeof(*m) * AFC_MAX_MEMBERS);
    *n = arr->via.array.size;
    for (unsigned i = 0; i < *n; i++) {
        if (decode_member(&arr->via.array.ptr[i], &m[i], why) != 0) {
            return afc_err_wrap(why, "member %u", i);
        }
    }
    return codec_check_members(m, *n, AFC_EMALFORMED, why);
}

/* ---- semantic check shared by encode and decode ---- */

static int check_str(const char *s, size_t cap, const char *field, int code, struct afc_err *why)
{
    if (!codec_is_terminated(s, cap)) {
        return afc_err_set(why, code, "%s: unterminated string", field);
    }
    return 0;
}

static int cmd_check(const struct afc_cmd *c, int code, struct afc_err *why)
{
    if ((unsigned)c->op >= AFC_OP__COUNT) {
        return afc_err_set(why, code, "unknown op %d", (int)c->op);
    }
    if (check_str(c->by, sizeof c->by, "by", code, why) != 0) {
        return code;
    }
    switch (c->op) {
    case AFC_OP_INIT:
        if (c->u.init.n_members == 0) {
            return afc_err_set(why, code, "init: empty member list");
        }
        return codec_check_members(c->u.init.members, c->u.init.n_members, code, why);
    case AFC_OP_PAUSE:
        return check_str(c->u.pause.reason, sizeof c->u.pause.reason, "reason", code, why);
    case AFC_OP_PROMOTE:
        if (check_str(c->u.promote.region, sizeof c->u.promote.region, "region", code, why) != 0) {
            return code;
        }
        return check_str(c->u.promote.reason, sizeof c->u.promote.reason, "reason", code, why);
    case AFC_OP_NOTE:
        if (check_str(c->u.note.kind, sizeof c->u.note.kind, "kind", code, why) != 0) {
            return code;
        }
        if (c->u.note.kind[0] == '\0') {
            return afc_err_set(why, code, "note: empty kind");
        }
        return check_str(c->u.note.detail, sizeof c->u.note.detail, "detail", code, why);
    case AFC_OP_DRAIN:
        if (check_str(c->u.drain.region, sizeof c->u.drain.region, "region", code, why) != 0) {
            return code;
        }
        if (c->u.drain.region[0] == '\0') {
            return afc_err_set(why, code, "drain: empty region");
        }
        return check_str(c->u.drain.reason, sizeof c->u.drain.reason, "reason", code, why);
    default:
        return codec_check_failover_cmd(c, code, why);
    }
}

/* ---- encode ---- */

/* Fields each op writes; the failover ops are counted in codec_failover.c. */
static unsigned op_field_count(enum afc_op op)
{
    static const unsigned counts[AFC_OP__COUNT] = {
        [AFC_OP_INIT] = 1,   [AFC_OP_PAUSE] = 2, [AFC_OP_PROMOTE] = 3,
        [AFC_OP_DIGEST] = 2, [AFC_OP_NOTE] = 2,  [AFC_OP_DRAIN] = 3,
    };
    return counts[op] != 0 ? counts[op] : codec_failover_field_count(op);
}

static int pack_op_fields(msgpack_packer *pk, const struct afc_cmd *c)
{
    switch (c->op) {
    case AFC_OP_INIT:
        return codec_pack_cstr(pk, "members") |
               codec_pack_members(pk, c->u.init.members, c->u.init.n_members);
    case AFC_OP_PAUSE:
        return codec_pack_kv_bool(pk, "paused", c->u.pause.paused) |
               codec_pack_kv_str(pk, "reason", c->u.pause.reason);
    case AFC_OP_PROMOTE:
        return codec_pack_kv_str(pk, "region", c->u.promote.region) |
               codec_pack_kv_u64(pk, "expect_epoch", c->u.promote.expect_epoch) |
               codec_pack_kv_str(pk, "reason", c->u.promote.reason);
    case AFC_OP_DIGEST:
        return codec_pack_kv_u64(pk, "at_index", c->u.digest.at_index) |
               codec_pack_kv_u64(pk, "digest", c->u.digest.digest);
    case AFC_OP_NOTE:
        return codec_pack_kv_str(pk, "kind", c->u.note.kind) |
               codec_pack_kv_str(pk, "detail", c->u.note.detail);
    case AFC_OP_DRAIN:
        return codec_pack_kv_str(pk, "region", c->u.drain.region) |
               codec_pack_kv_bool(pk, "drained", c->u.drain.drained) |
               codec_pack_kv_str(pk, "reason", c->u.drain.reason);
    default:
        return codec_pack_failover_cmd(pk, c);
    }
}

int afc_cmd_encode(const struct afc_cmd *cmd, void **out, size_t *len)
{
    if (cmd == NULL || out == NULL || len == NULL || cmd_check(cmd, AFC_EINVAL, NULL) != 0) {
        return AFC_EINVAL;
    }
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = msgpack_pack_map(&pk, 4 + op_field_count(cmd->op));
    rc |= codec_pack_kv_u64(&pk, "v", AFC_CMD_VERSION);
    rc |= codec_pack_kv_str(&pk, "op", afc_op_name(cmd->op));
    rc |= pack_op_fields(&pk, cmd);
    rc |= codec_pack_kv_str(&pk, "by", cmd->by);
    rc |= codec_pack_kv_i64(&pk, "t", cmd->wall_ms);
    if (rc != 0) {
        msgpack_sbuffer_destroy(&sb);
        return AFC_ENOMEM;
    }
    return codec_finish(&sb, AFC_CMD_MAX_SIZE, out, len);
}

/* ---- decode ---- */

static int decode_op(const msgpack_object *map, enum afc_op *op, struct afc_err *why)
{
    char name[AFC_NAME_MAX];
    if (codec_get_str(map, "op", name, sizeof name, why) != 0) {
        return AFC_EMALFORMED;
    }
    for (unsigned i = 0; i < AFC_OP__COUNT; i++) {
        if (strcmp(name, op_names[i]) == 0) {
            *op = (enum afc_op)i;
            return 0;
        }
    }
    return afc_err_set(why, AFC_EMALFORMED, "unknown op \"%s\"", name);
}

static int decode_op_fields(const msgpack_object *m, struct afc_cmd *c, struct afc_err *why)
{
    switch (c->op) {
    case AFC_OP_INIT:
        return codec_decode_members(codec_map_find(m, "members"), c->u.init.members,
                                    &c->u.init.n_members, why);
    case AFC_OP_PAUSE:
        return codec_get_bool(m, "paused", &c->u.pause.paused, why) ||
               codec_get_str(m, "reason", c->u.pause.reason, sizeof c->u.pause.reason, why);
    case AFC_OP_PROMOTE:
        return codec_get_str(m, "region", c->u.promote.region, sizeof c->u.promote.region, why) ||
               codec_get_u64(m, "expect_epoch", &c->u.promote.expect_epoch, why) ||
               codec_get_str(m, "reason", c->u.promote.reason, sizeof c->u.promote.reason, why);
    case AFC_OP_DIGEST:
        return codec_get_u64(m, "at_index", &c->u.digest.at_index, why) ||
               codec_get_u64(m, "digest", &c->u.digest.digest, why);
    case AFC_OP_NOTE:
        return codec_get_str(m, "kind", c->u.note.kind, sizeof c->u.note.kind, why) ||
               codec_get_str(m, "detail", c->u.note.detail, sizeof c->u.note.detail, why);
    case AFC_OP_DRAIN:
        return codec_get_str(m, "region", c->u.drain.region, sizeof c->u.drain.region, why) ||
               codec_get_bool(m, "drained", &c->u.drain.drained, why) ||
               codec_get_str(m, "reason", c->u.drain.reason, sizeof c->u.drain.reason, why);
    default:
        return codec_decode_failover_cmd(m, c, why);
    }
}

static int decode_map(const msgpack_object *map, struct afc_cmd *cmd, struct afc_err *why)
{
    if (codec_check_map(map, "command", why) != 0) {
        return AFC_EMALFORMED;
    }
    int rc = codec_check_version(map, AFC_CMD_VERSION, why);
    if (rc != 0) {
        return rc;
    }
    if (decode_op(map, &cmd->op, why) != 0 ||
        codec_get_str(map, "by", cmd->by, sizeof cmd->by, why) != 0 ||
        codec_get_i64(map, "t", &cmd->wall_ms, why) != 0) {
        return AFC_EMALFORMED;
    }
    if (decode_op_fields(map, cmd, why) != 0) {
        afc_err_wrap(why, "%s", afc_op_name(cmd->op));
        return AFC_EMALFORMED;
    }
    return cmd_check(cmd, AFC_EMALFORMED, why);
}

int afc_cmd_decode(const void *buf, size_t len, struct afc_cmd *cmd, struct afc_err *why)
{
    msgpack_unpacked u;
    memset(cmd, 0, sizeof *cmd);
    if (len > AFC_CMD_MAX_SIZE) {
        return afc_err_set(why, AFC_ETOOBIG, "command of %zu bytes (max %d)", len,
                           AFC_CMD_MAX_SIZE);
    }
    int rc = codec_unpack(buf, len, &u, why);
    if (rc != 0) {
        return rc;
    }
    rc = decode_map(&u.data, cmd, why);
    msgpack_unpacked_destroy(&u);
    if (rc != 0) {
        memset(cmd, 0, sizeof *cmd);
    }
    return rc;
}
