/* SPDX-License-Identifier: Apache-2.0
 * silo-net: the network supervisor of one sandbox (docs/network.md).
 *
 * Started by the sandbox's owner (lib/net/net.c) in its own session, so it
 * outlives a silod restart like the sandbox does. It
 *   - runs the host-side stack (passt for a VM's virtio-net, pasta for a
 *     namespace sandbox's network namespace) under the egress filter
 *     (lib/net/stack.c) and answers every connect() it makes (main thread);
 *   - answers the guest's DNS queries the owner forwards (two resolver
 *     threads: the host's resolver may block), recording name -> address
 *     bindings in the decision engine (lib/net/netpol.c);
 *   - reports every denial to the owner as a JSON record, rate-limited
 *     (50/s, bursts of 200; the next record says how many were suppressed),
 *     queued while no owner is connected (the newest 256 are kept);
 *   - exits, killing the stack, on SIGTERM, when the stack exits, or when the
 *     watched process (the VMM or the namespace init) exits.
 *
 * Threads: main (poll loop: notifications, control socket, signals, stack
 * output), two resolvers. q_lock guards the query queue; out_lock the
 * outgoing frames (written by main only, nonblocking: a stuck owner never
 * stalls the stack's connects).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/sigset.h"
#include "common/util.h"
#include "net/ctl.h"
#include "net/dns.h"
#include "net/egress.h"
#include "net/hosts.h"
#include "net/net.h"
#include "net/netpol.h"
#include "net/stack.h"

#define QUEUE_MAX 64          /* DNS queries waiting for a resolver */
#define OUT_MAX 512           /* frames waiting for the owner */
#define KEEP_DENIALS 256      /* denial records kept while no owner listens */
#define RATE_PER_S 50
#define RATE_BURST 200
#define DNS_TTL 60

typedef struct query {
	uint32_t tag;
	size_t len;
	uint8_t msg[DNS_MAX_MSG];
} query;

typedef struct frame {
	struct frame *next;
	char type;
	size_t len;        /* payload bytes */
	size_t off;        /* bytes of the encoded frame already written */
	uint8_t data[];    /* encoded: len(4) type(1) payload */
} frame;

static struct {
	const char *id;
	netpol *pol;
	int log_fd;
	size_t log_bytes;
	/* DNS queue */
	pthread_mutex_t q_lock;
	pthread_cond_t q_cond;
	query *q[QUEUE_MAX];
	size_t qn;
	bool stop;
	/* outgoing */
	pthread_mutex_t out_lock;
	frame *out_head, *out_tail;
	size_t out_n, out_denials;
	int wake_fd;       /* eventfd: a resolver queued a frame */
	int client;        /* owner connection, -1 none */
	/* rate limit of denial records */
	double tokens;
	uint64_t tok_ns;
	uint64_t suppressed;
	uint64_t denials;
} S = {.log_fd = 2, .client = -1};

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof buf - 2)
		n = (int)sizeof buf - 2;
	buf[n++] = '\n';
	if (S.log_bytes + (size_t)n > CTL_LOG_MAX)
		return;
	S.log_bytes += (size_t)n;
	if (write(S.log_fd, buf, (size_t)n) < 0) {
		/* the log is best effort */
	}
}

/* ---- outgoing frames ---- */

static frame *frame_new(char type, const void *a, size_t alen, const void *b, size_t blen)
{
	size_t len = alen + blen;
	frame *f = xmalloc(sizeof *f + 5 + len);
	f->next = NULL;
	f->type = type;
	f->len = len;
	f->off = 0;
	uint32_t l = (uint32_t)(len + 1);
	f->data[0] = (uint8_t)(l >> 24);
	f->data[1] = (uint8_t)(l >> 16);
	f->data[2] = (uint8_t)(l >> 8);
	f->data[3] = (uint8_t)l;
	f->data[4] = (uint8_t)type;
	if (alen)
		memcpy(f->data + 5, a, alen);
	if (blen)
		memcpy(f->data + 5 + alen, b, blen);
	return f;
}

/* Queue a frame; when the queue is full the oldest denial record goes
 * (DNS answers are never dropped for records). out_lock taken here. */
