/* SPDX-License-Identifier: Apache-2.0
 * The layer store, the root-disk builder and the store queries (oci.h, store.h).
 *
 * Locks: $CACHE/oci/.lock (imports shared, gc exclusive) orders imports against
 * gc; the manifest lock (lib/image) orders writers of manifest.json; a sandbox
 * holds layer.json of each of its layers with flock(LOCK_SH). Taken in that
 * order: store lock, then manifest lock. gc removes a layer only after renaming
 * it out of layers/ (so a crash mid-removal never leaves a partial tree under a
 * digest name) and only when flock(LOCK_EX | LOCK_NB) on its layer.json succeeds.
 *
 * The root disk: layers are merged bottom-up into a scratch tree of hard links
 * (no file data is copied) with overlayfs rules (a 0:0 character device deletes
 * the name below, an opaque directory hides everything below it, a directory's
 * attributes come from the topmost layer that has it), then `mkfs.ext4 -d`
 * copies the tree (owners, modes, xattrs, hard links) into a sparse image.
 */
#include "oci/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/lockfile.h"
#include "common/util.h"
#include "image/image.h"
#include "oci/layer.h"
#include "oci/manifest.h"
#include "oci/oci.h"

static void cache_abs(char *buf, size_t len)
{
	char tmp[PATH_MAX];
	const char *c = silo_cache_dir();
	snprintf(buf, len, "%s", realpath(c, tmp) ? tmp : c);
}

void oci_path(char *buf, size_t len, const char *rel)
{
	char c[PATH_MAX];
	cache_abs(c, sizeof c);
	snprintf(buf, len, "%s/oci/%s", c, rel);
}

void oci_layer_dir(char *buf, size_t len, const char *hex)
{
	char rel[128];
	snprintf(rel, sizeof rel, "layers/sha256/%.64s", hex);
	oci_path(buf, len, rel);
}

void oci_layer_root(char *buf, size_t len, const char *hex)
{
	char d[PATH_MAX];
	oci_layer_dir(d, sizeof d, hex);
	snprintf(buf, len, "%s/root", d);
}

int oci_store_prepare(silo_error *err)
{
	static const char *const dirs[] = {"", "layers", "layers/sha256", "tmp"};
	if (mkdir_p(silo_cache_dir(), 0755) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", silo_cache_dir());
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		char p[PATH_MAX];
		oci_path(p, sizeof p, dirs[i]);
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", p);
	}
	return 0;
}

int oci_store_lock(bool exclusive, silo_error *err)
{
	char p[PATH_MAX];
	oci_path(p, sizeof p, ".lock");
	return lockfile_open(p, exclusive ? LOCK_EX : LOCK_SH, err);
}

static void layer_json_path(char *buf, size_t len, const char *hex)
{
	char d[PATH_MAX];
	oci_layer_dir(d, sizeof d, hex);
	snprintf(buf, len, "%s/layer.json", d);
}

bool oci_layer_present(const char *hex)
{
	char p[PATH_MAX];
	layer_json_path(p, sizeof p, hex);
	return access(p, R_OK) == 0;
}

json_t *oci_layer_json(const char *hex)
{
	char p[PATH_MAX];
	layer_json_path(p, sizeof p, hex);
	char *text = NULL;
	size_t len = 0;
	if (read_file(p, 1u << 16, &text, &len, NULL) < 0)
		return NULL;
	json_t *j = json_loadb(text, len, 0, NULL);
	free(text);
	if (j && !json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

uint64_t oci_file_disk(const char *path)
{
	struct stat sb;
	return path && stat(path, &sb) == 0 ? (uint64_t)sb.st_blocks * 512 : 0;
}

/* ---- merge layers into a scratch tree ---- */
typedef struct merge {
	uint64_t bytes, inodes;
	const char *what;      /* layer root, for messages */
} merge;

/* A directory's extended attributes become those of the upper layer's copy. */
static int copy_dir_attrs(int sfd, int dfd, const struct stat *ss)
{
	char names[16384], val[65536];
	ssize_t n = flistxattr(dfd, names, sizeof names);
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(names + i) + 1)
		(void)fremovexattr(dfd, names + i);
	n = flistxattr(sfd, names, sizeof names);
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(names + i) + 1) {
		if (!strncmp(names + i, "trusted.overlay.", 16))
			continue;   /* overlay metadata of the layer, not an attribute of the image */
		ssize_t k = fgetxattr(sfd, names + i, val, sizeof val);
		if (k >= 0 && fsetxattr(dfd, names + i, val, (size_t)k, 0) < 0)
			return -1;
	}
	if (fchown(dfd, ss->st_uid, ss->st_gid) < 0 || fchmod(dfd, ss->st_mode & 07777) < 0)
		return -1;
	return 0;
}

