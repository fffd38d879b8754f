/* SPDX-License-Identifier: Apache-2.0
 * TEMPORARY (route_shim.h): the rows of the process, file-tree and archive
 * handlers, in the form daemon/routes.c takes on the arch-routes branch, and
 * the glue that serves them from the old daemon/api.c: pattern matching,
 * token operation and Content-Type checks, and the reply kinds (JSON, NDJSON
 * and tar streams, the WebSocket upgrade). Goes away with that merge.
 */
#include "daemon/route_shim.h"

#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "daemon/api_parse.h"
#include "daemon/handlers.h"
#include "daemon/route_shim_glue.h"

static const char *const json_only[] = {"application/json", NULL};

#define NONE API_BODY_NONE
#define SMALL API_BODY_SMALL
#define JSON API_REPLY_JSON
#define EXEC TOKEN_OP_EXEC
#define READ TOKEN_OP_FILE_READ
#define WRITE TOKEN_OP_FILE_WRITE

const api_route shim_routes[] = {
	/* method  pattern                                      handler        body           accept     op     group reply */
	{"GET",    "/v1/sandboxes/{id}/procs",                  h_procs_list,  NONE,          NULL,      EXEC,  NULL, JSON},
	{"POST",   "/v1/sandboxes/{id}/procs",                  h_proc_start,  API_BODY_EXEC, json_only, EXEC,  NULL, JSON},
	{"GET",    "/v1/sandboxes/{id}/procs/{proc}",           h_proc_get,    NONE,          NULL,      EXEC,  NULL, JSON},
	{"DELETE", "/v1/sandboxes/{id}/procs/{proc}",           h_proc_delete, NONE,          NULL,      EXEC,  NULL, JSON},
	{"POST",   "/v1/sandboxes/{id}/procs/{proc}/signal",    h_proc_signal, SMALL,         json_only, EXEC,  NULL, JSON},
	{"POST",   "/v1/sandboxes/{id}/procs/{proc}/stdin",     h_proc_stdin,  API_BODY_FILE, NULL,      EXEC,  NULL, JSON},
	{"POST",   "/v1/sandboxes/{id}/procs/{proc}/resize",    h_proc_resize, SMALL,         json_only, EXEC,  NULL, JSON},
	{"GET",    "/v1/sandboxes/{id}/procs/{proc}/wait",      h_proc_wait,   NONE,          NULL,      EXEC,  NULL, JSON},
	{"GET",    "/v1/sandboxes/{id}/procs/{proc}/output",    h_proc_output, NONE,          NULL,      EXEC,  NULL, API_REPLY_NDJSON},
	{"GET",    "/v1/sandboxes/{id}/procs/{proc}/attach",    h_proc_attach, NONE,          NULL,      EXEC,  NULL, API_REPLY_UPGRADE},
	{"GET",    "/v1/sandboxes/{id}/session",                h_session,     NONE,          NULL,      EXEC,  NULL, API_REPLY_UPGRADE},
	{"GET",    "/v1/sandboxes/{id}/fs/stat",                h_fs_stat,     NONE,          NULL,      READ,  NULL, JSON},
	{"GET",    "/v1/sandboxes/{id}/fs/list",                h_fs_list,     NONE,          NULL,      READ,  NULL, JSON},
	{"GET",    "/v1/sandboxes/{id}/fs/watch",               h_fs_watch,    NONE,          NULL,      READ,  NULL, API_REPLY_NDJSON},
	{"POST",   "/v1/sandboxes/{id}/fs/mkdir",               h_fs_mkdir,    SMALL,         json_only, WRITE, NULL, JSON},
	{"POST",   "/v1/sandboxes/{id}/fs/move",                h_fs_move,     SMALL,         json_only, WRITE, NULL, JSON},
	{"POST",   "/v1/sandboxes/{id}/fs/remove",              h_fs_remove,   SMALL,         json_only, WRITE, NULL, JSON},
	{"GET",    "/v1/sandboxes/{id}/archive",                h_archive_get, NONE,          NULL,      READ,  NULL, API_REPLY_TAR},
	{"PUT",    "/v1/sandboxes/{id}/archive",                h_archive_put, API_BODY_FILE, NULL,      WRITE, NULL, JSON},
};
const size_t shim_n_routes = ARRAY_SIZE(shim_routes);

/* ---- matching ---- */

/* Does url's path (no query) match pattern? Captures into m. */
static bool pattern_match(const char *pattern, const char *path, shim_match *m)
{
	unsigned nc = 0;
	const char *p = pattern, *u = path;
	while (*p && *u) {
		if (*p != '/' || *u != '/')
			return false;
		p++, u++;
		size_t pl = strcspn(p, "/"), ul = strcspn(u, "/?");
		if (ul == 0)
			return false;
		if (p[0] == '{') {
			if (nc == 4 || ul >= sizeof m->val[0])
				return false;
			snprintf(m->name[nc], sizeof m->name[nc], "%.*s", (int)(pl - 2), p + 1);
			memcpy(m->val[nc], u, ul);
			m->val[nc][ul] = '\0';
			nc++;
		} else if (pl != ul || memcmp(p, u, pl)) {
			return false;
		}
		p += pl, u += ul;
		if (*u == '?')
			break;
	}
	if (*p || (*u && *u != '?'))
		return false;
	m->ncap = nc;
	return true;
}

