/* SPDX-License-Identifier: Apache-2.0
 * Sandbox policy engine (see policy.h, docs/policy.md).
 */
#include "policy/policy.h"
#include "net/egress.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "policy/cfg.h"
#include "spec/toml.h"

static const char *const op_names[POLICY_OP__COUNT] = {
	[POLICY_OP_EXEC] = "exec",
	[POLICY_OP_FILE_READ] = "file_read",
	[POLICY_OP_FILE_WRITE] = "file_write",
	[POLICY_OP_NETWORK] = "network",
	[POLICY_OP_SNAPSHOT] = "snapshot",
	[POLICY_OP_PAUSE] = "pause",
};

#define ALL_OPS ((1u << POLICY_OP__COUNT) - 1)

const char *policy_op_name(policy_op op)
{
	return (unsigned)op < POLICY_OP__COUNT ? op_names[op] : NULL;
}

int policy_op_from_name(const char *name)
{
	return cfg_name_index(op_names, POLICY_OP__COUNT, name);
}

static void ops_list(uint32_t ops, char *buf, size_t len)
{
	cfg_names_list(op_names, POLICY_OP__COUNT, ops, buf, len);
}

/* ---- paths and egress ---- */

bool policy_normalize_path(const char *in, char *out, size_t len)
{
	if (!in || in[0] != '/' || len < 2 || strlen(in) >= 4096)
		return false;
	size_t o = 0;
	const char *p = in;
	while (*p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *s = p;
		while (*p && *p != '/')
			p++;
		size_t n = (size_t)(p - s);
		if (n == 1 && s[0] == '.')
			continue;
		if (n == 2 && s[0] == '.' && s[1] == '.')
			return false;   /* a symlink before it would make lexical ".." wrong */
		if (o + 1 + n + 1 > len)
			return false;
		out[o++] = '/';
		memcpy(out + o, s, n);
		o += n;
	}
	if (o == 0)
		out[o++] = '/';
	out[o] = '\0';
	return true;
}

/* prefix "/a" covers "/a" and "/a/..." but not "/ab"; "/" covers everything. */
static bool path_under(const char *prefix, const char *path)
{
	size_t n = strlen(prefix);
	if (n == 1)
		return true;
	return !strncmp(prefix, path, n) && (path[n] == '\0' || path[n] == '/');
}

bool policy_egress_covers(const char *allowed, const char *want)
{
	return egress_covers(allowed, want);   /* lib/net/egress.c: names, wildcards, CIDRs, ports, "*" */
}

/* ---- parsing ---- */

/* Shared helpers (cfg.c), with this file's name in errors. */
#define field_err(err, v, field, ...) cfg_field_err(err, "policy file", v, field, __VA_ARGS__)
#define valid_name(s) cfg_valid_name(s, POLICY_NAME_MAX)

static int get_u32(const toml_value *v, const char *field, uint32_t max, uint32_t *out, silo_error *err)
{
	if (v->type != TOML_INTEGER)
		return field_err(err, v, field, "expected an integer, got %s", toml_type_name(v->type));
	if (v->u.i < 0 || (uint64_t)v->u.i > max)
		return field_err(err, v, field, "expected 0..%u, got %lld", max, (long long)v->u.i);
	*out = (uint32_t)v->u.i;
	return 0;
}

/* An array of strings; each passed to fn(ctx, item, index). */
static int get_strings(const toml_value *v, const char *field, size_t max,
		       int (*fn)(void *ctx, const toml_value *item, const char *s, const char *field, silo_error *err),
		       void *ctx, silo_error *err)
{
	if (v->type != TOML_ARRAY)
		return field_err(err, v, field, "expected an array of strings, got %s", toml_type_name(v->type));
	if (v->u.arr.n > max)
		return field_err(err, v, field, "at most %zu entries, got %zu", max, v->u.arr.n);
	for (size_t i = 0; i < v->u.arr.n; i++) {
		const toml_value *it = v->u.arr.items[i];
		char f[128];
		snprintf(f, sizeof f, "%s[%zu]", field, i);
		if (it->type != TOML_STRING)
			return field_err(err, it, f, "expected a string, got %s", toml_type_name(it->type));
		if (strlen(it->u.str.ptr) != it->u.str.len)
			return field_err(err, it, f, "must not contain NUL");
		if (fn(ctx, it, it->u.str.ptr, f, err) < 0)
			return -1;
	}
	return 0;
}

