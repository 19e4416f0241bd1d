/*
 * The lab's contact with processes and files: DIR/lab.json (read, atomic write), starting a
 * region's coordinator (lab_exec.c runs it), stopping and signalling a service by PID, deciding
 * whether a recorded PID is still the process the lab started, secret files, and showing the tail
 * of a log when something went wrong. Plain POSIX + jansson.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "lab.h"

const char *lab_proc_state_name(enum lab_proc_state s)
{
    switch (s) {
    case LAB_PROC_ALIVE:
        return "alive";
    case LAB_PROC_STOPPED:
        return "stopped";
    default:
        return "dead";
    }
}

unsigned long long lab_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000ull + (unsigned long long)ts.tv_nsec / 1000000ull;
}

void lab_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src != NULL ? src : "");
}

static void load_pg(struct lab_pg *pg, json_t *o)
{
    json_t *pid = json_object_get(o, "pid");
    pg->enabled = json_is_object(o);
    if (!pg->enabled)
        return;
    pg->port = (unsigned)json_integer_value(json_object_get(o, "port"));
    copy_str(pg->host, sizeof pg->host, json_string_value(json_object_get(o, "host")));
    if (pg->host[0] == '\0') /* a lab.json from before namespace mode */
        copy_str(pg->host, sizeof pg->host, "127.0.0.1");
    copy_str(pg->netns, sizeof pg->netns, json_string_value(json_object_get(o, "netns")));
    pg->pid = json_is_integer(pid) ? (pid_t)json_integer_value(pid) : 0;
    copy_str(pg->role, sizeof pg->role, json_string_value(json_object_get(o, "role")));
    copy_str(pg->data_dir, sizeof pg->data_dir, json_string_value(json_object_get(o, "data_dir")));
    copy_str(pg->socket_dir, sizeof pg->socket_dir,
             json_string_value(json_object_get(o, "socket_dir")));
    copy_str(pg->log, sizeof pg->log, json_string_value(json_object_get(o, "log")));
    copy_str(pg->options, sizeof pg->options, json_string_value(json_object_get(o, "options")));
}

static void load_redis(struct lab_redis *rd, json_t *o)
{
    json_t *pid = json_object_get(o, "pid");
    rd->enabled = json_is_object(o);
    if (!rd->enabled)
        return;
    rd->port = (unsigned)json_integer_value(json_object_get(o, "port"));
    copy_str(rd->host, sizeof rd->host, json_string_value(json_object_get(o, "host")));
    if (rd->host[0] == '\0')
        copy_str(rd->host, sizeof rd->host, "127.0.0.1");
    rd->pid = json_is_integer(pid) ? (pid_t)json_integer_value(pid) : 0;
    copy_str(rd->conf, sizeof rd->conf, json_string_value(json_object_get(o, "conf")));
    copy_str(rd->dir, sizeof rd->dir, json_string_value(json_object_get(o, "dir")));
    copy_str(rd->log, sizeof rd->log, json_string_value(json_object_get(o, "log")));
}

static void load_dns(struct lab_dns *d, json_t *o)
{
    const char *provider = json_string_value(json_object_get(o, "provider"));
    json_t *pid = json_object_get(o, "pid");
    d->mode = provider == NULL                   ? LAB_DNS_OFF
              : strcmp(provider, "rfc2136") == 0 ? LAB_DNS_RFC2136
                                                 : LAB_DNS_POWERDNS;
    if (d->mode == LAB_DNS_OFF)
        return;
    d->dns_port = (unsigned)json_integer_value(json_object_get(o, "dns_port"));
    copy_str(d->host, sizeof d->host, json_string_value(json_object_get(o, "host")));
    if (d->host[0] == '\0')
        copy_str(d->host, sizeof d->host, "127.0.0.1");
    d->api_port = (unsigned)json_integer_value(json_object_get(o, "api_port"));
    d->pid = json_is_integer(pid) ? (pid_t)json_integer_value(pid) : 0;
    copy_str(d->dir, sizeof d->dir, json_string_value(json_object_get(o, "dir")));
    copy_str(d->log, sizeof d->log, json_string_value(json_object_get(o, "log")));
    copy_str(d->api_url, sizeof d->api_url, json_string_value(json_object_get(o, "api_url")));
    copy_str(d->api_key_file, sizeof d->api_key_file,
             json_string_value(json_object_get(o, "api_key_file")));
    copy_str(d->tsig_secret_file, sizeof d->tsig_secret_file,
             json_string_value(json_object_get(o, "tsig_secret_file")));
    copy_str(d->zone, sizeof d->zone, json_string_value(json_object_get(o, "zone")));
    copy_str(d->name, sizeof d->name, json_string_value(json_object_get(o, "name")));
    copy_str(d->tsig_name, sizeof d->tsig_name, json_string_value(json_object_get(o, "tsig_name")));
}

