#!/usr/bin/env python3
"""Integration tests of the in-database fence (pg_fence/, docs/fencing.md) against real PostgreSQL
15 servers with aragora_fence.so preloaded by absolute path (pglab.py).

Each case gets a fresh temp directory and its own loopback ports (25001 + 10*k, below the
ephemeral range, P1), starts its servers itself and stops them by PID in a `finally`. Every wait
is a poll with a deadline on an observable state, never a bare sleep standing in for one. What is
measured is printed.

Usage: test_fence.py [CASE ...]   (no names: all cases)
Environment: ARAGORA_FENCE_MODULE (the built aragora_fence.so), ARAGORA_FENCE_SQL (the generated
aragora_fence.sql); both default to the meson build directory ../../build/pg_fence.
The last line printed is "N passed, M failed"; the exit status is non-zero on any failure.
"""

import os
import re
import signal
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pglab import PG_BIN, Postgres, TempDir, error_message, sqlstate, wait_for  # noqa: E402
from afctest import ports_free  # noqa: E402  (pglab put tests/ on the path)

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.join(HERE, "..", "..", "build", "pg_fence")
MODULE = os.environ.get("ARAGORA_FENCE_MODULE") or os.path.join(BUILD, "aragora_fence.so")
SETUP_SQL = os.environ.get("ARAGORA_FENCE_SQL") or os.path.join(BUILD, "aragora_fence.sql")
PORT_BASE = int(os.environ.get("ARAGORA_FENCE_PORT_BASE", "25001"))

REFUSED = "25006"    # read_only_sql_transaction: the fence refused a commit
STALE = "ZF001"      # a renewal with a stale or closed epoch
DENIED = "42501"     # insufficient_privilege
BAD_VALUE = "22023"  # invalid_parameter_value


# ---- helpers ----

def module_path():
    """The path as shared_preload_libraries gets it: absolute, without ".so"."""
    path = os.path.abspath(MODULE)
    return path[:-3] if path.endswith(".so") else path


def check_ports(*ports):
    busy = [p for p in ports if not ports_free(p)]
    if busy:
        raise AssertionError("loopback port(s) %s already in use" % busy)


def expect_ok(result, what=""):
    if result.returncode != 0:
        raise AssertionError("%s failed: %s" % (what or result.args[-1], result.stderr.strip()))
    return result.stdout.strip()


def expect_error(result, code, *fragments):
    """The statement failed with SQLSTATE `code` and a message holding every fragment."""
    if result.returncode == 0:
        raise AssertionError("%r succeeded; expected SQLSTATE %s" % (result.args[-1], code))
    got = sqlstate(result)
    if got != code:
        raise AssertionError("%r: SQLSTATE %s, expected %s: %s"
                             % (result.args[-1], got, code, result.stderr.strip()))
    for f in fragments:
        if f not in result.stderr:
            raise AssertionError("%r: %r not in: %s" % (result.args[-1], f, result.stderr.strip()))
    return error_message(result)


def expect_refused(result, *fragments):
    return expect_error(result, REFUSED, "aragora fence: cannot", *fragments)


def renew(pg, epoch, ttl_ms, sent_at_ms=None, user="postgres"):
    args = "%d, %d" % (epoch, ttl_ms) if sent_at_ms is None else \
        "%d, %d, %d" % (epoch, ttl_ms, sent_at_ms)
    return pg.psql("SELECT epoch, open, remaining_ms FROM aragora.fence_renew(%s)" % args,
                   user=user)


def renewed(pg, epoch, ttl_ms, **kw):
    """Renew, which must succeed; returns (epoch, open, remaining_ms)."""
    out = expect_ok(renew(pg, epoch, ttl_ms, **kw))
    e, o, rem = out.split("|")
    return int(e), o == "t", int(rem)


def close(pg, epoch, user="postgres"):
    return pg.psql("SELECT epoch, open, remaining_ms FROM aragora.fence_close(%d)" % epoch,
                   user=user)


def mono_ms():
    """CLOCK_MONOTONIC in ms: the clock the fence uses (time.monotonic() is CLOCK_MONOTONIC on
    Linux)."""
    return int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1000)


