/* SPDX-License-Identifier: Apache-2.0
 * hac.toml <-> vm_spec (docs/hac-toml.md).
 *
 * Two accepted forms:
 *   sectioned: [vm] [resources] [boot] [network] [[drives]] [sandbox] [sandbox.env] [sandbox.secrets]
 *              [metadata]
 *   Vistara:   [spacecore] name/description/provider, [hardware] cores/memory/kernel/drive/interface
 *              (+ [sandbox] and [metadata])
 * Unknown sections and keys are errors naming them; a typo is never ignored.
 * Secrets: no message ever quotes a secret's value, spec_format() never writes
 * one, and spec_free() zeroes them.
 */
#include "spec/spec.h"
#include "net/egress.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "spec/toml.h"

#define MEM_MIN_MB 128
#define MEM_MIN_KVM_MB 16     /* test payloads and unikernel-style guests (docs/hac-toml.md) */
#define MEM_MAX_MB SPEC_MEMORY_MAX_MB
#define VCPUS_MAX SPEC_VCPUS_MAX
#define BOOT_TIMEOUT_MAX_MS SPEC_BOOT_TIMEOUT_MAX_MS
#define PIDS_MAX SPEC_PIDS_MAX

static const char *const providers[] = {"kvm", "qemu", "namespace"};

/* ---------------- error helpers ---------------- */

static int verr(silo_error *err, const toml_value *at, const char *field, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));
static int verr(silo_error *err, const toml_value *at, const char *field, const char *fmt, va_list ap)
{
	char msg[768];
	vsnprintf(msg, sizeof msg, fmt, ap);
	if (at)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%d:%d: %s: %s", at->line, at->col, field, msg);
	return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: %s", field, msg);
}

