/* SPDX-License-Identifier: Apache-2.0
 * silod handlers for port forwarding (docs/network.md "Port forwarding";
 * handlers.h, rows in routes.c, docs/openapi.yaml): expose a sandbox port on
 * a host loopback TCP port or a unix socket, list, close. A scoped token's
 * scope is checked here on the sandbox; its operation (exec to open or close,
 * inspect to list) was checked by the dispatcher. A unix socket is a path of
 * silod's host, so, like host files, it is for full-access callers only.
 */
#include <string.h>

#include "common/util.h"
#include "daemon/api_parse.h"
#include "daemon/handlers.h"

/* The sandbox named by {id}, checked against a scoped token's scope. */
static int port_sandbox(const api_req *q, int op, char rid[SILO_ID_MAX], silo_error *err)
{
	return authz_sandbox(q->ctx->authz, q->ctx->m, q->who.tok, q->who.actor, op, api_cap(q, "id"), NULL, NULL,
			     rid, err);
}

static int port_of(uint64_t v, const char *what, silo_error *err)
{
	if (v < 1 || v > 65535)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: expected 1-65535", what);
	return 0;
}

int h_port_add(api_req *q, api_reply *r, silo_error *err)
{
	static const char *const known[] = {"port", "listen", "unix", NULL};
	json_t *o = api_json_body(q->body, q->len, known, false, err), *out = NULL;
	if (!o)
		return -1;
	uint64_t port = 0;
	const char *listen = NULL, *unix_path = NULL;
	char rid[SILO_ID_MAX];
	int rc = api_json_uint(o, "port", 65535, &port, err);
	if (rc >= 0)
		rc = port_of(port, "port", err);
	if (rc >= 0)
		rc = api_json_str(o, "listen", 64, &listen, err);
	if (rc >= 0)
		rc = api_json_str(o, "unix", 4096, &unix_path, err);
	if (rc >= 0 && listen && unix_path)
		rc = silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "body: give listen or unix, not both");
	if (rc >= 0 && unix_path && q->who.tok)
		rc = silo_fail(err, SILO_ERR_POLICY_DENIED, 0,
			       "token \"%s\" rule unix: a scoped token may not create host sockets (use listen)",
			       q->who.tok->name);
	if (rc >= 0)
		rc = port_sandbox(q, TOKEN_OP_EXEC, rid, err);
	if (rc >= 0)
		rc = manager_port_add(q->ctx->m, rid, (uint16_t)port, unix_path ? NULL : listen ? listen : "127.0.0.1:0",
				      unix_path, q->who.actor, &out, err);
	json_decref(o);
	return rc < 0 ? -1 : api_reply_json(r, 201, out);
}

int h_port_list(api_req *q, api_reply *r, silo_error *err)
{
	char rid[SILO_ID_MAX];
	json_t *out;
	if (port_sandbox(q, TOKEN_OP_INSPECT, rid, err) < 0 || manager_port_list(q->ctx->m, rid, &out, err) < 0)
		return -1;
	return api_reply_json(r, 200, out);
}

int h_port_remove(api_req *q, api_reply *r, silo_error *err)
{
	uint64_t port = 0;
	char rid[SILO_ID_MAX];
	if (api_query_uint(q, "port", 65535, &port, err) < 0 || port_of(port, "query parameter port", err) < 0 ||
	    port_sandbox(q, TOKEN_OP_EXEC, rid, err) < 0 ||
	    manager_port_remove(q->ctx->m, rid, (uint16_t)port, q->who.actor, err) < 0)
		return -1;
	return api_reply_json(r, 200, json_pack("{s:s,s:i}", "id", rid, "port", (int)port));
}
