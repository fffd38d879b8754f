/* SPDX-License-Identifier: Apache-2.0
 * The E2B server's transport (daemon/e2b.h): libmicrohttpd, one thread per
 * connection, TCP only, behind the same connection guard as silod's TCP
 * listener (api_guard.h: slow or unauthenticated clients are bounded).
 *
 * Rules:
 * - Nothing but this file knows libmicrohttpd; handlers see an e2b_req and
 *   fill an e2b_reply.
 * - Every error reply is built by reply_error, in the shape of the row's
 *   kind (REST {"code": N, "message"}, Connect unary, Connect end-of-stream);
 *   errors before a row is known (404, 405, 401, 413) take the shape of the
 *   plane the path belongs to (a Connect path: Connect's shape).
 * - Bodies are bounded by the row (e2b_body): JSON 1 MiB, RPC E2B_MSG_MAX and
 *   its envelope, uploads max_upload in memfds. A Content-Length above the
 *   bound is refused before a byte is read; a body that grows past it is
 *   drained and refused. A refusal decided on the head goes out before the
 *   body is read; what the client still sends of a small body is then
 *   drained, never stored, before the connection closes (api_guard.h).
 * - The envd token key (32 random bytes) is made once and kept in
 *   <state_dir>/e2b.key (0600).
 * - Watchers: a fixed table under s->wlock; a handle is random and names its
 *   sandbox, so a handle from one sandbox opens nothing in another.
 */
#include "daemon/e2b.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/util.h"
#include "daemon/api_guard.h"
#include "daemon/route.h"
#include "e2b/connect.h"

#define E2B_JSON_MAX (1u << 20)

typedef struct e2b_watcher {
	char id[32];
	char sandbox[SILO_ID_MAX];
	uint32_t wid;
} e2b_watcher;

struct e2b_server {
	manager *m;
	api_authz *authz;
	e2b_config cfg;
	char *provider;
	uint8_t key[crypto_auth_hmacsha256_KEYBYTES];
	struct MHD_Daemon *d;
	conn_guard *guard;
	unsigned port;
	atomic_bool stopping;
	pthread_mutex_t wlock;
	e2b_watcher watchers[E2B_WATCHERS_MAX];
};

/* Per request. */
typedef struct conn_req {
	e2b_req q;
	http_target target;
	const e2b_route *row;
	e2b_plane plane;            /* of the path, also when no row matched */
	bool connect_path;
	silo_error early;           /* a refusal decided before the body (401, 404, 413, ...) */
	bool failed;
	bool head_refused;          /* answered in the first call: drained after the reply (api_guard.h) */
	char allow[96];
	uint64_t limit, got;
	char *buf;                  /* JSON / RPC bodies */
	size_t buf_len;
	struct MHD_PostProcessor *pp;
	e2b_upload parts[E2B_UPLOAD_PARTS_MAX];
	size_t n_parts;
	bool octet;
	char *part_name_last;
} conn_req;

/* ---- small helpers ---- */

const char *e2b_query(const e2b_req *q, const char *key)
{
	return http_target_query(q->target, key);
}

const char *e2b_cap(const e2b_req *q, const char *name)
{
	return http_capture(&q->caps, name);
}

const char *e2b_provider(const e2b_server *s)
{
	return s->provider;
}

void e2b_envd_token(const e2b_server *s, const char *sandbox_id, char out[65])
{
	uint8_t mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256(mac, (const uint8_t *)sandbox_id, strlen(sandbox_id), s->key);
	sodium_bin2hex(out, 65, mac, sizeof mac);
}

static bool peer_gone(int fd)
{
	if (fd < 0)
		return false;
	struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
	if (poll(&p, 1, 0) <= 0)
		return false;
	if (p.revents & (POLLERR | POLLHUP | POLLRDHUP))
		return true;
	char c;
	ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0;
}

/* ---- watchers ---- */

int e2b_watcher_add(e2b_server *s, const char *sandbox_id, uint32_t wid, char id_out[32], silo_error *err)
{
	pthread_mutex_lock(&s->wlock);
	for (size_t i = 0; i < E2B_WATCHERS_MAX; i++) {
		e2b_watcher *w = &s->watchers[i];
		if (w->id[0])
			continue;
		random_id("w", w->id, sizeof w->id);
		snprintf(w->sandbox, sizeof w->sandbox, "%s", sandbox_id);
		w->wid = wid;
		memcpy(id_out, w->id, sizeof w->id);
		pthread_mutex_unlock(&s->wlock);
		return 0;
	}
	pthread_mutex_unlock(&s->wlock);
	return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0, "at most %d watchers at once", E2B_WATCHERS_MAX);
}