static int add_op(void *ctx, const toml_value *it, const char *s, const char *field, silo_error *err)
{
	policy *p = ctx;
	int op = policy_op_from_name(s);
	if (op < 0)
		return field_err(err, it, field,
				 "unknown operation \"%.64s\" (expected exec, file_read, file_write, network, snapshot, "
				 "pause)", s);
	p->ops |= 1u << op;
	return 0;
}

/* s normalized, appended to v (n entries; get_strings bounds the count). */
static int push_path(char **v, size_t *n, const toml_value *it, const char *s, const char *field, silo_error *err)
{
	char norm[4096];
	if (!policy_normalize_path(s, norm, sizeof norm))
		return field_err(err, it, field, "expected an absolute path without \"..\", got \"%.200s\"", s);
	v[(*n)++] = xstrdup(norm);
	return 0;
}

static int add_path(void *ctx, const toml_value *it, const char *s, const char *field, silo_error *err)
{
	policy *p = ctx;
	return push_path(p->paths, &p->n_paths, it, s, field, err);
}

static int add_egress(void *ctx, const toml_value *it, const char *s, const char *field, silo_error *err)
{
	policy *p = ctx;
	egress_rule r;
	char why[160];
	if (!egress_parse(s, &r, why, sizeof why))
		return field_err(err, it, field, "%s, got \"%.200s\"", why, s);
	p->egress[p->n_egress++] = xstrdup(s);
	return 0;
}

static int add_host_path(void *ctx, const toml_value *it, const char *s, const char *field, silo_error *err)
{
	policy *p = ctx;
	return push_path(p->host_paths, &p->n_host_paths, it, s, field, err);
}

static int add_host_tap(void *ctx, const toml_value *it, const char *s, const char *field, silo_error *err)
{
	policy *p = ctx;
	if (!cfg_valid_name(s, 15))
		return field_err(err, it, field, "expected an interface name of 1-15 [A-Za-z0-9_-], got \"%.64s\"", s);
	p->host_taps[p->n_host_taps++] = xstrdup(s);
	return 0;
}

