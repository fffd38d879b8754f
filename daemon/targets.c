/* SPDX-License-Identifier: Apache-2.0
 * Remote targets (see targets.h): the client of other silods (libcurl, one
 * code path: tc_open/tc_read/tc_close over a curl multi handle, so a streamed
 * exec and a small JSON answer are read the same way), the probe thread, the
 * durable queue and the /v1/targets handlers.
 */
#include "daemon/targets.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "daemon/handlers.h"
#include "daemon/api_parse.h"
#include "image/image.h"
#include "oci/oci.h"
#include "registry/target_store.h"
#include "spec/spec.h"

#define PROBE_MS_DEFAULT 2000
#define OFFLINE_AFTER_DEFAULT 3
#define TIMEOUT_MS_DEFAULT 3000
#define SMALL_MAX (8u << 20)        /* a JSON answer from a target */
#define STREAM_BLOCK 65536

struct targets {
	manager *m;
	tstore *store;
	targets_config cfg;
	pthread_t prober;
	bool prober_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stopping;
	pthread_mutex_t ship_lock;   /* one image push at a time */
};

/* ---- the client ---- */

typedef struct tc {
	CURLM *multi;
	CURL *h;
	struct curl_slist *hdrs;
	char errbuf[CURL_ERROR_SIZE];
	char *buf;               /* received, not yet read */
	size_t len, off, cap;
	long status;
	bool finished;
	CURLcode result;
	int body_fd;
	char name[TSTORE_NAME_MAX + 1];
	char url[512];
} tc;

static size_t tc_write(char *p, size_t sz, size_t n, void *ud)
{
	tc *c = ud;
	size_t len = sz * n;
	if (c->len + len > c->cap) {
		if (c->off) {   /* drop what was read */
			memmove(c->buf, c->buf + c->off, c->len - c->off);
			c->len -= c->off;
			c->off = 0;
		}
		if (c->len + len > c->cap) {
			c->cap = MAX(c->cap * 2, c->len + len);
			c->buf = xrealloc(c->buf, c->cap + 1);
		}
	}
	memcpy(c->buf + c->len, p, len);
	c->len += len;
	return len;
}

static size_t tc_read_body(char *p, size_t sz, size_t n, void *ud)
{
	tc *c = ud;
	for (;;) {
		ssize_t r = read(c->body_fd, p, sz * n);
		if (r >= 0)
			return (size_t)r;
		if (errno != EINTR)
			return CURL_READFUNC_ABORT;
	}
}

/* Pump the transfer until it has bytes to read, has finished, or (headers)
 * the status is known. */
static void tc_pump(tc *c, bool until_status)
{
	while (!c->finished) {
		if (until_status && c->status)
			return;
		if (!until_status && c->len > c->off)
			return;
		int running = 0;
		curl_multi_perform(c->multi, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(c->multi, &left)))
			if (msg->msg == CURLMSG_DONE) {
				c->finished = true;
				c->result = msg->data.result;
			}
		if (!c->status)
			curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &c->status);
		if (c->finished || (until_status && c->status) || (!until_status && c->len > c->off))
			return;
		curl_multi_poll(c->multi, NULL, 0, 200, NULL);
	}
}

static void tc_close(tc *c)
{
	if (!c)
		return;
	if (c->multi && c->h)
		curl_multi_remove_handle(c->multi, c->h);
	curl_easy_cleanup(c->h);
	curl_multi_cleanup(c->multi);
	curl_slist_free_all(c->hdrs);
	free(c->buf);
	free(c);
}

/* The transport error of a finished transfer as a silo_error naming the target. */
static int tc_fail(tc *c, silo_error *err)
{
	if (c->result == CURLE_PEER_FAILED_VERIFICATION)
		return silo_fail(err, SILO_ERR_UNAUTHORIZED, 0, "target %s (%s): TLS: its certificate is not trusted: %s",
				 c->name, c->url, c->errbuf[0] ? c->errbuf : curl_easy_strerror(c->result));
	return silo_fail(err, SILO_ERR_REMOTE_UNREACHABLE, 0, "target %s (%s) did not answer: %s", c->name, c->url,
			 c->errbuf[0] ? c->errbuf : curl_easy_strerror(c->result));
}

/* Connections to targets are kept open between requests and shared by every
 * request thread (a curl share of the connection cache and TLS sessions): a
 * forwarded exec pays no TCP and TLS handshake when a connection to its
 * target is idle (docs/remote.md, bench/remote). One targets per silod, so
 * the share is the module's; share_locks[d] guards curl's data d. */
static CURLSH *tc_share;
static pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *ud)
{
	(void)h, (void)a, (void)ud;
	pthread_mutex_lock(&share_locks[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *ud)
{
	(void)h, (void)ud;
	pthread_mutex_unlock(&share_locks[d]);
}

static void tc_share_open(void)
{
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&share_locks[i], NULL);
	tc_share = curl_share_init();
	if (!tc_share)
		return;   /* every request opens its own connection */
	curl_share_setopt(tc_share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(tc_share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(tc_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	curl_share_setopt(tc_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	curl_share_setopt(tc_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
}

static void tc_share_close(void)
{
	if (tc_share && curl_share_cleanup(tc_share) == CURLSHE_OK)
		tc_share = NULL;   /* else a transfer still uses it: left to the exit */
}

/* Start METHOD path on target t and wait for the answer's status. fresh: on
 * a connection of its own, never reused (a queued operation: a request curl
 * would resend on a reused connection that died must not run twice; and a
 * streamed upload cannot be resent). */
static tc *tc_open(const tstore_target *t, const char *method, const char *path, const char *ctype, const void *body,
		   size_t len, int body_fd, uint64_t body_size, long timeout_ms, bool fresh, silo_error *err)
{
	tc *c = xcalloc(1, sizeof *c);
	snprintf(c->name, sizeof c->name, "%s", t->name);
	snprintf(c->url, sizeof c->url, "%s", t->url);
	c->body_fd = body_fd;
	c->multi = curl_multi_init();
	c->h = curl_easy_init();
	if (!c->multi || !c->h) {
		tc_close(c);
		silo_fail(err, SILO_ERR_INTERNAL, 0, "curl init failed");
		return NULL;
	}
	CURL *h = c->h;
	char url[2048];
	snprintf(url, sizeof url, "%s%s", t->url, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
	if (fresh || body_fd >= 0 || !tc_share) {
		curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
	} else {
		curl_easy_setopt(h, CURLOPT_SHARE, tc_share);
	}
	if (timeout_ms)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	struct curl_blob ca = {t->ca_pem, t->ca_pem ? strlen(t->ca_pem) : 0, CURL_BLOB_COPY},
			 cert = {t->cert_pem, t->cert_pem ? strlen(t->cert_pem) : 0, CURL_BLOB_COPY},
			 key = {t->key_pem, t->key_pem ? strlen(t->key_pem) : 0, CURL_BLOB_COPY};
	if (t->ca_pem)
		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &ca);
	if (t->cert_pem && t->key_pem) {
		curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cert);
		curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &key);
	}
	char *auth = xasprintf("Authorization: Bearer %s", t->token ? t->token : "");
	c->hdrs = curl_slist_append(c->hdrs, auth);
	explicit_bzero(auth, strlen(auth));
	free(auth);
	c->hdrs = curl_slist_append(c->hdrs, "Expect:");
	if (ctype) {
		char ct[160];
		snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
		c->hdrs = curl_slist_append(c->hdrs, ct);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->hdrs);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (body_fd >= 0) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, tc_read_body);
		curl_easy_setopt(h, CURLOPT_READDATA, c);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)body_size);
	} else if (body || !strcmp(method, "POST") || !strcmp(method, "PUT")) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
		curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, body ? body : "");
	}
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, tc_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
	curl_multi_add_handle(c->multi, h);
	tc_pump(c, true);
	if (!c->status) {
		tc_fail(c, err);
		tc_close(c);
		return NULL;
	}
	return c;
}

