/* SPDX-License-Identifier: Apache-2.0
 * Payload trees of snapshots: copying a sandbox's writable layer (hostile
 * content: never follow a symlink, never trust a name or a size) and
 * computing the manifest every entry is checked against on restore.
 *
 * Everything goes through *at() calls relative to directory fds opened with
 * O_NOFOLLOW, so a symlink planted in the source can never redirect a read
 * or a write outside the two trees. Paths in manifests are escaped so that
 * any byte string a guest can put in a file name is valid JSON: bytes
 * 0x21-0x7e except '%' stay, everything else becomes %XX.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/util.h"
#include "snapshot/snapshot.h"

#define OPAQUE_XATTR "trusted.overlay.opaque"

static char *escape_name(const char *prefix, const char *name)
{
	size_t pl = prefix ? strlen(prefix) : 0, nl = strlen(name);
	char *out = xmalloc(pl + 1 + 3 * nl + 1);
	size_t o = 0;
	if (pl) {
		memcpy(out, prefix, pl);
		o = pl;
		out[o++] = '/';
	}
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < nl; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c >= 0x21 && c <= 0x7e && c != '%') {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return out;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the directory dirfd (not "." or ".."); strv. */
static char **list_dir(int dirfd, size_t *count, silo_error *err, const char *what)
{
	int fd = dup(dirfd);
	if (fd < 0) {
		silo_fail(err, SILO_ERR_IO_ERROR, errno, "%s: dup", what);
		return NULL;
	}
	DIR *d = fdopendir(fd);
	if (!d) {
		silo_fail(err, SILO_ERR_IO_ERROR, errno, "%s: opendir", what);
		close(fd);
		return NULL;
	}
	rewinddir(d);
	size_t n = 0, cap = 16;
	char **v = xcalloc(cap, sizeof *v);
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n + 2 > cap) {
			cap *= 2;
			v = xrealloc(v, cap * sizeof *v);
		}
		v[n++] = xstrdup(de->d_name);
		v[n] = NULL;
		if (n > SNAP_MAX_ENTRIES)
			break;
	}
	closedir(d);
	qsort(v, n, sizeof *v, cmp_names);
	*count = n;
	return v;
}

/* ---- copy ---- */

typedef struct copy_ctx {
	bool merge;             /* dst already holds a lower layer: apply src on top */
	bool apply;             /* merge into a live tree: whiteouts delete, opaque directories
				 * are emptied first, no overlayfs attributes are written */
	bool base;              /* merge: whiteouts only where the base layer has something */
	uint64_t max_bytes, bytes;
	size_t entries, skipped;
	char buf[1 << 16];
} copy_ctx;

/* st's owner (EPERM ignored: an unprivileged copy keeps its own), mode and,
 * with times, its access and modification times onto fd. */
static int set_attrs(int fd, const struct stat *st, bool times, const char *rel, silo_error *err)
{
	if (fchown(fd, st->st_uid, st->st_gid) < 0 && errno != EPERM)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "chown %s", rel);
	if (fchmod(fd, st->st_mode & 07777) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "chmod %s", rel);
	if (times) {
		struct timespec ts[2] = {st->st_atim, st->st_mtim};
		futimens(fd, ts);
	}
	return 0;
}

