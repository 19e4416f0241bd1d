#!/usr/bin/env bash
# A guided tour: build, start three coordinators on this machine, show who leads, kill the leader,
# watch a survivor take over, bring the dead one back. Run as root (it installs packages first).
# ARAGORA_DEMO_DIR: lab directory (default: a new one under /tmp); ARAGORA_DEMO_BASE_PORT: first
# port (default 21000; the lab uses 3 x 2 ports from there, 10 apart).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Installing build dependencies (Debian packages) if any are missing"
bash scripts/deps.sh

say "Building (meson + ninja, into ./build)"
if [ -f build/meson-private/coredata.dat ]; then
    meson setup --reconfigure build >/dev/null || meson setup --wipe build >/dev/null
else
    rm -rf build && meson setup build >/dev/null
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

say "Starting three coordinators, one per region, in $dir"
echo "Each one is an aragora-coordinator process with its own config, Raft log and HTTP API."
echo "Together they form a Raft group: they elect one leader, which alone may act."
"$chaos" lab up --dir "$dir" --base-port "$base"

say "aragoractl status: the cluster as one coordinator sees it"
"$ctl" status

old=$("$ctl" leader | cut -d' ' -f1)
survivors=()
for i in 0 1 2; do
    [ "${regions[$i]}" = "$old" ] || survivors+=("$(url "$i")")
done
say "Killing the leader, $old, with SIGKILL (as if its region went dark)"
start=$(date +%s%N)
"$chaos" lab kill --dir "$dir" "$old"

say "Waiting for the two survivors to elect a new leader"
echo "They notice the silence after an election timeout (about 1 s), then vote."
new=""
deadline=$((SECONDS + 30))
while [ $SECONDS -lt $deadline ]; do
    new=$("$ctl" --endpoint "$(IFS=,; echo "${survivors[*]}")" leader 2>/dev/null | cut -d' ' -f1) || true
    if [ -n "$new" ] && [ "$new" != "$old" ]; then
        break
    fi
    new=""
    sleep 0.1
done
if [ -z "$new" ]; then
    echo "No new leader within 30 s; see the logs in $dir/*/coordinator.log" >&2
    exit 1
fi
echo "New leader: $new, $(( ($(date +%s%N) - start) / 1000000 )) ms after the kill."

say "aragoractl status again (it skips the dead endpoint on its own)"
"$ctl" status

say "Restarting $old: it rejoins as a follower and catches up from the log"
"$chaos" lab restart --dir "$dir" "$old"
for i in 0 1 2; do
    [ "${regions[$i]}" = "$old" ] && old_url=$(url "$i")
done
deadline=$((SECONDS + 15))
until [ "$("$ctl" --endpoint "$old_url" leader 2>/dev/null | cut -d' ' -f1)" = "$new" ] ||
    [ $SECONDS -ge $deadline ]; do
    sleep 0.1
done
"$chaos" lab status --dir "$dir"

say "Done. Try it yourself:"
cat <<TXT
  $chaos lab up --dir /tmp/x
  $ctl --endpoint $(url 1) status
  $chaos lab kill --dir /tmp/x REGION      # the leader's region
  $chaos lab down --dir /tmp/x
TXT
