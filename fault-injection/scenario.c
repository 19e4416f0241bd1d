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
 *   steps:                           # required, 1..CHAOS_MAX_STEPS mappings
 *     - at: 5s                       # or "+2s" after the previous step; default +0s
 *       nemesis: isolate             # a shape (chaos_shape_from_name); target required
 *       target: primary              # primary|leader|replica|new-primary|old-primary|last|REGION
 *       failure: true                # RTO counts from this step (default below)
 *     - fault: "us-east-2 -/- eu-west-1"  # a fault set, stored as written (the runner parses it)
 *     - heal: true
 *     - kill: coordinator            # coordinator|postgres|region|redis|dns; target (not for dns)
 *       target: leader
 *     - freeze: coordinator          # freeze, thaw and restart: as kill
 *     - flap: isolate                # a shape; target, down, up and for all required
 *       target: primary
 *       down: 300ms
 *       up: 700ms
 *       for: 10s
 *     - fault_point: crash-after-decide  # a coordinator fault point; target required
 *       target: leader
 *     - dns: down                    # down | up | 429
 *     - wait: failover-decided       # failover-decided|failover-promoted|failover-done|settled
 *       timeout: 90s                 # required
 *   expect:
 *     failover: any                  # true | false | any (default)
 *     rto_max: 90s                   # optional
 *     lost_writes_max: 0             # an integer, or "unchecked" (default)
 *     converge: 30s                  # optional
 *
 * Each step has exactly one action key and only the parameter keys its action takes: `at` for
 * every step; `failure` for nemesis, fault, kill, freeze, restart, flap and fault_point; `target`
 * as above; `timeout` for wait; `down`, `up` and `for` for flap. `failure` defaults to true for a
 * kill or freeze of the primary's coordinator, postgres or region and for a nemesis isolate or
 * one-way-from around the primary, false otherwise. Durations are an integer and ms, s or m.
 * Targets: primary, leader, replica, new-primary, old-primary, last (chaos.h) or a region name.
 * A wait step keeps its event ("failover-decided", ...) in step->what (and step->text).
 *
 * Data flow: libyaml's document API builds a node tree in which every node carries its start
 * mark; walk_map() walks a mapping against a table of keys whose handlers store the values, and
 * walk_step() does the same for a step, whose allowed keys depend on its action. Every message is
 * "FILE:LINE: KEY: reason". Pure: libc and libyaml.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "chaos.h"

#define SCENARIO_FILE_MAX (1024 * 1024)
#define PATH_TEXT_MAX     64    /* "steps[47].fault_point" */
#define SHOW_MAX          40    /* characters of a value quoted back */
#define DURATION_MAX_S    86400 /* a day: no scenario step is longer */

/* One parse in progress. */
struct ctx {
    const char *file;
    const char *const *regions;
    unsigned n_regions;
    yaml_document_t *doc;
    struct chaos_scenario *s;
    char *why;
    size_t why_size;
    /* the step being walked */
    struct chaos_step *step;
    const char *action;              /* its action key */
    char action_path[PATH_TEXT_MAX]; /* "steps[3].kill" */
    unsigned long target_line;       /* where its target was set; 0 = not */
};

typedef int (*handler)(struct ctx *x, const yaml_node_t *n, const char *path);

struct key {
    const char *name;
    handler fn;
    bool required;
};

/* ---- Errors ---------------------------------------------------------------------------------- */

static int fail(struct ctx *x, unsigned long line, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "FILE:LINE: PATH: message" (no "PATH: " at the top level). */
static int fail(struct ctx *x, unsigned long line, const char *path, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(x->why, x->why_size, "%s:%lu: %s%s%s", x->file, line, path, *path ? ": " : "", msg);
    return -1;
}

static unsigned long line_of(const yaml_node_t *n)
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
static const char *show(const yaml_node_t *n, char *buf, size_t size)
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

static int fail_expected(struct ctx *x, const yaml_node_t *n, const char *path, const char *what)
{
    char got[SHOW_MAX + 16];
    return fail(x, line_of(n), path, "expected %s, got %s", what, show(n, got, sizeof got));
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
    return fail(x, line, "", "invalid YAML: %s", p->problem ? p->problem : "syntax error");
}

/* ---- Scalars --------------------------------------------------------------------------------- */

/* The text of a non-empty scalar without embedded NULs, or NULL. */
static const char *scalar(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || is_null(n)) {
        return NULL;
    }
    const char *s = (const char *)n->data.scalar.value;
    return strlen(s) == n->data.scalar.length ? s : NULL;
}

