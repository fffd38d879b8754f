/* SPDX-License-Identifier: Apache-2.0
 * E2B's control plane (e2b-dev/E2B spec/openapi.yml) over the manager: create,
 * list (v1 and v2 with filters and pagination), get, kill, timeout and
 * refreshes, pause, resume and connect. Rules:
 * - A create is silod's create: the body becomes a silod spec (JSON, parsed by
 *   api_spec_from_json like POST /v1/sandboxes), then the caller's token scope
 *   and the policy (authz_create), then manager_create. templateID names an
 *   image of the image store; "base" (and no templateID) is the provider's
 *   default root file system. It is kept as metadata "e2b.template"; metadata
 *   keys beginning "e2b." are ours (refused from clients, hidden in views).
 * - The E2B timeout is the sandbox's lifetime (spec timeout_s), moved by
 *   setTimeout/connect through manager_set_lifetime.
 * - Every operation on an existing sandbox goes through authz_sandbox with the
 *   caller's token (scope: ids, name prefixes, providers; audited denials).
 * - A sandbox created through silod's own API is visible here too (its
 *   templateID is its image, or "base").
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "daemon/api_parse.h"
#include "daemon/e2b.h"
#include "e2b/connect.h"
#include "image/image.h"

#define META_TEMPLATE "e2b.template"
#define TEMPLATE_MAX 128

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static int parse_body(e2b_req *q, json_t **out, silo_error *err)
{
	*out = NULL;
	if (!q->len) {
		*out = json_object();
		return 0;
	}
	*out = e2b_json_parse(q->body, q->len, err);
	return *out ? 0 : -1;
}

/* timeout: seconds, 1..E2B_MAX_TIMEOUT_S; *present false when absent. */
static int body_timeout(json_t *o, uint32_t *t, bool *present, silo_error *err)
{
	json_t *v = json_object_get(o, "timeout");
	*present = v && !json_is_null(v);
	if (!*present)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > E2B_MAX_TIMEOUT_S)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "timeout: expected seconds, 0 to %d", E2B_MAX_TIMEOUT_S);
	*t = (uint32_t)json_integer_value(v);
	return 0;
}

static void iso_time(uint64_t ms, char *buf, size_t len)
{
	format_time_ms(ms, buf, len);
}

/* The E2B view (ListedSandbox / SandboxDetail) of silod's JSON view. */
static json_t *e2b_view(e2b_req *q, json_t *v, bool detail)
{
	const char *id = jstr(v, "id");
	json_t *meta = json_object();
	const char *tmpl = NULL;
	const char *k;
	json_t *val;
	json_object_foreach(json_object_get(v, "metadata"), k, val) {
		if (!strcmp(k, META_TEMPLATE))
			tmpl = json_string_value(val);
		else if (strncmp(k, "e2b.", 4))
			json_object_set(meta, k, val);
	}
	uint64_t created = 0, end = 0;
	silo_error e2;
	(void)manager_lifetime(q->m, id, &created, &end, &e2);
	char started[40], ends[40];
	iso_time(created, started, sizeof started);
	if (end)
		iso_time(end, ends, sizeof ends);
	else
		snprintf(ends, sizeof ends, "9999-12-31T23:59:59Z");
	const char *state = jstr(v, "state");
	json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:O,s:O,s:i,s:o,s:s,s:n}", "sandboxID", id, "templateID",
			      tmpl ? tmpl : "base", "alias", tmpl ? tmpl : "base", "clientID", "silo", "startedAt",
			      started, "endAt", ends, "envdVersion", E2B_ENVD_VERSION, "cpuCount",
			      json_object_get(v, "vcpus") ? json_object_get(v, "vcpus") : json_integer(1), "memoryMB",
			      json_object_get(v, "memory_mb") ? json_object_get(v, "memory_mb") : json_integer(0),
			      "diskSizeMB", 0, "metadata", meta, "state", !strcmp(state, "paused") ? "paused" : "running",
			      "domain");
	if (detail) {
		char tok[65];
		e2b_envd_token(q->srv, id, tok);
		json_object_set_new(o, "envdAccessToken", json_string(tok));
	}
	return o;
}

/* The new-sandbox answer (Sandbox in openapi.yml). */
static json_t *sandbox_answer(e2b_req *q, const char *id, const char *tmpl)
{
	char tok[65];
	e2b_envd_token(q->srv, id, tok);
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:n}", "sandboxID", id, "templateID", tmpl, "alias", tmpl, "clientID",
			 "silo", "envdVersion", E2B_ENVD_VERSION, "envdAccessToken", tok, "domain");
}

