/*
 * Scenario files (chaos.h, docs/chaos.md "Writing a scenario"): YAML text -> struct chaos_scenario.
 *
 * The format:
 *
 *   name: isolate-primary            # required, a-z, 0-9 and '-'
 *   description: "..."               # optional
 *   seed: 7                          # optional, default 1
 *   lab:                             # optional mapping
 *     replication: async             # async (default) | sync
 *     fence: true                    # default true
 *     wan: false                     # default false
 *     dns: powerdns                  # powerdns (default) | rfc2136 | none
 *     redis: true                    # default true
 *   workload:                        # optional mapping
 *     interval_ms: 20                # 1..10000 (default 20)
 *     timeout_ms: 2000               # 50..60000 (default 2000)
 *   warmup: 3s                       # default 3s
 *   duration: 30s                    # required: the workload runs at least this long
 *   settle: 10s                      # default 10s
 *   steps:                           # required, 1..CHAOS_MAX_STEPS mappings (scenario_steps.c)
 *   expect:
 *     failover: any                  # true | false | any (default)
 *     rto_max: 90s                   # optional
 *     lost_writes_max: 0             # an integer, or "unchecked" (default)
 *     converge: 30s                  # optional
 *
 * Durations are an integer and ms, s or m.
 *
 * Data flow: libyaml's document API builds a node tree in which every node carries its start
 * mark; walk_map() walks a mapping against a table of keys whose handlers store the values;
 * the steps are walked by scenario_steps.c (scenario_internal.h holds what the two files
 * share). Every message is "FILE:LINE: KEY: reason". Pure: libc and libyaml.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "chaos.h"
#include "scenario_internal.h"

#define SCENARIO_FILE_MAX (1024 * 1024)
#define DURATION_MAX_S    86400 /* a day: no scenario step is longer */

struct key {
    const char *name;
    handler fn;
    bool required;
};

/* ---- Errors ---------------------------------------------------------------------------------- */

/* "FILE:LINE: PATH: message" (no "PATH: " at the top level). */
int scenario_fail(struct ctx *x, unsigned long line, const char *path, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(x->why, x->why_size, "%s:%lu: %s%s%s", x->file, line, path, *path ? ": " : "", msg);
    return -1;
}

unsigned long scenario_line_of(const yaml_node_t *n)
{
    return (unsigned long)n->start_mark.line + 1; /* libyaml counts from 0 */
}

static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return false;
    }
    const char *s = (const char *)n->data.scalar.value;
    return strcmp(s, "") == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0;
}

/* How a node is named after "got ": "a mapping", "a sequence", "nothing" or the quoted value. */
const char *scenario_show(const yaml_node_t *n, char *buf, size_t size)
{
    if (n->type == YAML_MAPPING_NODE) {
        return "a mapping";
    }
    if (n->type == YAML_SEQUENCE_NODE) {
        return "a sequence";
    }
    if (is_null(n)) {
        return "nothing";
    }
    const unsigned char *s = n->data.scalar.value;
    size_t len = n->data.scalar.length, j = 0;
    buf[j++] = '"';
    for (size_t i = 0; i < len && i < SHOW_MAX && j + 6 < size; i++) {
        buf[j++] = s[i] >= 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
    }
    if (len > SHOW_MAX && j + 5 < size) {
        memcpy(buf + j, "...", 3);
        j += 3;
    }
    buf[j++] = '"';
    buf[j] = '\0';
    return buf;
}

int scenario_fail_expected(struct ctx *x, const yaml_node_t *n, const char *path, const char *what)
{
    char got[SHOW_MAX + 16];
    return scenario_fail(x, scenario_line_of(n), path, "expected %s, got %s", what,
                         scenario_show(n, got, sizeof got));
}

