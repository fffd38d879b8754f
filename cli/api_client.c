/* SPDX-License-Identifier: Apache-2.0
 * libcurl client for silod (see api_client.h).
 *
 * libcurl is loaded with dlopen when the first client is made, not linked: it
 * brings about 28 more shared libraries (TLS, Kerberos, LDAP, ...), whose loading
 * cost every `silo` process 3.7 ms of CPU and about 10 ms of wall time here,
 * although local verbs (`silo run`, image and config commands) never talk HTTP.
 * The functions used are the curl_api table below, resolved all at once.
 */
#include "cli/api_client.h"

#define CURL_DISABLE_TYPECHECK 1   /* curl_easy_setopt etc. are our table's, not macros */
#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

#define MAX_RESPONSE (512u << 20)

struct api_client {
	CURL *h;
	char base[512];
	char sock[4096];
	char target[4200];
	char *auth;
	long timeout_ms;
	volatile sig_atomic_t *abort_flag;
};

#define CURL_FUNCS(X)                                                                                              \
	X(CURLcode, global_init, (long))                                                                           \
	X(CURL *, easy_init, (void))                                                                               \
	X(void, easy_cleanup, (CURL *))                                                                            \
	X(void, easy_reset, (CURL *))                                                                              \
	X(CURLcode, easy_setopt, (CURL *, CURLoption, ...))                                                        \
	X(CURLcode, easy_perform, (CURL *))                                                                        \
	X(CURLcode, easy_getinfo, (CURL *, CURLINFO, ...))                                                         \
	X(const char *, easy_strerror, (CURLcode))                                                                 \
	X(struct curl_slist *, slist_append, (struct curl_slist *, const char *))                                  \
	X(void, slist_free_all, (struct curl_slist *))

#define CURL_FIELD(ret, name, args) ret(*name) args;
static struct {
	CURL_FUNCS(CURL_FIELD)
	char error[256];
} curl_api;

static void curl_load(void)
{
	void *lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		snprintf(curl_api.error, sizeof curl_api.error, "%s", dlerror());
		return;
	}
#define CURL_RESOLVE(ret, name, args)                                                                              \
	if (!curl_api.error[0] && !(*(void **)&curl_api.name = dlsym(lib, "curl_" #name)))                          \
		snprintf(curl_api.error, sizeof curl_api.error, "libcurl.so.4 has no curl_" #name);
	CURL_FUNCS(CURL_RESOLVE)
	if (!curl_api.error[0])
		curl_api.global_init(CURL_GLOBAL_DEFAULT);
}

#undef curl_easy_setopt
#undef curl_easy_getinfo
#define curl_easy_init() curl_api.easy_init()
#define curl_easy_cleanup(h) curl_api.easy_cleanup(h)
#define curl_easy_reset(h) curl_api.easy_reset(h)
#define curl_easy_setopt(h, o, v) curl_api.easy_setopt(h, o, v)
#define curl_easy_perform(h) curl_api.easy_perform(h)
#define curl_easy_getinfo(h, i, p) curl_api.easy_getinfo(h, i, p)
#define curl_easy_strerror(c) curl_api.easy_strerror(c)
#define curl_slist_append(l, s) curl_api.slist_append(l, s)
#define curl_slist_free_all(l) curl_api.slist_free_all(l)

int api_client_new(api_client **out, silo_error *err)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, curl_load);
	if (curl_api.error[0])
		return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, 0,
				 "talking to silod needs libcurl (apt-get install libcurl4): %s", curl_api.error);
	api_client *c = xcalloc(1, sizeof *c);
	const char *host = getenv("SILO_HOST");
	if (host && *host) {
		if (strncmp(host, "http://", 7) != 0 && strncmp(host, "https://", 8) != 0) {
			free(c);
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "SILO_HOST: expected http://HOST:PORT, got '%s'",
					 host);
		}
		snprintf(c->base, sizeof c->base, "%s", host);
		size_t l = strlen(c->base);
		if (l && c->base[l - 1] == '/')
			c->base[l - 1] = '\0';
		const char *tok = getenv("SILO_API_TOKEN");
		if (tok && *tok)
			c->auth = xasprintf("Authorization: Bearer %s", tok);
		snprintf(c->target, sizeof c->target, "%s", c->base);
	} else {
		const char *s = getenv("SILO_SOCKET");
		if (s && *s)
			snprintf(c->sock, sizeof c->sock, "%s", s);
		else
			snprintf(c->sock, sizeof c->sock, "%s/silod.sock", silo_runtime_dir());
		snprintf(c->base, sizeof c->base, "http://localhost");
		snprintf(c->target, sizeof c->target, "unix:%s", c->sock);
	}
	c->h = curl_easy_init();
	if (!c->h) {
		free(c->auth);
		free(c);
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "curl_easy_init failed");
	}
	*out = c;
	return 0;
}