static int get_text(struct ctx *x, const yaml_node_t *n, const char *path, char *dst, size_t size)
{
    const char *s = scalar(n);
    if (s == NULL) {
        return fail_expected(x, n, path, "a string");
    }
    if (strlen(s) >= size) {
        return fail(x, line_of(n), path, "expected at most %zu characters, got %zu", size - 1,
                    strlen(s));
    }
    memcpy(dst, s, strlen(s) + 1);
    return 0;
}

static bool is_name(const char *s, const char *extra)
{
    for (const char *p = s; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr(extra, *p))) {
            return false;
        }
    }
    return *s != '\0';
}

static int get_bool(struct ctx *x, const yaml_node_t *n, const char *path, bool *out)
{
    const char *s = scalar(n);
    if (s != NULL && (strcmp(s, "true") == 0 || strcmp(s, "false") == 0)) {
        *out = s[0] == 't';
        return 0;
    }
    return fail_expected(x, n, path, "true or false");
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
    const char *s = scalar(n);
    char what[80];
    if (s != NULL && parse_uint(s, out) && *out >= min && *out <= max) {
        return 0;
    }
    snprintf(what, sizeof what, "an integer from %" PRIu64 " to %" PRIu64, min, max);
    return fail_expected(x, n, path, what);
}

/* "250ms", "3s", "2m"; with plus != NULL also "+2s". At most a day. */
static bool parse_duration(const char *s, bool *plus, int64_t *us)
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

static int get_duration(struct ctx *x, const yaml_node_t *n, const char *path, bool positive,
                        int64_t *out)
{
    const char *s = scalar(n);
    if (s == NULL || !parse_duration(s, NULL, out)) {
        return fail_expected(x, n, path, "a duration such as 250ms, 3s or 2m");
    }
    if (positive && *out == 0) {
        return fail_expected(x, n, path, "a duration greater than 0");
    }
    return 0;
}

/* Index of the scalar in names (NULL-terminated), or a message listing them. */
static int get_choice(struct ctx *x, const yaml_node_t *n, const char *path,
                      const char *const *names, int *out)
{
    const char *s = scalar(n);
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
    return fail_expected(x, n, path, list);
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
static bool join_path(char *dst, size_t size, const char *path, const char *name)
{
    int n = snprintf(dst, size, "%s%s%s", path, *path ? "." : "", name);
    return n >= 0 && (size_t)n < size;
}

static const char *key_text(const yaml_node_t *kn)
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
        return fail_expected(x, map, path, "a mapping");
    }
    const yaml_node_pair_t *pairs = empty ? NULL : map->data.mapping.pairs.start;
    size_t n = empty ? 0 : (size_t)(map->data.mapping.pairs.top - pairs);
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *kn = yaml_document_get_node(x->doc, pairs[i].key);
        const yaml_node_t *vn = yaml_document_get_node(x->doc, pairs[i].value);
        const struct key *k = keys;
        while (k->name != NULL && strcmp(k->name, key_text(kn)) != 0) {
            k++;
        }
        join_path(child, sizeof child, path, key_text(kn));
        if (k->name == NULL) {
            return fail(x, line_of(kn), child, "unknown key; expected one of: %s",
                        key_list(keys, list, sizeof list));
        }
        if (seen[k - keys] != 0) {
            return fail(x, line_of(kn), child, "duplicate key (first set at line %lu)",
                        seen[k - keys]);
        }
        seen[k - keys] = line_of(kn);
        if (k->fn(x, vn, child) != 0) {
            return -1;
        }
    }
    for (const struct key *k = keys; k->name != NULL; k++) {
        if (k->required && seen[k - keys] == 0) {
            join_path(child, sizeof child, path, k->name);
            return fail(x, line_of(map), child, "missing required key");
        }
    }
    return 0;
}

/* ---- Top-level, lab, workload and expect keys ------------------------------------------------ */

static int top_name(struct ctx *x, const yaml_node_t *n, const char *path)
{
    if (get_text(x, n, path, x->s->name, sizeof x->s->name) != 0) {
        return -1;
    }
    if (!is_name(x->s->name, "-")) {
        return fail_expected(x, n, path, "a name of a-z, 0-9 and '-'");
    }
    return 0;
}

