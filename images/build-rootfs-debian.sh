#!/bin/bash
# Build an ext4 root image with a Debian userland (debootstrap --variant=minbase).
#
#   images/build-rootfs-debian.sh --out FILE [--include pkg1,pkg2] [--suite bookworm]
#
# The debootstrap tree is cached under $CACHE/images/debootstrap/<key>/ where
# key = sha256(suite, mirror, variant, sorted package list), so the (slow) download
# happens once per package list. The mirror is the one apt uses on this machine
# (first deb.debian.org-style URI in /etc/apt/sources.list*), override with
# SILO_DEBIAN_MIRROR. The image holds no silo-agent: the agent arrives through the
# loader initramfs (images/initramfs/init-overlay.sh), so the image does not change
# when the agent does. The guest mounts it read-only under a tmpfs overlay.
set -euo pipefail
out= include=python3 suite=bookworm
while [[ $# -gt 0 ]]; do
	case "$1" in
	--out) out=$2; shift 2 ;;
	--include) include=$2; shift 2 ;;
	--suite) suite=$2; shift 2 ;;
	*) echo "build-rootfs-debian: unknown argument $1" >&2; exit 2 ;;
	esac
done
log() { printf 'build-rootfs-debian: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
[[ -n "$out" ]] || die "usage: build-rootfs-debian.sh --out FILE [--include pkgs] [--suite S]"
[[ $(id -u) -eq 0 ]] || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "debootstrap not installed (apt-get install debootstrap)"
command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 not installed (apt-get install e2fsprogs)"
[[ "$include" =~ ^[a-z0-9.+,-]*$ ]] || die "--include: package names only ([a-z0-9.+-], comma separated)"

mirror=${SILO_DEBIAN_MIRROR:-}
if [[ -z "$mirror" ]]; then
	mirror=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
		/etc/apt/sources.list.d/*.list 2>/dev/null | grep -v security |
		sed -E 's/^URIs:[[:space:]]*//; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' |
		awk '{print $1; exit}' || true)
fi
[[ -n "$mirror" ]] || mirror=http://deb.debian.org/debian
pkgs=$(tr ',' '\n' <<<"$include" | sed '/^$/d' | LC_ALL=C sort -u | paste -sd, -)
cache=${SILO_CACHE_DIR:-$HOME/.cache/silo}
key=$(printf 'suite=%s\nmirror=%s\nvariant=minbase\npackages=%s\nepoch=1\n' "$suite" "$mirror" "$pkgs" |
	sha256sum | cut -c1-16)
dbs="$cache/images/debootstrap"
tree="$dbs/$key"
mkdir -p "$dbs"
exec 9>"$dbs/.lock-$key"
flock 9
if [[ ! -f "$tree/.silo-complete" ]]; then
	log "debootstrap $suite ($pkgs) from $mirror into $tree"
	rm -rf "$tree" "$tree.tmp"
	debootstrap --variant=minbase --include="$pkgs" "$suite" "$tree.tmp" "$mirror" >&2 ||
		{ rm -rf "$tree.tmp"; die "debootstrap failed"; }
	# trim: package caches and docs are not needed in a sandbox image
	rm -rf "$tree.tmp"/var/cache/apt/archives/*.deb "$tree.tmp"/var/lib/apt/lists/* \
		"$tree.tmp"/usr/share/doc/* "$tree.tmp"/usr/share/man/* "$tree.tmp"/usr/share/locale/* \
		"$tree.tmp"/var/log/*.log
	printf 'silo\n' > "$tree.tmp/etc/hostname"
	: > "$tree.tmp/etc/resolv.conf"
	printf 'suite=%s\nmirror=%s\npackages=%s\n' "$suite" "$mirror" "$pkgs" > "$tree.tmp/.silo-complete"
	mv -T "$tree.tmp" "$tree"
else
	log "debootstrap tree cached: $tree"
fi

size_mb=$(du -sm --apparent-size "$tree" | cut -f1)
size_mb=$(( size_mb * 12 / 10 + 64 ))
tmp="$out.tmp.$$"
mkdir -p "$(dirname "$out")"
rm -f "$tmp"
log "mkfs.ext4 -d ($size_mb MiB) -> $out"
# No journal (mounted read-only), no reserved blocks, fixed UUID and hash seed so
# identical trees give byte-identical images.
E2FSPROGS_FAKE_TIME=1 mkfs.ext4 -q -F -L silo-root -O ^has_journal -m 0 \
	-U 6f1b4c6e-3f7a-4c1e-9d55-5110a9e00001 -E hash_seed=6f1b4c6e-3f7a-4c1e-9d55-5110a9e00002,root_owner=0:0 \
	-d "$tree" "$tmp" "${size_mb}M" || { rm -f "$tmp"; die "mkfs.ext4 failed"; }
mv -f "$tmp" "$out"
echo "$out"
