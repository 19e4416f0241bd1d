#!/usr/bin/env python3
"""The userspace fault proxy (`aragora-chaos proxy`, fault-injection/proxy.c) against Python TCP
upstreams on loopback: every fault kind observed on real sockets, the control API's errors, the
persisted state and the `aragora-chaos fault` CLI. Python 3 standard library only.

    python3 test_proxy.py CASE        (ARAGORA_BIN_DIR = the meson build directory)

Each case runs in a fresh temporary directory with its own ports (27100-27299); the proxy is
started here and stopped here by PID (SIGTERM, then wait), always in `finally`. Waits poll for the
observable state with a deadline; the few absence checks ("nothing arrives while cut") watch for
a bounded time, and every timing bound is generous (CI may be 10x slower).
"""

import errno
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from afctest import ports_free, serve_canned_http, wait_for  # noqa: E402

BIN = os.path.join(os.environ.get("ARAGORA_BIN_DIR", "build"), "aragora-chaos")
REGIONS = ["us-east-2", "eu-west-1", "ap-south-1"]
HOLD_S = 1.0  # how long an absence is watched


class Upstream:
    """A TCP server on 127.0.0.1:port: records what each connection sent, echoes it if echo."""

    def __init__(self, port, echo=True):
        self.echo = echo
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.conns = []  # [socket, bytearray received]
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            entry = [c, bytearray()]
            with self.lock:
                self.conns.append(entry)
            threading.Thread(target=self._serve, args=(entry,), daemon=True).start()

    def _serve(self, entry):
        c, got = entry
        while True:
            try:
                data = c.recv(65536)
            except OSError:
                return
            if not data:  # the client closed: so does a server
                c.close()
                return
            with self.lock:
                got.extend(data)
            if self.echo:
                try:
                    c.sendall(data)
                except OSError:
                    return

    def received(self, i=0):
        with self.lock:
            return bytes(self.conns[i][1]) if i < len(self.conns) else b""

    def count(self):
        with self.lock:
            return len(self.conns)

    def stop(self):
        self.stopped = True
        self.sock.close()
        with self.lock:
            for c, _ in self.conns:
                try:
                    c.close()
                except OSError:
                    pass


