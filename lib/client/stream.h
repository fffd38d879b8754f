/* SPDX-License-Identifier: Apache-2.0
 * Parsers of what silod streams (untrusted bytes: fuzzed by tests/fuzz/fuzz_client_stream.c):
 * - lines: an incremental splitter of a body into '\n'-terminated lines, each
 *   at most CL_LINE_MAX bytes (beyond: PROTOCOL), in any chunking;
 * - exec lines (NDJSON, docs/openapi.yaml ExecLine): an output chunk (base64),
 *   the exit line, or an error line;
 * - server-sent events (text/event-stream): the data of each event.
 * No allocation survives a call but the splitter's buffer (cl_lines_free).
 */
#ifndef SILO_CLIENT_STREAM_H
#define SILO_CLIENT_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "silo/client.h"

#define CL_LINE_MAX (16u << 20)

typedef struct cl_lines {
	char *buf;
	size_t len, cap;
} cl_lines;

/* Called with each complete line (without '\n', NUL-terminated in place);
 * return <0 to fail (err set), >0 to stop, 0 to go on. */
typedef int (*cl_line_fn)(void *ud, char *line, size_t len, silo_error *err);

/* Feed bytes; the same return convention as the callback. */
int cl_lines_feed(cl_lines *l, const char *p, size_t n, cl_line_fn fn, void *ud, silo_error *err);
/* At the end of the body: a last line without '\n' is passed on. */
int cl_lines_end(cl_lines *l, cl_line_fn fn, void *ud, silo_error *err);
void cl_lines_free(cl_lines *l);

/* One exec line. Output goes to out (may be NULL) and returns 0 (or its stop);
 * the exit line fills *res, sets *done and returns 0; an error line fills err
 * and returns -1; anything else is PROTOCOL (-1). */
int cl_exec_line(const char *line, size_t len, silo_client_output_fn out, void *ud, silo_client_exit *res, bool *done,
		 silo_error *err);

/* Server-sent events: feed each line; a complete event's data (NUL-terminated)
 * goes to fn. */
typedef struct cl_sse {
	char *data;
	size_t len, cap;
} cl_sse;
int cl_sse_line(cl_sse *s, const char *line, size_t len, silo_client_event_fn fn, void *ud, silo_error *err);
void cl_sse_free(cl_sse *s);

/* err from an error body {"error": {"code", "message", "vm_id", "errno"}} (or
 * a plain status when the body is not one). */
void cl_error_from_body(long status, const char *body, size_t len, silo_error *err);

#endif
