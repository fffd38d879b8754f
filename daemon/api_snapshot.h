/* SPDX-License-Identifier: Apache-2.0
 * silod routes for snapshots, fork, pause and resume (docs/openapi.yaml,
 * docs/snapshots.md), kept out of api.c: api.c hands every request whose
 * path api_snapshot_owns() to api_snapshot_handle() and sends what it returns.
 */
#ifndef SILO_DAEMON_API_SNAPSHOT_H
#define SILO_DAEMON_API_SNAPSHOT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/manager.h"

/* /v1/snapshots[/...] and /v1/sandboxes/{id}/{snapshot,fork,pause,resume}. */
bool api_snapshot_owns(const char *url);

typedef const char *(*api_arg_fn)(void *ctx, const char *key);   /* query argument or NULL */
/* The creation policy for a sandbox made from a snapshot (restore, fork):
 * 0 or -1 with err (POLICY_DENIED). */
typedef int (*api_create_check_fn)(void *ctx, const vm_spec *spec, silo_error *err);

/* Returns the HTTP status; on success *out is the JSON body, on failure
 * (status >= 400) err is filled and *out is NULL. */
unsigned api_snapshot_handle(manager *m, const char *method, const char *url, const char *body, size_t len,
			     api_arg_fn arg, void *arg_ctx, api_create_check_fn check, void *check_ctx,
			     const char *actor, json_t **out, silo_error *err);

#endif
