/* SPDX-License-Identifier: Apache-2.0
 * The public C API (include/silo/silo.h): opaque handles over the spec layer
 * and the sandbox core, for embedding Silo without a daemon. Processes are
 * the sandbox's process table (lib/core/proc.h; a handle is one reader),
 * files beyond one file the channel's operations (lib/core/channel.h,
 * lib/core/fsops.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "core/fsops.h"
#include "core/proc.h"
#include "core/sandbox.h"
#include "spec/spec.h"

struct silo_spec {
	vm_spec s;
};

struct silo_sandbox {
	sandbox *sb;
};

static silo_spec *wrap(int rc, vm_spec *tmp)
{
	if (rc < 0)
		return NULL;
	silo_spec *w = xcalloc(1, sizeof *w);
	w->s = *tmp;
	return w;
}

SILO_PUBLIC silo_spec *silo_spec_parse(const char *toml, size_t len, silo_error *err)
{
	vm_spec tmp;
	return wrap(spec_parse(toml, len, &tmp, err), &tmp);
}

SILO_PUBLIC silo_spec *silo_spec_load(const char *path, silo_error *err)
{
	vm_spec tmp;
	return wrap(spec_load(path, &tmp, err), &tmp);
}

SILO_PUBLIC silo_spec *silo_spec_default(const char *provider, silo_error *err)
{
	vm_spec tmp;
	return wrap(spec_default(provider, &tmp, err), &tmp);
}

SILO_PUBLIC char *silo_spec_format(const silo_spec *spec)
{
	return spec_format(&spec->s);
}

SILO_PUBLIC int silo_spec_set_env(silo_spec *spec, const char *key, const char *value, silo_error *err)
{
	if (!key || !value || !*key || strchr(key, '='))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "sandbox.env: invalid variable name");
	if (spec->s.n_env >= SPEC_MAX_KV && !spec_get_env(&spec->s, key))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "sandbox.env: at most %d variables", SPEC_MAX_KV);
	spec_set_env(&spec->s, key, value);
	return spec_validate(&spec->s, err);
}

SILO_PUBLIC void silo_spec_free(silo_spec *spec)
{
	if (!spec)
		return;
	spec_free(&spec->s);
	free(spec);
}

SILO_PUBLIC int silo_sandbox_create(const silo_spec *spec, silo_sandbox **out, silo_error *err)
{
	*out = NULL;
	if (spec_validate(&spec->s, err) < 0)
		return -1;
	/* [sandbox.secrets]: read the files and variables now, keep the values in memory */
	vm_spec rs;
	spec_copy(&rs, &spec->s);
	sandbox *sb;
	int rc = spec_resolve_secrets(&rs, SPEC_SECRETS_STRICT, err);
	/* an embedder's sandboxes die with it (lib/core/owner.h) */
	if (rc == 0)
		rc = sandbox_create(&rs, &(sandbox_opts){.owner = SB_OWNER_PROCESS}, &sb, err);
	spec_free(&rs);
	if (rc < 0)
		return -1;
	silo_sandbox *w = xcalloc(1, sizeof *w);
	w->sb = sb;
	*out = w;
	return 0;
}

SILO_PUBLIC const char *silo_sandbox_id(const silo_sandbox *w)
{
	return w->sb->id;
}

SILO_PUBLIC const char *silo_sandbox_provider(const silo_sandbox *w)
{
	return w->sb->ops->name;
}

/* An exec request for argv in w: the spec's environment and secrets first,
 * the call's on top (*env: free with spec_env_free), the spec's workdir. */
static int exec_req_of(silo_sandbox *w, const char *const *argv, const char *const *env_in, const char *cwd,
		       uint32_t timeout_ms, exec_req *r, char ***env, silo_error *err)
{
	if (!argv || !argv[0])
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, w->sb->id, "exec: argv must not be empty");
	const vm_spec *s = &w->sb->spec;
	if (!(*env = spec_exec_env(s, (char *const *)env_in, err))) {
		silo_error_set_vm(err, w->sb->id);
		return -1;
	}
	*r = (exec_req){.argv = (char *const *)argv,
			.env = *env,
			.cwd = cwd ? cwd : s->workdir,
			.timeout_ms = timeout_ms,
			.uid = w->sb->exec_uid,   /* the spec's (or its image's) user, -1 = root */
			.gid = w->sb->exec_gid};
	return 0;
}

