/* SPDX-License-Identifier: Apache-2.0
 * Exec output streaming (docs/benchmarks.md "Exec output streaming"):
 * throughput of one command's output and the exec round trip of `true`, with
 * and without a concurrent stalled stream, embedded (libsilo in-process, the
 * output callback) and through a real silod (HTTP, NDJSON). Uses only calls
 * that also exist before flow control (protocol 1), so the same source builds
 * against an older tree: bench/exec_stream.sh runs both builds in one session.
 *
 *   exec_stream [--bytes N] [--runs N] [--rtt N] [--silod PATH] [--label S]
 *               [--provider P] [--no-embedded] [--no-silod]
 *
 * --provider applies to the embedded mode (default namespace; qemu measures the
 * virtio-serial channel and needs the images of the build's agent).
 *
 * Per mode:
 *   throughput  `dd if=/dev/zero bs=64k count=BYTES/64k`, read as fast as
 *               possible, RUNS times: MB/s (decoded payload) and whether every
 *               byte arrived (dd, not busybox head, whose byte loop would be
 *               the bottleneck: this measures the channel);
 *   rtt_idle    RTT x `true` on the same sandbox, nothing else running;
 *   rtt_stalled RTT x `true` while a BYTES stream's consumer is stalled (the
 *               callback / the HTTP client's write callback blocks), then the
 *               stalled stream is released and its bytes counted. An exec that
 *               takes over 5 s counts as failed.
 * JSON on stdout (p50/p95/p99 ms, MB/s), a table on stderr.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "common/util.h"
#include "core/channel.h"
#include "core/sandbox.h"
#include "gate.h"
#include "proc_status.h"

#define RTT_LIMIT_MS 5000

static uint64_t bytes_total = 200ull << 20;   /* a multiple of DD_BS */
#define DD_BS 65536
static int runs = 3, rtt_runs = 50;
static char sock[4096];
static const char *provider = "namespace";

/* ---- JSON ---- */

static json_t *series_json(bench_series *s)
{
	bench_sort(s->ms, (size_t)s->n);
	return json_pack("{s:i,s:i,s:f,s:f,s:f,s:f}", "n", s->n, "failed", s->failed, "p50_ms", bench_series_pct(s, 50),
			 "p95_ms", bench_series_pct(s, 95), "p99_ms", bench_series_pct(s, 99), "mean_ms",
			 bench_series_mean(s));
}

static json_t *throughput_json(double *mbs, int n, int complete)
{
	bench_sort(mbs, (size_t)n);
	return json_pack("{s:i,s:i,s:f,s:f,s:f}", "runs", n, "complete_runs", complete, "p50_mb_s",
			 bench_pct(mbs, (size_t)n, 50, 0), "min_mb_s", n ? mbs[0] : 0.0, "max_mb_s",
			 n ? mbs[n - 1] : 0.0);
}

static void table(const char *mode, const char *what, bench_series *s)
{
	bench_sort(s->ms, (size_t)s->n);
	fprintf(stderr, "%-8s %-12s n=%-4d failed=%-3d p50 %8.2f  p95 %8.2f  p99 %8.2f ms\n", mode, what, s->n, s->failed,
		bench_series_pct(s, 50), bench_series_pct(s, 95), bench_series_pct(s, 99));
}

/* ---- embedded ---- */

static void count_cb(void *ud, int stream, const void *buf, size_t len)
{
	(void)buf;
	if (stream == 1)
		*(uint64_t *)ud += len;
}

typedef struct bg_exec {
	chan *c;
	gate g;           /* the consumer stops dead until the gate opens */
	uint64_t bytes;   /* stdout, counted by the consumer */
	int rc;
} bg_exec;

static void gated_cb(void *ud, int stream, const void *buf, size_t len)
{
	(void)buf;
	bg_exec *b = ud;
	gate_pass(&b->g);
	if (stream == 1)
		b->bytes += len;
}

static char count_arg[48];   /* count=BYTES/DD_BS */

static void *bg_exec_main(void *p)
{
	bg_exec *b = p;
	char *argv[] = {"dd", "if=/dev/zero", "bs=65536", count_arg, NULL};
	exec_req r = {.argv = argv, .uid = -1, .gid = -1};
	exec_result res;
	silo_error err;
	b->rc = chan_exec(b->c, &r, gated_cb, b, &res, &err);
	return NULL;
}

/* One exec of `true` with a deadline: ms, or -1. */
static double rtt_once(chan *c)
{
	char *argv[] = {"true", NULL};
	exec_req r = {.argv = argv, .uid = -1, .gid = -1};
	uint32_t id;
	exec_result res;
	silo_error err;
	uint64_t t0 = now_mono_ns();
	if (chan_exec_start(c, &r, NULL, NULL, &id, &err) < 0)
		return -1;
	if (chan_exec_wait(c, id, RTT_LIMIT_MS, &res, &err) < 0 || res.exit_code != 0)
		return -1;
	return bench_ms_since(t0);
}