/* Read the whole answer (at most max bytes) into c->buf[0..len), NUL-terminated. */
static int tc_all(tc *c, size_t max, silo_error *err)
{
	while (!c->finished) {
		tc_pump(c, false);
		if (c->len > max)
			return silo_fail(err, SILO_ERR_PROTOCOL, 0, "target %s: answer larger than %zu bytes", c->name, max);
	}
	if (c->result != CURLE_OK)
		return tc_fail(c, err);
	c->buf = xrealloc(c->buf, c->len + 1);
	c->buf[c->len] = '\0';
	return 0;
}

/* The error body of a target's answer as our error, prefixed with the target. */
static int tc_error(tc *c, silo_error *err)
{
	json_t *o = json_loads(c->buf ? c->buf : "", 0, NULL);
	json_t *e = json_object_get(o, "error");
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));
	const char *vm = json_string_value(json_object_get(e, "vm_id"));
	silo_code sc = code ? silo_code_from_name(code) : SILO_ERR__COUNT;
	if (sc == SILO_ERR__COUNT || sc == SILO_OK)
		sc = SILO_ERR_PROTOCOL;
	silo_fail_vm(err, sc, 0, vm && *vm ? vm : NULL, "target %s: %s", c->name,
		     msg ? msg : "an HTTP error without an error body");
	json_decref(o);
	return -1;
}

/* One request with a body in memory (ctype, NULL = none) and a JSON answer:
 * 0 and *out (the status in *status), or -1. */
static int tc_request(const tstore_target *t, const char *method, const char *path, const char *ctype,
		      const void *body, size_t len, long timeout_ms, long *status, json_t **out, silo_error *err)
{
	tc *c = tc_open(t, method, path, ctype, body, len, -1, 0, timeout_ms, false, err);
	if (!c)
		return -1;
	int rc = tc_all(c, SMALL_MAX, err);
	if (rc == 0 && c->status >= 400)
		rc = tc_error(c, err);
	if (rc == 0 && !(*out = json_loads(c->buf, 0, NULL)))
		rc = silo_fail(err, SILO_ERR_PROTOCOL, 0, "target %s: %s %s: the answer is not JSON", t->name, method, path);
	if (status)
		*status = c->status;
	tc_close(c);
	return rc;
}

/* One JSON request to a target (tc_request). */
static int tc_json(const tstore_target *t, const char *method, const char *path, json_t *body, long timeout_ms,
		   long *status, json_t **out, silo_error *err)
{
	char *txt = body ? json_dumps(body, JSON_COMPACT) : NULL;
	int rc = tc_request(t, method, path, body ? "application/json" : NULL, txt, txt ? strlen(txt) : 0, timeout_ms,
			    status, out, err);
	free(txt);
	return rc;
}

/* ---- health ---- */

/* The check of a target (add, probes): reachable, the token accepted, the
 * same major.minor version, a provider available. *info = what it said. */
static int check_target(targets *ts, const tstore_target *t, json_t **info, silo_error *err)
{
	json_t *h;
	if (tc_json(t, "GET", "/v1/health", NULL, ts->cfg.timeout_ms, NULL, &h, err) < 0)
		return -1;
	const char *v = json_string_value(json_object_get(h, "version")), *mine = silo_version();
	const char *vdot = v ? strchr(v, '.') : NULL, *mdot = strchr(mine, '.');
	size_t vl = vdot ? (size_t)(strchr(vdot + 1, '.') ? strchr(vdot + 1, '.') - v : (long)strlen(v)) : 0;
	size_t ml = mdot ? (size_t)(strchr(mdot + 1, '.') ? strchr(mdot + 1, '.') - mine : (long)strlen(mine)) : 0;
	if (!v || vl != ml || strncmp(v, mine, ml)) {
		silo_fail(err, SILO_ERR_CONFLICT, 0, "target %s runs silod %s, this one %s: major.minor must match", t->name,
			  v ? v : "(no version)", mine);
		json_decref(h);
		return -1;
	}
	if (json_integer_value(json_object_get(h, "providers_available")) < 1) {
		silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, 0, "target %s has no provider available", t->name);
		json_decref(h);
		return -1;
	}
	*info = json_pack("{s:s,s:O,s:O,s:O,s:O,s:O}", "version", v, "capacity", json_object_get(h, "capacity"),
			  "allocated", json_object_get(h, "allocated"), "sandboxes", json_object_get(h, "sandboxes"),
			  "max_sandboxes", json_object_get(h, "max_sandboxes"), "providers_available",
			  json_object_get(h, "providers_available"));
	json_decref(h);
	return 0;
}

static void drain_queue(targets *ts, const tstore_target *t);

static void probe_one(targets *ts, tstore_target *t)
{
	json_t *info = NULL;
	silo_error e = {0};
	bool ok = check_target(ts, t, &info, &e) == 0;
	bool was_online = !strcmp(t->state, "online");
	uint32_t failures = ok ? 0 : t->failures + 1;
	const char *state = ok ? "online" : failures >= ts->cfg.offline_after ? "offline" : t->state;
	char *it = info ? json_dumps(info, JSON_COMPACT) : NULL;
	silo_error se;
	if (tstore_target_health(ts->store, t->name, state, failures, ok, ok ? "" : e.message, it, &se) < 0)
		log_warn("target %s: %s", t->name, se.message);
	free(it);
	json_decref(info);
	if (!ok)
		metrics_inc(manager_metrics(ts->m), M_TARGET_PROBE_FAILURES_TOTAL, 1);
	if (was_online && !strcmp(state, "offline")) {
		metrics_inc(manager_metrics(ts->m), M_TARGET_OFFLINE_TOTAL, 1);
		manager_emit(ts->m, MGR_EV_TARGET, NULL, NULL, NULL, "offline", silo_code_name(e.code),
			     "target %s offline after %u failed probes: %s", t->name, failures, e.message);
	} else if (!was_online && ok) {
		manager_emit(ts->m, MGR_EV_TARGET, NULL, NULL, NULL, "online", NULL, "target %s is back online", t->name);
	}
	if (ok)
		drain_queue(ts, t);
}

