/* SPDX-License-Identifier: Apache-2.0
 * The size-limited writable layer of a namespace sandbox ([sandbox] disk_mb).
 *
 * Each sandbox gets its own ext4 filesystem of exactly disk_mb MiB on a loop
 * device; overlayfs puts its upper and work directories there, so writes
 * (processes and file-API uploads alike) end in ENOSPC at the limit and the
 * host never holds more than disk_mb MiB for it.
 *
 *   template   $SILO_CACHE_DIR/ns-disk/ext4-<MB>m.img: mkfs.ext4 once per size
 *              (no journal, no reserved blocks, lazy inode tables), built in a
 *              temporary file and renamed into place; about 150 KiB of data.
 *   disk       an unnamed, empty sparse file (O_TMPFILE) of disk_mb MiB in the
 *              same directory, attached to a loop device, and the template's
 *              data extents written through the device (holes stay holes).
 *              Attaching an empty file costs no flush, and data written
 *              through the device waits in the page cache: a short-lived
 *              sandbox's disk is freed before the host filesystem allocates
 *              (or, mounted with discard, discards) any block of it.
 *   loop       LOOP_CONFIGURE with AUTOCLEAR, buffered: the sandbox mounts it
 *              with nobarrier (the layer dies with the sandbox and the file
 *              with the host: nothing needs to reach the disk in order), so
 *              its fsync and unmount never wait for the host disk (direct I/O
 *              or flushes cost 10-20 ms per sandbox exit here). The loop
 *              driver charges the backing file's pages to the sandbox's
 *              memory cgroup; short-lived sandboxes free them unwritten.
 *
 * Lifetime: the file has no name, so only the loop device holds it; the loop
 * device is held by our fd and by a detached mount of its filesystem
 * (ns_disk_mount: attached to no path, made in the parent while the init is
 * being cloned) until the init has put it under its overlay, and then only by
 * that overlay, which exists in the sandbox's mount namespace alone. When the
 * sandbox's last process exits, the kernel unmounts, AUTOCLEAR detaches the
 * loop device and the file's blocks are freed: nothing is left on the host
 * after kill -9 of anything, with no cleanup code involved. Terminate waits
 * for the detach and cleanup verification reports a loop device that stays.
 *
 * The host reads the layer only for snapshots, through a detached read-only
 * mount of the same superblock (ns_disk_view), never attached to any path.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/lockfile.h"
#include "common/util.h"
#include "providers/ns.h"

extern char **environ;

#define LOOP_TRIES 32

static const char *mkfs_path(void)
{
	static const char *const cand[] = {"/sbin/mkfs.ext4", "/usr/sbin/mkfs.ext4", "/bin/mkfs.ext4",
					   "/usr/bin/mkfs.ext4"};
	for (size_t i = 0; i < ARRAY_SIZE(cand); i++)
		if (access(cand[i], X_OK) == 0)
			return cand[i];
	return NULL;
}

bool ns_disk_probe(char *why, size_t len)
{
	if (!mkfs_path()) {
		snprintf(why, len, "mkfs.ext4 not found (apt-get install e2fsprogs): needed for the disk_mb limit");
		return false;
	}
	if (access("/dev/loop-control", R_OK | W_OK) < 0) {
		snprintf(why, len, "/dev/loop-control: %s (modprobe loop): needed for the disk_mb limit",
			 strerror(errno));
		return false;
	}
	return true;
}

/* Run mkfs.ext4 on path (a regular file of the final size). */
static int run_mkfs(const char *path, silo_error *err)
{
	const char *mkfs = mkfs_path();
	if (!mkfs)
		return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, ENOENT, "namespace: mkfs.ext4 (e2fsprogs)");
	/* no journal (the layer dies with the sandbox), no reserved blocks (the
	 * whole disk_mb is the sandbox's), lazy inode tables (kept uninitialized
	 * by mounting with noinit_itable: no background zeroing on the host) */
	char *const argv[] = {(char *)mkfs, "-q", "-F", "-b", "4096", "-m", "0", "-O", "^has_journal,^resize_inode",
			      "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard", "-L", "silo-ns", (char *)path,
			      NULL};
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	int rc = posix_spawn(&pid, mkfs, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, rc, "namespace: run %s", mkfs);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "namespace: wait for %s", mkfs);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, 0, "namespace: %s %s failed (status %d)", mkfs, path,
				 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	return 0;
}

/* Ensure the template for mb exists; its path into out. */
static int template_path(uint32_t mb, char *dir, size_t dlen, char *out, size_t len, silo_error *err)
{
	snprintf(dir, dlen, "%s/ns-disk", silo_cache_dir());
	snprintf(out, len, "%s/ext4-%um.img", dir, mb);
	if (path_exists(out))
		return 0;
	if (mkdir_p(dir, 0700) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "namespace: mkdir %s", dir);
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s/.tmp-XXXXXX", dir);
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "namespace: create a template in %s", dir);
	int rc = ftruncate(fd, (off_t)mb << 20);
	int e = errno;
	close(fd);
	if (rc < 0) {
		unlink(tmp);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "namespace: size %s to %u MiB", tmp, mb);
	}
	if (run_mkfs(tmp, err) < 0) {
		unlink(tmp);
		return -1;
	}
	if (rename(tmp, out) < 0) {
		e = errno;
		unlink(tmp);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "namespace: install %s", out);
	}
	return 0;
}

