/*
 * The lab's contact with processes and files: DIR/lab.json (read, atomic write), spawning a
 * detached coordinator, deciding whether a recorded PID is still the process the lab started,
 * and showing the tail of a log when something went wrong. Plain POSIX + jansson.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    pg->pid = json_is_integer(pid) ? (pid_t)json_integer_value(pid) : 0;
    copy_str(pg->role, sizeof pg->role, json_string_value(json_object_get(o, "role")));
    copy_str(pg->data_dir, sizeof pg->data_dir, json_string_value(json_object_get(o, "data_dir")));
    copy_str(pg->socket_dir, sizeof pg->socket_dir,
             json_string_value(json_object_get(o, "socket_dir")));
    copy_str(pg->log, sizeof pg->log, json_string_value(json_object_get(o, "log")));
    copy_str(pg->options, sizeof pg->options, json_string_value(json_object_get(o, "options")));
}

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
    r->id = (unsigned)json_integer_value(json_object_get(o, "id"));
    r->api_port = (unsigned)json_integer_value(json_object_get(o, "api_port"));
    r->raft_port = (unsigned)json_integer_value(json_object_get(o, "raft_port"));
    r->pid = json_is_integer(pid) ? (pid_t)json_integer_value(pid) : 0;
    load_pg(&r->pg, json_object_get(o, "postgres"));
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

static json_t *pg_json(const struct lab_pg *pg)
{
    return json_pack("{s:s, s:i, s:s, s:i, s:s, s:s, s:s, s:s}", "host", "127.0.0.1", "port",
                     (json_int_t)pg->port, "data_dir", pg->data_dir, "pid", (json_int_t)pg->pid,
                     "log", pg->log, "role", pg->role, "socket_dir", pg->socket_dir, "options",
                     pg->options);
}

static json_t *region_json(const struct lab_region *r)
{
    json_t *o =
        json_pack("{s:s, s:i, s:s, s:s, s:i, s:i, s:i, s:s, s:s, s:s}", "name", r->name, "id",
                  (json_int_t)r->id, "api_url", r->api_url, "raft_address", r->raft_address,
                  "api_port", (json_int_t)r->api_port, "raft_port", (json_int_t)r->raft_port, "pid",
                  (json_int_t)r->pid, "config", r->config, "log", r->log, "data_dir", r->data_dir);
    if (o != NULL && r->pg.enabled)
        json_object_set_new(o, "postgres", pg_json(&r->pg));
    return o;
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
        lab->token_file, "coordinator", lab->coordinator, "base_port", (json_int_t)lab->base_port,
        "snapshot_threshold", (json_int_t)lab->snapshot_threshold, "snapshot_trailing",
        (json_int_t)lab->snapshot_trailing, "postgres", "enabled", (int)lab->postgres, "bin_dir",
        lab->pg_bin_dir, "run_as", lab->pg_run_as, "regions", regions);
    for (unsigned i = 0; doc != NULL && i < lab->n_regions; i++)
        json_array_append_new(regions, region_json(&lab->regions[i]));
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

/* The state letter of /proc/PID/stat ('R', 'S', 'T', 'Z'...), or 0 if there is no such process. */
static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* comm may contain spaces and parentheses */
    return p != NULL && p[1] == ' ' ? p[2] : 0;
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

/* In the child between fork and exec: only async-signal-safe calls. Reports errno on `report`. */
static void child_exec(const struct lab *lab, const struct lab_region *r, int report)
{
    static const int reset[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGCHLD};
    sigset_t none;
    int err;
    setsid();
    for (size_t i = 0; i < sizeof reset / sizeof reset[0]; i++)
        signal(reset[i], SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int in = open("/dev/null", O_RDONLY);
    int out = open(r->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (chdir(lab->dir) != 0 || in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
        dup2(out, 2) < 0)
        goto fail;
    /* Nothing else of ours (pipes of whoever ran the lab, curl sockets) may leak into it. */
    for (int fd = 3; fd < 1024; fd++)
        if (fd != report)
            close(fd);
    execl(lab->coordinator, lab->coordinator, "--config", r->config, (char *)NULL);
fail:
    err = errno;
    if (write(report, &err, sizeof err) < 0) {
        /* nothing left to tell */
    }
    _exit(127);
}

int lab_spawn(const struct lab *lab, struct lab_region *r)
{
    int pipefd[2];
    int err = 0;
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        fprintf(stderr, "aragora-chaos: pipe: %s\n", strerror(errno));
        return -1;
    }
    /* The lab's own environment must not override the generated config. */
    unsetenv("ARAGORA_REGION");
    unsetenv("ARAGORA_REGION_ID");
    unsetenv("ARAGORA_API_TOKEN");
    unsetenv("ARAGORA_CLUSTER_SECRET");
    unsetenv("ARAGORA_PRIMARY");
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "aragora-chaos: fork: %s\n", strerror(errno));
        close(pipefd[0]);
        close(pipefd[1]);
        return -1;
    }
    if (pid == 0)
        child_exec(lab, r, pipefd[1]);
    close(pipefd[1]);
    ssize_t n;
    do {
        n = read(pipefd[0], &err, sizeof err); /* EOF: exec succeeded (close-on-exec) */
    } while (n < 0 && errno == EINTR);
    close(pipefd[0]);
    if (n > 0) {
        fprintf(stderr, "aragora-chaos: %s: cannot start %s: %s\n", r->name, lab->coordinator,
                strerror(err));
        return -1;
    }
    r->pid = pid;
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
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "aragora-chaos: /proc/self/exe: %s\n", strerror(errno));
        return -1;
    }
    self[n] = '\0';
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