static int top_description(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return get_text(x, n, path, x->s->description, sizeof x->s->description);
}

static int top_seed(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return get_uint(x, n, path, 0, UINT64_MAX, &x->s->seed);
}

static int top_warmup(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return get_duration(x, n, path, false, &x->s->warmup_us);
}

static int top_duration(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return get_duration(x, n, path, true, &x->s->duration_us);
}

static int top_settle(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return get_duration(x, n, path, false, &x->s->settle_us);
}

static int lab_replication(struct ctx *x, const yaml_node_t *n, const char *path)
{
    static const char *const names[] = {"async", "sync", NULL};
    int i;
    if (get_choice(x, n, path, names, &i) != 0) {
        return -1;
    }
    x->s->sync = i == 1;
    return 0;
}

static int lab_fence(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return get_bool(x, n, path, &x->s->fence);
}

static int lab_wan(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return get_bool(x, n, path, &x->s->wan);
}

static int lab_dns(struct ctx *x, const yaml_node_t *n, const char *path)
{
    static const char *const names[] = {"powerdns", "rfc2136", "none", NULL};
    int i;
    if (get_choice(x, n, path, names, &i) != 0) {
        return -1;
    }
    snprintf(x->s->dns, sizeof x->s->dns, "%s", names[i]);
    return 0;
}

static int lab_redis(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return get_bool(x, n, path, &x->s->redis);
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
    if (get_choice(x, n, path, names, &i) != 0) {
        return -1;
    }
    x->s->expect.failover = i == 2 ? -1 : i;
    return 0;
}

static int expect_rto(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return get_duration(x, n, path, true, &x->s->expect.rto_max_us);
}

static int expect_lost(struct ctx *x, const yaml_node_t *n, const char *path)
{
    const char *s = scalar(n);
    uint64_t v;
    if (s != NULL && strcmp(s, "unchecked") == 0) {
        x->s->expect.lost_writes_max = -1;
        return 0;
    }
    if (s != NULL && parse_uint(s, &v) && v <= 1000000000) {
        x->s->expect.lost_writes_max = (long)v;
        return 0;
    }
    return fail_expected(x, n, path, "an integer from 0 to 1000000000 or \"unchecked\"");
}

static int expect_converge(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return get_duration(x, n, path, true, &x->s->expect.converge_us);
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

/* ---- Step parameters ------------------------------------------------------------------------- */

/* The targets resolved when the step runs; any other target is a region name. */
static const struct {
    const char *name;
    enum chaos_target target;
} named_targets[] = {
    {"primary", CHAOS_TARGET_PRIMARY},         {"leader", CHAOS_TARGET_LEADER},
    {"replica", CHAOS_TARGET_REPLICA},         {"new-primary", CHAOS_TARGET_NEW_PRIMARY},
    {"old-primary", CHAOS_TARGET_OLD_PRIMARY}, {"last", CHAOS_TARGET_LAST},
};
#define N_NAMED_TARGETS (sizeof named_targets / sizeof named_targets[0])

static int param_at(struct ctx *x, const yaml_node_t *n, const char *path)
{
    const char *s = scalar(n);
    if (s == NULL || !parse_duration(s, &x->step->relative, &x->step->at_us)) {
        return fail_expected(x, n, path, "a time such as 5s, or +2s after the previous step");
    }
    return 0;
}

static int fail_target(struct ctx *x, const yaml_node_t *n)
{
    char list[512], got[SHOW_MAX + 16];
    size_t used = 0;
    for (size_t i = 0; i < N_NAMED_TARGETS + x->n_regions && used < sizeof list; i++) {
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                 i < N_NAMED_TARGETS ? named_targets[i].name
                                                     : x->regions[i - N_NAMED_TARGETS]);
    }
    if (scalar(n) == NULL) {
        return fail(x, line_of(n), x->action_path, "expected a target (%s), got %s", list,
                    show(n, got, sizeof got));
    }
    return fail(x, line_of(n), x->action_path, "unknown target %s (%s)", show(n, got, sizeof got),
                list);
}

/* Target errors name the step's action ("steps[2].kill: unknown target ..."). */
static int param_target(struct ctx *x, const yaml_node_t *n, const char *path)
{
    const char *s = scalar(n);
    (void)path;
    x->target_line = line_of(n);
    for (size_t i = 0; s != NULL && i < N_NAMED_TARGETS; i++) {
        if (strcmp(s, named_targets[i].name) == 0) {
            x->step->target = named_targets[i].target;
            return 0;
        }
    }
    for (unsigned i = 0; s != NULL && i < x->n_regions; i++) {
        if (strcmp(s, x->regions[i]) == 0) {
            x->step->target = CHAOS_TARGET_REGION;
            x->step->target_region = i;
            return 0;
        }
    }
    return fail_target(x, n);
}

