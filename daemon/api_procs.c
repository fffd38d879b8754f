/* SPDX-License-Identifier: Apache-2.0
 * Processes over HTTP (handlers.h; the model is lib/core/proc.h, the routes
 * docs/openapi.yaml "Processes" and "Interactive sessions"):
 *   GET/POST .../procs, GET/DELETE .../procs/{proc}, POST .../signal,
 *   .../stdin, .../resize, GET .../wait, GET .../output (NDJSON, like exec),
 *   GET .../attach and GET .../session (WebSocket).
 * Every handler holds an operation slot on the sandbox (manager_op_begin) for
 * as long as it uses a process, so a delete waits for it; the delete closes
 * the process table first, which ends every read, wait and stdin write within
 * a slice. A token needs the exec operation for all of them (a PTY session
 * is an exec); the policy sees the working directory and argv of a start.
 *
 * WebSocket sessions: the client's binary messages are stdin, its text
 * messages JSON controls ({"resize": {"rows", "cols"}}, {"signal": "INT"},
 * {"eof": true}); the server's binary messages are output with a first byte
 * of 1 (stdout) or 2 (stderr), its text messages JSON: {"proc", "pid"} first,
 * then {"exit_code", "signal", "timed_out", "oom_killed", "duration_ms"} or {"error": ...}
 * last, then a close (1000). Two threads per session: this one reads the
 * socket into stdin, a second one moves output to the socket. Both directions
 * are flow-controlled: output is read from the process only as fast as the
 * socket takes it, and the socket is read only as fast as the process takes
 * its input (so a client that floods stdin waits in its own TCP window).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/util.h"
#include "common/ws.h"
#include "daemon/api_parse.h"
#include "daemon/handlers.h"

#define SLICE_MS 200
#define OUT_CHUNK (48u * 1024u)          /* output per NDJSON line or WebSocket message */
#define STDIN_TIMEOUT_MAX 600000
#define WAIT_TIMEOUT_MAX 3600000
#define FIRST_MESSAGE_MS 10000           /* a session's start request */

/* ---- shared ---- */

/* Authorize op on the sandbox of the route and take an operation slot. */
static int begin(api_req *q, token_op op, const char *path, char *const *argv, mgr_op **out, silo_error *err)
{
	char rid[SILO_ID_MAX];
	if (authz_sandbox(q->ctx->authz, q->ctx->m, q->who.tok, q->who.actor, op, api_cap(q, "id"), path, argv, rid,
			  err) < 0)
		return -1;
	return manager_op_begin(q->ctx->m, rid, out, err);
}

static json_t *result_json(const exec_result *r)
{
	return json_pack("{s:i,s:i,s:b,s:b,s:I}", "exit_code", r->signal ? 128 + r->signal : r->exit_code, "signal",
			 r->signal, "timed_out", r->timed_out, "oom_killed", r->oom_killed, "duration_ms",
			 (json_int_t)r->duration_ms);
}

static json_t *info_json(const char *sbid, const proc_info *i)
{
	char started[40];
	format_time_ms(i->started_ms, started, sizeof started);
	json_t *argv = json_array();
	for (char **a = i->argv; a && *a; a++)
		json_array_append_new(argv, json_string(*a));
	json_t *o = json_pack("{s:s,s:s,s:I,s:o,s:s,s:b,s:b,s:s,s:s,s:i,s:I,s:I}", "sandbox", sbid, "proc", i->id,
			      "pid", (json_int_t)i->pid, "argv", argv, "tag", i->tag, "pty", i->pty, "session", i->session,
			      "started_at", started, "state", i->exited ? "exited" : i->failed ? "lost" : "running",
			      "readers", (int)i->readers, "buffered_bytes", (json_int_t)i->buffered, "output_bytes",
			      (json_int_t)i->output_bytes);
	if (i->cwd)
		json_object_set_new(o, "cwd", json_string(i->cwd));
	if (i->exited)
		json_object_set_new(o, "exit", result_json(&i->res));
	return o;
}

static json_t *proc_json(mgr_op *op, proc *p)
{
	proc_info i;
	proc_info_of(p, &i);
	json_t *o = info_json(manager_op_id(op), &i);
	proc_info_free(&i);
	return o;
}

