/*
 * msgpack helpers shared by the command codec (codec.c) and the snapshot codec (state.c).
 *
 * Encoding: callers pack into any msgpack_packer (an sbuffer for bytes, a hashing writer for the
 * digest) with the codec_pack_* helpers, then codec_finish() pads with zeros to a multiple of 8.
 * Decoding: codec_unpack() bounds-checks the bytes before msgpack-c sees them (every declared
 * container count must fit in the remaining bytes, so a 5-byte "array of 4 billion" can never make
 * msgpack-c allocate gigabytes), requires the trailing bytes to be zero padding, and yields one
 * object; codec_get_* then read typed, length-checked fields from a map.
 *
 * Module-internal (not in include/afc/). Pure: libc + msgpack.
 */
#ifndef AFC_CONSENSUS_MSGPACK_UTIL_H
#define AFC_CONSENSUS_MSGPACK_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "afc/error.h"
#include "afc/state.h"

/* Most keys accepted in one map. Bounds the duplicate-key check; the widest map we write has 18
 * (a failover receipt in the snapshot). */
#define CODEC_MAP_MAX_KEYS 64
/* Deepest container nesting accepted anywhere (ours is 3: command -> members -> member). */
#define CODEC_MAX_DEPTH 16

/* Pack helpers: each returns 0 or -1 (the packer's writer failed, i.e. out of memory). */
int codec_pack_cstr(msgpack_packer *pk, const char *s);
int codec_pack_kv_str(msgpack_packer *pk, const char *key, const char *val);
int codec_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t val);
int codec_pack_kv_i64(msgpack_packer *pk, const char *key, int64_t val);
int codec_pack_kv_bool(msgpack_packer *pk, const char *key, bool val);

/* Bytes of zero padding that bring `len` to a multiple of 8. */
size_t codec_pad_len(size_t len);

/* Pad `sb` with zeros to a multiple of 8 and hand its buffer to the caller (*out, free() it).
 * Errors: AFC_ENOMEM (sb is destroyed), AFC_ETOOBIG if max_len != 0 and the padded length exceeds
 * it (sb is destroyed). */
int codec_finish(msgpack_sbuffer *sb, size_t max_len, void **out, size_t *len);

/* Parse the single object at the start of buf; everything after it must be zero bytes. On success
 * `u` holds the object (caller calls msgpack_unpacked_destroy). On error `u` is already destroyed.
 * Errors: AFC_EMALFORMED, AFC_ENOMEM. */
int codec_unpack(const void *buf, size_t len, msgpack_unpacked *u, struct afc_err *why);

/* `o` must be a map with at most CODEC_MAP_MAX_KEYS unique string keys. Errors: AFC_EMALFORMED. */
int codec_check_map(const msgpack_object *o, const char *what, struct afc_err *why);

/* Value of `key` in map `o` (borrowed), NULL if absent. */
const msgpack_object *codec_map_find(const msgpack_object *o, const char *key);

/* Typed required fields of a checked map. Missing key or wrong type: AFC_EMALFORMED.
 * codec_get_str: string of < cap bytes without NUL bytes, copied NUL-terminated into dst (too long
 * is an error, never truncated). codec_get_i64 accepts any integer in int64 range. */
int codec_get_str(const msgpack_object *map, const char *key, char *dst, size_t cap,
                  struct afc_err *why);
int codec_get_u64(const msgpack_object *map, const char *key, uint64_t *val, struct afc_err *why);
int codec_get_i64(const msgpack_object *map, const char *key, int64_t *val, struct afc_err *why);
int codec_get_bool(const msgpack_object *map, const char *key, bool *val, struct afc_err *why);
/* Unsigned integer that must fit in 32 bits (PostgreSQL timelines, lag in ms). */
int codec_get_u32(const msgpack_object *map, const char *key, uint32_t *val, struct afc_err *why);

/* "v" of a checked map: 0 if it equals `version`, AFC_EVERSION if it is another non-negative
 * integer, AFC_EMALFORMED if missing or not a non-negative integer. */
int codec_check_version(const msgpack_object *map, uint64_t version, struct afc_err *why);

/* The member list (codec.c), shared by the init command and the snapshot:
 * an array of maps {"id":uint,"name":str,"raft":str,"api":str}. */
int codec_pack_members(msgpack_packer *pk, const struct afc_member *m, unsigned n);
int codec_decode_members(const msgpack_object *arr, struct afc_member *m, unsigned *n,
                         struct afc_err *why);

/* n <= AFC_MAX_MEMBERS, ids >= 1 and unique, names non-empty and unique, every string field
 * NUL-terminated within its buffer. Returns 0 or `code` (with why filled). */
int codec_check_members(const struct afc_member *m, unsigned n, int code, struct afc_err *why);

/* ---- failover payloads (codec_failover.c), shared by the commands and the snapshot ---- */

/* Key/value pairs of one observation, without a map header (CODEC_OBS_KEYS pairs, in wire order:
 * healthy, role, timeline, lsn, replay_lsn, lag_ms, upstream, local_dead, t_obs, seq). `valid` is
 * not on the wire: whoever holds the observation knows whether it has one. */
#define CODEC_OBS_KEYS 10
int codec_pack_obs_fields(msgpack_packer *pk, const struct afc_pg_obs *o);
int codec_decode_obs_fields(const msgpack_object *map, struct afc_pg_obs *o, struct afc_err *why);

/* One failover receipt as a map (the snapshot's "failover" and "failovers" entries). */
int codec_pack_failover(msgpack_packer *pk, const struct afc_failover *f);
int codec_decode_failover(const msgpack_object *o, struct afc_failover *f, struct afc_err *why);
/* Strings terminated, step and names in range; 0 or `code`. */
int codec_check_failover(const struct afc_failover *f, int code, struct afc_err *why);

/* The four failover ops (observe, renew, failover-begin, failover-step): how many fields each
 * writes, the semantic check shared by encode and decode, pack and decode of those fields. */
unsigned codec_failover_field_count(enum afc_op op);
int codec_check_failover_cmd(const struct afc_cmd *c, int code, struct afc_err *why);
int codec_pack_failover_cmd(msgpack_packer *pk, const struct afc_cmd *c);
int codec_decode_failover_cmd(const msgpack_object *m, struct afc_cmd *c, struct afc_err *why);

/* An array of member names (sync-set's standbys, the snapshot's sync record). Decode: at most
 * AFC_MAX_MEMBERS strings of < AFC_NAME_MAX bytes without NUL bytes; `what` names the key in
 * messages. Errors: AFC_EMALFORMED. */
int codec_pack_names(msgpack_packer *pk, const char (*names)[AFC_NAME_MAX], unsigned n);
int codec_decode_names(const msgpack_object *arr, const char *what, char (*names)[AFC_NAME_MAX],
                       unsigned *n, struct afc_err *why);

/* True if `s` has a NUL within its first `cap` bytes. */
bool codec_is_terminated(const char *s, size_t cap);

#endif