def fenced_primary(tmp, port, name="pg1", setup="single", extra_sql="", extra_conf="",
                   settings=None):
    """A fresh cluster with the setup SQL (plus extra_sql) applied, started with the module
    preloaded, so fenced. setup="single": in single-user mode before the first start;
    setup="psql": through psql on a first start without the module, then restarted with it."""
    check_ports(port)
    pg = Postgres(os.path.join(tmp, name), port, module=module_path())
    pg.initdb(extra_conf=extra_conf)
    if setup == "single":
        path = os.path.join(tmp, name + "-setup.sql")
        with open(SETUP_SQL) as src, open(path, "w") as dst:
            dst.write(src.read() + "\n" + extra_sql)
        pg.single_user(path)
    else:
        pg.start(preload=False, settings=settings)
        pg.psql_file(SETUP_SQL)
        # not preloaded: the functions say so, and nothing is fenced
        expect_error(pg.psql("SELECT * FROM aragora.fence_state()"), "55000",
                     "aragora_fence module is not loaded")
        if extra_sql:
            expect_ok(pg.psql(extra_sql), "extra setup SQL")
        pg.stop()
    pg.start(settings=settings)
    return pg


# ---- cases ----

def test_basics(tmp, port):
    pg = fenced_primary(tmp, port, setup="psql", extra_sql="CREATE TABLE t (i int)")
    try:
        # comes up fenced: writes refused, reads work
        assert pg.fence_state() == (0, False, 0), pg.fence_state()
        assert pg.value("SELECT aragora.fence_epoch()") == "0"
        msg = expect_refused(pg.psql("INSERT INTO t VALUES (1)"), "has not been armed",
                             "epoch 0")
        print("after start: fence_state (0, f, 0); INSERT refused with %s: %s" % (REFUSED, msg))
        assert pg.value("SELECT count(*) FROM t") == "0"
        assert pg.value("BEGIN READ ONLY; SELECT count(*) FROM t; COMMIT") == "0"
        print("after start: SELECT works")

        # renewed: writes work
        st = renewed(pg, 1, 60000)
        assert st[0] == 1 and st[1] and 55000 < st[2] <= 60000, st
        expect_ok(pg.psql("INSERT INTO t VALUES (1)"))
        print("renew(1, 60000) -> %s; INSERT committed" % (st,))

        # a short ttl runs out on its own
        ttl = 1500
        t0 = time.monotonic()
        renewed(pg, 1, ttl)
        attempts = [0]

        def refused_now():
            attempts[0] += 1
            r = pg.psql("INSERT INTO t VALUES (2)")
            return r if r.returncode != 0 else None

        r = wait_for("an INSERT to be refused after the ttl", refused_now, timeout=20)
        refused_after_ms = (time.monotonic() - t0) * 1000
        msg = expect_refused(r, "write lease of epoch 1 expired")
        ago = int(re.search(r"expired (\d+) ms ago", msg).group(1))
        assert refused_after_ms >= ttl, refused_after_ms
        assert refused_after_ms < ttl + 10000, refused_after_ms
        st = pg.fence_state()
        assert st == (1, False, 0), st
        print("ttl %d ms: first refused INSERT %.0f ms after the renewal was sent (%d INSERTs "
              "tried, 50 ms apart), reported 'expired %d ms ago': %s"
              % (ttl, refused_after_ms, attempts[0], ago, msg))

        # the epoch never goes back
        renewed(pg, 2, 60000)
        msg = expect_error(renew(pg, 1, 60000), STALE, "older than the fence's epoch 2")
        print("renew(1) after renew(2) refused with %s: %s" % (STALE, msg))

        # fence_close: writes refused at once, that epoch and older can no longer renew
        out = expect_ok(close(pg, 2))
        assert out == "2|f|0", out
        msg = expect_refused(pg.psql("INSERT INTO t VALUES (3)"), "closed at epoch 2")
        print("fence_close(2) -> (2, f, 0); INSERT refused: %s" % msg)
        msg = expect_error(renew(pg, 2, 60000), STALE, "epoch 2 was closed")
        expect_error(renew(pg, 1, 60000), STALE)
        print("renew(2) after fence_close(2) refused with %s: %s" % (STALE, msg))
        renewed(pg, 3, 60000)
        expect_ok(pg.psql("INSERT INTO t VALUES (3)"))
        print("renew(3) -> INSERT committed")

        # a late close of an older epoch still closes; the current epoch re-opens
        assert expect_ok(close(pg, 1)) == "3|f|0"
        expect_refused(pg.psql("INSERT INTO t VALUES (4)"), "closed at epoch 3")
        renewed(pg, 3, 60000)
        expect_ok(pg.psql("INSERT INTO t VALUES (4)"))
        print("fence_close(1) at epoch 3 closes; renew(3) re-opens")

        # arguments
        expect_error(renew(pg, 0, 1000), BAD_VALUE, "epoch must be positive")
        expect_error(renew(pg, 3, 0), BAD_VALUE, "ttl_ms must be positive")
        expect_error(renew(pg, 3, 1000, sent_at_ms=-1), BAD_VALUE, "sent_at_ms")
        expect_error(close(pg, -4), BAD_VALUE, "epoch must be positive")
        print("epoch <= 0, ttl_ms <= 0, sent_at_ms < 0: refused with %s" % BAD_VALUE)

        # sent_at_ms: the ttl counts from when the caller computed it
        st = renewed(pg, 3, 5000, sent_at_ms=mono_ms() - 6000)
        assert st == (3, False, 0), st
        expect_refused(pg.psql("INSERT INTO t VALUES (5)"), "expired")
        st = renewed(pg, 3, 60000, sent_at_ms=mono_ms() - 2000)
        assert st[1] and 50000 < st[2] <= 58000, st
        expect_ok(pg.psql("INSERT INTO t VALUES (5)"))
        print("renew(3, 5000, sent 6 s ago) -> already expired; renew(3, 60000, sent 2 s ago) "
              "-> remaining %d ms" % st[2])

        # the session's epoch
        msg = expect_refused(pg.psql("SET aragora_fence.epoch = 2", "INSERT INTO t VALUES (6)"),
                             "this session expects epoch 2 but the fence is at epoch 3")
        print("SET aragora_fence.epoch = 2 at fence epoch 3: INSERT refused: %s" % msg)
        expect_ok(pg.psql("SET aragora_fence.epoch = 3", "INSERT INTO t VALUES (6)"))
        expect_ok(pg.psql("SET aragora_fence.epoch = 2", "SELECT count(*) FROM t"))
        expect_ok(pg.psql("SET aragora_fence.epoch = 0", "INSERT INTO t VALUES (7)"))
        expect_error(pg.psql("SET aragora_fence.epoch = 'x'"), BAD_VALUE)
        expect_error(pg.psql("SET aragora_fence.epoch = -1"), BAD_VALUE)
        print("aragora_fence.epoch = 3: INSERT committed; = 2: SELECT works; 'x', -1: refused")
    finally:
        pg.stop()


