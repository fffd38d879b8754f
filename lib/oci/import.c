/* SPDX-License-Identifier: Apache-2.0
 * `silo image import` (oci.h). One import, in order:
 *   1. take the store lock shared and make a staging directory in $CACHE/oci/tmp;
 *   2. open the source: a directory is read in place; an archive file is
 *      extracted (with all the layer rules of layer.h) into staging and then
 *      recognized: "oci-layout" + "index.json" = OCI, "manifest.json" = docker
 *      save, anything else = a rootfs tarball, which is then itself the one layer;
 *   3. pick the image (--ref, else the only one, else the one for this platform),
 *      read and verify manifest and config (digest and size of every blob);
 *   4. for each layer not yet stored: stream it (decompressing, hashing, charged
 *      to the budget) into staging, check blob digest/size and diff_id, rename it
 *      into layers/sha256/<diff_id hex>;
 *   5. merge the layers into a scratch tree and build rootfs.ext4, write
 *      image.json, config.json, manifest.json, link the loader;
 *   6. under the manifest lock: rename the staged image directory into
 *      $CACHE/images/<name>/<id> and write the manifest entry (the commit point);
 *   7. remove older directories of the name and the staging.
 * Every file the import reads inside a source directory is opened with openat2
 * beneath the source root, so a symlink in the source cannot make it read a host
 * file. Nothing is written outside $CACHE/oci and $CACHE/images.
 */
#include "oci/oci.h"

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
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "image/image.h"
#include "oci/layer.h"
#include "oci/manifest.h"
#include "oci/store.h"
#include "oci/tar.h"
#include "trust/trust.h"

static const char *const format_names[] = {"auto", "oci", "docker", "rootfs"};

int oci_format_parse(const char *s, oci_format *f)
{
	for (size_t i = 0; i < ARRAY_SIZE(format_names); i++)
		if (s && !strcmp(s, format_names[i])) {
			*f = (oci_format)i;
			return 0;
		}
	return -1;
}

const char *oci_format_name(oci_format f)
{
	return (size_t)f < ARRAY_SIZE(format_names) ? format_names[f] : "?";
}

typedef struct ilayer {
	char diff_id[OCI_DIGEST_LEN + 1];
	char digest[OCI_DIGEST_LEN + 1];   /* blob digest ("" until known for docker) */
	char media_type[128];
	uint64_t size;                     /* blob size (when have_desc) */
	char *path;                        /* blob path below the source root */
	bool have_desc;                    /* digest and size come from a manifest: verify them */
	bool check_comp;
	oci_comp want_comp;
	bool fresh;                        /* extracted by this import */
	json_t *info;                      /* its layer.json */
} ilayer;

typedef struct ictx {
	const oci_import_opts *o;
	oci_import_result *r;
	oci_budget budget;
	oci_extract_opts xo;
	char stage[PATH_MAX];
	int srcfd;
	char *manifest;                    /* verified bytes, OCI only */
	size_t manifest_len;
	char manifest_digest[OCI_DIGEST_LEN + 1];
	char *config;
	size_t config_len;
	char config_digest[OCI_DIGEST_LEN + 1];
	char ref[256];
	oci_config cfg;
	ilayer *layers;
	size_t n_layers;
} ictx;

static const char *host_arch(void)
{
	static char arch[32];
	struct utsname u;
	if (uname(&u) < 0)
		return "amd64";
	if (!strcmp(u.machine, "x86_64"))
		return "amd64";
	if (!strcmp(u.machine, "aarch64"))
		return "arm64";
	snprintf(arch, sizeof arch, "%s", u.machine);
	return arch;
}

static void sha256_hex(const void *buf, size_t len, char hex[65])
{
	unsigned char d[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(d, buf, (unsigned long long)len);
	sodium_bin2hex(hex, 65, d, sizeof d);
}

static void stage_path(const ictx *c, char *buf, size_t len, const char *rel)
{
	snprintf(buf, len, "%s/%s", c->stage, rel);
}

/* A regular file below the source root, at most max bytes. */
static int read_beneath(ictx *c, const char *path, size_t max, char **out, size_t *len, silo_error *err)
{
	*out = NULL;
	/* O_NONBLOCK: a FIFO in the source must be refused below, not block the import */
	cleanup_close int fd = oci_open_beneath(c->srcfd, path, O_RDONLY | O_NONBLOCK, true);
	if (fd < 0)
		return silo_fail(err, errno == ENOENT ? SILO_ERR_INVALID_CONFIG : SILO_ERR_IO_ERROR, errno,
				 "source: %s%s", path, errno == EXDEV ? " (leads outside the source)" : "");
	struct stat sb;
	if (fstat(fd, &sb) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "source: %s", path);
	if (!S_ISREG(sb.st_mode))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "source: %s is not a regular file", path);
	if ((uint64_t)sb.st_size > max)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0, "source: %s is %lld bytes (limit %zu)", path,
				 (long long)sb.st_size, max);
	char *buf = xmalloc((size_t)sb.st_size + 1);
	int rc = read_exact(fd, buf, (size_t)sb.st_size);
	if (rc != 0) {
		free(buf);
		return silo_fail(err, SILO_ERR_IO_ERROR, rc < 0 ? errno : 0, "source: read %s", path);
	}
	buf[sb.st_size] = '\0';
	*out = buf;
	*len = (size_t)sb.st_size;
	return 0;
}

