/* SPDX-License-Identifier: Apache-2.0
 * config.json and process.json (OCI runtime-spec 1.x): the part silo-oci uses,
 * bounded and checked field by field (RT_CONFIG_MAX bytes, RT_MAX_* entries,
 * strings without NUL, absolute paths where the spec says so). Fields a
 * sandbox has no use for (capabilities, seccomp, apparmor, selinux, namespaces,
 * devices, sysctl) are read by nobody: the sandbox brings its own confinement
 * (docs/kubernetes.md, "What maps to what"). Errors are INVALID_CONFIG naming
 * the field, e.g. "process.args[2]: expected a string".
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include "common/util.h"
#include "runtime/rt.h"

#define STR_MAX 65536

static int bad(silo_error *err, const char *field, const char *what)
{
	return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "config: %s: %s", field, what);
}

/* A string without NUL of at most max bytes; NULL (absent) is allowed unless required. */
static int get_str(json_t *o, const char *key, const char *field, size_t max, bool required, char **out,
		   silo_error *err)
{
	*out = NULL;
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return required ? bad(err, field, "is required") : 0;
	if (!json_is_string(v))
		return bad(err, field, "expected a string");
	size_t n = json_string_length(v);
	if (n > max || strlen(json_string_value(v)) != n)
		return bad(err, field, n > max ? "too long" : "contains a NUL byte");
	*out = xstrdup(json_string_value(v));
	return 0;
}

static int get_bool(json_t *o, const char *key, const char *field, bool *out, silo_error *err)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return bad(err, field, "expected true or false");
	*out = json_is_true(v);
	return 0;
}

/* An integer in lo..hi; absent leaves *out. */
static int get_int(json_t *o, const char *key, const char *field, int64_t lo, int64_t hi, int64_t *out,
		   silo_error *err)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "config: %s: expected an integer in %lld..%lld", field,
				 (long long)lo, (long long)hi);
	*out = json_integer_value(v);
	return 0;
}

/* An array of strings (at most RT_MAX_ARGS, each STR_MAX) as a strv; absent = NULL. */
static int get_strv(json_t *o, const char *key, const char *field, bool kv, char ***out, silo_error *err)
{
	*out = NULL;
	json_t *a = json_object_get(o, key);
	if (!a || json_is_null(a))
		return 0;
	if (!json_is_array(a) || json_array_size(a) > RT_MAX_ARGS)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "config: %s: expected an array of at most %d strings",
				 field, RT_MAX_ARGS);
	size_t n = json_array_size(a);
	char **v = xcalloc(n + 1, sizeof *v);
	for (size_t i = 0; i < n; i++) {
		json_t *x = json_array_get(a, i);
		char f[96];
		snprintf(f, sizeof f, "%s[%zu]", field, i);
		size_t l = json_is_string(x) ? json_string_length(x) : 0;
		if (!json_is_string(x) || l > STR_MAX || strlen(json_string_value(x)) != l ||
		    (kv && (!strchr(json_string_value(x), '=') || json_string_value(x)[0] == '='))) {
			strv_free(v);
			return bad(err, f, kv ? "expected \"KEY=VALUE\" (a string without NUL)" : "expected a string without NUL");
		}
		v[i] = xstrdup(json_string_value(x));
	}
	*out = v;
	return 0;
}

static bool abs_path(const char *p)
{
	return p && p[0] == '/' && strlen(p) < PATH_MAX;
}

/* No ".." component. */
static bool no_dotdot(const char *p)
{
	for (const char *q = p; (q = strstr(q, "..")); q += 2)
		if ((q == p || q[-1] == '/') && (q[2] == '/' || q[2] == '\0'))
			return false;
	return true;
}