int e2b_watcher_get(e2b_server *s, const char *id, const char *sandbox_id, uint32_t *wid, silo_error *err)
{
	pthread_mutex_lock(&s->wlock);
	for (size_t i = 0; i < E2B_WATCHERS_MAX; i++) {
		e2b_watcher *w = &s->watchers[i];
		if (w->id[0] && !strcmp(w->id, id) && !strcmp(w->sandbox, sandbox_id)) {
			*wid = w->wid;
			pthread_mutex_unlock(&s->wlock);
			return 0;
		}
	}
	pthread_mutex_unlock(&s->wlock);
	return silo_fail(err, SILO_ERR_FILE_NOT_FOUND, 0, "watcher '%.64s' not found", id);
}

void e2b_watcher_remove(e2b_server *s, const char *id)
{
	pthread_mutex_lock(&s->wlock);
	for (size_t i = 0; i < E2B_WATCHERS_MAX; i++)
		if (!strcmp(s->watchers[i].id, id))
			memset(&s->watchers[i], 0, sizeof s->watchers[i]);
	pthread_mutex_unlock(&s->wlock);
}

/* ---- replies: the one place bytes go out ---- */

static enum MHD_Result send_bytes(struct MHD_Connection *c, unsigned status, const char *type, char *buf,
				  size_t len, const e2b_reply *rp)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	if (type)
		MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	if (rp && rp->next_token[0])
		MHD_add_response_header(r, "x-next-token", rp->next_token);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static char *json_text(json_t *o, size_t *len)
{
	char *s = json_dumps(o, JSON_COMPACT);
	if (!s)
		s = xstrdup("{}");
	*len = strlen(s);
	return s;
}

static char *envelope(uint8_t flags, json_t *msg, size_t *len)
{
	size_t n;
	char *j = json_text(msg, &n);
	char *b = xmalloc(n + CONNECT_ENV_HDR);
	connect_env_header((uint8_t *)b, flags, (uint32_t)n);
	memcpy(b + CONNECT_ENV_HDR, j, n);
	free(j);
	*len = n + CONNECT_ENV_HDR;
	return b;
}

/* An error in the shape of kind (plane for REST: the control plane and envd
 * share {"code", "message"}). Counted by the manager like silod's own. */
static enum MHD_Result reply_error(e2b_server *s, struct MHD_Connection *c, e2b_kind kind, const silo_error *err,
				   const char *allow)
{
	manager_note_error(s->m, err);
	size_t n;
	char *b;
	if (kind == E2B_REST) {
		unsigned st = api_http_status(err->code);
		if (err->code == SILO_ERR_VSOCK_DISCONNECTED)
			st = 502;   /* envd: the sandbox is gone (the SDK's TimeoutError) */

		json_t *o = json_pack("{s:i,s:s}", "code", (int)st, "message", err->message);
		b = json_text(o, &n);
		json_decref(o);
		struct MHD_Response *r = MHD_create_response_from_buffer(n, b, MHD_RESPMEM_MUST_FREE);
		MHD_add_response_header(r, "Content-Type", "application/json");
		if (allow && *allow)
			MHD_add_response_header(r, "Allow", allow);
		enum MHD_Result ret = MHD_queue_response(c, st, r);
		MHD_destroy_response(r);
		return ret;
	}
	json_t *e = connect_error_json(err);
	if (kind == E2B_UNARY) {
		unsigned st = connect_http_status(json_string_value(json_object_get(e, "code")));
		b = json_text(e, &n);
		json_decref(e);
		return send_bytes(c, st, "application/json", b, n, NULL);
	}
	/* streams: 200 and the end-of-stream message */
	json_t *end = json_pack("{s:o}", "error", e);
	b = envelope(CONNECT_FLAG_END, end, &n);
	json_decref(end);
	return send_bytes(c, 200, "application/connect+json", b, n, NULL);
}

/* ---- Connect server streams ---- */

struct e2b_out {
	char *buf;
	size_t len, off, cap;
};

