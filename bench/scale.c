/* SPDX-License-Identifier: Apache-2.0
 * Scale through silod: N live namespace sandboxes (default 1000) created
 * through the HTTP API of a real silod started here (--max-sandboxes N, temp
 * state and runtime dirs), an exec in each, then deletes them all and checks
 * that nothing is left. Prints JSON:
 *   - API latency p50/p95/p99 for create, exec and list with 0-1 sandboxes
 *     live (the peer, same silod, same run) and with N live (creates: the
 *     last tenth; exec: one in every sandbox; list: 20 GET /v1/sandboxes);
 *   - silod's RSS before and with N live, and host memory per sandbox
 *     (MemAvailable before minus with N live, over N);
 *   - what is left after the deletes, each of which must be 0: registry rows
 *     (GET /v1/sandboxes), processes below silod, host mounts under the temp
 *     dir, sandbox cgroups (<hierarchy>/silo/<id>), loop devices whose backing
 *     file is in this run's disk cache, run dirs, host id slots
 *     (/run/silo-ids) naming one of the sandboxes.
 * Exit status 0 only when all N were created and ran their exec and nothing
 * was left.
 *
 *   scale [-n 1000] [--clients 16] [--silod PATH] [--cpu-overcommit X] [--memory-overcommit X]
 *
 * The overcommit ratios default to what N idle 1-vCPU/128 MiB sandboxes
 * need on this host (docs/benchmarks.md "Scale"): the accounting is the point
 * of the run, not something to hide, so they are printed with the result.
 */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_curl.h"
#include "bench_util.h"
#include "common/util.h"
#include "proc_status.h"

static char sock[4096];
static char tmp[] = "/tmp/silo-scale-XXXXXX";

typedef struct series {
	pthread_mutex_t lock;
	double *v;
	size_t n;
	unsigned errors;
	char first_error[384];
} series;

static void add(series *s, double ms, bool ok, const char *why)
{
	pthread_mutex_lock(&s->lock);
	if (ok) {
		s->v = xrealloc(s->v, (s->n + 1) * sizeof *s->v);
		s->v[s->n++] = ms;
	} else {
		if (!s->errors++)
			snprintf(s->first_error, sizeof s->first_error, "%s", why ? why : "transport error");
	}
	pthread_mutex_unlock(&s->lock);
}

static json_t *stats(series *s)
{
	json_t *o = bench_stats_json(s->v, s->n, s->errors);
	if (s->errors)
		json_object_set_new(o, "first_error", json_string(s->first_error));
	return o;
}

static int total;
static char (*ids)[64];                  /* sandbox ids, by index */
static atomic_int next_index;
static series create_all = {.lock = PTHREAD_MUTEX_INITIALIZER}, create_tail = {.lock = PTHREAD_MUTEX_INITIALIZER};
static series exec_live = {.lock = PTHREAD_MUTEX_INITIALIZER}, delete_all = {.lock = PTHREAD_MUTEX_INITIALIZER};

static long timed(CURL *h, const char *method, const char *path, const char *body, resp *r, double *ms)
{
	uint64_t t0 = now_mono_ns();
	long st = bench_request(h, sock, method, path, body ? "application/json" : NULL, body, r);
	*ms = bench_ms_since(t0);
	return st;
}

/* Create sandbox K (name scale-K); its id goes to ids[K] (empty on failure). */
static bool create_one(CURL *h, int k, series *s, series *tail)
{
	char body[256];
	snprintf(body, sizeof body, "{\"provider\":\"namespace\",\"name\":\"scale-%d\",\"vcpus\":1,\"memory_mb\":128}", k);
	resp r = {0};
	double ms;
	long st = timed(h, "POST", "/v1/sandboxes", body, &r, &ms);
	json_t *o = r.buf ? json_loads(r.buf, 0, NULL) : NULL;
	const char *id = json_string_value(json_object_get(o, "id"));
	bool ok = st == 201 && id;
	if (ok && k >= 0)
		snprintf(ids[k], sizeof ids[k], "%s", id);
	add(s, ms, ok, r.buf);
	if (tail)
		add(tail, ms, ok, r.buf);
	json_decref(o);
	free(r.buf);
	return ok;
}

