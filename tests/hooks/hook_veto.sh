#!/bin/sh
# Test pre_promote hook: refuses the promotion. The first line of its output is the reason.
echo
echo "replica lag 42 MB exceeds the limit"
echo "a second line that is not the reason" >&2
exit 3
