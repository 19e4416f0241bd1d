/*
 * Unit tests for coordinator/config.c: a full valid file, then one table row per malformed input
 * (YAML text → the exact message fragment, file name and line included), then the environment
 * overrides through a fake getenv table, then afc_config_load and docs/examples/coordinator.yaml
 * (its path is argv[1], passed by tests/unit/meson.build).
 */
#include <stdlib.h>
#include <unistd.h>

#include "afc/config.h"
#include "afc/log.h"
#include "tests/test.h"

#define SRC "node.yaml"

/* One member as four block-style lines. */
#define MEMBER(name, id, raft, api)                                                                \
    "  - name: " name "\n"                                                                         \
    "    id: " id "\n"                                                                             \
    "    raft: " raft "\n"                                                                         \
    "    api: " api "\n"

#define M1 MEMBER("us-east-2", "1", "127.0.0.1:7001", "http://127.0.0.1:8081")  /* lines 4-7 */
#define M2 MEMBER("eu-west-1", "2", "127.0.0.1:7002", "http://127.0.0.1:8082")  /* lines 8-11 */
#define M3 MEMBER("ap-south-1", "3", "127.0.0.1:7003", "http://127.0.0.1:8083") /* 12-15 */

/* Lines 1-3; members follow. */
#define TOP "region: us-east-2\ndata_dir: /var/lib/aragora\nmembers:\n"

/* A valid file of 15 lines; error rows append from line 16. */
#define BASE TOP M1 M2 M3

/* The same three members with an address each (5 lines apiece): a valid file of 18 lines for the
 * dns rows, which append from line 19. */
#define MEMBER_A(name, id, raft, api, address)                                                     \
    MEMBER(name, id, raft, api) "    address: " address "\n"
#define BASE_A                                                                                     \
    TOP MEMBER_A("us-east-2", "1", "127.0.0.1:7001", "http://127.0.0.1:8081", "10.0.1.5")          \
        MEMBER_A("eu-west-1", "2", "127.0.0.1:7002", "http://127.0.0.1:8082", "2001:db8::5")       \
            MEMBER_A("ap-south-1", "3", "127.0.0.1:7003", "http://127.0.0.1:8083", "10.0.3.5")

/* A dns section for PowerDNS, lines 19-24 after BASE_A. */
#define DNS_PDNS                                                                                   \
    "dns:\n"                                                                                       \
    "  provider: powerdns\n"                                                                       \
    "  name: primary.db.example.\n"                                                                \
    "  zone: db.example.\n"                                                                        \
    "  powerdns:\n"                                                                                \
    "    api_url: http://127.0.0.1:8081\n"

#define FLOW(i)                                                                                    \
    "  - {name: m" #i ", id: " #i ", raft: '127.0.0.1:" #i "', api: 'http://127.0.0.1:80'}\n"

static int parse(struct afc_config *c, const char *text, struct afc_err *err)
{
    memset(err, 0, sizeof *err);
    return afc_config_parse(c, SRC, text, strlen(text), err);
}

static void test_full_config(void)
{
    static const char text[] = BASE "raft:\n"
                                    "  election_timeout_ms: 2000\n"
                                    "  heartbeat_timeout_ms: 150\n"
                                    "  bind: 0.0.0.0:7001\n"
                                    "api:\n"
                                    "  listen: 127.0.0.1:9000\n"
                                    "  token_file: /etc/aragora/token\n"
                                    "log:\n"
                                    "  level: debug\n"
                                    "  format: json\n"
                                    "postgres:\n"
                                    "  url: postgresql://aragora@127.0.0.1/postgres\n"
                                    "  data_dir: /var/lib/postgresql/15/main\n"
                                    "  run_as: postgres\n"
                                    "  options: '-p 5433'\n"
                                    "failover:\n"
                                    "  lease_ms: 3000\n"
                                    "  maximum_lag_on_failover: 16777216\n"
                                    "redis: {url: 'redis://127.0.0.1:6379/0'}\n";
    struct afc_config c;
    struct afc_err err;
    int rv = parse(&c, text, &err);
    if (rv != 0) {
        fprintf(stderr, "  %s\n", err.msg);
    }
    REQUIRE(rv == 0);
    CHECK_EQ_STR(c.source, SRC);
    CHECK_EQ_STR(c.region, "us-east-2");
    CHECK_EQ_STR(c.data_dir, "/var/lib/aragora");
    CHECK_EQ_INT(c.n_members, 3);
    CHECK_EQ_STR(c.members[1].name, "eu-west-1");
    CHECK_EQ_INT(c.members[1].id, 2);
    CHECK_EQ_STR(c.members[2].raft_addr, "127.0.0.1:7003");
    CHECK_EQ_STR(c.members[2].api_url, "http://127.0.0.1:8083");
    CHECK_EQ_INT(c.election_timeout_ms, 2000);
    CHECK_EQ_STR(c.pg_data_dir, "/var/lib/postgresql/15/main");
    CHECK_EQ_STR(c.pg_bin_dir, "/usr/lib/postgresql/15/bin"); /* default */
    CHECK_EQ_STR(c.pg_run_as, "postgres");
    CHECK_EQ_STR(c.pg_options, "-p 5433");
    CHECK_EQ_INT(c.lease_ms, 3000);
    CHECK_EQ_INT(c.lease_renew_ms, 500); /* default */
    CHECK_EQ_INT(c.max_lag_bytes, 16777216);
    CHECK_EQ_INT(c.members[0].priority, 100); /* default */
    CHECK(!c.members[0].nofailover);
    CHECK_EQ_INT(c.heartbeat_timeout_ms, 150);
    CHECK_EQ_INT(c.snapshot_threshold, 1024); /* defaults */
    CHECK_EQ_INT(c.snapshot_trailing, 128);
    CHECK_EQ_INT(c.digest_interval_ms, 5000);
    CHECK_EQ_INT(c.api_allow_remote, false);
    CHECK_EQ_STR(c.raft_bind, "0.0.0.0:7001");
    CHECK_EQ_STR(c.api_listen, "127.0.0.1:9000");
    CHECK_EQ_STR(c.api_token_file, "/etc/aragora/token");
    CHECK_EQ_STR(c.api_token, "");
    CHECK_EQ_INT(c.log_level, AFC_LOG_DEBUG);
    CHECK_EQ_INT(c.log_format, AFC_LOG_JSON);
    CHECK_EQ_STR(c.database_url, "postgresql://aragora@127.0.0.1/postgres");
    CHECK_EQ_STR(c.redis_url, "redis://127.0.0.1:6379/0");
    CHECK_EQ_INT(c.region_id, 0); /* set by afc_config_apply_env */
}

static void test_minimal_config_defaults(void)
{
    struct afc_config c;
    struct afc_err err;
    REQUIRE(parse(&c, "data_dir: /d\nmembers:\n" M1 "raft:\nlog: ~\n", &err) == 0);
    CHECK_EQ_STR(c.region, "");
    CHECK_EQ_INT(c.n_members, 1);
    CHECK_EQ_INT(c.election_timeout_ms, 1000);
    CHECK_EQ_INT(c.heartbeat_timeout_ms, 100);
    CHECK_EQ_INT(c.log_level, AFC_LOG_INFO);
    CHECK_EQ_INT(c.log_format, AFC_LOG_TEXT);
    CHECK_EQ_STR(c.api_listen, "");
    CHECK(afc_config_self(&c) == NULL);
    /* members at AFC_MAX_MEMBERS is still fine; allow_remote admits a public listen address */
    REQUIRE(parse(&c,
                  "data_dir: /d\nmembers:\n" FLOW(1) FLOW(2) FLOW(3) FLOW(4) FLOW(5) FLOW(6) FLOW(7)
                      FLOW(8) FLOW(9) "api: {listen: '0.0.0.0:80', allow_remote: true}\n",
                  &err) == 0);
    CHECK_EQ_INT(c.n_members, AFC_MAX_MEMBERS);
    CHECK_EQ_INT(c.members[8].id, 9);
    CHECK_EQ_INT(c.api_allow_remote, true);
}

/* redis, dns and hooks left out: their defaults (docs/configuration.md). */
static void test_new_section_defaults(void)
{
    struct afc_config c;
    struct afc_err err;
    REQUIRE(parse(&c, BASE "redis: {url: 'redis://127.0.0.1:6379'}\ndns:\nhooks: ~\n", &err) == 0);
    CHECK_EQ_STR(c.members[0].address, "");
    CHECK_EQ_STR(c.redis_key, "aragora:primary");
    CHECK_EQ_STR(c.redis_channel, "aragora:events");
    CHECK_EQ_INT(c.redis_timeout_ms, 1000);
    CHECK_EQ_INT(c.dns.provider, AFC_DNS_NONE);
    CHECK_EQ_STR(c.dns.name, "");
    CHECK_EQ_INT(c.dns.ttl, 5);
    CHECK_EQ_INT(c.dns.timeout_ms, 5000);
    CHECK_EQ_INT(c.dns.n_verify_servers, 0);
    CHECK_EQ_STR(c.dns.powerdns.server_id, "localhost");
    CHECK_EQ_STR(c.dns.rfc2136.tsig_algorithm, "hmac-sha256");
    CHECK_EQ_STR(c.dns.cloudflare.api_url, "https://api.cloudflare.com/client/v4");
    CHECK_EQ_STR(c.dns.route53.endpoint, "https://route53.amazonaws.com");
    CHECK_EQ_STR(c.dns.route53.region, "us-east-1");
    CHECK_EQ_STR(c.hook_on_role_change, "");
    CHECK_EQ_INT(c.hook_timeout_ms, 30000);
    CHECK_EQ_INT(c.pre_promote_timeout_ms, 10000);
    CHECK_EQ_INT(c.n_webhooks, 0);
    CHECK_EQ_INT(c.webhook_attempts, 5);
    /* an empty list is fine too; provider none needs no addresses */
    REQUIRE(parse(&c, BASE "dns: {provider: none, verify_servers: []}\nhooks: {webhooks: ~}\n",
                  &err) == 0);
    CHECK_EQ_INT(c.dns.n_verify_servers, 0);
}

