/* SPDX-License-Identifier: Apache-2.0
 * Reviewed data: what a namespace sandbox may never do through a syscall.
 * Default action for everything else is ALLOW (the user namespace, the other
 * namespaces, the capability bounding set and the cgroups do the rest).
 * Changes to this list are security changes: give the reason in the row.
 *
 *   DENY(name, why)                  the syscall returns EPERM
 *   DENY_SOCKET(family, errno, why)  socket(family, ...) returns errno
 *   ALLOW_NETLINK(protocol, why)     socket(AF_NETLINK, ..., protocol) is allowed
 *                                    for these protocols only; every other
 *                                    protocol returns EPROTONOSUPPORT
 * Socket rules return what a kernel without the family or protocol returns,
 * so programs take their "not available" path. Argument comparisons look at
 * the low 32 bits (the kernel reads an int), so high bits cannot smuggle a
 * family past them.
 *
 * Included once, by ns-seccomp.c, which also denies clone() with any
 * CLONE_NEW* flag (EPERM) and clone3 (ENOSYS, so libc falls back to clone).
 * On the i386 ABI libseccomp turns the socket rules into a denial of
 * socketcall(SYS_SOCKET) as a whole (its arguments are in memory): 32-bit
 * programs must create sockets with the direct socket(2) syscall.
 */
/* clang-format off */
DENY(kexec_load,        "replace the host kernel")
DENY(kexec_file_load,   "replace the host kernel")
DENY(init_module,       "load kernel code")
DENY(finit_module,      "load kernel code")
DENY(delete_module,     "unload kernel code")
DENY(create_module,     "obsolete module loading")
DENY(bpf,               "kernel program loading, large attack surface")
DENY(perf_event_open,   "host-wide profiling, side channels, kernel attack surface")
DENY(keyctl,            "kernel keyring is not namespaced")
DENY(add_key,           "kernel keyring is not namespaced")
DENY(request_key,       "kernel keyring is not namespaced")
DENY(userfaultfd,       "used to widen kernel race windows in exploits")
DENY(open_by_handle_at, "escapes a chroot/pivot_root by file handle (shocker)")
DENY(name_to_handle_at, "pairs with open_by_handle_at")
DENY(ptrace,            "tracing; the agent and other sandbox processes must not be inspected")
DENY(process_vm_readv,  "cross-process memory access")
DENY(process_vm_writev, "cross-process memory access")
DENY(mount,             "the filesystem layout is fixed after setup")
DENY(umount2,           "the filesystem layout is fixed after setup")
DENY(pivot_root,        "the filesystem layout is fixed after setup")
DENY(chroot,            "no nested roots")
DENY(move_mount,        "new mount API")
DENY(open_tree,         "new mount API")
DENY(fsopen,            "new mount API")
DENY(fsconfig,          "new mount API")
DENY(fsmount,           "new mount API")
DENY(fspick,            "new mount API")
DENY(mount_setattr,     "new mount API")
DENY(swapon,            "host swap configuration")
DENY(swapoff,           "host swap configuration")
DENY(reboot,            "host power state (the agent exits instead)")
DENY(acct,              "host process accounting")
DENY(settimeofday,      "the clock is not namespaced")
DENY(clock_settime,     "the clock is not namespaced")
DENY(clock_adjtime,     "the clock is not namespaced")
DENY(adjtimex,          "the clock is not namespaced")
DENY(stime,             "the clock is not namespaced")
DENY(iopl,              "raw I/O port access")
DENY(ioperm,            "raw I/O port access")
DENY(quotactl,          "host filesystem quotas")
DENY(nfsservctl,        "host NFS server")
DENY(lookup_dcookie,    "kernel profiling interface")
DENY(vm86,              "legacy, kernel attack surface")
DENY(vm86old,           "legacy, kernel attack surface")
DENY(uselib,            "legacy loader")
DENY(personality,       "can disable ASLR; legacy ABIs")
DENY(syslog,            "host kernel log")
DENY(setns,             "no joining other namespaces")
DENY(unshare,           "no new namespaces (user namespaces widen the attack surface)")
DENY(fanotify_init,     "host-wide filesystem monitoring")
DENY(kcmp,              "inspects other processes' kernel objects")
DENY(get_kernel_syms,   "obsolete")
DENY(query_module,      "obsolete")
DENY(sysfs,             "obsolete")
DENY(_sysctl,           "obsolete")
DENY(io_uring_setup,    "large kernel attack surface")
DENY(io_uring_enter,    "large kernel attack surface")
DENY(io_uring_register, "large kernel attack surface")
DENY(pidfd_getfd,       "copies another process's fds (the agent's listening socket is bound to a host path)")
DENY(process_madvise,   "acts on another process's memory")

DENY_SOCKET(AF_VSOCK,   EAFNOSUPPORT, "host<->VM sockets: would reach the host's and local VMs' vsock services")
ALLOW_NETLINK(NETLINK_ROUTE, "interfaces, addresses and routes of the sandbox's own network namespace (ip, ifconfig)")
/* clang-format on */
