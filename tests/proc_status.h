/* SPDX-License-Identifier: Apache-2.0
 * The kB figure of a "Key:   N kB" line of a /proc file, for the tests and the
 * benches (bench/meson.build puts tests/ on the include path):
 * kib_field("/proc/meminfo", "MemAvailable"), proc_status_kib(pid, "VmHWM") from
 * /proc/PID/status (pid 0: this process). -1 when the file or the key is absent.
 */
#ifndef SILO_TESTS_PROC_STATUS_H
#define SILO_TESTS_PROC_STATUS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

static inline long long kib_field(const char *file, const char *key)
{
	FILE *f = fopen(file, "re");
	if (!f)
		return -1;
	char line[256];
	long long v = -1;
	size_t kl = strlen(key);
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, key, kl) && line[kl] == ':') {
			v = atoll(line + kl + 1);
			break;
		}
	fclose(f);
	return v;
}

static inline long proc_status_kib(pid_t pid, const char *key)
{
	char path[64];
	if (pid)
		snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	else
		snprintf(path, sizeof path, "/proc/self/status");
	return (long)kib_field(path, key);
}

#endif