static bool is_opaque(int fd)
{
	char v[2];
	return fgetxattr(fd, OCI_WHITEOUT_OPAQUE_XATTR, v, sizeof v) == 1 && v[0] == 'y';
}

static int merge_dir(int sfd, int dfd, merge *m, silo_error *err)
{
	int dupfd = fcntl(sfd, F_DUPFD_CLOEXEC, 3);
	DIR *d = dupfd >= 0 ? fdopendir(dupfd) : NULL;
	if (!d) {
		if (dupfd >= 0)
			close(dupfd);
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "merge %s: opendir", m->what);
	}
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && (de = readdir(d))) {
		const char *nm = de->d_name;
		if (!strcmp(nm, ".") || !strcmp(nm, ".."))
			continue;
		struct stat ss, ds;
		if (fstatat(sfd, nm, &ss, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "merge %s: stat %s", m->what, nm);
			break;
		}
		bool have = fstatat(dfd, nm, &ds, AT_SYMLINK_NOFOLLOW) == 0;
		if (S_ISCHR(ss.st_mode) && ss.st_rdev == 0) {
			/* whiteout: the name is gone from here down */
			if (have && rm_rf_below(dfd, nm) < 0)
				rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "merge %s: remove %s", m->what, nm);
			continue;
		}
		if (S_ISDIR(ss.st_mode)) {
			int s2 = openat(sfd, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (s2 < 0) {
				rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "merge %s: open %s", m->what, nm);
				break;
			}
			if (have && (!S_ISDIR(ds.st_mode) || is_opaque(s2))) {
				if (rm_rf_below(dfd, nm) < 0)
					rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "merge %s: remove %s", m->what, nm);
				have = false;
			}
			int d2 = -1;
			if (rc == 0 && !have && mkdirat(dfd, nm, 0700) < 0)
				rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "merge %s: mkdir %s", m->what, nm);
			if (rc == 0 && (d2 = openat(dfd, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
				rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "merge %s: open %s", m->what, nm);
			if (rc == 0 && copy_dir_attrs(s2, d2, &ss) < 0)
				rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "merge %s: attributes of %s", m->what, nm);
			if (rc == 0 && !have) {
				m->inodes++;
				m->bytes += 4096;
			}
			if (rc == 0)
				rc = merge_dir(s2, d2, m, err);
			if (rc == 0) {
				struct timespec t[2] = {ss.st_mtim, ss.st_mtim};
				(void)futimens(d2, t);
			}
			close(s2);
			if (d2 >= 0)
				close(d2);
			continue;
		}
		if (have && rm_rf_below(dfd, nm) < 0) {
			rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "merge %s: replace %s", m->what, nm);
			break;
		}
		if (linkat(sfd, nm, dfd, nm, 0) < 0) {
			rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "merge %s: link %s", m->what, nm);
			break;
		}
		m->inodes++;
		if (S_ISREG(ss.st_mode))
			m->bytes += ((uint64_t)ss.st_size + 4095) / 4096 * 4096;
		else if (S_ISLNK(ss.st_mode) && ss.st_size >= 60)
			m->bytes += 4096;
	}
	closedir(d);
	return rc;
}

