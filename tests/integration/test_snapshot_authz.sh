#!/usr/bin/env bash
# Snapshots under silod's authorization (docs/snapshots.md, docs/policy.md):
# scoped tokens get POLICY_DENIED on every snapshot, fork, pause and store
# route (audited); restores and forks pass the creation policy, so a policy
# tightened after the snapshot refuses them.
. "$(dirname "$0")/silod-lib.sh"

PORT=$((20000 + RANDOM % 20000))

TF=$TMP/tokens.toml
CI=$("$SILO" token create --file "$TF" --name ci --operations create,exec,delete,inspect,list)
printf '[policies.default]\n' > "$TMP/policies.toml"
start_daemon --max-sandboxes 8 --capacity-memory-mb 8192 --error-threshold 1000 --listen "127.0.0.1:$PORT" \
	--tokens-file "$TF" --policy-file "$TMP/policies.toml" || { notok "silod starts"; echo "1..$N"; exit 1; }
namespace_available || skip_all "namespace provider unavailable here"
trap 'echo "1..$N"; cleanup' EXIT

A=$(create_ns big 256)
check "a 256 MB sandbox over the unix socket" test -n "$A"
for r in "POST /v1/sandboxes/$A/snapshot" "POST /v1/sandboxes/$A/fork" "POST /v1/sandboxes/$A/pause" \
	"GET /v1/snapshots" "POST /v1/snapshots/gc"; do
	set -- $r
	tcp "$CI" "$1" "$2" > /dev/null
	denied "scoped token: $r is 403" "need a full-access token"
done
check "denials are audited" test "$(grep -c '"event":"policy-denied"' "$SILO_STATE_DIR/audit.jsonl")" -ge 5
S=$("$SILO" snapshot "$A")
check "the unix socket (full access) snapshots" test -n "$S"
tcp "$CI" POST "/v1/snapshots/$S/restore" > /dev/null
denied "scoped token: restore is 403" "need a full-access token"

# tighten the policy: the snapshot's 256 MB spec no longer passes
stop_daemon
printf '[policies.default]\nmax_memory_mb = 128\n' > "$TMP/policies.toml"
start_daemon --max-sandboxes 8 --capacity-memory-mb 8192 --error-threshold 1000 \
	--policy-file "$TMP/policies.toml" || { notok "silod restarts"; exit 1; }
api POST "/v1/snapshots/$S/restore" > /dev/null
denied "restore under a tighter policy is 403" "max_memory_mb"
api POST "/v1/sandboxes/$A/fork" -d '{"n":2}' > /dev/null
denied "fork under a tighter policy is 403" "max_memory_mb"
check "nothing was created" test "$(live_count)" = 1
api DELETE "/v1/sandboxes/$A?grace_ms=0" > /dev/null
"$SILO" snapshot rm "$S" > /dev/null
stop_daemon
check_clean_exit "silod exits cleanly"
check "no run directories left" test -z "$(ls -A "$SILO_RUNTIME_DIR/sandboxes" 2>/dev/null)"
