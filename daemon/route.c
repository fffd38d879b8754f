/* SPDX-License-Identifier: Apache-2.0
 * Route lookup, dispatch and the one reply path of silod (see route.h; the
 * rows are in routes.c). No libmicrohttpd here.
 */
#include "daemon/route.h"
#include "daemon/targets.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/util.h"
#include "daemon/api_parse.h"

/* ---- lookup ---- */

const api_route *api_route_find(const char *method, const http_target *t, const char *path, char allow[96],
				silo_error *err)
{
	http_table tab = HTTP_TABLE(api_routes, api_n_routes, api_route);
	long i = http_route_lookup(&tab, method, t, allow, 96);
	if (i >= 0)
		return &api_routes[i];
	if (!allow[0])
		silo_fail(err, SILO_ERR_NOT_FOUND, 0, "no such endpoint: %s %.200s", method, path);
	else
		silo_fail(err, SILO_ERR_METHOD_NOT_ALLOWED, 0, "method %s is not allowed on %.200s (allowed: %s)", method,
			  path, allow);
	return NULL;
}

uint64_t api_body_limit(const api_ctx *ctx, const api_route *r)
{
	switch (r->body) {
	case API_BODY_NONE: return 0;
	case API_BODY_SMALL: return ctx->max_body;
	case API_BODY_EXEC: return EXEC_BODY_MAX;
	case API_BODY_FILE: return ctx->max_upload;
	}
	return 0;
}

/* ---- dispatch ---- */

static const api_capture_kind *capture_kind(const char *name)
{
	for (size_t i = 0; i < api_n_capture_kinds; i++)
		if (!strcmp(api_capture_kinds[i].name, name))
			return &api_capture_kinds[i];
	return NULL;
}

