/* SPDX-License-Identifier: Apache-2.0
 * Host id ranges of namespace sandboxes (docs/providers.md "User namespace").
 *
 * As root, every sandbox runs in its own user namespace whose ids 0-65535 map
 * to a private range of 65536 unprivileged host ids: slot k of the pool is
 * host uids UBASE + k*65536 .. +65535 (gids likewise from GBASE). The pool is
 * the "silo" entry of /etc/subuid and /etc/subgid when both exist (start and
 * count; count/65536 slots), else NS_IDS_DEFAULT_BASE with
 * NS_IDS_DEFAULT_SLOTS slots: 1610612736-1879048191 (0x60000000-0x6fffffff),
 * inside the range systemd documents for container ids and far above the
 * 100000+ that useradd hands out in /etc/subuid.
 *
 * Allocation is host-wide, shared by every silod and `silo run` whatever
 * their SILO_RUNTIME_DIR: one file per slot in NS_IDS_DIR holding
 * "PID STARTTIME SANDBOX-ID" of the process that owns it. Rules:
 *   - a slot is free when its file is missing or names a process that is gone
 *     (pid and start time, so a reused pid does not count);
 *   - allocation scans from a hash of the sandbox id under flock(NS_IDS_DIR/.lock)
 *     and writes the allocator's own pid (it is alive while it spawns);
 *   - the spawn's intermediate process replaces that with the sandbox init's
 *     pid before the init runs (ns_ids_own: async-signal-safe, atomic rename),
 *     so a slot stays taken exactly as long as its sandbox lives, across
 *     restarts of silod and kill -9 of anything;
 *   - terminate removes the file (ns_ids_release) once the init is gone; a file
 *     left by a kill -9 of both the sandbox and its manager names a dead
 *     process, so it blocks nothing: the next allocation that probes it takes
 *     it, and every allocation removes a few such files (sweep_some).
 * Every record is replaced by rename, so readers never see half a record. No
 * fsync: a record only has to outlive processes, not the host (after a
 * reboot every owner is gone anyway).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/lockfile.h"
#include "common/util.h"
#include "providers/ns.h"

/* ---- async-signal-safe /proc/PID/stat (used in forked children too) ---- */

void ns_utoa(char *dst, size_t n, unsigned long long v)
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

int ns_proc_stat(pid_t pid, char *state, unsigned long long *start)
{
	char p[48] = "/proc/", num[24], buf[1024];
	ns_utoa(num, sizeof num, (unsigned long long)pid);
	strcat(p, num);
	strcat(p, "/stat");
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *r = strrchr(buf, ')');
	if (!r || r[1] != ' ' || !r[2])
		return -1;
	*state = r[2];
	/* fields after ')': 3 = state ... 22 = starttime */
	char *s = r + 2;
	for (int field = 3; *s && field < 22; s++)
		if (*s == ' ')
			field++;
	unsigned long long v = 0;
	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++)
		v = v * 10 + (unsigned long long)(*s - '0');
	*start = v;
	return 0;
}

bool ns_pid_alive(pid_t pid, unsigned long long start)
{
	if (pid <= 0)
		return false;
	char state;
	unsigned long long s;
	if (ns_proc_stat(pid, &state, &s) < 0)
		return false;
	if (start && s != start)
		return false;   /* pid reused */
	return state != 'Z' && state != 'X';
}

/* struct clone_args of Linux 5.7 (CLONE_INTO_CGROUP), spelled out: glibc's
 * headers of Debian 12 do not have it and <linux/sched.h> clashes with <sched.h> */
struct ns_clone_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size,
		cgroup;
};
#define NS_CLONE_INTO_CGROUP 0x200000000ULL

long ns_clone_into_cgroup(unsigned long flags, int cgroup_fd)
{
	struct ns_clone_args ca;
	memset(&ca, 0, sizeof ca);
	ca.flags = (uint64_t)flags | NS_CLONE_INTO_CGROUP;
	ca.exit_signal = SIGCHLD;
	ca.cgroup = (uint64_t)cgroup_fd;
	return syscall(SYS_clone3, &ca, sizeof ca);
}

/* ---- the pool ---- */

