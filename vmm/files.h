/* SPDX-License-Identifier: Apache-2.0
 * Every host file silo-vmm uses goes through here (docs/vmm.md, "Jail").
 *
 * Before the jail, main opens what its command line names: the kernel, initrd or payload,
 * the drives (vmm_files_preopen), the vsock socket (bound and listening: vmm_files_prebind)
 * and /dev/kvm. Once it has pivoted into the jail root those paths no longer resolve: a
 * later open of the same path string (a drive of the configuration or of a snapshot being
 * loaded, the vsock socket) gets the file opened before, anything else is opened inside
 * the jail root, which holds nothing of the host. So neither an API client nor a guest that
 * took over the VMM can make it open a host file it was not started with.
 *
 * Rules: the table is filled by the main thread before any other thread starts and only
 * read afterwards; the fds it holds stay open for the life of the process.
 */
#ifndef SILO_VMM_FILES_H
#define SILO_VMM_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define VMM_FILES_MAX 24

/* Open path now (read-only, or read-write) and remember it under that string. */
int vmm_files_preopen(const char *path, bool writable, silo_error *err);
/* Bind and listen on the unix socket path now (mode 0600), remember the listener. */
int vmm_files_prebind(const char *path, silo_error *err);
/* The jail root the process will pivot into (before vmm_files_prebind: a socket below it
 * gets its in-jail name). */
void vmm_files_set_jail(const char *dir);
/* The name a pre-bound socket at host path p has inside the jail ("/x" for DIR/x); p itself
 * when p was not pre-bound, there is no jail, or p is not below it. */
const char *vmm_files_jail_path(const char *p);

/* A new fd for path: a dup of the pre-opened file (EACCES when it was opened read-only and
 * writable is asked), else open(2) relative to the current root. IO_ERROR/INVALID_CONFIG
 * naming what. */
int vmm_open(const char *path, bool writable, const char *what, silo_error *err);
/* A new fd for a listening unix socket at path: a dup of the pre-bound listener, else bind +
 * listen now. *bound_here tells whether the caller owns the socket file. */
int vmm_listen(const char *path, bool *bound_here, silo_error *err);
/* Map a whole file read-only (the kernel, initrd, payload): at most max bytes. */
int vmm_map(const char *path, size_t max, const char *what, const uint8_t **p, size_t *len, silo_error *err);
void vmm_unmap(const uint8_t *p, size_t len);

/* /dev/kvm, opened once before the jail; -1 until then. */
int vmm_kvm_fd(silo_error *err);

#endif
