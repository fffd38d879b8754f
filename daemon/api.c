/* SPDX-License-Identifier: Apache-2.0
 * silod HTTP API (see api.h, docs/openapi.yaml).
 *
 * libmicrohttpd runs one thread per connection, so handlers may block (create
 * waits for the agent; exec and event streams block in their content readers).
 * A streaming reader waits in short slices and polls the client socket, so a
 * client that goes away is noticed even when nothing is being written, and
 * its exec is killed and its subscription dropped (nothing leaks).
 */
#include "daemon/api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "daemon/api_authz.h"
#include "daemon/api_deploy.h"
#include "daemon/api_guard.h"
#include "daemon/api_parse.h"
#include "daemon/api_snapshot.h"
#include "daemon/route_shim_glue.h"

#define EVENT_QUEUE_MAX 1024
#define UNIX_MAX_CONNECTIONS 512        /* the unix socket's own limit, apart from TCP's */
#define TCP_MAX_CONNECTIONS 4096        /* api_config defaults for the TCP listener */
#define TCP_MAX_PER_IP 64

typedef struct listener {
	struct api_server *s;
	bool tcp;
} listener;

struct api_server {
	listener unix_l, tcp_l;
	manager *m;
	api_config cfg;
	struct MHD_Daemon *unix_d, *tcp_d;
	conn_guard *guard;     /* slow and half-open TCP clients (api_guard.h) */
	unsigned tcp_port;
	int unix_fd;
	bool unix_owned;
	char *socket_path;
	api_authz *authz;      /* tokens and policies (api_authz.c) */
	atomic_bool stopping;
	api_ctx shim_ctx;      /* what route_shim.c handlers see */
};

typedef struct req {
	api_server *s;
	bool tcp;
	bool started;
	bool authorized;
	bool upload;           /* body goes to upload_fd */
	char *body;
	size_t len, cap, limit;
	bool too_large;
	int upload_fd;
	uint64_t uploaded;
	char actor[64];
	pid_t peer_pid;        /* unix socket: the client's process (SO_PEERCRED), 0 otherwise */
	const api_token *tok;  /* scoped token of a TCP client; NULL = full access */
	const char *method, *url;   /* for handlers outside the route table */
	const api_route *shim;      /* a row of route_shim.c (processes, files, archives) */
	shim_match sm;
	struct upgrade_hold *up;    /* a WebSocket reply on its way */
} req;

/* ---- helpers ---- */

unsigned api_http_status(silo_code code)
{
	switch (code) {
	case SILO_OK: return 200;
	case SILO_ERR_INVALID_CONFIG: return 400;
	case SILO_ERR_RESOURCE_EXCEEDED: return 409;
	case SILO_ERR_MAX_VMS_EXCEEDED: return 429;
	case SILO_ERR_BOOT_TIMEOUT: return 504;
	case SILO_ERR_VM_NOT_FOUND: return 404;
	case SILO_ERR_VSOCK_DISCONNECTED: return 502;
	case SILO_ERR_POLICY_DENIED: return 403;
	case SILO_ERR_SECURITY_VIOLATION: return 500;
	case SILO_ERR_CHECKSUM_MISMATCH: return 422;
	case SILO_ERR_PLUGIN_UNVERIFIED: return 422;
	case SILO_ERR_CLEANUP_FAILED: return 500;
	case SILO_ERR_REMOTE_UNREACHABLE: return 502;
	case SILO_ERR_PROVIDER_UNAVAILABLE: return 503;
	case SILO_ERR_IO_ERROR: return 500;
	case SILO_ERR_TIMEOUT: return 504;
	case SILO_ERR_PROTOCOL: return 400;
	case SILO_ERR_UNAUTHORIZED: return 401;
	case SILO_ERR_CONFLICT: return 409;
	case SILO_ERR_NOT_SUPPORTED: return 501;
	case SILO_ERR_INTERNAL: return 500;
	case SILO_ERR_FILE_NOT_FOUND: return 404;
	case SILO_ERR_PROCESS_NOT_FOUND: return 404;
	case SILO_ERR__COUNT: break;
	}
	return 500;
}

static enum MHD_Result send_buf(struct MHD_Connection *c, unsigned status, const char *type, char *buf,
				size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	size_t len = strlen(s);
	s = xrealloc(s, len + 2);
	s[len++] = '\n';
	s[len] = '\0';
	return send_buf(c, status, "application/json", s, len);
}

static json_t *error_body(const silo_error *err)
{
	json_t *e = json_pack("{s:s,s:s}", "code", silo_code_name(err->code), "message", err->message);
	if (err->vm_id[0])
		json_object_set_new(e, "vm_id", json_string(err->vm_id));
	if (err->sys_errno)
		json_object_set_new(e, "errno", json_integer(err->sys_errno));
	return json_pack("{s:o}", "error", e);
}

json_t *api_error_json(const silo_error *err)
{
	return error_body(err);
}

/* Errors raised by the manager were already counted by it where they happen;
 * API-level ones (bad bodies, auth) are counted here. */
static enum MHD_Result send_error_status(req *q, struct MHD_Connection *c, unsigned status,
					 const silo_error *err)
{
	manager_note_error(q->s->m, err);
	return send_json(c, status, error_body(err));
}

static enum MHD_Result send_error(req *q, struct MHD_Connection *c, const silo_error *err)
{
	return send_error_status(q, c, api_http_status(err->code), err);
}

__attribute__((format(printf, 5, 6))) static enum MHD_Result
fail(req *q, struct MHD_Connection *c, unsigned status, silo_code code, const char *fmt, ...)
{
	silo_error e = {.code = code};
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e.message, sizeof e.message, fmt, ap);
	va_end(ap);
	return send_error_status(q, c, status ? status : api_http_status(code), &e);
}

static int conn_fd(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	return ci ? ci->connect_fd : -1;
}

/* True if the peer closed its side (or the socket failed). */
static bool peer_gone(int fd)
{
	if (fd < 0)
		return false;
	struct pollfd p = {.fd = fd, .events = POLLRDHUP};
	if (poll(&p, 1, 0) <= 0)
		return false;
	return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

static void deadline_in(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	uint64_t ns = (uint64_t)ts->tv_nsec + (uint64_t)ms * 1000000ull;
	ts->tv_sec += (time_t)(ns / 1000000000ull);
	ts->tv_nsec = (long)(ns % 1000000000ull);
}

static void cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
}

static const char *query(struct MHD_Connection *c, const char *key)
{
	const char *v = NULL;
	size_t n = 0;
	if (MHD_lookup_connection_value_n(c, MHD_GET_ARGUMENT_KIND, key, strlen(key), &v, &n) != MHD_YES || !v)
		return NULL;
	return memchr(v, '\0', n) ? NULL : v;   /* "%00" would silently cut the value short */
}

