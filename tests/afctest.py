"""Helpers shared by the Python tests: awaiting a condition, free ports, running a program, whether
a process is gone. A test script imports it after putting tests/ on sys.path:

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from afctest import wait_for, ports_free, run
"""
import http.server
import socket
import subprocess
import threading
import time


class Timeout(AssertionError):
    """An awaited condition did not come true in time."""


def wait_for(what, pred, timeout=30.0, interval=0.05):
    """Poll pred() until it returns a truthy value (returned) or the deadline passes (Timeout).
    The interval is how often to look, not a stand-in for the event."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise Timeout("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def ports_free(base, count=1, host="127.0.0.1"):
    """Can every TCP port in [base, base+count) be bound on host right now? (SO_REUSEADDR: a
    connection in TIME_WAIT is no conflict.)"""
    for port in range(base, base + count):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def run(args, timeout=120, env=None, check=True, merge_output=False):
    """Run a program to completion, its output captured as text (stderr into stdout when
    merge_output). With check, a non-zero exit raises AssertionError showing the output."""
    p = subprocess.run(args, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT if merge_output else subprocess.PIPE,
                       text=True, timeout=timeout, env=env)
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d\nstdout:\n%s\nstderr:\n%s"
                             % (" ".join(args), p.returncode, p.stdout, p.stderr or ""))
    return p


def pid_gone(pid):
    """True if the process no longer runs (absent, or a zombie awaiting its reaper)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


def serve_canned_http(port, status, body, headers=(), seen=None):
    """A threaded HTTP/1.1 server on 127.0.0.1:port (0: any free port) that answers every GET and
    PATCH with status, headers ((name, value) pairs) and body, reading each request's body first
    (so kept-alive connections stay in step); with seen, each (method, body) is appended to it.
    Returns the server (its server_port; shutdown() and server_close() when done)."""
    class Canned(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self):
            n = int(self.headers.get("Content-Length") or 0)
            got = self.rfile.read(n)
            if seen is not None:
                seen.append((self.command, got))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        do_GET = do_PATCH = answer

        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Canned)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
