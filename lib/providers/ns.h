/* SPDX-License-Identifier: Apache-2.0
 * Internals of the namespace provider (namespace.c), split by concern:
 * ns-cgroup.c (v1/v2 limits), ns-seccomp.c (+ ns-seccomp-deny.h, the reviewed
 * deny-list), ns-rootfs.c (the cached busybox + agent base layer).
 */
#ifndef SILO_PROVIDERS_NS_H
#define SILO_PROVIDERS_NS_H

#include <limits.h>
#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

/* ---- cgroups ---- */
enum { NS_CG_MAX = 5 };
typedef struct ns_cgroup {
	int n;
	char path[NS_CG_MAX][PATH_MAX];   /* directories created for this sandbox */
	char procs[NS_CG_MAX][PATH_MAX];  /* their cgroup.procs files (precomputed for the child) */
	bool v2;                          /* limits on a cgroup2 hierarchy */
	char freeze[PATH_MAX];            /* v2 cgroup.freeze or v1 freezer.state, "" if none */
	bool freeze_v1;
} ns_cgroup;

typedef struct ns_limits {
	uint64_t memory_bytes;            /* 0 = none */
	uint32_t cpu_millis;              /* 1000 = one CPU, 0 = none */
	uint32_t pids_max;                /* 0 = none */
} ns_limits;

/* Compute paths for sandbox id (no side effects). */
void ns_cgroup_paths(const char *id, ns_cgroup *cg);
/* Create the cgroups and apply limits; removes what it made on failure. */
int ns_cgroup_create(const char *id, const ns_limits *lim, ns_cgroup *cg, silo_error *err);
/* Remove (retrying while the kernel finishes tearing down tasks). 0 if all gone. */
int ns_cgroup_remove(ns_cgroup *cg);
/* Freeze or thaw every task. */
int ns_cgroup_freeze(ns_cgroup *cg, bool frozen, silo_error *err);
/* Describe the hierarchy in use ("cgroup v1 (memory,cpu,pids,freezer)" ...) or why none. */
bool ns_cgroup_probe(char *desc, size_t len);

/* ---- seccomp ---- */
typedef struct ns_deny_entry {
	const char *name;
	const char *why;
} ns_deny_entry;
extern const ns_deny_entry ns_seccomp_deny[];
extern const size_t ns_seccomp_deny_count;
typedef struct ns_bpf {
	struct sock_fprog prog;
} ns_bpf;
/* Compile the deny-list (EPERM) to BPF in the parent (libseccomp allocates). */
int ns_seccomp_build(ns_bpf *out, silo_error *err);
void ns_seccomp_free(ns_bpf *b);
/* In the child: load it (a prctl only; needs no_new_privs or CAP_SYS_ADMIN). 0 or -errno. */
int ns_seccomp_apply(const ns_bpf *b);
/* build + no_new_privs + apply in the calling process (tests). 0 or -errno. */
int ns_seccomp_install(void);

/* ---- base rootfs ---- */
/* Ensure the cached read-only base layer for agent_path exists; path into out. */
int ns_rootfs_base(const char *agent_path, char *out, size_t len, silo_error *err);

#endif
