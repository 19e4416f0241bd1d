/*
 * Keeping the local PostgreSQL running, and rejoin (ARCHITECTURE.md §5, step 6).
 *
 * When this node's own PostgreSQL refuses connections (and the cluster is not paused):
 *   - the authorized primary is restarted, but only while this node holds the write lease;
 *   - a replica is restarted;
 *   - the deposed old primary first has its divergent WAL saved (quarantine), then is rewound
 *     from the new primary with pg_rewind and started as a replica;
 *   - when pg_rewind cannot work, its data directory is renamed aside (never deleted), a fresh
 *     base backup is taken from the new primary with pg_basebackup, and it starts as a replica.
 *     The rule (docs/failover.md, "Rejoin"): at once when pg_rewind's output says the target
 *     itself cannot be rewound (its WAL from the last common checkpoint is gone, no
 *     wal_log_hints, no common timeline, no control file); after the second failure in a row in
 *     the same epoch for any other reason; never when the source could not be reached (a copy
 *     would fail too) or is another cluster (a different system identifier: refused).
 * One action at a time, through afc_run (never blocking the loop); the results come back in
 * exec_local_done().
 */
#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "afc/log.h"
#include "afc/run.h"
#include "coordinator/executor_internal.h"
#include "coordinator/report.h"

#define START_TIMEOUT_MS      90000
#define REWIND_TIMEOUT_MS     300000
#define REWIND_RETRY_MS       5000
#define REWIND_FAILURES_MAX   2                    /* other failures in a row → base backup */
#define BASEBACKUP_TIMEOUT_MS (6u * 3600u * 1000u) /* a large cluster over a slow link */
#define BASEBACKUP_RETRY_MS   30000                /* × attempts so far, at most 10× */
#define DOWN_BEFORE_START_MS  500 /* own PostgreSQL refused connections this long → act */

