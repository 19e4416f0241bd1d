/*
 * Integration test of the PostgreSQL prober (coordinator/pg_probe.c) against a real PostgreSQL 15.
 *
 * The program starts its own servers in a fresh temp dir (as the `postgres` user via runuser when
 * run as root; PostgreSQL refuses root): a primary pg1 on 127.0.0.1:24950 and a streaming replica
 * pg2 (pg_basebackup -R) on 24952, plus a black hole on 24951 — a listening socket that is never
 * accepted from, so TCP completes but the startup packet gets no answer. One prober watches all
 * three. Steps: pg1 healthy primary on timeline 1; pg2 healthy replica streaming from "pg1"; the
 * hole unhealthy with l7-timeout; pg1 stopped (-m immediate) → unhealthy after `fall` failures;
 * pg1 started → healthy again; throughout, a 50 ms uv timer must keep firing on time. Waits are
 * bounded uv_run loops with deadlines, never sleeps. Servers are stopped by pg_ctl (then by PID)
 * on every path, including the watchdog alarm. Ports 24950-24952 sit below the ephemeral range
 * (lab-recipes P1).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "afc/log.h"
#include "afc/pg_probe.h"
#include "tests/test.h"

#define BIN             "/usr/lib/postgresql/15/bin"
#define PORT_PRIMARY    24950
#define PORT_HOLE       24951
#define PORT_REPLICA    24952
#define INTERVAL_MS     200
#define TICK_MS         50
#define MAX_TICK_GAP_MS 400 /* generous: timings get ~10x worse under load (lab-recipes P13) */

enum { T_PG1, T_HOLE, T_PG2, N_TARGETS };

struct report {
    unsigned n;
    struct afc_pg_obs last;
};

static struct {
    uv_loop_t loop;
    uv_timer_t tick;
    uint64_t last_tick_ms, max_gap_ms;
    struct afc_pg_prober *prober;
    struct report rep[N_TARGETS];
    bool stopped;
    char dir[64];
    char data[N_TARGETS][128];   /* data dir of each running server ("" if none) */
    pid_t postmaster[N_TARGETS]; /* for the watchdog: signal-safe kill by PID */
    int hole_fd;
} ctx = {.hole_fd = -1};

/* ---- processes ---- */

/* Run argv (as postgres if we are root), wait, return its exit status (-1 if it did not run). */
static int run(const char *const *argv)
{
    const char *full[32];
    unsigned n = 0;
    pid_t pid;
    int st;

    if (geteuid() == 0) {
        full[n++] = "runuser";
        full[n++] = "-u";
        full[n++] = "postgres";
        full[n++] = "--";
    }
    for (unsigned i = 0; argv[i] != NULL && n < 31; i++)
        full[n++] = argv[i];
    full[n] = NULL;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, STDOUT_FILENO);
        execvp(full[0], (char *const *)full);
        _exit(127);
    }
    if (waitpid(pid, &st, 0) < 0)
        return -1;
    ctx.last_tick_ms = 0; /* the harness blocked the loop, not the prober: do not count it */
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void path(char *out, size_t cap, const char *leaf)
{
    snprintf(out, cap, "%s/%s", ctx.dir, leaf);
}

static pid_t read_pid(const char *pidfile)
{
    FILE *f = fopen(pidfile, "r");
    long pid = 0;

    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    return (pid_t)pid;
}

static int pg_start(unsigned which, const char *data, int port)
{
    char log[128], opt[32], pidfile[128];
    const char *argv[] = {BIN "/pg_ctl", "-D", data, "-l", log,     "-o",
                          opt,           "-w", "-t", "60", "start", NULL};

    snprintf(log, sizeof(log), "%s.log", data);
    snprintf(opt, sizeof(opt), "-p %d", port); /* ports on the command line (lab-recipes P2) */
    if (run(argv) != 0)
        return -1;
    snprintf(pidfile, sizeof(pidfile), "%s/postmaster.pid", data);
    strcpy(ctx.data[which], data);
    ctx.postmaster[which] = read_pid(pidfile);
    return 0;
}

