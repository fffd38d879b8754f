/* SPDX-License-Identifier: Apache-2.0
 * The silo-vmm jail (docs/vmm.md, "Jail"), the way Firecracker's jailer confines its VMM,
 * in a fixed order:
 *
 *   jail_start  (first thing after the command line is parsed): new pid, IPC and UTS
 *               namespaces and a fork; the child is the VMM (pid 1 of its pid namespace, in a
 *               mount namespace of its own); this process stays as the relay and, while the
 *               child opens its files and builds the VM, creates the cgroup silo/<name>
 *               (memory = guest RAM + VMM overhead, CPU = vCPUs + 1, pids) and says 'c' on a
 *               pipe, then makes (only on kernels without Landlock ABI 6, see below) a new
 *               network namespace and says 'n'. It holds the pipe open for its lifetime: EOF
 *               tells the child the relay is gone.
 *   network     the VMM can only create AF_UNIX sockets and never bind after the jail
 *               (seccomp); path sockets resolve in its read-only root. What is left is
 *               connecting to the host's abstract unix sockets: Landlock ABI >= 6 scopes
 *               them (and signals) to the VMM's own domain, at no cost; older kernels get a
 *               network namespace of its own (~0.5 ms of CPU to make, more to tear down);
 *               --netns PATH joins a namespace made beforehand, as Firecracker's jailer;
 *               --netns new asks for a new one even where Landlock would do.
 *   jail_enter  (in the child's main thread, once every host file, socket and /dev/kvm is
 *               open; another thread may be building the VM): open the cgroup hierarchies'
 *               roots, make / private, bind the jail directory onto itself
 *               read-only/nosuid/nodev/noexec, pivot_root into it (a child process detaches
 *               the old root meanwhile; its umount2 then waits for an RCU grace period),
 *               rlimits, clear the capability bounding set, wait for 'c' and join the
 *               cgroup through those descriptors (then closed), wait for 'n', join the
 *               network namespace, wait for the old root to be detached, drop to the jail's
 *               uid/gid (no supplementary groups), clear every capability set,
 *               PR_SET_PDEATHSIG again (a credential change resets it), no_new_privs, the
 *               Landlock scopes, then the seccomp allow-list (seccomp_allowlist.h, compiled at
 *               build time).
 *   relay       forwards SIGTERM/SIGINT to the VMM, keeps the --hold-fd descriptor (the
 *               provider's uid lease) for its lifetime and never passes it on; when the VMM
 *               exits (kill -9 included) it removes the cleanup paths (sockets) and the
 *               cgroup and exits with the VMM's status (128+N for signal N). The namespaces
 *               and mounts die with the VMM: nothing else exists on the host.
 * Rules: jail_start runs single-threaded. Credentials, the seccomp filter and Landlock
 * scopes are per thread: jail_enter changes the calling (main) thread, and every thread
 * it starts afterwards (vCPUs, API, vsock) inherits them. Threads started before it (the
 * VM builder, the CPUID fetch) keep root and must only touch KVM fds and their own work,
 * and end before the guest runs or the API reads a request: main joins them first. The
 * old root is detached by a child process (detach_old_root), which may still wait in its
 * umount2 for a grace period after the jail is entered; it shares no memory with the VMM. The VMM never regains anything: no capabilities, a uid of its own (with
 * --uid), no way back out of the jail root, no new privileges.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "common/cgroup.h"
#include "seccomp_bpf.h"
#include "vmm.h"

/* How the VMM is kept off the host's network: it can only create AF_UNIX sockets (seccomp)
 * and owns no listener after the jail; what is left to close is connecting to the host's
 * abstract unix sockets, which need no file permission. */
enum netns_mode {
	NET_JOIN,     /* --netns: join that namespace */
	NET_LANDLOCK, /* Landlock ABI >= 6: scope abstract unix sockets (and signals) to the VMM */
	NET_NEW,      /* older kernels: a new network namespace, made by the relay */
};

/* Landlock's ruleset attributes as of ABI 6 (Linux 6.12); Debian 12's headers stop at ABI 1. */
struct jail_landlock_attr {
	uint64_t handled_access_fs, handled_access_net, scoped;
};
#define JAIL_LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ull << 0)
#define JAIL_LANDLOCK_SCOPE_SIGNAL (1ull << 1)

