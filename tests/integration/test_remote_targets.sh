#!/usr/bin/env bash
# Remote targets (issue 19, docs/remote.md): a hub silod (unix socket, this
# test's silod-lib daemon) and an edge silod on loopback TLS with its own state
# dir. Checks on add (wrong token, wrong CA), a sandbox placed on the edge and
# used through the hub (ps, exec, files, rm), the edge disappearing (kill -9):
# offline after N probes (event, metric), REMOTE_UNREACHABLE naming it, the
# durable queue (idempotency key, survives kill -9 of the hub, applied once and
# in order when the edge returns, cancel).
. "$(dirname "$0")/silod-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
command -v openssl > /dev/null || skip_all "openssl is not installed (scripts/setup-debian.sh)"
trap '[ -n "${KEEP_LOG:-}" ] && cp "$TMP/silod.log" "$KEEP_LOG"; node_cleanup edge; echo "1..$N"; cleanup' EXIT
mkca ca && mkca rogue && mkcert ca server server || { notok "openssl makes the test CA"; exit 1; }
P=$TMP/pki
TOKEN=$(newtoken)
printf '%s\n' "$TOKEN" > "$TMP/token"
printf '%s\n' "$(newtoken)" > "$TMP/wrong"
EDGE_ARGS=(--token-file "$TMP/token" --tls-cert "$P/server.pem" --tls-key "$P/server.key" --max-sandboxes 8
	--capacity-memory-mb 4096)
start_node edge --listen 127.0.0.1:0 "${EDGE_ARGS[@]}" || { notok "the edge silod starts"; exit 1; }
EPORT=$NODE_PORT
URL=https://127.0.0.1:$EPORT
ESOCK=$TMP/edge/run/silod.sock
start_daemon --target-probe-ms 200 --target-offline-after 2 || { notok "the hub silod starts"; exit 1; }
export SILO_SOCKET=$SOCK

"$SILO" target add edge "$URL" --token-file "$TMP/wrong" --ca "$P/ca.pem" > /dev/null 2> "$TMP/err"
check "target add with a wrong token: UNAUTHORIZED from the edge, not added" \
	eval "grep -q 'UNAUTHORIZED.*target edge not added' '$TMP/err' && [ \"\$('$SILO' target ls --json)\" = '[]' ]"
"$SILO" target add edge "$URL" --token-file "$TMP/token" --ca "$P/rogue.pem" > /dev/null 2> "$TMP/err"
check "target add trusting another CA: UNAUTHORIZED (TLS)" grep -q "UNAUTHORIZED.*TLS" "$TMP/err"
"$SILO" target add edge "https://127.0.0.1:1" --token-file "$TMP/token" --ca "$P/ca.pem" > /dev/null 2> "$TMP/err"
check "target add of a port nobody listens on: REMOTE_UNREACHABLE naming it" grep -q "REMOTE_UNREACHABLE.*target edge" "$TMP/err"
"$SILO" target add edge "$URL" --token-file "$TMP/token" --ca "$P/ca.pem" --json > "$TMP/add" 2> "$TMP/err"
check "target add edge: online, version and capacity recorded" python3 -c '
import json,sys; t=json.load(open(sys.argv[1]))
assert t["state"]=="online" and t["tls"] and t["info"]["version"] and t["info"]["capacity"]["memory_mb"]==4096, t' "$TMP/add"
"$SILO" target add edge "$URL" --token-file "$TMP/token" --ca "$P/ca.pem" > /dev/null 2> "$TMP/err"
check "adding the same name twice is CONFLICT" grep -q CONFLICT "$TMP/err"
check "the token is not in the target listing" eval "! '$SILO' target ls --json | grep -q '$TOKEN'"

if ! curl -s --unix-socket "$ESOCK" http://silod/v1/providers | python3 -c 'import json,sys
p=[x for x in json.load(sys.stdin)["providers"] if x["name"]=="namespace"]; sys.exit(0 if p and p[0]["available"] else 1)'; then
	ok "# SKIP sandboxes on the target: the namespace provider is unavailable here"
	exit 0
fi
id=$("$SILO" create --target edge --provider namespace --name far1 --memory 256 2> "$TMP/err")
check "silo create --target edge: a sandbox id ($id)" test -n "$id"
check "the sandbox lives on the edge (its own silod lists it)" \
	eval "curl -s --unix-socket '$ESOCK' http://silod/v1/sandboxes | grep -q '$id'"
