/* SPDX-License-Identifier: Apache-2.0
 * The silo-vmm jail, in a fixed order (docs/vmm.md):
 *   jail_prepare  (first thing in main): new mount, pid, net and ipc namespaces;
 *                 fork so the VMM is pid 1 of its pid namespace; the parent only
 *                 relays signals and the exit status.
 *   jail_enter    (after every file, socket and KVM fd is open, before the vCPU
 *                 threads start): pivot_root into the per-VM directory, rlimits,
 *                 drop all capabilities, no_new_privs, seccomp allow-list
 *                 (seccomp_allowlist.h) with kill-process as the default action.
 * The relay process also puts the VMM in its own cgroup (memory = guest RAM + VMM
 * overhead, CPU = vCPUs + 1, pids) and removes it after the VMM exits. The namespaces
 * and mounts die with the process; the cgroup and socket files are removed by the relay.
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

#include "providers/ns.h"
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

static ns_cgroup jail_cg;

static ns_limits jail_limits(uint64_t mem_mib, uint64_t vcpus)
{
	return (ns_limits){.memory_bytes = (mem_mib + JAIL_VMM_OVERHEAD_MIB) << 20,
			   .cpu_millis = (uint32_t)(vcpus + 1) * 1000, .pids_max = JAIL_PIDS_MAX};
}

int jail_set_memory(uint64_t mem_mib, uint64_t vcpus, silo_error *err)
{
	if (!jail_cg.n)
		return 0;
	/* Raising the limit of a cgroup we created: recreate-free, just rewrite the knobs. */
	ns_limits lim = jail_limits(mem_mib, vcpus);
	char val[32];
	snprintf(val, sizeof val, "%llu", (unsigned long long)lim.memory_bytes);
	for (int i = 0; i < jail_cg.n; i++) {
		const char *file = jail_cg.v2 ? "memory.max" : strstr(jail_cg.path[i], "/memory/") ? "memory.limit_in_bytes" : NULL;
		if (!file)
			continue;
		char p[PATH_MAX + 32];
		snprintf(p, sizeof p, "%s/%s", jail_cg.path[i], file);
		int fd = open(p, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, val, strlen(val)) != (ssize_t)strlen(val)) {
			int e = errno;
			if (fd >= 0)
				close(fd);
			return silo_fail(err, SILO_ERR_IO_ERROR, e, "jail: cgroup memory limit %s", p);
		}
		close(fd);
	}
	return 0;
}

int jail_prepare(const char *const *cleanup_paths, const char *id, uint64_t mem_mib, uint64_t vcpus, silo_error *err)
{
	/* The cgroup first (nothing to undo if it fails), named after the VM and this process. */
	char cg_id[128];
	int n = snprintf(cg_id, sizeof cg_id, "vmm-%.64s-%d", id, (int)getpid());
	for (int i = 4; i < n; i++)
		if (!((cg_id[i] >= 'a' && cg_id[i] <= 'z') || (cg_id[i] >= 'A' && cg_id[i] <= 'Z') ||
		      (cg_id[i] >= '0' && cg_id[i] <= '9') || cg_id[i] == '-' || cg_id[i] == '_'))
			cg_id[i] = '_';
	ns_limits lim = jail_limits(mem_mib, vcpus);
	if (ns_cgroup_create(cg_id, &lim, &jail_cg, err) < 0) {
		silo_error_prefix(err, "jail: cgroup");
		return -1;
	}
	/* The pid namespace applies to the child; the child takes its own mount namespace so its
	 * pivot_root does not move this relay process's root too. */
	if (unshare(CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC) < 0)
		return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, errno, "jail: unshare namespaces (needs root)");
	pid_t pid = fork();
	if (pid < 0) {
		ns_cgroup_remove(&jail_cg);
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, errno, "jail: fork");
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (int i = 0; i < jail_cg.n; i++) {
			int fd = open(jail_cg.procs[i], O_WRONLY | O_CLOEXEC);
			if (fd < 0 || write(fd, "0", 1) != 1) {
				int e = errno;
				if (fd >= 0)
					close(fd);
				return silo_fail(err, SILO_ERR_IO_ERROR, e, "jail: join cgroup %s", jail_cg.procs[i]);
			}
			close(fd);
		}
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
	if (ns_cgroup_remove(&jail_cg) < 0)
		fprintf(stderr, "silo-vmm: jail: cgroup %s could not be removed\n", jail_cg.path[0]);
	_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

int jail_clear_bounding(silo_error *err)
{
	for (int c = 0; c <= 63; c++)
		if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) > 0 && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0)
			return silo_fail(err, SILO_ERR_INTERNAL, errno, "jail: drop capability %d from the bounding set", c);
	return 0;
}

int jail_drop_caps(silo_error *err)
{
	if (jail_clear_bounding(err) < 0)
		return -1;
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

int jail_pivot_root(const char *dir, silo_error *err)
{
	/* pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only dir. */
	if (chdir(dir) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 ||
	    chdir("/") < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "jail: pivot_root into %s", dir);
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
	if (jail_pivot_root(dir, err) < 0)
		return -1;
	struct rlimit nofile = {256, 256}, core = {0, 0}, fsize = {1ULL << 34, 1ULL << 34};
	if (setrlimit(RLIMIT_NOFILE, &nofile) < 0 || setrlimit(RLIMIT_CORE, &core) < 0 ||
	    setrlimit(RLIMIT_FSIZE, &fsize) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "jail: setrlimit");
	if (jail_drop_caps(err) < 0)
		return -1;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "jail: no_new_privs");
	return install_seccomp(err);
}
