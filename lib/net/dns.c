/* SPDX-License-Identifier: Apache-2.0
 * DNS query parser and response builder (dns.h). Every offset is checked
 * against len before the byte is read.
 */
#include "net/dns.h"

#include <stdio.h>
#include <string.h>

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Read the name at *off into out (dotted); advance *off past it in the
 * message (not past pointer targets). false on a malformed name. */
static bool read_name(const uint8_t *msg, size_t len, size_t *off, char *out, size_t cap, char *why, size_t whylen)
{
	size_t pos = *off, o = 0, wire = 0, end = 0;
	unsigned jumps = 0, labels = 0;
	bool jumped = false;
	for (;;) {
		if (pos >= len) {
			snprintf(why, whylen, "name runs past the end of the message");
			return false;
		}
		uint8_t l = msg[pos];
		if ((l & 0xc0) == 0xc0) {
			if (pos + 1 >= len) {
				snprintf(why, whylen, "truncated compression pointer");
				return false;
			}
			size_t target = (size_t)(l & 0x3f) << 8 | msg[pos + 1];
			if (target >= pos || ++jumps > 16) {
				snprintf(why, whylen, "compression pointer at byte %zu does not point backwards", pos);
				return false;
			}
			if (!jumped)
				end = pos + 2;
			jumped = true;
			pos = target;
			continue;
		}
		if (l & 0xc0) {
			snprintf(why, whylen, "unsupported label type at byte %zu", pos);
			return false;
		}
		if (l == 0) {
			if (!jumped)
				end = pos + 1;
			break;
		}
		if (++labels > 127 || (wire += (size_t)l + 1) > 255) {
			snprintf(why, whylen, "name longer than 255 bytes");
			return false;
		}
		if (pos + 1 + l > len) {
			snprintf(why, whylen, "label runs past the end of the message");
			return false;
		}
		if (o + l + 2 > cap) {
			snprintf(why, whylen, "name too long");
			return false;
		}
		if (o)
			out[o++] = '.';
		for (unsigned i = 0; i < l; i++) {
			uint8_t ch = msg[pos + 1 + i];
			if (ch == 0 || ch == '.') {
				snprintf(why, whylen, "label holds a NUL or '.' byte");
				return false;
			}
			out[o++] = (char)ch;
		}
		pos += 1 + (size_t)l;
	}
	out[o] = '\0';
	*off = end;
	return true;
}

int dns_parse_query(const uint8_t *msg, size_t len, dns_query *q, char *why, size_t whylen)
{
	memset(q, 0, sizeof *q);
	char dummy[8];
	if (!why) {
		why = dummy;
		whylen = sizeof dummy;
	}
	if (len < 12 || len > DNS_MAX_MSG) {
		snprintf(why, whylen, "message of %zu bytes (expected 12-%u)", len, DNS_MAX_MSG);
		return -1;
	}
	q->id = rd16(msg);
	uint16_t flags = rd16(msg + 2);
	q->rd = flags & 0x0100;
	if (flags & 0x8000) {
		snprintf(why, whylen, "a response, not a query");
		return -1;   /* never answer answers (reflection loops) */
	}
	if ((flags >> 11) & 0xf) {
		snprintf(why, whylen, "opcode %u is not QUERY", (flags >> 11) & 0xf);
		return DNS_NOTIMP;
	}
	if (rd16(msg + 4) != 1) {
		snprintf(why, whylen, "%u questions (expected 1)", rd16(msg + 4));
		return DNS_FORMERR;
	}
	if (rd16(msg + 6) || rd16(msg + 8)) {
		snprintf(why, whylen, "a query with answer or authority records");
		return DNS_FORMERR;
	}
	size_t off = 12;
	if (!read_name(msg, len, &off, q->name, sizeof q->name, why, whylen))
		return DNS_FORMERR;
	if (off + 4 > len) {
		snprintf(why, whylen, "question without type and class");
		return DNS_FORMERR;
	}
	q->qtype = rd16(msg + off);
	q->qclass = rd16(msg + off + 2);
	q->qlen = off + 4 - 12;
	return DNS_NOERROR;
}

size_t dns_build_response(const uint8_t *msg, size_t len, const dns_query *q, int rcode, const uint32_t *addrs,
			  size_t n, uint32_t ttl, uint8_t *out, size_t cap)
{
	size_t qlen = q->qlen;
	if (qlen > len - 12 || len < 12)
		qlen = 0;
	if (rcode != DNS_NOERROR)
		n = 0;
	if (n > DNS_MAX_ANSWERS)
		n = DNS_MAX_ANSWERS;
	size_t need = 12 + qlen + n * 16;
	if (need > cap)
		return 0;
	wr16(out, q->id);
	/* QR, opcode 0, not authoritative, RD echoed, RA set */
	wr16(out + 2, (uint16_t)(0x8000 | (q->rd ? 0x0100 : 0) | 0x0080 | (rcode & 0xf)));
	wr16(out + 4, qlen ? 1 : 0);
	wr16(out + 6, (uint16_t)n);
	wr16(out + 8, 0);
	wr16(out + 10, 0);
	memcpy(out + 12, msg + 12, qlen);
	size_t o = 12 + qlen;
	for (size_t i = 0; i < n; i++) {
		wr16(out + o, 0xc00c);     /* the question's name */
		wr16(out + o + 2, DNS_TYPE_A);
		wr16(out + o + 4, DNS_CLASS_IN);
		wr16(out + o + 6, (uint16_t)(ttl >> 16));
		wr16(out + o + 8, (uint16_t)ttl);
		wr16(out + o + 10, 4);
		out[o + 12] = (uint8_t)(addrs[i] >> 24);
		out[o + 13] = (uint8_t)(addrs[i] >> 16);
		out[o + 14] = (uint8_t)(addrs[i] >> 8);
		out[o + 15] = (uint8_t)addrs[i];
		o += 16;
	}
	return o;
}
