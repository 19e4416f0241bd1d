/*
 * One scenario step at a time (run.h, docs/chaos.md "Writing a scenario"). Targets are resolved
 * when the step runs, from what the coordinators answer then (the primary and the leader move).
 * Network faults go to the fault proxy's control API as one whole set (atomic); process faults
 * go through `aragora-chaos lab`, which signals only processes it recorded and still recognises.
 * Every fault becomes an interval of the record (the report's "faults" lane); a step marked
 * `failure` also notes the primary and epoch it found, from which RTO and waits are counted.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "run.h"

#define WAIT_POLL_MS   200
#define TARGET_WAIT_MS 15000

static const char *const what_names[RUN_WHATS] = {"coordinator", "postgres", "region", "redis",
                                                  "dns"};

static int what_index(const char *what)
{
    for (int i = 0; i < RUN_WHATS; i++)
        if (strcmp(what_names[i], what) == 0)
            return i;
    return -1;
}

static void sleep_ms(unsigned ms)
{
    usleep((useconds_t)ms * 1000);
}

__attribute__((format(printf, 3, 4))) static int step_error(struct run_ctx *x, unsigned k,
                                                            const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(x->schedule_error, sizeof x->schedule_error, "step %u (%s, line %u): %s", k + 1,
             chaos_step_kind_name(x->sc.steps[k].kind), x->sc.steps[k].line, msg);
    fprintf(stderr, "aragora-chaos: run: %s\n", x->schedule_error);
    return -1;
}

pid_t run_spawn(struct run_ctx *x, const char *const *argv, const char *log)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid; /* the child's, or -1 */
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    execv(x->self, (char *const *)argv);
    _exit(127);
}

