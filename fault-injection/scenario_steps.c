/*
 * The steps of a scenario file (scenario.c, docs/chaos.md "Writing a scenario"): the `steps:`
 * sequence -> struct chaos_step, and the names of step kinds and targets.
 *
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
 *
 * Each step has exactly one action key and only the parameter keys its action takes: `at` for
 * every step; `failure` for nemesis, fault, kill, freeze, restart, flap and fault_point; `target`
 * as above; `timeout` for wait; `down`, `up` and `for` for flap. `failure` defaults to true for a
 * kill or freeze of the primary's coordinator, postgres or region and for a nemesis isolate or
 * one-way-from around the primary, false otherwise. Targets: primary, leader, replica,
 * new-primary, old-primary, last (chaos.h) or a region name. A wait step keeps its event
 * ("failover-decided", ...) in step->what (and step->text). Durations: scenario.c.
 *
 * Data flow: walk_step() walks a step mapping like walk_map() (scenario.c) a mapping, against
 * the keys its action allows: the action's handler and the parameter handlers store the values.
 * Pure: libc and libyaml.
 */
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "chaos.h"
#include "scenario_internal.h"

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
    const char *s = scenario_scalar(n);
    if (s == NULL || !scenario_parse_duration(s, &x->step->relative, &x->step->at_us)) {
        return scenario_fail_expected(x, n, path,
                                      "a time such as 5s, or +2s after the previous step");
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
    if (scenario_scalar(n) == NULL) {
        return scenario_fail(x, scenario_line_of(n), x->action_path,
                             "expected a target (%s), got %s", list,
                             scenario_show(n, got, sizeof got));
    }
    return scenario_fail(x, scenario_line_of(n), x->action_path, "unknown target %s (%s)",
                         scenario_show(n, got, sizeof got), list);
}

/* Target errors name the step's action ("steps[2].kill: unknown target ..."). */
static int param_target(struct ctx *x, const yaml_node_t *n, const char *path)
{
    const char *s = scenario_scalar(n);
    (void)path;
    x->target_line = scenario_line_of(n);
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
    return scenario_get_bool(x, n, path, &x->step->failure);
}

static int param_timeout(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return scenario_get_duration(x, n, path, true, &x->step->timeout_us);
}

static int param_down(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return scenario_get_duration(x, n, path, true, &x->step->down_us);
}

static int param_up(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return scenario_get_duration(x, n, path, true, &x->step->up_us);
}

static int param_for(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return scenario_get_duration(x, n, path, true, &x->step->for_us);
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
    const char *s = scenario_scalar(n);
    char list[256], got[SHOW_MAX + 16];
    size_t used = 0;
    if (s != NULL && chaos_shape_from_name(s, &x->step->shape) == 0) {
        return 0;
    }
    for (int i = CHAOS_SHAPE_ISOLATE; i <= CHAOS_SHAPE_ONE_WAY_TO && used < sizeof list; i++) {
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                 chaos_shape_name((enum chaos_shape)i));
    }
    return scenario_fail(x, scenario_line_of(n), path, "unknown shape %s (%s)",
                         scenario_show(n, got, sizeof got), list);
}

static int act_fault(struct ctx *x, const yaml_node_t *n, const char *path)
{
    return scenario_get_text(x, n, path, x->step->text, sizeof x->step->text);
}

static int act_heal(struct ctx *x, const yaml_node_t *n, const char *path)
{
    const char *s = scenario_scalar(n);
    if (s == NULL || strcmp(s, "true") != 0) {
        return scenario_fail_expected(x, n, path, "true");
    }
    return 0;
}

static int act_process(struct ctx *x, const yaml_node_t *n, const char *path)
{
    static const char *const names[] = {"coordinator", "postgres", "region", "redis", "dns", NULL};
    int i;
    if (scenario_get_choice(x, n, path, names, &i) != 0) {
        return -1;
    }
    snprintf(x->step->what, sizeof x->step->what, "%s", names[i]);
    return 0;
}

