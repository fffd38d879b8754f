#!/usr/bin/env bash
# `silo run --provider qemu --image python -- python3 -c 'print(6*7)'` prints 42
# (embedded run: real QEMU, kernel, python image, agent), exit status is passed
# through, and nothing is left behind: no QEMU process, no sockets, no run dir.
set -uo pipefail
B=${SILO_BUILD_ROOT:?}
SILO="$B/cli/silo"
. "$(dirname "$0")/../tap.sh"
[[ "${SILO_SKIP_VM_TESTS:-}" != 1 ]] || skip_all "SILO_SKIP_VM_TESTS=1"
cache=${SILO_CACHE_DIR:-$HOME/.cache/silo}
if [[ ! -f "$cache/kernel/current/vmlinux" ]] || ! "$SILO" image ls 2>/dev/null | grep -q '^python '; then
	echo "# kernel or python image missing: run scripts/prepare-images.sh $B"
	echo "1..1"; echo "not ok 1 - kernel and python image present"; exit 1
fi
TMP=$(mktemp -d /tmp/silo-qemu-run.XXXXXX)
export SILO_RUNTIME_DIR="$TMP/run" SILO_STATE_DIR="$TMP/state"
trap 'rm -rf "$TMP"; echo "1..$N"' EXIT
# this test's VMs only (other tests' may come and go meanwhile): the jailer of each
# names its run dir, and QEMU dies with its jailer
qemus() { pgrep -f "[s]ilo-jailer .*$TMP/" | wc -l; }
before=$(qemus)

out=$(timeout 300 "$SILO" run --provider qemu --image python -- python3 -c 'print(6*7)' 2> "$TMP/err")
rc=$?
[[ $rc -ne 0 ]] && sed 's/^/# /' "$TMP/err" | tail -20
check "silo run --provider qemu --image python prints 42" test "$out" = 42
check "exit status 0" test $rc = 0
timeout 300 "$SILO" run --provider qemu --image python -- python3 -c 'import sys; sys.exit(7)' > /dev/null 2>&1
check "the guest command's exit status is passed through" test $? = 7
out=$(timeout 300 "$SILO" run --provider qemu -- sh -c 'cat /proc/1/comm; uname -r' 2> "$TMP/err2")
check "default image is base: busybox sh under the guest kernel" bash -c "grep -q '^6\.1\.' <<<'$out'"
check "no QEMU process left" test "$(qemus)" = "$before"
left=$(find "$SILO_RUNTIME_DIR" -mindepth 1 \( -type s -o -type f \) 2>/dev/null | head -5)
check "no sockets or files left in the runtime dir" test -z "$left"
[[ -n "$left" ]] && echo "# left: $left"
exit $((FAILED > 0))
