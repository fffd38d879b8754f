/* SPDX-License-Identifier: Apache-2.0
 * Guest image store (image.h). The manifest is written by images/build-image.sh
 * and rewritten here by image_remove(); both hold $CACHE/images/.manifest.lock
 * (flock) while they read-modify-write it.
 */
#include "image/image.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/lockfile.h"
#include "common/util.h"

const char *image_kind_name(image_kind k)
{
	switch (k) {
	case IMAGE_KIND_INITRAMFS:
		return "initramfs";
	case IMAGE_KIND_EXT4:
		return "ext4";
	}
	return "unknown";
}

void image_manifest_path(char *buf, size_t len)
{
	snprintf(buf, len, "%s/images/manifest.json", silo_cache_dir());
}

bool image_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > IMAGE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || ((c == '-' || c == '_') && i > 0);
		if (!ok)
			return false;
	}
	return true;
}

static bool sha256_hex_valid(const char *s)
{
	if (!s || strlen(s) != 64)
		return false;
	for (size_t i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static bool abs_path_valid(const char *p)
{
	size_t n = p ? strlen(p) : 0;
	if (n < 2 || n >= PATH_MAX || p[0] != '/')
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			return false;
	for (const char *q = strstr(p, "/.."); q; q = strstr(q + 1, "/.."))
		if (q[3] == '/' || q[3] == '\0')
			return false;
	return true;
}

void image_entry_free(image_entry *e)
{
	if (!e)
		return;
	free(e->file.path);
	free(e->initrd.path);
	free(e->kernel_path);
	for (size_t i = 0; i < e->n_layers; i++)
		free(e->layers[i].path);
	free(e->layers);
	memset(e, 0, sizeof *e);
}

void image_entries_free(image_entry *e, size_t n)
{
	if (!e)
		return;
	for (size_t i = 0; i < n; i++)
		image_entry_free(&e[i]);
	free(e);
}

static int parse_file(json_t *o, const char *ename, const char *field, image_file *f, silo_error *err)
{
	const char *path = json_string_value(json_object_get(o, "path"));
	const char *sha = json_string_value(json_object_get(o, "sha256"));
	json_t *size = json_object_get(o, "size");
	if (!abs_path_valid(path))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "image manifest: image \"%s\": %spath: expected an absolute path", ename, field);
	if (!sha256_hex_valid(sha))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "image manifest: image \"%s\": %ssha256: expected 64 lowercase hex digits",
				 ename, field);
	if (!json_is_integer(size) || json_integer_value(size) < 0)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "image manifest: image \"%s\": %ssize: expected a non-negative integer", ename,
				 field);
	f->path = xstrdup(path);
	memcpy(f->sha256, sha, 65);
	f->size = (uint64_t)json_integer_value(size);
	return 0;
}

/* "oci"."layers": [{diff_id, path[, tree]}], bottom first (absent: none). */
static int parse_layers(json_t *o, const char *name, image_entry *e, silo_error *err)
{
	json_t *oci = json_object_get(o, "oci");
	if (!oci || json_is_null(oci))
		return 0;
	json_t *ls = json_object_get(oci, "layers");
	if (!json_is_object(oci) || (ls && !json_is_array(ls)))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "image manifest: image \"%s\": oci.layers: expected an array",
				 name);
	size_t n = json_array_size(ls);
	if (n > IMAGE_MAX_LAYERS)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "image manifest: image \"%s\": oci.layers: %zu layers (at most %d)", name, n, IMAGE_MAX_LAYERS);
	e->layers = xcalloc(n ? n : 1, sizeof *e->layers);
	for (size_t i = 0; i < n; i++, e->n_layers++) {
		json_t *l = json_array_get(ls, i);
		const char *d = json_string_value(json_object_get(l, "diff_id"));
		const char *path = json_string_value(json_object_get(l, "path"));
		json_t *t = json_object_get(l, "tree");
		const char *field = !d || strlen(d) != 71 || strncmp(d, "sha256:", 7) || !sha256_hex_valid(d + 7) ? "diff_id"
				    : !abs_path_valid(path)                                                       ? "path"
				    : t && !sha256_hex_valid(json_string_value(t))                                ? "tree"
														  : NULL;
		if (field)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "image manifest: image \"%s\": oci.layers[%zu].%s: %s",
					 name, i, field,
					 !strcmp(field, "path") ? "expected an absolute path"
					 : !strcmp(field, "tree") ? "expected 64 lowercase hex digits"
								  : "expected sha256:<64 lowercase hex digits>");
		image_layer *L = &e->layers[i];
		memcpy(L->diff_id, d, 72);
		L->path = xstrdup(path);
		if (t)
			memcpy(L->tree, json_string_value(t), 65);
	}
	return 0;
}

