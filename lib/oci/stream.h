/* SPDX-License-Identifier: Apache-2.0
 * Byte source for archives and layers: a file descriptor, decompressed when its
 * first bytes are a gzip, zstd or xz header (zlib, libzstd, liblzma), with the
 * SHA-256 of the raw bytes (the blob digest) and of the decompressed bytes (the
 * layer diff_id) computed on the way, and every decompressed byte charged to an
 * import-wide budget. Past the budget a read fails with RESOURCE_EXCEEDED, so a
 * decompression bomb costs at most the budget in CPU and nothing on disk beyond it.
 * Decoder memory is bounded too: zstd windows up to 2^27 bytes, xz 256 MiB.
 */
#ifndef SILO_OCI_STREAM_H
#define SILO_OCI_STREAM_H

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

typedef enum oci_comp { OCI_COMP_NONE, OCI_COMP_GZIP, OCI_COMP_ZSTD, OCI_COMP_XZ } oci_comp;

/* Import-wide limits; each stream and each extracted entry draws from them. */
typedef struct oci_budget {
	uint64_t max_bytes, used_bytes;
	uint64_t max_entries, used_entries;
} oci_budget;

typedef struct oci_stream oci_stream;

/* what names the source in errors ("layer sha256:ab12..."); fd stays the caller's. */
int oci_stream_open(int fd, const char *what, oci_budget *b, oci_stream **out, silo_error *err);
oci_comp oci_stream_comp(const oci_stream *s);
const char *oci_comp_name(oci_comp c);
/* tar_read_fn: decompressed bytes, 0 at the end. Its errors do not name the
 * stream (the tar reader's caller adds that); those of open and finish do. */
ssize_t oci_stream_read(void *s, void *buf, size_t n, silo_error *err);
/* Read what is left (decompressed and raw) and give both digests as 64 hex + NUL. */
int oci_stream_finish(oci_stream *s, char raw_hex[65], uint64_t *raw_size, char out_hex[65], silo_error *err);
void oci_stream_close(oci_stream *s);

#endif