static int field_err(silo_error *err, const toml_value *at, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int field_err(silo_error *err, const toml_value *at, const char *field, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verr(err, at, field, fmt, ap);
	va_end(ap);
	return -1;
}

/* Errors about a key itself (unknown, badly named, one too many) point at the key, not its value. */
static int key_err(silo_error *err, const toml_value *v, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int key_err(silo_error *err, const toml_value *v, const char *field, const char *fmt, ...)
{
	toml_value at = {.line = v->kline ? v->kline : v->line, .col = v->kline ? v->kcol : v->col};
	va_list ap;
	va_start(ap, fmt);
	verr(err, &at, field, fmt, ap);
	va_end(ap);
	return -1;
}

static int type_err(silo_error *err, const toml_value *v, const char *field, const char *expected)
{
	return field_err(err, v, field, "expected %s, got %s", expected, toml_type_name(v->type));
}

/* ---------------- typed getters ---------------- */

static int get_str(const toml_value *v, const char *field, char **out, size_t maxlen, silo_error *err)
{
	if (v->type != TOML_STRING)
		return type_err(err, v, field, "string");
	if (memchr(v->u.str.ptr, '\0', v->u.str.len))
		return field_err(err, v, field, "string must not contain NUL characters");
	if (v->u.str.len > maxlen)
		return field_err(err, v, field, "string longer than %zu bytes", maxlen);
	free(*out);
	*out = xstrdup(v->u.str.ptr);
	return 0;
}

static int get_u32(const toml_value *v, const char *field, uint32_t *out, int64_t lo, int64_t hi, silo_error *err)
{
	if (v->type != TOML_INTEGER) {
		char exp[64];
		snprintf(exp, sizeof exp, "integer %lld-%lld", (long long)lo, (long long)hi);
		return type_err(err, v, field, exp);
	}
	if (v->u.i < lo || v->u.i > hi)
		return field_err(err, v, field, "expected integer %lld-%lld, got %lld", (long long)lo, (long long)hi,
				 (long long)v->u.i);
	*out = (uint32_t)v->u.i;
	return 0;
}

static int get_bool(const toml_value *v, const char *field, bool *out, silo_error *err)
{
	if (v->type != TOML_BOOL)
		return type_err(err, v, field, "boolean (true or false)");
	*out = v->u.b;
	return 0;
}

/* Memory as integer MB or a string "512MB", "2GB", "512M", "1G", "1024MiB", "2GiB". */
static int get_memory(const toml_value *v, const char *field, uint32_t *out, silo_error *err)
{
	if (v->type == TOML_INTEGER)
		return get_u32(v, field, out, 1, MEM_MAX_MB, err);
	if (v->type != TOML_STRING)
		return type_err(err, v, field, "integer MB or a string like \"512MB\" or \"2GB\"");
	const char *s = v->u.str.ptr;
	char *end;
	errno = 0;
	unsigned long long n = strtoull(s, &end, 10);
	if (end == s || errno)
		return field_err(err, v, field, "expected a size like \"512MB\" or \"2GB\", got \"%s\"", s);
	unsigned long long mb;
	if (!strcasecmp(end, "MB") || !strcasecmp(end, "M") || !strcasecmp(end, "MiB") || !*end)
		mb = n;
	else if (!strcasecmp(end, "GB") || !strcasecmp(end, "G") || !strcasecmp(end, "GiB"))
		mb = n * 1024;
	else
		return field_err(err, v, field, "unknown unit \"%s\" (use MB or GB)", end);
	if (mb > MEM_MAX_MB || n > MEM_MAX_MB)
		return field_err(err, v, field, "expected at most %d MB, got \"%s\"", MEM_MAX_MB, s);
	*out = (uint32_t)mb;
	return 0;
}

static bool valid_name(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n < 1 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

static bool valid_env_key(const char *s)
{
	if (!*s || isdigit((unsigned char)*s))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

static bool valid_mac(const char *s)
{
	if (strlen(s) != 17)
		return false;
	for (int i = 0; i < 17; i++) {
		if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return true;
}

/* ---------------- sections ---------------- */

typedef int (*key_fn)(vm_spec *s, const toml_value *v, const char *field, silo_error *err);

typedef struct key_rule {
	const char *key;
	key_fn fn;
} key_rule;

static int walk(vm_spec *s, const toml_value *table, const char *section, const key_rule *rules, silo_error *err)
{
	if (table->type != TOML_TABLE)
		return type_err(err, table, section, "table");
	for (size_t i = 0; i < table->u.tab.n; i++) {
		const char *k = table->u.tab.keys[i];
		const toml_value *v = table->u.tab.vals[i];
		char field[160];
		snprintf(field, sizeof field, "%s.%s", section, k);
		const key_rule *r = rules;
		while (r->key && strcmp(r->key, k))
			r++;
		if (!r->key) {
			char known[512] = "";
			for (const key_rule *q = rules; q->key; q++) {
				strncat(known, known[0] ? ", " : "", sizeof known - strlen(known) - 1);
				strncat(known, q->key, sizeof known - strlen(known) - 1);
			}
			return key_err(err, v, field, "unknown key (known keys: %s)", known);
		}
		if (r->fn(s, v, field, err) < 0)
			return -1;
	}
	return 0;
}

#define STR_KEY(fname, member, max)                                                                  \
	static int fname(vm_spec *s, const toml_value *v, const char *field, silo_error *err)         \
	{                                                                                            \
		return get_str(v, field, &s->member, max, err);                                      \
	}

STR_KEY(k_description, description, 1024)
STR_KEY(k_kernel, kernel, 4096)
STR_KEY(k_initrd, initrd, 4096)
STR_KEY(k_rootfs, rootfs, 4096)
STR_KEY(k_image, image, 128)
STR_KEY(k_cmdline, cmdline, 4096)
STR_KEY(k_tap, tap, 15)
STR_KEY(k_mac, mac, 17)
STR_KEY(k_workdir, workdir, 4096)
STR_KEY(k_user, user, 64)

static int k_name(vm_spec *s, const toml_value *v, const char *field, silo_error *err)
{
	char *n = NULL;
	if (get_str(v, field, &n, 1024, err) < 0)
		return -1;
	if (!valid_name(n, SPEC_NAME_MAX)) {
		field_err(err, v, field, "expected 1-64 characters of [A-Za-z0-9_-], got \"%s\"", n);
		free(n);
		return -1;
	}
	snprintf(s->name, sizeof s->name, "%s", n);
	free(n);
	return 0;
}

static int k_provider(vm_spec *s, const toml_value *v, const char *field, silo_error *err)
{
	char *p = NULL;
	if (get_str(v, field, &p, 64, err) < 0)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(providers); i++)
		if (!strcmp(p, providers[i])) {
			free(s->provider);
			s->provider = p;
			return 0;
		}
	field_err(err, v, field, "expected one of \"kvm\", \"qemu\", \"namespace\", got \"%s\"", p);
	free(p);
	return -1;
}

static int k_isolation(vm_spec *s, const toml_value *v, const char *field, silo_error *err)
{
	char *p = NULL;
	if (get_str(v, field, &p, 16, err) < 0)
		return -1;
	if (strcmp(p, "vm") && strcmp(p, "any")) {
		field_err(err, v, field, "expected \"vm\" or \"any\", got \"%s\"", p);
		free(p);
		return -1;
	}
	free(s->isolation);
	s->isolation = p;
	return 0;
}

static int k_disk_mb(vm_spec *s, const toml_value *v, const char *field, silo_error *err)
{
	return get_u32(v, field, &s->disk_mb, SPEC_DISK_MIN_MB, SPEC_DISK_MAX_MB, err);
}

static int k_vcpus(vm_spec *s, const toml_value *v, const char *field, silo_error *err)
{
	return get_u32(v, field, &s->vcpus, 1, VCPUS_MAX, err);
}

static int k_memory_mb(vm_spec *s, const toml_value *v, const char *field, silo_error *err)
{
	return get_memory(v, field, &s->memory_mb, err);
}

static int k_boot_timeout(vm_spec *s, const toml_value *v, const char *field, silo_error *err)
{
	return get_u32(v, field, &s->boot_timeout_ms, 0, BOOT_TIMEOUT_MAX_MS, err);
}

static int k_timeout_s(vm_spec *s, const toml_value *v, const char *field, silo_error *err)
{
	return get_u32(v, field, &s->timeout_s, 0, SPEC_TIMEOUT_MAX_S, err);
}

static int k_pids_max(vm_spec *s, const toml_value *v, const char *field, silo_error *err)
{
	return get_u32(v, field, &s->pids_max, 0, PIDS_MAX, err);
}

static int k_net_enabled(vm_spec *s, const toml_value *v, const char *field, silo_error *err)
{
	return get_bool(v, field, &s->network, err);
}

static int k_egress(vm_spec *s, const toml_value *v, const char *field, silo_error *err)
{
	if (v->type != TOML_ARRAY)
		return type_err(err, v, field, "array of strings like \"example.com:443\" or \"10.0.0.0/8\"");
	if (v->u.arr.n > SPEC_MAX_EGRESS)
		return field_err(err, v, field, "at most %d entries", SPEC_MAX_EGRESS);
	for (size_t i = 0; i < s->n_egress; i++)
		free(s->egress[i]);
	s->n_egress = 0;
	for (size_t i = 0; i < v->u.arr.n; i++) {
		char f[200];
		snprintf(f, sizeof f, "%s[%zu]", field, i);
		char *e = NULL;
		if (get_str(v->u.arr.items[i], f, &e, 256, err) < 0)
			return -1;
		egress_rule r;
		char why[160];
		if (!egress_parse(e, &r, why, sizeof why)) {
			free(e);
			return field_err(err, v->u.arr.items[i], f, "%s", why);
		}
		s->egress[s->n_egress++] = e;
	}
	return 0;
}

static int k_env(vm_spec *s, const toml_value *v, const char *field, silo_error *err)
{
	if (v->type != TOML_TABLE)
		return type_err(err, v, field, "table of strings (KEY = \"value\")");
	for (size_t i = 0; i < v->u.tab.n; i++) {
		char f[300];
		snprintf(f, sizeof f, "%s.%s", field, v->u.tab.keys[i]);
		if (!valid_env_key(v->u.tab.keys[i]))
			return key_err(err, v->u.tab.vals[i], f, "environment names are [A-Za-z_][A-Za-z0-9_]*");
		char *val = NULL;
		if (get_str(v->u.tab.vals[i], f, &val, 65536, err) < 0)
			return -1;
		if (s->n_env >= SPEC_MAX_KV && !spec_get_env(s, v->u.tab.keys[i])) {
			free(val);
			return key_err(err, v->u.tab.vals[i], f, "at most %d environment variables", SPEC_MAX_KV);
		}
		spec_set_env(s, v->u.tab.keys[i], val);
		free(val);
	}
	return 0;
}

static int secret_entry(vm_spec *s, const char *key, const toml_value *x, const char *f, silo_error *err)
{
	if (x->type == TOML_STRING) {
		if (memchr(x->u.str.ptr, '\0', x->u.str.len))
			return field_err(err, x, f, "a secret must not contain NUL characters");
		if (x->u.str.len > SPEC_SECRET_MAX)
			return field_err(err, x, f, "a secret is at most %d bytes", SPEC_SECRET_MAX);
		bool redacted = !strcmp(x->u.str.ptr, SPEC_SECRET_REDACTED);
		spec_set_secret(s, key, SPEC_SECRET_VALUE, NULL, redacted ? NULL : x->u.str.ptr);
		return 0;
	}
	if (x->type != TOML_TABLE)
		return type_err(err, x, f, "a string, {file = \"/host/path\"} or {env = \"NAME\"}");
	if (x->u.tab.n != 1)
		return field_err(err, x, f, "expected exactly one of file or env, as {file = \"/host/path\"} or {env = \"NAME\"}");
	const char *sk = x->u.tab.keys[0];
	const toml_value *sv = x->u.tab.vals[0];
	char f2[400];
	snprintf(f2, sizeof f2, "%s.%s", f, sk);
	cleanup_free char *ref = NULL;
	if (!strcmp(sk, "file")) {
		if (get_str(sv, f2, &ref, 4096, err) < 0)
			return -1;
		if (ref[0] != '/')
			return field_err(err, sv, f2, "expected an absolute host path");
		spec_set_secret(s, key, SPEC_SECRET_FILE, ref, NULL);
	} else if (!strcmp(sk, "env")) {
		if (get_str(sv, f2, &ref, 256, err) < 0)
			return -1;
		if (!valid_env_key(ref))
			return field_err(err, sv, f2, "expected an environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
		spec_set_secret(s, key, SPEC_SECRET_ENV, ref, NULL);
	} else {
		return key_err(err, sv, f2, "unknown key (expected file or env)");
	}
	return 0;
}

static const spec_secret *find_secret(const vm_spec *s, const char *key)
{
	for (size_t i = 0; i < s->n_secrets; i++)
		if (!strcmp(s->secrets[i].key, key))
			return &s->secrets[i];
	return NULL;
}

static int k_secrets(vm_spec *s, const toml_value *v, const char *field, silo_error *err)
{
	if (v->type != TOML_TABLE)
		return type_err(err, v, field, "table (KEY = \"value\", KEY = {file = \"/host/path\"} or KEY = {env = \"NAME\"})");
	for (size_t i = 0; i < v->u.tab.n; i++) {
		char f[300];
		const char *k = v->u.tab.keys[i];
		snprintf(f, sizeof f, "%s.%s", field, k);
		if (!valid_env_key(k))
			return key_err(err, v->u.tab.vals[i], f, "secret names are [A-Za-z_][A-Za-z0-9_]*");
		if (s->n_secrets >= SPEC_MAX_KV && !find_secret(s, k))
			return key_err(err, v->u.tab.vals[i], f, "at most %d secrets", SPEC_MAX_KV);
		if (secret_entry(s, k, v->u.tab.vals[i], f, err) < 0)
			return -1;
	}
	return 0;
}

static int k_metadata_table(vm_spec *s, const toml_value *v, const char *field, silo_error *err)
{
	if (v->type != TOML_TABLE)
		return type_err(err, v, field, "table of strings");
	for (size_t i = 0; i < v->u.tab.n; i++) {
		char f[300];
		snprintf(f, sizeof f, "%s.%s", field, v->u.tab.keys[i]);
		const char *k = v->u.tab.keys[i];
		if (!*k || strlen(k) > 256)
			return key_err(err, v->u.tab.vals[i], f, "keys are 1-256 bytes");
		if (s->n_metadata >= SPEC_MAX_KV)
			return key_err(err, v->u.tab.vals[i], f, "at most %d metadata entries", SPEC_MAX_KV);
		char *val = NULL;
		if (get_str(v->u.tab.vals[i], f, &val, 4096, err) < 0)
			return -1;
		s->metadata[s->n_metadata].key = xstrdup(k);
		s->metadata[s->n_metadata++].value = val;
	}
	return 0;
}

static const key_rule vm_rules[] = {
	{"name", k_name}, {"description", k_description}, {"provider", k_provider}, {"isolation", k_isolation},
	{NULL, NULL}};
static const key_rule resources_rules[] = {{"vcpus", k_vcpus}, {"memory_mb", k_memory_mb}, {NULL, NULL}};
static const key_rule boot_rules[] = {{"kernel", k_kernel}, {"initrd", k_initrd}, {"rootfs", k_rootfs},
				      {"image", k_image}, {"cmdline", k_cmdline},
				      {"boot_timeout_ms", k_boot_timeout}, {NULL, NULL}};
static const key_rule network_rules[] = {
	{"enabled", k_net_enabled}, {"tap", k_tap}, {"mac", k_mac}, {"egress", k_egress}, {NULL, NULL}};
static const key_rule sandbox_rules[] = {{"env", k_env},           {"secrets", k_secrets}, {"workdir", k_workdir},
					 {"user", k_user},
					 {"timeout_s", k_timeout_s}, {"pids_max", k_pids_max}, {"disk_mb", k_disk_mb},
					 {NULL, NULL}};

/* [[drives]] entries: the drive being filled is always the last one. */
#define cur_drive (&s->drives[s->n_drives - 1])

static int d_id(vm_spec *s, const toml_value *v, const char *field, silo_error *err)
{
	if (get_str(v, field, &cur_drive->id, 64, err) < 0)
		return -1;
	if (!valid_name(cur_drive->id, 64))
		return field_err(err, v, field, "expected 1-64 characters of [A-Za-z0-9_-]");
	return 0;
}
static int d_path(vm_spec *s, const toml_value *v, const char *field, silo_error *err)
{
	if (get_str(v, field, &cur_drive->path, 4096, err) < 0)
		return -1;
	if (!cur_drive->path[0])
		return field_err(err, v, field, "expected a non-empty path");
	return 0;
}
static int d_ro(vm_spec *s, const toml_value *v, const char *field, silo_error *err)
{
	return get_bool(v, field, &cur_drive->read_only, err);
}
static int d_root(vm_spec *s, const toml_value *v, const char *field, silo_error *err)
{
	return get_bool(v, field, &cur_drive->root, err);
}
static const key_rule drive_rules[] = {
	{"id", d_id}, {"path", d_path}, {"read_only", d_ro}, {"root", d_root}, {NULL, NULL}};

static int add_drive(vm_spec *s, const toml_value *at, const char *field, silo_error *err)
{
	if (s->n_drives >= SPEC_MAX_DRIVES)
		return field_err(err, at, field, "at most %d drives", SPEC_MAX_DRIVES);
	memset(&s->drives[s->n_drives++], 0, sizeof s->drives[0]);
	return 0;
}

static int parse_drives(vm_spec *s, const toml_value *v, silo_error *err)
{
	if (v->type != TOML_ARRAY)
		return type_err(err, v, "drives", "array of tables ([[drives]])");
	for (size_t i = 0; i < v->u.arr.n; i++) {
		char f[32];
		snprintf(f, sizeof f, "drives[%zu]", i);
		const toml_value *d = v->u.arr.items[i];
		if (d->type != TOML_TABLE)
			return type_err(err, d, f, "table");
		if (add_drive(s, d, f, err) < 0 || walk(s, d, f, drive_rules, err) < 0)
			return -1;
		if (!cur_drive->path)
			return field_err(err, d, f, "missing required key \"path\"");
	}
	return 0;
}

/* Vistara [hardware] */
static int h_drive(vm_spec *s, const toml_value *v, const char *field, silo_error *err)
{
	if (v->type == TOML_STRING) {
		if (add_drive(s, v, field, err) < 0)
			return -1;
		cur_drive->root = s->n_drives == 1;
		return d_path(s, v, field, err);
	}
	if (v->type == TOML_ARRAY) {
		for (size_t i = 0; i < v->u.arr.n; i++) {
			char f[64];
			snprintf(f, sizeof f, "%s[%zu]", field, i);
			if (h_drive(s, v->u.arr.items[i], f, err) < 0)
				return -1;
		}
		return 0;
	}
	return type_err(err, v, field, "path string or array of path strings");
}

static int h_interface(vm_spec *s, const toml_value *v, const char *field, silo_error *err)
{
	char *i = NULL;
	if (get_str(v, field, &i, 15, err) < 0)
		return -1;
	if (!strcmp(i, "none") || !*i) {
		free(i);
		s->network = false;
		return 0;
	}
	free(s->tap);
	s->tap = i;
	s->network = true;
	return 0;
}

static const key_rule spacecore_rules[] = {
	{"name", k_name}, {"description", k_description}, {"provider", k_provider}, {"isolation", k_isolation},
	{NULL, NULL}};
static const key_rule hardware_rules[] = {{"cores", k_vcpus},   {"memory", k_memory_mb},
					  {"kernel", k_kernel}, {"initrd", k_initrd},
					  {"drive", h_drive},   {"interface", h_interface},
					  {"provider", k_provider}, {NULL, NULL}};

/* ---------------- public API ---------------- */

/* TOML allows U+0000 in quoted keys; no spec key may hold it (toml.h): refuse
 * it before anything uses keys as names. field: the enclosing table's path. */
static int refuse_nul_keys(const toml_value *v, const char *field, int depth, silo_error *err)
{
	if (depth > 64)
		return 0;   /* the parser bounds nesting already */
	if (v->type == TOML_ARRAY) {
		for (size_t i = 0; i < v->u.arr.n; i++)
			if (refuse_nul_keys(v->u.arr.items[i], field, depth + 1, err) < 0)
				return -1;
		return 0;
	}
	if (v->type != TOML_TABLE)
		return 0;
	for (size_t i = 0; i < v->u.tab.n; i++) {
		const char *k = v->u.tab.keys[i];
		if (toml_key_has_nul(k))
			return key_err(err, v->u.tab.vals[i], *field ? field : "(top level)",
				       "a key may not contain NUL (\\u0000)");
		char f[160];
		snprintf(f, sizeof f, "%s%s%s", field, *field ? "." : "", k);
		if (refuse_nul_keys(v->u.tab.vals[i], f, depth + 1, err) < 0)
			return -1;
	}
	return 0;
}

static void spec_init_defaults(vm_spec *s)
{
	memset(s, 0, sizeof *s);
	s->vcpus = 2;
	s->memory_mb = 512;
}

int spec_parse(const char *text, size_t len, vm_spec *out, silo_error *err)
{
	char terr[600];
	spec_init_defaults(out);
	toml_value *root = toml_parse(text, len, terr, sizeof terr);
	if (!root)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s", terr);
	if (refuse_nul_keys(root, "", 0, err) < 0) {
		toml_free(root);
		return -1;
	}
	bool vistara = toml_get(root, "spacecore") || toml_get(root, "hardware");
	bool sectioned = toml_get(root, "vm") || toml_get(root, "resources") || toml_get(root, "boot") ||
			 toml_get(root, "drives") || toml_get(root, "network");
	int rc = 0;
	if (vistara && sectioned) {
		rc = silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
			       "mixes the sectioned form ([vm], [resources], ...) with Vistara's ([spacecore], [hardware])");
		goto out;
	}
	bool have_name = false;
	for (size_t i = 0; i < root->u.tab.n && rc == 0; i++) {
		const char *k = root->u.tab.keys[i];
		const toml_value *v = root->u.tab.vals[i];
		if (!strcmp(k, "vm") || !strcmp(k, "spacecore")) {
			rc = walk(out, v, k, !strcmp(k, "vm") ? vm_rules : spacecore_rules, err);
			have_name = toml_get(v, "name") != NULL;
		} else if (!strcmp(k, "resources")) {
			rc = walk(out, v, k, resources_rules, err);
		} else if (!strcmp(k, "boot")) {
			rc = walk(out, v, k, boot_rules, err);
		} else if (!strcmp(k, "network")) {
			rc = walk(out, v, k, network_rules, err);
		} else if (!strcmp(k, "drives")) {
			rc = parse_drives(out, v, err);
		} else if (!strcmp(k, "sandbox")) {
			rc = walk(out, v, k, sandbox_rules, err);
		} else if (!strcmp(k, "metadata")) {
			rc = k_metadata_table(out, v, k, err);
		} else if (!strcmp(k, "hardware")) {
			rc = walk(out, v, k, hardware_rules, err);
		} else {
			rc = key_err(err, v, k,
				       "unknown section (expected vm, resources, boot, network, drives, sandbox, metadata; "
				       "or spacecore, hardware)");
		}
	}
	if (rc == 0 && !have_name)
		rc = silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s.name: missing required key (1-64 of [A-Za-z0-9_-])",
			       vistara ? "spacecore" : "vm");
	if (rc == 0)
		for (size_t i = 0; i < out->n_drives; i++)
			if (!out->drives[i].id)
				out->drives[i].id = xasprintf("drive%zu", i);
	if (rc == 0)
		rc = spec_validate(out, err);
out:
	toml_free(root);
	if (rc < 0) {
		spec_free(out);
		spec_init_defaults(out);
	}
	return rc;
}

int spec_load(const char *path, vm_spec *out, silo_error *err)
{
	cleanup_free char *text = NULL;
	size_t len;
	if (read_file(path, TOML_MAX_INPUT, &text, &len, err) < 0) {
		spec_init_defaults(out);
		if (err && err->sys_errno == EFBIG)
			err->code = SILO_ERR_INVALID_CONFIG;
		return -1;
	}
	if (spec_parse(text, len, out, err) < 0) {
		silo_error_prefix(err, "%s", path);
		return -1;
	}
	return 0;
}

int spec_validate(const vm_spec *s, silo_error *err)
{
	if (!valid_name(s->name, SPEC_NAME_MAX))
		return field_err(err, NULL, "vm.name", "expected 1-64 characters of [A-Za-z0-9_-], got \"%s\"", s->name);
	bool known = !s->provider;
	for (size_t i = 0; i < ARRAY_SIZE(providers) && !known; i++)
		known = !strcmp(s->provider, providers[i]);
	if (!known)
		return field_err(err, NULL, "vm.provider", "expected one of \"kvm\", \"qemu\", \"namespace\", got \"%s\"",
				 s->provider);
	if (s->vcpus < 1 || s->vcpus > VCPUS_MAX)
		return field_err(err, NULL, "resources.vcpus", "expected integer 1-%d, got %u", VCPUS_MAX, s->vcpus);
	uint32_t min = s->provider && !strcmp(s->provider, "kvm") ? MEM_MIN_KVM_MB : MEM_MIN_MB;
	if (s->memory_mb < min || s->memory_mb > MEM_MAX_MB)
		return field_err(err, NULL, "resources.memory_mb", "expected integer %u-%d%s, got %u", min, MEM_MAX_MB,
				 min == MEM_MIN_MB ? " (16 with provider \"kvm\")" : "", s->memory_mb);
	if (s->image && !valid_name(s->image, 128))
		return field_err(err, NULL, "boot.image", "expected an image name of [A-Za-z0-9_-], got \"%s\"", s->image);
	if (s->mac && !valid_mac(s->mac))
		return field_err(err, NULL, "network.mac", "expected \"aa:bb:cc:dd:ee:ff\", got \"%s\"", s->mac);
	if (s->tap && !valid_name(s->tap, 15))
		return field_err(err, NULL, "network.tap", "expected an interface name of 1-15 [A-Za-z0-9_-]");
	for (size_t i = 0; i < s->n_egress; i++) {
		egress_rule r;
		char why[160], f[40];
		snprintf(f, sizeof f, "network.egress[%zu]", i);
		if (!s->egress[i] || !egress_parse(s->egress[i], &r, why, sizeof why))
			return field_err(err, NULL, f, "%s", s->egress[i] ? why : "missing");
	}
	if (s->workdir && s->workdir[0] != '/')
		return field_err(err, NULL, "sandbox.workdir", "expected an absolute path, got \"%s\"", s->workdir);
	if (s->user && !spec_user_valid(s->user))
		return field_err(err, NULL, "sandbox.user", "expected \"uid[:gid]\" or \"name[:group]\" of [A-Za-z0-9_.-], got \"%.64s\"",
				 s->user);
	if (s->isolation && strcmp(s->isolation, "vm") && strcmp(s->isolation, "any"))
		return field_err(err, NULL, "vm.isolation", "expected \"vm\" or \"any\", got \"%s\"", s->isolation);
	if (s->disk_mb && (s->disk_mb < SPEC_DISK_MIN_MB || s->disk_mb > SPEC_DISK_MAX_MB))
		return field_err(err, NULL, "sandbox.disk_mb", "expected integer %d-%d, got %u", SPEC_DISK_MIN_MB,
				 SPEC_DISK_MAX_MB, s->disk_mb);
	if (s->boot_timeout_ms > BOOT_TIMEOUT_MAX_MS)
		return field_err(err, NULL, "boot.boot_timeout_ms", "expected integer 0-%d", BOOT_TIMEOUT_MAX_MS);
	int roots = 0;
	for (size_t i = 0; i < s->n_drives; i++) {
		char f[32];
		snprintf(f, sizeof f, "drives[%zu]", i);
		if (!s->drives[i].path || !s->drives[i].path[0])
			return field_err(err, NULL, f, "missing required key \"path\"");
		if (s->drives[i].id && !valid_name(s->drives[i].id, 64))
			return field_err(err, NULL, f, "id: expected 1-64 characters of [A-Za-z0-9_-]");
		for (size_t j = 0; j < i; j++)
			if (s->drives[i].id && s->drives[j].id && !strcmp(s->drives[i].id, s->drives[j].id))
				return field_err(err, NULL, f, "id \"%s\" is used by drives[%zu] too", s->drives[i].id, j);
		roots += s->drives[i].root;
	}
	if (roots > 1)
		return field_err(err, NULL, "drives", "at most one drive may have root = true");
	for (size_t i = 0; i < s->n_env; i++)
		if (!valid_env_key(s->env[i].key))
			return field_err(err, NULL, "sandbox.env", "invalid variable name \"%s\"", s->env[i].key);
	for (size_t i = 0; i < s->n_secrets; i++) {
		const spec_secret *x = &s->secrets[i];
		char f[300];
		snprintf(f, sizeof f, "sandbox.secrets.%.200s", x->key);
		if (!valid_env_key(x->key))
			return field_err(err, NULL, "sandbox.secrets", "invalid variable name \"%.200s\"", x->key);
		if (spec_get_env(s, x->key))
			return field_err(err, NULL, f, "also given in sandbox.env: a variable is either a secret or not");
		if (x->src == SPEC_SECRET_FILE && (!x->ref || x->ref[0] != '/' || strlen(x->ref) > 4096))
			return field_err(err, NULL, f, "file: expected an absolute host path");
		if (x->src == SPEC_SECRET_ENV && (!x->ref || strlen(x->ref) > 256 || !valid_env_key(x->ref)))
			return field_err(err, NULL, f, "env: expected an environment variable name");
		if (x->src == SPEC_SECRET_VALUE && x->ref)
			return field_err(err, NULL, f, "an inline secret has no reference");
		if (x->value && (strlen(x->value) > SPEC_SECRET_MAX || !strcmp(x->value, SPEC_SECRET_REDACTED)))
			return field_err(err, NULL, f, "a value is at most %d bytes and not \"%s\" (the redaction mark)",
					 SPEC_SECRET_MAX, SPEC_SECRET_REDACTED);
	}
	return 0;
}

/* "Key: N kB" of /proc/meminfo in kB, 0 if absent. */
static unsigned long long meminfo_kb(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "re");
	if (!f)
		return 0;
	char line[256];
	size_t kl = strlen(key);
	unsigned long long kb = 0;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, key, kl) && line[kl] == ':') {
			kb = strtoull(line + kl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

int host_capacity_read(host_capacity *out, silo_error *err)
{
	*out = (host_capacity){0};
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	out->cpus = n > 0 ? (uint32_t)n : 1;
	unsigned long long kb = meminfo_kb("MemTotal");
	if (!kb)
		return silo_fail(err, SILO_ERR_IO_ERROR, 0, "MemTotal not found in /proc/meminfo");
	out->memory_mb = kb / 1024;
	return 0;
}

uint64_t host_memory_available_mb(void)
{
	return meminfo_kb("MemAvailable") / 1024;
}

static double overcommit(double field, const char *env, double dflt)
{
	if (field > 0)
		return field;
	const char *e = getenv(env);
	double v = e ? strtod(e, NULL) : 0;
	return v > 0 ? v : dflt;
}

double host_memory_overcommit(const host_capacity *host)
{
	return overcommit(host->memory_overcommit, "SILO_MEM_OVERCOMMIT", 1.0);
}

int spec_check_capacity(const vm_spec *s, const host_capacity *host, uint32_t allocated_vcpus,
			uint64_t allocated_mb, silo_error *err)
{
	if (s->vcpus > host->cpus)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0,
				 "vcpus: %u requested but the host has %u cores", s->vcpus, host->cpus);
	/* vCPUs are time-shared: allow cores x the CPU overcommit in total (default 16). */
	double cpu_limit = host->cpus * overcommit(host->cpu_overcommit, "SILO_CPU_OVERCOMMIT", 16.0);
	if ((double)allocated_vcpus + s->vcpus > cpu_limit)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0,
				 "vcpus: %u requested, %u of %.0f allocatable already allocated (%u cores x overcommit)",
				 s->vcpus, allocated_vcpus, cpu_limit, host->cpus);
	/* Memory: MemTotal x the memory overcommit (default 1.0: no overcommit). */
	double mem_limit = (double)host->memory_mb * host_memory_overcommit(host);
	if ((double)allocated_mb + s->memory_mb > mem_limit)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0,
				 "memory_mb: %u requested, %llu MB free of %.0f MB allocatable", s->memory_mb,
				 mem_limit > (double)allocated_mb ? (unsigned long long)(mem_limit - (double)allocated_mb) : 0ull,
				 mem_limit);
	return 0;
}

