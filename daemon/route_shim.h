/* SPDX-License-Identifier: Apache-2.0
 * TEMPORARY: the handler shape of the route table being built on the
 * arch-routes branch (daemon/route.h there), for the process, file-tree and
 * archive handlers (daemon/api_procs.c, daemon/api_fs.c) while this branch
 * still has the old daemon/api.c. The names and semantics are route.h's; the
 * additions this branch brings to route.h are marked NEW. When arch-routes is
 * merged this file and route_shim.c go away: the handlers include
 * daemon/handlers.h, their rows go into daemon/routes.c, and the transport
 * (daemon/http_server.c) implements API_REPLY_UPGRADE and API_REPLY_TAR.
 */
#ifndef SILO_DAEMON_ROUTE_SHIM_H
#define SILO_DAEMON_ROUTE_SHIM_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/manager.h"
#include "daemon/api_authz.h"

#define API_ACTOR_MAX 64

typedef struct api_ctx {
	manager *m;
	api_authz *authz;
	size_t max_body;
	uint64_t max_upload;
	const atomic_bool *stopping;
} api_ctx;

typedef enum api_body { API_BODY_NONE, API_BODY_SMALL, API_BODY_EXEC, API_BODY_FILE } api_body;

typedef enum api_reply_kind {
	API_REPLY_JSON,
	API_REPLY_TEXT,
	API_REPLY_NDJSON,
	API_REPLY_SSE,
	API_REPLY_FILE,
	API_REPLY_UPGRADE,
	API_REPLY_TAR,        /* NEW: application/x-tar produced in a stream (archive downloads) */
	API_REPLY__COUNT
} api_reply_kind;

enum { API_STREAM_END = -1, API_STREAM_ABORT = -2 };
typedef struct api_stream {
	ssize_t (*read)(void *ctx, char *buf, size_t max);
	void (*free)(void *ctx);
	void *ctx;
	size_t block;
} api_stream;

/* NEW: a connection taken over from HTTP (API_REPLY_UPGRADE). The transport
 * answers 101 Switching Protocols with "Upgrade: <protocol>" and accept as
 * Sec-WebSocket-Accept, then runs run() on the connection's thread with the
 * socket and the bytes the client sent after its request; free() runs once,
 * also when the 101 could not be sent. run() returns when the session ends
 * (it must notice ctx->stopping within a slice); the transport then closes. */
typedef struct api_upgrade {
	const char *protocol;
	char accept[32];
	void (*run)(void *ctx, int fd, const void *extra, size_t extra_len);
	void (*free)(void *ctx);
	void *ctx;
} api_upgrade;

typedef struct api_caller {
	bool tcp;
	const api_token *tok;
	char actor[API_ACTOR_MAX];
} api_caller;

struct api_route;

typedef struct api_req {
	const api_ctx *ctx;
	const struct api_route *route;
	const char *method;
	const char *path;
	const char *body;
	size_t len;
	int body_fd;
	uint64_t body_size;
	const char *content_type;
	api_caller who;
	int peer_fd;
	/* shim: captures and the transport for query/header lookups */
	const char *cap_name[4], *cap_value[4];
	unsigned ncap;
	void *conn;
} api_req;

typedef struct api_reply {
	unsigned status;
	api_reply_kind kind;
	json_t *json;
	int fd;
	uint64_t size;
	api_stream stream;
	api_upgrade upgrade;      /* NEW */
} api_reply;

typedef int (*api_handler)(api_req *q, api_reply *r, silo_error *err);

typedef struct api_route {
	const char *method;
	const char *pattern;
	api_handler handler;
	api_body body;
	const char *const *accept;
	int op;                   /* TOKEN_OP_* */
	const void *group;
	api_reply_kind reply;
} api_route;

int api_reply_json(api_reply *r, unsigned status, json_t *body);
int api_reply_stream(api_reply *r, api_reply_kind kind, const api_stream *s);
/* NEW */
int api_reply_upgrade(api_reply *r, const api_upgrade *u);
const char *api_cap(const api_req *q, const char *name);
const char *api_query(const api_req *q, const char *key);
int api_query_uint(const api_req *q, const char *key, uint64_t max, uint64_t *out, silo_error *err);
bool api_query_true(const api_req *q, const char *key);
/* NEW: a request header, or NULL. */
const char *api_header(const api_req *q, const char *name);
bool api_peer_gone(int fd);
bool api_stream_cut(const api_ctx *ctx, int peer_fd);
json_t *api_error_json(const silo_error *err);

/* shim: the rows of api_procs.c and api_fs.c (route_shim.c serves them). */
extern const api_route shim_routes[];
extern const size_t shim_n_routes;

#endif
