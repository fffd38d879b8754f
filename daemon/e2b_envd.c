/* SPDX-License-Identifier: Apache-2.0
 * E2B's envd plane (spec/envd) over a sandbox's channel and process table:
 * /health, /files, process.Process and filesystem.Filesystem. Rules:
 * - Every call holds an operation slot on its sandbox (manager_op_begin), so
 *   a delete waits for it; a stream checks manager_op_cancelled each slice
 *   (STREAM_SLICE_MS) and ends with "unavailable" when the sandbox goes.
 * - The sandbox's policy applies as to silod's own API (authz_sandbox with no
 *   token: the envd access token is the capability): exec for Start, file
 *   read for reads, file write for writes.
 * - A started process is a *background* record of the process table
 *   (lib/core/proc.h): it outlives the Start stream, Connect reattaches, and
 *   E2B's pid is its guest pid. Output is never dropped: a stream that is not
 *   read blocks the process (flow control end to end).
 * - Relative paths are resolved against E2B_HOME ("/root": sandboxes run
 *   commands as root).
 * - The SDK runs every command as "/bin/bash -l -c CMD" (PTYs "/bin/bash -i
 *   -l"): where the sandbox has no /bin/bash, /bin/sh gets the same arguments.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "core/proc.h"
#include "daemon/e2b.h"
#include "e2b/connect.h"
#include "policy/token.h"
#include "wire.h"

#define E2B_HOME "/root"
#define STREAM_SLICE_MS 1000
#define KEEPALIVE_DEFAULT_S 60
#define READ_CHUNK (32u * 1024u)
#define STDIN_TIMEOUT_MS 30000

static uint64_t now_mono_ms(void)
{
	return now_mono_ns() / 1000000;
}

/* ---- common ---- */

static int op_begin(e2b_req *q, token_op op, const char *path, char *const *argv, mgr_op **out, silo_error *err)
{
	char rid[SILO_ID_MAX];
	int rc = authz_sandbox(q->authz, q->m, NULL, q->actor, op, q->sandbox, path, argv, rid, err);
	/* E2b-Sandbox-Id is an id, never a name: the access token is bound to the id */
	if (rc == 0 && strcmp(rid, q->sandbox))
		rc = silo_fail(err, SILO_ERR_VM_NOT_FOUND, 0, "no sandbox with id '%s'", q->sandbox);
	if (rc == 0)
		rc = manager_op_begin(q->m, rid, out, err);
	if (rc < 0 && err->code == SILO_ERR_VM_NOT_FOUND)
		err->code = SILO_ERR_VSOCK_DISCONNECTED;   /* E2B: the sandbox is gone (502 / unavailable) */
	return rc;
}

/* An absolute, normalized-enough path: relative ones go below E2B_HOME. */
static char *abs_path(const char *p, silo_error *err)
{
	if (!p || !*p) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "path: required");
		return NULL;
	}
	if (strlen(p) > 4096) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "path: longer than 4096 bytes");
		return NULL;
	}
	if (p[0] == '~' && (p[1] == '/' || !p[1]))
		return xasprintf("%s%s", E2B_HOME, p + 1);
	return p[0] == '/' ? xstrdup(p) : xasprintf("%s/%s", E2B_HOME, p);
}

static json_t *rpc_body(e2b_req *q, silo_error *err)
{
	return e2b_json_parse(q->len ? q->body : "{}", q->len ? q->len : 2, err);
}

/* A required string path field of the message. */
static char *msg_path(json_t *o, const char *field, silo_error *err)
{
	const char *p;
	if (e2b_json_string(o, field, NULL, 4096, &p, err) < 0)
		return NULL;
	char *r = abs_path(p, err);
	if (!r)
		silo_error_prefix(err, "%s", field);
	return r;
}

static const char *file_type(uint32_t mode)
{
	if (S_ISDIR(mode))
		return "FILE_TYPE_DIRECTORY";
	if (S_ISLNK(mode))
		return "FILE_TYPE_SYMLINK";
	return "FILE_TYPE_FILE";
}

static void perm_string(uint32_t mode, char out[11])
{
	out[0] = S_ISDIR(mode) ? 'd' : S_ISLNK(mode) ? 'l' : '-';
	const char *rwx = "rwxrwxrwx";
	for (int i = 0; i < 9; i++)
		out[1 + i] = mode & (1u << (8 - i)) ? rwx[i] : '-';
	out[10] = 0;
}