/* pg_ctl stop -m immediate; if that fails, SIGQUIT (immediate shutdown) to the recorded PID. */
static void pg_stop(unsigned which)
{
    const char *argv[] = {BIN "/pg_ctl", "-D", ctx.data[which], "-m",
                          "immediate",   "-w", "stop",          NULL};

    if (ctx.data[which][0] == '\0')
        return;
    if (run(argv) != 0 && ctx.postmaster[which] > 0)
        kill(ctx.postmaster[which], SIGQUIT);
    ctx.data[which][0] = '\0';
    ctx.postmaster[which] = 0;
}

static void cleanup(void)
{
    for (unsigned i = 0; i < N_TARGETS; i++)
        pg_stop(i);
}

/* The watchdog: only async-signal-safe calls. */
static void on_alarm(int sig)
{
    (void)sig;
    for (unsigned i = 0; i < N_TARGETS; i++)
        if (ctx.postmaster[i] > 0)
            kill(ctx.postmaster[i], SIGQUIT);
    (void)!write(STDERR_FILENO, "test_pg_probe: watchdog expired\n", 32);
    _exit(1);
}

static int append(const char *file, const char *text)
{
    FILE *f = fopen(file, "a");

    if (f == NULL)
        return -1;
    fputs(text, f);
    return fclose(f);
}

/* Trust on 127.0.0.1 only: the hba file is replaced, not appended to. */
static int configure(const char *data)
{
    char file[160], conf[512];

    snprintf(file, sizeof(file), "%s/pg_hba.conf", data);
    if (remove(file) != 0 || append(file, "host all postgres 127.0.0.1/32 trust\n"
                                          "host replication postgres 127.0.0.1/32 trust\n") != 0)
        return -1;
    snprintf(conf, sizeof(conf),
             "listen_addresses = '127.0.0.1'\nunix_socket_directories = '%s/sock'\n"
             "wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\nfsync = off\n"
             "wal_receiver_status_interval = 1s\nwal_retrieve_retry_interval = 1s\n",
             ctx.dir);
    snprintf(file, sizeof(file), "%s/postgresql.conf", data);
    return append(file, conf);
}

static int make_dirs(void)
{
    char sock[128];
    struct passwd *pw = getpwnam("postgres");

    strcpy(ctx.dir, "/tmp/afc-pgprobe-XXXXXX");
    if (mkdtemp(ctx.dir) == NULL)
        return -1;
    path(sock, sizeof(sock), "sock");
    if (mkdir(sock, 0700) != 0)
        return -1;
    if (geteuid() == 0) {
        if (pw == NULL || chown(ctx.dir, pw->pw_uid, pw->pw_gid) != 0 ||
            chown(sock, pw->pw_uid, pw->pw_gid) != 0)
            return -1;
    }
    return 0;
}

static int setup_primary(void)
{
    char data[128];
    const char *argv[] = {
        BIN "/initdb",      "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8",
        "--locale=C.UTF-8", NULL};

    path(data, sizeof(data), "pg1");
    if (run(argv) != 0 || configure(data) != 0)
        return -1;
    return pg_start(T_PG1, data, PORT_PRIMARY);
}

static int setup_replica(void)
{
    char data[128], port[16];
    const char *argv[] = {BIN "/pg_basebackup",
                          "-h",
                          "127.0.0.1",
                          "-p",
                          port,
                          "-U",
                          "postgres",
                          "-D",
                          data,
                          "-X",
                          "stream",
                          "-c",
                          "fast",
                          "-R",
                          "--no-sync",
                          NULL};

    path(data, sizeof(data), "pg2");
    snprintf(port, sizeof(port), "%d", PORT_PRIMARY);
    if (run(argv) != 0)
        return -1;
    return pg_start(T_PG2, data, PORT_REPLICA);
}

/* A listener nobody accepts from: the kernel completes the handshake into the backlog. */
static int open_hole(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(PORT_HOLE)};
    int one = 1;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ctx.hole_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ctx.hole_fd < 0)
        return -1;
    setsockopt(ctx.hole_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(ctx.hole_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(ctx.hole_fd, 4096) != 0)
        return -1;
    return 0;
}

/* ---- the loop ---- */

