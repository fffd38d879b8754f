#!/usr/bin/env bash
# bench/e2b (docs/benchmarks.md "E2B SDK cycle"): start a silod of BUILD with
# --e2b-listen and the namespace provider in a private state dir, then time the
# E2B SDK's create -> commands.run('echo') -> kill cycle and the same cycle
# through silod's native API, interleaved, RUNS times each; JSON on stdout.
#   bench/e2b/run.sh BUILD [RUNS]        (a release build: meson setup build-rel --buildtype=release)
# The SDK is the one tests/e2b installs (e2b@2.51.0 in $SILO_CACHE_DIR/e2b-node).
set -euo pipefail
build=${1:?usage: bench/e2b/run.sh BUILD [RUNS]}
runs=${2:-100}
here=$(cd "$(dirname "$0")" && pwd)
sdk=${SILO_CACHE_DIR:-$HOME/.cache/silo}/e2b-node/node_modules/e2b/dist/index.mjs
[[ -f $sdk ]] || { echo "bench/e2b: $sdk missing (run the e2b-sdk test once, or npm install e2b@2.51.0 there)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/silo-bench-e2b-XXXXXX)
pid=
cleanup() { [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
export SILO_STATE_DIR=$tmp/state SILO_RUNTIME_DIR=$tmp/run
mkdir -p "$SILO_STATE_DIR" "$SILO_RUNTIME_DIR"
token=bench-e2b-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$token" > "$tmp/token"
"$build/daemon/silod" --token-file "$tmp/token" --listen 127.0.0.1:0 --e2b-listen 127.0.0.1:0 \
	--e2b-provider namespace --terminate-on-exit > "$tmp/silod.log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do grep -q "E2B API on port" "$tmp/silod.log" && grep -q "listening on" "$tmp/silod.log" && break; sleep 0.05; done
e2b_port=$(sed -n 's/.*E2B API on port \([0-9]*\).*/\1/p' "$tmp/silod.log")
api_port=$(sed -n 's/.*listening on .* and .*:\([0-9]*\)$/\1/p' "$tmp/silod.log")
[[ -n $e2b_port && -n $api_port ]] || { cat "$tmp/silod.log" >&2; exit 1; }
E2B_API_URL=http://127.0.0.1:$e2b_port E2B_SANDBOX_URL=http://127.0.0.1:$e2b_port E2B_API_KEY=$token E2B_SDK=$sdk \
	SILOD_URL=http://127.0.0.1:$api_port SILOD_TOKEN=$token RUNS=$runs node "$here/cycle.mjs"
