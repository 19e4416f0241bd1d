/*
 * Running programs for the lab and the namespace-mode controller, in two ways:
 *   - lab_exec: run to completion (pg_ctl, psql, pdnsutil, ip, nft, iptables) with a deadline,
 *     its output captured or appended to a log;
 *   - lab_spawn_service: start detached (coordinators, Redis, PowerDNS, the proxy), in a session
 *     of its own, its output appended to its log.
 * Both go through one child routine: signals back to their defaults, the network namespace
 * entered (setns() on /run/netns/NAME, before dropping privileges: it needs them), /dev/null in,
 * nothing else of ours inherited, then the unprivileged OS user when the lab runs as root
 * (PostgreSQL refuses root; the services run as the lab's service user).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lab.h"

#define EXIT_CANNOT_RUN                                                                            \
    127 /* the child could not set itself up or exec; >= 126 means "not run"                       \
         */

struct run_as {
    bool drop;
    uid_t uid;
    gid_t gid;
};

static int resolve_user(const char *user, const char *prog, struct run_as *who)
{
    who->drop = user != NULL && user[0] != '\0';
    if (!who->drop)
        return 0;
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        fprintf(stderr, "aragora-chaos: no OS user '%s' to run %s as (is its package installed?)\n",
                user, prog);
        return -1;
    }
    who->uid = pw->pw_uid;
    who->gid = pw->pw_gid;
    return 0;
}

int lab_netns_open(const char *netns)
{
    char path[LAB_PATH_MAX];
    if (netns == NULL || netns[0] == '\0')
        return -2;
    snprintf(path, sizeof path, "/run/netns/%s", netns);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fprintf(stderr, "aragora-chaos: network namespace %s: %s (is the lab up?)\n", netns,
                strerror(errno));
    return fd < 0 ? -1 : fd;
}

struct child {
    const char *const *argv;
    struct run_as who;
    int ns_fd;       /* >= 0: setns() into it */
    int out_fd;      /* its stdout and stderr */
    const char *cwd; /* NULL: "/" when dropping privileges, else where we are */
    int report;      /* >= 0: errno goes here when it cannot exec (close-on-exec: EOF = ran) */
    bool detach;     /* a session of its own */
};

/* In the child between fork and exec: async-signal-safe calls only. */
static void child_exec(const struct child *c)
{
    static const int reset[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGCHLD};
    sigset_t none;
    int err;
    if (c->detach)
        setsid();
    for (size_t i = 0; i < sizeof reset / sizeof reset[0]; i++)
        signal(reset[i], SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int out = c->out_fd, report = c->report;
    /* A lab started with a standard fd closed may have got its output or report fd as 0-2: move
     * them up first, or dup2 onto themselves would keep close-on-exec (or 0 would be replaced). */
    if (out <= 2)
        out = fcntl(out, F_DUPFD_CLOEXEC, 3);
    if (report >= 0 && report <= 2)
        report = fcntl(report, F_DUPFD_CLOEXEC, 3);
    if (out < 0 || (c->report >= 0 && report < 0))
        goto fail;
    if (c->ns_fd >= 0 && setns(c->ns_fd, CLONE_NEWNET) != 0)
        goto fail;
    int in = open("/dev/null", O_RDONLY);
    if (in < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
        goto fail;
    /* Nothing else of ours (pipes of whoever ran the lab, curl sockets) may leak into it. */
    for (int fd = 3; fd < 1024; fd++)
        if (fd != report)
            close(fd);
    if (c->who.drop &&
        (setgroups(1, &c->who.gid) != 0 || setgid(c->who.gid) != 0 || setuid(c->who.uid) != 0))
        goto fail;
    const char *cwd = c->cwd != NULL ? c->cwd : c->who.drop ? "/" : NULL;
    if (cwd != NULL && chdir(cwd) != 0)
        goto fail;
    execv(c->argv[0], (char *const *)c->argv);
fail:
    err = errno;
    if (report >= 0 && write(report, &err, sizeof err) < 0) {
        /* nothing left to tell */
    }
    _exit(EXIT_CANNOT_RUN);
}

/* ---- run to completion ---- */

/* Read the child's output into out until EOF or the deadline. */
static void collect_output(int fd, char *out, size_t size, unsigned long long deadline)
{
    size_t have = 0;
    char sink[512];
    for (;;) {
        unsigned long long now = lab_now_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (now >= deadline || poll(&p, 1, (int)(deadline - now)) <= 0)
            return;
        bool room = out != NULL && have + 1 < size;
        ssize_t n = room ? read(fd, out + have, size - 1 - have) : read(fd, sink, sizeof sink);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        if (room) {
            have += (size_t)n;
            out[have] = '\0';
        }
    }
}

/* Reap our child by the deadline, else SIGKILL it (it is ours: unreaped). -1 on timeout. */
static int reap(pid_t pid, const char *name, unsigned long long deadline, unsigned timeout_ms)
{
    int status = 0;
    for (;;) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid)
            break;
        if (got < 0 && errno != EINTR)
            return -1; /* not ours to reap after all: nothing to report */
        if (lab_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fprintf(stderr, "aragora-chaos: %s did not finish within %u s; killed\n", name,
                    timeout_ms / 1000);
            return -1;
        }
        lab_sleep_ms(10);
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status) >= 126 ? -1 : WEXITSTATUS(status);
    return -1;
}