static void *prober(void *arg)
{
	targets *ts = arg;
	pthread_mutex_lock(&ts->lock);
	while (!ts->stopping) {
		pthread_mutex_unlock(&ts->lock);
		tstore_target *v;
		size_t n;
		silo_error e;
		if (tstore_target_list(ts->store, &v, &n, &e) == 0) {
			for (size_t i = 0; i < n; i++)
				probe_one(ts, &v[i]);
			tstore_targets_free(v, n);
		}
		pthread_mutex_lock(&ts->lock);
		if (!ts->stopping)
			cond_wait_ms(&ts->cond, &ts->lock, (uint64_t)ts->cfg.probe_ms);
	}
	pthread_mutex_unlock(&ts->lock);
	return NULL;
}

int targets_open(manager *m, const targets_config *cfg, targets **out, silo_error *err)
{
	targets *ts = xcalloc(1, sizeof *ts);
	ts->m = m;
	ts->cfg = *cfg;
	if (!ts->cfg.probe_ms)
		ts->cfg.probe_ms = PROBE_MS_DEFAULT;
	if (!ts->cfg.offline_after)
		ts->cfg.offline_after = OFFLINE_AFTER_DEFAULT;
	if (!ts->cfg.timeout_ms)
		ts->cfg.timeout_ms = TIMEOUT_MS_DEFAULT;
	pthread_mutex_init(&ts->lock, NULL);
	pthread_mutex_init(&ts->ship_lock, NULL);
	cond_init_monotonic(&ts->cond);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	tc_share_open();
	char path[4200];
	snprintf(path, sizeof path, "%s/registry.db", cfg->state_dir);
	if (tstore_open(path, &ts->store, err) < 0) {
		targets_close(ts);
		return -1;
	}
	if (pthread_create(&ts->prober, NULL, prober, ts) != 0) {
		targets_close(ts);
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "start the target prober");
	}
	ts->prober_started = true;
	*out = ts;
	return 0;
}

void targets_close(targets *ts)
{
	if (!ts)
		return;
	signal_stop(&ts->lock, &ts->cond, &ts->stopping);
	if (ts->prober_started)
		pthread_join(ts->prober, NULL);
	tstore_close(ts->store);
	tc_share_close();
	pthread_cond_destroy(&ts->cond);
	pthread_mutex_destroy(&ts->lock);
	pthread_mutex_destroy(&ts->ship_lock);
	free(ts);
}

/* ---- the queue ---- */

/* Apply target t's pending operations in order; stop at the first that
 * cannot reach it (it stays pending). Each is marked "applying" (committed)
 * before it is sent: one still "applying" when silod starts was perhaps
 * applied before a crash and is never sent again (it becomes "failed",
 * saying so: at most once, and nothing dropped silently). An operation the
 * target refused is "failed" with its answer. */
static void drain_queue(targets *ts, const tstore_target *t)
{
	tstore_op op;
	silo_error e;
	while (tstore_op_next(ts->store, t->name, &op, &e) == 0) {
		if (!strcmp(op.state, "applying") ||
		    tstore_op_finish(ts->store, op.seq, "applying", NULL, &e) < 0) {   /* see above */
			tstore_op_finish(ts->store, op.seq, "failed",
					 "{\"error\":{\"code\":\"REMOTE_UNREACHABLE\",\"message\":\"silod stopped while "
					 "applying it: it may have been applied, so it is not sent again\"}}",
					 &e);
			tstore_op_clear(&op);
			continue;
		}
		tc *c = tc_open(t, op.method, op.path, op.ctype[0] ? op.ctype : NULL, op.body, op.body_len, -1, 0, 0, true, &e);
		if (!c || tc_all(c, SMALL_MAX, &e) < 0) {
			tc_close(c);
			/* not sent (no status): pending again, first in line */
			tstore_op_finish(ts->store, op.seq, c ? "failed" : "pending", c ? e.message : NULL, &e);
			tstore_op_clear(&op);
			return;
		}
		bool ok = c->status < 400;
		if (!strncmp(op.path, "/v1/deployments", 15)) {
			/* recorded when queued; forgotten when refused or undeployed */
			if (!ok && !strcmp(op.method, "POST")) {
				json_t *o = json_loads(op.body, 0, NULL);
				tstore_deploy_remove(ts->store, json_string_value(json_object_get(o, "name")) ?: "", &e);
				json_decref(o);
			} else if ((ok || c->status == 404) && !strcmp(op.method, "DELETE")) {
				const char *nm = strrchr(op.path, '/') + 1;
				char dn[TSTORE_NAME_MAX + 1];
				snprintf(dn, sizeof dn, "%.*s", (int)strcspn(nm, "?"), nm);
				tstore_deploy_remove(ts->store, dn, &e);
			}
		} else if (ok && !strcmp(op.method, "POST")) {
			json_t *o = json_loads(c->buf, 0, NULL);
			tstore_sandbox b = {.created_ms = now_realtime_ms()};
			snprintf(b.id, sizeof b.id, "%s", json_string_value(json_object_get(o, "id")) ?: "");
			snprintf(b.name, sizeof b.name, "%s", json_string_value(json_object_get(o, "name")) ?: "");
			snprintf(b.target, sizeof b.target, "%s", t->name);
			if (b.id[0])
				tstore_sandbox_add(ts->store, &b, &e);
			json_decref(o);
		} else if (ok && !strcmp(op.method, "DELETE")) {
			const char *id = strrchr(op.path, '/');
			char rid[SILO_ID_MAX];
			snprintf(rid, sizeof rid, "%.*s", (int)strcspn(id ? id + 1 : "", "?"), id ? id + 1 : "");
			tstore_sandbox_remove(ts->store, rid, &e);
		}
		tstore_op_finish(ts->store, op.seq, ok ? "done" : "failed", c->buf, &e);
		manager_emit(ts->m, MGR_EV_TARGET, NULL, NULL, NULL, ok ? "applied" : "failed", NULL,
			     "target %s: queued operation %" PRId64 " (%s %s) %s (HTTP %ld)", t->name, op.seq, op.method,
			     op.path, ok ? "applied" : "refused", c->status);
		tc_close(c);
		tstore_op_clear(&op);
	}
}