static json_t *entry_info(const char *path, const file_stat *st, const char *link)
{
	char perm[11], mtime[40], owner[16], group[16];
	perm_string(st->mode, perm);
	struct tm tm;
	time_t t = (time_t)st->mtime_s;
	gmtime_r(&t, &tm);
	strftime(mtime, sizeof mtime, "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(owner, sizeof owner, "%s", st->uid == 0 ? "root" : "");
	if (!owner[0])
		snprintf(owner, sizeof owner, "%u", st->uid);
	snprintf(group, sizeof group, "%s", st->gid == 0 ? "root" : "");
	if (!group[0])
		snprintf(group, sizeof group, "%u", st->gid);
	char *dup = xstrdup(path);
	json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:i,s:s,s:s,s:s,s:s}", "name", basename(dup), "type", file_type(st->mode),
			      "path", path, "size", (json_int_t)st->size, "mode", (int)(st->mode & 07777), "permissions",
			      perm, "owner", owner, "group", group, "modifiedTime", mtime);
	free(dup);
	if (link)
		json_object_set_new(o, "symlinkTarget", json_string(link));
	return o;
}

static int stat_entry(chan *c, const char *path, json_t **out, silo_error *err)
{
	file_stat st;
	char *link = NULL;
	if (chan_stat_link(c, path, &st, &link, err) < 0)
		return -1;
	if (!st.exists) {
		free(link);
		return silo_fail(err, SILO_ERR_FILE_NOT_FOUND, ENOENT, "%s: no such file or directory", path);
	}
	*out = entry_info(path, &st, link);
	free(link);
	return 0;
}

/* ---- REST ---- */

int e2b_h_health(e2b_req *q, e2b_reply *r, silo_error *err)
{
	mgr_op *op;
	if (op_begin(q, TOKEN_OP_INSPECT, NULL, NULL, &op, err) < 0)
		return -1;
	manager_op_end(op);
	r->status = 204;
	return 0;
}

int e2b_h_files_get(e2b_req *q, e2b_reply *r, silo_error *err)
{
	char *path = abs_path(e2b_query(q, "path"), err);
	if (!path)
		return -1;
	int rc = -1, fd = memfd_create("e2b-download", MFD_CLOEXEC);
	mgr_op *op = NULL;
	if (fd < 0) {
		silo_fail(err, SILO_ERR_IO_ERROR, errno, "memfd for a download");
		goto out;
	}
	file_stat st;
	if (op_begin(q, TOKEN_OP_FILE_READ, path, NULL, &op, err) < 0 ||
	    chan_stat(manager_op_chan(op), path, &st, err) < 0)
		goto out;
	if (!st.exists) {
		silo_fail(err, SILO_ERR_FILE_NOT_FOUND, ENOENT, "%s: no such file", path);
		goto out;
	}
	if (S_ISDIR(st.mode)) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, EISDIR, "%s: is a directory", path);
		goto out;
	}
	manager_op_end(op);
	op = NULL;
	char rid[SILO_ID_MAX];
	snprintf(rid, sizeof rid, "%s", q->sandbox);
	if (manager_file_get(q->m, rid, path, fd, q->max_upload, q->actor, err) < 0)
		goto out;
	off_t size = lseek(fd, 0, SEEK_END);
	lseek(fd, 0, SEEK_SET);
	r->fd = fd;
	r->size = size > 0 ? (uint64_t)size : 0;
	fd = -1;
	rc = 0;
out:
	if (op)
		manager_op_end(op);
	if (fd >= 0)
		close(fd);
	free(path);
	return rc;
}

int e2b_h_files_post(e2b_req *q, e2b_reply *r, silo_error *err)
{
	const char *qpath = e2b_query(q, "path");
	if (!q->n_uploads)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "POST /files: no file part in the body");
	json_t *out = json_array();
	for (size_t i = 0; i < q->n_uploads; i++) {
		const e2b_upload *u = &q->uploads[i];
		char *path = abs_path(qpath && *qpath ? qpath : u->name, err);
		mgr_op *op = NULL;
		if (!path)
			goto fail;
		char *dir = xstrdup(path);
		char *parent = dirname(dir);
		int rc = op_begin(q, TOKEN_OP_FILE_WRITE, path, NULL, &op, err);
		if (rc == 0 && strcmp(parent, "/"))
			rc = chan_mkdir(manager_op_chan(op), parent, 0755, true, err);
		if (op)
			manager_op_end(op);
		free(dir);
		if (rc == 0)
			rc = manager_file_put(q->m, q->sandbox, path, u->fd, 0644, q->actor, err);
		if (rc < 0) {
			free(path);
			goto fail;
		}
		char *b = xstrdup(path);
		json_array_append_new(out, json_pack("{s:s,s:s,s:s}", "name", basename(b), "type", "file", "path", path));
		free(b);
		free(path);
	}
	r->json = out;
	return 0;
