#!/usr/bin/env bash
# `silo image` end to end in a private cache: build base (real busybox-static +
# silo-agent), ls/--json, idempotent rebuild, verify + corruption, rm; and
# scripts/prepare-images.sh being fast when nothing changed. TAP on stdout.
set -uo pipefail
B=${SILO_BUILD_ROOT:?}
S=${SILO_SOURCE_ROOT:?}
SILO="$B/cli/silo"
. "$(dirname "$0")/../tap.sh"
[[ "${SILO_SKIP_VM_TESTS:-}" != 1 ]] || skip_all "SILO_SKIP_VM_TESTS=1"
real_cache=${SILO_CACHE_DIR:-$HOME/.cache/silo}
if [[ ! -f "$real_cache/kernel/current/vmlinux" || ! -x "$B/agent/silo-agent" ]]; then
	echo "# guest kernel or $B/agent/silo-agent missing: run scripts/prepare-images.sh $B"
	echo "1..1"; echo "not ok 1 - kernel and agent present"; exit 1
fi
TMP=$(mktemp -d /tmp/silo-images-test.XXXXXX)
trap 'rm -rf "$TMP"; echo "1..$N"' EXIT
export SILO_CACHE_DIR="$TMP/cache" SILO_IMAGES_DIR="$S/images"
mkdir -p "$SILO_CACHE_DIR/kernel"
kkey=$(readlink -f "$real_cache/kernel/current")
# link the keyed kernel directory too, so build-kernel.sh finds its cache and never rebuilds here
ln -s "$kkey" "$SILO_CACHE_DIR/kernel/$(basename "$kkey")"
ln -s "$(basename "$kkey")" "$SILO_CACHE_DIR/kernel/current"

out=$("$SILO" image ls)
check "ls on an empty store prints only the header" test "$(echo "$out" | wc -l)" = 1
"$SILO" image build base > "$TMP/build.out" 2> "$TMP/build.err"
check "image build base succeeds" test $? = 0
f="$SILO_CACHE_DIR/images/base/initramfs.cpio.gz"
check "initramfs exists" test -s "$f"
sum=$(sha256sum "$f" | cut -d' ' -f1)
j=$("$SILO" image ls --json)
check "ls --json lists base with its real sha256, kind, size, created" python3 -c '
import json, os, sys
l = json.loads(sys.argv[1]); e = [i for i in l if i["name"] == "base"][0]
assert e["kind"] == "initramfs" and e["sha256"] == sys.argv[2], e
assert e["size"] == os.stat(sys.argv[3]).st_size and e["created"].endswith("Z"), e
assert e["kernel"]["key"] and os.path.exists(e["kernel"]["path"]), e' "$j" "$sum" "$f"
check "initramfs is a gzip'd newc cpio with /init -> silo-agent and busybox applets" bash -c "
	zcat '$f' | cpio -t --quiet 2>/dev/null > '$TMP/list' &&
	grep -qx init '$TMP/list' && grep -qx sbin/silo-agent '$TMP/list' && grep -qx bin/sh '$TMP/list'"
created=$(echo "$j" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["created"])')
t0=$(date +%s%N)
"$SILO" image build base > /dev/null 2>&1
t1=$(date +%s%N)
check "rebuild with unchanged inputs is a no-op (< 3 s)" test $(( (t1 - t0) / 1000000 )) -lt 3000
check "rebuild keeps sha256 and created" test "$("$SILO" image ls --json | python3 -c '
import json,sys; e=json.load(sys.stdin)[0]; print(e["sha256"], e["created"])')" = "$sum $created"
check "verify passes" bash -c "\"$SILO\" image verify base > /dev/null"
# corrupt one byte (same size): verify must fail with CHECKSUM_MISMATCH
printf '\x00' | dd of="$f" bs=1 seek=100 conv=notrunc status=none
touch -d '+1 sec' "$f"
err=$("$SILO" image verify base 2>&1); rc=$?
check "verify of a corrupted image fails" test $rc -ne 0
check "the error names CHECKSUM_MISMATCH" grep -q CHECKSUM_MISMATCH <<<"$err"
check "rm base" bash -c "\"$SILO\" image rm base > /dev/null"
check "rm removed the files" test ! -e "$f"
check "ls is empty again" test "$("$SILO" image ls | wc -l)" = 1
err=$("$SILO" image rm base 2>&1); rc=$?
check "rm of a missing image fails naming it" bash -c "test $rc -ne 0 && grep -q 'no image named \"base\"' <<<'$err'"
err=$("$SILO" image build nosuch 2>&1); rc=$?
check "build of an unknown image fails naming it" bash -c "test $rc -ne 0 && grep -q 'unknown image \"nosuch\"' <<<'$err'"
# prepare-images on the real cache: everything is cached, so it must be quick
unset SILO_CACHE_DIR
t0=$(date +%s)
bash "$S/scripts/prepare-images.sh" "$B" 2> "$TMP/prep.err"; rc=$?
t1=$(date +%s)
check "prepare-images.sh succeeds" test $rc = 0
check "prepare-images.sh is fast when nothing changed (< 15 s)" test $((t1 - t0)) -lt 15
exit $((FAILED > 0))