SILO_PUBLIC int silo_sandbox_exec(silo_sandbox *w, const silo_exec_opts *o, silo_exec_result *res, silo_error *err)
{
	exec_req r;
	char **env;
	if (!o)
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, w->sb->id, "exec: no options");
	if (exec_req_of(w, o->argv, o->env, o->cwd, o->timeout_ms, &r, &env, err) < 0)
		return -1;
	r.stdin_data = o->stdin_data;
	r.stdin_len = o->stdin_len;
	exec_result er;
	int rc = chan_exec(w->sb->ch, &r, (chan_output_cb)o->on_output, o->userdata, &er, err);
	spec_env_free(env);
	if (rc < 0) {
		silo_error_set_vm(err, w->sb->id);
		return -1;
	}
	if (res)
		*res = (silo_exec_result){.exit_code = er.signal ? 128 + er.signal : er.exit_code, .signal = er.signal,
					  .timed_out = er.timed_out, .duration_ms = er.duration_ms,
					  .oom_killed = er.oom_killed};
	return 0;
}

SILO_PUBLIC int silo_sandbox_write_file(silo_sandbox *w, const char *path, const void *buf, size_t len,
					uint32_t mode, silo_error *err)
{
	return chan_file_write(w->sb->ch, path, buf, len, mode, err);
}

SILO_PUBLIC int silo_sandbox_read_file(silo_sandbox *w, const char *path, size_t max, char **out, size_t *len,
				       silo_error *err)
{
	return chan_file_read(w->sb->ch, path, max, out, len, err);
}

SILO_PUBLIC int silo_sandbox_destroy(silo_sandbox *w, silo_error *err)
{
	if (!w)
		return 0;
	int rc = sandbox_destroy(w->sb, 5000, NULL, err);
	free(w);
	return rc;
}

/* ---- processes ---- */

struct silo_proc {
	silo_sandbox *w;
	proc *p;
	proc_reader *r;
};

static silo_proc *wrap_proc(silo_sandbox *w, proc *p)
{
	silo_proc *h = xcalloc(1, sizeof *h);
	h->w = w;
	h->p = p;
	h->r = proc_attach(p);
	return h;
}

SILO_PUBLIC int silo_proc_start(silo_sandbox *w, const silo_proc_opts *o, silo_proc **out, silo_error *err)
{
	*out = NULL;
	exec_req r;
	char **env;
	if (!o)
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, w->sb->id, "process: no options");
	if (exec_req_of(w, o->argv, o->env, o->cwd, o->timeout_ms, &r, &env, err) < 0)
		return -1;
	r.stdin_stream = o->stdin_open != 0;
	r.pty = o->pty != 0;
	r.rows = o->rows;
	r.cols = o->cols;
	proc_opts po = {.tag = o->tag};
	proc *p;
	int rc = proc_start(w->sb->procs, &r, &po, &p, err);
	spec_env_free(env);
	if (rc < 0)
		return -1;
	*out = wrap_proc(w, p);
	return 0;
}

SILO_PUBLIC int silo_proc_open(silo_sandbox *w, const char *ref, silo_proc **out, silo_error *err)
{
	*out = NULL;
	proc *p = proc_find(w->sb->procs, ref, err);
	if (!p)
		return -1;
	*out = wrap_proc(w, p);
	return 0;
}

SILO_PUBLIC const char *silo_proc_id(const silo_proc *h)
{
	return proc_id(h->p);
}

SILO_PUBLIC uint32_t silo_proc_pid(const silo_proc *h)
{
	proc_info i;
	proc_info_of(h->p, &i);
	proc_info_free(&i);
	return i.pid;
}