static void load_proxy(struct lab_proxy *p, json_t *o)
{
    json_t *pid = json_object_get(o, "pid");
    p->enabled = json_is_true(json_object_get(o, "enabled"));
    p->wan = json_is_true(json_object_get(o, "wan"));
    p->control_port = (unsigned)json_integer_value(json_object_get(o, "control_port"));
    p->pid = json_is_integer(pid) ? (pid_t)json_integer_value(pid) : 0;
    copy_str(p->dir, sizeof p->dir, json_string_value(json_object_get(o, "dir")));
    copy_str(p->links, sizeof p->links, json_string_value(json_object_get(o, "links")));
    copy_str(p->log, sizeof p->log, json_string_value(json_object_get(o, "log")));
}

static void load_netns(struct lab_netns *n, json_t *o);

static int load_region(struct lab_region *r, json_t *o)
{
    json_t *pid = json_object_get(o, "pid");
    copy_str(r->name, sizeof r->name, json_string_value(json_object_get(o, "name")));
    copy_str(r->api_url, sizeof r->api_url, json_string_value(json_object_get(o, "api_url")));
    copy_str(r->raft_address, sizeof r->raft_address,
             json_string_value(json_object_get(o, "raft_address")));
    copy_str(r->config, sizeof r->config, json_string_value(json_object_get(o, "config")));
    copy_str(r->log, sizeof r->log, json_string_value(json_object_get(o, "log")));
    copy_str(r->data_dir, sizeof r->data_dir, json_string_value(json_object_get(o, "data_dir")));
    copy_str(r->address, sizeof r->address, json_string_value(json_object_get(o, "address")));
    r->id = (unsigned)json_integer_value(json_object_get(o, "id"));
    r->api_port = (unsigned)json_integer_value(json_object_get(o, "api_port"));
    r->raft_port = (unsigned)json_integer_value(json_object_get(o, "raft_port"));
    r->pid = json_is_integer(pid) ? (pid_t)json_integer_value(pid) : 0;
    copy_str(r->host, sizeof r->host, json_string_value(json_object_get(o, "host")));
    copy_str(r->netns, sizeof r->netns, json_string_value(json_object_get(o, "netns")));
    if (r->host[0] == '\0')
        copy_str(r->host, sizeof r->host, "127.0.0.1");
    load_pg(&r->pg, json_object_get(o, "postgres"));
    load_redis(&r->redis, json_object_get(o, "redis"));
    return r->name[0] != '\0' && r->config[0] != '\0' ? 0 : -1;
}

