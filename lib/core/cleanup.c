/* SPDX-License-Identifier: Apache-2.0
 * Host-side cleanup verification and the retry of leftovers at the next start
 * (lib/core/cleanup.h, docs/security.md).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/loop.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "core/cleanup.h"

#define CLEANUP_RECORD_KEEP_S (30 * 24 * 3600)   /* clean records: 30 days */
#define CLEANUP_RETRY_MS 3000                    /* bound on waiting for killed processes */

static bool has(char **v, const char *s)
{
	for (; v && *v; v++)
		if (!strcmp(*v, s))
			return true;
	return false;
}

static void push_unique(char ***v, char *s)
{
	if (has(*v, s)) {
		free(s);
		return;
	}
	size_t n = strv_len(*v);
	*v = xrealloc(*v, (n + 2) * sizeof **v);
	(*v)[n] = s;
	(*v)[n + 1] = NULL;
}

void cleanup_add(char ***v, const char *item)
{
	push_unique(v, xstrdup(item));
}

static bool under(const char *path, const char *dir)
{
	size_t l = strlen(dir);
	return l && !strncmp(path, dir, l) && (path[l] == '\0' || path[l] == '/');
}

void cleanup_tap_name(const char *id, char out[16])
{
	size_t l = strlen(id);
	snprintf(out, 16, "st%s", l > 12 ? id + l - 12 : id);
}

static bool link_exists(const char *ifname)
{
	char p[64 + IFNAMSIZ];
	snprintf(p, sizeof p, "/sys/class/net/%s", ifname);
	return access(p, F_OK) == 0;
}

/* A persistent tun/tap goes away when its persist flag is cleared. */
static void tap_delete(const char *ifname)
{
	static const short kinds[] = {IFF_TAP, IFF_TUN};
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return;
		struct ifreq ifr;
		memset(&ifr, 0, sizeof ifr);
		snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
		ifr.ifr_flags = kinds[i] | IFF_NO_PI;
		if (ioctl(fd, TUNSETIFF, &ifr) == 0) {
			(void)ioctl(fd, TUNSETPERSIST, 0);
			close(fd);
			return;
		}
		close(fd);
	}
}