/* The sandbox's process of the route ({proc}): an operation slot and a reference. */
static int open_proc(api_req *q, mgr_op **op, proc **p, silo_error *err)
{
	if (begin(q, TOKEN_OP_EXEC, NULL, NULL, op, err) < 0)
		return -1;
	*p = proc_find(manager_op_procs(*op), api_cap(q, "proc"), err);
	if (!*p) {
		silo_error_set_vm(err, manager_op_id(*op));
		manager_op_end(*op);
		return -1;
	}
	return 0;
}

static void close_proc(mgr_op *op, proc *p)
{
	proc_put(p);
	manager_op_end(op);
}

static exec_req req_of(const api_exec_body *b)
{
	return (exec_req){
		.argv = b->argv,
		.env = b->env,
		.cwd = b->cwd,
		.stdin_data = b->stdin_buf,
		.stdin_len = b->stdin_len,
		.stdin_stream = b->stdin_open,
		.timeout_ms = b->timeout_ms,
		.uid = b->uid,
		.gid = b->gid,
		.pty = b->pty,
		.rows = b->rows,
		.cols = b->cols,
	};
}

/* Parse a start request, authorize it and start the process. */
static int start_proc(api_req *q, const char *body, size_t len, bool session, mgr_op **op, proc **p, silo_error *err)
{
	api_exec_body b;
	int rc = api_proc_parse(body, len, &b, err);
	if (rc == 0)
		rc = begin(q, TOKEN_OP_EXEC, b.cwd, b.argv, op, err);
	if (rc == 0) {
		exec_req rq = req_of(&b);
		proc_opts po = {.tag = b.tag, .session = session};
		rc = manager_proc_start(*op, &rq, &po, q->who.actor, p, err);
		if (rc < 0)
			manager_op_end(*op);
	}
	api_exec_body_free(&b);
	return rc;
}

/* ---- JSON routes ---- */

int h_procs_list(api_req *q, api_reply *r, silo_error *err)
{
	mgr_op *op;
	if (begin(q, TOKEN_OP_EXEC, NULL, NULL, &op, err) < 0)
		return -1;
	proc_info *v;
	size_t n;
	proc_list(manager_op_procs(op), &v, &n);
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, info_json(manager_op_id(op), &v[i]));
	proc_list_free(v, n);
	manager_op_end(op);
	return api_reply_json(r, 200, json_pack("{s:o}", "procs", a));
}

/* Reply with the process's view, then let go of it. */
static int reply_proc(api_reply *r, int status, mgr_op *op, proc *p)
{
	json_t *o = proc_json(op, p);
	close_proc(op, p);
	return api_reply_json(r, status, o);
}

int h_proc_start(api_req *q, api_reply *r, silo_error *err)
{
	mgr_op *op;
	proc *p;
	if (start_proc(q, q->body, q->len, false, &op, &p, err) < 0)
		return -1;
	return reply_proc(r, 201, op, p);
}

int h_proc_get(api_req *q, api_reply *r, silo_error *err)
{
	mgr_op *op;
	proc *p;
	if (open_proc(q, &op, &p, err) < 0)
		return -1;
	return reply_proc(r, 200, op, p);
}

int h_proc_delete(api_req *q, api_reply *r, silo_error *err)
{
	mgr_op *op;
	proc *p;
	if (open_proc(q, &op, &p, err) < 0)
		return -1;
	proc_remove(p);
	exec_result res;
	silo_error e;
	json_t *o = json_pack("{s:s,s:s,s:s}", "sandbox", manager_op_id(op), "proc", proc_id(p), "state", "removed");
	if (proc_wait(p, 5000, &res, &e) == 0)
		json_object_set_new(o, "exit", result_json(&res));
	manager_audit(q->ctx->m, q->who.actor, manager_op_id(op), "exec-remove", 0, o);
	close_proc(op, p);
	return api_reply_json(r, 200, o);
}


/* "signal": a name ("TERM", "SIGINT") or a number 1..64. */
static int signal_of(json_t *v, silo_error *err)
{
	int sig = json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= 64
			  ? (int)json_integer_value(v)
			  : proc_signal_number(json_string_value(v));
	if (!sig)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "signal: expected a name (TERM, INT, KILL, HUP, ...) or a number 1..64");
	return sig;
}