/* libyaml's problem_mark is 0-based; reader errors only carry a byte offset. */
static int fail_syntax(struct ctx *x, const yaml_parser_t *p, const char *text, size_t len)
{
    unsigned long line = (unsigned long)p->problem_mark.line + 1;
    if (p->error == YAML_MEMORY_ERROR) {
        snprintf(x->why, x->why_size, "%s: out of memory", x->file);
        return -1;
    }
    if (p->error == YAML_READER_ERROR) {
        line = 1;
        for (size_t i = 0; i < p->problem_offset && i < len; i++) {
            line += text[i] == '\n';
        }
    }
    return scenario_fail(x, line, "", "invalid YAML: %s", p->problem ? p->problem : "syntax error");
}

/* ---- Scalars --------------------------------------------------------------------------------- */

/* The text of a non-empty scalar without embedded NULs, or NULL. */
const char *scenario_scalar(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || is_null(n)) {
        return NULL;
    }
    const char *s = (const char *)n->data.scalar.value;
    return strlen(s) == n->data.scalar.length ? s : NULL;
}

int scenario_get_text(struct ctx *x, const yaml_node_t *n, const char *path, char *dst, size_t size)
{
    const char *s = scenario_scalar(n);
    if (s == NULL) {
        return scenario_fail_expected(x, n, path, "a string");
    }
    if (strlen(s) >= size) {
        return scenario_fail(x, scenario_line_of(n), path,
                             "expected at most %zu characters, got %zu", size - 1, strlen(s));
    }
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

bool scenario_is_name(const char *s, const char *extra)
{
    for (const char *p = s; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr(extra, *p))) {
            return false;
        }
    }
    return *s != '\0';
}

int scenario_get_bool(struct ctx *x, const yaml_node_t *n, const char *path, bool *out)
{
    const char *s = scenario_scalar(n);
    if (s != NULL && (strcmp(s, "true") == 0 || strcmp(s, "false") == 0)) {
        *out = s[0] == 't';
        return 0;
    }
    return scenario_fail_expected(x, n, path, "true or false");
}

static bool parse_uint(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0') {
        return false;
    }
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10) {
            return false;
        }
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return true;
}

static int get_uint(struct ctx *x, const yaml_node_t *n, const char *path, uint64_t min,
                    uint64_t max, uint64_t *out)
{
    const char *s = scenario_scalar(n);
    char what[80];
    if (s != NULL && parse_uint(s, out) && *out >= min && *out <= max) {
        return 0;
    }
    snprintf(what, sizeof what, "an integer from %" PRIu64 " to %" PRIu64, min, max);
    return scenario_fail_expected(x, n, path, what);
}

/* "250ms", "3s", "2m"; with plus != NULL also "+2s". At most a day. */
bool scenario_parse_duration(const char *s, bool *plus, int64_t *us)
{
    static const struct {
        const char *unit;
        int64_t us;
    } units[] = {{"ms", 1000}, {"s", 1000000}, {"m", 60000000}};
    uint64_t v = 0;
    size_t digits = 0;

    if (plus != NULL && (*plus = *s == '+')) {
        s++;
    }
    for (; s[digits] >= '0' && s[digits] <= '9' && digits < 10; digits++) {
        v = v * 10 + (uint64_t)(s[digits] - '0');
    }
    for (size_t i = 0; digits > 0 && i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(s + digits, units[i].unit) == 0 &&
            v * (uint64_t)units[i].us <= (uint64_t)DURATION_MAX_S * 1000000) {
            *us = (int64_t)v * units[i].us;
            return true;
        }
    }
    return false;
}

int scenario_get_duration(struct ctx *x, const yaml_node_t *n, const char *path, bool positive,
                          int64_t *out)
{
    const char *s = scenario_scalar(n);
    if (s == NULL || !scenario_parse_duration(s, NULL, out)) {
        return scenario_fail_expected(x, n, path, "a duration such as 250ms, 3s or 2m");
    }
    if (positive && *out == 0) {
        return scenario_fail_expected(x, n, path, "a duration greater than 0");
    }
    return 0;
}