static bool file_exists(const char *dir, const char *name)
{
    char path[AFC_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static void pg_start(struct afc_executor *x, const char *why)
{
    const struct afc_config *c = &x->d->cfg;
    char pg_ctl[AFC_PATH_MAX + 16];
    snprintf(pg_ctl, sizeof pg_ctl, "%s/pg_ctl", c->pg_bin_dir);
    const char *argv[16];
    unsigned n = 0;
    argv[n++] = pg_ctl;
    argv[n++] = "start";
    argv[n++] = "-w";
    argv[n++] = "-t";
    argv[n++] = "60";
    argv[n++] = "-D";
    argv[n++] = c->pg_data_dir;
    if (c->pg_options[0] != '\0') {
        argv[n++] = "-o";
        argv[n++] = c->pg_options;
    }
    if (c->pg_log_file[0] != '\0') {
        argv[n++] = "-l";
        argv[n++] = c->pg_log_file;
    }
    argv[n] = NULL;
    afc_event("pg-starting", "region=%s reason=%s", c->region, why);
    exec_start_action(x, ACT_START, "starting PostgreSQL", argv, START_TIMEOUT_MS);
}

void exec_pg_stop(struct afc_executor *x, enum action act, const char *why)
{
    const struct afc_config *c = &x->d->cfg;
    char pg_ctl[AFC_PATH_MAX + 16];
    snprintf(pg_ctl, sizeof pg_ctl, "%s/pg_ctl", c->pg_bin_dir);
    const char *argv[] = {pg_ctl, "stop", "-w", "-t",           "60",
                          "-m",   "fast", "-D", c->pg_data_dir, NULL};
    afc_event("pg-stopping", "region=%s reason=\"%s\"", c->region, why);
    exec_start_action(x, act, "stopping PostgreSQL", argv, START_TIMEOUT_MS);
}

/*
 * Before pg_rewind overwrites anything: keep the old primary's divergent WAL for the operator.
 * The fork point comes from the new primary's timeline history file (exact); the segments of the
 * old timeline from the fork on are copied to QUARANTINE/epoch-N-timeline-T/, and pg_waldump
 * finds where that WAL ends and lists its records. The last line of output is the summary.
 * Arguments: bin_dir data_dir quarantine_root epoch source_conninfo. Needs superuser (or
 * pg_read_server_files) on the new primary for pg_read_file.
 */
static const char quarantine_sh[] =
    "set -eu\n"
    "bin=$1; data=$2; qroot=$3; epoch=$4; src=$5\n"
    "tl=$(\"$bin/pg_controldata\" \"$data\" | sed -n \"s/^Latest checkpoint's TimeLineID: *//p\")\n"
    "q() { \"$bin/psql\" -X -A -t -q -v ON_ERROR_STOP=1 -d \"$src\" -c \"$1\"; }\n"
    "newtl=$(q \"SELECT ('x'||substr(pg_walfile_name(pg_current_wal_lsn()),1,8))::bit(32)::int\")\n"
    "hist=$(printf 'pg_wal/%08X.history' \"$newtl\")\n"
    "fork=$(q \"SELECT split_part(l, E'\\t', 2) FROM regexp_split_to_table(pg_read_file('$hist'), "
    "E'\\n') l WHERE split_part(l, E'\\t', 1) = '$tl'\")\n"
    "[ -n \"$fork\" ] || { echo \"no fork point for timeline $tl in $hist\"; exit 3; }\n"
    "hi=${fork%/*}; lo=${fork#*/}\n"
    "first=$(printf '%08X%08X%08X' \"$tl\" \"$((0x$hi))\" \"$((0x$lo >> 24))\")\n"
    "dir=\"$qroot/epoch-$epoch-timeline-$tl\"\n"
    "mkdir -p \"$dir\"\n"
    "n=0\n"
    "for f in \"$data\"/pg_wal/$(printf '%08X' \"$tl\")*; do\n"
    "  b=${f##*/}; case $b in *.*) continue;; esac\n"
    "  if [ ! \"$b\" \\< \"$first\" ]; then cp -p \"$f\" \"$dir/\"; n=$((n+1)); fi\n"
    "done\n"
    "end=$(\"$bin/pg_waldump\" -p \"$dir\" -t \"$tl\" -s \"$fork\" 2>&1 >\"$dir/records.txt\" | "
    "sed -n 's/.* at \\([0-9A-F]*\\/[0-9A-F]*\\).*/\\1/p' | head -n 1) || true\n"
    "rec=$(wc -l <\"$dir/records.txt\")\n"
    "printf 'fork_lsn=%s end_lsn=%s timeline=%s segments=%s records=%s dir=%s\\n' \"$fork\" "
    "\"${end:-unknown}\" \"$tl\" \"$n\" \"$rec\" \"$dir\" | tee \"$dir/QUARANTINE.txt\"\n";

static void quarantine_wal(struct afc_executor *x, const char *primary)
{
    const struct afc_config *c = &x->d->cfg;
    const struct afc_config_member *m = cfg_member(x, primary);
    if (m == NULL || m->postgres[0] == '\0') {
        return;
    }
    char root[AFC_PATH_MAX + 16], epoch[24];
    snprintf(root, sizeof root, "%s.quarantine", c->pg_data_dir);
    snprintf(epoch, sizeof epoch, "%" PRIu64, state_of(x)->epoch);
    const char *argv[] = {"/bin/sh",      "-c", quarantine_sh, "quarantine", c->pg_bin_dir,
                          c->pg_data_dir, root, epoch,         m->postgres,  NULL};
    struct afc_run_options opt = {.argv = argv, .timeout_ms = SQL_TIMEOUT_MS * 4};
    struct afc_err err = {0};
    snprintf(x->what, sizeof x->what, "%s", "saving the divergent WAL");
    snprintf(x->rewind_from, sizeof x->rewind_from, "%s", primary);
    /* as the daemon itself, not run_as: the folder is beside the data directory */
    if (afc_run_start(x->d->loop, &opt, exec_run_cb, x, NULL, &err) == 0) {
        x->running = ACT_QUARANTINE;
    } else {
        afc_error("while saving the divergent WAL: %s", err.msg);
    }
}

/* The last line of a program's output, for an event or a note. */
static void last_line(const char *output, char *line, size_t cap)
{
    const char *last = output, *nl;
    while ((nl = strchr(last, '\n')) != NULL && nl[1] != '\0') {
        last = nl + 1;
    }
    snprintf(line, cap, "%.*s", (int)strcspn(last, "\n"), last);
}

/* The last line of the script's output, into history and the log. */
static void quarantined(struct afc_executor *x, bool ok, const char *output)
{
    char line[AFC_DETAIL_MAX];
    last_line(output, line, sizeof line);
    x->quarantined_epoch = state_of(x)->epoch;
    if (!ok) {
        afc_event("wal-quarantine-failed", "region=%s detail=\"%s\"", x->d->cfg.region, line);
        return; /* rejoin anyway: a stopped old primary helps nobody; the operator is told */
    }
    afc_event("wal-quarantined", "region=%s %s", x->d->cfg.region, line);
    struct afc_cmd cmd;
    afc_cmd_start(&cmd, AFC_OP_NOTE, self_name(x));
    snprintf(cmd.u.note.kind, sizeof cmd.u.note.kind, "%s", "wal-quarantined");
    snprintf(cmd.u.note.detail, sizeof cmd.u.note.detail, "%.120s", line); /* by = region */
    afc_report_send(x->d, &cmd, NULL, NULL);
}

static void rewind_from(struct afc_executor *x, const char *primary)
{
    const struct afc_config *c = &x->d->cfg;
    const struct afc_config_member *m = cfg_member(x, primary);
    if (m == NULL || m->postgres[0] == '\0') {
        return;
    }
    char pg_rewind[AFC_PATH_MAX + 16], source[AFC_PATH_MAX + 96], slot[AFC_NAME_MAX];
    slot_name(c->region, slot, sizeof slot);
    snprintf(pg_rewind, sizeof pg_rewind, "%s/pg_rewind", c->pg_bin_dir);
    snprintf(source, sizeof source, "--source-server=%s application_name=%s", m->postgres, slot);
    const char *argv[] = {pg_rewind, "-D", c->pg_data_dir, source, "-R", NULL};
    snprintf(x->rewind_from, sizeof x->rewind_from, "%s", primary);
    afc_event("rejoining", "region=%s from=%s epoch=%" PRIu64, c->region, primary,
              state_of(x)->epoch);
    exec_start_action(x, ACT_REWIND, "rewinding to rejoin", argv, REWIND_TIMEOUT_MS);
}

/* After pg_rewind -R or pg_basebackup -R: name our slot too (the -R conninfo has no slot). */
static void append_slot_name(const struct afc_executor *x)
{
    char path[AFC_PATH_MAX + 32], slot[AFC_NAME_MAX];
    slot_name(x->d->cfg.region, slot, sizeof slot);
    snprintf(path, sizeof path, "%s/postgresql.auto.conf", x->d->cfg.pg_data_dir);
    FILE *f = fopen(path, "a");
    if (f != NULL) {
        fprintf(f, "primary_slot_name = '%s'\n", slot);
        fclose(f);
    }
}

static void rewound(struct afc_executor *x)
{
    append_slot_name(x);
    x->rewind_failures = 0;
    x->rewind_needed_epoch = 0;
    afc_event("rewound", "region=%s from=%s", x->d->cfg.region, x->rewind_from);
    pg_start(x, "rejoin as a replica");
}

/* ---- when pg_rewind cannot work ---- */

/* What a failed pg_rewind says about trying again. */
enum rewind_failure {
    REWIND_FAILED,       /* any other failure: counts; REWIND_FAILURES_MAX in a row → copy */
    REWIND_IMPOSSIBLE,   /* the target itself cannot be rewound: copy at once */
    REWIND_UNREACHABLE,  /* the source could not be reached: retry, a copy would fail too */
    REWIND_OTHER_SYSTEM, /* another cluster: never replace ours with a copy of it */
};

static const char *const rewind_failure_names[] = {"error", "cannot-rewind", "source-unreachable",
                                                   "different-system"};

/* Messages of PostgreSQL 15's pg_rewind (pg_rewind.c, parsexlog.c, file_ops.c) and of libpq. The
 * first match wins, so the refusal comes first. */
static const struct {
    const char *text;
    enum rewind_failure cause;
} rewind_messages[] = {
    {"source and target clusters are from different systems", REWIND_OTHER_SYSTEM},
    /* the target's WAL from the last common checkpoint on is gone (removed, recycled) or bad */
    {"could not find previous WAL record", REWIND_IMPOSSIBLE},
    {"could not read WAL record", REWIND_IMPOSSIBLE},
    /* without hint-bit changes in WAL, the blocks that changed cannot be known */
    {"needs to use either data checksums or \"wal_log_hints = on\"", REWIND_IMPOSSIBLE},
    {"could not find common ancestor", REWIND_IMPOSSIBLE},
    {"clusters are not compatible with this version of pg_rewind", REWIND_IMPOSSIBLE},
    {"/global/pg_control\" for reading", REWIND_IMPOSSIBLE}, /* the target's control file */
    {"connection to server", REWIND_UNREACHABLE},
    {"could not connect to server", REWIND_UNREACHABLE},
    {"server closed the connection", REWIND_UNREACHABLE},
};

static enum rewind_failure classify_rewind_failure(const char *output)
{
    for (size_t i = 0; i < sizeof rewind_messages / sizeof rewind_messages[0]; i++) {
        if (strstr(output, rewind_messages[i].text) != NULL) {
            return rewind_messages[i].cause;
        }
    }
    return REWIND_FAILED;
}

static void rewind_failed(struct afc_executor *x, const char *output)
{
    afc_epoch epoch = state_of(x)->epoch;
    enum rewind_failure cause = classify_rewind_failure(output);
    if (x->rewind_epoch != epoch) {
        x->rewind_epoch = epoch;
        x->rewind_failures = 0;
    }
    x->rewind_failures += cause == REWIND_FAILED || cause == REWIND_IMPOSSIBLE;
    bool copy = cause == REWIND_IMPOSSIBLE ||
                (cause == REWIND_FAILED && x->rewind_failures >= REWIND_FAILURES_MAX);
    afc_event("rejoin-failed", "region=%s from=%s epoch=%" PRIu64 " cause=%s failures=%u next=%s",
              x->d->cfg.region, x->rewind_from, epoch, rewind_failure_names[cause],
              x->rewind_failures, copy ? "base-backup" : "rewind");
    if (copy) {
        x->basebackup_due_epoch = epoch; /* at the next tick */
    } else {
        x->hold_until_ms = now_ms(x) + REWIND_RETRY_MS; /* try again later, not every tick */
    }
}

/* A postmaster.pid naming a live process: PostgreSQL may still run on the directory (nothing
 * listening on its port does not prove otherwise). A stale file after a crash names a dead one. */
static bool postmaster_alive(const char *dir, long *pid)
{
    char path[AFC_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/postmaster.pid", dir);
    FILE *f = fopen(path, "r");
    *pid = 0;
    if (f != NULL) {
        if (fscanf(f, "%ld", pid) != 1) {
            *pid = 0;
        }
        fclose(f);
    }
    return *pid > 0 && (kill((pid_t)*pid, 0) == 0 || errno == EPERM);
}

/*
 * Rename the data directory aside: <data_dir>.failed-epoch-N-<unix seconds>, beside it, so the
 * rename stays on its file system and is atomic. Never deleted, never renamed onto anything (an
 * existing name is an error: rename(2) would replace an empty directory). Refused for a
 * directory that is missing (an unmounted volume must not be replaced by a new directory), a
 * symbolic link or a mount point: those the operator moves by hand.
 */
static int move_aside(struct afc_executor *x, struct afc_err *err)
{
    char dir[AFC_PATH_MAX], parent[AFC_PATH_MAX], aside[sizeof x->moved_aside];
    struct stat st, up;
    snprintf(dir, sizeof dir, "%s", x->d->cfg.pg_data_dir);
    for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--) {
        dir[n - 1] = '\0';
    }
    snprintf(parent, sizeof parent, "%s/..", dir);
    if (lstat(dir, &st) != 0) {
        return afc_err_set(err, AFC_EIO, "%s: %s (not creating a new one)", dir, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode) || stat(parent, &up) != 0 || st.st_dev != up.st_dev) {
        return afc_err_set(err, AFC_EIO,
                           "%s is a symbolic link, a mount point or no directory: move it "
                           "aside by hand",
                           dir);
    }
    long pid;
    if (postmaster_alive(dir, &pid)) {
        return afc_err_set(err, AFC_EIO, "%s: postmaster.pid names a running process (%ld)", dir,
                           pid);
    }
    int n = snprintf(aside, sizeof aside, "%s.failed-epoch-%" PRIu64 "-%lld", dir,
                     state_of(x)->epoch, (long long)(afc_wall_now_ms() / 1000));
    if (n < 0 || (size_t)n >= sizeof aside) {
        return afc_err_set(err, AFC_EIO, "%s: path too long to rename aside", dir);
    }
    if (lstat(aside, &st) == 0 || errno != ENOENT) {
        return afc_err_set(err, AFC_EIO, "%s already exists", aside);
    }
    if (rename(dir, aside) != 0) {
        return afc_err_set(err, AFC_EIO, "rename %s to %s: %s", dir, aside, strerror(errno));
    }
    snprintf(x->moved_aside, sizeof x->moved_aside, "%s", aside);
    return 0;
}

/*
 * The empty data directory pg_basebackup writes into. The daemon creates it (the directory above
 * is writable by the daemon, not necessarily by the PostgreSQL user: in the lab it is root's) as
 * 0700 and gives it to postgres.run_as, as PostgreSQL requires. It remembers which directory it
 * created (device and inode): only that one is ever emptied for a retry.
 */
static int prepare_target(struct afc_executor *x, struct afc_err *err)
{
    const struct afc_config *c = &x->d->cfg;
    struct stat st;
    if (stat(c->pg_data_dir, &st) != 0) {
        if (errno != ENOENT || mkdir(c->pg_data_dir, 0700) != 0 || stat(c->pg_data_dir, &st) != 0) {
            return afc_err_set(err, AFC_EIO, "mkdir %s: %s", c->pg_data_dir, strerror(errno));
        }
        x->target_dev = st.st_dev;
        x->target_ino = st.st_ino;
    } else if (st.st_dev != x->target_dev || st.st_ino != x->target_ino) {
        return afc_err_set(err, AFC_EIO, "%s was not created by this coordinator: left alone",
                           c->pg_data_dir);
    }
    if (c->pg_run_as[0] == '\0' || geteuid() != 0) {
        return 0; /* PostgreSQL's programs run as the daemon's own user */
    }
    struct passwd pw, *found = NULL;
    char buf[4096];
    if (getpwnam_r(c->pg_run_as, &pw, buf, sizeof buf, &found) != 0 || found == NULL) {
        return afc_err_set(err, AFC_ECONFIG, "no OS user '%s'", c->pg_run_as);
    }
    if (chown(c->pg_data_dir, pw.pw_uid, pw.pw_gid) != 0) {
        return afc_err_set(err, AFC_EIO, "chown %s %s: %s", c->pg_run_as, c->pg_data_dir,
                           strerror(errno));
    }
    return 0;
}

/* A failed attempt, or a failure before one: say why and retry later (30 s, 60 s, ... 300 s). */
static void basebackup_failed(struct afc_executor *x, const char *why)
{
    unsigned n = x->basebackup_attempts;
    uint64_t retry_ms = (uint64_t)BASEBACKUP_RETRY_MS * (n == 0 ? 1 : n > 10 ? 10 : n);
    char reason[AFC_DETAIL_MAX];
    snprintf(reason, sizeof reason, "%s", why);
    for (char *p = reason; *p != '\0'; p++) {
        *p = *p == '"' ? '\'' : *p;
    }
    afc_event("basebackup-failed",
              "region=%s from=%s epoch=%" PRIu64 " attempt=%u retry_in_ms=%" PRIu64
              " reason=\"%s\"",
              x->d->cfg.region, x->rewind_from, state_of(x)->epoch, n, retry_ms, reason);
    x->hold_until_ms = now_ms(x) + retry_ms;
}

/*
 * pg_basebackup into the directory we created. A failed pg_basebackup removes what it wrote
 * itself; one killed at its deadline cannot, so each attempt first empties the directory: a
 * partial copy of the primary, which holds nothing the primary does not have. The daemon checked
 * just before that it is still the directory it created.
 */
static const char basebackup_sh[] = "set -eu\n"
                                    "dir=$1; shift\n"
                                    "find \"$dir\" -mindepth 1 -xdev -delete\n"
                                    "exec \"$@\"\n";

static void run_basebackup(struct afc_executor *x, const char *primary)
{
    const struct afc_config *c = &x->d->cfg;
    const struct afc_config_member *m = cfg_member(x, primary);
    struct afc_err err = {0};
    if (m == NULL || m->postgres[0] == '\0') {
        return;
    }
    if (prepare_target(x, &err) != 0) {
        basebackup_failed(x, err.msg);
        return;
    }
    char bin[AFC_PATH_MAX + 16], source[AFC_PATH_MAX + AFC_NAME_MAX + 32], slot[AFC_NAME_MAX];
    slot_name(c->region, slot, sizeof slot);
    snprintf(bin, sizeof bin, "%s/pg_basebackup", c->pg_bin_dir);
    snprintf(source, sizeof source, "%s application_name=%s", m->postgres, slot);
    /* -c fast: an immediate checkpoint on the primary; -X stream: the WAL the copy needs comes
     * along; -R: standby.signal and primary_conninfo; -w: never prompt for a password */
    const char *argv[] = {"/bin/sh", "-c",   basebackup_sh,  "basebackup", c->pg_data_dir,
                          bin,       "-D",   c->pg_data_dir, "-X",         "stream",
                          "-c",      "fast", "-R",           "-w",         "-d",
                          source,    NULL};
    snprintf(x->rewind_from, sizeof x->rewind_from, "%s", primary);
    x->basebackup_attempts++;
    x->basebackup_started_ms = now_ms(x);
    exec_start_action(x, ACT_BASEBACKUP, "taking a base backup to rejoin", argv,
                      BASEBACKUP_TIMEOUT_MS);
}

/* History: where the old data directory went (its name alone if the path does not fit; it is
 * always beside the data directory). */
static void note_moved_aside(struct afc_executor *x)
{
    const char *name = strrchr(x->moved_aside, '/');
    struct afc_cmd cmd;
    afc_cmd_start(&cmd, AFC_OP_NOTE, self_name(x));
    snprintf(cmd.u.note.kind, sizeof cmd.u.note.kind, "%s", "rejoin-basebackup");
    int n = snprintf(cmd.u.note.detail, sizeof cmd.u.note.detail, "from=%s moved_aside=%s",
                     x->rewind_from, x->moved_aside);
    if ((n < 0 || (size_t)n >= sizeof cmd.u.note.detail) && name != NULL) {
        n = snprintf(cmd.u.note.detail, sizeof cmd.u.note.detail, "from=%s moved_aside=%s",
                     x->rewind_from, name + 1);
    }
    (void)n; /* still too long: the history shows it cut, the log has it whole */
    afc_report_send(x->d, &cmd, NULL, NULL);
}

static void start_basebackup(struct afc_executor *x, const char *primary)
{
    struct afc_err err = {0};
    snprintf(x->rewind_from, sizeof x->rewind_from, "%s", primary);
    if (move_aside(x, &err) != 0) {
        basebackup_failed(x, err.msg);
        return;
    }
    x->basebackup_pending = true;
    x->basebackup_attempts = 0;
    x->target_dev = 0;
    x->target_ino = 0;
    afc_event("rejoin-basebackup", "region=%s from=%s epoch=%" PRIu64 " moved_aside=%s",
              x->d->cfg.region, primary, state_of(x)->epoch, x->moved_aside);
    note_moved_aside(x);
    run_basebackup(x, primary);
}

static void basebackup_done(struct afc_executor *x, bool ok, const char *output)
{
    if (!ok) {
        char line[AFC_DETAIL_MAX];
        last_line(output, line, sizeof line);
        basebackup_failed(x, line);
        return;
    }
    append_slot_name(x);
    afc_event("basebackup-done",
              "region=%s from=%s epoch=%" PRIu64 " duration_ms=%" PRIu64 " moved_aside=%s",
              x->d->cfg.region, x->rewind_from, state_of(x)->epoch,
              now_ms(x) - x->basebackup_started_ms, x->moved_aside);
    x->basebackup_pending = false;
    x->basebackup_attempts = 0;
    x->basebackup_due_epoch = 0;
    x->rewind_failures = 0;
    x->rewind_needed_epoch = 0;
    pg_start(x, "rejoin as a replica (base backup)");
}

/* The authorized primary, as a rewind source: a majority of observers must see it healthy (a
 * dead region's own coordinator never reports its death, so its last word cannot be trusted). */
static bool primary_is_up(const struct afc_executor *x, const char **name)
{
    const struct afc_state *s = state_of(x);
    unsigned n = s->n_members < AFC_MAX_MEMBERS ? s->n_members : AFC_MAX_MEMBERS;
    for (unsigned j = 0; j < n; j++) {
        if (strcmp(s->members[j].name, s->primary) != 0) {
            continue;
        }
        unsigned healthy = 0;
        for (unsigned i = 0; i < n; i++) {
            healthy +=
                s->obs[i][j].valid && s->obs[i][j].healthy && s->obs[i][j].role == AFC_PG_PRIMARY;
        }
        *name = s->members[j].name;
        return healthy >= n / 2 + 1;
    }
    return false;
}

void exec_local_tick(struct afc_executor *x)
{
    const struct afc_state *s = state_of(x);
    /* the raw last probe, not the hysteresis: a restart must begin well within the lease */
    bool down = x->local != NULL && x->local_refused;
    if (!down || s->paused || s->epoch == 0 || now_ms(x) < x->hold_until_ms) {
        x->down_since_ms = 0;
        return;
    }
    if (x->down_since_ms == 0) {
        x->down_since_ms = now_ms(x);
    }
    if (now_ms(x) - x->down_since_ms < DOWN_BEFORE_START_MS) {
        return;
    }
    const char *dir = x->d->cfg.pg_data_dir;
    const char *primary = NULL;
    x->down_since_ms = now_ms(x); /* retry no sooner than DOWN_BEFORE_START_MS after this */
    if (strcmp(s->primary, self_name(x)) == 0) {
        /* Only while we hold the lease: a primary that fenced itself because its lease ran out
         * (cut off from the quorum) must stay down, whatever its stale view of the state says. */
        if (x->lease_valid) {
            x->restarting_since_ms = x->restarting_since_ms ? x->restarting_since_ms : now_ms(x);
            pg_start(x, "authorized primary is down");
        }
    } else if (x->basebackup_pending) {
        /* before standby.signal: a copy killed at its deadline may have written one already */
        if (primary_is_up(x, &primary)) {
            run_basebackup(x, primary);
        }
    } else if (file_exists(dir, "standby.signal") && x->rewind_needed_epoch != s->epoch) {
        pg_start(x, "replica is down");
    } else if (primary_is_up(x, &primary)) {
        /* the deposed old primary, or a replica that diverged from the new primary's timeline:
         * first keep its divergent WAL, then rewind it (or copy) */
        if (x->quarantined_epoch != s->epoch) {
            quarantine_wal(x, primary);
        } else if (x->basebackup_due_epoch == s->epoch) {
            start_basebackup(x, primary);
        } else {
            rewind_from(x, primary);
        }
    }
}

void exec_local_done(struct afc_executor *x, enum action act, bool ok, const char *output)
{
    switch (act) {
    case ACT_QUARANTINE:
        quarantined(x, ok, output);
        x->down_since_ms = 0; /* rewind at the next tick */
        break;
    case ACT_REWIND:
        if (ok) {
            rewound(x);
        } else {
            rewind_failed(x, output);
        }
        break;
    case ACT_BASEBACKUP:
        basebackup_done(x, ok, output);
        break;
    case ACT_START:
        /* give the probe time to see it up before judging it down again */
        x->hold_until_ms = ok ? now_ms(x) + 3000 : 0;
        break;
    default:
        break;
    }
}
