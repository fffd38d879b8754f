/* SPDX-License-Identifier: Apache-2.0
 * Internal error helpers. Convention (docs/errors.md):
 *   - a fallible function returns -1 (or NULL) and fills *err (err may be NULL);
 *   - callers add context on the way up with silo_error_prefix();
 *   - die() only in main() or in a forked child before exec.
 */
#ifndef SILO_COMMON_ERROR_H
#define SILO_COMMON_ERROR_H

#include "silo/silo.h"
#include <stdarg.h>

/* Fill err; always returns -1 so it can be used as `return silo_fail(...)`. */
int silo_fail(silo_error *err, silo_code code, int sys_errno, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Same, naming the sandbox the error concerns. */
int silo_fail_vm(silo_error *err, silo_code code, int sys_errno, const char *vm_id,
		 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Prepend "context: " to the message, keeping code/errno/vm_id. */
void silo_error_prefix(silo_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void silo_error_clear(silo_error *err);
/* Set vm_id if the error does not name one yet. */
void silo_error_set_vm(silo_error *err, const char *vm_id);
/* "CODE: message" into buf. */
const char *silo_error_str(const silo_error *err, char *buf, size_t len);

/* Print "silo: message" to stderr and exit(status). Only in main() or a child. */
__attribute__((noreturn, format(printf, 2, 3))) void die(int status, const char *fmt, ...);
__attribute__((noreturn, format(printf, 2, 3))) void die_errno(int status, const char *fmt, ...);

/* Exit status the CLI uses for an error code (stable, see docs/errors.md). */
int silo_code_exit_status(silo_code code);

#endif
