/* SPDX-License-Identifier: Apache-2.0
 * Shared by the silo-vmm integration tests: skip without /dev/kvm, find the built
 * silo-vmm and the guest payloads (tests/guest, built into $SILO_BUILD_ROOT/vmm);
 * the /proc helpers of proc_test.h come with it.
 */
#ifndef SILO_TESTS_VMM_TEST_H
#define SILO_TESTS_VMM_TEST_H

#include <fcntl.h>
#include <stdbool.h>
#include <sys/types.h>

#include "harness.h"
#include "proc_test.h"

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
static __attribute__((unused)) const char *payload(const char *name)
{
	static char bufs[4][4096];
	static int i;
	char *b = bufs[i++ % 4];
	snprintf(b, 4096, "%s/%s", guest_dir, name);
	return b;
}

/* Hardware virtualization (vmx/svm in /proc/cpuinfo), not PVM: Linux guests reach userspace. */
static __attribute__((unused)) bool hw_virt(void)
{
	cleanup_free char *ci = NULL;
	size_t n = 0;
	if (read_file("/proc/cpuinfo", 16u << 20, &ci, &n, NULL) < 0)
		return false;
	return strstr(ci, " vmx") || strstr(ci, " svm");
}

#endif