static int open_output(const char *log_path, int pipefd[2], bool capture)
{
    if (capture)
        return pipe2(pipefd, O_CLOEXEC) == 0 ? pipefd[1] : -1;
    return open(log_path != NULL ? log_path : "/dev/null",
                O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

int lab_exec(const char *run_as, const char *netns, const char *const argv[], const char *log_path,
             char *out, size_t out_size, unsigned timeout_ms)
{
    struct child c = {.argv = argv, .report = -1};
    int pipefd[2] = {-1, -1};
    if (out != NULL && out_size > 0)
        out[0] = '\0';
    if (resolve_user(run_as, argv[0], &c.who) != 0)
        return -1;
    c.ns_fd = lab_netns_open(netns);
    if (c.ns_fd == -1)
        return -1;
    c.out_fd = open_output(log_path, pipefd, out != NULL);
    if (c.out_fd < 0) {
        fprintf(stderr, "aragora-chaos: %s: %s\n", log_path != NULL ? log_path : "pipe",
                strerror(errno));
        if (c.ns_fd >= 0)
            close(c.ns_fd);
        return -1;
    }
    unsigned long long deadline = lab_now_ms() + timeout_ms;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        child_exec(&c);
    close(c.out_fd);
    if (c.ns_fd >= 0)
        close(c.ns_fd);
    if (pid > 0 && out != NULL)
        collect_output(pipefd[0], out, out_size, deadline);
    if (pipefd[0] >= 0)
        close(pipefd[0]);
    if (pid < 0) {
        fprintf(stderr, "aragora-chaos: fork: %s\n", strerror(errno));
        return -1;
    }
    int rc = reap(pid, argv[0], deadline, timeout_ms);
    if (rc == -1 && lab_now_ms() < deadline)
        fprintf(stderr, "aragora-chaos: could not run %s%s%s\n", argv[0], c.who.drop ? " as " : "",
                c.who.drop ? run_as : "");
    return rc;
}

/* ---- start detached ---- */

/* The exec pipe's EOF (close-on-exec) comes when the kernel has committed to the new program but
 * before it has laid out that program's arguments: for that moment /proc/PID/cmdline reads empty
 * and lab_pid_state() would call a healthy child dead (seen once in CI under load: "redis-server
 * exited during start-up" for a Redis that was running). Wait, bounded, until the arguments show or
 * the child has gone. */
static void await_exec_args(pid_t pid)
{
    char path[64], c;
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    unsigned long long deadline = lab_now_ms() + 2000;
    for (;;) {
        FILE *f = fopen(path, "r");
        size_t n = f != NULL ? fread(&c, 1, 1, f) : 0;
        if (f != NULL)
            fclose(f);
        /* lab_pid_wait_gone with no time to wait: has it exited already? */
        if (n == 1 || lab_pid_wait_gone(pid, 0) || lab_now_ms() >= deadline)
            return;
        lab_sleep_ms(1);
    }
}

int lab_spawn_service(const char *run_as, const char *netns, const char *const argv[],
                      const char *log_path, const char *cwd, pid_t *out)
{
    struct child c = {.argv = argv, .cwd = cwd, .detach = true};
    int pipefd[2], err = 0;
    if (resolve_user(run_as, argv[0], &c.who) != 0)
        return -1;
    /* opened here, as whoever runs the lab: the log stays the lab's file */
    c.out_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (c.out_fd < 0) {
        fprintf(stderr, "aragora-chaos: %s: %s\n", log_path, strerror(errno));
        return -1;
    }
    c.ns_fd = lab_netns_open(netns);
    if (c.ns_fd == -1 || pipe2(pipefd, O_CLOEXEC) != 0) {
        if (c.ns_fd != -1)
            fprintf(stderr, "aragora-chaos: pipe: %s\n", strerror(errno));
        goto fail;
    }
    c.report = pipefd[1];
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        child_exec(&c);
    close(pipefd[1]);
    if (pid < 0) {
        fprintf(stderr, "aragora-chaos: fork: %s\n", strerror(errno));
        close(pipefd[0]);
        goto fail;
    }
    ssize_t n;
    do {
        n = read(pipefd[0], &err, sizeof err); /* EOF: exec succeeded (close-on-exec) */
    } while (n < 0 && errno == EINTR);
    close(pipefd[0]);
    close(c.out_fd);
    if (c.ns_fd >= 0)
        close(c.ns_fd);
    if (n > 0) {
        waitpid(pid, NULL, 0); /* ours, exiting: no zombie left behind */
        fprintf(stderr, "aragora-chaos: cannot start %s%s%s: %s\n", argv[0],
                c.who.drop ? " as " : "", c.who.drop ? run_as : "", strerror(err));
        return -1;
    }
    await_exec_args(pid);
    *out = pid;
    return 0;
fail:
    close(c.out_fd);
    if (c.ns_fd >= 0)
        close(c.ns_fd);
    return -1;
}
