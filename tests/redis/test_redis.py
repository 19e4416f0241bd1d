#!/usr/bin/env python3
"""Integration tests of the Redis publisher (coordinator/redis_pub.c, docs/redis.md) against a real
redis-server. Python 3 standard library only.

    test_redis.py CASE       (TEST_REDIS_PUB = path of the test_redis_pub program)

Each case starts its own redis-server on a loopback port below 32768 (22001-22009) with its own
temporary directory, drives `test_redis_pub drive URL` through its stdin/stdout (one command and
one answer per line), checks the key with redis-cli and the channel with a `redis-cli SUBSCRIBE`,
and stops every process it started by PID. Nothing sleeps in place of an event: every wait polls
with a deadline. Time bounds in assertions are generous (CI may be ten times slower); the measured
times are printed.
"""

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from afctest import wait_for  # noqa: E402

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
DRIVER = os.environ.get("TEST_REDIS_PUB", "")
KEY = "aragora:primary"
CHANNEL = "aragora:events"
TIMEOUT_MS = 500  # the publisher's connect and command timeout in these tests
SLACK = 10        # CI may be ten times slower than a laptop
PORTS = {"publish_and_subscribe": 22001, "older_epoch_refused": 22002,
         "hand_written_newer": 22003, "redis_down": 22004, "closed_port": 22005,
         "restart_lands_pending": 22006, "stopped_redis": 22007, "auth_and_db": 22008}


class Redis:
    """A redis-server of the test's own, started and stopped by PID."""

    def __init__(self, directory, port, password=None):
        self.dir, self.port, self.password = directory, port, password
        self.proc = None

    def start(self):
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--daemonize", "no", "--dir", self.dir,
                "--logfile", os.path.join(self.dir, "redis.log")]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_for("redis-server on port %d" % self.port,
                 lambda: self.proc.poll() is None and self.cli("PING") == "PONG", 10, 0.02)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # in case it was stopped
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def cli(self, *args, db=0):
        cmd = [REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port), "-n", str(db)]
        if self.password:
            cmd += ["--no-auth-warning", "-a", self.password]
        out = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=10)
        return out.stdout.strip()

    def get_primary(self, db=0):
        raw = self.cli("GET", KEY, db=db)
        return json.loads(raw) if raw else None


class Subscriber:
    """redis-cli SUBSCRIBE aragora:events; collects the messages."""

    def __init__(self, redis):
        self.proc = subprocess.Popen(
            [REDIS_CLI, "-h", "127.0.0.1", "-p", str(redis.port), "SUBSCRIBE", CHANNEL],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True)
        self.lines = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        # non-tty output: "subscribe", the channel, the count; then per message "message",
        # the channel, the payload
        wait_for("the subscription",
                 lambda: self._snapshot()[:3] == ["subscribe", CHANNEL, "1"], 10, 0.02)

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def _snapshot(self):
        with self.lock:
            return list(self.lines)

    def messages(self):
        lines, out = self._snapshot()[3:], []
        for i in range(0, len(lines) - 2, 3):
            if lines[i] == "message" and lines[i + 1] == CHANNEL:
                out.append(json.loads(lines[i + 2]))
        return out

    def wait_event(self, name, timeout=10):
        return wait_for("a '%s' event on %s" % (name, CHANNEL),
                        lambda: [m for m in self.messages() if m.get("event") == name], timeout,
                        0.02)

    def stop(self):
        self.proc.kill()
        self.proc.wait(10)


def parse(line):
    """'write epoch=3 outcome=written ... msg=free text' -> {'kind': 'write', 'epoch': '3', ...}"""
    head, _, msg = line.partition(" msg=")
    words = head.split(" ")
    d = {"kind": words[0], "line": line}
    for w in words[1:]:
        k, _, v = w.partition("=")
        d[k] = v
    if " msg=" in line:
        d["msg"] = msg
    return d