void e2b_stream_send(e2b_out *o, json_t *msg)
{
	size_t n;
	char *b = envelope(0, msg, &n);
	json_decref(msg);
	if (o->off == o->len)
		o->off = o->len = 0;
	if (o->len + n > o->cap) {
		o->cap = (o->len + n) * 2;
		o->buf = xrealloc(o->buf, o->cap);
	}
	memcpy(o->buf + o->len, b, n);
	o->len += n;
	free(b);
}

typedef struct stream_ctx {
	e2b_server *s;
	e2b_stream st;
	e2b_out out;
	int peer_fd;
	bool ended;
} stream_ctx;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	stream_ctx *x = cls;
	while (x->out.off == x->out.len) {
		if (x->ended)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (atomic_load(&x->s->stopping) || peer_gone(x->peer_fd))
			return MHD_CONTENT_READER_END_WITH_ERROR;
		silo_error err = {0};
		int rc = x->st.step(x->st.ctx, &x->out, &err);
		if (rc <= 0) {
			json_t *end = rc == 0 ? json_object() : json_pack("{s:o}", "error", connect_error_json(&err));
			size_t n;
			char *b = envelope(CONNECT_FLAG_END, end, &n);
			json_decref(end);
			if (x->out.off == x->out.len)
				x->out.off = x->out.len = 0;
			if (x->out.len + n > x->out.cap) {
				x->out.cap = x->out.len + n;
				x->out.buf = xrealloc(x->out.buf, x->out.cap);
			}
			memcpy(x->out.buf + x->out.len, b, n);
			x->out.len += n;
			free(b);
			x->ended = true;
		}
	}
	size_t n = x->out.len - x->out.off < max ? x->out.len - x->out.off : max;
	memcpy(buf, x->out.buf + x->out.off, n);
	x->out.off += n;
	return (ssize_t)n;
}

static void stream_free(void *cls)
{
	stream_ctx *x = cls;
	if (x->st.free)
		x->st.free(x->st.ctx);
	free(x->out.buf);
	free(x);
}

/* ---- the request ---- */

static void conn_req_free(conn_req *cr)
{
	if (cr->pp)
		MHD_destroy_post_processor(cr->pp);
	for (size_t i = 0; i < cr->n_parts; i++) {
		free(cr->parts[i].name);
		if (cr->parts[i].fd >= 0)
			close(cr->parts[i].fd);
	}
	free(cr->part_name_last);
	free(cr->buf);
	free(cr);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	conn_req *cr = *con_cls;
	if (cr && cr->head_refused)
		conn_drain_refused(c, toe);
	if (cr)
		conn_req_free(cr);
	*con_cls = NULL;
}

static enum MHD_Result add_param(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	(void)kind;
	http_target *t = cls;
	if (t->nparam >= HTTP_PARAMS_MAX)
		return MHD_NO;
	t->param[t->nparam].key = key;
	t->param[t->nparam].value = value ? value : "";
	t->nparam++;
	return MHD_YES;
}

static e2b_upload *new_part(conn_req *cr, const char *name, silo_error *err)
{
	if (cr->n_parts >= E2B_UPLOAD_PARTS_MAX) {
		silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0, "at most %d files in one upload", E2B_UPLOAD_PARTS_MAX);
		return NULL;
	}
	int fd = memfd_create("e2b-upload", MFD_CLOEXEC);
	if (fd < 0) {
		silo_fail(err, SILO_ERR_IO_ERROR, errno, "memfd for an upload");
		return NULL;
	}
	e2b_upload *u = &cr->parts[cr->n_parts++];
	u->fd = fd;
	u->size = 0;
	u->name = name ? xstrdup(name) : NULL;
	return u;
}

static int part_write(conn_req *cr, e2b_upload *u, const char *data, size_t size)
{
	if (cr->got + size > cr->limit) {
		silo_fail(&cr->early, SILO_ERR_PAYLOAD_TOO_LARGE, 0, "upload: more than %llu bytes (--max-upload-mb)",
			  (unsigned long long)cr->limit);
		cr->failed = true;
		return -1;
	}
	if (write_all(u->fd, data, size) < 0) {
		silo_fail(&cr->early, SILO_ERR_IO_ERROR, errno, "upload: spooling");
		cr->failed = true;
		return -1;
	}
	cr->got += size;
	u->size += size;
	return 0;
}

