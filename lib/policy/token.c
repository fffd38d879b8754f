/* SPDX-License-Identifier: Apache-2.0
 * Scoped API tokens (see token.h, docs/policy.md).
 */
#include "policy/token.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "policy/cfg.h"
#include "policy/policy.h"
#include "spec/toml.h"

static const char *const op_names[TOKEN_OP__COUNT] = {
	[TOKEN_OP_CREATE] = "create",       [TOKEN_OP_DELETE] = "delete",   [TOKEN_OP_EXEC] = "exec",
	[TOKEN_OP_FILE_READ] = "file_read", [TOKEN_OP_FILE_WRITE] = "file_write",
	[TOKEN_OP_INSPECT] = "inspect",     [TOKEN_OP_LIST] = "list",       [TOKEN_OP_EVENTS] = "events",
	[TOKEN_OP_METRICS] = "metrics",
};

#define ALL_OPS ((1u << TOKEN_OP__COUNT) - 1)

const char *token_op_name(token_op op)
{
	return (unsigned)op < TOKEN_OP__COUNT ? op_names[op] : NULL;
}

int token_op_from_name(const char *name)
{
	return cfg_name_index(op_names, TOKEN_OP__COUNT, name);
}

/* ---- parsing ---- */

/* Shared helpers (cfg.c), with this file's name in errors. */
#define field_err(err, v, field, ...) cfg_field_err(err, "tokens file", v, field, __VA_ARGS__)
#define valid_name(s) cfg_valid_name(s, TOKEN_NAME_MAX)

static int get_string(const toml_value *v, const char *field, size_t max, const char **out, silo_error *err)
{
	return cfg_get_string("tokens file", v, field, max, out, err);
}

static int get_list(const toml_value *v, const char *field, char ***out, size_t *n, silo_error *err)
{
	if (v->type != TOML_ARRAY)
		return field_err(err, v, field, "expected an array of strings, got %s", toml_type_name(v->type));
	if (v->u.arr.n > TOKEN_MAX_LIST)
		return field_err(err, v, field, "at most %d entries", TOKEN_MAX_LIST);
	if (v->u.arr.n == 0)
		return field_err(err, v, field, "an empty list would allow nothing: leave the key out instead");
	*out = xcalloc(v->u.arr.n, sizeof **out);
	for (size_t i = 0; i < v->u.arr.n; i++) {
		char f[128];
		snprintf(f, sizeof f, "%s[%zu]", field, i);
		const char *s;
		if (get_string(v->u.arr.items[i], f, 256, &s, err) < 0)
			return -1;
		(*out)[(*n)++] = xstrdup(s);
	}
	return 0;
}

static int hex32(const char *s, unsigned char out[32])
{
	if (strlen(s) != 64)
		return -1;
	for (int i = 0; i < 32; i++) {
		unsigned v = 0;
		for (int k = 0; k < 2; k++) {
			char c = s[2 * i + k];
			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v |= (unsigned)(c - 'a' + 10);
			else if (c >= 'A' && c <= 'F')
				v |= (unsigned)(c - 'A' + 10);
			else
				return -1;
		}
		out[i] = (unsigned char)v;
	}
	return 0;
}

static void strs_free(char **v, size_t n)
{
	cfg_free_strs(v, n);
	free(v);
}

static void token_clear(api_token *t)
{
	strs_free(t->providers, t->n_providers);
	strs_free(t->ids, t->n_ids);
	strs_free(t->prefixes, t->n_prefixes);
	sodium_memzero(t, sizeof *t);
}

