/* SPDX-License-Identifier: Apache-2.0
 * Protocol v3 through the channel against the real silo-agent (--fd on a
 * socketpair): rename, listings with a depth and a bound, symlink targets,
 * FILE_NOT_FOUND for missing paths, directory watches (events, recursion,
 * overflow, the end of a watch), tar streams out and in (a byte-exact round
 * trip, errors, a hostile archive refused inside the agent), and pull-mode
 * exec tasks (stdin never drops output; the exit status while output waits).
 */
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "agent_test.h"
#include "tree_test.h"

static void touch(const char *dir, const char *name, const char *data)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	REQUIRE(fd >= 0);
	REQUIRE(write_all(fd, data, strlen(data)) == 0);
	close(fd);
}

TEST(rename_noreplace_and_missing_paths)
{
	agent_proc a;
	start(&a, 0);
	char src[128], dst[128], other[128], missing[128];
	snprintf(src, sizeof src, "%s/a", a.dir);
	snprintf(dst, sizeof dst, "%s/b", a.dir);
	snprintf(other, sizeof other, "%s/c", a.dir);
	snprintf(missing, sizeof missing, "%s/nope/x", a.dir);
	touch(a.dir, "a", "A");
	touch(a.dir, "c", "C");
	silo_error err = {0};
	CHECK_INT_EQ(chan_rename(a.c, src, dst, false, &err), 0);
	CHECK(!path_exists(src) && path_exists(dst));
	CHECK_INT_EQ(chan_rename(a.c, dst, other, true, &err), -1);
	CHECK_INT_EQ(err.code, SILO_ERR_CONFLICT);
	CHECK_INT_EQ(err.sys_errno, EEXIST);
	CHECK(path_exists(dst));
	CHECK_INT_EQ(chan_rename(a.c, dst, other, false, &err), 0);   /* replaces */
	CHECK_INT_EQ(chan_rename(a.c, missing, dst, false, &err), -1);
	CHECK_INT_EQ(err.code, SILO_ERR_FILE_NOT_FOUND);
	CHECK_CONTAINS(err.message, "nope/x");
	/* every file operation on a missing path says FILE_NOT_FOUND */
	char *buf;
	size_t len;
	dir_entry *ents;
	size_t n;
	CHECK_INT_EQ(chan_file_read(a.c, missing, 0, &buf, &len, &err), -1);
	CHECK_INT_EQ(err.code, SILO_ERR_FILE_NOT_FOUND);
	CHECK_INT_EQ(chan_list(a.c, missing, &ents, &n, &err), -1);
	CHECK_INT_EQ(err.code, SILO_ERR_FILE_NOT_FOUND);
	CHECK_INT_EQ(chan_remove(a.c, missing, true, &err), -1);
	CHECK_INT_EQ(err.code, SILO_ERR_FILE_NOT_FOUND);
	CHECK_INT_EQ(chan_mkdir(a.c, missing, 0755, false, &err), -1);
	CHECK_INT_EQ(err.code, SILO_ERR_FILE_NOT_FOUND);
	CHECK_INT_EQ(chan_mkdir(a.c, a.dir, 0755, false, &err), -1);
	CHECK_INT_EQ(err.code, SILO_ERR_CONFLICT);
	stop(&a);
}

static const dir_entry *find_ent(const dir_entry *e, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(e[i].name, name))
			return &e[i];
	return NULL;
}

