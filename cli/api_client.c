/* SPDX-License-Identifier: Apache-2.0
 * libcurl client for silod (see api_client.h). One handle, reused; a
 * request's curl setup, body buffer and transfer errors are libsilo-client's
 * (lib/client/http.h).
 */
#include "cli/api_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/context.h"
#include "client/http.h"
#include "common/util.h"

#define MAX_RESPONSE (512u << 20)

struct api_client {
	CURL *h;
	char base[512];
	char sock[4096];
	char target[4200];
	char *auth;
	char ca[4096], cert[4096], key[4096];   /* TLS (context.h), "" = none */
	long timeout_ms;
	volatile sig_atomic_t *abort_flag;
};

int api_client_new(api_client **out, silo_error *err)
{
	cl_http_init();
	cli_endpoint e;
	if (cli_endpoint_resolve(&e, err) < 0)
		return -1;
	api_client *c = xcalloc(1, sizeof *c);
	if (e.url[0]) {
		snprintf(c->base, sizeof c->base, "%s", e.url);
		size_t l = strlen(c->base);
		if (l && c->base[l - 1] == '/')
			c->base[l - 1] = '\0';
		if (e.token)
			c->auth = xasprintf("Authorization: Bearer %s", e.token);
		snprintf(c->ca, sizeof c->ca, "%s", e.ca);
		snprintf(c->cert, sizeof c->cert, "%s", e.cert);
		snprintf(c->key, sizeof c->key, "%s", e.key);
		if (e.context[0])
			snprintf(c->target, sizeof c->target, "%s (context %s)", c->base, e.context);
		else
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
	cli_endpoint_clear(&e);
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
	if (c->auth)
		explicit_bzero(c->auth, strlen(c->auth));
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

char *api_escape(const char *s)
{
	return cl_http_escape(s);
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
	json_int_t eno = json_integer_value(json_object_get(e, "errno"));
	if (msg) {
		silo_fail_vm(err, sc, 0, vm && *vm ? vm : NULL, "%s", msg);
		err->sys_errno = eno > 0 && eno < 4096 ? (int)eno : 0;
	} else
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
	if (!cl_buf_append(&s->buf, &s->len, &s->cap, MAX_RESPONSE, p, len)) {
		s->overflow = true;
		return 0;
	}
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
	cl_http_target t = {c->base, c->sock, c->auth, c->ca, c->cert, c->key};
	struct curl_slist *hdrs = cl_http_setup(h, &t, method, path, ctype, 5000L);
	if (c->timeout_ms)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
	if (c->abort_flag) {
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)c->abort_flag);
	}
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
		if (rc == CURLE_PEER_FAILED_VERIFICATION)
			return silo_fail(err, SILO_ERR_UNAUTHORIZED, 0,
					 "TLS: the certificate of silod at %s is not trusted (wrong CA or host name; the "
					 "context's --ca or $SILO_CA): %s",
					 c->target, curl_easy_strerror(rc));
		if (rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_CACERT_BADFILE)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "TLS files for %s: %s", c->target,
					 curl_easy_strerror(rc));
		return cl_http_fail(rc, method, path, c->target, err);
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
	cli_endpoint e;
	silo_error err;
	if (cli_endpoint_resolve(&e, &err) < 0)
		return false;
	bool remote = e.url[0] != 0;
	cli_endpoint_clear(&e);
	if (!remote) {
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
	if (api_client_new(&c, &err) < 0)
		return false;
	c->timeout_ms = 2000;
	sink s = {0};
	bool ok = perform(c, "GET", "/v1/health", NULL, NULL, 0, -1, &s, &err) == 0 && s.status == 200;
	free(s.buf);
	api_client_free(c);
	return ok;
}

/* ---- WebSocket ---- */

struct api_ws {
	CURL *h;
	int fd;
	ws_conn *ws;
};

/* curl_easy_recv/send's outcome as read(2)/write(2) give it: n bytes, or -1
 * with errno EAGAIN (try again) or fail_errno. */
static ssize_t curl_io(CURLcode rc, size_t n, int fail_errno)
{
	if (rc == CURLE_OK)
		return (ssize_t)n;
	errno = rc == CURLE_AGAIN ? EAGAIN : fail_errno;
	return -1;
}

static ssize_t curl_rd(void *ud, void *buf, size_t n)
{
	api_ws *w = ud;
	size_t got = 0;
	return curl_io(curl_easy_recv(w->h, buf, n, &got), got, EIO);
}

static ssize_t curl_wr(void *ud, const void *buf, size_t n)
{
	api_ws *w = ud;
	size_t sent = 0;
	return curl_io(curl_easy_send(w->h, buf, n, &sent), sent, EPIPE);
}

/* Everything of buf through curl, waiting for the socket as needed. */
static int send_all_ws(api_ws *w, const char *buf, size_t n)
{
	while (n) {
		ssize_t k = curl_wr(w, buf, n);
		if (k < 0 && errno == EAGAIN) {
			struct pollfd p = {.fd = w->fd, .events = POLLOUT};
			poll(&p, 1, 1000);
			continue;
		}
		if (k <= 0)
			return -1;
		buf += k;
		n -= (size_t)k;
	}
	return 0;
}