class Lab:
    """links.json with two links (us-east-2 <-> eu-west-1 of an echo service) and the proxy."""

    def __init__(self, base_port):
        self.dir = tempfile.mkdtemp(prefix="aragora-proxy-")
        self.chaos = os.path.join(self.dir, "chaos")
        os.makedirs(self.chaos)
        for p in range(base_port, base_port + 6):
            if not ports_free(p):
                raise RuntimeError("port %d is in use" % p)
        self.control = base_port
        self.listen = ("127.1.1.2", base_port + 1)  # us-east-2 -> eu-west-1
        self.listen_back = ("127.1.2.1", base_port + 2)  # eu-west-1 -> us-east-2
        self.up = Upstream(base_port + 3)
        self.up_back = Upstream(base_port + 4)
        self.proc = None
        self.write_links()

    def write_links(self, profile="", dns_front=None):
        doc = {"control": "127.0.0.1:%d" % self.control, "regions": REGIONS, "profile": profile,
               "links": [
                   {"from": "us-east-2", "to": "eu-west-1", "service": "echo",
                    "listen": "%s:%d" % self.listen,
                    "upstream": "127.0.0.1:%d" % (self.control + 3)},
                   {"from": "eu-west-1", "to": "us-east-2", "service": "echo",
                    "listen": "%s:%d" % self.listen_back,
                    "upstream": "127.0.0.1:%d" % (self.control + 4)}]}
        if dns_front is not None:
            doc["links"].append({"service": "dns-api", "listen": dns_front[0],
                                 "upstream": dns_front[1]})
        with open(os.path.join(self.chaos, "links.json"), "w") as f:
            json.dump(doc, f)

    def start(self):
        self.log = open(os.path.join(self.chaos, "proxy.log"), "ab")
        self.proc = subprocess.Popen([BIN, "proxy", "--dir", self.dir], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        def healthy():
            if self.proc.poll() is not None:
                raise AssertionError("the proxy exited with %s:\n%s" % (self.proc.returncode,
                                                                        self.log_text()))
            try:
                return self.api("GET", "/v1/health")[0] == 200
            except OSError:
                return False
        wait_for("the proxy's /v1/health", healthy)

    def stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self.log.close()
        return rc

    def close(self):
        try:
            self.stop()
        finally:
            self.up.stop()
            self.up_back.stop()

    def log_text(self):
        with open(os.path.join(self.chaos, "proxy.log"), errors="replace") as f:
            return f.read()

    def api(self, method, path, body=None, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.control, path), data=data,
                                     method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def faults(self, text):
        status, doc = self.api("PUT", "/v1/faults", {"faults": text})
        assert status == 200, (status, doc)
        return doc

    def clear(self):
        status, doc = self.api("DELETE", "/v1/faults")
        assert status == 200, (status, doc)
        return doc

    def connect(self):
        c = socket.create_connection(self.listen, timeout=10)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return c

    def cli(self, *args):
        return subprocess.run([BIN, "fault"] + list(args) + ["--dir", self.dir],
                              capture_output=True, text=True, timeout=30)


def recv_exactly(c, n, timeout=10.0):
    c.settimeout(timeout)
    buf = b""
    while len(buf) < n:
        d = c.recv(n - len(buf))
        if not d:
            raise AssertionError("closed after %d of %d bytes" % (len(buf), n))
        buf += d
    return buf


def echo_rtt(c, payload=b"ping", timeout=10.0):
    t = time.monotonic()
    c.sendall(payload)
    assert recv_exactly(c, len(payload), timeout) == payload
    return time.monotonic() - t


def nothing_arrives(c, seconds=HOLD_S):
    c.settimeout(seconds)
    try:
        d = c.recv(100)
    except socket.timeout:
        return True
    raise AssertionError("expected nothing, got %r" % d)


def expect_reset(c, timeout=10.0):
    c.settimeout(timeout)
    try:
        d = c.recv(100)
        if d == b"":  # RST may surface on the next call
            c.sendall(b"x")
            d = c.recv(100)
    except ConnectionResetError:
        return
    except OSError as e:
        if e.errno in (errno.ECONNRESET, errno.EPIPE):
            return
        raise
    raise AssertionError("expected ECONNRESET, got %r" % d)


def connect_expect_reset(addr):
    try:
        c = socket.create_connection(addr, timeout=10)
    except ConnectionResetError:  # the RST can beat connect()'s return
        return
    expect_reset(c)
    c.close()


# ---- cases ----

def case_passthrough(lab):
    c = lab.connect()
    assert echo_rtt(c) < 2.0
    big = os.urandom(1 << 20)
    c.sendall(big)
    assert recv_exactly(c, len(big), timeout=30) == big
    doc = lab.api("GET", "/v1/faults")[1]
    assert doc["faults"] == "none" and doc["links"][0]["connections"] == 1, doc
    assert doc["links"][0]["bytes_forwarded"] >= 2 * len(big), doc
    c.close()
    wait_for("the connection to be gone",
             lambda: lab.api("GET", "/v1/faults")[1]["links"][0]["connections"] == 0)


def case_delay(lab):
    c = lab.connect()
    assert echo_rtt(c) < 2.0
    doc = lab.faults("us-east-2 -> eu-west-1 delay 300ms+-20ms, eu-west-1 -> us-east-2 delay 0.2s")
    st = doc["links"][0]["state"]
    assert st["delay_ms"] == 300 and st["jitter_ms"] == 20, st
    for _ in range(3):
        rtt = echo_rtt(c)
        assert 0.48 <= rtt < 5.0, rtt  # 300-20 + 200 at least
    msgs = b"".join(b"<%03d>" % i for i in range(40))
    for i in range(40):  # separate chunks, each with its own jitter: the order is kept
        c.sendall(msgs[5 * i:5 * i + 5])
    assert recv_exactly(c, len(msgs)) == msgs
    lab.clear()
    assert echo_rtt(c) < 0.45


def case_one_way_cut(lab):
    c = lab.connect()
    assert echo_rtt(c) < 2.0
    wait_for("the upstream connection", lambda: lab.up.count() == 1)
    lab.faults("us-east-2 -/> eu-west-1")
    c.sendall(b"held")
    server_side = lab.up.conns[0][0]
    server_side.sendall(b"passes")  # eu-west-1 -> us-east-2 is not cut
    assert recv_exactly(c, 6) == b"passes"
    deadline = time.monotonic() + HOLD_S
    while time.monotonic() < deadline:
        assert lab.up.received() == b"ping", lab.up.received()
        time.sleep(0.05)
    lab.clear()
    wait_for("the held bytes after the heal", lambda: lab.up.received() == b"pingheld")
    assert recv_exactly(c, 4) == b"held"  # and the echo comes back


def case_loss(lab):
    c = lab.connect()
    assert echo_rtt(c) < 2.0
    doc = lab.faults("us-east-2 -> eu-west-1 loss 30%")
    assert doc["links"][0]["state"]["loss_pct"] == 30.0, doc
    # Echo checks every byte. A chunk lost k times in a row waits 200+400+... ms (at most 41 s
    # with the 3.2 s cap), so each exchange gets a long timeout.
    rtts = [echo_rtt(c, b"msg%02d" % i, timeout=60) for i in range(20)]
    slow = sum(1 for r in rtts if r >= 0.19)  # "retransmitted" after 200 ms or more
    assert 1 <= slow <= 16, rtts  # binomial(20, 0.3): outside that about once in 1,000 runs
    lab.clear()
    assert max(echo_rtt(c) for _ in range(5)) < 0.19


def case_partition_defers_connect(lab):
    lab.faults("us-east-2 -/- eu-west-1")
    c = lab.connect()  # accepted by the proxy...
    c.sendall(b"early")
    deadline = time.monotonic() + HOLD_S
    while time.monotonic() < deadline:  # ...but never connected upstream
        assert lab.up.count() == 0
        time.sleep(0.05)
    nothing_arrives(c, 0.2)
    doc = lab.clear()
    assert doc["links"][0]["state"]["cut"] is False
    wait_for("the deferred upstream connect", lambda: lab.up.count() == 1)
    assert recv_exactly(c, 5) == b"early"
    assert echo_rtt(c) < 2.0


def case_reset(lab):
    c = lab.connect()
    assert echo_rtt(c) < 2.0
    lab.faults("us-east-2 <-> eu-west-1 reset")
    expect_reset(c)
    connect_expect_reset(lab.listen)  # new connections are reset on accept
    connect_expect_reset(lab.listen_back)  # the same pair, the other link
    lab.clear()
    c3 = lab.connect()
    assert echo_rtt(c3) < 2.0


def case_blackhole(lab):
    c = lab.connect()
    assert echo_rtt(c) < 2.0
    lab.faults("us-east-2 -> eu-west-1 blackhole")
    c.sendall(b"lost")
    nothing_arrives(c)
    assert lab.up.received() == b"ping"
    fresh = lab.connect()  # accepted, never forwarded
    fresh.sendall(b"void")
    nothing_arrives(fresh, 0.3)
    assert lab.up.count() == 1
    lab.clear()
    expect_reset(c)  # it lost bytes: reset when the blackhole ends
    expect_reset(fresh)
    c2 = lab.connect()
    assert echo_rtt(c2) < 2.0


def case_rate_limit(lab):
    c = lab.connect()
    assert echo_rtt(c) < 2.0
    lab.faults("us-east-2 -> eu-west-1 rate 80kbps")  # 10,000 bytes/s
    data = os.urandom(30000)
    t = time.monotonic()
    c.sendall(data)
    assert recv_exactly(c, len(data), timeout=60) == data
    took = time.monotonic() - t
    assert 2.0 <= took < 30.0, took  # ~2.9 s
    lab.clear()
    t = time.monotonic()
    c.sendall(data)
    recv_exactly(c, len(data))
    assert time.monotonic() - t < 1.5


def raw_request(lab, payload, timeout=10):
    s = socket.create_connection(("127.0.0.1", lab.control), timeout=timeout)
    s.sendall(payload)
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except ConnectionResetError:
        pass
    s.close()
    return out


def case_control_api_errors(lab):
    status, doc = lab.api("PUT", "/v1/faults", {"faults": "us-east-2 -/- eu-west-1, "
                                                          "us-east-2 -> mars delay 5ms"})
    assert status == 400 and "item 2" in doc["error"] and '"mars"' in doc["error"], doc
    assert "column 14" in doc["error"], doc
    assert lab.api("GET", "/v1/faults")[1]["faults"] == "none"  # nothing applied
    status, doc = lab.api("GET", "/v1/nowhere")
    assert status == 404 and "error" in doc, doc
    status, doc = lab.api("POST", "/v1/faults", {"faults": ""})
    assert status == 405 and "error" in doc, doc
    status, doc = lab.api("PUT", "/v1/health", {})
    assert status == 405, doc
    status, doc = lab.api("PUT", "/v1/faults", raw=b"{not json")
    assert status == 400 and "malformed JSON" in doc["error"], doc
    status, doc = lab.api("PUT", "/v1/faults", {"text": "x"})
    assert status == 400 and "faults" in doc["error"], doc
    status, doc = lab.api("PUT", "/v1/faults", raw=b"x" * (70 * 1024))
    assert status == 413, (status, doc)
    out = raw_request(lab, b"\x00\x01\xffgarbage\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400"), out
    out = raw_request(lab, os.urandom(4096))
    assert out == b"" or out.startswith(b"HTTP/1.1 4"), out[:100]
    out = raw_request(lab, b"GET /v1/health HTTP/1.1\r\nContent-Length: zz\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400"), out
    half = socket.create_connection(("127.0.0.1", lab.control), timeout=10)
    half.sendall(b"PUT /v1/faults HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
    half.close()  # gone mid-body
    status, doc = lab.api("GET", "/v1/health")
    assert status == 200 and doc == {"status": "ok"}, doc
    assert lab.proc.poll() is None
    status, doc = lab.api("PUT", "/v1/profile", {"profile": "wan"})
    assert status == 200 and "delay 40ms" in doc["profile"], doc
    assert doc["links"][0]["state"]["delay_ms"] == 40, doc
    status, doc = lab.api("DELETE", "/v1/profile")
    assert status == 200 and doc["profile"] == "none", doc
    # throttling the DNS API is a fault, never part of the profile under the faults
    status, doc = lab.api("PUT", "/v1/profile", {"profile": "dns 429"})
    assert status == 400 and "not a profile" in doc["error"], (status, doc)
    assert lab.api("GET", "/v1/faults")[1]["profile"] == "none"


def case_restart_restores(lab):
    lab.faults("us-east-2 -/> eu-west-1, eu-west-1 -> us-east-2 loss 10%")
    lab.api("PUT", "/v1/profile", {"profile": "wan"})
    before = lab.api("GET", "/v1/faults")[1]
    with open(os.path.join(lab.chaos, "faults.json")) as f:
        saved = json.load(f)
    assert saved["faults"] == before["faults"], saved
    assert lab.stop() == 0  # SIGTERM: a clean exit
    lab.start()
    after = lab.api("GET", "/v1/faults")[1]
    assert after["faults"] == before["faults"], (after, before)
    assert after["profile"] == before["profile"], (after, before)
    assert after["links"][0]["state"]["cut"] is True
    assert not os.path.exists(os.path.join(lab.chaos, "faults.json.tmp"))


def case_faults_log(lab):
    path = os.path.join(lab.chaos, "faults.log")

    def lines():
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip()]
    assert len(lines()) == 1  # the start
    lab.faults("isolate ap-south-1")
    lab.faults("us-east-2 <-> eu-west-1 delay 50ms")
    lab.clear()
    lab.api("PUT", "/v1/profile", {"profile": "wan"})
    got = lines()
    assert len(got) == 5, got
    assert got[1]["faults"] == "ap-south-1 -/- us-east-2, ap-south-1 -/- eu-west-1", got[1]
    assert got[2]["faults"] == "us-east-2 <-> eu-west-1 delay 50ms", got[2]
    assert got[3]["faults"] == "none" and got[4]["profile"].startswith("us-east-2 <-> eu-west-1")
    ts = [l["t_us"] for l in got]
    assert ts == sorted(ts) and abs(ts[-1] / 1e6 - time.time()) < 60, ts
    status, _ = lab.api("PUT", "/v1/faults", {"faults": "bogus"})
    assert status == 400 and len(lines()) == 5  # a refused change is no change


def case_cli_round_trip(lab):
    r = lab.cli("set", "eu-west-1 -/- us-east-2")
    assert r.returncode == 0 and r.stdout.strip() == "eu-west-1 -/- us-east-2", r
    r = lab.cli("show")
    assert r.returncode == 0, r
    assert "FROM" in r.stdout and "CONNS" in r.stdout, r.stdout
    row = [l for l in r.stdout.splitlines() if l.startswith("us-east-2")]
    assert row and "cut" in row[0], r.stdout
    r = lab.cli("show", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["faults"] == "eu-west-1 -/- us-east-2", r
    r = lab.cli("set", "us-east-2 -> mars delay 5ms")
    assert r.returncode == 1 and 'unknown region "mars"' in r.stderr, r
    r = lab.cli("clear")
    assert r.returncode == 0 and r.stdout.strip() == "none", r
    r = lab.cli("profile", "wan")
    assert r.returncode == 0 and "delay 40ms" in r.stdout, r
    r = lab.cli("profile", "none")
    assert r.returncode == 0 and r.stdout.strip() == "none", r
    for bad in (["bogus"], ["set"], ["show", "extra"], ["clear", "--json"]):
        r = lab.cli(*bad)
        assert r.returncode == 2, (bad, r)
    r = subprocess.run([BIN, "fault", "show"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--dir" in r.stderr, r
    r = subprocess.run([BIN, "fault", "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "Usage" in r.stdout, r


def run_proxy_expect_fail(lab, want):
    r = subprocess.run([BIN, "proxy", "--dir", lab.dir], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1 and want in r.stderr, (want, r)


def case_bad_config(lab):
    assert lab.stop() == 0  # this case starts its own, which must refuse
    path = os.path.join(lab.chaos, "links.json")
    with open(path) as f:
        good = json.load(f)
    for key, mutate in [
            ('"links[1].listen"', lambda d: d["links"][1].update(listen="127.1.2.1")),
            ('"links[0].from"', lambda d: d["links"][0].update({"from": "mars"})),
            ('"regions"', lambda d: d.update(regions=["a"])),
            ('"control"', lambda d: d.pop("control")),
            ('"profile"', lambda d: d.update(profile="us-east-2 -> mars delay 1ms"))]:
        doc = json.loads(json.dumps(good))
        mutate(doc)
        with open(path, "w") as f:
            json.dump(doc, f)
        run_proxy_expect_fail(lab, key)
        run_proxy_expect_fail(lab, path)
    with open(path, "w") as f:
        f.write("{ not json")
    run_proxy_expect_fail(lab, path)
    os.unlink(path)
    run_proxy_expect_fail(lab, path)
    r = subprocess.run([BIN, "proxy"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--dir" in r.stderr, r
    with open(path, "w") as f:
        json.dump(good, f)
    lab.start()  # and the good file still works


def case_peer_vanishes(lab):
    """Either end of a link dies (a killed region) while bytes are in flight: the proxy then
    writes to a socket whose peer is gone. That costs the connection, never the proxy (a
    SIGPIPE once killed it, and with it every cross-region link of the lab)."""
    for _ in range(5):  # the client vanishes while its 4 MiB come back from the echo service
        c = lab.connect()
        c.sendall(b"y" * (4 << 20))
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()  # RST, as a killed process's sockets do
    c = lab.connect()
    echo_rtt(c)
    for conn, _ in list(lab.up.conns):  # now the service vanishes under a sending client
        try:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass  # one of the five above, already closed by the echo service: nothing to reset
    lab.up.stop()
    deadline = time.monotonic() + 10
    broken = False
    while time.monotonic() < deadline and not broken:
        try:
            c.sendall(b"x" * 4096)
        except OSError:
            broken = True  # the proxy closed our side too
        assert lab.proc.poll() is None, "the proxy died (exit %s)" % lab.proc.returncode
    assert broken, "the client's connection outlived its upstream by 10 s"
    assert lab.proc.poll() is None, "the proxy died (exit %s)" % lab.proc.returncode
    assert lab.api("GET", "/v1/health")[0] == 200


def case_dns_429(lab):
    """The DNS provider's API front ("dns-api" link): no link fault reaches it; `dns 429` answers
    every request 429 with Retry-After (nothing reaches the provider), resets kept-alive
    connections, and ends with the fault."""
    import http.client
    seen = []
    provider = serve_canned_http(lab.control + 6, 200, b'{"ok": true}', seen=seen)
    try:
        lab.stop()
        lab.write_links(dns_front=("127.0.0.1:%d" % (lab.control + 5),
                                   "127.0.0.1:%d" % (lab.control + 6)))
        lab.start()

        def request(conn, method="GET", body=None):
            conn.request(method, "/api/v1/servers/localhost/zones/aragora.lab.", body=body,
                         headers={"X-API-Key": "k", "Content-Type": "application/json"})
            r = conn.getresponse()
            return r.status, r.getheader("Retry-After"), r.read()

        kept = http.client.HTTPConnection("127.0.0.1", lab.control + 5, timeout=10)
        assert request(kept)[0] == 200
        lab.faults("isolate us-east-2")  # the provider is outside every region
        assert request(kept)[0] == 200 and len(seen) == 2, seen
        doc = lab.faults("isolate us-east-2, dns 429 retry-after 3s")
        assert doc["faults"].endswith("dns 429 retry-after 3s"), doc["faults"]
        for method, body in (("GET", None), ("PATCH", b'{"rrsets": []}')):
            c = http.client.HTTPConnection("127.0.0.1", lab.control + 5, timeout=10)
            status, retry, text = request(c, method, body)
            c.close()
            assert status == 429 and retry == "3" and b"Too Many Requests" in text, \
                (status, retry, text)
        assert len(seen) == 2, seen  # nothing reached the provider
        # the connection kept alive from before cannot slip past the throttle
        try:
            status = request(kept)[0]
        except (OSError, http.client.HTTPException):
            status = None
        assert status != 200, status
        front = [l for l in lab.api("GET", "/v1/faults")[1]["links"]
                 if l["service"] == "dns-api"][0]
        assert front["throttled"] >= 2 and front["to"] == "(dns provider)", front
        lab.clear()
        c = http.client.HTTPConnection("127.0.0.1", lab.control + 5, timeout=10)
        assert request(c, "PATCH", b"{}")[0] == 200 and len(seen) == 3, seen
        c.close()
    finally:
        provider.shutdown()
        provider.server_close()


CASES = ["passthrough", "delay", "loss", "one_way_cut", "partition_defers_connect", "reset",
         "blackhole", "rate_limit", "control_api_errors", "restart_restores", "faults_log",
         "cli_round_trip", "bad_config", "peer_vanishes", "dns_429"]


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        print("usage: test_proxy.py %s" % "|".join(CASES), file=sys.stderr)
        return 2
    name = sys.argv[1]
    lab = Lab(27100 + 10 * CASES.index(name))
    try:
        lab.start()
        globals()["case_" + name](lab)
        assert lab.proc.poll() is None, "the proxy died"
        rc = lab.stop()
        assert rc == 0, "the proxy exited with %s on SIGTERM" % rc
    except BaseException:
        if lab.proc is not None or os.path.exists(os.path.join(lab.chaos, "proxy.log")):
            print("---- proxy.log ----\n" + lab.log_text(), file=sys.stderr)
        raise
    finally:
        lab.close()
    shutil.rmtree(lab.dir, ignore_errors=True)  # kept when the case failed
    print("ok", name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