/* A blob of an OCI layout, checked against its descriptor. */
static int read_blob(ictx *c, const oci_desc *d, const char *what, char **out, size_t *len, silo_error *err)
{
	char path[128];
	snprintf(path, sizeof path, "blobs/sha256/%s", d->digest + 7);
	if (d->size > OCI_JSON_MAX)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0, "%s %s: %" PRIu64 " bytes (limit %u)", what, d->digest,
				 d->size, OCI_JSON_MAX);
	if (read_beneath(c, path, OCI_JSON_MAX, out, len, err) < 0)
		return -1;
	char hex[65];
	sha256_hex(*out, *len, hex);
	if (strcmp(hex, d->digest + 7) != 0 || *len != d->size) {
		free(*out);
		*out = NULL;
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0, "%s %s: the blob has sha256:%s and %zu bytes, expected %" PRIu64,
				 what, d->digest, hex, *len, d->size);
	}
	return 0;
}

/* A top-level name of the source exists (reading it later checks where it leads). */
static bool source_has(ictx *c, const char *name)
{
	struct stat sb;
	return fstatat(c->srcfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0;
}

/* ---- choosing one image ---- */
static int choose(ictx *c, const oci_desc *v, size_t n, bool use_ref, size_t *pick, silo_error *err)
{
	const char *ref = use_ref ? c->o->ref : NULL;
	size_t hit = SIZE_MAX, hits = 0;
	for (size_t i = 0; i < n; i++) {
		bool ok = ref ? !strcmp(v[i].ref, ref)
			      : n == 1 || ((!v[i].os[0] || !strcmp(v[i].os, "linux")) &&
					   (!v[i].arch[0] || !strcmp(v[i].arch, host_arch())));
		if (ok)
			hit = i, hits++;
	}
	if (hits == 1) {
		*pick = hit;
		if (v[hit].ref[0])
			snprintf(c->ref, sizeof c->ref, "%s", v[hit].ref);
		return 0;
	}
	char have[512] = "";
	for (size_t i = 0, o = 0; i < n && o < sizeof have - 80; i++)
		o += (size_t)snprintf(have + o, sizeof have - o, "%s%s (%s/%s)", i ? ", " : "", v[i].ref[0] ? v[i].ref : "-",
				      v[i].os[0] ? v[i].os : "?", v[i].arch[0] ? v[i].arch : "?");
	if (ref)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "index: %s image tagged \"%s\" (the index has: %s)",
				 hits ? "more than one" : "no", ref, have);
	return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
			 "index: %zu images and %s for linux/%s; choose one with --ref (the index has: %s)", n,
			 hits ? "several" : "none", host_arch(), have);
}

static int check_config(ictx *c, size_t n_layers, silo_error *err)
{
	if (oci_config_parse(c->config, c->config_len, &c->cfg, err) < 0)
		return -1;
	if (c->cfg.arch[0] && strcmp(c->cfg.arch, host_arch()) != 0)
		return silo_fail(err, SILO_ERR_NOT_SUPPORTED, 0, "config: architecture \"%s\" images cannot run on this %s host",
				 c->cfg.arch, host_arch());
	if (c->cfg.n_diff_ids != n_layers)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "config: rootfs.diff_ids lists %zu layers, the manifest %zu",
				 c->cfg.n_diff_ids, n_layers);
	c->n_layers = n_layers;
	c->layers = xcalloc(n_layers, sizeof *c->layers);
	for (size_t i = 0; i < n_layers; i++)
		memcpy(c->layers[i].diff_id, c->cfg.diff_ids[i], OCI_DIGEST_LEN + 1);
	return 0;
}

static int read_oci(ictx *c, silo_error *err)
{
	char *text = NULL;
	size_t len = 0;
	if (read_beneath(c, "index.json", OCI_JSON_MAX, &text, &len, err) < 0)
		return -1;
	oci_desc *v = NULL, desc;
	size_t n = 0, pick = 0;
	int rc = oci_index_parse(text, len, &v, &n, err);
	free(text);
	for (int depth = 0; rc == 0; depth++) {
		rc = choose(c, v, n, depth == 0, &pick, err);
		if (rc < 0)
			break;
		desc = v[pick];
		free(v);
		v = NULL;
		oci_doc_kind k;
		if ((rc = oci_desc_kind(&desc, &k, err)) < 0)
			break;
		if (k == OCI_DOC_MANIFEST)
			break;
		if (depth == 2) {
			rc = silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "index: image indexes nested more than two deep");
			break;
		}
		if ((rc = read_blob(c, &desc, "index", &text, &len, err)) < 0)
			break;
		rc = oci_index_parse(text, len, &v, &n, err);
		free(text);
	}
	free(v);
	if (rc < 0)
		return -1;
	if (read_blob(c, &desc, "manifest", &c->manifest, &c->manifest_len, err) < 0)
		return -1;
	memcpy(c->manifest_digest, desc.digest, sizeof c->manifest_digest);
	oci_manifest m;
	if (oci_manifest_parse(c->manifest, c->manifest_len, &m, err) < 0)
		return -1;
	rc = read_blob(c, &m.config, "config", &c->config, &c->config_len, err);
	if (rc == 0) {
		memcpy(c->config_digest, m.config.digest, sizeof c->config_digest);
		rc = check_config(c, m.n_layers, err);
	}
	for (size_t i = 0; rc == 0 && i < m.n_layers; i++) {
		ilayer *L = &c->layers[i];
		const oci_desc *d = &m.layers[i];
		memcpy(L->digest, d->digest, sizeof L->digest);
		snprintf(L->media_type, sizeof L->media_type, "%s", d->media_type);
		L->size = d->size;
		L->path = xasprintf("blobs/sha256/%s", d->digest + 7);
		L->have_desc = true;
		L->check_comp = oci_layer_media_comp(d->media_type, &L->want_comp) == 0;
	}
	oci_manifest_free(&m);
	return rc;
}

