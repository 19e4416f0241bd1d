#!/usr/bin/env python3
"""Operator hooks (coordinator/hooks.c, docs/hooks.md): runs test_hooks (TEST_HOOKS) against
the shell hooks in this folder and a webhook receiver served here, then checks what the receiver
got. Python 3 standard library only.

The receiver listens on 127.0.0.1:22101 (nothing may listen on 22102, the "unreachable" URL):
    POST /ok           200
    POST /flaky        500, 500, then 200
    POST /retry-after  429 with Retry-After: 1, then 200
    POST /notfound     404
    POST /slow         answers only after 3 s (a hung receiver: the attempt times out first)
Every request is recorded (path, headers, body) and checked after the C program has finished.
"""

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

WEBHOOK_PORT = 22101
CLOSED_PORT = 22102
HERE = os.path.dirname(os.path.abspath(__file__))


class Receiver(http.server.BaseHTTPRequestHandler):
    requests = []
    counts = {}
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with Receiver.lock:
            n = Receiver.counts.get(self.path, 0) + 1
            Receiver.counts[self.path] = n
            Receiver.requests.append({"path": self.path, "headers": dict(self.headers),
                                      "body": body.decode()})
        status, extra = 200, {}
        if self.path == "/slow":
            threading.Event().wait(3)  # the hung receiver itself, not the test waiting
        if self.path == "/flaky" and n <= 2:
            status = 500
        elif self.path == "/retry-after" and n == 1:
            status, extra = 429, {"Retry-After": "1"}
        elif self.path == "/notfound":
            status = 404
        self.send_response(status)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, fmt, *args):
        sys.stderr.write("  receiver: %s\n" % (fmt % args))


def check(cond, what, failures):
    print("%s %s" % ("ok  " if cond else "FAIL", what))
    if not cond:
        failures.append(what)


def check_received(failures):
    reqs = Receiver.requests
    by_path = {}
    for r in reqs:
        by_path.setdefault(r["path"], []).append(r)
    ok = by_path.get("/ok", [])
    # /ok: once from test_webhook_delivered (with the token), once from the unreachable case
    check(len(ok) == 2, "/ok received 2 POSTs (got %d)" % len(ok), failures)
    with_token = [r for r in ok if r["headers"].get("Authorization") == "Bearer tok-123"]
    check(len(with_token) == 1, "one /ok POST carried 'Authorization: Bearer tok-123'", failures)
    if with_token:
        r = with_token[0]
        h = r["headers"]
        body = json.loads(r["body"])
        print("  webhook body: %s" % r["body"])
        check(h.get("Content-Type") == "application/json", "Content-Type: application/json",
              failures)
        check(h.get("X-Aragora-Event") == "primary-changed", "X-Aragora-Event", failures)
        check(h.get("X-Aragora-Delivery") == body.get("id"), "X-Aragora-Delivery is the id",
              failures)
        check(h.get("X-Aragora-Attempt") == "1", "X-Aragora-Attempt: 1", failures)
        check(h.get("User-Agent", "").startswith("aragora-coordinator/"), "User-Agent", failures)
        check(body.get("event") == "primary-changed" and body.get("node") == "eu-west-1"
              and body.get("epoch") == 7
              and body.get("primary") == {"region": "eu-west-1", "host": "10.1.0.5",
                                          "port": 5432}
              and body.get("previous_primary") == "us-east-2"
              and body.get("detail") == "failover: lease expired"
              and body.get("id", "").startswith("eu-west-1-")
              and body.get("time", "").endswith("Z"), "the JSON body", failures)
    flaky = by_path.get("/flaky", [])
    check(len(flaky) == 3, "/flaky got 3 attempts (got %d)" % len(flaky), failures)
    check(len({r["headers"].get("X-Aragora-Delivery") for r in flaky}) == 1,
          "the retries carry the same delivery id", failures)
    check([r["headers"].get("X-Aragora-Attempt") for r in flaky] == ["1", "2", "3"],
          "X-Aragora-Attempt counts 1, 2, 3", failures)
    check(len(by_path.get("/retry-after", [])) == 2, "/retry-after got 2 attempts", failures)
    check(len(by_path.get("/notfound", [])) == 1, "/notfound was not retried", failures)
    check(len(by_path.get("/slow", [])) == 2, "/slow got 2 attempts (each timed out)", failures)


def main():
    program = os.environ.get("TEST_HOOKS", "")
    if not os.access(program, os.X_OK):
        print("TEST_HOOKS must name the test_hooks program")
        return 2
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", CLOSED_PORT)) == 0:
            print("port %d must be closed" % CLOSED_PORT)
            return 2
    server = http.server.ThreadingHTTPServer(("127.0.0.1", WEBHOOK_PORT), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out = tempfile.mkdtemp(prefix="aragora-hooks-")
    failures = []
    try:
        rc = subprocess.run([program, HERE, out, str(WEBHOOK_PORT), str(CLOSED_PORT)],
                            timeout=240).returncode
        check(rc == 0, "test_hooks exited 0 (it printed its own cases above)", failures)
        check_received(failures)
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(out, ignore_errors=True)
    print("%d failed" % len(failures) if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
