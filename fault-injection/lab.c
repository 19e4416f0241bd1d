/*
 * `aragora-chaos lab`: N coordinators on loopback, each with its own generated config, data
 * directory and log under DIR, and (unless --no-postgres) one PostgreSQL per region (lab_pg.c),
 * one Redis per region (lab_redis.c) and one PowerDNS (lab_dns.c), described by DIR/lab.json.
 *
 *   up       generate DIR/token and DIR/<region>/coordinator.yaml, create and start the
 *            PostgreSQL servers, the Redis servers and the PowerDNS (with its zone), start every
 *            coordinator detached, record the PIDs, and return once some node answers /leader 200
 *   status   per region: process alive/stopped/dead, Raft role and leader from /v1/cluster; then
 *            PostgreSQL's process state and role (pg_is_in_recovery()), each Redis, the PowerDNS
 *   kill | freeze | thaw | restart REGION [--what coordinator|postgres|region|redis]
 *   kill | freeze | thaw | restart dns
 *            SIGKILL | SIGSTOP | SIGCONT | kill + start again
 *   down     SIGCONT + SIGTERM to every recorded coordinator PID, SIGKILL after 10 s; then a fast
 *            stop of every PostgreSQL; then the Redis servers and the PowerDNS; safe to repeat
 *
 * Ports: region i (0-based) serves its API on BASE+10*i, Raft on BASE+10*i+1, PostgreSQL on
 * BASE+10*i+2 and Redis on BASE+10*i+3; the PowerDNS answers DNS on BASE+10*N and its API on
 * BASE+10*N+1 (N regions).
 * Every signal goes through lab_pid_state() first (lab.h): never to a PID that is not ours.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "lab.h"

#define LAB_DEFAULT_BASE_PORT 21000u
#define LAB_UP_TIMEOUT_MS     60000u
#define LAB_DOWN_TIMEOUT_MS   10000u

static const char *const region_names[LAB_MAX_REGIONS] = {
    "us-east-2",      "eu-west-1", "ap-south-1",   "us-west-2",  "eu-central-1",
    "ap-northeast-1", "sa-east-1", "ca-central-1", "af-south-1",
};

struct lab_opts {
    const char *dir;
    const char *region;
    const char *log_level;
    unsigned regions;
    unsigned base_port;
    unsigned snapshot_threshold;
    unsigned snapshot_trailing;
    bool no_postgres;
    bool sync;     /* --sync: replication.mode sync in every coordinator.yaml */
    bool no_fence; /* --no-fence: PostgreSQL without the in-database fence */
    bool no_proxy; /* --no-proxy: regions connect directly, no fault layer */
    bool wan;      /* --wan: the WAN profile on every cross-region link */
    bool netns;    /* --netns: regions in network namespaces, faults in nftables (root) */
    int dns;   /* -1: the default (powerdns with PostgreSQL, else none); else enum lab_dns_mode */
    int redis; /* -1: the default (with PostgreSQL); 0 --no-redis; 1 --redis */
    enum lab_what what;
};

static const char lab_usage[] =
    "Usage: aragora-chaos lab COMMAND --dir DIR [OPTIONS]\n"
    "\n"
    "  up --dir DIR [--regions N] [--base-port P] [--snapshot-threshold N]\n"
    "     [--snapshot-trailing N] [--log-level LEVEL] [--no-postgres]\n"
    "     [--dns powerdns|rfc2136|none] [--no-dns] [--redis] [--no-redis] [--sync]\n"
    "     [--no-fence] [--no-proxy] [--wan] [--netns]\n"
    "        start N coordinators (default 3: us-east-2, eu-west-1, ap-south-1) on loopback,\n"
    "        one PostgreSQL 15 each (the first region primary, the others streaming\n"
    "        replicas; --no-postgres: coordinators only), one Redis each and one PowerDNS\n"
    "        that holds primary.aragora.lab. (the coordinators use it through its API, or\n"
    "        with --dns rfc2136 through RFC 2136 updates); without PostgreSQL there is no\n"
    "        primary, so Redis and DNS are off unless --redis / --dns ask for them.\n"
    "        Region i serves its API on P+10*i, Raft on P+10*i+1, PostgreSQL on P+10*i+2 and\n"
    "        Redis on P+10*i+3; PowerDNS answers DNS on P+10*N and its API on P+10*N+1\n"
    "        (default P = 21000); returns 0 once a leader is ready (bounded: 60 s), and\n"
    "        writes DIR/lab.json; --no-fence: PostgreSQL without the in-database fence\n"
    "        (pg_fence/, docs/fencing.md: loaded by default, kept open by the coordinators);\n"
    "        --sync: the coordinators run with replication.mode\n"
    "        sync (the primary waits on ANY 1 of its streaming replicas);\n"
    "        every cross-region connection (Raft, API, PostgreSQL replication and probes)\n"
    "        goes through the fault proxy (control API on P+10*N+5; `aragora-chaos fault`,\n"
    "        docs/chaos.md); --no-proxy: regions connect directly; --wan: the WAN profile\n"
    "        (80-250 ms round trips with jitter) on every cross-region link; --netns (root):\n"
    "        each region in a network namespace of its own on one bridge instead, the same\n"
    "        faults as nftables rules and an NFQUEUE delayer (docs/chaos.md)\n"
    "  status --dir DIR                  process state, Raft role and leader of each region,\n"
    "                                    its PostgreSQL's process state and role, its Redis,\n"
    "                                    and the PowerDNS with what the name holds\n"
    "  kill --dir DIR REGION             SIGKILL the region's coordinator\n"
    "  freeze --dir DIR REGION           SIGSTOP it\n"
    "  thaw --dir DIR REGION             SIGCONT it\n"
    "  restart --dir DIR REGION          kill it (if running) and start it again, same config\n"
    "        these four take --what coordinator|postgres|region|redis (default coordinator;\n"
    "        postgres: the postmaster, and for freeze/thaw its children too; region: the\n"
    "        coordinator and its PostgreSQL; redis: the region's Redis, empty after restart)\n"
    "  kill|freeze|thaw|restart --dir DIR dns\n"
    "                                    the same for the PowerDNS (its zone survives)\n"
    "  down --dir DIR                    stop every coordinator, PostgreSQL, Redis and the\n"
    "                                    PowerDNS of the lab (safe to repeat)\n"
    "\n"
    "Files: DIR/token (API bearer token, 0600), DIR/cluster-secret (authenticates Raft\n"
    "connections, 0600), DIR/pdns-api-key and DIR/tsig-secret (0600), DIR/pdns/ (pdns.conf,\n"
    "pdns.sqlite3), DIR/pdns.log, DIR/lab.json, and per region\n"
    "DIR/<region>/coordinator.yaml, DIR/<region>/data, DIR/<region>/coordinator.log,\n"
    "DIR/<region>/pgdata, DIR/<region>/pgsock, DIR/<region>/postgresql.log,\n"
    "DIR/<region>/redis.conf, DIR/<region>/redis.log.\n"
    "As root, PostgreSQL, Redis and PowerDNS run as the OS user postgres, and DIR is made\n"
    "mode 0755. The coordinator binary is $ARAGORA_COORDINATOR, else the one next to\n"
    "aragora-chaos.\n";

