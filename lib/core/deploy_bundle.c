/* SPDX-License-Identifier: Apache-2.0
 * Deployments: supply chain: signed specs and bundles.
 * Locking and durability: the rules at the top of deploy.c.
 */
#include "core/deploy_int.h"

/* ---- supply chain: signed specs and bundles ---- */

/* A PLUGIN_UNVERIFIED refusal: audited and raised as a security-violation event.
 * The caller counts it (silo_plugin_verification_failures_total) through
 * manager_note_error: the API's error path, or deploy_spawn() for restarts. */
void deploy_refuse_unverified(deployer *d, const char *name, const char *tm, const char *sid, const char *what,
			      const char *sha, const char *actor, const silo_error *err)
{
	json_t *det = json_pack("{s:s,s:s,s:s,s:s}", "deployment", name ? name : "", "team", tm ? tm : "", "what", what,
				"message", err->message);
	if (sha && *sha)
		json_object_set_new(det, "sha256", json_string(sha));
	manager_audit(d->m, actor ? actor : "silod", sid && *sid ? sid : NULL, "plugin-unverified", 0, det);
	json_decref(det);
	manager_emit(d->m, MGR_EV_SECURITY_VIOLATION, sid, name, tm, NULL, "PLUGIN_UNVERIFIED", "%s", err->message);
}

static bool sha_hex_valid(const char *s)
{
	if (!s || strlen(s) != 64)
		return false;
	return strspn(s, "0123456789abcdef") == 64;
}

static void sha256_hex(const void *buf, size_t len, char out[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, buf ? buf : (const void *)"", len);
	sodium_bin2hex(out, 65, h, sizeof h);
}

void deploy_bundle_path(deployer *d, const char *sha, const char *suffix, char *out, size_t len)
{
	snprintf(out, len, "%s/%s.tar%s", d->bundles_dir, sha, suffix);
}

/* With a keyring, a spec must carry a good signature by a trusted key. */
static int verify_spec(deployer *d, const deploy_req *r, const char *tm, const char *what, const char *text,
		       size_t len, const char *sig, const char *sig_missing, const char *actor, silo_error *err)
{
	cleanup_keyring trust_keyring kr;
	if (trust_keyring_open(&kr, err) < 0)
		return -1;
	if (!kr.n)
		return 0;
	int rc;
	if (!sig)
		rc = silo_fail(err, SILO_ERR_PLUGIN_UNVERIFIED, 0,
			       "%s is not signed (%s): with a keyring configured (%s), agent specs must be signed by a "
			       "trusted key (silo trust sign FILE, or minisign -S -m FILE)",
			       what, sig_missing, kr.dir);
	else if ((rc = trust_verify_buf(kr.keys, kr.n, text, len, sig, strlen(sig), NULL, err)) < 0) {
		err->code = SILO_ERR_PLUGIN_UNVERIFIED;
		silo_error_prefix(err, "%s", what);
	}
	if (rc < 0)
		deploy_refuse_unverified(d, r->name, tm, NULL, "spec", NULL, actor, err);
	return rc;
}

int deploy_load_spec(deployer *d, const deploy_req *r, const char *tm, const char *actor, vm_spec *spec,
		     silo_error *err)
{
	cleanup_free char *ftext = NULL, *fsig = NULL;
	const char *text = r->spec_toml, *sig = r->spec_signature, *what = "spec";
	size_t len = text ? strlen(text) : 0;
	char path[PATH_MAX], sigpath[PATH_MAX + 16], missing[SILO_ERROR_MSG_MAX] = "no spec_signature in the request";
	if (!text) {
		if (!d->agents_dir)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "spec: silod has no --agents-dir; send the agent's hac.toml in the request (spec)");
		snprintf(path, sizeof path, "%s/%s.toml", d->agents_dir, r->name);
		if (!path_exists(path))
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, ENOENT,
					 "spec: no agent named '%s' (%s does not exist)", r->name, path);
		if (read_file(path, TOML_MAX_INPUT, &ftext, &len, err) < 0) {
			if (err->sys_errno == EFBIG)
				err->code = SILO_ERR_INVALID_CONFIG;
			return silo_error_prefix(err, "spec"), -1;
		}
		snprintf(sigpath, sizeof sigpath, "%s.minisig", path);
		silo_error se = {0};
		if (read_file(sigpath, TRUST_SIG_FILE_MAX, &fsig, NULL, &se) < 0)
			snprintf(missing, sizeof missing, "%s", se.message);
		text = ftext;
		sig = fsig;
		what = path;
	}
	/* the bytes verified are the bytes parsed */
	if (verify_spec(d, r, tm, what, text, len, sig, missing, actor, err) < 0)
		return -1;
	if (spec_parse(text, len, spec, err) < 0)
		return silo_error_prefix(err, "%s", what), -1;
	return 0;
}

