#!/usr/bin/env python3
"""Writes the recorded histories the checkers' unit test reads (test_checkers.c).

The files here are checked in: this script documents how they were made and makes them again
(python3 make_histories.py, in this folder). Each case CASE.json names its history (*.history.jsonl,
the workload's format), its read-back (*.rows.jsonl, or null: the read-back failed), the events,
failure intervals and final views, the expectations, and the verdict every check must give
("want"), optionally a check's value ("want_value") and a text its detail must contain
("want_detail"). Times are wall-clock microseconds; the lab's regions.

The workload is simulated as aragora-chaos workload runs it: one write per region every 50 ms,
timeout 2 s, each outcome ok, fail (25006 on a replica, connect errors) or unknown.
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
REGIONS = ["us-east-2", "eu-west-1", "ap-south-1"]
T0 = 1764190800000000  # start_us
MS = 1000
TICK = 50 * MS
END = 10000 * MS
RO = "25006 cannot execute INSERT in a read-only transaction"
ALL = ["lost-writes", "split-brain", "rto", "write-gap", "convergence", "false-failover",
       "decisions"]


def ops_for(region, phases):
    """phases: a function t_ms -> (result, latency_ms, error) or None (in flight: skip)."""
    ops, seq, t, busy_until = [], 1, 0, -1
    while t < END:
        if t >= busy_until:
            r = phases(t / MS)
            if r is not None:
                result, lat, err = r
                ops.append({"region": region, "seq": seq, "start_us": T0 + t,
                            "end_us": T0 + t + int(lat * MS), "result": result, "error": err})
                seq += 1
                busy_until = t + int(lat * MS)
        t += TICK
    return ops


def primary_then_frozen(freeze_ms, thaw_ms, fenced_error="57P01 fenced: not the primary"):
    def f(t):
        if t < freeze_ms:
            return ("ok", 3, "")
        if t < freeze_ms + 50:
            return ("unknown", 2000, "timeout: no answer within 2000 ms")
        if t < thaw_ms:
            return ("fail", 0, "connect: timeout: not connected within 2000 ms")
        return ("fail", 2, fenced_error)
    return f


def replica_then_primary(promoted_ms):
    def f(t):
        if promoted_ms is not None and t >= promoted_ms:
            return ("ok", 4, "")
        return ("fail", 1, RO)
    return f


def replica(t):
    return ("fail", 1, RO)


def ev(kind, t_ms, region, epoch, frm=None):
    e = {"kind": kind, "t_us": T0 + int(t_ms * MS), "region": region, "epoch": epoch}
    if frm is not None:
        e["from"] = frm
    return e


def finals(primary, epoch, dns=None):
    out = [{"source": "coordinator " + r, "primary": primary, "epoch": epoch} for r in REGIONS]
    out.append({"source": "dns", "primary": dns or primary, "epoch": epoch})
    out += [{"source": "redis " + r, "primary": primary, "epoch": epoch} for r in REGIONS]
    return out


def write_jsonl(name, rows):
    with open(os.path.join(HERE, name), "w") as f:
        for r in rows:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")


def rows_of(ops, drop=(), add=()):
    rows = {(o["region"], o["seq"]) for o in ops if o["result"] == "ok"} - set(drop)
    rows |= set(add)
    order = {r: i for i, r in enumerate(REGIONS)}
    return [{"region": r, "seq": s} for r, s in sorted(rows, key=lambda x: (order[x[0]], x[1]))]


def split_brain_count(ops, events):
    """The split-brain rules of checkers.c, by brute force (an independent check of its index)."""
    ok = [o for o in ops if o["result"] == "ok"]
    auth = [e for e in events if e["kind"] in ("decided", "authorized")]
    promoted = [e for e in events if e["kind"] == "promoted"]

    def authorized(region, lo, hi):
        return any(e["region"] == region and lo < e["t_us"] < hi for e in auth)

    def last_auth(region, before):
        return max([e["t_us"] for e in auth if e["region"] == region and e["t_us"] < before],
                   default=float("-inf"))

    def rule_a(a):  # A, then B, then A again, all in A's one tenure
        since = last_auth(a["region"], a["end_us"])
        return any(b["region"] != a["region"] and b["end_us"] < a["start_us"] and
                   not authorized(a["region"], b["start_us"], a["end_us"]) and
                   any(p["region"] == a["region"] and p["start_us"] >= since and
                       p["end_us"] < b["start_us"] for p in ok) for b in ok)

    def rule_b(a):
        return any(p["region"] != a["region"] and a["start_us"] > p["t_us"] and
                   not authorized(a["region"], p["t_us"], a["start_us"]) for p in promoted)
    return sum(1 for a in ok if rule_a(a) or rule_b(a))


def case(name, description, history, rows, events, intervals, fin, expect, want, value=None,
         detail=None):
    doc = {"description": description, "regions": REGIONS, "initial_primary": REGIONS[0],
           "start_us": T0, "end_us": T0 + END, "history": history, "rows": rows,
           "events": events, "intervals": intervals, "finals": fin, "expect": expect,
           "want": {c: want.get(c, "PASS") for c in ALL}}
    if value:
        doc["want_value"] = value
    if detail:
        doc["want_detail"] = detail
    with open(os.path.join(HERE, name + ".json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


FAILOVER_EVENTS = [ev("decided", 4500, "eu-west-1", 2, "us-east-2"),
                   ev("node-promoted-here", 4800, "eu-west-1", 2),
                   ev("promoted", 4850, "eu-west-1", 2, "us-east-2"),
                   ev("done", 5200, "eu-west-1", 2, "us-east-2")]
FREEZE = [{"start_us": T0 + 3000 * MS, "end_us": T0 + 6000 * MS,
           "label": "freeze region us-east-2", "failure": True}]
EXPECT = {"failover": 1, "rto_max_us": 10000 * MS, "lost_writes_max": 0}


def clean():
    ops = (ops_for("us-east-2", primary_then_frozen(3000, 6000)) +
           ops_for("eu-west-1", replica_then_primary(4900)) + ops_for("ap-south-1", replica))
    write_jsonl("clean_failover.history.jsonl", ops)
    write_jsonl("clean_failover.rows.jsonl", rows_of(ops))
    last_acks = [("us-east-2", o["seq"]) for o in ops
                 if o["region"] == "us-east-2" and o["result"] == "ok"][-2:]
    write_jsonl("lost_ack.rows.jsonl", rows_of(ops, drop=last_acks))
    write_jsonl("failed_present.rows.jsonl", rows_of(ops, add=[("ap-south-1", 5)]))
    H, R = "clean_failover.history.jsonl", "clean_failover.rows.jsonl"
    fin = finals("eu-west-1", 2)
    case("clean_failover", "freeze the primary's region; eu-west-1 takes over; nothing lost",
         H, R, FAILOVER_EVENTS, FREEZE, fin, EXPECT, {}, value={"split-brain": 0, "rto": 1904.0},
         detail={"rto": "(eu-west-1)"})
    case("lost_ack", "the last two acknowledged writes of the old primary are not on the new one",
         H, "lost_ack.rows.jsonl", FAILOVER_EVENTS, FREEZE, fin, EXPECT,
         {"lost-writes": "FAILED"}, value={"lost-writes": 2},
         detail={"lost-writes": "us-east-2:%d" % last_acks[0][1]})
    case("lost_ack_async", "the same, asynchronous replication: reported, not asserted",
         H, "lost_ack.rows.jsonl", FAILOVER_EVENTS, FREEZE, fin,
         dict(EXPECT, lost_writes_max=-1), {}, value={"lost-writes": 2},
         detail={"lost-writes": "not asserted (asynchronous replication)"})
    case("failed_present", "a write reported failed (25006) is in the table all the same",
         H, "failed_present.rows.jsonl", FAILOVER_EVENTS, FREEZE, fin, EXPECT,
         {"lost-writes": "FAILED"}, value={"lost-writes": 0},
         detail={"lost-writes": "ap-south-1:5"})
    case("readback_failed", "the read-back failed: lost-writes cannot be judged",
         H, None, FAILOVER_EVENTS, FREEZE, fin, EXPECT, {"lost-writes": "SKIPPED"},
         detail={"lost-writes": "read-back failed"})
    case("rto_over_bound", "the failover took longer than the bound (1 s)",
         H, R, FAILOVER_EVENTS, FREEZE, fin, dict(EXPECT, rto_max_us=1000 * MS),
         {"rto": "FAILED"}, detail={"rto": "bound 1000.0 ms"})
    delay = [{"start_us": T0 + 3000 * MS, "end_us": T0 + 6000 * MS,
              "label": "us-east-2 -> * delay 200ms", "failure": False}]
    case("false_failover", "a delay that warrants no failover, and one was decided",
         H, R, FAILOVER_EVENTS, delay, fin, dict(EXPECT, failover=0),
         {"false-failover": "FAILED", "rto": "SKIPPED"}, value={"false-failover": 1},
         detail={"false-failover": "epoch 2 to eu-west-1"})
    case("no_convergence", "the DNS name still points at the old primary",
         H, R, FAILOVER_EVENTS, FREEZE, finals("eu-west-1", 2, dns="us-east-2"), EXPECT,
         {"convergence": "FAILED"}, detail={"convergence": "dns says us-east-2"})
    early = [ev("decided", 4500, "eu-west-1", 2, "us-east-2"),
             ev("node-promoted-here", 4400, "eu-west-1", 2),
             ev("promoted", 4850, "eu-west-1", 2, "us-east-2")]
    case("promotion_before_decision", "eu-west-1 promoted itself before the decision committed",
         H, R, early, FREEZE, fin, EXPECT, {"decisions": "FAILED"}, value={"decisions": 1},
         detail={"decisions": "eu-west-1 promoted in epoch 2"})
    two = FAILOVER_EVENTS + [ev("node-promoted-here", 4900, "ap-south-1", 2)]
    case("two_promotions_one_epoch", "eu-west-1 and ap-south-1 both promoted in epoch 2",
         H, R, two, FREEZE, fin, EXPECT, {"decisions": "FAILED"}, value={"decisions": 2},
         detail={"decisions": "second region, ap-south-1"})


def no_failover():
    ops = ops_for("us-east-2", primary_then_frozen(3000, 8000)) + ops_for("eu-west-1", replica) + \
        ops_for("ap-south-1", replica)
    write_jsonl("no_failover.history.jsonl", ops)
    write_jsonl("no_failover.rows.jsonl", rows_of(ops))
    iv = [{"start_us": T0 + 3000 * MS, "end_us": T0 + 8000 * MS,
           "label": "freeze region us-east-2", "failure": True}]
    case("failover_expected_none", "the primary froze for 5 s and nobody took over",
         "no_failover.history.jsonl", "no_failover.rows.jsonl", [], iv,
         finals("us-east-2", 1), EXPECT, {"false-failover": "FAILED", "rto": "FAILED"},
         detail={"false-failover": "a failover was expected",
                 "rto": "no write acknowledged elsewhere"})


def split_brain_a():
    """eu-west-1's PostgreSQL promoted behind the coordinators' back at 4 s; us-east-2 goes on."""
    def primary(t):
        return ("ok", 3, "") if t < 7000 else ("fail", 1, RO)
    ops = (ops_for("us-east-2", primary) + ops_for("eu-west-1", replica_then_primary(4000)) +
           ops_for("ap-south-1", replica))
    write_jsonl("split_brain_a.history.jsonl", ops)
    write_jsonl("split_brain_a.rows.jsonl", rows_of(ops))
    n = split_brain_count(ops, [])
    case("split_brain_a", "a rogue pg_promote on eu-west-1: both regions acknowledge writes",
         "split_brain_a.history.jsonl", "split_brain_a.rows.jsonl", [], [],
         finals("us-east-2", 1), dict(EXPECT, failover=0), {"split-brain": "FAILED",
                                                           "rto": "SKIPPED"},
         value={"split-brain": n}, detail={"split-brain": "rule a"})


def split_brain_b():
    """The coordinators lose us-east-2 at 3 s; its PostgreSQL stays reachable to the client and
    acknowledges one write begun after eu-west-1 was promoted (4850 ms), before eu-west-1's first
    acknowledgement; then it is fenced."""
    def primary(t):
        if t < 4920:
            return ("ok", 3, "")
        return ("fail", 1, "57P01 fenced: not the primary")
    def new_primary(t):
        return ("ok", 40, "") if t >= 4900 else ("fail", 1, RO)
    ops = (ops_for("us-east-2", primary) + ops_for("eu-west-1", new_primary) +
           ops_for("ap-south-1", replica))
    write_jsonl("split_brain_b.history.jsonl", ops)
    write_jsonl("split_brain_b.rows.jsonl", rows_of(ops))
    iv = [{"start_us": T0 + 3000 * MS, "end_us": T0 + 6000 * MS,
           "label": "isolate us-east-2 (coordinators)", "failure": True}]
    case("split_brain_b", "the old primary acknowledged a write begun after the new one's promotion",
         "split_brain_b.history.jsonl", "split_brain_b.rows.jsonl", FAILOVER_EVENTS, iv,
         finals("eu-west-1", 2), EXPECT, {"split-brain": "FAILED"},
         value={"split-brain": split_brain_count(ops, FAILOVER_EVENTS)},
         detail={"split-brain": "rule b"})


def switchback():
    """Failover to eu-west-1 (epoch 2), then eu-west-1 freezes and us-east-2 takes over again
    (epoch 3): us-east-2 writes after eu-west-1 did, legitimately."""
    def a(t):
        if t < 3000:
            return ("ok", 3, "")
        if t < 6500:
            return ("fail", 1, "57P01 fenced: not the primary")
        if t >= 7600:
            return ("ok", 3, "")
        return ("fail", 1, RO)
    def b(t):
        if 4900 <= t < 6000:
            return ("ok", 4, "")
        if 6000 <= t < 6050:
            return ("unknown", 2000, "timeout: no answer within 2000 ms")
        return ("fail", 1, RO)
    ops = ops_for("us-east-2", a) + ops_for("eu-west-1", b) + ops_for("ap-south-1", replica)
    write_jsonl("switchback.history.jsonl", ops)
    write_jsonl("switchback.rows.jsonl", rows_of(ops))
    events = FAILOVER_EVENTS + [ev("decided", 7200, "us-east-2", 3, "eu-west-1"),
                                ev("node-promoted-here", 7500, "us-east-2", 3),
                                ev("promoted", 7550, "us-east-2", 3, "eu-west-1"),
                                ev("done", 7800, "us-east-2", 3, "eu-west-1")]
    iv = [{"start_us": T0 + 3000 * MS, "end_us": T0 + 4000 * MS,
           "label": "freeze region us-east-2", "failure": True},
          {"start_us": T0 + 6000 * MS, "end_us": T0 + 7000 * MS,
           "label": "freeze region eu-west-1", "failure": True}]
    case("switchback", "a second failover back to us-east-2: no split brain",
         "switchback.history.jsonl", "switchback.rows.jsonl", events, iv,
         finals("us-east-2", 3), EXPECT, {}, value={"rto": 1904.0, "split-brain": 0},
         detail={"rto": "freeze region eu-west-1"})


def handover():
    """A planned switchover: eu-west-1 is authorized (decided) at 3000 ms while us-east-2 still
    writes until it is stopped at 3300 ms; eu-west-1 is promoted at 3500 ms and writes from then
    on. The old primary's last writes follow the new one's authorization but precede all of its
    writes: no split brain."""
    def old(t):
        return ("ok", 3, "") if t < 3300 else ("fail", 1, RO)
    def new(t):
        return ("ok", 3, "") if t >= 3550 else ("fail", 1, RO)
    ops = ops_for("us-east-2", old) + ops_for("eu-west-1", new) + ops_for("ap-south-1", replica)
    write_jsonl("handover.history.jsonl", ops)
    write_jsonl("handover.rows.jsonl", rows_of(ops))
    events = [ev("decided", 3000, "eu-west-1", 2, "us-east-2"),
              ev("node-promoted-here", 3450, "eu-west-1", 2),
              ev("promoted", 3500, "eu-west-1", 2, "us-east-2"),
              ev("done", 3800, "eu-west-1", 2, "us-east-2")]
    iv = [{"start_us": T0 + 3000 * MS, "end_us": T0 + 3800 * MS,
           "label": "switchover to eu-west-1", "failure": True}]
    assert split_brain_count(ops, events) == 0
    case("handover", "a planned switchover: the old primary writes after the decision, before "
         "the new one's first write", "handover.history.jsonl", "handover.rows.jsonl", events, iv,
         finals("eu-west-1", 2), EXPECT, {}, value={"split-brain": 0})


def no_ack():
    def broken(t):
        return ("fail", 1, '42P01 relation "chaos_writes" does not exist')
    ops = ops_for("us-east-2", broken) + ops_for("eu-west-1", replica) + \
        ops_for("ap-south-1", replica)
    write_jsonl("no_ack.history.jsonl", ops)
    write_jsonl("no_ack.rows.jsonl", [])
    case("no_ack", "no write was ever acknowledged (the table is missing)",
         "no_ack.history.jsonl", "no_ack.rows.jsonl", [], [], finals("us-east-2", 1),
         dict(EXPECT, failover=-1), {"write-gap": "FAILED", "rto": "SKIPPED"},
         detail={"write-gap": "no write was ever acknowledged"})


if __name__ == "__main__":
    clean()
    no_failover()
    split_brain_a()
    split_brain_b()
    switchback()
    handover()
    no_ack()