/* ---- HTTP ---- */

/* GET url; returns the HTTP status, or 0 when the node did not answer. body: 8 KiB or NULL. */
static long http_get(const char *url, long timeout_ms, char *body)
{
    return lab_http("GET", url, NULL, NULL, timeout_ms, body);
}

static long region_get(const struct lab_region *r, const char *path, long timeout_ms, char *body)
{
    char url[256];
    snprintf(url, sizeof url, "%s%s", r->api_url, path);
    return http_get(url, timeout_ms, body);
}

/* ---- options ---- */

static int parse_uint(const char *opt, const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "aragora-chaos: %s: expected an integer from %u to %u, got '%s'\n", opt, lo,
                hi, s);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

static int parse_what(const char *s, enum lab_what *out)
{
    static const char *const names[] = {"coordinator", "postgres", "region", "redis"};
    for (unsigned k = 0; k < 4; k++) {
        if (strcmp(s, names[k]) == 0) {
            *out = (enum lab_what)k;
            return 0;
        }
    }
    fprintf(stderr,
            "aragora-chaos: --what: expected coordinator, postgres, region or redis, got '%s'\n",
            s);
    return -1;
}

static int parse_dns(const char *s, int *out)
{
    static const enum lab_dns_mode modes[] = {LAB_DNS_OFF, LAB_DNS_POWERDNS, LAB_DNS_RFC2136};
    for (unsigned k = 0; k < 3; k++) {
        if (strcmp(s, lab_dns_mode_name(modes[k])) == 0) {
            *out = (int)modes[k];
            return 0;
        }
    }
    fprintf(stderr, "aragora-chaos: --dns: expected powerdns, rfc2136 or none, got '%s'\n", s);
    return -1;
}

/* The in-database fence, built next to aragora-coordinator (build/pg_fence/). */
static int find_fence_module(struct lab *lab)
{
    char dir[LAB_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", lab->coordinator);
    char *slash = strrchr(dir, '/');
    if (slash != NULL)
        *slash = '\0';
    int n1 =
        snprintf(lab->fence_module, sizeof lab->fence_module, "%s/pg_fence/aragora_fence.so", dir);
    int n2 = snprintf(lab->fence_sql, sizeof lab->fence_sql, "%s/pg_fence/aragora_fence.sql", dir);
    if (n1 < 0 || (size_t)n1 >= sizeof lab->fence_module || n2 < 0 ||
        (size_t)n2 >= sizeof lab->fence_sql || access(lab->fence_module, R_OK) != 0 ||
        access(lab->fence_sql, R_OK) != 0) {
        fprintf(stderr,
                "aragora-chaos: no in-database fence module next to %s (%s): build it (ninja) "
                "or start the lab with --no-fence\n",
                lab->coordinator, lab->fence_module);
        lab->fence_module[0] = '\0';
        return -1;
    }
    return 0;
}

static int parse_opts(struct lab_opts *o, int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        bool flag = true;
        if (strcmp(a, "--no-postgres") == 0)
            o->no_postgres = true;
        else if (strcmp(a, "--no-dns") == 0)
            o->dns = LAB_DNS_OFF;
        else if (strcmp(a, "--no-redis") == 0)
            o->redis = 0;
        else if (strcmp(a, "--redis") == 0)
            o->redis = 1;
        else if (strcmp(a, "--sync") == 0)
            o->sync = true;
        else if (strcmp(a, "--no-proxy") == 0)
            o->no_proxy = true;
        else if (strcmp(a, "--wan") == 0)
            o->wan = true;
        else if (strcmp(a, "--netns") == 0)
            o->netns = true;
        else if (strcmp(a, "--no-fence") == 0)
            o->no_fence = true;
        else
            flag = false;
        if (flag)
            continue;
        bool takes_value = a[0] == '-';
        if (takes_value && v == NULL) {
            fprintf(stderr, "aragora-chaos: option '%s' needs a value\n", a);
            return -1;
        }
        if (strcmp(a, "--dir") == 0)
            o->dir = v;
        else if (strcmp(a, "--regions") == 0)
            rc = parse_uint(a, v, 1, LAB_MAX_REGIONS, &o->regions);
        else if (strcmp(a, "--base-port") == 0)
            rc = parse_uint(a, v, 1024, 32767, &o->base_port);
        else if (strcmp(a, "--snapshot-threshold") == 0)
            rc = parse_uint(a, v, 1, 1000000, &o->snapshot_threshold);
        else if (strcmp(a, "--snapshot-trailing") == 0)
            rc = parse_uint(a, v, 1, 1000000, &o->snapshot_trailing);
        else if (strcmp(a, "--log-level") == 0)
            o->log_level = v;
        else if (strcmp(a, "--what") == 0)
            rc = parse_what(v, &o->what);
        else if (strcmp(a, "--dns") == 0)
            rc = parse_dns(v, &o->dns);
        else if (a[0] == '-') {
            fprintf(stderr, "aragora-chaos: unknown option '%s'\n%s", a, lab_usage);
            return -1;
        } else if (o->region == NULL) {
            o->region = a;
            takes_value = false;
        } else {
            fprintf(stderr, "aragora-chaos: unexpected argument '%s'\n", a);
            return -1;
        }
        if (rc != 0)
            return -1;
        if (takes_value)
            i++;
    }
    if (o->dir == NULL) {
        fprintf(stderr, "aragora-chaos: lab %s: --dir DIR is required\n", argv[1]);
        return -1;
    }
    return 0;
}

