/* SPDX-License-Identifier: Apache-2.0
 * VMSpec: the in-memory form of a hac.toml (Hardware-as-Code) file.
 * Parsing/validation/pretty-printing live in spec.c on top of toml.c.
 * docs/hac-toml.md documents the format.
 */
#ifndef SILO_SPEC_H
#define SILO_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define SPEC_NAME_MAX 64
#define SPEC_MAX_DRIVES 16
#define SPEC_MAX_KV 128          /* metadata and env entries, each */
#define SPEC_MAX_EGRESS 64
#define SPEC_DISK_DEFAULT_MB 2048    /* [sandbox] disk_mb when not given */
#define SPEC_DISK_MIN_MB 16
#define SPEC_DISK_MAX_MB (1024 * 1024)
/* Bounds of numeric fields: the hac.toml parser and `deploy --set` share them, so a
 * stored spec always parses back. */
#define SPEC_MEMORY_MAX_MB 65536
#define SPEC_VCPUS_MAX 64
#define SPEC_BOOT_TIMEOUT_MAX_MS 600000
#define SPEC_PIDS_MAX 4194304
#define SPEC_TIMEOUT_MAX_S (30 * 24 * 3600)

typedef struct spec_kv {
	char *key;
	char *value;
} spec_kv;

/* [sandbox.secrets]: environment variables of the sandbox's commands whose values
 * are never written anywhere (docs/hac-toml.md). A value given inline lives in
 * memory only; a file or an environment variable of the process that creates
 * the sandbox is read when it is created (and again after a silod restart). */
#define SPEC_SECRET_MAX 32768            /* bytes of one secret value */
#define SPEC_SECRET_REDACTED "***"       /* what specs show (and store) instead of a value */
typedef enum spec_secret_src {
	SPEC_SECRET_VALUE = 0,           /* K = "value" (or "***": the value is not available) */
	SPEC_SECRET_FILE,                /* K = {file = "/host/path"} */
	SPEC_SECRET_ENV,                 /* K = {env = "NAME"} */
} spec_secret_src;

typedef struct spec_secret {
	char *key;
	spec_secret_src src;
	char *ref;                   /* FILE: absolute host path; ENV: variable name; VALUE: NULL */
	char *value;                 /* in memory only; NULL = not resolved or not available */
} spec_secret;

typedef struct spec_drive {
	char *id;                    /* "drive0".. if not given */
	char *path;
	bool read_only;
	bool root;                   /* the root device */
} spec_drive;

/* A mount into a namespace sandbox (in memory only: see vm_spec.mounts). */
typedef enum spec_mount_type { SPEC_MOUNT_BIND = 0, SPEC_MOUNT_TMPFS } spec_mount_type;
typedef struct spec_mount {
	spec_mount_type type;
	char *source;                /* bind: absolute host path (directory or file) */
	char *target;                /* absolute path in the sandbox */
	bool read_only;
	char *options;               /* tmpfs: "size=..,mode=.." (validated by the provider) */
} spec_mount;
#define SPEC_MAX_MOUNTS 64

typedef struct vm_spec {
	char name[SPEC_NAME_MAX + 1];   /* 1-64 of [A-Za-z0-9_-] */
	char *description;               /* optional */
	char *provider;                  /* "kvm" | "qemu" | "namespace" | NULL = auto */
	char *isolation;                 /* [vm] isolation: "vm" forbids falling back to namespace; NULL = "any" */
	uint32_t vcpus;                  /* 1..64 */
	uint32_t memory_mb;              /* 128..65536 (kvm: 16..65536, see docs) */

	/* [boot] */
	char *kernel;                    /* path or NULL (provider default) */
	char *initrd;                    /* path or NULL */
	char *rootfs;                    /* path to rootfs image/dir, or NULL */
	char *image;                     /* named image from the image store ("python", "base") */
	char *cmdline;                   /* extra kernel command line */

	/* [network] */
	bool network;                    /* default false: no network */
	char *tap;                       /* tap device name, optional */
	char *mac;                       /* optional "aa:bb:cc:dd:ee:ff" */
	size_t n_egress;
	char *egress[SPEC_MAX_EGRESS];   /* allow-list "host[:port]" or CIDR */

	/* [[drives]] */
	size_t n_drives;
	spec_drive drives[SPEC_MAX_DRIVES];

	/* [sandbox] what a sandbox needs */
	size_t n_env;
	spec_kv env[SPEC_MAX_KV];
	char *workdir;                   /* default "/" */
	char *user;                      /* default user of execs: "uid[:gid]" or "name[:group]"; NULL = root */
	uint32_t timeout_s;              /* max lifetime, 0 = unlimited */
	uint32_t boot_timeout_ms;        /* 0 = provider default */
	uint32_t pids_max;               /* 0 = default */
	uint32_t disk_mb;                /* writable layer limit; 0 = SPEC_DISK_DEFAULT_MB */
	size_t n_secrets;
	spec_secret secrets[SPEC_MAX_KV];

	/* [metadata] */
	size_t n_metadata;
	spec_kv metadata[SPEC_MAX_KV];

	/* In memory only: never parsed, formatted, compared or stored, so no
	 * hac.toml and no API client can set them. The OCI runtime (silo-oci, run
	 * by root for a container engine) sets them. */
	bool oci_bundle;                 /* boot.rootfs is an OCI bundle's root: the engine's image
					  * policy vouches for it, it is not checked against the
					  * signed manifest (the agent layer, kernel and loader are) */
	size_t n_mounts;                 /* namespace provider: mounts into the sandbox */
	spec_mount mounts[SPEC_MAX_MOUNTS];
	char *hostname;                  /* the sandbox's hostname (default: namespace its id, VMs none) */
	char **rootfs_layers;            /* namespace: the layers of boot.rootfs (an engine's overlay
					  * mount), topmost first, used instead of it (strv) */
} vm_spec;