static int parse_token(size_t idx, const toml_value *tab, api_token *t, silo_error *err)
{
	char field[160];
	t->ops = ALL_OPS;
	bool have_name = false, have_hash = false;
	for (size_t i = 0; i < tab->u.tab.n; i++) {
		const char *k = tab->u.tab.keys[i];
		const toml_value *v = tab->u.tab.vals[i];
		snprintf(field, sizeof field, "tokens[%zu].%s", idx, k);
		const char *s;
		if (!strcmp(k, "name")) {
			if (get_string(v, field, TOKEN_NAME_MAX, &s, err) < 0)
				return -1;
			if (!valid_name(s))
				return field_err(err, v, field, "expected 1-%d of [A-Za-z0-9_-]", TOKEN_NAME_MAX);
			snprintf(t->name, sizeof t->name, "%s", s);
			have_name = true;
		} else if (!strcmp(k, "sha256")) {
			if (get_string(v, field, 64, &s, err) < 0 || hex32(s, t->sha256) < 0)
				return field_err(err, v, field,
						 "expected the SHA-256 of the secret as 64 hex digits (silo token create "
						 "writes it)");
			have_hash = true;
		} else if (!strcmp(k, "operations")) {
			char **ops = NULL;
			size_t n = 0;
			int rc = get_list(v, field, &ops, &n, err);
			t->ops = 0;
			for (size_t j = 0; rc == 0 && j < n; j++) {
				int op = token_op_from_name(ops[j]);
				if (op < 0)
					rc = field_err(err, v->u.arr.items[j], field,
						       "unknown operation \"%.64s\" (expected create, delete, exec, "
						       "file_read, file_write, inspect, list, events, metrics)",
						       ops[j]);
				else
					t->ops |= 1u << op;
			}
			strs_free(ops, n);
			if (rc < 0)
				return -1;
		} else if (!strcmp(k, "providers")) {
			if (get_list(v, field, &t->providers, &t->n_providers, err) < 0)
				return -1;
		} else if (!strcmp(k, "sandbox_ids")) {
			if (get_list(v, field, &t->ids, &t->n_ids, err) < 0)
				return -1;
		} else if (!strcmp(k, "name_prefixes")) {
			if (get_list(v, field, &t->prefixes, &t->n_prefixes, err) < 0)
				return -1;
		} else if (!strcmp(k, "max_sandboxes")) {
			if (v->type != TOML_INTEGER || v->u.i < 1 || v->u.i > 100000)
				return field_err(err, v, field, "expected an integer 1..100000");
			t->max_sandboxes = (uint32_t)v->u.i;
		} else if (!strcmp(k, "policy")) {
			if (get_string(v, field, TOKEN_NAME_MAX, &s, err) < 0)
				return -1;
			snprintf(t->policy, sizeof t->policy, "%s", s);
		} else {
			return field_err(err, v, field,
					 "unknown key (expected name, sha256, operations, providers, sandbox_ids, "
					 "name_prefixes, max_sandboxes, policy)");
		}
	}
	snprintf(field, sizeof field, "tokens[%zu]", idx);
	if (!have_name)
		return field_err(err, tab, field, "name is required");
	if (!have_hash)
		return field_err(err, tab, field, "sha256 is required");
	return 0;
}

static int parse_tokens(const toml_value *root, void *dst, silo_error *err)
{
	token_set *out = dst;
	const toml_value *arr = NULL;
	for (size_t i = 0; i < root->u.tab.n; i++) {
		if (strcmp(root->u.tab.keys[i], "tokens") != 0)
			return field_err(err, root->u.tab.vals[i], root->u.tab.keys[i], "unknown key (expected [[tokens]] tables)");
		arr = root->u.tab.vals[i];
	}
	if (!arr)
		return 0;   /* an empty file: no tokens */
	if (arr->type != TOML_ARRAY)
		return field_err(err, arr, "tokens", "expected [[tokens]] tables, got %s", toml_type_name(arr->type));
	if (arr->u.arr.n > TOKEN_MAX_TOKENS)
		return field_err(err, arr, "tokens", "at most %d tokens", TOKEN_MAX_TOKENS);
	out->v = xcalloc(arr->u.arr.n ? arr->u.arr.n : 1, sizeof *out->v);
	for (size_t i = 0; i < arr->u.arr.n; i++) {
		const toml_value *t = arr->u.arr.items[i];
		char field[64];
		snprintf(field, sizeof field, "tokens[%zu]", i);
		if (t->type != TOML_TABLE)
			return field_err(err, t, field, "expected a table, got %s", toml_type_name(t->type));
		out->n++;
		if (parse_token(i, t, &out->v[i], err) < 0)
			return -1;
		for (size_t j = 0; j < i; j++) {
			if (!strcmp(out->v[j].name, out->v[i].name))
				return field_err(err, toml_get(t, "name"), field, "the name \"%s\" is used twice", out->v[i].name);
			if (!memcmp(out->v[j].sha256, out->v[i].sha256, 32))
				return field_err(err, toml_get(t, "sha256"), field, "the same secret as token \"%s\"",
						 out->v[j].name);
		}
	}
	return 0;
}

/* token_set_parse, token_set_load */
CFG_FILE_DEFINE(token_set, "tokens file", parse_tokens)

void token_set_free(token_set *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		token_clear(&s->v[i]);
	free(s->v);
	memset(s, 0, sizeof *s);
}

const api_token *token_lookup(const token_set *s, const char *secret)
{
	if (!s || !secret)
		return NULL;
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, (const unsigned char *)secret, strlen(secret));
	const api_token *hit = NULL;
	/* Visit every entry so the time does not depend on which one matches. */
	for (size_t i = 0; i < s->n; i++)
		if (sodium_memcmp(h, s->v[i].sha256, sizeof h) == 0)
			hit = &s->v[i];
	return hit;
}

