/*
 * aragora-chaos: the fault-injection harness (ARCHITECTURE.md §10). This milestone has its `lab`:
 * start, inspect, fault and stop a set of coordinators on loopback (lab.c). Later milestones add
 * the fault layer, nemeses, workloads and `run SCENARIO`.
 */
#include <stdio.h>
#include <string.h>

#include "chaos_cmd.h"
#include "lab.h"

#ifndef AFC_VERSION
#define AFC_VERSION "unknown"
#endif

static const char usage[] =
    "Usage: aragora-chaos COMMAND ...\n"
    "\n"
    "Commands:\n"
    "  lab up|status|kill|freeze|thaw|restart|down --dir DIR ...\n"
    "                 run coordinators on loopback (aragora-chaos lab --help)\n"
    "  proxy --dir DIR  the userspace fault proxy of a lab (started by lab up)\n"
    "  fault set TEXT|clear|show|profile --dir DIR\n"
    "                 change the network faults between the lab's regions, live\n"
    "  workload ...   write continuously to every region's PostgreSQL, record a history\n"
    "  run SCENARIO --dir DIR\n"
    "                 run a scenario file; writes report.json, report.md, timeline.svg\n"
    "  bench SCENARIO --runs N --dir DIR\n"
    "                 repeat a scenario; print RTO, write gap and lost writes\n"
    "  version        print the version\n"
    "\n"
    "Exit status: 0 success, 1 failure, 2 usage error.\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("aragora-chaos %s\n", AFC_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "lab") == 0)
        return lab_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "proxy") == 0)
        return chaos_proxy_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "fault") == 0)
        return chaos_fault_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "workload") == 0)
        return chaos_workload_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "run") == 0)
        return chaos_run_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "bench") == 0)
        return chaos_bench_main(argc - 1, argv + 1);
    fprintf(stderr, "aragora-chaos: unknown command '%s'\n%s", argv[1], usage);
    return 2;
}
