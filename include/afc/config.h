/*
 * Node configuration: one YAML file per node, validated against a schema, then environment
 * overrides from the deployment guide. Parsing is pure (libyaml + libc): no libuv, no network.
 *
 * Every error names the file, the line, the key and what was expected, e.g.
 *   "/etc/aragora/node.yaml:12: raft.election_timeout_ms: expected an integer from 10 to 600000,
 * got 'fast'" The daemon prints it and exits with status 2 without touching its data directory.
 */
#ifndef AFC_CONFIG_H
#define AFC_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "afc/dns.h"
#include "afc/error.h"
#include "afc/state.h"

#define AFC_PATH_MAX 512

enum afc_log_format { AFC_LOG_TEXT = 0, AFC_LOG_JSON };

/* replication.mode (docs/failover.md, "Synchronous mode") */
enum afc_repl_mode { AFC_REPL_ASYNC = 0, AFC_REPL_SYNC };

struct afc_config_member {
    afc_region_id id;
    char name[AFC_NAME_MAX];
    char raft_addr[AFC_ADDR_MAX];   /* IPv4 literal a.b.c.d:port */
    char raft_dial[AFC_ADDR_MAX];   /* members[].raft_dial: where THIS node connects to reach the
                                       member's Raft port (a proxy, a tunnel, NAT); "" = raft_addr.
                                       Node-local: never replicated */
    char api_url[AFC_URL_MAX];      /* http://host:port */
    char postgres[AFC_PATH_MAX];    /* libpq conninfo others use to reach this region's PostgreSQL
                                       (no password: use a passfile); "" = not managed */
    unsigned priority;              /* candidate tie-break, higher wins; default 100 */
    bool nofailover;                /* never promote this region automatically */
    char address[AFC_DNS_ADDR_MAX]; /* members[].address: what the DNS name answers while this
                                       region is primary (IPv4/IPv6 literal); "" = not routed */
};

#define AFC_WEBHOOKS_MAX 4

struct afc_config {
    char source[AFC_PATH_MAX]; /* file it was read from */
    char region[AFC_NAME_MAX]; /* this node's region (must be a member) */
    afc_region_id region_id;   /* id of that member (derived, or ARAGORA_REGION_ID) */
    char data_dir[AFC_PATH_MAX];
    unsigned n_members;
    struct afc_config_member members[AFC_MAX_MEMBERS];

    /* raft */
    unsigned election_timeout_ms;  /* default 1000, 10..600000 */
    unsigned heartbeat_timeout_ms; /* default 100, must be < election_timeout_ms */
    unsigned snapshot_threshold;   /* default 1024 */
    unsigned snapshot_trailing;    /* default 128 */
    unsigned digest_interval_ms;   /* default 5000 */
    char raft_bind[AFC_ADDR_MAX];  /* "" = the member's raft address */

    /* api */
    char api_listen[AFC_ADDR_MAX];     /* host:port; default from the member's api_url; loopback */
    bool api_allow_remote;             /* must be true to bind a non-loopback address */
    char api_token_file[AFC_PATH_MAX]; /* bearer token file; env ARAGORA_API_TOKEN overrides */
    char api_token[256];               /* loaded token ("" = mutating endpoints always 401) */

    /* cluster: the shared secret every Raft connection is authenticated with (HMAC challenge) */
    char cluster_secret_file[AFC_PATH_MAX]; /* env ARAGORA_CLUSTER_SECRET overrides */
    unsigned char cluster_secret[64];       /* required: 16..63 printable characters */
    size_t cluster_secret_len;

    /* log */
    int log_level; /* AFC_LOG_DEBUG..AFC_LOG_ERROR, default info */
    enum afc_log_format log_format;

