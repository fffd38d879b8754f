/* SPDX-License-Identifier: Apache-2.0
 * Fuzz the hac.toml layer (spec_parse). Every spec that parses must validate,
 * format to text that parses back to an equal spec (with its secrets' values
 * dropped: the stored form never holds one, and does not change with them),
 * format identically the second time, copy to an equal spec, and go through
 * the capacity check without crashing. Every refusal is INVALID_CONFIG.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spec/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	vm_spec s, t, c;
	silo_error e;
	if (spec_parse((const char *)data, size, &s, &e) != 0) {
		if (e.code != SILO_ERR_INVALID_CONFIG)
			abort();
		return 0;
	}
	if (spec_validate(&s, &e) != 0)
		abort();
	char *txt = spec_format(&s);
	vm_spec r;
	spec_copy(&r, &s);
	spec_redact(&r);
	char *rtxt = spec_format(&r);
	if (strcmp(txt, rtxt) != 0)
		abort();
	if (spec_parse(txt, strlen(txt), &t, &e) != 0 || !spec_equal(&r, &t))
		abort();
	spec_free(&r);
	free(rtxt);
	char *wtxt = spec_format_with_secrets(&s);
	if (spec_parse(wtxt, strlen(wtxt), &r, &e) != 0 || !spec_equal(&s, &r))
		abort();
	spec_free(&r);
	free(wtxt);
	char *txt2 = spec_format(&t);
	if (strcmp(txt, txt2) != 0)
		abort();
	spec_copy(&c, &s);
	if (!spec_equal(&c, &s))
		abort();
	host_capacity host = {.cpus = 4, .memory_mb = 8192};
	if (spec_check_capacity(&s, &host, 2, 1024, &e) != 0 && e.code != SILO_ERR_RESOURCE_EXCEEDED)
		abort();
	spec_free(&c);
	spec_free(&t);
	free(txt2);
	free(txt);
	spec_free(&s);
	return 0;
}
