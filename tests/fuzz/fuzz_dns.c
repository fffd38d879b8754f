/* SPDX-License-Identifier: Apache-2.0
 * Fuzz the DNS query parser and response builder (lib/net/dns.c): queries
 * come from the guest. Invariants: a parsed name has no NUL and fits 255
 * bytes; the response echoes the id, has QR set, the question bytes of the
 * query, and fits DNS_UDP_MAX with DNS_MAX_ANSWERS answers; a parsed
 * response is never treated as a query.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	dns_query q;
	char why[200];
	int rc = dns_parse_query(data, size, &q, why, sizeof why);
	if (rc < 0)
		return 0;
	if (rc == DNS_NOERROR) {
		if (strlen(q.name) > 255 || q.qlen < 5 || 12 + q.qlen > size)
			abort();
	}
	uint32_t addrs[DNS_MAX_ANSWERS];
	for (unsigned i = 0; i < DNS_MAX_ANSWERS; i++)
		addrs[i] = 0x01020300u + i;
	uint8_t out[DNS_UDP_MAX];
	size_t len = dns_build_response(data, size, &q, rc, addrs, DNS_MAX_ANSWERS, 60, out, sizeof out);
	if (!len)
		return 0;
	if (len < 12 || out[0] != data[0] || out[1] != data[1] || !(out[2] & 0x80))
		abort();
	dns_query again;
	if (dns_parse_query(out, len, &again, why, sizeof why) != -1)
		abort();   /* a response is never answered */
	if (rc == DNS_NOERROR && memcmp(out + 12, data + 12, q.qlen))
		abort();
	return 0;
}
