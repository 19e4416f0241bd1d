#!/usr/bin/env python3
"""Integration tests of what happens after a promotion: the DNS cutover (real PowerDNS, through its
HTTP API and through RFC 2136 with TSIG), every region's Redis learning the new primary (real
Redis), and the operator's hooks. Real coordinators, PostgreSQL 15, PowerDNS and Redis through
`aragora-chaos lab` (primary us-east-2, replicas eu-west-1 and ap-south-1).

Usage: test_delivery.py [TEST_NAME ...]. Prints "N passed, M failed" last.
"""

import datetime
import json
import os
import stat
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_lab  # noqa: E402
from test_lab import get_json, wait_for  # noqa: E402
from test_failover import any_cluster, pg_port, wait_adopted, wait_step  # noqa: E402

SURVIVORS = ["eu-west-1", "ap-south-1"]


def dig(lab, rtype):
    dns = lab.info["dns"]
    p = subprocess.run(["dig", "@127.0.0.1", "-p", str(dns["dns_port"]), "+norecurse", "+short",
                        "+time=2", "+tries=1", dns["name"], rtype],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, (p.stdout, p.stderr)
    return [line.strip().strip('"') for line in p.stdout.splitlines() if line.strip()]


def address(lab, region):
    return lab.region(region)["address"]


def redis_get(lab, region):
    port = lab.region(region)["redis"]["port"]
    p = subprocess.run(["redis-cli", "-p", str(port), "--raw", "get", "aragora:primary"],
                       capture_output=True, text=True, timeout=10)
    if p.returncode != 0 or not p.stdout.strip():
        return None
    return json.loads(p.stdout)


def redis_set(lab, region, value):
    port = lab.region(region)["redis"]["port"]
    subprocess.run(["redis-cli", "-p", str(port), "set", "aragora:primary", value],
                   check=True, capture_output=True, timeout=10)


def ts(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def history(lab, regions):
    for r in regions:
        status, h = get_json(lab.url(r), "/v1/history", timeout=2.0)
        if status == 200:
            return h
    return None


def receipt(lab, regions, epoch):
    h = history(lab, regions)
    return next((f for f in (h or {}).get("failovers", []) if f["epoch"] == epoch), None)


def wait_routed(lab, regions, epoch, timeout=60):
    def routed():
        d = any_cluster(lab, regions)
        f = d and d["failover"]
        return f if f and f["epoch"] == epoch and f["times"]["routed"] else None
    return wait_for("epoch %d to be routed" % epoch, routed, timeout=timeout)


def kill_primary_and_route(lab):
    """Kill the primary region; the failover, then DNS, then every surviving region's Redis."""
    lab.up(postgres=True)
    lab.wait_leader()
    wait_adopted(lab)
    wait_for("DNS to name us-east-2 at epoch 1", lambda: dig(lab, "TXT") ==
             ["epoch=1 region=us-east-2"] and dig(lab, "A") == [address(lab, "us-east-2")])
    t0 = time.time()
    lab.chaos("kill", "us-east-2", "--what", "region")
    done = wait_step(lab, SURVIVORS, "done", 2, timeout=90)
    new = done["failover"]["to"]
    f = wait_routed(lab, SURVIVORS, 2)
    assert f["routed_address"] == address(lab, new), f
    assert dig(lab, "A") == [address(lab, new)], dig(lab, "A")
    assert dig(lab, "TXT") == ["epoch=2 region=%s" % new], dig(lab, "TXT")
    times = f["times"]
    assert ts(times["promoted"]) <= ts(times["routed"]), times  # never before the promotion
    f = wait_for("every surviving region's Redis to be published", lambda: (
        lambda r: r if r and all(r["times"]["published"][s] for s in SURVIVORS) else None)(
        receipt(lab, SURVIVORS, 2)), timeout=30)
    for s in SURVIVORS:
        held = redis_get(lab, s)
        assert held and held["epoch"] == 2 and held["region"] == new, (s, held)
        assert ts(f["times"]["routed"]) <= ts(f["times"]["published"][s]), f["times"]
    print("  killed -> promoted %+.0f ms -> routed %+.0f ms -> published %s (ms after the kill)"
          % ((ts(times["promoted"]) - t0) * 1000, (ts(times["routed"]) - t0) * 1000,
             ", ".join("%s %+.0f" % (s, (ts(f["times"]["published"][s]) - t0) * 1000)
                       for s in SURVIVORS)))
    return new


def test_dns_api_failover(lab):
    """PowerDNS HTTP API: the failover moves `dig` to the new primary, stamped with the epoch,
    after the promotion; every surviving Redis holds the new epoch; then the old region comes
    back and its own Redis learns it too."""
    new = kill_primary_and_route(lab)
    lab.chaos("restart", "us-east-2", "--what", "region")
    lab.reload()
    wait_for("us-east-2's Redis to hold epoch 2", lambda: (
        lambda h: h if h and h["epoch"] == 2 and h["region"] == new else None)(
        redis_get(lab, "us-east-2")), timeout=60)
    wait_for("the receipt to show us-east-2's publication", lambda: (
        lambda r: r if r and r["times"]["published"]["us-east-2"] else None)(
        receipt(lab, SURVIVORS, 2)), timeout=30)


def test_dns_rfc2136_failover(lab):
    """The same through RFC 2136 dynamic updates signed with TSIG."""
    lab.extra = ["--dns", "rfc2136"]
    kill_primary_and_route(lab)
    routed = [e for e in history(lab, SURVIVORS)["events"] if e["kind"] == "routed"
              and "epoch=2" in e["detail"]]  # committed by whichever node leads
    assert routed and "provider=rfc2136" in routed[-1]["detail"], routed


def test_dns_down_during_failover(lab):
    """PowerDNS is down during the failover: the database failover completes, the history says
    routing is pending, and routing completes once PowerDNS is back."""
    lab.up(postgres=True)
    lab.wait_leader()
    wait_adopted(lab)
    lab.chaos("kill", "dns")
    t0 = time.monotonic()
    lab.chaos("kill", "us-east-2", "--what", "region")
    done = wait_step(lab, SURVIVORS, "done", 2, timeout=90)
    print("  database failover done with DNS down: %.0f ms after the kill"
          % ((time.monotonic() - t0) * 1000))
    assert done["failover"]["times"]["routed"] is None, done["failover"]
    wait_for("a routing-pending note", lambda: any(
        e["kind"] == "routing-pending" for e in (history(lab, SURVIVORS) or {}).get("events", [])),
        timeout=30)
    lab.chaos("restart", "dns")
    lab.reload()
    t1 = time.monotonic()
    f = wait_routed(lab, SURVIVORS, 2, timeout=90)
    print("  routed %.0f ms after PowerDNS came back" % ((time.monotonic() - t1) * 1000))
    assert dig(lab, "A") == [address(lab, f["to"])] and \
        dig(lab, "TXT") == ["epoch=2 region=%s" % f["to"]]


def test_dns_newer_stamp_refused(lab):
    """A name already stamped with a newer epoch than the leader's (what a deposed leader finds
    after its successor moved the name) is never overwritten: the routing is refused and said so."""
    lab.up(postgres=True)
    lab.wait_leader()
    wait_adopted(lab)
    dns = lab.info["dns"]
    with open(os.path.join(lab.dir, "pdns-api-key")) as f:
        key = f.read().strip()
    body = json.dumps({"rrsets": [{"name": dns["name"], "type": "TXT", "ttl": 5,
                                   "changetype": "REPLACE",
                                   "records": [{"content": '"epoch=99 region=ap-south-1"',
                                                "disabled": False}]}]}).encode()
    req = urllib.request.Request("%s/api/v1/servers/localhost/zones/%s" % (dns["api_url"],
                                                                           dns["zone"]),
                                 data=body, method="PATCH",
                                 headers={"X-API-Key": key, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 204, r.status
    lab.chaos("kill", "us-east-2", "--what", "region")
    wait_step(lab, SURVIVORS, "done", 2, timeout=90)
    note = wait_for("a routing-refused note", lambda: next(
        (e for e in (history(lab, SURVIVORS) or {}).get("events", [])
         if e["kind"] == "routing-refused" and "epoch=2" in e["detail"]), None), timeout=30)
    assert "epoch=99" in note["detail"], note
    assert dig(lab, "TXT") == ["epoch=99 region=ap-south-1"], dig(lab, "TXT")
    assert dig(lab, "A") == [address(lab, "us-east-2")], dig(lab, "A")
    assert any_cluster(lab, SURVIVORS)["failover"]["times"]["routed"] is None
    print("  refused: %s" % note["detail"])


def test_redis_never_older(lab):
    """A Redis holding a newer epoch (written by hand) keeps it: the failover's older epoch is
    refused there, never published over it; a Redis that is down does not hold up the failover
    and gets the new primary once it is back."""
    lab.up(postgres=True)
    lab.wait_leader()
    wait_adopted(lab)
    wait_for("every Redis to hold epoch 1", lambda: all(
        (redis_get(lab, r) or {}).get("epoch") == 1 for r in lab.regions), timeout=30)
    newer = '{"epoch":7,"region":"us-east-2","host":"10.9.9.9","port":5432,"since":1}'
    redis_set(lab, "ap-south-1", newer)
    lab.chaos("kill", "eu-west-1", "--what", "redis")
    t0 = time.monotonic()
    lab.chaos("kill", "us-east-2", "--what", "region")
    done = wait_step(lab, SURVIVORS, "done", 2, timeout=90)
    print("  failover done with one Redis down and one holding epoch 7: %.0f ms after the kill"
          % ((time.monotonic() - t0) * 1000))
    wait_routed(lab, SURVIVORS, 2)
    with open(lab.region("ap-south-1")["log"]) as fh:
        log = fh.read()
    wait_for("ap-south-1 to refuse the older epoch", lambda: "+redis-refused epoch=2" in open(
        lab.region("ap-south-1")["log"]).read(), timeout=30)
    held = redis_get(lab, "ap-south-1")
    assert held["epoch"] == 7 and held["host"] == "10.9.9.9", held
    f = receipt(lab, SURVIVORS, 2)
    assert f["times"]["published"]["ap-south-1"] is None, f["times"]
    assert f["times"]["published"]["eu-west-1"] is None, f["times"]  # its Redis is down
    lab.chaos("restart", "eu-west-1", "--what", "redis")
    lab.reload()
    wait_for("eu-west-1's Redis to hold epoch 2", lambda: (
        lambda h: h if h and h["epoch"] == 2 and h["region"] == done["failover"]["to"] else None)(
        redis_get(lab, "eu-west-1")), timeout=60)
    del log


def write_hook(path, body):
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)


def add_hooks(lab, region, text):
    with open(lab.region(region)["config"], "a") as f:
        f.write("hooks:\n" + text)
    lab.chaos("restart", region, "--what", "coordinator")
    lab.reload()


def test_hooks_veto_and_role_change(lab):
    """eu-west-1's pre_promote vetoes: that epoch aborts and the next decision promotes
    ap-south-1, whose on_role_change hook is told with the documented arguments and environment."""
    lab.up(postgres=True)
    lab.wait_leader()
    wait_adopted(lab)
    veto, record = os.path.join(lab.dir, "veto.sh"), os.path.join(lab.dir, "record.sh")
    seen = os.path.join(lab.dir, "role-changes.txt")
    write_hook(veto, "echo 'eu-west-1 is under maintenance'\nexit 1\n")
    write_hook(record, 'echo "$* role=$ARAGORA_ROLE primary=$ARAGORA_PRIMARY '
                       'epoch=$ARAGORA_EPOCH" >> %s\n' % seen)
    add_hooks(lab, "eu-west-1", "  pre_promote: \"%s\"\n" % veto)
    add_hooks(lab, "ap-south-1", "  on_role_change: \"%s\"\n" % record)
    lab.wait_leader()
    # Restarting two coordinators (one of them may be the leader) can outlast the primary's lease;
    # its coordinator then fences and restarts it. Kill the region once it writes again.
    port = pg_port(lab, "us-east-2")
    wait_for("us-east-2 to accept writes", lambda: test_lab.psql(
        port, "CREATE TABLE IF NOT EXISTS it_hooks (n int)", check=False).returncode == 0,
        timeout=60)
    lab.chaos("kill", "us-east-2", "--what", "region")

    def promoted_elsewhere():
        d = any_cluster(lab, SURVIVORS)
        f = d and d["failover"]
        return f if f and f["step"] == "done" and f["to"] == "ap-south-1" else None
    f = wait_for("ap-south-1 to be promoted after the veto", promoted_elsewhere, timeout=120)
    h = history(lab, SURVIVORS)
    vetoed = [e for e in h["events"] if e["kind"] == "failover-aborted"
              and "pre_promote vetoed: eu-west-1 is under maintenance" in e["detail"]]
    assert vetoed, [e for e in h["events"] if e["kind"].startswith("failover")]
    line = wait_for("ap-south-1's on_role_change hook to run", lambda: next(
        (x for x in (open(seen).read().splitlines() if os.path.exists(seen) else [])
         if x.startswith("on_role_change primary ap-south-1 %d" % f["epoch"])), None), timeout=30)
    assert "role=primary primary=ap-south-1 epoch=%d" % f["epoch"] in line, line
    print("  vetoed: %s; then epoch %d promoted ap-south-1; hook saw: %s"
          % (vetoed[0]["detail"], f["epoch"], line))


TESTS = [test_dns_api_failover, test_dns_rfc2136_failover, test_dns_down_during_failover,
         test_dns_newer_stamp_refused, test_redis_never_older, test_hooks_veto_and_role_change]


if __name__ == "__main__":
    sys.exit(test_lab.run_tests(TESTS, sys.argv, 80))
