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
#include "tree_test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
	char root[128], outside[128], esc[160];
	const char *scratch = tree_scratch("archive", root, outside);
	snprintf(esc, sizeof esc, "%s/escape", root);
	if (symlink(outside, esc) < 0)
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
	if (tree_count(outside) != 0 || tree_count(scratch) != 2)
		abort();
	return 0;
}