    /* deployment guide environment (kept for later subsystems; never logged if secret) */
    char database_url[AFC_PATH_MAX]; /* postgres.url or DATABASE_URL: the local PostgreSQL */
    /* the local PostgreSQL, for fencing, restart, promotion and rejoin (issue 3) */
    char pg_data_dir[AFC_PATH_MAX]; /* postgres.data_dir */
    char pg_bin_dir[AFC_PATH_MAX];  /* postgres.bin_dir, default /usr/lib/postgresql/15/bin */
    char pg_run_as[AFC_NAME_MAX];   /* postgres.run_as: OS user for pg_ctl & co. when root */
    char pg_options[AFC_PATH_MAX];  /* postgres.options: node-local server options (pg_ctl -o),
                                       kept outside PGDATA so a rewind cannot carry them over */
    char pg_log_file[AFC_PATH_MAX]; /* postgres.log_file */
    bool pg_fence; /* postgres.fence: keep the in-database fence (pg_fence/) in step with the
                      lease; needs the aragora_fence module loaded and its SQL set up */
    /* failover timings (ARCHITECTURE §9) */
    unsigned lease_ms;        /* 2000 */
    unsigned lease_renew_ms;  /* 500, < lease_ms */
    unsigned margin_ms;       /* 0 = max(200, lease_ms / 10) */
    unsigned probe_local_ms;  /* 500 */
    unsigned probe_remote_ms; /* 1000 */
    unsigned probe_rise;      /* 2 */
    unsigned probe_fall;      /* 3 */
    uint64_t max_lag_bytes;   /* maximum_lag_on_failover, 1 MiB; 0 = no limit */
    /* replication (docs/configuration.md): every node must say the same */
    enum afc_repl_mode repl_mode;  /* replication.mode: async (default) or sync */
    bool repl_sync_strict;         /* replication.sync_strict: with no standby, commits wait
                                      (true) or the primary runs asynchronously (false, default) */
    uint64_t failover_cooldown_ms; /* 300000 */
    char redis_url[AFC_PATH_MAX];  /* redis.url or REDIS_URL: this region's Redis; "" = none */
    char redis_key[128];           /* redis.key, default "aragora:primary" */
    char redis_channel[128];       /* redis.channel, default "aragora:events" */
    unsigned redis_timeout_ms;     /* redis.timeout_ms: connect and command, default 1000 */
    /* dns (docs/dns.md): secrets are read from these files, or the environment, into `dns` */
    struct afc_dns_config dns;
    char dns_powerdns_api_key_file[AFC_PATH_MAX];      /* env PDNS_API_KEY */
    char dns_rfc2136_tsig_secret_file[AFC_PATH_MAX];   /* env ARAGORA_DNS_TSIG_SECRET */
    char dns_cloudflare_token_file[AFC_PATH_MAX];      /* env CLOUDFLARE_API_TOKEN */
    char dns_route53_secret_file[AFC_PATH_MAX];        /* env AWS_SECRET_ACCESS_KEY */
    char dns_route53_session_token_file[AFC_PATH_MAX]; /* env AWS_SESSION_TOKEN */
    /* hooks (docs/hooks.md) */
    char hook_on_role_change[AFC_PATH_MAX]; /* hooks.on_role_change: absolute path, "" = none */
    char hook_pre_promote[AFC_PATH_MAX];    /* hooks.pre_promote: absolute path, "" = none */
    unsigned hook_timeout_ms;               /* hooks.timeout_ms: on_role_change, default 30000 */
    unsigned pre_promote_timeout_ms;        /* hooks.pre_promote_timeout_ms, default 10000 */
    char webhook_urls[AFC_WEBHOOKS_MAX][AFC_DNS_URL_MAX]; /* hooks.webhooks: list of URLs */
    unsigned n_webhooks;
    char webhook_token_file[AFC_PATH_MAX]; /* hooks.webhook_token_file, env ARAGORA_WEBHOOK_TOKEN */
    char webhook_token[512];               /* sent as "Authorization: Bearer <token>" */
    unsigned webhook_attempts;             /* hooks.webhook_attempts, default 5 */
    bool federation_enabled;               /* FEDERATION_ENABLED */
    char primary_hint[AFC_NAME_MAX];       /* ARAGORA_PRIMARY (bootstrap hint only) */
};

/* Fill defaults. */
void afc_config_defaults(struct afc_config *c);

/* Parse and validate YAML text. `source` names it in messages. Error → AFC_ECONFIG with
 * err->msg "SOURCE:LINE: KEY: expected ..., got ...". Unknown keys are errors. */
int afc_config_parse(struct afc_config *c, const char *source, const char *text, size_t len,
                     struct afc_err *err);

/* Read the file and parse it (AFC_EIO with "SOURCE: strerror" if unreadable). */
int afc_config_load(struct afc_config *c, const char *path, struct afc_err *err);

/* Apply environment overrides through `getenv_fn` (pass getenv; tests pass a table), then validate
 * the combination (region is a member, ids unique, token file readable...). Errors name the
 * variable: "ARAGORA_REGION_ID: expected the id of member 'eu-west-1' (2), got '7'". */
int afc_config_apply_env(struct afc_config *c, const char *(*getenv_fn)(const char *name),
                         struct afc_err *err);

const struct afc_config_member *afc_config_self(const struct afc_config *c);

#endif
