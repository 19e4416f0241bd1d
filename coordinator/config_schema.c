/*
 * The configuration schema (coordinator/config_schema.h): one declarative table per YAML mapping,
 * and the value types those tables use — what each accepts, how it is described in a message and
 * how it is stored. config.c walks the YAML document against these tables; nothing here knows
 * about libyaml.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "afc/config.h"
#include "afc/log.h"
#include "coordinator/config_schema.h"

/* ---- Tables ---------------------------------------------------------------------------------- */

#define AT_CFG(f)                                                                                  \
    .offset = offsetof(struct afc_config, f), .size = sizeof(((struct afc_config *)0)->f)
#define AT_MEMBER(f)                                                                               \
    .offset = offsetof(struct afc_config_member, f),                                               \
    .size = sizeof(((struct afc_config_member *)0)->f)

static const struct config_key member_keys[] = {
    {.name = "name", .type = K_NAME, .required = true, AT_MEMBER(name), .slot = S_M_NAME},
    {.name = "id",
     .type = K_UINT,
     .required = true,
     AT_MEMBER(id),
     .min = 1,
     .max = UINT64_MAX,
     .slot = S_M_ID},
    {.name = "raft", .type = K_RAFT_ADDR, .required = true, AT_MEMBER(raft_addr), .slot = S_M_RAFT},
    {.name = "raft_dial", .type = K_RAFT_ADDR, AT_MEMBER(raft_dial)},
    {.name = "api", .type = K_HTTP_URL, .required = true, AT_MEMBER(api_url), .slot = S_M_API},
    {.name = "postgres", .type = K_SECRET, AT_MEMBER(postgres)},
    {.name = "priority", .type = K_UINT, AT_MEMBER(priority), .min = 0, .max = 1000000},
    {.name = "nofailover", .type = K_BOOL, AT_MEMBER(nofailover)},
    {.name = "address", .type = K_IPADDR, AT_MEMBER(address)},
    {.name = NULL},
};

static const struct config_key raft_keys[] = {
    {.name = "election_timeout_ms",
     .type = K_UINT,
     AT_CFG(election_timeout_ms),
     .min = 10,
     .max = 600000,
     .slot = S_ELECTION},
    {.name = "heartbeat_timeout_ms",
     .type = K_UINT,
     AT_CFG(heartbeat_timeout_ms),
     .min = 1,
     .max = 600000,
     .slot = S_HEARTBEAT},
    {.name = "snapshot_threshold",
     .type = K_UINT,
     AT_CFG(snapshot_threshold),
     .min = 1,
     .max = 1000000000},
    {.name = "snapshot_trailing",
     .type = K_UINT,
     AT_CFG(snapshot_trailing),
     .min = 0,
     .max = 1000000000},
    {.name = "digest_interval_ms",
     .type = K_UINT,
     AT_CFG(digest_interval_ms),
     .min = 10,
     .max = 3600000},
    {.name = "bind", .type = K_RAFT_ADDR, AT_CFG(raft_bind)},
    {.name = NULL},
};

static const struct config_key api_keys[] = {
    {.name = "listen", .type = K_HOSTPORT, AT_CFG(api_listen), .slot = S_LISTEN},
    {.name = "allow_remote", .type = K_BOOL, AT_CFG(api_allow_remote)},
    {.name = "token_file", .type = K_PATH, AT_CFG(api_token_file)},
    {.name = NULL},
};

static const struct config_key cluster_keys[] = {
    {.name = "secret_file", .type = K_PATH, AT_CFG(cluster_secret_file)},
    {.name = NULL},
};

static const struct config_key log_keys[] = {
    {.name = "level", .type = K_LOG_LEVEL, AT_CFG(log_level)},
    {.name = "format", .type = K_LOG_FORMAT, AT_CFG(log_format)},
    {.name = NULL},
};

static const struct config_key postgres_keys[] = {
    {.name = "url", .type = K_SECRET, AT_CFG(database_url)},
    {.name = "data_dir", .type = K_ABSPATH, AT_CFG(pg_data_dir)},
    {.name = "bin_dir", .type = K_ABSPATH, AT_CFG(pg_bin_dir)},
    {.name = "run_as", .type = K_NAME, AT_CFG(pg_run_as)},
    {.name = "options", .type = K_SECRET, AT_CFG(pg_options)},
    {.name = "log_file", .type = K_ABSPATH, AT_CFG(pg_log_file)},
    {.name = "fence", .type = K_BOOL, AT_CFG(pg_fence)},
    {.name = NULL},
};

