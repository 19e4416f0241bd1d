#!/usr/bin/env bash
# A guided tour: build, start three regions on this machine (PostgreSQL, Redis and a coordinator
# each, one PowerDNS for the global name), keep writing, kill the primary region, watch the
# automatic failover step by step — promotion, then DNS, then every region's Redis — bring the old
# region back and watch it rejoin as a replica. Run as root (it installs packages first).
# ARAGORA_DEMO_DIR: lab directory (default: a new one under /tmp); ARAGORA_DEMO_BASE_PORT: first
# port (default 21000; the lab uses 3 x 2 ports from there, 10 apart).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Installing build dependencies (Debian packages) if any are missing"
bash scripts/deps.sh

say "Building (meson + ninja, into ./build)"
# Never a test build: scripts/test.sh shares ./build and turns the fault points on.
if [ -f build/meson-private/coredata.dat ]; then
    meson setup --reconfigure build -Dfault_points=false >/dev/null ||
        meson setup --wipe build -Dfault_points=false >/dev/null
else
    rm -rf build && meson setup build -Dfault_points=false >/dev/null
fi
ninja -C build >/dev/null
chaos=build/aragora-chaos
ctl=build/aragoractl

dir=${ARAGORA_DEMO_DIR:-$(mktemp -d /tmp/aragora-demo.XXXXXX)}
base=${ARAGORA_DEMO_BASE_PORT:-21000}
regions=(us-east-2 eu-west-1 ap-south-1)
url() { # URL of region index $1
    echo "http://127.0.0.1:$((base + 10 * $1))"
}
export ARAGORA_ENDPOINTS="$(url 0),$(url 1),$(url 2)"
trap 'say "Stopping the lab (every process it started, by PID)"; "$chaos" lab down --dir "$dir"; echo "Logs and configs are kept in $dir"' EXIT
chmod 755 "$dir" # PostgreSQL runs as the postgres user and must reach its directories

psql_at() { # port, SQL: one statement as the postgres user over TCP (lab: trust on 127.0.0.1)
    /usr/lib/postgresql/15/bin/psql -X -A -t -q -h 127.0.0.1 -p "$1" -U postgres -d postgres \
        -c "$2" 2>/dev/null
}
pgport() { echo $((base + 10 * $1 + 2)); }
dnsport=$((base + 30)) # the lab's PowerDNS, after the three regions' ports
show_routing() { # what the global name and each region's Redis say
    printf '  dig primary.aragora.lab:  A %s   TXT %s\n' \
        "$(dig @127.0.0.1 -p "$dnsport" +norecurse +short primary.aragora.lab. A | tr '\n' ' ')" \
        "$(dig @127.0.0.1 -p "$dnsport" +norecurse +short primary.aragora.lab. TXT | tr '\n' ' ')"
    for i in 0 1 2; do
        printf '  %-11s Redis aragora:primary = %s\n' "${regions[$i]}" \
            "$(redis-cli -p $((base + 10 * i + 3)) --raw get aragora:primary 2>/dev/null || echo '(down)')"
    done
}
field() { # region index, python expression over the /v1/cluster document d
    curl -s --max-time 1 "$(url "$1")/v1/cluster" |
        python3 -c "import json,sys; d=json.load(sys.stdin); print($2)" 2>/dev/null || true
}

say "Starting three regions in $dir: PostgreSQL 15, Redis and a coordinator each, and PowerDNS"
echo "us-east-2 runs the primary; eu-west-1 and ap-south-1 stream from it. The three coordinators"
echo "form a Raft group: they elect one leader, which alone decides; every decision is committed"
echo "to the Raft log before anything is done about it. Clients find the primary through the DNS"
echo "name primary.aragora.lab (PowerDNS on port $dnsport) or through their region's Redis."
"$chaos" lab up --dir "$dir" --base-port "$base"

say "Waiting for the first leader to adopt the running primary as epoch 1"
deadline=$((SECONDS + 30))
until [ "$(field 1 'd["epoch"]')" = 1 ] || [ $SECONDS -ge $deadline ]; do sleep 0.2; done
"$ctl" status
echo
show_routing

say "Writing continuously: one INSERT every ~50 ms into whichever region accepts it"
psql_at "$(pgport 0)" "CREATE TABLE demo_writes (seq int, at timestamptz DEFAULT now())" >/dev/null
writes="$dir/writes.log"
: >"$writes"
touch "$dir/writing" # the writer runs while this file exists
(
    seq=0
    while [ -e "$dir/writing" ]; do
        for i in 0 1 2; do
            if psql_at "$(pgport "$i")" "INSERT INTO demo_writes (seq) VALUES ($seq)" >/dev/null; then
                echo "$(date +%s%N) $seq ${regions[$i]}" >>"$writes"
                break
            fi
        done
        seq=$((seq + 1))
        sleep 0.05
    done
) &
writer=$!
trap 'rm -f "$dir/writing"; wait "$writer" 2>/dev/null || true; say "Stopping the lab (every process it started, by PID)"; "$chaos" lab down --dir "$dir"; echo "Logs and configs are kept in $dir"' EXIT
deadline=$((SECONDS + 20))
until [ "$(wc -l <"$writes")" -ge 20 ] || [ $SECONDS -ge $deadline ]; do sleep 0.2; done
echo "$(wc -l <"$writes") writes acknowledged so far, all by $(tail -1 "$writes" | cut -d' ' -f3)."

