#!/usr/bin/env bash
# Scoped API tokens end to end (docs/policy.md): a real silod on TCP with
# --tokens-file, real namespace sandboxes. Every limit (operations, providers,
# sandbox ids, name prefixes, max sandboxes, policy) is exercised; a refusal
# is 403 with the stable error body {"error":{"code":"POLICY_DENIED",...}}.
. "$(dirname "$0")/silod-lib.sh"

PORT=$((20000 + RANDOM % 20000))
tcreate() { # tcreate SECRET NAME [provider] [extra json] -> id
	local prov=${3-namespace} extra=${4:-}
	local pj=""; [ -n "$prov" ] && pj="\"provider\":\"$prov\","
	tcp "$1" POST /v1/sandboxes -H 'Content-Type: application/json' \
		-d "{${pj}\"name\":\"$2\",\"vcpus\":1,\"memory_mb\":128${extra}}" | jget 'j.get("id","")'
}
texec() { tcp "$1" POST "/v1/sandboxes/$2/exec" -H 'Content-Type: application/json' -d "${3:-{\"argv\":[\"echo\",\"hi\"]\}}"; }

# 1. Sandboxes made before the tokens exist (unix socket = full access).
start_daemon --max-sandboxes 16 --capacity-memory-mb 8192 --error-threshold 1000 || { notok "silod starts"; echo "1..$N"; exit 1; }
namespace_available || skip_all "namespace provider unavailable here: $(api GET /v1/providers)"
trap 'echo "1..$N"; cleanup' EXIT
A=$(create_ns web-a 128)
B=$(create_ns ci-pre 128)
check "two sandboxes created over the unix socket" test -n "$A" -a -n "$B"
stop_daemon

# 2. Tokens, made with the CLI (the file keeps only SHA-256 digests).
TF=$TMP/tokens.toml
FULL=$("$SILO" token create --file "$TF" --name full)
CI=$("$SILO" token create --file "$TF" --name ci --operations create,exec,delete,inspect,list,events \
	--providers namespace --name-prefixes ci- --max-sandboxes 2 --policy tight)
ONE=$("$SILO" token create --file "$TF" --name one --sandbox-ids "$A")
RO=$("$SILO" token create --file "$TF" --name ro --operations inspect,list)
QEMU=$("$SILO" token create --file "$TF" --name qemu-only --providers qemu)
check "silo token create: a 0600 file without the secrets" \
	test "$(stat -c %a "$TF")" = 600 -a -z "$(grep -F -e "$FULL" -e "$CI" "$TF")" -a "$(grep -c '^\[\[tokens\]\]' "$TF")" = 5
check "the file stores SHA-256 of the secret" grep -q "sha256 = \"$(printf %s "$CI" | sha256sum | cut -d' ' -f1)\"" "$TF"
out=$("$SILO" token create --file "$TF" --name ci 2>&1); rc=$?
check "a duplicate name is refused and the file is unchanged" \
	test $rc = 125 -a "$(grep -c '^\[\[tokens\]\]' "$TF")" = 5 -a -n "$(echo "$out" | grep -F 'the name "ci" is used twice')"
"$SILO" token create --file "$TF" --name x --max-sandboxes '3
[[tokens]]' > /dev/null 2>&1; rc=$?
check "--max-sandboxes takes only a number (no TOML injection)" test $rc = 2 -a "$(grep -c '^\[\[tokens\]\]' "$TF")" = 5
"$SILO" token create --file "$TF" --name 'x"
sha256 = "00' > /dev/null 2>&1; rc=$?
check "a name with quotes/newlines is quoted, then refused as a name" test $rc = 125 -a "$(grep -c '^\[\[tokens\]\]' "$TF")" = 5
printf '[policies.default]\n\n[policies.tight]\noperations = ["exec"]\n' > "$TMP/policies.toml"

printf '[[tokens]]\nname = "bad"\nsha256 = "xyz"\n' > "$TMP/badtokens.toml"
out=$("$SILOD" --tokens-file "$TMP/badtokens.toml" 2>&1); rc=$?
check "a bad tokens file stops silod, naming line:col and field" \
	test $rc -ne 0 -a -n "$(echo "$out" | grep -F '3:1: tokens[0].sha256')"

start_daemon --max-sandboxes 16 --capacity-memory-mb 8192 --error-threshold 1000 --listen "127.0.0.1:$PORT" \
	--tokens-file "$TF" --policy-file "$TMP/policies.toml" || { notok "silod starts with tokens"; exit 1; }

