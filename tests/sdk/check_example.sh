#!/usr/bin/env bash
# An example program of examples/sdk as shipped (TAP): it exits 0, streams the
# steps of its script, and prints the result file it read back from the sandbox.
# Usage (under tests/sdk/run.sh, which starts silod): check_example.sh PROGRAM [ARGS...]
. "$(dirname "$0")/../tap.sh"
out=$(timeout 240 "$@" 2>&1); rc=$?
b=$(basename "$1")
check "$b exits 0" test $rc = 0
check "$b streams its script's output" grep -q '^\[stdout\] step 3' <<<"$out"
check "$b prints the result file" grep -q '^result {"steps": 3}' <<<"$out"
[ $FAILED = 0 ] || tap_comment <<<"$out"
echo "1..$N"
exit $((FAILED > 0))