static int read_docker(ictx *c, silo_error *err)
{
	char *text = NULL;
	size_t len = 0;
	if (read_beneath(c, "manifest.json", OCI_JSON_MAX, &text, &len, err) < 0)
		return -1;
	docker_entry *v;
	size_t n;
	int rc = docker_manifest_parse(text, len, &v, &n, err);
	free(text);
	if (rc < 0)
		return -1;
	size_t pick = SIZE_MAX, hits = 0;
	for (size_t i = 0; i < n; i++) {
		bool ok = !c->o->ref && n == 1;
		for (char **t = v[i].repo_tags; c->o->ref && *t; t++) {
			const char *colon = strrchr(*t, ':');
			ok = ok || !strcmp(*t, c->o->ref) || (colon && !strchr(colon, '/') && !strcmp(colon + 1, c->o->ref));
		}
		if (ok)
			pick = i, hits++;
	}
	if (hits != 1) {
		docker_entries_free(v, n);
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "docker manifest.json: %zu images%s%s; %s", n,
				 c->o->ref ? " tagged " : "", c->o->ref ? c->o->ref : "",
				 c->o->ref ? "none or several match" : "choose one with --ref TAG");
	}
	docker_entry *e = &v[pick];
	if (e->repo_tags[0])
		snprintf(c->ref, sizeof c->ref, "%s", e->repo_tags[0]);
	rc = read_beneath(c, e->config, OCI_JSON_MAX, &c->config, &c->config_len, err);
	if (rc == 0) {
		char hex[65];
		sha256_hex(c->config, c->config_len, hex);
		snprintf(c->config_digest, sizeof c->config_digest, "sha256:%s", hex);
		rc = check_config(c, e->n_layers, err);
	}
	for (size_t i = 0; rc == 0 && i < e->n_layers; i++) {
		c->layers[i].path = xstrdup(e->layers[i]);
		snprintf(c->layers[i].media_type, sizeof c->layers[i].media_type, "%s",
			 "application/vnd.docker.image.rootfs.diff.tar");
	}
	docker_entries_free(v, n);
	return rc;
}

/* ---- layers ---- */
static json_t *layer_record(const char *diff_id, const char *digest, const char *comp, uint64_t size,
			    const oci_layer_stats *st)
{
	char now[40];
	return json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s}", "diff_id", diff_id, "digest",
			 digest, "compression", comp, "size", (json_int_t)size, "bytes", (json_int_t)st->bytes, "disk",
			 (json_int_t)st->disk, "entries", (json_int_t)st->entries, "files", (json_int_t)st->files, "dirs",
			 (json_int_t)st->dirs, "symlinks", (json_int_t)st->symlinks, "hardlinks",
			 (json_int_t)st->hardlinks, "whiteouts", (json_int_t)st->whiteouts, "opaques",
			 (json_int_t)st->opaques, "dropped_xattrs", (json_int_t)st->dropped_xattrs, "dropped_devices",
			 (json_int_t)st->dropped_devices, "imported", format_time_ms(now_realtime_ms(), now, sizeof now));
}

static int write_json(const char *path, json_t *j, silo_error *err)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!s)
		return silo_fail(err, SILO_ERR_INTERNAL, ENOMEM, "serialize %s", path);
	char *withnl = xasprintf("%s\n", s);
	free(s);
	int rc = write_file_atomic(path, withnl, strlen(withnl), 0600, err);
	free(withnl);
	return rc;
}

static void note_stats(ictx *c, const oci_layer_stats *st)
{
	c->r->dropped_xattrs += st->dropped_xattrs;
	c->r->dropped_devices += st->dropped_devices;
	if (st->dropped[0] && !strstr(c->r->dropped, st->dropped)) {
		size_t n = strlen(c->r->dropped);
		snprintf(c->r->dropped + n, sizeof c->r->dropped - n, "%s%s", n ? ", " : "", st->dropped);
	}
}

/* Move a staged layer directory (with layer.json and root/) into the store. */
static int install_layer(const char *staged, const char *hex, silo_error *err)
{
	char dst[PATH_MAX];
	oci_layer_dir(dst, sizeof dst, hex);
	if (rename(staged, dst) == 0)
		return 0;
	int e = errno;
	if ((e == EEXIST || e == ENOTEMPTY) && oci_layer_present(hex)) {
		rm_rf(staged);   /* another import stored it meanwhile */
		return 0;
	}
	return silo_fail(err, SILO_ERR_IO_ERROR, e, "store layer %s", dst);
}

