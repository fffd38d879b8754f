/* SPDX-License-Identifier: Apache-2.0
 * Fuzz the untrusted-archive path of `silo image import`: the input goes through
 * the decompressing stream (a memfd; gzip/zstd/xz chosen by magic) into the tar
 * reader and the layer extractor, writing into a scratch root next to an empty
 * sentinel directory. Invariants: no crash or leak; every refusal is
 * INVALID_CONFIG, RESOURCE_EXCEEDED or IO_ERROR; the sentinel stays empty and
 * the scratch directory holds nothing but the root and the sentinel (nothing
 * is ever written outside the root). Small budgets keep each run short.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "oci/layer.h"
#include "oci/stream.h"
#include "oci/tar.h"
#include "tree_test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char root[128], outside[128];
	const char *scratch = tree_scratch("oci", root, outside);
	int mfd = memfd_create("fuzz", MFD_CLOEXEC);
	if (mfd < 0 || write_all(mfd, data, size) < 0 || lseek(mfd, 0, SEEK_SET) < 0)
		abort();
	oci_budget b = {.max_bytes = 4u << 20, .max_entries = 256};
	oci_extract_opts xo = {.budget = &b, .skip_devices = size % 2 == 0};
	oci_layer_stats st = {0};
	silo_error err = {0};
	oci_stream *s;
	if (oci_stream_open(mfd, "fuzz", &b, &s, &err) == 0) {
		tar_reader *r = tar_reader_new(oci_stream_read, s);
		int rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		int rc = oci_layer_extract(r, rfd, "fuzz", &xo, &st, &err);
		if (rc < 0 && err.code != SILO_ERR_INVALID_CONFIG && err.code != SILO_ERR_RESOURCE_EXCEEDED &&
		    err.code != SILO_ERR_IO_ERROR)
			abort();
		char raw[65], out[65];
		if (rc == 0)
			(void)oci_stream_finish(s, raw, NULL, out, &err);
		close(rfd);
		tar_reader_free(r);
		oci_stream_close(s);
	}
	close(mfd);
	if (tree_count(outside) != 0 || tree_count(scratch) != 2)
		abort();
	return 0;
}
