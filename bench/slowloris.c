/* SPDX-License-Identifier: Apache-2.0
 * Slowloris against silod's TCP listener (issue 21; docs/benchmarks.md,
 * docs/security.md). A real silod is started here (temp state dir, TCP on a
 * free loopback port, a bearer token). Then:
 *
 *   1. peer, same run: the clients alone do create -> exec -> delete cycles
 *      (namespace provider) over TCP with the token, a fresh connection per
 *      request;
 *   2. attack: --slow connections from --addrs loopback addresses
 *      (127.1.x.y; clients use 127.0.0.1) each send a request line and then
 *      trickle header bytes, one every --trickle-ms, never finishing the
 *      head; a connection the server drops is reopened after --reconnect-ms,
 *      so the pressure stays on. While it runs, the same clients do --cycles
 *      cycles each, and a prober asks GET /v1/health on the unix socket.
 *
 * Prints JSON: client cycle and per-call latency p50/p95/p99 and errors for
 * both phases, unix-socket latency, what the attacker managed (connections
 * opened, open at most, dropped by the server and after how long) and the
 * server's own counters (GET /v1/health "tcp_connections"). Exits 1 if any
 * client request failed, in either phase.
 *
 *   slowloris [--slow 1000] [--clients 10] [--cycles 20] [--baseline-cycles 5]
 *             [--addrs 50] [--trickle-ms 1000] [--reconnect-ms 200]
 *             [--silod PATH] [--listen-port P] [--provider namespace]
 *             [--silod-arg ARG]...
 *
 * --listen-port P makes silod listen on that port instead of a free one
 * (for a silod that cannot report the port it bound).
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_curl.h"
#include "bench_util.h"
#include "common/util.h"

enum { OP_CREATE, OP_EXEC, OP_DELETE, OP_CYCLE, OP__N };
static const char *const op_names[OP__N] = {"create", "exec", "delete", "cycle"};

typedef struct samples {
	pthread_mutex_t lock;
	double *v[OP__N];
	int n[OP__N];
	unsigned errors;
	char first_error[512];
} samples;

static char base_url[128], sock_path[4096], auth_header[128];
static const char *provider = "namespace";

/* One request on a fresh connection (TCP with the token, or the unix socket).
 * Returns the HTTP status, 0 on a transport failure (message in cerr). */
