/* SPDX-License-Identifier: Apache-2.0
 * Per-sandbox cgroups (cgroup.c): limits (memory, cpu, pids) and freezing, on cgroup v1
 * or v2, under <hierarchy>/silo/<id>. Shared by the namespace provider, the qemu
 * provider (the jail's cgroup), silo-vmm's jail (vmm/jail.c) and silo-jailer.
 */
#ifndef SILO_COMMON_CGROUP_H
#define SILO_COMMON_CGROUP_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

enum { CG_MAX = 5 };
typedef struct cg_set {
	int n;
	char path[CG_MAX][PATH_MAX];   /* directories created for this sandbox */
	char procs[CG_MAX][PATH_MAX];  /* their cgroup.procs files (precomputed for the child) */
	bool v2;                          /* limits on a cgroup2 hierarchy */
	char freeze[PATH_MAX];            /* v2 cgroup.freeze or v1 freezer.state, "" if none */
	bool freeze_v1;
} cg_set;

typedef struct cg_limits {
	uint64_t memory_bytes;            /* 0 = none */
	uint32_t cpu_millis;              /* 1000 = one CPU, 0 = none */
	uint32_t pids_max;                /* 0 = none */
	bool no_freezer;                  /* v1: no freezer cgroup (nothing will freeze it) */
} cg_limits;

/* Compute paths for sandbox id (no side effects). */
void cg_paths(const char *id, cg_set *cg);
/* Create the cgroups and apply limits; removes what it made on failure. */
int cg_create(const char *id, const cg_limits *lim, cg_set *cg, silo_error *err);
/* Remove (retrying while the kernel finishes tearing down tasks). 0 if all gone. */
int cg_remove(cg_set *cg);
/* The memory cgroup's file with the "oom_kill N" line into buf: memory.events
 * (v2) or memory.oom_control (v1). False if there is no memory cgroup. */
bool cg_oom_file(const cg_set *cg, char *buf, size_t len);
/* Freeze or thaw every task. */
int cg_freeze(cg_set *cg, bool frozen, silo_error *err);
/* Describe the hierarchy in use ("cgroup v1 (memory,cpu,pids,freezer)" ...) or why none. */
bool cg_probe(char *desc, size_t len);

#endif
