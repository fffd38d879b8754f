/* SPDX-License-Identifier: Apache-2.0
 * silod routes for deployments (docs/deployments.md, docs/openapi.yaml):
 *   GET/POST /v1/deployments, GET/DELETE /v1/deployments/{name}, GET /v1/usage,
 *   PUT /v1/bundles/{sha256}?signature=MINISIG (raw tar body: a signed bundle).
 * Independent of libmicrohttpd: api.c passes the method, path, body and a
 * query lookup, and sends what comes back.
 */
#ifndef SILO_DAEMON_API_DEPLOY_H
#define SILO_DAEMON_API_DEPLOY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/deploy.h"

typedef const char *(*api_query_fn)(void *ctx, const char *key);

/* Is url one of the deployment routes (any method)? */
bool api_deploy_path(const char *url);
/* Is url the bundle upload route (PUT, raw body)? */
bool api_bundle_path(const char *url);
/* PUT /v1/bundles/{sha256}: the body is in fd. Same answer convention as below. */
unsigned api_bundle_put(deployer *d, const char *url, int fd, api_query_fn query, void *qctx, const char *actor,
			json_t **out, silo_error *err);
/* Handle a request on such a path. *out set: answer it with the returned
 * status. *out NULL: err is filled; answer it with the returned status, or
 * the code's usual status when 0 is returned. */
unsigned api_deploy_handle(deployer *d, const char *method, const char *url, const char *body, size_t len,
			   api_query_fn query, void *qctx, const char *actor, json_t **out, silo_error *err);

#endif
