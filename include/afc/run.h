/*
 * Running external programs from the daemon's loop without ever blocking it: pg_ctl, pg_rewind,
 * pg_basebackup, and (later) operator hooks.
 *
 * afc_run_start() spawns argv[0] with uv_spawn (no shell), optionally as another OS user (a
 * coordinator running as root must run PostgreSQL's programs as the `postgres` user), with stdin
 * from /dev/null and stdout+stderr captured into a bounded buffer whose tail is handed to the
 * callback (for the error message). A deadline kills the whole process group with SIGKILL.
 *
 * Callback guarantee (libuv's): if afc_run_start() returns an error, the callback never runs; if
 * it returns 0, the callback runs exactly once, from the loop, after every handle of the run is
 * closed; the run's memory is freed right after the callback returns.
 */
#ifndef AFC_RUN_H
#define AFC_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "afc/error.h"

#define AFC_RUN_OUTPUT_MAX 4096 /* bytes of combined stdout+stderr kept (the tail) */

struct afc_run_result {
    int64_t exit_status; /* valid if term_signal == 0 */
    int term_signal;     /* the signal that ended it (SIGKILL after the deadline), 0 if none */
    bool timed_out;      /* the deadline passed and the process group was killed */
    uint64_t duration_ms;
    const char *output; /* tail of stdout+stderr, NUL-terminated; borrowed for the callback */
};

struct afc_run;
typedef void (*afc_run_cb)(struct afc_run *run, const struct afc_run_result *res, void *data);

struct afc_run_options {
    const char *const *argv; /* argv[0] is the program (absolute path or found in PATH) */
    const char *const *env;  /* extra "NAME=value" entries appended to the environment; NULL */
    bool env_only;           /* true: the child gets `env` alone, nothing of the daemon's own
                                environment (which may hold secrets): operator hooks */
    const char *cwd;         /* NULL = the daemon's */
    const char *run_as;      /* OS user name; NULL or "" = as the daemon. Needs root to change */
    unsigned timeout_ms;     /* 0 = no deadline */
};

/* Start. Errors: AFC_EINVAL (no argv), AFC_ECONFIG (unknown run_as user), AFC_EIO (spawn failed:
 * the message names the program and the reason), AFC_ENOMEM. */
int afc_run_start(uv_loop_t *loop, const struct afc_run_options *opt, afc_run_cb cb, void *data,
                  struct afc_run **out, struct afc_err *err);

/* Kill the process group now (SIGKILL); the callback still runs once, with term_signal set.
 * Safe to call once the run has started and until its callback has run. */
void afc_run_kill(struct afc_run *run);

/* "exit 1", "killed by SIGKILL after the 5000 ms deadline", ... for messages. */
void afc_run_describe(const struct afc_run_result *res, char *buf, size_t cap);

#endif