static void queue_frame(frame *f)
{
	pthread_mutex_lock(&S.out_lock);
	if (S.out_n >= OUT_MAX || (f->type == 'D' && S.client < 0 && S.out_denials >= KEEP_DENIALS)) {
		/* drop the oldest unstarted denial record */
		frame **pp = &S.out_head, *prev = NULL;
		while (*pp && ((*pp)->type != 'D' || (*pp)->off)) {
			prev = *pp;
			pp = &(*pp)->next;
		}
		if (*pp) {
			frame *d = *pp;
			*pp = d->next;
			if (S.out_tail == d)
				S.out_tail = prev;
			free(d);
			S.out_n--;
			S.out_denials--;
			S.suppressed++;
		} else if (f->type == 'D') {
			free(f);
			S.suppressed++;
			pthread_mutex_unlock(&S.out_lock);
			return;
		}
	}
	if (S.out_tail)
		S.out_tail->next = f;
	else
		S.out_head = f;
	S.out_tail = f;
	S.out_n++;
	if (f->type == 'D')
		S.out_denials++;
	pthread_mutex_unlock(&S.out_lock);
	uint64_t one = 1;
	if (write(S.wake_fd, &one, sizeof one) < 0) {
		/* the counter saturates: main is awake anyway */
	}
}

/* Write what the owner's socket takes. Main thread only. */
static void flush_out(void)
{
	pthread_mutex_lock(&S.out_lock);
	while (S.client >= 0 && S.out_head) {
		frame *f = S.out_head;
		size_t total = 5 + f->len;
		ssize_t n = send(S.client, f->data + f->off, total - f->off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR) {
				close(S.client);
				S.client = -1;
				f->off = 0;   /* resend whole to the next owner */
			}
			break;
		}
		f->off += (size_t)n;
		if (f->off < total)
			break;
		S.out_head = f->next;
		if (!S.out_head)
			S.out_tail = NULL;
		S.out_n--;
		if (f->type == 'D')
			S.out_denials--;
		free(f);
	}
	pthread_mutex_unlock(&S.out_lock);
}

static bool out_pending(void)
{
	pthread_mutex_lock(&S.out_lock);
	bool p = S.out_head != NULL;
	pthread_mutex_unlock(&S.out_lock);
	return p;
}

/* ---- denial records ---- */

static bool rate_ok(void)
{
	uint64_t now = now_mono_ns();
	S.tokens += (double)(now - S.tok_ns) / 1e9 * RATE_PER_S;
	if (S.tokens > RATE_BURST)
		S.tokens = RATE_BURST;
	S.tok_ns = now;
	if (S.tokens < 1) {
		S.suppressed++;
		return false;
	}
	S.tokens -= 1;
	return true;
}

/* kind "connect" or "dns"; dest "1.2.3.4:80" or a name. Any thread. */
static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static void denial(const char *kind, const char *dest, const netpol_verdict *v)
{
	pthread_mutex_lock(&rec_lock);
	S.denials++;
	if (!rate_ok()) {
		pthread_mutex_unlock(&rec_lock);
		return;
	}
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "kind", kind, "destination", dest, "rule",
			      v->rule_text[0] ? v->rule_text : "", "reason", v->reason, "suppressed",
			      (json_int_t)S.suppressed, "ts_ms", (json_int_t)now_realtime_ms());
	S.suppressed = 0;
	pthread_mutex_unlock(&rec_lock);
	if (!o)
		return;
	char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(o);
	if (!s)
		return;
	logf_("denied %s %s: %s", kind, dest, v->reason);
	queue_frame(frame_new('D', s, strlen(s), NULL, 0));
	free(s);
}

static bool debug_connects;   /* SILO_NET_DEBUG=1: every connect in net.log */

static void on_connect_decided(void *ud, uint32_t addr, uint16_t port, const netpol_verdict *v, int result)
{
	(void)ud;
	struct in_addr in = {.s_addr = htonl(addr)};
	char ip[INET_ADDRSTRLEN], dest[64];
	inet_ntop(AF_INET, &in, ip, sizeof ip);
	snprintf(dest, sizeof dest, "%s:%u", ip, port);
	if (debug_connects)
		logf_("connect %s: %s, %s", dest, v->allow ? "allowed" : "denied", result ? strerror(result) : "connected");
	if (!v->allow)
		denial("connect", dest, v);
}

