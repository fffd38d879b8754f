/* SPDX-License-Identifier: Apache-2.0
 * Tree digests (trust.h) and the verdict that spares a namespace start from
 * re-hashing its base layer (tree.h, docs/security.md).
 *
 * Digest: SHA-256 of "silo-tree-v1\n" and one line per entry, sorted by path
 * (bytes; the root is "/"):
 *   d <hex path> <mode> <uid> <gid> - - - <xattrs>
 *   f <hex path> <mode> <uid> <gid> <size> <sha256 of the content> - <xattrs>
 *   l <hex path> - - - - - <hex target> -
 * mode: the 07777 bits in octal; xattrs: "-" or "<hex name>=<hex value>" joined
 * by "," in name order. A symlink is named by its path and target only (its
 * owner can change without a trace in its directory, and is never used).
 *
 * Verdict: <trust state>/trees/<sha256 of the root path>.verdict, written
 * (atomically) after each full walk:
 *   silo-tree-verdict 1
 *   root <hex path>
 *   digest <sha256> <entries> <bytes>
 *   e <hex path> <dev> <ino> <st_mode> <uid> <gid> <size> <mtime s.ns> <ctime s.ns>
 * with an "e" line for the root, every directory and every regular file. Any
 * change to the tree changes the ctime of a listed entry: a file's content,
 * mode, owner or xattrs its own ctime; adding, removing, renaming or swapping
 * an entry (a symlink too) its directory's. ctime cannot be set from user space
 * (only by moving the clock, which is the host operator's power). Each entry's
 * stat is taken (on the open fd) before it is read, so a change during a walk
 * shows at the next check. A verdict that differs in any field is discarded and
 * the tree walked again. The verdict lives beside the keys, not in the cache, so
 * whoever can write the cache cannot forge one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/util.h"
#include "trust/tree.h"

#define TREE_MAX_DEPTH 256
#define TREE_XATTR_MAX (64u << 10)
#define VERDICT_MAX (64u << 20)

typedef struct tent {
	char *path;          /* "/" or "/a/b" */
	char type;           /* 'd', 'f', 'l' */
	struct stat st;
	char sha[65];
	char *target;        /* symlinks */
	char *xattrs;        /* serialized, NULL = none */
} tent;

typedef struct walk {
	tent *v;
	size_t n, cap;
	uint64_t bytes;
} walk;

static void walk_free(walk *w)
{
	for (size_t i = 0; i < w->n; i++) {
		free(w->v[i].path);
		free(w->v[i].target);
		free(w->v[i].xattrs);
	}
	free(w->v);
	memset(w, 0, sizeof *w);
}

static char *hex_of(const void *p, size_t n)
{
	char *h = xmalloc(n * 2 + 1);
	sodium_bin2hex(h, n * 2 + 1, p, n);
	return h;
}

static tent *add_entry(walk *w, const char *path, char type, silo_error *err)
{
	if (w->n >= TRUST_TREE_MAX_ENTRIES) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "more than %d entries", TRUST_TREE_MAX_ENTRIES);
		return NULL;
	}
	if (w->n == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 256;
		w->v = xrealloc(w->v, w->cap * sizeof *w->v);
	}
	tent *e = &w->v[w->n++];
	memset(e, 0, sizeof *e);
	e->path = xstrdup(path);
	e->type = type;
	return e;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "<hex name>=<hex value>,..." in name order, or NULL when there are none. */
