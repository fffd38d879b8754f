/* SPDX-License-Identifier: Apache-2.0
 * VM providers: a bundle's root file system as an ext4 root disk (booted by the
 * loader initramfs, read-only under the VM's writable layer, as an imported
 * image is), cached by content in $CACHE/oci/bundles/<key>.ext4.
 *
 * key: SHA-256 over every entry of the tree (sorted paths; type, mode, owner,
 * size, mtime in ns, symlink target, device number), not over file contents:
 * hashing a 100 MiB image on every container start would cost more than
 * building its disk. Two bundles of the same image (podman mounts a fresh
 * overlay for each container) give the same key; a file changed in place with
 * its size and mtime kept would not change it (a cache, not an integrity check:
 * what the engine hands us it vouches for). The 8 most recently used disks are
 * kept. The walk never follows symlinks, stays on the root's file system and
 * is bounded (RT_ROOTFS_MAX_ENTRIES).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "oci/oci.h"
#include "oci/store.h"
#include "runtime/rt.h"

#define RT_ROOTFS_MAX_ENTRIES 1000000
#define RT_ROOTFS_KEEP 8

typedef struct walk {
	crypto_hash_sha256_state h;
	size_t entries;
	dev_t dev;
} walk;

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk_dir(walk *w, int dfd, const char *rel, int depth, silo_error *err)
{
	if (depth > 256)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "root %s: deeper than 256 levels", rel);
	int dup = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
	DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
	if (!d) {
		if (dup >= 0)
			close(dup);
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "opendir %s", rel);
	}
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		names = xrealloc(names, (n + 1) * sizeof *names);
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof *names, cmp_str);
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (++w->entries > RT_ROOTFS_MAX_ENTRIES) {
			rc = silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0, "root file system: more than %d entries",
				       RT_ROOTFS_MAX_ENTRIES);
			break;
		}
		struct stat st;
		if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "stat %s/%s", rel, names[i]);
			break;
		}
		char target[PATH_MAX] = "";
		if (S_ISLNK(st.st_mode)) {
			ssize_t l = readlinkat(dfd, names[i], target, sizeof target - 1);
			target[l > 0 ? l : 0] = '\0';
		}
		char line[PATH_MAX * 3];
		int len = snprintf(line, sizeof line, "%s/%s%c%o %u %u %lld %lld.%09ld %llu %s\n", rel, names[i], 0,
				   (unsigned)st.st_mode, (unsigned)st.st_uid, (unsigned)st.st_gid, (long long)st.st_size,
				   (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, (unsigned long long)st.st_rdev, target);
		crypto_hash_sha256_update(&w->h, (const unsigned char *)line, (unsigned long long)MIN((size_t)len, sizeof line));
		if (S_ISDIR(st.st_mode) && st.st_dev == w->dev) {
			int sub = openat(dfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s/%s", rel, names[i]);
				break;
			}
			char r2[PATH_MAX];
			snprintf(r2, sizeof r2, "%s/%s", rel, names[i]);
			rc = walk_dir(w, sub, r2, depth + 1, err);
			close(sub);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

/* Remove all but the RT_ROOTFS_KEEP most recently used disks. */
static void evict(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct {
		char name[80];
		time_t t;
	} v[64];
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) && n < ARRAY_SIZE(v)) {
		size_t l = strlen(de->d_name);
		struct stat st;
		if (l < 6 || l >= sizeof v[0].name || strcmp(de->d_name + l - 5, ".ext4") ||
		    fstatat(dirfd(d), de->d_name, &st, 0) < 0)
			continue;
		snprintf(v[n].name, sizeof v[n].name, "%s", de->d_name);
		v[n++].t = st.st_mtime;
	}
	for (size_t k = RT_ROOTFS_KEEP; k < n; k++) {
		size_t oldest = 0;
		for (size_t i = 1; i < n; i++)
			if (v[i].t < v[oldest].t)
				oldest = i;
		unlinkat(dirfd(d), v[oldest].name, 0);
		v[oldest].t = (time_t)1 << 62;
	}
	closedir(d);
}

