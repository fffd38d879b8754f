/* SPDX-License-Identifier: Apache-2.0
 * Decompressing, hashing, budgeted byte source (stream.h). The compression is
 * chosen by magic bytes, never by a file name: gzip 1f 8b, zstd 28 b5 2f fd,
 * xz fd 37 7a 58 5a 00; anything else is read as is. Concatenated gzip members,
 * zstd frames and xz streams are decoded in sequence. Bytes after the last gzip
 * member that are not another member are hashed (they are part of the blob) but
 * not decoded.
 */
#include "oci/stream.h"

#include <errno.h>
#include <inttypes.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "common/util.h"

#define IN_SIZE (128u * 1024)
#define XZ_MEMLIMIT (256ull << 20)
#define ZSTD_WINDOW_LOG_MAX 27

struct oci_stream {
	int fd;
	char what[200];
	oci_budget *b;
	oci_comp comp;
	crypto_hash_sha256_state raw_sha, out_sha;
	uint64_t raw_bytes;
	unsigned char *in;
	size_t in_pos, in_len;
	bool in_eof;
	bool dec_end;          /* the decoder saw the end of its data */
	bool zstd_idle;        /* the last zstd call ended a frame (the next one may start) */
	z_stream z;
	ZSTD_DCtx *zs;
	lzma_stream lz;
};

const char *oci_comp_name(oci_comp c)
{
	switch (c) {
	case OCI_COMP_GZIP: return "gzip";
	case OCI_COMP_ZSTD: return "zstd";
	case OCI_COMP_XZ: return "xz";
	case OCI_COMP_NONE: break;
	}
	return "none";
}

oci_comp oci_stream_comp(const oci_stream *s)
{
	return s->comp;
}

/* More raw input when the buffer is used up: 0, or -1. */
static int fill(oci_stream *s, silo_error *err)
{
	if (s->in_pos < s->in_len || s->in_eof)
		return 0;
	ssize_t k;
	do
		k = read(s->fd, s->in, IN_SIZE);
	while (k < 0 && errno == EINTR);
	if (k < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "read");
	crypto_hash_sha256_update(&s->raw_sha, s->in, (unsigned long long)k);
	s->raw_bytes += (uint64_t)k;
	s->in_pos = 0;
	s->in_len = (size_t)k;
	s->in_eof = k == 0;
	return 0;
}

/* Another gzip member follows: 1, 0, or -1 on a read error. */
static int gzip_magic_next(oci_stream *s, silo_error *err)
{
	if (fill(s, err) < 0)
		return -1;
	return s->in_len - s->in_pos >= 2 && s->in[s->in_pos] == 0x1f && s->in[s->in_pos + 1] == 0x8b;
}

int oci_stream_open(int fd, const char *what, oci_budget *b, oci_stream **out, silo_error *err)
{
	oci_stream *s = xcalloc(1, sizeof *s);
	s->fd = fd;
	s->b = b;
	snprintf(s->what, sizeof s->what, "%s", what);
	s->in = xmalloc(IN_SIZE);
	crypto_hash_sha256_init(&s->raw_sha);
	crypto_hash_sha256_init(&s->out_sha);
	/* gather enough bytes for the magic even from a pipe */
	while (s->in_len < 6 && !s->in_eof) {
		ssize_t k;
		do
			k = read(fd, s->in + s->in_len, IN_SIZE - s->in_len);
		while (k < 0 && errno == EINTR);
		if (k < 0) {
			silo_fail(err, SILO_ERR_IO_ERROR, errno, "%s: read", what);
			goto fail;
		}
		crypto_hash_sha256_update(&s->raw_sha, s->in + s->in_len, (unsigned long long)k);
		s->raw_bytes += (uint64_t)k;
		s->in_len += (size_t)k;
		s->in_eof = k == 0;
	}
	const unsigned char *m = s->in;
	size_t n = s->in_len;
	if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b) {
		s->comp = OCI_COMP_GZIP;
		if (inflateInit2(&s->z, 16 + MAX_WBITS) != Z_OK) {
			silo_fail(err, SILO_ERR_INTERNAL, ENOMEM, "%s: zlib init", what);
			goto fail;
		}
	} else if (n >= 4 && !memcmp(m, "\x28\xb5\x2f\xfd", 4)) {
		s->comp = OCI_COMP_ZSTD;
		s->zs = ZSTD_createDCtx();
		if (!s->zs || ZSTD_isError(ZSTD_DCtx_setParameter(s->zs, ZSTD_d_windowLogMax, ZSTD_WINDOW_LOG_MAX))) {
			silo_fail(err, SILO_ERR_INTERNAL, ENOMEM, "%s: zstd init", what);
			goto fail;
		}
	} else if (n >= 6 && !memcmp(m, "\xfd" "7zXZ\0", 6)) {
		s->comp = OCI_COMP_XZ;
		lzma_stream init = LZMA_STREAM_INIT;
		s->lz = init;
		if (lzma_stream_decoder(&s->lz, XZ_MEMLIMIT, LZMA_CONCATENATED) != LZMA_OK) {
			silo_fail(err, SILO_ERR_INTERNAL, ENOMEM, "%s: xz init", what);
			goto fail;
		}
	}
	*out = s;
	return 0;
fail:
	oci_stream_close(s);
	return -1;
}

void oci_stream_close(oci_stream *s)
{
	if (!s)
		return;
	if (s->comp == OCI_COMP_GZIP)
		inflateEnd(&s->z);
	if (s->zs)
		ZSTD_freeDCtx(s->zs);
	if (s->comp == OCI_COMP_XZ)
		lzma_end(&s->lz);
	free(s->in);
	free(s);
}

