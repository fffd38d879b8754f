/* SPDX-License-Identifier: Apache-2.0
 * Images pushed to this silod by a hub (docs/remote.md "Shipping images"):
 * a content-addressed, resumable blob store and the import of an image from
 * blobs. Full-access only (routes.c, group "image").
 *
 *   GET  /v1/blobs/{sha256}                what this silod has of a blob:
 *        {"sha256", "complete", "have"} (have: bytes of a partial upload)
 *   PUT  /v1/blobs/{sha256}?offset=N&size=T  the bytes [N, N+len) of a blob of
 *        T bytes; N must be what "have" says (CONFLICT otherwise, naming it),
 *        so an interrupted push resumes where the target stopped. When the
 *        last byte arrives the whole blob is hashed: SHA-256 equal to the
 *        path's -> the blob is complete; else CHECKSUM_MISMATCH and the
 *        partial bytes are dropped (a tampered chunk never enters the store).
 *   GET  /v1/images/{image}                this silod's image of that name:
 *        its layers' diff_ids and tree digests (what a hub compares)
 *   POST /v1/images  {"name", "manifest", "blobs": [...], "trees": [...],
 *        "signature"}  import image NAME from complete blobs: an OCI image
 *        layout is assembled from hard links to them (index.json written
 *        here, naming the manifest blob), imported by oci_import (which checks
 *        every digest and size the manifest and config name, and refuses
 *        hostile archives), then each layer's tree digest must equal "trees"
 *        (end to end: the tree the hub runs). With keys in this silod's
 *        keyring the manifest blob must carry "signature" (minisign, by a
 *        trusted key: trust_verify_bundle_buf), else PLUGIN_UNVERIFIED.
 *
 * Layout: $STATE/blobs/sha256/<hex> complete blobs (0600), partial/<hex> an
 * upload in progress (flock(LOCK_EX) by the request writing it: a second
 * writer gets CONFLICT), tmp/layout-XXXXXX an import being assembled
 * (removed after). Crash safety: a blob is complete only once renamed into
 * sha256/ after fsync; a partial left by a crash resumes at its length;
 * blobs are never shared with the layer store (the import copies what it
 * unpacks), so removing $STATE/blobs loses nothing but pushes.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "daemon/api_parse.h"
#include "daemon/handlers.h"
#include "image/image.h"
#include "oci/oci.h"
#include "trust/trust.h"

#define BLOB_MAX OCI_DEFAULT_MAX_BYTES   /* one blob: the import's own bound */
#define PARTIALS_MAX 64                   /* uploads in progress at once */
#define MANIFEST_BLOB_MAX (1u << 20)
#define PUSH_BLOBS_MAX (IMAGE_MAX_LAYERS + 2)

static void blob_dir(char *buf, size_t len, const char *sub)
{
	snprintf(buf, len, "%s/blobs/%s", silo_state_dir(), sub);
}

static void blob_path(char *buf, size_t len, const char *sub, const char *hex)
{
	snprintf(buf, len, "%s/blobs/%s/%s", silo_state_dir(), sub, hex);
}

