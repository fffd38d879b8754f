#!/usr/bin/env bash
# `silo run` behaves the same with and without silod (issue 14): --timeout exits 124 with a
# TIMEOUT message, --time prints the same line, --json leaves the command's output as it is
# (errors and --time as JSON), the exit status passes through. Each case runs embedded first,
# then through a silod on a private socket.
. "$(dirname "$0")/silod-lib.sh"
trap 'echo "1..$N"; cleanup' EXIT
run() { timeout 120 "$SILO" run --provider namespace "$@"; }
cases() { # $1 = mode label
	local m=$1 out rc
	out=$(run --timeout 1 -- sleep 30 2> "$TMP/err"); rc=$?
	check "$m: --timeout exits 124" test "$rc" = 124
	check "$m: with a TIMEOUT message naming --timeout" grep -q "TIMEOUT .*command killed after --timeout 1 s" "$TMP/err"
	out=$(run --time -- true 2> "$TMP/err"); rc=$?
	check "$m: --time prints the phases" grep -qE '^silo: time: (cold|template), spawn [0-9]+ ms, ready [0-9]+ ms, exec [0-9]+ ms, destroy [0-9]+ ms, total [0-9]+ ms$' "$TMP/err"
	out=$(run --json --time -- echo hi 2> "$TMP/err"); rc=$?
	check "$m: --json keeps the command's output as it is" test "$out" = hi -a "$rc" = 0
	check "$m: --json --time prints a JSON object" python3 -c 'import json,sys
j=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
assert j["sandbox"].startswith("sb-") and all(isinstance(j[k], int) for k in ("spawn_ms","ready_ms","exec_ms","destroy_ms","total_ms")), j' "$TMP/err"
	run -- sh -c 'exit 7' > /dev/null 2>&1
	check "$m: exit status passes through" test $? = 7
	out=$(run --json --timeout 1 -- sleep 30 2> /dev/null); rc=$?
	check "$m: --json --timeout: 124 and a JSON error TIMEOUT" python3 -c 'import json,sys
assert sys.argv[2] == "124"
assert json.loads(sys.argv[1])["error"]["code"] == "TIMEOUT"' "$out" "$rc"
}
cases embedded
start_daemon || { notok "silod starts"; exit 1; }
namespace_available || skip_all "namespace provider unavailable here"
cases silod
check "silod made the sandboxes (its audit log names them)" grep -q '"spawned"' "$SILO_STATE_DIR/audit.jsonl"
stop_daemon
check_clean_exit "silod exits cleanly"
exit $((FAILED > 0))
