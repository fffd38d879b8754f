/* SPDX-License-Identifier: Apache-2.0
 * silod's HTTP transport (see http_server.h): the only file that speaks
 * libmicrohttpd (with api_guard.c, the TCP listener's connection guard).
 *
 * libmicrohttpd runs one thread per connection, so handlers may block (create
 * waits for the agent; exec and event streams block in their readers). For
 * each request this file authenticates the caller (401 closes the
 * connection), parses the target (lib/common/http_route.h) from the raw URI
 * libmicrohttpd hands to the URI log callback, finds the route
 * (api_route_find: 404, 405), builds the api_req and has api_admit (route.c)
 * check the head (token operation 403, captures, Content-Type 415), checks the
 * declared length (413) and takes it from the body budget (409). All that is
 * decided when the head arrives: an error is answered in the first call, so
 * libmicrohttpd sends no 100 Continue, reads no body and closes the
 * connection after the reply (what the client still sends of a small body is
 * drained first, never stored: conn_drain_refused, api_guard.h). Only then is the body read, within the row's
 * limit and the budget (uploads spooled to a memfd); api_dispatch runs the
 * handler and send_reply sends the api_reply: every reply, success or error,
 * leaves through that one function.
 *
 * The body budget (api_config.max_upload_total): the bytes of request bodies
 * held at once by all connections of both listeners (memfd spools and
 * in-memory bodies). A request reserves its declared Content-Length when its
 * head arrives, or its bytes as they come (chunked), and gives them back when
 * it completes; an upload that does not fit is refused, its spool dropped.
 * server.body_held is the only state shared between connection threads
 * (atomic). Per request state (conn_req) lives from the URI log callback to
 * the completion notification; nothing else of it is shared between threads,
 * but for an upgrade (API_REPLY_UPGRADE): its box is held by the request and
 * by the upgrade callback, and whichever lets go last frees it (upgrade_put).
 */
#include "daemon/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/util.h"
#include "daemon/api_authz.h"
#include "daemon/api_guard.h"
#include "daemon/route.h"

#define UNIX_MAX_CONNECTIONS 512        /* the unix socket's own limit, apart from TCP's */
#define TCP_MAX_CONNECTIONS 4096        /* api_config defaults for the TCP listener */
#define TCP_MAX_PER_IP 64
#define MAX_BODY_DEFAULT (1u << 20)
#define MAX_UPLOAD_DEFAULT (256ull << 20)
#define MAX_UPLOAD_TOTAL_DEFAULT (1ull << 30)   /* or max_upload, if larger */
#define CONNECTION_IDLE_S 120

typedef struct listener {
	struct api_server *s;
	bool tcp;
} listener;

struct api_server {
	listener unix_l, tcp_l;
	api_ctx ctx;           /* what handlers see (route.h) */
	api_config cfg;
	struct MHD_Daemon *unix_d, *tcp_d;
	conn_guard *guard;     /* slow and half-open TCP clients (api_guard.h) */
	unsigned tcp_port;
	int unix_fd;
	bool unix_owned;
	char *socket_path;
	atomic_bool stopping;
	char *tls_pem[3];      /* cert, key, client CA (PEM text, held until stop; the key zeroed) */
	size_t tls_len[3];
	_Atomic uint64_t body_held;   /* bytes reserved by request bodies (header comment) */
};

typedef struct conn_req {
	api_server *s;
	bool tcp;
	bool started;
	bool head_refused;     /* answered in the first call: drained after the reply (api_guard.h) */
	bool authorized;
	bool no_client_cert;   /* mutual TLS: no certificate, or one the client CA did not sign */
	char *target;          /* the request target as sent (URI log callback) */
	char *path;            /* its path part, for messages */
	silo_error route_err;  /* code set: the answer once the body is read */
	char allow[96];        /* METHOD_NOT_ALLOWED */
	const api_route *route;
	uint64_t limit;
	bool too_large;
	int upload_fd;         /* API_BODY_FILE */
	char *body;
	size_t len, cap;
	uint64_t received;
	uint64_t reserved;     /* of the body budget, given back by completed() */
	uint64_t head_ns;      /* when the head arrived (Server-Timing) */
	api_req ar;            /* built from the head, admitted before any body byte */
	struct upgrade_box *up;  /* API_REPLY_UPGRADE on its way (send_reply) */
	http_target t;         /* last: not cleared (uri_log) */
} conn_req;

