/* SPDX-License-Identifier: Apache-2.0
 * The egress decision engine of one sandbox (docs/network.md "Decisions"):
 * which names resolve (and to what), and which (address, port) the host-side
 * stack may connect to. Used by silo-net, the per-sandbox network supervisor;
 * no I/O except the host's interface list (getifaddrs, cached for 2 s).
 *
 * Names: the first entry whose name part matches decides (exact name,
 * "*.domain", "*"); the operator's hosts file answers first, then the host's
 * resolver (done by the caller: netpol_resolve_plan / netpol_resolve_finish).
 * Resolver answers in a special class (egress_addr_class) or on the host are
 * dropped unless an IP/CIDR entry names them; the hosts file is trusted.
 * Every answer is recorded as a binding (address -> entry), so a later
 * connection to that address is allowed on that entry's port only.
 *
 * Connections (address, port), in order:
 *   1. a "never" destination (silod's own API port): denied;
 *   2. an IP/CIDR entry with a matching port: allowed (even a special class);
 *   3. loopback, the host's addresses or another special class: allowed only
 *      through a binding from the hosts file (trusted) with a matching port;
 *   4. a binding or "*" entry with a matching port: allowed;
 *   5. denied.
 *
 * The guest reaches the host's 127.0.0.1 through the gateway address (the
 * stack maps it), so hosts-file answers of 127.0.0.1 are given to the guest
 * as the gateway.
 *
 * Thread safety: a netpol has its own mutex; every call may come from any thread.
 */
#ifndef SILO_NET_NETPOL_H
#define SILO_NET_NETPOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/dns.h"
#include "net/egress.h"
#include "net/hosts.h"

#define NETPOL_MAX_BINDINGS 4096u

typedef struct netpol netpol;

typedef struct netpol_never {
	uint32_t addr;           /* host order; 0 = loopback and every host address */
	uint16_t port;
} netpol_never;

/* rules are copied; hosts is taken over (freed by netpol_free). gateway is
 * the guest-visible address that maps to the host's 127.0.0.1. */
netpol *netpol_new(const egress_rule *rules, size_t n, hosts_map *hosts, const netpol_never *never, size_t n_never,
		   uint32_t gateway);
void netpol_free(netpol *p);

/* A decision and what to record about it. */
typedef struct netpol_verdict {
	bool allow;
	int rule;                /* index of the deciding (or, denied, the closest) entry, -1 if none */
	char rule_text[300];     /* that entry as written canonically: filled for names and for
				  * denied connects ("" if none; an allowed connect formats nothing) */
	char reason[256];        /* for denials: why ("private address 10.0.0.5") */
} netpol_verdict;

/* Step 1 of answering a name (normalized with egress_normalize_name). Fills
 * v; when allowed, *from_hosts tells whether addrs (n, host order) came from
 * the hosts file already; otherwise the caller asks the host resolver and
 * calls netpol_resolve_finish with what it got. */
void netpol_resolve_plan(netpol *p, const char *name, netpol_verdict *v, bool *from_hosts, uint32_t *addrs,
			 size_t *n);
/* Step 2: filter addrs (in place; *n updated; host order) by the rules,
 * record the bindings of those kept, and translate them into what the guest
 * sees (127.0.0.1 -> gateway). from_hosts: the addresses come from the
 * hosts file. v->allow false when nothing is left (v->reason says why). */
void netpol_resolve_finish(netpol *p, const char *name, bool from_hosts, uint32_t *addrs, size_t *n,
			   netpol_verdict *v);

/* May the stack connect to addr:port (host order)? */
void netpol_check(netpol *p, uint32_t addr, uint16_t port, netpol_verdict *v);

/* For tests: replace the host-address list (NULL, 0 = read the host's again). */
void netpol_set_host_addrs(netpol *p, const uint32_t *addrs, size_t n);

#endif
