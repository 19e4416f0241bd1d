/*
 * The lab's databases: one PostgreSQL 15 per region, the first region primary, the others
 * streaming replicas of it (lab-recipes.md §5, pitfalls P2-P5).
 *
 *   region i: port BASE+10*i+2, DIR/<region>/pgdata, DIR/<region>/pgsock (its own unix socket
 *   directory, P5), DIR/<region>/postgresql.log (server log, and the output of initdb and
 *   pg_basebackup).
 *
 * Settings every node shares go into the primary's postgresql.conf, and reach the replicas through
 * pg_basebackup. Node-local settings (port, listen_addresses, unix_socket_directories,
 * cluster_name) go on the pg_ctl -o command line only (struct lab_pg.options, also written to
 * coordinator.yaml as postgres.options): pg_basebackup and pg_rewind copy the configuration files
 * from the source node and would carry its port over (P2).
 *
 * As root, every PostgreSQL program runs as the postgres OS user (PostgreSQL refuses root); the
 * directories it writes are chowned to it, and DIR must be traversable by it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lab.h"

#define PG_STREAMING_TIMEOUT_MS 30000u

/* Shared by every node, so kept in postgresql.conf. Why each one: docs/operations.md. */
static const char shared_conf[] =
    "\n# --- aragora-chaos lab (shared by every node; node-local settings are on the\n"
    "# --- pg_ctl -o command line, see postgres.options in coordinator.yaml) ---\n"
    "wal_level = replica\n"
    "max_wal_senders = 10\n"
    "max_replication_slots = 10\n"
    "wal_keep_size = '256MB'\n"
    "hot_standby = on\n"
    "wal_log_hints = on\n"
    "wal_receiver_status_interval = 1s\n"
    "wal_retrieve_retry_interval = 1s\n"
    "wal_sender_timeout = 3s\n"
    "wal_receiver_timeout = 3s\n"
    "recovery_target_timeline = 'latest'\n"
    "shared_buffers = 32MB\n"
    "max_connections = 50\n"
    "# lab only: a crash of the machine may corrupt these clusters; never in production\n"
    "fsync = off\n";

static const char hba_conf[] = "# aragora-chaos lab: trust, on the unix socket and 127.0.0.1 only\n"
                               "local all all trust\n"
                               "local replication all trust\n"
                               "host all all 127.0.0.1/32 trust\n"
                               "host replication all 127.0.0.1/32 trust\n";

/* Only characters that survive the shell pg_ctl runs the -o string through, unquoted. */
static bool is_plain_path(const char *s)
{
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-") ==
           strlen(s);
}

void lab_pg_conninfo(const struct lab_pg *pg, const char *host, char *out, size_t size)
{
    snprintf(out, size, "host=%s port=%u user=postgres dbname=postgres", host, pg->port);
}

int lab_pg_prepare(const struct lab *lab, struct lab_region *r, unsigned i)
{
    struct lab_pg *pg = &r->pg;
    char region_dir[LAB_PATH_MAX];
    memset(pg, 0, sizeof *pg);
    pg->enabled = true;
    pg->port = lab->base_port + 10 * i + 2;
    snprintf(pg->host, sizeof pg->host, "%s", r->host);
    snprintf(pg->netns, sizeof pg->netns, "%s", r->netns);
    snprintf(pg->role, sizeof pg->role, "%s", i == 0 ? "primary" : "replica");
    int n = snprintf(region_dir, sizeof region_dir, "%s/%s", lab->dir, r->name);
    if (n < 0 || (size_t)n >= sizeof region_dir || !is_plain_path(region_dir)) {
        fprintf(stderr,
                "aragora-chaos: %s: the lab directory may hold only letters, digits and '/._-' "
                "when it runs PostgreSQL (the path goes on the pg_ctl -o command line)\n",
                region_dir);
        return -1;
    }
    /* sun_path holds 108 bytes: DIR/<region>/pgsock/.s.PGSQL.NNNNN */
    if (strlen(region_dir) + sizeof "/pgsock/.s.PGSQL.NNNNN" > 107) {
        fprintf(stderr, "aragora-chaos: %s: too long for a unix socket path; use a shorter --dir\n",
                region_dir);
        return -1;
    }
    snprintf(pg->data_dir, sizeof pg->data_dir, "%s/pgdata", region_dir);
    snprintf(pg->socket_dir, sizeof pg->socket_dir, "%s/pgsock", region_dir);
    snprintf(pg->log, sizeof pg->log, "%s/postgresql.log", region_dir);
    /* also the member's DNS address (r->address), so that `psql -h $(dig +short NAME)` works */
    n = snprintf(pg->options, sizeof pg->options,
                 "-p %u -c listen_addresses=127.0.0.1,%s%s%s -c unix_socket_directories=%s -c "
                 "cluster_name=%s%s%s",
                 pg->port, r->address, r->netns[0] ? "," : "", r->netns[0] ? r->host : "",
                 pg->socket_dir, r->name,
                 lab->fence_module[0] ? " -c shared_preload_libraries=" : "", lab->fence_module);
    return n > 0 && (size_t)n < sizeof pg->options ? 0 : -1;
}

