/* SPDX-License-Identifier: Apache-2.0
 * silod authorization (docs/policy.md): who may call (bearer tokens, scoped
 * by a tokens file) and what a sandbox may do (policies). Wraps the pure
 * engines of lib/policy with the manager: every denial is POLICY_DENIED,
 * written to the audit log ("policy-denied") and counted where the error
 * reply is built (api_reply_error: manager_note_error -> silo_policy_denials_total).
 */
#ifndef SILO_DAEMON_API_AUTHZ_H
#define SILO_DAEMON_API_AUTHZ_H

#include <jansson.h>
#include <stdbool.h>

#include "core/manager.h"
#include "policy/policy.h"
#include "policy/token.h"

typedef struct api_authz api_authz;

typedef struct authz_config {
	const char *policy_file;       /* NULL = built-in default policy */
	const char *tokens_file;       /* NULL = no scoped tokens */
	const char *legacy_token;      /* the full-access token of --token-file, or NULL */
	const char *opa_url;           /* external decisions (api_opa.h), or NULL */
	long opa_timeout_ms;           /* 0 = 2000 */
} authz_config;

int authz_open(const authz_config *cfg, api_authz **out, silo_error *err);
void authz_free(api_authz *a);
/* Is there any token a TCP client could present? */
bool authz_has_tokens(const api_authz *a);

/* TCP requests must carry a known bearer token; *tok is NULL for the legacy
 * full-access token. Unix-socket requests are trusted (file mode) and get
 * *tok = NULL. */
bool authz_authenticate(const api_authz *a, bool tcp, const char *authorization, const api_token **tok);

/* POST /v1/sandboxes: token scope (create, provider, name prefix, policy),
 * then the policy (limits applied to spec). Fills the quota fields of o. */
int authz_create(api_authz *a, manager *m, const api_token *tok, const char *actor, vm_spec *spec,
		 mgr_create_opts *o, silo_error *err);

/* An operation on a live sandbox. For exec, path is the requested working
 * directory (NULL = "/", what the agent uses) and argv the command; for file
 * operations the guest path; NULL otherwise. rid receives the resolved id. */
int authz_sandbox(api_authz *a, manager *m, const api_token *tok, const char *actor, token_op op,
		  const char *id, const char *path, char *const *argv, char rid[SILO_ID_MAX], silo_error *err);

/* A sandbox seen through its JSON view (GET, logs, list): is it in scope? */
int authz_view(api_authz *a, manager *m, const api_token *tok, const char *actor, token_op op, json_t *view,
	       silo_error *err);
/* Only the token's operation (list, metrics). */
int authz_op(api_authz *a, manager *m, const api_token *tok, const char *actor, token_op op, silo_error *err);
/* GET /v1/events: a token limited to some sandboxes must subscribe to one of
 * them (?sandbox=ID or name); rid receives its id (or sandbox unchanged). */
int authz_events(api_authz *a, manager *m, const api_token *tok, const char *actor, const char *filter,
		 char rid[SILO_ID_MAX], silo_error *err);
/* Audit a POLICY_DENIED raised elsewhere (the manager's quota check). */
void authz_audit_denial(manager *m, const char *actor, const char *id, const char *op, silo_error *err);

#endif
