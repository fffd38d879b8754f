/* SPDX-License-Identifier: Apache-2.0
 * Layer extraction (layer.h). Only this file writes archive content to disk.
 * Invariants while a layer is extracted:
 *   - every path handed to a *at() call is a single component below a directory
 *     fd that openat2() resolved beneath the layer root without symlinks;
 *   - a directory fd is cached for the parent of the previous entry (archives
 *     list a directory's entries together); nothing renames or removes directories
 *     during extraction, so the cached fd stays the directory its path names;
 *   - directory mtimes are applied after the last entry (creating entries inside
 *     a directory changes its mtime).
 */
#include "oci/layer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "archive/archive.h"
#include "common/strset.h"
#include "common/util.h"

int oci_open_beneath(int dirfd, const char *path, int flags, bool follow)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV | (follow ? 0 : RESOLVE_NO_SYMLINKS),
	};
	return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

/* ---- extraction ---- */
typedef struct dtime {
	char *path;
	struct timespec t;
} dtime;

typedef struct xctx {
	tar_reader *r;
	int root;
	const char *what;
	const oci_extract_opts *o;
	oci_layer_stats *st;
	const tar_entry *e;
	strset implicit;
	char *pcache;          /* path of the cached parent directory */
	int pfd;
	dtime *dt;
	size_t ndt, dtcap;
	unsigned char *buf;    /* file data copy buffer */
} xctx;

#define OCI_COPY_BUF (256u * 1024)

__attribute__((format(printf, 5, 6))) static int efail(xctx *x, silo_error *err, silo_code code, int e,
						       const char *fmt, ...)
{
	char prefix[SILO_ERROR_MSG_MAX];
	snprintf(prefix, sizeof prefix, "%s: entry", x->what);
	va_list ap;
	va_start(ap, fmt);
	int rc = tar_entry_fail(err, code, e, prefix, x->e->path, fmt, ap);
	va_end(ap);
	return rc;
}

/* Normalize an archive path into out ("" is the archive root): archive_norm_name's rules,
 * an error naming the entry and field. */
static int norm_path(xctx *x, const char *in, char *out, size_t outlen, const char *field, silo_error *err)
{
	_Static_assert(OCI_MAX_DEPTH == ARCHIVE_MAX_DEPTH, "layers and tar streams nest alike");
	const char *why;
	if (archive_norm_name(in, out, outlen, &why) < 0)
		return efail(x, err, SILO_ERR_INVALID_CONFIG, 0, "%s %s", field, why);
	return 0;
}

static void note_drop(oci_layer_stats *st, const char *name)
{
	size_t n = strlen(st->dropped), k = strlen(name);
	/* distinct names only, as long as they fit */
	for (const char *p = st->dropped; (p = strstr(p, name)); p += k)
		if ((p == st->dropped || p[-1] == ' ') && (p[k] == ',' || p[k] == '\0'))
			return;
	if (n + k + 3 < sizeof st->dropped)
		snprintf(st->dropped + n, sizeof st->dropped - n, "%s%s", n ? ", " : "", name);
}

/* Which extended attributes an image may carry onto the host store and into a
 * sandbox: user.* (not user.overlay.*, which overlayfs reads in userxattr mode)
 * and a well-formed security.capability (file capabilities, revision 2 or 3).
 * trusted.* (overlayfs metadata: redirect, origin, opaque, metacopy), other
 * security.* (host LSM labels, IMA/EVM) and system.* (ACLs) are dropped. */
static bool xattr_keep(const tar_xattr *a)
{
	if (!strncmp(a->name, "user.", 5))
		return strncmp(a->name, "user.overlay.", 13) != 0;
	if (!strcmp(a->name, "security.capability")) {
		if (a->len != 20 && a->len != 24)
			return false;
		uint32_t magic = (uint32_t)a->value[0] | (uint32_t)a->value[1] << 8 | (uint32_t)a->value[2] << 16 |
				 (uint32_t)a->value[3] << 24;
		uint32_t rev = magic & 0xff000000u;
		return (rev == 0x02000000u && a->len == 20) || (rev == 0x03000000u && a->len == 24);
	}
	return false;
}

