/* SPDX-License-Identifier: Apache-2.0
 * Client side of the silod API for CLI verbs (libcurl).
 * Target: $SILO_HOST (http://HOST:PORT, with $SILO_API_TOKEN as bearer token),
 * else the unix socket $SILO_SOCKET or $SILO_RUNTIME_DIR/silod.sock.
 */
#ifndef SILO_CLI_API_CLIENT_H
#define SILO_CLI_API_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

typedef struct api_client api_client;

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
/* URL-encode s into a new string. */
char *api_escape(const char *s);

#endif
