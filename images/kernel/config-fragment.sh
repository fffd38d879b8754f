#!/bin/sh
# Silo guest kernel configuration fragment for Linux 6.1.
#
# Applied by images/build-kernel.sh inside the kernel tree after `make tinyconfig`,
# followed by `make olddefconfig`.  The SHA-256 of this file (plus the Debian
# linux-source package version) is the kernel cache key: any edit here triggers a
# rebuild, nothing else does.
#
# Target: a microVM guest (QEMU -M microvm,acpi=off and silo-vmm): virtio-mmio only,
# no PCI, no ACPI, no modules; PVH entry so the ELF vmlinux boots directly.
set -e
C=./scripts/config

# arch / core
$C -e 64BIT -e SMP -e PRINTK -e EARLY_PRINTK -e BUG -e MULTIUSER -e POSIX_TIMERS -e FUTEX -e EPOLL \
   -e SIGNALFD -e TIMERFD -e EVENTFD -e SHMEM -e AIO -e IO_URING -e ADVISE_SYSCALLS -e MEMBARRIER \
   -e FILE_LOCKING -e FHANDLE -e SYSVIPC -e POSIX_MQUEUE -e HIGH_RES_TIMERS -e NO_HZ_IDLE \
   -e BINFMT_ELF -e BINFMT_SCRIPT -e SECCOMP -e SECCOMP_FILTER -e PROC_SYSCTL -e CRASH_CORE
$C --set-val NR_CPUS 8
# SLUB instead of tinyconfig's SLOB: SLOB is slow under allocation-heavy
# workloads (python) and is deprecated upstream.
$C -d SLOB -e SLUB -d SLUB_DEBUG

# hypervisor guest
$C -e HYPERVISOR_GUEST -e PARAVIRT -e KVM_GUEST -e PVH -e X86_X2APIC -e PARAVIRT_SPINLOCKS
$C -d RANDOMIZE_BASE -d RELOCATABLE
# kernel image compression (fast decompressor)
$C -d KERNEL_XZ -e KERNEL_LZ4

# console / tty: ttyS0 for the serial log, /dev/pts for agent PTY sessions,
# virtio-console for the agent channel (virtio-serial port "silo.agent").
$C -e TTY -e UNIX98_PTYS -e SERIAL_8250 -e SERIAL_8250_CONSOLE -e VIRTIO_CONSOLE
$C --set-val SERIAL_8250_NR_UARTS 1 --set-val SERIAL_8250_RUNTIME_UARTS 1

# initramfs
$C -e BLK_DEV_INITRD -e RD_GZIP -e RD_ZSTD -d RD_BZIP2 -d RD_LZMA -d RD_XZ -d RD_LZO -d RD_LZ4

# filesystems: ext4 root images are mounted read-only under an overlay with a tmpfs upper
$C -e DEVTMPFS -e DEVTMPFS_MOUNT -e PROC_FS -e SYSFS -e TMPFS -e TMPFS_POSIX_ACL -e BLOCK \
   -e EXT4_FS -e EXT4_USE_FOR_EXT2 -e OVERLAY_FS -e FUSE_FS -e VIRTIO_FS -e INOTIFY_USER

# virtio (MMIO transport only, no PCI)
$C -e VIRTIO_MENU -e VIRTIO -e VIRTIO_MMIO -e VIRTIO_MMIO_CMDLINE_DEVICES -e BLK_DEV -e VIRTIO_BLK \
   -e HW_RANDOM -e HW_RANDOM_VIRTIO

# networking
$C -e NET -e UNIX -e INET -e NETDEVICES -e NET_CORE -e VIRTIO_NET -e VSOCKETS -e VIRTIO_VSOCKETS

# namespaces and cgroups: the agent may confine workloads further inside the guest
$C -e NAMESPACES -e UTS_NS -e IPC_NS -e PID_NS -e NET_NS -e USER_NS \
   -e CGROUPS -e CGROUP_PIDS -e MEMCG -e CGROUP_SCHED -e FAIR_GROUP_SCHED -e CPUSETS

# PTP_KVM hangs (hypercall loop) under this PVM host; not needed anyway
$C -d PTP_1588_CLOCK -d PTP_1588_CLOCK_KVM -d PPS
