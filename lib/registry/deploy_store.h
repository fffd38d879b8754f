/* SPDX-License-Identifier: Apache-2.0
 * Deployment store: the persistent record of named agent deployments
 * (lib/core/deploy.c), kept in the registry's SQLite file (registry.db, WAL)
 * through its own connection, in tables of its own (docs/deployments.md):
 *   agent_deployments  one row per deployed agent (the deployed set, exactly)
 *   agent_usage        accumulated vCPU-ms and MiB-ms per (team, agent)
 *   budget_alerts      budget alerts already raised (team, level, budget)
 * Schema 2 added agent_deployments.bundle and .bundle_key.
 * The tables carry their own version (deploy_schema) so the registry's
 * migrations stay independent. Thread-safe (one connection, one mutex).
 */
#ifndef SILO_REGISTRY_DEPLOY_STORE_H
#define SILO_REGISTRY_DEPLOY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define DSTORE_NAME_MAX 64

typedef struct dstore dstore;

typedef struct dstore_row {
	char name[DSTORE_NAME_MAX + 1];
	char team[DSTORE_NAME_MAX + 1];
	char restart[16];            /* never | on-failure | always */
	char state[16];              /* starting | running | backoff | stopping */
	char sandbox_id[SILO_ID_MAX];   /* "" while none */
	char *spec_toml;             /* owned: canonical hac.toml after overrides */
	char *overrides_json;        /* owned: JSON array of "key=value" */
	uint32_t vcpus;
	uint64_t memory_mb;
	uint32_t restarts;
	uint64_t created_ms, updated_ms;
	char last_error[512];
	char bundle[65];             /* sha256 of the signed bundle it unpacks, "" = none */
	char bundle_key[17];         /* the key id that signed it */
} dstore_row;

typedef struct dstore_usage {
	char team[DSTORE_NAME_MAX + 1];
	char agent[DSTORE_NAME_MAX + 1];
	uint64_t vcpu_ms;            /* allocated vCPUs x milliseconds running */
	uint64_t mib_ms;             /* allocated MiB x milliseconds running */
} dstore_usage;

int dstore_open(const char *path, dstore **out, silo_error *err);
void dstore_close(dstore *s);
/* Insert or replace the row for r->name. */
int dstore_put(dstore *s, const dstore_row *r, silo_error *err);
/* Insert; CONFLICT if the name exists. */
int dstore_insert(dstore *s, const dstore_row *r, silo_error *err);
int dstore_delete(dstore *s, const char *name, silo_error *err);
int dstore_list(dstore *s, dstore_row **out, size_t *n, silo_error *err);
void dstore_row_clear(dstore_row *r);
void dstore_rows_free(dstore_row *v, size_t n);

/* Add the deltas in v[0..n) to the accumulated usage, in one transaction. */
int dstore_usage_add(dstore *s, const dstore_usage *v, size_t n, silo_error *err);
int dstore_usage_list(dstore *s, dstore_usage **out, size_t *n, silo_error *err);
/* Record that the alert (team, level percent, budget) was raised; *first is
 * true only the first time (so an alert is raised once, also across restarts). */
int dstore_alert_once(dstore *s, const char *team, int level, double budget, bool *first, silo_error *err);

#endif
