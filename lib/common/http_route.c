/* SPDX-License-Identifier: Apache-2.0
 * Request targets and route patterns (see http_route.h for the rules).
 */
#include "common/http_route.h"

#include <stdio.h>
#include <string.h>

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Copy src[0..n) to dst and NUL-terminate it, decoding %XX (and '+' as a space
 * when plus) if decoding. Returns the length written, or -1 with *bad at the
 * offending byte of src (a malformed escape or an escaped NUL). */
static long copy_part(const char *src, size_t n, char *dst, bool decoding, bool plus, size_t *bad)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = src[i];
		if (decoding && c == '%') {
			int hi = i + 2 < n ? hexval(src[i + 1]) : -1;
			int lo = i + 2 < n ? hexval(src[i + 2]) : -1;
			if (hi < 0 || lo < 0 || (hi | lo) == 0) {
				*bad = i;
				return -1;
			}
			c = (char)(hi << 4 | lo);
			i += 2;
		} else if (decoding && plus && c == '+') {
			c = ' ';
		}
		dst[o++] = c;
	}
	dst[o] = '\0';
	return (long)o;
}

static int bad_escape(silo_error *err, const char *what, const char *name, size_t at)
{
	return silo_fail(err, SILO_ERR_PROTOCOL, 0,
			 "request target: %s%.64s: malformed percent escape or escaped NUL at byte %zu", what, name, at);
}

static int parse_query(const char *q, size_t n, bool decoding, http_target *t, char **o, silo_error *err)
{
	size_t pos = 0;
	while (pos <= n) {
		const char *amp = memchr(q + pos, '&', n - pos);
		size_t end = amp ? (size_t)(amp - q) : n;
		if (end > pos) {
			const char *p = q + pos, *eq = memchr(p, '=', end - pos);
			size_t kl = eq ? (size_t)(eq - p) : end - pos, bad;
			if (kl == 0)
				return silo_fail(err, SILO_ERR_PROTOCOL, 0, "request target: query: a parameter without a name");
			if (t->nparam == HTTP_PARAMS_MAX)
				return silo_fail(err, SILO_ERR_PROTOCOL, 0, "request target: query: more than %d parameters",
						 HTTP_PARAMS_MAX);
			http_param *pr = &t->param[t->nparam];
			pr->key = *o;
			long l = copy_part(p, kl, *o, decoding, true, &bad);
			if (l < 0)
				return bad_escape(err, "query", "", pos + bad);
			*o += l + 1;
			pr->value = "";
			if (eq) {
				pr->value = *o;
				l = copy_part(eq + 1, end - pos - kl - 1, *o, decoding, true, &bad);
				if (l < 0)
					return bad_escape(err, "query parameter ", pr->key, pos + kl + 1 + bad);
				*o += l + 1;
			}
			for (unsigned i = 0; i < t->nparam; i++)
				if (!strcmp(t->param[i].key, pr->key))
					return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
							 "query parameter %.64s: given more than once", pr->key);
			t->nparam++;
		}
		pos = end + 1;
	}
	return 0;
}

int http_target_parse(const char *raw, size_t len, unsigned flags, http_target *t, silo_error *err)
{
	bool decoding = flags & HTTP_TARGET_DECODE;
	t->nseg = t->nparam = 0;
	if (len > HTTP_TARGET_MAX)
		return silo_fail(err, SILO_ERR_PROTOCOL, 0, "request target: longer than %d bytes", HTTP_TARGET_MAX);
	if (len == 0 || raw[0] != '/')
		return silo_fail(err, SILO_ERR_PROTOCOL, 0, "request target: expected an absolute path");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)raw[i];
		if (c <= 0x20 || c == 0x7f)
			return silo_fail(err, SILO_ERR_PROTOCOL, 0, "request target: byte %zu (0x%02x) is not allowed", i, c);
	}
	const char *qm = memchr(raw, '?', len);
	size_t plen = qm ? (size_t)(qm - raw) : len;
	char *o = t->buf;
	/* path segments: what lies between the slashes after the first */
	for (size_t pos = 1;;) {
		const char *sl = memchr(raw + pos, '/', plen - pos);
		size_t end = sl ? (size_t)(sl - raw) : plen, bad;
		if (t->nseg == HTTP_SEGS_MAX)
			return silo_fail(err, SILO_ERR_PROTOCOL, 0, "request target: more than %d path segments",
					 HTTP_SEGS_MAX);
		t->seg[t->nseg] = o;
		long l = copy_part(raw + pos, end - pos, o, decoding, false, &bad);
		if (l < 0)
			return bad_escape(err, "path", "", pos + bad);
		t->seglen[t->nseg++] = (unsigned short)l;
		o += l + 1;
		if (!sl)
			break;
		pos = end + 1;
	}
	if (qm && parse_query(qm + 1, len - plen - 1, decoding, t, &o, err) < 0)
		return -1;
	return 0;
}