/* ---- replies: the one writer ---- */

typedef struct stream_box {
	api_stream s;
} stream_box;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	stream_box *b = cls;
	ssize_t n = b->s.read(b->s.ctx, buf, max);
	if (n == API_STREAM_END)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n <= 0)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	return n;
}

static void stream_free(void *cls)
{
	stream_box *b = cls;
	b->s.free(b->s.ctx);
	free(b);
}

/* A connection taken over (API_REPLY_UPGRADE): run() on the connection's
 * thread once the 101 went out; free() once, by whoever is last of the
 * upgrade callback and the request's completion (which may come first, or
 * alone when the 101 never went out). */
typedef struct upgrade_box {
	api_upgrade u;
	pthread_mutex_t lock;
	int refs;
} upgrade_box;

static void upgrade_put(upgrade_box *b, int n)
{
	pthread_mutex_lock(&b->lock);
	b->refs -= n;
	bool last = b->refs == 0;
	pthread_mutex_unlock(&b->lock);
	if (!last)
		return;
	if (b->u.free)
		b->u.free(b->u.ctx);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

static void upgraded(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra, size_t extra_len,
		     MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
	(void)c;
	(void)con_cls;
	upgrade_box *b = cls;
	b->u.run(b->u.ctx, sock, extra, extra_len);
	MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
	upgrade_put(b, 1);
}

static struct MHD_Response *make_response(conn_req *q, api_reply *r)
{
	struct MHD_Response *resp = NULL;
	switch (r->kind) {
	case API_REPLY_JSON: {
		size_t len;
		char *txt = api_json_text(r->json, &len);
		resp = MHD_create_response_from_buffer(len, txt, MHD_RESPMEM_MUST_FREE);
		if (!resp)
			free(txt);
		break;
	}
	case API_REPLY_TEXT:
		resp = MHD_create_response_from_buffer(r->text_len, r->text, MHD_RESPMEM_MUST_FREE);
		if (resp)
			r->text = NULL;
		break;
	case API_REPLY_FILE:
		resp = MHD_create_response_from_fd(r->size, r->fd);   /* takes fd */
		if (resp)
			r->fd = -1;
		break;
	case API_REPLY_NDJSON:
	case API_REPLY_SSE:
	case API_REPLY_TAR: {
		stream_box *b = xmalloc(sizeof *b);
		b->s = r->stream;
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, r->stream.block, stream_read, b, stream_free);
		if (resp)
			r->stream = (api_stream){0};   /* stream_free owns it now */
		else
			free(b);
		break;
	}
	case API_REPLY_UPGRADE: {
		upgrade_box *b = xcalloc(1, sizeof *b);
		b->u = r->upgrade;
		resp = MHD_create_response_for_upgrade(upgraded, b);
		if (!resp) {
			free(b);
			break;
		}
		r->upgrade = (api_upgrade){0};   /* the box owns it now */
		pthread_mutex_init(&b->lock, NULL);
		b->refs = 2;                     /* the upgrade callback's and the request's */
		q->up = b;
		MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, b->u.protocol);
		MHD_add_response_header(resp, "Sec-WebSocket-Accept", b->u.accept);
		return resp;   /* no Content-Type: a 101 has no body */
	}
	case API_REPLY__COUNT:
		break;
	}
	if (resp)
		MHD_add_response_header(resp, "Content-Type", api_reply_content_type(r));
	return resp;
}

static enum MHD_Result send_reply(conn_req *q, struct MHD_Connection *c, api_reply *r)
{
	if (r->kind >= API_REPLY__COUNT) {
		silo_error e;
		silo_fail(&e, SILO_ERR_INTERNAL, 0, "reply kind %d", (int)r->kind);
		api_reply_release(r);
		api_reply_error(&q->s->ctx, r, &e, NULL);
	}
	struct MHD_Response *resp = make_response(q, r);
	char timing[MGR_TIMING_MAX * 40 + 32];   /* asked for: X-Silo-Timing */
	mgr_timing_mark("reply");
	mgr_timing_format(timing, sizeof timing);
	if (!resp) {
		api_reply_release(r);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	if (timing[0])
		MHD_add_response_header(resp, "Server-Timing", timing);
	if (r->allow[0])
		MHD_add_response_header(resp, "Allow", r->allow);
	if (r->challenge) {
		MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"silod\"");
		MHD_add_response_header(resp, "Connection", "close");   /* one try per connection */
	}
	enum MHD_Result ret = MHD_queue_response(c, r->status, resp);
	MHD_destroy_response(resp);
	api_reply_release(r);
	return ret;
}

