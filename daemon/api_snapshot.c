/* SPDX-License-Identifier: Apache-2.0
 * Snapshot routes (see api_snapshot.h):
 *   POST   /v1/sandboxes/{id}/snapshot   {"tags":[..],"keep_paused":bool,"ttl_s":N}  -> 201 snapshot
 *   POST   /v1/sandboxes/{id}/fork       {"n":N}                                     -> 201 {snapshot,sandboxes}
 *   POST   /v1/sandboxes/{id}/pause | resume                                         -> 200 sandbox
 *   GET    /v1/snapshots                                                             -> 200 {snapshots:[..]}
 *   GET    /v1/snapshots/{id}            (?verify=true checks every payload byte)    -> 200 snapshot
 *   DELETE /v1/snapshots/{id}            (?force=true even while in use)             -> 200 {id,deleted}
 *   POST   /v1/snapshots/{id}/restore                                                -> 201 sandbox
 *   POST   /v1/snapshots/{id}/tags       {"add":[..],"remove":[..]}                  -> 200 snapshot
 *   POST   /v1/snapshots/gc              {"max_age_s":N}                             -> 200 {removed:[..]}
 *   GET    /v1/pools                     (warm pools: template, k, ready, taken ...) -> 200 {pools:[..]}
 * Bodies are JSON objects; unknown or duplicate fields are refused by name.
 */
#include "daemon/api_snapshot.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "daemon/api.h"
#include "snapshot/snapshot.h"

#define SB_PREFIX "/v1/sandboxes/"
#define SNAP_PREFIX "/v1/snapshots"

static const char *const sb_subs[] = {"snapshot", "fork", "pause", "resume"};

/* "/v1/sandboxes/ID/SUB": id and sub into the buffers; false otherwise. */
static bool split_sandbox(const char *url, char *id, size_t idlen, const char **sub)
{
	if (strncmp(url, SB_PREFIX, strlen(SB_PREFIX)) != 0)
		return false;
	const char *rest = url + strlen(SB_PREFIX), *slash = strchr(rest, '/');
	if (!slash || slash == rest || (size_t)(slash - rest) >= idlen)
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(sb_subs); i++) {
		if (!strcmp(slash + 1, sb_subs[i])) {
			memcpy(id, rest, (size_t)(slash - rest));
			id[slash - rest] = '\0';
			*sub = sb_subs[i];
			return true;
		}
	}
	return false;
}

bool api_snapshot_owns(const char *url)
{
	char id[SILO_ID_MAX * 2];
	const char *sub;
	if (split_sandbox(url, id, sizeof id, &sub))
		return true;
	return !strcmp(url, SNAP_PREFIX) || !strncmp(url, SNAP_PREFIX "/", strlen(SNAP_PREFIX) + 1) ||
	       !strcmp(url, "/v1/pools");
}