int h_proc_signal(api_req *q, api_reply *r, silo_error *err)
{
	static const char *const fields[] = {"signal", NULL};
	json_t *b = api_json_body(q->body, q->len, fields, false, err);
	if (!b)
		return -1;
	int sig = signal_of(json_object_get(b, "signal"), err);
	json_decref(b);
	mgr_op *op;
	proc *p;
	if (sig < 0 || open_proc(q, &op, &p, err) < 0)
		return -1;
	int rc = proc_signal(p, sig, err);
	if (rc == 0) {
		json_t *d = json_pack("{s:s,s:i}", "proc", proc_id(p), "signal", sig);
		manager_audit(q->ctx->m, q->who.actor, manager_op_id(op), "exec-signal", 0, d);
		json_decref(d);
	}
	json_t *o = rc == 0 ? json_pack("{s:s,s:s,s:i}", "sandbox", manager_op_id(op), "proc", proc_id(p), "signal", sig)
			    : NULL;
	close_proc(op, p);
	return rc < 0 ? -1 : api_reply_json(r, 200, o);
}

int h_proc_resize(api_req *q, api_reply *r, silo_error *err)
{
	static const char *const fields[] = {"rows", "cols", NULL};
	json_t *b = api_json_body(q->body, q->len, fields, false, err);
	if (!b)
		return -1;
	uint64_t rows = 0, cols = 0;
	int rc = 0;
	if (api_json_uint(b, "rows", 4096, &rows, err) < 1 || api_json_uint(b, "cols", 4096, &cols, err) < 1)
		rc = err && err->code ? -1 : silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "rows, cols: required, 1..4096");
	json_decref(b);
	mgr_op *op;
	proc *p;
	if (rc < 0 || open_proc(q, &op, &p, err) < 0)
		return -1;
	rc = proc_resize(p, (uint16_t)rows, (uint16_t)cols, err);
	close_proc(op, p);
	return rc < 0 ? -1
		      : api_reply_json(r, 200, json_pack("{s:s,s:I,s:I}", "proc", api_cap(q, "proc"), "rows",
							 (json_int_t)rows, "cols", (json_int_t)cols));
}

/* POST .../stdin: the body (raw bytes) into the process's stdin, ?eof=true
 * closes it after. While the process does not read, this waits up to
 * ?timeout_ms (default 30 s): then TIMEOUT, with "accepted" beside the error. */
int h_proc_stdin(api_req *q, api_reply *r, silo_error *err)
{
	uint64_t timeout = 30000;
	if (api_query_uint(q, "timeout_ms", STDIN_TIMEOUT_MAX, &timeout, err) < 0)
		return -1;
	bool eof = api_query_true(q, "eof");
	mgr_op *op;
	proc *p;
	if (open_proc(q, &op, &p, err) < 0)
		return -1;
	uint64_t t0 = now_mono_ns(), accepted = 0;
	uint8_t *buf = xmalloc(256 * 1024);
	int rc = 0;
	for (;;) {
		ssize_t n = q->body_fd >= 0 ? read(q->body_fd, buf, 256 * 1024) : 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "read the request body");
			break;
		}
		bool last = n == 0;
		if (last && !eof)
			break;
		uint64_t spent = (now_mono_ns() - t0) / 1000000ull;
		int left = spent >= timeout ? 0 : (int)(timeout - spent);
		size_t taken = 0;
		rc = proc_stdin(p, buf, (size_t)n, last, left, &taken, err);
		accepted += taken;
		if (rc < 0 || last)
			break;
	}
	free(buf);
	json_t *o = json_pack("{s:s,s:I,s:b}", "proc", proc_id(p), "accepted", (json_int_t)accepted, "eof", eof && rc == 0);
	close_proc(op, p);
	if (rc < 0) {
		r->json = json_pack("{s:I}", "accepted", (json_int_t)accepted);   /* beside "error" */
		json_decref(o);
		return -1;
	}
	return api_reply_json(r, 200, o);
}

/* GET .../wait: the exit status (?timeout_ms, default 30 s, up to an hour;
 * TIMEOUT while it runs). The output is not touched. */
int h_proc_wait(api_req *q, api_reply *r, silo_error *err)
{
	uint64_t timeout = 30000;
	if (api_query_uint(q, "timeout_ms", WAIT_TIMEOUT_MAX, &timeout, err) < 0)
		return -1;
	mgr_op *op;
	proc *p;
	if (open_proc(q, &op, &p, err) < 0)
		return -1;
	exec_result res;
	uint64_t deadline = now_mono_ns() + timeout * 1000000ull;
	int rc;
	for (;;) {   /* in slices: a server stop or a client gone ends it */
		uint64_t now = now_mono_ns();
		int ms = now >= deadline ? 0 : (int)MIN((deadline - now) / 1000000ull, (uint64_t)SLICE_MS);
		rc = proc_wait(p, ms, &res, err);
		if (rc == 0 || err->code != SILO_ERR_TIMEOUT || now_mono_ns() >= deadline)
			break;
		if (api_stream_cut(q->ctx, q->peer_fd)) {
			silo_fail(err, SILO_ERR_TIMEOUT, ETIMEDOUT, "wait: the client went away or silod is stopping");
			break;
		}
	}
	json_t *o = rc == 0 ? json_pack("{s:s,s:s,s:o}", "sandbox", manager_op_id(op), "proc", proc_id(p), "exit",
					result_json(&res))
			    : NULL;
	close_proc(op, p);
	return rc < 0 ? -1 : api_reply_json(r, 200, o);
}