static int act_point(struct ctx *x, const yaml_node_t *n, const char *path)
{
    if (scenario_get_text(x, n, path, x->step->point, sizeof x->step->point) != 0) {
        return -1;
    }
    if (!scenario_is_name(x->step->point, "-_")) {
        return scenario_fail_expected(x, n, path, "a fault point name of a-z, 0-9, '-' and '_'");
    }
    return 0;
}

static int act_dns(struct ctx *x, const yaml_node_t *n, const char *path)
{
    static const char *const names[] = {"down", "up", "429", NULL};
    int i;
    if (scenario_get_choice(x, n, path, names, &i) != 0) {
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
    if (scenario_get_choice(x, n, path, names, &i) != 0) {
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
    {"switchover", CHAOS_STEP_SWITCHOVER, act_heal, P_AT | P_TARGET | P_FAILURE, P_TARGET},
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
        const struct action *a = find_action(scenario_key_text(kn));
        if (a == NULL) {
            continue;
        }
        if (found != NULL) {
            scenario_join_path(child, sizeof child, path, a->name);
            scenario_fail(
                x, scenario_line_of(kn), child,
                "a second action key (the step already has \"%s\" at line %lu); a step has "
                "exactly one",
                found->name, found_line);
            return NULL;
        }
        found = a;
        found_line = scenario_line_of(kn);
    }
    if (found == NULL) {
        scenario_fail(x, scenario_line_of(map), path, "expected one action key (%s), got none",
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
    while (i < N_PARAMS && strcmp(params[i].name, scenario_key_text(kn)) != 0) {
        i++;
    }
    scenario_join_path(child, sizeof child, path, scenario_key_text(kn));
    if (i == N_PARAMS || !(a->allowed & params[i].bit)) {
        return scenario_fail(x, scenario_line_of(kn), child,
                             "unknown key in a %s step; expected one of: %s", a->name,
                             step_keys(a, a->allowed, list, sizeof list));
    }
    if (*seen & params[i].bit) {
        return scenario_fail(x, scenario_line_of(kn), child, "duplicate key");
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
        return scenario_fail(x, x->target_line, x->action_path, "takes no target with %s",
                             x->step->what);
    }
    for (size_t i = 0; i < N_PARAMS; i++) {
        if (missing & params[i].bit) {
            return scenario_fail(x, scenario_line_of(map), x->action_path,
                                 "missing required key \"%s\"", params[i].name);
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
        return scenario_fail_expected(x, map, path, "a mapping with one action key");
    }
    if ((a = step_action(x, map, path)) == NULL) {
        return -1;
    }
    memset(x->step, 0, sizeof *x->step);
    x->step->kind = a->kind;
    x->step->line = (unsigned)scenario_line_of(map);
    x->step->relative = true;
    x->step->target = CHAOS_TARGET_NONE;
    x->action = a->name;
    x->target_line = 0;
    scenario_join_path(x->action_path, sizeof x->action_path, path, a->name);
    for (const yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *kn = yaml_document_get_node(x->doc, p->key);
        const yaml_node_t *vn = yaml_document_get_node(x->doc, p->value);
        int rv = find_action(scenario_key_text(kn)) == a ? a->fn(x, vn, x->action_path)
                                                         : step_param(x, a, kn, vn, path, &seen);
        if (rv != 0) {
            return rv;
        }
    }
    return step_finish(x, a, map, seen);
}

int scenario_top_steps(struct ctx *x, const yaml_node_t *n, const char *path)
{
    char child[24]; /* "steps[47]" */
    (void)path;
    if (n->type != YAML_SEQUENCE_NODE) {
        return scenario_fail_expected(x, n, "steps", "a sequence of steps");
    }
    long count = n->data.sequence.items.top - n->data.sequence.items.start;
    if (count < 1 || count > CHAOS_MAX_STEPS) {
        return scenario_fail(x, scenario_line_of(n), "steps", "expected 1 to %d steps, got %ld",
                             CHAOS_MAX_STEPS, count);
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