static struct {
	jail_opts o;
	enum netns_mode net;
	char cg_name[128];
	cg_set cg;
	int cg_root_fd[CG_MAX]; /* child: the cgroup hierarchies' roots, until it joined */
	pid_t relay_pid; /* host pid of the relay */
	int ready_rd;    /* child: the relay's pipe ('n', then EOF when the relay is gone) */
	int netns_fd;    /* child: the network namespace to join (opened before pivot_root) */
	pid_t umount_pid;        /* child: the process detaching the old root (finish_root) */
	int umount_err;          /* -errno of a detach done without that process */
} J = {.ready_rd = -1, .netns_fd = -1};

static pid_t jail_child;

static void relay_signal(int sig)
{
	if (jail_child > 0)
		kill(jail_child, sig);
}

static void noop(int sig)
{
	(void)sig;
}

static cg_limits jail_limits(void)
{
	/* no freezer: the VMM pauses its vCPUs itself (PATCH /vm) */
	return (cg_limits){.memory_bytes = (J.o.mem_mib + JAIL_VMM_OVERHEAD_MIB) << 20,
			   .cpu_millis = (uint32_t)(J.o.vcpus + 1) * 1000, .pids_max = JAIL_PIDS_MAX, .no_freezer = true};
}

/* The relay: the child's cgroup, the network namespace for the child (on kernels without
 * Landlock scopes), then wait for it and remove what it cannot. Never returns. */
static __attribute__((noreturn)) void relay_main(pid_t child, int ready_wr)
{
	jail_child = child;
	struct sigaction sa = {.sa_handler = relay_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	silo_error err = {0};
	char ebuf[1024];
	bool ok = true;
	/* the child's cgroup, made here while the child starts (it joins it itself: 'c') */
	cg_limits lim = jail_limits();
	if (cg_create(J.cg_name, &lim, &J.cg, &err) < 0) {
		silo_error_prefix(&err, "jail: cgroup silo/%s", J.cg_name);
		ok = false;
	} else if (write(ready_wr, "c", 1) != 1) {
		silo_fail(&err, SILO_ERR_INTERNAL, errno, "jail: tell the VMM");
		ok = false;
	}
	/* the child joins this namespace (setns): created here, in parallel with its start */
	if (ok && J.net == NET_NEW && unshare(CLONE_NEWNET) < 0) {
		silo_fail(&err, SILO_ERR_PROVIDER_UNAVAILABLE, errno, "jail: new network namespace");
		ok = false;
	}
	if (ok && write(ready_wr, "n", 1) != 1) {
		silo_fail(&err, SILO_ERR_INTERNAL, errno, "jail: tell the VMM");
		ok = false;
	}
	if (!ok) {
		fprintf(stderr, "silo-vmm: %s\n", silo_error_str(&err, ebuf, sizeof ebuf));
		kill(child, SIGKILL);
	}
	int st = 0;
	while (waitpid(child, &st, 0) < 0 && errno == EINTR)
		;
	/* What the jailed VMM cannot remove: the API and vsock sockets (outside its root), the
	 * cgroup it made (it is no longer root). */
	for (size_t i = 0; J.o.cleanup && J.o.cleanup[i]; i++)
		unlink(J.o.cleanup[i]);
	cg_paths(J.cg_name, &J.cg);
	bool any = false;
	for (int i = 0; i < J.cg.n; i++)
		any = any || access(J.cg.path[i], F_OK) == 0;
	if (any && cg_remove(&J.cg) < 0)
		fprintf(stderr, "silo-vmm: jail: cgroup %s could not be removed\n", J.cg.path[0]);
	if (!ok)
		_exit(1);
	_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

int jail_start(const jail_opts *o, silo_error *err)
{
	J.o = *o;
	if (o->cgroup) {
		snprintf(J.cg_name, sizeof J.cg_name, "%s", o->cgroup);
	} else {
		/* named after the VM and this process (unique even for two VMs with one id) */
		int n = snprintf(J.cg_name, sizeof J.cg_name, "vmm-%.64s-%d", o->id, (int)getpid());
		for (int i = 4; i < n; i++)
			if (!((J.cg_name[i] >= 'a' && J.cg_name[i] <= 'z') || (J.cg_name[i] >= 'A' && J.cg_name[i] <= 'Z') ||
			      (J.cg_name[i] >= '0' && J.cg_name[i] <= '9') || J.cg_name[i] == '-' || J.cg_name[i] == '_'))
				J.cg_name[i] = '_';
	}
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (o->netns && !strcmp(o->netns, "new"))
		J.net = NET_NEW; /* asked for, even where Landlock would do */
	else
		J.net = o->netns ? NET_JOIN : abi >= 6 ? NET_LANDLOCK : NET_NEW;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, errno, "jail: pipe");
	J.relay_pid = getpid();
	vmm_step("jail_before_clone");
	/* The pid namespace applies to the child; glibc's fork (not a raw clone3: glibc must
	 * learn the child's thread id, or pthread_kill of the main thread goes astray); the child
	 * takes its own mount namespace so its pivot_root does not move the relay's root too.
	 * The network namespace is the relay's job, in parallel. */
	pid_t pid = -1;
	if (unshare(CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS) == 0)
		pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, e,
				 "jail: new pid, IPC and UTS namespaces and fork (needs root)");
	}
	if (pid == 0) {
		close(p[1]);
		if (unshare(CLONE_NEWNS) < 0)
			return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, errno, "jail: new mount namespace");
		J.ready_rd = p[0];
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (o->hold_fd >= 0)
			close(o->hold_fd); /* the lease is the relay's */
		/* pid 1 only receives signals it handles: give SIGTERM/SIGINT a handler
		 * (main still takes them with sigtimedwait while they are blocked). */
		struct sigaction sa = {.sa_handler = noop};
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		vmm_step("jail_clone");
		return 0;
	}
	close(p[0]);
	relay_main(pid, p[1]);
}

