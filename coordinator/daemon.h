/*
 * The coordinator daemon: one struct that everything hangs off (no hidden globals).
 *
 * main.c loads the config, sets up logging, initialises the node (consensus/) and the HTTP API
 * (http.c + api.c, on the same libuv loop), handles SIGTERM/SIGINT by closing everything in order,
 * and exits non-zero if the state machine diverged.
 */
#ifndef AFC_DAEMON_H
#define AFC_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "afc/config.h"
#include "afc/consensus.h"

struct afc_http;     /* http.c */
struct afc_report;   /* report.c: a report on its way to the leader */
struct afc_agent;    /* agent.c: probes, lease, fencing, decisions */
struct afc_delivery; /* delivery.c: DNS, Redis and hooks after a promotion */

struct afc_daemon {
    uv_loop_t *loop;
    struct afc_config cfg;
    struct afc_node node;
    struct afc_http *http;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uint64_t started_mono_ms; /* uv_now at start */
    int64_t started_wall_ms;
    bool joined; /* has applied the init command (knows the member list) */
    bool init_in_flight;
    struct afc_propose init_req;
    struct afc_report *reports;    /* network reports in flight (report.c) */
    struct afc_agent *agent;       /* NULL until started */
    struct afc_delivery *delivery; /* NULL until started, and after stopped */
    int exit_code;
    bool stopping;
    uv_timer_t stop_deadline; /* armed by the stop: a stop that outlasts it is stuck (main.c) */
    const char *stop_stage;   /* what the stop waits for now, named when it is forced */
};

/* ---- HTTP API (coordinator/http.c, coordinator/api.c, coordinator/forward.c) ---- */

/* Start the HTTP API on d->cfg.api_listen on d->loop. Errors: AFC_EIO (bind failed: message names
 * the address). */
int afc_http_start(struct afc_daemon *d, struct afc_err *err);
/* Stop accepting, finish/abort in-flight requests (forwarded ones get 503), free; cb once done. */
void afc_http_stop(struct afc_daemon *d, void (*cb)(struct afc_daemon *d));

/* ---- readiness, used by /health/ready and /leader ---- */

/* joined (init applied), a leader is known, and the local state has applied at least up to the
 * commit index the node knows of. */
bool afc_daemon_is_ready(const struct afc_daemon *d);

#endif