/* replication: async unless said otherwise; sync_strict only means something with sync. */
static void test_replication(void)
{
    struct afc_config c;
    struct afc_err err;
    REQUIRE(parse(&c, BASE, &err) == 0);
    CHECK_EQ_INT(c.repl_mode, AFC_REPL_ASYNC);
    CHECK(!c.repl_sync_strict);
    REQUIRE(parse(&c, BASE "replication:\n  mode: sync\n", &err) == 0);
    CHECK_EQ_INT(c.repl_mode, AFC_REPL_SYNC);
    CHECK(!c.repl_sync_strict);
    REQUIRE(parse(&c, BASE "replication: {mode: sync, sync_strict: true}\n", &err) == 0);
    CHECK_EQ_INT(c.repl_mode, AFC_REPL_SYNC);
    CHECK(c.repl_sync_strict);
    REQUIRE(parse(&c, BASE "replication: {mode: async}\n", &err) == 0);
    CHECK_EQ_INT(c.repl_mode, AFC_REPL_ASYNC);
}

static void test_dns_powerdns_full(void)
{
    static const char text[] = BASE_A DNS_PDNS "    server_id: ns-1.example\n"
                                               "    api_key_file: /etc/aragora/pdns-key\n"
                                               "  ttl: 30\n"
                                               "  timeout_ms: 2500\n"
                                               "  verify_servers:\n"
                                               "    - 127.0.0.1:5300\n"
                                               "    - '[2001:db8::53]:53'\n"
                                               "redis:\n"
                                               "  url: redis://127.0.0.1:6379/0\n"
                                               "  key: 'app:primary'\n"
                                               "  channel: app.events\n"
                                               "  timeout_ms: 250\n"
                                               "hooks:\n"
                                               "  on_role_change: /usr/local/bin/role-changed\n"
                                               "  pre_promote: /usr/local/bin/may-promote\n"
                                               "  timeout_ms: 60000\n"
                                               "  pre_promote_timeout_ms: 3000\n"
                                               "  webhooks:\n"
                                               "    - https://hooks.example.com/aragora\n"
                                               "    - http://10.0.0.9:8080\n"
                                               "  webhook_token_file: /etc/aragora/webhook\n"
                                               "  webhook_attempts: 3\n";
    struct afc_config c;
    struct afc_err err;
    int rv = parse(&c, text, &err);
    if (rv != 0) {
        fprintf(stderr, "  %s\n", err.msg);
    }
    REQUIRE(rv == 0);
    CHECK_EQ_STR(c.members[0].address, "10.0.1.5");
    CHECK_EQ_STR(c.members[1].address, "2001:db8::5");
    CHECK_EQ_INT(c.dns.provider, AFC_DNS_POWERDNS);
    CHECK_EQ_STR(c.dns.name, "primary.db.example.");
    CHECK_EQ_STR(c.dns.zone, "db.example.");
    CHECK_EQ_INT(c.dns.ttl, 30);
    CHECK_EQ_INT(c.dns.timeout_ms, 2500);
    CHECK_EQ_INT(c.dns.n_verify_servers, 2);
    CHECK_EQ_STR(c.dns.verify_servers[0], "127.0.0.1:5300");
    CHECK_EQ_STR(c.dns.verify_servers[1], "[2001:db8::53]:53");
    CHECK_EQ_STR(c.dns.powerdns.api_url, "http://127.0.0.1:8081");
    CHECK_EQ_STR(c.dns.powerdns.server_id, "ns-1.example");
    CHECK_EQ_STR(c.dns_powerdns_api_key_file, "/etc/aragora/pdns-key");
    CHECK_EQ_STR(c.dns.powerdns.api_key, ""); /* loaded by afc_config_apply_env */
    CHECK_EQ_STR(c.redis_url, "redis://127.0.0.1:6379/0");
    CHECK_EQ_STR(c.redis_key, "app:primary");
    CHECK_EQ_STR(c.redis_channel, "app.events");
    CHECK_EQ_INT(c.redis_timeout_ms, 250);
    CHECK_EQ_STR(c.hook_on_role_change, "/usr/local/bin/role-changed");
    CHECK_EQ_STR(c.hook_pre_promote, "/usr/local/bin/may-promote");
    CHECK_EQ_INT(c.hook_timeout_ms, 60000);
    CHECK_EQ_INT(c.pre_promote_timeout_ms, 3000);
    CHECK_EQ_INT(c.n_webhooks, 2);
    CHECK_EQ_STR(c.webhook_urls[0], "https://hooks.example.com/aragora");
    CHECK_EQ_STR(c.webhook_urls[1], "http://10.0.0.9:8080");
    CHECK_EQ_STR(c.webhook_token_file, "/etc/aragora/webhook");
    CHECK_EQ_INT(c.webhook_attempts, 3);
}

static void test_dns_other_providers(void)
{
    struct afc_config c;
    struct afc_err err;
    int rv = parse(&c,
                   BASE_A "dns:\n"
                          "  provider: rfc2136\n"
                          "  name: db.example.\n" /* the apex is inside the zone */
                          "  zone: DB.Example.\n"
                          "  rfc2136:\n"
                          "    server: '[::1]:5300'\n"
                          "    tsig_name: aragora-key.\n"
                          "    tsig_algorithm: hmac-sha512\n"
                          "    tsig_secret_file: /etc/aragora/tsig\n",
                   &err);
    if (rv != 0) {
        fprintf(stderr, "  rfc2136: %s\n", err.msg);
    }
    CHECK_EQ_INT(rv, 0);
    CHECK_EQ_INT(c.dns.provider, AFC_DNS_RFC2136);
    CHECK_EQ_STR(c.dns.rfc2136.server, "[::1]:5300");
    CHECK_EQ_STR(c.dns.rfc2136.tsig_name, "aragora-key.");
    CHECK_EQ_STR(c.dns.rfc2136.tsig_algorithm, "hmac-sha512");
    CHECK_EQ_STR(c.dns_rfc2136_tsig_secret_file, "/etc/aragora/tsig");

    rv = parse(&c,
               BASE_A "dns:\n  provider: cloudflare\n  name: primary.db.example.com.\n"
                      "  zone: example.com.\n"
                      "  cloudflare: {zone_id: 023e105f4ecef8ad9ca31a8372d0c353, "
                      "api_url: 'http://127.0.0.1:9000/client/v4', token_file: /etc/cf}\n",
               &err);
    CHECK_EQ_INT(rv, 0);
    CHECK_EQ_INT(c.dns.provider, AFC_DNS_CLOUDFLARE);
    CHECK_EQ_STR(c.dns.cloudflare.zone_id, "023e105f4ecef8ad9ca31a8372d0c353");
    CHECK_EQ_STR(c.dns.cloudflare.api_url, "http://127.0.0.1:9000/client/v4");
    CHECK_EQ_STR(c.dns_cloudflare_token_file, "/etc/cf");

    rv = parse(&c,
               BASE_A "dns:\n  provider: route53\n  name: primary.db.example.com.\n"
                      "  zone: db.example.com.\n"
                      "  route53:\n"
                      "    endpoint: http://127.0.0.1:9001\n"
                      "    hosted_zone_id: Z0123456789ABC\n"
                      "    region: eu-west-1\n"
                      "    access_key_id: AKIDEXAMPLE\n"
                      "    secret_access_key_file: /etc/aragora/aws-secret\n"
                      "    session_token_file: /etc/aragora/aws-session\n",
               &err);
    CHECK_EQ_INT(rv, 0);
    CHECK_EQ_INT(c.dns.provider, AFC_DNS_ROUTE53);
    CHECK_EQ_STR(c.dns.route53.endpoint, "http://127.0.0.1:9001");
    CHECK_EQ_STR(c.dns.route53.hosted_zone_id, "Z0123456789ABC");
    CHECK_EQ_STR(c.dns.route53.region, "eu-west-1");
    CHECK_EQ_STR(c.dns.route53.access_key_id, "AKIDEXAMPLE");
    CHECK_EQ_STR(c.dns_route53_secret_file, "/etc/aragora/aws-secret");
    CHECK_EQ_STR(c.dns_route53_session_token_file, "/etc/aragora/aws-session");
}

