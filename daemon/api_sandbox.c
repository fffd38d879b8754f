/* SPDX-License-Identifier: Apache-2.0
 * silod handlers for the service (health, providers, metrics), sandboxes,
 * their logs and files (handlers.h; rows in routes.c, docs/openapi.yaml).
 * A scoped token's scope (ids, name prefixes, providers) is checked here, on
 * the sandbox itself; its operation was checked by the dispatcher.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "daemon/api_parse.h"
#include "daemon/targets.h"
#include "daemon/handlers.h"

#define LOGS_TAIL_DEFAULT (64 * 1024)
#define LOGS_TAIL_MAX (16u << 20)
#define DELETE_GRACE_MAX_MS 600000
#define GUEST_PATH_MAX 4096

/* ---- the service ---- */

int h_health(api_req *q, api_reply *r, silo_error *err)
{
	(void)err;
	json_t *o = manager_health_json(q->ctx->m);
	if (q->ctx->listener_json)
		json_object_set_new(o, "tcp_connections", q->ctx->listener_json(q->ctx));
	return api_reply_json(r, 200, o);
}

int h_providers(api_req *q, api_reply *r, silo_error *err)
{
	(void)err;
	return api_reply_json(r, 200, json_pack("{s:o}", "providers", manager_providers_json(q->ctx->m)));
}

int h_metrics(api_req *q, api_reply *r, silo_error *err)
{
	(void)err;
	return api_reply_text(r, "text/plain; version=0.0.4; charset=utf-8", manager_metrics_text(q->ctx->m));
}

/* ---- sandboxes ---- */

/* ?isolation=vm|any on a create sets the spec's [vm] isolation (what
 * `silo create --isolation` sends with either body form). */
static int isolation_query(const api_req *q, vm_spec *spec, silo_error *err)
{
	const char *v = api_query(q, "isolation");
	if (!v)
		return 0;
	if (strcmp(v, "vm") && strcmp(v, "any"))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "query parameter isolation: expected vm or any, got '%.32s'", v);
	free(spec->isolation);
	spec->isolation = xstrdup(v);
	return 0;
}

/* ?bind=client: the sandbox lives only as long as the calling process
 * (`silo run` through silod); only a unix-socket peer has a process we see. */
static int bind_query(const api_req *q, mgr_create_opts *o, silo_error *err)
{
	const char *v = api_query(q, "bind");
	if (!v)
		return 0;
	if (strcmp(v, "client") != 0)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "bind: expected \"client\"");
	if (q->who.tcp || !q->who.have_cred || q->who.pid <= 0)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "bind: only a client on the unix socket can bind a sandbox to itself");
	o->bind_client = q->who.pid;
	return 0;
}

/* ?cold=1: boot cold, taking no warm-pool sandbox and no template. */
static int cold_query(const api_req *q, mgr_create_opts *o, silo_error *err)
{
	const char *v = api_query(q, "cold");
	if (!v)
		return 0;
	if (strcmp(v, "1") && strcmp(v, "true") && strcmp(v, "0") && strcmp(v, "false"))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "query parameter cold: expected 1 or 0, got '%.32s'", v);
	o->cold = !strcmp(v, "1") || !strcmp(v, "true");
	return 0;
}

int h_sandbox_create(api_req *q, api_reply *r, silo_error *err)
{
	vm_spec spec = {0};
	int rc;
	if (strcmp(q->route->accept[q->ctype], "application/json") != 0) {   /* hac.toml text */
		rc = spec_parse(q->body, q->len, &spec, err);
		if (rc < 0)
			silo_error_prefix(err, "hac.toml");
	} else {
		rc = api_spec_from_json(q->body, q->len, &spec, err);
	}
	mgr_create_opts o = {.actor = q->who.actor};
	mgr_timing_mark("parse");
	if (rc == 0)
		rc = isolation_query(q, &spec, err);
	if (rc == 0)
		rc = bind_query(q, &o, err);
	if (rc == 0)
		rc = cold_query(q, &o, err);
	if (rc == 0)
		rc = api_create_check(q, &spec, &o, err);
	char id[SILO_ID_MAX];
	mgr_timing_mark("check");
	if (rc == 0) {
		rc = manager_create(q->ctx->m, &spec, &o, id, err);
		if (rc < 0 && err->code == SILO_ERR_POLICY_DENIED)
			authz_audit_denial(q->ctx->m, q->who.actor, NULL, "create", err);
	}
	spec_free(&spec);
	json_t *out;
	mgr_timing_mark("create");
	if (rc < 0 || manager_get_json(q->ctx->m, id, &out, err) < 0)
		return -1;
	mgr_timing_mark("describe");
	return api_reply_json(r, 201, out);
}