/* ---- GET .../output: NDJSON, the lines of POST .../exec ---- */

typedef struct out_stream {
	const api_ctx *ctx;
	int fd;
	mgr_op *op;
	proc *p;
	proc_reader *rd;
	char *line;               /* the line being sent */
	size_t len, off;
	bool done;
	uint8_t buf[OUT_CHUNK];
} out_stream;

static char *output_line(int stream, const uint8_t *buf, size_t len, size_t *out_len)
{
	char *s = xmalloc(api_output_line_max(len));
	*out_len = api_output_line(s, stream, buf, len);
	return s;
}

static char *json_line(json_t *o, size_t *len)
{
	char *s = api_json_text(o, len);
	json_decref(o);
	return s;
}

static ssize_t out_read(void *cls, char *buf, size_t max)
{
	out_stream *st = cls;
	while (!st->line) {
		if (st->done)
			return API_STREAM_END;
		if (api_stream_cut(st->ctx, st->fd))
			return API_STREAM_ABORT;
		int stream;
		silo_error e = {0};
		ssize_t n = proc_read(st->rd, &stream, st->buf, sizeof st->buf, SLICE_MS, &e);
		if (n > 0) {
			st->line = output_line(stream, st->buf, (size_t)n, &st->len);
		} else if (n == 0 || e.code != SILO_ERR_TIMEOUT) {
			exec_result res;
			json_t *o;
			if (n == 0 && proc_wait(st->p, 5000, &res, &e) == 0)
				o = result_json(&res);
			else
				o = api_error_json(&e);
			st->line = json_line(o, &st->len);
			st->done = true;
		}
		st->off = 0;
	}
	size_t n = MIN(max, st->len - st->off);
	memcpy(buf, st->line + st->off, n);
	st->off += n;
	if (st->off == st->len) {
		free(st->line);
		st->line = NULL;
	}
	return (ssize_t)n;
}

static void out_free(void *cls)
{
	out_stream *st = cls;
	proc_detach(st->rd);
	close_proc(st->op, st->p);
	free(st->line);
	free(st);
}

int h_proc_output(api_req *q, api_reply *r, silo_error *err)
{
	mgr_op *op;
	proc *p;
	if (open_proc(q, &op, &p, err) < 0)
		return -1;
	out_stream *st = xcalloc(1, sizeof *st);
	st->ctx = q->ctx;
	st->fd = q->peer_fd;
	st->op = op;
	st->p = p;
	st->rd = proc_attach(p);
	return api_reply_stream(r, API_REPLY_NDJSON,
				&(api_stream){.read = out_read, .free = out_free, .ctx = st, .block = 64 * 1024});
}

/* ---- WebSocket sessions ---- */

typedef struct session {
	const api_ctx *ctx;
	api_req req;              /* copied for the start request of /session */
	char id[SILO_ID_MAX];     /* {id} of the route */
	char path[SILO_ID_MAX + 32];
	bool start;               /* /session: the first message starts a process */
	mgr_op *op;
	proc *p;
	proc_reader *rd;
	ws_conn *ws;
	int fd;
	atomic_bool over;         /* either side ended */
	pthread_t out_thread;
	bool out_started;
} session;

static ssize_t sock_read(void *ud, void *buf, size_t n)
{
	return recv(*(int *)ud, buf, n, MSG_DONTWAIT);
}

