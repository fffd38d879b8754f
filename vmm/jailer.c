/* SPDX-License-Identifier: Apache-2.0
 * silo-jailer: runs one program (QEMU, for the qemu provider) the way Firecracker's
 * jailer runs its VMM. docs/providers.md ("qemu: the jail") describes the whole setup.
 *
 *   silo-jailer --id ID --root DIR [--uid N --gid N [--group N]...]
 *               [--ro SRC DST]... [--dev SRC DST]... [--keep-fd N]... [--hold-fd N]
 *               [--log FDS:MAX:FILE]... [--memory-mib N] [--cpus N] [--pids N]
 *               [--nofile N] [--nproc N] [--fsize BYTES] -- PROGRAM [ARG]...
 *
 * Fixed order:
 *   relay (this process):  cgroup silo/ID -> log files and pipes -> fork
 *   child: PDEATHSIG -> join the cgroup -> unshare(mnt, net, ipc, uts; + user when not
 *          root) -> / private -> tmpfs on DIR -> mount points -> read-only binds (--ro)
 *          -> the whole tree read-only, nosuid, nodev, noexec for the tmpfs (mount_setattr)
 *          -> device binds (--dev) -> pivot_root -> fds (0 = /dev/null, the log pipes on
 *          their numbers, --keep-fd; everything else closed) -> rlimits -> bounding set
 *          cleared -> groups, gid, uid -> capabilities cleared -> PDEATHSIG again (a
 *          credential change resets it) -> no_new_privs -> seccomp (jailer_filter below)
 *          -> execve(PROGRAM) with an empty environment
 *   relay: drains each --log pipe into its file, capped at MAX bytes keeping the tail
 *          (logcap.h); forwards SIGTERM/SIGINT/SIGHUP; when the program exits, removes the
 *          cgroup and exits with its status (128+N for signal N).
 * The relay keeps --hold-fd open for its lifetime (the provider's uid lease) and never
 * passes it on. Nothing the child mounts exists outside its mount namespace, so nothing
 * is left on the host when it exits; the run directory and the cgroup are the caller's
 * and the relay's to remove.
 * Errors before execve are printed to fd 2 of the child (normally a --log pipe) as
 * "silo-jailer: step: reason" and end the child with status 127.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <linux/mount.h>
#include <poll.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <grp.h>

#include "common/sigset.h"
#include "common/util.h"
#include "logcap.h"
#include "providers/ns.h"
#include "vmm.h"

#define MAX_BINDS 192
#define MAX_LOGS 4
#define MAX_FDS 16
#define MAX_GROUPS 4
#define FD_FLOOR 64 /* the relay's own fds live at or above this: never a child's target number */

typedef struct jbind {
	const char *src, *dst;
	bool dev;
} jbind;

typedef struct jlog {
	int targets[3], ntargets;
	uint64_t max;
	const char *path;
	int rd, wr;   /* pipe */
	logcap lc;
	bool open;    /* read end still open */
} jlog;

static struct {
	const char *id, *root;
	bool have_uid;
	uid_t uid;
	gid_t gid;
	gid_t groups[MAX_GROUPS];
	int ngroups;
	jbind binds[MAX_BINDS];
	int nbinds;
	jlog logs[MAX_LOGS];
	int nlogs;
	int keep[MAX_FDS], nkeep;
	int hold_fd;
	uint64_t memory_mib, cpus, pids, nofile, nproc, fsize;
	char **argv;
} J = {.hold_fd = -1, .nofile = 1024};

static void usage(FILE *f)
{
	fputs("usage: silo-jailer --id ID --root DIR [--uid N --gid N [--group N]...]\n"
	      "                   [--ro SRC DST]... [--dev SRC DST]... [--keep-fd N]... [--hold-fd N]\n"
	      "                   [--log FDS:MAX:FILE]... [--memory-mib N] [--cpus N] [--pids N]\n"
	      "                   [--nofile N] [--nproc N] [--fsize BYTES] -- PROGRAM [ARG]...\n"
	      "Runs PROGRAM as an unprivileged user in its own mount, network, IPC and UTS\n"
	      "namespaces with only the files named by --ro/--dev, no capabilities, no_new_privs,\n"
	      "a seccomp filter, rlimits and its own cgroup (docs/providers.md, \"qemu: the jail\").\n",
	      f);
}

