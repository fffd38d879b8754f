/* SPDX-License-Identifier: Apache-2.0
 * Shared by the benchmarks that talk to silod over libcurl (api_load, chaos):
 * a bounded in-memory response body.
 */
#ifndef SILO_BENCH_HTTP_H
#define SILO_BENCH_HTTP_H

#include <stddef.h>
#include <string.h>

#include "common/util.h"

#define BENCH_BODY_MAX (8u << 20)

typedef struct resp {
	char *buf;    /* NUL-terminated, NULL when empty */
	size_t len;
} resp;

/* CURLOPT_WRITEFUNCTION for a resp (CURLOPT_WRITEDATA); stops past BENCH_BODY_MAX. */
static inline size_t bench_on_data(char *p, size_t sz, size_t n, void *ud)
{
	resp *r = ud;
	size_t len = sz * n;
	if (r->len + len > BENCH_BODY_MAX)
		return 0;
	r->buf = xrealloc(r->buf, r->len + len + 1);
	memcpy(r->buf + r->len, p, len);
	r->len += len;
	r->buf[r->len] = '\0';
	return len;
}

#endif
