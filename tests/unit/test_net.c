/* SPDX-License-Identifier: Apache-2.0
 * lib/net: egress entries, address classes, the hosts file, DNS messages,
 * the decision engine, and the stack's egress filter with a real process
 * (this binary re-executed as the "stack": it connects where it is told and
 * reports what the kernel answered). Loopback only.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "harness.h"
#include "net/dns.h"
#include "net/egress.h"
#include "net/hosts.h"
#include "net/netpol.h"
#include "net/stack.h"
#include "stack_test.h"

static uint32_t ip(const char *s)
{
	struct in_addr a;
	if (inet_pton(AF_INET, s, &a) != 1)
		abort();
	return ntohl(a.s_addr);
}

TEST(egress_entries_parse_and_format)
{
	static const struct {
		const char *in, *out;
		egress_kind kind;
		unsigned port;
	} ok[] = {
		{"*", "*", EGRESS_ANY, 0},
		{"*:443", "*:443", EGRESS_ANY, 443},
		{"PyPI.org.", "pypi.org", EGRESS_NAME, 0},
		{"pypi.org:443", "pypi.org:443", EGRESS_NAME, 443},
		{"*.github.com", "*.github.com", EGRESS_WILDCARD, 0},
		{"*.GitHub.com:22", "*.github.com:22", EGRESS_WILDCARD, 22},
		{"10.1.0.0/16:5432", "10.1.0.0/16:5432", EGRESS_CIDR, 5432},
		{"93.184.216.34", "93.184.216.34", EGRESS_CIDR, 0},
		{"93.184.216.34/32:80", "93.184.216.34:80", EGRESS_CIDR, 80},
		{"0.0.0.0/0", "0.0.0.0/0", EGRESS_CIDR, 0},
		{"files.test:65535", "files.test:65535", EGRESS_NAME, 65535},
		{"a_b-c.example", "a_b-c.example", EGRESS_NAME, 0},
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		egress_rule r;
		char why[200] = "", text[300];
		if (!egress_parse(ok[i].in, &r, why, sizeof why)) {
			printf("# %s: %s\n", ok[i].in, why);
			CHECK(0);
			continue;
		}
		egress_format(&r, text, sizeof text);
		CHECK_STR_EQ(text, ok[i].out);
		CHECK_INT_EQ(r.kind, ok[i].kind);
		CHECK_INT_EQ(r.port, ok[i].port);
	}
	static const struct {
		const char *in, *why;
	} bad[] = {
		{"", "expected"},
		{"pypi.org:", "port 1-65535"},
		{"pypi.org:0", "port 1-65535"},
		{"pypi.org:65536", "port 1-65535"},
		{"pypi.org:44a", "port 1-65535"},
		{"*pypi.org", "\"*.domain\""},
		{"a.*.org", "first label"},
		{"**", "\"*.domain\""},
		{"10.0.0.1/33", "prefix length"},
		{"10.0.0.1/24", "bits set beyond"},
		{"10.0.0", "IPv4 address"},
		{"300.1.1.1", "IPv4 address"},
		{"[::1]:80", "IPv6"},
		{"2001:db8::/32", "IPv6"},
		{"exa mple.com", "DNS name"},
		{"a..b", "DNS name"},
		{"1.2.3", "IPv4"},
		{"example.123", "DNS name"},
		{":443", "host before"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		egress_rule r;
		char why[200] = "";
		CHECK(!egress_parse(bad[i].in, &r, why, sizeof why));
		CHECK_CONTAINS(why, bad[i].why);
	}
	char longname[400];
	memset(longname, 'a', 300);
	longname[300] = '\0';
	egress_rule r;
	CHECK(!egress_parse(longname, &r, NULL, 0));
	memset(longname, 'a', 64);
	strcpy(longname + 64, ".com");
	CHECK(!egress_parse(longname, &r, NULL, 0));   /* a 64-byte label */
}