static int copy_reg(copy_ctx *c, int sdir, int ddir, const char *name, const struct stat *st, const char *rel,
		    silo_error *err)
{
	cleanup_close int in = openat(sdir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (in < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s", rel);
	struct stat st2;
	if (fstat(in, &st2) < 0 || !S_ISREG(st2.st_mode) || st2.st_ino != st->st_ino)
		return silo_fail(err, SILO_ERR_CONFLICT, 0, "%s changed while it was being copied", rel);
	if (c->bytes + (uint64_t)st2.st_size > c->max_bytes)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, EFBIG,
				 "the writable layer is larger than the snapshot limit of %llu MiB (at %s)",
				 (unsigned long long)(c->max_bytes >> 20), rel);
	cleanup_close int out = openat(ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "create %s", rel);
	uint64_t left = (uint64_t)st2.st_size, done = 0;
	bool cfr = true;
	while (left > 0) {
		ssize_t r;
		if (cfr) {
			r = copy_file_range(in, NULL, out, NULL, MIN(left, (uint64_t)1 << 30), 0);
			if (r < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
				cfr = false;
				continue;
			}
		} else {
			r = read(in, c->buf, MIN(left, sizeof c->buf));
			if (r > 0 && write_all(out, c->buf, (size_t)r) < 0)
				return silo_fail(err, SILO_ERR_IO_ERROR, errno, "write %s", rel);
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "copy %s", rel);
		if (r == 0)
			break;   /* shrank meanwhile (the sandbox is frozen, so not expected): keep what is there */
		left -= (uint64_t)r;
		done += (uint64_t)r;
	}
	c->bytes += done;
	return set_attrs(out, &st2, true, rel, err);
}

static int copy_dir(copy_ctx *c, int sdir, int ddir, int bdir, const char *rel, int depth, silo_error *err);

/* Remove name (any type, recursively) below dirfd without following links. */
static int remove_at(int dirfd, const char *name, int depth)
{
	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -1;
	if (depth > SNAP_MAX_DEPTH + 8)
		return -1;
	int d = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (d < 0)
		return -1;
	size_t n = 0;
	char **names = list_dir(d, &n, NULL, name);
	int rc = names ? 0 : -1;
	for (size_t i = 0; names && i < n; i++)
		if (remove_at(d, names[i], depth + 1) < 0)
			rc = -1;
	strv_free(names);
	close(d);
	if (rc == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) < 0)
		rc = -1;
	return rc;
}

