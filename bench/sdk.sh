#!/usr/bin/env bash
# Exec round trip per SDK next to raw curl, in the same run, against one silod
# and one namespace sandbox (docs/sdk.md "Overhead"): N runs of `true` each,
# through (1) one curl process making N requests on a kept-alive unix socket
# connection (-w time_total per transfer), (2) libsilo-client (bench/sdk_c.c),
# (3) the Python SDK, (4) the TypeScript SDK (if built), (5) the Rust crate (if cargo is
# installed; sdk/rust/examples/bench_exec.rs against BUILD_DIR's libsilo-client). Clients run one after
# the other, interleaved in rounds so that machine noise hits all of them.
# Prints JSON: {"clients": {NAME: {"p50_ms","p95_ms","p99_ms","n"}}, ...}.
# Usage: bench/sdk.sh [BUILD_DIR] [N]   (BUILD_DIR default build-rel)
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$SRC/build-rel}" && pwd)
COUNT=${2:-200}
ROUNDS=4
export SILO_BUILD_ROOT=$BUILD
. "$SRC/tests/integration/silod-lib.sh"
start_daemon --max-sandboxes 4 > /dev/null || exit 1
namespace_available || { echo '{"skipped": "namespace provider unavailable"}'; exit 0; }
ID=$(create_ns sdk-bench 128)
[ -n "$ID" ] || { echo "# create failed"; exit 1; }
export SILO_SOCKET=$SOCK
per=$((COUNT / ROUNDS))
body='{"argv":["true"]}'
curl_args=()
for _ in $(seq 1 "$per"); do
	curl_args+=(-s -o /dev/null -w '%{time_total}\n' --unix-socket "$SOCK" -H 'Content-Type: application/json'
		-d "$body" "http://silod/v1/sandboxes/$ID/exec" --next)
done
curl_args=("${curl_args[@]:0:${#curl_args[@]}-1}")   # no --next after the last
PYB=$(mktemp "$TMP/pyXXXX")
cat > "$PYB" <<'PY'
import sys, time
sys.path.insert(0, sys.argv[1])
import silo
c = silo.Client(); sb = c.get(sys.argv[2])
for _ in range(int(sys.argv[3])):
    t = time.perf_counter(); r = sb.exec(["true"]); d = time.perf_counter() - t
    assert r.exit_code == 0
    print(int(d * 1e6))
PY
TSB=$TMP/ts.mjs
cat > "$TSB" <<JS
import * as silo from "$SRC/sdk/typescript/dist/esm/index.js";
const c = new silo.Client(); const sb = await c.get(process.argv[2]);
for (let i = 0; i < Number(process.argv[3]); i++) {
  const t = process.hrtime.bigint(); const r = await sb.exec(["true"]);
  if (r.exitCode !== 0) process.exit(1);
  console.log(Number((process.hrtime.bigint() - t) / 1000n));
}
c.close();
JS
RUSTB=
if command -v cargo > /dev/null; then
	export SILO_CLIENT_LIB_DIR=$BUILD/lib/client CARGO_TARGET_DIR=$BUILD/sdk-rust-bench
	(cd "$SRC/sdk/rust" && cargo build --offline --release --quiet --example bench_exec) > "$TMP/cargo.log" 2>&1 &&
		RUSTB=$CARGO_TARGET_DIR/release/examples/bench_exec || { echo "# cargo build failed:"; sed 's/^/# /' "$TMP/cargo.log"; }
fi
for _ in $(seq 1 $ROUNDS); do
	curl "${curl_args[@]}" | awk '{printf "%d\n", $1 * 1000000}' >> "$TMP/curl.us"
	"$BUILD/lib/client/sdk_c" "$ID" "$per" >> "$TMP/c.us" || exit 1
	python3 "$PYB" "$SRC/sdk/python" "$ID" "$per" >> "$TMP/python.us" || exit 1
	if [ -f "$SRC/sdk/typescript/dist/esm/index.js" ]; then
		node "$TSB" "$ID" "$per" >> "$TMP/typescript.us" || exit 1
	fi
	if [ -n "$RUSTB" ]; then
		LD_LIBRARY_PATH=$BUILD/lib/client "$RUSTB" "$ID" "$per" >> "$TMP/rust.us" || exit 1
	fi
done
python3 - "$TMP" "$COUNT" "$(nproc)" <<'PY'
import json, os, sys
tmp, n, cpus = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def pct(v, p):
    v = sorted(v); return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
out = {}
for name in ("curl", "c", "python", "typescript", "rust"):
    f = os.path.join(tmp, name + ".us")
    if not os.path.exists(f): continue
    v = [int(x) for x in open(f) if x.strip()]
    out["raw-curl" if name == "curl" else name] = {"n": len(v), "p50_ms": pct(v, 50) / 1000, "p95_ms": pct(v, 95) / 1000, "p99_ms": pct(v, 99) / 1000}
print(json.dumps({"benchmark": "sdk exec round trip (argv [true], namespace sandbox, unix socket)",
                  "cpus": cpus, "clients": out}, indent=1))
PY
