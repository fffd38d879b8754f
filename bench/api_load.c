/* SPDX-License-Identifier: Apache-2.0
 * silod API under load: N concurrent clients (threads, one libcurl handle each)
 * each create a namespace sandbox, exec a command in it and delete it, against
 * a real silod started here with a temp state dir. Prints JSON: latency
 * p50/p95/p99 per operation and for all API calls, error counts, and the peer
 * measured in the same run: the same create/exec/delete cycle by one client
 * alone (no contention), GET /v1/health under the same load (HTTP floor), and
 * the same N-client cycle against the manager in this process (libsilo, no
 * HTTP, registry and audit alike), with silod's cost as the throughput ratio.
 * Each side runs --rounds cycles per client twice, interleaved (silod, manager,
 * manager, silod). With --warm-pool K, silod keeps K sandboxes of the cycle's
 * spec ready (--warm-pool), the creates take them, and the run starts once the
 * pool is full; the peers are then the cold creates of the single client.
 * With --fork N, a fork phase follows: --fork-rounds forks of N copies of one
 * sandbox through silod (POST /v1/sandboxes/{id}/fork), idle and while the
 * N-client cycle runs against silod without a pause, and the same through the
 * manager in this process (manager_fork, idle and under the same in-process
 * load): "fork" in the JSON, per-copy ms (fork wall / N) p50/p95/p99 each.
 *
 *   api_load [--clients 100] [--rounds 1] [--silod PATH] [--provider namespace] [--warm-pool K]
 *            [--fork N] [--fork-rounds R] [--timing]
 *
 * --timing: the load's creates ask for silod's Server-Timing and the JSON
 * gets "create_server_timing": each step's p50/p95/p99 (above); before the
 * load, the clients send one GET /v1/health each at once, on new
 * connections: "health_burst", the HTTP floor of a burst of N requests.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_curl.h"
#include "bench_util.h"
#include "common/util.h"
#include "output_test.h"
#include "core/manager.h"
#include "spec/spec.h"

enum { OP_CREATE, OP_EXEC, OP_DELETE, OP_HEALTH, OP_FORK, OP__N };
static const char *const op_names[OP__N] = {"create", "exec", "delete", "health", "fork_per_copy"};

typedef struct samples {
	pthread_mutex_t lock;
	double *v[OP__N];
	size_t n[OP__N], cap[OP__N];
	unsigned errors[OP__N];
	char first_error[512];
} samples;

static char sock[4096];
static const char *provider = "namespace";
static pthread_barrier_t start_line;
static volatile int load_running;

static long request(CURL *h, const char *method, const char *path, const char *ctype, const char *body, resp *r)
{
	return bench_request(h, sock, method, path, ctype, body, r);
}

static void record(samples *s, int op, double ms, bool ok, const char *why)
{
	pthread_mutex_lock(&s->lock);
	if (ok) {
		if (s->n[op] == s->cap[op]) {
			s->cap[op] = s->cap[op] ? s->cap[op] * 2 : 256;
			s->v[op] = xrealloc(s->v[op], s->cap[op] * sizeof(double));
		}
		s->v[op][s->n[op]++] = ms;
	} else {
		s->errors[op]++;
		if (!s->first_error[0])
			snprintf(s->first_error, sizeof s->first_error, "%s: %s", op_names[op], why ? why : "?");
	}
	pthread_mutex_unlock(&s->lock);
}

/* --timing: the N-client cycle's creates send X-Silo-Timing and collect the
 * Server-Timing steps silod answers (docs/api.md), by name, plus "outside":
 * the client's round trip minus silod's total (connect, the connection
 * thread's start, transport, the wait before silod reads the head). */
