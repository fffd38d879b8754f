/* SPDX-License-Identifier: Apache-2.0
 * silod's HTTP server (docs/openapi.yaml) on libmicrohttpd: a unix socket
 * (trusted by file mode) and an optional TCP listener that requires a bearer
 * token. The routes are daemon/routes.c; this is only the transport.
 */
#ifndef SILO_DAEMON_HTTP_SERVER_H
#define SILO_DAEMON_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/deploy.h"
#include "core/manager.h"

typedef struct api_server api_server;

typedef struct api_config {
	const char *socket_path;
	unsigned socket_mode;           /* e.g. 0600 */
	const char *listen;             /* "HOST:PORT" or NULL */
	const char *token;              /* full-access bearer token for TCP (or NULL) */
	const char *policy_file;        /* sandbox policies (docs/policy.md); NULL = built-in default */
	const char *tokens_file;        /* scoped bearer tokens (docs/policy.md); NULL = none */
	const char *opa_url;            /* external policy decisions (OPA data API); NULL = none */
	long opa_timeout_ms;            /* 0 = 2000 */
	size_t max_body;                /* JSON/TOML bodies; 0 = 1 MiB */
	uint64_t max_upload;            /* file uploads/downloads; 0 = 256 MiB */
	/* request bodies held at once by all connections (uploads, exec, specs);
	 * 0 = 1 GiB or max_upload if larger; below max_upload: INVALID_CONFIG */
	uint64_t max_upload_total;
	/* TCP listener limits (api_guard.h); the unix socket has its own. */
	unsigned max_connections;       /* at once; 0 = 4096, half of them unauthenticated at most */
	unsigned max_connections_per_ip;   /* from one client address; 0 = 64 */
	unsigned header_timeout_s;      /* to complete an authenticated request head; 0 = 10 */
	deployer *deploy;               /* /v1/deployments, /v1/usage; NULL = NOT_SUPPORTED */
} api_config;

int api_start(manager *m, const api_config *cfg, api_server **out, silo_error *err);
/* Stop accepting, wake streaming responses, join every connection thread. */
void api_stop(api_server *s);
/* The TCP port actually bound (--listen HOST:0 picks a free one); 0 without TCP. */
unsigned api_tcp_port(const api_server *s);

/* Apply the creation policy to spec as POST /v1/sandboxes does for a
 * full-access caller (warm-pool templates, deployments: daemon/silod.c). */
int api_normalize_spec(void *server, vm_spec *spec, silo_error *err);

#endif