static long request(CURL *h, bool unix_sock, const char *method, const char *path, const char *body, resp *r,
		    char *cerr)
{
	char url[1024];
	snprintf(url, sizeof url, "%s%s", unix_sock ? "http://silod" : base_url, path);
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	if (unix_sock)
		curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, sock_path);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 20L);
	curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	cerr[0] = '\0';
	struct curl_slist *hd = curl_slist_append(NULL, "Expect:");
	hd = curl_slist_append(hd, auth_header);
	if (body) {
		hd = curl_slist_append(hd, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	long status = 0;
	CURLcode cc = curl_easy_perform(h);
	if (cc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	else if (!cerr[0])
		snprintf(cerr, CURL_ERROR_SIZE, "%s", curl_easy_strerror(cc));
	curl_slist_free_all(hd);
	return status;
}

static void record(samples *s, int op, double ms)
{
	pthread_mutex_lock(&s->lock);
	bench_append(&s->v[op], &s->n[op], ms);
	pthread_mutex_unlock(&s->lock);
}

static void record_error(samples *s, const char *op, long status, const char *cerr, const char *body)
{
	pthread_mutex_lock(&s->lock);
	s->errors++;
	if (!s->first_error[0])
		snprintf(s->first_error, sizeof s->first_error, "%s: HTTP %ld %s%.300s", op, status, cerr,
			 body ? body : "");
	pthread_mutex_unlock(&s->lock);
}

/* One call of a cycle; false (recorded) unless the status is `want`. */
static bool call(CURL *h, samples *s, int op, const char *method, const char *path, const char *body, long want,
		 resp *r)
{
	char cerr[CURL_ERROR_SIZE];
	uint64_t t0 = now_mono_ns();
	long st = request(h, false, method, path, body, r, cerr);
	if (st != want) {
		record_error(s, op_names[op], st, cerr, r->buf);
		return false;
	}
	record(s, op, bench_ms_since(t0));
	return true;
}

static void cycle(CURL *h, samples *s, int k)
{
	char body[256], path[256];
	snprintf(body, sizeof body, "{\"provider\":\"%s\",\"name\":\"slow-%d\",\"vcpus\":1,\"memory_mb\":128}", provider,
		 k);
	uint64_t t0 = now_mono_ns();
	resp r = {0};
	if (!call(h, s, OP_CREATE, "POST", "/v1/sandboxes", body, 201, &r)) {
		free(r.buf);
		return;
	}
	json_t *o = json_loads(r.buf, 0, NULL);
	char id[64];
	snprintf(id, sizeof id, "%s", json_string_value(json_object_get(o, "id")) ?: "");
	json_decref(o);
	free(r.buf);
	r = (resp){0};
	snprintf(path, sizeof path, "/v1/sandboxes/%s/exec", id);
	bool ok = call(h, s, OP_EXEC, "POST", path, "{\"argv\":[\"echo\",\"hello\"]}", 200, &r);
	if (ok && !(strstr(r.buf, "\"exit_code\":0") && strstr(r.buf, "aGVsbG8K"))) {
		record_error(s, "exec output", 200, "", r.buf);
		ok = false;
	}
	free(r.buf);
	r = (resp){0};
	snprintf(path, sizeof path, "/v1/sandboxes/%s", id);
	ok = call(h, s, OP_DELETE, "DELETE", path, NULL, 200, &r) && ok;
	free(r.buf);
	if (ok)
		record(s, OP_CYCLE, bench_ms_since(t0));
}

typedef struct client {
	samples *s;
	int k, cycles;
	pthread_t th;
} client;

static void *client_main(void *arg)
{
	client *c = arg;
	CURL *h = curl_easy_init();
	for (int i = 0; i < c->cycles; i++)
		cycle(h, c->s, c->k * 10000 + i);
	curl_easy_cleanup(h);
	return NULL;
}

static void run_clients(samples *s, int n, int cycles, int base)
{
	client *cs = xcalloc((size_t)n, sizeof *cs);
	for (int k = 0; k < n; k++) {
		cs[k] = (client){s, base + k, cycles, 0};
		pthread_create(&cs[k].th, NULL, client_main, &cs[k]);
	}
	for (int k = 0; k < n; k++)
		pthread_join(cs[k].th, NULL);
	free(cs);
}

static json_t *dist(double *v, int n)
{
	bench_sort(v, (size_t)n);
	return json_pack("{s:i,s:f,s:f,s:f,s:f}", "count", n, "p50_ms", bench_pct(v, (size_t)n, 50, 0), "p95_ms",
			 bench_pct(v, (size_t)n, 95, 0), "p99_ms", bench_pct(v, (size_t)n, 99, 0), "max_ms",
			 n ? v[n - 1] : 0.0);
}

static json_t *report(samples *s)
{
	json_t *o = json_object();
	for (int op = 0; op < OP__N; op++)
		json_object_set_new(o, op_names[op], dist(s->v[op], s->n[op]));
	json_object_set_new(o, "errors", json_integer(s->errors));
	if (s->first_error[0])
		json_object_set_new(o, "first_error", json_string(s->first_error));
	return o;
}

static json_t *unix_report(samples *s)
{
	json_t *o = dist(s->v[OP_CYCLE], s->n[OP_CYCLE]);
	json_object_set_new(o, "errors", json_integer(s->errors));
	if (s->first_error[0])
		json_object_set_new(o, "first_error", json_string(s->first_error));
	return o;
}

/* ---- the attacker: one thread, poll over every slow connection ---- */

typedef enum { SLOT_IDLE, SLOT_CONNECTING, SLOT_OPEN } slot_state;

typedef struct slot {
	int fd;
	slot_state st;
	uint64_t due_ns;          /* next byte, or reconnect */
	uint64_t open_ns;         /* when the connection was established */
	unsigned sent;
} slot;

typedef struct attacker {
	int n, addrs, trickle_ms, reconnect_ms;
	unsigned port;
	atomic_bool stop;
	atomic_int open_now;
	pthread_t th;
	/* results (read after join) */
	uint64_t attempts, established, refused, dropped;
	int max_open;
	double *lifetimes;        /* ms from established to dropped by the server */
	int n_life;
} attacker;

static void src_addr(int a, struct sockaddr_in *sa)
{
	memset(sa, 0, sizeof *sa);
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl((127u << 24) | (1u << 16) | ((unsigned)(a / 250) << 8) | (unsigned)(1 + a % 250));
}

static void slot_open(attacker *A, slot *s, int i)
{
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	s->sent = 0;
	A->attempts++;
	struct sockaddr_in src, dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)A->port)};
	dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	src_addr(i % A->addrs, &src);
	if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&src, sizeof src) < 0 ||
	    (connect(s->fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS)) {
		if (s->fd >= 0)
			close(s->fd);
		s->fd = -1;
		s->st = SLOT_IDLE;
		s->due_ns = now_mono_ns() + (uint64_t)A->reconnect_ms * 1000000ull;
		A->refused++;
		return;
	}
	s->st = SLOT_CONNECTING;
}

