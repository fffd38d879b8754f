/* SPDX-License-Identifier: Apache-2.0
 * `silo run -- true` latency vs bubblewrap, plus exec round trip in a running
 * namespace sandbox (docs/benchmarks.md "silo run latency vs bubblewrap").
 *
 *   run_latency [-n RUNS] [--silo PATH] [--compare NAME=PATH]... [--silod PATH] [--warm-pool K]
 *
 * 1. For RUNS iterations, interleaved so all see the same machine state:
 *    - `silo run --provider namespace -- true` (fork+exec of the real CLI:
 *      spawn, agent handshake, exec, destroy, cleanup verification);
 *    - the same with every --compare binary (another build, e.g. an older
 *      commit: series "silo_run_true_NAME");
 *    - `bwrap` with the flags in BWRAP_FLAGS over the same busybox base layer;
 *    - unless --warm-pool 0: the same `silo run` (this tree's CLI) through a
 *      silod started here (own state and runtime dirs, SILO_SOCKET given to
 *      that row only) that keeps K paused namespace sandboxes of exactly the
 *      spec `silo run --provider namespace` sends (--warm-pool). A different
 *      thing from the cold rows: the sandbox was made before the clock
 *      started; the run takes one (resume), execs, deletes it. Series
 *      "silo_run_true_silod_warm_pool", with how many runs the pool served
 *      ("pool_taken"); before each of its runs the bench waits (untimed) until
 *      the pool is full again, so no refill overlaps another row's runs.
 * 2. One namespace sandbox; RUNS x chan_exec(`true`) round trips.
 * Prints a table on stderr and one JSON document on stdout (p50/p95/p99 ms).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_curl.h"
#include "bench_util.h"
#include "common/util.h"
#include "core/sandbox.h"
#include "providers/ns.h"
#include "spec/spec.h"

#define BWRAP_FLAGS                                                                                      \
	"--unshare-all --die-with-parent --new-session --ro-bind ROOTFS / --proc /proc --dev /dev --tmpfs " \
	"/tmp -- /bin/true"

static void print_series(const char *name, bench_series *s, const char *extra)
{
	bench_sort(s->ms, (size_t)s->n);
	fprintf(stderr, "%-28s n=%-4d failed=%-3d p50 %8.2f  p95 %8.2f  p99 %8.2f  mean %8.2f ms\n", name, s->n,
		s->failed, bench_series_pct(s, 50), bench_series_pct(s, 95), bench_series_pct(s, 99), bench_series_mean(s));
	printf("  \"%s\": {\"n\": %d, \"failed\": %d, \"p50_ms\": %.3f, \"p95_ms\": %.3f, \"p99_ms\": %.3f, "
	       "\"mean_ms\": %.3f%s}",
	       name, s->n, s->failed, bench_series_pct(s, 50), bench_series_pct(s, 95), bench_series_pct(s, 99), bench_series_mean(s), extra);
}

#define MAX_COMPARE 8

/* The host is shared: the load the numbers were taken under goes with them. */
static void loadavg(char *out, size_t len)
{
	char *txt = NULL;
	size_t n;
	if (read_file("/proc/loadavg", 256, &txt, &n, NULL) == 0) {
		int f = 0;
		for (size_t i = 0; i < n && i + 1 < len; i++) {
			if (txt[i] == ' ' && ++f == 3)
				break;
			out[i] = txt[i];
			out[i + 1] = '\0';
		}
	}
	free(txt);
}
#define POOL_WAIT_MS 60000

/* silod's pool (the only one): how many are ready and how many were taken; false if unknown. */
static bool pool_counts(CURL *h, const char *sock, long long *ready, long long *taken)
{
	resp r = {0};
	long st = bench_request(h, sock, "GET", "/v1/pools", NULL, NULL, &r);
	json_t *j = st == 200 && r.buf ? json_loads(r.buf, 0, NULL) : NULL;
	free(r.buf);
	json_t *p = json_array_get(json_object_get(j, "pools"), 0);
	bool ok = json_is_integer(json_object_get(p, "ready")) && json_is_integer(json_object_get(p, "taken"));
	if (ok) {
		*ready = json_integer_value(json_object_get(p, "ready"));
		*taken = json_integer_value(json_object_get(p, "taken"));
	}
	json_decref(j);
	return ok;
}

