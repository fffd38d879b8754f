#!/usr/bin/env bash
# Warm pools through a real silod: K paused sandboxes per template (a hac.toml
# spec and a snapshot tag; namespace ones held, not frozen: lib/core/mgr_pool.c),
# a pooled sandbox refuses exec and file writes until taken (no user code runs
# in it), a matching create/restore takes one (running,
# usable, much faster than a cold create), the pool refills in the background
# and replaces a pooled sandbox deleted behind its back, a non-matching create
# is not served from it, bad --warm-pool values are refused, and stopping
# silod removes the ready sandboxes.
. "$(dirname "$0")/silod-lib.sh"

pools() { api GET /v1/pools; }
wait_ready() { # wait_ready INDEX_EXPR COUNT
	for _ in $(seq 1 300); do
		[ "$(pools | jget "$1")" = "$2" ] && return 0
		sleep 0.05
	done
	return 1
}

pool_spec "$TMP/pool.toml"

# -- option errors
"$SILOD" --warm-pool "$TMP/pool.toml" > "$TMP/out" 2>&1; rc=$?
check "--warm-pool without :K is refused" test $rc = 2 -a -n "$(grep 'SOURCE:K' "$TMP/out")"
"$SILOD" --warm-pool "$TMP/missing.toml:2" > "$TMP/out" 2>&1; rc=$?
check "--warm-pool with a missing spec file is refused, naming it" test $rc != 0 -a -n "$(grep missing.toml "$TMP/out")"
"$SILOD" --warm-pool "snapshot=nosuch:1" > "$TMP/out" 2>&1; rc=$?
check "--warm-pool with an unknown snapshot is refused" test $rc != 0 -a -n "$(grep nosuch "$TMP/out")"

# -- a snapshot to pool: made by a first silod
start_daemon --max-sandboxes 12 --capacity-memory-mb 8192 || { notok "silod starts"; echo "1..$N"; exit 1; }
namespace_available || skip_all "namespace provider unavailable here"
trap 'echo "1..$N"; cleanup' EXIT
S0=$(create_ns seed 128)
exec_json "$S0" '{"argv":["sh","-c","echo seeded > /root/seed"]}' > /dev/null
SNAP=$("$SILO" snapshot "$S0" --tag pool-base)
api DELETE "/v1/sandboxes/$S0?grace_ms=0" > /dev/null
stop_daemon
check "a snapshot to pool exists" test -n "$SNAP"

start_daemon --max-sandboxes 12 --capacity-memory-mb 8192 --warm-pool "$TMP/pool.toml:2" \
	--warm-pool "snapshot=pool-base:1" || { notok "silod starts with pools"; echo "1..$N"; exit 1; }
check "spec pool fills to K=2" wait_ready '[p for p in j["pools"] if not p.get("snapshot")][0]["ready"]' 2
check "snapshot pool fills to K=1" wait_ready '[p for p in j["pools"] if p.get("snapshot")][0]["ready"]' 1
READY=$(pools | jget '" ".join([p for p in j["pools"] if not p.get("snapshot")][0]["ready_ids"])')
set -- $READY
check "pooled sandboxes are paused" test "$(api GET "/v1/sandboxes/$1" | jget 'j["state"]')" = paused
# the per-provider rule: a namespace sandbox is held (state paused, agent not frozen)
held_record() { # held_record ID: its "paused" audit record says held
	python3 -c 'import json,sys
sys.exit(0 if any(r["sandbox_id"] == sys.argv[1] and r["event"] == "paused" and r["details"].get("held")
	for r in map(json.loads, open(sys.argv[2]))) else 1)' "$1" "$SILO_STATE_DIR/audit.jsonl"
}
check "pooled namespace sandboxes are held, not frozen (audit: held true)" held_record "$1"
# attack: run code in a pooled sandbox before anyone takes it (each of them)
codes=
for r in $READY; do
	exec_json "$r" '{"argv":["sh","-c","echo planted > /root/planted"]}' > /dev/null
	codes="$codes$(status) "
	api PUT "/v1/sandboxes/$r/files?path=/root/planted" --data-binary planted > /dev/null
	codes="$codes$(status) "
done
check "exec and file writes into pooled sandboxes are refused (409)" test "$codes" = "409 409 409 409 "
# a snapshot of a held sandbox freezes it first (the pool keeps it; its take thaws it)
HS=$("$SILO" snapshot "$2" --tag held-snap 2>&1)
check "a snapshot of a held pooled sandbox works" test -n "$HS" -a "$(api GET "/v1/sandboxes/$2" | jget 'j["state"]')" = paused

