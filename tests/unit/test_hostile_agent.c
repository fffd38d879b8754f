/* SPDX-License-Identifier: Apache-2.0
 * The host side of the agent channel against a scripted hostile agent that
 * completes the handshake and answers heartbeats, then misbehaves per request:
 * never answers, trickles data past the limit, floods output (within its
 * credit, or ignoring the window), grants stdin credit it was never owed,
 * answers with the wrong message type, sends oversized chunks, bad exit codes,
 * or directory entries that try to escape, or speaks an older protocol; and
 * for protocol v4: watch events naming "../", absolute or empty paths, a
 * flood of watch events nobody takes, listings past their max, names deeper
 * than the depth asked for, a listing of gigabytes of names, events for a
 * task that is no watch, started twice. Each: a clear error, no hang, no
 * crash, host memory bounded by the window (or the queue bound).
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "common/util.h"
#include "core/channel.h"
#include "harness.h"
#include "proc_status.h"
#include "wire.h"

typedef enum behaviour {
	B_SILENT,        /* answer nothing but pings */
	B_TRICKLE,       /* FREAD: endless 64 KiB chunks, never eof */
	B_FLOOD,         /* EXEC: 64 MiB of output in max-size chunks as credit allows, then exit 0 */
	B_OVERRUN,       /* EXEC: output past the window without waiting for credit */
	B_STDIN_CREDIT,  /* EXEC: grants stdin credit beyond the stdin window */
	B_OLD_AGENT,     /* HELLO: refuses like a version-1 agent */
	B_OLD_HELLO_OK,  /* HELLO: answers hello_ok with version 1 */
	B_WRONG_TYPE,    /* STAT: answer with LIST_R */
	B_BIG_CHUNK,     /* EXEC: one output chunk larger than WIRE_CHUNK */
	B_BAD_EXIT,      /* EXEC: exit code 999 and no signal */
	B_EVIL_ENTRIES,  /* LIST: an entry named "../../etc" */
	B_EVIL_WATCH,    /* WATCH: ok, then an event named "../../etc/shadow" */
	B_ABS_WATCH,     /* WATCH: ok, then an event named "/etc/shadow" */
	B_WATCH_FLOOD,   /* WATCH: ok, then 200000 valid events at once */
	B_STRAY_EVENTS,  /* STAT: a watch event for the stat task */
	B_DEEP_NAMES,    /* LIST (depth 1): an entry "a/b" */
	B_LIST_PAST_MAX, /* LIST: more entries than its max */
	B_HUGE_LIST,     /* LIST: 2048-entry frames of 250-byte names, 1000 of them */
	B_TWO_STARTS,    /* EXEC: started twice */
} behaviour;

typedef struct fake {
	int fd;
	behaviour b;
	volatile int stop;
} fake;

static int send_msg(int fd, const wire_msg *m)
{
	mp_buf b;
	mp_buf_init(&b);
	if (!wire_encode(&b, m)) {
		mp_buf_free(&b);
		return -1;
	}
	int rc = write_all(fd, b.p, b.len);
	mp_buf_free(&b);
	return rc;
}

/* Encode a frame without the encoder's own limits (for oversized chunks). */
static int send_output_raw(int fd, uint32_t id, size_t n)
{
	mp_buf b;
	mp_buf_init(&b);
	uint8_t *data = xcalloc(1, n);
	wire_msg m = {.type = WM_OUTPUT, .id = id, .present = WF_STREAM | WF_DATA, .stream = 1, .data = data,
		      .data_len = n};
	bool ok = wire_encode(&b, &m);
	free(data);
	int rc = ok ? write_all(fd, b.p, b.len) : -1;
	mp_buf_free(&b);
	return rc;
}

static int read_msg(int fd, wire_msg *m, uint8_t *buf)
{
	uint8_t hdr[4];
	uint32_t len;
	if (read_exact(fd, hdr, 4) != 0 || !wire_frame_len(hdr, &len) || read_exact(fd, buf, len) != 0)
		return -1;
	char why[128];
	memset(m, 0, sizeof *m);
	if (!wire_decode(buf, len, m, why, sizeof why)) {
		wire_msg_free(m);
		return -1;
	}
	return 0;
}

