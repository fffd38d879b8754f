#!/usr/bin/env bash
# Issue 14's smaller first-hour problems, each performed as the user met it: a name two live
# sandboxes share, `silo cp DIR`, `--memory` below the minimum, an image name typo, and event
# sequence numbers across a silod restart (kill -9).
. "$(dirname "$0")/silod-lib.sh"
trap 'echo "1..$N"; cleanup' EXIT
start_daemon || { notok "silod starts"; exit 1; }
namespace_available || skip_all "namespace provider unavailable here: $(api GET /v1/providers)"

# -- events: note the highest sequence number seen before the restart
"$SILO" events --json --count 3 > "$TMP/ev1" 2>&1 &
EVP=$!
sleep 0.3
A=$(create_ns twin)
B=$(create_ns twin)
wait "$EVP"
s1=$(python3 -c 'import json,sys; print(max(json.loads(l)["seq"] for l in open(sys.argv[1]) if l.strip()))' "$TMP/ev1" 2>/dev/null)
check "events seen before the restart carry seq numbers" test -n "$s1"

# -- a name two live sandboxes share
check "two sandboxes with one name" test -n "$A" -a -n "$B"
out=$("$SILO" exec twin -- true 2>&1); rc=$?
check "exec NAME with two holders: refused as ambiguous, naming both" \
	bash -c "[ $rc != 0 ] && grep -q 'CONFLICT' <<<'$out' && grep -q ambiguous <<<'$out' && grep -q '$A' <<<'$out' && grep -q '$B' <<<'$out'"
api GET /v1/sandboxes/twin > /dev/null
check "GET /v1/sandboxes/NAME with two holders is 409" test "$(status)" = 409
check "by id each still works" test "$(exec_json "$A" '{"argv":["echo","a"]}' | ndjson_out)" = "a||0"

# -- silo cp DIR: a clear error at once
mkdir -p "$TMP/dir"
out=$(timeout 20 "$SILO" cp "$TMP/dir" "$A:/tmp/dir" 2>&1); rc=$?
check "silo cp DIR: INVALID_CONFIG naming the directory (no TIMEOUT)" \
	bash -c "[ $rc = 125 ] && grep -q 'INVALID_CONFIG' <<<'$out' && grep -q 'is a directory' <<<'$out'"

# -- --memory below the minimum says the minimum
out=$("$SILO" run --provider namespace --memory 64 -- true 2>&1); rc=$?
check "run --memory 64: refused, the message says 128..65536" bash -c "[ $rc = 125 ] && grep -q '128\.\.65536' <<<'$out'"
check "run --help says the minimum" bash -c "'$SILO' run --help | grep -q -- '--memory MB.*128\.\.65536'"

# -- an image name typo suggests the right name
out=$("$SILO" run --provider qemu --image pyhton -- true 2>&1)
check "--image pyhton: did you mean \"python\", not 'build pyhton'" \
	bash -c "grep -q 'did you mean \"python\"' <<<'$out' && ! grep -q 'build pyhton' <<<'$out'"

# -- event sequence numbers keep growing across kill -9 of silod
kill -KILL "$DPID"; wait "$DPID" 2>/dev/null; DPID=
start_daemon || notok "silod restarts"
"$SILO" events --json --count 1 > "$TMP/ev2" 2>&1 &
EVP=$!
sleep 0.3
C=$(create_ns after)
wait "$EVP"
s2=$(python3 -c 'import json,sys; print(min(json.loads(l)["seq"] for l in open(sys.argv[1]) if l.strip()))' "$TMP/ev2" 2>/dev/null)
check "event seq after the restart ($s2) is above every seq before it ($s1)" test "${s2:-0}" -gt "${s1:-0}"
stop_daemon
check_clean_exit "silod exits cleanly"
exit $((FAILED > 0))