static bool hex64(const char *s)
{
	return s && strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

/* {"sha256", "complete", "have"} of blob hex as this silod has it. */
static json_t *blob_json(const char *hex)
{
	char p[4200];
	struct stat st;
	blob_path(p, sizeof p, "sha256", hex);
	if (stat(p, &st) == 0)
		return json_pack("{s:s,s:b,s:I}", "sha256", hex, "complete", 1, "have", (json_int_t)st.st_size);
	blob_path(p, sizeof p, "partial", hex);
	return json_pack("{s:s,s:b,s:I}", "sha256", hex, "complete", 0,
			 "have", (json_int_t)(stat(p, &st) == 0 ? st.st_size : 0));
}

int h_blob_get(api_req *q, api_reply *r, silo_error *err)
{
	(void)err;
	return api_reply_json(r, 200, blob_json(api_cap(q, "sha256")));
}

static int count_partials(void)
{
	char d[4200];
	blob_dir(d, sizeof d, "partial");
	DIR *dir = opendir(d);
	int n = 0;
	if (!dir)
		return 0;
	for (struct dirent *e; (e = readdir(dir));)
		n += e->d_name[0] != '.';
	closedir(dir);
	return n;
}

/* SHA-256 of what fd holds (from offset 0) as hex. */
static int hash_fd(int fd, char hex[65], silo_error *err)
{
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	static __thread unsigned char buf[1 << 16];
	off_t off = 0;
	for (;;) {
		ssize_t n = pread(fd, buf, sizeof buf, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "read a blob");
		if (n == 0)
			break;
		crypto_hash_sha256_update(&st, buf, (size_t)n);
		off += n;
	}
	unsigned char d[32];
	crypto_hash_sha256_final(&st, d);
	sodium_bin2hex(hex, 65, d, sizeof d);
	return 0;
}

/* Append the request's body (fd, len bytes) to part at offset. */
static int append_body(const api_req *q, int part, uint64_t offset, silo_error *err)
{
	static __thread char buf[1 << 16];
	uint64_t done = 0;
	while (done < q->body_size) {
		ssize_t n = pread(q->body_fd, buf, (size_t)MIN((uint64_t)sizeof buf, q->body_size - done), (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, n < 0 ? errno : EIO, "read the spooled chunk");
		for (ssize_t w = 0; w < n;) {
			ssize_t k = pwrite(part, buf + w, (size_t)(n - w), (off_t)(offset + done + (uint64_t)w));
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0)
				return silo_fail(err, SILO_ERR_IO_ERROR, errno, "write a blob chunk");
			w += k;
		}
		done += (uint64_t)n;
	}
	return 0;
}

int h_blob_put(api_req *q, api_reply *r, silo_error *err)
{
	const char *hex = api_cap(q, "sha256");
	uint64_t offset = 0, size = 0;
	if (api_query_uint(q, "offset", BLOB_MAX, &offset, err) < 0 || api_query_uint(q, "size", BLOB_MAX, &size, err) < 0)
		return -1;
	if (!api_query(q, "size"))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "size: the blob's total size in bytes is required");
	if (offset + q->body_size > size)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "offset %" PRIu64 " + a chunk of %" PRIu64 " bytes: past the blob's size %" PRIu64, offset,
				 q->body_size, size);
	char done_p[4200], part_p[4200], d[4200];
	blob_path(done_p, sizeof done_p, "sha256", hex);
	blob_path(part_p, sizeof part_p, "partial", hex);
	if (path_exists(done_p))   /* content addressed: already here */
		return api_reply_json(r, 200, blob_json(hex));
	blob_dir(d, sizeof d, "sha256");
	if (mkdir_p(d, 0700) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", d);
	blob_dir(d, sizeof d, "partial");
	if (mkdir_p(d, 0700) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", d);
	if (!path_exists(part_p) && count_partials() >= PARTIALS_MAX)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0, "%d blob uploads are in progress on this silod",
				 PARTIALS_MAX);
	cleanup_close int part = open(part_p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (part < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s", part_p);
	if (flock(part, LOCK_EX | LOCK_NB) < 0)
		return silo_fail(err, SILO_ERR_CONFLICT, 0, "blob %s: another upload of it is in progress", hex);
	struct stat st;
	if (fstat(part, &st) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "stat %s", part_p);
	if ((uint64_t)st.st_size != offset)
		return silo_fail(err, SILO_ERR_CONFLICT, 0,
				 "blob %s: offset %" PRIu64 ", but this silod has %" PRIu64 " bytes of it: resume at %" PRIu64,
				 hex, offset, (uint64_t)st.st_size, (uint64_t)st.st_size);
	if (append_body(q, part, offset, err) < 0) {
		if (ftruncate(part, (off_t)offset) < 0)
			log_warn("blob %s: truncate after a failed write failed", hex);
		return -1;
	}
	if (offset + q->body_size < size)
		return api_reply_json(r, 200, blob_json(hex));
	char got[65];
	if (fsync(part) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "fsync %s", part_p);
	if (hash_fd(part, got, err) < 0)
		return -1;
	if (strcmp(got, hex) != 0) {
		unlink(part_p);
		return silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
				 "blob sha256:%s: the %" PRIu64 " bytes received hash to sha256:%s; they were dropped", hex,
				 size, got);
	}
	if (rename(part_p, done_p) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "rename %s", done_p);
	blob_dir(d, sizeof d, "sha256");
	cleanup_close int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		fsync(dfd);
	manager_audit(q->ctx->m, q->who.actor, NULL, "blob-put", 0, NULL);
	return api_reply_json(r, 200, blob_json(hex));
}

/* ---- images ---- */

static json_t *image_json(const image_entry *e)
{
	json_t *a = json_array();
	for (size_t i = 0; i < e->n_layers; i++)
		json_array_append_new(a, json_pack("{s:s,s:s}", "diff_id", e->layers[i].diff_id, "tree", e->layers[i].tree));
	return json_pack("{s:s,s:s,s:o}", "name", e->name, "kind", image_kind_name(e->kind), "layers", a);
}

int h_image_get(api_req *q, api_reply *r, silo_error *err)
{
	image_entry e;
	if (image_lookup(api_cap(q, "image"), &e, err) < 0) {
		err->code = SILO_ERR_NOT_FOUND;
		return -1;
	}
	json_t *o = image_json(&e);
	image_entry_free(&e);
	return api_reply_json(r, 200, o);
}

/* An array member of hex digests (1..max). */
static int hex_array(json_t *b, const char *k, size_t max, silo_error *err)
{
	json_t *a = json_object_get(b, k), *v;
	size_t i;
	if (!json_is_array(a) || json_array_size(a) < 1 || json_array_size(a) > max)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: expected an array of 1-%zu sha256 digests", k, max);
	json_array_foreach(a, i, v)
		if (!hex64(json_string_value(v)))
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s[%zu]: expected 64 lowercase hex digits", k, i);
	return 0;
}

/* The OCI layout dir: oci-layout, index.json naming the manifest blob, and
 * hard links to the blobs. */
static int assemble_layout(const char *dir, const char *mhex, json_t *blobs, silo_error *err)
{
	char p[4400], src[4200];
	snprintf(p, sizeof p, "%s/blobs/sha256", dir);
	if (mkdir_p(p, 0700) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", p);
	json_t *v;
	size_t i;
	struct stat st;
	json_array_foreach(blobs, i, v) {
		const char *h = json_string_value(v);
		blob_path(src, sizeof src, "sha256", h);
		snprintf(p, sizeof p, "%s/blobs/sha256/%s", dir, h);
		if (link(src, p) < 0 && errno != EEXIST)
			return silo_fail(err, SILO_ERR_CONFLICT, errno,
					 "blob %s is not on this silod (push it first: PUT /v1/blobs/%s)", h, h);
	}
	blob_path(src, sizeof src, "sha256", mhex);
	snprintf(p, sizeof p, "%s/blobs/sha256/%s", dir, mhex);
	if (stat(src, &st) < 0 || (link(src, p) < 0 && errno != EEXIST))
		return silo_fail(err, SILO_ERR_CONFLICT, errno,
				 "manifest blob %s is not on this silod (push it first: PUT /v1/blobs/%s)", mhex, mhex);
	snprintf(p, sizeof p, "%s/oci-layout", dir);
	const char *layout = "{\"imageLayoutVersion\":\"1.0.0\"}";
	if (write_file_atomic(p, layout, strlen(layout), 0600, err) < 0)
		return -1;
	char *idx = xasprintf("{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/"
			      "vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:%s\",\"size\":%" PRIu64 "}]}",
			      mhex, (uint64_t)st.st_size);
	snprintf(p, sizeof p, "%s/index.json", dir);
	int rc = write_file_atomic(p, idx, strlen(idx), 0600, err);
	free(idx);
	return rc;
}

/* With keys in the keyring: the manifest blob's signature. */
static int check_signature(const char *name, const char *mhex, const char *sig, silo_error *err)
{
	trust_keyring kr;
	if (trust_keyring_open(&kr, err) < 0)
		return -1;
	size_t nk = kr.n;
	trust_keyring_close(&kr);
	if (nk == 0)
		return 0;
	if (!sig)
		return silo_fail(err, SILO_ERR_PLUGIN_UNVERIFIED, 0,
				 "image %s: this silod has a keyring (%s): a push needs \"signature\" over its manifest",
				 name, kr.dir);
	char p[4200], *m = NULL, what[128];
	size_t len;
	blob_path(p, sizeof p, "sha256", mhex);
	if (read_file(p, MANIFEST_BLOB_MAX, &m, &len, err) < 0)
		return -1;
	snprintf(what, sizeof what, "image %s manifest", name);
	trust_result res;
	int rc = trust_verify_bundle_buf(what, m, len, sig, strlen(sig), &res, err);
	free(m);
	return rc;
}

int h_image_push(api_req *q, api_reply *r, silo_error *err)
{
	static const char *const fields[] = {"name", "manifest", "blobs", "trees", "signature", NULL};
	json_t *b = api_json_body(q->body, q->len, fields, false, err);
	if (!b)
		return -1;
	int rc = -1;
	char tmp[4200] = "";
	const char *name = json_string_value(json_object_get(b, "name")),
		   *mhex = json_string_value(json_object_get(b, "manifest")),
		   *sig = json_string_value(json_object_get(b, "signature"));
	json_t *trees = json_object_get(b, "trees");
	image_entry e = {0};
	if (!name || !image_name_valid(name)) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "name: expected an image name (1-64 of [a-z0-9_-])");
		goto out;
	}
	if (!hex64(mhex)) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "manifest: expected the manifest blob's sha256 (64 lowercase hex)");
		goto out;
	}
	if (json_object_get(b, "signature") && (!sig || strlen(sig) > TRUST_SIG_FILE_MAX)) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "signature: expected minisign text (at most %d bytes)",
			  TRUST_SIG_FILE_MAX);
		goto out;
	}
	if (hex_array(b, "blobs", PUSH_BLOBS_MAX, err) < 0 || hex_array(b, "trees", IMAGE_MAX_LAYERS, err) < 0)
		goto out;
	silo_error le;
	if (image_lookup(name, &e, &le) == 0) {
		silo_fail(err, SILO_ERR_CONFLICT, 0, "image %s: this silod already has an image of that name", name);
		goto out;
	}
	if (check_signature(name, mhex, sig, err) < 0)
		goto out;
	char d[4200];
	blob_dir(d, sizeof d, "tmp");
	if (mkdir_p(d, 0700) < 0) {
		silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", d);
		goto out;
	}
	snprintf(tmp, sizeof tmp, "%s/layout-XXXXXX", d);
	if (!mkdtemp(tmp)) {
		silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdtemp %s", tmp);
		tmp[0] = '\0';
		goto out;
	}
	if (assemble_layout(tmp, mhex, json_object_get(b, "blobs"), err) < 0)
		goto out;
	char loader[4096];
	if (oci_loader(loader, sizeof loader, err) < 0)
		goto out;
	oci_import_opts o = {.source = tmp, .name = name, .loader = loader, .format = OCI_FMT_OCI};
	oci_import_result res;
	if (oci_import(&o, &res, err) < 0) {
		silo_error_prefix(err, "image %s", name);
		goto out;
	}
	if (image_lookup(name, &e, err) < 0)
		goto out;
	bool same = e.n_layers == json_array_size(trees);
	for (size_t i = 0; same && i < e.n_layers; i++)
		same = !strcmp(e.layers[i].tree, json_string_value(json_array_get(trees, i)));
	if (!same) {
		silo_error re;
		if (image_remove(name, &re) < 0)
			log_warn("image %s: %s", name, re.message);
		silo_fail(err, SILO_ERR_CHECKSUM_MISMATCH, 0,
			  "image %s: the imported layers' tree digests are not the ones the push named; removed", name);
		goto out;
	}
	manager_audit(q->ctx->m, q->who.actor, NULL, "image-push", 0, NULL);
	json_t *out = image_json(&e);
	json_object_set_new(out, "new_layers", json_integer((json_int_t)res.new_layers));
	rc = api_reply_json(r, 201, out);
out:
	if (tmp[0])
		rm_rf(tmp);
	image_entry_free(&e);
	json_decref(b);
	return rc;
}
