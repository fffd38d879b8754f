/* SPDX-License-Identifier: Apache-2.0
 * Fuzz the egress entry parser (lib/net/egress.c): entries come from specs
 * and policies of API clients. Invariants: an accepted entry formats to text
 * that parses back to the same rule, covers itself, and a name rule matches
 * its own name; a refusal always says why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/egress.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char s[400];
	if (size >= sizeof s)
		size = sizeof s - 1;
	memcpy(s, data, size);
	s[size] = '\0';
	/* two entries separated by the first newline: also check coverage both ways */
	char *nl = strchr(s, '\n');
	char *second = NULL;
	if (nl) {
		*nl = '\0';
		second = nl + 1;
	}
	egress_rule r, back;
	char why[200] = "";
	if (egress_parse(s, &r, why, sizeof why)) {
		char text[400];
		egress_format(&r, text, sizeof text);
		if (!egress_parse(text, &back, why, sizeof why) || memcmp(&r, &back, sizeof r))
			abort();
		if (!egress_rule_covers(&r, &r))
			abort();
		if (r.kind == EGRESS_NAME && !egress_name_matches(&r, r.name))
			abort();
		if (r.kind == EGRESS_CIDR && !egress_cidr_contains(&r, r.addr))
			abort();
		if (second) {
			egress_rule w;
			if (egress_parse(second, &w, why, sizeof why) && egress_rule_covers(&r, &w) && r.port &&
			    r.port != w.port)
				abort();   /* a port-limited entry never covers another port */
		}
	} else if (!why[0]) {
		abort();
	}
	/* classification is total */
	uint32_t a = 0;
	memcpy(&a, data, size < 4 ? size : 4);
	(void)egress_addr_class(a);
	return 0;
}
