/* SPDX-License-Identifier: Apache-2.0
 * namespace provider: silo-agent as PID 1 of a fresh set of Linux namespaces
 * (mount, pid, net, ipc, uts, cgroup; + user when not root) on an overlayfs
 * root, with cgroup limits, a seccomp deny-list, a bounded capability set and
 * no_new_privs. Weaker isolation than a VM (shared host kernel); the fallback
 * of last resort. docs/providers.md ("namespace") has the details.
 *
 * Jail order in the child (fixed): wait for the uid map -> private mounts ->
 * overlay root -> /proc /sys /dev /dev/pts /dev/shm /tmp -> hostname -> lo up ->
 * pivot_root -> fds -> capabilities -> no_new_privs -> seccomp -> exec agent.
 *
 * The namespace init is double-forked and setsid()ed: it is not our child and
 * survives the manager (silod restart); its pid and start time are recorded
 * in RUNDIR/pid for reattach.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <limits.h>
#include <linux/close_range.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "core/channel.h"
#include "core/provider.h"
#include "core/sandbox.h"
#include "providers/ns.h"
#include "snapshot/snapshot.h"
#include "trust/trust.h"

/* Weak: usable before lib/core/channel.c is in the same library. */
extern bool chan_is_connected(chan *c) __attribute__((weak));
extern int chan_shutdown(chan *c, silo_error *err) __attribute__((weak));

#define NS_DEFAULT_PIDS 1024
#define NS_SETUP_TIMEOUT_MS 10000
#define AGENT_FD 3

typedef struct ns_state {
	ns_cgroup cg;
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	unsigned long long starttime;
	int err_fd;             /* setup error pipe (read end), -1 after reattach */
} ns_state;

/* Capabilities kept in the bounding set (Docker's default set minus
 * NET_RAW and MKNOD: no raw sockets, no device nodes). */
static const int keep_caps[] = {
	CAP_CHOWN,  CAP_DAC_OVERRIDE, CAP_FOWNER,     CAP_FSETID,           CAP_KILL,
	CAP_SETGID, CAP_SETUID,       CAP_SETPCAP,    CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT,
	CAP_SETFCAP, CAP_AUDIT_WRITE,
};

static const char *const dev_nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};

/* ---- async-signal-safe string helpers for the forked children ----
 * The children are forked from a possibly multi-threaded process (silod):
 * another thread may have held a lock (malloc, stdio, locale) at fork, so the
 * children use only syscalls and these lock-free helpers: no malloc, no
 * snprintf, no strerror. */

static size_t s_cat(char *dst, size_t n, size_t at, const char *src)
{
	size_t l = strlen(src);
	if (at >= n)
		return at;
	if (l > n - 1 - at)
		l = n - 1 - at;
	memcpy(dst + at, src, l);
	dst[at + l] = '\0';
	return at + l;
}

/* dst = a "/" b [ "/" c ]; dst must not alias the inputs. */
static void s_join3(char *dst, size_t n, const char *a, const char *b, const char *c)
{
	dst[0] = '\0';
	size_t at = s_cat(dst, n, 0, a);
	at = s_cat(dst, n, at, "/");
	at = s_cat(dst, n, at, b);
	if (c) {
		at = s_cat(dst, n, at, "/");
		s_cat(dst, n, at, c);
	}
}

static void s_join(char *dst, size_t n, const char *a, const char *b)
{
	s_join3(dst, n, a, b, NULL);
}

