#!/usr/bin/env bash
# An example program of examples/sdk as shipped (TAP): it exits 0, streams the
# steps of its script, and prints the result file it read back from the sandbox.
# Usage (under tests/sdk/run.sh, which starts silod): check_example.sh PROGRAM [ARGS...]
. "$(dirname "$0")/../tap.sh"
output=$(timeout 240 "$@" 2>&1); rc=$?
b=$(basename "$1")
check "$b exits 0" test $rc = 0
streamed() { grep -q '^\[stdout\] step 1' <<<"$output" && grep -q 'step 3' <<<"$output"; }
check "$b streams its script's output" streamed
check "$b prints the result file" grep -q '^result {"steps": 3}' <<<"$output"
[ $FAILED = 0 ] || tap_comment <<<"$output"
echo "1..$N"
exit $((FAILED > 0))