/* ---- requests ---- */

static int conn_fd(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	return ci ? ci->connect_fd : -1;
}

static const char *header(struct MHD_Connection *c, const char *name)
{
	return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static const char *req_header(void *conn, const char *name)
{
	return header(conn, name);
}

static void set_caller(conn_req *q, struct MHD_Connection *c)
{
	api_caller *w = &q->ar.who;
	w->tcp = q->tcp;
	if (q->tcp) {
		if (w->tok)
			snprintf(w->actor, sizeof w->actor, "token:%s", w->tok->name);
		else
			snprintf(w->actor, sizeof w->actor, "token");
		return;
	}
	struct ucred cr;
	socklen_t l = sizeof cr;
	int fd = conn_fd(c);
	if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) == 0) {
		w->have_cred = true;
		w->uid = cr.uid;
		w->gid = cr.gid;
		w->pid = cr.pid;
		snprintf(w->actor, sizeof w->actor, "uid:%u", (unsigned)cr.uid);
	} else {
		snprintf(w->actor, sizeof w->actor, "unix");
	}
}

/* libmicrohttpd hands every request's raw target here first; what this
 * returns is the request's context (con_cls) from then on. */
static void *uri_log(void *cls, const char *uri, struct MHD_Connection *c)
{
	(void)c;
	listener *l = cls;
	/* the parsed target (16 KiB) is filled by http_target_parse: not cleared here */
	conn_req *q = xmalloc(sizeof *q);
	memset(q, 0, offsetof(conn_req, t));
	q->t.nseg = q->t.nparam = 0;
	q->s = l->s;
	q->tcp = l->tcp;
	q->upload_fd = -1;
	q->head_ns = now_mono_ns();
	q->target = xstrdup(uri ? uri : "");
	q->path = xstrndup(q->target, strcspn(q->target, "?"));
	return q;
}

/* ---- the body budget ---- */

static bool budget_take(api_server *s, conn_req *q, uint64_t n)
{
	uint64_t cur = atomic_load(&s->body_held);
	do {
		if (n > s->cfg.max_upload_total - MIN(cur, s->cfg.max_upload_total))
			return false;
	} while (!atomic_compare_exchange_weak(&s->body_held, &cur, cur + n));
	q->reserved += n;
	return true;
}

static void budget_give_back(api_server *s, conn_req *q)
{
	atomic_fetch_sub(&s->body_held, q->reserved);
	q->reserved = 0;
}

static void fail_budget(api_server *s, conn_req *q, uint64_t asked)
{
	uint64_t held = atomic_load(&s->body_held);
	silo_fail(&q->route_err, SILO_ERR_RESOURCE_EXCEEDED, 0,
		  "request bodies held by silod: %" PRIu64 " more bytes asked, %" PRIu64 " of %" PRIu64
		  " free (--max-upload-total-mb); retry when uploads in flight finish",
		  asked, s->cfg.max_upload_total - MIN(held, s->cfg.max_upload_total), s->cfg.max_upload_total);
}

/* Drop what the request holds of its body (refused mid-way): the spool's pages
 * and the reservation go back at once, the rest of the body is discarded. */
static void drop_body(conn_req *q)
{
	if (q->upload_fd >= 0)
		close(q->upload_fd);
	q->upload_fd = -1;
	if (q->body)
		explicit_bzero(q->body, q->len);
	free(q->body);
	q->body = NULL;
	q->len = q->cap = 0;
	budget_give_back(q->s, q);
}

/* Mutual TLS: libmicrohttpd asks for a client certificate when it has a
 * trust list (--tls-client-ca) but does not check it; this does, against
 * that list (signature chain, validity dates). */
static bool client_cert_ok(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (!ci || !ci->tls_session)
		return false;
	gnutls_session_t ts = (gnutls_session_t)ci->tls_session;
	unsigned n = 0, status = 0;
	if (!gnutls_certificate_get_peers(ts, &n) || n == 0)
		return false;
	return gnutls_certificate_verify_peers2(ts, &status) == GNUTLS_E_SUCCESS && status == 0;
}

