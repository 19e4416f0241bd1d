/*
 * External programs on the loop (include/afc/run.h).
 *
 * A run owns a uv_process_t, two pipes (stdout, stderr) and a timer. The child gets its own
 * session (UV_PROCESS_DETACHED → setsid), so the deadline can kill its whole process group, not
 * only the first process. The run finishes when the process has exited and both pipes are at EOF
 * — or, after the exit, when a short grace period ends: a program that leaves a daemon behind
 * holding our pipes (pg_ctl start without -l, a hook that backgrounds itself) must not keep the
 * run open forever. Then every handle is closed and the callback runs once.
 */
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "afc/run.h"

#define GRACE_AFTER_EXIT_MS 200

extern char **environ;

struct afc_run {
    uv_loop_t *loop;
    uv_process_t proc;
    uv_pipe_t pipes[2]; /* stdout, stderr */
    uv_timer_t timer;   /* deadline, then the grace period after the exit */
    afc_run_cb cb;
    void *data;
    char **envp; /* NULL = inherit */
    char out[AFC_RUN_OUTPUT_MAX];
    size_t out_len;
    unsigned pipes_open; /* pipes still reading */
    unsigned handles;    /* handles not yet closed */
    bool exited;
    bool finishing;
    struct afc_run_result res;
    uint64_t start_ms;
};

/* Keep the tail: when full, drop the oldest bytes. */
static void append_output(struct afc_run *r, const char *buf, size_t n)
{
    const size_t cap = sizeof r->out - 1;
    if (n >= cap) {
        memcpy(r->out, buf + n - cap, cap);
        r->out_len = cap;
        return;
    }
    if (r->out_len + n > cap) {
        size_t drop = r->out_len + n - cap;
        memmove(r->out, r->out + drop, r->out_len - drop);
        r->out_len -= drop;
    }
    memcpy(r->out + r->out_len, buf, n);
    r->out_len += n;
}

static void free_env(char **envp)
{
    if (envp == NULL) {
        return;
    }
    free(envp); /* the strings are borrowed from environ and the caller's options */
}

static void handle_closed_cb(uv_handle_t *h)
{
    struct afc_run *r = h->data;
    if (--r->handles > 0) {
        return;
    }
    r->out[r->out_len] = '\0';
    r->res.output = r->out;
    r->res.duration_ms = uv_now(r->loop) - r->start_ms;
    r->cb(r, &r->res, r->data);
    free_env(r->envp);
    free(r);
}

static void close_handle(struct afc_run *r, uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        h->data = r;
        uv_close(h, handle_closed_cb);
    }
}

static void finish(struct afc_run *r)
{
    if (r->finishing) {
        return;
    }
    r->finishing = true;
    uv_timer_stop(&r->timer);
    close_handle(r, (uv_handle_t *)&r->timer);
    close_handle(r, (uv_handle_t *)&r->pipes[0]);
    close_handle(r, (uv_handle_t *)&r->pipes[1]);
    close_handle(r, (uv_handle_t *)&r->proc);
}

static void grace_cb(uv_timer_t *t)
{
    finish(t->data);
}

static void deadline_cb(uv_timer_t *t)
{
    struct afc_run *r = t->data;
    if (!r->exited) {
        r->res.timed_out = true;
        afc_run_kill(r);
    }
}