def test_privileges(tmp, port):
    pg = fenced_primary(tmp, port, extra_sql=(
        "CREATE ROLE app LOGIN;\n\nCREATE ROLE member LOGIN IN ROLE app;\n\n"
        "CREATE TABLE t (i int);\n\nGRANT SELECT, INSERT ON t TO app;\n\n"))
    try:
        renewed(pg, 1, 600000)
        st = pg.fence_state(user="app")
        assert st[0] == 1 and st[1], st
        assert pg.value("SELECT aragora.fence_epoch()", user="app") == "1"
        print("role app (no privilege): fence_state -> %s, fence_epoch -> 1" % (st,))

        msg = expect_error(renew(pg, 2, 1000, user="app"), DENIED,
                           "permission denied for function fence_renew")
        expect_error(close(pg, 1, user="app"), DENIED, "permission denied for function fence_close")
        print("app: fence_renew, fence_close refused by the SQL grant: %s" % msg)

        expect_ok(pg.psql("GRANT EXECUTE ON FUNCTION aragora.fence_renew(bigint, integer), "
                          "aragora.fence_close(bigint) TO app"))
        msg = expect_error(renew(pg, 2, 1000, user="app"), DENIED,
                           "aragora fence: permission denied for fence_renew",
                           "aragora_fence.renew_role is not set")
        expect_error(close(pg, 1, user="app"), DENIED, "aragora fence: permission denied")
        print("app with EXECUTE granted, renew_role unset: refused in C: %s" % msg)

        expect_ok(pg.psql("ALTER SYSTEM SET aragora_fence.renew_role = 'app'",
                          "SELECT pg_reload_conf()"))
        wait_for("renew_role to be reloaded",
                 lambda: pg.value("SHOW aragora_fence.renew_role") == "app", timeout=20)
        assert renewed(pg, 2, 600000, user="app")[:2] == (2, True)
        assert renewed(pg, 2, 600000, user="member")[:2] == (2, True)
        assert expect_ok(close(pg, 2, user="app")) == "2|f|0"
        expect_refused(pg.psql("INSERT INTO t VALUES (1)", user="app"), "closed at epoch 2")
        renewed(pg, 3, 600000, user="app")
        expect_ok(pg.psql("INSERT INTO t VALUES (1)", user="app"))
        print("renew_role = app: app and its member renew and close")

        expect_error(pg.psql("SET aragora_fence.renew_role = 'member'", user="app"), "55P02")
        print("a session cannot change renew_role (PGC_SIGHUP)")

        # re-running the setup SQL (the fence is open) grants EXECUTE to renew_role
        expect_ok(pg.psql("REVOKE EXECUTE ON FUNCTION aragora.fence_renew(bigint, integer) "
                          "FROM app"))
        expect_error(renew(pg, 3, 1000, user="app"), DENIED, "permission denied for function")
        pg.psql_file(SETUP_SQL)
        renewed(pg, 3, 600000, user="app")
        print("setup SQL re-run with renew_role = app grants EXECUTE to app")

        expect_ok(pg.psql("ALTER SYSTEM SET aragora_fence.renew_role = 'nosuchrole'",
                          "SELECT pg_reload_conf()"))
        wait_for("renew_role to be reloaded",
                 lambda: pg.value("SHOW aragora_fence.renew_role") == "nosuchrole", timeout=20)
        msg = expect_error(renew(pg, 3, 1000, user="app"), DENIED, "does not exist")
        renewed(pg, 3, 600000)
        print("renew_role names a missing role: superusers only: %s" % msg)
    finally:
        pg.stop()