static int copy_kv(json_t *body, const char *from, json_t *spec, const char *to, bool check_ours, silo_error *err)
{
	json_t *v = json_object_get(body, from);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: expected an object of strings", from);
	const char *k;
	json_t *x;
	json_object_foreach(v, k, x) {
		if (check_ours && !strncmp(k, "e2b.", 4))
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s.%.64s: keys beginning 'e2b.' are reserved",
					 from, k);
	}
	json_t *dst = json_object_get(spec, to);
	if (!dst) {
		dst = json_object();
		json_object_set_new(spec, to, dst);
	}
	json_object_update(dst, v);
	return 0;
}

static bool template_ok(const char *t)
{
	size_t n = strlen(t);
	return n && n <= TEMPLATE_MAX && strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:/@") == n;
}

int e2b_h_create(e2b_req *q, e2b_reply *r, silo_error *err)
{
	json_t *body;
	if (parse_body(q, &body, err) < 0)
		return -1;
	int rc = -1;
	json_t *spec_json = json_object();
	vm_spec spec = {0};
	bool spec_ok = false;
	const char *tmpl = "base";
	uint32_t timeout = E2B_DEFAULT_TIMEOUT_S;
	bool present;
	json_t *t = json_object_get(body, "templateID");
	if (t && !json_is_null(t)) {
		if (!json_is_string(t) || !template_ok(json_string_value(t))) {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				  "templateID: expected an image name (1-%d bytes of [A-Za-z0-9._-:/@])", TEMPLATE_MAX);
			goto out;
		}
		tmpl = json_string_value(t);
	}
	if (body_timeout(body, &timeout, &present, err) < 0)
		goto out;
	if (!timeout)
		timeout = E2B_DEFAULT_TIMEOUT_S;
	if (json_is_true(json_object_get(body, "autoPause"))) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
			  "autoPause: not supported by Silo's E2B endpoint (a sandbox ends at its timeout; pause it "
			  "explicitly)");
		goto out;
	}
	json_t *net = json_object_get(body, "network");
	if (net && !json_is_null(net) && !(json_is_object(net) && json_object_size(net) == 0)) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
			  "network: egress rules are not supported by Silo's E2B endpoint (policies restrict networking)");
		goto out;
	}
	json_t *inet = json_object_get(body, "allow_internet_access");
	if (inet && !json_is_null(inet) && !json_is_boolean(inet)) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "allow_internet_access: expected true or false");
		goto out;
	}
	/* Silo sandboxes have no network unless asked; asking is subject to the policy */
	if (json_is_true(inet))
		json_object_set_new(spec_json, "network", json_true());
	if (json_object_get(body, "volumeMounts")) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "volumeMounts: not supported by Silo's E2B endpoint");
		goto out;
	}
	if (copy_kv(body, "envVars", spec_json, "env", false, err) < 0 ||
	    copy_kv(body, "metadata", spec_json, "metadata", true, err) < 0)
		goto out;
	json_t *meta = json_object_get(spec_json, "metadata");
	if (!meta) {
		meta = json_object();
		json_object_set_new(spec_json, "metadata", meta);
	}
	json_object_set_new(meta, META_TEMPLATE, json_string(tmpl));
	/* "base" is the image "base" when the store has one (scripts/prepare-images.sh
	 * builds it: Debian with bash, as E2B's base), else the provider's default */
	image_entry ie;
	silo_error e2;
	bool has_image = image_lookup(tmpl, &ie, &e2) == 0;
	if (has_image)
		image_entry_free(&ie);
	if (strcmp(tmpl, "base") || has_image)
		json_object_set_new(spec_json, "image", json_string(tmpl));
	if (e2b_provider(q->srv))
		json_object_set_new(spec_json, "provider", json_string(e2b_provider(q->srv)));
	json_object_set_new(spec_json, "timeout_s", json_integer(timeout));
	size_t n;
	char *text = json_dumps(spec_json, JSON_COMPACT);
	n = strlen(text);
	int prc = api_spec_from_json(text, n, &spec, err);
	free(text);
	if (prc < 0)
		goto out;
	spec_ok = true;
	mgr_create_opts o = {.actor = q->actor};
	if (authz_create(q->authz, q->m, q->tok, q->actor, &spec, &o, err) < 0)
		goto out;
	char id[SILO_ID_MAX] = "";
	if (manager_create(q->m, &spec, &o, id, err) < 0) {
		if (err->code == SILO_ERR_FILE_NOT_FOUND || (err->code == SILO_ERR_INVALID_CONFIG && strstr(err->message, "image")))
			silo_error_prefix(err, "template '%s'", tmpl);
		goto out;
	}
	r->status = 201;
	r->json = sandbox_answer(q, id, tmpl);
	rc = 0;
