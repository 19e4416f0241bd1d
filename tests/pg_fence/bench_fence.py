#!/usr/bin/env python3
"""The in-database fence's cost on commits: pgbench against one PostgreSQL 15 cluster, alternating
runs WITH the aragora_fence module preloaded (and the fence open) and WITHOUT it, restarting the
server between runs (same data directory, same machine). Not a test: it prints numbers, which go
into docs/performance.md ("In-database fence").

Each round runs both modes back to back, in the order ABBA..., so that a drift of the machine
(other jobs, page cache) weighs on both alike; each run is preceded by a short warm-up. Printed:
every run (with the load average when it started), the median TPS, average latency and backend
CPU time per transaction of each mode, and the overhead: the median over the rounds of each pair's
difference, in %, with its range. The CPU time (the postmaster's reaped children, proc(5) cutime
+ cstime, over the transactions pgbench reports) is far less sensitive to other jobs than the
throughput: on a shared 2-core machine the TPS of two identical runs can differ by 30 %.

Usage: bench_fence.py [--rounds 6] [--seconds 20] [--warmup 3] [--clients 4] [--scale 10]
                      [--synchronous-commit on|off|both] [--port 25091]
Environment: ARAGORA_FENCE_MODULE, ARAGORA_FENCE_SQL as for test_fence.py.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pglab import PG_BIN, Postgres, TempDir, wait_for  # noqa: E402
from test_fence import SETUP_SQL, check_ports, module_path  # noqa: E402


def pgbench(pg, args, seconds):
    argv = [os.path.join(PG_BIN, "pgbench"), "-h", pg.sock, "-p", str(pg.port), "-U", "postgres"]
    argv += args + ["postgres"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=seconds * 3 + 120)
    if p.returncode != 0:
        raise RuntimeError("pgbench failed (exit %d):\n%s%s" % (p.returncode, p.stdout, p.stderr))
    return p.stdout


def parse(out):
    tps = float(re.search(r"^tps = ([0-9.]+) \(without initial connection time\)", out,
                          re.M).group(1))
    lat = float(re.search(r"^latency average = ([0-9.]+) ms", out, re.M).group(1))
    failed = re.search(r"^number of failed transactions: (\d+)", out, re.M)
    done = int(re.search(r"^number of transactions actually processed: (\d+)", out,
                         re.M).group(1))
    return tps, lat, int(failed.group(1)) if failed else 0, done


def client_backends(postmaster):
    """PIDs of the postmaster's children that serve a unix-socket client ("[local]" in the title)
    or are exiting (no command line any more) or have exited and are not reaped yet (zombies):
    the CPU time of all of these is not in the postmaster's cutime yet."""
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
            state, ppid = stat[stat.rindex(")") + 2:].split()[:2]
            if int(ppid) != postmaster:
                continue
            with open("/proc/%s/cmdline" % d, "rb") as f:
                title = f.read()
            if state == "Z" or not title or b"[local]" in title:
                kids.append(int(d))
        except (OSError, ValueError):
            continue
    return kids


def reaped_cpu_s(postmaster):
    """CPU seconds (user + system) of the postmaster's children that exited and were reaped:
    the backends of finished client connections (proc(5): cutime, cstime). Waits until no client
    backend is left, so that the last run's backends are counted."""
    wait_for("the client backends to exit", lambda: not client_backends(postmaster), timeout=30)
    with open("/proc/%d/stat" % postmaster) as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def one_run(pg, with_fence, args, settings):
    """One measured pgbench run: (tps, latency_ms, transactions, backend CPU us per txn)."""
    pg.start(preload=with_fence, settings=settings)
    try:
        if with_fence:
            st = pg.value("SELECT epoch, open FROM aragora.fence_renew(1, 86400000)")
            assert st == "1|t", st
        common = ["-M", "simple", "-c", str(args.clients), "-j", str(min(args.clients, 2))]
        pgbench(pg, common + ["-T", str(args.warmup)], args.warmup)  # vacuums first, then warms
        cpu0 = reaped_cpu_s(pg.pid)
        out = pgbench(pg, common + ["-n", "-T", str(args.seconds)], args.seconds)
        cpu_us = (reaped_cpu_s(pg.pid) - cpu0) * 1e6
        tps, lat, failed, done = parse(out)
        if failed:
            raise RuntimeError("%d transactions failed (with_fence=%s)" % (failed, with_fence))
        if with_fence:
            st = pg.value("SELECT epoch, open FROM aragora.fence_state()")
            assert st == "1|t", st
        return tps, lat, done, cpu_us / done
    finally:
        pg.stop()


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def pct(a, b):
    return (a - b) / b * 100.0