static void s_uint(char *dst, size_t n, unsigned long v)
{
	char tmp[24];
	size_t i = 0;
	do {
		tmp[i++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && i < sizeof tmp);
	size_t j = 0;
	while (i && j + 1 < n)
		dst[j++] = tmp[--i];
	dst[j] = '\0';
}

/* ---- /proc helpers ---- */

/* state char and start time of pid; -1 if gone. */
static int proc_stat(pid_t pid, char *state, unsigned long long *start)
{
	char p[64], buf[1024];
	snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *r = strrchr(buf, ')');
	if (!r || r[1] != ' ')
		return -1;
	*state = r[2];
	/* fields after ')': 3=state ... 22=starttime */
	char *s = r + 2;
	int field = 3;
	while (*s && field < 22) {
		if (*s++ == ' ')
			field++;
	}
	*start = strtoull(s, NULL, 10);
	return 0;
}

static bool pid_alive(pid_t pid, unsigned long long start)
{
	if (pid <= 0)
		return false;
	int st;
	waitpid(pid, &st, WNOHANG);   /* in case we are its reaper (subreaper setups) */
	char state;
	unsigned long long s;
	if (proc_stat(pid, &state, &s) < 0)
		return false;
	if (start && s != start)
		return false;   /* pid reused */
	return state != 'Z' && state != 'X';
}

static bool wait_gone(pid_t pid, unsigned long long start, int ms)
{
	uint64_t end = now_mono_ns() + (uint64_t)ms * 1000000ull;
	while (pid_alive(pid, start)) {
		if (now_mono_ns() >= end)
			return false;
		struct timespec ts = {0, 2 * 1000000L};
		nanosleep(&ts, NULL);
	}
	return true;
}

/* ---- the child ---- */

typedef struct child_args {
	char merged[PATH_MAX];
	char overlay_opts[3 * PATH_MAX + 64];
	char hostname[64];
	char procs[NS_CG_MAX][PATH_MAX];
	int ncg;
	int listen_fd;
	int err_fd;          /* write end, CLOEXEC */
	int sync_fd;         /* read end: EOF once the uid map is written */
	bool userns;
	const ns_bpf *bpf;   /* compiled in the parent */
} child_args;

__attribute__((noreturn)) static void child_fail(const child_args *a, const char *step)
{
	char msg[512], num[24];
	int e = errno;
	const char *d = strerrordesc_np(e);
	msg[0] = '\0';
	size_t at = s_cat(msg, sizeof msg, 0, step);
	at = s_cat(msg, sizeof msg, at, ": ");
	if (d) {
		at = s_cat(msg, sizeof msg, at, d);
	} else {
		s_uint(num, sizeof num, (unsigned long)e);
		at = s_cat(msg, sizeof msg, at, "errno ");
		at = s_cat(msg, sizeof msg, at, num);
	}
	(void)!write(a->err_fd, msg, at);
	_exit(127);
}

static int mnt_at(const child_args *a, const char *src, const char *rel, const char *type,
		  unsigned long flags, const char *data)
{
	char p[PATH_MAX + 32];
	s_join(p, sizeof p, a->merged, rel);
	return mount(src, p, type, flags, data);
}

static void lo_up(const child_args *a)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		child_fail(a, "socket for lo");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	memcpy(ifr.ifr_name, "lo", 3);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		child_fail(a, "SIOCGIFFLAGS lo");
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		child_fail(a, "bring lo up");
	close(s);
}

static void drop_caps(const child_args *a)
{
	uint64_t keep = 0;
	for (size_t i = 0; i < ARRAY_SIZE(keep_caps); i++)
		keep |= 1ull << keep_caps[i];
	for (int c = 0; c <= 63; c++) {
		if (keep & (1ull << c))
			continue;
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
			child_fail(a, "drop capability from the bounding set");
	}
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof d);
	if (syscall(SYS_capget, &h, d) < 0)
		child_fail(a, "capget");
	for (int i = 0; i < 2; i++) {
		uint32_t k = (uint32_t)(keep >> (32 * i));
		d[i].effective &= k;
		d[i].permitted &= k;
		d[i].inheritable = 0;
	}
	if (syscall(SYS_capset, &h, d) < 0)
		child_fail(a, "capset");
}

