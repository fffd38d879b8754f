/* SPDX-License-Identifier: Apache-2.0
 * Egress allow-list entries and address classes (docs/network.md).
 *
 * An entry is one string of a spec's network.egress or a policy's egress:
 *
 *   "*"                    any public address (any port)        "*:443"
 *   "pypi.org"             that name (any port)                 "pypi.org:443"
 *   "*.github.com"         every name below github.com          "*.github.com:443"
 *   "93.184.216.34"        that address                         "93.184.216.34:80"
 *   "10.1.0.0/16"          that IPv4 range                      "10.1.0.0/16:5432"
 *
 * Names are case-insensitive, 1-253 bytes of labels of 1-63 [A-Za-z0-9_-],
 * a trailing dot is dropped, the last label is not all digits (so "1.2.3" is
 * neither a name nor an address). Ports are 1-65535. Sandbox networking is
 * IPv4 only: IPv6 addresses are refused with a message saying so.
 *
 * Address classes: loopback, private, link-local, ... are never reachable
 * unless an IP/CIDR entry names them (a domain or "*" never does); the host's
 * own addresses are another such class, checked by the caller (netpol.c).
 * Pure functions, no I/O: fuzzed by tests/fuzz/fuzz_egress.c.
 */
#ifndef SILO_NET_EGRESS_H
#define SILO_NET_EGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EGRESS_NAME_MAX 253

typedef enum egress_kind {
	EGRESS_ANY = 0,      /* "*": any public address */
	EGRESS_NAME,         /* exact name */
	EGRESS_WILDCARD,     /* "*.suffix": names below suffix (not suffix itself) */
	EGRESS_CIDR,         /* IPv4 address or range */
} egress_kind;

typedef struct egress_rule {
	egress_kind kind;
	char name[EGRESS_NAME_MAX + 1];  /* NAME: the name; WILDCARD: the suffix; lowercase */
	uint32_t addr;                   /* CIDR: network address, host order */
	uint8_t bits;                    /* CIDR: prefix length 0-32 */
	uint16_t port;                   /* 0 = any port */
} egress_rule;

/* Parse one entry. false with why ("expected ...") on bad input. */
bool egress_parse(const char *s, egress_rule *out, char *why, size_t whylen);
/* The canonical text of r ("pypi.org:443", "10.1.0.0/16", "*"). */
void egress_format(const egress_rule *r, char *buf, size_t len);

/* Does `allowed` allow everything `want` allows? (A policy's list bounds a
 * spec's.) Ports: an allowed entry with a port covers only that port. "*"
 * covers names and public CIDRs, never one reaching a special class. */
bool egress_rule_covers(const egress_rule *allowed, const egress_rule *want);
/* The same on strings; false if either does not parse. */
bool egress_covers(const char *allowed, const char *want);

/* Does a name (lowercase, no trailing dot) match r (NAME, WILDCARD or ANY)? */
bool egress_name_matches(const egress_rule *r, const char *name);
/* Does r (CIDR) contain addr (host order)? */
bool egress_cidr_contains(const egress_rule *r, uint32_t addr);
/* Does r's port allow port? */
static inline bool egress_port_matches(const egress_rule *r, uint16_t port)
{
	return r->port == 0 || r->port == port;
}

/* Normalize a DNS name into out (lowercase, trailing dot dropped); false if
 * it is not a valid name by the rules above. */
bool egress_normalize_name(const char *in, char *out, size_t len);

/* The special class of an IPv4 address (host order): "loopback", "private",
 * "link-local", "shared address space", "this network", "reserved",
 * "documentation", "benchmarking", "multicast", "broadcast", "IETF protocol
 * assignments"; NULL for a public address. */
const char *egress_addr_class(uint32_t addr);
/* Does the range addr/bits overlap any special class? */
bool egress_range_special(uint32_t addr, unsigned bits);

#endif