/* Untimed: until silod's pool holds k ready sandboxes again (false after POOL_WAIT_MS). */
static bool pool_wait_full(CURL *h, const char *sock, int k)
{
	long long ready = -1, taken;
	for (int waited = 0; waited < POOL_WAIT_MS; waited += 2) {
		if (pool_counts(h, sock, &ready, &taken) && ready >= k)
			return true;
		usleep(2000);
	}
	return false;
}

/* A silod of its own with a warm pool of K sandboxes of the spec `silo run
 * --provider namespace -- CMD` sends (cli/cmd_run.c: name "run", 1 vCPU,
 * 512 MiB), in fresh dirs under tmp; this process's SILO_STATE_DIR and
 * SILO_RUNTIME_DIR are left as they were, so the embedded rows never find it.
 * The pid (sock: its socket), or -1 with the reason printed. */
static pid_t start_pool_silod(const char *silod, int k, char *tmp, char *pool_path, char *sock, size_t socklen)
{
	vm_spec spec = {0};
	snprintf(spec.name, sizeof spec.name, "run");
	spec.vcpus = 1;
	spec.memory_mb = 512;
	spec.provider = "namespace";
	char *toml = spec_format(&spec);
	int fd = mkstemps(pool_path, 5);
	bool wrote = fd >= 0 && write_all(fd, toml, strlen(toml)) == 0;
	free(toml);
	if (fd >= 0)
		close(fd);
	if (!wrote) {
		fprintf(stderr, "run_latency: write %s: %s\n", pool_path, strerror(errno));
		return -1;
	}
	char pool_arg[PATH_MAX + 16];
	snprintf(pool_arg, sizeof pool_arg, "%s:%d", pool_path, k);
	char *const argv[] = {(char *)silod, "--warm-pool", pool_arg, NULL};
	char *keep[2] = {NULL, NULL};
	static const char *const vars[2] = {"SILO_STATE_DIR", "SILO_RUNTIME_DIR"};
	for (int i = 0; i < 2; i++)
		keep[i] = getenv(vars[i]) ? xstrdup(getenv(vars[i])) : NULL;
	pid_t pid = bench_spawn_silod(argv, tmp, sock, socklen);
	for (int i = 0; i < 2; i++) {
		if (keep[i])
			setenv(vars[i], keep[i], 1);
		else
			unsetenv(vars[i]);
		free(keep[i]);
	}
	if (pid < 0)
		fprintf(stderr, "run_latency: start %s: %s\n", silod, strerror(errno));
	return pid;
}

