/* SPDX-License-Identifier: Apache-2.0
 * The public C API through the shared library only (libsilo.so, silo.h):
 * a real namespace sandbox, and the export list is exactly the public API.
 */
#include "harness.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <fcntl.h>

#include "gate.h"
#include "output_test.h"
#include "silo/silo.h"

/* A namespace sandbox (root only: SKIP otherwise) from the hac.toml doc; its spec in *spec. */
static silo_sandbox *ns_sandbox(const char *doc, silo_spec **spec)
{
	if (geteuid() != 0)
		SKIP("needs root for the namespace provider");
	silo_error err;
	*spec = silo_spec_parse(doc, strlen(doc), &err);
	REQUIRE(*spec);
	silo_sandbox *sb = NULL;
	int rc = silo_sandbox_create(*spec, &sb, &err);
	if (rc < 0)
		printf("# create: %s %s\n", silo_code_name(err.code), err.message);
	REQUIRE(rc == 0);
	return sb;
}

/* Destroy sb (it must succeed) and free its spec. */
static void destroy_sandbox(silo_sandbox *sb, silo_spec *spec)
{
	silo_error err;
	CHECK_INT_EQ(silo_sandbox_destroy(sb, &err), 0);
	silo_spec_free(spec);
}

TEST(namespace_sandbox_through_the_public_api)
{
	if (geteuid() != 0)
		SKIP("needs root for the namespace provider");
	silo_error err;
	/* a workdir that does not exist yet: made when the sandbox is ready */
	const char *doc = "[vm]\nname = \"api-test\"\nprovider = \"namespace\"\n[sandbox]\nworkdir = \"/work/api\"\n"
			  "[sandbox.env]\nGREETING = \"hello\"\n";
	silo_spec *spec = silo_spec_parse(doc, strlen(doc), &err);
	REQUIRE(spec);
	REQUIRE(silo_spec_set_env(spec, "WHO", "api", &err) == 0);
	silo_sandbox *sb = NULL;
	int rc = silo_sandbox_create(spec, &sb, &err);
	if (rc < 0)
		printf("# create: %s %s\n", silo_code_name(err.code), err.message);
	REQUIRE(rc == 0);
	CHECK_STR_EQ(silo_sandbox_provider(sb), "namespace");
	CHECK(strncmp(silo_sandbox_id(sb), "sb-", 3) == 0);
	outbuf o;
	out_reset(&o);
	const char *argv[] = {"sh", "-c", "echo \"$GREETING $WHO $EXTRA $(pwd)\"; exit 7", NULL};
	const char *env[] = {"EXTRA=call", NULL};
	silo_exec_opts eo = {.argv = argv, .env = env, .on_output = out_collect, .userdata = &o};
	silo_exec_result res;
	REQUIRE(silo_sandbox_exec(sb, &eo, &res, &err) == 0);
	CHECK_INT_EQ(res.exit_code, 7);
	CHECK_STR_EQ(o.data, "hello api call /work/api\n");
	/* the call's env and cwd win over the spec's */
	const char *env2[] = {"GREETING=mine", NULL};
	silo_exec_opts eo2 = {.argv = argv, .env = env2, .cwd = "/tmp", .on_output = out_collect, .userdata = &o};
	out_reset(&o);
	REQUIRE(silo_sandbox_exec(sb, &eo2, &res, &err) == 0);
	CHECK_STR_EQ(o.data, "mine api  /tmp\n");
	REQUIRE(silo_sandbox_write_file(sb, "/tmp/f.txt", "payload", 7, 0600, &err) == 0);
	char *back;
	size_t len;
	REQUIRE(silo_sandbox_read_file(sb, "/tmp/f.txt", 0, &back, &len, &err) == 0);
	CHECK(len == 7 && !memcmp(back, "payload", 7));
	free(back);
	const char *empty[] = {NULL};
	silo_exec_opts bad = {.argv = empty};
	CHECK(silo_sandbox_exec(sb, &bad, &res, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_INVALID_CONFIG);
	char id[64];
	snprintf(id, sizeof id, "%s", silo_sandbox_id(sb));
	CHECK_INT_EQ(silo_sandbox_destroy(sb, &err), 0);
	char rundir[4096];
	const char *rt = getenv("SILO_RUNTIME_DIR");
	snprintf(rundir, sizeof rundir, "%s/sandboxes/%s", rt && *rt ? rt : "/run/silo", id);
	CHECK(access(rundir, F_OK) != 0);
	silo_spec_free(spec);
}

/* FNV-1a, 64 bit: enough to tell a byte-exact stream from a lossy one. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

typedef struct slow {
	gate g;
	uint64_t h, bytes;
	int calls;
} slow;

/* Stops dead on the first call until the test opens the gate, then stays slow. */
static void slow_output(void *ud, int stream, const void *p, size_t len)
{
	slow *s = ud;
	gate_pass(&s->g);
	if (stream == 1) {
		s->h = fnv(s->h, p, len);
		s->bytes += len;
	}
	if (s->calls++ % 64 == 0)
		usleep(10000);
}

typedef struct bg {
	silo_sandbox *sb;
	slow *s;
	silo_exec_result res;
	int rc;
	silo_error err;
} bg;

static void *bg_main(void *p)
{
	bg *b = p;
	const char *argv[] = {"seq", "1", "6000000", NULL};
	silo_exec_opts eo = {.argv = argv, .on_output = slow_output, .userdata = b->s};
	b->rc = silo_sandbox_exec(b->sb, &eo, &b->res, &b->err);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

TEST(slow_output_callback_loses_nothing_and_stalls_nobody)
{
	silo_error err;
	silo_spec *spec;
	silo_sandbox *sb = ns_sandbox("[vm]\nname = \"api-slow\"\nprovider = \"namespace\"\n", &spec);
	/* Expected: seq 1 6000000 computed here. */
	uint64_t want_h = 0xcbf29ce484222325ull, want_n = 0;
	char line[32];
	for (int i = 1; i <= 6000000; i++) {
		int n = snprintf(line, sizeof line, "%d\n", i);
		want_h = fnv(want_h, line, (size_t)n);
		want_n += (uint64_t)n;
	}
	slow s = {.g = GATE_INIT, .h = 0xcbf29ce484222325ull};
	bg b = {.sb = sb, .s = &s};
	pthread_t th;
	REQUIRE(pthread_create(&th, NULL, bg_main, &b) == 0);
	gate_wait_entered(&s.g);
	/* The callback of one command is stuck: another command on the same sandbox runs. */
	enum { RUNS = 10 };
	double rtt[RUNS];
	int done = 0;
	const char *t_argv[] = {"true", NULL};
	silo_exec_opts t = {.argv = t_argv};
	for (int i = 0; i < RUNS; i++) {
		double t0 = now_ms();
		silo_exec_result r;
		if (silo_sandbox_exec(sb, &t, &r, &err) < 0 || r.exit_code != 0)
			break;
		rtt[done++] = now_ms() - t0;
	}
	CHECK_INT_EQ(done, RUNS);
	if (done) {
		qsort(rtt, (size_t)done, sizeof rtt[0], cmp_double);
		printf("# silo_sandbox_exec(true) while another command's callback is stuck: p50 %.2f ms, max %.2f ms\n",
		       rtt[done / 2], rtt[done - 1]);
	}
	gate_open(&s.g);
	pthread_join(th, NULL);
	CHECK_INT_EQ(b.rc, 0);
	CHECK_INT_EQ(b.res.exit_code, 0);
	printf("# seq 1 6000000 through a slow callback: %llu bytes (%d calls)\n", (unsigned long long)s.bytes, s.calls);
	CHECK_INT_EQ(s.bytes, want_n);
	CHECK(s.h == want_h);
	destroy_sandbox(sb, spec);
}

TEST(spec_errors_and_format)
{
	silo_error err;
	CHECK(silo_spec_parse("[vm]\nname = 1\n", 14, &err) == NULL);
	CHECK_INT_EQ(err.code, SILO_ERR_INVALID_CONFIG);
	CHECK_CONTAINS(err.message, "vm.name: expected string, got integer");
	silo_spec *s = silo_spec_default("qemu", &err);
	REQUIRE(s);
	char *t = silo_spec_format(s);
	CHECK_CONTAINS(t, "provider = \"qemu\"");
	silo_spec *back = silo_spec_parse(t, strlen(t), &err);
	CHECK(back != NULL);
	free(t);
	silo_spec_free(s);
	silo_spec_free(back);
	CHECK(silo_spec_default("xen", &err) == NULL);
	CHECK_STR_EQ(silo_version(), SILO_VERSION);
}

static size_t read_proc(silo_proc *p, char *dst, size_t cap)
{
	size_t n = 0;
	silo_error err;
	for (;;) {
		int stream;
		char buf[4096];
		int64_t k = silo_proc_read(p, &stream, buf, sizeof buf, 10000, &err);
		if (k <= 0)
			break;
		if (n + (size_t)k < cap) {
			memcpy(dst + n, buf, (size_t)k);
			n += (size_t)k;
		}
	}
	dst[n] = '\0';
	return n;
}

TEST(processes_files_archives_and_watches)
{
	silo_error err;
	silo_spec *spec;
	silo_sandbox *sb = ns_sandbox("[vm]\nname = \"api-procs\"\nprovider = \"namespace\"\n", &spec);
	/* a background process: started, closed, found again by tag, its output kept */
	const char *argv[] = {"sh", "-c", "echo started; read line; echo \"got $line\"; exit 3", NULL};
	silo_proc_opts po = {.argv = argv, .stdin_open = 1, .tag = "worker"};
	silo_proc *p = NULL;
	REQUIRE(silo_proc_start(sb, &po, &p, &err) == 0);
	CHECK_STR_EQ(silo_proc_id(p), "p1");
	CHECK(silo_proc_pid(p) > 0);
	silo_proc_close(p);
	silo_proc_info *infos;
	size_t n;
	REQUIRE(silo_sandbox_procs(sb, &infos, &n, &err) == 0);
	CHECK_INT_EQ(n, 1);
	if (n) {
		CHECK_STR_EQ(infos[0].tag, "worker");
		CHECK_STR_EQ(infos[0].command, "sh -c echo started; read line; echo \"got $line\"; exit 3");
		CHECK(!infos[0].exited);
	}
	silo_proc_infos_free(infos, n);
	REQUIRE(silo_proc_open(sb, "worker", &p, &err) == 0);
	REQUIRE(silo_proc_write(p, "hello\n", 6, 1, &err) == 0);
	silo_exec_result res;
	REQUIRE(silo_proc_wait(p, 5000, &res, &err) == 0);
	CHECK_INT_EQ(res.exit_code, 3);
	char text[256];
	read_proc(p, text, sizeof text);
	CHECK_STR_EQ(text, "started\ngot hello\n");
	CHECK_INT_EQ(silo_proc_kill(p, &err), 0);
	silo_proc_close(p);
	CHECK(silo_proc_open(sb, "worker", &p, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_PROCESS_NOT_FOUND);
	/* a PTY session: resize, then the size it sees */
	const char *sh[] = {"sh", "-c", "read x; stty size", NULL};
	silo_proc_opts tty = {.argv = sh, .stdin_open = 1, .pty = 1, .rows = 10, .cols = 20};
	REQUIRE(silo_proc_start(sb, &tty, &p, &err) == 0);
	REQUIRE(silo_proc_resize(p, 33, 77, &err) == 0);
	REQUIRE(silo_proc_write(p, "\n", 1, 0, &err) == 0);
	read_proc(p, text, sizeof text);
	CHECK_CONTAINS(text, "33 77");
	silo_proc_close(p);
	/* files */
	REQUIRE(silo_sandbox_mkdir(sb, "/tmp/a/b/c", 0750, 1, &err) == 0);
	REQUIRE(silo_sandbox_write_file(sb, "/tmp/a/b/c/f", "data", 4, 0640, &err) == 0);
	silo_file_info fi;
	REQUIRE(silo_sandbox_stat(sb, "/tmp/a/b/c/f", &fi, &err) == 0);
	CHECK_INT_EQ(fi.size, 4);
	CHECK_INT_EQ(fi.mode & 0777, 0640);
	silo_file_info_clear(&fi);
	CHECK(silo_sandbox_stat(sb, "/tmp/nope", &fi, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_FILE_NOT_FOUND);
	silo_file_info *ents;
	int trunc;
	REQUIRE(silo_sandbox_list(sb, "/tmp/a", 3, 0, &ents, &n, &trunc, &err) == 0);
	CHECK_INT_EQ(n, 3);   /* b b/c b/c/f */
	CHECK(!trunc);
	silo_file_infos_free(ents, n);
	REQUIRE(silo_sandbox_rename(sb, "/tmp/a/b/c/f", "/tmp/a/g", 0, &err) == 0);
	/* an archive out and back in, byte-exact */
	char tarf[] = "/tmp/silo-api-tar-XXXXXX";
	int fd = mkstemp(tarf);
	REQUIRE(fd >= 0);
	REQUIRE(silo_sandbox_archive_get(sb, "/tmp/a", fd, &err) == 0);
	REQUIRE(lseek(fd, 0, SEEK_SET) == 0);
	REQUIRE(silo_sandbox_archive_put(sb, "/tmp/copy", fd, &err) == 0);
	close(fd);
	unlink(tarf);
	char *back;
	size_t len;
	REQUIRE(silo_sandbox_read_file(sb, "/tmp/copy/a/g", 0, &back, &len, &err) == 0);
	CHECK(len == 4 && !memcmp(back, "data", 4));
	free(back);
	REQUIRE(silo_sandbox_stat(sb, "/tmp/copy/a/b", &fi, &err) == 0);
	CHECK_INT_EQ(fi.mode & 0777, 0755);
	silo_file_info_clear(&fi);
	/* a watch */
	silo_watch *w;
	REQUIRE(silo_watch_start(sb, "/tmp/copy", 1, &w, &err) == 0);
	REQUIRE(silo_sandbox_write_file(sb, "/tmp/copy/new", "x", 1, 0644, &err) == 0);
	REQUIRE(silo_sandbox_remove(sb, "/tmp/copy/a", 1, &err) == 0);
	bool created = false, removed = false;
	for (int i = 0; i < 20 && !(created && removed); i++) {
		silo_watch_event *ev;
		uint64_t lost;
		if (silo_watch_next(w, &ev, &n, &lost, 200, &err) < 0)
			break;
		for (size_t k = 0; k < n; k++) {
			created |= ev[k].kind == SILO_WATCH_CREATE && !strcmp(ev[k].name, "new");
			removed |= ev[k].kind == SILO_WATCH_REMOVE && !strcmp(ev[k].name, "a");
		}
		silo_watch_events_free(ev, n);
	}
	CHECK(created);
	CHECK(removed);
	silo_watch_stop(w);
	destroy_sandbox(sb, spec);
}

/* Issue 14 item 7: a command past the memory limit ends with 137 and
 * oom_killed; one that kills itself with SIGKILL (and, in a VM, first forges
 * the kernel's OOM line in /dev/kmsg) does not. 1 = run, 0 = skipped. */
static int oom_checks(const char *provider)
{
	silo_error err;
	char doc[256];
	snprintf(doc, sizeof doc, "[vm]\nname = \"oom-%s\"\nprovider = \"%s\"\n[resources]\nmemory_mb = 128\n", provider, provider);
	silo_spec *spec = silo_spec_parse(doc, strlen(doc), &err);
	REQUIRE(spec);
	silo_sandbox *sb = NULL;
	if (silo_sandbox_create(spec, &sb, &err) < 0) {
		printf("# %s: %s %s\n", provider, silo_code_name(err.code), err.message);
		silo_spec_free(spec);
		REQUIRE(err.code == SILO_ERR_PROVIDER_UNAVAILABLE);
		return 0;
	}
	static const struct {
		const char *sh;
		int exit_code, signal, oom;
	} cases[] = {
		{"dd if=/dev/zero bs=1M count=600 2>/dev/null | tail >/dev/null", 137, 0, 1},
		{"exec tail /dev/zero", 137, 9, 1},
		{"kill -9 $$", 137, 9, 0},
		{"echo '<3>Out of memory: Killed process 1 (x)' >/dev/kmsg 2>/dev/null; kill -9 $$", 137, 9, 0},
		{"exit 137", 137, 0, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *argv[] = {"sh", "-c", cases[i].sh, NULL};
		silo_exec_opts eo = {.argv = argv};
		silo_exec_result res;
		REQUIRE(silo_sandbox_exec(sb, &eo, &res, &err) == 0);
		printf("# %s: %s -> exit %d signal %d oom_killed %d\n", provider, cases[i].sh, res.exit_code, res.signal,
		       res.oom_killed);
		CHECK_INT_EQ(res.exit_code, cases[i].exit_code);
		CHECK_INT_EQ(res.signal, cases[i].signal);
		CHECK_INT_EQ(res.oom_killed, cases[i].oom);
	}
	destroy_sandbox(sb, spec);
	return 1;
}

TEST(oom_kill_is_named_namespace)
{
	if (geteuid() != 0)
		SKIP("needs root for the namespace provider");
	CHECK(oom_checks("namespace") == 1);
}

TEST(oom_kill_is_named_qemu)
{
	if (!oom_checks("qemu"))
		SKIP("the qemu provider is unavailable here");
}

TEST(only_the_public_api_is_exported)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/libsilo.so", getenv("SILO_BUILD_ROOT"));
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	REQUIRE(h);
	CHECK(dlsym(h, "silo_sandbox_create") != NULL);
	CHECK(dlsym(h, "silo_code_name") != NULL);
	/* internal functions stay hidden, even those with the silo_ prefix */
	CHECK(dlsym(h, "spec_parse") == NULL);
	CHECK(dlsym(h, "chan_open") == NULL);
	CHECK(dlsym(h, "silo_fail") == NULL);
	CHECK(dlsym(h, "toml_parse") == NULL);
	dlclose(h);
}

TEST_MAIN(namespace_sandbox_through_the_public_api, spec_errors_and_format, only_the_public_api_is_exported,
	  slow_output_callback_loses_nothing_and_stalls_nobody, processes_files_archives_and_watches,
	  oom_kill_is_named_namespace, oom_kill_is_named_qemu)