/* METHOD /v1/sandboxes/ID+SUFFIX with BODY, timed into S: ok when the reply is
 * 200 and holds each of NEEDLES (NULL-ended, or NULL for none). */
static bool sandbox_call(CURL *h, const char *method, const char *id, const char *suffix, const char *body,
			 const char *const *needles, series *s)
{
	char path[160];
	snprintf(path, sizeof path, "/v1/sandboxes/%s%s", id, suffix);
	resp r = {0};
	double ms;
	bool ok = timed(h, method, path, body, &r, &ms) == 200;
	for (; ok && needles && *needles; needles++)
		ok = r.buf && strstr(r.buf, *needles);
	add(s, ms, ok, r.buf);
	free(r.buf);
	return ok;
}

static bool exec_one(CURL *h, const char *id, series *s)
{
	static const char *const want[] = {"\"exit_code\":0", "aGVsbG8K", NULL};   /* "hello\n" */
	return sandbox_call(h, "POST", id, "/exec", "{\"argv\":[\"echo\",\"hello\"]}", want, s);
}

static bool delete_one(CURL *h, const char *id, series *s)
{
	return sandbox_call(h, "DELETE", id, "", NULL, NULL, s);
}

enum phase { PH_CREATE, PH_EXEC, PH_DELETE };

static void *worker(void *arg)
{
	enum phase ph = (enum phase)(intptr_t)arg;
	CURL *h = curl_easy_init();
	int k;
	while ((k = atomic_fetch_add(&next_index, 1)) < total) {
		if (ph == PH_CREATE)
			create_one(h, k, &create_all, k >= total - total / 10 ? &create_tail : NULL);
		else if (!ids[k][0])
			continue;
		else if (ph == PH_EXEC)
			exec_one(h, ids[k], &exec_live);
		else
			delete_one(h, ids[k], &delete_all);
	}
	curl_easy_cleanup(h);
	return NULL;
}

static double run_phase(enum phase ph, int clients)
{
	atomic_store(&next_index, 0);
	pthread_t *th = xcalloc((size_t)clients, sizeof *th);
	uint64_t t0 = now_mono_ns();
	for (int i = 0; i < clients; i++)
		pthread_create(&th[i], NULL, worker, (void *)(intptr_t)ph);
	for (int i = 0; i < clients; i++)
		pthread_join(th[i], NULL);
	free(th);
	return bench_ms_since(t0);
}

static void list_n(CURL *h, int times, series *s, size_t *seen)
{
	for (int i = 0; i < times; i++) {
		resp r = {0};
		double ms;
		long st = timed(h, "GET", "/v1/sandboxes", NULL, &r, &ms);
		json_t *o = r.buf ? json_loads(r.buf, 0, NULL) : NULL;
		*seen = json_array_size(json_object_get(o, "sandboxes"));
		add(s, ms, st == 200 && o, r.buf);
		json_decref(o);
		free(r.buf);
	}
}

