#!/usr/bin/env python3
"""Integration tests of automatic PostgreSQL failover: real coordinators and real PostgreSQL 15
through `aragora-chaos lab` (primary us-east-2, streaming replicas eu-west-1 and ap-south-1).

Every wait polls an observable state (an HTTP answer, a SQL result) with a deadline; timings are
measured and printed, never asserted tightly (CI machines can be 10x slower).
Usage: test_failover.py [TEST_NAME ...]. Prints "N passed, M failed" last.
"""

import datetime
import glob
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_lab  # noqa: E402
from test_lab import get_json, pid_gone, psql, psql_value, running_postmasters, streaming_count, \
    wait_for  # noqa: E402,F401


def cluster(lab, region):
    return lab.cluster(region)


def pg_port(lab, region):
    return lab.region(region)["postgres"]["port"]


def any_cluster(lab, regions):
    for r in regions:
        doc = lab.cluster(r, timeout=1.0)
        if doc is not None:
            return doc
    return None


def wait_adopted(lab):
    """Bootstrap adoption: the running primary becomes epoch 1 and its lease is renewed."""
    def adopted():
        doc = lab.cluster(lab.regions[0])
        return doc if doc and doc["epoch"] == 1 and doc["primary"] == "us-east-2" and \
            doc["lease"]["seq"] > 0 else None
    return wait_for("us-east-2 adopted as epoch 1 with a renewed lease", adopted, timeout=30)


def wait_step(lab, regions, step, epoch, timeout=60):
    def reached():
        doc = any_cluster(lab, regions)
        f = doc and doc["failover"]
        return doc if f and f["epoch"] == epoch and f["step"] == step else None
    return wait_for("failover epoch %d at step %s" % (epoch, step), reached, timeout=timeout)


def first_write(port, deadline_s):
    """Keep trying to write until one is accepted; returns the monotonic time of that write."""
    def write():
        p = psql(port, "INSERT INTO it_writes VALUES (now())", check=False)
        return time.monotonic() if p.returncode == 0 else None
    return wait_for("a write accepted on port %d" % port, write, timeout=deadline_s, interval=0.05)


def own_view(doc, region):
    p = next(x for x in doc["postgres"] if x["region"] == region)
    return p["seen_by_its_own_coordinator"]


def wait_replica_of(lab, region, primary, timeline, timeout):
    """Until `region`'s own coordinator reports a healthy replica streaming from `primary` on
    `timeline` (as the primary's node has it); returns that view."""
    def follows():
        d = lab.cluster(primary)
        v = d and own_view(d, region)
        return v if v and v["healthy"] and v["role"] == "replica" and v["upstream"] == primary \
            and v["timeline"] == timeline else None
    return wait_for("%s to follow %s on timeline %d" % (region, primary, timeline), follows,
                    timeout=timeout)


def test_kill_primary_region(lab):
    """Kill the whole primary region: a replica is promoted and accepts writes, the other follows
    it, every step is in the receipt; the old region comes back fenced and rejoins as a replica."""
    lab.up(postgres=True)
    lab.wait_leader()
    wait_adopted(lab)
    assert psql(pg_port(lab, "us-east-2"), "CREATE TABLE it_writes (at timestamptz)").returncode == 0
    survivors = ["eu-west-1", "ap-south-1"]
    t0 = time.monotonic()
    lab.chaos("kill", "us-east-2", "--what", "region")
    done = wait_step(lab, survivors, "done", 2, timeout=90)
    new = done["failover"]["to"]
    assert new in survivors and done["primary"] == new and done["epoch"] == 2, done["failover"]
    t_write = first_write(pg_port(lab, new), 30)
    print("  region killed -> failover done on %s: %.0f ms; first accepted write: %.0f ms"
          % (new, (time.monotonic() - t0) * 1000, (t_write - t0) * 1000))
    f = done["failover"]
    for k in ("detected", "decided", "fenced", "promoted", "done"):
        assert f["times"][k] is not None, (k, f)
    assert f["timeline"] == 2 and f["from"] == "us-east-2", f
    other = next(r for r in survivors if r != new)
    wait_for("%s to stream from %s" % (other, new), lambda: (
        lambda d: d and (own_view(d, other) or {}).get("upstream") == new)(lab.cluster(other)),
        timeout=30)
    # The old region returns: its coordinator fences the old primary and rejoins it as a replica.
    t1 = time.monotonic()
    pg_log = lab.region("us-east-2")["postgres"]["log"]
    before = os.path.getsize(pg_log)
    # What the others send it is slowed down (the fault proxy, docs/chaos.md), as across real
    # regions: a restarted node learns the commit index, applies its own old entries, and only a
    # round trip later has the newer ones.
    test_lab.run([test_lab.CHAOS, "fault", "set", "* -> us-east-2 delay 300ms", "--dir", lab.dir],
                 timeout=30)
    lab.chaos("restart", "us-east-2", "--what", "region")
    lab.reload()
    wait_replica_of(lab, "us-east-2", new, 2, timeout=90)
    test_lab.run([test_lab.CHAOS, "fault", "clear", "--dir", lab.dir], timeout=30)
    # Its coordinator replays its own log (epoch 1, itself primary) before it fetches the
    # failover: that stale authorization must not open the restarted database's fence.
    with open(pg_log, errors="replace") as fh:
        fh.seek(before)
        opened = [line for line in fh if "aragora fence: opened" in line]
    assert not opened, "the restarted old primary's fence was opened: %s" % opened
    print("  old primary back -> rejoined as a replica of %s on timeline 2: %.0f ms"
          % (new, (time.monotonic() - t1) * 1000))
    rows_new = psql_value(pg_port(lab, new), "SELECT count(*) FROM it_writes")
    rows_old = wait_for("the rejoined node to have the new primary's rows", lambda: (
        lambda v: v if v == rows_new else None)(
        psql_value(pg_port(lab, "us-east-2"), "SELECT count(*) FROM it_writes")), timeout=30)
    assert rows_old == rows_new and int(rows_new) >= 1, (rows_old, rows_new)
    with open(lab.region("us-east-2")["log"]) as fh:
        log = fh.read()
    assert "+fenced" in log or "+rejoining" in log, "no fence or rejoin event in the old region's log"
    # Before the rewind, the old primary's WAL from the fork on was kept for the operator.
    status, hist = get_json(lab.url(new), "/v1/history")
    notes = [e for e in hist["events"] if e["kind"] == "wal-quarantined"]
    assert status == 200 and notes, "no wal-quarantined note in the history"
    summary = open(os.path.join(lab.region("us-east-2")["postgres"]["data_dir"] +
                                ".quarantine", "epoch-2-timeline-1", "QUARANTINE.txt")).read()
    assert "fork_lsn=" in summary and "end_lsn=" in summary, summary
    print("  divergent WAL kept: %s" % summary.strip())