static bool capture_fits(const api_capture_kind *k, const char *v)
{
	size_t n = strlen(v);
	if (n == 0 || n > k->max || (k->lower_hex && n != k->max))
		return false;
	for (const char *p = v; *p; p++) {
		char c = *p;
		bool ok = k->lower_hex ? (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
				       : (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
						 (c && strchr(k->extra, c));
		if (!ok)
			return false;
	}
	return true;
}

int api_captures_check(const api_route *r, const http_captures *caps, silo_error *err)
{
	for (unsigned i = 0; i < caps->n; i++) {
		const api_capture_kind *k = capture_kind(caps->name[i]);
		if (!k)
			return silo_fail(err, SILO_ERR_INTERNAL, 0, "route %s: no capture kind {%s}", r->pattern,
					 caps->name[i]);
		if (!capture_fits(k, caps->value[i]))
			return silo_fail(err, k->code, 0, "%s '%.64s'%s", k->refusal, caps->value[i], k->rule);
	}
	return 0;
}

static bool media_type_is(const char *ct, const char *want)
{
	size_t l = strlen(want);
	return !strncasecmp(ct, want, l) && (ct[l] == '\0' || ct[l] == ';' || ct[l] == ' ');
}

static int check_content_type(api_req *q, silo_error *err)
{
	q->ctype = -1;
	const char *const *acc = q->route->accept;
	if (!acc)
		return 0;
	for (int i = 0; acc[i]; i++) {
		if (q->content_type && media_type_is(q->content_type, acc[i])) {
			q->ctype = i;
			return 0;
		}
	}
	char list[256];
	size_t off = 0;
	for (int i = 0; acc[i] && off < sizeof list; i++)
		off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", i ? ", " : "", acc[i]);
	return silo_fail(err, SILO_ERR_UNSUPPORTED_MEDIA_TYPE, 0, "Content-Type: expected %s%s, got '%.64s'",
			 acc[1] ? "one of " : "", list, q->content_type ? q->content_type : "");
}

static int check_access(const api_req *q, silo_error *err)
{
	const api_route *r = q->route;
	const api_token *tok = q->who.tok;
	if (!tok || r->op == API_OP_ANY)
		return 0;
	if (r->op == API_OP_FULL) {
		silo_fail(err, SILO_ERR_POLICY_DENIED, 0, "%s %.200s: %s need a full-access token", q->method, q->path,
			  r->group->what);
		authz_audit_denial(q->ctx->m, q->who.actor, NULL, r->group->audit_op, err);
		return -1;
	}
	return authz_op(q->ctx->authz, q->ctx->m, tok, q->who.actor, (token_op)r->op, err);
}

int api_admit(api_req *q, silo_error *err)
{
	if (check_access(q, err) < 0 || api_captures_check(q->route, &q->caps, err) < 0 || check_content_type(q, err) < 0)
		return -1;
	q->admitted = true;
	return 0;
}

void api_dispatch(api_req *q, api_reply *r)
{
	silo_error err = {0};
	memset(r, 0, sizeof *r);
	r->fd = -1;
	if (!q->admitted) {
		silo_fail(&err, SILO_ERR_INTERNAL, 0, "%s %s: dispatched without api_admit", q->method, q->route->pattern);
		api_reply_error(q->ctx, r, &err, NULL);
		return;
	}
	/* a sandbox on a remote target: forwarded there (daemon/targets.h) */
	api_handler h = targets_owns(q) ? targets_forward : q->route->handler;
	if (h(q, r, &err) < 0) {
		json_t *extra = r->json;   /* members a failing handler adds beside "error" */
		r->json = NULL;
		api_reply_release(r);
		api_reply_error(q->ctx, r, &err, extra);
		return;
	}
	if (r->kind != q->route->reply) {
		api_reply_release(r);
		silo_fail(&err, SILO_ERR_INTERNAL, 0, "%s %s: the handler answered kind %d, the route says %d", q->method,
			  q->route->pattern, (int)r->kind, (int)q->route->reply);
		api_reply_error(q->ctx, r, &err, NULL);
	}
}

/* ---- replies ---- */

unsigned api_http_status(silo_code code)
{
	static const unsigned status[SILO_ERR__COUNT] = {
		[SILO_OK] = 200,
		[SILO_ERR_INVALID_CONFIG] = 400,
		[SILO_ERR_RESOURCE_EXCEEDED] = 409,
		[SILO_ERR_MAX_VMS_EXCEEDED] = 429,
		[SILO_ERR_BOOT_TIMEOUT] = 504,
		[SILO_ERR_VM_NOT_FOUND] = 404,
		[SILO_ERR_VSOCK_DISCONNECTED] = 502,
		[SILO_ERR_POLICY_DENIED] = 403,
		[SILO_ERR_SECURITY_VIOLATION] = 500,
		[SILO_ERR_CHECKSUM_MISMATCH] = 422,
		[SILO_ERR_PLUGIN_UNVERIFIED] = 422,
		[SILO_ERR_CLEANUP_FAILED] = 500,
		[SILO_ERR_REMOTE_UNREACHABLE] = 502,
		[SILO_ERR_PROVIDER_UNAVAILABLE] = 503,
		[SILO_ERR_IO_ERROR] = 500,
		[SILO_ERR_TIMEOUT] = 504,
		[SILO_ERR_PROTOCOL] = 400,
		[SILO_ERR_UNAUTHORIZED] = 401,
		[SILO_ERR_CONFLICT] = 409,
		[SILO_ERR_NOT_SUPPORTED] = 501,
		[SILO_ERR_INTERNAL] = 500,
		[SILO_ERR_NOT_FOUND] = 404,
		[SILO_ERR_METHOD_NOT_ALLOWED] = 405,
		[SILO_ERR_PAYLOAD_TOO_LARGE] = 413,
		[SILO_ERR_UNSUPPORTED_MEDIA_TYPE] = 415,
		[SILO_ERR_FILE_NOT_FOUND] = 404,
		[SILO_ERR_PROCESS_NOT_FOUND] = 404,
	};
	return (unsigned)code < SILO_ERR__COUNT && status[code] ? status[code] : 500;
}

json_t *api_error_json(const silo_error *err)
{
	json_t *e = json_pack("{s:s,s:s}", "code", silo_code_name(err->code), "message", err->message);
	if (err->vm_id[0])
		json_object_set_new(e, "vm_id", json_string(err->vm_id));
	if (err->sys_errno)
		json_object_set_new(e, "errno", json_integer(err->sys_errno));
	return json_pack("{s:o}", "error", e);
}

void api_reply_error(const api_ctx *ctx, api_reply *r, const silo_error *err, json_t *extra)
{
	manager_note_error(ctx->m, err);
	json_t *b = api_error_json(err);
	if (extra)
		json_object_update_missing(b, extra);
	json_decref(extra);
	memset(r, 0, sizeof *r);
	r->fd = -1;
	r->status = api_http_status(err->code);
	r->kind = API_REPLY_JSON;
	r->json = b;
}

void api_fail_too_large(const char *method, const char *path, const api_route *r, uint64_t limit, silo_error *err)
{
	if (r->body == API_BODY_NONE)
		silo_fail(err, SILO_ERR_PAYLOAD_TOO_LARGE, 0, "%s %.200s takes no request body", method, path);
	else
		silo_fail(err, SILO_ERR_PAYLOAD_TOO_LARGE, 0, "request body larger than %" PRIu64 " bytes", limit);
}

int api_reply_json(api_reply *r, unsigned status, json_t *body)
{
	r->status = status;
	r->kind = API_REPLY_JSON;
	r->json = body;
	return 0;
}

int api_reply_text(api_reply *r, const char *content_type, char *text)
{
	r->status = 200;
	r->kind = API_REPLY_TEXT;
	r->content_type = content_type;
	r->text = text;
	r->text_len = strlen(text);
	return 0;
}

int api_reply_file(api_reply *r, int fd, uint64_t size)
{
	r->status = 200;
	r->kind = API_REPLY_FILE;
	r->fd = fd;
	r->size = size;
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

void api_reply_release(api_reply *r)
{
	json_decref(r->json);
	free(r->text);
	if (r->fd >= 0)
		close(r->fd);
	if (r->stream.free)
		r->stream.free(r->stream.ctx);
	if (r->upgrade.free)
		r->upgrade.free(r->upgrade.ctx);
	r->json = NULL;
	r->text = NULL;
	r->fd = -1;
	r->stream = (api_stream){0};
	r->upgrade = (api_upgrade){0};
}

const char *api_reply_content_type(const api_reply *r)
{
	switch (r->kind) {
	case API_REPLY_JSON: return "application/json";
	case API_REPLY_TEXT: return r->content_type ? r->content_type : "text/plain; charset=utf-8";
	case API_REPLY_NDJSON: return "application/x-ndjson";
	case API_REPLY_SSE: return "text/event-stream";
	case API_REPLY_FILE: return "application/octet-stream";
	case API_REPLY_TAR: return "application/x-tar";
	case API_REPLY_UPGRADE:
	case API_REPLY__COUNT: break;
	}
	return "application/octet-stream";
}

char *api_json_text(json_t *o, size_t *len)
{
	char *s = json_dumps(o, JSON_COMPACT);
	size_t n = strlen(s);
	s = xrealloc(s, n + 2);
	s[n++] = '\n';
	s[n] = '\0';
	*len = n;
	return s;
}

#define OUT_PRE_MAX (sizeof "{\"stream\":\"stderr\",\"data\":\"" - 1)

size_t api_output_line_max(size_t len)
{
	return OUT_PRE_MAX + sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL) + 3;
}

size_t api_output_line(char *dst, int stream, const uint8_t *buf, size_t len)
{
	const char *pre = stream == 2 ? "{\"stream\":\"stderr\",\"data\":\"" : "{\"stream\":\"stdout\",\"data\":\"";
	size_t pl = strlen(pre), bl = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
	memcpy(dst, pre, pl);
	sodium_bin2base64(dst + pl, bl, buf, len, sodium_base64_VARIANT_ORIGINAL);
	size_t n = pl + bl - 1;   /* bl counts the NUL */
	memcpy(dst + n, "\"}\n", 3);
	return n + 3;
}

/* ---- request helpers ---- */

const char *api_cap(const api_req *q, const char *name)
{
	const char *v = http_capture(&q->caps, name);
	return v ? v : "";
}

const char *api_header(const api_req *q, const char *name)
{
	return q->header ? q->header(q->conn, name) : NULL;
}

const char *api_query(const api_req *q, const char *key)
{
	return q->target ? http_target_query(q->target, key) : NULL;
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

int api_create_check(const api_req *q, vm_spec *spec, mgr_create_opts *o, silo_error *err)
{
	return authz_create(q->ctx->authz, q->ctx->m, q->who.tok, q->who.actor, spec, o, err);
}

/* ---- streams ---- */

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