int h_sandbox_list(api_req *q, api_reply *r, silo_error *err)
{
	mgr_list_filter f = {
		.state = api_query(q, "state"),
		.provider = api_query(q, "provider"),
		.name_prefix = api_query(q, "name"),
	};
	const char *meta = api_query(q, "metadata");
	char key[257];
	if (meta) {
		const char *eq = strchr(meta, '=');
		if (!eq || eq == meta || (size_t)(eq - meta) >= sizeof key)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "query parameter metadata: expected KEY=VALUE, got '%.64s'", meta);
		memcpy(key, meta, (size_t)(eq - meta));
		key[eq - meta] = '\0';
		f.meta_key = key;
		f.meta_value = eq + 1;
	}
	json_t *a;
	if (manager_list_json(q->ctx->m, &f, &a, err) < 0)
		return -1;
	/* A scoped token sees only the sandboxes in its scope. */
	for (size_t i = json_array_size(a); q->who.tok && i-- > 0;)
		if (authz_view(q->ctx->authz, q->ctx->m, q->who.tok, NULL, TOKEN_OP_LIST, json_array_get(a, i), err) < 0)
			json_array_remove(a, i);
	targets_list_into(q, a);   /* sandboxes on remote targets, with their "target" */
	return api_reply_json(r, 200, json_pack("{s:o}", "sandboxes", a));
}

/* The sandbox's JSON view, if the caller's token may see it (op). */
static int view(const api_req *q, token_op op, json_t **o, silo_error *err)
{
	if (manager_get_json(q->ctx->m, api_cap(q, "id"), o, err) < 0)
		return -1;
	if (authz_view(q->ctx->authz, q->ctx->m, q->who.tok, q->who.actor, op, *o, err) < 0) {
		json_decref(*o);
		return -1;
	}
	return 0;
}

int h_sandbox_get(api_req *q, api_reply *r, silo_error *err)
{
	json_t *o;
	if (view(q, TOKEN_OP_INSPECT, &o, err) < 0)
		return -1;
	return api_reply_json(r, 200, o);
}

int h_sandbox_delete(api_req *q, api_reply *r, silo_error *err)
{
	uint64_t grace = UINT64_MAX;
	char rid[SILO_ID_MAX];
	if (api_query_uint(q, "grace_ms", DELETE_GRACE_MAX_MS, &grace, err) < 0 ||
	    authz_sandbox(q->ctx->authz, q->ctx->m, q->who.tok, q->who.actor, TOKEN_OP_DELETE, api_cap(q, "id"), NULL, NULL,
			  rid, err) < 0)
		return -1;
	int rc = manager_delete(q->ctx->m, rid, q->who.actor, grace == UINT64_MAX ? -1 : (int)grace, err);
	if (rc < 0 && err->code != SILO_ERR_CLEANUP_FAILED)
		return -1;
	json_t *o;
	silo_error e2;
	if (manager_get_json(q->ctx->m, rid, &o, &e2) < 0)
		o = json_pack("{s:s,s:s}", "id", rid, "state", "terminated");
	if (rc < 0) {
		/* Terminated but not clean: the error with the residue, and the CleanupVerification. */
		json_t *cv = json_object_get(o, "cleanup");
		r->json = cv ? json_pack("{s:O}", "cleanup", cv) : NULL;
		json_decref(o);
		return -1;
	}
	return api_reply_json(r, 200, o);
}

int h_sandbox_logs(api_req *q, api_reply *r, silo_error *err)
{
	uint64_t tail = LOGS_TAIL_DEFAULT;
	json_t *o;
	if (api_query_uint(q, "tail", LOGS_TAIL_MAX, &tail, err) < 0)
		return -1;
	if (q->who.tok) {
		if (view(q, TOKEN_OP_INSPECT, &o, err) < 0)
			return -1;
		json_decref(o);
	}
	if (manager_logs_json(q->ctx->m, api_cap(q, "id"), tail, &o, err) < 0)
		return -1;
	return api_reply_json(r, 200, o);
}

/* ---- files ---- */

static const char *guest_path(const api_req *q, silo_error *err)
{
	const char *p = api_query(q, "path");
	if (!p || p[0] != '/' || strlen(p) >= GUEST_PATH_MAX) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "query parameter path: expected an absolute path");
		return NULL;
	}
	return p;
}

int h_file_put(api_req *q, api_reply *r, silo_error *err)
{
	const char *path = guest_path(q, err);
	uint64_t mode = 0644;
	char rid[SILO_ID_MAX];
	if (!path || api_query_uint(q, "mode", 07777, &mode, err) < 0 ||
	    authz_sandbox(q->ctx->authz, q->ctx->m, q->who.tok, q->who.actor, TOKEN_OP_FILE_WRITE, api_cap(q, "id"), path,
			  NULL, rid, err) < 0 ||
	    manager_file_put(q->ctx->m, rid, path, q->body_fd, (uint32_t)mode, q->who.actor, err) < 0)
		return -1;
	return api_reply_json(r, 200,
			      json_pack("{s:s,s:s,s:I}", "id", rid, "path", path, "size", (json_int_t)q->body_size));
}

int h_file_get(api_req *q, api_reply *r, silo_error *err)
{
	const char *path = guest_path(q, err);
	if (!path)
		return -1;
	int fd = memfd_create("silod-download", MFD_CLOEXEC);
	if (fd < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "memfd");
	char rid[SILO_ID_MAX];
	struct stat st;
	if (authz_sandbox(q->ctx->authz, q->ctx->m, q->who.tok, q->who.actor, TOKEN_OP_FILE_READ, api_cap(q, "id"), path,
			  NULL, rid, err) < 0 ||
	    manager_file_get(q->ctx->m, rid, path, fd, q->ctx->max_upload, q->who.actor, err) < 0) {
		close(fd);
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "fstat download");
	}
	return api_reply_file(r, fd, (uint64_t)st.st_size);
}