/* ---- DNS (resolver threads) ---- */

/* The host's resolver: IPv4 addresses of name (at most cap). */
static size_t host_resolve(const char *name, uint32_t *addrs, size_t cap)
{
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	if (getaddrinfo(name, NULL, &hints, &res) != 0)
		return 0;
	size_t n = 0;
	for (struct addrinfo *a = res; a && n < cap; a = a->ai_next) {
		if (a->ai_family != AF_INET)
			continue;
		uint32_t v = ntohl(((struct sockaddr_in *)a->ai_addr)->sin_addr.s_addr);
		bool dup = false;
		for (size_t i = 0; i < n; i++)
			dup |= addrs[i] == v;
		if (!dup)
			addrs[n++] = v;
	}
	freeaddrinfo(res);
	return n;
}

static void answer(const query *q)
{
	dns_query dq;
	char why[160];
	int rc = dns_parse_query(q->msg, q->len, &dq, why, sizeof why);
	if (rc < 0)
		return;   /* not answerable (too short, a response): dropped */
	uint32_t addrs[DNS_MAX_ANSWERS];
	size_t n = 0;
	char name[EGRESS_NAME_MAX + 1];
	if (rc == DNS_NOERROR && dq.qclass != DNS_CLASS_IN)
		rc = DNS_NOTIMP;
	if (rc == DNS_NOERROR) {
		netpol_verdict v;
		if (!egress_normalize_name(dq.name, name, sizeof name)) {
			memset(&v, 0, sizeof v);
			v.rule = -1;
			snprintf(v.reason, sizeof v.reason, "not a valid host name");
			rc = DNS_NXDOMAIN;
			/* the name may hold any byte: record a printable form */
			char shown[80];
			size_t o = 0;
			for (size_t i = 0; dq.name[i] && o + 1 < sizeof shown; i++)
				shown[o++] = (dq.name[i] > 32 && dq.name[i] < 127) ? dq.name[i] : '?';
			shown[o] = '\0';
			denial("dns", shown, &v);
		} else {
			bool from_hosts = false;
			n = DNS_MAX_ANSWERS;
			netpol_resolve_plan(S.pol, name, &v, &from_hosts, addrs, &n);
			if (v.allow) {
				if (!from_hosts)
					n = host_resolve(name, addrs, DNS_MAX_ANSWERS);
				netpol_resolve_finish(S.pol, name, from_hosts, addrs, &n, &v);
			}
			if (!v.allow) {
				rc = DNS_NXDOMAIN;
				n = 0;
				denial("dns", name, &v);
			} else if (dq.qtype != DNS_TYPE_A) {
				n = 0;   /* allowed name, no such record here (AAAA: IPv4 only): NODATA */
			}
		}
	}
	uint8_t out[DNS_UDP_MAX];
	size_t len = dns_build_response(q->msg, q->len, &dq, rc, addrs, n, DNS_TTL, out, sizeof out);
	if (!len)
		len = dns_build_response(q->msg, q->len, &dq, DNS_SERVFAIL, NULL, 0, 0, out, sizeof out);
	if (!len)
		return;
	uint8_t tag[4] = {(uint8_t)(q->tag >> 24), (uint8_t)(q->tag >> 16), (uint8_t)(q->tag >> 8), (uint8_t)q->tag};
	queue_frame(frame_new('R', tag, 4, out, len));
}

static void *resolver_main(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&S.q_lock);
		while (!S.qn && !S.stop)
			pthread_cond_wait(&S.q_cond, &S.q_lock);
		if (S.stop) {
			pthread_mutex_unlock(&S.q_lock);
			return NULL;
		}
		query *q = S.q[0];
		memmove(S.q, S.q + 1, --S.qn * sizeof *S.q);
		pthread_mutex_unlock(&S.q_lock);
		answer(q);
		free(q);
	}
}