static int corrupt(oci_stream *s, silo_error *err, const char *why)
{
	return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s data: %s", oci_comp_name(s->comp), why);
}

/* One decoding step into buf: bytes produced (may be 0 while input is consumed),
 * or -1. Sets dec_end at the end of the data. */
static ssize_t decode(oci_stream *s, unsigned char *buf, size_t n, silo_error *err)
{
	if (fill(s, err) < 0)
		return -1;
	size_t avail = s->in_len - s->in_pos;
	if (s->comp == OCI_COMP_NONE) {
		if (avail == 0) {
			s->dec_end = true;
			return 0;
		}
		size_t k = MIN(n, avail);
		memcpy(buf, s->in + s->in_pos, k);
		s->in_pos += k;
		return (ssize_t)k;
	}
	if (s->comp == OCI_COMP_GZIP) {
		s->z.next_in = s->in + s->in_pos;
		s->z.avail_in = (uInt)avail;
		s->z.next_out = buf;
		s->z.avail_out = (uInt)MIN(n, (size_t)UINT32_MAX);
		int rc = inflate(&s->z, Z_NO_FLUSH);
		s->in_pos = s->in_len - s->z.avail_in;
		ssize_t k = (ssize_t)((size_t)(s->z.next_out - buf));
		if (rc == Z_STREAM_END) {
			int more = gzip_magic_next(s, err);
			if (more < 0)
				return -1;
			if (more)
				inflateReset(&s->z);   /* another member follows */
			else
				s->dec_end = true;
			return k;
		}
		if (rc == Z_BUF_ERROR && k == 0 && s->in_eof)
			return corrupt(s, err, "truncated");
		if (rc != Z_OK && rc != Z_BUF_ERROR)
			return corrupt(s, err, s->z.msg ? s->z.msg : "invalid");
		return k;
	}
	if (s->comp == OCI_COMP_ZSTD) {
		ZSTD_inBuffer ib = {s->in + s->in_pos, avail, 0};
		ZSTD_outBuffer ob = {buf, n, 0};
		size_t rc = ZSTD_decompressStream(s->zs, &ob, &ib);
		s->in_pos += ib.pos;
		if (ZSTD_isError(rc))
			return corrupt(s, err, ZSTD_getErrorName(rc));
		if (ob.pos == 0 && ib.pos == 0 && s->in_eof) {
			/* at the end of input: fine between frames, truncated inside one */
			if (!s->zstd_idle)
				return corrupt(s, err, "truncated");
			s->dec_end = true;
		} else {
			s->zstd_idle = rc == 0;
		}
		return (ssize_t)ob.pos;
	}
	s->lz.next_in = s->in + s->in_pos;
	s->lz.avail_in = avail;
	s->lz.next_out = buf;
	s->lz.avail_out = n;
	lzma_ret rc = lzma_code(&s->lz, s->in_eof ? LZMA_FINISH : LZMA_RUN);
	s->in_pos = s->in_len - s->lz.avail_in;
	ssize_t k = (ssize_t)(n - s->lz.avail_out);
	if (rc == LZMA_STREAM_END) {
		s->dec_end = true;
		return k;
	}
	if (rc == LZMA_MEMLIMIT_ERROR)
		return corrupt(s, err, "needs more than 256 MiB of decoder memory");
	if (rc == LZMA_BUF_ERROR && s->in_eof)
		return corrupt(s, err, "truncated");
	if (rc != LZMA_OK && rc != LZMA_BUF_ERROR)
		return corrupt(s, err, "invalid");
	return k;
}

ssize_t oci_stream_read(void *ud, void *buf, size_t n, silo_error *err)
{
	oci_stream *s = ud;
	if (n == 0)
		return 0;
	for (;;) {
		if (s->dec_end)
			return 0;
		ssize_t k = decode(s, buf, n, err);
		if (k < 0)
			return -1;
		if (k == 0)
			continue;
		if (s->b) {
			if ((uint64_t)k > s->b->max_bytes - s->b->used_bytes)
				return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0,
						 "expands past the import size limit of %" PRIu64
						 " bytes (decompression bomb? raise it with --max-size)",
						 s->b->max_bytes);
			s->b->used_bytes += (uint64_t)k;
		}
		crypto_hash_sha256_update(&s->out_sha, buf, (unsigned long long)k);
		return k;
	}
}

int oci_stream_finish(oci_stream *s, char raw_hex[65], uint64_t *raw_size, char out_hex[65], silo_error *err)
{
	unsigned char buf[16384];
	for (;;) {
		ssize_t k = oci_stream_read(s, buf, sizeof buf, err);
		if (k < 0)
			return silo_error_prefix(err, "%s", s->what), -1;
		if (k == 0)
			break;
	}
	/* raw bytes the decoder did not need (trailing data) still belong to the blob */
	for (;;) {
		s->in_pos = s->in_len;
		if (fill(s, err) < 0)
			return silo_error_prefix(err, "%s", s->what), -1;
		if (s->in_eof)
			break;
	}
	unsigned char d[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_final(&s->raw_sha, d);
	sodium_bin2hex(raw_hex, 65, d, sizeof d);
	crypto_hash_sha256_final(&s->out_sha, d);
	sodium_bin2hex(out_hex, 65, d, sizeof d);
	if (raw_size)
		*raw_size = s->raw_bytes;
	return 0;
}
