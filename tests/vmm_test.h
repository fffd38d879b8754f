/* SPDX-License-Identifier: Apache-2.0
 * Shared by the silo-vmm integration tests: skip without /dev/kvm, find the built
 * silo-vmm and the guest payloads (tests/guest, built into $SILO_BUILD_ROOT/vmm).
 */
#ifndef SILO_TESTS_VMM_TEST_H
#define SILO_TESTS_VMM_TEST_H

#include <fcntl.h>
#include <stdbool.h>
#include <sys/types.h>

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

/* The value after "Key:" in /proc/PID/FILE (status, limits ...). */
static __attribute__((unused)) bool proc_value(pid_t pid, const char *file, const char *key, char *out, size_t len)
{
	char p[64], line[512];
	snprintf(p, sizeof p, "/proc/%d/%s", (int)pid, file);
	FILE *f = fopen(p, "r");
	bool found = false;
	while (f && !found && fgets(line, sizeof line, f)) {
		if (strncmp(line, key, strlen(key)))
			continue;
		const char *v = line + strlen(key);
		v += strspn(v, " \t:");
		snprintf(out, len, "%.*s", (int)strcspn(v, "\n"), v);
		found = true;
	}
	if (f)
		fclose(f);
	return found;
}

/* Does pid share this process's namespace ns ("net", "mnt" ...)? */
static __attribute__((unused)) bool same_namespace(pid_t pid, const char *ns)
{
	char a[64], b[64], la[64] = "", lb[64] = "";
	snprintf(a, sizeof a, "/proc/%d/ns/%s", (int)pid, ns);
	snprintf(b, sizeof b, "/proc/self/ns/%s", ns);
	if (readlink(a, la, sizeof la - 1) < 0 || readlink(b, lb, sizeof lb - 1) < 0)
		return true;
	return !strcmp(la, lb);
}

#endif