def bench_config(pg, args, sync_commit):
    """Rounds of two adjacent runs, with and without the module (order alternating); the overhead
    is the median over the rounds of each pair's difference, so that a drift of the machine between
    rounds cancels out."""
    # autovacuum off: its workers' CPU would land in the measured window at random (pgbench
    # vacuums its tables before each run instead)
    settings = {"synchronous_commit": sync_commit, "autovacuum": "off"}
    pairs = []
    print("\n-- synchronous_commit = %s: %d rounds of 2 x %d s, %d clients, simple protocol"
          % (sync_commit, args.rounds, args.seconds, args.clients), flush=True)
    for rnd in range(args.rounds):
        order = (True, False) if rnd % 2 == 0 else (False, True)
        got = {}
        for with_fence in order:
            load = loadavg()
            tps, lat, done, cpu = one_run(pg, with_fence, args, settings)
            got[with_fence] = (tps, lat, cpu)
            print("round %2d  %-7s  tps %8.1f  latency %7.3f ms  backend CPU %6.1f us/txn  "
                  "(%6d transactions, load %.2f)"
                  % (rnd + 1, "with" if with_fence else "without", tps, lat, cpu, done, load),
                  flush=True)
        pairs.append((got[True], got[False]))
    for mode, label in ((0, "with"), (1, "without")):
        tps = [p[mode][0] for p in pairs]
        print("%-7s  median tps %8.1f (min %.1f, max %.1f)  median latency %7.3f ms  median "
              "backend CPU %6.1f us/txn"
              % (label, statistics.median(tps), min(tps), max(tps),
                 statistics.median(p[mode][1] for p in pairs),
                 statistics.median(p[mode][2] for p in pairs)))
    tps_cost = sorted(-pct(w[0], wo[0]) for w, wo in pairs)  # % fewer transactions per second
    lat_cost = sorted(pct(w[1], wo[1]) for w, wo in pairs)   # % longer average latency
    cpu_cost = sorted(pct(w[2], wo[2]) for w, wo in pairs)   # % more backend CPU per transaction
    print("overhead with the fence (median of the %d paired rounds, [range]): tps %+.2f %% "
          "[%+.1f .. %+.1f], latency %+.2f %% [%+.1f .. %+.1f], backend CPU per transaction "
          "%+.2f %% [%+.1f .. %+.1f]"
          % (len(pairs), statistics.median(tps_cost), tps_cost[0], tps_cost[-1],
             statistics.median(lat_cost), lat_cost[0], lat_cost[-1],
             statistics.median(cpu_cost), cpu_cost[0], cpu_cost[-1]), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--synchronous-commit", default="on", choices=["on", "off", "both"])
    ap.add_argument("--port", type=int, default=25091)
    args = ap.parse_args()

    check_ports(args.port)
    print("bench_fence: PostgreSQL 15, pgbench -M simple -c %d -T %d, scale %d, module %s.so; "
          "load average before: %.2f" % (args.clients, args.seconds, args.scale, module_path(),
                                         loadavg()))
    with TempDir("aragora-fence-bench-") as tmp:
        pg = Postgres(os.path.join(tmp, "pg"), args.port, module=module_path())
        pg.initdb(extra_conf="shared_buffers = 256MB\nmax_wal_size = 2GB\n")
        pg.start(preload=False)
        try:
            pg.psql_file(SETUP_SQL)
            t0 = time.monotonic()
            pgbench(pg, ["-i", "-q", "-s", str(args.scale)], 600)
            print("pgbench -i -s %d: %.1f s" % (args.scale, time.monotonic() - t0))
        finally:
            pg.stop()
        configs = ["on", "off"] if args.synchronous_commit == "both" else [args.synchronous_commit]
        for sc in configs:
            bench_config(pg, args, sc)
    print("load average after: %.2f" % loadavg())


if __name__ == "__main__":
    main()
