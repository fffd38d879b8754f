/* SPDX-License-Identifier: Apache-2.0
 * Shared by the tests that drive the qemu provider directly (test_qemu_provider,
 * test_qemu_e2e, test_qemu_jail): the check that a VM can run here, the
 * tracking of VM processes so that a test timeout does not leave them running,
 * and a QMP client of our own (not the provider's) to ask QEMU directly.
 */
#ifndef SILO_TESTS_QEMU_TEST_H
#define SILO_TESTS_QEMU_TEST_H

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/util.h"
#include "harness.h"
#include "image/image.h"

/* SKIP with SILO_SKIP_VM_TESTS=1; FAIL (saying how to fix it) unless the guest
 * kernel and the image IMAGE are there. */
static inline void qt_need_vm_image(const char *image)
{
	if (getenv("SILO_SKIP_VM_TESTS") && !strcmp(getenv("SILO_SKIP_VM_TESTS"), "1"))
		SKIP("SILO_SKIP_VM_TESTS=1");
	char k[PATH_MAX];
	silo_error err = {0};
	if (guest_kernel_path(k, sizeof k, &err) < 0) {
		printf("# %s\n# run scripts/prepare-images.sh BUILD_DIR (or set SILO_SKIP_VM_TESTS=1)\n",
		       err.message);
		REQUIRE(!"guest kernel present");
	}
	image_entry e;
	if (image_lookup(image, &e, &err) < 0) {
		printf("# %s\n", err.message);
		REQUIRE(!"image present");
	}
	image_entry_free(&e);
}

/* The VM's process (the qemu provider's jailer, which QEMU follows) runs in its own
 * session: it must outlive a silod restart, so meson's process-group kill on a test
 * timeout would not reach it. Remember every VM and SIGKILL them from a SIGTERM/SIGINT
 * handler. */
static volatile pid_t qt_live_vms[16];

static inline void qt_kill_live_vms(int sig)
{
	for (size_t i = 0; i < ARRAY_SIZE(qt_live_vms); i++)
		if (qt_live_vms[i] > 0)
			kill(qt_live_vms[i], SIGKILL);
	signal(sig, SIG_DFL);
	raise(sig);
}

static inline void qt_track_vm(pid_t pid)
{
	signal(SIGTERM, qt_kill_live_vms);
	signal(SIGINT, qt_kill_live_vms);
	for (size_t i = 0; i < ARRAY_SIZE(qt_live_vms); i++)
		if (__sync_bool_compare_and_swap(&qt_live_vms[i], 0, pid))
			return;
}

/* One QMP request on RUNDIR/qmp.sock after qmp_capabilities; the reply line into out. */
static __attribute__((unused)) void qmp(const char *rundir, const char *req, char *out, size_t len)
{
	out[0] = '\0';
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s/qmp.sock", rundir);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		if (fd >= 0)
			close(fd);
		return;
	}
	struct timeval tv = {10, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	char *msg = xasprintf("{\"execute\":\"qmp_capabilities\"}\n%s\n", req);
	if (write(fd, msg, strlen(msg)) < 0)
		out[0] = '\0';
	free(msg);
	/* greeting, capabilities reply, then ours (events are skipped) */
	char buf[65536];
	size_t n = 0;
	int lines = 0;
	while (n < sizeof buf - 1) {
		ssize_t rd = read(fd, buf + n, 1);
		if (rd <= 0)
			break;
		if (buf[n] == '\n') {
			buf[n] = '\0';
			char *start = strrchr(buf, '\n');
			start = start ? start + 1 : buf;
			if (!strstr(start, "\"event\"") && ++lines == 3) {
				snprintf(out, len, "%s", start);
				break;
			}
			buf[n] = '\n';
		}
		n++;
	}
	close(fd);
}

#endif