/* ---------------- format ---------------- */

static void put(char **buf, size_t *len, size_t *cap, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void put(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (*len + (size_t)n + 1 > *cap) {
		*cap = (*len + (size_t)n + 1) * 2;
		*buf = xrealloc(*buf, *cap);
	}
	va_start(ap, fmt);
	vsnprintf(*buf + *len, *cap - *len, fmt, ap);
	va_end(ap);
	*len += (size_t)n;
}

#define PUT(...) put(&b, &len, &cap, __VA_ARGS__)

static void put_kv_str(char **b_, size_t *len_, size_t *cap_, const char *key, const char *val)
{
	char *q = toml_quote(val, strlen(val));
	put(b_, len_, cap_, "%s = %s\n", key, q);
	free(q);
}
#define PUT_STR(k, v) put_kv_str(&b, &len, &cap, k, v)

static char *key_text(const char *k)
{
	return toml_is_bare_key(k) ? xstrdup(k) : toml_quote(k, strlen(k));
}

/* One optional key of a section: a string (NULL: left out) or a uint32_t (0:
 * left out) at off in vm_spec. A section's table lists its keys in order. */
typedef struct fmt_row {
	const char *key;
	size_t off;
	bool u32;
} fmt_row;
#define ROW_STR(f) {#f, offsetof(vm_spec, f), false}
#define ROW_U32(f) {#f, offsetof(vm_spec, f), true}

static const fmt_row vm_rows[] = {ROW_STR(description), ROW_STR(provider), ROW_STR(isolation)};
static const fmt_row boot_rows[] = {ROW_STR(kernel), ROW_STR(initrd),  ROW_STR(rootfs),
				    ROW_STR(image),  ROW_STR(cmdline), ROW_U32(boot_timeout_ms)};
static const fmt_row sandbox_rows[] = {ROW_STR(workdir), ROW_STR(user), ROW_U32(timeout_s), ROW_U32(pids_max),
				       ROW_U32(disk_mb)};

static const char *row_str(const vm_spec *s, const fmt_row *r)
{
	return r->u32 ? NULL : *(char *const *)((const char *)s + r->off);
}

static uint32_t row_u32(const vm_spec *s, const fmt_row *r)
{
	return r->u32 ? *(const uint32_t *)((const char *)s + r->off) : 0;
}

static bool rows_any(const vm_spec *s, const fmt_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (row_str(s, &rows[i]) || row_u32(s, &rows[i]))
			return true;
	return false;
}

static void put_rows(char **b_, size_t *len_, size_t *cap_, const vm_spec *s, const fmt_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (row_str(s, &rows[i]))
			put_kv_str(b_, len_, cap_, rows[i].key, row_str(s, &rows[i]));
		else if (row_u32(s, &rows[i]))
			put(b_, len_, cap_, "%s = %u\n", rows[i].key, row_u32(s, &rows[i]));
	}
}
#define ROWS_ANY(t) rows_any(s, t, ARRAY_SIZE(t))
#define PUT_ROWS(t) put_rows(&b, &len, &cap, s, t, ARRAY_SIZE(t))

