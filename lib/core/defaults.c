/* SPDX-License-Identifier: Apache-2.0
 * Sandbox defaults from an image's config (docs/images.md "Sandbox defaults"):
 * the image config's Env, WorkingDir and User become the spec's env, workdir
 * and user where the spec does not set them (image_defaults_apply, at create,
 * for every provider, embedded and in silod); once the agent answers, the
 * workdir is made if missing and the user is resolved to numeric ids in the
 * sandbox's own /etc/passwd and /etc/group (sandbox_exec_defaults), the
 * default credentials of every exec that names none. Entrypoint + Cmd are
 * the command of `silo run --image NAME` without one (image_default_argv).
 *
 * Everything read here is hostile: image.json is written by our import from
 * an image config, and /etc/passwd and /etc/group come from inside the
 * sandbox (read through the agent, at most USER_DB_MAX bytes each).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "core/defaults.h"
#include "oci/oci.h"

/* The "defaults" of an imported image's image.json; NULL for a built image or
 * an unknown name (the provider reports those). */
static json_t *image_defaults(const char *image)
{
	if (!image || !*image)
		return NULL;
	json_t *info = NULL;
	silo_error e = {0};
	if (oci_image_info(image, &info, &e) < 0 || !info)
		return NULL;
	json_t *d = json_incref(json_object_get(info, "defaults"));
	json_decref(info);
	if (d && !json_is_object(d)) {
		json_decref(d);
		return NULL;
	}
	return d;
}

int image_defaults_apply(vm_spec *spec, silo_error *err)
{
	json_t *d = image_defaults(spec->image);
	if (!d)
		return 0;
	json_t *env = json_object_get(d, "env"), *v;
	size_t i;
	json_array_foreach(env, i, v)
	{
		const char *kv = json_string_value(v);
		const char *eq = kv ? strchr(kv, '=') : NULL;
		if (!eq || eq == kv || (size_t)(eq - kv) > 255 || strlen(eq + 1) > 65536) {
			log_warn("image %s: Env[%zu] is not KEY=VALUE within limits: ignored", spec->image, i);
			continue;
		}
		char key[256];
		snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
		if (!spec_env_key_valid(key)) {
			log_warn("image %s: Env[%zu]: \"%s\" is not a variable name of [A-Za-z_][A-Za-z0-9_]*: ignored",
				 spec->image, i, key);
			continue;
		}
		if (spec_get_env(spec, key))
			continue;   /* the spec's own value wins */
		if (spec->n_env >= SPEC_MAX_KV) {
			json_decref(d);
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "image %s: its Env and the spec's env are more than %d variables", spec->image,
					 SPEC_MAX_KV);
		}
		spec_set_env(spec, key, eq + 1);
	}
	const char *wd = json_string_value(json_object_get(d, "working_dir"));
	if (!spec->workdir && wd && *wd) {
		if (wd[0] != '/' || strlen(wd) >= 4096) {
			json_decref(d);
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "image %s: WorkingDir \"%.64s\" is not an absolute path", spec->image, wd);
		}
		spec->workdir = xstrdup(wd);
	}
	const char *user = json_string_value(json_object_get(d, "user"));
	if (!spec->user && user && *user) {
		if (!spec_user_valid(user)) {
			json_decref(d);
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "image %s: User \"%.64s\" is not uid[:gid] or name[:group] of [A-Za-z0-9_.-]",
					 spec->image, user);
		}
		spec->user = xstrdup(user);
	}
	json_decref(d);
	return 0;
}

int image_default_argv(const char *image, char ***argv)
{
	*argv = NULL;
	json_t *d = image_defaults(image);
	if (!d)
		return 0;
	char **v = NULL;
	size_t n = 0;
	const char *parts[] = {"entrypoint", "cmd"};
	for (size_t p = 0; p < ARRAY_SIZE(parts); p++) {
		json_t *a = json_object_get(d, parts[p]), *x;
		size_t i;
		json_array_foreach(a, i, x)
		{
			const char *s = json_string_value(x);
			if (!s)
				continue;
			v = xrealloc(v, (n + 2) * sizeof *v);
			v[n++] = xstrdup(s);
			v[n] = NULL;
		}
	}
	json_decref(d);
	*argv = v;
	return n ? 1 : 0;
}

/* ---- /etc/passwd and /etc/group ---- */

static int64_t parse_id(const char *s, size_t n)
{
	if (!all_digits(s, n, 10))
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (uint64_t)(s[i] - '0');
	return v <= 0xfffffffeull ? (int64_t)v : -1;   /* (uid_t)-1 is not an id */
}

/* Find the line of db (passwd or group format) whose field 0 (a name) or, with
 * by_id, field 2 (the id) equals key; its fields 2 and 3 as ids (-1 when
 * absent or malformed). 1 found, 0 not. Lines are bounded by the buffer; a
 * malformed line is skipped. */
