/* SPDX-License-Identifier: Apache-2.0
 * Lock files (lockfile.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/lockfile.h"
#include "common/util.h"

int flock_wait(int fd, int op)
{
	int rc;
	while ((rc = flock(fd, op)) < 0 && errno == EINTR)
		;
	return rc;
}

static int lock_open(const char *path, mode_t mode, int op, silo_error *err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s", path);
	if (flock_wait(fd, op) < 0) {
		int e = errno;
		close(fd);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "lock %s", path);
	}
	return fd;
}

int lockfile_open(const char *path, int op, silo_error *err)
{
	return lock_open(path, 0600, op, err);
}

int lock_file_in(const char *dir, mode_t dmode, const char *name, mode_t fmode, silo_error *err)
{
	if (mkdir_p(dir, dmode) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", dir);
	char path[PATH_MAX + 64];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return lock_open(path, fmode, LOCK_EX, err);
}
