#!/usr/bin/env python3
"""A real PowerDNS Authoritative server for the DNS tests (lab-recipes §3.1–3.2): sqlite3 backend,
HTTP API, RFC 2136 updates with TSIG, on loopback ports below 32768, in a directory of the test's
own. Python 3 standard library only.

    with PowerDNS(tmpdir, dns_port=20053, api_port=20081) as pdns:
        pdns.create_zone("db.example.")           # SOA/NS, plus TSIG-ALLOW-DNSUPDATE for the key
        pdns.api_key, pdns.tsig_name, pdns.tsig_secret, pdns.api_url
        pdns.dig("primary.db.example.", "A")      # ['127.0.10.1'] (authoritative, no recursion)
        pdns.stop(); pdns.start()                 # stopped and started again by PID

Every process is started here and stopped here by PID.
"""

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

PDNS_SERVER = "/usr/sbin/pdns_server"
SCHEMA = "/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql"


class PowerDNS:
    def __init__(self, directory, dns_port, api_port, api_key="aragora-test-key",
                 tsig_name="aragora-key."):
        self.dir = directory
        self.dns_port = dns_port
        self.api_port = api_port
        self.api_key = api_key
        self.api_url = "http://127.0.0.1:%d" % api_port
        self.tsig_name = tsig_name
        self.tsig_secret = None
        self.proc = None
        self.log_path = os.path.join(directory, "pdns.log")
        os.makedirs(directory, exist_ok=True)
        db = os.path.join(directory, "pdns.sqlite3")
        if not os.path.exists(db):
            with open(SCHEMA, "rb") as schema:
                subprocess.run(["sqlite3", db], stdin=schema, check=True)
        with open(os.path.join(directory, "pdns.conf"), "w") as f:
            f.write("\n".join([
                "launch=gsqlite3",
                "gsqlite3-database=%s" % db,
                "local-address=127.0.0.1",
                "local-port=%d" % dns_port,
                "api=yes",
                "api-key=%s" % api_key,
                "webserver=yes",
                "webserver-address=127.0.0.1",
                "webserver-port=%d" % api_port,
                "webserver-allow-from=127.0.0.0/8",
                "daemon=no",
                "guardian=no",
                "disable-syslog=yes",
                "socket-dir=%s" % directory,
                "security-poll-suffix=",
                "dnsupdate=yes",
                "allow-dnsupdate-from=127.0.0.0/8",
                "default-soa-content=ns1.@ hostmaster.@ 0 10800 3600 604800 5",
                ""]))

    # ---- process ----

    def start(self, timeout=20.0):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([PDNS_SERVER, "--config-dir=%s" % self.dir],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("pdns_server exited with %s; log:\n%s"
                                   % (self.proc.returncode, self.log()))
            try:
                self.api("GET", "/api/v1/servers/localhost")
                return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)  # polling for readiness, bounded by the deadline
        raise RuntimeError("pdns_server API not ready after %.0f s; log:\n%s"
                           % (timeout, self.log()))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    # ---- API ----

    def api(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.api_url + path, data=data, method=method,
                                     headers={"X-API-Key": self.api_key,
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            raw = r.read()
            return json.loads(raw) if raw else None

    def create_zone(self, zone, records=()):
        """A Native zone with NS ns1.<zone>, a TSIG key allowed to update it, and `records`
        [(name, type, ttl, [contents])]."""
        rrsets = [{"name": n, "type": t, "ttl": ttl, "changetype": "REPLACE",
                   "records": [{"content": c, "disabled": False} for c in contents]}
                  for n, t, ttl, contents in records]
        self.api("POST", "/api/v1/servers/localhost/zones",
                 {"name": zone, "kind": "Native", "nameservers": ["ns1." + zone],
                  "rrsets": rrsets})
        if self.tsig_secret is None:
            key = self.api("POST", "/api/v1/servers/localhost/tsigkeys",
                           {"name": self.tsig_name.rstrip("."), "algorithm": "hmac-sha256"})
            self.tsig_secret = key["key"]
        self.api("POST", "/api/v1/servers/localhost/zones/%s/metadata" % zone,
                 {"kind": "TSIG-ALLOW-DNSUPDATE", "metadata": [self.tsig_name.rstrip(".")]})

    def rrsets(self, zone):
        return self.api("GET", "/api/v1/servers/localhost/zones/%s" % zone)["rrsets"]

    # ---- DNS ----

    def dig(self, name, rtype):
        """The authoritative answer's values (TXT without quotes), [] when none."""
        p = subprocess.run(["dig", "@127.0.0.1", "-p", str(self.dns_port), "+norecurse",
                            "+short", "+time=2", "+tries=1", name, rtype],
                           capture_output=True, text=True, timeout=10)
        if p.returncode != 0:
            raise RuntimeError("dig failed: %s %s" % (p.stdout, p.stderr))
        return [line.strip().strip('"') for line in p.stdout.splitlines() if line.strip()]
