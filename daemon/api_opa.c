/* SPDX-License-Identifier: Apache-2.0
 * External policy decisions over the OPA REST data API (docs/policy.md,
 * "External decisions (OPA)"): POST {"input": ...} to the configured URL, e.g.
 * http://127.0.0.1:8181/v1/data/silo/allow, and read {"result": ...}. Allowed
 * only by `true` or {"allow": true}; anything else, including an undefined
 * result, an HTTP error, a timeout or an unreadable body, denies (fail closed).
 * The response is bounded (64 KiB): the decision server is not trusted to be
 * well-behaved.
 */
#include "daemon/api_opa.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define OPA_MAX_RESPONSE (64 * 1024)

struct opa_client {
	char *url;
	long timeout_ms;
};

int opa_open(const char *url, long timeout_ms, opa_client **out, silo_error *err)
{
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--opa-url: expected an http:// or https:// URL, got '%.200s'",
				 url);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "libcurl init failed");
	opa_client *c = xcalloc(1, sizeof *c);
	c->url = xstrdup(url);
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
	*out = c;
	return 0;
}

void opa_close(opa_client *c)
{
	if (!c)
		return;
	free(c->url);
	free(c);
	curl_global_cleanup();
}

typedef struct body {
	char *p;
	size_t len;
	bool too_big;
} body;

static size_t on_data(char *ptr, size_t size, size_t n, void *ud)
{
	body *b = ud;
	size_t len = size * n;
	if (b->len + len > OPA_MAX_RESPONSE) {
		b->too_big = true;
		return 0;   /* aborts the transfer */
	}
	b->p = xrealloc(b->p, b->len + len + 1);
	memcpy(b->p + b->len, ptr, len);
	b->len += len;
	b->p[b->len] = '\0';
	return len;
}

static int unreachable(const opa_client *c, silo_error *err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int unreachable(const opa_client *c, silo_error *err, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return silo_fail(err, SILO_ERR_POLICY_DENIED, 0, "policy \"opa\" rule decision: no decision from %.200s (%s)",
			 c->url, msg);
}

int opa_decide(const opa_client *c, json_t *input, silo_error *err)
{
	json_t *req = json_pack("{s:o}", "input", input);
	char *text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	CURL *h = curl_easy_init();
	if (!h) {
		free(text);
		return unreachable(c, err, "cannot create a libcurl handle");
	}
	body b = {0};
	char cerr[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(h, CURLOPT_URL, c->url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	CURLcode rc = curl_easy_perform(h);
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	curl_slist_free_all(hdr);
	free(text);
	int ret;
	if (b.too_big) {
		ret = unreachable(c, err, "response larger than %d bytes", OPA_MAX_RESPONSE);
	} else if (rc != CURLE_OK) {
		ret = unreachable(c, err, "%s", cerr[0] ? cerr : curl_easy_strerror(rc));
	} else if (status != 200) {
		ret = unreachable(c, err, "HTTP %ld", status);
	} else {
		json_error_t je;
		json_t *o = json_loadb(b.p ? b.p : "", b.len, 0, &je);
		json_t *res = json_is_object(o) ? json_object_get(o, "result") : NULL;
		if (!o || !json_is_object(o)) {
			ret = unreachable(c, err, "the response is not a JSON object");
		} else if (!res) {
			ret = silo_fail(err, SILO_ERR_POLICY_DENIED, 0,
					"policy \"opa\" rule allow: the decision at %.200s is undefined for this input", c->url);
		} else if (json_is_true(res)) {
			ret = 0;
		} else if (json_is_object(res) && json_is_true(json_object_get(res, "allow"))) {
			ret = 0;
		} else {
			const char *why = json_is_object(res) ? json_string_value(json_object_get(res, "reason")) : NULL;
			ret = silo_fail(err, SILO_ERR_POLICY_DENIED, 0, "policy \"opa\" rule allow: denied by %.200s%s%.300s",
					c->url, why ? ": " : "", why ? why : "");
		}
		json_decref(o);
	}
	free(b.p);
	return ret;
}
