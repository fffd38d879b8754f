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
# Applets are called by name: busybox's shell runs them in a fork (or in-process for
# mkdir and usleep) without an execve, which costs milliseconds each under TCG.
fail() {
	echo "silo-init: $*" >/dev/console
	echo "silo-init: rebooting (the host sees the VM exit)" >/dev/console
	reboot -f
	exit 1
}
mount -t devtmpfs devtmpfs /dev || fail "mount devtmpfs"
mount -t proc proc /proc || fail "mount proc"
root= scratch= wait=10 upper_size=50%
read -r cmdline < /proc/cmdline
for a in $cmdline; do
	case "$a" in
	silo.root=*) root=${a#silo.root=} ;;
	silo.scratch=*) scratch=${a#silo.scratch=} ;;
	silo.rootwait=*) wait=${a#silo.rootwait=} ;;
	silo.upper_size=*) upper_size=${a#silo.upper_size=} ;;
	esac
done
if [ -z "$root" ] && [ -z "$scratch" ]; then
	umount /proc /dev
	exec /sbin/silo-agent
fi
case "$wait" in ''|*[!0-9]*) wait=10 ;; esac
wait_dev() {
	case "$1" in /dev/vd[a-z]) ;; *) fail "$2=$1: expected /dev/vd[a-z]" ;; esac
	i=0
	while [ ! -b "$1" ]; do
		i=$((i + 1))
		[ $i -gt $((wait * 50)) ] && fail "$2 device $1 did not appear within ${wait}s"
		usleep 20000
	done
}
[ -n "$root" ] && wait_dev "$root" silo.root
[ -n "$scratch" ] && wait_dev "$scratch" silo.scratch
mkdir -p /lower /rw /newroot
if [ -n "$root" ]; then
	mount -t ext4 -o ro,noload "$root" /lower || fail "mount $root (ext4, read-only)"
else
	# the initramfs is the lower layer: a read-only view of it
	mount --bind / /lower && mount -o remount,bind,ro /lower || fail "bind the initramfs read-only"
fi
if [ -n "$scratch" ]; then
	# noinit_itable: the disk is a fresh sparse file, its inode tables read as zeros;
	# zeroing them would only grow the host file
	mount -t ext4 -o noinit_itable,nodev "$scratch" /rw || fail "mount scratch disk $scratch (ext4)"
else
	mount -t tmpfs -o "mode=0755,size=$upper_size" tmpfs /rw || fail "mount tmpfs upper"
fi
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot ||
	fail "mount overlay"
agent=/sbin/silo-agent
if [ -n "$root" ]; then
	# The agent travels in the initramfs, so the disk image does not depend on its version.
	agent=/usr/local/sbin/silo-agent
	mkdir -p /newroot/usr/local/sbin
	cp /sbin/silo-agent /newroot$agent || fail "install agent"
	chmod 0755 /newroot$agent
fi
mkdir -p /newroot/.silo/lower /newroot/.silo/rw /newroot/dev
# Keep the layers reachable (read-only lower, the upper's filesystem) under /.silo
# (the agent mounts a fresh tmpfs on /run, so not there).
mount --move /lower /newroot/.silo/lower
mount --move /rw /newroot/.silo/rw
# devtmpfs moves along: the image's static /dev (debootstrap device nodes) lacks
# the virtio-serial port the agent needs.
mount --move /dev /newroot/dev || fail "move /dev"
umount /proc
if [ -n "$root" ]; then
	exec $bb switch_root /newroot $agent
fi
# switch_root would empty the initramfs, which is the lower layer here: move the
# overlay over / and chroot into it instead (what switch_root does, minus the delete).
cd /newroot && mount --move . / || fail "move the overlay to /"
exec $bb chroot . $agent