static int cmp_len_desc(const void *a, const void *b)
{
	size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
	return la < lb ? 1 : la > lb ? -1 : 0;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo */
static void unescape(char *s)
{
	char *o = s;
	for (char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '7' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' &&
		    p[3] <= '7') {
			*o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 3;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
}

static void scan_mounts(const char *rundir, char ***out)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return;
	char line[8192];
	while (fgets(line, sizeof line, f)) {
		/* id parent maj:min root mountpoint ... */
		char *save = NULL, *tok = strtok_r(line, " ", &save);
		for (int i = 0; tok && i < 4; i++)
			tok = strtok_r(NULL, " ", &save);
		if (!tok)
			continue;
		unescape(tok);
		if (under(tok, rundir))
			push_unique(out, xasprintf("mount %s", tok));
	}
	fclose(f);
}

/* Mount points at or below rundir, deepest first. */
static char **mounts_below(const char *rundir)
{
	char **v = NULL;
	scan_mounts(rundir, &v);
	for (char **p = v; p && *p; p++)
		memmove(*p, *p + 6, strlen(*p + 6) + 1);   /* drop "mount " */
	if (v)
		qsort(v, strv_len(v), sizeof *v, cmp_len_desc);
	return v;
}

/* Loop devices whose backing file is at or below rundir: "/dev/loopN" + the file.
 * Only attached devices can have one, and /proc/partitions lists exactly the block
 * devices with a size: one read instead of a sysfs lookup per device ever created
 * (a host that once ran 1000 sandboxes keeps 1000 free loop devices; scanning them
 * all cost every exit about 30 ms). */
static void scan_loops(const char *rundir, void (*fn)(void *ud, const char *dev, const char *file), void *ud)
{
	FILE *d = fopen("/proc/partitions", "re");
	if (!d)
		return;
	char line[256];
	while (fgets(line, sizeof line, d)) {
		char name[64];
		unsigned long long blocks;
		if (sscanf(line, " %*u %*u %llu %63s", &blocks, name) != 2 || !blocks ||
		    strncmp(name, "loop", 4) != 0 || !isdigit((unsigned char)name[4]))
			continue;
		char p[300];
		snprintf(p, sizeof p, "/sys/block/%s/loop/backing_file", name);
		char *t = NULL;
		size_t n;
		if (read_file(p, PATH_MAX + 32, &t, &n, NULL) < 0)
			continue;
		t[strcspn(t, "\n")] = '\0';
		size_t l = strlen(t);
		if (l > 10 && !strcmp(t + l - 10, " (deleted)"))
			t[l - 10] = '\0';
		if (under(t, rundir)) {
			char dev[300];
			snprintf(dev, sizeof dev, "/dev/%s", name);
			fn(ud, dev, t);
		}
		free(t);
	}
	fclose(d);
}

static void report_loop(void *ud, const char *dev, const char *file)
{
	push_unique(ud, xasprintf("loop %s (%s)", dev, file));
}

static void detach_loop(void *ud, const char *dev, const char *file)
{
	(void)ud;
	int fd = open(dev, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (ioctl(fd, LOOP_CLR_FD, 0) < 0 && errno != ENXIO)
		log_warn("cleanup: detach %s (%s): %s", dev, file, strerror(errno));
	close(fd);
}

void cleanup_release_mounts(const char *rundir)
{
	if (!rundir || !rundir[0])
		return;
	char **m = mounts_below(rundir);
	for (char **p = m; p && *p; p++)
		if (umount2(*p, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
			log_warn("cleanup: umount %s: %s", *p, strerror(errno));
	strv_free(m);
	scan_loops(rundir, detach_loop, NULL);
}

static void scan_sockets(const char *rundir, char ***out)
{
	FILE *f = fopen("/proc/net/unix", "re");
	if (!f)
		return;
	char line[8192];
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = '\0';
		char *p = strrchr(line, ' ');
		if (p && p[1] == '/' && under(p + 1, rundir))
			push_unique(out, xasprintf("socket %s", p + 1));
	}
	fclose(f);
}

static void proc_comm(int pid, char *buf, size_t len)
{
	char p[64];
	snprintf(p, sizeof p, "/proc/%d/comm", pid);
	char *t = NULL;
	size_t n;
	snprintf(buf, len, "?");
	if (read_file(p, 64, &t, &n, NULL) == 0) {
		t[strcspn(t, "\n")] = '\0';
		snprintf(buf, len, "%s", t);
		free(t);
	}
}

static bool proc_is_zombie(int pid)
{
	char p[64];
	snprintf(p, sizeof p, "/proc/%d/stat", pid);
	char *t = NULL;
	size_t n;
	if (read_file(p, 4096, &t, &n, NULL) < 0)
		return true;
	char *rp = strrchr(t, ')');
	bool z = rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
	free(t);
	return z;
}

/* Does /proc/PID/cmdline name the sandbox (its id or run dir)? */
static bool cmdline_names(int pid, const char *id, const char *rundir)
{
	char p[64];
	snprintf(p, sizeof p, "/proc/%d/cmdline", pid);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	char buf[16384];
	ssize_t r = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (r <= 0)
		return false;
	for (ssize_t i = 0; i < r; i++)
		if (!buf[i])
			buf[i] = ' ';
	buf[r] = '\0';
	/* only the tag silod's VMs carry (qemu -name silo-<id>): a shell command line that
	 * merely mentions the run dir (ls, find) is not the sandbox's */
	(void)rundir;
	char tag[SILO_ID_MAX + 8];
	snprintf(tag, sizeof tag, "silo-%s", id);
	return strstr(buf, tag) != NULL;
}

/* Kernel threads: the children of kthreadd (pid 2), read in one go from
 * /proc/2/task/2/children (sorted ascending; NULL where the kernel lacks
 * CONFIG_PROC_CHILDREN: then every pid is looked at). A kernel thread has no
 * cwd, root or command line of its own, so a scan may skip it; each listed
 * pid is still confirmed (proc_has_mm) because it may have been reused. */
static int *kthread_pids(size_t *n)
{
	*n = 0;
	char *t = NULL;
	size_t len;
	if (read_file("/proc/2/task/2/children", 1 << 20, &t, &len, NULL) < 0)
		return NULL;
	int *v = NULL;
	size_t cap = 0;
	for (char *save = NULL, *w = strtok_r(t, " \n", &save); w; w = strtok_r(NULL, " \n", &save)) {
		if (*n == cap)
			v = xrealloc(v, (cap = cap ? cap * 2 : 128) * sizeof *v);
		v[(*n)++] = atoi(w);
	}
	free(t);
	return v;
}

static bool in_sorted(const int *v, size_t n, int pid)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v[mid] == pid)
			return true;
		if (v[mid] < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

/* Does pid have a user address space? Kernel threads and zombies do not (their
 * /proc/PID/exe does not resolve), and a process cannot give its up: one
 * syscall that proves a pid holds nothing a sandbox could have left. */
static bool proc_has_mm(int pid)
{
	char p[64], t[16];
	snprintf(p, sizeof p, "/proc/%d/exe", pid);
	return readlink(p, t, sizeof t) >= 0 || errno != ENOENT;
}

/* A host process scan: calls fn for every pid but ours, pid 1 and kernel
 * threads (kthreadd, pid 2, and its children) (67 of 81 pids on an idle host here: the scan does one
 * syscall for each of those instead of five). */
static void each_host_process(void (*fn)(void *ud, int pid), void *ud)
{
	DIR *d = opendir("/proc");
	if (!d)
		return;
	size_t nk;
	cleanup_free int *kt = kthread_pids(&nk);
	if (kt)
		qsort(kt, nk, sizeof *kt, cmp_int);
	pid_t self = getpid();
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		int pid = atoi(de->d_name);
		if (pid <= 1 || pid == self)
			continue;
		if ((pid == 2 || (kt && in_sorted(kt, nk, pid))) && !proc_has_mm(pid))
			continue;
		fn(ud, pid);
	}
	closedir(d);
}

typedef struct scan_ctx {
	const char *id, *rundir;
	char ***out;
	int killed;
} scan_ctx;

static void scan_one(void *ud, int pid)
{
	scan_ctx *c = ud;
	const char *why = NULL;
	char p[64], target[PATH_MAX];
	static const char *const links[] = {"cwd", "root"};
	for (size_t i = 0; i < ARRAY_SIZE(links) && !why && c->rundir[0]; i++) {
		snprintf(p, sizeof p, "/proc/%d/%s", pid, links[i]);
		ssize_t n = readlink(p, target, sizeof target - 1);
		if (n > 0) {
			target[n] = '\0';
			if (under(target, c->rundir))
				why = links[i];
		}
	}
	if (!why && cmdline_names(pid, c->id, c->rundir))
		why = "cmdline";
	/* a zombie holds nothing; asked only of a match (its links and command
	 * line are gone anyway), so a clean host costs 4 syscalls a process */
	if (!why || proc_is_zombie(pid))
		return;
	char comm[64];
	proc_comm(pid, comm, sizeof comm);
	push_unique(c->out, xasprintf("process %d (%s): %s %s", pid, comm,
				      !strcmp(why, "cmdline") ? "command line names" : why,
				      !strcmp(why, "cmdline") ? "the sandbox" : "inside the run dir"));
}

static void scan_processes(const char *id, const char *rundir, char ***out)
{
	scan_ctx c = {.id = id, .rundir = rundir, .out = out};
	each_host_process(scan_one, &c);
}

static void scan_cgroups(const char *id, char ***out)
{
	static const char *const dirs[] = {"/sys/fs/cgroup/*/silo", "/sys/fs/cgroup/silo"};
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		char pat[PATH_MAX];
		snprintf(pat, sizeof pat, "%s/%s", dirs[i], id);
		glob_t g;
		if (glob(pat, GLOB_NOSORT, NULL, &g) == 0) {
			for (size_t j = 0; j < g.gl_pathc; j++)
				push_unique(out, xasprintf("cgroup %s", g.gl_pathv[j]));
		}
		globfree(&g);
	}
}

/* Temp files a sandbox may leave beside its run dir: <runtime>/sandboxes/<id>.*,
 * <id>-*, and /tmp/silo-<id>*. With remove, they are removed first. */
static void sweep_temp(const char *id, bool remove, char ***out)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s/sandboxes", silo_runtime_dir());
	const char *dirs[] = {dir, "/tmp"};
	size_t idl = strlen(id);
	for (size_t k = 0; k < ARRAY_SIZE(dirs); k++) {
		DIR *d = opendir(dirs[k]);
		if (!d)
			continue;
		struct dirent *de;
		while ((de = readdir(d))) {
			const char *n = de->d_name;
			bool match;
			if (k == 0)
				match = !strncmp(n, id, idl) && (n[idl] == '.' || n[idl] == '-');
			else
				match = !strncmp(n, "silo-", 5) && !strncmp(n + 5, id, idl);
			if (!match)
				continue;
			char p[PATH_MAX + 256];
			snprintf(p, sizeof p, "%s/%s", dirs[k], n);
			if (remove)
				rm_rf(p);
			if (path_exists(p))
				push_unique(out, xstrdup(p));
		}
		closedir(d);
	}
}