/* Index of the scalar in names (NULL-terminated), or a message listing them. */
int scenario_get_choice(struct ctx *x, const yaml_node_t *n, const char *path,
                        const char *const *names, int *out)
{
    const char *s = scenario_scalar(n);
    char list[256] = "";
    size_t used = 0;
    for (int i = 0; s != NULL && names[i] != NULL; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    for (int i = 0; names[i] != NULL && used < sizeof list; i++) {
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "one of ",
                                 names[i]);
    }
    return scenario_fail_expected(x, n, path, list);
}

/* ---- Mappings -------------------------------------------------------------------------------- */

static const char *key_list(const struct key *keys, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (const struct key *k = keys; k->name != NULL && used < size; k++) {
        used += (size_t)snprintf(buf + used, size - used, "%s%s", k == keys ? "" : ", ", k->name);
    }
    return buf;
}

/* Paths are short ("steps[12].fault_point"); a longer one is cut, never overflows. */
bool scenario_join_path(char *dst, size_t size, const char *path, const char *name)
{
    int n = snprintf(dst, size, "%s%s%s", path, *path ? "." : "", name);
    return n >= 0 && (size_t)n < size;
}

const char *scenario_key_text(const yaml_node_t *kn)
{
    return kn->type == YAML_SCALAR_NODE ? (const char *)kn->data.scalar.value : "?";
}

/* Every key must be in `keys`, at most once; then every required key present. A null value
 * (`lab:` with nothing under it) counts as an empty mapping. */
static int walk_map(struct ctx *x, const yaml_node_t *map, const struct key *keys, const char *path)
{
    unsigned long seen[16] = {0};
    char child[PATH_TEXT_MAX], list[256];
    bool empty = is_null(map);

    if (!empty && map->type != YAML_MAPPING_NODE) {
        return scenario_fail_expected(x, map, path, "a mapping");
    }
    const yaml_node_pair_t *pairs = empty ? NULL : map->data.mapping.pairs.start;
    size_t n = empty ? 0 : (size_t)(map->data.mapping.pairs.top - pairs);
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *kn = yaml_document_get_node(x->doc, pairs[i].key);
        const yaml_node_t *vn = yaml_document_get_node(x->doc, pairs[i].value);
        const struct key *k = keys;
        while (k->name != NULL && strcmp(k->name, scenario_key_text(kn)) != 0) {
            k++;
        }
        scenario_join_path(child, sizeof child, path, scenario_key_text(kn));
        if (k->name == NULL) {
            return scenario_fail(x, scenario_line_of(kn), child, "unknown key; expected one of: %s",
                                 key_list(keys, list, sizeof list));
        }
        if (seen[k - keys] != 0) {
            return scenario_fail(x, scenario_line_of(kn), child,
                                 "duplicate key (first set at line %lu)", seen[k - keys]);
        }
        seen[k - keys] = scenario_line_of(kn);
        if (k->fn(x, vn, child) != 0) {
            return -1;
        }
    }
    for (const struct key *k = keys; k->name != NULL; k++) {
        if (k->required && seen[k - keys] == 0) {
            scenario_join_path(child, sizeof child, path, k->name);
            return scenario_fail(x, scenario_line_of(map), child, "missing required key");
        }
    }
    return 0;
}

/* ---- Top-level, lab, workload and expect keys ------------------------------------------------ */

static int top_name(struct ctx *x, const yaml_node_t *n, const char *path)
{
    if (scenario_get_text(x, n, path, x->s->name, sizeof x->s->name) != 0) {
        return -1;
    }
    if (!scenario_is_name(x->s->name, "-")) {
        return scenario_fail_expected(x, n, path, "a name of a-z, 0-9 and '-'");
    }
    return 0;
}

static int top_description(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return scenario_get_text(x, n, path, x->s->description, sizeof x->s->description);
}

static int top_seed(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return get_uint(x, n, path, 0, UINT64_MAX, &x->s->seed);
}

static int top_warmup(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return scenario_get_duration(x, n, path, false, &x->s->warmup_us);
}

