/* SPDX-License-Identifier: Apache-2.0
 * The process table (lib/core/proc.c) over a channel to the real silo-agent:
 * background output kept until read (and the exit status known before it is
 * read), the bounded buffer (a process nobody reads blocks; nothing dropped),
 * several readers (same bytes, the slowest sets the pace, a late one starts at
 * the oldest byte held), stdin, signals, PTY resize, handles/pids/tags, a
 * session killed with its last reader, and the record limit.
 */
#include <pthread.h>
#include <sodium.h>

#include "agent_test.h"
#include "core/proc.h"

static proc *start_proc(proc_table *t, char **argv, const exec_req *base, const proc_opts *o)
{
	exec_req r = base ? *base : (exec_req){0};
	r.argv = argv;
	r.uid = r.gid = -1;
	proc *p = NULL;
	silo_error err = {0};
	if (proc_start(t, &r, o, &p, &err) < 0)
		printf("# proc_start: %s\n", err.message);
	REQUIRE(p);
	return p;
}

/* Read r to the end, handing each chunk (at most chunk bytes) to fn and sleeping delay_us
 * after each; the number of stdout bytes read. */
static size_t read_each(proc_reader *r, size_t chunk, int delay_us, void (*fn)(void *, int, const char *, size_t),
			void *ud)
{
	char buf[8192];
	REQUIRE(chunk <= sizeof buf);
	size_t n = 0;
	for (;;) {
		int stream;
		silo_error err;
		ssize_t k = proc_read(r, &stream, buf, chunk, 10000, &err);
		if (k < 0)
			printf("# proc_read: %s\n", err.message);
		if (k <= 0)
			break;
		if (stream == 1)
			n += (size_t)k;
		fn(ud, stream, buf, (size_t)k);
		if (delay_us)
			usleep((useconds_t)delay_us);
	}
	return n;
}

typedef struct text {
	char *out, *err;   /* stdout, stderr; either may be NULL (not kept) */
	size_t cap, ecap, n, en;
} text;

static void keep_text(void *ud, int stream, const char *buf, size_t k)
{
	text *t = ud;
	char *dst = stream == 1 ? t->out : t->err;
	size_t *len = stream == 1 ? &t->n : &t->en, cap = stream == 1 ? t->cap : t->ecap;
	if (!dst || !cap)
		return;
	size_t take = MIN(k, cap - 1 - *len);
	memcpy(dst + *len, buf, take);
	*len += take;
	dst[*len] = '\0';
}

/* Attach to p and read it to the end: stdout into out, stderr into errb (each NUL-terminated,
 * truncated at its size; either may be NULL); the number of stdout bytes read. */
static size_t read_text(proc *p, char *out, size_t cap, char *errb, size_t ecap)
{
	proc_reader *r = proc_attach(p);
	text t = {.out = out, .err = errb, .cap = cap, .ecap = ecap};
	if (out && cap)
		out[0] = '\0';
	if (errb && ecap)
		errb[0] = '\0';
	size_t n = read_each(r, 8192, 0, keep_text, &t);
	proc_detach(r);
	return n;
}

/* The agent and a process table on its channel; proc_down ends both. */
static proc_table *proc_up(agent_proc *a)
{
	start(a, 0);
	return proc_table_new(a->c, "test");
}

static void proc_down(agent_proc *a, proc_table *t)
{
	proc_table_free(t, true);
	stop(a);
}

TEST(background_output_is_kept_until_read)
{
	agent_proc a;
	proc_table *t = proc_up(&a);
	char *argv[] = {"sh", "-c", "echo one; echo two >&2; sleep 0.2; echo three; exit 5", NULL};
	proc *p = start_proc(t, argv, NULL, NULL);
	CHECK_STR_EQ(proc_id(p), "p1");
	exec_result res;
	silo_error err = {0};
	CHECK_INT_EQ(proc_wait(p, 5000, &res, &err), 0);   /* the status, before anyone read */
	CHECK_INT_EQ(res.exit_code, 5);
	proc_info i;
	proc_info_of(p, &i);
	CHECK(i.exited && i.pid > 0 && !i.pty && !i.session);
	CHECK_STR_EQ(i.argv[0], "sh");
	proc_info_free(&i);
	char out[64], eb[64];
	read_text(p, out, sizeof out, eb, sizeof eb);
	CHECK_STR_EQ(out, "one\nthree\n");
	CHECK_STR_EQ(eb, "two\n");
	/* still listed (background), found by handle and by pid */
	proc *q = proc_find(t, "p1", &err);
	CHECK(q == p);
	proc_put(q);
	char pid[16];
	snprintf(pid, sizeof pid, "%u", i.pid);
	q = proc_find(t, pid, &err);
	CHECK(q == p);
	proc_put(q);
	CHECK(proc_find(t, "p9", &err) == NULL);
	CHECK_INT_EQ(err.code, SILO_ERR_PROCESS_NOT_FOUND);
	proc_remove(p);
	CHECK(proc_find(t, "p1", &err) == NULL);
	proc_put(p);
	proc_down(&a, t);
}