out:
	if (spec_ok)
		spec_free(&spec);
	json_decref(spec_json);
	json_decref(body);
	return rc;
}

/* One level of form decoding ('+' is a space, %XX a byte); NULL when malformed
 * or when it yields a NUL. */
static char *form_decode(const char *in)
{
	size_t n = strlen(in);
	char *o = xmalloc(n + 1), *w = o;
	for (size_t i = 0; i < n; i++) {
		if (in[i] == '+') {
			*w++ = ' ';
		} else if (in[i] == '%') {
			unsigned v;
			if (i + 2 >= n || sscanf(in + i + 1, "%2x", &v) != 1 || !isxdigit((unsigned char)in[i + 1]) ||
			    !isxdigit((unsigned char)in[i + 2]) || !v) {
				free(o);
				return NULL;
			}
			*w++ = (char)v;
			i += 2;
		} else {
			*w++ = in[i];
		}
	}
	*w = 0;
	return o;
}

/* The SDK sends each key and value encodeURIComponent'd inside a form-encoded
 * "k=v&..." (itself the query value): two levels below the query's own. */
static char *url_decode_dup(const char *in)
{
	char *once = form_decode(in);
	char *twice = once ? form_decode(once) : NULL;
	free(once);
	return twice;
}

/* Does v carry every metadata pair of the query "k=v&k2=v2" (url-encoded)? */
static bool meta_match(json_t *v, const char *query)
{
	if (!query || !*query)
		return true;
	json_t *meta = json_object_get(v, "metadata");
	char *dup = xstrdup(query), *save = NULL;
	bool ok = true;
	for (char *pair = strtok_r(dup, "&", &save); pair && ok; pair = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(pair, '=');
		if (!eq) {
			ok = false;
			break;
		}
		*eq = 0;
		char *k = url_decode_dup(pair), *val = url_decode_dup(eq + 1);
		const char *have = json_string_value(json_object_get(meta, k ? k : ""));
		ok = k && val && strncmp(k, "e2b.", 4) && have && !strcmp(have, val);
		free(k);
		free(val);
	}
	free(dup);
	return ok;
}

static bool state_match(json_t *v, const char *states)
{
	const char *st = jstr(v, "state");
	const char *want = !strcmp(st, "paused") ? "paused" : "running";
	if (!states || !*states)
		return true;
	char *dup = xstrdup(states), *save = NULL;
	bool ok = false;
	for (char *s = strtok_r(dup, ",", &save); s && !ok; s = strtok_r(NULL, ",", &save))
		ok = !strcmp(s, want);
	free(dup);
	return ok;
}

static int cmp_started(const void *a, const void *b)
{
	json_t *const *x = a, *const *y = b;
	int c = strcmp(jstr(*x, "startedAt"), jstr(*y, "startedAt"));
	return c ? c : strcmp(jstr(*x, "sandboxID"), jstr(*y, "sandboxID"));
}