int lab_load(struct lab *lab, const char *dir)
{
    char path[LAB_PATH_MAX + 16];
    json_error_t jerr;
    size_t i;
    json_t *o;
    memset(lab, 0, sizeof *lab);
    snprintf(path, sizeof path, "%s/lab.json", dir);
    if (access(path, F_OK) != 0)
        return -2;
    json_t *doc = json_load_file(path, 0, &jerr);
    if (doc == NULL) {
        fprintf(stderr, "aragora-chaos: %s:%d: %s\n", path, jerr.line, jerr.text);
        return -1;
    }
    copy_str(lab->dir, sizeof lab->dir, json_string_value(json_object_get(doc, "dir")));
    copy_str(lab->token_file, sizeof lab->token_file,
             json_string_value(json_object_get(doc, "token_file")));
    copy_str(lab->coordinator, sizeof lab->coordinator,
             json_string_value(json_object_get(doc, "coordinator")));
    lab->base_port = (unsigned)json_integer_value(json_object_get(doc, "base_port"));
    lab->snapshot_threshold =
        (unsigned)json_integer_value(json_object_get(doc, "snapshot_threshold"));
    lab->snapshot_trailing =
        (unsigned)json_integer_value(json_object_get(doc, "snapshot_trailing"));
    json_t *pg = json_object_get(doc, "postgres");
    lab->postgres = json_is_true(json_object_get(pg, "enabled"));
    copy_str(lab->pg_bin_dir, sizeof lab->pg_bin_dir,
             json_string_value(json_object_get(pg, "bin_dir")));
    copy_str(lab->pg_run_as, sizeof lab->pg_run_as,
             json_string_value(json_object_get(pg, "run_as")));
    lab->redis = json_is_true(json_object_get(json_object_get(doc, "redis"), "enabled"));
    copy_str(lab->svc_run_as, sizeof lab->svc_run_as,
             json_string_value(json_object_get(doc, "services_run_as")));
    load_dns(&lab->dns, json_object_get(doc, "dns"));
    load_proxy(&lab->proxy, json_object_get(doc, "proxy"));
    load_netns(&lab->netns, json_object_get(doc, "netns"));
    json_t *regions = json_object_get(doc, "regions");
    int rc = json_is_array(regions) && json_array_size(regions) <= LAB_MAX_REGIONS ? 0 : -1;
    json_array_foreach(regions, i, o)
    {
        if (rc == 0 && load_region(&lab->regions[lab->n_regions++], o) != 0)
            rc = -1;
    }
    if (lab->dir[0] == '\0')
        copy_str(lab->dir, sizeof lab->dir, dir);
    for (unsigned k = 0; rc == 0 && k < lab->n_regions; k++)
        lab_pg_refresh(&lab->regions[k].pg);
    if (rc != 0)
        fprintf(stderr, "aragora-chaos: %s: not a lab description (regions missing or bad)\n",
                path);
    json_decref(doc);
    return rc;
}

static json_t *proxy_json(const struct lab_proxy *p)
{
    return json_pack("{s:b, s:b, s:i, s:i, s:s, s:s, s:s}", "enabled", (int)p->enabled, "wan",
                     (int)p->wan, "control_port", (int)p->control_port, "pid", (int)p->pid, "dir",
                     p->dir, "links", p->links, "log", p->log);
}

static json_t *netns_json(const struct lab_netns *n)
{
    if (!n->enabled)
        return json_null();
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "prefix", n->prefix, "bridge", n->bridge,
                     "subnet", n->subnet, "host_interface", n->host_if, "host_address",
                     n->host_addr);
}

static void load_netns(struct lab_netns *n, json_t *o)
{
    n->enabled = json_is_object(o);
    if (!n->enabled)
        return;
    copy_str(n->prefix, sizeof n->prefix, json_string_value(json_object_get(o, "prefix")));
    copy_str(n->bridge, sizeof n->bridge, json_string_value(json_object_get(o, "bridge")));
    copy_str(n->subnet, sizeof n->subnet, json_string_value(json_object_get(o, "subnet")));
    copy_str(n->host_if, sizeof n->host_if,
             json_string_value(json_object_get(o, "host_interface")));
    copy_str(n->host_addr, sizeof n->host_addr,
             json_string_value(json_object_get(o, "host_address")));
}

static json_t *pg_json(const struct lab_pg *pg)
{
    return json_pack("{s:s, s:i, s:s, s:i, s:s, s:s, s:s, s:s, s:s}", "host", pg->host, "port",
                     (int)pg->port, "data_dir", pg->data_dir, "pid", (int)pg->pid, "log", pg->log,
                     "role", pg->role, "socket_dir", pg->socket_dir, "options", pg->options,
                     "netns", pg->netns);
}

static json_t *redis_json(const struct lab_redis *rd)
{
    return json_pack("{s:s, s:i, s:i, s:s, s:s, s:s}", "host", rd->host, "port", (int)rd->port,
                     "pid", (int)rd->pid, "conf", rd->conf, "dir", rd->dir, "log", rd->log);
}

static json_t *region_json(const struct lab_region *r)
{
    json_t *o =
        json_pack("{s:s, s:i, s:s, s:s, s:i, s:i, s:s, s:i, s:s, s:s, s:s}", "name", r->name, "id",
                  (int)r->id, "api_url", r->api_url, "raft_address", r->raft_address, "api_port",
                  (int)r->api_port, "raft_port", (int)r->raft_port, "address", r->address, "pid",
                  (int)r->pid, "config", r->config, "log", r->log, "data_dir", r->data_dir);
    if (o != NULL) {
        json_object_set_new(o, "host", json_string(r->host));
        json_object_set_new(o, "netns", json_string(r->netns));
    }
    if (o != NULL && r->pg.enabled)
        json_object_set_new(o, "postgres", pg_json(&r->pg));
    if (o != NULL && r->redis.enabled)
        json_object_set_new(o, "redis", redis_json(&r->redis));
    return o;
}

