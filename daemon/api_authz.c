/* SPDX-License-Identifier: Apache-2.0
 * silod authorization: tokens and policies wired to the manager (api_authz.h).
 */
#include "daemon/api_authz.h"

#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "daemon/api_opa.h"

struct api_authz {
	policy_set policies;
	token_set tokens;
	opa_client *opa;
	bool have_legacy;
	unsigned char legacy[crypto_hash_sha256_BYTES];
};

int authz_open(const authz_config *cfg, api_authz **out, silo_error *err)
{
	const char *policy_file = cfg->policy_file, *tokens_file = cfg->tokens_file, *legacy_token = cfg->legacy_token;
	if (sodium_init() < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "libsodium init failed");
	api_authz *a = xcalloc(1, sizeof *a);
	if (policy_file) {
		if (policy_set_load(policy_file, &a->policies, err) < 0) {
			silo_error_prefix(err, "--policy-file");
			free(a);
			return -1;
		}
	} else {
		policy_set_builtin(&a->policies);
	}
	if (tokens_file && token_set_load(tokens_file, &a->tokens, err) < 0) {
		silo_error_prefix(err, "--tokens-file");
		policy_set_free(&a->policies);
		free(a);
		return -1;
	}
	if (legacy_token && *legacy_token) {
		crypto_hash_sha256(a->legacy, (const unsigned char *)legacy_token, strlen(legacy_token));
		a->have_legacy = true;
	}
	if (cfg->opa_url && opa_open(cfg->opa_url, cfg->opa_timeout_ms, &a->opa, err) < 0) {
		authz_free(a);
		return -1;
	}
	*out = a;
	return 0;
}

void authz_free(api_authz *a)
{
	if (!a)
		return;
	policy_set_free(&a->policies);
	token_set_free(&a->tokens);
	opa_close(a->opa);
	sodium_memzero(a->legacy, sizeof a->legacy);
	free(a);
}

bool authz_has_tokens(const api_authz *a)
{
	return a->have_legacy || a->tokens.n > 0;
}

bool authz_authenticate(const api_authz *a, bool tcp, const char *authorization, const api_token **tok)
{
	*tok = NULL;
	if (!tcp)
		return true;
	if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
		return false;
	const char *secret = authorization + 7;
	/* Digests compared in constant time, every candidate visited. */
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, (const unsigned char *)secret, strlen(secret));
	bool legacy = a->have_legacy && sodium_memcmp(h, a->legacy, sizeof h) == 0;
	const api_token *t = token_lookup(&a->tokens, secret);
	if (legacy)
		return true;
	*tok = t;
	return t != NULL;
}

/* ---- denials ---- */

static int denied(manager *m, const char *actor, const char *id, const char *op, silo_error *err)
{
	if (id && *id)
		silo_error_set_vm(err, id);
	if (err->code == SILO_ERR_POLICY_DENIED && actor) {
		json_t *d = json_pack("{s:s,s:s}", "operation", op, "message", err->message);
		manager_audit(m, actor, id && *id ? id : NULL, "policy-denied", 0, d);
		json_decref(d);
	}
	return -1;
}

static const char *meta_get(const vm_spec *s, const char *key)
{
	for (size_t i = 0; i < s->n_metadata; i++)
		if (!strcmp(s->metadata[i].key, key))
			return s->metadata[i].value;
	return NULL;
}

/* The input document for external decisions (docs/policy.md). */
static json_t *opa_input(const char *op, const char *actor, const api_token *tok, const char *policy_name,
			 const char *id, const char *provider, const vm_spec *spec)
{
	json_t *meta = json_object(), *egress = json_array();
	for (size_t i = 0; i < spec->n_metadata; i++)
		json_object_set_new(meta, spec->metadata[i].key, json_string(spec->metadata[i].value));
	for (size_t i = 0; i < spec->n_egress; i++)
		json_array_append_new(egress, json_string(spec->egress[i]));
	json_t *sb = json_pack("{s:s,s:s?,s:i,s:i,s:b,s:o,s:i,s:i,s:o}", "name", spec->name, "provider",
			       provider && *provider ? provider : spec->provider, "vcpus", (int)spec->vcpus, "memory_mb",
			       (int)spec->memory_mb, "network", spec->network, "egress", egress, "pids_max",
			       (int)spec->pids_max, "timeout_s", (int)spec->timeout_s, "metadata", meta);
	if (id && *id)
		json_object_set_new(sb, "id", json_string(id));
	json_t *in = json_pack("{s:s,s:s,s:s,s:o}", "operation", op, "actor", actor ? actor : "silod", "policy",
			       policy_name, "sandbox", sb);
	if (tok)
		json_object_set_new(in, "token", json_string(tok->name));
	return in;
}

