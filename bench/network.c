/* SPDX-License-Identifier: Apache-2.0
 * Sandbox networking (docs/network.md, docs/benchmarks.md "Network"):
 *
 *   network [-n CONNECTS] [--size MB] [--runs R] [--providers namespace,qemu]
 *
 * Runs in a network namespace of its own (it re-executes itself under
 * `unshare -n`): a veth into nothing and a default route, so nothing leaves
 * the machine. A server on the namespace's 127.0.0.1 serves SIZE MiB (default
 * 256) over HTTP and echoes one byte for the connection test.
 *
 * 1. host: the probe (bench/net_probe, static) downloads SIZE MiB and makes
 *    CONNECTS connections (connect + one-byte echo) against 127.0.0.1;
 * 2. per provider: a sandbox with network = true and egress
 *    ["127.0.0.1/32:PORT"] (the host's loopback, reached through the gateway
 *    10.0.2.2); the probe is uploaded and does the same from inside;
 * 3. the policy check: the decision alone (netpol_check, 64 entries, 4096
 *    bindings), and a connect() under the stack's seccomp filter answered by
 *    the supervisor (stack_handle) against the same connect without it.
 * Throughput ratios are host / sandbox (higher = slower sandbox). One JSON
 * document on stdout (p50/p95/p99), a table on stderr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "common/util.h"
#include "core/sandbox.h"
#include "net/netpol.h"
#include "net/stack.h"
#include "stack_test.h"

static int big_fd;
static size_t big_len;
static int srv_fd;
static uint16_t srv_port;

static void *conn_main(void *arg)
{
	int c = (int)(intptr_t)arg;
	char req[1024];
	ssize_t n = read(c, req, sizeof req - 1);
	if (n > 0 && req[0] == 'G') {
		char hdr[160];
		int hl = snprintf(hdr, sizeof hdr, "HTTP/1.0 200 OK\r\nContent-Length: %zu\r\n\r\n", big_len);
		if (write_all(c, hdr, (size_t)hl) == 0) {
			off_t off = 0;
			while ((size_t)off < big_len)
				if (sendfile(c, big_fd, &off, big_len - (size_t)off) <= 0)
					break;
		}
	} else if (n > 0) {
		if (write_all(c, req, (size_t)n) < 0) {
			/* the probe went away */
		}
	}
	close(c);
	return NULL;
}

