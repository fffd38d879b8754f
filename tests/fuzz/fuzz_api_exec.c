/* SPDX-License-Identifier: Apache-2.0
 * Fuzz the silod exec request body parser (untrusted JSON from API clients).
 */
#include <stdint.h>
#include <string.h>

#include "daemon/api_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	api_exec_body b;
	memset(&b, 0, sizeof b);
	silo_error err;
	if (api_exec_parse((const char *)data, size, &b, &err) == 0) {
		/* A parsed body is well-formed: argv non-empty, strings NUL-free. */
		if (!b.argv || !b.argv[0])
			__builtin_trap();
		if (b.cwd && b.cwd[0] != '/')
			__builtin_trap();
	} else if (err.code != SILO_ERR_INVALID_CONFIG) {
		__builtin_trap();
	}
	api_exec_body_free(&b);
	return 0;
}