/* First call of a request (its head is complete): caller, route, admission,
 * body limit and budget. False when the answer is already decided (the
 * request is then answered without reading its body). */
static bool begin(conn_req *q, struct MHD_Connection *c, const char *method)
{
	api_server *s = q->s;
	metrics_inc(manager_metrics(s->ctx.m), M_API_REQUESTS_TOTAL, 1);
	q->authorized = authz_authenticate(s->ctx.authz, q->tcp, header(c, "Authorization"), &q->ar.who.tok);
	if (q->authorized && q->tcp && s->tls_pem[2] && !client_cert_ok(c)) {
		q->authorized = false;
		q->no_client_cert = true;
	}
	set_caller(q, c);
	if (!q->authorized)
		return false;
	if (q->tcp)
		conn_guard_authenticated(c);   /* out of reach of the header deadline */
	if (http_target_parse(q->target, strlen(q->target), HTTP_TARGET_DECODE, &q->t, &q->route_err) == 0)
		q->route = api_route_find(method, &q->t, q->path, q->allow, &q->route_err);
	if (!q->route)
		return false;
	api_caller who = q->ar.who;
	q->ar = (api_req){
		.ctx = &s->ctx,
		.route = q->route,
		.method = method,
		.path = q->path,
		.target = &q->t,
		.body = "",
		.body_fd = -1,
		.content_type = header(c, "Content-Type"),
		.who = who,
		.peer_fd = conn_fd(c),
		.header = req_header,
		.conn = c,
	};
	http_pattern_match(q->route->pattern, &q->t, &q->ar.caps);
	if (api_admit(&q->ar, &q->route_err) < 0)
		return false;
	q->limit = api_body_limit(&s->ctx, q->route);
	const char *cl = header(c, "Content-Length");
	uint64_t declared = cl ? strtoull(cl, NULL, 10) : 0;
	if (declared > q->limit) {
		q->too_large = true;
		return false;
	}
	if (!budget_take(s, q, declared)) {
		fail_budget(s, q, declared);
		return false;
	}
	if (q->route->body == API_BODY_FILE) {
		q->upload_fd = memfd_create("silod-upload", MFD_CLOEXEC);
		if (q->upload_fd < 0) {
			silo_fail(&q->route_err, SILO_ERR_IO_ERROR, errno, "upload spool (memfd)");
			return false;
		}
	}
	return true;
}

static void take_body(conn_req *q, const char *data, size_t n)
{
	if (!q->route || q->too_large || q->route_err.code)
		return;   /* refused: the rest is discarded */
	if (q->received + n > q->limit) {
		q->too_large = true;
		drop_body(q);
		return;
	}
	if (q->received + n > q->reserved && !budget_take(q->s, q, q->received + n - q->reserved)) {
		fail_budget(q->s, q, q->received + n - q->reserved);
		drop_body(q);
		return;
	}
	if (q->upload_fd >= 0) {
		if (write_all(q->upload_fd, data, n) < 0) {
			silo_fail(&q->route_err, SILO_ERR_IO_ERROR, errno, "upload spool (memfd)");
			drop_body(q);
			return;
		}
	} else {
		if (q->len + n + 1 > q->cap) {
			q->cap = MAX(q->cap * 2, q->len + n + 1);
			q->body = xrealloc(q->body, q->cap);
		}
		memcpy(q->body + q->len, data, n);
		q->len += n;
		q->body[q->len] = '\0';
	}
	q->received += n;
}