TEST(list_depth_bound_and_symlink_targets)
{
	agent_proc a;
	start(&a, 0);
	char p[256];
	snprintf(p, sizeof p, "%s/d1/d2/d3", a.dir);
	REQUIRE(mkdir_p(p, 0755) == 0);
	touch(a.dir, "d1/d2/d3/leaf", "x");
	touch(a.dir, "top", "y");
	snprintf(p, sizeof p, "%s/lnk", a.dir);
	REQUIRE(symlink("d1/d2", p) == 0);
	silo_error err = {0};
	dir_entry *e;
	size_t n;
	bool trunc = true;
	list_opts one = {.depth = 1};
	REQUIRE(chan_list_opts(a.c, a.dir, &one, &e, &n, &trunc, &err) == 0);
	CHECK_INT_EQ(n, 3);
	CHECK(!trunc);
	const dir_entry *l = find_ent(e, n, "lnk");
	CHECK(l && l->link && !strcmp(l->link, "d1/d2") && S_ISLNK(l->st.mode));
	CHECK(find_ent(e, n, "d1") && !find_ent(e, n, "d1/d2"));
	dir_entries_free(e, n);
	list_opts deep = {.depth = 4};
	REQUIRE(chan_list_opts(a.c, a.dir, &deep, &e, &n, &trunc, &err) == 0);
	CHECK_INT_EQ(n, 6);   /* top lnk d1 d1/d2 d1/d2/d3 d1/d2/d3/leaf; the symlink is not followed */
	CHECK(find_ent(e, n, "d1/d2/d3/leaf") != NULL);
	CHECK(!find_ent(e, n, "lnk/d3"));
	dir_entries_free(e, n);
	list_opts two = {.depth = 4, .max = 2};
	REQUIRE(chan_list_opts(a.c, a.dir, &two, &e, &n, &trunc, &err) == 0);
	CHECK_INT_EQ(n, 2);
	CHECK(trunc);
	dir_entries_free(e, n);
	list_opts bad = {.depth = WIRE_MAX_LIST_DEPTH + 1};
	CHECK_INT_EQ(chan_list_opts(a.c, a.dir, &bad, &e, &n, &trunc, &err), -1);
	CHECK_INT_EQ(err.code, SILO_ERR_INVALID_CONFIG);
	file_stat st;
	char *link = NULL;
	REQUIRE(chan_stat_link(a.c, p, &st, &link, &err) == 0);
	CHECK(st.exists && S_ISLNK(st.mode));
	CHECK_STR_EQ(link, "d1/d2");
	free(link);
	stop(&a);
}

/* Collect watch events until want names were seen (or 5 s). */
static bool saw(const char *log, int kind, const char *name)
{
	char pat[300];
	snprintf(pat, sizeof pat, "%d:%s\n", kind, name);
	return strstr(log, pat) != NULL;
}

static void drain_events(agent_proc *a, uint32_t w, char *log, size_t cap, int ms, uint64_t *lost_total)
{
	uint64_t end = now_mono_ns() + (uint64_t)ms * 1000000ull;
	while (now_mono_ns() < end) {
		watch_event *ev;
		size_t n;
		uint64_t lost;
		silo_error err;
		int rc = chan_watch_read(a->c, w, &ev, &n, &lost, 100, &err);
		if (lost_total)
			*lost_total += lost;
		for (size_t i = 0; i < n; i++) {
			size_t l = strlen(log);
			snprintf(log + l, cap - l, "%d:%s\n", ev[i].kind, ev[i].name);
		}
		watch_events_free(ev, n);
		if (rc != 0)
			break;
	}
}