/* One PR_CAPBSET_DROP per capability the kernel has (dropping one already gone succeeds);
 * the first EINVAL past capability 0 is the end (capabilities are numbered without gaps up
 * to cap_last_cap). Without CAP_SETPCAP every drop fails with EPERM: that is fine only for
 * a capability no longer in the set. Once cleared the set cannot grow again, so the second
 * call (jail_drop_caps after the jail's own) is free. */
static bool bounding_cleared;

int jail_clear_bounding(silo_error *err)
{
	if (bounding_cleared)
		return 0;
	for (int c = 0; c <= 63; c++) {
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) == 0)
			continue;
		int e = errno;
		if (e == EPERM) {
			int r = prctl(PR_CAPBSET_READ, c, 0, 0, 0);
			if (r == 0)
				continue;
			e = r < 0 ? errno : EPERM;
		}
		if (e == EINVAL && c > 0)
			break;
		return silo_fail(err, SILO_ERR_INTERNAL, e, "jail: drop capability %d from the bounding set", c);
	}
	bounding_cleared = true;
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

int jail_pivot_root(const char *dir, silo_error *err)
{
	/* pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only dir. */
	if (chdir(dir) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 || umount2(".", MNT_DETACH) < 0 ||
	    chdir("/") < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "jail: pivot_root into %s", dir);
	return 0;
}

/* Wait for the relay's 'n' (the network namespace made, or nothing to make). */
static int wait_relay(char want, silo_error *err)
{
	char b = 0;
	ssize_t n;
	while ((n = read(J.ready_rd, &b, 1)) < 0 && errno == EINTR)
		;
	if (n != 1 || b != want)
		return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, 0,
				 "jail: the relay could not set up the cgroup or the network namespace (its message is above)");
	return 0;
}

/* The cgroup: the relay makes it (relay_main) while this process starts; the main thread
 * joins it through the "tasks" file with "0" (v1), which moves the calling thread without the
 * global threadgroup lock that cgroup.procs - or any write naming another task - takes (an
 * RCU grace period, up to tens of ms on a busy host). It joins after pivot_root, through
 * descriptors of the hierarchies' roots opened before (open_cgroup_roots; closed once
 * joined, before the privileges are dropped). Threads this one starts later are born in it;
 * a thread that already runs (the VM builder) stays where it is and ends soon. Nothing of the
 * guest is in memory yet: every page it touches is charged here. */
static int open_cgroup_roots(silo_error *err)
{
	cg_paths(J.cg_name, &J.cg);
	if (J.cg.freeze_v1) /* as cg_create with no_freezer (jail_limits): not made */
		J.cg.n--;
	size_t tail = strlen("/silo/") + strlen(J.cg_name);
	for (int i = 0; i < J.cg.n; i++) {
		size_t len = strlen(J.cg.path[i]);
		char root[PATH_MAX];
		snprintf(root, sizeof root, "%.*s", (int)(len > tail ? len - tail : 0), J.cg.path[i]);
		J.cg_root_fd[i] = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (J.cg_root_fd[i] < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "jail: cgroup hierarchy %s", root);
	}
	return 0;
}