static void slot_lost(attacker *A, slot *s, bool was_open)
{
	uint64_t now = now_mono_ns();
	if (was_open) {
		A->dropped++;
		bench_append(&A->lifetimes, &A->n_life, (double)(now - s->open_ns) / 1e6);
		atomic_fetch_sub(&A->open_now, 1);
	} else {
		A->refused++;
	}
	close(s->fd);
	s->fd = -1;
	s->st = SLOT_IDLE;
	s->due_ns = now + (uint64_t)A->reconnect_ms * 1000000ull;
}

/* Send the next byte of a head that never ends: a request line, then
 * 15-byte header lines "X-S000000: xx\r\n" forever, never the empty line. */
static bool trickle(slot *s)
{
	static const char start[] = "GET /v1/health HTTP/1.1\r\nHost: silod\r\n";
	char c;
	if (s->sent < sizeof start - 1) {
		c = start[s->sent];
	} else {
		unsigned off = s->sent - (unsigned)(sizeof start - 1);
		char line[16];
		snprintf(line, sizeof line, "X-S%06u: xx\r\n", (off / 15) % 1000000);
		c = line[off % 15];
	}
	ssize_t w = send(s->fd, &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (w == 1)
		s->sent++;
	return w == 1 || (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

static void *attacker_main(void *arg)
{
	attacker *A = arg;
	slot *slots = xcalloc((size_t)A->n, sizeof *slots);
	struct pollfd *pfd = xcalloc((size_t)A->n, sizeof *pfd);
	int *idx = xcalloc((size_t)A->n, sizeof *idx);
	for (int i = 0; i < A->n; i++) {
		slots[i].fd = -1;
		slot_open(A, &slots[i], i);
	}
	while (!atomic_load(&A->stop)) {
		int np = 0;
		for (int i = 0; i < A->n; i++) {
			if (slots[i].fd < 0)
				continue;
			pfd[np] = (struct pollfd){.fd = slots[i].fd,
						  .events = slots[i].st == SLOT_CONNECTING ? POLLOUT : POLLIN | POLLRDHUP};
			idx[np++] = i;
		}
		int pr = poll(pfd, (nfds_t)np, 20);
		uint64_t now = now_mono_ns();
		for (int k = 0; pr > 0 && k < np; k++) {
			slot *s = &slots[idx[k]];
			short re = pfd[k].revents;
			if (!re)
				continue;
			if (s->st == SLOT_CONNECTING) {
				int soerr = 0;
				socklen_t l = sizeof soerr;
				getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &l);
				if (soerr || (re & (POLLERR | POLLHUP))) {
					slot_lost(A, s, false);
					continue;
				}
				s->st = SLOT_OPEN;
				s->open_ns = now;
				s->due_ns = now;
				A->established++;
				int o = atomic_fetch_add(&A->open_now, 1) + 1;
				if (o > A->max_open)
					A->max_open = o;
				continue;
			}
			char buf[512];
			ssize_t r = recv(s->fd, buf, sizeof buf, MSG_DONTWAIT);
			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) || (re & (POLLERR | POLLHUP)))
				slot_lost(A, s, true);
		}
		for (int i = 0; i < A->n; i++) {
			slot *s = &slots[i];
			if (now < s->due_ns)
				continue;
			if (s->st == SLOT_IDLE) {
				slot_open(A, s, i);
			} else if (s->st == SLOT_OPEN) {
				if (!trickle(s))
					slot_lost(A, s, true);
				else
					s->due_ns = now + (uint64_t)A->trickle_ms * 1000000ull;
			}
		}
	}
	for (int i = 0; i < A->n; i++)
		if (slots[i].fd >= 0)
			close(slots[i].fd);
	free(slots);
	free(pfd);
	free(idx);
	return NULL;
}

/* ---- unix-socket prober ---- */

typedef struct prober {
	atomic_bool stop;
	samples s;
	pthread_t th;
} prober;