static json_t *bench_embedded(void)
{
	vm_spec spec;
	memset(&spec, 0, sizeof spec);
	snprintf(spec.name, sizeof spec.name, "bench-stream");
	spec.provider = (char *)provider;
	spec.image = strcmp(provider, "namespace") ? "base" : NULL;   /* busybox + the agent */
	spec.vcpus = 1;
	spec.memory_mb = 512;
	sandbox *sb = NULL;
	sandbox_opts o = {0};
	silo_error err;
	if (sandbox_create(&spec, &o, &sb, &err) < 0)
		return json_pack("{s:s}", "skipped", err.message);
	json_t *out = json_object();
	double *mbs = xcalloc((size_t)runs, sizeof *mbs);
	int complete = 0;
	char *argv[] = {"dd", "if=/dev/zero", "bs=65536", count_arg, NULL};
	exec_req r = {.argv = argv, .uid = -1, .gid = -1};
	for (int i = 0; i < runs; i++) {
		uint64_t got = 0;
		exec_result res;
		uint64_t t0 = now_mono_ns();
		int rc = chan_exec(sb->ch, &r, count_cb, &got, &res, &err);
		double s = bench_ms_since(t0) / 1e3;
		mbs[i] = (double)got / 1e6 / s;
		complete += rc == 0 && got == bytes_total;
		fprintf(stderr, "embedded throughput run %d: %.1f MB/s (%llu bytes)\n", i, mbs[i], (unsigned long long)got);
	}
	json_object_set_new(out, "throughput", throughput_json(mbs, runs, complete));
	free(mbs);

	bench_series idle = bench_series_new(rtt_runs);
	for (int i = 0; i < rtt_runs; i++)
		bench_series_add(&idle, rtt_once(sb->ch));
	table("embedded", "rtt_idle", &idle);
	json_object_set_new(out, "rtt_idle", series_json(&idle));

	bg_exec b = {.c = sb->ch, .g = GATE_INIT};
	pthread_t th;
	pthread_create(&th, NULL, bg_exec_main, &b);
	gate_wait_entered_for(&b.g, 10000);
	bench_series stalled = bench_series_new(rtt_runs);
	for (int i = 0; i < rtt_runs; i++) {
		double ms = rtt_once(sb->ch);
		bench_series_add(&stalled, ms);
		if (ms < 0 && !chan_is_connected(sb->ch)) {
			for (int k = i + 1; k < rtt_runs; k++)
				bench_series_add(&stalled, -1);
			break;
		}
	}
	long agent_rss = proc_status_kib(sb->pid, "VmRSS");
	table("embedded", "rtt_stalled", &stalled);
	gate_open(&b.g);
	pthread_join(th, NULL);
	json_t *st = series_json(&stalled);
	json_object_set_new(st, "stalled_stream_bytes", json_integer((json_int_t)b.bytes));
	json_object_set_new(st, "stalled_stream_complete", json_boolean(b.rc == 0 && b.bytes == bytes_total));
	json_object_set_new(st, "channel_survived", json_boolean(chan_is_connected(sb->ch)));
	json_object_set_new(st, "agent_rss_kib", json_integer(agent_rss));
	json_object_set_new(out, "rtt_stalled", st);
	free(idle.ms);
	free(stalled.ms);
	cleanup_report rep = {0};
	sandbox_destroy(sb, 2000, &rep, &err);
	cleanup_report_free(&rep);
	return out;
}

/* ---- through silod ---- */

typedef struct ndjson {
	char *line;
	size_t len, cap;
	uint64_t bytes;       /* decoded stdout */
	bool exit_ok;
	gate *g;              /* optional: stall in here */
} ndjson;

static void ndjson_line(ndjson *n, const char *l, size_t len)
{
	static const char pre[] = "{\"stream\":\"stdout\",\"data\":\"";
	if (len > sizeof pre && !memcmp(l, pre, sizeof pre - 1)) {
		const char *b = l + sizeof pre - 1;
		const char *e = memchr(b, '"', len - (sizeof pre - 1));
		size_t bl = e ? (size_t)(e - b) : 0;
		size_t pad = bl >= 2 ? (b[bl - 1] == '=') + (b[bl - 2] == '=') : 0;
		n->bytes += bl / 4 * 3 - pad;
	} else if (memmem(l, len, "\"exit_code\":0,", 14)) {
		n->exit_ok = true;
	}
}