/* ---- shipping images (docs/remote.md "Shipping images") ----
 *
 * Before a create on a target names an image this silod has with layers
 * (imported, or a built image's namespace layer) the target is asked for its
 * image of that name (GET /v1/images/NAME): the same layer tree digests ->
 * nothing to do; another image of that name -> CONFLICT; none -> push it as an
 * OCI image: one uncompressed tar per layer (GNU tar, deterministic: sorted
 * names, numeric owners, pax headers without atime/ctime, xattrs), a config
 * (this image's, with those tars' diff_ids) and a manifest, each a blob named
 * by its SHA-256 and cached under $STATE/ship/ (a layer's tar by its tree
 * digest). Each blob goes only if the target lacks it, from where the target
 * says it has it (GET /v1/blobs/H: an interrupted push resumes), in chunks;
 * the target verifies the SHA-256 of each blob and, after importing, the tree
 * digest of each layer (daemon/api_images.c). ship_lock serializes pushes.
 */
#define SHIP_CHUNK (4u << 20)

typedef struct ship_blob {
	char hex[65];
	char path[4200];
	uint64_t size;
} ship_blob;

static const char *tar_path(void)
{
	return access("/usr/bin/tar", X_OK) == 0 ? "/usr/bin/tar" : "/bin/tar";
}

/* $STATE/ship/NAME into buf (the dir made). */
static int ship_path(const targets *ts, char *buf, size_t len, const char *name, silo_error *err)
{
	snprintf(buf, len, "%s/ship", ts->cfg.state_dir);
	if (mkdir_p(buf, 0700) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", buf);
	snprintf(buf, len, "%s/ship/%s", ts->cfg.state_dir, name);
	return 0;
}

/* A blob from a file just written at tmp: hashed, renamed to ship/blob-<hex>. */
static int blob_from_tmp(const targets *ts, const char *tmp, ship_blob *b, silo_error *err)
{
	char p[4200];
	if (image_sha256_file(tmp, b->hex, &b->size, err) < 0 || ship_path(ts, p, sizeof p, "", err) < 0) {
		unlink(tmp);
		return -1;
	}
	snprintf(b->path, sizeof b->path, "%sblob-%s", p, b->hex);
	if (rename(tmp, b->path) < 0) {
		unlink(tmp);
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "rename %s", b->path);
	}
	return 0;
}

static int blob_from_json(const targets *ts, json_t *doc, ship_blob *b, silo_error *err)
{
	char tmp[4200];
	if (ship_path(ts, tmp, sizeof tmp, "tmp-XXXXXX", err) < 0)
		return -1;
	int fd = mkstemp(tmp);
	if (fd < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkstemp %s", tmp);
	char *txt = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	int rc = write_all(fd, txt, strlen(txt));
	free(txt);
	close(fd);
	if (rc < 0) {
		unlink(tmp);
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "write %s", tmp);
	}
	return blob_from_tmp(ts, tmp, b, err);
}

/* The tar of layer L, made once per tree digest (ship/layer-<tree> names its blob). */
static int layer_blob(const targets *ts, const image_layer *L, ship_blob *b, silo_error *err)
{
	char ref[4200], tmp[4200];
	char name[80];
	snprintf(name, sizeof name, "layer-%s", L->tree);
	if (!L->tree[0] || !L->path)
		return silo_fail(err, SILO_ERR_NOT_SUPPORTED, 0, "layer %s has no tree digest: it cannot be shipped",
				 L->diff_id);
	if (ship_path(ts, ref, sizeof ref, name, err) < 0)
		return -1;
	char *hex = NULL;
	size_t hl;
	silo_error le;
	if (read_file(ref, 65, &hex, &hl, &le) == 0 && hl == 64) {
		snprintf(b->hex, sizeof b->hex, "%s", hex);
		free(hex);
		snprintf(b->path, sizeof b->path, "%s/ship/blob-%s", ts->cfg.state_dir, b->hex);
		struct stat st;
		if (stat(b->path, &st) == 0) {
			b->size = (uint64_t)st.st_size;
			return 0;
		}
	} else {
		free(hex);
	}
	if (ship_path(ts, tmp, sizeof tmp, "tmp-XXXXXX", err) < 0)
		return -1;
	int fd = mkstemp(tmp);
	if (fd < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkstemp %s", tmp);
	close(fd);
	char *argv[] = {(char *)tar_path(), "--create", "--file", tmp, "--directory", L->path, "--sort=name",
			"--numeric-owner", "--format=posix", "--pax-option=delete=atime,delete=ctime", "--xattrs",
			"--xattrs-include=*", ".", NULL};
	if (oci_run_script(argv, true, err) < 0) {
		unlink(tmp);
		return silo_error_prefix(err, "layer %s: tar", L->diff_id), -1;
	}
	if (blob_from_tmp(ts, tmp, b, err) < 0)
		return -1;
	return write_file_atomic(ref, b->hex, 64, 0600, err);
}

/* The image's config (its config.json when imported, else a minimal one)
 * with the shipped tars' diff_ids. */
static json_t *ship_config(const image_entry *e, const ship_blob *layers)
{
	json_t *cfg = NULL;
	if (e->file.path) {
		char p[4200];
		snprintf(p, sizeof p, "%s", e->file.path);
		char *sl = strrchr(p, '/');
		if (sl) {
			snprintf(sl + 1, sizeof p - (size_t)(sl + 1 - p), "config.json");
			cfg = json_load_file(p, JSON_REJECT_DUPLICATES, NULL);
		}
	}
	if (!json_is_object(cfg)) {
		json_decref(cfg);
		cfg = json_pack("{s:s,s:s,s:{}}", "architecture", "amd64", "os", "linux", "config");
	}
	json_t *ids = json_array();
	for (size_t i = 0; i < e->n_layers; i++)
		json_array_append_new(ids, json_sprintf("sha256:%s", layers[i].hex));
	json_object_set_new(cfg, "rootfs", json_pack("{s:s,s:o}", "type", "layers", "diff_ids", ids));
	json_object_del(cfg, "history");
	return cfg;
}

static int read_exact_at(int fd, char *buf, size_t n, uint64_t off)
{
	for (size_t got = 0; got < n;) {
		ssize_t k = pread(fd, buf + got, n - got, (off_t)(off + got));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			if (k == 0)
				errno = EIO;
			return -1;
		}
		got += (size_t)k;
	}
	return 0;
}

/* Push blob b unless the target has it, from where it stopped. *sent = bytes sent. */
static int push_blob(targets *ts, const tstore_target *t, const ship_blob *b, uint64_t *sent, silo_error *err)
{
	char path[256];
	snprintf(path, sizeof path, "/v1/blobs/%s", b->hex);
	json_t *o;
	if (tc_json(t, "GET", path, NULL, ts->cfg.timeout_ms, NULL, &o, err) < 0)
		return -1;
	bool complete = json_is_true(json_object_get(o, "complete"));
	uint64_t off = (uint64_t)json_integer_value(json_object_get(o, "have"));
	json_decref(o);
	if (complete)
		return 0;
	if (off > b->size)
		off = 0;   /* a partial longer than the blob: the target drops it at the end */
	int fd = open(b->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s", b->path);
	char *buf = xmalloc(SHIP_CHUNK);
	int rc = 0;
	do {
		size_t n = (size_t)MIN((uint64_t)SHIP_CHUNK, b->size - off);
		if (n && read_exact_at(fd, buf, n, off) < 0) {
			rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "read %s", b->path);
			break;
		}
		snprintf(path, sizeof path, "/v1/blobs/%s?offset=%" PRIu64 "&size=%" PRIu64, b->hex, off, b->size);
		if ((rc = tc_request(t, "PUT", path, "application/octet-stream", buf, n, 0, NULL, &o, err)) < 0) {
			if (err->code == SILO_ERR_CHECKSUM_MISMATCH)   /* our copy is bad: made again next time */
				unlink(b->path);
			break;
		}
		json_decref(o);
		off += n;
		*sent += n;
	} while (off < b->size);
	free(buf);
	close(fd);
	return rc;
}