/* Parse an unsigned query value; returns false (and answers 400) if malformed. */
static bool query_u64(req *q, struct MHD_Connection *c, const char *key, uint64_t max, uint64_t *out,
		      enum MHD_Result *ret)
{
	const char *v = query(c, key);
	if (!v)
		return true;
	char *end;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 0);
	if (!*v || *end || errno || x > max || v[0] == '-') {
		*ret = fail(q, c, 400, SILO_ERR_INVALID_CONFIG, "query parameter %s: expected an integer 0..%" PRIu64
			    ", got '%.64s'", key, max, v);
		return false;
	}
	*out = x;
	return true;
}

/* ---- providers, health, metrics ---- */

static enum MHD_Result h_providers(req *q, struct MHD_Connection *c)
{
	return send_json(c, 200, json_pack("{s:o}", "providers", manager_providers_json(q->s->m)));
}

static enum MHD_Result h_health(req *q, struct MHD_Connection *c)
{
	json_t *o = manager_health_json(q->s->m);
	if (q->s->guard)
		json_object_set_new(o, "tcp_connections", conn_guard_json(q->s->guard));
	return send_json(c, 200, o);
}

static enum MHD_Result h_metrics(req *q, struct MHD_Connection *c)
{
	silo_error err;
	if (authz_op(q->s->authz, q->s->m, q->tok, q->actor, TOKEN_OP_METRICS, &err) < 0)
		return send_error(q, c, &err);
	char *t = manager_metrics_text(q->s->m);
	return send_buf(c, 200, "text/plain; version=0.0.4; charset=utf-8", t, strlen(t));
}

/* ---- sandboxes ---- */

static bool content_type_is(struct MHD_Connection *c, const char *want)
{
	const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
	if (!ct)
		return false;
	size_t l = strlen(want);
	return !strncasecmp(ct, want, l) && (ct[l] == '\0' || ct[l] == ';' || ct[l] == ' ');
}

/* ?isolation=vm|any on a create sets the spec's [vm] isolation (what
 * `silo create --isolation` sends with either body form). */
static int isolation_query(struct MHD_Connection *c, vm_spec *spec, silo_error *err)
{
	const char *v = query(c, "isolation");
	if (!v)
		return 0;
	if (strcmp(v, "vm") && strcmp(v, "any"))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "query parameter isolation: expected vm or any, got '%.32s'",
				 v);
	free(spec->isolation);
	spec->isolation = xstrdup(v);
	return 0;
}

static enum MHD_Result h_create(req *q, struct MHD_Connection *c)
{
	vm_spec spec = {0};
	silo_error err = {0};
	int rc;
	if (content_type_is(c, "application/toml") || content_type_is(c, "text/x-toml") ||
	    content_type_is(c, "application/x-toml")) {
		rc = spec_parse(q->body ? q->body : "", q->len, &spec, &err);
		if (rc < 0)
			silo_error_prefix(&err, "hac.toml");
	} else if (content_type_is(c, "application/json")) {
		rc = api_spec_from_json(q->body ? q->body : "", q->len, &spec, &err);
	} else {
		return fail(q, c, 415, SILO_ERR_INVALID_CONFIG,
			    "Content-Type: expected application/toml (hac.toml text) or application/json");
	}
	if (rc == 0)
		rc = isolation_query(c, &spec, &err);
	if (rc < 0) {
		spec_free(&spec);
		return send_error(q, c, &err);
	}
	char id[SILO_ID_MAX];
	mgr_create_opts o = {.actor = q->actor};
	/* ?bind=client: the sandbox lives only as long as the calling process
	 * (`silo run` through silod); only a unix-socket peer has a process we see */
	const char *bind = query(c, "bind");
	if (bind && (strcmp(bind, "client") != 0 || q->tcp || q->peer_pid <= 0)) {
		spec_free(&spec);
		return fail(q, c, 400, SILO_ERR_INVALID_CONFIG, "%s",
			    strcmp(bind, "client") != 0 ? "bind: expected \"client\""
							: "bind: only a client on the unix socket can bind a sandbox to itself");
	}
	if (bind)
		o.bind_client = q->peer_pid;
	if (authz_create(q->s->authz, q->s->m, q->tok, q->actor, &spec, &o, &err) < 0) {
		spec_free(&spec);
		return send_error(q, c, &err);
	}
	rc = manager_create(q->s->m, &spec, &o, id, &err);
	spec_free(&spec);
	if (rc < 0 && err.code == SILO_ERR_POLICY_DENIED)
		authz_audit_denial(q->s->m, q->actor, NULL, "create", &err);
	if (rc < 0)
		return send_error(q, c, &err);
	json_t *out;
	if (manager_get_json(q->s->m, id, &out, &err) < 0)
		return send_error(q, c, &err);
	return send_json(c, 201, out);
}

static enum MHD_Result h_list(req *q, struct MHD_Connection *c)
{
	mgr_list_filter f = {
		.state = query(c, "state"),
		.provider = query(c, "provider"),
		.name_prefix = query(c, "name"),
	};
	const char *meta = query(c, "metadata");
	char key[257];
	if (meta) {
		const char *eq = strchr(meta, '=');
		if (!eq || eq == meta || (size_t)(eq - meta) >= sizeof key)
			return fail(q, c, 400, SILO_ERR_INVALID_CONFIG,
				    "query parameter metadata: expected KEY=VALUE, got '%.64s'", meta);
		memcpy(key, meta, (size_t)(eq - meta));
		key[eq - meta] = '\0';
		f.meta_key = key;
		f.meta_value = eq + 1;
	}
	json_t *a;
	silo_error err;
	if (authz_op(q->s->authz, q->s->m, q->tok, q->actor, TOKEN_OP_LIST, &err) < 0 ||
	    manager_list_json(q->s->m, &f, &a, &err) < 0)
		return send_error(q, c, &err);
	/* A scoped token sees only the sandboxes in its scope. */
	for (size_t i = json_array_size(a); q->tok && i-- > 0;)
		if (authz_view(q->s->authz, q->s->m, q->tok, NULL, TOKEN_OP_LIST, json_array_get(a, i), &err) < 0)
			json_array_remove(a, i);
	return send_json(c, 200, json_pack("{s:o}", "sandboxes", a));
}

static enum MHD_Result h_get(req *q, struct MHD_Connection *c, const char *id)
{
	json_t *o;
	silo_error err;
	if (manager_get_json(q->s->m, id, &o, &err) < 0)
		return send_error(q, c, &err);
	if (authz_view(q->s->authz, q->s->m, q->tok, q->actor, TOKEN_OP_INSPECT, o, &err) < 0) {
		json_decref(o);
		return send_error(q, c, &err);
	}
	return send_json(c, 200, o);
}

