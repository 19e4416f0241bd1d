/*
 * The aragora-chaos subcommands other than `lab` (lab.h): each takes argv with argv[0] the
 * command's name and returns the process exit status (0 success, 1 failure, 2 usage).
 */
#ifndef AFC_CHAOS_CMD_H
#define AFC_CHAOS_CMD_H

int chaos_proxy_main(int argc, char **argv);    /* proxy.c: the userspace fault proxy daemon */
int chaos_fault_main(int argc, char **argv);    /* fault_cmd.c: fault set|clear|show|profile */
int chaos_workload_main(int argc, char **argv); /* workload.c: the libpq writer */
int chaos_run_main(int argc, char **argv);      /* run.c: run SCENARIO */
int chaos_bench_main(int argc, char **argv);    /* bench.c: bench SCENARIO --runs N */

#endif
