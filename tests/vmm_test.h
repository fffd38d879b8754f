/* SPDX-License-Identifier: Apache-2.0
 * Shared by the silo-vmm integration tests: skip without /dev/kvm, find the built
 * silo-vmm and the guest payloads (tests/guest, built into $SILO_BUILD_ROOT/vmm).
 */
#ifndef SILO_TESTS_VMM_TEST_H
#define SILO_TESTS_VMM_TEST_H

#include <fcntl.h>

#include "harness.h"

static char vmm_path[4096], guest_dir[4096];

static void need_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		SKIP("/dev/kvm cannot be opened: %s", strerror(errno));
	close(fd);
	const char *b = getenv("SILO_BUILD_ROOT");
	REQUIRE(b);
	snprintf(vmm_path, sizeof vmm_path, "%s/vmm/silo-vmm", b);
	snprintf(guest_dir, sizeof guest_dir, "%s/vmm", b);
	REQUIRE(access(vmm_path, X_OK) == 0);
}

/* $SILO_BUILD_ROOT/vmm/NAME (four rotating buffers: several may be in one argv). */
static const char *payload(const char *name)
{
	static char bufs[4][4096];
	static int i;
	char *b = bufs[i++ % 4];
	snprintf(b, 4096, "%s/%s", guest_dir, name);
	return b;
}

#endif
