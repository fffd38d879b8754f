/* SPDX-License-Identifier: Apache-2.0
 * Egress entries and address classes (egress.h has the syntax). Every input
 * is bounded before it is copied; nothing here allocates.
 */
#include "net/egress.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* IANA special-purpose IPv4 ranges (RFC 6890 and successors): never reached
 * through a name or "*". */
static const struct special {
	uint32_t addr;
	uint8_t bits;
	const char *cls;
} specials[] = {
	{0x00000000u, 8, "this network"},          /* 0.0.0.0/8 */
	{0x0a000000u, 8, "private"},               /* 10.0.0.0/8 */
	{0x64400000u, 10, "shared address space"}, /* 100.64.0.0/10 (carrier-grade NAT) */
	{0x7f000000u, 8, "loopback"},              /* 127.0.0.0/8 */
	{0xa9fe0000u, 16, "link-local"},           /* 169.254.0.0/16 (cloud metadata) */
	{0xac100000u, 12, "private"},              /* 172.16.0.0/12 */
	{0xc0000000u, 24, "IETF protocol assignments"}, /* 192.0.0.0/24 */
	{0xc0000200u, 24, "documentation"},        /* 192.0.2.0/24 */
	{0xc0586300u, 24, "reserved"},             /* 192.88.99.0/24 (6to4 relay) */
	{0xc0a80000u, 16, "private"},              /* 192.168.0.0/16 */
	{0xc6120000u, 15, "benchmarking"},         /* 198.18.0.0/15 */
	{0xc6336400u, 24, "documentation"},        /* 198.51.100.0/24 */
	{0xcb007100u, 24, "documentation"},        /* 203.0.113.0/24 */
	{0xe0000000u, 4, "multicast"},             /* 224.0.0.0/4 */
	{0xffffffffu, 32, "broadcast"},            /* before 240/4: more specific */
	{0xf0000000u, 4, "reserved"},              /* 240.0.0.0/4 */
};

static uint32_t mask_of(unsigned bits)
{
	return bits == 0 ? 0 : 0xffffffffu << (32 - bits);
}

const char *egress_addr_class(uint32_t addr)
{
	for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++)
		if ((addr & mask_of(specials[i].bits)) == specials[i].addr)
			return specials[i].cls;
	return NULL;
}

bool egress_range_special(uint32_t addr, unsigned bits)
{
	for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) {
		unsigned b = bits < specials[i].bits ? bits : specials[i].bits;
		if ((addr & mask_of(b)) == (specials[i].addr & mask_of(b)))
			return true;
	}
	return false;
}

static void set_why(char *why, size_t len, const char *msg)
{
	if (why && len)
		snprintf(why, len, "%s", msg);
}

bool egress_normalize_name(const char *in, char *out, size_t len)
{
	size_t n = strnlen(in, EGRESS_NAME_MAX + 2);
	if (n && in[n - 1] == '.')
		n--;
	if (n == 0 || n > EGRESS_NAME_MAX || n + 1 > len)
		return false;
	size_t label = 0;
	bool digits_only = true;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)in[i];
		if (ch == '.') {
			if (label == 0)
				return false;
			label = 0;
			digits_only = true;
			out[i] = '.';
			continue;
		}
		if (!(isalnum(ch) || ch == '-' || ch == '_') || ++label > 63)
			return false;
		if (!isdigit(ch))
			digits_only = false;
		out[i] = (char)tolower(ch);
	}
	if (label == 0 || digits_only)
		return false;   /* an empty last label, or "1.2.3": neither a name nor an address */
	out[n] = '\0';
	return true;
}