/* ---- lab up ---- */

static int make_dir(const char *path, mode_t mode)
{
    if (mkdir(path, mode) == 0 || errno == EEXIST)
        return 0;
    fprintf(stderr, "aragora-chaos: mkdir %s: %s\n", path, strerror(errno));
    return -1;
}

/* out = dir/name; -1 (with a message) if it does not fit. */
static int path_join(char *out, size_t size, const char *dir, const char *name)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size) {
        fprintf(stderr, "aragora-chaos: path too long: %s/%s\n", dir, name);
        return -1;
    }
    return 0;
}

static int write_config(const struct lab *lab, const struct lab_region *self, const char *log_level,
                        bool sync)
{
    FILE *f = fopen(self->config, "w");
    if (f == NULL) {
        fprintf(stderr, "aragora-chaos: %s: %s\n", self->config, strerror(errno));
        return -1;
    }
    fprintf(f, "# Generated by aragora-chaos lab up; see docs/configuration.md.\n");
    fprintf(f, "region: %s\ndata_dir: \"%s\"\nmembers:\n", self->name, self->data_dir);
    unsigned me = (unsigned)(self - lab->regions);
    for (unsigned i = 0; i < lab->n_regions; i++) {
        const struct lab_region *m = &lab->regions[i];
        char conninfo[128], via[32];
        lab_via_host(lab, me, i, via, sizeof via);
        fprintf(f,
                "  - name: %s\n    id: %u\n    raft: \"%s\"\n    api: \"http://%s:%u\"\n"
                "    address: \"%s\"\n",
                m->name, m->id, m->raft_address, via, m->api_port, m->address);
        if (i != me && lab->proxy.enabled && !lab->netns.enabled)
            fprintf(f, "    raft_dial: \"%s:%u\"\n", via, m->raft_port);
        lab_pg_conninfo(&m->pg, via, conninfo, sizeof conninfo);
        if (m->pg.enabled)
            fprintf(f, "    postgres: \"%s\"\n", conninfo);
    }
    fprintf(f, "raft:\n  election_timeout_ms: 1000\n  heartbeat_timeout_ms: 100\n");
    if (lab->snapshot_threshold > 0)
        fprintf(f, "  snapshot_threshold: %u\n", lab->snapshot_threshold);
    if (lab->snapshot_trailing > 0)
        fprintf(f, "  snapshot_trailing: %u\n", lab->snapshot_trailing);
    fprintf(f, "api:\n  listen: \"%s:%u\"\n  token_file: \"%s\"\n", self->host, self->api_port,
            lab->token_file);
    if (lab->netns.enabled) /* its namespace's bridge address: the only way in from outside */
        fprintf(f, "  allow_remote: true\n");
    fprintf(f, "cluster:\n  secret_file: \"%s/cluster-secret\"\n", lab->dir);
    fprintf(f, "log:\n  level: %s\n  format: text\n", log_level);
    if (self->pg.enabled)
        lab_pg_write_config(f, lab, self);
    if (sync)
        fprintf(f, "replication:\n  mode: sync\n");
    if (self->redis.enabled)
        lab_redis_write_config(f, self);
    if (lab->dns.mode != LAB_DNS_OFF)
        lab_dns_write_config(f, lab);
    if (fclose(f) != 0) {
        fprintf(stderr, "aragora-chaos: %s: %s\n", self->config, strerror(errno));
        return -1;
    }
    return 0;
}