def test_write_rules(tmp, port):
    pg = fenced_primary(tmp, port, extra_sql=(
        "CREATE TABLE t (i int);\n\nCREATE UNLOGGED TABLE u (i int);\n\n"
        "CREATE SEQUENCE s;\n\nCREATE DATABASE d1;\n\n"))
    try:
        renewed(pg, 1, 600000)
        expect_ok(pg.psql("INSERT INTO t SELECT generate_series(1, 10)"))
        assert pg.value("SELECT nextval('s')") == "1"

        # a temporary table made while open, written after the fence closed (one session)
        r = pg.psql("CREATE TEMP TABLE tt (i int)", "INSERT INTO tt VALUES (1)",
                    "SELECT aragora.fence_close(1)", "SELECT count(*) FROM tt",
                    "INSERT INTO tt VALUES (2)")
        msg = expect_refused(r, "closed at epoch 1")
        assert "1" in r.stdout.split(), r.stdout
        print("temporary table: readable; INSERT into it refused: %s" % msg)
        expect_refused(pg.psql("CREATE TEMP TABLE tt2 (i int)"))
        print("CREATE TEMP TABLE refused (it writes pg_class)")
        expect_refused(pg.psql("INSERT INTO u VALUES (1)"))
        print("unlogged table: INSERT refused")

        # reads, whatever the form
        for sql in ["SELECT count(*) FROM t", "BEGIN READ ONLY; SELECT sum(i) FROM t; COMMIT",
                    "WITH x AS (SELECT i FROM t) SELECT max(i) FROM x",
                    "EXPLAIN ANALYZE SELECT * FROM t", "SELECT * FROM aragora.fence_state()",
                    "SELECT pg_advisory_lock(1), pg_advisory_unlock(1)", "SHOW server_version",
                    "SELECT pg_switch_wal()", "SELECT pg_create_physical_replication_slot('x')",
                    "SELECT pg_drop_replication_slot('x')"]:
            expect_ok(pg.psql(sql), sql)
        print("reads (SELECT, BEGIN READ ONLY, CTE, EXPLAIN ANALYZE, advisory locks), "
              "pg_switch_wal(), creating and dropping a replication slot: committed")

        # what counts as a write: a transaction ID
        expect_refused(pg.psql("SELECT * FROM t FOR UPDATE"))
        print("SELECT ... FOR UPDATE (a row lock takes an xid): refused")
        expect_refused(pg.psql("SELECT pg_current_xact_id()"))
        print("SELECT pg_current_xact_id() (assigns an xid): refused")
        expect_refused(pg.psql("BEGIN", "SAVEPOINT a", "INSERT INTO t VALUES (99)",
                               "ROLLBACK TO a", "COMMIT"))
        print("a write rolled back to a savepoint (the xid stays): refused")
        expect_refused(pg.psql("BEGIN", "LOCK TABLE t IN ACCESS EXCLUSIVE MODE", "COMMIT"))
        print("LOCK TABLE ... ACCESS EXCLUSIVE (WAL-logged for standbys with an xid): refused")
        expect_ok(pg.psql("BEGIN", "LOCK TABLE t IN SHARE MODE", "COMMIT"))
        print("LOCK TABLE ... SHARE: allowed")

        # sequences: nextval is refused exactly when it takes an xid (WAL-logging a new batch)
        expect_ok(pg.psql("CHECKPOINT"))
        expect_refused(pg.psql("SELECT nextval('s')"), "closed at epoch 1")
        after_refusal = pg.value("SELECT nextval('s')")
        assert after_refusal == "3", after_refusal
        print("nextval after a checkpoint (WAL-logs a new batch, takes an xid): refused, yet it "
              "consumed value 2; the next nextval (from the logged batch, no xid) -> %s"
              % after_refusal)

        # statements PostgreSQL would not undo at commit are refused before they start
        msg = expect_refused(pg.psql("DROP DATABASE d1"), "cannot DROP DATABASE")
        assert expect_ok(pg.psql("SELECT 1", db="d1")) == "1"
        assert pg.value("SELECT datconnlimit FROM pg_database WHERE datname = 'd1'") == "-1"
        print("DROP DATABASE (removes files before committing) refused before it starts; d1 "
              "intact: %s" % msg)
        for sql, action in (("CREATE DATABASE d2", "CREATE DATABASE"),
                            ("REINDEX TABLE t", "REINDEX"),
                            ("CREATE INDEX CONCURRENTLY ti ON t (i)",
                             "CREATE INDEX CONCURRENTLY"),
                            ("ALTER DATABASE d1 CONNECTION LIMIT 5", "ALTER DATABASE")):
            expect_refused(pg.psql(sql), "cannot " + action)
        assert pg.value("SELECT count(*) FROM pg_class WHERE relname = 'ti'") == "0"
        print("CREATE DATABASE, REINDEX, CREATE INDEX CONCURRENTLY, ALTER DATABASE: refused "
              "before they start")

        # a replication=database connection (a walsender) runs SQL: checked too
        r = pg.psql("INSERT INTO t VALUES (100)", extra="replication=database")
        expect_refused(r)
        print("walsender (replication=database) INSERT: refused")

        renewed(pg, 2, 600000)
        expect_ok(pg.psql("INSERT INTO u VALUES (1)"))
        expect_ok(pg.psql("CREATE TEMP TABLE tt2 (i int)", "INSERT INTO tt2 VALUES (1)"))
        assert pg.value("SELECT count(*) FROM t WHERE i IN (99, 100)") == "0"
        print("renewed: the same writes commit; none of the refused rows exist")
    finally:
        pg.stop()


