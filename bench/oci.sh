#!/usr/bin/env bash
# `podman run --rm IMAGE true` with silo-oci (namespace provider) vs runc, and
# crun where it runs, in the same session (docs/benchmarks.md "OCI runtime"):
# RUNS runs per runtime, interleaved (a silo-oci run, a runc run, ...) so a
# noisy neighbour hits every runtime alike; a warm-up run each first. Prints one
# JSON document with p50/p95/p99/mean per runtime and the ratios to runc.
#
#   bench/oci.sh BUILD [RUNS]          BUILD: a (release) build dir with runtime/silo-oci
#
# Images: podman import of a busybox rootfs into a private podman storage
# (overlay), so nothing of the host's podman is touched. podman on this host
# needs --cgroup-manager=cgroupfs and ulimits (/work/shared/docs/ENVIRONMENT.md).
set -euo pipefail
build=${1:?usage: bench/oci.sh BUILD [RUNS]}
runs=${2:-50}
SO=$(realpath "$build/runtime/silo-oci")
[[ -x "$SO" ]] || { echo "oci.sh: $build/runtime/silo-oci missing" >&2; exit 1; }
T=$(mktemp -d /tmp/silo-bench-oci.XXXXXX)
PM=(podman --root "$T/storage" --runroot "$T/runroot" --storage-driver overlay --cgroup-manager=cgroupfs)
RUN=(run --rm --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 --network none)
cleanup() {
	"${PM[@]}" rm -af -t 0 > /dev/null 2>&1 || true
	"${PM[@]}" system reset -f > /dev/null 2>&1 || true
	rm -rf "$T"
}
trap cleanup EXIT
export SILO_CACHE_DIR="$T/cache" SILO_STATE_DIR="$T/state" SILO_RUNTIME_DIR="$T/run"
cat > "$T/silo-oci" <<EOF
#!/bin/sh
export SILO_CACHE_DIR="$SILO_CACHE_DIR" SILO_STATE_DIR="$SILO_STATE_DIR" SILO_RUNTIME_DIR="$SILO_RUNTIME_DIR"
exec "$SO" --root "$T/oci" "\$@"
EOF
chmod +x "$T/silo-oci"
bb=$(command -v busybox)
mkdir -p "$T/rootfs/bin"
install -m 0755 "$bb" "$T/rootfs/bin/busybox"
for a in sh true echo; do ln -s busybox "$T/rootfs/bin/$a"; done
tar -C "$T/rootfs" -cf "$T/rootfs.tar" .
"${PM[@]}" import -q "$T/rootfs.tar" localhost/bench-bb:1 > /dev/null

runtimes=("silo-oci:$T/silo-oci" "runc:$(command -v runc)")
# crun before 1.9 refuses a cgroup v1/v2 hybrid host ("cgroups in hybrid mode
# not supported") unless cgroup v2 has no controllers, a host-wide change. Then
# it runs through a wrapper that hides the v2 mount in a private mount
# namespace (crun uses v1 there, as runc does); the wrapper's own cost (an
# unshare and a sh per runtime call) is measured and reported with it.
crun_note=
if command -v crun > /dev/null; then
	CR=$(command -v crun)
	if ! "${PM[@]}" --runtime "$CR" "${RUN[@]}" localhost/bench-bb:1 true > "$T/crun.err" 2>&1 &&
		grep -q "hybrid mode" "$T/crun.err"; then
		cat > "$T/crun" <<EOF
#!/bin/sh
exec unshare -m --propagation private sh -c 'umount -l /sys/fs/cgroup/unified 2> /dev/null; exec "$CR" "\$@"' crun "\$@"
EOF
		chmod +x "$T/crun"
		CR="$T/crun"
		t0=$(date +%s%N)
		for _ in $(seq 1 20); do unshare -m --propagation private sh -c 'umount -l /sys/fs/cgroup/unified 2> /dev/null; exec true'; done
		t1=$(date +%s%N)
		crun_note="through a wrapper that hides cgroup v2 (crun $(crun --version | head -1 | cut -d' ' -f3) refuses this hybrid host); the wrapper costs $(( (t1 - t0) / 20000 )) us per runtime call, podman makes about 4 calls per run"
	fi
	if "${PM[@]}" --runtime "$CR" "${RUN[@]}" localhost/bench-bb:1 true > "$T/crun.err" 2>&1; then
		runtimes+=("crun:$CR")
	else
		crun_error=$(tr '\n' ' ' < "$T/crun.err" | cut -c1-300)
	fi
else
	crun_error="crun not installed"
fi
one() { # NAME PATH -> ms
	local t0 t1
	t0=$(date +%s%N)
	"${PM[@]}" --runtime "$2" "${RUN[@]}" localhost/bench-bb:1 true > /dev/null 2> "$T/$1.last.err" ||
		{ echo "oci.sh: $1 failed: $(cat "$T/$1.last.err")" >&2; exit 1; }
	t1=$(date +%s%N)
	echo $(( (t1 - t0) / 1000 ))
}
for r in "${runtimes[@]}"; do one "${r%%:*}" "${r#*:}" > /dev/null; done   # warm-up
for i in $(seq 1 "$runs"); do
	for r in "${runtimes[@]}"; do
		echo "$(one "${r%%:*}" "${r#*:}")" >> "$T/${r%%:*}.us"
	done
done
python3 - "$T" "$runs" "${crun_error:-}" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$crun_note" "${runtimes[@]}" <<'PY'
import json, statistics, sys
d, runs, crun_err, cpus, load, crun_note = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
names = [r.split(":", 1)[0] for r in sys.argv[7:]]
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
res = {}
for n in names:
    v = [int(x) / 1000 for x in open(f"{d}/{n}.us").read().split()]
    res[n] = {"runs": len(v), "p50_ms": round(pct(v, 50), 1), "p95_ms": round(pct(v, 95), 1),
              "p99_ms": round(pct(v, 99), 1), "mean_ms": round(statistics.mean(v), 1),
              "min_ms": round(min(v), 1), "max_ms": round(max(v), 1)}
out = {"bench": "podman run --rm IMAGE true", "runs_per_runtime": runs, "cpus": cpus,
       "loadavg_at_end": load, "runtimes": res,
       "ratio_to_runc": {n: {"p50": round(res[n]["p50_ms"] / res["runc"]["p50_ms"], 2),
                             "p95": round(res[n]["p95_ms"] / res["runc"]["p95_ms"], 2)} for n in names if n != "runc"}}
if crun_err:
    out["crun"] = "not measured: " + crun_err
elif crun_note:
    out["crun"] = crun_note
print(json.dumps(out, indent=2))
PY