static enum MHD_Result h_delete(req *q, struct MHD_Connection *c, const char *id)
{
	uint64_t grace = UINT64_MAX;
	enum MHD_Result ret;
	if (!query_u64(q, c, "grace_ms", 600000, &grace, &ret))
		return ret;
	char rid[SILO_ID_MAX];
	silo_error err;
	if (authz_sandbox(q->s->authz, q->s->m, q->tok, q->actor, TOKEN_OP_DELETE, id, NULL, NULL, rid, &err) < 0)
		return send_error(q, c, &err);
	int rc = manager_delete(q->s->m, rid, q->actor, grace == UINT64_MAX ? -1 : (int)grace, &err);
	if (rc < 0 && err.code != SILO_ERR_CLEANUP_FAILED)
		return send_error(q, c, &err);
	json_t *o;
	silo_error e2;
	if (manager_get_json(q->s->m, rid, &o, &e2) < 0)
		o = json_pack("{s:s,s:s}", "id", rid, "state", "terminated");
	if (rc < 0) {
		/* Terminated but not clean: an error with the residue, plus the CleanupVerification. */
		manager_note_error(q->s->m, &err);
		json_t *b = error_body(&err);
		json_t *cv = json_object_get(o, "cleanup");
		if (cv)
			json_object_set(b, "cleanup", cv);
		json_decref(o);
		return send_json(c, api_http_status(err.code), b);
	}
	return send_json(c, 200, o);
}

static enum MHD_Result h_logs(req *q, struct MHD_Connection *c, const char *id)
{
	uint64_t tail = 64 * 1024;
	enum MHD_Result ret;
	if (!query_u64(q, c, "tail", 16u << 20, &tail, &ret))
		return ret;
	json_t *o;
	silo_error err;
	if (q->tok) {
		if (manager_get_json(q->s->m, id, &o, &err) < 0)
			return send_error(q, c, &err);
		int rc = authz_view(q->s->authz, q->s->m, q->tok, q->actor, TOKEN_OP_INSPECT, o, &err);
		json_decref(o);
		if (rc < 0)
			return send_error(q, c, &err);
	}
	if (manager_logs_json(q->s->m, id, tail, &o, &err) < 0)
		return send_error(q, c, &err);
	return send_json(c, 200, o);
}

/* ---- exec (streaming NDJSON) ----
 * Nothing is dropped and memory stays bounded: a waiter thread takes output
 * from the channel (manager_exec_read) only while this stream holds less than
 * STREAM_QUEUE_MAX of unsent lines, and MHD sends lines as the client's socket
 * takes them. A slow client slows the process down, one that stops reading
 * stops it (blocked in write(2) once the channel's window is full), per task
 * (docs/protocol.md "Flow control"). Once the process has exited, what the
 * channel still holds (at most the window) is moved here and the sandbox is
 * released at once, so a stalled client never holds up a delete (which
 * discards the output of running tasks and kills them). */

#define STREAM_QUEUE_MAX (256u * 1024u)   /* unsent NDJSON per stream, beyond the channel's window */
#define EXEC_READ_CHUNK (64u * 1024u)     /* output per NDJSON line */

typedef struct chunk {
	struct chunk *next;
	size_t len, off;
	char data[];
} chunk;

typedef struct exec_stream {
	api_server *s;
	manager *m;
	mgr_exec *x;                /* owned by the waiter; NULL once released */
	int fd;                     /* client socket, for disconnect detection */
	pthread_mutex_t lock;
	pthread_cond_t cond;        /* a line queued, a line sent, closing */
	chunk *head, *tail;
	size_t queued;
	bool done;                  /* exit line queued */
	bool closing;               /* client gone or silod stopping: the waiter kills the task */
	bool waiter_started;
	pthread_t waiter;
	api_exec_body body;
	exec_req rq;
	uint8_t buf[EXEC_READ_CHUNK];
} exec_stream;

static void push_chunk(exec_stream *st, chunk *ch)
{
	ch->off = 0;
	ch->next = NULL;
	if (st->tail)
		st->tail->next = ch;
	else
		st->head = ch;
	st->tail = ch;
	st->queued += ch->len;
	pthread_cond_broadcast(&st->cond);
}

/* {"stream":"stdout","data":"<base64>"}\n without building it twice. */
static chunk *output_line(int stream, const uint8_t *buf, size_t len)
{
	const char *pre = stream == 2 ? "{\"stream\":\"stderr\",\"data\":\"" : "{\"stream\":\"stdout\",\"data\":\"";
	size_t pl = strlen(pre), bl = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
	chunk *ch = xmalloc(sizeof *ch + pl + bl + 3);
	memcpy(ch->data, pre, pl);
	sodium_bin2base64(ch->data + pl, bl, buf, len, sodium_base64_VARIANT_ORIGINAL);
	size_t n = pl + bl - 1;   /* bl counts the NUL */
	memcpy(ch->data + n, "\"}\n", 3);
	ch->len = n + 3;
	return ch;
}

static chunk *json_line(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	size_t len = strlen(s);
	chunk *ch = xmalloc(sizeof *ch + len + 1);
	memcpy(ch->data, s, len);
	ch->data[len] = '\n';
	ch->len = len + 1;
	free(s);
	return ch;
}

/* Queue an output line once the client has room for it; an exited task's last
 * window goes in regardless. false: the stream is closing. */
static bool queue_output(exec_stream *st, chunk *ch)
{
	pthread_mutex_lock(&st->lock);
	while (!st->closing && st->queued >= STREAM_QUEUE_MAX && !manager_exec_ended(st->x)) {
		struct timespec ts;
		deadline_in(&ts, 200);
		pthread_cond_timedwait(&st->cond, &st->lock, &ts);
	}
	bool ok = !st->closing;
	if (ok)
		push_chunk(st, ch);
	pthread_mutex_unlock(&st->lock);
	if (!ok)
		free(ch);
	return ok;
}

static void *exec_waiter(void *arg)
{
	exec_stream *st = arg;
	silo_error err = {0};
	int rc = 0;
	for (;;) {
		int stream;
		ssize_t n = manager_exec_read(st->x, &stream, st->buf, sizeof st->buf, 200, &err);
		if (n > 0) {
			if (!queue_output(st, output_line(stream, st->buf, (size_t)n)))
				break;
			continue;
		}
		if (n == 0)
			break;
		if (err.code != SILO_ERR_TIMEOUT) {
			rc = -1;
			break;
		}
		pthread_mutex_lock(&st->lock);
		bool closing = st->closing |= atomic_load(&st->s->stopping);
		pthread_mutex_unlock(&st->lock);
		if (closing)
			break;
	}
	pthread_mutex_lock(&st->lock);
	bool closing = st->closing;
	pthread_mutex_unlock(&st->lock);
	json_t *o = NULL;
	exec_result res = {0};
	if (!closing && rc == 0)
		rc = manager_exec_wait(st->x, -1, &res, &err);
	if (closing) {
		/* nobody is listening: manager_exec_free drops the output and kills the task */
	} else if (rc == 0) {
		o = json_pack("{s:i,s:i,s:b,s:I}", "exit_code", res.exit_code, "signal", res.signal, "timed_out",
			      res.timed_out, "duration_ms", (json_int_t)res.duration_ms);
	} else {
		manager_note_error(st->m, &err);
		o = error_body(&err);
	}
	/* Release the sandbox before the client has read everything. */
	manager_exec_free(st->x);
	pthread_mutex_lock(&st->lock);
	st->x = NULL;
	if (o)
		push_chunk(st, json_line(o));
	st->done = true;
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);
	return NULL;
}