# -- authentication
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v1/sandboxes")
check "no token: 401" test "$code" = 401
tcp "silo_not-a-token-0000000000" GET /v1/sandboxes > /dev/null
check "unknown token: 401 UNAUTHORIZED" test "$(status)" = 401 -a "$(jget 'j["error"]["code"]' < "$TMP/body")" = UNAUTHORIZED
tcp "$FULL" GET /v1/sandboxes > /dev/null
check "full token: list sees both" test "$(jget 'len(j["sandboxes"])' < "$TMP/body")" = 2
tcp "$FULL" GET /metrics > /dev/null
check "full token: metrics" test "$(status)" = 200

# -- operations
tcreate "$RO" ro-x > /dev/null
denied "operations: create refused" 'token "ro" rule operations: create is not allowed (allowed: inspect, list)'
texec "$RO" "$A" > /dev/null
denied "operations: exec refused" 'token "ro" rule operations: exec is not allowed'
tcp "$RO" GET "/v1/sandboxes/$A" > /dev/null
check "operations: inspect allowed" test "$(status)" = 200
tcp "$CI" GET /metrics > /dev/null
denied "operations: metrics refused" 'token "ci" rule operations: metrics is not allowed'
tcp "$CI" PUT "/v1/sandboxes/$B/files?path=/tmp/x" --data-binary x > /dev/null
denied "operations: file_write refused" 'token "ci" rule operations: file_write is not allowed'

# -- providers
tcp "$QEMU" GET "/v1/sandboxes/$A" > /dev/null
denied "providers: a namespace sandbox is out of a qemu-only token's scope" "token \"qemu-only\" rule providers: sandbox $A runs on provider \"namespace\", allowed: qemu"
tcreate "$QEMU" q1 namespace > /dev/null
denied "providers: create on another provider refused" 'token "qemu-only" rule providers: provider "namespace" is not one of qemu'
tcreate "$CI" ci-auto "" > /dev/null
denied "providers: create without naming a provider refused" 'rule providers: the spec names no provider; name one of namespace'

# -- name prefixes
texec "$CI" "$A" > /dev/null
denied "name_prefixes: exec on web-a refused" "token \"ci\" rule name_prefixes: sandbox $A (name \"web-a\") does not start with ci-"
r=$(texec "$CI" "$B" | ndjson_out)
check "name_prefixes: exec on ci-pre allowed" test "$r" = "hi||0"
tcreate "$CI" web-x > /dev/null
denied "name_prefixes: create web-x refused" 'token "ci" rule name_prefixes: the name "web-x" does not start with ci-'
tcp "$CI" GET /v1/sandboxes > /dev/null
check "list shows a scoped token only its sandboxes" test "$(jget '[s["name"] for s in j["sandboxes"]]' < "$TMP/body")" = '["ci-pre"]'

# -- policy and max_sandboxes
tcreate "$CI" ci-lax namespace ',"metadata":{"policy":"default"}' > /dev/null
denied "policy: another policy than the token's is refused" 'token "ci" rule policy: metadata.policy "default": this token creates only with policy "tight"'
C1=$(tcreate "$CI" ci-1)
check "create ci-1 with the token" test "$(status)" = 201 -a -n "$C1"
check "it records the token and gets the token's policy" python3 -c '
import json,sys; m=json.loads(sys.argv[1])["metadata"]; assert m["silo-token"]=="ci" and m["policy"]=="tight", m' "$(api GET "/v1/sandboxes/$C1")"
tcp "$CI" GET "/v1/sandboxes/$C1/files?path=/etc/os-release" > /dev/null
denied "the token's policy applies to its sandbox" 'rule operations: file_read is not allowed'
api GET "/v1/sandboxes/$C1/files?path=/etc/os-release" > /dev/null
denied "... to every client, the unix socket too" 'policy "tight" rule operations: file_read is not allowed (allowed: exec)'
C2=$(tcreate "$CI" ci-2)
check "create ci-2" test "$(status)" = 201 -a -n "$C2"
tcreate "$CI" ci-3 > /dev/null
denied "max_sandboxes: the third is refused" 'token "ci" rule max_sandboxes: 2 live sandboxes were created with this token, the maximum is 2'
tcp "$CI" DELETE "/v1/sandboxes/$C1?grace_ms=0" > /dev/null
check "delete with the token" test "$(status)" = 200
C3=$(tcreate "$CI" ci-3)
check "after a delete there is room again" test "$(status)" = 201 -a -n "$C3"
tcp "$CI" DELETE "/v1/sandboxes/$C2?grace_ms=0" > /dev/null
# One slot left, two concurrent creates: exactly one wins (the count is part of admission).
PIDS=
for n in 4 5; do
	curl -s -o "$TMP/c$n" -w '%{http_code}' -H "Authorization: Bearer $CI" -H 'Content-Type: application/json' \
		-d "{\"provider\":\"namespace\",\"name\":\"ci-$n\",\"vcpus\":1,\"memory_mb\":128}" \
		"http://127.0.0.1:$PORT/v1/sandboxes" > "$TMP/s$n" &
	PIDS="$PIDS $!"
