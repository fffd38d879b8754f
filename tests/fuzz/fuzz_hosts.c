/* SPDX-License-Identifier: Apache-2.0
 * Fuzz the hosts(5) parser (lib/net/hosts.c). Invariants: every accepted
 * name is normalized, found by lookup, has 1..HOSTS_MAX_ADDRS distinct
 * addresses, and names are sorted and unique; a refusal says why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/egress.h"
#include "net/hosts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	hosts_map m;
	char why[300] = "";
	if (!hosts_parse((const char *)data, size, &m, why, sizeof why)) {
		if (!why[0] || m.n || m.v)
			abort();
		return 0;
	}
	for (size_t i = 0; i < m.n; i++) {
		const hosts_entry *e = &m.v[i];
		char norm[EGRESS_NAME_MAX + 1];
		if (!egress_normalize_name(e->name, norm, sizeof norm) || strcmp(norm, e->name))
			abort();
		if (hosts_lookup(&m, e->name) != e || e->n < 1 || e->n > HOSTS_MAX_ADDRS)
			abort();
		if (i && strcmp(m.v[i - 1].name, e->name) >= 0)
			abort();
		for (unsigned a = 0; a < e->n; a++)
			for (unsigned b = a + 1; b < e->n; b++)
				if (e->addrs[a] == e->addrs[b])
					abort();
	}
	hosts_free(&m);
	return 0;
}
