/*
 * `aragora-chaos run SCENARIO --dir DIR` (docs/chaos.md): bring a lab up in DIR/lab as the
 * scenario asks, start the workload on every region's PostgreSQL, run the steps on their
 * schedule while a sampler records what every coordinator says, let it settle, heal, wait (a
 * bounded time) for every coordinator, the DNS name and each Redis to agree, collect the
 * replicated history, the node events and the rows the final primary holds, run the checkers,
 * write DIR/report.json, report.md and timeline.svg, print the verdict, and take the lab down.
 * Exit status: 0 every check passed, 1 a check failed or the run could not complete, 2 usage.
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chaos_cmd.h"
#include "run.h"

#define DEFAULT_BASE_PORT   24000
#define READY_TIMEOUT_MS    30000
#define CONVERGE_DEFAULT_US (30 * 1000000LL)

static const char *const default_regions[] = {"us-east-2", "eu-west-1", "ap-south-1"};

static const char run_usage[] =
    "Usage: aragora-chaos run SCENARIO --dir DIR [--seed N] [--base-port P] [--keep] [--wan]\n"
    "                         [--long] [--netns]\n"
    "  Run a scenario file (docs/chaos.md): a lab in DIR/lab, a workload writing to every\n"
    "  region, the scenario's faults on schedule, then the checkers. Writes DIR/report.json,\n"
    "  DIR/report.md and DIR/timeline.svg and prints the verdict.\n"
    "  --seed N       override the scenario's seed (random shapes)\n"
    "  --base-port P  the lab's ports (default 24000; below 32768)\n"
    "  --keep         leave the lab running afterwards (aragora-chaos lab down --dir DIR/lab)\n"
    "  --wan          the WAN profile on every cross-region link, whatever the scenario says\n"
    "  --long         soak: the workload runs three times the scenario's duration\n"
    "  --netns        namespace mode (root): regions in network namespaces, faults in nftables\n"
    "Exit status: 0 every check passed, 1 a check failed or the run failed, 2 usage error.\n";

static void sleep_until_us(int64_t t)
{
    int64_t now;
    while ((now = run_now_us()) < t) /* the schedule's own time, not an awaited event */
        usleep((useconds_t)(t - now > 100000 ? 100000 : t - now));
}

static void sleep_ms(unsigned ms)
{
    usleep((useconds_t)ms * 1000);
}

/* ---- the lab ---- */

static int lab_up(struct run_ctx *x)
{
    char port[16];
    const char *args[24] = {"lab",         "up", "--dir",       x->lab_dir,
                            "--base-port", port, "--log-level", "info"};
    unsigned n = 8;
    snprintf(port, sizeof port, "%u", x->o.base_port);
    if (x->sc.sync)
        args[n++] = "--sync";
    if (!x->sc.fence)
        args[n++] = "--no-fence";
    if (x->sc.wan || x->o.wan)
        args[n++] = "--wan";
    if (x->o.netns)
        args[n++] = "--netns";
    if (!x->sc.redis)
        args[n++] = "--no-redis";
    if (strcmp(x->sc.dns, "none") == 0) {
        args[n++] = "--no-dns";
    } else {
        args[n++] = "--dns";
        args[n++] = x->sc.dns;
    }
    args[n] = NULL;
    printf("lab up in %s (%s replication, fence %s%s%s)...\n", x->lab_dir,
           x->sc.sync ? "synchronous" : "asynchronous", x->sc.fence ? "on" : "off",
           x->sc.wan || x->o.wan ? ", WAN profile" : "", x->o.netns ? ", network namespaces" : "");
    fflush(stdout);
    if (run_self(x, args) != 0) {
        fprintf(stderr, "aragora-chaos: run: lab up failed; see %s/runner.log\n", x->dir);
        return -1;
    }
    if (lab_load(&x->lab, x->lab_dir) != 0)
        return -1;
    if (!x->lab.proxy.enabled || !x->lab.postgres) {
        fprintf(stderr, "aragora-chaos: run: the lab has no fault proxy or no PostgreSQL\n");
        return -1;
    }
    for (unsigned i = 0; i < x->lab.n_regions; i++)
        x->names[i] = x->lab.regions[i].name;
    FILE *f = fopen(x->lab.token_file, "r");
    if (f != NULL) {
        if (fgets(x->token, sizeof x->token, f) == NULL)
            x->token[0] = '\0';
        fclose(f);
    }
    x->token[strcspn(x->token, "\r\n")] = '\0';
    return 0;
}