static void on_tick(uv_timer_t *t)
{
    uint64_t now = uv_now(t->loop);

    if (ctx.last_tick_ms != 0 && now - ctx.last_tick_ms > ctx.max_gap_ms)
        ctx.max_gap_ms = now - ctx.last_tick_ms;
    ctx.last_tick_ms = now;
}

static void on_changed(void *data, unsigned index, const struct afc_pg_obs *obs)
{
    (void)data;
    if (index >= N_TARGETS)
        return;
    ctx.rep[index].n++;
    ctx.rep[index].last = *obs;
}

static void on_stopped(void *data)
{
    (void)data;
    ctx.stopped = true;
}

typedef bool (*pred_fn)(unsigned index);

/* Run the loop until pred(index) holds or timeout_ms passes. The 50 ms tick keeps UV_RUN_ONCE
 * returning, so the deadline is checked even when nothing else happens. */
static bool wait_for(pred_fn pred, unsigned index, uint64_t timeout_ms)
{
    uint64_t end = uv_now(&ctx.loop) + timeout_ms;

    while (!pred(index)) {
        if (uv_now(&ctx.loop) >= end)
            return false;
        uv_run(&ctx.loop, UV_RUN_ONCE);
    }
    return true;
}

static bool is_healthy(unsigned i)
{
    return ctx.rep[i].last.valid && ctx.rep[i].last.healthy;
}

static bool is_unhealthy(unsigned i)
{
    return ctx.rep[i].last.valid && !ctx.rep[i].last.healthy;
}

static bool is_streaming_replica(unsigned i)
{
    const struct afc_pg_obs *o = &ctx.rep[i].last;
    return is_healthy(i) && o->role == AFC_PG_REPLICA && strcmp(o->upstream, "pg1") == 0;
}

static bool is_stopped(unsigned i)
{
    (void)i;
    return ctx.stopped;
}

static int start_prober(void)
{
    struct afc_pg_target targets[N_TARGETS] = {
        {"pg1", "hostaddr=127.0.0.1 port=24950 user=postgres dbname=postgres", NULL, INTERVAL_MS},
        {"hole", "hostaddr=127.0.0.1 port=24951 user=postgres dbname=postgres", NULL, INTERVAL_MS},
        {"pg2", "hostaddr=127.0.0.1 port=24952 user=postgres dbname=postgres", NULL, INTERVAL_MS},
    };
    struct afc_pg_probe_config cfg;
    struct afc_err err = {0};

    afc_pg_probe_config_default(&cfg);
    if (afc_pg_prober_new(&ctx.loop, targets, N_TARGETS, &cfg, on_changed, NULL, &ctx.prober,
                          &err) != 0) {
        fprintf(stderr, "prober_new: %s\n", err.msg);
        return -1;
    }
    return afc_pg_prober_start(ctx.prober);
}

/* ---- the tests ---- */

static void test_primary_healthy(void)
{
    const struct afc_pg_obs *o = &ctx.rep[T_PG1].last;

    REQUIRE(wait_for(is_healthy, T_PG1, 15000));
    CHECK_EQ_INT(o->role, AFC_PG_PRIMARY);
    CHECK_EQ_INT(o->timeline, 1);
    CHECK(o->lsn >= 0x1000000 && o->lsn < 0x100000000ull); /* past initdb, below 4 GB */
    CHECK(o->replay_lsn == o->lsn);
    CHECK_EQ_STR(o->upstream, "");
    CHECK(o->wall_ms > 0);
    CHECK_EQ_STR(afc_pg_prober_addr(ctx.prober, T_PG1), "127.0.0.1:24950");
}

static void test_replica_streams_from_primary(void)
{
    const struct afc_pg_obs *o = &ctx.rep[T_PG2].last;

    REQUIRE(wait_for(is_streaming_replica, T_PG2, 20000));
    CHECK_EQ_INT(o->timeline, 1);
    CHECK(o->lsn >= 0x1000000 && o->lsn <= ctx.rep[T_PG1].last.lsn + 0x10000000);
    CHECK(o->replay_lsn <= o->lsn && o->replay_lsn > 0);
}

static void test_blackhole_times_out(void)
{
    REQUIRE(wait_for(is_unhealthy, T_HOLE, 15000));
    CHECK_EQ_STR(afc_pg_reason_name(afc_pg_prober_last_reason(ctx.prober, T_HOLE)), "l7-timeout");
    CHECK_EQ_INT(ctx.rep[T_HOLE].n, 1); /* reported once, not per probe */
}