/* The first line of PATH into BUF (NUL-terminated, newline dropped); -1 if unreadable. */
static int read_file_small(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	bool ok = fgets(buf, (int)len, f) != NULL;
	fclose(f);
	if (!ok)
		return -1;
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/* CPU ticks: of process PID (utime+stime), or of the whole host (all but idle and iowait) for PID 0. */
static unsigned long long cpu_ticks(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long v[10] = {0}, ut = 0, st = 0;
	if (!pid) {
		if (read_file_small("/proc/stat", buf, sizeof buf) < 0 ||
		    sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
			   &v[6], &v[7]) != 8)
			return 0;
		return v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
	}
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (read_file_small(path, buf, sizeof buf) < 0)
		return 0;
	char *rp = strrchr(buf, ')');
	if (!rp || sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return 0;
	return ut + st;
}

/* Processes whose parent chain reaches ROOT (ROOT itself not counted). */
static int descendants(pid_t root)
{
	enum { MAXP = 1 << 16 };
	static pid_t parent[MAXP];
	pid_t pids[MAXP];
	int n = 0;
	DIR *d = opendir("/proc");
	struct dirent *e;
	while (d && (e = readdir(d)) && n < MAXP) {
		pid_t p = atoi(e->d_name);
		if (p <= 0 || p >= MAXP)
			continue;
		char path[64], buf[512];
		snprintf(path, sizeof path, "/proc/%d/stat", p);
		if (read_file_small(path, buf, sizeof buf) < 0)
			continue;
		char *rp = strrchr(buf, ')');
		int pp = 0;
		if (!rp || sscanf(rp + 2, "%*c %d", &pp) != 1)
			continue;
		parent[p] = pp;
		pids[n++] = p;
	}
	if (d)
		closedir(d);
	int count = 0;
	for (int i = 0; i < n; i++) {
		pid_t p = pids[i];
		for (int hops = 0; p > 1 && hops < 64; hops++) {
			p = parent[p];
			if (p == root) {
				count++;
				break;
			}
		}
	}
	return count;
}

static int lines_containing(const char *file, const char *needle)
{
	FILE *f = fopen(file, "re");
	if (!f)
		return -1;
	char *line = NULL;
	size_t cap = 0;
	int n = 0;
	while (getline(&line, &cap, f) > 0)
		n += strstr(line, needle) != NULL;
	free(line);
	fclose(f);
	return n;
}

/* Loop devices whose backing file is a namespace disk under the cache DIR. */
static int loops_under(const char *dir)
{
	glob_t g;
	int n = 0;
	char prefix[PATH_MAX];
	snprintf(prefix, sizeof prefix, "%s/ns-disk/", dir);
	if (glob("/sys/block/loop*/loop/backing_file", 0, NULL, &g) != 0)
		return 0;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		char buf[4096];
		if (read_file_small(g.gl_pathv[i], buf, sizeof buf) >= 0 && !strncmp(buf, prefix, strlen(prefix)))
			n++;
	}
	globfree(&g);
	return n;
}

/* Sandbox cgroups and id slots that still name one of our sandboxes. */
static void leftovers_by_id(int *cgroups, int *id_slots)
{
	*cgroups = *id_slots = 0;
	glob_t g;
	char pat[128];
	for (int k = 0; k < total; k++) {
		if (!ids[k][0])
			continue;
		snprintf(pat, sizeof pat, "/sys/fs/cgroup/{*/,}silo/%s", ids[k]);
		if (glob(pat, GLOB_BRACE, NULL, &g) == 0)
			*cgroups += (int)g.gl_pathc;
		globfree(&g);
	}
	DIR *d = opendir("/run/silo-ids");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		char path[512], buf[256];
		snprintf(path, sizeof path, "/run/silo-ids/%s", e->d_name);
		if (e->d_name[0] == '.' || read_file_small(path, buf, sizeof buf) < 0)
			continue;
		const char *sid = strrchr(buf, ' ');
		if (!sid)
			continue;
		sid++;
		for (int k = 0; k < total; k++)
			if (ids[k][0] && !strncmp(sid, ids[k], strlen(ids[k]))) {
				(*id_slots)++;
				break;
			}
	}
	if (d)
		closedir(d);
}

/* Names in DIR not in BEFORE (a JSON array of names; NULL = take the baseline). */
static json_t *new_entries(const char *dir, json_t *before)
{
	json_t *a = json_array();
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		bool known = false;
		size_t i;
		json_t *x;
		json_array_foreach(before, i, x)
			known = known || !strcmp(json_string_value(x), e->d_name);
		if (known)
			continue;
		/* a directory made on the way (sandboxes/, owners/) counts only with something in it */
		char sub[PATH_MAX];
		snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
		json_t *inner = e->d_type == DT_DIR ? new_entries(sub, NULL) : NULL;
		if (!inner || json_array_size(inner))
			json_array_append_new(a, json_string(e->d_name));
		json_decref(inner);
	}
	if (d)
		closedir(d);
	return a;
}