static int num(const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (!*s || *end || errno || v < lo || v > hi || s[0] == '-') {
		fprintf(stderr, "silo-jailer: %s: \"%s\" is not a number in [%llu, %llu]\n", opt, s,
			(unsigned long long)lo, (unsigned long long)hi);
		return -1;
	}
	*out = v;
	return 0;
}

/* FDS:MAX:FILE, FDS = "1" or "1+2" (at most 3 numbers below FD_FLOOR). */
static int parse_log(const char *s)
{
	if (J.nlogs == MAX_LOGS) {
		fprintf(stderr, "silo-jailer: --log: at most %d\n", MAX_LOGS);
		return -1;
	}
	jlog *l = &J.logs[J.nlogs];
	const char *c1 = strchr(s, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	if (!c1 || !c2 || !c2[1] || c2[1] != '/') {
		fprintf(stderr, "silo-jailer: --log %s: expected FDS:MAX:/ABSOLUTE/FILE\n", s);
		return -1;
	}
	char fds[32], max[32];
	if ((size_t)(c1 - s) >= sizeof fds || (size_t)(c2 - c1 - 1) >= sizeof max) {
		fprintf(stderr, "silo-jailer: --log %s: malformed\n", s);
		return -1;
	}
	memcpy(fds, s, (size_t)(c1 - s));
	fds[c1 - s] = 0;
	memcpy(max, c1 + 1, (size_t)(c2 - c1 - 1));
	max[c2 - c1 - 1] = 0;
	char *save = NULL;
	for (char *t = strtok_r(fds, "+", &save); t; t = strtok_r(NULL, "+", &save)) {
		uint64_t v;
		if (l->ntargets == 3 || num("--log FDS", t, 0, FD_FLOOR - 1, &v) < 0)
			return -1;
		l->targets[l->ntargets++] = (int)v;
	}
	uint64_t m;
	if (!l->ntargets || num("--log MAX", max, LOGCAP_MIN, 1ull << 40, &m) < 0)
		return -1;
	l->max = m;
	l->path = c2 + 1;
	l->rd = l->wr = -1;
	J.nlogs++;
	return 0;
}

/* ------------------------------------------------------------------ child */

static void child_fail(const char *step, int e)
{
	dprintf(2, "silo-jailer: %s: %s\n", step, strerror(e));
	_exit(127);
}

static void child_fail_err(const silo_error *err)
{
	char buf[600];
	dprintf(2, "silo-jailer: %s\n", silo_error_str(err, buf, sizeof buf));
	_exit(127);
}

static void write_file_or_die(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, val, strlen(val)) != (ssize_t)strlen(val))
		child_fail(path, errno);
	close(fd);
}

/* mkdir -p for the parents of path (inside the jail's tmpfs), then the mount point itself. */
static void make_mountpoint(const char *path, bool dir)
{
	char p[PATH_MAX];
	if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p)
		child_fail("mount point path", ENAMETOOLONG);
	for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = 0;
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			child_fail(p, errno);
		*s = '/';
	}
	if (dir) {
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			child_fail(p, errno);
	} else {
		int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0444);
		if (fd < 0)
			child_fail(p, errno);
		close(fd);
	}
}

/* Read-only, nosuid, nodev for the whole tree below the jail root (one syscall on
 * kernels with mount_setattr, else one remount per mount). */
