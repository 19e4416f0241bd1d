/*
 * The scenario file parser's parts (chaos.h chaos_scenario_load, docs/chaos.md "Writing a
 * scenario"):
 *
 * scenario.c        loading, the errors, scalars and mappings, the top-level keys and the lab,
 *                   workload and expect mappings
 * scenario_steps.c  the steps: their actions and parameters, the names of step kinds and targets
 *
 * What they share: the parse in progress, a key's handler, and the helpers that read a node's
 * value or report an error about it. Every handler returns 0, or -1 with the message in x->why.
 */
#ifndef AFC_SCENARIO_INTERNAL_H
#define AFC_SCENARIO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "chaos.h"

#define PATH_TEXT_MAX 64 /* "steps[47].fault_point" */
#define SHOW_MAX      40 /* characters of a value quoted back */

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

/* Errors (scenario.c): "FILE:LINE: PATH: message" into x->why (no "PATH: " at the top level);
 * return -1. */
int scenario_fail(struct ctx *x, unsigned long line, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "expected WHAT, got " and how the node is named (scenario_show). */
int scenario_fail_expected(struct ctx *x, const yaml_node_t *n, const char *path, const char *what);
/* A node's line, counted from 1. */
unsigned long scenario_line_of(const yaml_node_t *n);
/* How a node is named after "got ": "a mapping", "a sequence", "nothing" or the quoted value. */
const char *scenario_show(const yaml_node_t *n, char *buf, size_t size);

/* Scalars (scenario.c): the text of a non-empty scalar without embedded NULs, or NULL. */
const char *scenario_scalar(const yaml_node_t *n);
int scenario_get_text(struct ctx *x, const yaml_node_t *n, const char *path, char *dst,
                      size_t size);
/* Non-empty, of a-z, 0-9 and the characters in extra. */
bool scenario_is_name(const char *s, const char *extra);
int scenario_get_bool(struct ctx *x, const yaml_node_t *n, const char *path, bool *out);
/* "250ms", "3s", "2m"; with plus != NULL also "+2s". At most a day. */
bool scenario_parse_duration(const char *s, bool *plus, int64_t *us);
int scenario_get_duration(struct ctx *x, const yaml_node_t *n, const char *path, bool positive,
                          int64_t *out);
/* Index of the scalar in names (NULL-terminated), or a message listing them. */
int scenario_get_choice(struct ctx *x, const yaml_node_t *n, const char *path,
                        const char *const *names, int *out);

/* Mappings (scenario.c): PATH.NAME into dst (cut if longer, false then); a key's text ("?"
 * when not a scalar). */
bool scenario_join_path(char *dst, size_t size, const char *path, const char *name);
const char *scenario_key_text(const yaml_node_t *kn);

/* The `steps` key (scenario_steps.c): every step of the sequence into x->s->steps. */
int scenario_top_steps(struct ctx *x, const yaml_node_t *n, const char *path);

#endif