static ssize_t exec_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	exec_stream *st = cls;
	pthread_mutex_lock(&st->lock);
	for (;;) {
		if (st->head) {
			chunk *ch = st->head;
			size_t n = MIN(max, ch->len - ch->off);
			memcpy(buf, ch->data + ch->off, n);
			ch->off += n;
			if (ch->off == ch->len) {
				st->head = ch->next;
				if (!st->head)
					st->tail = NULL;
				st->queued -= ch->len;
				free(ch);
				pthread_cond_broadcast(&st->cond);   /* room for the waiter */
			}
			pthread_mutex_unlock(&st->lock);
			return (ssize_t)n;
		}
		if (st->done) {
			pthread_mutex_unlock(&st->lock);
			return MHD_CONTENT_READER_END_OF_STREAM;
		}
		if (atomic_load(&st->s->stopping) || peer_gone(st->fd)) {
			pthread_mutex_unlock(&st->lock);
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		struct timespec ts;
		deadline_in(&ts, 200);
		pthread_cond_timedwait(&st->cond, &st->lock, &ts);
	}
}

static void exec_stream_free(void *cls)
{
	exec_stream *st = cls;
	if (st->waiter_started) {
		/* Client gone or stream finished: the waiter kills the process if it
		 * still runs and releases the exec. */
		pthread_mutex_lock(&st->lock);
		st->closing = !st->done;
		pthread_cond_broadcast(&st->cond);
		pthread_mutex_unlock(&st->lock);
		pthread_join(st->waiter, NULL);
	} else {
		manager_exec_free(st->x);   /* kills it if it was started */
	}
	while (st->head) {
		chunk *ch = st->head;
		st->head = ch->next;
		free(ch);
	}
	api_exec_body_free(&st->body);
	pthread_mutex_destroy(&st->lock);
	pthread_cond_destroy(&st->cond);
	free(st);
}

static enum MHD_Result h_exec(req *q, struct MHD_Connection *c, const char *id)
{
	if (!content_type_is(c, "application/json"))
		return fail(q, c, 415, SILO_ERR_INVALID_CONFIG, "Content-Type: expected application/json");
	exec_stream *st = xcalloc(1, sizeof *st);
	st->s = q->s;
	st->m = q->s->m;
	st->fd = conn_fd(c);
	pthread_mutex_init(&st->lock, NULL);
	cond_init_mono(&st->cond);
	silo_error err = {0};
	if (api_exec_parse(q->body ? q->body : "", q->len, &st->body, &err) < 0)
		goto fail;
	st->rq = (exec_req){
		.argv = st->body.argv,
		.env = st->body.env,
		.cwd = st->body.cwd,
		.stdin_data = st->body.stdin_buf,
		.stdin_len = st->body.stdin_len,
		.timeout_ms = st->body.timeout_ms,
		.uid = st->body.uid,
		.gid = st->body.gid,
	};
	char rid[SILO_ID_MAX];
	if (authz_sandbox(q->s->authz, q->s->m, q->tok, q->actor, TOKEN_OP_EXEC, id, st->body.cwd, st->body.argv, rid,
			  &err) < 0 ||
	    manager_exec_start(q->s->m, rid, &st->rq, NULL, NULL, q->actor, &st->x, &err) < 0)
		goto fail;
	if (pthread_create(&st->waiter, NULL, exec_waiter, st) != 0) {
		exec_stream_free(st);   /* kills the process */
		return fail(q, c, 500, SILO_ERR_INTERNAL, "cannot start an exec waiter thread");
	}
	st->waiter_started = true;
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, exec_reader, st,
								   exec_stream_free);
	MHD_add_response_header(r, "Content-Type", "application/x-ndjson");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	enum MHD_Result ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
fail:
	api_exec_body_free(&st->body);
	pthread_mutex_destroy(&st->lock);
	pthread_cond_destroy(&st->cond);
	free(st);
	return send_error(q, c, &err);
}

/* ---- files ---- */

static bool valid_guest_path(const char *p)
{
	return p && p[0] == '/' && strlen(p) < 4096;
}

static enum MHD_Result h_file_put(req *q, struct MHD_Connection *c, const char *id)
{
	const char *path = query(c, "path");
	if (!valid_guest_path(path))
		return fail(q, c, 400, SILO_ERR_INVALID_CONFIG, "query parameter path: expected an absolute path");
	uint64_t mode = 0644;
	enum MHD_Result ret;
	if (!query_u64(q, c, "mode", 07777, &mode, &ret))
		return ret;
	if (lseek(q->upload_fd, 0, SEEK_SET) < 0)
		return fail(q, c, 500, SILO_ERR_IO_ERROR, "rewind upload: %s", strerror(errno));
	char rid[SILO_ID_MAX];
	silo_error err;
	if (authz_sandbox(q->s->authz, q->s->m, q->tok, q->actor, TOKEN_OP_FILE_WRITE, id, path, NULL, rid, &err) < 0 ||
	    manager_file_put(q->s->m, rid, path, q->upload_fd, (uint32_t)mode, q->actor, &err) < 0)
		return send_error(q, c, &err);
	return send_json(c, 200, json_pack("{s:s,s:s,s:I}", "id", rid, "path", path, "size", (json_int_t)q->uploaded));
}

static enum MHD_Result h_file_get(req *q, struct MHD_Connection *c, const char *id)
{
	const char *path = query(c, "path");
	if (!valid_guest_path(path))
		return fail(q, c, 400, SILO_ERR_INVALID_CONFIG, "query parameter path: expected an absolute path");
	int fd = memfd_create("silod-download", MFD_CLOEXEC);
	if (fd < 0)
		return fail(q, c, 500, SILO_ERR_IO_ERROR, "memfd: %s", strerror(errno));
	char rid[SILO_ID_MAX];
	silo_error err;
	if (authz_sandbox(q->s->authz, q->s->m, q->tok, q->actor, TOKEN_OP_FILE_READ, id, path, NULL, rid, &err) < 0 ||
	    manager_file_get(q->s->m, rid, path, fd, q->s->cfg.max_upload, q->actor, &err) < 0) {
		close(fd);
		return send_error(q, c, &err);
	}
	struct stat stt;
	if (fstat(fd, &stt) < 0) {
		close(fd);
		return fail(q, c, 500, SILO_ERR_IO_ERROR, "fstat: %s", strerror(errno));
	}
	struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)stt.st_size, fd);   /* takes fd */
	MHD_add_response_header(r, "Content-Type", "application/octet-stream");
	enum MHD_Result ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---- events (server-sent events) ---- */