struct bad_case {
    const char *what;
    const char *yaml;
    const char *want; /* exact fragment of err.msg */
};

static const struct bad_case bad_cases[] = {
    {"syntax error", "region: us-east-2\ndata_dir: /d\n  members: x\n",
     SRC ":3: invalid YAML: mapping values are not allowed in this context"},
    {"unclosed flow", BASE "raft: {election_timeout_ms: 1000\n",
     SRC ":17: invalid YAML: did not find expected ',' or '}' (while parsing a flow mapping at "
         "line 16)"},
    {"tab indentation", "region: us-east-2\n\tdata_dir: /d\n", SRC ":2: invalid YAML: found "},
    {"unknown top-level key", BASE "colour: blue\n",
     SRC
     ":16: unknown key 'colour'; expected one of: region, data_dir, members, raft, api, cluster, "
     "failover, log, postgres, replication, redis, dns, hooks"},
    {"replication mode", BASE "replication:\n  mode: semi\n",
     SRC ":17: replication.mode: expected async or sync, got 'semi'"},
    {"replication strict", BASE "replication: {mode: sync, sync_strict: yes}\n",
     SRC ":16: replication.sync_strict: expected true or false, got 'yes'"},
    {"replication unknown key", BASE "replication:\n  synchronous_node_count: 2\n",
     SRC ":17: replication: unknown key 'synchronous_node_count'; expected one of: mode, "
         "sync_strict"},
    {"failover key out of range", BASE "failover:\n  lease_ms: 50\n",
     SRC ":17: failover.lease_ms: expected an integer from 100 to 600000, got '50'"},
    {"member priority not a number", BASE "    priority: high\n",
     SRC ":16: members[2].priority: expected an integer from 0 to 1000000, got 'high'"},
    {"unknown nested key", BASE "raft:\n  election_timeout: 900\n",
     SRC ":17: raft: unknown key 'election_timeout'; expected one of: election_timeout_ms, "
         "heartbeat_timeout_ms, snapshot_threshold, snapshot_trailing, digest_interval_ms, bind"},
    {"unknown member key", TOP M1 "    zone: a\n",
     SRC ":8: members[0]: unknown key 'zone'; expected one of: name, id, raft, raft_dial, api, "
         "postgres, "
         "priority, nofailover, address"},
    {"raft_dial not an address", TOP M1 "    raft_dial: proxy.example:7001\n",
     SRC ":8: members[0].raft_dial: expected an IPv4 address and port like 10.0.1.5:7001 "
         "(libraft accepts no host names), got 'proxy.example:7001'"},
    {"wrong type", BASE "raft:\n  election_timeout_ms: fast\n",
     SRC ":17: raft.election_timeout_ms: expected an integer from 10 to 600000, got 'fast'"},
    {"negative", BASE "raft:\n  snapshot_threshold: -1\n",
     SRC ":17: raft.snapshot_threshold: expected an integer from 1 to 1000000000, got '-1'"},
    {"mapping for a scalar", BASE "raft:\n  heartbeat_timeout_ms: {a: 1}\n",
     SRC ":17: raft.heartbeat_timeout_ms: expected an integer from 1 to 600000, got a mapping"},
    {"scalar for a mapping", BASE "raft: 1000\n", SRC ":16: raft: expected a mapping, got '1000'"},
    {"empty value", BASE "raft:\n  digest_interval_ms:\n",
     SRC ":17: raft.digest_interval_ms: expected an integer from 10 to 3600000, got nothing"},
    {"out of range", BASE "raft:\n  election_timeout_ms: 5\n",
     SRC ":17: raft.election_timeout_ms: expected an integer from 10 to 600000, got '5'"},
    {"overflow", BASE "raft:\n  election_timeout_ms: 99999999999999999999999\n",
     SRC ":17: raft.election_timeout_ms: expected an integer from 10 to 600000, got "
         "'99999999999999999999999'"},
    {"heartbeat >= election",
     BASE "raft:\n  election_timeout_ms: 500\n  heartbeat_timeout_ms: 500\n",
     SRC ":18: raft.heartbeat_timeout_ms: expected less than raft.election_timeout_ms (500), got "
         "'500'"},
    {"election below default heartbeat", BASE "raft:\n  election_timeout_ms: 50\n",
     SRC ":17: raft.election_timeout_ms: expected more than raft.heartbeat_timeout_ms (100 by "
         "default), got '50'"},
    {"bool", BASE "api:\n  allow_remote: maybe\n",
     SRC ":17: api.allow_remote: expected true or false, got 'maybe'"},
    {"log level", BASE "log:\n  level: verbose\n",
     SRC ":17: log.level: expected one of debug, info, notice, warn, error, got 'verbose'"},
    {"log format", BASE "log:\n  format: xml\n",
     SRC ":17: log.format: expected text or json, got 'xml'"},
    {"raft address hostname",
     TOP M1 MEMBER("eu-west-1", "2", "raft.example.com:7002", "http://x:1"),
     SRC ":10: members[1].raft: expected an IPv4 address and port like 10.0.1.5:7001 (libraft "
         "accepts no host names), got 'raft.example.com:7002'"},
    {"raft address without port", TOP M1 MEMBER("eu-west-1", "2", "127.0.0.1", "http://x:1"),
     SRC ":10: members[1].raft: expected an IPv4 address and port"},
    {"raft port 70000", TOP M1 MEMBER("eu-west-1", "2", "127.0.0.1:70000", "http://x:1"),
     SRC ":10: members[1].raft: expected an IPv4 address and port like 10.0.1.5:7001 (libraft "
         "accepts no host names), got '127.0.0.1:70000'"},
    {"raft port 0", TOP M1 MEMBER("eu-west-1", "2", "127.0.0.1:0", "http://x:1"),
     SRC ":10: members[1].raft: expected an IPv4 address and port"},
    {"raft octet 256", TOP M1 MEMBER("eu-west-1", "2", "127.0.0.256:7002", "http://x:1"),
     SRC ":10: members[1].raft: expected an IPv4 address and port"},
    {"raft bind hostname", BASE "raft:\n  bind: localhost:7001\n",
     SRC ":17: raft.bind: expected an IPv4 address and port"},
    {"api url scheme", TOP MEMBER("us-east-2", "1", "127.0.0.1:7001", "https://127.0.0.1:8081"),
     SRC ":7: members[0].api: expected a URL like http://10.0.1.5:8080, got "
         "'https://127.0.0.1:8081'"},
    {"api url path", TOP MEMBER("us-east-2", "1", "127.0.0.1:7001", "http://127.0.0.1:8081/v1"),
     SRC ":7: members[0].api: expected a URL like http://10.0.1.5:8080"},
    {"member name uppercase", TOP MEMBER("US-East-2", "1", "127.0.0.1:7001", "http://a:1"),
     SRC ":4: members[0].name: expected a name of 1 to 31 lowercase letters, digits or '-', got "
         "'US-East-2'"},
    {"member name too long",
     TOP MEMBER("abcdefghijklmnopqrstuvwxyz-0123456", "1", "127.0.0.1:7001", "http://a:1"),
     SRC ":4: members[0].name: expected at most 31 characters, got "
         "'abcdefghijklmnopqrstuvwxyz-0123456'"},
    {"member id zero", TOP MEMBER("us-east-2", "0", "127.0.0.1:7001", "http://a:1"),
     SRC ":5: members[0].id: expected an integer >= 1, got '0'"},
    {"duplicate member name", TOP M1 M2 MEMBER("eu-west-1", "3", "127.0.0.1:7003", "http://a:1"),
     SRC ":12: members[2].name: expected a unique name, got 'eu-west-1' (also members[1] at line "
         "8)"},
    {"duplicate member id", TOP M1 M2 MEMBER("ap-south-1", "2", "127.0.0.1:7003", "http://a:1"),
     SRC ":13: members[2].id: expected a unique id, got '2' (also members[1] at line 9)"},
    {"duplicate raft address", TOP M1 M2 MEMBER("ap-south-1", "3", "127.0.0.1:7001", "http://a:1"),
     SRC ":14: members[2].raft: expected a unique address, got '127.0.0.1:7001' (also members[0] "
         "at line 6)"},
    {"missing member key", TOP M1 "  - name: eu-west-1\n    id: 2\n    raft: 127.0.0.1:7002\n",
     SRC ":8: members[1]: missing required key 'api'"},
    {"member not a mapping", TOP M1 "  - eu-west-1\n",
     SRC ":8: members[1]: expected a mapping, got 'eu-west-1'"},
    {"region not a member", "region: us-west-9\ndata_dir: /d\nmembers:\n" M1 M2 M3,
     SRC ":1: region: 'us-west-9' is not one of the members: us-east-2, eu-west-1, ap-south-1"},
    {"non-loopback listen", BASE "api:\n  listen: 0.0.0.0:8081\n",
     SRC ":17: api.listen: expected a loopback address (or api.allow_remote: true), got "
         "'0.0.0.0:8081'"},
    {"listen without port", BASE "api:\n  listen: 127.0.0.1\n",
     SRC ":17: api.listen: expected host:port like 127.0.0.1:8080, got '127.0.0.1'"},
    {"relative data_dir", "data_dir: var/lib\n",
     SRC ":1: data_dir: expected an absolute path, got 'var/lib'"},
    {"duplicate key", BASE "raft:\n  election_timeout_ms: 900\n  election_timeout_ms: 800\n",
     SRC ":18: raft.election_timeout_ms: duplicate key (first set at line 17)"},
    {"duplicate top-level key", BASE "data_dir: /other\n",
     SRC ":16: data_dir: duplicate key (first set at line 2)"},
    {"missing data_dir", "region: us-east-2\nmembers:\n" M1,
     SRC ":1: missing required key 'data_dir'"},
    {"missing members", "# comment\n\ndata_dir: /d\n", SRC ":3: missing required key 'members'"},
    {"empty document", "",
     SRC ":1: expected a mapping of configuration keys, got an empty document"},
    {"only comments", "# nothing here\n\n",
     SRC ":1: expected a mapping of configuration keys, got an empty document"},
    {"top-level scalar", "hello\n", SRC ":1: expected a mapping, got 'hello'"},
    {"two documents", BASE "---\nregion: eu-west-1\n", SRC ":17: expected a single YAML document"},
    {"members not a sequence", "data_dir: /d\nmembers:\n  name: us-east-2\n",
     SRC ":3: members: expected a sequence of 1 to 9 members, got a mapping"},
    {"members empty", "data_dir: /d\nmembers: []\n",
     SRC ":2: members: expected a sequence of 1 to 9 members, got 0 members"},
    {"too many members",
     "data_dir: /d\nmembers:\n" FLOW(1) FLOW(2) FLOW(3) FLOW(4) FLOW(5) FLOW(6) FLOW(7) FLOW(8)
         FLOW(9) FLOW(10),
     SRC ":3: members: expected a sequence of 1 to 9 members, got 10 members"},
    {"secret not echoed", BASE "postgres:\n  url: [postgresql://u:hunter2@h/db]\n",
     SRC ":17: postgres.url: expected a connection URL, got a sequence"},
    /* members[].address */
    {"member address a host name",
     TOP MEMBER_A("us-east-2", "1", "127.0.0.1:7001", "http://a:1", "db1.example.com"),
     SRC ":8: members[0].address: expected an IPv4 or IPv6 address like 10.0.1.5 or 2001:db8::5, "
         "got 'db1.example.com'"},
    {"member address with a port",
     TOP MEMBER_A("us-east-2", "1", "127.0.0.1:7001", "http://a:1", "10.0.1.5:5432"),
     SRC ":8: members[0].address: expected an IPv4 or IPv6 address like 10.0.1.5 or 2001:db8::5, "
         "got '10.0.1.5:5432'"},
    {"member address octet 256",
     TOP MEMBER_A("us-east-2", "1", "127.0.0.1:7001", "http://a:1", "10.0.1.256"),
     SRC ":8: members[0].address: expected an IPv4 or IPv6 address like 10.0.1.5 or 2001:db8::5, "
         "got '10.0.1.256'"},
    {"member address bracketed IPv6",
     TOP MEMBER_A("us-east-2", "1", "127.0.0.1:7001", "http://a:1", "'[2001:db8::5]'"),
     SRC ":8: members[0].address: expected an IPv4 or IPv6 address like 10.0.1.5 or 2001:db8::5, "
         "got '[2001:db8::5]'"},
    /* redis */
    {"redis key with a space", BASE "redis:\n  key: 'app primary'\n",
     SRC ":17: redis.key: expected printable characters without spaces, got 'app primary'"},
    {"redis channel empty", BASE "redis:\n  channel: ''\n",
     SRC ":17: redis.channel: expected printable characters without spaces, got nothing"},
    {"redis timeout too short", BASE "redis:\n  timeout_ms: 10\n",
     SRC ":17: redis.timeout_ms: expected an integer from 50 to 600000, got '10'"},
    /* dns: values */
    {"dns provider unknown", BASE "dns:\n  provider: bind9\n",
     SRC ":17: dns.provider: expected one of none, powerdns, rfc2136, cloudflare, route53, got "
         "'bind9'"},
    {"dns name without the trailing dot", BASE "dns:\n  name: primary.db.example\n",
     SRC ":17: dns.name: expected an absolute DNS name with the trailing dot, like "
         "primary.db.example., got 'primary.db.example'"},
    {"dns zone with a space", BASE "dns:\n  zone: 'db example.'\n",
     SRC ":17: dns.zone: expected an absolute DNS name with the trailing dot, like "
         "primary.db.example., got 'db example.'"},
    {"dns zone the root", BASE "dns:\n  zone: .\n",
     SRC ":17: dns.zone: expected an absolute DNS name with the trailing dot, like "
         "primary.db.example., got '.'"},
    {"dns ttl zero", BASE "dns:\n  ttl: 0\n",
     SRC ":17: dns.ttl: expected an integer from 1 to 86400, got '0'"},
    {"dns ttl above a day", BASE "dns:\n  ttl: 86401\n",
     SRC ":17: dns.ttl: expected an integer from 1 to 86400, got '86401'"},
    {"dns timeout too short", BASE "dns:\n  timeout_ms: 50\n",
     SRC ":17: dns.timeout_ms: expected an integer from 100 to 600000, got '50'"},
    {"verify_servers a string", BASE "dns:\n  verify_servers: 127.0.0.1:53\n",
     SRC ":17: dns.verify_servers: expected a sequence of at most 4 items, each an IP address and "
         "port like 10.0.1.5:53 or [2001:db8::5]:53, got '127.0.0.1:53'"},
    {"verify_servers a host name",
     BASE "dns:\n  verify_servers:\n    - 127.0.0.1:53\n    - ns1.example.com:53\n",
     SRC ":19: dns.verify_servers[1]: expected an IP address and port like 10.0.1.5:53 or "
         "[2001:db8::5]:53, got 'ns1.example.com:53'"},
    {"verify_servers without a port", BASE "dns:\n  verify_servers: [127.0.0.1]\n",
     SRC ":17: dns.verify_servers[0]: expected an IP address and port like 10.0.1.5:53 or "
         "[2001:db8::5]:53, got '127.0.0.1'"},
    {"verify_servers IPv6 without brackets", BASE "dns:\n  verify_servers: ['2001:db8::53']\n",
     SRC ":17: dns.verify_servers[0]: expected an IP address and port like 10.0.1.5:53 or "
         "[2001:db8::5]:53, got '2001:db8::53'"},
    {"verify_servers item a mapping", BASE "dns:\n  verify_servers:\n    - {host: 127.0.0.1}\n",
     SRC ":18: dns.verify_servers[0]: expected an IP address and port like 10.0.1.5:53 or "
         "[2001:db8::5]:53, got a mapping"},
    {"verify_servers five",
     BASE "dns:\n  verify_servers: [127.0.0.1:1, 127.0.0.1:2, 127.0.0.1:3, 127.0.0.1:4, "
          "127.0.0.1:5]\n",
     SRC ":17: dns.verify_servers: expected a sequence of at most 4 items, got 5 items"},
    {"powerdns api_url ftp", BASE "dns:\n  powerdns:\n    api_url: ftp://127.0.0.1:8081\n",
     SRC ":18: dns.powerdns.api_url: expected an http:// or https:// URL like "
         "https://dns.example.com:8081/path, got 'ftp://127.0.0.1:8081'"},
    {"powerdns api_url with a space in the path",
     BASE "dns:\n  powerdns:\n    api_url: 'http://127.0.0.1:8081/a b'\n",
     SRC ":18: dns.powerdns.api_url: expected an http:// or https:// URL like "
         "https://dns.example.com:8081/path, got 'http://127.0.0.1:8081/a b'"},
    {"powerdns api_url with credentials",
     BASE "dns:\n  powerdns:\n    api_url: http://admin:s3cret@127.0.0.1:8081\n",
     SRC ":18: dns.powerdns.api_url: expected an http:// or https:// URL like "
         "https://dns.example.com:8081/path, got a value of 34 characters (not shown)"},
    {"powerdns api_url bad port", BASE "dns:\n  powerdns: {api_url: 'http://127.0.0.1:80801'}\n",
     SRC ":17: dns.powerdns.api_url: expected an http:// or https:// URL"},
    {"powerdns server_id with a slash", BASE "dns:\n  powerdns: {server_id: 'a/b'}\n",
     SRC ":17: dns.powerdns.server_id: expected an identifier of letters, digits, '.', '_' or '-', "
         "got 'a/b'"},
    {"powerdns api key in the file", BASE "dns:\n  powerdns:\n    api_key: s3cret\n",
     SRC ":18: dns.powerdns: unknown key 'api_key'; expected one of: api_url, server_id, "
         "api_key_file"},
    {"rfc2136 server a host name", BASE "dns:\n  rfc2136: {server: 'ns1.example.com:53'}\n",
     SRC ":17: dns.rfc2136.server: expected an IP address and port like 10.0.1.5:53 or "
         "[2001:db8::5]:53, got 'ns1.example.com:53'"},
    {"rfc2136 tsig_name not absolute", BASE "dns:\n  rfc2136: {tsig_name: aragora-key}\n",
     SRC ":17: dns.rfc2136.tsig_name: expected an absolute DNS name with the trailing dot, like "
         "primary.db.example., got 'aragora-key'"},
    {"rfc2136 tsig_algorithm md5", BASE "dns:\n  rfc2136: {tsig_algorithm: hmac-md5}\n",
     SRC ":17: dns.rfc2136.tsig_algorithm: expected hmac-sha256 or hmac-sha512, got 'hmac-md5'"},
    {"cloudflare zone_id with a space", BASE "dns:\n  cloudflare: {zone_id: 'abc def'}\n",
     SRC ":17: dns.cloudflare.zone_id: expected an identifier of letters, digits, '.', '_' or '-', "
         "got 'abc def'"},
    {"route53 hosted_zone_id with its prefix",
     BASE "dns:\n  route53: {hosted_zone_id: /hostedzone/Z0123}\n",
     SRC ":17: dns.route53.hosted_zone_id: expected an identifier of letters, digits, '.', '_' or "
         "'-', got '/hostedzone/Z0123'"},
    {"route53 region upper case", BASE "dns:\n  route53: {region: EU-WEST-1}\n",
     SRC ":17: dns.route53.region: expected a name of 1 to 31 lowercase letters, digits or '-', "
         "got 'EU-WEST-1'"},
    {"route53 endpoint without scheme", BASE "dns:\n  route53: {endpoint: route53.amazonaws.com}\n",
     SRC ":17: dns.route53.endpoint: expected an http:// or https:// URL like "
         "https://dns.example.com:8081/path, got 'route53.amazonaws.com'"},
    /* dns: keys that depend on each other */
    {"dns name outside the zone",
     BASE_A "dns:\n  name: primary.db.example.\n  zone: other.example.\n",
     SRC ":20: dns.name: expected a name inside dns.zone 'other.example.', got "
         "'primary.db.example.'"},
    {"dns name only ends like the zone",
     BASE_A "dns:\n  zone: db.example.\n  name: primary.xdb.example.\n",
     SRC ":21: dns.name: expected a name inside dns.zone 'db.example.', got "
         "'primary.xdb.example.'"},
    {"dns provider without name", BASE_A "dns:\n  zone: db.example.\n  provider: powerdns\n",
     SRC ":21: dns.name: required when dns.provider is powerdns"},
    {"dns provider without zone", BASE_A "dns:\n  provider: rfc2136\n  name: a.db.example.\n",
     SRC ":20: dns.zone: required when dns.provider is rfc2136"},
    {"powerdns without api_url",
     BASE_A "dns:\n  provider: powerdns\n  name: primary.db.example.\n  zone: db.example.\n",
     SRC ":20: dns.powerdns.api_url: required when dns.provider is powerdns"},
    {"rfc2136 without server",
     BASE_A "dns: {provider: rfc2136, name: a.db.example., zone: db.example., rfc2136: {tsig_name: "
            "k.}}\n",
     SRC ":19: dns.rfc2136.server: required when dns.provider is rfc2136"},
    {"rfc2136 without tsig_name",
     BASE_A "dns: {provider: rfc2136, name: a.db.example., zone: db.example., rfc2136: {server: "
            "'127.0.0.1:53'}}\n",
     SRC ":19: dns.rfc2136.tsig_name: required when dns.provider is rfc2136"},
    {"cloudflare without zone_id",
     BASE_A "dns: {provider: cloudflare, name: a.db.example., zone: db.example.}\n",
     SRC ":19: dns.cloudflare.zone_id: required when dns.provider is cloudflare"},
    {"route53 without hosted_zone_id",
     BASE_A "dns: {provider: route53, name: a.db.example., zone: db.example.}\n",
     SRC ":19: dns.route53.hosted_zone_id: required when dns.provider is route53"},
    {"members without address", BASE DNS_PDNS,
     SRC ":4: members[0].address: required when dns.provider is powerdns (the address dns.name "
         "answers while 'us-east-2' is primary)"},
    {"third member without address",
     TOP MEMBER_A("us-east-2", "1", "127.0.0.1:7001", "http://a:1", "10.0.1.5")
         MEMBER_A("eu-west-1", "2", "127.0.0.1:7002", "http://a:2", "10.0.2.5") M3 DNS_PDNS,
     SRC ":14: members[2].address: required when dns.provider is powerdns (the address dns.name "
         "answers while 'ap-south-1' is primary)"},
    /* hooks */
    {"hook path relative", BASE "hooks:\n  on_role_change: bin/hook\n",
     SRC ":17: hooks.on_role_change: expected an absolute path, got 'bin/hook'"},
    {"pre_promote a list", BASE "hooks:\n  pre_promote: [/bin/a, /bin/b]\n",
     SRC ":17: hooks.pre_promote: expected an absolute path, got a sequence"},
    {"hook timeout zero", BASE "hooks:\n  timeout_ms: 0\n",
     SRC ":17: hooks.timeout_ms: expected an integer from 100 to 3600000, got '0'"},
    {"pre_promote timeout too long", BASE "hooks:\n  pre_promote_timeout_ms: 700000\n",
     SRC ":17: hooks.pre_promote_timeout_ms: expected an integer from 100 to 600000, got "
         "'700000'"},
    {"webhook attempts 21", BASE "hooks:\n  webhook_attempts: 21\n",
     SRC ":17: hooks.webhook_attempts: expected an integer from 1 to 20, got '21'"},
    {"webhook attempts 0", BASE "hooks:\n  webhook_attempts: 0\n",
     SRC ":17: hooks.webhook_attempts: expected an integer from 1 to 20, got '0'"},
    {"webhooks a string", BASE "hooks:\n  webhooks: https://hooks.example.com/a\n",
     SRC ":17: hooks.webhooks: expected a sequence of at most 4 items, each an http:// or https:// "
         "URL like https://dns.example.com:8081/path, got 'https://hooks.example.com/a'"},
    {"webhook ftp",
     BASE "hooks:\n  webhooks:\n    - https://a.example/x\n    - ftp://b.example/y\n",
     SRC ":19: hooks.webhooks[1]: expected an http:// or https:// URL like "
         "https://dns.example.com:8081/path, got 'ftp://b.example/y'"},
    {"five webhooks",
     BASE "hooks:\n  webhooks: [http://a:1, http://a:2, http://a:3, http://a:4, http://a:5]\n",
     SRC ":17: hooks.webhooks: expected a sequence of at most 4 items, got 5 items"},
    {"webhook with a token in the URL", BASE "hooks:\n  webhooks: ['https://u:s3cret@a.example']\n",
     SRC ":17: hooks.webhooks[0]: expected an http:// or https:// URL like "
         "https://dns.example.com:8081/path, got a value of 26 characters (not shown)"},
    {"non-scalar key", BASE "? [a]\n: 1\n",
     SRC ":16: unknown key a sequence; expected one of: region"},
    {"unprintable value", BASE "log:\n  level: \"de\\tbug\"\n",
     SRC ":17: log.level: expected one of debug, info, notice, warn, error, got 'de?bug'"},
};