__attribute__((noreturn)) static void child_main(const child_args *a)
{
	/* Wait for the go byte: the intermediate writes it once our uid/gid maps
	 * are in place. A byte, not EOF: a sibling spawned by another thread at the
	 * same moment may hold a copy of the write end until it execs, and waiting
	 * for EOF would make concurrent spawns wait on each other. */
	char c = 0;
	ssize_t r;
	while ((r = read(a->sync_fd, &c, 1)) < 0 && errno == EINTR)
		;
	if (r != 1)
		_exit(126);   /* the intermediate died: nobody to report to */
	close(a->sync_fd);
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signal(SIGPIPE, SIG_DFL);

	if (a->userns && (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0))
		child_fail(a, "become root in the user namespace");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		child_fail(a, "make mounts private");
	if (mount("overlay", a->merged, "overlay", MS_NOSUID, a->overlay_opts) < 0)
		child_fail(a, "mount overlay root");
	if (mnt_at(a, "proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		child_fail(a, "mount /proc");
	if (mnt_at(a, "sysfs", "sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL) < 0)
		child_fail(a, "mount /sys");
	if (mnt_at(a, "tmpfs", "dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k") < 0)
		child_fail(a, "mount /dev");
	char p[PATH_MAX + 64], host[64];
	for (size_t i = 0; i < ARRAY_SIZE(dev_nodes); i++) {
		s_join3(p, sizeof p, a->merged, "dev", dev_nodes[i]);
		int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
		if (fd < 0)
			child_fail(a, "create a /dev node mount point");
		close(fd);
		s_join(host, sizeof host, "/dev", dev_nodes[i]);
		if (mount(host, p, NULL, MS_BIND, NULL) < 0)
			child_fail(a, "bind a /dev node");
	}
	s_join(p, sizeof p, a->merged, "dev/pts");
	mkdir(p, 0755);
	if (mount("devpts", p, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620") < 0)
		child_fail(a, "mount /dev/pts");
	s_join(p, sizeof p, a->merged, "dev/ptmx");
	if (symlink("pts/ptmx", p) < 0)
		child_fail(a, "symlink /dev/ptmx");
	static const char *const links[][2] = {
		{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(links); i++) {
		s_join3(p, sizeof p, a->merged, "dev", links[i][1]);
		(void)!symlink(links[i][0], p);
	}
	s_join(p, sizeof p, a->merged, "dev/shm");
	mkdir(p, 01777);
	if (mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0)
		child_fail(a, "mount /dev/shm");
	if (mnt_at(a, "tmpfs", "tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") < 0)
		child_fail(a, "mount /tmp");
	if (mnt_at(a, "tmpfs", "run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
		child_fail(a, "mount /run");
	if (sethostname(a->hostname, strlen(a->hostname)) < 0)
		child_fail(a, "sethostname");
	lo_up(a);
	if (chdir(a->merged) < 0)
		child_fail(a, "chdir to the new root");
	if (syscall(SYS_pivot_root, ".", ".oldroot") < 0)
		child_fail(a, "pivot_root");
	if (chdir("/") < 0)
		child_fail(a, "chdir /");
	if (umount2("/.oldroot", MNT_DETACH) < 0)
		child_fail(a, "detach the host root");

	/* fds: 0-2 /dev/null, AGENT_FD the listening socket, everything else closed at exec */
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul < 0)
		child_fail(a, "open /dev/null");
	int lfd = a->listen_fd;
	if (lfd != AGENT_FD) {
		if (dup2(lfd, AGENT_FD) < 0)
			child_fail(a, "dup2 the agent socket");
	} else if (fcntl(lfd, F_SETFD, 0) < 0) {
		child_fail(a, "clear FD_CLOEXEC on the agent socket");
	}
	for (int fd = 0; fd <= 2; fd++)
		if (dup2(nul, fd) < 0)
			child_fail(a, "dup2 /dev/null");
	/* Everything above AGENT_FD closes at exec (the error pipe must stay open
	 * until then). close_range needs Linux 5.11; fall back to a loop. */
	if (syscall(SYS_close_range, AGENT_FD + 1, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		for (int fd = AGENT_FD + 1; fd < 65536; fd++)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
	}

	drop_caps(a);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(a, "no_new_privs");
	int rc = ns_seccomp_apply(a->bpf);
	if (rc < 0) {
		errno = -rc;
		child_fail(a, "load the seccomp filter");
	}
	_Static_assert(AGENT_FD == 3, "argv below names fd 3");
	char *const argv[] = {"silo-agent", "--init", "--listen-fd", "3", NULL};
	char *const envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			      "HOME=/root", "TERM=xterm", "container=silo", NULL};
	char marker = 0;
	if (write(a->err_fd, &marker, 1) != 1)
		_exit(127);
	execve("/sbin/silo-agent", argv, envp);
	child_fail(a, "exec /sbin/silo-agent");
}

/* ---- spawn ---- */

static int write_map(pid_t pid, const char *file, const char *text)
{
	char p[64], num[24];
	s_uint(num, sizeof num, (unsigned long)pid);
	s_join3(p, sizeof p, "/proc", num, file);
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = write_all(fd, text, strlen(text));
	close(fd);
	return rc;
}

/* Right after fork, in the child: close every descriptor inherited from the
 * (multithreaded) parent but 0-2 and keep[]. Close-on-exec is not enough:
 * until the init execs the agent, its copies would keep other sandboxes'
 * agent sockets alive, and a concurrent delete of one of those finds its
 * socket "left behind" (CLEANUP_FAILED). Async-signal-safe. */
static void close_inherited(int *keep, int n)
{
	for (int i = 1; i < n; i++)   /* insertion sort: n is tiny */
		for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
			int t = keep[j];
			keep[j] = keep[j - 1];
			keep[j - 1] = t;
		}
	int from = 3;
	for (int i = 0; i <= n; i++) {
		int to = i < n ? keep[i] - 1 : INT_MAX;
		if (i < n && keep[i] < from)
			continue;
		if (to >= from && syscall(SYS_close_range, (unsigned)from, (unsigned)to, 0) < 0)
			for (int fd = from; fd <= to && fd < 65536; fd++)
				close(fd);
		if (i < n)
			from = keep[i] + 1;
	}
}

/* The intermediate process: new session, join the cgroups, clone the init,
 * map ids, report its pid, exit (so the init is nobody's child here). */
__attribute__((noreturn)) static void intermediate(child_args *a, int pid_wr, int sync_wr)
{
	int keep[] = {a->listen_fd, a->err_fd, a->sync_fd, pid_wr, sync_wr};
	close_inherited(keep, (int)(sizeof keep / sizeof keep[0]));
	setsid();
	char me[32];
	s_uint(me, sizeof me, (unsigned long)getpid());
	for (int i = 0; i < a->ncg; i++) {
		int fd = open(a->procs[i], O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write_all(fd, me, strlen(me)) < 0)
			child_fail(a, "join the sandbox cgroup");
		close(fd);
	}
	unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS |
			      CLONE_NEWCGROUP | (a->userns ? CLONE_NEWUSER : 0);
	long pid = syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
	if (pid < 0)
		child_fail(a, "clone the sandbox init");
	if (pid == 0) {
		close(pid_wr);
		close(sync_wr);
		child_main(a);
	}
	close(a->sync_fd);
	if (a->userns) {
		char map[64], gmap[64], num[24];
		s_uint(num, sizeof num, (unsigned long)getuid());
		map[0] = '\0';
		s_cat(map, sizeof map, s_cat(map, sizeof map, s_cat(map, sizeof map, 0, "0 "), num), " 1\n");
		s_uint(num, sizeof num, (unsigned long)getgid());
		gmap[0] = '\0';
		s_cat(gmap, sizeof gmap, s_cat(gmap, sizeof gmap, s_cat(gmap, sizeof gmap, 0, "0 "), num), " 1\n");
		if (write_map((pid_t)pid, "setgroups", "deny") < 0 || write_map((pid_t)pid, "uid_map", map) < 0 ||
		    write_map((pid_t)pid, "gid_map", gmap) < 0) {
			kill((pid_t)pid, SIGKILL);
			child_fail(a, "write the user namespace id maps");
		}
	}
	int32_t v = (int32_t)pid;
	(void)!write(pid_wr, &v, sizeof v);
	char go = 1;
	if (write(sync_wr, &go, 1) != 1) {   /* releases the init */
		kill((pid_t)pid, SIGKILL);
		child_fail(a, "release the sandbox init");
	}
	_exit(0);
}

static int listen_socket(const char *path, silo_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, ENAMETOOLONG, "namespace: socket path too long: %s",
				 path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "namespace: socket: %s", strerror(errno));
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || chmod(path, 0600) < 0 || listen(fd, 16) < 0) {
		int e = errno;
		close(fd);
		unlink(path);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "namespace: listen on %s: %s", path, strerror(e));
	}
	return fd;
}

static int write_pidfile(sandbox *sb, ns_state *s, silo_error *err)
{
	char p[PATH_MAX + 8], txt[64];
	snprintf(p, sizeof p, "%s/pid", sb->rundir);
	int n = snprintf(txt, sizeof txt, "%d %llu\n", (int)sb->pid, s->starttime);
	return write_file_atomic(p, txt, (size_t)n, 0600, err);
}

static void remove_rundir_contents(sandbox *sb)
{
	static const char *const names[] = {"merged", "upper", "work", "agent.sock", "pid"};
	char p[PATH_MAX + 16];
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		snprintf(p, sizeof p, "%s/%s", sb->rundir, names[i]);
		rm_rf(p);
	}
}

/* The read-only base layer: boot.rootfs or the cached busybox + agent layer. */
static int base_layer(sandbox *sb, const vm_spec *spec, char *lower, size_t lower_len, silo_error *err)
{
	char agent[PATH_MAX];
	if (find_helper_binary("silo-agent", agent, sizeof agent, err) < 0) {
		silo_error_set_vm(err, sb->id);
		return -1;
	}
	if (spec->rootfs && *spec->rootfs) {
		struct stat st;
		char probe[PATH_MAX + 32];
		snprintf(probe, sizeof probe, "%s/sbin/silo-agent", spec->rootfs);
		if (stat(spec->rootfs, &st) < 0 || !S_ISDIR(st.st_mode))
			return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, errno, sb->id,
					    "boot.rootfs: %s: the namespace provider needs a directory", spec->rootfs);
		if (access(probe, X_OK) < 0)
			return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, errno, sb->id,
					    "boot.rootfs: %s has no executable sbin/silo-agent", spec->rootfs);
		if (strpbrk(spec->rootfs, ",:\\"))
			return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, sb->id,
					    "boot.rootfs: ',', ':' and '\\' are not allowed in the path");
		snprintf(lower, lower_len, "%s", spec->rootfs);
	} else if (ns_rootfs_base(agent, lower, lower_len, err) < 0) {
		silo_error_set_vm(err, sb->id);
		return -1;
	}
	/* With a keyring, the layer must be a tree the signed manifest lists (lib/trust/tree.c). */
	if (trust_check_tree(lower, NULL, err) < 0) {
		silo_error_set_vm(err, sb->id);
		return -1;
	}
	return 0;
}