static int ship_image_locked(targets *ts, const tstore_target *t, const image_entry *e, silo_error *err)
{
	char path[256];
	snprintf(path, sizeof path, "/v1/images/%s", e->name);
	json_t *o = NULL;
	long st = 0;
	silo_error ge = {0};
	if (tc_json(t, "GET", path, NULL, ts->cfg.timeout_ms, &st, &o, &ge) == 0) {
		json_t *ls = json_object_get(o, "layers");
		bool same = json_array_size(ls) == e->n_layers;
		for (size_t i = 0; same && i < e->n_layers; i++)
			same = !strcmp(json_string_value(json_object_get(json_array_get(ls, i), "tree")) ?: "",
				       e->layers[i].tree);
		json_decref(o);
		if (same)
			return 0;
		return silo_fail(err, SILO_ERR_CONFLICT, 0,
				 "target %s has another image named %s (other layers): remove it there, or use another name",
				 t->name, e->name);
	}
	if (st != 404) {
		*err = ge;
		return -1;
	}
	ship_blob *bl = xcalloc(e->n_layers + 2, sizeof *bl);   /* layers, config, manifest */
	int rc = -1;
	uint64_t sent = 0, total = 0;
	for (size_t i = 0; i < e->n_layers; i++)
		if (layer_blob(ts, &e->layers[i], &bl[i], err) < 0)
			goto out;
	json_t *cfg = ship_config(e, bl), *layers = json_array();
	ship_blob *cb = &bl[e->n_layers], *mb = &bl[e->n_layers + 1];
	rc = blob_from_json(ts, cfg, cb, err);
	json_decref(cfg);
	for (size_t i = 0; i < e->n_layers; i++)
		json_array_append_new(layers, json_pack("{s:s,s:s,s:I}", "mediaType", "application/vnd.oci.image.layer.v1.tar",
							"digest", "", "size", (json_int_t)bl[i].size));
	for (size_t i = 0; i < e->n_layers; i++)
		json_object_set_new(json_array_get(layers, i), "digest", json_sprintf("sha256:%s", bl[i].hex));
	json_t *man = json_pack("{s:i,s:s,s:{s:s,s:s,s:I},s:o}", "schemaVersion", 2, "mediaType",
				"application/vnd.oci.image.manifest.v1+json", "config", "mediaType",
				"application/vnd.oci.image.config.v1+json", "digest", "", "size", (json_int_t)cb->size,
				"layers", layers);
	json_object_set_new(json_object_get(man, "config"), "digest", json_sprintf("sha256:%s", cb->hex));
	if (rc == 0)
		rc = blob_from_json(ts, man, mb, err);
	json_decref(man);
	for (size_t i = 0; rc == 0 && i < e->n_layers + 2; i++) {
		rc = push_blob(ts, t, &bl[i], &sent, err);
		total += bl[i].size;
	}
	if (rc < 0)
		goto out;
	json_t *blobs = json_array(), *trees = json_array();
	for (size_t i = 0; i <= e->n_layers; i++)
		json_array_append_new(blobs, json_string(bl[i].hex));
	for (size_t i = 0; i < e->n_layers; i++)
		json_array_append_new(trees, json_string(e->layers[i].tree));
	json_t *req = json_pack("{s:s,s:s,s:o,s:o}", "name", e->name, "manifest", mb->hex, "blobs", blobs, "trees", trees);
	rc = tc_json(t, "POST", "/v1/images", req, 0, NULL, &o, err);
	json_decref(req);
	if (rc == 0) {
		json_decref(o);
		manager_emit(ts->m, MGR_EV_TARGET, NULL, NULL, NULL, "image-shipped", NULL,
			     "target %s: image %s shipped (%zu layers, %" PRIu64 " of %" PRIu64 " bytes sent)", t->name,
			     e->name, e->n_layers, sent, total);
	}
out:
	free(bl);
	if (rc < 0)
		silo_error_prefix(err, "ship image %s to target %s", e->name, t->name);
	return rc;
}

/* Before a create on target t: the image its spec names, if this silod has one
 * with layers and the target lacks it. */
static int ship_for_create(targets *ts, const api_req *q, const tstore_target *t, silo_error *err)
{
	vm_spec spec = {0};
	silo_error pe;
	int rc = strcmp(q->route->accept[q->ctype], "application/json") != 0 ? spec_parse(q->body, q->len, &spec, &pe)
									       : api_spec_from_json(q->body, q->len, &spec, &pe);
	image_entry e = {0};
	/* a spec this silod cannot read, or no image with layers here: the target decides */
	if (rc < 0 || !spec.image || !*spec.image || !strcmp(spec.image, "base") ||
	    image_lookup(spec.image, &e, &pe) < 0 || e.n_layers == 0) {
		spec_free(&spec);
		image_entry_free(&e);
		return 0;
	}
	spec_free(&spec);
	pthread_mutex_lock(&ts->ship_lock);
	rc = ship_image_locked(ts, t, &e, err);
	pthread_mutex_unlock(&ts->ship_lock);
	image_entry_free(&e);
	return rc;
}

/* ---- forwarding ---- */

static targets *ctx_targets(const api_req *q)
{
	return q->ctx->targets;
}

bool targets_owns(const api_req *q)
{
	targets *ts = ctx_targets(q);
	if (!ts)
		return false;
	if (q->route->handler == h_sandbox_create || q->route->handler == h_deploy_create)
		return api_query(q, "target") != NULL;
	if (q->route->handler == h_deploy_get || q->route->handler == h_deploy_delete) {
		char tn[TSTORE_NAME_MAX + 1];
		silo_error e;
		json_t *o;
		if (tstore_deploy_find(ts->store, api_cap(q, "name"), tn, &e) != 0)
			return false;
		if (q->ctx->deploy && deploy_get_json(q->ctx->deploy, api_cap(q, "name"), &o, &e) == 0) {
			json_decref(o);   /* a local deployment of that name comes first */
			return false;
		}
		return true;
	}
	const char *id = http_capture(&q->caps, "id");
	if (!id)
		return false;
	tstore_sandbox b;
	silo_error e;
	if (tstore_sandbox_find(ts->store, id, &b, &e) != 0)
		return false;
	json_t *o;
	if (manager_get_json(q->ctx->m, id, &o, &e) == 0) {   /* a local sandbox of that id comes first */
		json_decref(o);
		return false;
	}
	return true;
}