/* Host files a spec names are checked, and then used, as resolved paths, so a
 * symlink or ".." under an allowed prefix cannot point elsewhere. A path that
 * cannot be resolved but lies (lexically) under a granted prefix is refused
 * here: the provider must never follow what the check did not see. Paths
 * outside every prefix are left for the policy to refuse as given. */
typedef struct resolve_ctx {
	const policy *p;
	policy_caller who;
} resolve_ctx;

static int resolve_host_path(void *ud, const char *field, char **path, silo_error *err)
{
	const resolve_ctx *rc = ud;
	char *r = realpath(*path, NULL);
	if (r) {
		free(*path);
		*path = r;
		return 0;
	}
	int e = errno;
	if (policy_host_path_granted(rc->p, rc->who, *path))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, e, "%s \"%.200s\" cannot be resolved", field, *path);
	return 0;
}

static int resolve_host_paths(const policy *p, policy_caller who, vm_spec *spec, silo_error *err)
{
	if (!policy_host_paths_listed(p, who))
		return 0;   /* any host file (full access, built-in policy), or none at all */
	resolve_ctx rc = {p, who};
	return policy_each_host_path(spec, resolve_host_path, &rc, err);
}

static int admit_cb(void *ud, size_t owned, silo_error *err)
{
	return token_check_count(ud, owned, err);
}

int authz_create(api_authz *a, manager *m, const api_token *tok, const char *actor, vm_spec *spec,
		 mgr_create_opts *o, silo_error *err)
{
	if (tok && token_apply_create(tok, spec, err) < 0)
		return denied(m, actor, NULL, "create", err);
	const policy *p = policy_find(&a->policies, meta_get(spec, POLICY_METADATA_KEY), err);
	if (!p)
		return -1;   /* an unknown name is a bad request, not a denial */
	/* A policy's grants (host paths, taps, limits) are the operator's to hand
	 * out: a scoped token not bound to a policy gets the file's default and may
	 * not pick a more permissive one by metadata. */
	const policy *def = policy_find(&a->policies, NULL, err);
	if (tok && !tok->policy[0] && p != def) {
		silo_fail(err, SILO_ERR_POLICY_DENIED, 0,
			  "token \"%s\" rule policy: metadata.%s \"%.64s\": a token without a policy binding creates only "
			  "with the default policy \"%s\" (bind it: silo token create --policy NAME)",
			  tok->name, POLICY_METADATA_KEY, p->name, def->name);
		return denied(m, actor, NULL, "create", err);
	}
	/* A scoped token never gets the built-in policy's "any host file". */
	policy_caller who = tok ? POLICY_CALLER_TOKEN : POLICY_CALLER_FULL;
	if (resolve_host_paths(p, who, spec, err) < 0)
		return -1;
	if (policy_apply_spec_as(p, who, spec, err) < 0)
		return denied(m, actor, NULL, "create", err);
	if (a->opa && opa_decide(a->opa, opa_input("create", actor, tok, p->name, NULL, NULL, spec), err) < 0)
		return denied(m, actor, NULL, "create", err);
	if (tok && tok->max_sandboxes) {
		o->owner_key = TOKEN_METADATA_KEY;
		o->owner_value = tok->name;
		o->admit = admit_cb;
		o->admit_ud = (void *)tok;
	}
	return 0;
}

/* Which policy operation a token operation on a sandbox needs (-1: none). */
static int policy_op_for(token_op op)
{
	switch (op) {
	case TOKEN_OP_EXEC: return POLICY_OP_EXEC;
	case TOKEN_OP_FILE_READ: return POLICY_OP_FILE_READ;
	case TOKEN_OP_FILE_WRITE: return POLICY_OP_FILE_WRITE;
	default: return -1;
	}
}