/* spawn, or restore when layer (a snapshot's flattened writable layer) is set:
 * it goes between the fresh upper directory and the base layer. */
static int ns_start(sandbox *sb, const vm_spec *spec, const char *layer, silo_error *err)
{
	if (spec->network)
		return silo_fail_vm(err, SILO_ERR_NOT_SUPPORTED, 0, sb->id,
				    "network: the namespace provider offers no network (only loopback)");
	if (spec->n_drives)
		return silo_fail_vm(err, SILO_ERR_NOT_SUPPORTED, 0, sb->id,
				    "drives: the namespace provider does not attach block devices");
	if (spec->image && *spec->image && strcmp(spec->image, "base") != 0)
		return silo_fail_vm(err, SILO_ERR_NOT_SUPPORTED, 0, sb->id,
				    "image: the namespace provider runs the \"base\" image (busybox) or a boot.rootfs "
				    "directory, not \"%s\"",
				    spec->image);
	char lower[PATH_MAX];
	if (base_layer(sb, spec, lower, sizeof lower, err) < 0)
		return -1;
	ns_state *s = xcalloc(1, sizeof *s);
	s->err_fd = -1;
	child_args *a = xcalloc(1, sizeof *a);
	int listen_fd = -1, pipe_pid[2] = {-1, -1}, pipe_err[2] = {-1, -1}, pipe_sync[2] = {-1, -1};
	ns_bpf bpf = {0};
	bool cg_made = false;
	char upper[PATH_MAX + 16], work[PATH_MAX + 16];
	snprintf(upper, sizeof upper, "%s/upper", sb->rundir);
	snprintf(work, sizeof work, "%s/work", sb->rundir);
	snprintf(a->merged, sizeof a->merged, "%s/merged", sb->rundir);
	if (mkdir(upper, 0755) < 0 || mkdir(work, 0700) < 0 || mkdir(a->merged, 0755) < 0) {
		silo_fail_vm(err, SILO_ERR_IO_ERROR, errno, sb->id, "namespace: mkdir in %s: %s", sb->rundir,
			     strerror(errno));
		goto fail;
	}
	if (strpbrk(sb->rundir, ",:\\")) {
		silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, sb->id, "namespace: unusable run directory %s",
			     sb->rundir);
		goto fail;
	}
	if (layer && strpbrk(layer, ",:\\")) {
		silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, sb->id, "namespace: unusable snapshot layer path %s",
			     layer);
		goto fail;
	}
	snprintf(a->overlay_opts, sizeof a->overlay_opts, "lowerdir=%s%s%s,upperdir=%s,workdir=%s",
		 layer ? layer : "", layer ? ":" : "", lower, upper, work);
	snprintf(a->hostname, sizeof a->hostname, "%s", sb->id);
	snprintf(s->sock, sizeof s->sock, "%.*s/agent.sock", (int)(sizeof s->sock - 12), sb->rundir);
	listen_fd = listen_socket(s->sock, err);
	if (listen_fd < 0)
		goto fail;
	ns_limits lim = {
		.memory_bytes = (uint64_t)(spec->memory_mb ? spec->memory_mb : 512) << 20,
		.cpu_millis = (spec->vcpus ? spec->vcpus : 1) * 1000,
		.pids_max = spec->pids_max ? spec->pids_max : NS_DEFAULT_PIDS,
	};
	if (ns_cgroup_create(sb->id, &lim, &s->cg, err) < 0)
		goto fail;
	cg_made = true;
	a->ncg = s->cg.n;
	for (int i = 0; i < s->cg.n; i++)
		memcpy(a->procs[i], s->cg.procs[i], PATH_MAX);
	a->userns = geteuid() != 0;
	if (ns_seccomp_build(&bpf, err) < 0)
		goto fail;
	a->bpf = &bpf;
	if (pipe2(pipe_pid, O_CLOEXEC) < 0 || pipe2(pipe_err, O_CLOEXEC) < 0 || pipe2(pipe_sync, O_CLOEXEC) < 0) {
		silo_fail_vm(err, SILO_ERR_IO_ERROR, errno, sb->id, "namespace: pipe: %s", strerror(errno));
		goto fail;
	}
	a->listen_fd = listen_fd;
	a->err_fd = pipe_err[1];
	a->sync_fd = pipe_sync[0];
	pid_t mid = fork();
	if (mid < 0) {
		silo_fail_vm(err, SILO_ERR_IO_ERROR, errno, sb->id, "namespace: fork: %s", strerror(errno));
		goto fail;
	}
	if (mid == 0) {
		close(pipe_pid[0]);
		close(pipe_err[0]);
		intermediate(a, pipe_pid[1], pipe_sync[1]);
	}
	close(pipe_pid[1]), pipe_pid[1] = -1;
	close(pipe_err[1]), pipe_err[1] = -1;
	close(pipe_sync[0]), pipe_sync[0] = -1;
	close(pipe_sync[1]), pipe_sync[1] = -1;
	int st;
	while (waitpid(mid, &st, 0) < 0 && errno == EINTR)
		;
	int32_t init = 0;
	ssize_t got = read(pipe_pid[0], &init, sizeof init);
	/* The init writes one NUL byte right before execve, or "step: error" if
	 * setup failed. Not EOF: siblings spawned concurrently by other threads
	 * hold copies of the write end until they exec themselves. */
	char msg[512] = "";
	size_t mlen = 0;
	uint64_t end = now_mono_ns() + NS_SETUP_TIMEOUT_MS * 1000000ull;
	bool timed_out = false, ready = false;
	for (;;) {
		int left = (int)((int64_t)(end - now_mono_ns()) / 1000000);
		if (left <= 0) {
			timed_out = true;
			break;
		}
		struct pollfd pfd = {.fd = pipe_err[0], .events = POLLIN};
		int pr = poll(&pfd, 1, left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr <= 0) {
			timed_out = pr == 0;
			break;
		}
		ssize_t r = read(pipe_err[0], msg + mlen, sizeof msg - 1 - mlen);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		mlen += (size_t)r;
		if (msg[0] == '\0' && mlen == 1) {
			ready = true;
			break;
		}
		if (mlen >= sizeof msg - 1)
			break;
	}
	msg[mlen] = '\0';
	const char *why = msg[0] ? msg : (mlen > 1 ? msg + 1 : "");
	if (got != sizeof init || init <= 0 || !ready || timed_out || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		if (init > 0)
			kill(init, SIGKILL);
		if (timed_out)
			silo_fail_vm(err, SILO_ERR_BOOT_TIMEOUT, ETIMEDOUT, sb->id,
				     "namespace: sandbox setup did not finish within %d ms", NS_SETUP_TIMEOUT_MS);
		else
			silo_fail_vm(err, SILO_ERR_IO_ERROR, 0, sb->id, "namespace: sandbox setup failed: %s",
				     why[0] ? why : "the setup process died");
		if (init > 0)
			wait_gone(init, 0, 5000);
		goto fail;
	}
	/* Keep the read end: an execve failure after the marker lands there and
	 * diagnostics() reports it. */
	set_nonblock(pipe_err[0], true);
	s->err_fd = pipe_err[0];
	pipe_err[0] = -1;
	sb->pid = init;
	char state;
	if (proc_stat(init, &state, &s->starttime) < 0)
		s->starttime = 0;
	close(listen_fd), listen_fd = -1;
	close(pipe_pid[0]);
	ns_seccomp_free(&bpf);
	free(a);
	sb->prov = s;
	if (write_pidfile(sb, s, err) < 0) {
		silo_error e2;
		silo_error_set_vm(err, sb->id);
		kill(init, SIGKILL);
		wait_gone(init, s->starttime, 5000);
		sb->prov = NULL;
		sb->pid = 0;
		ns_cgroup_remove(&s->cg);
		remove_rundir_contents(sb);
		close(s->err_fd);
		free(s);
		(void)e2;
		return -1;
	}
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		if (pipe_pid[i] >= 0)
			close(pipe_pid[i]);
		if (pipe_err[i] >= 0)
			close(pipe_err[i]);
		if (pipe_sync[i] >= 0)
			close(pipe_sync[i]);
	}
	if (listen_fd >= 0)
		close(listen_fd);
	if (cg_made)
		ns_cgroup_remove(&s->cg);
	remove_rundir_contents(sb);
	silo_error_set_vm(err, sb->id);
	ns_seccomp_free(&bpf);
	free(a);
	free(s);
	return -1;
}