static const struct {
	const char *name;
	int res;
} rlimit_names[] = {
	{"RLIMIT_AS", RLIMIT_AS},         {"RLIMIT_CORE", RLIMIT_CORE},       {"RLIMIT_CPU", RLIMIT_CPU},
	{"RLIMIT_DATA", RLIMIT_DATA},     {"RLIMIT_FSIZE", RLIMIT_FSIZE},     {"RLIMIT_LOCKS", RLIMIT_LOCKS},
	{"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK}, {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},
	{"RLIMIT_NOFILE", RLIMIT_NOFILE}, {"RLIMIT_NPROC", RLIMIT_NPROC},     {"RLIMIT_RSS", RLIMIT_RSS},
	{"RLIMIT_RTPRIO", RLIMIT_RTPRIO}, {"RLIMIT_RTTIME", RLIMIT_RTTIME},   {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
	{"RLIMIT_STACK", RLIMIT_STACK},
};

int rt_process_parse(json_t *p, const char *what, rt_process *out, silo_error *err)
{
	memset(out, 0, sizeof *out);
	char f[128];
	if (!json_is_object(p))
		return bad(err, what, "expected an object");
#define F(name) (snprintf(f, sizeof f, "%s.%s", what, name), f)
	int rc = -1;
	if (get_bool(p, "terminal", F("terminal"), &out->terminal, err) < 0 ||
	    get_strv(p, "args", F("args"), false, &out->args, err) < 0 ||
	    get_strv(p, "env", F("env"), true, &out->env, err) < 0 ||
	    get_str(p, "cwd", F("cwd"), PATH_MAX - 1, true, &out->cwd, err) < 0)
		goto out;
	if (!out->args || !out->args[0] || !out->args[0][0]) {
		bad(err, F("args"), "expected at least one argument (the program)");
		goto out;
	}
	if (!abs_path(out->cwd)) {
		bad(err, F("cwd"), "expected an absolute path");
		goto out;
	}
	json_t *cs = json_object_get(p, "consoleSize");
	if (cs && !json_is_null(cs)) {
		int64_t h = 0, w = 0;
		if (!json_is_object(cs) || get_int(cs, "height", F("consoleSize.height"), 0, 4096, &h, err) < 0 ||
		    get_int(cs, "width", F("consoleSize.width"), 0, 4096, &w, err) < 0) {
			if (!json_is_object(cs))
				bad(err, F("consoleSize"), "expected an object");
			goto out;
		}
		out->rows = (uint16_t)h;
		out->cols = (uint16_t)w;
	}
	json_t *u = json_object_get(p, "user");
	if (u && !json_is_null(u)) {
		int64_t uid = 0, gid = 0;
		if (!json_is_object(u)) {
			bad(err, F("user"), "expected an object");
			goto out;
		}
		if (get_int(u, "uid", F("user.uid"), 0, 0xfffffffeLL, &uid, err) < 0 ||
		    get_int(u, "gid", F("user.gid"), 0, 0xfffffffeLL, &gid, err) < 0)
			goto out;
		out->uid = (uint32_t)uid;
		out->gid = (uint32_t)gid;
		json_t *ag = json_object_get(u, "additionalGids"), *x;
		if (ag && !json_is_null(ag) && (!json_is_array(ag) || json_array_size(ag) > RT_MAX_GIDS)) {
			snprintf(f, sizeof f, "%s.user.additionalGids: expected an array of at most %d ids", what, RT_MAX_GIDS);
			bad(err, f, "");
			goto out;
		}
		size_t i;
		json_array_foreach(ag, i, x)
		{
			if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > 0xfffffffeLL) {
				bad(err, F("user.additionalGids"), "expected group ids");
				goto out;
			}
			out->gids[out->ngids++] = (uint32_t)json_integer_value(x);
		}
	}
	json_t *rl = json_object_get(p, "rlimits"), *x;
	if (rl && !json_is_null(rl) && (!json_is_array(rl) || json_array_size(rl) > RT_MAX_RLIMITS)) {
		bad(err, F("rlimits"), "expected an array of at most 16 limits");
		goto out;
	}
	size_t i;
	json_array_foreach(rl, i, x)
	{
		char rf[160];
		snprintf(rf, sizeof rf, "%s.rlimits[%zu]", what, i);
		const char *type = json_string_value(json_object_get(x, "type"));
		json_t *soft = json_object_get(x, "soft"), *hard = json_object_get(x, "hard");
		int res = -1;
		for (size_t k = 0; type && k < ARRAY_SIZE(rlimit_names); k++)
			if (!strcmp(type, rlimit_names[k].name))
				res = rlimit_names[k].res;
		if (res < 0 || !json_is_integer(soft) || !json_is_integer(hard)) {
			bad(err, rf, "expected {\"type\": \"RLIMIT_...\", \"soft\": N, \"hard\": N}");
			goto out;
		}
		for (size_t k = 0; k < out->nrlimits; k++)
			if (out->rlimits[k].resource == res) {
				bad(err, rf, "a limit of the same type is set twice");
				goto out;
			}
		/* JSON integers are signed 64-bit; the spec's "unlimited" is 2^64-1, which
		 * tools write as -1 or 18446744073709551615 (rejected by jansson as too big) */
		uint64_t s = (uint64_t)json_integer_value(soft), h = (uint64_t)json_integer_value(hard);
		if (s > h) {
			bad(err, rf, "soft is above hard");
			goto out;
		}
		out->rlimits[out->nrlimits++] = (rt_rlimit){.resource = res, .soft = s, .hard = h};
	}
	rc = 0;
out:
	if (rc < 0)
		rt_process_free(out);
	return rc;
#undef F
}

void rt_process_free(rt_process *p)
{
	strv_free(p->args);
	strv_free(p->env);
	free(p->cwd);
	memset(p, 0, sizeof *p);
}

static json_t *strv_to_json(char *const *v)
{
	json_t *a = json_array();
	for (; v && *v; v++)
		json_array_append_new(a, json_string(*v));
	return a;
}

json_t *rt_process_json(const rt_process *p)
{
	json_t *o = json_pack("{s:b,s:o,s:o,s:s,s:{s:I,s:I}}", "terminal", p->terminal, "args", strv_to_json(p->args),
			      "env", strv_to_json(p->env), "cwd", p->cwd ? p->cwd : "/", "user", "uid",
			      (json_int_t)p->uid, "gid", (json_int_t)p->gid);
	json_t *g = json_array();
	for (size_t i = 0; i < p->ngids; i++)
		json_array_append_new(g, json_integer(p->gids[i]));
	json_object_set_new(json_object_get(o, "user"), "additionalGids", g);
	if (p->rows || p->cols)
		json_object_set_new(o, "consoleSize", json_pack("{s:i,s:i}", "height", p->rows, "width", p->cols));
	json_t *rl = json_array();
	for (size_t i = 0; i < p->nrlimits; i++) {
		const char *name = "?";
		for (size_t k = 0; k < ARRAY_SIZE(rlimit_names); k++)
			if (rlimit_names[k].res == p->rlimits[i].resource)
				name = rlimit_names[k].name;
		json_array_append_new(rl, json_pack("{s:s,s:I,s:I}", "type", name, "soft",
						    (json_int_t)p->rlimits[i].soft, "hard",
						    (json_int_t)p->rlimits[i].hard));
	}
	json_object_set_new(o, "rlimits", rl);
	return o;
}

/* tmpfs options a sandbox honours: size=N[kmg%], mode=OCTAL, nr_inodes=N[kmg]. */
static int tmpfs_option(const char *o, char *acc, size_t len)
{
	const char *eq = strchr(o, '=');
	if (!eq)
		return 0;   /* flags: handled (ro) or not meaningful (nosuid, nodev, noexec are always set) */
	size_t kl = (size_t)(eq - o);
	const char *v = eq + 1;
	bool num = !strncmp(o, "size", kl) && kl == 4, ino = !strncmp(o, "nr_inodes", kl) && kl == 9,
	     mode = !strncmp(o, "mode", kl) && kl == 4;
	if (!num && !ino && !mode)
		return 0;   /* uid=, gid=, ...: the sandbox's root owns its tmpfs */
	size_t d = strspn(v, mode ? "01234567" : "0123456789");
	if (!d || d > 12 || (mode && v[d]) ||
	    (!mode && v[d] && (strchr(num ? "kKmMgG%" : "kKmMgG", v[d]) == NULL || v[d + 1])))
		return -1;
	size_t at = strlen(acc);
	snprintf(acc + at, len - at, "%s%s", at ? "," : "", o);
	return 0;
}

static int parse_mounts(json_t *root, rt_config *c, silo_error *err)
{
	json_t *ms = json_object_get(root, "mounts"), *m;
	if (!ms || json_is_null(ms))
		return 0;
	if (!json_is_array(ms) || json_array_size(ms) > RT_MAX_MOUNTS)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "config: mounts: expected an array of at most %d mounts",
				 RT_MAX_MOUNTS);
	size_t i;
	json_array_foreach(ms, i, m)
	{
		char f[64];
		rt_mount *x = &c->mounts[c->nmounts++];
		if (!json_is_object(m)) {
			snprintf(f, sizeof f, "mounts[%zu]", i);
			return bad(err, f, "expected an object");
		}
		snprintf(f, sizeof f, "mounts[%zu].destination", i);
		if (get_str(m, "destination", f, PATH_MAX - 1, true, &x->dest, err) < 0)
			return -1;
		if (!abs_path(x->dest) || !no_dotdot(x->dest))
			return bad(err, f, "expected an absolute path without \"..\"");
		snprintf(f, sizeof f, "mounts[%zu].type", i);
		if (get_str(m, "type", f, 64, false, &x->type, err) < 0)
			return -1;
		snprintf(f, sizeof f, "mounts[%zu].source", i);
		if (get_str(m, "source", f, PATH_MAX - 1, false, &x->source, err) < 0)
			return -1;
		char **opts = NULL;
		snprintf(f, sizeof f, "mounts[%zu].options", i);
		if (get_strv(m, "options", f, false, &opts, err) < 0)
			return -1;
		x->bind = x->type && !strcmp(x->type, "bind");
		x->tmpfs = x->type && !strcmp(x->type, "tmpfs");
		char acc[256] = "";
		for (char **o = opts; o && *o; o++) {
			if (!strcmp(*o, "bind") || !strcmp(*o, "rbind"))
				x->bind = true;
			else if (!strcmp(*o, "ro"))
				x->ro = true;
			else if (x->tmpfs && tmpfs_option(*o, acc, sizeof acc) < 0) {
				strv_free(opts);
				return bad(err, f, "a tmpfs size=, mode= or nr_inodes= value is malformed");
			}
		}
		strv_free(opts);
		if (x->tmpfs)
			x->tmpfs_opts = xstrdup(acc);
		if (x->bind && !abs_path(x->source)) {
			snprintf(f, sizeof f, "mounts[%zu].source", i);
			return bad(err, f, "a bind mount needs an absolute source path");
		}
	}
	return 0;
}