const char *http_target_query(const http_target *t, const char *key)
{
	for (unsigned i = 0; i < t->nparam; i++)
		if (!strcmp(t->param[i].key, key))
			return t->param[i].value;
	return NULL;
}

/* The next segment of a pattern at *p (past its '/'): start and length. */
static bool next_seg(const char **p, const char **s, size_t *l)
{
	if (**p != '/')
		return false;
	*s = *p + 1;
	const char *e = strchr(*s, '/');
	*l = e ? (size_t)(e - *s) : strlen(*s);
	*p = *s + *l;
	return true;
}

static bool is_capture(const char *s, size_t l)
{
	return l >= 3 && s[0] == '{' && s[l - 1] == '}';
}

bool http_pattern_valid(const char *pattern)
{
	if (!pattern || pattern[0] != '/')
		return false;
	if (!strcmp(pattern, "/"))
		return true;
	const char *p = pattern, *s, *names[HTTP_CAPTURES_MAX];
	size_t l, nl[HTTP_CAPTURES_MAX];
	unsigned nseg = 0, ncap = 0;
	while (next_seg(&p, &s, &l)) {
		if (++nseg > HTTP_SEGS_MAX || l == 0)
			return false;
		if (is_capture(s, l)) {
			if (ncap == HTTP_CAPTURES_MAX || l - 2 > HTTP_CAPTURE_NAME_MAX)
				return false;
			for (size_t i = 1; i + 1 < l; i++)
				if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
					return false;
			for (unsigned i = 0; i < ncap; i++)
				if (nl[i] == l - 2 && !memcmp(names[i], s + 1, l - 2))
					return false;
			names[ncap] = s + 1;
			nl[ncap++] = l - 2;
		} else if (memchr(s, '{', l) || memchr(s, '}', l) || memchr(s, '?', l) || memchr(s, '%', l)) {
			return false;
		}
	}
	return *p == '\0';
}

int http_pattern_match(const char *pattern, const http_target *t, http_captures *caps)
{
	if (caps)
		caps->n = 0;
	const char *p = pattern;
	unsigned i = 0;
	int score = 0;
	/* one walk over the pattern, leaving at the first byte that differs */
	for (; *p == '/'; i++) {
		p++;
		if (i >= t->nseg)
			return -1;
		const char *e = p;
		if (*p == '{')
			while (*e && *e != '/')
				e++;
		if (e > p && is_capture(p, (size_t)(e - p))) {
			size_t nl = (size_t)(e - p) - 2;
			if (!t->seglen[i])
				return -1;
			if (caps && caps->n < HTTP_CAPTURES_MAX && nl <= HTTP_CAPTURE_NAME_MAX) {
				memcpy(caps->name[caps->n], p + 1, nl);
				caps->name[caps->n][nl] = '\0';
				caps->value[caps->n++] = t->seg[i];
			}
			p = e;
			continue;
		}
		const char *v = t->seg[i];
		while (*p && *p != '/' && *p == *v) {
			p++;
			v++;
		}
		if ((*p && *p != '/') || *v)
			return -1;
		if (i < HTTP_SEGS_MAX)
			score |= 1 << (HTTP_SEGS_MAX - 1 - i);
	}
	return !*p && i == t->nseg ? score : -1;
}

const char *http_capture(const http_captures *caps, const char *name)
{
	for (unsigned i = 0; i < caps->n; i++)
		if (!strcmp(caps->name[i], name))
			return caps->value[i];
	return NULL;
}

static const char *field(const http_table *tab, size_t i, size_t off)
{
	return *(const char *const *)((const char *)tab->rows + i * tab->stride + off);
}

const char *http_table_method(const http_table *tab, size_t i)
{
	return field(tab, i, tab->method_off);
}

const char *http_table_pattern(const http_table *tab, size_t i)
{
	return field(tab, i, tab->pattern_off);
}

long http_route_lookup(const http_table *tab, const char *method, const http_target *t, char *allow, size_t allow_len)
{
	int best = -1;
	const char *owner = NULL;
	for (size_t i = 0; i < tab->n; i++) {
		int s = http_pattern_match(http_table_pattern(tab, i), t, NULL);
		if (s > best) {
			best = s;
			owner = http_table_pattern(tab, i);
		}
	}
	if (allow_len)
		allow[0] = '\0';
	size_t off = 0;
	for (size_t i = 0; owner && i < tab->n; i++) {
		if (strcmp(http_table_pattern(tab, i), owner) != 0)
			continue;
		if (!strcmp(http_table_method(tab, i), method))
			return (long)i;
		if (off < allow_len)
			off += (size_t)snprintf(allow + off, allow_len - off, "%s%s", off ? ", " : "", http_table_method(tab, i));
	}
	return -1;
}
