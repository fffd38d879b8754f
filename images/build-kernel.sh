#!/bin/bash
# Build the Silo guest kernel from Debian's linux-source-6.1.
#
#   images/build-kernel.sh [--force]
#
# Output (stable paths, documented in docs/images.md):
#   $CACHE/kernel/<key>/vmlinux   ELF with a PVH entry note (fastest boot: qemu -kernel, silo-vmm)
#   $CACHE/kernel/<key>/bzImage   LZ4-compressed bzImage
#   $CACHE/kernel/<key>/config    the resolved .config
#   $CACHE/kernel/<key>/info.json key, source version, sizes, sha256s
#   $CACHE/kernel/current -> <key>
# where CACHE = $SILO_CACHE_DIR or ~/.cache/silo, and
#   key = sha256(config-fragment.sh || linux-source package version || KEY_EPOCH).
# If the keyed directory already exists, nothing is rebuilt (only the symlink is refreshed).
set -euo pipefail

KEY_EPOCH=1   # bump when this script changes how the kernel is built
here=$(cd "$(dirname "$0")" && pwd)
frag="$here/kernel/config-fragment.sh"
src_tar=${SILO_KERNEL_SOURCE:-/usr/src/linux-source-6.1.tar.xz}
cache=${SILO_CACHE_DIR:-$HOME/.cache/silo}
kdir="$cache/kernel"
force=0
[[ "${1:-}" == "--force" ]] && force=1

log() { printf 'build-kernel: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ -r "$src_tar" ]] || die "kernel source $src_tar not found (apt-get install linux-source-6.1)"
[[ -r "$frag" ]] || die "config fragment $frag not found"
src_ver=$(dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || basename "$src_tar")
key=$( { cat "$frag"; printf '\nsource=%s\nepoch=%s\n' "$src_ver" "$KEY_EPOCH"; } | sha256sum | cut -c1-16)
out="$kdir/$key"

mkdir -p "$kdir"
exec 9>"$kdir/.lock"
flock 9   # one builder at a time (CI, other engineers' tests)

if [[ $force -eq 0 && -f "$out/vmlinux" && -f "$out/bzImage" && -f "$out/info.json" ]]; then
	ln -sfn "$key" "$kdir/current.tmp" && mv -T "$kdir/current.tmp" "$kdir/current"
	log "up to date: $out"
	echo "$out"
	exit 0
fi

work=$(mktemp -d "$kdir/.build-$key.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
log "extracting $src_tar (source $src_ver) into $work"
tar -xJf "$src_tar" -C "$work"
tree=$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -n1)
[[ -n "$tree" ]] || die "no source tree in $src_tar"

cd "$tree"
log "configuring (tinyconfig + fragment + olddefconfig), key $key"
make -s ARCH=x86_64 tinyconfig
sh "$frag"
make -s ARCH=x86_64 olddefconfig
# the fragment must survive olddefconfig: verify the options we depend on
for opt in PVH VIRTIO_MMIO VIRTIO_CONSOLE VIRTIO_BLK EXT4_FS OVERLAY_FS DEVTMPFS UNIX98_PTYS \
           SERIAL_8250_CONSOLE BLK_DEV_INITRD RD_GZIP SLUB; do
	grep -q "^CONFIG_$opt=y" .config || die "CONFIG_$opt did not survive olddefconfig"
done
log "building with -j$(nproc) (about 3-4 minutes on 2 cores; progress every ${SILO_PROGRESS_S:-20}s)"
start=$(date +%s)
# progress: objects compiled so far (make -s is silent for minutes)
( while sleep "${SILO_PROGRESS_S:-20}"; do
	log "compiling: $(find . -name '*.o' 2>/dev/null | wc -l) objects, $(( $(date +%s) - start ))s"
  done ) &
ticker=$!
cleanup() { kill "$ticker" 2>/dev/null; rm -rf "$work"; }
make -s ARCH=x86_64 -j"$(nproc)" vmlinux bzImage
kill "$ticker" 2>/dev/null; wait "$ticker" 2>/dev/null
log "built in $(( $(date +%s) - start ))s"

stage="$kdir/.stage-$key"
rm -rf "$stage"
mkdir -p "$stage"
strip --strip-debug -o "$stage/vmlinux" vmlinux
cp arch/x86/boot/bzImage "$stage/bzImage"
cp .config "$stage/config"
vsha=$(sha256sum "$stage/vmlinux" | cut -d' ' -f1)
bsha=$(sha256sum "$stage/bzImage" | cut -d' ' -f1)
cat > "$stage/info.json" <<JSON
{
  "key": "$key",
  "source": "linux-source-6.1 $src_ver",
  "kernelrelease": "$(make -s ARCH=x86_64 kernelrelease)",
  "built": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "vmlinux": {"size": $(stat -c %s "$stage/vmlinux"), "sha256": "$vsha"},
  "bzImage": {"size": $(stat -c %s "$stage/bzImage"), "sha256": "$bsha"}
}
JSON
cd /
rm -rf "$out"
mv -T "$stage" "$out"
ln -sfn "$key" "$kdir/current.tmp" && mv -T "$kdir/current.tmp" "$kdir/current"
log "done: $out"
echo "$out"
