/* SPDX-License-Identifier: Apache-2.0
 * Tar streams of trees (archive.h): the writer and the safe extractor.
 * Byte format written: 512-byte ustar headers (lib/oci/tar.c has the layout),
 * data padded to 512 bytes, two zero blocks at the end; a pax 'x' header
 * ("<len> <key>=<value>\n" records, named "PaxHeaders/<base>") precedes an
 * entry whose path, link target, size, uid, gid or mtime does not fit ustar.
 * No allocation survives a call; nothing here keeps global state (the agent
 * calls it in a forked child).
 */
#include "archive/archive.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/strset.h"

#define BLK 512
#define ARCHIVE_STR_(x) #x
#define ARCHIVE_STR(x) ARCHIVE_STR_(x)
#define OUTBUF (64u * 1024u)
#define NAME_MAX_ (TAR_NAME_MAX)

/* ================================================================ writer */

typedef struct wctx {
	archive_out_fn out;
	void *ud;
	const archive_wopts *o;
	archive_stats *st;
	silo_error *err;
	dev_t root_dev;
	size_t len;
	unsigned char buf[OUTBUF];
	char name[NAME_MAX_ + 2];          /* archive name of the entry being written */
} wctx;

static void warnf(wctx *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warnf(wctx *w, const char *fmt, ...)
{
	w->st->skipped++;
	if (!w->o->warn)
		return;
	char msg[NAME_MAX_ + 256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	w->o->warn(w->o->warn_ud, msg);
}

static int flush_out(wctx *w)
{
	if (!w->len)
		return 0;
	int rc = w->out(w->ud, w->buf, w->len, w->err);
	w->len = 0;
	return rc;
}

static int emit(wctx *w, const void *p, size_t n)
{
	const unsigned char *s = p;
	while (n) {
		size_t k = OUTBUF - w->len < n ? OUTBUF - w->len : n;
		memcpy(w->buf + w->len, s, k);
		w->len += k;
		s += k;
		n -= k;
		if (w->len == OUTBUF && flush_out(w) < 0)
			return -1;
	}
	return 0;
}

static int emit_zeros(wctx *w, uint64_t n)
{
	static const unsigned char z[BLK];
	while (n) {
		size_t k = n > BLK ? BLK : (size_t)n;
		if (emit(w, z, k) < 0)
			return -1;
		n -= k;
	}
	return 0;
}

static int pad_block(wctx *w, uint64_t size)
{
	return emit_zeros(w, (BLK - size % BLK) % BLK);
}

/* value in width-1 octal digits and a NUL; false if it does not fit */
static bool octal(unsigned char *f, size_t width, uint64_t v)
{
	uint64_t max = (width - 1) * 3 >= 64 ? UINT64_MAX : (UINT64_C(1) << ((width - 1) * 3)) - 1;
	if (v > max) {
		memset(f, '0', width - 1);
		f[width - 1] = '\0';
		return false;
	}
	char tmp[32];
	snprintf(tmp, sizeof tmp, "%0*" PRIo64, (int)(width - 1), v);
	memcpy(f, tmp, width);
	return true;
}

/* Append one pax record "<len> key=value\n" to rec (cap bytes); false if full. */
static bool pax_add(char *rec, size_t *len, size_t cap, const char *key, const char *val)
{
	size_t body = strlen(key) + strlen(val) + 3, digits = 1, total;
	for (size_t t = body + 1; t >= 10; t /= 10)
		digits++;
	total = body + digits;
	size_t d2 = 1;
	for (size_t t = total; t >= 10; t /= 10)
		d2++;
	if (d2 > digits)
		total++;
	if (*len + total + 1 > cap)
		return false;
	*len += (size_t)snprintf(rec + *len, cap - *len, "%zu %s=%s\n", total, key, val);
	return true;
}

/* Split name into ustar prefix/name; false if it cannot be. */
static bool ustar_split(const char *name, unsigned char *h)
{
	size_t n = strlen(name);
	if (n <= 100) {
		memcpy(h, name, n);
		return true;
	}
	for (size_t i = n - 1; i > 0; i--) {
		if (name[i] != '/')
			continue;
		if (i <= 155 && n - i - 1 <= 100 && n - i - 1 > 0) {
			memcpy(h + 345, name, i);
			memcpy(h, name + i + 1, n - i - 1);
			return true;
		}
		if (i < n - 101)
			break;
	}
	return false;
}

static void header_checksum(unsigned char *h)
{
	memset(h + 148, ' ', 8);
	uint32_t sum = 0;
	for (int i = 0; i < BLK; i++)
		sum += h[i];
	char tmp[16];
	snprintf(tmp, sizeof tmp, "%06o", sum);
	memcpy(h + 148, tmp, 6);
	h[154] = '\0';
	h[155] = ' ';
}

static void fill_header(unsigned char *h, char type, uint32_t mode, uint64_t uid, uint64_t gid, uint64_t size,
			int64_t mtime, bool *need_size, bool *need_uid, bool *need_gid, bool *need_mtime)
{
	octal(h + 100, 8, mode & 07777);
	*need_uid = !octal(h + 108, 8, uid);
	*need_gid = !octal(h + 116, 8, gid);
	*need_size = !octal(h + 124, 12, size);
	*need_mtime = mtime < 0 || !octal(h + 136, 12, (uint64_t)mtime);
	if (mtime < 0)
		octal(h + 136, 12, 0);
	h[156] = (unsigned char)type;
	memcpy(h + 257, "ustar\0" "00", 8);
}

/* One entry's headers (a pax header first when needed). */
static int write_header(wctx *w, char type, const struct stat *st, uint64_t size, const char *link)
{
	unsigned char h[BLK];
	memset(h, 0, sizeof h);
	uint64_t uid = w->o->zero_owner ? 0 : st->st_uid, gid = w->o->zero_owner ? 0 : st->st_gid;
	bool nsize, nuid, ngid, nmtime;
	fill_header(h, type, (uint32_t)st->st_mode, uid, gid, size, (int64_t)st->st_mtime, &nsize, &nuid, &ngid,
		    &nmtime);
	bool npath = !ustar_split(w->name, h);
	bool nlink = false;
	if (link) {
		size_t ll = strlen(link);
		nlink = ll > 100;
		memcpy(h + 157, link, nlink ? 0 : ll);
	}
	if (npath || nlink || nsize || nuid || ngid || nmtime) {
		char rec[2 * NAME_MAX_ + 256], num[32];
		size_t rl = 0;
		bool ok = true;
		if (npath)
			ok &= pax_add(rec, &rl, sizeof rec, "path", w->name);
		if (nlink)
			ok &= pax_add(rec, &rl, sizeof rec, "linkpath", link);
		if (nsize) {
			snprintf(num, sizeof num, "%" PRIu64, size);
			ok &= pax_add(rec, &rl, sizeof rec, "size", num);
		}
		if (nuid) {
			snprintf(num, sizeof num, "%" PRIu64, uid);
			ok &= pax_add(rec, &rl, sizeof rec, "uid", num);
		}
		if (ngid) {
			snprintf(num, sizeof num, "%" PRIu64, gid);
			ok &= pax_add(rec, &rl, sizeof rec, "gid", num);
		}
		if (nmtime) {
			snprintf(num, sizeof num, "%" PRId64, (int64_t)st->st_mtime);
			ok &= pax_add(rec, &rl, sizeof rec, "mtime", num);
		}
		if (!ok)
			return silo_fail(w->err, SILO_ERR_INTERNAL, 0, "archive: pax header of %.200s overflows", w->name);
		unsigned char x[BLK];
		memset(x, 0, sizeof x);
		const char *base = strrchr(w->name, '/');
		char xname[101];
		snprintf(xname, sizeof xname, "PaxHeaders/%.80s", base && base[1] ? base + 1 : w->name);
		memcpy(x, xname, strlen(xname));
		bool d1, d2, d3, d4;
		fill_header(x, 'x', 0644, 0, 0, rl, (int64_t)st->st_mtime < 0 ? 0 : (int64_t)st->st_mtime, &d1, &d2, &d3,
			    &d4);
		header_checksum(x);
		if (emit(w, x, BLK) < 0 || emit(w, rec, rl) < 0 || pad_block(w, rl) < 0)
			return -1;
	}
	header_checksum(h);
	return emit(w, h, BLK);
}

static int write_file(wctx *w, int pfd, const char *leaf, const struct stat *st0)
{
	int fd = openat(pfd, leaf, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_ino != st0->st_ino) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		warnf(w, "skipped %s: %s", w->name, fd < 0 ? strerror(e) : "changed while being archived");
		return 0;
	}
	uint64_t size = (uint64_t)st.st_size, left = size;
	if (write_header(w, '0', &st, size, NULL) < 0) {
		close(fd);
		return -1;
	}
	while (left) {
		if (w->len == OUTBUF && flush_out(w) < 0) {
			close(fd);
			return -1;
		}
		size_t room = OUTBUF - w->len;
		ssize_t n = read(fd, w->buf + w->len, left < room ? (size_t)left : room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			warnf(w, "%s: %s; padded with %" PRIu64 " zero bytes", w->name,
			      n < 0 ? strerror(errno) : "file shrank while being archived", left);
			if (emit_zeros(w, left) < 0) {
				close(fd);
				return -1;
			}
			break;
		}
		w->len += (size_t)n;
		left -= (uint64_t)n;
	}
	char probe;
	if (read(fd, &probe, 1) == 1)
		warnf(w, "%s grew while being archived; cut at %" PRIu64 " bytes", w->name, size);
	close(fd);
	w->st->files++;
	w->st->bytes += size;
	return pad_block(w, size);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int write_tree(wctx *w, int pfd, const char *leaf, int depth, bool top);

static int write_dir_contents(wctx *w, int dfd, int depth)
{
	int lfd = dup(dfd);
	DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
	if (!d) {
		if (lfd >= 0)
			close(lfd);
		warnf(w, "%s: cannot list: %s", w->name, strerror(errno));
		return 0;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == ARCHIVE_DIR_MAX) {
			warnf(w, "%s: more than %u entries; the rest are skipped", w->name, ARCHIVE_DIR_MAX);
			break;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **nn = realloc(names, cap * sizeof *names);
			if (!nn) {
				rc = silo_fail(w->err, SILO_ERR_IO_ERROR, ENOMEM, "archive: list %.200s", w->name);
				break;
			}
			names = nn;
		}
		if (!(names[n] = strdup(de->d_name))) {
			rc = silo_fail(w->err, SILO_ERR_IO_ERROR, ENOMEM, "archive: list %.200s", w->name);
			break;
		}
		n++;
	}
	closedir(d);
	if (rc == 0 && n)
		qsort(names, n, sizeof *names, cmp_names);
	size_t base = strlen(w->name);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		size_t k = strlen(names[i]);
		if (base + k + 2 > NAME_MAX_) {
			warnf(w, "skipped %s%s: the name is longer than %d bytes", w->name, names[i], NAME_MAX_);
			continue;
		}
		memcpy(w->name + base, names[i], k + 1);
		rc = write_tree(w, dfd, names[i], depth + 1, false);
		w->name[base] = '\0';
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

/* w->name holds the entry's archive name (without the '/' of a directory). */
static int write_tree(wctx *w, int pfd, const char *leaf, int depth, bool top)
{
	struct stat st;
	if (fstatat(pfd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (top)
			return silo_fail(w->err, SILO_ERR_IO_ERROR, errno, "archive: %s", leaf);
		warnf(w, "skipped %s: %s", w->name, strerror(errno));
		return 0;
	}
	if (top)
		w->root_dev = st.st_dev;
	w->st->entries++;
	if (S_ISREG(st.st_mode))
		return write_file(w, pfd, leaf, &st);
	if (S_ISLNK(st.st_mode)) {
		char target[NAME_MAX_ + 1];
		ssize_t n = readlinkat(pfd, leaf, target, sizeof target);
		if (n < 0 || (size_t)n >= sizeof target) {
			warnf(w, "skipped %s: %s", w->name, n < 0 ? strerror(errno) : "symlink target too long");
			return 0;
		}
		target[n] = '\0';
		w->st->symlinks++;
		return write_header(w, '2', &st, 0, target);
	}
	if (!S_ISDIR(st.st_mode)) {
		warnf(w, "skipped %s: %s", w->name,
		      S_ISSOCK(st.st_mode) ? "a socket" : S_ISFIFO(st.st_mode) ? "a FIFO" : "a device");
		return 0;
	}
	if (depth > ARCHIVE_MAX_DEPTH) {
		warnf(w, "skipped %s: nested deeper than %d directories", w->name, ARCHIVE_MAX_DEPTH);
		return 0;
	}
	size_t l = strlen(w->name);
	w->name[l] = '/';
	w->name[l + 1] = '\0';
	w->st->dirs++;
	int rc = write_header(w, '5', &st, 0, NULL);
	if (rc == 0 && st.st_dev != w->root_dev) {
		warnf(w, "%s is another file system (a mount point): written empty", w->name);
	} else if (rc == 0) {
		int dfd = openat(pfd, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0) {
			warnf(w, "%s: cannot open: %s", w->name, strerror(errno));
		} else {
			rc = write_dir_contents(w, dfd, depth);
			close(dfd);
		}
	}
	w->name[l] = '\0';
	return rc;
}

int archive_write(int dirfd, const char *path, const archive_wopts *o, archive_out_fn out, void *ud,
		  archive_stats *st, silo_error *err)
{
	static const archive_wopts none;
	archive_stats dummy = {0};
	wctx *w = calloc(1, sizeof *w);
	if (!w)
		return silo_fail(err, SILO_ERR_IO_ERROR, ENOMEM, "archive");
	w->out = out;
	w->ud = ud;
	w->o = o ? o : &none;
	w->st = st ? st : &dummy;
	w->err = err;
	/* the top entry's name: o->name, else the last component of path */
	const char *name = w->o->name;
	char base[256];
	if (!name) {
		size_t n = strlen(path);
		while (n > 1 && path[n - 1] == '/')
			n--;
		size_t s = n;
		while (s > 0 && path[s - 1] != '/')
			s--;
		snprintf(base, sizeof base, "%.*s", (int)(n - s), path + s);
		name = base[0] && strcmp(base, "/") ? base : ".";
	}
	const char *why;
	char norm[NAME_MAX_ + 1];
	int rc;
	if (archive_norm_name(name, norm, sizeof norm, &why) < 0 || strchr(norm, '/')) {
		rc = silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "archive: the top entry name \"%.200s\" %s", name,
			       strchr(norm, '/') ? "must be one component" : why);
	} else {
		snprintf(w->name, sizeof w->name, "%s", norm[0] ? norm : ".");
		rc = write_tree(w, dirfd, path, 0, true);
		if (rc == 0)
			rc = emit_zeros(w, 2 * BLK);
		if (rc == 0)
			rc = flush_out(w);
	}
	free(w);
	return rc;
}

/* ================================================================ names */

int archive_norm_name(const char *in, char *out, size_t outlen, const char **why)
{
	if (in[0] == '/') {
		*why = "is an absolute path (refused)";
		return -1;
	}
	size_t o = 0, depth = 0;
	const char *s = in;
	while (*s) {
		const char *slash = strchr(s, '/');
		size_t n = slash ? (size_t)(slash - s) : strlen(s);
		if (n == 2 && s[0] == '.' && s[1] == '.') {
			*why = "has a \"..\" component (path traversal refused)";
			return -1;
		}
		if (n > 255) {
			*why = "has a component longer than 255 bytes";
			return -1;
		}
		if (n && !(n == 1 && s[0] == '.')) {
			if (++depth > ARCHIVE_MAX_DEPTH) {
				*why = "is nested deeper than " ARCHIVE_STR(ARCHIVE_MAX_DEPTH) " directories";
				return -1;
			}
			if (o + n + 2 > outlen) {
				*why = "is too long";
				return -1;
			}
			if (o)
				out[o++] = '/';
			memcpy(out + o, s, n);
			o += n;
		}
		s += n;
		if (*s == '/')
			s++;
	}
	out[o] = '\0';
	return 0;
}

/* ================================================================ extractor */

typedef struct pdir {
	char *rel;
	uint32_t mode, uid, gid;
	int64_t mtime;
	uint32_t mtime_nsec;
} pdir;

typedef struct xctx {
	tar_reader *r;
	int rootfd;
	const archive_xopts *o;
	archive_stats *st;
	const tar_entry *e;
	bool have_root;
	char root[256];                    /* single_root: the top component ("" = the archive root) */
	char pname[NAME_MAX_ + 1];         /* parent directory cached in pfd */
	int pfd;
	pdir *dirs;
	size_t ndirs, capdirs;
	strset files;                      /* regular files this extraction created */
	uint64_t bytes;
	unsigned char *buf;                /* XBUF bytes of file data */
} xctx;

#define XBUF (128u * 1024u)

__attribute__((format(printf, 5, 6))) static int xfail(xctx *x, silo_error *err, silo_code code, int e,
						       const char *fmt, ...)
{
	char prefix[48];
	snprintf(prefix, sizeof prefix, "archive entry %" PRIu64, x->e->index);
	va_list ap;
	va_start(ap, fmt);
	int rc = tar_entry_fail(err, code, e, prefix, x->e->path, fmt, ap);
	va_end(ap);
	return rc;
}

/* Map an archive name to its place below the root fd (normalized, root rules applied). */
static int map_name(xctx *x, const char *in, const char *field, char *out, size_t outlen, silo_error *err)
{
	const char *why;
	char n[NAME_MAX_ + 1];
	if (archive_norm_name(in, n, sizeof n, &why) < 0)
		return xfail(x, err, SILO_ERR_INVALID_CONFIG, 0, "%s %s", field, why);
	if (!x->o->single_root) {
		snprintf(out, outlen, "%s", n);
		return 0;
	}
	size_t c = strcspn(n, "/");
	if (!x->have_root) {
		if (c >= sizeof x->root)
			return xfail(x, err, SILO_ERR_INVALID_CONFIG, 0, "%s: top component too long", field);
		memcpy(x->root, n, c);
		x->root[c] = '\0';
		x->have_root = true;
	}
	const char *rest;
	if (!x->root[0]) {
		rest = n;
	} else if (c == strlen(x->root) && !memcmp(n, x->root, c)) {
		rest = n[c] ? n + c + 1 : "";
	} else {
		return xfail(x, err, SILO_ERR_INVALID_CONFIG, 0, "%s is outside the archive's top entry \"%s\" (refused)",
			     field, x->root);
	}
	const char *top = x->o->rename_root ? x->o->rename_root : x->root;
	int k = snprintf(out, outlen, "%s%s%s", top, top[0] && rest[0] ? "/" : "", rest);
	if (k < 0 || (size_t)k >= outlen)
		return xfail(x, err, SILO_ERR_INVALID_CONFIG, 0, "%s is too long", field);
	return 0;
}

/* Open (creating what is missing, 0755) the directory rel below the root, one
 * component at a time, never following a symlink. Returns a new fd. */
static int open_dir_below(xctx *x, const char *rel, silo_error *err)
{
	int cur = openat(x->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cur < 0)
		return xfail(x, err, SILO_ERR_IO_ERROR, errno, "open the destination");
	const char *s = rel;
	while (*s) {
		size_t n = strcspn(s, "/");
		char comp[256];
		memcpy(comp, s, n);
		comp[n] = '\0';
		int nfd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0 && errno == ENOENT) {
			if (mkdirat(cur, comp, 0755) < 0 && errno != EEXIST) {
				int e = errno;
				close(cur);
				return xfail(x, err, SILO_ERR_IO_ERROR, e, "create directory %.*s", (int)(s - rel + n), rel);
			}
			nfd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		int e = errno;
		close(cur);
		if (nfd < 0) {
			if (e == ELOOP || e == ENOTDIR)
				return xfail(x, err, SILO_ERR_INVALID_CONFIG, 0,
					     "%.*s is a symlink or not a directory (nothing is written through it)",
					     (int)(s - rel + n), rel);
			return xfail(x, err, SILO_ERR_IO_ERROR, e, "open directory %.*s", (int)(s - rel + n), rel);
		}
		cur = nfd;
		s += n;
		if (*s == '/')
			s++;
	}
	return cur;
}

/* The parent directory fd of rel (cached) and its last component. */
static int parent_of(xctx *x, const char *rel, const char **base, silo_error *err)
{
	const char *slash = strrchr(rel, '/');
	char parent[NAME_MAX_ + 1];
	size_t pl = slash ? (size_t)(slash - rel) : 0;
	memcpy(parent, rel, pl);
	parent[pl] = '\0';
	*base = slash ? slash + 1 : rel;
	if (x->pfd >= 0 && !strcmp(parent, x->pname))
		return x->pfd;
	if (x->pfd >= 0)
		close(x->pfd);
	x->pfd = -1;
	int fd = open_dir_below(x, parent, err);
	if (fd < 0)
		return -1;
	x->pfd = fd;
	snprintf(x->pname, sizeof x->pname, "%s", parent);
	return fd;
}

/* Make room for a new leaf: unlink what is there unless it is a directory
 * (1 = a directory is there, 0 = free now). */
static int clear_leaf(xctx *x, int pfd, const char *base, silo_error *err)
{
	struct stat st;
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : xfail(x, err, SILO_ERR_IO_ERROR, errno, "stat");
	if (S_ISDIR(st.st_mode))
		return 1;
	if (unlinkat(pfd, base, 0) < 0)
		return xfail(x, err, SILO_ERR_IO_ERROR, errno, "replace the existing entry");
	return 0;
}

/* An owner this system cannot represent (an id outside a user namespace's
 * map: EINVAL) or may not give (EPERM): the entry keeps the extractor's, as
 * tar does when it is not root. */
static bool owner_unmapped(int e)
{
	return e == EINVAL || e == EPERM;
}

static uint32_t leaf_mode(xctx *x)
{
	uint32_t m = x->e->mode & 07777;
	return x->o->keep_setid ? m : m & ~(uint32_t)(S_ISUID | S_ISGID);
}

static void times_of(const tar_entry *e, struct timespec ts[2])
{
	ts[0].tv_sec = ts[1].tv_sec = (time_t)e->mtime;
	ts[0].tv_nsec = ts[1].tv_nsec = e->mtime_nsec < 1000000000u ? (long)e->mtime_nsec : 0;
}

static int extract_file(xctx *x, int pfd, const char *base, const char *rel, silo_error *err)
{
	int c = clear_leaf(x, pfd, base, err);
	if (c < 0)
		return -1;
	if (c > 0)
		return xfail(x, err, SILO_ERR_INVALID_CONFIG, EISDIR, "a directory of that name exists");
	if (x->o->max_bytes && x->bytes + x->e->size > x->o->max_bytes)
		return xfail(x, err, SILO_ERR_RESOURCE_EXCEEDED, 0, "the archive holds more than %" PRIu64 " bytes of files",
			     x->o->max_bytes);
	int fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return xfail(x, err, SILO_ERR_IO_ERROR, errno, "create");
	unsigned char *buf = x->buf;
	int rc = 0;
	for (;;) {
		ssize_t n = tar_read(x->r, buf, XBUF, err);
		if (n < 0) {
			rc = -1;
			break;
		}
		if (n == 0)
			break;
		for (size_t off = 0; off < (size_t)n;) {
			ssize_t k = write(fd, buf + off, (size_t)n - off);
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0) {
				rc = xfail(x, err, SILO_ERR_IO_ERROR, errno, "write");
				break;
			}
			off += (size_t)k;
		}
		if (rc < 0)
			break;
	}
	struct timespec ts[2];
	times_of(x->e, ts);
	if (rc == 0 && x->o->owners && fchown(fd, x->e->uid, x->e->gid) < 0 && !owner_unmapped(errno))
		rc = xfail(x, err, SILO_ERR_IO_ERROR, errno, "chown");
	if (rc == 0 && (fchmod(fd, leaf_mode(x)) < 0 || futimens(fd, ts) < 0))
		rc = xfail(x, err, SILO_ERR_IO_ERROR, errno, "set mode and time");
	if (close(fd) < 0 && rc == 0)
		rc = xfail(x, err, SILO_ERR_IO_ERROR, errno, "close");
	if (rc == 0) {
		x->st->files++;
		x->st->bytes += x->e->size;
		x->bytes += x->e->size;
		if (strset_add(&x->files, rel) < 0)
			rc = xfail(x, err, SILO_ERR_IO_ERROR, ENOMEM, "remember");
	}
	return rc;
}

static int extract_dir(xctx *x, int pfd, const char *base, const char *rel, silo_error *err)
{
	if (rel[0]) {
		if (mkdirat(pfd, base, 0700) < 0) {
			if (errno != EEXIST)
				return xfail(x, err, SILO_ERR_IO_ERROR, errno, "mkdir");
			int c = clear_leaf(x, pfd, base, err);   /* a file or symlink there is replaced */
			if (c < 0)
				return -1;
			if (c == 0 && mkdirat(pfd, base, 0700) < 0)
				return xfail(x, err, SILO_ERR_IO_ERROR, errno, "mkdir");
		}
	}
	if (x->ndirs == x->capdirs) {
		size_t nc = x->capdirs ? x->capdirs * 2 : 64;
		pdir *nd = realloc(x->dirs, nc * sizeof *nd);
		if (!nd)
			return xfail(x, err, SILO_ERR_IO_ERROR, ENOMEM, "remember");
		x->dirs = nd;
		x->capdirs = nc;
	}
	pdir *d = &x->dirs[x->ndirs];
	if (!(d->rel = strdup(rel)))
		return xfail(x, err, SILO_ERR_IO_ERROR, ENOMEM, "remember");
	d->mode = leaf_mode(x);
	d->uid = x->e->uid;
	d->gid = x->e->gid;
	d->mtime = x->e->mtime;
	d->mtime_nsec = x->e->mtime_nsec;
	x->ndirs++;
	x->st->dirs++;
	return 0;
}

static int extract_symlink(xctx *x, int pfd, const char *base, silo_error *err)
{
	int c = clear_leaf(x, pfd, base, err);
	if (c < 0)
		return -1;
	if (c > 0)
		return xfail(x, err, SILO_ERR_INVALID_CONFIG, EISDIR, "a directory of that name exists");
	if (symlinkat(x->e->link, pfd, base) < 0)
		return xfail(x, err, SILO_ERR_IO_ERROR, errno, "symlink");
	struct timespec ts[2];
	times_of(x->e, ts);
	if (x->o->owners && fchownat(pfd, base, x->e->uid, x->e->gid, AT_SYMLINK_NOFOLLOW) < 0 && !owner_unmapped(errno))
		return xfail(x, err, SILO_ERR_IO_ERROR, errno, "chown");
	utimensat(pfd, base, ts, AT_SYMLINK_NOFOLLOW);   /* best effort: some file systems refuse it on symlinks */
	x->st->symlinks++;
	return 0;
}

static int extract_hardlink(xctx *x, int pfd, const char *base, silo_error *err)
{
	char target[NAME_MAX_ + 1];
	if (map_name(x, x->e->link, "the link target", target, sizeof target, err) < 0)
		return -1;
	if (!strset_has(&x->files, target))
		return xfail(x, err, SILO_ERR_INVALID_CONFIG, 0,
			     "hard link to \"%.200s\", which is not a file extracted earlier from this archive (refused)",
			     target);
	const char *tbase;
	char tparent[NAME_MAX_ + 1];
	const char *slash = strrchr(target, '/');
	size_t pl = slash ? (size_t)(slash - target) : 0;
	memcpy(tparent, target, pl);
	tparent[pl] = '\0';
	tbase = slash ? slash + 1 : target;
	int tfd = open_dir_below(x, tparent, err);
	if (tfd < 0)
		return -1;
	int c = clear_leaf(x, pfd, base, err);
	int rc = c < 0 ? -1 : c > 0 ? xfail(x, err, SILO_ERR_INVALID_CONFIG, EISDIR, "a directory of that name exists") : 0;
	struct stat st;
	if (rc == 0 && (fstatat(tfd, tbase, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)))
		rc = xfail(x, err, SILO_ERR_INVALID_CONFIG, 0, "the link target is no longer a regular file (refused)");
	if (rc == 0 && linkat(tfd, tbase, pfd, base, 0) < 0)
		rc = xfail(x, err, SILO_ERR_IO_ERROR, errno, "link");
	close(tfd);
	if (rc == 0)
		x->st->hardlinks++;
	return rc;
}

static int extract_entry(xctx *x, silo_error *err)
{
	const tar_entry *e = x->e;
	char rel[NAME_MAX_ + 1];
	if (map_name(x, e->path, "the name", rel, sizeof rel, err) < 0)
		return -1;
	if (!rel[0] && e->type != TAR_DIR)
		return xfail(x, err, SILO_ERR_INVALID_CONFIG, 0, "only a directory may name the destination itself");
	if (e->type == TAR_CHR || e->type == TAR_BLK || e->type == TAR_FIFO)
		return xfail(x, err, SILO_ERR_INVALID_CONFIG, 0, "%s entries are not extracted (refused)",
			     e->type == TAR_FIFO ? "FIFO" : "device");
	const char *base = rel;
	int pfd = x->rootfd;
	if (rel[0] && (pfd = parent_of(x, rel, &base, err)) < 0)
		return -1;
	switch (e->type) {
	case TAR_REG: return extract_file(x, pfd, base, rel, err);
	case TAR_DIR: return extract_dir(x, pfd, base, rel, err);
	case TAR_SYMLINK: return extract_symlink(x, pfd, base, err);
	case TAR_HARDLINK: return extract_hardlink(x, pfd, base, err);
	default: return xfail(x, err, SILO_ERR_INVALID_CONFIG, 0, "unsupported entry type");
	}
}

/* Directory modes and times, deepest first (after their contents). */
static int finish_dirs(xctx *x, silo_error *err)
{
	int rc = 0;
	for (size_t i = x->ndirs; i-- > 0;) {
		pdir *d = &x->dirs[i];
		if (!d->rel[0])
			continue;   /* the destination itself keeps its own mode */
		const char *base;
		int pfd = parent_of(x, d->rel, &base, err);
		if (pfd < 0)
			return -1;
		int fd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;   /* replaced by a later entry */
		struct timespec ts[2] = {{.tv_sec = (time_t)d->mtime, .tv_nsec = d->mtime_nsec < 1000000000u ? (long)d->mtime_nsec : 0}};
		ts[1] = ts[0];
		if (x->o->owners && fchown(fd, d->uid, d->gid) < 0 && !owner_unmapped(errno) && rc == 0)
			rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "archive: chown directory %.200s", d->rel);
		if ((fchmod(fd, d->mode) < 0 || futimens(fd, ts) < 0) && rc == 0)
			rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "archive: set mode of directory %.200s", d->rel);
		close(fd);
	}
	return rc;
}

