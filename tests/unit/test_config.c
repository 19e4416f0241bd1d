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
     "failover, log, postgres, redis"},
    {"failover key out of range", BASE "failover:\n  lease_ms: 50\n",
     SRC ":17: failover.lease_ms: expected an integer from 100 to 600000, got '50'"},
    {"member priority not a number", BASE "    priority: high\n",
     SRC ":16: members[2].priority: expected an integer from 0 to 1000000, got 'high'"},
    {"unknown nested key", BASE "raft:\n  election_timeout: 900\n",
     SRC ":17: raft: unknown key 'election_timeout'; expected one of: election_timeout_ms, "
         "heartbeat_timeout_ms, snapshot_threshold, snapshot_trailing, digest_interval_ms, bind"},
    {"unknown member key", TOP M1 "    zone: a\n",
     SRC ":8: members[0]: unknown key 'zone'; expected one of: name, id, raft, api"},
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
    TEST_RUN(test_bad_configs);
    TEST_RUN(test_secret_length_not_echoed);
    TEST_RUN(test_env_defaults_and_derived);
    TEST_RUN(test_env_overrides);
    TEST_RUN(test_env_region_id_selects);
    TEST_RUN(test_env_errors);
    TEST_RUN(test_env_secret_url_too_long);
    TEST_RUN(test_token_file);
    TEST_RUN(test_cluster_secret_file);
    TEST_RUN(test_load);
    TEST_RUN(test_example_file);
    TEST_END();
}