static const char *const hook_names[RT_HOOK__N] = {"prestart", "createRuntime", "createContainer",
						    "startContainer", "poststart", "poststop"};

static int parse_hooks(json_t *root, rt_config *c, silo_error *err)
{
	json_t *hs = json_object_get(root, "hooks");
	if (!hs || json_is_null(hs))
		return 0;
	if (!json_is_object(hs))
		return bad(err, "hooks", "expected an object");
	for (int k = 0; k < RT_HOOK__N; k++) {
		json_t *a = json_object_get(hs, hook_names[k]), *h;
		if (!a || json_is_null(a))
			continue;
		char f[96];
		snprintf(f, sizeof f, "hooks.%s", hook_names[k]);
		if (!json_is_array(a) || json_array_size(a) > RT_MAX_HOOKS)
			return bad(err, f, "expected an array of at most 32 hooks");
		size_t i;
		json_array_foreach(a, i, h)
		{
			rt_hook *x = &c->hooks[k][c->nhooks[k]++];
			snprintf(f, sizeof f, "hooks.%s[%zu]", hook_names[k], i);
			if (!json_is_object(h))
				return bad(err, f, "expected an object");
			char ff[128];
			snprintf(ff, sizeof ff, "%s.path", f);
			if (get_str(h, "path", ff, PATH_MAX - 1, true, &x->path, err) < 0)
				return -1;
			if (!abs_path(x->path))
				return bad(err, ff, "expected an absolute path");
			snprintf(ff, sizeof ff, "%s.args", f);
			if (get_strv(h, "args", ff, false, &x->args, err) < 0)
				return -1;
			snprintf(ff, sizeof ff, "%s.env", f);
			if (get_strv(h, "env", ff, true, &x->env, err) < 0)
				return -1;
			int64_t t = 0;
			snprintf(ff, sizeof ff, "%s.timeout", f);
			if (get_int(h, "timeout", ff, 1, 3600, &t, err) < 0)
				return -1;
			x->timeout_s = (int)t;
		}
	}
	return 0;
}

