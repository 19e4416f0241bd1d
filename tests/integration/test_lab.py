#!/usr/bin/env python3
"""Integration tests: real aragora-coordinator processes started through `aragora-chaos lab`.

Each test gets its own temporary directory and its own port range (below 32768), brings a lab up,
and always brings it down in a `finally`. Every wait is a poll with a deadline on an observable
event (an HTTP answer, a process exit), never a bare sleep standing in for one.

Usage: test_lab.py [TEST_NAME ...]   (no names: all tests)
Environment: ARAGORA_BIN_DIR (the meson build root holding aragora-coordinator, aragoractl and
aragora-chaos), ARAGORA_TEST_PORT_BASE (default 23000; test k uses the 100 ports from BASE + 100*k, or
from 1200 higher again if one of them is taken).
The last line printed is "N passed, M failed"; the exit status is non-zero on any failure.
"""

import hashlib
import http.client
import json
import random
import struct
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from afctest import Timeout, wait_for, run, pid_gone, ports_free  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BIN_DIR = os.environ.get("ARAGORA_BIN_DIR") or os.path.join(HERE, "..", "..", "build")
CHAOS = os.path.join(BIN_DIR, "aragora-chaos")
CTL = os.path.join(BIN_DIR, "aragoractl")
COORD = os.path.join(BIN_DIR, "aragora-coordinator")
PSQL = os.path.join(os.environ.get("ARAGORA_PG_BIN_DIR", "/usr/lib/postgresql/15/bin"), "psql")
PORT_BASE = int(os.environ.get("ARAGORA_TEST_PORT_BASE", "23000"))