static void lab_down(struct run_ctx *x)
{
    if (x->o.keep) {
        printf("lab left running: aragora-chaos lab down --dir %s\n", x->lab_dir);
        return;
    }
    const char *args[] = {"lab", "down", "--dir", x->lab_dir, NULL};
    if (run_self(x, args) != 0)
        fprintf(stderr, "aragora-chaos: run: lab down failed; see %s/runner.log\n", x->dir);
}

static int create_table(struct run_ctx *x)
{
    char out[512];
    static const char sql[] =
        "CREATE TABLE IF NOT EXISTS chaos_writes (region text NOT NULL, seq bigint NOT NULL, "
        "at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (region, seq))";
    if (lab_pg_query(&x->lab, &x->lab.regions[0].pg, sql, out, sizeof out) != 0) {
        fprintf(stderr, "aragora-chaos: run: creating chaos_writes on %s: %s\n", x->names[0], out);
        return -1;
    }
    return 0;
}

/* ---- the workload ---- */

static int start_workload(struct run_ctx *x)
{
    char targets[LAB_MAX_REGIONS][200], interval[16], timeout[16], out[LAB_PATH_MAX + 32];
    char ready[LAB_PATH_MAX + 32], log[LAB_PATH_MAX + 32];
    const char *argv[64] = {x->self, "workload"};
    unsigned n = 2;
    for (unsigned i = 0; i < x->lab.n_regions; i++) {
        char conninfo[160];
        lab_pg_conninfo(&x->lab.regions[i].pg, x->lab.regions[i].pg.host, conninfo,
                        sizeof conninfo);
        snprintf(targets[i], sizeof targets[i], "%s=%s", x->names[i], conninfo);
        argv[n++] = "--target";
        argv[n++] = targets[i];
    }
    snprintf(interval, sizeof interval, "%u", x->sc.interval_ms);
    snprintf(timeout, sizeof timeout, "%u", x->sc.timeout_ms);
    snprintf(out, sizeof out, "%s/history.jsonl", x->dir);
    snprintf(ready, sizeof ready, "%s/workload.ready", x->dir);
    snprintf(log, sizeof log, "%s/workload.log", x->dir);
    const char *tail[] = {
        "--out", out, "--interval-ms", interval, "--timeout-ms", timeout, "--ready-file",
        ready,   NULL};
    for (unsigned i = 0; tail[i] != NULL; i++)
        argv[n++] = tail[i];
    argv[n] = NULL;
    unlink(ready);
    pid_t pid = run_spawn(x, argv, log);
    if (pid < 0)
        return -1;
    x->workload = pid;
    int64_t deadline = run_now_us() + READY_TIMEOUT_MS * 1000LL;
    while (access(ready, F_OK) != 0) {
        if (run_now_us() > deadline || waitpid(pid, NULL, WNOHANG) == pid) {
            fprintf(stderr, "aragora-chaos: run: the workload did not start; see %s\n", log);
            x->workload = 0;
            return -1;
        }
        sleep_ms(20);
    }
    return 0;
}

static void stop_workload(struct run_ctx *x)
{
    if (x->workload <= 0)
        return;
    kill(x->workload, SIGTERM);
    int status;
    while (waitpid(x->workload, &status, 0) < 0 && errno == EINTR)
        ;
    x->workload = 0;
}

/* ---- measurements of the coordinators (bench) ---- */

