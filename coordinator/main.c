/*
 * aragora-coordinator: the daemon's entry point and lifecycle.
 *
 * start: parse arguments → load and validate the config (exit 2 on any error, naming file, line and
 * key) → logging → the consensus node (locks the data dir, bootstraps on first start) → the HTTP
 * API → uv_run. The first ready leader commits the member list (AFC_OP_INIT) so every node's
 * replicated state knows the members; a node counts as *joined* once it has applied that entry.
 * stop: SIGTERM/SIGINT → HTTP API stopped → node closed (raft_close, then raft_uv) → signal handles
 * closed → the loop ends and uv_loop_close() must return 0.
 *
 * Exit status: 0 clean shutdown; 1 runtime failure; 2 usage or configuration error; 3 the data
 * directory was refused (locked by another process, or corrupt); 4 the replicated state diverged
 * (the node stopped itself rather than act on it).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "afc/log.h"
#include "coordinator/daemon.h"
#include "coordinator/delivery.h"
#include "coordinator/agent.h"
#include "coordinator/faultpoints.h"
#include "coordinator/report.h"

enum {
    EXIT_RUNTIME = 1,
    EXIT_USAGE = 2,
    EXIT_DATADIR = 3,
    EXIT_DIVERGED = 4,
};

bool afc_daemon_is_ready(const struct afc_daemon *d)
{
    const struct afc_node *n = &d->node;
    return d->joined && afc_node_leader_id(n) != 0 &&
           afc_node_applied_index(n) >= afc_node_commit_index(n);
}

static void daemon_stop(struct afc_daemon *d, int exit_code);

/* ---- joining: the first ready leader commits the member list ---- */

static void init_cb(struct afc_propose *req, int status, enum afc_apply_result r)
{
    struct afc_daemon *d = req->data;
    d->init_in_flight = false;
    if (status != 0) {
        afc_warn("while committing the member list: %s (will retry as leader)",
                 afc_strerror(status));
        return;
    }
    afc_info("member list committed (%s)", afc_apply_result_name(r));
}

static void build_init_cmd(const struct afc_daemon *d, struct afc_cmd *cmd)
{
    afc_cmd_start(cmd, AFC_OP_INIT, d->cfg.region);
    cmd->u.init.n_members = d->cfg.n_members;
    for (unsigned i = 0; i < d->cfg.n_members; i++) {
        const struct afc_config_member *m = &d->cfg.members[i];
        struct afc_member *o = &cmd->u.init.members[i];
        o->id = m->id;
        memcpy(o->name, m->name, sizeof o->name);
        memcpy(o->raft_addr, m->raft_addr, sizeof o->raft_addr);
        memcpy(o->api_url, m->api_url, sizeof o->api_url);
    }
}

static void maybe_commit_members(struct afc_daemon *d)
{
    if (d->stopping || d->init_in_flight || afc_node_state(&d->node)->n_members > 0 ||
        !afc_node_is_ready(&d->node)) {
        return;
    }
    struct afc_cmd cmd;
    build_init_cmd(d, &cmd);
    d->init_req.data = d;
    if (afc_node_propose(&d->node, &d->init_req, &cmd, init_cb) == 0) {
        d->init_in_flight = true;
    }
}

static void update_joined(struct afc_daemon *d)
{
    bool joined = afc_node_state(&d->node)->n_members > 0;
    if (joined && !d->joined) {
        afc_event("joined", "members=%u", afc_node_state(&d->node)->n_members);
    }
    d->joined = joined;
}

/* ---- node hooks ---- */

static void role_changed(struct afc_node *n, int old_state, int new_state, bool ready)
{
    struct afc_daemon *d = n->hooks.data;
    (void)old_state;
    (void)new_state;
    afc_agent_role_changed(d, ready);
    if (ready) {
        maybe_commit_members(d);
    }
}