TEST(watch_reports_changes_recursively)
{
	agent_proc a;
	start(&a, 0);
	silo_error err = {0};
	uint32_t w;
	REQUIRE(chan_watch_start(a.c, a.dir, true, &w, &err) == 0);
	char p[256], q[256];
	touch(a.dir, "f", "1");
	snprintf(p, sizeof p, "%s/f", a.dir);
	chmod(p, 0600);
	snprintf(q, sizeof q, "%s/g", a.dir);
	rename(p, q);
	unlink(q);
	snprintf(p, sizeof p, "%s/sub", a.dir);
	mkdir(p, 0755);
	usleep(200 * 1000);   /* the new directory's watch is added when its event is read */
	touch(a.dir, "sub/inner", "2");
	static char log[65536];
	log[0] = '\0';
	drain_events(&a, w, log, sizeof log, 1500, NULL);
	printf("# events:\n");
	for (char *s = log, *nl; (nl = strchr(s, '\n')); s = nl + 1)
		printf("#   %.*s\n", (int)(nl - s), s);
	CHECK(saw(log, WEV_CREATE, "f"));
	CHECK(saw(log, WEV_WRITE, "f"));
	CHECK(saw(log, WEV_CHMOD, "f"));
	CHECK(saw(log, WEV_RENAME, "f"));
	CHECK(saw(log, WEV_CREATE, "g"));
	CHECK(saw(log, WEV_REMOVE, "g"));
	CHECK(saw(log, WEV_CREATE, "sub"));
	CHECK(saw(log, WEV_CREATE, "sub/inner"));
	chan_watch_stop(a.c, w);
	/* the end of a watch: its directory goes away */
	snprintf(p, sizeof p, "%s/gone", a.dir);
	REQUIRE(mkdir(p, 0755) == 0);
	REQUIRE(chan_watch_start(a.c, p, false, &w, &err) == 0);
	rmdir(p);
	watch_event *ev;
	size_t n;
	uint64_t lost;
	int rc = 0;
	for (int i = 0; i < 50 && rc == 0; i++) {
		rc = chan_watch_read(a.c, w, &ev, &n, &lost, 100, &err);
		watch_events_free(ev, n);
	}
	CHECK_INT_EQ(rc, 1);
	chan_watch_stop(a.c, w);
	/* not a directory, missing */
	CHECK_INT_EQ(chan_watch_start(a.c, p, false, &w, &err), -1);
	CHECK_INT_EQ(err.code, SILO_ERR_FILE_NOT_FOUND);
	stop(&a);
}

TEST(watch_overflow_is_reported_not_buffered)
{
	agent_proc a;
	start(&a, 0);
	silo_error err = {0};
	uint32_t w;
	REQUIRE(chan_watch_start(a.c, a.dir, false, &w, &err) == 0);
	/* nobody reads for a while: 3 events for each of 3000 files */
	REQUIRE(tree_sh("cd '%s' && for i in $(seq 1 3000); do echo x > f$i; done", a.dir) == 0);
	usleep(300 * 1000);
	uint64_t lost_total = 0;
	static char log[1 << 20];
	log[0] = '\0';
	drain_events(&a, w, log, sizeof log, 1000, &lost_total);
	size_t lines = 0;
	for (char *s = log; (s = strchr(s, '\n')); s++)
		lines++;
	printf("# %zu events taken, %llu lost\n", lines, (unsigned long long)lost_total);
	CHECK(lines <= CHAN_WATCH_QUEUE + 1024);   /* what was queued, plus what arrived while draining */
	CHECK(lost_total > 0);
	chan_watch_stop(a.c, w);
	stop(&a);
}

typedef struct sink {
	int fd;
	char err[4096];
} sink;

/* Take a tar_out task's stream 1 into fd; stream 2 into err. */
static int take_output(chan *c, uint32_t id, sink *s)
{
	static char buf[65536];
	silo_error err;
	for (;;) {
		int stream;
		ssize_t n = chan_exec_read(c, id, &stream, buf, sizeof buf, 10000, &err);
		if (n == 0)
			return 0;
		if (n < 0)
			return -1;
		if (stream == 1)
			REQUIRE(write_all(s->fd, buf, (size_t)n) == 0);
		else
			snprintf(s->err + strlen(s->err), sizeof s->err - strlen(s->err), "%.*s", (int)n, buf);
	}
}

/* Feed fd into a tar_in task; exit status in *res. */
static int feed(chan *c, uint32_t id, int fd, exec_result *res, sink *s, silo_error *err)
{
	static char buf[200000];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		REQUIRE(n >= 0);
		if (chan_exec_stdin(c, id, buf, (size_t)n, n == 0, err) < 0)
			break;
		if (n == 0)
			break;
	}
	take_output(c, id, s);
	return chan_exec_wait(c, id, 10000, res, err);
}