static bool proc_cpu_rss(pid_t pid, double *cpu_s, double *rss_kib)
{
    char buf[2048];
    const char *p = lab_proc_stat(pid, buf, sizeof buf);
    unsigned long utime = 0, stime = 0;
    long rss = 0;
    if (p == NULL || sscanf(p,
                            "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d "
                            "%*d %*d %*u %*u %ld",
                            &utime, &stime, &rss) != 3)
        return false;
    *cpu_s = (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
    *rss_kib = (double)rss * (double)sysconf(_SC_PAGESIZE) / 1024.0;
    return true;
}

/* ---- the end ---- */

static bool finals_agree(const struct chaos_record *rec)
{
    int primary = -2;
    uint64_t epoch = 0;
    for (unsigned i = 0; i < rec->n_finals; i++) {
        const struct chaos_final_view *f = &rec->finals[i];
        if (!f->answered)
            continue;
        if (f->primary < 0 || (primary != -2 && f->primary != primary) ||
            (f->epoch != 0 && epoch != 0 && f->epoch != epoch))
            return false;
        primary = f->primary;
        if (f->epoch != 0)
            epoch = f->epoch;
    }
    return primary >= 0;
}

static void wait_converged(struct run_ctx *x)
{
    int64_t bound = x->sc.expect.converge_us > 0 ? x->sc.expect.converge_us : CONVERGE_DEFAULT_US;
    int64_t deadline = run_now_us() + bound;
    do {
        x->rec.n_finals = 0;
        run_collect_finals(x);
        if (finals_agree(&x->rec))
            return;
        sleep_ms(250);
    } while (run_now_us() < deadline);
}

static void add_schedule_check(const struct run_ctx *x, struct chaos_checks *checks)
{
    if (checks->n >= CHAOS_MAX_CHECKS)
        return;
    struct chaos_check *c = &checks->c[checks->n++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "schedule");
    c->verdict = x->schedule_error[0] ? CHAOS_FAILED : CHAOS_PASS;
    snprintf(c->detail, sizeof c->detail, "%s",
             x->schedule_error[0] ? x->schedule_error : "every step ran as written");
    if (x->schedule_error[0])
        checks->all_passed = false;
}

static void print_verdict(const struct run_ctx *x, const struct chaos_checks *checks)
{
    printf("\n%s: %s\n", x->sc.name, checks->all_passed ? "PASS" : "FAIL");
    for (unsigned i = 0; i < checks->n; i++) {
        const struct chaos_check *c = &checks->c[i];
        printf("  %-15s %-7s %s\n", c->name, chaos_verdict_name(c->verdict), c->detail);
    }
    printf("report: %s/report.md, %s/report.json, %s/timeline.svg\n", x->dir, x->dir, x->dir);
}

static const struct chaos_check *find_check(const struct chaos_checks *c, const char *name)
{
    for (unsigned i = 0; i < c->n; i++)
        if (strcmp(c->c[i].name, name) == 0)
            return &c->c[i];
    return NULL;
}

static void fill_result(const struct chaos_checks *checks, struct run_result *res)
{
    const struct chaos_check *rto = find_check(checks, "rto"),
                             *gap = find_check(checks, "write-gap"),
                             *lost = find_check(checks, "lost-writes"),
                             *split = find_check(checks, "split-brain");
    res->passed = checks->all_passed;
    res->rto_ms = rto != NULL && rto->verdict != CHAOS_SKIPPED ? rto->value : -1;
    res->gap_ms = gap != NULL ? gap->value : -1;
    res->lost = lost != NULL && lost->verdict != CHAOS_SKIPPED ? lost->value : -1;
    res->split = split != NULL ? split->value : -1;
}

/* The workload's warm-up: steady-state CPU and RSS of each coordinator. */
static void warm_up(struct run_ctx *x, struct run_result *res)
{
    double cpu0[LAB_MAX_REGIONS] = {0}, rss;
    int64_t start = run_now_us();
    for (unsigned i = 0; i < x->lab.n_regions; i++)
        proc_cpu_rss(x->lab.regions[i].pid, &cpu0[i], &rss);
    sleep_until_us(x->t0_us + x->sc.warmup_us);
    double secs = (double)(run_now_us() - start) / 1e6;
    for (unsigned i = 0; i < x->lab.n_regions; i++) {
        double cpu;
        if (secs > 0 && proc_cpu_rss(x->lab.regions[i].pid, &cpu, &res->rss_kib[i]))
            res->idle_cpu[i] = 100.0 * (cpu - cpu0[i]) / secs;
    }
}

static void run_schedule(struct run_ctx *x)
{
    int leader;
    int64_t base = x->t0_us + x->sc.warmup_us, prev = base;
    run_current_view(x, &x->primary_before, &x->epoch_before, &leader);
    for (unsigned k = 0; k < x->sc.n_steps; k++) {
        const struct chaos_step *s = &x->sc.steps[k];
        int64_t at = s->relative ? prev + s->at_us : base + s->at_us;
        sleep_until_us(at);
        if (run_step(x, k) != 0)
            break;
        prev = run_now_us() > at ? run_now_us() : at;
    }
    int64_t end = run_now_us() + x->sc.settle_us;
    int64_t min_end = x->t0_us + x->sc.duration_us * (x->o.long_mode ? 3 : 1);
    sleep_until_us(end > min_end ? end : min_end);
}

static void finish(struct run_ctx *x, struct run_result *res)
{
    char path[LAB_PATH_MAX + 32], why[512];
    struct chaos_checks checks;
    stop_workload(x);
    run_heal(x);
    wait_converged(x);
    x->rec.end_us = run_now_us();
    run_sampler_stop(x);
    run_collect_events(x);
    snprintf(path, sizeof path, "%s/history.jsonl", x->dir);
    if (chaos_history_load(path, &x->rec, why, sizeof why) != 0)
        fprintf(stderr, "aragora-chaos: run: %s\n", why);
    run_read_back(x);
    chaos_check_all(&x->rec, &x->sc.expect, &checks);
    add_schedule_check(x, &checks);
    struct chaos_report_meta meta = {.scenario = x->sc.name,
                                     .file = x->sc.file,
                                     .description = x->sc.description,
                                     .seed = x->sc.seed,
                                     .mode = x->o.netns ? "netns" : "proxy",
                                     .wan = x->sc.wan || x->o.wan,
                                     .replication = x->sc.sync ? "sync" : "async",
                                     .fence = x->sc.fence};
    if (chaos_report_write(x->dir, &meta, &x->rec, &checks) != 0)
        checks.all_passed = false;
    if (!x->o.quiet)
        print_verdict(x, &checks);
    fill_result(&checks, res);
    res->ran = true;
}

static int prepare(struct run_ctx *x, const struct run_opts *o)
{
    char why[1024];
    x->o = *o;
    x->net_iv = -1;
    x->dns_429_iv = -1;
    x->switchover_iv = -1;
    x->last_target = -1;
    for (unsigned r = 0; r < LAB_MAX_REGIONS; r++)
        for (unsigned w = 0; w < RUN_WHATS; w++)
            x->proc_iv[r][w] = -1;
    pthread_mutex_init(&x->mu, NULL);
    if (lab_self_exe(x->self, sizeof x->self) != 0)
        return -1;
    if (chaos_scenario_load(o->scenario, default_regions, 3, &x->sc, why, sizeof why) != 0) {
        fprintf(stderr, "aragora-chaos: %s\n", why);
        return -1;
    }
    if (o->seed_set)
        x->sc.seed = o->seed;
    if (mkdir(o->dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "aragora-chaos: mkdir %s: %s\n", o->dir, strerror(errno));
        return -1;
    }
    if (realpath(o->dir, x->dir) == NULL ||
        (size_t)snprintf(x->lab_dir, sizeof x->lab_dir, "%s/lab", x->dir) >= sizeof x->lab_dir) {
        fprintf(stderr, "aragora-chaos: %s: cannot use this directory\n", o->dir);
        return -1;
    }
    x->rec.n_regions = 3;
    for (unsigned i = 0; i < 3; i++)
        snprintf(x->rec.regions[i], sizeof x->rec.regions[i], "%s", default_regions[i]);
    x->rec.initial_primary = 0;
    return 0;
}

int run_scenario(const struct run_opts *o, struct run_result *res)
{
    struct run_ctx *x = calloc(1, sizeof *x);
    memset(res, 0, sizeof *res);
    if (x == NULL || prepare(x, o) != 0) {
        free(x);
        return -1;
    }
    if (!o->quiet)
        printf("scenario %s (seed %" PRIu64 "): %s\n", x->sc.name, x->sc.seed, x->sc.description);
    int rc = -1;
    if (lab_up(x) == 0 && create_table(x) == 0 && run_sampler_start(x) == 0) {
        x->rec.start_us = run_now_us();
        if (start_workload(x) == 0) {
            x->t0_us = run_now_us();
            warm_up(x, res);
            run_schedule(x);
            finish(x, res);
            rc = 0;
        }
        run_sampler_stop(x);
        stop_workload(x);
    }
    lab_down(x);
    chaos_record_free(&x->rec);
    free(x);
    return rc;
}

static int parse_opts(int argc, char **argv, struct run_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--keep") == 0) {
            o->keep = true;
        } else if (strcmp(a, "--wan") == 0) {
            o->wan = true;
        } else if (strcmp(a, "--netns") == 0) {
            o->netns = true;
        } else if (strcmp(a, "--long") == 0) {
            o->long_mode = true;
        } else if (a[0] == '-' && v == NULL) {
            fprintf(stderr, "aragora-chaos: option '%s' needs a value\n", a);
            return -1;
        } else if (strcmp(a, "--dir") == 0) {
            o->dir = argv[++i];
        } else if (strcmp(a, "--seed") == 0) {
            o->seed = strtoull(argv[++i], NULL, 10);
            o->seed_set = true;
        } else if (strcmp(a, "--base-port") == 0) {
            o->base_port = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(a, "--runs") == 0 && strcmp(argv[0], "bench") == 0) {
            i++; /* bench's own option */
        } else if (a[0] == '-') {
            fprintf(stderr, "aragora-chaos: unknown option '%s'\n", a);
            return -1;
        } else if (o->scenario == NULL) {
            o->scenario = a;
        } else {
            fprintf(stderr, "aragora-chaos: unexpected argument '%s'\n", a);
            return -1;
        }
    }
    if (o->scenario == NULL || o->dir == NULL) {
        fprintf(stderr, "aragora-chaos: %s: SCENARIO and --dir DIR are required\n", argv[0]);
        return -1;
    }
    if (o->base_port < 1024 || o->base_port + 40 >= 32768) {
        fprintf(stderr, "aragora-chaos: --base-port: expected 1024..32700\n");
        return -1;
    }
    return 0;
}

int run_parse_opts(int argc, char **argv, struct run_opts *o)
{
    memset(o, 0, sizeof *o);
    o->base_port = DEFAULT_BASE_PORT;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(run_usage, stdout);
            return 1;
        }
    }
    if (parse_opts(argc, argv, o) != 0) {
        fputs(run_usage, stderr);
        return -1;
    }
    return 0;
}

int chaos_run_main(int argc, char **argv)
{
    struct run_opts o;
    struct run_result res;
    int p = run_parse_opts(argc, argv, &o);
    if (p != 0)
        return p > 0 ? 0 : 2;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    signal(SIGPIPE, SIG_IGN); /* a Redis that went away: EPIPE, not death */
    int rc = run_scenario(&o, &res);
    curl_global_cleanup();
    return rc == 0 && res.passed ? 0 : 1;
}