/* [section] of KEY = "value" lines (env, metadata); nothing if n is 0. */
static void put_kv_table(char **b_, size_t *len_, size_t *cap_, const char *section, const spec_kv *v, size_t n)
{
	if (!n)
		return;
	put(b_, len_, cap_, "\n[%s]\n", section);
	for (size_t i = 0; i < n; i++) {
		cleanup_free char *k = key_text(v[i].key);
		cleanup_free char *q = toml_quote(v[i].value, strlen(v[i].value));
		put(b_, len_, cap_, "%s = %s\n", k, q);
	}
}

static char *format_spec(const vm_spec *s, bool with_secret_values)
{
	char *b = NULL;
	size_t len = 0, cap = 0;
	PUT("[vm]\n");
	PUT_STR("name", s->name);
	PUT_ROWS(vm_rows);
	PUT("\n[resources]\nvcpus = %u\nmemory_mb = %u\n", s->vcpus, s->memory_mb);
	if (ROWS_ANY(boot_rows)) {
		PUT("\n[boot]\n");
		PUT_ROWS(boot_rows);
	}
	if (s->network || s->tap || s->mac || s->n_egress) {
		PUT("\n[network]\nenabled = %s\n", s->network ? "true" : "false");
		if (s->tap)
			PUT_STR("tap", s->tap);
		if (s->mac)
			PUT_STR("mac", s->mac);
		if (s->n_egress) {
			PUT("egress = [");
			for (size_t i = 0; i < s->n_egress; i++) {
				char *q = toml_quote(s->egress[i], strlen(s->egress[i]));
				PUT("%s%s", i ? ", " : "", q);
				free(q);
			}
			PUT("]\n");
		}
	}
	for (size_t i = 0; i < s->n_drives; i++) {
		const spec_drive *d = &s->drives[i];
		PUT("\n[[drives]]\n");
		if (d->id)
			PUT_STR("id", d->id);
		PUT_STR("path", d->path ? d->path : "");
		PUT("read_only = %s\nroot = %s\n", d->read_only ? "true" : "false", d->root ? "true" : "false");
	}
	if (ROWS_ANY(sandbox_rows) || s->n_env || s->n_secrets) {
		PUT("\n[sandbox]\n");
		PUT_ROWS(sandbox_rows);
		put_kv_table(&b, &len, &cap, "sandbox.env", s->env, s->n_env);
		if (s->n_secrets) {
			PUT("\n[sandbox.secrets]\n");
			for (size_t i = 0; i < s->n_secrets; i++) {
				const spec_secret *x = &s->secrets[i];
				cleanup_free char *k = key_text(x->key);
				if (x->src == SPEC_SECRET_VALUE) {
					const char *v = with_secret_values && x->value ? x->value : SPEC_SECRET_REDACTED;
					char *q = toml_quote(v, strlen(v));
					PUT("%s = %s\n", k, q);
					explicit_bzero(q, strlen(q));
					free(q);
				} else {
					cleanup_free char *q = toml_quote(x->ref, strlen(x->ref));
					PUT("%s = {%s = %s}\n", k, x->src == SPEC_SECRET_FILE ? "file" : "env", q);
				}
			}
		}
	}
	put_kv_table(&b, &len, &cap, "metadata", s->metadata, s->n_metadata);
	return b;
}

