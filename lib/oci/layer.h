/* SPDX-License-Identifier: Apache-2.0
 * Extract one tar stream (an image layer or a rootfs tarball) into an empty
 * directory, in the form overlayfs takes as a lower layer:
 *   - "a/.wh.b" becomes the whiteout a/b (a 0:0 character device);
 *   - "a/.wh..wh..opq" marks a opaque (xattr trusted.overlay.opaque=y);
 *   - everything else is created with the recorded owner, mode, mtime and the
 *     extended attributes the policy keeps (user.* except user.overlay.*, and
 *     security.capability); other xattrs are dropped and counted.
 * Safety (each violation fails the whole layer, naming the entry):
 *   - names are normalized; absolute names, "..", empty components beyond
 *     collapsing, components over 255 bytes and paths deeper than OCI_MAX_DEPTH
 *     are refused;
 *   - every parent directory is opened with openat2(RESOLVE_BENEATH |
 *     RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV), so an entry
 *     can never be written through a symlink (escaping or not) or outside the tree;
 *     leaf names are created with O_EXCL / mkdirat / symlinkat / linkat, which do
 *     not follow a final symlink either;
 *   - a name that exists already is a duplicate and is refused (a directory
 *     created implicitly for an earlier entry may be claimed once by its own entry);
 *   - hard links must name a regular file extracted earlier in the same layer;
 *   - character and block devices are refused (with skip_devices: dropped and
 *     counted); FIFOs are kept;
 *   - the entry count is charged to the import budget (byte counts are charged
 *     by the stream that feeds the reader).
 */
#ifndef SILO_OCI_LAYER_H
#define SILO_OCI_LAYER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "oci/stream.h"
#include "oci/tar.h"

#define OCI_MAX_DEPTH 256
#define OCI_WHITEOUT_OPAQUE_XATTR "trusted.overlay.opaque"

typedef struct oci_extract_opts {
	oci_budget *budget;
	bool skip_devices;
} oci_extract_opts;

typedef struct oci_layer_stats {
	uint64_t entries, files, dirs, symlinks, hardlinks, fifos, whiteouts, opaques;
	uint64_t bytes;            /* regular file data (logical size) */
	uint64_t disk;             /* allocated bytes of the inodes created (st_blocks) */
	uint64_t dropped_xattrs, dropped_devices;
	char dropped[256];         /* the first distinct names dropped, comma separated */
} oci_layer_stats;

/* Extract the archive r reads into the directory rootfd; what names the layer in
 * errors ("layer sha256:1234abcd"). Stats accumulate into *st. */
int oci_layer_extract(tar_reader *r, int rootfd, const char *what, const oci_extract_opts *o,
		      oci_layer_stats *st, silo_error *err);

/* openat2(dirfd, path, O_RDONLY | flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS |
 * RESOLVE_NO_XDEV | (follow ? 0 : RESOLVE_NO_SYMLINKS)): symlinks, when followed,
 * must stay below dirfd. -1 with errno. */
int oci_open_beneath(int dirfd, const char *path, int flags, bool follow);

#endif
