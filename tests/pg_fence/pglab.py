#!/usr/bin/env python3
"""Real PostgreSQL 15 servers for the in-database fence's tests and benchmark (lab-recipes §5,
pitfalls P1, P2, P5). Python 3 standard library only.

    pg = Postgres(os.path.join(tmp, "pg1"), port=25001, module=MODULE)
    pg.initdb(); pg.start(preload=False); pg.psql_file(SQL); pg.stop(); pg.start()
    r = pg.psql("INSERT INTO t VALUES (1)")       # r.returncode, r.stdout, r.stderr
    sqlstate(r)                                     # "25006", from psql's VERBOSITY=verbose
    pg.value("SELECT aragora.fence_epoch()")        # "0"
    pg.stop()                                       # fast shutdown, by PID

Every server runs `postgres` directly (no pg_ctl, no shell) so the process started here is the
postmaster, and it is stopped here by that PID. As root, PostgreSQL's programs run as the
`postgres` OS user (it refuses root) and the directories are chowned to it. Node-local settings
(port, sockets, the module) go on the command line, not into postgresql.conf, which
pg_basebackup copies (P2). TCP listens on 127.0.0.1 only; psql uses the server's own unix socket
directory (P5).
"""

import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from afctest import wait_for  # noqa: E402,F401  (re-exported to test_fence.py, bench_fence.py)

PG_BIN = os.environ.get("ARAGORA_PG_BIN_DIR", "/usr/lib/postgresql/15/bin")
RUN_AS = "postgres" if os.geteuid() == 0 else None

# Shared by every node (they reach replicas through pg_basebackup). fsync stays on: the
# benchmark measures commits.
BASE_CONF = """
# --- aragora pg_fence tests ---
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
wal_receiver_status_interval = 1s
wal_retrieve_retry_interval = 1s
max_prepared_transactions = 10
shared_buffers = 64MB
max_connections = 30
log_min_messages = warning
log_line_prefix = '%m [%p] %b '
"""


def sqlstate(result):
    """The SQLSTATE of the first error psql printed (VERBOSITY=verbose), or None."""
    m = re.search(r"^(?:psql:[^\n]*?)?(?:ERROR|FATAL):\s+([0-9A-Z]{5}):", result.stderr, re.M)
    return m.group(1) if m else None


def error_message(result):
    """The first ERROR line's message (after the SQLSTATE), or ''."""
    m = re.search(r"(?:ERROR|FATAL):\s+[0-9A-Z]{5}:\s+(.*)$", result.stderr, re.M)
    return m.group(1) if m else ""


def chown_to_runner(path):
    if RUN_AS is None:
        return
    pw = pwd.getpwnam(RUN_AS)
    os.chown(path, pw.pw_uid, pw.pw_gid)


def make_dir(path):
    os.makedirs(path, exist_ok=True)
    chown_to_runner(path)
    return path


def run_as_kwargs():
    """subprocess keyword arguments that run a program as the postgres user when we are root:
    the child calls setgid/setuid itself before exec, so its PID is the program's own."""
    if RUN_AS is None:
        return {}
    pw = pwd.getpwnam(RUN_AS)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


