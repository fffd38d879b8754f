/* SPDX-License-Identifier: Apache-2.0
 * Fuzz the extractor that `silo cp ID:/path DIR` runs on a tar stream made by
 * the guest (lib/archive, hostile input on the host): the bytes go through the
 * bounded tar reader into archive_extract below a scratch root that already
 * holds a symlink to a sentinel directory next to it. Invariants: no crash or
 * leak; every refusal is INVALID_CONFIG, RESOURCE_EXCEEDED or IO_ERROR; the
 * sentinel stays empty and nothing but the root and the sentinel appears in
 * the scratch directory (nothing is written outside the root, or through a
 * symlink). Alternate inputs run with single_root and rename_root.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/archive.h"
#include "common/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char scratch[64];

static void remove_scratch(void)
{
	rm_rf(scratch);
}

static size_t entries(const char *dir)
{
	DIR *d = opendir(dir);
	size_t n = 0;
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	if (d)
		closedir(d);
	return n;
}

typedef struct mem {
	const uint8_t *p;
	size_t left;
} mem;

static ssize_t mem_read(void *ud, void *buf, size_t n, silo_error *err)
{
	mem *m = ud;
	size_t k = n < m->left ? n : m->left;
	memcpy(buf, m->p, k);
	m->p += k;
	m->left -= k;
	return (ssize_t)k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!scratch[0]) {
		snprintf(scratch, sizeof scratch, "/tmp/silo-fuzz-archive-%d", (int)getpid());
		mkdir(scratch, 0700);
		atexit(remove_scratch);
	}
	char root[128], outside[128], esc[160];
	snprintf(root, sizeof root, "%s/root", scratch);
	snprintf(outside, sizeof outside, "%s/outside", scratch);
	snprintf(esc, sizeof esc, "%s/escape", root);
	rm_rf(root);
	if (mkdir(root, 0755) < 0 || (mkdir(outside, 0755) < 0 && !path_exists(outside)) || symlink(outside, esc) < 0)
		abort();
	mem m = {data, size};
	tar_reader *r = tar_reader_new(mem_read, &m);
	archive_xopts o = {.max_entries = 256, .max_bytes = 4u << 20, .single_root = size % 3 != 0,
			   .rename_root = size % 3 == 1 ? "renamed" : NULL};
	silo_error err = {0};
	int rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = archive_extract(r, rfd, &o, NULL, &err);
	if (rc < 0 && err.code != SILO_ERR_INVALID_CONFIG && err.code != SILO_ERR_RESOURCE_EXCEEDED &&
	    err.code != SILO_ERR_IO_ERROR)
		abort();
	close(rfd);
	tar_reader_free(r);
	if (entries(outside) != 0 || entries(scratch) != 2)
		abort();
	return 0;
}
