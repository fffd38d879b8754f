/* SPDX-License-Identifier: Apache-2.0
 * Guest side of networking (agent_net.h). Bounded: 64 queries in flight
 * (the oldest is forgotten beyond that), 16 TCP DNS clients, messages of at
 * most WIRE_MAX_DNS bytes. The stub never answers by itself: every query
 * goes to the host, which resolves, decides and builds the answer.
 */
#include "agent_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wire.h"

#define PENDING 64
#define TCP_CLIENTS 16
#define IFNAME "eth0"

typedef struct tcp_client {
	int fd;
	uint32_t gen;                   /* bumped on reuse: late answers for a closed client are dropped */
	uint8_t in[2 + WIRE_MAX_DNS];
	size_t in_len;
} tcp_client;

typedef struct pending {
	bool used;
	uint32_t tag;
	bool tcp;
	struct sockaddr_in from;        /* udp */
	int client;                     /* tcp: index */
	uint32_t gen;
} pending;

static struct {
	int udp, listen;
	tcp_client c[TCP_CLIENTS];
	pending p[PENDING];
	size_t next_p;
	uint32_t next_tag;
} N = {.udp = -1, .listen = -1};

static void nb(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	fcntl(fd, F_SETFD, FD_CLOEXEC);
}

static int set_if(int s, unsigned long req, uint32_t addr_be, char *msg, size_t msglen, const char *what)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", IFNAME);
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = addr_be;
	if (ioctl(s, req, &ifr) < 0) {
		int e = errno;
		snprintf(msg, msglen, "%s %s: %s", what, IFNAME, strerror(e));
		return e;
	}
	return 0;
}

static int configure_eth0(uint32_t addr, int prefix, uint32_t gw, uint32_t mtu, char *msg, size_t msglen)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		snprintf(msg, msglen, "socket: %s", strerror(errno));
		return errno;
	}
	uint32_t mask = prefix ? htonl(0xffffffffu << (32 - prefix)) : 0;
	int e = set_if(s, SIOCSIFADDR, addr, msg, msglen, "address");
	if (!e)
		e = set_if(s, SIOCSIFNETMASK, mask, msg, msglen, "netmask");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", IFNAME);
	if (!e && mtu) {
		ifr.ifr_mtu = (int)mtu;
		if (ioctl(s, SIOCSIFMTU, &ifr) < 0)
			e = errno, snprintf(msg, msglen, "mtu %s: %s", IFNAME, strerror(e));
	}
	if (!e && ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			e = errno, snprintf(msg, msglen, "up %s: %s", IFNAME, strerror(e));
	}
	if (!e) {
		struct rtentry rt;
		memset(&rt, 0, sizeof rt);
		struct sockaddr_in *d = (struct sockaddr_in *)&rt.rt_dst, *g = (struct sockaddr_in *)&rt.rt_gateway,
				   *m = (struct sockaddr_in *)&rt.rt_genmask;
		d->sin_family = g->sin_family = m->sin_family = AF_INET;
		g->sin_addr.s_addr = gw;
		rt.rt_flags = RTF_UP | RTF_GATEWAY;
		rt.rt_dev = (char *)IFNAME;
		if (ioctl(s, SIOCADDRT, &rt) < 0 && errno != EEXIST)
			e = errno, snprintf(msg, msglen, "default route via the gateway: %s", strerror(e));
	}
	close(s);
	return e;
}