class Postgres:
    def __init__(self, directory, port, module=None, name=None):
        self.dir = make_dir(directory)
        self.port = port
        self.module = module
        self.name = name or os.path.basename(directory)
        self.data = os.path.join(directory, "data")
        self.sock = make_dir(os.path.join(directory, "sock"))
        self.log_path = os.path.join(directory, "postgresql.log")
        self.proc = None
        self.preloaded = False

    # ---- creating ----

    def _tool(self, argv, timeout=180):
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=self.dir,
                           **run_as_kwargs())
        if p.returncode != 0:
            raise RuntimeError("%s failed (exit %d):\n%s%s"
                               % (os.path.basename(argv[0]), p.returncode, p.stdout, p.stderr))
        return p

    def initdb(self, extra_conf=""):
        self._tool([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", "postgres",
                    "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(BASE_CONF + extra_conf)
        return self

    def basebackup_from(self, primary):
        """A streaming replica of primary (pg_basebackup -R, lab-recipes §5)."""
        self._tool([os.path.join(PG_BIN, "pg_basebackup"), "-h", primary.sock,
                    "-p", str(primary.port), "-U", "postgres", "-D", self.data, "-X", "stream",
                    "-c", "fast", "-R", "--no-sync"])
        with open(os.path.join(self.data, "postgresql.auto.conf"), "a") as f:
            f.write("primary_conninfo = 'host=%s port=%d user=postgres application_name=%s'\n"
                    % (primary.sock, primary.port, self.name))
        return self

    def single_user(self, sql_path):
        """Run a SQL file in single-user mode (postgres --single -j): no server, no fence."""
        with open(sql_path, "rb") as f:
            p = subprocess.run([os.path.join(PG_BIN, "postgres"), "--single", "-j", "-D",
                                self.data, "postgres"], stdin=f, capture_output=True,
                               timeout=120, cwd=self.dir, **run_as_kwargs())
        out = (p.stdout + p.stderr).decode(errors="replace")
        if p.returncode != 0 or "ERROR:" in out:
            raise RuntimeError("postgres --single failed (exit %d):\n%s" % (p.returncode, out))
        return out

    # ---- process ----

    def start(self, preload=True, settings=None, timeout=60.0):
        argv = [os.path.join(PG_BIN, "postgres"), "-D", self.data, "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=" + self.sock,
                "-c", "cluster_name=" + self.name]
        if preload:
            argv += ["-c", "shared_preload_libraries=" + self.module]
        for k, v in (settings or {}).items():
            argv += ["-c", "%s=%s" % (k, v)]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.dir, **run_as_kwargs())
        log.close()
        self.preloaded = preload
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s: postgres exited with %s; log:\n%s"
                                   % (self.name, self.proc.returncode, self.log_tail()))
            if self.psql("SELECT 1", timeout=5).returncode == 0:
                return self
            time.sleep(0.05)  # polling for readiness, bounded by the deadline
        raise RuntimeError("%s: not ready after %.0f s; log:\n%s"
                           % (self.name, timeout, self.log_tail()))

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    def stop(self, mode="fast", timeout=60.0):
        """Stop by PID: SIGTERM smart, SIGINT fast, SIGQUIT immediate; SIGKILL if it hangs."""
        if self.proc is None:
            return
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_tail(self, chars=4000):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-chars:]
        except OSError:
            return ""

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # ---- SQL ----

    def conninfo(self, user="postgres", db="postgres", extra=""):
        return ("host=%s port=%d user=%s dbname=%s connect_timeout=5 %s"
                % (self.sock, self.port, user, db, extra)).strip()

    def psql(self, *sql, user="postgres", db="postgres", extra="", timeout=30):
        """Run each statement as its own -c, in one session, stopping at the first error.
        Returns the CompletedProcess (text)."""
        argv = [os.path.join(PG_BIN, "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
                "-v", "VERBOSITY=verbose", "-d", self.conninfo(user, db, extra)]
        for s in sql:
            argv += ["-c", s]
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            return subprocess.CompletedProcess(argv, 124, e.stdout or "",
                                               "psql timed out after %d s" % timeout)

    def psql_file(self, path, user="postgres"):
        argv = [os.path.join(PG_BIN, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                "-v", "VERBOSITY=verbose", "-d", self.conninfo(user), "-f", path]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError("psql -f %s failed:\n%s%s" % (path, p.stdout, p.stderr))
        return p

    def value(self, sql, user="postgres"):
        """The output of one statement, stripped; raises if it failed."""
        r = self.psql(sql, user=user)
        if r.returncode != 0:
            raise AssertionError("%s: %r failed: %s" % (self.name, sql, r.stderr.strip()))
        return r.stdout.strip()

    def fence_state(self, user="postgres"):
        """(epoch, open, remaining_ms)"""
        out = self.value("SELECT epoch, open, remaining_ms FROM aragora.fence_state()", user=user)
        epoch, is_open, remaining = out.split("|")
        return int(epoch), is_open == "t", int(remaining)


class TempDir:
    """A fresh directory under /tmp that the postgres user can enter; removed on exit unless
    the test failed (kept for the logs)."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.path = None
        self.keep = False

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix=self.prefix)
        os.chmod(self.path, 0o755)
        return self.path

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None and not self.keep:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            print("kept %s for its logs" % self.path)
