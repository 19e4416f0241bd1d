/*
 * msgpack helpers shared by the command and snapshot codecs (see msgpack_util.h).
 *
 * Decoding runs in two passes. scan_object() walks the raw bytes without allocating and checks
 * that every length and every declared element count fits in what is left of the buffer; only
 * then does msgpack-c build the object tree, so its allocations are bounded by O(len) whatever the
 * input says. Nesting depth is bounded by msgpack-c itself (parse error beyond 32 levels).
 */
#include <inttypes.h>
#include <string.h>

#include "consensus/msgpack_util.h"

/* ---- packing ---- */

int codec_pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    if (msgpack_pack_str(pk, n) != 0) {
        return -1;
    }
    return msgpack_pack_str_body(pk, s, n);
}

int codec_pack_kv_str(msgpack_packer *pk, const char *key, const char *val)
{
    return codec_pack_cstr(pk, key) | codec_pack_cstr(pk, val);
}

int codec_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t val)
{
    return codec_pack_cstr(pk, key) | msgpack_pack_uint64(pk, val);
}

int codec_pack_kv_i64(msgpack_packer *pk, const char *key, int64_t val)
{
    return codec_pack_cstr(pk, key) | msgpack_pack_int64(pk, val);
}

int codec_pack_kv_bool(msgpack_packer *pk, const char *key, bool val)
{
    int rc = codec_pack_cstr(pk, key);
    return rc | (val ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
}

size_t codec_pad_len(size_t len)
{
    return (8 - len % 8) % 8;
}

int codec_finish(msgpack_sbuffer *sb, size_t max_len, void **out, size_t *len)
{
    static const char zeros[8];
    if (msgpack_sbuffer_write(sb, zeros, codec_pad_len(sb->size)) != 0) {
        msgpack_sbuffer_destroy(sb);
        return AFC_ENOMEM;
    }
    if (max_len != 0 && sb->size > max_len) {
        msgpack_sbuffer_destroy(sb);
        return AFC_ETOOBIG;
    }
    *len = sb->size;
    *out = msgpack_sbuffer_release(sb);
    return 0;
}

/* ---- bounds scan ---- */

enum scan_kind { K_BAD, K_FIXED, K_BLOB, K_ARRAY, K_MAP };

/* Formats 0xc0..0xdf: bytes of the length field, fixed payload bytes, kind. */
struct scan_fmt {
    uint8_t len_bytes;
    uint8_t fixed;
    uint8_t kind;
};

static const struct scan_fmt scan_fmts[32] = {
    [0x00] = {0, 0, K_FIXED},                                                      /* nil */
    [0x01] = {0, 0, K_BAD},                                                        /* never used */
    [0x02] = {0, 0, K_FIXED},  [0x03] = {0, 0, K_FIXED},                           /* bool */
    [0x04] = {1, 0, K_BLOB},   [0x05] = {2, 0, K_BLOB},  [0x06] = {4, 0, K_BLOB},  /* bin */
    [0x07] = {1, 1, K_BLOB},   [0x08] = {2, 1, K_BLOB},  [0x09] = {4, 1, K_BLOB},  /* ext */
    [0x0a] = {0, 4, K_FIXED},  [0x0b] = {0, 8, K_FIXED},                           /* float */
    [0x0c] = {0, 1, K_FIXED},  [0x0d] = {0, 2, K_FIXED}, [0x0e] = {0, 4, K_FIXED}, /* uint */
    [0x0f] = {0, 8, K_FIXED},  [0x10] = {0, 1, K_FIXED}, [0x11] = {0, 2, K_FIXED}, /* int */
    [0x12] = {0, 4, K_FIXED},  [0x13] = {0, 8, K_FIXED}, [0x14] = {0, 2, K_FIXED}, /* fixext */
    [0x15] = {0, 3, K_FIXED},  [0x16] = {0, 5, K_FIXED}, [0x17] = {0, 9, K_FIXED},
    [0x18] = {0, 17, K_FIXED}, [0x19] = {1, 0, K_BLOB},  [0x1a] = {2, 0, K_BLOB},  /* str */
    [0x1b] = {4, 0, K_BLOB},   [0x1c] = {2, 0, K_ARRAY}, [0x1d] = {4, 0, K_ARRAY}, /* array */
    [0x1e] = {2, 0, K_MAP},    [0x1f] = {4, 0, K_MAP},                             /* map */
};

/* One encoded item: total bytes of header + payload, and how many child objects follow it. */
struct scan_item {
    uint64_t size;
    uint64_t children;
};

static bool scan_fixed_format(uint8_t b, struct scan_item *it)
{
    if (b <= 0x7f || b >= 0xe0) { /* positive / negative fixint */
        *it = (struct scan_item){1, 0};
    } else if (b <= 0x8f) { /* fixmap */
        *it = (struct scan_item){1, 2u * (b & 0x0fu)};
    } else if (b <= 0x9f) { /* fixarray */
        *it = (struct scan_item){1, b & 0x0fu};
    } else if (b <= 0xbf) { /* fixstr */
        *it = (struct scan_item){1u + (b & 0x1fu), 0};
    } else {
        return false;
    }
    return true;
}

static bool scan_item(const uint8_t *p, size_t avail, struct scan_item *it)
{
    if (avail == 0) {
        return false;
    }
    if (!scan_fixed_format(p[0], it)) {
        const struct scan_fmt *f = &scan_fmts[p[0] - 0xc0];
        if (f->kind == K_BAD || avail < 1u + f->len_bytes) {
            return false;
        }
        uint64_t n = 0;
        for (unsigned i = 0; i < f->len_bytes; i++) {
            n = (n << 8) | p[1 + i];
        }
        it->size = 1u + f->len_bytes + f->fixed + (f->kind == K_BLOB ? n : 0);
        it->children = f->kind == K_ARRAY ? n : f->kind == K_MAP ? 2 * n : 0;
    }
    return it->size <= avail;
}

/* Length of the first complete object in p[0..len), or AFC_EMALFORMED. Containers may nest at most
 * CODEC_MAX_DEPTH deep (msgpack-c's own limit of 32 reports "out of memory", which must not be
 * confused with a real allocation failure), and a container's count may not exceed the bytes left
 * (each element needs at least one), so nothing is handed to msgpack-c unless it is complete. */
static int scan_object(const uint8_t *p, size_t len, size_t *end)
{
    uint64_t left[CODEC_MAX_DEPTH + 1]; /* objects still to read at each open level */
    unsigned depth = 0;
    size_t off = 0;
    left[0] = 1;
    for (;;) {
        while (left[depth] == 0) {
            if (depth == 0) {
                *end = off;
                return 0;
            }
            depth--;
        }
        struct scan_item it;
        if (!scan_item(p + off, len - off, &it)) {
            return AFC_EMALFORMED;
        }
        off += (size_t)it.size;
        left[depth]--;
        if (it.children > 0) {
            if (depth == CODEC_MAX_DEPTH || it.children > len - off) {
                return AFC_EMALFORMED;
            }
            left[++depth] = it.children;
        }
    }
}

int codec_unpack(const void *buf, size_t len, msgpack_unpacked *u, struct afc_err *why)
{
    const uint8_t *p = buf;
    size_t end = 0;
    if (len == 0 || buf == NULL) {
        return afc_err_set(why, AFC_EMALFORMED, "empty input");
    }
    if (scan_object(p, len, &end) != 0) {
        return afc_err_set(why, AFC_EMALFORMED, "truncated, too deep or invalid msgpack");
    }
    for (size_t i = end; i < len; i++) {
        if (p[i] != 0) {
            return afc_err_set(why, AFC_EMALFORMED, "non-zero byte at offset %zu after the object",
                               i);
        }
    }
    size_t off = 0;
    msgpack_unpacked_init(u);
    msgpack_unpack_return ret = msgpack_unpack_next(u, buf, end, &off);
    if (ret == MSGPACK_UNPACK_SUCCESS && off == end) {
        return 0;
    }
    msgpack_unpacked_destroy(u);
    if (ret == MSGPACK_UNPACK_NOMEM_ERROR) {
        return afc_err_set(why, AFC_ENOMEM, "msgpack: out of memory");
    }
    return afc_err_set(why, AFC_EMALFORMED, "invalid msgpack (unpack returned %d)", (int)ret);
}

/* ---- typed map access ---- */

static bool key_equals(const msgpack_object *k, const char *key, size_t key_len)
{
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == key_len &&
           memcmp(k->via.str.ptr, key, key_len) == 0;
}

int codec_check_map(const msgpack_object *o, const char *what, struct afc_err *why)
{
    if (o->type != MSGPACK_OBJECT_MAP) {
        return afc_err_set(why, AFC_EMALFORMED, "%s: not a map", what);
    }
    const msgpack_object_map *m = &o->via.map;
    if (m->size > CODEC_MAP_MAX_KEYS) {
        return afc_err_set(why, AFC_EMALFORMED, "%s: %u keys (max %d)", what, m->size,
                           CODEC_MAP_MAX_KEYS);
    }
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR) {
            return afc_err_set(why, AFC_EMALFORMED, "%s: non-string key", what);
        }
        for (uint32_t j = 0; j < i; j++) {
            if (key_equals(&m->ptr[j].key, k->via.str.ptr, k->via.str.size)) {
                return afc_err_set(why, AFC_EMALFORMED, "%s: duplicate key \"%.*s\"", what,
                                   (int)k->via.str.size, k->via.str.ptr);
            }
        }
    }
    return 0;
}