fail:
	json_decref(out);
	return -1;
}

/* ---- process.Process ---- */

typedef struct pstream {
	e2b_server *srv;
	mgr_op *op;
	proc *p;
	proc_reader *rd;
	bool started, pty;
	unsigned keepalive_s;
	uint64_t last_ms;
	char *buf;
} pstream;

static json_t *pevent(const char *kind, json_t *v)
{
	return json_pack("{s:{s:o}}", "event", kind, v);
}

static int pstream_step(void *ctx, e2b_out *o, silo_error *err)
{
	pstream *s = ctx;
	if (!s->started) {
		proc_info pi;
		proc_info_of(s->p, &pi);
		e2b_stream_send(o, pevent("start", json_pack("{s:I}", "pid", (json_int_t)pi.pid)));
		proc_info_free(&pi);
		s->started = true;
		s->last_ms = now_mono_ms();
		return 1;
	}
	if (manager_op_cancelled(s->op))
		return silo_fail(err, SILO_ERR_VSOCK_DISCONNECTED, 0, "the sandbox is being deleted");
	int stream = 1;
	ssize_t n = proc_read(s->rd, &stream, s->buf, READ_CHUNK, STREAM_SLICE_MS, err);
	if (n > 0) {
		char *b64 = e2b_base64(s->buf, (size_t)n);
		const char *which = s->pty ? "pty" : stream == 2 ? "stderr" : "stdout";
		e2b_stream_send(o, pevent("data", json_pack("{s:s}", which, b64)));
		free(b64);
		s->last_ms = now_mono_ms();
		return 1;
	}
	if (n == 0) {
		exec_result res;
		if (proc_wait(s->p, -1, &res, err) < 0)
			return -1;
		char status[64];
		json_t *end;
		if (res.signal) {
			snprintf(status, sizeof status, "signal: %s", res.signal == 9 ? "killed" : strsignal(res.signal));
			end = json_pack("{s:i,s:b,s:s,s:s}", "exitCode", -1, "exited", false, "status", status, "error",
					status);
		} else {
			snprintf(status, sizeof status, "exit status %d", res.exit_code);
			end = json_pack("{s:i,s:b,s:s}", "exitCode", res.exit_code, "exited", true, "status", status);
			if (res.exit_code)
				json_object_set_new(end, "error", json_string(status));
		}
		e2b_stream_send(o, pevent("end", end));
		return 0;
	}
	if (err->code != SILO_ERR_TIMEOUT)
		return -1;
	unsigned ka = s->keepalive_s ? s->keepalive_s : KEEPALIVE_DEFAULT_S;
	if (now_mono_ms() - s->last_ms >= (uint64_t)ka * 1000) {
		e2b_stream_send(o, pevent("keepalive", json_object()));
		s->last_ms = now_mono_ms();
	}
	return 1;
}

static void pstream_free(void *ctx)
{
	pstream *s = ctx;
	if (s->rd)
		proc_detach(s->rd);
	if (s->p)
		proc_put(s->p);
	if (s->op)
		manager_op_end(s->op);
	free(s->buf);
	free(s);
}

static void pstream_reply(e2b_req *q, e2b_reply *r, mgr_op *op, proc *p)
{
	pstream *s = xcalloc(1, sizeof *s);
	proc_info pi;
	proc_info_of(p, &pi);
	s->pty = pi.pty;
	proc_info_free(&pi);
	s->srv = q->srv;
	s->op = op;
	s->p = p;
	s->rd = proc_attach(p);
	s->keepalive_s = q->keepalive_s;
	s->buf = xmalloc(READ_CHUNK);
	r->stream = (e2b_stream){pstream_step, pstream_free, s};
}