static void applied(struct afc_node *n, uint64_t index, enum afc_apply_result r,
                    const struct afc_err *why)
{
    struct afc_daemon *d = n->hooks.data;
    if (r == AFC_APPLY_REJECTED_MALFORMED || r == AFC_APPLY_REJECTED_VERSION) {
        afc_warn("command at index %llu rejected (%s): %s", (unsigned long long)index,
                 afc_apply_result_name(r), why ? why->msg : "");
    }
    update_joined(d);
    afc_agent_applied(d);
}

static void diverged(struct afc_node *n, uint64_t index)
{
    struct afc_daemon *d = n->hooks.data;
    /* the node has already emitted +diverged and stopped proposing; the process must not go on */
    afc_error("exiting: the replicated state diverged at index %llu (see docs/operations.md)",
              (unsigned long long)index);
    daemon_stop(d, EXIT_DIVERGED);
}

/* ---- shutdown ---- */

static void signal_close_cb(uv_handle_t *h)
{
    (void)h;
}

/* A stop that has not finished by then is stuck (a stage whose completion never comes): leaving
 * is safer than hanging, since a coordinator that exits is a fault the cluster handles anyway
 * (ARCHITECTURE.md §4: nothing safe depends on a clean stop; Raft's log is fsynced as written). */
#define STOP_DEADLINE_MS 30000

/* The stop could not finish: say where it was stuck, then exit at once, with the stop's own
 * status when that says more than a runtime failure (EXIT_DIVERGED), else EXIT_RUNTIME.
 * reason: "deadline" or "signal". */
static void force_exit(struct afc_daemon *d, const char *reason)
{
    if (strcmp(reason, "deadline") == 0) {
        afc_error("shutdown did not finish within %d s (waiting for: %s); exiting now",
                  STOP_DEADLINE_MS / 1000, d->stop_stage);
    } else {
        afc_error("shutdown interrupted by a second signal (waiting for: %s); exiting now",
                  d->stop_stage);
    }
    afc_event("shutdown-forced", "stage=%s reason=%s", d->stop_stage, reason);
    fflush(NULL);
    _exit(d->exit_code > EXIT_RUNTIME ? d->exit_code : EXIT_RUNTIME);
}

static void stop_deadline_cb(uv_timer_t *t)
{
    force_exit(t->data, "deadline");
}

static void node_closed_cb(struct afc_node *n)
{
    struct afc_daemon *d = n->hooks.data;
    uv_close((uv_handle_t *)&d->sigterm, signal_close_cb);
    uv_close((uv_handle_t *)&d->sigint, signal_close_cb);
    if (d->stopping) {
        uv_close((uv_handle_t *)&d->stop_deadline, signal_close_cb);
    }
}

static void http_stopped_cb(struct afc_daemon *d)
{
    d->stop_stage = "consensus";
    afc_node_close(&d->node, node_closed_cb);
}

static void agent_stopped_cb(struct afc_daemon *d)
{
    d->stop_stage = "http";
    if (d->http != NULL) {
        afc_http_stop(d, http_stopped_cb);
    } else {
        http_stopped_cb(d);
    }
}

static void delivery_stopped_cb(struct afc_daemon *d)
{
    d->stop_stage = "agent";
    afc_agent_stop(d, agent_stopped_cb);
}

static void daemon_stop(struct afc_daemon *d, int exit_code)
{
    if (exit_code > d->exit_code) {
        d->exit_code = exit_code;
    }
    if (d->stopping) {
        return;
    }
    d->stopping = true;
    d->stop_stage = "delivery";
    afc_event("shutdown", "exit=%d", d->exit_code);
    uv_timer_init(d->loop, &d->stop_deadline);
    d->stop_deadline.data = d;
    uv_timer_start(&d->stop_deadline, stop_deadline_cb, STOP_DEADLINE_MS, 0);
    afc_report_abort_all(d); /* before the HTTP client that carries them closes */
    if (afc_fault_hit("hang-on-stop")) {
        return; /* test builds: the first stage never completes (the deadline must end it) */
    }
    afc_delivery_stop(d, delivery_stopped_cb);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct afc_daemon *d = h->data;
    const char *name = signum == SIGTERM ? "SIGTERM" : "SIGINT";
    if (d->stopping) {
        /* an operator asking again does not want to wait for the deadline */
        afc_notice("received %s again while shutting down", name);
        force_exit(d, "signal");
    }
    afc_notice("received %s, shutting down", name);
    daemon_stop(d, 0);
}

