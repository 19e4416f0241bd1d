#!/usr/bin/env python3
"""Integration tests with the named fault points (docs/operations.md "Fault points") and process
freezes: real coordinators and real PostgreSQL 15 through `aragora-chaos lab` (primary us-east-2,
streaming replicas eu-west-1 and ap-south-1). Needs a test build (meson -Dfault_points=true, as
scripts/test.sh builds ./build): `aragora-coordinator --version` says "(fault points)".

Every wait polls an observable state with a deadline; timings are measured and printed, and only
asserted against generous bounds (CI machines can be 10x slower).
Usage: test_faults.py [TEST_NAME ...]. Prints "N passed, M failed" last.
"""

import ctypes
import datetime
import json
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_lab  # noqa: E402
from test_lab import get_json, pid_gone, psql, wait_for  # noqa: E402
from test_failover import (any_cluster, first_write, own_view, pg_port,  # noqa: E402
                           running_postmasters, wait_adopted, wait_step)

FAULT_EXIT = 70  # AFC_FAULT_EXIT
SURVIVORS = ["eu-west-1", "ap-south-1"]
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    """Make the coordinators (orphaned when `aragora-chaos lab up` exits) our children, so that a
    crashed one's exit status can be read with waitpid. False if the kernel refuses."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def exit_status(pid, timeout=10.0):
    """The exit status of pid once it has exited, if it is our child; else None (not ours: then
    only pid_gone() can tell). A zombie thread-group leader is reaped only after its other
    threads (libuv's pool) are gone too, hence the wait."""
    def reaped():
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return ("not ours",)
        return (os.waitstatus_to_exitcode(status),) if got == pid else None
    code = wait_for("pid %d to be reaped" % pid, reaped, timeout=timeout)[0]
    return None if code == "not ours" else code


def arm(lab, region, *names, disarm=()):
    body = json.dumps({"arm": list(names), "disarm": list(disarm)}).encode()
    status, data = lab.post(region, "/v1/test/fault-points", body)
    assert status == 200, (region, status, data)
    armed = json.loads(data)["armed"]
    assert all(n in armed for n in names), (region, armed)
    return armed


def log_text(lab, region):
    with open(lab.region(region)["log"]) as fh:
        return fh.read()


def log_events(lab, region, name):
    """(wall time in seconds, line) of every "+NAME" event in the region's log."""
    out = []
    for line in log_text(lab, region).splitlines():
        parts = line.split(" ", 4)
        if len(parts) >= 4 and (parts[3] == "+" + name):
            when = datetime.datetime.strptime(parts[0], "%Y-%m-%dT%H:%M:%S.%fZ")
            out.append((when.replace(tzinfo=datetime.timezone.utc).timestamp(), line))
    return out


def history(lab, regions):
    for r in regions:
        status, doc = get_json(lab.url(r), "/v1/history", timeout=2.0)
        if status == 200:
            return doc
    return None


def blocking_now(lab, regions):
    for r in regions:
        status, d = get_json(lab.url(r), "/v1/decision", timeout=1.0)
        if status == 200 and d:
            return d.get("blocking"), [p for p in d.get("predicates", []) if not p.get("ok")]
    return None


def test_build_says_fault_points(lab):
    """The binary under test is a test build and says so (an operator can never run one
    unknowingly); an unknown name in ARAGORA_FAULT_POINTS is a start-up error."""
    out = test_lab.run([test_lab.COORD, "--version"]).stdout
    assert "(fault points)" in out, out
    lab.up()
    lab.wait_leader()
    status, data = lab.post(lab.regions[0], "/v1/test/fault-points", b'{"arm":["no-such-point"]}')
    assert status == 400, (status, data)
    status, data = lab.post(lab.regions[0], "/v1/test/fault-points", b'{"arm":["fail-promote"]}',
                            token="wrong")
    assert status == 401, (status, data)
    assert arm(lab, lab.regions[0], "fail-promote") == ["fail-promote"]
    assert arm(lab, lab.regions[0], disarm=["fail-promote"]) == []
    env = dict(os.environ, ARAGORA_FAULT_POINTS="crash-after-decide,typo-point")
    p = test_lab.run([test_lab.COORD, "--config", lab.region(lab.regions[0])["config"]], env=env,
                     check=False, timeout=10)
    assert p.returncode == 2 and "typo-point" in p.stderr, (p.returncode, p.stderr)


def test_crash_after_decide(lab):
    """The Raft leader crashes right after its FAILOVER_BEGIN is committed (exit 70, no cleanup);
    once a quorum is back, the next leader completes the SAME epoch: one promotion, epoch 2."""
    reaper = become_subreaper()
    lab.up(postgres=True)
    lab.wait_leader()
    wait_adopted(lab)
    # the table the first write after the failover goes into (first_write)
    assert psql(pg_port(lab, "us-east-2"), "CREATE TABLE it_writes (at timestamptz)").returncode == 0
    for r in lab.regions:
        arm(lab, r, "crash-after-decide")
    pids = {r: lab.region(r)["pid"] for r in SURVIVORS}
    t0 = time.monotonic()
    lab.chaos("kill", "us-east-2", "--what", "region")
    crashed = wait_for("the deciding leader to crash", lambda: next(
        (r for r in SURVIVORS if pid_gone(pids[r])), None), timeout=90)
    t_crash = time.monotonic()
    text = log_text(lab, crashed)
    assert "+fault-point name=crash-after-decide" in text, "no +fault-point event in the log"
    assert "+shutdown" not in text, "a crash point must not shut down cleanly"
    code = exit_status(pids[crashed])
    print("  region killed -> %s decided and crashed: %.0f ms (exit status %s%s)"
          % (crashed, (t_crash - t0) * 1000, code,
             "" if reaper else ", not our child: PR_SET_CHILD_SUBREAPER refused"))
    if reaper:
        assert code == FAULT_EXIT, code
    # The entry is committed (the leader and one follower have it), but the follower learns the
    # commit index only from the next leader: nothing more is visible until a quorum is back.
    # One coordinator of three is left: restart the crashed one (without the variable: the point
    # fired once and is not armed any more), and the next leader resumes the sequence.
    t1 = time.monotonic()
    lab.chaos("restart", crashed, "--what", "coordinator")
    lab.reload()
    done = wait_step(lab, SURVIVORS, "done", 2, timeout=120)
    leader = lab.wait_leader(SURVIVORS)
    print("  crashed leader restarted -> epoch 2 done by leader %s: %.0f ms"
          % (leader, (time.monotonic() - t1) * 1000))
    f = done["failover"]
    assert done["primary"] == f["to"] and done["epoch"] == 2, f
    print("  epoch 2 (decided in term %s at index %s) %s -> %s"
          % (f.get("decided_term"), f.get("decided_index"), f["from"], f["to"]))
    first_write(pg_port(lab, f["to"]), 30)
    # An observation window, not a wait for an event: for 3 s the epoch must stay 2 — a second,
    # wrong decision by the restarted ex-leader would show up as epoch 3.
    window_end = time.monotonic() + 3.0
    while time.monotonic() < window_end:
        d = any_cluster(lab, SURVIVORS)
        assert d is None or d["epoch"] == 2, ("a second failover happened", d and d["failover"])
        time.sleep(0.1)
    doc = any_cluster(lab, SURVIVORS)
    assert doc["epoch"] == 2 and doc["failover"]["epoch"] == 2, doc["failover"]
    assert not pid_gone(lab.region(crashed)["pid"]), "the restarted coordinator crashed again"
    h = history(lab, SURVIVORS)
    kinds = [e["kind"] for e in h["events"]]
    promoted = [e for e in h["events"] if e["kind"] == "failover-promoted"]
    print("  history: %s" % ", ".join(kinds[-8:]))
    assert len(promoted) == 1, promoted
    assert len(h["failovers"]) == 1 and h["failovers"][0]["epoch"] == 2, h["failovers"]
    here = sum(log_text(lab, r).count("+promoted-here") for r in lab.regions)
    assert here == 1, "pg_promote ran %d times" % here


def decision_candidate(lab):
    """Who the decision core would choose if us-east-2 died now (GET /v1/decision?assume_dead=),
    or None when this build's API cannot say."""
    for r in lab.regions:
        status, d = get_json(lab.url(r), "/v1/decision?assume_dead=us-east-2", timeout=2.0)
        if status == 200 and isinstance(d, dict):
            for k in ("to", "candidate"):
                if isinstance(d.get(k), str) and d[k] in SURVIVORS:
                    return d[k]
    return None


def test_fail_promote(lab):
    """pg_promote fails on the chosen candidate: epoch 2 ends ABORTED, and a new failover with
    epoch 3 promotes the other replica."""
    lab.up(postgres=True)
    lab.wait_leader()
    wait_adopted(lab)
    # the table the first write after the failover goes into (first_write)
    assert psql(pg_port(lab, "us-east-2"), "CREATE TABLE it_writes (at timestamptz)").returncode == 0
    asked = decision_candidate(lab)
    # With equal LSNs the core picks by priority, then member order: eu-west-1.
    candidate = asked or "eu-west-1"
    other = next(r for r in SURVIVORS if r != candidate)
    print("  chosen candidate: %s (%s)" % (candidate, "from /v1/decision?assume_dead=us-east-2"
                                           if asked else "expected: equal LSNs, member order"))
    arm(lab, candidate, "fail-promote")
    t0 = time.monotonic()
    lab.chaos("kill", "us-east-2", "--what", "region")
    aborted = wait_step(lab, SURVIVORS, "aborted", 2, timeout=90)
    assert aborted["failover"]["to"] == candidate, aborted["failover"]
    assert "+fault-point name=fail-promote" in log_text(lab, candidate)
    print("  region killed -> epoch 2 to %s aborted: %.0f ms"
          % (candidate, (time.monotonic() - t0) * 1000))
    try:
        done = wait_step(lab, SURVIVORS, "done", 3, timeout=90)
    except test_lab.Timeout:
        print("  no epoch 3; the decision is blocked by: %s" % (blocking_now(lab, SURVIVORS),))
        raise
    f = done["failover"]
    print("  epoch 3 done on %s: %.0f ms after the kill" % (f["to"], (time.monotonic() - t0) * 1000))
    assert f["to"] == other and done["primary"] == other and done["epoch"] == 3, f
    first_write(pg_port(lab, other), 30)
    wait_for("%s to stream from %s" % (candidate, other), lambda: (
        lambda d: d and (own_view(d, candidate) or {}).get("upstream") == other)(
        lab.cluster(candidate)), timeout=60)


def test_hang_after_decided(lab):
    """The candidate stops acting right after the decision (its coordinator still talks): the
    leader aborts the stuck failover at its deadline, and a new epoch promotes the other replica."""
    lab.up(postgres=True)
    lab.wait_leader()
    wait_adopted(lab)
    assert psql(pg_port(lab, "us-east-2"), "CREATE TABLE it_writes (at timestamptz)").returncode == 0
    candidate = decision_candidate(lab) or "eu-west-1"
    other = next(r for r in SURVIVORS if r != candidate)
    arm(lab, candidate, "hang-after-decided")
    t0 = time.monotonic()
    lab.chaos("kill", "us-east-2", "--what", "region")
    wait_step(lab, SURVIVORS, "decided", 2, timeout=90)
    aborted = wait_step(lab, SURVIVORS, "aborted", 2, timeout=90)
    assert aborted["failover"]["to"] == candidate, aborted["failover"]
    print("  candidate %s hung after the decision -> aborted by the leader %.0f ms after the kill"
          % (candidate, (time.monotonic() - t0) * 1000))
    done = wait_step(lab, SURVIVORS, "done", 3, timeout=90)
    assert done["failover"]["to"] == other and done["primary"] == other, done["failover"]
    print("  epoch 3 done on %s: %.0f ms after the kill" % (other, (time.monotonic() - t0) * 1000))
    first_write(pg_port(lab, other), 30)


class Writer(threading.Thread):
    """Inserts into one PostgreSQL in a loop; records the wall time of every acknowledged row."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.acked = []  # (wall time of the acknowledgement, seq)
        self.stop = threading.Event()

    def run(self):
        seq = 0
        while not self.stop.is_set():
            seq += 1
            try:
                p = psql(self.port, "INSERT INTO it_writes VALUES (now(), %d)" % seq, check=False)
            except Exception:  # a psql stuck past its timeout: try again
                continue
            if p.returncode == 0:
                self.acked.append((time.time(), seq))
            else:
                time.sleep(0.02)


def test_freeze_primary_region(lab):
    """SIGSTOP the primary region (coordinator + PostgreSQL) under a write load: the survivors
    fail over; after the thaw the old coordinator fences its PostgreSQL at once and the old
    primary rejoins as a replica of the new timeline. Prints the writes it acknowledged after
    the thaw (the in-database fence brings that to zero later; not asserted here)."""
    lab.up(postgres=True)
    lab.wait_leader()
    wait_adopted(lab)
    old = pg_port(lab, "us-east-2")
    assert psql(old, "CREATE TABLE it_writes (at timestamptz, seq int)").returncode == 0
    writer = Writer(old)
    writer.start()
    try:
        wait_for("the writer to get writes acknowledged", lambda: len(writer.acked) >= 20, timeout=30)
        t0 = time.monotonic()
        lab.chaos("freeze", "us-east-2", "--what", "region")
        done = wait_step(lab, SURVIVORS, "done", 2, timeout=90)
        new = done["failover"]["to"]
        print("  region frozen -> failover done on %s: %.0f ms"
              % (new, (time.monotonic() - t0) * 1000))
        time.sleep(1)
        t_thaw = time.time()
        lab.chaos("thaw", "us-east-2", "--what", "region")
        fenced = wait_for("+fenced in us-east-2's log after the thaw", lambda: [
            e for e in log_events(lab, "us-east-2", "fenced") if e[0] >= t_thaw - 0.01], timeout=60)
        fencing = [e for e in log_events(lab, "us-east-2", "fencing") if e[0] >= t_thaw - 0.01]
        t_fenced = fenced[0][0]
        print("  thaw -> +fencing %.0f ms, +fenced (PostgreSQL stopped) %.0f ms"
              % ((fencing[0][0] - t_thaw) * 1000 if fencing else -1, (t_fenced - t_thaw) * 1000))
        print("  | " + (fencing[0][1] if fencing else fenced[0][1]))
        assert t_fenced - t_thaw < 10, "fenced %.1f s after the thaw" % (t_fenced - t_thaw)

        def rejoined():
            d = lab.cluster(new)
            v = d and own_view(d, "us-east-2")
            return v if v and v["healthy"] and v["role"] == "replica" and v["upstream"] == new \
                and v["timeline"] == 2 else None
        wait_for("us-east-2 to rejoin as a replica of %s" % new, rejoined, timeout=120)
        print("  thaw -> rejoined as a replica of %s on timeline 2: %.0f ms"
              % (new, (time.time() - t_thaw) * 1000))
    finally:
        writer.stop.set()
        writer.join(timeout=30)
    after = [a for a in writer.acked if a[0] >= t_thaw] if "t_thaw" in locals() else []
    print("  writes acknowledged by the old primary: %d in all, %d after the thaw%s"
          % (len(writer.acked), len(after),
             " (last %.0f ms after the thaw)" % ((after[-1][0] - t_thaw) * 1000) if after else ""))
    doc = any_cluster(lab, SURVIVORS)
    assert doc["epoch"] == 2 and doc["primary"] == new, doc


def test_stop_deadline(lab):
    """A stop that cannot finish does not leave a half-stopped coordinator behind (operations.md
    "The daemon"): with hang-on-stop armed, SIGTERM's orderly stop never gets past its first stage,
    and the process exits by itself once its 30 s stop deadline has passed, naming that stage
    (+shutdown-forced stage=delivery reason=deadline, exit 1). Armed again after a restart, a
    second SIGTERM ends the stuck stop without waiting (reason=signal). The others keep a leader."""
    reaper = become_subreaper()
    lab.up()
    lab.wait_leader()
    victim = "ap-south-1"
    others = [r for r in lab.regions if r != victim]

    def stop_stuck(second_signal):
        arm(lab, victim, "hang-on-stop")
        pid = lab.region(victim)["pid"]
        stops = len(log_events(lab, victim, "shutdown"))
        t0 = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        wait_for("the stop to begin", lambda: len(log_events(lab, victim, "shutdown")) > stops)
        if second_signal:
            os.kill(pid, signal.SIGTERM)
        wait_for("pid %d to exit" % pid, lambda: pid_gone(pid), timeout=150)
        took = time.monotonic() - t0
        forced = log_events(lab, victim, "shutdown-forced")
        assert forced, "no +shutdown-forced event"
        code = exit_status(pid)
        print("  SIGTERM%s -> exit after %.1f s: %s (exit status %s%s)"
              % (" twice" if second_signal else "", took, forced[-1][1].split(" ", 3)[3], code,
                 "" if reaper else ", not our child: PR_SET_CHILD_SUBREAPER refused"))
        if reaper:
            assert code == 1, code
        return took, forced[-1][1]

    took, line = stop_stuck(False)
    assert "stage=delivery" in line and "reason=deadline" in line, line
    # the deadline, not an early exit: the stage really hung (timers never fire early)
    assert took >= 29.0, took
    lab.wait_leader(others)

    lab.chaos("restart", victim, "--what", "coordinator")
    lab.reload()
    wait_for(victim + " back", lambda: get_json(lab.url(victim), "/health/live")[0] == 200)
    took, line = stop_stuck(True)
    assert "stage=delivery" in line and "reason=signal" in line, line
    lab.wait_leader(others)


TESTS = [test_build_says_fault_points, test_crash_after_decide, test_fail_promote,
         test_freeze_primary_region, test_hang_after_decided, test_stop_deadline]


if __name__ == "__main__":
    sys.exit(test_lab.run_tests(TESTS, sys.argv, 70))
