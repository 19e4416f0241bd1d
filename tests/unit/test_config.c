/*
 * Unit tests for coordinator/config.c: a full valid file, then one table row per malformed input
 * (YAML text → the exact message fragment, file name and line included). The environment and the
 * files: test_config_env.c.
 */
#include <stdlib.h>
#include <unistd.h>

#include "afc/config.h"
#include "afc/log.h"
#include "tests/test.h"

#include "tests/unit/config_fixture.h"

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

int main(void)
{
    TEST_RUN(test_full_config);
    TEST_RUN(test_minimal_config_defaults);
    TEST_RUN(test_new_section_defaults);
    TEST_RUN(test_replication);
    TEST_RUN(test_dns_powerdns_full);
    TEST_RUN(test_dns_other_providers);
    TEST_RUN(test_bad_configs);
    TEST_RUN(test_secret_length_not_echoed);
    TEST_END();
}
