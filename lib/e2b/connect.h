/* SPDX-License-Identifier: Apache-2.0
 * The Connect protocol (connectrpc.com/docs/protocol) as E2B's envd speaks it
 * to its SDKs, JSON codec only, and the envd request messages decoded from
 * it (spec/envd/process/process.proto, spec/envd/filesystem/filesystem.proto
 * of e2b-dev/E2B). Pure and bounded: every byte comes from an untrusted
 * client (fuzzed by tests/fuzz/fuzz_e2b_connect.c). No allocation survives a
 * failed call.
 *
 * Envelope (streaming RPCs, both directions): 1 flag byte, a 4-byte
 * big-endian length, then that many bytes of JSON. Flag 0x01 = compressed
 * (refused: we never negotiate compression), 0x02 = end of stream (the
 * server's last envelope: {} or {"error": {"code", "message"}}). Other flag
 * bits are refused. A message longer than the caller's bound is refused
 * before a byte of it is looked at.
 *
 * JSON messages follow proto3's JSON mapping: field names in lowerCamelCase
 * or as in the .proto, bytes as base64 (standard or URL-safe, padded or not),
 * enums by name or number, uint32 as a number, a missing field is its zero
 * value; an unknown field is ignored (as protobuf does), a field of the wrong
 * type is INVALID_CONFIG naming it.
 */
#ifndef SILO_E2B_CONNECT_H
#define SILO_E2B_CONNECT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define CONNECT_FLAG_COMPRESSED 0x01u
#define CONNECT_FLAG_END 0x02u
#define CONNECT_ENV_HDR 5u
#define E2B_MSG_MAX (4u << 20)      /* one RPC message (SendInput data is base64 in it) */
#define E2B_ARGS_MAX 4096           /* argv entries of a started process */
#define E2B_ENVS_MAX 1024
#define E2B_STR_MAX 65536           /* cmd, one arg, cwd, a path */
#define E2B_TAG_MAX 64

/* ---- envelopes ---- */
typedef struct connect_env {
	uint8_t flags;
	const char *data;           /* into the caller's buffer */
	uint32_t len;
} connect_env;
/* The envelope at buf[0..len): bytes consumed (> 0); 0 when buf holds only a
 * part of one (a header shorter than 5 bytes, or less than its length); -1
 * with PROTOCOL (unknown or compressed flags) or RESOURCE_EXCEEDED (length
 * above max). */
long connect_env_next(const void *buf, size_t len, uint32_t max, connect_env *out, silo_error *err);
/* Write an envelope header for a message of len bytes into hdr. */
void connect_env_header(uint8_t hdr[CONNECT_ENV_HDR], uint8_t flags, uint32_t len);

/* ---- errors ---- */
/* Connect's code name for a silo code ("not_found", "invalid_argument", ...),
 * and the HTTP status of a unary error with that code. */
const char *connect_code(silo_code code);
unsigned connect_http_status(const char *connect_code);
/* {"code": "...", "message": "..."} (the unary error body and the "error" of an
 * end-of-stream message). */
json_t *connect_error_json(const silo_error *err);

/* ---- JSON helpers (proto3 mapping) ---- */
/* Parse one message: a JSON object of at most len bytes, duplicates refused. */
json_t *e2b_json_parse(const char *buf, size_t len, silo_error *err);
/* obj.camel (or obj.snake): a string of at most max bytes, NUL-free; *out NULL
 * when absent. */
int e2b_json_string(json_t *obj, const char *camel, const char *snake, size_t max, const char **out,
		    silo_error *err);
int e2b_json_bool(json_t *obj, const char *camel, const char *snake, bool *out, silo_error *err);
/* uint32: a number or a decimal string (proto3 accepts both). */
int e2b_json_u32(json_t *obj, const char *camel, const char *snake, uint32_t *out, silo_error *err);
/* bytes: base64 of at most max decoded bytes; *out malloc'd (NULL, 0 when absent or empty). */
int e2b_json_bytes(json_t *obj, const char *name, size_t max, uint8_t **out, size_t *len, silo_error *err);
/* Base64 (standard, no newlines) of buf; malloc'd, NUL-terminated. */
char *e2b_base64(const void *buf, size_t len);

/* ---- process.proto requests ---- */
typedef struct e2b_selector {
	bool by_tag;
	uint32_t pid;
	char tag[E2B_TAG_MAX + 1];
} e2b_selector;
/* ProcessSelector at obj[field] (required: INVALID_CONFIG when absent). */
int e2b_selector_parse(json_t *obj, const char *field, e2b_selector *out, silo_error *err);

typedef struct e2b_start_req {
	char **argv;                /* cmd then args; NULL-terminated */
	char **env;                 /* "K=V", NULL-terminated, or NULL */
	char *cwd;                  /* NULL = the agent default */
	char *tag;
	bool pty, stdin_open;
	uint16_t rows, cols;
} e2b_start_req;
int e2b_start_parse(const char *buf, size_t len, e2b_start_req *out, silo_error *err);
void e2b_start_free(e2b_start_req *r);

/* SendInput / StreamInput data: ProcessInput {stdin | pty} at obj[field]. */
typedef struct e2b_input {
	uint8_t *data;
	size_t len;
	bool pty;
} e2b_input;
int e2b_input_parse(json_t *obj, const char *field, e2b_input *out, silo_error *err);

/* SendSignal's signal: "SIGNAL_SIGKILL", "SIGNAL_SIGTERM" or their numbers. */
int e2b_signal_parse(json_t *obj, int *sig, silo_error *err);
/* Update's pty.size (rows, cols; 0 = absent pty). */
int e2b_pty_size_parse(json_t *obj, uint16_t *rows, uint16_t *cols, bool *present, silo_error *err);

/* ---- StreamInput's client stream: envelopes of StreamInputRequest ---- */
typedef enum { E2B_SI_START, E2B_SI_DATA, E2B_SI_KEEPALIVE } e2b_si_kind;
typedef struct e2b_si_event {
	e2b_si_kind kind;
	e2b_selector sel;           /* START */
	e2b_input in;               /* DATA (free in.data) */
} e2b_si_event;
int e2b_stream_input_parse(const char *json, size_t len, e2b_si_event *out, silo_error *err);

#endif
