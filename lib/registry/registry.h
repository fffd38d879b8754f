/* SPDX-License-Identifier: Apache-2.0
 * Registry: the manager's persistent record of sandboxes, in one SQLite file
 * (WAL mode) under the state dir. Tables (docs/architecture.md):
 *   sandboxes    one row per sandbox ever created (current state, pid, rundir, spec hash)
 *   specs        hac.toml text by SHA-256 (deduplicated)
 *   states       every state transition (old, new, reason, time)
 *   deployments  every create attempt (spec, provider, result, duration, error)
 * The schema is versioned with PRAGMA user_version; registry_open migrates
 * older files forward and refuses files written by a newer Silo.
 * All functions are thread-safe (one connection, serialized by a mutex).
 *
 * Durability: WAL with synchronous=NORMAL. A write that returned is in the
 * WAL file (the OS has it): it survives kill -9 of the process, and a
 * transaction is all or nothing across any crash; the last transactions before
 * a power loss may be rolled back (the WAL is synced at checkpoints). That
 * contract is what lets the manager group-commit: several callers' writes in
 * one transaction (registry_set_states), each caller returning only after the
 * COMMIT that holds its write (lib/core/manager.c, "Group commit").
 *
 * Checkpoints: a commit that finds the WAL past SQLite's auto-checkpoint size
 * copies it into the database and fsyncs, inside the committing caller (tens
 * to hundreds of ms on a busy disk, with the registry's lock held). The
 * auto-checkpoint is raised to a backstop (REG_AUTOCHECKPOINT_PAGES) and the
 * owner calls registry_checkpoint periodically (silod: the manager's
 * monitor), which checkpoints passively on a connection of its own, beside
 * the writer and the readers, so no caller waits for the fsync.
 */
#ifndef SILO_REGISTRY_H
#define SILO_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

#define REGISTRY_SCHEMA_VERSION 2

typedef struct registry registry;

typedef struct reg_sandbox {
	char id[SILO_ID_MAX];
	char name[65];
	char provider[32];
	char state[16];
	char reason[512];
	int64_t pid;
	char rundir[4096];
	uint32_t vcpus;
	uint64_t memory_mb;
	uint64_t created_ms;
	uint64_t updated_ms;
	char spec_hash[65];
	char *spec_toml;         /* owned; NULL if unknown */
	char *metadata_json;     /* owned; JSON object text, "{}" if none */
} reg_sandbox;

typedef struct reg_filter {
	const char *state;        /* exact state name, NULL = any */
	bool live_only;           /* exclude terminated/error */
	const char *provider;     /* exact, NULL = any */
	const char *name_prefix;  /* NULL = any */
	const char *meta_key;     /* metadata key that must equal meta_value */
	const char *meta_value;
} reg_filter;

typedef struct reg_state_row {
	uint64_t ts_ms;
	char old_state[16];
	char new_state[16];
	char reason[512];
} reg_state_row;

int registry_open(const char *path, registry **out, silo_error *err);
void registry_close(registry *r);
/* A passive WAL checkpoint on the registry's checkpoint connection (opened at
 * the first call): never blocks the writer; 0, or -1 with err. */
int registry_checkpoint(registry *r, silo_error *err);
int registry_schema_version(registry *r);

/* Insert a new sandbox row (and its spec) in state s->state. CONFLICT if the id exists. */
int registry_insert(registry *r, const reg_sandbox *s, silo_error *err);
/* Record a state transition: updates sandboxes.state/reason and appends to states. */
int registry_set_state(registry *r, const char *id, const char *old_state, const char *new_state,
		       const char *reason, silo_error *err);
/* One state transition of registry_set_state; a batch is written in order. */
typedef struct reg_state_change {
	const char *id, *old_state, *new_state, *reason;
} reg_state_change;
/* Many transitions in one transaction, in order; a transition of a sandbox
 * without a row is skipped (as registry_set_state's VM_NOT_FOUND), any other
 * failure writes none of them. */
int registry_set_states(registry *r, const reg_state_change *v, size_t n, silo_error *err);
/* registry_insert + registry_deploy_begin in one transaction (a create). */
int registry_insert_deploy(registry *r, const reg_sandbox *s, const char *actor, int64_t *dep_id, silo_error *err);
/* registry_set_runtime + registry_deploy_end(result "ok") in one transaction. */
int registry_spawned(registry *r, const char *id, const char *provider, int64_t pid, const char *rundir,
		     int64_t dep_id, uint64_t duration_ms, silo_error *err);
int registry_set_runtime(registry *r, const char *id, const char *provider, int64_t pid,
			 const char *rundir, silo_error *err);
/* VM_NOT_FOUND if absent. Free with reg_sandbox_clear. */
int registry_get(registry *r, const char *id, reg_sandbox *out, silo_error *err);
int registry_list(registry *r, const reg_filter *f, reg_sandbox **out, size_t *n, silo_error *err);
int registry_delete(registry *r, const char *id, silo_error *err);
int registry_states(registry *r, const char *id, reg_state_row **out, size_t *n, silo_error *err);
/* Deployments: one row per create attempt; returns the row id in *dep_id. */
int registry_deploy_begin(registry *r, const char *sandbox_id, const char *spec_hash,
			  const char *actor, int64_t *dep_id, silo_error *err);
int registry_deploy_end(registry *r, int64_t dep_id, const char *provider, const char *result,
			const char *error, uint64_t duration_ms, silo_error *err);
/* Count of deployments with the given result (tests, metrics). */
int registry_count_deployments(registry *r, const char *result, int64_t *count, silo_error *err);

void reg_sandbox_clear(reg_sandbox *s);
void reg_sandboxes_free(reg_sandbox *v, size_t n);
/* Lower-case hex SHA-256 of buf into out[65]. */
void registry_sha256_hex(const void *buf, size_t len, char out[65]);

#endif