static int ns_spawn(sandbox *sb, const vm_spec *spec, silo_error *err)
{
	return ns_start(sb, spec, NULL, err);
}

/* ---- snapshots (docs/snapshots.md) ---- */

/* The layer this sandbox was restored from (RUNDIR/snapshot-ref), if any. */
static bool parent_layer(sandbox *sb, char *out, size_t len)
{
	char p[PATH_MAX + 32];
	snprintf(p, sizeof p, "%s/" SNAP_REF_FILE, sb->rundir);
	cleanup_free char *txt = NULL;
	size_t n;
	if (read_file(p, 128, &txt, &n, NULL) < 0)
		return false;
	txt[strcspn(txt, "\n")] = '\0';
	if (!txt[0])
		return false;
	char root[PATH_MAX];
	snap_root(root, sizeof root);
	snprintf(out, len, "%s/%s/payload/layer", root, txt);
	return true;
}

/* The sandbox is frozen: copy its writable layer (hostile content; the copier
 * never follows links) into dir/layer, flattened onto the layer it was
 * restored from, so every snapshot stands alone over the base layer. */
static int ns_snapshot(sandbox *sb, const char *dir, silo_error *err)
{
	char upper[PATH_MAX + 16], layer[PATH_MAX + 16], parent[PATH_MAX + 128];
	snprintf(upper, sizeof upper, "%s/upper", sb->rundir);
	snprintf(layer, sizeof layer, "%s/layer", dir);
	size_t skipped = 0, sk2 = 0;
	int rc;
	char base[PATH_MAX];
	if (parent_layer(sb, parent, sizeof parent)) {
		rc = base_layer(sb, &sb->spec, base, sizeof base, err);
		if (rc == 0)
			rc = snap_copy_tree(parent, layer, snap_max_bytes(), &sk2, err);
		if (rc == 0)
			rc = snap_merge_tree(upper, layer, base, snap_max_bytes(), &skipped, err);
	} else {
		rc = snap_copy_tree(upper, layer, snap_max_bytes(), &skipped, err);
	}
	if (rc < 0) {
		silo_error_prefix(err, "namespace: snapshot of the writable layer");
		silo_error_set_vm(err, sb->id);
		return -1;
	}
	if (skipped)
		log_info("%s: snapshot skipped %zu sockets/FIFOs", sb->id, skipped);
	return 0;
}

