/* SPDX-License-Identifier: Apache-2.0
 * `silo run -- true` latency vs bubblewrap, plus exec round trip in a running
 * namespace sandbox (docs/benchmarks.md "silo run latency vs bubblewrap").
 *
 *   run_latency [-n RUNS] [--silo PATH] [--compare NAME=PATH]...
 *
 * 1. For RUNS iterations, interleaved so all see the same machine state:
 *    - `silo run --provider namespace -- true` (fork+exec of the real CLI:
 *      spawn, agent handshake, exec, destroy, cleanup verification);
 *    - the same with every --compare binary (another build, e.g. an older
 *      commit: series "silo_run_true_NAME");
 *    - `bwrap` with the flags in BWRAP_FLAGS over the same busybox base layer.
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

#include "bench_util.h"
#include "common/util.h"
#include "core/sandbox.h"
#include "providers/ns.h"

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

int main(int argc, char **argv)
{
	int runs = 200, ncmp = 0;
	char silo[PATH_MAX] = "";
	const char *cmp_name[MAX_COMPARE];
	char *cmp_path[MAX_COMPARE];
	for (int i = 1; i < argc; i++) {
		char *eq;
		if (!strcmp(argv[i], "-n") && i + 1 < argc) {
			runs = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--silo") && i + 1 < argc) {
			snprintf(silo, sizeof silo, "%s", argv[++i]);
		} else if (!strcmp(argv[i], "--compare") && i + 1 < argc && ncmp < MAX_COMPARE &&
			   (eq = strchr(argv[i + 1], '=')) && eq != argv[i + 1] && access(eq + 1, X_OK) == 0) {
			*eq = '\0';
			cmp_name[ncmp] = argv[++i];
			cmp_path[ncmp++] = eq + 1;
		} else {
			fprintf(stderr, "usage: run_latency [-n RUNS] [--silo PATH] [--compare NAME=PATH]... "
					"(at most %d, each an executable silo)\n",
				MAX_COMPARE);
			return 2;
		}
	}
	if (runs < 1 || runs > 100000) {
		fprintf(stderr, "run_latency: -n must be 1..100000\n");
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

	bench_series s_run = bench_series_new(runs);
	bench_series s_bw = bench_series_new(runs);
	bench_series s_exec = bench_series_new(runs);
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
	/* warm-up (page cache, rootfs layer) */
	bench_timed_run(run_argv);
	for (int c = 0; c < ncmp; c++)
		bench_timed_run(cmp_argv[c]);
	if (have_bwrap)
		bench_timed_run(bw_argv);
	for (int i = 0; i < runs; i++) {
		bench_series_add(&s_run, bench_timed_run(run_argv));
		for (int c = 0; c < ncmp; c++)
			bench_series_add(&s_cmp[c], bench_timed_run(cmp_argv[c]));
		if (have_bwrap)
			bench_series_add(&s_bw, bench_timed_run(bw_argv));
	}

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

	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	printf("{\n  \"benchmark\": \"run_latency\",\n  \"runs\": %d,\n  \"cpus\": %ld,\n", runs, ncpu);
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
	print_series("exec_rtt_true", &s_exec, ", \"command\": \"chan_exec(true) in a running namespace sandbox\"");
	printf("\n}\n");
	failed |= s_run.failed || s_exec.failed || s_bw.failed;
	free(s_run.ms);
	free(s_bw.ms);
	free(s_exec.ms);
	return failed ? 1 : 0;
}
