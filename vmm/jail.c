/* SPDX-License-Identifier: Apache-2.0
 * The silo-vmm jail, in a fixed order (docs/vmm.md):
 *   jail_prepare  (first thing in main): new mount, pid, net and ipc namespaces;
 *                 fork so the VMM is pid 1 of its pid namespace; the parent only
 *                 relays signals and the exit status.
 *   jail_enter    (after every file, socket and KVM fd is open, before the vCPU
 *                 threads start): pivot_root into the per-VM directory, rlimits,
 *                 drop all capabilities, no_new_privs, seccomp allow-list
 *                 (seccomp_allowlist.h) with kill-process as the default action.
 * Nothing is created on the host: the namespaces and mounts die with the process.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "seccomp_allowlist.h"
#include "vmm.h"

static pid_t jail_child;

static void relay(int sig)
{
	if (jail_child > 0)
		kill(jail_child, sig);
}

static void noop(int sig)
{
	(void)sig;
}

int jail_prepare(const char *const *cleanup_paths, silo_error *err)
{
	/* The pid namespace applies to the child; the child takes its own mount namespace so its
	 * pivot_root does not move this relay process's root too. */
	if (unshare(CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC) < 0)
		return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, errno, "jail: unshare namespaces (needs root)");
	pid_t pid = fork();
	if (pid < 0)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, errno, "jail: fork");
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (unshare(CLONE_NEWNS) < 0)
			return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, errno, "jail: unshare mount namespace");
		/* pid 1 only receives signals it handles: give SIGTERM/SIGINT a handler
		 * (main still takes them with sigtimedwait while they are blocked). */
		struct sigaction sa = {.sa_handler = noop};
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		return 0;
	}
	jail_child = pid;
	struct sigaction sa = {.sa_handler = relay};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	/* Files the jailed VMM cannot remove from inside its new root (API and vsock sockets). */
	for (size_t i = 0; cleanup_paths && cleanup_paths[i]; i++)
		unlink(cleanup_paths[i]);
	_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

static int drop_caps(silo_error *err)
{
	for (int c = 0; c <= 63; c++)
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
			return silo_fail(err, SILO_ERR_INTERNAL, errno, "jail: drop capability %d from the bounding set", c);
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof d);
	if (syscall(SYS_capset, &h, d) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "jail: capset");
	return 0;
}

static int install_seccomp(silo_error *err)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (!ctx)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "jail: seccomp_init");
	for (size_t i = 0; i < sizeof vmm_seccomp_allow / sizeof vmm_seccomp_allow[0]; i++) {
		int nr = seccomp_syscall_resolve_name(vmm_seccomp_allow[i]);
		if (nr == __NR_SCMP_ERROR) {
			seccomp_release(ctx);
			return silo_fail(err, SILO_ERR_INTERNAL, 0, "jail: seccomp allow-list: unknown syscall \"%s\"",
					 vmm_seccomp_allow[i]);
		}
		int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		if (r < 0) {
			seccomp_release(ctx);
			return silo_fail(err, SILO_ERR_INTERNAL, -r, "jail: seccomp rule for %s", vmm_seccomp_allow[i]);
		}
	}
	int r = seccomp_load(ctx);
	seccomp_release(ctx);
	if (r < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, -r, "jail: seccomp_load");
	return 0;
}

int jail_enter(const char *dir, silo_error *err)
{
	struct stat st;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, errno, "--jail %s: not a directory", dir);
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "jail: make / private");
	if (mount(dir, dir, NULL, MS_BIND | MS_REC, NULL) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "jail: bind %s", dir);
	if (chdir(dir) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 ||
	    chdir("/") < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "jail: pivot_root into %s", dir);
	struct rlimit nofile = {256, 256}, core = {0, 0}, fsize = {1ULL << 34, 1ULL << 34};
	if (setrlimit(RLIMIT_NOFILE, &nofile) < 0 || setrlimit(RLIMIT_CORE, &core) < 0 ||
	    setrlimit(RLIMIT_FSIZE, &fsize) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "jail: setrlimit");
	if (drop_caps(err) < 0)
		return -1;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "jail: no_new_privs");
	return install_seccomp(err);
}