/* A query from the owner: queue it, or answer SERVFAIL at once when full. */
static void submit(uint32_t tag, const uint8_t *msg, size_t len)
{
	if (len > DNS_MAX_MSG)
		return;
	query *q = xmalloc(sizeof *q);
	q->tag = tag;
	q->len = len;
	memcpy(q->msg, msg, len);
	pthread_mutex_lock(&S.q_lock);
	if (S.qn < QUEUE_MAX) {
		S.q[S.qn++] = q;
		pthread_cond_signal(&S.q_cond);
		pthread_mutex_unlock(&S.q_lock);
		return;
	}
	pthread_mutex_unlock(&S.q_lock);
	dns_query dq;
	uint8_t out[DNS_UDP_MAX];
	if (dns_parse_query(msg, len, &dq, NULL, 0) >= 0) {
		size_t l = dns_build_response(msg, len, &dq, DNS_SERVFAIL, NULL, 0, 0, out, sizeof out);
		uint8_t t[4] = {(uint8_t)(tag >> 24), (uint8_t)(tag >> 16), (uint8_t)(tag >> 8), (uint8_t)tag};
		if (l)
			queue_frame(frame_new('R', t, 4, out, l));
	}
	free(q);
}

/* ---- control socket ---- */

typedef struct rbuf {
	uint8_t b[CTL_MAX_FRAME + 4];
	size_t n;
} rbuf;

static int watch_fd = -1;