"$SILO" ps --json > "$TMP/ps"
check "silo ps on the hub shows it with target edge, running" python3 -c '
import json,sys; s=[x for x in json.load(open(sys.argv[1])) if x["id"]==sys.argv[2]]
assert s and s[0]["target"]=="edge" and s[0]["state"]=="running", s' "$TMP/ps" "$id"
out=$("$SILO" exec "$id" -- sh -c 'echo out; echo err >&2; exit 3' 2> "$TMP/stderr"); rc=$?
check "exec through the hub: stdout, stderr and exit status relayed ($out/$(cat "$TMP/stderr")/$rc)" \
	eval "[ '$out' = out ] && grep -q err '$TMP/stderr' && [ $rc = 3 ]"
out=$("$SILO" exec far1 -- echo by-name 2>&1)
check "exec by name through the hub ($out)" test "$out" = by-name
head -c 300000 /dev/urandom > "$TMP/blob"
"$SILO" cp "$TMP/blob" "$id:/tmp/blob" 2> "$TMP/err" && "$SILO" cp "$id:/tmp/blob" "$TMP/back" 2>> "$TMP/err"
check "cp in and out through the hub: the same 300000 bytes" cmp -s "$TMP/blob" "$TMP/back"
"$SILO" target rm edge > /dev/null 2> "$TMP/err"
check "target rm while it has sandboxes is CONFLICT" grep -q "CONFLICT.*1 sandboxes" "$TMP/err"
"$SILO" rm --grace-ms 0 "$id" > /dev/null 2> "$TMP/err"
check "rm through the hub removes it on the edge" \
	eval "! curl -s --unix-socket '$ESOCK' http://silod/v1/sandboxes | grep -q '$id'"
cat > "$TMP/dep.toml" <<'EOF'
[vm]
name = "dep-spec"
provider = "namespace"

