/*
 * The lab's PostgreSQL at run time: its programs (pg_ctl, psql, through lab_exec; as the postgres
 * OS user when the lab runs as root, since PostgreSQL refuses to run as root), and the faults.
 *
 * Every signal goes to a PID the lab recorded, and only after /proc/PID/cmdline showed that it is
 * the postmaster of this region's data directory (lab_pg_state). Freeze and thaw reach the
 * postmaster's children too (every process whose parent is the postmaster, read from /proc): a
 * frozen postmaster alone would leave its walsenders and backends serving. Kill is SIGKILL to the
 * postmaster only; its children notice the postmaster's death and exit by themselves, which
 * lab_pg_signal waits for before it reports.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lab.h"

#define PG_MAX_CHILDREN   256
#define PG_STOP_WAIT_MS   15000u
#define PG_CHILDREN_GONE  10000u
#define PG_QUERY_TIMEOUT  10000u
#define PG_REAP_WAIT_MS   10000u
#define PG_START_TIMEOUTS "60" /* pg_ctl -t, seconds */

int lab_pg_query(const struct lab *lab, const struct lab_pg *pg, const char *sql, char *out,
                 size_t size)
{
    char psql[LAB_PATH_MAX + 8], conninfo[256];
    snprintf(psql, sizeof psql, "%s/psql", lab->pg_bin_dir);
    snprintf(conninfo, sizeof conninfo,
             "host=%s port=%u user=postgres dbname=postgres connect_timeout=3", pg->host, pg->port);
    const char *argv[] = {psql, "-X",     "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
                          "-d", conninfo, "-c", sql,  NULL};
    /* psql runs as whoever runs the lab: it only needs TCP, and trust auth names the user */
    int rc = lab_exec(NULL, NULL, argv, NULL, out, size, PG_QUERY_TIMEOUT);
    size_t n = strlen(out);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
        out[--n] = '\0';
    return rc == 0 ? 0 : -1;
}

const char *lab_pg_role(const struct lab *lab, const struct lab_pg *pg)
{
    char out[256];
    if (lab_pg_state(pg) != LAB_PROC_ALIVE ||
        lab_pg_query(lab, pg, "SELECT pg_is_in_recovery()", out, sizeof out) != 0)
        return "-";
    return strcmp(out, "t") == 0 ? "replica" : strcmp(out, "f") == 0 ? "primary" : "?";
}

/* ---- the postmaster ---- */

enum lab_proc_state lab_pg_state(const struct lab_pg *pg)
{
    return pg->enabled ? lab_pid_state(pg->pid, pg->data_dir) : LAB_PROC_DEAD;
}

static pid_t read_postmaster_pid(const struct lab_pg *pg);

/* The coordinators restart their PostgreSQL themselves (local restart, rejoin), so the pid in
 * lab.json can be stale. The data directory's own postmaster.pid names the running one; adopt it
 * only if that process really is a postmaster of this data directory (its cmdline says so). */
void lab_pg_refresh(struct lab_pg *pg)
{
    if (!pg->enabled || lab_pg_state(pg) != LAB_PROC_DEAD)
        return;
    pid_t now = read_postmaster_pid(pg);
    if (now > 0 && lab_pid_state(now, pg->data_dir) != LAB_PROC_DEAD)
        pg->pid = now;
}

