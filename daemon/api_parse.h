/* SPDX-License-Identifier: Apache-2.0
 * Parsers for silod request bodies (untrusted bytes; fuzzed by
 * tests/fuzz/fuzz_api_exec.c and fuzz_api_create.c). Errors are INVALID_CONFIG
 * naming the field.
 */
#ifndef SILO_DAEMON_API_PARSE_H
#define SILO_DAEMON_API_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "spec/spec.h"

#define EXEC_BODY_MAX (8u << 20)
#define MAX_ARGV 1024
#define MAX_ENV 1024

/* Shared helpers: an optional member; 0 absent, 1 set, -1 wrong type/range (err names key). */
typedef struct json_t json_t;
int api_json_uint(struct json_t *o, const char *key, uint64_t max, uint64_t *out, silo_error *err);
int api_json_str(struct json_t *o, const char *key, size_t max, const char **out, silo_error *err);
int api_json_bool(struct json_t *o, const char *key, bool *out, silo_error *err);
/* A request body as a JSON object (duplicate keys refused) with only the known
 * keys (NULL-terminated); with empty_ok an empty body is {}. NULL with
 * INVALID_CONFIG naming the position, or the unknown field and the known ones. */
json_t *api_json_body(const char *body, size_t len, const char *const *known, bool empty_ok, silo_error *err);

/* api_spec.c. POST /v1/sandboxes JSON: {"spec": "<hac.toml>"} or fields over the provider default. */
int api_spec_from_json(const char *body, size_t len, vm_spec *spec, silo_error *err);

typedef struct api_exec_body {
	char **argv;              /* NULL-terminated */
	char **env;               /* "K=V", NULL-terminated, or NULL */
	char *cwd;
	void *stdin_buf;
	size_t stdin_len;
	uint32_t timeout_ms;
	int64_t uid, gid;         /* -1 = agent default */
	/* api_proc_parse only (POST .../procs, the first message of a session) */
	bool pty, stdin_open;
	uint16_t rows, cols;      /* 0..4096, with pty */
	char *tag;
} api_exec_body;

/* POST /v1/sandboxes/{id}/exec JSON. Fills out (free with api_exec_body_free, also on error). */
int api_exec_parse(const char *body, size_t len, api_exec_body *out, silo_error *err);
/* The same plus pty, rows, cols, tag, stdin_open: a process start (daemon/api_procs.c). */
int api_proc_parse(const char *body, size_t len, api_exec_body *out, silo_error *err);
void api_exec_body_free(api_exec_body *b);

#endif
