/* SPDX-License-Identifier: Apache-2.0
 * `silo image import` cost against plain tools, and the root-disk format
 * choice (docs/images.md "Imported images", docs/benchmarks.md).
 *
 *   image_import SOURCE [-n RUNS] [--silo PATH] [--layout OCI_DIR]
 *
 * SOURCE is a rootfs tarball (tar, .gz, .zst, .xz). For RUNS iterations,
 * interleaved so each sees the same machine state, in a private cache:
 *   - import_cold: `silo image import SOURCE` after `silo image rm` + `gc`
 *     (every layer extracted, checked, merged, the ext4 built, committed);
 *   - tar_mkfs: the same bytes with the usual tools and none of the checks:
 *     `tar -xf SOURCE -C DIR` then `mkfs.ext4 -d DIR` at the size import chose;
 *   - import_warm (with --layout): re-import of an OCI layout whose layers are
 *     stored already (manifest + config checks, ext4 build, commit).
 * Then, once, on the unpacked tree: mkfs.ext4 -d vs mkfs.erofs (plain, lz4hc)
 * vs mksquashfs (gzip, zstd) when installed: build time and image size.
 * Prints a table on stderr and one JSON document on stdout (p50/p95/p99 ms).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "common/util.h"
#include "silo-config.h"

static void print_series(const char *name, bench_series *s, const char *extra, bool last)
{
	bench_sort(s->ms, (size_t)s->n);
	fprintf(stderr, "%-16s n=%-3d failed=%-2d p50 %9.1f  p95 %9.1f  p99 %9.1f ms\n", name, s->n, s->failed,
		bench_series_pct(s, 50), bench_series_pct(s, 95), bench_series_pct(s, 99));
	printf("  \"%s\": {\"n\": %d, \"failed\": %d, \"p50_ms\": %.1f, \"p95_ms\": %.1f, \"p99_ms\": %.1f, \"mean_ms\": %.1f%s}%s\n",
	       name, s->n, s->failed, bench_series_pct(s, 50), bench_series_pct(s, 95), bench_series_pct(s, 99),
	       bench_series_mean(s), extra, last ? "" : ",");
}

static uint64_t file_size(const char *p, bool disk)
{
	struct stat sb;
	if (stat(p, &sb) < 0)
		return 0;
	return disk ? (uint64_t)sb.st_blocks * 512 : (uint64_t)sb.st_size;
}

int main(int argc, char **argv)
{
	const char *src = NULL, *layout = NULL;
	char silo[PATH_MAX];
	int runs = 5;
	snprintf(silo, sizeof silo, "%s/cli/silo", SILO_BUILD_ROOT);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc)
			runs = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--silo") && i + 1 < argc)
			snprintf(silo, sizeof silo, "%s", argv[++i]);
		else if (!strcmp(argv[i], "--layout") && i + 1 < argc)
			layout = argv[++i];
		else
			src = argv[i];
	}
	if (!src || runs < 1 || geteuid() != 0) {
		fprintf(stderr, "usage: image_import ROOTFS_TARBALL [-n RUNS] [--silo PATH] [--layout OCI_DIR] (as root)\n");
		return 2;
	}
	char dir[] = "/var/tmp/silo-bench-import-XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	char cache[PATH_MAX], tree[PATH_MAX], img[PATH_MAX];
	snprintf(cache, sizeof cache, "%s/cache", dir);
	snprintf(tree, sizeof tree, "%s/tree", dir);
	snprintf(img, sizeof img, "%s/peer.ext4", dir);
	setenv("SILO_CACHE_DIR", cache, 1);
	/* warm up: the loader initramfs is built once per agent, not per import */
	char *warm[] = {silo, "image", "import", (char *)src, "--name", "b", "--skip-devices", NULL};
	if (bench_timed_run(warm) < 0) {
		fprintf(stderr, "image_import: %s image import %s failed\n", silo, src);
		return 1;
	}
	char *rm[] = {silo, "image", "rm", "b", NULL}, *gc[] = {silo, "image", "gc", NULL};
	char *lay[] = {silo, "image", "import", (char *)layout, "--name", "l", "--force", NULL};
	/* the size import chose, so the peer builds the same image */
	char size[32], ext4[PATH_MAX * 2];
	snprintf(ext4, sizeof ext4, "sh -c 'ls %s/images/b/*/rootfs.ext4'", cache);
	FILE *f = popen(ext4, "r");
	if (!f || !fgets(ext4, sizeof ext4, f))
		return 1;
	pclose(f);
	ext4[strcspn(ext4, "\n")] = '\0';
	uint64_t ext4_size = file_size(ext4, false), ext4_disk = file_size(ext4, true);
	snprintf(size, sizeof size, "%lluk", (unsigned long long)(ext4_size >> 10));
	bench_series cold = bench_series_new(runs), peer = bench_series_new(runs), warm_s = bench_series_new(runs);
	if (layout)
		(void)bench_timed_run(lay);
	for (int i = 0; i < runs; i++) {
		(void)bench_timed_run(rm);
		(void)bench_timed_run(gc);
		bench_series_add(&cold, bench_timed_run(warm));
		rm_rf(tree);
		mkdir(tree, 0755);
		uint64_t t0 = now_mono_ns();
		char *tar[] = {"tar", "-xf", (char *)src, "-C", tree, "--numeric-owner", "--xattrs", NULL};
		char *mk[] = {"mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "^has_journal", "-m", "0", "-d", tree, img, size, NULL};
		bool ok = bench_timed_run(tar) >= 0 && bench_timed_run(mk) >= 0;
		bench_series_add(&peer, ok ? bench_ms_since(t0) : -1);
		if (layout)
			bench_series_add(&warm_s, bench_timed_run(lay));
	}
	printf("{\n  \"benchmark\": \"image_import\",\n  \"source\": \"%s\",\n  \"runs\": %d,\n  \"cpus\": %ld,\n", src, runs,
	       sysconf(_SC_NPROCESSORS_ONLN));
	printf("  \"ext4\": {\"size\": %llu, \"disk\": %llu},\n", (unsigned long long)ext4_size, (unsigned long long)ext4_disk);
	print_series("import_cold", &cold, ", \"command\": \"silo image import SOURCE (after rm + gc)\"", false);
	print_series("tar_mkfs", &peer, ", \"command\": \"tar -xf SOURCE && mkfs.ext4 -d\"", false);
	if (layout)
		print_series("import_warm", &warm_s, ", \"command\": \"silo image import --force OCI_DIR (layers stored)\"", false);
	/* root-disk formats on the unpacked tree */
	struct {
		const char *name, *file;
		char *argv[16];
	} fs[] = {
		{"ext4", "f.ext4", {"mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "^has_journal", "-m", "0", "-d", tree, NULL, size, NULL}},
		{"erofs", "f.erofs", {"mkfs.erofs", NULL, tree, NULL}},
		{"erofs_lz4hc", "f.erofs-lz4", {"mkfs.erofs", "-zlz4hc", NULL, tree, NULL}},
		{"squashfs_gzip", "f.sqfs", {"mksquashfs", tree, NULL, "-noappend", "-quiet", "-no-progress", NULL}},
		{"squashfs_zstd", "f.sqfs-zstd", {"mksquashfs", tree, NULL, "-noappend", "-quiet", "-no-progress", "-comp", "zstd", NULL}},
	};
	printf("  \"root_disk_formats\": {");
	for (size_t i = 0; i < ARRAY_SIZE(fs); i++) {
		char out[PATH_MAX + 32];
		snprintf(out, sizeof out, "%s/%s", dir, fs[i].file);
		for (int k = 1; k < 16; k++)
			if (!fs[i].argv[k]) {   /* the first NULL stands for the output file */
				fs[i].argv[k] = out;
				break;
			}
		double ms = bench_timed_run(fs[i].argv);
		fprintf(stderr, "%-16s %s  %9.1f ms  size %llu  disk %llu\n", fs[i].name, ms < 0 ? "unavailable" : "", ms,
			(unsigned long long)file_size(out, false), (unsigned long long)file_size(out, true));
		printf("%s\n    \"%s\": {\"ms\": %.1f, \"size\": %llu, \"disk\": %llu}", i ? "," : "", fs[i].name, ms,
		       (unsigned long long)file_size(out, false), (unsigned long long)file_size(out, true));
		unlink(out);
	}
	printf("\n  }\n}\n");
	rm_rf(dir);
	return cold.failed || peer.failed ? 1 : 0;
}