/* ---- start ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: aragora-coordinator --config FILE [--check-config]\n"
               "       aragora-coordinator --version\n"
               "\n"
               "  --config FILE    node configuration (YAML; see docs/configuration.md)\n"
               "  --check-config   validate the configuration and environment, then exit\n"
               "  --version        print the version and exit\n"
               "\n"
               "exit status: 0 clean shutdown, 1 runtime failure, 2 usage or configuration\n"
               "error, 3 data directory refused (locked or corrupt), 4 state diverged\n");
}

struct args {
    const char *config;
    bool check_only;
};

/* A test build says so wherever it identifies itself, so it cannot be run in production unknowingly
 * (coordinator/faultpoints.h). */
#ifdef AFC_FAULT_POINTS
#define BUILD_FLAVOUR     " (fault points)"
#define BUILD_EVENT_FIELD " fault_points=compiled-in"
#else
#define BUILD_FLAVOUR     ""
#define BUILD_EVENT_FIELD ""
#endif

static int parse_args(int argc, char **argv, struct args *a)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'k'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "c:kVh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            a->config = optarg;
            break;
        case 'k':
            a->check_only = true;
            break;
        case 'V':
            printf("aragora-coordinator %s%s\n", AFC_VERSION, BUILD_FLAVOUR);
            exit(0);
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (a->config == NULL || optind != argc) {
        usage(stderr);
        return -1;
    }
    return 0;
}

static const char *env_get(const char *name)
{
    return getenv(name);
}

