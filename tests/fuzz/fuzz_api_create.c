/* SPDX-License-Identifier: Apache-2.0
 * Fuzz the silod create body parser (JSON fields over the provider default, or
 * an embedded hac.toml), which ends in spec_validate.
 */
#include <stdint.h>
#include <string.h>

#include "daemon/api_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	vm_spec s;
	memset(&s, 0, sizeof s);
	silo_error err;
	if (api_spec_from_json((const char *)data, size, &s, &err) == 0) {
		silo_error e2;
		if (spec_validate(&s, &e2) < 0)
			__builtin_trap();   /* accepted specs are valid */
		spec_free(&s);
	} else if (err.code != SILO_ERR_INVALID_CONFIG && err.code != SILO_ERR_PROVIDER_UNAVAILABLE) {
		__builtin_trap();
	}
	return 0;
}
