#!/usr/bin/env bash
# Build with ASan/UBSan and run the whole test suite (unit, integration, fuzz).
# The last line is "N passed, N failed, N skipped", counting every TAP case.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash scripts/setup-debian.sh
BUILD=${SILO_TEST_BUILD:-build-test}
FUZZ_SECONDS=${SILO_FUZZ_SECONDS:-20}
if [ ! -f "$BUILD/build.ninja" ]; then
  CC=clang-14 meson setup "$BUILD" -Db_sanitize=address,undefined -Db_lundef=false \
     -Dfuzz=libfuzzer -Dfuzz_seconds="$FUZZ_SECONDS" >/dev/null || { echo "0 passed, 1 failed"; exit 1; }
fi
ninja -C "$BUILD" || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Guest images (kernel cached under ~/.cache/silo) are prepared once, before the suite.
if [ -x scripts/prepare-images.sh ]; then
  bash scripts/prepare-images.sh "$BUILD" || echo "warning: image preparation failed; tests that need images will fail" >&2
fi
# Sandbox cgroups the suite leaves behind are a leak whichever test made them:
# an empty sb-* cgroup that was not there before the run, still there 2 s later.
sb_cgroups() { ls -d /sys/fs/cgroup/*/silo/sb-* /sys/fs/cgroup/silo/sb-* 2>/dev/null | sort; }
empty_new_cgroups() {
  comm -13 <(printf '%s\n' "$cg_before") <(sb_cgroups) | while read -r d; do
    [ -n "$d" ] && [ -z "$(cat "$d/cgroup.procs" 2>/dev/null)" ] && echo "$d"
  done
}
cg_before=$(sb_cgroups)
meson test -C "$BUILD" --print-errorlogs --num-processes 2 "$@"
rc=$?
left=$(empty_new_cgroups); [ -n "$left" ] && { sleep 2; left=$(comm -12 <(echo "$left") <(empty_new_cgroups)); }
residue="$BUILD/meson-logs/suite-residue.json"
python3 - "$residue" "$left" <<'PY'
import json, sys
left = [l for l in sys.argv[2].splitlines() if l.strip()]
out = "1..1\n" + ("ok 1 - no sandbox cgroup left by the suite\n" if not left else
    "not ok 1 - sandbox cgroups left by the suite: " + " ".join(left[:10]) + (" ..." if len(left) > 10 else "") + "\n")
json.dump({"name": "suite-residue", "result": "OK" if not left else "FAIL", "stdout": out}, open(sys.argv[1], "w"))
PY
python3 scripts/tap-summary.py "$BUILD/meson-logs/testlog.json" "$residue"
sum=$?
[ $rc -eq 0 ] && [ $sum -eq 0 ] && exit 0
exit 1
