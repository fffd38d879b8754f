/* SPDX-License-Identifier: Apache-2.0
 * Per-sandbox cgroups (cgroup.h): limits, on cgroup v1 (one hierarchy per
 * controller under /sys/fs/cgroup/<ctrl>/) or cgroup v2 (/sys/fs/cgroup, or
 * /sys/fs/cgroup/unified on hybrid hosts when the controllers are there).
 * Each sandbox gets <hierarchy>/silo/<id>.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "common/cgroup.h"

#ifndef CGROUP_SUPER_MAGIC
#define CGROUP_SUPER_MAGIC 0x27e0eb
#endif
#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

#define CG_ROOT "/sys/fs/cgroup"

static bool fs_is(const char *path, long magic)
{
	struct statfs st;
	return statfs(path, &st) == 0 && (long)st.f_type == magic;
}

static bool v1_has(const char *ctrl)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, CG_ROOT "/%s", ctrl);
	return fs_is(p, CGROUP_SUPER_MAGIC);
}

/* The cgroup2 mount whose root offers memory and pids, or NULL. */
static const char *v2_root(void)
{
	static const char *const roots[] = {CG_ROOT, CG_ROOT "/unified"};
	for (size_t i = 0; i < ARRAY_SIZE(roots); i++) {
		if (!fs_is(roots[i], CGROUP2_SUPER_MAGIC))
			continue;
		char p[PATH_MAX];
		snprintf(p, sizeof p, "%s/cgroup.controllers", roots[i]);
		char *txt = NULL;
		size_t n;
		if (read_file(p, 4096, &txt, &n, NULL) < 0)
			continue;
		bool ok = strstr(txt, "memory") && strstr(txt, "pids");
		free(txt);
		if (ok)
			return roots[i];
	}
	return NULL;
}

static bool use_v1(void)
{
	return v1_has("memory") && v1_has("pids") && v1_has("cpu");
}

bool cg_probe(char *desc, size_t len)
{
	if (use_v1()) {
		snprintf(desc, len, "cgroup v1 (memory, cpu, pids%s)", v1_has("freezer") ? ", freezer" : "");
		return true;
	}
	const char *r = v2_root();
	if (r) {
		snprintf(desc, len, "cgroup v2 at %s", r);
		return true;
	}
	snprintf(desc, len, "no usable cgroup hierarchy (need memory, cpu and pids controllers)");
	return false;
}

void cg_paths(const char *id, cg_set *cg)
{
	memset(cg, 0, sizeof *cg);
	static const char *const ctrls[] = {"memory", "cpu", "pids", "freezer"};
	bool has[4];
	for (size_t i = 0; i < ARRAY_SIZE(ctrls); i++) /* one statfs each (as use_v1, without asking twice) */
		has[i] = v1_has(ctrls[i]);
	if (has[0] && has[1] && has[2]) {
		for (size_t i = 0; i < ARRAY_SIZE(ctrls); i++) {
			if (!has[i])
				continue;
			snprintf(cg->path[cg->n], PATH_MAX, CG_ROOT "/%s/silo/%s", ctrls[i], id);
			snprintf(cg->procs[cg->n], PATH_MAX, "%s/cgroup.procs", cg->path[cg->n]);
			if (!strcmp(ctrls[i], "freezer")) {
				snprintf(cg->freeze, PATH_MAX, "%s/freezer.state", cg->path[cg->n]);
				cg->freeze_v1 = true;
			}
			cg->n++;
		}
		return;
	}
	const char *r = v2_root();
	if (!r)
		return;
	cg->v2 = true;
	snprintf(cg->path[0], PATH_MAX, "%s/silo/%s", r, id);
	snprintf(cg->procs[0], PATH_MAX, "%s/cgroup.procs", cg->path[0]);
	snprintf(cg->freeze, PATH_MAX, "%s/cgroup.freeze", cg->path[0]);
	cg->n = 1;
}

static int put(const char *dir, const char *file, const char *val, bool optional, silo_error *err)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/%s", dir, file);
	int fd = open(p, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		if (optional && errno == ENOENT)
			return 0;
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "cgroup: open %s", p);
	}
	int rc = write_all(fd, val, strlen(val));
	int e = errno;
	close(fd);
	if (rc < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "cgroup: write \"%s\" to %s", val, p);
	return 0;
}

/* v2: enable the controllers for children of <root>/silo. */
static int v2_prepare_parent(const char *parent, silo_error *err)
{
	char root[PATH_MAX];
	snprintf(root, sizeof root, "%s", parent);
	char *slash = strrchr(root, '/');
	if (!slash)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "cgroup: bad path %s", parent);
	*slash = '\0';
	if (put(root, "cgroup.subtree_control", "+memory +pids +cpu", false, err) < 0) {
		silo_error_clear(err);
		if (put(root, "cgroup.subtree_control", "+memory +pids", false, err) < 0)
			return -1;
	}
	if (mkdir(parent, 0755) < 0 && errno != EEXIST)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "cgroup: mkdir %s", parent);
	if (put(parent, "cgroup.subtree_control", "+memory +pids +cpu", false, err) < 0) {
		silo_error_clear(err);
		if (put(parent, "cgroup.subtree_control", "+memory +pids", false, err) < 0)
			return -1;
	}
	return 0;
}

