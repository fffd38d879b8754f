/* SPDX-License-Identifier: Apache-2.0
 * Our own TOML 1.0 parser: a DOM with key order preserved. Errors carry
 * "line:col: message". Input size and nesting depth are bounded.
 */
#ifndef SILO_SPEC_TOML_H
#define SILO_SPEC_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOML_MAX_INPUT (1024 * 1024)
#define TOML_MAX_DEPTH 64

typedef enum toml_type {
	TOML_STRING,
	TOML_INTEGER,
	TOML_FLOAT,
	TOML_BOOL,
	TOML_DATETIME,        /* offset date-time */
	TOML_LOCAL_DATETIME,
	TOML_LOCAL_DATE,
	TOML_LOCAL_TIME,
	TOML_ARRAY,
	TOML_TABLE,
} toml_type;

typedef struct toml_datetime {
	int year, month, day;
	int hour, minute, second;
	int nanosecond;
	int offset_minutes;    /* TOML_DATETIME only; Z = 0 */
} toml_datetime;

typedef struct toml_value toml_value;
struct toml_value {
	toml_type type;
	int line, col;         /* where the value (or table header) starts */
	int kline, kcol;       /* where its key was written (0 for array items and the root) */
	unsigned flags;        /* internal: how a table/array was created */
	union {
		struct {
			char *ptr;     /* NUL-terminated; may contain no NUL (TOML forbids U+0000 escapes? no: allowed) */
			size_t len;
		} str;
		int64_t i;
		double f;
		bool b;
		toml_datetime dt;
		struct {
			toml_value **items;
			size_t n, cap;
		} arr;
		struct {
			char **keys;
			toml_value **vals;
			size_t n, cap;
		} tab;
	} u;
};

/* Parse a document; NULL on error with "line:col: message" in err. */
toml_value *toml_parse(const char *text, size_t len, char *err, size_t errlen);
void toml_free(toml_value *v);
/* Table lookup (NULL if absent or v is not a table). */
toml_value *toml_get(const toml_value *table, const char *key);
/* Keys are NUL-terminated. A U+0000 in a quoted key ("a\u0000b", allowed by TOML 1.0) is
 * kept as the two bytes C0 80 (as modified UTF-8 does): parsed input is valid UTF-8, which
 * never holds them, so such a key equals no other key. Users of keys refuse it where a NUL
 * makes no sense (spec.c). */
#define TOML_KEY_NUL "\xC0\x80"
bool toml_key_has_nul(const char *key);
const char *toml_type_name(toml_type t);
/* Write a TOML string literal (basic string with escapes) for s into a malloc'd buffer. */
char *toml_quote(const char *s, size_t len);
/* Is s a bare key ([A-Za-z0-9_-]+)? */
bool toml_is_bare_key(const char *s);

#endif
