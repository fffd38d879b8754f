#!/usr/bin/env bash
# Red-team regression (docs/security.md "Red-team pass 2"): whoever can write the
# image cache but not the keyring (threat model: not trusted) replaces a signed
# boot file with other bytes of the same size and forges the hash cache beside
# it (`FILE.verified`, which recorded "sha256 size mtime inode ctime" of the
# file: all of it readable with stat). Before the fix the boot check believed
# the forged stamp and never hashed the file, so unsigned bytes booted under a
# keyring. Now the boot check keeps its hash cache beside the keys
# (<keyring>/state/files/), ignores anything in the cache, and re-hashes.
# TAP on stdout.
set -uo pipefail
. "$(dirname "$0")/signed-cache-lib.sh"
if [[ ! -f "$real_cache/kernel/current/vmlinux" || ! -f "$real_cache/images/base/initramfs.cpio.gz" ]]; then
	echo "1..0 # SKIP kernel or base image missing (scripts/prepare-images.sh BUILD)"
	exit 0
fi
private_dirs silo-trust-stamp

# A private cache holding copies (the attacker writes them) and a signed manifest.
signed_cache "$real_cache" copy
key=$(readlink cache/kernel/current)
out=$("$SILO" trust check-boot --image base 2>&1); rc=$?
check "the signed, untouched image passes the boot check" test $rc = 0
[[ $rc -ne 0 ]] && echo "$out" | sed 's/^/# /'
# the boot check's own hash cache lives beside the keys, out of the cache writer's reach
check "the boot check keeps no hash stamp in the image cache" test -z "$(find cache -name '*.verified')"
check "its stamps are in <keyring>/state/files" bash -c "ls keyring/state/files/*.verified > /dev/null 2>&1"

# forge FILE: same size, other bytes, and a stamp that claims the signed sum
forge() {
	local f=$1 sum
	sum=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["images"][0]
print(m["sha256"] if sys.argv[2] == "initrd" else m["kernel"]["sha256"])' cache/images/manifest.json "$2")
	python3 - "$f" <<'PY'
import os, sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2:len(b) // 2 + 32] = b"UNSIGNED-BYTES-OF-THE-ATTACKER!!"
open(p + ".new", "wb").write(b)
os.rename(p + ".new", p)
PY
	python3 - "$f" "$sum" <<'PY'
import os, sys
p, s = sys.argv[1:]
st = os.stat(p)
open(p + ".verified", "w").write("%s %d %d.%09d %d %d.%09d\n" % (s, st.st_size, st.st_mtime_ns // 10**9,
    st.st_mtime_ns % 10**9, st.st_ino, st.st_ctime_ns // 10**9, st.st_ctime_ns % 10**9))
PY
}

forge cache/images/base/initramfs.cpio.gz initrd
out=$("$SILO" trust check-boot --image base 2>&1); rc=$?
check "initramfs replaced (same size) with a forged FILE.verified beside it: boot check refuses (CHECKSUM_MISMATCH)" \
	bash -c "test $rc = 125 && grep -q 'CHECKSUM_MISMATCH' <<<'$out' && grep -q 'initramfs.cpio.gz' <<<'$out'"
[[ $rc -ne 125 ]] && echo "$out" | sed 's/^/# /'
out=$(timeout 120 "$SILO" run --provider qemu --image base -- echo booted 2>&1); rc=$?
check "silo run --provider qemu refuses it before QEMU starts" \
	bash -c "test $rc = 125 && grep -q 'CHECKSUM_MISMATCH.*initramfs' <<<'$out'"
[[ $rc -ne 125 ]] && echo "$out" | tail -3 | sed 's/^/# /'
cp "$real_cache/images/base/initramfs.cpio.gz" cache/images/base/initramfs.cpio.gz
check "the genuine initramfs put back passes again" bash -c "\"$SILO\" trust check-boot --image base > /dev/null"

forge "cache/kernel/$key/vmlinux" kernel
out=$("$SILO" trust check-boot --image base 2>&1); rc=$?
check "kernel replaced (same size) with a forged FILE.verified: boot check refuses (CHECKSUM_MISMATCH)" \
	bash -c "test $rc = 125 && grep -q 'CHECKSUM_MISMATCH' <<<'$out' && grep -q 'vmlinux' <<<'$out'"
[[ $rc -ne 125 ]] && echo "$out" | sed 's/^/# /'