/* Element idx of the manifest's list ("images", "trees"): an object with a
 * valid name, copied into out (len bytes). Its name, or NULL with err set. */
static const char *named_object(json_t *o, const char *list, size_t idx, char *out, size_t len, silo_error *err)
{
	if (!json_is_object(o)) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "image manifest: %s[%zu]: expected an object", list, idx);
		return NULL;
	}
	const char *name = json_string_value(json_object_get(o, "name"));
	if (!image_name_valid(name)) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "image manifest: %s[%zu].name: expected 1-64 of [a-z0-9_-]", list,
			  idx);
		return NULL;
	}
	snprintf(out, len, "%s", name);
	return name;
}

static int parse_entry(json_t *o, size_t idx, image_entry *e, silo_error *err)
{
	const char *name = named_object(o, "images", idx, e->name, sizeof e->name, err);
	if (!name)
		return -1;
	const char *kind = json_string_value(json_object_get(o, "kind"));
	if (kind && !strcmp(kind, "initramfs"))
		e->kind = IMAGE_KIND_INITRAMFS;
	else if (kind && !strcmp(kind, "ext4"))
		e->kind = IMAGE_KIND_EXT4;
	else
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "image manifest: image \"%s\": kind: expected \"initramfs\" or \"ext4\"", name);
	if (parse_file(o, name, "", &e->file, err) < 0)
		return -1;
	json_t *ird = json_object_get(o, "initrd");
	if (e->kind == IMAGE_KIND_EXT4) {
		if (!json_is_object(ird))
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "image manifest: image \"%s\": initrd: an ext4 image needs its loader initramfs",
					 name);
		if (parse_file(ird, name, "initrd.", &e->initrd, err) < 0)
			return -1;
	} else if (ird && !json_is_null(ird)) {
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "image manifest: image \"%s\": initrd: only ext4 images have one", name);
	}
	const char *created = json_string_value(json_object_get(o, "created"));
	if (created && strlen(created) < sizeof e->created)
		snprintf(e->created, sizeof e->created, "%s", created);
	if (parse_layers(o, name, e, err) < 0)
		return -1;
	json_t *k = json_object_get(o, "kernel");
	if (k && json_is_object(k)) {
		const char *key = json_string_value(json_object_get(k, "key"));
		const char *kp = json_string_value(json_object_get(k, "path"));
		if (key && strlen(key) < sizeof e->kernel_key)
			snprintf(e->kernel_key, sizeof e->kernel_key, "%s", key);
		if (kp) {
			if (!abs_path_valid(kp))
				return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
						 "image manifest: image \"%s\": kernel.path: expected an absolute path",
						 name);
			e->kernel_path = xstrdup(kp);
		}
		json_t *ks = json_object_get(k, "sha256"), *kz = json_object_get(k, "size");
		if (ks) {
			const char *h = json_string_value(ks);
			if (!h || strlen(h) != 64 || strspn(h, "0123456789abcdef") != 64)
				return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
						 "image manifest: image \"%s\": kernel.sha256: expected 64 lowercase hex digits",
						 name);
			snprintf(e->kernel_sha256, sizeof e->kernel_sha256, "%s", h);
			if (!json_is_integer(kz) || json_integer_value(kz) < 0)
				return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
						 "image manifest: image \"%s\": kernel.size: expected a non-negative integer",
						 name);
			e->kernel_size = (uint64_t)json_integer_value(kz);
		}
	}
	return 0;
}

