/* SPDX-License-Identifier: Apache-2.0
 * DNS messages from the guest (RFC 1035), the only parser of guest bytes in
 * the network supervisor: queries arrive from the sandbox's resolver through
 * the agent (docs/network.md "DNS"). We parse exactly one question, answer
 * A records ourselves, and never forward a guest's bytes to another server.
 *
 * Bounds: a message is 12..DNS_MAX_MSG bytes; a name at most 255 bytes on the
 * wire, 127 labels; compression pointers only backwards, at most 16 jumps;
 * qdcount must be 1. Fuzzed by tests/fuzz/fuzz_dns.c.
 */
#ifndef SILO_NET_DNS_H
#define SILO_NET_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_MAX_MSG 4096u       /* queries larger than this are dropped */
#define DNS_UDP_MAX 512u        /* answers fit a plain UDP reply */
#define DNS_MAX_ANSWERS 8u

enum { DNS_TYPE_A = 1, DNS_TYPE_AAAA = 28, DNS_CLASS_IN = 1 };
enum { DNS_NOERROR = 0, DNS_FORMERR = 1, DNS_SERVFAIL = 2, DNS_NXDOMAIN = 3, DNS_NOTIMP = 4, DNS_REFUSED = 5 };

typedef struct dns_query {
	uint16_t id;
	bool rd;                /* recursion desired (echoed) */
	char name[256];         /* dotted, as sent (may hold any bytes but NUL and '.') */
	uint16_t qtype, qclass;
	size_t qlen;            /* bytes of the question section (name + type + class) */
} dns_query;

/* Parse a query. Returns DNS_NOERROR when q is filled, another rcode when the
 * query must be answered with that error (q->id set), or -1 when it is too
 * short to answer at all (drop). why says what was wrong. */
int dns_parse_query(const uint8_t *msg, size_t len, dns_query *q, char *why, size_t whylen);

/* Build the response to q (msg: the query it was parsed from) into out.
 * rcode != NOERROR or n == 0 gives no answer records. A records only (addrs
 * in host order, at most DNS_MAX_ANSWERS used). Returns the length, 0 if cap
 * is too small. */
size_t dns_build_response(const uint8_t *msg, size_t len, const dns_query *q, int rcode, const uint32_t *addrs,
			  size_t n, uint32_t ttl, uint8_t *out, size_t cap);

#endif
