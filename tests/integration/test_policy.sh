#!/usr/bin/env bash
# Sandbox policies end to end (docs/policy.md): a real silod with --policy-file,
# real namespace sandboxes. Every rule denies with POLICY_DENIED (403) naming
# the policy and the rule, before spawn or before the operation; denials are
# counted (silo_policy_denials_total) and audited ("policy-denied").
. "$(dirname "$0")/silod-lib.sh"

cat > "$TMP/policies.toml" <<'EOF'
default = "standard"

[policies.standard]
operations = ["exec", "file_read", "file_write"]
paths = ["/tmp", "/workspace"]
max_memory_mb = 512
max_vcpus = 1
max_pids = 64

[policies.readonly]
operations = ["file_read"]

[policies.short]
operations = ["exec"]
max_lifetime_s = 2
EOF
mkdir -p "$TMP/roots/r1"
ln -s /tmp "$TMP/roots/link"
printf '\n[policies.custom]\nhost_paths = ["%s"]\n' "$TMP/roots" >> "$TMP/policies.toml"

# A bad policy file stops silod with a message naming line:col and the field.
printf '[policies.default]\nmax_vcpus = "two"\n' > "$TMP/bad.toml"
out=$("$SILOD" --policy-file "$TMP/bad.toml" 2>&1); rc=$?
check "bad policy file: silod refuses to start, naming line:col and field" \
	test $rc -ne 0 -a -n "$(echo "$out" | grep -F '2:1: policies.default.max_vcpus: expected an integer')"

start_daemon --policy-file "$TMP/policies.toml" --max-sandboxes 8 --capacity-memory-mb 8192 --error-threshold 1000 ||
	{ notok "silod starts"; echo "1..$N"; exit 1; }
namespace_available || skip_all "namespace provider unavailable here: $(api GET /v1/providers)"
trap 'echo "1..$N"; cleanup' EXIT

# -- before spawn: each limit
api POST /v1/sandboxes -H 'Content-Type: application/json' \
	-d '{"provider":"namespace","name":"big","vcpus":2,"memory_mb":256,"workdir":"/tmp"}' > /dev/null
denied "max_vcpus denies before spawn" 'policy "standard" rule max_vcpus: the spec asks for 2 vCPUs, the policy allows 1'
create_ns big 1024 > /dev/null
denied "max_memory_mb denies" 'policy "standard" rule max_memory_mb: the spec asks for 1024 MB, the policy allows 512 MB'
printf '[vm]\nname = "pids"\nprovider = "namespace"\n[resources]\nvcpus = 1\nmemory_mb = 256\n[sandbox]\npids_max = 65\n' |
	api POST /v1/sandboxes -H 'Content-Type: application/toml' --data-binary @- > /dev/null
denied "max_pids denies (hac.toml body)" 'policy "standard" rule max_pids: the spec asks for pids_max 65, the policy allows 64'
create_ns long 256 ',"timeout_s":60,"metadata":{"policy":"short"}' > /dev/null
denied "max_lifetime_s denies" 'policy "short" rule max_lifetime_s: the spec asks for a lifetime of 60 s, the policy allows 2 s'
create_ns net 256 ',"network":true' > /dev/null
denied "network denied by the policy (before the provider is asked)" 'policy "standard" rule operations: the spec enables networking'
create_ns x 256 ',"metadata":{"policy":"nope"}' > /dev/null
check "an unknown policy name is a 400 naming the known ones" python3 -c '
import json,sys; j=json.load(open(sys.argv[1]))["error"]
assert j["code"]=="INVALID_CONFIG" and "unknown policy \"nope\" (known: standard, readonly, short, custom)" in j["message"], j' "$TMP/body"
create_ns rf 128 ",\"rootfs\":\"$TMP/roots/r1\"" > /dev/null
denied "host_paths: a policy without host_paths refuses a spec naming a host directory" "policy \"standard\" rule host_paths: boot.rootfs \"$TMP/roots/r1\" is outside the allowed host paths (none)"
create_ns rf 128 ",\"rootfs\":\"$TMP/roots/r1\",\"metadata\":{\"policy\":\"custom\"}" > /dev/null
check "host_paths: a directory under them passes the policy (the provider then finds no agent in it)" \
	test "$(status)" = 400 -a -n "$(jget 'j["error"]["message"]' < "$TMP/body" | grep -F 'has no executable sbin/silo-agent')"