static const struct config_key failover_keys[] = {
    {.name = "lease_ms", .type = K_UINT, AT_CFG(lease_ms), .min = 100, .max = 600000},
    {.name = "lease_renew_ms", .type = K_UINT, AT_CFG(lease_renew_ms), .min = 10, .max = 600000},
    {.name = "margin_ms", .type = K_UINT, AT_CFG(margin_ms), .min = 0, .max = 600000},
    {.name = "probe_local_ms", .type = K_UINT, AT_CFG(probe_local_ms), .min = 50, .max = 600000},
    {.name = "probe_remote_ms", .type = K_UINT, AT_CFG(probe_remote_ms), .min = 50, .max = 600000},
    {.name = "rise", .type = K_UINT, AT_CFG(probe_rise), .min = 1, .max = 100},
    {.name = "fall", .type = K_UINT, AT_CFG(probe_fall), .min = 1, .max = 100},
    {.name = "maximum_lag_on_failover",
     .type = K_UINT,
     AT_CFG(max_lag_bytes),
     .min = 0,
     .max = UINT64_MAX},
    {.name = "cooldown_ms",
     .type = K_UINT,
     AT_CFG(failover_cooldown_ms),
     .min = 0,
     .max = UINT64_MAX},
    {.name = NULL},
};

static const struct config_key replication_keys[] = {
    {.name = "mode", .type = K_REPL_MODE, AT_CFG(repl_mode)},
    {.name = "sync_strict", .type = K_BOOL, AT_CFG(repl_sync_strict)},
    {.name = NULL},
};

static const struct config_key redis_keys[] = {
    {.name = "url", .type = K_SECRET, AT_CFG(redis_url)},
    {.name = "key", .type = K_WORD, AT_CFG(redis_key)},
    {.name = "channel", .type = K_WORD, AT_CFG(redis_channel)},
    {.name = "timeout_ms", .type = K_UINT, AT_CFG(redis_timeout_ms), .min = 50, .max = 600000},
    {.name = NULL},
};

/* dns: the provider tables. Secrets are not values here: only the files they are read from
 * (config.c loads them, or the environment's, into cfg.dns). */
static const struct config_key powerdns_keys[] = {
    {.name = "api_url", .type = K_URL, AT_CFG(dns.powerdns.api_url)},
    {.name = "server_id", .type = K_ID, AT_CFG(dns.powerdns.server_id)},
    {.name = "api_key_file", .type = K_PATH, AT_CFG(dns_powerdns_api_key_file)},
    {.name = NULL},
};

static const struct config_key rfc2136_keys[] = {
    {.name = "server", .type = K_IP_PORT, AT_CFG(dns.rfc2136.server)},
    {.name = "tsig_name", .type = K_DNS_NAME, AT_CFG(dns.rfc2136.tsig_name)},
    {.name = "tsig_algorithm", .type = K_TSIG_ALG, AT_CFG(dns.rfc2136.tsig_algorithm)},
    {.name = "tsig_secret_file", .type = K_PATH, AT_CFG(dns_rfc2136_tsig_secret_file)},
    {.name = NULL},
};

static const struct config_key cloudflare_keys[] = {
    {.name = "api_url", .type = K_URL, AT_CFG(dns.cloudflare.api_url)},
    {.name = "zone_id", .type = K_ID, AT_CFG(dns.cloudflare.zone_id)},
    {.name = "token_file", .type = K_PATH, AT_CFG(dns_cloudflare_token_file)},
    {.name = NULL},
};

static const struct config_key route53_keys[] = {
    {.name = "endpoint", .type = K_URL, AT_CFG(dns.route53.endpoint)},
    {.name = "hosted_zone_id", .type = K_ID, AT_CFG(dns.route53.hosted_zone_id)},
    {.name = "region", .type = K_NAME, AT_CFG(dns.route53.region)},
    {.name = "access_key_id", .type = K_ID, AT_CFG(dns.route53.access_key_id)},
    {.name = "secret_access_key_file", .type = K_PATH, AT_CFG(dns_route53_secret_file)},
    {.name = "session_token_file", .type = K_PATH, AT_CFG(dns_route53_session_token_file)},
    {.name = NULL},
};