static void *server_main(void *arg)
{
	(void)arg;
	for (;;) {
		int c = accept4(srv_fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		pthread_t t;
		if (pthread_create(&t, NULL, conn_main, (void *)(intptr_t)c) == 0)
			pthread_detach(t);
		else
			close(c);
	}
	return NULL;
}

static void start_server(size_t mb)
{
	big_len = mb << 20;
	big_fd = memfd_create("big", MFD_CLOEXEC);
	if (big_fd < 0 || ftruncate(big_fd, (off_t)big_len) < 0)
		exit(1);
	srv_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t l = sizeof sa;
	if (bind(srv_fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(srv_fd, 256) < 0 ||
	    getsockname(srv_fd, (struct sockaddr *)&sa, &l) < 0)
		exit(1);
	srv_port = ntohs(sa.sin_port);
	pthread_t t;
	pthread_create(&t, NULL, server_main, NULL);
}

/* Run argv, capture stdout. */
static char *run_capture(char *const argv[])
{
	int p[2];
	if (pipe(p) < 0)
		return NULL;
	pid_t c = fork();
	if (c == 0) {
		dup2(p[1], 1);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	char *out = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (cap - len < 4096)
			out = xrealloc(out, cap = cap ? cap * 2 : 65536);
		ssize_t n = read(p[0], out + len, cap - len - 1);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(p[0]);
	waitpid(c, NULL, 0);
	if (out)
		out[len] = '\0';
	return out;
}

typedef struct samples {
	double *v;
	int n;
} samples;

typedef struct result {
	double mbps[8];
	int nruns;
	samples conn;   /* ms */
	bool ok;
	char why[300];
} result;

static void parse_connects(const char *s, samples *out)
{
	for (char *end; s && *s;) {
		double v = strtod(s, &end);
		if (end == s)
			break;
		if (v >= 0)
			bench_append(&out->v, &out->n, v / 1000.0);
		s = end;
	}
}

static void parse_get(const char *s, result *r, size_t mb)
{
	unsigned long long bytes = 0;
	double secs = 0;
	if (s && sscanf(s, "%llu %lf", &bytes, &secs) == 2 && secs > 0 && bytes >= (mb << 20))
		r->mbps[r->nruns++] = (double)bytes / (1 << 20) / secs;
}

/* ---- sandboxes ---- */

typedef struct capture {
	char buf[1 << 16];
	size_t len;
} capture;

static void cap_cb(void *ud, int stream, const void *b, size_t n)
{
	capture *c = ud;
	if (stream != 1)
		return;
	size_t k = MIN(n, sizeof c->buf - 1 - c->len);
	memcpy(c->buf + c->len, b, k);
	c->len += k;
	c->buf[c->len] = '\0';
}

static int sb_run(sandbox *sb, char *const argv[], capture *c)
{
	c->len = 0;
	c->buf[0] = '\0';
	exec_req rq = {.argv = argv, .uid = -1, .gid = -1};
	exec_result res;
	silo_error err;
	if (chan_exec(sb->ch, &rq, cap_cb, c, &res, &err) < 0 || res.exit_code)
		return -1;
	return 0;
}

static void bench_provider(const char *prov, const char *probe, size_t mb, int runs, int connects, result *r)
{
	vm_spec spec = {0};
	silo_error err;
	if (spec_default(prov, &spec, &err) < 0) {
		snprintf(r->why, sizeof r->why, "%s", err.message);
		return;
	}
	snprintf(spec.name, sizeof spec.name, "bench-net");
	spec.vcpus = 1;
	spec.memory_mb = 512;
	spec.network = true;
	spec.egress[spec.n_egress++] = xasprintf("127.0.0.1/32:%u", srv_port);
	sandbox *sb = NULL;
	sandbox_opts so = {0};
	if (sandbox_create(&spec, &so, &sb, &err) < 0) {
		snprintf(r->why, sizeof r->why, "%s", err.message);
		spec_free(&spec);
		return;
	}
	int fd = open(probe, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || chan_file_write_fd(sb->ch, "/tmp/net_probe", fd, 0755, &err) < 0) {
		snprintf(r->why, sizeof r->why, "upload: %s", fd < 0 ? strerror(errno) : err.message);
		goto out;
	}
	char port[16], path[32], n[16];
	snprintf(port, sizeof port, "%u", srv_port);
	snprintf(path, sizeof path, "/big");
	snprintf(n, sizeof n, "%d", connects);
	capture *c = xcalloc(1, sizeof *c);
	char *get[] = {"/tmp/net_probe", "get", "10.0.2.2", port, path, NULL};
	for (int i = 0; i < runs; i++) {
		if (sb_run(sb, get, c) < 0)
			break;
		parse_get(c->buf, r, mb);
	}
	char *con[] = {"/tmp/net_probe", "connect", "10.0.2.2", port, n, NULL};
	if (sb_run(sb, con, c) == 0)
		parse_connects(c->buf, &r->conn);
	free(c);
	r->ok = r->nruns > 0 && r->conn.n > 0;
	if (!r->ok)
		snprintf(r->why, sizeof r->why, "the probe failed inside the sandbox");
out:
	if (fd >= 0)
		close(fd);
	sandbox_destroy(sb, 0, NULL, &err);
	spec_free(&spec);
}

/* ---- the policy check ---- */

static double bench_netpol_ns(void)
{
	egress_rule rules[64];
	for (int i = 0; i < 64; i++) {
		char e[64];
		snprintf(e, sizeof e, "host%d.example.com:443", i);
		egress_parse(e, &rules[i], NULL, 0);
	}
	netpol *p = netpol_new(rules, 64, NULL, NULL, 0, 0x0a000202u);
	uint32_t host[] = {0x7f000001u};
	netpol_set_host_addrs(p, host, 1);
	for (uint32_t i = 0; i < NETPOL_MAX_BINDINGS; i++) {
		char name[64];
		snprintf(name, sizeof name, "host%u.example.com", i % 64);
		uint32_t a = 0x5db8d800u + i;   /* 93.184.216.0 + i */
		size_t n = 1;
		netpol_verdict v;
		bool fh;
		uint32_t tmp[8];
		size_t tn = 8;
		netpol_resolve_plan(p, name, &v, &fh, tmp, &tn);
		netpol_resolve_finish(p, name, false, &a, &n, &v);
	}
	const int iters = 200000;
	uint64_t t0 = now_mono_ns();
	int allowed = 0;
	for (int i = 0; i < iters; i++) {
		netpol_verdict v;
		netpol_check(p, 0x5db8d800u + (uint32_t)(i % NETPOL_MAX_BINDINGS), 443, &v);
		allowed += v.allow;
	}
	double ns = (double)(now_mono_ns() - t0) / iters;
	netpol_free(p);
	return allowed == iters ? ns : -1;
}

/* connects to the server by a child, under the filter (answered here) or not. */
static void bench_filter(const char *probe, int connects, bool filtered, samples *out)
{
	char port[16], n[16];
	snprintf(port, sizeof port, "%u", srv_port);
	snprintf(n, sizeof n, "%d", connects);
	char *argv[] = {(char *)probe, "connect", "127.0.0.1", port, n, NULL};
	if (!filtered) {
		char *s = run_capture(argv);
		parse_connects(s, out);
		free(s);
		return;
	}
	egress_rule r;
	char e[32];
	snprintf(e, sizeof e, "127.0.0.1/32:%u", srv_port);
	egress_parse(e, &r, NULL, 0);
	netpol *p = netpol_new(&r, 1, NULL, NULL, 0, 0x0a000202u);
	int pp[2];
	if (pipe(pp) < 0)
		return;
	pid_t pid;
	int nfd;
	char why[200];
	if (stack_spawn(argv, NULL, 0, pp[1], false, &pid, &nfd, why, sizeof why) < 0) {
		fprintf(stderr, "network: %s\n", why);
		close(pp[0]);
		close(pp[1]);
		netpol_free(p);
		return;
	}
	close(pp[1]);
	char *s = xcalloc(1, 1 << 20);
	stack_pump(nfd, pp[0], p, NULL, NULL, 10000, s, 1 << 20);
	waitpid(pid, NULL, 0);
	close(pp[0]);
	close(nfd);
	parse_connects(s, out);
	free(s);
	netpol_free(p);
}

static void series(const char *name, samples *s, bool *first)
{
	size_t k = (size_t)s->n;
	bench_sort(s->v, k);
	double p50 = bench_pct(s->v, k, 50, -1), p95 = bench_pct(s->v, k, 95, -1), p99 = bench_pct(s->v, k, 99, -1);
	fprintf(stderr, "%-34s n=%-5d p50 %9.3f  p95 %9.3f  p99 %9.3f ms\n", name, s->n, p50, p95, p99);
	printf("%s  \"%s\": {\"n\": %d, \"p50_ms\": %.4f, \"p95_ms\": %.4f, \"p99_ms\": %.4f}", *first ? "" : ",\n", name,
	       s->n, p50, p95, p99);
	*first = false;
}

static void throughput(const char *name, const result *r, double host_p50, bool *first)
{
	double v[8];
	memcpy(v, r->mbps, sizeof v);
	bench_sort(v, (size_t)r->nruns);
	double p50 = bench_pct(v, (size_t)r->nruns, 50, 0), mn = r->nruns ? v[0] : 0, mx = r->nruns ? v[r->nruns - 1] : 0;
	fprintf(stderr, "%-34s runs=%d  median %8.1f MiB/s (min %.1f, max %.1f)%s", name, r->nruns, p50, mn, mx,
		host_p50 > 0 && p50 > 0 ? "" : "\n");
	if (host_p50 > 0 && p50 > 0)
		fprintf(stderr, "  host/sandbox %.2fx\n", host_p50 / p50);
	printf("%s  \"%s\": {\"runs\": %d, \"p50_mib_s\": %.1f, \"min_mib_s\": %.1f, \"max_mib_s\": %.1f%s", *first ? "" : ",\n",
	       name, r->nruns, p50, mn, mx, host_p50 > 0 && p50 > 0 ? "" : "}");
	if (host_p50 > 0 && p50 > 0)
		printf(", \"host_over_sandbox\": %.2f}", host_p50 / p50);
	*first = false;
}

int main(int argc, char **argv)
{
	if (!getenv("SILO_BENCH_NETNS")) {
		/* nothing of this benchmark may leave the machine: a namespace of its own */
		setenv("SILO_BENCH_NETNS", "1", 1);
		char **av = xcalloc((size_t)argc + 3, sizeof *av);
		av[0] = "unshare";
		av[1] = "-n";
		for (int i = 0; i < argc; i++)
			av[i + 2] = argv[i];
		execvp("unshare", av);
		perror("unshare -n");
		return 1;
	}
	int connects = 200, runs = 3, size_mb = 256;
	const char *providers = "namespace,qemu";
	const bench_opt opts[] = {
		{"-n", BOPT_INT, &connects},  {"--size", BOPT_INT, &size_mb},        {"--runs", BOPT_INT, &runs},
		{"--providers", BOPT_STR, &providers}, {NULL, 0, NULL},
	};
	bench_opts(argc, argv, opts, "network [-n CONNECTS] [--size MB] [--runs R] [--providers LIST]");
	size_t mb = (size_t)size_mb;
	if (runs < 1 || runs > 8 || connects < 1 || size_mb < 1)
		return 2;
	if (system("ip link set lo up && ip link add bn0 type veth peer name bn1 && ip addr add 10.99.0.1/24 dev bn0 && "
		   "ip link set bn0 up && ip link set bn1 up && ip route add default via 10.99.0.2 dev bn0") != 0) {
		fprintf(stderr, "network: cannot set up the benchmark's network namespace (root needed)\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	start_server(mb);
	char probe[PATH_MAX];
	ssize_t sl = readlink("/proc/self/exe", probe, sizeof probe - 16);
	if (sl <= 0)
		return 1;
	probe[sl] = '\0';
	snprintf(strrchr(probe, '/') + 1, 16, "net_probe");
	char port[16], n[16];
	snprintf(port, sizeof port, "%u", srv_port);
	snprintf(n, sizeof n, "%d", connects);

	bool first = true;
	printf("{\n");
	/* host */
	result host = {0};
	for (int i = 0; i < runs; i++) {
		char *get[] = {probe, "get", "127.0.0.1", port, "/big", NULL};
		char *s = run_capture(get);
		parse_get(s, &host, mb);
		free(s);
	}
	char *con[] = {probe, "connect", "127.0.0.1", port, n, NULL};
	char *s = run_capture(con);
	parse_connects(s, &host.conn);
	free(s);
	double v[8];
	memcpy(v, host.mbps, sizeof v);
	bench_sort(v, (size_t)host.nruns);
	double host_p50 = bench_pct(v, (size_t)host.nruns, 50, 0);
	throughput("host_download", &host, 0, &first);
	series("host_connect", &host.conn, &first);
	/* providers */
	char list[256];
	snprintf(list, sizeof list, "%s", providers);
	for (char *save = NULL, *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		result r = {0};
		bench_provider(p, probe, mb, runs, connects, &r);
		char name[64];
		if (!r.ok) {
			fprintf(stderr, "%-34s skipped: %s\n", p, r.why);
			printf("%s  \"%s\": {\"skipped\": \"%s\"}", first ? "" : ",\n", p, "see stderr");
			first = false;
			continue;
		}
		snprintf(name, sizeof name, "%s_download", p);
		throughput(name, &r, host_p50, &first);
		snprintf(name, sizeof name, "%s_connect", p);
		series(name, &r.conn, &first);
		free(r.conn.v);
	}
	/* the policy check */
	double ns = bench_netpol_ns();
	fprintf(stderr, "%-34s %.0f ns per decision (64 entries, 4096 bindings)\n", "netpol_check", ns);
	printf(",\n  \"netpol_check_ns\": %.0f", ns);
	samples plain = {0}, filt = {0};
	bench_filter(probe, connects, false, &plain);
	bench_filter(probe, connects, true, &filt);
	series("loopback_connect_unfiltered", &plain, &first);
	series("loopback_connect_filtered", &filt, &first);
	double added = bench_pct(filt.v, (size_t)filt.n, 50, 0) - bench_pct(plain.v, (size_t)plain.n, 50, 0);
	fprintf(stderr, "%-34s %.3f ms at p50\n", "added_by_the_egress_check", added);
	printf(",\n  \"egress_check_added_p50_ms\": %.4f\n}\n", added);
	free(plain.v);
	free(filt.v);
	free(host.conn.v);
	return 0;
}
