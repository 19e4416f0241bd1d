/*
 * Node configuration (include/afc/config.h): YAML text → struct afc_config.
 *
 * Data flow: libyaml's document API (yaml_parser_load) builds a node tree in which every node
 * carries its start mark, so every message can name a line. walk_map() then walks that tree
 * against the declarative schema in config_schema.c — tables that say, for each key, its type,
 * range and where in the struct it lands — and check_file() runs the checks that span keys (unique
 * members, heartbeat < election, region is a member, loopback listen). afc_config_apply_env()
 * overlays the deployment guide's environment variables and checks the combination again; its
 * messages name the variable instead of a line.
 *
 * The dns section is checked the same way: check_dns() (name inside zone, the chosen provider's
 * keys, every member's address) at parse time; env_dns() loads the chosen provider's credentials
 * from the environment or their files afterwards, env_hooks() the webhook token.
 *
 * Pure: libc and libyaml only. Secrets (API token, database and Redis URLs, DNS credentials,
 * webhook token) are never copied into a message.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "afc/config.h"
#include "afc/log.h"
#include "coordinator/config_schema.h"

#define CONFIG_FILE_MAX (1024 * 1024) /* larger files are rejected before parsing */
#define KEYS_MAX        16            /* longest key table (for duplicate detection) */
#define PATH_TEXT_MAX   96            /* "members[8].raft" and the like */

/* One parse in progress. */
struct ctx {
    struct afc_config *c;
    const char *source;
    struct afc_err *err;
    yaml_document_t *doc;
    unsigned member;             /* index while walking members */
    unsigned long line[S_COUNT]; /* 1-based line a slot key was set on; 0 = not */
    unsigned long mline[AFC_MAX_MEMBERS][S_COUNT];
    unsigned long mstart[AFC_MAX_MEMBERS]; /* line each member's mapping starts on */
};

/* How a node is named after "got ": a quoted scalar, "nothing", "a mapping", "a sequence". */
static const char *show_node(const yaml_node_t *n, bool secret, char *buf, size_t size)
{
    if (n->type == YAML_MAPPING_NODE) {
        return "a mapping";
    }
    if (n->type == YAML_SEQUENCE_NODE) {
        return "a sequence";
    }
    if (n->data.scalar.length == 0) {
        return "nothing";
    }
    if (secret) {
        snprintf(buf, size, "a value of %zu characters (not shown)", n->data.scalar.length);
        return buf;
    }
    return config_show((const char *)n->data.scalar.value, buf, size);
}

/* ---- Errors ---------------------------------------------------------------------------------- */

/* "SOURCE:LINE: PATH: message" (no "PATH: " at the top level). */
static int fail(struct ctx *x, unsigned long line, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct ctx *x, unsigned long line, const char *path, const char *fmt, ...)
{
    char msg[AFC_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return afc_err_set(x->err, AFC_ECONFIG, "%s:%lu: %s%s%s", x->source, line, path,
                       *path != '\0' ? ": " : "", msg);
}

static unsigned long line_of(const yaml_node_t *n)
{
    return (unsigned long)n->start_mark.line + 1; /* libyaml counts from 0 */
}

/* Values never quoted back: connection URLs, and a URL with user:password@ (refused, but its
 * password must not reach a log). */
static bool hides_value(const struct config_key *k, const yaml_node_t *n)
{
    return k->type == K_SECRET ||
           (k->type == K_URL && n->type == YAML_SCALAR_NODE &&
            memchr(n->data.scalar.value, '@', n->data.scalar.length) != NULL);
}

static int fail_expected(struct ctx *x, const struct config_key *k, const yaml_node_t *n,
                         const char *path)
{
    char what[160], got[CONFIG_SHOW_MAX + 48];
    config_describe(k, what, sizeof what);
    return fail(x, line_of(n), path, "expected %s, got %s", what,
                show_node(n, hides_value(k, n), got, sizeof got));
}

/* libyaml's problem_mark is 0-based; reader errors only carry a byte offset. */
static int fail_syntax(struct ctx *x, const yaml_parser_t *p, const char *text, size_t len)
{
    unsigned long line = (unsigned long)p->problem_mark.line + 1;
    if (p->error == YAML_MEMORY_ERROR) {
        return afc_err_set(x->err, AFC_ENOMEM, "%s: out of memory", x->source);
    }
    if (p->error == YAML_READER_ERROR) {
        line = 1;
        for (size_t i = 0; i < p->problem_offset && i < len; i++) {
            line += text[i] == '\n';
        }
    }
    if (p->context != NULL) {
        return fail(x, line, "", "invalid YAML: %s (%s at line %lu)",
                    p->problem ? p->problem : "syntax error", p->context,
                    (unsigned long)p->context_mark.line + 1);
    }
    return fail(x, line, "", "invalid YAML: %s", p->problem ? p->problem : "syntax error");
}

/* ---- Walking the document against the schema ------------------------------------------------- */

static int walk_map(struct ctx *x, const yaml_node_t *map, const struct config_key *keys,
                    void *base, const char *path);

static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return false;
    }
    const char *s = (const char *)n->data.scalar.value;
    return strcmp(s, "") == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0;
}