int e2b_h_proc_start(e2b_req *q, e2b_reply *r, silo_error *err)
{
	e2b_start_req st;
	if (e2b_start_parse(q->body, q->len, &st, err) < 0)
		return -1;
	int rc = -1;
	mgr_op *op = NULL;
	proc *p = NULL;
	char *cwd = st.cwd ? abs_path(st.cwd, err) : NULL;
	if (st.cwd && !cwd)
		goto out;
	if (op_begin(q, TOKEN_OP_EXEC, cwd, st.argv, &op, err) < 0)
		goto out;
	/* E2B's SDK starts every command and PTY as /bin/bash; a template without
	 * bash (the busybox "base") runs the same arguments under /bin/sh. */
	file_stat bash;
	if (!strcmp(st.argv[0], "/bin/bash") && chan_stat(manager_op_chan(op), "/bin/bash", &bash, err) == 0 &&
	    !bash.exists) {
		free(st.argv[0]);
		st.argv[0] = xstrdup("/bin/sh");
	}
	exec_req req = {.argv = st.argv, .env = st.env, .cwd = cwd, .stdin_stream = true, .uid = -1, .gid = -1,
			.pty = st.pty, .rows = st.rows ? st.rows : 24, .cols = st.cols ? st.cols : 80};
	proc_opts po = {.tag = st.tag, .session = false};
	if (manager_proc_start(op, &req, &po, q->actor, &p, err) < 0)
		goto out;
	if (!st.stdin_open && !st.pty) {
		silo_error e2;
		(void)proc_stdin(p, NULL, 0, true, 1000, NULL, &e2);   /* E2B: no stdin unless asked */
	}
	pstream_reply(q, r, op, p);
	op = NULL;
	rc = 0;
out:
	if (op)
		manager_op_end(op);
	free(cwd);
	e2b_start_free(&st);
	return rc;
}

/* The process the message's selector names, with an operation slot. */
static int find_proc(e2b_req *q, json_t *o, const char *field, mgr_op **op, proc **p, silo_error *err)
{
	e2b_selector sel;
	*op = NULL;
	*p = NULL;
	if (e2b_selector_parse(o, field, &sel, err) < 0 || op_begin(q, TOKEN_OP_EXEC, NULL, NULL, op, err) < 0)
		return -1;
	char ref[32];
	if (!sel.by_tag)
		snprintf(ref, sizeof ref, "%u", sel.pid);
	*p = proc_find(manager_op_procs(*op), sel.by_tag ? sel.tag : ref, err);
	if (!*p) {
		manager_op_end(*op);
		*op = NULL;
		return -1;
	}
	return 0;
}

static void found_end(mgr_op *op, proc *p)
{
	if (p)
		proc_put(p);
	if (op)
		manager_op_end(op);
}

int e2b_h_proc_connect(e2b_req *q, e2b_reply *r, silo_error *err)
{
	json_t *o = rpc_body(q, err);
	if (!o)
		return -1;
	mgr_op *op;
	proc *p;
	int rc = find_proc(q, o, "process", &op, &p, err);
	json_decref(o);
	if (rc < 0)
		return -1;
	pstream_reply(q, r, op, p);
	return 0;
}

int e2b_h_proc_list(e2b_req *q, e2b_reply *r, silo_error *err)
{
	mgr_op *op;
	if (op_begin(q, TOKEN_OP_EXEC, NULL, NULL, &op, err) < 0)
		return -1;
	proc_info *v;
	size_t n;
	int rc = proc_list(manager_op_procs(op), &v, &n);
	manager_op_end(op);
	if (rc < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "listing processes");
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		if (v[i].exited || v[i].failed)
			continue;
		json_t *args = json_array();
		for (size_t k = 1; v[i].argv && v[i].argv[0] && v[i].argv[k]; k++)
			json_array_append_new(args, json_string(v[i].argv[k]));
		json_t *cfg = json_pack("{s:s,s:o,s:o}", "cmd", v[i].argv && v[i].argv[0] ? v[i].argv[0] : "", "args", args,
					"envs", json_object());
		if (v[i].cwd)
			json_object_set_new(cfg, "cwd", json_string(v[i].cwd));
		json_t *pi = json_pack("{s:o,s:I}", "config", cfg, "pid", (json_int_t)v[i].pid);
		if (v[i].tag[0])
			json_object_set_new(pi, "tag", json_string(v[i].tag));
		json_array_append_new(a, pi);
	}
	proc_list_free(v, n);
	r->json = json_pack("{s:o}", "processes", a);
	return 0;
}