static json_t *dns_json(const struct lab_dns *d)
{
    return json_pack("{s:s, s:s, s:i, s:i, s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:s, s:s}",
                     "provider", lab_dns_mode_name(d->mode), "host", d->host, "dns_port",
                     (int)d->dns_port, "api_port", (int)d->api_port, "api_url", d->api_url, "name",
                     d->name, "zone", d->zone, "pid", (int)d->pid, "tsig_name", d->tsig_name,
                     "api_key_file", d->api_key_file, "tsig_secret_file", d->tsig_secret_file,
                     "dir", d->dir, "log", d->log);
}

static int write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

int lab_save(const struct lab *lab)
{
    char path[LAB_PATH_MAX + 16], tmp[LAB_PATH_MAX + 32];
    json_t *regions = json_array();
    json_t *doc = json_pack(
        "{s:s, s:s, s:s, s:i, s:i, s:i, s:{s:b, s:s, s:s}, s:o}", "dir", lab->dir, "token_file",
        lab->token_file, "coordinator", lab->coordinator, "base_port", (int)lab->base_port,
        "snapshot_threshold", (int)lab->snapshot_threshold, "snapshot_trailing",
        (int)lab->snapshot_trailing, "postgres", "enabled", (int)lab->postgres, "bin_dir",
        lab->pg_bin_dir, "run_as", lab->pg_run_as, "regions", regions);
    for (unsigned i = 0; doc != NULL && i < lab->n_regions; i++)
        json_array_append_new(regions, region_json(&lab->regions[i]));
    if (doc != NULL) {
        json_object_set_new(doc, "redis", json_pack("{s:b}", "enabled", (int)lab->redis));
        json_object_set_new(doc, "services_run_as", json_string(lab->svc_run_as));
        json_object_set_new(doc, "dns",
                            lab->dns.mode != LAB_DNS_OFF ? dns_json(&lab->dns) : json_null());
        json_object_set_new(doc, "proxy", proxy_json(&lab->proxy));
        json_object_set_new(doc, "netns", netns_json(&lab->netns));
    }
    char *text = doc != NULL ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    if (text == NULL) {
        fprintf(stderr, "aragora-chaos: lab.json: out of memory\n");
        return -1;
    }
    snprintf(path, sizeof path, "%s/lab.json", lab->dir);
    snprintf(tmp, sizeof tmp, "%s/.lab.json.%d", lab->dir, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = fd < 0 ? -1 : 0;
    if (rc == 0)
        rc = write_all(fd, text, strlen(text));
    if (rc == 0)
        rc = write_all(fd, "\n", 1);
    if (rc == 0)
        rc = fsync(fd);
    if (fd >= 0 && close(fd) != 0)
        rc = -1;
    if (rc == 0)
        rc = rename(tmp, path);
    if (rc != 0) {
        fprintf(stderr, "aragora-chaos: writing %s: %s\n", path, strerror(errno));
        unlink(tmp);
    }
    free(text);
    return rc;
}

const char *lab_proc_stat(pid_t pid, char *buf, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    size_t n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* comm may contain spaces and parentheses */
    return p != NULL && p[1] == ' ' && p[2] != '\0' ? p + 2 : NULL;
}

/* The state letter of /proc/PID/stat ('R', 'S', 'T', 'Z'...), or 0 if there is no such process. */
static char proc_state(pid_t pid)
{
    char buf[512];
    const char *fields = lab_proc_stat(pid, buf, sizeof buf);
    return fields != NULL ? fields[0] : 0;
}

/* Does /proc/PID/cmdline have `arg` as one of its arguments? */
static bool cmdline_has(pid_t pid, const char *arg)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (size_t off = 0; off < n; off += strlen(buf + off) + 1)
        if (strcmp(buf + off, arg) == 0)
            return true;
    return false;
}