static int sub_base(int bdir, const char *name)
{
	return bdir < 0 ? -1 : openat(bdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

static int copy_entry(copy_ctx *c, int sdir, int ddir, int bdir, const char *name, const char *rel, int depth,
		      silo_error *err)
{
	struct stat st;
	if (fstatat(sdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "stat %s", rel);
	if (++c->entries > SNAP_MAX_ENTRIES)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0, "the writable layer has more than %u entries",
				 SNAP_MAX_ENTRIES);
	if (c->merge) {
		/* overlayfs semantics: a directory merges with the one below unless
		 * it is opaque; anything else (and a whiteout) replaces it */
		struct stat dst;
		bool opaque = false;
		if (S_ISDIR(st.st_mode)) {
			cleanup_close int s = openat(sdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			char v[16];
			opaque = s >= 0 && fgetxattr(s, OPAQUE_XATTR, v, sizeof v) > 0;
		}
		if (c->apply && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
			if (remove_at(ddir, name, 0) < 0)   /* deleted in the sandbox */
				return silo_fail(err, SILO_ERR_IO_ERROR, errno, "remove %s", rel);
			return 0;
		}
		if (fstatat(ddir, name, &dst, AT_SYMLINK_NOFOLLOW) == 0) {
			if (S_ISDIR(st.st_mode) && S_ISDIR(dst.st_mode) && !opaque) {
				if (depth >= SNAP_MAX_DEPTH)
					return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0,
							 "%s: directories nested deeper than %d", rel, SNAP_MAX_DEPTH);
				cleanup_close int s = openat(sdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				cleanup_close int d = openat(ddir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (s < 0 || d < 0)
					return silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s", rel);
				cleanup_close int b = sub_base(bdir, name);
				if (copy_dir(c, s, d, b, rel, depth + 1, err) < 0)
					return -1;
				return set_attrs(d, &st, false, rel, err);
			}
			if (remove_at(ddir, name, 0) < 0)
				return silo_fail(err, SILO_ERR_IO_ERROR, errno, "replace %s", rel);
		}
	}
	if (S_ISREG(st.st_mode))
		return copy_reg(c, sdir, ddir, name, &st, rel, err);
	if (S_ISDIR(st.st_mode)) {
		if (depth >= SNAP_MAX_DEPTH)
			return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0, "%s: directories nested deeper than %d",
					 rel, SNAP_MAX_DEPTH);
		cleanup_close int s = openat(sdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (s < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s", rel);
		if (mkdirat(ddir, name, 0700) < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", rel);
		cleanup_close int d = openat(ddir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (d < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s", rel);
		cleanup_close int b = sub_base(bdir, name);
		if (copy_dir(c, s, d, b, rel, depth + 1, err) < 0)
			return -1;
		char v[16];
		ssize_t vl = c->apply ? 0 : fgetxattr(s, OPAQUE_XATTR, v, sizeof v);
		if (vl > 0 && fsetxattr(d, OPAQUE_XATTR, v, (size_t)vl, 0) < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "set %s on %s", OPAQUE_XATTR, rel);
		return set_attrs(d, &st, true, rel, err);
	}
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlinkat(sdir, name, target, sizeof target - 1);
		if (n < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "readlink %s", rel);
		target[n] = '\0';
		if (symlinkat(target, ddir, name) < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "symlink %s", rel);
		if (fchownat(ddir, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != EPERM)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "chown %s", rel);
		return 0;
	}
	if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
		/* an overlayfs whiteout: the file was deleted from a layer below.
		 * Flattened onto the base, it is needed only where the base has that
		 * name (elsewhere overlayfs would list it as a device node). */
		struct stat bst;
		if (c->merge && c->base && (bdir < 0 || fstatat(bdir, name, &bst, AT_SYMLINK_NOFOLLOW) < 0))
			return 0;
		if (mknodat(ddir, name, S_IFCHR | 0000, makedev(0, 0)) < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "whiteout %s", rel);
		if (fchownat(ddir, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != EPERM)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "chown %s", rel);
		return 0;
	}
	/* sockets, FIFOs and device nodes (the namespace sandbox cannot make
	 * devices) carry no state worth restoring */
	c->skipped++;
	return 0;
}

static int copy_dir(copy_ctx *c, int sdir, int ddir, int bdir, const char *rel, int depth, silo_error *err)
{
	size_t n = 0;
	cleanup_strv char **names = list_dir(sdir, &n, err, rel);
	if (!names)
		return -1;
	for (size_t i = 0; i < n; i++) {
		cleanup_free char *r = escape_name(rel, names[i]);
		if (copy_entry(c, sdir, ddir, bdir, names[i], r, depth, err) < 0)
			return -1;
	}
	return 0;
}

static int copy_tree(const char *src, const char *dst, bool merge, bool apply, const char *base, uint64_t max_bytes,
		     size_t *skipped, silo_error *err)
{
	cleanup_close int s = open(src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (s < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s", src);
	if (mkdir(dst, 0755) < 0 && errno != EEXIST)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", dst);
	cleanup_close int d = open(dst, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (d < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s", dst);
	copy_ctx *c = xcalloc(1, sizeof *c);
	c->max_bytes = max_bytes;
	c->merge = merge;
	c->apply = apply;
	c->base = base != NULL;
	cleanup_close int b = base ? open(base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
	if (base && b < 0) {
		free(c);
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s", base);
	}
	int rc = copy_dir(c, s, d, b, "", 0, err);
	if (rc == 0 && !apply) {
		char v[16];
		ssize_t vl = fgetxattr(s, OPAQUE_XATTR, v, sizeof v);
		if (vl > 0)
			fsetxattr(d, OPAQUE_XATTR, v, (size_t)vl, 0);
	}
	if (skipped)
		*skipped = c->skipped;
	free(c);
	return rc;
}

/* ---- manifest ---- */

typedef struct man_ctx {
	json_t *arr;
	uint64_t bytes;
	size_t entries;
	unsigned char buf[1 << 16];
} man_ctx;

static int hash_fd(man_ctx *c, int fd, char hex[65], uint64_t *size, const char *rel, silo_error *err)
{
	crypto_hash_sha256_state h;
	crypto_hash_sha256_init(&h);
	uint64_t n = 0;
	for (;;) {
		ssize_t r = read(fd, c->buf, sizeof c->buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "read %s", rel);
		if (r == 0)
			break;
		crypto_hash_sha256_update(&h, c->buf, (size_t)r);
		n += (uint64_t)r;
	}
	unsigned char d[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_final(&h, d);
	sodium_bin2hex(hex, 65, d, sizeof d);
	*size = n;
	return 0;
}

static int man_dir(man_ctx *c, int dirfd, const char *rel, int depth, silo_error *err);

static int man_entry(man_ctx *c, int dirfd, const char *name, const char *rel, int depth, silo_error *err)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "stat %s", rel);
	if (++c->entries > SNAP_MAX_ENTRIES)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0, "more than %u payload entries", SNAP_MAX_ENTRIES);
	json_t *e = json_pack("{s:s,s:I,s:I,s:I}", "path", rel, "mode", (json_int_t)(st.st_mode & 07777), "uid",
			      (json_int_t)st.st_uid, "gid", (json_int_t)st.st_gid);
	json_array_append_new(c->arr, e);
	if (S_ISREG(st.st_mode)) {
		cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s", rel);
		char hex[65];
		uint64_t size;
		if (hash_fd(c, fd, hex, &size, rel, err) < 0)
			return -1;
		c->bytes += size;
		json_object_set_new(e, "type", json_string("file"));
		json_object_set_new(e, "size", json_integer((json_int_t)size));
		json_object_set_new(e, "sha256", json_string(hex));
		return 0;
	}
	if (S_ISDIR(st.st_mode)) {
		if (depth >= SNAP_MAX_DEPTH)
			return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0, "%s: nested deeper than %d", rel,
					 SNAP_MAX_DEPTH);
		cleanup_close int d = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (d < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s", rel);
		json_object_set_new(e, "type", json_string("dir"));
		char v[16];
		if (fgetxattr(d, OPAQUE_XATTR, v, sizeof v) > 0)
			json_object_set_new(e, "opaque", json_true());
		return man_dir(c, d, rel, depth + 1, err);
	}
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlinkat(dirfd, name, target, sizeof target - 1);
		if (n < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "readlink %s", rel);
		target[n] = '\0';
		cleanup_free char *t = escape_name(NULL, target);
		json_object_set_new(e, "type", json_string("symlink"));
		json_object_set_new(e, "target", json_string(t));
		return 0;
	}
	if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
		json_object_set_new(e, "type", json_string("whiteout"));
		return 0;
	}
	json_object_set_new(e, "type", json_string("other"));
	return 0;
}

static int man_dir(man_ctx *c, int dirfd, const char *rel, int depth, silo_error *err)
{
	size_t n = 0;
	cleanup_strv char **names = list_dir(dirfd, &n, err, rel[0] ? rel : ".");
	if (!names)
		return -1;
	for (size_t i = 0; i < n; i++) {
		cleanup_free char *r = escape_name(rel[0] ? rel : NULL, names[i]);
		if (man_entry(c, dirfd, names[i], r, depth, err) < 0)
			return -1;
	}
	return 0;
}

int snap_manifest(const char *root, json_t **out, uint64_t *bytes, silo_error *err)
{
	*out = NULL;
	cleanup_close int d = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (d < 0)
		return silo_fail(err, errno == ENOENT ? SILO_ERR_CHECKSUM_MISMATCH : SILO_ERR_IO_ERROR, errno,
				 "open %s", root);
	man_ctx *c = xcalloc(1, sizeof *c);
	c->arr = json_array();
	int rc = man_dir(c, d, "", 0, err);
	if (rc == 0) {
		*out = c->arr;
		if (bytes)
			*bytes = c->bytes;
	} else {
		json_decref(c->arr);
	}
	free(c);
	return rc;
}

int snap_copy_tree(const char *src, const char *dst, uint64_t max_bytes, size_t *skipped, silo_error *err)
{
	return copy_tree(src, dst, false, false, NULL, max_bytes, skipped, err);
}

int snap_merge_tree(const char *upper, const char *dst, const char *base, uint64_t max_bytes, size_t *skipped,
		    silo_error *err)
{
	return copy_tree(upper, dst, true, false, base, max_bytes, skipped, err);
}

int snap_apply_tree(const char *layer, const char *dst, uint64_t max_bytes, size_t *skipped, silo_error *err)
{
	return copy_tree(layer, dst, true, true, NULL, max_bytes, skipped, err);
}

/* ---- metadata digest (verification cache) ---- */

typedef struct stat_ctx {
	crypto_hash_sha256_state h;
	size_t entries;
	uint64_t newest_ns;
} stat_ctx;

static void note_ctime(stat_ctx *c, const struct stat *st)
{
	uint64_t t = (uint64_t)st->st_ctim.tv_sec * 1000000000ull + (uint64_t)st->st_ctim.tv_nsec;
	if (t > c->newest_ns)
		c->newest_ns = t;
}

static int stat_dir(stat_ctx *c, int dirfd, const char *rel, int depth, silo_error *err)
{
	size_t n = 0;
	cleanup_strv char **names = list_dir(dirfd, &n, err, rel[0] ? rel : ".");
	if (!names)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (fstatat(dirfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "stat %s/%s", rel, names[i]);
		if (++c->entries > SNAP_MAX_ENTRIES)
			return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0, "more than %u payload entries",
					 SNAP_MAX_ENTRIES);
		uint64_t v[] = {(uint64_t)st.st_mode,         (uint64_t)st.st_uid,          (uint64_t)st.st_gid,
				(uint64_t)st.st_size,         (uint64_t)st.st_ino,          (uint64_t)st.st_dev,
				(uint64_t)st.st_nlink,        (uint64_t)st.st_mtim.tv_sec,  (uint64_t)st.st_mtim.tv_nsec,
				(uint64_t)st.st_ctim.tv_sec,  (uint64_t)st.st_ctim.tv_nsec, (uint64_t)st.st_rdev};
		note_ctime(c, &st);
		crypto_hash_sha256_update(&c->h, (const unsigned char *)names[i], strlen(names[i]) + 1);
		crypto_hash_sha256_update(&c->h, (const unsigned char *)v, sizeof v);
		if (S_ISDIR(st.st_mode)) {
			if (depth >= SNAP_MAX_DEPTH)
				return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0, "%s: nested deeper than %d", rel,
						 SNAP_MAX_DEPTH);
			cleanup_close int d = openat(dirfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (d < 0)
				return silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s/%s", rel, names[i]);
			cleanup_free char *r = escape_name(rel[0] ? rel : NULL, names[i]);
			crypto_hash_sha256_update(&c->h, (const unsigned char *)"{", 1);
			if (stat_dir(c, d, r, depth + 1, err) < 0)
				return -1;
			crypto_hash_sha256_update(&c->h, (const unsigned char *)"}", 1);
		}
	}
	return 0;
}

int snap_tree_stat_digest(const char *root, char hex[65], uint64_t *newest_ctime_ns, silo_error *err)
{
	cleanup_close int d = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (d < 0)
		return silo_fail(err, errno == ENOENT ? SILO_ERR_CHECKSUM_MISMATCH : SILO_ERR_IO_ERROR, errno,
				 "open %s", root);
	stat_ctx *c = xcalloc(1, sizeof *c);
	crypto_hash_sha256_init(&c->h);
	struct stat st;
	int rc = fstat(d, &st) < 0 ? silo_fail(err, SILO_ERR_IO_ERROR, errno, "stat %s", root) : 0;
	if (rc == 0) {
		uint64_t v[] = {(uint64_t)st.st_ino, (uint64_t)st.st_dev, (uint64_t)st.st_ctim.tv_sec,
				(uint64_t)st.st_ctim.tv_nsec};
		crypto_hash_sha256_update(&c->h, (const unsigned char *)v, sizeof v);
		note_ctime(c, &st);
		rc = stat_dir(c, d, "", 0, err);
	}
	if (newest_ctime_ns)
		*newest_ctime_ns = c->newest_ns;
	if (rc == 0) {
		unsigned char dg[crypto_hash_sha256_BYTES];
		crypto_hash_sha256_final(&c->h, dg);
		sodium_bin2hex(hex, 65, dg, sizeof dg);
	}
	free(c);
	return rc;
}
