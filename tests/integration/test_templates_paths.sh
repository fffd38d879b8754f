#!/usr/bin/env bash
# Templates on the paths that do not call POST /v1/sandboxes themselves
# (docs/snapshots.md "Templates"), with a real silod and real QEMU TCG guests:
# - a warm pool of a qemu spec (no image named): its first sandbox boots cold and
#   saves the template, every later fill (the second, and the refill after a take)
#   is restored from it; one template for the pool's shape, not one per fill;
# - `image` unset (the pool's spec) and image = "base" (a create through the API,
#   and one through the Python SDK) are one template: restored from the pool's;
# - E2B's POST /sandboxes (silod --e2b-listen, --e2b-provider qemu): the first
#   create boots cold, the second is restored ("start": "template" in silod's view)
#   and runs a command through the envd process API;
# - `silo snapshot gc` keeps the templates of today's boot files; nothing is left.
. "$(dirname "$0")/silod-lib.sh"
[[ "${SILO_SKIP_VM_TESTS:-}" != 1 ]] || skip_all "SILO_SKIP_VM_TESTS=1"
unset SILO_TEMPLATES SILO_TEMPLATE_MAX_MB

TOKEN=tpl-paths-token-0123456789abcdef
echo "$TOKEN" > "$TMP/token"
cat > "$TMP/pool.toml" <<'TOML'
[vm]
name = "pooled"
provider = "qemu"

[resources]
vcpus = 1
memory_mb = 256
TOML
start_daemon --max-sandboxes 10 --capacity-memory-mb 8192 --error-threshold 1000 --token-file "$TMP/token" \
	--warm-pool "$TMP/pool.toml:2" --e2b-listen 127.0.0.1:0 --e2b-provider qemu ||
	{ notok "silod starts with a qemu warm pool and --e2b-listen"; echo "1..$N"; exit 1; }
trap 'echo "1..$N"; cleanup' EXIT
provider_available qemu || skip_all "qemu provider unavailable here"
"$SILO" image ls 2>/dev/null | grep -q '^base ' || skip_all "no base image: run scripts/prepare-images.sh"
sb() { api GET "/v1/sandboxes/$1"; }          # sb ID -> its JSON
start_of() { sb "$1" | jget 'j.get("start","?") + " " + j.get("template","-")'; }
templates() { api GET /v1/snapshots | jget '" ".join(sorted(s["id"] for s in j["snapshots"] if s["kind"]=="template"))'; }
pool_ready() { api GET /v1/pools | jget '" ".join(j["pools"][0]["ready_ids"])'; }
wait_pool() { # wait_pool N: until N ready (TCG boots: up to 5 min)
	for _ in $(seq 1 1500); do
		[ "$(pool_ready | wc -w)" = "$1" ] && return 0
		sleep 0.2
	done
	return 1
}

# -- the warm pool
check "the pool fills to K=2" wait_pool 2
set -- $(pool_ready)
P1=$1 P2=$2
read -r s1 t1 <<< "$(start_of "$P1")"
read -r s2 t2 <<< "$(start_of "$P2")"
echo "# pool fills: $P1 $s1 $t1, $P2 $s2 $t2"
check "the first fill boots cold, the second is restored from the template it saved" \
	test "$s1 $s2" = "cold template" -a "$t1" = "$t2" -a "${t1#snap-}" != "$t1"
TPL=$t1
check "one template for the pool's shape" test "$(templates)" = "$TPL"
TAKEN=$(api POST /v1/sandboxes -H 'Content-Type: application/toml' --data-binary @"$TMP/pool.toml" | jget 'j.get("id","")')
check "a matching create takes a pooled sandbox" test "$TAKEN" = "$P1" -o "$TAKEN" = "$P2"
check "the taken sandbox answers exec" test "$(exec_json "$TAKEN" '{"argv":["echo","pooled"]}' | ndjson_out)" = "pooled||0"
check "the pool refills to K=2" wait_pool 2
R=$(for x in $(pool_ready); do [ "$x" = "$P1" ] || [ "$x" = "$P2" ] || echo "$x"; done)
check "the refill is restored from the template" test "$(start_of "$R")" = "template $TPL"

# -- image unset (the pool) and image = "base" are one template
B=$(api POST /v1/sandboxes -H 'Content-Type: application/json' \
	-d '{"provider":"qemu","image":"base","name":"named-base","vcpus":1,"memory_mb":256}')
BID=$(echo "$B" | jget 'j.get("id","")')
check "image = \"base\" restores the template of the spec without an image" \
	test "$(echo "$B" | jget 'j.get("start","?") + " " + j.get("template","-")')" = "template $TPL"
check "... and answers exec" test "$(exec_json "$BID" '{"argv":["echo","named"]}' | ndjson_out)" = "named||0"
check "still one template" test "$(templates)" = "$TPL"

# -- the Python SDK (sdk/python, over the unix socket): Client.create is POST /v1/sandboxes
PY=$(PYTHONPATH=$SILO_SOURCE_ROOT/sdk/python python3 -c '
import silo
c = silo.Client()
sb = c.create(provider="qemu", image="base", name="from-python", vcpus=1, memory_mb=256, env={"WHO": "python"})
print(sb.id, sb.info.get("start", "?"), sb.info.get("template", "-"))' 2> "$TMP/py.err")
read -r PYID pys pyt <<< "$PY"
check "a create through the Python SDK is restored from the template" test "$pys $pyt" = "template $TPL"
[ -n "$PYID" ] || sed 's/^/# /' "$TMP/py.err"

# -- E2B: POST /sandboxes (the e2b SDKs' Sandbox.create)
EPORT=$(sed -n 's/.*E2B API on port \([0-9]*\).*/\1/p' "$TMP/silod.log")
e2b_create() {
	curl -s -X POST -H "X-API-KEY: $TOKEN" -H 'Content-Type: application/json' \
		-d '{"templateID":"base","timeout":300,"envVars":{"WHO":"'"$1"'"}}' "http://127.0.0.1:$EPORT/sandboxes" |
		jget 'j.get("sandboxID","")'
}
E1=$(e2b_create first)
E2=$(e2b_create second)
read -r es1 et1 <<< "$(start_of "$E1")"
read -r es2 et2 <<< "$(start_of "$E2")"
echo "# E2B creates: $E1 $es1 $et1, $E2 $es2 $et2"
check "the first E2B create boots cold and saves a template" test "$es1" = cold -a "${et1#snap-}" != "$et1"
check "the second E2B create is restored from it" test "$es2 $et2" = "template $et1"
check "the restored E2B sandbox has its own env" \
	test "$(exec_json "$E2" '{"argv":["sh","-c","echo $WHO"]}' | ndjson_out)" = "second||0"
check "two templates: the pool's shape and E2B's" test "$(templates | wc -w)" = 2

# -- gc keeps current templates
"$SILO" snapshot gc > /dev/null
check "snapshot gc keeps the templates of today's boot files" test "$(templates | wc -w)" = 2
for x in "$TAKEN" "$BID" "$PYID" "$E1" "$E2"; do api DELETE "/v1/sandboxes/$x?grace_ms=0" > /dev/null; done
stop_daemon
check_clean_exit "silod exits cleanly with no sanitizer report"
check_nothing_left "no cgroup or run dir left" "$P1" "$P2" "$R" "$TAKEN" "$BID" "$PYID" "$E1" "$E2"
exit $((FAILED > 0))
