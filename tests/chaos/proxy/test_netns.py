#!/usr/bin/env python3
"""Namespace mode of the fault layer (`aragora-chaos lab up --netns`; fault-injection/lab_netns.c,
proxy_netns.c, nft.c) on a real lab of three coordinators: the namespaces and the bridge, every
fault kind observed on real packets between the regions' namespaces, the link to this machine
never cut, the control API, and clean-up. Root only (it exits 77, "skipped", otherwise).

    python3 test_netns.py CASE        (ARAGORA_BIN_DIR = the meson build directory)

Each case brings up its own lab (--no-postgres: coordinators only; the chaos suite runs whole
scenarios in this mode) in a fresh temporary directory on its own base port, and always brings it
down in `finally`; `lab down` stops every process by PID and deletes the namespaces. Probes run
inside a region's namespace through `ip netns exec`. Timing assertions are lower bounds (a delay
cannot make a connection faster) or generous.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from afctest import wait_for, run  # noqa: E402

BIN = os.path.join(os.environ.get("ARAGORA_BIN_DIR", "build"), "aragora-chaos")
REGIONS = ["us-east-2", "eu-west-1", "ap-south-1"]
CASES = ["topology", "faults", "controller"]

# Runs inside a namespace: a TCP connect (and, with a size, a bulk send) to HOST:PORT; prints
# JSON {"ok":..., "ms":..., "error":...}.
PROBE = r"""
import json, socket, sys, time
host, port, timeout, size = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
t = time.monotonic()
try:
    s = socket.create_connection((host, port), timeout=timeout)
    if size:  # all of it received: the sink closes only once it has read our end-of-stream
        s.sendall(b"x" * size)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
    s.close()
    print(json.dumps({"ok": True, "ms": (time.monotonic() - t) * 1000}))
except OSError as e:
    print(json.dumps({"ok": False, "ms": (time.monotonic() - t) * 1000,
                      "error": type(e).__name__, "errno": e.errno}))
"""

# Runs inside a namespace: counts UDP datagrams on HOST:PORT until stdin closes.
UDP_SINK = r"""
import select, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
n = 0
while True:
    r, _, _ = select.select([s, sys.stdin], [], [], 30)
    if s in r:
        s.recv(2048)
        n += 1
    if sys.stdin in r or not r:
        break
print(n, flush=True)
"""

UDP_SOURCE = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(int(sys.argv[3])):
    s.sendto(b"d%d" % i, (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.002)
"""

# A sink for the bulk-transfer probe: accepts and reads everything, in a namespace.
TCP_SINK = r"""
import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print("ready", flush=True)
def drain(c):
    while c.recv(65536):
        pass
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=drain, args=(c,), daemon=True).start()
"""


def netns_list():
    out = run(["ip", "netns", "list"]).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


class Lab:
    def __init__(self, base):
        self.base = base
        self.dir = tempfile.mkdtemp(prefix="aragora-netns-")
        self.up = False
        self.doc = None

    def start(self):
        self.up = True
        run([BIN, "lab", "up", "--dir", self.dir, "--base-port", str(self.base), "--netns",
             "--no-postgres"], timeout=180)
        with open(os.path.join(self.dir, "lab.json")) as fh:
            self.doc = json.load(fh)

    def down(self):
        if self.up:
            self.up = False
            return run([BIN, "lab", "down", "--dir", self.dir], timeout=120, check=False,
                       merge_output=True)
        return None

    def region(self, i):
        return self.doc["regions"][i]

    def ns(self, i):
        return self.region(i)["netns"]

    def host(self, i):
        return self.region(i)["host"]

    def probe(self, frm, to, port=None, timeout=2.0, size=0):
        port = port or self.region(to)["raft_port"]
        out = run(["ip", "netns", "exec", self.ns(frm), sys.executable, "-c", PROBE,
                   self.host(to), str(port), str(timeout), str(size)], timeout=60).stdout
        return json.loads(out.strip().splitlines()[-1])

    def fault(self, *args, check=True):
        return run([BIN, "fault", *args, "--dir", self.dir], check=check, merge_output=True)

    def api(self, method, path, body=None):
        url = "http://127.0.0.1:%d%s" % (self.doc["proxy"]["control_port"], path)
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())


def reachable(lab, frm, to):
    return lab.probe(frm, to)["ok"]


