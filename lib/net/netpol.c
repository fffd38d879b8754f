/* SPDX-License-Identifier: Apache-2.0
 * Egress decisions (netpol.h has the rules). p->lock guards the bindings and
 * the host-address cache; rules and hosts are immutable after netpol_new.
 */
#include "net/netpol.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define HOST_ADDRS_MAX 256
#define HOST_ADDRS_TTL_NS (2000ull * 1000000ull)
#define LOOPBACK_ADDR 0x7f000001u

typedef struct binding {
	uint32_t addr;
	int rule;
	bool trusted;            /* from the operator's hosts file */
} binding;

/* Bindings are found by address through an open-addressing index (linear
 * probing, backward-shift deletion) of twice their number: O(1) per connect. */
#define IDX_SIZE (2 * NETPOL_MAX_BINDINGS)
#define IDX_EMPTY 0xffffu

struct netpol {
	pthread_mutex_t lock;
	egress_rule *rules;
	size_t n_rules;
	hosts_map hosts;
	netpol_never *never;
	size_t n_never;
	uint32_t gateway;
	binding *b;              /* ring of NETPOL_MAX_BINDINGS */
	size_t n_b, next_b;
	uint16_t *idx;           /* IDX_SIZE slots: index into b, IDX_EMPTY */
	uint32_t host[HOST_ADDRS_MAX];
	size_t n_host;
	uint64_t host_at;        /* when host[] was read; 0 = never */
	bool host_fixed;         /* set by a test */
};

netpol *netpol_new(const egress_rule *rules, size_t n, hosts_map *hosts, const netpol_never *never, size_t n_never,
		   uint32_t gateway)
{
	netpol *p = xcalloc(1, sizeof *p);
	pthread_mutex_init(&p->lock, NULL);
	p->rules = xcalloc(n ? n : 1, sizeof *p->rules);
	if (n)
		memcpy(p->rules, rules, n * sizeof *rules);
	p->n_rules = n;
	if (hosts) {
		p->hosts = *hosts;
		memset(hosts, 0, sizeof *hosts);
	}
	p->never = xcalloc(n_never ? n_never : 1, sizeof *p->never);
	if (n_never)
		memcpy(p->never, never, n_never * sizeof *never);
	p->n_never = n_never;
	p->gateway = gateway;
	p->b = xcalloc(NETPOL_MAX_BINDINGS, sizeof *p->b);
	p->idx = xmalloc(IDX_SIZE * sizeof *p->idx);
	memset(p->idx, 0xff, IDX_SIZE * sizeof *p->idx);
	return p;
}

