/*
 * Node configuration (include/afc/config.h): YAML text → struct afc_config.
 *
 * Data flow: libyaml's document API (yaml_parser_load) builds a node tree in which every node
 * carries its start mark, so every message can name a line. walk_map() then walks that tree
 * against the declarative schema in config_schema.c — tables that say, for each key, its type,
 * range and where in the struct it lands — and check_file() runs the checks that span keys (unique
 * members, heartbeat < election, region is a member, loopback listen). afc_config_apply_env()
 * (config_env.c) then overlays the deployment guide's environment variables and checks the
 * combination again; its messages name the variable instead of a line.
 *
 * The dns section is checked the same way: check_dns() (name inside zone, the chosen provider's
 * keys, every member's address) at parse time; config_env.c loads the chosen provider's
 * credentials from the environment or their files afterwards.
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

struct afc_config_member *config_find_member(struct afc_config *c, const char *name)
{
    for (unsigned i = 0; i < c->n_members; i++) {
        if (strcmp(c->members[i].name, name) == 0) {
            return &c->members[i];
        }
    }
    return NULL;
}

const char *config_member_list(const struct afc_config *c, char *buf, size_t size)
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
    if (c->region[0] != '\0' && config_find_member(c, c->region) == NULL) {
        return fail(x, x->line[S_REGION], "region", "%s is not one of the members: %s",
                    config_show(c->region, got, sizeof got),
                    config_member_list(c, list, sizeof list));
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