TEST(egress_coverage_for_policies)
{
	CHECK(egress_covers("*", "pypi.org:443"));
	CHECK(egress_covers("*", "*.github.com"));
	CHECK(egress_covers("*", "93.184.216.0/24"));
	CHECK(!egress_covers("*", "10.1.0.0/16"));          /* private: never through "*" */
	CHECK(!egress_covers("*", "0.0.0.0/0"));
	CHECK(!egress_covers("*", "169.254.169.254"));
	CHECK(!egress_covers("*:443", "pypi.org"));         /* any port is more than 443 */
	CHECK(egress_covers("*:443", "pypi.org:443"));
	CHECK(egress_covers("pypi.org", "pypi.org:443"));
	CHECK(!egress_covers("pypi.org:443", "pypi.org:80"));
	CHECK(egress_covers("*.github.com", "api.github.com:443"));
	CHECK(egress_covers("*.github.com", "*.api.github.com"));
	CHECK(!egress_covers("*.github.com", "github.com"));
	CHECK(!egress_covers("*.github.com", "evilgithub.com"));
	CHECK(egress_covers("10.0.0.0/8", "10.1.0.0/16:5432"));
	CHECK(!egress_covers("10.1.0.0/16", "10.0.0.0/8"));
	CHECK(!egress_covers("10.0.0.0/8", "*"));
	CHECK(!egress_covers("pypi.org", "*"));
	CHECK(!egress_covers("bad entry", "pypi.org"));
}

TEST(address_classes)
{
	static const struct {
		const char *a, *cls;
	} cases[] = {
		{"127.0.0.1", "loopback"}, {"127.255.0.9", "loopback"}, {"10.0.0.5", "private"},
		{"172.16.0.1", "private"}, {"172.31.255.255", "private"}, {"172.32.0.1", NULL},
		{"192.168.1.1", "private"}, {"169.254.169.254", "link-local"}, {"100.64.0.1", "shared address space"},
		{"0.0.0.0", "this network"}, {"224.0.0.1", "multicast"}, {"255.255.255.255", "broadcast"},
		{"240.0.0.1", "reserved"}, {"192.0.2.7", "documentation"}, {"198.18.0.1", "benchmarking"},
		{"8.8.8.8", NULL}, {"93.184.216.34", NULL}, {"1.1.1.1", NULL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *c = egress_addr_class(ip(cases[i].a));
		if (!cases[i].cls)
			CHECK(c == NULL);
		else
			CHECK(c && !strcmp(c, cases[i].cls));
	}
	CHECK(egress_range_special(ip("0.0.0.0"), 0));
	CHECK(egress_range_special(ip("10.0.0.0"), 8));
	CHECK(egress_range_special(ip("8.0.0.0"), 5));   /* 8.0.0.0/5 holds 10/8 */
	CHECK(!egress_range_special(ip("8.8.8.0"), 24));
}

TEST(hosts_file_parse)
{
	const char *text = "# operator's names\n"
			   "127.0.0.1\tlocalhost\n"
			   "::1 localhost ip6-localhost\n"
			   "10.0.0.5 files.test Other.Test. # trailing comment\n"
			   "10.0.0.6 files.test\n"
			   "10.0.0.5 files.test\n"
			   "\n   \t\n";
	hosts_map m;
	char why[200] = "";
	REQUIRE(hosts_parse(text, strlen(text), &m, why, sizeof why));
	const hosts_entry *e = hosts_lookup(&m, "files.test");
	REQUIRE(e);
	CHECK_INT_EQ(e->n, 2);
	CHECK(e->addrs[0] == ip("10.0.0.5") && e->addrs[1] == ip("10.0.0.6"));
	CHECK(hosts_lookup(&m, "other.test") != NULL);
	CHECK(hosts_lookup(&m, "localhost") != NULL);
	CHECK(hosts_lookup(&m, "ip6-localhost") == NULL);   /* IPv6 lines skipped */
	CHECK(hosts_lookup(&m, "nothere.test") == NULL);
	hosts_free(&m);
	static const struct {
		const char *text, *why;
	} bad[] = {
		{"1.2.3 name\n", "line 1: \"1.2.3\" is not an IPv4 address"},
		{"\n10.0.0.1\n", "line 2: an address without a name"},
		{"10.0.0.1 bad..name\n", "line 1: \"bad..name\" is not a valid host name"},
		{"10.0.0.1 a\0b\n", "line 1: contains a NUL byte"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t len = i == 3 ? 13 : strlen(bad[i].text);
		CHECK(!hosts_parse(bad[i].text, len, &m, why, sizeof why));
		CHECK_CONTAINS(why, bad[i].why);
	}
	/* a name with more than 16 addresses */
	char big[2048] = "";
	for (int i = 0; i < 17; i++)
		snprintf(big + strlen(big), sizeof big - strlen(big), "10.0.0.%d many.test\n", i + 1);
	CHECK(!hosts_parse(big, strlen(big), &m, why, sizeof why));
	CHECK_CONTAINS(why, "more than 16 addresses");
}

static size_t make_query(uint8_t *q, uint16_t id, const char *name, uint16_t type)
{
	size_t o = 12;
	memset(q, 0, 12);
	q[0] = (uint8_t)(id >> 8);
	q[1] = (uint8_t)id;
	q[2] = 0x01;   /* RD */
	q[5] = 1;
	const char *p = name;
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);
		q[o++] = (uint8_t)l;
		memcpy(q + o, p, l);
		o += l;
		p += l + (dot ? 1 : 0);
	}
	q[o++] = 0;
	q[o++] = (uint8_t)(type >> 8);
	q[o++] = (uint8_t)type;
	q[o++] = 0;
	q[o++] = 1;
	return o;
}

