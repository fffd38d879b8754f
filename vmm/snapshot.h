/* SPDX-License-Identifier: Apache-2.0
 * Snapshots of a silo-vmm VM (docs/vmm.md, "Snapshots"): a state file (vCPUs, irqchip,
 * PIT, clock, serial, virtio-mmio transports and queues, the configuration) and a memory
 * file (guest RAM + a trailer tying it to the state file). Restores map the memory file
 * MAP_PRIVATE, so every VM restored from one snapshot shares the pages it did not write.
 */
#ifndef SILO_VMM_SNAPSHOT_H
#define SILO_VMM_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "config.h"
#include "vmm.h"

#define VMM_SNAPSHOT_VERSION 1
#define VMM_SNAPSHOT_MAX_STATE (16u << 20)
#define VMM_SNAPSHOT_TRAILER 4096

typedef struct vmm_snapshot {
	vmm_file_config cfg; /* devices to rebuild, in order */
	bool rng, irqchip;
	uint64_t mem_bytes;
	int vcpus;
	uint8_t id[16];
	uint8_t *payload; /* the state sections */
	size_t payload_len;
} vmm_snapshot;

/* A snapshot file: an open fd (the caller's) and the name errors use (its path, or "fd:N"
 * for a descriptor passed over the API socket). */
typedef struct vmm_snap_file {
	int fd;
	const char *name;
} vmm_snap_file;

/* Write the snapshot of v (which must be paused) into two regular files open for writing
 * (truncated first). cfg/rng describe its devices. */
int vmm_snapshot_create(vm *v, const vmm_file_config *cfg, bool rng, const vmm_snap_file *state,
			const vmm_snap_file *mem, silo_error *err);
/* Read and check a snapshot: version, the state file's SHA-256, the memory file's size and
 * trailer (same snapshot id), and with verify_memory the SHA-256 of guest RAM. A corrupt or
 * mismatched file is CHECKSUM_MISMATCH naming the file; a newer version is INVALID_CONFIG. */
int vmm_snapshot_open(const vmm_snap_file *state, const vmm_snap_file *mem, bool verify_memory, vmm_snapshot *s,
		      silo_error *err);
/* Load the saved state into v, built (vm_create with cfg.mem_fd, devices attached) from s. */
int vmm_snapshot_apply(vm *v, const vmm_snapshot *s, silo_error *err);
void vmm_snapshot_free(vmm_snapshot *s);

#endif