static int parse_tree(json_t *o, size_t idx, image_tree *t, silo_error *err)
{
	const char *name = named_object(o, "trees", idx, t->name, sizeof t->name, err);
	if (!name)
		return -1;
	const char *path = json_string_value(json_object_get(o, "path"));
	const char *sha = json_string_value(json_object_get(o, "sha256"));
	json_t *ent = json_object_get(o, "entries"), *size = json_object_get(o, "size");
	if (!abs_path_valid(path))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "image manifest: tree \"%s\": path: expected an absolute path",
				 name);
	if (!sha256_hex_valid(sha))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "image manifest: tree \"%s\": sha256: expected 64 lowercase hex digits", name);
	if (!json_is_integer(ent) || json_integer_value(ent) < 1 || !json_is_integer(size) || json_integer_value(size) < 0)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "image manifest: tree \"%s\": %s: expected a %s integer", name,
				 json_is_integer(ent) && json_integer_value(ent) >= 1 ? "size" : "entries",
				 json_is_integer(ent) && json_integer_value(ent) >= 1 ? "non-negative" : "positive");
	t->path = xstrdup(path);
	memcpy(t->sha256, sha, 65);
	t->entries = (uint64_t)json_integer_value(ent);
	t->size = (uint64_t)json_integer_value(size);
	const char *created = json_string_value(json_object_get(o, "created"));
	if (created && strlen(created) < sizeof t->created)
		snprintf(t->created, sizeof t->created, "%s", created);
	return 0;
}

void image_trees_free(image_tree *t, size_t n)
{
	if (!t)
		return;
	for (size_t i = 0; i < n; i++)
		free(t[i].path);
	free(t);
}

static int parse_trees(json_t *root, const image_entry *imgs, size_t nimg, image_tree **out, size_t *nt,
		       silo_error *err)
{
	json_t *trees = json_object_get(root, "trees");
	if (!trees || json_is_null(trees))
		return 0;
	size_t total = json_array_size(trees);
	if (!json_is_array(trees) || total > IMAGE_MAX_ENTRIES)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "image manifest: trees: expected an array of at most %d",
				 IMAGE_MAX_ENTRIES);
	image_tree *v = xcalloc(total ? total : 1, sizeof *v);
	size_t cnt = 0;
	for (size_t i = 0; i < total; i++, cnt++) {
		if (parse_tree(json_array_get(trees, i), i, &v[cnt], err) < 0)
			goto fail;
		bool dup = false;
		for (size_t j = 0; j < cnt; j++)
			dup |= !strcmp(v[j].name, v[cnt].name);
		for (size_t j = 0; j < nimg; j++)
			dup |= !strcmp(imgs[j].name, v[cnt].name);
		if (dup) {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "image manifest: name \"%s\" listed twice", v[cnt].name);
			goto fail;
		}
	}
	*out = v;
	*nt = cnt;
	return 0;
fail:
	image_trees_free(v, cnt + 1);
	return -1;
}

int image_manifest_parse_all(const char *text, size_t len, image_entry **out, size_t *n, image_tree **t,
			     size_t *nt, silo_error *err)
{
	*out = NULL;
	*n = 0;
	if (t) {
		*t = NULL;
		*nt = 0;
	}
	if (len > IMAGE_MANIFEST_MAX)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "image manifest: %zu bytes (limit %u)", len,
				 IMAGE_MANIFEST_MAX);
	json_error_t jerr;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "image manifest: line %d col %d: %s",
				 jerr.line, jerr.column, jerr.text);
	int rc = -1;
	image_entry *v = NULL;
	size_t cnt = 0;
	json_t *imgs = json_object_get(root, "images");
	if (!json_is_object(root) || !json_is_array(imgs)) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "image manifest: expected {\"images\": [...]}");
		goto out;
	}
	size_t total = json_array_size(imgs);
	if (total > IMAGE_MAX_ENTRIES) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "image manifest: %zu images (limit %d)", total,
			  IMAGE_MAX_ENTRIES);
		goto out;
	}
	v = xcalloc(total ? total : 1, sizeof *v);
	for (size_t i = 0; i < total; i++) {
		if (parse_entry(json_array_get(imgs, i), i, &v[cnt], err) < 0) {
			image_entry_free(&v[cnt]);
			goto out;
		}
		for (size_t j = 0; j < cnt; j++)
			if (!strcmp(v[j].name, v[cnt].name)) {
				silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "image manifest: image \"%s\" listed twice",
					  v[cnt].name);
				image_entry_free(&v[cnt]);
				goto out;
			}
		cnt++;
	}
	image_tree *tv = NULL;
	size_t tn = 0;
	if (parse_trees(root, v, cnt, &tv, &tn, err) < 0)
		goto out;
	if (t) {
		*t = tv;
		*nt = tn;
	} else {
		image_trees_free(tv, tn);
	}
	*out = v;
	*n = cnt;
	v = NULL;
	rc = 0;