int ns_ids_parse_sub(const char *text, const char *name, uint32_t *start, uint32_t *count)
{
	size_t nl = strlen(name);
	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, name, nl) != 0 || l[nl] != ':')
			continue;
		char *end;
		errno = 0;
		unsigned long long s = strtoull(l + nl + 1, &end, 10);
		if (errno || end == l + nl + 1 || *end != ':')
			return -1;
		const char *c = end + 1;
		unsigned long long n = strtoull(c, &end, 10);
		if (errno || end == c || (*end && *end != '\n'))
			return -1;
		if (s == 0 || n < NS_IDS_SIZE || s + n - 1 > 0xfffffffeull)
			return -1;
		*start = (uint32_t)s;
		*count = (uint32_t)n;
		return 1;
	}
	return 0;
}

int ns_ids_pool(ns_id_pool *pool, silo_error *err)
{
	static const char *const files[2] = {"/etc/subuid", "/etc/subgid"};
	uint32_t start[2] = {0, 0}, count[2] = {0, 0};
	int found = 0;
	for (int i = 0; i < 2; i++) {
		cleanup_free char *txt = NULL;
		size_t n;
		if (read_file(files[i], 1 << 20, &txt, &n, NULL) < 0)
			continue;
		int rc = ns_ids_parse_sub(txt, NS_IDS_SUB_NAME, &start[i], &count[i]);
		if (rc < 0)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "%s: the \"" NS_IDS_SUB_NAME "\" entry must be " NS_IDS_SUB_NAME
					 ":START:COUNT with START > 0 and COUNT >= %u",
					 files[i], NS_IDS_SIZE);
		found += rc;
	}
	if (found == 1)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "/etc/subuid and /etc/subgid: a \"" NS_IDS_SUB_NAME "\" entry must be in both or neither");
	if (found == 2) {
		pool->uid_base = start[0];
		pool->gid_base = start[1];
		pool->slots = MIN(count[0], count[1]) / NS_IDS_SIZE;
	} else {
		pool->uid_base = pool->gid_base = NS_IDS_DEFAULT_BASE;
		pool->slots = NS_IDS_DEFAULT_SLOTS;
	}
	return 0;
}

/* ---- slot records ---- */

int ns_write_volatile(const char *path, const char *tmp, const char *text)
{
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -1;
	int rc = write_all(fd, text, strlen(text));
	int e = errno;
	close(fd);
	if (rc < 0 || rename(tmp, path) < 0) {
		e = rc < 0 ? e : errno;
		unlink(tmp);
		errno = e;
		return -1;
	}
	return 0;
}

/* "PID STARTTIME SANDBOX-ID\n" of pid into txt; -1 if pid is gone. */
static int owner_record(char *txt, size_t len, pid_t pid, const char *sbid)
{
	char state, num[24];
	unsigned long long start;
	if (len < 64 || ns_proc_stat(pid, &state, &start) < 0)
		return -1;
	txt[0] = '\0';
	ns_utoa(num, sizeof num, (unsigned long long)pid);
	strcat(txt, num);
	strcat(txt, " ");
	ns_utoa(num, sizeof num, start);
	strcat(txt, num);
	strcat(txt, " ");
	strncat(txt, sbid, len - strlen(txt) - 2);
	strcat(txt, "\n");
	return 0;
}


static void slot_path(const char *dir, int slot, char *out, size_t len)
{
	snprintf(out, len, "%s/%d", dir, slot);
}

/* The owner named by a record, 0 if none or unreadable. */
static pid_t read_owner(const char *path, unsigned long long *start)
{
	cleanup_free char *txt = NULL;
	size_t n;
	*start = 0;
	if (read_file(path, 256, &txt, &n, NULL) < 0)
		return 0;
	int pid = 0;
	if (sscanf(txt, "%d %llu", &pid, start) != 2 || pid <= 0)
		return 0;
	return (pid_t)pid;
}

