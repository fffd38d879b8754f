#!/usr/bin/env bash
# The short chaos run of the suite (bench/chaos.c, docs/benchmarks.md "Chaos"):
# 20 create/exec/delete cycles through a real silod (18 namespace, 2 qemu)
# with seeded faults (kill -9 of the agent, of QEMU, of silod mid-create and
# mid-delete, a full tmpfs state dir, a SIGSTOPped guest); it must end with
# "orphans 0, lost 0". First the checker is checked: a planted leak (a run dir
# and a tagged process for an id silod never created) must make it fail.
# CHAOS_SEED, CHAOS_CYCLES and CHAOS_MIX override the defaults. TAP on stdout.
set -uo pipefail
B=${SILO_BUILD_ROOT:?SILO_BUILD_ROOT not set}
CHAOS=$B/bench/chaos
SEED=${CHAOS_SEED:-20261206}
CYCLES=${CHAOS_CYCLES:-20}
MIX=${CHAOS_MIX:-namespace:9,qemu:1}
N=0 FAILED=0
ok() { N=$((N + 1)); echo "ok $N - $1"; }
notok() { N=$((N + 1)); FAILED=1; echo "not ok $N - $1"; shift; for l in "$@"; do echo "# $l"; done; }
TMP=$(mktemp -d /tmp/silo-chaos-test.XXXXXX)
trap 'rm -rf "$TMP"; echo "1..$N"' EXIT
[ -x "$CHAOS" ] || { notok "bench/chaos is built"; exit 1; }

"$CHAOS" --seed "$SEED" --cycles 2 --mix namespace:1 --plant-leak > "$TMP/plant.json" 2> "$TMP/plant.err"
rc=$?
if [ $rc = 77 ]; then echo "1..0 # SKIP $(head -c 200 "$TMP/plant.json")"; trap - EXIT; rm -rf "$TMP"; exit 0; fi
last=$(tail -1 "$TMP/plant.json")
if [ $rc = 1 ] && [[ $last =~ ^orphans\ ([0-9]+),\ lost\ ([0-9]+)$ ]] && [ "${BASH_REMATCH[1]}" -ge 2 ] && [ "${BASH_REMATCH[2]}" -ge 1 ]; then
	ok "a planted leak is found: '$last', exit 1"
else
	notok "a planted leak is found" "exit $rc, last line '$last'" "$(grep -E 'LEFT|LOST' "$TMP/plant.err" | head -5)"
fi
# the planted run keeps its temp dir for a look: remove it (ours only)
for d in $(sed -n 's/^chaos: kept \(\/tmp\/silo-chaos-[A-Za-z0-9]*\) .*/\1/p' "$TMP/plant.err"); do rm -rf "$d"; done

t0=$(date +%s)
"$CHAOS" --seed "$SEED" --cycles "$CYCLES" --mix "$MIX" --time-cap 240 > "$TMP/run.json" 2> "$TMP/run.err"
rc=$?
last=$(tail -1 "$TMP/run.json")
echo "# seed $SEED, $CYCLES cycles, mix $MIX: $(($(date +%s) - t0)) s"
python3 -c 'import json,sys
t=open(sys.argv[1]).read(); j=json.loads(t[:t.rindex("}")+1])
print("# faults:", json.dumps(j["faults"], separators=(",",":")))
print("# silod:", json.dumps(j["silod"], separators=(",",":")), "audit:", json.dumps(j["audit"]))' "$TMP/run.json" 2>/dev/null
if [ $rc = 0 ] && [ "$last" = "orphans 0, lost 0" ]; then
	ok "chaos --cycles $CYCLES: $last"
else
	notok "chaos --cycles $CYCLES: orphans 0, lost 0" "exit $rc, last line '$last'" \
		"$(grep -E 'LEFT|LOST|audit|silod exited|kept' "$TMP/run.err" | head -20)"
fi
exit $FAILED
