/* SPDX-License-Identifier: Apache-2.0
 * Client side of the silod API for CLI verbs (libcurl).
 * Target (cli/context.h): --context/$SILO_CONTEXT, $SILO_HOST (http(s)://HOST:PORT
 * with $SILO_API_TOKEN, $SILO_CA, $SILO_CLIENT_CERT/KEY), the current context,
 * else the unix socket $SILO_SOCKET or $SILO_RUNTIME_DIR/silod.sock.
 */
#ifndef SILO_CLI_API_CLIENT_H
#define SILO_CLI_API_CLIENT_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct api_client api_client;

/* Abort any transfer in progress (within ~1 s) once *flag becomes non-zero. */
void api_client_set_abort(api_client *c, volatile sig_atomic_t *flag);

/* Called with each piece of a streamed body; return false to stop. */
typedef bool (*api_chunk_cb)(void *ud, const char *buf, size_t len);

int api_client_new(api_client **out, silo_error *err);
void api_client_free(api_client *c);
const char *api_client_target(api_client *c);

/* One request. On HTTP >= 400 the JSON error body becomes *err (and -1).
 * resp (NUL-terminated) may be NULL when the body is not wanted. */
int api_call(api_client *c, const char *method, const char *path, const char *content_type,
	     const void *body, size_t body_len, char **resp, size_t *resp_len, silo_error *err);
/* Same, with the request body read from fd (uploads) and/or the response
 * streamed to cb instead of collected. */
int api_stream(api_client *c, const char *method, const char *path, const char *content_type,
	       const void *body, size_t body_len, int upload_fd, api_chunk_cb cb, void *ud, silo_error *err);
/* GET returning parsed JSON. */
int api_get_json(api_client *c, const char *path, json_t **out, silo_error *err);
/* Fill err from an error response body; falls back to the status. */
void api_error_from_body(long status, const char *body, silo_error *err);
/* Is a silod answering on the default target (socket present, /v1/health OK within 2 s)? */
bool api_daemon_available(void);
/* What `silo run` reports after the command (--time, the --timeout message),
 * the same with and without silod. */
typedef struct run_report {
	char id[128];
	uint64_t spawn_ms, ready_ms, exec_ms, destroy_ms;
	bool from_template;           /* restored from a template snapshot (else booted cold) */
	bool timed_out;               /* the command was killed at --timeout */
	bool oom_killed;              /* the OOM killer ended the command */
	uint32_t memory_mb;           /* the sandbox's memory limit */
} run_report;
/* `silo run` through silod: create a sandbox from hac.toml text, run argv in
 * it streaming stdout/stderr to ours (stdin_data, if any, is fed to it), then
 * delete the sandbox (also on SIGINT/SIGTERM). Returns the command's exit
 * status (128+signal if killed), or the CLI error status (125); fills *rep.
 * json: errors as JSON (the output stays the command's). times: fill
 * rep's spawn/ready times and start (one more request; --time); the memory
 * limit is fetched anyway when the OOM killer ended the command. */
int daemon_run(const char *toml, char *const *argv, char *const *env, const char *cwd,
	       const void *stdin_data, size_t stdin_len, uint32_t timeout_ms, bool json, bool cold, bool times,
	       run_report *rep);

/* URL-encode s into a new string. */
char *api_escape(const char *s);

/* A WebSocket to path (silod's /session and /procs/{proc}/attach): the
 * upgrade over the client's target (unix socket or SILO_HOST, with the
 * token). An answer other than 101 becomes *err (the JSON error body). */
#include "common/ws.h"
typedef struct api_ws api_ws;
int api_ws_open(api_client *c, const char *path, api_ws **out, silo_error *err);
ws_conn *api_ws_conn(api_ws *w);
void api_ws_close(api_ws *w);

#endif