static int add_host_env(void *ctx, const toml_value *it, const char *s, const char *field, silo_error *err)
{
	policy *p = ctx;
	size_t n = strlen(s), body = n && s[n - 1] == '*' ? n - 1 : n;
	bool ok = n > 0 && n <= 256 && (body == 0 || !(s[0] >= '0' && s[0] <= '9'));
	for (size_t i = 0; i < body && ok; i++)
		ok = (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_';
	if (!ok)
		return field_err(err, it, field, "expected a variable name or a PREFIX* ([A-Za-z_][A-Za-z0-9_]*), got \"%.200s\"",
				 s);
	p->host_env[p->n_host_env++] = xstrdup(s);
	return 0;
}

static void policy_clear(policy *p)
{
	cfg_free_strs(p->host_env, p->n_host_env);
	cfg_free_strs(p->host_paths, p->n_host_paths);
	cfg_free_strs(p->host_taps, p->n_host_taps);
	cfg_free_strs(p->paths, p->n_paths);
	cfg_free_strs(p->egress, p->n_egress);
	memset(p, 0, sizeof *p);
}

static int parse_policy(const char *name, const toml_value *t, policy *p, silo_error *err)
{
	char field[160];
	snprintf(p->name, sizeof p->name, "%s", name);
	p->ops = ALL_OPS & ~(1u << POLICY_OP_NETWORK);   /* default: everything but network */
	for (size_t i = 0; i < t->u.tab.n; i++) {
		const char *k = t->u.tab.keys[i];
		const toml_value *v = t->u.tab.vals[i];
		snprintf(field, sizeof field, "policies.%s.%s", name, k);
		int rc;
		if (!strcmp(k, "operations")) {
			p->ops = 0;
			rc = get_strings(v, field, 64, add_op, p, err);
		} else if (!strcmp(k, "paths")) {
			rc = get_strings(v, field, POLICY_MAX_PATHS, add_path, p, err);
		} else if (!strcmp(k, "egress")) {
			rc = get_strings(v, field, POLICY_MAX_EGRESS, add_egress, p, err);
		} else if (!strcmp(k, "host_paths")) {
			rc = get_strings(v, field, POLICY_MAX_PATHS, add_host_path, p, err);
		} else if (!strcmp(k, "host_taps")) {
			rc = get_strings(v, field, POLICY_MAX_TAPS, add_host_tap, p, err);
		} else if (!strcmp(k, "host_env")) {
			rc = get_strings(v, field, POLICY_MAX_PATHS, add_host_env, p, err);
		} else if (!strcmp(k, "max_memory_mb")) {
			rc = get_u32(v, field, 1u << 30, &p->max_memory_mb, err);
		} else if (!strcmp(k, "max_vcpus")) {
			rc = get_u32(v, field, 1024, &p->max_vcpus, err);
		} else if (!strcmp(k, "max_pids")) {
			rc = get_u32(v, field, 1u << 22, &p->max_pids, err);
		} else if (!strcmp(k, "max_lifetime_s")) {
			rc = get_u32(v, field, 10u * 365 * 86400, &p->max_lifetime_s, err);
		} else if (!strcmp(k, "max_disk_mb")) {
			rc = get_u32(v, field, SPEC_DISK_MAX_MB, &p->max_disk_mb, err);
			if (rc == 0 && p->max_disk_mb && p->max_disk_mb < SPEC_DISK_MIN_MB)
				rc = field_err(err, v, field, "expected 0 (no limit) or at least 16 (the smallest disk_mb)");
		} else {
			rc = field_err(err, v, field,
				       "unknown key (expected operations, paths, host_paths, host_taps, host_env, egress, "
				       "max_memory_mb, max_vcpus, max_pids, max_lifetime_s, max_disk_mb)");
		}
		if (rc < 0)
			return -1;
	}
	if (p->n_egress && !(p->ops & (1u << POLICY_OP_NETWORK))) {
		snprintf(field, sizeof field, "policies.%s.egress", name);
		return field_err(err, toml_get(t, "egress"), field,
				 "an egress allow-list needs \"network\" in operations");
	}
	return 0;
}

static int parse_policies(const toml_value *root, void *dst, silo_error *err)
{
	policy_set *out = dst;
	const char *def = "default";
	const toml_value *defv = NULL;
	const toml_value *pols = NULL;
	for (size_t i = 0; i < root->u.tab.n; i++) {
		const char *k = root->u.tab.keys[i];
		const toml_value *v = root->u.tab.vals[i];
		if (!strcmp(k, "default")) {
			if (v->type != TOML_STRING)
				return field_err(err, v, "default", "expected a policy name (string), got %s", toml_type_name(v->type));
			def = v->u.str.ptr;
			defv = v;
		} else if (!strcmp(k, "policies")) {
			if (v->type != TOML_TABLE)
				return field_err(err, v, "policies", "expected a table of policies, got %s", toml_type_name(v->type));
			pols = v;
		} else {
			return field_err(err, v, k, "unknown key (expected default and [policies.NAME] tables)");
		}
	}
	if (!pols || pols->u.tab.n == 0)
		return field_err(err, NULL, "policies", "define at least one [policies.NAME] table");
	if (pols->u.tab.n > POLICY_MAX_POLICIES)
		return field_err(err, pols, "policies", "at most %d policies", POLICY_MAX_POLICIES);
	out->v = xcalloc(pols->u.tab.n, sizeof *out->v);
	for (size_t i = 0; i < pols->u.tab.n; i++) {
		const char *name = pols->u.tab.keys[i];
		const toml_value *t = pols->u.tab.vals[i];
		char field[128];
		snprintf(field, sizeof field, "policies.%.64s", name);
		if (!valid_name(name))
			return field_err(err, t, field, "a policy name is 1-%d of [A-Za-z0-9_-]", POLICY_NAME_MAX);
		if (t->type != TOML_TABLE)
			return field_err(err, t, field, "expected a table, got %s", toml_type_name(t->type));
		out->n++;
		if (parse_policy(name, t, &out->v[i], err) < 0)
			return -1;
	}
	bool found = false;
	for (size_t i = 0; i < out->n; i++) {
		if (!strcmp(out->v[i].name, def)) {
			out->def = i;
			found = true;
		}
	}
	if (!found)
		return field_err(err, defv, "default",
				 "no policy named \"%.64s\" (define [policies.%.64s] or set default)", def, def);
	return 0;
}

/* policy_set_parse, policy_set_load */
CFG_FILE_DEFINE(policy_set, "policy file", parse_policies)

void policy_set_builtin(policy_set *out)
{
	memset(out, 0, sizeof *out);
	out->v = xcalloc(1, sizeof *out->v);
	out->n = 1;
	snprintf(out->v[0].name, sizeof out->v[0].name, "default");
	out->v[0].ops = ALL_OPS;
	out->v[0].host_paths_any = true;
	out->v[0].host_env_any = true;
}

/* The writable-layer limit for who (0 = none). A policy file's max_disk_mb
 * applies to everybody; without one, a scoped token gets the default disk
 * (the built-in policy, host_paths_any, has no limits for full access only):
 * otherwise it could ask for a 1 TiB disk and fill the host's disk, or, with
 * the run directory on tmpfs, the host's memory. */
static uint32_t disk_limit(const policy *p, policy_caller who)
{
	if (p->max_disk_mb)
		return p->max_disk_mb;
	return p->host_paths_any && who == POLICY_CALLER_TOKEN ? SPEC_DISK_DEFAULT_MB : 0;
}

void policy_set_free(policy_set *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		policy_clear(&s->v[i]);
	free(s->v);
	memset(s, 0, sizeof *s);
}

const policy *policy_find(const policy_set *s, const char *name, silo_error *err)
{
	if (!name || !*name)
		return &s->v[s->def];
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i].name, name))
			return &s->v[i];
	char known[512];
	size_t off = 0;
	known[0] = '\0';
	for (size_t i = 0; i < s->n && off < sizeof known; i++)
		off += (size_t)snprintf(known + off, sizeof known - off, "%s%s", i ? ", " : "", s->v[i].name);
	silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "metadata.%s: unknown policy \"%.64s\" (known: %s)",
		  POLICY_METADATA_KEY, name, known);
	return NULL;
}