char *spec_format(const vm_spec *s)
{
	return format_spec(s, false);
}

char *spec_format_with_secrets(const vm_spec *s)
{
	return format_spec(s, true);
}

int spec_default(const char *provider, vm_spec *out, silo_error *err)
{
	spec_init_defaults(out);
	snprintf(out->name, sizeof out->name, "sandbox");
	if (!provider)
		return 0;
	bool known = false;
	for (size_t i = 0; i < ARRAY_SIZE(providers); i++)
		known |= !strcmp(provider, providers[i]);
	if (!known)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "provider: expected one of \"kvm\", \"qemu\", \"namespace\", got \"%s\"", provider);
	out->provider = xstrdup(provider);
	if (strcmp(provider, "namespace") != 0) {
		/* VM providers boot the cached guest kernel with the "base" image (docs/images.md). */
		out->image = xstrdup("base");
		out->boot_timeout_ms = strcmp(provider, "qemu") == 0 ? 30000 : 10000;
	}
	return 0;
}

/* ---------------- equality, copy, free ---------------- */

static bool str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return !strcmp(a, b);
}

static bool kv_eq(const spec_kv *a, size_t na, const spec_kv *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (!str_eq(a[i].key, b[i].key) || !str_eq(a[i].value, b[i].value))
			return false;
	return true;
}