/* Fill the lab description from the options and lay out DIR. */
static int prepare_lab(struct lab *lab, const struct lab_opts *o)
{
    char region_dir[LAB_PATH_MAX];
    if (make_dir(o->dir, 0755) != 0)
        return -1;
    if (realpath(o->dir, lab->dir) == NULL) {
        fprintf(stderr, "aragora-chaos: %s: %s\n", o->dir, strerror(errno));
        return -1;
    }
    if (lab_find_coordinator(lab->coordinator, sizeof lab->coordinator) != 0)
        return -1;
    lab->base_port = o->base_port;
    lab->n_regions = o->regions;
    lab->snapshot_threshold = o->snapshot_threshold;
    lab->snapshot_trailing = o->snapshot_trailing;
    lab->postgres = !o->no_postgres;
    snprintf(lab->pg_bin_dir, sizeof lab->pg_bin_dir, "%s", LAB_PG_BIN_DIR);
    if (lab->postgres && geteuid() == 0)
        snprintf(lab->pg_run_as, sizeof lab->pg_run_as, "%s", LAB_PG_OS_USER);
    if (lab->postgres && !o->no_fence && find_fence_module(lab) != 0)
        return -1;
    lab->redis = o->redis >= 0 ? o->redis == 1 : lab->postgres;
    enum lab_dns_mode dns = o->dns >= 0     ? (enum lab_dns_mode)o->dns
                            : lab->postgres ? LAB_DNS_POWERDNS
                                            : LAB_DNS_OFF;
    if ((lab->redis || dns != LAB_DNS_OFF) && geteuid() == 0)
        snprintf(lab->svc_run_as, sizeof lab->svc_run_as, "%s",
                 getpwnam(LAB_PG_OS_USER) != NULL ? LAB_PG_OS_USER : LAB_SVC_OS_USER_FALLBACK);
    if (lab->snapshot_threshold > 0 && lab->snapshot_trailing == 0)
        lab->snapshot_trailing = lab->snapshot_threshold / 2 > 0 ? lab->snapshot_threshold / 2 : 1;
    char secret_file[LAB_PATH_MAX];
    if (path_join(lab->token_file, sizeof lab->token_file, lab->dir, "token") != 0 ||
        lab_ensure_secret(lab->token_file, 32) != 0 ||
        path_join(secret_file, sizeof secret_file, lab->dir, "cluster-secret") != 0 ||
        lab_ensure_secret(secret_file, 24) != 0 || lab_netns_prepare(lab, o->netns) != 0 ||
        lab_dns_prepare(lab, dns) != 0 || lab_proxy_prepare(lab, !o->no_proxy, o->wan) != 0)
        return -1;
    for (unsigned i = 0; i < lab->n_regions; i++) {
        struct lab_region *r = &lab->regions[i];
        snprintf(r->name, sizeof r->name, "%s", region_names[i]);
        r->id = i + 1;
        r->api_port = lab->base_port + 10 * i;
        r->raft_port = r->api_port + 1;
        lab_netns_region(lab, r, i);
        char host[sizeof r->host]; /* a copy: gcc's -Wrestrict cannot tell r's fields apart */
        memcpy(host, r->host, sizeof host);
        snprintf(r->api_url, sizeof r->api_url, "http://%s:%u", host, r->api_port);
        snprintf(r->raft_address, sizeof r->raft_address, "%s:%u", host, r->raft_port);
        snprintf(r->address, sizeof r->address, "127.0.10.%u", i + 1);
        if (path_join(region_dir, sizeof region_dir, lab->dir, r->name) != 0 ||
            path_join(r->config, sizeof r->config, region_dir, "coordinator.yaml") != 0 ||
            path_join(r->log, sizeof r->log, region_dir, "coordinator.log") != 0 ||
            path_join(r->data_dir, sizeof r->data_dir, region_dir, "data") != 0)
            return -1;
        if (make_dir(region_dir, 0755) != 0 || make_dir(r->data_dir, 0700) != 0)
            return -1;
        if (lab->postgres && lab_pg_prepare(lab, r, i) != 0)
            return -1;
        if (lab->redis && lab_redis_prepare(lab, r, i) != 0)
            return -1;
    }
    for (unsigned i = 0; i < lab->n_regions; i++)
        if (write_config(lab, &lab->regions[i], o->log_level, o->sync) != 0)
            return -1;
    return 0;
}

/* Can we bind 127.0.0.1:port (TCP, or UDP)? A taken port would make a server fail, or worse, let
 * another process answer for it. */
static bool port_is_free(unsigned port, int type)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1;
    int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return true; /* cannot tell; the server will say */
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static int port_taken(const char *who, unsigned port, const char *proto)
{
    fprintf(stderr,
            "aragora-chaos: %s: port %u (%s) on 127.0.0.1 is in use; pick another --base-port\n",
            who, port, proto);
    return -1;
}

static int check_ports(const struct lab *lab)
{
    for (unsigned i = 0; i < lab->n_regions; i++) {
        const struct lab_region *r = &lab->regions[i];
        unsigned ports[4] = {r->api_port, r->raft_port, r->pg.port, r->redis.port};
        bool used[4] = {true, true, r->pg.enabled, r->redis.enabled};
        for (unsigned k = 0; k < 4; k++)
            if (used[k] && !port_is_free(ports[k], SOCK_STREAM))
                return port_taken(r->name, ports[k], "tcp");
    }
    if (lab->proxy.enabled && !port_is_free(lab->proxy.control_port, SOCK_STREAM))
        return port_taken("fault proxy", lab->proxy.control_port, "tcp");
    const struct lab_dns *d = &lab->dns;
    if (d->mode == LAB_DNS_OFF)
        return 0;
    if (!port_is_free(d->dns_port, SOCK_STREAM))
        return port_taken("dns", d->dns_port, "tcp");
    if (!port_is_free(d->dns_port, SOCK_DGRAM))
        return port_taken("dns", d->dns_port, "udp");
    if (!port_is_free(d->api_port, SOCK_STREAM))
        return port_taken("dns", d->api_port, "tcp");
    char front[96];
    if (lab_dns_front_url(lab, front, sizeof front) == 0 &&
        !port_is_free(lab->proxy.control_port + 1, SOCK_STREAM))
        return port_taken("dns api front", lab->proxy.control_port + 1, "tcp");
    return 0;
}

