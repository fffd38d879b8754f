/* SPDX-License-Identifier: Apache-2.0
 * namespace provider: silo-agent as PID 1 of a fresh set of Linux namespaces
 * (user, mount, pid, net, ipc, uts, cgroup) on an overlayfs root, with cgroup
 * limits, a size-limited writable layer, masked /proc and /sys, a seccomp
 * deny-list, a bounded capability set and no_new_privs. Weaker isolation than
 * a VM (shared host kernel); the fallback of last resort. docs/providers.md
 * ("namespace") has the details, docs/security.md the attacks it is tested
 * against.
 *
 * Who is who: the sandbox's root is uid 0 of its own user namespace, mapped
 * to a private range of unprivileged host ids (ns-ids.c), so nothing it does
 * carries host root's rights even where a mask is missing. Every other
 * namespace is created by host root and so belongs to the host's user
 * namespace: the sandbox has no capability over its own mounts, network or
 * hostname. The read-only layers are id-mapped mounts (host root's files look
 * like the sandbox root's), the writable layer is its own ext4 (ns-disk.c).
 *
 * Jail order in the child (fixed): wait for the go byte -> receive the disk
 * (mounted, detached, by the parent meanwhile) and the seccomp filter ->
 * private mounts -> id-mapped lower layers, overlay root (all by fd: no host
 * path in any mount option) -> /proc /sys /dev /dev/pts /dev/shm /tmp /run -> hostname ->
 * lo up -> the overlay's detached layer and disk mounts parked on the old root ->
 * pivot_root, old root (and them) detached -> /proc and /sys masks (ns-masks.h) -> enter the user
 * namespace, become its root -> fds -> capabilities -> no_new_privs ->
 * seccomp -> exec agent.
 *
 * The namespace init is double-forked and setsid()ed: it is not our child and
 * survives the manager (silod restart); its pid and start time are recorded
 * in RUNDIR/pid for reattach, its id slot and disk in RUNDIR/ns-state.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <limits.h>
#include <linux/close_range.h>
#include <linux/openat2.h>
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

#include "common/unixsock.h"
#include "common/util.h"
#include "core/channel.h"
#include "core/provider.h"
#include "core/sandbox.h"
#include "image/image.h"
#include "oci/oci.h"
#include "providers/ns.h"
#include "snapshot/snapshot.h"
#include "trust/trust.h"

#define NS_DEFAULT_PIDS 1024
#define NS_SETUP_TIMEOUT_MS 10000
#define NS_DETACH_TIMEOUT_MS 5000
#define NS_RUN_MAX_MB 64u          /* /run holds pid files and sockets */
#define AGENT_FD 3
#define OOM_FD 4                   /* the agent's --oom-fd: the sandbox cgroup's OOM-kill counter */
#define STATE_FILE "ns-state"
#define LAYERS_FILE "layers"       /* image layers held for the sandbox's lifetime (reattach) */
#define NS_MAX_LAYERS 500          /* overlayfs' limit of lower layers */

const ns_mask ns_masks[] = {
#define HIDE(p, why) {NS_MASK_HIDE, p, why},
#define RDONLY(p, why) {NS_MASK_RDONLY, p, why},
#include "providers/ns-masks.h"
#undef HIDE
#undef RDONLY
};
const size_t ns_masks_count = ARRAY_SIZE(ns_masks);

typedef struct ns_state {
	cg_set cg;
	ns_ids ids;
	ns_disk disk;
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	unsigned long long starttime;
	int err_fd;             /* setup error pipe (read end), -1 after reattach */
	int *holds;             /* flock(LOCK_SH) on the image's layers: gc leaves them alone */
	size_t nholds;
} ns_state;

/* Capabilities kept in the bounding set (Docker's default set minus
 * NET_RAW and MKNOD: no raw sockets, no device nodes). They are capabilities
 * of the sandbox's user namespace: over its own files and processes only. */
static const int keep_caps[] = {
	CAP_CHOWN,  CAP_DAC_OVERRIDE, CAP_FOWNER,     CAP_FSETID,           CAP_KILL,
	CAP_SETGID, CAP_SETUID,       CAP_SETPCAP,    CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT,
	CAP_SETFCAP, CAP_AUDIT_WRITE,
};

static const char *const dev_nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};

/* tmpfs mounts of the sandbox, in child_args.tmpfs order */
enum { TMPFS_DEV, TMPFS_SHM, TMPFS_TMP, TMPFS_RUN, TMPFS_N };

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

/* ---- /proc helpers ---- */

static bool pid_alive(pid_t pid, unsigned long long start)
{
	if (pid <= 0)
		return false;
	int st;
	waitpid(pid, &st, WNOHANG);   /* in case we are its reaper (subreaper setups) */
	return ns_pid_alive(pid, start);
}

/* Wait until pid (start time start, 0 = any) is gone or a zombie, up to ms.
 * The init is not our child: a pidfd tells when it exits (its mount
 * namespace, and so its disk, is torn down by then); /proc polling where
 * pidfd_open is missing. */
static bool wait_gone(pid_t pid, unsigned long long start, int ms)
{
	uint64_t end = now_mono_ns() + (uint64_t)ms * 1000000ull;
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd >= 0 && !pid_alive(pid, start)) {
		close(pfd);   /* opened a reused pid, or it exited meanwhile */
		return true;
	}
	while (pid_alive(pid, start)) {
		int64_t left = (int64_t)(end - now_mono_ns());
		if (left <= 0) {
			if (pfd >= 0)
				close(pfd);
			return false;
		}
		if (pfd >= 0) {
			struct pollfd p = {.fd = pfd, .events = POLLIN};
			(void)poll(&p, 1, (int)MIN(left / 1000000 + 1, 100));
		} else {
			struct timespec ts = {0, 2 * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
	if (pfd >= 0)
		close(pfd);
	return true;
}

/* ---- the child ---- */

typedef struct child_args {
	char merged[PATH_MAX];
	char **lower;              /* top first (ns_layers); made by the parent before the fork */
	int nlower;
	char agent[32];            /* the agent's path in the sandbox */
	char tmpfs[TMPFS_N][128];  /* mount options (size, owner) */
	char hostname[64];         /* the sandbox id (its id slot record names it) */
	char uts[64];              /* the sandbox's hostname */
	struct ns_mount *mounts;   /* spec.mounts, prepared by the parent */
	size_t nmounts;
	char slot_path[PATH_MAX], slot_tmp[PATH_MAX + 16];
	char procs[CG_MAX][PATH_MAX];     /* the files the intermediate joins through */
	bool join_self;                   /* write "0" (the writing thread) instead of its pid */
	int ncg;
	int cg2_fd;                       /* cgroup v2: the sandbox's cgroup, for CLONE_INTO_CGROUP; else -1 */
	char oom_file[PATH_MAX];   /* cg_oom_file, "" if none */
	int listen_fd;
	int err_fd;          /* write end, CLOEXEC */
	int sync_fd;         /* read end: the go byte once the id slot is handed over */
	int disk_fd;         /* our end of a socket pair: the disk's mount and the seccomp filter (made meanwhile by the parent) */
	int userns_fd;       /* the sandbox's user namespace */
	uint32_t uid, gid;   /* host ids of the sandbox's root */
	struct sock_filter *bpf;   /* BPF_MAXINSNS, filled from disk_fd (compiled in the parent) */
	int parked[NS_MAX_LAYERS + 1];   /* detached mounts the overlay no longer needs (park_detached) */
	int nparked;
} child_args;

/* Report "step: error[ (the filesystem's own message)]" and exit. fs: an
 * fsopen() context whose log may say more, or -1. */
__attribute__((noreturn)) static void child_fail_fs(const child_args *a, const char *step, int fs)
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
		ns_utoa(num, sizeof num, (unsigned long)e);
		at = s_cat(msg, sizeof msg, at, "errno ");
		at = s_cat(msg, sizeof msg, at, num);
	}
	char log[256];
	ssize_t n = fs >= 0 ? read(fs, log, sizeof log - 1) : -1;
	if (n > 2) {
		log[n] = '\0';
		at = s_cat(msg, sizeof msg, at, " (");
		at = s_cat(msg, sizeof msg, at, log + 2);   /* "e overlayfs: ..." */
		at = s_cat(msg, sizeof msg, at, ")");
	}
	(void)!write(a->err_fd, msg, at);
	_exit(127);
}

