#!/usr/bin/env bash
# Exec output streaming, two builds in one session (docs/benchmarks.md
# "Exec output streaming"): typically main before a change ("before") and the
# change ("after"). Runs BEFORE/bench/exec_stream and AFTER/bench/exec_stream
# alternately for ROUNDS rounds (same machine state for both), each against its
# own build's silod and agent, and prints one JSON document:
#   {"before": [round...], "after": [round...], "summary": {...medians...}}
#
#   bench/exec_stream.sh BEFORE_BUILD AFTER_BUILD [ROUNDS] [-- exec_stream args]
#
# A build of an older tree needs bench/exec_stream.c copied in and the two
# lines of bench/meson.build added (the source uses only calls both have).
set -euo pipefail
before=${1:?usage: exec_stream.sh BEFORE_BUILD AFTER_BUILD [ROUNDS] [-- args]}
after=${2:?usage: exec_stream.sh BEFORE_BUILD AFTER_BUILD [ROUNDS] [-- args]}
rounds=${3:-2}
shift $(( $# < 3 ? $# : 3 ))
[[ "${1:-}" == -- ]] && shift
for b in "$before" "$after"; do
	[[ -x "$b/bench/exec_stream" ]] || { echo "exec_stream.sh: $b/bench/exec_stream missing" >&2; exit 1; }
done
out=$(mktemp -d /tmp/silo-exec-stream-XXXXXX)
trap 'rm -rf "$out"' EXIT
for r in $(seq 1 "$rounds"); do
	for side in before after; do
		build=$before; [[ $side == after ]] && build=$after
		echo "== round $r: $side ($build)" >&2
		"$build/bench/exec_stream" --label "$side" --silod "$build/daemon/silod" "$@" > "$out/$side.$r.json"
	done
done
python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
d, rounds = sys.argv[1], int(sys.argv[2])
docs = {s: [json.load(open(f"{d}/{s}.{r}.json")) for r in range(1, rounds + 1)] for s in ("before", "after")}
def med(side, mode, *path):
    v = []
    for doc in docs[side]:
        x = doc.get(mode, {})
        for p in path:
            x = x.get(p, {}) if isinstance(x, dict) else {}
        if isinstance(x, (int, float)) and not isinstance(x, bool):
            v.append(x)
    return round(statistics.median(v), 3) if v else None
summary = {}
for side in ("before", "after"):
    s = {}
    for mode in ("embedded", "silod"):
        s[mode] = {
            "throughput_mb_s_p50": med(side, mode, "throughput", "p50_mb_s"),
            "throughput_complete_runs": sum(doc.get(mode, {}).get("throughput", {}).get("complete_runs", 0) for doc in docs[side]),
            "rtt_idle_p50_ms": med(side, mode, "rtt_idle", "p50_ms"),
            "rtt_idle_p95_ms": med(side, mode, "rtt_idle", "p95_ms"),
            "rtt_stalled_p50_ms": med(side, mode, "rtt_stalled", "p50_ms"),
            "rtt_stalled_p95_ms": med(side, mode, "rtt_stalled", "p95_ms"),
            "rtt_stalled_failed": sum(doc.get(mode, {}).get("rtt_stalled", {}).get("failed", 0) for doc in docs[side]),
            "stalled_stream_bytes": [doc.get(mode, {}).get("rtt_stalled", {}).get("stalled_stream_bytes") for doc in docs[side]],
        }
    summary[side] = s
print(json.dumps({"benchmark": "exec_stream", "rounds": rounds, "summary": summary, **docs}, indent=2))
PY
