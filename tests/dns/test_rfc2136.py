#!/usr/bin/env python3
"""Integration tests of the rfc2136 DNS provider and of verification, against real PowerDNS
servers (dnslab.py) on loopback ports 24001-24029, each run in a fresh temporary directory.

    test_rfc2136.py RFC2136_TOOL rfc2136   # meson test dns_rfc2136
    test_rfc2136.py RFC2136_TOOL verify    # meson test dns_verify

RFC2136_TOOL is tests/dns/rfc2136_tool (one operation per run, one JSON line). The TSIG secret
reaches it through the environment. Every check is printed as it passes; the first failure ends
the run with the PowerDNS log. No sleeps: the tool's own timeouts bound every wait, and dig runs
right after each change (PowerDNS applies an UPDATE before it answers).
"""

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dnslab import PowerDNS  # noqa: E402

ZONE = "db.example."
NAME = "primary.db.example."
WRONG_SECRET = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
PASSED = []


def check(cond, what, detail=""):
    if not cond:
        raise AssertionError("%s%s" % (what, (": %s" % detail) if detail else ""))
    PASSED.append(what)
    print("ok   %s" % what, flush=True)


class Tool:
    """Runs rfc2136_tool against one server (the first --server) with the lab's key."""

    def __init__(self, path, pdns, server=None, timeout_ms=2000):
        self.path = path
        self.pdns = pdns
        self.server = server or "127.0.0.1:%d" % pdns.dns_port
        self.timeout_ms = timeout_ms
        self.secret = pdns.tsig_secret
        self.key_name = pdns.tsig_name

    def run(self, op, *args, servers=None, secret=None, key_name=None, name=NAME,
            timeout_ms=None):
        env = dict(os.environ, ARAGORA_TSIG_SECRET=secret or self.secret,
                   ARAGORA_TSIG_NAME=key_name or self.key_name)
        cmd = [self.path, op]
        for s in servers or [self.server]:
            cmd += ["--server", s]
        cmd += ["--zone", ZONE, "--name", name,
                "--timeout-ms", str(timeout_ms or self.timeout_ms)] + list(args)
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        if p.returncode != 0 or not p.stdout.strip():
            raise AssertionError("%s exited %d: %s %s" % (cmd, p.returncode, p.stdout, p.stderr))
        out = json.loads(p.stdout.strip().splitlines()[-1])
        print("     %s -> %s" % (op, p.stdout.strip()), flush=True)
        return out

    def get(self, **kw):
        return self.run("get", **kw)

    def cas(self, expect, new, **kw):
        """expect: None (nothing there) or (address, epoch, region); new: (address, epoch,
        region)."""
        args = ["--expect-none"] if expect is None else [
            "--expect-address", expect[0], "--expect-epoch", str(expect[1]),
            "--expect-region", expect[2]]
        args += ["--address", new[0], "--epoch", str(new[1]), "--region", new[2]]
        return self.run("cas", *args, **kw)

    def verify(self, servers, want, **kw):
        return self.run("verify", "--address", want[0], "--epoch", str(want[1]),
                        "--region", want[2], servers=servers, **kw)


def holds(pdns, value):
    """Does the server answer `value` (address, epoch, region), by dig?"""
    want_a = [value[0]]
    want_txt = ["epoch=%d region=%s" % (value[1], value[2])]
    got = (pdns.dig(NAME, "A"), pdns.dig(NAME, "TXT"))
    return got == (want_a, want_txt), got


def found(res):
    f = res["found"]
    return (f["address"], f["epoch"], f["region"]) if f["exists"] and f["stamped"] else None


