#!/usr/bin/env bash
# The TypeScript SDK (sdk/typescript): build it with tsc (a dev dependency from
# npm, installed once into node_modules and reused), then node's test runner
# against a real silod (TAP).
set -u
TS=${SILO_SOURCE_ROOT:?}/sdk/typescript
cd "$TS" || exit 1
if [ ! -x node_modules/.bin/tsc ]; then
	npm install --no-audit --no-fund --prefer-offline > /tmp/silo-sdk-npm.$$.log 2>&1 ||
		{ echo "1..0 # SKIP npm install of the dev dependencies failed: $(tail -1 /tmp/silo-sdk-npm.$$.log)"; rm -f /tmp/silo-sdk-npm.$$.log; exit 0; }
	rm -f /tmp/silo-sdk-npm.$$.log
fi
npm run -s build || { echo "1..1"; echo "not ok 1 - tsc build"; exit 1; }
# the tests, then examples/sdk/agent.mjs (one more TAP line after node's)
exec bash "$SILO_SOURCE_ROOT/tests/sdk/run.sh" bash -c '
node --test --test-reporter=tap --test-concurrency=1 "$0/test/" | tee "$SILO_TEST_TMP/ts.tap" | grep -v "^1\.\."
rc=${PIPESTATUS[0]}
n=$(grep -cE "^(not )?ok " "$SILO_TEST_TMP/ts.tap")
n=$((n + 1))
if node "$SILO_SOURCE_ROOT/examples/sdk/agent.mjs" > "$SILO_TEST_TMP/ex.out" 2>&1 && grep -q "^result {" "$SILO_TEST_TMP/ex.out"; then
	echo "ok $n - examples/sdk/agent.mjs runs"
else echo "not ok $n - examples/sdk/agent.mjs"; sed "s/^/# /" "$SILO_TEST_TMP/ex.out"; rc=1; fi
echo "1..$n"; exit $rc' "$TS"
