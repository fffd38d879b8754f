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

/* JSON create body: either {"spec": "<hac.toml>"} or fields on top of the
 * provider's default template. Unknown fields are rejected by name. */
int api_spec_from_json(const char *body, size_t len, vm_spec *spec, silo_error *err)
{
	json_error_t je;
	json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!o)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "body: invalid JSON at line %d column %d: %s",
				 je.line, je.column, je.text);
	int rc = -1;
	if (!json_is_object(o)) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "body: expected a JSON object");
		goto out;
	}
	static const char *const known[] = {"spec", "name", "provider", "vcpus", "memory_mb", "image", "kernel",
					    "rootfs", "env", "metadata", "workdir", "timeout_s",
					    "boot_timeout_ms", "network", "description", "isolation"};
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		bool ok = false;
		for (size_t i = 0; i < ARRAY_SIZE(known) && !ok; i++)
			ok = !strcmp(known[i], k);
		if (!ok) {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "body: unknown field '%.64s'", k);
			goto out;
		}
	}
	const char *toml = NULL;
	if (api_json_str(o, "spec", 1 << 20, &toml, err) < 0)
		goto out;
	if (toml) {
		if (json_object_size(o) != 1) {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "body: 'spec' cannot be combined with other fields");
			goto out;
		}
		rc = spec_parse(toml, strlen(toml), spec, err);
		if (rc < 0)
			silo_error_prefix(err, "spec");
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
	if (json_kv(o, "env", spec, true, err) < 0 || json_kv(o, "metadata", spec, false, err) < 0)
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

