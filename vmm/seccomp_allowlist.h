/* SPDX-License-Identifier: Apache-2.0
 * The silo-vmm seccomp allow-list: data, reviewed like policy (docs/vmm.md).
 * Installed by jail.c after all files, sockets and KVM fds are open, just
 * before the vCPU threads start; anything else kills the process.
 * Keep one name per line and a reason for each group.
 */
#ifndef SILO_VMM_SECCOMP_ALLOWLIST_H
#define SILO_VMM_SECCOMP_ALLOWLIST_H

static const char *const vmm_seccomp_allow[] = {
	/* KVM_RUN, KVM_IRQ_LINE and friends on already-open fds */
	"ioctl",
	/* serial log (capped: the tail is moved to the front, then truncated), drives,
	 * vsock streams, eventfd */
	"read", "write", "readv", "writev", "pread64", "pwrite64", "fdatasync", "fsync", "lseek", "ftruncate",
	"close",
	/* vsock host side: accept, guest-initiated connects to <uds>_PORT */
	"socket", "connect", "accept4", "recvfrom", "sendto", "recvmsg", "sendmsg", "shutdown",
	"poll", "ppoll", "epoll_wait", "epoll_pwait",
	/* memory (malloc, thread stacks) */
	"mmap", "munmap", "mprotect", "madvise", "brk", "mremap",
	/* vCPU and vsock threads */
	"clone", "clone3", "set_robust_list", "rseq", "futex", "sched_yield", "gettid", "getpid",
	"exit", "exit_group",
	/* signals: vCPU kicks (tgkill SIGUSR1), stop requests, sigtimedwait in main */
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "tgkill", "kill",
	"sigaltstack",
	/* time */
	"clock_gettime", "clock_nanosleep", "nanosleep", "gettimeofday",
	/* virtio-rng */
	"getrandom",
	/* vsock socket file removal at exit (inside the jail's view) */
	"unlink", "unlinkat",
	/* sanitizer builds read their own maps when reporting */
	"openat", "fstat", "newfstatat", "readlink", "prctl", "sched_getaffinity",
};

#endif
