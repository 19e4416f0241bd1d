/*
 * Node configuration, second half (include/afc/config.h): afc_config_apply_env() overlays the
 * deployment guide's environment variables on a parsed config (config.c) and checks the
 * combination again; its messages name the variable instead of a line. env_dns() loads the chosen
 * DNS provider's credentials from the environment or their files, env_hooks() the webhook token.
 *
 * Pure: libc only. Secrets (API token, database and Redis URLs, DNS credentials, webhook token)
 * are never copied into a message.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "afc/config.h"
#include "afc/log.h"
#include "coordinator/config_schema.h"

/* ---- Environment ----------------------------------------------------------------------------- */

typedef const char *(*getenv_func)(const char *name);

/* An empty variable counts as unset (compose files often write `VAR=`). */
static const char *env(getenv_func getenv_fn, const char *name)
{
    const char *v = getenv_fn(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

static const struct afc_config_member *find_member_by_id(const struct afc_config *c, uint64_t id)
{
    for (unsigned i = 0; i < c->n_members; i++) {
        if (c->members[i].id == id) {
            return &c->members[i];
        }
    }
    return NULL;
}

/* ARAGORA_REGION picks the region by name; ARAGORA_REGION_ID must then agree with it, or, alone,
 * picks the region by id. Both override the file's `region`. */
static int env_region(struct afc_config *c, getenv_func getenv_fn, struct afc_err *err)
{
    const char *name = env(getenv_fn, "ARAGORA_REGION");
    const char *id_text = env(getenv_fn, "ARAGORA_REGION_ID");
    char list[AFC_MAX_MEMBERS * (AFC_NAME_MAX + 2)], got[CONFIG_SHOW_MAX + 8];
    const struct afc_config_member *m = NULL;
    uint64_t id;

    if (name != NULL && (m = config_find_member(c, name)) == NULL) {
        return afc_err_set(err, AFC_ECONFIG, "ARAGORA_REGION: %s is not one of the members: %s",
                           config_show(name, got, sizeof got),
                           config_member_list(c, list, sizeof list));
    }
    if (id_text == NULL) {
        goto done;
    }
    if (!config_parse_u64(id_text, &id) || id == 0) {
        return afc_err_set(err, AFC_ECONFIG, "ARAGORA_REGION_ID: expected an integer >= 1, got %s",
                           config_show(id_text, got, sizeof got));
    }
    if (m != NULL && m->id != id) {
        return afc_err_set(
            err, AFC_ECONFIG, "ARAGORA_REGION_ID: expected the id of member '%s' (%llu), got %s",
            m->name, (unsigned long long)m->id, config_show(id_text, got, sizeof got));
    }
    if (m == NULL && (m = find_member_by_id(c, id)) == NULL) {
        size_t used = 0;
        for (unsigned i = 0; i < c->n_members && used < sizeof list; i++) {
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%llu", i ? ", " : "",
                                     (unsigned long long)c->members[i].id);
        }
        return afc_err_set(err, AFC_ECONFIG,
                           "ARAGORA_REGION_ID: expected the id of a member (%s), got %s", list,
                           config_show(id_text, got, sizeof got));
    }
done:
    if (m != NULL) {
        memcpy(c->region, m->name, sizeof c->region);
    }
    return 0;
}

/* A URL that may carry a password: length errors give the length, never the value. */
static int env_secret_url(char *dst, size_t size, getenv_func getenv_fn, const char *var,
                          struct afc_err *err)
{
    const char *v = env(getenv_fn, var);
    if (v == NULL) {
        return 0;
    }
    if (strlen(v) >= size) {
        return afc_err_set(err, AFC_ECONFIG,
                           "%s: expected at most %zu characters, got %zu (value not shown)", var,
                           size - 1, strlen(v));
    }
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

static int env_flags(struct afc_config *c, getenv_func getenv_fn, struct afc_err *err)
{
    static const char *const yes[] = {"true", "1", "yes"}, *const no[] = {"false", "0", "no"};
    const char *fed = env(getenv_fn, "FEDERATION_ENABLED");
    const char *primary = env(getenv_fn, "ARAGORA_PRIMARY");
    char list[AFC_MAX_MEMBERS * (AFC_NAME_MAX + 2)], got[CONFIG_SHOW_MAX + 8];

    if (fed != NULL) {
        bool known = false;
        for (int i = 0; i < 3; i++) {
            if (strcmp(fed, yes[i]) == 0 || strcmp(fed, no[i]) == 0) {
                c->federation_enabled = strcmp(fed, yes[i]) == 0;
                known = true;
                break;
            }
        }
        if (!known) {
            return afc_err_set(err, AFC_ECONFIG,
                               "FEDERATION_ENABLED: expected true, false, 1, 0, yes or no, got %s",
                               config_show(fed, got, sizeof got));
        }
    }
    if (primary != NULL) {
        if (config_find_member(c, primary) == NULL) {
            return afc_err_set(
                err, AFC_ECONFIG, "ARAGORA_PRIMARY: expected one of the members (%s), got %s",
                config_member_list(c, list, sizeof list), config_show(primary, got, sizeof got));
        }
        memcpy(c->primary_hint, primary, strlen(primary) + 1);
    }
    return 0;
}

/* A secret (bearer token, cluster secret): printable ASCII without spaces, min..cap-1 chars. */
static bool is_secret(const char *s, size_t n, size_t min, size_t cap)
{
    if (n < min || n >= cap) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] <= 0x20 || s[i] >= 0x7f) {
            return false;
        }
    }
    return true;
}