bool spec_equal(const vm_spec *a, const vm_spec *b)
{
	if (strcmp(a->name, b->name) || !str_eq(a->description, b->description) || !str_eq(a->provider, b->provider) ||
	    a->vcpus != b->vcpus || a->memory_mb != b->memory_mb || !str_eq(a->kernel, b->kernel) ||
	    !str_eq(a->initrd, b->initrd) || !str_eq(a->rootfs, b->rootfs) || !str_eq(a->image, b->image) ||
	    !str_eq(a->cmdline, b->cmdline) || a->network != b->network || !str_eq(a->tap, b->tap) ||
	    !str_eq(a->mac, b->mac) || a->n_egress != b->n_egress || a->n_drives != b->n_drives ||
	    !str_eq(a->workdir, b->workdir) || !str_eq(a->user, b->user) || a->timeout_s != b->timeout_s ||
	    a->boot_timeout_ms != b->boot_timeout_ms || a->pids_max != b->pids_max ||
	    a->disk_mb != b->disk_mb || !str_eq(a->isolation, b->isolation) ||
	    !kv_eq(a->env, a->n_env, b->env, b->n_env) || !kv_eq(a->metadata, a->n_metadata, b->metadata, b->n_metadata))
		return false;
	if (a->n_secrets != b->n_secrets)
		return false;
	for (size_t i = 0; i < a->n_secrets; i++)
		if (!str_eq(a->secrets[i].key, b->secrets[i].key) || a->secrets[i].src != b->secrets[i].src ||
		    !str_eq(a->secrets[i].ref, b->secrets[i].ref) || !str_eq(a->secrets[i].value, b->secrets[i].value))
			return false;
	for (size_t i = 0; i < a->n_egress; i++)
		if (!str_eq(a->egress[i], b->egress[i]))
			return false;
	for (size_t i = 0; i < a->n_drives; i++)
		if (!str_eq(a->drives[i].id, b->drives[i].id) || !str_eq(a->drives[i].path, b->drives[i].path) ||
		    a->drives[i].read_only != b->drives[i].read_only || a->drives[i].root != b->drives[i].root)
			return false;
	return true;
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

/* The optional strings a vm_spec owns: spec_copy duplicates them, spec_free
 * frees them (add a new char * field of vm_spec here). */
static const size_t owned_strs[] = {
	offsetof(vm_spec, description), offsetof(vm_spec, provider), offsetof(vm_spec, isolation),
	offsetof(vm_spec, kernel),      offsetof(vm_spec, initrd),   offsetof(vm_spec, rootfs),
	offsetof(vm_spec, image),       offsetof(vm_spec, cmdline),  offsetof(vm_spec, tap),
	offsetof(vm_spec, mac),         offsetof(vm_spec, workdir),  offsetof(vm_spec, user),
	offsetof(vm_spec, hostname),
};

static char **owned_str(vm_spec *s, size_t i)
{
	return (char **)((char *)s + owned_strs[i]);
}

static void kv_dup(spec_kv *dst, const spec_kv *src, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		dst[i].key = dup_or_null(src[i].key);
		dst[i].value = dup_or_null(src[i].value);
	}
}

