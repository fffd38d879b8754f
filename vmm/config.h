/* SPDX-License-Identifier: Apache-2.0
 * --config FILE: Firecracker-style JSON (the subset in docs/vmm.md). */
#ifndef SILO_VMM_CONFIG_H
#define SILO_VMM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
void vmm_config_free(vmm_file_config *c);

#endif