TEST(a_process_nobody_reads_blocks_and_loses_nothing)
{
	agent_proc a;
	proc_table *t = proc_up(&a);
	char *argv[] = {"sh", "-c", "head -c 20000000 /dev/zero; echo done", NULL};
	exec_req base = {.window = 64 * 1024};
	proc *p = start_proc(t, argv, &base, NULL);
	exec_result res;
	silo_error err = {0};
	usleep(500 * 1000);
	CHECK_INT_EQ(proc_wait(p, 500, &res, &err), -1);   /* blocked in write(2), not finished */
	CHECK_INT_EQ(err.code, SILO_ERR_TIMEOUT);
	proc_info i;
	proc_info_of(p, &i);
	CHECK(!i.exited);
	CHECK_INT_EQ(i.buffered, 0);   /* nothing taken from the channel without a reader */
	proc_info_free(&i);
	proc_reader *r = proc_attach(p);
	/* a slow start: the buffer never holds more than PROC_BUF */
	char buf[4096];
	int stream;
	uint64_t max_held = 0;
	for (int k = 0; k < 50; k++) {
		CHECK(proc_read(r, &stream, buf, sizeof buf, 5000, &err) > 0);
		usleep(2000);
		proc_info_of(p, &i);
		max_held = MAX(max_held, i.buffered);
		proc_info_free(&i);
	}
	printf("# most output held while a reader lagged: %llu bytes (bound %u)\n", (unsigned long long)max_held,
	       PROC_BUF);
	CHECK(max_held <= PROC_BUF);
	size_t n = 50 * 4096 + read_each(r, 8192, 0, keep_text, &(text){0});
	CHECK_INT_EQ(n, 20000005);
	CHECK_INT_EQ(proc_wait(p, 5000, &res, &err), 0);
	CHECK_INT_EQ(res.exit_code, 0);
	proc_detach(r);
	proc_put(p);
	proc_down(&a, t);
}

typedef struct rd {
	proc *p;
	int delay_us;
	size_t n;
	unsigned char sum[32];
} rd;

static void hash_chunk(void *ud, int stream, const char *buf, size_t k)
{
	(void)stream;
	crypto_hash_sha256_update(ud, (const unsigned char *)buf, k);
}

static void *reader_main(void *arg)
{
	rd *x = arg;
	proc_reader *r = proc_attach(x->p);
	crypto_hash_sha256_state h;
	crypto_hash_sha256_init(&h);
	x->n = read_each(r, 7000, x->delay_us, hash_chunk, &h);
	crypto_hash_sha256_final(&h, x->sum);
	proc_detach(r);
	return NULL;
}

TEST(several_readers_get_the_same_bytes)
{
	agent_proc a;
	proc_table *t = proc_up(&a);
	char *argv[] = {"seq", "1", "300000", NULL};
	proc *p = start_proc(t, argv, NULL, NULL);
	rd fast = {p, 0, 0, {0}}, slow = {p, 200, 0, {0}};
	pthread_t a1, a2;
	/* both attach before anything is read: both see everything */
	proc_reader *hold = proc_attach(p);
	REQUIRE(pthread_create(&a1, NULL, reader_main, &fast) == 0);
	REQUIRE(pthread_create(&a2, NULL, reader_main, &slow) == 0);
	usleep(100 * 1000);
	proc_detach(hold);
	pthread_join(a1, NULL);
	pthread_join(a2, NULL);
	printf("# fast %zu bytes, slow %zu bytes\n", fast.n, slow.n);
	CHECK_INT_EQ(fast.n, 1988895);   /* seq 1 300000 | wc -c */
	CHECK_INT_EQ(slow.n, fast.n);
	CHECK(memcmp(fast.sum, slow.sum, 32) == 0);
	proc_put(p);
	proc_down(&a, t);
}

