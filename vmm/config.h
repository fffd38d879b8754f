/* SPDX-License-Identifier: Apache-2.0
 * --config FILE: Firecracker-style JSON (the subset in docs/vmm.md). */
#ifndef SILO_VMM_CONFIG_H
#define SILO_VMM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/error.h"

#define VMM_CONFIG_MAX_DRIVES 8

typedef struct vmm_config_drive {
	char *id, *path;
	bool read_only;
} vmm_config_drive;

typedef struct vmm_file_config {
	char *kernel, *cmdline, *initrd, *vsock_uds;
	uint64_t vcpus, mem_mib, vsock_cid;
	vmm_config_drive drives[VMM_CONFIG_MAX_DRIVES];
	size_t ndrives;
} vmm_file_config;

int vmm_config_load(const char *path, vmm_file_config *c, silo_error *err);
/* The same from a parsed document (snapshots embed their configuration). */
int vmm_config_parse(json_t *root, vmm_file_config *c, silo_error *err);
/* The configuration as a document vmm_config_parse accepts (control_api.c). */
json_t *vmm_config_json(const vmm_file_config *c);
/* One section each, shared by --config and the API (control_api.c). `where` prefixes field names in
 * errors. On error nothing in c/out changes. parse_machine with partial=false needs both
 * vcpu_count and mem_size_mib (PUT); partial=true keeps what a key does not give (PATCH). */
int vmm_config_parse_boot_source(json_t *b, const char *where, vmm_file_config *c, silo_error *err);
int vmm_config_parse_machine(json_t *m, const char *where, bool partial, vmm_file_config *c, silo_error *err);
int vmm_config_parse_drive(json_t *e, const char *where, vmm_config_drive *out, silo_error *err);
int vmm_config_parse_vsock(json_t *v, const char *where, vmm_file_config *c, silo_error *err);
void vmm_config_free(vmm_file_config *c);

#endif