/* Owner, mode, xattrs and (except for directories) times on an open fd. Order
 * matters: chown clears set-id bits and security.capability, so it goes first. */
static int set_meta(xctx *x, int fd, bool dir, silo_error *err)
{
	const tar_entry *e = x->e;
	if (fchown(fd, e->uid, e->gid) < 0)
		return efail(x, err, SILO_ERR_IO_ERROR, errno, "chown %u:%u", e->uid, e->gid);
	if (fchmod(fd, e->mode) < 0)
		return efail(x, err, SILO_ERR_IO_ERROR, errno, "chmod %04o", e->mode);
	for (size_t i = 0; i < e->n_xattrs; i++) {
		const tar_xattr *a = &e->xattrs[i];
		if (!xattr_keep(a)) {
			x->st->dropped_xattrs++;
			note_drop(x->st, a->name);
			continue;
		}
		if (fsetxattr(fd, a->name, a->value, a->len, 0) < 0)
			return efail(x, err, SILO_ERR_IO_ERROR, errno, "set xattr %s", a->name);
	}
	struct stat sb;
	if (fstat(fd, &sb) == 0)
		x->st->disk += (uint64_t)sb.st_blocks * 512;
	if (dir)
		return 0;
	struct timespec t[2] = {{e->mtime, e->mtime_nsec}, {e->mtime, e->mtime_nsec}};
	if (futimens(fd, t) < 0)
		return efail(x, err, SILO_ERR_IO_ERROR, errno, "set times");
	return 0;
}