/* ---- evaluation ---- */

/* "a, b, c", or "none". */
static void list_join(char *const *v, size_t n, char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", v[i]);
	if (!n)
		snprintf(buf, len, "none");
}

static int deny(const policy *p, const char *rule, silo_error *err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int deny(const policy *p, const char *rule, silo_error *err, const char *fmt, ...)
{
	char msg[800];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return silo_fail(err, SILO_ERR_POLICY_DENIED, 0, "policy \"%s\" rule %s: %s", p->name, rule, msg);
}

int policy_check_op(const policy *p, policy_op op, silo_error *err)
{
	if ((unsigned)op >= POLICY_OP__COUNT)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "policy: unknown operation %d", (int)op);
	if (p->ops & (1u << op))
		return 0;
	char allowed[256];
	ops_list(p->ops, allowed, sizeof allowed);
	return deny(p, "operations", err, "%s is not allowed (allowed: %s)", op_names[op], allowed);
}

int policy_check_path(const policy *p, policy_op op, const char *path, silo_error *err)
{
	if (policy_check_op(p, op, err) < 0)
		return -1;
	if (p->n_paths == 0)
		return 0;
	char norm[4096];
	if (!policy_normalize_path(path, norm, sizeof norm))
		return deny(p, "paths", err, "%s path \"%.200s\" must be absolute and without \"..\"", op_names[op],
			    path ? path : "");
	for (size_t i = 0; i < p->n_paths; i++)
		if (path_under(p->paths[i], norm))
			return 0;
	char allowed[600];
	list_join(p->paths, p->n_paths, allowed, sizeof allowed);
	return deny(p, "paths", err, "%s \"%.200s\" is outside the allowed paths (%s)",
		    op == POLICY_OP_EXEC ? "exec with working directory" : op == POLICY_OP_FILE_READ ? "file_read of" :
		    op == POLICY_OP_FILE_WRITE ? "file_write of" : op_names[op], norm, allowed);
}

static void set_metadata(vm_spec *s, const char *key, const char *value)
{
	for (size_t i = 0; i < s->n_metadata; i++) {
		if (!strcmp(s->metadata[i].key, key)) {
			free(s->metadata[i].value);
			s->metadata[i].value = xstrdup(value);
			return;
		}
	}
	if (s->n_metadata < SPEC_MAX_KV) {
		s->metadata[s->n_metadata].key = xstrdup(key);
		s->metadata[s->n_metadata++].value = xstrdup(value);
	}
}