TEST(dns_parse_and_answer)
{
	uint8_t q[512], r[512];
	size_t len = make_query(q, 0xbeef, "Files.Test", DNS_TYPE_A);
	dns_query dq;
	char why[160];
	REQUIRE(dns_parse_query(q, len, &dq, why, sizeof why) == DNS_NOERROR);
	CHECK_STR_EQ(dq.name, "Files.Test");
	CHECK_INT_EQ(dq.qtype, DNS_TYPE_A);
	CHECK_INT_EQ(dq.id, 0xbeef);
	uint32_t addrs[2] = {ip("10.0.2.2"), ip("93.184.216.34")};
	size_t rl = dns_build_response(q, len, &dq, DNS_NOERROR, addrs, 2, 60, r, sizeof r);
	CHECK_INT_EQ(rl, len + 32);
	CHECK(r[0] == 0xbe && r[1] == 0xef && (r[2] & 0x80) && (r[3] & 0xf) == 0);
	CHECK(r[7] == 2);                                   /* two answers */
	CHECK(r[len + 12] == 10 && r[len + 15] == 2);       /* 10.0.2.2 */
	rl = dns_build_response(q, len, &dq, DNS_NXDOMAIN, addrs, 2, 60, r, sizeof r);
	CHECK_INT_EQ(rl, len);
	CHECK((r[3] & 0xf) == DNS_NXDOMAIN && r[7] == 0);
	/* hostile shapes */
	CHECK(dns_parse_query(q, 11, &dq, why, sizeof why) == -1);
	uint8_t resp[64];
	memcpy(resp, q, len);
	resp[2] |= 0x80;
	CHECK(dns_parse_query(resp, len, &dq, why, sizeof why) == -1);    /* answers are never answered */
	uint8_t loop[] = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1};
	CHECK(dns_parse_query(loop, sizeof loop, &dq, why, sizeof why) == DNS_FORMERR);
	CHECK_CONTAINS(why, "backwards");
	uint8_t trunc[] = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5, 'a', 'b'};
	CHECK(dns_parse_query(trunc, sizeof trunc, &dq, why, sizeof why) == DNS_FORMERR);
	uint8_t two[512];
	len = make_query(two, 7, "a.test", 1);
	two[5] = 2;
	CHECK(dns_parse_query(two, len, &dq, why, sizeof why) == DNS_FORMERR);
	len = make_query(two, 7, "a.test", 1);
	two[2] |= 0x28;   /* opcode 5 */
	CHECK(dns_parse_query(two, len, &dq, why, sizeof why) == DNS_NOTIMP);
	/* a 256-byte name */
	uint8_t big[600];
	memset(big, 0, 12);
	big[5] = 1;
	size_t o = 12;
	for (int i = 0; i < 5; i++) {
		big[o++] = 63;
		memset(big + o, 'a', 63);
		o += 63;
	}
	big[o++] = 0;
	big[o++] = 0;
	big[o++] = 1;
	big[o++] = 0;
	big[o++] = 1;
	CHECK(dns_parse_query(big, o, &dq, why, sizeof why) == DNS_FORMERR);
	CHECK_CONTAINS(why, "255");
}

