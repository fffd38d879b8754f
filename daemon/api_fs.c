/* SPDX-License-Identifier: Apache-2.0
 * Files beyond one file over HTTP (handlers.h, docs/openapi.yaml "Files"):
 * stat, list (with a depth), mkdir, move, remove, a watch (NDJSON events) and
 * tar archives out and in. Paths are guest paths, absolute, resolved by the
 * agent inside the sandbox (docs/security.md: the host never resolves them);
 * the policy checks each path a request names (both of a move) with the
 * file_read or file_write operation, as for the single-file API. An archive
 * out is file_read of its path, an archive in file_write of its destination;
 * the agent refuses entries that would land outside it (lib/archive).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "core/fsops.h"
#include "daemon/api_parse.h"
#include "daemon/handlers.h"
#include "wire.h"

#define SLICE_MS 200
#define LIST_LIMIT_DEFAULT 10000
#define LIST_LIMIT_MAX 100000
#define TAR_BLOCK (256 * 1024)
#define GUEST_PATH_MAX 4096    /* the agent's limit (WIRE_MAX_PATH) */

static int path_arg(const char *what, const char *p, silo_error *err)
{
	if (!p || p[0] != '/' || strlen(p) >= GUEST_PATH_MAX)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: expected an absolute path of at most %d bytes", what,
				 GUEST_PATH_MAX - 1);
	return 0;
}

/* Authorize op on path (and path2, a move's destination) and take an operation slot. */
static int begin(api_req *q, token_op op, const char *path, const char *path2, mgr_op **out, silo_error *err)
{
	char rid[SILO_ID_MAX];
	if (authz_sandbox(q->ctx->authz, q->ctx->m, q->who.tok, q->who.actor, op, api_cap(q, "id"), path, NULL, rid,
			  err) < 0)
		return -1;
	if (path2 && authz_sandbox(q->ctx->authz, q->ctx->m, q->who.tok, q->who.actor, op, rid, path2, NULL, rid, err) < 0)
		return -1;
	return manager_op_begin(q->ctx->m, rid, out, err);
}

/* The query's path, authorized as op on the route's sandbox, and an operation slot. */
static int begin_path(api_req *q, token_op op, const char **path, mgr_op **out, silo_error *err)
{
	*path = api_query(q, "path");
	return path_arg("query parameter path", *path, err) < 0 ? -1 : begin(q, op, *path, NULL, out, err);
}

/* A failure once the slot is taken: the error names the sandbox, the slot is released. */
static int fail_op(mgr_op *op, silo_error *err)
{
	silo_error_set_vm(err, manager_op_id(op));
	manager_op_end(op);
	return -1;
}

static const char *type_name(uint32_t mode)
{
	return S_ISREG(mode) ? "file" : S_ISDIR(mode) ? "dir" : S_ISLNK(mode) ? "symlink" : "other";
}

static json_t *stat_json(const char *name_key, const char *name, const file_stat *st, const char *link)
{
	char mtime[40], mode[8];
	format_time_ms((uint64_t)(st->mtime_s < 0 ? 0 : st->mtime_s) * 1000, mtime, sizeof mtime);
	snprintf(mode, sizeof mode, "%04o", st->mode & 07777);
	json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:I,s:s,s:I,s:I}", name_key, name, "type", type_name(st->mode), "size",
			      (json_int_t)st->size, "mode", mode, "mtime_s", (json_int_t)st->mtime_s, "mtime", mtime,
			      "uid", (json_int_t)st->uid, "gid", (json_int_t)st->gid);
	if (link)
		json_object_set_new(o, "link", json_string(link));
	return o;
}

static void audit_fs(api_req *q, mgr_op *op, const char *event, json_t *d, int rc, const silo_error *err)
{
	json_object_set_new(d, "ok", json_boolean(rc == 0));
	if (rc < 0 && err)
		json_object_set_new(d, "error", json_string(err->message));
	manager_audit(q->ctx->m, q->who.actor, manager_op_id(op), event, 0, d);
	json_decref(d);
}