static int top_duration(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return scenario_get_duration(x, n, path, true, &x->s->duration_us);
}

static int top_settle(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return scenario_get_duration(x, n, path, false, &x->s->settle_us);
}

static int lab_replication(struct ctx *x, const yaml_node_t *n, const char *path)
{
    static const char *const names[] = {"async", "sync", NULL};
    int i;
    if (scenario_get_choice(x, n, path, names, &i) != 0) {
        return -1;
    }
    x->s->sync = i == 1;
    return 0;
}

static int lab_fence(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return scenario_get_bool(x, n, path, &x->s->fence);
}

static int lab_wan(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return scenario_get_bool(x, n, path, &x->s->wan);
}

static int lab_dns(struct ctx *x, const yaml_node_t *n, const char *path)
{
    static const char *const names[] = {"powerdns", "rfc2136", "none", NULL};
    int i;
    if (scenario_get_choice(x, n, path, names, &i) != 0) {
        return -1;
    }
    snprintf(x->s->dns, sizeof x->s->dns, "%s", names[i]);
    return 0;
}

static int lab_redis(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return scenario_get_bool(x, n, path, &x->s->redis);
}

static int workload_interval(struct ctx *x, const yaml_node_t *n, const char *path)
{
    uint64_t v;
    if (get_uint(x, n, path, 1, 10000, &v) != 0) {
        return -1;
    }
    x->s->interval_ms = (unsigned)v;
    return 0;
}

static int workload_timeout(struct ctx *x, const yaml_node_t *n, const char *path)
{
    uint64_t v;
    if (get_uint(x, n, path, 50, 60000, &v) != 0) {
        return -1;
    }
    x->s->timeout_ms = (unsigned)v;
    return 0;
}

static int expect_failover(struct ctx *x, const yaml_node_t *n, const char *path)
{
    static const char *const names[] = {"false", "true", "any", NULL};
    int i;
    if (scenario_get_choice(x, n, path, names, &i) != 0) {
        return -1;
    }
    x->s->expect.failover = i == 2 ? -1 : i;
    return 0;
}

static int expect_rto(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return scenario_get_duration(x, n, path, true, &x->s->expect.rto_max_us);
}

static int expect_lost(struct ctx *x, const yaml_node_t *n, const char *path)
{
    const char *s = scenario_scalar(n);
    uint64_t v;
    if (s != NULL && strcmp(s, "unchecked") == 0) {
        x->s->expect.lost_writes_max = -1;
        return 0;
    }
    if (s != NULL && parse_uint(s, &v) && v <= 1000000000) {
        x->s->expect.lost_writes_max = (long)v;
        return 0;
    }
    return scenario_fail_expected(x, n, path, "an integer from 0 to 1000000000 or \"unchecked\"");
}

static int expect_converge(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return scenario_get_duration(x, n, path, true, &x->s->expect.converge_us);
}

static int top_lab(struct ctx *x, const yaml_node_t *n, const char *path)
{
    static const struct key keys[] = {
        {"replication", lab_replication, false},
        {"fence", lab_fence, false},
        {"wan", lab_wan, false},
        {"dns", lab_dns, false},
        {"redis", lab_redis, false},
        {NULL, NULL, false},
    };
    return walk_map(x, n, keys, path);
}

static int top_workload(struct ctx *x, const yaml_node_t *n, const char *path)
{
    static const struct key keys[] = {
        {"interval_ms", workload_interval, false},
        {"timeout_ms", workload_timeout, false},
        {NULL, NULL, false},
    };
    return walk_map(x, n, keys, path);
}

static int top_expect(struct ctx *x, const yaml_node_t *n, const char *path)
{
    static const struct key keys[] = {
        {"failover", expect_failover, false},
        {"rto_max", expect_rto, false},
        {"lost_writes_max", expect_lost, false},
        {"converge", expect_converge, false},
        {NULL, NULL, false},
    };
    return walk_map(x, n, keys, path);
}

