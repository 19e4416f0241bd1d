#!/usr/bin/env python3
"""One scenario of the `chaos` suite: `aragora-chaos run SCENARIO --dir D` in a fresh temporary
directory and a free port range below 32768. The runner itself asserts the scenario's checkers
(its exit status is non-zero when any fails); this wrapper also checks that the report it wrote
is complete, prints report.md into the test log, and removes the directory when the run passed
(it is kept, and named, when it failed).

Usage: run_scenario.py SCENARIO.yaml [--long] [--netns] [--wan]
(--netns: namespace mode, root only; exits 77, "skipped", without root)
Environment: ARAGORA_BIN_DIR (the meson build root), ARAGORA_CHAOS_PORT_BASE (default 24000).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from afctest import ports_free  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BIN_DIR = os.environ.get("ARAGORA_BIN_DIR") or os.path.join(HERE, "..", "..", "..", "build")
CHAOS = os.path.join(BIN_DIR, "aragora-chaos")
PORT_BASE = int(os.environ.get("ARAGORA_CHAOS_PORT_BASE", "24000"))
CHECKS = {"lost-writes", "split-brain", "rto", "write-gap", "convergence", "false-failover",
          "decisions", "schedule"}


def pick_base_port():
    # meson gives each scenario its own block (ARAGORA_CHAOS_PORT_BASE = 24000 + 100 * index) and
    # runs two at a time; when a block is taken by something else, try the same slot 3000 higher
    # (past every scenario's block), never a neighbour's
    base = PORT_BASE
    while base + 50 < 32768:
        if ports_free(base, 50):
            return base
        base += 3000
    raise SystemExit("no free port range below 32768")


def main():
    scenario = sys.argv[1]
    extra = sys.argv[2:]
    if "--netns" in extra and os.geteuid() != 0:
        print("skipped: namespace mode needs root")
        return 77
    d = tempfile.mkdtemp(prefix="aragora-chaos-")
    os.chmod(d, 0o755)  # PostgreSQL runs as the postgres user when we are root
    cmd = [CHAOS, "run", scenario, "--dir", d, "--base-port", str(pick_base_port()), *extra]
    print("$", " ".join(cmd), flush=True)
    rc = subprocess.call(cmd, timeout=900)
    problems = []
    try:
        with open(os.path.join(d, "report.json")) as fh:
            report = json.load(fh)
        names = {c["name"] for c in report["checks"]}
        want_mode = "netns" if "--netns" in extra else "proxy"
        mode = report.get("scenario", {}).get("mode")
        if mode != want_mode:
            problems.append("report.json: fault layer %r, expected %r" % (mode, want_mode))
        if not CHECKS <= names:
            problems.append("report.json lacks checks %s" % sorted(CHECKS - names))
        want = "pass" if rc == 0 else "fail"
        if report.get("verdict") != want:
            problems.append("exit status %d but report verdict %r" % (rc, report.get("verdict")))
        with open(os.path.join(d, "timeline.svg")) as fh:
            if "<svg" not in fh.read(4096):
                problems.append("timeline.svg is not an SVG")
        with open(os.path.join(d, "report.md")) as fh:
            print(fh.read())
    except (OSError, ValueError, KeyError) as e:
        problems.append("report: %s" % e)
    for p in problems:
        print("FAIL:", p)
    if rc != 0 or problems:
        for name in ("runner.log", "workload.log"):
            path = os.path.join(d, name)
            if os.path.exists(path):
                with open(path, errors="replace") as fh:
                    print("---- %s (tail) ----\n%s" % (name, "".join(fh.readlines()[-40:])))
        print("kept: %s" % d)
        return 1
    shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
