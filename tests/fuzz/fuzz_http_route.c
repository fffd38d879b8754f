/* SPDX-License-Identifier: Apache-2.0
 * Fuzz request targets (lib/common/http_route.c: path segments, percent
 * escapes, query parameters) and silod's route lookup on its real table
 * (daemon/route.c, routes.c). Input: "METHOD TARGET" (the first space
 * splits; without one, GET). Invariants: a parsed target stays inside its
 * bounds, every query key looks up to its own value, a found route has the
 * method asked and a pattern that matches with the captures it names, and a
 * refusal is one of the codes routing may give.
 */
#include <stdint.h>
#include <string.h>

#include "daemon/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_target(const http_target *t)
{
	if (t->nseg == 0 || t->nseg > HTTP_SEGS_MAX || t->nparam > HTTP_PARAMS_MAX)
		__builtin_trap();
	const char *end = t->buf + sizeof t->buf;
	for (unsigned i = 0; i < t->nseg; i++)
		if (t->seg[i] < t->buf || t->seg[i] + strlen(t->seg[i]) >= end)
			__builtin_trap();
	for (unsigned i = 0; i < t->nparam; i++) {
		if (!t->param[i].key[0] || http_target_query(t, t->param[i].key) != t->param[i].value)
			__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static http_target t;   /* 16 KiB: not on the stack */
	const char *in = (const char *)data;
	const char *sp = memchr(in, ' ', size);
	char method[16] = "GET";
	size_t off = 0;
	if (sp && (size_t)(sp - in) < sizeof method) {
		memcpy(method, in, (size_t)(sp - in));
		method[sp - in] = '\0';
		off = (size_t)(sp - in) + 1;
	}
	silo_error err = {0};
	for (unsigned flags = 0; flags <= HTTP_TARGET_DECODE; flags++) {
		if (http_target_parse(in + off, size - off, flags, &t, &err) < 0) {
			if (err.code != SILO_ERR_PROTOCOL && err.code != SILO_ERR_INVALID_CONFIG)
				__builtin_trap();
			continue;
		}
		check_target(&t);
	}
	if (http_target_parse(in + off, size - off, HTTP_TARGET_DECODE, &t, &err) < 0)
		return 0;
	char allow[96];
	const api_route *r = api_route_find(method, &t, "/fuzz", allow, &err);
	if (!r) {
		if (err.code != SILO_ERR_NOT_FOUND && err.code != SILO_ERR_METHOD_NOT_ALLOWED)
			__builtin_trap();
		if (err.code == SILO_ERR_METHOD_NOT_ALLOWED && !allow[0])
			__builtin_trap();
		return 0;
	}
	http_captures caps;
	if (strcmp(r->method, method) != 0 || http_pattern_match(r->pattern, &t, &caps) < 0)
		__builtin_trap();
	for (unsigned i = 0; i < caps.n; i++)
		if (!caps.value[i][0] || http_capture(&caps, caps.name[i]) != caps.value[i])
			__builtin_trap();
	/* the query helpers handlers use */
	api_req q = {.route = r, .method = method, .path = "/fuzz", .target = &t, .caps = caps};
	for (unsigned i = 0; i < t.nparam; i++) {
		uint64_t v = 0;
		if (api_query_uint(&q, t.param[i].key, 1000, &v, &err) == 0 && v > 1000)
			__builtin_trap();
	}
	return 0;
}