static int parse_resources(json_t *root, rt_config *c, silo_error *err)
{
	json_t *r = json_object_get(json_object_get(root, "linux"), "resources");
	if (!r || json_is_null(r))
		return 0;
	if (!json_is_object(r))
		return bad(err, "linux.resources", "expected an object");
	int64_t v = 0;
	json_t *mem = json_object_get(r, "memory"), *cpu = json_object_get(r, "cpu"), *pids = json_object_get(r, "pids");
	if (json_is_object(mem) && get_int(mem, "limit", "linux.resources.memory.limit", -1, INT64_MAX, &v, err) < 0)
		return -1;
	c->memory_limit = v > 0 ? (uint64_t)v : 0;
	v = 0;
	if (json_is_object(cpu) && get_int(cpu, "quota", "linux.resources.cpu.quota", -1, INT64_MAX, &v, err) < 0)
		return -1;
	c->cpu_quota = v;
	v = 0;
	if (json_is_object(cpu) && get_int(cpu, "period", "linux.resources.cpu.period", 0, INT64_MAX, &v, err) < 0)
		return -1;
	c->cpu_period = (uint64_t)v;
	v = 0;
	if (json_is_object(pids) && get_int(pids, "limit", "linux.resources.pids.limit", -1, INT64_MAX, &v, err) < 0)
		return -1;
	c->pids_limit = v;
	return 0;
}

