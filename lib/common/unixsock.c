/* SPDX-License-Identifier: Apache-2.0
 * unix_listen (unixsock.h).
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/unixsock.h"

int unix_listen(const char *path, const char *what, silo_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, ENAMETOOLONG, "%s: socket path too long: %s", what, path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, errno, "%s: socket", what);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || chmod(path, 0600) < 0 || listen(fd, 16) < 0) {
		int e = errno;
		close(fd);
		unlink(path);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "%s: listen on %s", what, path);
	}
	return fd;
}