static netpol *test_pol(const char *const *entries, size_t n, const char *hosts_text)
{
	egress_rule rules[16];
	for (size_t i = 0; i < n; i++)
		if (!egress_parse(entries[i], &rules[i], NULL, 0))
			abort();
	hosts_map h = {0};
	if (hosts_text && !hosts_parse(hosts_text, strlen(hosts_text), &h, NULL, 0))
		abort();
	netpol_never never[] = {{0, 7700}};
	netpol *p = netpol_new(rules, n, &h, never, 1, ip("10.0.2.2"));
	uint32_t host[] = {ip("127.0.0.1"), ip("192.0.2.2"), ip("203.0.114.9")};
	netpol_set_host_addrs(p, host, 3);
	return p;
}

/* Resolve through the plan/finish steps; resolver answers stand in for the host's. */
static bool resolve(netpol *p, const char *name, const uint32_t *resolver, size_t nres, uint32_t *out, size_t *n,
		    netpol_verdict *v)
{
	bool from_hosts;
	*n = 8;
	netpol_resolve_plan(p, name, v, &from_hosts, out, n);
	if (!v->allow)
		return false;
	if (!from_hosts) {
		memcpy(out, resolver, nres * sizeof *out);
		*n = nres;
	}
	netpol_resolve_finish(p, name, from_hosts, out, n, v);
	return v->allow;
}

/* netpol_check of ADDR:PORT is allowed or not as ALLOW, its reason containing REASON
 * (NULL: any); a mismatch names the caller's LINE. The verdict, for further checks. */
static netpol_verdict verdict_is(int line, netpol *p, uint32_t addr, uint16_t port, bool allow, const char *reason)
{
	netpol_verdict v;
	netpol_check(p, addr, port, &v);
	if (v.allow != allow || (reason && !strstr(v.reason, reason)))
		printf("# line %d: %u.%u.%u.%u:%u: allow %d, reason \"%s\"\n", line, addr >> 24, (addr >> 16) & 255,
		       (addr >> 8) & 255, addr & 255, port, v.allow, v.reason);
	CHECK_INT_EQ(v.allow, allow);
	if (reason)
		CHECK_CONTAINS(v.reason, reason);
	return v;
}
#define VERDICT(p, addr, port, allow, reason) verdict_is(__LINE__, p, addr, port, allow, reason)