static int feed(proc *p, const e2b_input *in, silo_error *err)
{
	if (!in->len)
		return 0;
	return proc_stdin(p, in->data, in->len, false, STDIN_TIMEOUT_MS, NULL, err);
}

/* An input or signal to a process that has exited is "not found" (the SDK's
 * kill() then answers false). */
static int exited_is_gone(proc *p, silo_error *err)
{
	proc_info pi;
	proc_info_of(p, &pi);
	bool gone = pi.exited || pi.failed;
	uint32_t pid = pi.pid;
	proc_info_free(&pi);
	if (gone)
		return silo_fail(err, SILO_ERR_PROCESS_NOT_FOUND, ESRCH, "process %u has exited", pid);
	return 0;
}

/* A unary call on the process the message's selector names: act on it with an
 * operation slot held, answer {}. */
static int proc_unary(e2b_req *q, e2b_reply *r, int (*act)(json_t *o, proc *p, silo_error *err), silo_error *err)
{
	json_t *o = rpc_body(q, err);
	if (!o)
		return -1;
	mgr_op *op = NULL;
	proc *p = NULL;
	int rc = find_proc(q, o, "process", &op, &p, err);
	if (rc == 0)
		rc = act(o, p, err);
	if (rc == 0)
		r->json = json_object();
	found_end(op, p);
	json_decref(o);
	return rc;
}

static int act_input(json_t *o, proc *p, silo_error *err)
{
	e2b_input in;
	if (e2b_input_parse(o, "input", &in, err) < 0)
		return -1;
	int rc = exited_is_gone(p, err) < 0 ? -1 : feed(p, &in, err);
	free(in.data);
	return rc;
}

static int act_close_stdin(json_t *o, proc *p, silo_error *err)
{
	(void)o;
	if (exited_is_gone(p, err) < 0)
		return -1;
	return proc_stdin(p, NULL, 0, true, STDIN_TIMEOUT_MS, NULL, err);
}

static int act_signal(json_t *o, proc *p, silo_error *err)
{
	int sig;
	if (e2b_signal_parse(o, &sig, err) < 0 || exited_is_gone(p, err) < 0)
		return -1;
	return proc_signal(p, sig, err);
}

static int act_update(json_t *o, proc *p, silo_error *err)
{
	uint16_t rows, cols;
	bool present;
	if (e2b_pty_size_parse(o, &rows, &cols, &present, err) < 0)
		return -1;
	return present && rows && cols ? proc_resize(p, rows, cols, err) : 0;
}

int e2b_h_proc_input(e2b_req *q, e2b_reply *r, silo_error *err)
{
	return proc_unary(q, r, act_input, err);
}

int e2b_h_proc_close_stdin(e2b_req *q, e2b_reply *r, silo_error *err)
{
	return proc_unary(q, r, act_close_stdin, err);
}

int e2b_h_proc_signal(e2b_req *q, e2b_reply *r, silo_error *err)
{
	return proc_unary(q, r, act_signal, err);
}

int e2b_h_proc_update(e2b_req *q, e2b_reply *r, silo_error *err)
{
	return proc_unary(q, r, act_update, err);
}

int e2b_h_proc_stream_input(e2b_req *q, e2b_reply *r, silo_error *err)
{
	mgr_op *op = NULL;
	proc *p = NULL;
	size_t off = 0;
	int rc = -1;
	while (off < q->len) {
		connect_env env;
		long n = connect_env_next(q->body + off, q->len - off, E2B_MSG_MAX, &env, err);
		if (n <= 0) {
			if (n == 0)
				silo_fail(err, SILO_ERR_PROTOCOL, 0, "StreamInput: a truncated envelope at byte %zu", off);
			goto out;
		}
		off += (size_t)n;
		if (env.flags & CONNECT_FLAG_END)
			break;
		e2b_si_event ev;
		if (e2b_stream_input_parse(env.data, env.len, &ev, err) < 0)
			goto out;
		if (ev.kind == E2B_SI_START) {
			if (p) {
				silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "StreamInput: a second start event");
				goto out;
			}
			json_t *o = json_pack("{s:{s:I}}", "process", "pid", (json_int_t)ev.sel.pid);
			if (ev.sel.by_tag) {
				json_decref(o);
				o = json_pack("{s:{s:s}}", "process", "tag", ev.sel.tag);
			}
			int frc = find_proc(q, o, "process", &op, &p, err);
			json_decref(o);
			if (frc < 0)
				goto out;
		} else if (ev.kind == E2B_SI_DATA) {
			int frc = p ? feed(p, &ev.in, err)
				    : silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "StreamInput: data before the start event");
			free(ev.in.data);
			if (frc < 0)
				goto out;
		}
	}
	r->json = json_object();
	rc = 0;