/* Write layer.json next to the staged tree and move both into the store. */
static int store_layer(ictx *c, ilayer *L, const char *dir, const char *comp, const oci_layer_stats *st,
		       silo_error *err)
{
	json_t *rec = layer_record(L->diff_id, L->digest, comp, L->size, st);
	char jp[PATH_MAX + 16];
	snprintf(jp, sizeof jp, "%s/layer.json", dir);
	int rc = write_json(jp, rec, err);
	json_decref(rec);
	if (rc < 0 || install_layer(dir, L->diff_id + 7, err) < 0)
		return -1;
	L->fresh = true;
	c->r->new_layers++;
	c->r->layers_disk_new += st->disk;
	return 0;
}

static int import_layer(ictx *c, size_t i, silo_error *err)
{
	ilayer *L = &c->layers[i];
	const char *hex = L->diff_id + 7;
	if (oci_layer_present(hex))
		return 0;
	char what[160];
	snprintf(what, sizeof what, "layer %zu (%.19s)", i, L->diff_id);
	cleanup_close int fd = oci_open_beneath(c->srcfd, L->path, O_RDONLY | O_NONBLOCK, true);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) < 0)
		return silo_fail(err, errno == ENOENT ? SILO_ERR_INVALID_CONFIG : SILO_ERR_IO_ERROR, errno, "%s: source %s%s",
				 what, L->path, errno == EXDEV ? " (leads outside the source)" : "");
	if (!S_ISREG(sb.st_mode))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: source %s is not a regular file", what, L->path);
	oci_stream *s;
	if (oci_stream_open(fd, what, &c->budget, &s, err) < 0)
		return -1;
	int rc = 0;
	if (L->check_comp && oci_stream_comp(s) != L->want_comp)
		rc = silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: media type %s, but the blob is %s data", what,
			       L->media_type, oci_comp_name(oci_stream_comp(s)));
	char dir[PATH_MAX], root[PATH_MAX + 8], rel[32];
	snprintf(rel, sizeof rel, "layer-%zu", i);
	stage_path(c, dir, sizeof dir, rel);
	snprintf(root, sizeof root, "%s/root", dir);
	if (rc == 0 && (mkdir(dir, 0700) < 0 || mkdir(root, 0755) < 0))
		rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", root);
	oci_layer_stats st = {0};
	tar_reader *tr = tar_reader_new(oci_stream_read, s);
	cleanup_close int rfd = rc == 0 ? open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (rc == 0 && rfd < 0)
		rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s", root);
	if (rc == 0)
		rc = oci_layer_extract(tr, rfd, what, &c->xo, &st, err);
	tar_reader_free(tr);
	char raw[65], out[65];
	uint64_t raw_size = 0;
	const char *comp = oci_comp_name(oci_stream_comp(s));
	if (rc == 0)
		rc = oci_stream_finish(s, raw, &raw_size, out, err);
	oci_stream_close(s);
	if (rc < 0)
		return -1;
	if (L->have_desc && (strcmp(raw, L->digest + 7) != 0 || raw_size != L->size))
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
				 "%s: the blob has sha256:%s and %" PRIu64 " bytes, the manifest says %s and %" PRIu64, what, raw,
				 raw_size, L->digest, L->size);
	if (strcmp(out, hex) != 0)
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
				 "%s: the uncompressed layer has sha256:%s, the config lists %s", what, out, L->diff_id);
	if (!L->have_desc) {
		snprintf(L->digest, sizeof L->digest, "sha256:%s", raw);
		L->size = raw_size;
	}
	note_stats(c, &st);
	return store_layer(c, L, dir, comp, &st, err);
}

/* ---- the source ---- */
static int detect(ictx *c, bool is_dir, oci_format *fmt, silo_error *err)
{
	bool oci = source_has(c, "oci-layout") && source_has(c, "index.json");
	bool docker = source_has(c, "manifest.json");
	*fmt = c->o->format;
	if (*fmt == OCI_FMT_AUTO)
		*fmt = oci ? OCI_FMT_OCI : docker ? OCI_FMT_DOCKER : OCI_FMT_ROOTFS;
	if (*fmt == OCI_FMT_OCI && !oci)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "source %s: not an OCI image layout (oci-layout or index.json missing)",
				 c->o->source);
	if (*fmt == OCI_FMT_DOCKER && !docker)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "source %s: not a docker save archive (manifest.json missing)",
				 c->o->source);
	if (*fmt == OCI_FMT_ROOTFS && is_dir)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "source %s: a directory must be an OCI image layout (oci-layout, index.json) or a docker "
				 "save directory (manifest.json); a root file system is imported from a tar archive",
				 c->o->source);
	return 0;
}

/* A rootfs tarball: the extracted archive is the image's only layer. */
static int adopt_rootfs(ictx *c, const char *dir, const char *raw, uint64_t raw_size, const char *out,
			const char *comp, const oci_layer_stats *st, silo_error *err)
{
	char diff[OCI_DIGEST_LEN + 1];
	snprintf(diff, sizeof diff, "sha256:%s", out);
	json_t *cj = json_pack("{s:s,s:s,s:{},s:{s:s,s:[s]}}", "architecture", host_arch(), "os", "linux", "config",
			       "rootfs", "type", "layers", "diff_ids", diff);
	c->config = json_dumps(cj, JSON_COMPACT);
	json_decref(cj);
	c->config_len = strlen(c->config);
	char hex[65];
	sha256_hex(c->config, c->config_len, hex);
	snprintf(c->config_digest, sizeof c->config_digest, "sha256:%s", hex);
	if (check_config(c, 1, err) < 0)
		return -1;
	ilayer *L = &c->layers[0];
	snprintf(L->digest, sizeof L->digest, "sha256:%s", raw);
	snprintf(L->media_type, sizeof L->media_type, "%s", "application/vnd.oci.image.layer.v1.tar");
	L->size = raw_size;
	if (oci_layer_present(out))
		return rm_rf(dir), 0;
	note_stats(c, st);
	return store_layer(c, L, dir, comp, st, err);
}