static int read_xattrs(int fd, const char *path, char **out, silo_error *err)
{
	*out = NULL;
	ssize_t ln = flistxattr(fd, NULL, 0);
	if (ln < 0 && (errno == ENOTSUP || errno == EOPNOTSUPP))
		return 0;
	if (ln < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "%s: list xattrs", path);
	if (ln == 0)
		return 0;
	if ((size_t)ln > TREE_XATTR_MAX)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: xattr names over %u bytes", path, TREE_XATTR_MAX);
	cleanup_free char *names = xmalloc((size_t)ln + 1);
	ln = flistxattr(fd, names, (size_t)ln);
	if (ln < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "%s: list xattrs", path);
	names[ln] = '\0';
	char *v[1024];
	size_t nv = 0;
	for (char *p = names; p < names + ln && nv < ARRAY_SIZE(v); p += strlen(p) + 1)
		if (*p)
			v[nv++] = p;
	qsort(v, nv, sizeof *v, cmp_name);
	char *s = xstrdup("");
	size_t total = 0;
	for (size_t i = 0; i < nv; i++) {
		ssize_t vl = fgetxattr(fd, v[i], NULL, 0);
		if (vl < 0 && errno == ENODATA)
			continue;
		if (vl < 0 || (total += (size_t)vl + strlen(v[i])) > TREE_XATTR_MAX) {
			free(s);
			return vl < 0 ? silo_fail(err, SILO_ERR_IO_ERROR, errno, "%s: xattr %s", path, v[i])
				      : silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: xattrs over %u bytes", path,
						  TREE_XATTR_MAX);
		}
		cleanup_free char *val = xmalloc((size_t)vl + 1);
		vl = fgetxattr(fd, v[i], val, (size_t)vl);
		if (vl < 0) {
			free(s);
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "%s: xattr %s", path, v[i]);
		}
		cleanup_free char *hn = hex_of(v[i], strlen(v[i]));
		cleanup_free char *hv = hex_of(val, (size_t)vl);
		char *next = xasprintf("%s%s%s=%s", s, *s ? "," : "", hn, hv);
		free(s);
		s = next;
	}
	if (*s)
		*out = s;
	else
		free(s);
	return 0;
}

static int sha_chunk(void *ud, const void *buf, size_t n, silo_error *err)
{
	(void)err;
	crypto_hash_sha256_update(ud, buf, (unsigned long long)n);
	return 0;
}

/* The stat of fd, refusing an entry that is not what fstatat saw a moment ago. */
static int same_entry(int fd, const struct stat *seen, struct stat *st, const char *path, silo_error *err)
{
	if (fstat(fd, st) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "fstat %s", path);
	if (st->st_ino != seen->st_ino || st->st_dev != seen->st_dev ||
	    (st->st_mode & S_IFMT) != (seen->st_mode & S_IFMT))
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "%s changed while it was read", path);
	return 0;
}

static int walk_dir(walk *w, int dfd, const char *rel, const char *root, int depth, silo_error *err);

static int visit(walk *w, int dfd, const char *name, const char *rel, const char *root, int depth, silo_error *err)
{
	char path[PATH_MAX];
	if ((size_t)snprintf(path, sizeof path, "%s/%s", strcmp(rel, "/") ? rel : "", name) >= sizeof path)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, ENAMETOOLONG, "%s%s/%s", root, rel, name);
	struct stat seen, st;
	if (fstatat(dfd, name, &seen, AT_SYMLINK_NOFOLLOW) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "stat %s%s", root, path);
	if (S_ISLNK(seen.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlinkat(dfd, name, target, sizeof target - 1);
		if (n < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "readlink %s%s", root, path);
		target[n] = '\0';
		tent *e = add_entry(w, path, 'l', err);
		if (!e)
			return -1;
		e->st = seen;
		e->target = xstrdup(target);
		return 0;
	}
	if (!S_ISDIR(seen.st_mode) && !S_ISREG(seen.st_mode))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s%s: a device, FIFO or socket has no place in a signed tree",
				 root, path);
	bool dir = S_ISDIR(seen.st_mode);
	/* O_NONBLOCK: an entry swapped for a FIFO after the stat must not block the open */
	cleanup_close int fd =
		openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (dir ? O_DIRECTORY : 0));
	if (fd < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s%s", root, path);
	char full[PATH_MAX * 2];
	snprintf(full, sizeof full, "%s%s", root, path);
	if (same_entry(fd, &seen, &st, full, err) < 0)
		return -1;
	tent *e = add_entry(w, path, dir ? 'd' : 'f', err);
	if (!e)
		return -1;
	e->st = st;
	if (read_xattrs(fd, full, &e->xattrs, err) < 0)
		return -1;
	if (dir)
		return walk_dir(w, fd, path, root, depth + 1, err);
	crypto_hash_sha256_state hs;
	crypto_hash_sha256_init(&hs);
	if (read_chunks(fd, full, 1u << 16, sha_chunk, &hs, err) < 0)
		return -1;
	unsigned char d[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_final(&hs, d);
	e = &w->v[w->n - 1]; /* (walk_dir may move the array; a file does not) */
	sodium_bin2hex(e->sha, sizeof e->sha, d, sizeof d);
	w->bytes += (uint64_t)st.st_size;
	return 0;
}

static int walk_dir(walk *w, int dfd, const char *rel, const char *root, int depth, silo_error *err)
{
	if (depth > TREE_MAX_DEPTH)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s%s: deeper than %d levels", root, rel, TREE_MAX_DEPTH);
	int dup_fd = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
	if (dup_fd < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "dup");
	DIR *d = fdopendir(dup_fd);
	if (!d) {
		close(dup_fd);
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "opendir %s%s", root, rel);
	}
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		names = xrealloc(names, (n + 1) * sizeof *names);
		names[n++] = xstrdup(de->d_name);
		errno = 0;
	}
	int rerr = errno;
	closedir(d);
	int rc = 0;
	if (rerr)
		rc = silo_fail(err, SILO_ERR_IO_ERROR, rerr, "readdir %s%s", root, rel);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = visit(w, dfd, names[i], rel, root, depth, err);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