/* Write the data extents of the template in to the block device dev at the
 * same offsets (the rest of a fresh disk reads as zeros: a hole). */
static int copy_extents(int in, int dev, off_t size)
{
	/* on the heap: as thread-local storage it cost every thread of the process 64 KiB
	 * of resident memory (TLS is zeroed at thread start), two threads per live sandbox */
	enum { BUF = 1 << 16 };
	cleanup_free char *buf = xmalloc(BUF);
	off_t at = 0;
	while (at < size) {
		off_t d = lseek(in, at, SEEK_DATA);
		if (d < 0 && errno == ENXIO)
			break;   /* only a hole remains */
		if (d < 0)
			return -1;
		off_t h = lseek(in, d, SEEK_HOLE);
		if (h < 0)
			return -1;
		for (off_t o = d; o < h;) {
			ssize_t n = pread(in, buf, (size_t)MIN((off_t)BUF, h - o), o);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return n == 0 ? (errno = EIO, -1) : -1;
			if (pwrite(dev, buf, (size_t)n, o) != n)
				return -1;
			o += n;
		}
		at = h;
	}
	return 0;
}

/* An unnamed, empty (sparse) file of size bytes in dir (fd). */
static int disk_file(const char *dir, off_t size, silo_error *err)
{
	int out = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (out < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		/* no O_TMPFILE here: a named file, unlinked at once */
		char tmp[PATH_MAX];
		snprintf(tmp, sizeof tmp, "%s/.disk-XXXXXX", dir);
		out = mkostemp(tmp, O_CLOEXEC);
		if (out >= 0)
			unlink(tmp);
	}
	if (out < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "namespace: create a disk file in %s", dir);
	if (ftruncate(out, size) < 0) {
		int e = errno;
		close(out);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "namespace: size a disk file in %s", dir);
	}
	return out;
}

static int loop_attach(int file, ns_disk *d, silo_error *err)
{
	cleanup_close int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, errno, "namespace: /dev/loop-control");
	/* LOOP_CTL_GET_FREE hands every concurrent caller the same lowest free device and
	 * all but one lose LOOP_CONFIGURE to it: with 100 creates at once some lost 32 times
	 * in a row. Attachers in silo take turns host-wide on an flock of the control
	 * device (held for GET_FREE + CONFIGURE, under a millisecond); EBUSY is then left
	 * to other tools and devices still detaching. */
	flock_wait(ctl, LOCK_EX);
	for (int tries = 0; tries < LOOP_TRIES; tries++) {
		int nr = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (nr < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "namespace: no free loop device");
		char p[32];
		snprintf(p, sizeof p, "/dev/loop%d", nr);
		int fd = open(p, O_RDWR | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT)
			continue;   /* the node appears a moment after LOOP_CTL_GET_FREE on some hosts */
		if (fd < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "namespace: open %s", p);
		struct loop_config c;
		memset(&c, 0, sizeof c);
		c.fd = (unsigned)file;
		c.block_size = 4096;
		c.info.lo_flags = LO_FLAGS_AUTOCLEAR;
		/* the sandbox's name on the device: inode numbers of freed files are
		 * reused, so it is what tells our device from a later one */
		memcpy(c.info.lo_file_name, d->name, sizeof d->name);
		if (ioctl(fd, LOOP_CONFIGURE, &c) == 0) {
			struct loop_info64 li;
			if (ioctl(fd, LOOP_GET_STATUS64, &li) < 0) {
				int e = errno;
				close(fd);   /* AUTOCLEAR: detaches */
				return silo_fail(err, SILO_ERR_IO_ERROR, e, "namespace: LOOP_GET_STATUS64 %s", p);
			}
			d->loop_fd = fd;
			d->nr = nr;
			d->dev = li.lo_device;
			d->ino = li.lo_inode;
			return 0;
		}
		int e = errno;
		close(fd);
		if (e == EBUSY)
			continue;   /* taken by a concurrent attacher: ask for another */
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "namespace: LOOP_CONFIGURE %s", p);
	}
	return silo_fail(err, SILO_ERR_IO_ERROR, EBUSY, "namespace: no loop device could be attached after %d tries",
			 LOOP_TRIES);
}

void ns_disk_init(ns_disk *d, const char *sbid)
{
	memset(d, 0, sizeof *d);
	d->loop_fd = -1;
	d->nr = -1;
	snprintf(d->name, sizeof d->name, "silo-ns:%s", sbid);
}