TEST(decisions_names_bindings_and_ports)
{
	const char *entries[] = {"files.test:8000", "pypi.org:443", "*.github.com", "10.9.0.0/16:5432"};
	netpol *p = test_pol(entries, 4, "127.0.0.1 files.test\n10.0.0.7 other.test\n");
	uint32_t a[8];
	size_t n;
	netpol_verdict v;
	/* the hosts file maps files.test to loopback: the guest gets the gateway */
	CHECK(resolve(p, "files.test", NULL, 0, a, &n, &v));
	CHECK(n == 1 && a[0] == ip("10.0.2.2"));
	CHECK_STR_EQ(v.rule_text, "files.test:8000");
	VERDICT(p, ip("127.0.0.1"), 8000, true, NULL);
	VERDICT(p, ip("127.0.0.1"), 8001, false, "port 8001");
	/* silod's port: never, whatever the bindings */
	VERDICT(p, ip("127.0.0.1"), 7700, false, "silod");
	VERDICT(p, ip("192.0.2.2"), 7700, false, NULL);
	/* a name no entry allows: no answer at all */
	CHECK(!resolve(p, "other.test", NULL, 0, a, &n, &v));
	CHECK_CONTAINS(v.reason, "no egress entry allows the name");
	/* a public answer is bound to its entry's port */
	uint32_t pypi[] = {ip("151.101.0.223"), ip("151.101.64.223")};
	CHECK(resolve(p, "pypi.org", pypi, 2, a, &n, &v));
	CHECK(n == 2 && a[0] == pypi[0]);
	CHECK_INT_EQ(VERDICT(p, pypi[1], 443, true, NULL).rule, 1);   /* pypi.org:443 */
	VERDICT(p, pypi[1], 80, false, NULL);
	/* an address nobody resolved */
	VERDICT(p, ip("93.184.216.34"), 443, false, "no egress entry allows 93.184.216.34:443");
	/* DNS rebinding: an allowed name answered with private, loopback, metadata, host addresses */
	uint32_t evil[] = {ip("10.0.0.5"), ip("127.0.0.1"), ip("169.254.169.254"), ip("203.0.114.9")};
	for (size_t i = 0; i < 4; i++) {
		CHECK(!resolve(p, "api.github.com", &evil[i], 1, a, &n, &v));
		CHECK_CONTAINS(v.reason, "the name resolves to a");
		VERDICT(p, evil[i], 443, false, NULL);
	}
	/* mixed answer: only the public address survives */
	uint32_t mixed[] = {ip("10.0.0.5"), ip("140.82.112.3")};
	CHECK(resolve(p, "api.github.com", mixed, 2, a, &n, &v));
	CHECK(n == 1 && a[0] == ip("140.82.112.3"));
	CHECK_STR_EQ(v.rule_text, "*.github.com");
	/* a CIDR entry names a private range explicitly */
	VERDICT(p, ip("10.9.3.4"), 5432, true, NULL);
	VERDICT(p, ip("10.9.3.4"), 5433, false, NULL);
	/* every always-denied class, directly by address */
	const char *classes[] = {"127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.0.1", "169.254.169.254",
				 "100.64.0.1", "0.0.0.0", "224.0.0.1", "192.0.2.2", "203.0.114.9"};
	for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
		VERDICT(p, ip(classes[i]), 80, false, NULL);
	netpol_free(p);
	/* "*": anything public, nothing special */
	const char *any[] = {"*"};
	p = test_pol(any, 1, NULL);
	VERDICT(p, ip("93.184.216.34"), 443, true, NULL);
	VERDICT(p, ip("169.254.169.254"), 80, false, "link-local");
	VERDICT(p, ip("203.0.114.9"), 80, false, "address of the host");   /* a public address of the host */
	netpol_free(p);
}

TEST(bindings_are_bounded_and_evict_the_oldest)
{
	const char *entries[] = {"*.example.com:443"};
	netpol *p = test_pol(entries, 1, NULL);
	netpol_verdict v;
	uint32_t a[8];
	size_t n;
	/* 3 x the capacity of distinct public addresses, in a pattern that collides in the index */
	for (uint32_t i = 0; i < 3 * NETPOL_MAX_BINDINGS; i++) {
		uint32_t addr = 0x5db80000u + i * 8192u;
		REQUIRE(resolve(p, "a.example.com", &addr, 1, a, &n, &v));
	}
	int live = 0, gone = 0;
	for (uint32_t i = 0; i < 3 * NETPOL_MAX_BINDINGS; i++) {
		netpol_check(p, 0x5db80000u + i * 8192u, 443, &v);
		if (i >= 2 * NETPOL_MAX_BINDINGS)
			live += v.allow;
		else
			gone += !v.allow;
	}
	CHECK_INT_EQ(live, NETPOL_MAX_BINDINGS);          /* the newest are all found */
	CHECK_INT_EQ(gone, 2 * NETPOL_MAX_BINDINGS);      /* the evicted allow nothing */
	netpol_free(p);
}

