/* SPDX-License-Identifier: Apache-2.0
 *
 * Silo's error contract (docs/errors.md), shared by libsilo (include/silo/silo.h)
 * and libsilo-client (include/silo/client.h): the stable codes, the silo_error
 * every fallible function fills, and the code names both libraries export.
 */
#ifndef SILO_ERROR_H
#define SILO_ERROR_H

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
	SILO_ERR_NOT_FOUND = 21,       /* HTTP: no such endpoint (unknown sandboxes stay VM_NOT_FOUND) */
	SILO_ERR_METHOD_NOT_ALLOWED = 22,     /* HTTP: the path exists, not with this method */
	SILO_ERR_PAYLOAD_TOO_LARGE = 23,      /* HTTP: a request body beyond the route's limit */
	SILO_ERR_UNSUPPORTED_MEDIA_TYPE = 24, /* HTTP: a Content-Type the route does not take */
	SILO_ERR_FILE_NOT_FOUND = 25,  /* no such file or directory in the sandbox */
	SILO_ERR_PROCESS_NOT_FOUND = 26, /* no such process (handle, pid or tag) in the sandbox */
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

#ifdef __cplusplus
}
#endif

#endif