done
wait $PIDS   # not silod
check "max_sandboxes holds under concurrent creates (one 201, one 403)" \
	test "$(printf '%s\n' "$(cat "$TMP/s4")" "$(cat "$TMP/s5")" | sort | tr '\n' ' ')" = "201 403 "
check "and the token owns exactly 2 live sandboxes" test "$(api GET '/v1/sandboxes?metadata=silo-token%3Dci' | jget 'len(j["sandboxes"])')" = 2

# -- sandbox ids
r=$(texec "$ONE" "$A" | ndjson_out)
check "sandbox_ids: exec on the listed sandbox allowed" test "$r" = "hi||0"
texec "$ONE" "$B" > /dev/null
denied "sandbox_ids: exec on another refused" "token \"one\" rule sandbox_ids: sandbox $B is not one of $A"
tcp "$ONE" DELETE "/v1/sandboxes/$B" > /dev/null
denied "sandbox_ids: delete of another refused" "rule sandbox_ids: sandbox $B is not one of $A"
tcp "$ONE" GET "/v1/sandboxes/$B/logs" > /dev/null
denied "sandbox_ids: logs of another refused" "rule sandbox_ids"
tcreate "$ONE" one-x > /dev/null
denied "sandbox_ids: create refused" 'token "one" rule sandbox_ids: the token is limited to existing sandboxes and cannot create'
texec "$ONE" web-a > /dev/null
check "sandbox_ids: the sandbox's name resolves to the listed id" test "$(status)" = 200

# -- events
tcp "$CI" GET /v1/events > /dev/null
denied "events: a scoped token must name a sandbox" 'token "ci" rule name_prefixes: the token is limited to some sandboxes'
code=$(curl -s -o /dev/null -m 1 -w '%{http_code}' -H "Authorization: Bearer $CI" "http://127.0.0.1:$PORT/v1/events?sandbox=ci-3")
check "events: a sandbox in scope (by name) streams" test "$code" = 200
tcp "$ONE" GET "/v1/events?sandbox=$B" > /dev/null
denied "events: a sandbox out of scope is refused" "rule sandbox_ids"

# -- unix socket stays full access; accounting
texec "" "$A" > /dev/null
check "an empty bearer is 401" test "$(status)" = 401
r=$(exec_json "$A" '{"argv":["echo","unix"]}' | ndjson_out)
check "the unix socket is not limited by tokens" test "$r" = "unix||0"
n=$(curl -s --unix-socket "$SOCK" http://silod/metrics | awk '/^silo_policy_denials_total /{print $2}')
check "denials are counted (20, got ${n:-none})" test "${n:-0}" = 20
check "denials are audited with the token's name as actor" python3 -c '
import json,sys
d=[json.loads(l) for l in open(sys.argv[1])]
d=[r for r in d if r["event"]=="policy-denied"]
assert len(d)==20, len(d)
assert any(r["actor"]=="token:ci" and "max_sandboxes" in r["details"]["message"] for r in d)
assert any(r["actor"]=="token:one" and r["sandbox_id"]==sys.argv[2] for r in d)' "$SILO_STATE_DIR/audit.jsonl" "$B"
ALL=$(sandbox_ids all)
for id in $(sandbox_ids); do
	api DELETE "/v1/sandboxes/$id?grace_ms=0" > /dev/null
done
check "every sandbox is deleted" test "$(live_count)" = 0
check_nothing_left "no cgroup or run directory is left for any of them" $ALL
stop_daemon
check_clean_exit "silod exits cleanly"
