/* SPDX-License-Identifier: Apache-2.0
 * Fuzz the scratch disk snapshot form (lib/providers/vm-common.c): the header and
 * extent table checks on random bytes, with a fixed expected size and with none;
 * when the checks pass, loading the input as a file must either rebuild a disk of
 * that size or refuse with CHECKSUM_MISMATCH, never crash or write outside it.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "providers/vm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

static void remove_dir(void)
{
	rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	silo_error err = {0};
	vm_scratch_check(data, size, 16u << 20, &err);
	if (vm_scratch_check(data, size, 0, &err) < 0 || size > (1u << 20))
		return 0;
	if (!dir[0]) {
		snprintf(dir, sizeof dir, "/tmp/silo-fuzz-scratch-%d", (int)getpid());
		mkdir(dir, 0700);
		atexit(remove_dir);
	}
	char in[128], out[128];
	snprintf(in, sizeof in, "%s/in", dir);
	snprintf(out, sizeof out, "%s/disk.img", dir);
	unlink(out);
	int fd = open(in, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	silo_error e2 = {0};
	if (vm_scratch_load(in, out, 0, &e2) == 0) {
		struct stat st;
		if (stat(out, &st) < 0 || st.st_size < (16 << 20))
			abort();
	} else if (e2.code != SILO_ERR_CHECKSUM_MISMATCH && e2.code != SILO_ERR_IO_ERROR) {
		abort();
	}
	unlink(out);
	unlink(in);
	return 0;
}
