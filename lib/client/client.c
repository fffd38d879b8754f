/* SPDX-License-Identifier: Apache-2.0
 * libsilo-client (include/silo/client.h): silod's HTTP API over libcurl.
 *
 * Locking: a silo_client is immutable after silo_client_new but for its pool
 * of idle curl handles (idle[], n_idle), which mu guards. A call takes a
 * handle out of the pool (or makes one), uses it alone, and puts it back (a
 * handle keeps its connection alive for the next call); at most POOL_MAX stay
 * idle. Nothing else is shared between threads. curl_global_init runs once
 * (cl_http_init) before the first handle. A request's curl setup is
 * lib/client/http.c's, shared with the CLI.
 *
 * Bodies: a collected answer is bounded (MAX_BODY); a streamed one goes
 * through lib/client/stream.c's parsers, each line bounded. An answer >= 400
 * is collected and becomes the silo_error of its code.
 */
#include "silo/client.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/http.h"
#include "client/stream.h"
#include "common/error.h"
#include "common/util.h"

#define POOL_MAX 8
#define MAX_BODY (512u << 20)
#define MAX_ERROR_BODY (1u << 20)

struct silo_client {
	char base[512];   /* http://HOST:PORT, or http://silod for the socket */
	char sock[4096];  /* "" for TCP */
	char target[4200];
	char *auth;       /* "Authorization: Bearer ..." or NULL */
	char *tls[3];     /* PEM paths: CA, client certificate, client key; NULL = none */
	long timeout_ms;
	pthread_mutex_t mu;
	CURL *idle[POOL_MAX];
	int n_idle;
};

const char *silo_client_version(void)
{
	return SILO_VERSION;
}

static const char *env(const char *k)
{
	const char *v = getenv(k);
	return v && *v ? v : NULL;
}

int silo_client_new(const silo_client_opts *o, silo_client **out, silo_error *err)
{
	*out = NULL;
	if (o && o->size < offsetof(silo_client_opts, timeout_ms) + sizeof o->timeout_ms)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "silo_client_opts.size: set it to sizeof(silo_client_opts)");
	CURLcode init_rc = cl_http_init();
	if (init_rc != CURLE_OK)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "curl_global_init: %s", curl_easy_strerror(init_rc));
	const char *host = o && o->host ? o->host : (o && o->socket) ? NULL : env("SILO_HOST");
	const char *token = o && o->token ? o->token : env("SILO_API_TOKEN");
	silo_client *c = xcalloc(1, sizeof *c);
	if (host) {
		if (strncmp(host, "http://", 7) != 0 && strncmp(host, "https://", 8) != 0) {
			free(c);
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "host (SILO_HOST): expected http://HOST:PORT, got '%s'",
					 host);
		}
		if (strlen(host) >= sizeof c->base) {
			free(c);
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "host (SILO_HOST): longer than %zu bytes",
					 sizeof c->base - 1);
		}
		snprintf(c->base, sizeof c->base, "%s", host);
		size_t l = strlen(c->base);
		if (l && c->base[l - 1] == '/')
			c->base[l - 1] = '\0';
		snprintf(c->target, sizeof c->target, "%s", c->base);
	} else {
		const char *s = o && o->socket ? o->socket : env("SILO_SOCKET");
		int n = s ? snprintf(c->sock, sizeof c->sock, "%s", s)
			  : snprintf(c->sock, sizeof c->sock, "%s/silod.sock", silo_runtime_dir());
		if (n < 0 || (size_t)n >= sizeof c->sock) {
			free(c);
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "socket: path longer than %zu bytes", sizeof c->sock - 1);
		}
		snprintf(c->base, sizeof c->base, "http://silod");
		snprintf(c->target, sizeof c->target, "unix:%s", c->sock);
	}
	if (token) {
		if (strpbrk(token, "\r\n")) {
			free(c);
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "token (SILO_API_TOKEN): contains a line break");
		}
		c->auth = xasprintf("Authorization: Bearer %s", token);
	}
	c->timeout_ms = o ? o->timeout_ms : 0;
	pthread_mutex_init(&c->mu, NULL);
	if (host) {
		/* TLS files as the CLI takes them: an option (when the caller's struct
		 * has the field), else the environment */
		static const char *const tls_env[3] = {"SILO_CA", "SILO_CLIENT_CERT", "SILO_CLIENT_KEY"};
		bool has = o && o->size >= offsetof(silo_client_opts, key) + sizeof o->key;
		const char *v[3] = {has ? o->ca : NULL, has ? o->cert : NULL, has ? o->key : NULL};
		for (int i = 0; i < 3; i++)
			if (v[i] || (v[i] = env(tls_env[i])))
				c->tls[i] = xstrdup(v[i]);
		if ((c->tls[0] || c->tls[1] || c->tls[2]) && strncmp(host, "https://", 8) != 0) {
			silo_client_free(c);
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "ca/cert/key (SILO_CA, SILO_CLIENT_CERT, SILO_CLIENT_KEY) need an https:// host, got '%s'",
					 host);
		}
		if (!c->tls[1] != !c->tls[2]) {
			silo_client_free(c);
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "cert and key (SILO_CLIENT_CERT, SILO_CLIENT_KEY): give both or neither");
		}
	}
	*out = c;
	return 0;
}