/* ---- the egress filter with a real process ---- */

/* The "stack": this binary run with NET_TEST_CHILD=ip:port,ip:port,...: for
 * each destination a nonblocking connect, then a line "ip:port rc errno". */
__attribute__((constructor)) static void child_main(void)
{
	const char *list = getenv("NET_TEST_CHILD");
	if (!list)
		return;
	char buf[1024];
	snprintf(buf, sizeof buf, "%s", list);
	for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
		/* ip:port, or [ipv6]:port on an IPv6 socket */
		char *colon = strrchr(tok, ':');
		*colon = '\0';
		uint16_t port = htons((uint16_t)atoi(colon + 1));
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = port};
		struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = port};
		bool v6 = tok[0] == '[';
		if (v6) {
			tok[strlen(tok) - 1] = '\0';
			inet_pton(AF_INET6, tok + 1, &s6.sin6_addr);
			tok[strlen(tok)] = ']';
		} else {
			inet_pton(AF_INET, tok, &sa.sin_addr);
		}
		int s = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		int rc = v6 ? connect(s, (struct sockaddr *)&s6, sizeof s6) : connect(s, (struct sockaddr *)&sa, sizeof sa);
		int e = rc < 0 ? errno : 0;
		if (rc < 0 && e == EINPROGRESS) {
			struct pollfd p = {.fd = s, .events = POLLOUT};
			poll(&p, 1, 2000);
			socklen_t l = sizeof e;
			getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &l);
		}
		printf("%s:%s %d\n", tok, colon + 1, e);
		close(s);
	}
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	printf("udp %d\n", u < 0 ? errno : 0);
	int l = socket(AF_INET, SOCK_STREAM, 0);
	printf("listen %d\n", listen(l, 1) < 0 ? errno : 0);
	printf("io_uring %d\n", syscall(SYS_io_uring_setup, 1, NULL) < 0 ? errno : 0);
	int pk = socket(AF_PACKET, SOCK_RAW, 0);
	printf("packet %d\n", pk < 0 ? errno : 0);
	fflush(stdout);
	_exit(0);
}

/* A listener on [::1] (the host's IPv6 loopback), or -1 without IPv6. */
static int listener6(uint16_t *port)
{
	int s = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(s, 16) < 0) {
		if (s >= 0)
			close(s);
		return -1;
	}
	socklen_t l = sizeof sa;
	getsockname(s, (struct sockaddr *)&sa, &l);
	*port = ntohs(sa.sin6_port);
	return s;
}

static int listener(uint16_t *port)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	REQUIRE(bind(s, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(s, 16) == 0);
	socklen_t l = sizeof sa;
	getsockname(s, (struct sockaddr *)&sa, &l);
	*port = ntohs(sa.sin_port);
	return s;
}

typedef struct seen {
	int allowed, denied;
} seen;

static void on_decided(void *ud, uint32_t addr, uint16_t port, const netpol_verdict *v, int result)
{
	(void)addr;
	(void)port;
	(void)result;
	seen *s = ud;
	if (v->allow)
		s->allowed++;
	else
		s->denied++;
}