int h_fs_stat(api_req *q, api_reply *r, silo_error *err)
{
	const char *path;
	mgr_op *op;
	if (begin_path(q, TOKEN_OP_FILE_READ, &path, &op, err) < 0)
		return -1;
	file_stat st;
	char *link = NULL;
	int rc = chan_stat_link(manager_op_chan(op), path, &st, &link, err);
	if (rc == 0 && !st.exists)
		rc = silo_fail(err, SILO_ERR_FILE_NOT_FOUND, ENOENT, "stat %.256s", path);
	if (rc < 0)
		silo_error_set_vm(err, manager_op_id(op));
	json_t *o = rc == 0 ? stat_json("path", path, &st, link) : NULL;
	free(link);
	manager_op_end(op);
	return rc < 0 ? -1 : api_reply_json(r, 200, o);
}

int h_fs_list(api_req *q, api_reply *r, silo_error *err)
{
	const char *path = api_query(q, "path");
	uint64_t depth = 1, limit = LIST_LIMIT_DEFAULT;
	mgr_op *op;
	if (path_arg("query parameter path", path, err) < 0 || api_query_uint(q, "depth", WIRE_MAX_LIST_DEPTH, &depth, err) < 0 ||
	    api_query_uint(q, "limit", LIST_LIMIT_MAX, &limit, err) < 0)
		return -1;
	if (!depth || !limit)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "query parameters depth and limit: at least 1");
	if (begin(q, TOKEN_OP_FILE_READ, path, NULL, &op, err) < 0)
		return -1;
	dir_entry *e;
	size_t n;
	bool trunc;
	list_opts lo = {.depth = (uint32_t)depth, .max = limit};
	int rc = chan_list_opts(manager_op_chan(op), path, &lo, &e, &n, &trunc, err);
	json_t *o = NULL;
	if (rc == 0) {
		json_t *a = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, stat_json("name", e[i].name, &e[i].st, e[i].link));
		dir_entries_free(e, n);
		o = json_pack("{s:s,s:o,s:b}", "path", path, "entries", a, "truncated", trunc);
	} else {
		silo_error_set_vm(err, manager_op_id(op));
	}
	manager_op_end(op);
	return rc < 0 ? -1 : api_reply_json(r, 200, o);
}


/* "mode": 493 or "0755" */
static int mode_of(json_t *o, uint32_t *mode, silo_error *err)
{
	json_t *v = json_object_get(o, "mode");
	if (!v)
		return 0;
	const char *s = json_string_value(v);
	char *end = NULL;
	long m = json_is_integer(v) ? (long)json_integer_value(v) : s ? strtol(s, &end, 8) : -1;
	if (m < 0 || m > 07777 || (s && (!*s || *end)))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "mode: expected permission bits, 0..07777 (\"0755\" or 493)");
	*mode = (uint32_t)m;
	return 0;
}

/* A mutation from a JSON body: the paths it names, parsed by parse(); each is
 * authorized as file_write, run() does it on the channel, it is audited. */
typedef struct mutation {
	const char *path, *to;    /* to: a move's destination */
	bool flag;                /* parents / overwrite / recursive */
	uint32_t mode;
} mutation;