static const struct config_key verify_server_item = {
    .type = K_IP_PORT,
    .size = sizeof(((struct afc_config *)0)->dns.verify_servers[0]),
};

static const struct config_key dns_keys[] = {
    {.name = "provider", .type = K_DNS_PROVIDER, AT_CFG(dns.provider), .slot = S_DNS_PROVIDER},
    {.name = "name", .type = K_DNS_NAME, AT_CFG(dns.name), .slot = S_DNS_NAME},
    {.name = "zone", .type = K_DNS_NAME, AT_CFG(dns.zone), .slot = S_DNS_ZONE},
    {.name = "ttl", .type = K_UINT, AT_CFG(dns.ttl), .min = 1, .max = 86400},
    {.name = "timeout_ms", .type = K_UINT, AT_CFG(dns.timeout_ms), .min = 100, .max = 600000},
    {.name = "verify_servers",
     .type = K_LIST,
     AT_CFG(dns.verify_servers),
     .max = AFC_DNS_SERVERS,
     .sub = &verify_server_item,
     .count_offset = offsetof(struct afc_config, dns.n_verify_servers)},
    {.name = "powerdns", .type = K_MAP, .sub = powerdns_keys},
    {.name = "rfc2136", .type = K_MAP, .sub = rfc2136_keys},
    {.name = "cloudflare", .type = K_MAP, .sub = cloudflare_keys},
    {.name = "route53", .type = K_MAP, .sub = route53_keys},
    {.name = NULL},
};

static const struct config_key webhook_item = {
    .type = K_URL,
    .size = sizeof(((struct afc_config *)0)->webhook_urls[0]),
};

static const struct config_key hooks_keys[] = {
    {.name = "on_role_change", .type = K_ABSPATH, AT_CFG(hook_on_role_change)},
    {.name = "pre_promote", .type = K_ABSPATH, AT_CFG(hook_pre_promote)},
    {.name = "timeout_ms", .type = K_UINT, AT_CFG(hook_timeout_ms), .min = 100, .max = 3600000},
    {.name = "pre_promote_timeout_ms",
     .type = K_UINT,
     AT_CFG(pre_promote_timeout_ms),
     .min = 100,
     .max = 600000},
    {.name = "webhooks",
     .type = K_LIST,
     AT_CFG(webhook_urls),
     .max = AFC_WEBHOOKS_MAX,
     .sub = &webhook_item,
     .count_offset = offsetof(struct afc_config, n_webhooks)},
    {.name = "webhook_token_file", .type = K_PATH, AT_CFG(webhook_token_file)},
    {.name = "webhook_attempts", .type = K_UINT, AT_CFG(webhook_attempts), .min = 1, .max = 20},
    {.name = NULL},
};

const struct config_key config_top_keys[] = {
    {.name = "region", .type = K_NAME, AT_CFG(region), .slot = S_REGION},
    {.name = "data_dir", .type = K_ABSPATH, .required = true, AT_CFG(data_dir)},
    {.name = "members", .type = K_MEMBERS, .required = true, .sub = member_keys},
    {.name = "raft", .type = K_MAP, .sub = raft_keys},
    {.name = "api", .type = K_MAP, .sub = api_keys},
    {.name = "cluster", .type = K_MAP, .sub = cluster_keys},
    {.name = "failover", .type = K_MAP, .sub = failover_keys},
    {.name = "log", .type = K_MAP, .sub = log_keys},
    {.name = "postgres", .type = K_MAP, .sub = postgres_keys},
    {.name = "replication", .type = K_MAP, .sub = replication_keys},
    {.name = "redis", .type = K_MAP, .sub = redis_keys},
    {.name = "dns", .type = K_MAP, .sub = dns_keys},
    {.name = "hooks", .type = K_MAP, .sub = hooks_keys},
    {.name = NULL},
};

/* ---- Value types ----------------------------------------------------------------------------- */

bool config_is_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= AFC_NAME_MAX) {
        return false;
    }
    return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