create_ns rf 128 ",\"rootfs\":\"$TMP/roots/link\",\"metadata\":{\"policy\":\"custom\"}" > /dev/null
denied "host_paths: a symlink under them pointing outside is refused (checked resolved)" 'rule host_paths: boot.rootfs "/tmp" is outside the allowed host paths'
create_ns rf 128 ",\"kernel\":\"/etc/shadow\",\"metadata\":{\"policy\":\"custom\"}" > /dev/null
denied "host_paths: boot.kernel outside them is refused" 'policy "custom" rule host_paths: boot.kernel "/etc/shadow" is outside'
check "no sandbox was spawned by any denied create" test "$(live_count)" = 0
check "no sandbox directory was made for them" test -z "$(ls -A "$SILO_RUNTIME_DIR/sandboxes" 2>/dev/null)"

# -- within the policy: created, limits applied, policy recorded
A=$(create_ns std-a 256 ',"workdir":"/tmp"')
check "create within the default policy" test "$(status)" = 201 -a -n "$A"
ins=$(api GET "/v1/sandboxes/$A")
check "the sandbox records its policy and gets the policy's pids limit" python3 -c '
import json,sys; j=json.loads(sys.argv[1])
assert j["metadata"]["policy"]=="standard", j["metadata"]
assert "pids_max = 64" in j["spec"], j["spec"]' "$ins"
h_pm=$(cat "/sys/fs/cgroup/pids/silo/$A/pids.max" 2>/dev/null || cat "/sys/fs/cgroup/unified/silo/$A/pids.max" 2>/dev/null)
check "the applied pids limit reaches the sandbox's cgroup (host side: ${h_pm:-not found})" test "$h_pm" = 64

# -- every operation: paths and operations
r=$(exec_json "$A" '{"argv":["pwd"],"cwd":"/tmp"}' | ndjson_out)
check "exec with cwd /tmp is allowed" test "$r" = "/tmp||0"
r=$(exec_json "$A" '{"argv":["pwd"]}' | ndjson_out)
check "exec without cwd runs in the spec's workdir (/tmp) and is checked as such" test "$r" = "/tmp||0"
exec_json "$A" '{"argv":["pwd"],"cwd":"/"}' > /dev/null
denied "exec with cwd / is checked against the paths" 'rule paths: exec with working directory "/" is outside'
r=$(exec_json "$A" '{"argv":["pwd"],"cwd":"/workspace/"}' | ndjson_out)
check "exec with cwd under an allowed path reaches the agent" test "$(status)" = 200
exec_json "$A" '{"argv":["cat","/etc/passwd"],"cwd":"/"}' > /dev/null
denied "exec with cwd outside the paths" 'policy "standard" rule paths: exec with working directory "/" is outside the allowed paths (/tmp, /workspace)'
echo hello > "$TMP/f"
api PUT "/v1/sandboxes/$A/files?path=/tmp/ok.txt" --data-binary @"$TMP/f" > /dev/null
check "file_write under /tmp is allowed" test "$(status)" = 200
check "file_read under /tmp is allowed" test "$(api GET "/v1/sandboxes/$A/files?path=/tmp/ok.txt")" = hello
api PUT "/v1/sandboxes/$A/files?path=/etc/evil" --data-binary @"$TMP/f" > /dev/null
denied "file_write outside the paths" 'policy "standard" rule paths: file_write of "/etc/evil" is outside'
api GET "/v1/sandboxes/$A/files?path=/tmp/../etc/passwd" > /dev/null
denied "file_read with .. is denied" 'rule paths: file_read path "/tmp/../etc/passwd" must be absolute and without ".."'
r=$(exec_json "$A" '{"argv":["sh","-c","test -e /etc/evil && echo present || echo absent"],"cwd":"/tmp"}' | ndjson_out)
check "the denied write never reached the guest" test "$r" = "absent||0"

