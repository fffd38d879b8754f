/* SPDX-License-Identifier: Apache-2.0
 * silod's routes: the request a handler gets, the reply it gives, and the row
 * of the route table (daemon/routes.c) that ties them to a method and a path.
 * Nothing here knows libmicrohttpd: the transport (daemon/http_server.c) turns
 * the wire into an api_req and an api_reply back into the wire.
 *
 * Flow of a request (docs/architecture.md, "Routes"): everything the head
 * decides is decided before one byte of the body is taken.
 *   transport: authenticate (401), parse the target (lib/common/http_route.h),
 *              api_route_find: no pattern matches -> NOT_FOUND 404, a pattern
 *              matches but not the method -> METHOD_NOT_ALLOWED 405 with Allow;
 *   api_admit: the row's token operation (a scoped token without it gets
 *              POLICY_DENIED 403, audited), its captures (bounded and checked
 *              by kind, routes.c), its Content-Types (UNSUPPORTED_MEDIA_TYPE
 *              415);
 *   transport: the declared length against the row's limit (PAYLOAD_TOO_LARGE
 *              413) and against what all connections' bodies may hold at once
 *              (RESOURCE_EXCEEDED 409, --max-upload-total-mb); an error so far
 *              is answered at once and the connection closes, the body unread;
 *              then the body, within both limits, spooled to a memfd for
 *              API_BODY_FILE;
 *   api_dispatch: the handler of an admitted request;
 *   handler:   0 and a reply of the row's kind, or -1 and a silo_error;
 *   every error reply is built by api_reply_error: the body of docs/errors.md
 *   and the status of api_http_status(code), one table.
 */
#ifndef SILO_DAEMON_ROUTE_H
#define SILO_DAEMON_ROUTE_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/http_route.h"
#include "core/deploy.h"
#include "core/manager.h"
#include "daemon/api_authz.h"

#define API_ACTOR_MAX 80     /* "token:" and a 64-byte token name */

/* What the handlers share, owned by the server (lives until api_stop). */
typedef struct api_ctx {
	manager *m;
	api_authz *authz;
	deployer *deploy;               /* NULL: deployment routes answer NOT_SUPPORTED */
	size_t max_body;                /* API_BODY_SMALL */
	uint64_t max_upload;            /* API_BODY_FILE, and file downloads */
	const atomic_bool *stopping;    /* set when the server stops: streams end */
	/* GET /v1/health "tcp_connections" (the TCP listener's guard), or NULL */
	json_t *(*listener_json)(const struct api_ctx *ctx);
	void *listener;
	struct targets *targets;        /* remote targets (targets.h); NULL = none */
} api_ctx;

/* Request bodies: the limit and how the body reaches the handler. */
typedef enum api_body {
	API_BODY_NONE,    /* any byte is PAYLOAD_TOO_LARGE */
	API_BODY_SMALL,   /* JSON or hac.toml in memory, at most ctx->max_body (1 MiB) */
	API_BODY_EXEC,    /* exec JSON in memory, at most EXEC_BODY_MAX (8 MiB: stdin) */
	API_BODY_FILE,    /* raw bytes spooled to a memfd, at most ctx->max_upload */
} api_body;

/* Replies: the kind fixes the Content-Type and how the transport sends it. */
typedef enum api_reply_kind {
	API_REPLY_JSON,     /* application/json: a JSON object (also every error) */
	API_REPLY_TEXT,     /* a text body with the handler's Content-Type (metrics) */
	API_REPLY_NDJSON,   /* application/x-ndjson stream (exec) */
	API_REPLY_SSE,      /* text/event-stream (events) */
	API_REPLY_FILE,     /* application/octet-stream from a file descriptor (downloads) */
	/* A bidirectional connection taken over from HTTP: 101 Switching Protocols,
	 * then api_upgrade.run owns the socket (WebSocket sessions, api_procs.c). */
	API_REPLY_UPGRADE,
	API_REPLY_TAR,      /* application/x-tar produced in a stream (archive downloads) */
	API_REPLY__COUNT
} api_reply_kind;

/* What a scoped token needs, besides the TOKEN_OP_* of policy/token.h. */
enum {
	API_OP_ANY = -1,    /* every authenticated caller (health, providers) */
	API_OP_FULL = -2,   /* the unix socket or the full-access token only (api_group says why) */
};

/* Routes closed to scoped tokens: what a denial says and the audited operation. */
typedef struct api_group {
	const char *audit_op;    /* "snapshot", "deploy", ... */
	const char *what;        /* "snapshots, fork, pause and resume" (need a full-access token) */
} api_group;