static int fs_mutation(api_req *q, api_reply *r, silo_error *err, const char *event, const char *const *fields,
		       int (*parse)(json_t *b, mutation *m, silo_error *err), int (*run)(chan *c, const mutation *m, silo_error *err))
{
	json_t *b = api_json_body(q->body, q->len, fields, false, err);
	if (!b)
		return -1;
	mutation m = {.mode = 0755};
	mgr_op *op = NULL;
	int rc = parse(b, &m, err) < 0 || path_arg(m.to ? "from" : "path", m.path, err) < 0 ||
			 (m.to && path_arg("to", m.to, err) < 0) || begin(q, TOKEN_OP_FILE_WRITE, m.path, m.to, &op, err) < 0
		 ? -1
		 : 0;
	if (rc == 0) {
		rc = run(manager_op_chan(op), &m, err);
		json_t *d = m.to ? json_pack("{s:s,s:s}", "from", m.path, "to", m.to) : json_pack("{s:s}", "path", m.path);
		audit_fs(q, op, event, d, rc, err);
	}
	json_t *o = NULL;
	if (rc == 0) {
		o = json_pack("{s:s,s:s}", "sandbox", manager_op_id(op), m.to ? "from" : "path", m.path);
		if (m.to)
			json_object_set_new(o, "to", json_string(m.to));
	} else if (op) {
		silo_error_set_vm(err, manager_op_id(op));
	}
	manager_op_end(op);
	json_decref(b);
	return rc < 0 ? -1 : api_reply_json(r, 200, o);
}

static int parse_mkdir(json_t *b, mutation *m, silo_error *err)
{
	return api_json_str(b, "path", 4096, &m->path, err) < 0 || api_json_bool(b, "parents", &m->flag, err) < 0 ||
			       mode_of(b, &m->mode, err) < 0
		       ? -1
		       : 0;
}

static int run_mkdir(chan *c, const mutation *m, silo_error *err)
{
	return chan_mkdir(c, m->path, m->mode, m->flag, err);
}

int h_fs_mkdir(api_req *q, api_reply *r, silo_error *err)
{
	static const char *const fields[] = {"path", "parents", "mode", NULL};
	return fs_mutation(q, r, err, "fs-mkdir", fields, parse_mkdir, run_mkdir);
}

static int parse_move(json_t *b, mutation *m, silo_error *err)
{
	m->flag = true;   /* overwrite */
	if (api_json_str(b, "from", 4096, &m->path, err) < 0 || api_json_str(b, "to", 4096, &m->to, err) < 0 ||
	    api_json_bool(b, "overwrite", &m->flag, err) < 0)
		return -1;
	if (!m->to)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "to: expected an absolute path");
	return 0;
}

static int run_move(chan *c, const mutation *m, silo_error *err)
{
	return chan_rename(c, m->path, m->to, !m->flag, err);
}

int h_fs_move(api_req *q, api_reply *r, silo_error *err)
{
	static const char *const fields[] = {"from", "to", "overwrite", NULL};
	return fs_mutation(q, r, err, "fs-move", fields, parse_move, run_move);
}

static int parse_remove(json_t *b, mutation *m, silo_error *err)
{
	return api_json_str(b, "path", 4096, &m->path, err) < 0 || api_json_bool(b, "recursive", &m->flag, err) < 0 ? -1 : 0;
}

static int run_remove(chan *c, const mutation *m, silo_error *err)
{
	return chan_remove(c, m->path, m->flag, err);
}

int h_fs_remove(api_req *q, api_reply *r, silo_error *err)
{
	static const char *const fields[] = {"path", "recursive", NULL};
	return fs_mutation(q, r, err, "fs-remove", fields, parse_remove, run_remove);
}

/* ---- GET .../fs/watch: NDJSON events ----
 * {"event": "create"|"write"|"remove"|"rename"|"chmod", "name": "rel/path"},
 * {"event": "overflow", "lost": N} when events were dropped (list again),
 * {"event": "end"} when the directory went away; a heartbeat line
 * {"event": "ping"} every 15 s keeps proxies from closing an idle stream. */

static const char *const ev_names[] = {"?", "create", "write", "remove", "rename", "chmod"};

typedef struct watch_stream {
	const api_ctx *ctx;
	int fd;
	mgr_op *op;
	uint32_t w;
	char *text;               /* lines ready to send */
	size_t len, off;
	bool done;
	uint64_t last_ms;
} watch_stream;

static void add_line(watch_stream *st, json_t *o)
{
	size_t n;
	char *s = api_json_text(o, &n);   /* with its newline */
	json_decref(o);
	st->text = xrealloc(st->text, st->len + n);
	memcpy(st->text + st->len, s, n);
	st->len += n;
	free(s);
}

