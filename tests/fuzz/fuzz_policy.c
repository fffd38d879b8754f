/* SPDX-License-Identifier: Apache-2.0
 * Fuzz the policy and tokens file parsers (lib/policy). Besides "no crash, no
 * leak": a file that parses has a default policy, operation bits in range,
 * normalized paths, and every policy answers checks consistently; every error
 * is INVALID_CONFIG naming the file kind.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "policy/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	policy_set ps;
	silo_error err;
	if (policy_set_parse(text, size, &ps, &err) == 0) {
		if (ps.n == 0 || ps.def >= ps.n)
			abort();
		for (size_t i = 0; i < ps.n; i++) {
			const policy *p = &ps.v[i];
			if (p->ops >> POLICY_OP__COUNT)
				abort();
			char norm[4096];
			for (size_t j = 0; j < p->n_paths; j++)
				if (!policy_normalize_path(p->paths[j], norm, sizeof norm) || strcmp(norm, p->paths[j]))
					abort();
			/* An allowed path prefix allows itself (when file_read is allowed at all). */
			if (p->n_paths && (p->ops & (1u << POLICY_OP_FILE_READ)) &&
			    policy_check_path(p, POLICY_OP_FILE_READ, p->paths[0], &err) < 0)
				abort();
			if (policy_find(&ps, p->name, &err) != p)
				abort();
		}
		policy_set_free(&ps);
	} else if (err.code != SILO_ERR_INVALID_CONFIG || strncmp(err.message, "policy file", 11) != 0) {
		abort();
	}
	token_set ts;
	if (token_set_parse(text, size, &ts, &err) == 0) {
		for (size_t i = 0; i < ts.n; i++)
			if (!ts.v[i].name[0] || ts.v[i].ops >> TOKEN_OP__COUNT)
				abort();
		token_set_free(&ts);
	} else if (err.code != SILO_ERR_INVALID_CONFIG || strncmp(err.message, "tokens file", 11) != 0) {
		abort();
	}
	return 0;
}