/* Decimal digits only: no sign, no spaces, no hex, no overflow. */
bool config_parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0') {
        return false;
    }
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') {
            return false;
        }
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool is_port(const char *s)
{
    uint64_t port;
    return strlen(s) <= 5 && config_parse_u64(s, &port) && port >= 1 && port <= 65535;
}

/* RFC 1123 host name: dot-separated labels of letters, digits and '-', not starting or ending
 * with '-'. */
static bool is_dns_name(const char *s, size_t n)
{
    size_t label = 0;
    if (n == 0 || n > 253) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool alnum =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (ch == '.') {
            if (label == 0 || s[i - 1] == '-') {
                return false;
            }
            label = 0;
        } else if (alnum || (ch == '-' && label > 0)) {
            if (++label > 63) {
                return false;
            }
        } else {
            return false;
        }
    }
    return label > 0 && s[n - 1] != '-';
}

static bool is_ip_literal(int family, const char *s, size_t n)
{
    char buf[64];
    unsigned char addr[16];
    if (n == 0 || n >= sizeof buf) {
        return false;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    return inet_pton(family, buf, addr) == 1;
}

static bool is_all_digits_and_dots(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '.' && (s[i] < '0' || s[i] > '9')) {
            return false;
        }
    }
    return true;
}

/* A host: an IPv4 literal, a bracketed IPv6 literal or a DNS name. */
static bool is_host(const char *s, size_t n)
{
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        return is_ip_literal(AF_INET6, s + 1, n - 2);
    }
    if (is_all_digits_and_dots(s, n)) {
        return is_ip_literal(AF_INET, s, n);
    }
    return is_dns_name(s, n);
}

/* "host:port": host is an IPv4 literal, a bracketed IPv6 literal or a DNS name. */
static bool is_hostport(const char *s)
{
    const char *colon = strrchr(s, ':');
    return colon != NULL && is_port(colon + 1) && is_host(s, (size_t)(colon - s));
}

/* An IPv4 or IPv6 literal on its own (what a DNS A or AAAA record holds). */
static bool is_ip_address(const char *s)
{
    size_t n = strlen(s);
    return is_ip_literal(strchr(s, ':') != NULL ? AF_INET6 : AF_INET, s, n);
}

/* "a.b.c.d:port" or "[IPv6]:port": a server asked directly, so nothing is resolved. */
static bool is_ip_port(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || !is_port(colon + 1)) {
        return false;
    }
    size_t n = (size_t)(colon - s);
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        return is_ip_literal(AF_INET6, s + 1, n - 2);
    }
    return is_ip_literal(AF_INET, s, n);
}

/* Printable ASCII without spaces, at least one character. */
static bool is_word(const char *s)
{
    for (const char *p = s; *p != '\0'; p++) {
        if (*p <= 0x20 || *p >= 0x7f) {
            return false;
        }
    }
    return s[0] != '\0';
}

/* http:// or https://, then host[:port], then an optional path ("/..." without spaces). No
 * user:password@: credentials never go in the file. */
static bool is_url(const char *s)
{
    const char *rest = strncmp(s, "http://", 7) == 0    ? s + 7
                       : strncmp(s, "https://", 8) == 0 ? s + 8
                                                        : NULL;
    char authority[300];
    if (rest == NULL) {
        return false;
    }
    size_t n = strcspn(rest, "/");
    if (n == 0 || n >= sizeof authority) {
        return false;
    }
    memcpy(authority, rest, n);
    authority[n] = '\0';
    if (!is_hostport(authority) && !is_host(authority, n)) {
        return false;
    }
    return rest[n] == '\0' || is_word(rest + n);
}

/* An absolute name: host-name labels, then the root's trailing dot ("primary.db.example."). */
static bool is_absolute_dns_name(const char *s)
{
    size_t n = strlen(s);
    return n >= 2 && s[n - 1] == '.' && is_dns_name(s, n - 1);
}