static ssize_t sock_write(void *ud, const void *buf, size_t n)
{
	return send(*(int *)ud, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Output of the process to the socket, then its status, then the close. */
static void *session_output(void *arg)
{
	session *s = arg;
	static __thread uint8_t buf[OUT_CHUNK];
	silo_error e = {0};
	int rc = 0;
	while (!atomic_load(&s->over) && !atomic_load(s->ctx->stopping)) {
		int stream;
		ssize_t n = proc_read(s->rd, &stream, buf, sizeof buf, SLICE_MS, &e);
		if (n > 0) {
			uint8_t tag = (uint8_t)stream;
			if (ws_send(s->ws, WS_BINARY, &tag, 1, buf, (size_t)n, &e) < 0) {
				rc = -1;
				break;
			}
			continue;
		}
		if (n < 0 && e.code == SILO_ERR_TIMEOUT)
			continue;
		exec_result res;
		if (n == 0 && proc_wait(s->p, 5000, &res, &e) == 0) {
			ws_send_json(s->ws, result_json(&res), NULL);
			ws_close(s->ws, WS_CLOSE_NORMAL, NULL);
		} else {
			ws_send_json(s->ws, api_error_json(&e), NULL);
			ws_close(s->ws, WS_CLOSE_ERROR, e.message);
		}
		break;
	}
	if (rc == 0 && atomic_load(s->ctx->stopping))
		ws_close(s->ws, WS_CLOSE_GOING_AWAY, "silod is stopping");
	atomic_store(&s->over, true);
	return NULL;
}

/* A control message from the client: {"resize": {...}}, {"signal": ...}, {"eof": true}. */
static int session_control(session *s, const uint8_t *d, size_t n, silo_error *err)
{
	json_error_t je;
	json_t *o = json_loadb((const char *)d, n, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(o)) {
		json_decref(o);
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "control message: expected a JSON object");
	}
	int rc = 0;
	json_t *rz = json_object_get(o, "resize"), *sg = json_object_get(o, "signal"), *eof = json_object_get(o, "eof");
	if (rz) {
		uint64_t rows = 0, cols = 0;
		if (!json_is_object(rz) || api_json_uint(rz, "rows", 4096, &rows, err) < 1 ||
		    api_json_uint(rz, "cols", 4096, &cols, err) < 1)
			rc = silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "resize: expected {\"rows\": 1..4096, \"cols\": 1..4096}");
		else
			rc = proc_resize(s->p, (uint16_t)rows, (uint16_t)cols, err);
	} else if (sg) {
		int sig = signal_of(sg, err);
		rc = sig < 0 ? -1 : proc_signal(s->p, sig, err);
	} else if (json_is_true(eof)) {
		rc = proc_stdin(s->p, NULL, 0, true, -1, NULL, err);
	} else {
		rc = silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "control message: expected resize, signal or eof");
	}
	json_decref(o);
	return rc;
}

/* Stdin: the whole message, in slices so the end of the session is noticed. */
static int session_stdin(session *s, const uint8_t *d, size_t n, silo_error *err)
{
	size_t off = 0;
	while (off < n && !atomic_load(&s->over)) {
		size_t k = 0;
		int rc = proc_stdin(s->p, d + off, n - off, false, SLICE_MS, &k, err);
		off += k;
		if (rc == 0)
			return 0;
		if (err->code != SILO_ERR_TIMEOUT)
			return -1;
	}
	return 0;
}

static int session_begin(session *s, silo_error *err)
{
	if (!s->start)
		return 0;
	int op;
	const uint8_t *d;
	size_t n;
	int r = ws_recv(s->ws, &op, &d, &n, FIRST_MESSAGE_MS, err);
	if (r == 0)
		return silo_fail(err, SILO_ERR_TIMEOUT, ETIMEDOUT, "session: no start request within %d ms", FIRST_MESSAGE_MS);
	if (r < 0)
		return -1;
	if (op != WS_TEXT)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "session: the first message must be the JSON start request");
	return start_proc(&s->req, (const char *)d, n, true, &s->op, &s->p, err);
}