void silo_client_free(silo_client *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->n_idle; i++)
		curl_easy_cleanup(c->idle[i]);
	pthread_mutex_destroy(&c->mu);
	free(c->auth);
	for (int i = 0; i < 3; i++)
		free(c->tls[i]);
	free(c);
}

const char *silo_client_target(const silo_client *c)
{
	return c->target;
}

void silo_client_free_buf(void *p)
{
	free(p);
}

char *silo_client_escape(const char *s)
{
	return cl_http_escape(s);
}

static CURL *take_handle(silo_client *c)
{
	CURL *h = NULL;
	pthread_mutex_lock(&c->mu);
	if (c->n_idle)
		h = c->idle[--c->n_idle];
	pthread_mutex_unlock(&c->mu);
	return h ? h : curl_easy_init();
}

static void give_handle(silo_client *c, CURL *h, bool reuse)
{
	if (reuse) {
		pthread_mutex_lock(&c->mu);
		if (c->n_idle < POOL_MAX) {
			c->idle[c->n_idle++] = h;
			h = NULL;
		}
		pthread_mutex_unlock(&c->mu);
	}
	if (h)
		curl_easy_cleanup(h);
}

/* Where an answer's body goes: collected (buf), or to a line parser, or to a
 * data callback. Error answers (>= 400) are always collected. */
typedef struct sink {
	CURL *h;
	long status;
	char *buf;
	size_t len, cap, max;
	bool overflow;
	/* streaming */
	cl_lines lines;
	cl_line_fn line_fn;
	silo_client_data_fn data_fn;
	void *ud;
	int stop;          /* >0: the callback stopped; <0: a parser failed (perr) */
	silo_error perr;
} sink;

static bool collect(sink *s, const char *p, size_t len)
{
	if (!cl_buf_append(&s->buf, &s->len, &s->cap, s->max ? s->max : MAX_BODY, p, len)) {
		s->overflow = true;
		return false;
	}
	return true;
}

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
	sink *s = ud;
	size_t len = sz * n;
	if (!s->status)
		curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &s->status);
	if (s->status >= 400) {
		s->max = MAX_ERROR_BODY;
		return collect(s, p, len) ? len : 0;
	}
	if (s->line_fn) {
		int rc = cl_lines_feed(&s->lines, p, len, s->line_fn, s->ud, &s->perr);
		if (rc) {
			s->stop = rc;
			return 0;
		}
		return len;
	}
	if (s->data_fn) {
		if (s->data_fn(s->ud, p, len)) {
			s->stop = 1;
			return 0;
		}
		return len;
	}
	return collect(s, p, len) ? len : 0;
}