def test_two_phase(tmp, port):
    pg = fenced_primary(tmp, port, extra_sql="CREATE TABLE t (i int);\n\n")
    try:
        renewed(pg, 1, 600000)
        for gid, i in (("p1", 1), ("p2", 2)):
            expect_ok(pg.psql("BEGIN", "INSERT INTO t VALUES (%d)" % i,
                              "PREPARE TRANSACTION '%s'" % gid))
        expect_ok(close(pg, 1))

        msg = expect_refused(pg.psql("COMMIT PREPARED 'p1'"), "cannot COMMIT PREPARED",
                             "stays prepared")
        print("fenced: COMMIT PREPARED refused: %s" % msg)
        expect_ok(pg.psql("ROLLBACK PREPARED 'p2'"))
        print("fenced: ROLLBACK PREPARED works")
        msg = expect_refused(pg.psql("BEGIN", "INSERT INTO t VALUES (3)",
                                     "PREPARE TRANSACTION 'p3'"), "cannot PREPARE TRANSACTION")
        print("fenced: PREPARE TRANSACTION of a write refused: %s" % msg)
        expect_refused(pg.psql("BEGIN", "SELECT 1", "PREPARE TRANSACTION 'p4'"),
                       "cannot PREPARE TRANSACTION")
        print("fenced: PREPARE TRANSACTION of a read-only transaction refused too (PREPARE "
              "assigns an xid)")
        gids = pg.value("SELECT string_agg(gid, ',' ORDER BY gid) FROM pg_prepared_xacts")
        assert gids == "p1", gids

        renewed(pg, 2, 600000)
        expect_ok(pg.psql("COMMIT PREPARED 'p1'"))
        assert pg.value("SELECT string_agg(i::text, ',' ORDER BY i) FROM t") == "1"
        print("renewed: COMMIT PREPARED 'p1' commits; rows: 1")
    finally:
        pg.stop()