#define TIMING_STEPS 24
static bool timing;
static struct {
	pthread_mutex_t lock;
	char name[TIMING_STEPS][24];
	double *v[TIMING_STEPS];
	size_t n[TIMING_STEPS], cap[TIMING_STEPS];
	unsigned count;
} steps = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void step_add(const char *name, size_t len, double ms)
{
	pthread_mutex_lock(&steps.lock);
	unsigned i = 0;
	while (i < steps.count && (strlen(steps.name[i]) != len || strncmp(steps.name[i], name, len)))
		i++;
	if (i == steps.count && steps.count < TIMING_STEPS && len < sizeof steps.name[0]) {
		memcpy(steps.name[i], name, len);
		steps.name[i][len] = '\0';
		steps.count++;
	}
	if (i < steps.count) {
		if (steps.n[i] == steps.cap[i]) {
			steps.cap[i] = steps.cap[i] ? steps.cap[i] * 2 : 128;
			steps.v[i] = xrealloc(steps.v[i], steps.cap[i] * sizeof(double));
		}
		steps.v[i][steps.n[i]++] = ms;
	}
	pthread_mutex_unlock(&steps.lock);
}

static size_t on_timing_header(char *p, size_t sz, size_t n, void *ud)
{
	size_t len = sz * n;
	static const char key[] = "Server-Timing:";
	if (len > sizeof key && !strncasecmp(p, key, sizeof key - 1))
		snprintf(ud, 1024, "%.*s", (int)(len - (sizeof key - 1)), p + sizeof key - 1);
	return len;
}

/* Record the steps of one "name;dur=MS, ..." line and the client's share. */
static void steps_record(const char *line, double client_ms)
{
	double total = -1;
	for (const char *p = line; *p;) {
		p += strspn(p, " \t,");
		size_t nl = strcspn(p, ";, \r\n");
		const char *d = strstr(p, "dur=");
		size_t seg = strcspn(p, ",");
		if (!nl || !d || d > p + seg)
			break;
		double ms = strtod(d + 4, NULL);
		if (nl == 5 && !strncmp(p, "total", 5))
			total = ms;
		step_add(p, nl, ms);
		p += seg;
	}
	if (total >= 0)
		step_add("outside", 7, client_ms - total);
}

static json_t *steps_json(void)
{
	json_t *o = json_object();
	for (unsigned i = 0; i < steps.count; i++) {
		json_object_set_new(o, steps.name[i], bench_stats_json(steps.v[i], steps.n[i], 0));
		free(steps.v[i]);
	}
	return o;
}

static int pool_k;
static char pool_toml[256];   /* the pooled template; a create of exactly it takes a pooled sandbox */

/* create -> exec -> delete; records each call. The peers' creates are cold (K < 0). */
static void cycle(CURL *h, samples *s, int k)
{
	char body[256], path[256];
	snprintf(body, sizeof body, "{\"provider\":\"%s\",\"name\":\"load-%d\",\"vcpus\":1,\"memory_mb\":128}", provider, k);
	bool warm = pool_k > 0 && k < 900000;
	resp r = {0};
	char st_line[1024] = "";
	bench_req_extra x = {.header = "X-Silo-Timing: 1", .on_header = on_timing_header, .header_ud = st_line};
	bool timed = timing && k < 900000;
	uint64_t t0 = now_mono_ns();
	long st = bench_request_ex(h, sock, "POST", "/v1/sandboxes", warm ? "application/toml" : "application/json",
				   warm ? pool_toml : body, &r, timed ? &x : NULL);
	double ms = bench_ms_since(t0);
	if (timed && st == 201)
		steps_record(st_line, ms);
	json_t *o = r.buf ? json_loads(r.buf, 0, NULL) : NULL;
	const char *id = json_string_value(json_object_get(o, "id"));
	record(s, OP_CREATE, ms, st == 201 && id, r.buf);
	if (st != 201 || !id) {
		json_decref(o);
		free(r.buf);
		return;
	}
	char sid[64];
	snprintf(sid, sizeof sid, "%s", id);
	json_decref(o);
	free(r.buf);

	r = (resp){0};
	snprintf(path, sizeof path, "/v1/sandboxes/%s/exec", sid);
	t0 = now_mono_ns();
	st = request(h, "POST", path, "application/json", "{\"argv\":[\"echo\",\"hello\"]}", &r);
	ms = bench_ms_since(t0);
	bool ok = st == 200 && r.buf && strstr(r.buf, "\"exit_code\":0") && strstr(r.buf, "aGVsbG8K");
	record(s, OP_EXEC, ms, ok, r.buf);
	free(r.buf);

	r = (resp){0};
	snprintf(path, sizeof path, "/v1/sandboxes/%s", sid);
	t0 = now_mono_ns();
	st = request(h, "DELETE", path, NULL, NULL, &r);
	ms = bench_ms_since(t0);
	record(s, OP_DELETE, ms, st == 200, r.buf);
	free(r.buf);
}