static enum MHD_Result post_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
				 const char *content_type, const char *transfer_encoding, const char *data,
				 uint64_t off, size_t size)
{
	(void)kind, (void)content_type, (void)transfer_encoding;
	conn_req *cr = cls;
	if (cr->failed)
		return MHD_YES;
	if (!key || strcmp(key, "file"))
		return MHD_YES;   /* other form fields carry nothing we use */
	e2b_upload *u = cr->n_parts ? &cr->parts[cr->n_parts - 1] : NULL;
	if (off == 0 || !u) {
		u = new_part(cr, filename, &cr->early);
		if (!u) {
			cr->failed = true;
			return MHD_YES;
		}
	}
	if (size)
		(void)part_write(cr, u, data, size);
	return MHD_YES;
}

static const char *hdr(struct MHD_Connection *c, const char *name)
{
	return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* Which plane and kind a path belongs to when no row matched. */
static void classify(conn_req *cr, const char *url)
{
	cr->connect_path = !strncmp(url, "/process.", 9) || !strncmp(url, "/filesystem.", 12);
	cr->plane = cr->connect_path || !strcmp(url, "/files") || !strcmp(url, "/health") ? E2B_PLANE_ENVD
											    : E2B_PLANE_API;
}

static e2b_kind early_kind(const conn_req *cr)
{
	if (cr->row)
		return cr->row->kind;
	return cr->connect_path ? E2B_UNARY : E2B_REST;
}

static bool valid_id(const char *s)
{
	size_t n = strlen(s);
	return n && n < SILO_ID_MAX && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == n;
}

/* Authenticate for the row's plane (cr->early on failure). */
static int authenticate(e2b_server *s, struct MHD_Connection *c, conn_req *cr)
{
	e2b_req *q = &cr->q;
	if (cr->row->plane == E2B_PLANE_API) {
		const char *key = hdr(c, "X-API-KEY");
		char bearer[600];
		if (!key || strlen(key) > 512 ||
		    (snprintf(bearer, sizeof bearer, "Bearer %s", key), !authz_authenticate(s->authz, true, bearer, &q->tok)))
			return silo_fail(&cr->early, SILO_ERR_UNAUTHORIZED, 0,
					 key ? "Invalid API key (X-API-KEY is not a silod token)"
					     : "missing X-API-KEY (a silod API token)");
		if (q->tok)
			snprintf(q->actor, sizeof q->actor, "e2b:token:%s", q->tok->name);
		else
			snprintf(q->actor, sizeof q->actor, "e2b:token");
		if (cr->row->op == -2 && q->tok)
			return silo_fail(&cr->early, SILO_ERR_POLICY_DENIED, 0,
					 "pause and resume need a full-access token (token '%s' is scoped)", q->tok->name);
		if (cr->row->op >= 0 && q->tok && authz_op(s->authz, s->m, q->tok, q->actor, (token_op)cr->row->op, &cr->early) < 0)
			return -1;
		return 0;
	}
	const char *id = hdr(c, "E2b-Sandbox-Id");
	if (!id || !valid_id(id))
		return silo_fail(&cr->early, SILO_ERR_INVALID_CONFIG, 0,
				 id ? "E2b-Sandbox-Id: not a sandbox id" : "missing E2b-Sandbox-Id header (set E2B_SANDBOX_URL "
									   "to this server)");
	const char *tok = hdr(c, "X-Access-Token");
	char want[65];
	e2b_envd_token(s, id, want);
	if (!tok || strlen(tok) != 64 || sodium_memcmp(tok, want, 64) != 0)
		return silo_fail(&cr->early, SILO_ERR_UNAUTHORIZED, 0,
				 tok ? "X-Access-Token is not this sandbox's envd access token" : "missing X-Access-Token");
	snprintf(q->sandbox, sizeof q->sandbox, "%s", id);
	snprintf(q->actor, sizeof q->actor, "e2b:envd");
	return 0;
}

static uint64_t body_limit(const e2b_server *s, const e2b_route *r)
{
	switch (r->body) {
	case E2B_BODY_NONE: return 0;
	case E2B_BODY_JSON: return E2B_JSON_MAX;
	case E2B_BODY_RPC: return r->kind == E2B_CSTREAM ? 4ull * E2B_MSG_MAX : E2B_MSG_MAX + CONNECT_ENV_HDR;
	case E2B_BODY_UPLOAD: return s->cfg.max_upload;
	}
	return 0;
}

static void first_call(e2b_server *s, struct MHD_Connection *c, const char *url, const char *method,
				  conn_req *cr)
{
	e2b_req *q = &cr->q;
	q->srv = s;
	q->m = s->m;
	q->authz = s->authz;
	q->max_upload = s->cfg.max_upload;
	q->method = method;
	q->path = url;
	q->target = &cr->target;
	classify(cr, url);
	silo_error *err = &cr->early;
	if (http_target_parse(url, strlen(url), 0, &cr->target, err) < 0)
		goto refuse;
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, add_param, &cr->target);
	http_table tab = HTTP_TABLE(e2b_routes, e2b_n_routes, e2b_route);
	long i = http_route_lookup(&tab, method, &cr->target, cr->allow, sizeof cr->allow);
	if (i < 0) {
		if (cr->allow[0])
			silo_fail(err, SILO_ERR_METHOD_NOT_ALLOWED, 0, "%s %s: method not allowed (allowed: %s)", method,
				  url, cr->allow);
		else
			silo_fail(err, SILO_ERR_NOT_FOUND, 0, "%s %s: no such route on this E2B endpoint", method, url);
		goto refuse;
	}
	cr->row = &e2b_routes[i];
	cr->allow[0] = 0;
	q->route = cr->row;
	(void)http_pattern_match(cr->row->pattern, &cr->target, &q->caps);
	for (unsigned k = 0; k < q->caps.n; k++)
		if (!valid_id(q->caps.value[k])) {
			silo_fail(err, SILO_ERR_VM_NOT_FOUND, 0, "sandbox '%.64s' not found", q->caps.value[k]);
			goto refuse;
		}
	if (authenticate(s, c, cr) < 0)
		goto refuse;
	conn_guard_authenticated(c);
	q->content_type = hdr(c, "Content-Type");
	const char *ka = hdr(c, "Keepalive-Ping-Interval");
	if (ka) {
		unsigned long v = strtoul(ka, NULL, 10);
		q->keepalive_s = v > 0 && v <= 3600 ? (unsigned)v : 0;
	}
	const char *auth = hdr(c, "Authorization");
	(void)auth;   /* envd's Basic user: sandboxes run commands as their default user (docs/e2b.md) */
	cr->limit = body_limit(s, cr->row);
	const char *cl = hdr(c, "Content-Length");
	if (cl && strtoull(cl, NULL, 10) > cr->limit) {
		silo_fail(err, SILO_ERR_PAYLOAD_TOO_LARGE, 0, "%s %s: body of %s bytes is above the limit of %llu", method,
			  url, cl, (unsigned long long)cr->limit);
		goto refuse;
	}
	const char *ce = hdr(c, "Content-Encoding");
	if (ce && strcasecmp(ce, "identity")) {
		silo_fail(err, SILO_ERR_UNSUPPORTED_MEDIA_TYPE, 0,
			  "%s %s: Content-Encoding '%.32s' is not supported (send the bytes as they are)", method, url, ce);
		goto refuse;
	}
	if (cr->row->body == E2B_BODY_UPLOAD) {
		const char *ct = q->content_type ? q->content_type : "";
		if (!strncasecmp(ct, "multipart/form-data", 19)) {
			cr->pp = MHD_create_post_processor(c, 64 * 1024, post_iter, cr);
			if (!cr->pp) {
				silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "POST /files: malformed multipart/form-data header");
				goto refuse;
			}
		} else {
			cr->octet = true;
			if (!new_part(cr, NULL, err))
				goto refuse;
		}
	}
	return;