/* Run argv (no shell); stderr's tail goes into the error. */
static int run_tool(char *const argv[], silo_error *err)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "pipe");
	pid_t pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "fork");
	}
	if (pid == 0) {
		dup2(pfd[1], 2);
		int nul = open("/dev/null", O_RDWR);
		if (nul >= 0)
			dup2(nul, 1), dup2(nul, 0);
		setenv("E2FSPROGS_FAKE_TIME", "1", 1);
		execvp(argv[0], argv);
		dprintf(2, "exec %s: %s", argv[0], strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	char out[2048];
	size_t n = 0;
	for (;;) {
		char buf[1024];
		ssize_t k = read(pfd[0], buf, sizeof buf);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		/* keep the last bytes */
		for (ssize_t i = 0; i < k; i++) {
			if (n == sizeof out - 1) {
				memmove(out, out + 512, n - 512);
				n -= 512;
			}
			out[n++] = buf[i];
		}
	}
	out[n] = '\0';
	close(pfd[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "waitpid %s", argv[0]);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
		out[--n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (out[i] == '\n')
			out[i] = ' ';
	return silo_fail(err, WIFEXITED(st) && WEXITSTATUS(st) == 127 ? SILO_ERR_PROVIDER_UNAVAILABLE : SILO_ERR_IO_ERROR,
			 0, "%s failed (%s %d): %s", argv[0], WIFEXITED(st) ? "exit status" : "signal",
			 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), n ? out : "(no output)");
}

/* Inodes and rounded bytes of a tree (a single layer used as is). */
static void tree_size(int fd, merge *m)
{
	int dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	DIR *d = dupfd >= 0 ? fdopendir(dupfd) : NULL;
	struct dirent *de;
	while (d && (de = readdir(d))) {
		struct stat sb;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    fstatat(fd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		m->inodes++;
		if (S_ISREG(sb.st_mode))
			m->bytes += ((uint64_t)sb.st_size + 4095) / 4096 * 4096;
		else if (S_ISDIR(sb.st_mode) || (S_ISLNK(sb.st_mode) && sb.st_size >= 60))
			m->bytes += 4096;
		if (S_ISDIR(sb.st_mode)) {
			int sub = openat(fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0) {
				tree_size(sub, m);
				close(sub);
			}
		}
	}
	if (d)
		closedir(d);
	else if (dupfd >= 0)
		close(dupfd);
}

int oci_build_ext4(char *const *roots, size_t n, bool single_plain, const char *stage, const char *out, uint64_t *size,
		   silo_error *err)
{
	char flat[PATH_MAX];
	snprintf(flat, sizeof flat, "%s/flat", stage);
	merge m = {.inodes = 1, .bytes = 4096};
	int rc = 0;
	if (single_plain) {
		/* one layer without whiteouts or opaque directories is already the merged tree */
		snprintf(flat, sizeof flat, "%s", roots[0]);
		int fd = open(flat, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s", flat);
		tree_size(fd, &m);
		close(fd);
		n = 0;
	} else if (mkdir(flat, 0700) < 0) {
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", flat);
	}
	cleanup_close int dfd = open(flat, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s", flat);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		int sfd = open(roots[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		struct stat ss;
		if (sfd < 0 || fstat(sfd, &ss) < 0) {
			rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s", roots[i]);
		} else {
			m.what = roots[i];
			if (copy_dir_attrs(sfd, dfd, &ss) < 0)
				rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "merge %s: root attributes", roots[i]);
			if (rc == 0)
				rc = merge_dir(sfd, dfd, &m, err);
			if (rc == 0) {
				struct timespec t[2] = {ss.st_mtim, ss.st_mtim};
				(void)futimens(dfd, t);
			}
		}
		if (sfd >= 0)
			close(sfd);
	}
	/* Size: data blocks + 256-byte inodes, 15% slack and 32 MiB for ext4's own
	 * metadata; the file is sparse, so slack costs no disk. One retry at twice the
	 * size if mkfs still runs out of space. */
	uint64_t inodes = m.inodes + m.inodes / 8 + 1024;
	uint64_t bytes = (m.bytes + inodes * 256) / 100 * 115 + (32ull << 20);
	bytes = (bytes + (1u << 20) - 1) & ~((1ull << 20) - 1);
	for (int attempt = 0; rc == 0 && attempt < 2; attempt++) {
		unlink(out);
		char nin[32], sz[32];
		snprintf(nin, sizeof nin, "%" PRIu64, inodes);
		snprintf(sz, sizeof sz, "%" PRIu64 "k", bytes >> 10);
		char *argv[] = {"mkfs.ext4", "-q", "-F", "-L", "silo-root", "-b", "4096", "-O", "^has_journal", "-m", "0", "-N", nin,
				"-U", "6f1b4c6e-3f7a-4c1e-9d55-5110a9e00001", "-E",
				"hash_seed=6f1b4c6e-3f7a-4c1e-9d55-5110a9e00002,root_owner=0:0", "-d", flat, (char *)out, sz,
				NULL};
		rc = run_tool(argv, err);
		if (rc < 0 && attempt == 0 && strstr(err->message, "space")) {
			bytes *= 2;
			inodes *= 2;
			rc = 0;
			continue;
		}
		break;
	}
	if (rc == 0)
		*size = bytes;
	else
		unlink(out);
	if (!single_plain)
		rm_rf(flat);
	return rc;
}

/* ---- manifest access ---- */
json_t *oci_manifest_find(json_t *root, const char *name)
{
	json_t *imgs = json_object_get(root, "images"), *e;
	size_t i;
	json_array_foreach(imgs, i, e)
	{
		const char *nm = json_string_value(json_object_get(e, "name"));
		if (nm && !strcmp(nm, name))
			return e;
	}
	return NULL;
}

/* The diff_id hex of a layer record {diff_id, path}, NULL when malformed. */
static const char *layer_hex(json_t *l)
{
	const char *d = json_string_value(json_object_get(l, "diff_id"));
	return d && strlen(d) == 71 && !strncmp(d, "sha256:", 7) && strspn(d + 7, "0123456789abcdef") == 64 ? d + 7
														   : NULL;
}

int oci_image_lowerdirs(const char *name, char ***dirs, size_t *n, silo_error *err)
{
	*dirs = NULL;
	*n = 0;
	json_t *root;
	if (image_manifest_json(&root, err) < 0)
		return -1;
	json_t *e = oci_manifest_find(root, name);
	json_t *ls = json_object_get(json_object_get(e, "oci"), "layers");
	if (!e || !json_is_array(ls) || json_array_size(ls) == 0) {
		json_decref(root);
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, ENOENT,
				 "image: no imported image named \"%s\" (silo image import SOURCE --name %s)", name, name);
	}
	size_t cnt = json_array_size(ls);
	char **v = xcalloc(cnt + 1, sizeof *v);
	size_t k = 0;
	int rc = 0;
	for (size_t i = cnt; i-- > 0;) {
		const char *hex = layer_hex(json_array_get(ls, i));
		if (!hex) {
			rc = silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "image manifest: image \"%s\": oci.layers[%zu].diff_id: expected sha256:<64 hex>",
				       name, i);
			break;
		}
		char p[PATH_MAX];
		oci_layer_root(p, sizeof p, hex);
		bool dup = false;
		for (size_t j = 0; j < k; j++)
			dup = dup || !strcmp(v[j], p);
		if (dup)
			continue;   /* the topmost copy of a layer hides the lower one entirely */
		struct stat sb;
		if (stat(p, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
			rc = silo_fail(err, SILO_ERR_IO_ERROR, errno ? errno : ENOTDIR, "image \"%s\": layer %s", name, p);
			break;
		}
		v[k++] = xstrdup(p);
	}
	json_decref(root);
	if (rc < 0) {
		strv_free(v);
		return -1;
	}
	*dirs = v;
	*n = k;
	return 0;
}

int oci_layers_hold(char *const *dirs, size_t n, int **fds, silo_error *err)
{
	int *v = xcalloc(n ? n : 1, sizeof *v);
	for (size_t i = 0; i < n; i++) {
		char p[PATH_MAX];
		const char *slash = strrchr(dirs[i], '/');
		snprintf(p, sizeof p, "%.*s/layer.json", slash ? (int)(slash - dirs[i]) : 0, dirs[i]);
		v[i] = open(p, O_RDONLY | O_CLOEXEC);
		if (v[i] < 0 || flock(v[i], LOCK_SH) < 0) {
			int e = errno;
			for (size_t j = 0; j <= i; j++)
				if (v[j] >= 0)
					close(v[j]);
			free(v);
			return silo_fail(err, SILO_ERR_IO_ERROR, e, "hold layer %s", p);
		}
	}
	*fds = v;
	return 0;
}

int oci_image_info(const char *name, json_t **info, silo_error *err)
{
	*info = NULL;
	json_t *root;
	if (image_manifest_json(&root, err) < 0)
		return -1;
	json_t *e = oci_manifest_find(root, name);
	const char *p = json_string_value(json_object_get(json_object_get(e, "oci"), "image"));
	int rc = 0;
	if (!e) {
		rc = silo_fail(err, SILO_ERR_INVALID_CONFIG, ENOENT, "image: no image named \"%s\"", name);
	} else if (p) {
		char *text = NULL;
		size_t len = 0;
		if (read_file(p, 1u << 24, &text, &len, err) < 0) {
			rc = -1;
		} else {
			*info = json_loadb(text, len, 0, NULL);
			if (!*info)
				rc = silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: not JSON", p);
		}
		free(text);
	}
	json_decref(root);
	return rc;
}

/* ---- sizes ---- */
typedef struct lref {
	char hex[65];
	unsigned users;       /* images referencing it */
	uint64_t disk, bytes;
} lref;

static lref *lref_get(lref **v, size_t *n, const char *hex)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*v)[i].hex, hex))
			return &(*v)[i];
	*v = xrealloc(*v, (*n + 1) * sizeof **v);
	lref *r = &(*v)[(*n)++];
	memset(r, 0, sizeof *r);
	snprintf(r->hex, sizeof r->hex, "%s", hex);
	json_t *j = oci_layer_json(hex);
	r->disk = (uint64_t)json_integer_value(json_object_get(j, "disk"));
	r->bytes = (uint64_t)json_integer_value(json_object_get(j, "bytes"));
	json_decref(j);
	return r;
}