TEST(tar_out_and_in_round_trip)
{
	agent_proc a;
	start(&a, 0);
	char src[256], dst[256];
	snprintf(src, sizeof src, "%s/src", a.dir);
	snprintf(dst, sizeof dst, "%s/dst", a.dir);
	REQUIRE(tree_sh("mkdir -p '%s/sub/deeper' && cd '%s' && head -c 3000000 /dev/urandom > big && echo hi > sub/a && "
		   "chmod 0750 sub && chmod 0604 sub/a && ln -s sub/a rel && ln -s /etc/passwd abs && "
		   "touch -d @1600000000 sub/a",
		   src, src) == 0);
	silo_error err = {0};
	uint32_t id;
	REQUIRE(chan_tar_out_start(a.c, src, 0, &id, &err) == 0);
	uint32_t pid = 0;
	REQUIRE(chan_exec_started(a.c, id, 5000, &pid, &err) == 0);
	CHECK(pid > 0);
	sink s = {.fd = memfd_create("t", MFD_CLOEXEC)};
	REQUIRE(take_output(a.c, id, &s) == 0);
	exec_result res;
	REQUIRE(chan_exec_wait(a.c, id, 5000, &res, &err) == 0);
	CHECK_INT_EQ(res.exit_code, 0);
	CHECK_STR_EQ(s.err, "");
	printf("# archive: %lld bytes\n", (long long)lseek(s.fd, 0, SEEK_CUR));
	REQUIRE(lseek(s.fd, 0, SEEK_SET) == 0);
	/* into a destination that does not exist yet (created) */
	REQUIRE(chan_tar_in_start(a.c, dst, &id, &err) == 0);
	sink e = {.fd = -1};
	int rc = feed(a.c, id, s.fd, &res, &e, &err);
	printf("# tar_in: %s %s\n", err.message, e.err);
	CHECK_INT_EQ(rc, 0);
	CHECK_INT_EQ(res.exit_code, 0);
	CHECK_INT_EQ(tree_sh("diff -r --no-dereference '%s' '%s/src' >&2", src, dst), 0);
	/* modes, link targets and mtimes (tar keeps whole seconds) */
	CHECK_INT_EQ(tree_sh("cd '%s' && find . -mindepth 1 -printf '%%p %%m %%l %%Ts\\n' | sort > /tmp/ctf.$$ && cd '%s/src' && "
			"find . -mindepth 1 -printf '%%p %%m %%l %%Ts\\n' | sort | diff /tmp/ctf.$$ - >&2; r=$?; "
			"rm -f /tmp/ctf.$$; exit $r",
			src, dst),
		     0);
	close(s.fd);
	stop(&a);
}

TEST(tar_errors_and_a_hostile_archive)
{
	agent_proc a;
	start(&a, 0);
	silo_error err = {0};
	uint32_t id;
	char p[256];
	snprintf(p, sizeof p, "%s/missing", a.dir);
	CHECK_INT_EQ(chan_tar_out_start(a.c, p, 0, &id, &err), 0);   /* the error arrives as the reply */
	exec_result res;
	CHECK_INT_EQ(chan_exec_started(a.c, id, 5000, NULL, &err), -1);
	CHECK_INT_EQ(err.code, SILO_ERR_FILE_NOT_FOUND);
	CHECK_INT_EQ(chan_exec_wait(a.c, id, 5000, &res, &err), -1);
	CHECK_INT_EQ(err.code, SILO_ERR_FILE_NOT_FOUND);
	touch(a.dir, "file", "x");
	snprintf(p, sizeof p, "%s/file", a.dir);
	CHECK_INT_EQ(chan_tar_in_start(a.c, p, &id, &err), 0);
	CHECK_INT_EQ(chan_exec_wait(a.c, id, 5000, &res, &err), -1);
	CHECK_INT_EQ(err.sys_errno, ENOTDIR);
	/* a hostile archive: "../escape" is refused inside the agent; exit 1, the reason on stream 2 */
	char tarf[256], dest[256];
	snprintf(tarf, sizeof tarf, "%s/evil.tar", a.dir);
	snprintf(dest, sizeof dest, "%s/dest", a.dir);
	REQUIRE(tree_sh("cd '%s' && echo pwned > escape && mkdir -p x && tar -cf evil.tar --transform 's,^escape,../escape,' "
		   "escape 2>/dev/null && rm escape",
		   a.dir) == 0);
	int fd = open(tarf, O_RDONLY);
	REQUIRE(fd >= 0);
	REQUIRE(chan_tar_in_start(a.c, dest, &id, &err) == 0);
	sink e = {.fd = -1};
	CHECK_INT_EQ(feed(a.c, id, fd, &res, &e, &err), 0);
	close(fd);
	printf("# %s", e.err);
	CHECK_INT_EQ(res.exit_code, 1);
	CHECK_CONTAINS(e.err, "path traversal refused");
	snprintf(p, sizeof p, "%s/escape", a.dir);
	CHECK(!path_exists(p));
	stop(&a);
}

