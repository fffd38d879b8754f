/* SPDX-License-Identifier: Apache-2.0
 * silod's E2B-compatible server (docs/e2b.md): `silod --e2b-listen HOST:PORT`
 * serves E2B's control plane (e2b-dev/E2B spec/openapi.yml) and every
 * sandbox's envd plane (spec/envd: /health, /files, Connect-RPC
 * process.Process and filesystem.Filesystem) on one port, so code written
 * against the official `e2b` SDK runs unmodified with
 * E2B_API_URL = E2B_SANDBOX_URL = http://HOST:PORT and E2B_API_KEY = a silod
 * token. It is a second server with its own route table (daemon/e2b_routes.c)
 * over the same manager: one registry, one set of events, audit records and
 * metrics with silod's own API.
 *
 * Flow of a request (daemon/e2b_server.c, the transport):
 *   parse the target, find the row (404 / 405 in the plane's error shape);
 *   authenticate by the row's plane: the control plane takes X-API-KEY, which
 *   is a silod bearer token (the full-access token or a scoped one from
 *   --tokens-file: scopes and policies apply); the envd plane takes the
 *   E2b-Sandbox-Id header and X-Access-Token, the sandbox's envd access token
 *   (an HMAC of its id under a key kept in the state directory, so one
 *   sandbox's token opens no other sandbox and survives silod restarts);
 *   read the body within the row's limit (413), multipart parts and octet
 *   streams spooled to memfds; run the handler; every error reply is built by
 *   e2b_reply_error in the shape of the row's kind: {"code": N, "message"} for
 *   REST, a Connect error for RPCs (a status and {"code": "not_found", ...} for
 *   unary calls, the end-of-stream message for streams).
 */
#ifndef SILO_DAEMON_E2B_H
#define SILO_DAEMON_E2B_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/http_route.h"
#include "core/manager.h"
#include "daemon/api_authz.h"

#define E2B_ENVD_VERSION "0.5.7"    /* what we tell the SDK: octet-stream uploads, closeStdin */
#define E2B_DEFAULT_TIMEOUT_S 15    /* openapi.yml: NewSandbox.timeout default */
#define E2B_MAX_TIMEOUT_S 86400     /* a day, as E2B's own ceiling */
#define E2B_UPLOAD_PARTS_MAX 64     /* files in one multipart upload */
#define E2B_WATCHERS_MAX 256        /* CreateWatcher handles at once, all sandboxes */

typedef struct e2b_server e2b_server;

typedef struct e2b_config {
	const char *listen;             /* "HOST:PORT" (":0" picks a port) */
	const char *provider;           /* provider of created sandboxes; NULL = silod's default */
	const char *state_dir;          /* where the envd token key lives (e2b.key, 0600) */
	uint64_t max_upload;            /* /files, each way */
	unsigned header_timeout_s;      /* 0 = 10 */
} e2b_config;

int e2b_start(manager *m, api_authz *authz, const e2b_config *cfg, e2b_server **out, silo_error *err);
void e2b_stop(e2b_server *s);
unsigned e2b_port(const e2b_server *s);

/* ---- for the handlers (e2b_api.c, e2b_envd.c) and the table (e2b_routes.c) ---- */

typedef enum e2b_plane { E2B_PLANE_API, E2B_PLANE_ENVD } e2b_plane;
typedef enum e2b_kind {
	E2B_REST,        /* JSON (or a file) and {"code": N, "message"} errors */
	E2B_UNARY,       /* Connect unary: application/json both ways */
	E2B_SSTREAM,     /* Connect server stream: one enveloped request, enveloped events */
	E2B_CSTREAM,     /* Connect client stream: enveloped requests, one enveloped reply */
} e2b_kind;
typedef enum e2b_body {
	E2B_BODY_NONE,   /* no bytes */
	E2B_BODY_JSON,   /* at most 1 MiB in memory */
	E2B_BODY_RPC,    /* at most E2B_MSG_MAX (+ envelopes) in memory */
	E2B_BODY_UPLOAD, /* multipart parts or an octet stream, spooled, at most max_upload */
} e2b_body;