static void session_run(void *cls, int fd, const void *extra, size_t extra_len)
{
	session *s = cls;
	s->fd = fd;
	ws_io io = {sock_read, sock_write, fd, &s->fd};
	s->ws = ws_conn_new(&io, false, extra, extra_len);
	silo_error err = {0};
	if (session_begin(s, &err) < 0) {
		ws_send_json(s->ws, api_error_json(&err), NULL);
		ws_close(s->ws, err.code == SILO_ERR_POLICY_DENIED ? WS_CLOSE_POLICY : WS_CLOSE_ERROR, err.message);
		return;
	}
	s->rd = proc_attach(s->p);
	proc_info i;
	proc_info_of(s->p, &i);
	ws_send_json(s->ws, json_pack("{s:s,s:s,s:I,s:b}", "sandbox", manager_op_id(s->op), "proc", i.id, "pid",
				   (json_int_t)i.pid, "pty", i.pty), NULL);
	proc_info_free(&i);
	if (pthread_create(&s->out_thread, NULL, session_output, s) != 0) {
		ws_close(s->ws, WS_CLOSE_ERROR, "cannot start the output thread");
		return;
	}
	s->out_started = true;
	while (!atomic_load(&s->over) && !atomic_load(s->ctx->stopping) && !manager_op_cancelled(s->op)) {
		int op;
		const uint8_t *d;
		size_t n;
		int r = ws_recv(s->ws, &op, &d, &n, SLICE_MS, &err);
		if (r == 0)
			continue;
		if (r < 0)
			break;   /* the client closed or went away: the session ends (a session process is killed) */
		int rc = op == WS_BINARY ? session_stdin(s, d, n, &err) : session_control(s, d, n, &err);
		if (rc < 0 && !(err.code == SILO_ERR_INVALID_CONFIG && err.sys_errno == ESRCH))
		{
			json_t *e = api_error_json(&err);   /* {"warning": {code, message}}: the session goes on */
			ws_send_json(s->ws, json_pack("{s:O}", "warning", json_object_get(e, "error")), NULL);
			json_decref(e);
		}
	}
	atomic_store(&s->over, true);
	pthread_join(s->out_thread, NULL);
	s->out_started = false;
	shutdown(fd, SHUT_RDWR);
}

static void session_free(void *cls)
{
	session *s = cls;
	if (s->out_started) {
		atomic_store(&s->over, true);
		pthread_join(s->out_thread, NULL);
	}
	if (s->rd)
		proc_detach(s->rd);   /* a session process dies with its last reader */
	if (s->p)
		proc_put(s->p);
	if (s->op)
		manager_op_end(s->op);
	ws_conn_free(s->ws);
	free(s);
}

/* The WebSocket handshake of a request (RFC 6455 section 4.2.1). */
static int ws_handshake(api_req *q, api_upgrade *u, silo_error *err)
{
	const char *up = api_header(q, "Upgrade"), *ver = api_header(q, "Sec-WebSocket-Version"),
		   *key = api_header(q, "Sec-WebSocket-Key");
	if (!up || strcasecmp(up, "websocket"))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "%s is a WebSocket endpoint: send Upgrade: websocket (docs/openapi.yaml, Interactive sessions)",
				 q->path);
	if (!ver || strcmp(ver, "13"))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "Sec-WebSocket-Version: expected 13");
	if (!ws_key_valid(key))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "Sec-WebSocket-Key: expected base64 of 16 bytes");
	u->protocol = "websocket";
	ws_accept(key, u->accept);
	u->run = session_run;
	u->free = session_free;
	return 0;
}

int h_proc_attach(api_req *q, api_reply *r, silo_error *err)
{
	api_upgrade u = {0};
	if (ws_handshake(q, &u, err) < 0)
		return -1;
	session *s = xcalloc(1, sizeof *s);
	s->ctx = q->ctx;
	if (open_proc(q, &s->op, &s->p, err) < 0) {
		free(s);
		return -1;
	}
	u.ctx = s;
	return api_reply_upgrade(r, &u);
}

int h_session(api_req *q, api_reply *r, silo_error *err)
{
	api_upgrade u = {0};
	if (ws_handshake(q, &u, err) < 0)
		return -1;
	/* the sandbox must exist and the caller may exec there before the upgrade */
	char rid[SILO_ID_MAX];
	if (authz_sandbox(q->ctx->authz, q->ctx->m, q->who.tok, q->who.actor, TOKEN_OP_EXEC, api_cap(q, "id"), NULL, NULL,
			  rid, err) < 0)
		return -1;
	session *s = xcalloc(1, sizeof *s);
	s->ctx = q->ctx;
	s->start = true;
	snprintf(s->id, sizeof s->id, "%s", rid);
	/* for the start request, after this request is gone: ctx, route, who
	 * (token, actor) and the sandbox */
	s->req = (api_req){.ctx = q->ctx, .route = q->route, .method = "GET", .path = s->path, .body = "",
			   .body_fd = -1, .ctype = -1, .who = q->who, .peer_fd = -1, .caps = {.n = 1, .name = {"id"}}};
	s->req.caps.value[0] = s->id;
	snprintf(s->path, sizeof s->path, "/v1/sandboxes/%s/session", rid);
	u.ctx = s;
	return api_reply_upgrade(r, &u);
}