/* The same cycle through the manager in this process. */
static manager *inproc;

static void cycle_inproc(samples *s, int k)
{
	vm_spec spec;
	silo_error err;
	if (spec_default(provider, &spec, &err) < 0) {
		record(s, OP_CREATE, 0, false, err.message);
		return;
	}
	snprintf(spec.name, sizeof spec.name, "load-%d", k);
	spec.vcpus = 1;
	spec.memory_mb = 128;
	char id[SILO_ID_MAX];
	uint64_t t0 = now_mono_ns();
	int rc = manager_create(inproc, &spec, NULL, id, &err);
	record(s, OP_CREATE, bench_ms_since(t0), rc == 0, err.message);
	spec_free(&spec);
	if (rc < 0)
		return;
	char *argv[] = {"echo", "hello", NULL};
	exec_req rq = {.argv = argv, .uid = -1, .gid = -1};
	mgr_exec *x;
	outbuf out;
	out_reset(&out);
	exec_result res = {0};
	t0 = now_mono_ns();
	rc = manager_exec_start(inproc, id, &rq, out_collect, &out, "bench", &x, &err);
	if (rc == 0) {
		rc = manager_exec_wait(x, -1, &res, &err);
		manager_exec_free(x);
	}
	record(s, OP_EXEC, bench_ms_since(t0), rc == 0 && res.exit_code == 0 && !strcmp(out.data, "hello\n"), err.message);
	t0 = now_mono_ns();
	rc = manager_delete(inproc, id, "bench", 0, &err);
	record(s, OP_DELETE, bench_ms_since(t0), rc == 0, err.message);
}

typedef struct worker {
	samples *s;
	int k, rounds;
} worker;

/* --timing's floor: the clients each send one GET /v1/health at once, each on
 * a new connection as a create of the load is (no sandbox work at all). */
static bool health_burst;

static void *worker_main(void *arg)
{
	worker *w = arg;
	CURL *h = inproc ? NULL : curl_easy_init();
	pthread_barrier_wait(&start_line);
	if (health_burst) {
		resp r = {0};
		uint64_t t0 = now_mono_ns();
		long st = request(h, "GET", "/v1/health", NULL, NULL, &r);
		record(w->s, OP_HEALTH, bench_ms_since(t0), st == 200, r.buf);
		free(r.buf);
	}
	for (int i = 0; i < w->rounds && !health_burst; i++) {
		if (inproc)
			cycle_inproc(w->s, w->k * 1000 + i);
		else
			cycle(h, w->s, w->k * 1000 + i);
	}
	if (h)
		curl_easy_cleanup(h);
	return NULL;
}

static void *health_main(void *arg)
{
	samples *s = arg;
	CURL *h = curl_easy_init();
	while (load_running) {
		resp r = {0};
		uint64_t t0 = now_mono_ns();
		long st = request(h, "GET", "/v1/health", NULL, NULL, &r);
		record(s, OP_HEALTH, bench_ms_since(t0), st == 200, r.buf);
		free(r.buf);
		usleep(20000);
	}
	curl_easy_cleanup(h);
	return NULL;
}

/* CLIENTS threads x ROUNDS cycles into S (health samples too while silod serves); wall ms. */
static double run_load(samples *s, int clients, int rounds)
{
	pthread_barrier_init(&start_line, NULL, (unsigned)clients + 1);
	pthread_t *th = xcalloc((size_t)clients, sizeof *th);
	worker *ws = xcalloc((size_t)clients, sizeof *ws);
	load_running = 1;
	pthread_t ht;
	bool probe = !inproc && !health_burst;
	if (probe)
		pthread_create(&ht, NULL, health_main, s);
	for (int k = 0; k < clients; k++) {
		ws[k] = (worker){s, k, rounds};
		pthread_create(&th[k], NULL, worker_main, &ws[k]);
	}
	uint64_t t0 = now_mono_ns();
	pthread_barrier_wait(&start_line);
	for (int k = 0; k < clients; k++)
		pthread_join(th[k], NULL);
	double wall = bench_ms_since(t0);
	load_running = 0;
	if (probe)
		pthread_join(ht, NULL);
	pthread_barrier_destroy(&start_line);
	free(th);
	free(ws);
	return wall;
}