void api_client_free(api_client *c)
{
	if (!c)
		return;
	curl_easy_cleanup(c->h);
	free(c->auth);
	free(c);
}

void api_client_set_abort(api_client *c, volatile sig_atomic_t *flag)
{
	c->abort_flag = flag;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	volatile sig_atomic_t *flag = ud;
	return *flag ? 1 : 0;
}

const char *api_client_target(api_client *c)
{
	return c->target;
}

/* Percent-encoding as curl_easy_escape does it: all but ALPHA DIGIT - . _ ~ (RFC 3986
 * unreserved), here so that escaping needs no libcurl. */
char *api_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *r = xmalloc(strlen(s) * 3 + 1), *o = r;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("-._~", *p)) {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return r;
}

void api_error_from_body(long status, const char *body, silo_error *err)
{
	json_t *o = body ? json_loads(body, 0, NULL) : NULL;
	json_t *e = json_object_get(o, "error");
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));
	const char *vm = json_string_value(json_object_get(e, "vm_id"));
	silo_code sc = code ? silo_code_from_name(code) : SILO_ERR__COUNT;
	if (sc == SILO_ERR__COUNT)
		sc = status == 404 ? SILO_ERR_VM_NOT_FOUND : status == 401 ? SILO_ERR_UNAUTHORIZED : SILO_ERR_PROTOCOL;
	if (msg)
		silo_fail_vm(err, sc, 0, vm && *vm ? vm : NULL, "%s", msg);
	else
		silo_fail(err, sc, 0, "silod answered HTTP %ld without an error body", status);
	json_decref(o);
}

typedef struct sink {
	char *buf;
	size_t len, cap;
	bool overflow;
	api_chunk_cb cb;
	void *ud;
	long status;
	CURL *h;
	bool stopped;
} sink;

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
	sink *s = ud;
	size_t len = sz * n;
	if (!s->status)
		curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &s->status);
	/* Streamed bodies go to cb only on success; error bodies are collected. */
	if (s->cb && s->status < 400) {
		if (!s->cb(s->ud, p, len)) {
			s->stopped = true;
			return 0;
		}
		return len;
	}
	if (s->len + len + 1 > MAX_RESPONSE) {
		s->overflow = true;
		return 0;
	}
	if (s->len + len + 1 > s->cap) {
		s->cap = MAX(s->cap * 2, s->len + len + 1);
		s->buf = xrealloc(s->buf, s->cap);
	}
	memcpy(s->buf + s->len, p, len);
	s->len += len;
	s->buf[s->len] = '\0';
	return len;
}

typedef struct src {
	int fd;
} src;

static size_t on_read(char *p, size_t sz, size_t n, void *ud)
{
	src *s = ud;
	for (;;) {
		ssize_t r = read(s->fd, p, sz * n);
		if (r >= 0)
			return (size_t)r;
		if (errno != EINTR)
			return CURL_READFUNC_ABORT;
	}
}

