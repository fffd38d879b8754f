/* SPDX-License-Identifier: Apache-2.0
 * Exec round trip through a remote target vs direct, in one run
 * (docs/benchmarks.md "Remote targets", docs/remote.md).
 *
 * Two silods on this machine, each with its own state and runtime dirs: the
 * edge listens on loopback TCP with TLS (a CA and a server certificate made
 * here with openssl) and a bearer token; the hub has only its unix socket and
 * the edge added as a target. One sandbox is created on the edge through the
 * hub (?target=edge), then N execs of `true` are timed each way, interleaved
 * (the order rotates every round so neither way always goes first):
 *
 *   via_hub     client -> hub (unix socket) -> edge (TLS) -> sandbox
 *   direct_tls  client -> edge (TLS, the same silod and sandbox)
 *   direct_unix client -> edge (its unix socket): the floor, no network
 *
 * Every client request opens a fresh connection, as `silo exec` does; the hub
 * keeps its connections to the edge open between requests (daemon/targets.c),
 * so via_hub pays a unix connect and the edge no TLS handshake. The ratio is
 * via_hub over direct_tls (what placing work on a target costs a client that
 * could have reached the edge itself), p50 and p99.
 *
 *   remote [-n 200] [--silod PATH] [--provider namespace]
 *
 * Prints one JSON document; exit 0 also when the provider is unavailable
 * ({"skipped": why}).
 */
#include <signal.h>

#include "bench_curl.h"

enum { WAY_HUB, WAY_TLS, WAY_UNIX, WAY__N };
static const char *const way_names[WAY__N] = {"via_hub", "direct_tls", "direct_unix"};

typedef struct node {
	char tmp[256], sock[300], log[300];
	pid_t pid;
} node;

