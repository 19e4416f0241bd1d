/*
 * aragora-chaos: the fault-injection harness (ARCHITECTURE.md §10). This milestone has its `lab`:
 * start, inspect, fault and stop a set of coordinators on loopback (lab.c). Later milestones add
 * the fault layer, nemeses, workloads and `run SCENARIO`.
 */
#include <stdio.h>
#include <string.h>

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
    fprintf(stderr, "aragora-chaos: unknown command '%s'\n%s", argv[1], usage);
    return 2;
}