int cg_create(const char *id, const cg_limits *lim, cg_set *cg, silo_error *err)
{
	cg_paths(id, cg);
	if (lim->no_freezer && cg->freeze_v1) { /* the v1 freezer hierarchy is the last one */
		cg->n--;
		cg->freeze[0] = '\0';
		cg->freeze_v1 = false;
	}
	if (cg->n == 0)
		return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, 0,
				 "namespace: no usable cgroup hierarchy for memory/cpu/pids limits");
	char val[64];
	for (int i = 0; i < cg->n; i++) {
		char parent[PATH_MAX];
		snprintf(parent, sizeof parent, "%s", cg->path[i]);
		*strrchr(parent, '/') = '\0';
		if (cg->v2) {
			if (v2_prepare_parent(parent, err) < 0)
				goto fail;
		} else if (mkdir(parent, 0755) < 0 && errno != EEXIST) {
			silo_fail(err, SILO_ERR_IO_ERROR, errno, "cgroup: mkdir %s", parent);
			goto fail;
		}
		if (mkdir(cg->path[i], 0755) < 0) {
			silo_fail(err, errno == EEXIST ? SILO_ERR_CONFLICT : SILO_ERR_IO_ERROR, errno,
				  "cgroup: mkdir %s", cg->path[i]);
			if (errno == EEXIST)
				cg->path[i][0] = '\0';   /* not ours: never remove it */
			goto fail;
		}
		const char *d = cg->path[i];
		bool is_mem = cg->v2 || strstr(d, CG_ROOT "/memory/");
		bool is_cpu = cg->v2 || strstr(d, CG_ROOT "/cpu/");
		bool is_pids = cg->v2 || strstr(d, CG_ROOT "/pids/");
		if (is_mem && lim->memory_bytes) {
			snprintf(val, sizeof val, "%llu", (unsigned long long)lim->memory_bytes);
			if (cg->v2) {
				if (put(d, "memory.max", val, false, err) < 0 ||
				    put(d, "memory.swap.max", "0", true, err) < 0)
					goto fail;
			} else {
				if (put(d, "memory.limit_in_bytes", val, false, err) < 0 ||
				    put(d, "memory.memsw.limit_in_bytes", val, true, err) < 0 ||
				    put(d, "memory.swappiness", "0", true, err) < 0)
					goto fail;
			}
		}
		if (is_cpu && lim->cpu_millis) {
			if (cg->v2) {
				snprintf(val, sizeof val, "%u 100000", lim->cpu_millis * 100);
				if (put(d, "cpu.max", val, true, err) < 0)
					goto fail;
			} else {
				snprintf(val, sizeof val, "%u", lim->cpu_millis * 100);
				if (put(d, "cpu.cfs_period_us", "100000", false, err) < 0 ||
				    put(d, "cpu.cfs_quota_us", val, false, err) < 0)
					goto fail;
			}
		}
		if (is_pids && lim->pids_max) {
			snprintf(val, sizeof val, "%u", lim->pids_max);
			if (put(d, "pids.max", val, false, err) < 0)
				goto fail;
		}
	}
	return 0;
fail:
	cg_remove(cg);
	return -1;
}

static void kill_members(const char *procs)
{
	cleanup_free char *txt = NULL;
	size_t n = 0;
	if (read_file(procs, 1u << 20, &txt, &n, NULL) < 0)
		return;
	for (char *p = txt, *e; p && *p; p = e) {
		long pid = strtol(p, &e, 10);
		if (e == p)
			break;
		if (pid > 1)
			kill((pid_t)pid, SIGKILL);
		while (*e == '\n')
			e++;
	}
}

int cg_remove(cg_set *cg)
{
	int left = 0;
	for (int i = 0; i < cg->n; i++) {
		if (!cg->path[i][0])
			continue;
		/* Up to 10 s: on a loaded host the kernel can take seconds to finish tearing down
		 * the sandbox's tasks. Anything still listed in the cgroup is ours: kill it. */
		for (int tries = 0; tries < 1000; tries++) {
			if (rmdir(cg->path[i]) == 0 || errno == ENOENT)
				break;
			if (errno != EBUSY)
				break;
			if (tries % 20 == 19)
				kill_members(cg->procs[i]);
			struct timespec ts = {0, 10 * 1000000L};
			nanosleep(&ts, NULL);
		}
		if (path_exists(cg->path[i]))
			left++;
	}
	return left ? -1 : 0;
}

bool cg_oom_file(const cg_set *cg, char *buf, size_t len)
{
	for (int i = 0; i < cg->n; i++)
		if (cg->v2 || strstr(cg->path[i], CG_ROOT "/memory/"))
			return (size_t)snprintf(buf, len, "%s/%s", cg->path[i],
						cg->v2 ? "memory.events" : "memory.oom_control") < len;
	return false;
}

int cg_freeze(cg_set *cg, bool frozen, silo_error *err)
{
	if (!cg->freeze[0])
		return silo_fail(err, SILO_ERR_NOT_SUPPORTED, 0, "namespace: no cgroup freezer on this host");
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", cg->freeze);
	char *slash = strrchr(dir, '/');
	*slash = '\0';
	const char *val = cg->freeze_v1 ? (frozen ? "FROZEN" : "THAWED") : (frozen ? "1" : "0");
	if (put(dir, slash + 1, val, false, err) < 0)
		return -1;
	if (cg->freeze_v1 && frozen) {
		/* v1 goes through FREEZING; wait until it settles. */
		for (int tries = 0; tries < 200; tries++) {
			char *txt = NULL;
			size_t n;
			if (read_file(cg->freeze, 64, &txt, &n, NULL) == 0) {
				bool done = !strncmp(txt, "FROZEN", 6);
				free(txt);
				if (done)
					return 0;
			}
			struct timespec ts = {0, 5 * 1000000L};
			nanosleep(&ts, NULL);
		}
		return silo_fail(err, SILO_ERR_TIMEOUT, 0, "namespace: cgroup did not freeze within 1 s");
	}
	return 0;
}
