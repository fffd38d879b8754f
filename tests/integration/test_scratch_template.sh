#!/usr/bin/env bash
# Red-team regression (docs/security.md "Red-team pass 2"): the VM scratch disk
# template. Every qemu/kvm sandbox's writable root is the overlay's upper layer
# on its scratch disk, a copy of an "empty" ext4 template made once per size.
# The template was kept in the image cache ($SILO_CACHE_DIR/scratch/), whose
# writer is not trusted (threat model): whoever could write there put files
# into `upper/` of the template, and they appeared in the root of every VM,
# above the signed image (here /sbin/silo-agent could be replaced as well),
# although the keyring verified the image. Now templates live in the state
# directory (trusted) and the cache's copy is never used.
# Real QEMU boots from a private cache and keyring; TAP on stdout.
set -uo pipefail
. "$(dirname "$0")/signed-cache-lib.sh"
if [[ "${SILO_SKIP_VM_TESTS:-}" == 1 || ! -f "$real_cache/kernel/current/vmlinux" ||
	! -f "$real_cache/images/base/initramfs.cpio.gz" ]] || ! command -v qemu-system-x86_64 > /dev/null ||
	! command -v mkfs.ext4 > /dev/null; then
	echo "1..0 # SKIP needs QEMU, mkfs.ext4, the kernel and the base image (scripts/prepare-images.sh BUILD)"
	exit 0
fi
private_dirs silo-scratch-tpl
signed_cache "$real_cache" link
check "the signed image passes the boot check" bash -c "\"$SILO\" trust check-boot --image base > /dev/null"

# The cache writer's template for disk_mb = 64: an ext4 whose upper/ already
# holds a file of theirs, at the path the sandbox's commands will see.
mkdir -p tpl/upper/etc
echo "planted-by-the-cache-writer" > tpl/upper/etc/planted
mkdir -p cache/scratch
truncate -s 64M cache/scratch/ext4-64.img
mkfs.ext4 -q -F -O ^has_journal -d tpl cache/scratch/ext4-64.img
printf '[vm]\nname = "tpl"\nprovider = "qemu"\n[resources]\nvcpus = 1\nmemory_mb = 256\n[boot]\nimage = "base"\n[sandbox]\ndisk_mb = 64\n' > spec.toml
out=$(timeout 180 "$SILO" run --spec spec.toml -- sh -c 'cat /etc/planted 2>/dev/null || echo absent' 2>&1); rc=$?
check "the VM boots (exit 0)" test $rc = 0
[[ $rc -ne 0 ]] && echo "$out" | tail -5 | sed 's/^/# /'
check "a file planted in the cache's scratch template is not in the VM's root" \
	bash -c "grep -qx absent <<<'$out' && ! grep -q planted-by-the-cache-writer <<<'$out'"
[[ "$out" == *planted-by-the-cache-writer* ]] && echo "# the guest read the planted file: $out"
check "the template used lives in the state directory" test -f state/disk-templates/ext4-64.img