/* The built-in policy's "any host resource" holds for full-access callers only. */
static bool host_any(const policy *p, policy_caller who)
{
	return p->host_paths_any && who == POLICY_CALLER_FULL;
}

int policy_each_host_path(vm_spec *spec, policy_host_path_fn fn, void *ud, silo_error *err)
{
	struct {
		const char *field;
		char **slot;
	} boot[] = {{"boot.kernel", &spec->kernel}, {"boot.initrd", &spec->initrd}, {"boot.rootfs", &spec->rootfs}};
	for (size_t i = 0; i < ARRAY_SIZE(boot); i++)
		if (*boot[i].slot && **boot[i].slot && fn(ud, boot[i].field, boot[i].slot, err) < 0)
			return -1;
	for (size_t i = 0; i < spec->n_drives; i++) {
		char f[48];
		snprintf(f, sizeof f, "drives[%zu].path", i);
		if (spec->drives[i].path && *spec->drives[i].path && fn(ud, f, &spec->drives[i].path, err) < 0)
			return -1;
	}
	for (size_t i = 0; i < spec->n_secrets; i++) {
		spec_secret *x = &spec->secrets[i];
		char f[320];
		snprintf(f, sizeof f, "sandbox.secrets.%.200s.file", x->key);
		if (x->src == SPEC_SECRET_FILE && x->ref && *x->ref && fn(ud, f, &x->ref, err) < 0)
			return -1;
	}
	return 0;
}

bool policy_host_paths_listed(const policy *p, policy_caller who)
{
	return !host_any(p, who) && p->n_host_paths > 0;
}

bool policy_host_path_granted(const policy *p, policy_caller who, const char *path)
{
	if (host_any(p, who))
		return true;
	char norm[4096];
	if (!policy_normalize_path(path, norm, sizeof norm))
		return false;
	for (size_t i = 0; i < p->n_host_paths; i++)
		if (path_under(p->host_paths[i], norm))
			return true;
	return false;
}

typedef struct host_check {
	const policy *p;
	policy_caller who;
} host_check;

static int check_host_path(void *ud, const char *field, char **slot, silo_error *err)
{
	const host_check *hc = ud;
	const policy *p = hc->p;
	const char *path = *slot;
	if (host_any(p, hc->who))
		return 0;
	/* A scoped token under the built-in policy: refused as given, without
	 * touching the file system (no oracle for which host files exist). */
	if (p->host_paths_any)
		return deny(p, "host_paths", err,
			    "%s \"%.200s\" names a host file; a scoped token may name none unless a policy file grants it "
			    "host_paths",
			    field, path);
	char norm[4096];
	if (!policy_normalize_path(path, norm, sizeof norm))
		return deny(p, "host_paths", err, "%s \"%.200s\" must be an absolute path without \"..\"", field, path);
	if (policy_host_path_granted(p, hc->who, norm))
		return 0;
	char allowed[600];
	list_join(p->host_paths, p->n_host_paths, allowed, sizeof allowed);
	return deny(p, "host_paths", err, "%s \"%.200s\" is outside the allowed host paths (%s)", field, norm, allowed);
}

/* network.tap names a host device: like a host file, granted by host_taps. */
static int check_host_tap(const policy *p, policy_caller who, const char *tap, silo_error *err)
{
	if (!tap || !*tap || host_any(p, who))
		return 0;
	for (size_t i = 0; i < p->n_host_taps; i++)
		if (!strcmp(p->host_taps[i], tap))
			return 0;
	char allowed[600];
	list_join(p->host_taps, p->n_host_taps, allowed, sizeof allowed);
	if (p->host_paths_any)
		return deny(p, "host_taps", err,
			    "network.tap \"%.64s\" names a host device; a scoped token may name none unless a policy file "
			    "grants it host_taps",
			    tap);
	return deny(p, "host_taps", err, "network.tap \"%.64s\" is not one of the allowed host tap devices (%s)", tap,
		    allowed);
}

/* {env = NAME} secrets read silod's own environment: like host files, the
 * built-in policy's "any" is for full-access callers; host_env grants names. */