static ssize_t watch_read(void *cls, char *buf, size_t max)
{
	watch_stream *st = cls;
	while (st->off == st->len) {
		free(st->text);
		st->text = NULL;
		st->len = st->off = 0;
		if (st->done)
			return API_STREAM_END;
		if (api_stream_cut(st->ctx, st->fd) || manager_op_cancelled(st->op))
			return API_STREAM_ABORT;
		watch_event *ev;
		size_t n;
		uint64_t lost;
		silo_error e = {0};
		int rc = chan_watch_read(manager_op_chan(st->op), st->w, &ev, &n, &lost, SLICE_MS, &e);
		for (size_t i = 0; i < n; i++)
			add_line(st, json_pack("{s:s,s:s}", "event", ev[i].kind >= 1 && ev[i].kind <= 5 ? ev_names[ev[i].kind] : "?",
					       "name", ev[i].name));
		watch_events_free(ev, n);
		if (lost)
			add_line(st, json_pack("{s:s,s:I}", "event", "overflow", "lost", (json_int_t)lost));
		if (rc != 0) {
			json_t *o = rc > 0 ? json_object() : api_error_json(&e);
			json_object_set_new(o, "event", json_string(rc > 0 ? "end" : "error"));
			add_line(st, o);
			st->done = true;
		}
		uint64_t now = now_mono_ns() / 1000000ull;
		if (st->len)
			st->last_ms = now;
		else if (now - st->last_ms >= 15000) {
			add_line(st, json_pack("{s:s}", "event", "ping"));
			st->last_ms = now;
		}
	}
	size_t n = MIN(max, st->len - st->off);
	memcpy(buf, st->text + st->off, n);
	st->off += n;
	return (ssize_t)n;
}

static void watch_free(void *cls)
{
	watch_stream *st = cls;
	chan_watch_stop(manager_op_chan(st->op), st->w);
	manager_op_end(st->op);
	free(st->text);
	free(st);
}

int h_fs_watch(api_req *q, api_reply *r, silo_error *err)
{
	const char *path;
	mgr_op *op;
	if (begin_path(q, TOKEN_OP_FILE_READ, &path, &op, err) < 0)
		return -1;
	uint32_t w;
	bool recursive = api_query_true(q, "recursive");
	if (chan_watch_start(manager_op_chan(op), path, recursive, &w, err) < 0)
		return fail_op(op, err);
	json_t *d = json_pack("{s:s,s:b}", "path", path, "recursive", recursive);
	manager_audit(q->ctx->m, q->who.actor, manager_op_id(op), "fs-watch", 0, d);
	json_decref(d);
	watch_stream *st = xcalloc(1, sizeof *st);
	st->ctx = q->ctx;
	st->fd = q->peer_fd;
	st->op = op;
	st->w = w;
	st->last_ms = now_mono_ns() / 1000000ull;
	return api_reply_stream(r, API_REPLY_NDJSON,
				&(api_stream){.read = watch_read, .free = watch_free, .ctx = st, .block = 16 * 1024});
}

/* ---- archives ---- */

typedef struct tar_stream {
	const api_ctx *ctx;
	int fd;
	mgr_op *op;
	uint32_t task;
	fs_tar_errtext et;
	bool done, finished;
	uint64_t bytes, t0;
	char path[4096];
	char actor[API_ACTOR_MAX];
} tar_stream;

/* The archive as the agent writes it; a failure after the first byte cuts the
 * connection (a client never takes a partial archive for a whole one). */