/* Provider ids (PowerDNS server id, Cloudflare zone id, Route53 hosted zone and key ids). */
static bool is_id(const char *s)
{
    size_t n = strlen(s);
    return n > 0 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static const char *const dns_provider_names[] = {
    [AFC_DNS_NONE] = "none",       [AFC_DNS_POWERDNS] = "powerdns",
    [AFC_DNS_RFC2136] = "rfc2136", [AFC_DNS_CLOUDFLARE] = "cloudflare",
    [AFC_DNS_ROUTE53] = "route53",
};

#define N_DNS_PROVIDERS (sizeof dns_provider_names / sizeof dns_provider_names[0])

const char *config_dns_provider_name(int kind)
{
    return kind >= 0 && (size_t)kind < N_DNS_PROVIDERS ? dns_provider_names[kind] : "?";
}

bool config_dns_name_in_zone(const char *name, const char *zone)
{
    size_t n = strlen(name), z = strlen(zone);
    if (n == z) {
        return strcasecmp(name, zone) == 0;
    }
    return n > z && name[n - z - 1] == '.' && strcasecmp(name + n - z, zone) == 0;
}

/* "a.b.c.d:port" only: libraft 0.15's uv transport parses nothing else. */
static bool is_raft_addr(const char *s)
{
    const char *colon = strrchr(s, ':');
    return colon != NULL && is_port(colon + 1) && is_ip_literal(AF_INET, s, (size_t)(colon - s));
}

static bool is_http_url(const char *s)
{
    return strncmp(s, "http://", 7) == 0 && is_hostport(s + 7);
}

/* hmac-sha256 (default) and hmac-sha512: what RFC 8945 recommends and ldns signs with. */
static bool is_tsig_algorithm(const char *s)
{
    return strcmp(s, "hmac-sha256") == 0 || strcmp(s, "hmac-sha512") == 0;
}

/* 127.0.0.0/8, [::1] or localhost. */
bool config_is_loopback(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || !is_hostport(s)) {
        return false;
    }
    size_t n = (size_t)(colon - s);
    if (strncmp(s, "127.", 4) == 0) {
        return is_ip_literal(AF_INET, s, n);
    }
    return (n == 5 && strncmp(s, "[::1]", n) == 0) || (n == 9 && strncmp(s, "localhost", n) == 0);
}