out:
	found_end(op, p);
	return rc;
}

/* ---- filesystem.Filesystem ---- */

/* Parse the body, take its path field, open an operation slot for op. */
static int fs_begin(e2b_req *q, const char *field, token_op top, json_t **o, char **path, mgr_op **op,
		    silo_error *err)
{
	*op = NULL;
	*path = NULL;
	*o = rpc_body(q, err);
	if (!*o)
		return -1;
	*path = msg_path(*o, field, err);
	if (!*path || op_begin(q, top, *path, NULL, op, err) < 0) {
		json_decref(*o);
		*o = NULL;
		free(*path);
		*path = NULL;
		return -1;
	}
	return 0;
}

static void fs_end(json_t *o, char *path, mgr_op *op)
{
	if (op)
		manager_op_end(op);
	free(path);
	json_decref(o);
}

/* A filesystem call on the message's path (field): act with an operation slot held. */
typedef int (*fs_act)(e2b_req *q, json_t *o, const char *path, chan *c, e2b_reply *r, silo_error *err);
static int fs_unary(e2b_req *q, e2b_reply *r, const char *field, token_op top, fs_act act, silo_error *err)
{
	json_t *o;
	char *path;
	mgr_op *op;
	if (fs_begin(q, field, top, &o, &path, &op, err) < 0)
		return -1;
	int rc = act(q, o, path, manager_op_chan(op), r, err);
	fs_end(o, path, op);
	return rc;
}

/* path must exist and be a directory. */
static int need_dir(chan *c, const char *path, silo_error *err)
{
	file_stat st;
	if (chan_stat(c, path, &st, err) < 0)
		return -1;
	if (!st.exists)
		return silo_fail(err, SILO_ERR_FILE_NOT_FOUND, ENOENT, "%s: no such directory", path);
	if (!S_ISDIR(st.mode))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, ENOTDIR, "%s: not a directory", path);
	return 0;
}

static int entry_reply(chan *c, const char *path, e2b_reply *r, silo_error *err)
{
	json_t *e;
	if (stat_entry(c, path, &e, err) < 0)
		return -1;
	r->json = json_pack("{s:o}", "entry", e);
	return 0;
}

static int act_stat(e2b_req *q, json_t *o, const char *path, chan *c, e2b_reply *r, silo_error *err)
{
	(void)q, (void)o;
	return entry_reply(c, path, r, err);
}

static int act_mkdir(e2b_req *q, json_t *o, const char *path, chan *c, e2b_reply *r, silo_error *err)
{
	(void)q, (void)o;
	file_stat st;
	if (chan_stat(c, path, &st, err) < 0)
		return -1;
	if (st.exists)
		return silo_fail(err, SILO_ERR_CONFLICT, EEXIST, "%s: already exists", path);
	if (chan_mkdir(c, path, 0755, true, err) < 0)
		return -1;
	return entry_reply(c, path, r, err);
}

static int act_move(e2b_req *q, json_t *o, const char *src, chan *c, e2b_reply *r, silo_error *err)
{
	char rid[SILO_ID_MAX];
	char *dst = msg_path(o, "destination", err);
	int rc = -1;
	if (dst && authz_sandbox(q->authz, q->m, NULL, q->actor, TOKEN_OP_FILE_WRITE, q->sandbox, dst, NULL, rid, err) == 0 &&
	    chan_rename(c, src, dst, false, err) == 0)
		rc = entry_reply(c, dst, r, err);
	free(dst);
	return rc;
}

