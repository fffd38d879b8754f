/* SPDX-License-Identifier: Apache-2.0
 * Fuzz silo-oci's config.json reader (runtime/config.c): a bundle's config comes
 * from the engine and is checked field by field. Every refusal is
 * INVALID_CONFIG; every accepted config has an absolute root and, when it has a
 * process, a program and an absolute cwd; the process survives the round trip through the form an
 * exec request carries.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rt_config c;
	silo_error e;
	if (rt_config_parse((const char *)data, size, "/bundle", &c, &e) != 0) {
		if (e.code != SILO_ERR_INVALID_CONFIG)
			abort();
		return 0;
	}
	if (!c.root || c.root[0] != '/' || c.nmounts > RT_MAX_MOUNTS)
		abort();
	if (!c.has_process) {
		rt_config_free(&c);
		return 0;
	}
	if (!c.process.args || !c.process.args[0] || !c.process.cwd || c.process.cwd[0] != '/')
		abort();
	json_t *j = rt_process_json(&c.process);
	rt_process p;
	if (rt_process_parse(j, "process", &p, &e) != 0)
		abort();
	if (strcmp(p.args[0], c.process.args[0]) || p.uid != c.process.uid || p.nrlimits != c.process.nrlimits)
		abort();
	rt_process_free(&p);
	json_decref(j);
	rt_config_free(&c);
	return 0;
}
