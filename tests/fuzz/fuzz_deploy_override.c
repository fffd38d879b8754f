/* SPDX-License-Identifier: Apache-2.0
 * Fuzz the deployment --set overrides (lib/core/deploy.c): each input line is
 * one KEY=VALUE applied to the namespace default spec. Invariant: a spec the
 * overrides leave valid is stored as canonical TOML and must parse back to an
 * equal spec (a deployment is restarted from exactly that text); errors are
 * INVALID_CONFIG only.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "core/deploy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 16384)
		return 0;
	vm_spec s = {0};
	silo_error err;
	if (spec_default("namespace", &s, &err) < 0)
		__builtin_trap();
	char *buf = xstrndup((const char *)data, size);   /* stops at a NUL: like a C string from JSON */
	bool ok = true;
	for (char *line = buf, *next; line && ok; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (!*line)
			continue;
		if (deploy_apply_override(&s, line, &err) < 0) {
			if (err.code != SILO_ERR_INVALID_CONFIG)
				__builtin_trap();
			ok = false;
		}
	}
	if (ok && spec_validate(&s, &err) == 0) {
		char *toml = spec_format(&s);
		vm_spec back = {0};
		if (!toml || spec_parse(toml, strlen(toml), &back, &err) < 0 || !spec_equal(&s, &back))
			__builtin_trap();
		spec_free(&back);
		free(toml);
	}
	spec_free(&s);
	free(buf);
	return 0;
}
