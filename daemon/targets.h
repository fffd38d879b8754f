/* SPDX-License-Identifier: Apache-2.0
 * Remote targets (docs/remote.md): other silods this one places sandboxes on.
 * A target is added with its URL and credentials after a check (reachable,
 * the token accepted, a compatible version, its providers and capacity); its
 * record lives in the target store (lib/registry/target_store.h).
 *
 * A sandbox created with ?target=NAME is created on the target and recorded
 * here; every request on it (routes with an {id} capture) is forwarded to the
 * target as it came (method, path, query, body) and the answer relayed in the
 * row's reply kind: api_dispatch asks targets_owns() before the row's
 * handler. GET /v1/sandboxes adds them with their "target".
 *
 * Health: a probe thread asks each target's /v1/health every probe_ms; after
 * offline_after failures in a row the target is offline (a "target" event,
 * silo_target_offline_total), and online again at the first good probe.
 * Requests for an offline target fail at once with REMOTE_UNREACHABLE naming
 * it, except the operations that queue: sandbox creates and deletes, deploys
 * and undeploys sent with an idempotency key (?idempotency_key=K) are stored
 * durably and applied in order when the target returns, each at most once.
 * Deployments made with ?target=NAME are recorded by name (also while queued),
 * so their {name} routes are forwarded like a sandbox's {id} routes.
 *
 * Before a create on a target, an image the spec names that this silod has
 * with layers and the target lacks is pushed (content-addressed, resumable;
 * targets.c "shipping images", the target's side in api_images.c).
 *
 * Locks: the store has its own; `lock` guards the probe thread's wake-up
 * (cond) and `stopping`. Forwarded requests run on the connection's thread.
 */
#ifndef SILO_DAEMON_TARGETS_H
#define SILO_DAEMON_TARGETS_H

#include <stdbool.h>

#include "core/manager.h"
#include "daemon/route.h"

typedef struct targets targets;

typedef struct targets_config {
	const char *state_dir;      /* registry.db is there */
	unsigned probe_ms;          /* 0 = 2000 */
	unsigned offline_after;     /* failed probes in a row; 0 = 3 */
	unsigned timeout_ms;        /* one probe or validation request; 0 = 3000 */
} targets_config;

int targets_open(manager *m, const targets_config *cfg, targets **out, silo_error *err);
void targets_close(targets *t);

/* Is q a request on a sandbox or deployment that lives on a target (its {id}
 * or deployment {name} capture), or a create or deploy with ?target=? Then
 * targets_forward is its handler. */
bool targets_owns(const api_req *q);
int targets_forward(api_req *q, api_reply *r, silo_error *err);
/* Add the sandboxes on targets to the list a (GET /v1/sandboxes). */
void targets_list_into(const api_req *q, json_t *a);

#endif
