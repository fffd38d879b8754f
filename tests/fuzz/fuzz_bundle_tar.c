/* SPDX-License-Identifier: Apache-2.0
 * Fuzz the bundle reader (trust_bundle_walk): the input is a tar archive.
 * Invariants: no crash or leak; every entry handed out has a relative,
 * normalized path without "..", control characters or empty components, a
 * 0777 mode, and file data that lies inside the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trust/trust.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct span {
	const uint8_t *p;
	size_t n;
} span;

static int check_entry(void *ud, const trust_bundle_entry *e, silo_error *err)
{
	(void)err;
	const span *in = ud;
	size_t l = strlen(e->path);
	if (!l || l > TRUST_BUNDLE_PATH_MAX || e->path[0] == '/' || e->path[l - 1] == '/' || strstr(e->path, "//"))
		abort();
	for (const char *c = e->path; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			abort();
	for (const char *p = e->path; p; p = strchr(p, '/')) {
		p += *p == '/';
		size_t cl = strcspn(p, "/");
		if ((cl == 1 && p[0] == '.') || (cl == 2 && p[0] == '.' && p[1] == '.'))
			abort();
	}
	if (e->mode & ~0777u)
		abort();
	if (e->dir ? (e->data || e->size) : (e->data < in->p || e->size > in->n || e->data + e->size > in->p + in->n))
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	span in = {data, size};
	silo_error err = {0};
	if (trust_bundle_walk(data, size, check_entry, &in, &err) < 0 && err.code != SILO_ERR_INVALID_CONFIG)
		abort();
	return 0;
}
