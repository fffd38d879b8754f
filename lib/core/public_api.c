/* SPDX-License-Identifier: Apache-2.0
 * The public C API (include/silo/silo.h): opaque handles over the spec layer
 * and the sandbox core, for embedding Silo without a daemon.
 */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
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

SILO_PUBLIC int silo_sandbox_exec(silo_sandbox *w, const silo_exec_opts *o, silo_exec_result *res, silo_error *err)
{
	if (!o || !o->argv || !o->argv[0])
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, w->sb->id, "exec: argv must not be empty");
	const vm_spec *s = &w->sb->spec;
	/* The spec's environment and secrets first, the call's on top. */
	char **env = spec_exec_env(s, (char *const *)o->env, err);
	if (!env) {
		silo_error_set_vm(err, w->sb->id);
		return -1;
	}
	exec_req r = {.argv = (char *const *)o->argv,
		      .env = env,
		      .cwd = o->cwd ? o->cwd : s->workdir,
		      .stdin_data = o->stdin_data,
		      .stdin_len = o->stdin_len,
		      .timeout_ms = o->timeout_ms,
		      .uid = -1,
		      .gid = -1};
	exec_result er;
	int rc = chan_exec(w->sb->ch, &r, (chan_output_cb)o->on_output, o->userdata, &er, err);
	spec_env_free(env);
	if (rc < 0) {
		silo_error_set_vm(err, w->sb->id);
		return -1;
	}
	if (res)
		*res = (silo_exec_result){.exit_code = er.signal ? 128 + er.signal : er.exit_code, .signal = er.signal,
					  .timed_out = er.timed_out, .duration_ms = er.duration_ms};
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
