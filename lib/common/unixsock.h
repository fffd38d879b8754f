/* SPDX-License-Identifier: Apache-2.0
 * Unix sockets of a sandbox's run directory (unixsock.c).
 */
#ifndef SILO_COMMON_UNIXSOCK_H
#define SILO_COMMON_UNIXSOCK_H

#include "common/error.h"

/* A listening stream socket (close-on-exec) bound at path, mode 0600: only the owner
 * (silod) connects. A file left at path is replaced. what names the caller in errors:
 * INVALID_CONFIG for a path longer than sun_path, RESOURCE_EXCEEDED when no socket can
 * be made, IO_ERROR naming path otherwise (path is removed again). */
int unix_listen(const char *path, const char *what, silo_error *err);

#endif