void deploy_bundle_unmap(bundle_map *b)
{
	if (b->data)
		munmap(b->data, b->len);
	if (b->fd >= 0)
		close(b->fd);
	memset(b, 0, sizeof *b);
	b->fd = -1;
}

int deploy_bundle_open(deployer *d, const char *sha, bundle_map *b, silo_error *err)
{
	memset(b, 0, sizeof *b);
	b->fd = -1;
	if (!sha_hex_valid(sha))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "bundle: expected a sha256 (64 lowercase hex digits)");
	char tar[PATH_MAX], sig[PATH_MAX];
	deploy_bundle_path(d, sha, "", tar, sizeof tar);
	deploy_bundle_path(d, sha, ".minisig", sig, sizeof sig);
	if (!path_exists(tar) || !path_exists(sig))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, ENOENT,
				 "bundle %s was not uploaded (PUT /v1/bundles/%s, or silo deploy --bundle FILE)", sha, sha);
	if (trust_verify_bundle(tar, sig, &b->fd, &b->res, err) < 0)
		return -1;
	struct stat st;
	if (fstat(b->fd, &st) < 0) {
		deploy_bundle_unmap(b);
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "bundle %s", sha);
	}
	b->len = (size_t)st.st_size;
	if (b->len) {
		b->data = mmap(NULL, b->len, PROT_READ, MAP_PRIVATE, b->fd, 0);
		if (b->data == MAP_FAILED) {
			b->data = NULL;
			deploy_bundle_unmap(b);
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "bundle %s: mmap", sha);
		}
	}
	char have[65];
	sha256_hex(b->data, b->len, have);
	if (strcmp(have, sha) != 0) {
		deploy_bundle_unmap(b);
		return silo_fail(err, SILO_ERR_PLUGIN_UNVERIFIED, 0,
				 "bundle %s: the stored copy has sha256 %s (replaced by another signed bundle?)", sha, have);
	}
	return 0;
}

int deploy_bundle_put(deployer *d, const char *sha, int fd, const char *sig, size_t siglen, const char *actor,
		      json_t **out, silo_error *err)
{
	*out = NULL;
	if (!sha_hex_valid(sha))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "bundle: the path must end in the bundle's sha256 (64 lowercase hex digits)");
	struct stat st;
	if (fstat(fd, &st) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "bundle upload");
	if ((uint64_t)st.st_size > TRUST_BUNDLE_MAX)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, EFBIG, "bundle: %lld bytes (limit %llu)", (long long)st.st_size,
				 (unsigned long long)TRUST_BUNDLE_MAX);
	size_t len = (size_t)st.st_size;
	void *map = NULL;
	if (len && (map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "bundle upload: mmap");
	int rc = -1;
	char have[65];
	sha256_hex(map, len, have);
	trust_result res;
	if (strcmp(have, sha) != 0) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "bundle: the body has sha256 %s, the path says %s", have, sha);
		goto out;
	}
	if (trust_verify_bundle_buf(sha, map, len, sig, siglen, &res, err) < 0) {
		deploy_refuse_unverified(d, NULL, NULL, NULL, "bundle", sha, actor, err);
		goto out;
	}
	if (trust_bundle_walk(map, len, NULL, NULL, err) < 0)
		goto out;
	char tar[PATH_MAX], sp[PATH_MAX];
	deploy_bundle_path(d, sha, "", tar, sizeof tar);
	deploy_bundle_path(d, sha, ".minisig", sp, sizeof sp);
	if (mkdir_p(d->bundles_dir, 0700) < 0) {
		silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", d->bundles_dir);
		goto out;
	}
	/* content-addressed: an existing copy is the same bytes (deploy_bundle_open checks) */
	if ((!path_exists(tar) && write_file_atomic(tar, map ? map : "", len, 0600, err) < 0) ||
	    write_file_atomic(sp, sig, siglen, 0600, err) < 0)
		goto out;
	utimensat(AT_FDCWD, tar, NULL, 0); /* a fresh upload: kept DEPLOY_BUNDLE_KEEP_S for its deploy */
	*out = json_pack("{s:s,s:I,s:s,s:s}", "sha256", sha, "size", (json_int_t)len, "key_id", res.keyid_hex,
			 "trusted_comment", res.trusted_comment);
	json_t *det = json_pack("{s:s,s:I,s:s}", "sha256", sha, "size", (json_int_t)len, "key_id", res.keyid_hex);
	manager_audit(d->m, actor, NULL, "bundle-stored", 0, det);
	json_decref(det);
	rc = 0;
