/* SPDX-License-Identifier: Apache-2.0
 * A set of strings (strset.c): open addressing with linear probing over a
 * power-of-two table kept at most half full. A removed key leaves a tombstone
 * so later probes continue past it; tombstones count as used until the table
 * grows. Keys are copied. Allocation failure returns -1 and leaves the set as
 * it was: silo-agent links this file and reports it (lib/archive); libsilo
 * callers that cannot fail call silo_out_of_memory(). Zero-initialize a set.
 */
#ifndef SILO_COMMON_STRSET_H
#define SILO_COMMON_STRSET_H

#include <stdbool.h>
#include <stddef.h>

typedef struct strset {
	char **slot;
	size_t cap, used;
} strset;

/* Add k (0 when added or already there), -1 out of memory. */
int strset_add(strset *s, const char *k);
bool strset_has(const strset *s, const char *k);
/* Remove k: true when it was there. */
bool strset_take(strset *s, const char *k);
void strset_free(strset *s);

#endif