static int list(e2b_req *q, e2b_reply *r, bool v2, silo_error *err)
{
	uint64_t limit = 1000;
	const char *ls = e2b_query(q, "limit");
	if (ls) {
		char *end;
		limit = strtoull(ls, &end, 10);
		if (*end || !*ls || limit < 1 || limit > 1000)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "limit: expected 1 to 1000");
	}
	const char *states = e2b_query(q, "state"), *meta = e2b_query(q, "metadata"), *after = e2b_query(q, "nextToken");
	const char *tmpl = e2b_query(q, "template");
	if (states) {
		char *dup = xstrdup(states), *save = NULL;
		for (char *s = strtok_r(dup, ",", &save); s; s = strtok_r(NULL, ",", &save))
			if (strcmp(s, "running") && strcmp(s, "paused")) {
				free(dup);
				return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "state: expected running and/or paused");
			}
		free(dup);
	}
	mgr_list_filter f = {0};
	json_t *all;
	if (manager_list_json(q->m, &f, &all, err) < 0)
		return -1;
	size_t n = json_array_size(all), k = 0;
	json_t **v = xcalloc(n ? n : 1, sizeof *v);
	for (size_t i = 0; i < n; i++) {
		json_t *s = json_array_get(all, i);
		silo_error e2;
		if (authz_view(q->authz, q->m, q->tok, NULL, TOKEN_OP_LIST, s, &e2) < 0)
			continue;
		if (!meta_match(s, meta) || !state_match(s, v2 ? states : NULL))
			continue;
		json_t *view = e2b_view(q, s, false);
		if (tmpl && *tmpl && strcmp(jstr(view, "templateID"), tmpl)) {
			json_decref(view);
			continue;
		}
		v[k++] = view;
	}
	json_decref(all);
	qsort(v, k, sizeof *v, cmp_started);
	json_t *out = json_array();
	size_t start = 0;
	if (after && *after) {
		/* the token is the last id of the previous page */
		start = k;
		for (size_t i = 0; i < k; i++)
			if (!strcmp(jstr(v[i], "sandboxID"), after)) {
				start = i + 1;
				break;
			}
	}
	size_t taken = 0;
	for (size_t i = start; i < k; i++) {
		if (taken == limit) {
			snprintf(r->next_token, sizeof r->next_token, "%s", jstr(v[i - 1], "sandboxID"));
			break;
		}
		json_array_append(out, v[i]);
		taken++;
	}
	for (size_t i = 0; i < k; i++)
		json_decref(v[i]);
	free(v);
	r->json = out;
	return 0;
}

int e2b_h_list(e2b_req *q, e2b_reply *r, silo_error *err)
{
	return list(q, r, true, err);
}

int e2b_h_list_v1(e2b_req *q, e2b_reply *r, silo_error *err)
{
	return list(q, r, false, err);
}

/* The sandbox of {id}, in the caller's scope for op; rid = its id. */
static int resolve(e2b_req *q, token_op op, char rid[SILO_ID_MAX], silo_error *err)
{
	const char *id = e2b_cap(q, "id");
	if (authz_sandbox(q->authz, q->m, q->tok, q->actor, op, id, NULL, NULL, rid, err) < 0) {
		if (err->code == SILO_ERR_VM_NOT_FOUND)
			silo_fail(err, SILO_ERR_VM_NOT_FOUND, 0, "sandbox %s not found", id);
		return -1;
	}
	return 0;
}

/* resolve() for inspection, with the sandbox's view in *v. */
static int inspect(e2b_req *q, char rid[SILO_ID_MAX], json_t **v, silo_error *err)
{
	if (resolve(q, TOKEN_OP_INSPECT, rid, err) < 0)
		return -1;
	return manager_get_json(q->m, rid, v, err);
}

int e2b_h_get(e2b_req *q, e2b_reply *r, silo_error *err)
{
	char rid[SILO_ID_MAX];
	json_t *v;
	if (inspect(q, rid, &v, err) < 0)
		return -1;
	r->json = e2b_view(q, v, true);
	json_decref(v);
	return 0;
}

/* One sample, now (Silo keeps no time series): memory as the cgroup reports it,
 * CPU as the average since the sandbox started. */
int e2b_h_metrics(e2b_req *q, e2b_reply *r, silo_error *err)
{
	char rid[SILO_ID_MAX];
	json_t *v;
	if (inspect(q, rid, &v, err) < 0)
		return -1;
	json_t *u = json_object_get(v, "usage");
	uint64_t created = 0, end = 0, now = now_realtime_ms();
	silo_error e2;
	(void)manager_lifetime(q->m, rid, &created, &end, &e2);
	json_int_t vcpus = json_integer_value(json_object_get(v, "vcpus"));
	double cpu_ns = (double)json_integer_value(json_object_get(u, "cpu_ns"));
	double wall_ns = now > created ? (double)(now - created) * 1e6 : 1;
	double pct = vcpus > 0 ? cpu_ns / (wall_ns * (double)vcpus) * 100.0 : 0;
	char ts[40];
	iso_time(now, ts, sizeof ts);
	json_t *m = json_pack("{s:s,s:I,s:I,s:f,s:I,s:I,s:I,s:I,s:I}", "timestamp", ts, "timestampUnix",
			      (json_int_t)(now / 1000), "cpuCount", vcpus, "cpuUsedPct", pct > 100 ? 100.0 : pct, "memUsed",
			      json_integer_value(json_object_get(u, "memory_bytes")), "memTotal",
			      json_integer_value(json_object_get(v, "memory_mb")) * 1048576, "memCache", (json_int_t)0,
			      "diskUsed", (json_int_t)0, "diskTotal", (json_int_t)0);
	json_decref(v);
	r->json = json_pack("[o]", m);
	return 0;
}

