/* SPDX-License-Identifier: Apache-2.0
 * Lock files (lockfile.c): flock(2) locks that waiting callers queue on; the
 * lock goes with the last close of the descriptor.
 */
#ifndef SILO_COMMON_LOCKFILE_H
#define SILO_COMMON_LOCKFILE_H

#include <sys/types.h>

#include "common/error.h"

/* flock(fd, op), again after EINTR: 0, or -1 with errno. */
int flock_wait(int fd, int op);
/* Open path (created 0600 if missing, close-on-exec) and take flock op on it (LOCK_EX or
 * LOCK_SH, waiting): the descriptor, or -1 with IO_ERROR ("open PATH", "lock PATH"). */
int lockfile_open(const char *path, int op, silo_error *err);
/* mkdir -p dir (dmode), then open dir/name (created fmode) and hold LOCK_EX on it:
 * the fd (close it to unlock), or -1 with IO_ERROR naming the path. Neither
 * call opens a lock file through a symlink. */
int lock_file_in(const char *dir, mode_t dmode, const char *name, mode_t fmode, silo_error *err);

#endif