static unsigned failf(silo_error *err, unsigned status, silo_code code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static unsigned failf(silo_error *err, unsigned status, silo_code code, const char *fmt, ...)
{
	memset(err, 0, sizeof *err);
	err->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	return status;
}

static unsigned err_status(const silo_error *err)
{
	return api_http_status(err->code);
}

/* Parse body as a JSON object with only the allowed keys ({} when empty). */
static json_t *parse_body(const char *body, size_t len, const char *const *allowed, silo_error *err)
{
	if (!body || len == 0)
		return json_object();
	json_error_t je;
	json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!o || !json_is_object(o)) {
		json_decref(o);
		failf(err, 400, SILO_ERR_INVALID_CONFIG, "request body: expected a JSON object (%s at line %d column %d)",
		      o ? "not an object" : je.text, je.line, je.column);
		return NULL;
	}
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v)
	{
		bool ok = false;
		for (const char *const *a = allowed; *a; a++)
			ok |= !strcmp(*a, k);
		if (!ok) {
			failf(err, 400, SILO_ERR_INVALID_CONFIG, "request body: unknown field \"%.64s\"", k);
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

/* strv from an optional JSON array of strings named field. */
static int str_array(json_t *o, const char *field, char ***out, silo_error *err)
{
	*out = NULL;
	json_t *a = json_object_get(o, field);
	if (!a)
		return 0;
	if (!json_is_array(a) || json_array_size(a) > SNAP_MAX_TAGS) {
		failf(err, 400, SILO_ERR_INVALID_CONFIG, "%s: expected an array of at most %d strings", field,
		      SNAP_MAX_TAGS);
		return -1;
	}
	char **v = xcalloc(json_array_size(a) + 1, sizeof *v);
	size_t i;
	json_t *t;
	json_array_foreach(a, i, t)
	{
		if (!json_is_string(t)) {
			strv_free(v);
			failf(err, 400, SILO_ERR_INVALID_CONFIG, "%s[%zu]: expected a string", field, i);
			return -1;
		}
		v[i] = xstrdup(json_string_value(t));
	}
	*out = v;
	return 0;
}

static int get_uint(json_t *o, const char *field, uint64_t max, uint64_t *out, silo_error *err)
{
	json_t *v = json_object_get(o, field);
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max) {
		failf(err, 400, SILO_ERR_INVALID_CONFIG, "%s: expected an integer from 0 to %llu", field,
		      (unsigned long long)max);
		return -1;
	}
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static bool arg_true(api_arg_fn arg, void *ctx, const char *key)
{
	const char *v = arg ? arg(ctx, key) : NULL;
	return v && (!strcmp(v, "true") || !strcmp(v, "1"));
}

static unsigned sandbox_json(manager *m, const char *id, json_t **out, silo_error *err)
{
	if (manager_get_json(m, id, out, err) < 0)
		return err_status(err);
	return 200;
}

/* The copies of a fork are creates with the source's spec. */
static int fork_check(manager *m, const char *rid, api_create_check_fn check, void *ctx, silo_error *err)
{
	vm_spec spec;
	char sid[SILO_ID_MAX], prov[32];
	if (manager_sandbox_spec(m, rid, sid, prov, &spec, err) < 0)
		return -1;
	int rc = check(ctx, &spec, err);
	spec_free(&spec);
	return rc;
}

static unsigned h_sandbox(manager *m, const char *method, const char *id, const char *sub, const char *body,
			  size_t len, api_create_check_fn check, void *check_ctx, const char *actor, json_t **out,
			  silo_error *err)
{
	if (strcmp(method, "POST") != 0)
		return failf(err, 405, SILO_ERR_INVALID_CONFIG, "method %s is not allowed on /v1/sandboxes/{id}/%s",
			     method, sub);
	char rid[SILO_ID_MAX];
	if (strlen(id) >= SILO_ID_MAX || manager_resolve(m, id, rid, err) < 0)
		return failf(err, 404, SILO_ERR_VM_NOT_FOUND, "no live sandbox with id or name '%.64s'", id);
	if (!strcmp(sub, "snapshot")) {
		static const char *const allowed[] = {"tags", "keep_paused", "ttl_s", NULL};
		json_t *o = parse_body(body, len, allowed, err);
		if (!o)
			return 400;
		char **tags = NULL;
		uint64_t ttl = 0;
		json_t *kp = json_object_get(o, "keep_paused");
		unsigned st = 201;
		if (kp && !json_is_boolean(kp))
			st = failf(err, 400, SILO_ERR_INVALID_CONFIG, "keep_paused: expected true or false");
		else if (str_array(o, "tags", &tags, err) < 0 || get_uint(o, "ttl_s", 10ull * 365 * 86400, &ttl, err) < 0)
			st = 400;
		if (st == 201) {
			mgr_snap_opts so = {.actor = actor, .tags = tags, .keep_paused = json_is_true(kp),
					    .ttl_ms = ttl * 1000};
			if (manager_snapshot(m, rid, &so, out, err) < 0)
				st = err_status(err);
		}
		strv_free(tags);
		json_decref(o);
		return st;
	}
	if (!strcmp(sub, "fork")) {
		static const char *const allowed[] = {"n", NULL};
		json_t *o = parse_body(body, len, allowed, err);
		if (!o)
			return 400;
		uint64_t n = 1;
		unsigned st = 201;
		if (get_uint(o, "n", 256, &n, err) < 0 || n == 0)
			st = n == 0 ? failf(err, 400, SILO_ERR_INVALID_CONFIG, "n: expected an integer from 1 to 256") : 400;
		else if (check && fork_check(m, rid, check, check_ctx, err) < 0)
			st = err_status(err);
		else if (manager_fork(m, rid, (unsigned)n, actor, out, err) < 0)
			st = err_status(err);
		json_decref(o);
		return st;
	}
	if (len)
		return failf(err, 400, SILO_ERR_INVALID_CONFIG, "POST /v1/sandboxes/{id}/%s takes no request body", sub);
	int rc = !strcmp(sub, "pause") ? manager_pause(m, rid, actor, err) : manager_resume(m, rid, actor, err);
	if (rc < 0)
		return err_status(err);
	return sandbox_json(m, rid, out, err);
}

static unsigned h_snapshots(manager *m, const char *method, const char *url, const char *body, size_t len,
			    api_arg_fn arg, void *ctx, api_create_check_fn check, void *check_ctx, const char *actor,
			    json_t **out, silo_error *err)
{
	const char *rest = url + strlen(SNAP_PREFIX);
	if (!*rest) {
		if (strcmp(method, "GET") != 0)
			return failf(err, 405, SILO_ERR_INVALID_CONFIG, "method %s is not allowed on /v1/snapshots", method);
		json_t *a;
		if (snap_list_json(&a, err) < 0)
			return err_status(err);
		*out = json_pack("{s:o}", "snapshots", a);
		return 200;
	}
	rest++;   /* past '/' */
	char id[SILO_ID_MAX];
	const char *slash = strchr(rest, '/');
	size_t idl = slash ? (size_t)(slash - rest) : strlen(rest);
	const char *sub = slash ? slash + 1 : NULL;
	if (!strcmp(rest, "gc")) {
		if (strcmp(method, "POST") != 0)
			return failf(err, 405, SILO_ERR_INVALID_CONFIG, "method %s is not allowed on /v1/snapshots/gc", method);
		static const char *const allowed[] = {"max_age_s", NULL};
		json_t *o = parse_body(body, len, allowed, err);
		if (!o)
			return 400;
		uint64_t age = UINT64_MAX;
		unsigned st = 200;
		json_t *removed = NULL;
		if (get_uint(o, "max_age_s", 100ull * 365 * 86400, &age, err) < 0)
			st = 400;
		else if (snap_gc(age == UINT64_MAX ? UINT64_MAX : age * 1000, &removed, err) < 0)
			st = err_status(err);
		json_decref(o);
		if (st == 200)
			*out = json_pack("{s:o}", "removed", removed);
		else
			json_decref(removed);
		return st;
	}
	if (idl == 0 || idl >= sizeof id)
		return failf(err, 404, SILO_ERR_VM_NOT_FOUND, "no snapshot '%.*s'", (int)MIN(idl, 64), rest);
	memcpy(id, rest, idl);
	id[idl] = '\0';
	if (!sub) {
		if (!strcmp(method, "GET")) {
			snap_info s;
			if (snap_open(id, arg_true(arg, ctx, "verify"), &s, err) < 0)
				return err_status(err);
			*out = snap_info_json(&s);
			snap_info_free(&s);
			return 200;
		}
		if (!strcmp(method, "DELETE")) {
			char rid[SILO_ID_MAX];
			if (snap_resolve(id, rid, err) < 0 || snap_delete(rid, arg_true(arg, ctx, "force"), err) < 0)
				return err_status(err);
			*out = json_pack("{s:s,s:b}", "id", rid, "deleted", 1);
			return 200;
		}
		return failf(err, 405, SILO_ERR_INVALID_CONFIG, "method %s is not allowed on /v1/snapshots/{id}", method);
	}
	if (!strcmp(sub, "restore")) {
		if (strcmp(method, "POST") != 0)
			return failf(err, 405, SILO_ERR_INVALID_CONFIG, "method %s is not allowed on /v1/snapshots/{id}/restore",
				     method);
		if (len && strspn(body, " \t\r\n{}") != len)
			return failf(err, 400, SILO_ERR_INVALID_CONFIG, "restore takes no fields in its body");
		char nid[SILO_ID_MAX];
		if (check) {
			snap_info si;
			if (snap_open(id, false, &si, err) < 0)
				return err_status(err);
			int crc = check(check_ctx, &si.spec, err);
			snap_info_free(&si);
			if (crc < 0)
				return err_status(err);
		}
		if (manager_restore(m, id, actor, nid, err) < 0)
			return err_status(err);
		unsigned st = sandbox_json(m, nid, out, err);
		return st == 200 ? 201 : st;
	}
	if (!strcmp(sub, "tags")) {
		if (strcmp(method, "POST") != 0)
			return failf(err, 405, SILO_ERR_INVALID_CONFIG, "method %s is not allowed on /v1/snapshots/{id}/tags",
				     method);
		static const char *const allowed[] = {"add", "remove", NULL};
		json_t *o = parse_body(body, len, allowed, err);
		if (!o)
			return 400;
		char **add = NULL, **rm = NULL, rid[SILO_ID_MAX];
		unsigned st = 200;
		if (str_array(o, "add", &add, err) < 0 || str_array(o, "remove", &rm, err) < 0)
			st = 400;
		else if (snap_resolve(id, rid, err) < 0 || snap_set_tags(rid, add, rm, err) < 0)
			st = err_status(err);
		strv_free(add);
		strv_free(rm);
		json_decref(o);
		if (st != 200)
			return st;
		snap_info s;
		if (snap_open(rid, false, &s, err) < 0)
			return err_status(err);
		*out = snap_info_json(&s);
		snap_info_free(&s);
		return 200;
	}
	return failf(err, 404, SILO_ERR_INVALID_CONFIG, "no such endpoint: %s %.200s", method, url);
}

unsigned api_snapshot_handle(manager *m, const char *method, const char *url, const char *body, size_t len,
			     api_arg_fn arg, void *arg_ctx, api_create_check_fn check, void *check_ctx,
			     const char *actor, json_t **out, silo_error *err)
{
	*out = NULL;
	memset(err, 0, sizeof *err);
	char id[SILO_ID_MAX * 2];
	const char *sub;
	unsigned st;
	if (!strcmp(url, "/v1/pools")) {
		if (strcmp(method, "GET") != 0)
			st = failf(err, 405, SILO_ERR_INVALID_CONFIG, "method %s is not allowed on /v1/pools", method);
		else
			*out = json_pack("{s:o}", "pools", manager_pools_json(m)), st = 200;
	} else if (split_sandbox(url, id, sizeof id, &sub))
		st = h_sandbox(m, method, id, sub, body, len, check, check_ctx, actor, out, err);
	else
		st = h_snapshots(m, method, url, body, len, arg, arg_ctx, check, check_ctx, actor, out, err);
	if (st >= 400 && *out) {
		json_decref(*out);
		*out = NULL;
	}
	if (st < 400 && !*out)
		st = failf(err, 500, SILO_ERR_INTERNAL, "no response body");
	return st;
}