/* RFC 4648 base64 with padding, as a BIND key file's `secret` (and PowerDNS's tsigkeys) write it.
 */
static bool is_base64(const char *s, size_t n)
{
    size_t pad = 0;
    if (n == 0 || n % 4 != 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool b64 = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                   (ch >= '0' && ch <= '9') || ch == '+' || ch == '/';
        if (ch == '=') {
            pad++;
        } else if (!b64 || pad > 0) {
            return false;
        }
    }
    return pad <= 2;
}

/* Where a secret goes and what it must look like. */
struct secret_spec {
    const char *key;  /* "api.token_file" */
    const char *var;  /* "ARAGORA_API_TOKEN" */
    const char *path; /* the configured file, "" if none */
    char *dst;        /* NUL-terminated on success */
    size_t cap;
    size_t min;
    size_t *out_len; /* may be NULL */
    bool base64;     /* must also be base64 (a TSIG secret) */
};

static bool secret_ok(const struct secret_spec *sp, const char *s, size_t n)
{
    return is_secret(s, n, sp->min, sp->cap) && (!sp->base64 || is_base64(s, n));
}

static int secret_invalid(const struct afc_config *c, const struct secret_spec *sp, bool from_env,
                          struct afc_err *err)
{
    const char *what = sp->base64 ? "characters of base64, as in a BIND key file"
                                  : "printable characters without spaces";
    if (from_env) {
        return afc_err_set(err, AFC_ECONFIG, "%s: expected %zu to %zu %s (value not shown)",
                           sp->var, sp->min, sp->cap - 1, what);
    }
    return afc_err_set(err, AFC_ECONFIG,
                       "%s: %s: '%s': expected one line of %zu to %zu %s (value not shown)",
                       c->source, sp->key, sp->path, sp->min, sp->cap - 1, what);
}

static void secret_store(const struct secret_spec *sp, const char *s, size_t len)
{
    memcpy(sp->dst, s, len);
    sp->dst[len] = '\0';
    if (sp->out_len != NULL) {
        *sp->out_len = len;
    }
}

/* Large enough for the longest secret (an AWS session token, up to 2047 characters) and its line
 * ending; a longer file fills it and is then rejected as too long, never cut short. */
#define SECRET_FILE_MAX 4096
_Static_assert(sizeof(((struct afc_config *)0)->dns.route53.session_token) + 2 < SECRET_FILE_MAX,
               "a secret file buffer holds the longest secret and its line ending");

static int read_secret_file(const struct afc_config *c, const struct secret_spec *sp,
                            struct afc_err *err)
{
    const char *path = sp->path, *src = c->source;
    char buf[SECRET_FILE_MAX];
    size_t len = 0;
    int rv = 0, fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = 1;