/* Owner and times of a symlink or FIFO, by name below pfd (never followed). */
static int set_meta_at(xctx *x, int pfd, const char *base, bool chmod_too, silo_error *err)
{
	const tar_entry *e = x->e;
	if (fchownat(pfd, base, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0)
		return efail(x, err, SILO_ERR_IO_ERROR, errno, "chown %u:%u", e->uid, e->gid);
	if (chmod_too && fchmodat(pfd, base, e->mode, 0) < 0)
		return efail(x, err, SILO_ERR_IO_ERROR, errno, "chmod %04o", e->mode);
	if (e->n_xattrs) {
		/* user.* xattrs cannot live on symlinks or FIFOs */
		x->st->dropped_xattrs += e->n_xattrs;
		for (size_t i = 0; i < e->n_xattrs; i++)
			note_drop(x->st, e->xattrs[i].name);
	}
	struct timespec t[2] = {{e->mtime, e->mtime_nsec}, {e->mtime, e->mtime_nsec}};
	if (utimensat(pfd, base, t, AT_SYMLINK_NOFOLLOW) < 0)
		return efail(x, err, SILO_ERR_IO_ERROR, errno, "set times");
	struct stat sb;
	if (fstatat(pfd, base, &sb, AT_SYMLINK_NOFOLLOW) == 0)
		x->st->disk += (uint64_t)sb.st_blocks * 512;
	return 0;
}

/* Diagnose or create the directory rel below the layer root, component by
 * component. Returns an fd, or -1. */
static int walk_dir(xctx *x, const char *rel, bool create, silo_error *err)
{
	int cur = fcntl(x->root, F_DUPFD_CLOEXEC, 3);
	if (cur < 0)
		return efail(x, err, SILO_ERR_IO_ERROR, errno, "dup");
	char sofar[TAR_NAME_MAX + 1];
	size_t o = 0;
	const char *s = rel;
	while (*s) {
		const char *slash = strchr(s, '/');
		size_t n = slash ? (size_t)(slash - s) : strlen(s);
		char comp[256];
		memcpy(comp, s, n);
		comp[n] = '\0';
		if (o)
			sofar[o++] = '/';
		memcpy(sofar + o, s, n);
		o += n;
		sofar[o] = '\0';
		int fd = oci_open_beneath(cur, comp, O_RDONLY | O_DIRECTORY, false);
		if (fd < 0 && errno == ENOENT && create) {
			if (mkdirat(cur, comp, 0755) < 0 && errno != EEXIST) {
				int e = errno;
				close(cur);
				return efail(x, err, SILO_ERR_IO_ERROR, e, "mkdir \"%s\"", sofar);
			}
			if (strset_add(&x->implicit, sofar) < 0)
				silo_out_of_memory();
			fd = oci_open_beneath(cur, comp, O_RDONLY | O_DIRECTORY, false);
		}
		int e = errno;
		close(cur);
		if (fd < 0) {
			char q[200];
			tar_quote(sofar, q, sizeof q);
			if (e == ELOOP)
				return efail(x, err, SILO_ERR_INVALID_CONFIG, 0,
					     "\"%s\" is a symlink in this layer; refusing to write through it", q);
			if (e == ENOTDIR)
				return efail(x, err, SILO_ERR_INVALID_CONFIG, 0, "\"%s\" is not a directory", q);
			if (e == ENOENT)
				return efail(x, err, SILO_ERR_INVALID_CONFIG, 0, "\"%s\" is not in this layer", q);
			return efail(x, err, SILO_ERR_IO_ERROR, e, "open \"%s\"", q);
		}
		cur = fd;
		s += n;
		if (*s == '/')
			s++;
	}
	return cur;
}

/* The parent directory of the current entry (cached). Not to be closed. */
static int parent_dir(xctx *x, const char *rel, silo_error *err)
{
	if (x->pcache && !strcmp(x->pcache, rel))
		return x->pfd;
	if (x->pcache) {
		close(x->pfd);
		free(x->pcache);
		x->pcache = NULL;
	}
	int fd = rel[0] ? oci_open_beneath(x->root, rel, O_RDONLY | O_DIRECTORY, false) : -1;
	if (fd < 0)
		fd = walk_dir(x, rel, true, err);
	if (fd < 0)
		return -1;
	x->pcache = xstrdup(rel);
	x->pfd = fd;
	return fd;
}

static int dup_fail(xctx *x, silo_error *err, const char *rel)
{
	char q[200];
	return efail(x, err, SILO_ERR_INVALID_CONFIG, 0,
		     "\"%s\" already exists in this layer (duplicate or conflicting entries are refused)",
		     tar_quote(rel, q, sizeof q));
}

static void note_dir_time(xctx *x, const char *rel)
{
	if (x->ndt == x->dtcap) {
		x->dtcap = x->dtcap ? x->dtcap * 2 : 64;
		x->dt = xrealloc(x->dt, x->dtcap * sizeof *x->dt);
	}
	x->dt[x->ndt].path = xstrdup(rel);
	x->dt[x->ndt].t = (struct timespec){x->e->mtime, x->e->mtime_nsec};
	x->ndt++;
}

static int extract_file(xctx *x, int pfd, const char *base, const char *rel, silo_error *err)
{
	cleanup_close int fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno == EEXIST ? dup_fail(x, err, rel) : efail(x, err, SILO_ERR_IO_ERROR, errno, "create");
	for (;;) {
		ssize_t k = tar_read(x->r, x->buf, OCI_COPY_BUF, err);
		if (k < 0) {
			silo_error_prefix(err, "%s", x->what);
			return -1;
		}
		if (k == 0)
			break;
		if (write_all(fd, x->buf, (size_t)k) < 0)
			return efail(x, err, SILO_ERR_IO_ERROR, errno, "write");
	}
	x->st->files++;
	x->st->bytes += x->e->size;
	return set_meta(x, fd, false, err);
}

static int extract_dir(xctx *x, int pfd, const char *base, const char *rel, silo_error *err)
{
	if (mkdirat(pfd, base, 0700) < 0) {
		if (errno != EEXIST)
			return efail(x, err, SILO_ERR_IO_ERROR, errno, "mkdir");
		struct stat sb;
		if (fstatat(pfd, base, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(sb.st_mode) ||
		    !strset_take(&x->implicit, rel))
			return dup_fail(x, err, rel);
	}
	cleanup_close int fd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return efail(x, err, SILO_ERR_IO_ERROR, errno, "open directory");
	x->st->dirs++;
	note_dir_time(x, rel);
	return set_meta(x, fd, true, err);
}

static int extract_hardlink(xctx *x, int pfd, const char *base, const char *rel, silo_error *err)
{
	char target[TAR_NAME_MAX + 1];
	if (norm_path(x, x->e->link, target, sizeof target, "hard link target", err) < 0)
		return -1;
	char q[200];
	tar_quote(target, q, sizeof q);
	if (!target[0])
		return efail(x, err, SILO_ERR_INVALID_CONFIG, 0, "hard link to the archive root");
	char *slash = strrchr(target, '/');
	const char *tbase = slash ? slash + 1 : target;
	if (slash)
		*slash = '\0';
	cleanup_close int tpfd = walk_dir(x, slash ? target : "", false, err);
	if (slash)
		*slash = '/';
	if (tpfd < 0) {
		silo_error_prefix(err, "hard link target \"%s\"", q);
		return -1;
	}
	struct stat sb;
	if (fstatat(tpfd, tbase, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return efail(x, err, SILO_ERR_INVALID_CONFIG, errno == ENOENT ? 0 : errno,
			     "hard link target \"%s\" is not an earlier entry of this layer", q);
	if (S_ISLNK(sb.st_mode))
		return efail(x, err, SILO_ERR_INVALID_CONFIG, 0, "hard link to the symlink \"%s\" (refused)", q);
	if (!S_ISREG(sb.st_mode))
		return efail(x, err, SILO_ERR_INVALID_CONFIG, 0,
			     "hard link target \"%s\" is not a regular file (refused)", q);
	if (linkat(tpfd, tbase, pfd, base, 0) < 0)
		return errno == EEXIST ? dup_fail(x, err, rel) : efail(x, err, SILO_ERR_IO_ERROR, errno, "link");
	x->st->hardlinks++;
	return 0;
}

static int extract_whiteout(xctx *x, const char *parent, const char *base, silo_error *err)
{
	if (!strcmp(base, ".wh..wh..opq")) {
		if (!parent[0])
			return efail(x, err, SILO_ERR_INVALID_CONFIG, 0,
				     "an opaque marker on the image root is not supported");
		int pfd = parent_dir(x, parent, err);
		if (pfd < 0)
			return -1;
		if (fsetxattr(pfd, OCI_WHITEOUT_OPAQUE_XATTR, "y", 1, 0) < 0)
			return efail(x, err, SILO_ERR_IO_ERROR, errno, "set %s", OCI_WHITEOUT_OPAQUE_XATTR);
		x->st->opaques++;
		return 0;
	}
	const char *victim = base + 4;
	if (!victim[0] || !strcmp(victim, ".") || !strcmp(victim, "..") || !strncmp(victim, ".wh.", 4))
		return efail(x, err, SILO_ERR_INVALID_CONFIG, 0, "not a valid whiteout name");
	int pfd = parent_dir(x, parent, err);
	if (pfd < 0)
		return -1;
	if (mknodat(pfd, victim, S_IFCHR | 0, makedev(0, 0)) < 0) {
		if (errno != EEXIST)
			return efail(x, err, SILO_ERR_IO_ERROR, errno, "create the whiteout");
		char rel[TAR_NAME_MAX + 260];
		snprintf(rel, sizeof rel, "%s%s%s", parent, parent[0] ? "/" : "", victim);
		return dup_fail(x, err, rel);
	}
	x->st->whiteouts++;
	return 0;
}

static int extract_entry(xctx *x, silo_error *err)
{
	const tar_entry *e = x->e;
	char rel[TAR_NAME_MAX + 1];
	if (norm_path(x, e->path, rel, sizeof rel, "name", err) < 0)
		return -1;
	if (!rel[0]) {
		/* "./": the attributes of the layer root */
		if (e->type != TAR_DIR)
			return efail(x, err, SILO_ERR_INVALID_CONFIG, 0, "the archive root is not a directory");
		note_dir_time(x, "");
		return set_meta(x, x->root, true, err);
	}
	char *slash = strrchr(rel, '/');
	const char *base = slash ? slash + 1 : rel;
	char parent[TAR_NAME_MAX + 1];
	snprintf(parent, sizeof parent, "%.*s", slash ? (int)(slash - rel) : 0, rel);
	if (!strncmp(parent, ".wh.", 4) || strstr(parent, "/.wh."))
		return efail(x, err, SILO_ERR_INVALID_CONFIG, 0, "a directory name starts with \".wh.\" (reserved for whiteouts)");
	if (!strncmp(base, ".wh.", 4))
		return extract_whiteout(x, parent, base, err);
	if ((e->type == TAR_CHR || e->type == TAR_BLK)) {
		if (!x->o->skip_devices)
			return efail(x, err, SILO_ERR_INVALID_CONFIG, 0,
				     "%s device %u:%u: device nodes are refused (--skip-devices drops them)",
				     e->type == TAR_CHR ? "character" : "block", e->devmajor, e->devminor);
		x->st->dropped_devices++;
		note_drop(x->st, rel);
		return 0;
	}
	int pfd = parent_dir(x, parent, err);
	if (pfd < 0)
		return -1;
	switch (e->type) {
	case TAR_REG:
		return extract_file(x, pfd, base, rel, err);
	case TAR_DIR:
		return extract_dir(x, pfd, base, rel, err);
	case TAR_HARDLINK:
		return extract_hardlink(x, pfd, base, rel, err);
	case TAR_SYMLINK:
		if (symlinkat(e->link, pfd, base) < 0)
			return errno == EEXIST ? dup_fail(x, err, rel) : efail(x, err, SILO_ERR_IO_ERROR, errno, "symlink");
		x->st->symlinks++;
		return set_meta_at(x, pfd, base, false, err);
	case TAR_FIFO:
		if (mknodat(pfd, base, S_IFIFO | 0600, 0) < 0)
			return errno == EEXIST ? dup_fail(x, err, rel) : efail(x, err, SILO_ERR_IO_ERROR, errno, "mkfifo");
		x->st->fifos++;
		return set_meta_at(x, pfd, base, true, err);
	case TAR_CHR:
	case TAR_BLK:
		break;
	}
	return efail(x, err, SILO_ERR_INTERNAL, 0, "unhandled entry type %d", (int)e->type);
}

int oci_layer_extract(tar_reader *r, int rootfd, const char *what, const oci_extract_opts *o, oci_layer_stats *st,
		      silo_error *err)
{
	xctx x = {.r = r, .root = rootfd, .what = what, .o = o, .st = st, .pfd = -1, .buf = xmalloc(OCI_COPY_BUF)};
	int rc = -1;
	for (;;) {
		const tar_entry *e;
		int k = tar_next(r, &e, err);
		if (k < 0) {
			silo_error_prefix(err, "%s", what);
			goto out;
		}
		if (k == 0)
			break;
		x.e = e;
		if (o->budget) {
			if (o->budget->used_entries >= o->budget->max_entries) {
				efail(&x, err, SILO_ERR_RESOURCE_EXCEEDED, 0,
				      "more than %" PRIu64 " entries in the import (raise the limit with --max-entries)",
				      o->budget->max_entries);
				goto out;
			}
			o->budget->used_entries++;
		}
		st->entries++;
		if (extract_entry(&x, err) < 0)
			goto out;
	}
	/* directory times last, deepest first (setting a time does not touch the parent) */
	for (size_t i = x.ndt; i-- > 0;) {
		int fd = x.dt[i].path[0] ? oci_open_beneath(rootfd, x.dt[i].path, O_RDONLY | O_DIRECTORY, false)
					 : fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
		if (fd < 0)
			continue;   /* replaced by a later entry of another type: nothing to date */
		struct timespec t[2] = {x.dt[i].t, x.dt[i].t};
		(void)futimens(fd, t);
		close(fd);
	}
	rc = 0;
out:
	if (x.pcache) {
		close(x.pfd);
		free(x.pcache);
	}
	for (size_t i = 0; i < x.ndt; i++)
		free(x.dt[i].path);
	free(x.dt);
	free(x.buf);
	strset_free(&x.implicit);
	return rc;
}
