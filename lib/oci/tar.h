/* SPDX-License-Identifier: Apache-2.0
 * Streaming tar reader for untrusted archives (image layers, docker/OCI archives,
 * rootfs tarballs). It only parses: extraction is lib/oci/layer.c.
 *
 * Formats: POSIX ustar (name + prefix), pax ('x' per-entry records: path, linkpath,
 * size, uid, gid, mtime, SCHILY.xattr.*; 'g' global headers are parsed and ignored),
 * GNU ('L' long name, 'K' long link target, base-256 numbers). Refused: v7 headers
 * without ustar magic, sparse files (GNU 'S', pax GNU.sparse.*), multi-volume and
 * other types, bad checksums, negative or oversized numbers, NUL inside names.
 *
 * Bounds (hard, independent of the caller): a name or link target is at most
 * TAR_NAME_MAX bytes, a pax header TAR_PAX_MAX bytes, an entry carries at most
 * TAR_XATTR_MAX xattrs of at most TAR_XATTR_VALUE_MAX bytes, at most
 * TAR_META_RUN_MAX pax/GNU headers precede one entry. The caller bounds the total
 * bytes through its read function (lib/oci/stream.c) and the entry count.
 * Every error is INVALID_CONFIG naming the entry (index and quoted name) and the
 * field; errors of the read function pass through unchanged.
 */
#ifndef SILO_OCI_TAR_H
#define SILO_OCI_TAR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

#define TAR_NAME_MAX 4096
#define TAR_PAX_MAX (1u << 20)
#define TAR_XATTR_MAX 64
#define TAR_XATTR_VALUE_MAX 65536
#define TAR_META_RUN_MAX 16

typedef enum tar_type {
	TAR_REG = 1,
	TAR_HARDLINK,
	TAR_SYMLINK,
	TAR_CHR,
	TAR_BLK,
	TAR_DIR,
	TAR_FIFO,
} tar_type;

typedef struct tar_xattr {
	char *name;
	unsigned char *value;
	size_t len;
} tar_xattr;

typedef struct tar_entry {
	char *path;            /* as recorded (not normalized), never NULL or empty */
	char *link;            /* hardlink / symlink target, NULL for other types */
	tar_type type;
	uint64_t size;         /* data bytes that follow (0 for everything but files) */
	uint32_t mode;         /* permission bits, & 07777 */
	uint32_t uid, gid;
	int64_t mtime;
	uint32_t mtime_nsec;
	uint32_t devmajor, devminor;
	tar_xattr xattrs[TAR_XATTR_MAX];
	size_t n_xattrs;
	uint64_t index;        /* 1-based number of the header block in the archive */
} tar_entry;

/* Read up to n bytes; 0 at end of input, -1 with *err filled. */
typedef ssize_t (*tar_read_fn)(void *ud, void *buf, size_t n, silo_error *err);

typedef struct tar_reader tar_reader;

tar_reader *tar_reader_new(tar_read_fn fn, void *ud);
void tar_reader_free(tar_reader *r);
/* The next entry: 1 and *e (valid until the next call), 0 at the end of the archive,
 * -1 on error. Data of the previous entry that was not read is skipped. */
int tar_next(tar_reader *r, const tar_entry **e, silo_error *err);
/* Data of the current entry: bytes read (0 when it is all read), -1 on error. */
ssize_t tar_read(tar_reader *r, void *buf, size_t n, silo_error *err);
/* After tar_next returned 0: consume the rest of the input (end-of-archive padding)
 * so that a digest over the stream covers all of it. */
int tar_finish(tar_reader *r, silo_error *err);
/* Quote an archive name for an error message: printable ASCII kept, the rest as
 * \xNN, cut at about 160 bytes with "...". */
const char *tar_quote(const char *s, char *buf, size_t len);
/* An error about one entry of an extraction: "<prefix> \"<quoted path>\": <message>". */
int tar_entry_fail(silo_error *err, silo_code code, int e, const char *prefix, const char *path, const char *fmt,
		   va_list ap) __attribute__((format(printf, 6, 0)));

#endif
