/*
 * The lab: N coordinators on loopback, and (unless --no-postgres) one PostgreSQL 15 per region
 * (the first region primary, the others streaming replicas), one Redis per region and one
 * PowerDNS for all, started and stopped by PID, described by DIR/lab.json.
 *
 * lab.c holds the commands (up, status, kill, freeze, thaw, restart, down) and the HTTP polling;
 * lab_proc.c holds what touches processes and files: lab.json, spawning a detached coordinator or
 * service, checking that a recorded PID is still ours, and reading a log's tail. lab_pg.c creates
 * the PostgreSQL clusters (initdb, pg_basebackup, pg_ctl start); lab_pg_ctl.c runs programs (as
 * the postgres user when root), queries with psql, and kills, freezes, restarts and stops them.
 * lab_redis.c runs the regions' Redis servers, lab_dns.c the PowerDNS and its zone.
 *
 * A PID recorded in lab.json is only ever signalled after lab_pid_state() confirmed that
 * /proc/PID/cmdline still carries the argument that names it (a region's config path, a data
 * directory, a redis.conf, a --config-dir): PIDs are reused, names are shared, and the lab must
 * never signal a process it did not start.
 */
#ifndef AFC_LAB_H
#define AFC_LAB_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define LAB_MAX_REGIONS 9
#define LAB_PATH_MAX    512

#define LAB_PG_BIN_DIR "/usr/lib/postgresql/15/bin"
#define LAB_PG_OS_USER "postgres" /* who runs PostgreSQL when the lab runs as root */
/* Who runs Redis and PowerDNS when the lab runs as root: LAB_PG_OS_USER, or this one when there
 * is no such user (PostgreSQL not installed). */
#define LAB_SVC_OS_USER_FALLBACK "nobody"

/* What kill | freeze | thaw | restart act on (REGION given). LAB_WHAT_REGION is the coordinator
 * and its PostgreSQL, not its Redis: a test chooses whether a region's Redis dies with it. */
enum lab_what { LAB_WHAT_COORDINATOR = 0, LAB_WHAT_POSTGRES, LAB_WHAT_REGION, LAB_WHAT_REDIS };

/* Which provider the generated configurations use for the lab's PowerDNS. */
enum lab_dns_mode { LAB_DNS_OFF = 0, LAB_DNS_POWERDNS, LAB_DNS_RFC2136 };

/* A region's Redis: DIR/<region>/redis.conf (named on its command line, which is how the lab
 * recognises it), logging to DIR/<region>/redis.log. No persistence: a restart starts empty. */
struct lab_redis {
    bool enabled;
    char host[32]; /* where it listens: its region's host */
    unsigned port;
    pid_t pid; /* 0 = never started */
    char conf[LAB_PATH_MAX];
    char dir[LAB_PATH_MAX]; /* its working directory, owned by the service user */
    char log[LAB_PATH_MAX];
};

/* The lab's one PowerDNS: DIR/pdns holds pdns.conf, pdns.sqlite3 and its control socket; it is
 * recognised by "--config-dir=DIR/pdns" on its command line. */
struct lab_dns {
    enum lab_dns_mode mode; /* LAB_DNS_OFF: no PowerDNS in this lab */
    char host[32];          /* what the coordinators reach it at: 127.0.0.1, or in namespace
                               mode this machine's address on the bridge (it listens on both) */
    unsigned dns_port;      /* UDP and TCP on 127.0.0.1 (and host) */
    unsigned api_port;      /* the webserver and HTTP API */
    pid_t pid;              /* 0 = never started */
    char dir[LAB_PATH_MAX];
    char log[LAB_PATH_MAX];
    char api_url[64];                    /* http://127.0.0.1:API (without /api/v1) */
    char api_key_file[LAB_PATH_MAX];     /* DIR/pdns-api-key (0600) */
    char tsig_secret_file[LAB_PATH_MAX]; /* DIR/tsig-secret (0600, base64) */
    char zone[64];                       /* "aragora.lab." */
    char name[64];                       /* "primary.aragora.lab." */
    char tsig_name[64];                  /* "aragora-lab-key." */
};