static void seal_tree(const char *root)
{
#ifdef SYS_mount_setattr
	struct mount_attr a = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
	if (syscall(SYS_mount_setattr, AT_FDCWD, root, AT_RECURSIVE, &a, sizeof a) == 0)
		return;
	if (errno != ENOSYS)
		child_fail("mount_setattr (read-only jail tree)", errno);
#endif
	for (int i = 0; i < J.nbinds; i++) {
		if (J.binds[i].dev)
			continue;
		char p[PATH_MAX];
		snprintf(p, sizeof p, "%s%s", root, J.binds[i].dst);
		if (mount(NULL, p, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
			child_fail(p, errno);
	}
	if (mount(NULL, root, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		child_fail("remount the jail root read-only", errno);
}

static void build_root(void)
{
	const char *root = J.root;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		child_fail("make / private", errno);
	/* 1 MiB is plenty for directories and empty mount-point files; noexec: nothing
	 * on it runs (the program and its libraries are their own bind mounts). */
	if (mount("silo-jail", root, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=1m,nr_inodes=4096,mode=0755") < 0)
		child_fail("tmpfs on the jail root", errno);
	char p[PATH_MAX];
	for (int i = 0; i < J.nbinds; i++) {
		struct stat st;
		if (stat(J.binds[i].src, &st) < 0)
			child_fail(J.binds[i].src, errno);
		if (J.binds[i].dev ? !S_ISCHR(st.st_mode) : !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
			child_fail(J.binds[i].src, J.binds[i].dev ? ENODEV : EINVAL);
		if (snprintf(p, sizeof p, "%s%s", root, J.binds[i].dst) >= (int)sizeof p)
			child_fail(J.binds[i].dst, ENAMETOOLONG);
		make_mountpoint(p, S_ISDIR(st.st_mode));
		if (!J.binds[i].dev && mount(J.binds[i].src, p, NULL, MS_BIND, NULL) < 0)
			child_fail(J.binds[i].src, errno);
	}
	seal_tree(root);
	for (int i = 0; i < J.nbinds; i++) {
		if (!J.binds[i].dev)
			continue;
		snprintf(p, sizeof p, "%s%s", root, J.binds[i].dst);
		if (mount(J.binds[i].src, p, NULL, MS_BIND, NULL) < 0 ||
		    mount(NULL, p, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL) < 0)
			child_fail(J.binds[i].src, errno);
	}
	silo_error err = {0};
	if (jail_pivot_root(root, &err) < 0)
		child_fail_err(&err);
}

/* Put the log pipes and the kept fds on their numbers; close everything else. */
static void arrange_fds(int devnull)
{
	bool keep[FD_FLOOR] = {false};
	if (dup2(devnull, 0) < 0)
		child_fail("stdin", errno);
	keep[0] = true;
	for (int i = 0; i < J.nlogs; i++)
		for (int t = 0; t < J.logs[i].ntargets; t++) {
			if (dup2(J.logs[i].wr, J.logs[i].targets[t]) < 0)
				child_fail("log fd", errno);
			keep[J.logs[i].targets[t]] = true;
		}
	for (int i = 0; i < J.nkeep; i++) {
		int fl = fcntl(J.keep[i], F_GETFD);
		if (fl < 0 || fcntl(J.keep[i], F_SETFD, fl & ~FD_CLOEXEC) < 0)
			child_fail("--keep-fd", errno);
		keep[J.keep[i]] = true;
	}
	/* 1 and 2 stay as they are unless a --log took them */
	keep[1] = keep[2] = true;
	for (int fd = 3; fd < FD_FLOOR; fd++)
		if (!keep[fd])
			close(fd);
	if (syscall(SYS_close_range, FD_FLOOR, ~0u, 0) < 0)
		for (int fd = FD_FLOOR; fd < 4096; fd++)
			close(fd);
}

static void set_limits(void)
{
	struct {
		int res;
		uint64_t v;
	} lim[] = {{RLIMIT_NOFILE, J.nofile}, {RLIMIT_CORE, 0}, {RLIMIT_NPROC, J.nproc}, {RLIMIT_FSIZE, J.fsize}};
	for (size_t i = 0; i < ARRAY_SIZE(lim); i++) {
		if (!lim[i].v && lim[i].res != RLIMIT_CORE)
			continue;
		struct rlimit cur, r = {lim[i].v, lim[i].v};
		/* without privileges a hard limit can only go down */
		if (geteuid() != 0 && getrlimit(lim[i].res, &cur) == 0 && cur.rlim_max != RLIM_INFINITY &&
		    r.rlim_max > cur.rlim_max)
			r.rlim_cur = r.rlim_max = cur.rlim_max;
		if (setrlimit(lim[i].res, &r) < 0)
			child_fail("setrlimit", errno);
	}
	/* a write past RLIMIT_FSIZE must fail with EFBIG, not kill the VMM */
	signal(SIGXFSZ, SIG_IGN);
}

/* What the jailed program may never do, on top of its own filter (QEMU's -sandbox):
 * every row of the namespace provider's reviewed deny-list (ns-seccomp-deny.h: kernel
 * loading, bpf, keyrings, ptrace, the mount API, unshare/setns, io_uring, ...) -> EPERM;
 * clone with namespace flags -> EPERM, clone3 -> ENOSYS (libc falls back to clone);
 * sockets of any family but AF_UNIX -> EAFNOSUPPORT (its only sockets are the
 * unix sockets it was handed); signals and pidfds aimed at any process but itself -> EPERM. */
static int jailer_filter(pid_t self)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return -ENOMEM;
	int rc = 0;
#define R(expr)                                               \
	do {                                                  \
		rc = (expr);                                  \
		if (rc < 0 && rc != -EEXIST && rc != -EDOM) \
			goto out;                             \
	} while (0)
	R(seccomp_arch_add(ctx, SCMP_ARCH_X86));
	R(seccomp_arch_add(ctx, SCMP_ARCH_X32));
	for (size_t i = 0; i < ns_seccomp_deny_count; i++) {
		int nr = seccomp_syscall_resolve_name(ns_seccomp_deny[i].name);
		if (nr != __NR_SCMP_ERROR)
			R(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0));
	}
	static const unsigned long ns_flags[] = {CLONE_NEWUSER, CLONE_NEWNS,  CLONE_NEWPID,    CLONE_NEWNET,
						 CLONE_NEWIPC,  CLONE_NEWUTS, CLONE_NEWCGROUP, CLONE_NEWTIME};
	for (size_t i = 0; i < ARRAY_SIZE(ns_flags); i++)
		R(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
				   SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i])));
	R(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0));
	R(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_NE, AF_UNIX)));
	R(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socketpair), 1,
			   SCMP_A0(SCMP_CMP_NE, AF_UNIX)));
	R(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socketcall), 0));
	static const int to_self[] = {SCMP_SYS(kill), SCMP_SYS(tgkill), SCMP_SYS(rt_sigqueueinfo),
				      SCMP_SYS(rt_tgsigqueueinfo)};
	for (size_t i = 0; i < ARRAY_SIZE(to_self); i++)
		R(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), to_self[i], 1,
				   SCMP_A0(SCMP_CMP_NE, (scmp_datum_t)self)));
	static const int never[] = {SCMP_SYS(tkill), SCMP_SYS(pidfd_open), SCMP_SYS(pidfd_send_signal),
				    SCMP_SYS(pidfd_getfd)};
	for (size_t i = 0; i < ARRAY_SIZE(never); i++)
		R(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), never[i], 0));
