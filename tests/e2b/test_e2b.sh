#!/usr/bin/env bash
# The official `e2b` npm SDK, unmodified, against silod --e2b-listen (docs/e2b.md):
# a real silod, real SQLite, E2B sandboxes on $E2B_TEST_PROVIDER (namespace by
# default; test_e2b_qemu.sh runs the same cases on QEMU guests). The SDK (E2B_SDK_VERSION) is
# installed from the npm registry once into $SILO_CACHE_DIR/e2b-node (default
# ~/.cache/silo/e2b-node); reruns find it there and need no network.
. "$SILO_SOURCE_ROOT/tests/integration/silod-lib.sh"

E2B_SDK_VERSION=2.51.0
PROVIDER=${E2B_TEST_PROVIDER:-namespace}
command -v node > /dev/null || skip_all "node is not installed (apt-get install nodejs npm)"
node -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)' ||
	skip_all "node $(node --version) is older than 18 (the e2b SDK needs fetch)"
SDK_DIR=${SILO_CACHE_DIR:-$HOME/.cache/silo}/e2b-node
have_sdk() {
	[ "$(node -p "require('$SDK_DIR/node_modules/e2b/package.json').version" 2>/dev/null)" = "$E2B_SDK_VERSION" ]
}
if ! have_sdk; then
	command -v npm > /dev/null || skip_all "npm is not installed and $SDK_DIR has no e2b@$E2B_SDK_VERSION"
	mkdir -p "$SDK_DIR"
	[ -f "$SDK_DIR/package.json" ] || echo '{"name":"silo-e2b-tests","private":true}' > "$SDK_DIR/package.json"
	(cd "$SDK_DIR" && npm install --no-audit --no-fund --silent "e2b@$E2B_SDK_VERSION" > "$TMP/npm.log" 2>&1) ||
		skip_all "npm install e2b@$E2B_SDK_VERSION failed (registry unreachable?): $(tail -n 2 "$TMP/npm.log" | tr '\n' ' ')"
	have_sdk || skip_all "npm installed something other than e2b@$E2B_SDK_VERSION"
fi

TOKEN=e2b-test-token-0123456789abcdef
SCOPED=e2b-scoped-token-0123456789abcdef
echo "$TOKEN" > "$TMP/token"
scoped_sha=$(printf '%s' "$SCOPED" | sha256sum | cut -d' ' -f1)
cat > "$TMP/tokens.toml" <<EOF
[[tokens]]
name = "lister"
sha256 = "$scoped_sha"
operations = ["list"]
EOF
start_daemon --max-sandboxes 8 --error-threshold 4000 --token-file "$TMP/token" --tokens-file "$TMP/tokens.toml" \
	--e2b-listen 127.0.0.1:0 --e2b-provider "$PROVIDER" || { notok "silod starts with --e2b-listen"; echo "1..$N"; exit 1; }
namespace_available || skip_all "namespace provider unavailable here: $(api GET /v1/providers)"
if [ "$PROVIDER" != namespace ]; then
	api GET /v1/providers | python3 -c 'import json,sys
p=[x for x in json.load(sys.stdin)["providers"] if x["name"]==sys.argv[1]]
sys.exit(0 if p and p[0]["available"] else 1)' "$PROVIDER" ||
		skip_all "provider $PROVIDER unavailable here: $(api GET /v1/providers)"
	[ -f "${SILO_CACHE_DIR:-$HOME/.cache/silo}/images/manifest.json" ] ||
		skip_all "no images for $PROVIDER (run scripts/prepare-images.sh first)"
fi
trap 'echo "1..$N"; cleanup' EXIT
PORT=$(sed -n 's/.*E2B API on port \([0-9]*\).*/\1/p' "$TMP/silod.log")
check "silod reports the E2B port" test -n "$PORT"

NATIVE=$(create_ns native-for-e2b 256)
check "a sandbox made through silod's own API" test -n "$NATIVE"

E2B_API_URL=http://127.0.0.1:$PORT E2B_SANDBOX_URL=http://127.0.0.1:$PORT E2B_API_KEY=$TOKEN \
	E2B_SDK=$SDK_DIR/node_modules/e2b/dist/index.mjs TAP_START=$N TAP_COUNT_FILE=$TMP/count \
	SCOPED_KEY=$SCOPED NATIVE_ID=$NATIVE E2B_TEST_PROVIDER=$PROVIDER \
	timeout 360 node "$SILO_SOURCE_ROOT/tests/e2b/sdk.test.mjs"
rc=$?
if [ -f "$TMP/count" ]; then
	read -r N sdk_failed < "$TMP/count"
	FAILED=$((FAILED + sdk_failed))
fi
check "the SDK test program ran to its end (exit $rc)" test $rc = 0 -a -f "$TMP/count"

# A refused request is answered before its body is read: 512 MiB sent with a forged
# envd token stops after at most a few MiB (the 401 and a closed connection).
up=$(head -c 536870912 /dev/zero | curl -s -o "$TMP/early" -w '%{http_code} %{size_upload}' -X POST \
	-H "E2b-Sandbox-Id: $NATIVE" -H "X-Access-Token: $(printf 'f%.0s' $(seq 64))" \
	-H 'Content-Type: application/octet-stream' --data-binary @- "http://127.0.0.1:$PORT/files?path=/tmp/x")
check "a forged token's upload is refused before its body ($up)" \
	test "${up%% *}" = 401 -a "${up##* }" -lt $((64 << 20))

# Every sandbox the SDK made is gone (kill, or the test's own cleanup of extras).
left=$(api GET /v1/sandboxes | jget '[s["id"] for s in j["sandboxes"] if s["id"] != "'"$NATIVE"'"]')
check "the SDK's sandboxes were all killed" test "$left" = "[]"
check "E2B creates are audited with the E2B actor" grep -q '"actor":"e2b:token"' "$SILO_STATE_DIR/audit.jsonl"
api DELETE "/v1/sandboxes/$NATIVE?grace_ms=0" > /dev/null
stop_daemon
check_clean_exit "silod exits cleanly with no sanitizer report"