int main(int argc, char **argv)
{
	int runs = 200, ncmp = 0, pool_k = 2;
	char silo[PATH_MAX] = "", silod_path[4096];
	const char *silod = NULL;
	const char *cmp_name[MAX_COMPARE];
	char *cmp_path[MAX_COMPARE];
	for (int i = 1; i < argc; i++) {
		char *eq;
		if (!strcmp(argv[i], "-n") && i + 1 < argc) {
			runs = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--silo") && i + 1 < argc) {
			snprintf(silo, sizeof silo, "%s", argv[++i]);
		} else if (!strcmp(argv[i], "--silod") && i + 1 < argc) {
			silod = argv[++i];
		} else if (!strcmp(argv[i], "--warm-pool") && i + 1 < argc) {
			pool_k = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--compare") && i + 1 < argc && ncmp < MAX_COMPARE &&
			   (eq = strchr(argv[i + 1], '=')) && eq != argv[i + 1] && access(eq + 1, X_OK) == 0) {
			*eq = '\0';
			cmp_name[ncmp] = argv[++i];
			cmp_path[ncmp++] = eq + 1;
		} else {
			fprintf(stderr, "usage: run_latency [-n RUNS] [--silo PATH] [--compare NAME=PATH]... "
					"(at most %d, each an executable silo) [--silod PATH] [--warm-pool K (0: no silod row)]\n",
				MAX_COMPARE);
			return 2;
		}
	}
	if (runs < 1 || runs > 100000 || pool_k < 0 || pool_k > 64) {
		fprintf(stderr, "run_latency: -n must be 1..100000, --warm-pool 0..64\n");
		return 2;
	}
	if (!silo[0]) {
		/* bench/run_latency -> cli/silo in the same build tree */
		char self[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
		if (n > 0) {
			self[n] = '\0';
			char *s = strrchr(self, '/');
			if (s)
				*s = '\0';
			snprintf(silo, sizeof silo, "%s/../cli/silo", self);
		}
	}
	if (access(silo, X_OK) < 0) {
		fprintf(stderr, "run_latency: %s: not found (build the tree or pass --silo)\n", silo);
		return 1;
	}
	char agent[PATH_MAX], rootfs[PATH_MAX];
	silo_error err = {0};
	if (find_helper_binary("silo-agent", agent, sizeof agent, &err) < 0 ||
	    ns_rootfs_base(agent, rootfs, sizeof rootfs, &err) < 0) {
		fprintf(stderr, "run_latency: %s\n", err.message);
		return 1;
	}
	bool have_bwrap = access("/usr/bin/bwrap", X_OK) == 0;

	/* the silod row: its own silod with a warm pool */
	char pool_tmp[] = "/tmp/silo-run-latency-XXXXXX", pool_path[] = "/tmp/silo-run-latency-pool-XXXXXX.toml";
	char sock[PATH_MAX] = "";
	pid_t silod_pid = -1;
	CURL *h = NULL;
	const char *no_pool = NULL;   /* why the silod row is missing */
	if (!pool_k) {
		no_pool = "--warm-pool 0";
	} else if (!silod && find_helper_binary("silod", silod_path, sizeof silod_path, &err) < 0) {
		no_pool = "silod not found";
	} else {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		h = curl_easy_init();
		silod_pid = start_pool_silod(silod ? silod : silod_path, pool_k, pool_tmp, pool_path, sock, sizeof sock);
		if (silod_pid < 0 || bench_silod_wait(h, sock, "namespace") != 1 || !pool_wait_full(h, sock, pool_k))
			no_pool = "silod or its warm pool did not come up";
	}
	if (no_pool && pool_k)
		fprintf(stderr, "run_latency: no silod row: %s\n", no_pool);

	bench_series s_run = bench_series_new(runs);
	bench_series s_bw = bench_series_new(runs);
	bench_series s_exec = bench_series_new(runs);
	bench_series s_pool = bench_series_new(runs);
	bench_series s_cmp[MAX_COMPARE];
	char *run_argv[] = {silo, "run", "--provider", "namespace", "--", "true", NULL};
	char *cmp_argv[MAX_COMPARE][7];
	for (int c = 0; c < ncmp; c++) {
		s_cmp[c] = bench_series_new(runs);
		memcpy(cmp_argv[c], run_argv, sizeof run_argv);
		cmp_argv[c][0] = cmp_path[c];
	}
	char *bw_argv[] = {"/usr/bin/bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--ro-bind",
			   rootfs, "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--", "/bin/true",
			   NULL};
	char load0[64] = "", load1[64] = "";   /* /proc/loadavg's first three fields at start and end */
	loadavg(load0, sizeof load0);
	/* warm-up (page cache, rootfs layer) */
	bench_timed_run(run_argv);
	for (int c = 0; c < ncmp; c++)
		bench_timed_run(cmp_argv[c]);
	if (have_bwrap)
		bench_timed_run(bw_argv);
	long long taken0 = 0, taken1 = 0, ready;
	if (!no_pool) {
		bench_timed_run_env(run_argv, "SILO_SOCKET", sock);
		if (!pool_wait_full(h, sock, pool_k) || !pool_counts(h, sock, &ready, &taken0))
			no_pool = "the warm pool did not refill";
	}
	for (int i = 0; i < runs; i++) {
		bench_series_add(&s_run, bench_timed_run(run_argv));
		for (int c = 0; c < ncmp; c++)
			bench_series_add(&s_cmp[c], bench_timed_run(cmp_argv[c]));
		if (have_bwrap)
			bench_series_add(&s_bw, bench_timed_run(bw_argv));
		if (!no_pool) {
			bench_series_add(&s_pool, bench_timed_run_env(run_argv, "SILO_SOCKET", sock));
			if (!pool_wait_full(h, sock, pool_k))
				no_pool = "the warm pool did not refill";
		}
	}
	if (silod_pid > 0 && pool_counts(h, sock, &ready, &taken1) && taken1 < taken0)
		taken1 = taken0;
	bench_silod_stop(silod_pid, pool_tmp);
	if (silod_pid > 0)
		unlink(pool_path);
	if (h)
		curl_easy_cleanup(h);

	vm_spec spec;
	memset(&spec, 0, sizeof spec);
	snprintf(spec.name, sizeof spec.name, "bench-exec");
	spec.provider = "namespace";
	spec.vcpus = 1;
	spec.memory_mb = 256;
	sandbox *sb = NULL;
	sandbox_opts o = {.fallback = "namespace"};
	if (sandbox_create(&spec, &o, &sb, &err) < 0) {
		fprintf(stderr, "run_latency: sandbox_create: %s\n", err.message);
		return 1;
	}
	char *targv[] = {"true", NULL};
	exec_req req = {.argv = targv, .uid = -1, .gid = -1};
	for (int i = 0; i < runs; i++) {
		exec_result res;
		uint64_t t0 = now_mono_ns();
		int rc = chan_exec(sb->ch, &req, NULL, NULL, &res, &err);
		double ms = (double)(now_mono_ns() - t0) / 1e6;
		bench_series_add(&s_exec, rc == 0 && res.exit_code == 0 && !res.signal ? ms : -1);
	}
	cleanup_report rep = {0};
	if (sandbox_destroy(sb, 2000, &rep, &err) < 0)
		fprintf(stderr, "run_latency: destroy: %s\n", err.message);
	cleanup_report_free(&rep);

	loadavg(load1, sizeof load1);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	printf("{\n  \"benchmark\": \"run_latency\",\n  \"runs\": %d,\n  \"cpus\": %ld,\n", runs, ncpu);
	printf("  \"loadavg_start\": \"%s\",\n  \"loadavg_end\": \"%s\",\n", load0, load1);
	fprintf(stderr, "load average (1, 5, 15 min): %s at start, %s at the end\n", load0, load1);
	print_series("silo_run_true", &s_run, ", \"command\": \"silo run --provider namespace -- true\"");
	printf(",\n");
	int failed = 0;
	for (int c = 0; c < ncmp; c++) {
		char name[96], extra[PATH_MAX + 64];
		snprintf(name, sizeof name, "silo_run_true_%s", cmp_name[c]);
		snprintf(extra, sizeof extra, ", \"silo\": \"%s\"", cmp_path[c]);
		print_series(name, &s_cmp[c], extra);
		printf(",\n");
		failed |= s_cmp[c].failed;
		free(s_cmp[c].ms);
	}
	if (have_bwrap) {
		char extra[PATH_MAX + 256];
		snprintf(extra, sizeof extra, ", \"command\": \"bwrap %s\", \"rootfs\": \"%s\"", BWRAP_FLAGS, rootfs);
		print_series("bwrap_true", &s_bw, extra);
	} else {
		printf("  \"bwrap_true\": {\"n\": 0, \"unavailable\": \"/usr/bin/bwrap not installed\"}");
	}
	printf(",\n");
	if (s_pool.n) {
		char extra[PATH_MAX + 256];
		snprintf(extra, sizeof extra,
			 ", \"command\": \"silo run --provider namespace -- true through silod --warm-pool %d\", "
			 "\"pool_taken\": %lld%s%s%s",
			 pool_k, taken1 - taken0, no_pool ? ", \"stopped\": \"" : "", no_pool ? no_pool : "",
			 no_pool ? "\"" : "");
		print_series("silo_run_true_silod_warm_pool", &s_pool, extra);
		failed |= s_pool.failed || no_pool || taken1 - taken0 != s_pool.n;
	} else {
		printf("  \"silo_run_true_silod_warm_pool\": {\"n\": 0, \"unavailable\": \"%s\"}", no_pool);
	}
	printf(",\n");
	print_series("exec_rtt_true", &s_exec, ", \"command\": \"chan_exec(true) in a running namespace sandbox\"");
	printf("\n}\n");
	failed |= s_run.failed || s_exec.failed || s_bw.failed;
	free(s_run.ms);
	free(s_bw.ms);
	free(s_exec.ms);
	free(s_pool.ms);
	return failed ? 1 : 0;
}