typedef struct ev_stream {
	api_server *s;
	int sub;
	int fd;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char *q[EVENT_QUEUE_MAX];
	size_t qh, qn;
	uint64_t dropped;
	char filter_id[SILO_ID_MAX];
	uint32_t type_mask;
	uint64_t limit, sent;
	char *cur;
	size_t cur_len, cur_off;
	bool greeted;
	uint64_t last_write_ms;
} ev_stream;

static void ev_cb(void *ud, const mgr_event *ev)
{
	ev_stream *st = ud;
	if (st->filter_id[0] && strcmp(st->filter_id, ev->sandbox_id) != 0)
		return;
	if (!(st->type_mask & (1u << ev->type)))
		return;
	json_t *o = mgr_event_json(ev);
	char *data = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	char *msg = xasprintf("id: %" PRIu64 "\nevent: %s\ndata: %s\n\n", ev->seq, mgr_event_name(ev->type), data);
	free(data);
	pthread_mutex_lock(&st->lock);
	if (st->qn == EVENT_QUEUE_MAX) {
		st->dropped++;
		free(msg);
	} else {
		st->q[(st->qh + st->qn) % EVENT_QUEUE_MAX] = msg;
		st->qn++;
		pthread_cond_signal(&st->cond);
	}
	pthread_mutex_unlock(&st->lock);
}

static ssize_t ev_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	ev_stream *st = cls;
	pthread_mutex_lock(&st->lock);
	for (;;) {
		if (st->cur) {
			size_t n = MIN(max, st->cur_len - st->cur_off);
			memcpy(buf, st->cur + st->cur_off, n);
			st->cur_off += n;
			if (st->cur_off == st->cur_len) {
				free(st->cur);
				st->cur = NULL;
			}
			st->last_write_ms = now_mono_ns() / 1000000;
			pthread_mutex_unlock(&st->lock);
			return (ssize_t)n;
		}
		if (st->limit && st->sent >= st->limit) {
			pthread_mutex_unlock(&st->lock);
			return MHD_CONTENT_READER_END_OF_STREAM;
		}
		if (!st->greeted) {
			st->greeted = true;
			st->cur = xstrdup(": silod event stream\n\n");
		} else if (st->dropped) {
			st->cur = xasprintf("event: overflow\ndata: {\"dropped\":%" PRIu64 "}\n\n", st->dropped);
			st->dropped = 0;
		} else if (st->qn) {
			st->cur = st->q[st->qh];
			st->qh = (st->qh + 1) % EVENT_QUEUE_MAX;
			st->qn--;
			st->sent++;
		} else if (now_mono_ns() / 1000000 - st->last_write_ms > 15000) {
			st->cur = xstrdup(": keepalive\n\n");
		}
		if (st->cur) {
			st->cur_len = strlen(st->cur);
			st->cur_off = 0;
			continue;
		}
		if (atomic_load(&st->s->stopping) || peer_gone(st->fd)) {
			pthread_mutex_unlock(&st->lock);
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		struct timespec ts;
		deadline_in(&ts, 200);
		pthread_cond_timedwait(&st->cond, &st->lock, &ts);
	}
}

static void ev_free(void *cls)
{
	ev_stream *st = cls;
	manager_unsubscribe(st->s->m, st->sub);   /* no callback runs after this returns */
	for (size_t i = 0; i < st->qn; i++)
		free(st->q[(st->qh + i) % EVENT_QUEUE_MAX]);
	free(st->cur);
	pthread_mutex_destroy(&st->lock);
	pthread_cond_destroy(&st->cond);
	free(st);
}

static enum MHD_Result h_events(req *q, struct MHD_Connection *c)
{
	ev_stream *st = xcalloc(1, sizeof *st);
	st->s = q->s;
	st->fd = conn_fd(c);
	st->type_mask = (1u << MGR_EV__COUNT) - 1;
	const char *sb = query(c, "sandbox");
	const char *types = query(c, "types");
	enum MHD_Result ret;
	if (!query_u64(q, c, "limit", 1000000, &st->limit, &ret)) {
		free(st);
		return ret;
	}
	silo_error err;
	if (authz_events(q->s->authz, q->s->m, q->tok, q->actor, sb, st->filter_id, &err) < 0) {
		free(st);
		return send_error(q, c, &err);
	}
	if (types) {
		st->type_mask = 0;
		char *dup = xstrdup(types), *save = NULL;
		for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			int found = -1;
			for (int i = 0; i < MGR_EV__COUNT; i++)
				if (!strcmp(t, mgr_event_name((mgr_event_type)i)))
					found = i;
			if (found < 0) {
				ret = fail(q, c, 400, SILO_ERR_INVALID_CONFIG,
					   "query parameter types: unknown event type '%.32s' (expected ready, spawned, "
					   "terminated, state-change, health-warning, security-violation, error)", t);
				free(dup);
				free(st);
				return ret;
			}
			st->type_mask |= 1u << found;
		}
		free(dup);
	}
	pthread_mutex_init(&st->lock, NULL);
	cond_init_mono(&st->cond);
	st->last_write_ms = now_mono_ns() / 1000000;
	st->sub = manager_subscribe(q->s->m, ev_cb, st);
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, ev_reader, st, ev_free);
	MHD_add_response_header(r, "Content-Type", "text/event-stream");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* Snapshot, fork, pause and resume routes live in api_snapshot.c. */
static const char *query_arg(void *ctx, const char *key)
{
	return query(ctx, key);
}

int api_normalize_spec(void *server, vm_spec *spec, silo_error *err)
{
	api_server *s = server;
	mgr_create_opts o = {.actor = "silod:pool"};
	return authz_create(s->authz, s->m, NULL, "silod:pool", spec, &o, err);
}

/* Sandboxes made from a snapshot pass the creation policy like any create. */
static int snapshot_create_check(void *ctx, const vm_spec *spec, silo_error *err)
{
	req *q = ctx;
	vm_spec copy;
	spec_copy(&copy, spec);
	mgr_create_opts o = {.actor = q->actor};
	int rc = authz_create(q->s->authz, q->s->m, q->tok, q->actor, &copy, &o, err);
	spec_free(&copy);
	return rc;
}

static enum MHD_Result snapshot_route(req *q, struct MHD_Connection *c, const char *method, const char *url)
{
	if (q->too_large)
		return fail(q, c, 413, SILO_ERR_INVALID_CONFIG, "request body larger than %zu bytes", q->limit);
	json_t *out = NULL;
	silo_error err = {0};
	if (q->tok) {
		/* scoped tokens have no snapshot operations (yet): a snapshot is a copy
		 * of everything in a sandbox, a restore or fork a create */
		err.code = SILO_ERR_POLICY_DENIED;
		snprintf(err.message, sizeof err.message,
			 "%s %.200s: snapshots, fork, pause and resume need a full-access token", method, url);
		authz_audit_denial(q->s->m, q->actor, NULL, "snapshot", &err);
		return send_error(q, c, &err);
	}
	unsigned st = api_snapshot_handle(q->s->m, method, url, q->body, q->len, query_arg, c, snapshot_create_check, q,
					  q->actor, &out, &err);
	if (st >= 400)
		return send_error_status(q, c, st, &err);
	return send_json(c, st, out);
}

