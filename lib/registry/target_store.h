/* SPDX-License-Identifier: Apache-2.0
 * Target store: the remote silods this silod places sandboxes on
 * (daemon/targets.c, docs/remote.md), kept in the registry's SQLite file
 * (registry.db, WAL) through its own connection, in tables of its own:
 *   targets           one row per target: endpoint, credentials, health
 *   remote_sandboxes  one row per sandbox created on a target through this silod
 *   remote_deployments one row per deployment placed on a target through this
 *                     silod (recorded when it is created or queued)
 *   target_queue      operations for a target that was offline, applied in
 *                     order (seq) when it returns; idem_key is unique, so an
 *                     operation is queued once and a retry of the same key
 *                     finds the first (a kill -9 between queueing and applying
 *                     loses nothing: rows are committed before the reply)
 * The tables carry their own version (target_schema). Thread-safe (one
 * connection, one mutex). Credentials (token, client key) are stored in the
 * state dir (0700), like the registry itself.
 */
#ifndef SILO_REGISTRY_TARGET_STORE_H
#define SILO_REGISTRY_TARGET_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define TSTORE_NAME_MAX 64

typedef struct tstore tstore;

typedef struct tstore_target {
	char name[TSTORE_NAME_MAX + 1];
	char url[512];
	char *token;                 /* owned */
	char *ca_pem, *cert_pem, *key_pem;   /* owned, NULL = none */
	char state[16];              /* online | offline */
	uint32_t failures;           /* consecutive failed probes */
	uint64_t added_ms, last_ok_ms;
	char last_error[512];
	char *info_json;             /* owned: version, providers, capacity at the last probe */
} tstore_target;

typedef struct tstore_sandbox {
	char id[SILO_ID_MAX];
	char name[65];
	char target[TSTORE_NAME_MAX + 1];
	uint64_t created_ms;
} tstore_sandbox;

typedef struct tstore_op {
	int64_t seq;
	char target[TSTORE_NAME_MAX + 1];
	char method[8];
	char path[1024];             /* with its query */
	char ctype[64];
	char *body;                  /* owned */
	size_t body_len;
	char idem_key[129];
	char state[16];              /* pending | applying | done | failed | cancelled */
	uint64_t created_ms, done_ms;
	char *result;                /* owned: the target's answer (JSON) or the error */
} tstore_op;

int tstore_open(const char *path, tstore **out, silo_error *err);
void tstore_close(tstore *s);

/* Insert; CONFLICT if the name exists. */
int tstore_target_add(tstore *s, const tstore_target *t, silo_error *err);
/* NOT_FOUND naming the target when absent. Clear *out with tstore_target_clear. */
int tstore_target_get(tstore *s, const char *name, tstore_target *out, silo_error *err);
int tstore_target_list(tstore *s, tstore_target **out, size_t *n, silo_error *err);
int tstore_target_remove(tstore *s, const char *name, silo_error *err);
/* Record a probe: state, failures, last_ok_ms (when ok), last_error, info (NULL = keep). */
int tstore_target_health(tstore *s, const char *name, const char *state, uint32_t failures, bool ok,
			 const char *last_error, const char *info_json, silo_error *err);
void tstore_target_clear(tstore_target *t);
void tstore_targets_free(tstore_target *v, size_t n);

int tstore_sandbox_add(tstore *s, const tstore_sandbox *b, silo_error *err);
/* By id or name: 0 and *out, 1 when absent. */
int tstore_sandbox_find(tstore *s, const char *id_or_name, tstore_sandbox *out, silo_error *err);
/* target NULL = all */
int tstore_sandbox_list(tstore *s, const char *target, tstore_sandbox **out, size_t *n, silo_error *err);
int tstore_sandbox_remove(tstore *s, const char *id, silo_error *err);
int tstore_sandbox_count(tstore *s, const char *target, int64_t *n, silo_error *err);

/* Deployments on targets, by name. find: 0 and target, 1 when absent. */
int tstore_deploy_add(tstore *s, const char *name, const char *target, silo_error *err);
int tstore_deploy_find(tstore *s, const char *name, char target[TSTORE_NAME_MAX + 1], silo_error *err);
int tstore_deploy_remove(tstore *s, const char *name, silo_error *err);
int tstore_deploy_count(tstore *s, const char *target, int64_t *n, silo_error *err);
/* Queue op (seq and state set here). An idem_key already queued: 1 and *seq
 * of that row (nothing added). */
int tstore_op_add(tstore *s, tstore_op *op, silo_error *err);
/* The oldest pending op of target: 0 and *out, 1 when none. */
int tstore_op_next(tstore *s, const char *target, tstore_op *out, silo_error *err);
int tstore_op_finish(tstore *s, int64_t seq, const char *state, const char *result, silo_error *err);
/* Cancel a pending op: NOT_FOUND, or CONFLICT when it is no longer pending. */
int tstore_op_cancel(tstore *s, int64_t seq, silo_error *err);
/* target NULL = all; pending_only */
int tstore_op_list(tstore *s, const char *target, bool pending_only, tstore_op **out, size_t *n, silo_error *err);
int tstore_op_pending(tstore *s, const char *target, int64_t *n, silo_error *err);
void tstore_op_clear(tstore_op *op);
void tstore_ops_free(tstore_op *v, size_t n);

#endif