out:
	if (v)
		image_entries_free(v, cnt);
	json_decref(root);
	return rc;
}

int image_manifest_parse(const char *text, size_t len, image_entry **out, size_t *n, silo_error *err)
{
	return image_manifest_parse_all(text, len, out, n, NULL, NULL, err);
}

/* Read and parse the manifest file (a missing one is empty). */
static int read_manifest(image_entry **out, size_t *n, image_tree **t, size_t *nt, silo_error *err)
{
	char path[PATH_MAX];
	image_manifest_path(path, sizeof path);
	*out = NULL;
	*n = 0;
	if (t) {
		*t = NULL;
		*nt = 0;
	}
	char *text = NULL;
	size_t len = 0;
	silo_error e2 = {0};
	if (read_file(path, IMAGE_MANIFEST_MAX, &text, &len, &e2) < 0) {
		if (e2.sys_errno == ENOENT)
			return 0;
		if (err)
			*err = e2;
		silo_error_prefix(err, "image manifest %s", path);
		return -1;
	}
	int rc = image_manifest_parse_all(text, len, out, n, t, nt, err);
	free(text);
	if (rc < 0)
		silo_error_prefix(err, "%s", path);
	return rc;
}

int image_list_trees(image_tree **out, size_t *n, silo_error *err)
{
	image_entry *v = NULL;
	size_t nv = 0;
	if (read_manifest(&v, &nv, out, n, err) < 0)
		return -1;
	image_entries_free(v, nv);
	return 0;
}

int image_list(image_entry **out, size_t *n, silo_error *err)
{
	return read_manifest(out, n, NULL, NULL, err);
}

/* Images `silo image build` knows (images/build-image.sh). */
static const char *const buildable[] = {"base", "python", "namespace"};

/* Edit distance (insert, delete, substitute, swap of neighbours), capped at 9. */
static unsigned edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return 9;
	unsigned d[65][65];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = (unsigned)i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			unsigned c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			c = MIN(c, d[i - 1][j] + 1);
			c = MIN(c, d[i][j - 1] + 1);
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
				c = MIN(c, d[i - 2][j - 2] + 1);
			d[i][j] = c;
		}
	return MIN(d[la][lb], 9u);
}

/* The error for a name not in the store: the closest known or buildable name
 * (a typo), how to build it, or how to get one. */
static int lookup_miss(const char *name, const image_entry *v, size_t n, silo_error *err)
{
	const char *best = NULL;
	unsigned bd = strlen(name) > 4 ? 2 : 1;   /* at most this many edits */
	bool best_built = false;
	for (size_t i = 0; i < n + ARRAY_SIZE(buildable); i++) {
		const char *c = i < n ? v[i].name : buildable[i - n];
		unsigned dd = edit_distance(name, c);
		if (strcmp(c, name) && dd <= bd && (!best || dd < edit_distance(name, best))) {
			best = c;
			best_built = i < n;
		}
	}
	bool can_build = false;
	for (size_t i = 0; i < ARRAY_SIZE(buildable); i++)
		can_build |= !strcmp(buildable[i], name);
	if (can_build)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, ENOENT,
				 "image: no image named \"%s\" in the image store (build it: silo image build %s)", name,
				 name);
	if (best)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, ENOENT,
				 "image: no image named \"%s\"; did you mean \"%s\"?%s%s%s", name, best,
				 best_built ? "" : " (build it: silo image build ", best_built ? "" : best,
				 best_built ? "" : ")");
	return silo_fail(err, SILO_ERR_INVALID_CONFIG, ENOENT,
			 "image: no image named \"%s\" in the image store (silo image ls lists them; build one of "
			 "base, python, namespace with silo image build NAME, or import one: silo image import "
			 "SOURCE --name %s)",
			 name, name);
}