def test_kill_primary_postgres_only(lab):
    """Kill only the primary's PostgreSQL: its own coordinator restarts it; no failover."""
    lab.up(postgres=True)
    lab.wait_leader()
    wait_adopted(lab)
    before = lab.region("us-east-2")["postgres"]["pid"]
    t0 = time.monotonic()
    lab.chaos("kill", "us-east-2", "--what", "postgres")
    wait_for("us-east-2's PostgreSQL to accept connections again",
             lambda: psql_value(pg_port(lab, "us-east-2"), "SELECT NOT pg_is_in_recovery()") == "t",
             timeout=60)
    print("  primary PostgreSQL killed -> restarted by its coordinator: %.0f ms"
          % ((time.monotonic() - t0) * 1000))
    doc = lab.cluster("eu-west-1")
    assert doc["epoch"] == 1 and doc["primary"] == "us-east-2" and doc["failover"] is None, doc
    with open(os.path.join(lab.region("us-east-2")["postgres"]["data_dir"], "postmaster.pid")) as fh:
        now = int(fh.readline())
    assert now != before and not pid_gone(now), (before, now)  # really a new postmaster


def test_paused_no_failover(lab):
    """Paused: the primary region dies, every failover predicate holds except not-paused, and
    nothing happens until resume; then the failover runs."""
    lab.up(postgres=True)
    lab.wait_leader()
    wait_adopted(lab)
    status, body = lab.post("eu-west-1", "/v1/pause", b'{"reason":"maintenance test"}')
    assert status == 200, (status, body)
    survivors = ["eu-west-1", "ap-south-1"]
    lab.chaos("kill", "us-east-2", "--what", "region")

    def only_pause_blocks():
        for r in survivors:
            status, d = get_json(lab.url(r), "/v1/decision", timeout=1.0)
            if status == 200 and d["blocking"] == "not-paused":
                oks = {p["name"]: p["ok"] for p in d["predicates"]}
                if oks.get("primary-failed-by-quorum") and oks.get("lease-expired"):
                    return d
        return None
    d = wait_for("the decision to be blocked by the pause alone", only_pause_blocks, timeout=60)
    doc = any_cluster(lab, survivors)
    assert doc["epoch"] == 1 and doc["failover"] is None, doc
    print("  paused: failover due but blocked by '%s'" % d["blocking"])
    status, body = lab.post("eu-west-1", "/v1/resume")
    assert status == 200, (status, body)
    wait_step(lab, survivors, "done", 2, timeout=90)


class Writer(threading.Thread):
    """Writes sequence numbers continuously to whichever region's PostgreSQL accepts them,
    recording every acknowledged one with its time."""

    def __init__(self, ports):
        super().__init__(daemon=True)
        self.ports = ports
        self.acked = []  # (seq, monotonic time)
        self.stop = threading.Event()

    def run(self):
        seq = 0
        while not self.stop.is_set():
            for port in self.ports:
                if psql(port, "INSERT INTO it_seq VALUES (%d)" % seq, check=False).returncode == 0:
                    self.acked.append((seq, time.monotonic()))
                    break
            seq += 1

    def gap_ms(self):
        t = [a[1] for a in self.acked]
        return max((b - a for a, b in zip(t, t[1:])), default=0) * 1000


