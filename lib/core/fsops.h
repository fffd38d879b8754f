/* SPDX-License-Identifier: Apache-2.0
 * Tar transfers over a channel (chan_tar_out_start / chan_tar_in_start), for
 * the embedded API (lib/core/api.c) and silod (daemon/): from and to file
 * descriptors, and the status of a finished tar task as one silo_error.
 */
#ifndef SILO_CORE_FSOPS_H
#define SILO_CORE_FSOPS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/channel.h"

#define FS_TAR_ERR_MAX 2048   /* stderr of a tar task kept for the error message */
#define FS_TAR_WINDOW (4u << 20)   /* the output window of an archive download (bulk data) */

/* Collects a tar task's stream 2 (warnings, the error line), bounded. */
typedef struct fs_tar_errtext {
	char text[FS_TAR_ERR_MAX];
	size_t len;
} fs_tar_errtext;
void fs_tar_errtext_add(fs_tar_errtext *e, const void *buf, size_t n);

/* Wait for a tar task whose output was taken to the end (frees it): 0 when
 * its exit status is 0; else -1 with the agent child's error line ("CODE:
 * message" becomes that code) or the channel's error. what names the
 * operation and path in the message. */
int fs_tar_finish(chan *c, uint32_t id, const fs_tar_errtext *e, const char *what, silo_error *err);
/* Give up on a started tar task: drop its output, kill it, free it. */
void fs_tar_abandon(chan *c, uint32_t id);

/* A tar stream of path in the guest, written to fd. cancel (may be NULL) is
 * polled between reads; when it returns true the transfer stops (CONFLICT). */
int fs_archive_get_fd(chan *c, const char *path, int fd, bool (*cancel)(void *ud), void *ud, uint64_t *bytes,
		      silo_error *err);
/* Extract the tar stream read from fd below the guest directory path. */
int fs_archive_put_fd(chan *c, const char *path, int fd, bool (*cancel)(void *ud), void *ud, uint64_t *bytes,
		      silo_error *err);

#endif