int ns_disk_create(uint32_t mb, ns_disk *d, silo_error *err)
{
	char dir[PATH_MAX], tpl[PATH_MAX + 32];
	if (template_path(mb, dir, sizeof dir, tpl, sizeof tpl, err) < 0)
		return -1;
	cleanup_close int in = open(tpl, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "namespace: open %s", tpl);
	cleanup_close int file = disk_file(dir, (off_t)mb << 20, err);
	if (file < 0 || loop_attach(file, d, err) < 0)
		return -1;
	/* The filesystem goes in through the loop device, after the attach: the
	 * attach then has no dirty data to flush, and the blocks stay in the page
	 * cache (delayed allocation) - a sandbox that ends soon frees its disk
	 * without the host filesystem allocating, or discarding, anything. */
	if (copy_extents(in, d->loop_fd, (off_t)mb << 20) < 0) {
		int e = errno;
		ns_disk_close(d);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "namespace: write %s to /dev/loop%d", tpl, d->nr);
	}
	return 0;
}

int ns_disk_mount(const ns_disk *d, uint32_t uid, uint32_t gid, silo_error *err)
{
	char p[32];
	ns_disk_devpath(d, p, sizeof p);
	cleanup_close int fs = fsopen("ext4", FSOPEN_CLOEXEC);
	if (fs < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "namespace: fsopen ext4");
	/* noinit_itable: no background zeroing of the lazy inode tables on the host;
	 * nobarrier: nothing of the layer needs to reach the disk in order */
	if (fsconfig(fs, FSCONFIG_SET_STRING, "source", p, 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_FLAG, "noinit_itable", NULL, 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_FLAG, "nobarrier", NULL, 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_FLAG, "discard", NULL, 0) < 0 ||
	    fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "namespace: open the filesystem on %s", p);
	int m = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
	if (m < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "namespace: mount %s", p);
	if (mkdirat(m, "upper", 0755) < 0 || fchownat(m, "upper", uid, gid, 0) < 0 || mkdirat(m, "work", 0700) < 0) {
		int e = errno;
		close(m);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "namespace: make the upper and work directories on %s", p);
	}
	return m;
}

void ns_disk_close(ns_disk *d)
{
	if (d->loop_fd >= 0)
		close(d->loop_fd);
	d->loop_fd = -1;
}

void ns_disk_devpath(const ns_disk *d, char *out, size_t len)
{
	snprintf(out, len, "/dev/loop%d", d->nr);
}

bool ns_disk_attached(const ns_disk *d)
{
	if (d->nr < 0 || !d->ino)
		return false;
	char p[32];
	ns_disk_devpath(d, p, sizeof p);
	/* O_PATH would not do for the ioctl; opening the device does not
	 * change its AUTOCLEAR count in a way that matters (we close at once) */
	int fd = open(p, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return false;
	struct loop_info64 li;
	bool ours = ioctl(fd, LOOP_GET_STATUS64, &li) == 0 && li.lo_device == d->dev && li.lo_inode == d->ino &&
		    !strncmp((const char *)li.lo_file_name, d->name, sizeof d->name);
	close(fd);
	return ours;
}

int ns_disk_find(const char *sbid)
{
	ns_disk want;
	ns_disk_init(&want, sbid);
	/* /sys/block lists every block device; loop devices are loopN */
	DIR *d = opendir("/sys/block");
	if (!d)
		return -1;
	int found = -1;
	struct dirent *de;
	while (found < 0 && (de = readdir(d))) {
		int nr;
		char tail;
		if (sscanf(de->d_name, "loop%d%c", &nr, &tail) != 1 || nr < 0)
			continue;
		char p[64];
		snprintf(p, sizeof p, "/dev/loop%d", nr);
		int fd = open(p, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			continue;
		struct loop_info64 li;
		if (ioctl(fd, LOOP_GET_STATUS64, &li) == 0 && !strncmp((const char *)li.lo_file_name, want.name, sizeof want.name))
			found = nr;
		close(fd);
	}
	closedir(d);
	return found;
}

int ns_disk_view(const ns_disk *d, int userns_fd, silo_error *err)
{
	char p[32];
	ns_disk_devpath(d, p, sizeof p);
	if (!ns_disk_attached(d))
		return silo_fail(err, SILO_ERR_VM_NOT_FOUND, ENXIO, "namespace: %s no longer holds the sandbox's disk",
				 p);
	cleanup_close int fs = fsopen("ext4", FSOPEN_CLOEXEC);
	if (fs < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "namespace: fsopen ext4");
	if (fsconfig(fs, FSCONFIG_SET_STRING, "source", p, 0) < 0 ||
	    fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "namespace: open the filesystem on %s", p);
	int m = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
	if (m < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "namespace: mount %s", p);
	struct mount_attr a = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t)userns_fd};
	if (mount_setattr(m, "", AT_EMPTY_PATH, &a, sizeof a) < 0) {
		int e = errno;
		close(m);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "namespace: id-mapped view of %s", p);
	}
	return m;
}
