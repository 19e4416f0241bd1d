/*
 * Unit tests for coordinator/config_env.c and afc_config_load: the environment overrides through a
 * fake getenv table, secrets from variables and files, then afc_config_load and
 * docs/examples/coordinator.yaml (its path is argv[1], passed by tests/unit/meson.build).
 */
#include <stdlib.h>
#include <unistd.h>

#include "afc/config.h"
#include "afc/log.h"
#include "tests/test.h"

#include "tests/unit/config_fixture.h"

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