#define FLOOD_BYTES (64ull << 20)

/* Send FLOOD_BYTES of output for task id, never more than the host granted:
 * out of credit, read frames (credit, pings) until more arrives. */
static void flood_within_credit(fake *f, uint32_t id, uint64_t credit, uint8_t *buf)
{
	static uint8_t chunk[WIRE_CHUNK];
	memset(chunk, 'x', sizeof chunk);
	uint64_t left = FLOOD_BYTES;
	while (left && !f->stop) {
		if (credit == 0) {
			wire_msg m;
			if (read_msg(f->fd, &m, buf) < 0)
				return;
			if (m.type == WM_CREDIT && m.id == id)
				credit += m.n;
			else if (m.type == WM_PING) {
				wire_msg pong = {.type = WM_PONG, .id = m.id, .present = WF_MS, .ms = m.ms};
				send_msg(f->fd, &pong);
			}
			wire_msg_free(&m);
			continue;
		}
		size_t n = (size_t)MIN(MIN(credit, left), (uint64_t)WIRE_CHUNK);
		wire_msg o = {.type = WM_OUTPUT, .id = id, .present = WF_STREAM | WF_DATA, .stream = 1, .data = chunk,
			      .data_len = n};
		if (send_msg(f->fd, &o) < 0)
			return;
		credit -= n;
		left -= n;
	}
	wire_msg x = {.type = WM_EXIT, .id = id, .present = WF_CODE | WF_MS, .code = 0, .ms = 1};
	send_msg(f->fd, &x);
}