static void test_bad_configs(void)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *t = &bad_cases[i];
        struct afc_config c;
        struct afc_err err;
        int rv = parse(&c, t->yaml, &err);
        if (rv != AFC_ECONFIG || strstr(err.msg, t->want) == NULL) {
            fprintf(stderr, "  case '%s': rv %d\n    got:  %s\n    want: %s\n", t->what, rv,
                    err.msg, t->want);
            test_failed_checks++;
        }
        CHECK(strstr(err.msg, "s3cret") == NULL);
    }
}

static void test_secret_length_not_echoed(void)
{
    char text[2048], url[700];
    memset(url, 'x', sizeof url - 1);
    url[sizeof url - 1] = '\0';
    memcpy(url, "postgresql://u:hunter2@", 23);
    snprintf(text, sizeof text, "%spostgres:\n  url: %s\n", BASE, url);
    struct afc_config c;
    struct afc_err err;
    CHECK_EQ_INT(parse(&c, text, &err), AFC_ECONFIG);
    CHECK_CONTAINS(err.msg, SRC ":17: postgres.url: expected at most 511 characters, got a value "
                                "of 699 characters (not shown)");
    CHECK(strstr(err.msg, "hunter2") == NULL);
}

/* ---- Environment ------------------------------------------------------------------------------
 */