static int open_source(ictx *c, oci_format *fmt, silo_error *err)
{
	const char *src = c->o->source;
	struct stat sb;
	bool in = !strcmp(src, "-");   /* standard input: an archive read once, as a stream */
	if (in ? fstat(0, &sb) < 0 : stat(src, &sb) < 0)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, errno, "source %s", src);
	if (in && S_ISDIR(sb.st_mode))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "source -: standard input is a directory");
	if (S_ISDIR(sb.st_mode)) {
		c->srcfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (c->srcfd < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "source %s", src);
		return detect(c, true, fmt, err);
	}
	if (!in && !S_ISREG(sb.st_mode))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "source %s: not a directory or a regular file", src);
	cleanup_close int fd = in ? fcntl(0, F_DUPFD_CLOEXEC, 3) : open(src, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "source %s", src);
	char what[PATH_MAX + 16], dir[PATH_MAX], root[PATH_MAX + 8];
	snprintf(what, sizeof what, "archive %s", src);
	stage_path(c, dir, sizeof dir, "source");
	snprintf(root, sizeof root, "%s/root", dir);
	if (mkdir(dir, 0700) < 0 || mkdir(root, 0755) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", root);
	oci_stream *s;
	if (oci_stream_open(fd, what, &c->budget, &s, err) < 0)
		return -1;
	const char *comp = oci_comp_name(oci_stream_comp(s));
	oci_layer_stats st = {0};
	tar_reader *tr = tar_reader_new(oci_stream_read, s);
	c->srcfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = c->srcfd < 0 ? silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s", root) : 0;
	if (rc == 0)
		rc = oci_layer_extract(tr, c->srcfd, what, &c->xo, &st, err);
	tar_reader_free(tr);
	char raw[65], out[65];
	uint64_t raw_size = 0;
	if (rc == 0)
		rc = oci_stream_finish(s, raw, &raw_size, out, err);
	oci_stream_close(s);
	if (rc == 0)
		rc = detect(c, false, fmt, err);
	if (rc == 0 && *fmt == OCI_FMT_ROOTFS) {
		close(c->srcfd);
		c->srcfd = -1;
		rc = adopt_rootfs(c, dir, raw, raw_size, out, comp, &st, err);
	}
	return rc;
}

/* ---- the image directory ---- */
static json_t *strv_json(char *const *v)
{
	json_t *a = json_array();
	for (; v && *v; v++)
		json_array_append_new(a, json_string(*v));
	return a;
}

static json_t *defaults_json(const oci_config *cfg)
{
	json_t *d = json_object();
	if (cfg->env)
		json_object_set_new(d, "env", strv_json(cfg->env));
	if (cfg->working_dir)
		json_object_set_new(d, "working_dir", json_string(cfg->working_dir));
	if (cfg->user)
		json_object_set_new(d, "user", json_string(cfg->user));
	if (cfg->entrypoint)
		json_object_set_new(d, "entrypoint", strv_json(cfg->entrypoint));
	if (cfg->cmd)
		json_object_set_new(d, "cmd", strv_json(cfg->cmd));
	return d;
}

static void utc_now(char *buf, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int link_or_copy(const char *src, const char *dst, silo_error *err)
{
	if (link(src, dst) == 0)
		return 0;
	char *buf = NULL;
	size_t len = 0;
	if (read_file(src, 256u << 20, &buf, &len, err) < 0)
		return -1;
	int rc = write_file_atomic(dst, buf, len, 0644, err);
	free(buf);
	return rc;
}

static json_t *file_entry(const char *path, silo_error *err)
{
	char hex[65];
	uint64_t size;
	if (image_sha256_file(path, hex, &size, err) < 0)
		return NULL;
	return json_pack("{s:s,s:s,s:I}", "path", path, "sha256", hex, "size", (json_int_t)size);
}

/* The layer records of image.json (layers) and of the manifest entry (mlayers,
 * with each layer's tree digest, which a signed manifest pins for the namespace
 * provider), and the layer roots bottom first; *plain: the image is one layer
 * without whiteouts or opaque directories (its tree is the merged tree). */
static int layer_lists(ictx *c, char **roots, json_t *layers, json_t *mlayers, bool *plain_out, silo_error *err)
{
	bool plain = c->n_layers == 1;
	for (size_t i = 0; i < c->n_layers; i++) {
		ilayer *L = &c->layers[i];
		char root[PATH_MAX];
		oci_layer_root(root, sizeof root, L->diff_id + 7);
		roots[i] = xstrdup(root);
		json_t *lj = oci_layer_json(L->diff_id + 7);
		const char *dg = L->digest[0] ? L->digest : json_string_value(json_object_get(lj, "digest"));
		json_int_t bytes = json_integer_value(json_object_get(lj, "bytes"));
		c->r->bytes += (uint64_t)bytes;
		plain = plain && json_integer_value(json_object_get(lj, "whiteouts")) == 0 &&
			json_integer_value(json_object_get(lj, "opaques")) == 0;
		json_array_append_new(layers, json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:b,s:s}", "diff_id", L->diff_id,
							"digest", dg ? dg : "", "media_type", L->media_type, "size",
							(json_int_t)L->size, "bytes", bytes, "disk",
							json_integer_value(json_object_get(lj, "disk")), "entries",
							json_integer_value(json_object_get(lj, "entries")), "new", L->fresh,
							"path", root));
		json_decref(lj);
		trust_tree_info ti;
		if (trust_tree_digest(root, &ti, err) < 0)
			return silo_error_prefix(err, "layer %s: tree digest", L->diff_id), -1;
		json_object_set_new(json_array_get(layers, i), "tree", json_string(ti.sha256));
		json_array_append_new(mlayers, json_pack("{s:s,s:s,s:s}", "diff_id", L->diff_id, "path", root, "tree", ti.sha256));
	}
	*plain_out = plain;
	return 0;
}