static void kv_free(spec_kv *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].key);
		free(v[i].value);
	}
}

void spec_copy(vm_spec *dst, const vm_spec *src)
{
	*dst = *src;
	for (size_t i = 0; i < ARRAY_SIZE(owned_strs); i++)
		*owned_str(dst, i) = dup_or_null(*owned_str(dst, i));   /* dst still holds src's pointers */
	dst->rootfs_layers = src->rootfs_layers ? strv_dup(src->rootfs_layers) : NULL;
	for (size_t i = 0; i < src->n_mounts; i++) {
		dst->mounts[i].source = dup_or_null(src->mounts[i].source);
		dst->mounts[i].target = dup_or_null(src->mounts[i].target);
		dst->mounts[i].options = dup_or_null(src->mounts[i].options);
	}
	for (size_t i = 0; i < src->n_egress; i++)
		dst->egress[i] = dup_or_null(src->egress[i]);
	for (size_t i = 0; i < src->n_drives; i++) {
		dst->drives[i].id = dup_or_null(src->drives[i].id);
		dst->drives[i].path = dup_or_null(src->drives[i].path);
	}
	kv_dup(dst->env, src->env, src->n_env);
	kv_dup(dst->metadata, src->metadata, src->n_metadata);
	for (size_t i = 0; i < src->n_secrets; i++) {
		dst->secrets[i].key = dup_or_null(src->secrets[i].key);
		dst->secrets[i].ref = dup_or_null(src->secrets[i].ref);
		dst->secrets[i].value = dup_or_null(src->secrets[i].value);
	}
}

static void free_secret_value(char **v)
{
	if (*v) {
		explicit_bzero(*v, strlen(*v));
		free(*v);
		*v = NULL;
	}
}

void spec_free(vm_spec *s)
{
	for (size_t i = 0; i < ARRAY_SIZE(owned_strs); i++)
		free(*owned_str(s, i));
	strv_free(s->rootfs_layers);
	for (size_t i = 0; i < s->n_mounts; i++) {
		free(s->mounts[i].source);
		free(s->mounts[i].target);
		free(s->mounts[i].options);
	}
	for (size_t i = 0; i < s->n_egress; i++)
		free(s->egress[i]);
	for (size_t i = 0; i < s->n_drives; i++) {
		free(s->drives[i].id);
		free(s->drives[i].path);
	}
	kv_free(s->env, s->n_env);
	kv_free(s->metadata, s->n_metadata);
	for (size_t i = 0; i < s->n_secrets; i++) {
		free(s->secrets[i].key);
		free(s->secrets[i].ref);
		free_secret_value(&s->secrets[i].value);
	}
	memset(s, 0, sizeof *s);
}

void spec_set_env(vm_spec *s, const char *key, const char *value)
{
	for (size_t i = 0; i < s->n_env; i++)
		if (!strcmp(s->env[i].key, key)) {
			free(s->env[i].value);
			s->env[i].value = xstrdup(value);
			return;
		}
	if (s->n_env >= SPEC_MAX_KV)
		return;
	s->env[s->n_env].key = xstrdup(key);
	s->env[s->n_env++].value = xstrdup(value);
}