static int act_list(e2b_req *q, json_t *o, const char *path, chan *c, e2b_reply *r, silo_error *err)
{
	(void)q;
	uint32_t depth;
	dir_entry *v = NULL;
	size_t n = 0;
	bool trunc;
	if (e2b_json_u32(o, "depth", NULL, &depth, err) < 0)
		return -1;
	if (depth > WIRE_MAX_LIST_DEPTH)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "depth: at most %d", WIRE_MAX_LIST_DEPTH);
	list_opts lo = {.depth = depth ? depth : 1};
	if (need_dir(c, path, err) < 0 || chan_list_opts(c, path, &lo, &v, &n, &trunc, err) < 0)
		return -1;
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		char *full = xasprintf("%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/", v[i].name);
		json_array_append_new(a, entry_info(full, &v[i].st, v[i].link));
		free(full);
	}
	dir_entries_free(v, n);
	r->json = json_pack("{s:o}", "entries", a);
	return 0;
}

static int act_remove(e2b_req *q, json_t *o, const char *path, chan *c, e2b_reply *r, silo_error *err)
{
	(void)q, (void)o;
	file_stat st;
	if (chan_stat(c, path, &st, err) < 0)
		return -1;
	if (!st.exists)
		return silo_fail(err, SILO_ERR_FILE_NOT_FOUND, ENOENT, "%s: no such file or directory", path);
	if (chan_remove(c, path, true, err) < 0)
		return -1;
	r->json = json_object();
	return 0;
}

int e2b_h_fs_stat(e2b_req *q, e2b_reply *r, silo_error *err)
{
	return fs_unary(q, r, "path", TOKEN_OP_FILE_READ, act_stat, err);
}

int e2b_h_fs_mkdir(e2b_req *q, e2b_reply *r, silo_error *err)
{
	return fs_unary(q, r, "path", TOKEN_OP_FILE_WRITE, act_mkdir, err);
}

int e2b_h_fs_move(e2b_req *q, e2b_reply *r, silo_error *err)
{
	return fs_unary(q, r, "source", TOKEN_OP_FILE_WRITE, act_move, err);
}

int e2b_h_fs_list(e2b_req *q, e2b_reply *r, silo_error *err)
{
	return fs_unary(q, r, "path", TOKEN_OP_FILE_READ, act_list, err);
}

int e2b_h_fs_remove(e2b_req *q, e2b_reply *r, silo_error *err)
{
	return fs_unary(q, r, "path", TOKEN_OP_FILE_WRITE, act_remove, err);
}

static const char *const event_names[] = {
	[WEV_CREATE] = "EVENT_TYPE_CREATE", [WEV_WRITE] = "EVENT_TYPE_WRITE", [WEV_REMOVE] = "EVENT_TYPE_REMOVE",
	[WEV_RENAME] = "EVENT_TYPE_RENAME", [WEV_CHMOD] = "EVENT_TYPE_CHMOD",
};

static json_t *fs_event(const watch_event *e)
{
	const char *t = e->kind >= WEV_CREATE && e->kind <= WEV__MAX ? event_names[e->kind] : "EVENT_TYPE_UNSPECIFIED";
	return json_pack("{s:s,s:s}", "name", e->name, "type", t);
}

/* Start a watch on the message's directory (must exist and be a directory). */
static int watch_start(e2b_req *q, json_t **o, char **path, mgr_op **op, uint32_t *wid, silo_error *err)
{
	bool rec;
	if (fs_begin(q, "path", TOKEN_OP_FILE_READ, o, path, op, err) < 0)
		return -1;
	chan *c = manager_op_chan(*op);
	int rc = e2b_json_bool(*o, "recursive", NULL, &rec, err);
	if (rc == 0)
		rc = need_dir(c, *path, err);
	if (rc == 0)
		rc = chan_watch_start(c, *path, rec, wid, err);
	if (rc < 0) {
		fs_end(*o, *path, *op);
		return -1;
	}
	return 0;
}

typedef struct wstream {
	mgr_op *op;
	uint32_t wid;
	bool started;
	unsigned keepalive_s;
	uint64_t last_ms;
} wstream;

