/* SPDX-License-Identifier: Apache-2.0
 * json_unknown_key (jsonkeys.h).
 */
#include <string.h>

#include "common/jsonkeys.h"

const char *json_unknown_key(json_t *obj, const char *const *allowed)
{
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v) {
		size_t i = 0;
		while (allowed[i] && strcmp(k, allowed[i]))
			i++;
		if (!allowed[i])
			return k;
	}
	return NULL;
}
