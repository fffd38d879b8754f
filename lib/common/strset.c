/* SPDX-License-Identifier: Apache-2.0
 * A set of strings (strset.h). libc only: linked into silo-agent too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/strset.h"

static char tomb_;
#define TOMB (&tomb_)

static uint64_t str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;   /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* The slot holding k, or the empty slot where it would go (cap > 0). */
static char **slot_of(char **slot, size_t cap, const char *k)
{
	for (size_t i = str_hash(k) & (cap - 1);; i = (i + 1) & (cap - 1))
		if (!slot[i] || (slot[i] != TOMB && !strcmp(slot[i], k)))
			return &slot[i];
}

bool strset_has(const strset *s, const char *k)
{
	return s->cap && *slot_of(s->slot, s->cap, k);
}

int strset_add(strset *s, const char *k)
{
	if (strset_has(s, k))
		return 0;
	if ((s->used + 1) * 2 > s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 64, n = 0;
		char **ns = calloc(ncap, sizeof *ns);
		if (!ns)
			return -1;
		for (size_t i = 0; i < s->cap; i++)
			if (s->slot[i] && s->slot[i] != TOMB) {
				*slot_of(ns, ncap, s->slot[i]) = s->slot[i];
				n++;
			}
		free(s->slot);
		s->slot = ns;
		s->cap = ncap;
		s->used = n;
	}
	char *c = strdup(k);
	if (!c)
		return -1;
	*slot_of(s->slot, s->cap, k) = c;
	s->used++;
	return 0;
}

bool strset_take(strset *s, const char *k)
{
	if (!s->cap)
		return false;
	char **p = slot_of(s->slot, s->cap, k);
	if (!*p)
		return false;
	free(*p);
	*p = TOMB;
	return true;
}

void strset_free(strset *s)
{
	for (size_t i = 0; i < s->cap; i++)
		if (s->slot[i] != TOMB)
			free(s->slot[i]);
	free(s->slot);
	memset(s, 0, sizeof *s);
}