static void *prober_main(void *arg)
{
	prober *p = arg;
	CURL *h = curl_easy_init();
	while (!atomic_load(&p->stop)) {
		resp r = {0};
		char cerr[CURL_ERROR_SIZE];
		uint64_t t0 = now_mono_ns();
		long st = request(h, true, "GET", "/v1/health", NULL, &r, cerr);
		if (st == 200)
			record(&p->s, OP_CYCLE, bench_ms_since(t0));
		else
			record_error(&p->s, "unix health", st, cerr, r.buf);
		free(r.buf);
		usleep(100000);
	}
	curl_easy_cleanup(h);
	return NULL;
}

static json_t *get_json(CURL *h, bool unix_sock, const char *path)
{
	resp r = {0};
	char cerr[CURL_ERROR_SIZE];
	long st = request(h, unix_sock, "GET", path, NULL, &r, cerr);
	json_t *o = st == 200 && r.buf ? json_loads(r.buf, 0, NULL) : NULL;
	free(r.buf);
	return o;
}

/* "... listening on SOCK and 127.0.0.1:PORT" in silod's log. */
static unsigned port_from_log(const char *log)
{
	char *text = NULL;
	size_t len = 0;
	if (read_file(log, 1 << 20, &text, &len, NULL) < 0)
		return 0;
	const char *p = strstr(text, " and 127.0.0.1:");
	unsigned port = p ? (unsigned)strtoul(p + strlen(" and 127.0.0.1:"), NULL, 10) : 0;
	free(text);
	return port;
}