uint32_t spec_disk_mb(const vm_spec *s)
{
	return s->disk_mb ? s->disk_mb : SPEC_DISK_DEFAULT_MB;
}

bool spec_env_key_valid(const char *k)
{
	return valid_env_key(k);
}

bool spec_user_valid(const char *u)
{
	size_t n = u ? strlen(u) : 0;
	if (n == 0 || n > 64 || u[0] == ':' || u[n - 1] == ':')
		return false;
	int colons = 0;
	for (const char *p = u; *p; p++) {
		if (*p == ':')
			colons++;
		else if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			   *p == '_' || *p == '.' || *p == '-'))
			return false;
	}
	return colons <= 1;
}

bool spec_requires_vm(const vm_spec *s)
{
	return s->isolation && !strcmp(s->isolation, "vm");
}

const char *spec_get_env(const vm_spec *s, const char *key)
{
	for (size_t i = 0; i < s->n_env; i++)
		if (!strcmp(s->env[i].key, key))
			return s->env[i].value;
	return NULL;
}

/* ---------------- secrets ---------------- */

void spec_set_secret(vm_spec *s, const char *key, spec_secret_src src, const char *ref, const char *value)
{
	spec_secret *x = NULL;
	for (size_t i = 0; i < s->n_secrets && !x; i++)
		if (!strcmp(s->secrets[i].key, key))
			x = &s->secrets[i];
	if (!x) {
		if (s->n_secrets >= SPEC_MAX_KV)
			return;
		x = &s->secrets[s->n_secrets++];
		x->key = xstrdup(key);
	} else {
		free(x->ref);
		free_secret_value(&x->value);
	}
	x->src = src;
	x->ref = ref ? xstrdup(ref) : NULL;
	x->value = value ? xstrdup(value) : NULL;
}

void spec_redact(vm_spec *s)
{
	for (size_t i = 0; i < s->n_secrets; i++)
		free_secret_value(&s->secrets[i].value);
}

int spec_read_secret_file(const char *path, char **out, silo_error *err)
{
	*out = NULL;
	char *t = NULL;
	size_t n = 0;
	if (read_file(path, SPEC_SECRET_MAX + 2, &t, &n, err) < 0)
		return -1;
	if (n && t[n - 1] == '\n')
		t[--n] = '\0';
	if (n && t[n - 1] == '\r')
		t[--n] = '\0';
	int rc = 0;
	if (memchr(t, '\0', n))
		rc = silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: a secret must not contain NUL bytes", path);
	else if (n > SPEC_SECRET_MAX)
		rc = silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: a secret is at most %d bytes", path, SPEC_SECRET_MAX);
	if (rc < 0) {
		explicit_bzero(t, n);
		free(t);
		return -1;
	}
	*out = t;
	return 0;
}

static int resolve_one(spec_secret *x, silo_error *err)
{
	free_secret_value(&x->value);
	if (x->src == SPEC_SECRET_FILE) {
		if (spec_read_secret_file(x->ref, &x->value, err) < 0) {
			err->code = SILO_ERR_INVALID_CONFIG;
			return silo_error_prefix(err, "sandbox.secrets.%s", x->key), -1;
		}
		return 0;
	}
	const char *v = getenv(x->ref);
	if (!v)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "sandbox.secrets.%s: the environment variable %s is not set in the process that creates "
				 "the sandbox",
				 x->key, x->ref);
	if (strlen(v) > SPEC_SECRET_MAX)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "sandbox.secrets.%s: %s is longer than %d bytes", x->key,
				 x->ref, SPEC_SECRET_MAX);
	x->value = xstrdup(v);
	return 0;
}

int spec_resolve_secrets(vm_spec *s, unsigned flags, silo_error *err)
{
	int rc = 0;
	silo_error first = {0};
	for (size_t i = 0; i < s->n_secrets; i++) {
		spec_secret *x = &s->secrets[i];
		silo_error e = {0};
		int r = 0;
		if (x->src != SPEC_SECRET_VALUE)
			r = resolve_one(x, &e);
		else if (!x->value && (flags & SPEC_SECRETS_STRICT))
			r = silo_fail(&e, SILO_ERR_INVALID_CONFIG, 0,
				      "sandbox.secrets.%s: the value was redacted (\"%s\") and is not available: give it "
				      "again (--secret %s=..., or the request's secrets)",
				      x->key, SPEC_SECRET_REDACTED, x->key);
		if (r < 0 && rc == 0) {
			rc = -1;
			first = e;
		}
		if (r < 0 && !(flags & SPEC_SECRETS_KEEP_GOING))
			break;
	}
	if (rc < 0 && err)
		*err = first;
	return rc;
}

static void env_put(char ***env, size_t *n, const char *key, size_t klen, char *entry)
{
	for (size_t i = 0; i < *n; i++)
		if (!strncmp((*env)[i], key, klen) && (*env)[i][klen] == '=') {
			explicit_bzero((*env)[i], strlen((*env)[i]));
			free((*env)[i]);
			(*env)[i] = entry;
			return;
		}
	*env = xrealloc(*env, (*n + 2) * sizeof **env);
	(*env)[(*n)++] = entry;
	(*env)[*n] = NULL;
}

char **spec_exec_env(const vm_spec *s, char *const *extra, silo_error *err)
{
	char **env = xcalloc(1, sizeof *env);
	size_t n = 0;
	for (size_t i = 0; i < s->n_env; i++)
		env_put(&env, &n, s->env[i].key, strlen(s->env[i].key), xasprintf("%s=%s", s->env[i].key, s->env[i].value));
	for (size_t i = 0; i < s->n_secrets; i++) {
		const spec_secret *x = &s->secrets[i];
		size_t kl = strlen(x->key);
		if (x->value) {
			env_put(&env, &n, x->key, kl, xasprintf("%s=%s", x->key, x->value));
			continue;
		}
		bool supplied = false;
		for (char *const *e = extra; e && *e && !supplied; e++)
			supplied = !strncmp(*e, x->key, kl) && (*e)[kl] == '=';
		if (!supplied) {
			spec_env_free(env);
			return silo_fail(err, SILO_ERR_CONFLICT, 0,
					 "secret %s is not available (%s): pass it in the command's environment, or create the "
					 "sandbox again with it",
					 x->key,
					 x->src == SPEC_SECRET_VALUE
						 ? "it was given inline, which is held in memory only and lost when silod restarts"
						 : "it could not be read again after silod restarted"),
			       NULL;
		}
	}
	for (char *const *e = extra; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		if (eq)
			env_put(&env, &n, *e, (size_t)(eq - *e), xstrdup(*e));
	}
	return env;
}

void spec_env_free(char **env)
{
	if (!env)
		return;
	for (char **e = env; *e; e++) {
		explicit_bzero(*e, strlen(*e));
		free(*e);
	}
	free(env);
}