/* A produced body (exec, events). read blocks until it has bytes for buf and
 * returns how many (> 0), API_STREAM_END after the last, or API_STREAM_ABORT
 * to cut the connection (client gone, server stopping). free runs once, after
 * the last read or when the connection ends early. */
enum { API_STREAM_END = -1, API_STREAM_ABORT = -2 };
typedef struct api_stream {
	ssize_t (*read)(void *ctx, char *buf, size_t max);
	void (*free)(void *ctx);
	void *ctx;
	size_t block;            /* the transport's buffer for one read */
} api_stream;

/* A connection taken over from HTTP (API_REPLY_UPGRADE). The transport
 * answers 101 Switching Protocols with "Upgrade: <protocol>" and accept as
 * Sec-WebSocket-Accept, then calls run() on the connection's thread with the
 * socket and the bytes the client sent after its request; run() returns when
 * the session ends (it must notice ctx->stopping within a slice), and the
 * transport closes the socket. free() runs exactly once: after run(), or
 * when the 101 could not be sent. */
typedef struct api_upgrade {
	const char *protocol;      /* "websocket" */
	char accept[32];           /* Sec-WebSocket-Accept */
	void (*run)(void *ctx, int fd, const void *extra, size_t extra_len);
	void (*free)(void *ctx);
	void *ctx;
} api_upgrade;

/* The caller, as the transport established it. */
typedef struct api_caller {
	bool tcp;
	const api_token *tok;      /* scoped token; NULL = full access */
	bool have_cred;            /* unix socket: SO_PEERCRED */
	uid_t uid;
	gid_t gid;
	pid_t pid;
	char actor[API_ACTOR_MAX]; /* audit: uid:N, unix, token, token:NAME */
} api_caller;

struct api_route;

typedef struct api_req {
	const api_ctx *ctx;
	const struct api_route *route;
	const char *method;
	const char *path;          /* as sent, without the query (for messages) */
	const http_target *target; /* decoded segments and query */
	http_captures caps;        /* checked by kind before the handler runs */
	const char *body;          /* NUL-terminated, "" without a body */
	size_t len;
	int body_fd;               /* API_BODY_FILE: the spooled body at offset 0; else -1 */
	uint64_t body_size;
	const char *content_type;  /* the header, or NULL */
	int ctype;                 /* index in route->accept it matched, or -1 */
	api_caller who;
	int peer_fd;               /* the client's socket, to notice a disconnect; -1 */
	bool admitted;             /* api_admit passed */
	/* request headers (api_header), from the transport; header may be NULL */
	const char *(*header)(void *conn, const char *name);
	void *conn;
} api_req;

typedef struct api_reply {
	unsigned status;
	api_reply_kind kind;
	json_t *json;              /* JSON (owned) */
	char *text;                /* TEXT (owned, malloc'd) */
	size_t text_len;
	const char *content_type;  /* TEXT */
	int fd;                    /* FILE: sent from offset 0, then closed */
	uint64_t size;
	api_stream stream;         /* NDJSON, SSE, TAR */
	api_upgrade upgrade;       /* UPGRADE */
	char allow[96];            /* METHOD_NOT_ALLOWED: the Allow header (set by the transport) */
	bool challenge;            /* UNAUTHORIZED: WWW-Authenticate, and the connection closes */
} api_reply;

/* 0 with *r filled (api_reply_json & co.), or -1 with err; a failing handler
 * may leave a JSON object in r->json: its members go beside "error" (DELETE
 * of a sandbox that did not clean up: "cleanup"). */
typedef int (*api_handler)(api_req *q, api_reply *r, silo_error *err);

/* One row of the table (daemon/routes.c). */
typedef struct api_route {
	const char *method;
	const char *pattern;                /* "/v1/sandboxes/{id}/exec" (http_route.h) */
	api_handler handler;
	api_body body;
	const char *const *accept;          /* Content-Types taken, NULL-terminated; NULL = any */
	int op;                             /* TOKEN_OP_*, API_OP_ANY or API_OP_FULL */
	const api_group *group;             /* API_OP_FULL: why */
	api_reply_kind reply;
} api_route;

/* Captures by kind: each {name} in a pattern has a row in routes.c. */
typedef struct api_capture_kind {
	const char *name;                   /* "id" */
	size_t max;                         /* bytes */
	const char *extra;                  /* allowed besides [A-Za-z0-9] */
	bool lower_hex;                     /* exactly max lowercase hex digits */
	silo_code code;                     /* when the value does not fit: */
	const char *refusal, *rule;         /* "REFUSAL 'VALUE'RULE" */
} api_capture_kind;