TEST(stdin_signal_resize_tags)
{
	agent_proc a;
	proc_table *t = proc_up(&a);
	silo_error err = {0};
	char *cat[] = {"cat", NULL};
	exec_req in = {.stdin_stream = true};
	proc_opts tagged = {.tag = "my-cat"};
	proc *p = start_proc(t, cat, &in, &tagged);
	CHECK(proc_find(t, "my-cat", &err) == p);
	proc_put(p);
	proc *dup = NULL;
	exec_req r2 = {.argv = cat, .uid = -1, .gid = -1, .stdin_stream = true};
	CHECK_INT_EQ(proc_start(t, &r2, &tagged, &dup, &err), -1);
	CHECK_INT_EQ(err.code, SILO_ERR_CONFLICT);
	proc_opts bad = {.tag = "p12"};
	CHECK_INT_EQ(proc_start(t, &r2, &bad, &dup, &err), -1);
	CHECK_INT_EQ(err.code, SILO_ERR_INVALID_CONFIG);
	size_t taken;
	CHECK_INT_EQ(proc_stdin(p, "hello\n", 6, true, 5000, &taken, &err), 0);
	CHECK_INT_EQ(taken, 6);
	char out[32];
	read_text(p, out, sizeof out, NULL, 0);
	CHECK_STR_EQ(out, "hello\n");
	CHECK_INT_EQ(proc_stdin(p, "x", 1, false, 1000, &taken, &err), -1);   /* it has exited */
	proc_put(p);
	/* a process that never reads stdin: the writer times out with what went in */
	char *sleeper[] = {"sleep", "30", NULL};
	p = start_proc(t, sleeper, &in, NULL);
	static char big[1 << 20];
	CHECK_INT_EQ(proc_stdin(p, big, sizeof big, false, 500, &taken, &err), -1);
	CHECK_INT_EQ(err.code, SILO_ERR_TIMEOUT);
	printf("# a process that does not read took %zu bytes of 1 MiB (stdin window + pipe)\n", taken);
	CHECK(taken > 0 && taken < sizeof big);
	CHECK_INT_EQ(proc_signal(p, 15, &err), 0);
	exec_result res;
	CHECK_INT_EQ(proc_wait(p, 5000, &res, &err), 0);
	CHECK_INT_EQ(res.signal, 15);
	CHECK_INT_EQ(proc_signal(p, 15, &err), -1);
	proc_put(p);
	/* PTY: resize shows in stty size */
	char *sh[] = {"sh", "-c", "read x; stty size", NULL};
	exec_req pty = {.pty = true, .rows = 24, .cols = 80, .stdin_stream = true};
	p = start_proc(t, sh, &pty, NULL);
	CHECK_INT_EQ(proc_resize(p, 50, 132, &err), 0);
	CHECK_INT_EQ(proc_stdin(p, "\n", 1, false, 5000, NULL, &err), 0);
	char tty[256];
	read_text(p, tty, sizeof tty, NULL, 0);
	CHECK_CONTAINS(tty, "50 132");
	CHECK_INT_EQ(proc_signal_number("TERM"), 15);
	CHECK_INT_EQ(proc_signal_number("SIGKILL"), 9);
	CHECK_INT_EQ(proc_signal_number("hup"), 1);
	CHECK_INT_EQ(proc_signal_number("99"), 0);
	CHECK_INT_EQ(proc_signal_number("NOPE"), 0);
	proc_put(p);
	proc_down(&a, t);
}

TEST(a_session_dies_with_its_last_reader)
{
	agent_proc a;
	proc_table *t = proc_up(&a);
	char *argv[] = {"sleep", "60", NULL};
	proc_opts s = {.session = true};
	proc *p = start_proc(t, argv, NULL, &s);
	proc_reader *r1 = proc_attach(p), *r2 = proc_attach(p);
	proc_detach(r1);
	proc_info i;
	proc_info_of(p, &i);
	CHECK(!i.exited);
	proc_info_free(&i);
	proc_detach(r2);   /* the last one: killed and forgotten */
	exec_result res;
	silo_error err;
	CHECK_INT_EQ(proc_wait(p, 5000, &res, &err), 0);
	CHECK_INT_EQ(res.signal, 9);
	proc_info *v;
	size_t n;
	proc_list(t, &v, &n);
	CHECK_INT_EQ(n, 0);
	proc_list_free(v, n);
	proc_put(p);
	proc_down(&a, t);
}

TEST(records_are_bounded)
{
	agent_proc a;
	proc_table *t = proc_up(&a);
	char *argv[] = {"echo", "x", NULL};
	silo_error err = {0};
	for (int i = 0; i < PROC_MAX; i++) {
		proc *p = start_proc(t, argv, NULL, NULL);
		proc_put(p);
	}
	/* all hold unread output: no room */
	exec_req r = {.argv = argv, .uid = -1, .gid = -1};
	proc *p = NULL;
	CHECK_INT_EQ(proc_start(t, &r, NULL, &p, &err), -1);
	CHECK_INT_EQ(err.code, SILO_ERR_RESOURCE_EXCEEDED);
	/* read the first one to the end: it makes room */
	p = proc_find(t, "p1", &err);
	REQUIRE(p);
	read_text(p, NULL, 0, NULL, 0);
	proc_put(p);
	CHECK_INT_EQ(proc_start(t, &r, NULL, &p, &err), 0);
	CHECK_STR_EQ(proc_id(p), "p257");
	proc_put(p);
	CHECK(proc_find(t, "p1", &err) == NULL);
	proc_down(&a, t);
}

TEST_MAIN(background_output_is_kept_until_read, a_process_nobody_reads_blocks_and_loses_nothing,
	  several_readers_get_the_same_bytes, stdin_signal_resize_tags, a_session_dies_with_its_last_reader,
	  records_are_bounded)