/* ---- checks ---- */

int token_deny(const api_token *t, const char *rule, silo_error *err, const char *fmt, ...)
{
	char msg[800];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return silo_fail(err, SILO_ERR_POLICY_DENIED, 0, "token \"%s\" rule %s: %s", t->name, rule, msg);
}

static void list_str(char **v, size_t n, char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", v[i]);
}

bool token_has_scope(const api_token *t)
{
	return t->n_ids || t->n_prefixes || t->n_providers;
}

int token_check_op(const api_token *t, token_op op, silo_error *err)
{
	if ((unsigned)op >= TOKEN_OP__COUNT)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "token: unknown operation %d", (int)op);
	if (t->ops & (1u << op))
		return 0;
	char allowed[256];
	cfg_names_list(op_names, TOKEN_OP__COUNT, t->ops, allowed, sizeof allowed);
	return token_deny(t, "operations", err, "%s is not allowed (allowed: %s)", op_names[op], allowed);
}

static bool in_list(char **v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (s && !strcmp(v[i], s))
			return true;
	return false;
}

static bool has_prefix(char **v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (s && !strncmp(s, v[i], strlen(v[i])))
			return true;
	return false;
}

int token_check_sandbox(const api_token *t, token_op op, const char *id, const char *name,
			const char *provider, silo_error *err)
{
	if (token_check_op(t, op, err) < 0)
		return -1;
	char l[600];
	if (t->n_ids && !in_list(t->ids, t->n_ids, id)) {
		list_str(t->ids, t->n_ids, l, sizeof l);
		return token_deny(t, "sandbox_ids", err, "sandbox %.64s is not one of %s", id ? id : "?", l);
	}
	if (t->n_prefixes && !has_prefix(t->prefixes, t->n_prefixes, name)) {
		list_str(t->prefixes, t->n_prefixes, l, sizeof l);
		return token_deny(t, "name_prefixes", err, "sandbox %.64s (name \"%.64s\") does not start with %s",
				  id ? id : "?", name ? name : "", l);
	}
	if (t->n_providers && !in_list(t->providers, t->n_providers, provider)) {
		list_str(t->providers, t->n_providers, l, sizeof l);
		return token_deny(t, "providers", err, "sandbox %.64s runs on provider \"%.32s\", allowed: %s",
				  id ? id : "?", provider ? provider : "", l);
	}
	return 0;
}

static const char *meta_get(const vm_spec *s, const char *key)
{
	for (size_t i = 0; i < s->n_metadata; i++)
		if (!strcmp(s->metadata[i].key, key))
			return s->metadata[i].value;
	return NULL;
}

static void meta_set(vm_spec *s, const char *key, const char *value)
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

int token_apply_create(const api_token *t, vm_spec *spec, silo_error *err)
{
	if (token_check_op(t, TOKEN_OP_CREATE, err) < 0)
		return -1;
	char l[600];
	if (t->n_ids)
		return token_deny(t, "sandbox_ids", err, "the token is limited to existing sandboxes and cannot create");
	if (t->n_prefixes && !has_prefix(t->prefixes, t->n_prefixes, spec->name)) {
		list_str(t->prefixes, t->n_prefixes, l, sizeof l);
		return token_deny(t, "name_prefixes", err, "the name \"%s\" does not start with %s", spec->name, l);
	}
	if (t->n_providers && !in_list(t->providers, t->n_providers, spec->provider)) {
		list_str(t->providers, t->n_providers, l, sizeof l);
		if (!spec->provider)
			return token_deny(t, "providers", err, "the spec names no provider; name one of %s", l);
		return token_deny(t, "providers", err, "provider \"%s\" is not one of %s", spec->provider, l);
	}
	if (t->policy[0]) {
		const char *want = meta_get(spec, POLICY_METADATA_KEY);
		if (want && strcmp(want, t->policy) != 0)
			return token_deny(t, "policy", err, "metadata.%s \"%.64s\": this token creates only with policy \"%s\"",
					  POLICY_METADATA_KEY, want, t->policy);
		meta_set(spec, POLICY_METADATA_KEY, t->policy);
	}
	meta_set(spec, TOKEN_METADATA_KEY, t->name);
	return 0;
}

int token_check_count(const api_token *t, size_t live, silo_error *err)
{
	if (t->max_sandboxes && live >= t->max_sandboxes)
		return token_deny(t, "max_sandboxes", err, "%zu live sandboxes were created with this token, the maximum is %u",
				  live, t->max_sandboxes);
	return 0;
}