static int walk_members(struct ctx *x, const struct config_key *k, const yaml_node_t *seq,
                        const char *path);
static int walk_list(struct ctx *x, const struct config_key *k, const yaml_node_t *seq, void *base,
                     const char *path);

static int walk_value(struct ctx *x, const struct config_key *k, const yaml_node_t *n, void *base,
                      const char *path)
{
    if (k->slot >= S_M_NAME) {
        x->mline[x->member][k->slot] = line_of(n);
    } else if (k->slot != S_NONE) {
        x->line[k->slot] = line_of(n);
    }
    if (k->type == K_MAP) {
        return walk_map(x, n, k->sub, base, path);
    }
    if (k->type == K_MEMBERS) {
        return walk_members(x, k, n, path);
    }
    if (k->type == K_LIST) {
        return walk_list(x, k, n, base, path);
    }
    if (n->type != YAML_SCALAR_NODE) {
        return fail_expected(x, k, n, path);
    }
    const char *s = (const char *)n->data.scalar.value;
    if (config_is_string_type(k->type) && n->data.scalar.length >= k->size) {
        char got[CONFIG_SHOW_MAX + 48];
        return fail(x, line_of(n), path, "expected at most %zu characters, got %s", k->size - 1,
                    show_node(n, hides_value(k, n), got, sizeof got));
    }
    if (strlen(s) != n->data.scalar.length || !config_store(k, s, (char *)base + k->offset)) {
        return fail_expected(x, k, n, path); /* an embedded NUL is never a valid value */
    }
    return 0;
}

static int fail_unknown(struct ctx *x, const yaml_node_t *key, const struct config_key *keys,
                        const char *path)
{
    char list[256] = "", got[CONFIG_SHOW_MAX + 48];
    size_t used = 0;
    for (const struct config_key *k = keys; k->name != NULL && used < sizeof list; k++) {
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", k == keys ? "" : ", ",
                                 k->name);
    }
    return fail(x, line_of(key), path, "unknown key %s; expected one of: %s",
                show_node(key, false, got, sizeof got), list);
}

/* Walk a mapping: every key must be in `keys`, at most once; then every required key present.
 * A null value (`raft:` with nothing under it) counts as an empty mapping. */
