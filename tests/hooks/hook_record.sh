#!/bin/sh
# Test hook (tests/hooks/test_hooks.c): records its arguments and its whole environment in
# $HOOK_OUT/calls, one block per call, then sleeps $HOOK_SLEEP seconds (if set) and exits 0.
{
    echo "call $*"
    env | sort | sed 's/^/env /'
    echo "end"
} >>"$HOOK_OUT/calls"
echo "recorded $1 epoch $4"
if [ -n "$HOOK_SLEEP" ]; then
    sleep "$HOOK_SLEEP"
fi
exit 0