class Driver:
    """test_redis_pub drive URL: one command per line in, one answer per line out."""

    def __init__(self, url, timeout_ms=TIMEOUT_MS, reconnect_max_ms=1000):
        self.url = url
        self.proc = subprocess.Popen([DRIVER, "drive", url, str(timeout_ms),
                                      str(reconnect_max_ms)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        self.out = queue.Queue()
        self.pending = []  # answers read but not yet expected
        self.log = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()
        self.expect("ready")

    def _read_out(self):
        for line in self.proc.stdout:
            self.out.put(line.rstrip("\n"))

    def _read_err(self):
        for line in self.proc.stderr:
            with self.lock:
                self.log.append(line.rstrip("\n"))
            sys.stderr.write("  driver: " + line)

    def send(self, *lines):
        self.proc.stdin.write("".join(line + "\n" for line in lines))
        self.proc.stdin.flush()

    def expect(self, kind, timeout=10, **match):
        """The first answer of `kind` whose fields equal `match` (others stay for later)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, d in enumerate(self.pending):
                if d["kind"] == kind and all(d.get(k) == str(v) for k, v in match.items()):
                    return self.pending.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no '%s' %s within %.1f s; unmatched answers: %s"
                                     % (kind, match, timeout, [d["line"] for d in self.pending]))
            try:
                self.pending.append(parse(self.out.get(timeout=left)))
            except queue.Empty:
                pass

    def call(self, line, kind, timeout=10, **match):
        self.send(line)
        return self.expect(kind, timeout, **match)

    def publish(self, epoch, region="eu-west-1", host="10.0.0.1", port=5432, since=1764158401417):
        self.send("publish %d %s %s %d %d" % (epoch, region, host, port, since))
        call = self.expect("call", epoch=epoch)
        assert call["rv"] == "0", call["line"]

    def events(self, name):
        with self.lock:
            return [line for line in self.log if " +%s" % name in line]

    def logged(self, text):
        with self.lock:
            return [line for line in self.log if text in line]

    def quit(self):
        self.send("quit")
        self.expect("closed")
        self.expect("loop-closed", rc=0)
        assert self.proc.wait(10) == 0

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


# ---- checks ----

def check(cond, what):
    if not cond:
        raise AssertionError(what)


def check_ticks(drv, bound_ms=250):
    """The loop kept running a 10 ms timer on time while Redis was unavailable."""
    t = drv.call("ticks", "ticks")
    print("  ticker: %s ticks, at most %s ms late" % (t["n"], t["max_late_ms"]))
    check(int(t["n"]) > 0, "the ticker ran")
    check(int(t["max_late_ms"]) < bound_ms, "the loop stalled for %s ms" % t["max_late_ms"])


def expect_fast_failure(drv, epoch, what):
    """publish while Redis is unavailable: FAILED, queued, within timeout_ms (x SLACK)."""
    t0 = time.monotonic()
    drv.publish(epoch)
    w = drv.expect("write", timeout=TIMEOUT_MS * SLACK / 1000.0, epoch=epoch)
    took = (time.monotonic() - t0) * 1000
    print("  %s: publish epoch %d failed after %s ms (measured %.0f ms), timeout_ms %d: %s"
          % (what, epoch, w["ms"], took, TIMEOUT_MS, w.get("msg")))
    check(w["outcome"] == "failed" and w["queued"] == "1", w["line"])
    check(int(w["ms"]) <= TIMEOUT_MS + 100, "the callback came after timeout_ms: " + w["line"])
    check(took < TIMEOUT_MS * SLACK, "took %.0f ms" % took)
    return w


# ---- cases ----

def case_publish_and_subscribe(tmp, port):
    redis = Redis(tmp, port)
    redis.start()
    sub = drv = None
    try:
        sub = Subscriber(redis)
        drv = Driver("redis://127.0.0.1:%d/0" % port)
        drv.publish(3, "eu-west-1", "10.0.0.3", 5432, 1764158401417)
        w = drv.expect("write", epoch=3)
        check(w["outcome"] == "written" and w["stored"] == "3", w["line"])
        raw = redis.cli("GET", KEY)
        print("  %s = %s" % (KEY, raw))
        check(raw == '{"epoch":3,"region":"eu-west-1","host":"10.0.0.3","port":5432,'
                     '"since":1764158401417}', "stored record: " + raw)
        ev = sub.wait_event("primary")
        print("  %s received: %s" % (CHANNEL, json.dumps(ev[0])))
        check(len(ev) == 1 and ev[0]["epoch"] == 3 and ev[0]["region"] == "eu-west-1"
              and ev[0]["host"] == "10.0.0.3" and ev[0]["port"] == 5432
              and ev[0]["by"] == "test-region" and ev[0]["since"] == 1764158401417
              and isinstance(ev[0]["at"], int), "event: %s" % ev)
        e = drv.call('event {"event":"marker","n":1}', "event")
        check(e["rv"] == "0", e["line"])
        sub.wait_event("marker")
        r = drv.call("read", "read")
        check(r["outcome"] == "found" and r["epoch"] == "3" and r["region"] == "eu-west-1"
              and r["host"] == "10.0.0.3" and r["port"] == "5432", r["line"])
        s = drv.call("status", "status")
        check(s["connected"] == "1" and s["written"] == "3" and s["pending"] == "0", s["line"])
        check(drv.events("redis-up") and drv.logged(": wrote epoch=3 region=eu-west-1"),
              "+redis-up and the write logged")
        drv.quit()
    finally:
        for p in (drv, sub):
            if p:
                p.kill() if isinstance(p, Driver) else p.stop()
        redis.stop()


def case_older_epoch_refused(tmp, port):
    redis = Redis(tmp, port)
    redis.start()
    sub = drv = None
    try:
        sub = Subscriber(redis)
        drv = Driver("redis://localhost:%d" % port)  # a name: resolved off the loop
        drv.publish(3, host="10.0.0.3")
        check(drv.expect("write", epoch=3)["outcome"] == "written", "epoch 3 written")
        drv.publish(2, region="us-east-2", host="10.0.0.2")
        w = drv.expect("write", epoch=2)
        print("  epoch 2 after 3: %s" % w["line"])
        check(w["outcome"] == "refused-older" and w["stored"] == "3", w["line"])
        check(redis.get_primary()["epoch"] == 3, "the key keeps epoch 3")
        drv.publish(3, host="10.9.9.9")  # the same epoch again: nothing changes
        w = drv.expect("write", epoch=3)
        check(w["outcome"] == "current" and w["stored"] == "3", w["line"])
        check(redis.get_primary()["host"] == "10.0.0.3", "the same epoch did not rewrite")
        drv.call('event {"event":"marker"}', "event", rv=0)
        sub.wait_event("marker")
        prim = [m["epoch"] for m in sub.messages() if m["event"] == "primary"]
        print("  primary events seen by the subscriber: %s" % prim)
        check(prim == [3], "only the accepted write was published: %s" % prim)
        check(drv.logged("refused epoch=2: the key holds epoch 3"), "the refusal logged")
        # a fresh Redis does not know the script: the first EVALSHA gets NOSCRIPT, the write is
        # sent again as EVAL, and the later writes find the script cached
        stats = {line.split(":")[0]: line.split(":")[1] for line in
                 redis.cli("INFO", "commandstats").splitlines() if line.startswith("cmdstat_")}
        print("  %s / %s" % (stats.get("cmdstat_eval"), stats.get("cmdstat_evalsha")))
        check(stats.get("cmdstat_eval", "").startswith("calls=1,"), "one EVAL (after NOSCRIPT)")
        check(stats.get("cmdstat_evalsha", "").startswith("calls=3,"), "three EVALSHA")
        drv.quit()
    finally:
        if drv:
            drv.kill()
        if sub:
            sub.stop()
        redis.stop()


def case_hand_written_newer(tmp, port):
    redis = Redis(tmp, port)
    redis.start()
    drv = None
    try:
        by_hand = '{"epoch":5,"region":"ap-south-1","host":"10.0.0.5","port":5432,"since":1}'
        check(redis.cli("SET", KEY, by_hand) == "OK", "SET by hand")
        drv = Driver("redis://127.0.0.1:%d" % port)
        drv.publish(4)
        w = drv.expect("write", epoch=4)
        print("  epoch 4 over a hand-written 5: %s" % w["line"])
        check(w["outcome"] == "refused-older" and w["stored"] == "5", w["line"])
        check(redis.cli("GET", KEY) == by_hand, "the hand-written value is untouched")
        drv.publish(6)
        check(drv.expect("write", epoch=6)["outcome"] == "written", "6 over 5")
        # a value without a readable epoch is replaced (and said so)
        redis.cli("SET", KEY, "hello")
        r = drv.call("read", "read")
        check(r["outcome"] == "malformed", r["line"])
        drv.publish(7)
        w = drv.expect("write", epoch=7)
        check(w["outcome"] == "written" and w["malformed"] == "1", w["line"])
        # a key of another type is never clobbered: an error reply, not retried
        redis.cli("DEL", KEY)
        redis.cli("HSET", KEY, "a", "b")
        drv.publish(8)
        w = drv.expect("write", epoch=8)
        print("  epoch 8 over a hash: %s" % w["line"])
        check(w["outcome"] == "failed" and w["queued"] == "0" and "WRONGTYPE" in w["msg"],
              w["line"])
        check(redis.cli("TYPE", KEY) == "hash", "the hash is untouched")
        redis.cli("DEL", KEY)
        r = drv.call("read", "read")
        check(r["outcome"] == "absent", r["line"])
        drv.quit()
    finally:
        if drv:
            drv.kill()
        redis.stop()


def case_redis_down(tmp, port):
    redis = Redis(tmp, port)
    redis.start()
    drv = None
    try:
        drv = Driver("redis://127.0.0.1:%d" % port)
        drv.publish(1)
        check(drv.expect("write", epoch=1)["outcome"] == "written", "epoch 1 written")
        redis.stop()
        wait_for("+redis-down", lambda: drv.events("redis-down"), 10, 0.02)
        drv.call("ticks", "ticks")  # reset the ticker's record
        expect_fast_failure(drv, 2, "redis stopped")
        t0 = time.monotonic()
        r = drv.call("read", "read", timeout=TIMEOUT_MS * SLACK / 1000.0)
        print("  read while down: %s after %.0f ms" % (r["outcome"], (time.monotonic() - t0) * 1000))
        check(r["outcome"] == "failed", r["line"])
        e = drv.call('event {"event":"x"}', "event")
        check(e["rv"] == "-14", "publish_event while down is dropped (AFC_EIO): " + e["line"])
        s = drv.call("status", "status")
        print("  %s" % s["line"])
        check(s["connected"] == "0" and s["pending"] == "2" and s["dropped"] == "1", s["line"])
        check_ticks(drv)
        drv.quit()  # closing while Redis is down is clean and prompt
    finally:
        if drv:
            drv.kill()
        redis.stop()


def case_closed_port(tmp, port):
    with socket.socket() as s:  # nothing listens there
        check(s.connect_ex(("127.0.0.1", port)) != 0, "port %d is closed" % port)
    drv = Driver("redis://127.0.0.1:%d" % port)
    try:
        drv.call("ticks", "ticks")
        expect_fast_failure(drv, 1, "closed port")
        r = drv.call("read", "read", timeout=TIMEOUT_MS * SLACK / 1000.0)
        check(r["outcome"] == "failed", r["line"])
        s = drv.call("status", "status")
        print("  %s" % s["line"])
        check(s["connected"] == "0" and "127.0.0.1:%d" % port in s["line"], s["line"])
        check(drv.events("redis-down"), "+redis-down logged")
        check(len(drv.events("redis-down")) == 1, "one +redis-down per outage, not per attempt")
        check_ticks(drv)
        drv.quit()
    finally:
        drv.kill()


def case_restart_lands_pending(tmp, port):
    redis = Redis(tmp, port)
    redis.start()
    drv = None
    try:
        drv = Driver("redis://127.0.0.1:%d" % port, reconnect_max_ms=400)
        drv.publish(1)
        check(drv.expect("write", epoch=1)["outcome"] == "written", "epoch 1 written")
        redis.stop()
        wait_for("+redis-down", lambda: drv.events("redis-down"), 10, 0.02)
        expect_fast_failure(drv, 7, "redis stopped")
        drv.publish(6)  # lower than the pending 7: superseded at once
        w = drv.expect("write", epoch=6, timeout=2)
        check(w["outcome"] == "superseded", w["line"])
        expect_fast_failure(drv, 8, "redis stopped")  # replaces 7 (whose callback already ran)
        s = drv.call("status", "status")
        check(s["pending"] == "8", s["line"])
        t0 = time.monotonic()
        redis.start()  # a fresh, empty Redis on the same port
        landed = drv.expect("landed", timeout=(400 + TIMEOUT_MS) * SLACK / 1000.0, epoch=8)
        print("  after the restart: %s (%.0f ms after redis-server was started)"
              % (landed["line"], (time.monotonic() - t0) * 1000))
        check(landed["outcome"] == "written" and landed["stored"] == "8", landed["line"])
        check(redis.get_primary()["epoch"] == 8, "the key holds the coalesced write")
        check(not drv.logged("wrote epoch=7"), "epoch 7 was never written")
        check(len(drv.events("redis-up")) >= 2, "+redis-up again after the restart")
        s = drv.call("status", "status")
        check(s["connected"] == "1" and s["pending"] == "0" and s["written"] == "8", s["line"])
        drv.quit()
    finally:
        if drv:
            drv.kill()
        redis.stop()


def case_stopped_redis(tmp, port):
    """SIGSTOP: TCP still accepts, commands are never answered — the command watchdog."""
    redis = Redis(tmp, port)
    redis.start()
    drv = None
    try:
        drv = Driver("redis://127.0.0.1:%d" % port, reconnect_max_ms=400)
        drv.publish(1)
        check(drv.expect("write", epoch=1)["outcome"] == "written", "epoch 1 written")
        redis.signal(signal.SIGSTOP)
        drv.call("ticks", "ticks")
        expect_fast_failure(drv, 2, "redis frozen")
        wait_for("the command watchdog",
                 lambda: [l for l in drv.log if "not answered within" in l], 10, 0.02)
        check_ticks(drv)
        # reconnects meanwhile reach the kernel's accept queue, but "ready" needs an answer
        check(len(drv.events("redis-up")) == 1, "no +redis-up while Redis is frozen")
        redis.signal(signal.SIGCONT)
        landed = drv.expect("landed", timeout=(400 + TIMEOUT_MS) * SLACK / 1000.0, epoch=2)
        print("  after SIGCONT: %s" % landed["line"])
        # Redis may run the timed-out EVALSHA still buffered on the dropped connection when it
        # resumes: then the retry finds its own epoch there ("current"). Both are correct.
        check(landed["outcome"] in ("written", "current") and landed["stored"] == "2",
              landed["line"])
        check(redis.get_primary()["epoch"] == 2, "epoch 2 landed")
        # closing with a write in flight: its callback says "closed"
        redis.signal(signal.SIGSTOP)
        drv.send("publish 3 eu-west-1 10.0.0.1 5432 0", "quit")
        w = drv.expect("write", epoch=3)
        check(w["outcome"] == "closed", w["line"])
        drv.expect("closed")
        drv.expect("loop-closed", rc=0)
        check(drv.proc.wait(10) == 0, "driver exit status")
    finally:
        if drv:
            drv.kill()
        redis.stop()


def case_auth_and_db(tmp, port):
    redis = Redis(tmp, port, password="s3cret")
    redis.start()
    drv = bad = None
    try:
        drv = Driver("redis://:s3cret@127.0.0.1:%d/2" % port)
        drv.publish(4)
        check(drv.expect("write", epoch=4)["outcome"] == "written", "written with AUTH")
        check(redis.get_primary(db=2)["epoch"] == 4, "written to database 2")
        check(redis.get_primary(db=0) is None, "not to database 0")
        drv.quit()
        bad = Driver("redis://:wrong-pw@127.0.0.1:%d/2" % port)
        w = None
        bad.publish(5)
        w = bad.expect("write", epoch=5, timeout=TIMEOUT_MS * SLACK / 1000.0)
        print("  wrong password: %s" % w["line"])
        check(w["outcome"] == "failed" and "AUTH: WRONGPASS" in w["msg"], w["line"])
        bad.quit()
        check(not [l for l in bad.log if "wrong-pw" in l], "the password is never logged")
        check("wrong-pw" not in w["line"], "the password is not in the message")
    finally:
        for d in (drv, bad):
            if d:
                d.kill()
        redis.stop()


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        print("usage: test_redis.py {%s}" % ",".join(sorted(CASES)))
        return 2
    if not DRIVER or not os.access(DRIVER, os.X_OK):
        print("TEST_REDIS_PUB must name the test_redis_pub program")
        return 2
    name = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="aragora-redis-%s-" % name)
    try:
        CASES[name](tmp, PORTS[name])
    except AssertionError as e:
        print("FAIL %s: %s" % (name, e))
        print("0 passed, 1 failed")
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("ok   %s" % name)
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