typedef struct upload {
	const char *p;
	size_t left;
} upload;

static size_t on_read(char *p, size_t sz, size_t n, void *ud)
{
	upload *u = ud;
	size_t k = MIN(sz * n, u->left);
	memcpy(p, u->p, k);
	u->p += k;
	u->left -= k;
	return k;
}

/* One request. Returns 0, 1 (a callback stopped the stream) or -1 (err). */
static int perform(silo_client *c, const char *method, const char *path, const char *ctype, const void *body,
		   size_t body_len, sink *s, bool stream, silo_error *err)
{
	CURL *h = take_handle(c);
	if (!h)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "curl_easy_init failed");
	cl_http_target t = {c->base, c->sock, c->auth, c->tls[0], c->tls[1], c->tls[2]};
	struct curl_slist *hdrs = cl_http_setup(h, &t, method, path, ctype, 10000L);
	if (c->timeout_ms && !stream)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
	upload up = {body, body_len};
	if (!strcmp(method, "PUT")) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, &up);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)body_len);
	} else if (body || !strcmp(method, "POST")) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
	}
	s->h = h;
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
	CURLcode rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &s->status);
	if (rc == CURLE_OK && s->line_fn && s->status < 400) {
		int e = cl_lines_end(&s->lines, s->line_fn, s->ud, &s->perr);
		if (e)
			s->stop = e;
	}
	curl_slist_free_all(hdrs);
	/* a handle whose transfer was cut is not reused: its connection is closed */
	give_handle(c, h, rc == CURLE_OK && !s->stop);
	cl_lines_free(&s->lines);
	if (s->stop < 0) {
		if (err)
			*err = s->perr;
		return -1;
	}
	if (s->stop > 0)
		return 1;
	if (rc != CURLE_OK) {
		if (s->overflow)
			return silo_fail(err, SILO_ERR_PROTOCOL, 0, "%s %s: the answer from silod is larger than %zu bytes",
					 method, path, s->max ? s->max : (size_t)MAX_BODY);
		if (rc == CURLE_OPERATION_TIMEDOUT)
			return silo_fail(err, SILO_ERR_TIMEOUT, 0, "%s %s via %s: no answer within %ld ms", method, path,
					 c->target, c->timeout_ms);
		return cl_http_fail(rc, method, path, c->target, err);
	}
	if (s->status >= 400) {
		cl_error_from_body(s->status, s->buf, s->len, err);
		return -1;
	}
	return 0;
}

int silo_client_request(silo_client *c, const char *method, const char *path, const char *content_type,
			const void *body, size_t body_len, char **resp, size_t *resp_len, silo_error *err)
{
	sink s = {0};
	int rc = perform(c, method, path, content_type, body, body_len, &s, false, err);
	if (rc == 0 && resp) {
		*resp = s.buf ? s.buf : xstrdup("");
		if (resp_len)
			*resp_len = s.len;
		s.buf = NULL;
	}
	free(s.buf);
	return rc;
}

/* A JSON request and answer; body is a json_t (stolen) or NULL. */
static int call_json(silo_client *c, const char *method, const char *path, json_t *body, json_t **out, silo_error *err)
{
	char *b = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	char *resp = NULL;
	size_t len = 0;
	int rc = silo_client_request(c, method, path, b ? "application/json" : NULL, b, b ? strlen(b) : 0, &resp, &len,
				     err);
	free(b);
	if (rc < 0)
		return -1;
	if (out) {
		json_error_t je;
		*out = json_loadb(resp, len, 0, &je);
		if (!*out) {
			free(resp);
			return silo_fail(err, SILO_ERR_PROTOCOL, 0, "%s %s: invalid JSON from silod: %s", method, path, je.text);
		}
	}
	free(resp);
	return 0;
}

/* The answer as text in *json (if wanted), and a string field of it copied
 * to field_out (if wanted). */
