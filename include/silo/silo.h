/* SPDX-License-Identifier: Apache-2.0
 *
 * libsilo: hardware-isolated sandboxes for AI agents.
 *
 * Public C API. Handles are opaque. Every fallible function returns a
 * negative value (or NULL) and fills a caller-provided silo_error; the error
 * codes below are stable and documented in docs/errors.md.
 */
#ifndef SILO_SILO_H
#define SILO_SILO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SILO_PUBLIC __attribute__((visibility("default")))

/* Stable public error codes. Never renumber; append only. */
typedef enum silo_code {
	SILO_OK = 0,
	SILO_ERR_INVALID_CONFIG = 1,
	SILO_ERR_RESOURCE_EXCEEDED = 2,
	SILO_ERR_MAX_VMS_EXCEEDED = 3,
	SILO_ERR_BOOT_TIMEOUT = 4,
	SILO_ERR_VM_NOT_FOUND = 5,
	SILO_ERR_VSOCK_DISCONNECTED = 6,
	SILO_ERR_POLICY_DENIED = 7,
	SILO_ERR_SECURITY_VIOLATION = 8,
	SILO_ERR_CHECKSUM_MISMATCH = 9,
	SILO_ERR_PLUGIN_UNVERIFIED = 10,
	SILO_ERR_CLEANUP_FAILED = 11,
	SILO_ERR_REMOTE_UNREACHABLE = 12,
	SILO_ERR_PROVIDER_UNAVAILABLE = 13,
	SILO_ERR_IO_ERROR = 14,
	SILO_ERR_TIMEOUT = 15,         /* an operation (not boot) exceeded its deadline */
	SILO_ERR_PROTOCOL = 16,        /* malformed bytes from a peer (guest agent, HTTP client) */
	SILO_ERR_UNAUTHORIZED = 17,    /* missing/invalid API token or token scope */
	SILO_ERR_CONFLICT = 18,        /* wrong state for the operation, name already taken */
	SILO_ERR_NOT_SUPPORTED = 19,   /* the provider cannot do this operation */
	SILO_ERR_INTERNAL = 20,        /* a bug: please report */
	SILO_ERR_FILE_NOT_FOUND = 21,  /* no such file or directory in the sandbox */
	SILO_ERR_PROCESS_NOT_FOUND = 22, /* no such process (handle, pid or tag) in the sandbox */
	SILO_ERR__COUNT
} silo_code;

#define SILO_ERROR_MSG_MAX 1024
#define SILO_ID_MAX 64

typedef struct silo_error {
	silo_code code;
	int sys_errno;                 /* errno at the failure, 0 if none */
	char vm_id[SILO_ID_MAX];       /* sandbox the error concerns, "" if none */
	char message[SILO_ERROR_MSG_MAX];
} silo_error;

/* "INVALID_CONFIG", ... ; "UNKNOWN" for out-of-range values. */
SILO_PUBLIC const char *silo_code_name(silo_code code);
/* Parse a code name back; returns SILO_ERR__COUNT when unknown. */
SILO_PUBLIC silo_code silo_code_from_name(const char *name);
SILO_PUBLIC const char *silo_version(void);

/* ---- specs (hac.toml, docs/hac-toml.md) ---- */
typedef struct silo_spec silo_spec;

SILO_PUBLIC silo_spec *silo_spec_parse(const char *toml, size_t len, silo_error *err);
SILO_PUBLIC silo_spec *silo_spec_load(const char *path, silo_error *err);
/* Template for "kvm", "qemu" or "namespace" (NULL: automatic provider). */
SILO_PUBLIC silo_spec *silo_spec_default(const char *provider, silo_error *err);
/* Canonical hac.toml; free() the result. */
SILO_PUBLIC char *silo_spec_format(const silo_spec *spec);
/* Set an environment variable for commands run in the sandbox. */
SILO_PUBLIC int silo_spec_set_env(silo_spec *spec, const char *key, const char *value, silo_error *err);
SILO_PUBLIC void silo_spec_free(silo_spec *spec);

/* ---- sandboxes (embedded: no daemon; see docs/openapi.yaml for silod) ---- */
typedef struct silo_sandbox silo_sandbox;

/* stream: 1 = stdout, 2 = stderr. Called on the thread that called
 * silo_sandbox_exec, in order, one call at a time. Output is never dropped and
 * is flow-controlled: while the callback runs, the command's further output
 * waits in the sandbox (the command blocks once about 1 MiB is pending), so a
 * slow callback slows only its own command down; other commands in the same
 * sandbox, from other threads, are unaffected. */
typedef void (*silo_output_fn)(void *userdata, int stream, const void *buf, size_t len);

typedef struct silo_exec_opts {
	const char *const *argv;      /* NULL-terminated, required */
	const char *const *env;       /* "K=V", NULL-terminated, or NULL */
	const char *cwd;              /* NULL = the spec's workdir or "/" */
	const void *stdin_data;       /* fed as the command reads it (any size) */
	size_t stdin_len;
	uint32_t timeout_ms;          /* 0 = none */
	silo_output_fn on_output;     /* NULL = discard output */
	void *userdata;
} silo_exec_opts;

typedef struct silo_exec_result {
	int exit_code;                /* 128+signal when killed */
	int signal;
	int timed_out;
	uint64_t duration_ms;
} silo_exec_result;

/* Spawn and wait until the agent is ready (BOOT_TIMEOUT otherwise, nothing left behind). */
SILO_PUBLIC int silo_sandbox_create(const silo_spec *spec, silo_sandbox **out, silo_error *err);
SILO_PUBLIC const char *silo_sandbox_id(const silo_sandbox *sb);
/* Provider actually used ("namespace", "qemu", "kvm"). */
SILO_PUBLIC const char *silo_sandbox_provider(const silo_sandbox *sb);
SILO_PUBLIC int silo_sandbox_exec(silo_sandbox *sb, const silo_exec_opts *opts, silo_exec_result *res,
				  silo_error *err);
SILO_PUBLIC int silo_sandbox_write_file(silo_sandbox *sb, const char *path, const void *buf, size_t len,
					uint32_t mode, silo_error *err);
/* Read at most max bytes (0 = 64 MiB); *out is NUL-terminated, free() it. */
SILO_PUBLIC int silo_sandbox_read_file(silo_sandbox *sb, const char *path, size_t max, char **out,
				       size_t *len, silo_error *err);
/* Terminate, verify nothing is left on the host (CLEANUP_FAILED lists residue), free. */
SILO_PUBLIC int silo_sandbox_destroy(silo_sandbox *sb, silo_error *err);

#ifdef __cplusplus
}
#endif
#endif /* SILO_SILO_H */
