#!/bin/bash
# Build a Silo initramfs (cpio newc, gzip) with busybox-static and silo-agent.
#
#   images/build-initramfs.sh --agent PATH --out FILE [--mode agent|overlay]
#
# --mode agent   (image "base"): /init is silo-agent itself (PID-1 mode); busybox
#                and its applet links in /bin provide a shell userland.
# --mode overlay (loader for disk images such as "python"): /init is
#                images/initramfs/init-overlay.sh, which mounts silo.root=/dev/vdX
#                read-only under a tmpfs overlay and switch_roots to the agent.
# The archive is reproducible: fixed mtimes, owner 0:0, sorted, gzip -n.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
agent= out= mode=agent
while [[ $# -gt 0 ]]; do
	case "$1" in
	--agent) agent=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--mode) mode=$2; shift 2 ;;
	*) echo "build-initramfs: unknown argument $1" >&2; exit 2 ;;
	esac
done
die() { echo "build-initramfs: error: $*" >&2; exit 1; }
[[ -n "$agent" && -n "$out" ]] || die "usage: build-initramfs.sh --agent PATH --out FILE [--mode agent|overlay]"
[[ -x "$agent" ]] || die "agent binary $agent not found or not executable (build the tree first)"
file -b "$agent" 2>/dev/null | grep -q 'statically linked\|static-pie' || die "agent $agent is not statically linked"
bb=/bin/busybox
[[ -x /usr/bin/busybox ]] && bb=/usr/bin/busybox
file -b "$bb" | grep -q 'statically linked' || die "$bb is not busybox-static (apt-get install busybox-static)"
case "$mode" in agent|overlay) ;; *) die "--mode must be agent or overlay" ;; esac

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,root,etc,mnt}
chmod 1777 "$stage/tmp"
install -m 0755 "$bb" "$stage/bin/busybox"
# applet links (busybox --list-full gives paths like usr/bin/env)
while read -r applet; do
	[[ -z "$applet" || "$applet" == bin/busybox ]] && continue
	[[ -e "$stage/$applet" ]] && continue
	mkdir -p "$stage/$(dirname "$applet")"
	ln -s /bin/busybox "$stage/$applet"
done < <("$bb" --list-full)
install -m 0755 "$agent" "$stage/sbin/silo-agent"
if [[ "$mode" == agent ]]; then
	rm -f "$stage/init"
	ln -s sbin/silo-agent "$stage/init"
else
	install -m 0755 "$here/initramfs/init-overlay.sh" "$stage/init"
fi
echo "root:x:0:0:root:/root:/bin/sh" > "$stage/etc/passwd"
echo "root:x:0:" > "$stage/etc/group"
find "$stage" -exec touch -h -d @0 {} +
tmp="$out.tmp.$$"
mkdir -p "$(dirname "$out")"
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 --reproducible) |
	gzip -n -6 > "$tmp"
mv -f "$tmp" "$out"
echo "$out"