/* The first line of DATADIR/postmaster.pid, or 0. */
static pid_t read_postmaster_pid(const struct lab_pg *pg)
{
    char path[LAB_PATH_MAX + 32];
    long pid = 0;
    snprintf(path, sizeof path, "%s/postmaster.pid", pg->data_dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    return (pid_t)pid;
}

/* A killed postmaster stays a zombie until init reaps it (here about a second), and PostgreSQL
 * takes a lock file naming a PID that kill(PID, 0) still finds as held: wait for it to vanish. */
static void wait_stale_postmaster(const struct lab_pg *pg)
{
    pid_t old = read_postmaster_pid(pg);
    if (old <= 0 || !lab_pid_wait_gone(old, 0))
        return; /* none, or still running: pg_ctl will say so */
    unsigned long long deadline = lab_now_ms() + PG_REAP_WAIT_MS;
    while (kill(old, 0) == 0 && lab_now_ms() < deadline)
        lab_sleep_ms(20);
}

int lab_pg_start(const struct lab *lab, struct lab_pg *pg, const char *region)
{
    char pg_ctl[LAB_PATH_MAX + 8];
    wait_stale_postmaster(pg);
    snprintf(pg_ctl, sizeof pg_ctl, "%s/pg_ctl", lab->pg_bin_dir);
    const char *argv[] = {pg_ctl,       "start", "-w",    "-t", PG_START_TIMEOUTS, "-D",
                          pg->data_dir, "-l",    pg->log, "-o", pg->options,       NULL};
    int rc = lab_exec(lab->pg_run_as, pg->netns, argv, pg->log, NULL, 0, 70000);
    pg->pid = rc == 0 ? read_postmaster_pid(pg) : 0;
    if (rc != 0 || lab_pg_state(pg) == LAB_PROC_DEAD) {
        fprintf(stderr, "aragora-chaos: %s: PostgreSQL did not start (pg_ctl exit %d)\n", region,
                rc);
        lab_print_file_tail(pg->log, region, 20);
        return -1;
    }
    return 0;
}

/* PIDs of every process whose parent is `parent`. */
static size_t pg_children(pid_t parent, pid_t *out, size_t max)
{
    DIR *d = opendir("/proc");
    size_t n = 0;
    if (d == NULL)
        return 0;
    for (struct dirent *e = readdir(d); e != NULL && n < max; e = readdir(d)) {
        char path[300], buf[512];
        long pid = strtol(e->d_name, NULL, 10);
        if (pid <= 0)
            continue;
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "r");
        size_t len = f != NULL ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f != NULL)
            fclose(f);
        buf[len] = '\0';
        char *p = strrchr(buf, ')'); /* ") S PPID ..." */
        long ppid = 0;
        if (p != NULL && sscanf(p + 1, " %*c %ld", &ppid) == 1 && ppid == (long)parent)
            out[n++] = (pid_t)pid;
    }
    closedir(d);
    return n;
}

/* SIGKILL the postmaster, then wait until it and every child it had are gone. */
static int kill_postmaster(const struct lab_pg *pg, const char *region)
{
    pid_t kids[PG_MAX_CHILDREN];
    size_t n = pg_children(pg->pid, kids, PG_MAX_CHILDREN);
    kill(pg->pid, SIGKILL);
    for (size_t i = 0; i < n; i++)
        kill(kids[i], SIGCONT); /* a frozen child could not notice its postmaster died */
    if (!lab_pid_wait_gone(pg->pid, 5000)) {
        fprintf(stderr, "aragora-chaos: %s: postmaster %d survives SIGKILL\n", region,
                (int)pg->pid);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!lab_pid_wait_gone(kids[i], PG_CHILDREN_GONE)) {
            fprintf(stderr,
                    "aragora-chaos: %s: postmaster child %d still there %u s after it died\n",
                    region, (int)kids[i], PG_CHILDREN_GONE / 1000);
            return -1;
        }
    }
    return 0;
}

/* SIGSTOP or SIGCONT to the postmaster and all its children. */
static void signal_tree(const struct lab_pg *pg, int sig)
{
    pid_t kids[PG_MAX_CHILDREN];
    if (sig == SIGSTOP)
        kill(pg->pid, sig); /* first, so it cannot start new children meanwhile */
    size_t n = pg_children(pg->pid, kids, PG_MAX_CHILDREN);
    for (size_t i = 0; i < n; i++)
        kill(kids[i], sig);
    if (sig != SIGSTOP)
        kill(pg->pid, sig);
}