typedef struct e2b_upload {
	char *name;      /* multipart filename (the path when ?path is absent), or NULL */
	int fd;          /* memfd at offset 0 */
	uint64_t size;
} e2b_upload;

/* A produced Connect stream: step appends events with e2b_stream_send and
 * returns 1 (more to come), 0 (ended: the trailer is {}) or -1 with err (the
 * trailer carries it). It may block up to about a second. */
typedef struct e2b_out e2b_out;
typedef struct e2b_stream {
	int (*step)(void *ctx, e2b_out *o, silo_error *err);
	void (*free)(void *ctx);
	void *ctx;
} e2b_stream;
void e2b_stream_send(e2b_out *o, json_t *msg);   /* steals msg */

struct e2b_route;
typedef struct e2b_req {
	e2b_server *srv;
	manager *m;
	api_authz *authz;
	const struct e2b_route *route;
	const char *method, *path;
	const http_target *target;
	http_captures caps;
	const char *body;          /* RPC: the request message (unwrapped from its envelope) */
	size_t len;
	e2b_upload *uploads;       /* UPLOAD: the parts (an octet stream is one part without a name) */
	size_t n_uploads;
	const api_token *tok;      /* control plane: the caller's scoped token (NULL = full access) */
	char actor[96];
	char sandbox[SILO_ID_MAX]; /* envd plane: the sandbox of E2b-Sandbox-Id */
	const char *content_type;
	const char *user;          /* envd: the Basic user, or NULL */
	uint64_t max_upload;       /* /files, each way */
	unsigned keepalive_s;      /* Keepalive-Ping-Interval, 0 = none asked (we still send one a minute) */
} e2b_req;

typedef struct e2b_reply {
	unsigned status;
	json_t *json;              /* REST/UNARY body; NULL with status 204 */
	int fd;                    /* a file to send (GET /files), or -1 */
	uint64_t size;
	e2b_stream stream;         /* SSTREAM */
	char next_token[128];      /* GET /v2/sandboxes pagination: x-next-token */
} e2b_reply;

typedef int (*e2b_handler)(e2b_req *q, e2b_reply *r, silo_error *err);

typedef struct e2b_route {
	const char *method;
	const char *pattern;
	e2b_handler handler;
	e2b_plane plane;
	e2b_kind kind;
	e2b_body body;
	int op;                    /* TOKEN_OP_* the control plane needs, -1 = any caller, -2 = full access */
} e2b_route;

extern const e2b_route e2b_routes[];
extern const size_t e2b_n_routes;

/* The envd access token of a sandbox (64 hex digits and a NUL). */
void e2b_envd_token(const e2b_server *s, const char *sandbox_id, char out[65]);
/* A query parameter, or NULL. */
const char *e2b_query(const e2b_req *q, const char *key);
const char *e2b_cap(const e2b_req *q, const char *name);
/* The provider for created sandboxes (NULL = silod's default). */
const char *e2b_provider(const e2b_server *s);

/* Watchers (CreateWatcher handles) kept by the server: a handle names the
 * sandbox and the channel's watch. */
int e2b_watcher_add(e2b_server *s, const char *sandbox_id, uint32_t wid, char id_out[32], silo_error *err);
int e2b_watcher_get(e2b_server *s, const char *id, const char *sandbox_id, uint32_t *wid, silo_error *err);
void e2b_watcher_remove(e2b_server *s, const char *id);

/* ---- handlers ---- */
int e2b_h_create(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_list(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_list_v1(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_get(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_kill(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_metrics(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_timeout(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_refresh(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_pause(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_connect(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_resume(e2b_req *q, e2b_reply *r, silo_error *err);

int e2b_h_health(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_files_get(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_files_post(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_proc_start(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_proc_connect(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_proc_list(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_proc_input(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_proc_stream_input(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_proc_close_stdin(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_proc_signal(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_proc_update(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_fs_stat(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_fs_mkdir(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_fs_move(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_fs_list(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_fs_remove(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_fs_watch(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_fs_watcher_create(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_fs_watcher_events(e2b_req *q, e2b_reply *r, silo_error *err);
int e2b_h_fs_watcher_remove(e2b_req *q, e2b_reply *r, silo_error *err);

#endif