const msgpack_object *codec_map_find(const msgpack_object *o, const char *key)
{
    size_t key_len = strlen(key);
    if (o->type != MSGPACK_OBJECT_MAP) {
        return NULL;
    }
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        if (key_equals(&o->via.map.ptr[i].key, key, key_len)) {
            return &o->via.map.ptr[i].val;
        }
    }
    return NULL;
}

/* Required key of the expected type, or NULL with why filled. */
static const msgpack_object *find_typed(const msgpack_object *map, const char *key,
                                        msgpack_object_type type, struct afc_err *why)
{
    const msgpack_object *v = codec_map_find(map, key);
    if (v == NULL) {
        afc_err_set(why, AFC_EMALFORMED, "missing key \"%s\"", key);
        return NULL;
    }
    if (v->type != type) {
        afc_err_set(why, AFC_EMALFORMED, "key \"%s\": wrong type %d", key, (int)v->type);
        return NULL;
    }
    return v;
}

int codec_get_str(const msgpack_object *map, const char *key, char *dst, size_t cap,
                  struct afc_err *why)
{
    const msgpack_object *v = find_typed(map, key, MSGPACK_OBJECT_STR, why);
    if (v == NULL) {
        return AFC_EMALFORMED;
    }
    size_t n = v->via.str.size;
    if (n >= cap) {
        return afc_err_set(why, AFC_EMALFORMED, "key \"%s\": string too long (%zu bytes, max %zu)",
                           key, n, cap - 1);
    }
    if (n > 0 && memchr(v->via.str.ptr, '\0', n) != NULL) {
        return afc_err_set(why, AFC_EMALFORMED, "key \"%s\": string contains a NUL byte", key);
    }
    memcpy(dst, v->via.str.ptr, n);
    dst[n] = '\0';
    return 0;
}