/* ---- deployments (daemon/api_deploy.c) ---- */

static enum MHD_Result h_deploy(req *q, struct MHD_Connection *c)
{
	json_t *out = NULL;
	silo_error err = {0};
	if (q->tok) {
		/* scoped tokens have no deployment operations: a deployment creates
		 * sandboxes that outlive the request, on a team's budget */
		err.code = SILO_ERR_POLICY_DENIED;
		snprintf(err.message, sizeof err.message, "%s %.200s: deployments and usage need a full-access token",
			 q->method, q->url);
		authz_audit_denial(q->s->m, q->actor, NULL, "deploy", &err);
		return send_error(q, c, &err);
	}
	unsigned st = api_deploy_handle(q->s->cfg.deploy, q->method, q->url, q->body, q->len, query_arg, c,
					q->actor, &out, &err);
	if (out)
		return send_json(c, st, out);
	return send_error_status(q, c, st ? st : api_http_status(err.code), &err);
}

static enum MHD_Result h_bundle(req *q, struct MHD_Connection *c)
{
	json_t *out = NULL;
	silo_error err = {0};
	if (q->tok) {
		err.code = SILO_ERR_POLICY_DENIED;
		snprintf(err.message, sizeof err.message, "%s %.200s: bundles need a full-access token", q->method, q->url);
		authz_audit_denial(q->s->m, q->actor, NULL, "bundle", &err);
		return send_error(q, c, &err);
	}
	unsigned st = api_bundle_put(q->s->cfg.deploy, q->url, q->upload_fd, query_arg, c, q->actor, &out, &err);
	if (out)
		return send_json(c, st, out);
	return send_error_status(q, c, st ? st : api_http_status(err.code), &err);
}

/* ---- routing ---- */

typedef enum route_kind { R_EXACT, R_SANDBOX, R_SANDBOX_SUB } route_kind;

typedef struct route {
	const char *method;
	route_kind kind;
	const char *path;           /* exact path, or sub-resource name */
	enum MHD_Result (*fn0)(req *q, struct MHD_Connection *c);
	enum MHD_Result (*fn1)(req *q, struct MHD_Connection *c, const char *id);
	size_t body_max;            /* 0 = no body; SIZE_MAX = upload */
} route;

static const route routes[] = {
	{"GET", R_EXACT, "/v1/providers", h_providers, NULL, 0},
	{"GET", R_EXACT, "/v1/health", h_health, NULL, 0},
	{"GET", R_EXACT, "/metrics", h_metrics, NULL, 0},
	{"GET", R_EXACT, "/v1/events", h_events, NULL, 0},
	{"GET", R_EXACT, "/v1/sandboxes", h_list, NULL, 0},
	{"POST", R_EXACT, "/v1/sandboxes", h_create, NULL, 1},
	{"GET", R_SANDBOX, NULL, NULL, h_get, 0},
	{"DELETE", R_SANDBOX, NULL, NULL, h_delete, 0},
	{"POST", R_SANDBOX_SUB, "exec", NULL, h_exec, EXEC_BODY_MAX},
	{"PUT", R_SANDBOX_SUB, "files", NULL, h_file_put, SIZE_MAX},
	{"GET", R_SANDBOX_SUB, "files", NULL, h_file_get, 0},
	{"GET", R_SANDBOX_SUB, "logs", NULL, h_logs, 0},
};

/* Match url against the table. *path_ok says whether some route has this path
 * (for 405 vs 404). id receives the {id} segment. */
static const route *match(const char *method, const char *url, char id[SILO_ID_MAX * 2], bool *path_ok)
{
	*path_ok = false;
	if (api_bundle_path(url)) {
		static const route upload = {"PUT", R_EXACT, NULL, h_bundle, NULL, SIZE_MAX};
		*path_ok = true;
		return !strcmp(method, "PUT") ? &upload : NULL;
	}
	if (api_deploy_path(url)) {
		static const route with_body = {"POST", R_EXACT, NULL, h_deploy, NULL, 1};
		static const route no_body = {"*", R_EXACT, NULL, h_deploy, NULL, 0};
		*path_ok = true;
		return !strcmp(method, "POST") ? &with_body : &no_body;
	}
	const char *pre = "/v1/sandboxes/";
	const char *rest = NULL, *sub = NULL;
	size_t idlen = 0;
	if (!strncmp(url, pre, strlen(pre))) {
		rest = url + strlen(pre);
		const char *slash = strchr(rest, '/');
		idlen = slash ? (size_t)(slash - rest) : strlen(rest);
		sub = slash ? slash + 1 : NULL;
		if (idlen == 0 || idlen >= SILO_ID_MAX * 2 - 1)
			rest = NULL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
		const route *r = &routes[i];
		bool pm = false;
		if (r->kind == R_EXACT)
			pm = !strcmp(url, r->path);
		else if (rest && r->kind == R_SANDBOX)
			pm = sub == NULL;
		else if (rest && r->kind == R_SANDBOX_SUB)
			pm = sub && !strcmp(sub, r->path);
		if (!pm)
			continue;
		*path_ok = true;
		if (strcmp(r->method, method) != 0)
			continue;
		if (rest) {
			memcpy(id, rest, idlen);
			id[idlen] = '\0';
		}
		return r;
	}
	return NULL;
}

/* ---- rows of route_shim.c (temporary, until the arch-routes transport) ---- */

typedef struct stream_hold {
	api_stream st;
} stream_hold;

static ssize_t shim_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	stream_hold *h = cls;
	ssize_t n = h->st.read(h->st.ctx, buf, max);
	if (n == API_STREAM_END)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n < 0)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	return n;
}

static void shim_stream_free(void *cls)
{
	stream_hold *h = cls;
	if (h->st.free)
		h->st.free(h->st.ctx);
	free(h);
}

/* A WebSocket session: run() on the connection's thread once the 101 went
 * out; free() once, by whoever is last: the upgrade handler, or the
 * completion of a request whose 101 never went out. */
typedef struct upgrade_hold {
	api_upgrade u;
	pthread_mutex_t lock;
	int refs;
} upgrade_hold;

