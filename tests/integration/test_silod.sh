#!/usr/bin/env bash
# silod API end to end: a real silod, a real SQLite registry, the namespace provider.
. "$(dirname "$0")/silod-lib.sh"

TOKEN=test-token-0123456789abcdef
echo "$TOKEN" > "$TMP/token"
PORT=$((20000 + RANDOM % 20000))
start_daemon --max-sandboxes 3 --capacity-memory-mb 4096 --error-threshold 1000 \
	--listen "127.0.0.1:$PORT" --token-file "$TMP/token" || { notok "silod starts"; echo "1..$N"; exit 1; }
namespace_available || skip_all "namespace provider unavailable here: $(api GET /v1/providers)"
trap 'echo "1..$N"; cleanup' EXIT

# -- plumbing
check "socket is mode 0600" test "$(stat -c %a "$SOCK")" = 600
h=$(api GET /v1/health)
check "health answers ok" test "$(echo "$h" | jget 'j["status"]')" = ok
p=$(api GET /v1/providers)
check "providers carry name/version/available" python3 -c '
import json,sys; p=json.loads(sys.argv[1])["providers"]
assert p and all("name" in x and "version" in x and "available" in x for x in p)
assert all(x["available"] or x.get("reason") for x in p)' "$p"
check "registry is a WAL SQLite file" test "$(sqlite3 "$SILO_STATE_DIR/registry.db" 'PRAGMA journal_mode')" = wal
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v1/health")
check "TCP without token is 401" test "$code" = 401
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer wrong-token-xxxxxxxx" "http://127.0.0.1:$PORT/v1/health")
check "TCP with a wrong token is 401" test "$code" = 401
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/v1/health")
check "TCP with the token is 200" test "$code" = 200

# -- events: subscribe before anything happens
"$SILO" events --json > "$TMP/events" 2>&1 &
EVPID=$!
sleep 0.3

# -- create (JSON), list, inspect
A=$(create_ns web-a 256 ',"metadata":{"team":"ml"}')
check "create (JSON) returns 201 and an id" test "$(status)" = 201 -a -n "$A"
ins=$(api GET "/v1/sandboxes/$A")
check "inspect: running, namespace provider, pid" python3 -c '
import json,sys; j=json.loads(sys.argv[1]); assert j["state"]=="running" and j["provider"]=="namespace" and j["pid"]>0, j' "$ins"
TOML=$(echo "$ins" | jget 'j["spec"]')
B=$(printf '%s\n' "$TOML" | sed 's/web-a/db-b/' | api POST /v1/sandboxes -H 'Content-Type: application/toml' --data-binary @- | jget 'j.get("id","")')
check "create (hac.toml text) returns 201" test "$(status)" = 201 -a -n "$B" -a "$B" != "$A"
check "ids are unique" test "$A" != "$B"
l=$(api GET "/v1/sandboxes?name=web")
check "list filter: name prefix" test "$(echo "$l" | jget '[s["id"] for s in j["sandboxes"]]')" = "[\"$A\"]"
l=$(api GET "/v1/sandboxes?metadata=team%3Dml")
check "list filter: metadata (B's spec carries A's metadata)" test "$(echo "$l" | jget 'len(j["sandboxes"])')" = 2
l=$(api GET "/v1/sandboxes?metadata=team%3Dinfra")
check "list filter: metadata that matches nothing" test "$(echo "$l" | jget 'len(j["sandboxes"])')" = 0
l=$(api GET "/v1/sandboxes?state=running&provider=namespace")
check "list filter: state + provider" test "$(echo "$l" | jget 'len(j["sandboxes"])')" = 2
check "silo ps --json lists both" test "$("$SILO" ps --json | jget 'len(j)')" = 2
check "silo ps prints a table with both" test "$("$SILO" ps | grep -c -e "$A" -e "$B")" = 2
check "silo inspect --json names the sandbox" test "$("$SILO" inspect --json web-a | jget 'j["id"]')" = "$A"
check "silo logs shows the state history" grep -q 'provisioning -> running' <("$SILO" logs "$A")
check "silo top --json reports usage" test "$("$SILO" top --json | jget '"usage" in j[0] and j[0]["usage"]["memory_bytes"] > 0')" = true
printf '%s\n' "$TOML" | sed 's/web-a/cli-c/' > "$TMP/c.toml"
CC=$("$SILO" create -f "$TMP/c.toml")
check "silo create -f hac.toml" test "$("$SILO" inspect "$CC" --json | jget 'j["name"]')" = cli-c
"$SILO" rm "$CC" > /dev/null
e=$("$SILO" inspect sb-nope --json); rc=$?
check "CLI errors: exit 125 and the JSON error body with --json" test $rc = 125 -a "$(echo "$e" | jget 'j["error"]["code"]')" = VM_NOT_FOUND