#undef R
	rc = seccomp_load(ctx);
out:
	seccomp_release(ctx);
	return rc;
}

static void drop_privileges(pid_t relay)
{
	silo_error err = {0};
	bool root = geteuid() == 0;
	/* the bounding set needs CAP_SETPCAP: clear it while we still have it */
	if (jail_clear_bounding(&err) < 0)
		child_fail_err(&err);
	if (root && J.have_uid) {
		if (setgroups((size_t)J.ngroups, J.groups) < 0)
			child_fail("setgroups", errno);
		if (setresgid(J.gid, J.gid, J.gid) < 0)
			child_fail("setresgid", errno);
		if (setresuid(J.uid, J.uid, J.uid) < 0)
			child_fail("setresuid", errno);
	}
	if (jail_drop_caps(&err) < 0)
		child_fail_err(&err);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != relay)
		child_fail("parent-death signal (the relay is gone)", ESRCH);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail("no_new_privs", errno);
	int rc = jailer_filter(getpid());
	if (rc < 0)
		child_fail("seccomp", -rc);
}

static void enter_namespaces(void)
{
	int flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
	if (geteuid() == 0) {
		if (unshare(flags) < 0)
			child_fail("unshare(mount, net, ipc, uts)", errno);
		return;
	}
	/* Not root: a user namespace that maps only our own ids gives the mount rights and
	 * nothing else; after execve the program has no capabilities in it either. */
	uid_t u = getuid();
	gid_t g = getgid();
	if (unshare(flags | CLONE_NEWUSER) < 0)
		child_fail("unshare(user, mount, net, ipc, uts)", errno);
	char m[64];
	write_file_or_die("/proc/self/setgroups", "deny");
	snprintf(m, sizeof m, "%u %u 1\n", (unsigned)u, (unsigned)u);
	write_file_or_die("/proc/self/uid_map", m);
	snprintf(m, sizeof m, "%u %u 1\n", (unsigned)g, (unsigned)g);
	write_file_or_die("/proc/self/gid_map", m);
}