void cleanup_sweep(const char *id, const char *rundir, char ***out)
{
	cleanup_sweep_scoped(id, rundir, CLEANUP_SCAN_HOST, out);
}

void cleanup_sweep_scoped(const char *id, const char *rundir, unsigned flags, char ***out)
{
	if (!id || !*id)
		return;
	const char *rd = rundir ? rundir : "";
	sweep_temp(id, true, out);
	char tap[16];
	cleanup_tap_name(id, tap);
	if (link_exists(tap)) {
		tap_delete(tap);
		if (link_exists(tap))
			push_unique(out, xasprintf("tap %s", tap));
	}
	if (rd[0]) {
		scan_mounts(rd, out);
		scan_loops(rd, report_loop, out);
		scan_sockets(rd, out);
	}
	scan_cgroups(id, out);
	/* Without CLEANUP_SCAN_HOST the host is still scanned once anything is
	 * left (a cgroup: the sandbox's tasks cannot leave theirs, and a pid
	 * namespace init whose main thread exited shows as a zombie while its
	 * other threads run; a busy mount or run dir: the scan names who holds it). */
	if ((flags & CLEANUP_SCAN_HOST) || *out)
		scan_processes(id, rd, out);
}

/* ------------------------------------------------------------- release */

/* The sandbox's cgroup directories: silo/<id> in every hierarchy. */
static char **cgroup_dirs(const char *id)
{
	char **v = NULL;
	scan_cgroups(id, &v);
	for (char **p = v; p && *p; p++)
		memmove(*p, *p + 7, strlen(*p + 7) + 1);   /* drop "cgroup " */
	return v;
}