static int wstream_step(void *ctx, e2b_out *o, silo_error *err)
{
	wstream *s = ctx;
	if (!s->started) {
		s->started = true;
		s->last_ms = now_mono_ms();
		e2b_stream_send(o, json_pack("{s:{}}", "start"));
		return 1;
	}
	if (manager_op_cancelled(s->op))
		return silo_fail(err, SILO_ERR_VSOCK_DISCONNECTED, 0, "the sandbox is being deleted");
	watch_event *ev;
	size_t n;
	uint64_t lost;
	int rc = chan_watch_read(manager_op_chan(s->op), s->wid, &ev, &n, &lost, STREAM_SLICE_MS, err);
	if (rc < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		e2b_stream_send(o, json_pack("{s:o}", "filesystem", fs_event(&ev[i])));
	watch_events_free(ev, n);
	if (n)
		s->last_ms = now_mono_ms();
	if (rc == 1)
		return 0;   /* the directory went away */
	unsigned ka = s->keepalive_s ? s->keepalive_s : KEEPALIVE_DEFAULT_S;
	if (now_mono_ms() - s->last_ms >= (uint64_t)ka * 1000) {
		e2b_stream_send(o, json_pack("{s:{}}", "keepalive"));
		s->last_ms = now_mono_ms();
	}
	return 1;
}

static void wstream_free(void *ctx)
{
	wstream *s = ctx;
	chan_watch_stop(manager_op_chan(s->op), s->wid);
	manager_op_end(s->op);
	free(s);
}

int e2b_h_fs_watch(e2b_req *q, e2b_reply *r, silo_error *err)
{
	json_t *o;
	char *path;
	mgr_op *op;
	uint32_t wid;
	if (watch_start(q, &o, &path, &op, &wid, err) < 0)
		return -1;
	wstream *s = xcalloc(1, sizeof *s);
	s->op = op;
	s->wid = wid;
	s->keepalive_s = q->keepalive_s;
	r->stream = (e2b_stream){wstream_step, wstream_free, s};
	fs_end(o, path, NULL);
	return 0;
}

int e2b_h_fs_watcher_create(e2b_req *q, e2b_reply *r, silo_error *err)
{
	json_t *o;
	char *path;
	mgr_op *op;
	uint32_t wid;
	char id[32];
	if (watch_start(q, &o, &path, &op, &wid, err) < 0)
		return -1;
	int rc = e2b_watcher_add(q->srv, q->sandbox, wid, id, err);
	if (rc < 0)
		chan_watch_stop(manager_op_chan(op), wid);
	else
		r->json = json_pack("{s:s}", "watcherId", id);
	fs_end(o, path, op);
	return rc;
}

/* The watcher a request's watcherId names, with the sandbox op begun; release
 * with fs_end(w.o, NULL, w.op). */
typedef struct watcher_ref {
	json_t *o;
	char id[32];
	uint32_t wid;
	mgr_op *op;
} watcher_ref;

static int watcher_of(e2b_req *q, watcher_ref *r, silo_error *err)
{
	const char *w;
	silo_error_clear(err);
	r->op = NULL;
	r->o = rpc_body(q, err);
	if (!r->o)
		return -1;
	if (e2b_json_string(r->o, "watcherId", "watcher_id", 31, &w, err) < 0 || !w ||
	    e2b_watcher_get(q->srv, w, q->sandbox, &r->wid, err) < 0 ||
	    op_begin(q, TOKEN_OP_FILE_READ, NULL, NULL, &r->op, err) < 0) {
		if (!w && err->code == SILO_OK)
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "watcherId: required");
		json_decref(r->o);
		return -1;
	}
	snprintf(r->id, sizeof r->id, "%s", w);
	return 0;
}

int e2b_h_fs_watcher_events(e2b_req *q, e2b_reply *r, silo_error *err)
{
	watcher_ref w;
	if (watcher_of(q, &w, err) < 0)
		return -1;
	watch_event *ev;
	size_t n;
	uint64_t lost;
	int rc = chan_watch_read(manager_op_chan(w.op), w.wid, &ev, &n, &lost, 0, err);
	if (rc >= 0) {
		json_t *a = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, fs_event(&ev[i]));
		watch_events_free(ev, n);
		r->json = json_pack("{s:o}", "events", a);
		rc = 0;
	}
	fs_end(w.o, NULL, w.op);
	return rc;
}

int e2b_h_fs_watcher_remove(e2b_req *q, e2b_reply *r, silo_error *err)
{
	watcher_ref w;
	if (watcher_of(q, &w, err) < 0)
		return -1;
	chan_watch_stop(manager_op_chan(w.op), w.wid);
	e2b_watcher_remove(q->srv, w.id);
	r->json = json_object();
	fs_end(w.o, NULL, w.op);
	return 0;
}
