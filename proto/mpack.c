/* SPDX-License-Identifier: Apache-2.0 */
#include "mpack.h"

#include <stdlib.h>
#include <string.h>

void mp_buf_init(mp_buf *b)
{
	b->p = NULL;
	b->len = b->cap = 0;
	b->oom = false;
}

void mp_buf_free(mp_buf *b)
{
	free(b->p);
	mp_buf_init(b);
}

void mp_buf_reset(mp_buf *b)
{
	b->len = 0;
}

static bool reserve(mp_buf *b, size_t n)
{
	if (b->oom)
		return false;
	if (b->len + n <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + n) {
		if (cap > SIZE_MAX / 2) {
			b->oom = true;
			return false;
		}
		cap *= 2;
	}
	uint8_t *p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void mp_put_raw(mp_buf *b, const void *p, size_t n)
{
	if (!n || !reserve(b, n))
		return;
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void put_u8(mp_buf *b, uint8_t v)
{
	mp_put_raw(b, &v, 1);
}

static void put_be(mp_buf *b, uint8_t tag, uint64_t v, int bytes)
{
	uint8_t tmp[9];
	tmp[0] = tag;
	for (int i = 0; i < bytes; i++)
		tmp[1 + i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
	mp_put_raw(b, tmp, (size_t)bytes + 1);
}

void mp_put_nil(mp_buf *b)
{
	put_u8(b, 0xc0);
}

void mp_put_bool(mp_buf *b, bool v)
{
	put_u8(b, v ? 0xc3 : 0xc2);
}

void mp_put_uint(mp_buf *b, uint64_t v)
{
	if (v < 128)
		put_u8(b, (uint8_t)v);
	else if (v <= 0xff)
		put_be(b, 0xcc, v, 1);
	else if (v <= 0xffff)
		put_be(b, 0xcd, v, 2);
	else if (v <= 0xffffffffu)
		put_be(b, 0xce, v, 4);
	else
		put_be(b, 0xcf, v, 8);
}

void mp_put_int(mp_buf *b, int64_t v)
{
	if (v >= 0) {
		mp_put_uint(b, (uint64_t)v);
		return;
	}
	if (v >= -32)
		put_u8(b, (uint8_t)(int8_t)v);
	else if (v >= INT8_MIN)
		put_be(b, 0xd0, (uint64_t)v, 1);
	else if (v >= INT16_MIN)
		put_be(b, 0xd1, (uint64_t)v, 2);
	else if (v >= INT32_MIN)
		put_be(b, 0xd2, (uint64_t)v, 4);
	else
		put_be(b, 0xd3, (uint64_t)v, 8);
}

void mp_put_str(mp_buf *b, const char *s, size_t n)
{
	if (n < 32)
		put_u8(b, (uint8_t)(0xa0 | n));
	else if (n <= 0xff)
		put_be(b, 0xd9, n, 1);
	else if (n <= 0xffff)
		put_be(b, 0xda, n, 2);
	else
		put_be(b, 0xdb, n, 4);
	mp_put_raw(b, s, n);
}

void mp_put_cstr(mp_buf *b, const char *s)
{
	mp_put_str(b, s ? s : "", s ? strlen(s) : 0);
}

void mp_put_bin(mp_buf *b, const void *p, size_t n)
{
	if (n <= 0xff)
		put_be(b, 0xc4, n, 1);
	else if (n <= 0xffff)
		put_be(b, 0xc5, n, 2);
	else
		put_be(b, 0xc6, n, 4);
	mp_put_raw(b, p, n);
}

void mp_put_array(mp_buf *b, uint32_t n)
{
	if (n < 16)
		put_u8(b, (uint8_t)(0x90 | n));
	else if (n <= 0xffff)
		put_be(b, 0xdc, n, 2);
	else
		put_be(b, 0xdd, n, 4);
}

void mp_put_map(mp_buf *b, uint32_t n)
{
	if (n < 16)
		put_u8(b, (uint8_t)(0x80 | n));
	else if (n <= 0xffff)
		put_be(b, 0xde, n, 2);
	else
		put_be(b, 0xdf, n, 4);
}

/* ---------------- decoder ---------------- */

void mp_rd_init(mp_rd *r, const void *p, size_t n)
{
	r->p = p;
	r->left = n;
	r->base_len = n;
	r->err = NULL;
	r->err_off = 0;
}

size_t mp_rd_offset(const mp_rd *r)
{
	return r->base_len - r->left;
}

bool mp_fail(mp_rd *r, const char *what)
{
	if (!r->err) {
		r->err = what;
		r->err_off = mp_rd_offset(r);
	}
	return false;
}

static bool need(mp_rd *r, size_t n)
{
	if (r->err)
		return false;
	if (r->left < n)
		return mp_fail(r, "truncated value");
	return true;
}

static uint64_t rd_be(const uint8_t *p, int bytes)
{
	uint64_t v = 0;
	for (int i = 0; i < bytes; i++)
		v = (v << 8) | p[i];
	return v;
}

static void advance(mp_rd *r, size_t n)
{
	r->p += n;
	r->left -= n;
}

mp_type mp_peek(mp_rd *r)
{
	if (r->err || r->left == 0)
		return MP_INVALID;
	uint8_t c = r->p[0];
	if (c <= 0x7f)
		return MP_UINT;
	if (c <= 0x8f)
		return MP_MAP;
	if (c <= 0x9f)
		return MP_ARRAY;
	if (c <= 0xbf)
		return MP_STR;
	if (c >= 0xe0)
		return MP_INT;
	switch (c) {
	case 0xc0: return MP_NIL;
	case 0xc2: case 0xc3: return MP_BOOL;
	case 0xc4: case 0xc5: case 0xc6: return MP_BIN;
	case 0xc7: case 0xc8: case 0xc9: case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: return MP_EXT;
	case 0xca: case 0xcb: return MP_FLOAT;
	case 0xcc: case 0xcd: case 0xce: case 0xcf: return MP_UINT;
	case 0xd0: case 0xd1: case 0xd2: case 0xd3: return MP_INT;
	case 0xd9: case 0xda: case 0xdb: return MP_STR;
	case 0xdc: case 0xdd: return MP_ARRAY;
	case 0xde: case 0xdf: return MP_MAP;
	default: return MP_INVALID; /* 0xc1 is never used */
	}
}

bool mp_get_nil(mp_rd *r)
{
	if (!need(r, 1))
		return false;
	if (r->p[0] != 0xc0)
		return mp_fail(r, "expected nil");
	advance(r, 1);
	return true;
}

bool mp_get_bool(mp_rd *r, bool *v)
{
	if (!need(r, 1))
		return false;
	if (r->p[0] != 0xc2 && r->p[0] != 0xc3)
		return mp_fail(r, "expected bool");
	*v = r->p[0] == 0xc3;
	advance(r, 1);
	return true;
}

/* Decode any integer into (neg, magnitude-or-value). */
static bool get_integer(mp_rd *r, bool *neg, uint64_t *u, int64_t *s)
{
	if (!need(r, 1))
		return false;
	uint8_t c = r->p[0];
	int bytes = 0;
	bool is_signed = false;
	if (c <= 0x7f) {
		*neg = false;
		*u = c;
		advance(r, 1);
		return true;
	}
	if (c >= 0xe0) {
		*neg = true;
		*s = (int8_t)c;
		advance(r, 1);
		return true;
	}
	switch (c) {
	case 0xcc: bytes = 1; break;
	case 0xcd: bytes = 2; break;
	case 0xce: bytes = 4; break;
	case 0xcf: bytes = 8; break;
	case 0xd0: bytes = 1; is_signed = true; break;
	case 0xd1: bytes = 2; is_signed = true; break;
	case 0xd2: bytes = 4; is_signed = true; break;
	case 0xd3: bytes = 8; is_signed = true; break;
	default: return mp_fail(r, "expected integer");
	}
	if (!need(r, 1 + (size_t)bytes))
		return false;
	uint64_t v = rd_be(r->p + 1, bytes);
	advance(r, 1 + (size_t)bytes);
	if (!is_signed) {
		*neg = false;
		*u = v;
		return true;
	}
	int64_t sv;
	switch (bytes) {
	case 1: sv = (int8_t)v; break;
	case 2: sv = (int16_t)v; break;
	case 4: sv = (int32_t)v; break;
	default: sv = (int64_t)v; break;
	}
	if (sv >= 0) {
		*neg = false;
		*u = (uint64_t)sv;
	} else {
		*neg = true;
		*s = sv;
	}
	return true;
}

bool mp_get_uint(mp_rd *r, uint64_t *v)
{
	bool neg;
	uint64_t u = 0;
	int64_t s = 0;
	if (!get_integer(r, &neg, &u, &s))
		return false;
	if (neg)
		return mp_fail(r, "expected non-negative integer");
	*v = u;
	return true;
}

bool mp_get_int(mp_rd *r, int64_t *v)
{
	bool neg;
	uint64_t u = 0;
	int64_t s = 0;
	if (!get_integer(r, &neg, &u, &s))
		return false;
	if (neg) {
		*v = s;
		return true;
	}
	if (u > (uint64_t)INT64_MAX)
		return mp_fail(r, "integer out of range");
	*v = (int64_t)u;
	return true;
}

/* The length-prefixed kinds: the fixed-length range (fix_hi 0: none) and mask, the 8/16/32-bit
 * length markers (t8 0: none), the least bytes one item takes (a length is checked against
 * what is left of the frame) and the messages. */
typedef struct lenkind {
	uint8_t fix_lo, fix_hi, fix_mask, t8, t16, t32;
	size_t item_min;
	const char *expected, *too_long, *exceeds;
} lenkind;
static const lenkind K_STR = {0xa0, 0xbf, 0x1f, 0xd9, 0xda, 0xdb, 1, "expected string", "string too long",
			      "string length exceeds frame"};
static const lenkind K_BIN = {0, 0, 0, 0xc4, 0xc5, 0xc6, 1, "expected binary", "binary too long",
			      "binary length exceeds frame"};
static const lenkind K_ARRAY = {0x90, 0x9f, 0x0f, 0, 0xdc, 0xdd, 1, "expected array", "array too long",
				"array length exceeds frame"};
static const lenkind K_MAP = {0x80, 0x8f, 0x0f, 0, 0xde, 0xdf, 2, "expected map", "map too large",
			      "map length exceeds frame"};

/* Read the header of a k item and check its length n against max and the frame. */
static bool get_len(mp_rd *r, const lenkind *k, uint64_t max, size_t *n)
{
	if (!need(r, 1))
		return false;
	uint8_t c = r->p[0];
	size_t hdr = 1;
	uint64_t len;
	if (k->fix_hi && c >= k->fix_lo && c <= k->fix_hi) {
		len = c & k->fix_mask;
	} else if (k->t8 && c == k->t8) {
		if (!need(r, 2))
			return false;
		len = r->p[1];
		hdr = 2;
	} else if (c == k->t16) {
		if (!need(r, 3))
			return false;
		len = rd_be(r->p + 1, 2);
		hdr = 3;
	} else if (c == k->t32) {
		if (!need(r, 5))
			return false;
		len = rd_be(r->p + 1, 4);
		hdr = 5;
	} else {
		return mp_fail(r, k->expected);
	}
	advance(r, hdr);
	if (len > max)
		return mp_fail(r, k->too_long);
	if (len > r->left / k->item_min)
		return mp_fail(r, k->exceeds);
	*n = (size_t)len;
	return true;
}

/* A string or binary: its bytes stay in the frame. */
static bool get_bytes(mp_rd *r, const lenkind *k, const uint8_t **p, size_t *n, size_t max)
{
	size_t len;
	if (!get_len(r, k, max, &len))
		return false;
	*p = r->p;
	*n = len;
	advance(r, len);
	return true;
}

bool mp_get_str(mp_rd *r, const char **p, size_t *n, size_t max)
{
	const uint8_t *b;
	if (!get_bytes(r, &K_STR, &b, n, max))
		return false;
	*p = (const char *)b;
	return true;
}

bool mp_get_bin(mp_rd *r, const uint8_t **p, size_t *n, size_t max)
{
	return get_bytes(r, &K_BIN, p, n, max);
}

bool mp_get_array(mp_rd *r, uint32_t *n, uint32_t max)
{
	size_t len;
	if (!get_len(r, &K_ARRAY, max, &len))
		return false;
	*n = (uint32_t)len;
	return true;
}

bool mp_get_map(mp_rd *r, uint32_t *n, uint32_t max)
{
	size_t len;
	if (!get_len(r, &K_MAP, max, &len))
		return false;
	*n = (uint32_t)len;
	return true;
}

bool mp_skip(mp_rd *r, int max_depth)
{
	if (max_depth < 0)
		return mp_fail(r, "nesting too deep");
	const uint8_t *p;
	size_t n;
	uint32_t cnt;
	switch (mp_peek(r)) {
	case MP_NIL: return mp_get_nil(r);
	case MP_BOOL: { bool b; return mp_get_bool(r, &b); }
	case MP_UINT: case MP_INT: {
		bool neg; uint64_t u; int64_t s;
		return get_integer(r, &neg, &u, &s);
	}
	case MP_FLOAT: {
		size_t len = r->p[0] == 0xca ? 5 : 9;
		if (!need(r, len))
			return false;
		advance(r, len);
		return true;
	}
	case MP_STR: { const char *s; return mp_get_str(r, &s, &n, SIZE_MAX); }
	case MP_BIN: return mp_get_bin(r, &p, &n, SIZE_MAX);
	case MP_ARRAY:
		if (!mp_get_array(r, &cnt, UINT32_MAX))
			return false;
		for (uint32_t i = 0; i < cnt; i++)
			if (!mp_skip(r, max_depth - 1))
				return false;
		return true;
	case MP_MAP:
		if (!mp_get_map(r, &cnt, UINT32_MAX))
			return false;
		for (uint32_t i = 0; i < cnt; i++)
			if (!mp_skip(r, max_depth - 1) || !mp_skip(r, max_depth - 1))
				return false;
		return true;
	case MP_EXT: {
		uint8_t c = r->p[0];
		size_t hdr, len;
		if (c >= 0xd4 && c <= 0xd8) {
			hdr = 2;
			len = (size_t)1 << (c - 0xd4);
		} else {
			int lb = c == 0xc7 ? 1 : c == 0xc8 ? 2 : 4;
			if (!need(r, 1 + (size_t)lb))
				return false;
			len = (size_t)rd_be(r->p + 1, lb);
			hdr = 2 + (size_t)lb;
		}
		if (len > SIZE_MAX - hdr || !need(r, hdr + len))
			return false;
		advance(r, hdr + len);
		return true;
	}
	case MP_INVALID:
	default:
		return mp_fail(r, r->left ? "invalid type byte" : "truncated value");
	}
}
