#!/usr/bin/env bash
# Host memory of N live qemu sandboxes restored from one template against N
# booted cold, in one session of a real silod (docs/benchmarks.md "Issue 20
# goal 2"): a first create saves the template; then N creates (restored) stay
# live together, RSS and PSS of each jailed QEMU are read from
# /proc/PID/smaps_rollup, they are deleted, and the same for N creates with
# ?cold=1. Prints one JSON document:
#   {"n": N, "template": {...}, "cold": {...}}   (ready ms p50/p95, rss/pss MiB mean)
#
#   bench/template_memory.sh BUILD [N]      (root, QEMU, scripts/prepare-images.sh BUILD)
set -euo pipefail
B=${1:?usage: template_memory.sh BUILD [N]}
N=${2:-4}
T=$(mktemp -d /tmp/silo-tplmem-XXXXXX)
export SILO_STATE_DIR=$T/state SILO_RUNTIME_DIR=$T/run
mkdir -p "$SILO_STATE_DIR" "$SILO_RUNTIME_DIR"
"$B/daemon/silod" --max-sandboxes $((N + 2)) --capacity-memory-mb $((N * 512 + 1024)) > "$T/silod.log" 2>&1 &
D=$!
trap 'kill -TERM $D 2>/dev/null; wait $D 2>/dev/null; rm -rf "$T"' EXIT
for _ in $(seq 100); do [ -S "$SILO_RUNTIME_DIR/silod.sock" ] && break; sleep 0.1; done
api() { curl -s --unix-socket "$SILO_RUNTIME_DIR/silod.sock" -X "$1" "http://silod$2" "${@:3}"; }
spec='{"provider":"qemu","image":"base","vcpus":1,"memory_mb":256}'
create() { api POST "/v1/sandboxes$1" -H 'Content-Type: application/json' -d "$spec"; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
qemu_pid() { # the jailed QEMU under a sandbox's pid: the first process down the tree with a uid != 0
	local p=$1
	for _ in 1 2 3; do
		[ "$(awk '/^Uid:/{print $2}' "/proc/$p/status")" != 0 ] && break
		p=$(awk '{print $1}' "/proc/$p/task/$p/children")
	done
	echo "$p"
}
first=$(create "" | field '["id"]')
api DELETE "/v1/sandboxes/$first?grace_ms=0" > /dev/null
out=$T/rows
for mode in template cold; do
	q=; [ $mode = cold ] && q='?cold=1'
	ids=
	for _ in $(seq "$N"); do
		r=$(create "$q")
		[ "$(echo "$r" | field '["start"]')" = $mode ] || { echo "template_memory.sh: wanted a $mode start: $r" >&2; exit 1; }
		ids+=" $(echo "$r" | field '["id"]')"
		echo "$mode ready $(echo "$r" | field '["ready_ms"]')" >> "$out"
	done
	sleep 2   # let the guests settle
	for id in $ids; do
		p=$(qemu_pid "$(api GET "/v1/sandboxes/$id" | field '["pid"]')")
		awk -v m=$mode '/^(Rss|Pss):/{print m, $1, $2}' "/proc/$p/smaps_rollup" >> "$out"
	done
	for id in $ids; do api DELETE "/v1/sandboxes/$id?grace_ms=0" > /dev/null; done
done
python3 - "$out" "$N" <<'EOF'
import json, sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
def pct(v, p):
    v = sorted(v); return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
doc = {"n": int(sys.argv[2])}
for m in ("template", "cold"):
    ready = [float(r[2]) for r in rows if r[0] == m and r[1] == "ready"]
    kib = lambda k: [int(r[2]) for r in rows if r[0] == m and r[1] == k]
    doc[m] = {"ready_p50_ms": pct(ready, 50), "ready_p95_ms": pct(ready, 95),
              "rss_mib_mean": round(statistics.mean(kib("Rss:")) / 1024, 1),
              "pss_mib_mean": round(statistics.mean(kib("Pss:")) / 1024, 1)}
print(json.dumps(doc))
EOF