static int param_failure(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return get_bool(x, n, path, &x->step->failure);
}

static int param_timeout(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return get_duration(x, n, path, true, &x->step->timeout_us);
}

static int param_down(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return get_duration(x, n, path, true, &x->step->down_us);
}

static int param_up(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return get_duration(x, n, path, true, &x->step->up_us);
}

static int param_for(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return get_duration(x, n, path, true, &x->step->for_us);
}

enum { P_AT = 1, P_TARGET = 2, P_FAILURE = 4, P_TIMEOUT = 8, P_DOWN = 16, P_UP = 32, P_FOR = 64 };

static const struct {
    const char *name;
    unsigned bit;
    handler fn;
} params[] = {
    {"at", P_AT, param_at},
    {"target", P_TARGET, param_target},
    {"failure", P_FAILURE, param_failure},
    {"timeout", P_TIMEOUT, param_timeout},
    {"down", P_DOWN, param_down},
    {"up", P_UP, param_up},
    {"for", P_FOR, param_for},
};
#define N_PARAMS (sizeof params / sizeof params[0])

/* ---- Step actions ---------------------------------------------------------------------------- */

static int act_shape(struct ctx *x, const yaml_node_t *n, const char *path)
{
    const char *s = scalar(n);
    char list[256], got[SHOW_MAX + 16];
    size_t used = 0;
    if (s != NULL && chaos_shape_from_name(s, &x->step->shape) == 0) {
        return 0;
    }
    for (int i = CHAOS_SHAPE_ISOLATE; i <= CHAOS_SHAPE_ONE_WAY_TO && used < sizeof list; i++) {
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                 chaos_shape_name((enum chaos_shape)i));
    }
    return fail(x, line_of(n), path, "unknown shape %s (%s)", show(n, got, sizeof got), list);
}

static int act_fault(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return get_text(x, n, path, x->step->text, sizeof x->step->text);
}

static int act_heal(struct ctx *x, const yaml_node_t *n, const char *path)
{
    const char *s = scalar(n);
    if (s == NULL || strcmp(s, "true") != 0) {
        return fail_expected(x, n, path, "true");
    }
    return 0;
}

static int act_process(struct ctx *x, const yaml_node_t *n, const char *path)
{
    static const char *const names[] = {"coordinator", "postgres", "region", "redis", "dns", NULL};
    int i;
    if (get_choice(x, n, path, names, &i) != 0) {
        return -1;
    }
    snprintf(x->step->what, sizeof x->step->what, "%s", names[i]);
    return 0;
}

static int act_point(struct ctx *x, const yaml_node_t *n, const char *path)
{
    if (get_text(x, n, path, x->step->point, sizeof x->step->point) != 0) {
        return -1;
    }
    if (!is_name(x->step->point, "-_")) {
        return fail_expected(x, n, path, "a fault point name of a-z, 0-9, '-' and '_'");
    }
    return 0;
}

static int act_dns(struct ctx *x, const yaml_node_t *n, const char *path)
{
    static const char *const names[] = {"down", "up", "429", NULL};
    int i;
    if (get_choice(x, n, path, names, &i) != 0) {
        return -1;
    }
    snprintf(x->step->what, sizeof x->step->what, "%s", names[i]);
    return 0;
}

/* The event name goes to what (and to text, for messages). */
static int act_wait(struct ctx *x, const yaml_node_t *n, const char *path)
{
    static const char *const names[] = {"failover-decided", "failover-promoted", "failover-done",
                                        "settled", NULL};
    int i;
    if (get_choice(x, n, path, names, &i) != 0) {
        return -1;
    }
    snprintf(x->step->text, sizeof x->step->text, "%s", names[i]);
    snprintf(x->step->what, sizeof x->step->what, "%s", names[i]);
    return 0;
}