def test_switchover_under_load(lab):
    """Planned switchover while writes flow: every acknowledged row is on the new primary."""
    lab.up(postgres=True)
    lab.wait_leader()
    wait_adopted(lab)
    assert psql(pg_port(lab, "us-east-2"), "CREATE TABLE it_seq (i int)").returncode == 0
    writer = Writer([pg_port(lab, r) for r in lab.regions])
    writer.start()
    wait_for("writes flowing", lambda: len(writer.acked) >= 20 or None, timeout=30)
    status, body = lab.post("ap-south-1", "/v1/switchover", b'{"to": "eu-west-1"}')
    assert status == 202, (status, body)
    wait_step(lab, lab.regions, "done", 2, timeout=90)
    n_before = len(writer.acked)
    wait_for("writes on the new primary", lambda: len(writer.acked) >= n_before + 20 or None,
             timeout=30)
    writer.stop.set()
    writer.join(30)
    have = psql_value(pg_port(lab, "eu-west-1"), "SELECT string_agg(i::text, ',') FROM it_seq")
    rows = set(int(x) for x in (have or "").split(",") if x)
    missing = [seq for seq, _ in writer.acked if seq not in rows]
    print("  switchover: %d writes acknowledged, %d missing, longest write gap %.0f ms"
          % (len(writer.acked), len(missing), writer.gap_ms()))
    assert not missing, "acknowledged writes lost in a planned switchover: %s" % missing[:20]


def cut_replication(lab, region):
    """Stop a replica following anyone (it stays a healthy replica, it just receives nothing)."""
    port = pg_port(lab, region)
    assert psql(port, "ALTER SYSTEM SET primary_conninfo = ''").returncode == 0
    assert psql(port, "SELECT pg_reload_conf()").returncode == 0


def decision(lab, regions, assume_dead=None):
    q = "/v1/decision" + ("?assume_dead=" + assume_dead if assume_dead else "")
    for r in regions:
        status, d = get_json(lab.url(r), q, timeout=1.0)
        if status == 200:
            return d
    return None


def test_lagging_replica_not_chosen(lab):
    """A replica further behind than maximum_lag_on_failover (1 MiB) is never the candidate."""
    lab.up(postgres=True)
    lab.wait_leader()
    wait_adopted(lab)
    cut_replication(lab, "eu-west-1")
    # about 8 MB of WAL that eu-west-1 will never receive
    assert psql(pg_port(lab, "us-east-2"), "CREATE TABLE it_bulk AS SELECT g, repeat('x', 50) AS "
                "pad FROM generate_series(1, 100000) g").returncode == 0
    plan = wait_for("the plan to choose ap-south-1 and pass over the lagging eu-west-1", lambda: (
        lambda d: d if d and candidate_value(d).startswith("ap-south-1") and
        "eu-west-1 lags" in candidate_value(d) else None)(
        decision(lab, lab.regions, assume_dead="us-east-2")), timeout=60)
    print("  plan with eu-west-1 cut off: %s" % candidate_value(plan))
    lab.chaos("kill", "us-east-2", "--what", "region")
    done = wait_step(lab, ["eu-west-1", "ap-south-1"], "done", 2, timeout=90)
    assert done["failover"]["to"] == "ap-south-1", done["failover"]


def test_no_candidate_no_failover(lab):
    """Every replica lags beyond maximum_lag_on_failover: the primary dies and nothing is
    promoted; /v1/decision names candidate-available as what blocks."""
    lab.up(postgres=True)
    lab.wait_leader()
    wait_adopted(lab)
    cut_replication(lab, "eu-west-1")
    cut_replication(lab, "ap-south-1")
    assert psql(pg_port(lab, "us-east-2"), "CREATE TABLE it_bulk AS SELECT g, repeat('x', 50) AS "
                "pad FROM generate_series(1, 100000) g").returncode == 0
    survivors = ["eu-west-1", "ap-south-1"]
    wait_for("both replicas reported lagging", lambda: (
        lambda d: d if d and "eu-west-1 lags" in json_text(d) and "ap-south-1 lags" in
        json_text(d) else None)(decision(lab, lab.regions, assume_dead="us-east-2")), timeout=60)
    lab.chaos("kill", "us-east-2", "--what", "region")
    def blocked_by_lag_alone():
        for r in survivors:  # the leader's verdict: followers are blocked by leader-ready
            d = decision(lab, [r])
            if d and d["blocking"] == "candidate-available" and all(
                    p["ok"] for p in d["predicates"] if p["name"] != "candidate-available"):
                return d
        return None
    blocked = wait_for("the decision to be blocked by the lag alone", blocked_by_lag_alone,
                       timeout=90)
    print("  primary dead, no candidate: blocking=%s (%s)"
          % (blocked["blocking"], candidate_value(blocked)))
    doc = any_cluster(lab, survivors)
    assert doc["epoch"] == 1 and doc["failover"] is None, ("promoted a lagging replica", doc)


