/*
 * Named fault points (ARCHITECTURE.md §10): crash or fail at a chosen place, in test builds only.
 *
 * A test build is configured with `meson setup -Dfault_points=true`, which defines
 * AFC_FAULT_POINTS=1, compiles coordinator/faultpoints.c in, registers
 * POST /v1/test/fault-points and makes `aragora-coordinator --version` say "(fault points)".
 * Without the option afc_fault_hit() is a constant false: every `if (afc_fault_hit(...))` is dead
 * code the compiler removes, and nothing can arm a point.
 *
 * Points (docs/operations.md "Fault points"):
 *   crash-after-decide   the leader, once its FAILOVER_BEGIN is applied: _exit(AFC_FAULT_EXIT)
 *   crash-after-promote  the candidate, after pg_promote succeeded, before reporting PROMOTED
 *   fail-promote         the candidate reports ABORTED instead of running pg_promote
 *   hang-after-decided   the candidate's executor stops acting (its coordinator still talks):
 *                        the leader must abort the failover when its step deadline passes
 *   hang-on-stop         SIGTERM's orderly stop never gets past its first stage: the stop
 *                        deadline (main.c, 30 s) or a second signal must end the process
 * A point is armed from ARAGORA_FAULT_POINTS="name[,name...]" at start (so again at every start)
 * or through the API, on the node that receives the request only. It fires once per arming: the
 * hit disarms it, so a coordinator restarted without the variable does not crash again.
 */
#ifndef AFC_FAULTPOINTS_H
#define AFC_FAULTPOINTS_H

#include <stdbool.h>

/* Exit status of a process stopped by a crash point (EX_SOFTWARE). */
#define AFC_FAULT_EXIT 70

#ifdef AFC_FAULT_POINTS

struct afc_err;
struct http_req;

/* Is `name` armed? If so: disarm it, emit "+fault-point name=NAME" and return true. */
bool afc_fault_hit(const char *name);
/* Arm the points named in ARAGORA_FAULT_POINTS (comma-separated). Call once at start, after the
 * log is set up. Errors: AFC_ECONFIG naming an unknown point (nothing is armed then). */
int afc_fault_points_init(struct afc_err *err);
/* POST /v1/test/fault-points {"arm":[names],"disarm":[names]} (bearer token): arms and disarms
 * on this node only; answers 200 {"armed":[names]}, 400 on an unknown name or a bad body. */
void afc_fault_points_api(struct http_req *r);

#else

static inline bool afc_fault_hit(const char *name)
{
    (void)name;
    return false;
}

#endif

#endif
