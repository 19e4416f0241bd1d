#!/usr/bin/env python3
"""The HTTP DNS providers end to end, through tests/dns/dns_tool (one operation per run, its
result as one JSON line):

    test_providers.py powerdns     against a real PowerDNS Authoritative (dnslab.py)
    test_providers.py cloudflare   against the Cloudflare API stub (stubs.py)
    test_providers.py route53      against the Route 53 API stub (stubs.py)

Every scenario asserts dns_tool's outcome (ok / conflict / retry / failed), what it found, and
what the server then holds (`dig` at PowerDNS, the stubs' records); the stubs' shape violations
fail the test. Each case runs in a fresh temporary directory; PowerDNS listens on free loopback
ports below 32768. No sleep stands in for an awaited event: each dns_tool run is waited for.
Python 3 standard library only. Exit 0 when every scenario passed.
"""

import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from afctest import serve_canned_http  # noqa: E402
from dnslab import PowerDNS  # noqa: E402
from stubs import (CF_AUTH_ERROR, CF_INVALID_TOKEN, R53_EXPIRED, R53_PRIOR,  # noqa: E402
                   R53_THROTTLING, Answer, CloudflareStub, Route53Stub, cf_error, r53_error)

DNS_TOOL = os.environ.get("DNS_TOOL") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "tests", "dns", "dns_tool")
NAME = "primary.db.example."
ZONE = "db.example."
TOOL_TIMEOUT_S = 60


