/* SPDX-License-Identifier: Apache-2.0
 * silod create body: hac.toml embedded in JSON, or fields over the provider's
 * default template (see api_parse.h).
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "daemon/api_parse.h"

static int json_kv(json_t *o, const char *key, vm_spec *spec, bool env, silo_error *err)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return 0;
	if (!json_is_object(v))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: expected an object of strings", key);
	if (json_object_size(v) > SPEC_MAX_KV)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: at most %d entries", key, SPEC_MAX_KV);
	const char *k;
	json_t *val;
	json_object_foreach(v, k, val) {
		if (!json_is_string(val) || !*k || strlen(k) > 256 || json_string_length(val) > 4096)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "%s.%.64s: expected a string (key 1-256 bytes, value at most 4096)", key, k);
		if (env) {
			spec_set_env(spec, k, json_string_value(val));
		} else {
			size_t i;
			for (i = 0; i < spec->n_metadata; i++)
				if (!strcmp(spec->metadata[i].key, k))
					break;
			if (i == spec->n_metadata) {
				if (spec->n_metadata >= SPEC_MAX_KV)
					return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: too many entries", key);
				spec->metadata[i].key = xstrdup(k);
				spec->n_metadata++;
			} else {
				free(spec->metadata[i].value);
			}
			spec->metadata[i].value = xstrdup(json_string_value(val));
		}
	}
	return 0;
}

/* "secrets": {"K": "value" | {"file": "/host/path"} | {"env": "NAME"}}. Inline values
 * go to the spec in memory only; the JSON copy of each is zeroed once taken. */
static int json_secrets(json_t *o, vm_spec *spec, silo_error *err)
{
	json_t *v = json_object_get(o, "secrets");
	if (!v)
		return 0;
	if (!json_is_object(v) || json_object_size(v) > SPEC_MAX_KV)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "secrets: expected an object of at most %d entries",
				 SPEC_MAX_KV);
	const char *k;
	json_t *val;
	json_object_foreach(v, k, val) {
		if (!*k || strlen(k) > 256)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "secrets: names are 1-256 bytes");
		if (json_is_string(val)) {
			size_t n = json_string_length(val);
			char *sv = (char *)json_string_value(val);
			int bad = strlen(sv) != n ? 1 : n > SPEC_SECRET_MAX ? 2 : !strcmp(sv, SPEC_SECRET_REDACTED) ? 3 : 0;
			if (!bad)
				spec_set_secret(spec, k, SPEC_SECRET_VALUE, NULL, sv);
			explicit_bzero(sv, n);
			if (bad)
				return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "secrets.%.64s: %s", k,
						 bad == 1   ? "a secret must not contain NUL characters"
						 : bad == 2 ? "a secret is at most 32768 bytes"
							    : "\"***\" is the redaction mark, not a value");
			continue;
		}
		json_t *file = json_object_get(val, "file"), *env = json_object_get(val, "env");
		if (!json_is_object(val) || json_object_size(val) != 1 || (!json_is_string(file) && !json_is_string(env)))
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "secrets.%.64s: expected a string, {\"file\": \"/host/path\"} or {\"env\": \"NAME\"}", k);
		const char *ref = json_string_value(file ? file : env);
		if (strlen(ref) != json_string_length(file ? file : env) || strlen(ref) > 4096)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "secrets.%.64s.%s: expected a string of at most 4096 bytes",
					 k, file ? "file" : "env");
		spec_set_secret(spec, k, file ? SPEC_SECRET_FILE : SPEC_SECRET_ENV, ref, NULL);
	}
	return 0;
}

/* JSON create body: either {"spec": "<hac.toml>"} or fields on top of the
 * provider's default template; "secrets" goes with either. Unknown fields are
 * rejected by name. */
int api_spec_from_json(const char *body, size_t len, vm_spec *spec, silo_error *err)
{
	static const char *const known[] = {"spec", "name", "provider", "vcpus", "memory_mb", "image", "kernel",
					    "rootfs", "env", "metadata", "workdir", "timeout_s",
					    "boot_timeout_ms", "network", "description", "isolation", "secrets", NULL};
	json_t *o = api_json_body(body, len, known, false, err);
	if (!o)
		return -1;
	int rc = -1;
	const char *toml = NULL;
	if (api_json_str(o, "spec", 1 << 20, &toml, err) < 0)
		goto out;
	if (toml) {
		if (json_object_size(o) != 1 + (json_object_get(o, "secrets") != NULL)) {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				  "body: 'spec' cannot be combined with other fields (except 'secrets')");
			goto out;
		}
		rc = spec_parse(toml, strlen(toml), spec, err);
		if (rc < 0) {
			silo_error_prefix(err, "spec");
			goto out;
		}
		if (json_secrets(o, spec, err) < 0 || spec_validate(spec, err) < 0) {
			rc = -1;
			goto out_free;
		}
		goto out;
	}
	const char *provider = NULL, *name = NULL, *s;
	if (api_json_str(o, "provider", 32, &provider, err) < 0 || api_json_str(o, "name", SPEC_NAME_MAX, &name, err) < 0)
		goto out;
	if (spec_default(provider, spec, err) < 0)
		goto out;
	if (provider) {
		free(spec->provider);
		spec->provider = xstrdup(provider);
	}
	if (name)
		snprintf(spec->name, sizeof spec->name, "%s", name);
	uint64_t u;
	int r;
	if ((r = api_json_uint(o, "vcpus", 1024, &u, err)) < 0)
		goto out_free;
	if (r)
		spec->vcpus = (uint32_t)u;
	if ((r = api_json_uint(o, "memory_mb", 1 << 24, &u, err)) < 0)
		goto out_free;
	if (r)
		spec->memory_mb = (uint32_t)u;
	if ((r = api_json_uint(o, "timeout_s", UINT32_MAX, &u, err)) < 0)
		goto out_free;
	if (r)
		spec->timeout_s = (uint32_t)u;
	if ((r = api_json_uint(o, "boot_timeout_ms", UINT32_MAX, &u, err)) < 0)
		goto out_free;
	if (r)
		spec->boot_timeout_ms = (uint32_t)u;
	struct {
		const char *key;
		char **dst;
	} strs[] = {{"image", &spec->image}, {"kernel", &spec->kernel}, {"rootfs", &spec->rootfs},
		    {"workdir", &spec->workdir}, {"description", &spec->description}, {"isolation", &spec->isolation}};
	for (size_t i = 0; i < ARRAY_SIZE(strs); i++) {
		s = NULL;
		if (api_json_str(o, strs[i].key, 4096, &s, err) < 0)
			goto out_free;
		if (s) {
			free(*strs[i].dst);
			*strs[i].dst = xstrdup(s);
		}
	}
	json_t *net = json_object_get(o, "network");
	if (net) {
		if (!json_is_boolean(net)) {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "network: expected true or false");
			goto out_free;
		}
		spec->network = json_is_true(net);
	}
	if (json_kv(o, "env", spec, true, err) < 0 || json_kv(o, "metadata", spec, false, err) < 0 ||
	    json_secrets(o, spec, err) < 0)
		goto out_free;
	if (spec_validate(spec, err) < 0)
		goto out_free;
	rc = 0;
	goto out;
out_free:
	spec_free(spec);
	memset(spec, 0, sizeof *spec);
out:
	json_decref(o);
	return rc;
}