static int call_text(silo_client *c, const char *method, const char *path, json_t *body, const char *field,
		     char field_out[SILO_ID_MAX], char **json, silo_error *err)
{
	json_t *o = NULL;
	if (call_json(c, method, path, body, &o, err) < 0)
		return -1;
	if (field_out) {
		const char *v = json_string_value(json_object_get(o, field));
		if (!v || strlen(v) >= SILO_ID_MAX) {
			json_decref(o);
			return silo_fail(err, SILO_ERR_PROTOCOL, 0, "%s %s: silod's answer has no valid \"%s\"", method, path,
					 field);
		}
		snprintf(field_out, SILO_ID_MAX, "%s", v);
	}
	if (json)
		*json = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return 0;
}

/* "/v1/sandboxes/ID" + tail, the id escaped */
static char *sb_path(const char *id, const char *tail)
{
	char *e = silo_client_escape(id ? id : "");
	char *p = xasprintf("/v1/sandboxes/%s%s", e, tail);
	free(e);
	return p;
}

static char *proc_path(const char *id, const char *proc, const char *tail)
{
	char *e = silo_client_escape(proc ? proc : "");
	char *t = xasprintf("/procs/%s%s", e, tail);
	char *p = sb_path(id, t);
	free(e);
	free(t);
	return p;
}

/* path + "?KEY=escaped(v)" */
static char *with_query(char *path, const char *key, const char *v)
{
	char *e = silo_client_escape(v);
	char *p = xasprintf("%s%c%s=%s", path, strchr(path, '?') ? '&' : '?', key, e);
	free(e);
	free(path);
	return p;
}

int silo_client_create(silo_client *c, const char *body, int is_toml, char id[SILO_ID_MAX], char **json,
		       silo_error *err)
{
	char *resp = NULL;
	size_t len = 0;
	if (!body)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "create: a JSON body or hac.toml text is required");
	if (silo_client_request(c, "POST", "/v1/sandboxes", is_toml ? "application/toml" : "application/json", body,
				strlen(body), &resp, &len, err) < 0)
		return -1;
	json_t *o = json_loadb(resp, len, 0, NULL);
	const char *v = json_string_value(json_object_get(o, "id"));
	int rc = 0;
	if (!v || strlen(v) >= SILO_ID_MAX)
		rc = silo_fail(err, SILO_ERR_PROTOCOL, 0, "create: silod's answer has no valid \"id\"");
	else if (id)
		snprintf(id, SILO_ID_MAX, "%s", v);
	json_decref(o);
	if (rc == 0 && json)
		*json = resp;
	else
		free(resp);
	return rc;
}

#define PATH_CALL(method, pathexpr, body, field, fout, json)                                                           \
	do {                                                                                                           \
		char *p_ = (pathexpr);                                                                                 \
		int r_ = call_text(c, method, p_, body, field, fout, json, err);                                      \
		free(p_);                                                                                              \
		return r_;                                                                                             \
	} while (0)

int silo_client_get(silo_client *c, const char *id, char **json, silo_error *err)
{
	PATH_CALL("GET", sb_path(id, ""), NULL, NULL, NULL, json);
}

int silo_client_list(silo_client *c, const char *query, char **json, silo_error *err)
{
	PATH_CALL("GET", xasprintf("/v1/sandboxes%s%s", query && *query ? "?" : "", query ? query : ""), NULL, NULL,
		  NULL, json);
}

int silo_client_delete(silo_client *c, const char *id, int grace_ms, char **json, silo_error *err)
{
	char *p = sb_path(id, "");
	if (grace_ms >= 0) {
		char g[16];
		snprintf(g, sizeof g, "%d", grace_ms);
		p = with_query(p, "grace_ms", g);
	}
	PATH_CALL("DELETE", p, NULL, NULL, NULL, json);
}

int silo_client_pause(silo_client *c, const char *id, silo_error *err)
{
	PATH_CALL("POST", sb_path(id, "/pause"), NULL, NULL, NULL, NULL);
}