static void print_all_log_tails(const struct lab *lab)
{
    for (unsigned i = 0; i < lab->n_regions; i++)
        lab_print_log_tail(&lab->regions[i], 20);
}

static unsigned count_alive(const struct lab *lab)
{
    unsigned n = 0;
    for (unsigned i = 0; i < lab->n_regions; i++)
        n += lab_region_is_ours(&lab->regions[i]) ? 1 : 0;
    return n;
}

/* Poll /leader until one node answers 200. Fails early when a coordinator exits. */
static int wait_for_leader(const struct lab *lab, unsigned timeout_ms)
{
    unsigned long long start = lab_now_ms();
    while (lab_now_ms() - start < timeout_ms) {
        for (unsigned i = 0; i < lab->n_regions; i++) {
            const struct lab_region *r = &lab->regions[i];
            if (!lab_region_is_ours(r)) {
                fprintf(stderr, "aragora-chaos: %s: coordinator (pid %d) exited during start-up\n",
                        r->name, (int)r->pid);
                lab_print_log_tail(r, 20);
                return -1;
            }
            if (region_get(r, "/leader", 500, NULL) == 200 && count_alive(lab) == lab->n_regions) {
                printf("leader: %s (ready after %llu ms)\n", r->name, lab_now_ms() - start);
                return 0;
            }
        }
        lab_sleep_ms(100);
    }
    fprintf(stderr, "aragora-chaos: no ready leader within %u s\n", timeout_ms / 1000);
    print_all_log_tails(lab);
    return -1;
}

/* With the in-database fence, the primary refuses writes until its coordinator has adopted it
 * and renewed the fence: wait for that, so a lab that is "up" accepts writes. Not fatal. */
static void wait_fence_open(const struct lab *lab, unsigned timeout_ms)
{
    unsigned long long start = lab_now_ms();
    char out[64] = "";
    while (lab_now_ms() - start < timeout_ms) {
        if (lab_pg_query(lab, &lab->regions[0].pg, "SELECT (aragora.fence_state()).open", out,
                         sizeof out) == 0 &&
            strcmp(out, "t") == 0) {
            printf("fence: %s's PostgreSQL accepts writes (fence open after %llu ms)\n",
                   lab->regions[0].name, lab_now_ms() - start);
            return;
        }
        lab_sleep_ms(100);
    }
    fprintf(stderr, "aragora-chaos: %s's fence still closed after %u s (see its log)\n",
            lab->regions[0].name, timeout_ms / 1000);
}

/* Then every node ready in the sense of /health/ready (it has applied the member list the
 * leader commits right after its election), so the first `status` a newcomer runs shows a settled
 * cluster. Not fatal: a node that is slow here is reported and the lab stays up. */
static void wait_all_ready(const struct lab *lab, unsigned timeout_ms)
{
    unsigned long long start = lab_now_ms();
    unsigned ready = 0;
    while (lab_now_ms() - start < timeout_ms) {
        ready = 0;
        for (unsigned i = 0; i < lab->n_regions; i++)
            ready += region_get(&lab->regions[i], "/health/ready", 500, NULL) == 200;
        if (ready == lab->n_regions)
            return;
        lab_sleep_ms(50);
    }
    fprintf(stderr, "aragora-chaos: only %u of %u nodes ready after %u s (see their logs)\n", ready,
            lab->n_regions, timeout_ms / 1000);
}

/* What still runs of a lab in this directory, named for the message; NULL if nothing. */
static const char *still_running(const struct lab *old, pid_t *pid)
{
    static char what[64];
    if (lab_dns_state(&old->dns) != LAB_PROC_DEAD) {
        *pid = old->dns.pid;
        return "dns";
    }
    if (lab_proxy_state(old) != LAB_PROC_DEAD) {
        *pid = old->proxy.pid;
        return "fault proxy";
    }
    for (unsigned i = 0; i < old->n_regions; i++) {
        const struct lab_region *r = &old->regions[i];
        const char *kind = lab_region_is_ours(r)                         ? "coordinator"
                           : lab_pg_state(&r->pg) != LAB_PROC_DEAD       ? "postgres"
                           : lab_redis_state(&r->redis) != LAB_PROC_DEAD ? "redis"
                                                                         : NULL;
        if (kind != NULL) {
            *pid = kind[0] == 'c' ? r->pid : kind[0] == 'p' ? r->pg.pid : r->redis.pid;
            snprintf(what, sizeof what, "%s %s", r->name, kind);
            return what;
        }
    }
    return NULL;
}

/* As root: DIR must be enterable by whoever runs the servers. */
static int check_access(const struct lab *lab)
{
    if (lab->pg_run_as[0] != '\0' && lab_pg_check_access(lab, lab->pg_run_as) != 0)
        return -1;
    if (lab->svc_run_as[0] != '\0' && strcmp(lab->svc_run_as, lab->pg_run_as) != 0 &&
        lab_pg_check_access(lab, lab->svc_run_as) != 0)
        return -1;
    return 0;
}

