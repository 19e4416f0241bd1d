/*
 * Keeping the local PostgreSQL running, and rejoin (ARCHITECTURE.md §5, step 6).
 *
 * When this node's own PostgreSQL refuses connections (and the cluster is not paused):
 *   - the authorized primary is restarted, but only while this node holds the write lease;
 *   - a replica is restarted;
 *   - the deposed old primary first has its divergent WAL saved (quarantine), then is rewound
 *     from the new primary with pg_rewind and started as a replica.
 * One action at a time, through afc_run (never blocking the loop); the results come back in
 * exec_local_done().
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "afc/log.h"
#include "afc/run.h"
#include "coordinator/executor_internal.h"
#include "coordinator/report.h"

#define START_TIMEOUT_MS     90000
#define REWIND_TIMEOUT_MS    300000
#define DOWN_BEFORE_START_MS 500 /* own PostgreSQL refused connections this long → act */

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

/* The last line of the script's output, into history and the log. */
static void quarantined(struct afc_executor *x, bool ok, const char *output)
{
    const char *last = output, *nl;
    while ((nl = strchr(last, '\n')) != NULL && nl[1] != '\0') {
        last = nl + 1;
    }
    char line[AFC_DETAIL_MAX];
    snprintf(line, sizeof line, "%.*s", (int)strcspn(last, "\n"), last);
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

/* After pg_rewind -R: name our slot too (the -R conninfo has no slot), then start. */
static void rewound(struct afc_executor *x)
{
    char path[AFC_PATH_MAX + 32], slot[AFC_NAME_MAX];
    slot_name(x->d->cfg.region, slot, sizeof slot);
    snprintf(path, sizeof path, "%s/postgresql.auto.conf", x->d->cfg.pg_data_dir);
    FILE *f = fopen(path, "a");
    if (f != NULL) {
        fprintf(f, "primary_slot_name = '%s'\n", slot);
        fclose(f);
    }
    afc_event("rewound", "region=%s from=%s", x->d->cfg.region, x->rewind_from);
    pg_start(x, "rejoin as a replica");
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
    } else if (file_exists(dir, "standby.signal")) {
        pg_start(x, "replica is down");
    } else if (primary_is_up(x, &primary)) {
        /* the deposed old primary: first keep its divergent WAL, then rewind it */
        if (x->quarantined_epoch != s->epoch) {
            quarantine_wal(x, primary);
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
            afc_event("rejoin-failed", "region=%s from=%s", x->d->cfg.region, x->rewind_from);
            x->hold_until_ms = now_ms(x) + 5000; /* try again later, not every tick */
        }
        break;
    case ACT_START:
        /* give the probe time to see it up before judging it down again */
        x->hold_until_ms = ok ? now_ms(x) + 3000 : 0;
        break;
    default:
        break;
    }
}