int silo_client_resume(silo_client *c, const char *id, silo_error *err)
{
	PATH_CALL("POST", sb_path(id, "/resume"), NULL, NULL, NULL, NULL);
}

static int parse_body(const char *body, json_t **out, silo_error *err)
{
	*out = NULL;
	if (!body)
		return 0;
	json_error_t je;
	*out = json_loads(body, 0, &je);
	if (!json_is_object(*out)) {
		json_decref(*out);
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "body: not a JSON object (%s)", je.text);
	}
	return 0;
}

int silo_client_snapshot(silo_client *c, const char *id, const char *body, char snap_id[SILO_ID_MAX], char **json,
			 silo_error *err)
{
	json_t *b;
	if (parse_body(body, &b, err) < 0)
		return -1;
	PATH_CALL("POST", sb_path(id, "/snapshot"), b ? b : json_object(), "id", snap_id, json);
}

int silo_client_restore(silo_client *c, const char *snap, char id[SILO_ID_MAX], char **json, silo_error *err)
{
	char *e = silo_client_escape(snap ? snap : "");
	char *p = xasprintf("/v1/snapshots/%s/restore", e);
	free(e);
	PATH_CALL("POST", p, NULL, "id", id, json);
}

int silo_client_fork(silo_client *c, const char *id, unsigned n, char **json, silo_error *err)
{
	PATH_CALL("POST", sb_path(id, "/fork"), json_pack("{s:I}", "n", (json_int_t)(n ? n : 1)), NULL, NULL, json);
}

/* ---- commands ---- */

/* A JSON string array of v, or NULL when an item is not UTF-8 (*bad: its index). */
static json_t *str_array(const char *const *v, size_t *bad)
{
	json_t *a = json_array();
	for (size_t i = 0; v && v[i]; i++) {
		json_t *s = json_string(v[i]);
		if (!s) {
			*bad = i;
			json_decref(a);
			return NULL;
		}
		json_array_append_new(a, s);
	}
	return a;
}

static int exec_body(const silo_client_exec_opts *o, bool background, json_t **out, silo_error *err)
{
	if (!o || o->size < offsetof(silo_client_exec_opts, stdin_open) + sizeof o->stdin_open)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "silo_client_exec_opts.size: set it to sizeof the struct");
	if (!o->argv || !o->argv[0])
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "argv: at least one argument is required");
	size_t bad = 0;
	json_t *argv = str_array(o->argv, &bad);
	if (!argv)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "argv[%zu]: not valid UTF-8", bad);
	json_t *b = json_object();
	json_object_set_new(b, "argv", argv);
	if (o->env) {
		json_t *e = json_object();
		for (const char *const *kv = o->env; *kv; kv++) {
			const char *eq = strchr(*kv, '=');
			if (!eq || eq == *kv) {
				json_decref(e);
				json_decref(b);
				return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "env: '%s' is not KEY=VALUE", *kv);
			}
			char *k = xstrndup(*kv, (size_t)(eq - *kv));
			json_t *v = json_string(eq + 1);
			int bad_kv = !v || json_object_set_new(e, k, v) < 0;
			free(k);
			if (bad_kv) {
				json_decref(e);
				json_decref(b);
				return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "env: '%s' is not valid UTF-8", *kv);
			}
		}
		json_object_set_new(b, "env", e);
	}
	if (o->cwd)
		json_object_set_new(b, "cwd", json_string(o->cwd));
	if (o->stdin_data && o->stdin_len) {
		size_t cap = sodium_base64_ENCODED_LEN(o->stdin_len, sodium_base64_VARIANT_ORIGINAL);
		char *b64 = xmalloc(cap);
		sodium_bin2base64(b64, cap, o->stdin_data, o->stdin_len, sodium_base64_VARIANT_ORIGINAL);
		json_object_set_new(b, "stdin", json_string(b64));
		free(b64);
	}
	if (o->timeout_ms)
		json_object_set_new(b, "timeout_ms", json_integer(o->timeout_ms));
	if (background) {
		if (o->tag)
			json_object_set_new(b, "tag", json_string(o->tag));
		if (o->pty) {
			json_object_set_new(b, "pty", json_true());
			if (o->rows)
				json_object_set_new(b, "rows", json_integer(o->rows));
			if (o->cols)
				json_object_set_new(b, "cols", json_integer(o->cols));
		}
		if (o->stdin_open)
			json_object_set_new(b, "stdin_open", json_true());
	}
	*out = b;
	return 0;
}

