/* SPDX-License-Identifier: Apache-2.0
 * Deployment routes (see api_deploy.h).
 */
#include "daemon/api_deploy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "trust/trust.h"

#define PREFIX "/v1/deployments"
#define BUNDLES "/v1/bundles/"
#define MAX_SET 64

bool api_deploy_path(const char *url)
{
	return !strcmp(url, "/v1/usage") || !strcmp(url, PREFIX) ||
	       (!strncmp(url, PREFIX "/", strlen(PREFIX) + 1) && url[strlen(PREFIX) + 1]);
}

bool api_bundle_path(const char *url)
{
	return !strncmp(url, BUNDLES, strlen(BUNDLES));
}

__attribute__((format(printf, 4, 5))) static unsigned bad(silo_error *err, unsigned status, silo_code code,
							   const char *fmt, ...)
{
	memset(err, 0, sizeof *err);
	err->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof err->message, fmt, ap);
	va_end(ap);
	return status;
}

unsigned api_bundle_put(deployer *d, const char *url, int fd, api_query_fn query, void *qctx, const char *actor,
			json_t **out, silo_error *err)
{
	*out = NULL;
	if (!d)
		return bad(err, 503, SILO_ERR_NOT_SUPPORTED, "deployments are not enabled in this silod%s", "");
	const char *sig = query(qctx, "signature"); /* missing: refused (and audited) as unverified */
	if (sig && strlen(sig) > TRUST_SIG_FILE_MAX)
		return bad(err, 400, SILO_ERR_INVALID_CONFIG, "query parameter signature: longer than %d bytes",
			   TRUST_SIG_FILE_MAX);
	if (deploy_bundle_put(d, url + strlen(BUNDLES), fd, sig, sig ? strlen(sig) : 0, actor, out, err) < 0)
		return 0;
	return 201;
}

/* {"name", "team", "restart", "set": [..], "spec", "spec_signature", "bundle", "wait_s"}: strict
 * (unknown or duplicate keys and wrong types are refused, naming the field). */
static unsigned post(deployer *d, const char *body, size_t len, const char *actor, json_t **out, silo_error *err)
{
	json_error_t je;
	json_t *o = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &je);
	if (!o || !json_is_object(o)) {
		json_decref(o);
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "body: expected a JSON object (%s at byte %d)",
			  o ? "not an object" : je.text, o ? 0 : je.position);
		return 400;
	}
	static const char *const fields[] = {"name", "team", "restart", "set", "spec", "spec_signature", "bundle", "wait_s"};
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		size_t i;
		for (i = 0; i < ARRAY_SIZE(fields); i++)
			if (!strcmp(k, fields[i]))
				break;
		unsigned st = 0;
		if (i == ARRAY_SIZE(fields))
			st = bad(err, 400, SILO_ERR_INVALID_CONFIG,
				 "body: unknown field '%.64s' (expected name, team, restart, set, spec, spec_signature, "
				 "bundle, wait_s)",
				 k);
		else if (!strcmp(k, "wait_s") && (!json_is_integer(v) || json_integer_value(v) < 0 ||
						  json_integer_value(v) > 3600))
			st = bad(err, 400, SILO_ERR_INVALID_CONFIG, "body: wait_s: expected an integer in 0..3600");
		else if (strcmp(k, "set") != 0 && strcmp(k, "wait_s") != 0 && !json_is_string(v))
			st = bad(err, 400, SILO_ERR_INVALID_CONFIG, "body: %s: expected a string", k);
		if (st) {
			json_decref(o);   /* k belongs to o: formatted above */
			return st;
		}
	}
	deploy_req r = {
		.name = json_string_value(json_object_get(o, "name")),
		.team = json_string_value(json_object_get(o, "team")),
		.restart = json_string_value(json_object_get(o, "restart")),
		.spec_toml = json_string_value(json_object_get(o, "spec")),
		.spec_signature = json_string_value(json_object_get(o, "spec_signature")),
		.bundle = json_string_value(json_object_get(o, "bundle")),
		.wait_ms = (int)json_integer_value(json_object_get(o, "wait_s")) * 1000,
	};
	if (!r.name) {
		json_decref(o);
		return bad(err, 400, SILO_ERR_INVALID_CONFIG, "body: %s: required", "name");
	}
	const char *set[MAX_SET + 1] = {0};
	json_t *sa = json_object_get(o, "set");
	if (sa) {
		if (!json_is_array(sa) || json_array_size(sa) > MAX_SET) {
			json_decref(o);
			return bad(err, 400, SILO_ERR_INVALID_CONFIG, "body: set: expected an array of at most %s strings",
				   "64");
		}
		size_t i;
		json_array_foreach(sa, i, v) {
			if (!json_is_string(v)) {
				json_decref(o);
				return bad(err, 400, SILO_ERR_INVALID_CONFIG, "body: set[]: expected %s strings", "KEY=VALUE");
			}
			set[i] = json_string_value(v);
		}
		r.set = set;
	}
	int rc = deploy_create(d, &r, actor, out, err);
	json_decref(o);
	return rc < 0 ? 0 : 201;
}

static unsigned del(deployer *d, const char *name, api_query_fn query, void *qctx, const char *actor, json_t **out,
		    silo_error *err)
{
	int grace_ms = -1;
	const char *g = query(qctx, "grace");
	if (g) {
		char *end;
		errno = 0;
		unsigned long x = strtoul(g, &end, 10);
		if (!*g || *end || errno || x > 600 || g[0] == '-')
			return bad(err, 400, SILO_ERR_INVALID_CONFIG,
				   "query parameter grace: expected seconds 0..600, got '%.32s'", g);
		grace_ms = (int)x * 1000;
	}
	return deploy_remove(d, name, grace_ms, actor, out, err) < 0 ? 0 : 200;
}

unsigned api_deploy_handle(deployer *d, const char *method, const char *url, const char *body, size_t len,
			   api_query_fn query, void *qctx, const char *actor, json_t **out, silo_error *err)
{
	*out = NULL;
	unsigned st;
	if (!d)
		return bad(err, 503, SILO_ERR_NOT_SUPPORTED, "deployments are not enabled in this silod%s", "");
	if (!strcmp(url, "/v1/usage")) {
		if (strcmp(method, "GET") != 0)
			return bad(err, 405, SILO_ERR_INVALID_CONFIG, "method %s is not allowed on /v1/usage", method);
		return deploy_usage_json(d, out, err) < 0 ? 0 : 200;
	}
	if (!strcmp(url, PREFIX)) {
		if (!strcmp(method, "GET")) {
			json_t *a;
			if (deploy_list_json(d, &a, err) < 0)
				return 0;
			*out = json_pack("{s:o}", "deployments", a);
			return 200;
		}
		if (!strcmp(method, "POST"))
			return post(d, body, len, actor, out, err);
		return bad(err, 405, SILO_ERR_INVALID_CONFIG, "method %s is not allowed on " PREFIX, method);
	}
	const char *name = url + strlen(PREFIX) + 1;
	if (strchr(name, '/') || strlen(name) > 64)
		return bad(err, 404, SILO_ERR_VM_NOT_FOUND, "no deployment named '%.64s'", name);
	if (!strcmp(method, "GET"))
		st = deploy_get_json(d, name, out, err) < 0 ? 0 : 200;
	else if (!strcmp(method, "DELETE"))
		st = del(d, name, query, qctx, actor, out, err);
	else
		return bad(err, 405, SILO_ERR_INVALID_CONFIG, "method %s is not allowed on " PREFIX "/{name}", method);
	return st;
}