static void *fake_main(void *p)
{
	fake *f = p;
	uint8_t *buf = xmalloc(WIRE_MAX_FRAME + 4);
	wire_msg m;
	while (!f->stop && read_msg(f->fd, &m, buf) == 0) {
		uint32_t id = m.id;
		uint32_t type = m.type;
		uint64_t ms = m.ms;
		uint32_t win = (m.present & WF_WIN) ? m.win : 0;
		wire_msg_free(&m);
		if (type == WM_HELLO && f->b == B_OLD_AGENT) {
			wire_msg e = {.type = WM_ERROR, .present = WF_CODE | WF_MSG, .code = EPROTONOSUPPORT,
				      .msg = "protocol version 2 not supported (agent speaks 1)"};
			send_msg(f->fd, &e);
		} else if (type == WM_HELLO && f->b == B_OLD_HELLO_OK) {
			wire_msg ok = {.type = WM_HELLO_OK, .present = WF_V | WF_AGENT | WF_KERNEL | WF_PID, .v = 1,
				       .agent = "old", .kernel = "0", .pid = 1};
			send_msg(f->fd, &ok);
		} else if (type == WM_HELLO) {
			wire_msg ok = {.type = WM_HELLO_OK, .present = WF_V | WF_AGENT | WF_KERNEL | WF_PID, .v = WIRE_VERSION,
				       .agent = "evil", .kernel = "0", .pid = 1};
			send_msg(f->fd, &ok);
		} else if (type == WM_PING) {
			wire_msg pong = {.type = WM_PONG, .id = id, .present = WF_MS, .ms = ms};
			send_msg(f->fd, &pong);
		} else if (f->b == B_TRICKLE && type == WM_FREAD) {
			static uint8_t chunk[64 * 1024];
			wire_msg d = {.type = WM_FDATA, .id = id, .present = WF_DATA, .data = chunk, .data_len = sizeof chunk};
			for (int i = 0; i < 4096 && !f->stop; i++)
				if (send_msg(f->fd, &d) < 0)
					break;
		} else if (type == WM_EXEC && (f->b == B_FLOOD || f->b == B_OVERRUN || f->b == B_STDIN_CREDIT ||
					       f->b == B_BIG_CHUNK || f->b == B_BAD_EXIT)) {
			wire_msg st = {.type = WM_STARTED, .id = id, .present = WF_PID, .pid = 2};
			send_msg(f->fd, &st);
			if (f->b == B_FLOOD) {
				flood_within_credit(f, id, win, buf);
			} else if (f->b == B_OVERRUN) {
				/* the whole window, then one byte more, without waiting for credit */
				static uint8_t chunk[WIRE_CHUNK];
				for (uint64_t left = (uint64_t)win + 1; left;) {
					size_t n = (size_t)MIN(left, (uint64_t)WIRE_CHUNK);
					wire_msg o = {.type = WM_OUTPUT, .id = id, .present = WF_STREAM | WF_DATA, .stream = 1,
						      .data = chunk, .data_len = n};
					if (send_msg(f->fd, &o) < 0)
						break;
					left -= n;
				}
			} else if (f->b == B_STDIN_CREDIT) {
				/* the host already holds the whole stdin window: any credit is too much */
				wire_msg cr = {.type = WM_CREDIT, .id = id, .present = WF_N, .n = 1};
				send_msg(f->fd, &cr);
			} else if (f->b == B_BIG_CHUNK) {
				send_output_raw(f->fd, id, WIRE_CHUNK + 1);
			} else {
				wire_msg x = {.type = WM_EXIT, .id = id, .present = WF_CODE, .code = 999};
				send_msg(f->fd, &x);
			}
		} else if (f->b == B_WRONG_TYPE && type == WM_STAT) {
			wire_msg l = {.type = WM_LIST_R, .id = id, .present = WF_EOF, .eof = true};
			send_msg(f->fd, &l);
		} else if (f->b == B_EVIL_ENTRIES && type == WM_LIST) {
			wire_dirent e = {.name = "../../etc", .size = 1, .mode = 0100644};
			wire_msg l = {.type = WM_LIST_R, .id = id, .present = WF_ENTS | WF_EOF, .ents = &e, .n_ents = 1,
				      .eof = true};
			send_msg(f->fd, &l);
		} else if ((f->b == B_EVIL_WATCH || f->b == B_ABS_WATCH || f->b == B_WATCH_FLOOD) && type == WM_WATCH) {
			wire_msg ok = {.type = WM_OK, .id = id};
			send_msg(f->fd, &ok);
			if (f->b == B_WATCH_FLOOD) {
				static wire_event evs[WIRE_MAX_EVS];
				for (uint32_t i = 0; i < WIRE_MAX_EVS; i++)
					evs[i] = (wire_event){.kind = WEV_CREATE, .name = "some/file/name"};
				wire_msg w = {.type = WM_WATCH_EV, .id = id, .present = WF_EVS, .evs = evs, .n_evs = WIRE_MAX_EVS};
				for (int i = 0; i < 200000 / WIRE_MAX_EVS && !f->stop; i++)
					if (send_msg(f->fd, &w) < 0)
						break;
			} else {
				wire_event ev = {.kind = WEV_WRITE, .name = f->b == B_EVIL_WATCH ? "../../etc/shadow" : "/etc/shadow"};
				wire_msg w = {.type = WM_WATCH_EV, .id = id, .present = WF_EVS, .evs = &ev, .n_evs = 1};
				send_msg(f->fd, &w);
			}
		} else if (f->b == B_STRAY_EVENTS && type == WM_STAT) {
			wire_event ev = {.kind = WEV_CREATE, .name = "x"};
			wire_msg w = {.type = WM_WATCH_EV, .id = id, .present = WF_EVS, .evs = &ev, .n_evs = 1};
			send_msg(f->fd, &w);
		} else if ((f->b == B_DEEP_NAMES || f->b == B_LIST_PAST_MAX) && type == WM_LIST) {
			wire_dirent e[3] = {{.name = "a/b", .mode = 0100644}, {.name = "x", .mode = 0100644},
					    {.name = "y", .mode = 0100644}};
			wire_msg l = {.type = WM_LIST_R, .id = id, .present = WF_ENTS | WF_EOF, .ents = f->b == B_DEEP_NAMES ? e : e + 1,
				      .n_ents = f->b == B_DEEP_NAMES ? 1 : 2, .eof = true};
			send_msg(f->fd, &l);
		} else if (f->b == B_HUGE_LIST && type == WM_LIST) {
			static wire_dirent ents[2048];
			static char name[251];
			memset(name, 'n', 250);
			for (int i = 0; i < 2048; i++)
				ents[i] = (wire_dirent){.name = name, .mode = 0100644};
			wire_msg l = {.type = WM_LIST_R, .id = id, .present = WF_ENTS, .ents = ents, .n_ents = 2048};
			for (int i = 0; i < 1000 && !f->stop; i++)   /* ~500 MB of names, unless the host stops taking them */
				if (send_msg(f->fd, &l) < 0)
					break;
		} else if (f->b == B_TWO_STARTS && type == WM_EXEC) {
			wire_msg st = {.type = WM_STARTED, .id = id, .present = WF_PID, .pid = 2};
			send_msg(f->fd, &st);
			send_msg(f->fd, &st);
		}
		/* B_SILENT and everything else: no answer */
	}
	free(buf);
	return NULL;
}