typedef struct host_capacity {
	uint32_t cpus;
	uint64_t memory_mb;
	/* allocatable = cores x cpu_overcommit, MemTotal x memory_overcommit;
	 * 0 = $SILO_CPU_OVERCOMMIT / $SILO_MEM_OVERCOMMIT, else 16 and 1.0 */
	double cpu_overcommit, memory_overcommit;
} host_capacity;

/* Parse hac.toml text (either the sectioned form or Vistara's [spacecore]/[hardware] form).
 * Errors are INVALID_CONFIG with "line:col: field: expected ..." messages. */
int spec_parse(const char *text, size_t len, vm_spec *out, silo_error *err);
int spec_load(const char *path, vm_spec *out, silo_error *err);
/* Validate ranges and formats (parse already does; exposed for specs built in code). */
int spec_validate(const vm_spec *s, silo_error *err);
/* Against host capacity and what is already allocated: RESOURCE_EXCEEDED naming the resource. */
int spec_check_capacity(const vm_spec *s, const host_capacity *host, uint32_t allocated_vcpus,
			uint64_t allocated_mb, silo_error *err);
int host_capacity_read(host_capacity *out, silo_error *err);
/* The memory ratio in force for HOST (field, else environment, else 1.0). */
double host_memory_overcommit(const host_capacity *host);
/* MemAvailable of the host in MB, 0 if unknown. */
uint64_t host_memory_available_mb(void);
/* Canonical sectioned TOML; parses back to an equal spec, except that secret values
 * are never written (an inline one reads "***"): it parses back to spec_redact(s).
 * This is the only form that is stored (registry, deployments, snapshots). Caller frees. */
char *spec_format(const vm_spec *s);
/* The same with inline secret values, to hand a spec to silod in a request body,
 * which is held in memory only. Never store or log it. */
char *spec_format_with_secrets(const vm_spec *s);
/* Default template for a provider (2 vCPUs, 512 MB unless the provider needs otherwise). */
int spec_default(const char *provider, vm_spec *out, silo_error *err);
bool spec_equal(const vm_spec *a, const vm_spec *b);
void spec_copy(vm_spec *dst, const vm_spec *src);
void spec_free(vm_spec *s);          /* frees members, not s itself */
/* Set or replace an env entry (used for -e K=V overrides). */
void spec_set_env(vm_spec *s, const char *key, const char *value);
/* Set or replace a secret: an inline value (ref NULL), or a file/env reference. */
void spec_set_secret(vm_spec *s, const char *key, spec_secret_src src, const char *ref, const char *value);
/* Read the FILE and ENV secrets (a file: at most SPEC_SECRET_MAX bytes, one trailing
 * newline removed, no NUL; a variable of this process). INVALID_CONFIG naming the
 * secret (never its value). Flags: SPEC_SECRETS_STRICT: an inline secret without a
 * value ("***") is an error too (else it stays without one); SPEC_SECRETS_KEEP_GOING:
 * a secret that cannot be read is left without a value and the others are still read
 * (the first error is returned at the end). */
enum { SPEC_SECRETS_STRICT = 1, SPEC_SECRETS_KEEP_GOING = 2 };
int spec_resolve_secrets(vm_spec *s, unsigned flags, silo_error *err);
/* One secret file as spec_resolve_secrets reads it; free() with explicit_bzero. */
int spec_read_secret_file(const char *path, char **out, silo_error *err);
/* Forget every secret value (references stay). */
void spec_redact(vm_spec *s);
/* The environment of a command: the spec's env, its secrets, then extra ("K=V", may be
 * NULL), later entries replacing earlier ones. A secret without a value that extra does
 * not supply is CONFLICT naming it. Free with spec_env_free (it zeroes the strings). */
char **spec_exec_env(const vm_spec *s, char *const *extra, silo_error *err);
void spec_env_free(char **env);
/* The effective writable-layer limit in MiB (disk_mb, or the default). */
uint32_t spec_disk_mb(const vm_spec *s);
/* An environment variable name of [A-Za-z_][A-Za-z0-9_]*. */
bool spec_env_key_valid(const char *k);
/* [sandbox] user: "uid[:gid]" or "name[:group]", 1-64 of [A-Za-z0-9_.-] and one colon at most. */
bool spec_user_valid(const char *u);
/* True when the spec forbids falling back from a VM provider to namespaces. */
bool spec_requires_vm(const vm_spec *s);
const char *spec_get_env(const vm_spec *s, const char *key);

#endif
