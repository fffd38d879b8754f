/* SPDX-License-Identifier: Apache-2.0
 * silod handlers for deployments (handlers.h; rows in routes.c,
 * docs/deployments.md, docs/openapi.yaml):
 *   GET/POST /v1/deployments, GET/DELETE /v1/deployments/{name}, GET /v1/usage,
 *   PUT /v1/bundles/{sha256}?signature=MINISIG (raw tar body: a signed bundle).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "daemon/api_parse.h"
#include "daemon/handlers.h"
#include "trust/trust.h"

#define MAX_SET 64
#define WAIT_MAX_S 3600
#define GRACE_MAX_S 600

static deployer *deployments(const api_req *q, silo_error *err)
{
	if (!q->ctx->deploy)
		silo_fail(err, SILO_ERR_NOT_SUPPORTED, 0, "deployments are not enabled in this silod");
	return q->ctx->deploy;
}

int h_bundle_put(api_req *q, api_reply *r, silo_error *err)
{
	deployer *d = deployments(q, err);
	if (!d)
		return -1;
	const char *sig = api_query(q, "signature"); /* missing: refused (and audited) as unverified */
	if (sig && strlen(sig) > TRUST_SIG_FILE_MAX)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "query parameter signature: longer than %d bytes",
				 TRUST_SIG_FILE_MAX);
	json_t *out;
	if (deploy_bundle_put(d, api_cap(q, "sha256"), q->body_fd, sig, sig ? strlen(sig) : 0, q->who.actor, &out,
			      err) < 0)
		return -1;
	return api_reply_json(r, 201, out);
}

/* The types of the body's fields (api_json_body refused unknown and
 * duplicate ones), naming the field. */
static int check_fields(json_t *o, silo_error *err)
{
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		if (!strcmp(k, "wait_s") &&
		    (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > WAIT_MAX_S))
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "body: wait_s: expected an integer in 0..%d",
					 WAIT_MAX_S);
		if (strcmp(k, "set") != 0 && strcmp(k, "wait_s") != 0 && !json_is_string(v))
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "body: %s: expected a string", k);
	}
	if (!json_object_get(o, "name"))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "body: name: required");
	json_t *sa = json_object_get(o, "set");
	if (sa && (!json_is_array(sa) || json_array_size(sa) > MAX_SET))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "body: set: expected an array of at most %d strings",
				 MAX_SET);
	size_t i;
	json_array_foreach(sa, i, v)
		if (!json_is_string(v))
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "body: set[]: expected KEY=VALUE strings");
	return 0;
}

int h_deploy_create(api_req *q, api_reply *r, silo_error *err)
{
	deployer *d = deployments(q, err);
	if (!d)
		return -1;
	static const char *const fields[] = {"name", "team", "restart", "set", "spec", "spec_signature", "bundle",
					     "wait_s", NULL};
	json_t *o = api_json_body(q->body, q->len, fields, false, err), *out;
	if (!o)
		return -1;
	if (check_fields(o, err) < 0) {
		json_decref(o);
		return -1;
	}
	deploy_req dr = {
		.name = json_string_value(json_object_get(o, "name")),
		.team = json_string_value(json_object_get(o, "team")),
		.restart = json_string_value(json_object_get(o, "restart")),
		.spec_toml = json_string_value(json_object_get(o, "spec")),
		.spec_signature = json_string_value(json_object_get(o, "spec_signature")),
		.bundle = json_string_value(json_object_get(o, "bundle")),
		.wait_ms = (int)json_integer_value(json_object_get(o, "wait_s")) * 1000,
	};
	const char *set[MAX_SET + 1] = {0};
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(o, "set"), i, v)
		set[i] = json_string_value(v);
	if (json_object_get(o, "set"))
		dr.set = set;
	int rc = deploy_create(d, &dr, q->who.actor, &out, err);
	json_decref(o);
	return rc < 0 ? -1 : api_reply_json(r, 201, out);
}

int h_deploy_list(api_req *q, api_reply *r, silo_error *err)
{
	deployer *d = deployments(q, err);
	json_t *a;
	if (!d || deploy_list_json(d, &a, err) < 0)
		return -1;
	return api_reply_json(r, 200, json_pack("{s:o}", "deployments", a));
}

int h_deploy_get(api_req *q, api_reply *r, silo_error *err)
{
	deployer *d = deployments(q, err);
	json_t *out;
	if (!d || deploy_get_json(d, api_cap(q, "name"), &out, err) < 0)
		return -1;
	return api_reply_json(r, 200, out);
}

int h_deploy_delete(api_req *q, api_reply *r, silo_error *err)
{
	deployer *d = deployments(q, err);
	uint64_t grace = UINT64_MAX;
	json_t *out;
	if (!d || api_query_uint(q, "grace", GRACE_MAX_S, &grace, err) < 0 ||
	    deploy_remove(d, api_cap(q, "name"), grace == UINT64_MAX ? -1 : (int)grace * 1000, q->who.actor, &out, err) < 0)
		return -1;
	return api_reply_json(r, 200, out);
}

int h_usage(api_req *q, api_reply *r, silo_error *err)
{
	deployer *d = deployments(q, err);
	json_t *out;
	if (!d || deploy_usage_json(d, &out, err) < 0)
		return -1;
	return api_reply_json(r, 200, out);
}
