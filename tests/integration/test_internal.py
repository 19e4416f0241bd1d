#!/usr/bin/env python3
"""Integration tests of POST /v1/internal/propose: how coordinators that are not the leader get
their reports into the Raft log. Real coordinators through `aragora-chaos lab` (no PostgreSQL).

The command is encoded here by hand in msgpack (the standard library has no msgpack), exactly as
docs/wire-format.md specifies, and signed with HMAC-SHA256 over the body with the lab's cluster
secret. Prints "N passed, M failed" last.
"""

import hashlib
import hmac
import json
import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_lab  # noqa: E402  (the Lab helper, waits and HTTP helpers)


def mp_str(s):
    b = s.encode()
    assert len(b) < 256
    return (bytes([0xA0 | len(b)]) if len(b) < 32 else bytes([0xD9, len(b)])) + b


def mp_int(n):
    return bytes([n]) if 0 <= n < 128 else b"\xcf" + struct.pack(">Q", n)


def mp_map(pairs):
    out = bytes([0x80 | len(pairs)]) if len(pairs) < 16 else b"\xde" + struct.pack(">H", len(pairs))
    for k, v in pairs:
        if isinstance(v, bool):
            out += mp_str(k) + (b"\xc3" if v else b"\xc2")
        else:
            out += mp_str(k) + (mp_int(v) if isinstance(v, int) else mp_str(v))
    return out


def command(op, by, fields):
    """An encoded command: the versioned msgpack map, zero-padded to a multiple of 8."""
    body = mp_map([("v", 1), ("op", op)] + fields + [("by", by), ("t", int(time.time() * 1000))])
    return body + b"\0" * (-len(body) % 8)


def signed(lab, body, secret=None):
    if secret is None:
        with open(os.path.join(lab.dir, "cluster-secret"), "rb") as f:
            secret = f.read().strip()
    sig = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return {"Authorization": "AragoraCluster " + sig, "Content-Type": "application/octet-stream"}


def propose(lab, region, body, headers):
    return test_lab.request(lab.url(region), "POST", "/v1/internal/propose", body=body,
                            headers=headers, timeout=5)


def test_internal_propose(lab):
    lab.extra = ["--no-postgres"]  # only the coordinators matter here
    lab.up()
    leader = lab.wait_leader()
    follower = next(n for n in lab.regions if n != leader)
    note = command("note", follower, [("kind", "it-note"), ("detail", "from the test")])

    # Not signed, or signed with another secret: refused before anything is decoded.
    status, body = propose(lab, leader, note, {})
    assert status == 401, (status, body)
    status, body = propose(lab, leader, note, signed(lab, note, secret=b"not-the-secret-000000"))
    assert status == 401 and json.loads(body)["error"] == "bad_signature", (status, body)

    # Signed garbage: 400 with the decoder's reason. A decision op: 403, never proposed.
    junk = b"\x93\x01\x02" + b"\0" * 5
    status, body = propose(lab, leader, junk, signed(lab, junk))
    assert status == 400 and json.loads(body)["error"] == "bad_command", (status, body)
    pause = command("pause", follower, [("paused", 1)])  # int where a bool belongs: malformed too
    status, body = propose(lab, leader, pause, signed(lab, pause))
    assert status in (400, 403), (status, body)

    # To a follower: 503, the sender must find the leader.
    status, body = propose(lab, follower, note, signed(lab, note))
    assert status == 503 and json.loads(body)["error"] == "not_leader", (status, body)

    # To the leader: committed, applied, and in every node's history.
    status, body = propose(lab, leader, note, signed(lab, note))
    assert status == 200, (status, body)
    doc = json.loads(body)
    assert doc["result"] == "ok" and doc["index"] > 0, doc

    def everywhere():
        for n in lab.regions:
            status, h = test_lab.get_json(lab.url(n), "/v1/history")
            if status != 200 or not any(e["kind"] == "it-note" and e["index"] == doc["index"]
                                        for e in h["events"]):
                return None
        return True
    test_lab.wait_for("the note at index %d on every node" % doc["index"], everywhere, timeout=20)
    print("  signed note committed at index %d and seen on all %d nodes"
          % (doc["index"], len(lab.regions)))

    # A captured request sent again is accepted by the signature check, but changes nothing:
    # the same note is no second event, an observation needs a newer sequence number.
    status, body = propose(lab, leader, note, signed(lab, note))
    assert status == 200 and json.loads(body)["result"] == "noop", (status, body)

    def observe(seq, healthy, lsn):
        return command("observe", follower, [
            ("observer", follower), ("target", follower), ("healthy", healthy),
            ("role", "replica" if healthy else "unknown"), ("timeline", 1), ("lsn", lsn),
            ("replay_lsn", lsn), ("lag_ms", 0), ("upstream", ""), ("local_dead", False),
            ("t_obs", int(time.time() * 1000)), ("seq", seq)])
    base = int(time.time() * 1000) * 1000  # above anything the follower's agent uses
    newer, older = observe(base + 2, True, 4096), observe(base + 1, False, 0)
    results = []
    for body_ in (newer, newer, older):
        status, body = propose(lab, leader, body_, signed(lab, body_))
        assert status == 200, (status, body)
        results.append(json.loads(body)["result"])
    assert results == ["ok", "rejected-stale", "rejected-stale"], results
    status, c = test_lab.get_json(lab.url(leader), "/v1/cluster")
    view = next(p for p in c["postgres"] if p["region"] == follower)
    assert view["seen_by_its_own_coordinator"]["healthy"] is True, view
    print("  replayed note: noop; replayed and delayed observations: %s" % results[1:])


TESTS = [test_internal_propose]


if __name__ == "__main__":
    sys.exit(test_lab.run_tests(TESTS, sys.argv, 40))
