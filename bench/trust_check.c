/* SPDX-License-Identifier: Apache-2.0
 * What the keyring costs a namespace start (docs/security.md "Cost"): the
 * signed-manifest check (signature, version, expiry) plus the base layer's
 * tree digest, with the verdict cache warm and cold, against the same start
 * without a keyring, measured in one run on the same machine state.
 *
 *   trust_check [-n RUNS] [--silo PATH]
 *
 * Private cache, keyring and state dirs under /tmp (the user's are not touched).
 * Interleaved per iteration:
 *   silo_run_no_keyring      `silo run --provider namespace -- true`, empty keyring
 *   silo_run_keyring_warm    the same with a keyring, a signed manifest, the verdict warm
 *   silo_run_keyring_cold    the same, the verdict removed before each run (full tree walk)
 *   check_tree_warm_us       trust_check_tree() in process, verdict warm
 *   check_tree_cold_us       trust_check_tree() in process, verdict removed (full walk)
 * Prints a table on stderr and one JSON document on stdout (p50/p95/p99).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "common/util.h"
#include "image/image.h"
#include "providers/ns.h"
#include "trust/trust.h"

static void print_series(const char *name, bench_series *s, const char *unit, bool comma)
{
	bench_sort(s->ms, (size_t)s->n);
	fprintf(stderr, "%-24s n=%-4d failed=%-3d p50 %9.3f  p95 %9.3f  p99 %9.3f  mean %9.3f %s\n", name, s->n, s->failed,
		bench_series_pct(s, 50), bench_series_pct(s, 95), bench_series_pct(s, 99), bench_series_mean(s), unit);
	printf("  \"%s\": {\"n\": %d, \"failed\": %d, \"p50_%s\": %.3f, \"p95_%s\": %.3f, \"p99_%s\": %.3f, \"mean_%s\": %.3f}%s\n",
	       name, s->n, s->failed, unit, bench_series_pct(s, 50), unit, bench_series_pct(s, 95), unit,
	       bench_series_pct(s, 99), unit, bench_series_mean(s), comma ? "," : "");
}

static void drop_verdicts(const char *keyring)
{
	char p[PATH_MAX + 32];
	snprintf(p, sizeof p, "%s/state/trees", keyring);
	rm_rf(p);
}

int main(int argc, char **argv)
{
	int runs = 50;
	char silo[PATH_MAX];
	int bad = bench_args_silo(argc, argv, "trust_check", &runs, silo, sizeof silo);
	if (bad)
		return bad;
	char tmp[] = "/tmp/silo-bench-trust.XXXXXX";
	if (bench_private_dirs(tmp) < 0)
		return perror("mkdtemp"), 1;
	char keyring[PATH_MAX], empty[PATH_MAX], d[PATH_MAX + 32];
	snprintf(keyring, sizeof keyring, "%s/keyring", tmp);
	snprintf(empty, sizeof empty, "%s/no-keys", tmp);
	snprintf(d, sizeof d, "%s/cache", tmp);
	setenv("SILO_CACHE_DIR", d, 1);
	setenv("SILO_KEYRING_DIR", keyring, 1);
	mkdir_p(empty, 0755);

	/* the base layer, recorded and signed as `silo image build namespace --sign` does */
	silo_error err = {0};
	char agent[PATH_MAX], layer[PATH_MAX], pub[PATH_MAX + 16], sec[PATH_MAX + 16], mpath[PATH_MAX];
	snprintf(pub, sizeof pub, "%s/k.pub", tmp);
	snprintf(sec, sizeof sec, "%s/k.key", tmp);
	trust_tree_info info;
	trust_seckey sk;
	image_manifest_path(mpath, sizeof mpath);
	char *comment = NULL;
	if (find_helper_binary("silo-agent", agent, sizeof agent, &err) < 0 || ns_rootfs_base(agent, layer, sizeof layer, &err) < 0 ||
	    trust_keygen(pub, sec, NULL, &err) < 0 || trust_keyring_add(keyring, pub, NULL, &err) < 0 ||
	    trust_tree_digest(layer, &info, &err) < 0 ||
	    image_record_tree("namespace", layer, info.sha256, info.entries, info.bytes, &err) < 0 ||
	    trust_seckey_load(sec, NULL, &sk, &err) < 0 ||
	    !(comment = trust_versioned_comment(mpath, trust_next_version(NULL), (int64_t)time(NULL) + 86400)) ||
	    trust_sign_file(&sk, mpath, NULL, comment, false, &err) < 0) {
		fprintf(stderr, "trust_check: setup: %s\n", err.message);
		rm_rf(tmp);
		return 1;
	}
	free(comment);

	bench_series s_none = bench_series_new(runs), s_warm = bench_series_new(runs), s_cold = bench_series_new(runs);
	bench_series c_warm = bench_series_new(runs), c_cold = bench_series_new(runs);
	char *run_argv[] = {silo, "run", "--provider", "namespace", "--", "true", NULL};
	setenv("SILO_KEYRING_DIR", empty, 1);
	bench_timed_run(run_argv); /* warm-up: page cache */
	setenv("SILO_KEYRING_DIR", keyring, 1);
	bench_timed_run(run_argv);
	for (int i = 0; i < runs; i++) {
		setenv("SILO_KEYRING_DIR", empty, 1);
		bench_series_add(&s_none, bench_timed_run(run_argv));
		setenv("SILO_KEYRING_DIR", keyring, 1);
		bench_series_add(&s_warm, bench_timed_run(run_argv));
		drop_verdicts(keyring);
		bench_series_add(&s_cold, bench_timed_run(run_argv));
		uint64_t t0 = now_mono_ns();
		bool checked = false;
		int rc = trust_check_tree(layer, &checked, &err);
		bench_series_add(&c_warm, rc == 0 && checked ? bench_us_since(t0) : -1);
		drop_verdicts(keyring);
		t0 = now_mono_ns();
		rc = trust_check_tree(layer, &checked, &err);
		bench_series_add(&c_cold, rc == 0 && checked ? bench_us_since(t0) : -1);
	}
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	printf("{\n  \"benchmark\": \"trust_check\",\n  \"runs\": %d,\n  \"cpus\": %ld,\n", runs, ncpu);
	printf("  \"tree\": {\"entries\": %llu, \"bytes\": %llu},\n", (unsigned long long)info.entries,
	       (unsigned long long)info.bytes);
	print_series("silo_run_no_keyring", &s_none, "ms", true);
	print_series("silo_run_keyring_warm", &s_warm, "ms", true);
	print_series("silo_run_keyring_cold", &s_cold, "ms", true);
	print_series("check_tree_warm", &c_warm, "us", true);
	print_series("check_tree_cold", &c_cold, "us", false);
	printf("}\n");
	int failed = s_none.failed || s_warm.failed || s_cold.failed || c_warm.failed || c_cold.failed;
	free(s_none.ms), free(s_warm.ms), free(s_cold.ms), free(c_warm.ms), free(c_cold.ms);
	rm_rf(tmp);
	return failed ? 1 : 0;
}