int rt_rootfs_ext4(const char *root, char *out, size_t len, silo_error *err)
{
	if (sodium_init() < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "libsodium");
	cleanup_close int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, errno, "root.path %s", root);
	walk w = {.dev = st.st_dev};
	crypto_hash_sha256_init(&w.h);
	if (walk_dir(&w, fd, "", 0, err) < 0)
		return -1;
	unsigned char d[32];
	crypto_hash_sha256_final(&w.h, d);
	char hex[65];
	sodium_bin2hex(hex, sizeof hex, d, sizeof d);
	char dir[PATH_MAX];
	oci_path(dir, sizeof dir, "bundles");
	if (oci_store_prepare(err) < 0 || (mkdir(dir, 0700) < 0 && errno != EEXIST))
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", dir);
	snprintf(out, len, "%s/%.32s.ext4", dir, hex);
	if (access(out, R_OK) == 0) {
		utimensat(AT_FDCWD, out, NULL, 0);   /* most recently used */
		return 0;
	}
	/* the store lock, shared: gc (exclusive) removes what is under tmp/ */
	cleanup_close int lk = oci_store_lock(false, err);
	if (lk < 0)
		return -1;
	char stage[PATH_MAX], tmp[PATH_MAX + 32];
	oci_path(stage, sizeof stage, "tmp/bundle-XXXXXX");
	if (!mkdtemp(stage))
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdtemp %s", stage);
	snprintf(tmp, sizeof tmp, "%s/rootfs.ext4", stage);
	char *const roots[] = {(char *)root, NULL};
	uint64_t size = 0;
	int rc = oci_build_ext4(roots, 1, true, stage, tmp, &size, err);
	if (rc == 0 && rename(tmp, out) < 0)
		rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "rename %s", out);
	rm_rf(stage);
	if (rc == 0)
		evict(dir);
	return rc < 0 ? (silo_error_prefix(err, "root file system %s as ext4", root), -1) : 0;
}

/* ---- an engine's overlay mount as its layers (namespace provider) ---- */

/* Undo mountinfo's octal escapes (\040 and the like) in place. */
static void unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r;) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)(((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
			r += 4;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

static void push_dir(char ***v, size_t *n, const char *d)
{
	*v = xrealloc(*v, (*n + 2) * sizeof **v);
	(*v)[(*n)++] = xstrdup(d);
	(*v)[*n] = NULL;
}

/* lowerdir=A:B (colons inside a path are escaped "\:") into v. */
static void split_lower(char *list, char ***v, size_t *n)
{
	char *start = list;
	for (char *p = list;; p++) {
		if (*p == '\\' && p[1] == ':') {
			memmove(p, p + 1, strlen(p));
			continue;
		}
		if (*p == ':' || *p == '\0') {
			bool end = *p == '\0';
			*p = '\0';
			if (*start)
				push_dir(v, n, start);
			if (end)
				break;
			start = p + 1;
		}
	}
}

int rt_overlay_layers(const char *root, char ***layers, silo_error *err)
{
	*layers = NULL;
	char rp[PATH_MAX];
	if (!realpath(root, rp))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, errno, "root.path %s", root);
	cleanup_free char *mi = NULL;
	size_t len = 0;
	if (read_file("/proc/self/mountinfo", 16u << 20, &mi, &len, err) < 0)
		return -1;
	char *found = NULL;   /* the last (topmost) mount at rp */
	for (char *save = NULL, *l = strtok_r(mi, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char mp[PATH_MAX];
		if (sscanf(l, "%*s %*s %*s %*s %4095s", mp) != 1)
			continue;
		unescape(mp);
		if (!strcmp(mp, rp))
			found = l;
	}
	const char *sep = found ? strstr(found, " - ") : NULL;
	char fstype[32] = "", opts[PATH_MAX * 8] = "";
	if (!sep || sscanf(sep + 3, "%31s %*s %32767s", fstype, opts) != 2 || strcmp(fstype, "overlay") != 0)
		return silo_fail(err, SILO_ERR_NOT_SUPPORTED, 0,
				 "root.path %s is on an overlay file system but not the root of an overlay mount", rp);
	char **v = NULL;
	size_t n = 0;
	char *upper = NULL;
	int rc = 0;
	for (char *save = NULL, *o = strtok_r(opts, ",", &save); o && rc == 0; o = strtok_r(NULL, ",", &save)) {
		unescape(o);
		if (!strncmp(o, "upperdir=", 9))
			upper = o + 9;
		else if (!strncmp(o, "lowerdir=", 9))
			split_lower(o + 9, &v, &n);
		else if (!strncmp(o, "lowerdir+=", 10))
			push_dir(&v, &n, o + 10);
		else if (!strncmp(o, "datadir+=", 9) || !strcmp(o, "metacopy=on") || !strcmp(o, "userxattr"))
			rc = silo_fail(err, SILO_ERR_NOT_SUPPORTED, 0,
				       "root.path %s: an overlay mount with \"%s\" (configure the engine's storage without it)", rp, o);
	}
	if (rc == 0 && !n)
		rc = silo_fail(err, SILO_ERR_NOT_SUPPORTED, 0, "root.path %s: an overlay mount without lower layers", rp);
	if (rc < 0) {
		strv_free(v);
		return -1;
	}
	/* topmost first: the container's own layer (writable for the engine), then the image's */
	char **out = NULL;
	size_t m = 0;
	if (upper)
		push_dir(&out, &m, upper);
	for (size_t i = 0; i < n; i++)
		push_dir(&out, &m, v[i]);
	strv_free(v);
	for (size_t i = 0; i < m; i++) {
		struct stat st;
		if (stat(out[i], &st) < 0 || !S_ISDIR(st.st_mode)) {
			rc = silo_fail(err, SILO_ERR_INVALID_CONFIG, errno ? errno : ENOTDIR, "root.path %s: layer %s", rp, out[i]);
			strv_free(out);
			return rc;
		}
	}
	*layers = out;
	return 0;
}
