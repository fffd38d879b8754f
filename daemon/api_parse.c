/* SPDX-License-Identifier: Apache-2.0
 * silod request body parsers (see api_parse.h).
 */
#include "daemon/api_parse.h"

#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

int api_json_uint(json_t *o, const char *key, uint64_t max, uint64_t *out, silo_error *err)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: expected an integer 0..%" PRIu64, key, max);
	*out = (uint64_t)json_integer_value(v);
	return 1;
}

int api_json_str(json_t *o, const char *key, size_t max, const char **out, silo_error *err)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) || json_string_length(v) > max || strlen(json_string_value(v)) != json_string_length(v))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: expected a string of at most %zu bytes", key, max);
	*out = json_string_value(v);
	return 1;
}

json_t *api_json_body(const char *body, size_t len, const char *const *known, bool empty_ok, silo_error *err)
{
	if (len == 0 && empty_ok)
		return json_object();
	json_error_t je;
	json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!o) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "body: invalid JSON at line %d column %d: %s", je.line,
			  je.column, je.text);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "body: expected a JSON object");
		return NULL;
	}
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		bool ok = false;
		for (const char *const *f = known; *f && !ok; f++)
			ok = !strcmp(*f, k);
		if (ok)
			continue;
		char list[512];
		size_t off = 0;
		for (const char *const *f = known; *f && off < sizeof list; f++)
			off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", f == known ? "" : ", ", *f);
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "body: unknown field '%.64s' (expected %s)", k, list);
		json_decref(o);   /* k belongs to o: formatted above */
		return NULL;
	}
	return o;
}

int api_json_bool(json_t *o, const char *key, bool *out, silo_error *err)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: expected true or false", key);
	*out = json_is_true(v);
	return 1;
}

/* An exec body (api_exec_parse) or a process start (api_proc_parse: also the
 * process fields). */
static int parse_body(const char *body, size_t len, api_exec_body *st, bool proc, silo_error *err)
{
	static const char *const exec_known[] = {"argv", "env", "cwd", "stdin", "timeout_ms", "uid", "gid", NULL};
	static const char *const proc_known[] = {"argv", "env", "cwd", "stdin", "timeout_ms", "uid", "gid",
						 "pty", "rows", "cols", "tag", "stdin_open", NULL};
	memset(st, 0, sizeof *st);
	json_t *o = api_json_body(body, len, proc ? proc_known : exec_known, false, err);
	if (!o)
		return -1;
	int rc = -1;
	const char *k;
	json_t *v;
	json_t *argv = json_object_get(o, "argv");
	if (!json_is_array(argv) || json_array_size(argv) == 0 || json_array_size(argv) > MAX_ARGV) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "argv: expected a non-empty array of at most %d strings",
			  MAX_ARGV);
		goto out;
	}
	st->argv = xcalloc(json_array_size(argv) + 1, sizeof(char *));
	for (size_t i = 0; i < json_array_size(argv); i++) {
		json_t *a = json_array_get(argv, i);
		if (!json_is_string(a) || strlen(json_string_value(a)) != json_string_length(a)) {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "argv[%zu]: expected a string without NUL bytes", i);
			goto out;
		}
		st->argv[i] = xstrdup(json_string_value(a));
	}
	json_t *env = json_object_get(o, "env");
	if (env) {
		if (!json_is_object(env) || json_object_size(env) > MAX_ENV) {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "env: expected an object of at most %d strings", MAX_ENV);
			goto out;
		}
		st->env = xcalloc(json_object_size(env) + 1, sizeof(char *));
		size_t i = 0;
		json_object_foreach(env, k, v) {
			if (!json_is_string(v) || !*k || strchr(k, '=') ||
			    strlen(json_string_value(v)) != json_string_length(v)) {
				silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					  "env.%.64s: expected a string value and a name without '='", k);
				goto out;
			}
			st->env[i++] = xasprintf("%s=%s", k, json_string_value(v));
		}
	}
	const char *cwd = NULL, *in = NULL;
	if (api_json_str(o, "cwd", 4096, &cwd, err) < 0 || api_json_str(o, "stdin", EXEC_BODY_MAX, &in, err) < 0)
		goto out;
	if (cwd && cwd[0] != '/') {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "cwd: expected an absolute path");
		goto out;
	}
	if (in) {
		size_t cap = strlen(in) / 4 * 3 + 3, got = 0;
		st->stdin_buf = xmalloc(cap ? cap : 1);
		if (sodium_base642bin(st->stdin_buf, cap, in, strlen(in), NULL, &got, NULL,
				      sodium_base64_VARIANT_ORIGINAL) != 0) {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "stdin: expected base64 (standard alphabet, padded)");
			goto out;
		}
		st->stdin_len = got;
	}
	uint64_t u;
	int r;
	st->uid = st->gid = -1;
	if ((r = api_json_uint(o, "timeout_ms", UINT32_MAX, &u, err)) < 0)
		goto out;
	if (r)
		st->timeout_ms = (uint32_t)u;
	if ((r = api_json_uint(o, "uid", UINT32_MAX - 1, &u, err)) < 0)
		goto out;
	if (r)
		st->uid = (int64_t)u;
	if ((r = api_json_uint(o, "gid", UINT32_MAX - 1, &u, err)) < 0)
		goto out;
	if (r)
		st->gid = (int64_t)u;
	st->cwd = cwd ? xstrdup(cwd) : NULL;
	if (proc) {
		const char *tag = NULL;
		if (api_json_bool(o, "pty", &st->pty, err) < 0 || api_json_bool(o, "stdin_open", &st->stdin_open, err) < 0 ||
		    api_json_str(o, "tag", 64, &tag, err) < 0)
			goto out;
		st->tag = tag ? xstrdup(tag) : NULL;
		if ((r = api_json_uint(o, "rows", 4096, &u, err)) < 0)
			goto out;
		if (r)
			st->rows = (uint16_t)u;
		if ((r = api_json_uint(o, "cols", 4096, &u, err)) < 0)
			goto out;
		if (r)
			st->cols = (uint16_t)u;
		if ((st->rows || st->cols) && !st->pty) {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "rows, cols: only with \"pty\": true");
			goto out;
		}
	}
	rc = 0;
out:
	json_decref(o);
	return rc;
}

int api_exec_parse(const char *body, size_t len, api_exec_body *st, silo_error *err)
{
	return parse_body(body, len, st, false, err);
}

int api_proc_parse(const char *body, size_t len, api_exec_body *st, silo_error *err)
{
	return parse_body(body, len, st, true, err);
}

void api_exec_body_free(api_exec_body *b)
{
	strv_free(b->argv);
	strv_free(b->env);
	free(b->cwd);
	free(b->stdin_buf);
	free(b->tag);
	memset(b, 0, sizeof *b);
}