def test_new_primary_dies_too(lab):
    """Within the cooldown, the new primary's whole region dies as well: the cooldown yields (the
    leader hears nothing from that region's coordinator) and the last replica is promoted."""
    lab.up(postgres=True)
    lab.wait_leader()
    wait_adopted(lab)
    assert psql(pg_port(lab, "us-east-2"), "CREATE TABLE it_writes (at timestamptz)").returncode == 0
    lab.chaos("kill", "us-east-2", "--what", "region")
    done = wait_step(lab, ["eu-west-1", "ap-south-1"], "done", 2, timeout=90)
    first = done["failover"]["to"]
    last = next(r for r in ("eu-west-1", "ap-south-1") if r != first)
    wait_for("%s to follow %s" % (last, first), lambda: (
        lambda d: d and (own_view(d, last) or {}).get("upstream") == first)(lab.cluster(last)),
        timeout=30)
    t_first = time.monotonic()
    lab.chaos("kill", first, "--what", "region")
    # One coordinator left is no majority: bring us-east-2's coordinator back (its PostgreSQL
    # stays dead), so two of three can decide.
    lab.chaos("restart", "us-east-2", "--what", "coordinator")
    t0 = time.monotonic()
    done3 = wait_step(lab, [last, "us-east-2"], "done", 3, timeout=120)
    f = done3["failover"]
    assert f["from"] == first and f["to"] == last, f
    print("  within the cooldown, %s's region lost too: epoch 3 %s -> %s done %.0f ms after a "
          "majority was back (%.0f ms after the second kill)"
          % (first, f["from"], f["to"], (time.monotonic() - t0) * 1000,
             (time.monotonic() - t_first) * 1000))
    first_write(pg_port(lab, last), 30)


def test_primary_cannot_restart(lab):
    """The primary's PostgreSQL dies and cannot be restarted (its data directory is gone): after
    the restart grace its own coordinator reports it dead (local_dead) and the cluster fails over."""
    lab.up(postgres=True)
    lab.wait_leader()
    wait_adopted(lab)
    data = lab.region("us-east-2")["postgres"]["data_dir"]
    lab.chaos("kill", "us-east-2", "--what", "postgres")
    os.rename(data, data + ".moved-away")  # pg_ctl start can only fail now
    try:
        def reported_dead():
            d = lab.cluster("eu-west-1")
            v = d and own_view(d, "us-east-2")
            return v if v and v["local_dead"] else None
        wait_for("us-east-2's coordinator to report its PostgreSQL dead", reported_dead,
                 timeout=60)
        done = wait_step(lab, ["eu-west-1", "ap-south-1"], "done", 2, timeout=90)
        assert done["failover"]["from"] == "us-east-2", done["failover"]
        with open(lab.region("us-east-2")["log"]) as fh:
            assert "+pg-dead" in fh.read()
        print("  us-east-2 could not restart its PostgreSQL: reported dead, failover to %s done"
              % done["failover"]["to"])
    finally:
        os.rename(data + ".moved-away", data)


def wal_segments(data_dir):
    """Names of the WAL segment files in a data directory's pg_wal."""
    return sorted(n for n in os.listdir(os.path.join(data_dir, "pg_wal"))
                  if re.fullmatch(r"[0-9A-F]{24}", n))


def controldata(data_dir, field):
    out = subprocess.run([os.path.join(os.path.dirname(test_lab.PSQL), "pg_controldata"),
                          data_dir], capture_output=True, text=True, check=True).stdout
    return re.search(r"^%s:\s*(.*)$" % re.escape(field), out, re.M).group(1)