static json_t *image_info(ictx *c, oci_format fmt, const char *final, const char *now, json_t *layers)
{
	char src[PATH_MAX], disk[PATH_MAX + 32];
	if (!realpath(c->o->source, src))
		snprintf(src, sizeof src, "%s", c->o->source);
	snprintf(disk, sizeof disk, "%s/rootfs.ext4", final);
	json_t *info = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:{s:s,s:s},s:s,s:O,s:o,s:{s:s,s:s,s:I,s:I},s:{s:I,s:I,s:s}}",
				 "version", 1, "name", c->o->name, "format", oci_format_name(fmt), "source", src,
				 "config_digest", c->config_digest, "manifest_digest", c->manifest_digest, "platform",
				 "os", "linux", "architecture", c->cfg.arch[0] ? c->cfg.arch : host_arch(), "created", now,
				 "layers", layers, "defaults", defaults_json(&c->cfg), "rootfs", "format", "ext4", "path",
				 disk, "size", (json_int_t)c->r->ext4_size, "disk", (json_int_t)c->r->ext4_disk, "dropped",
				 "xattrs", (json_int_t)c->r->dropped_xattrs, "devices", (json_int_t)c->r->dropped_devices,
				 "names", c->r->dropped);
	if (info && c->ref[0])
		json_object_set_new(info, "ref", json_string(c->ref));
	return info;
}

/* The guest kernel the entry records ({key, path, sha256, size}), NULL without one. */
static json_t *kernel_entry(void)
{
	char kp[PATH_MAX], real[PATH_MAX];
	if (guest_kernel_path(kp, sizeof kp, NULL) < 0 || !realpath(kp, real))
		return NULL;
	json_t *k = file_entry(real, NULL);
	if (!k)
		return NULL;
	/* the key is the name of its directory under $CACHE/kernel (as build-image.sh records it) */
	*strrchr(real, '/') = '\0';
	const char *kdir = strrchr(real, '/') ? strrchr(real, '/') + 1 : real;
	char key[17];
	snprintf(key, sizeof key, "%s", strlen(kdir) == 16 ? kdir : json_string_value(json_object_get(k, "sha256")));
	json_object_set_new(k, "key", json_string(key));
	return k;
}

/* The manifest entry: hashes of the staged files in img, paths where they will live (final). */
static json_t *manifest_entry(ictx *c, oci_format fmt, const char *img, const char *final, const char *now,
			      json_t *mlayers, silo_error *err)
{
	char p[PATH_MAX + 32];
	snprintf(p, sizeof p, "%s/rootfs.ext4", img);
	json_t *disk = file_entry(p, err);
	snprintf(p, sizeof p, "%s/loader.cpio.gz", img);
	json_t *ird = disk ? file_entry(p, err) : NULL;
	json_t *e = NULL;
	if (ird) {
		snprintf(p, sizeof p, "%s/rootfs.ext4", final);
		e = json_pack("{s:s,s:s,s:s,s:O,s:O}", "name", c->o->name, "kind", "ext4", "path", p, "sha256",
			      json_object_get(disk, "sha256"), "size", json_object_get(disk, "size"));
		snprintf(p, sizeof p, "%s/loader.cpio.gz", final);
		json_object_set_new(ird, "path", json_string(p));
		json_object_set(e, "initrd", ird);
		json_t *k = kernel_entry();
		if (k)
			json_object_set_new(e, "kernel", k);
		json_object_set_new(e, "created", json_string(now));
		snprintf(p, sizeof p, "%s/image.json", final);
		json_object_set_new(e, "oci", json_pack("{s:s,s:s,s:s,s:O}", "image", p, "format", oci_format_name(fmt),
							"config_digest", c->config_digest, "layers", mlayers));
	}
	if (ird && !e)
		silo_fail(err, SILO_ERR_INTERNAL, ENOMEM, "image manifest entry");
	json_decref(disk);
	json_decref(ird);
	return e;
}

/* image.json, config.json, manifest.json, rootfs.ext4 and the loader in
 * stage/image; *entry gets the manifest entry naming them at final. */