refuse:
	cr->failed = true;
}

static void body_chunk(conn_req *cr, const char *data, size_t size)
{
	if (cr->failed)
		return;
	if (!cr->row || cr->row->body == E2B_BODY_NONE) {
		silo_fail(&cr->early, SILO_ERR_PAYLOAD_TOO_LARGE, 0, "%s %s takes no body", cr->q.method, cr->q.path);
		cr->failed = true;
		return;
	}
	if (cr->row->body == E2B_BODY_UPLOAD) {
		if (cr->pp) {
			if (MHD_post_process(cr->pp, data, size) != MHD_YES && !cr->failed) {
				silo_fail(&cr->early, SILO_ERR_INVALID_CONFIG, 0, "POST /files: malformed multipart body");
				cr->failed = true;
			}
		} else {
			(void)part_write(cr, &cr->parts[0], data, size);
		}
		return;
	}
	if (cr->buf_len + size > cr->limit) {
		silo_fail(&cr->early, SILO_ERR_PAYLOAD_TOO_LARGE, 0, "%s %s: body above the limit of %llu bytes",
			  cr->q.method, cr->q.path, (unsigned long long)cr->limit);
		cr->failed = true;
		return;
	}
	cr->buf = xrealloc(cr->buf, cr->buf_len + size + 1);
	memcpy(cr->buf + cr->buf_len, data, size);
	cr->buf_len += size;
	cr->buf[cr->buf_len] = 0;
}

