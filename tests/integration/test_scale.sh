#!/usr/bin/env bash
# Capacity for many idle sandboxes (issue 20 goal 5; docs/benchmarks.md "Scale", docs/hac-toml.md
# "Capacity"): silod's overcommit flags are validated, admit exactly cores x ratio vCPUs, and
# while memory is overcommitted a create is refused when the host's real free memory is under
# the reserve (the attack: a client filling an overcommitted host until the OOM killer picks).
# Then a short bench/scale: 50 live namespace sandboxes through the API, an exec in each, all
# deleted, nothing left (processes, mounts, cgroups, loop devices, run dirs, id slots, rows).
. "$(dirname "$0")/silod-lib.sh"
trap 'echo "1..$N"; cleanup' EXIT

for bad in 0.5 abc 1e9 ""; do
	out=$("$SILOD" --cpu-overcommit "$bad" 2>&1); rc=$?
	check "silod --cpu-overcommit '$bad' is refused naming the flag (exit $rc: $out)" \
		bash -c "test $rc = 2 && grep -q -- '--cpu-overcommit: expected a ratio 1..10000' <<< '$out'"
done
out=$("$SILOD" --memory-overcommit 0 2>&1); rc=$?
check "silod --memory-overcommit 0 is refused (exit $rc)" bash -c "test $rc = 2 && grep -q -- '--memory-overcommit' <<< '$out'"

start_daemon --max-sandboxes 8 --capacity-vcpus 1 --cpu-overcommit 3 --capacity-memory-mb 100000 ||
	{ notok "silod starts with --cpu-overcommit 3"; exit 1; }
if ! namespace_available; then
	N=$((N + 1)); echo "ok $N - capacity and bench/scale # SKIP namespace provider unavailable"
	exit 0
fi
ids=()
for i in 1 2 3; do ids+=("$(create_ns "oc-$i" 128)"); done
check "3 sandboxes of 1 vCPU fit 1 core x --cpu-overcommit 3 (${ids[*]})" test -n "${ids[2]}"
create_ns oc-4 128 > /dev/null
expect_error "the 4th is refused: RESOURCE_EXCEEDED naming vcpus and the overcommitted total" 409 \
	RESOURCE_EXCEEDED "vcpus: 1 requested, 3 of 3 allocatable already allocated"
for id in "${ids[@]}"; do api DELETE "/v1/sandboxes/$id" > /dev/null; done
stop_daemon

# The reserve: 5 % of the memory capacity must be really available. A capacity of 40 x what the
# host has free puts the reserve at twice that, so even the smallest sandbox is refused.
avail=$(awk '/^MemAvailable:/{print int($2/1024)}' /proc/meminfo)
start_daemon --max-sandboxes 8 --capacity-memory-mb $((avail * 40)) --memory-overcommit 2 ||
	{ notok "silod starts with --memory-overcommit 2"; exit 1; }
create_ns reserve 128 > /dev/null
expect_error "with memory overcommitted, a create is refused while MemAvailable is under the reserve" 409 \
	RESOURCE_EXCEEDED "below the" "MB reserve kept while memory is overcommitted"
left=$(api GET /v1/sandboxes | jget 'len(j["sandboxes"])')
check "the refused create left no sandbox ($left)" test "$left" = 0
stop_daemon
start_daemon --max-sandboxes 8 --memory-overcommit 2 || { notok "silod starts"; exit 1; }
id=$(create_ns reserve-ok 128)
check "with the reserve available, the same create succeeds ($id)" test -n "$id"
[ -n "$id" ] && api DELETE "/v1/sandboxes/$id" > /dev/null
stop_daemon
check_clean_exit "silod exits cleanly (no sanitizer report)"

# bench/scale, short (ASan build: about 30 s here)
out=$(timeout 300 "$BUILD/bench/scale" -n 50 --clients 8 --silod "$SILOD" 2> "$TMP/bench.err"); rc=$?
check "bench/scale -n 50: exit 0, 50 created and live at once, an exec in each" \
	python3 -c 'import json,sys; j=json.loads(sys.argv[1]); assert j["created"]==50 and j["live_at_peak"]==50, j
assert j["with_all_live"]["exec"]["count"]==50 and j["with_all_live"]["exec"]["errors"]==0, j["with_all_live"]' "$out"
check "bench/scale -n 50: nothing left after the deletes ($(jget 'j["left_after_delete"]' <<< "$out" 2>/dev/null))" \
	python3 -c 'import json,sys; j=json.loads(sys.argv[1]); l=j["left_after_delete"]
assert j["clean"] and not l["run_dir_entries"] and all(v==0 for k,v in l.items() if k!="run_dir_entries"), l' "$out"
[ $rc = 0 ] || { echo "$out" | tail -40 | sed 's/^/# /'; sed 's/^/# /' "$TMP/bench.err" | tail -5; }