/* The fault proxy first (replication crosses it), PostgreSQL (the zone names its primary), then
 * Redis, then the PowerDNS. */
static int start_servers(struct lab *lab)
{
    /* saved first: if the namespaces are half built, `lab down` finds and removes them */
    if ((lab->netns.enabled && lab_save(lab) != 0) || lab_netns_up(lab) != 0 ||
        lab_proxy_up(lab) != 0 || (lab->postgres && lab_pg_up(lab) != 0) ||
        (lab->redis && lab_redis_up(lab) != 0) ||
        (lab->dns.mode != LAB_DNS_OFF && lab_dns_up(lab) != 0)) {
        fprintf(stderr, "aragora-chaos: run 'aragora-chaos lab down --dir %s'\n", lab->dir);
        return -1;
    }
    return 0;
}

static int cmd_up(const struct lab_opts *o)
{
    struct lab lab, old;
    pid_t pid = 0;
    int rc = lab_load(&old, o->dir);
    if (rc == -1)
        return 1;
    const char *running = rc == 0 ? still_running(&old, &pid) : NULL;
    if (running != NULL) {
        fprintf(stderr,
                "aragora-chaos: a lab is already running in %s (%s, pid %d); run "
                "'aragora-chaos lab down --dir %s' first\n",
                o->dir, running, (int)pid, o->dir);
        return 1;
    }
    /* the highest port: the PowerDNS API front after the fault layer's control API */
    if (o->base_port + 10 * o->regions + 6 >= 32768) {
        fprintf(stderr, "aragora-chaos: ports from %u for %u regions would pass 32767\n",
                o->base_port, o->regions);
        return 2;
    }
    if (o->netns && o->no_proxy) {
        fprintf(stderr, "aragora-chaos: --netns and --no-proxy: namespace mode is a fault layer "
                        "of its own; pick one\n");
        return 2;
    }
    memset(&lab, 0, sizeof lab);
    if (prepare_lab(&lab, o) != 0 || check_ports(&lab) != 0 || check_access(&lab) != 0 ||
        start_servers(&lab) != 0)
        return 1;
    for (unsigned i = 0; i < lab.n_regions; i++) {
        struct lab_region *r = &lab.regions[i];
        rc = lab_spawn(&lab, r);
        if (lab_save(&lab) != 0 || rc != 0) {
            fprintf(stderr, "aragora-chaos: run 'aragora-chaos lab down --dir %s'\n", lab.dir);
            return 1;
        }
        printf("%-14s pid %-7d api %s  raft %s\n", r->name, (int)r->pid, r->api_url,
               r->raft_address);
    }
    fflush(stdout);
    if (wait_for_leader(&lab, LAB_UP_TIMEOUT_MS) != 0) {
        fprintf(stderr,
                "aragora-chaos: lab not ready; see the logs above, then run "
                "'aragora-chaos lab down --dir %s'\n",
                lab.dir);
        return 1;
    }
    wait_all_ready(&lab, 10000);
    if (lab.fence_module[0] != '\0')
        wait_fence_open(&lab, 30000);
    printf("lab: %s/lab.json; token: %s\n", lab.dir, lab.token_file);
    printf("try: aragoractl --endpoint %s status\n", lab.regions[0].api_url);
    if (lab.dns.mode != LAB_DNS_OFF)
        printf("     dig @127.0.0.1 -p %u %s A +short\n", lab.dns.dns_port, lab.dns.name);
    return 0;
}

/* ---- status, signals, restart, down ---- */

static int load_existing(struct lab *lab, const char *dir)
{
    int rc = lab_load(lab, dir);
    if (rc == -2)
        fprintf(stderr, "aragora-chaos: no lab in %s (no lab.json)\n", dir);
    return rc;
}

static void print_region_status(const struct lab_region *r)
{
    char body[8192];
    const char *role = "-", *leader = "-", *ready = "-";
    long long term = -1;
    enum lab_proc_state st = lab_region_state(r);
    json_t *doc = NULL;
    if (st == LAB_PROC_ALIVE && region_get(r, "/v1/cluster", 1000, body) == 200)
        doc = json_loads(body, 0, NULL);
    if (doc != NULL) {
        json_t *node = json_object_get(doc, "node");
        const char *s = json_string_value(json_object_get(node, "raft_state"));
        role = s != NULL ? s : "?";
        s = json_string_value(json_object_get(json_object_get(doc, "leader"), "region"));
        leader = s != NULL ? s : "none";
        ready = json_is_true(json_object_get(node, "ready")) ? "yes" : "no";
        term = (long long)json_integer_value(json_object_get(node, "term"));
    } else if (st == LAB_PROC_ALIVE) {
        role = "no-answer";
    }
    char term_buf[24] = "-";
    if (term >= 0)
        snprintf(term_buf, sizeof term_buf, "%lld", term);
    printf("%-14s %-7d %-8s %-10s %-5s %-5s %-14s %s\n", r->name, (int)r->pid,
           lab_proc_state_name(st), role, ready, term_buf, leader, r->api_url);
    json_decref(doc);
}

/* The PostgreSQL table: role as it answers now (pg_is_in_recovery()) and as created. */
static void print_pg_status(const struct lab *lab)
{
    printf("\n%-14s %-7s %-8s %-8s %-8s %-6s %s\n", "POSTGRES", "PID", "PROCESS", "ROLE", "CREATED",
           "PORT", "DATA");
    for (unsigned i = 0; i < lab->n_regions; i++) {
        const struct lab_region *r = &lab->regions[i];
        printf("%-14s %-7d %-8s %-8s %-8s %-6u %s\n", r->name, (int)r->pg.pid,
               lab_proc_state_name(lab_pg_state(&r->pg)), lab_pg_role(lab, &r->pg), r->pg.role,
               r->pg.port, r->pg.data_dir);
    }
}