/* A value quoted for a message: at most CONFIG_SHOW_MAX bytes, anything unprintable as '?'. */
const char *config_show(const char *s, char *buf, size_t size)
{
    size_t n = strlen(s), shown = n > CONFIG_SHOW_MAX ? CONFIG_SHOW_MAX : n, j = 0;
    buf[j++] = '\'';
    for (size_t i = 0; i < shown && j + 5 < size; i++) {
        unsigned char ch = (unsigned char)s[i];
        buf[j++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    buf[j++] = '\'';
    buf[j] = '\0';
    if (shown < n) {
        snprintf(buf + j - 1, size - j + 1, "...'");
    }
    return buf;
}

_Static_assert(AFC_NAME_MAX == 32, "K_NAME's description says 31 characters");

void config_describe(const struct config_key *k, char *buf, size_t size)
{
    static const char *const what[] = {
        [K_NAME] = "a name of 1 to 31 lowercase letters, digits or '-'",
        [K_ABSPATH] = "an absolute path",
        [K_PATH] = "a file path",
        [K_SECRET] = "a connection URL",
        [K_BOOL] = "true or false",
        [K_RAFT_ADDR] = "an IPv4 address and port like 10.0.1.5:7001 (libraft accepts no host "
                        "names)",
        [K_HOSTPORT] = "host:port like 127.0.0.1:8080",
        [K_HTTP_URL] = "a URL like http://10.0.1.5:8080",
        [K_LOG_LEVEL] = "one of debug, info, notice, warn, error",
        [K_LOG_FORMAT] = "text or json",
        [K_IPADDR] = "an IPv4 or IPv6 address like 10.0.1.5 or 2001:db8::5",
        [K_IP_PORT] = "an IP address and port like 10.0.1.5:53 or [2001:db8::5]:53",
        [K_URL] = "an http:// or https:// URL like https://dns.example.com:8081/path",
        [K_DNS_NAME] = "an absolute DNS name with the trailing dot, like primary.db.example.",
        [K_ID] = "an identifier of letters, digits, '.', '_' or '-'",
        [K_WORD] = "printable characters without spaces",
        [K_DNS_PROVIDER] = "one of none, powerdns, rfc2136, cloudflare, route53",
        [K_TSIG_ALG] = "hmac-sha256 or hmac-sha512",
        [K_REPL_MODE] = "async or sync",
        [K_MAP] = "a mapping",
    };
    if (k->type == K_UINT && k->max == UINT64_MAX) {
        snprintf(buf, size, "an integer >= %llu", (unsigned long long)k->min);
    } else if (k->type == K_UINT) {
        snprintf(buf, size, "an integer from %llu to %llu", (unsigned long long)k->min,
                 (unsigned long long)k->max);
    } else if (k->type == K_MEMBERS) {
        snprintf(buf, size, "a sequence of 1 to %d members", AFC_MAX_MEMBERS);
    } else if (k->type == K_LIST) {
        snprintf(buf, size, "a sequence of at most %llu items, each %s", (unsigned long long)k->max,
                 what[k->sub->type]);
    } else {
        snprintf(buf, size, "%s", what[k->type]);
    }
}

bool config_is_string_type(enum config_type t)
{
    return t == K_NAME || t == K_ABSPATH || t == K_PATH || t == K_SECRET || t == K_RAFT_ADDR ||
           t == K_HOSTPORT || t == K_HTTP_URL || t == K_IPADDR || t == K_IP_PORT || t == K_URL ||
           t == K_DNS_NAME || t == K_ID || t == K_WORD || t == K_TSIG_ALG;
}

/* Convert and store one scalar; false if it is not a value of the key's type. */
bool config_store(const struct config_key *k, const char *s, void *dst)
{
    uint64_t v;
    switch (k->type) {
    case K_UINT:
        if (!config_parse_u64(s, &v) || v < k->min || v > k->max) {
            return false;
        }
        if (k->size == sizeof(uint64_t)) {
            *(uint64_t *)dst = v;
        } else {
            *(unsigned *)dst = (unsigned)v;
        }
        return true;
    case K_BOOL:
        if (strcmp(s, "true") != 0 && strcmp(s, "false") != 0) {
            return false;
        }
        *(bool *)dst = s[0] == 't';
        return true;
    case K_LOG_LEVEL:
        if (afc_log_level_parse(s) < 0) {
            return false;
        }
        *(int *)dst = afc_log_level_parse(s);
        return true;
    case K_LOG_FORMAT:
        if (strcmp(s, "text") != 0 && strcmp(s, "json") != 0) {
            return false;
        }
        *(enum afc_log_format *)dst = s[0] == 'j' ? AFC_LOG_JSON : AFC_LOG_TEXT;
        return true;
    case K_REPL_MODE:
        if (strcmp(s, "async") != 0 && strcmp(s, "sync") != 0) {
            return false;
        }
        *(enum afc_repl_mode *)dst = s[0] == 's' ? AFC_REPL_SYNC : AFC_REPL_ASYNC;
        return true;
    case K_DNS_PROVIDER:
        for (size_t i = 0; i < N_DNS_PROVIDERS; i++) {
            if (strcmp(s, dns_provider_names[i]) == 0) {
                *(enum afc_dns_provider_kind *)dst = (enum afc_dns_provider_kind)i;
                return true;
            }
        }
        return false;
    default:
        break;
    }
    bool ok =
        (k->type == K_NAME && config_is_name(s)) || (k->type == K_ABSPATH && s[0] == '/') ||
        ((k->type == K_PATH || k->type == K_SECRET) && s[0] != '\0') ||
        (k->type == K_RAFT_ADDR && is_raft_addr(s)) || (k->type == K_HOSTPORT && is_hostport(s)) ||
        (k->type == K_HTTP_URL && is_http_url(s)) || (k->type == K_IPADDR && is_ip_address(s)) ||
        (k->type == K_IP_PORT && is_ip_port(s)) || (k->type == K_URL && is_url(s)) ||
        (k->type == K_DNS_NAME && is_absolute_dns_name(s)) || (k->type == K_ID && is_id(s)) ||
        (k->type == K_WORD && is_word(s)) || (k->type == K_TSIG_ALG && is_tsig_algorithm(s));
    if (ok) {
        memcpy(dst, s, strlen(s) + 1); /* length checked by the caller */
    }
    return ok;
}