static int cmp_tent(const void *a, const void *b)
{
	return strcmp(((const tent *)a)->path, ((const tent *)b)->path);
}

static int full_walk(const char *root, walk *w, silo_error *err)
{
	memset(w, 0, sizeof *w);
	cleanup_close int fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s", root);
	tent *e = add_entry(w, "/", 'd', err);
	if (fstat(fd, &e->st) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "fstat %s", root);
	if (read_xattrs(fd, root, &e->xattrs, err) < 0 || walk_dir(w, fd, "/", root, 0, err) < 0) {
		walk_free(w);
		return -1;
	}
	qsort(w->v, w->n, sizeof *w->v, cmp_tent);
	return 0;
}

static void hash_line(crypto_hash_sha256_state *hs, const char *s)
{
	crypto_hash_sha256_update(hs, (const unsigned char *)s, strlen(s));
}

static void digest_of(const walk *w, trust_tree_info *out)
{
	crypto_hash_sha256_state hs;
	crypto_hash_sha256_init(&hs);
	hash_line(&hs, "silo-tree-v1\n");
	for (size_t i = 0; i < w->n; i++) {
		const tent *e = &w->v[i];
		cleanup_free char *hp = hex_of(e->path, strlen(e->path));
		char *line;
		if (e->type == 'l') {
			cleanup_free char *ht = hex_of(e->target, strlen(e->target));
			line = xasprintf("l %s - - - - - %s -\n", hp, ht);
		} else {
			char size[32] = "-";
			if (e->type == 'f')
				snprintf(size, sizeof size, "%llu", (unsigned long long)e->st.st_size);
			line = xasprintf("%c %s %o %u %u %s %s - %s\n", e->type, hp, (unsigned)(e->st.st_mode & 07777),
					 (unsigned)e->st.st_uid, (unsigned)e->st.st_gid, size, e->type == 'f' ? e->sha : "-",
					 e->xattrs ? e->xattrs : "-");
		}
		hash_line(&hs, line);
		free(line);
	}
	unsigned char d[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_final(&hs, d);
	sodium_bin2hex(out->sha256, sizeof out->sha256, d, sizeof d);
	out->entries = w->n;
	out->bytes = w->bytes;
}

int trust_tree_digest(const char *dir, trust_tree_info *out, silo_error *err)
{
	memset(out, 0, sizeof *out);
	if (sodium_init() < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "libsodium initialization failed");
	char root[PATH_MAX];
	if (!realpath(dir, root))
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "tree %s", dir);
	walk w;
	if (full_walk(root, &w, err) < 0)
		return -1;
	digest_of(&w, out);
	walk_free(&w);
	return 0;
}

/* ---------------------------------------------------------------- verdicts */