static int violations;
static char last_violation[256];
static void on_violation(void *ud, const char *what)
{
	violations++;
	snprintf(last_violation, sizeof last_violation, "%s", what);
}

typedef struct rig {
	fake f;
	pthread_t th;
	chan *c;
} rig;

static void rig_start(rig *r, behaviour b, int idle_ms)
{
	/* The fake agent (a thread here) may still write after the host side closed at rig_stop:
	 * that must be EPIPE for it, not a SIGPIPE that kills the test (the channel itself sends
	 * with MSG_NOSIGNAL). */
	signal(SIGPIPE, SIG_IGN);
	int sv[2];
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	r->f = (fake){.fd = sv[1], .b = b};
	pthread_create(&r->th, NULL, fake_main, &r->f);
	chan_opts o = {.vm_id = "evil", .heartbeat_ms = 100, .op_idle_ms = idle_ms, .on_violation = on_violation};
	silo_error err;
	r->c = chan_open(sv[0], &o, NULL, &err);
	REQUIRE(r->c);
}

static void rig_stop(rig *r)
{
	r->f.stop = 1;
	chan_close(r->c); /* closes our end: the fake's read fails */
	shutdown(r->f.fd, SHUT_RDWR);
	pthread_join(r->th, NULL);
	close(r->f.fd);
}

TEST(silent_agent_file_ops_time_out)
{
	rig r;
	rig_start(&r, B_SILENT, 400);
	silo_error err;
	file_stat st;
	uint64_t t0 = now_mono_ns();
	CHECK_INT_EQ(chan_stat(r.c, "/x", &st, &err), -1);
	uint64_t ms = (now_mono_ns() - t0) / 1000000;
	CHECK_INT_EQ(err.code, SILO_ERR_TIMEOUT);
	CHECK_CONTAINS(err.message, "stat");
	CHECK(ms >= 350 && ms < 3000);
	char *out = NULL;
	size_t len;
	silo_error e2;
	CHECK_INT_EQ(chan_file_read(r.c, "/x", 0, &out, &len, &e2), -1);
	CHECK_INT_EQ(e2.code, SILO_ERR_TIMEOUT);
	silo_error e3;
	CHECK_INT_EQ(chan_file_write(r.c, "/x", "abc", 3, 0644, &e3), -1);
	CHECK_INT_EQ(e3.code, SILO_ERR_TIMEOUT);
	dir_entry *ents;
	size_t n;
	silo_error e4;
	CHECK_INT_EQ(chan_list(r.c, "/", &ents, &n, &e4), -1);
	CHECK_INT_EQ(e4.code, SILO_ERR_TIMEOUT);
	silo_error e5;
	CHECK_INT_EQ(chan_mkdir(r.c, "/d", 0755, false, &e5), -1);
	CHECK_INT_EQ(e5.code, SILO_ERR_TIMEOUT);
	/* the agent still answers pings: the channel stays up, only the operations failed */
	CHECK(chan_is_connected(r.c));
	rig_stop(&r);
}

