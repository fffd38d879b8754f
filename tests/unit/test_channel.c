/* SPDX-License-Identifier: Apache-2.0
 * The host channel against the real silo-agent binary on a socketpair
 * (the agent runs as an ordinary child process with --fd).
 */
#include "harness.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sodium.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>

#include "common/util.h"
#include "agent_test.h"
#include "core/channel.h"
#include "gate.h"
#include "proc_status.h"
#include "wire.h"

typedef struct outbuf {
	pthread_mutex_t mu;
	mp_buf out, err;
} outbuf;

static void collect(void *ud, int stream, const void *buf, size_t len)
{
	outbuf *o = ud;
	pthread_mutex_lock(&o->mu);
	mp_put_raw(stream == 1 ? &o->out : &o->err, buf, len);
	pthread_mutex_unlock(&o->mu);
}

static int run(agent_proc *a, char *const *argv, const exec_req *base, outbuf *o, exec_result *res)
{
	exec_req r = base ? *base : (exec_req){.uid = -1, .gid = -1};
	r.argv = argv;
	silo_error err;
	pthread_mutex_init(&o->mu, NULL);
	mp_buf_init(&o->out);
	mp_buf_init(&o->err);
	int rc = chan_exec(a->c, &r, collect, o, res, &err);
	if (rc < 0)
		printf("# exec: %s\n", err.message);
	mp_put_raw(&o->out, "", 1);
	mp_put_raw(&o->err, "", 1);
	return rc;
}

static void outbuf_free(outbuf *o)
{
	mp_buf_free(&o->out);
	mp_buf_free(&o->err);
}

TEST(exec_exit_codes_and_streams)
{
	agent_proc a;
	start(&a, 0);
	outbuf o;
	exec_result res;
	char *argv[] = {"sh", "-c", "echo hi; echo oops >&2; exit 3", NULL};
	REQUIRE(run(&a, argv, NULL, &o, &res) == 0);
	CHECK_STR_EQ((char *)o.out.p, "hi\n");
	CHECK_STR_EQ((char *)o.err.p, "oops\n");
	CHECK_INT_EQ(res.exit_code, 3);
	CHECK_INT_EQ(res.signal, 0);
	outbuf_free(&o);

	char *argv2[] = {"sh", "-c", "kill -TERM $$", NULL};
	REQUIRE(run(&a, argv2, NULL, &o, &res) == 0);
	CHECK_INT_EQ(res.signal, SIGTERM);
	outbuf_free(&o);

	char *argv3[] = {"/no/such/binary", NULL};
	REQUIRE(run(&a, argv3, NULL, &o, &res) == 0);
	CHECK_INT_EQ(res.exit_code, 127);
	CHECK_CONTAINS((char *)o.err.p, "No such file");
	outbuf_free(&o);
	stop(&a);
}

TEST(exec_env_cwd_stdin_timeout)
{
	agent_proc a;
	start(&a, 0);
	outbuf o;
	exec_result res;
	char *env[] = {"FOO=bar baz", NULL};
	exec_req r = {.uid = -1, .gid = -1, .env = env, .cwd = "/tmp", .stdin_data = "from stdin", .stdin_len = 10};
	char *argv[] = {"sh", "-c", "echo \"$FOO\"; pwd; cat", NULL};
	REQUIRE(run(&a, argv, &r, &o, &res) == 0);
	CHECK_STR_EQ((char *)o.out.p, "bar baz\n/tmp\nfrom stdin");
	CHECK_INT_EQ(res.exit_code, 0);
	outbuf_free(&o);

	exec_req t = {.uid = -1, .gid = -1, .timeout_ms = 300};
	char *argv2[] = {"sleep", "10", NULL};
	uint64_t t0 = now_mono_ns();
	REQUIRE(run(&a, argv2, &t, &o, &res) == 0);
	CHECK(res.timed_out);
	CHECK_INT_EQ(res.signal, SIGKILL);
	CHECK((now_mono_ns() - t0) / 1000000 < 5000);
	outbuf_free(&o);

	exec_req bad = {.uid = -1, .gid = -1, .cwd = "/definitely/missing"};
	char *argv3[] = {"true", NULL};
	REQUIRE(run(&a, argv3, &bad, &o, &res) == 0);
	CHECK_INT_EQ(res.exit_code, 126);
	CHECK_CONTAINS((char *)o.err.p, "chdir");
	outbuf_free(&o);
	stop(&a);
}

TEST(exec_stdin_stream_and_signal)
{
	agent_proc a;
	start(&a, 0);
	outbuf o = {.mu = PTHREAD_MUTEX_INITIALIZER};
	mp_buf_init(&o.out);
	mp_buf_init(&o.err);
	char *argv[] = {"sh", "-c", "while read l; do echo \"got $l\"; done", NULL};
	exec_req r = {.argv = argv, .uid = -1, .gid = -1, .stdin_stream = true};
	uint32_t id;
	silo_error err;
	REQUIRE(chan_exec_start(a.c, &r, collect, &o, &id, &err) == 0);
	REQUIRE(chan_exec_stdin(a.c, id, "a\nb\n", 4, false, &err) == 0);
	REQUIRE(chan_exec_stdin(a.c, id, "c\n", 2, true, &err) == 0);
	exec_result res;
	REQUIRE(chan_exec_wait(a.c, id, 10000, &res, &err) == 0);
	mp_put_raw(&o.out, "", 1);
	CHECK_STR_EQ((char *)o.out.p, "got a\ngot b\ngot c\n");
	outbuf_free(&o);

	char *argv2[] = {"sleep", "30", NULL};
	exec_req r2 = {.argv = argv2, .uid = -1, .gid = -1};
	REQUIRE(chan_exec_start(a.c, &r2, NULL, NULL, &id, &err) == 0);
	usleep(100000);
	REQUIRE(chan_exec_signal(a.c, id, SIGINT, &err) == 0);
	REQUIRE(chan_exec_wait(a.c, id, 10000, &res, &err) == 0);
	CHECK_INT_EQ(res.signal, SIGINT);
	stop(&a);
}

TEST(pty_session)
{
	agent_proc a;
	start(&a, 0);
	outbuf o;
	exec_result res;
	exec_req r = {.uid = -1, .gid = -1, .pty = true, .rows = 33, .cols = 101};
	char *argv[] = {"sh", "-c", "test -t 0 && test -t 1 && echo tty-ok; stty size", NULL};
	REQUIRE(run(&a, argv, &r, &o, &res) == 0);
	CHECK_CONTAINS((char *)o.out.p, "tty-ok");
	CHECK_CONTAINS((char *)o.out.p, "33 101");
	CHECK_INT_EQ(res.exit_code, 0);
	outbuf_free(&o);
	stop(&a);
}