/* Distinct layer hexes of one manifest entry into *out (count returned). */
static size_t entry_layers(json_t *e, const char *(*out)[OCI_MAX_LAYERS])
{
	json_t *ls = json_object_get(json_object_get(e, "oci"), "layers"), *l;
	size_t i, k = 0;
	json_array_foreach(ls, i, l)
	{
		const char *hex = layer_hex(l);
		bool seen = !hex;
		for (size_t j = 0; j < k && !seen; j++)
			seen = !strcmp((*out)[j], hex);
		if (!seen && k < OCI_MAX_LAYERS)
			(*out)[k++] = hex;
	}
	return k;
}

static uint64_t entry_file_disk(json_t *e)
{
	return oci_file_disk(json_string_value(json_object_get(e, "path"))) +
	       oci_file_disk(json_string_value(json_object_get(json_object_get(e, "initrd"), "path")));
}

int oci_usage(oci_image_usage **out, size_t *n, oci_store_usage *total, silo_error *err)
{
	*out = NULL;
	*n = 0;
	memset(total, 0, sizeof *total);
	json_t *root;
	if (image_manifest_json(&root, err) < 0)
		return -1;
	json_t *imgs = json_object_get(root, "images"), *e;
	size_t cnt = json_array_size(imgs), i;
	lref *refs = NULL;
	size_t nrefs = 0;
	json_array_foreach(imgs, i, e)
	{
		const char *hx[OCI_MAX_LAYERS];
		size_t k = entry_layers(e, &hx);
		for (size_t j = 0; j < k; j++)
			lref_get(&refs, &nrefs, hx[j])->users++;
	}
	oci_image_usage *v = xcalloc(cnt ? cnt : 1, sizeof *v);
	json_array_foreach(imgs, i, e)
	{
		oci_image_usage *u = &v[i];
		snprintf(u->name, sizeof u->name, "%s", json_string_value(json_object_get(e, "name")));
		u->disk = entry_file_disk(e);
		total->images_disk += u->disk;
		const char *hx[OCI_MAX_LAYERS];
		size_t k = entry_layers(e, &hx);
		u->imported = json_object_get(e, "oci") != NULL;
		u->n_layers = k;
		if (!u->imported)
			u->logical = (uint64_t)json_integer_value(json_object_get(e, "size")) +
				     (uint64_t)json_integer_value(json_object_get(json_object_get(e, "initrd"), "size"));
		for (size_t j = 0; j < k; j++) {
			lref *r = lref_get(&refs, &nrefs, hx[j]);
			u->logical += r->bytes;
			if (r->users > 1)
				u->shared += r->disk;
			else
				u->disk += r->disk;
		}
	}
	json_decref(root);
	/* every layer in the store, referenced or not */
	char ld[PATH_MAX];
	oci_path(ld, sizeof ld, "layers/sha256");
	DIR *d = opendir(ld);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (strlen(de->d_name) != 64 || strspn(de->d_name, "0123456789abcdef") != 64)
			continue;
		lref *r = lref_get(&refs, &nrefs, de->d_name);
		total->n_layers++;
		total->layers_disk += r->disk;
		if (!r->users) {
			total->unreferenced++;
			total->unreferenced_disk += r->disk;
		}
	}
	if (d)
		closedir(d);
	free(refs);
	*out = v;
	*n = cnt;
	return 0;
}

