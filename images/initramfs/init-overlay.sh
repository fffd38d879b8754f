#!/bin/busybox sh
# Silo guest early init for disk-image roots (the "python" image and any ext4 image).
#
# Runs as PID 1 from the loader initramfs. Kernel command line:
#   silo.root=/dev/vdX   block device holding the read-only root image (ext4)
#   silo.rootwait=N      seconds to wait for the device (default 10)
#   silo.upper_size=S    tmpfs size for the writable layer (default 50% of RAM)
# It mounts the image read-only, stacks an overlay with a tmpfs upper layer on it,
# copies silo-agent into the overlay and switch_roots to the agent, which then
# runs as PID 1 (PID-1 mode mounts /proc, /sys, /tmp itself; /dev is the devtmpfs
# moved over from here).
# Without silo.root it execs the agent directly from the initramfs.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
bb=/bin/busybox
fail() {
	echo "silo-init: $*" >/dev/console
	echo "silo-init: rebooting (the host sees the VM exit)" >/dev/console
	$bb reboot -f
	exit 1
}
$bb mount -t devtmpfs devtmpfs /dev || fail "mount devtmpfs"
$bb mount -t proc proc /proc || fail "mount proc"
root= wait=10 upper_size=50%
for a in $($bb cat /proc/cmdline); do
	case "$a" in
	silo.root=*) root=${a#silo.root=} ;;
	silo.rootwait=*) wait=${a#silo.rootwait=} ;;
	silo.upper_size=*) upper_size=${a#silo.upper_size=} ;;
	esac
done
if [ -z "$root" ]; then
	$bb umount /proc
	$bb umount /dev
	exec /sbin/silo-agent
fi
case "$root" in /dev/vd[a-z]) ;; *) fail "silo.root=$root: expected /dev/vd[a-z]" ;; esac
case "$wait" in ''|*[!0-9]*) wait=10 ;; esac
i=0
while [ ! -b "$root" ]; do
	i=$((i + 1))
	[ $i -gt $((wait * 20)) ] && fail "root device $root did not appear within ${wait}s"
	$bb usleep 50000
done
$bb mkdir -p /lower /rw /newroot
$bb mount -t ext4 -o ro,noload "$root" /lower || fail "mount $root (ext4, read-only)"
$bb mount -t tmpfs -o "mode=0755,size=$upper_size" tmpfs /rw || fail "mount tmpfs upper"
$bb mkdir -p /rw/upper /rw/work
$bb mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot ||
	fail "mount overlay"
# The agent travels in the initramfs, so the disk image does not depend on its version.
$bb mkdir -p /newroot/usr/local/sbin /newroot/.silo/lower /newroot/.silo/rw /newroot/dev
$bb cp /sbin/silo-agent /newroot/usr/local/sbin/silo-agent || fail "install agent"
$bb chmod 0755 /newroot/usr/local/sbin/silo-agent
# Keep the layers reachable (read-only lower, tmpfs upper) under /.silo (the agent
# mounts a fresh tmpfs on /run, so not there).
$bb mount --move /lower /newroot/.silo/lower
$bb mount --move /rw /newroot/.silo/rw
# devtmpfs moves along: the image's static /dev (debootstrap device nodes) lacks
# the virtio-serial port the agent needs.
$bb mount --move /dev /newroot/dev || fail "move /dev"
$bb umount /proc
exec $bb switch_root /newroot /usr/local/sbin/silo-agent