static int build_image_dir(ictx *c, oci_format fmt, const char *final, json_t **entry, silo_error *err)
{
	*entry = NULL;
	char img[PATH_MAX], p[PATH_MAX + 32], now[40];
	stage_path(c, img, sizeof img, "image");
	if (mkdir(img, 0755) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", img);
	utc_now(now, sizeof now);
	char **roots = xcalloc(c->n_layers + 1, sizeof *roots);
	json_t *layers = json_array(), *mlayers = json_array();
	bool plain = false;
	int rc = layer_lists(c, roots, layers, mlayers, &plain, err);
	uint64_t t0 = now_mono_ns();
	snprintf(p, sizeof p, "%s/rootfs.ext4", img);
	if (rc == 0)
		rc = oci_build_ext4(roots, c->n_layers, plain, c->stage, p, &c->r->ext4_size, err);
	strv_free(roots);
	c->r->seconds_ext4 = (double)(now_mono_ns() - t0) / 1e9;
	c->r->ext4_disk = oci_file_disk(p);
	snprintf(p, sizeof p, "%s/loader.cpio.gz", img);
	if (rc == 0)
		rc = link_or_copy(c->o->loader, p, err);
	snprintf(p, sizeof p, "%s/config.json", img);
	if (rc == 0)
		rc = write_file_atomic(p, c->config, c->config_len, 0644, err);
	snprintf(p, sizeof p, "%s/manifest.json", img);
	if (rc == 0 && c->manifest)
		rc = write_file_atomic(p, c->manifest, c->manifest_len, 0644, err);
	json_t *info = rc == 0 ? image_info(c, fmt, final, now, layers) : NULL;
	snprintf(p, sizeof p, "%s/image.json", img);
	if (rc == 0)
		rc = info ? write_json(p, info, err) : silo_fail(err, SILO_ERR_INTERNAL, ENOMEM, "image.json");
	if (rc == 0 && !(*entry = manifest_entry(c, fmt, img, final, now, mlayers, err)))
		rc = -1;
	json_decref(info);
	json_decref(layers);
	json_decref(mlayers);
	return rc;
}

/* ---- commit ---- */
typedef struct commit_ud {
	ictx *c;
	json_t *entry;
	const char *final;
	char staged[PATH_MAX];
	bool moved;
} commit_ud;

/* The name may be taken only by an imported image, and only with --force. */
static int check_name(const ictx *c, json_t *root, silo_error *err)
{
	json_t *old = oci_manifest_find(root, c->o->name);
	if (old && !json_object_get(old, "oci"))
		return silo_fail(err, SILO_ERR_CONFLICT, 0,
				 "image \"%s\" exists and was built by silo image build (remove it first: silo image rm %s)",
				 c->o->name, c->o->name);
	if (old && !c->o->force)
		return silo_fail(err, SILO_ERR_CONFLICT, 0, "image \"%s\" exists (--force replaces it)", c->o->name);
	return 0;
}

static int commit_edit(json_t *root, void *ud, silo_error *err)
{
	commit_ud *u = ud;
	const char *name = u->c->o->name;
	json_t *imgs = json_object_get(root, "images");
	if (!json_is_array(imgs))
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "image manifest: no images array");
	if (check_name(u->c, root, err) < 0)
		return -1;
	char ndir[PATH_MAX];
	snprintf(ndir, sizeof ndir, "%s", u->final);
	*strrchr(ndir, '/') = '\0';
	if (mkdir(ndir, 0755) < 0 && errno != EEXIST)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", ndir);
	if (rename(u->staged, u->final) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "rename %s to %s", u->staged, u->final);
	u->moved = true;
	/* same order as build-image.sh: sorted by name */
	json_t *nv = json_array(), *e;
	size_t i;
	bool placed = false;
	json_array_foreach(imgs, i, e)
	{
		const char *nm = json_string_value(json_object_get(e, "name"));
		if (nm && !strcmp(nm, name))
			continue;
		if (!placed && nm && strcmp(nm, name) > 0) {
			json_array_append(nv, u->entry);
			placed = true;
		}
		json_array_append(nv, e);
	}
	if (!placed)
		json_array_append(nv, u->entry);
	json_object_set_new(root, "images", nv);
	return 0;
}

/* layers_for: the layers become the namespace layers of a built image. */
typedef struct attach_ud {
	const char *name;
	json_t *mlayers;
} attach_ud;

static int attach_edit(json_t *root, void *ud, silo_error *err)
{
	attach_ud *u = ud;
	json_t *e = oci_manifest_find(root, u->name);
	json_t *oci = json_object_get(e, "oci");
	if (!e)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, ENOENT, "--layers-for: no image named \"%s\"", u->name);
	if (json_object_get(oci, "image"))
		return silo_fail(err, SILO_ERR_CONFLICT, 0,
				 "--layers-for: image \"%s\" was imported (it has its layers); name a built image", u->name);
	json_object_set_new(e, "oci", json_pack("{s:s,s:O}", "format", "built", "layers", u->mlayers));
	return 0;
}

static int attach_layers(ictx *c, silo_error *err)
{
	char **roots = xcalloc(c->n_layers + 1, sizeof *roots);
	json_t *layers = json_array(), *mlayers = json_array();
	bool plain;
	int rc = layer_lists(c, roots, layers, mlayers, &plain, err);
	strv_free(roots);
	attach_ud u = {.name = c->o->layers_for, .mlayers = mlayers};
	if (rc == 0)
		rc = image_manifest_edit(attach_edit, &u, err);
	json_decref(layers);
	json_decref(mlayers);
	return rc;
}