SILO_PUBLIC int64_t silo_proc_read(silo_proc *h, int *stream, void *buf, size_t cap, int timeout_ms, silo_error *err)
{
	return proc_read(h->r, stream, buf, cap, timeout_ms, err);
}

SILO_PUBLIC int silo_proc_write(silo_proc *h, const void *buf, size_t len, int eof, silo_error *err)
{
	return proc_stdin(h->p, buf, len, eof != 0, -1, NULL, err);
}

SILO_PUBLIC int silo_proc_signal(silo_proc *h, int sig, silo_error *err)
{
	return proc_signal(h->p, sig, err);
}

SILO_PUBLIC int silo_proc_resize(silo_proc *h, uint16_t rows, uint16_t cols, silo_error *err)
{
	return proc_resize(h->p, rows, cols, err);
}

static silo_exec_result public_result(const exec_result *r)
{
	return (silo_exec_result){.exit_code = r->signal ? 128 + r->signal : r->exit_code, .signal = r->signal,
				  .timed_out = r->timed_out, .duration_ms = r->duration_ms,
				  .oom_killed = r->oom_killed};
}

SILO_PUBLIC int silo_proc_wait(silo_proc *h, int timeout_ms, silo_exec_result *res, silo_error *err)
{
	exec_result r;
	if (proc_wait(h->p, timeout_ms, &r, err) < 0)
		return -1;
	if (res)
		*res = public_result(&r);
	return 0;
}

SILO_PUBLIC int silo_proc_kill(silo_proc *h, silo_error *err)
{
	proc_remove(h->p);
	return 0;
}

SILO_PUBLIC void silo_proc_close(silo_proc *h)
{
	if (!h)
		return;
	proc_detach(h->r);
	proc_put(h->p);
	free(h);
}

SILO_PUBLIC int silo_sandbox_procs(silo_sandbox *w, silo_proc_info **out, size_t *n, silo_error *err)
{
	proc_info *v;
	size_t k;
	proc_list(w->sb->procs, &v, &k);
	silo_proc_info *o = xcalloc(k ? k : 1, sizeof *o);
	for (size_t i = 0; i < k; i++) {
		snprintf(o[i].id, sizeof o[i].id, "%s", v[i].id);
		snprintf(o[i].tag, sizeof o[i].tag, "%s", v[i].tag);
		o[i].pid = v[i].pid;
		size_t len = 1;
		for (char **a = v[i].argv; a && *a; a++)
			len += strlen(*a) + 1;
		o[i].command = xcalloc(1, len);
		for (char **a = v[i].argv; a && *a; a++) {
			if (a != v[i].argv)
				strcat(o[i].command, " ");
			strcat(o[i].command, *a);
		}
		o[i].pty = v[i].pty;
		o[i].started_ms = v[i].started_ms;
		o[i].exited = v[i].exited;
		if (v[i].exited)
			o[i].result = public_result(&v[i].res);
		o[i].buffered = v[i].buffered;
	}
	proc_list_free(v, k);
	*out = o;
	*n = k;
	return 0;
}

SILO_PUBLIC void silo_proc_infos_free(silo_proc_info *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i].command);
	free(v);
}

/* ---- files ---- */

static void fill_info(silo_file_info *o, const file_stat *st)
{
	o->size = st->size;
	o->mode = st->mode;
	o->mtime = st->mtime_s;
	o->uid = st->uid;
	o->gid = st->gid;
}

SILO_PUBLIC int silo_sandbox_stat(silo_sandbox *w, const char *path, silo_file_info *out, silo_error *err)
{
	memset(out, 0, sizeof *out);
	file_stat st;
	if (chan_stat_link(w->sb->ch, path, &st, &out->link, err) < 0)
		return -1;
	if (!st.exists)
		return silo_fail_vm(err, SILO_ERR_FILE_NOT_FOUND, ENOENT, w->sb->id, "stat %.256s", path);
	fill_info(out, &st);
	return 0;
}