static const char *const *fake_env; /* name, value, name, value, ..., NULL */

/* The cluster secret is required; tests that are not about it get this one unless their table
 * names ARAGORA_CLUSTER_SECRET (an empty value counts as unset). */
#define TEST_CLUSTER_SECRET "test-cluster-secret-0123"

static const char *fake_getenv(const char *name)
{
    for (const char *const *p = fake_env; p != NULL && *p != NULL; p += 2) {
        if (strcmp(p[0], name) == 0) {
            return p[1];
        }
    }
    return strcmp(name, "ARAGORA_CLUSTER_SECRET") == 0 ? TEST_CLUSTER_SECRET : NULL;
}

static int parse_env(struct afc_config *c, const char *yaml, const char *const *envv,
                     struct afc_err *err)
{
    int rv = parse(c, yaml, err);
    if (rv != 0) {
        fprintf(stderr, "  parse: %s\n", err->msg);
        return rv;
    }
    fake_env = envv;
    return afc_config_apply_env(c, fake_getenv, err);
}

static void test_env_defaults_and_derived(void)
{
    struct afc_config c;
    struct afc_err err;
    static const char *const envv[] = {NULL};
    REQUIRE(parse_env(&c, BASE, envv, &err) == 0);
    CHECK_EQ_STR(c.region, "us-east-2");
    CHECK_EQ_INT(c.region_id, 1);
    CHECK_EQ_STR(c.api_listen, "127.0.0.1:8081"); /* from members[0].api */
    CHECK_EQ_STR(c.api_token, "");
    CHECK_EQ_INT(c.federation_enabled, false);
    CHECK_EQ_STR(c.primary_hint, "");
    REQUIRE(afc_config_self(&c) != NULL);
    CHECK_EQ_STR(afc_config_self(&c)->name, "us-east-2");
}

