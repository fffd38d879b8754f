/* SPDX-License-Identifier: Apache-2.0
 * The contents of a namespace sandbox's /tmp, /run and /dev/shm in its
 * snapshots (docs/snapshots.md): each is a tmpfs of the sandbox's own mount
 * namespace, kept as payload/tmpfs/{tmp,run,dev-shm}.tar (lib/archive
 * streams, so the snapshot manifest checksums them like the layer; an empty
 * one has no archive).
 *
 * How a tmpfs is reached: a forked child joins the sandbox's mount namespace
 * (silod is multi-threaded: setns(CLONE_NEWNS) needs a single-threaded
 * caller), opens the mount point with no symlink followed, makes a detached
 * clone of that one mount (not its submounts: a spec mount below /tmp is not
 * the sandbox's to keep; it is archived as an empty directory), id-mapped by
 * a user namespace that maps the sandbox's host ids U+k back to k, and sends
 * the mount's fd back over a socketpair. The child uses syscalls only (no
 * malloc, no stdio: another thread may have held their locks at fork). The
 * parent then works on that fd in its own namespace: it is never the
 * sandbox's path, so the sandbox cannot redirect it, and every file is seen
 * with the ids the sandbox saw, which is what the tar records. A restore
 * does the same in the new sandbox (mapped to ITS range) and extracts with
 * owners: id k lands as the new sandbox's U'+k.
 *
 * Only mounts that are tmpfs are kept: a spec mount that replaces /tmp with a
 * host directory is the host's, and is left alone. The three archives
 * together are bounded by snap_max_bytes(); past it the snapshot fails with
 * RESOURCE_EXCEEDED (nothing is cut short silently). The extractor
 * (lib/archive) refuses traversal, never writes through a symlink and keeps
 * symlinks as links.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "archive/archive.h"
#include "common/util.h"
#include "providers/ns.h"
#include "snapshot/snapshot.h"

static const struct {
	const char *path;   /* in the sandbox, relative to its root */
	const char *file;   /* in payload/tmpfs */
} kept[NS_TMPFS_KEPT] = {{"tmp", "tmp.tar"}, {"run", "run.tar"}, {"dev/shm", "dev-shm.tar"}};

/* What the child sends per mount: 0 with the fd, NOT_TMPFS, or an errno. */
#define NOT_TMPFS (-1)

__attribute__((noreturn)) static void view_child(int mntns, int userns, int sock, bool rdonly)
{
	if (setns(mntns, CLONE_NEWNS) < 0)
		_exit(1);
	for (size_t i = 0; i < NS_TMPFS_KEPT; i++) {
		int status = 0, m = -1;
		struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
				       .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
		int d = (int)syscall(SYS_openat2, AT_FDCWD, kept[i].path, &how, sizeof how);
		struct statfs sf;
		if (d < 0)
			status = errno;
		else if (fstatfs(d, &sf) < 0)
			status = errno;
		else if (sf.f_type != TMPFS_MAGIC)
			status = NOT_TMPFS;
		/* the mount point itself (not a directory under it) */
		if (status == 0 && (m = open_tree(d, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH)) < 0)
			status = errno;
		if (status == 0) {
			struct mount_attr a = {.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
							   MOUNT_ATTR_NOEXEC | (rdonly ? MOUNT_ATTR_RDONLY : 0),
					       .userns_fd = (uint64_t)userns};
			if (mount_setattr(m, "", AT_EMPTY_PATH, &a, sizeof a) < 0)
				status = errno;
		}
		if (send_all_with_fds(sock, &status, sizeof status, &m, status == 0) < 0)
			_exit(1);
		if (m >= 0)
			close(m);
		if (d >= 0)
			close(d);
	}
	_exit(0);
}

/* views[i]: an id-mapped detached mount of kept[i] in init's mount namespace,
 * -1 where that is not a tmpfs (or not there). */
static int tmpfs_views(pid_t init, uint32_t uid, uint32_t gid, bool rdonly, int views[NS_TMPFS_KEPT],
		       silo_error *err)
{
	for (size_t i = 0; i < NS_TMPFS_KEPT; i++)
		views[i] = -1;
	char p[64];
	snprintf(p, sizeof p, "/proc/%d/ns/mnt", (int)init);
	cleanup_close int mntns = open(p, O_RDONLY | O_CLOEXEC);
	if (mntns < 0)
		return silo_fail(err, SILO_ERR_VM_NOT_FOUND, errno, "namespace: the sandbox's mount namespace");
	int userns = ns_userns_fd(uid, 0, gid, 0, NS_IDS_SIZE, NULL);
	if (userns < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "namespace: user namespace for the tmpfs view");
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		int e = errno;
		close(userns);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "namespace: socketpair");
	}
	pid_t pid = fork();
	if (pid == 0) {
		close(sv[0]);
		view_child(mntns, userns, sv[1], rdonly);
	}
	int fork_errno = errno;
	close(sv[1]);
	close(userns);
	if (pid < 0) {
		close(sv[0]);
		return silo_fail(err, SILO_ERR_IO_ERROR, fork_errno, "namespace: fork");
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	int rc = 0;
	for (size_t i = 0; i < NS_TMPFS_KEPT && rc == 0; i++) {
		int status = 0;
		char cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = {.iov_base = &status, .iov_len = sizeof status};
		struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
		ssize_t n = recvmsg(sv[0], &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL;
		if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&views[i], CMSG_DATA(c), sizeof(int));
		if (n != (ssize_t)sizeof status || (status == 0) != (views[i] >= 0))
			rc = silo_fail(err, SILO_ERR_IO_ERROR, 0,
				       "namespace: could not enter the sandbox's mount namespace (helper %s %d)",
				       WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		else if (status > 0)
			rc = silo_fail(err, SILO_ERR_IO_ERROR, status, "namespace: id-mapped view of the sandbox's /%s",
				       kept[i].path);
	}
	close(sv[0]);
	if (rc < 0)
		for (size_t i = 0; i < NS_TMPFS_KEPT; i++)
			if (views[i] >= 0)
				close(views[i]), views[i] = -1;
	return rc;
}

static void close_views(int views[NS_TMPFS_KEPT])
{
	for (size_t i = 0; i < NS_TMPFS_KEPT; i++)
		if (views[i] >= 0)
			close(views[i]);
}

/* Does the directory at fd hold anything? (an empty tmpfs is not archived) */
static int dir_empty(int fd, bool *empty, silo_error *err)
{
	int d = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = d >= 0 ? fdopendir(d) : NULL;
	if (!dir) {
		int e = errno;
		if (d >= 0)
			close(d);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "open");
	}
	*empty = true;
	struct dirent *de;
	while (*empty && (de = readdir(dir)))
		*empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
	closedir(dir);
	return 0;
}