void lab_pg_write_config(FILE *f, const struct lab *lab, const struct lab_region *self)
{
    char conninfo[128];
    lab_pg_conninfo(&self->pg, "127.0.0.1", conninfo, sizeof conninfo);
    fprintf(f, "postgres:\n  url: \"%s\"\n  data_dir: \"%s\"\n  bin_dir: \"%s\"\n", conninfo,
            self->pg.data_dir, lab->pg_bin_dir);
    if (lab->pg_run_as[0] != '\0')
        fprintf(f, "  run_as: %s\n", lab->pg_run_as);
    fprintf(f, "  options: \"%s\"\n  log_file: \"%s\"\n", self->pg.options, self->pg.log);
    if (lab->fence_module[0] != '\0')
        fprintf(f, "  fence: true\n");
}

/* ---- access for the postgres user (root only) ---- */

static bool can_traverse(const struct stat *st, const struct passwd *pw)
{
    if (st->st_uid == pw->pw_uid)
        return (st->st_mode & S_IXUSR) != 0;
    if (st->st_gid == pw->pw_gid)
        return (st->st_mode & S_IXGRP) != 0;
    return (st->st_mode & S_IXOTH) != 0;
}

int lab_pg_check_access(const struct lab *lab, const char *user)
{
    struct passwd *pw = getpwnam(user);
    char path[LAB_PATH_MAX];
    struct stat st;
    if (pw == NULL) {
        fprintf(stderr, "aragora-chaos: no OS user '%s' to run the lab's servers as\n", user);
        return -1;
    }
    /* mkdtemp makes 0700 directories: open DIR itself (it holds no secret readable by others:
     * token and cluster-secret are 0600) */
    if (chmod(lab->dir, 0755) != 0) {
        fprintf(stderr, "aragora-chaos: chmod 0755 %s (%s runs servers in it): %s\n", lab->dir,
                user, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s", lab->dir);
    for (char *slash = strrchr(path, '/'); slash != NULL; slash = strrchr(path, '/')) {
        slash[slash == path ? 1 : 0] = '\0';
        if (stat(path, &st) != 0 || !can_traverse(&st, pw)) {
            fprintf(stderr,
                    "aragora-chaos: the lab's servers run as OS user %s, which cannot enter %s "
                    "(mode %04o); put the lab under a directory it can reach, e.g. /tmp\n",
                    user, path, (unsigned)(st.st_mode & 07777));
            return -1;
        }
        if (slash == path)
            break;
    }
    return 0;
}

/* A directory (or, with is_file, an empty file) the postgres user owns. */
static int make_owned(const struct lab *lab, const char *path, bool is_file)
{
    return lab_make_owned(path, is_file, lab->pg_run_as);
}

/* ---- creating the clusters ---- */

static int run_tool(const struct lab *lab, const struct lab_region *r, const char *const argv[],
                    unsigned timeout_ms)
{
    int rc = lab_exec(lab->pg_run_as, NULL, argv, r->pg.log, NULL, 0, timeout_ms);
    if (rc != 0) {
        fprintf(stderr, "aragora-chaos: %s: %s failed (exit %d)\n", r->name, argv[0], rc);
        lab_print_file_tail(r->pg.log, r->name, 20);
        return -1;
    }
    return 0;
}

static int append_file(const char *path, const char *text, const char *mode)
{
    FILE *f = fopen(path, mode);
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "aragora-chaos: writing %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int init_primary(const struct lab *lab, const struct lab_region *r)
{
    char initdb[LAB_PATH_MAX + 8], conf[LAB_PATH_MAX + 32], hba[LAB_PATH_MAX + 32];
    snprintf(initdb, sizeof initdb, "%s/initdb", lab->pg_bin_dir);
    const char *argv[] = {
        initdb, "-D",   r->pg.data_dir,     "-U",        "postgres", "--auth=trust",
        "-E",   "UTF8", "--locale=C.UTF-8", "--no-sync", NULL};
    if (run_tool(lab, r, argv, 120000) != 0)
        return -1;
    if (lab->fence_module[0] != '\0') {
        /* The fence's SQL functions, created before the server ever runs with the module: a
         * loaded fence starts closed and refuses catalog writes (docs/fencing.md). Replicas get
         * them with their base backup. */
        char postgres[LAB_PATH_MAX + 16];
        snprintf(postgres, sizeof postgres, "%s/postgres", lab->pg_bin_dir);
        const char *setup[] = {
            "/bin/sh",      "-c",     "exec \"$1\" --single -j -D \"$2\" postgres < \"$3\"",
            "fence-setup",  postgres, r->pg.data_dir,
            lab->fence_sql, NULL};
        char out[4096] = "";
        int rc = lab_exec(lab->pg_run_as, NULL, setup, r->pg.log, out, sizeof out, 120000);
        if (rc != 0 || strstr(out, "ERROR:") != NULL) { /* --single exits 0 after an error */
            fprintf(stderr, "aragora-chaos: %s: the fence's setup SQL failed (exit %d): %s\n",
                    r->name, rc, out);
            return -1;
        }
    }
    /* the files exist and belong to postgres; writing them keeps their owner */
    snprintf(conf, sizeof conf, "%s/postgresql.conf", r->pg.data_dir);
    snprintf(hba, sizeof hba, "%s/pg_hba.conf", r->pg.data_dir);
    if (append_file(conf, shared_conf, "a") != 0 || append_file(hba, hba_conf, "w") != 0)
        return -1;
    if (!lab->netns.enabled)
        return 0;
    /* namespace mode: the other regions and this machine come over the bridge (replicas get
     * this file with their base backup) */
    char bridged[256];
    snprintf(bridged, sizeof bridged,
             "host all all %s.0/24 trust\nhost replication all %s.0/24 trust\n", lab->netns.subnet,
             lab->netns.subnet);
    return append_file(hba, bridged, "a");
}

/* Slot names may hold only lowercase letters, digits and '_'. */
static void slot_name(const struct lab_region *r, char *out, size_t size)
{
    snprintf(out, size, "%s", r->name);
    for (char *p = out; *p != '\0'; p++)
        if (*p == '-')
            *p = '_';
}

static int init_replica(const struct lab *lab, const struct lab_region *primary,
                        const struct lab_region *r)
{
    char bb[LAB_PATH_MAX + 16], port[16], slot[40], sql[256], out[512];
    char auto_conf[LAB_PATH_MAX + 32], line[256];
    slot_name(r, slot, sizeof slot);
    snprintf(sql, sizeof sql,
             "SELECT pg_create_physical_replication_slot('%s') WHERE NOT EXISTS (SELECT 1 FROM "
             "pg_replication_slots WHERE slot_name = '%s')",
             slot, slot);
    if (lab_pg_query(lab, &primary->pg, sql, out, sizeof out) != 0) {
        fprintf(stderr, "aragora-chaos: %s: creating slot %s on %s: %s\n", r->name, slot,
                primary->name, out);
        return -1;
    }
    snprintf(bb, sizeof bb, "%s/pg_basebackup", lab->pg_bin_dir);
    snprintf(port, sizeof port, "%u", primary->pg.port);
    const char *argv[] = {bb,         "-h",        primary->pg.host,
                          "-p",       port,        "-U",
                          "postgres", "-D",        r->pg.data_dir,
                          "-R",       "-S",        slot,
                          "-X",       "stream",    "-c",
                          "fast",     "--no-sync", NULL};
    if (run_tool(lab, r, argv, 120000) != 0)
        return -1;
    /* -R wrote primary_conninfo and primary_slot_name; later lines win, and this one names the
     * replica (application_name) in the primary's pg_stat_replication */
    char via[32];
    lab_via_host(lab, (unsigned)(r - lab->regions), (unsigned)(primary - lab->regions), via,
                 sizeof via);
    snprintf(auto_conf, sizeof auto_conf, "%s/postgresql.auto.conf", r->pg.data_dir);
    snprintf(line, sizeof line,
             "primary_conninfo = 'host=%s port=%u user=postgres application_name=%s'\n"
             "primary_slot_name = '%s'\n",
             via, primary->pg.port, r->name, slot);
    return append_file(auto_conf, line, "a");
}

static bool has_cluster(const struct lab_pg *pg)
{
    char path[LAB_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/PG_VERSION", pg->data_dir);
    return access(path, F_OK) == 0;
}

/* An existing data directory decides its own role (standby.signal). */
static void note_existing_role(struct lab_pg *pg)
{
    char path[LAB_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/standby.signal", pg->data_dir);
    snprintf(pg->role, sizeof pg->role, "%s", access(path, F_OK) == 0 ? "replica" : "primary");
}

static int create_region(struct lab *lab, struct lab_region *r, unsigned i)
{
    if (make_owned(lab, r->pg.data_dir, false) != 0 ||
        make_owned(lab, r->pg.socket_dir, false) != 0 || make_owned(lab, r->pg.log, true) != 0)
        return -1;
    if (has_cluster(&r->pg)) {
        note_existing_role(&r->pg);
        printf("%-14s postgres: reusing %s (%s)\n", r->name, r->pg.data_dir, r->pg.role);
        return 0;
    }
    return i == 0 ? init_primary(lab, r) : init_replica(lab, &lab->regions[0], r);
}

/* Wait until the (single) primary has every other node streaming. */
static int wait_streaming(const struct lab *lab)
{
    const struct lab_region *primary = NULL;
    char out[256];
    for (unsigned i = 0; i < lab->n_regions; i++)
        if (strcmp(lab->regions[i].pg.role, "primary") == 0)
            primary = primary == NULL ? &lab->regions[i] : NULL;
    if (primary == NULL) {
        printf("postgres: not exactly one primary among reused data directories; not waiting\n");
        return 0;
    }
    unsigned long long start = lab_now_ms();
    unsigned want = lab->n_regions - 1;
    while (lab_now_ms() - start < PG_STREAMING_TIMEOUT_MS) {
        if (lab_pg_query(lab, &primary->pg,
                         "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'", out,
                         sizeof out) == 0 &&
            strtoul(out, NULL, 10) >= want) {
            printf("postgres: %s primary, %u replica%s streaming (after %llu ms)\n", primary->name,
                   want, want == 1 ? "" : "s", lab_now_ms() - start);
            return 0;
        }
        lab_sleep_ms(100);
    }
    fprintf(stderr, "aragora-chaos: %s: only %s of %u replicas streaming after %u s\n",
            primary->name, out, want, PG_STREAMING_TIMEOUT_MS / 1000);
    for (unsigned i = 0; i < lab->n_regions; i++)
        lab_print_file_tail(lab->regions[i].pg.log, lab->regions[i].name, 10);
    return -1;
}

int lab_pg_up(struct lab *lab)
{
    unsigned long long start = lab_now_ms();
    for (unsigned i = 0; i < lab->n_regions; i++) {
        struct lab_region *r = &lab->regions[i];
        if (create_region(lab, r, i) != 0)
            return -1;
        int rc = lab_pg_start(lab, &r->pg, r->name);
        if (lab_save(lab) != 0 || rc != 0)
            return -1;
        printf("%-14s postgres pid %-7d port %u  %s  (%llu ms)\n", r->name, (int)r->pg.pid,
               r->pg.port, r->pg.role, lab_now_ms() - start);
        fflush(stdout);
    }
    return wait_streaming(lab);
}
