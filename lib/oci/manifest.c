/* SPDX-License-Identifier: Apache-2.0
 * Image JSON documents (manifest.h): parse with jansson (duplicate keys refused,
 * no embedded NULs), then copy out only validated fields. Nothing here touches
 * the file system.
 */
#include "oci/manifest.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define ENV_MAX 4096
#define ENV_ITEM_MAX (32u * 1024)
#define ARGV_MAX 4096
#define ARG_ITEM_MAX (128u * 1024)
#define ARCHIVE_PATH_MAX 512
#define DOCKER_ENTRIES_MAX 64

bool oci_digest_valid(const char *d)
{
	if (!d || strlen(d) != OCI_DIGEST_LEN || strncmp(d, "sha256:", 7) != 0)
		return false;
	return strspn(d + 7, "0123456789abcdef") == 64;
}

static const struct {
	const char *type;
	oci_comp comp;
} layer_types[] = {
	{"application/vnd.oci.image.layer.v1.tar", OCI_COMP_NONE},
	{"application/vnd.oci.image.layer.v1.tar+gzip", OCI_COMP_GZIP},
	{"application/vnd.oci.image.layer.v1.tar+zstd", OCI_COMP_ZSTD},
	{"application/vnd.oci.image.layer.nondistributable.v1.tar", OCI_COMP_NONE},
	{"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", OCI_COMP_GZIP},
	{"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", OCI_COMP_ZSTD},
	{"application/vnd.docker.image.rootfs.diff.tar", OCI_COMP_NONE},
	{"application/vnd.docker.image.rootfs.diff.tar.gzip", OCI_COMP_GZIP},
	{"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", OCI_COMP_GZIP},
};

int oci_layer_media_comp(const char *mt, oci_comp *c)
{
	for (size_t i = 0; i < ARRAY_SIZE(layer_types); i++)
		if (!strcmp(mt, layer_types[i].type)) {
			*c = layer_types[i].comp;
			return 0;
		}
	return -1;
}

int oci_desc_kind(const oci_desc *d, oci_doc_kind *k, silo_error *err)
{
	if (!strcmp(d->media_type, "application/vnd.oci.image.index.v1+json") ||
	    !strcmp(d->media_type, "application/vnd.docker.distribution.manifest.list.v2+json"))
		*k = OCI_DOC_INDEX;
	else if (!strcmp(d->media_type, "application/vnd.oci.image.manifest.v1+json") ||
		 !strcmp(d->media_type, "application/vnd.docker.distribution.manifest.v2+json"))
		*k = OCI_DOC_MANIFEST;
	else
		return silo_fail(err, SILO_ERR_NOT_SUPPORTED, 0, "index: %s: media type \"%.100s\" is not an image manifest",
				 d->digest, d->media_type);
	return 0;
}

__attribute__((format(printf, 3, 4))) static int jfail(silo_error *err, const char *doc, const char *fmt, ...)
{
	char m[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof m, fmt, ap);
	va_end(ap);
	return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: %s", doc, m);
}

/* Parse doc: an object, or (array) an array. */
static json_t *load(const char *text, size_t len, const char *doc, bool array, silo_error *err)
{
	if (len > OCI_JSON_MAX) {
		jfail(err, doc, "%zu bytes (limit %u)", len, OCI_JSON_MAX);
		return NULL;
	}
	json_error_t je;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		jfail(err, doc, "line %d col %d: %s", je.line, je.column, je.text);
	else if (array ? !json_is_array(root) : !json_is_object(root)) {
		jfail(err, doc, "expected a JSON %s", array ? "array" : "object");
		json_decref(root);
		root = NULL;
	}
	return root;
}

static bool printable(const char *s, bool space_ok)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f || (!space_ok && *s == ' '))
			return false;
	return true;
}

/* Copy a string member: absent/null is fine unless required. */
static int get_str(json_t *o, const char *key, char *dst, size_t cap, bool required, const char *doc,
		   const char *where, silo_error *err)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v)) {
		if (required)
			return jfail(err, doc, "%s%s: missing", where, key);
		dst[0] = '\0';
		return 0;
	}
	const char *s = json_string_value(v);
	if (!s || strlen(s) >= cap || !printable(s, false))
		return jfail(err, doc, "%s%s: expected a string of at most %zu printable bytes", where, key, cap - 1);
	memcpy(dst, s, strlen(s) + 1);
	return 0;
}