/* ---- gc ---- */
static bool hex64(const char *s)
{
	return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

/* Rename a directory entry out of the way into tmp/, then remove it. */
static int remove_via_tmp(const char *path, const char *tag)
{
	char tmp[PATH_MAX], rel[96];
	char rnd[24];
	random_id("", rnd, sizeof rnd);
	snprintf(rel, sizeof rel, "tmp/gc-%s-%s", tag, rnd);
	oci_path(tmp, sizeof tmp, rel);
	if (rename(path, tmp) < 0)
		return -1;
	return rm_rf(tmp);
}

static void gc_image_dirs(json_t *root, oci_gc_result *r)
{
	char c[PATH_MAX], idir[PATH_MAX];
	cache_abs(c, sizeof c);
	snprintf(idir, sizeof idir, "%s/images", c);
	DIR *d = opendir(idir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (!image_name_valid(de->d_name))
			continue;
		json_t *e = oci_manifest_find(root, de->d_name);
		const char *keep = json_string_value(json_object_get(json_object_get(e, "oci"), "image"));
		if (e && !keep)
			continue;   /* a built image: its directory is build-image.sh's */
		char nd[PATH_MAX * 2];
		snprintf(nd, sizeof nd, "%s/%s", idir, de->d_name);
		DIR *sd = opendir(nd);
		struct dirent *se;
		size_t left = 0;
		while (sd && (se = readdir(sd))) {
			if (!strcmp(se->d_name, ".") || !strcmp(se->d_name, ".."))
				continue;
			char sub[PATH_MAX * 3], marker[PATH_MAX * 3 + 16];
			snprintf(sub, sizeof sub, "%s/%s", nd, se->d_name);
			snprintf(marker, sizeof marker, "%s/image.json", sub);
			bool ours = path_exists(marker);
			bool kept = keep && !strncmp(keep, sub, strlen(sub)) && keep[strlen(sub)] == '/';
			if (ours && !kept && rm_rf(sub) == 0)
				r->image_dirs_removed++;
			else
				left++;
		}
		if (sd)
			closedir(sd);
		if (!left && !e)
			rmdir(nd);
	}
	if (d)
		closedir(d);
}

/* Cached loader initramfs builds ($CACHE/oci/loader/<key>/, made by the CLI):
 * images hard-link theirs, so a build no image links (st_nlink 1) can go,
 * except the newest, which the next import will most likely use. */
static void gc_loaders(oci_gc_result *r)
{
	char ld[PATH_MAX];
	oci_path(ld, sizeof ld, "loader");
	DIR *d = opendir(ld);
	struct dirent *de;
	char newest[256] = "";
	struct timespec newest_t = {0, 0};
	for (int pass = 0; d && pass < 2; pass++) {
		rewinddir(d);
		while ((de = readdir(d))) {
			struct stat sb;
			char f[PATH_MAX + 300];
			snprintf(f, sizeof f, "%s/loader.cpio.gz", de->d_name);
			if (de->d_name[0] == '.' || fstatat(dirfd(d), f, &sb, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			bool newer = sb.st_mtim.tv_sec > newest_t.tv_sec ||
				     (sb.st_mtim.tv_sec == newest_t.tv_sec && sb.st_mtim.tv_nsec > newest_t.tv_nsec);
			if (pass == 0 && newer) {
				newest_t = sb.st_mtim;
				snprintf(newest, sizeof newest, "%s", de->d_name);
			} else if (pass == 1 && sb.st_nlink == 1 && strcmp(de->d_name, newest) != 0 &&
				   rm_rf_below(dirfd(d), de->d_name) == 0) {
				r->loaders_removed++;
			}
		}
	}
	if (d)
		closedir(d);
}

int oci_gc(oci_gc_result *r, silo_error *err)
{
	memset(r, 0, sizeof *r);
	if (oci_store_prepare(err) < 0)
		return -1;
	cleanup_close int lk = oci_store_lock(true, err);
	if (lk < 0)
		return -1;
	json_t *root;
	if (image_manifest_json(&root, err) < 0)
		return -1;
	/* no import runs now: all staging is debris */
	char tdir[PATH_MAX];
	oci_path(tdir, sizeof tdir, "tmp");
	DIR *d = opendir(tdir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (rm_rf_below(dirfd(d), de->d_name) == 0)
			r->staging_removed++;
	}
	if (d)
		closedir(d);
	json_t *imgs = json_object_get(root, "images"), *e;
	size_t i;
	char ld[PATH_MAX];
	oci_path(ld, sizeof ld, "layers/sha256");
	d = opendir(ld);
	while (d && (de = readdir(d))) {
		if (!hex64(de->d_name))
			continue;
		bool used = false;
		json_array_foreach(imgs, i, e)
		{
			const char *hx[OCI_MAX_LAYERS];
			size_t k = entry_layers(e, &hx);
			for (size_t j = 0; j < k && !used; j++)
				used = !strcmp(hx[j], de->d_name);
		}
		if (used) {
			r->layers_kept++;
			continue;
		}
		char jp[PATH_MAX], dir[PATH_MAX];
		layer_json_path(jp, sizeof jp, de->d_name);
		oci_layer_dir(dir, sizeof dir, de->d_name);
		int fd = open(jp, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
			close(fd);
			r->layers_busy++;   /* a sandbox still runs on it */
			continue;
		}
		json_t *lj = oci_layer_json(de->d_name);
		uint64_t disk = (uint64_t)json_integer_value(json_object_get(lj, "disk"));
		json_decref(lj);
		if (remove_via_tmp(dir, "layer") == 0) {
			r->layers_removed++;
			r->bytes_freed += disk;
		}
		if (fd >= 0)
			close(fd);
	}
	if (d)
		closedir(d);
	gc_image_dirs(root, r);
	gc_loaders(r);
	json_decref(root);
	return 0;
}