static void maybe_finish(struct afc_run *r)
{
    if (r->exited && r->pipes_open == 0) {
        finish(r);
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char scratch[16384]; /* single-threaded loop: one read at a time */
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(scratch, sizeof scratch);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct afc_run *r = s->data;
    if (n > 0) {
        append_output(r, buf->base, (size_t)n);
        return;
    }
    if (n < 0) { /* EOF or error: this pipe is done */
        uv_read_stop(s);
        r->pipes_open--;
        maybe_finish(r);
    }
}

static void exit_cb(uv_process_t *p, int64_t status, int term_signal)
{
    struct afc_run *r = p->data;
    r->exited = true;
    r->res.exit_status = status;
    r->res.term_signal = term_signal;
    if (r->pipes_open == 0) {
        finish(r);
        return;
    }
    /* Wait a little for the output still in the pipes, then give up on them. */
    uv_timer_stop(&r->timer);
    uv_timer_start(&r->timer, grace_cb, GRACE_AFTER_EXIT_MS, 0);
}

void afc_run_kill(struct afc_run *r)
{
    if (r->exited || r->proc.pid <= 0) {
        return;
    }
    /* The child is a session leader (UV_PROCESS_DETACHED): its pid is its process group. */
    if (kill(-r->proc.pid, SIGKILL) != 0) {
        kill(r->proc.pid, SIGKILL);
    }
}

static int lookup_user(const char *name, uv_uid_t *uid, uv_gid_t *gid, struct afc_err *err)
{
    struct passwd pw, *found = NULL;
    char buf[4096];
    int rc = getpwnam_r(name, &pw, buf, sizeof buf, &found);
    if (rc != 0 || found == NULL) {
        return afc_err_set(err, AFC_ECONFIG, "run as '%s': no such user", name);
    }
    *uid = pw.pw_uid;
    *gid = pw.pw_gid;
    return 0;
}

/* environ (unless env_only) + extra entries; NULL (inherit) when that is all environ. */
static int build_env(const char *const *extra, bool env_only, char ***out, struct afc_err *err)
{
    size_t n = 0, m = 0;
    *out = NULL;
    if (!env_only && (extra == NULL || extra[0] == NULL)) {
        return 0;
    }
    while (!env_only && environ[n] != NULL) {
        n++;
    }
    while (extra != NULL && extra[m] != NULL) {
        m++;
    }
    char **envp = calloc(n + m + 1, sizeof *envp);
    if (envp == NULL) {
        return afc_err_set(err, AFC_ENOMEM, "run: out of memory");
    }
    memcpy(envp, environ, n * sizeof *envp);
    memcpy(envp + n, extra, m * sizeof *envp);
    *out = envp;
    return 0;
}

static int spawn(struct afc_run *r, const struct afc_run_options *opt, struct afc_err *err)
{
    uv_process_options_t po;
    uv_stdio_container_t stdio[3];
    memset(&po, 0, sizeof po);
    stdio[0].flags = UV_IGNORE;
    for (int i = 0; i < 2; i++) {
        stdio[i + 1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
        stdio[i + 1].data.stream = (uv_stream_t *)&r->pipes[i];
    }
    po.file = opt->argv[0];
    po.args = (char **)opt->argv;
    po.env = r->envp;
    po.cwd = opt->cwd;
    po.stdio = stdio;
    po.stdio_count = 3;
    po.exit_cb = exit_cb;
    po.flags = UV_PROCESS_DETACHED;
    if (opt->run_as != NULL && opt->run_as[0] != '\0') {
        int rv = lookup_user(opt->run_as, &po.uid, &po.gid, err);
        if (rv != 0) {
            return rv;
        }
        po.flags |= UV_PROCESS_SETUID | UV_PROCESS_SETGID;
    }
    int rv = uv_spawn(r->loop, &r->proc, &po);
    if (rv != 0) {
        return afc_err_set(err, AFC_EIO, "run %s: %s", opt->argv[0], uv_strerror(rv));
    }
    return 0;
}

/* After a failed uv_spawn the process handle is still initialised and must be closed like the
 * rest; the callback must not run, so the run is freed from the close callbacks silently. */
static void failed_closed_cb(uv_handle_t *h)
{
    struct afc_run *r = h->data;
    if (--r->handles == 0) {
        free_env(r->envp);
        free(r);
    }
}

static void abandon(struct afc_run *r, bool proc_initialised)
{
    uv_handle_t *hs[4] = {(uv_handle_t *)&r->timer, (uv_handle_t *)&r->pipes[0],
                          (uv_handle_t *)&r->pipes[1], (uv_handle_t *)&r->proc};
    r->handles = proc_initialised ? 4 : 3;
    for (unsigned i = 0; i < r->handles; i++) {
        hs[i]->data = r;
        uv_close(hs[i], failed_closed_cb);
    }
}

int afc_run_start(uv_loop_t *loop, const struct afc_run_options *opt, afc_run_cb cb, void *data,
                  struct afc_run **out, struct afc_err *err)
{
    if (opt == NULL || opt->argv == NULL || opt->argv[0] == NULL || cb == NULL) {
        return afc_err_set(err, AFC_EINVAL, "run: no program given");
    }
    struct afc_run *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return afc_err_set(err, AFC_ENOMEM, "run %s: out of memory", opt->argv[0]);
    }
    r->loop = loop;
    r->cb = cb;
    r->data = data;
    r->start_ms = uv_now(loop);
    int rv = build_env(opt->env, opt->env_only, &r->envp, err);
    if (rv != 0) {
        free(r);
        return rv;
    }
    uv_timer_init(loop, &r->timer);
    uv_pipe_init(loop, &r->pipes[0], 0);
    uv_pipe_init(loop, &r->pipes[1], 0);
    r->proc.data = r;
    rv = spawn(r, opt, err);
    if (rv != 0) {
        /* uv_spawn initialises the process handle even when it fails; lookup_user does not */
        abandon(r, rv == AFC_EIO);
        return rv;
    }
    r->handles = 4;
    r->pipes_open = 2;
    r->timer.data = r;
    for (int i = 0; i < 2; i++) {
        r->pipes[i].data = r;
        uv_read_start((uv_stream_t *)&r->pipes[i], alloc_cb, read_cb);
    }
    if (opt->timeout_ms > 0) {
        uv_timer_start(&r->timer, deadline_cb, opt->timeout_ms, 0);
    }
    if (out != NULL) {
        *out = r;
    }
    return 0;
}

void afc_run_describe(const struct afc_run_result *res, char *buf, size_t cap)
{
    if (res->timed_out) {
        snprintf(buf, cap, "killed after its deadline (%llu ms)",
                 (unsigned long long)res->duration_ms);
    } else if (res->term_signal != 0) {
        snprintf(buf, cap, "killed by signal %d (%s)", res->term_signal,
                 strsignal(res->term_signal));
    } else {
        snprintf(buf, cap, "exit %lld", (long long)res->exit_status);
    }
}