static int cmd_status(const struct lab_opts *o)
{
    struct lab lab;
    if (load_existing(&lab, o->dir) != 0)
        return 1;
    printf("%-14s %-7s %-8s %-10s %-5s %-5s %-14s %s\n", "REGION", "PID", "PROCESS", "ROLE",
           "READY", "TERM", "LEADER", "API");
    for (unsigned i = 0; i < lab.n_regions; i++)
        print_region_status(&lab.regions[i]);
    if (lab.postgres)
        print_pg_status(&lab);
    lab_proxy_print_status(&lab);
    if (lab.redis)
        lab_redis_print_status(&lab);
    if (lab.dns.mode != LAB_DNS_OFF)
        lab_dns_print_status(&lab);
    return 0;
}

static struct lab_region *find_region(struct lab *lab, const char *name)
{
    if (name == NULL) {
        fprintf(stderr, "aragora-chaos: which region? (one of:");
    } else {
        for (unsigned i = 0; i < lab->n_regions; i++)
            if (strcmp(lab->regions[i].name, name) == 0)
                return &lab->regions[i];
        fprintf(stderr, "aragora-chaos: no region '%s' in this lab (one of:", name);
    }
    for (unsigned i = 0; i < lab->n_regions; i++)
        fprintf(stderr, " %s", lab->regions[i].name);
    fprintf(stderr, ")\n");
    return NULL;
}

static int signal_coordinator(const struct lab_region *r, int sig, const char *what)
{
    if (!lab_region_is_ours(r)) {
        fprintf(stderr, "aragora-chaos: %s: not running (pid %d is gone)\n", r->name, (int)r->pid);
        return 1;
    }
    if (kill(r->pid, sig) != 0) {
        fprintf(stderr, "aragora-chaos: %s: kill %d: %s\n", r->name, (int)r->pid, strerror(errno));
        return 1;
    }
    if (sig == SIGKILL && !lab_wait_gone(r, 5000)) {
        fprintf(stderr, "aragora-chaos: %s: pid %d still there 5 s after SIGKILL\n", r->name,
                (int)r->pid);
        return 1;
    }
    printf("%s: %s (pid %d)\n", r->name, what, (int)r->pid);
    return 0;
}

/* The target `dns` is the PowerDNS: 1. Not it: 0. With --what (which names a region's part): -1. */
static int dns_target(const struct lab_opts *o)
{
    if (o->region == NULL || strcmp(o->region, "dns") != 0)
        return 0;
    if (o->what != LAB_WHAT_COORDINATOR) {
        fprintf(stderr, "aragora-chaos: --what names a part of a region; 'dns' has none\n");
        return -1;
    }
    return 1;
}

/* --what region: the coordinator first, so that it does not react to its PostgreSQL's fault. */
static int cmd_signal(const struct lab_opts *o, int sig, const char *what)
{
    struct lab lab;
    int rc = 0;
    int dns = dns_target(o);
    if (dns < 0)
        return 2;
    if (load_existing(&lab, o->dir) != 0)
        return 1;
    if (dns > 0)
        return lab_dns_signal(&lab, sig);
    struct lab_region *r = find_region(&lab, o->region);
    if (r == NULL)
        return 2;
    if (o->what == LAB_WHAT_REDIS)
        return lab_redis_signal(&lab, r, sig);
    if (o->what != LAB_WHAT_POSTGRES)
        rc |= signal_coordinator(r, sig, what);
    if (o->what != LAB_WHAT_COORDINATOR)
        rc |= lab_pg_signal(&lab, r, sig);
    return rc != 0 ? 1 : 0;
}

/* After a restart: wait until /health/live answers, so the caller can talk to it at once. */
static int wait_live(const struct lab_region *r, unsigned timeout_ms)
{
    unsigned long long deadline = lab_now_ms() + timeout_ms;
    while (lab_now_ms() < deadline) {
        if (!lab_region_is_ours(r)) {
            fprintf(stderr, "aragora-chaos: %s: coordinator (pid %d) exited after restart\n",
                    r->name, (int)r->pid);
            lab_print_log_tail(r, 20);
            return -1;
        }
        if (region_get(r, "/health/live", 500, NULL) == 200)
            return 0;
        lab_sleep_ms(50);
    }
    fprintf(stderr, "aragora-chaos: %s: /health/live did not answer within %u s\n", r->name,
            timeout_ms / 1000);
    lab_print_log_tail(r, 20);
    return -1;
}

static int restart_coordinator(struct lab *lab, struct lab_region *r)
{
    if (lab_region_is_ours(r)) {
        kill(r->pid, SIGKILL);
        if (!lab_wait_gone(r, 5000)) {
            fprintf(stderr, "aragora-chaos: %s: pid %d survives SIGKILL\n", r->name, (int)r->pid);
            return 1;
        }
    }
    pid_t old = r->pid;
    int rc = lab_spawn(lab, r);
    if (lab_save(lab) != 0 || rc != 0)
        return 1;
    printf("%s: restarted (pid %d, was %d)\n", r->name, (int)r->pid, (int)old);
    fflush(stdout);
    return wait_live(r, 30000) == 0 ? 0 : 1;
}