def test_rewind_fails_base_backup(lab):
    """The old primary's WAL from the last checkpoint it shares with the new primary is gone, so
    pg_rewind cannot work: its coordinator renames the data directory aside (nothing deleted),
    takes a base backup from the new primary and starts it as a replica on the new timeline."""
    lab.up(postgres=True)
    lab.wait_leader()
    wait_adopted(lab)
    old = pg_port(lab, "us-east-2")
    data = lab.region("us-east-2")["postgres"]["data_dir"]
    survivors = ["eu-west-1", "ap-south-1"]
    assert psql(old, "CREATE TABLE it_writes (at timestamptz)").returncode == 0
    assert psql(old, "INSERT INTO it_writes VALUES (now())").returncode == 0
    table_file = psql_value(old, "SELECT pg_relation_filepath('it_writes')")
    # The last checkpoint the replicas will share with the old primary, then a new WAL segment.
    assert psql(old, "CHECKPOINT").returncode == 0
    common_wal = psql_value(old, "SELECT redo_wal_file FROM pg_control_checkpoint()")
    switched = psql_value(old, "SELECT pg_switch_wal()")
    for r in survivors:
        wait_for("%s to replay up to %s" % (r, switched), lambda r=r: psql_value(
            pg_port(lab, r), "SELECT pg_last_wal_replay_lsn() >= '%s'" % switched) == "t",
            timeout=30)
        cut_replication(lab, r)
    wait_for("no replica streaming from us-east-2", lambda: streaming_count(old) == 0, timeout=30)
    # What only the old primary has: a row and a checkpoint after the fork, in the new segment.
    assert psql(old, "INSERT INTO it_writes VALUES (now())").returncode == 0
    assert psql(old, "CHECKPOINT").returncode == 0
    own_wal = psql_value(old, "SELECT redo_wal_file FROM pg_control_checkpoint()")
    assert own_wal > common_wal, (own_wal, common_wal)
    lab.chaos("kill", "us-east-2", "--what", "region")
    done = wait_step(lab, survivors, "done", 2, timeout=90)
    new = done["failover"]["to"]
    assert done["primary"] == new and done["failover"]["timeline"] == 2, done["failover"]
    # Rewinding is impossible now: the old primary's WAL before its own last checkpoint (which it
    # still needs to start) is removed, and with it the last checkpoint common to both timelines.
    removed = [n for n in wal_segments(data) if n < own_wal]
    assert common_wal in removed, (common_wal, removed)
    for name in removed:
        os.remove(os.path.join(data, "pg_wal", name))
    t1 = time.monotonic()
    lab.chaos("restart", "us-east-2", "--what", "region")
    lab.reload()
    wait_replica_of(lab, "us-east-2", new, 2, timeout=180)
    print("  old primary back, rewind impossible -> rejoined from a base backup as a replica of "
          "%s on timeline 2: %.0f ms" % (new, (time.monotonic() - t1) * 1000))
    rows_new = psql_value(pg_port(lab, new), "SELECT count(*) FROM it_writes")
    rows_old = wait_for("the rejoined node to have the new primary's rows", lambda: (
        lambda v: v if v == rows_new else None)(
        psql_value(old, "SELECT count(*) FROM it_writes")), timeout=30)
    assert rows_old == rows_new == "1", (rows_old, rows_new)
    with open(lab.region("us-east-2")["log"]) as fh:
        log = fh.read()
    failed = re.search(r"\+rejoin-failed [^\n]*", log)
    assert failed and "cause=cannot-rewind" in failed.group(0) and \
        "next=base-backup" in failed.group(0), failed and failed.group(0)
    assert "could not find previous WAL record" in log, "pg_rewind failed for another reason"
    assert log.index("+rejoin-failed") < log.index("+rejoin-basebackup") < \
        log.index("+basebackup-done"), "events out of order"
    # The old data directory is kept whole beside the new one, with its own timeline.
    aside = glob.glob(data + ".failed-epoch-2-*")
    assert len(aside) == 1, aside
    aside = aside[0]
    for f in ("PG_VERSION", table_file, os.path.join("pg_wal", own_wal), "postgresql.conf"):
        assert os.path.exists(os.path.join(aside, f)), "%s missing from %s" % (f, aside)
    assert controldata(aside, "Latest checkpoint's TimeLineID") == "1"
    assert controldata(data, "Latest checkpoint's TimeLineID") == "2"
    st_new, st_old = os.stat(data), os.stat(aside)
    assert (st_new.st_uid, st_new.st_mode & 0o777) == (st_old.st_uid, 0o700), (st_new, st_old)
    status, hist = get_json(lab.url(new), "/v1/history")
    notes = [e for e in hist["events"] if e["kind"] == "rejoin-basebackup"]
    assert status == 200 and len(notes) == 1, notes
    assert os.path.basename(aside) in notes[0]["detail"], (notes, aside)
    print("  moved aside: %s; history: %s" % (aside, notes[0]["detail"]))


def json_text(d):
    return " ".join(p["value"] for p in d.get("predicates", []))


def candidate_value(d):
    return next((p["value"] for p in d["predicates"] if p["name"] == "candidate-available"), "?")


