/* SPDX-License-Identifier: Apache-2.0
 * TOML 1.0 parser (https://toml.io/en/v1.0.0), written for Silo.
 *
 * Recursive descent over bytes with line/column tracking. Table semantics:
 *   F_HEADER   table defined by a [header]            (cannot be defined again)
 *   F_IMPLICIT table created as a parent of a header  (may be defined once later)
 *   F_DOTTED   table created by dotted keys           (extendable by dotted keys only)
 *   F_INLINE   inline table or static array           (immutable)
 *   F_AOT      array of tables from [[header]]
 */
#include "spec/toml.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

enum { F_HEADER = 1, F_IMPLICIT = 2, F_DOTTED = 4, F_INLINE = 8, F_AOT = 16 };

typedef struct parser {
	const char *s;
	size_t len, pos;
	int line, col;
	char *err;
	size_t errlen;
	bool failed;
	int depth; /* nesting of the value being parsed; keys and headers count too (root = 0) */
} parser;

static bool fail(parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(parser *p, const char *fmt, ...)
{
	if (p->failed)
		return false;
	p->failed = true;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (p->err)
		snprintf(p->err, p->errlen, "%d:%d: %s", p->line, p->col, msg);
	return false;
}

static int peek(parser *p)
{
	return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

static int peek_at(parser *p, size_t k)
{
	return p->pos + k < p->len ? (unsigned char)p->s[p->pos + k] : -1;
}

static void adv(parser *p)
{
	if (p->pos >= p->len)
		return;
	if (p->s[p->pos] == '\n') {
		p->line++;
		p->col = 1;
	} else if (((unsigned char)p->s[p->pos] & 0xc0) != 0x80) {
		p->col++;
	}
	p->pos++;
}

static void adv_n(parser *p, size_t n)
{
	while (n--)
		adv(p);
}

static bool starts(parser *p, const char *lit)
{
	size_t n = strlen(lit);
	return p->len - p->pos >= n && memcmp(p->s + p->pos, lit, n) == 0;
}

static void skip_ws(parser *p)
{
	while (peek(p) == ' ' || peek(p) == '\t')
		adv(p);
}

/* Validate one UTF-8 sequence at pos; returns its length or 0. */
static size_t utf8_len(const unsigned char *s, size_t left, uint32_t *cp_out)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp;
	if (c < 0x80) {
		*cp_out = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (left < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_out = cp;
	return n;
}

static bool skip_comment(parser *p)
{
	if (peek(p) != '#')
		return true;
	while (p->pos < p->len && peek(p) != '\n') {
		int c = peek(p);
		if ((c < 0x20 && c != '\t' && !(c == '\r' && peek_at(p, 1) == '\n')) || c == 0x7f)
			return fail(p, "control character 0x%02x in comment", c);
		if (c >= 0x80) {
			uint32_t cp;
			size_t n = utf8_len((const unsigned char *)p->s + p->pos, p->len - p->pos, &cp);
			if (!n)
				return fail(p, "invalid UTF-8 in comment");
			adv_n(p, n);
			continue;
		}
		adv(p);
	}
	return true;
}

/* Expect end of line (after optional ws/comment). */
static bool expect_eol(parser *p)
{
	skip_ws(p);
	if (!skip_comment(p))
		return false;
	if (p->pos >= p->len)
		return true;
	if (peek(p) == '\n') {
		adv(p);
		return true;
	}
	if (peek(p) == '\r' && peek_at(p, 1) == '\n') {
		adv_n(p, 2);
		return true;
	}
	unsigned char c = (unsigned char)peek(p);
	if (c < 0x20 || c >= 0x7f)
		return fail(p, "expected end of line, found byte 0x%02x", c);
	return fail(p, "expected end of line, found '%c'", c);
}

/* Skip whitespace, newlines and comments (inside arrays, between lines). */
static bool skip_ws_nl(parser *p)
{
	for (;;) {
		skip_ws(p);
		if (!skip_comment(p))
			return false;
		if (peek(p) == '\n')
			adv(p);
		else if (peek(p) == '\r' && peek_at(p, 1) == '\n')
			adv_n(p, 2);
		else
			return true;
	}
}

/* ---------------- values ---------------- */

static toml_value *val_new(parser *p, toml_type t)
{
	toml_value *v = xcalloc(1, sizeof *v);
	v->type = t;
	v->line = p->line;
	v->col = p->col;
	return v;
}

void toml_free(toml_value *v)
{
	if (!v)
		return;
	switch (v->type) {
	case TOML_STRING:
		free(v->u.str.ptr);
		break;
	case TOML_ARRAY:
		for (size_t i = 0; i < v->u.arr.n; i++)
			toml_free(v->u.arr.items[i]);
		free(v->u.arr.items);
		break;
	case TOML_TABLE:
		for (size_t i = 0; i < v->u.tab.n; i++) {
			free(v->u.tab.keys[i]);
			toml_free(v->u.tab.vals[i]);
		}
		free(v->u.tab.keys);
		free(v->u.tab.vals);
		break;
	default:
		break;
	}
	free(v);
}

static void arr_push(toml_value *a, toml_value *v)
{
	if (a->u.arr.n == a->u.arr.cap) {
		a->u.arr.cap = a->u.arr.cap ? a->u.arr.cap * 2 : 4;
		a->u.arr.items = xrealloc(a->u.arr.items, a->u.arr.cap * sizeof *a->u.arr.items);
	}
	a->u.arr.items[a->u.arr.n++] = v;
}

static void tab_put(toml_value *t, char *key, toml_value *v)
{
	if (t->u.tab.n == t->u.tab.cap) {
		t->u.tab.cap = t->u.tab.cap ? t->u.tab.cap * 2 : 8;
		t->u.tab.keys = xrealloc(t->u.tab.keys, t->u.tab.cap * sizeof *t->u.tab.keys);
		t->u.tab.vals = xrealloc(t->u.tab.vals, t->u.tab.cap * sizeof *t->u.tab.vals);
	}
	t->u.tab.keys[t->u.tab.n] = key;
	t->u.tab.vals[t->u.tab.n++] = v;
}

toml_value *toml_get(const toml_value *t, const char *key)
{
	if (!t || t->type != TOML_TABLE)
		return NULL;
	for (size_t i = 0; i < t->u.tab.n; i++)
		if (!strcmp(t->u.tab.keys[i], key))
			return t->u.tab.vals[i];
	return NULL;
}

/* growable byte string */
typedef struct sbuf {
	char *p;
	size_t n, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		b->cap = (b->n + n + 1) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void sb_put_cp(sbuf *b, uint32_t cp)
{
	char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	sb_put(b, u, n);
}

/* Copy one literal character (validating UTF-8/control chars) into b. */
static bool string_char(parser *p, sbuf *b, bool multiline)
{
	int c = peek(p);
	if (c == '\r' && multiline && peek_at(p, 1) == '\n') {
		sb_put(b, "\n", 1);
		adv_n(p, 2);
		return true;
	}
	if (c == '\n' && multiline) {
		sb_put(b, "\n", 1);
		adv(p);
		return true;
	}
	if ((c < 0x20 && c != '\t') || c == 0x7f)
		return fail(p, "control character 0x%02x in string (use an escape)", c);
	if (c >= 0x80) {
		uint32_t cp;
		size_t n = utf8_len((const unsigned char *)p->s + p->pos, p->len - p->pos, &cp);
		if (!n)
			return fail(p, "invalid UTF-8 in string");
		sb_put(b, p->s + p->pos, n);
		adv_n(p, n);
		return true;
	}
	sb_put(b, p->s + p->pos, 1);
	adv(p);
	return true;
}

static bool hex_cp(parser *p, int digits, uint32_t *out)
{
	uint32_t cp = 0;
	for (int i = 0; i < digits; i++) {
		int c = peek(p);
		int d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return fail(p, "expected %d hex digits in unicode escape", digits);
		cp = cp * 16 + (uint32_t)d;
		adv(p);
	}
	if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return fail(p, "escape U+%04X is not a Unicode scalar value", cp);
	*out = cp;
	return true;
}

static bool escape(parser *p, sbuf *b, bool multiline)
{
	adv(p); /* backslash */
	int c = peek(p);
	uint32_t cp;
	switch (c) {
	case 'b': sb_put(b, "\b", 1); adv(p); return true;
	case 't': sb_put(b, "\t", 1); adv(p); return true;
	case 'n': sb_put(b, "\n", 1); adv(p); return true;
	case 'f': sb_put(b, "\f", 1); adv(p); return true;
	case 'r': sb_put(b, "\r", 1); adv(p); return true;
	case '"': sb_put(b, "\"", 1); adv(p); return true;
	case '\\': sb_put(b, "\\", 1); adv(p); return true;
	case 'u':
		adv(p);
		if (!hex_cp(p, 4, &cp))
			return false;
		sb_put_cp(b, cp);
		return true;
	case 'U':
		adv(p);
		if (!hex_cp(p, 8, &cp))
			return false;
		sb_put_cp(b, cp);
		return true;
	default:
		if (multiline) {
			/* line-ending backslash: trim whitespace and newlines up to the next content */
			size_t save = p->pos;
			int sl = p->line, sc = p->col;
			skip_ws(p);
			if (peek(p) == '\n' || (peek(p) == '\r' && peek_at(p, 1) == '\n')) {
				while (peek(p) == ' ' || peek(p) == '\t' || peek(p) == '\n' ||
				       (peek(p) == '\r' && peek_at(p, 1) == '\n'))
					adv(p);
				return true;
			}
			p->pos = save, p->line = sl, p->col = sc;
		}
		if (c < 0)
			return fail(p, "unterminated escape");
		return fail(p, "invalid escape sequence '\\%c'", c);
	}
}

static bool parse_string(parser *p, char **out, size_t *outlen, bool allow_multiline)
{
	sbuf b = {0};
	sb_put(&b, "", 0);
	int q = peek(p);
	bool literal = q == '\'';
	bool multi = allow_multiline && (literal ? starts(p, "'''") : starts(p, "\"\"\""));
	int sl = p->line, sc = p->col;
	if (multi) {
		adv_n(p, 3);
		if (peek(p) == '\n')
			adv(p);
		else if (peek(p) == '\r' && peek_at(p, 1) == '\n')
			adv_n(p, 2);
		const char *close = literal ? "'''" : "\"\"\"";
		for (;;) {
			if (p->pos >= p->len) {
				p->line = sl, p->col = sc;
				free(b.p);
				return fail(p, "unterminated multi-line string");
			}
			if (starts(p, close)) {
				/* up to two extra quotes belong to the content */
				int extra = 0;
				while (extra < 2 && p->pos + 3 + (size_t)extra < p->len && p->s[p->pos + 3 + extra] == q)
					extra++;
				for (int i = 0; i < extra; i++)
					sb_put(&b, &p->s[p->pos], 1);
				adv_n(p, 3 + (size_t)extra);
				break;
			}
			bool ok = (!literal && peek(p) == '\\') ? escape(p, &b, true) : string_char(p, &b, true);
			if (!ok) {
				free(b.p);
				return false;
			}
		}
	} else {
		adv(p);
		for (;;) {
			int c = peek(p);
			if (c < 0 || c == '\n' || (c == '\r' && peek_at(p, 1) == '\n')) {
				free(b.p);
				p->line = sl, p->col = sc;
				return fail(p, "unterminated string");
			}
			if (c == q) {
				adv(p);
				break;
			}
			bool ok = (!literal && c == '\\') ? escape(p, &b, false) : string_char(p, &b, false);
			if (!ok) {
				free(b.p);
				return false;
			}
		}
	}
	*out = b.p;
	*outlen = b.n;
	return true;
}

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* Collect the token of a number/date/time. */
static size_t scan_token(parser *p, char *buf, size_t bufsz)
{
	size_t n = 0;
	for (;;) {
		int c = peek_at(p, n);
		bool ok = is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '+' ||
			  c == '-' || c == '.' || c == ':';
		/* a space between a date and a time: "1979-05-27 07:32:00" */
		if (c == ' ' && n == 10 && buf[4] == '-' && buf[7] == '-' && is_digit(peek_at(p, n + 1)) &&
		    is_digit(peek_at(p, n + 2)) && peek_at(p, n + 3) == ':')
			ok = true;
		if (!ok || n + 1 >= bufsz)
			break;
		buf[n] = (char)c;
		n++;
	}
	buf[n] = '\0';
	return n;
}

static int days_in_month(int y, int m)
{
	static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return d[m - 1];
}

static bool digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* Parse "HH:MM:SS[.frac]" at s; returns chars consumed or 0. */
static size_t parse_time(const char *s, toml_datetime *dt)
{
	if (strlen(s) < 8 || s[2] != ':' || s[5] != ':' || !digits(s, 2, &dt->hour) ||
	    !digits(s + 3, 2, &dt->minute) || !digits(s + 6, 2, &dt->second))
		return 0;
	if (dt->hour > 23 || dt->minute > 59 || dt->second > 60)
		return 0;
	size_t n = 8;
	if (s[n] == '.') {
		n++;
		int k = 0, ns = 0;
		while (is_digit(s[n])) {
			if (k < 9) {
				ns = ns * 10 + (s[n] - '0');
				k++;
			}
			n++;
		}
		if (k == 0)
			return 0;
		while (k++ < 9)
			ns *= 10;
		dt->nanosecond = ns;
	}
	return n;
}

static bool parse_datetime(parser *p, const char *tok, toml_value *v)
{
	toml_datetime dt = {0};
	size_t n = strlen(tok);
	if (n >= 10 && tok[4] == '-' && tok[7] == '-') {
		if (!digits(tok, 4, &dt.year) || !digits(tok + 5, 2, &dt.month) || !digits(tok + 8, 2, &dt.day))
			return fail(p, "invalid date '%s' (expected YYYY-MM-DD)", tok);
		if (dt.month < 1 || dt.month > 12 || dt.day < 1 || dt.day > days_in_month(dt.year, dt.month))
			return fail(p, "date '%s' is out of range", tok);
		if (n == 10) {
			v->type = TOML_LOCAL_DATE;
			v->u.dt = dt;
			return true;
		}
		if (tok[10] != 'T' && tok[10] != 't' && tok[10] != ' ')
			return fail(p, "invalid date-time '%s'", tok);
		size_t k = parse_time(tok + 11, &dt);
		if (!k)
			return fail(p, "invalid time in '%s' (expected HH:MM:SS[.frac])", tok);
		const char *rest = tok + 11 + k;
		if (!*rest) {
			v->type = TOML_LOCAL_DATETIME;
		} else if ((rest[0] == 'Z' || rest[0] == 'z') && !rest[1]) {
			v->type = TOML_DATETIME;
		} else if ((rest[0] == '+' || rest[0] == '-') && strlen(rest) == 6 && rest[3] == ':') {
			int oh, om;
			if (!digits(rest + 1, 2, &oh) || !digits(rest + 4, 2, &om) || oh > 23 || om > 59)
				return fail(p, "invalid UTC offset in '%s'", tok);
			dt.offset_minutes = (rest[0] == '-' ? -1 : 1) * (oh * 60 + om);
			v->type = TOML_DATETIME;
		} else {
			return fail(p, "invalid date-time '%s'", tok);
		}
		v->u.dt = dt;
		return true;
	}
	size_t k = parse_time(tok, &dt);
	if (!k || tok[k])
		return fail(p, "invalid time '%s' (expected HH:MM:SS[.frac])", tok);
	v->type = TOML_LOCAL_TIME;
	v->u.dt = dt;
	return true;
}

/* Remove underscores, checking each sits between two digits of the given class. */
static bool strip_underscores(parser *p, const char *in, char *out, int (*isd)(int))
{
	size_t j = 0;
	for (size_t i = 0; in[i]; i++) {
		if (in[i] == '_') {
			if (i == 0 || !isd((unsigned char)in[i - 1]) || !isd((unsigned char)in[i + 1]))
				return fail(p, "'_' must be between digits in '%s'", in);
			continue;
		}
		out[j++] = in[i];
	}
	out[j] = '\0';
	return true;
}

static int isdec(int c) { return is_digit(c); }
static int ishex(int c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static int isoct(int c) { return c >= '0' && c <= '7'; }
static int isbin(int c) { return c == '0' || c == '1'; }

static bool parse_number(parser *p, const char *tok, toml_value *v)
{
	char clean[128];
	const char *t = tok;
	if (!strcmp(t, "inf") || !strcmp(t, "+inf") || !strcmp(t, "-inf")) {
		v->type = TOML_FLOAT;
		v->u.f = t[0] == '-' ? -INFINITY : INFINITY;
		return true;
	}
	if (!strcmp(t, "nan") || !strcmp(t, "+nan") || !strcmp(t, "-nan")) {
		v->type = TOML_FLOAT;
		v->u.f = t[0] == '-' ? -NAN : NAN;
		return true;
	}
	if (t[0] == '0' && (t[1] == 'x' || t[1] == 'o' || t[1] == 'b')) {
		int base = t[1] == 'x' ? 16 : t[1] == 'o' ? 8 : 2;
		int (*cls)(int) = base == 16 ? ishex : base == 8 ? isoct : isbin;
		if (!t[2] || !cls((unsigned char)t[2]))
			return fail(p, "invalid integer '%s'", tok);
		if (!strip_underscores(p, t + 2, clean, cls))
			return false;
		for (size_t i = 0; clean[i]; i++)
			if (!cls((unsigned char)clean[i]))
				return fail(p, "invalid digit '%c' in base-%d integer '%s'", clean[i], base, tok);
		errno = 0;
		unsigned long long u = strtoull(clean, NULL, base);
		if (errno == ERANGE || u > (unsigned long long)INT64_MAX)
			return fail(p, "integer '%s' does not fit in 64 bits", tok);
		v->type = TOML_INTEGER;
		v->u.i = (int64_t)u;
		return true;
	}
	const char *d = t + (t[0] == '+' || t[0] == '-');
	if (!is_digit(d[0]))
		return fail(p, "invalid value '%s' (strings must be quoted)", tok);
	if (!strip_underscores(p, t, clean, isdec))
		return false;
	const char *cd = clean + (clean[0] == '+' || clean[0] == '-');
	bool is_float = strpbrk(cd, ".eE") != NULL;
	/* leading zeros are not allowed in the integer part */
	if (cd[0] == '0' && is_digit(cd[1]))
		return fail(p, "leading zeros are not allowed in '%s'", tok);
	if (!is_float) {
		for (size_t i = 0; cd[i]; i++)
			if (!is_digit(cd[i]))
				return fail(p, "invalid integer '%s'", tok);
		errno = 0;
		long long x = strtoll(clean, NULL, 10);
		if (errno == ERANGE)
			return fail(p, "integer '%s' does not fit in 64 bits", tok);
		v->type = TOML_INTEGER;
		v->u.i = x;
		return true;
	}
	/* float: int part, optional .digits, optional e[+-]digits */
	size_t i = 0;
	while (is_digit(cd[i]))
		i++;
	if (cd[i] == '.') {
		i++;
		if (!is_digit(cd[i]))
			return fail(p, "a digit must follow the decimal point in '%s'", tok);
		while (is_digit(cd[i]))
			i++;
	}
	if (cd[i] == 'e' || cd[i] == 'E') {
		i++;
		if (cd[i] == '+' || cd[i] == '-')
			i++;
		if (!is_digit(cd[i]))
			return fail(p, "invalid exponent in '%s'", tok);
		while (is_digit(cd[i]))
			i++;
	}
	if (cd[i])
		return fail(p, "invalid float '%s'", tok);
	v->type = TOML_FLOAT;
	v->u.f = strtod(clean, NULL);
	return true;
}

static toml_value *parse_value(parser *p);
static toml_value *parse_keyed_value(parser *p, size_t nparts);
static bool parse_key(parser *p, char ***parts, size_t *n);
static bool set_dotted(parser *p, toml_value *table, char **parts, size_t n, toml_value *v, int kline, int kcol);

static void free_parts(char **parts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(parts[i]);
	free(parts);
}

static toml_value *parse_array(parser *p)
{
	toml_value *a = val_new(p, TOML_ARRAY);
	a->flags = F_INLINE;
	adv(p); /* [ */
	for (;;) {
		if (!skip_ws_nl(p))
			goto fail;
		if (peek(p) == ']') {
			adv(p);
			return a;
		}
		toml_value *v = parse_value(p);
		if (!v)
			goto fail;
		arr_push(a, v);
		if (!skip_ws_nl(p))
			goto fail;
		if (peek(p) == ',') {
			adv(p);
			continue;
		}
		if (peek(p) == ']') {
			adv(p);
			return a;
		}
		fail(p, peek(p) < 0 ? "unterminated array" : "expected ',' or ']' in array");
		goto fail;
	}
fail:
	toml_free(a);
	return NULL;
}

static toml_value *parse_inline_table(parser *p)
{
	toml_value *t = val_new(p, TOML_TABLE);
	adv(p); /* { */
	skip_ws(p);
	if (peek(p) == '}') {
		adv(p);
		t->flags = F_INLINE;
		return t;
	}
	for (;;) {
		skip_ws(p);
		char **parts = NULL;
		size_t n = 0;
		int kl = p->line, kc = p->col;
		if (!parse_key(p, &parts, &n))
			goto fail;
		skip_ws(p);
		if (peek(p) != '=') {
			free_parts(parts, n);
			fail(p, "expected '=' after key in inline table");
			goto fail;
		}
		adv(p);
		skip_ws(p);
		toml_value *v = parse_keyed_value(p, n);
		if (!v) {
			free_parts(parts, n);
			goto fail;
		}
		if (!set_dotted(p, t, parts, n, v, kl, kc)) {
			free_parts(parts, n);
			toml_free(v);
			goto fail;
		}
		free_parts(parts, n);
		skip_ws(p);
		if (peek(p) == ',') {
			adv(p);
			skip_ws(p);
			if (peek(p) == '}') {
				fail(p, "trailing comma is not allowed in an inline table");
				goto fail;
			}
			continue;
		}
		if (peek(p) == '}') {
			adv(p);
			break;
		}
		fail(p, "expected ',' or '}' in inline table (inline tables must be on one line)");
		goto fail;
	}
	/* freeze: the table and every table inside it become immutable */
	t->flags = F_INLINE;
	return t;
fail:
	toml_free(t);
	return NULL;
}

static void freeze(toml_value *v)
{
	if (v->type == TOML_TABLE) {
		v->flags |= F_INLINE;
		for (size_t i = 0; i < v->u.tab.n; i++)
			freeze(v->u.tab.vals[i]);
	} else if (v->type == TOML_ARRAY) {
		v->flags |= F_INLINE;
	}
}

static toml_value *parse_value(parser *p)
{
	if (++p->depth > TOML_MAX_DEPTH) {
		fail(p, "nesting deeper than %d levels", TOML_MAX_DEPTH);
		return NULL;
	}
	toml_value *v = NULL;
	int c = peek(p);
	if (c == '"' || c == '\'') {
		v = val_new(p, TOML_STRING);
		if (!parse_string(p, &v->u.str.ptr, &v->u.str.len, true)) {
			free(v);
			v = NULL;
		}
	} else if (c == '[') {
		v = parse_array(p);
	} else if (c == '{') {
		v = parse_inline_table(p);
		if (v)
			freeze(v);
	} else if (starts(p, "true") && !ishex(peek_at(p, 4)) && peek_at(p, 4) != '_' && peek_at(p, 4) != '-') {
		v = val_new(p, TOML_BOOL);
		v->u.b = true;
		adv_n(p, 4);
	} else if (starts(p, "false") && !ishex(peek_at(p, 5)) && peek_at(p, 5) != '_' && peek_at(p, 5) != '-') {
		v = val_new(p, TOML_BOOL);
		v->u.b = false;
		adv_n(p, 5);
	} else if (c < 0 || c == '\n' || c == '\r' || c == '#') {
		fail(p, "expected a value");
	} else {
		char tok[128];
		size_t n = scan_token(p, tok, sizeof tok);
		if (n == 0) {
			if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
				fail(p, "expected a value, found byte 0x%02x", (unsigned char)c);
			else
				fail(p, "expected a value, found '%c'", c);
		} else if (n >= sizeof tok - 1) {
			fail(p, "value too long");
		} else {
			v = val_new(p, TOML_INTEGER);
			bool is_dt = (n >= 10 && tok[4] == '-' && is_digit(tok[0]) && is_digit(tok[3])) ||
				     (n >= 5 && tok[2] == ':' && is_digit(tok[0]));
			bool ok = is_dt ? parse_datetime(p, tok, v) : parse_number(p, tok, v);
			if (!ok) {
				free(v);
				v = NULL;
			} else {
				adv_n(p, n);
			}
		}
	}
	p->depth--;
	return v;
}

/* The value after a key of nparts parts lands nparts - 1 tables deeper than
 * the table that holds the key: count them against TOML_MAX_DEPTH. */
static toml_value *parse_keyed_value(parser *p, size_t nparts)
{
	int saved = p->depth;
	p->depth += (int)nparts - 1;
	toml_value *v = parse_value(p);
	p->depth = saved;
	return v;
}

/* ---------------- keys and tables ---------------- */

bool toml_is_bare_key(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || is_digit(*s) || *s == '_' || *s == '-'))
			return false;
	return true;
}

static bool parse_key(parser *p, char ***parts, size_t *n)
{
	*parts = NULL;
	*n = 0;
	for (;;) {
		skip_ws(p);
		char *k;
		size_t kl;
		int c = peek(p);
		if (c == '"' || c == '\'') {
			if (!parse_string(p, &k, &kl, false))
				goto fail;
			if (memchr(k, '\0', kl)) {
				free(k);
				fail(p, "key contains a NUL character");
				goto fail;
			}
		} else {
			size_t s = p->pos;
			while (p->pos < p->len && ((peek(p) >= 'a' && peek(p) <= 'z') || (peek(p) >= 'A' && peek(p) <= 'Z') ||
						   is_digit(peek(p)) || peek(p) == '_' || peek(p) == '-'))
				adv(p);
			if (p->pos == s) {
				if (c < 0 || c == '\n')
					fail(p, "expected a key");
				else
					fail(p, "invalid character '%c' in key (bare keys are A-Za-z0-9_-)", c);
				goto fail;
			}
			k = xstrndup(p->s + s, p->pos - s);
		}
		if (p->depth + (int)*n + 1 > TOML_MAX_DEPTH) {
			free(k);
			fail(p, "key nests deeper than %d levels", TOML_MAX_DEPTH);
			goto fail;
		}
		*parts = xrealloc(*parts, (*n + 1) * sizeof **parts);
		(*parts)[(*n)++] = k;
		skip_ws(p);
		if (peek(p) != '.')
			return true;
		adv(p);
	}
fail:
	free_parts(*parts, *n);
	*parts = NULL;
	*n = 0;
	return false;
}

/* Where something was defined, for "already defined at" messages: its key if it has one. */
#define DEF_LINE(x) ((x)->kline ? (x)->kline : (x)->line)
#define DEF_COL(x) ((x)->kline ? (x)->kcol : (x)->col)

/* "an integer", "a string", "an inline table", ... for error messages. */
static const char *what(const toml_value *x)
{
	switch (x->type) {
	case TOML_STRING: return "a string";
	case TOML_INTEGER: return "an integer";
	case TOML_FLOAT: return "a float";
	case TOML_BOOL: return "a boolean";
	case TOML_DATETIME: return "an offset date-time";
	case TOML_LOCAL_DATETIME: return "a local date-time";
	case TOML_LOCAL_DATE: return "a local date";
	case TOML_LOCAL_TIME: return "a local time";
	case TOML_ARRAY: return (x->flags & F_AOT) ? "an array of tables" : "an array";
	case TOML_TABLE: return (x->flags & F_INLINE) ? "an inline table" : "a table";
	}
	return "a value";
}

static char *join_key(char **parts, size_t n)
{
	sbuf b = {0};
	sb_put(&b, "", 0);
	for (size_t i = 0; i < n; i++) {
		if (i)
			sb_put(&b, ".", 1);
		sb_put(&b, parts[i], strlen(parts[i]));
	}
	return b.p;
}

/* Assign v at parts (relative to table) via dotted keys. */
static bool set_dotted(parser *p, toml_value *table, char **parts, size_t n, toml_value *v, int kline, int kcol)
{
	toml_value *t = table;
	for (size_t i = 0; i + 1 < n; i++) {
		toml_value *x = toml_get(t, parts[i]);
		if (!x) {
			x = val_new(p, TOML_TABLE);
			x->line = kline, x->col = kcol;
			x->kline = kline, x->kcol = kcol;
			x->flags = F_DOTTED;
			tab_put(t, xstrdup(parts[i]), x);
		} else if (x->type != TOML_TABLE || (x->flags & (F_INLINE | F_HEADER | F_IMPLICIT | F_AOT)) ||
			   !(x->flags & F_DOTTED)) {
			cleanup_free char *k = join_key(parts, i + 1);
			p->line = kline, p->col = kcol;
			return fail(p, "cannot add keys to '%s': it is %s defined at %d:%d", k,
				    what(x), DEF_LINE(x), DEF_COL(x));
		}
		t = x;
	}
	toml_value *old = toml_get(t, parts[n - 1]);
	if (old) {
		cleanup_free char *k = join_key(parts, n);
		p->line = kline, p->col = kcol;
		return fail(p, "duplicate key '%s' (first defined at %d:%d)", k, DEF_LINE(old), DEF_COL(old));
	}
	v->line = v->line ? v->line : kline;
	v->kline = kline, v->kcol = kcol;
	tab_put(t, xstrdup(parts[n - 1]), v);
	return true;
}

/* Walk/create the parent tables of a header. */
static toml_value *header_parent(parser *p, toml_value *root, char **parts, size_t n, int hl, int hc)
{
	toml_value *t = root;
	p->depth = 0;
	for (size_t i = 0; i + 1 < n; i++) {
		toml_value *x = toml_get(t, parts[i]);
		if (!x) {
			x = val_new(p, TOML_TABLE);
			x->line = hl, x->col = hc;
			x->flags = F_IMPLICIT;
			tab_put(t, xstrdup(parts[i]), x);
		} else if (x->type == TOML_ARRAY && (x->flags & F_AOT)) {
			x = x->u.arr.items[x->u.arr.n - 1];
			p->depth++; /* the array, then its last table */
		} else if (x->type != TOML_TABLE || (x->flags & F_INLINE)) {
			cleanup_free char *k = join_key(parts, i + 1);
			p->line = hl, p->col = hc;
			fail(p, "'%s' is %s defined at %d:%d, not a table", k,
			     what(x), DEF_LINE(x), DEF_COL(x));
			return NULL;
		}
		t = x;
		p->depth++;
	}
	return t;
}

static toml_value *parse_header(parser *p, toml_value *root)
{
	int hl = p->line, hc = p->col;
	bool aot = starts(p, "[[");
	adv_n(p, aot ? 2 : 1);
	p->depth = 0;
	char **parts;
	size_t n;
	if (!parse_key(p, &parts, &n))
		return NULL;
	toml_value *result = NULL;
	char *full = join_key(parts, n);
	skip_ws(p);
	if (aot ? !starts(p, "]]") : peek(p) != ']') {
		fail(p, aot ? "expected ']]' to close the array-of-tables header" : "expected ']' to close the table header");
		goto out;
	}
	adv_n(p, aot ? 2 : 1);
	toml_value *parent = header_parent(p, root, parts, n, hl, hc);
	if (!parent)
		goto out;
	p->depth += aot ? 2 : 1; /* now the depth of the table this header opens */
	if (p->depth > TOML_MAX_DEPTH) {
		p->line = hl, p->col = hc;
		fail(p, "table '%s' nests deeper than %d levels", full, TOML_MAX_DEPTH);
		goto out;
	}
	const char *last = parts[n - 1];
	toml_value *x = toml_get(parent, last);
	if (aot) {
		if (!x) {
			x = val_new(p, TOML_ARRAY);
			x->line = hl, x->col = hc;
			x->flags = F_AOT;
			tab_put(parent, xstrdup(last), x);
		} else if (x->type != TOML_ARRAY || !(x->flags & F_AOT)) {
			p->line = hl, p->col = hc;
			fail(p, "cannot define array of tables '%s': already defined at %d:%d as %s", full, DEF_LINE(x), DEF_COL(x),
			     x->type == TOML_ARRAY ? "a static array" : toml_type_name(x->type));
			goto out;
		}
		toml_value *t = val_new(p, TOML_TABLE);
		t->line = hl, t->col = hc;
		t->flags = F_HEADER;
		arr_push(x, t);
		result = t;
	} else {
		if (!x) {
			x = val_new(p, TOML_TABLE);
			x->line = hl, x->col = hc;
			x->flags = F_HEADER;
			tab_put(parent, xstrdup(last), x);
			result = x;
		} else if (x->type == TOML_TABLE && (x->flags & F_IMPLICIT) && !(x->flags & F_HEADER)) {
			x->flags = (x->flags & ~(unsigned)F_IMPLICIT) | F_HEADER;
			x->line = hl, x->col = hc;
			result = x;
		} else {
			p->line = hl, p->col = hc;
			if (x->type == TOML_TABLE && !(x->flags & F_INLINE))
				fail(p, "table '%s' is already defined at %d:%d", full, DEF_LINE(x), DEF_COL(x));
			else
				fail(p, "table '%s' is already defined at %d:%d as %s", full, DEF_LINE(x), DEF_COL(x), what(x));
			goto out;
		}
	}
out:
	free(full);
	free_parts(parts, n);
	return result;
}

toml_value *toml_parse(const char *text, size_t len, char *err, size_t errlen)
{
	parser p = {.s = text, .len = len, .line = 1, .col = 1, .err = err, .errlen = errlen};
	if (err && errlen)
		err[0] = '\0';
	if (len > TOML_MAX_INPUT) {
		fail(&p, "document larger than %d bytes", TOML_MAX_INPUT);
		return NULL;
	}
	if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
		p.pos = 3; /* UTF-8 BOM */
	toml_value *root = val_new(&p, TOML_TABLE);
	root->flags = F_HEADER;
	toml_value *cur = root;
	int cur_depth = 0;
	for (;;) {
		if (!skip_ws_nl(&p))
			goto fail;
		if (p.pos >= p.len)
			break;
		if (peek(&p) == '[') {
			cur = parse_header(&p, root);
			if (!cur)
				goto fail;
			cur_depth = p.depth;
			if (!expect_eol(&p))
				goto fail;
			continue;
		}
		int kl = p.line, kc = p.col;
		char **parts;
		size_t n;
		p.depth = cur_depth;
		if (!parse_key(&p, &parts, &n))
			goto fail;
		skip_ws(&p);
		if (peek(&p) != '=') {
			free_parts(parts, n);
			fail(&p, "expected '=' after key");
			goto fail;
		}
		adv(&p);
		skip_ws(&p);
		toml_value *v = parse_keyed_value(&p, n);
		if (!v) {
			free_parts(parts, n);
			goto fail;
		}
		if (!set_dotted(&p, cur, parts, n, v, kl, kc)) {
			free_parts(parts, n);
			toml_free(v);
			goto fail;
		}
		free_parts(parts, n);
		if (!expect_eol(&p))
			goto fail;
	}
	return root;
fail:
	toml_free(root);
	return NULL;
}

const char *toml_type_name(toml_type t)
{
	switch (t) {
	case TOML_STRING: return "string";
	case TOML_INTEGER: return "integer";
	case TOML_FLOAT: return "float";
	case TOML_BOOL: return "boolean";
	case TOML_DATETIME: return "offset date-time";
	case TOML_LOCAL_DATETIME: return "local date-time";
	case TOML_LOCAL_DATE: return "local date";
	case TOML_LOCAL_TIME: return "local time";
	case TOML_ARRAY: return "array";
	case TOML_TABLE: return "table";
	}
	return "?";
}

char *toml_quote(const char *s, size_t len)
{
	sbuf b = {0};
	sb_put(&b, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[12];
		switch (c) {
		case '"': sb_put(&b, "\\\"", 2); break;
		case '\\': sb_put(&b, "\\\\", 2); break;
		case '\n': sb_put(&b, "\\n", 2); break;
		case '\t': sb_put(&b, "\\t", 2); break;
		case '\r': sb_put(&b, "\\r", 2); break;
		case '\b': sb_put(&b, "\\b", 2); break;
		case '\f': sb_put(&b, "\\f", 2); break;
		default:
			if (c < 0x20 || c == 0x7f) {
				snprintf(esc, sizeof esc, "\\u%04X", c);
				sb_put(&b, esc, 6);
			} else {
				sb_put(&b, (const char *)&s[i], 1);
			}
		}
	}
	sb_put(&b, "\"", 1);
	return b.p;
}