static int parse_desc(json_t *o, oci_desc *d, bool need_type, const char *doc, const char *where, silo_error *err)
{
	memset(d, 0, sizeof *d);
	if (!json_is_object(o))
		return jfail(err, doc, "%s: expected an object", where);
	char w[96];
	snprintf(w, sizeof w, "%s.", where);
	if (get_str(o, "mediaType", d->media_type, sizeof d->media_type, need_type, doc, w, err) < 0)
		return -1;
	const char *dg = json_string_value(json_object_get(o, "digest"));
	if (dg && strncmp(dg, "sha256:", 7) != 0 && strchr(dg, ':'))
		return silo_fail(err, SILO_ERR_NOT_SUPPORTED, 0, "%s: %sdigest: only sha256 digests are supported", doc, w);
	if (!oci_digest_valid(dg))
		return jfail(err, doc, "%sdigest: expected sha256:<64 lowercase hex>", w);
	memcpy(d->digest, dg, OCI_DIGEST_LEN + 1);
	json_t *sz = json_object_get(o, "size");
	if (!json_is_integer(sz) || json_integer_value(sz) < 0)
		return jfail(err, doc, "%ssize: expected a non-negative integer", w);
	d->size = (uint64_t)json_integer_value(sz);
	json_t *ann = json_object_get(o, "annotations");
	if (ann && !json_is_null(ann)) {
		if (!json_is_object(ann))
			return jfail(err, doc, "%sannotations: expected an object", w);
		char w2[128];
		snprintf(w2, sizeof w2, "%sannotations.", w);
		if (get_str(ann, "org.opencontainers.image.ref.name", d->ref, sizeof d->ref, false, doc, w2, err) < 0)
			return -1;
	}
	json_t *pl = json_object_get(o, "platform");
	if (pl && !json_is_null(pl)) {
		if (!json_is_object(pl))
			return jfail(err, doc, "%splatform: expected an object", w);
		char w2[128];
		snprintf(w2, sizeof w2, "%splatform.", w);
		if (get_str(pl, "os", d->os, sizeof d->os, false, doc, w2, err) < 0 ||
		    get_str(pl, "architecture", d->arch, sizeof d->arch, false, doc, w2, err) < 0 ||
		    get_str(pl, "variant", d->variant, sizeof d->variant, false, doc, w2, err) < 0)
			return -1;
	}
	return 0;
}

static int check_schema(json_t *root, const char *doc, silo_error *err)
{
	json_t *sv = json_object_get(root, "schemaVersion");
	if (!json_is_integer(sv) || json_integer_value(sv) != 2)
		return jfail(err, doc, "schemaVersion: expected 2");
	return 0;
}

int oci_index_parse(const char *text, size_t len, oci_desc **out, size_t *n, silo_error *err)
{
	*out = NULL;
	*n = 0;
	json_t *root = load(text, len, "index", false, err);
	if (!root)
		return -1;
	int rc = -1;
	oci_desc *v = NULL;
	json_t *ms = json_object_get(root, "manifests");
	if (check_schema(root, "index", err) < 0)
		goto out;
	if (!json_is_array(ms) || json_array_size(ms) == 0 || json_array_size(ms) > OCI_MAX_MANIFESTS) {
		jfail(err, "index", "manifests: expected an array of 1-%d descriptors", OCI_MAX_MANIFESTS);
		goto out;
	}
	size_t cnt = json_array_size(ms);
	v = xcalloc(cnt, sizeof *v);
	for (size_t i = 0; i < cnt; i++) {
		char w[32];
		snprintf(w, sizeof w, "manifests[%zu]", i);
		if (parse_desc(json_array_get(ms, i), &v[i], true, "index", w, err) < 0)
			goto out;
	}
	*out = v;
	*n = cnt;
	v = NULL;
	rc = 0;
out:
	free(v);
	json_decref(root);
	return rc;
}

void oci_manifest_free(oci_manifest *m)
{
	free(m->layers);
	memset(m, 0, sizeof *m);
}