int authz_sandbox(api_authz *a, manager *m, const api_token *tok, const char *actor, token_op op,
		  const char *id, const char *path, char *const *argv, char rid[SILO_ID_MAX], silo_error *err)
{
	vm_spec spec = {0};
	char provider[32];
	if (manager_sandbox_spec(m, id, rid, provider, &spec, err) < 0)
		return -1;
	int rc = 0;
	if (tok && token_check_sandbox(tok, op, rid, spec.name, provider, err) < 0) {
		rc = denied(m, actor, rid, token_op_name(op), err);
		goto out;
	}
	int pop = policy_op_for(op);
	if (pop >= 0) {
		const char *name = meta_get(&spec, POLICY_METADATA_KEY);
		const policy *p = policy_find(&a->policies, name, err);
		if (!p) {
			silo_fail(err, SILO_ERR_POLICY_DENIED, 0,
				  "policy \"%.64s\" rule policy: the sandbox's policy is not defined by the policy file "
				  "any more",
				  name);
			rc = denied(m, actor, rid, token_op_name(op), err);
			goto out;
		}
		if (pop == POLICY_OP_EXEC && !path)
			path = spec.workdir ? spec.workdir : "/";   /* what an exec without a cwd uses */
		if (policy_check_path(p, (policy_op)pop, path, err) < 0) {
			rc = denied(m, actor, rid, token_op_name(op), err);
			goto out;
		}
		if (a->opa) {
			json_t *in = opa_input(token_op_name(op), actor, tok, p->name, rid, provider, &spec);
			json_object_set_new(in, "path", json_string(path));
			if (argv) {
				json_t *av = json_array();
				for (char *const *x = argv; *x; x++)
					json_array_append_new(av, json_string(*x));
				json_object_set_new(in, "argv", av);
			}
			if (opa_decide(a->opa, in, err) < 0) {
				rc = denied(m, actor, rid, token_op_name(op), err);
				goto out;
			}
		}
	}
out:
	spec_free(&spec);
	return rc;
}

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

int authz_view(api_authz *a, manager *m, const api_token *tok, const char *actor, token_op op, json_t *view,
	       silo_error *err)
{
	(void)a;
	if (!tok)
		return 0;
	if (token_check_sandbox(tok, op, jstr(view, "id"), jstr(view, "name"), jstr(view, "provider"), err) < 0)
		return denied(m, actor, jstr(view, "id"), token_op_name(op), err);
	return 0;
}

int authz_op(api_authz *a, manager *m, const api_token *tok, const char *actor, token_op op, silo_error *err)
{
	(void)a;
	if (tok && token_check_op(tok, op, err) < 0)
		return denied(m, actor, NULL, token_op_name(op), err);
	return 0;
}

int authz_events(api_authz *a, manager *m, const api_token *tok, const char *actor, const char *filter,
		 char rid[SILO_ID_MAX], silo_error *err)
{
	snprintf(rid, SILO_ID_MAX, "%s", filter ? filter : "");
	if (!tok)
		return 0;
	if (token_check_op(tok, TOKEN_OP_EVENTS, err) < 0)
		return denied(m, actor, NULL, "events", err);
	if (!token_has_scope(tok))
		return 0;
	if (!filter || !*filter) {
		token_deny(tok, tok->n_ids ? "sandbox_ids" : tok->n_prefixes ? "name_prefixes" : "providers", err,
			   "the token is limited to some sandboxes: subscribe to one with ?sandbox=ID");
		return denied(m, actor, NULL, "events", err);
	}
	json_t *o;
	if (manager_get_json(m, filter, &o, err) < 0)
		return -1;
	int rc = authz_view(a, m, tok, actor, TOKEN_OP_EVENTS, o, err);
	if (rc == 0)
		snprintf(rid, SILO_ID_MAX, "%s", jstr(o, "id"));
	json_decref(o);
	return rc;
}

void authz_audit_denial(manager *m, const char *actor, const char *id, const char *op, silo_error *err)
{
	denied(m, actor, id, op, err);
}