static uint32_t hash_id(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* Records whose owner died without a terminate (the sandbox and its manager
 * both killed) block nothing, but stay until something removes them: each
 * allocation checks a few from a random place in the directory. */
static void sweep_some(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	int slots[NS_IDS_SWEEP_SCAN], n = 0;
	struct dirent *de;
	while (n < NS_IDS_SWEEP_SCAN && (de = readdir(d))) {
		char *end;
		long v = strtol(de->d_name, &end, 10);
		if (de->d_name[0] >= '0' && de->d_name[0] <= '9' && !*end && v >= 0 && v < INT32_MAX)
			slots[n++] = (int)v;
	}
	closedir(d);
	for (int k = 0, at = n ? (int)(now_mono_ns() % (uint64_t)n) : 0; k < n && k < NS_IDS_SWEEP_CHECK; k++) {
		char p[PATH_MAX];
		slot_path(dir, slots[(at + k) % n], p, sizeof p);
		unsigned long long st;
		pid_t owner = read_owner(p, &st);
		if (owner > 0 && !ns_pid_alive(owner, st))
			unlink(p);
	}
}

int ns_ids_alloc(const char *dir, const char *sbid, ns_ids *out, silo_error *err)
{
	ns_id_pool pool;
	if (ns_ids_pool(&pool, err) < 0)
		return -1;
	if (mkdir_p(dir, 0700) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "namespace: mkdir %s", dir);
	/* whoever can write here can make two sandboxes share a range */
	struct stat ds;
	if (lstat(dir, &ds) < 0 || !S_ISDIR(ds.st_mode) || ds.st_uid != geteuid() || (ds.st_mode & 022))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, EPERM,
				 "namespace: %s must be a directory of uid %u that only it can write", dir,
				 (unsigned)geteuid());
	char lock[PATH_MAX];
	snprintf(lock, sizeof lock, "%s/.lock", dir);
	cleanup_close int lfd = lockfile_open(lock, LOCK_EX, err);
	if (lfd < 0) {
		silo_error_prefix(err, "namespace");
		return -1;
	}
	sweep_some(dir);
	char mine[160];
	if (owner_record(mine, sizeof mine, getpid(), sbid) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "namespace: reading /proc/self/stat");
	uint32_t first = hash_id(sbid) % pool.slots;
	for (uint32_t i = 0; i < pool.slots; i++) {
		int slot = (int)((first + i) % pool.slots);
		char p[PATH_MAX];
		slot_path(dir, slot, p, sizeof p);
		unsigned long long st;
		pid_t owner = read_owner(p, &st);
		if (owner > 0 && ns_pid_alive(owner, st))
			continue;
		if (owner == 0 && path_exists(p)) {
			/* unreadable or not a record: not ours to judge, skip it */
			struct stat sb;
			if (lstat(p, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size > 0)
				continue;
		}
		char tmp[PATH_MAX + 16];
		snprintf(tmp, sizeof tmp, "%s/.%d.alloc", dir, slot);
		if (ns_write_volatile(p, tmp, mine) < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "namespace: write %s", p);
		out->slot = slot;
		out->uid = pool.uid_base + (uint32_t)slot * NS_IDS_SIZE;
		out->gid = pool.gid_base + (uint32_t)slot * NS_IDS_SIZE;
		return 0;
	}
	return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0,
			 "namespace: all %u host id ranges are in use (%s; more with a \"" NS_IDS_SUB_NAME
			 "\" entry in /etc/subuid and /etc/subgid)",
			 pool.slots, dir);
}

int ns_ids_own(const char *path, const char *tmp, pid_t pid, const char *sbid)
{
	char txt[160];
	if (owner_record(txt, sizeof txt, pid, sbid) < 0)
		return -1;
	return ns_write_volatile(path, tmp, txt);
}

void ns_ids_release(const char *dir, int slot, pid_t pid)
{
	if (slot < 0)
		return;
	char p[PATH_MAX];
	slot_path(dir, slot, p, sizeof p);
	unsigned long long st;
	if (read_owner(p, &st) == pid)
		unlink(p);
}

bool ns_ids_held(const char *dir, int slot, pid_t pid)
{
	if (slot < 0)
		return false;
	char p[PATH_MAX];
	slot_path(dir, slot, p, sizeof p);
	unsigned long long st;
	return read_owner(p, &st) == pid && pid > 0;
}

/* ---- user namespaces as fds ---- */