def free_port_pair():
    """A TCP+UDP port and a second TCP port, free now, in 20000..22999: below the ephemeral
    range (an outgoing connection cannot take them meanwhile) and below the integration tests'
    labs (23000 up), which run beside these tests."""
    rng = random.Random()
    for _ in range(200):
        a, b = rng.randrange(20000, 23000), rng.randrange(20000, 23000)
        if a == b:
            continue
        socks = []
        try:
            for port, kind in ((a, socket.SOCK_STREAM), (a, socket.SOCK_DGRAM),
                               (b, socket.SOCK_STREAM)):
                s = socket.socket(socket.AF_INET, kind)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return a, b
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port pair below 32768")


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def tool(args, env_extra, op="get", cas=None):
    """Run dns_tool; returns its JSON result. cas: the cas options after the operation."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ARAGORA_DNS_", "AWS_"))}
    env.update(env_extra)
    argv = [DNS_TOOL] + args + [op] + (cas or [])
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
    assert p.returncode == 0, "dns_tool exit %d: %s %s" % (p.returncode, p.stdout, p.stderr)
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1, "dns_tool printed %r" % p.stdout
    res = json.loads(lines[0])
    print("    %s %s -> %s %s" % (op, " ".join(cas or []), res["outcome"], res["message"]))
    return res


def cas_args(address, epoch, region, expect=None, expect_ttl=None):
    """expect: None (nothing expected) or (address, epoch, region)."""
    a = []
    if expect is None:
        a.append("--expect-none")
    else:
        a += ["--expect-address", expect[0]]
        if expect[1]:
            a += ["--expect-epoch", str(expect[1]), "--expect-region", expect[2]]
        if expect_ttl is not None:
            a += ["--expect-ttl", str(expect_ttl)]
    return a + ["--address", address, "--epoch", str(epoch), "--region", region]


def expect_outcome(res, outcome):
    assert res["outcome"] == outcome, "expected %s, got %s: %s" % (outcome, res["outcome"],
                                                                   res["message"])


def expect_found(res, address, epoch, region):
    f = res["found"]
    if address is None:
        assert not f["exists"] and not f["stamped"], "expected nothing, found %r" % f
        return
    assert f["exists"] and f["address"] == address, "expected %s, found %r" % (address, f)
    assert f["stamped"] and f["epoch"] == epoch and f["region"] == region, \
        "expected epoch=%d region=%s, found %r" % (epoch, region, f)


class Runner:
    def __init__(self):
        self.passed = []

    def run(self, name, fn):
        print("--- %s" % name)
        fn()
        self.passed.append(name)
        print("ok  %s" % name)


# ---------------------------------------------------------------------------------------------
# PowerDNS (real server)
# ---------------------------------------------------------------------------------------------

def case_powerdns(tmp):
    dns_port, api_port = free_port_pair()
    pdns = PowerDNS(os.path.join(tmp, "pdns"), dns_port=dns_port, api_port=api_port)
    pdns.start()
    try:
        run_powerdns(pdns)
    finally:
        pdns.stop()


def run_powerdns(pdns):
    r = Runner()
    base = ["--provider", "powerdns", "--name", NAME, "--zone", ZONE, "--ttl", "5",
            "--timeout-ms", "3000", "--api-url", pdns.api_url]
    env = {"ARAGORA_DNS_POWERDNS_API_KEY": pdns.api_key}
    pdns.create_zone(ZONE)

    def dig():
        return pdns.dig(NAME, "A"), pdns.dig(NAME, "TXT")

    def get_empty():
        res = tool(base, env)
        expect_outcome(res, "ok")
        expect_found(res, None, 0, "")

    def cas_from_nothing():
        res = tool(base, env, "cas", cas_args("127.0.10.1", 1, "us-east-2"))
        expect_outcome(res, "ok")
        assert dig() == (["127.0.10.1"], ["epoch=1 region=us-east-2"]), dig()
        res = tool(base, env)
        expect_outcome(res, "ok")
        expect_found(res, "127.0.10.1", 1, "us-east-2")
        assert res["found"]["ttl"] == 5, res

    def cas_moves_dig():
        res = tool(base, env, "cas", cas_args("127.0.10.2", 2, "eu-west-1",
                                              ("127.0.10.1", 1, "us-east-2")))
        expect_outcome(res, "ok")
        assert dig() == (["127.0.10.2"], ["epoch=2 region=eu-west-1"]), dig()

    def stale_refused():
        # A deposed leader's late write: it still expects what epoch 1 put there.
        res = tool(base, env, "cas", cas_args("127.0.10.3", 3, "ap-south-1",
                                              ("127.0.10.1", 1, "us-east-2")))
        expect_outcome(res, "conflict")
        expect_found(res, "127.0.10.2", 2, "eu-west-1")
        assert dig() == (["127.0.10.2"], ["epoch=2 region=eu-west-1"]), dig()
        # Expecting nothing while something is there is refused too.
        res = tool(base, env, "cas", cas_args("127.0.10.3", 3, "ap-south-1"))
        expect_outcome(res, "conflict")
        assert dig() == (["127.0.10.2"], ["epoch=2 region=eu-west-1"]), dig()

    def wrong_key():
        bad = {"ARAGORA_DNS_POWERDNS_API_KEY": "not-the-key"}
        expect_outcome(tool(base, bad), "failed")
        res = tool(base, bad, "cas", cas_args("127.0.10.3", 3, "ap-south-1",
                                              ("127.0.10.2", 2, "eu-west-1")))
        expect_outcome(res, "failed")
        assert "401" in res["message"], res
        assert dig() == (["127.0.10.2"], ["epoch=2 region=eu-west-1"]), dig()

    def unknown_zone():
        other = ["--provider", "powerdns", "--name", "primary.nowhere.example.", "--zone",
                 "nowhere.example.", "--api-url", pdns.api_url]
        res = tool(other, env)
        expect_outcome(res, "failed")
        assert "404" in res["message"], res

    def unprocessable():
        # PowerDNS refuses an A RRset beside a CNAME with 422 {"error": ...}: FAILED, its text.
        pdns.create_zone("cname.example.", [("primary.cname.example.", "CNAME", 5,
                                             ["elsewhere.example."])])
        other = ["--provider", "powerdns", "--name", "primary.cname.example.", "--zone",
                 "cname.example.", "--api-url", pdns.api_url]
        res = tool(other, env, "cas", cas_args("127.0.10.9", 1, "us-east-2"))
        expect_outcome(res, "failed")
        assert "422" in res["message"] and "onflicts" in res["message"], res

    def stopped_then_restarted():
        pdns.stop()
        res = tool(base, env)
        expect_outcome(res, "retry")
        res = tool(base, env, "cas", cas_args("127.0.10.3", 3, "ap-south-1",
                                              ("127.0.10.2", 2, "eu-west-1")))
        expect_outcome(res, "retry")
        assert "nothing was sent" in res["message"], res
        pdns.start()
        res = tool(base, env, "cas", cas_args("127.0.10.3", 3, "ap-south-1",
                                              ("127.0.10.2", 2, "eu-west-1")))
        expect_outcome(res, "ok")
        assert dig() == (["127.0.10.3"], ["epoch=3 region=ap-south-1"]), dig()

    def family_change():
        res = tool(base, env, "cas", cas_args("fd00::10", 4, "us-east-2",
                                              ("127.0.10.3", 3, "ap-south-1")))
        expect_outcome(res, "ok")
        assert pdns.dig(NAME, "A") == [] and pdns.dig(NAME, "AAAA") == ["fd00::10"], \
            (pdns.dig(NAME, "A"), pdns.dig(NAME, "AAAA"))
        res = tool(base, env)
        expect_found(res, "fd00::10", 4, "us-east-2")

    def rate_limited_by_a_front():
        # A reverse proxy in front of the API that throttles: 429 with Retry-After is a RETRY
        # no sooner than it asks; nothing reaches PowerDNS
        front = serve_canned_http(0, 429, b'{"error": "Too Many Requests"}',
                                  (("Retry-After", "3"), ("Content-Type", "application/json")))
        try:
            throttled = list(base)
            throttled[throttled.index("--api-url") + 1] = "http://127.0.0.1:%d" % front.server_port
            before = dig()
            res = tool(throttled, env, "cas", cas_args("127.0.10.9", 9, "us-east-2",
                                                       ("127.0.10.2", 2, "eu-west-1")))
            expect_outcome(res, "retry")
            assert res["retry_after_ms"] == 3000 and "429" in res["message"], res
            assert dig() == before, dig()
        finally:
            front.shutdown()
            front.server_close()
            front.server_close()

    r.run("get on an empty zone", get_empty)
    r.run("cas from nothing", cas_from_nothing)
    r.run("cas with the right expectation moves dig", cas_moves_dig)
    r.run("a stale expectation is refused and changes nothing", stale_refused)
    r.run("a wrong API key fails", wrong_key)
    r.run("an unknown zone fails", unknown_zone)
    r.run("422 fails with PowerDNS's text", unprocessable)
    r.run("PowerDNS stopped: retry; restarted: the cas succeeds", stopped_then_restarted)
    r.run("429 from a throttling front: retry after Retry-After", rate_limited_by_a_front)
    r.run("IPv4 to IPv6", family_change)
    return r


# ---------------------------------------------------------------------------------------------
# Cloudflare (stub)
# ---------------------------------------------------------------------------------------------

def case_cloudflare(tmp):
    zone_id = "023e105f4ecef8ad9ca31a8372d0c353"
    token = "cf-test-token-" + os.urandom(8).hex()
    with CloudflareStub(zone_id, ZONE, token) as stub:
        run_cloudflare(stub, zone_id, token)


def run_cloudflare(stub, zone_id, token):
    r = Runner()
    base = ["--provider", "cloudflare", "--name", NAME, "--zone", ZONE, "--ttl", "5",
            "--timeout-ms", "3000", "--api-url", stub.api_url, "--zone-id", zone_id]
    env = {"ARAGORA_DNS_CLOUDFLARE_TOKEN": token}
    short = NAME.rstrip(".")

    def writes():
        return [(m, p.rsplit("/", 1)[-1] if m == "PATCH" else "") for m, p, _ in stub.requests()
                if m in ("POST", "PATCH")]

    def check(fn):
        def wrapped():
            stub.clear_log()
            fn()
            v = stub.take_violations()
            assert not v, "the stub saw requests that violate the documented shape: %s" % v
        return wrapped

    def get_empty():
        res = tool(base, env)
        expect_outcome(res, "ok")
        expect_found(res, None, 0, "")
        assert [m for m, _, _ in stub.requests()] == ["GET"], stub.requests()

    def cas_from_nothing():
        res = tool(base, env, "cas", cas_args("127.0.10.1", 1, "us-east-2"))
        expect_outcome(res, "ok")
        # Created: the address first, the stamp last (the commit mark); TTL 5 sent as 60.
        posts = [p for m, p, _ in stub.requests() if m == "POST"]
        assert len(posts) == 2, stub.requests()
        st = stub.state(short)
        assert st == {"A": [("127.0.10.1", 60)], "TXT": [('"epoch=1 region=us-east-2"', 60)]}, st
        order = [rec["type"] for rec in stub.records.values()]
        assert order == ["A", "TXT"], order
        res = tool(base, env)
        expect_found(res, "127.0.10.1", 1, "us-east-2")
        assert res["found"]["ttl"] == 60, res

    def cas_right_expectation():
        a_id = [i for i, rec in stub.records.items() if rec["type"] == "A"][0]
        t_id = [i for i, rec in stub.records.items() if rec["type"] == "TXT"][0]
        res = tool(base, env, "cas", cas_args("127.0.10.2", 2, "eu-west-1",
                                              ("127.0.10.1", 1, "us-east-2")))
        expect_outcome(res, "ok")
        assert writes() == [("PATCH", a_id), ("PATCH", t_id)], writes()
        st = stub.state(short)
        assert st == {"A": [("127.0.10.2", 60)], "TXT": [('"epoch=2 region=eu-west-1"', 60)]}, st

    def stale_refused():
        res = tool(base, env, "cas", cas_args("127.0.10.3", 3, "ap-south-1",
                                              ("127.0.10.1", 1, "us-east-2")))
        expect_outcome(res, "conflict")
        expect_found(res, "127.0.10.2", 2, "eu-west-1")
        assert writes() == [], writes()

    def rate_limited():
        stub.inject("GET", r"/dns_records$", cf_error(
            429, 971, "Please wait and consider throttling your request speed",
            {"Retry-After": "7"}))
        res = tool(base, env, "cas", cas_args("127.0.10.3", 3, "ap-south-1",
                                              ("127.0.10.2", 2, "eu-west-1")))
        expect_outcome(res, "retry")
        assert res["retry_after_ms"] == 7000, res
        assert writes() == [], writes()
        res = tool(base, env, "cas", cas_args("127.0.10.3", 3, "ap-south-1",
                                              ("127.0.10.2", 2, "eu-west-1")))
        expect_outcome(res, "ok")
        expect_found(res, "127.0.10.3", 3, "ap-south-1")

    def expired_token():
        bad = {"ARAGORA_DNS_CLOUDFLARE_TOKEN": "expired-token"}
        res = tool(base, bad, "cas", cas_args("127.0.10.4", 4, "us-east-2",
                                              ("127.0.10.3", 3, "ap-south-1")))
        expect_outcome(res, "failed")
        assert "9109" in res["message"], res
        stub.inject("GET", r"/dns_records$", cf_error(*CF_AUTH_ERROR))
        res = tool(base, env)
        expect_outcome(res, "failed")
        assert "10000" in res["message"], res
        stub.inject("GET", r"/dns_records$", cf_error(*CF_INVALID_TOKEN))
        expect_outcome(tool(base, env), "failed")
        assert writes() == [], writes()

    def half_done_then_resumed():
        # The stamp's PATCH fails (5xx) after the address was written: RETRY; the name shows
        # the new address with the old stamp. The same cas again resumes: only the stamp.
        t_id = [i for i, rec in stub.records.items() if rec["type"] == "TXT"][0]
        stub.inject("PATCH", "/" + t_id + "$", cf_error(502, 10013, "Bad gateway"))
        cas = cas_args("127.0.10.4", 4, "us-east-2", ("127.0.10.3", 3, "ap-south-1"))
        res = tool(base, env, "cas", cas)
        expect_outcome(res, "retry")
        st = stub.state(short)
        assert st == {"A": [("127.0.10.4", 60)], "TXT": [('"epoch=3 region=ap-south-1"', 60)]}, st
        # A deposed leader expecting the old address is still refused.
        res = tool(base, env, "cas", cas_args("127.0.10.9", 9, "ap-south-1",
                                              ("127.0.10.3", 3, "ap-south-1")))
        expect_outcome(res, "conflict")
        stub.clear_log()
        res = tool(base, env, "cas", cas)
        expect_outcome(res, "ok")
        assert writes() == [("PATCH", t_id)], writes()
        st = stub.state(short)
        assert st == {"A": [("127.0.10.4", 60)], "TXT": [('"epoch=4 region=us-east-2"', 60)]}, st

    def server_errors_and_timeouts():
        stub.inject("GET", r"/dns_records$", cf_error(503, 10000 + 1, "Service unavailable"))
        expect_outcome(tool(base, env), "retry")
        stub.inject("GET", r"/dns_records$", Answer(200, "{}", delay_s=2.0))
        slow = [a if a != "3000" else "500" for a in base]
        res = tool(slow, env)
        expect_outcome(res, "retry")
        assert "timed out" in res["message"], res
        gone = [a if a != stub.api_url else "http://127.0.0.1:%d/client/v4" % closed_port()
                for a in base]
        res = tool(gone, env)
        expect_outcome(res, "retry")
        assert "nothing was sent" in res["message"], res
        stub.inject("GET", r"/dns_records$", Answer(200, "<html>not json</html>"))
        expect_outcome(tool(base, env), "failed")

    def ttl_clamped_high():
        high = [a if a != "5" else "100000" for a in base]
        res = tool(high, env, "cas", cas_args("127.0.10.5", 5, "eu-west-1",
                                              ("127.0.10.4", 4, "us-east-2")))
        expect_outcome(res, "ok")
        st = stub.state(short)
        assert st == {"A": [("127.0.10.5", 86400)],
                      "TXT": [('"epoch=5 region=eu-west-1"', 86400)]}, st

    r.run("get on an empty zone", check(get_empty))
    r.run("cas from nothing (POST address, then POST stamp; TTL 60)", check(cas_from_nothing))
    r.run("cas with the right expectation (PATCH address, then stamp)",
          check(cas_right_expectation))
    r.run("a stale expectation is refused, nothing written", check(stale_refused))
    r.run("429 with Retry-After: retry, then success", check(rate_limited))
    r.run("expired / invalid token (9109, 10000): failed", check(expired_token))
    r.run("half-done write: retry, detectable, resumed", check(half_done_then_resumed))
    r.run("5xx, timeout, unreachable: retry; not JSON: failed", check(server_errors_and_timeouts))
    r.run("TTL above 86400 is sent as 86400", check(ttl_clamped_high))
    return r


# ---------------------------------------------------------------------------------------------
# Route 53 (stub)
# ---------------------------------------------------------------------------------------------

def case_route53(tmp):
    zone_id = "Z0123456789ABCDEFGHIJ"
    akid = "AKIDEXAMPLE" + os.urandom(4).hex().upper()
    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" + os.urandom(4).hex()
    with Route53Stub(zone_id, ZONE, akid, secret) as stub:
        run_route53(stub, zone_id, akid, secret)


def run_route53(stub, zone_id, akid, secret):
    r = Runner()
    base = ["--provider", "route53", "--name", NAME, "--zone", ZONE, "--ttl", "5",
            "--timeout-ms", "3000", "--endpoint", stub.endpoint, "--hosted-zone-id", zone_id]
    env = {"AWS_ACCESS_KEY_ID": akid, "AWS_SECRET_ACCESS_KEY": secret}

    def check(fn):
        def wrapped():
            stub.clear_log()
            fn()
            v = stub.take_violations()
            assert not v, "the stub saw requests that violate the documented shape: %s" % v
        return wrapped

    def polls():
        return len([1 for m, p, _ in stub.requests("GET") if "/change/" in p])

    def get_empty():
        stub.put(ZONE, "SOA", 900, ["ns1.db.example. hostmaster.db.example. 1 7200 900 1209600 "
                                    "86400"])
        stub.put(ZONE, "NS", 172800, ["ns1.db.example."])
        stub.put("zzz.db.example.", "A", 300, ["192.0.2.99"])
        res = tool(base, env)
        expect_outcome(res, "ok")
        expect_found(res, None, 0, "")

    def cas_from_nothing():
        stub.pending_polls = 2
        n = len(stub.batches)
        res = tool(base, env, "cas", cas_args("127.0.10.1", 1, "us-east-2"))
        expect_outcome(res, "ok")
        assert len(stub.batches) == n + 1, stub.batches
        assert [(a, t) for a, _, t, _, _ in stub.batches[-1]] == [("CREATE", "A"),
                                                                  ("CREATE", "TXT")], \
            stub.batches[-1]
        assert polls() == 3, "GetChange PENDING, PENDING, INSYNC: %d polls" % polls()
        stub.pending_polls = 1
        assert stub.state(NAME) == {"A": (5, ["127.0.10.1"]),
                                    "TXT": (5, ['"epoch=1 region=us-east-2"'])}, stub.state(NAME)
        res = tool(base, env)
        expect_found(res, "127.0.10.1", 1, "us-east-2")
        assert res["found"]["ttl"] == 5 and res["found"]["provider_ref"][1] == "5", res

    def cas_right_expectation():
        res = tool(base, env, "cas", cas_args("127.0.10.2", 2, "eu-west-1",
                                              ("127.0.10.1", 1, "us-east-2"), expect_ttl=5))
        expect_outcome(res, "ok")
        assert stub.batches[-1] == [
            ("DELETE", NAME, "A", 5, ["127.0.10.1"]),
            ("DELETE", NAME, "TXT", 5, ['"epoch=1 region=us-east-2"']),
            ("CREATE", NAME, "A", 5, ["127.0.10.2"]),
            ("CREATE", NAME, "TXT", 5, ['"epoch=2 region=eu-west-1"'])], stub.batches[-1]

    def stale_refused():
        n = len(stub.batches)
        for form in ("ErrorResponse", "InvalidChangeBatch"):
            stub.icb_form = form
            res = tool(base, env, "cas", cas_args("127.0.10.3", 3, "ap-south-1",
                                                  ("127.0.10.1", 1, "us-east-2")))
            expect_outcome(res, "conflict")
            expect_found(res, "127.0.10.2", 2, "eu-west-1")
            assert "do not match" in res["message"] or "not found" in res["message"], res
        stub.icb_form = "ErrorResponse"
        # A wrong TTL alone is enough for Route53 to refuse the DELETE.
        res = tool(base, env, "cas", cas_args("127.0.10.3", 3, "ap-south-1",
                                              ("127.0.10.2", 2, "eu-west-1"), expect_ttl=60))
        expect_outcome(res, "conflict")
        # Expecting nothing while something is there: the CREATE is refused.
        res = tool(base, env, "cas", cas_args("127.0.10.3", 3, "ap-south-1"))
        expect_outcome(res, "conflict")
        assert "already exists" in res["message"], res
        assert len(stub.batches) == n
        assert stub.state(NAME)["A"] == (5, ["127.0.10.2"]), stub.state(NAME)

    def throttled_then_success():
        for code in (R53_THROTTLING, R53_PRIOR):
            stub.inject("POST", r"/rrset/$", r53_error(*code))
            cas = cas_args("127.0.10.3", 3, "ap-south-1", ("127.0.10.2", 2, "eu-west-1"))
            res = tool(base, env, "cas", cas)
            expect_outcome(res, "retry")
            assert res["retry_after_ms"] > 0 and code[1] in res["message"], res
            res = tool(base, env, "cas", cas)
            expect_outcome(res, "ok")
            # back for the next round
            res = tool(base, env, "cas", cas_args("127.0.10.2", 2, "eu-west-1",
                                                  ("127.0.10.3", 3, "ap-south-1")))
            expect_outcome(res, "ok")

    def throttled_while_polling():
        stub.pending_polls = 1
        stub.inject("GET", r"/change/", r53_error(*R53_THROTTLING))
        res = tool(base, env, "cas", cas_args("127.0.10.3", 3, "ap-south-1",
                                              ("127.0.10.2", 2, "eu-west-1")))
        expect_outcome(res, "ok")
        assert polls() == 3, "throttled, PENDING, INSYNC: %d polls" % polls()
        stub.pending_polls = 0
        stub.clear_log()
        res = tool(base, env, "cas", cas_args("127.0.10.4", 4, "us-east-2",
                                              ("127.0.10.3", 3, "ap-south-1")))
        expect_outcome(res, "ok")
        assert polls() == 0, "INSYNC at once needs no GetChange"
        stub.pending_polls = 1

    def paged_list():
        stub.page_cap = 1  # one record set per page: the A, then (name, TXT) on the next page
        res = tool(base, env)
        expect_outcome(res, "ok")
        expect_found(res, "127.0.10.4", 4, "us-east-2")
        assert len(stub.requests("GET")) == 2, stub.requests("GET")
        stub.page_cap = 300

    def credentials_refused():
        bad = dict(env, AWS_SECRET_ACCESS_KEY="not-the-secret")
        stub.expect_bad_signature = True
        res = tool(base, bad)
        stub.expect_bad_signature = False
        expect_outcome(res, "failed")
        assert "SignatureDoesNotMatch" in res["message"], res
        stub.session_token = "FwoGZXIvYXdzEXAMPLETOKEN"
        res = tool(base, dict(env, AWS_SESSION_TOKEN="FwoGZXIvYXdzEXPIRED"), "cas",
                   cas_args("127.0.10.5", 5, "eu-west-1", ("127.0.10.4", 4, "us-east-2")))
        expect_outcome(res, "failed")
        assert "ExpiredToken" in res["message"], res
        res = tool(base, dict(env, AWS_SESSION_TOKEN=stub.session_token), "cas",
                   cas_args("127.0.10.5", 5, "eu-west-1", ("127.0.10.4", 4, "us-east-2")))
        expect_outcome(res, "ok")
        stub.session_token = None

    def no_such_zone_and_unreachable():
        other = [a if a != zone_id else "ZNOSUCHZONE" for a in base]
        res = tool(other, env)
        expect_outcome(res, "failed")
        assert "NoSuchHostedZone" in res["message"], res
        gone = [a if a != stub.endpoint else "http://127.0.0.1:%d" % closed_port() for a in base]
        expect_outcome(tool(gone, env), "retry")

    r.run("get on a zone without the name", check(get_empty))
    r.run("cas from nothing: CREATEs only, GetChange PENDING → INSYNC", check(cas_from_nothing))
    r.run("cas: DELETE old A and TXT (exact value, TTL) + CREATE new, one batch",
          check(cas_right_expectation))
    r.run("a stale expectation: InvalidChangeBatch → conflict, unchanged", check(stale_refused))
    r.run("Throttling / PriorRequestNotComplete: retry, then success",
          check(throttled_then_success))
    r.run("Throttling while polling GetChange: keeps polling", check(throttled_while_polling))
    r.run("a list cut in pages is followed", check(paged_list))
    r.run("SignatureDoesNotMatch, ExpiredToken: failed; a session token is signed",
          check(credentials_refused))
    r.run("NoSuchHostedZone: failed; unreachable: retry", check(no_such_zone_and_unreachable))
    return r


CASES = {"powerdns": case_powerdns, "cloudflare": case_cloudflare, "route53": case_route53}


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        print("usage: test_providers.py %s" % "|".join(CASES), file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="aragora-dns-%s-" % sys.argv[1]) as tmp:
        try:
            CASES[sys.argv[1]](tmp)
        except Exception:
            traceback.print_exc()
            print("FAIL dns_%s" % sys.argv[1])
            return 1
    print("PASS dns_%s" % sys.argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