/* The request's query again (decoded by the transport), without "target". */
static char *query_string(const api_req *q)
{
	char *out = xstrdup("");
	for (unsigned i = 0; i < q->target->nparam; i++) {
		const http_param *p = &q->target->param[i];
		if (!strcmp(p->key, "target"))
			continue;
		char *k = curl_easy_escape(NULL, p->key, 0), *v = curl_easy_escape(NULL, p->value ? p->value : "", 0);
		char *n = xasprintf("%s%c%s=%s", out, out[0] ? '&' : '?', k, v);
		curl_free(k);
		curl_free(v);
		free(out);
		out = n;
	}
	return out;
}

typedef struct fwd_stream {
	tc *c;
	const api_ctx *ctx;
	int peer_fd;
} fwd_stream;

static ssize_t fwd_read(void *ud, char *buf, size_t max)
{
	fwd_stream *s = ud;
	tc *c = s->c;
	while (c->len == c->off && !c->finished) {
		if (api_stream_cut(s->ctx, s->peer_fd))
			return API_STREAM_ABORT;
		tc_pump(c, false);
	}
	if (c->len > c->off) {
		size_t n = MIN(max, c->len - c->off);
		memcpy(buf, c->buf + c->off, n);
		c->off += n;
		return (ssize_t)n;
	}
	return c->result == CURLE_OK ? API_STREAM_END : API_STREAM_ABORT;
}

static void fwd_free(void *ud)
{
	fwd_stream *s = ud;
	tc_close(s->c);
	free(s);
}

/* Queue q for target t (offline): only creates and deletes, and only with an
 * idempotency key; else REMOTE_UNREACHABLE naming the target. */
static int queue_or_refuse(api_req *q, api_reply *r, const tstore_target *t, const char *path, silo_error *err)
{
	targets *ts = ctx_targets(q);
	const char *key = api_query(q, "idempotency_key");
	bool queueable = q->route->handler == h_sandbox_create || q->route->handler == h_sandbox_delete ||
			 q->route->handler == h_deploy_create || q->route->handler == h_deploy_delete;
	if (!queueable || !key)
		return silo_fail(err, SILO_ERR_REMOTE_UNREACHABLE, 0,
				 "target %s is offline (%u failed probes; last: %s)%s", t->name, t->failures,
				 t->last_error[0] ? t->last_error : "-",
				 queueable ? "; send ?idempotency_key=KEY to queue the operation until it returns" : "");
	if (!*key || strlen(key) > 128)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "idempotency_key: 1-128 characters");
	tstore_op op = {0};
	snprintf(op.target, sizeof op.target, "%s", t->name);
	snprintf(op.method, sizeof op.method, "%s", q->method);
	snprintf(op.path, sizeof op.path, "%s", path);
	snprintf(op.ctype, sizeof op.ctype, "%s", q->content_type ? q->content_type : "");
	snprintf(op.idem_key, sizeof op.idem_key, "%s", key);
	op.body = (char *)q->body;
	op.body_len = q->len;
	const char *dname = NULL;
	json_t *body = NULL;
	if (q->route->handler == h_deploy_create) {   /* its undeploy must find the target */
		body = json_loads(q->body, 0, NULL);
		dname = json_string_value(json_object_get(body, "name"));
		if (!dname || !*dname || strlen(dname) > TSTORE_NAME_MAX) {
			json_decref(body);
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "body: name: required (a deployment name)");
		}
	}
	int rc = tstore_op_add(ts->store, &op, err);
	if (rc == 0 && dname && tstore_deploy_add(ts->store, dname, t->name, err) < 0)
		rc = -1;
	json_decref(body);
	if (rc < 0)
		return -1;
	manager_audit(q->ctx->m, q->who.actor, NULL, "target-queue", 0, NULL);
	return api_reply_json(r, 202,
			      json_pack("{s:I,s:s,s:s,s:s,s:b}", "queued", (json_int_t)op.seq, "target", t->name, "state",
					op.state, "idempotency_key", key, "duplicate", rc == 1));
}