static const struct action {
    const char *name;
    enum chaos_step_kind kind;
    handler fn;
    unsigned allowed, required;
} actions[] = {
    {"nemesis", CHAOS_STEP_NEMESIS, act_shape, P_AT | P_TARGET | P_FAILURE, P_TARGET},
    {"fault", CHAOS_STEP_FAULT, act_fault, P_AT | P_FAILURE, 0},
    {"heal", CHAOS_STEP_HEAL, act_heal, P_AT, 0},
    {"kill", CHAOS_STEP_KILL, act_process, P_AT | P_TARGET | P_FAILURE, P_TARGET},
    {"freeze", CHAOS_STEP_FREEZE, act_process, P_AT | P_TARGET | P_FAILURE, P_TARGET},
    {"thaw", CHAOS_STEP_THAW, act_process, P_AT | P_TARGET, P_TARGET},
    {"restart", CHAOS_STEP_RESTART, act_process, P_AT | P_TARGET | P_FAILURE, P_TARGET},
    {"flap", CHAOS_STEP_FLAP, act_shape, P_AT | P_TARGET | P_FAILURE | P_DOWN | P_UP | P_FOR,
     P_TARGET | P_DOWN | P_UP | P_FOR},
    {"fault_point", CHAOS_STEP_FAULT_POINT, act_point, P_AT | P_TARGET | P_FAILURE, P_TARGET},
    {"dns", CHAOS_STEP_DNS, act_dns, P_AT, 0},
    {"wait", CHAOS_STEP_WAIT, act_wait, P_AT | P_TIMEOUT, P_TIMEOUT},
};
#define N_ACTIONS (sizeof actions / sizeof actions[0])

/* ---- Steps ----------------------------------------------------------------------------------- */

static const struct action *find_action(const char *name)
{
    for (size_t i = 0; i < N_ACTIONS; i++) {
        if (strcmp(actions[i].name, name) == 0) {
            return &actions[i];
        }
    }
    return NULL;
}

static const char *action_list(char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_ACTIONS && used < size; i++) {
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", actions[i].name);
    }
    return buf;
}

/* The keys a step with action `a` takes: "kill, at, target, failure". */
static const char *step_keys(const struct action *a, unsigned mask, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "%s", a->name);
    for (size_t i = 0; i < N_PARAMS && used < size; i++) {
        if (mask & params[i].bit) {
            used += (size_t)snprintf(buf + used, size - used, ", %s", params[i].name);
        }
    }
    return buf;
}

/* The one action key of a step mapping, or a message. */
static const struct action *step_action(struct ctx *x, const yaml_node_t *map, const char *path)
{
    const struct action *found = NULL;
    unsigned long found_line = 0;
    char child[PATH_TEXT_MAX], list[160];
    for (const yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *kn = yaml_document_get_node(x->doc, p->key);
        const struct action *a = find_action(key_text(kn));
        if (a == NULL) {
            continue;
        }
        if (found != NULL) {
            join_path(child, sizeof child, path, a->name);
            fail(x, line_of(kn), child,
                 "a second action key (the step already has \"%s\" at line %lu); a step has "
                 "exactly one",
                 found->name, found_line);
            return NULL;
        }
        found = a;
        found_line = line_of(kn);
    }
    if (found == NULL) {
        fail(x, line_of(map), path, "expected one action key (%s), got none",
             action_list(list, sizeof list));
    }
    return found;
}

/* kill/freeze/thaw/restart of dns take no target: the lab has one DNS server. */
static unsigned step_allowed(const struct action *a, const struct chaos_step *st, bool required)
{
    unsigned mask = required ? a->required : a->allowed;
    if (a->fn == act_process && strcmp(st->what, "dns") == 0) {
        mask &= ~(unsigned)P_TARGET;
    }
    return mask;
}

static int step_param(struct ctx *x, const struct action *a, const yaml_node_t *kn,
                      const yaml_node_t *vn, const char *path, unsigned *seen)
{
    char child[PATH_TEXT_MAX], list[160];
    size_t i = 0;
    while (i < N_PARAMS && strcmp(params[i].name, key_text(kn)) != 0) {
        i++;
    }
    join_path(child, sizeof child, path, key_text(kn));
    if (i == N_PARAMS || !(a->allowed & params[i].bit)) {
        return fail(x, line_of(kn), child, "unknown key in a %s step; expected one of: %s", a->name,
                    step_keys(a, a->allowed, list, sizeof list));
    }
    if (*seen & params[i].bit) {
        return fail(x, line_of(kn), child, "duplicate key");
    }
    *seen |= params[i].bit;
    return params[i].fn(x, vn, child);
}