/* Handle complete frames from the owner. false: drop the connection. */
static bool client_input(rbuf *r)
{
	for (;;) {
		if (r->n < 4)
			return true;
		uint32_t len = (uint32_t)r->b[0] << 24 | (uint32_t)r->b[1] << 16 | (uint32_t)r->b[2] << 8 | r->b[3];
		if (len < 1 || len > CTL_MAX_FRAME)
			return false;
		if (r->n < 4 + (size_t)len)
			return true;
		uint8_t type = r->b[4];
		const uint8_t *p = r->b + 5;
		size_t plen = len - 1;
		if (type == 'Q' && plen >= 4) {
			submit((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3], p + 4, plen - 4);
		} else if (type == 'W' && plen == 4 && watch_fd < 0) {
			pid_t pid = (pid_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
			watch_fd = (int)syscall(SYS_pidfd_open, pid, 0);
			if (watch_fd < 0)
				logf_("watch %d: %s", (int)pid, strerror(errno));
		} else {
			return false;
		}
		memmove(r->b, r->b + 4 + len, r->n - 4 - len);
		r->n -= 4 + len;
	}
}

static int listen_ctl(const char *rundir)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if ((size_t)snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s", rundir, CTL_SOCK) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	unlink(sa.sun_path);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return -1;
	mode_t old = umask(077);
	int rc = bind(s, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (rc < 0 || listen(s, 4) < 0) {
		close(s);
		return -1;
	}
	return s;
}

/* ---- main ---- */

static void usage(void)
{
	fprintf(stderr,
		"usage: silo-net --id ID --rundir DIR --status-fd N --stack PATH (--vm-fd N | --netns-fd N)\n"
		"                [--egress ENTRY]... [--hosts-fd N] [--never ADDR:PORT]... [--watch-pid PID]\n"
		"The network supervisor of one sandbox (docs/network.md); started by silod or silo run.\n");
}

static bool parse_never(const char *s, netpol_never *out)
{
	const char *colon = strrchr(s, ':');
	if (!colon)
		return false;
	char ip[64];
	size_t n = (size_t)(colon - s);
	if (n >= sizeof ip)
		return false;
	memcpy(ip, s, n);
	ip[n] = '\0';
	struct in_addr a;
	if (inet_pton(AF_INET, ip, &a) != 1)
		return false;
	long port = strtol(colon + 1, NULL, 10);
	if (port < 1 || port > 65535)
		return false;
	out->addr = ntohl(a.s_addr);
	out->port = (uint16_t)port;
	return true;
}

static void status(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void status(int fd, const char *fmt, ...)
{
	if (fd < 0)
		return;
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n > 0 && write(fd, buf, (size_t)MIN((size_t)n, sizeof buf - 1)) < 0) {
		/* the owner is gone; it will find out */
	}
	close(fd);
}

static int int_arg(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);
	return *s && !*end && v >= 0 && v < 1 << 20 ? (int)v : -1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"id", required_argument, 0, 'i'},      {"rundir", required_argument, 0, 'r'},
		{"status-fd", required_argument, 0, 's'}, {"stack", required_argument, 0, 'S'},
		{"vm-fd", required_argument, 0, 'v'},   {"netns-fd", required_argument, 0, 'n'},
		{"egress", required_argument, 0, 'e'},  {"hosts-fd", required_argument, 0, 'H'},
		{"never", required_argument, 0, 'N'},   {"watch-pid", required_argument, 0, 'w'},
		{"mtu", required_argument, 0, 'm'},
		{"help", no_argument, 0, 'h'},          {0, 0, 0, 0},
	};
	const char *rundir = NULL, *stack = NULL;
	int status_fd = -1, vm_fd = -1, netns_fd = -1, hosts_fd = -1;
	pid_t watch_pid = 0;
	int mtu_arg = 1500;
	egress_rule rules[64];
	size_t n_rules = 0;
	netpol_never never[16];
	size_t n_never = 0;
	int c;
	char why[512];
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'i': S.id = optarg; break;
		case 'r': rundir = optarg; break;
		case 's': status_fd = int_arg(optarg); break;
		case 'S': stack = optarg; break;
		case 'v': vm_fd = int_arg(optarg); break;
		case 'n': netns_fd = int_arg(optarg); break;
		case 'H': hosts_fd = int_arg(optarg); break;
		case 'w': watch_pid = int_arg(optarg); break;
		case 'm':
			mtu_arg = int_arg(optarg);
			if (mtu_arg < 576 || mtu_arg > 65520) {
				status(status_fd, "error: --mtu: expected 576-65520");
				return 2;
			}
			break;
		case 'e':
			if (n_rules == 64 || !egress_parse(optarg, &rules[n_rules], why, sizeof why)) {
				status(status_fd, "error: --egress \"%.200s\": %s", optarg, n_rules == 64 ? "too many" : why);
				return 2;
			}
			n_rules++;
			break;
		case 'N':
			if (n_never == 16 || !parse_never(optarg, &never[n_never])) {
				status(status_fd, "error: --never \"%.200s\": expected ADDR:PORT", optarg);
				return 2;
			}
			n_never++;
			break;
		case 'h': usage(); return 0;
		default: usage(); return 2;
		}
	}
	if (!S.id || !rundir || !stack || (vm_fd < 0) == (netns_fd < 0)) {
		usage();
		status(status_fd, "error: bad arguments");
		return 2;
	}
	prctl(PR_SET_NAME, "silo-net");
	debug_connects = getenv("SILO_NET_DEBUG") && !strcmp(getenv("SILO_NET_DEBUG"), "1");
	/* our log (and the stack's output) */
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", rundir, CTL_LOG);
	int lfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (lfd >= 0)
		S.log_fd = lfd;
	hosts_map hosts = {0};
	if (hosts_fd >= 0) {
		char hp[64];
		snprintf(hp, sizeof hp, "/proc/self/fd/%d", hosts_fd);
		if (!hosts_load(hp, &hosts, why, sizeof why)) {
			status(status_fd, "error: egress hosts file: %s", why);
			return 2;
		}
		close(hosts_fd);
	}
	S.pol = netpol_new(rules, n_rules, &hosts, never, n_never, NET_GATEWAY_ADDR);
	pthread_mutex_init(&S.q_lock, NULL);
	pthread_cond_init(&S.q_cond, NULL);
	pthread_mutex_init(&S.out_lock, NULL);
	S.tokens = RATE_BURST;
	S.tok_ns = now_mono_ns();
	S.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	/* signals before any thread exists */
	sigset_t mask = sigset_of(SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGPIPE, 0);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

	int ctl = listen_ctl(rundir);
	/* the refuser: denied connections are connected here and reset at once */
	struct sockaddr_in refuse_sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t rl = sizeof refuse_sa;
	int refuser = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (refuser < 0 || bind(refuser, (struct sockaddr *)&refuse_sa, sizeof refuse_sa) < 0 ||
	    listen(refuser, 128) < 0 || getsockname(refuser, (struct sockaddr *)&refuse_sa, &rl) < 0) {
		status(status_fd, "error: refuser socket: %s", strerror(errno));
		return 1;
	}
	if (ctl < 0 || sfd < 0 || S.wake_fd < 0) {
		status(status_fd, "error: control socket in %s: %s", rundir, strerror(errno));
		return 1;
	}
	/* the stack */
	char prefix[8], mtu[8];
	snprintf(prefix, sizeof prefix, "%d", NET_GUEST_PREFIX);
	int out_pipe[2];
	if (pipe2(out_pipe, O_CLOEXEC) < 0) {
		status(status_fd, "error: pipe: %s", strerror(errno));
		return 1;
	}
	int fds[1];
	pid_t stack_pid = -1;
	int nfd = -1;
	/* SILO_NET_PCAP=FILE (operator's debugging aid): the stack records the
	 * guest's frames there (passt/pasta --pcap) */
	const char *pcap = getenv("SILO_NET_PCAP");
	if (vm_fd >= 0) {
		snprintf(mtu, sizeof mtu, "%d", mtu_arg);
		char *av[] = {(char *)stack, "-f", "-q", "-e", "-4", "--fd", "3", "-a", NET_GUEST_ADDR, "-n", prefix, "-g",
			      NET_GATEWAY, "-m", mtu, "-t", "none", "-u", "none", "--no-udp", "--no-icmp", "--no-dhcp",
			      "--no-ndp", "--no-dhcpv6", "--no-ra", pcap ? "--pcap" : NULL, (char *)pcap, NULL};
		fds[0] = vm_fd;
		if (stack_spawn(av, fds, 1, out_pipe[1], vm_fd < 0, &stack_pid, &nfd, why, sizeof why) < 0) {
			status(status_fd, "error: %s", why);
			return 1;
		}
		close(vm_fd);
	} else {
		char *av[] = {(char *)stack, "--runas", "0:0", "-f", "-q", "-e", "-4", "--config-net", "-I", "eth0", "-a",
			      NET_GUEST_ADDR, "-n", prefix, "-g", NET_GATEWAY, "-t", "none", "-u", "none", "-T", "none",
			      "-U", "none", "--no-udp", "--no-icmp", "--no-dhcp", "--no-ndp", "--no-dhcpv6", "--no-ra",
			      "--netns", "/proc/self/fd/3", pcap ? "--pcap" : NULL, (char *)pcap, NULL};
		fds[0] = netns_fd;
		if (stack_spawn(av, fds, 1, out_pipe[1], vm_fd < 0, &stack_pid, &nfd, why, sizeof why) < 0) {
			status(status_fd, "error: %s", why);
			return 1;
		}
		close(netns_fd);
	}
	close(out_pipe[1]);
	set_nonblock(out_pipe[0], true);
	set_nonblock(nfd, true);
	/* pid file: ours and the stack's, with start times (pid reuse) */
	snprintf(path, sizeof path, "%s/%s", rundir, CTL_PIDFILE);
	char pidline[128];
	int pl = snprintf(pidline, sizeof pidline, "%d %llu %d %llu\n", (int)getpid(),
			  net_proc_start(getpid()), (int)stack_pid,
			  net_proc_start(stack_pid));
	if (write_file_atomic(path, pidline, (size_t)pl, 0600, NULL) < 0)
		logf_("write %s: %s", path, strerror(errno));
	if (watch_pid > 0)
		watch_fd = (int)syscall(SYS_pidfd_open, watch_pid, 0);
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, resolver_main, NULL);
	status(status_fd, "ok %d\n", (int)stack_pid);
	logf_("silo-net %s: stack %s pid %d, %zu egress entries", S.id, stack, (int)stack_pid, n_rules);

	rbuf *rb = xcalloc(1, sizeof *rb);
	const char *why_exit = "?";
	int stack_status = -1;
	for (;;) {
		struct pollfd p[8];
		int np = 0;
		p[np++] = (struct pollfd){.fd = nfd, .events = POLLIN};
		p[np++] = (struct pollfd){.fd = sfd, .events = POLLIN};
		p[np++] = (struct pollfd){.fd = ctl, .events = POLLIN};
		p[np++] = (struct pollfd){.fd = S.wake_fd, .events = POLLIN};
		p[np++] = (struct pollfd){.fd = out_pipe[0], .events = POLLIN};
		p[np++] = (struct pollfd){.fd = refuser, .events = POLLIN};
		int ci = -1, wi = -1;
		if (S.client >= 0) {
			ci = np;
			p[np++] = (struct pollfd){.fd = S.client, .events = POLLIN | (out_pending() ? POLLOUT : 0)};
		}
		if (watch_fd >= 0) {
			wi = np;
			p[np++] = (struct pollfd){.fd = watch_fd, .events = POLLIN};
		}
		if (poll(p, (nfds_t)np, -1) < 0) {
			if (errno == EINTR)
				continue;
			why_exit = "poll failed";
			break;
		}
		if (p[0].revents & POLLIN) {
			if (stack_handle(nfd, S.pol, &refuse_sa, on_connect_decided, NULL) < 0 && errno != EAGAIN) {
				why_exit = "seccomp listener failed";
				break;
			}
		}
		if (p[0].revents & (POLLHUP | POLLERR)) {
			/* every filtered task is gone: the stack exited */
		}
		if (p[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			bool quit = false;
			while (read(sfd, &si, sizeof si) == sizeof si) {
				if (si.ssi_signo == SIGCHLD) {
					int st;
					pid_t w;
					while ((w = waitpid(-1, &st, WNOHANG)) > 0)
						if (w == stack_pid) {
							stack_status = st;
							stack_pid = -1;
						}
				} else if (si.ssi_signo != SIGPIPE) {
					quit = true;
					why_exit = "terminated";
				}
			}
			if (quit)
				break;
			if (stack_pid < 0) {
				why_exit = "the stack exited";
				break;
			}
		}
		if (p[2].revents & POLLIN) {
			int cfd = accept4(ctl, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
			if (cfd >= 0) {
				pthread_mutex_lock(&S.out_lock);
				if (S.client >= 0)
					close(S.client);   /* a new owner (silod restarted) */
				S.client = cfd;
				for (frame *f = S.out_head; f; f = f->next)
					f->off = 0;
				pthread_mutex_unlock(&S.out_lock);
				rb->n = 0;
				ci = -1;   /* polled next round */
			}
		}
		if (p[3].revents & POLLIN) {
			uint64_t v;
			if (read(S.wake_fd, &v, sizeof v) < 0) {
				/* nothing */
			}
		}
		if (p[4].revents & (POLLIN | POLLHUP)) {
			char buf[2048];
			ssize_t n = read(out_pipe[0], buf, sizeof buf);
			if (n > 0 && S.log_bytes + (size_t)n <= CTL_LOG_MAX) {
				S.log_bytes += (size_t)n;
				if (write(S.log_fd, buf, (size_t)n) < 0) {
					/* best effort */
				}
			}
		}
		if (p[5].revents & POLLIN) {
			/* reset every connection the stack was sent here for */
			int r;
			while ((r = accept4(refuser, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
				struct linger lg = {.l_onoff = 1, .l_linger = 0};
				setsockopt(r, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
				close(r);
			}
		}
		if (ci >= 0 && S.client >= 0 && (p[ci].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t n = recv(S.client, rb->b + rb->n, sizeof rb->b - rb->n, 0);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) || (n > 0 && (rb->n += (size_t)n, !client_input(rb)))) {
				pthread_mutex_lock(&S.out_lock);
				close(S.client);
				S.client = -1;
				for (frame *f = S.out_head; f; f = f->next)
					f->off = 0;
				pthread_mutex_unlock(&S.out_lock);
			}
		}
		if (wi >= 0 && (p[wi].revents & POLLIN)) {
			why_exit = "the sandbox exited";
			break;
		}
		flush_out();
	}
	logf_("silo-net %s: exiting (%s), %llu denials", S.id, why_exit, (unsigned long long)S.denials);
	if (stack_pid > 0) {
		kill(stack_pid, SIGKILL);
		waitpid(stack_pid, &stack_status, 0);
	}
	if (stack_status >= 0 && WIFEXITED(stack_status) && WEXITSTATUS(stack_status))
		logf_("the stack exited with status %d", WEXITSTATUS(stack_status));
	pthread_mutex_lock(&S.q_lock);
	S.stop = true;
	pthread_cond_broadcast(&S.q_cond);
	pthread_mutex_unlock(&S.q_lock);
	/* resolvers may sit in getaddrinfo: do not wait for them */
	flush_out();
	snprintf(path, sizeof path, "%s/%s", rundir, CTL_SOCK);
	unlink(path);
	return 0;
}