def test_replica_diverged_rewound(lab):
    """An operator forces the failover to a replica that has less WAL than the other one: the
    other replica has replayed past the new timeline's fork point and cannot follow it. Its
    coordinator finds that out, keeps its divergent WAL, rewinds it from the new primary and
    starts it as a replica on the new timeline."""
    lab.up(postgres=True)
    lab.wait_leader()
    wait_adopted(lab)
    old, target, other = "us-east-2", "eu-west-1", "ap-south-1"
    assert psql(pg_port(lab, old), "CREATE TABLE it_writes (n int)").returncode == 0
    assert psql(pg_port(lab, old), "INSERT INTO it_writes VALUES (1)").returncode == 0
    status, body = lab.post(target, "/v1/pause", b'{"reason":"forced failover test"}')
    assert status == 200, (status, body)
    wait_for("%s to have the table" % target, lambda: psql_value(
        pg_port(lab, target), "SELECT count(*) FROM it_writes", ) == "1", timeout=30)
    cut_replication(lab, target)
    # Only `other` receives these: it will have WAL the new primary never had.
    assert psql(pg_port(lab, old), "INSERT INTO it_writes SELECT generate_series(2, 500)") \
        .returncode == 0
    end = psql_value(pg_port(lab, old), "SELECT pg_current_wal_lsn()")
    wait_for("%s to replay up to %s" % (other, end), lambda: psql_value(
        pg_port(lab, other), "SELECT pg_last_wal_replay_lsn() >= '%s'" % end) == "t",
        timeout=30)
    lab.chaos("kill", old, "--what", "region")

    def forced():
        status, body = lab.post(target, "/v1/failover", b'{"to":"%s","force":true}' % target.encode())
        return body if status == 202 else None  # 409 while the old primary's lease may run
    wait_for("the forced failover to be accepted", forced, timeout=60)
    done = wait_step(lab, [target, other], "done", 2, timeout=90)
    assert done["failover"]["to"] == target and done["failover"]["forced"], done["failover"]
    status, body = lab.post(target, "/v1/resume")
    assert status == 200, (status, body)
    t0 = time.monotonic()
    wait_replica_of(lab, other, target, 2, timeout=120)
    print("  diverged replica rewound and following the new primary: %.0f ms"
          % ((time.monotonic() - t0) * 1000))
    rows = wait_for("%s to have the new primary's rows" % other, lambda: (
        lambda v: v if v == "1" else None)(
        psql_value(pg_port(lab, other), "SELECT count(*) FROM it_writes")), timeout=30)
    assert rows == "1", rows
    with open(lab.region(other)["log"]) as fh:
        log = fh.read()
    for ev in ("+replica-diverged", "+pg-stopping", "+wal-quarantined", "+rewound"):
        assert ev in log, "no %s in %s's log" % (ev, other)
    assert log.index("+replica-diverged") < log.index("+rewound"), "rewound before diverged?"
    qdir = lab.region(other)["postgres"]["data_dir"] + ".quarantine"
    saved = [d for d in os.listdir(qdir) if d.startswith("epoch-2-timeline-1")]
    assert saved, os.listdir(qdir)
    summary = open(os.path.join(qdir, saved[0], "QUARANTINE.txt")).read()
    print("  its divergent WAL kept: %s" % summary.strip())


# ---- synchronous mode (replication.mode: sync; docs/failover.md "Synchronous mode") ----


def sync_names(port):
    """The members synchronous_standby_names names on a PostgreSQL, as slot names ('-' -> '_'),
    or None if it cannot be read; '' -> empty set."""
    v = psql_value(port, "SHOW synchronous_standby_names")
    if v is None:
        return None
    m = re.fullmatch(r"ANY 1 \((.*)\)", v)
    if not v:
        return frozenset()
    names = [n.strip().strip('"') for n in m.group(1).split(",")] if m else ["?" + v]
    return frozenset(n.replace("-", "_") for n in names)


def slots(*regions):
    return frozenset(r.replace("-", "_") for r in regions)


def sync_states(port):
    """{slot name: sync_state} of the walsenders streaming from a PostgreSQL."""
    v = psql_value(port, "SELECT string_agg(application_name || '=' || sync_state, ',') FROM "
                   "pg_stat_replication WHERE state = 'streaming'")
    return dict(kv.split("=", 1) for kv in (v or "").split(",") if "=" in kv) \
        if v is not None else None


def replication(lab, region):
    d = lab.cluster(region)
    return d and d.get("replication")


def wait_sync_set(lab, primary, standbys, timeout=60):
    """Until the primary's PostgreSQL waits on ANY 1 of exactly `standbys`, each streaming as a
    quorum standby, and the committed set says the same."""
    port = pg_port(lab, primary)

    def settled():
        rep = replication(lab, primary)
        if not rep or not rep["committed"] or rep["committed"]["region"] != primary or \
                sorted(rep["sync_standbys"]) != sorted(standbys) or not rep["here"] or \
                rep["here"]["phase"] != "sync":
            return None
        if sync_names(port) != slots(*standbys):
            return None
        states = sync_states(port) or {}
        got = {k.replace("-", "_"): v for k, v in states.items()}
        return rep if all(got.get(s) == "quorum" for s in slots(*standbys)) else None
    return wait_for("%s to wait on ANY 1 of %s" % (primary, standbys), settled, timeout=timeout)