void netpol_free(netpol *p)
{
	if (!p)
		return;
	hosts_free(&p->hosts);
	free(p->rules);
	free(p->never);
	free(p->b);
	free(p->idx);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void netpol_set_host_addrs(netpol *p, const uint32_t *addrs, size_t n)
{
	pthread_mutex_lock(&p->lock);
	p->host_fixed = addrs != NULL;
	p->n_host = MIN(n, (size_t)HOST_ADDRS_MAX);
	if (addrs)
		memcpy(p->host, addrs, p->n_host * sizeof *addrs);
	p->host_at = 0;
	pthread_mutex_unlock(&p->lock);
}

/* p->lock held. */
static void refresh_host_locked(netpol *p)
{
	if (p->host_fixed)
		return;
	uint64_t now = now_mono_ns();
	if (p->host_at && now - p->host_at < HOST_ADDRS_TTL_NS)
		return;
	struct ifaddrs *ifa = NULL;
	if (getifaddrs(&ifa) < 0)
		return;   /* keep the last list */
	p->n_host = 0;
	for (struct ifaddrs *i = ifa; i && p->n_host < HOST_ADDRS_MAX; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET)
			p->host[p->n_host++] = ntohl(((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr);
	freeifaddrs(ifa);
	p->host_at = now;
}

static bool is_host_locked(netpol *p, uint32_t addr)
{
	refresh_host_locked(p);
	for (size_t i = 0; i < p->n_host; i++)
		if (p->host[i] == addr)
			return true;
	return false;
}

static size_t idx_home(uint32_t addr)
{
	return (size_t)((addr * 2654435761u) >> 18) % IDX_SIZE;   /* Fibonacci hashing */
}

/* The index slot holding addr, or the empty slot where it would go. */
static size_t idx_find(const netpol *p, uint32_t addr)
{
	size_t i = idx_home(addr);
	while (p->idx[i] != IDX_EMPTY && p->b[p->idx[i]].addr != addr)
		i = (i + 1) % IDX_SIZE;
	return i;
}

static void idx_remove(netpol *p, uint32_t addr)
{
	size_t i = idx_find(p, addr);
	if (p->idx[i] == IDX_EMPTY)
		return;
	p->idx[i] = IDX_EMPTY;
	/* backward-shift: move later entries of the run into the hole when they may */
	for (size_t j = (i + 1) % IDX_SIZE; p->idx[j] != IDX_EMPTY; j = (j + 1) % IDX_SIZE) {
		size_t h = idx_home(p->b[p->idx[j]].addr);
		bool movable = i <= j ? (h <= i || h > j) : (h <= i && h > j);
		if (movable) {
			p->idx[i] = p->idx[j];
			p->idx[j] = IDX_EMPTY;
			i = j;
		}
	}
}

static const binding *binding_of(const netpol *p, uint32_t addr)
{
	size_t i = idx_find(p, addr);
	return p->idx[i] == IDX_EMPTY ? NULL : &p->b[p->idx[i]];
}

static void fmt_addr(uint32_t a, char *buf, size_t len)
{
	struct in_addr in = {.s_addr = htonl(a)};
	if (!inet_ntop(AF_INET, &in, buf, (socklen_t)len))
		snprintf(buf, len, "?");
}

static void set_rule(netpol *p, netpol_verdict *v, int rule)
{
	v->rule = rule;
	v->rule_text[0] = '\0';
	if (rule >= 0)
		egress_format(&p->rules[rule], v->rule_text, sizeof v->rule_text);
}

/* The class that makes addr unreachable without an explicit entry, or NULL. */
static const char *special_locked(netpol *p, uint32_t addr)
{
	const char *cls = egress_addr_class(addr);
	if (cls)
		return cls;
	return is_host_locked(p, addr) ? "address of the host" : NULL;
}

/* An IP/CIDR entry containing addr (any port when port == 0): its index or -1. */
static int cidr_rule(netpol *p, uint32_t addr, uint16_t port, bool any_port)
{
	for (size_t i = 0; i < p->n_rules; i++)
		if (egress_cidr_contains(&p->rules[i], addr) && (any_port || egress_port_matches(&p->rules[i], port)))
			return (int)i;
	return -1;
}

void netpol_resolve_plan(netpol *p, const char *name, netpol_verdict *v, bool *from_hosts, uint32_t *addrs,
			 size_t *n)
{
	memset(v, 0, sizeof *v);
	*from_hosts = false;
	size_t cap = *n;
	*n = 0;
	int rule = -1;
	for (size_t i = 0; i < p->n_rules && rule < 0; i++)
		if (egress_name_matches(&p->rules[i], name))
			rule = (int)i;
	set_rule(p, v, rule);
	if (rule < 0) {
		snprintf(v->reason, sizeof v->reason, "no egress entry allows the name");
		return;
	}
	v->allow = true;
	const hosts_entry *h = hosts_lookup(&p->hosts, name);
	if (h) {
		*from_hosts = true;
		*n = MIN(cap, (size_t)h->n);
		memcpy(addrs, h->addrs, *n * sizeof *addrs);
	}
}

void netpol_resolve_finish(netpol *p, const char *name, bool from_hosts, uint32_t *addrs, size_t *n,
			   netpol_verdict *v)
{
	(void)name;
	pthread_mutex_lock(&p->lock);
	size_t kept = 0;
	char first_drop[160] = "";
	for (size_t i = 0; i < *n; i++) {
		uint32_t a = addrs[i];
		const char *cls = special_locked(p, a);
		int explicit_rule = cidr_rule(p, a, 0, true);
		char ip[INET_ADDRSTRLEN];
		fmt_addr(a, ip, sizeof ip);
		if (cls && !from_hosts && explicit_rule < 0) {
			if (!first_drop[0])
				snprintf(first_drop, sizeof first_drop, "the name resolves to a %s address (%s)", cls, ip);
			continue;
		}
		uint32_t shown = a;
		if ((a >> 24) == 127) {
			/* the guest reaches the host's 127.0.0.1 through the gateway only */
			if (a != LOOPBACK_ADDR) {
				if (!first_drop[0])
					snprintf(first_drop, sizeof first_drop,
						 "%s is a loopback address other than 127.0.0.1, which the sandbox cannot reach", ip);
				continue;
			}
			shown = p->gateway;
		}
		/* record the binding (replacing an older one of the same address; when
		 * full, the oldest goes) */
		size_t at = idx_find(p, a);
		size_t slot;
		if (p->idx[at] != IDX_EMPTY) {
			slot = p->idx[at];
		} else {
			if (p->n_b < NETPOL_MAX_BINDINGS) {
				slot = p->n_b++;
			} else {
				slot = p->next_b;
				p->next_b = (p->next_b + 1) % NETPOL_MAX_BINDINGS;
				idx_remove(p, p->b[slot].addr);
			}
			p->b[slot].addr = a;
			p->idx[idx_find(p, a)] = (uint16_t)slot;
		}
		p->b[slot] = (binding){.addr = a, .rule = v->rule, .trusted = from_hosts};
		addrs[kept++] = shown;
	}
	*n = kept;
	if (!kept) {
		v->allow = false;
		snprintf(v->reason, sizeof v->reason, "%s", first_drop[0] ? first_drop : "the name has no IPv4 address");
	}
	pthread_mutex_unlock(&p->lock);
}

void netpol_check(netpol *p, uint32_t addr, uint16_t port, netpol_verdict *v)
{
	/* the hot path (an allowed connect) formats nothing: texts only for denials */
	v->allow = false;
	v->rule = -1;
	v->rule_text[0] = v->reason[0] = '\0';
	char ip[INET_ADDRSTRLEN];
	pthread_mutex_lock(&p->lock);
	const char *cls = special_locked(p, addr);
	bool local = (addr >> 24) == 127 || (cls && !strcmp(cls, "address of the host"));
	bool never = false;
	for (size_t i = 0; i < p->n_never && !never; i++)
		never = p->never[i].port == port && (p->never[i].addr == addr || (!p->never[i].addr && local));
	const binding *b = never ? NULL : binding_of(p, addr);
	int r = never ? -1 : cidr_rule(p, addr, port, false);
	if (r >= 0) {
		v->rule = r;
		v->allow = true;
	} else if (b && (!cls || b->trusted) && egress_port_matches(&p->rules[b->rule], port)) {
		v->rule = b->rule;   /* the latest answer for this address */
		v->allow = true;
	} else if (!cls && !never) {
		for (size_t i = 0; i < p->n_rules && !v->allow; i++)
			if (p->rules[i].kind == EGRESS_ANY && egress_port_matches(&p->rules[i], port)) {
				v->rule = (int)i;
				v->allow = true;
			}
	}
	if (v->allow) {
		pthread_mutex_unlock(&p->lock);
		return;
	}
	/* denied: say why, naming the closest entry */
	fmt_addr(addr, ip, sizeof ip);
	int any_port = cls ? cidr_rule(p, addr, 0, true) : -1;
	if (never) {
		snprintf(v->reason, sizeof v->reason, "%s:%u is silod's own API port", ip, port);
	} else if (b && (!cls || b->trusted)) {
		v->rule = b->rule;
		snprintf(v->reason, sizeof v->reason, "port %u of %s is not allowed by the entry its name matched", port, ip);
	} else if (any_port >= 0) {
		v->rule = any_port;
		snprintf(v->reason, sizeof v->reason, "port %u of %s is not allowed by the entry", port, ip);
	} else if (cls) {
		snprintf(v->reason, sizeof v->reason, "%s is a %s address; only an IP/CIDR entry naming it allows it", ip, cls);
	} else {
		snprintf(v->reason, sizeof v->reason,
			 "no egress entry allows %s:%u (names must be resolved through the sandbox's DNS)", ip, port);
	}
	set_rule(p, v, v->rule);
	pthread_mutex_unlock(&p->lock);
}
