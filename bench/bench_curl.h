/* SPDX-License-Identifier: Apache-2.0
 * Shared by the benchmarks that talk HTTP to silod with libcurl (api_load,
 * slowloris): a response body collected in memory, bounded.
 */
#ifndef SILO_BENCH_CURL_H
#define SILO_BENCH_CURL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "common/util.h"

#define BENCH_RESP_MAX (4u << 20)

typedef struct resp {
	char *buf;     /* NUL-terminated once something arrived; free() it */
	size_t len;
} resp;

/* CURLOPT_WRITEFUNCTION with CURLOPT_WRITEDATA = a resp; stops past BENCH_RESP_MAX. */
static inline size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
	resp *r = ud;
	size_t len = sz * n;
	if (r->len + len > BENCH_RESP_MAX)
		return 0;
	r->buf = xrealloc(r->buf, r->len + len + 1);
	memcpy(r->buf + r->len, p, len);
	r->len += len;
	r->buf[r->len] = '\0';
	return len;
}

/* Is provider `name` available in a GET /v1/providers answer? */
static inline bool bench_provider_available(json_t *providers, const char *name)
{
	size_t i;
	json_t *p;
	json_array_foreach(json_object_get(providers, "providers"), i, p)
		if (!strcmp(json_string_value(json_object_get(p, "name")) ?: "", name))
			return json_is_true(json_object_get(p, "available"));
	return false;
}

/* Before starting silod: find it unless *silod is set (path gets it), make
 * the temp dir tmp (a mkdtemp template, rewritten) with tmp/state and tmp/run,
 * point SILO_STATE_DIR and SILO_RUNTIME_DIR at them and fill sock with the
 * unix socket's path. Dies on failure. */
static inline void bench_silod_setup(const char **silod, char path[4096], char *tmp, char *sock, size_t sock_len)
{
	silo_error err;
	if (!*silod) {
		if (find_helper_binary("silod", path, 4096, &err) < 0)
			die(1, "%s", err.message);
		*silod = path;
	}
	if (bench_silod_dirs(tmp, sock, sock_len) < 0)
		die_errno(1, "state and runtime dirs under %s", tmp);
}

#endif