/* Last call (the whole request is in), or the first when begin() decided. */
static enum MHD_Result finish(conn_req *q, struct MHD_Connection *c, const char *method)
{
	const api_ctx *ctx = &q->s->ctx;
	api_reply r;
	silo_error err = {0};
	mgr_timing_start(header(c, "X-Silo-Timing") ? q->head_ns : 0);   /* or off: nothing left from before */
	if (!q->authorized) {
		if (q->no_client_cert)
			silo_fail(&err, SILO_ERR_UNAUTHORIZED, 0,
				  "no client certificate, or one not signed by silod's --tls-client-ca (mutual TLS)");
		else
			silo_fail(&err, SILO_ERR_UNAUTHORIZED, 0,
				  "missing or invalid bearer token (Authorization: Bearer ...)");
		api_reply_error(ctx, &r, &err, NULL);
		r.challenge = true;
		return send_reply(q, c, &r);
	}
	if (!q->route_err.code && q->too_large)
		api_fail_too_large(method, q->path, q->route, q->limit, &q->route_err);
	if (!q->route_err.code && q->upload_fd >= 0 && lseek(q->upload_fd, 0, SEEK_SET) < 0)
		silo_fail(&q->route_err, SILO_ERR_IO_ERROR, errno, "rewind the upload spool");
	if (q->route_err.code) {
		api_reply_error(ctx, &r, &q->route_err, NULL);
		if (q->route_err.code == SILO_ERR_METHOD_NOT_ALLOWED)
			snprintf(r.allow, sizeof r.allow, "%s", q->allow);
		return send_reply(q, c, &r);
	}
	api_req *ar = &q->ar;
	mgr_timing_mark("read");
	ar->method = method;
	ar->body = q->body ? q->body : "";
	ar->len = q->len;
	ar->body_fd = q->upload_fd;
	ar->body_size = q->received;
	api_dispatch(ar, &r);
	return send_reply(q, c, &r);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			       const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
	(void)cls;
	(void)url;
	(void)version;
	conn_req *q = *con_cls;
	if (!q)
		return MHD_NO;   /* every request passes uri_log first */
	if (!q->started) {
		q->started = true;
		if (!begin(q, c, method)) {
			q->head_refused = true;
			return finish(q, c, method);   /* answered now: no body is read */
		}
		return MHD_YES;
	}
	if (*upload_size) {
		take_body(q, upload_data, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	return finish(q, c, method);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	conn_req *q = *con_cls;
	if (!q)
		return;
	if (q->head_refused)
		conn_drain_refused(c, toe);
	if (q->up)   /* the request's hold; without the 101 the upgrade callback's goes too */
		upgrade_put(q->up, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? 1 : 2);
	drop_body(q);   /* a create body may carry inline secrets: zeroed */
	free(q->target);
	free(q->path);
	free(q);
	*con_cls = NULL;
}

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char buf[512];
	vsnprintf(buf, sizeof buf, fmt, ap);
	log_debug("http: %s", buf);
}

/* ---- listeners ---- */

static int bind_unix(const char *path, unsigned mode, silo_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "socket path %s is longer than %zu bytes", path,
				 sizeof sa.sun_path - 1);
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "socket");
	/* A live daemon answers on it; a stale socket file is replaced. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
		close(fd);
		return silo_fail(err, SILO_ERR_CONFLICT, 0, "another silod is listening on %s", path);
	}
	close(fd);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "socket");
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (rc < 0 || chmod(path, mode) < 0 || listen(fd, 256) < 0) {
		int e = errno;
		close(fd);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "listen on %s", path);
	}
	return fd;
}

static int parse_listen(const char *spec, struct sockaddr_in *sa, silo_error *err)
{
	const char *colon = strrchr(spec, ':');
	if (!colon || colon == spec)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--listen: expected HOST:PORT, got '%s'", spec);
	char host[64];
	size_t hl = (size_t)(colon - spec);
	if (hl >= sizeof host)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--listen: host too long");
	memcpy(host, spec, hl);
	host[hl] = '\0';
	char *end;
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (*end || port > 65535 || !colon[1])
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--listen: port must be 0..65535, got '%s'", colon + 1);
	memset(sa, 0, sizeof *sa);
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--listen: '%s' is not an IPv4 address", host);
	return 0;
}

/* TLS 1.2 or newer, GnuTLS's default suites otherwise */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* The TCP listener's TLS options (--tls-cert, --tls-key, --tls-client-ca),
 * or the refusal of a listener outside loopback that has none. */
