/* SPDX-License-Identifier: Apache-2.0
 * Deployments: long-running named agents on top of the manager
 * (docs/deployments.md). A deployment is a name, a team, a spec (agents/NAME.toml
 * with --set overrides), a restart policy (never | on-failure | always) and the
 * sandbox currently running it. Deployments persist in the registry file
 * (lib/registry/deploy_store.c); on open they are reconciled with the sandboxes
 * the manager recovered. A thread watches them (health, restarts with
 * exponential backoff), accounts usage per team and agent (allocated
 * vCPU-seconds and GiB-seconds, priced from a rate table) and enforces team
 * quotas and budgets (budget-warning at 80%, stop at 100%).
 * Supply chain: with a keyring, a deployment's spec must be signed (NAME.toml.minisig,
 * or the request's spec_signature); a deployment may carry a signed bundle (its code
 * and plugins, a tar) that is verified against the keyring before anything starts and
 * again before every (re)start, and unpacked into the sandbox at DEPLOY_BUNDLE_DIR.
 * Refusals are PLUGIN_UNVERIFIED, audited ("plugin-unverified") and raised as
 * security-violation events.
 * Every function is thread-safe.
 */
#ifndef SILO_CORE_DEPLOY_H
#define SILO_CORE_DEPLOY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/manager.h"

typedef struct deployer deployer;

typedef struct deploy_config {
	const char *state_dir;        /* registry.db lives here; NULL = silo_state_dir() */
	const char *agents_dir;       /* agents/NAME.toml; NULL = specs must come with the request */
	const char *teams_file;       /* TOML quotas/budgets/rates; NULL = one unlimited team, no prices */
	int interval_ms;              /* watch/accounting period; 0 = 500 */
	int backoff_ms;               /* first restart delay, doubled per failure; 0 = 1000 */
	int backoff_max_ms;           /* 0 = 60000 */
	int unhealthy_ms;             /* channel down this long = failed; 0 = 5000 */
} deploy_config;

#define DEPLOY_BUNDLE_DIR "/opt/agent"   /* where a bundle is unpacked in the sandbox */
#define DEPLOY_BUNDLE_KEEP_S 3600          /* an uploaded bundle no deployment uses is kept this long */

typedef struct deploy_req {
	const char *name;             /* 1-64 of [A-Za-z0-9_-] */
	const char *team;             /* NULL = "default" */
	const char *restart;          /* NULL = "on-failure" */
	const char *const *set;       /* "key=value" overrides, NULL-terminated, or NULL */
	const char *spec_toml;        /* hac.toml text instead of agents/NAME.toml, or NULL */
	int wait_ms;                  /* host full: queue up to this long (fair admission); 0 = refuse */
	const char *spec_signature;   /* minisig text for spec_toml (required with a keyring), or NULL */
	const char *bundle;           /* sha256 of a bundle stored by deploy_bundle_put, or NULL */
} deploy_req;

/* Parse the teams file (INVALID_CONFIG naming the key) without opening anything. */
int deploy_check_teams(const char *path, silo_error *err);

int deploy_open(manager *m, const deploy_config *cfg, deployer **out, silo_error *err);
/* Stop the thread; sandboxes keep running (the next silod reconciles them). */
void deploy_close(deployer *d);

/* Applied to every new deployment's spec before it is checked and stored
 * (silod: the creation policy, as POST /v1/sandboxes applies it for a
 * full-access caller); restarts reuse the stored, already-normalized spec. */
typedef int (*deploy_normalize_fn)(void *ud, vm_spec *spec, silo_error *err);
void deploy_set_normalize(deployer *d, deploy_normalize_fn fn, void *ud);

/* Deploy and wait until the sandbox is ready. *out = the deployment (JSON). */
int deploy_create(deployer *d, const deploy_req *r, const char *actor, json_t **out, silo_error *err);
/* Undeploy: terminate the sandbox (grace_ms < 0 = manager default) and forget it. */
int deploy_remove(deployer *d, const char *name, int grace_ms, const char *actor, json_t **out, silo_error *err);
int deploy_get_json(deployer *d, const char *name, json_t **out, silo_error *err);
int deploy_list_json(deployer *d, json_t **out, silo_error *err);
/* Usage, cost and budget per team and agent, plus the rate table. */
int deploy_usage_json(deployer *d, json_t **out, silo_error *err);

/* Store an uploaded bundle (its bytes in fd) under <state dir>/bundles/SHA.tar with its
 * signature: the bytes must have sha256 `sha`, verify against the keyring (else
 * PLUGIN_UNVERIFIED, audited and raised as an event) and be a well-formed tar (else
 * INVALID_CONFIG naming the entry). *out = {sha256, size, key_id, trusted_comment}. */
int deploy_bundle_put(deployer *d, const char *sha, int fd, const char *sig, size_t siglen, const char *actor,
		      json_t **out, silo_error *err);

/* Apply one "key=value" override to a spec (exposed for tests). */
int deploy_apply_override(vm_spec *s, const char *kv, silo_error *err);

#endif