__attribute__((noreturn)) static void child_fail(const child_args *a, const char *step)
{
	child_fail_fs(a, step, -1);
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

/* A detached clone of the directory path, read-only and id-mapped through the
 * sandbox's user namespace (host uid 0 -> the sandbox's root). */
static int idmapped_layer(const child_args *a, const char *path)
{
	int t = open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (t < 0)
		child_fail(a, "open a lower layer");
	struct mount_attr at = {
		.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
		.userns_fd = (uint64_t)a->userns_fd,
	};
	if (mount_setattr(t, "", AT_EMPTY_PATH, &at, sizeof at) < 0)
		child_fail(a, "id-map a lower layer (its filesystem needs idmapped-mount support)");
	return t;
}

/* The root filesystem, attached at a->merged. Every layer is handed to
 * overlayfs as an fd of a detached mount, so the options the kernel shows in
 * mountinfo are "lowerdir+=/,upperdir=/upper,workdir=/work": no host path. */
static void mount_root(child_args *a, int disk)
{
	/* disk: the writable layer's filesystem, mounted (detached) by the parent,
	 * with upper (the sandbox's root directory, owned by its root) and work */
	int up = openat(disk, "upper", O_PATH | O_DIRECTORY | O_CLOEXEC);
	int wk = openat(disk, "work", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (up < 0 || wk < 0)
		child_fail(a, "open the upper and work directories");
	int fs = fsopen("overlay", FSOPEN_CLOEXEC);
	if (fs < 0 || fsconfig(fs, FSCONFIG_SET_STRING, "source", "overlay", 0) < 0)
		child_fail(a, "fsopen overlay");
	/* the detached layer mounts must stay open until the overlay exists:
	 * closing the last fd of a detached mount unmounts it */
	int lowers[NS_MAX_LAYERS];
	for (int i = 0; i < a->nlower; i++) {
		lowers[i] = idmapped_layer(a, a->lower[i]);
		if (fsconfig(fs, FSCONFIG_SET_FD, "lowerdir+", NULL, lowers[i]) < 0)
			child_fail_fs(a, "overlay lowerdir+", fs);
	}
	if (fsconfig(fs, FSCONFIG_SET_FD, "upperdir", NULL, up) < 0)
		child_fail_fs(a, "overlay upperdir", fs);
	if (fsconfig(fs, FSCONFIG_SET_FD, "workdir", NULL, wk) < 0)
		child_fail_fs(a, "overlay workdir", fs);
	if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		child_fail_fs(a, "create the overlay root", fs);
	int root = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID);
	if (root < 0 || move_mount(root, "", AT_FDCWD, a->merged, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		child_fail(a, "mount the overlay root");
	close(root);
	close(fs);
	for (int i = 0; i < a->nlower; i++)
		a->parked[a->nparked++] = lowers[i];
	a->parked[a->nparked++] = disk;
	close(up);
	close(wk);
}

/* The detached layer and disk mounts, once overlayfs holds its own clones of
 * them: closing the last fd of a detached mount unmounts it, and every unmount
 * waits for an RCU grace period (namespace_unlock: synchronize_rcu_expedited,
 * 0.05 ms on an idle host, tens of ms on a busy one), one per fd. Attached to
 * the old root instead (stacked on the bottom layer's host directory, in this
 * private mount namespace), they leave with it in the one lazy unmount of the
 * old root after pivot_root: one grace period for all. Never visible to the
 * sandbox; where an attach fails the fd is closed as before. */
static void park_detached(child_args *a)
{
	for (int i = 0; i < a->nparked; i++) {
		/* after the attach, the close is cheap; without it, it unmounts */
		if (a->nlower > 0)
			(void)move_mount(a->parked[i], "", AT_FDCWD, a->lower[a->nlower - 1], MOVE_MOUNT_F_EMPTY_PATH);
		close(a->parked[i]);
	}
	a->nparked = 0;
}

/* The mount points of the sandbox's own /proc, /sys, /dev, /tmp and /run are
 * directories of its root (made in the writable layer, owned by the sandbox's
 * root, when an image lacks them). An image's own entry of such a name that is
 * not a directory (a symlink like tmp -> /etc, a file) is removed first: the
 * mounts and the /dev nodes made below must land inside the sandbox, never
 * where an image's symlink points (resolved here, before pivot_root, that would
 * be the host's tree). */
static void mount_points(const child_args *a)
{
	static const char *const dirs[] = {"proc", "sys", "dev", "tmp", "run"};
	int root = open(a->merged, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (root < 0)
		child_fail(a, "open the new root");
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		struct stat st;
		if (fstatat(root, dirs[i], &st, AT_SYMLINK_NOFOLLOW) == 0) {
			if (S_ISDIR(st.st_mode))
				continue;
			if (unlinkat(root, dirs[i], 0) < 0)
				child_fail(a, "replace an image's non-directory mount point");
		} else if (errno != ENOENT) {
			child_fail(a, "stat a mount point");
		}
		if (mkdirat(root, dirs[i], 0755) < 0 || fchownat(root, dirs[i], a->uid, a->gid, AT_SYMLINK_NOFOLLOW) < 0)
			child_fail(a, "make a mount point");
	}
	close(root);
}

/* ns-masks.h, after pivot_root (paths are the sandbox's). */
static void apply_masks(const child_args *a)
{
	for (size_t i = 0; i < ns_masks_count; i++) {
		const ns_mask *m = &ns_masks[i];
		struct stat st;
		if (lstat(m->path, &st) < 0) {
			if (errno == ENOENT)
				continue;
			child_fail(a, m->path);
		}
		int rc;
		if (m->kind == NS_MASK_RDONLY) {
			rc = mount(m->path, m->path, NULL, MS_BIND | MS_REC, NULL);
			if (rc == 0)
				rc = mount(NULL, m->path, NULL,
					   MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
		} else if (S_ISDIR(st.st_mode)) {
			rc = mount("tmpfs", m->path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
				   "size=4k,nr_inodes=2,mode=0555");
		} else {
			rc = mount("/dev/null", m->path, NULL, MS_BIND, NULL);
		}
		if (rc < 0)
			child_fail(a, m->path);
	}
}

/* A tmpfs at merged/rel owned by the sandbox's root. */
static void mount_tmpfs(const child_args *a, const char *rel, unsigned long flags, int which)
{
	char p[PATH_MAX + 32];
	s_join(p, sizeof p, a->merged, rel);
	if (mount("tmpfs", p, "tmpfs", flags, a->tmpfs[which]) < 0 || chown(p, a->uid, a->gid) < 0)
		child_fail(a, rel);
}

/* ---- mounts the spec asks for (spec.mounts: silo-oci's volumes) ---- */

typedef struct ns_mount {
	spec_mount_type type;
	const char *source;        /* bind: host path */
	const char *target;        /* in the sandbox, without the leading "/" */
	bool ro, dir;              /* dir: the source is a directory (bind), always for tmpfs */
	int nopts;
	char opt[3][2][24];        /* tmpfs: size, mode, nr_inodes */
} ns_mount;

/* An O_PATH fd of target below root (symlinks resolve inside the root, never to
 * the host: RESOLVE_IN_ROOT), making missing directories (owned by the
 * sandbox's root) and, for a file, the final file. Async-signal-safe. */
static int mount_target(const child_args *a, int root, const char *target, bool dir)
{
	struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
	char pre[PATH_MAX];
	size_t n = strlen(target);
	if (n >= sizeof pre)
		child_fail(a, "a mount target is too long");
	for (size_t at = 0; at <= n; at++) {
		if (at < n && target[at] != '/')
			continue;
		memcpy(pre, target, at);
		pre[at] = '\0';
		if (!pre[0])
			continue;
		int fd = (int)syscall(SYS_openat2, root, pre, &how, sizeof how);
		if (fd >= 0) {
			close(fd);
			continue;
		}
		if (errno != ENOENT)
			child_fail(a, "resolve a mount target");
		/* make the missing component in its (already resolved) parent */
		char *slash = strrchr(pre, '/');
		int parent = root;
		const char *name = pre;
		if (slash) {
			*slash = '\0';
			parent = (int)syscall(SYS_openat2, root, pre, &how, sizeof how);
			if (parent < 0)
				child_fail(a, "resolve a mount target's directory");
			name = slash + 1;
		}
		int rc;
		if (at < n || dir) {
			rc = mkdirat(parent, name, 0755);
		} else {
			int f = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
			rc = f < 0 ? -1 : close(f);
		}
		if (rc < 0 || fchownat(parent, name, a->uid, a->gid, AT_SYMLINK_NOFOLLOW) < 0)
			child_fail(a, "make a mount target");
		if (parent != root)
			close(parent);
	}
	int fd = (int)syscall(SYS_openat2, root, target, &how, sizeof how);
	if (fd < 0)
		child_fail(a, "open a mount target");
	return fd;
}

static void user_mounts(const child_args *a)
{
	if (!a->nmounts)
		return;
	int root = open(a->merged, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (root < 0)
		child_fail(a, "open the new root");
	for (size_t i = 0; i < a->nmounts; i++) {
		const ns_mount *m = &a->mounts[i];
		int t = mount_target(a, root, m->target, m->dir);
		int src;
		if (m->type == SPEC_MOUNT_BIND) {
			/* a detached clone of the host path, id-mapped like the layers: the
			 * host's root owns it as the sandbox's root (writes land as host ids) */
			src = open_tree(AT_FDCWD, m->source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
			if (src < 0)
				child_fail(a, "open a bind mount's source");
			struct mount_attr at = {
				.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
					    (m->ro ? MOUNT_ATTR_RDONLY : 0),
				.userns_fd = (uint64_t)a->userns_fd,
			};
			if (mount_setattr(src, "", AT_EMPTY_PATH, &at, sizeof at) < 0)
				child_fail(a, "id-map a bind mount (its filesystem needs idmapped-mount support)");
		} else {
			int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
			if (fs < 0)
				child_fail(a, "fsopen tmpfs");
			for (int k = 0; k < m->nopts; k++)
				if (fsconfig(fs, FSCONFIG_SET_STRING, m->opt[k][0], m->opt[k][1], 0) < 0)
					child_fail_fs(a, "a tmpfs mount option", fs);
			if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
				child_fail_fs(a, "create a tmpfs mount", fs);
			src = fsmount(fs, FSMOUNT_CLOEXEC,
				      MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (m->ro ? MOUNT_ATTR_RDONLY : 0));
			close(fs);
			if (src < 0 || fchownat(src, "", a->uid, a->gid, AT_EMPTY_PATH) < 0)
				child_fail(a, "mount a tmpfs");
		}
		if (move_mount(src, "", t, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
			child_fail(a, "attach a mount");
		close(src);
		close(t);
	}
	close(root);
}

static void write_knob(const child_args *a, const char *rel, const char *val)
{
	char p[PATH_MAX + 64];
	s_join(p, sizeof p, a->merged, rel);
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write_all(fd, val, strlen(val)) < 0)
		child_fail(a, rel);
	close(fd);
}

/* fd renumbered above OOM_FD (close-on-exec), clear of the agent's fds set up
 * at the end of child_main. */
static int fd_above_agent_fds(int fd)
{
	if (fd < 0 || fd > OOM_FD)
		return fd;
	int hi = fcntl(fd, F_DUPFD_CLOEXEC, OOM_FD + 1);
	close(fd);
	return hi;
}

/* Read exactly len bytes from the socket sock, and the one descriptor sent
 * with them (SCM_RIGHTS, close-on-exec). The fd, or -1 (EOF, error, no fd).
 * Async-signal-safe. */
static int recv_with_fd(int sock, void *buf, size_t len)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov = {.iov_base = buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b, .msg_controllen = sizeof cm.b};
	ssize_t n;
	while ((n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	int fd = -1;
	struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(&fd, CMSG_DATA(c), sizeof fd);
	if (fd >= 0 && (size_t)n < len && read_exact(sock, (char *)buf + n, len - (size_t)n) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

__attribute__((noreturn)) static void child_main(child_args *a)
{
	/* Wait for the go byte: the intermediate writes it once our id slot
	 * names us. A byte, not EOF: a sibling spawned by another thread at the
	 * same moment may hold a copy of the write end until it execs, and waiting
	 * for EOF would make concurrent spawns wait on each other. */
	char c = 0;
	ssize_t r;
	while ((r = read(a->sync_fd, &c, 1)) < 0 && errno == EINTR)
		;
	if (r != 1)
		_exit(126);   /* the intermediate died: nobody to report to */
	close(a->sync_fd);
	/* The disk: the parent attaches and mounts it while the intermediate joins
	 * the cgroups and clones us (both take milliseconds) and sends the mount
	 * with its loop device's number; EOF if it failed (the parent reports why). */
	int32_t nr = -1;
	int disk = recv_with_fd(a->disk_fd, &nr, sizeof nr);
	if (disk < 0 || nr < 0)
		_exit(126);
	disk = fd_above_agent_fds(disk);
	/* then the seccomp filter: its length in instructions and the program */
	uint16_t nins = 0;
	if (read_exact(a->disk_fd, &nins, sizeof nins) != 0 || nins == 0 || nins > BPF_MAXINSNS ||
	    read_exact(a->disk_fd, a->bpf, (size_t)nins * sizeof *a->bpf) != 0)
		_exit(126);
	close(a->disk_fd);
	/* the OOM-kill counter, opened while the host's /sys is still in view:
	 * read-only, owned by host root, so the sandbox can only read it */
	int oom_fd = fd_above_agent_fds(a->oom_file[0] ? open(a->oom_file, O_RDONLY | O_CLOEXEC) : -1);
	a->err_fd = fd_above_agent_fds(a->err_fd);
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	signal(SIGPIPE, SIG_DFL);

	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		child_fail(a, "make mounts private");
	mount_root(a, disk);
	mount_points(a);
	if (mnt_at(a, "proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		child_fail(a, "mount /proc");
	if (mnt_at(a, "sysfs", "sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL) < 0)
		child_fail(a, "mount /sys");
	mount_tmpfs(a, "dev", MS_NOSUID | MS_NOEXEC, TMPFS_DEV);
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
	if (mkdir(p, 0755) < 0 || chown(p, a->uid, a->gid) < 0)
		child_fail(a, "mkdir /dev/pts");
	if (mount("devpts", p, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620") < 0)
		child_fail(a, "mount /dev/pts");
	static const char *const links[][2] = {
		{"pts/ptmx", "ptmx"},          {"/proc/self/fd", "fd"},         {"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(links); i++) {
		s_join3(p, sizeof p, a->merged, "dev", links[i][1]);
		if (symlink(links[i][0], p) < 0 || lchown(p, a->uid, a->gid) < 0)
			child_fail(a, "symlink in /dev");
	}
	s_join(p, sizeof p, a->merged, "dev/shm");
	if (mkdir(p, 01777) < 0)
		child_fail(a, "mkdir /dev/shm");
	mount_tmpfs(a, "dev/shm", MS_NOSUID | MS_NODEV, TMPFS_SHM);
	mount_tmpfs(a, "tmp", MS_NOSUID | MS_NODEV, TMPFS_TMP);
	mount_tmpfs(a, "run", MS_NOSUID | MS_NODEV, TMPFS_RUN);
	user_mounts(a);
	if (sethostname(a->uts, strlen(a->uts)) < 0)
		child_fail(a, "sethostname");
	lo_up(a);
	/* The network namespace belongs to the host's user namespace, so binding
	 * a port below 1024 would need host CAP_NET_BIND_SERVICE: open them all
	 * in this (per-namespace) knob instead. */
	write_knob(a, "proc/sys/net/ipv4/ip_unprivileged_port_start", "0");
	/* pivot_root(".", "."): the old root ends up stacked on the new one and is
	 * detached at once, so an image needs no directory for it (as runc does) */
	park_detached(a);
	int oldroot = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (oldroot < 0 || chdir(a->merged) < 0)
		child_fail(a, "chdir to the new root");
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		child_fail(a, "pivot_root");
	if (fchdir(oldroot) < 0 || umount2(".", MNT_DETACH) < 0)
		child_fail(a, "detach the host root");
	close(oldroot);
	if (chdir("/") < 0)
		child_fail(a, "chdir /");
	apply_masks(a);

	/* Into the sandbox's user namespace; from here on "root" is the host
	 * range's first id. Full capabilities in that namespace, none over
	 * anything the host's user namespace owns. */
	if (setns(a->userns_fd, CLONE_NEWUSER) < 0)
		child_fail(a, "enter the user namespace");
	close(a->userns_fd);
	if (setgroups(0, NULL) < 0 || setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
		child_fail(a, "become root of the user namespace");

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
	if (oom_fd >= 0 ? dup2(oom_fd, OOM_FD) < 0 : close(OOM_FD) < 0 && errno != EBADF)
		child_fail(a, "dup2 the OOM-kill counter");
	/* Everything above OOM_FD closes at exec (the error pipe must stay open
	 * until then). close_range needs Linux 5.11; fall back to a loop. */
	if (syscall(SYS_close_range, OOM_FD + 1, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
		for (int fd = OOM_FD + 1; fd < 65536; fd++)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
	}

	drop_caps(a);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(a, "no_new_privs");
	ns_bpf bpf = {.prog = {.len = nins, .filter = a->bpf}};
	int rc = ns_seccomp_apply(&bpf);
	if (rc < 0) {
		errno = -rc;
		child_fail(a, "load the seccomp filter");
	}
	_Static_assert(AGENT_FD == 3 && OOM_FD == 4, "argv below names fds 3 and 4");
	char *const argv[] = {"silo-agent", "--init", "--listen-fd", "3", oom_fd >= 0 ? "--oom-fd" : NULL, "4", NULL};
	char *const envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			      "HOME=/root", "TERM=xterm", "container=silo", NULL};
	char marker = 0;
	if (write(a->err_fd, &marker, 1) != 1)
		_exit(127);
	execve(a->agent, argv, envp);
	child_fail(a, "exec the agent");
}

/* ---- spawn ---- */

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
 * hand it the id slot, report its pid, exit (so the init is nobody's child here). */
__attribute__((noreturn)) static void intermediate(child_args *a, int pid_wr, int sync_wr)
{
	int keep[] = {a->listen_fd, a->err_fd, a->sync_fd, a->disk_fd, a->userns_fd, pid_wr, sync_wr, a->cg2_fd};
	close_inherited(keep, (int)(sizeof keep / sizeof keep[0]) - (a->cg2_fd < 0));
	setsid();
	unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;
	/* cgroup v2: the init is born in its cgroup (clone3 CLONE_INTO_CGROUP), and
	 * nobody migrates; else (v1, or no clone3) we join, and the init inherits it */
	long pid = a->cg2_fd >= 0 ? ns_clone_into_cgroup(flags, a->cg2_fd) : -1;
	if (pid < 0 && a->cg2_fd >= 0 && errno != ENOSYS && errno != E2BIG)
		child_fail(a, "clone the sandbox init into its cgroup");
	if (pid < 0) {
		char me[32];
		ns_utoa(me, sizeof me, (unsigned long)getpid());
		for (int i = 0; i < a->ncg; i++) {
			const char *who = a->join_self ? "0" : me;
			int fd = open(a->procs[i], O_WRONLY | O_CLOEXEC);
			if (fd < 0 || write_all(fd, who, strlen(who)) < 0)
				child_fail(a, "join the sandbox cgroup");
			close(fd);
		}
		pid = syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
	}
	if (pid < 0)
		child_fail(a, "clone the sandbox init");
	if (pid == 0) {
		close(pid_wr);
		close(sync_wr);
		if (a->cg2_fd >= 0)
			close(a->cg2_fd);
		child_main(a);
	}
	close(a->sync_fd);
	/* The init owns the id range from before it runs: if anything dies from
	 * here on, the slot is free exactly when the init is gone. */
	if (ns_ids_own(a->slot_path, a->slot_tmp, (pid_t)pid, a->hostname) < 0) {
		kill((pid_t)pid, SIGKILL);
		child_fail(a, "hand the id slot to the sandbox init");
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

/* RUNDIR/pid: "PID STARTTIME\n", for terminate and reattach after a manager
 * restart. Like ns-state it needs no fsync (a host crash ends the sandbox),
 * and an fsync here put a host-disk flush on every spawn's path. */
static int write_pidfile(sandbox *sb, ns_state *s, silo_error *err)
{
	char p[PATH_MAX + 8], tmp[PATH_MAX + 16], txt[64];
	snprintf(p, sizeof p, "%s/pid", sb->rundir);
	snprintf(tmp, sizeof tmp, "%s/.pid.tmp", sb->rundir);
	snprintf(txt, sizeof txt, "%d %llu\n", (int)sb->pid, s->starttime);
	if (ns_write_volatile(p, tmp, txt) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "namespace: write %s", p);
	return 0;
}

/* RUNDIR/ns-state: "SLOT UID GID LOOPNR DEV INO\n" - what terminate, residue
 * and snapshots need after a manager restart (not after a host crash, which
 * ends the sandbox: no fsync). Written before the init exists. */
static int write_state(sandbox *sb, const ns_state *s, silo_error *err)
{
	char p[PATH_MAX + 16], tmp[PATH_MAX + 16], txt[160];
	snprintf(p, sizeof p, "%s/" STATE_FILE, sb->rundir);
	snprintf(tmp, sizeof tmp, "%s/." STATE_FILE ".tmp", sb->rundir);
	snprintf(txt, sizeof txt, "%d %u %u %d %llu %llu\n", s->ids.slot, s->ids.uid, s->ids.gid, s->disk.nr,
		 (unsigned long long)s->disk.dev, (unsigned long long)s->disk.ino);
	if (ns_write_volatile(p, tmp, txt) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "namespace: write %s", p);
	return 0;
}

static bool read_state(sandbox *sb, ns_state *s)
{
	char p[PATH_MAX + 16];
	snprintf(p, sizeof p, "%s/" STATE_FILE, sb->rundir);
	cleanup_free char *txt = NULL;
	size_t n;
	s->ids.slot = -1;
	ns_disk_init(&s->disk, sb->id);
	if (read_file(p, 256, &txt, &n, NULL) < 0)
		return false;
	unsigned long long dev, ino;
	if (sscanf(txt, "%d %u %u %d %llu %llu", &s->ids.slot, &s->ids.uid, &s->ids.gid, &s->disk.nr, &dev, &ino) != 6) {
		s->ids.slot = -1;
		s->disk.nr = -1;
		return false;
	}
	s->disk.dev = dev;
	s->disk.ino = ino;
	return true;
}

static void remove_rundir_contents(sandbox *sb)
{
	static const char *const names[] = {"merged", "agent.sock", "pid", STATE_FILE, LAYERS_FILE};
	char p[PATH_MAX + 16];
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		snprintf(p, sizeof p, "%s/%s", sb->rundir, names[i]);
		rm_rf(p);
	}
}

/* spec.mounts for the child: sources checked, targets relative, tmpfs options split. */
static int prepare_mounts(sandbox *sb, const vm_spec *spec, child_args *a, silo_error *err)
{
	if (!spec->n_mounts)
		return 0;
	a->mounts = xcalloc(spec->n_mounts, sizeof *a->mounts);
	for (size_t i = 0; i < spec->n_mounts; i++) {
		const spec_mount *m = &spec->mounts[i];
		ns_mount *x = &a->mounts[a->nmounts++];
		if (!m->target || m->target[0] != '/' || !path_is_safe_relative(m->target + 1) || !m->target[1])
			return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, sb->id,
					    "mounts[%zu].target: expected an absolute path without \"..\", not /", i);
		x->type = m->type;
		x->target = m->target + 1;
		x->ro = m->read_only;
		x->dir = true;
		if (m->type == SPEC_MOUNT_BIND) {
			struct stat st;
			if (!m->source || m->source[0] != '/' || stat(m->source, &st) < 0)
				return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, errno, sb->id, "mounts[%zu].source: %s", i,
						    m->source ? m->source : "(none)");
			x->source = m->source;
			x->dir = S_ISDIR(st.st_mode);
			continue;
		}
		/* tmpfs: "size=..,mode=..,nr_inodes=.." (values of digits and a unit) */
		char opts[128];
		snprintf(opts, sizeof opts, "%s", m->options ? m->options : "");
		for (char *save = NULL, *o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
			char *eq = strchr(o, '=');
			size_t kl = eq ? (size_t)(eq - o) : 0;
			bool known = eq && ((kl == 4 && !strncmp(o, "size", 4)) || (kl == 4 && !strncmp(o, "mode", 4)) ||
					    (kl == 9 && !strncmp(o, "nr_inodes", 9)));
			if (!known || x->nopts >= 3 || strlen(eq + 1) >= sizeof x->opt[0][1] || !eq[1] ||
			    strspn(eq + 1, "0123456789kKmMgG%") != strlen(eq + 1))
				return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, sb->id,
						    "mounts[%zu].options: \"%.40s\" (a tmpfs takes size=, mode=, nr_inodes=)",
						    i, o);
			snprintf(x->opt[x->nopts][0], sizeof x->opt[0][0], "%.*s", (int)kl, o);
			snprintf(x->opt[x->nopts++][1], sizeof x->opt[0][1], "%s", eq + 1);
		}
	}
	return 0;
}

/* ---- the read-only layers ---- */

/* What a sandbox stacks under its writable layer, topmost first:
 *   base image (no boot.image, or "base"): the busybox + agent base layer;
 *   boot.rootfs DIR: DIR, which has its own sbin/silo-agent (an OCI bundle's
 *   root, from silo-oci: under the agent layer; an engine's overlay mount is
 *   replaced by its layers, spec.rootfs_layers);
 *   an image with layers (imported, or a built image's namespace layer): the
 *   agent layer, then the image's layers (oci_image_lowerdirs()).
 * A restore puts the snapshot's layer right under the agent layer (or on top),
 * so a snapshot can never shadow the agent. With a keyring every layer but a
 * snapshot's (verified by the snapshot store) and an OCI bundle's root (the
 * engine's image policy vouches for it) must be a tree of the signed manifest. */
typedef struct ns_layers {
	char **dirs;            /* topmost first */
	size_t n;
	size_t first_image;     /* dirs[first_image..] are the image's (held when from the layer store) */
	bool held;              /* the image's layers are in the layer store: hold them */
	const char *agent;      /* the agent's path in the sandbox */
} ns_layers;

static void ns_layers_free(ns_layers *L)
{
	strv_free(L->dirs);
	memset(L, 0, sizeof *L);
}

static void layers_push(ns_layers *L, const char *dir)
{
	L->dirs = xrealloc(L->dirs, (L->n + 2) * sizeof *L->dirs);
	L->dirs[L->n++] = xstrdup(dir);
	L->dirs[L->n] = NULL;
}

static int image_layers(sandbox *sb, const vm_spec *spec, const char *snapshot, ns_layers *L, silo_error *err)
{
	memset(L, 0, sizeof *L);
	char agent[PATH_MAX], dir[PATH_MAX];
	if (find_helper_binary("silo-agent", agent, sizeof agent, err) < 0)
		return silo_error_set_vm(err, sb->id), -1;
	char **img = NULL;
	size_t nimg = 0;
	bool need_agent = true, check_img = true;
	if (spec->rootfs && *spec->rootfs) {
		struct stat st;
		char probe[PATH_MAX + 32];
		if (stat(spec->rootfs, &st) < 0 || !S_ISDIR(st.st_mode))
			return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, errno, sb->id,
					    "boot.rootfs: %s: the namespace provider needs a directory", spec->rootfs);
		/* a boot.rootfs brings its own agent; an OCI bundle's root gets the agent layer */
		snprintf(probe, sizeof probe, "%s/sbin/silo-agent", spec->rootfs);
		if (!spec->oci_bundle && access(probe, X_OK) < 0)
			return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, errno, sb->id,
					    "boot.rootfs: %s has no executable sbin/silo-agent", spec->rootfs);
		need_agent = spec->oci_bundle;
		check_img = !spec->oci_bundle;
		if (spec->oci_bundle && spec->rootfs_layers) {
			/* an engine's overlay mount cannot be id-mapped: its layers can */
			img = strv_dup(spec->rootfs_layers);
			nimg = strv_len(img);
		} else {
			img = xcalloc(2, sizeof *img);
			img[nimg++] = xstrdup(spec->rootfs);
		}
	} else if (spec->image && *spec->image && strcmp(spec->image, "base") != 0) {
		image_entry e;
		if (image_lookup(spec->image, &e, err) < 0)
			return silo_error_prefix(err, "boot.image"), silo_error_set_vm(err, sb->id), -1;
		size_t nl = e.n_layers;
		image_entry_free(&e);
		if (!nl)
			return silo_fail_vm(err, SILO_ERR_NOT_SUPPORTED, 0, sb->id,
					    "image: \"%s\" has no namespace layers (a VM image only): build it again with "
					    "silo image build %s (or scripts/prepare-images.sh), which stores its root file "
					    "system as one, or import the image with silo image import",
					    spec->image, spec->image);
		if (oci_image_lowerdirs(spec->image, &img, &nimg, err) < 0)
			return silo_error_prefix(err, "boot.image"), silo_error_set_vm(err, sb->id), -1;
		L->held = true;
	} else {
		if (ns_rootfs_base(agent, dir, sizeof dir, err) < 0)
			return silo_error_set_vm(err, sb->id), -1;
		need_agent = false;
		img = xcalloc(2, sizeof *img);
		img[nimg++] = xstrdup(dir);
	}
	if (nimg + 2 > NS_MAX_LAYERS) {
		strv_free(img);
		return silo_fail_vm(err, SILO_ERR_NOT_SUPPORTED, 0, sb->id,
				    "image: %zu layers; overlayfs stacks at most %d", nimg, NS_MAX_LAYERS - 2);
	}
	L->agent = need_agent ? "/" NS_AGENT_DIR "/silo-agent" : "/sbin/silo-agent";
	if (need_agent) {
		if (ns_rootfs_agent(agent, dir, sizeof dir, err) < 0) {
			strv_free(img);
			return silo_error_set_vm(err, sb->id), -1;
		}
		layers_push(L, dir);
	}
	if (snapshot)
		layers_push(L, snapshot);
	L->first_image = L->n;
	for (size_t i = 0; i < nimg; i++)
		layers_push(L, img[i]);
	strv_free(img);
	/* With a keyring, the layers must be trees the signed manifest lists (lib/trust/tree.c). */
	char *check[NS_MAX_LAYERS];
	size_t nc = 0;
	for (size_t i = 0; i < L->n; i++)
		if ((!snapshot || strcmp(L->dirs[i], snapshot) != 0) && (check_img || i < L->first_image))
			check[nc++] = L->dirs[i];
	if (trust_check_trees(check, nc, NULL, err) < 0) {
		ns_layers_free(L);
		return silo_error_set_vm(err, sb->id), -1;
	}
	return 0;
}

/* Hold the image's layers (oci_layers_hold) in s and name them in RUNDIR/layers,
 * so a manager that reattaches holds them again. */
static int hold_layers(sandbox *sb, ns_state *s, char *const *dirs, size_t n, silo_error *err)
{
	if (!n)
		return 0;
	if (oci_layers_hold(dirs, n, &s->holds, err) < 0)
		return silo_error_set_vm(err, sb->id), -1;
	s->nholds = n;
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += strlen(dirs[i]) + 1;
	cleanup_free char *txt = xmalloc(len + 1);
	len = 0;
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(txt + len, "%s\n", dirs[i]);
	char p[PATH_MAX + 16];
	snprintf(p, sizeof p, "%s/" LAYERS_FILE, sb->rundir);
	if (write_file_atomic(p, txt, len, 0600, err) < 0)
		return silo_error_set_vm(err, sb->id), -1;
	return 0;
}

static void release_layers(ns_state *s)
{
	for (size_t i = 0; i < s->nholds; i++)
		close(s->holds[i]);
	free(s->holds);
	s->holds = NULL;
	s->nholds = 0;
}

/* After a manager restart: hold the layers RUNDIR/layers names again. */
static void rehold_layers(sandbox *sb, ns_state *s)
{
	char p[PATH_MAX + 16];
	snprintf(p, sizeof p, "%s/" LAYERS_FILE, sb->rundir);
	cleanup_free char *txt = NULL;
	size_t n = 0;
	if (read_file(p, (size_t)NS_MAX_LAYERS * (PATH_MAX + 1), &txt, &n, NULL) < 0)
		return;   /* none: not an image with layers */
	char **dirs = NULL;
	size_t nd = 0;
	for (char *save = NULL, *l = strtok_r(txt, "\n", &save); l && nd < NS_MAX_LAYERS; l = strtok_r(NULL, "\n", &save)) {
		dirs = xrealloc(dirs, (nd + 2) * sizeof *dirs);
		dirs[nd++] = xstrdup(l);
		dirs[nd] = NULL;
	}
	silo_error e = {0};
	if (nd && oci_layers_hold(dirs, nd, &s->holds, &e) == 0)
		s->nholds = nd;
	else if (nd)
		log_warn("%s: cannot hold its image layers again: %s", sb->id, e.message);
	strv_free(dirs);
}

/* Mount options of the sandbox's tmpfs mounts: sizes from disk_mb (/run at
 * most NS_RUN_MAX_MB). Their pages are charged to the sandbox's memory cgroup
 * as well. The owner is set with chown after mounting, not with uid=/gid=,
 * which mountinfo would show (the host's ids are not the sandbox's business). */
static void tmpfs_options(child_args *a, uint32_t disk_mb)
{
	uint32_t inodes = MAX(4096u, disk_mb * 64u);   /* ext4's default ratio, one per 16 KiB */
	snprintf(a->tmpfs[TMPFS_DEV], sizeof a->tmpfs[0], "mode=0755,size=64k,nr_inodes=256");
	snprintf(a->tmpfs[TMPFS_SHM], sizeof a->tmpfs[0], "mode=1777,size=%um,nr_inodes=%u", disk_mb, inodes);
	snprintf(a->tmpfs[TMPFS_TMP], sizeof a->tmpfs[0], "mode=1777,size=%um,nr_inodes=%u", disk_mb, inodes);
	snprintf(a->tmpfs[TMPFS_RUN], sizeof a->tmpfs[0], "mode=0755,size=%um,nr_inodes=%u",
		 MIN(disk_mb, NS_RUN_MAX_MB), MIN(inodes, 16384u));
}

/* After the init is gone: wait for the kernel to detach the disk (AUTOCLEAR
 * once the sandbox's mount namespace has died), free the id slot. false if
 * the disk is still attached. */
static bool release_host_resources(sandbox *sb, ns_state *s, pid_t owner)
{
	bool detached = true;
	if (s->disk.nr >= 0) {
		/* usually detached already (the init's exit unmounted it): poll
		 * briefly at first, then every 2 ms */
		uint64_t end = now_mono_ns() + NS_DETACH_TIMEOUT_MS * 1000000ull;
		long nap = 100 * 1000L;
		while ((detached = !ns_disk_attached(&s->disk)) == false && now_mono_ns() < end) {
			struct timespec ts = {0, nap};
			nanosleep(&ts, NULL);
			nap = MIN(nap * 2, 2 * 1000000L);
		}
		if (!detached)
			log_warn("%s: /dev/loop%d still holds the sandbox's disk", sb->id, s->disk.nr);
	}
	ns_ids_release(NS_IDS_DIR, s->ids.slot, owner);
	return detached;
}

/* spawn, or restore when layer (a snapshot's flattened writable layer) is set:
 * it goes between the fresh upper directory and the base layer. */
static int ns_start(sandbox *sb, const vm_spec *spec, const char *layer, silo_error *err)
{
	if (spec->n_drives)
		return silo_fail_vm(err, SILO_ERR_NOT_SUPPORTED, 0, sb->id,
				    "drives: the namespace provider does not attach block devices");
	if (geteuid() != 0)
		return silo_fail_vm(err, SILO_ERR_PROVIDER_UNAVAILABLE, EPERM, sb->id,
				    "namespace: needs root (cgroups, the sandbox's disk and id-mapped layers)");
	ns_layers L;
	if (image_layers(sb, spec, layer, &L, err) < 0)
		return -1;
	ns_state *s = xcalloc(1, sizeof *s);
	s->err_fd = -1;
	s->ids.slot = -1;
	ns_disk_init(&s->disk, sb->id);
	child_args *a = xcalloc(1, sizeof *a);
	a->userns_fd = -1;
	a->cg2_fd = -1;
	int listen_fd = -1, pipe_pid[2] = {-1, -1}, pipe_err[2] = {-1, -1}, pipe_sync[2] = {-1, -1},
	    pipe_disk[2] = {-1, -1}, disk_mnt = -1;
	ns_bpf bpf = {0};
	bool cg_made = false;
	int32_t init = 0;
	pid_t holder = 0;   /* made the user namespace; reaped at the end */
	snprintf(a->merged, sizeof a->merged, "%s/merged", sb->rundir);
	if (mkdir(a->merged, 0755) < 0) {
		silo_fail_vm(err, SILO_ERR_IO_ERROR, errno, sb->id, "namespace: mkdir %s", a->merged);
		goto fail;
	}
	a->lower = L.dirs;
	a->nlower = (int)L.n;
	snprintf(a->agent, sizeof a->agent, "%s", L.agent);
	if (L.held && hold_layers(sb, s, L.dirs + L.first_image, L.n - L.first_image, err) < 0)
		goto fail;
	snprintf(a->hostname, sizeof a->hostname, "%s", sb->id);
	snprintf(a->uts, sizeof a->uts, "%s", spec->hostname && *spec->hostname ? spec->hostname : sb->id);
	if (prepare_mounts(sb, spec, a, err) < 0)
		goto fail;
	snprintf(s->sock, sizeof s->sock, "%.*s/agent.sock", (int)(sizeof s->sock - 12), sb->rundir);
	listen_fd = unix_listen(s->sock, "namespace", err);
	if (listen_fd < 0)
		goto fail;
	cg_limits lim = {
		.memory_bytes = (uint64_t)(spec->memory_mb ? spec->memory_mb : 512) << 20,
		.cpu_millis = (spec->vcpus ? spec->vcpus : 1) * 1000,
		.pids_max = spec->pids_max ? spec->pids_max : NS_DEFAULT_PIDS,
	};
	if (cg_create(sb->id, &lim, &s->cg, err) < 0)
		goto fail;
	cg_made = true;
	a->ncg = s->cg.n;
	/* On cgroup v1 the intermediate (single-threaded) moves itself through "tasks"
	 * with "0": migrating the current thread skips the global threadgroup lock,
	 * whose first writer waits for an RCU grace period (10-40 ms here, the largest
	 * part of a `silo run` on this host; 0.05 ms this way). */
	if (s->cg.v2 && s->cg.n == 1)
		a->cg2_fd = open(s->cg.path[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);   /* -1: join instead */
	a->join_self = !s->cg.v2;
	for (int i = 0; i < s->cg.n; i++) {
		if (a->join_self)
			snprintf(a->procs[i], PATH_MAX, "%s/tasks", s->cg.path[i]);
		else
			memcpy(a->procs[i], s->cg.procs[i], PATH_MAX);
	}
	if (!cg_oom_file(&s->cg, a->oom_file, sizeof a->oom_file))
		a->oom_file[0] = '\0';
	/* the host id range, its user namespace, the disk */
	if (ns_ids_alloc(NS_IDS_DIR, sb->id, &s->ids, err) < 0)
		goto fail;
	a->uid = s->ids.uid;
	a->gid = s->ids.gid;
	snprintf(a->slot_path, sizeof a->slot_path, "%s/%d", NS_IDS_DIR, s->ids.slot);
	snprintf(a->slot_tmp, sizeof a->slot_tmp, "%s/.%d.tmp", NS_IDS_DIR, s->ids.slot);
	a->userns_fd = ns_userns_fd(0, a->uid, 0, a->gid, NS_IDS_SIZE, &holder);
	if (a->userns_fd < 0) {
		silo_fail_vm(err, SILO_ERR_PROVIDER_UNAVAILABLE, errno, sb->id,
			     "namespace: user namespace for host ids %u-%u", a->uid, a->uid + NS_IDS_SIZE - 1);
		goto fail;
	}
	uint32_t disk_mb = spec_disk_mb(spec);
	tmpfs_options(a, disk_mb);
	a->bpf = xcalloc(BPF_MAXINSNS, sizeof *a->bpf);
	if (pipe2(pipe_pid, O_CLOEXEC) < 0 || pipe2(pipe_err, O_CLOEXEC) < 0 || pipe2(pipe_sync, O_CLOEXEC) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pipe_disk) < 0) {
		silo_fail_vm(err, SILO_ERR_IO_ERROR, errno, sb->id, "namespace: pipe");
		goto fail;
	}
	a->listen_fd = listen_fd;
	a->err_fd = pipe_err[1];
	a->sync_fd = pipe_sync[0];
	a->disk_fd = pipe_disk[0];
	pid_t mid = fork();
	if (mid < 0) {
		silo_fail_vm(err, SILO_ERR_IO_ERROR, errno, sb->id, "namespace: fork");
		goto fail;
	}
	if (mid == 0) {
		close(pipe_pid[0]);
		close(pipe_err[0]);
		close(pipe_disk[1]);
		intermediate(a, pipe_pid[1], pipe_sync[1]);
	}
	close(pipe_pid[1]), pipe_pid[1] = -1;
	close(pipe_err[1]), pipe_err[1] = -1;
	close(pipe_sync[0]), pipe_sync[0] = -1;
	close(pipe_sync[1]), pipe_sync[1] = -1;
	close(pipe_disk[0]), pipe_disk[0] = -1;
	if (a->cg2_fd >= 0)
		close(a->cg2_fd), a->cg2_fd = -1;
	/* the disk, while the intermediate joins the cgroups and clones the init */
	/* and the seccomp filter (libseccomp allocates: never in the child), which
	 * follows the disk's number down the same pipe: at most BPF_MAXINSNS
	 * instructions, within the pipe's 64 KiB, so the write never blocks */
	/* the disk's filesystem is mounted here too (detached), and sent to the init:
	 * the mount's synchronous superblock write through the loop device is then
	 * not on the init's path */
	bool disk_ok = ns_disk_create(disk_mb, &s->disk, err) == 0 && write_state(sb, s, err) == 0 &&
		       (disk_mnt = ns_disk_mount(&s->disk, a->uid, a->gid, err)) >= 0 &&
		       ns_seccomp_build(&bpf, err) == 0;
	if (disk_ok && (bpf.prog.len == 0 || bpf.prog.len > BPF_MAXINSNS)) {
		silo_fail_vm(err, SILO_ERR_INTERNAL, 0, sb->id, "namespace: seccomp filter of %u instructions",
			     (unsigned)bpf.prog.len);
		disk_ok = false;
	}
	if (disk_ok) {
		size_t flen = (size_t)bpf.prog.len * sizeof *bpf.prog.filter;
		size_t mlen = sizeof(int32_t) + sizeof(uint16_t) + flen;
		cleanup_free unsigned char *m = xmalloc(mlen);
		int32_t nr = s->disk.nr;
		uint16_t nins = bpf.prog.len;
		memcpy(m, &nr, sizeof nr);
		memcpy(m + sizeof nr, &nins, sizeof nins);
		memcpy(m + sizeof nr + sizeof nins, bpf.prog.filter, flen);
		disk_ok = send_all_with_fds(pipe_disk[1], m, mlen, &disk_mnt, 1) == 0;
		if (!disk_ok)
			silo_fail_vm(err, SILO_ERR_IO_ERROR, errno, sb->id, "namespace: hand the disk to the sandbox init");
	}
	close(pipe_disk[1]), pipe_disk[1] = -1;   /* EOF for the init if the disk failed */
	if (disk_mnt >= 0)
		close(disk_mnt), disk_mnt = -1;   /* from now on the init's copy alone holds it */
	int st;
	while (waitpid(mid, &st, 0) < 0 && errno == EINTR)
		;
	ssize_t got = read(pipe_pid[0], &init, sizeof init);
	/* The init writes one NUL byte right before execve, or "step: error" if
	 * setup failed. Not EOF: siblings spawned concurrently by other threads
	 * hold copies of the write end until they exec themselves. */
	char msg[512] = "";
	size_t mlen = 0;
	uint64_t end = now_mono_ns() + NS_SETUP_TIMEOUT_MS * 1000000ull;
	bool timed_out = false, ready = false;
	while (disk_ok) {
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
	if (!disk_ok || got != sizeof init || init <= 0 || !ready || timed_out || !WIFEXITED(st) ||
	    WEXITSTATUS(st) != 0) {
		if (init > 0)
			kill(init, SIGKILL);
		if (timed_out)
			silo_fail_vm(err, SILO_ERR_BOOT_TIMEOUT, ETIMEDOUT, sb->id,
				     "namespace: sandbox setup did not finish within %d ms", NS_SETUP_TIMEOUT_MS);
		else if (disk_ok)   /* else err already says what became of the disk */
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
	if (ns_proc_stat(init, &state, &s->starttime) < 0)
		s->starttime = 0;
	close(listen_fd), listen_fd = -1;
	close(pipe_pid[0]);
	close(a->userns_fd);
	ns_userns_reap(&holder);
	ns_disk_close(&s->disk);   /* from now on the sandbox's mount alone holds it */
	ns_seccomp_free(&bpf);
	free(a->bpf);
	free(a->mounts);
	free(a);
	ns_layers_free(&L);
	sb->prov = s;
	if (write_pidfile(sb, s, err) < 0) {
		silo_error_set_vm(err, sb->id);
		kill(init, SIGKILL);
		wait_gone(init, s->starttime, 5000);
		sb->prov = NULL;
		sb->pid = 0;
		cg_remove(&s->cg);
		release_host_resources(sb, s, init);
		remove_rundir_contents(sb);
		close(s->err_fd);
		release_layers(s);
		free(s);
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
		if (pipe_disk[i] >= 0)
			close(pipe_disk[i]);
	}
	if (listen_fd >= 0)
		close(listen_fd);
	if (a->userns_fd >= 0)
		close(a->userns_fd);
	if (a->cg2_fd >= 0)
		close(a->cg2_fd);
	if (disk_mnt >= 0)
		close(disk_mnt);
	ns_userns_reap(&holder);
	if (cg_made)
		cg_remove(&s->cg);
	ns_disk_close(&s->disk);
	ns_ids_release(NS_IDS_DIR, s->ids.slot, getpid());
	release_host_resources(sb, s, init);
	remove_rundir_contents(sb);
	silo_error_set_vm(err, sb->id);
	ns_seccomp_free(&bpf);
	free(a->bpf);
	free(a->mounts);
	free(a);
	ns_layers_free(&L);
	release_layers(s);
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
 * restored from, so every snapshot stands alone over the base layer.
 * The layer is read through a detached mount of the sandbox's disk id-mapped
 * back to the sandbox's own ids (host uid U+k reads as k): snapshots hold
 * the ids the sandbox saw, and a restore maps them to its own range. */
static int ns_snapshot(sandbox *sb, const char *dir, silo_error *err)
{
	ns_state *s = sb->prov;
	if (!s || s->disk.nr < 0)
		return silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, 0, sb->id, "namespace: sandbox not running");
	int uns = ns_userns_fd(s->ids.uid, 0, s->ids.gid, 0, NS_IDS_SIZE, NULL);
	if (uns < 0)
		return silo_fail_vm(err, SILO_ERR_IO_ERROR, errno, sb->id, "namespace: user namespace for the layer view");
	cleanup_close int view = ns_disk_view(&s->disk, uns, err);
	close(uns);
	if (view < 0) {
		silo_error_set_vm(err, sb->id);
		return -1;
	}
	char upper[64], layer[PATH_MAX + 16], parent[PATH_MAX + 128];
	snprintf(upper, sizeof upper, "/proc/self/fd/%d/upper", view);
	snprintf(layer, sizeof layer, "%s/layer", dir);
	size_t skipped = 0, sk2 = 0;
	int rc;
	if (parent_layer(sb, parent, sizeof parent)) {
		/* whiteouts stay only where the layers below have the name: with
		 * one base layer that is checked, with an image's layers all stay */
		ns_layers L;
		rc = image_layers(sb, &sb->spec, NULL, &L, err);
		const char *base = rc == 0 && L.n == 1 ? L.dirs[0] : NULL;
		if (rc == 0)
			rc = snap_copy_tree(parent, layer, snap_max_bytes(), &sk2, err);
		if (rc == 0)
			rc = snap_merge_tree(upper, layer, base, snap_max_bytes(), &skipped, err);
		if (L.n)
			ns_layers_free(&L);
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
	/* /tmp, /run and /dev/shm: tmpfs, not on the disk (ns-tmpfs.c) */
	if (ns_tmpfs_save(sb->pid, s->ids.uid, s->ids.gid, dir, err) < 0) {
		silo_error_set_vm(err, sb->id);
		return -1;
	}
	return 0;
}

static int ns_terminate(sandbox *sb, int grace_ms, silo_error *err);

static int ns_restore(sandbox *sb, const vm_spec *spec, const char *dir, silo_error *err)
{
	char layer[PATH_MAX + 16];
	snprintf(layer, sizeof layer, "%s/layer", dir);
	struct stat st;
	if (lstat(layer, &st) < 0 || !S_ISDIR(st.st_mode))
		return silo_fail_vm(err, SILO_ERR_CHECKSUM_MISMATCH, errno, sb->id,
				    "namespace: %s is not a snapshot layer directory", layer);
	if (ns_start(sb, spec, layer, err) < 0)
		return -1;
	ns_state *s = sb->prov;
	if (ns_tmpfs_load(sb->pid, s->ids.uid, s->ids.gid, dir, err) < 0) {
		silo_error_set_vm(err, sb->id);
		silo_error e2 = {0};
		if (ns_terminate(sb, 0, &e2) < 0)
			log_error("%s: terminate after a failed restore: %s", sb->id, e2.message);
		return -1;
	}
	return 0;
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
			return silo_fail_vm(err, SILO_ERR_IO_ERROR, errno, sb->id, "namespace: socket");
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
			return fd;
		int e = errno;
		close(fd);
		if ((e != EAGAIN && e != ECONNREFUSED && e != ENOENT && e != EINTR) || now_mono_ns() >= end)
			return silo_fail_vm(err, SILO_ERR_VSOCK_DISCONNECTED, e, sb->id,
					    "namespace: connect %s", s->sock);
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
		cg_paths(sb->id, &tmp.cg);
		read_state(sb, &tmp);
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
		cg_freeze(&s->cg, false, NULL);
	if (sb->pid > 0 && pid_alive(sb->pid, start)) {
		if (grace_ms > 0 && sb->ch && chan_is_connected(sb->ch) &&
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
	int cg = cg_remove(&s->cg);
	bool detached = release_host_resources(sb, s, sb->pid);
	int loop = s->disk.nr;
	if (detached) {
		remove_rundir_contents(sb);
	} else {
		/* keep RUNDIR/ns-state: residue() names the device from it */
		static const char *const names[] = {"merged", "agent.sock", "pid", LAYERS_FILE};
		for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
			char p[PATH_MAX + 16];
			snprintf(p, sizeof p, "%s/%s", sb->rundir, names[i]);
			rm_rf(p);
		}
	}
	if (s != &tmp) {
		if (s->err_fd >= 0)
			close(s->err_fd);
		release_layers(s);
		free(s);
	}
	sb->prov = NULL;
	if (cg < 0)
		return silo_fail_vm(err, SILO_ERR_CLEANUP_FAILED, EBUSY, sb->id,
				    "namespace: cgroup %s could not be removed", tmp.cg.path[0]);
	if (!detached)
		return silo_fail_vm(err, SILO_ERR_CLEANUP_FAILED, EBUSY, sb->id,
				    "namespace: /dev/loop%d (the sandbox's disk) is still attached", loop);
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
	if (!read_state(sb, s))
		log_warn("%s: %s/" STATE_FILE " is missing or malformed: no snapshots of this sandbox", sb->id,
			 sb->rundir);
	cg_paths(sb->id, &s->cg);
	snprintf(s->sock, sizeof s->sock, "%.*s/agent.sock", (int)(sizeof s->sock - 12), sb->rundir);
	rehold_layers(sb, s);
	sb->prov = s;
	/* A sandbox paused when the previous manager went away comes back
	 * running (its agent must answer the reattach handshake). */
	if (s->cg.freeze[0] && path_exists(s->cg.freeze))
		cg_freeze(&s->cg, false, NULL);
	return 0;
}

/* pause (frozen) and resume: the cgroup freezer */
static int ns_freeze(sandbox *sb, bool frozen, silo_error *err)
{
	ns_state *s = sb->prov;
	if (!s)
		return silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, 0, sb->id, "namespace: sandbox not running");
	int rc = cg_freeze(&s->cg, frozen, err);
	if (rc < 0)
		silo_error_set_vm(err, sb->id);
	return rc;
}

static int ns_pause(sandbox *sb, silo_error *err)
{
	return ns_freeze(sb, true, err);
}

static int ns_resume(sandbox *sb, silo_error *err)
{
	return ns_freeze(sb, false, err);
}

static void ns_residue(sandbox *sb, char ***out)
{
	ns_state *s = sb->prov;
	if (sb->pid > 0 && pid_alive(sb->pid, s ? s->starttime : 0))
		strv_push(out, xasprintf("pid %d (namespace init)", (int)sb->pid));
	cg_set cg;
	cg_paths(sb->id, &cg);
	for (int i = 0; i < cg.n; i++)
		if (path_exists(cg.path[i]))
			strv_push(out, xasprintf("cgroup %s", cg.path[i]));
	char p[PATH_MAX + 16];
	snprintf(p, sizeof p, "%s/agent.sock", sb->rundir);
	if (path_exists(p))
		strv_push(out, xasprintf("%s", p));
	/* RUNDIR/ns-state outlives terminate only when the disk did not detach
	 * (it is written before the loop device can outlive us: until then
	 * AUTOCLEAR and our own fd tie the device to this process) */
	ns_state st;
	if (read_state(sb, &st)) {
		if (ns_disk_attached(&st.disk))
			strv_push(out, xasprintf("loop /dev/loop%d (the sandbox's disk)", st.disk.nr));
		if (ns_ids_held(NS_IDS_DIR, st.ids.slot, sb->pid))
			strv_push(out, xasprintf("%s/%d (host id slot)", NS_IDS_DIR, st.ids.slot));
	}
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
	if (sb->pid <= 0 || ns_proc_stat(sb->pid, &state, &st) < 0 || (s && s->starttime && st != s->starttime))
		snprintf(buf, len, "namespace init %d has exited", (int)sb->pid);
	else
		snprintf(buf, len, "namespace init %d (%s) is in state %c and has not answered on %s", (int)sb->pid,
			 comm, state, s ? s->sock : "agent.sock");
}

static void ns_probe(provider_info *info)
{
	info->available = false;
	snprintf(info->accel, sizeof info->accel, "none");
	struct utsname u = {0};
	if (uname(&u) == 0)
		snprintf(info->version, sizeof info->version, "Linux %s", u.release);
	char agent[PATH_MAX];
	silo_error e = {0};
	char cg[128];
	cleanup_free char *fs = NULL;
	size_t n;
	if (geteuid() != 0) {
		snprintf(info->reason, sizeof info->reason,
			 "needs root: cgroup limits, the sandbox's disk and its id-mapped layers are set up by the host side");
		return;
	}
	int major = 0, minor = 0;
	if (sscanf(u.release, "%d.%d", &major, &minor) == 2 && (major < 6 || (major == 6 && minor < 15))) {
		snprintf(info->reason, sizeof info->reason,
			 "needs Linux 6.15 or later (overlayfs layers from detached, id-mapped mounts); this is %s", u.release);
		return;
	}
	cleanup_free char *userns = NULL;
	if (read_file("/proc/sys/user/max_user_namespaces", 64, &userns, &n, NULL) == 0 && atoi(userns) <= 0) {
		snprintf(info->reason, sizeof info->reason, "user namespaces are disabled (user.max_user_namespaces = 0)");
		return;
	}
	if (!ns_disk_probe(info->reason, sizeof info->reason))
		return;
	if (read_file("/proc/filesystems", 65536, &fs, &n, NULL) < 0 || !strstr(fs, "\toverlay\n")) {
		snprintf(info->reason, sizeof info->reason, "the kernel has no overlayfs");
		return;
	}
	if (!cg_probe(cg, sizeof cg)) {
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
	.net = PROVIDER_NET_NETNS,   /* pasta joins the sandbox's network namespace (docs/network.md) */
	.net_mtu = 65520,            /* pasta's tap */
	/* the init is pid 1 of its own pid namespace; the intermediate, the user
	 * namespace helper and mkfs are reaped in spawn; residue() checks the init */
	.pidns_contained = true,
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