int image_lookup(const char *name, image_entry *out, silo_error *err)
{
	memset(out, 0, sizeof *out);
	if (!image_name_valid(name))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "image: \"%s\" is not a valid image name", name ? name : "");
	image_entry *v;
	size_t n;
	if (image_list(&v, &n, err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(v[i].name, name)) {
			*out = v[i];
			memset(&v[i], 0, sizeof v[i]);
			image_entries_free(v, n);
			return 0;
		}
	}
	int rc = lookup_miss(name, v, n, err);
	image_entries_free(v, n);
	return rc;
}

typedef struct sha_ctx {
	crypto_hash_sha256_state st;
	uint64_t total;
} sha_ctx;

static int sha_chunk(void *ud, const void *buf, size_t n, silo_error *err)
{
	(void)err;
	sha_ctx *c = ud;
	crypto_hash_sha256_update(&c->st, buf, (unsigned long long)n);
	c->total += n;
	return 0;
}

int image_sha256_file(const char *path, char hex[65], uint64_t *size, silo_error *err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s", path);
	sha_ctx c = {.total = 0};
	crypto_hash_sha256_init(&c.st);
	if (read_chunks(fd, path, 1u << 20, sha_chunk, &c, err) < 0)
		return -1;
	unsigned char dig[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_final(&c.st, dig);
	sodium_bin2hex(hex, 65, dig, sizeof dig);
	if (size)
		*size = c.total;
	return 0;
}

static int verify_file(const char *ename, const image_file *f, silo_error *err)
{
	struct stat sb;
	if (stat(f->path, &sb) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "image \"%s\": %s", ename, f->path);
	if (!S_ISREG(sb.st_mode))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "image \"%s\": %s is not a regular file", ename, f->path);
	if ((uint64_t)sb.st_size != f->size)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
				 "image \"%s\": %s is %" PRIu64 " bytes, manifest says %" PRIu64, ename, f->path,
				 (uint64_t)sb.st_size, f->size);
	/* stamp: "<sha256> <size> <mtime_s>.<mtime_ns> <ino> <ctime_s>.<ctime_ns>"; ctime
	 * catches an in-place rewrite that restores the mtime (utimensat sets ctime) */
	char stamp_path[PATH_MAX + 16];
	snprintf(stamp_path, sizeof stamp_path, "%s.verified", f->path);
	char expect[256];
	snprintf(expect, sizeof expect, "%s %" PRIu64 " %lld.%09ld %llu %lld.%09ld\n", f->sha256, f->size,
		 (long long)sb.st_mtim.tv_sec, sb.st_mtim.tv_nsec, (unsigned long long)sb.st_ino,
		 (long long)sb.st_ctim.tv_sec, sb.st_ctim.tv_nsec);
	char *have = NULL;
	size_t hlen = 0;
	if (read_file(stamp_path, 256, &have, &hlen, NULL) == 0) {
		bool same = hlen == strlen(expect) && !memcmp(have, expect, hlen);
		free(have);
		if (same)
			return 0;
	}
	char hex[65];
	uint64_t size;
	if (image_sha256_file(f->path, hex, &size, err) < 0)
		return -1;
	if (strcmp(hex, f->sha256) != 0)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
				 "image \"%s\": %s has sha256 %s, manifest says %s", ename, f->path, hex, f->sha256);
	/* best effort: a read-only cache just means re-hashing next time */
	(void)write_file_atomic(stamp_path, expect, strlen(expect), 0644, NULL);
	return 0;
}

int image_verify(const image_entry *e, silo_error *err)
{
	if (verify_file(e->name, &e->file, err) < 0)
		return -1;
	if (e->initrd.path && verify_file(e->name, &e->initrd, err) < 0)
		return -1;
	return 0;
}

static int lock_manifest(silo_error *err)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s/images", silo_cache_dir());
	return lock_file_in(dir, 0755, ".manifest.lock", 0644, err);
}