R=$(create_ns ro-a 256 ',"metadata":{"policy":"readonly"}')
check "create with a named policy" test "$(status)" = 201 -a -n "$R"
exec_json "$R" '{"argv":["true"]}' > /dev/null
denied "readonly: exec denied by operations" 'policy "readonly" rule operations: exec is not allowed (allowed: file_read)'
api PUT "/v1/sandboxes/$R/files?path=/tmp/x" --data-binary @"$TMP/f" > /dev/null
denied "readonly: file_write denied by operations" 'policy "readonly" rule operations: file_write is not allowed'
api GET "/v1/sandboxes/$R/files?path=/etc/os-release" > /dev/null
check "readonly: file_read allowed (no path rule)" test "$(status)" = 200
out=$("$SILO" exec "$R" -- true 2>&1); rc=$?
check "CLI: exit 125 and the POLICY_DENIED message" test $rc = 125 -a -n "$(echo "$out" | grep -F 'POLICY_DENIED')"

# -- max_lifetime applied where the spec leaves it open
S=$(create_ns short-a 256 ',"metadata":{"policy":"short"}')
check "create with policy short" test "$(status)" = 201 -a -n "$S"
check "the lifetime was set from the policy" test "$(api GET "/v1/sandboxes/$S" | jget 'j["spec"]' | grep -c 'timeout_s = 2')" = 1
for _ in $(seq 1 100); do [ "$(api GET "/v1/sandboxes/$S" | jget 'j["state"]')" = terminated ] && break; sleep 0.1; done
check "the sandbox is terminated when the policy's lifetime expires" \
	test "$(api GET "/v1/sandboxes/$S" | jget 'j["state"]')" = terminated
check "its history says why" grep -q 'lifetime of 2 s expired' <("$SILO" logs "$S")

# -- counted and audited
m=$(curl -s --unix-socket "$SOCK" http://silod/metrics)
n=$(echo "$m" | awk '/^silo_policy_denials_total /{print $2}')
check "silo_policy_denials_total counts every denial (15, got ${n:-none})" test "${n:-0}" = 15
check "the audit log has a policy-denied record per denial, with rule and operation" python3 -c '
import json,sys
recs=[json.loads(l) for l in open(sys.argv[1])]
d=[r for r in recs if r["event"]=="policy-denied"]
assert len(d)==15, len(d)
assert any(r["details"]["operation"]=="exec" and "rule paths" in r["details"]["message"] and r["sandbox_id"]==sys.argv[2] for r in d)
assert any(r["details"]["operation"]=="create" and "rule max_vcpus" in r["details"]["message"] for r in d)' \
	"$SILO_STATE_DIR/audit.jsonl" "$A"
check "audit log still verifies" "$SILO" audit verify "$SILO_STATE_DIR/audit.jsonl"

# -- the policy survives a silod restart (recorded in the sandbox's metadata)
stop_daemon
check_clean_exit "silod exits cleanly"
start_daemon --policy-file "$TMP/policies.toml" --max-sandboxes 8 --capacity-memory-mb 8192 ||
	{ notok "silod restarts"; exit 1; }
exec_json "$R" '{"argv":["true"]}' > /dev/null
denied "after a restart the reattached sandbox keeps its policy" 'policy "readonly" rule operations: exec is not allowed'
# A policy file that no longer defines the sandbox's policy: operations are denied, not let through.
printf '[policies.default]\n' > "$TMP/other.toml"
stop_daemon
start_daemon --policy-file "$TMP/other.toml" --max-sandboxes 8 --capacity-memory-mb 8192 ||
	{ notok "silod restarts with another policy file"; exit 1; }
exec_json "$A" '{"argv":["true"]}' > /dev/null
denied "a sandbox whose policy vanished is denied" 'policy "standard" rule policy: the sandbox'"'"'s policy is not defined by the policy file any more'
api DELETE "/v1/sandboxes/$A?grace_ms=0" > /dev/null
check "it can still be deleted" test "$(status)" = 200
api DELETE "/v1/sandboxes/$R?grace_ms=0" > /dev/null
ALL=$(sandbox_ids all)
check "nothing is live any more" test "$(live_count)" = 0
check_nothing_left "no cgroup or run directory is left for any sandbox" $ALL
stop_daemon
check_clean_exit "silod exits cleanly after the restarts"
