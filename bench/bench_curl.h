/* SPDX-License-Identifier: Apache-2.0
 * Shared by the benchmarks that talk HTTP to silod with libcurl (api_load,
 * slowloris): a response body collected in memory, bounded.
 */
#ifndef SILO_BENCH_CURL_H
#define SILO_BENCH_CURL_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Optional parts of a request: one more request header, and a callback for
 * the response's header lines (CURLOPT_HEADERFUNCTION). */
typedef struct bench_req_extra {
	const char *header;
	size_t (*on_header)(char *p, size_t sz, size_t n, void *ud);
	void *header_ud;
} bench_req_extra;

static inline long bench_request_ex(CURL *h, const char *sock, const char *method, const char *path,
				    const char *ctype, const char *body, resp *r, const bench_req_extra *x);

/* One request to silod on unix socket SOCK; returns the HTTP status (0 on
 * transport failure), the body in r. */
static inline long bench_request(CURL *h, const char *sock, const char *method, const char *path, const char *ctype,
				 const char *body, resp *r)
{
	return bench_request_ex(h, sock, method, path, ctype, body, r, NULL);
}

static inline long bench_request_ex(CURL *h, const char *sock, const char *method, const char *path,
				    const char *ctype, const char *body, resp *r, const bench_req_extra *x)
{
	char url[1024];
	snprintf(url, sizeof url, "http://silod%s", path);
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, sock);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
	struct curl_slist *hd = NULL;
	char ct[128];
	if (ctype) {
		snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
		hd = curl_slist_append(hd, ct);
	}
	hd = curl_slist_append(hd, "Expect:");
	if (x && x->header)
		hd = curl_slist_append(hd, x->header);
	if (x && x->on_header) {
		curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, x->on_header);
		curl_easy_setopt(h, CURLOPT_HEADERDATA, x->header_ud);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	long status = 0;
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hd);
	return status;
}

/* {count, errors, p50_ms, p95_ms, p99_ms, max_ms, mean_ms} of V[0..N) (sorted here). */
static inline json_t *bench_stats_json(double *v, size_t n, unsigned errors)
{
	bench_sort(v, n);
	return json_pack("{s:I,s:i,s:f,s:f,s:f,s:f,s:f}", "count", (json_int_t)n, "errors", errors, "p50_ms",
			 bench_pct(v, n, 50, 0), "p95_ms", bench_pct(v, n, 95, 0), "p99_ms", bench_pct(v, n, 99, 0),
			 "max_ms", n ? v[n - 1] : 0.0, "mean_ms", bench_mean(v, n));
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

/* Wait up to 10 s for silod on SOCK to answer /v1/health, then ask whether PROVIDER
 * is available: 1 yes, 0 no, -1 silod did not come up. */
static inline int bench_silod_wait(CURL *h, const char *sock, const char *provider)
{
	bool up = false;
	for (int i = 0; i < 400 && !up; i++) {
		resp r = {0};
		up = bench_request(h, sock, "GET", "/v1/health", NULL, NULL, &r) == 200;
		free(r.buf);
		if (!up)
			usleep(25000);
	}
	if (!up)
		return -1;
	resp pr = {0};
	bench_request(h, sock, "GET", "/v1/providers", NULL, NULL, &pr);
	json_t *pj = pr.buf ? json_loads(pr.buf, 0, NULL) : NULL;
	bool avail = bench_provider_available(pj, provider);
	json_decref(pj);
	free(pr.buf);
	return avail;
}

/* Find silod unless *silod is set (path gets it, *silod points at it). Dies
 * when it is not found. */
static inline void bench_find_silod(const char **silod, char path[4096])
{
	silo_error err;
	if (!*silod) {
		if (find_helper_binary("silod", path, 4096, &err) < 0)
			die(1, "%s", err.message);
		*silod = path;
	}
}

/* Before starting silod: bench_find_silod, then make the temp dir tmp (a mkdtemp template, rewritten) with tmp/state and tmp/run,
 * point SILO_STATE_DIR and SILO_RUNTIME_DIR at them and fill sock with the
 * unix socket's path. Dies on failure. */
static inline void bench_silod_setup(const char **silod, char path[4096], char *tmp, char *sock, size_t sock_len)
{
	bench_find_silod(silod, path);
	if (bench_silod_dirs(tmp, sock, sock_len) < 0)
		die_errno(1, "state and runtime dirs under %s", tmp);
}

#endif