out:
	if (map)
		munmap(map, len);
	return rc;
}

/* Unpack a verified bundle into DEPLOY_BUNDLE_DIR of a live sandbox. */
typedef struct unpack_ctx {
	chan *ch;
	uint64_t files, bytes;
	char last_dir[PATH_MAX];
} unpack_ctx;

static int unpack_entry(void *ud, const trust_bundle_entry *e, silo_error *err)
{
	unpack_ctx *u = ud;
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", DEPLOY_BUNDLE_DIR, e->path);
	if (e->dir)
		return chan_mkdir(u->ch, path, e->mode | 0700, true, err);
	char parent[PATH_MAX];
	snprintf(parent, sizeof parent, "%s", path);
	*strrchr(parent, '/') = '\0';
	if (strcmp(parent, u->last_dir) != 0) {
		if (chan_mkdir(u->ch, parent, 0755, true, err) < 0)
			return -1;
		snprintf(u->last_dir, sizeof u->last_dir, "%s", parent);
	}
	u->files++;
	u->bytes += e->size;
	return chan_file_write(u->ch, path, e->data, (size_t)e->size, e->mode, err);
}

typedef struct unpack_job {
	const bundle_map *b;
	unpack_ctx u;
} unpack_job;

static int do_unpack(sandbox *sb, void *ud, silo_error *err)
{
	unpack_job *j = ud;
	j->u.ch = sb->ch;
	if (chan_mkdir(sb->ch, DEPLOY_BUNDLE_DIR, 0755, true, err) < 0)
		return -1;
	snprintf(j->u.last_dir, sizeof j->u.last_dir, "%s", DEPLOY_BUNDLE_DIR);
	return trust_bundle_walk(j->b->data, j->b->len, unpack_entry, &j->u, err);
}

int deploy_unpack_bundle(deployer *d, const dstore_row *r, const char *sid, const char *actor, silo_error *err)
{
	bundle_map b;
	if (deploy_bundle_open(d, r->bundle, &b, err) < 0) {
		if (err->code == SILO_ERR_PLUGIN_UNVERIFIED)
			deploy_refuse_unverified(d, r->name, r->team, sid, "bundle", r->bundle, actor, err);
		return silo_error_prefix(err, "deployment %s", r->name), -1;
	}
	uint64_t t0 = now_mono_ns();
	unpack_job j = {.b = &b};
	int rc = manager_with_sandbox(d->m, sid, false, do_unpack, &j, err);
	if (rc < 0) {
		silo_error_prefix(err, "deployment %s: unpacking bundle %.12s into %s", r->name, r->bundle, DEPLOY_BUNDLE_DIR);
	} else {
		json_t *det = json_pack("{s:s,s:s,s:s,s:I,s:I}", "deployment", r->name, "sha256", r->bundle, "key_id",
					b.res.keyid_hex, "files", (json_int_t)j.u.files, "bytes", (json_int_t)j.u.bytes);
		json_object_set_new(det, "dir", json_string(DEPLOY_BUNDLE_DIR));
		manager_audit(d->m, actor, sid, "bundle-unpacked", (now_mono_ns() - t0) / 1000000, det);
		json_decref(det);
	}
	deploy_bundle_unmap(&b);
	return rc;
}

/* Stored bundles no deployment names, older than DEPLOY_BUNDLE_KEEP_S, are removed (d->lock held). */
void deploy_bundles_gc_locked(deployer *d)
{
	DIR *dir = opendir(d->bundles_dir);
	if (!dir)
		return;
	time_t now = time(NULL);
	struct dirent *de;
	while ((de = readdir(dir))) {
		char sha[65];
		size_t l = strlen(de->d_name);
		bool tar = l == 68 && !strcmp(de->d_name + 64, ".tar");
		bool sig = l == 76 && !strcmp(de->d_name + 64, ".tar.minisig");
		if (!tar && !sig)
			continue;
		snprintf(sha, sizeof sha, "%.64s", de->d_name);
		if (!sha_hex_valid(sha))
			continue;
		bool used = false;
		for (dep *p = d->deps; p && !used; p = p->next)
			used = !strcmp(p->row.bundle, sha);
		char path[PATH_MAX], tpath[PATH_MAX];
		deploy_bundle_path(d, sha, sig ? ".minisig" : "", path, sizeof path);
		deploy_bundle_path(d, sha, "", tpath, sizeof tpath);
		struct stat st;
		/* a signature goes with its tar (by the tar's age), or alone when the tar is gone */
		bool old = stat(tpath, &st) < 0 || now - st.st_mtime > DEPLOY_BUNDLE_KEEP_S;
		if (!used && old)
			unlink(path);
	}
	closedir(dir);
}
