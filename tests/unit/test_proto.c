/* SPDX-License-Identifier: Apache-2.0
 * Codec and message tests, including a seeded property test:
 * random wire_msg -> encode -> decode -> equal. SILO_TEST_SEED=N replays.
 */
#include "harness.h"
#include "prop_test.h"

#include <time.h>

#include "common/util.h"
#include "mpack.h"
#include "wire.h"


static char *rand_str(size_t max)
{
	size_t n = rnd() % (max + 1);
	char *s = xmalloc(n + 1);
	for (size_t i = 0; i < n; i++) {
		char c;
		do
			c = (char)(rnd() & 0xff);
		while (c == '\0');
		s[i] = c;
	}
	s[n] = '\0';
	return s;
}

static char **rand_strv(uint32_t *count)
{
	uint32_t n = (uint32_t)(rnd() % 20);
	char **v = xcalloc(n + 1, sizeof *v);
	for (uint32_t i = 0; i < n; i++)
		v[i] = rand_str(rnd() % 4 ? 10 : 300);
	*count = n;
	return v;
}

static int64_t rand_i64(void)
{
	switch (rnd() % 5) {
	case 0: return (int64_t)(rnd() % 200) - 100;
	case 1: return INT64_MIN + (int64_t)(rnd() % 3);
	case 2: return INT64_MAX - (int64_t)(rnd() % 3);
	case 3: return -(int64_t)(rnd() % 70000);
	default: return (int64_t)rnd();
	}
}

static void gen(wire_msg *m, uint8_t *data)
{
	memset(m, 0, sizeof *m);
	m->type = (uint32_t)(rnd() % 60);
	m->id = (uint32_t)rnd();
	m->present = rnd() & ((UINT64_C(1) << 37) - 1);   /* every WF_ bit, WF_ADDR (36) the highest */
	m->v = (uint32_t)rnd();
	if (m->present & WF_ARGV) m->argv = rand_strv(&m->argc);
	if (m->present & WF_ENV) m->env = rand_strv(&m->envc);
	if (m->present & WF_CWD) m->cwd = rand_str(100);
	if (m->present & WF_PATH) m->path = rand_str(WIRE_MAX_PATH);
	if (m->present & WF_MSG) m->msg = rand_str(200);
	if (m->present & WF_AGENT) m->agent = rand_str(20);
	if (m->present & WF_KERNEL) m->kernel = rand_str(20);
	if (m->present & WF_ADDR) m->addr = rand_str(60);
	if (m->present & WF_DATA) {
		m->data_len = rnd() % 3 ? rnd() % 300 : rnd() % 70000;
		for (size_t i = 0; i < m->data_len; i++)
			data[i] = (uint8_t)rnd();
		m->data = data;
	}
	m->stream = (uint32_t)rnd();
	m->code = rand_i64();
	m->sig = rand_i64();
	m->timed_out = rnd() & 1;
	m->pty = rnd() & 1;
	m->eof = rnd() & 1;
	m->flag = rnd() & 1;
	m->exists = rnd() & 1;
	m->ms = rnd();
	m->size = rnd();
	m->max = rnd() >> (rnd() % 64);
	m->timeout = rnd() % 100000;
	m->uid = rand_i64();
	m->gid = rand_i64();
	m->mtime = rand_i64();
	m->rows = (uint32_t)rnd();
	m->cols = (uint32_t)rnd() % 300;
	m->mode = (uint32_t)rnd();
	m->pid = (uint32_t)rnd();
	m->win = (uint32_t)rnd();
	m->n = (uint32_t)rnd();
	m->depth = (uint32_t)rnd();
	m->ovf = rnd() & 1;
	if (m->present & WF_DST) m->dst = rand_str(WIRE_MAX_PATH);
	if (m->present & WF_LINK) m->link = rand_str(300);
	if (m->present & WF_ENTS) {
		m->n_ents = (uint32_t)(rnd() % 40);
		m->ents = xcalloc(m->n_ents + 1, sizeof *m->ents);
		for (uint32_t i = 0; i < m->n_ents; i++)
			m->ents[i] = (wire_dirent){rand_str(40), rnd(), (uint32_t)rnd(), rand_i64(), (uint32_t)rnd(),
						   (uint32_t)rnd(), rnd() % 3 ? NULL : rand_str(60)};
	}
	if (m->present & WF_EVS) {
		m->n_evs = (uint32_t)(rnd() % 40);
		m->evs = xcalloc(m->n_evs + 1, sizeof *m->evs);
		for (uint32_t i = 0; i < m->n_evs; i++)
			m->evs[i] = (wire_event){(uint32_t)(1 + rnd() % WEV__MAX), rand_str(40)};
	}
}