/* ---- the fork phase (--fork N) ---- */

static int fork_n, fork_rounds = 8;
static volatile int bg_running;

typedef struct bg_load {
	samples s;
	int clients;
	unsigned cycles;
} bg_load;

/* The N-client cycle over and over (against silod, or inproc when set) until bg_running drops. */
static void *bg_main(void *arg)
{
	bg_load *b = arg;
	while (bg_running) {
		run_load(&b->s, b->clients, 1);
		b->cycles += (unsigned)b->clients;
	}
	return NULL;
}

/* Delete sandbox id (through silod, or inproc when set); false on an error. */
static bool delete_one(CURL *h, const char *id)
{
	if (inproc) {
		silo_error err;
		return manager_delete(inproc, id, "bench", 0, &err) == 0;
	}
	char path[256];
	snprintf(path, sizeof path, "/v1/sandboxes/%s", id);
	resp r = {0};
	bool ok = request(h, "DELETE", path, NULL, NULL, &r) == 200;
	free(r.buf);
	return ok;
}

/* One fork of fork_n copies of src: per-copy ms into s; the copies are deleted after. */
static void fork_once(CURL *h, const char *src, samples *s)
{
	json_t *out = NULL;
	silo_error err = {0};
	resp r = {0};
	bool ok;
	uint64_t t0 = now_mono_ns();
	if (inproc) {
		ok = manager_fork(inproc, src, (unsigned)fork_n, "bench", &out, &err) == 0;
	} else {
		char path[256], body[64];
		snprintf(path, sizeof path, "/v1/sandboxes/%s/fork", src);
		snprintf(body, sizeof body, "{\"n\":%d}", fork_n);
		ok = request(h, "POST", path, "application/json", body, &r) == 201;
		out = r.buf ? json_loads(r.buf, 0, NULL) : NULL;
	}
	record(s, OP_FORK, bench_ms_since(t0) / fork_n, ok, inproc ? err.message : r.buf);
	free(r.buf);
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(out, "sandboxes"), i, v)
		if (!delete_one(h, json_string_value(v)))
			record(s, OP_DELETE, 0, false, "delete a fork copy");
	json_decref(out);
}

/* fork_rounds forks of src idle into idle, then as many under the N-client load into busy. */
static void fork_phase(CURL *h, const char *src, int clients, samples *idle, samples *busy, bg_load *bg)
{
	for (int i = 0; i < fork_rounds; i++)
		fork_once(h, src, idle);
	bg->clients = clients;
	bg_running = 1;
	pthread_t t;
	pthread_create(&t, NULL, bg_main, bg);
	usleep(200000);   /* the first burst of creates is on */
	for (int i = 0; i < fork_rounds; i++)
		fork_once(h, src, busy);
	bg_running = 0;
	pthread_join(t, NULL);
}

/* The fork source: one sandbox of the cycle's shape, through silod or inproc; its id into id. */
static int fork_source(CURL *h, char id[SILO_ID_MAX])
{
	if (inproc) {
		vm_spec spec;
		silo_error err;
		if (spec_default(provider, &spec, &err) < 0)
			return -1;
		snprintf(spec.name, sizeof spec.name, "fork-src");
		spec.vcpus = 1;
		spec.memory_mb = 128;
		int rc = manager_create(inproc, &spec, NULL, id, &err);
		spec_free(&spec);
		return rc;
	}
	char body[256];
	snprintf(body, sizeof body, "{\"provider\":\"%s\",\"name\":\"fork-src\",\"vcpus\":1,\"memory_mb\":128}", provider);
	resp r = {0};
	long st = request(h, "POST", "/v1/sandboxes", "application/json", body, &r);
	json_t *o = r.buf ? json_loads(r.buf, 0, NULL) : NULL;
	const char *v = json_string_value(json_object_get(o, "id"));
	int rc = st == 201 && v ? 0 : -1;
	if (rc == 0)
		snprintf(id, SILO_ID_MAX, "%s", v);
	json_decref(o);
	free(r.buf);
	return rc;
}