static int db_find(const char *db, size_t len, const char *key, bool by_id, int64_t *id, int64_t *id2)
{
	size_t kl = strlen(key);
	for (size_t at = 0; at < len;) {
		const char *line = db + at;
		const char *nl = memchr(line, '\n', len - at);
		size_t ll = nl ? (size_t)(nl - line) : len - at;
		at += ll + 1;
		const char *f[4] = {0};
		size_t fl[4] = {0};
		size_t nf = 0;
		for (size_t s = 0; nf < 4;) {
			const char *c = memchr(line + s, ':', ll - s);
			size_t e = c ? (size_t)(c - line) : ll;
			f[nf] = line + s;
			fl[nf++] = e - s;
			if (!c)
				break;
			s = e + 1;
		}
		if (nf < 3 || memchr(line, '\0', ll))
			continue;
		size_t k = by_id ? 2 : 0;
		if (fl[k] != kl || memcmp(f[k], key, kl) != 0)
			continue;
		*id = parse_id(f[2], fl[2]);
		*id2 = nf > 3 ? parse_id(f[3], fl[3]) : -1;
		if (*id < 0)
			continue;
		return 1;
	}
	return 0;
}

int user_resolve(const char *user, const char *passwd, size_t plen, const char *group, size_t glen, int64_t *uid,
		 int64_t *gid, silo_error *err)
{
	*uid = *gid = -1;
	if (!spec_user_valid(user))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "user: \"%.64s\" is not uid[:gid] or name[:group]",
				 user ? user : "");
	const char *colon = strchr(user, ':');
	size_t ul = colon ? (size_t)(colon - user) : strlen(user);
	char u[65], g[65] = "";
	snprintf(u, sizeof u, "%.*s", (int)ul, user);
	if (colon)
		snprintf(g, sizeof g, "%s", colon + 1);
	int64_t pw_uid = -1, pw_gid = -1;
	if (all_digits(u, strlen(u), 10)) {
		*uid = parse_id(u, strlen(u));
		if (*uid < 0)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "user: uid %s is out of range", u);
		db_find(passwd, plen, u, true, &pw_uid, &pw_gid);   /* its primary group, if listed */
	} else if (db_find(passwd, plen, u, false, &pw_uid, &pw_gid) == 1) {
		*uid = pw_uid;
	} else {
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "user: no user \"%s\" in the sandbox's /etc/passwd", u);
	}
	if (!g[0]) {
		*gid = pw_gid >= 0 ? pw_gid : 0;   /* as runc: the user's primary group, else 0 */
		return 0;
	}
	if (all_digits(g, strlen(g), 10)) {
		*gid = parse_id(g, strlen(g));
		if (*gid < 0)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "user: gid %s is out of range", g);
		return 0;
	}
	int64_t gr_gid = -1, unused;
	if (db_find(group, glen, g, false, &gr_gid, &unused) != 1)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "user: no group \"%s\" in the sandbox's /etc/group", g);
	*gid = gr_gid;
	return 0;
}

/* A file of the sandbox, at most USER_DB_MAX bytes; absent or unreadable = empty. */
static char *guest_file(sandbox *sb, const char *path, size_t *len)
{
	char *txt = NULL;
	silo_error e = {0};
	*len = 0;
	if (chan_file_read(sb->ch, path, USER_DB_MAX, &txt, len, &e) < 0) {
		free(txt);
		*len = 0;
		return xstrdup("");
	}
	return txt;
}

int sandbox_exec_defaults(sandbox *sb, silo_error *err)
{
	sb->exec_uid = sb->exec_gid = -1;
	if (!sb->ch)
		return 0;
	const vm_spec *s = &sb->spec;
	if (s->workdir && strcmp(s->workdir, "/") != 0) {
		file_stat st = {0};
		silo_error e = {0};
		if (chan_stat(sb->ch, s->workdir, &st, &e) < 0 || !st.exists) {
			if (chan_mkdir(sb->ch, s->workdir, 0755, true, &e) < 0)
				return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, e.sys_errno, sb->id,
						    "workdir %s: cannot be made in the sandbox: %s", s->workdir, e.message);
		}
	}
	if (!s->user)
		return 0;
	bool numeric = true;
	for (const char *p = s->user; *p; p++)
		numeric = numeric && ((*p >= '0' && *p <= '9') || *p == ':');
	bool both = numeric && strchr(s->user, ':');   /* "uid:gid": nothing to look up */
	size_t plen = 0, glen = 0;
	cleanup_free char *passwd = both ? xstrdup("") : guest_file(sb, "/etc/passwd", &plen);
	cleanup_free char *group = both || !strchr(s->user, ':') ? xstrdup("") : guest_file(sb, "/etc/group", &glen);
	if (user_resolve(s->user, passwd, plen, group, glen, &sb->exec_uid, &sb->exec_gid, err) < 0)
		return silo_error_set_vm(err, sb->id), -1;
	return 0;
}