static size_t on_stream(char *p, size_t sz, size_t nm, void *ud)
{
	ndjson *n = ud;
	size_t len = sz * nm;
	if (n->g)
		gate_pass(n->g);
	for (size_t off = 0; off < len;) {
		const char *nl = memchr(p + off, '\n', len - off);
		size_t k = nl ? (size_t)(nl - (p + off)) : len - off;
		if (n->len + k > n->cap) {
			n->cap = MAX(n->cap * 2, n->len + k + 1);
			n->line = xrealloc(n->line, n->cap);
		}
		memcpy(n->line + n->len, p + off, k);
		n->len += k;
		off += k;
		if (nl) {
			ndjson_line(n, n->line, n->len);
			n->len = 0;
			off++;
		}
	}
	return len;
}

static long http(CURL *h, const char *method, const char *path, const char *body, ndjson *n)
{
	curl_easy_reset(h);
	char url[512];
	snprintf(url, sizeof url, "http://silod%s", path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, sock);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
	if (body)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_stream);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, n);
	CURLcode rc = curl_easy_perform(h);
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hd);
	return rc == CURLE_OK ? status : -1;
}

static char sid[128];

static double http_rtt_once(CURL *h)
{
	char path[256];
	snprintf(path, sizeof path, "/v1/sandboxes/%s/exec", sid);
	ndjson n = {0};
	uint64_t t0 = now_mono_ns();
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)RTT_LIMIT_MS);
	long st = http(h, "POST", path, "{\"argv\":[\"true\"]}", &n);
	double ms = bench_ms_since(t0);
	free(n.line);
	return st == 200 && n.exit_ok ? ms : -1;
}

typedef struct bg_http {
	gate *g;
	ndjson n;
	long status;
} bg_http;

static void *bg_http_main(void *p)
{
	bg_http *b = p;
	CURL *h = curl_easy_init();
	char path[256], body[128];
	snprintf(path, sizeof path, "/v1/sandboxes/%s/exec", sid);
	snprintf(body, sizeof body, "{\"argv\":[\"dd\",\"if=/dev/zero\",\"bs=65536\",\"%s\"]}", count_arg);
	b->n.g = b->g;   /* the write callback stops dead: curl stops reading the socket */
	b->status = http(h, "POST", path, body, &b->n);
	curl_easy_cleanup(h);
	return NULL;
}