static int join_cgroup(silo_error *err)
{
	if (wait_relay('c', err) < 0)
		return -1;
	int rc = 0;
	for (int i = 0; i < J.cg.n; i++) {
		char p[PATH_MAX];
		snprintf(p, sizeof p, "silo/%s/%s", J.cg_name, J.cg.v2 ? "cgroup.procs" : "tasks");
		int fd = rc ? -1 : openat(J.cg_root_fd[i], p, O_WRONLY | O_CLOEXEC);
		if (!rc && (fd < 0 || write(fd, "0", 1) != 1))
			rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "jail: join cgroup %s", J.cg.path[i]);
		if (fd >= 0)
			close(fd);
		close(J.cg_root_fd[i]);
		J.cg_root_fd[i] = -1;
	}
	return rc;
}

/* Before pivot_root: what names the network namespace to join (--netns, or the relay's
 * /proc/PID directory: its namespace does not exist yet). */
static int open_netns(silo_error *err)
{
	if (J.net == NET_LANDLOCK)
		return 0;
	char p[64];
	const char *path = J.net == NET_JOIN ? J.o.netns : NULL;
	if (!path) {
		snprintf(p, sizeof p, "/proc/%d", (int)J.relay_pid);
		path = p;
	}
	J.netns_fd = open(path, O_RDONLY | O_CLOEXEC | (J.net == NET_JOIN ? 0 : O_DIRECTORY));
	if (J.netns_fd < 0)
		return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, errno, "jail: network namespace %s", path);
	return 0;
}

static int join_netns(silo_error *err)
{
	if (J.net == NET_LANDLOCK)
		return 0;
	int fd = J.net == NET_JOIN ? J.netns_fd : openat(J.netns_fd, "ns/net", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
		int e = errno;
		if (fd >= 0 && fd != J.netns_fd)
			close(fd);
		return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, e, "jail: join the network namespace%s%s",
				 J.net == NET_JOIN ? " " : " of the relay", J.net == NET_JOIN ? J.o.netns : "");
	}
	if (fd != J.netns_fd)
		close(fd);
	close(J.netns_fd);
	J.netns_fd = -1;
	return 0;
}

/* After pivot_root(".", ".") the old root is stacked on the new one, reachable as "/.." (the
 * only path that crosses into it). umount2(".", MNT_DETACH) removes it from the mount tree
 * at once, then waits for an RCU grace period before it frees the old tree and returns
 * (0.1-0.7 ms on an idle host, 20-30 ms on a loaded one). So a child process detaches it
 * and jail_enter waits only for the detach itself: until "/.." is "/" (finish_root).
 * A process, not a thread: it keeps root (no seccomp filter) while the guest may already
 * run, and must share no memory with the VMM the guest could corrupt. It is forked from a
 * multithreaded process, so it makes raw system calls only; it is in the jail's pid
 * namespace (and the cgroup silo-vmm started in: it is forked before the join), exits after its umount2 and is reaped by the kernel (SIGCHLD is
 * ignored: the VMM has no other child). */
static int detach_old_root(void)
{
	signal(SIGCHLD, SIG_IGN); /* the kernel reaps it: wait4 is not in the seccomp allow-list */
	J.umount_pid = (pid_t)syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, 0);
	if (J.umount_pid == 0) {
		long r = syscall(SYS_umount2, ".", MNT_DETACH);
		syscall(SYS_exit_group, r < 0 ? 1 : 0);
	}
	if (J.umount_pid > 0)
		return 0;
	/* no child: detach here, waiting for the grace period */
	return umount2(".", MNT_DETACH) < 0 ? -errno : 0;
}

/* The old root is gone from "/" once ".." of the root is the root itself. */
static bool old_root_detached(void)
{
	struct stat r, up;
	return stat("/", &r) == 0 && stat("/..", &up) == 0 && r.st_dev == up.st_dev && r.st_ino == up.st_ino;
}

static int finish_root(silo_error *err)
{
	for (;;) {
		if (old_root_detached())
			break;
		int st, e = J.umount_err;
		/* the child ended (or there was none) and the old root is still there: it failed */
		pid_t w = J.umount_pid > 0 ? waitpid(J.umount_pid, &st, WNOHANG) : 0;
		if (e || w == J.umount_pid || (w < 0 && errno == ECHILD)) {
			J.umount_pid = 0;
			if (old_root_detached())
				break;
			return silo_fail(err, SILO_ERR_INTERNAL, e < 0 ? -e : 0, "jail: detach the old root from %s",
					 J.o.dir);
		}
		struct timespec ts = {0, 20 * 1000};
		nanosleep(&ts, NULL);
	}
	if (chdir("/") < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "jail: chdir / in %s", J.o.dir);
	return 0;
}