typedef struct exec_ctx {
	silo_client_output_fn out;
	void *ud;
	silo_client_exit *res;
	bool done;
} exec_ctx;

static int exec_line(void *ud, char *line, size_t len, silo_error *err)
{
	exec_ctx *x = ud;
	if (x->done && len)
		return silo_fail(err, SILO_ERR_PROTOCOL, 0, "silod sent exec lines after the exit line");
	return cl_exec_line(line, len, x->out, x->ud, x->res, &x->done, err);
}

/* An NDJSON exec stream (POST .../exec, GET .../output) to out. */
static int exec_stream(silo_client *c, const char *method, const char *path, const char *body,
		       silo_client_output_fn out, void *ud, silo_client_exit *res, silo_error *err)
{
	silo_client_exit dummy;
	exec_ctx x = {out, ud, res ? res : &dummy, false};
	sink s = {.line_fn = exec_line, .ud = &x};
	int rc = perform(c, method, path, body ? "application/json" : NULL, body, body ? strlen(body) : 0, &s, true, err);
	free(s.buf);
	if (rc == 0 && !x.done)
		return silo_fail(err, SILO_ERR_REMOTE_UNREACHABLE, 0, "%s: the stream ended without an exit status", path);
	return rc;
}

int silo_client_exec(silo_client *c, const char *id, const silo_client_exec_opts *o, silo_client_output_fn cb,
		     void *ud, silo_client_exit *res, silo_error *err)
{
	json_t *b;
	if (exec_body(o, false, &b, err) < 0)
		return -1;
	char *body = json_dumps(b, JSON_COMPACT);
	json_decref(b);
	char *p = sb_path(id, "/exec");
	int rc = exec_stream(c, "POST", p, body, cb, ud, res, err);
	free(p);
	free(body);
	return rc;
}

typedef struct collected {
	sink out, err;
} collected;

static int collect_out(void *ud, int stream, const void *data, size_t len)
{
	collected *k = ud;
	return collect(stream == SILO_CLIENT_STDOUT ? &k->out : &k->err, data, len) ? 0 : 1;
}

int silo_client_exec_collect(silo_client *c, const char *id, const silo_client_exec_opts *o, char **out,
			     size_t *out_len, char **errout, size_t *err_len, silo_client_exit *res, silo_error *err)
{
	collected k = {0};
	int rc = silo_client_exec(c, id, o, collect_out, &k, res, err);
	if (rc == 1 && (k.out.overflow || k.err.overflow))
		rc = silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0, "exec: more than %u bytes of output to collect", MAX_BODY);
	if (rc == 0) {
		if (out) {
			*out = k.out.buf ? k.out.buf : xstrdup("");
			k.out.buf = NULL;
		}
		if (out_len)
			*out_len = k.out.len;
		if (errout) {
			*errout = k.err.buf ? k.err.buf : xstrdup("");
			k.err.buf = NULL;
		}
		if (err_len)
			*err_len = k.err.len;
	}
	free(k.out.buf);
	free(k.err.buf);
	return rc;
}

int silo_client_spawn(silo_client *c, const char *id, const silo_client_exec_opts *o, char proc[SILO_ID_MAX],
		      char **json, silo_error *err)
{
	json_t *b;
	if (exec_body(o, true, &b, err) < 0)
		return -1;
	PATH_CALL("POST", sb_path(id, "/procs"), b, "proc", proc, json);
}