static void remove_file_and_stamp(const char *path)
{
	if (!path)
		return;
	char stamp[PATH_MAX + 16];
	snprintf(stamp, sizeof stamp, "%s.verified", path);
	unlink(path);
	unlink(stamp);
}

static int write_manifest_json(const char *path, json_t *root, silo_error *err)
{
	char *dump = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!dump)
		return silo_fail(err, SILO_ERR_INTERNAL, ENOMEM, "image manifest: serialize");
	size_t dlen = strlen(dump);
	char *withnl = xasprintf("%s\n", dump);
	free(dump);
	int rc = write_file_atomic(path, withnl, dlen + 1, 0644, err);
	free(withnl);
	return rc;
}

/* The manifest under its lock, as JSON (validated by the parser first) and parsed;
 * a missing manifest is an empty one. manifest_end releases everything. */
typedef struct locked_manifest {
	int lk;
	char path[PATH_MAX];
	json_t *root;
	image_entry *v;
	size_t n;
	image_tree *t;
	size_t nt;
} locked_manifest;

static void manifest_end(locked_manifest *m)
{
	json_decref(m->root);
	image_entries_free(m->v, m->n);
	image_trees_free(m->t, m->nt);
	if (m->lk >= 0)
		close(m->lk);
	memset(m, 0, sizeof *m);
	m->lk = -1;
}

static int manifest_begin(locked_manifest *m, silo_error *err)
{
	memset(m, 0, sizeof *m);
	m->lk = lock_manifest(err);
	if (m->lk < 0)
		return -1;
	image_manifest_path(m->path, sizeof m->path);
	char *text = NULL;
	size_t len = 0;
	silo_error e2 = {0};
	if (read_file(m->path, IMAGE_MANIFEST_MAX, &text, &len, &e2) < 0) {
		if (e2.sys_errno != ENOENT) {
			if (err)
				*err = e2;
			manifest_end(m);
			return -1;
		}
		m->root = json_pack("{s:i,s:[]}", "version", 1, "images");
		return 0;
	}
	if (image_manifest_parse_all(text, len, &m->v, &m->n, &m->t, &m->nt, err) < 0) {
		free(text);
		manifest_end(m);
		return -1;
	}
	m->root = json_loadb(text, len, 0, NULL);
	free(text);
	if (!m->root) {
		manifest_end(m);
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "image manifest: reparse failed");
	}
	return 0;
}

int image_record_tree(const char *name, const char *path, const char *sha256, uint64_t entries, uint64_t size,
		      silo_error *err)
{
	if (!image_name_valid(name))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "image: \"%s\" is not a valid name", name ? name : "");
	if (!abs_path_valid(path) || !sha256_hex_valid(sha256) || !entries)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "tree %s: expected an absolute path and a digest", name);
	locked_manifest m;
	if (manifest_begin(&m, err) < 0)
		return -1;
	int rc = -1;
	for (size_t i = 0; i < m.n; i++)
		if (!strcmp(m.v[i].name, name)) {
			silo_fail(err, SILO_ERR_CONFLICT, 0, "image manifest: \"%s\" is an image, not a tree", name);
			goto out;
		}
	const char *created = NULL;
	for (size_t i = 0; i < m.nt; i++)
		if (!strcmp(m.t[i].name, name) && !strcmp(m.t[i].path, path) && !strcmp(m.t[i].sha256, sha256))
			created = m.t[i].created; /* unchanged: keep its date */
	char now[40];
	format_time_ms(now_realtime_ms(), now, sizeof now);
	json_t *fresh = json_array(), *trees = json_object_get(m.root, "trees");
	size_t i;
	json_t *x;
	json_array_foreach(trees, i, x)
		if (strcmp(json_string_value(json_object_get(x, "name")), name) != 0)
			json_array_append(fresh, x);
	json_array_append_new(fresh, json_pack("{s:s,s:s,s:s,s:I,s:I,s:s}", "name", name, "path", path, "sha256", sha256,
					       "entries", (json_int_t)entries, "size", (json_int_t)size, "created",
					       created && *created ? created : now));
	json_object_set_new(m.root, "trees", fresh);
	rc = write_manifest_json(m.path, m.root, err);