static int walk_map(struct ctx *x, const yaml_node_t *map, const struct config_key *keys,
                    void *base, const char *path)
{
    static const struct config_key as_map = {.type = K_MAP};
    unsigned long seen[KEYS_MAX] = {0};
    char child[PATH_TEXT_MAX];
    int rv;

    bool empty = is_null(map);
    if (!empty && map->type != YAML_MAPPING_NODE) {
        return fail_expected(x, &as_map, map, path);
    }
    const yaml_node_pair_t *pairs = empty ? NULL : map->data.mapping.pairs.start;
    size_t n = empty ? 0 : (size_t)(map->data.mapping.pairs.top - pairs);
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *kn = yaml_document_get_node(x->doc, pairs[i].key);
        const yaml_node_t *vn = yaml_document_get_node(x->doc, pairs[i].value);
        const struct config_key *k = keys;
        while (k->name != NULL && (kn->type != YAML_SCALAR_NODE ||
                                   strcmp(k->name, (const char *)kn->data.scalar.value) != 0)) {
            k++;
        }
        if (k->name == NULL) {
            return fail_unknown(x, kn, keys, path);
        }
        snprintf(child, sizeof child, "%s%s%s", path, *path != '\0' ? "." : "", k->name);
        if (seen[k - keys] != 0) {
            return fail(x, line_of(kn), child, "duplicate key (first set at line %lu)",
                        seen[k - keys]);
        }
        seen[k - keys] = line_of(kn);
        if ((rv = walk_value(x, k, vn, base, child)) != 0) {
            return rv;
        }
    }
    for (const struct config_key *k = keys; k->name != NULL; k++) {
        if (k->required && seen[k - keys] == 0) {
            return fail(x, line_of(map), path, "missing required key '%s'", k->name);
        }
    }
    return 0;
}

/* A sequence of scalars (dns.verify_servers, hooks.webhooks): each item is checked as k->sub,
 * with "[i]" in its path. A null value (`webhooks:` alone) is the empty list. */
static int walk_list(struct ctx *x, const struct config_key *k, const yaml_node_t *seq, void *base,
                     const char *path)
{
    char child[PATH_TEXT_MAX + 16];
    struct config_key item = *k->sub;
    unsigned *count = (unsigned *)((char *)base + k->count_offset);
    int rv;

    *count = 0;
    if (is_null(seq)) {
        return 0;
    }
    if (seq->type != YAML_SEQUENCE_NODE) {
        return fail_expected(x, k, seq, path);
    }
    long n = seq->data.sequence.items.top - seq->data.sequence.items.start;
    if ((uint64_t)n > k->max) {
        return fail(x, line_of(seq), path,
                    "expected a sequence of at most %llu items, got %ld items",
                    (unsigned long long)k->max, n);
    }
    for (unsigned i = 0; i < (unsigned)n; i++) {
        const yaml_node_t *vn = yaml_document_get_node(x->doc, seq->data.sequence.items.start[i]);
        snprintf(child, sizeof child, "%s[%u]", path, i);
        item.offset = k->offset + i * k->sub->size;
        if ((rv = walk_value(x, &item, vn, base, child)) != 0) {
            return rv;
        }
        *count = i + 1;
    }
    return 0;
}

/* Names, ids and raft addresses must each be unique across members. */
static int check_members_unique(struct ctx *x)
{
    const struct afc_config *c = x->c;
    char path[PATH_TEXT_MAX], got[CONFIG_SHOW_MAX + 8];
    for (unsigned i = 0; i < c->n_members; i++) {
        const struct afc_config_member *m = &c->members[i];
        for (unsigned j = 0; j < i; j++) {
            const struct afc_config_member *o = &c->members[j];
            if (strcmp(m->name, o->name) == 0) {
                snprintf(path, sizeof path, "members[%u].name", i);
                return fail(x, x->mline[i][S_M_NAME], path,
                            "expected a unique name, got %s (also members[%u] at line %lu)",
                            config_show(m->name, got, sizeof got), j, x->mline[j][S_M_NAME]);
            }
            if (m->id == o->id) {
                snprintf(path, sizeof path, "members[%u].id", i);
                return fail(x, x->mline[i][S_M_ID], path,
                            "expected a unique id, got '%llu' (also members[%u] at line %lu)",
                            (unsigned long long)m->id, j, x->mline[j][S_M_ID]);
            }
            if (strcmp(m->raft_addr, o->raft_addr) == 0) {
                snprintf(path, sizeof path, "members[%u].raft", i);
                return fail(x, x->mline[i][S_M_RAFT], path,
                            "expected a unique address, got %s (also members[%u] at line %lu)",
                            config_show(m->raft_addr, got, sizeof got), j, x->mline[j][S_M_RAFT]);
            }
        }
    }
    return 0;
}

