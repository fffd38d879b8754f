/* SPDX-License-Identifier: Apache-2.0
 * Request targets and route patterns, shared by silo's two HTTP servers: silod
 * (the route table in daemon/routes.c) and silo-vmm (vmm/control_api.c). Pure,
 * no allocation, bounded: the bytes come from untrusted clients (fuzzed by
 * tests/fuzz/fuzz_http_route.c).
 *
 * A target "/v1/a%20b/c?k=v&flag" splits into path segments and query
 * parameters. With HTTP_TARGET_DECODE each path segment is percent-decoded on
 * its own (an escaped '/' stays inside its segment, where the server's capture
 * validation refuses it), and query keys and values are decoded as
 * application/x-www-form-urlencoded ('+' is a space). Refused with PROTOCOL,
 * naming the byte or the bound: a target that does not start with '/', a
 * control byte, space or DEL, a malformed escape or an escaped NUL (decoding
 * only), more than HTTP_TARGET_MAX bytes, HTTP_SEGS_MAX segments or
 * HTTP_PARAMS_MAX parameters. A parameter without '=' has the value "" and a
 * key given twice is refused (INVALID_CONFIG, naming it): which copy a server
 * would read is never a guess. Without HTTP_TARGET_DECODE (silo-vmm, like
 * Firecracker) segments and parameters are taken as they are.
 *
 * A pattern is a path whose segments are literals or captures "{name}"
 * (HTTP_CAPTURE_NAME_MAX bytes of [a-z0-9_]); a capture matches one non-empty
 * segment. Among the patterns that match a path the most specific one owns
 * it: compared from the left, a literal segment beats a capture (so
 * /v1/snapshots/gc owns that path, not /v1/snapshots/{snap}). A server's route
 * lookup keeps the highest http_pattern_match() score.
 */
#ifndef SILO_COMMON_HTTP_ROUTE_H
#define SILO_COMMON_HTTP_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

#define HTTP_TARGET_MAX 16384      /* bytes of the request target, query included */
#define HTTP_SEGS_MAX 16
#define HTTP_PARAMS_MAX 32
#define HTTP_CAPTURES_MAX 4
#define HTTP_CAPTURE_NAME_MAX 16

enum { HTTP_TARGET_DECODE = 1 };

typedef struct http_param {
	const char *key, *value;
} http_param;

typedef struct http_target {
	unsigned nseg;
	const char *seg[HTTP_SEGS_MAX];      /* NUL-terminated, into buf; "/" is one empty segment */
	unsigned short seglen[HTTP_SEGS_MAX];
	unsigned nparam;
	http_param param[HTTP_PARAMS_MAX];
	char buf[HTTP_TARGET_MAX + 2];
} http_target;

typedef struct http_captures {
	unsigned n;
	char name[HTTP_CAPTURES_MAX][HTTP_CAPTURE_NAME_MAX + 1];
	const char *value[HTTP_CAPTURES_MAX];   /* a segment of the target */
} http_captures;

/* Parse raw[0..len) (the request target as sent). */
int http_target_parse(const char *raw, size_t len, unsigned flags, http_target *t, silo_error *err);
/* The value of query parameter key, or NULL when it is absent. */
const char *http_target_query(const http_target *t, const char *key);

/* Is pattern well formed (a leading '/', at most HTTP_SEGS_MAX segments, at most
 * HTTP_CAPTURES_MAX captures with valid names, no empty literal but for "/")? */
bool http_pattern_valid(const char *pattern);
/* -1 when pattern does not match t's path; otherwise its specificity (higher
 * wins: bit HTTP_SEGS_MAX-1-i is set when segment i is a literal) and caps
 * (may be NULL) names each capture's segment. */
int http_pattern_match(const char *pattern, const http_target *t, http_captures *caps);
/* The segment captured as name, or NULL. */
const char *http_capture(const http_captures *caps, const char *name);

/* A server's route table: rows of any type with a `const char *method` and a
 * `const char *pattern` member (HTTP_TABLE fills in where they are). */
typedef struct http_table {
	const void *rows;
	size_t n, stride, method_off, pattern_off;
} http_table;
#define HTTP_TABLE(rows, n, type) \
	((http_table){(rows), (n), sizeof(type), offsetof(type, method), offsetof(type, pattern)})
/* The row for method on t's path (the most specific matching pattern owns the
 * path), or -1: allow[] then lists the methods of the owning pattern
 * (", "-separated: the path exists, the method does not), or is "" (no
 * pattern matches). */
long http_route_lookup(const http_table *tab, const char *method, const http_target *t, char *allow, size_t allow_len);
/* The method and pattern of row i. */
const char *http_table_method(const http_table *tab, size_t i);
const char *http_table_pattern(const http_table *tab, size_t i);

#endif