int targets_forward(api_req *q, api_reply *r, silo_error *err)
{
	targets *ts = ctx_targets(q);
	if (q->who.tok)
		return silo_fail(err, SILO_ERR_POLICY_DENIED, 0,
				 "sandboxes on remote targets need a full-access token (scoped tokens are checked by "
				 "the target's own silod)");
	tstore_sandbox b = {0};
	const char *name = api_query(q, "target");
	api_handler h = q->route->handler;
	bool deploy = h == h_deploy_create || h == h_deploy_get || h == h_deploy_delete;
	char dtarget[TSTORE_NAME_MAX + 1];
	if (deploy && h != h_deploy_create) {
		if (tstore_deploy_find(ts->store, api_cap(q, "name"), dtarget, err) != 0)
			return silo_fail(err, SILO_ERR_VM_NOT_FOUND, 0, "no deployment named '%s'", api_cap(q, "name"));
		name = dtarget;
	} else if (h != h_sandbox_create && h != h_deploy_create) {
		if (tstore_sandbox_find(ts->store, api_cap(q, "id"), &b, err) != 0)
			return silo_fail(err, SILO_ERR_VM_NOT_FOUND, 0, "no sandbox with id or name '%s'", api_cap(q, "id"));
		name = b.target;
	}
	tstore_target t;
	if (tstore_target_get(ts->store, name, &t, err) < 0)
		return -1;
	char *qs = query_string(q);
	char path[1100];
	snprintf(path, sizeof path, "%s%s", q->path, qs);
	free(qs);
	int rc = -1;
	if (!strcmp(t.state, "offline")) {
		rc = queue_or_refuse(q, r, &t, path, err);
		tstore_target_clear(&t);
		return rc;
	}
	if (q->route->handler == h_sandbox_create && ship_for_create(ts, q, &t, err) < 0) {
		tstore_target_clear(&t);
		return -1;
	}
	tc *c = tc_open(&t, q->method, path, q->content_type, q->body_fd >= 0 ? NULL : q->body,
			q->body_fd >= 0 ? 0 : q->len, q->body_fd, q->body_size, 0, false, err);
	tstore_target_clear(&t);
	if (!c)
		return -1;
	if (c->status >= 400 || q->route->reply == API_REPLY_JSON) {
		if (tc_all(c, SMALL_MAX, err) < 0)
			goto out;
		if (c->status >= 400) {
			rc = tc_error(c, err);
			silo_error fe;
			if (c->status == 404 && q->route->handler == h_sandbox_delete)
				tstore_sandbox_remove(ts->store, b.id, &fe);
			if (c->status == 404 && q->route->handler == h_deploy_delete)
				tstore_deploy_remove(ts->store, api_cap(q, "name"), &fe);
			goto out;
		}
		json_t *o = json_loads(c->buf, 0, NULL);
		if (!o) {
			rc = silo_fail(err, SILO_ERR_PROTOCOL, 0, "target %s: the answer is not JSON", c->name);
			goto out;
		}
		if (json_is_object(o) && (json_object_get(o, "id") || deploy))
			json_object_set_new(o, "target", json_string(c->name));
		if (h == h_deploy_create) {
			const char *dn = json_string_value(json_object_get(o, "name"));
			if (!dn || tstore_deploy_add(ts->store, dn, c->name, err) < 0) {
				if (!dn)
					silo_fail(err, SILO_ERR_PROTOCOL, 0, "target %s: a deployment without a name", c->name);
				json_decref(o);
				goto out;
			}
			manager_audit(q->ctx->m, q->who.actor, NULL, "target-deploy", 0, NULL);
		}
		if (h == h_deploy_delete)
			tstore_deploy_remove(ts->store, api_cap(q, "name"), err);
		if (q->route->handler == h_sandbox_create) {
			tstore_sandbox nb = {.created_ms = now_realtime_ms()};
			snprintf(nb.id, sizeof nb.id, "%s", json_string_value(json_object_get(o, "id")) ?: "");
			snprintf(nb.name, sizeof nb.name, "%s", json_string_value(json_object_get(o, "name")) ?: "");
			snprintf(nb.target, sizeof nb.target, "%s", c->name);
			if (tstore_sandbox_add(ts->store, &nb, err) < 0) {
				json_decref(o);
				goto out;
			}
			manager_audit(q->ctx->m, q->who.actor, nb.id, "target-create", 0, NULL);
		}
		if (q->route->handler == h_sandbox_delete)
			tstore_sandbox_remove(ts->store, b.id, err);
		rc = api_reply_json(r, (unsigned)c->status, o);
		goto out;
	}
	if (q->route->reply == API_REPLY_FILE) {
		int fd = memfd_create("silod-target-file", MFD_CLOEXEC);
		if (fd < 0) {
			rc = silo_fail(err, SILO_ERR_IO_ERROR, errno, "download spool (memfd)");
			goto out;
		}
		uint64_t total = 0;
		char buf[STREAM_BLOCK];
		ssize_t n;
		fwd_stream s = {c, q->ctx, q->peer_fd};
		while ((n = fwd_read(&s, buf, sizeof buf)) > 0) {
			total += (uint64_t)n;
			if (total > q->ctx->max_upload || write_all(fd, buf, (size_t)n) < 0) {
				close(fd);
				rc = silo_fail(err, SILO_ERR_PAYLOAD_TOO_LARGE, 0, "target %s: download over %" PRIu64 " bytes",
					       c->name, q->ctx->max_upload);
				goto out;
			}
		}
		if (n == API_STREAM_ABORT || lseek(fd, 0, SEEK_SET) < 0) {
			close(fd);
			rc = tc_fail(c, err);
			goto out;
		}
		rc = api_reply_file(r, fd, total);
		goto out;
	}
	/* NDJSON, SSE: relayed as they come */
	fwd_stream *s = xmalloc(sizeof *s);
	*s = (fwd_stream){c, q->ctx, q->peer_fd};
	api_stream st = {.read = fwd_read, .free = fwd_free, .ctx = s, .block = STREAM_BLOCK};
	return api_reply_stream(r, q->route->reply, &st);
out:
	tc_close(c);
	return rc;
}

void targets_list_into(const api_req *q, json_t *a)
{
	targets *ts = ctx_targets(q);
	if (!ts || q->who.tok)
		return;
	tstore_target *v;
	size_t n;
	silo_error e;
	if (tstore_target_list(ts->store, &v, &n, &e) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		tstore_sandbox *bs;
		size_t nb;
		if (tstore_sandbox_list(ts->store, v[i].name, &bs, &nb, &e) < 0 || nb == 0) {
			free(bs);
			continue;
		}
		json_t *remote = NULL, *list = NULL;
		if (!strcmp(v[i].state, "online") &&
		    tc_json(&v[i], "GET", "/v1/sandboxes", NULL, ts->cfg.timeout_ms, NULL, &remote, &e) == 0)
			list = json_object_get(remote, "sandboxes");
		for (size_t j = 0; j < nb; j++) {
			json_t *o = NULL, *x;
			size_t k;
			json_array_foreach(list, k, x) {
				const char *xid = json_string_value(json_object_get(x, "id"));
				if (!o && xid && !strcmp(xid, bs[j].id))
					o = json_deep_copy(x);
			}
			if (!o)
				o = json_pack("{s:s,s:s,s:s}", "id", bs[j].id, "name", bs[j].name, "state",
					      list ? "gone" : "unknown");
			json_object_set_new(o, "target", json_string(v[i].name));
			json_object_set_new(o, "target_state", json_string(v[i].state));
			json_array_append_new(a, o);
		}
		json_decref(remote);
		free(bs);
	}
	tstore_targets_free(v, n);
}

/* ---- /v1/targets ---- */

static json_t *target_json(targets *ts, const tstore_target *t)
{
	int64_t nsb = 0, nq = 0;
	silo_error e;
	int64_t nd = 0;
	tstore_sandbox_count(ts->store, t->name, &nsb, &e);
	tstore_deploy_count(ts->store, t->name, &nd, &e);
	tstore_op_pending(ts->store, t->name, &nq, &e);
	json_t *info = json_loads(t->info_json ? t->info_json : "{}", 0, NULL);
	json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:b,s:b,s:I,s:I,s:o}", "name", t->name, "url", t->url, "state",
			 t->state, "failures", (json_int_t)t->failures, "added_ms", (json_int_t)t->added_ms, "last_ok_ms",
			 (json_int_t)t->last_ok_ms, "last_error", t->last_error, "tls", !strncmp(t->url, "https://", 8),
			 "client_cert", t->cert_pem != NULL, "sandboxes", (json_int_t)nsb, "queued", (json_int_t)nq,
			 "info", info ? info : json_object());
	json_object_set_new(o, "deployments", json_integer((json_int_t)nd));
	return o;
}

static targets *need_targets(const api_req *q, silo_error *err)
{
	if (!q->ctx->targets)
		silo_fail(err, SILO_ERR_NOT_SUPPORTED, 0, "this silod has no target store");
	return q->ctx->targets;
}

int h_target_list(api_req *q, api_reply *r, silo_error *err)
{
	targets *ts = need_targets(q, err);
	tstore_target *v;
	size_t n;
	if (!ts || tstore_target_list(ts->store, &v, &n, err) < 0)
		return -1;
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, target_json(ts, &v[i]));
	tstore_targets_free(v, n);
	return api_reply_json(r, 200, json_pack("{s:o}", "targets", a));
}

