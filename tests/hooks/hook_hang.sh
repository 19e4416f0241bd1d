#!/bin/sh
# Test hook that never ends: writes its PID and its child's to $HOOK_OUT/hang.pids, then waits
# on a sleep forever. The coordinator must kill the whole process group at the timeout.
sleep 600 &
echo "$$ $!" >"$HOOK_OUT/hang.pids"
echo "hanging"
wait