static void test_env_overrides(void)
{
    struct afc_config c;
    struct afc_err err;
    static const char *const envv[] = {"ARAGORA_REGION",
                                       "eu-west-1",
                                       "ARAGORA_REGION_ID",
                                       "2",
                                       "DATABASE_URL",
                                       "postgresql://a:b@h/db",
                                       "REDIS_URL",
                                       "redis://h:6379/1",
                                       "FEDERATION_ENABLED",
                                       "yes",
                                       "ARAGORA_PRIMARY",
                                       "ap-south-1",
                                       "ARAGORA_API_TOKEN",
                                       "tok-123",
                                       NULL};
    int rv = parse_env(&c, BASE "postgres: {url: 'postgresql://file/db'}\n", envv, &err);
    if (rv != 0) {
        fprintf(stderr, "  %s\n", err.msg);
    }
    REQUIRE(rv == 0);
    CHECK_EQ_STR(c.region, "eu-west-1");
    CHECK_EQ_INT(c.region_id, 2);
    CHECK_EQ_STR(c.api_listen, "127.0.0.1:8082");
    CHECK_EQ_STR(c.database_url, "postgresql://a:b@h/db");
    CHECK_EQ_STR(c.redis_url, "redis://h:6379/1");
    CHECK_EQ_INT(c.federation_enabled, true);
    CHECK_EQ_STR(c.primary_hint, "ap-south-1");
    CHECK_EQ_STR(c.api_token, "tok-123");
}

static void test_env_region_id_selects(void)
{
    struct afc_config c;
    struct afc_err err;
    static const char *const envv[] = {"ARAGORA_REGION_ID", "3", "ARAGORA_REGION", "", NULL};
    REQUIRE(parse_env(&c, BASE, envv, &err) == 0);
    CHECK_EQ_STR(c.region, "ap-south-1");
    CHECK_EQ_INT(c.region_id, 3);
    static const char *const none[] = {NULL}; /* no region anywhere */
    CHECK_EQ_INT(parse_env(&c, "data_dir: /d\nmembers:\n" M1, none, &err), AFC_ECONFIG);
    CHECK_EQ_STR(err.msg, SRC ": region: not set; set it in the file or with ARAGORA_REGION or "
                              "ARAGORA_REGION_ID");
}

struct env_case {
    const char *what;
    const char *yaml;
    const char *env[8];
    const char *want;
};

static const struct env_case env_cases[] = {
    {"region not a member",
     BASE,
     {"ARAGORA_REGION", "us-west-9"},
     "ARAGORA_REGION: 'us-west-9' is not one of the members: us-east-2, eu-west-1, ap-south-1"},
    {"region id mismatch",
     BASE,
     {"ARAGORA_REGION", "eu-west-1", "ARAGORA_REGION_ID", "7"},
     "ARAGORA_REGION_ID: expected the id of member 'eu-west-1' (2), got '7'"},
    {"region id unknown",
     BASE,
     {"ARAGORA_REGION_ID", "7"},
     "ARAGORA_REGION_ID: expected the id of a member (1, 2, 3), got '7'"},
    {"region id not a number",
     BASE,
     {"ARAGORA_REGION_ID", "two"},
     "ARAGORA_REGION_ID: expected an integer >= 1, got 'two'"},
    {"federation maybe",
     BASE,
     {"FEDERATION_ENABLED", "maybe"},
     "FEDERATION_ENABLED: expected true, false, 1, 0, yes or no, got 'maybe'"},
    {"primary not a member",
     BASE,
     {"ARAGORA_PRIMARY", "mars-1"},
     "ARAGORA_PRIMARY: expected one of the members (us-east-2, eu-west-1, ap-south-1), got "
     "'mars-1'"},
    {"token with a space",
     BASE,
     {"ARAGORA_API_TOKEN", "s3cret value"},
     "ARAGORA_API_TOKEN: expected 1 to 255 printable characters without spaces (value not "
     "shown)"},
    {"lease renewal not shorter than the lease",
     BASE "failover:\n  lease_ms: 1000\n  lease_renew_ms: 1000\n",
     {NULL},
     SRC ": failover.lease_renew_ms: expected less than failover.lease_ms (1000), got 1000"},
    {"cluster secret not set",
     BASE,
     {"ARAGORA_CLUSTER_SECRET", ""},
     SRC ": cluster.secret_file: not set; every Raft connection is authenticated with a shared "
         "secret: set cluster.secret_file or ARAGORA_CLUSTER_SECRET"},
    {"cluster secret too short",
     BASE,
     {"ARAGORA_CLUSTER_SECRET", "s3cret-short"},
     "ARAGORA_CLUSTER_SECRET: expected 16 to 63 printable characters without spaces (value not "
     "shown)"},
    {"cluster secret file missing",
     BASE "cluster:\n  secret_file: /nonexistent/aragora-secret\n",
     {"ARAGORA_CLUSTER_SECRET", ""},
     SRC ": cluster.secret_file: cannot read '/nonexistent/aragora-secret': No such file or "
         "directory"},
    {"token file missing",
     BASE "api:\n  token_file: /nonexistent/aragora-token\n",
     {NULL},
     SRC ": api.token_file: cannot read '/nonexistent/aragora-token': No such file or directory"},
    {"powerdns key not set",
     BASE_A DNS_PDNS,
     {NULL},
     SRC ": dns.powerdns.api_key_file: not set; required when dns.provider is powerdns: set "
         "dns.powerdns.api_key_file or PDNS_API_KEY"},
    {"powerdns key with a space",
     BASE_A DNS_PDNS,
     {"PDNS_API_KEY", "s3cret key"},
     "PDNS_API_KEY: expected 1 to 511 printable characters without spaces (value not shown)"},
    {"powerdns key file missing",
     BASE_A DNS_PDNS "    api_key_file: /nonexistent/pdns-key\n",
     {NULL},
     SRC ": dns.powerdns.api_key_file: cannot read '/nonexistent/pdns-key': No such file or "
         "directory"},
    {"tsig secret not set",
     BASE_A "dns: {provider: rfc2136, name: a.db.example., zone: db.example., rfc2136: {server: "
            "'127.0.0.1:53', tsig_name: k.}}\n",
     {NULL},
     SRC ": dns.rfc2136.tsig_secret_file: not set; required when dns.provider is rfc2136: set "
         "dns.rfc2136.tsig_secret_file or ARAGORA_DNS_TSIG_SECRET"},
    {"tsig secret not base64",
     BASE_A "dns: {provider: rfc2136, name: a.db.example., zone: db.example., rfc2136: {server: "
            "'127.0.0.1:53', tsig_name: k.}}\n",
     {"ARAGORA_DNS_TSIG_SECRET", "s3cret!!"},
     "ARAGORA_DNS_TSIG_SECRET: expected 4 to 511 characters of base64, as in a BIND key file "
     "(value not shown)"},
    {"tsig secret without padding",
     BASE_A "dns: {provider: rfc2136, name: a.db.example., zone: db.example., rfc2136: {server: "
            "'127.0.0.1:53', tsig_name: k.}}\n",
     {"ARAGORA_DNS_TSIG_SECRET", "s3cretAA="},
     "ARAGORA_DNS_TSIG_SECRET: expected 4 to 511 characters of base64"},
    {"cloudflare token not set",
     BASE_A "dns: {provider: cloudflare, name: a.db.example., zone: db.example., cloudflare: "
            "{zone_id: z1}}\n",
     {NULL},
     SRC ": dns.cloudflare.token_file: not set; required when dns.provider is cloudflare: set "
         "dns.cloudflare.token_file or CLOUDFLARE_API_TOKEN"},
    {"route53 key id not set",
     BASE_A "dns: {provider: route53, name: a.db.example., zone: db.example., route53: "
            "{hosted_zone_id: Z1}}\n",
     {"AWS_SECRET_ACCESS_KEY", "s3cret-aws"},
     SRC ": dns.route53.access_key_id: not set; required when dns.provider is route53: set "
         "dns.route53.access_key_id or AWS_ACCESS_KEY_ID"},
    {"route53 key id malformed",
     BASE_A "dns: {provider: route53, name: a.db.example., zone: db.example., route53: "
            "{hosted_zone_id: Z1}}\n",
     {"AWS_ACCESS_KEY_ID", "AKID/EXAMPLE"},
     "AWS_ACCESS_KEY_ID: expected 1 to 127 letters, digits, '.', '_' or '-', got 'AKID/EXAMPLE'"},
    {"route53 secret not set",
     BASE_A "dns: {provider: route53, name: a.db.example., zone: db.example., route53: "
            "{hosted_zone_id: Z1, access_key_id: AKIDEXAMPLE}}\n",
     {NULL},
     SRC ": dns.route53.secret_access_key_file: not set; required when dns.provider is route53: "
         "set dns.route53.secret_access_key_file or AWS_SECRET_ACCESS_KEY"},
    {"webhook token with a space",
     BASE,
     {"ARAGORA_WEBHOOK_TOKEN", "s3cret token"},
     "ARAGORA_WEBHOOK_TOKEN: expected 1 to 511 printable characters without spaces (value not "
     "shown)"},
    {"pre_promote hook a directory",
     BASE "hooks:\n  pre_promote: /tmp\n",
     {NULL},
     SRC ": hooks.pre_promote: cannot run '/tmp': not a regular file"},
    {"pre_promote hook missing",
     BASE "hooks:\n  pre_promote: /nonexistent/may-promote\n",
     {NULL},
     SRC ": hooks.pre_promote: cannot run '/nonexistent/may-promote': No such file or directory"},
    {"derived listen not loopback",
     "region: us-east-2\ndata_dir: /d\nmembers:\n" MEMBER("us-east-2", "1", "10.0.0.1:7001",
                                                          "http://10.0.0.1:8440"),
     {NULL},
     SRC ": api.listen: expected a loopback address (or api.allow_remote: true), got "
         "'10.0.0.1:8440' (from members[0].api)"},
};