static int walk_members(struct ctx *x, const struct config_key *k, const yaml_node_t *seq,
                        const char *path)
{
    char child[PATH_TEXT_MAX + 16]; /* path + "[i]" */
    int rv;
    if (seq->type != YAML_SEQUENCE_NODE) {
        return fail_expected(x, k, seq, path);
    }
    long n = seq->data.sequence.items.top - seq->data.sequence.items.start;
    if (n < 1 || n > AFC_MAX_MEMBERS) {
        return fail(x, line_of(seq), path,
                    "expected a sequence of 1 to %d members, got %ld members", AFC_MAX_MEMBERS, n);
    }
    for (unsigned i = 0; i < (unsigned)n; i++) {
        const yaml_node_t *item = yaml_document_get_node(x->doc, seq->data.sequence.items.start[i]);
        snprintf(child, sizeof child, "%s[%u]", path, i);
        x->member = i;
        x->mstart[i] = line_of(item);
        x->c->n_members = i + 1;
        if (is_null(item)) { /* "- " alone: say what a member looks like */
            return fail(x, line_of(item), child, "missing required key 'name'");
        }
        if ((rv = walk_map(x, item, k->sub, &x->c->members[i], child)) != 0) {
            return rv;
        }
    }
    return check_members_unique(x);
}

/* ---- Checks that span keys ------------------------------------------------------------------- */

static struct afc_config_member *find_member(struct afc_config *c, const char *name)
{
    for (unsigned i = 0; i < c->n_members; i++) {
        if (strcmp(c->members[i].name, name) == 0) {
            return &c->members[i];
        }
    }
    return NULL;
}

static const char *member_list(const struct afc_config *c, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < c->n_members && used < size; i++) {
        used +=
            (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", c->members[i].name);
    }
    return buf;
}

/* The key the chosen provider cannot work without, or NULL (its secrets are checked with the
 * environment, which may supply them). */
static const char *dns_missing_key(const struct afc_dns_config *d)
{
    switch (d->provider) {
    case AFC_DNS_POWERDNS:
        return d->powerdns.api_url[0] == '\0' ? "dns.powerdns.api_url" : NULL;
    case AFC_DNS_RFC2136:
        return d->rfc2136.server[0] == '\0'      ? "dns.rfc2136.server"
               : d->rfc2136.tsig_name[0] == '\0' ? "dns.rfc2136.tsig_name"
                                                 : NULL;
    case AFC_DNS_CLOUDFLARE:
        return d->cloudflare.zone_id[0] == '\0' ? "dns.cloudflare.zone_id" : NULL;
    case AFC_DNS_ROUTE53:
        return d->route53.hosted_zone_id[0] == '\0' ? "dns.route53.hosted_zone_id" : NULL;
    default:
        return NULL;
    }
}

/* dns.name lies in dns.zone; with a provider: name, zone, the provider's keys and every member's
 * address are there. A missing key is reported at the line of dns.provider, which asked for it. */
static int check_dns(struct ctx *x)
{
    const struct afc_config *c = x->c;
    const struct afc_dns_config *d = &c->dns;
    const char *provider = config_dns_provider_name((int)d->provider), *missing;
    char got[CONFIG_SHOW_MAX + 8], zone[CONFIG_SHOW_MAX + 8], path[PATH_TEXT_MAX];

    if (d->name[0] != '\0' && d->zone[0] != '\0' && !config_dns_name_in_zone(d->name, d->zone)) {
        return fail(x, x->line[S_DNS_NAME], "dns.name",
                    "expected a name inside dns.zone %s, got %s",
                    config_show(d->zone, zone, sizeof zone), config_show(d->name, got, sizeof got));
    }
    if (d->provider == AFC_DNS_NONE) {
        return 0;
    }
    missing = d->name[0] == '\0'   ? "dns.name"
              : d->zone[0] == '\0' ? "dns.zone"
                                   : dns_missing_key(d);
    if (missing != NULL) {
        return fail(x, x->line[S_DNS_PROVIDER], missing, "required when dns.provider is %s",
                    provider);
    }
    for (unsigned i = 0; i < c->n_members; i++) {
        if (c->members[i].address[0] == '\0') {
            snprintf(path, sizeof path, "members[%u].address", i);
            return fail(x, x->mstart[i], path,
                        "required when dns.provider is %s (the address dns.name answers while "
                        "'%s' is primary)",
                        provider, c->members[i].name);
        }
    }
    return 0;
}