    if (fd < 0) {
        return afc_err_set(err, AFC_ECONFIG, "%s: %s: cannot read '%s': %s", src, sp->key, path,
                           strerror(errno));
    }
    while (n > 0 && len < sizeof buf) {
        n = read(fd, buf + len, sizeof buf - len);
        len += n > 0 ? (size_t)n : 0;
        if (n < 0 && errno == EINTR) {
            n = 1;
        }
    }
    if (n < 0) {
        rv = afc_err_set(err, AFC_ECONFIG, "%s: %s: cannot read '%s': %s", src, sp->key, path,
                         strerror(errno));
        goto wipe;
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) {
        len--;
    }
    if (len == 0) {
        rv = afc_err_set(err, AFC_ECONFIG, "%s: %s: '%s' is empty", src, sp->key, path);
    } else if (!secret_ok(sp, buf, len)) {
        rv = secret_invalid(c, sp, false, err);
    } else {
        secret_store(sp, buf, len);
    }
wipe:
    explicit_bzero(buf, sizeof buf);
    close(fd);
    return rv;
}

/* The environment variable wins over the file; with neither the secret stays empty. */
static int env_secret(struct afc_config *c, getenv_func getenv_fn, const struct secret_spec *sp,
                      struct afc_err *err)
{
    const char *value = env(getenv_fn, sp->var);
    if (value != NULL) {
        if (!secret_ok(sp, value, strlen(value))) {
            return secret_invalid(c, sp, true, err);
        }
        secret_store(sp, value, strlen(value));
        return 0;
    }
    return sp->path[0] != '\0' ? read_secret_file(c, sp, err) : 0;
}

/* ARAGORA_API_TOKEN / api.token_file: optional (without it, mutating endpoints answer 401).
 * ARAGORA_CLUSTER_SECRET / cluster.secret_file: required, at least 16 characters, because every
 * Raft connection is authenticated with it. */
static int env_secrets(struct afc_config *c, getenv_func getenv_fn, struct afc_err *err)
{
    const struct secret_spec token = {
        .key = "api.token_file",
        .var = "ARAGORA_API_TOKEN",
        .path = c->api_token_file,
        .dst = c->api_token,
        .cap = sizeof c->api_token,
        .min = 1,
    };
    const struct secret_spec cluster = {
        .key = "cluster.secret_file",
        .var = "ARAGORA_CLUSTER_SECRET",
        .path = c->cluster_secret_file,
        .dst = (char *)c->cluster_secret,
        .cap = sizeof c->cluster_secret,
        .min = 16,
        .out_len = &c->cluster_secret_len,
    };
    int rv = env_secret(c, getenv_fn, &token, err);
    if (rv == 0) {
        rv = env_secret(c, getenv_fn, &cluster, err);
    }
    if (rv == 0 && c->cluster_secret_len == 0) {
        rv = afc_err_set(err, AFC_ECONFIG,
                         "%s: cluster.secret_file: not set; every Raft connection is "
                         "authenticated with a shared secret: set cluster.secret_file or "
                         "ARAGORA_CLUSTER_SECRET",
                         c->source);
    }
    return rv;
}

/* A secret the chosen provider needs and neither its variable nor its file supplied. */
static int secret_required(const struct afc_config *c, const struct secret_spec *sp,
                           struct afc_err *err)
{
    return afc_err_set(err, AFC_ECONFIG,
                       "%s: %s: not set; required when dns.provider is %s: set %s or %s", c->source,
                       sp->key, config_dns_provider_name((int)c->dns.provider), sp->key, sp->var);
}

/* AWS_ACCESS_KEY_ID over dns.route53.access_key_id: not a secret, so a bad one is shown. */
static int env_aws_key_id(struct afc_config *c, getenv_func getenv_fn, struct afc_err *err)
{
    static const struct config_key id = {.type = K_ID};
    const char *v = env(getenv_fn, "AWS_ACCESS_KEY_ID");
    char *dst = c->dns.route53.access_key_id, got[CONFIG_SHOW_MAX + 8];
    size_t cap = sizeof c->dns.route53.access_key_id;

    if (v != NULL && (strlen(v) >= cap || !config_store(&id, v, dst))) {
        return afc_err_set(err, AFC_ECONFIG,
                           "AWS_ACCESS_KEY_ID: expected 1 to %zu letters, digits, '.', '_' or '-', "
                           "got %s",
                           cap - 1, config_show(v, got, sizeof got));
    }
    if (dst[0] == '\0') {
        return afc_err_set(err, AFC_ECONFIG,
                           "%s: dns.route53.access_key_id: not set; required when dns.provider is "
                           "route53: set dns.route53.access_key_id or AWS_ACCESS_KEY_ID",
                           c->source);
    }
    return 0;
}