static int ns_restore(sandbox *sb, const vm_spec *spec, const char *dir, silo_error *err)
{
	char layer[PATH_MAX + 16];
	snprintf(layer, sizeof layer, "%s/layer", dir);
	struct stat st;
	if (lstat(layer, &st) < 0 || !S_ISDIR(st.st_mode))
		return silo_fail_vm(err, SILO_ERR_CHECKSUM_MISMATCH, errno, sb->id,
				    "namespace: %s is not a snapshot layer directory", layer);
	return ns_start(sb, spec, layer, err);
}

/* ---- the other ops ---- */

static int ns_connect(sandbox *sb, int timeout_ms, silo_error *err)
{
	ns_state *s = sb->prov;
	if (!s)
		return silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, 0, sb->id, "namespace: sandbox not running");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, s->sock, strlen(s->sock) + 1);
	uint64_t end = now_mono_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 1) * 1000000ull;
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return silo_fail_vm(err, SILO_ERR_IO_ERROR, errno, sb->id, "namespace: socket: %s",
					    strerror(errno));
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
			return fd;
		int e = errno;
		close(fd);
		if ((e != EAGAIN && e != ECONNREFUSED && e != ENOENT && e != EINTR) || now_mono_ns() >= end)
			return silo_fail_vm(err, SILO_ERR_VSOCK_DISCONNECTED, e, sb->id,
					    "namespace: connect %s: %s", s->sock, strerror(e));
		struct timespec ts = {0, 5 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

static bool ns_alive(sandbox *sb)
{
	ns_state *s = sb->prov;
	return pid_alive(sb->pid, s ? s->starttime : 0);
}

static int ns_terminate(sandbox *sb, int grace_ms, silo_error *err)
{
	ns_state *s = sb->prov;
	ns_state tmp = {0};
	if (!s) {
		/* Never started, already terminated, or a failed reattach: still remove
		 * what may be there. Kill only an init that matches RUNDIR/pid (pid and
		 * start time), never a bare pid that may have been reused. */
		ns_cgroup_paths(sb->id, &tmp.cg);
		s = &tmp;
		char p[PATH_MAX + 8];
		snprintf(p, sizeof p, "%s/pid", sb->rundir);
		char *txt = NULL;
		size_t n;
		int fpid = 0;
		unsigned long long fstart = 0;
		if (read_file(p, 64, &txt, &n, NULL) == 0 && sscanf(txt, "%d %llu", &fpid, &fstart) == 2 &&
		    fpid > 0 && fstart > 0 && (sb->pid <= 0 || sb->pid == fpid)) {
			sb->pid = fpid;
			tmp.starttime = fstart;
		} else {
			sb->pid = 0;
		}
		free(txt);
	}
	unsigned long long start = s->starttime;
	/* A paused (frozen) sandbox cannot act on a shutdown request, and on the
	 * v1 freezer even SIGKILLed tasks stay frozen: thaw first. */
	if (s->cg.freeze[0] && path_exists(s->cg.freeze))
		ns_cgroup_freeze(&s->cg, false, NULL);
	if (sb->pid > 0 && pid_alive(sb->pid, start)) {
		if (grace_ms > 0 && sb->ch && chan_is_connected && chan_shutdown && chan_is_connected(sb->ch) &&
		    chan_shutdown(sb->ch, NULL) == 0)
			wait_gone(sb->pid, start, grace_ms);
		if (grace_ms > 0 && pid_alive(sb->pid, start)) {
			kill(sb->pid, SIGTERM);
			wait_gone(sb->pid, start, grace_ms);
		}
		if (pid_alive(sb->pid, start)) {
			/* SIGKILL to a pid namespace's init kills every process in it. */
			kill(sb->pid, SIGKILL);
			if (!wait_gone(sb->pid, start, 5000))
				return silo_fail_vm(err, SILO_ERR_CLEANUP_FAILED, 0, sb->id,
						    "namespace init %d survived SIGKILL", (int)sb->pid);
		}
	}
	int cg = ns_cgroup_remove(&s->cg);
	remove_rundir_contents(sb);
	if (s != &tmp) {
		if (s->err_fd >= 0)
			close(s->err_fd);
		free(s);
	}
	sb->prov = NULL;
	if (cg < 0)
		return silo_fail_vm(err, SILO_ERR_CLEANUP_FAILED, EBUSY, sb->id,
				    "namespace: cgroup %s could not be removed", tmp.cg.path[0]);
	return 0;
}

static int ns_reattach(sandbox *sb, silo_error *err)
{
	char p[PATH_MAX + 8];
	snprintf(p, sizeof p, "%s/pid", sb->rundir);
	cleanup_free char *txt = NULL;
	size_t n;
	if (read_file(p, 64, &txt, &n, err) < 0) {
		silo_error_set_vm(err, sb->id);
		return -1;
	}
	int pid = 0;
	unsigned long long start = 0;
	if (sscanf(txt, "%d %llu", &pid, &start) != 2 || pid <= 0)
		return silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, 0, sb->id, "namespace: %s is malformed", p);
	if (sb->pid > 0 && sb->pid != pid)
		return silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, 0, sb->id,
				    "namespace: recorded pid %d does not match %s (%d)", (int)sb->pid, p, pid);
	sb->pid = pid;
	if (!pid_alive(pid, start))
		return silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, ESRCH, sb->id, "namespace: init %d is gone", pid);
	ns_state *s = xcalloc(1, sizeof *s);
	s->err_fd = -1;
	s->starttime = start;
	ns_cgroup_paths(sb->id, &s->cg);
	snprintf(s->sock, sizeof s->sock, "%.*s/agent.sock", (int)(sizeof s->sock - 12), sb->rundir);
	sb->prov = s;
	/* A sandbox paused when the previous manager went away comes back
	 * running (its agent must answer the reattach handshake). */
	if (s->cg.freeze[0] && path_exists(s->cg.freeze))
		ns_cgroup_freeze(&s->cg, false, NULL);
	return 0;
}