TEST(trickled_file_data_past_the_limit_is_refused)
{
	rig r;
	rig_start(&r, B_TRICKLE, 5000);
	silo_error err;
	char *out = NULL;
	size_t len;
	CHECK_INT_EQ(chan_file_read(r.c, "/big", 1 << 20, &out, &len, &err), -1);
	CHECK_CONTAINS(err.message, "larger than the limit");
	int fd = memfd_create("dst", MFD_CLOEXEC);
	silo_error e2;
	CHECK_INT_EQ(chan_file_read_fd(r.c, "/big", fd, 300000, &e2), -1);
	CHECK_CONTAINS(e2.message, "larger than the limit");
	struct stat sb;
	fstat(fd, &sb);
	CHECK(sb.st_size <= 300000);
	close(fd);
	rig_stop(&r);
}

typedef struct counter {
	uint64_t bytes;
	bool bad;
} counter;

static void count_output(void *ud, int stream, const void *buf, size_t len)
{
	counter *k = ud;
	k->bytes += len;
	if (stream != 1 || len > WIRE_CHUNK || ((const char *)buf)[0] != 'x')
		k->bad = true;
}

TEST(output_flood_is_delivered_in_bounded_chunks)
{
	rig r;
	rig_start(&r, B_FLOOD, 5000);
	char *argv[] = {"flood", NULL};
	exec_req q = {.argv = argv, .uid = -1, .gid = -1};
	exec_result res;
	silo_error err;
	counter k = {0};
	REQUIRE(chan_exec(r.c, &q, count_output, &k, &res, &err) == 0);
	CHECK_INT_EQ(res.exit_code, 0);
	CHECK_INT_EQ(k.bytes, FLOOD_BYTES);
	CHECK(!k.bad);
	rig_stop(&r);
}

TEST(flood_nobody_reads_stays_within_the_window)
{
	/* The agent keeps to its credit; the host consumer does not read for a while:
	 * the host holds at most the window, whatever the agent has to send. */
	rig r;
	rig_start(&r, B_FLOOD, 5000);
	char *argv[] = {"flood", NULL};
	exec_req q = {.argv = argv, .uid = -1, .gid = -1, .window = 256 * 1024};
	uint32_t id;
	silo_error err;
	counter k = {0};
	REQUIRE(chan_exec_start(r.c, &q, count_output, &k, &id, &err) == 0);
	usleep(300000);
	uint64_t rx;
	chan_stats(r.c, NULL, &rx);
	printf("# received while nobody reads: %llu bytes (window 256 KiB)\n", (unsigned long long)rx);
	CHECK(rx <= 256 * 1024 + 4096);
	CHECK(chan_is_connected(r.c)); /* heartbeats flowed meanwhile */
	exec_result res;
	REQUIRE(chan_exec_wait(r.c, id, 30000, &res, &err) == 0);
	CHECK_INT_EQ(k.bytes, FLOOD_BYTES);
	rig_stop(&r);
}