/* The credentials each provider reads: from its variable, else from its file. */
struct dns_secret {
    enum afc_dns_provider_kind provider;
    const char *key, *var;
    size_t path_at, dst_at, cap; /* offsets into struct afc_config; dst's size */
    size_t min;
    bool base64;   /* a TSIG secret */
    bool required; /* the provider cannot work without it */
};

#define SECRET_AT(path, dst)                                                                       \
    .path_at = offsetof(struct afc_config, path), .dst_at = offsetof(struct afc_config, dst),      \
    .cap = sizeof(((struct afc_config *)0)->dst)

static const struct dns_secret dns_secrets[] = {
    {AFC_DNS_POWERDNS, "dns.powerdns.api_key_file", "PDNS_API_KEY",
     SECRET_AT(dns_powerdns_api_key_file, dns.powerdns.api_key), .min = 1, .required = true},
    {AFC_DNS_RFC2136, "dns.rfc2136.tsig_secret_file", "ARAGORA_DNS_TSIG_SECRET",
     SECRET_AT(dns_rfc2136_tsig_secret_file, dns.rfc2136.tsig_secret), .min = 4, .base64 = true,
     .required = true},
    {AFC_DNS_CLOUDFLARE, "dns.cloudflare.token_file", "CLOUDFLARE_API_TOKEN",
     SECRET_AT(dns_cloudflare_token_file, dns.cloudflare.token), .min = 1, .required = true},
    {AFC_DNS_ROUTE53, "dns.route53.secret_access_key_file", "AWS_SECRET_ACCESS_KEY",
     SECRET_AT(dns_route53_secret_file, dns.route53.secret_access_key), .min = 1, .required = true},
    {AFC_DNS_ROUTE53, "dns.route53.session_token_file", "AWS_SESSION_TOKEN",
     SECRET_AT(dns_route53_session_token_file, dns.route53.session_token), .min = 1},
};

/* The chosen provider's credentials. Only the chosen provider's are read: a deployment that
 * switches provider may keep the other sections, and their files need not exist. */
static int env_dns(struct afc_config *c, getenv_func getenv_fn, struct afc_err *err)
{
    int rv;
    if (c->dns.provider == AFC_DNS_ROUTE53 && (rv = env_aws_key_id(c, getenv_fn, err)) != 0) {
        return rv;
    }
    for (size_t i = 0; i < sizeof dns_secrets / sizeof dns_secrets[0]; i++) {
        const struct dns_secret *ds = &dns_secrets[i];
        const struct secret_spec sp = {
            .key = ds->key,
            .var = ds->var,
            .path = (const char *)c + ds->path_at,
            .dst = (char *)c + ds->dst_at,
            .cap = ds->cap,
            .min = ds->min,
            .base64 = ds->base64,
        };
        if (ds->provider != c->dns.provider) {
            continue;
        }
        if ((rv = env_secret(c, getenv_fn, &sp, err)) != 0) {
            return rv;
        }
        if (ds->required && sp.dst[0] == '\0') {
            return secret_required(c, &sp, err);
        }
    }
    return 0;
}

/* A hook that cannot run would fail every time it is needed (a pre_promote hook would veto every
 * promotion): say so at start-up instead. */
static int check_hook(const struct afc_config *c, const char *key, const char *path,
                      struct afc_err *err)
{
    struct stat st;
    if (path[0] == '\0') {
        return 0;
    }
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        return afc_err_set(err, AFC_ECONFIG, "%s: %s: cannot run '%s': not a regular file",
                           c->source, key, path);
    }
    if (access(path, X_OK) == 0) {
        return 0;
    }
    return afc_err_set(err, AFC_ECONFIG, "%s: %s: cannot run '%s': %s", c->source, key, path,
                       strerror(errno));
}