static json_t *report(samples *s, bool with_all);

/* Per-copy stats of one side; counts its errors into *errors. */
static json_t *fork_side(samples *idle, samples *busy, bg_load *bg, unsigned *errors)
{
	*errors += idle->errors[OP_FORK] + busy->errors[OP_FORK] + idle->errors[OP_DELETE] + busy->errors[OP_DELETE];
	json_t *o = json_pack("{s:o,s:o,s:o,s:i}", "idle", bench_stats_json(idle->v[OP_FORK], idle->n[OP_FORK], idle->errors[OP_FORK]),
			      "under_load", bench_stats_json(busy->v[OP_FORK], busy->n[OP_FORK], busy->errors[OP_FORK]),
			      "load_during_forks", report(&bg->s, true), "load_cycles", (int)bg->cycles);
	const char *fe = idle->first_error[0] ? idle->first_error : busy->first_error;
	if (fe[0])
		json_object_set_new(o, "first_error", json_string(fe));
	for (int op = 0; op < OP__N; op++) {
		free(idle->v[op]);
		free(busy->v[op]);
		free(bg->s.v[op]);
	}
	return o;
}

static json_t *report(samples *s, bool with_all)
{
	json_t *o = json_object();
	size_t total = 0;
	unsigned errs = 0;
	for (int op = 0; op < OP__N; op++) {
		if (!s->n[op] && !s->errors[op])
			continue;
		if (op != OP_HEALTH) {
			total += s->n[op];
			errs += s->errors[op];
		}
		json_object_set_new(o, op_names[op], bench_stats_json(s->v[op], s->n[op], s->errors[op]));
	}
	if (with_all) {
		double *all = xcalloc(total ? total : 1, sizeof *all);
		size_t k = 0;
		for (int op = 0; op < OP_HEALTH; op++) {
			memcpy(all + k, s->v[op], s->n[op] * sizeof *all);
			k += s->n[op];
		}
		json_object_set_new(o, "all_calls", bench_stats_json(all, k, errs));
		free(all);
	}
	if (s->first_error[0])
		json_object_set_new(o, "first_error", json_string(s->first_error));
	return o;
}