static void upgrade_put(upgrade_hold *h)
{
	pthread_mutex_lock(&h->lock);
	bool last = --h->refs == 0;
	pthread_mutex_unlock(&h->lock);
	if (!last)
		return;
	if (h->u.free)
		h->u.free(h->u.ctx);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

static void shim_upgraded(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra, size_t extra_len,
			  MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
	upgrade_hold *h = cls;
	h->u.run(h->u.ctx, sock, extra, extra_len);
	MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
	upgrade_put(h);
}

static enum MHD_Result shim_route(req *q, struct MHD_Connection *c, const char *method, const char *url)
{
	if (q->too_large)
		return fail(q, c, 413, SILO_ERR_INVALID_CONFIG, "request body larger than %zu bytes", q->limit);
	if (q->shim->body == API_BODY_NONE && q->uploaded)
		return fail(q, c, 400, SILO_ERR_INVALID_CONFIG, "%s %s takes no request body", method, url);
	if (q->upload_fd >= 0 && lseek(q->upload_fd, 0, SEEK_SET) < 0)
		return fail(q, c, 500, SILO_ERR_IO_ERROR, "rewind upload: %s", strerror(errno));
	api_req ar = {.ctx = &q->s->shim_ctx, .route = q->shim, .method = method, .path = url, .body = q->body ? q->body : "",
		      .len = q->len, .body_fd = q->upload_fd, .body_size = q->uploaded,
		      .content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type"),
		      .who = {.tcp = q->tcp, .tok = q->tok}, .peer_fd = conn_fd(c), .conn = c};
	snprintf(ar.who.actor, sizeof ar.who.actor, "%s", q->actor);
	ar.ncap = q->sm.ncap;
	for (unsigned i = 0; i < q->sm.ncap; i++) {
		ar.cap_name[i] = q->sm.name[i];
		ar.cap_value[i] = q->sm.val[i];
	}
	api_reply r;
	silo_error err = {0};
	if (shim_dispatch(&ar, &r, &err) < 0) {
		manager_note_error(q->s->m, &err);
		json_t *b = error_body(&err);
		if (r.json) {   /* members beside "error" */
			json_object_update(b, r.json);
			json_decref(r.json);
		}
		return send_json(c, api_http_status(err.code), b);
	}
	if (r.kind == API_REPLY_JSON)
		return send_json(c, r.status, r.json);
	if (r.kind == API_REPLY_UPGRADE) {
		upgrade_hold *h = xcalloc(1, sizeof *h);
		h->u = r.upgrade;
		pthread_mutex_init(&h->lock, NULL);
		h->refs = 2;   /* the upgrade handler's and the request's */
		q->up = h;
		struct MHD_Response *rs = MHD_create_response_for_upgrade(shim_upgraded, h);
		MHD_add_response_header(rs, MHD_HTTP_HEADER_UPGRADE, h->u.protocol);
		MHD_add_response_header(rs, "Sec-WebSocket-Accept", h->u.accept);
		enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_SWITCHING_PROTOCOLS, rs);
		MHD_destroy_response(rs);
		return ret;
	}
	stream_hold *h = xcalloc(1, sizeof *h);
	h->st = r.stream;
	struct MHD_Response *rs = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, r.stream.block ? r.stream.block : 65536,
								    shim_stream_read, h, shim_stream_free);
	MHD_add_response_header(rs, "Content-Type", r.kind == API_REPLY_TAR ? "application/x-tar" : "application/x-ndjson");
	MHD_add_response_header(rs, "Cache-Control", "no-store");
	enum MHD_Result ret = MHD_queue_response(c, 200, rs);
	MHD_destroy_response(rs);
	return ret;
}

static void set_actor(req *q, struct MHD_Connection *c)
{
	if (q->tcp) {
		snprintf(q->actor, sizeof q->actor, "token");
		return;
	}
	struct ucred cr;
	socklen_t l = sizeof cr;
	int fd = conn_fd(c);
	if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) == 0) {
		snprintf(q->actor, sizeof q->actor, "uid:%u", (unsigned)cr.uid);
		q->peer_pid = cr.pid;
	} else
		snprintf(q->actor, sizeof q->actor, "unix");
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			       const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
	listener *l = cls;
	api_server *s = l->s;
	req *q = *con_cls;
	bool tcp = l->tcp;
	if (!q) {
		q = xcalloc(1, sizeof *q);
		q->s = s;
		q->tcp = tcp;
		q->upload_fd = -1;
		*con_cls = q;
		set_actor(q, c);
		metrics_inc(manager_metrics(s->m), M_API_REQUESTS_TOTAL, 1);
		q->authorized = authz_authenticate(s->authz, q->tcp,
						   MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"), &q->tok);
		if (q->tok)
			snprintf(q->actor, sizeof q->actor, "token:%s", q->tok->name);
		if (q->tcp && q->authorized)
			conn_guard_authenticated(c);   /* out of reach of the header deadline */
		char id[SILO_ID_MAX * 2];
		bool path_ok;
		const route *r = match(method, url, id, &path_ok);
		bool shim_path = false;
		if (!r)
			q->shim = shim_find(method, url, &q->sm, &shim_path);
		if (q->shim) {
			q->limit = q->shim->body == API_BODY_SMALL  ? s->cfg.max_body
				   : q->shim->body == API_BODY_EXEC ? EXEC_BODY_MAX
				   : q->shim->body == API_BODY_FILE ? s->cfg.max_upload
								    : 0;
			if (q->shim->body == API_BODY_FILE && q->authorized) {
				q->upload = true;
				q->upload_fd = memfd_create("silod-upload", MFD_CLOEXEC);
				if (q->upload_fd < 0)
					q->too_large = true;
			}
			const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
			if (cl && q->authorized && strtoull(cl, NULL, 10) > q->limit)
				q->too_large = true;
			return MHD_YES;
		}
		if (r && r->body_max == SIZE_MAX && q->authorized) {
			q->upload = true;
			q->limit = s->cfg.max_upload;
			q->upload_fd = memfd_create("silod-upload", MFD_CLOEXEC);
			if (q->upload_fd < 0)
				q->too_large = true;
		} else {
			q->limit = r && r->body_max == 1 ? s->cfg.max_body : r ? r->body_max : 0;
		}
		if (!r && api_snapshot_owns(url))
			q->limit = s->cfg.max_body;
		/* Reject early when the declared length is already too big. */
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
		if (cl && q->authorized && strtoull(cl, NULL, 10) > q->limit && (r || api_snapshot_owns(url)))
			q->too_large = true;
		return MHD_YES;
	}
	if (*upload_size) {
		if (q->authorized && !q->too_large) {
			if (q->uploaded + *upload_size > q->limit) {
				q->too_large = true;
			} else if (q->upload) {
				if (write_all(q->upload_fd, upload_data, *upload_size) < 0)
					q->too_large = true;
			} else {
				if (q->len + *upload_size + 1 > q->cap) {
					q->cap = MAX(q->cap * 2, q->len + *upload_size + 1);
					q->body = xrealloc(q->body, q->cap);
				}
				memcpy(q->body + q->len, upload_data, *upload_size);
				q->len += *upload_size;
				q->body[q->len] = '\0';
			}
			q->uploaded += *upload_size;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (!q->authorized) {
		silo_error e = {.code = SILO_ERR_UNAUTHORIZED};
		snprintf(e.message, sizeof e.message, "missing or invalid bearer token (Authorization: Bearer ...)");
		manager_note_error(s->m, &e);
		json_t *body = error_body(&e);
		char *txt = json_dumps(body, JSON_COMPACT);
		json_decref(body);
		struct MHD_Response *r = MHD_create_response_from_buffer(strlen(txt), txt, MHD_RESPMEM_MUST_FREE);
		MHD_add_response_header(r, "Content-Type", "application/json");
		MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"silod\"");
		MHD_add_response_header(r, "Connection", "close");   /* one try per connection */
		enum MHD_Result ret = MHD_queue_response(c, 401, r);
		MHD_destroy_response(r);
		return ret;
	}
	if (q->shim)
		return shim_route(q, c, method, url);
	char id[SILO_ID_MAX * 2];
	bool path_ok, shim_path = false;
	const route *r = match(method, url, id, &path_ok);
	if (!r && api_snapshot_owns(url))
		return snapshot_route(q, c, method, url);
	if (!r) {
		shim_match sm;
		shim_find(method, url, &sm, &shim_path);
		path_ok |= shim_path;
		if (path_ok)
			return fail(q, c, 405, SILO_ERR_INVALID_CONFIG, "method %s is not allowed on %.200s", method, url);
		return fail(q, c, 404, SILO_ERR_INVALID_CONFIG, "no such endpoint: %s %.200s", method, url);
	}
	if (q->too_large)
		return fail(q, c, 413, SILO_ERR_INVALID_CONFIG, "request body larger than %zu bytes", q->limit);
	if (r->body_max == 0 && q->uploaded)
		return fail(q, c, 400, SILO_ERR_INVALID_CONFIG, "%s %s takes no request body", method, r->path ? r->path : url);
	q->method = method;
	q->url = url;
	if (r->kind == R_EXACT)
		return r->fn0(q, c);
	if (strlen(id) >= SILO_ID_MAX)
		return fail(q, c, 404, SILO_ERR_VM_NOT_FOUND, "no sandbox with id '%.64s...'", id);
	return r->fn1(q, c, id);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	req *q = *con_cls;
	if (!q)
		return;
	if (q->up) {
		upgrade_hold *h = q->up;
		if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
			pthread_mutex_lock(&h->lock);
			h->refs--;   /* the 101 never went out: the upgrade handler will not run */
			pthread_mutex_unlock(&h->lock);
		}
		upgrade_put(h);
	}
	if (q->upload_fd >= 0)
		close(q->upload_fd);
	if (q->body)
		explicit_bzero(q->body, q->len); /* a create body may carry inline secrets */
	free(q->body);
	free(q);
	*con_cls = NULL;
}

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
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
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "socket: %s", strerror(errno));
	/* A live daemon answers on it; a stale socket file is replaced. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
		close(fd);
		return silo_fail(err, SILO_ERR_CONFLICT, 0, "another silod is listening on %s", path);
	}
	close(fd);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "socket: %s", strerror(errno));
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (rc < 0 || chmod(path, mode) < 0 || listen(fd, 256) < 0) {
		int e = errno;
		close(fd);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "listen on %s: %s", path, strerror(e));
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

/* The TCP listener: its own threads and limits (the unix socket keeps being
 * served whatever happens here), a per-address cap, and the guard's header
 * deadline and unauthenticated cap (api_guard.h). */