def test_maintenance(tmp, port):
    pg = fenced_primary(tmp, port, extra_conf="autovacuum = off\nautovacuum_naptime = 1\n",
                        extra_sql="".join(
                            "CREATE TABLE %s (i int, pad text) WITH (autovacuum_vacuum_threshold "
                            "= 0, autovacuum_vacuum_scale_factor = 0, autovacuum_analyze_threshold"
                            " = 0, autovacuum_analyze_scale_factor = 0);\n\n" % name
                            for name in ("v", "w", "av", "vf")))
    try:
        started_pid = pg.pid
        renewed(pg, 1, 600000)
        for name in ("v", "w", "av", "vf"):
            expect_ok(pg.psql("INSERT INTO %s SELECT g, repeat('x', 200) FROM "
                              "generate_series(1, 5000) g" % name))
        expect_ok(pg.psql("DELETE FROM v", "DELETE FROM av WHERE i % 2 = 0",
                          "DELETE FROM vf WHERE i > 100"))
        expect_ok(close(pg, 1))
        expect_refused(pg.psql("INSERT INTO w VALUES (0)"))

        expect_ok(pg.psql("CHECKPOINT"))
        before = int(pg.value("SELECT pg_relation_size('v')"))
        expect_ok(pg.psql("VACUUM v"))
        after = int(pg.value("SELECT pg_relation_size('v')"))
        assert before > 0 and after == 0, (before, after)
        print("fenced: CHECKPOINT works; VACUUM v truncated it from %d to %d bytes (truncation "
              "takes an xid: VACUUM's own transactions are exempt)" % (before, after))
        before = int(pg.value("SELECT pg_relation_size('vf')"))
        expect_ok(pg.psql("VACUUM (FULL, ANALYZE) vf"))
        after = int(pg.value("SELECT pg_relation_size('vf')"))
        assert after < before, (before, after)
        expect_ok(pg.psql("VACUUM ANALYZE w"))
        print("fenced: VACUUM (FULL, ANALYZE) rewrote vf (%d -> %d bytes); VACUUM ANALYZE "
              "works" % (before, after))
        expect_refused(pg.psql("ANALYZE w"))
        print("fenced: a stand-alone ANALYZE (writes pg_statistic in the caller's transaction) "
              "is refused")

        # autovacuum and autoanalyze (pg_statistic writes, with an xid) while fenced
        t0 = time.monotonic()
        expect_ok(pg.psql("ALTER SYSTEM SET autovacuum = on", "SELECT pg_reload_conf()"))
        wait_for("autovacuum and autoanalyze of av while fenced", lambda: pg.value(
            "SELECT autovacuum_count > 0 AND autoanalyze_count > 0 FROM pg_stat_user_tables "
            "WHERE relname = 'av'") == "t", timeout=90, interval=0.2)
        n_stats = pg.value("SELECT count(*) FROM pg_stats WHERE tablename = 'av'")
        assert int(n_stats) > 0, n_stats
        print("fenced: autovacuum and autoanalyze of av done %.1f s after autovacuum was turned "
              "on (%s pg_stats rows)" % (time.monotonic() - t0, n_stats))

        # healthy: same postmaster, reads work, nothing but our own refusals in the log
        assert pg.proc.poll() is None and pg.pid == started_pid
        assert pg.value("SELECT count(*) FROM w") == "5000"
        log = pg.log_text()
        bad = [line for line in log.splitlines()
               if "PANIC" in line or "terminated by signal" in line
               or ("aragora fence" in line and "client backend" not in line
                   and "ERROR" in line)]
        assert not bad, bad
        assert expect_ok(pg.psql("SELECT epoch, open FROM aragora.fence_state()")) == "1|f"
        print("server healthy: same postmaster (pid %d), no fence error from any background "
              "process in the log" % pg.pid)
    finally:
        pg.stop()


