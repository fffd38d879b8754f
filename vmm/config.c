/* SPDX-License-Identifier: Apache-2.0
 * --config FILE: the subset of Firecracker's JSON configuration silo-vmm supports
 * ("boot-source", "machine-config", "drives", "vsock"). Unknown keys are errors
 * that name the key; strings are copied (owned by vmm_file_config).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonkeys.h"
#include "common/util.h"
#include "config.h"

static int bad(silo_error *err, const char *field, const char *what)
{
	return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "config: %s: %s", field, what);
}

static int check_keys(json_t *obj, const char *where, const char *const *allowed, silo_error *err)
{
	const char *k = json_unknown_key(obj, allowed);
	if (k) {
		char f[160];
		snprintf(f, sizeof f, "%s%s%s", where, *where ? "." : "", k);
		return bad(err, f, "unknown or unsupported key");
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

static int need_object(json_t *o, const char *where, silo_error *err)
{
	return json_is_object(o) ? 0 : bad(err, where, "expected an object");
}

int vmm_config_parse_boot_source(json_t *b, const char *where, vmm_file_config *c, silo_error *err)
{
	static const char *const keys[] = {"kernel_image_path", "boot_args", "initrd_path", NULL};
	char *kernel = NULL, *args = NULL, *initrd = NULL;
	if (need_object(b, where, err) < 0 || check_keys(b, where, keys, err) < 0 ||
	    get_str(b, where, "kernel_image_path", true, &kernel, err) < 0 ||
	    get_str(b, where, "boot_args", false, &args, err) < 0 ||
	    get_str(b, where, "initrd_path", false, &initrd, err) < 0) {
		free(kernel);
		free(args);
		free(initrd);
		return -1;
	}
	free(c->kernel);
	free(c->cmdline);
	free(c->initrd);
	c->kernel = kernel;
	c->cmdline = args;
	c->initrd = initrd;
	return 0;
}

int vmm_config_parse_machine(json_t *m, const char *where, bool partial, vmm_file_config *c, silo_error *err)
{
	static const char *const keys[] = {"vcpu_count", "mem_size_mib", "smt", "track_dirty_pages", NULL};
	uint64_t vcpus = partial ? c->vcpus : 0, mem = partial ? c->mem_mib : 0;
	if (need_object(m, where, err) < 0 || check_keys(m, where, keys, err) < 0 ||
	    get_uint(m, where, "vcpu_count", 1, 32, &vcpus, err) < 0 ||
	    get_uint(m, where, "mem_size_mib", 1, 3072, &mem, err) < 0)
		return -1;
	char f[160];
	if (!vcpus) {
		snprintf(f, sizeof f, "%s.vcpu_count", where);
		return bad(err, f, "required");
	}
	if (!mem) {
		snprintf(f, sizeof f, "%s.mem_size_mib", where);
		return bad(err, f, "required");
	}
	json_t *smt = json_object_get(m, "smt");
	if (smt && !json_is_boolean(smt)) {
		snprintf(f, sizeof f, "%s.smt", where);
		return bad(err, f, "expected true or false");
	}
	if (smt && json_is_true(smt)) {
		snprintf(f, sizeof f, "%s.smt", where);
		return bad(err, f, "true is not supported");
	}
	c->vcpus = vcpus;
	c->mem_mib = mem;
	return 0;
}

int vmm_config_parse_drive(json_t *e, const char *where, vmm_config_drive *out, silo_error *err)
{
	static const char *const keys[] = {"drive_id", "path_on_host", "is_read_only", "is_root_device", NULL};
	vmm_config_drive x = {0};
	char f[160];
	if (need_object(e, where, err) < 0 || check_keys(e, where, keys, err) < 0 ||
	    get_str(e, where, "drive_id", true, &x.id, err) < 0 ||
	    get_str(e, where, "path_on_host", true, &x.path, err) < 0)
		goto fail;
	if (strchr(x.path, ',') || strchr(x.id, ',')) {
		bad(err, where, "commas in path_on_host or drive_id are not supported");
		goto fail;
	}
	if (strlen(x.id) > 20) {
		snprintf(f, sizeof f, "%s.drive_id", where);
		bad(err, f, "longer than 20 bytes");
		goto fail;
	}
	static const char *const bools[] = {"is_read_only", "is_root_device"};
	for (size_t i = 0; i < 2; i++) {
		json_t *bv = json_object_get(e, bools[i]);
		if (bv && !json_is_boolean(bv)) {
			snprintf(f, sizeof f, "%s.%s", where, bools[i]);
			bad(err, f, "expected true or false");
			goto fail;
		}
	}
	json_t *ro = json_object_get(e, "is_read_only");
	x.read_only = ro && json_is_true(ro);
	free(out->id);
	free(out->path);
	*out = x;
	return 0;
fail:
	free(x.id);
	free(x.path);
	return -1;
}

int vmm_config_parse_vsock(json_t *v, const char *where, vmm_file_config *c, silo_error *err)
{
	static const char *const keys[] = {"guest_cid", "uds_path", "vsock_id", NULL};
	char *uds = NULL, *vid = NULL;
	uint64_t cid = 0;
	if (need_object(v, where, err) < 0 || check_keys(v, where, keys, err) < 0 ||
	    get_str(v, where, "uds_path", true, &uds, err) < 0 || get_str(v, where, "vsock_id", false, &vid, err) < 0)
		goto fail;
	free(vid);
	vid = NULL;
	if (!json_object_get(v, "guest_cid")) {
		char f[160];
		snprintf(f, sizeof f, "%s.guest_cid", where);
		bad(err, f, "required");
		goto fail;
	}
	if (get_uint(v, where, "guest_cid", 3, UINT32_MAX - 1, &cid, err) < 0)
		goto fail;
	if (strlen(uds) > 100) {
		char f[160];
		snprintf(f, sizeof f, "%s.uds_path", where);
		bad(err, f, "longer than 100 bytes (unix socket path limit, with room for _PORT)");
		goto fail;
	}
	free(c->vsock_uds);
	c->vsock_uds = uds;
	c->vsock_cid = cid;
	return 0;
fail:
	free(uds);
	free(vid);
	return -1;
}

int vmm_config_load(const char *path, vmm_file_config *c, silo_error *err)
{
	memset(c, 0, sizeof *c);
	json_error_t je;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "config %s: line %d column %d: %s", path, je.line,
				 je.column, je.text);
	int rc = vmm_config_parse(root, c, err);
	json_decref(root);
	return rc;
}

int vmm_config_parse(json_t *root, vmm_file_config *c, silo_error *err)
{
	memset(c, 0, sizeof *c);
	int rc = -1;
	static const char *const top[] = {"boot-source", "machine-config", "drives", "vsock", NULL};
	if (!json_is_object(root)) {
		bad(err, "(top level)", "expected an object");
		goto out;
	}
	if (check_keys(root, "", top, err) < 0)
		goto out;
	json_t *b = json_object_get(root, "boot-source");
	if (!b) {
		bad(err, "boot-source", "required object");
		goto out;
	}
	if (vmm_config_parse_boot_source(b, "boot-source", c, err) < 0)
		goto out;
	c->vcpus = 1;
	c->mem_mib = 128;
	json_t *m = json_object_get(root, "machine-config");
	if (m && vmm_config_parse_machine(m, "machine-config", true, c, err) < 0)
		goto out;
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
			if (vmm_config_parse_drive(e, where, &c->drives[i], err) < 0)
				goto out;
			c->ndrives = i + 1;
			for (size_t j = 0; j < i; j++)
				if (!strcmp(c->drives[j].id, c->drives[i].id)) {
					bad(err, where, "duplicate drive_id");
					goto out;
				}
		}
	}
	json_t *v = json_object_get(root, "vsock");
	if (v && vmm_config_parse_vsock(v, "vsock", c, err) < 0)
		goto out;
	rc = 0;
out:
	if (rc < 0)
		vmm_config_free(c);
	return rc;
}

json_t *vmm_config_json(const vmm_file_config *c)
{
	json_t *root = json_object();
	if (c->kernel) {
		json_t *b = json_pack("{s:s}", "kernel_image_path", c->kernel);
		if (c->cmdline)
			json_object_set_new(b, "boot_args", json_string(c->cmdline));
		if (c->initrd)
			json_object_set_new(b, "initrd_path", json_string(c->initrd));
		json_object_set_new(root, "boot-source", b);
	}
	json_object_set_new(root, "machine-config",
			    json_pack("{s:I,s:I,s:b,s:b}", "vcpu_count", (json_int_t)c->vcpus, "mem_size_mib",
				      (json_int_t)c->mem_mib, "smt", 0, "track_dirty_pages", 0));
	json_t *d = json_array();
	for (size_t i = 0; i < c->ndrives; i++)
		json_array_append_new(d, json_pack("{s:s?,s:s,s:b,s:b}", "drive_id", c->drives[i].id, "path_on_host",
						   c->drives[i].path, "is_read_only", c->drives[i].read_only,
						   "is_root_device", 0));
	json_object_set_new(root, "drives", d);
	if (c->vsock_uds)
		json_object_set_new(root, "vsock", json_pack("{s:I,s:s}", "guest_cid", (json_int_t)c->vsock_cid,
							     "uds_path", c->vsock_uds));
	return root;
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
