/* SPDX-License-Identifier: Apache-2.0
 * Reviewed data: what a namespace sandbox sees of /proc and /sys, after runc's
 * and crun's defaults (masked and read-only paths) plus the entries that name
 * host files. Applied by the sandbox init as host root, after pivot_root and
 * before it enters its user namespace; the sandbox can never undo them (its
 * mount namespace belongs to the host's user namespace, and mount(2) and the
 * new mount API are denied by seccomp).
 *
 * HIDE(path, why): a file gets /dev/null bound over it (reads are empty,
 *   writes vanish), a directory an empty read-only tmpfs.
 * RDONLY(path, why): bound read-only onto itself.
 * Entries the running kernel does not have are skipped. Changes here are
 * security changes: give the reason in the row. Included once, by namespace.c;
 * tests/integration/test_ns_escape.sh checks every row from inside a sandbox.
 */
/* clang-format off */
RDONLY("/proc/sys",           "kernel knobs: core_pattern, modprobe, vm.*, randomize_va_space are host-global")
RDONLY("/proc/sysrq-trigger", "SysRq: crash, reboot or kill every process of the host")
RDONLY("/proc/irq",           "host interrupt affinity")
RDONLY("/proc/bus",           "host PCI/USB configuration space")
RDONLY("/proc/fs",            "host filesystem tunables (nfsd, ext4, xfs)")
HIDE("/proc/kcore",           "the host's physical memory as an ELF core file")
HIDE("/proc/kmsg",            "the host kernel log")
HIDE("/proc/keys",            "kernel keyrings are not namespaced")
HIDE("/proc/key-users",       "keyring quotas of every host user")
HIDE("/proc/timer_list",      "host timers with pids and kernel addresses")
HIDE("/proc/timer_stats",     "host timer statistics (older kernels)")
HIDE("/proc/sched_debug",     "name, pid and scheduling state of every host task")
HIDE("/proc/latency_stats",   "host latency records")
HIDE("/proc/interrupts",      "host interrupt counters: a keystroke and network timing side channel")
HIDE("/proc/kpagecount",      "physical page map: helps rowhammer-style attacks")
HIDE("/proc/kpageflags",      "physical page map: helps rowhammer-style attacks")
HIDE("/proc/kpagecgroup",     "physical page map: helps rowhammer-style attacks")
HIDE("/proc/acpi",            "host ACPI state and controls")
HIDE("/proc/scsi",            "host SCSI devices (writes add and remove devices)")
HIDE("/proc/asound",          "host sound devices")
HIDE("/sys/firmware",         "ACPI tables, DMI and EFI variables of the host")
HIDE("/sys/devices/virtual/powercap", "RAPL energy counters: a power side channel (Platypus)")
HIDE("/sys/devices/virtual/block",    "loop devices name their backing files: host paths of other sandboxes' disks")
/* clang-format on */
