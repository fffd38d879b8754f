/* SPDX-License-Identifier: Apache-2.0
 * silod handlers for snapshots, fork, pause, resume and warm pools
 * (handlers.h; rows in routes.c, docs/openapi.yaml, docs/snapshots.md):
 *   POST   /v1/sandboxes/{id}/snapshot   {"tags":[..],"keep_paused":bool,"ttl_s":N}  -> 201 snapshot
 *   POST   /v1/sandboxes/{id}/fork       {"n":N}                                     -> 201 {snapshot,sandboxes}
 *   POST   /v1/sandboxes/{id}/pause | resume                                         -> 200 sandbox
 *   GET    /v1/snapshots                                                             -> 200 {snapshots:[..]}
 *   GET    /v1/snapshots/{snap}          (?verify=true checks every payload byte)    -> 200 snapshot
 *   DELETE /v1/snapshots/{snap}          (?force=true even while in use)             -> 200 {id,deleted}
 *   POST   /v1/snapshots/{snap}/restore                                              -> 201 sandbox
 *   POST   /v1/snapshots/{snap}/tags     {"add":[..],"remove":[..]}                  -> 200 snapshot
 *   POST   /v1/snapshots/gc              {"max_age_s":N}                             -> 200 {removed:[..]}
 *   GET    /v1/pools                     (warm pools: template, k, ready, taken ...) -> 200 {pools:[..]}
 * Bodies are JSON objects; unknown or duplicate fields are refused by name.
 * Restores and forks make sandboxes: they pass the creation policy like any
 * create (api_create_check).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "daemon/api_parse.h"
#include "core/sandbox.h"
#include "daemon/handlers.h"
#include "snapshot/snapshot.h"

#define TTL_MAX_S (10ull * 365 * 86400)
#define GC_AGE_MAX_S (100ull * 365 * 86400)
#define FORK_MAX 256

/* The body as a JSON object with only the allowed keys ({} when empty). */
static json_t *parse_body(const api_req *q, const char *const *allowed, silo_error *err)
{
	return api_json_body(q->body, q->len, allowed, true, err);
}

/* strv from an optional JSON array of strings named field. */
static int str_array(json_t *o, const char *field, char ***out, silo_error *err)
{
	*out = NULL;
	json_t *a = json_object_get(o, field);
	if (!a)
		return 0;
	if (!json_is_array(a) || json_array_size(a) > SNAP_MAX_TAGS)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: expected an array of at most %d strings", field,
				 SNAP_MAX_TAGS);
	char **v = xcalloc(json_array_size(a) + 1, sizeof *v);
	size_t i;
	json_t *t;
	json_array_foreach(a, i, t) {
		if (!json_is_string(t)) {
			strv_free(v);
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s[%zu]: expected a string", field, i);
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
	if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: expected an integer from 0 to %llu", field,
				 (unsigned long long)max);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

/* The live sandbox of {id}. */
static int live_sandbox(const api_req *q, char rid[SILO_ID_MAX], silo_error *err)
{
	if (manager_resolve(q->ctx->m, api_cap(q, "id"), rid, err) < 0)
		return silo_fail(err, SILO_ERR_VM_NOT_FOUND, 0, "no live sandbox with id or name '%.64s'", api_cap(q, "id"));
	return 0;
}

/* The live sandbox of {id}, then the body with only the allowed keys. */
static json_t *live_sandbox_body(const api_req *q, const char *const *allowed, char rid[SILO_ID_MAX], silo_error *err)
{
	return live_sandbox(q, rid, err) < 0 ? NULL : parse_body(q, allowed, err);
}

static int reply_sandbox(const api_req *q, api_reply *r, unsigned status, const char *id, silo_error *err)
{
	json_t *o;
	if (manager_get_json(q->ctx->m, id, &o, err) < 0)
		return -1;
	return api_reply_json(r, status, o);
}

/* A snapshot's spec through the creation policy (a restore or fork is a create). */
static int snapshot_spec_check(const api_req *q, const vm_spec *spec, silo_error *err)
{
	vm_spec copy;
	spec_copy(&copy, spec);
	mgr_create_opts o = {.actor = q->who.actor};
	int rc = api_create_check(q, &copy, &o, err);
	spec_free(&copy);
	return rc;
}

/* ---- on a live sandbox ---- */

int h_snapshot_take(api_req *q, api_reply *r, silo_error *err)
{
	static const char *const allowed[] = {"tags", "keep_paused", "ttl_s", NULL};
	char rid[SILO_ID_MAX];
	json_t *o = live_sandbox_body(q, allowed, rid, err), *out = NULL;
	if (!o)
		return -1;
	char **tags = NULL;
	uint64_t ttl = 0;
	json_t *kp = json_object_get(o, "keep_paused");
	int rc = -1;
	if (kp && !json_is_boolean(kp))
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "keep_paused: expected true or false");
	else if (str_array(o, "tags", &tags, err) == 0 && get_uint(o, "ttl_s", TTL_MAX_S, &ttl, err) == 0) {
		mgr_snap_opts so = {.actor = q->who.actor, .tags = tags, .keep_paused = json_is_true(kp),
				    .ttl_ms = ttl * 1000};
		rc = manager_snapshot(q->ctx->m, rid, &so, &out, err);
	}
	strv_free(tags);
	json_decref(o);
	return rc < 0 ? -1 : api_reply_json(r, 201, out);
}

