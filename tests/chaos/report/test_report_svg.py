#!/usr/bin/env python3
"""timeline.svg is well-formed XML with every lane (fault-injection/report_out.c).

Usage: test_report_svg.py TEST_REPORT_EXE -- runs `TEST_REPORT_EXE --write DIR` (the synthetic
record of test_report.c) into a temporary directory and parses DIR/timeline.svg.
"""
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

NS = "{http://www.w3.org/2000/svg}"
REGIONS = ["us-east-2", "eu-west-1", "ap-south-1"]


def check(cond, what, failures):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def groups(root):
    return {g.get("id"): g for g in root.iter(NS + "g") if g.get("id")}


def all_text(elem):
    return " ".join("".join(t.itertext()) for t in elem.iter(NS + "text"))


def check_flap(exe, failures):
    """A flap's 20 intervals share one row; an aborted failover gets a marker."""
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([exe, "--write", d, "flap"], check=True)
        root = ET.parse(d + "/timeline.svg").getroot()
    g = groups(root)
    rects = [r for r in g["lane-faults"].findall(NS + "rect") if r.get("class")]
    rows = {r.get("y") for r in rects}
    check(len(rects) == 22 and len(rows) == 3, "22 faults in 3 rows (%d, %d)" % (len(rects), len(rows)),
          failures)
    markers = [m for m in g["markers"].iter(NS + "line") if m.get("class") == "marker"]
    check(len(markers) == 5, "5 markers with the aborted one (%d)" % len(markers), failures)
    check("aborted e4" in all_text(g["markers"]), "aborted marker label", failures)


def main():
    exe = sys.argv[1]
    failures = []
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([exe, "--write", d], check=True)
        root = ET.parse(d + "/timeline.svg").getroot()  # raises on malformed XML
    check(root.tag == NS + "svg", "root element is <svg>", failures)
    check(900 <= float(root.get("width")) <= 1600, "about 1200 px wide", failures)
    g = groups(root)
    lanes = ["lane-leader", "lane-primary", "lane-faults"] + ["lane-writes-" + r for r in REGIONS]
    for lane in lanes + ["axis", "legend", "markers", "title"]:
        check(lane in g, "group %s exists" % lane, failures)
    if failures:
        return 1
    check("FAIL" in all_text(g["title"]), "the verdict is in the title", failures)
    for r in REGIONS:
        check(r in all_text(g["legend"]), "legend names " + r, failures)
    check(len(g["lane-leader"].findall(NS + "rect")) >= 4, "leader lane has segments", failures)
    check("e3 eu-west-1" in all_text(g["lane-primary"]), "primary lane shows epoch 3", failures)
    faults = all_text(g["lane-faults"])
    check("delay 200ms & <more>" in faults, "fault label escaped and read back", failures)
    failure_rects = [r for r in g["lane-faults"].iter(NS + "rect") if "failure" in (r.get("class") or "")]
    check(len(failure_rects) == 1, "one failure fault", failures)
    dense = g["lane-writes-us-east-2"].findall(NS + "rect")
    check(len(dense) > 100, "dense writes drawn as a histogram (%d bars)" % len(dense), failures)
    colors = {r.get("fill") for r in dense}
    check({"#2e8540", "#d62728", "#ff8c00"} <= colors, "ok, failed and unknown bars", failures)
    ticks = g["lane-writes-ap-south-1"].findall(NS + "line")
    check(150 <= len(ticks) <= 250, "sparse writes drawn as ticks (%d)" % len(ticks), failures)
    markers = [m for m in g["markers"].iter(NS + "line") if m.get("class") == "marker"]
    check(len(markers) == 3, "decided, promoted and done markers (%d)" % len(markers), failures)
    check("decided e3 → eu-west-1" in all_text(g["markers"]), "decided marker label", failures)
    ticks_text = all_text(g["axis"])
    check("0 s" in ticks_text and "40 s" in ticks_text, "axis from 0 s to 40 s", failures)
    check_flap(exe, failures)
    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