static void stat_fields(const struct stat *st, char *buf, size_t len)
{
	snprintf(buf, len, "%llu %llu %o %u %u %lld %lld.%09ld %lld.%09ld", (unsigned long long)st->st_dev,
		 (unsigned long long)st->st_ino, (unsigned)st->st_mode, (unsigned)st->st_uid, (unsigned)st->st_gid,
		 (long long)st->st_size, (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
		 (long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
}

void trust_state_entry(const char *sub, const char *key, const char *ext, char *buf, size_t len)
{
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, (const unsigned char *)key, strlen(key));
	char hex[65], st[PATH_MAX];
	sodium_bin2hex(hex, sizeof hex, h, sizeof h);
	trust_state_dir(st, sizeof st);
	snprintf(buf, len, "%s/%s/%s%s", st, sub, hex, ext);
}

static void verdict_path(const char *root, char *buf, size_t len)
{
	trust_state_entry("trees", root, ".verdict", buf, len);
}

/* Does the recorded verdict still describe the tree? Fills out when it does. */
static bool verdict_holds(const char *root, const char *vpath, trust_tree_info *out)
{
	cleanup_free char *text = NULL;
	size_t len = 0;
	if (read_file(vpath, VERDICT_MAX, &text, &len, NULL) < 0)
		return false;
	cleanup_free char *hroot = hex_of(root, strlen(root));
	char *save = NULL;
	char *line = strtok_r(text, "\n", &save);
	if (!line || strcmp(line, "silo-tree-verdict 1") != 0)
		return false;
	line = strtok_r(NULL, "\n", &save);
	if (!line || strncmp(line, "root ", 5) != 0 || strcmp(line + 5, hroot) != 0)
		return false;
	line = strtok_r(NULL, "\n", &save);
	trust_tree_info info = {0};
	unsigned long long ent = 0, bytes = 0;
	if (!line || sscanf(line, "digest %64s %llu %llu", info.sha256, &ent, &bytes) != 3 || strlen(info.sha256) != 64)
		return false;
	size_t seen = 0;
	while ((line = strtok_r(NULL, "\n", &save))) {
		char hp[2 * PATH_MAX + 1];
		int off = 0;
		if (sscanf(line, "e %8192s %n", hp, &off) != 1 || !off)
			return false;
		char rel[PATH_MAX];
		size_t rl = 0;
		if (sodium_hex2bin((unsigned char *)rel, sizeof rel - 1, hp, strlen(hp), NULL, &rl, NULL) != 0 || !rl ||
		    rel[0] != '/')
			return false;
		rel[rl] = '\0';
		char full[PATH_MAX * 2];
		snprintf(full, sizeof full, "%s%s", root, strcmp(rel, "/") ? rel : "");
		struct stat st;
		if (lstat(full, &st) < 0)
			return false;
		char now[256];
		stat_fields(&st, now, sizeof now);
		if (strcmp(now, line + off) != 0)
			return false;
		seen++;
	}
	if (!seen)
		return false;
	info.entries = ent;
	info.bytes = bytes;
	*out = info;
	return true;
}

static void write_verdict(const char *root, const char *vpath, const walk *w, const trust_tree_info *info)
{
	size_t cap = 256 + w->n * 160, len = 0;
	char *buf = xmalloc(cap);
	cleanup_free char *hroot = hex_of(root, strlen(root));
	len += (size_t)snprintf(buf, cap, "silo-tree-verdict 1\nroot %s\ndigest %s %llu %llu\n", hroot, info->sha256,
				(unsigned long long)info->entries, (unsigned long long)info->bytes);
	for (size_t i = 0; i < w->n; i++) {
		const tent *e = &w->v[i];
		if (e->type == 'l')
			continue;
		cleanup_free char *hp = hex_of(e->path, strlen(e->path));
		char f[256];
		stat_fields(&e->st, f, sizeof f);
		size_t need = strlen(hp) + strlen(f) + 8;
		if (len + need >= cap) {
			cap = (len + need) * 2;
			buf = xrealloc(buf, cap);
		}
		len += (size_t)snprintf(buf + len, cap - len, "e %s %s\n", hp, f);
	}
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", vpath);
	*strrchr(dir, '/') = '\0';
	/* best effort: without a verdict the next check walks the tree again. Two walks at
	 * once (silod starting two sandboxes) each write a whole verdict of their own
	 * (write_file_atomic uses a temporary name per call), the last rename wins. */
	if (len <= VERDICT_MAX && mkdir_p(dir, 0755) == 0)
		(void)write_file_atomic(vpath, buf, len, 0644, NULL);
	free(buf);
}

int tree_verified_digest(const char *root, trust_tree_info *out, silo_error *err)
{
	if (sodium_init() < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "libsodium initialization failed");
	char vpath[PATH_MAX + 128];
	verdict_path(root, vpath, sizeof vpath);
	if (verdict_holds(root, vpath, out))
		return 0;
	walk w;
	if (full_walk(root, &w, err) < 0)
		return -1;
	digest_of(&w, out);
	write_verdict(root, vpath, &w, out);
	walk_free(&w);
	return 0;
}
