/* SPDX-License-Identifier: Apache-2.0
 * The libcurl plumbing shared by libsilo-client (lib/client/client.c) and the
 * `silo` CLI's client (cli/api_client.c): one request's curl setup (URL, unix
 * socket, protocols, TLS files, headers), a bounded growing body buffer, and
 * the text of a transfer that failed. Each caller keeps its own handle policy
 * (pool or one handle), body source and error-body decoding.
 * Thread-safe: no state but the once-only curl_global_init.
 */
#ifndef SILO_CLIENT_HTTP_H
#define SILO_CLIENT_HTTP_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

/* curl_global_init, once per process (pthread_once); its result. */
CURLcode cl_http_init(void);

/* Where requests go. NULL or "" means none for sock, auth and the TLS files. */
typedef struct cl_http_target {
	const char *base;     /* http(s)://HOST:PORT, or a fixed one for the socket */
	const char *sock;     /* unix socket path */
	const char *auth;     /* a whole "Authorization: Bearer ..." header */
	const char *ca, *cert, *key;   /* PEM paths; cert and key go together */
} cl_http_target;

/* Reset h for METHOD base+path (http/https only, TLS >= 1.2, no signals, the
 * connect timeout) and return its header list (Content-Type if ctype, the
 * Authorization, no Expect:), set on h; free it after the transfer. The body,
 * timeout and write function are the caller's. */
struct curl_slist *cl_http_setup(CURL *h, const cl_http_target *t, const char *method, const char *path,
				 const char *ctype, long connect_timeout_ms);

/* Append n bytes to *buf (kept NUL-terminated, grown by doubling); false,
 * appending nothing, when the total would reach max. */
bool cl_buf_append(char **buf, size_t *len, size_t *cap, size_t max, const char *p, size_t n);

/* A failed transfer (rc != CURLE_OK) as err: REMOTE_UNREACHABLE, "cannot reach
 * silod" for a refused or unresolved connection, else the curl text with
 * METHOD path and target. Returns -1. */
int cl_http_fail(CURLcode rc, const char *method, const char *path, const char *target, silo_error *err);

/* URL-encode s into a new string (free). */
char *cl_http_escape(const char *s);

#endif