int h_fork(api_req *q, api_reply *r, silo_error *err)
{
	static const char *const allowed[] = {"n", NULL};
	char rid[SILO_ID_MAX];
	json_t *o = live_sandbox_body(q, allowed, rid, err), *out = NULL;
	if (!o)
		return -1;
	uint64_t n = 1;
	int rc = get_uint(o, "n", FORK_MAX, &n, err);
	json_decref(o);
	if (rc == 0 && n == 0)
		rc = silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "n: expected an integer from 1 to %d", FORK_MAX);
	if (rc == 0) {
		/* the copies are creates with the source's spec */
		vm_spec spec;
		char sid[SILO_ID_MAX], prov[32];
		rc = manager_sandbox_spec(q->ctx->m, rid, sid, prov, &spec, err);
		if (rc == 0) {
			rc = snapshot_spec_check(q, &spec, err);
			spec_free(&spec);
		}
	}
	if (rc < 0 || manager_fork(q->ctx->m, rid, (unsigned)n, q->who.actor, &out, err) < 0)
		return -1;
	return api_reply_json(r, 201, out);
}

static int pause_resume(api_req *q, api_reply *r, bool pause, silo_error *err)
{
	char rid[SILO_ID_MAX];
	if (live_sandbox(q, rid, err) < 0)
		return -1;
	if (q->len)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "POST /v1/sandboxes/{id}/%s takes no request body",
				 pause ? "pause" : "resume");
	int rc = pause ? manager_pause(q->ctx->m, rid, q->who.actor, err) : manager_resume(q->ctx->m, rid, q->who.actor, err);
	if (rc < 0)
		return -1;
	return reply_sandbox(q, r, 200, rid, err);
}

int h_pause(api_req *q, api_reply *r, silo_error *err)
{
	return pause_resume(q, r, true, err);
}

int h_resume(api_req *q, api_reply *r, silo_error *err)
{
	return pause_resume(q, r, false, err);
}

/* ---- the store ---- */

int h_snapshot_list(api_req *q, api_reply *r, silo_error *err)
{
	(void)q;
	json_t *a;
	if (snap_list_json(&a, err) < 0)
		return -1;
	return api_reply_json(r, 200, json_pack("{s:o}", "snapshots", a));
}

int h_snapshot_gc(api_req *q, api_reply *r, silo_error *err)
{
	static const char *const allowed[] = {"max_age_s", NULL};
	json_t *o = parse_body(q, allowed, err), *removed = NULL;
	if (!o)
		return -1;
	uint64_t age = UINT64_MAX;
	int rc = get_uint(o, "max_age_s", GC_AGE_MAX_S, &age, err);
	json_decref(o);
	if (rc < 0 || snap_gc(age == UINT64_MAX ? UINT64_MAX : age * 1000, &removed, err) < 0 ||
	    tpl_gc(true, removed, err) < 0) {
		json_decref(removed);
		return -1;
	}
	return api_reply_json(r, 200, json_pack("{s:o}", "removed", removed));
}

/* A snapshot (id or tag) as the API shows it. */
static int reply_snapshot(api_reply *r, const char *id, bool verify, silo_error *err)
{
	snap_info s;
	if (snap_open(id, verify, &s, err) < 0)
		return -1;
	json_t *o = snap_info_json(&s);
	snap_info_free(&s);
	return api_reply_json(r, 200, o);
}

int h_snapshot_get(api_req *q, api_reply *r, silo_error *err)
{
	return reply_snapshot(r, api_cap(q, "snap"), api_query_true(q, "verify"), err);
}

int h_snapshot_delete(api_req *q, api_reply *r, silo_error *err)
{
	char rid[SILO_ID_MAX];
	if (snap_resolve(api_cap(q, "snap"), rid, err) < 0 || snap_delete(rid, api_query_true(q, "force"), err) < 0)
		return -1;
	return api_reply_json(r, 200, json_pack("{s:s,s:b}", "id", rid, "deleted", 1));
}

int h_snapshot_restore(api_req *q, api_reply *r, silo_error *err)
{
	const char *id = api_cap(q, "snap");
	if (q->len && strspn(q->body, " \t\r\n{}") != q->len)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "restore takes no fields in its body");
	snap_info si;
	if (snap_open(id, false, &si, err) < 0)
		return -1;
	int rc = snapshot_spec_check(q, &si.spec, err);
	snap_info_free(&si);
	char nid[SILO_ID_MAX];
	if (rc < 0 || manager_restore(q->ctx->m, id, q->who.actor, nid, err) < 0)
		return -1;
	return reply_sandbox(q, r, 201, nid, err);
}

int h_snapshot_tags(api_req *q, api_reply *r, silo_error *err)
{
	static const char *const allowed[] = {"add", "remove", NULL};
	json_t *o = parse_body(q, allowed, err);
	if (!o)
		return -1;
	char **add = NULL, **rm = NULL, rid[SILO_ID_MAX];
	int rc = -1;
	if (str_array(o, "add", &add, err) == 0 && str_array(o, "remove", &rm, err) == 0 &&
	    snap_resolve(api_cap(q, "snap"), rid, err) == 0)
		rc = snap_set_tags(rid, add, rm, err);
	strv_free(add);
	strv_free(rm);
	json_decref(o);
	return rc < 0 ? -1 : reply_snapshot(r, rid, false, err);
}

int h_pools(api_req *q, api_reply *r, silo_error *err)
{
	(void)err;
	return api_reply_json(r, 200, json_pack("{s:o}", "pools", manager_pools_json(q->ctx->m)));
}
