/*
 * The lab: N coordinators on loopback, started and stopped by PID, described by DIR/lab.json.
 *
 * lab.c holds the commands (up, status, kill, freeze, thaw, restart, down) and the HTTP polling;
 * lab_proc.c holds what touches processes and files: lab.json, spawning a detached coordinator,
 * checking that a recorded PID is still ours, and reading a log's tail.
 *
 * A PID recorded in lab.json is only ever signalled after lab_region_is_ours() confirmed that
 * /proc/PID/cmdline still carries that region's config path: PIDs are reused, names are shared,
 * and the lab must never signal a process it did not start.
 */
#ifndef AFC_LAB_H
#define AFC_LAB_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define LAB_MAX_REGIONS 9
#define LAB_PATH_MAX    512

struct lab_region {
    char name[32];
    unsigned id;
    unsigned api_port;
    unsigned raft_port;
    char api_url[128];
    char raft_address[64];
    pid_t pid; /* 0 = never started */
    char config[LAB_PATH_MAX];
    char log[LAB_PATH_MAX];
    char data_dir[LAB_PATH_MAX];
};

struct lab {
    char dir[LAB_PATH_MAX]; /* absolute */
    char token_file[LAB_PATH_MAX];
    char coordinator[LAB_PATH_MAX]; /* the binary the lab starts */
    unsigned base_port;
    unsigned snapshot_threshold; /* 0 = the daemon's default */
    unsigned snapshot_trailing;  /* 0 = the daemon's default */
    unsigned n_regions;
    struct lab_region regions[LAB_MAX_REGIONS];
};

/* What a recorded PID is now. */
enum lab_proc_state { LAB_PROC_DEAD = 0, LAB_PROC_ALIVE, LAB_PROC_STOPPED };
const char *lab_proc_state_name(enum lab_proc_state s);

/* The lab's command-line entry: argv[0] is "lab". Returns the process exit status. */
int lab_main(int argc, char **argv);

/* lab_proc.c */

/* Read DIR/lab.json into *lab. Prints the reason and returns -1 on failure; -2 if absent. */
int lab_load(struct lab *lab, const char *dir);
/* Write DIR/lab.json atomically (temporary file, fsync, rename). Prints and returns -1 on error. */
int lab_save(const struct lab *lab);

/* State of r->pid, counting it dead unless its cmdline still names r->config (and not a zombie). */
enum lab_proc_state lab_region_state(const struct lab_region *r);
static inline bool lab_region_is_ours(const struct lab_region *r)
{
    return lab_region_state(r) != LAB_PROC_DEAD;
}
/* Poll until r->pid has exited for good (a zombie or gone: its files, and so its data-directory
 * lock, are closed); false on timeout. Call only after checking the pid was ours. */
bool lab_wait_gone(const struct lab_region *r, unsigned timeout_ms);

/* Start the region's coordinator detached (setsid, stdout+stderr appended to its log, stdin
 * /dev/null). Sets r->pid once exec succeeded; prints the reason and returns -1 otherwise. */
int lab_spawn(const struct lab *lab, struct lab_region *r);

/* Find the coordinator binary: $ARAGORA_COORDINATOR, else next to /proc/self/exe. */
int lab_find_coordinator(char *out, size_t size);

/* Print the last `lines` lines of the region's log to stderr, indented. */
void lab_print_log_tail(const struct lab_region *r, unsigned lines);

/* Monotonic milliseconds. */
unsigned long long lab_now_ms(void);
void lab_sleep_ms(unsigned ms);

#endif
