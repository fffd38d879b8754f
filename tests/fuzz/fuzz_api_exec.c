/* SPDX-License-Identifier: Apache-2.0
 * Fuzz the silod exec request body parsers (untrusted JSON from API clients):
 * POST .../exec (api_exec_parse) and a process start, POST .../procs or the
 * first message of a WebSocket session (api_proc_parse), on the same bytes.
 */
#include <stdint.h>
#include <string.h>

#include "daemon/api_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int rc, const api_exec_body *b, const silo_error *err, bool proc)
{
	if (rc == 0) {
		/* A parsed body is well-formed: argv non-empty, strings NUL-free, bounds kept. */
		if (!b->argv || !b->argv[0])
			__builtin_trap();
		if (b->cwd && b->cwd[0] != '/')
			__builtin_trap();
		if (b->rows > 4096 || b->cols > 4096 || ((b->rows || b->cols) && !b->pty))
			__builtin_trap();
		if (!proc && (b->pty || b->tag || b->stdin_open))
			__builtin_trap();
		if (b->tag && strlen(b->tag) > 64)
			__builtin_trap();
	} else if (err->code != SILO_ERR_INVALID_CONFIG) {
		__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	api_exec_body b;
	silo_error err;
	check(api_exec_parse((const char *)data, size, &b, &err), &b, &err, false);
	api_exec_body_free(&b);
	check(api_proc_parse((const char *)data, size, &b, &err), &b, &err, true);
	api_exec_body_free(&b);
	return 0;
}