static int perform(api_client *c, const char *method, const char *path, const char *ctype, const void *body,
		   size_t body_len, int upload_fd, sink *s, silo_error *err)
{
	CURL *h = c->h;
	curl_easy_reset(h);
	char url[8192];
	snprintf(url, sizeof url, "%s%s", c->base, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	if (c->sock[0])
		curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, c->sock);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	if (c->timeout_ms)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
	if (c->abort_flag) {
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)c->abort_flag);
	}
	struct curl_slist *hdrs = NULL;
	char cth[256];
	if (ctype) {
		snprintf(cth, sizeof cth, "Content-Type: %s", ctype);
		hdrs = curl_slist_append(hdrs, cth);
	}
	if (c->auth)
		hdrs = curl_slist_append(hdrs, c->auth);
	hdrs = curl_slist_append(hdrs, "Expect:");
	src in = {upload_fd};
	if (upload_fd >= 0) {
		struct stat st;
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, &in);
		if (fstat(upload_fd, &st) == 0 && S_ISREG(st.st_mode))
			curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
	} else if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	} else if (!strcmp(method, "POST") || !strcmp(method, "PUT")) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
	}
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	s->h = h;
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
	CURLcode rc = curl_easy_perform(h);
	curl_slist_free_all(hdrs);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &s->status);
	if (rc == CURLE_ABORTED_BY_CALLBACK)
		return silo_fail(err, SILO_ERR_TIMEOUT, EINTR, "%s %s: interrupted", method, path);
	if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && s->stopped)) {
		if (s->overflow)
			return silo_fail(err, SILO_ERR_PROTOCOL, 0, "response from silod larger than %u bytes", MAX_RESPONSE);
		if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
			return silo_fail(err, SILO_ERR_REMOTE_UNREACHABLE, 0, "cannot reach silod at %s: %s (is silod running?)",
					 c->target, curl_easy_strerror(rc));
		return silo_fail(err, SILO_ERR_REMOTE_UNREACHABLE, 0, "%s %s via %s: %s", method, path, c->target,
				 curl_easy_strerror(rc));
	}
	if (s->status >= 400) {
		api_error_from_body(s->status, s->buf, err);
		return -1;
	}
	return 0;
}

int api_call(api_client *c, const char *method, const char *path, const char *content_type, const void *body,
	     size_t body_len, char **resp, size_t *resp_len, silo_error *err)
{
	sink s = {0};
	int rc = perform(c, method, path, content_type, body, body_len, -1, &s, err);
	if (rc == 0 && resp) {
		*resp = s.buf ? s.buf : xstrdup("");
		if (resp_len)
			*resp_len = s.len;
		s.buf = NULL;
	}
	free(s.buf);
	return rc;
}

int api_stream(api_client *c, const char *method, const char *path, const char *content_type, const void *body,
	       size_t body_len, int upload_fd, api_chunk_cb cb, void *ud, silo_error *err)
{
	sink s = {.cb = cb, .ud = ud};
	int rc = perform(c, method, path, content_type, body, body_len, upload_fd, &s, err);
	free(s.buf);
	return rc;
}

int api_get_json(api_client *c, const char *path, json_t **out, silo_error *err)
{
	char *body;
	if (api_call(c, "GET", path, NULL, NULL, 0, &body, NULL, err) < 0)
		return -1;
	json_error_t je;
	*out = json_loads(body, 0, &je);
	free(body);
	if (!*out)
		return silo_fail(err, SILO_ERR_PROTOCOL, 0, "GET %s: invalid JSON from silod: %s", path, je.text);
	return 0;
}

bool api_daemon_available(void)
{
	if (!getenv("SILO_HOST")) {
		const char *s = getenv("SILO_SOCKET");
		char p[4096];
		if (s && *s)
			snprintf(p, sizeof p, "%s", s);
		else
			snprintf(p, sizeof p, "%s/silod.sock", silo_runtime_dir());
		if (!path_exists(p))
			return false;
	}
	api_client *c;
	silo_error err;
	if (api_client_new(&c, &err) < 0)
		return false;
	c->timeout_ms = 2000;
	sink s = {0};
	bool ok = perform(c, "GET", "/v1/health", NULL, NULL, 0, -1, &s, &err) == 0 && s.status == 200;
	free(s.buf);
	api_client_free(c);
	return ok;
}