static int check_host_env(const policy *p, policy_caller who, const char *field, const char *name, silo_error *err)
{
	if (p->host_env_any && who == POLICY_CALLER_FULL)
		return 0;
	if (p->host_env_any)
		return deny(p, "host_env", err,
			    "%s \"%.200s\" names a variable of silod; a scoped token may name none unless a policy file "
			    "grants it host_env",
			    field, name);
	for (size_t i = 0; i < p->n_host_env; i++) {
		const char *a = p->host_env[i];
		size_t l = strlen(a);
		if (l && a[l - 1] == '*' ? !strncmp(a, name, l - 1) : !strcmp(a, name))
			return 0;
	}
	char allowed[600];
	list_join(p->host_env, p->n_host_env, allowed, sizeof allowed);
	return deny(p, "host_env", err, "%s \"%.200s\" is not a variable of silod the policy lets specs read (%s)", field,
		    name, allowed);
}

int policy_apply_spec(const policy *p, vm_spec *spec, silo_error *err)
{
	return policy_apply_spec_as(p, POLICY_CALLER_FULL, spec, err);
}

int policy_apply_spec_as(const policy *p, policy_caller who, vm_spec *spec, silo_error *err)
{
	for (size_t i = 0; i < spec->n_secrets; i++) {
		const spec_secret *x = &spec->secrets[i];
		char f[320];
		snprintf(f, sizeof f, "sandbox.secrets.%.200s.env", x->key);
		if (x->src == SPEC_SECRET_ENV && check_host_env(p, who, f, x->ref, err) < 0)
			return -1;
	}
	host_check hc = {p, who};
	if (policy_each_host_path(spec, check_host_path, &hc, err) < 0)
		return -1;
	if (p->max_vcpus && spec->vcpus > p->max_vcpus)
		return deny(p, "max_vcpus", err, "the spec asks for %u vCPUs, the policy allows %u", spec->vcpus,
			    p->max_vcpus);
	if (p->max_memory_mb && spec->memory_mb > p->max_memory_mb)
		return deny(p, "max_memory_mb", err, "the spec asks for %u MB, the policy allows %u MB", spec->memory_mb,
			    p->max_memory_mb);
	if (p->max_pids && spec->pids_max > p->max_pids)
		return deny(p, "max_pids", err, "the spec asks for pids_max %u, the policy allows %u", spec->pids_max,
			    p->max_pids);
	if (p->max_lifetime_s && spec->timeout_s > p->max_lifetime_s)
		return deny(p, "max_lifetime_s", err, "the spec asks for a lifetime of %u s, the policy allows %u s",
			    spec->timeout_s, p->max_lifetime_s);
	uint32_t disk = disk_limit(p, who);
	if (disk && spec->disk_mb > disk)
		return deny(p, "max_disk_mb", err, "the spec asks for disk_mb %u, the policy allows %u%s", spec->disk_mb,
			    disk, p->max_disk_mb ? "" : " (the default disk for a scoped token without a policy file)");
	bool wants_net = spec->network || spec->n_egress || spec->tap;
	if (wants_net && !(p->ops & (1u << POLICY_OP_NETWORK)))
		return deny(p, "operations", err, "the spec enables networking (network.%s) and the policy allows none",
			    spec->network ? "enabled" : spec->n_egress ? "egress" : "tap");
	if (check_host_tap(p, who, spec->tap, err) < 0)
		return -1;
	if (spec->network && p->n_egress) {
		for (size_t i = 0; i < spec->n_egress; i++) {
			bool ok = false;
			for (size_t j = 0; j < p->n_egress && !ok; j++)
				ok = policy_egress_covers(p->egress[j], spec->egress[i]);
			if (!ok)
				return deny(p, "egress", err, "network.egress[%zu] \"%.200s\" is not in the allow-list", i,
					    spec->egress[i]);
		}
	}
	/* Within the limits: close what the spec leaves open. */
	if (p->max_pids && !spec->pids_max)
		spec->pids_max = p->max_pids;
	if (p->max_lifetime_s && !spec->timeout_s)
		spec->timeout_s = p->max_lifetime_s;
	if (disk && !spec->disk_mb && disk < SPEC_DISK_DEFAULT_MB)
		spec->disk_mb = disk;
	if (spec->network && p->n_egress && !spec->n_egress) {
		for (size_t j = 0; j < p->n_egress && spec->n_egress < SPEC_MAX_EGRESS; j++)
			spec->egress[spec->n_egress++] = xstrdup(p->egress[j]);
	}
	set_metadata(spec, POLICY_METADATA_KEY, p->name);
	return 0;
}