static ssize_t tar_read(void *cls, char *buf, size_t max)
{
	tar_stream *st = cls;
	for (;;) {
		if (st->done)
			return API_STREAM_END;
		if (api_stream_cut(st->ctx, st->fd) || manager_op_cancelled(st->op))
			return API_STREAM_ABORT;
		int stream;
		silo_error e = {0};
		ssize_t n = chan_exec_read(manager_op_chan(st->op), st->task, &stream, buf, max, SLICE_MS, &e);
		if (n > 0 && stream == 2) {
			fs_tar_errtext_add(&st->et, buf, (size_t)n);
			continue;
		}
		if (n > 0) {
			st->bytes += (uint64_t)n;
			return n;
		}
		if (n < 0 && e.code == SILO_ERR_TIMEOUT)
			continue;
		char what[300];
		snprintf(what, sizeof what, "archive of %.256s", st->path);
		int rc = n == 0 ? fs_tar_finish(manager_op_chan(st->op), st->task, &st->et, what, &e) : -1;
		st->finished = true;
		json_t *d = json_pack("{s:s,s:I,s:b}", "path", st->path, "bytes", (json_int_t)st->bytes, "ok", rc == 0);
		if (rc < 0)
			json_object_set_new(d, "error", json_string(e.message));
		manager_audit(st->ctx->m, st->actor, manager_op_id(st->op), "archive-get",
			      (now_mono_ns() - st->t0) / 1000000ull, d);
		json_decref(d);
		if (rc < 0) {
			log_warn("%s: %s", manager_op_id(st->op), e.message);
			return API_STREAM_ABORT;
		}
		st->done = true;
	}
}

static void tar_free(void *cls)
{
	tar_stream *st = cls;
	if (!st->finished)   /* the client went away: stop the agent's child */
		fs_tar_abandon(manager_op_chan(st->op), st->task);
	manager_op_end(st->op);
	free(st);
}

int h_archive_get(api_req *q, api_reply *r, silo_error *err)
{
	const char *path;
	mgr_op *op;
	if (begin_path(q, TOKEN_OP_FILE_READ, &path, &op, err) < 0)
		return -1;
	uint32_t task;
	chan *c = manager_op_chan(op);
	if (chan_tar_out_start(c, path, FS_TAR_WINDOW, &task, err) < 0)
		return fail_op(op, err);
	if (chan_exec_started(c, task, 30000, NULL, err) < 0) {   /* a missing path: 404 before any byte */
		silo_error e;
		chan_exec_wait(c, task, 5000, NULL, &e);
		return fail_op(op, err);
	}
	tar_stream *st = xcalloc(1, sizeof *st);
	st->ctx = q->ctx;
	st->fd = q->peer_fd;
	st->op = op;
	st->task = task;
	st->t0 = now_mono_ns();
	snprintf(st->path, sizeof st->path, "%s", path);
	snprintf(st->actor, sizeof st->actor, "%s", q->who.actor);
	return api_reply_stream(r, API_REPLY_TAR, &(api_stream){.read = tar_read, .free = tar_free, .ctx = st,
								 .block = TAR_BLOCK});
}

static bool op_cancelled(void *ud)
{
	return manager_op_cancelled(ud);
}

int h_archive_put(api_req *q, api_reply *r, silo_error *err)
{
	const char *path;
	mgr_op *op;
	if (begin_path(q, TOKEN_OP_FILE_WRITE, &path, &op, err) < 0)
		return -1;
	uint64_t bytes = 0;
	int rc = q->body_fd < 0 ? silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "body: expected a tar archive")
				: fs_archive_put_fd(manager_op_chan(op), path, q->body_fd, op_cancelled, op, &bytes, err);
	json_t *d = json_pack("{s:s,s:I}", "path", path, "bytes", (json_int_t)bytes);
	audit_fs(q, op, "archive-put", json_incref(d), rc, err);
	json_t *o = rc == 0 ? json_pack("{s:s,s:s,s:I}", "sandbox", manager_op_id(op), "path", path, "bytes",
					(json_int_t)bytes)
			    : NULL;
	json_decref(d);
	if (rc < 0)
		silo_error_set_vm(err, manager_op_id(op));
	manager_op_end(op);
	return rc < 0 ? -1 : api_reply_json(r, 200, o);
}