static int check_file(struct ctx *x)
{
    struct afc_config *c = x->c;
    char list[AFC_MAX_MEMBERS * (AFC_NAME_MAX + 2)], got[CONFIG_SHOW_MAX + 8];

    if (c->heartbeat_timeout_ms >= c->election_timeout_ms) {
        if (x->line[S_HEARTBEAT] != 0) {
            return fail(x, x->line[S_HEARTBEAT], "raft.heartbeat_timeout_ms",
                        "expected less than raft.election_timeout_ms (%u), got '%u'",
                        c->election_timeout_ms, c->heartbeat_timeout_ms);
        }
        return fail(x, x->line[S_ELECTION], "raft.election_timeout_ms",
                    "expected more than raft.heartbeat_timeout_ms (%u by default), got '%u'",
                    c->heartbeat_timeout_ms, c->election_timeout_ms);
    }
    if (c->region[0] != '\0' && find_member(c, c->region) == NULL) {
        return fail(x, x->line[S_REGION], "region", "%s is not one of the members: %s",
                    config_show(c->region, got, sizeof got), member_list(c, list, sizeof list));
    }
    if (c->api_listen[0] != '\0' && !c->api_allow_remote && !config_is_loopback(c->api_listen)) {
        return fail(x, x->line[S_LISTEN], "api.listen",
                    "expected a loopback address (or api.allow_remote: true), got %s",
                    config_show(c->api_listen, got, sizeof got));
    }
    return check_dns(x);
}

/* ---- Public ---------------------------------------------------------------------------------- */

void afc_config_defaults(struct afc_config *c)
{
    memset(c, 0, sizeof *c);
    c->election_timeout_ms = 1000;
    c->heartbeat_timeout_ms = 100;
    c->snapshot_threshold = 1024;
    c->snapshot_trailing = 128;
    c->digest_interval_ms = 5000;
    c->log_level = AFC_LOG_INFO;
    c->log_format = AFC_LOG_TEXT;
    snprintf(c->pg_bin_dir, sizeof c->pg_bin_dir, "%s", "/usr/lib/postgresql/15/bin");
    c->lease_ms = 2000;
    c->lease_renew_ms = 500;
    c->probe_local_ms = 500;
    c->probe_remote_ms = 1000;
    c->probe_rise = 2;
    c->probe_fall = 3;
    c->max_lag_bytes = 1048576;
    c->failover_cooldown_ms = 300000;
    snprintf(c->redis_key, sizeof c->redis_key, "%s", "aragora:primary");
    snprintf(c->redis_channel, sizeof c->redis_channel, "%s", "aragora:events");
    c->redis_timeout_ms = 1000;
    c->dns.provider = AFC_DNS_NONE;
    c->dns.ttl = 5;
    c->dns.timeout_ms = 5000;
    snprintf(c->dns.powerdns.server_id, sizeof c->dns.powerdns.server_id, "%s", "localhost");
    snprintf(c->dns.rfc2136.tsig_algorithm, sizeof c->dns.rfc2136.tsig_algorithm, "%s",
             "hmac-sha256");
    snprintf(c->dns.cloudflare.api_url, sizeof c->dns.cloudflare.api_url, "%s",
             "https://api.cloudflare.com/client/v4");
    snprintf(c->dns.route53.endpoint, sizeof c->dns.route53.endpoint, "%s",
             "https://route53.amazonaws.com");
    snprintf(c->dns.route53.region, sizeof c->dns.route53.region, "%s", "us-east-1");
    c->hook_timeout_ms = 30000;
    c->pre_promote_timeout_ms = 10000;
    c->webhook_attempts = 5;
    for (unsigned i = 0; i < AFC_MAX_MEMBERS; i++) {
        c->members[i].priority = 100;
    }
}