TEST(stack_filter_decides_every_connect)
{
	uint16_t ok_port, other_port, v6_port = 0;
	int l1 = listener(&ok_port), l2 = listener(&other_port), l6 = listener6(&v6_port);
	char entry[64];
	snprintf(entry, sizeof entry, "127.0.0.1:%u", ok_port);
	const char *entries[] = {entry};
	netpol *p = test_pol(entries, 1, NULL);
	char targets[256];
	/* the IPv6 attacks: the host's IPv6 loopback (the stack is IPv4 only),
	 * and a denied IPv4 port spelled as a v4-mapped IPv6 address */
	snprintf(targets, sizeof targets,
		 "127.0.0.1:%u,127.0.0.1:%u,169.254.169.254:80,10.0.0.1:80,[::ffff:127.0.0.1]:%u,[::1]:%u", ok_port,
		 other_port, other_port, l6 >= 0 ? v6_port : 9);
	setenv("NET_TEST_CHILD", targets, 1);
	int out[2];
	REQUIRE(pipe(out) == 0);
	char self[4096];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
	REQUIRE(sl > 0);
	self[sl] = '\0';
	char *argv[] = {self, NULL};
	pid_t pid;
	int nfd;
	char why[300];
	if (stack_spawn(argv, NULL, 0, out[1], false, &pid, &nfd, why, sizeof why) < 0)
		SKIP("cannot start a process under the filter: %s", why);
	close(out[1]);
	unsetenv("NET_TEST_CHILD");
	seen s = {0};
	char buf[4096];
	CHECK_INT_EQ(stack_pump(nfd, out[0], p, on_decided, &s, 5000, buf, sizeof buf), 0);
	printf("# child said:\n");
	for (const char *line = buf; *line;) {   /* TAP: every line a comment */
		size_t n = strcspn(line, "\n");
		printf("#   %.*s\n", (int)n, line);
		line += n + (line[n] != '\0');
	}
	int st;
	waitpid(pid, &st, 0);
	char want[128];
	snprintf(want, sizeof want, "127.0.0.1:%u 0\n", ok_port);
	CHECK_CONTAINS(buf, want);                           /* allowed: connected for real */
	snprintf(want, sizeof want, "127.0.0.1:%u %d\n", other_port, ECONNREFUSED);
	CHECK_CONTAINS(buf, want);                           /* denied: refused at once */
	snprintf(want, sizeof want, "169.254.169.254:80 %d\n", ECONNREFUSED);
	CHECK_CONTAINS(buf, want);
	snprintf(want, sizeof want, "10.0.0.1:80 %d\n", ECONNREFUSED);
	CHECK_CONTAINS(buf, want);
	snprintf(want, sizeof want, "[::ffff:127.0.0.1]:%u %d\n", other_port, ECONNREFUSED);
	CHECK_CONTAINS(buf, want);
	snprintf(want, sizeof want, "[::1]:%u %d\n", l6 >= 0 ? v6_port : 9, ENETUNREACH);
	CHECK_CONTAINS(buf, want);
	snprintf(want, sizeof want, "udp %d\n", EACCES);
	CHECK_CONTAINS(buf, want);
	snprintf(want, sizeof want, "listen %d\n", EPERM);
	CHECK_CONTAINS(buf, want);
	snprintf(want, sizeof want, "io_uring %d\n", ENOSYS);
	CHECK_CONTAINS(buf, want);
	snprintf(want, sizeof want, "packet %d\n", EAFNOSUPPORT);
	CHECK_CONTAINS(buf, want);
	CHECK_INT_EQ(s.allowed, 1);
	CHECK_INT_EQ(s.denied, 4);   /* the native IPv6 connect is refused before any decision */
	/* the allowed connection reached the listener; the denied one never did */
	int c = accept4(l1, NULL, NULL, SOCK_NONBLOCK);
	CHECK(c >= 0);
	if (c >= 0)
		close(c);
	CHECK(accept4(l2, NULL, NULL, SOCK_NONBLOCK) < 0);
	if (l6 >= 0) {
		CHECK(accept4(l6, NULL, NULL, SOCK_NONBLOCK) < 0);
		close(l6);
	}
	close(nfd);
	netpol_free(p);
}

TEST_MAIN(egress_entries_parse_and_format, egress_coverage_for_policies, address_classes, hosts_file_parse,
	  dns_parse_and_answer, decisions_names_bindings_and_ports, bindings_are_bounded_and_evict_the_oldest,
	  stack_filter_decides_every_connect)