int main(int argc, char **argv)
{
	int slow = 1000, clients = 10, cycles = 20, base_cycles = 5, addrs = 50, trickle_ms = 1000, reconnect_ms = 200;
	int fixed_port = 0;
	const char *silod = NULL;
	const char *extra[32];
	bench_list xl = {.v = extra, .max = 31};
	const bench_opt opts[] = {
		{"--slow", BOPT_INT, &slow},
		{"--clients", BOPT_INT, &clients},
		{"--cycles", BOPT_INT, &cycles},
		{"--baseline-cycles", BOPT_INT, &base_cycles},
		{"--addrs", BOPT_INT, &addrs},
		{"--trickle-ms", BOPT_INT, &trickle_ms},
		{"--reconnect-ms", BOPT_INT, &reconnect_ms},
		{"--silod", BOPT_STR, &silod},
		{"--listen-port", BOPT_INT, &fixed_port},
		{"--provider", BOPT_STR, &provider},
		{"--silod-arg", BOPT_LIST, &xl},
		{NULL, 0, NULL},
	};
	bench_opts(argc, argv, opts,
		   "slowloris [--slow N] [--clients N] [--cycles N] [--baseline-cycles N] [--addrs N] [--trickle-ms N] "
		   "[--reconnect-ms N] [--silod PATH] [--listen-port P] [--provider P] [--silod-arg ARG]...");
	int nextra = xl.n;
	if (slow < 0 || slow > 50000 || clients < 1 || clients > 200 || cycles < 1 || base_cycles < 0 || addrs < 1 ||
	    addrs > 60000 || trickle_ms < 1 || reconnect_ms < 0)
		die(2, "slowloris: an option is out of range");
	/* Every slow connection is a descriptor here and in silod (which inherits this limit). */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)slow * 2 + 256) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	char silod_path[4096], tmp[] = "/tmp/silo-slowloris-XXXXXX";
	bench_silod_setup(&silod, silod_path, tmp, sock_path, sizeof sock_path);
	char tokf[64], logf[64];
	snprintf(tokf, sizeof tokf, "%s/token", tmp);
	snprintf(logf, sizeof logf, "%s/silod.log", tmp);
	silo_error err;
	char token[65];
	unsigned char rnd[32];
	int rfd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (rfd < 0 || read(rfd, rnd, sizeof rnd) != (ssize_t)sizeof rnd)
		die_errno(1, "/dev/urandom");
	close(rfd);
	for (int i = 0; i < 32; i++)
		snprintf(token + 2 * i, 3, "%02x", rnd[i]);
	if (write_file_atomic(tokf, token, strlen(token), 0600, &err) < 0)
		die(1, "%s", err.message);
	snprintf(auth_header, sizeof auth_header, "Authorization: Bearer %s", token);

	char listen[64], maxs[32];
	snprintf(listen, sizeof listen, "127.0.0.1:%d", fixed_port);
	snprintf(maxs, sizeof maxs, "%d", clients + 8);
	const char *av[64] = {silod, "--listen", listen, "--token-file", tokf, "--max-sandboxes", maxs,
			      "--capacity-vcpus", "100000", "--capacity-memory-mb", "100000000", "--grace-ms", "1000"};
	int ac = 13;
	for (int i = 0; i < nextra; i++)
		av[ac++] = extra[i];
	av[ac] = NULL;
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd >= 0)
			dup2(fd, 2);
		execv(silod, (char *const *)av);
		_exit(127);
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	CURL *h = curl_easy_init();
	unsigned port = fixed_port;
	json_t *health = NULL;
	for (int i = 0; i < 400 && !health; i++) {
		if (!port)
			port = port_from_log(logf);
		snprintf(base_url, sizeof base_url, "http://127.0.0.1:%u", port);
		if (port)
			health = get_json(h, false, "/v1/health");
		if (!health)
			usleep(25000);
	}
	int rc = 1;
	if (!health) {
		fprintf(stderr, "slowloris: silod did not come up on TCP (log: %s)\n", logf);
		goto out;
	}
	json_decref(health);
	json_t *pj = get_json(h, false, "/v1/providers");
	bool avail = bench_provider_available(pj, provider);
	json_decref(pj);
	if (!avail) {
		printf("{\"benchmark\":\"slowloris\",\"skipped\":\"provider %s unavailable\"}\n", provider);
		rc = 0;
		goto out;
	}

	samples base = {.lock = PTHREAD_MUTEX_INITIALIZER}, att = {.lock = PTHREAD_MUTEX_INITIALIZER};
	if (base_cycles)
		run_clients(&base, clients, base_cycles, 0);

	attacker A = {.n = slow, .addrs = addrs, .trickle_ms = trickle_ms, .reconnect_ms = reconnect_ms, .port = port};
	prober pr = {.s = {.lock = PTHREAD_MUTEX_INITIALIZER}};
	if (slow)
		pthread_create(&A.th, NULL, attacker_main, &A);
	/* Let the attack build up: every slow connection opened once (or 5 s). */
	uint64_t t_ramp = now_mono_ns();
	while (slow && now_mono_ns() - t_ramp < 5000000000ull && atomic_load(&A.open_now) < slow)
		usleep(20000);
	int open_at_start = atomic_load(&A.open_now);
	pthread_create(&pr.th, NULL, prober_main, &pr);
	uint64_t t0 = now_mono_ns();
	run_clients(&att, clients, cycles, 100);
	double wall = bench_ms_since(t0);
	int open_at_end = atomic_load(&A.open_now);
	json_t *server = get_json(h, true, "/v1/health");
	atomic_store(&pr.stop, true);
	pthread_join(pr.th, NULL);
	atomic_store(&A.stop, true);
	if (slow)
		pthread_join(A.th, NULL);

	json_t *left = get_json(h, true, "/v1/sandboxes");
	size_t nleft = json_array_size(json_object_get(left, "sandboxes"));
	json_decref(left);
	json_t *attack = json_pack("{s:i,s:i,s:i,s:i,s:i,s:I,s:I,s:I,s:I,s:i,s:o}", "slow_connections", slow,
				   "source_addresses", addrs, "trickle_ms", trickle_ms, "open_when_clients_started",
				   open_at_start, "open_when_clients_finished", open_at_end, "connects",
				   (json_int_t)A.attempts, "established", (json_int_t)A.established, "refused_or_reset",
				   (json_int_t)A.refused, "dropped_by_server", (json_int_t)A.dropped, "max_open",
				   A.max_open, "lifetime_until_dropped", dist(A.lifetimes, A.n_life));
	json_t *srv = json_object_get(server, "tcp_connections");
	unsigned errors = base.errors + att.errors;
	json_t *out = json_pack("{s:s,s:s,s:i,s:i,s:o,s:o,s:f,s:o,s:o,s:O,s:I,s:i}", "benchmark", "slowloris",
				"provider", provider, "clients", clients, "cycles_per_client", cycles,
				"peer_no_attack", report(&base), "under_attack", report(&att), "under_attack_wall_ms",
				wall, "unix_socket_health", unix_report(&pr.s), "attacker", attack, "server",
				srv ? srv : json_null(), "sandboxes_left", (json_int_t)nleft, "client_errors",
				(int)errors);
	bench_print_json(out, 0);
	json_decref(out);
	json_decref(server);
	rc = errors || nleft || pr.s.errors ? 1 : 0;
	for (int op = 0; op < OP__N; op++) {
		free(base.v[op]);
		free(att.v[op]);
		free(pr.s.v[op]);
	}
	free(A.lifetimes);
out:
	curl_easy_cleanup(h);
	bench_silod_stop(pid, tmp);
	return rc;
}