static int ns_pause(sandbox *sb, silo_error *err)
{
	ns_state *s = sb->prov;
	if (!s)
		return silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, 0, sb->id, "namespace: sandbox not running");
	int rc = ns_cgroup_freeze(&s->cg, true, err);
	if (rc < 0)
		silo_error_set_vm(err, sb->id);
	return rc;
}

static int ns_resume(sandbox *sb, silo_error *err)
{
	ns_state *s = sb->prov;
	if (!s)
		return silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, 0, sb->id, "namespace: sandbox not running");
	int rc = ns_cgroup_freeze(&s->cg, false, err);
	if (rc < 0)
		silo_error_set_vm(err, sb->id);
	return rc;
}

static void push(char ***v, char *s)
{
	size_t n = strv_len(*v);
	*v = xrealloc(*v, (n + 2) * sizeof **v);
	(*v)[n] = s;
	(*v)[n + 1] = NULL;
}

static void ns_residue(sandbox *sb, char ***out)
{
	ns_state *s = sb->prov;
	if (sb->pid > 0 && pid_alive(sb->pid, s ? s->starttime : 0))
		push(out, xasprintf("pid %d (namespace init)", (int)sb->pid));
	ns_cgroup cg;
	ns_cgroup_paths(sb->id, &cg);
	for (int i = 0; i < cg.n; i++)
		if (path_exists(cg.path[i]))
			push(out, xasprintf("cgroup %s", cg.path[i]));
	char p[PATH_MAX + 16];
	snprintf(p, sizeof p, "%s/agent.sock", sb->rundir);
	if (path_exists(p))
		push(out, xasprintf("%s", p));
	/* mounts under the run dir visible on the host: lib/core/cleanup.c */
}