static int enter_root(silo_error *err)
{
	const char *dir = J.o.dir;
	struct stat st;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, errno, "--jail %s: not a directory", dir);
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "jail: make / private");
	if (mount(dir, dir, NULL, MS_BIND, NULL) < 0 ||
	    mount(NULL, dir, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "jail: bind %s", dir);
	if (chdir(dir) < 0 || syscall(SYS_pivot_root, ".", ".") < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "jail: pivot_root into %s", dir);
	J.umount_err = detach_old_root();
	return 0;
}

static int set_limits(silo_error *err)
{
	struct {
		int res;
		uint64_t v;
	} lim[] = {{RLIMIT_NOFILE, JAIL_NOFILE}, {RLIMIT_CORE, 0}, {RLIMIT_FSIZE, J.o.fsize}, {RLIMIT_NPROC, JAIL_PIDS_MAX}};
	for (size_t i = 0; i < ARRAY_SIZE(lim); i++) {
		if (lim[i].res == RLIMIT_NPROC && !J.o.have_uid)
			continue; /* per uid: only meaningful for the jail's own uid */
		struct rlimit r = {lim[i].v, lim[i].v};
		if (setrlimit(lim[i].res, &r) < 0)
			return silo_fail(err, SILO_ERR_INTERNAL, errno, "jail: setrlimit");
	}
	/* a write past RLIMIT_FSIZE must fail with EFBIG, not kill the VMM */
	signal(SIGXFSZ, SIG_IGN);
	return 0;
}

static int drop_privileges(silo_error *err)
{
	if (J.o.have_uid) {
		/* raw syscalls: glibc's setxid would signal threads (there are none, but its
		 * machinery is more than this needs) */
		if (syscall(SYS_setgroups, 0, NULL) < 0 || syscall(SYS_setresgid, J.o.gid, J.o.gid, J.o.gid) < 0 ||
		    syscall(SYS_setresuid, J.o.uid, J.o.uid, J.o.uid) < 0)
			return silo_fail(err, SILO_ERR_INTERNAL, errno, "jail: become uid %u gid %u", (unsigned)J.o.uid,
					 (unsigned)J.o.gid);
	}
	if (jail_drop_caps(err) < 0)
		return -1;
	/* a credential change resets the parent-death signal; and the relay may have died
	 * before it was set again: its pipe then reads EOF */
	struct pollfd p = {.fd = J.ready_rd, .events = POLLIN};
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || poll(&p, 1, 0) != 0)
		return silo_fail(err, SILO_ERR_INTERNAL, ESRCH, "jail: the relay process is gone");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "jail: no_new_privs");
	return 0;
}

/* After no_new_privs: the VMM may neither connect to an abstract unix socket nor signal a
 * process outside itself (Landlock scopes, ABI 6). */
static int landlock_scope(silo_error *err)
{
	if (J.net != NET_LANDLOCK)
		return 0;
	struct jail_landlock_attr a = {.scoped = JAIL_LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | JAIL_LANDLOCK_SCOPE_SIGNAL};
	int fd = (int)syscall(SYS_landlock_create_ruleset, &a, sizeof a, 0);
	if (fd < 0 || syscall(SYS_landlock_restrict_self, fd, 0) < 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, e, "jail: Landlock scopes");
	}
	close(fd);
	return 0;
}

static int install_seccomp(silo_error *err)
{
	struct sock_fprog prog = {.len = (unsigned short)ARRAY_SIZE(vmm_seccomp_bpf),
				  .filter = (struct sock_filter *)vmm_seccomp_bpf};
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "jail: seccomp filter");
	return 0;
}

int jail_enter(silo_error *err)
{
	if (open_cgroup_roots(err) < 0 || open_netns(err) < 0 || enter_root(err) < 0)
		return -1;
	vmm_step("jail_pivot_root");
	/* the bounding set needs CAP_SETPCAP: cleared while we still have it. The cgroup and
	 * network namespace joins go on while the child detaches the old root (neither
	 * depends on the root: both through descriptors opened before pivot_root); the wait
	 * for the detach comes right before the privileges are dropped, as before. */
	if (set_limits(err) < 0 || jail_clear_bounding(err) < 0 || join_cgroup(err) < 0)
		return -1;
	vmm_step("jail_cgroup");
	if (wait_relay('n', err) < 0 || join_netns(err) < 0 || finish_root(err) < 0)
		return -1;
	vmm_step("jail_root_detached");
	if (drop_privileges(err) < 0 || landlock_scope(err) < 0)
		return -1;
	vmm_step("jail_uid_caps");
	if (install_seccomp(err) < 0)
		return -1;
	vmm_step("jail_seccomp");
	return 0;
}
