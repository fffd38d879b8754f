/* SPDX-License-Identifier: Apache-2.0
 * Fuzz the TOML parser and the hac.toml layer on top of it. Any spec that
 * parses must format to text that parses back to an equal spec.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spec/spec.h"
#include "spec/toml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	toml_value *v = toml_parse((const char *)data, size, err, sizeof err);
	toml_free(v);
	vm_spec s, t;
	silo_error e;
	if (spec_parse((const char *)data, size, &s, &e) == 0) {
		char *txt = spec_format(&s);
		if (spec_parse(txt, strlen(txt), &t, &e) != 0 || !spec_equal(&s, &t))
			abort();
		spec_free(&t);
		free(txt);
		spec_free(&s);
	}
	return 0;
}