static __attribute__((noreturn)) void child_main(pid_t relay, const cg_set *cg, int devnull)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != relay)
		_exit(127);
	/* the log pipes first, so every later error reaches the log */
	for (int i = 0; i < J.nlogs; i++)
		for (int t = 0; t < J.logs[i].ntargets; t++)
			if (J.logs[i].targets[t] == 2)
				dup2(J.logs[i].wr, 2);
	for (int i = 0; cg && i < cg->n; i++)
		write_file_or_die(cg->procs[i], "0");
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	static const int defaults[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGPIPE};
	for (size_t i = 0; i < ARRAY_SIZE(defaults); i++)
		signal(defaults[i], SIG_DFL);
	enter_namespaces();
	build_root();
	arrange_fds(devnull);
	set_limits();
	drop_privileges(relay);
	char *envp[] = {NULL};
	execve(J.argv[0], J.argv, envp);
	child_fail(J.argv[0], errno);
	_exit(127);
}

/* ------------------------------------------------------------------ relay */

static int high_fd(int fd)
{
	if (fd < 0 || fd >= FD_FLOOR)
		return fd;
	int n = fcntl(fd, F_DUPFD_CLOEXEC, FD_FLOOR);
	close(fd);
	return n;
}

static void drain(jlog *l)
{
	char buf[65536];
	for (;;) {
		ssize_t r = read(l->rd, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		if (r <= 0) {
			close(l->rd);
			l->open = false;
			return;
		}
		if (l->lc.fd >= 0 && logcap_write(&l->lc, buf, (size_t)r) < 0)
			l->lc.fd = -1; /* log gone (disk full...): keep draining so the program never blocks */
	}
}

static int relay_main(pid_t child, cg_set *cg, int sfd)
{
	int status = -1;
	for (;;) {
		struct pollfd p[MAX_LOGS + 1];
		int n = 0, map[MAX_LOGS];
		for (int i = 0; i < J.nlogs; i++)
			if (J.logs[i].open) {
				map[n] = i;
				p[n++] = (struct pollfd){.fd = J.logs[i].rd, .events = POLLIN};
			}
		p[n] = (struct pollfd){.fd = sfd, .events = POLLIN};
		if (status >= 0 && n == 0)
			break;
		if (poll(p, (nfds_t)n + 1, status >= 0 ? 2000 : -1) == 0)
			break; /* the program is gone and its pipes stay quiet: someone else holds them */
		for (int i = 0; i < n; i++)
			if (p[i].revents)
				drain(&J.logs[map[i]]);
		if (p[n].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof si) == sizeof si) {
				if (si.ssi_signo != SIGCHLD) {
					kill(child, (int)si.ssi_signo);
					continue;
				}
				int st;
				if (status < 0 && waitpid(child, &st, WNOHANG) == child)
					status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			}
		}
	}
	if (cg && cg->n && cg_remove(cg) < 0)
		fprintf(stderr, "silo-jailer: cgroup %s could not be removed\n", cg->path[0]);
	return status < 0 ? 1 : status;
}

