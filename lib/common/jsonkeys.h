/* SPDX-License-Identifier: Apache-2.0
 * Refusing unknown keys of a JSON object (jsonkeys.c).
 */
#ifndef SILO_COMMON_JSONKEYS_H
#define SILO_COMMON_JSONKEYS_H

#include <jansson.h>

/* The first key of obj that is not in allowed (NULL-terminated), or NULL when all are. */
const char *json_unknown_key(json_t *obj, const char *const *allowed);

#endif