static int load_config(struct afc_daemon *d, const char *path)
{
    struct afc_err err = {0};
    afc_config_defaults(&d->cfg);
    if (afc_config_load(&d->cfg, path, &err) != 0 ||
        afc_config_apply_env(&d->cfg, env_get, &err) != 0) {
        fprintf(stderr, "aragora-coordinator: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static void node_config_from(const struct afc_config *c, struct afc_node_config *nc)
{
    memset(nc, 0, sizeof *nc);
    nc->id = c->region_id;
    nc->data_dir = c->data_dir;
    nc->bind_addr = c->raft_bind[0] ? c->raft_bind : NULL;
    nc->n_members = c->n_members;
    for (unsigned i = 0; i < c->n_members; i++) {
        nc->members[i].id = c->members[i].id;
        memcpy(nc->members[i].name, c->members[i].name, AFC_NAME_MAX);
        memcpy(nc->members[i].raft_addr, c->members[i].raft_addr, AFC_ADDR_MAX);
        memcpy(nc->members[i].raft_dial, c->members[i].raft_dial, AFC_ADDR_MAX);
        memcpy(nc->members[i].api_url, c->members[i].api_url, AFC_URL_MAX);
    }
    nc->election_timeout_ms = c->election_timeout_ms;
    nc->heartbeat_timeout_ms = c->heartbeat_timeout_ms;
    nc->snapshot_threshold = c->snapshot_threshold;
    nc->snapshot_trailing = c->snapshot_trailing;
    nc->digest_interval_ms = c->digest_interval_ms;
    nc->cluster_secret = c->cluster_secret;
    nc->cluster_secret_len = c->cluster_secret_len;
}

static int start_signals(struct afc_daemon *d)
{
    uv_signal_init(d->loop, &d->sigterm);
    uv_signal_init(d->loop, &d->sigint);
    d->sigterm.data = d;
    d->sigint.data = d;
    if (uv_signal_start(&d->sigterm, signal_cb, SIGTERM) != 0 ||
        uv_signal_start(&d->sigint, signal_cb, SIGINT) != 0) {
        return -1;
    }
    return 0;
}

static int start_node(struct afc_daemon *d)
{
    struct afc_node_config nc;
    struct afc_node_hooks hooks = {
        .data = d, .role_changed = role_changed, .applied = applied, .diverged = diverged};
    struct afc_err err = {0};
    node_config_from(&d->cfg, &nc);
    int rv = afc_node_init(&d->node, d->loop, &nc, &hooks, &err);
    if (rv == 0) {
        rv = afc_node_start(&d->node, &err);
    }
    if (rv != 0) {
        afc_error("while starting consensus: %s", err.msg);
        fprintf(stderr, "aragora-coordinator: %s\n", err.msg);
        d->exit_code = (rv == AFC_ELOCKED || rv == AFC_ECORRUPT) ? EXIT_DATADIR : EXIT_RUNTIME;
        return rv;
    }
    update_joined(d);
    return 0;
}

static int run(struct afc_daemon *d)
{
    if (start_signals(d) != 0 || start_node(d) != 0) {
        if (d->exit_code == 0) {
            d->exit_code = EXIT_RUNTIME;
        }
        /* the node's close path also closes the signal handles */
        afc_node_close(&d->node, node_closed_cb);
        uv_run(d->loop, UV_RUN_DEFAULT);
        return d->exit_code;
    }
    struct afc_err err = {0};
    if (afc_http_start(d, &err) != 0) {
        afc_error("while starting the HTTP API: %s", err.msg);
        fprintf(stderr, "aragora-coordinator: %s\n", err.msg);
        daemon_stop(d, EXIT_RUNTIME);
    } else if (afc_agent_start(d, &err) != 0) {
        afc_error("while starting the failover agent: %s", err.msg);
        fprintf(stderr, "aragora-coordinator: %s\n", err.msg);
        daemon_stop(d, EXIT_RUNTIME);
    } else if (afc_delivery_start(d, &err) != 0) {
        afc_error("while starting DNS, Redis and hooks: %s", err.msg);
        fprintf(stderr, "aragora-coordinator: %s\n", err.msg);
        daemon_stop(d, EXIT_RUNTIME);
    } else {
        afc_event("started", "version=%s raft=%s api=%s%s", AFC_VERSION,
                  afc_config_self(&d->cfg)->raft_addr, d->cfg.api_listen, BUILD_EVENT_FIELD);
    }
    uv_run(d->loop, UV_RUN_DEFAULT);
    return d->exit_code;
}

int main(int argc, char **argv)
{
    static struct afc_daemon d; /* large (the state and config); static storage, not a global API */
    struct args a = {0};
    if (parse_args(argc, argv, &a) != 0 || load_config(&d, a.config) != 0) {
        return EXIT_USAGE;
    }
    if (a.check_only) {
        printf("%s: configuration OK (region %s, %u members)\n", a.config, d.cfg.region,
               d.cfg.n_members);
        return 0;
    }
    afc_log_setup(d.cfg.log_level, d.cfg.log_format == AFC_LOG_JSON, d.cfg.region, stderr);
#ifdef AFC_FAULT_POINTS
    afc_warn("test build: named fault points are compiled in (docs/operations.md)");
    struct afc_err ferr = {0};
    if (afc_fault_points_init(&ferr) != 0) {
        fprintf(stderr, "aragora-coordinator: %s\n", ferr.msg);
        return EXIT_USAGE;
    }
#endif
    uv_loop_t loop;
    uv_loop_init(&loop);
    d.loop = &loop;
    d.started_mono_ms = uv_now(&loop);
    d.started_wall_ms = afc_wall_now_ms();
    int code = run(&d);
    afc_agent_free(&d);
    int rv = uv_loop_close(&loop);
    if (rv != 0) {
        afc_warn("event loop closed with handles still open: %s", uv_strerror(rv));
    }
    afc_notice("stopped (exit %d)", code);
    return code;
}