/* Start a silod in its own dirs under /tmp; stderr to node->log. */
static int node_start(node *n, const char *silod, char *const extra[])
{
	snprintf(n->tmp, sizeof n->tmp, "/tmp/silo-bench-remote-XXXXXX");
	if (bench_silod_dirs(n->tmp, n->sock, sizeof n->sock) < 0)
		return -1;
	snprintf(n->log, sizeof n->log, "%s/log", n->tmp);
	char *argv[32] = {(char *)silod, "--max-sandboxes", "16", "--grace-ms", "500"};
	int a = 5;
	for (int i = 0; extra && extra[i] && a < 31; i++)
		argv[a++] = extra[i];
	argv[a] = NULL;
	n->pid = fork();
	if (n->pid == 0) {
		int fd = open(n->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd >= 0)
			dup2(fd, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	return n->pid < 0 ? -1 : 0;
}

static void node_stop(node *n)
{
	if (n->pid > 0) {
		kill(n->pid, SIGTERM);
		waitpid(n->pid, NULL, 0);
	}
	if (n->tmp[0] && strncmp(n->tmp, "/tmp/silo-bench-remote-", 23) == 0) {
		char cmd[400];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", n->tmp);
		if (system(cmd) != 0)
			fprintf(stderr, "remote: could not remove %s\n", n->tmp);
	}
}

/* The TCP port silod printed ("listening on SOCK and 127.0.0.1:PORT"), 0 if none yet. */
static unsigned node_port(const node *n)
{
	char *txt = NULL;
	size_t len = 0;
	silo_error e;
	if (read_file(n->log, 1 << 20, &txt, &len, &e) < 0)
		return 0;
	const char *p = strstr(txt, " and 127.0.0.1:");
	char *end = NULL;
	unsigned port = p ? (unsigned)strtoul(p + strlen(" and 127.0.0.1:"), &end, 10) : 0;
	if (!end || *end != '\n')   /* the line is not all there yet */
		port = 0;
	free(txt);
	return port;
}

typedef struct way {
	const char *sock;   /* unix socket, or NULL for TCP */
	char url[128];      /* base URL */
	const char *ca, *auth;
} way;

/* One exec of `true` on sandbox sid the given way: ms, or -1 on failure. */
static double exec_once(CURL *h, const way *w, const char *sid)
{
	char url[512];
	snprintf(url, sizeof url, "%s/v1/sandboxes/%s/exec", w->url, sid);
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	if (w->sock)
		curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, w->sock);
	if (w->ca)
		curl_easy_setopt(h, CURLOPT_CAINFO, w->ca);
	curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
	struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
	hd = curl_slist_append(hd, "Expect:");
	if (w->auth)
		hd = curl_slist_append(hd, w->auth);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, "{\"argv\":[\"true\"]}");
	resp r = {0};
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
	long st = 0;
	uint64_t t0 = now_mono_ns();
	CURLcode cc = curl_easy_perform(h);
	double ms = bench_ms_since(t0);
	if (cc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
	bool ok = st == 200 && r.buf && strstr(r.buf, "\"exit_code\":0");
	if (!ok)
		fprintf(stderr, "remote: exec failed (%s, HTTP %ld): %.300s\n", curl_easy_strerror(cc), st,
			r.buf ? r.buf : "");
	curl_slist_free_all(hd);
	free(r.buf);
	return ok ? ms : -1;
}

static int sh(const char *cmd)
{
	int st = system(cmd);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	int n = 200;
	const char *silod = NULL, *provider = "namespace";
	const bench_opt opts[] = {
		{"-n", BOPT_INT, &n}, {"--silod", BOPT_STR, &silod}, {"--provider", BOPT_STR, &provider}, {NULL, 0, NULL},
	};
	bench_opts(argc, argv, opts, "remote [-n 200] [--silod PATH] [--provider namespace]");
	if (n < 1 || n > 100000)
		return fprintf(stderr, "remote: -n must be 1..100000\n"), 2;
	char path[4096];
	silo_error err;
	bench_find_silod(&silod, path);

	/* PKI and token, in a dir of their own */
	char pki[] = "/tmp/silo-bench-remote-pki-XXXXXX";
	if (!mkdtemp(pki))
		die_errno(1, "mkdtemp");
	char cmd[4096], token[64], tokfile[300], ca[300], cert[300], key[300];
	snprintf(ca, sizeof ca, "%s/ca.pem", pki);
	snprintf(cert, sizeof cert, "%s/server.pem", pki);
	snprintf(key, sizeof key, "%s/server.key", pki);
	snprintf(tokfile, sizeof tokfile, "%s/token", pki);
	snprintf(cmd, sizeof cmd,
		 "cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
		 "-subj /CN=bench-ca -keyout ca.key -out ca.pem 2>/dev/null && "
		 "printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > san.ext && "
		 "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=edge -keyout server.key "
		 "-out server.csr 2>/dev/null && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
		 "-CAcreateserial -days 2 -extfile san.ext -out server.pem 2>/dev/null",
		 pki);
	if (sh(cmd) < 0)
		die(1, "remote: openssl could not make the bench CA (is openssl installed?)");
	unsigned char rnd[16];
	random_bytes(rnd, sizeof rnd);
	for (size_t i = 0; i < sizeof rnd; i++)
		snprintf(token + 2 * i, 3, "%02x", rnd[i]);
	int tfd = open(tokfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (tfd < 0 || write_all(tfd, token, strlen(token)) < 0)
		die_errno(1, "%s", tokfile);
	close(tfd);

	node edge = {0}, hub = {0};
	char *const eargs[] = {"--listen", "127.0.0.1:0", "--token-file", tokfile, "--tls-cert", cert,
			       "--tls-key", key, NULL};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	CURL *h = curl_easy_init();
	int rc = 1;
	unsigned port = 0;
	json_t *doc = NULL;
	char sid[64] = "";
	if (node_start(&edge, silod, eargs) < 0 || node_start(&hub, silod, NULL) < 0) {
		fprintf(stderr, "remote: could not start the silods\n");
		goto out;
	}
	int avail = bench_silod_wait(h, edge.sock, provider);
	if (avail < 0 || bench_silod_wait(h, hub.sock, provider) < 0) {
		fprintf(stderr, "remote: a silod did not come up (logs in %s, %s)\n", edge.log, hub.log);
		goto out;
	}
	if (!avail) {
		printf("{\"benchmark\":\"remote_exec\",\"skipped\":\"provider %s unavailable\"}\n", provider);
		rc = 0;
		goto out;
	}
	for (int i = 0; i < 200 && !(port = node_port(&edge)); i++)
		usleep(25000);
	if (!port) {
		fprintf(stderr, "remote: the edge's TCP port is not in its log\n");
		goto out;
	}

	char *capem = NULL;
	size_t calen;
	if (read_file(ca, 1 << 20, &capem, &calen, &err) < 0)
		die(1, "%s", err.message);
	char url[128];
	snprintf(url, sizeof url, "https://127.0.0.1:%u", port);
	json_t *add = json_pack("{s:s,s:s,s:s,s:s}", "name", "edge", "url", url, "token", token, "ca", capem);
	free(capem);
	char *addtxt = json_dumps(add, JSON_COMPACT);
	json_decref(add);
	resp r = {0};
	long st = bench_request(h, hub.sock, "POST", "/v1/targets", "application/json", addtxt, &r);
	free(addtxt);
	if (st != 201) {
		fprintf(stderr, "remote: target add: HTTP %ld %s\n", st, r.buf ? r.buf : "");
		free(r.buf);
		goto out;
	}
	free(r.buf);
	char body[256];
	snprintf(body, sizeof body, "{\"provider\":\"%s\",\"name\":\"bench-remote\",\"vcpus\":1,\"memory_mb\":128}",
		 provider);
	r = (resp){0};
	uint64_t t0 = now_mono_ns();
	st = bench_request(h, hub.sock, "POST", "/v1/sandboxes?target=edge", "application/json", body, &r);
	double create_ms = bench_ms_since(t0);
	json_t *o = r.buf ? json_loads(r.buf, 0, NULL) : NULL;
	snprintf(sid, sizeof sid, "%s", json_string_value(json_object_get(o, "id")) ?: "");
	json_decref(o);
	if (st != 201 || !sid[0]) {
		fprintf(stderr, "remote: create on the target: HTTP %ld %s\n", st, r.buf ? r.buf : "");
		free(r.buf);
		goto out;
	}
	free(r.buf);

	char auth[128];
	snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
	way ways[WAY__N] = {
		[WAY_HUB] = {.sock = hub.sock, .url = "http://silod"},
		[WAY_TLS] = {.ca = ca, .auth = auth},
		[WAY_UNIX] = {.sock = edge.sock, .url = "http://silod"},
	};
	snprintf(ways[WAY_TLS].url, sizeof ways[WAY_TLS].url, "%s", url);
	/* warm up each way (first connections, page cache) */
	for (int w = 0; w < WAY__N; w++)
		for (int i = 0; i < 5; i++)
			exec_once(h, &ways[w], sid);
	double *ms[WAY__N];
	size_t cnt[WAY__N] = {0};
	unsigned errors[WAY__N] = {0};
	for (int w = 0; w < WAY__N; w++)
		ms[w] = xcalloc((size_t)n, sizeof(double));
	uint64_t w0 = now_mono_ns();
	for (int i = 0; i < n; i++)
		for (int k = 0; k < WAY__N; k++) {
			int w = (i + k) % WAY__N;
			double x = exec_once(h, &ways[w], sid);
			if (x < 0)
				errors[w]++;
			else
				ms[w][cnt[w]++] = x;
		}
	double wall = bench_ms_since(w0);
	double p50[WAY__N], p99[WAY__N];
	json_t *res = json_object();
	for (int w = 0; w < WAY__N; w++) {
		json_object_set_new(res, way_names[w], bench_stats_json(ms[w], cnt[w], errors[w]));
		p50[w] = bench_pct(ms[w], cnt[w], 50, 0);
		p99[w] = bench_pct(ms[w], cnt[w], 99, 0);
		free(ms[w]);
	}
	double la[3] = {0};
	FILE *lf = fopen("/proc/loadavg", "r");
	if (lf) {
		if (fscanf(lf, "%lf %lf %lf", &la[0], &la[1], &la[2]) != 3)
			la[0] = la[1] = la[2] = 0;
		fclose(lf);
	}
	doc = json_pack("{s:s,s:s,s:s,s:i,s:f,s:f,s:o,s:{s:f,s:f,s:f,s:f},s:[f,f,f],s:i,s:s}", "benchmark",
			"remote_exec", "provider", provider, "command", "true", "execs_per_way", n, "wall_ms", wall,
			"create_via_hub_ms", create_ms, "results", res, "ratio", "via_hub_over_direct_tls_p50",
			p50[WAY_TLS] > 0 ? p50[WAY_HUB] / p50[WAY_TLS] : 0.0, "via_hub_over_direct_tls_p99",
			p99[WAY_TLS] > 0 ? p99[WAY_HUB] / p99[WAY_TLS] : 0.0, "via_hub_over_direct_unix_p50",
			p50[WAY_UNIX] > 0 ? p50[WAY_HUB] / p50[WAY_UNIX] : 0.0, "hub_added_p50_ms",
			p50[WAY_HUB] - p50[WAY_TLS], "loadavg", la[0], la[1], la[2], "cpus_online",
			(int)sysconf(_SC_NPROCESSORS_ONLN), "connections",
			"the client's: fresh per request (as silo exec); the hub's to the edge: kept open and reused");
	bench_print_json(doc, JSON_REAL_PRECISION(5));
	rc = errors[WAY_HUB] + errors[WAY_TLS] + errors[WAY_UNIX] ? 1 : 0;
out:
	if (sid[0]) {
		char p[128];
		snprintf(p, sizeof p, "/v1/sandboxes/%s?grace_ms=0", sid);
		resp d = {0};
		bench_request(h, hub.sock, "DELETE", p, NULL, NULL, &d);
		free(d.buf);
	}
	json_decref(doc);
	curl_easy_cleanup(h);
	node_stop(&hub);
	node_stop(&edge);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", pki);
	if (sh(cmd) < 0)
		fprintf(stderr, "remote: could not remove %s\n", pki);
	return rc;
}