int oci_manifest_parse(const char *text, size_t len, oci_manifest *m, silo_error *err)
{
	memset(m, 0, sizeof *m);
	json_t *root = load(text, len, "manifest", false, err);
	if (!root)
		return -1;
	int rc = -1;
	if (check_schema(root, "manifest", err) < 0)
		goto out;
	const char *mt = json_string_value(json_object_get(root, "mediaType"));
	if (mt && strcmp(mt, "application/vnd.oci.image.manifest.v1+json") != 0 &&
	    strcmp(mt, "application/vnd.docker.distribution.manifest.v2+json") != 0) {
		jfail(err, "manifest", "mediaType: \"%.100s\" is not an image manifest", mt);
		goto out;
	}
	if (parse_desc(json_object_get(root, "config"), &m->config, false, "manifest", "config", err) < 0)
		goto out;
	json_t *ls = json_object_get(root, "layers");
	if (!json_is_array(ls) || json_array_size(ls) == 0 || json_array_size(ls) > OCI_MAX_LAYERS) {
		jfail(err, "manifest", "layers: expected an array of 1-%d descriptors", OCI_MAX_LAYERS);
		goto out;
	}
	m->n_layers = json_array_size(ls);
	m->layers = xcalloc(m->n_layers, sizeof *m->layers);
	for (size_t i = 0; i < m->n_layers; i++) {
		char w[32];
		snprintf(w, sizeof w, "layers[%zu]", i);
		if (parse_desc(json_array_get(ls, i), &m->layers[i], true, "manifest", w, err) < 0)
			goto out;
		oci_comp c;
		if (oci_layer_media_comp(m->layers[i].media_type, &c) < 0) {
			silo_fail(err, SILO_ERR_NOT_SUPPORTED, 0, "manifest: %s.mediaType: \"%.100s\" is not a layer type silo can read",
				  w, m->layers[i].media_type);
			goto out;
		}
	}
	rc = 0;
out:
	if (rc < 0)
		oci_manifest_free(m);
	json_decref(root);
	return rc;
}

/* A string array member (absent or null: *out stays NULL). */
static int get_strv(json_t *o, const char *key, size_t max_items, size_t max_len, bool env, char ***out,
		    const char *doc, silo_error *err)
{
	*out = NULL;
	json_t *a = json_object_get(o, key);
	if (!a || json_is_null(a))
		return 0;
	if (!json_is_array(a) || json_array_size(a) > max_items)
		return jfail(err, doc, "config.%s: expected an array of at most %zu strings", key, max_items);
	size_t n = json_array_size(a);
	char **v = xcalloc(n + 1, sizeof *v);
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(a, i));
		const char *eq = s ? strchr(s, '=') : NULL;
		if (!s || strlen(s) > max_len || (env && (!eq || eq == s))) {
			strv_free(v);
			return jfail(err, doc, "config.%s[%zu]: expected %s of at most %zu bytes", key, i,
				     env ? "KEY=VALUE" : "a string", max_len);
		}
		v[i] = xstrdup(s);
	}
	*out = v;
	return 0;
}

void oci_config_free(oci_config *c)
{
	strv_free(c->env);
	strv_free(c->entrypoint);
	strv_free(c->cmd);
	free(c->working_dir);
	free(c->user);
	free(c->diff_ids);
	memset(c, 0, sizeof *c);
}

int oci_config_parse(const char *text, size_t len, oci_config *c, silo_error *err)
{
	memset(c, 0, sizeof *c);
	json_t *root = load(text, len, "config", false, err);
	if (!root)
		return -1;
	int rc = -1;
	const char *doc = "config";
	if (get_str(root, "os", c->os, sizeof c->os, false, doc, "", err) < 0 ||
	    get_str(root, "architecture", c->arch, sizeof c->arch, false, doc, "", err) < 0 ||
	    get_str(root, "variant", c->variant, sizeof c->variant, false, doc, "", err) < 0)
		goto out;
	if (c->os[0] && strcmp(c->os, "linux") != 0) {
		silo_fail(err, SILO_ERR_NOT_SUPPORTED, 0, "config: os: \"%s\" images cannot run here (linux only)", c->os);
		goto out;
	}
	json_t *cf = json_object_get(root, "config");
	if (cf && !json_is_null(cf)) {
		if (!json_is_object(cf)) {
			jfail(err, doc, "config: expected an object");
			goto out;
		}
		if (get_strv(cf, "Env", ENV_MAX, ENV_ITEM_MAX, true, &c->env, doc, err) < 0 ||
		    get_strv(cf, "Entrypoint", ARGV_MAX, ARG_ITEM_MAX, false, &c->entrypoint, doc, err) < 0 ||
		    get_strv(cf, "Cmd", ARGV_MAX, ARG_ITEM_MAX, false, &c->cmd, doc, err) < 0)
			goto out;
		json_t *wd = json_object_get(cf, "WorkingDir"), *us = json_object_get(cf, "User");
		if (wd && !json_is_null(wd)) {
			const char *s = json_string_value(wd);
			if (!s || strlen(s) > 4096 || (s[0] && s[0] != '/') || !printable(s, true)) {
				jfail(err, doc, "config.WorkingDir: expected an absolute path");
				goto out;
			}
			if (s[0])
				c->working_dir = xstrdup(s);
		}
		if (us && !json_is_null(us)) {
			const char *s = json_string_value(us);
			if (!s || strlen(s) > 256 || !printable(s, false)) {
				jfail(err, doc, "config.User: expected user[:group] of at most 256 printable bytes");
				goto out;
			}
			if (s[0])
				c->user = xstrdup(s);
		}
	}
	json_t *rf = json_object_get(root, "rootfs");
	json_t *ids = json_object_get(rf, "diff_ids");
	const char *rt = json_string_value(json_object_get(rf, "type"));
	if (!json_is_object(rf) || !rt || strcmp(rt, "layers") != 0) {
		jfail(err, doc, "rootfs: expected {\"type\": \"layers\", \"diff_ids\": [...]}");
		goto out;
	}
	if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > OCI_MAX_LAYERS) {
		jfail(err, doc, "rootfs.diff_ids: expected an array of 1-%d digests", OCI_MAX_LAYERS);
		goto out;
	}
	c->n_diff_ids = json_array_size(ids);
	c->diff_ids = xcalloc(c->n_diff_ids, sizeof *c->diff_ids);
	for (size_t i = 0; i < c->n_diff_ids; i++) {
		const char *d = json_string_value(json_array_get(ids, i));
		if (!oci_digest_valid(d)) {
			jfail(err, doc, "rootfs.diff_ids[%zu]: expected sha256:<64 lowercase hex>", i);
			goto out;
		}
		memcpy(c->diff_ids[i], d, OCI_DIGEST_LEN + 1);
	}
	rc = 0;