class TimedWriter(threading.Thread):
    """Inserts sequence numbers into one PostgreSQL, one psql at a time, recording each
    acknowledged one with how long it took (a commit waiting for a synchronous standby shows as
    a slow write)."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.acked = []  # (seq, start, duration s)
        self.stop = threading.Event()

    def run(self):
        conninfo = "host=127.0.0.1 port=%d user=postgres dbname=postgres connect_timeout=3" \
            % self.port
        seq = 0
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                p = subprocess.run([test_lab.PSQL, "-X", "-q", "-d", conninfo, "-c",
                                    "INSERT INTO it_seq VALUES (%d)" % seq],
                                   capture_output=True, timeout=120)
                if p.returncode == 0:
                    self.acked.append((seq, t0, time.monotonic() - t0))
            except subprocess.TimeoutExpired:
                pass
            seq += 1

    def longest_since(self, t):
        """The longest write (ms) that started at or after monotonic time t."""
        return max((d for _, t0, d in self.acked if t0 >= t), default=0) * 1000

    def count(self):
        return len(self.acked)


def test_sync_standby_set(lab):
    """replication.mode sync: the primary waits on ANY 1 of its streaming replicas, kept current
    as they come and go — a dead one is dropped without blocking writes; with none left the
    primary falls back to asynchronous (committed first, +sync-degraded) and comes back
    (+sync-restored) when one streams again."""
    lab.extra.append("--sync")
    lab.up(postgres=True)
    lab.wait_leader()
    wait_adopted(lab)
    primary, port = "us-east-2", pg_port(lab, "us-east-2")
    t0 = time.monotonic()
    rep = wait_sync_set(lab, primary, ["eu-west-1", "ap-south-1"])
    print("  adopted -> synchronous_standby_names = %r, both quorum standbys: %.0f ms"
          % (rep["here"]["synchronous_standby_names"], (time.monotonic() - t0) * 1000))
    assert rep["mode"] == "sync" and rep["sync_strict"] is False and rep["here"]["phase"] == "sync"
    assert all(w["sync_state"] == "quorum" for w in rep["here"]["standbys"]), rep["here"]
    out = lab.ctl(["eu-west-1"], "status").stdout  # a replica answers; the primary is asked too
    line = next((l for l in out.splitlines() if l.startswith("replication:")), "")
    assert "ANY 1 of eu-west-1, ap-south-1" in line and "us-east-2: synchronous_standby_names" \
        in out, out
    print("  aragoractl status: %s" % line)
    assert psql(port, "CREATE TABLE it_seq (i int)").returncode == 0
    writer = TimedWriter(port)
    writer.start()
    try:
        wait_for("writes flowing", lambda: writer.count() >= 20 or None, timeout=30)
        # One replica region dies: ANY 1 still has the other; the set is updated. (Not the Raft
        # leader's region: a leader election may outlast the primary's lease, which would fence
        # it, and that is not what this measures.)
        leader = lab.cluster(primary)["leader"]["region"]
        victim = "ap-south-1" if leader != "ap-south-1" else "eu-west-1"
        survivor = next(r for r in ("eu-west-1", "ap-south-1") if r != victim)
        t1 = time.monotonic()
        lab.chaos("kill", victim, "--what", "region")
        wait_sync_set(lab, primary, [survivor])
        n1 = writer.count()
        wait_for("writes after the set changed", lambda: writer.count() >= n1 + 20 or None,
                 timeout=30)
        print("  %s killed -> set is ANY 1 of %s after %.0f ms; longest write meanwhile %.0f ms"
              % (victim, survivor, (time.monotonic() - t1) * 1000, writer.longest_since(t1)))
        # The last standby stops streaming: no standby left, sync_strict false -> asynchronous.
        conninfo = psql_value(pg_port(lab, survivor), "SHOW primary_conninfo")
        t2 = time.monotonic()
        cut_replication(lab, survivor)

        def degraded():
            rep = replication(lab, primary)
            return rep if rep and rep["committed"] and not rep["committed"]["active"] and \
                sync_names(port) == frozenset() else None
        wait_for("the primary to fall back to asynchronous", degraded, timeout=60)
        n2 = writer.count()
        wait_for("writes while asynchronous", lambda: writer.count() >= n2 + 20 or None,
                 timeout=30)
        print("  last standby stopped streaming -> asynchronous after %.0f ms; longest write "
              "blocked %.0f ms" % ((time.monotonic() - t2) * 1000, writer.longest_since(t2)))
        assert writer.longest_since(t2) < 30000, writer.longest_since(t2)
        out = lab.ctl([primary], "status").stdout
        assert "ASYNCHRONOUS" in out, out
        # It streams again: synchronous again, the record first.
        t3 = time.monotonic()
        port_s = pg_port(lab, survivor)
        assert psql(port_s, "ALTER SYSTEM SET primary_conninfo = '%s'" % conninfo).returncode == 0
        assert psql(port_s, "SELECT pg_reload_conf()").returncode == 0
        wait_sync_set(lab, primary, [survivor])
        n3 = writer.count()
        wait_for("writes, synchronous again", lambda: writer.count() >= n3 + 20 or None,
                 timeout=30)
        print("  %s streams again -> synchronous again after %.0f ms; longest write meanwhile "
              "%.0f ms" % (survivor, (time.monotonic() - t3) * 1000, writer.longest_since(t3)))
    finally:
        writer.stop.set()
        writer.join(130)
    with open(lab.region(primary)["log"]) as fh:
        log = fh.read()
    for ev in ("+sync-standby-names", "+sync-degraded", "+sync-restored"):
        assert ev in log, "no %s in the primary's log" % ev
    assert log.index("+sync-degraded") < log.index("+sync-restored")
    status, hist = get_json(lab.url(primary), "/v1/history")
    kinds = [e["detail"] for e in hist["events"] if e["kind"] == "sync-standbys"]
    assert any(d.endswith("async") or " async " in d for d in kinds), kinds
    print("  history: %s" % "; ".join(kinds))
    # Only the survivor could be promoted now; /v1/decision says so.
    d = decision(lab, [survivor, primary], assume_dead=primary)
    assert d and candidate_value(d).startswith(survivor), d
    print("  plan if %s died now: %s" % (primary, candidate_value(d)))
    print("  %d writes acknowledged, longest %.0f ms" % (writer.count(), writer.longest_since(0)))


def log_time(path, pattern):
    """Wall time (s) of the first log line matching pattern (lines start with the UTC time,
    2026-11-26T13:20:01.417Z), None if there is none."""
    with open(path) as fh:
        for line in fh:
            if re.search(pattern, line):
                return datetime.datetime.strptime(line.split(" ", 1)[0], "%Y-%m-%dT%H:%M:%S.%fZ") \
                    .replace(tzinfo=datetime.timezone.utc).timestamp()
    return None


def test_sync_kill_primary_zero_loss(lab):
    """replication.mode sync, writes flowing, the primary's whole region dies: the replicas are
    detached before the promotion, a synchronous standby is promoted, and every write the old
    primary acknowledged is on the new one."""
    lab.extra.append("--sync")
    lab.up(postgres=True)
    lab.wait_leader()
    wait_adopted(lab)
    replicas = ["eu-west-1", "ap-south-1"]
    wait_sync_set(lab, "us-east-2", replicas)
    assert psql(pg_port(lab, "us-east-2"), "CREATE TABLE it_seq (i int)").returncode == 0
    writer = Writer([pg_port(lab, r) for r in lab.regions])
    writer.start()
    try:
        wait_for("writes flowing", lambda: len(writer.acked) >= 50 or None, timeout=30)
        t0 = time.monotonic()
        lab.chaos("kill", "us-east-2", "--what", "region")
        acked_old = len(writer.acked)
        done = wait_step(lab, replicas, "done", 2, timeout=90)
        new = done["failover"]["to"]
        other = next(r for r in replicas if r != new)
        assert new in replicas and done["primary"] == new, done["failover"]
        n_before = len(writer.acked)
        wait_for("writes on the new primary", lambda: len(writer.acked) >= n_before + 50 or None,
                 timeout=60)
        print("  region killed -> failover to %s done %.0f ms after the kill; about %d writes "
              "acknowledged by the old primary before it died"
              % (new, (time.monotonic() - t0) * 1000, acked_old))
    finally:
        writer.stop.set()
        writer.join(60)
    have = psql_value(pg_port(lab, new), "SELECT string_agg(i::text, ',') FROM it_seq")
    rows = set(int(x) for x in (have or "").split(",") if x)
    missing = [seq for seq, _ in writer.acked if seq not in rows]
    print("  sync failover: %d writes acknowledged, %d on %s, %d missing; longest write gap "
          "%.0f ms" % (len(writer.acked), len(rows), new, len(missing), writer.gap_ms()))
    assert not missing, "acknowledged writes lost in a sync-mode failover: %s" % missing[:20]
    # The candidate was a synchronous standby, chosen under the rule: the receipt's reason is
    # the leader's; the detach of the other replica preceded the promotion.
    t_detach = log_time(lab.region(other)["log"], r"\+detaching region=%s epoch=2" % other)
    t_promote = log_time(lab.region(new)["log"], r"\+promoting region=%s epoch=2" % new)
    assert t_detach is not None and t_promote is not None and t_detach <= t_promote, \
        (t_detach, t_promote)
    print("  %s detached %.0f ms before %s ran pg_promote" % (other, (t_promote - t_detach) * 1000,
                                                             new))
    # The new primary keeps its own set: the other replica, once it follows.
    rep = wait_sync_set(lab, new, [other])
    print("  new primary %s waits on %s" % (new, rep["here"]["synchronous_standby_names"]))


TESTS = [test_kill_primary_region, test_kill_primary_postgres_only, test_paused_no_failover,
         test_switchover_under_load, test_lagging_replica_not_chosen,
         test_no_candidate_no_failover, test_new_primary_dies_too, test_primary_cannot_restart,
         test_rewind_fails_base_backup, test_replica_diverged_rewound, test_sync_standby_set,
         test_sync_kill_primary_zero_loss]


if __name__ == "__main__":
    sys.exit(test_lab.run_tests(TESTS, sys.argv, 50))
