/* SPDX-License-Identifier: Apache-2.0
 * --config FILE: the subset of Firecracker's JSON configuration silo-vmm supports
 * ("boot-source", "machine-config", "drives", "vsock"). Unknown keys are errors
 * that name the key; strings are copied (owned by vmm_file_config).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "config.h"

static int bad(silo_error *err, const char *field, const char *what)
{
	return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "config: %s: %s", field, what);
}

static int check_keys(json_t *obj, const char *where, const char *const *allowed, silo_error *err)
{
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v) {
		bool ok = false;
		for (size_t i = 0; allowed[i]; i++)
			ok |= !strcmp(k, allowed[i]);
		if (!ok) {
			char f[160];
			snprintf(f, sizeof f, "%s%s%s", where, *where ? "." : "", k);
			return bad(err, f, "unknown or unsupported key");
		}
	}
	return 0;
}

static int get_str(json_t *obj, const char *where, const char *key, bool required, char **out, silo_error *err)
{
	json_t *v = json_object_get(obj, key);
	char f[160];
	snprintf(f, sizeof f, "%s.%s", where, key);
	if (!v)
		return required ? bad(err, f, "required") : 0;
	if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) > 4095 ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return bad(err, f, "expected a non-empty string without NUL (max 4095 bytes)");
	free(*out);
	*out = xstrdup(json_string_value(v));
	return 0;
}

static int get_uint(json_t *obj, const char *where, const char *key, uint64_t min, uint64_t max, uint64_t *out,
		    silo_error *err)
{
	json_t *v = json_object_get(obj, key);
	char f[160], r[96];
	snprintf(f, sizeof f, "%s.%s", where, key);
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)min || (uint64_t)json_integer_value(v) > max) {
		snprintf(r, sizeof r, "expected an integer in %llu..%llu", (unsigned long long)min, (unsigned long long)max);
		return bad(err, f, r);
	}
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

int vmm_config_load(const char *path, vmm_file_config *c, silo_error *err)
{
	memset(c, 0, sizeof *c);
	json_error_t je;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "config %s: line %d column %d: %s", path, je.line,
				 je.column, je.text);
	int rc = -1;
	static const char *const top[] = {"boot-source", "machine-config", "drives", "vsock", NULL};
	static const char *const boot[] = {"kernel_image_path", "boot_args", "initrd_path", NULL};
	static const char *const mc[] = {"vcpu_count", "mem_size_mib", "smt", "track_dirty_pages", NULL};
	static const char *const dr[] = {"drive_id", "path_on_host", "is_read_only", "is_root_device", NULL};
	static const char *const vs[] = {"guest_cid", "uds_path", "vsock_id", NULL};
	if (!json_is_object(root)) {
		bad(err, "(top level)", "expected an object");
		goto out;
	}
	if (check_keys(root, "", top, err) < 0)
		goto out;
	json_t *b = json_object_get(root, "boot-source");
	if (!json_is_object(b)) {
		bad(err, "boot-source", "required object");
		goto out;
	}
	if (check_keys(b, "boot-source", boot, err) < 0 ||
	    get_str(b, "boot-source", "kernel_image_path", true, &c->kernel, err) < 0 ||
	    get_str(b, "boot-source", "boot_args", false, &c->cmdline, err) < 0 ||
	    get_str(b, "boot-source", "initrd_path", false, &c->initrd, err) < 0)
		goto out;
	json_t *m = json_object_get(root, "machine-config");
	c->vcpus = 1;
	c->mem_mib = 128;
	if (m) {
		if (!json_is_object(m)) {
			bad(err, "machine-config", "expected an object");
			goto out;
		}
		if (check_keys(m, "machine-config", mc, err) < 0 ||
		    get_uint(m, "machine-config", "vcpu_count", 1, 32, &c->vcpus, err) < 0 ||
		    get_uint(m, "machine-config", "mem_size_mib", 1, 3072, &c->mem_mib, err) < 0)
			goto out;
		json_t *smt = json_object_get(m, "smt");
		if (smt && json_is_true(smt)) {
			bad(err, "machine-config.smt", "true is not supported");
			goto out;
		}
	}
	json_t *d = json_object_get(root, "drives");
	if (d) {
		if (!json_is_array(d) || json_array_size(d) > VMM_CONFIG_MAX_DRIVES) {
			bad(err, "drives", "expected an array of at most 8 drives");
			goto out;
		}
		size_t i;
		json_t *e;
		json_array_foreach(d, i, e) {
			char where[32];
			snprintf(where, sizeof where, "drives[%zu]", i);
			if (!json_is_object(e)) {
				bad(err, where, "expected an object");
				goto out;
			}
			vmm_config_drive *x = &c->drives[i];
			c->ndrives = i + 1; /* so vmm_config_free frees what get_str stored */
			if (check_keys(e, where, dr, err) < 0 || get_str(e, where, "drive_id", true, &x->id, err) < 0 ||
			    get_str(e, where, "path_on_host", true, &x->path, err) < 0)
				goto out;
			c->ndrives = i + 1;
			if (strchr(x->path, ',') || strchr(x->id, ',')) {
				bad(err, where, "commas in path_on_host or drive_id are not supported");
				goto out;
			}
			if (strlen(x->id) > 20) {
				bad(err, where, "drive_id longer than 20 bytes");
				goto out;
			}
			json_t *ro = json_object_get(e, "is_read_only");
			if (ro && !json_is_boolean(ro)) {
				char f[64];
				snprintf(f, sizeof f, "%s.is_read_only", where);
				bad(err, f, "expected true or false");
				goto out;
			}
			x->read_only = ro && json_is_true(ro);
		}
	}
	json_t *v = json_object_get(root, "vsock");
	if (v) {
		if (!json_is_object(v)) {
			bad(err, "vsock", "expected an object");
			goto out;
		}
		c->vsock_cid = 3;
		if (check_keys(v, "vsock", vs, err) < 0 || get_str(v, "vsock", "uds_path", true, &c->vsock_uds, err) < 0 ||
		    get_uint(v, "vsock", "guest_cid", 3, UINT32_MAX - 1, &c->vsock_cid, err) < 0)
			goto out;
	}
	rc = 0;
out:
	json_decref(root);
	if (rc < 0)
		vmm_config_free(c);
	return rc;
}

void vmm_config_free(vmm_file_config *c)
{
	free(c->kernel);
	free(c->cmdline);
	free(c->initrd);
	free(c->vsock_uds);
	for (size_t i = 0; i < c->ndrives; i++) {
		free(c->drives[i].id);
		free(c->drives[i].path);
	}
	memset(c, 0, sizeof *c);
}