enum lab_proc_state lab_pid_state(pid_t pid, const char *arg)
{
    if (pid <= 0 || arg == NULL || arg[0] == '\0')
        return LAB_PROC_DEAD;
    char st = proc_state(pid);
    if (st == 0 || st == 'Z' || st == 'X' || !cmdline_has(pid, arg))
        return LAB_PROC_DEAD;
    return st == 'T' || st == 't' ? LAB_PROC_STOPPED : LAB_PROC_ALIVE;
}

enum lab_proc_state lab_region_state(const struct lab_region *r)
{
    return lab_pid_state(r->pid, r->config);
}

/* Number of threads still listed under /proc/PID/task (0 if the process is gone). */
static unsigned proc_threads(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return 0;
    unsigned n = 0;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Has pid exited for good, files closed? While a process exits, the kernel frees its memory (so
 * /proc/PID/cmdline reads empty and it no longer looks "ours") before it closes its files; and the
 * main thread of a multithreaded process (libuv's threadpool) turns zombie while other threads
 * still hold the shared file table. Only a vanished pid, or a zombie with no other thread left, has
 * released its data-directory lock. */
static bool proc_exited(pid_t pid)
{
    char st = proc_state(pid);
    return st == 0 || ((st == 'Z' || st == 'X') && proc_threads(pid) <= 1);
}

/* Waits on the pid itself, not on lab_region_is_ours() (see proc_exited). The caller checked the
 * pid was ours before signalling. */
bool lab_pid_wait_gone(pid_t pid, unsigned timeout_ms)
{
    unsigned long long deadline = lab_now_ms() + timeout_ms;
    while (pid > 0 && !proc_exited(pid)) {
        if (lab_now_ms() >= deadline)
            return false;
        lab_sleep_ms(20);
    }
    return true;
}

bool lab_wait_gone(const struct lab_region *r, unsigned timeout_ms)
{
    return lab_pid_wait_gone(r->pid, timeout_ms);
}

/* The coordinator: a service like the others (its own session, /dev/null in, its log out, nothing
 * else of ours inherited), run as whoever runs the lab, from the lab directory. */
int lab_spawn(const struct lab *lab, struct lab_region *r)
{
    /* The lab's own environment must not override the generated config. */
    static const char *const lab_env[] = {"ARAGORA_REGION",
                                          "ARAGORA_REGION_ID",
                                          "ARAGORA_API_TOKEN",
                                          "ARAGORA_CLUSTER_SECRET",
                                          "ARAGORA_PRIMARY",
                                          "DATABASE_URL",
                                          "REDIS_URL",
                                          "PDNS_API_KEY",
                                          "ARAGORA_DNS_TSIG_SECRET",
                                          "ARAGORA_WEBHOOK_TOKEN"};
    for (size_t i = 0; i < sizeof lab_env / sizeof lab_env[0]; i++)
        unsetenv(lab_env[i]);
    const char *argv[] = {lab->coordinator, "--config", r->config, NULL};
    if (lab_spawn_service(NULL, r->netns, argv, r->log, lab->dir, &r->pid) != 0) {
        fprintf(stderr, "aragora-chaos: %s: the coordinator did not start\n", r->name);
        return -1;
    }
    return 0;
}

/* ---- services (Redis, PowerDNS, the proxy) ---- */

int lab_stop_service(pid_t pid, const char *arg, const char *label, unsigned timeout_ms)
{
    if (lab_pid_state(pid, arg) == LAB_PROC_DEAD)
        return 0;
    kill(pid, SIGCONT);
    kill(pid, SIGTERM);
    if (lab_pid_wait_gone(pid, timeout_ms))
        return 1;
    fprintf(stderr, "aragora-chaos: %s: pid %d ignored SIGTERM for %u s; SIGKILL\n", label,
            (int)pid, timeout_ms / 1000);
    if (lab_pid_state(pid, arg) != LAB_PROC_DEAD)
        kill(pid, SIGKILL);
    if (lab_pid_wait_gone(pid, 5000))
        return 1;
    fprintf(stderr, "aragora-chaos: %s: pid %d survives SIGKILL\n", label, (int)pid);
    return -1;
}

int lab_signal_service(pid_t pid, const char *arg, const char *label, int sig)
{
    if (lab_pid_state(pid, arg) == LAB_PROC_DEAD) {
        fprintf(stderr, "aragora-chaos: %s: not running (pid %d is gone)\n", label, (int)pid);
        return 1;
    }
    if (kill(pid, sig) != 0) {
        fprintf(stderr, "aragora-chaos: %s: kill %d: %s\n", label, (int)pid, strerror(errno));
        return 1;
    }
    if (sig == SIGKILL && !lab_pid_wait_gone(pid, 5000)) {
        fprintf(stderr, "aragora-chaos: %s: pid %d still there 5 s after SIGKILL\n", label,
                (int)pid);
        return 1;
    }
    printf("%s %s (pid %d)\n", label,
           sig == SIGKILL   ? "killed"
           : sig == SIGSTOP ? "frozen"
                            : "thawed",
           (int)pid);
    return 0;
}

/* ---- files ---- */

int lab_ensure_secret(const char *path, size_t n_raw)
{
    unsigned char raw[32];
    char hex[sizeof raw * 2 + 2];
    if (n_raw > sizeof raw)
        n_raw = sizeof raw;
    if (access(path, R_OK) == 0)
        return 0;
    int rnd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t n = rnd >= 0 ? read(rnd, raw, n_raw) : -1;
    if (rnd >= 0)
        close(rnd);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (n != (ssize_t)n_raw || fd < 0) {
        fprintf(stderr, "aragora-chaos: creating %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    for (size_t i = 0; i < n_raw; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    hex[n_raw * 2] = '\n';
    ssize_t w = write(fd, hex, n_raw * 2 + 1);
    close(fd);
    return w == (ssize_t)(n_raw * 2 + 1) ? 0 : -1;
}

int lab_make_owned(const char *path, bool is_file, const char *user)
{
    int rc = 0;
    if (is_file) {
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        rc = fd < 0 ? -1 : close(fd);
    } else if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        rc = -1;
    }
    struct passwd *pw = user != NULL && user[0] != '\0' ? getpwnam(user) : NULL;
    if (rc == 0 && pw != NULL)
        rc = chown(path, pw->pw_uid, pw->pw_gid);
    if (rc != 0)
        fprintf(stderr, "aragora-chaos: preparing %s: %s\n", path, strerror(errno));
    return rc;
}

int lab_self_exe(char *out, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", out, size - 1);
    if (n <= 0) {
        fprintf(stderr, "aragora-chaos: /proc/self/exe: %s\n", strerror(errno));
        return -1;
    }
    out[n] = '\0';
    return 0;
}

int lab_find_coordinator(char *out, size_t size)
{
    const char *env = getenv("ARAGORA_COORDINATOR");
    char self[PATH_MAX];
    if (env != NULL && env[0] != '\0') {
        if (access(env, X_OK) != 0) {
            fprintf(stderr, "aragora-chaos: ARAGORA_COORDINATOR=%s: %s\n", env, strerror(errno));
            return -1;
        }
        copy_str(out, size, env);
        return 0;
    }
    if (lab_self_exe(self, sizeof self) != 0)
        return -1;
    char *slash = strrchr(self, '/');
    if (slash != NULL)
        *slash = '\0';
    if ((size_t)snprintf(out, size, "%s/aragora-coordinator", self) >= size ||
        access(out, X_OK) != 0) {
        fprintf(stderr,
                "aragora-chaos: no aragora-coordinator next to this program (%s); "
                "set ARAGORA_COORDINATOR to its path\n",
                self);
        return -1;
    }
    return 0;
}

void lab_print_log_tail(const struct lab_region *r, unsigned lines)
{
    lab_print_file_tail(r->log, r->name, lines);
}

void lab_print_file_tail(const char *path, const char *label, unsigned lines)
{
    char buf[8192];
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "  (%s: %s)\n", path, strerror(errno));
        return;
    }
    long start = 0;
    if (fseek(f, 0, SEEK_END) == 0 && ftell(f) > (long)sizeof buf - 1)
        start = ftell(f) - (long)sizeof buf + 1;
    fseek(f, start, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    size_t pos = n;
    for (unsigned seen = 0; pos > 0; pos--)
        if (buf[pos - 1] == '\n' && ++seen == lines)
            break;
    fprintf(stderr, "--- last lines of %s (%s) ---\n", path, label);
    for (char *line = strtok(buf + pos, "\n"); line != NULL; line = strtok(NULL, "\n"))
        fprintf(stderr, "  %s\n", line);
}