static void test_env_errors(void)
{
    for (size_t i = 0; i < sizeof env_cases / sizeof env_cases[0]; i++) {
        const struct env_case *t = &env_cases[i];
        struct afc_config c;
        struct afc_err err;
        int rv = parse_env(&c, t->yaml, t->env, &err);
        if (rv != AFC_ECONFIG || strstr(err.msg, t->want) == NULL) {
            fprintf(stderr, "  case '%s': rv %d\n    got:  %s\n    want: %s\n", t->what, rv,
                    err.msg, t->want);
            test_failed_checks++;
        }
        CHECK(strstr(err.msg, "s3cret") == NULL);
    }
}

static void test_env_secret_url_too_long(void)
{
    static char url[600];
    memset(url, 'p', sizeof url - 1);
    const char *envv[] = {"DATABASE_URL", url, NULL};
    struct afc_config c;
    struct afc_err err;
    CHECK_EQ_INT(parse_env(&c, BASE, envv, &err), AFC_ECONFIG);
    CHECK_EQ_STR(err.msg, "DATABASE_URL: expected at most 511 characters, got 599 (value not "
                          "shown)");
}

/* Each provider's credentials from the environment; only the chosen provider's are read. */
static void test_dns_secrets_from_env(void)
{
    struct afc_config c;
    struct afc_err err;
    static const char *const pdns[] = {"PDNS_API_KEY", "pdns-key-from-env", "CLOUDFLARE_API_TOKEN",
                                       "cf-token", NULL};
    REQUIRE(parse_env(&c, BASE_A DNS_PDNS, pdns, &err) == 0);
    CHECK_EQ_STR(c.dns.powerdns.api_key, "pdns-key-from-env");
    CHECK_EQ_STR(c.dns.cloudflare.token, ""); /* not the chosen provider */

    static const char *const tsig[] = {"ARAGORA_DNS_TSIG_SECRET", "c2VjcmV0LWtleS0xMjM0NTY=", NULL};
    REQUIRE(parse_env(&c,
                      BASE_A "dns: {provider: rfc2136, name: a.db.example., zone: db.example., "
                             "rfc2136: {server: '127.0.0.1:53', tsig_name: k.}}\n",
                      tsig, &err) == 0);
    CHECK_EQ_STR(c.dns.rfc2136.tsig_secret, "c2VjcmV0LWtleS0xMjM0NTY=");

    static const char *const cf[] = {"CLOUDFLARE_API_TOKEN", "cf-token-0123", NULL};
    REQUIRE(parse_env(&c,
                      BASE_A "dns: {provider: cloudflare, name: a.db.example., zone: db.example., "
                             "cloudflare: {zone_id: z1}}\n",
                      cf, &err) == 0);
    CHECK_EQ_STR(c.dns.cloudflare.token, "cf-token-0123");

    static const char *const aws[] = {"AWS_ACCESS_KEY_ID",
                                      "AKIDFROMENV",
                                      "AWS_SECRET_ACCESS_KEY",
                                      "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                      "AWS_SESSION_TOKEN",
                                      "session/token+0123=",
                                      NULL};
    REQUIRE(parse_env(&c,
                      BASE_A "dns: {provider: route53, name: a.db.example., zone: db.example., "
                             "route53: {hosted_zone_id: Z1, access_key_id: AKIDINFILE}}\n",
                      aws, &err) == 0);
    CHECK_EQ_STR(c.dns.route53.access_key_id, "AKIDFROMENV"); /* the variable wins */
    CHECK_EQ_STR(c.dns.route53.secret_access_key, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    CHECK_EQ_STR(c.dns.route53.session_token, "session/token+0123=");

    /* provider none: PDNS_API_KEY is not even looked at */
    REQUIRE(parse_env(&c, BASE, pdns, &err) == 0);
    CHECK_EQ_STR(c.dns.powerdns.api_key, "");
}

/* Write `content` to a fresh temporary file; returns its path in buf. */
static const char *temp_file(char *buf, size_t size, const char *content, size_t len)
{
    snprintf(buf, size, "/tmp/test_config.XXXXXX");
    int fd = mkstemp(buf);
    if (fd < 0 || write(fd, content, len) != (ssize_t)len) {
        perror("temp file");
        exit(1);
    }
    close(fd);
    return buf;
}

static void test_cluster_secret_file(void)
{
    char path[64], yaml[512];
    struct afc_config c;
    struct afc_err err;
    static const char *const unset[] = {"ARAGORA_CLUSTER_SECRET", "", NULL};
    static const char *const from_env[] = {"ARAGORA_CLUSTER_SECRET", "cluster-secret-from-env",
                                           NULL};

    temp_file(path, sizeof path, "cluster-s3cret-0123456789\n", 26);
    snprintf(yaml, sizeof yaml, "%scluster:\n  secret_file: %s\n", BASE, path);
    CHECK_EQ_INT(parse_env(&c, yaml, unset, &err), 0);
    CHECK_EQ_INT(c.cluster_secret_len, 25);
    CHECK(memcmp(c.cluster_secret, "cluster-s3cret-0123456789", 25) == 0);
    /* the environment wins over the file */
    CHECK_EQ_INT(parse_env(&c, yaml, from_env, &err), 0);
    CHECK_EQ_INT(c.cluster_secret_len, strlen("cluster-secret-from-env"));
    unlink(path);

    temp_file(path, sizeof path, "short-s3cret\n", 13);
    snprintf(yaml, sizeof yaml, "%scluster:\n  secret_file: %s\n", BASE, path);
    CHECK_EQ_INT(parse_env(&c, yaml, unset, &err), AFC_ECONFIG);
    CHECK_CONTAINS(err.msg, "cluster.secret_file: '");
    CHECK_CONTAINS(err.msg, "expected one line of 16 to 63 printable characters");
    CHECK(strstr(err.msg, "s3cret") == NULL || strstr(err.msg, "short-s3cret") == NULL);
    unlink(path);
}

static void test_token_file(void)
{
    char path[64], yaml[512];
    struct afc_config c;
    struct afc_err err;
    static const char *const none[] = {NULL};

    temp_file(path, sizeof path, "s3cret-token\r\n", 14);
    snprintf(yaml, sizeof yaml, "%sapi:\n  token_file: %s\n", BASE, path);
    CHECK_EQ_INT(parse_env(&c, yaml, none, &err), 0);
    CHECK_EQ_STR(c.api_token, "s3cret-token");
    unlink(path);

    temp_file(path, sizeof path, "\n", 1);
    snprintf(yaml, sizeof yaml, "%sapi:\n  token_file: %s\n", BASE, path);
    CHECK_EQ_INT(parse_env(&c, yaml, none, &err), AFC_ECONFIG);
    CHECK_CONTAINS(err.msg, "api.token_file: '");
    CHECK_CONTAINS(err.msg, "' is empty");
    unlink(path);

    temp_file(path, sizeof path, "s3cret\nsecond line\n", 19);
    snprintf(yaml, sizeof yaml, "%sapi:\n  token_file: %s\n", BASE, path);
    CHECK_EQ_INT(parse_env(&c, yaml, none, &err), AFC_ECONFIG);
    CHECK_CONTAINS(err.msg, "expected one line of 1 to 255 printable characters");
    CHECK(strstr(err.msg, "s3cret") == NULL);

    /* ARAGORA_API_TOKEN wins: the file is not read at all */
    static const char *const envv[] = {"ARAGORA_API_TOKEN", "from-env", NULL};
    CHECK_EQ_INT(parse_env(&c, yaml, envv, &err), 0);
    CHECK_EQ_STR(c.api_token, "from-env");
    unlink(path);
}

/* Secrets from their files; the variable wins over the file; a TSIG secret must be base64; an AWS
 * session token (often over 1000 characters) fits, one of 2048 or more does not. */
static void test_dns_secret_files(void)
{
    char path[64], path2[64], yaml[1024];
    struct afc_config c;
    struct afc_err err;
    static const char *const none[] = {NULL};
    static const char *const from_env[] = {"PDNS_API_KEY", "from-env", NULL};

    temp_file(path, sizeof path, "pdns-s3cret-key\n", 16);
    snprintf(yaml, sizeof yaml, "%s%s    api_key_file: %s\n", BASE_A, DNS_PDNS, path);
    CHECK_EQ_INT(parse_env(&c, yaml, none, &err), 0);
    CHECK_EQ_STR(c.dns.powerdns.api_key, "pdns-s3cret-key");
    CHECK_EQ_INT(parse_env(&c, yaml, from_env, &err), 0);
    CHECK_EQ_STR(c.dns.powerdns.api_key, "from-env");
    unlink(path);

    temp_file(path, sizeof path, "bm90IGJhc2U2NA=\n", 16); /* 15 characters: not base64 */
    snprintf(yaml, sizeof yaml,
             "%sdns: {provider: rfc2136, name: a.db.example., zone: db.example., rfc2136: "
             "{server: '127.0.0.1:53', tsig_name: k., tsig_secret_file: %s}}\n",
             BASE_A, path);
    CHECK_EQ_INT(parse_env(&c, yaml, none, &err), AFC_ECONFIG);
    CHECK_CONTAINS(err.msg, SRC ": dns.rfc2136.tsig_secret_file: '");
    CHECK_CONTAINS(err.msg, "': expected one line of 4 to 511 characters of base64, as in a BIND "
                            "key file (value not shown)");
    CHECK(strstr(err.msg, "bm90") == NULL);
    unlink(path);
    temp_file(path, sizeof path, "bm90IGJhc2U2NA==\n", 17);
    snprintf(yaml, sizeof yaml,
             "%sdns: {provider: rfc2136, name: a.db.example., zone: db.example., rfc2136: "
             "{server: '127.0.0.1:53', tsig_name: k., tsig_secret_file: %s}}\n",
             BASE_A, path);
    CHECK_EQ_INT(parse_env(&c, yaml, none, &err), 0);
    CHECK_EQ_STR(c.dns.rfc2136.tsig_secret, "bm90IGJhc2U2NA==");
    unlink(path);

    static char token[2100];
    memset(token, 'T', sizeof token);
    temp_file(path, sizeof path, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n", 41);
    static const size_t sizes[] = {2047, 2048, sizeof token}; /* fits; too long; past the buffer */
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        temp_file(path2, sizeof path2, token, sizes[i]);
        snprintf(yaml, sizeof yaml,
                 "%sdns: {provider: route53, name: a.db.example., zone: db.example., route53: "
                 "{hosted_zone_id: Z1, access_key_id: AKIDEXAMPLE, secret_access_key_file: %s, "
                 "session_token_file: %s}}\n",
                 BASE_A, path, path2);
        int rv = parse_env(&c, yaml, none, &err);
        if (i == 0) {
            CHECK_EQ_INT(rv, 0);
            CHECK_EQ_STR(c.dns.route53.secret_access_key,
                         "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
            CHECK_EQ_INT(strlen(c.dns.route53.session_token), 2047);
        } else {
            CHECK_EQ_INT(rv, AFC_ECONFIG);
            CHECK_CONTAINS(err.msg, "dns.route53.session_token_file: '");
            CHECK_CONTAINS(err.msg, "expected one line of 1 to 2047 printable characters");
        }
        unlink(path2);
    }
    unlink(path);
}

static void test_webhook_token_and_hooks(void)
{
    char path[64], yaml[512];
    struct afc_config c;
    struct afc_err err;
    static const char *const none[] = {NULL};
    static const char *const from_env[] = {"ARAGORA_WEBHOOK_TOKEN", "hook-from-env", NULL};

    temp_file(path, sizeof path, "hook-s3cret\n", 12);
    snprintf(yaml, sizeof yaml,
             "%shooks:\n  webhook_token_file: %s\n  on_role_change: /bin/true\n"
             "  pre_promote: /bin/true\n  webhooks: [https://hooks.example.com/x]\n",
             BASE, path);
    CHECK_EQ_INT(parse_env(&c, yaml, none, &err), 0);
    CHECK_EQ_STR(c.webhook_token, "hook-s3cret");
    CHECK_EQ_INT(parse_env(&c, yaml, from_env, &err), 0);
    CHECK_EQ_STR(c.webhook_token, "hook-from-env");
    CHECK_EQ_INT(parse_env(&c, BASE, from_env, &err), 0); /* no file: the variable alone */
    CHECK_EQ_STR(c.webhook_token, "hook-from-env");
    unlink(path);

    /* a hook without an execute bit (mkstemp makes 0600: even root may not run it) */
    temp_file(path, sizeof path, "#!/bin/sh\n", 10);
    snprintf(yaml, sizeof yaml, "%shooks:\n  on_role_change: %s\n", BASE, path);
    CHECK_EQ_INT(parse_env(&c, yaml, none, &err), AFC_ECONFIG);
    char want[160];
    snprintf(want, sizeof want, SRC ": hooks.on_role_change: cannot run '%s': Permission denied",
             path);
    CHECK_EQ_STR(err.msg, want);
    unlink(path);
}

/* ---- Files ------------------------------------------------------------------------------------
 */

static void test_load(void)
{
    char path[64];
    struct afc_config c;
    struct afc_err err = {0};

    CHECK_EQ_INT(afc_config_load(&c, "/nonexistent/aragora.yaml", &err), AFC_EIO);
    CHECK_EQ_STR(err.msg, "/nonexistent/aragora.yaml: No such file or directory");

    static const char bad[] = BASE "raft: {election_timeout_ms: x}\n";
    temp_file(path, sizeof path, bad, sizeof bad - 1);
    CHECK_EQ_INT(afc_config_load(&c, path, &err), AFC_ECONFIG);
    CHECK_CONTAINS(err.msg, path);
    CHECK_CONTAINS(err.msg, ":16: raft.election_timeout_ms: expected an integer");
    unlink(path);

    temp_file(path, sizeof path, BASE, sizeof(BASE) - 1);
    CHECK_EQ_INT(afc_config_load(&c, path, &err), 0);
    CHECK_EQ_STR(c.source, path);
    CHECK_EQ_INT(c.n_members, 3);
    unlink(path);

    size_t big = 1024 * 1024 + 1;
    char *text = malloc(big);
    REQUIRE(text != NULL);
    memset(text, '#', big);
    temp_file(path, sizeof path, text, big);
    free(text);
    CHECK_EQ_INT(afc_config_load(&c, path, &err), AFC_ECONFIG);
    CHECK_CONTAINS(err.msg, "larger than the 1 MiB limit");
    unlink(path);
}

static const char *example_path = "docs/examples/coordinator.yaml";

static void test_example_file(void)
{
    struct afc_config c;
    struct afc_err err = {0};
    static const char *const envv[] = {"ARAGORA_API_TOKEN", "example-token", NULL};
    int rv = afc_config_load(&c, example_path, &err);
    if (rv == 0) {
        fake_env = envv;
        rv = afc_config_apply_env(&c, fake_getenv, &err);
    }
    if (rv != 0) {
        fprintf(stderr, "  %s\n", err.msg);
    }
    REQUIRE(rv == 0);
    CHECK_EQ_STR(c.region, "us-east-2");
    CHECK_EQ_INT(c.region_id, 1);
    CHECK_EQ_INT(c.n_members, 3);
    CHECK_EQ_STR(c.members[2].name, "ap-south-1");
    CHECK_EQ_STR(c.api_listen, "10.10.0.10:8440");
    CHECK_EQ_INT(c.api_allow_remote, true);
    CHECK_EQ_STR(c.api_token_file, "/etc/aragora/api-token");
    CHECK_EQ_STR(c.api_token, "example-token");
    CHECK_EQ_INT(c.log_format, AFC_LOG_JSON);
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        example_path = argv[1];
    }
    TEST_RUN(test_full_config);
    TEST_RUN(test_minimal_config_defaults);
    TEST_RUN(test_new_section_defaults);
    TEST_RUN(test_replication);
    TEST_RUN(test_dns_powerdns_full);
    TEST_RUN(test_dns_other_providers);
    TEST_RUN(test_bad_configs);
    TEST_RUN(test_secret_length_not_echoed);
    TEST_RUN(test_env_defaults_and_derived);
    TEST_RUN(test_env_overrides);
    TEST_RUN(test_env_region_id_selects);
    TEST_RUN(test_env_errors);
    TEST_RUN(test_env_secret_url_too_long);
    TEST_RUN(test_token_file);
    TEST_RUN(test_cluster_secret_file);
    TEST_RUN(test_dns_secrets_from_env);
    TEST_RUN(test_dns_secret_files);
    TEST_RUN(test_webhook_token_and_hooks);
    TEST_RUN(test_load);
    TEST_RUN(test_example_file);
    TEST_END();
}
