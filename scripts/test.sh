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
meson test -C "$BUILD" --print-errorlogs --num-processes 2 "$@"
rc=$?
python3 scripts/tap-summary.py "$BUILD/meson-logs/testlog.json"
sum=$?
[ $rc -eq 0 ] && [ $sum -eq 0 ] && exit 0
exit 1