/* ---- the table (routes.c) ---- */
extern const api_route api_routes[];
extern const size_t api_n_routes;
extern const api_capture_kind api_capture_kinds[];
extern const size_t api_n_capture_kinds;

/* ---- routing and dispatch (route.c) ---- */

/* The row for method on t's path (most specific pattern, http_route.h), or
 * NULL with err: NOT_FOUND, or METHOD_NOT_ALLOWED and allow (the methods of
 * that pattern, ", "-separated). */
const api_route *api_route_find(const char *method, const http_target *t, const char *path, char allow[96],
				silo_error *err);
/* The body limit of a row, and the PAYLOAD_TOO_LARGE beyond it. */
uint64_t api_body_limit(const api_ctx *ctx, const api_route *r);
void api_fail_too_large(const char *method, const char *path, const api_route *r, uint64_t limit, silo_error *err);
/* Each capture against its kind (routes.c): the kind's code and refusal. */
int api_captures_check(const api_route *r, const http_captures *caps, silo_error *err);
/* The checks of q's head (q->route, caps, who and content_type set; no body
 * yet): the token's operation (denials audited), the captures, the
 * Content-Type (sets q->ctype). 0, or -1 with err. */
int api_admit(api_req *q, silo_error *err);
/* Run an admitted q (its body read) to a reply through the handler (not
 * admitted: INTERNAL). Errors become error replies (counted by the manager). */
void api_dispatch(api_req *q, api_reply *r);

/* ---- replies (the one place HTTP replies are built) ---- */

/* HTTP status for an error code (docs/errors.md). */
unsigned api_http_status(silo_code code);
/* {"error": {"code", "message", "vm_id"?, "errno"?}} */
json_t *api_error_json(const silo_error *err);
/* An error reply: counted (manager_note_error), body and status from the code;
 * extra (may be NULL, stolen) adds members beside "error" (DELETE: "cleanup"). */
void api_reply_error(const api_ctx *ctx, api_reply *r, const silo_error *err, json_t *extra);
/* Successes. Each returns 0 so a handler can `return api_reply_json(...)`. */
int api_reply_json(api_reply *r, unsigned status, json_t *body);
int api_reply_text(api_reply *r, const char *content_type, char *text);
int api_reply_file(api_reply *r, int fd, uint64_t size);
int api_reply_stream(api_reply *r, api_reply_kind kind, const api_stream *s);
int api_reply_upgrade(api_reply *r, const api_upgrade *u);
/* Release what a reply holds (when it will not be sent). */
void api_reply_release(api_reply *r);
/* The Content-Type of a reply kind (TEXT: the reply's own). */
const char *api_reply_content_type(const api_reply *r);
/* Bytes of a JSON reply: compact JSON and a newline; malloc'd. */
char *api_json_text(json_t *o, size_t *len);
/* An output line of an exec stream, {"stream":"stdout"|"stderr","data":"<base64>"}
 * and a newline (not NUL-terminated), for len bytes of buf: written to dst, which
 * holds api_output_line_max(len) bytes; its length returned. */
size_t api_output_line_max(size_t len);
size_t api_output_line(char *dst, int stream, const uint8_t *buf, size_t len);

/* ---- request helpers for handlers ---- */

/* A checked capture ("id", "snap", ...); never NULL for the route's own. */
const char *api_cap(const api_req *q, const char *name);
/* A request header, or NULL. */
const char *api_header(const api_req *q, const char *name);
/* A query parameter, or NULL. */
const char *api_query(const api_req *q, const char *key);
/* An unsigned query parameter (decimal, 0x hex or 0 octal) of at most max:
 * 0 (absent: *out unchanged, or set), -1 with INVALID_CONFIG naming it. */
int api_query_uint(const api_req *q, const char *key, uint64_t max, uint64_t *out, silo_error *err);
/* ?key=true or ?key=1 */
bool api_query_true(const api_req *q, const char *key);
/* The creation policy for a spec made on behalf of q's caller (create, and
 * restore/fork: a sandbox from a snapshot passes it like any create). */
int api_create_check(const api_req *q, vm_spec *spec, mgr_create_opts *o, silo_error *err);

/* ---- streams ---- */

/* Has the peer on fd closed its side (or the socket failed)? */
bool api_peer_gone(int fd);
/* Should a stream end now (server stopping or client gone)? */
bool api_stream_cut(const api_ctx *ctx, int peer_fd);

#endif