/* The pipe's two fds come packed in the argument itself: the holder shares
 * our memory, and the creator's stack frame may be gone before it runs. */
static int holder(void *arg)
{
	uint64_t fds = (uint64_t)(uintptr_t)arg;
	char c;
	unsigned r = (unsigned)(fds & 0xffffffffu);
	/* Keep nothing of the creator's but our read end: a copy of another
	 * spawn's pipe (a concurrent ns_userns_fd in another thread) would make
	 * that holder wait for an EOF we prevent, and ours for one it prevents,
	 * and a copy of a lock (the host-wide id lock) would outlive its holder. */
	if (r > 0)
		syscall(SYS_close_range, 0u, r - 1, 0u);
	syscall(SYS_close_range, r + 1, ~0u, 0u);
	(void)!syscall(SYS_read, (int)r, &c, 1);   /* EOF when the creator is done */
	syscall(SYS_exit, 0);
	return 0;
}

static int write_proc(pid_t pid, const char *file, const char *text)
{
	char p[64] = "/proc/", num[24];
	ns_utoa(num, sizeof num, (unsigned long long)pid);
	strcat(p, num);
	strcat(p, "/");
	strcat(p, file);
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = write_all(fd, text, strlen(text));
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

/* "INSIDE OUTSIDE COUNT\n" */
static void map_line(char *dst, size_t n, uint32_t inside, uint32_t outside, uint32_t count)
{
	char num[24];
	dst[0] = '\0';
	ns_utoa(num, sizeof num, inside);
	strncat(dst, num, n - strlen(dst) - 1);
	strncat(dst, " ", n - strlen(dst) - 1);
	ns_utoa(num, sizeof num, outside);
	strncat(dst, num, n - strlen(dst) - 1);
	strncat(dst, " ", n - strlen(dst) - 1);
	ns_utoa(num, sizeof num, count);
	strncat(dst, num, n - strlen(dst) - 1);
	strncat(dst, "\n", n - strlen(dst) - 1);
}

int ns_userns_fd(uint32_t uid_inside, uint32_t uid_outside, uint32_t gid_inside, uint32_t gid_outside,
		 uint32_t count, pid_t *holder_out)
{
	/* A holder process born in a new user namespace (sharing our memory, on
	 * a stack of its own) waits on a pipe while we write its maps and open
	 * its namespace; async-signal-safe, so forked children may call it. */
	int pp[2];
	if (pipe2(pp, O_CLOEXEC) < 0)
		return -1;
	/* one stack per thread: a caller that defers the reaping must reap
	 * before its thread calls again */
	static _Thread_local char stack[16384] __attribute__((aligned(16)));
	_Static_assert(sizeof(uintptr_t) >= sizeof(uint64_t), "two fds in a pointer");
	uint64_t fds = (uint64_t)(uint32_t)pp[0] | (uint64_t)(uint32_t)pp[1] << 32;
	pid_t pid = clone(holder, stack + sizeof stack, CLONE_NEWUSER | CLONE_VM | SIGCHLD, (void *)(uintptr_t)fds);
	int e = errno, fd = -1;
	if (pid > 0) {
		char um[80], gm[80], p[64] = "/proc/", num[24];
		map_line(um, sizeof um, uid_inside, uid_outside, count);
		map_line(gm, sizeof gm, gid_inside, gid_outside, count);
		ns_utoa(num, sizeof num, (unsigned long long)pid);
		strcat(p, num);
		strcat(p, "/ns/user");
		if (write_proc(pid, "uid_map", um) == 0 && write_proc(pid, "gid_map", gm) == 0)
			fd = open(p, O_RDONLY | O_CLOEXEC);
		e = errno;
	}
	close(pp[1]);   /* EOF: the holder exits */
	close(pp[0]);
	if (holder_out)
		*holder_out = pid > 0 ? pid : 0;
	else
		ns_userns_reap(&pid);
	errno = e;
	return fd;
}

void ns_userns_reap(pid_t *holder)
{
	if (*holder > 0)
		while (waitpid(*holder, NULL, __WALL) < 0 && errno == EINTR)
			;
	*holder = 0;
}