int silo_client_proc_signal(silo_client *c, const char *id, const char *proc, const char *sig, silo_error *err)
{
	char *end;
	long n = strtol(sig ? sig : "", &end, 10);
	json_t *b = sig && *sig && !*end ? json_pack("{s:I}", "signal", (json_int_t)n)
					 : json_pack("{s:s}", "signal", sig ? sig : "");
	PATH_CALL("POST", proc_path(id, proc, "/signal"), b, NULL, NULL, NULL);
}

int silo_client_proc_write(silo_client *c, const char *id, const char *proc, const void *data, size_t len, int eof,
			   silo_error *err)
{
	char *p = proc_path(id, proc, eof ? "/stdin?eof=true" : "/stdin");
	int rc = silo_client_request(c, "POST", p, "application/octet-stream", data ? data : "", data ? len : 0, NULL,
				     NULL, err);
	free(p);
	return rc;
}

int silo_client_proc_resize(silo_client *c, const char *id, const char *proc, uint16_t rows, uint16_t cols,
			    silo_error *err)
{
	PATH_CALL("POST", proc_path(id, proc, "/resize"), json_pack("{s:i,s:i}", "rows", rows, "cols", cols), NULL,
		  NULL, NULL);
}

static int64_t int_field_of(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static void exit_from(json_t *e, silo_client_exit *res)
{
	if (!res)
		return;
	res->exit_code = (int)int_field_of(e, "exit_code");
	res->signal = (int)int_field_of(e, "signal");
	res->timed_out = json_is_true(json_object_get(e, "timed_out"));
	res->duration_ms = int_field_of(e, "duration_ms");
}

int silo_client_proc_wait(silo_client *c, const char *id, const char *proc, uint32_t timeout_ms,
			  silo_client_exit *res, silo_error *err)
{
	char *p = proc_path(id, proc, "/wait");
	if (timeout_ms) {
		char t[16];
		snprintf(t, sizeof t, "%u", timeout_ms);
		p = with_query(p, "timeout_ms", t);
	}
	json_t *o = NULL;
	int rc = call_json(c, "GET", p, NULL, &o, err);
	free(p);
	if (rc == 0)
		exit_from(json_object_get(o, "exit"), res);
	json_decref(o);
	return rc;
}

int silo_client_proc_output(silo_client *c, const char *id, const char *proc, silo_client_output_fn cb, void *ud,
			    silo_client_exit *res, silo_error *err)
{
	char *p = proc_path(id, proc, "/output");
	int rc = exec_stream(c, "GET", p, NULL, cb, ud, res, err);
	free(p);
	return rc;
}

int silo_client_proc_remove(silo_client *c, const char *id, const char *proc, silo_error *err)
{
	PATH_CALL("DELETE", proc_path(id, proc, ""), NULL, NULL, NULL, NULL);
}

int silo_client_procs(silo_client *c, const char *id, char **json, silo_error *err)
{
	PATH_CALL("GET", sb_path(id, "/procs"), NULL, NULL, NULL, json);
}

/* ---- files ---- */

static char *fs_path(const char *id, const char *tail, const char *path)
{
	return with_query(sb_path(id, tail), "path", path ? path : "");
}

int silo_client_file_write(silo_client *c, const char *id, const char *path, const void *data, size_t len, int mode,
			   silo_error *err)
{
	char *p = fs_path(id, "/files", path);
	if (mode >= 0) {
		char m[16];
		snprintf(m, sizeof m, "%04o", (unsigned)mode & 07777);
		p = with_query(p, "mode", m);
	}
	int rc = silo_client_request(c, "PUT", p, "application/octet-stream", data, len, NULL, NULL, err);
	free(p);
	return rc;
}

int silo_client_file_read(silo_client *c, const char *id, const char *path, char **data, size_t *len,
			  silo_error *err)
{
	char *p = fs_path(id, "/files", path);
	int rc = silo_client_request(c, "GET", p, NULL, NULL, 0, data, len, err);
	free(p);
	return rc;
}

int silo_client_stat(silo_client *c, const char *id, const char *path, char **json, silo_error *err)
{
	PATH_CALL("GET", fs_path(id, "/fs/stat", path), NULL, NULL, NULL, json);
}

int silo_client_list_dir(silo_client *c, const char *id, const char *path, int depth, char **json, silo_error *err)
{
	char *p = fs_path(id, "/fs/list", path);
	if (depth > 0) {
		char d[16];
		snprintf(d, sizeof d, "%d", depth);
		p = with_query(p, "depth", d);
	}
	PATH_CALL("GET", p, NULL, NULL, NULL, json);
}

int silo_client_mkdir(silo_client *c, const char *id, const char *path, int parents, silo_error *err)
{
	PATH_CALL("POST", sb_path(id, "/fs/mkdir"), json_pack("{s:s,s:b}", "path", path ? path : "", "parents", parents),
		  NULL, NULL, NULL);
}

int silo_client_remove(silo_client *c, const char *id, const char *path, int recursive, silo_error *err)
{
	PATH_CALL("POST", sb_path(id, "/fs/remove"),
		  json_pack("{s:s,s:b}", "path", path ? path : "", "recursive", recursive), NULL, NULL, NULL);
}

int silo_client_move(silo_client *c, const char *id, const char *from, const char *to, int overwrite,
		     silo_error *err)
{
	PATH_CALL("POST", sb_path(id, "/fs/move"),
		  json_pack("{s:s,s:s,s:b}", "from", from ? from : "", "to", to ? to : "", "overwrite", overwrite), NULL,
		  NULL, NULL);
}

int silo_client_tar_out(silo_client *c, const char *id, const char *path, silo_client_data_fn cb, void *ud,
			silo_error *err)
{
	char *p = fs_path(id, "/archive", path);
	sink s = {.data_fn = cb, .ud = ud};
	int rc = perform(c, "GET", p, NULL, NULL, 0, &s, true, err);
	free(s.buf);
	free(p);
	return rc;
}

int silo_client_tar_in(silo_client *c, const char *id, const char *path, const void *tar, size_t len, silo_error *err)
{
	char *p = fs_path(id, "/archive", path);
	int rc = silo_client_request(c, "PUT", p, "application/x-tar", tar, len, NULL, NULL, err);
	free(p);
	return rc;
}

/* ---- deployments, events ---- */

int silo_client_deploy(silo_client *c, const char *body, char **json, silo_error *err)
{
	json_t *b;
	if (parse_body(body, &b, err) < 0)
		return -1;
	if (!b)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "deploy: a DeployRequest body is required");
	return call_text(c, "POST", "/v1/deployments", b, NULL, NULL, json, err);
}

int silo_client_undeploy(silo_client *c, const char *name, silo_error *err)
{
	char *e = silo_client_escape(name ? name : "");
	char *p = xasprintf("/v1/deployments/%s", e);
	free(e);
	PATH_CALL("DELETE", p, NULL, NULL, NULL, NULL);
}

typedef struct sse_ctx {
	cl_sse sse;
	silo_client_event_fn fn;
	void *ud;
} sse_ctx;

static int sse_line(void *ud, char *line, size_t len, silo_error *err)
{
	sse_ctx *x = ud;
	return cl_sse_line(&x->sse, line, len, x->fn, x->ud, err);
}

int silo_client_events(silo_client *c, const char *query, silo_client_event_fn cb, void *ud, silo_error *err)
{
	sse_ctx x = {.fn = cb, .ud = ud};
	sink s = {.line_fn = sse_line, .ud = &x};
	char *p = xasprintf("/v1/events%s%s", query && *query ? "?" : "", query ? query : "");
	int rc = perform(c, "GET", p, NULL, NULL, 0, &s, true, err);
	free(p);
	free(s.buf);
	cl_sse_free(&x.sse);
	return rc;
}