static int tls_options(api_server *s, const struct sockaddr_in *sa, struct MHD_OptionItem *o, silo_error *err)
{
	static const char *const flag[3] = {"--tls-cert", "--tls-key", "--tls-client-ca"};
	const char *file[3] = {s->cfg.tls_cert, s->cfg.tls_key, s->cfg.tls_client_ca};
	if (!file[0] != !file[1])
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s needs %s too", file[0] ? flag[0] : flag[1],
				 file[0] ? flag[1] : flag[0]);
	if (file[2] && !file[0])
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--tls-client-ca needs --tls-cert and --tls-key");
	bool loopback = (ntohl(sa->sin_addr.s_addr) >> 24) == 127;
	if (!file[0]) {
		if (!loopback && !s->cfg.insecure_listen)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "--listen %s is not a loopback address: bearer tokens would cross the network in "
					 "clear; give --tls-cert and --tls-key (or --insecure-listen to accept that)",
					 s->cfg.listen);
		return 0;
	}
	if (!MHD_is_feature_supported(MHD_FEATURE_TLS))
		return silo_fail(err, SILO_ERR_NOT_SUPPORTED, 0, "this libmicrohttpd is built without TLS");
	for (int i = 0; i < 3; i++) {
		if (!file[i])
			continue;
		if (read_file(file[i], 1 << 20, &s->tls_pem[i], &s->tls_len[i], err) < 0) {
			silo_error_prefix(err, "%s", flag[i]);
			return -1;
		}
		if (!strstr(s->tls_pem[i], "-----BEGIN "))
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s %s: not a PEM file", flag[i], file[i]);
	}
	static const enum MHD_OPTION opt[3] = {MHD_OPTION_HTTPS_MEM_CERT, MHD_OPTION_HTTPS_MEM_KEY,
					       MHD_OPTION_HTTPS_MEM_TRUST};
	int n = 0;
	for (int i = 0; i < 3; i++)
		if (s->tls_pem[i])
			o[n++] = (struct MHD_OptionItem){opt[i], 0, s->tls_pem[i]};
	o[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES};
	o[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	return 0;
}

static json_t *guard_json(const api_ctx *ctx)
{
	return conn_guard_json(ctx->listener);
}

/* The TCP listener: its own threads and limits (the unix socket keeps being
 * served whatever happens here), a per-address cap, and the guard's header
 * deadline and unauthenticated cap (api_guard.h). */
static int start_tcp(api_server *s, unsigned flags, silo_error *err)
{
	struct sockaddr_in sa;
	if (parse_listen(s->cfg.listen, &sa, err) < 0)
		return -1;
	struct MHD_OptionItem tls[6] = {{MHD_OPTION_END, 0, NULL}};
	if (tls_options(s, &sa, tls, err) < 0)
		return -1;
	if (s->tls_pem[0])
		flags |= MHD_USE_TLS;
	/* the guard enforces max_connections on live connections; libmicrohttpd's
	 * own limit leaves room for dropped ones winding down */
	conn_guard_config gc = {.header_timeout_s = s->cfg.header_timeout_s,
				.max_unauthenticated = s->cfg.max_connections / 2,
				.max_connections = s->cfg.max_connections};
	if (conn_guard_start(&gc, &s->guard, err) < 0)
		return -1;
	s->tcp_d = MHD_start_daemon(flags, ntohs(sa.sin_port), conn_guard_accept, s->guard, handler, &s->tcp_l,
				    MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_URI_LOG_CALLBACK, uri_log, &s->tcp_l,
				    MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_NOTIFY_CONNECTION,
				    conn_guard_notify, s->guard, MHD_OPTION_CONNECTION_LIMIT, s->cfg.max_connections * 2,
				    MHD_OPTION_PER_IP_CONNECTION_LIMIT, s->cfg.max_connections_per_ip,
				    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_IDLE_S, MHD_OPTION_EXTERNAL_LOGGER,
				    mhd_log, s, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
	if (!s->tcp_d && s->tls_pem[0])
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, errno,
				 "cannot listen with TLS on %s (do --tls-cert and --tls-key hold a matching PEM "
				 "certificate and key?)", s->cfg.listen);
	if (!s->tcp_d)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "cannot listen on %s", s->cfg.listen);
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->tcp_d, MHD_DAEMON_INFO_BIND_PORT);
	s->tcp_port = di ? di->port : ntohs(sa.sin_port);
	s->ctx.listener_json = guard_json;
	s->ctx.listener = s->guard;
	return 0;
}

api_authz *api_server_authz(api_server *s)
{
	return s->ctx.authz;
}

unsigned api_tcp_port(const api_server *s)
{
	return s->tcp_port;
}