# -- exec streaming
r=$(exec_json "$A" '{"argv":["sh","-c","echo out; echo err >&2; exit 7"]}' | ndjson_out)
check "exec streams stdout, stderr and exit code" test "$r" = "out|err|7"
check "exec response is chunked NDJSON" grep -qi 'transfer-encoding: chunked' <(curl -s -D - -o /dev/null --unix-socket "$SOCK" \
	-H 'Content-Type: application/json' -d '{"argv":["true"]}' "http://silod/v1/sandboxes/$A/exec")
r=$(exec_json "$A" '{"argv":["cat"],"stdin":"aGVsbG8gc3RkaW4="}' | ndjson_out)
check "exec feeds stdin" test "$r" = "hello stdin||0"
out=$("$SILO" exec "$A" -- sh -c 'echo via-cli; exit 5'); rc=$?
check "silo exec prints output and returns the exit code" test "$out" = via-cli -a $rc = 5

# -- files
head -c 300000 /dev/urandom > "$TMP/blob"
"$SILO" cp "$TMP/blob" "$A:/tmp/blob" && "$SILO" cp "$A:/tmp/blob" "$TMP/blob.back"
check "cp up and down round-trips 300 KB" cmp -s "$TMP/blob" "$TMP/blob.back"
api GET "/v1/sandboxes/$A/files?path=/nonexistent/x" > /dev/null
check "download of a missing file is an error" test "$(status)" -ge 400

# -- errors
e=$(api POST /v1/sandboxes -H 'Content-Type: application/json' -d '{"provider":"namespace","vcpus":"two"}')
check "bad field: 400 INVALID_CONFIG naming the field" test "$(status)" = 400 -a \
	"$(echo "$e" | jget 'j["error"]["code"]')" = INVALID_CONFIG -a -n "$(echo "$e" | grep vcpus)"