def request(url, method="GET", path="/", body=None, headers=None, timeout=2.0):
    """One HTTP request. Returns (status, bytes), or (None, None) when the node did not answer."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (OSError, http.client.HTTPException):
        return None, None
    finally:
        conn.close()


def get_json(url, path, timeout=2.0):
    status, data = request(url, "GET", path, timeout=timeout)
    if status is None:
        return None, None
    try:
        return status, json.loads(data)
    except ValueError:
        return status, None


def pick_base_port(k):
    """Test k's 100 ports: PORT_BASE + 100*k, or the same slot in a later block of 1200 if another
    process (a lab left running, a colleague's test run) holds one of them."""
    base = PORT_BASE + 100 * k
    while base + 100 < 32768:
        if ports_free(base, 100):
            return base
        base += 1200
    raise AssertionError("no free port range for test %d below 32768" % k)


class Lab:
    """A lab in its own temporary directory."""

    def __init__(self, name, base_port, extra=()):
        self.dir = tempfile.mkdtemp(prefix="aragora-it-%s-" % name)
        self.base_port = base_port
        self.extra = list(extra)
        self.info = None

    def chaos(self, *args, check=True, timeout=90):
        return run([CHAOS, "lab", *args, "--dir", self.dir], check=check, timeout=timeout)

    def up(self, postgres=False):
        """Bring the lab up. Without postgres=True it is a coordinator-only lab (--no-postgres):
        most tests are about the coordinators, and PostgreSQL would only make them slower."""
        pg = [] if postgres else ["--no-postgres"]
        p = self.chaos("up", "--base-port", str(self.base_port), *pg, *self.extra)
        self.reload()
        return p

    def reload(self):
        with open(os.path.join(self.dir, "lab.json")) as f:
            self.info = json.load(f)

    def down(self):
        if os.path.exists(os.path.join(self.dir, "lab.json")):
            self.chaos("down", check=False, timeout=60)

    def cleanup(self, keep):
        if keep:
            print("  lab directory kept: %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def regions(self):
        return [r["name"] for r in self.info["regions"]]

    def region(self, name):
        return next(r for r in self.info["regions"] if r["name"] == name)

    def url(self, name):
        return self.region(name)["api_url"]

    def token(self):
        with open(self.info["token_file"]) as f:
            return f.read().strip()

    def cluster(self, name, timeout=2.0):
        status, doc = get_json(self.url(name), "/v1/cluster", timeout=timeout)
        return doc if status == 200 else None

    def ready_leaders(self, names=None):
        """Regions whose /leader answers 200 right now."""
        return [n for n in (names or self.regions)
                if request(self.url(n), "GET", "/leader", timeout=1.0)[0] == 200]

    def wait_leader(self, names=None, timeout=20.0):
        def one():
            leaders = self.ready_leaders(names)
            return leaders[0] if len(leaders) == 1 else None
        return wait_for("exactly one ready leader among %s" % (names or self.regions), one,
                        timeout=timeout)

    def post(self, name, path, body=b"{}", token=True, timeout=5.0):
        headers = {"Content-Type": "application/json"}
        if token is True:
            headers["Authorization"] = "Bearer " + self.token()
        elif token:
            headers["Authorization"] = "Bearer " + token
        return request(self.url(name), "POST", path, body=body, headers=headers, timeout=timeout)

    def ctl(self, names, *args, env_extra=None, check=True):
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARAGORA_API_TOKEN")}
        env.update(env_extra or {})
        endpoints = ",".join(self.url(n) for n in names)
        return run([CTL, "--endpoint", endpoints, *args], env=env, check=check, timeout=30)

    def wait_all(self, what, pred, names=None, timeout=20.0):
        """Wait until pred(cluster_doc) holds on every region; returns {region: doc}."""
        def check():
            docs = {n: self.cluster(n) for n in (names or self.regions)}
            if all(d is not None and pred(d) for d in docs.values()):
                return docs
            return None
        return wait_for(what, check, timeout=timeout)

    def print_logs(self, lines=25):
        for r in (self.info or {}).get("regions", []):
            try:
                with open(r["log"]) as f:
                    tail = f.read().splitlines()[-lines:]
            except OSError:
                continue
            print("  --- %s (last %d lines of %s)" % (r["name"], lines, r["log"]))
            for line in tail:
                print("  | " + line)


def state_of(doc):
    """The replicated state a node reports: what must be equal on every caught-up node."""
    return (doc["epoch"], doc["paused"], doc["primary"], doc["node"]["applied_index"])


# ---- tests ----

def test_leader_elected(lab):
    lab.up()
    assert len(lab.regions) == 3, lab.regions
    leader = lab.wait_leader()
    docs = lab.wait_all("every node to know leader %s" % leader,
                        lambda d: (d.get("leader") or {}).get("region") == leader)
    for name, doc in docs.items():
        assert doc["node"]["region"] == name, doc
        members = doc["members"]
        assert len(members) == 3, members
        assert sorted(m["region"] for m in members) == sorted(lab.regions), members
        flagged = [m["region"] for m in members if m["leader"]]
        assert flagged == [leader], (name, flagged)
        assert [m["region"] for m in members if m["self"]] == [name], members
    # The CLI, from a follower, and skipping an endpoint that is down.
    follower = next(n for n in lab.regions if n != leader)
    dead = "http://127.0.0.1:%d" % (lab.base_port + 99)
    p = run([CTL, "--endpoint", dead + "," + lab.url(follower), "status"])
    for name in lab.regions:
        assert name in p.stdout, p.stdout
    assert re.search(r"^leader:\s+%s\b" % re.escape(leader), p.stdout, re.M), p.stdout
    doc = json.loads(lab.ctl([follower], "status", "--json").stdout)
    assert len(doc["members"]) == 3 and doc["leader"]["region"] == leader, doc
    p = lab.ctl([follower], "leader")
    # the leader's API as the follower reaches it: directly, or through the lab's fault proxy
    # (127.1.<from>.<to>, docs/chaos.md), on the leader's own port
    name, url = p.stdout.split()[:2]
    assert name == leader and re.fullmatch(r"http://127\.(0\.0\.1|1\.\d+\.\d+):%s"
                                           % lab.url(leader).rsplit(":", 1)[1], url), p.stdout
    p = run([CTL, "--endpoint", dead, "status"], check=False)
    assert p.returncode == 3, (p.returncode, p.stderr)
    # A frozen node accepts the connection and says nothing: the CLI must time out and move on.
    lab.chaos("freeze", follower)
    try:
        t0 = time.monotonic()
        p = lab.ctl([follower, leader], "status", "--json")
        took = time.monotonic() - t0
    finally:
        lab.chaos("thaw", follower)
    assert json.loads(p.stdout)["node"]["region"] == leader, p.stdout
    print("  aragoractl skipped the frozen %s after %.1f s" % (follower, took))
    p = lab.chaos("status")
    assert p.stdout.count(" alive ") == 4, p.stdout  # three coordinators and the fault proxy


def test_leader_failover(lab):
    lab.up()
    leader = lab.wait_leader()
    status, _ = lab.post(leader, "/v1/pause", b'{"reason":"failover test"}')
    assert status == 200, status
    lab.wait_all("paused on every node", lambda d: d["paused"] is True)
    survivors = [n for n in lab.regions if n != leader]
    t0 = time.monotonic()
    lab.chaos("kill", leader)
    new_leader = lab.wait_leader(survivors, timeout=30)
    failover_ms = (time.monotonic() - t0) * 1000.0
    print("  leader failover: %.0f ms (SIGKILL of %s -> /leader 200 on %s)"
          % (failover_ms, leader, new_leader))
    docs = wait_for("both survivors to report the same state", lambda: (
        lambda ds: ds if all(ds.values()) and len({state_of(d) for d in ds.values()}) == 1
        and all((d.get("leader") or {}).get("region") == new_leader for d in ds.values())
        else None)({n: lab.cluster(n) for n in survivors}), timeout=20)
    for doc in docs.values():
        assert doc["paused"] is True, doc
    print("  survivors agree: epoch=%s paused=%s primary=%s applied_index=%s"
          % state_of(docs[survivors[0]]))
    assert lab.ready_leaders(survivors) == [new_leader]


def test_restart_catches_up(lab):
    lab.up()
    leader = lab.wait_leader()
    lab.chaos("kill", leader)
    survivors = [n for n in lab.regions if n != leader]
    new_leader = lab.wait_leader(survivors, timeout=30)
    for path in ("/v1/pause", "/v1/resume", "/v1/pause"):
        status, body = lab.post(new_leader, path)
        assert status == 200, (path, status, body)
    target = lab.cluster(new_leader)
    lab.chaos("restart", leader)
    lab.reload()
    docs = lab.wait_all("%s to catch up to applied index %d" % (leader, target["node"]["applied_index"]),
                        lambda d: d["node"]["applied_index"] >= target["node"]["applied_index"]
                        and d["paused"] is True, names=[leader], timeout=30)
    doc = docs[leader]
    assert doc["epoch"] == target["epoch"], (doc, target)
    assert (doc.get("leader") or {}).get("region") == new_leader, doc
    print("  %s caught up: applied_index %d (leader had %d)"
          % (leader, doc["node"]["applied_index"], target["node"]["applied_index"]))


def snapshot_indexes(data_dir):
    """Indexes of the snapshots in a libraft data directory (snapshot-TERM-INDEX-TIMESTAMP)."""
    out = []
    for name in os.listdir(data_dir):
        m = re.match(r"snapshot-(\d+)-(\d+)-(\d+)$", name)
        if m:
            out.append(int(m.group(2)))
    return out


def test_snapshot_catch_up(lab):
    threshold, trailing = 8, 2
    lab.extra = ["--snapshot-threshold", str(threshold), "--snapshot-trailing", str(trailing)]
    lab.up()
    leader = lab.wait_leader()
    follower = next(n for n in lab.regions if n != leader)
    before = lab.cluster(follower)["node"]["applied_index"]
    lab.chaos("kill", follower)
    # Enough entries that the leader's snapshot passes the follower's last index plus the
    # trailing entries kept, so the follower can only catch up through InstallSnapshot.
    n_ops = 0
    leader_dir = lab.region(leader)["data_dir"]
    while max(snapshot_indexes(leader_dir) or [0]) <= before + trailing + threshold:
        assert n_ops < 200, "no snapshot on %s after %d commands" % (leader, n_ops)
        status, body = lab.post(leader, "/v1/pause" if n_ops % 2 == 0 else "/v1/resume")
        assert status == 200, (status, body)
        n_ops += 1
    if n_ops % 2 == 1:
        assert lab.post(leader, "/v1/resume")[0] == 200
        n_ops += 1
    target = lab.cluster(leader)
    print("  %d commands while %s was down (its applied index %d); leader snapshots at %s"
          % (n_ops, follower, before, sorted(snapshot_indexes(leader_dir))))
    t0 = time.monotonic()
    lab.chaos("restart", follower)
    lab.reload()
    # Messages the leader queued while the follower was down reach it first (an old AppendEntries
    # that makes it take its own snapshot, an older InstallSnapshot), and libraft 0.15 drops an
    # InstallSnapshot that arrives meanwhile; the leader re-sends it after install_snapshot_timeout,
    # which node.c sets to 2 election timeouts (2 s here; libraft's own default of 30 s made this
    # test flaky). 30 s leaves a >10x margin for a loaded machine.
    docs = lab.wait_all("%s to catch up through a snapshot" % follower,
                        lambda d: d["node"]["applied_index"] >= target["node"]["applied_index"],
                        names=[follower], timeout=30)
    caught_up_s = time.monotonic() - t0
    doc = docs[follower]
    assert doc["paused"] is False and doc["epoch"] == target["epoch"], (doc, target)
    snaps = snapshot_indexes(lab.region(follower)["data_dir"])
    assert snaps and max(snaps) > before, "no snapshot stored on %s: %s" % (follower, snaps)
    print("  %s caught up in %.1f s: applied_index %d, snapshots %s"
          % (follower, caught_up_s, doc["node"]["applied_index"], sorted(snaps)))


def test_pause_forwarded(lab):
    lab.up()
    leader = lab.wait_leader()
    f1, f2 = [n for n in lab.regions if n != leader]
    p = lab.ctl([f1], "--token-file", lab.info["token_file"], "pause", "--reason", "it-test")
    assert "paused" in p.stdout, p.stdout
    lab.wait_all("paused=true on every node", lambda d: d["paused"] is True)
    p = lab.ctl([f2], "resume", env_extra={"ARAGORA_API_TOKEN": lab.token()})
    lab.wait_all("paused=false on every node", lambda d: d["paused"] is False)
    p = lab.ctl([f2], "status")
    assert re.search(r"^paused:\s+no", p.stdout, re.M), p.stdout


def test_frozen_leader(lab):
    lab.up()
    leader = lab.wait_leader()
    survivors = [n for n in lab.regions if n != leader]
    t0 = time.monotonic()
    lab.chaos("freeze", leader)
    try:
        # The fault lasts 5 s: its duration is the point, not a stand-in for an event. Meanwhile,
        # note when the survivors elect a leader (informative: under load it may take longer).
        new_leader = None
        while new_leader is None and time.monotonic() - t0 < 5.0:
            found = lab.ready_leaders(survivors)
            new_leader = found[0] if len(found) == 1 else None
            time.sleep(0.05)
        if new_leader:
            print("  while %s was frozen, %s became leader after %.0f ms"
                  % (leader, new_leader, (time.monotonic() - t0) * 1000))
        else:
            print("  no new ready leader among the survivors within the 5 s freeze")
        time.sleep(max(0.0, 5.0 - (time.monotonic() - t0)))
    finally:
        lab.chaos("thaw", leader)
    overlaps = []

    def settled():
        docs = {n: lab.cluster(n) for n in lab.regions}
        if not all(docs.values()):
            return None
        claims = [(d["node"]["term"], n) for n, d in docs.items()
                  if d["node"]["raft_state"].lower() == "leader" and d["node"]["leader_ready"]]
        terms = [t for t, _ in claims]
        assert len(terms) == len(set(terms)), "two ready leaders in one term: %s" % claims
        if len(claims) > 1:
            overlaps.append(claims)
        ready = lab.ready_leaders()
        agreed = {(d.get("leader") or {}).get("region") for d in docs.values()}
        if len(ready) == 1 and agreed == {ready[0]} and len(claims) == 1:
            return ready[0]
        return None
    final = wait_for("exactly one ready leader after the thaw", settled, timeout=20)
    assert not pid_gone(lab.region(leader)["pid"]), "%s died after the thaw" % leader
    print("  after the thaw: %s is the one ready leader%s"
          % (final, " (stale claims seen: %s)" % overlaps if overlaps else ""))


def write_config(path, base_port, data_dir, election="1000", extra=""):
    text = """\
region: us-east-2
data_dir: "%(data)s"
members:
  - name: us-east-2
    id: 1
    raft: "127.0.0.1:%(raft)d"
    api: "http://127.0.0.1:%(api)d"
raft:
  election_timeout_ms: %(election)s
  heartbeat_timeout_ms: 100
api:
  listen: "127.0.0.1:%(api)d"
cluster:
  secret_file: "%(secret)s"
log:
  level: info
  format: text
%(extra)s""" % {"data": data_dir, "raft": base_port + 1, "api": base_port, "election": election,
                "extra": extra, "secret": path + ".secret"}
    with open(path + ".secret", "w") as f:
        f.write("integration-test-cluster-secret\n")
    with open(path, "w") as f:
        f.write(text)
    return text


def test_malformed_config(lab):
    d = lab.dir
    data = os.path.join(d, "data")
    good = os.path.join(d, "good.yaml")
    write_config(good, lab.base_port, data)
    p = run([COORD, "--config", good, "--check-config"], check=False, timeout=20)
    assert p.returncode == 0, ("valid config refused", p.returncode, p.stderr)
    cases = [
        # (file name, election value, extra text, key named in the message and on its line)
        ("bad-int.yaml", "fast", "", "election_timeout_ms"),
        ("unknown-key.yaml", "1000", "bogus_key: 1\n", "bogus_key"),
    ]
    for fname, election, extra, key in cases:
        path = os.path.join(d, fname)
        text = write_config(path, lab.base_port, data, election=election, extra=extra)
        line = next(i for i, l in enumerate(text.splitlines(), 1) if l.strip().startswith(key))
        for args in (["--config", path], ["--config", path, "--check-config"]):
            p = run([COORD, *args], check=False, timeout=20)
            assert p.returncode == 2, (args, p.returncode, p.stderr)
            prefix = "%s:%d:" % (path, line)
            assert prefix in p.stderr and key in p.stderr and "expected" in p.stderr, \
                (args, prefix, key, p.stderr)
            print("  %s -> exit 2: %s" % (fname, p.stderr.strip().splitlines()[-1]))
    broken = os.path.join(d, "broken.yaml")
    with open(broken, "w") as f:
        f.write("region: us-east-2\nmembers: [\n  - name: x\n")
    p = run([COORD, "--config", broken], check=False, timeout=20)
    assert p.returncode == 2 and broken + ":" in p.stderr, (p.returncode, p.stderr)
    print("  broken.yaml -> exit 2: %s" % p.stderr.strip().splitlines()[-1])
    assert not os.path.exists(data) or not os.listdir(data), "a refused config touched %s" % data


def test_data_dir_locked(lab):
    lab.up()
    lab.wait_leader()
    first = lab.region("us-east-2")
    with open(first["config"]) as f:
        text = f.read()
    # Same data directory; other ports, so that only the data directory is shared.
    api2, raft2 = lab.base_port + 90, lab.base_port + 91
    text = text.replace(first["api_url"], "http://127.0.0.1:%d" % api2)
    text = text.replace('"%s"' % first["raft_address"], '"127.0.0.1:%d"' % raft2)
    text = text.replace('listen: "127.0.0.1:%d"' % first["api_port"], 'listen: "127.0.0.1:%d"' % api2)
    second = os.path.join(lab.dir, "second.yaml")
    with open(second, "w") as f:
        f.write(text)
    p = subprocess.run([COORD, "--config", second], capture_output=True, text=True, timeout=20)
    out = p.stdout + p.stderr
    print("  second daemon: exit %d: %s" % (p.returncode, (out.strip().splitlines() or [""])[-1]))
    assert p.returncode != 0, out
    assert "locked" in out.lower(), out
    assert request(first["api_url"], "GET", "/health/live")[0] == 200
    assert os.path.exists("/proc/%d" % first["pid"]) and not pid_gone(first["pid"])
    lab.wait_leader()


def test_unauthorized(lab):
    lab.up()
    leader = lab.wait_leader()
    follower = next(n for n in lab.regions if n != leader)
    for name in (leader, follower):
        for token in (None, "wrong-token"):
            status, body = lab.post(name, "/v1/pause", token=token)
            assert status == 401, (name, token, status, body)
            doc = json.loads(body)
            assert "error" in doc and "message" in doc, doc
    p = lab.ctl([follower], "pause", check=False)
    assert p.returncode == 1 and "401" in p.stderr, (p.returncode, p.stderr)
    lab.wait_all("still not paused", lambda d: d["paused"] is False)
    status, body = lab.post(follower, "/v1/pause")
    assert status == 200, (status, body)
    lab.wait_all("paused after an authorized request", lambda d: d["paused"] is True)


def raw_exchange(port, data, timeout=3.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while True:
                c = s.recv(65536)
                if not c:
                    break
                chunks.append(c)
        except (socket.timeout, ConnectionResetError):
            pass
        return b"".join(chunks)


def test_bad_requests(lab):
    lab.up()
    leader = lab.wait_leader()
    follower = next(n for n in lab.regions if n != leader)
    for name in (leader, follower):
        url = lab.url(name)
        cases = [
            ("POST", "/v1/pause", b"{not json", True),
            ("POST", "/v1/pause", b'["an array"]', True),
            ("GET", "/no/such/path", None, False),
            ("POST", "/v1/cluster", b"{}", False),
            ("POST", "/v1/pause", b"x" * (2 << 20), True),
        ]
        for method, path, body, auth in cases:
            headers = {"Content-Type": "application/json"}
            if auth:
                headers["Authorization"] = "Bearer " + lab.token()
            status, data = request(url, method, path, body=body, headers=headers, timeout=5)
            if status is None and len(body or b"") > (1 << 20):
                continue  # refusing an oversized body by closing the connection is fine
            assert status is not None and 400 <= status < 500, (name, method, path, status, data)
            doc = json.loads(data)
            assert isinstance(doc.get("error"), str) and "message" in doc, doc
        port = lab.region(name)["api_port"]
        raw_exchange(port, b"GARBAGE \x00\xff\r\n\r\n")
        raw_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n")
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET /health/live HTTP/1.1\r\nHo")  # and hang up mid-request
        assert request(url, "GET", "/health/live")[0] == 200
        assert not pid_gone(lab.region(name)["pid"])
    lab.wait_all("paused still false after the bad requests", lambda d: d["paused"] is False)
    assert lab.wait_leader() == leader


SEGMENT = re.compile(r"^(\d{16})-(\d{16})$")


def dir_digest(path):
    """{file name: sha256} of every file in a directory."""
    out = {}
    for name in sorted(os.listdir(path)):
        with open(os.path.join(path, name), "rb") as f:
            out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


def test_corrupt_data_dir(lab):
    """A corrupt Raft log is refused with a message naming the file, and nothing is repaired."""
    lab.up()
    leader = lab.wait_leader()
    victim = next(n for n in lab.regions if n != leader)
    for path in ("/v1/pause", "/v1/resume", "/v1/pause", "/v1/resume"):
        assert lab.post(leader, path)[0] == 200, path
    target = lab.cluster(leader)["node"]["applied_index"]
    # A restart closes the open segment the entries so far were written to; then corrupt that one.
    lab.chaos("restart", victim)
    lab.reload()
    lab.wait_all("%s back at index %d" % (victim, target),
                 lambda d: d["node"]["applied_index"] >= target, names=[victim], timeout=30)
    lab.chaos("down")
    data = lab.region(victim)["data_dir"]
    closed = sorted((int(m.group(2)), name) for name in os.listdir(data)
                    for m in [SEGMENT.match(name)] if m)
    assert closed and closed[-1][0] > 1, "no closed segment with entries in %s: %s" % (
        data, os.listdir(data))
    segment = closed[-1][1]
    with open(os.path.join(data, segment), "r+b") as f:
        blob = bytearray(f.read())
        blob[len(blob) // 2] ^= 0xFF
        f.seek(0)
        f.write(blob)
    before = dir_digest(data)
    p = run([COORD, "--config", lab.region(victim)["config"]], check=False, timeout=30)
    last = (p.stderr.strip().splitlines() or [""])[-1]
    print("  corrupt %s -> exit %d: %s" % (segment, p.returncode, last))
    assert p.returncode == 3, (p.returncode, p.stderr)
    assert segment in p.stderr and "refused" in p.stderr, p.stderr
    after = dir_digest(data)
    changed = sorted(n for n in set(before) | set(after)
                     if n != "lock" and before.get(n) != after.get(n))  # lock holds the last pid
    assert not changed, "the refused data directory was modified: %s" % changed


def raft_garbage(rng):
    """Byte strings a confused or hostile peer might send to a Raft port."""
    hello = struct.pack("<QQQ", 1, 2, 16) + b"127.0.0.1:9\0\0\0\0\0"  # libraft 0.15's own handshake
    out = [
        bytes(rng.randrange(256) for _ in range(64)),
        b"\0" * 4096,
        hello + bytes(rng.randrange(256) for _ in range(512)),
        hello + struct.pack("<QQ", 1, 1 << 40) + b"\1" * 64,  # a frame claiming a terabyte
        b"AFCRAFT1" + bytes(rng.randrange(256) for _ in range(200)),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ]
    out += [hello + struct.pack("<QQ", t, 64) + bytes(rng.randrange(256) for _ in range(64))
            for t in range(1, 10)]
    return out


def test_garbage_peer(lab):
    """A peer speaking garbage on the Raft port is dropped; nobody crashes, the group goes on."""
    lab.up()
    leader = lab.wait_leader()
    rng = random.Random(2026)
    for name in lab.regions:
        host, port = lab.region(name)["raft_address"].rsplit(":", 1)
        for blob in raft_garbage(rng):
            try:
                raw_exchange(int(port), blob, timeout=3.0)
            except OSError:
                pass  # being refused or reset is a fine answer to garbage
    for name in lab.regions:
        assert not pid_gone(lab.region(name)["pid"]), "%s died after garbage on its Raft port" % name
    # The group still works: one ready leader, and a change commits on every node.
    assert lab.wait_leader() == leader
    assert lab.post(leader, "/v1/pause")[0] == 200
    lab.wait_all("paused everywhere after the garbage", lambda d: d["paused"] is True)
    dropped = 0
    for r in lab.info["regions"]:
        with open(r["log"]) as f:
            dropped += f.read().count("dropped connection")
    print("  %d garbage connections dropped, all 3 coordinators alive" % dropped)
    assert dropped > 0, "no 'dropped connection' in the logs"


def test_lab_down_no_process(lab):
    lab.up()
    lab.wait_leader()
    pids = [r["pid"] for r in lab.info["regions"]] + [lab.info["proxy"]["pid"]]
    lab.chaos("freeze", lab.regions[0])  # down must also stop a frozen coordinator
    p = lab.chaos("down", timeout=60)
    assert "stopped 3" in p.stdout, p.stdout
    alive = [pid for pid in pids if not pid_gone(pid)]
    assert not alive, "processes left after lab down (coordinators, fault proxy): %s" % alive
    p = lab.chaos("down", timeout=60)  # safe to repeat
    p = lab.chaos("status")
    assert p.stdout.count(" dead ") == 4, p.stdout  # three coordinators and the fault proxy


def psql(port, sql, check=True):
    """One statement through psql over TCP (trust auth, user postgres); returns the process."""
    conninfo = "host=127.0.0.1 port=%d user=postgres dbname=postgres connect_timeout=3" % port
    return run([PSQL, "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", sql],
               timeout=20, check=check)


def psql_value(port, sql):
    """The output of sql, stripped, or None when it failed (server down, table not there yet)."""
    p = psql(port, sql, check=False)
    return p.stdout.strip() if p.returncode == 0 else None


def streaming_count(port):
    v = psql_value(port, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
    return int(v) if v is not None else -1


def pg_children(ppid):
    """PIDs of the processes whose parent is ppid (a postmaster's children)."""
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2:].split()[1]) == ppid:
            kids.append(int(d))
    return kids


def pg_status_line(lab, region):
    """The region's line in the POSTGRES table of `lab status`."""
    out = lab.chaos("status").stdout
    table = out[out.index("POSTGRES"):]
    return next(line for line in table.splitlines() if line.startswith(region + " "))


def test_lab_postgres(lab):
    t0 = time.monotonic()
    lab.up(postgres=True)
    print("  lab up with 3 PostgreSQL servers: %.1f s" % (time.monotonic() - t0))
    regions = lab.info["regions"]
    ports = {}
    for i, r in enumerate(regions):
        pg = r["postgres"]
        assert {"host", "port", "data_dir", "pid", "log", "role"} <= set(pg), pg
        assert pg["host"] == "127.0.0.1" and pg["port"] == lab.base_port + 10 * i + 2, pg
        assert pg["role"] == ("primary" if i == 0 else "replica"), pg
        assert pg["data_dir"] == os.path.join(lab.dir, r["name"], "pgdata"), pg
        assert not pid_gone(pg["pid"]), pg
        ports[r["name"]] = pg["port"]
        want = "f" if i == 0 else "t"
        assert psql_value(pg["port"], "SELECT pg_is_in_recovery()") == want, r["name"]
        run([COORD, "--check-config", "--config", r["config"]])
        with open(r["config"]) as f:
            text = f.read()
        assert 'options: "%s"' % pg["options"] in text, text
        assert "port %d" % pg["port"] not in open(os.path.join(pg["data_dir"], "postgresql.conf")).read()
    primary, replicas = regions[0]["name"], [r["name"] for r in regions[1:]]
    for name in replicas:
        assert " replica " in pg_status_line(lab, name)
    assert " primary " in pg_status_line(lab, primary)

    # a write on the primary reaches both replicas
    t1 = time.monotonic()
    psql(ports[primary], "CREATE TABLE lab_probe (id int PRIMARY KEY); INSERT INTO lab_probe VALUES (1)")
    for name in replicas:
        wait_for("%s to replay the write" % name,
                 lambda n=name: psql_value(ports[n], "SELECT count(*) FROM lab_probe") == "1",
                 timeout=15, interval=0.1)
    print("  write replicated to both replicas in %.2f s" % (time.monotonic() - t1))
    wait_for("2 replicas streaming", lambda: streaming_count(ports[primary]) == 2, timeout=15)

    # kill a replica's postmaster: its children follow it, the coordinator stays
    victim = replicas[0]
    vic = lab.region(victim)
    old_pid = vic["postgres"]["pid"]
    kids = pg_children(old_pid)
    assert kids, "postmaster %d has no children?" % old_pid
    # Paused, the coordinators leave PostgreSQL alone (they would restart it themselves
    # otherwise): this test is about the lab's own process control.
    status, body = lab.post(victim, "/v1/pause", b'{"reason": "lab process-control test"}')
    assert status == 200, (status, body)
    lab.wait_all("paused everywhere", lambda d: d["paused"] is True)
    lab.chaos("kill", victim, "--what", "postgres")
    assert pid_gone(old_pid)
    left = [k for k in kids if not pid_gone(k)]
    assert not left, "children of the killed postmaster still running: %s" % left
    assert not pid_gone(vic["pid"]), "--what postgres must not touch the coordinator"
    assert " dead " in pg_status_line(lab, victim)
    wait_for("primary to see 1 replica", lambda: streaming_count(ports[primary]) == 1, timeout=15)

    # restart: it comes back as a replica (the data directory decides) and streams again
    t2 = time.monotonic()
    lab.chaos("restart", victim, "--what", "postgres")
    lab.reload()
    new_pid = lab.region(victim)["postgres"]["pid"]
    assert new_pid != old_pid and not pid_gone(new_pid)
    wait_for("2 replicas streaming again", lambda: streaming_count(ports[primary]) == 2, timeout=20)
    print("  replica restarted and streaming again in %.2f s" % (time.monotonic() - t2))
    assert psql_value(ports[victim], "SELECT pg_is_in_recovery()") == "t"
    line = pg_status_line(lab, victim)
    assert " alive " in line and " replica " in line, line

    # freeze and thaw reach the postmaster and its children
    lab.chaos("freeze", replicas[1], "--what", "postgres")
    assert " stopped " in pg_status_line(lab, replicas[1])
    lab.chaos("thaw", replicas[1], "--what", "postgres")
    assert " alive " in pg_status_line(lab, replicas[1])

    # down stops every PostgreSQL (and their children) by PID
    lab.reload()
    postmasters = [r["postgres"]["pid"] for r in lab.info["regions"]]
    children = [k for pm in postmasters for k in pg_children(pm)]
    lab.chaos("freeze", primary, "--what", "region")  # down must also stop frozen ones
    p = lab.chaos("down", timeout=90)
    assert "3 PostgreSQL servers" in p.stdout, p.stdout
    left = [pid for pid in postmasters + children if not pid_gone(pid)]
    assert not left, "postgres processes left after lab down: %s" % left
    p = lab.chaos("down", timeout=60)  # safe to repeat
    assert "0 PostgreSQL servers" in p.stdout, p.stdout


def dig(port, name, rtype):
    """The authoritative answer's values at the lab's PowerDNS (TXT without quotes)."""
    p = run(["dig", "@127.0.0.1", "-p", str(port), "+norecurse", "+short", "+time=2", "+tries=1",
             name, rtype], timeout=15, check=False)
    if p.returncode != 0:
        return None
    return [line.strip().strip('"') for line in p.stdout.splitlines() if line.strip()]


def redis_ping(port):
    p = run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "ping"], timeout=10, check=False)
    return p.stdout.strip() if p.returncode == 0 else None


def proc_user(pid):
    """The real uid of a running process."""
    with open("/proc/%d/status" % pid) as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Uid:"))


def test_lab_dns_redis(lab):
    t0 = time.monotonic()
    lab.up(postgres=True)
    print("  lab up with PostgreSQL, Redis and PowerDNS: %.1f s" % (time.monotonic() - t0))
    info, regions = lab.info, lab.info["regions"]
    n = len(regions)
    dns = info["dns"]
    assert {"provider", "dns_port", "api_port", "api_url", "name", "zone", "pid",
            "tsig_name"} <= set(dns), dns
    assert dns["provider"] == "powerdns" and dns["zone"] == "aragora.lab.", dns
    assert dns["name"] == "primary.aragora.lab." and dns["tsig_name"] == "aragora-lab-key.", dns
    assert dns["dns_port"] == lab.base_port + 10 * n, dns
    assert dns["api_port"] == lab.base_port + 10 * n + 1, dns
    assert dns["api_url"] == "http://127.0.0.1:%d" % dns["api_port"], dns
    for name in ("pdns-api-key", "tsig-secret", "pdns/pdns.conf"):
        mode = os.stat(os.path.join(lab.dir, name)).st_mode & 0o777
        assert mode == 0o600, "%s has mode %o" % (name, mode)
    for i, r in enumerate(regions):
        assert r["address"] == "127.0.10.%d" % (i + 1), r
        assert r["redis"]["port"] == lab.base_port + 10 * i + 3, r["redis"]
        assert not pid_gone(r["redis"]["pid"]), r["redis"]
        with open(r["config"]) as f:
            text = f.read()
        for want in ('address: "%s"' % r["address"], "provider: powerdns",
                     "url: \"redis://127.0.0.1:%d/0\"" % r["redis"]["port"],
                     'verify_servers: ["127.0.0.1:%d"]' % dns["dns_port"],
                     "127.0.10.%d -c unix_socket_directories" % (i + 1)):
            assert want in text, "%s not in %s" % (want, r["config"])
        run([COORD, "--check-config", "--config", r["config"]])
    if os.geteuid() == 0:  # the servers never run as root
        for pid in [dns["pid"]] + [r["redis"]["pid"] for r in regions]:
            assert proc_user(pid) != 0, "pid %d runs as root" % pid

    # the name answers the adopted primary (the first region), stamped with epoch 1
    first = regions[0]
    assert dig(dns["dns_port"], dns["name"], "A") == [first["address"]]
    assert dig(dns["dns_port"], dns["name"], "TXT") == ["epoch=1 region=%s" % first["name"]]
    # PostgreSQL listens on the address the name answers
    p = run([PSQL, "-X", "-A", "-t", "-d", "host=%s port=%d user=postgres dbname=postgres "
             "connect_timeout=3" % (first["address"], first["postgres"]["port"]),
             "-c", "SELECT pg_is_in_recovery()"], timeout=20)
    assert p.stdout.strip() == "f", p.stdout

    # the TSIG key may update the zone (RFC 2136), a name of its own so the coordinators care not
    with open(os.path.join(lab.dir, "tsig-secret")) as f:
        secret = f.read().strip()
    script = ("server 127.0.0.1 %d\nzone aragora.lab.\nupdate add probe.aragora.lab. 5 A "
              "127.0.0.9\nsend\n" % dns["dns_port"])
    p = subprocess.run(["nsupdate", "-y", "hmac-sha256:aragora-lab-key:" + secret], input=script,
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stdout + p.stderr
    assert dig(dns["dns_port"], "probe.aragora.lab.", "A") == ["127.0.0.9"]

    # each region's Redis answers
    for r in regions:
        assert redis_ping(r["redis"]["port"]) == "PONG", r["name"]
    out = lab.chaos("status").stdout
    assert "REDIS" in out and "DNS" in out and first["address"] in out, out

    # PowerDNS: kill, then restart; the zone survives
    old = dns["pid"]
    lab.chaos("kill", "dns")
    assert pid_gone(old)
    assert dig(dns["dns_port"], dns["name"], "A") in (None, [])
    t1 = time.monotonic()
    lab.chaos("restart", "dns")
    lab.reload()
    assert lab.info["dns"]["pid"] != old and not pid_gone(lab.info["dns"]["pid"])
    assert dig(dns["dns_port"], dns["name"], "A") == [first["address"]]
    print("  PowerDNS restarted and answering in %.2f s" % (time.monotonic() - t1))
    p = lab.chaos("kill", "dns", "--what", "redis", check=False)
    assert p.returncode == 2, (p.returncode, p.stderr)

    # a region's Redis: freeze, thaw, kill, restart (empty)
    victim = regions[1]
    port = victim["redis"]["port"]
    lab.chaos("freeze", victim["name"], "--what", "redis")
    assert " stopped " in next(l for l in lab.chaos("status").stdout.split("REDIS")[1].splitlines()
                               if l.startswith(victim["name"] + " "))
    lab.chaos("thaw", victim["name"], "--what", "redis")
    assert redis_ping(port) == "PONG"
    lab.chaos("kill", victim["name"], "--what", "redis")
    assert pid_gone(victim["redis"]["pid"]) and redis_ping(port) is None
    assert not pid_gone(victim["pid"]), "--what redis must not touch the coordinator"
    lab.chaos("restart", victim["name"], "--what", "redis")
    lab.reload()
    assert redis_ping(port) == "PONG"

    # down stops every Redis and the PowerDNS, by PID, frozen ones too
    lab.reload()
    servers = [lab.info["dns"]["pid"]] + [r["redis"]["pid"] for r in lab.info["regions"]]
    lab.chaos("freeze", "dns")
    lab.chaos("freeze", regions[2]["name"], "--what", "redis")
    p = lab.chaos("down", timeout=90)
    assert "3 Redis servers and 1 PowerDNS" in p.stdout, p.stdout
    left = [pid for pid in servers if not pid_gone(pid)]
    assert not left, "pdns_server/redis-server left after lab down: %s" % left
    p = lab.chaos("down", timeout=60)  # safe to repeat
    assert "0 Redis servers and 0 PowerDNS" in p.stdout, p.stdout


TESTS = [
    test_leader_elected,
    test_leader_failover,
    test_restart_catches_up,
    test_snapshot_catch_up,
    test_pause_forwarded,
    test_frozen_leader,
    test_malformed_config,
    test_data_dir_locked,
    test_unauthorized,
    test_bad_requests,
    test_corrupt_data_dir,
    test_garbage_peer,
    test_lab_down_no_process,
    test_lab_postgres,
    test_lab_dns_redis,
]


def running_postmasters(lab):
    """PIDs of postmasters still running in the lab's data directories. The coordinators restart
    PostgreSQL themselves, so each data directory's own postmaster.pid is the authority."""
    left = []
    for r in (lab.info or {}).get("regions", []):
        data = (r.get("postgres") or {}).get("data_dir")
        try:
            with open(os.path.join(data, "postmaster.pid")) as fh:
                pid = int(fh.readline())
            with open("/proc/%d/cmdline" % pid, "rb") as fh:
                if data.encode() in fh.read() and not pid_gone(pid):
                    left.append(pid)
        except (OSError, ValueError, TypeError):
            pass
    return left


def run_tests(tests, argv, slot_base):
    """The runner every integration file uses: run the tests named in argv (all if none), each in
    its own lab with its own port slot (slot_base + index), always bring the lab down, fail a test
    that leaves a PostgreSQL running, and print "N passed, M failed" last."""
    for exe in (CHAOS, CTL, COORD):
        if not os.access(exe, os.X_OK):
            print("missing binary %s (set ARAGORA_BIN_DIR to the build directory)" % exe)
            print("0 passed, 1 failed")
            return 1
    wanted = set(a if a.startswith("test_") else "test_" + a for a in argv[1:])
    unknown = wanted - {t.__name__ for t in tests}
    if unknown:
        print("unknown tests: %s" % ", ".join(sorted(unknown)))
        print("0 passed, 1 failed")
        return 2
    passed = failed = 0
    for k, test in enumerate(tests):
        if wanted and test.__name__ not in wanted:
            continue
        t0 = time.monotonic()
        ok = False
        lab = Lab(test.__name__[5:], 0)
        try:
            lab.base_port = pick_base_port(slot_base + k)
            test(lab)
            ok = True
        except Exception:  # report and go on with the next test
            traceback.print_exc(file=sys.stdout)
            lab.print_logs(40)
        finally:
            try:
                lab.down()
            except Exception:
                traceback.print_exc(file=sys.stdout)
                ok = False
            left = running_postmasters(lab)
            if left:
                print("  PostgreSQL left running after lab down: %s" % left)
                ok = False
            lab.cleanup(keep=not ok)
        print("%s %s (%.1f s)" % ("ok  " if ok else "FAIL", test.__name__, time.monotonic() - t0))
        sys.stdout.flush()
        passed += ok
        failed += not ok
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(run_tests(TESTS, sys.argv, 0))