# -- a matching create takes one
t0=$(date +%s%N)
ID=$(api POST /v1/sandboxes -H 'Content-Type: application/toml' --data-binary @"$TMP/pool.toml" | jget 'j.get("id","")')
t1=$(date +%s%N)
echo "# create from the warm pool: $(( (t1 - t0) / 1000000 )) ms (curl round trip included)"
check "matching create is 201 and returns a pooled id" test "$(status)" = 201 -a -n "$ID" -a -n "$(echo " $READY " | grep " $ID ")"
check "the taken sandbox is running" test "$(api GET "/v1/sandboxes/$ID" | jget 'j["state"]')" = running
check "and answers exec" test "$(exec_json "$ID" '{"argv":["echo","warm"]}' | ndjson_out)" = "warm||0"
check "nothing planted while it was pooled" test "$(exec_json "$ID" '{"argv":["sh","-c","test -e /root/planted; echo $?"]}' | ndjson_out)" = "1||0"
check "the pool refills to 2" wait_ready '[p for p in j["pools"] if not p.get("snapshot")][0]["ready"]' 2
check "the refill is a new sandbox" test -z "$(pools | jget '" ".join([p for p in j["pools"] if not p.get("snapshot")][0]["ready_ids"])' | grep "$ID")"
check "taken is counted" test "$(pools | jget '[p for p in j["pools"] if not p.get("snapshot")][0]["taken"]')" = 1

# -- a different spec is not served from the pool
OTHER=$(create_ns other 128)
check "a non-matching create is cold (not a pooled id)" test -n "$OTHER" -a -z "$(echo " $READY " | grep " $OTHER ")"

# -- restore of the pooled snapshot takes the ready copy
SREADY=$(pools | jget '[p for p in j["pools"] if p.get("snapshot")][0]["ready_ids"][0]')
R=$("$SILO" restore pool-base)
check "restore of a pooled snapshot takes the ready sandbox" test "$R" = "$SREADY"
check "which holds the snapshot's files" test "$(exec_json "$R" '{"argv":["cat","/root/seed"]}' | ndjson_out)" = "seeded||0"
check "the snapshot pool refills" wait_ready '[p for p in j["pools"] if p.get("snapshot")][0]["ready"]' 1

# -- a pooled sandbox deleted behind the pool's back is replaced
V=$(pools | jget '[p for p in j["pools"] if not p.get("snapshot")][0]["ready_ids"][0]')
api DELETE "/v1/sandboxes/$V?grace_ms=0" > /dev/null
check "deleting a pooled sandbox works" test "$(status)" = 200
sleep 1.2
check "... and the pool has 2 ready again, without it" test "$(pools | jget '[p for p in j["pools"] if not p.get("snapshot")][0]["ready"]')" = 2 -a \
	-z "$(pools | jget '" ".join([p for p in j["pools"] if not p.get("snapshot")][0]["ready_ids"])' | grep "$V")"

# -- per-request timing: asked for with X-Silo-Timing, never sent otherwise
T=$(curl -s -D "$TMP/hdr" --unix-socket "$SOCK" -H 'X-Silo-Timing: 1' -H 'Content-Type: application/toml' \
	--data-binary @"$TMP/pool.toml" http://silod/v1/sandboxes | jget 'j.get("id","")')
check "a timed take answers Server-Timing with the pool, registry and total steps" \
	sh -c "grep -i '^Server-Timing:' '$TMP/hdr' | grep 'pool;dur=' | grep 'registry;dur=' | grep -q 'total;dur='"
curl -s -o /dev/null -D "$TMP/hdr" --unix-socket "$SOCK" http://silod/v1/health
check "no Server-Timing unless asked" test -z "$(grep -i '^Server-Timing' "$TMP/hdr")"

# -- stop: ready sandboxes are removed; user sandboxes deleted first here
for id in $ID $OTHER $R $T; do api DELETE "/v1/sandboxes/$id?grace_ms=0" > /dev/null; done
stop_daemon
check_clean_exit "silod with pools exits cleanly"
check "no sandbox run directories left after stop" test -z "$(ls -A "$SILO_RUNTIME_DIR/sandboxes" 2>/dev/null)"
check "registry lists no live sandbox" test "$(sqlite3 "$SILO_STATE_DIR/registry.db" \
	"SELECT count(*) FROM sandboxes WHERE state NOT IN ('terminated','error')")" = 0
