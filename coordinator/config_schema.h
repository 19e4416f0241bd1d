/*
 * Private to coordinator/config*.c: the configuration schema (config_schema.c) as seen by the
 * code that walks a YAML document against it (config.c).
 *
 * A schema is a table of `struct config_key` ending with a NULL name. Each key says its type, its
 * range and where its value lands (an offset into struct afc_config, or into struct
 * afc_config_member for keys inside `members`).
 */
#ifndef AFC_CONFIG_SCHEMA_H
#define AFC_CONFIG_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_SHOW_MAX 60 /* longest value quoted back in a message */

enum config_type {
    K_NAME,         /* member name: [a-z0-9-]{1,31} */
    K_ABSPATH,      /* absolute file system path */
    K_PATH,         /* any non-empty path */
    K_SECRET,       /* non-empty string that may embed a password: never echoed */
    K_UINT,         /* decimal integer in [min, max]; size 4 → unsigned, 8 → uint64_t */
    K_BOOL,         /* true | false */
    K_RAFT_ADDR,    /* a.b.c.d:port (libraft 0.15 resolves nothing else) */
    K_HOSTPORT,     /* host:port, host = IPv4, [IPv6] or a DNS name */
    K_HTTP_URL,     /* http://host:port */
    K_LOG_LEVEL,    /* int from afc_log_level_parse() */
    K_LOG_FORMAT,   /* enum afc_log_format */
    K_IPADDR,       /* IPv4 or IPv6 literal, no brackets, no port */
    K_IP_PORT,      /* a.b.c.d:port or [IPv6]:port (literals only: nothing is resolved) */
    K_URL,          /* http:// or https://, host[:port], optional path */
    K_DNS_NAME,     /* absolute DNS name with the trailing dot: "primary.db.example." */
    K_ID,           /* provider identifier: [A-Za-z0-9._-]+ */
    K_WORD,         /* printable ASCII without spaces */
    K_DNS_PROVIDER, /* enum afc_dns_provider_kind */
    K_TSIG_ALG,     /* hmac-sha256 | hmac-sha512, stored as text */
    K_REPL_MODE,    /* async | sync: enum afc_repl_mode */
    K_MAP,          /* nested mapping, keys in `sub`, destinations still in the same base */
    K_MEMBERS,      /* sequence of mappings, keys in `sub`, base = &members[i] */
    K_LIST,         /* sequence of scalars of type sub->type, each sub->size bytes, stored from
                       `offset` on; at most `max` of them, their count (unsigned) at count_offset */
};

/* Keys whose line a cross-key check needs after the walk. */
enum config_slot {
    S_NONE = 0,
    S_REGION,
    S_ELECTION,
    S_HEARTBEAT,
    S_LISTEN,
    S_DNS_PROVIDER,
    S_DNS_NAME,
    S_DNS_ZONE,
    S_M_NAME, /* per member from here on */
    S_M_ID,
    S_M_RAFT,
    S_M_API,
    S_COUNT
};

struct config_key {
    const char *name;
    enum config_type type;
    bool required;
    size_t offset;     /* into struct afc_config, or struct afc_config_member for members */
    size_t size;       /* destination size in bytes */
    uint64_t min, max; /* K_UINT range; K_LIST: max = most items */
    const struct config_key *sub; /* K_MAP, K_MEMBERS: a table; K_LIST: the item's type */
    size_t count_offset;          /* K_LIST: where the number of items goes (unsigned) */
    enum config_slot slot;
};

/* The top-level table; nested tables hang off `sub`. */
extern const struct config_key config_top_keys[];

/* Member name: 1..AFC_NAME_MAX-1 of [a-z0-9-]. */
bool config_is_name(const char *s);

/* Decimal digits only (no sign, spaces or hex); false on overflow. */
bool config_parse_u64(const char *s, uint64_t *out);

/* Names the provider in messages: "none", "powerdns", ... */
const char *config_dns_provider_name(int kind);

/* `name` equals `zone` or lies below it (absolute names, compared without regard to case). */
bool config_dns_name_in_zone(const char *name, const char *zone);

/* host:port whose host is 127.0.0.0/8, [::1] or localhost. false if not host:port at all. */
bool config_is_loopback(const char *hostport);

/* config.c, for config_env.c: the member called name, or NULL; every member's name,
 * comma-separated, into buf (returns buf). */
struct afc_config_member *config_find_member(struct afc_config *c, const char *name);
const char *config_member_list(const struct afc_config *c, char *buf, size_t size);

/* `s` quoted for a message into buf: at most CONFIG_SHOW_MAX bytes, unprintables as '?'.
 * Returns buf. size >= CONFIG_SHOW_MAX + 8. */
const char *config_show(const char *s, char *buf, size_t size);

/* What a value of key k looks like, for "expected WHAT, got ...". */
void config_describe(const struct config_key *k, char *buf, size_t size);

/* True for types stored as a NUL-terminated string of at most k->size - 1 bytes. */
bool config_is_string_type(enum config_type t);

/* Validate scalar text `s` against k's type and range and store it at dst (base + k->offset).
 * Strings: the caller has checked the length. Returns false, leaving dst untouched, if `s` is not
 * a value of the type. */
bool config_store(const struct config_key *k, const char *s, void *dst);

#endif