TEST(large_output_and_file_round_trip)
{
	agent_proc a;
	start(&a, 0);
	outbuf o;
	exec_result res;
	char *argv[] = {"sh", "-c", "head -c 5000000 /dev/zero", NULL};
	REQUIRE(run(&a, argv, NULL, &o, &res) == 0);
	CHECK_INT_EQ(o.out.len, 5000000 + 1);
	outbuf_free(&o);

	size_t n = 3 * 1024 * 1024 + 12345;
	uint8_t *data = xmalloc(n);
	random_bytes(data, n);
	char path[128];
	snprintf(path, sizeof path, "%s/big.bin", a.dir);
	silo_error err;
	REQUIRE(chan_file_write(a.c, path, data, n, 0600, &err) == 0);
	struct stat st;
	REQUIRE(stat(path, &st) == 0);
	CHECK_INT_EQ(st.st_size, (long long)n);
	CHECK_INT_EQ(st.st_mode & 0777, 0600);
	char *back;
	size_t blen;
	REQUIRE(chan_file_read(a.c, path, 0, &back, &blen, &err) == 0);
	CHECK_INT_EQ(blen, n);
	uint8_t h1[32], h2[32];
	crypto_hash_sha256(h1, data, n);
	crypto_hash_sha256(h2, (uint8_t *)back, blen);
	CHECK(memcmp(h1, h2, 32) == 0);
	free(back);
	/* a limit smaller than the file is an error, not a truncation */
	CHECK(chan_file_read(a.c, path, 1000, &back, &blen, &err) < 0);
	CHECK_INT_EQ(err.sys_errno, EFBIG);
	/* missing file: the agent's errno comes back */
	CHECK(chan_file_read(a.c, "/nonexistent/x", 0, &back, &blen, &err) < 0);
	CHECK_INT_EQ(err.sys_errno, ENOENT);
	CHECK(chan_file_write(a.c, "/nonexistent/dir/x", "a", 1, 0, &err) < 0);
	CHECK_INT_EQ(err.sys_errno, ENOENT);
	free(data);
	stop(&a);
}

TEST(stat_list_mkdir_remove)
{
	agent_proc a;
	start(&a, 0);
	silo_error err;
	char p[256];
	snprintf(p, sizeof p, "%s/x/y/z", a.dir);
	CHECK(chan_mkdir(a.c, p, 0700, false, &err) < 0);
	REQUIRE(chan_mkdir(a.c, p, 0700, true, &err) == 0);
	file_stat st;
	REQUIRE(chan_stat(a.c, p, &st, &err) == 0);
	CHECK(st.exists && S_ISDIR(st.mode));
	for (int i = 0; i < 300; i++) {
		char f[300];
		snprintf(f, sizeof f, "%s/x/f%03d", a.dir, i);
		REQUIRE(chan_file_write(a.c, f, "data", 4, 0, &err) == 0);
	}
	snprintf(p, sizeof p, "%s/x", a.dir);
	dir_entry *e;
	size_t n;
	REQUIRE(chan_list(a.c, p, &e, &n, &err) == 0);
	CHECK_INT_EQ(n, 301); /* 300 files + y, across several list frames */
	size_t files = 0;
	for (size_t i = 0; i < n; i++)
		if (S_ISREG(e[i].st.mode) && e[i].st.size == 4)
			files++;
	CHECK_INT_EQ(files, 300);
	dir_entries_free(e, n);
	CHECK(chan_remove(a.c, p, false, &err) < 0);
	CHECK_INT_EQ(err.sys_errno, ENOTEMPTY);
	REQUIRE(chan_remove(a.c, p, true, &err) == 0);
	REQUIRE(chan_stat(a.c, p, &st, &err) == 0);
	CHECK(!st.exists);
	stop(&a);
}

typedef struct conc_arg {
	agent_proc *a;
	int idx;
	int ok;
} conc_arg;

static void *conc_worker(void *p)
{
	conc_arg *ca = p;
	for (int k = 0; k < 4; k++) {
		char script[128], expect[64];
		snprintf(script, sizeof script, "sleep 0.0$((RANDOM %% 5)); echo task-%d-%d", ca->idx, k);
		snprintf(expect, sizeof expect, "task-%d-%d\n", ca->idx, k);
		char *argv[] = {"sh", "-c", script, NULL};
		outbuf o;
		exec_result res;
		if (run(ca->a, argv, NULL, &o, &res) == 0 && res.exit_code == 0 && !strcmp((char *)o.out.p, expect))
			ca->ok++;
		outbuf_free(&o);
	}
	return NULL;
}

TEST(concurrent_tasks_match_ids)
{
	agent_proc a;
	start(&a, 0);
	enum { K = 32 };
	pthread_t th[K];
	conc_arg args[K];
	for (int i = 0; i < K; i++) {
		args[i] = (conc_arg){.a = &a, .idx = i};
		pthread_create(&th[i], NULL, conc_worker, &args[i]);
	}
	int ok = 0;
	for (int i = 0; i < K; i++) {
		pthread_join(th[i], NULL);
		ok += args[i].ok;
	}
	CHECK_INT_EQ(ok, K * 4);
	stop(&a);
}

