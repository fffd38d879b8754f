#!/usr/bin/env bash
# Red-team regression (docs/security.md "Red-team pass 2"): the disk a scoped
# token may ask for. The attack: with --tokens-file and no --policy-file, a
# token asked for [sandbox] disk_mb = 1048576 and got a namespace sandbox whose
# `/` was a 1 TiB ext4 on a sparse file in the cache (df showed 1007.9G on a
# host with 74 GB free), and a qemu sandbox with a 1 TiB disk.img (whose pages
# are RAM, and whose size was added to QEMU's memory cgroup, when the run
# directory is on tmpfs): the host's disk, or memory, was the sandbox's to fill.
# Now a scoped token under the built-in policy gets at most the default disk
# (2048 MiB), and a policy's max_disk_mb bounds everybody, filling an open
# disk_mb. Through the HTTP API of a real silod; TAP on stdout.
. "$(dirname "$0")/silod-lib.sh"

TF=$TMP/tokens.toml
TOK=$("$SILO" token create --file "$TF" --name ci --operations create,exec,delete,inspect,list)
PORT=
start_tcp() {
	start_daemon --listen 127.0.0.1:0 --tokens-file "$TF" --max-sandboxes 8 --error-threshold 4000 "$@" || return 1
	PORT=$(sed -n 's/.* and 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$TMP/silod.log" | tail -1)
}
tcp() { # tcp METHOD PATH [curl args] -> body; status in $TMP/status
	local m=$1 p=$2; shift 2
	curl -s -o "$TMP/body" -w '%{http_code}' -H "Authorization: Bearer $TOK" -X "$m" "$@" "http://127.0.0.1:$PORT$p" > "$TMP/status"
	cat "$TMP/body"
}
spec() { # spec NAME PROVIDER [disk_mb]
	printf '[vm]\nname = "%s"\nprovider = "%s"\n[resources]\nvcpus = 1\nmemory_mb = 256\n' "$1" "$2"
	[ -n "${3:-}" ] && printf '[sandbox]\ndisk_mb = %s\n' "$3"
}
create() { tcp POST /v1/sandboxes -H 'Content-Type: application/toml' --data-binary "$(spec "$@")"; }
rundirs() { find "$SILO_RUNTIME_DIR/sandboxes" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
root_mb() { # root_mb ID -> size of / in the sandbox (MiB, from df -m)
	tcp POST "/v1/sandboxes/$1/exec" -H 'Content-Type: application/json' -d '{"argv":["df","-m","/"]}' |
		ndjson_out | awk 'NR==2 {print $2}'
}

start_tcp || { notok "silod starts"; echo "1..$N"; exit 1; }
trap 'echo "1..$N"; cleanup' EXIT

create huge namespace 1048576 > /dev/null
expect_error "no policy file: a scoped token asking for a 1 TiB namespace disk is refused" 403 POLICY_DENIED \
	'policy "default" rule max_disk_mb: the spec asks for disk_mb 1048576, the policy allows 2048'
create hugevm qemu 1048576 > /dev/null
expect_error "... and a 1 TiB VM scratch disk" 403 POLICY_DENIED 'rule max_disk_mb'
create big namespace 2049 > /dev/null
expect_error "... and one MiB above the default" 403 POLICY_DENIED 'rule max_disk_mb'
check "nothing was spawned, no run directory was made" test "$(live_count)" = 0 -a "$(rundirs)" = 0
if grep -q policy-denied "$SILO_STATE_DIR/audit.jsonl" 2>/dev/null; then ok "the refusals are audited"; else notok "the refusals are audited"; fi
if namespace_available; then
	id=$(create ok namespace | jget 'j.get("id","")')
	mb=$(root_mb "$id")
	check "the default disk is still granted (/ is $mb MiB, at most 2048)" test -n "$mb" -a "${mb:-99999}" -le 2048
	api DELETE "/v1/sandboxes/$id?grace_ms=0" > /dev/null
	# full access (the unix socket) keeps choosing its disk without a policy file
	id=$(api POST /v1/sandboxes -H 'Content-Type: application/toml' --data-binary "$(spec full namespace 4096)" |
		jget 'j.get("id","")')
	mb=$(exec_json "$id" '{"argv":["df","-m","/"]}' | ndjson_out | awk 'NR==2 {print $2}')
	check "full access without a policy file still gets a 4096 MiB disk (/ is $mb MiB)" \
		test -n "$mb" -a "${mb:-0}" -gt 2048
	api DELETE "/v1/sandboxes/$id?grace_ms=0" > /dev/null
else
	ok "# SKIP namespace provider unavailable: default disk not exercised"
	ok "# SKIP namespace provider unavailable: full-access disk not exercised"
fi
stop_daemon

# A policy file's max_disk_mb binds everybody and fills an open disk_mb.
cat > "$TMP/policies.toml" <<'EOF'
default = "small"
[policies.small]
max_disk_mb = 64
EOF
start_tcp --policy-file "$TMP/policies.toml" || { notok "silod starts with the policy file"; exit 1; }
create over namespace 65 > /dev/null
expect_error "max_disk_mb = 64: disk_mb 65 is refused" 403 POLICY_DENIED \
	'policy "small" rule max_disk_mb: the spec asks for disk_mb 65, the policy allows 64'
api POST /v1/sandboxes -H 'Content-Type: application/toml' --data-binary "$(spec fullover namespace 4096)" > /dev/null
expect_error "... for full access too" 403 POLICY_DENIED 'rule max_disk_mb'
if namespace_available; then
	id=$(create open namespace | jget 'j.get("id","")')
	mb=$(root_mb "$id")
	check "an open disk_mb gets the policy's 64 MiB (/ is $mb MiB)" test -n "$mb" -a "${mb:-99999}" -le 64
	tcp GET "/v1/sandboxes/$id" > /dev/null
	check "the sandbox's stored spec records disk_mb = 64" grep -q 'disk_mb = 64' "$TMP/body"
	api DELETE "/v1/sandboxes/$id?grace_ms=0" > /dev/null
else
	ok "# SKIP namespace provider unavailable"
	ok "# SKIP namespace provider unavailable"
fi
stop_daemon
check_clean_exit "silod exits cleanly"
