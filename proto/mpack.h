/* SPDX-License-Identifier: Apache-2.0
 * A small bounded MessagePack codec shared by the host and the guest agent.
 *
 * The decoder never trusts a declared length: every string/bin/array/map
 * length is checked against the bytes that remain and against caller limits
 * before anything is allocated. Builds with glibc and musl; no dependencies.
 */
#ifndef SILO_PROTO_MPACK_H
#define SILO_PROTO_MPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- encoder: appends to a growable buffer ---- */
typedef struct mp_buf {
	uint8_t *p;
	size_t len, cap;
	bool oom;        /* set when an allocation failed; the buffer is then unusable */
} mp_buf;

void mp_buf_init(mp_buf *b);
void mp_buf_free(mp_buf *b);
void mp_buf_reset(mp_buf *b);
void mp_put_nil(mp_buf *b);
void mp_put_bool(mp_buf *b, bool v);
void mp_put_uint(mp_buf *b, uint64_t v);
void mp_put_int(mp_buf *b, int64_t v);
void mp_put_str(mp_buf *b, const char *s, size_t n);
void mp_put_cstr(mp_buf *b, const char *s);
void mp_put_bin(mp_buf *b, const void *p, size_t n);
void mp_put_array(mp_buf *b, uint32_t n);
void mp_put_map(mp_buf *b, uint32_t n);
void mp_put_raw(mp_buf *b, const void *p, size_t n);

/* ---- decoder: a cursor over a byte span ---- */
typedef enum mp_type {
	MP_NIL, MP_BOOL, MP_UINT, MP_INT, MP_FLOAT, MP_STR, MP_BIN, MP_ARRAY, MP_MAP, MP_EXT, MP_INVALID
} mp_type;

typedef struct mp_rd {
	const uint8_t *p;
	size_t left;
	size_t base_len;     /* total length, to report byte offsets */
	const char *err;     /* first error, NULL if none; sticky */
	size_t err_off;      /* byte offset of the first error */
} mp_rd;

void mp_rd_init(mp_rd *r, const void *p, size_t n);
size_t mp_rd_offset(const mp_rd *r);
/* Type of the next value without consuming it (MP_INVALID at end/garbage). */
mp_type mp_peek(mp_rd *r);
bool mp_get_nil(mp_rd *r);
bool mp_get_bool(mp_rd *r, bool *v);
/* Integers: accept any msgpack int encoding whose value fits. */
bool mp_get_uint(mp_rd *r, uint64_t *v);
bool mp_get_int(mp_rd *r, int64_t *v);
/* Strings/bins: *p points into the input (no copy); length <= max. */
bool mp_get_str(mp_rd *r, const char **p, size_t *n, size_t max);
bool mp_get_bin(mp_rd *r, const uint8_t **p, size_t *n, size_t max);
bool mp_get_array(mp_rd *r, uint32_t *n, uint32_t max);
bool mp_get_map(mp_rd *r, uint32_t *n, uint32_t max);
/* Skip one value of any type, nesting at most max_depth. */
bool mp_skip(mp_rd *r, int max_depth);
/* Record an error at the current offset (keeps the first one); returns false. */
bool mp_fail(mp_rd *r, const char *what);

#endif
