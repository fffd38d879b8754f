/* SPDX-License-Identifier: Apache-2.0
 * Sandbox policies (docs/policy.md): a pure engine, no I/O beyond parsing the
 * text it is given. A policy set is read from TOML (our own parser, lib/spec/toml.h):
 *
 *   default = "standard"
 *   [policies.standard]
 *   operations = ["exec", "file_read", "file_write"]   # plus network, snapshot, pause
 *   paths = ["/workspace", "/tmp"]                      # file APIs and exec cwd
 *   host_paths = ["/var/lib/silo/roots"]                # kernel/initrd/rootfs/drives/secret files of specs
 *   host_taps = ["silo-tap0"]                           # host tap devices network.tap may name
 *   host_env = ["AGENT_*"]                              # silod variables specs may read as secrets
 *   egress = ["10.0.0.0/8", "pypi.org:443"]             # when "network" is allowed
 *   max_memory_mb = 1024
 *   max_vcpus = 2
 *   max_pids = 256
 *   max_lifetime_s = 3600
 *   max_disk_mb = 4096                                  # [sandbox] disk_mb (the host disk a sandbox may fill)
 *
 * Every denial is POLICY_DENIED with the message
 *   policy "NAME" rule RULE: what was asked and what the rule allows
 * so callers (silod) can count, audit and return it unchanged.
 */
#ifndef SILO_POLICY_H
#define SILO_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "spec/spec.h"

#define POLICY_NAME_MAX 64
#define POLICY_MAX_POLICIES 256
#define POLICY_MAX_PATHS 64
#define POLICY_MAX_TAPS 64
#define POLICY_MAX_EGRESS SPEC_MAX_EGRESS
/* The spec metadata key that names a sandbox's policy (recorded at create). */
#define POLICY_METADATA_KEY "policy"

/* Operations a policy can allow, as a bit set. */
typedef enum policy_op {
	POLICY_OP_EXEC = 0,
	POLICY_OP_FILE_READ,
	POLICY_OP_FILE_WRITE,
	POLICY_OP_NETWORK,      /* the sandbox may have a network (checked at create) */
	POLICY_OP_SNAPSHOT,
	POLICY_OP_PAUSE,
	POLICY_OP__COUNT
} policy_op;

/* "exec", "file_read", ...; NULL if out of range. */
const char *policy_op_name(policy_op op);
/* -1 if unknown. */
int policy_op_from_name(const char *name);

typedef struct policy {
	char name[POLICY_NAME_MAX + 1];
	uint32_t ops;                    /* bit (1u << policy_op) */
	size_t n_paths;                  /* 0 = every path */
	char *paths[POLICY_MAX_PATHS];   /* normalized absolute prefixes */
	bool host_paths_any;             /* the built-in policy: full-access callers may name any host
					  * file and tap device (never a scoped token: policy_caller) */
	size_t n_host_paths;             /* else host files of specs must be under these */
	char *host_paths[POLICY_MAX_PATHS];
	size_t n_host_taps;              /* and network.tap must be one of these */
	char *host_taps[POLICY_MAX_TAPS];
	bool host_env_any;               /* the built-in policy: full-access callers' secrets may name any
					  * variable of silod (never a scoped token's) */
	size_t n_host_env;               /* else {env = NAME} secrets must match one (NAME or PREFIX*) */
	char *host_env[POLICY_MAX_PATHS];
	size_t n_egress;                 /* 0 = any destination (if network is allowed) */
	char *egress[POLICY_MAX_EGRESS];
	uint32_t max_memory_mb;          /* 0 = no limit (each max_*) */
	uint32_t max_vcpus;
	uint32_t max_pids;
	uint32_t max_lifetime_s;
	uint32_t max_disk_mb;            /* the built-in policy: SPEC_DISK_DEFAULT_MB for scoped tokens */
} policy;

typedef struct policy_set {
	size_t n;
	policy *v;
	size_t def;                      /* index of the default policy */
} policy_set;

/* Parse a policy file. INVALID_CONFIG naming "line:col: field" on bad input. */
int policy_set_parse(const char *text, size_t len, policy_set *out, silo_error *err);
int policy_set_load(const char *path, policy_set *out, silo_error *err);
/* The built-in set used without a policy file: one policy "default" that
 * allows every operation and path, with no limits. */
void policy_set_builtin(policy_set *out);
void policy_set_free(policy_set *s);

/* name NULL or "" = the default policy. NULL with INVALID_CONFIG if unknown
 * (the message lists the known names). */
const policy *policy_find(const policy_set *s, const char *name, silo_error *err);

/* Who asks for a sandbox. Host resources (files, tap devices) are what a
 * policy's host_paths and host_taps grant; the built-in policy's "any"
 * (host_paths_any) is for full-access callers only: a scoped API token gets
 * exactly what a policy file lists, and without one nothing. */
typedef enum policy_caller {
	POLICY_CALLER_FULL = 0,          /* unix socket owner, full-access token, silod itself */
	POLICY_CALLER_TOKEN,             /* a scoped token of the tokens file */
} policy_caller;

/* The spec fields that name host files (boot.kernel, boot.initrd, boot.rootfs,
 * drives[i].path, sandbox.secrets.K.file), set ones only, in this order: fn gets the field's name and
 * its slot (it may replace the string). Stops at the first negative return. */
typedef int (*policy_host_path_fn)(void *ud, const char *field, char **path, silo_error *err);
int policy_each_host_path(vm_spec *spec, policy_host_path_fn fn, void *ud, silo_error *err);
/* Does p let who name host files by prefix (true), or any / none (false)?
 * Only then are the paths worth resolving before the check. */
bool policy_host_paths_listed(const policy *p, policy_caller who);
/* Is path (lexically normalized) under one of p's host_paths for who? */
bool policy_host_path_granted(const policy *p, policy_caller who, const char *path);

/* Before spawn: check a spec against p (resources, network, egress, the host
 * files it names, which the caller should have resolved with realpath, the
 * tap device and the variables of silod its {env = NAME} secrets name) and apply the policy's limits where the spec leaves them
 * open (pids_max 0 -> max_pids, timeout_s 0 -> max_lifetime_s, disk_mb 0 ->
 * max_disk_mb when that is below the default, empty egress -> the policy's
 * egress list). Records the policy's name in the spec
 * metadata (POLICY_METADATA_KEY). policy_apply_spec is the full-access form. */
int policy_apply_spec_as(const policy *p, policy_caller who, vm_spec *spec, silo_error *err);
int policy_apply_spec(const policy *p, vm_spec *spec, silo_error *err);
/* Is op allowed at all? */
int policy_check_op(const policy *p, policy_op op, silo_error *err);
/* op plus a guest path (file APIs: the path; exec: the working directory). */
int policy_check_path(const policy *p, policy_op op, const char *path, silo_error *err);

/* Lexically normalize an absolute guest path into out ("//a/./b/" -> "/a/b").
 * false if it is not absolute, too long, or has a ".." component. */
bool policy_normalize_path(const char *in, char *out, size_t len);
/* Does the egress entry `want` fall inside the allowed entry `allowed`?
 * Equal strings match; an IPv4 CIDR allows addresses and narrower CIDRs in it. */
bool policy_egress_covers(const char *allowed, const char *want);

#endif