int codec_get_u64(const msgpack_object *map, const char *key, uint64_t *val, struct afc_err *why)
{
    const msgpack_object *v = find_typed(map, key, MSGPACK_OBJECT_POSITIVE_INTEGER, why);
    if (v == NULL) {
        return AFC_EMALFORMED;
    }
    *val = v->via.u64;
    return 0;
}

int codec_get_i64(const msgpack_object *map, const char *key, int64_t *val, struct afc_err *why)
{
    const msgpack_object *v = codec_map_find(map, key);
    if (v == NULL) {
        return afc_err_set(why, AFC_EMALFORMED, "missing key \"%s\"", key);
    }
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *val = v->via.i64;
        return 0;
    }
    if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > (uint64_t)INT64_MAX) {
        return afc_err_set(why, AFC_EMALFORMED, "key \"%s\": not an int64", key);
    }
    *val = (int64_t)v->via.u64;
    return 0;
}

int codec_get_bool(const msgpack_object *map, const char *key, bool *val, struct afc_err *why)
{
    const msgpack_object *v = find_typed(map, key, MSGPACK_OBJECT_BOOLEAN, why);
    if (v == NULL) {
        return AFC_EMALFORMED;
    }
    *val = v->via.boolean;
    return 0;
}

int codec_get_u32(const msgpack_object *map, const char *key, uint32_t *val, struct afc_err *why)
{
    uint64_t v = 0;
    if (codec_get_u64(map, key, &v, why) != 0) {
        return AFC_EMALFORMED;
    }
    if (v > UINT32_MAX) {
        return afc_err_set(why, AFC_EMALFORMED, "key \"%s\": %" PRIu64 " does not fit 32 bits", key,
                           v);
    }
    *val = (uint32_t)v;
    return 0;
}

int codec_check_version(const msgpack_object *map, uint64_t version, struct afc_err *why)
{
    uint64_t v = 0;
    if (codec_get_u64(map, "v", &v, why) != 0) {
        return AFC_EMALFORMED;
    }
    if (v != version) {
        return afc_err_set(why, AFC_EVERSION,
                           "format version %" PRIu64 " (this build reads %" PRIu64 ")", v, version);
    }
    return 0;
}

bool codec_is_terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}