/* ARAGORA_WEBHOOK_TOKEN / hooks.webhook_token_file (optional), and the hook programs. */
static int env_hooks(struct afc_config *c, getenv_func getenv_fn, struct afc_err *err)
{
    const struct secret_spec token = {
        .key = "hooks.webhook_token_file",
        .var = "ARAGORA_WEBHOOK_TOKEN",
        .path = c->webhook_token_file,
        .dst = c->webhook_token,
        .cap = sizeof c->webhook_token,
        .min = 1,
    };
    int rv = env_secret(c, getenv_fn, &token, err);
    if (rv == 0) {
        rv = check_hook(c, "hooks.on_role_change", c->hook_on_role_change, err);
    }
    if (rv == 0) {
        rv = check_hook(c, "hooks.pre_promote", c->hook_pre_promote, err);
    }
    return rv;
}

/* Failover timings that only make sense together. */
static int check_failover(struct afc_config *c, struct afc_err *err)
{
    if (c->lease_renew_ms >= c->lease_ms) {
        return afc_err_set(err, AFC_ECONFIG,
                           "%s: failover.lease_renew_ms: expected less than failover.lease_ms "
                           "(%u), got %u",
                           c->source, c->lease_ms, c->lease_renew_ms);
    }
    if (c->margin_ms == 0) {
        c->margin_ms = c->lease_ms / 10 > 200 ? c->lease_ms / 10 : 200;
    }
    return 0;
}

/* After the overrides: the region is a member, and the API binds loopback unless allowed. */
static int check_combination(struct afc_config *c, struct afc_err *err)
{
    int rv = check_failover(c, err);
    if (rv != 0) {
        return rv;
    }
    char list[AFC_MAX_MEMBERS * (AFC_NAME_MAX + 2)], got[CONFIG_SHOW_MAX + 8];
    const struct afc_config_member *self;

    if (c->region[0] == '\0') {
        return afc_err_set(err, AFC_ECONFIG,
                           "%s: region: not set; set it in the file or with ARAGORA_REGION or "
                           "ARAGORA_REGION_ID",
                           c->source);
    }
    if ((self = afc_config_self(c)) == NULL) {
        return afc_err_set(err, AFC_ECONFIG, "%s: region: %s is not one of the members: %s",
                           c->source, config_show(c->region, got, sizeof got),
                           config_member_list(c, list, sizeof list));
    }
    c->region_id = self->id;
    if (c->api_listen[0] == '\0') {
        const char *from = self->api_url + strlen("http://");
        if (strlen(from) >= sizeof c->api_listen) {
            return afc_err_set(err, AFC_ECONFIG,
                               "%s: api.listen: members[%u].api is too long to listen on; set "
                               "api.listen (at most %zu characters)",
                               c->source, (unsigned)(self - c->members), sizeof c->api_listen - 1);
        }
        memcpy(c->api_listen, from, strlen(from) + 1);
        if (!c->api_allow_remote && !config_is_loopback(c->api_listen)) {
            return afc_err_set(err, AFC_ECONFIG,
                               "%s: api.listen: expected a loopback address (or "
                               "api.allow_remote: true), got %s (from members[%u].api)",
                               c->source, config_show(c->api_listen, got, sizeof got),
                               (unsigned)(self - c->members));
        }
    } else if (!c->api_allow_remote && !config_is_loopback(c->api_listen)) {
        return afc_err_set(err, AFC_ECONFIG,
                           "%s: api.listen: expected a loopback address (or api.allow_remote: "
                           "true), got %s",
                           c->source, config_show(c->api_listen, got, sizeof got));
    }
    return 0;
}

int afc_config_apply_env(struct afc_config *c, const char *(*getenv_fn)(const char *name),
                         struct afc_err *err)
{
    int rv;
    if ((rv = env_region(c, getenv_fn, err)) != 0 ||
        (rv = env_secret_url(c->database_url, sizeof c->database_url, getenv_fn, "DATABASE_URL",
                             err)) != 0 ||
        (rv = env_secret_url(c->redis_url, sizeof c->redis_url, getenv_fn, "REDIS_URL", err)) !=
            0 ||
        (rv = env_flags(c, getenv_fn, err)) != 0 || (rv = env_secrets(c, getenv_fn, err)) != 0 ||
        (rv = env_dns(c, getenv_fn, err)) != 0 || (rv = env_hooks(c, getenv_fn, err)) != 0) {
        return rv;
    }
    return check_combination(c, err);
}