int run_self(struct run_ctx *x, const char *const *args)
{
    char log[LAB_PATH_MAX + 16];
    const char *argv[24];
    unsigned n = 0;
    argv[n++] = x->self;
    for (unsigned i = 0; args[i] != NULL && n < 23; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    snprintf(log, sizeof log, "%s/runner.log", x->dir);
    pid_t pid = run_spawn(x, argv, log);
    if (pid < 0)
        return -1;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int run_lab_verb(struct run_ctx *x, const char *verb, const char *region, const char *what)
{
    const char *args[10] = {"lab", verb, "--dir", x->lab_dir};
    unsigned n = 4;
    if (region != NULL)
        args[n++] = region;
    if (what != NULL) {
        args[n++] = "--what";
        args[n++] = what;
    }
    args[n] = NULL;
    return run_self(x, args);
}

/* ---- the proxy's control API ---- */

static int put_faults(struct run_ctx *x, const char *text, char *why, size_t why_size)
{
    char url[96], *answer = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/faults", x->lab.proxy.control_port);
    json_t *body = json_pack("{s:s}", "faults", text);
    char *b = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    long status = run_http("PUT", url, NULL, b, 5000, &answer);
    free(b);
    if (status != 200) {
        json_t *doc = answer != NULL ? json_loads(answer, 0, NULL) : NULL;
        const char *e = json_string_value(json_object_get(doc, "error"));
        snprintf(why, why_size, "%s", e != NULL ? e : status ? "refused" : "the proxy is down");
        json_decref(doc);
    }
    free(answer);
    return status == 200 ? 0 : -1;
}

static int clear_faults(struct run_ctx *x)
{
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/faults", x->lab.proxy.control_port);
    return run_http("DELETE", url, NULL, NULL, 5000, NULL) == 200 ? 0 : -1;
}

/* ---- targets ---- */

static int find_target(struct run_ctx *x, const struct chaos_step *s)
{
    int primary, leader;
    uint64_t epoch;
    if (s->target == CHAOS_TARGET_REGION)
        return (int)s->target_region;
    if (s->target == CHAOS_TARGET_OLD_PRIMARY)
        return x->primary_before;
    if (s->target == CHAOS_TARGET_LAST)
        return x->last_target;
    uint64_t deadline = (uint64_t)run_now_us() + TARGET_WAIT_MS * 1000ULL;
    do { /* the leader may be between terms: wait for one */
        run_current_view(x, &primary, &epoch, &leader);
        if (s->target == CHAOS_TARGET_PRIMARY || s->target == CHAOS_TARGET_NEW_PRIMARY) {
            if (primary >= 0)
                return primary;
        } else if (s->target == CHAOS_TARGET_LEADER) {
            if (leader >= 0)
                return leader;
        } else if (s->target == CHAOS_TARGET_REPLICA && primary >= 0) {
            for (unsigned i = 0; i < x->lab.n_regions; i++)
                if ((int)i != primary && (int)i != leader)
                    return (int)i;
            for (unsigned i = 0; i < x->lab.n_regions; i++)
                if ((int)i != primary)
                    return (int)i;
        }
        sleep_ms(WAIT_POLL_MS);
    } while ((uint64_t)run_now_us() < deadline);
    return -1;
}

static int resolve_target(struct run_ctx *x, const struct chaos_step *s, const char **label)
{
    *label = chaos_target_name(s->target);
    int r = find_target(x, s);
    if (r >= 0)
        x->last_target = r;
    return r;
}

static void note_failure(struct run_ctx *x)
{
    int leader;
    run_current_view(x, &x->primary_before, &x->epoch_before, &leader);
    x->failure_us = run_now_us();
}

/* ---- the steps ---- */

#define DNS_429_ITEM "dns 429 retry-after 2s"

/* The network faults and, while a dns: 429 step is in force, the DNS API's throttling. */
static int put_all_faults(struct run_ctx *x, char *why, size_t why_size)
{
    char text[CHAOS_TEXT_MAX + 64];
    bool net = x->net_text[0] != '\0' && strcmp(x->net_text, "none") != 0;
    snprintf(text, sizeof text, "%s%s%s", net ? x->net_text : "", net && x->dns_429 ? ", " : "",
             x->dns_429 ? DNS_429_ITEM : "");
    return put_faults(x, text, why, why_size);
}

static int apply_network(struct run_ctx *x, unsigned k, const char *text, const char *label)
{
    char why[512], before[CHAOS_TEXT_MAX];
    snprintf(before, sizeof before, "%s", x->net_text);
    snprintf(x->net_text, sizeof x->net_text, "%s", text);
    if (put_all_faults(x, why, sizeof why) != 0) {
        snprintf(x->net_text, sizeof x->net_text, "%s", before); /* nothing changed */
        return step_error(x, k, "the proxy refused the fault set: %s", why);
    }
    run_end_interval(x, &x->net_iv);
    if (strcmp(text, "") != 0 && strcmp(text, "none") != 0)
        x->net_iv = run_add_interval(x, label, x->sc.steps[k].failure);
    printf("  t+%6.1fs  %s\n", (double)(run_now_us() - x->t0_us) / 1e6, label);
    fflush(stdout);
    return 0;
}

static int shape_text(struct run_ctx *x, unsigned k, char *out, size_t size, char *label,
                      size_t label_size)
{
    const struct chaos_step *s = &x->sc.steps[k];
    const char *tl;
    char why[256];
    int node = resolve_target(x, s, &tl);
    if (node < 0)
        return step_error(x, k, "no %s to aim at", tl);
    if (chaos_shape_faults(s->shape, x->names, x->lab.n_regions, (unsigned)node, x->sc.seed, out,
                           size, why, sizeof why) != 0)
        return step_error(x, k, "%s", why);
    snprintf(label, label_size, "%s %s (%s): %s", chaos_shape_name(s->shape), x->names[node], tl,
             out);
    return 0;
}

static int step_nemesis(struct run_ctx *x, unsigned k)
{
    char text[CHAOS_TEXT_MAX], label[CHAOS_TEXT_MAX + 128];
    if (shape_text(x, k, text, sizeof text, label, sizeof label) != 0)
        return -1;
    return apply_network(x, k, text, label);
}

static int step_flap(struct run_ctx *x, unsigned k)
{
    const struct chaos_step *s = &x->sc.steps[k];
    char text[CHAOS_TEXT_MAX], label[CHAOS_TEXT_MAX + 128], why[512];
    if (shape_text(x, k, text, sizeof text, label, sizeof label) != 0)
        return -1;
    int64_t end = run_now_us() + s->for_us;
    unsigned n = 0;
    while (run_now_us() < end) {
        if (apply_network(x, k, text, label) != 0)
            return -1;
        usleep((useconds_t)s->down_us); /* the fault's scheduled length */
        x->net_text[0] = '\0';
        if (put_all_faults(x, why, sizeof why) != 0)
            return step_error(x, k, "the proxy did not clear the faults: %s", why);
        run_end_interval(x, &x->net_iv);
        usleep((useconds_t)s->up_us);
        n++;
    }
    printf("  t+%6.1fs  flapped %u times\n", (double)(run_now_us() - x->t0_us) / 1e6, n);
    return 0;
}

static int step_process(struct run_ctx *x, unsigned k)
{
    const struct chaos_step *s = &x->sc.steps[k];
    static const char *const verbs[] = {[CHAOS_STEP_KILL] = "kill",
                                        [CHAOS_STEP_FREEZE] = "freeze",
                                        [CHAOS_STEP_THAW] = "thaw",
                                        [CHAOS_STEP_RESTART] = "restart"};
    const char *verb = verbs[s->kind], *tl = "dns";
    int w = what_index(s->what);
    if (w < 0)
        return step_error(x, k, "cannot act on '%s'", s->what);
    int r = w == 4 ? 0 : resolve_target(x, s, &tl);
    if (r < 0)
        return step_error(x, k, "no %s to aim at", tl);
    const char *region = w == 4 ? "dns" : x->names[r];
    if (run_lab_verb(x, verb, region, w == 4 ? NULL : what_names[w]) != 0)
        return step_error(x, k, "aragora-chaos lab %s failed (see runner.log)", verb);
    char label[160];
    snprintf(label, sizeof label, "%s %s %s (%s)", verb, what_names[w], region, tl);
    if (s->kind == CHAOS_STEP_KILL || s->kind == CHAOS_STEP_FREEZE) {
        run_end_interval(x, &x->proc_iv[r][w]);
        x->proc_iv[r][w] = run_add_interval(x, label, s->failure);
        x->frozen[r][w] = s->kind == CHAOS_STEP_FREEZE;
    } else {
        run_end_interval(x, &x->proc_iv[r][w]);
        x->frozen[r][w] = false;
    }
    printf("  t+%6.1fs  %s\n", (double)(run_now_us() - x->t0_us) / 1e6, label);
    fflush(stdout);
    return 0;
}

static int step_fault_point(struct run_ctx *x, unsigned k)
{
    const struct chaos_step *s = &x->sc.steps[k];
    const char *tl;
    char url[256], body[128];
    int r = resolve_target(x, s, &tl);
    if (r < 0)
        return step_error(x, k, "no %s to aim at", tl);
    snprintf(url, sizeof url, "%s/v1/test/fault-points", x->lab.regions[r].api_url);
    snprintf(body, sizeof body, "{\"arm\":[\"%s\"]}", s->point);
    long status = run_http("POST", url, x->token, body, 5000, NULL);
    if (status != 200)
        return step_error(x, k, "arming the fault point failed (%s)",
                          status == 404 ? "not a test build: meson -Dfault_points=true"
                                        : "see the coordinator's log");
    printf("  t+%6.1fs  fault point %s armed on %s (%s)\n", (double)(run_now_us() - x->t0_us) / 1e6,
           s->point, x->names[r], tl);
    return 0;
}

/* A planned switchover, as an operator asks for it: any coordinator forwards it to the leader. */
static int step_switchover(struct run_ctx *x, unsigned k)
{
    const struct chaos_step *s = &x->sc.steps[k];
    const char *tl;
    char url[256], body[96], *answer = NULL;
    int r = resolve_target(x, s, &tl);
    if (r < 0)
        return step_error(x, k, "no %s to switch over to", tl);
    snprintf(body, sizeof body, "{\"to\":\"%s\"}", x->names[r]);
    long status = 0;
    int64_t asked = run_now_us(); /* the decision commits before the answer comes back */
    /* the first coordinator that answers at all decides (any one forwards to the leader) */
    for (unsigned i = 0; i < x->lab.n_regions && status == 0; i++) {
        free(answer);
        snprintf(url, sizeof url, "%s/v1/switchover", x->lab.regions[i].api_url);
        status = run_http("POST", url, x->token, body, 10000, &answer);
    }
    if (status < 200 || status > 299) {
        char why[200];
        snprintf(why, sizeof why, "%.180s", answer != NULL ? answer : "no coordinator answered");
        free(answer);
        return step_error(x, k, "the switchover was refused (%ld): %s", status, why);
    }
    free(answer);
    char label[96];
    snprintf(label, sizeof label, "switchover to %s (%s)", x->names[r], tl);
    run_end_interval(x, &x->switchover_iv);
    x->switchover_iv = run_add_interval(x, label, s->failure);
    if (x->switchover_iv >= 0)
        x->rec.intervals[x->switchover_iv].start_us = asked;
    printf("  t+%6.1fs  %s\n", (double)(run_now_us() - x->t0_us) / 1e6, label);
    fflush(stdout);
    return 0;
}

static int step_dns(struct run_ctx *x, unsigned k)
{
    const struct chaos_step *s = &x->sc.steps[k];
    if (x->lab.dns.mode == LAB_DNS_OFF)
        return step_error(x, k, "%s", "the lab has no DNS (lab: dns: none)");
    long *iv = &x->proc_iv[0][4];
    char why[512];
    if (strcmp(s->what, "429") == 0) {
        /* the fault layer fronts the PowerDNS API and answers 429 with Retry-After */
        if (x->lab.dns.mode != LAB_DNS_POWERDNS || !x->lab.proxy.enabled)
            return step_error(x, k, "%s",
                              "dns: 429 needs the PowerDNS API provider and a fault layer");
        x->dns_429 = true;
        if (put_all_faults(x, why, sizeof why) != 0) {
            x->dns_429 = false;
            return step_error(x, k, "the fault layer refused dns 429: %s", why);
        }
        run_end_interval(x, &x->dns_429_iv);
        x->dns_429_iv = run_add_interval(x, "DNS provider answers 429", false);
    } else if (strcmp(s->what, "down") == 0) {
        if (run_lab_verb(x, "kill", "dns", NULL) != 0)
            return step_error(x, k, "%s", "aragora-chaos lab kill dns failed");
        x->dns_down = true;
        run_end_interval(x, iv);
        *iv = run_add_interval(x, "DNS provider down", false);
    } else if (strcmp(s->what, "up") == 0) { /* ends whichever is in force */
        bool was_429 = x->dns_429;
        if (was_429) {
            x->dns_429 = false;
            if (put_all_faults(x, why, sizeof why) != 0)
                return step_error(x, k, "the fault layer did not end dns 429: %s", why);
            run_end_interval(x, &x->dns_429_iv);
        }
        if (x->dns_down || !was_429) {
            if (run_lab_verb(x, "restart", "dns", NULL) != 0)
                return step_error(x, k, "%s", "aragora-chaos lab restart dns failed");
            x->dns_down = false;
            run_end_interval(x, iv);
        }
    } else {
        return step_error(x, k, "dns: '%s' is not supported by the lab (down, 429, up)", s->what);
    }
    printf("  t+%6.1fs  DNS provider %s\n", (double)(run_now_us() - x->t0_us) / 1e6, s->what);
    return 0;
}

/* Every answering coordinator names the same primary and epoch. */
static bool settled(struct run_ctx *x)
{
    int primary = -2;
    uint64_t epoch = 0;
    unsigned answered = 0;
    for (unsigned i = 0; i < x->lab.n_regions; i++) {
        char url[256], *text = NULL;
        snprintf(url, sizeof url, "%s/v1/cluster", x->lab.regions[i].api_url);
        if (run_http("GET", url, NULL, NULL, 500, &text) != 200) {
            free(text);
            continue;
        }
        json_t *doc = json_loads(text, 0, NULL);
        free(text);
        int p = run_region_index(x, json_string_value(json_object_get(doc, "primary")));
        uint64_t e = (uint64_t)json_integer_value(json_object_get(doc, "epoch"));
        const char *step =
            json_string_value(json_object_get(json_object_get(doc, "failover"), "step"));
        bool busy = step != NULL && strcmp(step, "done") != 0 && strcmp(step, "aborted") != 0;
        json_decref(doc);
        if (busy || p < 0 || (primary != -2 && (p != primary || e != epoch)))
            return false;
        primary = p;
        epoch = e;
        answered++;
    }
    return answered > 0;
}

static int step_wait(struct run_ctx *x, unsigned k)
{
    const struct chaos_step *s = &x->sc.steps[k];
    int64_t start = run_now_us(), deadline = start + s->timeout_us;
    unsigned agreed = 0;
    while (run_now_us() < deadline) {
        if (strcmp(s->what, "settled") == 0) {
            agreed = settled(x) ? agreed + 1 : 0;
            if (agreed >= 3)
                break;
        } else if (run_latest_epoch(x, s->what) > x->epoch_before) {
            break;
        }
        sleep_ms(WAIT_POLL_MS);
    }
    double waited = (double)(run_now_us() - start) / 1e6;
    if (run_now_us() >= deadline)
        return step_error(x, k, "%s did not happen in time", s->what);
    run_end_interval(x, &x->switchover_iv);
    printf("  t+%6.1fs  %s (after %.1f s)\n", (double)(run_now_us() - x->t0_us) / 1e6, s->what,
           waited);
    fflush(stdout);
    return 0;
}

int run_step(struct run_ctx *x, unsigned k)
{
    const struct chaos_step *s = &x->sc.steps[k];
    if (s->failure)
        note_failure(x);
    switch (s->kind) {
    case CHAOS_STEP_FAULT:
        return apply_network(x, k, s->text, s->text);
    case CHAOS_STEP_NEMESIS:
        return step_nemesis(x, k);
    case CHAOS_STEP_HEAL:
        run_heal(x);
        printf("  t+%6.1fs  healed\n", (double)(run_now_us() - x->t0_us) / 1e6);
        return 0;
    case CHAOS_STEP_KILL:
    case CHAOS_STEP_FREEZE:
    case CHAOS_STEP_THAW:
    case CHAOS_STEP_RESTART:
        return step_process(x, k);
    case CHAOS_STEP_FLAP:
        return step_flap(x, k);
    case CHAOS_STEP_FAULT_POINT:
        return step_fault_point(x, k);
    case CHAOS_STEP_DNS:
        return step_dns(x, k);
    case CHAOS_STEP_WAIT:
        return step_wait(x, k);
    case CHAOS_STEP_SWITCHOVER:
        return step_switchover(x, k);
    }
    return step_error(x, k, "%s", "unknown step");
}

void run_heal(struct run_ctx *x)
{
    if (x->lab.proxy.enabled)
        clear_faults(x);
    x->net_text[0] = '\0';
    x->dns_429 = false;
    run_end_interval(x, &x->net_iv);
    run_end_interval(x, &x->dns_429_iv);
    for (unsigned r = 0; r < x->lab.n_regions; r++) {
        for (int w = 0; w < RUN_WHATS; w++) {
            if (!x->frozen[r][w])
                continue;
            run_lab_verb(x, "thaw", w == 4 ? "dns" : x->names[r], w == 4 ? NULL : what_names[w]);
            x->frozen[r][w] = false;
            run_end_interval(x, &x->proc_iv[r][w]);
        }
    }
}
