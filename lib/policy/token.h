/* SPDX-License-Identifier: Apache-2.0
 * Scoped API tokens for silod (docs/policy.md): a pure engine. A tokens file
 * (TOML, our own parser) lists tokens by the SHA-256 of their secret:
 *
 *   [[tokens]]
 *   name = "ci"                              # 1-64 of [A-Za-z0-9_-], unique
 *   sha256 = "64 hex digits"                 # SHA-256 of the bearer secret
 *   operations = ["create", "exec", "delete", "inspect", "list"]   # default: all
 *   providers = ["namespace"]                # sandboxes of these providers only
 *   sandbox_ids = ["sb-0123456789ab"]        # these sandboxes only (no create)
 *   name_prefixes = ["ci-"]                  # sandboxes whose name starts so
 *   max_sandboxes = 3                        # live sandboxes created with it
 *   policy = "strict"                        # the policy of what it creates
 *
 * Denials are POLICY_DENIED: token "NAME" rule RULE: ...
 */
#ifndef SILO_POLICY_TOKEN_H
#define SILO_POLICY_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "spec/spec.h"

#define TOKEN_NAME_MAX 64
#define TOKEN_MAX_TOKENS 1024
#define TOKEN_MAX_LIST 256
/* Spec metadata key recording the token a sandbox was created with (max_sandboxes). */
#define TOKEN_METADATA_KEY "silo-token"

typedef enum token_op {
	TOKEN_OP_CREATE = 0,
	TOKEN_OP_DELETE,
	TOKEN_OP_EXEC,
	TOKEN_OP_FILE_READ,
	TOKEN_OP_FILE_WRITE,
	TOKEN_OP_INSPECT,       /* GET a sandbox, its logs */
	TOKEN_OP_LIST,
	TOKEN_OP_EVENTS,
	TOKEN_OP_METRICS,
	TOKEN_OP__COUNT
} token_op;

const char *token_op_name(token_op op);
int token_op_from_name(const char *name);

typedef struct api_token {
	char name[TOKEN_NAME_MAX + 1];
	unsigned char sha256[32];
	uint32_t ops;                /* bit (1u << token_op) */
	size_t n_providers, n_ids, n_prefixes;
	char **providers, **ids, **prefixes;
	uint32_t max_sandboxes;      /* 0 = no limit */
	char policy[TOKEN_NAME_MAX + 1];   /* "" = the caller's choice */
} api_token;

typedef struct token_set {
	size_t n;
	api_token *v;
} token_set;

int token_set_parse(const char *text, size_t len, token_set *out, silo_error *err);
int token_set_load(const char *path, token_set *out, silo_error *err);
void token_set_free(token_set *s);

/* The token whose secret is `secret`, or NULL. Compares SHA-256 digests with
 * every entry in constant time. */
const api_token *token_lookup(const token_set *s, const char *secret);

/* Does the token allow op at all? */
int token_check_op(const api_token *t, token_op op, silo_error *err);
/* Is an existing sandbox (id, name, provider) inside the token's scope? */
int token_check_sandbox(const api_token *t, token_op op, const char *id, const char *name,
			const char *provider, silo_error *err);
/* Create: operation, provider, name prefix, no id list; applies the token's
 * policy to the spec metadata (a different one named there is denied) and
 * records the token's name (TOKEN_METADATA_KEY) for max_sandboxes. */
int token_apply_create(const api_token *t, vm_spec *spec, silo_error *err);
/* Live sandboxes created with it -> allowed to create one more? */
int token_check_count(const api_token *t, size_t live, silo_error *err);
/* Fill a silo_error explaining a denial by the token (used by callers that
 * filter, e.g. events without a sandbox filter). */
int token_deny(const api_token *t, const char *rule, silo_error *err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Does the token restrict sandboxes (ids, name prefixes or providers)? */
bool token_has_scope(const api_token *t);

#endif
