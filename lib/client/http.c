/* SPDX-License-Identifier: Apache-2.0
 * libcurl plumbing shared by libsilo-client and the CLI (see http.h).
 */
#include "client/http.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

CURLcode cl_http_init(void)
{
	pthread_once(&curl_once, curl_init);
	return curl_init_rc;
}

static bool set(const char *s)
{
	return s && *s;
}

struct curl_slist *cl_http_setup(CURL *h, const cl_http_target *t, const char *method, const char *path,
				 const char *ctype, long connect_timeout_ms)
{
	curl_easy_reset(h);
	char *url = xasprintf("%s%s", t->base, path);
	curl_easy_setopt(h, CURLOPT_URL, url);   /* curl keeps a copy */
	free(url);
	if (set(t->sock))
		curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, t->sock);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (set(t->ca))
		curl_easy_setopt(h, CURLOPT_CAINFO, t->ca);
	if (set(t->cert)) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, t->cert);
		curl_easy_setopt(h, CURLOPT_SSLKEY, t->key);
	}
	struct curl_slist *hdrs = NULL;
	if (ctype) {
		char *cth = xasprintf("Content-Type: %s", ctype);
		hdrs = curl_slist_append(hdrs, cth);   /* copied */
		free(cth);
	}
	if (set(t->auth))
		hdrs = curl_slist_append(hdrs, t->auth);
	hdrs = curl_slist_append(hdrs, "Expect:");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	return hdrs;
}

bool cl_buf_append(char **buf, size_t *len, size_t *cap, size_t max, const char *p, size_t n)
{
	if (*len + n + 1 > max)
		return false;
	if (*len + n + 1 > *cap) {
		*cap = MAX(*cap * 2, *len + n + 1);
		*buf = xrealloc(*buf, *cap);
	}
	memcpy(*buf + *len, p, n);
	*len += n;
	(*buf)[*len] = '\0';
	return true;
}

int cl_http_fail(CURLcode rc, const char *method, const char *path, const char *target, silo_error *err)
{
	if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
		return silo_fail(err, SILO_ERR_REMOTE_UNREACHABLE, 0, "cannot reach silod at %s: %s (is silod running?)", target,
				 curl_easy_strerror(rc));
	return silo_fail(err, SILO_ERR_REMOTE_UNREACHABLE, 0, "%s %s via %s: %s", method, path, target,
			 curl_easy_strerror(rc));
}

char *cl_http_escape(const char *s)
{
	cl_http_init();
	char *e = curl_easy_escape(NULL, s, 0);
	char *r = xstrdup(e ? e : "");
	curl_free(e);
	return r;
}