static bool opt_str_eq(const char *x, const char *y)
{
	return (!x && !y) || (x && y && !strcmp(x, y));
}

#define EQ_IF(bit, expr) ((!(a->present & (bit))) || (expr))
static bool strv_eq(char **x, uint32_t nx, char **y, uint32_t ny)
{
	if (nx != ny)
		return false;
	for (uint32_t i = 0; i < nx; i++)
		if (strcmp(x[i], y[i]))
			return false;
	return true;
}

static bool msg_eq(const wire_msg *a, const wire_msg *b)
{
	if (a->type != b->type || a->id != b->id || a->present != b->present)
		return false;
	bool ok = EQ_IF(WF_V, a->v == b->v) && EQ_IF(WF_ARGV, strv_eq(a->argv, a->argc, b->argv, b->argc)) &&
		  EQ_IF(WF_ENV, strv_eq(a->env, a->envc, b->env, b->envc)) &&
		  EQ_IF(WF_CWD, !strcmp(a->cwd, b->cwd)) && EQ_IF(WF_PATH, !strcmp(a->path, b->path)) &&
		  EQ_IF(WF_MSG, !strcmp(a->msg, b->msg)) && EQ_IF(WF_AGENT, !strcmp(a->agent, b->agent)) &&
		  EQ_IF(WF_KERNEL, !strcmp(a->kernel, b->kernel)) && EQ_IF(WF_ADDR, !strcmp(a->addr, b->addr)) &&
		  EQ_IF(WF_DATA, a->data_len == b->data_len && !memcmp(a->data, b->data, a->data_len)) &&
		  EQ_IF(WF_STREAM, a->stream == b->stream) && EQ_IF(WF_CODE, a->code == b->code) &&
		  EQ_IF(WF_SIG, a->sig == b->sig) && EQ_IF(WF_TIMEDOUT, a->timed_out == b->timed_out) &&
		  EQ_IF(WF_MS, a->ms == b->ms) && EQ_IF(WF_UID, a->uid == b->uid) && EQ_IF(WF_GID, a->gid == b->gid) &&
		  EQ_IF(WF_PTY, a->pty == b->pty) && EQ_IF(WF_ROWS, a->rows == b->rows) &&
		  EQ_IF(WF_COLS, a->cols == b->cols) && EQ_IF(WF_MODE, a->mode == b->mode) &&
		  EQ_IF(WF_EOF, a->eof == b->eof) && EQ_IF(WF_FLAG, a->flag == b->flag) &&
		  EQ_IF(WF_SIZE, a->size == b->size) && EQ_IF(WF_MTIME, a->mtime == b->mtime) &&
		  EQ_IF(WF_PID, a->pid == b->pid) && EQ_IF(WF_EXISTS, a->exists == b->exists) &&
		  EQ_IF(WF_MAX, a->max == b->max) && EQ_IF(WF_TIMEOUT, a->timeout == b->timeout) &&
		  EQ_IF(WF_WIN, a->win == b->win) && EQ_IF(WF_N, a->n == b->n) &&
		  EQ_IF(WF_ENTS, a->n_ents == b->n_ents) && EQ_IF(WF_DST, !strcmp(a->dst, b->dst)) &&
		  EQ_IF(WF_DEPTH, a->depth == b->depth) && EQ_IF(WF_LINK, !strcmp(a->link, b->link)) &&
		  EQ_IF(WF_EVS, a->n_evs == b->n_evs) && EQ_IF(WF_OVF, a->ovf == b->ovf);
	if (ok && (a->present & WF_ENTS))
		for (uint32_t i = 0; i < a->n_ents; i++) {
			const wire_dirent *x = &a->ents[i], *y = &b->ents[i];
			if (strcmp(x->name, y->name) || x->size != y->size || x->mode != y->mode ||
			    x->mtime != y->mtime || x->uid != y->uid || x->gid != y->gid || !opt_str_eq(x->link, y->link))
				return false;
		}
	if (ok && (a->present & WF_EVS))
		for (uint32_t i = 0; i < a->n_evs; i++)
			if (a->evs[i].kind != b->evs[i].kind || strcmp(a->evs[i].name, b->evs[i].name))
				return false;
	return ok;
}

