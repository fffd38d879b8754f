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

typedef struct spec_kv {
	char *key;
	char *value;
} spec_kv;

typedef struct spec_drive {
	char *id;                    /* "drive0".. if not given */
	char *path;
	bool read_only;
	bool root;                   /* the root device */
} spec_drive;

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
	uint32_t timeout_s;              /* max lifetime, 0 = unlimited */
	uint32_t boot_timeout_ms;        /* 0 = provider default */
	uint32_t pids_max;               /* 0 = default */
	uint32_t disk_mb;                /* writable layer limit; 0 = SPEC_DISK_DEFAULT_MB */

	/* [metadata] */
	size_t n_metadata;
	spec_kv metadata[SPEC_MAX_KV];
} vm_spec;

typedef struct host_capacity {
	uint32_t cpus;
	uint64_t memory_mb;
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
/* Canonical sectioned TOML; parses back to an equal spec. Caller frees. */
char *spec_format(const vm_spec *s);
/* Default template for a provider (2 vCPUs, 512 MB unless the provider needs otherwise). */
int spec_default(const char *provider, vm_spec *out, silo_error *err);
bool spec_equal(const vm_spec *a, const vm_spec *b);
void spec_copy(vm_spec *dst, const vm_spec *src);
void spec_free(vm_spec *s);          /* frees members, not s itself */
/* Set or replace an env entry (used for -e K=V overrides). */
void spec_set_env(vm_spec *s, const char *key, const char *value);
/* The effective writable-layer limit in MiB (disk_mb, or the default). */
uint32_t spec_disk_mb(const vm_spec *s);
/* True when the spec forbids falling back from a VM provider to namespaces. */
bool spec_requires_vm(const vm_spec *s);
const char *spec_get_env(const vm_spec *s, const char *key);

#endif