/* The namespace provider's stack (pasta) configures eth0 itself: wait for it. */
static int wait_eth0(uint32_t addr, char *msg, size_t msglen)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	for (int i = 0; s >= 0 && i < 250; i++) {   /* < the host's 3 heartbeats */
		struct ifreq ifr;
		memset(&ifr, 0, sizeof ifr);
		snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", IFNAME);
		if (ioctl(s, SIOCGIFADDR, &ifr) == 0 && ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr.s_addr == addr &&
		    ioctl(s, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP)) {
			close(s);
			return 0;
		}
		struct timespec ts = {0, 10 * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (s >= 0)
		close(s);
	snprintf(msg, msglen, "%s did not come up with its address within 2.5 s (see the run directory's net.log)", IFNAME);
	return ETIMEDOUT;
}

/* lo up (a VM's kernel leaves it down; the namespace provider has done it). */
static void lo_up(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
	if (s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0 && !(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	if (s >= 0)
		close(s);
}

static int dns_sockets(char *msg, size_t msglen)
{
	if (N.udp >= 0)
		return 0;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(53), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1;
	N.udp = socket(AF_INET, SOCK_DGRAM, 0);
	N.listen = socket(AF_INET, SOCK_STREAM, 0);
	if (N.udp < 0 || N.listen < 0 || bind(N.udp, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    setsockopt(N.listen, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(N.listen, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(N.listen, 16) < 0) {
		int e = errno;
		snprintf(msg, msglen, "DNS stub on 127.0.0.1:53: %s", strerror(e));
		if (N.udp >= 0)
			close(N.udp);
		if (N.listen >= 0)
			close(N.listen);
		N.udp = N.listen = -1;
		return e;
	}
	nb(N.udp);
	nb(N.listen);
	for (int i = 0; i < TCP_CLIENTS; i++)
		N.c[i].fd = -1;
	return 0;
}

static int write_resolv_conf(char *msg, size_t msglen)
{
	static const char text[] = "# written by silo-agent: DNS is answered by the host (docs/network.md)\n"
				   "nameserver 127.0.0.1\noptions timeout:2 attempts:2\n";
	mkdir("/etc", 0755);
	unlink("/etc/resolv.conf.silo");
	int fd = open("/etc/resolv.conf.silo", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, sizeof text - 1) != (ssize_t)(sizeof text - 1) || close(fd) < 0 ||
	    rename("/etc/resolv.conf.silo", "/etc/resolv.conf") < 0) {
		int e = errno;
		snprintf(msg, msglen, "/etc/resolv.conf: %s", strerror(e));
		return e;
	}
	return 0;
}

int anet_configure(const char *addr_gw, uint32_t mtu, bool configure_if, char *msg, size_t msglen)
{
	char a[40], g[40];
	int prefix;
	struct in_addr ia, ga;
	if (!addr_gw || sscanf(addr_gw, "%39[0-9.]/%d %39[0-9.]", a, &prefix, g) != 3 || prefix < 0 || prefix > 32 ||
	    inet_pton(AF_INET, a, &ia) != 1 || inet_pton(AF_INET, g, &ga) != 1 || mtu > 65535) {
		snprintf(msg, msglen, "net: expected \"ADDR/PREFIX GATEWAY\" and an MTU up to 65535");
		return EINVAL;
	}
	lo_up();
	int e = configure_if ? configure_eth0(ia.s_addr, prefix, ga.s_addr, mtu, msg, msglen)
			     : wait_eth0(ia.s_addr, msg, msglen);
	if (!e)
		e = dns_sockets(msg, msglen);
	if (!e)
		e = write_resolv_conf(msg, msglen);
	return e;
}

int anet_pollfds(struct pollfd *p)
{
	int n = 0;
	if (N.udp < 0)
		return 0;
	p[n++] = (struct pollfd){.fd = N.udp, .events = POLLIN};
	p[n++] = (struct pollfd){.fd = N.listen, .events = POLLIN};
	for (int i = 0; i < TCP_CLIENTS; i++)
		if (N.c[i].fd >= 0)
			p[n++] = (struct pollfd){.fd = N.c[i].fd, .events = POLLIN};
	return n;
}

static pending *new_pending(void)
{
	pending *q = &N.p[N.next_p];   /* a ring: the oldest unanswered query is forgotten */
	N.next_p = (N.next_p + 1) % PENDING;
	memset(q, 0, sizeof *q);
	q->used = true;
	q->tag = ++N.next_tag;
	return q;
}

static void close_client(int i)
{
	if (N.c[i].fd >= 0)
		close(N.c[i].fd);
	N.c[i].fd = -1;
	N.c[i].in_len = 0;
	N.c[i].gen++;
}

static void on_udp(anet_send_fn send)
{
	for (int k = 0; k < 16; k++) {
		uint8_t buf[WIRE_MAX_DNS + 1];
		struct sockaddr_in from;
		socklen_t fl = sizeof from;
		ssize_t n = recvfrom(N.udp, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
		if (n < 0)
			return;
		if (n < 12 || n > WIRE_MAX_DNS)
			continue;
		pending *q = new_pending();
		q->from = from;
		send(q->tag, buf, (size_t)n);
	}
}

static void on_accept(void)
{
	int fd = accept4(N.listen, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	for (int i = 0; i < TCP_CLIENTS; i++)
		if (N.c[i].fd < 0) {
			N.c[i].fd = fd;
			N.c[i].in_len = 0;
			return;
		}
	close(fd);   /* all slots busy */
}

static void on_client(int i, anet_send_fn send)
{
	tcp_client *c = &N.c[i];
	ssize_t n = read(c->fd, c->in + c->in_len, sizeof c->in - c->in_len);
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			close_client(i);
		return;
	}
	c->in_len += (size_t)n;
	while (c->in_len >= 2) {
		size_t len = (size_t)c->in[0] << 8 | c->in[1];
		if (len < 12 || len > WIRE_MAX_DNS) {
			close_client(i);
			return;
		}
		if (c->in_len < 2 + len)
			return;
		pending *q = new_pending();
		q->tcp = true;
		q->client = i;
		q->gen = c->gen;
		send(q->tag, c->in + 2, len);
		memmove(c->in, c->in + 2 + len, c->in_len - 2 - len);
		c->in_len -= 2 + len;
	}
}

void anet_handle(const struct pollfd *p, int n, anet_send_fn send)
{
	for (int k = 0; k < n; k++) {
		if (!p[k].revents)
			continue;
		if (p[k].fd == N.udp) {
			on_udp(send);
		} else if (p[k].fd == N.listen) {
			on_accept();
		} else {
			for (int i = 0; i < TCP_CLIENTS; i++)
				if (N.c[i].fd == p[k].fd)
					on_client(i, send);
		}
	}
}

void anet_reply(uint32_t tag, const uint8_t *d, size_t len)
{
	if (len < 12 || len > WIRE_MAX_DNS)
		return;
	for (int i = 0; i < PENDING; i++) {
		pending *q = &N.p[i];
		if (!q->used || q->tag != tag)
			continue;
		q->used = false;
		if (!q->tcp) {
			sendto(N.udp, d, len, MSG_DONTWAIT, (struct sockaddr *)&q->from, sizeof q->from);
		} else if (N.c[q->client].fd >= 0 && N.c[q->client].gen == q->gen) {
			uint8_t hdr[2] = {(uint8_t)(len >> 8), (uint8_t)len};
			struct iovec iov[2] = {{hdr, 2}, {(void *)d, len}};
			struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
			if (sendmsg(N.c[q->client].fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)(len + 2))
				close_client(q->client);   /* a client that does not read its answer */
		}
		return;
	}
}

int anet_tcp_connect(const char *addr, uint32_t port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (port < 1 || port > 65535 || inet_pton(AF_INET, addr ? addr : "127.0.0.1", &sa.sin_addr) != 1)
		return -EINVAL;
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	/* a blocking connect with a deadline: local servers answer at once */
	struct timeval tv = {.tv_sec = 2};
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno == EINPROGRESS ? ETIMEDOUT : errno;
		close(s);
		return -e;
	}
	nb(s);
	return s;
}