static json_t *bench_silod(const char *silod)
{
	char tmp[] = "/tmp/silo-bench-stream-XXXXXX";
	char *const sargv[] = {(char *)silod, NULL};
	pid_t pid = bench_spawn_silod(sargv, tmp, sock, sizeof sock);
	if (pid < 0)
		return json_pack("{s:s}", "skipped", "cannot start silod");
	CURL *h = curl_easy_init();
	bool up = false;
	for (int i = 0; i < 400 && !up; i++) {
		ndjson n = {0};
		up = http(h, "GET", "/v1/health", NULL, &n) == 200;
		free(n.line);
		if (!up)
			usleep(25000);
	}
	json_t *out = json_object();
	if (!up) {
		json_object_set_new(out, "skipped", json_string("silod did not come up"));
		goto done;
	}
	/* create: the reply is one JSON object; pick the id out of it */
	{
		CURL *c = h;
		curl_easy_reset(c);
		char *reply = NULL;
		size_t rl = 0;
		FILE *mf = open_memstream(&reply, &rl);
		curl_easy_setopt(c, CURLOPT_URL, "http://silod/v1/sandboxes");
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, sock);
		struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS,
				 "{\"provider\":\"namespace\",\"name\":\"bench-stream\",\"vcpus\":1,\"memory_mb\":512}");
		curl_easy_setopt(c, CURLOPT_WRITEDATA, mf);
		curl_easy_perform(c);
		fclose(mf);
		curl_slist_free_all(hd);
		json_t *j = reply ? json_loads(reply, 0, NULL) : NULL;
		const char *id = json_string_value(json_object_get(j, "id"));
		snprintf(sid, sizeof sid, "%s", id ? id : "");
		json_decref(j);
		free(reply);
		if (!sid[0]) {
			json_object_set_new(out, "skipped", json_string("create failed (namespace provider unavailable?)"));
			goto done;
		}
	}
	char path[256], body[128];
	snprintf(path, sizeof path, "/v1/sandboxes/%s/exec", sid);
	snprintf(body, sizeof body, "{\"argv\":[\"dd\",\"if=/dev/zero\",\"bs=65536\",\"%s\"]}", count_arg);
	double *mbs = xcalloc((size_t)runs, sizeof *mbs);
	int complete = 0;
	for (int i = 0; i < runs; i++) {
		ndjson n = {0};
		uint64_t t0 = now_mono_ns();
		long st = http(h, "POST", path, body, &n);
		double s = bench_ms_since(t0) / 1e3;
		mbs[i] = (double)n.bytes / 1e6 / s;
		complete += st == 200 && n.exit_ok && n.bytes == bytes_total;
		fprintf(stderr, "silod    throughput run %d: %.1f MB/s (%llu bytes)\n", i, mbs[i],
			(unsigned long long)n.bytes);
		free(n.line);
	}
	json_object_set_new(out, "throughput", throughput_json(mbs, runs, complete));
	free(mbs);

	bench_series idle = bench_series_new(rtt_runs);
	for (int i = 0; i < rtt_runs; i++)
		bench_series_add(&idle, http_rtt_once(h));
	table("silod", "rtt_idle", &idle);
	json_object_set_new(out, "rtt_idle", series_json(&idle));

	long rss0 = proc_status_kib(pid, "VmRSS");
	gate g = GATE_INIT;
	bg_http b = {.g = &g};
	pthread_t th;
	pthread_create(&th, NULL, bg_http_main, &b);
	gate_wait_entered_for(&g, 10000);
	usleep(500000);   /* let the stalled stream fill what it can */
	bench_series stalled = bench_series_new(rtt_runs);
	for (int i = 0; i < rtt_runs; i++)
		bench_series_add(&stalled, http_rtt_once(h));
	long rss1 = proc_status_kib(pid, "VmRSS");
	table("silod", "rtt_stalled", &stalled);
	gate_open(&g);
	pthread_join(th, NULL);
	json_t *st = series_json(&stalled);
	json_object_set_new(st, "stalled_stream_bytes", json_integer((json_int_t)b.n.bytes));
	json_object_set_new(st, "stalled_stream_complete", json_boolean(b.n.bytes == bytes_total && b.n.exit_ok));
	json_object_set_new(st, "silod_rss_growth_kib", json_integer(rss1 - rss0));
	json_object_set_new(out, "rtt_stalled", st);
	free(b.n.line);
	free(idle.ms);
	free(stalled.ms);
	snprintf(path, sizeof path, "/v1/sandboxes/%s?grace_ms=0", sid);
	ndjson n = {0};
	http(h, "DELETE", path, NULL, &n);
	free(n.line);
done:
	curl_easy_cleanup(h);
	bench_silod_stop(pid, tmp);
	return out;
}

int main(int argc, char **argv)
{
	const char *silod = NULL, *label = "";
	bool embedded = true, via_silod = true;
	const bench_opt opts[] = {
		{"--bytes", BOPT_U64, &bytes_total},     {"--runs", BOPT_INT, &runs},       {"--rtt", BOPT_INT, &rtt_runs},
		{"--silod", BOPT_STR, &silod},           {"--label", BOPT_STR, &label},     {"--provider", BOPT_STR, &provider},
		{"--no-embedded", BOPT_FALSE, &embedded}, {"--no-silod", BOPT_FALSE, &via_silod}, {NULL, 0, NULL},
	};
	bench_opts(argc, argv, opts,
		   "exec_stream [--bytes N] [--runs N] [--rtt N] [--silod PATH] [--label S] [--provider P] [--no-embedded] "
		   "[--no-silod]");
	if (bytes_total < DD_BS || bytes_total % DD_BS || runs < 1 || runs > 100 || rtt_runs < 1 || rtt_runs > 10000) {
		fprintf(stderr, "exec_stream: --bytes a multiple of 65536, --runs 1..100, --rtt 1..10000\n");
		return 2;
	}
	snprintf(count_arg, sizeof count_arg, "count=%llu", (unsigned long long)(bytes_total / DD_BS));
	char silod_path[4096];
	silo_error err;
	if (!silod && via_silod) {
		if (find_helper_binary("silod", silod_path, sizeof silod_path, &err) < 0) {
			fprintf(stderr, "exec_stream: %s\n", err.message);
			return 1;
		}
		silod = silod_path;
	}
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	json_t *doc = json_pack("{s:s,s:s,s:s,s:I,s:i,s:i,s:i}", "benchmark", "exec_stream", "label", label,
				"embedded_provider", provider, "bytes", (json_int_t)bytes_total, "runs", runs, "rtt_runs",
				rtt_runs, "cpus", (int)sysconf(_SC_NPROCESSORS_ONLN));
	if (embedded)
		json_object_set_new(doc, "embedded", bench_embedded());
	if (via_silod)
		json_object_set_new(doc, "silod", bench_silod(silod));
	bench_print_json(doc, 0);
	json_decref(doc);
	return 0;
}