static void expect_violation(behaviour b, const char *want)
{
	violations = 0;
	last_violation[0] = '\0';
	rig r;
	rig_start(&r, b, 5000);
	silo_error err;
	int rc;
	if (b == B_WRONG_TYPE) {
		file_stat st;
		rc = chan_stat(r.c, "/x", &st, &err);
	} else if (b == B_EVIL_ENTRIES) {
		dir_entry *ents;
		size_t n;
		rc = chan_list(r.c, "/", &ents, &n, &err);
	} else if (b == B_EVIL_WATCH || b == B_ABS_WATCH) {
		uint32_t w;
		rc = chan_watch_start(r.c, "/w", true, &w, &err);   /* the bad event may beat the start */
		if (rc == 0) {
			watch_event *ev;
			size_t n;
			uint64_t lost;
			rc = chan_watch_read(r.c, w, &ev, &n, &lost, 2000, &err);
			CHECK_INT_EQ(n, 0);   /* never handed out */
			watch_events_free(ev, n);
			chan_watch_stop(r.c, w);
		}
	} else if (b == B_STRAY_EVENTS) {
		file_stat st;
		rc = chan_stat(r.c, "/x", &st, &err);
	} else if (b == B_DEEP_NAMES || b == B_LIST_PAST_MAX) {
		dir_entry *ents;
		size_t n;
		list_opts lo = {.depth = 1, .max = b == B_LIST_PAST_MAX ? 1 : 0};
		rc = chan_list_opts(r.c, "/", &lo, &ents, &n, NULL, &err);
	} else if (b == B_OVERRUN) {
		/* Nobody takes the output, so no credit is granted: byte win+1 is the violation. */
		char *argv[] = {"x", NULL};
		exec_req q = {.argv = argv, .uid = -1, .gid = -1};
		uint32_t id;
		REQUIRE(chan_exec_start(r.c, &q, NULL, NULL, &id, &err) == 0);
		for (int i = 0; i < 400 && chan_is_connected(r.c); i++)
			usleep(5000);
		exec_result res;
		rc = chan_exec_wait(r.c, id, 2000, &res, &err);
	} else {
		char *argv[] = {"x", NULL};
		exec_req q = {.argv = argv, .uid = -1, .gid = -1};
		exec_result res;
		rc = chan_exec(r.c, &q, NULL, NULL, &res, &err);
	}
	if (rc < 0)
		printf("# %s\n", err.message);
	CHECK_INT_EQ(rc, -1);
	CHECK_INT_EQ(err.code, SILO_ERR_PROTOCOL);
	for (int i = 0; i < 200 && !violations; i++)
		usleep(5000);
	CHECK_INT_EQ(violations, 1);
	CHECK_CONTAINS(last_violation, want);
	CHECK(!chan_is_connected(r.c));
	rig_stop(&r);
}

TEST(reply_of_the_wrong_type_is_a_violation)
{
	expect_violation(B_WRONG_TYPE, "list reply for a non-list task");
}

TEST(oversized_output_chunk_is_a_violation)
{
	expect_violation(B_BIG_CHUNK, "");
}

TEST(exit_code_out_of_range_is_a_violation)
{
	expect_violation(B_BAD_EXIT, "exit without a valid code");
}

TEST(directory_entry_escaping_is_a_violation)
{
	expect_violation(B_EVIL_ENTRIES, "");
}

TEST(output_beyond_the_window_is_a_violation)
{
	expect_violation(B_OVERRUN, "output beyond the granted window");
}

TEST(stdin_credit_beyond_the_window_is_a_violation)
{
	expect_violation(B_STDIN_CREDIT, "stdin credit beyond the window");
}

TEST(watch_events_escaping_or_stray_are_violations)
{
	expect_violation(B_EVIL_WATCH, "invalid watch event name");
	expect_violation(B_ABS_WATCH, "invalid watch event name");
	expect_violation(B_STRAY_EVENTS, "watch event for a task that is not an established watch");
	expect_violation(B_TWO_STARTS, "started for a non-exec task, or twice");
}

TEST(listings_past_their_depth_or_max_are_violations)
{
	expect_violation(B_DEEP_NAMES, "invalid directory entry name");
	expect_violation(B_LIST_PAST_MAX, "more directory entries than the listing's max");
}

