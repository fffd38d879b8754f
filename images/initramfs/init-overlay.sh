#!/bin/busybox sh
# Silo guest early init (the /init of every Silo initramfs: "base" and the loaders
# of disk images such as "python").
#
# Runs as PID 1. Kernel command line (set by the VM providers; a user's boot.cmdline
# can never set silo.* parameters, and Silo's come last, so the last one wins here):
#   silo.root=/dev/vdX     block device holding the read-only root image (ext4);
#                          without it the lower layer is this initramfs itself
#   silo.scratch=/dev/vdX  the scratch disk: an empty ext4 of exactly the sandbox's
#                          disk budget ([sandbox] disk_mb), the writable upper layer
#   silo.rootwait=N        seconds to wait for the devices (default 10)
#   silo.upper_size=S      without a scratch disk: tmpfs size of the upper layer
#                          (default 50% of RAM)
# It stacks an overlay (lower read-only, upper on the scratch disk or a tmpfs) and
# starts the agent on it as PID 1 (PID-1 mode mounts /proc, /sys, /tmp itself; /dev
# is the devtmpfs moved over from here). The layers stay reachable under /.silo.
# With neither silo.root nor silo.scratch it execs the agent from the initramfs.
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
root= scratch= wait=10 upper_size=50%
for a in $($bb cat /proc/cmdline); do
	case "$a" in
	silo.root=*) root=${a#silo.root=} ;;
	silo.scratch=*) scratch=${a#silo.scratch=} ;;
	silo.rootwait=*) wait=${a#silo.rootwait=} ;;
	silo.upper_size=*) upper_size=${a#silo.upper_size=} ;;
	esac
done
if [ -z "$root" ] && [ -z "$scratch" ]; then
	$bb umount /proc
	$bb umount /dev
	exec /sbin/silo-agent
fi
case "$wait" in ''|*[!0-9]*) wait=10 ;; esac
wait_dev() {
	case "$1" in /dev/vd[a-z]) ;; *) fail "$2=$1: expected /dev/vd[a-z]" ;; esac
	i=0
	while [ ! -b "$1" ]; do
		i=$((i + 1))
		[ $i -gt $((wait * 20)) ] && fail "$2 device $1 did not appear within ${wait}s"
		$bb usleep 50000
	done
}
[ -n "$root" ] && wait_dev "$root" silo.root
[ -n "$scratch" ] && wait_dev "$scratch" silo.scratch
$bb mkdir -p /lower /rw /newroot
if [ -n "$root" ]; then
	$bb mount -t ext4 -o ro,noload "$root" /lower || fail "mount $root (ext4, read-only)"
else
	# the initramfs is the lower layer: a read-only view of it
	$bb mount --bind / /lower && $bb mount -o remount,bind,ro /lower || fail "bind the initramfs"
fi
if [ -n "$scratch" ]; then
	# noinit_itable: the disk is a fresh sparse file, its inode tables read as zeros;
	# zeroing them would only grow the host file
	$bb mount -t ext4 -o noinit_itable,nodev "$scratch" /rw || fail "mount scratch disk $scratch (ext4)"
else
	$bb mount -t tmpfs -o "mode=0755,size=$upper_size" tmpfs /rw || fail "mount tmpfs upper"
fi
$bb mkdir -p /rw/upper /rw/work
$bb mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot ||
	fail "mount overlay"
agent=/sbin/silo-agent
if [ -n "$root" ]; then
	# The agent travels in the initramfs, so the disk image does not depend on its version.
	agent=/usr/local/sbin/silo-agent
	$bb mkdir -p /newroot/usr/local/sbin
	$bb cp /sbin/silo-agent /newroot$agent || fail "install agent"
	$bb chmod 0755 /newroot$agent
fi
$bb mkdir -p /newroot/.silo/lower /newroot/.silo/rw /newroot/dev
# Keep the layers reachable (read-only lower, the upper's filesystem) under /.silo
# (the agent mounts a fresh tmpfs on /run, so not there).
$bb mount --move /lower /newroot/.silo/lower
$bb mount --move /rw /newroot/.silo/rw
# devtmpfs moves along: the image's static /dev (debootstrap device nodes) lacks
# the virtio-serial port the agent needs.
$bb mount --move /dev /newroot/dev || fail "move /dev"
$bb umount /proc
if [ -n "$root" ]; then
	exec $bb switch_root /newroot $agent
fi
# switch_root would empty the initramfs, which is the lower layer here: move the
# overlay over / and chroot into it instead (what switch_root does, minus the delete).
cd /newroot && $bb mount --move . / || fail "move the overlay to /"
exec $bb chroot . $agent