/* A region's PostgreSQL. Node-local settings (port, sockets, listen address, cluster name) live
 * only in `options`, given as pg_ctl -o, never in PGDATA: pg_basebackup and pg_rewind copy
 * postgresql.conf and postgresql.auto.conf from the source node (lab-recipes.md P2). */
struct lab_pg {
    bool enabled;
    char host[32];  /* where it listens (also 127.0.0.1): its region's host */
    char netns[48]; /* its region's network namespace, "" if none */
    unsigned port;
    pid_t pid;     /* the postmaster; 0 = never started */
    char role[16]; /* as created: "primary" or "replica" */
    char data_dir[LAB_PATH_MAX];
    char socket_dir[LAB_PATH_MAX];
    char log[LAB_PATH_MAX];
    char options[LAB_PATH_MAX]; /* the exact pg_ctl -o string */
};

struct lab_region {
    char name[32];
    unsigned id;
    unsigned api_port;
    unsigned raft_port;
    char api_url[128];     /* http://HOST:API_PORT (HOST below) */
    char raft_address[64]; /* HOST:RAFT_PORT */
    char address[32];      /* members[].address: 127.0.10.(i+1), what the DNS name answers */
    char host[32];         /* where its services listen: 127.0.0.1, or in namespace mode its own
                              address on the bridge (lab_netns.c) */
    char netns[48];        /* namespace mode: the network namespace its processes run in; else "" */
    pid_t pid;             /* 0 = never started */
    char config[LAB_PATH_MAX];
    char log[LAB_PATH_MAX];
    char data_dir[LAB_PATH_MAX];
    struct lab_pg pg;
    struct lab_redis redis;
};

/* The userspace fault proxy on every cross-region link (lab_links.c, proxy.c): DIR/chaos holds
 * links.json (its configuration), proxy.log, faults.json and faults.log. Recognised by "proxy"
 * and DIR on its command line. */
struct lab_proxy {
    bool enabled; /* false: lab up --no-proxy, the regions connect directly */
    bool wan;     /* the WAN profile is applied under every fault */
    unsigned control_port;
    pid_t pid;
    char dir[LAB_PATH_MAX];
    char links[LAB_PATH_MAX];
    char log[LAB_PATH_MAX];
};

/* Namespace mode (lab up --netns, root; lab_netns.c): every region in a network namespace of
 * its own on one bridge, faults in the bridge's packet filter. */
struct lab_netns {
    bool enabled;
    char prefix[16];    /* "afc<base port>": the namespaces are PREFIX-<i> and PREFIX-br */
    char bridge[32];    /* PREFIX-br */
    char subnet[16];    /* "10.A.B": region i at .(i+1), the bridge at .253, this machine .254 */
    char host_if[16];   /* this machine's end of its veth to the bridge (PREFIX) */
    char host_addr[24]; /* SUBNET.254 */
};