int rt_config_parse(const char *text, size_t len, const char *bundle, rt_config *out, silo_error *err)
{
	memset(out, 0, sizeof *out);
	if (len > RT_CONFIG_MAX)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "config: %zu bytes (at most %u)", len, RT_CONFIG_MAX);
	json_error_t je;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "config: line %d column %d: %s", je.line, je.column,
				 je.text);
	int rc = -1;
	if (!json_is_object(root)) {
		bad(err, "config.json", "expected an object");
		goto out;
	}
	char *rpath = NULL;
	if (get_str(root, "ociVersion", "ociVersion", 64, true, &out->oci_version, err) < 0)
		goto out;
	/* 1.MINOR.PATCH, a pre-release suffix allowed (podman writes "1.0.2-dev") */
	unsigned maj, mi, pa;
	char rest[8] = "";
	if (sscanf(out->oci_version, "%u.%u.%u%7s", &maj, &mi, &pa, rest) < 3 || maj != 1 || (rest[0] && rest[0] != '-')) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "config: ociVersion: \"%.64s\": expected 1.MINOR.PATCH", out->oci_version);
		goto out;
	}
	json_t *r = json_object_get(root, "root");
	if (!json_is_object(r)) {
		bad(err, "root", "expected an object with a path");
		goto out;
	}
	if (get_str(r, "path", "root.path", PATH_MAX - 1, true, &rpath, err) < 0 ||
	    get_bool(r, "readonly", "root.readonly", &out->root_ro, err) < 0) {
		free(rpath);   /* a good path with a bad readonly */
		goto out;
	}
	if (!rpath[0] || !no_dotdot(rpath)) {
		free(rpath);
		bad(err, "root.path", "expected a path without \"..\"");
		goto out;
	}
	if (rpath[0] == '/')
		out->root = rpath;
	else {
		out->root = xasprintf("%s/%s", bundle ? bundle : ".", rpath);
		free(rpath);
		if (strlen(out->root) >= PATH_MAX) {
			bad(err, "root.path", "too long");
			goto out;
		}
	}
	if (get_str(root, "hostname", "hostname", 64, false, &out->hostname, err) < 0)
		goto out;
	json_t *p = json_object_get(root, "process");
	out->has_process = p && !json_is_null(p);
	if ((out->has_process && rt_process_parse(p, "process", &out->process, err) < 0) || parse_mounts(root, out, err) < 0 ||
	    parse_hooks(root, out, err) < 0 || parse_resources(root, out, err) < 0)
		goto out;
	json_t *an = json_object_get(root, "annotations"), *v;
	const char *k;
	if (an && !json_is_null(an) && !json_is_object(an)) {
		bad(err, "annotations", "expected an object of strings");
		goto out;
	}
	out->annotations = json_object();
	json_object_foreach(an, k, v)
	{
		if (!json_is_string(v) || json_string_length(v) > STR_MAX || strlen(k) > 1024) {
			char f[80];
			snprintf(f, sizeof f, "annotations.%.60s", k);
			bad(err, f, "expected a string");
			goto out;
		}
		json_object_set(out->annotations, k, v);
	}
	rc = 0;
