/*
 * `aragora-chaos bench SCENARIO --runs N --dir DIR` (docs/chaos.md, docs/performance.md): run a
 * scenario N times, each in a fresh DIR/run-K with seed+K-1, and print per run and then
 * min/median/p95/max of the RTO and the longest write gap, the lost acknowledged writes and the
 * split-brain violations, and the coordinators' RSS and steady-state CPU (measured over each
 * run's warm-up, with the workload running and no fault).
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "chaos_cmd.h"
#include "run.h"

#define BENCH_MAX_RUNS 100

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* min median p95 max of the n >= 0 values (negative ones are "not measured"). */
static void print_stats(const char *what, const char *unit, double *v, unsigned n)
{
    double s[BENCH_MAX_RUNS * LAB_MAX_REGIONS];
    unsigned k = 0;
    for (unsigned i = 0; i < n; i++)
        if (v[i] >= 0)
            s[k++] = v[i];
    if (k == 0) {
        printf("  %-26s not measured\n", what);
        return;
    }
    qsort(s, k, sizeof s[0], cmp_double);
    unsigned p95 = (unsigned)((double)(k - 1) * 0.95 + 0.5);
    printf("  %-26s min %8.1f  median %8.1f  p95 %8.1f  max %8.1f %s  (n=%u)\n", what, s[0],
           k % 2 ? s[k / 2] : (s[k / 2 - 1] + s[k / 2]) / 2, s[p95], s[k - 1], unit, k);
}

static unsigned parse_runs(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--runs") == 0)
            return (unsigned)strtoul(argv[i + 1], NULL, 10);
    return 5;
}

int chaos_bench_main(int argc, char **argv)
{
    struct run_opts o;
    int p = run_parse_opts(argc, argv, &o);
    if (p != 0)
        return p > 0 ? 0 : 2;
    unsigned runs = parse_runs(argc, argv);
    if (runs < 1 || runs > BENCH_MAX_RUNS) {
        fprintf(stderr, "aragora-chaos: bench: --runs: expected 1..%d\n", BENCH_MAX_RUNS);
        return 2;
    }
    if ((mkdir(o.dir, 0755) != 0 && errno != EEXIST) || curl_global_init(CURL_GLOBAL_DEFAULT))
        return 1;
    static double rto[BENCH_MAX_RUNS], gap[BENCH_MAX_RUNS], lost[BENCH_MAX_RUNS],
        split[BENCH_MAX_RUNS], rss[BENCH_MAX_RUNS * LAB_MAX_REGIONS],
        cpu[BENCH_MAX_RUNS * LAB_MAX_REGIONS];
    unsigned failed = 0, n_proc = 0;
    uint64_t seed = o.seed_set ? o.seed : 1;
    const char *base_dir = o.dir;
    for (unsigned k = 0; k < runs; k++) {
        char dir[600];
        struct run_result res;
        snprintf(dir, sizeof dir, "%s/run-%u", base_dir, k + 1);
        o.dir = dir;
        o.seed = seed + k;
        o.seed_set = true;
        o.quiet = true;
        if (run_scenario(&o, &res) != 0 || !res.passed)
            failed++;
        rto[k] = res.rto_ms;
        gap[k] = res.ran ? res.gap_ms : -1;
        lost[k] = res.lost;
        split[k] = res.ran ? res.split : -1;
        for (unsigned r = 0; r < 3; r++, n_proc++) {
            rss[n_proc] = res.rss_kib[r] > 0 ? res.rss_kib[r] / 1024.0 : -1;
            cpu[n_proc] = res.rss_kib[r] > 0 ? res.idle_cpu[r] : -1;
        }
        printf("run %2u  %-4s  rto %8.1f ms  gap %8.1f ms  lost %4.0f  split-brain %2.0f  (%s)\n",
               k + 1, res.ran && res.passed ? "pass" : "FAIL", rto[k], gap[k], lost[k], split[k],
               dir);
        fflush(stdout);
    }
    printf("\n%s: %u run%s, %u failed\n", o.scenario, runs, runs == 1 ? "" : "s", failed);
    print_stats("RTO (fault -> new primary)", "ms", rto, runs);
    print_stats("longest write gap", "ms", gap, runs);
    print_stats("lost acknowledged writes", "", lost, runs);
    print_stats("split-brain violations", "", split, runs);
    print_stats("coordinator RSS", "MiB", rss, n_proc);
    print_stats("coordinator CPU (steady)", "%", cpu, n_proc);
    curl_global_cleanup();
    return failed == 0 ? 0 : 1;
}