def test_restart(tmp, port):
    pg = fenced_primary(tmp, port, setup="psql", extra_sql="CREATE TABLE t (i int)")
    sleeper = None
    try:
        renewed(pg, 4, 600000)
        expect_ok(pg.psql("INSERT INTO t VALUES (1)"))
        t0 = time.monotonic()
        pg.stop()
        pg.start()
        restart_s = time.monotonic() - t0
        assert pg.fence_state() == (0, False, 0), pg.fence_state()
        msg = expect_refused(pg.psql("INSERT INTO t VALUES (2)"), "has not been armed")
        print("restarted (fast shutdown + start, %.2f s): fence_state (0, f, 0), INSERT refused: "
              "%s" % (restart_s, msg))
        renewed(pg, 1, 600000)
        expect_ok(pg.psql("INSERT INTO t VALUES (2)"))
        print("after the restart, renew(1) is accepted (the epoch is not kept across restarts)")

        # a crash restart (a backend killed: the postmaster re-creates shared memory)
        renewed(pg, 5, 600000)
        sleeper = subprocess.Popen([os.path.join(PG_BIN, "psql"), "-X", "-q", "-d", pg.conninfo(),
                                    "-c", "SELECT pg_sleep(120)"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        backend = wait_for("the sleeping backend", lambda: pg.value(
            "SELECT pid FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(120)'"), timeout=20)
        postmaster = pg.pid
        t0 = time.monotonic()
        os.kill(int(backend), signal.SIGKILL)

        def fenced_again():
            r = pg.psql("SELECT epoch, open, remaining_ms FROM aragora.fence_state()", timeout=5)
            return r.returncode == 0 and r.stdout.strip() == "0|f|0"

        wait_for("the crash restart to bring the fence back closed", fenced_again, timeout=60,
                 interval=0.1)
        crash_s = time.monotonic() - t0
        assert pg.proc.poll() is None and pg.pid == postmaster
        expect_refused(pg.psql("INSERT INTO t VALUES (3)"), "has not been armed")
        print("crash restart (backend %s SIGKILLed, same postmaster %d): fenced again, epoch 0, "
              "%.2f s after the kill" % (backend, postmaster, crash_s))
        renewed(pg, 5, 600000)
        expect_ok(pg.psql("INSERT INTO t VALUES (3)"))
        assert pg.value("SELECT string_agg(i::text, ',' ORDER BY i) FROM t") == "1,2,3"
        starts = pg.log_text().count("aragora fence: closed (epoch 0)")
        assert starts == 3, starts
        print("the server log says 'aragora fence: closed (epoch 0)' at each of the 3 starts "
              "with the module (first, restart, crash restart)")
    finally:
        if sleeper is not None:
            try:
                sleeper.wait(timeout=10)
            except subprocess.TimeoutExpired:
                sleeper.kill()
                sleeper.wait()
        pg.stop()


def test_replica(tmp, port):
    primary = fenced_primary(tmp, port, extra_sql=(
        "CREATE ROLE app LOGIN;\n\nCREATE TABLE t (i int);\n\nGRANT SELECT ON t TO app;\n\n"))
    replicas = []
    try:
        renewed(primary, 1, 600000)
        expect_ok(primary.psql("INSERT INTO t VALUES (1)"))
        for k in (1, 2):
            check_ports(port + k)
            t0 = time.monotonic()
            r = Postgres(os.path.join(tmp, "pg%d" % (k + 1)), port + k, module=module_path())
            r.basebackup_from(primary).start()
            replicas.append(r)
            print("replica %s: pg_basebackup + start with the module: %.2f s"
                  % (r.name, time.monotonic() - t0))
        wait_for("two streaming replicas", lambda: primary.value(
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == "2",
            timeout=60)
        r1, r2 = replicas
        assert r1.value("SELECT pg_is_in_recovery()") == "t"

        # on a hot standby: its own fence, readable by anyone, renewable and closable
        assert r1.fence_state() == (0, False, 0)
        assert r1.fence_state(user="app") == (0, False, 0)
        st = renewed(r1, 1, 600000)
        assert st[:2] == (1, True), st
        assert r1.value("SELECT aragora.fence_epoch()", user="app") == "1"
        assert expect_ok(close(r1, 1)) == "1|f|0"
        expect_error(renew(r1, 1, 1000), STALE, "was closed")
        assert r1.value("SELECT count(*) FROM t") == "1"
        print("hot standby: fence_state (anyone), fence_renew, fence_close and fence_epoch work; "
              "reads work")

        # the coordinator arms the candidate with the new epoch, then promotes it
        renewed(r1, 2, 600000)
        t0 = time.monotonic()
        assert r1.value("SELECT pg_promote(true, 60)") == "t"
        promoted_s = time.monotonic() - t0
        expect_ok(r1.psql("INSERT INTO t VALUES (2)"))
        print("armed with epoch 2 before pg_promote (%.2f s): the first INSERT after it commits"
              % promoted_s)

        # a promoted replica nobody armed refuses writes
        assert r2.value("SELECT pg_promote(true, 60)") == "t"
        msg = expect_refused(r2.psql("INSERT INTO t VALUES (3)"), "has not been armed")
        print("promoted without arming: INSERT refused: %s" % msg)

        # the deposed primary's coordinator closes its fence with the new epoch
        assert expect_ok(close(primary, 2)) == "2|f|0"
        expect_refused(primary.psql("INSERT INTO t VALUES (4)"), "closed at epoch 2")
        expect_error(renew(primary, 1, 600000), STALE)
        print("old primary: fence_close(2) -> writes refused, renew(1) refused")
    finally:
        for r in replicas:
            r.stop()
        primary.stop()


def test_logical_apply(tmp, port):
    check_ports(port, port + 1)
    pub = Postgres(os.path.join(tmp, "pub"), port, module=module_path())
    pub.initdb(extra_conf="wal_level = logical\n")
    pub.start(preload=False)
    sub = None
    try:
        expect_ok(pub.psql("CREATE TABLE t (i int PRIMARY KEY)",
                           "CREATE PUBLICATION p FOR TABLE t"))
        sub = fenced_primary(tmp, port + 1, name="sub",
                             extra_sql="CREATE TABLE t (i int PRIMARY KEY);\n\n")
        renewed(sub, 1, 600000)
        expect_ok(sub.psql("CREATE SUBSCRIPTION s CONNECTION '%s' PUBLICATION p"
                           % pub.conninfo().replace("'", "")))
        expect_ok(pub.psql("INSERT INTO t VALUES (1)"))
        wait_for("row 1 on the subscriber", lambda: sub.value("SELECT count(*) FROM t") == "1")
        print("logical replication into the fenced node's database works while open")

        expect_ok(close(sub, 1))
        expect_ok(pub.psql("INSERT INTO t VALUES (2)"))
        wait_for("the apply worker's refused commit in the log", lambda: re.search(
            r"logical replication worker ERROR:\s+aragora fence: cannot commit", sub.log_text()),
            timeout=30)
        assert sub.value("SELECT count(*) FROM t") == "1"
        print("fenced: the apply worker's commit is refused (it retries); row 2 not applied")

        t0 = time.monotonic()
        renewed(sub, 2, 600000)
        wait_for("row 2 on the subscriber after the renewal",
                 lambda: sub.value("SELECT count(*) FROM t") == "2", timeout=60)
        print("renewed: row 2 applied %.2f s later (nothing lost: the publisher's slot had not "
              "moved past it)" % (time.monotonic() - t0))
        expect_ok(sub.psql("ALTER SUBSCRIPTION s DISABLE", "ALTER SUBSCRIPTION s SET "
                           "(slot_name = NONE)", "DROP SUBSCRIPTION s"))
    finally:
        if sub is not None:
            sub.stop()
        pub.stop()


CASES = ["basics", "privileges", "write_rules", "two_phase", "maintenance", "restart",
         "replica", "logical_apply"]


def main(argv):
    names = argv or CASES
    unknown = [n for n in names if n not in CASES]
    if unknown:
        print("unknown case(s): %s (known: %s)" % (unknown, ", ".join(CASES)))
        return 2
    for path in (MODULE, SETUP_SQL):
        if not os.path.exists(path):
            print("missing %s: build first (ninja -C build)" % path)
            return 2
    passed = failed = 0
    for name in names:
        port = PORT_BASE + 10 * CASES.index(name)
        holder = TempDir("aragora-fence-%s-" % name)
        t0 = time.monotonic()
        print("=== %s (ports %d..)" % (name, port), flush=True)
        try:
            with holder as tmp:
                globals()["test_" + name](tmp, port)
            passed += 1
            print("ok   %s (%.1f s)" % (name, time.monotonic() - t0), flush=True)
        except Exception:  # noqa: BLE001 - report any failure and go on to the next case
            failed += 1
            traceback.print_exc()
            print("FAIL %s (%.1f s)" % (name, time.monotonic() - t0), flush=True)
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
