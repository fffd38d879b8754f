/* SPDX-License-Identifier: Apache-2.0
 * Host files of silo-vmm: opened before the jail, found again by path after it (files.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "files.h"

typedef struct entry {
	char path[4096];
	char jail_path[108]; /* a listener's name inside the jail root */
	int fd;
	bool writable, listener;
} entry;

static entry table[VMM_FILES_MAX];
static int nentries;
static char jail_dir[4096];
static int kvm_fd = -1;

static entry *find(const char *path)
{
	for (int i = 0; i < nentries; i++)
		if (!strcmp(table[i].path, path))
			return &table[i];
	return NULL;
}

static int add(const char *path, int fd, bool writable, bool listener, silo_error *err)
{
	if (nentries == VMM_FILES_MAX || strlen(path) >= sizeof table[0].path) {
		close(fd);
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0, "%s: more than %d files or too long a path", path,
				 VMM_FILES_MAX);
	}
	entry *e = &table[nentries++];
	snprintf(e->path, sizeof e->path, "%s", path);
	e->fd = fd;
	e->writable = writable;
	e->listener = listener;
	return 0;
}

int vmm_files_preopen(const char *path, bool writable, silo_error *err)
{
	entry *e = find(path);
	if (e && (e->writable || !writable) && !e->listener)
		return 0; /* the same file named twice (two drives on one image) */
	if (e)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: named both read-only and writable", path);
	int fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, errno, "%s", path);
	return add(path, fd, writable, false, err);
}

static int bind_listen(const char *path, silo_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "socket %s: longer than %zu bytes", path,
				 sizeof sa.sun_path - 1);
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, errno, "socket %s", path);
	mode_t old = umask(0177);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (r < 0 || listen(fd, 16) < 0) {
		int e = errno;
		close(fd);
		if (r == 0)
			unlink(path);
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, e, "listen on %s", path);
	}
	return fd;
}

/* Where host path p is seen from inside the jail root ("/x" for DIR/x), or p itself. The
 * socket need not exist yet: its directory is resolved. */
static void in_jail(const char *p, char *buf, size_t len)
{
	size_t n = strlen(jail_dir);
	char real[4096], dir[4096];
	snprintf(buf, len, "%s", p);
	snprintf(real, sizeof real, "%s", p);
	char *slash = strrchr(real, '/');
	if (!n || !slash || slash == real)
		return;
	*slash = '\0';
	if (!realpath(real, dir))
		return;
	snprintf(real, sizeof real, "%s/%s", dir, slash + 1);
	if (!strncmp(real, jail_dir, n) && real[n] == '/')
		snprintf(buf, len, "%s", real + n);
}

int vmm_files_prebind(const char *path, silo_error *err)
{
	if (find(path))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, EEXIST, "socket %s: named twice", path);
	int fd = bind_listen(path, err);
	if (fd < 0 || add(path, fd, true, true, err) < 0)
		return -1;
	in_jail(path, table[nentries - 1].jail_path, sizeof table[0].jail_path);
	return 0;
}

void vmm_files_set_jail(const char *dir)
{
	char real[4096];
	snprintf(jail_dir, sizeof jail_dir, "%s", realpath(dir, real) ? real : dir);
	size_t n = strlen(jail_dir);
	while (n > 1 && jail_dir[n - 1] == '/')
		jail_dir[--n] = '\0';
}

const char *vmm_files_jail_path(const char *p)
{
	entry *e = find(p);
	return e && e->listener ? e->jail_path : p;
}

int vmm_open(const char *path, bool writable, const char *what, silo_error *err)
{
	entry *e = find(path);
	if (e && !e->listener) {
		if (writable && !e->writable)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, EACCES, "%s %s: opened read-only at start", what, path);
		int fd = fcntl(e->fd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, errno, "%s %s", what, path);
		return fd;
	}
	int fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, errno, "%s %s%s", what, path,
				 jail_dir[0] ? " (inside the jail root: only files given on the command line or placed in "
					       "the jail directory can be opened)"
					     : "");
	return fd;
}

int vmm_listen(const char *path, bool *bound_here, silo_error *err)
{
	entry *e = find(path);
	*bound_here = false;
	if (e && e->listener) {
		int fd = fcntl(e->fd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, errno, "socket %s", path);
		return fd;
	}
	int fd = bind_listen(path, err);
	*bound_here = fd >= 0;
	return fd;
}

int vmm_map(const char *path, size_t max, const char *what, const uint8_t **p, size_t *len, silo_error *err)
{
	*p = NULL;
	*len = 0;
	int fd = vmm_open(path, false, what, err);
	if (fd < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t)st.st_size > max) {
		int e = errno;
		close(fd);
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, e, "%s %s: not a regular file of 1 to %zu bytes", what, path,
				 max);
	}
	void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	int e = errno;
	close(fd);
	if (m == MAP_FAILED)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, e, "%s %s: mmap", what, path);
	*p = m;
	*len = (size_t)st.st_size;
	return 0;
}

void vmm_unmap(const uint8_t *p, size_t len)
{
	if (p)
		munmap((void *)p, len);
}

int vmm_kvm_fd(silo_error *err)
{
	if (kvm_fd < 0) {
		kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
		if (kvm_fd < 0)
			return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, errno, "open /dev/kvm");
	}
	return kvm_fd;
}