/* "a.b.c.d" or "a.b.c.d/n" (the network part only; host bits must be zero). */
static bool parse_cidr(const char *s, size_t n, egress_rule *r, char *why, size_t whylen)
{
	char buf[40];
	if (n >= sizeof buf) {
		set_why(why, whylen, "expected an IPv4 address or CIDR");
		return false;
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
	char *slash = strchr(buf, '/');
	unsigned bits = 32;
	if (slash) {
		*slash = '\0';
		const char *b = slash + 1;
		if (!*b || strlen(b) > 2 || !isdigit((unsigned char)b[0]) || (b[1] && !isdigit((unsigned char)b[1]))) {
			set_why(why, whylen, "expected a prefix length 0-32 after '/'");
			return false;
		}
		bits = (unsigned)atoi(b);
		if (bits > 32) {
			set_why(why, whylen, "expected a prefix length 0-32 after '/'");
			return false;
		}
	}
	struct in_addr a;
	if (inet_pton(AF_INET, buf, &a) != 1) {
		set_why(why, whylen, "expected an IPv4 address (a.b.c.d) or CIDR (a.b.c.d/n)");
		return false;
	}
	uint32_t addr = ntohl(a.s_addr);
	if (addr & ~mask_of(bits)) {
		set_why(why, whylen, "the address has bits set beyond the prefix length (write the network address)");
		return false;
	}
	r->kind = EGRESS_CIDR;
	r->addr = addr;
	r->bits = (uint8_t)bits;
	return true;
}

static bool looks_like_ipv6(const char *s)
{
	return s[0] == '[' || strchr(s, ':') != strrchr(s, ':');   /* two or more colons */
}

bool egress_parse(const char *s, egress_rule *out, char *why, size_t whylen)
{
	memset(out, 0, sizeof *out);
	size_t n = strnlen(s, 300);
	if (n == 0 || n >= 300) {
		set_why(why, whylen, "expected \"host[:port]\", \"*.domain[:port]\", \"a.b.c.d[/n][:port]\" or \"*\"");
		return false;
	}
	if (looks_like_ipv6(s)) {
		set_why(why, whylen, "IPv6 destinations are not supported (sandbox networking is IPv4 only)");
		return false;
	}
	/* optional ":port" */
	const char *colon = memchr(s, ':', n);
	size_t hn = n;
	if (colon) {
		const char *p = colon + 1;
		size_t pl = n - (size_t)(p - s);
		if (pl == 0 || pl > 5) {
			set_why(why, whylen, "expected a port 1-65535 after ':'");
			return false;
		}
		unsigned long port = 0;
		for (size_t i = 0; i < pl; i++) {
			if (!isdigit((unsigned char)p[i])) {
				set_why(why, whylen, "expected a port 1-65535 after ':'");
				return false;
			}
			port = port * 10 + (unsigned)(p[i] - '0');
		}
		if (port < 1 || port > 65535) {
			set_why(why, whylen, "expected a port 1-65535 after ':'");
			return false;
		}
		out->port = (uint16_t)port;
		hn = (size_t)(colon - s);
	}
	if (hn == 1 && s[0] == '*') {
		out->kind = EGRESS_ANY;
		return true;
	}
	if (hn == 0) {
		set_why(why, whylen, "expected a host before ':'");
		return false;
	}
	/* An address or CIDR: digits, dots and one slash only. */
	bool numeric = true;
	for (size_t i = 0; i < hn; i++)
		if (!isdigit((unsigned char)s[i]) && s[i] != '.' && s[i] != '/')
			numeric = false;
	if (numeric || memchr(s, '/', hn))
		return parse_cidr(s, hn, out, why, whylen);
	char host[EGRESS_NAME_MAX + 3];
	if (hn >= sizeof host) {
		set_why(why, whylen, "names are at most 253 bytes");
		return false;
	}
	memcpy(host, s, hn);
	host[hn] = '\0';
	const char *name = host;
	if (host[0] == '*') {
		if (host[1] != '.') {
			set_why(why, whylen, "a wildcard is \"*\" or \"*.domain\"");
			return false;
		}
		out->kind = EGRESS_WILDCARD;
		name = host + 2;
	} else {
		out->kind = EGRESS_NAME;
	}
	if (strchr(name, '*')) {
		set_why(why, whylen, "'*' may only stand alone or as the first label (\"*.domain\")");
		return false;
	}
	if (!egress_normalize_name(name, out->name, sizeof out->name)) {
		set_why(why, whylen,
			"expected a DNS name (labels of 1-63 letters, digits, '-' or '_'; at most 253 bytes; "
			"not all digits at the end)");
		return false;
	}
	return true;
}

void egress_format(const egress_rule *r, char *buf, size_t len)
{
	char host[EGRESS_NAME_MAX + 24];
	switch (r->kind) {
	case EGRESS_ANY:
		snprintf(host, sizeof host, "*");
		break;
	case EGRESS_NAME:
		snprintf(host, sizeof host, "%s", r->name);
		break;
	case EGRESS_WILDCARD:
		snprintf(host, sizeof host, "*.%s", r->name);
		break;
	case EGRESS_CIDR: {
		struct in_addr a = {.s_addr = htonl(r->addr)};
		char ip[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &a, ip, sizeof ip);
		if (r->bits == 32)
			snprintf(host, sizeof host, "%s", ip);
		else
			snprintf(host, sizeof host, "%s/%u", ip, r->bits);
		break;
	}
	}
	if (r->port)
		snprintf(buf, len, "%s:%u", host, r->port);
	else
		snprintf(buf, len, "%s", host);
}

/* Is name below suffix ("a.github.com" below "github.com"; not "github.com"). */
static bool below(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);
	return n > s + 1 && name[n - s - 1] == '.' && !strcmp(name + n - s, suffix);
}

bool egress_name_matches(const egress_rule *r, const char *name)
{
	switch (r->kind) {
	case EGRESS_ANY:
		return true;
	case EGRESS_NAME:
		return !strcmp(r->name, name);
	case EGRESS_WILDCARD:
		return below(name, r->name);
	default:
		return false;
	}
}

bool egress_cidr_contains(const egress_rule *r, uint32_t addr)
{
	return r->kind == EGRESS_CIDR && (addr & mask_of(r->bits)) == r->addr;
}

bool egress_rule_covers(const egress_rule *a, const egress_rule *w)
{
	if (a->port && a->port != w->port)
		return false;   /* a port-limited entry never covers "any port" nor another port */
	switch (a->kind) {
	case EGRESS_ANY:
		if (w->kind == EGRESS_CIDR)
			return !egress_range_special(w->addr, w->bits);
		return true;
	case EGRESS_NAME:
		return w->kind == EGRESS_NAME && !strcmp(a->name, w->name);
	case EGRESS_WILDCARD:
		return (w->kind == EGRESS_NAME && below(w->name, a->name)) ||
		       (w->kind == EGRESS_WILDCARD && (!strcmp(w->name, a->name) || below(w->name, a->name)));
	case EGRESS_CIDR:
		return w->kind == EGRESS_CIDR && w->bits >= a->bits && egress_cidr_contains(a, w->addr);
	}
	return false;
}

bool egress_covers(const char *allowed, const char *want)
{
	egress_rule a, w;
	return egress_parse(allowed, &a, NULL, 0) && egress_parse(want, &w, NULL, 0) && egress_rule_covers(&a, &w);
}