int api_ws_open(api_client *c, const char *path, api_ws **out, silo_error *err)
{
	*out = NULL;
	api_ws *w = xcalloc(1, sizeof *w);
	w->fd = -1;
	w->h = curl_easy_init();
	char url[8192];
	snprintf(url, sizeof url, "%s%s", c->base, path);
	curl_easy_setopt(w->h, CURLOPT_URL, url);
	if (c->sock[0])
		curl_easy_setopt(w->h, CURLOPT_UNIX_SOCKET_PATH, c->sock);
	curl_easy_setopt(w->h, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(w->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(w->h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	CURLcode rc = curl_easy_perform(w->h);
	curl_socket_t sock = CURL_SOCKET_BAD;
	if (rc == CURLE_OK)
		curl_easy_getinfo(w->h, CURLINFO_ACTIVESOCKET, &sock);
	if (rc != CURLE_OK || sock == CURL_SOCKET_BAD) {
		silo_fail(err, SILO_ERR_REMOTE_UNREACHABLE, 0, "cannot reach silod at %s: %s (is silod running?)", c->target,
			  curl_easy_strerror(rc));
		goto fail;
	}
	w->fd = (int)sock;
	char key[WS_KEY_LEN + 1], want[WS_ACCEPT_LEN + 1];
	ws_new_key(key);
	ws_accept(key, want);
	const char *host = strstr(c->base, "://") ? strstr(c->base, "://") + 3 : "silod";
	char *reqs = xasprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			       "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s%s\r\n",
			       path, host, key, c->auth ? c->auth : "", c->auth ? "\r\n" : "");
	int sr = send_all_ws(w, reqs, strlen(reqs));
	free(reqs);
	if (sr < 0) {
		silo_fail(err, SILO_ERR_REMOTE_UNREACHABLE, 0, "send the upgrade request to %s", c->target);
		goto fail;
	}
	/* the response head, then what follows it */
	char buf[16384];
	size_t len = 0;
	char *end = NULL;
	uint64_t deadline = now_mono_ns() + 30000ull * 1000000ull;
	while (!(end = memmem(buf, len, "\r\n\r\n", 4))) {
		if (len == sizeof buf || now_mono_ns() > deadline) {
			silo_fail(err, SILO_ERR_PROTOCOL, 0, "silod sent no complete HTTP response to the upgrade");
			goto fail;
		}
		ssize_t k = curl_rd(w, buf + len, sizeof buf - len);
		if (k < 0 && errno == EAGAIN) {
			struct pollfd p = {.fd = w->fd, .events = POLLIN};
			poll(&p, 1, 1000);
			continue;
		}
		if (k <= 0) {
			silo_fail(err, SILO_ERR_REMOTE_UNREACHABLE, 0, "silod closed the connection during the upgrade");
			goto fail;
		}
		len += (size_t)k;
	}
	size_t head = (size_t)(end - buf) + 4;
	long status = strtol(buf + 9, NULL, 10);
	if (strncmp(buf, "HTTP/1.1 ", 9) != 0 || status != 101) {
		/* an error: the JSON body, as long as it came with the head */
		char *cl = strcasestr(buf, "\r\nContent-Length:");
		size_t want_body = cl && cl < end ? (size_t)strtoul(cl + 17, NULL, 10) : 0;
		while (len - head < want_body && len < sizeof buf - 1) {
			ssize_t k = curl_rd(w, buf + len, sizeof buf - 1 - len);
			if (k < 0 && errno == EAGAIN) {
				struct pollfd p = {.fd = w->fd, .events = POLLIN};
				if (poll(&p, 1, 5000) <= 0)
					break;
				continue;
			}
			if (k <= 0)
				break;
			len += (size_t)k;
		}
		buf[len] = '\0';
		api_error_from_body(status, buf + head, err);
		goto fail;
	}
	char *acc = strcasestr(buf, "\r\nSec-WebSocket-Accept:");
	if (!acc || acc > end || strncmp(acc + 23 + strspn(acc + 23, " "), want, WS_ACCEPT_LEN)) {
		silo_fail(err, SILO_ERR_PROTOCOL, 0, "silod's WebSocket handshake has a wrong Sec-WebSocket-Accept");
		goto fail;
	}
	ws_io io = {curl_rd, curl_wr, w->fd, w};
	w->ws = ws_conn_new(&io, true, buf + head, len - head);
	*out = w;
	return 0;
fail:
	api_ws_close(w);
	return -1;
}

ws_conn *api_ws_conn(api_ws *w)
{
	return w->ws;
}

void api_ws_close(api_ws *w)
{
	if (!w)
		return;
	ws_conn_free(w->ws);
	curl_easy_cleanup(w->h);
	free(w);
}
