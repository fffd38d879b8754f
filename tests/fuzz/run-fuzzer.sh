#!/usr/bin/env bash
# Run one fuzz target for a bounded time and report it as one TAP case.
# usage: run-fuzzer.sh BINARY NAME SECONDS ENGINE
set -u
bin=$1 name=$2 secs=$3 engine=$4
corpus_src="${SILO_SOURCE_ROOT}/tests/fuzz/corpus/${name}"
work=$(mktemp -d /tmp/silo-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
[ -d "$corpus_src" ] && cp -r "$corpus_src"/. "$work/corpus/" 2>/dev/null
echo "1..1"
if [ "$engine" = libfuzzer ]; then
  "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
         -artifact_prefix="$work/" "$work/corpus" >"$work/log" 2>&1
else
  "$bin" --seconds="$secs" "$work/corpus" >"$work/log" 2>&1
fi
rc=$?
grep -E '^(#[0-9]+ +DONE|Done|driver:)' "$work/log" | tail -n 2 | sed 's/^/# /'
if [ $rc -eq 0 ]; then
  echo "ok 1 - fuzz $name for ${secs}s ($engine)"
else
  tail -n 40 "$work/log" | sed 's/^/# /'
  for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-*; do
    [ -e "$a" ] && { mkdir -p "${SILO_BUILD_ROOT:-/tmp}/fuzz-artifacts"; cp "$a" "${SILO_BUILD_ROOT:-/tmp}/fuzz-artifacts/"; echo "# artifact kept: ${SILO_BUILD_ROOT:-/tmp}/fuzz-artifacts/$(basename "$a")"; }
  done
  echo "not ok 1 - fuzz $name ($engine) exit $rc"
fi