int h_target_get(api_req *q, api_reply *r, silo_error *err)
{
	targets *ts = need_targets(q, err);
	tstore_target t;
	if (!ts || tstore_target_get(ts->store, api_cap(q, "target"), &t, err) < 0)
		return -1;
	json_t *o = target_json(ts, &t);
	tstore_target_clear(&t);
	return api_reply_json(r, 200, o);
}

/* A PEM member of the add body: NULL when absent, else checked. */
static int pem_member(json_t *b, const char *k, char **out, silo_error *err)
{
	json_t *v = json_object_get(b, k);
	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	const char *s = json_string_value(v);
	if (!s || !strstr(s, "-----BEGIN ") || strlen(s) > (1u << 20))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: expected PEM text (at most 1 MiB)", k);
	*out = xstrdup(s);
	return 0;
}

int h_target_add(api_req *q, api_reply *r, silo_error *err)
{
	targets *ts = need_targets(q, err);
	if (!ts)
		return -1;
	json_error_t je;
	json_t *b = json_loads(q->body, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(b)) {
		json_decref(b);
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "target: expected a JSON object: %s", je.text);
	}
	static const char *const known[] = {"name", "url", "token", "ca", "cert", "key", NULL};
	const char *k;
	json_t *v;
	json_object_foreach(b, k, v) {
		bool ok = false;
		for (int i = 0; known[i]; i++)
			ok |= !strcmp(k, known[i]);
		if (!ok) {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "target: unknown field '%.64s'", k);
			json_decref(b);
			return -1;
		}
	}
	tstore_target t = {.added_ms = now_realtime_ms()};
	const char *name = json_string_value(json_object_get(b, "name")), *url = json_string_value(json_object_get(b, "url")),
		   *tok = json_string_value(json_object_get(b, "token"));
	int rc = -1;
	size_t nl = name ? strlen(name) : 0;
	if (!name || !nl || nl > TSTORE_NAME_MAX || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != nl ||
	    name[0] == '.' || name[0] == '-') {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "name: expected 1-64 of [A-Za-z0-9_.-]");
		goto out;
	}
	if (!url || (strncmp(url, "https://", 8) && strncmp(url, "http://", 7)) || strlen(url) >= sizeof t.url ||
	    strpbrk(url, " \r\n?#@")) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "url: expected https://HOST:PORT");
		goto out;
	}
	if (!tok || strlen(tok) < 16 || strlen(tok) > 4096 || strpbrk(tok, "\r\n")) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "token: the target's bearer token (16-4096 characters, one line)");
		goto out;
	}
	snprintf(t.name, sizeof t.name, "%s", name);
	snprintf(t.url, sizeof t.url, "%s", url);
	size_t ul = strlen(t.url);
	if (ul && t.url[ul - 1] == '/')
		t.url[ul - 1] = '\0';
	t.token = xstrdup(tok);
	snprintf(t.state, sizeof t.state, "online");
	if (pem_member(b, "ca", &t.ca_pem, err) < 0 || pem_member(b, "cert", &t.cert_pem, err) < 0 ||
	    pem_member(b, "key", &t.key_pem, err) < 0)
		goto out;
	if (!t.cert_pem != !t.key_pem) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "cert and key go together (mutual TLS)");
		goto out;
	}
	json_t *info;
	if (check_target(ts, &t, &info, err) < 0) {
		silo_error_prefix(err, "target %s not added", name);
		goto out;
	}
	t.info_json = json_dumps(info, JSON_COMPACT);
	json_decref(info);
	t.last_ok_ms = now_realtime_ms();
	if (tstore_target_add(ts->store, &t, err) < 0)
		goto out;
	manager_audit(q->ctx->m, q->who.actor, NULL, "target-add", 0, NULL);
	rc = api_reply_json(r, 201, target_json(ts, &t));
out:
	tstore_target_clear(&t);
	json_decref(b);
	return rc;
}

int h_target_remove(api_req *q, api_reply *r, silo_error *err)
{
	targets *ts = need_targets(q, err);
	const char *name = api_cap(q, "target");
	int64_t nsb = 0, nq = 0, nd = 0;
	if (!ts || tstore_sandbox_count(ts->store, name, &nsb, err) < 0 || tstore_op_pending(ts->store, name, &nq, err) < 0 ||
	    tstore_deploy_count(ts->store, name, &nd, err) < 0)
		return -1;
	if ((nsb || nq || nd) && !api_query_true(q, "force"))
		return silo_fail(err, SILO_ERR_CONFLICT, 0,
				 "target %s still has %" PRId64 " sandboxes, %" PRId64 " deployments and %" PRId64
				 " queued operations through this silod (remove them, or ?force=true to forget them)",
				 name, nsb, nd, nq);
	if (tstore_target_remove(ts->store, name, err) < 0)
		return -1;
	tstore_sandbox *bs;
	size_t nb;
	if (tstore_sandbox_list(ts->store, name, &bs, &nb, err) == 0) {
		for (size_t i = 0; i < nb; i++)
			tstore_sandbox_remove(ts->store, bs[i].id, err);
		free(bs);
	}
	tstore_op *ops;
	size_t no;
	if (tstore_op_list(ts->store, name, true, &ops, &no, err) == 0) {
		for (size_t i = 0; i < no; i++)
			tstore_op_cancel(ts->store, ops[i].seq, err);
		tstore_ops_free(ops, no);
	}
	manager_audit(q->ctx->m, q->who.actor, NULL, "target-remove", 0, NULL);
	return api_reply_json(r, 200, json_pack("{s:s,s:b}", "name", name, "removed", 1));
}

int h_target_queue(api_req *q, api_reply *r, silo_error *err)
{
	targets *ts = need_targets(q, err);
	tstore_op *ops;
	size_t n;
	if (!ts || tstore_op_list(ts->store, api_cap(q, "target"), false, &ops, &n, err) < 0)
		return -1;
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_pack("{s:I,s:s,s:s,s:s,s:s,s:I,s:I,s:s?}", "seq", (json_int_t)ops[i].seq,
						   "method", ops[i].method, "path", ops[i].path, "idempotency_key",
						   ops[i].idem_key, "state", ops[i].state, "created_ms",
						   (json_int_t)ops[i].created_ms, "done_ms", (json_int_t)ops[i].done_ms,
						   "result", ops[i].result));
	tstore_ops_free(ops, n);
	return api_reply_json(r, 200, json_pack("{s:o}", "queue", a));
}

int h_target_queue_cancel(api_req *q, api_reply *r, silo_error *err)
{
	targets *ts = need_targets(q, err);
	uint64_t seq = 0;
	if (!ts || api_query_uint(q, "seq", INT64_MAX, &seq, err) < 0)
		return -1;
	if (!seq)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "seq: the queued operation to cancel");
	if (tstore_op_cancel(ts->store, (int64_t)seq, err) < 0)
		return -1;
	return api_reply_json(r, 200, json_pack("{s:I,s:s}", "seq", (json_int_t)seq, "state", "cancelled"));
}