/* Older directories of the name (a replaced import) once the manifest no longer names them. */
static void remove_old_dirs(const char *final)
{
	char ndir[PATH_MAX];
	snprintf(ndir, sizeof ndir, "%s", final);
	char *slash = strrchr(ndir, '/');
	const char *keep = slash + 1;
	*slash = '\0';
	DIR *d = opendir(ndir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		char marker[PATH_MAX + 300];
		if (de->d_name[0] == '.' || !strcmp(de->d_name, keep))
			continue;
		snprintf(marker, sizeof marker, "%s/%s/image.json", ndir, de->d_name);
		if (path_exists(marker))
			rm_rf_below(dirfd(d), de->d_name);
	}
	if (d)
		closedir(d);
}

static void ictx_free(ictx *c)
{
	if (c->srcfd >= 0)
		close(c->srcfd);
	free(c->manifest);
	free(c->config);
	oci_config_free(&c->cfg);
	for (size_t i = 0; i < c->n_layers; i++)
		free(c->layers[i].path);
	free(c->layers);
}

int oci_import(const oci_import_opts *o, oci_import_result *r, silo_error *err)
{
	memset(r, 0, sizeof *r);
	uint64_t t0 = now_mono_ns();
	if (o->layers_for && !image_name_valid(o->layers_for))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--layers-for: \"%s\" is not a valid image name",
				 o->layers_for);
	oci_import_opts lo;
	if (o->layers_for) {   /* the name is the built image's; no loader is needed */
		lo = *o;
		lo.name = o->layers_for;
		lo.loader = "/";
		o = &lo;
	}
	if (!image_name_valid(o->name))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--name: \"%s\" is not a valid image name (1-64 of [a-z0-9_-])",
				 o->name ? o->name : "");
	if (!strcmp(o->name, "debootstrap"))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "--name: \"debootstrap\" is reserved (the cache of images/build-rootfs-debian.sh)");
	if (!o->source || !o->source[0])
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "import: SOURCE is required");
	if (!o->loader || access(o->loader, R_OK) < 0)
		return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, errno ? errno : ENOENT,
				 "import: loader initramfs %s", o->loader ? o->loader : "(none)");
	if (geteuid() != 0)
		return silo_fail(err, SILO_ERR_NOT_SUPPORTED, EPERM,
				 "import: needs root (it keeps the image's owners, and makes whiteout devices and "
				 "trusted.overlay attributes for the layer store)");
	ictx c = {.o = o, .r = r, .srcfd = -1};
	c.budget.max_bytes = o->max_bytes ? o->max_bytes : OCI_DEFAULT_MAX_BYTES;
	c.budget.max_entries = o->max_entries ? o->max_entries : OCI_DEFAULT_MAX_ENTRIES;
	c.xo.budget = &c.budget;
	c.xo.skip_devices = o->skip_devices;
	json_t *root = NULL, *entry = NULL;
	if (image_manifest_json(&root, err) < 0)
		return -1;
	int rc = o->layers_for ? 0 : check_name(&c, root, err);
	json_decref(root);
	if (rc < 0 || oci_store_prepare(err) < 0)
		return -1;
	cleanup_close int lk = oci_store_lock(false, err);
	if (lk < 0)
		return -1;
	oci_path(c.stage, sizeof c.stage, "tmp/import-XXXXXX");
	if (!mkdtemp(c.stage))
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdtemp %s", c.stage);
	oci_format fmt;
	rc = open_source(&c, &fmt, err);
	if (rc == 0 && fmt == OCI_FMT_OCI)
		rc = read_oci(&c, err);
	else if (rc == 0 && fmt == OCI_FMT_DOCKER)
		rc = read_docker(&c, err);
	for (size_t i = 0; rc == 0 && i < c.n_layers; i++)
		rc = import_layer(&c, i, err);
	r->format = fmt;
	r->n_layers = c.n_layers;
	r->seconds_layers = (double)(now_mono_ns() - t0) / 1e9;
	char cdir[PATH_MAX], rnd[16], final[PATH_MAX];
	char tmp[PATH_MAX];
	snprintf(cdir, sizeof cdir, "%s", realpath(silo_cache_dir(), tmp) ? tmp : silo_cache_dir());
	random_id("", rnd, sizeof rnd);
	snprintf(final, sizeof final, "%s/images/%s/%.12s-%.8s", cdir, o->name, c.config_digest + 7, rnd);
	if (rc == 0 && o->layers_for) {
		rc = attach_layers(&c, err);
		snprintf(r->config_digest, sizeof r->config_digest, "%s", c.config_digest);
		goto done;
	}
	if (rc == 0)
		rc = build_image_dir(&c, fmt, final, &entry, err);
	if (rc == 0) {
		commit_ud u = {.c = &c, .entry = entry, .final = final};
		stage_path(&c, u.staged, sizeof u.staged, "image");
		rc = image_manifest_edit(commit_edit, &u, err);
		if (rc < 0 && u.moved && rename(final, u.staged) < 0)
			rm_rf(final);
		if (rc == 0) {
			remove_old_dirs(final);
			snprintf(r->image_dir, sizeof r->image_dir, "%s", final);
			snprintf(r->config_digest, sizeof r->config_digest, "%s", c.config_digest);
		}
	}
done:
	json_decref(entry);
	ictx_free(&c);
	rm_rf(c.stage);
	r->seconds = (double)(now_mono_ns() - t0) / 1e9;
	if (rc < 0)
		silo_error_prefix(err, "import %s", o->source);
	return rc;
}