static void put_if_exists(const char *dir, const char *file, const char *val)
{
	char p[PATH_MAX + 32];
	snprintf(p, sizeof p, "%s/%s", dir, file);
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	(void)!write(fd, val, strlen(val));
	close(fd);
}

typedef int (*cg_fn)(const char *dir, int depth);

/* Sum of fn over the child cgroups of dir (bounded depth). */
static int each_child(const char *dir, int depth, cg_fn fn)
{
	DIR *d = depth < 8 ? opendir(dir) : NULL;
	if (!d)
		return 0;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		char p[PATH_MAX + 256];
		snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
		n += fn(p, depth + 1);
	}
	closedir(d);
	return n;
}

/* Sum of fn over the sandbox's cgroups (silo/<id> in every hierarchy). */
static int each_cgroup(const char *id, cg_fn fn)
{
	char **dirs = cgroup_dirs(id);
	int n = 0;
	for (char **p = dirs; p && *p; p++)
		n += fn(*p, 0);
	strv_free(dirs);
	return n;
}

/* SIGKILL every task of dir and of its child cgroups (thawed first: on the v1
 * freezer even killed tasks stay frozen); how many were signalled. */
static int kill_members(const char *dir, int depth)
{
	put_if_exists(dir, "freezer.state", "THAWED");
	put_if_exists(dir, "cgroup.freeze", "0");
	put_if_exists(dir, "cgroup.kill", "1");
	int n = 0;
	char p[PATH_MAX + 32];
	snprintf(p, sizeof p, "%s/cgroup.procs", dir);
	char *t = NULL;
	size_t len;
	if (read_file(p, 1 << 20, &t, &len, NULL) == 0) {
		for (char *save = NULL, *l = strtok_r(t, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
			int pid = atoi(l);
			if (pid > 1 && pid != getpid() && !proc_is_zombie(pid) && kill(pid, SIGKILL) == 0)
				n++;
		}
		free(t);
	}
	return n + each_child(dir, depth, kill_members);
}

/* SIGKILL host processes whose command line carries the tag silo-<id>. */
static void kill_one(void *ud, int pid)
{
	scan_ctx *c = ud;
	if (cmdline_names(pid, c->id, "") && !proc_is_zombie(pid) && kill(pid, SIGKILL) == 0)
		c->killed++;
}

static int kill_tagged(const char *id)
{
	scan_ctx c = {.id = id, .rundir = ""};
	each_host_process(kill_one, &c);
	return c.killed;
}

static void pause_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

int cleanup_kill_sandbox(const char *id, int timeout_ms)
{
	uint64_t end = now_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
	for (;;) {
		int n = each_cgroup(id, kill_members) + kill_tagged(id);
		if (!n || now_mono_ns() >= end)
			return n;
		pause_ms(10);
	}
}

/* rmdir dir after its children; how many are still there. */
static int rmdir_tree(const char *dir, int depth)
{
	int left = each_child(dir, depth, rmdir_tree);
	return left + (rmdir(dir) < 0 && errno != ENOENT);
}

int cleanup_remove_cgroups(const char *id, int timeout_ms)
{
	uint64_t end = now_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
	for (;;) {
		int left = each_cgroup(id, rmdir_tree);
		/* a cgroup stays busy while the kernel finishes tearing down its tasks */
		if (!left || now_mono_ns() >= end)
			return left ? -1 : 0;
		cleanup_kill_sandbox(id, 0);
		pause_ms(10);
	}
}

void cleanup_release(const char *id, const char *rundir, int timeout_ms, char ***left)
{
	if (cleanup_kill_sandbox(id, timeout_ms))
		log_warn("cleanup %s: processes survive SIGKILL", id);
	cleanup_remove_cgroups(id, timeout_ms);
	if (rundir && rundir[0]) {
		cleanup_release_mounts(rundir);
		if (path_exists(rundir))
			rm_rf(rundir);
	}
	if (!left)
		return;
	cleanup_sweep(id, rundir, left);
	if (rundir && rundir[0] && path_exists(rundir))
		push_unique(left, xstrdup(rundir));
}

/* ---------------------------------------------------------------- records */

static void record_path(const char *state_dir, const char *id, char *buf, size_t len)
{
	snprintf(buf, len, "%s/cleanup/%s.json", state_dir, id);
}

static bool id_ok(const char *id)
{
	if (!id || !*id || strlen(id) >= SILO_ID_MAX)
		return false;
	for (const char *p = id; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			return false;
	return true;
}

static int write_record(const char *state_dir, const char *id, json_t *o, silo_error *err)
{
	char dir[PATH_MAX], path[PATH_MAX + 80];
	snprintf(dir, sizeof dir, "%s/cleanup", state_dir);
	if (mkdir_p(dir, 0700) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", dir);
	record_path(state_dir, id, path, sizeof path);
	char *s = json_dumps(o, JSON_COMPACT);
	int rc = write_file_atomic(path, s, strlen(s), 0600, err);
	free(s);
	return rc;
}

int cleanup_record(const char *state_dir, const char *id, const char *rundir, const cleanup_report *rep,
		   silo_error *err)
{
	if (!id_ok(id))
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "cleanup record: bad id");
	json_t *res = json_array();
	for (char **p = rep->residual_paths; p && *p; p++)
		json_array_append_new(res, json_string(*p));
	char ts[40];
	format_time_ms(now_realtime_ms(), ts, sizeof ts);
	bool clean = rep->host_clean && !rep->residual_paths;
	json_t *o = json_pack("{s:s,s:s,s:b,s:b,s:o,s:s}", "id", id, "rundir", rundir ? rundir : "", "terminated",
			      rep->terminated, "host_clean", clean, "residual_paths", res, "checked", ts);
	int rc = write_record(state_dir, id, o, err);
	json_decref(o);
	return rc;
}

static json_t *load_record(const char *state_dir, const char *id)
{
	if (!id_ok(id))
		return NULL;
	char path[PATH_MAX + 80];
	record_path(state_dir, id, path, sizeof path);
	char *t = NULL;
	size_t n;
	if (read_file(path, 1 << 20, &t, &n, NULL) < 0)
		return NULL;
	json_t *o = json_loadb(t, n, 0, NULL);
	free(t);
	if (o && !json_is_object(o)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *cleanup_load_json(const char *state_dir, const char *id)
{
	json_t *o = load_record(state_dir, id);
	if (!o)
		return NULL;
	json_object_del(o, "id");
	json_object_del(o, "rundir");
	return o;
}

/* Retry one record: everything the sandbox may still hold is released again
 * (only what can be positively tied to it: see cleanup.h); returns the new
 * residue (strv, NULL = clean). */
static char **retry_items(const char *id, const char *rundir)
{
	char expect[PATH_MAX + 80];
	snprintf(expect, sizeof expect, "%s/sandboxes/%s", silo_runtime_dir(), id);
	/* only a run dir where silod puts run dirs is ever touched */
	bool rd_ok = rundir && rundir[0] && !strcmp(rundir, expect);
	char **left = NULL;
	cleanup_release(id, rd_ok ? rundir : NULL, CLEANUP_RETRY_MS, &left);
	return left;
}

int cleanup_retry_pending(const char *state_dir, int *still_dirty)
{
	int cleaned = 0, dirty = 0;
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s/cleanup", state_dir);
	DIR *d = opendir(dir);
	if (!d) {
		if (still_dirty)
			*still_dirty = 0;
		return 0;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l < 6 || strcmp(de->d_name + l - 5, ".json") != 0)
			continue;
		char id[SILO_ID_MAX];
		if (l - 5 >= sizeof id)
			continue;
		snprintf(id, sizeof id, "%.*s", (int)(l - 5), de->d_name);
		json_t *o = load_record(state_dir, id);
		if (!o)
			continue;
		if (json_is_true(json_object_get(o, "host_clean"))) {
			/* clean records are kept for GET a while, then dropped */
			char path[PATH_MAX + 80];
			record_path(state_dir, id, path, sizeof path);
			struct stat sb;
			if (stat(path, &sb) == 0 && time(NULL) - sb.st_mtime > CLEANUP_RECORD_KEEP_S)
				unlink(path);
			json_decref(o);
			continue;
		}
		const char *rundir = json_string_value(json_object_get(o, "rundir"));
		char **left = retry_items(id, rundir);
		json_t *removed = json_array(), *now = json_array();
		size_t i;
		json_t *it;
		json_array_foreach(json_object_get(o, "residual_paths"), i, it) {
			const char *s = json_string_value(it);
			if (s && !has(left, s))
				json_array_append(removed, it);
		}
		for (char **p = left; p && *p; p++)
			json_array_append_new(now, json_string(*p));
		char ts[40];
		format_time_ms(now_realtime_ms(), ts, sizeof ts);
		json_object_set_new(o, "retried", json_string(ts));
		json_object_set_new(o, "resolved_at_retry", removed);
		json_object_set_new(o, "residual_paths", now);
		json_object_set_new(o, "host_clean", json_boolean(left == NULL));
		if (left) {
			dirty++;
			log_warn("cleanup retry %s: still left: %zu item(s), first: %s", id, strv_len(left), left[0]);
		} else {
			cleaned++;
			log_info("cleanup retry %s: host clean now", id);
		}
		strv_free(left);
		silo_error err = {0};
		if (write_record(state_dir, id, o, &err) < 0)
			log_error("cleanup retry %s: %s", id, err.message);
		json_decref(o);
	}
	closedir(d);
	if (still_dirty)
		*still_dirty = dirty;
	return cleaned;
}