/* ---- Documents and files --------------------------------------------------------------------- */

static const struct key top_keys[] = {
    {"name", top_name, true},
    {"description", top_description, false},
    {"seed", top_seed, false},
    {"lab", top_lab, false},
    {"workload", top_workload, false},
    {"warmup", top_warmup, false},
    {"duration", top_duration, true},
    {"settle", top_settle, false},
    {"steps", scenario_top_steps, true},
    {"expect", top_expect, false},
    {NULL, NULL, false},
};

static void scenario_defaults(struct chaos_scenario *s, const char *path)
{
    memset(s, 0, sizeof *s);
    snprintf(s->file, sizeof s->file, "%s", path);
    s->fence = true;
    snprintf(s->dns, sizeof s->dns, "powerdns");
    s->redis = true;
    s->interval_ms = 20;
    s->timeout_ms = 2000;
    s->warmup_us = 3 * 1000000;
    s->settle_us = 10 * 1000000;
    s->seed = 1;
    s->expect.failover = -1;
    s->expect.lost_writes_max = -1;
}

/* One YAML document whose root is a mapping: anything after it ("---") is an error. */
static int walk_document(struct ctx *x, yaml_parser_t *parser, const char *text, size_t len)
{
    const yaml_node_t *root = yaml_document_get_root_node(x->doc);
    yaml_document_t next;
    int rv;

    if (root == NULL) {
        return scenario_fail(x, 1, "",
                             "expected a mapping of scenario keys, got an empty document");
    }
    if (root->type != YAML_MAPPING_NODE) {
        return scenario_fail_expected(x, root, "", "a mapping of scenario keys");
    }
    if (!yaml_parser_load(parser, &next)) {
        return fail_syntax(x, parser, text, len);
    }
    root = yaml_document_get_root_node(&next);
    rv = root ? scenario_fail(x, scenario_line_of(root), "", "expected a single YAML document") : 0;
    yaml_document_delete(&next);
    if (rv != 0) {
        return rv;
    }
    return walk_map(x, yaml_document_get_root_node(x->doc), top_keys, "");
}

static int parse_text(struct ctx *x, const char *text, size_t len)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    int rv;

    if (!yaml_parser_initialize(&parser)) {
        snprintf(x->why, x->why_size, "%s: out of memory", x->file);
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) { /* libyaml frees the partial document itself */
        rv = fail_syntax(x, &parser, text, len);
        goto delete_parser;
    }
    x->doc = &doc;
    rv = walk_document(x, &parser, text, len);
    yaml_document_delete(&doc);
delete_parser:
    yaml_parser_delete(&parser);
    return rv;
}

/* The whole file into a malloc'd buffer (at most SCENARIO_FILE_MAX bytes). */
static char *read_all(const char *path, size_t *len, char *why, size_t why_size)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    if (f == NULL) {
        snprintf(why, why_size, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if ((buf = malloc(SCENARIO_FILE_MAX + 1)) == NULL) {
        snprintf(why, why_size, "%s: out of memory", path);
        fclose(f);
        return NULL;
    }
    *len = fread(buf, 1, SCENARIO_FILE_MAX + 1, f);
    if (ferror(f) || *len > SCENARIO_FILE_MAX) {
        snprintf(why, why_size, "%s: %s", path,
                 ferror(f) ? strerror(errno) : "larger than the 1 MiB limit");
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

int chaos_scenario_load(const char *path, const char *const *regions, unsigned n_regions,
                        struct chaos_scenario *out, char *why, size_t why_size)
{
    struct ctx x = {.file = path,
                    .regions = regions,
                    .n_regions = n_regions,
                    .s = out,
                    .why = why,
                    .why_size = why_size};
    size_t len = 0;
    char *text = read_all(path, &len, why, why_size);
    if (text == NULL) {
        return -1;
    }
    scenario_defaults(out, path);
    int rv = parse_text(&x, text, len);
    free(text);
    return rv;
}
