/* SPDX-License-Identifier: Apache-2.0
 * The silo-vmm seccomp allow-list: data, reviewed like policy (docs/vmm.md, "Jail").
 *
 * Installed by jail.c once every host file is open and the process has become the jail's
 * uid, before the VM is built and before the API is served: everything silo-vmm does
 * afterwards (building the VM, loading snapshots, serving the API, running vCPUs and devices)
 * must be on this list, anything else kills the process. The list is compiled to a BPF
 * program at build time (seccomp_gen.c -> seccomp_bpf.h); loading it is one seccomp(2)
 * call, no libseccomp at run time.
 *
 * One row per rule: a syscall, optionally with one argument condition
 * (arg index, mask, value: allowed when (arg & mask) == value). Several rows for one
 * syscall are alternatives. Keep a reason for each group.
 */
#ifndef SILO_VMM_SECCOMP_ALLOWLIST_H
#define SILO_VMM_SECCOMP_ALLOWLIST_H

#include <stdint.h>

typedef struct vmm_seccomp_rule {
	const char *name;
	int arg; /* -1: any arguments */
	uint64_t mask, value;
} vmm_seccomp_rule;

/* clone: threads only (pthread_create), never a new process or namespace */
#define VMM_CLONE_THREAD_FLAGS                                                                                 \
	0x3d0f00ull /* CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS|  \
		       CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID */

static const vmm_seccomp_rule vmm_seccomp_allow[] = {
	/* KVM ioctls on the /dev/kvm, VM and vCPU fds (type 0xAE); TCGETS: stdio's isatty */
	{"ioctl", 1, 0xff00, 0xae00},
	{"ioctl", 1, 0xffffffff, 0x5401},
	/* guest RAM (memfd, or a snapshot's memory file mapped copy-on-write), malloc, thread
	 * stacks; never executable memory */
	{"memfd_create", -1, 0, 0},
	{"ftruncate", -1, 0, 0},
	{"mmap", 2, 0x4, 0},
	{"mprotect", 2, 0x4, 0},
	{"munmap", -1, 0, 0},
	{"madvise", -1, 0, 0},
	{"brk", -1, 0, 0},
	{"mremap", -1, 0, 0},
	/* serial log (capped: the tail moves to the front, then truncate), drives, snapshot
	 * files, vsock streams, eventfds */
	{"read", -1, 0, 0},
	{"write", -1, 0, 0},
	{"readv", -1, 0, 0},
	{"writev", -1, 0, 0},
	{"pread64", -1, 0, 0},
	{"pwrite64", -1, 0, 0},
	{"fdatasync", -1, 0, 0},
	{"fsync", -1, 0, 0},
	{"lseek", -1, 0, 0},
	{"close", -1, 0, 0},
	{"fcntl", -1, 0, 0},
	{"dup", -1, 0, 0},
	{"eventfd2", -1, 0, 0},
	/* files the API names are opened inside the jail root only (the mount namespace holds
	 * nothing else); fstat checks what a passed fd is */
	{"openat", -1, 0, 0},
	{"fstat", -1, 0, 0},
	{"newfstatat", -1, 0, 0},
	{"readlink", -1, 0, 0},
	/* the API socket, vsock: unix sockets only; every listener was bound before the jail (bind
	 * and listen are answered EPERM below: no abstract socket for the host to find), connects
	 * reach only the jail's own files and, with Landlock, no abstract socket outside it */
	{"socket", 0, 0xffffffff, 1 /* AF_UNIX */},
	{"connect", -1, 0, 0},
	{"accept4", -1, 0, 0},
	{"recvfrom", -1, 0, 0},
	{"sendto", -1, 0, 0},
	{"recvmsg", -1, 0, 0},
	{"sendmsg", -1, 0, 0},
	{"shutdown", -1, 0, 0},
	{"poll", -1, 0, 0},
	{"ppoll", -1, 0, 0},
	/* vCPU, API and vsock threads; clone3 is answered ENOSYS (seccomp_gen.c) so glibc falls
	 * back to clone, whose flags can be checked */
	{"clone", 0, 0xffffffffull, VMM_CLONE_THREAD_FLAGS},
	{"set_robust_list", -1, 0, 0},
	{"rseq", -1, 0, 0},
	{"futex", -1, 0, 0},
	{"sched_yield", -1, 0, 0},
	{"sched_getaffinity", -1, 0, 0},
	{"gettid", -1, 0, 0},
	{"getpid", -1, 0, 0},
	{"exit", -1, 0, 0},
	{"exit_group", -1, 0, 0},
	/* thread names (pthread_setname_np) */
	{"prctl", 0, 0xffffffff, 15 /* PR_SET_NAME */},
	/* signals: vCPU kicks (tgkill SIGUSR1), stop requests, sigtimedwait/signalfd in main;
	 * the VMM is pid 1 of its own pid namespace: no other process is reachable */
	{"rt_sigaction", -1, 0, 0},
	{"rt_sigprocmask", -1, 0, 0},
	{"rt_sigreturn", -1, 0, 0},
	{"rt_sigtimedwait", -1, 0, 0},
	{"signalfd4", -1, 0, 0},
	{"tgkill", -1, 0, 0},
	{"kill", -1, 0, 0},
	{"sigaltstack", -1, 0, 0},
	{"restart_syscall", -1, 0, 0},
	/* time */
	{"clock_gettime", -1, 0, 0},
	{"clock_nanosleep", -1, 0, 0},
	{"nanosleep", -1, 0, 0},
	{"gettimeofday", -1, 0, 0},
	/* virtio-rng, snapshot ids */
	{"getrandom", -1, 0, 0},
	/* socket files at exit (inside the jail these fail: the relay removes them) */
	{"unlink", -1, 0, 0},
	{"unlinkat", -1, 0, 0},
};

/* Answered with an errno instead of killing the process. */
typedef struct vmm_seccomp_errno_rule {
	const char *name;
	int err;
} vmm_seccomp_errno_rule;

static const vmm_seccomp_errno_rule vmm_seccomp_errno[] = {
	{"clone3", 38 /* ENOSYS: glibc falls back to clone */},
	{"bind", 1 /* EPERM: a socket named over the API after the jail is an error, not a kill */},
	{"listen", 1 /* EPERM */},
};

#endif