static void test_primary_down_then_up(void)
{
    char data[128];
    uint64_t t0;
    unsigned before = ctx.rep[T_PG1].n;

    pg_stop(T_PG1);
    t0 = uv_now(&ctx.loop);
    REQUIRE(wait_for(is_unhealthy, T_PG1, 15000));
    /* fall = 3 failed probes 200 ms apart: at least ~400 ms after the stop */
    CHECK(uv_now(&ctx.loop) - t0 >= 2 * INTERVAL_MS - TICK_MS);
    CHECK_EQ_STR(afc_pg_reason_name(afc_pg_prober_last_reason(ctx.prober, T_PG1)), "l4-refused");
    CHECK_EQ_INT(ctx.rep[T_PG1].n, before + 1);
    CHECK(ctx.rep[T_PG1].last.lsn > 0); /* the last known LSN is kept */
    path(data, sizeof(data), "pg1");
    REQUIRE(pg_start(T_PG1, data, PORT_PRIMARY) == 0);
    REQUIRE(wait_for(is_healthy, T_PG1, 20000));
    CHECK_EQ_INT(ctx.rep[T_PG1].last.role, AFC_PG_PRIMARY);
    CHECK_EQ_INT(ctx.rep[T_PG1].last.timeline, 1);
}

static void test_loop_stayed_responsive(void)
{
    printf("     max gap between %d ms ticks: %llu ms\n", TICK_MS,
           (unsigned long long)ctx.max_gap_ms);
    CHECK(ctx.max_gap_ms < MAX_TICK_GAP_MS);
}

static void test_stop_closes_everything(void)
{
    afc_pg_prober_stop(ctx.prober, on_stopped, NULL);
    CHECK(!ctx.stopped); /* never from inside stop() */
    REQUIRE(wait_for(is_stopped, 0, 5000));
    ctx.prober = NULL;
    uv_close((uv_handle_t *)&ctx.tick, NULL);
    uv_run(&ctx.loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&ctx.loop), 0);
}

static int setup(void)
{
    if (access(BIN "/initdb", X_OK) != 0) {
        fprintf(stderr,
                "test_pg_probe: %s/initdb not found: install postgresql-15 "
                "(scripts/deps.sh)\n",
                BIN);
        return -1;
    }
    if (make_dirs() != 0 || open_hole() != 0) {
        fprintf(stderr, "test_pg_probe: temp dir or port %d: %s\n", PORT_HOLE, strerror(errno));
        return -1;
    }
    if (setup_primary() != 0 || setup_replica() != 0) {
        fprintf(stderr, "test_pg_probe: could not start PostgreSQL; logs in %s\n", ctx.dir);
        return -1;
    }
    return 0;
}

int main(void)
{
    const char *rm[] = {"rm", "-rf", ctx.dir, NULL};

    signal(SIGALRM, on_alarm);
    alarm(240);
    afc_log_setup(AFC_LOG_INFO, 0, "test", stderr);
    if (setup() != 0) {
        cleanup();
        printf("0 passed, 1 failed\n");
        return 1;
    }
    uv_loop_init(&ctx.loop);
    uv_timer_init(&ctx.loop, &ctx.tick);
    uv_timer_start(&ctx.tick, on_tick, TICK_MS, TICK_MS);
    if (start_prober() != 0) {
        cleanup();
        printf("0 passed, 1 failed\n");
        return 1;
    }
    TEST_RUN(test_primary_healthy);
    TEST_RUN(test_replica_streams_from_primary);
    TEST_RUN(test_blackhole_times_out);
    TEST_RUN(test_primary_down_then_up);
    TEST_RUN(test_loop_stayed_responsive);
    TEST_RUN(test_stop_closes_everything);
    cleanup();
    close(ctx.hole_fd);
    if (tests_failed == 0)
        run(rm); /* as postgres when root: the dir is theirs. Kept on failure, for the logs. */
    else
        fprintf(stderr, "test_pg_probe: logs kept in %s\n", ctx.dir);
    TEST_END();
}
