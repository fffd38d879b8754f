/* SPDX-License-Identifier: Apache-2.0
 * CLI contexts (`silo context`, docs/remote.md): named silod endpoints, like
 * `docker context`. Each context is a directory (0700) under the config dir
 * ($SILO_CONFIG_DIR, else $XDG_CONFIG_HOME/silo, else ~/.config/silo):
 *   contexts/NAME/url      the endpoint, https://HOST:PORT (http:// only to loopback)
 *   contexts/NAME/token    the bearer token (copied from --token-file)
 *   contexts/NAME/ca.pem   CA that signed silod's certificate (optional)
 *   contexts/NAME/cert.pem, key.pem   client certificate for mutual TLS (optional)
 * every file 0600, written to a temporary name and renamed, so a context is
 * never half written; `current` names the context in use ("default", the
 * local unix socket, when absent).
 *
 * Which endpoint a command talks to, first match wins (as docker does):
 *   `silo --context NAME` (sets $SILO_CONTEXT), $SILO_CONTEXT, $SILO_HOST
 *   (with $SILO_API_TOKEN, $SILO_CA, $SILO_CLIENT_CERT, $SILO_CLIENT_KEY),
 *   the current context, the local socket.
 */
#ifndef SILO_CLI_CONTEXT_H
#define SILO_CLI_CONTEXT_H

#include <stdbool.h>

#include "common/error.h"

#define CLI_CONTEXT_NAME_MAX 64

typedef struct cli_endpoint {
	char context[CLI_CONTEXT_NAME_MAX + 1];   /* "" when from $SILO_HOST or local */
	char url[512];                            /* "" = the local unix socket */
	char *token;                              /* owned; NULL = none */
	char ca[4096], cert[4096], key[4096];     /* PEM file paths, "" = none */
} cli_endpoint;

/* Where this command talks to (header comment). INVALID_CONFIG naming the
 * context or variable when it is unknown or malformed. */
int cli_endpoint_resolve(cli_endpoint *e, silo_error *err);
/* Zero and free the token. */
void cli_endpoint_clear(cli_endpoint *e);
/* A context name: 1-64 of [A-Za-z0-9_.-], not starting with '.' or '-'. */
bool cli_context_name_ok(const char *name);
/* Is the URL's host a loopback address (127.0.0.0/8, ::1, localhost)? */
bool cli_url_loopback(const char *url);

#endif