/* --what region: PostgreSQL first, so that the coordinator finds it running. */
static int cmd_restart(const struct lab_opts *o)
{
    struct lab lab;
    int dns = dns_target(o);
    if (dns < 0)
        return 2;
    if (load_existing(&lab, o->dir) != 0)
        return 1;
    if (dns > 0)
        return lab_dns_restart(&lab);
    struct lab_region *r = find_region(&lab, o->region);
    if (r == NULL)
        return 2;
    if (o->what == LAB_WHAT_REDIS)
        return lab_redis_restart(&lab, r);
    if (o->what != LAB_WHAT_COORDINATOR && lab_pg_restart(&lab, r) != 0)
        return 1;
    if (o->what != LAB_WHAT_POSTGRES)
        return restart_coordinator(&lab, r);
    return 0;
}

/* Signal every live recorded PID; returns how many were signalled. */
static unsigned signal_all(const struct lab *lab, int sig)
{
    unsigned n = 0;
    for (unsigned i = 0; i < lab->n_regions; i++) {
        const struct lab_region *r = &lab->regions[i];
        if (lab_region_is_ours(r) && kill(r->pid, sig) == 0)
            n++;
    }
    return n;
}

static bool wait_all_gone(const struct lab *lab, unsigned timeout_ms)
{
    unsigned long long deadline = lab_now_ms() + timeout_ms;
    while (count_alive(lab) > 0) {
        if (lab_now_ms() >= deadline)
            return false;
        lab_sleep_ms(20);
    }
    return true;
}

static int cmd_down(const struct lab_opts *o)
{
    struct lab lab;
    int rc = lab_load(&lab, o->dir);
    if (rc == -2) {
        printf("no lab in %s; nothing to stop\n", o->dir);
        return 0;
    }
    if (rc != 0)
        return 1;
    signal_all(&lab, SIGCONT); /* a frozen process cannot act on SIGTERM */
    unsigned n = signal_all(&lab, SIGTERM);
    if (!wait_all_gone(&lab, LAB_DOWN_TIMEOUT_MS)) {
        for (unsigned i = 0; i < lab.n_regions; i++)
            if (lab_region_is_ours(&lab.regions[i]))
                fprintf(stderr, "aragora-chaos: %s: pid %d ignored SIGTERM for %u s; SIGKILL\n",
                        lab.regions[i].name, (int)lab.regions[i].pid, LAB_DOWN_TIMEOUT_MS / 1000);
        signal_all(&lab, SIGKILL);
        if (!wait_all_gone(&lab, 5000)) {
            fprintf(stderr, "aragora-chaos: some coordinators survive SIGKILL\n");
            return 1;
        }
    }
    int pg = lab_pg_down(&lab);
    if (pg < 0) {
        fprintf(stderr, "aragora-chaos: some PostgreSQL servers survive SIGKILL\n");
        return 1;
    }
    int redis = lab_redis_down(&lab), dns = lab_dns_down(&lab), proxy = lab_proxy_down(&lab);
    if (redis >= 0 && dns >= 0 && proxy >= 0 && lab_netns_down(&lab) != 0)
        return 1;
    if (redis < 0 || dns < 0 || proxy < 0) {
        fprintf(stderr, "aragora-chaos: %s survive%s SIGKILL\n",
                redis < 0 ? "some Redis servers"
                : dns < 0 ? "the PowerDNS"
                          : "the fault proxy",
                redis < 0 ? "" : "s");
        return 1;
    }
    printf("lab down: stopped %u coordinator%s, %d PostgreSQL server%s, %d Redis server%s and %d "
           "PowerDNS in %s\n",
           n, n == 1 ? "" : "s", pg, pg == 1 ? "" : "s", redis, redis == 1 ? "" : "s", dns,
           lab.dir);
    return 0;
}

int lab_main(int argc, char **argv)
{
    struct lab_opts o = {.regions = 3,
                         .base_port = LAB_DEFAULT_BASE_PORT,
                         .log_level = "info",
                         .dns = -1,
                         .redis = -1};
    if (argc < 2) {
        fputs(lab_usage, stderr);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(lab_usage, stdout);
            return 0;
        }
    }
    const char *cmd = argv[1];
    if (parse_opts(&o, argc, argv) != 0)
        return 2;
    bool needs_region = strcmp(cmd, "kill") == 0 || strcmp(cmd, "freeze") == 0 ||
                        strcmp(cmd, "thaw") == 0 || strcmp(cmd, "restart") == 0;
    if (!needs_region && o.region != NULL) {
        fprintf(stderr, "aragora-chaos: lab %s: unexpected argument '%s'\n", cmd, o.region);
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    int rc;
    if (strcmp(cmd, "up") == 0)
        rc = cmd_up(&o);
    else if (strcmp(cmd, "status") == 0)
        rc = cmd_status(&o);
    else if (strcmp(cmd, "kill") == 0)
        rc = cmd_signal(&o, SIGKILL, "killed");
    else if (strcmp(cmd, "freeze") == 0)
        rc = cmd_signal(&o, SIGSTOP, "frozen");
    else if (strcmp(cmd, "thaw") == 0)
        rc = cmd_signal(&o, SIGCONT, "thawed");
    else if (strcmp(cmd, "restart") == 0)
        rc = cmd_restart(&o);
    else if (strcmp(cmd, "down") == 0)
        rc = cmd_down(&o);
    else {
        fprintf(stderr, "aragora-chaos: unknown lab command '%s'\n%s", cmd, lab_usage);
        rc = 2;
    }
    curl_global_cleanup();
    return rc;
}