int main(int argc, char **argv)
{
	int clients = 100, rounds = 1;
	const char *silod = NULL;
	const bench_opt opts[] = {
		{"--clients", BOPT_INT, &clients},   {"--rounds", BOPT_INT, &rounds},   {"--silod", BOPT_STR, &silod},
		{"--provider", BOPT_STR, &provider}, {"--warm-pool", BOPT_INT, &pool_k}, {"--fork", BOPT_INT, &fork_n},
		{"--fork-rounds", BOPT_INT, &fork_rounds}, {"--timing", BOPT_TRUE, &timing}, {NULL, 0, NULL},
	};
	bench_opts(argc, argv, opts,
		   "api_load [--clients N] [--rounds N] [--silod PATH] [--provider P] [--warm-pool K] [--fork N] "
		   "[--fork-rounds R] [--timing]");
	if (clients < 1 || clients > 1000 || rounds < 1 || pool_k < 0 || pool_k > 1000 || fork_n < 0 ||
	    fork_n > 256 || fork_rounds < 1)
		die(2, "--clients must be 1..1000, --rounds >= 1, --warm-pool 0..1000, --fork 0..256, --fork-rounds >= 1");
	char silod_path[4096];
	bench_find_silod(&silod, silod_path);
	char tmp[] = "/tmp/silo-api-load-XXXXXX";
	char maxs[32], pool_path[] = "/tmp/silo-api-pool-XXXXXX.toml", pool_arg[64];
	snprintf(maxs, sizeof maxs, "%d", clients + pool_k + fork_n + 8);
	if (pool_k) {
		snprintf(pool_toml, sizeof pool_toml,
			 "[vm]\nname = \"pooled\"\nprovider = \"%s\"\n\n[resources]\nvcpus = 1\nmemory_mb = 128\n", provider);
		int pfd = mkstemps(pool_path, 5);
		if (pfd < 0 || write_all(pfd, pool_toml, strlen(pool_toml)) < 0)
			die_errno(1, "write %s", pool_path);
		close(pfd);
		snprintf(pool_arg, sizeof pool_arg, "%s:%d", pool_path, pool_k);
	}
	/* Capacity is not what is measured here: hand out plenty. */
	char *const sargv[] = {(char *)silod, "--max-sandboxes", maxs, "--capacity-vcpus", "100000",
			       "--capacity-memory-mb", "100000000", "--grace-ms", "1000",
			       pool_k ? "--warm-pool" : NULL, pool_arg, NULL};
	pid_t pid = bench_spawn_silod(sargv, tmp, sock, sizeof sock);
	if (pid < 0)
		die_errno(1, "start silod");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	CURL *h = curl_easy_init();
	int rc = 1, avail = bench_silod_wait(h, sock, provider);
	if (avail < 0) {
		fprintf(stderr, "api_load: silod did not come up\n");
		goto out;
	}
	if (!avail) {
		printf("{\"benchmark\":\"silod_api_load\",\"skipped\":\"provider %s unavailable\"}\n", provider);
		rc = 0;
		goto out;
	}

	/* Peer: one client alone, same cycle, 10 times. */
	samples solo = {.lock = PTHREAD_MUTEX_INITIALIZER};
	for (int k = 0; k < 10; k++)
		cycle(h, &solo, 900000 + k);

	/* The load through silod and the same load against a manager in this process
	 * (same capacity and grace; its own state dir, so its own registry and audit),
	 * in the order silod, manager, manager, silod, so that a change in the host's
	 * load during the run weighs on both alike. silod stays up, idle, meanwhile. */
	samples load = {.lock = PTHREAD_MUTEX_INITIALIZER}, mgr = {.lock = PTHREAD_MUTEX_INITIALIZER};
	char mstate[sizeof tmp + 16];
	snprintf(mstate, sizeof mstate, "%s/inproc", tmp);
	mkdir_p(mstate, 0700);
	manager_config mc = {.state_dir = mstate, .max_sandboxes = (unsigned)(clients + fork_n) + 8, .grace_ms = 1000,
			     .capacity_vcpus = 100000, .capacity_memory_mb = 100000000};
	silo_error merr;
	manager *m = NULL;
	if (manager_open(&mc, &m, &merr) < 0)
		record(&mgr, OP_CREATE, 0, false, merr.message);
	/* With a pool: wait until it is full (the peers are the cold creates above). */
	for (int i = 0; pool_k && i < 6000; i++) {
		resp pl = {0};
		request(h, "GET", "/v1/pools", NULL, NULL, &pl);
		json_t *pj2 = pl.buf ? json_loads(pl.buf, 0, NULL) : NULL;
		json_int_t ready = json_integer_value(json_object_get(json_array_get(json_object_get(pj2, "pools"), 0), "ready"));
		json_decref(pj2);
		free(pl.buf);
		if (ready >= pool_k)
			break;
		usleep(100000);
	}
	samples floor = {.lock = PTHREAD_MUTEX_INITIALIZER};
	if (timing) {
		health_burst = true;
		run_load(&floor, clients, 1);
		health_burst = false;
	}
	double wall = run_load(&load, clients, rounds), mwall = 0;
	for (int k = 0; k < 2 && m && !pool_k; k++) {
		inproc = m;
		mwall += run_load(&mgr, clients, rounds);
		inproc = NULL;
	}
	if (!pool_k)
		wall += run_load(&load, clients, rounds);

	/* The fork phase: silod, then the manager in this process. */
	json_t *fork_json = NULL;
	unsigned fork_errors = 0;
	if (fork_n) {
		samples si = {.lock = PTHREAD_MUTEX_INITIALIZER}, sb = {.lock = PTHREAD_MUTEX_INITIALIZER};
		samples mi = {.lock = PTHREAD_MUTEX_INITIALIZER}, mb = {.lock = PTHREAD_MUTEX_INITIALIZER};
		bg_load sbg = {.s = {.lock = PTHREAD_MUTEX_INITIALIZER}}, mbg = {.s = {.lock = PTHREAD_MUTEX_INITIALIZER}};
		char src[SILO_ID_MAX];
		if (fork_source(h, src) == 0) {
			fork_phase(h, src, clients, &si, &sb, &sbg);
			delete_one(h, src);
		} else {
			record(&si, OP_FORK, 0, false, "create the fork source through silod");
		}
		inproc = m;
		if (m && fork_source(NULL, src) == 0) {
			fork_phase(NULL, src, clients, &mi, &mb, &mbg);
			delete_one(NULL, src);
		} else {
			record(&mi, OP_FORK, 0, false, "create the fork source in process");
		}
		inproc = NULL;
		json_t *sj = fork_side(&si, &sb, &sbg, &fork_errors), *mj = fork_side(&mi, &mb, &mbg, &fork_errors);
		double s95 = json_real_value(json_object_get(json_object_get(sj, "under_load"), "p95_ms"));
		double m95 = json_real_value(json_object_get(json_object_get(mj, "under_load"), "p95_ms"));
		fork_json = json_pack("{s:i,s:i,s:o,s:o,s:f}", "copies", fork_n, "rounds", fork_rounds, "silod", sj,
				      "peer_in_process", mj, "under_load_p95_ratio", m95 > 0 ? s95 / m95 : 0.0);
	}
	if (m)
		manager_close(m, true);

	/* Nothing may be left: every sandbox was deleted. */
	resp lr = {0};
	request(h, "GET", "/v1/sandboxes", NULL, NULL, &lr);
	json_t *lj = lr.buf ? json_loads(lr.buf, 0, NULL) : NULL;
	size_t left = 0, li;
	json_t *lx;
	json_array_foreach(json_object_get(lj, "sandboxes"), li, lx)   /* the pool's own ones stay */
		left += !pool_k || strcmp(json_string_value(json_object_get(lx, "name")) ?: "", "pooled") != 0;
	json_decref(lj);
	free(lr.buf);

	unsigned errors = 0;
	for (int op = 0; op < OP_HEALTH; op++)
		errors += load.errors[op] + mgr.errors[op];
	double silod_cps = (double)((pool_k ? 1 : 2) * clients * rounds) / (wall / 1000.0);
	double mgr_cps = mwall > 0 ? (double)(2 * clients * rounds) / (mwall / 1000.0) : 0;
	json_t *out = json_pack("{s:s,s:s,s:i,s:i,s:f,s:f,s:o,s:o,s:{s:f,s:f,s:o},s:f,s:i,s:I}", "benchmark",
				"silod_api_load", "provider", provider, "clients", clients, "rounds", rounds, "wall_ms",
				wall, "cycles_per_s", silod_cps, "load", report(&load, true), "peer_single_client",
				report(&solo, true), "peer_in_process", "wall_ms", mwall, "cycles_per_s", mgr_cps,
				"load", report(&mgr, true), "silod_overhead_pct",
				mgr_cps > 0 ? 100.0 * (1.0 - silod_cps / mgr_cps) : 0.0, "errors", (int)errors,
				"sandboxes_left", (json_int_t)left);
	json_object_set_new(out, "warm_pool", json_integer(pool_k));
	if (timing) {
		json_object_set_new(out, "create_server_timing", steps_json());
		json_object_set_new(out, "health_burst",
				    bench_stats_json(floor.v[OP_HEALTH], floor.n[OP_HEALTH], floor.errors[OP_HEALTH]));
		free(floor.v[OP_HEALTH]);
	}
	if (fork_json) {
		json_object_set_new(out, "fork", fork_json);
		json_object_set_new(out, "fork_errors", json_integer(fork_errors));
	}
	bench_print_json(out, 0);
	for (int op = 0; op < OP__N; op++) {
		free(load.v[op]);
		free(solo.v[op]);
		free(mgr.v[op]);
	}
	json_decref(out);
	rc = errors || fork_errors || left ? 1 : 0;
out:
	if (pool_k)
		unlink(pool_path);   /* also when silod or the provider was unavailable */
	curl_easy_cleanup(h);
	bench_silod_stop(pid, tmp);
	return rc;
}