typedef struct tar_out {
	int fd;
	uint64_t *bytes, max;
} tar_out;

static int out_fn(void *ud, const void *buf, size_t n, silo_error *err)
{
	tar_out *o = ud;
	*o->bytes += n;
	if (*o->bytes > o->max)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, EFBIG,
				 "/tmp, /run and /dev/shm together are larger than the snapshot limit of %llu MiB "
				 "($SILO_SNAPSHOT_MAX_MB)",
				 (unsigned long long)(o->max >> 20));
	if (write_all(o->fd, buf, n) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "write");
	return 0;
}

int ns_tmpfs_save(pid_t init, uint32_t uid, uint32_t gid, const char *dir, silo_error *err)
{
	int views[NS_TMPFS_KEPT];
	if (tmpfs_views(init, uid, gid, true, views, err) < 0)
		return -1;
	char d[PATH_MAX];
	snprintf(d, sizeof d, "%s/tmpfs", dir);
	int rc = 0;
	if (mkdir(d, 0700) < 0)
		rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", d);
	uint64_t bytes = 0;
	for (size_t i = 0; i < NS_TMPFS_KEPT && rc == 0; i++) {
		bool empty = false;
		if (views[i] < 0 || (rc = dir_empty(views[i], &empty, err)) < 0 || empty) {
			if (rc < 0)
				silo_error_prefix(err, "namespace: snapshot of /%s", kept[i].path);
			continue;
		}
		char f[PATH_MAX + 32];
		snprintf(f, sizeof f, "%s/%s", d, kept[i].file);
		tar_out o = {.fd = open(f, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600),
			     .bytes = &bytes,
			     .max = snap_max_bytes()};
		if (o.fd < 0) {
			rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "create %s", f);
			break;
		}
		/* the top entry is the mount's root itself, named after it */
		archive_wopts wo = {.name = strrchr(kept[i].path, '/') ? strrchr(kept[i].path, '/') + 1 : kept[i].path};
		rc = archive_write(views[i], ".", &wo, out_fn, &o, NULL, err);
		if (rc == 0 && fsync(o.fd) < 0)
			rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "fsync %s", f);
		close(o.fd);
		if (rc < 0)
			silo_error_prefix(err, "namespace: snapshot of /%s", kept[i].path);
	}
	close_views(views);
	return rc;
}

static ssize_t read_fn(void *ud, void *buf, size_t n, silo_error *err)
{
	ssize_t r;
	while ((r = read(*(int *)ud, buf, n)) < 0 && errno == EINTR)
		;
	if (r < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "read");
	return r;
}

int ns_tmpfs_load(pid_t init, uint32_t uid, uint32_t gid, const char *dir, silo_error *err)
{
	char d[PATH_MAX];
	snprintf(d, sizeof d, "%s/tmpfs", dir);
	struct stat st;
	if (lstat(d, &st) < 0 && errno == ENOENT)
		return 0;   /* a snapshot from before tmpfs contents were kept */
	int views[NS_TMPFS_KEPT];
	if (tmpfs_views(init, uid, gid, false, views, err) < 0)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < NS_TMPFS_KEPT && rc == 0; i++) {
		char f[PATH_MAX + 32];
		snprintf(f, sizeof f, "%s/%s", d, kept[i].file);
		int fd = open(f, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT)
			continue;
		if (fd < 0) {
			rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s", f);
			break;
		}
		if (views[i] < 0) {
			/* saved from a tmpfs, but this sandbox mounts something else there */
			close(fd);
			log_warn("namespace: /%s is not a tmpfs in the restored sandbox: its saved contents are not "
				 "restored", kept[i].path);
			continue;
		}
		tar_reader *r = tar_reader_new(read_fn, &fd);
		archive_xopts xo = {.single_root = true, .rename_root = "", .owners = true, .keep_setid = true,
				    .max_bytes = snap_max_bytes()};
		rc = archive_extract(r, views[i], &xo, NULL, err);
		tar_reader_free(r);
		close(fd);
		if (rc < 0)
			silo_error_prefix(err, "namespace: restore of /%s", kept[i].path);
	}
	close_views(views);
	return rc;
}