say "Killing the whole primary region, us-east-2: its coordinator and its PostgreSQL (SIGKILL)"
start=$(date +%s%N)
"$chaos" lab kill --dir "$dir" us-east-2 --what region
echo
echo "Now nobody acts by hand. The survivors see the primary gone (a majority must agree), wait"
echo "until its write lease has certainly expired, then commit each step of the failover."
deadline=$((SECONDS + 90))
until [ "$(field 1 '(d["failover"] or {}).get("step", "")')" = done ] ||
    [ "$(field 2 '(d["failover"] or {}).get("step", "")')" = done ] || [ $SECONDS -ge $deadline ]; do
    sleep 0.2
done
new=$(field 1 'd["primary"]')
[ -n "$new" ] || new=$(field 2 'd["primary"]')
echo
echo "The failover, step by step, from its receipt in the Raft log (time since the kill):"
curl -s --max-time 2 "$(url 1)/v1/cluster" | python3 -c '
import datetime, json, sys
t0 = int(sys.argv[1]) / 1e9
f = json.load(sys.stdin)["failover"]
rows = []
for order, step in enumerate(("detected", "decided", "fenced", "promoted", "routed", "done")):
    at = f["times"].get(step)
    if at:
        rows.append((at, order, step,
                     "epoch %d: %s -> %s" % (f["epoch"], f["from"], f["to"]) if step == "decided" else
                     "timeline %d" % f["timeline"] if step == "promoted" else
                     "DNS names %s, checked on the server" % f["routed_address"] if step == "routed"
                     else ""))
for region, at in (f["times"].get("published") or {}).items():
    if at:
        rows.append((at, 4, "published", "%s\x27s Redis holds epoch %d" % (region, f["epoch"])))
for at, _, step, what in sorted(rows):
    t = datetime.datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
    print("  +%5d ms  %-9s %s" % ((t - t0) * 1000, step, what))
' "$start" || true
first=$(awk -v t="$start" -v r="$new" '$1 > t && $3 == r {print $1; exit}' "$writes")
[ -n "$first" ] && printf '  +%5d ms  first write acknowledged by the new primary, %s\n' \
    $(((first - start) / 1000000)) "$new"

say "What clients see now: the DNS answer and every region's Redis"
deadline=$((SECONDS + 30))
until [ "$(field 1 '(d["failover"] or {}).get("times", {}).get("routed") is not None')" = True ] ||
    [ $SECONDS -ge $deadline ]; do
    sleep 0.2
done
show_routing
echo "  (us-east-2's Redis still says epoch 1 until its coordinator is back: that region is down)"

say "aragoractl history: the receipt of that failover"
"$ctl" history || true

say "Bringing us-east-2 back: its coordinator fences the old primary, rewinds it, rejoins it"
back=$(date +%s%N)
"$chaos" lab restart --dir "$dir" us-east-2 --what region
deadline=$((SECONDS + 90))
until [ "$(field 1 "[p for p in d['postgres'] if p['region']=='us-east-2'][0]['seen_by_its_own_coordinator'] and [p for p in d['postgres'] if p['region']=='us-east-2'][0]['seen_by_its_own_coordinator']['upstream']")" = "$new" ] ||
    [ $SECONDS -ge $deadline ]; do
    sleep 0.2
done
printf '  us-east-2 streams from %s again, %d ms after it came back\n' "$new" \
    $((($(date +%s%N) - back) / 1000000))
grep -hE '\+(fencing|fenced|rejoining|rewound)' "$dir/us-east-2/coordinator.log" | sed 's/^/  /'

rm -f "$dir/writing"
wait "$writer" 2>/dev/null || true
say "Every acknowledged write is on every region"
for i in 0 1 2; do
    printf '  %-11s %s rows\n' "${regions[$i]}" "$(psql_at "$(pgport "$i")" "SELECT count(*) FROM demo_writes")"
done
echo "  acknowledged: $(wc -l <"$writes") (async replication: writes acknowledged by the old primary"
echo "  in its last moments may be lost; synchronous mode, issue 6, makes that zero)"

say "aragoractl status"
"$ctl" status
echo
show_routing

say "Done. Try it yourself:"
cat <<TXT
  $chaos lab up --dir /tmp/x
  $ctl --endpoint $(url 1) status
  $chaos lab kill --dir /tmp/x us-east-2 --what region
  $ctl --endpoint $(url 1) history
  dig @127.0.0.1 -p 21030 primary.aragora.lab. A +short
  $chaos lab down --dir /tmp/x
TXT