TEST(a_flood_of_watch_events_is_bounded_and_counted)
{
	rig r;
	rig_start(&r, B_WATCH_FLOOD, 5000);
	silo_error err;
	uint32_t w;
	REQUIRE(chan_watch_start(r.c, "/w", false, &w, &err) == 0);
	unsigned sent = 200000 / WIRE_MAX_EVS * WIRE_MAX_EVS;
	uint64_t prev = 0, rx = 0;
	for (int i = 0; i < 250; i++) {   /* nobody reads until the fake is done sending */
		usleep(20000);
		chan_stats(r.c, NULL, &rx);
		if (rx == prev && i > 10)
			break;
		prev = rx;
	}
	watch_event *ev;
	size_t n, total = 0;
	uint64_t lost, lost_total = 0;
	REQUIRE(chan_watch_read(r.c, w, &ev, &n, &lost, 1000, &err) == 0);
	CHECK_INT_EQ(n, CHAN_WATCH_QUEUE);   /* the first read: the queue bound */
	for (;;) {
		total += n;
		lost_total += lost;
		watch_events_free(ev, n);
		if (total + lost_total >= sent || chan_watch_read(r.c, w, &ev, &n, &lost, 500, &err) != 0 || !(n + lost))
			break;
	}
	printf("# %u events sent, %zu taken, %llu counted as lost, %llu bytes received\n", sent, total,
	       (unsigned long long)lost_total, (unsigned long long)rx);
	CHECK_INT_EQ(total + lost_total, sent);
	ev = NULL;
	n = 0;
	watch_events_free(ev, n);
	CHECK(chan_is_connected(r.c));
	chan_watch_stop(r.c, w);
	rig_stop(&r);
}

TEST(a_listing_of_gigabytes_stops_at_the_bound)
{
	rig r;
	rig_start(&r, B_HUGE_LIST, 5000);
	long before = proc_status_kib(0, "VmRSS");
	silo_error err;
	dir_entry *ents;
	size_t n;
	uint64_t t0 = now_mono_ns();
	int rc = chan_list(r.c, "/", &ents, &n, &err);
	long after = proc_status_kib(0, "VmRSS");
	printf("# %s (%llu ms; RSS %ld -> %ld KiB)\n", err.message, (unsigned long long)((now_mono_ns() - t0) / 1000000),
	       before, after);
	CHECK_INT_EQ(rc, -1);
	CHECK_INT_EQ(err.code, SILO_ERR_RESOURCE_EXCEEDED);
	CHECK_CONTAINS(err.message, "bytes of names");
	CHECK(after - before < 512 * 1024);   /* the 32 MiB bound and its bookkeeping (ASan's quarantine too), not 500 MB */
	CHECK(chan_is_connected(r.c));   /* the channel goes on; the late frames are dropped */
	rig_stop(&r);
}

static void expect_refused_handshake(behaviour b, const char *want)
{
	int sv[2];
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	fake f = {.fd = sv[1], .b = b};
	pthread_t th;
	pthread_create(&th, NULL, fake_main, &f);
	chan_opts o = {.vm_id = "old", .handshake_timeout_ms = 2000};
	silo_error err;
	chan *c = chan_open(sv[0], &o, NULL, &err);
	CHECK(c == NULL);
	if (!c) {
		printf("# %s\n", err.message);
		CHECK_INT_EQ(err.code, SILO_ERR_PROTOCOL);
		CHECK_CONTAINS(err.message, want);
	}
	f.stop = 1;
	chan_close(c);
	shutdown(sv[1], SHUT_RDWR);
	pthread_join(th, NULL);
	close(sv[1]);
}

TEST(older_agent_is_refused_clearly)
{
	char want[64];
	snprintf(want, sizeof want, "host speaks protocol %d", WIRE_VERSION);
	expect_refused_handshake(B_OLD_AGENT, want);
	expect_refused_handshake(B_OLD_AGENT, "agent speaks 1");
	expect_refused_handshake(B_OLD_HELLO_OK, "agent speaks protocol 1");
}

TEST_MAIN(silent_agent_file_ops_time_out, trickled_file_data_past_the_limit_is_refused,
	  output_flood_is_delivered_in_bounded_chunks, reply_of_the_wrong_type_is_a_violation,
	  oversized_output_chunk_is_a_violation, exit_code_out_of_range_is_a_violation,
	  directory_entry_escaping_is_a_violation, flood_nobody_reads_stays_within_the_window,
	  output_beyond_the_window_is_a_violation, stdin_credit_beyond_the_window_is_a_violation,
	  older_agent_is_refused_clearly, watch_events_escaping_or_stray_are_violations,
	  listings_past_their_depth_or_max_are_violations, a_flood_of_watch_events_is_bounded_and_counted,
	  a_listing_of_gigabytes_stops_at_the_bound)