static void gen_free(wire_msg *m)
{
	m->data = NULL;
	wire_msg_free(m);
}

TEST(property_round_trip)
{
	rnd_seed_env();
	static uint8_t data[70000];
	int n_ok = 0;
	for (int i = 0; i < 3000; i++) {
		wire_msg m, d;
		gen(&m, data);
		mp_buf b;
		mp_buf_init(&b);
		REQUIRE(wire_encode(&b, &m));
		uint32_t len;
		REQUIRE(wire_frame_len(b.p, &len));
		REQUIRE(len == b.len - 4);
		char err[160];
		bool ok = wire_decode(b.p + 4, len, &d, err, sizeof err);
		if (!ok)
			printf("# iteration %d: %s\n", i, err);
		if (ok && msg_eq(&m, &d))
			n_ok++;
		else
			printf("# iteration %d: mismatch (type %u)\n", i, m.type);
		wire_msg_free(&d);
		gen_free(&m);
		mp_buf_free(&b);
	}
	CHECK_INT_EQ(n_ok, 3000);
}

TEST(integers_all_encodings)
{
	static const int64_t vals[] = {0, 1, 127, 128, 255, 256, 65535, 65536, 4294967295LL, 4294967296LL,
				       -1, -32, -33, -128, -129, -32768, -32769, INT32_MIN, (int64_t)INT32_MIN - 1,
				       INT64_MIN, INT64_MAX};
	for (size_t i = 0; i < ARRAY_SIZE(vals); i++) {
		mp_buf b;
		mp_buf_init(&b);
		mp_put_int(&b, vals[i]);
		mp_rd r;
		mp_rd_init(&r, b.p, b.len);
		int64_t v;
		CHECK(mp_get_int(&r, &v));
		CHECK_INT_EQ(v, vals[i]);
		CHECK_INT_EQ(r.left, 0);
		mp_buf_free(&b);
	}
	/* uint64 beyond INT64_MAX is not an int64 */
	static const uint8_t big[] = {0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	mp_rd r;
	mp_rd_init(&r, big, sizeof big);
	int64_t v;
	CHECK(!mp_get_int(&r, &v));
	CHECK_STR_EQ(r.err, "integer out of range");
	/* negative is not a uint */
	static const uint8_t neg[] = {0xff};
	uint64_t u;
	mp_rd_init(&r, neg, 1);
	CHECK(!mp_get_uint(&r, &u));
}

TEST(declared_lengths_are_never_trusted)
{
	struct {
		const uint8_t *b;
		size_t n;
		const char *err;
	} cases[] = {
		{(const uint8_t *)"\xdb\xff\xff\xff\xff" "ab", 7, "string length exceeds frame"},
		{(const uint8_t *)"\xd9\x05" "ab", 4, "string length exceeds frame"},
		{(const uint8_t *)"\xc6\x00\x10\x00\x00" "x", 6, "binary length exceeds frame"},
		{(const uint8_t *)"\xdd\x7f\xff\xff\xff\x01", 6, "array length exceeds frame"},
		{(const uint8_t *)"\xdf\x00\x01\x00\x00\x01", 6, "map length exceeds frame"},
		{(const uint8_t *)"\xcd\x01", 2, "truncated value"},
		{(const uint8_t *)"\xc1", 1, "invalid type byte"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		mp_rd r;
		mp_rd_init(&r, cases[i].b, cases[i].n);
		CHECK(!mp_skip(&r, 8) || (printf("# case %zu passed unexpectedly\n", i), 0));
		if (r.err && strcmp(r.err, cases[i].err))
			printf("# case %zu: got '%s' want '%s'\n", i, r.err, cases[i].err);
		CHECK(r.err && !strcmp(r.err, cases[i].err));
	}
	/* nesting bomb: 100 nested arrays */
	uint8_t deep[101];
	memset(deep, 0x91, 100);
	deep[100] = 0xc0;
	mp_rd r;
	mp_rd_init(&r, deep, sizeof deep);
	CHECK(!mp_skip(&r, 8));
	CHECK_STR_EQ(r.err, "nesting too deep");
}

static bool decode_bytes(const void *p, size_t n, char *err)
{
	wire_msg m;
	bool ok = wire_decode(p, n, &m, err, 160);
	wire_msg_free(&m);
	return ok;
}

TEST(message_validation_names_the_byte)
{
	char err[160];
	/* {"t":1} without id */
	CHECK(!decode_bytes("\x81\xa1t\x01", 4, err));
	CHECK_STR_EQ(err, "byte 4: missing key \"id\"");
	/* duplicate key */
	CHECK(!decode_bytes("\x83\xa1t\x01\xa2id\x01\xa1t\x02", 12, err));
	CHECK_CONTAINS(err, "duplicate key");
	/* a path with an embedded NUL */
	CHECK(!decode_bytes("\x83\xa1t\x01\xa2id\x01\xa4path\xa3" "a\0b", 17, err));
	CHECK_CONTAINS(err, "string contains NUL");
	/* argv element of the wrong type */
	CHECK(!decode_bytes("\x83\xa1t\x0a\xa2id\x01\xa4" "argv\x91\x05", 15, err));
	CHECK_CONTAINS(err, "byte 14: expected string");
	/* trailing garbage */
	CHECK(!decode_bytes("\x82\xa1t\x01\xa2id\x01\xc0", 9, err));
	CHECK_CONTAINS(err, "trailing bytes");
	/* unknown keys are skipped */
	CHECK(decode_bytes("\x83\xa1t\x01\xa2id\x01\xa3new\x92\x01\x02", 15, err));
	/* frame length bounds */
	uint32_t len;
	CHECK(!wire_frame_len((const uint8_t *)"\0\0\0\0", &len));
	CHECK(!wire_frame_len((const uint8_t *)"\x00\x20\x00\x00", &len));
	CHECK(wire_frame_len((const uint8_t *)"\x00\x00\x01\x00", &len) && len == 256);
}

TEST(oversized_message_is_not_encoded)
{
	static uint8_t big[WIRE_MAX_FRAME];
	wire_msg m = {.type = WM_OUTPUT, .id = 1, .present = WF_DATA, .data = big, .data_len = sizeof big};
	mp_buf b;
	mp_buf_init(&b);
	CHECK(!wire_encode(&b, &m));
	CHECK_INT_EQ(b.len, 0);
	mp_buf_free(&b);
}


/* One representative of every message type, fields as docs/protocol.md lists them. */
static char *ex_argv[] = {"sh", "-c", "echo hi", NULL};
static char *ex_env[] = {"A=1", "LANG=C.UTF-8", NULL};
static wire_dirent ex_ents[] = {{"a.txt", 3, 0100644, 1700000000, 0, 0, NULL},
				 {"sub", 4096, 040755, -5, 1000, 1000, NULL},
				 {"sub/lnk", 7, 0120777, 1700000000, 0, 0, "../a.txt"}};
static wire_event ex_evs[] = {{WEV_CREATE, "new.txt"}, {WEV_WRITE, "sub/log"}, {WEV_RENAME, "old"},
			      {WEV_REMOVE, "gone"}, {WEV_CHMOD, "a.txt"}};
static const wire_msg typical[] = {
	{.type = WM_HELLO, .present = WF_V, .v = WIRE_VERSION},
	{.type = WM_HELLO_OK, .present = WF_V | WF_AGENT | WF_KERNEL | WF_PID, .v = WIRE_VERSION,
	 .agent = "0.1.0", .kernel = "6.1.0-silo", .pid = 1},
	{.type = WM_EXEC, .id = 7,
	 .present = WF_ARGV | WF_ENV | WF_CWD | WF_DATA | WF_FLAG | WF_TIMEOUT | WF_UID | WF_GID | WF_PTY | WF_ROWS |
		    WF_COLS | WF_WIN,
	 .argv = ex_argv, .argc = 3, .env = ex_env, .envc = 2, .cwd = "/work", .data = (const uint8_t *)"in",
	 .data_len = 2, .flag = true, .timeout = 30000, .uid = 1000, .gid = 1000, .pty = true, .rows = 24, .cols = 80,
	 .win = WIRE_WINDOW},
	{.type = WM_STARTED, .id = 7, .present = WF_PID, .pid = 4242},
	{.type = WM_OUTPUT, .id = 7, .present = WF_STREAM | WF_DATA, .stream = 2, .data = (const uint8_t *)"err\n",
	 .data_len = 4},
	{.type = WM_STDIN, .id = 7, .present = WF_DATA | WF_EOF, .data = (const uint8_t *)"x", .data_len = 1,
	 .eof = true},
	{.type = WM_SIGNAL, .id = 7, .present = WF_SIG, .sig = 15},
	{.type = WM_RESIZE, .id = 7, .present = WF_ROWS | WF_COLS, .rows = 50, .cols = 132},
	{.type = WM_CREDIT, .id = 7, .present = WF_N, .n = 262144},
	{.type = WM_DISCARD, .id = 7},
	{.type = WM_EXIT, .id = 7, .present = WF_CODE | WF_SIG | WF_TIMEDOUT | WF_MS, .code = 137, .sig = 9,
	 .timed_out = true, .ms = 30001},
	{.type = WM_FWRITE, .id = 8, .present = WF_PATH | WF_MODE | WF_DATA | WF_FLAG | WF_EOF, .path = "/tmp/f",
	 .mode = 0600, .data = (const uint8_t *)"\0\1\2", .data_len = 3, .flag = true, .eof = false},
	{.type = WM_FREAD, .id = 9, .present = WF_PATH | WF_MAX, .path = "/etc/os-release", .max = 1u << 20},
	{.type = WM_FDATA, .id = 9, .present = WF_DATA | WF_EOF, .data = (const uint8_t *)"", .data_len = 0,
	 .eof = true},
	{.type = WM_STAT, .id = 10, .present = WF_PATH, .path = "/"},
	{.type = WM_STAT_R, .id = 10, .present = WF_EXISTS | WF_SIZE | WF_MODE | WF_MTIME | WF_UID | WF_GID | WF_LINK,
	 .exists = true, .size = 1ull << 40, .mode = 0120777, .mtime = -1, .uid = 0, .gid = 0, .link = "/etc/hosts"},
	{.type = WM_LIST, .id = 11, .present = WF_PATH | WF_DEPTH | WF_MAX, .path = "/srv", .depth = 2, .max = 100000},
	{.type = WM_LIST_R, .id = 11, .present = WF_ENTS | WF_EOF | WF_FLAG, .ents = ex_ents, .n_ents = 3, .eof = true,
	 .flag = true},
	{.type = WM_MKDIR, .id = 12, .present = WF_PATH | WF_MODE | WF_FLAG, .path = "/a/b/c", .mode = 0755,
	 .flag = true},
	{.type = WM_REMOVE, .id = 13, .present = WF_PATH | WF_FLAG, .path = "/a", .flag = true},
	{.type = WM_OK, .id = 13},
	{.type = WM_ERROR, .id = 14, .present = WF_CODE | WF_MSG, .code = 2, .msg = "stat /x: No such file"},
	{.type = WM_PING, .present = WF_MS, .ms = 1763881234567ull},
	{.type = WM_PONG, .present = WF_MS, .ms = 1763881234567ull},
	{.type = WM_SHUTDOWN, .id = 15},
	{.type = WM_NET, .id = 21, .present = WF_ADDR | WF_N | WF_FLAG, .addr = "10.0.2.15/24 10.0.2.2", .n = 1500,
	 .flag = true},
	{.type = WM_DNSQ, .present = WF_N | WF_DATA, .n = 77, .data = (const uint8_t *)"\x12\x34\1\0\0\1", .data_len = 6},
	{.type = WM_DNSR, .present = WF_N | WF_DATA, .n = 77, .data = (const uint8_t *)"\x12\x34\x81\x80", .data_len = 4},
	{.type = WM_TCP, .id = 22, .present = WF_N | WF_ADDR | WF_WIN, .n = 8080, .addr = "127.0.0.1", .win = WIRE_WINDOW},
	{.type = WM_CANCEL, .id = 16},
	{.type = WM_RENAME, .id = 17, .present = WF_PATH | WF_DST | WF_FLAG, .path = "/a", .dst = "/b", .flag = true},
	{.type = WM_WATCH, .id = 18, .present = WF_PATH | WF_FLAG, .path = "/work", .flag = true},
	{.type = WM_WATCH_EV, .id = 18, .present = WF_EVS | WF_OVF | WF_EOF, .evs = ex_evs, .n_evs = 5, .ovf = true},
	{.type = WM_TAR_OUT, .id = 19, .present = WF_PATH | WF_WIN, .path = "/work", .win = WIRE_WINDOW},
	{.type = WM_TAR_IN, .id = 20, .present = WF_PATH | WF_WIN, .path = "/dest", .win = WIRE_MIN_WINDOW},
};

TEST(every_message_type_round_trips)
{
	/* every type named in wire.h appears once */
	int seen = 0;
	for (uint32_t t = 0; t < 100; t++)
		if (strcmp(wire_type_name(t), "unknown") && strcmp(wire_type_name(t), "?"))
			seen++;
	CHECK_INT_EQ(seen, (int)ARRAY_SIZE(typical));
	const char *dir = getenv("SILO_WRITE_WIRE_CORPUS"); /* regenerate tests/fuzz/corpus/wire seeds */
	for (size_t i = 0; i < ARRAY_SIZE(typical); i++) {
		const wire_msg *a = &typical[i];
		mp_buf b;
		mp_buf_init(&b);
		REQUIRE(wire_encode(&b, a));
		uint32_t len;
		REQUIRE(wire_frame_len(b.p, &len));
		CHECK_INT_EQ(len + 4, b.len);
		wire_msg d;
		char err[160];
		bool ok = wire_decode(b.p + 4, len, &d, err, sizeof err);
		if (!ok)
			printf("# %s: %s\n", wire_type_name(a->type), err);
		CHECK(ok && msg_eq(a, &d));
		CHECK(strcmp(wire_type_name(a->type), "unknown") != 0);
		/* every strict prefix of the payload is rejected */
		for (uint32_t cut = 0; cut < len; cut++) {
			wire_msg t;
			CHECK(!wire_decode(b.p + 4, cut, &t, err, sizeof err) ||
			      (printf("# %s: prefix %u accepted\n", wire_type_name(a->type), cut), 0));
			wire_msg_free(&t);
		}
		if (dir) {
			char path[512];
			snprintf(path, sizeof path, "%s/%s", dir, wire_type_name(a->type));
			CHECK(write_file_atomic(path, b.p, b.len, 0644, NULL) == 0);
		}
		wire_msg_free(&d);
		mp_buf_free(&b);
	}
}

TEST(strings_and_bins_at_encoding_boundaries)
{
	static const size_t sizes[] = {0, 1, 31, 32, 255, 256, 65535, 65536, 100000};
	static char src[100001];
	memset(src, 'q', sizeof src);
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		size_t n = sizes[i];
		mp_buf b;
		mp_buf_init(&b);
		mp_put_str(&b, src, n);
		mp_put_bin(&b, src, n);
		uint8_t want_str = n < 32 ? (uint8_t)(0xa0 | n) : n < 256 ? 0xd9 : n < 65536 ? 0xda : 0xdb;
		CHECK_INT_EQ(b.p[0], want_str);
		size_t shdr = n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5;
		uint8_t want_bin = n < 256 ? 0xc4 : n < 65536 ? 0xc5 : 0xc6;
		CHECK_INT_EQ(b.p[shdr + n], want_bin);
		mp_rd r;
		const char *sp;
		const uint8_t *bp;
		size_t got;
		mp_rd_init(&r, b.p, b.len);
		CHECK(mp_get_str(&r, &sp, &got, n) && got == n && !memcmp(sp, src, n));
		CHECK(mp_get_bin(&r, &bp, &got, n) && got == n && !memcmp(bp, src, n));
		CHECK_INT_EQ(r.left, 0);
		if (n) { /* the caller's limit is enforced before the bytes are touched */
			mp_rd_init(&r, b.p, b.len);
			CHECK(!mp_get_str(&r, &sp, &got, n - 1));
			CHECK(r.err != NULL);
		}
		mp_buf_free(&b);
	}
	/* arrays: 15/16 and 65535/65536 switch encodings; counts above the limit fail */
	static const uint32_t counts[] = {0, 15, 16, 65535, 65536};
	for (size_t i = 0; i < ARRAY_SIZE(counts); i++) {
		mp_buf b;
		mp_buf_init(&b);
		mp_put_array(&b, counts[i]);
		for (uint32_t k = 0; k < counts[i]; k++)
			mp_put_nil(&b);
		mp_rd r;
		uint32_t got;
		mp_rd_init(&r, b.p, b.len);
		CHECK(mp_get_array(&r, &got, counts[i]) && got == counts[i]);
		if (counts[i]) {
			mp_rd_init(&r, b.p, b.len);
			CHECK(!mp_get_array(&r, &got, counts[i] - 1));
		}
		mp_rd_init(&r, b.p, b.len);
		CHECK(mp_skip(&r, 2) && r.left == 0);
		mp_buf_free(&b);
	}
}

TEST_MAIN(property_round_trip, integers_all_encodings, declared_lengths_are_never_trusted,
	  message_validation_names_the_byte, oversized_message_is_not_encoded, every_message_type_round_trips,
	  strings_and_bins_at_encoding_boundaries)
