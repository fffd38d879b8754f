/* SPDX-License-Identifier: Apache-2.0
 * Deployments: --set overrides of a deployment spec.
 * Locking and durability: the rules at the top of deploy.c.
 */
#include "core/deploy_int.h"

/* ---- overrides ---- */

static int set_u32(const char *key, const char *v, uint32_t max, uint32_t *out, silo_error *err)
{
	char *end;
	errno = 0;
	unsigned long x = strtoul(v, &end, 10);
	if (!*v || *end || errno || x > max || v[0] == '-')
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--set %s: expected an integer 0..%u, got '%.64s'", key,
				 max, v);
	*out = (uint32_t)x;
	return 0;
}

void deploy_set_kv(spec_kv *kv, size_t *n, const char *k, const char *v)
{
	for (size_t i = 0; i < *n; i++) {
		if (!strcmp(kv[i].key, k)) {
			free(kv[i].value);
			kv[i].value = xstrdup(v);
			return;
		}
	}
	if (*n < SPEC_MAX_KV) {
		kv[*n].key = xstrdup(k);
		kv[*n].value = xstrdup(v);
		(*n)++;
	}
}

static void set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = *v ? xstrdup(v) : NULL;
}

int deploy_apply_override(vm_spec *s, const char *kv, silo_error *err)
{
	long bad_at = utf8_invalid_at(kv);   /* the spec is stored as TOML, which must be UTF-8 */
	if (bad_at >= 0)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--set: byte %ld of '%.40s...' is not valid UTF-8",
				 bad_at, kv);
	for (const unsigned char *c = (const unsigned char *)kv; *c; c++)
		if ((*c < 0x20 && *c != '\t') || *c == 0x7f)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "--set: byte %ld is the control character 0x%02x (not allowed in overrides)",
					 (long)(c - (const unsigned char *)kv), *c);
	const char *eq = strchr(kv, '=');
	char key[300];
	if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof key)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--set: expected KEY=VALUE, got '%.64s'", kv);
	memcpy(key, kv, (size_t)(eq - kv));
	key[eq - kv] = '\0';
	const char *v = eq + 1;
	if (strlen(v) > 4096)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--set %s: value longer than 4096 bytes", key);
	if (!strcmp(key, "resources.vcpus") || !strcmp(key, "vcpus"))
		return set_u32(key, v, SPEC_VCPUS_MAX, &s->vcpus, err);
	if (!strcmp(key, "resources.memory_mb") || !strcmp(key, "memory_mb"))
		return set_u32(key, v, SPEC_MEMORY_MAX_MB, &s->memory_mb, err);
	if (!strcmp(key, "sandbox.timeout_s"))
		return set_u32(key, v, SPEC_TIMEOUT_MAX_S, &s->timeout_s, err);
	if (!strcmp(key, "sandbox.pids_max"))
		return set_u32(key, v, SPEC_PIDS_MAX, &s->pids_max, err);
	if (!strcmp(key, "boot.boot_timeout_ms"))
		return set_u32(key, v, SPEC_BOOT_TIMEOUT_MAX_MS, &s->boot_timeout_ms, err);
	/* String fields: the same bounds as the hac.toml parser, so the stored spec parses back. */
	static const struct {
		const char *key, *alias;
		size_t off, max;
	} strs[] = {
		{"vm.provider", "provider", offsetof(vm_spec, provider), 64},
		{"vm.description", NULL, offsetof(vm_spec, description), 1024},
		{"boot.image", NULL, offsetof(vm_spec, image), 128},
		{"sandbox.workdir", NULL, offsetof(vm_spec, workdir), 4096},
	};
	for (size_t i = 0; i < ARRAY_SIZE(strs); i++) {
		if (strcmp(key, strs[i].key) != 0 && !(strs[i].alias && !strcmp(key, strs[i].alias)))
			continue;
		if (strlen(v) > strs[i].max)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--set %s: at most %zu bytes", key, strs[i].max);
		set_str((char **)((char *)s + strs[i].off), v);
		return 0;
	}
	if (!strcmp(key, "network.enabled")) {
		if (strcmp(v, "true") && strcmp(v, "false"))
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--set %s: expected true or false", key);
		s->network = !strcmp(v, "true");
		return 0;
	}
	if (!strncmp(key, "sandbox.env.", 12) && key[12]) {
		spec_set_env(s, key + 12, v);
		return 0;
	}
	if (!strncmp(key, "metadata.", 9) && key[9] && strlen(key + 9) <= 256) {
		if (!strncmp(key + 9, "silo.", 5))
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--set %s: metadata keys silo.* are reserved", key);
		deploy_set_kv(s->metadata, &s->n_metadata, key + 9, v);
		return 0;
	}
	return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
			 "--set %.100s: unknown key (expected resources.vcpus, resources.memory_mb, vm.provider, "
			 "vm.description, boot.image, boot.boot_timeout_ms, network.enabled, sandbox.workdir, "
			 "sandbox.timeout_s, sandbox.pids_max, sandbox.env.NAME or metadata.KEY)",
			 key);
}
