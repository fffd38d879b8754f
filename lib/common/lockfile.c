/* SPDX-License-Identifier: Apache-2.0
 * Lock files (lockfile.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include "common/lockfile.h"

int flock_wait(int fd, int op)
{
	int rc;
	while ((rc = flock(fd, op)) < 0 && errno == EINTR)
		;
	return rc;
}

int lockfile_open(const char *path, int op, silo_error *err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s", path);
	if (flock_wait(fd, op) < 0) {
		int e = errno;
		close(fd);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "lock %s", path);
	}
	return fd;
}