out:
	if (rc < 0)
		oci_config_free(c);
	json_decref(root);
	return rc;
}

void docker_entries_free(docker_entry *v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++) {
		free(v[i].config);
		strv_free(v[i].repo_tags);
		for (size_t j = 0; j < v[i].n_layers; j++)
			free(v[i].layers[j]);
		free(v[i].layers);
	}
	free(v);
}

static const char *archive_path(json_t *v)
{
	const char *s = json_string_value(v);
	if (!s || !s[0] || strlen(s) > ARCHIVE_PATH_MAX || !path_is_safe_relative(s) || !printable(s, true))
		return NULL;
	return s;
}

int docker_manifest_parse(const char *text, size_t len, docker_entry **out, size_t *n, silo_error *err)
{
	*out = NULL;
	*n = 0;
	const char *doc = "docker manifest.json";
	json_t *root = load(text, len, doc, true, err);
	if (!root)
		return -1;
	int rc = -1;
	size_t cnt = json_array_size(root);
	docker_entry *v = NULL;
	if (cnt == 0 || cnt > DOCKER_ENTRIES_MAX) {
		jfail(err, doc, "expected an array of 1-%d images", DOCKER_ENTRIES_MAX);
		goto out;
	}
	v = xcalloc(cnt, sizeof *v);
	for (size_t i = 0; i < cnt; i++) {
		json_t *o = json_array_get(root, i);
		const char *cfg = archive_path(json_object_get(o, "Config"));
		if (!json_is_object(o) || !cfg) {
			jfail(err, doc, "[%zu].Config: expected a relative path inside the archive", i);
			goto out;
		}
		v[i].config = xstrdup(cfg);
		json_t *tags = json_object_get(o, "RepoTags");
		size_t nt = json_is_array(tags) ? json_array_size(tags) : 0;
		if ((tags && !json_is_null(tags) && !json_is_array(tags)) || nt > 256) {
			jfail(err, doc, "[%zu].RepoTags: expected an array of at most 256 strings", i);
			goto out;
		}
		v[i].repo_tags = xcalloc(nt + 1, sizeof(char *));
		for (size_t j = 0; j < nt; j++) {
			const char *t = json_string_value(json_array_get(tags, j));
			if (!t || strlen(t) > 255 || !printable(t, false)) {
				jfail(err, doc, "[%zu].RepoTags[%zu]: expected a printable string of at most 255 bytes", i, j);
				goto out;
			}
			v[i].repo_tags[j] = xstrdup(t);
		}
		json_t *ls = json_object_get(o, "Layers");
		if (!json_is_array(ls) || json_array_size(ls) == 0 || json_array_size(ls) > OCI_MAX_LAYERS) {
			jfail(err, doc, "[%zu].Layers: expected an array of 1-%d paths", i, OCI_MAX_LAYERS);
			goto out;
		}
		v[i].layers = xcalloc(json_array_size(ls), sizeof(char *));
		for (size_t j = 0; j < json_array_size(ls); j++) {
			const char *p = archive_path(json_array_get(ls, j));
			if (!p) {
				jfail(err, doc, "[%zu].Layers[%zu]: expected a relative path inside the archive", i, j);
				goto out;
			}
			v[i].layers[v[i].n_layers++] = xstrdup(p);
		}
	}
	*out = v;
	*n = cnt;
	v = NULL;
	rc = 0;
out:
	docker_entries_free(v, cnt);
	json_decref(root);
	return rc;
}