int main(int argc, char **argv)
{
	int clients = 16;
	double cpu_oc = 0, mem_oc = 0;
	const char *silod = NULL;
	total = 1000;
	const bench_opt opts[] = {
		{"-n", BOPT_INT, &total},
		{"--clients", BOPT_INT, &clients},
		{"--silod", BOPT_STR, &silod},
		{"--cpu-overcommit", BOPT_DOUBLE, &cpu_oc},
		{"--memory-overcommit", BOPT_DOUBLE, &mem_oc},
		{NULL, 0, NULL},
	};
	bench_opts(argc, argv, opts,
		   "scale [-n N] [--clients N] [--silod PATH] [--cpu-overcommit X] [--memory-overcommit X]");
	if (total < 10 || total > 100000 || clients < 1 || clients > 256)
		die(2, "-n must be 10..100000 and --clients 1..256");
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	long long mem_total_kb = kib_field("/proc/meminfo", "MemTotal");
	/* What N idle sandboxes of 1 vCPU / 128 MiB need, plus the peer's few: */
	if (!cpu_oc)
		cpu_oc = (double)(total + 8) / (double)(cores > 0 ? cores : 1);
	if (!mem_oc)
		mem_oc = (double)(total + 8) * 128.0 * 1024.0 / (double)mem_total_kb;
	if (cpu_oc < 1)
		cpu_oc = 1;
	if (mem_oc < 1)
		mem_oc = 1;

	char silod_path[4096], maxs[32], coc[32], moc[32];
	bench_find_silod(&silod, silod_path);
	snprintf(maxs, sizeof maxs, "%d", total);
	snprintf(coc, sizeof coc, "%.3f", cpu_oc);
	snprintf(moc, sizeof moc, "%.3f", mem_oc);
	char *const sargv[] = {(char *)silod, "--max-sandboxes", maxs, "--cpu-overcommit", coc, "--memory-overcommit",
			       moc, "--grace-ms", "1000", NULL};
	pid_t pid = bench_spawn_silod(sargv, tmp, sock, sizeof sock);
	if (pid < 0)
		die_errno(1, "start silod");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	CURL *h = curl_easy_init();
	int rc = 1, avail = bench_silod_wait(h, sock, "namespace");
	if (avail < 0) {
		fprintf(stderr, "scale: silod did not come up\n");
		goto out;
	}
	if (!avail) {
		printf("{\"benchmark\":\"silod_scale\",\"skipped\":\"provider namespace unavailable\"}\n");
		rc = 0;
		goto out;
	}
	ids = xcalloc((size_t)total, sizeof *ids);
	char status_path[64], run_dir[PATH_MAX];
	snprintf(status_path, sizeof status_path, "/proc/%d/status", pid);
	snprintf(run_dir, sizeof run_dir, "%s", getenv("SILO_RUNTIME_DIR"));
	const char *disk_cache = silo_cache_dir();
	json_t *base_run = new_entries(run_dir, NULL);
	int base_procs = descendants(pid);
	int base_loops = loops_under(disk_cache);
	int base_mounts = lines_containing("/proc/self/mountinfo", tmp);

	/* Peer: the same calls with (almost) nothing live: 10 create/exec/delete, 20 lists. */
	series p_create = {.lock = PTHREAD_MUTEX_INITIALIZER}, p_exec = {.lock = PTHREAD_MUTEX_INITIALIZER},
	       p_list = {.lock = PTHREAD_MUTEX_INITIALIZER}, p_delete = {.lock = PTHREAD_MUTEX_INITIALIZER},
	       list_live = {.lock = PTHREAD_MUTEX_INITIALIZER};
	for (int k = 0; k < 10; k++) {
		char one[1][64] = {{0}};
		char (*save)[64] = ids;
		ids = one;
		if (create_one(h, 0, &p_create, NULL)) {
			exec_one(h, one[0], &p_exec);
			delete_one(h, one[0], &p_delete);
		}
		ids = save;
	}
	size_t seen = 0;
	list_n(h, 20, &p_list, &seen);
	long long rss0 = kib_field(status_path, "VmRSS"), avail0 = kib_field("/proc/meminfo", "MemAvailable");

	double create_wall = run_phase(PH_CREATE, clients);
	long long avail_live = kib_field("/proc/meminfo", "MemAvailable");
	/* What N idle sandboxes cost: silod's CPU and the host's over 5 s with nothing asked
	 * (heartbeats, the monitor; the host figure includes other work on the machine). */
	unsigned long long s0 = cpu_ticks(pid), h0 = cpu_ticks(0);
	sleep(5);
	double hz = (double)sysconf(_SC_CLK_TCK);
	double idle_silod_pct = 100.0 * (double)(cpu_ticks(pid) - s0) / hz / 5.0;
	double idle_host_pct = 100.0 * (double)(cpu_ticks(0) - h0) / hz / 5.0 / (double)(cores > 0 ? cores : 1);
	double exec_wall = run_phase(PH_EXEC, clients);
	list_n(h, 20, &list_live, &seen);
	long long rss_live = kib_field(status_path, "VmRSS");
	int live = (int)seen;
	double delete_wall = run_phase(PH_DELETE, clients);

	/* Nothing may be left. Deletes returned, so everything should be gone now. */
	size_t rows = 0;
	series dummy = {.lock = PTHREAD_MUTEX_INITIALIZER};
	list_n(h, 1, &dummy, &rows);
	free(dummy.v);
	int cgroups, id_slots;
	leftovers_by_id(&cgroups, &id_slots);
	int procs = descendants(pid) - base_procs, mounts = lines_containing("/proc/self/mountinfo", tmp) - base_mounts;
	/* the kernel clears an autoclear loop device from a work queue after the
	 * last close: give it (and a concurrent test's disk on the same cache) 10 s */
	int loops = loops_under(disk_cache) - base_loops;
	for (int i = 0; i < 100 && loops > 0; i++) {
		usleep(100000);
		loops = loops_under(disk_cache) - base_loops;
	}
	json_t *run_new = new_entries(run_dir, base_run);
	json_decref(base_run);
	size_t run_dirs = json_array_size(run_new);
	json_t *left = json_pack("{s:I,s:i,s:i,s:i,s:i,s:o,s:i}", "registry_rows", (json_int_t)rows, "processes", procs,
				 "host_mounts", mounts, "cgroups", cgroups, "loop_devices", loops, "run_dir_entries", run_new,
				 "id_slots", id_slots);
	bool clean = !rows && procs <= 0 && mounts <= 0 && !cgroups && loops <= 0 && !run_dirs && !id_slots;

	int created = (int)create_all.n;
	json_t *out = json_pack(
		"{s:s,s:s,s:i,s:i,s:i,s:i,s:{s:f,s:f,s:I,s:I},s:{s:o,s:o,s:o,s:o},s:{s:o,s:o,s:o,s:o,s:o},"
		"s:{s:f,s:f,s:f},s:{s:I,s:I,s:f},s:o,s:b,s:f}",
		"benchmark", "silod_scale", "provider", "namespace", "sandboxes", total, "created", created, "live_at_peak",
		live, "clients", clients, "capacity", "cpu_overcommit", cpu_oc, "memory_overcommit", mem_oc, "cores",
		(json_int_t)cores, "memory_total_mb", (json_int_t)(mem_total_kb / 1024), "peer_idle", "create",
		stats(&p_create), "exec", stats(&p_exec), "list", stats(&p_list), "delete", stats(&p_delete),
		"with_all_live", "create_last_tenth", stats(&create_tail), "create_all", stats(&create_all), "exec",
		stats(&exec_live), "list", stats(&list_live), "delete", stats(&delete_all), "wall_ms", "create",
		create_wall, "exec", exec_wall, "delete", delete_wall, "memory", "silod_rss_idle_kb", (json_int_t)rss0,
		"silod_rss_live_kb", (json_int_t)rss_live, "host_kb_per_sandbox",
		created ? (double)(avail0 - avail_live) / created : 0.0, "left_after_delete", left, "clean", clean,
		"load_average", 0.0);
	json_object_set_new(out, "idle_with_all_live", json_pack("{s:f,s:f}", "silod_cpu_pct_of_one_core", idle_silod_pct,
								 "host_busy_pct_of_all_cores", idle_host_pct));
	double la[1];
	if (getloadavg(la, 1) == 1)
		json_object_set_new(out, "load_average", json_real(la[0]));
	bench_print_json(out, 0);
	json_decref(out);
	rc = created == total && exec_live.n == (size_t)total && !delete_all.errors && clean ? 0 : 1;
out:
	curl_easy_cleanup(h);
	bench_silod_stop(pid, tmp);
	return rc;
}