static bool default_failure(const struct chaos_step *st)
{
    if (st->target != CHAOS_TARGET_PRIMARY) {
        return false;
    }
    if (st->kind == CHAOS_STEP_KILL || st->kind == CHAOS_STEP_FREEZE) {
        return strcmp(st->what, "coordinator") == 0 || strcmp(st->what, "postgres") == 0 ||
               strcmp(st->what, "region") == 0;
    }
    if (st->kind == CHAOS_STEP_NEMESIS) {
        return st->shape == CHAOS_SHAPE_ISOLATE || st->shape == CHAOS_SHAPE_ONE_WAY_FROM;
    }
    return false;
}

/* Required keys present, none that the action's value rules out, the failure default. */
static int step_finish(struct ctx *x, const struct action *a, const yaml_node_t *map, unsigned seen)
{
    unsigned missing = step_allowed(a, x->step, true) & ~seen;
    if ((seen & P_TARGET) && !(step_allowed(a, x->step, false) & P_TARGET)) {
        return fail(x, x->target_line, x->action_path, "takes no target with %s", x->step->what);
    }
    for (size_t i = 0; i < N_PARAMS; i++) {
        if (missing & params[i].bit) {
            return fail(x, line_of(map), x->action_path, "missing required key \"%s\"",
                        params[i].name);
        }
    }
    if (!(seen & P_FAILURE)) {
        x->step->failure = default_failure(x->step);
    }
    return 0;
}

static int walk_step(struct ctx *x, const yaml_node_t *map, const char *path)
{
    const struct action *a;
    unsigned seen = 0;

    if (map->type != YAML_MAPPING_NODE) {
        return fail_expected(x, map, path, "a mapping with one action key");
    }
    if ((a = step_action(x, map, path)) == NULL) {
        return -1;
    }
    memset(x->step, 0, sizeof *x->step);
    x->step->kind = a->kind;
    x->step->line = (unsigned)line_of(map);
    x->step->relative = true;
    x->step->target = CHAOS_TARGET_NONE;
    x->action = a->name;
    x->target_line = 0;
    join_path(x->action_path, sizeof x->action_path, path, a->name);
    for (const yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *kn = yaml_document_get_node(x->doc, p->key);
        const yaml_node_t *vn = yaml_document_get_node(x->doc, p->value);
        int rv = find_action(key_text(kn)) == a ? a->fn(x, vn, x->action_path)
                                                : step_param(x, a, kn, vn, path, &seen);
        if (rv != 0) {
            return rv;
        }
    }
    return step_finish(x, a, map, seen);
}

static int top_steps(struct ctx *x, const yaml_node_t *n, const char *path)
{
    char child[24]; /* "steps[47]" */
    (void)path;
    if (n->type != YAML_SEQUENCE_NODE) {
        return fail_expected(x, n, "steps", "a sequence of steps");
    }
    long count = n->data.sequence.items.top - n->data.sequence.items.start;
    if (count < 1 || count > CHAOS_MAX_STEPS) {
        return fail(x, line_of(n), "steps", "expected 1 to %d steps, got %ld", CHAOS_MAX_STEPS,
                    count);
    }
    for (unsigned i = 0; i < (unsigned)count; i++) {
        const yaml_node_t *item = yaml_document_get_node(x->doc, n->data.sequence.items.start[i]);
        snprintf(child, sizeof child, "steps[%u]", i);
        x->step = &x->s->steps[i];
        x->s->n_steps = i + 1;
        if (walk_step(x, item, child) != 0) {
            return -1;
        }
    }
    return 0;
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
    {"steps", top_steps, true},
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
        return fail(x, 1, "", "expected a mapping of scenario keys, got an empty document");
    }
    if (root->type != YAML_MAPPING_NODE) {
        return fail_expected(x, root, "", "a mapping of scenario keys");
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

const char *chaos_step_kind_name(enum chaos_step_kind k)
{
    for (size_t i = 0; i < N_ACTIONS; i++) {
        if (actions[i].kind == k) {
            return actions[i].name;
        }
    }
    return "?";
}

const char *chaos_target_name(enum chaos_target t)
{
    for (size_t i = 0; i < N_NAMED_TARGETS; i++) {
        if (named_targets[i].target == t) {
            return named_targets[i].name;
        }
    }
    return t == CHAOS_TARGET_REGION ? "region" : t == CHAOS_TARGET_NONE ? "none" : "?";
}