int e2b_h_kill(e2b_req *q, e2b_reply *r, silo_error *err)
{
	char rid[SILO_ID_MAX];
	if (resolve(q, TOKEN_OP_DELETE, rid, err) < 0 || manager_delete(q->m, rid, q->actor, 0, err) < 0)
		return -1;
	r->status = 204;
	return 0;
}

static int set_timeout(e2b_req *q, const char *field, silo_error *err)
{
	json_t *body;
	if (parse_body(q, &body, err) < 0)
		return -1;
	json_t *v = json_object_get(body, field);
	int rc = -1;
	char rid[SILO_ID_MAX];
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > E2B_MAX_TIMEOUT_S) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: expected seconds, 0 to %d", field, E2B_MAX_TIMEOUT_S);
		goto out;
	}
	if (resolve(q, TOKEN_OP_EXEC, rid, err) < 0 ||
	    manager_set_lifetime(q->m, rid, (uint32_t)json_integer_value(v), NULL, err) < 0)
		goto out;
	rc = 0;
out:
	json_decref(body);
	return rc;
}

int e2b_h_timeout(e2b_req *q, e2b_reply *r, silo_error *err)
{
	r->status = 204;
	return set_timeout(q, "timeout", err);
}

int e2b_h_refresh(e2b_req *q, e2b_reply *r, silo_error *err)
{
	r->status = 204;
	return set_timeout(q, "duration", err);
}

static bool is_paused(e2b_req *q, const char *rid)
{
	json_t *v;
	silo_error e2;
	if (manager_get_json(q->m, rid, &v, &e2) < 0)
		return false;
	bool p = !strcmp(jstr(v, "state"), "paused");
	json_decref(v);
	return p;
}

int e2b_h_pause(e2b_req *q, e2b_reply *r, silo_error *err)
{
	char rid[SILO_ID_MAX];
	if (resolve(q, TOKEN_OP_EXEC, rid, err) < 0)
		return -1;
	if (is_paused(q, rid))
		return silo_fail(err, SILO_ERR_CONFLICT, 0, "sandbox %s is already paused", rid);
	if (manager_pause(q->m, rid, q->actor, err) < 0)
		return -1;
	r->status = 204;
	return 0;
}

/* Resume if paused, then apply the body's timeout (connect, resume). */
static int wake(e2b_req *q, e2b_reply *r, bool must_be_paused, silo_error *err)
{
	json_t *body;
	if (parse_body(q, &body, err) < 0)
		return -1;
	int rc = -1;
	uint32_t timeout = 0;
	bool present;
	char rid[SILO_ID_MAX];
	json_t *v = NULL;
	if (body_timeout(body, &timeout, &present, err) < 0 || resolve(q, TOKEN_OP_EXEC, rid, err) < 0)
		goto out;
	bool paused = is_paused(q, rid);
	if (must_be_paused && !paused) {
		silo_fail(err, SILO_ERR_CONFLICT, 0, "sandbox %s is not paused", rid);
		goto out;
	}
	if (paused) {
		if (!q->tok) {
			if (manager_resume(q->m, rid, q->actor, err) < 0)
				goto out;
		} else {
			silo_fail(err, SILO_ERR_POLICY_DENIED, 0, "resuming a paused sandbox needs a full-access token");
			goto out;
		}
	}
	if (present && timeout && manager_set_lifetime(q->m, rid, timeout, NULL, err) < 0)
		goto out;
	if (manager_get_json(q->m, rid, &v, err) < 0)
		goto out;
	json_t *view = e2b_view(q, v, true);
	r->json = sandbox_answer(q, rid, jstr(view, "templateID"));
	json_decref(view);
	r->status = paused ? 201 : 200;
	rc = 0;
out:
	json_decref(v);
	json_decref(body);
	return rc;
}

int e2b_h_connect(e2b_req *q, e2b_reply *r, silo_error *err)
{
	return wake(q, r, false, err);
}

int e2b_h_resume(e2b_req *q, e2b_reply *r, silo_error *err)
{
	return wake(q, r, true, err);
}
