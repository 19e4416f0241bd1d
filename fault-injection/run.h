/*
 * `aragora-chaos run SCENARIO` (docs/chaos.md): the runner's parts.
 *
 * run.c        the command: options, the lab, the workload, the schedule, the end, the report
 * run_steps.c  one scenario step at a time (network faults through the proxy's control API,
 *              process faults through `aragora-chaos lab`, fault points, waits)
 * run_collect.c what the run records besides the workload's history: a sampler thread reading
 *              every coordinator's /v1/cluster, the replicated history, node events from the
 *              logs, the final views (coordinators, DNS, Redis) and the read-back
 */
#ifndef AFC_RUN_H
#define AFC_RUN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "chaos.h"
#include "lab.h"

#define RUN_WHATS 5 /* coordinator, postgres, region, redis, dns (per region; dns only [0]) */

struct run_opts {
    const char *scenario;
    const char *dir;
    unsigned base_port;
    uint64_t seed;
    bool seed_set;
    bool keep;      /* leave the lab running */
    bool wan;       /* --wan: force the WAN profile */
    bool netns;     /* --netns: the lab in network namespaces (lab up --netns) */
    bool quiet;     /* bench: one line per run */
    bool long_mode; /* --long: the scenario's duration ×3 */
};

/* What one run measured (bench aggregates these). */
struct run_result {
    bool passed;
    bool ran;                         /* the lab came up and the schedule ran */
    double rto_ms;                    /* max over the failures; <0 none */
    double gap_ms;                    /* longest write gap */
    double lost;                      /* lost acknowledged writes; <0 unknown */
    double split;                     /* split-brain violations */
    double rss_kib[LAB_MAX_REGIONS];  /* coordinators' RSS at the end of the warm-up */
    double idle_cpu[LAB_MAX_REGIONS]; /* their CPU use over the warm-up, percent of one core */
};

struct run_ctx {
    struct run_opts o;
    struct chaos_scenario sc;
    char self[LAB_PATH_MAX];    /* this binary */
    char dir[LAB_PATH_MAX];     /* absolute: where the report goes */
    char lab_dir[LAB_PATH_MAX]; /* DIR/lab */
    char token[128];
    const char *names[LAB_MAX_REGIONS];
    struct lab lab;
    pid_t workload;
    int64_t t0_us;      /* the workload started */
    int64_t failure_us; /* the last failure step */
    int primary_before; /* the primary when the last failure step ran */
    int last_target;    /* the region the previous targeted step acted on; -1 none */
    uint64_t epoch_before;
    /* open intervals: index into rec.intervals, -1 none */
    long net_iv;
    char net_text[CHAOS_TEXT_MAX]; /* the network faults the schedule applied last ("" none) */
    bool dns_429;                  /* a dns: 429 step is in force (added to net_text) */
    long dns_429_iv;               /* its interval on the timeline */
    bool dns_down;                 /* a dns: down step killed the PowerDNS */
    long switchover_iv;            /* from a switchover step until the next wait step completes */
    long proc_iv[LAB_MAX_REGIONS][RUN_WHATS];
    bool frozen[LAB_MAX_REGIONS][RUN_WHATS];
    char schedule_error[512]; /* "" = the schedule ran as written */

    pthread_mutex_t mu; /* guards rec.samples and the views below */
    pthread_t sampler;
    bool sampling;
    volatile bool stop_sampling;
    struct chaos_record rec;
    size_t cap_samples, cap_events, cap_intervals;
};

/* run_collect.c */
int64_t run_now_us(void);
/* GET/POST/PUT/DELETE with a Bearer token (NULL: none); the whole answer into *out (malloc'd,
 * NUL-terminated; NULL when nothing answered). Returns the HTTP status, 0 when no answer. */
long run_http(const char *method, const char *url, const char *bearer, const char *body,
              long timeout_ms, char **out);
int run_sampler_start(struct run_ctx *x);
void run_sampler_stop(struct run_ctx *x);
/* The current view, from the coordinators that answer now: the authorized primary (highest
 * epoch) and the ready Raft leader; -1 when unknown. */
void run_current_view(struct run_ctx *x, int *primary, uint64_t *epoch, int *leader);
/* Events from /v1/history (any answering coordinator) and the node events in the logs. */
int run_collect_events(struct run_ctx *x);
/* The highest epoch with an event of `kind` ("failover-decided", ...) in /v1/history; 0 none. */
uint64_t run_latest_epoch(struct run_ctx *x, const char *kind);
void run_collect_finals(struct run_ctx *x);
/* Read back the rows from the authorized primary's PostgreSQL. */
void run_read_back(struct run_ctx *x);
long run_add_interval(struct run_ctx *x, const char *label, bool failure);
void run_end_interval(struct run_ctx *x, long *iv);
int run_region_index(const struct run_ctx *x, const char *name);

/* run_steps.c */
/* Run step k (its time has come). Returns 0, or -1 when the run cannot go on (schedule_error
 * says why). */
int run_step(struct run_ctx *x, unsigned k);
/* End of the schedule: clear every network fault, thaw what is frozen. */
void run_heal(struct run_ctx *x);
/* Start this binary with argv (argv[0] x->self), stdout and stderr appended to `log`; the
 * child's PID, or -1. */
pid_t run_spawn(struct run_ctx *x, const char *const *argv, const char *log);
/* Run this binary with args (args[0] the subcommand, NULL-terminated) and wait; its output is
 * appended to DIR/runner.log. Returns its exit status, -1 if it could not run. */
int run_self(struct run_ctx *x, const char *const *args);
/* `aragora-chaos lab VERB --dir DIR/lab [REGION] [--what WHAT]`. */
int run_lab_verb(struct run_ctx *x, const char *verb, const char *region, const char *what);

/* run.c */
/* 0 parsed, 1 --help printed, -1 usage error (printed). argv[0] is "run" or "bench". */
int run_parse_opts(int argc, char **argv, struct run_opts *o);
/* One run: 0 when it ran to the end (res says whether every check passed), -1 when it could
 * not (the lab did not come up, the scenario did not load...). */
int run_scenario(const struct run_opts *o, struct run_result *res);

#endif