def case_topology(lab):
    base = lab.base
    prefix = "afc%d" % base
    names = netns_list()
    for want in [prefix + "-br"] + ["%s-%d" % (prefix, i) for i in range(3)]:
        assert want in names, "namespace %s missing: %s" % (want, sorted(names))
    # every region's coordinator runs inside its own namespace
    for i in range(3):
        pids = run(["ip", "netns", "pids", lab.ns(i)]).stdout.split()
        assert str(lab.region(i)["pid"]) in pids, (i, pids)
        assert lab.host(i) == "10.%d.%d.%d" % (100 + base // 256, base % 256, i + 1)
    # every region reaches every other's Raft port, and this machine reaches every API
    for a in range(3):
        for b in range(3):
            if a != b:
                assert reachable(lab, a, b), (a, b)
        with urllib.request.urlopen(lab.region(a)["api_url"] + "/health/live", timeout=10) as r:
            assert r.status == 200
    # the regions are not reachable on this machine's loopback: they are really elsewhere
    s = socket.socket()
    s.settimeout(2)
    assert s.connect_ex(("127.0.0.1", lab.region(0)["api_port"])) != 0
    s.close()
    st = run([BIN, "lab", "status", "--dir", lab.dir]).stdout
    assert "NETNS" in st and "FAULT NETNS" in st, st
    # down removes the namespaces and this machine's interface; up again on the same port works
    rc = lab.down()
    assert rc.returncode == 0, rc.stdout
    left = {n for n in netns_list() if n.startswith(prefix + "-")}
    assert not left, left
    assert not os.path.exists("/sys/class/net/" + prefix)
    lab.start()
    assert reachable(lab, 0, 1)


def case_faults(lab):
    # partition: us-east-2 isolated; the others still talk; this machine still reaches it
    out = lab.fault("set", "isolate us-east-2").stdout
    assert "us-east-2 -/- eu-west-1" in out, out
    r = lab.probe(0, 1)
    assert not r["ok"] and r["error"] == "TimeoutError", r
    assert not lab.probe(2, 0)["ok"]
    assert reachable(lab, 1, 2)
    with urllib.request.urlopen(lab.region(0)["api_url"] + "/health/live", timeout=10) as resp:
        assert resp.status == 200
    # the coordinators notice: the two others agree on a leader among themselves
    def leader_of(i):
        try:
            with urllib.request.urlopen(lab.region(i)["api_url"] + "/v1/cluster", timeout=5) as x:
                return (json.loads(x.read()).get("leader") or {}).get("region")
        except (OSError, ValueError):
            return None
    wait_for("a leader on the majority side",
             lambda: leader_of(1) in ("eu-west-1", "ap-south-1") and leader_of(1) == leader_of(2),
             timeout=30)

    # one-way cut, observed with UDP (packets, not connections): A's datagrams to B are
    # dropped, B's to A arrive
    lab.fault("set", "us-east-2 -/> eu-west-1")
    port = lab.base + 7
    assert udp_count(lab, 0, 1, port, 50) == 0
    assert udp_count(lab, 1, 0, port, 50) >= 45  # a bridge on one machine loses none; margin

    # loss 50 %: between a fifth and four fifths of 400 datagrams arrive (binomial: far inside)
    lab.fault("set", "us-east-2 -> eu-west-1 loss 50%")
    got = udp_count(lab, 0, 1, port, 400)
    assert 80 <= got <= 320, got

    # delay: the SYN waits; a connect cannot take less than the delay
    lab.fault("set", "us-east-2 -> eu-west-1 delay 300ms")
    r = lab.probe(0, 1, timeout=10)
    assert r["ok"] and r["ms"] >= 290, r
    r = lab.probe(1, 0, timeout=10)  # the SYN-ACK goes us-east-2 -> eu-west-1: delayed too
    assert r["ok"] and r["ms"] >= 290, r
    state = lab.api("GET", "/v1/faults")[1]
    pair = [p for p in state["netns"]["pairs"]
            if p["from"] == "us-east-2" and p["to"] == "eu-west-1"][0]
    assert pair["state"]["delay_ms"] == 300 and pair["packets_delayed"] > 0, pair

    # reset: a connect is refused (RST) at once instead of timing out
    lab.fault("set", "eu-west-1 <-> ap-south-1 reset")
    r = lab.probe(1, 2, timeout=10)
    assert not r["ok"] and r["error"] == "ConnectionRefusedError", r

    # blackhole: nothing answers
    lab.fault("set", "eu-west-1 -> ap-south-1 blackhole")
    r = lab.probe(1, 2)
    assert not r["ok"] and r["error"] == "TimeoutError", r

    # rate: 2 MB through a 4 mbit/s policer cannot take less than ~3 s (unlimited: milliseconds)
    sink = start_sink(lab, 2, lab.base + 8)
    try:
        lab.fault("set", "eu-west-1 -> ap-south-1 rate 4mbps")
        r = lab.probe(1, 2, port=lab.base + 8, timeout=60, size=2_000_000)
        assert r["ok"] and r["ms"] >= 2500, r
    finally:
        sink.kill()
        sink.wait()

    # a bad set is refused with the reason and changes nothing
    lab.fault("set", "isolate ap-south-1")
    before = lab.api("GET", "/v1/faults")[1]
    status, body = lab.api("PUT", "/v1/faults", {"faults": "ap-south-1 -/- mars"})
    assert status == 400 and "mars" in body["error"], (status, body)
    after = lab.api("GET", "/v1/faults")[1]
    assert (after["faults"], after["version"]) == (before["faults"], before["version"]), after
    assert not reachable(lab, 2, 0)

    # clear: every pair connects again
    lab.fault("clear")
    for a in range(3):
        for b in range(3):
            if a != b:
                assert wait_for("%d -> %d after clear" % (a, b), lambda: reachable(lab, a, b))


def udp_count(lab, frm, to, port, n):
    sink = subprocess.Popen(["ip", "netns", "exec", lab.ns(to), sys.executable, "-c", UDP_SINK,
                             lab.host(to), str(port)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout.readline().strip() == "ready"
        run(["ip", "netns", "exec", lab.ns(frm), sys.executable, "-c", UDP_SOURCE, lab.host(to),
             str(port), str(n)])
        time.sleep(0.3)  # datagrams in flight on a local bridge; loss is what is measured
        sink.stdin.close()
        return int(sink.stdout.readline())
    finally:
        if sink.poll() is None:
            sink.kill()
        sink.wait()


def start_sink(lab, i, port):
    sink = subprocess.Popen(["ip", "netns", "exec", lab.ns(i), sys.executable, "-c", TCP_SINK,
                             lab.host(i), str(port)], stdout=subprocess.PIPE, text=True)
    assert sink.stdout.readline().strip() == "ready"
    return sink


def nft_tables(lab):
    return run(["ip", "netns", "exec", lab.doc["netns"]["bridge"], "nft", "list",
                "tables"]).stdout


def case_controller(lab):
    # the set survives a controller restart (faults.json), and the table follows the controller:
    # SIGTERM removes it (no fault outlives its controller)
    lab.fault("set", "us-east-2 -/- eu-west-1, ap-south-1 -> us-east-2 delay 100ms")
    assert "aragora_chaos" in nft_tables(lab)
    # the rule set the filter was given stays for operators to read: this set's, not an older one
    with open(os.path.join(lab.dir, "chaos", "rules.nft")) as f:
        rules = f.read()
    assert "table ip aragora_chaos" in rules and "ip saddr %s ip daddr %s drop" % (
        lab.host(0), lab.host(1)) in rules, rules
    pid = lab.doc["proxy"]["pid"]
    os.kill(pid, signal.SIGTERM)
    wait_for("the controller to exit", lambda: not os.path.exists("/proc/%d" % pid))
    assert "aragora_chaos" not in nft_tables(lab)
    assert not os.path.exists(os.path.join(lab.dir, "chaos", "rules.nft"))  # no filter, no file
    assert reachable(lab, 0, 1)
    # started again (as lab up would), it restores the set into the filter
    log = open(os.path.join(lab.dir, "chaos", "proxy.log"), "a")
    proc = subprocess.Popen([BIN, "proxy", "--dir", lab.dir], stdout=log, stderr=log)
    try:
        wait_for("the restored filter", lambda: "aragora_chaos" in nft_tables(lab))
        # renamed into place right after nft took it
        wait_for("rules.nft", lambda: os.path.exists(os.path.join(lab.dir, "chaos", "rules.nft")))
        assert not reachable(lab, 0, 1)
        r = lab.probe(2, 0, timeout=10)
        assert r["ok"] and r["ms"] >= 95, r
        # SIGKILL: no clean-up possible; the delay's NFQUEUE rule has --queue-bypass, so the
        # delayed pair keeps flowing (undelayed) instead of stopping
        proc.kill()
        proc.wait()
        r = lab.probe(2, 0, timeout=10)
        assert r["ok"], r
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        print("usage: test_netns.py {%s}" % "|".join(CASES), file=sys.stderr)
        return 2
    if os.geteuid() != 0 or shutil.which("ip") is None:
        print("skipped: namespace mode needs root and iproute2")
        return 77
    name = sys.argv[1]
    lab = Lab(27400 + 50 * CASES.index(name))
    ok = False
    try:
        lab.start()
        globals()["case_" + name](lab)
        ok = True
    finally:
        rc = lab.down()
        if rc is not None and rc.returncode != 0:
            print(rc.stdout, file=sys.stderr)
            ok = False
        prefix = "afc%d-" % lab.base
        left = {n for n in netns_list() if n.startswith(prefix)}
        if left:
            print("namespaces left behind: %s" % sorted(left), file=sys.stderr)
            ok = False
        if ok:
            shutil.rmtree(lab.dir, ignore_errors=True)
        else:
            print("kept: %s" % lab.dir, file=sys.stderr)
    if not ok:
        return 1
    print("ok", name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