static void ns_diagnostics(sandbox *sb, char *buf, size_t len)
{
	ns_state *s = sb->prov;
	char state = '?';
	unsigned long long st = 0;
	char comm[64] = "?";
	char p[64];
	snprintf(p, sizeof p, "/proc/%d/comm", (int)sb->pid);
	char *txt = NULL;
	size_t n;
	if (read_file(p, 64, &txt, &n, NULL) == 0) {
		snprintf(comm, sizeof comm, "%s", txt);
		comm[strcspn(comm, "\n")] = '\0';
		free(txt);
	}
	char late[256] = "";
	if (s && s->err_fd >= 0) {
		ssize_t r = read(s->err_fd, late, sizeof late - 1);
		late[r > 0 ? r : 0] = '\0';
	}
	if (late[0]) {
		snprintf(buf, len, "namespace init %d: %s", (int)sb->pid, late);
		return;
	}
	if (sb->pid <= 0 || proc_stat(sb->pid, &state, &st) < 0 || (s && s->starttime && st != s->starttime))
		snprintf(buf, len, "namespace init %d has exited", (int)sb->pid);
	else
		snprintf(buf, len, "namespace init %d (%s) is in state %c and has not answered on %s", (int)sb->pid,
			 comm, state, s ? s->sock : "agent.sock");
}

static void ns_probe(provider_info *info)
{
	info->available = false;
	snprintf(info->accel, sizeof info->accel, "none");
	struct utsname u;
	if (uname(&u) == 0)
		snprintf(info->version, sizeof info->version, "Linux %s", u.release);
	char agent[PATH_MAX];
	silo_error e = {0};
	char cg[128];
	cleanup_free char *fs = NULL;
	size_t n;
	if (geteuid() != 0) {
		snprintf(info->reason, sizeof info->reason,
			 "needs root: cgroup limits and the overlay root are set up by the host side");
		return;
	}
	if (read_file("/proc/filesystems", 65536, &fs, &n, NULL) < 0 || !strstr(fs, "\toverlay\n")) {
		snprintf(info->reason, sizeof info->reason, "the kernel has no overlayfs");
		return;
	}
	if (!ns_cgroup_probe(cg, sizeof cg)) {
		snprintf(info->reason, sizeof info->reason, "%s", cg);
		return;
	}
	if (access("/bin/busybox", X_OK) < 0 && access("/usr/bin/busybox", X_OK) < 0) {
		snprintf(info->reason, sizeof info->reason, "busybox not found (apt-get install busybox-static)");
		return;
	}
	if (find_helper_binary("silo-agent", agent, sizeof agent, &e) < 0) {
		snprintf(info->reason, sizeof info->reason, "%s", e.message);
		return;
	}
	info->available = true;
}

const provider_ops namespace_provider = {
	.name = "namespace",
	.probe = ns_probe,
	.spawn = ns_spawn,
	.connect = ns_connect,
	.terminate = ns_terminate,
	.alive = ns_alive,
	.reattach = ns_reattach,
	.pause = ns_pause,
	.resume = ns_resume,
	.residue = ns_residue,
	.diagnostics = ns_diagnostics,
	.snapshot = ns_snapshot,
	.restore = ns_restore,
};