TEST(heartbeat_detects_frozen_agent)
{
	agent_proc a;
	start(&a, 100);
	silo_error err;
	REQUIRE(chan_ping(a.c, 2000, &err) == 0);
	CHECK(chan_is_connected(a.c));
	kill(a.pid, SIGSTOP);
	uint64_t t0 = now_mono_ns();
	while (chan_is_connected(a.c) && now_mono_ns() - t0 < 3000000000ull)
		usleep(10000);
	uint64_t ms = (now_mono_ns() - t0) / 1000000;
	CHECK(!chan_is_connected(a.c));
	CHECK(ms >= 200 && ms < 1500);
	char *argv[] = {"true", NULL};
	exec_req r = {.argv = argv, .uid = -1, .gid = -1};
	exec_result res;
	CHECK(chan_exec(a.c, &r, NULL, NULL, &res, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_VSOCK_DISCONNECTED);
	kill(a.pid, SIGCONT);
	stop(&a);
}

/* A hostile "agent": scripted bytes instead of the real agent. */
typedef struct hostile {
	int fd;
	const uint8_t *bytes;
	size_t len;
} hostile;

static void *hostile_main(void *p)
{
	hostile *h = p;
	uint8_t buf[4096];
	(void)!read(h->fd, buf, sizeof buf); /* the hello */
	write_all(h->fd, h->bytes, h->len);
	usleep(300000);
	close(h->fd);
	return NULL;
}

static int open_against(const uint8_t *bytes, size_t len, silo_error *err, chan **out)
{
	int sv[2];
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	hostile h = {.fd = sv[1], .bytes = bytes, .len = len};
	pthread_t th;
	pthread_create(&th, NULL, hostile_main, &h);
	chan_opts o = {.vm_id = "evil", .handshake_timeout_ms = 2000};
	*out = chan_open(sv[0], &o, NULL, err);
	pthread_join(th, NULL);
	return *out ? 0 : -1;
}

TEST(hostile_handshakes_are_rejected)
{
	silo_error err;
	chan *c;
	/* length prefix far beyond the limit */
	static const uint8_t huge[] = {0x7f, 0xff, 0xff, 0xff, 0x80};
	CHECK(open_against(huge, sizeof huge, &err, &c) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_PROTOCOL);
	CHECK_CONTAINS(err.message, "frame length");
	/* a map claiming 2^32-1 entries in a 6-byte frame */
	static const uint8_t bigmap[] = {0, 0, 0, 6, 0xdf, 0xff, 0xff, 0xff, 0xff, 0x00};
	CHECK(open_against(bigmap, sizeof bigmap, &err, &c) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_PROTOCOL);
	/* a string length past the end of the frame */
	static const uint8_t badstr[] = {0, 0, 0, 4, 0x81, 0xdb, 0x7f, 0xff};
	CHECK(open_against(badstr, sizeof badstr, &err, &c) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_PROTOCOL);
	/* silence, then close */
	CHECK(open_against(NULL, 0, &err, &c) < 0);
	CHECK(err.code == SILO_ERR_VSOCK_DISCONNECTED || err.code == SILO_ERR_TIMEOUT);
}

static int violations;
static void on_violation(void *ud, const char *what)
{
	(void)ud;
	(void)what;
	violations++;
}

TEST(hostile_frames_after_handshake_close_the_channel)
{
	/* A valid hello_ok followed by an exec request (agents never send those). */
	mp_buf b;
	mp_buf_init(&b);
	wire_msg ok = {.type = WM_HELLO_OK, .id = 0, .present = WF_V, .v = WIRE_VERSION};
	REQUIRE(wire_encode(&b, &ok));
	char *argv[] = {"x", NULL};
	wire_msg bad = {.type = WM_EXEC, .id = 1, .present = WF_ARGV, .argv = argv, .argc = 1};
	REQUIRE(wire_encode(&b, &bad));
	int sv[2];
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	hostile h = {.fd = sv[1], .bytes = b.p, .len = b.len};
	pthread_t th;
	pthread_create(&th, NULL, hostile_main, &h);
	silo_error err;
	chan_opts o = {.vm_id = "evil", .on_violation = on_violation};
	chan *c = chan_open(sv[0], &o, NULL, &err);
	REQUIRE(c);
	uint64_t t0 = now_mono_ns();
	while (chan_is_connected(c) && now_mono_ns() - t0 < 2000000000ull)
		usleep(5000);
	CHECK(!chan_is_connected(c));
	for (int i = 0; i < 200 && violations < 1; i++) /* the callback runs on the reader thread */
		usleep(5000);
	CHECK_INT_EQ(violations, 1);
	file_stat st;
	CHECK(chan_stat(c, "/", &st, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_PROTOCOL);
	pthread_join(th, NULL);
	chan_close(c);
	mp_buf_free(&b);
}



typedef struct slow_sink {
	uint64_t bytes;
	int calls;
	bool bad;
} slow_sink;

static void slow_collect(void *ud, int stream, const void *buf, size_t len)
{
	slow_sink *k = ud;
	const uint8_t *p = buf;
	for (size_t i = 0; i < len; i++) /* `tr` output: 'x' everywhere */
		if (p[i] != 'x')
			k->bad = true;
	k->bytes += len;
	if (stream != 1)
		k->bad = true;
	if (k->calls++ < 40)
		usleep(25000); /* a host that cannot keep up for ~1 s */
}

TEST(flooding_process_is_throttled_not_buffered)
{
	agent_proc a;
	start(&a, 0);
	slow_sink k = {0};
	/* 48 MiB as fast as the pipe takes it, then exit at once: nothing may be lost
	 * while the host is slow, and the agent must not buffer it all. */
	char *argv[] = {"sh", "-c", "head -c 50331648 /dev/zero | tr '\\0' x", NULL};
	exec_req r = {.argv = argv, .uid = -1, .gid = -1};
	exec_result res;
	silo_error err;
	REQUIRE(chan_exec(a.c, &r, slow_collect, &k, &res, &err) == 0);
	CHECK_INT_EQ(res.exit_code, 0);
	CHECK_INT_EQ(k.bytes, 50331648ull);
	CHECK(!k.bad);
	long hwm = proc_status_kib(a.pid, "VmHWM");
	printf("# agent peak RSS %ld KiB for 48 MiB of output\n", hwm);
	CHECK(hwm > 0 && hwm < 16 * 1024);
	stop(&a);
}

/* ---- flow control (docs/protocol.md "Flow control") ---- */

typedef struct gated_sink {
	gate g;
	uint64_t bytes;
	bool bad;
} gated_sink;

/* An output consumer that stops dead on its first call until the gate opens. */
static void gated_count(void *ud, int stream, const void *buf, size_t len)
{
	gated_sink *k = ud;
	gate_pass(&k->g);
	k->bytes += len;
	if (stream != 1 || ((const char *)buf)[0] != '\0' || ((const char *)buf)[len - 1] != '\0')
		k->bad = true;
}

typedef struct bg_exec {
	chan *c;
	exec_req req;
	chan_output_cb cb;
	void *ud;
	exec_result res;
	int rc;
	silo_error err;
} bg_exec;

static void *bg_exec_main(void *p)
{
	bg_exec *b = p;
	b->rc = chan_exec(b->c, &b->req, b->cb, b->ud, &b->res, &b->err);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

TEST(stalled_consumer_does_not_stall_other_tasks)
{
	agent_proc a;
	start(&a, 200); /* heartbeats on: the channel must stay alive while one consumer is stuck */
	gated_sink g = {.g = GATE_INIT};
	char *argv[] = {"head", "-c", "67108864", "/dev/zero", NULL};
	bg_exec b = {.c = a.c, .req = {.argv = argv, .uid = -1, .gid = -1}, .cb = gated_count, .ud = &g};
	pthread_t th;
	REQUIRE(pthread_create(&th, NULL, bg_exec_main, &b) == 0);
	gate_wait_entered(&g.g);
	/* 64 MiB task stalled in its consumer: other tasks, file ops and pings go on. */
	enum { RUNS = 20 };
	uint64_t rtt[RUNS];
	int done = 0;
	char *t_argv[] = {"true", NULL};
	exec_req t = {.argv = t_argv, .uid = -1, .gid = -1};
	for (int i = 0; i < RUNS; i++) {
		uint64_t t0 = now_mono_ns();
		uint32_t id;
		exec_result res;
		silo_error err;
		if (chan_exec_start(a.c, &t, NULL, NULL, &id, &err) < 0 || chan_exec_wait(a.c, id, 5000, &res, &err) < 0) {
			printf("# true #%d: %s\n", i, err.message);
			break;
		}
		rtt[done++] = now_mono_ns() - t0;
	}
	CHECK_INT_EQ(done, RUNS);
	if (done) {
		qsort(rtt, (size_t)done, sizeof rtt[0], cmp_u64);
		printf("# exec(true) round trip while a 64 MiB task is stalled: p50 %.2f ms, max %.2f ms (n=%d)\n",
		       rtt[done / 2] / 1e6, rtt[done - 1] / 1e6, done);
	}
	silo_error err;
	file_stat st;
	CHECK(chan_stat(a.c, "/", &st, &err) == 0);
	CHECK(chan_ping(a.c, 2000, &err) == 0);
	usleep(700000); /* > 3 heartbeat intervals */
	CHECK(chan_is_connected(a.c));
	/* The stalled task got no further than its window: the rest waits in the process's pipe. */
	uint64_t rx;
	chan_stats(a.c, NULL, &rx);
	printf("# bytes received while stalled: %llu\n", (unsigned long long)rx);
	CHECK(rx < 4u * 1024 * 1024);
	long hwm = proc_status_kib(a.pid, "VmHWM");
	printf("# agent peak RSS %ld KiB\n", hwm);
	CHECK(hwm > 0 && hwm < 16 * 1024);
	gate_open(&g.g);
	pthread_join(th, NULL);
	CHECK_INT_EQ(b.rc, 0);
	CHECK_INT_EQ(b.res.exit_code, 0);
	CHECK_INT_EQ(g.bytes, 67108864);
	CHECK(!g.bad);
	stop(&a);
}

static void count_bytes(void *ud, int stream, const void *buf, size_t len)
{
	(void)stream;
	(void)buf;
	*(uint64_t *)ud += len;
}

TEST(unread_output_blocks_the_process)
{
	agent_proc a;
	start(&a, 0);
	/* Nobody waits for this task for a second: its output must stay in the guest. */
	char *argv[] = {"sh", "-c", "head -c 33554432 /dev/zero; echo done >&2", NULL};
	exec_req r = {.argv = argv, .uid = -1, .gid = -1};
	uint64_t got = 0;
	uint32_t id;
	silo_error err;
	REQUIRE(chan_exec_start(a.c, &r, count_bytes, &got, &id, &err) == 0);
	usleep(1000000);
	uint64_t rx;
	chan_stats(a.c, NULL, &rx);
	printf("# bytes received from a task nobody reads: %llu\n", (unsigned long long)rx);
	CHECK(rx < 4u * 1024 * 1024);
	CHECK_INT_EQ(got, 0);
	exec_result res;
	REQUIRE(chan_exec_wait(a.c, id, 30000, &res, &err) == 0);
	CHECK_INT_EQ(res.exit_code, 0);
	CHECK_INT_EQ(got, 33554432 + 5);
	stop(&a);
}

typedef struct feeder {
	chan *c;
	uint32_t id;
	size_t total, chunk;
	int rc;
	silo_error err;
} feeder;

static void *feeder_main(void *p)
{
	feeder *f = p;
	uint8_t *buf = xcalloc(1, f->chunk);
	f->rc = 0;
	for (size_t sent = 0; sent < f->total && f->rc == 0; sent += f->chunk)
		f->rc = chan_exec_stdin(f->c, f->id, buf, f->chunk, sent + f->chunk >= f->total, &f->err);
	free(buf);
	return NULL;
}

TEST(stdin_is_flow_controlled)
{
	agent_proc a;
	start(&a, 0);
	/* A fast writer into a process that reads nothing for 2 s: the writer waits,
	 * the agent does not buffer; then every byte arrives. */
	outbuf o = {.mu = PTHREAD_MUTEX_INITIALIZER};
	mp_buf_init(&o.out);
	mp_buf_init(&o.err);
	char *argv[] = {"sh", "-c", "sleep 2; wc -c", NULL};
	exec_req r = {.argv = argv, .uid = -1, .gid = -1, .stdin_stream = true};
	silo_error err;
	feeder f = {.c = a.c, .total = 64u << 20, .chunk = 1u << 20};
	REQUIRE(chan_exec_start(a.c, &r, collect, &o, &f.id, &err) == 0);
	pthread_t th;
	REQUIRE(pthread_create(&th, NULL, feeder_main, &f) == 0);
	usleep(1000000);
	uint64_t tx;
	chan_stats(a.c, &tx, NULL);
	long rss = proc_status_kib(a.pid, "VmRSS");
	printf("# after 1 s of a stalled reader: %llu bytes sent, agent RSS %ld KiB\n", (unsigned long long)tx, rss);
	CHECK(tx < 4u * 1024 * 1024);
	CHECK(rss > 0 && rss < 16 * 1024);
	pthread_join(th, NULL);
	if (f.rc < 0)
		printf("# stdin: %s\n", f.err.message);
	CHECK_INT_EQ(f.rc, 0);
	exec_result res;
	REQUIRE(chan_exec_wait(a.c, f.id, 30000, &res, &err) == 0);
	mp_put_raw(&o.out, "", 1);
	CHECK_STR_EQ((char *)o.out.p, "67108864\n");
	CHECK_INT_EQ(proc_status_kib(a.pid, "VmHWM") < 16 * 1024, 1);
	outbuf_free(&o);

	/* A process that never reads stdin and exits: the writer is released, not hung. */
	char *argv2[] = {"sleep", "0.3", NULL};
	exec_req r2 = {.argv = argv2, .uid = -1, .gid = -1, .stdin_stream = true};
	feeder f2 = {.c = a.c, .total = 8u << 20, .chunk = 1u << 20};
	REQUIRE(chan_exec_start(a.c, &r2, NULL, NULL, &f2.id, &err) == 0);
	uint64_t t0 = now_mono_ns();
	REQUIRE(pthread_create(&th, NULL, feeder_main, &f2) == 0);
	pthread_join(th, NULL);
	printf("# writer into a non-reading process returned after %.0f ms: %s\n", (now_mono_ns() - t0) / 1e6,
	       f2.rc ? f2.err.message : "ok");
	CHECK(now_mono_ns() - t0 < 5000000000ull);
	CHECK(f2.rc == 0 || f2.err.sys_errno == ESRCH);
	REQUIRE(chan_exec_wait(a.c, f2.id, 10000, &res, &err) == 0);
	CHECK_INT_EQ(res.exit_code, 0);
	stop(&a);
}

TEST(big_stdin_through_cat_round_trips)
{
	agent_proc a;
	start(&a, 0);
	/* cat writes back what it reads: stdin and output flow at once, neither may wedge the other. */
	size_t n = 16u << 20;
	uint8_t *data = xmalloc(n);
	random_bytes(data, n);
	outbuf o;
	exec_result res;
	exec_req r = {.uid = -1, .gid = -1, .stdin_data = data, .stdin_len = n};
	char *argv[] = {"cat", NULL};
	REQUIRE(run(&a, argv, &r, &o, &res) == 0);
	CHECK_INT_EQ(res.exit_code, 0);
	CHECK_INT_EQ(o.out.len, n + 1);
	CHECK(o.out.len == n + 1 && memcmp(o.out.p, data, n) == 0);
	outbuf_free(&o);
	free(data);
	stop(&a);
}

TEST(exec_as_another_user_drops_groups)
{
	if (geteuid() != 0)
		SKIP("needs root to change uid/gid");
	agent_proc a;
	start(&a, 0);
	outbuf o;
	exec_result res;
	char *argv[] = {"sh", "-c", "id -u; id -g; id -G", NULL};
	exec_req r = {.uid = 65534, .gid = 65534};
	REQUIRE(run(&a, argv, &r, &o, &res) == 0);
	CHECK_INT_EQ(res.exit_code, 0);
	CHECK_STR_EQ((char *)o.out.p, "65534\n65534\n65534\n");
	outbuf_free(&o);
	stop(&a);
}

/* ---- raw protocol against the real agent (no chan in between) ---- */

static void raw_send(int fd, const wire_msg *m)
{
	mp_buf b;
	mp_buf_init(&b);
	REQUIRE(wire_encode(&b, m));
	REQUIRE(write_all(fd, b.p, b.len) == 0);
	mp_buf_free(&b);
}

/* Read one frame (blocking, 5 s cap); false on EOF. Caller frees *m and *payload. */
static bool raw_recv(int fd, wire_msg *m, uint8_t **payload)
{
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	uint8_t hdr[4];
	size_t got = 0;
	while (got < 4) {
		ssize_t n = read(fd, hdr + got, 4 - got);
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	uint32_t len;
	REQUIRE(wire_frame_len(hdr, &len));
	*payload = xmalloc(len);
	for (got = 0; got < len;) {
		ssize_t n = read(fd, *payload + got, len - got);
		REQUIRE(n > 0);
		got += (size_t)n;
	}
	char err[128];
	bool ok = wire_decode(*payload, len, m, err, sizeof err);
	if (!ok)
		printf("# decode: %s\n", err);
	REQUIRE(ok);
	return true;
}

static pid_t raw_agent(int *fd)
{
	int sv[2];
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	REQUIRE(fcntl(sv[1], F_SETFD, 0) == 0);
	pid_t pid = spawn_agent(sv[1]);
	REQUIRE(pid > 0);
	close(sv[1]);
	*fd = sv[0];
	return pid;
}

/* Dead (or a zombie awaiting its new parent) within ms. */
static bool process_gone(pid_t pid, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		char p[64], buf[256] = "";
		snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
		FILE *f = fopen(p, "r");
		if (!f)
			return true;
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[n] = '\0';
		char *rp = strrchr(buf, ')');
		if (rp && rp[1] == ' ' && rp[2] == 'Z')
			return true;
		usleep(10000);
	}
	return false;
}

static void expect_clean_exit(pid_t pid)
{
	int st;
	REQUIRE(waitpid(pid, &st, 0) == pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

TEST(version_mismatch_is_a_clear_error)
{
	int fd;
	pid_t pid = raw_agent(&fd);
	wire_msg hello = {.type = WM_HELLO, .present = WF_V, .v = WIRE_VERSION + 1};
	raw_send(fd, &hello);
	wire_msg m;
	uint8_t *p = NULL;
	REQUIRE(raw_recv(fd, &m, &p));
	CHECK_INT_EQ(m.type, WM_ERROR);
	CHECK_INT_EQ(m.code, EPROTONOSUPPORT);
	char want[96];
	snprintf(want, sizeof want, "protocol version %d not supported (agent speaks %d)", WIRE_VERSION + 1, WIRE_VERSION);
	CHECK_CONTAINS(m.msg, want);
	wire_msg_free(&m);
	free(p);
	CHECK(!raw_recv(fd, &m, &p)); /* then it hangs up */
	close(fd);
	expect_clean_exit(pid);

	/* Anything but hello first is refused the same way. */
	pid = raw_agent(&fd);
	wire_msg ping = {.type = WM_PING};
	raw_send(fd, &ping);
	REQUIRE(raw_recv(fd, &m, &p));
	CHECK_INT_EQ(m.type, WM_ERROR);
	CHECK_INT_EQ(m.code, EPROTO);
	CHECK_CONTAINS(m.msg, "expected hello, got ping");
	wire_msg_free(&m);
	free(p);
	close(fd);
	expect_clean_exit(pid);
}

/* A raw session with the real agent: hello, then exec argv as task 1 with win. */
static pid_t raw_session(int *fd, char **argv, uint32_t argc, uint32_t win, bool stdin_stream)
{
	pid_t pid = raw_agent(fd);
	wire_msg hello = {.type = WM_HELLO, .present = WF_V, .v = WIRE_VERSION};
	raw_send(*fd, &hello);
	wire_msg m;
	uint8_t *p = NULL;
	REQUIRE(raw_recv(*fd, &m, &p));
	REQUIRE(m.type == WM_HELLO_OK);
	wire_msg_free(&m);
	free(p);
	wire_msg ex = {.type = WM_EXEC, .id = 1, .present = WF_ARGV | WF_WIN | WF_FLAG, .argv = argv, .argc = argc,
		       .win = win, .flag = stdin_stream};
	raw_send(*fd, &ex);
	return pid;
}

/* Frames until an error with id 0 (returned, caller frees) or EOF (false). */
static bool raw_until_error(int fd, wire_msg *m)
{
	uint8_t *p = NULL;
	while (raw_recv(fd, m, &p)) {
		free(p);
		if (m->type == WM_ERROR && m->id == 0)
			return true;
		wire_msg_free(m);
	}
	return false;
}

TEST(agent_refuses_a_host_beyond_its_windows)
{
	/* Output credit beyond the window the host itself chose. */
	int fd;
	char *sleep_argv[] = {"sleep", "5", NULL};
	pid_t pid = raw_session(&fd, sleep_argv, 2, WIRE_MIN_WINDOW, false);
	wire_msg cr = {.type = WM_CREDIT, .id = 1, .present = WF_N, .n = 1};
	raw_send(fd, &cr);
	wire_msg m;
	REQUIRE(raw_until_error(fd, &m));
	printf("# %s\n", m.msg);
	CHECK_INT_EQ(m.code, EPROTO);
	CHECK_CONTAINS(m.msg, "exceeds its window");
	wire_msg_free(&m);
	uint8_t *p = NULL;
	CHECK(!raw_recv(fd, &m, &p)); /* then it hangs up */
	close(fd);
	expect_clean_exit(pid);

	/* Stdin past the stdin window, to a process that reads nothing: the whole
	 * window, then what the agent credits back (the pipe buffer), then 1 byte. */
	pid = raw_session(&fd, sleep_argv, 2, WIRE_WINDOW, true);
	static uint8_t chunk[WIRE_STDIN_WINDOW + 1];
	wire_msg in = {.type = WM_STDIN, .id = 1, .present = WF_DATA, .data = chunk, .data_len = WIRE_STDIN_WINDOW};
	raw_send(fd, &in);
	uint32_t credit = 0;
	struct pollfd pf = {.fd = fd, .events = POLLIN};
	while (poll(&pf, 1, 300) == 1) {
		uint8_t *q = NULL;
		REQUIRE(raw_recv(fd, &m, &q));
		if (m.type == WM_CREDIT && m.id == 1)
			credit += m.n;
		wire_msg_free(&m);
		free(q);
	}
	printf("# credited back while the process reads nothing: %u bytes\n", credit);
	CHECK(credit < WIRE_STDIN_WINDOW);
	in.data_len = credit + 1;
	raw_send(fd, &in);
	REQUIRE(raw_until_error(fd, &m));
	printf("# %s\n", m.msg);
	CHECK_INT_EQ(m.code, EPROTO);
	CHECK_CONTAINS(m.msg, "stdin of");
	wire_msg_free(&m);
	close(fd);
	expect_clean_exit(pid);

	/* A window out of range is refused for that task only. */
	pid = raw_session(&fd, sleep_argv, 2, WIRE_MAX_WINDOW + 1, false);
	uint8_t *pp = NULL;
	REQUIRE(raw_recv(fd, &m, &pp));
	CHECK_INT_EQ(m.type, WM_ERROR);
	CHECK_INT_EQ(m.id, 1);
	CHECK_CONTAINS(m.msg, "win must be");
	wire_msg_free(&m);
	free(pp);
	close(fd);
	expect_clean_exit(pid);
}

TEST(agent_survives_hostile_host_bytes)
{
	static const struct {
		const char *name;
		uint8_t bytes[16];
		size_t len;
		int code;
		const char *msg;
	} cases[] = {
		{"oversized length", {0x7f, 0xff, 0xff, 0xff, 0x80}, 5, EMSGSIZE, "frame length must be"},
		{"zero length", {0, 0, 0, 0}, 4, EMSGSIZE, "frame length must be"},
		{"map count beyond the frame", {0, 0, 0, 6, 0xdf, 0xff, 0xff, 0xff, 0xff, 0}, 10, EBADMSG, "map too large"},
		{"not a map", {0, 0, 0, 1, 0x93}, 5, EBADMSG, "malformed frame"},
		{"string past the end", {0, 0, 0, 4, 0x81, 0xdb, 0x7f, 0xff}, 8, EBADMSG, "malformed frame"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int fd;
		pid_t pid = raw_agent(&fd);
		REQUIRE(write_all(fd, cases[i].bytes, cases[i].len) == 0);
		wire_msg m;
		uint8_t *p = NULL;
		REQUIRE(raw_recv(fd, &m, &p));
		printf("# %s: %s\n", cases[i].name, m.msg ? m.msg : "?");
		CHECK_INT_EQ(m.type, WM_ERROR);
		CHECK_INT_EQ(m.code, cases[i].code);
		CHECK_CONTAINS(m.msg, cases[i].msg);
		wire_msg_free(&m);
		free(p);
		close(fd);
		expect_clean_exit(pid); /* dropped the connection, did not crash */
	}
}

TEST(second_hello_resyncs_the_session)
{
	int fd;
	pid_t pid = raw_agent(&fd);
	char dir[] = "/tmp/silo-resync-XXXXXX";
	REQUIRE(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof path, "%s/half", dir);
	wire_msg hello = {.type = WM_HELLO, .present = WF_V, .v = WIRE_VERSION};
	raw_send(fd, &hello);
	wire_msg m;
	uint8_t *p = NULL;
	REQUIRE(raw_recv(fd, &m, &p));
	CHECK_INT_EQ(m.type, WM_HELLO_OK);
	wire_msg_free(&m);
	free(p);
	/* Session 1 leaves a file transfer and a running task (id 1) behind. */
	wire_msg fw = {.type = WM_FWRITE, .id = 1, .present = WF_PATH | WF_DATA | WF_FLAG, .path = path,
		       .data = (const uint8_t *)"abc", .data_len = 3, .flag = true};
	raw_send(fd, &fw);
	char *argv[] = {"sleep", "30", NULL};
	wire_msg ex = {.type = WM_EXEC, .id = 2, .present = WF_ARGV, .argv = argv, .argc = 2};
	raw_send(fd, &ex);
	REQUIRE(raw_recv(fd, &m, &p));
	CHECK_INT_EQ(m.type, WM_STARTED);
	CHECK_INT_EQ(m.id, 2);
	pid_t sleeper = (pid_t)m.pid;
	wire_msg_free(&m);
	free(p);
	/* chan_open's hello starts session 2 on the same stream; ids 1 and 2 are free again. */
	chan_opts o = {.vm_id = "resync"};
	agent_info info;
	silo_error err;
	chan *c = chan_open(fd, &o, &info, &err);
	if (!c)
		printf("# chan_open: %s\n", err.message);
	REQUIRE(c);
	CHECK_INT_EQ(info.pid, pid);
	char *echo[] = {"echo", "again", NULL};
	exec_req r = {.argv = echo, .uid = -1, .gid = -1};
	exec_result res;
	uint32_t id1, id2;
	CHECK(chan_exec_start(c, &r, NULL, NULL, &id1, &err) == 0);
	CHECK(chan_exec_start(c, &r, NULL, NULL, &id2, &err) == 0);
	CHECK(id1 == 1 && id2 == 2);
	CHECK(chan_exec_wait(c, id1, 5000, &res, &err) == 0);
	CHECK_INT_EQ(res.exit_code, 0);
	CHECK(chan_exec_wait(c, id2, 5000, &res, &err) == 0);
	CHECK_INT_EQ(res.exit_code, 0);
	CHECK(kill(sleeper, 0) == 0); /* the orphaned task still runs */
	chan_close(c);
	expect_clean_exit(pid);
	CHECK(process_gone(sleeper, 3000)); /* and dies with the agent */
	rm_rf(dir);
}

TEST(listen_fd_serves_successive_connections)
{
	char dir[] = "/tmp/silo-listen-XXXXXX";
	REQUIRE(mkdtemp(dir));
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s/agent.sock", dir);
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	REQUIRE(lfd >= 0);
	REQUIRE(bind(lfd, (struct sockaddr *)&sa, sizeof sa) == 0);
	REQUIRE(listen(lfd, 4) == 0);
	silo_error err;
	pid_t pid = spawn_agent_on("--listen-fd", lfd);
	REQUIRE(pid > 0);
	close(lfd);
	for (int round = 0; round < 3; round++) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		REQUIRE(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
		chan_opts o = {.vm_id = "listen", .heartbeat_ms = 200};
		agent_info info;
		chan *c = chan_open(fd, &o, &info, &err);
		if (!c)
			printf("# round %d: chan_open: %s\n", round, err.message);
		REQUIRE(c);
		CHECK_INT_EQ(info.pid, pid);
		/* a task left running when this connection closes must not block id 1 next time */
		char *argv[] = {"sh", "-c", "sleep 20", NULL};
		exec_req bg = {.argv = argv, .uid = -1, .gid = -1};
		uint32_t id;
		CHECK(chan_exec_start(c, &bg, NULL, NULL, &id, &err) == 0);
		CHECK_INT_EQ(id, 1);
		char out[32];
		snprintf(out, sizeof out, "round %d", round);
		char *echo[] = {"echo", out, NULL};
		outbuf ob;
		exec_result res;
		agent_proc ap = {.c = c};
		REQUIRE(run(&ap, echo, NULL, &ob, &res) == 0);
		char want[40];
		snprintf(want, sizeof want, "%s\n", out);
		CHECK_STR_EQ((char *)ob.out.p, want);
		outbuf_free(&ob);
		chan_close(c);
	}
	/* Still alive between connections; SIGTERM ends it (and its orphans). */
	CHECK(kill(pid, 0) == 0);
	kill(pid, SIGTERM);
	expect_clean_exit(pid);
	rm_rf(dir);
}

TEST(shutdown_ends_the_agent)
{
	agent_proc a;
	start(&a, 0);
	silo_error err;
	CHECK(chan_shutdown(a.c, &err) == 0);
	stop(&a);
}


TEST(device_mode_over_a_tty_resyncs_per_host_connection)
{
	/* --device with a PTY standing in for the virtio-serial port: the host
	 * side (master) reconnects twice without the agent seeing a hangup. */
	int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	REQUIRE(master >= 0);
	REQUIRE(grantpt(master) == 0 && unlockpt(master) == 0);
	struct termios tio;
	REQUIRE(tcgetattr(master, &tio) == 0);
	cfmakeraw(&tio);
	REQUIRE(tcsetattr(master, TCSANOW, &tio) == 0);
	char path[4096], dev[64];
	snprintf(dev, sizeof dev, "%s", ptsname(master));
	silo_error err;
	REQUIRE(find_helper_binary("silo-agent", path, sizeof path, &err) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		execl(path, "silo-agent", "--device", dev, (char *)NULL);
		_exit(127);
	}
	REQUIRE(pid > 0);
	for (int round = 0; round < 2; round++) {
		chan_opts o = {.vm_id = "tty", .handshake_timeout_ms = 3000};
		agent_info info;
		chan *c = chan_open(fcntl(master, F_DUPFD_CLOEXEC, 3), &o, &info, &err);
		if (!c)
			printf("# round %d: %s\n", round, err.message);
		REQUIRE(c);
		CHECK_INT_EQ(info.pid, pid);
		char *argv[] = {"sh", "-c", "printf 'a\\r\\nb\\0c'; exit 4", NULL};
		agent_proc ap = {.c = c};
		outbuf ob;
		exec_result res;
		REQUIRE(run(&ap, argv, NULL, &ob, &res) == 0);
		CHECK_INT_EQ(res.exit_code, 4);
		CHECK_INT_EQ(ob.out.len, 6 + 1);
		CHECK(memcmp(ob.out.p, "a\r\nb\0c", 6) == 0); /* binary-clean: raw mode */
		outbuf_free(&ob);
		chan_close(c);
	}
	kill(pid, SIGTERM);
	expect_clean_exit(pid);
	close(master);
}


/* An agent reached again after a host restart (chan_opts.resync): the first
 * hello is lost (the guest drops what reaches a closed port) or answered with
 * an error (it arrived behind the rest of an old frame). Scripted agent: the
 * first hello gets `first` (nothing, or error EBADMSG), every later one hello_ok;
 * then pings are answered until the host hangs up. */
typedef struct resync_agent {
	int fd;
	bool first_error;
	int hellos;
} resync_agent;

static void *resync_agent_main(void *p)
{
	resync_agent *a = p;
	wire_msg m;
	uint8_t *pl;
	while (raw_recv(a->fd, &m, &pl)) {
		if (m.type == WM_HELLO && a->hellos++ == 0) {
			if (a->first_error)
				raw_send(a->fd, &(wire_msg){.type = WM_ERROR, .id = 0, .present = WF_CODE | WF_MSG,
							    .code = EBADMSG, .msg = "malformed frame: x"});
		} else if (m.type == WM_HELLO) {
			raw_send(a->fd, &(wire_msg){.type = WM_HELLO_OK, .id = 0, .present = WF_V | WF_PID,
						    .v = WIRE_VERSION, .pid = 77});
		} else if (m.type == WM_PING) {
			raw_send(a->fd, &(wire_msg){.type = WM_PONG, .id = m.id});
		}
		wire_msg_free(&m);
		free(pl);
	}
	return NULL;
}

static chan *open_resync(bool first_error, bool resync, silo_error *err, int *hellos)
{
	int sv[2];
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	resync_agent a = {.fd = sv[1], .first_error = first_error};
	pthread_t th;
	pthread_create(&th, NULL, resync_agent_main, &a);
	chan_opts o = {.vm_id = "again", .handshake_timeout_ms = 2000, .resync = resync,
		       .on_violation = on_violation};
	agent_info info;
	chan *c = chan_open(sv[0], &o, &info, err);
	if (c) {
		CHECK_INT_EQ(info.pid, 77);
		usleep(700 * 1000);   /* a spare hello_ok may follow: it is not a violation */
		CHECK_INT_EQ(chan_ping(c, 2000, err), 0);
		CHECK(chan_is_connected(c));
		chan_close(c);
	}
	shutdown(sv[1], SHUT_RDWR);
	pthread_join(th, NULL);
	close(sv[1]);
	*hellos = a.hellos;
	return c;
}

TEST(reconnect_resync_repeats_the_hello)
{
	silo_error err;
	int hellos;
	violations = 0;
	CHECK(open_resync(false, true, &err, &hellos) != NULL);
	CHECK(hellos >= 2);
	CHECK(open_resync(true, true, &err, &hellos) != NULL);
	CHECK_INT_EQ(violations, 0);
	/* a fresh boot keeps the strict handshake: one hello, errors are final */
	CHECK(open_resync(false, false, &err, &hellos) == NULL);
	CHECK_INT_EQ(err.code, SILO_ERR_TIMEOUT);
	CHECK_INT_EQ(hellos, 1);
	CHECK(open_resync(true, false, &err, &hellos) == NULL);
	CHECK_INT_EQ(err.code, SILO_ERR_PROTOCOL);
}

static int disconnects;
static void on_disconnect(void *ud)
{
	(void)ud;
	disconnects++;
}

static bool out_contains(outbuf *o, const char *needle)
{
	pthread_mutex_lock(&o->mu);
	bool found = o->out.len && memmem(o->out.p, o->out.len, needle, strlen(needle));
	pthread_mutex_unlock(&o->mu);
	return found;
}

/* Output reaches the callback only while someone drives the task: wait 10 ms
 * at a time (the task keeps running) until needle shows up. */
static bool wait_for_output(chan *c, uint32_t id, outbuf *o, const char *needle)
{
	for (int i = 0; i < 500; i++) {
		if (out_contains(o, needle))
			return true;
		silo_error err;
		if (chan_exec_wait(c, id, 10, NULL, &err) == 0 || err.code != SILO_ERR_TIMEOUT)
			return out_contains(o, needle);
	}
	return false;
}

TEST(agent_death_fails_pending_operations)
{
	int sv[2];
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	set_cloexec(sv[0], true);
	pid_t pid = spawn_agent(sv[1]);
	REQUIRE(pid > 0);
	close(sv[1]);
	chan_opts o = {.vm_id = "dying", .heartbeat_ms = 0, .on_disconnect = on_disconnect,
		       .on_violation = on_violation};
	silo_error err;
	chan *c = chan_open(sv[0], &o, NULL, &err);
	REQUIRE(c);
	outbuf ob;
	pthread_mutex_init(&ob.mu, NULL);
	mp_buf_init(&ob.out);
	mp_buf_init(&ob.err);
	char *argv[] = {"sh", "-c", "echo $$; exec sleep 30", NULL};
	exec_req r = {.argv = argv, .uid = -1, .gid = -1};
	uint32_t id;
	REQUIRE(chan_exec_start(c, &r, collect, &ob, &id, &err) == 0);
	wait_for_output(c, id, &ob, "\n");
	pthread_mutex_lock(&ob.mu);
	mp_put_raw(&ob.out, "", 1);
	pid_t sleeper = (pid_t)atoi((char *)ob.out.p);
	pthread_mutex_unlock(&ob.mu);
	REQUIRE(sleeper > 1);
	int before = violations;
	kill(pid, SIGKILL);
	exec_result res;
	CHECK(chan_exec_wait(c, id, 5000, &res, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_VSOCK_DISCONNECTED);
	CHECK(!chan_is_connected(c));
	CHECK(chan_ping(c, 1000, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_VSOCK_DISCONNECTED);
	for (int i = 0; i < 200 && disconnects < 1; i++) /* the callback runs on the reader thread */
		usleep(5000);
	CHECK_INT_EQ(disconnects, 1);
	CHECK_INT_EQ(violations, before); /* a hangup is not a protocol violation */
	chan_close(c);
	CHECK_INT_EQ(disconnects, 1); /* once, not again on close */
	kill(sleeper, SIGKILL); /* SIGKILLed agents cannot clean up; a VM would be torn down */
	waitpid(pid, NULL, 0);
	outbuf_free(&ob);
}

TEST(hostname_in_a_uts_namespace)
{
	if (geteuid() != 0)
		SKIP("needs root for a UTS namespace");
	int sv[2];
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	set_cloexec(sv[0], true);
	char path[4096];
	silo_error err;
	REQUIRE(find_helper_binary("silo-agent", path, sizeof path, &err) == 0);
	pid_t pid = fork();
	if (pid == 0) {
		if (unshare(CLONE_NEWUTS) < 0)
			_exit(126);
		char fdstr[16];
		snprintf(fdstr, sizeof fdstr, "%d", sv[1]);
		execl(path, "silo-agent", "--hostname", "silo-test-box", "--fd", fdstr, (char *)NULL);
		_exit(127);
	}
	REQUIRE(pid > 0);
	close(sv[1]);
	chan_opts o = {.vm_id = "uts"};
	agent_proc a = {.pid = pid};
	a.c = chan_open(sv[0], &o, NULL, &err);
	if (!a.c)
		printf("# %s\n", err.message);
	REQUIRE(a.c);
	char *argv[] = {"uname", "-n", NULL};
	outbuf ob;
	exec_result res;
	REQUIRE(run(&a, argv, NULL, &ob, &res) == 0);
	CHECK_STR_EQ((char *)ob.out.p, "silo-test-box\n");
	outbuf_free(&ob);
	char host[256];
	gethostname(host, sizeof host);
	CHECK(strcmp(host, "silo-test-box") != 0); /* ours is untouched */
	chan_close(a.c);
	expect_clean_exit(pid);
}


TEST(interactive_pty_with_resize)
{
	agent_proc a;
	start(&a, 0);
	outbuf o;
	pthread_mutex_init(&o.mu, NULL);
	mp_buf_init(&o.out);
	mp_buf_init(&o.err);
	char *argv[] = {"sh", NULL};
	exec_req r = {.argv = argv, .uid = -1, .gid = -1, .pty = true, .rows = 33, .cols = 101, .stdin_stream = true,
		      .env = (char *[]){"PS1=", NULL}};
	silo_error err;
	uint32_t id;
	REQUIRE(chan_exec_start(a.c, &r, collect, &o, &id, &err) == 0);
	const char *l1 = "echo size=$(stty size)\n";
	REQUIRE(chan_exec_stdin(a.c, id, l1, strlen(l1), false, &err) == 0);
	CHECK(wait_for_output(a.c, id, &o, "size=33 101"));
	REQUIRE(chan_exec_resize(a.c, id, 50, 132, &err) == 0);
	const char *l2 = "echo size=$(stty size); exit 7\n";
	REQUIRE(chan_exec_stdin(a.c, id, l2, strlen(l2), false, &err) == 0);
	exec_result res;
	REQUIRE(chan_exec_wait(a.c, id, 10000, &res, &err) == 0);
	CHECK_INT_EQ(res.exit_code, 7);
	CHECK(out_contains(&o, "size=50 132"));
	/* a finished task cannot be resized or signalled */
	CHECK(chan_exec_resize(a.c, id, 10, 10, &err) < 0);
	outbuf_free(&o);
	stop(&a);
}

static int sha_of_fd(int fd, uint8_t out[32])
{
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	uint8_t buf[65536];
	lseek(fd, 0, SEEK_SET);
	ssize_t n;
	while ((n = read(fd, buf, sizeof buf)) > 0)
		crypto_hash_sha256_update(&st, buf, (size_t)n);
	crypto_hash_sha256_final(&st, out);
	return n < 0 ? -1 : 0;
}

TEST(streamed_file_transfer_between_fds)
{
	agent_proc a;
	start(&a, 0);
	char src[128], dst[128], guest[128];
	snprintf(src, sizeof src, "%s/src", a.dir);
	snprintf(dst, sizeof dst, "%s/dst", a.dir);
	snprintf(guest, sizeof guest, "%s/in-guest.bin", a.dir);
	int sfd = open(src, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	REQUIRE(sfd >= 0);
	size_t total = 9 * 1024 * 1024 + 777; /* not a multiple of the 256 KiB chunk */
	uint8_t *buf = xmalloc(1 << 20);
	for (size_t left = total; left;) {
		size_t k = left < (1u << 20) ? left : (1u << 20);
		random_bytes(buf, k);
		REQUIRE(write_all(sfd, buf, k) == 0);
		left -= k;
	}
	free(buf);
	lseek(sfd, 0, SEEK_SET);
	silo_error err;
	REQUIRE(chan_file_write_fd(a.c, guest, sfd, 0640, &err) == 0);
	int dfd = open(dst, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	REQUIRE(dfd >= 0);
	REQUIRE(chan_file_read_fd(a.c, guest, dfd, 0, &err) == 0);
	struct stat st;
	REQUIRE(fstat(dfd, &st) == 0);
	CHECK_INT_EQ(st.st_size, (long long)total);
	uint8_t h1[32], h2[32];
	REQUIRE(sha_of_fd(sfd, h1) == 0 && sha_of_fd(dfd, h2) == 0);
	CHECK(memcmp(h1, h2, 32) == 0);
	file_stat fs;
	REQUIRE(chan_stat(a.c, guest, &fs, &err) == 0);
	CHECK(fs.exists && fs.size == total && (fs.mode & 0777) == 0640);
	/* max_bytes below the size: an error, and dst gets no more than max */
	REQUIRE(ftruncate(dfd, 0) == 0);
	lseek(dfd, 0, SEEK_SET);
	CHECK(chan_file_read_fd(a.c, guest, dfd, 1 << 20, &err) < 0);
	CHECK_INT_EQ(err.sys_errno, EFBIG);
	REQUIRE(fstat(dfd, &st) == 0);
	CHECK(st.st_size <= (1 << 20));
	close(sfd);
	close(dfd);
	stop(&a);
}

TEST_MAIN(exec_exit_codes_and_streams, exec_env_cwd_stdin_timeout, exec_stdin_stream_and_signal, pty_session,
	  large_output_and_file_round_trip, stat_list_mkdir_remove, concurrent_tasks_match_ids,
	  heartbeat_detects_frozen_agent, hostile_handshakes_are_rejected,
	  hostile_frames_after_handshake_close_the_channel, version_mismatch_is_a_clear_error,
	  agent_survives_hostile_host_bytes, second_hello_resyncs_the_session,
	  listen_fd_serves_successive_connections, shutdown_ends_the_agent,
	  flooding_process_is_throttled_not_buffered, exec_as_another_user_drops_groups,
	  device_mode_over_a_tty_resyncs_per_host_connection, reconnect_resync_repeats_the_hello,
	  agent_death_fails_pending_operations,
	  hostname_in_a_uts_namespace, interactive_pty_with_resize, streamed_file_transfer_between_fds,
	  stalled_consumer_does_not_stall_other_tasks, unread_output_blocks_the_process, stdin_is_flow_controlled,
	  big_stdin_through_cat_round_trips, agent_refuses_a_host_beyond_its_windows)