const api_route *shim_find(const char *method, const char *url, shim_match *m, bool *path_ok)
{
	*path_ok = false;
	for (size_t i = 0; i < shim_n_routes; i++) {
		shim_match t = {0};
		if (!pattern_match(shim_routes[i].pattern, url, &t))
			continue;
		*path_ok = true;
		if (strcmp(shim_routes[i].method, method))
			continue;
		*m = t;
		return &shim_routes[i];
	}
	return NULL;
}

/* ---- request helpers (route.h) ---- */

const char *api_cap(const api_req *q, const char *name)
{
	for (unsigned i = 0; i < q->ncap; i++)
		if (!strcmp(q->cap_name[i], name))
			return q->cap_value[i];
	return "";
}

const char *api_query(const api_req *q, const char *key)
{
	if (!q->conn)
		return NULL;
	const char *v = NULL;
	size_t n = 0;
	if (MHD_lookup_connection_value_n(q->conn, MHD_GET_ARGUMENT_KIND, key, strlen(key), &v, &n) != MHD_YES || !v)
		return NULL;
	return memchr(v, '\0', n) ? NULL : v;
}

const char *api_header(const api_req *q, const char *name)
{
	return q->conn ? MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, name) : NULL;
}

int api_query_uint(const api_req *q, const char *key, uint64_t max, uint64_t *out, silo_error *err)
{
	const char *v = api_query(q, key);
	if (!v)
		return 0;
	char *end;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 0);
	if (!*v || *end || errno || x > max || v[0] == '-' || v[0] == '+' || v[0] == ' ')
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "query parameter %s: expected an integer 0..%" PRIu64 ", got '%.64s'", key, max, v);
	*out = x;
	return 0;
}

bool api_query_true(const api_req *q, const char *key)
{
	const char *v = api_query(q, key);
	return v && (!strcmp(v, "true") || !strcmp(v, "1"));
}

int api_reply_json(api_reply *r, unsigned status, json_t *body)
{
	r->status = status;
	r->kind = API_REPLY_JSON;
	r->json = body;
	return 0;
}

int api_reply_stream(api_reply *r, api_reply_kind kind, const api_stream *s)
{
	r->status = 200;
	r->kind = kind;
	r->stream = *s;
	return 0;
}

int api_reply_upgrade(api_reply *r, const api_upgrade *u)
{
	r->status = 101;
	r->kind = API_REPLY_UPGRADE;
	r->upgrade = *u;
	return 0;
}

bool api_peer_gone(int fd)
{
	if (fd < 0)
		return false;
	struct pollfd p = {.fd = fd, .events = POLLRDHUP};
	if (poll(&p, 1, 0) <= 0)
		return false;
	return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

bool api_stream_cut(const api_ctx *ctx, int peer_fd)
{
	return atomic_load(ctx->stopping) || api_peer_gone(peer_fd);
}

/* ---- dispatch ---- */

static bool media_type_is(const char *ct, const char *want)
{
	size_t l = strlen(want);
	return ct && !strncasecmp(ct, want, l) && (ct[l] == '\0' || ct[l] == ';' || ct[l] == ' ');
}

int shim_dispatch(api_req *q, api_reply *r, silo_error *err)
{
	memset(r, 0, sizeof *r);
	r->fd = -1;
	const api_route *rt = q->route;
	if (q->who.tok && authz_op(q->ctx->authz, q->ctx->m, q->who.tok, q->who.actor, (token_op)rt->op, err) < 0)
		return -1;
	if (rt->accept && rt->body != API_BODY_NONE) {
		bool ok = false;
		for (const char *const *a = rt->accept; *a && !ok; a++)
			ok = media_type_is(q->content_type, *a);
		if (!ok)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "Content-Type: expected %s", rt->accept[0]);
	}
	for (unsigned i = 0; i < q->ncap; i++) {
		const char *v = q->cap_value[i];
		for (const char *c = v; *c; c++)
			if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' ||
			      *c == '-' || *c == '.'))
				return silo_fail(err, strcmp(q->cap_name[i], "id") ? SILO_ERR_PROCESS_NOT_FOUND
										   : SILO_ERR_VM_NOT_FOUND,
						 0, "no %s '%.64s'", strcmp(q->cap_name[i], "id") ? "process" : "sandbox", v);
	}
	if (rt->handler(q, r, err) < 0)
		return -1;
	if (r->kind != rt->reply) {
		if (r->kind == API_REPLY_JSON)
			json_decref(r->json);
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "%s %s: the handler answered kind %d, the route says %d",
				 q->method, rt->pattern, (int)r->kind, (int)rt->reply);
	}
	return 0;
}