/* Unwrap a server-stream request's single envelope. */
static int unwrap(conn_req *cr, silo_error *err)
{
	connect_env env;
	long n = connect_env_next(cr->buf, cr->buf_len, E2B_MSG_MAX, &env, err);
	if (n < 0)
		return -1;
	if (n == 0 || (size_t)n != cr->buf_len || env.flags)
		return silo_fail(err, SILO_ERR_PROTOCOL, 0,
				 "%s: expected exactly one enveloped message (application/connect+json)", cr->q.path);
	cr->q.body = env.data;
	cr->q.len = env.len;
	return 0;
}

static enum MHD_Result run(e2b_server *s, struct MHD_Connection *c, conn_req *cr)
{
	e2b_req *q = &cr->q;
	const e2b_route *row = cr->row;
	silo_error err = {0};
	if (!cr->buf)
		cr->buf = xstrdup("");
	q->body = cr->buf;
	q->len = cr->buf_len;
	if (row->kind == E2B_SSTREAM && unwrap(cr, &err) < 0)
		return reply_error(s, c, row->kind, &err, NULL);
	for (size_t i = 0; i < cr->n_parts; i++)
		lseek(cr->parts[i].fd, 0, SEEK_SET);
	q->uploads = cr->parts;
	q->n_uploads = cr->n_parts;
	e2b_reply r = {.status = 200, .fd = -1};
	if (row->handler(q, &r, &err) < 0) {
		json_decref(r.json);
		if (r.fd >= 0)
			close(r.fd);
		return reply_error(s, c, row->kind, &err, NULL);
	}
	if (row->kind == E2B_SSTREAM) {
		stream_ctx *x = xcalloc(1, sizeof *x);
		x->s = s;
		x->st = r.stream;
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		x->peer_fd = ci ? ci->connect_fd : -1;
		struct MHD_Response *resp =
			MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, stream_read, x, stream_free);
		MHD_add_response_header(resp, "Content-Type", "application/connect+json");
		MHD_add_response_header(resp, "Cache-Control", "no-store");
		enum MHD_Result ret = MHD_queue_response(c, 200, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	if (r.fd >= 0) {
		struct MHD_Response *resp = MHD_create_response_from_fd64(r.size, r.fd);
		MHD_add_response_header(resp, "Content-Type", "application/octet-stream");
		MHD_add_response_header(resp, "Cache-Control", "no-store");
		enum MHD_Result ret = MHD_queue_response(c, 200, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	size_t n = 0;
	char *b;
	if (row->kind == E2B_CSTREAM) {
		json_t *msg = r.json ? r.json : json_object();
		size_t n1, n2;
		char *m1 = envelope(0, msg, &n1);
		json_t *end = json_object();
		char *m2 = envelope(CONNECT_FLAG_END, end, &n2);
		json_decref(end);
		json_decref(msg);
		b = xmalloc(n1 + n2);
		memcpy(b, m1, n1);
		memcpy(b + n1, m2, n2);
		free(m1);
		free(m2);
		return send_bytes(c, 200, "application/connect+json", b, n1 + n2, &r);
	}
	if (!r.json)
		return send_bytes(c, r.status, NULL, xstrdup(""), 0, &r);
	b = json_text(r.json, &n);
	json_decref(r.json);
	return send_bytes(c, r.status, "application/json", b, n, &r);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			       const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
	(void)version;
	e2b_server *s = cls;
	conn_req *cr = *con_cls;
	if (!cr) {
		cr = xcalloc(1, sizeof *cr);
		for (size_t i = 0; i < E2B_UPLOAD_PARTS_MAX; i++)
			cr->parts[i].fd = -1;
		*con_cls = cr;
		first_call(s, c, url, method, cr);
		/* a refusal goes out before any of the body is read (the connection then closes) */
		cr->head_refused = cr->failed;
		return cr->failed ? reply_error(s, c, early_kind(cr), &cr->early, cr->allow) : MHD_YES;
	}
	if (*upload_size) {
		body_chunk(cr, upload_data, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	if (cr->failed) {
		enum MHD_Result ret = reply_error(s, c, early_kind(cr), &cr->early, cr->allow);
		return ret;
	}
	return run(s, c, cr);
}

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char buf[512];
	vsnprintf(buf, sizeof buf, fmt, ap);
	size_t n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		buf[--n] = 0;
	log_debug("e2b http: %s", buf);
}

/* ---- lifecycle ---- */

static int load_key(e2b_server *s, silo_error *err)
{
	char *path = xasprintf("%s/e2b.key", s->cfg.state_dir);
	char *buf = NULL;
	size_t len = 0;
	silo_error e2;
	int rc = 0;
	if (read_file(path, 4096, &buf, &len, &e2) == 0 && len == sizeof s->key) {
		memcpy(s->key, buf, len);
	} else {
		randombytes_buf(s->key, sizeof s->key);
		rc = write_file_atomic(path, s->key, sizeof s->key, 0600, err);
	}
	if (buf)
		sodium_memzero(buf, len);
	free(buf);
	free(path);
	return rc;
}

int e2b_start(manager *m, api_authz *authz, const e2b_config *cfg, e2b_server **out, silo_error *err)
{
	if (sodium_init() < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "libsodium init failed");
	e2b_server *s = xcalloc(1, sizeof *s);
	s->m = m;
	s->authz = authz;
	s->cfg = *cfg;
	s->provider = cfg->provider ? xstrdup(cfg->provider) : NULL;
	pthread_mutex_init(&s->wlock, NULL);
	if (!authz_has_tokens(authz)) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
			  "--e2b-listen needs silod tokens for X-API-KEY (--token-file, SILO_API_TOKEN or --tokens-file)");
		goto fail;
	}
	if (load_key(s, err) < 0)
		goto fail;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	const char *colon = cfg->listen ? strrchr(cfg->listen, ':') : NULL;
	char host[64];
	if (!colon || (size_t)(colon - cfg->listen) >= sizeof host) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--e2b-listen: expected HOST:PORT, got '%s'",
			  cfg->listen ? cfg->listen : "");
		goto fail;
	}
	memcpy(host, cfg->listen, (size_t)(colon - cfg->listen));
	host[colon - cfg->listen] = 0;
	char *end;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (*end || port > 65535 || inet_pton(AF_INET, *host ? host : "0.0.0.0", &sa.sin_addr) != 1) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--e2b-listen: expected IPv4 HOST:PORT, got '%s'", cfg->listen);
		goto fail;
	}
	sa.sin_port = htons((uint16_t)port);
	conn_guard_config gc = {.header_timeout_s = cfg->header_timeout_s};
	if (conn_guard_start(&gc, &s->guard, err) < 0)
		goto fail;
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	s->d = MHD_start_daemon(flags, (uint16_t)port, conn_guard_accept, s->guard, handler, s, MHD_OPTION_SOCK_ADDR, &sa,
				MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_NOTIFY_CONNECTION, conn_guard_notify,
				s->guard, MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
				(unsigned)256, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300, MHD_OPTION_EXTERNAL_LOGGER,
				mhd_log, s, MHD_OPTION_END);
	if (!s->d) {
		silo_fail(err, SILO_ERR_IO_ERROR, errno, "cannot listen on %s (--e2b-listen)", cfg->listen);
		goto fail;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = di ? di->port : (unsigned)port;
	*out = s;
	return 0;
fail:
	e2b_stop(s);
	return -1;
}

unsigned e2b_port(const e2b_server *s)
{
	return s ? s->port : 0;
}

void e2b_stop(e2b_server *s)
{
	if (!s)
		return;
	atomic_store(&s->stopping, true);
	if (s->d)
		MHD_stop_daemon(s->d);
	if (s->guard)
		conn_guard_stop(s->guard);
	pthread_mutex_destroy(&s->wlock);
	sodium_memzero(s->key, sizeof s->key);
	free(s->provider);
	free(s);
}