int lab_pg_signal(struct lab *lab, struct lab_region *r, int sig)
{
    (void)lab;
    if (!r->pg.enabled) {
        fprintf(stderr, "aragora-chaos: %s: this lab has no PostgreSQL (--no-postgres)\n", r->name);
        return 1;
    }
    if (lab_pg_state(&r->pg) == LAB_PROC_DEAD) {
        fprintf(stderr, "aragora-chaos: %s: PostgreSQL not running (pid %d is gone)\n", r->name,
                (int)r->pg.pid);
        return 1;
    }
    if (sig == SIGKILL) {
        if (kill_postmaster(&r->pg, r->name) != 0)
            return 1;
    } else {
        signal_tree(&r->pg, sig);
    }
    printf("%s: postgres %s (pid %d)\n", r->name,
           sig == SIGKILL   ? "killed"
           : sig == SIGSTOP ? "frozen"
                            : "thawed",
           (int)r->pg.pid);
    return 0;
}

int lab_pg_restart(struct lab *lab, struct lab_region *r)
{
    if (!r->pg.enabled) {
        fprintf(stderr, "aragora-chaos: %s: this lab has no PostgreSQL (--no-postgres)\n", r->name);
        return 1;
    }
    pid_t old = r->pg.pid;
    if (lab_pg_state(&r->pg) != LAB_PROC_DEAD && kill_postmaster(&r->pg, r->name) != 0)
        return 1;
    int rc = lab_pg_start(lab, &r->pg, r->name);
    if (rc != 0) {
        /* The region's coordinator restarts its own PostgreSQL too: if it got there first, a
         * postmaster of this data directory is running now, which is what was asked for. */
        lab_pg_refresh(&r->pg);
        if (lab_pg_state(&r->pg) != LAB_PROC_DEAD && r->pg.pid != old) {
            printf("%s: postgres was started by its coordinator first (pid %d)\n", r->name,
                   (int)r->pg.pid);
            rc = 0;
        }
    }
    if (lab_save(lab) != 0 || rc != 0)
        return 1;
    printf("%s: postgres restarted (pid %d, was %d)\n", r->name, (int)r->pg.pid, (int)old);
    return 0;
}

/* ---- down ---- */

static void fast_stop(const struct lab *lab, const struct lab_pg *pg)
{
    char pg_ctl[LAB_PATH_MAX + 8], out[1024];
    snprintf(pg_ctl, sizeof pg_ctl, "%s/pg_ctl", lab->pg_bin_dir);
    const char *argv[] = {pg_ctl, "stop", "-m", "fast", "-W", "-D", pg->data_dir, NULL};
    signal_tree(pg, SIGCONT); /* a frozen server cannot shut down */
    lab_exec(lab->pg_run_as, NULL, argv, NULL, out, sizeof out, 10000);
}

/* Fast-stop every PostgreSQL that runs now; returns how many. */
static int stop_running(struct lab *lab)
{
    int n = 0;
    for (unsigned i = 0; i < lab->n_regions; i++) {
        struct lab_pg *pg = &lab->regions[i].pg;
        lab_pg_refresh(pg); /* a coordinator may have restarted it since the lab was loaded */
        if (lab_pg_state(pg) != LAB_PROC_DEAD) {
            fast_stop(lab, pg);
            n++;
        }
    }
    return n;
}

int lab_pg_down(struct lab *lab)
{
    /* Called once the coordinators are stopped; a pg_ctl start or pg_rewind they launched may
     * still bring a server up a moment later, so look again a few times (bounded). */
    int n = stop_running(lab);
    for (int round = 0; round < 4; round++) {
        lab_sleep_ms(500);
        n += stop_running(lab);
    }
    int rc = n;
    for (unsigned i = 0; i < lab->n_regions; i++) {
        const struct lab_region *r = &lab->regions[i];
        if (lab_pg_state(&r->pg) == LAB_PROC_DEAD || lab_pid_wait_gone(r->pg.pid, PG_STOP_WAIT_MS))
            continue;
        fprintf(stderr,
                "aragora-chaos: %s: PostgreSQL (pid %d) still up %u s after a fast stop; SIGKILL\n",
                r->name, (int)r->pg.pid, PG_STOP_WAIT_MS / 1000);
        if (lab_pg_state(&r->pg) != LAB_PROC_DEAD && kill_postmaster(&r->pg, r->name) != 0)
            rc = -1;
    }
    return rc;
}