class BlackHole:
    """A UDP port that takes datagrams and never answers (no ICMP either): a server that hangs.
    Counts what it receives."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.addr = "127.0.0.1:%d" % port

    def drain(self):
        got = []
        while True:
            try:
                got.append(self.sock.recv(65535))
            except BlockingIOError:
                return got

    def close(self):
        self.sock.close()


class Proxy:
    """A UDP relay in front of PowerDNS that can lie, as an attacker on the path would.

    mode "relay": forwards both ways. "forge-first": before the real answer, sends one with
    another id and one with the right id whose TSIG MAC has a flipped byte. "tamper-only": the
    real answer never arrives; instead its RCODE is rewritten to NOERROR (a forged "applied").
    "drop-first": the first answer is lost (the request did reach the server)."""

    def __init__(self, port, upstream_port):
        self.listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.listen.bind(("127.0.0.1", port))
        self.up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.up.connect(("127.0.0.1", upstream_port))
        self.addr = "127.0.0.1:%d" % port
        self.mode = "relay"
        self.client = None
        self.stopping = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stopping:
            ready, _, _ = select.select([self.listen, self.up], [], [], 0.1)
            for s in ready:
                try:
                    data, addr = s.recvfrom(65535)
                except OSError:
                    continue
                if s is self.listen:
                    self.client = addr
                    self.up.send(data)
                elif self.client is not None:
                    self.answer(data)

    def answer(self, data):
        if self.mode == "forge-first":
            wrong_id = bytes([data[0] ^ 0xFF]) + data[1:]
            bad_mac = bytearray(data)
            bad_mac[-10] ^= 0x01  # inside the 32-byte HMAC-SHA256 MAC, before orig id/error/other
            self.listen.sendto(wrong_id, self.client)
            self.listen.sendto(bytes(bad_mac), self.client)
            self.listen.sendto(data, self.client)
        elif self.mode == "drop-first":
            self.mode = "relay"
        elif self.mode == "tamper-only":
            forged = bytearray(data)
            forged[3] &= 0xF0  # RCODE := NOERROR
            self.listen.sendto(bytes(forged), self.client)
        else:
            self.listen.sendto(data, self.client)

    def close(self):
        self.stopping = True
        self.thread.join(timeout=5)
        self.listen.close()
        self.up.close()


# ---- dns_rfc2136 ----

def case_rfc2136(tool_path, tmp):
    pdns = PowerDNS(os.path.join(tmp, "pdns"), dns_port=24001, api_port=24002)
    hole = BlackHole(24003)
    proxy = Proxy(24004, 24001)
    try:
        pdns.start()
        big = [str("10.1.0.%d" % i) for i in range(1, 61)]  # > 512 bytes: truncated over UDP
        pdns.create_zone(ZONE, [("big.db.example.", "A", 5, big)])
        tool = Tool(tool_path, pdns)
        rfc2136_steps(tool, pdns, hole, proxy, big)
    except Exception:
        print("---- PowerDNS log ----\n%s" % pdns.log(), flush=True)
        raise
    finally:
        proxy.close()
        hole.close()
        pdns.stop()


def rfc2136_steps(tool, pdns, hole, proxy, big):
    v1, v2, v3 = ("10.0.0.1", 1, "r1"), ("10.0.0.2", 2, "r2"), ("10.0.0.3", 3, "r3")

    r = tool.get()
    check(r["outcome"] == "OK" and not r["found"]["exists"], "get: an empty name", r)

    r = tool.cas(None, v1)
    check(r["outcome"] == "OK", "cas from nothing applied", r)
    check(holds(pdns, v1)[0], "dig shows the first address and its stamp", holds(pdns, v1)[1])

    r = tool.cas(None, v2)
    check(r["outcome"] == "CONFLICT" and found(r) == v1,
          "cas expecting nothing when the name is set: CONFLICT, found the current value", r)
    check(holds(pdns, v1)[0], "...and nothing changed", holds(pdns, v1)[1])

    r = tool.cas(v1, v2)
    check(r["outcome"] == "OK" and found(r) == v2, "cas with the right expectation applied", r)
    check(holds(pdns, v2)[0], "dig shows the new address and stamp", holds(pdns, v2)[1])
    r = tool.get()
    check(r["outcome"] == "OK" and found(r) == v2 and r["found"]["ttl"] == 5,
          "get reads back address, stamp and TTL", r)

    # A deposed leader read v1, lost leadership, and its write arrives after epoch 2's.
    r = tool.cas(v1, ("10.0.0.9", 1, "r9"))
    check(r["outcome"] == "CONFLICT" and found(r) == v2 and "NXRRSET" in r["message"],
          "a deposed leader's late write (older epoch's stamp): CONFLICT, found epoch 2", r)
    check(holds(pdns, v2)[0], "...and nothing changed", holds(pdns, v2)[1])

    # Same address, older stamp: the TXT prerequisite alone refuses it.
    r = tool.cas((v2[0], 1, "r1"), v3)
    check(r["outcome"] == "CONFLICT" and found(r) == v2,
          "right address but an older epoch's stamp: CONFLICT", r)
    check(holds(pdns, v2)[0], "...and nothing changed", holds(pdns, v2)[1])

    r = tool.cas(v2, v3, secret=WRONG_SECRET)
    check(r["outcome"] == "FAILED" and ("REFUSED" in r["message"] or "NOTAUTH" in r["message"]
                                        or "BADSIG" in r["message"]),
          "wrong TSIG secret: FAILED, the server refused it", r)
    check(holds(pdns, v2)[0], "...and nothing changed", holds(pdns, v2)[1])
    r = tool.cas(v2, v3, key_name="unknown-key.")
    check(r["outcome"] == "FAILED", "unknown TSIG key name: FAILED", r)
    check(holds(pdns, v2)[0], "...and nothing changed", holds(pdns, v2)[1])

    udp = subprocess.run(["dig", "@127.0.0.1", "-p", str(pdns.dns_port), "+norecurse", "+noedns",
                          "+ignore", "+time=2", "+tries=1", "big.db.example.", "A"],
                         capture_output=True, text=True, timeout=10).stdout
    check(" tc" in udp.split("flags:")[1].split(";")[0] and "ANSWER: 0" in udp,
          "PowerDNS truncates that answer over UDP without EDNS (as the tool asks)", udp)
    r = tool.get(name="big.db.example.")
    check(r["outcome"] == "OK" and r["found"]["address"] in big
          and "60 address records" in r["message"],
          "a truncated UDP answer is read again over TCP (all 60 records)", r)

    # Forged answers on the path: ignored; the real one is taken.
    proxy.mode = "forge-first"
    r = tool.cas(v2, v3, servers=[proxy.addr])
    check(r["outcome"] == "OK" and found(r) == v3,
          "answers with a wrong id or a bad TSIG MAC are ignored, the real one is taken", r)
    check(holds(pdns, v3)[0], "...and the update was applied once", holds(pdns, v3)[1])
    # The UPDATE was applied but its answer lost: the retransmission fails its prerequisites,
    # and the name holds exactly the new value.
    v4 = ("10.0.0.4", 4, "r4")
    proxy.mode = "drop-first"
    r = tool.cas(v3, v4, servers=[proxy.addr], timeout_ms=2000)
    check(r["outcome"] == "OK" and found(r) == v4 and "earlier copy" in r["message"],
          "first answer lost, retransmission refused by its own prerequisites: OK", r)
    check(holds(pdns, v4)[0], "...and the name holds the new value", holds(pdns, v4)[1])
    # A forged "NOERROR" for a stale write is never believed.
    proxy.mode = "tamper-only"
    start = time.monotonic()
    r = tool.cas(v1, ("10.0.0.9", 1, "r9"), servers=[proxy.addr], timeout_ms=1500)
    check(r["outcome"] == "RETRY" and "TSIG" in r["message"],
          "a forged NOERROR (TSIG does not verify) is not taken: RETRY, not OK", r)
    check(time.monotonic() - start < 10, "...within the timeout")
    check(holds(pdns, v4)[0], "...and nothing changed", holds(pdns, v4)[1])
    proxy.mode = "relay"

    # A server that never answers: retransmitted, then RETRY at the timeout, not a hang.
    hole.drain()
    r = tool.cas(v4, v1, servers=[hole.addr], timeout_ms=1500)
    sent = hole.drain()
    check(r["outcome"] == "RETRY" and "timeout after 1500 ms" in r["message"],
          "a server that never answers: RETRY", r)
    check(1400 <= r["elapsed_ms"] <= 2500, "...at the timeout", r["elapsed_ms"])
    check(len(sent) >= 2 and len(set(sent)) == 1,
          "...after retransmitting the same signed UPDATE", "%d datagrams" % len(sent))
    r = tool.get(servers=[hole.addr], timeout_ms=1000)
    check(r["outcome"] == "RETRY" and r["elapsed_ms"] <= 2000, "get from it: RETRY", r)

    # PowerDNS stopped, then started again.
    pdns.stop()
    r = tool.cas(v4, v1, timeout_ms=2000)
    check(r["outcome"] == "RETRY" and r["elapsed_ms"] <= 3000,
          "server stopped: cas says RETRY within the timeout", r)
    r = tool.get(timeout_ms=2000)
    check(r["outcome"] == "RETRY" and r["elapsed_ms"] <= 3000,
          "server stopped: get says RETRY within the timeout", r)
    pdns.start()
    r = tool.cas(v4, v1)
    check(r["outcome"] == "OK" and holds(pdns, v1)[0], "after the restart the same cas applies", r)


# ---- dns_verify ----

def case_verify(tool_path, tmp):
    a = PowerDNS(os.path.join(tmp, "a"), dns_port=24011, api_port=24012)
    b = PowerDNS(os.path.join(tmp, "b"), dns_port=24021, api_port=24022)
    hole = BlackHole(24013)
    try:
        a.start()
        b.start()
        records = [(NAME, "A", 5, ["10.0.0.1"]), (NAME, "TXT", 5, ['"epoch=1 region=r1"'])]
        a.create_zone(ZONE, records)
        b.create_zone(ZONE, records)
        verify_steps(Tool(tool_path, a), Tool(tool_path, b), a, b, hole)
    except Exception:
        print("---- PowerDNS A log ----\n%s\n---- B ----\n%s" % (a.log(), b.log()), flush=True)
        raise
    finally:
        hole.close()
        a.stop()
        b.stop()


def verify_steps(ta, tb, a, b, hole):
    v1, v2, v3 = ("10.0.0.1", 1, "r1"), ("10.0.0.2", 2, "r2"), ("10.0.0.3", 3, "r3")
    both = [ta.server, tb.server]

    r = ta.verify(both, v2)
    check(not r["all_agree"] and r["n_agree"] == 0 and r["n_servers"] == 2,
          "before the change: nobody agrees", r)
    check(ta.server in r["message"] and tb.server in r["message"]
          and "10.0.0.1 epoch=1 region=r1" in r["message"],
          "...and the message says what each answers", r["message"])

    check(ta.cas(v1, v2)["outcome"] == "OK" and tb.cas(v1, v2)["outcome"] == "OK",
          "the change made on both servers")
    r = ta.verify(both, v2)
    check(r["all_agree"] and r["n_agree"] == 2, "after the change: both agree", r)

    r = ta.verify(both, ("10.0.0.2", 3, "r2"))
    check(not r["all_agree"] and r["n_agree"] == 0, "same address, another epoch: no agreement",
          r)

    check(ta.cas(v2, v3)["outcome"] == "OK", "a further change on the first server only")
    r = ta.verify(both, v3)
    check(not r["all_agree"] and r["n_agree"] == 1 and tb.server in r["message"]
          and "10.0.0.2 epoch=2 region=r2" in r["message"] and ta.server not in r["message"],
          "one server lags: 1 of 2, and the message names it and what it answers", r)

    b.stop()
    r = ta.verify(both, v3)
    check(not r["all_agree"] and r["n_agree"] == 1 and tb.server in r["message"]
          and r["elapsed_ms"] <= 3000,
          "one of two servers down: not all agree, the message names the one that is down", r)

    r = ta.verify([ta.server, hole.addr], v3, timeout_ms=1000)
    check(not r["all_agree"] and r["n_agree"] == 1 and hole.addr in r["message"]
          and "timeout" in r["message"] and r["elapsed_ms"] <= 2500,
          "a server that never answers: reported by name after the per-query timeout", r)

    b.start()
    check(tb.cas(v2, v3)["outcome"] == "OK", "the restarted server catches up")
    r = ta.verify(both, v3)
    check(r["all_agree"] and r["n_agree"] == 2, "then both agree", r)


CASES = {"rfc2136": case_rfc2136, "verify": case_verify}


def main(argv):
    if len(argv) != 3 or argv[2] not in CASES or not os.access(argv[1], os.X_OK):
        print("usage: test_rfc2136.py RFC2136_TOOL rfc2136|verify", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="aragora-dns-%s-" % argv[2])
    ok = False
    try:
        CASES[argv[2]](argv[1], tmp)
        ok = True
    except AssertionError as e:
        print("FAIL %s" % e, flush=True)
    finally:
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("(directory kept: %s)" % tmp)
    print("%d passed, %d failed" % (len(PASSED), 0 if ok else 1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