/* One YAML document whose root is a mapping: anything after it ("---") is an error. */
static int walk_document(struct ctx *x, yaml_parser_t *parser, const char *text, size_t len)
{
    static const struct config_key top = {.type = K_MAP};
    const yaml_node_t *root = yaml_document_get_root_node(x->doc);
    yaml_document_t next;
    int rv;

    if (root == NULL) {
        return fail(x, 1, "", "expected a mapping of configuration keys, got an empty document");
    }
    if (root->type != YAML_MAPPING_NODE) {
        return fail_expected(x, &top, root, "");
    }
    if (!yaml_parser_load(parser, &next)) {
        return fail_syntax(x, parser, text, len);
    }
    root = yaml_document_get_root_node(&next);
    rv = root ? fail(x, line_of(root), "", "expected a single YAML document") : 0;
    yaml_document_delete(&next);
    if (rv != 0) {
        return rv;
    }
    if ((rv = walk_map(x, yaml_document_get_root_node(x->doc), config_top_keys, x->c, "")) != 0) {
        return rv;
    }
    return check_file(x);
}

int afc_config_parse(struct afc_config *c, const char *source, const char *text, size_t len,
                     struct afc_err *err)
{
    struct ctx x = {.c = c, .source = source, .err = err};
    yaml_parser_t parser;
    yaml_document_t doc;
    int rv;

    afc_config_defaults(c);
    snprintf(c->source, sizeof c->source, "%s", source);
    if (!yaml_parser_initialize(&parser)) {
        return afc_err_set(err, AFC_ENOMEM, "%s: out of memory", source);
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) { /* libyaml frees the partial document itself */
        rv = fail_syntax(&x, &parser, text, len);
        goto delete_parser;
    }
    x.doc = &doc;
    rv = walk_document(&x, &parser, text, len);
    yaml_document_delete(&doc);
delete_parser:
    yaml_parser_delete(&parser);
    return rv;
}

int afc_config_load(struct afc_config *c, const char *path, struct afc_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return afc_err_set(err, AFC_EIO, "%s: %s", path, strerror(errno));
    }
    char *buf = malloc(CONFIG_FILE_MAX + 1);
    size_t len = 0;
    int rv = 0;
    if (buf == NULL) {
        rv = afc_err_set(err, AFC_ENOMEM, "%s: out of memory", path);
        goto close_fd;
    }
    while (len <= CONFIG_FILE_MAX) {
        ssize_t n = read(fd, buf + len, CONFIG_FILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rv = afc_err_set(err, AFC_EIO, "%s: %s", path, strerror(errno));
            goto free_buf;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    if (len > CONFIG_FILE_MAX) {
        rv = afc_err_set(err, AFC_ECONFIG, "%s: larger than the 1 MiB limit", path);
        goto free_buf;
    }
    rv = afc_config_parse(c, path, buf, len, err);
free_buf:
    free(buf);
close_fd:
    close(fd);
    return rv;
}

const struct afc_config_member *afc_config_self(const struct afc_config *c)
{
    for (unsigned i = 0; i < c->n_members; i++) {
        if (strcmp(c->members[i].name, c->region) == 0) {
            return &c->members[i];
        }
    }
    return NULL;
}

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

    if (name != NULL && (m = find_member(c, name)) == NULL) {
        return afc_err_set(err, AFC_ECONFIG, "ARAGORA_REGION: %s is not one of the members: %s",
                           config_show(name, got, sizeof got), member_list(c, list, sizeof list));
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
        if (find_member(c, primary) == NULL) {
            return afc_err_set(
                err, AFC_ECONFIG, "ARAGORA_PRIMARY: expected one of the members (%s), got %s",
                member_list(c, list, sizeof list), config_show(primary, got, sizeof got));
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
                           member_list(c, list, sizeof list));
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