e=$(api GET /v1/sandboxes/sb-doesnotexist)
check "unknown id: 404 VM_NOT_FOUND" test "$(status)" = 404 -a "$(echo "$e" | jget 'j["error"]["code"]')" = VM_NOT_FOUND
head -c 2000000 /dev/zero | tr '\0' 'a' > "$TMP/big"
api POST /v1/sandboxes -H 'Content-Type: application/toml' --data-binary @"$TMP/big" > /dev/null
check "oversized body: 413" test "$(status)" = 413
expect_error "... PAYLOAD_TOO_LARGE naming the limit" 413 PAYLOAD_TOO_LARGE "larger than 1048576 bytes"
# HTTP-level refusals have codes of their own (docs/errors.md), from the one route table
api GET /v1/nope > /dev/null
expect_error "unknown endpoint: 404 NOT_FOUND" 404 NOT_FOUND "no such endpoint: GET /v1/nope"
allow=$(curl -s -D - -o "$TMP/body" -X DELETE --unix-socket "$SOCK" http://silod/v1/sandboxes | tr -d '\r' | sed -n 's/^Allow: //Ip')
check "wrong method: 405 with Allow: GET, POST" test "$allow" = "GET, POST" -a \
	"$(jget 'j["error"]["code"]' < "$TMP/body")" = METHOD_NOT_ALLOWED
api GET /v1/health -d x > /dev/null
expect_error "a body where the route takes none: 413" 413 PAYLOAD_TOO_LARGE "GET /v1/health takes no request body"
api POST "/v1/sandboxes/$A/exec" -H 'Content-Type: text/plain' -d '{"argv":["true"]}' > /dev/null
expect_error "exec with another Content-Type: 415" 415 UNSUPPORTED_MEDIA_TYPE "expected application/json"
api GET '/v1/sandboxes?state=running&state=error' > /dev/null
expect_error "a query parameter given twice: 400 naming it" 400 INVALID_CONFIG "query parameter state: given more than once"
api GET '/v1/sandboxes/sb%zz' > /dev/null
expect_error "a malformed escape in the path: 400 PROTOCOL" 400 PROTOCOL "malformed percent escape"
api GET "/v1/sandboxes/..%2F$A" > /dev/null
expect_error "an escaped slash stays inside the id: 404" 404 VM_NOT_FOUND "no sandbox with id or name"
e=$(create_ns too-big 8192)
check "over capacity: 409 RESOURCE_EXCEEDED" test "$(status)" = 409 -a "$(jget 'j["error"]["code"]' < "$TMP/body")" = RESOURCE_EXCEEDED
C=$(create_ns third)
e=$(create_ns fourth)
check "over --max-sandboxes: 429 MAX_VMS_EXCEEDED" test "$(status)" = 429 -a "$(jget 'j["error"]["code"]' < "$TMP/body")" = MAX_VMS_EXCEEDED
api DELETE "/v1/sandboxes/$C" > /dev/null
e=$(create_ns slowboot 256 ',"boot_timeout_ms":1')
bt_id=$(jget 'j["error"].get("vm_id","")' < "$TMP/body")
check "boot timeout: 504 BOOT_TIMEOUT with diagnostics" test "$(status)" = 504 -a \
	"$(jget 'j["error"]["code"]' < "$TMP/body")" = BOOT_TIMEOUT
check "boot timeout leaves no rundir" test ! -e "$SILO_RUNTIME_DIR/sandboxes/$bt_id"
check "boot timeout message carries the provider's diagnostics" grep -q 'namespace' <(jget 'j["error"]["message"]' < "$TMP/body")
check "boot timeout is recorded as an error with its reason" test \
	"$(api GET "/v1/sandboxes/$bt_id" | jget 'j["state"] + ":" + j.get("reason","")[:12]')" = "error:BOOT_TIMEOUT"

# -- lifetime: the monitor terminates a sandbox after timeout_s
L=$(create_ns short-lived 256 ',"timeout_s":1')
for _ in $(seq 1 80); do [ "$(api GET "/v1/sandboxes/$L" | jget 'j["state"]')" = terminated ] && break; sleep 0.1; done
check "timeout_s: terminated by the monitor after its lifetime" test "$(api GET "/v1/sandboxes/$L" | jget 'j["state"]')" = terminated
check "timeout_s: nothing left of it" test ! -e "$SILO_RUNTIME_DIR/sandboxes/$L"
check "timeout_s: the history says why it stopped" grep -q 'running -> stopping  lifetime of 1 s expired' <("$SILO" logs "$L")

# -- client disconnect mid-stream does not leak
threads_before=$(ls /proc/$DPID/task | wc -l)
curl -s --max-time 1 --unix-socket "$SOCK" -H 'Content-Type: application/json' \
	-d '{"argv":["sleep","30"]}' "http://silod/v1/sandboxes/$A/exec" > /dev/null
killed='"command":"sleep 30".*"signal":9'
for _ in $(seq 1 60); do grep -q "$killed" "$SILO_STATE_DIR/audit.jsonl" && break; sleep 0.1; done
check "disconnected exec is killed (SIGKILL) and audited" grep -q "$killed" "$SILO_STATE_DIR/audit.jsonl"
sleep 0.3
threads_after=$(ls /proc/$DPID/task | wc -l)
check "no thread left behind by the disconnect ($threads_before -> $threads_after)" test "$threads_after" -le "$threads_before"

# -- metrics
m=$(curl -s --unix-socket "$SOCK" http://silod/metrics)
check "metrics: spawns, active, per-sandbox lines" python3 -c '
import sys,re; m=sys.argv[1]; a=sys.argv[2]
v=lambda n: float(re.search(r"^"+n+r" (\S+)$", m, re.M).group(1))
assert v("silo_spawns_total")>=3 and v("silo_sandboxes_active")==2 and v("silo_errors_total")>=4
assert v("silo_allocated_memory_bytes")==512*1024*1024
assert re.search(r"^silo_sandbox_memory_bytes\{sandbox=\""+a+r"\",provider=\"namespace\"\} [1-9]", m, re.M)
assert re.search(r"^silo_sandbox_channel_rx_bytes_total\{sandbox=\""+a+r"\".*\} [1-9]", m, re.M)' "$m" "$A"

# -- independence: a long exec in A does not hold up B; deleting a busy sandbox kills its exec
exec_to "$A" '{"argv":["sleep","5"]}' "$TMP/long" &
LONG=$!
sleep 0.5
t0=$(date +%s%N)
r=$(exec_json "$B" '{"argv":["echo","b"]}' | ndjson_out)
t1=$(date +%s%N)
check "exec in B is not held up by a long exec in A ($(( (t1 - t0) / 1000000 )) ms)" test "$r" = "b||0" -a $(( (t1 - t0) / 1000000 )) -lt 2000
X=$(create_ns busy-x)
exec_to "$X" '{"argv":["sleep","30"]}' "$TMP/busy" &
BUSY=$!
sleep 0.5
delete_timed "$X" 500
check "deleting a sandbox with a running exec is prompt ($MS ms)" test "$(status)" = 200 -a "$MS" -lt 5000
wait "$BUSY"
check "the busy exec ended with a kill, not silently" grep -qE '"signal":9|"error"' "$TMP/busy"
wait "$LONG"
check "the long exec in A completed normally" test "$(ndjson_out < "$TMP/long")" = "||0"

# -- delete
api DELETE "/v1/sandboxes/$B" > /dev/null
check "delete: 200 and terminated" test "$(status)" = 200 -a "$(jget 'j["state"]' < "$TMP/body")" = terminated
check "delete removes the rundir" test ! -e "$SILO_RUNTIME_DIR/sandboxes/$B"
api DELETE "/v1/sandboxes/$B" > /dev/null
check "second delete: 404" test "$(status)" = 404
"$SILO" rm "$A" > /dev/null
check "silo rm terminates" test "$(api GET "/v1/sandboxes/$A" | jget 'j["state"]')" = terminated

# -- events seen
sleep 0.3
kill "$EVPID" 2>/dev/null; wait "$EVPID" 2>/dev/null
check "events: spawned, ready, state-change with previous/new state and reason, terminated" python3 -c '
import json,sys
ev=[json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
a=sys.argv[2]; t=lambda k:[e for e in ev if e["type"]==k and e.get("sandbox_id")==a]
assert t("spawned") and t("ready") and t("terminated"), ev
sc=t("state-change")
assert any(e["previous_state"]=="provisioning" and e["state"]=="running" for e in sc), sc
assert any(e["state"]=="terminated" and e.get("reason") for e in sc), sc
assert [e for e in ev if e["type"]=="error"], "boot timeout must raise an error event"' "$TMP/events" "$A"

# -- audit
check "audit log verifies" "$SILO" audit verify "$SILO_STATE_DIR/audit.jsonl"
cp "$SILO_STATE_DIR/audit.jsonl" "$TMP/audit.jsonl"; cp "$SILO_STATE_DIR/audit.jsonl.head" "$TMP/audit.jsonl.head"
sed -i '3s/"actor":"[^"]*"/"actor":"mallory"/' "$TMP/audit.jsonl"
v=$("$SILO" audit verify --json "$TMP/audit.jsonl"); rc=$?
check "tampered audit log: reports line 4" test $rc = 1 -a "$(echo "$v" | jget 'j["bad_line"]')" = 4

# -- `silo run` goes through the daemon when one answers
out=$("$SILO" run --provider namespace -- sh -c 'echo via-daemon; exit 4'); rc=$?
check "silo run through silod: output and exit status" test "$out" = via-daemon -a $rc = 4
check "silo run through silod: recorded and terminated by silod" test \
	"$(api GET '/v1/sandboxes?state=terminated&name=run' | jget 'len(j["sandboxes"])')" -ge 1

# -- shutdown
stop_daemon
check_clean_exit "silod exits 0 on SIGTERM with no sanitizer report"
check "SIGTERM removes the socket" test ! -e "$SOCK"

# -- health-warning when errors exceed the threshold within the window
start_daemon --error-threshold 2 --error-window-ms 10000 || notok "silod restarts"
check "registry keeps history across restarts" test "$(api GET "/v1/sandboxes/$A" | jget 'j["state"]')" = terminated
curl -s --max-time 10 --unix-socket "$SOCK" "http://silod/v1/events?types=health-warning&limit=1" > "$TMP/hw" &
HWPID=$!
sleep 0.3
for i in 1 2 3; do api GET "/v1/sandboxes/sb-nope$i" > /dev/null; done
wait "$HWPID"
check "health-warning event after 3 errors > threshold 2" grep -q '"type":"health-warning"' "$TMP/hw"
stop_daemon
check_clean_exit "second silod exits cleanly too"
exit $((FAILED > 0))