static int start_tcp(api_server *s, unsigned flags, silo_error *err)
{
	struct sockaddr_in sa;
	if (parse_listen(s->cfg.listen, &sa, err) < 0)
		return -1;
	/* the guard enforces max_connections on live connections; libmicrohttpd's
	 * own limit leaves room for dropped ones winding down */
	conn_guard_config gc = {.header_timeout_s = s->cfg.header_timeout_s,
				.max_unauthenticated = s->cfg.max_connections / 2,
				.max_connections = s->cfg.max_connections};
	if (conn_guard_start(&gc, &s->guard, err) < 0)
		return -1;
	s->tcp_d = MHD_start_daemon(flags, ntohs(sa.sin_port), conn_guard_accept, s->guard, handler, &s->tcp_l,
				    MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
				    MHD_OPTION_NOTIFY_CONNECTION, conn_guard_notify, s->guard, MHD_OPTION_CONNECTION_LIMIT,
				    s->cfg.max_connections * 2, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
				    s->cfg.max_connections_per_ip, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
				    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, MHD_OPTION_END);
	if (!s->tcp_d)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "cannot listen on %s", s->cfg.listen);
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->tcp_d, MHD_DAEMON_INFO_BIND_PORT);
	s->tcp_port = di ? di->port : ntohs(sa.sin_port);
	return 0;
}

api_authz *api_server_authz(api_server *s)
{
	return s->authz;
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
	s->m = m;
	s->cfg = *cfg;
	s->unix_fd = -1;
	s->unix_l = (listener){s, false};
	s->tcp_l = (listener){s, true};
	if (!s->cfg.max_body)
		s->cfg.max_body = 1 << 20;
	if (!s->cfg.max_upload)
		s->cfg.max_upload = 256ull << 20;
	if (!s->cfg.max_connections)
		s->cfg.max_connections = TCP_MAX_CONNECTIONS;
	if (!s->cfg.max_connections_per_ip)
		s->cfg.max_connections_per_ip = TCP_MAX_PER_IP;
	s->socket_path = xstrdup(cfg->socket_path);
	s->cfg.socket_path = s->socket_path;
	s->cfg.token = NULL;
	authz_config azc = {.policy_file = cfg->policy_file, .tokens_file = cfg->tokens_file, .legacy_token = cfg->token,
			    .opa_url = cfg->opa_url, .opa_timeout_ms = cfg->opa_timeout_ms};
	if (authz_open(&azc, &s->authz, err) < 0)
		goto fail;
	s->shim_ctx = (api_ctx){.m = m, .authz = s->authz, .max_body = s->cfg.max_body, .max_upload = s->cfg.max_upload,
				.stopping = &s->stopping};
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
			 MHD_USE_ERROR_LOG | MHD_ALLOW_UPGRADE;
	s->unix_fd = bind_unix(cfg->socket_path, cfg->socket_mode ? cfg->socket_mode : 0600, err);
	if (s->unix_fd < 0)
		goto fail;
	s->unix_d = MHD_start_daemon(flags, 0, NULL, NULL, handler, &s->unix_l, MHD_OPTION_LISTEN_SOCKET, s->unix_fd,
				     MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_CONNECTION_LIMIT,
				     (unsigned)UNIX_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
				     MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, MHD_OPTION_END);
	if (!s->unix_d) {
		silo_fail(err, SILO_ERR_IO_ERROR, errno, "cannot start the HTTP server on %s", cfg->socket_path);
		goto fail;
	}
	s->unix_owned = true;   /* MHD closes the listen socket on stop */
	if (cfg->listen) {
		if (!authz_has_tokens(s->authz)) {
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
	authz_free(s->authz);
	free(s);
}