int main(int argc, char **argv)
{
	enum { O_ID = 256, O_ROOT, O_UID, O_GID, O_GROUP, O_RO, O_DEV, O_KEEP, O_HOLD, O_LOG, O_MEM, O_CPUS, O_PIDS,
	       O_NOFILE, O_NPROC, O_FSIZE };
	/* the numeric limits: option, range, where the value goes */
	static const struct {
		int opt;
		const char *name;
		uint64_t lo, hi;
		uint64_t *dst;
	} limit_opts[] = {
		{O_MEM, "--memory-mib", 16, 1u << 22, &J.memory_mib}, {O_CPUS, "--cpus", 1, 1024, &J.cpus},
		{O_PIDS, "--pids", 8, 1u << 22, &J.pids},             {O_NOFILE, "--nofile", 64, 1u << 20, &J.nofile},
		{O_NPROC, "--nproc", 8, 1u << 22, &J.nproc},          {O_FSIZE, "--fsize", 1u << 20, 1ull << 50, &J.fsize},
	};
	static const struct option opts[] = {
		{"id", required_argument, NULL, O_ID},         {"root", required_argument, NULL, O_ROOT},
		{"uid", required_argument, NULL, O_UID},       {"gid", required_argument, NULL, O_GID},
		{"group", required_argument, NULL, O_GROUP},   {"ro", required_argument, NULL, O_RO},
		{"dev", required_argument, NULL, O_DEV},       {"keep-fd", required_argument, NULL, O_KEEP},
		{"hold-fd", required_argument, NULL, O_HOLD},  {"log", required_argument, NULL, O_LOG},
		{"memory-mib", required_argument, NULL, O_MEM}, {"cpus", required_argument, NULL, O_CPUS},
		{"pids", required_argument, NULL, O_PIDS},     {"nofile", required_argument, NULL, O_NOFILE},
		{"nproc", required_argument, NULL, O_NPROC},   {"fsize", required_argument, NULL, O_FSIZE},
		{"help", no_argument, NULL, 'h'},              {NULL, 0, NULL, 0},
	};
	int o;
	uint64_t v;
	bool have_gid = false;
	while ((o = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (o) {
		case O_ID:
			if (!*optarg || strlen(optarg) > 64 || strchr(optarg, '/') || optarg[0] == '.') {
				fprintf(stderr, "silo-jailer: --id: 1 to 64 bytes, no '/', not starting with '.'\n");
				return 2;
			}
			J.id = optarg;
			break;
		case O_ROOT: J.root = optarg; break;
		case O_UID:
			if (num("--uid", optarg, 1, 0xfffffffe, &v) < 0)
				return 2;
			J.uid = (uid_t)v, J.have_uid = true;
			break;
		case O_GID:
			if (num("--gid", optarg, 1, 0xfffffffe, &v) < 0)
				return 2;
			J.gid = (gid_t)v, have_gid = true;
			break;
		case O_GROUP:
			if (J.ngroups == MAX_GROUPS || num("--group", optarg, 1, 0xfffffffe, &v) < 0)
				return 2;
			J.groups[J.ngroups++] = (gid_t)v;
			break;
		case O_RO:
		case O_DEV:
			/* two arguments: SRC DST */
			if (optind >= argc || J.nbinds == MAX_BINDS || optarg[0] != '/' || argv[optind][0] != '/' ||
			    strstr(argv[optind], "/.") || strstr(argv[optind], "//") || !argv[optind][1]) {
				fprintf(stderr, "silo-jailer: --%s SRC DST: two absolute paths, DST without \".\" components, "
						"\"//\" or \"/\" itself (at most %d binds)\n",
					o == O_RO ? "ro" : "dev", MAX_BINDS);
				return 2;
			}
			J.binds[J.nbinds++] = (jbind){.src = optarg, .dst = argv[optind++], .dev = o == O_DEV};
			break;
		case O_KEEP:
			if (J.nkeep == MAX_FDS || num("--keep-fd", optarg, 3, FD_FLOOR - 1, &v) < 0)
				return 2;
			J.keep[J.nkeep++] = (int)v;
			break;
		case O_HOLD:
			if (num("--hold-fd", optarg, 3, 1u << 20, &v) < 0)
				return 2;
			J.hold_fd = (int)v;
			break;
		case O_LOG:
			if (parse_log(optarg) < 0)
				return 2;
			break;
		case 'h': usage(stdout); return 0;
		default: {
			size_t i = 0;
			while (i < sizeof limit_opts / sizeof limit_opts[0] && limit_opts[i].opt != o)
				i++;
			if (i == sizeof limit_opts / sizeof limit_opts[0]) {
				usage(stderr);
				return 2;
			}
			if (num(limit_opts[i].name, optarg, limit_opts[i].lo, limit_opts[i].hi, limit_opts[i].dst) < 0)
				return 2;
			break;
		}
		}
	}
	if (!J.id || !J.root || J.root[0] != '/' || optind >= argc || argv[optind][0] != '/') {
		fprintf(stderr, "silo-jailer: --id, an absolute --root and an absolute PROGRAM are required\n");
		usage(stderr);
		return 2;
	}
	if (geteuid() == 0 && (!J.have_uid || !have_gid)) {
		fprintf(stderr, "silo-jailer: as root, --uid and --gid are required (the program never runs as root)\n");
		return 2;
	}
	J.argv = argv + optind;
	for (int i = 0; i < J.nkeep; i++)
		for (int l = 0; l < J.nlogs; l++)
			for (int t = 0; t < J.logs[l].ntargets; t++)
				if (J.keep[i] == J.logs[l].targets[t]) {
					fprintf(stderr, "silo-jailer: fd %d is both --keep-fd and a --log target\n", J.keep[i]);
					return 2;
				}

	/* The cgroup first: nothing to undo if it fails. */
	cg_set cg = {0};
	silo_error err = {0};
	char ebuf[600];
	if (geteuid() == 0 && (J.memory_mib || J.cpus || J.pids)) {
		cg_limits lim = {.memory_bytes = J.memory_mib << 20, .cpu_millis = (uint32_t)(J.cpus * 1000),
				 .pids_max = (uint32_t)J.pids};
		if (cg_create(J.id, &lim, &cg, &err) < 0) {
			fprintf(stderr, "silo-jailer: cgroup: %s\n", silo_error_str(&err, ebuf, sizeof ebuf));
			return 1;
		}
	}
	int devnull = high_fd(open("/dev/null", O_RDWR | O_CLOEXEC));
	for (int i = 0; i < J.nlogs; i++) {
		jlog *l = &J.logs[i];
		int fd = high_fd(open(l->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640));
		int pfd[2];
		if (fd < 0 || pipe2(pfd, O_CLOEXEC) < 0) {
			fprintf(stderr, "silo-jailer: --log %s: %s\n", l->path, strerror(errno));
			cg_remove(&cg);
			return 1;
		}
		logcap_init(&l->lc, fd, l->max);
		l->rd = high_fd(pfd[0]);
		l->wr = high_fd(pfd[1]);
		fcntl(l->rd, F_SETFL, O_NONBLOCK);
		fcntl(l->rd, F_SETPIPE_SZ, 1 << 20);
		l->open = true;
	}
	sigset_t s = sigset_of(SIGCHLD, SIGTERM, SIGINT, SIGHUP, 0);
	sigprocmask(SIG_BLOCK, &s, NULL);
	signal(SIGPIPE, SIG_IGN);
	int sfd = high_fd(signalfd(-1, &s, SFD_CLOEXEC | SFD_NONBLOCK));
	if (sfd < 0 || devnull < 0) {
		fprintf(stderr, "silo-jailer: signalfd or /dev/null: %s\n", strerror(errno));
		cg_remove(&cg);
		return 1;
	}
	pid_t relay = getpid();
	pid_t child = fork();
	if (child < 0) {
		fprintf(stderr, "silo-jailer: fork: %s\n", strerror(errno));
		cg_remove(&cg);
		return 1;
	}
	if (child == 0) {
		if (J.hold_fd >= 0)
			close(J.hold_fd);
		close(sfd);
		child_main(relay, cg.n ? &cg : NULL, devnull);
	}
	/* The relay keeps only its ends: the kept fds belong to the program now. */
	for (int i = 0; i < J.nlogs; i++)
		close(J.logs[i].wr);
	for (int i = 0; i < J.nkeep; i++)
		close(J.keep[i]);
	close(devnull);
	return relay_main(child, &cg, sfd);
}
