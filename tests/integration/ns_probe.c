/* SPDX-License-Identifier: Apache-2.0
 * ns-probe: a static helper that tests/integration/test_ns_escape.sh runs
 * INSIDE namespace sandboxes (the busybox base layer has no compiler, no
 * python) to perform attack steps a shell cannot. Prints "ok" or the errno
 * name (EPERM, EAFNOSUPPORT ...) and exits 0 on success, 1 on failure.
 *
 *   ns-probe socket FAMILY TYPE PROTOCOL  socket(2) with numeric arguments
 *   ns-probe getfd PID FD                 pidfd_open + pidfd_getfd; on success
 *                                         also prints getsockname's path
 *   ns-probe fill PATH                    write 1 MiB blocks to PATH until an
 *                                         error; prints "ENOSPC <bytes written>"
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

static int result(int rc)
{
	if (rc < 0) {
		const char *n = strerrorname_np(errno);
		printf("%s\n", n ? n : "error");
		return 1;
	}
	printf("ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "socket")) {
		int fd = socket(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
		return result(fd);
	}
	if (argc == 4 && !strcmp(argv[1], "getfd")) {
		int pfd = (int)syscall(SYS_pidfd_open, atoi(argv[2]), 0);
		if (pfd < 0)
			return result(-1);
		int fd = (int)syscall(SYS_pidfd_getfd, pfd, atoi(argv[3]), 0);
		if (fd < 0)
			return result(-1);
		struct sockaddr_un sa;
		socklen_t l = sizeof sa;
		memset(&sa, 0, sizeof sa);
		if (getsockname(fd, (struct sockaddr *)&sa, &l) == 0)
			printf("sockname %s\n", sa.sun_path);
		return result(0);
	}
	if (argc == 3 && !strcmp(argv[1], "fill")) {
		int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			return result(-1);
		static char buf[1 << 20];
		memset(buf, 'x', sizeof buf);
		long long total = 0;
		for (;;) {
			ssize_t w = write(fd, buf, sizeof buf);
			if (w < 0)
				break;
			total += w;
		}
		int e = errno;
		if (fsync(fd) < 0 && e == 0)
			e = errno;
		const char *n = strerrorname_np(e);
		printf("%s %lld\n", n ? n : "error", total);
		return e == ENOSPC ? 0 : 1;
	}
	fprintf(stderr, "usage: ns-probe socket FAMILY TYPE PROTO | getfd PID FD | fill PATH\n");
	return 2;
}