out:
	manifest_end(&m);
	return rc;
}

int image_remove(const char *name, silo_error *err)
{
	if (!image_name_valid(name))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "image: \"%s\" is not a valid image name", name ? name : "");
	locked_manifest m;
	if (manifest_begin(&m, err) < 0)
		return -1;
	ssize_t idx = -1, tidx = -1;
	for (size_t i = 0; i < m.n; i++)
		if (!strcmp(m.v[i].name, name))
			idx = (ssize_t)i;
	for (size_t i = 0; i < m.nt; i++)
		if (!strcmp(m.t[i].name, name))
			tidx = (ssize_t)i;
	int rc = -1;
	if (idx < 0 && tidx < 0) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, ENOENT, "image: no image named \"%s\"", name);
		goto out;
	}
	/* the JSON arrays and the parsed ones agree on order: both come from the same text */
	json_array_remove(json_object_get(m.root, tidx >= 0 ? "trees" : "images"), (size_t)(tidx >= 0 ? tidx : idx));
	rc = write_manifest_json(m.path, m.root, err);
	if (rc < 0 || tidx >= 0)
		goto out; /* a tree's directory is not ours to remove */
	/* files go only after the manifest no longer points at them */
	image_entry *e = &m.v[idx];
	remove_file_and_stamp(e->file.path);
	remove_file_and_stamp(e->initrd.path);
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s/images/%s", silo_cache_dir(), e->name);
	rm_rf(dir);
out:
	manifest_end(&m);
	return rc;
}

int image_manifest_json(json_t **out, silo_error *err)
{
	*out = NULL;
	char path[PATH_MAX];
	image_manifest_path(path, sizeof path);
	char *text = NULL;
	size_t len = 0;
	silo_error e2 = {0};
	if (read_file(path, IMAGE_MANIFEST_MAX, &text, &len, &e2) < 0) {
		if (e2.sys_errno != ENOENT) {
			if (err)
				*err = e2;
			return silo_error_prefix(err, "image manifest %s", path), -1;
		}
		*out = json_pack("{s:i,s:[]}", "version", 1, "images");
		return 0;
	}
	image_entry *v;
	size_t n;
	int rc = image_manifest_parse(text, len, &v, &n, err);
	*out = rc == 0 ? json_loadb(text, len, 0, NULL) : NULL;
	free(text);
	if (rc < 0)
		return silo_error_prefix(err, "%s", path), -1;
	image_entries_free(v, n);
	if (!*out)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "image manifest: reparse failed");
	return 0;
}

int image_manifest_edit(int (*edit)(json_t *root, void *ud, silo_error *err), void *ud, silo_error *err)
{
	cleanup_close int lk = lock_manifest(err);
	if (lk < 0)
		return -1;
	char path[PATH_MAX];
	image_manifest_path(path, sizeof path);
	json_t *root;
	if (image_manifest_json(&root, err) < 0)
		return -1;
	int rc = edit(root, ud, err);
	char *dump = rc == 0 ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	json_decref(root);
	if (rc < 0)
		return -1;
	if (!dump)
		return silo_fail(err, SILO_ERR_INTERNAL, ENOMEM, "image manifest: serialize");
	char *withnl = xasprintf("%s\n", dump);
	free(dump);
	image_entry *v;
	size_t n;
	rc = image_manifest_parse(withnl, strlen(withnl), &v, &n, err);
	if (rc == 0) {
		image_entries_free(v, n);
		rc = write_file_atomic(path, withnl, strlen(withnl), 0644, err);
	} else {
		silo_error_prefix(err, "image manifest after the edit");
	}
	free(withnl);
	return rc;
}

int guest_kernel_path(char *buf, size_t len, silo_error *err)
{
	const char *e = getenv("SILO_KERNEL");
	if (e && *e)
		snprintf(buf, len, "%s", e);
	else
		snprintf(buf, len, "%s/kernel/current/vmlinux", silo_cache_dir());
	if (access(buf, R_OK) == 0)
		return 0;
	return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, errno,
			 "guest kernel %s not found (build it: images/build-kernel.sh, or scripts/prepare-images.sh)",
			 buf);
}