typedef struct pusher {
	chan *c;
	uint32_t id;
	const uint8_t *data;
	size_t len;
	int rc;
} pusher;

static void *push_stdin(void *arg)
{
	pusher *p = arg;
	silo_error err;
	size_t off = 0;
	while (off < p->len) {
		size_t n = MIN(p->len - off, (size_t)100000);
		if ((p->rc = chan_exec_stdin(p->c, p->id, p->data + off, n, false, &err)) < 0)
			return NULL;
		off += n;
	}
	p->rc = chan_exec_stdin(p->c, p->id, NULL, 0, true, &err);
	return NULL;
}

TEST(pull_tasks_keep_output_while_stdin_flows)
{
	agent_proc a;
	start(&a, 0);
	size_t len = 3u << 20;
	uint8_t *data = xmalloc(len);
	for (size_t i = 0; i < len; i++)
		data[i] = (uint8_t)(i * 7 + (i >> 11));
	char *argv[] = {"cat", NULL};
	exec_req r = {.argv = argv, .uid = -1, .gid = -1, .stdin_stream = true, .pull = true};
	silo_error err = {0};
	uint32_t id;
	REQUIRE(chan_exec_start(a.c, &r, NULL, NULL, &id, &err) == 0);
	pusher p = {a.c, id, data, len, 0};
	pthread_t th;
	REQUIRE(pthread_create(&th, NULL, push_stdin, &p) == 0);
	uint8_t *got = xmalloc(len + 1);
	size_t have = 0;
	for (;;) {
		int stream;
		ssize_t n = chan_exec_read(a.c, id, &stream, got + have, len + 1 - have, 10000, &err);
		if (n <= 0)
			break;
		have += (size_t)n;
		if (have == len / 2)
			usleep(300 * 1000);   /* a slow reader: the writer waits, nothing is dropped */
	}
	pthread_join(th, NULL);
	CHECK_INT_EQ(p.rc, 0);
	CHECK_INT_EQ(have, len);
	CHECK(memcmp(got, data, len) == 0);
	exec_result res;
	CHECK_INT_EQ(chan_exec_wait(a.c, id, 5000, &res, &err), 0);
	/* the exit status while output still waits to be read */
	char *argv2[] = {"sh", "-c", "head -c 100000 /dev/zero; exit 7", NULL};
	exec_req r2 = {.argv = argv2, .uid = -1, .gid = -1, .pull = true};
	REQUIRE(chan_exec_start(a.c, &r2, NULL, NULL, &id, &err) == 0);
	CHECK_INT_EQ(chan_exec_status(a.c, id, 5000, &res, &err), 0);
	CHECK_INT_EQ(res.exit_code, 7);
	have = 0;
	for (;;) {
		int stream;
		ssize_t n = chan_exec_read(a.c, id, &stream, got, len, 1000, &err);
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	CHECK_INT_EQ(have, 100000);
	CHECK_INT_EQ(chan_exec_wait(a.c, id, 5000, &res, &err), 0);
	free(got);
	free(data);
	stop(&a);
}

TEST_MAIN(rename_noreplace_and_missing_paths, list_depth_bound_and_symlink_targets, watch_reports_changes_recursively,
	  watch_overflow_is_reported_not_buffered, tar_out_and_in_round_trip, tar_errors_and_a_hostile_archive,
	  pull_tasks_keep_output_while_stdin_flows)