out:
	json_decref(root);
	if (rc < 0)
		rt_config_free(out);
	return rc;
}

int rt_config_load(const char *bundle, rt_config *out, silo_error *err)
{
	char p[PATH_MAX + 16];
	snprintf(p, sizeof p, "%s/config.json", bundle);
	cleanup_free char *text = NULL;
	size_t n = 0;
	if (read_file(p, RT_CONFIG_MAX, &text, &n, err) < 0)
		return silo_error_prefix(err, "bundle %s", bundle), -1;
	return rt_config_parse(text, n, bundle, out, err);
}

void rt_config_free(rt_config *c)
{
	free(c->oci_version);
	free(c->root);
	free(c->hostname);
	rt_process_free(&c->process);
	for (size_t i = 0; i < c->nmounts; i++) {
		free(c->mounts[i].dest);
		free(c->mounts[i].type);
		free(c->mounts[i].source);
		free(c->mounts[i].tmpfs_opts);
	}
	for (int k = 0; k < RT_HOOK__N; k++)
		for (size_t i = 0; i < c->nhooks[k]; i++) {
			free(c->hooks[k][i].path);
			strv_free(c->hooks[k][i].args);
			strv_free(c->hooks[k][i].env);
		}
	json_decref(c->annotations);
	memset(c, 0, sizeof *c);
}

/* ---- names ---- */

bool rt_id_valid(const char *id)
{
	size_t n = id ? strlen(id) : 0;
	if (!n || n > RT_ID_MAX || id[0] == '.' || id[0] == '-')
		return false;
	for (const char *p = id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
		      *p == '-' || *p == '.' || *p == '+'))
			return false;
	return true;
}

static const struct {
	const char *name;
	int sig;
} signals[] = {
	{"HUP", SIGHUP},   {"INT", SIGINT},     {"QUIT", SIGQUIT},   {"ILL", SIGILL},   {"TRAP", SIGTRAP},
	{"ABRT", SIGABRT}, {"IOT", SIGIOT},     {"BUS", SIGBUS},     {"FPE", SIGFPE},   {"KILL", SIGKILL},
	{"USR1", SIGUSR1}, {"SEGV", SIGSEGV},   {"USR2", SIGUSR2},   {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},
	{"TERM", SIGTERM}, {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT}, {"STOP", SIGSTOP},
	{"TSTP", SIGTSTP}, {"TTIN", SIGTTIN},   {"TTOU", SIGTTOU},   {"URG", SIGURG},   {"XCPU", SIGXCPU},
	{"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
	{"POLL", SIGPOLL}, {"PWR", SIGPWR},     {"SYS", SIGSYS},
};

int rt_signal_parse(const char *s)
{
	if (!s || !*s)
		return -1;
	if (strspn(s, "0123456789") == strlen(s)) {
		long v = strtol(s, NULL, 10);
		return v >= 1 && v <= 64 && strlen(s) <= 2 ? (int)v : -1;
	}
	if (!strncasecmp(s, "SIG", 3))
		s += 3;
	for (size_t i = 0; i < ARRAY_SIZE(signals); i++)
		if (!strcasecmp(s, signals[i].name))
			return signals[i].sig;
	if (!strncasecmp(s, "RTMIN+", 6) && strspn(s + 6, "0123456789") == strlen(s + 6) && s[6]) {
		int v = SIGRTMIN + atoi(s + 6);
		return v <= SIGRTMAX ? v : -1;
	}
	return -1;
}