struct lab {
    char dir[LAB_PATH_MAX]; /* absolute */
    char token_file[LAB_PATH_MAX];
    char coordinator[LAB_PATH_MAX]; /* the binary the lab starts */
    unsigned base_port;
    unsigned snapshot_threshold; /* 0 = the daemon's default */
    unsigned snapshot_trailing;  /* 0 = the daemon's default */
    unsigned n_regions;
    bool postgres;                   /* regions have a PostgreSQL */
    char pg_bin_dir[LAB_PATH_MAX];   /* LAB_PG_BIN_DIR */
    char pg_run_as[32];              /* LAB_PG_OS_USER when the lab runs as root, else "" */
    bool redis;                      /* regions have a Redis */
    char fence_module[LAB_PATH_MAX]; /* the aragora_fence module the PostgreSQLs load, "" = none */
    char fence_sql[LAB_PATH_MAX];    /* its setup SQL, run once on the primary after initdb */
    char svc_run_as[32];             /* who runs Redis and PowerDNS when root, else "" */
    struct lab_dns dns;
    struct lab_proxy proxy;
    struct lab_netns netns;
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

/* State of pid, counting it dead unless its /proc/PID/cmdline has `arg` as one argument (and it
 * is not a zombie). */
enum lab_proc_state lab_pid_state(pid_t pid, const char *arg);
/* /proc/PID/stat read into buf; the fields after "(comm) ", the state letter first, or NULL when
 * there is no such process. */
const char *lab_proc_stat(pid_t pid, char *buf, size_t size);
/* Poll until pid has exited for good (gone, or a zombie with no thread left); false on timeout. */
bool lab_pid_wait_gone(pid_t pid, unsigned timeout_ms);

/* State of r->pid, counting it dead unless its cmdline still names r->config (and not a zombie). */
enum lab_proc_state lab_region_state(const struct lab_region *r);
static inline bool lab_region_is_ours(const struct lab_region *r)
{
    return lab_region_state(r) != LAB_PROC_DEAD;
}
/* Poll until r->pid has exited for good (a zombie or gone: its files, and so its data-directory
 * lock, are closed); false on timeout. Call only after checking the pid was ours. */
bool lab_wait_gone(const struct lab_region *r, unsigned timeout_ms);

/* lab_exec.c: running programs */

/* Run argv (argv[0] an absolute path), stdin /dev/null, inside network namespace netns when not
 * NULL or "", as OS user run_as when not NULL or "" (needs root), and wait at most timeout_ms (then
 * SIGKILL it: it is our child). Output: captured into out (NUL-terminated, truncated) when out !=
 * NULL, else appended to log_path (or dropped when NULL). Returns the exit status, or -1 when it
 * could not run or timed out (with a message). */
int lab_exec(const char *run_as, const char *netns, const char *const argv[], const char *log_path,
             char *out, size_t out_size, unsigned timeout_ms);
/* Start argv (argv[0] absolute) detached: setsid, stdin /dev/null, stdout+stderr appended to
 * log_path, working directory cwd, inside network namespace netns when not NULL or "", as OS
 * user run_as when not NULL or "" (needs root). Sets *out once exec succeeded and the new
 * program's arguments show in /proc (lab_pid_state); prints the reason and returns -1 otherwise. */
int lab_spawn_service(const char *run_as, const char *netns, const char *const argv[],
                      const char *log_path, const char *cwd, pid_t *out);
/* An fd (O_CLOEXEC) on network namespace `netns` for a child to setns() into; -2 when netns is
 * NULL or "" (no namespace: stay here); -1 with a message when it does not exist. */
int lab_netns_open(const char *netns);

/* Start the region's coordinator detached (setsid, stdout+stderr appended to its log, stdin
 * /dev/null). Sets r->pid once exec succeeded; prints the reason and returns -1 otherwise. */
int lab_spawn(const struct lab *lab, struct lab_region *r);

/* Stop a service the lab started, by PID: SIGCONT (a frozen one cannot act), SIGTERM, and SIGKILL
 * after timeout_ms. `arg` identifies it (lab_pid_state). Returns 1 if it was running and is gone,
 * 0 if it was not running, -1 if it survived SIGKILL. */
int lab_stop_service(pid_t pid, const char *arg, const char *label, unsigned timeout_ms);
/* SIGKILL | SIGSTOP | SIGCONT to a service, after checking it is ours; SIGKILL waits until it is
 * gone. Prints what happened. Returns 0 or 1 (exit status). */
int lab_signal_service(pid_t pid, const char *arg, const char *label, int sig);

/* A secret file: n_raw (<= 32) random bytes as hex and a newline, mode 0600. An existing file is
 * kept, so a lab brought up again in the same directory keeps its secrets. */
int lab_ensure_secret(const char *path, size_t n_raw);
/* A directory (mode 0700) or, with is_file, an empty file (0640) owned by OS user `user` (when
 * not NULL or ""; needs root). An existing one is re-owned. Prints and returns -1 on error. */
int lab_make_owned(const char *path, bool is_file, const char *user);

/* The path of this program (/proc/self/exe); -1 with a message. */
int lab_self_exe(char *out, size_t size);
/* Find the coordinator binary: $ARAGORA_COORDINATOR, else next to /proc/self/exe. */
int lab_find_coordinator(char *out, size_t size);

/* Print the last `lines` lines of the region's log to stderr, indented. */
void lab_print_log_tail(const struct lab_region *r, unsigned lines);
/* The same for any file; `label` names whose it is. */
void lab_print_file_tail(const char *path, const char *label, unsigned lines);

/* lab_pg.c: creating the databases */

/* Fill r->pg (port base+10*i+2, DIR/<region>/pgdata, pgsock, postgresql.log, options) for region
 * index i; role primary for i == 0. Checks the socket path fits. Prints and returns -1 on error. */
int lab_pg_prepare(const struct lab *lab, struct lab_region *r, unsigned i);
/* Root only: make DIR traversable for OS user `user` (chmod 0755) and check its parents. */
int lab_pg_check_access(const struct lab *lab, const char *user);
/* Create (or, when DIR/<region>/pgdata already holds a cluster, reuse) and start every region's
 * PostgreSQL: primary first, then replicas by pg_basebackup -R with a slot each; then wait until
 * the primary sees every replica streaming. Saves lab.json after each start. */
int lab_pg_up(struct lab *lab);
/* The coordinator.yaml lines for the lab's PostgreSQL: a member's `postgres` conninfo (reached
 * at `host`: 127.0.0.1, or the proxy's address from another region, lab_via_host), and the
 * region's own `postgres:` section. */
void lab_pg_conninfo(const struct lab_pg *pg, const char *host, char *out, size_t size);
void lab_pg_write_config(FILE *f, const struct lab *lab, const struct lab_region *self);

/* lab_pg_ctl.c: PostgreSQL at run time, and its faults */

/* One SQL statement through psql over TCP as user postgres; the (trimmed) output into out. */
int lab_pg_query(const struct lab *lab, const struct lab_pg *pg, const char *sql, char *out,
                 size_t size);
/* pg_ctl start -w with the region's options and log; records the postmaster's PID. */
int lab_pg_start(const struct lab *lab, struct lab_pg *pg, const char *region);
/* The postmaster's state, counting it dead unless its cmdline names pg->data_dir. */
enum lab_proc_state lab_pg_state(const struct lab_pg *pg);
/* If the recorded postmaster is gone, adopt the one DATADIR/postmaster.pid names (a coordinator
 * restarted it), after checking it belongs to this data directory. */
void lab_pg_refresh(struct lab_pg *pg);
/* kill | freeze | thaw | restart of one region's PostgreSQL. Return 0 or 1 (exit status). */
int lab_pg_signal(struct lab *lab, struct lab_region *r, int sig);
int lab_pg_restart(struct lab *lab, struct lab_region *r);
/* Stop every PostgreSQL of the lab (pg_ctl stop -m fast, SIGKILL by PID after a deadline);
 * returns how many were running, or -1 if some survived. */
int lab_pg_down(struct lab *lab);
/* "primary", "replica", or "-" when it does not answer. */
const char *lab_pg_role(const struct lab *lab, const struct lab_pg *pg);

/* lab_redis.c: one Redis per region */

/* Fill r->redis (port base+10*i+3, DIR/<region>/redis.conf, redis/, redis.log). */
int lab_redis_prepare(const struct lab *lab, struct lab_region *r, unsigned i);
/* Write every redis.conf and start every region's Redis; waits for PONG. Saves lab.json after
 * each start. */
int lab_redis_up(struct lab *lab);
enum lab_proc_state lab_redis_state(const struct lab_redis *rd);
/* The generated coordinator.yaml's `redis:` section. */
void lab_redis_write_config(FILE *f, const struct lab_region *self);
/* kill | freeze | thaw | restart of a region's Redis. Return 0 or 1 (exit status). */
int lab_redis_signal(struct lab *lab, struct lab_region *r, int sig);
int lab_redis_restart(struct lab *lab, struct lab_region *r);
/* Stop every Redis of the lab; how many were running, or -1 if some survived SIGKILL. */
int lab_redis_down(struct lab *lab);
/* The REDIS table of `lab status`. */
void lab_redis_print_status(const struct lab *lab);

/* lab_dns.c: the PowerDNS */

/* Fill lab->dns for `mode` (ports base+10*N and base+10*N+1, DIR/pdns, the names). */
int lab_dns_prepare(struct lab *lab, enum lab_dns_mode mode);
/* Create (or reuse) DIR/pdns, start pdns_server, wait for its API, then make sure the zone (with
 * the primary's A and TXT stamp when the lab has PostgreSQL), the TSIG key and its
 * TSIG-ALLOW-DNSUPDATE metadata exist; writes DIR/tsig-secret. Saves lab.json. */
int lab_dns_up(struct lab *lab);
enum lab_proc_state lab_dns_state(const struct lab_dns *d);
/* The generated coordinator.yaml's `dns:` section. */
void lab_dns_write_config(FILE *f, const struct lab *lab);
/* kill | freeze | thaw | restart of the PowerDNS. Return 0 or 1 (exit status). */
int lab_dns_signal(struct lab *lab, int sig);
int lab_dns_restart(struct lab *lab);
/* Stop it: 1 if it was running, 0 if not, -1 if it survived SIGKILL. */
int lab_dns_down(struct lab *lab);
/* The DNS lines of `lab status`: process, ports, and what the name holds (through the API). */
void lab_dns_print_status(const struct lab *lab);
const char *lab_dns_mode_name(enum lab_dns_mode mode);

/* lab_links.c: the fault proxy on the cross-region links */

/* Fill lab->proxy (control port base+10*N+5, DIR/chaos); creates DIR/chaos when enabled. */
int lab_proxy_prepare(struct lab *lab, bool enabled, bool wan);
/* The host region `from` uses to reach a service of region `to`: 127.1.<from+1>.<to+1> (the
 * proxy) when the proxy is on and from != to, else 127.0.0.1. */
void lab_via_host(const struct lab *lab, unsigned from, unsigned to, char *out, size_t size);
/* Write DIR/chaos/links.json, start the proxy, wait for its control API. Saves lab.json. */
int lab_proxy_up(struct lab *lab);
/* 1 stopped, 0 was not running, -1 survived SIGKILL. */
int lab_proxy_down(struct lab *lab);
/* The URL the coordinators use for the PowerDNS API when the fault layer fronts it (for `dns
 * 429`: control port + 1); -1 when it does not (no fault layer, or not the API provider). */
int lab_dns_front_url(const struct lab *lab, char *out, size_t size);
enum lab_proc_state lab_proxy_state(const struct lab *lab);
void lab_proxy_print_status(const struct lab *lab);

/* lab_netns.c: namespace mode */

/* Fill lab->netns (names and subnet from the base port) when enabled; needs root. */
int lab_netns_prepare(struct lab *lab, bool enabled);
/* r->host and r->netns for region index i: 127.0.0.1 and none, or its namespace's. */
void lab_netns_region(const struct lab *lab, struct lab_region *r, unsigned i);
/* Create the namespaces, the bridge and the veths (removing stale empty ones first). */
int lab_netns_up(struct lab *lab);
/* Delete them (after every process in them stopped); -1 if one still has processes. */
int lab_netns_down(const struct lab *lab);

/* lab_http.c: HTTP (libcurl, blocking). method "GET"/"POST"/"PUT"/"DELETE"; header one whole
 * "Name: value" line or NULL; body JSON or NULL. Returns the HTTP status, or 0 when nothing
 * answered; the whole answer into *out (malloc'd, NUL-terminated; NULL when nothing answered)
 * when out is not NULL. */
long lab_http_request(const char *method, const char *url, const char *header, const char *body,
                      long timeout_ms, char **out);
/* The same with api_key sent as X-API-Key when not NULL, and the answer's first
 * LAB_HTTP_OUT_MAX - 1 bytes into out (NUL-terminated) when not NULL. */
#define LAB_HTTP_OUT_MAX 8192
long lab_http(const char *method, const char *url, const char *api_key, const char *body,
              long timeout_ms, char *out);

/* Monotonic milliseconds. */
unsigned long long lab_now_ms(void);
void lab_sleep_ms(unsigned ms);

#endif