[resources]
vcpus = 1
memory_mb = 256
EOF
edge_deps() { curl -s --unix-socket "$ESOCK" http://silod/v1/deployments | jget 'sorted(d["name"] for d in j["deployments"])'; }
"$SILO" deploy fardep --target edge -f "$TMP/dep.toml" --json > "$TMP/dep" 2> "$TMP/err"
check "deploy --target edge: the deployment lives on the edge ($(head -c 200 "$TMP/err"))" \
	eval "[ \"\$(edge_deps)\" = '[\"fardep\"]' ] && [ \"\$(jget 'j[\"target\"]' < '$TMP/dep')\" = edge ]"
check "GET /v1/deployments/fardep on the hub is forwarded to the edge" \
	eval "[ \"\$(api GET /v1/deployments/fardep | jget '(j[\"name\"], j[\"target\"])')\" = \"('fardep', 'edge')\" ]"
check "target ls counts 1 deployment" eval "[ \"\$('$SILO' target ls --json | jget 'j[0][\"deployments\"]')\" = 1 ]"
"$SILO" undeploy fardep --grace 0 > /dev/null 2> "$TMP/err"
check "undeploy through the hub removes it from the edge" eval "[ \"\$(edge_deps)\" = '[]' ]"
id2=$("$SILO" create --target edge --provider namespace --name far2 --memory 256 2> "$TMP/err")

# ---- the edge disappears ----
curl -sN --unix-socket "$SOCK" http://silod/v1/events > "$TMP/events" &
EV=$!
stop_node edge KILL
for _ in $(seq 1 100); do
	"$SILO" target ls --json | grep -q '"offline"' && break
	sleep 0.1
done
check "after kill -9 of the edge: offline within a few probes" eval "'$SILO' target ls --json | grep -q '\"offline\"'"
"$SILO" exec "$id2" -- true > /dev/null 2> "$TMP/err"
check "exec on a sandbox of the offline target: REMOTE_UNREACHABLE naming it" grep -q "REMOTE_UNREACHABLE.*target edge is offline" "$TMP/err"
"$SILO" create --target edge --provider namespace --name q1 --memory 256 > /dev/null 2> "$TMP/err"
check "create --target offline without a key: REMOTE_UNREACHABLE, says how to queue" grep -q "idempotency_key" "$TMP/err"
q1=$("$SILO" create --target edge --provider namespace --name q1 --memory 256 --idempotency-key k1 --json)
q1b=$("$SILO" create --target edge --provider namespace --name q1 --memory 256 --idempotency-key k1 --json)
check "create with a key is queued; the same key again is the same entry (duplicate)" python3 -c '
import json,sys; a=json.loads(sys.argv[1]); b=json.loads(sys.argv[2])
assert a["queued"]==b["queued"] and not a["duplicate"] and b["duplicate"], (a,b)' "$q1" "$q1b"
"$SILO" create --target edge --provider namespace --name q2 --memory 256 --idempotency-key k2 > /dev/null
"$SILO" create --target edge --provider namespace --name q3 --memory 256 --idempotency-key k3 --json > "$TMP/q3"
"$SILO" target cancel edge "$(jget 'j["queued"]' < "$TMP/q3")" > /dev/null 2> "$TMP/err"
check "cancel a pending queued create" test $? = 0
"$SILO" deploy qd1 --target edge -f "$TMP/dep.toml" --idempotency-key dk1 > /dev/null 2> "$TMP/err"
check "deploy --target offline with a key is queued" test $? = 0
"$SILO" deploy qd2 --target edge -f "$TMP/dep.toml" --idempotency-key dk2 > /dev/null
"$SILO" undeploy qd2 --idempotency-key dk3 > "$TMP/out" 2> "$TMP/err"
check "undeploy of a deployment whose deploy is queued: queued behind it ($(cat "$TMP/out" "$TMP/err"))" grep -q "queued" "$TMP/out"
"$SILO" undeploy qd1 > /dev/null 2> "$TMP/err"
check "undeploy for the offline target without a key: REMOTE_UNREACHABLE, says how to queue" grep -q "REMOTE_UNREACHABLE.*idempotency_key" "$TMP/err"
check "target ls counts 5 queued" eval "[ \"\$('$SILO' target ls --json | jget 'j[0][\"queued\"]')\" = 5 ]"
kill "$EV" 2> /dev/null
check "a target event says the edge went offline" grep -q '"type":"target".*"state":"offline"' "$TMP/events"
check "silo_target_offline_total counts the outage" eval "api GET /metrics | grep -q '^silo_target_offline_total 1'"
kill -KILL "$DPID"; wait "$DPID" 2> /dev/null; DPID=
start_daemon --target-probe-ms 200 --target-offline-after 2 || notok "the hub restarts after kill -9"
check "after kill -9 of the hub the queue is intact (5 pending, 1 cancelled)" eval "[ \"\$('$SILO' target queue edge --json | jget '[x[\"state\"] for x in j]')\" = '[\"pending\", \"pending\", \"cancelled\", \"pending\", \"pending\", \"pending\"]' ]"

# ---- the edge returns on the same port with the same state dir ----
start_node edge --listen "127.0.0.1:$EPORT" "${EDGE_ARGS[@]}" || notok "the edge restarts on its port"
for _ in $(seq 1 100); do
	[ "$("$SILO" target queue edge --json | jget '[x["state"] for x in j]')" = '["done", "done", "cancelled", "done", "done", "done"]' ] && break
	sleep 0.1
done
check "when the edge returns the queue is applied in order (done, done, cancelled, done x3)" \
	test "$("$SILO" target queue edge --json | jget '[x["state"] for x in j]')" = '["done", "done", "cancelled", "done", "done", "done"]'
check "the edge has qd1 deployed once; qd2 deployed and undeployed in order ($(edge_deps))" test "$(edge_deps)" = '["qd1"]'
"$SILO" undeploy qd1 --grace 0 > /dev/null 2> "$TMP/err"
check "undeploy qd1 through the hub once the edge is back" test "$(edge_deps)" = '[]'
names=$(curl -s --unix-socket "$ESOCK" http://silod/v1/sandboxes | jget 'sorted(x["name"] for x in j["sandboxes"])')
check "the edge runs q1 and q2 once each, not q3 ($names)" test "$names" = '["far2", "q1", "q2"]'
check "target ls: online again, nothing queued" \
	eval "[ \"\$('$SILO' target ls --json | jget '(j[0][\"state\"], j[0][\"queued\"])')\" = \"('online', 0)\" ]"
for x in $(curl -s --unix-socket "$ESOCK" http://silod/v1/sandboxes | jget '" ".join(x["id"] for x in j["sandboxes"])'); do
	"$SILO" rm --grace-ms 0 "$x" > /dev/null 2>&1
done
check "every sandbox on the edge removed through the hub" \
	test "$(curl -s --unix-socket "$ESOCK" http://silod/v1/sandboxes | jget 'len(j["sandboxes"])')" = 0
"$SILO" target rm edge > /dev/null
check "target rm edge" test "$("$SILO" target ls --json)" = "[]"
stop_daemon
check_clean_exit "the hub silod exits 0 with no sanitizer report"
check "the edge's log has no sanitizer report" eval "! grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' '$TMP/edge/log'"
