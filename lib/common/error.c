/* SPDX-License-Identifier: Apache-2.0 */
#include "common/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const code_names[SILO_ERR__COUNT] = {
	[SILO_OK] = "OK",
	[SILO_ERR_INVALID_CONFIG] = "INVALID_CONFIG",
	[SILO_ERR_RESOURCE_EXCEEDED] = "RESOURCE_EXCEEDED",
	[SILO_ERR_MAX_VMS_EXCEEDED] = "MAX_VMS_EXCEEDED",
	[SILO_ERR_BOOT_TIMEOUT] = "BOOT_TIMEOUT",
	[SILO_ERR_VM_NOT_FOUND] = "VM_NOT_FOUND",
	[SILO_ERR_VSOCK_DISCONNECTED] = "VSOCK_DISCONNECTED",
	[SILO_ERR_POLICY_DENIED] = "POLICY_DENIED",
	[SILO_ERR_SECURITY_VIOLATION] = "SECURITY_VIOLATION",
	[SILO_ERR_CHECKSUM_MISMATCH] = "CHECKSUM_MISMATCH",
	[SILO_ERR_PLUGIN_UNVERIFIED] = "PLUGIN_UNVERIFIED",
	[SILO_ERR_CLEANUP_FAILED] = "CLEANUP_FAILED",
	[SILO_ERR_REMOTE_UNREACHABLE] = "REMOTE_UNREACHABLE",
	[SILO_ERR_PROVIDER_UNAVAILABLE] = "PROVIDER_UNAVAILABLE",
	[SILO_ERR_IO_ERROR] = "IO_ERROR",
	[SILO_ERR_TIMEOUT] = "TIMEOUT",
	[SILO_ERR_PROTOCOL] = "PROTOCOL",
	[SILO_ERR_UNAUTHORIZED] = "UNAUTHORIZED",
	[SILO_ERR_CONFLICT] = "CONFLICT",
	[SILO_ERR_NOT_SUPPORTED] = "NOT_SUPPORTED",
	[SILO_ERR_INTERNAL] = "INTERNAL",
	[SILO_ERR_NOT_FOUND] = "NOT_FOUND",
	[SILO_ERR_METHOD_NOT_ALLOWED] = "METHOD_NOT_ALLOWED",
	[SILO_ERR_PAYLOAD_TOO_LARGE] = "PAYLOAD_TOO_LARGE",
	[SILO_ERR_UNSUPPORTED_MEDIA_TYPE] = "UNSUPPORTED_MEDIA_TYPE",
	[SILO_ERR_FILE_NOT_FOUND] = "FILE_NOT_FOUND",
	[SILO_ERR_PROCESS_NOT_FOUND] = "PROCESS_NOT_FOUND",
};

const char *silo_code_name(silo_code code)
{
	if ((unsigned)code >= SILO_ERR__COUNT || !code_names[code])
		return "UNKNOWN";
	return code_names[code];
}

silo_code silo_code_from_name(const char *name)
{
	for (int i = 0; i < SILO_ERR__COUNT; i++)
		if (code_names[i] && strcmp(code_names[i], name) == 0)
			return (silo_code)i;
	return SILO_ERR__COUNT;
}

const char *silo_version(void)
{
	return SILO_VERSION;
}

static int vfail(silo_error *err, silo_code code, int sys_errno, const char *vm_id,
		 const char *fmt, va_list ap)
{
	if (!err)
		return -1;
	err->code = code;
	err->sys_errno = sys_errno;
	if (vm_id)
		snprintf(err->vm_id, sizeof err->vm_id, "%s", vm_id);
	else
		err->vm_id[0] = '\0';
	int n = vsnprintf(err->message, sizeof err->message, fmt, ap);
	if (n < 0)
		err->message[0] = '\0';
	if (sys_errno && n >= 0 && (size_t)n < sizeof err->message)
		snprintf(err->message + n, sizeof err->message - (size_t)n, ": %s", strerror(sys_errno));
	return -1;
}

int silo_fail(silo_error *err, silo_code code, int sys_errno, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail(err, code, sys_errno, NULL, fmt, ap);
	va_end(ap);
	return -1;
}

int silo_fail_vm(silo_error *err, silo_code code, int sys_errno, const char *vm_id,
		 const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail(err, code, sys_errno, vm_id, fmt, ap);
	va_end(ap);
	return -1;
}

void silo_error_prefix(silo_error *err, const char *fmt, ...)
{
	if (!err)
		return;
	char prefix[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	char old[SILO_ERROR_MSG_MAX];
	memcpy(old, err->message, sizeof old);
	size_t pl = strlen(prefix);
	if (pl > sizeof err->message - 3)
		pl = sizeof err->message - 3;
	memcpy(err->message, prefix, pl);
	memcpy(err->message + pl, ": ", 2);
	size_t room = sizeof err->message - pl - 3;
	size_t ol = strnlen(old, room);
	memcpy(err->message + pl + 2, old, ol);
	err->message[pl + 2 + ol] = '\0';
}

void silo_error_clear(silo_error *err)
{
	if (err)
		memset(err, 0, sizeof *err);
}

void silo_error_set_vm(silo_error *err, const char *vm_id)
{
	if (err && !err->vm_id[0] && vm_id)
		snprintf(err->vm_id, sizeof err->vm_id, "%s", vm_id);
}

const char *silo_error_str(const silo_error *err, char *buf, size_t len)
{
	if (err->vm_id[0])
		snprintf(buf, len, "%s [%s]: %s", silo_code_name(err->code), err->vm_id, err->message);
	else
		snprintf(buf, len, "%s: %s", silo_code_name(err->code), err->message);
	return buf;
}

void die(int status, const char *fmt, ...)
{
	va_list ap;
	fputs("silo: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

void die_errno(int status, const char *fmt, ...)
{
	int e = errno;
	va_list ap;
	fputs("silo: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", strerror(e));
	exit(status);
}

int silo_code_exit_status(silo_code code)
{
	/* 125 like `docker run`/`podman run`: the error is silo's, not the command's.
	 * Scripts read the precise code from --json output or the HTTP body. */
	return code == SILO_OK ? 0 : 125;
}
