#!/usr/bin/env python3
"""Integration tests of the in-database fence as the coordinators keep it (docs/fencing.md): real
coordinators and PostgreSQL 15 with the aragora_fence module, through `aragora-chaos lab` (the
fence is on by default there).

Usage: test_fencing.py [TEST_NAME ...]. Prints "N passed, M failed" last.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_lab  # noqa: E402
from test_lab import get_json, wait_for  # noqa: E402
from test_failover import any_cluster, pg_port, wait_adopted  # noqa: E402

PSQL = "/usr/lib/postgresql/15/bin/psql"


def sql(port, statement):
    p = subprocess.run([PSQL, "-X", "-A", "-t", "-q", "-h", "127.0.0.1", "-p", str(port), "-U",
                        "postgres", "-d", "postgres", "-c", statement],
                       capture_output=True, text=True, timeout=15)
    return p.returncode, p.stdout.strip(), p.stderr.strip()


def fence_state(port):
    rc, out, err = sql(port, "SELECT epoch, open FROM aragora.fence_state()")
    if rc != 0:
        return None
    epoch, is_open = out.split("|")
    return int(epoch), is_open == "t"


def test_fence_matches_cluster(lab):
    """Every node's fence is readable with SQL; the primary's carries the cluster's epoch and is
    open, and /v1/cluster says the same."""
    lab.up(postgres=True)
    lab.wait_leader()
    wait_adopted(lab)
    primary = wait_for("the primary's fence to open", lambda: (
        lambda s: s if s and s[1] else None)(fence_state(pg_port(lab, "us-east-2"))), timeout=30)
    status, doc = get_json(lab.url("us-east-2"), "/v1/cluster")
    assert status == 200 and doc["epoch"] == primary[0] == 1, (doc["epoch"], primary)
    assert doc["db_fence"]["enabled"] and doc["db_fence"]["renewed_epoch"] == 1, doc["db_fence"]
    for r in ("eu-west-1", "ap-south-1"):
        s = fence_state(pg_port(lab, r))
        assert s is not None and not s[1], (r, s)  # replicas: readable, never armed
    print("  primary's fence: epoch %d open; replicas readable and closed; /v1/cluster: %s"
          % (primary[0], doc["db_fence"]))


def fault(lab, *args):
    """`aragora-chaos fault ARGS --dir` (the lab's fault proxy, docs/chaos.md)."""
    return subprocess.run([test_lab.CHAOS, "fault", *args, "--dir", lab.dir], check=True,
                          capture_output=True, text=True, timeout=30).stdout


def test_coordinator_killed_fence_closes(lab):
    """SIGKILL the primary's coordinator while its PostgreSQL keeps running, and cut its region
    off from the others (the fault proxy: Raft, API, replication and probes): writes to it are
    refused within lease_ms (no renewal arrives), reads still work, a new primary is promoted on
    the other side, and the old one never acknowledges another write - before, during or after
    that promotion."""
    lab.up(postgres=True)
    lab.wait_leader()
    wait_adopted(lab)
    port = pg_port(lab, "us-east-2")
    wait_for("the primary's fence to open", lambda: (
        lambda s: s and s[1])(fence_state(port)), timeout=30)
    assert sql(port, "CREATE TABLE it_fence (n int)")[0] == 0
    lab.chaos("kill", "us-east-2", "--what", "coordinator")
    t0 = time.monotonic()
    print("  " + fault(lab, "set", "isolate us-east-2").strip())
    refused_at, acked_after, n = None, 0, 0
    survivors = ["eu-west-1", "ap-south-1"]
    promoted = None
    while time.monotonic() - t0 < 90:
        n += 1
        rc, _, err = sql(port, "INSERT INTO it_fence VALUES (%d)" % n)
        if rc != 0 and refused_at is None:
            assert "aragora fence" in err, err
            refused_at = time.monotonic() - t0
        elif rc == 0 and refused_at is not None:
            acked_after += 1
        if promoted is None:
            doc = any_cluster(lab, survivors)
            if doc and doc["epoch"] > 1 and doc["primary"] in survivors and doc.get(
                    "failover") and doc["failover"]["step"] == "done":
                promoted = (doc["primary"], doc["epoch"], time.monotonic() - t0)
        # keep writing to the old primary for 3 s after the new one is done
        if promoted is not None and time.monotonic() - t0 > promoted[2] + 3:
            break
    assert refused_at is not None, "writes still accepted 10 s after the coordinator died"
    assert refused_at < 2.0 + 0.5, "refused only after %.2f s (lease 2 s)" % refused_at
    assert promoted is not None, "no new primary promoted within 90 s of the cut"
    assert acked_after == 0, "%d writes acknowledged after the first refusal" % acked_after
    rc, out, _ = sql(port, "SELECT count(*) FROM it_fence")
    assert rc == 0, "reads must keep working"
    new_port = pg_port(lab, promoted[0])
    rc, _, err = sql(new_port, "CREATE TABLE it_new_primary (n int)")
    assert rc == 0, "the new primary must accept writes: %s" % err
    print("  coordinator killed and region cut off -> writes refused after %.0f ms (lease "
          "2000 ms); reads work (%s rows); %s promoted at epoch %d after %.1f s; 0 writes "
          "acknowledged by the old primary after the first refusal (%d tried)"
          % (refused_at * 1000, out, promoted[0], promoted[1], promoted[2], n))
    fault(lab, "clear")


def test_restarted_postgres_fenced_until_renewed(lab):
    """The primary's PostgreSQL is killed; its coordinator restarts it; it comes up fenced and
    accepts writes only once the coordinator has renewed the fence."""
    lab.up(postgres=True)
    lab.wait_leader()
    wait_adopted(lab)
    port = pg_port(lab, "us-east-2")
    wait_for("the primary's fence to open", lambda: (
        lambda s: s and s[1])(fence_state(port)), timeout=30)
    lab.chaos("kill", "us-east-2", "--what", "postgres")
    t0 = time.monotonic()
    first = wait_for("the restarted PostgreSQL to answer", lambda: fence_state(port),
                     timeout=60)
    opened = wait_for("the fence to open again", lambda: (
        lambda s: s if s and s[1] else None)(fence_state(port)), timeout=30)
    print("  restarted: first seen fence %s; open again (epoch %d) %.0f ms after the kill"
          % ("open" if first[1] else "closed", opened[0], (time.monotonic() - t0) * 1000))
    with open(lab.region("us-east-2")["log"]) as fh:
        assert "+pg-starting" in fh.read()
    rc, _, err = sql(port, "CREATE TABLE it_after (n int)")
    assert rc == 0, err  # writes commit again once renewed


TESTS = [test_fence_matches_cluster, test_coordinator_killed_fence_closes,
         test_restarted_postgres_fenced_until_renewed]


if __name__ == "__main__":
    sys.exit(test_lab.run_tests(TESTS, sys.argv, 90))