SILO_PUBLIC void silo_file_info_clear(silo_file_info *i)
{
	free(i->name);
	free(i->link);
	memset(i, 0, sizeof *i);
}

SILO_PUBLIC int silo_sandbox_list(silo_sandbox *w, const char *path, uint32_t depth, uint64_t max,
				  silo_file_info **out, size_t *n, int *truncated, silo_error *err)
{
	dir_entry *e;
	size_t k;
	bool tr;
	list_opts lo = {.depth = depth, .max = max};
	if (chan_list_opts(w->sb->ch, path, &lo, &e, &k, &tr, err) < 0)
		return -1;
	silo_file_info *o = xcalloc(k ? k : 1, sizeof *o);
	for (size_t i = 0; i < k; i++) {
		o[i].name = e[i].name;
		o[i].link = e[i].link;
		e[i].name = e[i].link = NULL;
		fill_info(&o[i], &e[i].st);
	}
	dir_entries_free(e, k);
	*out = o;
	*n = k;
	if (truncated)
		*truncated = tr;
	return 0;
}

SILO_PUBLIC void silo_file_infos_free(silo_file_info *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		silo_file_info_clear(&v[i]);
	free(v);
}

SILO_PUBLIC int silo_sandbox_mkdir(silo_sandbox *w, const char *path, uint32_t mode, int parents, silo_error *err)
{
	return chan_mkdir(w->sb->ch, path, mode, parents != 0, err);
}

SILO_PUBLIC int silo_sandbox_remove(silo_sandbox *w, const char *path, int recursive, silo_error *err)
{
	return chan_remove(w->sb->ch, path, recursive != 0, err);
}

SILO_PUBLIC int silo_sandbox_rename(silo_sandbox *w, const char *src, const char *dst, int noreplace, silo_error *err)
{
	return chan_rename(w->sb->ch, src, dst, noreplace != 0, err);
}

SILO_PUBLIC int silo_sandbox_archive_get(silo_sandbox *w, const char *path, int fd, silo_error *err)
{
	return fs_archive_get_fd(w->sb->ch, path, fd, NULL, NULL, NULL, err);
}

SILO_PUBLIC int silo_sandbox_archive_put(silo_sandbox *w, const char *path, int fd, silo_error *err)
{
	return fs_archive_put_fd(w->sb->ch, path, fd, NULL, NULL, NULL, err);
}

/* ---- watches ---- */

struct silo_watch {
	silo_sandbox *w;
	uint32_t id;
};

SILO_PUBLIC int silo_watch_start(silo_sandbox *w, const char *path, int recursive, silo_watch **out, silo_error *err)
{
	*out = NULL;
	uint32_t id;
	if (chan_watch_start(w->sb->ch, path, recursive != 0, &id, err) < 0)
		return -1;
	silo_watch *h = xcalloc(1, sizeof *h);
	h->w = w;
	h->id = id;
	*out = h;
	return 0;
}

SILO_PUBLIC int silo_watch_next(silo_watch *h, silo_watch_event **evs, size_t *n, uint64_t *lost, int timeout_ms,
				silo_error *err)
{
	watch_event *e;
	int rc = chan_watch_read(h->w->sb->ch, h->id, &e, n, lost, timeout_ms, err);
	if (rc < 0)
		return -1;
	silo_watch_event *o = xcalloc(*n ? *n : 1, sizeof *o);
	for (size_t i = 0; i < *n; i++) {
		o[i].kind = e[i].kind;
		o[i].name = e[i].name;
		e[i].name = NULL;
	}
	watch_events_free(e, *n);
	*evs = o;
	return rc;
}

SILO_PUBLIC void silo_watch_events_free(silo_watch_event *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i].name);
	free(v);
}

SILO_PUBLIC void silo_watch_stop(silo_watch *h)
{
	if (!h)
		return;
	chan_watch_stop(h->w->sb->ch, h->id);
	free(h);
}