int api_start(manager *m, const api_config *cfg, api_server **out, silo_error *err)
{
	if (sodium_init() < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "libsodium init failed");
	api_server *s = xcalloc(1, sizeof *s);
	s->cfg = *cfg;
	s->unix_fd = -1;
	s->unix_l = (listener){s, false};
	s->tcp_l = (listener){s, true};
	if (!s->cfg.max_body)
		s->cfg.max_body = MAX_BODY_DEFAULT;
	if (!s->cfg.max_upload)
		s->cfg.max_upload = MAX_UPLOAD_DEFAULT;
	if (!s->cfg.max_upload_total)
		s->cfg.max_upload_total = MAX(MAX_UPLOAD_TOTAL_DEFAULT, s->cfg.max_upload);
	if (s->cfg.max_upload_total < s->cfg.max_upload) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
			  "--max-upload-total-mb (%" PRIu64 " MiB) is below --max-upload-mb (%" PRIu64
			  " MiB): no upload of the largest size could ever be taken",
			  s->cfg.max_upload_total >> 20, s->cfg.max_upload >> 20);
		goto fail;
	}
	if (!s->cfg.max_connections)
		s->cfg.max_connections = TCP_MAX_CONNECTIONS;
	if (!s->cfg.max_connections_per_ip)
		s->cfg.max_connections_per_ip = TCP_MAX_PER_IP;
	s->socket_path = xstrdup(cfg->socket_path);
	s->cfg.socket_path = s->socket_path;
	s->cfg.token = NULL;
	s->ctx = (api_ctx){.m = m, .deploy = cfg->deploy, .max_body = s->cfg.max_body, .max_upload = s->cfg.max_upload,
			   .stopping = &s->stopping, .targets = cfg->targets};
	authz_config azc = {.policy_file = cfg->policy_file, .tokens_file = cfg->tokens_file, .legacy_token = cfg->token,
			    .opa_url = cfg->opa_url, .opa_timeout_ms = cfg->opa_timeout_ms};
	if (authz_open(&azc, &s->ctx.authz, err) < 0)
		goto fail;
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
			 MHD_USE_ERROR_LOG | MHD_ALLOW_UPGRADE;
	s->unix_fd = bind_unix(cfg->socket_path, cfg->socket_mode ? cfg->socket_mode : 0600, err);
	if (s->unix_fd < 0)
		goto fail;
	s->unix_d = MHD_start_daemon(flags, 0, NULL, NULL, handler, &s->unix_l, MHD_OPTION_LISTEN_SOCKET, s->unix_fd,
				     MHD_OPTION_URI_LOG_CALLBACK, uri_log, &s->unix_l, MHD_OPTION_NOTIFY_COMPLETED, completed,
				     s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)UNIX_MAX_CONNECTIONS,
				     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_IDLE_S, MHD_OPTION_EXTERNAL_LOGGER,
				     mhd_log, s, MHD_OPTION_END);
	if (!s->unix_d) {
		silo_fail(err, SILO_ERR_IO_ERROR, errno, "cannot start the HTTP server on %s", cfg->socket_path);
		goto fail;
	}
	s->unix_owned = true;   /* MHD closes the listen socket on stop */
	if (cfg->listen) {
		if (!authz_has_tokens(s->ctx.authz)) {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				  "--listen needs a bearer token (--token-file, SILO_API_TOKEN or --tokens-file)");
			goto fail;
		}
		if (start_tcp(s, flags, err) < 0)
			goto fail;
	}
	*out = s;
	return 0;
fail:
	api_stop(s);
	return -1;
}

void api_stop(api_server *s)
{
	if (!s)
		return;
	atomic_store(&s->stopping, true);
	if (s->tcp_d)
		MHD_stop_daemon(s->tcp_d);
	conn_guard_stop(s->guard);   /* after the listener: every CLOSED notification was made */
	if (s->unix_d)
		MHD_stop_daemon(s->unix_d);
	if (s->unix_fd >= 0) {
		if (!s->unix_owned)
			close(s->unix_fd);
		unlink(s->socket_path);
	}
	free(s->socket_path);
	for (int i = 0; i < 3; i++) {
		if (s->tls_pem[i])
			explicit_bzero(s->tls_pem[i], s->tls_len[i]);
		free(s->tls_pem[i]);
	}
	authz_free(s->ctx.authz);
	free(s);
}

int api_normalize_spec(void *server, vm_spec *spec, silo_error *err)
{
	api_server *s = server;
	mgr_create_opts o = {.actor = "silod:pool"};
	return authz_create(s->ctx.authz, s->ctx.m, NULL, "silod:pool", spec, &o, err);
}