int archive_extract(tar_reader *r, int rootfd, const archive_xopts *o, archive_stats *st, silo_error *err)
{
	static const archive_xopts none;
	archive_stats dummy = {0};
	xctx x = {.r = r, .rootfd = rootfd, .o = o ? o : &none, .st = st ? st : &dummy, .pfd = -1};
	uint64_t max = x.o->max_entries ? x.o->max_entries : ARCHIVE_MAX_ENTRIES;
	if (!(x.buf = malloc(XBUF)))
		return silo_fail(err, SILO_ERR_IO_ERROR, ENOMEM, "archive");
	int rc = 0;
	for (;;) {
		const tar_entry *e;
		int n = tar_next(r, &e, err);
		if (n <= 0) {
			rc = n;
			break;
		}
		x.e = e;
		if (++x.st->entries > max) {
			rc = xfail(&x, err, SILO_ERR_RESOURCE_EXCEEDED, 0, "the archive has more than %" PRIu64 " entries", max);
			break;
		}
		if ((rc = extract_entry(&x, err)) < 0)
			break;
	}
	if (rc == 0)
		rc = tar_finish(r, err);
	if (rc == 0)
		rc = finish_dirs(&x, err);
	if (x.pfd >= 0)
		close(x.pfd);
	for (size_t i = 0; i < x.ndirs; i++)
		free(x.dirs[i].rel);
	free(x.dirs);
	free(x.buf);
	strset_free(&x.files);
	return rc;
}
