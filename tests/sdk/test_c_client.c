/* SPDX-License-Identifier: Apache-2.0
 * libsilo-client (include/silo/client.h) against a real silod with the
 * namespace provider (tests/sdk/run.sh starts it): linked to the shared
 * library alone, through its public header. Every sandbox a case makes is
 * deleted by it; run.sh deletes any left.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "silo/client.h"

#include "harness.h"

static silo_client *connect_default(void)
{
	silo_client *c = NULL;
	silo_error err = {0};
	if (silo_client_new(NULL, &c, &err) < 0) {
		printf("# connect: %s\n", err.message);
		exit(1);
	}
	return c;
}

static void new_sandbox(silo_client *c, char id[SILO_ID_MAX])
{
	silo_error err = {0};
	int rc = silo_client_create(c, "{\"provider\":\"namespace\",\"vcpus\":1,\"memory_mb\":128}", 0, id, NULL, &err);
	if (rc < 0)
		printf("# create: %s: %s\n", silo_code_name(err.code), err.message);
	REQUIRE(rc == 0 && strncmp(id, "sb-", 3) == 0);
}

static void drop_sandbox(silo_client *c, const char *id)
{
	silo_error err = {0};
	CHECK(silo_client_delete(c, id, 0, NULL, &err) == 0);
}

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

TEST(create_exec_files_delete)
{
	silo_client *c = connect_default();
	char id[SILO_ID_MAX], *json = NULL;
	silo_error err = {0};
	new_sandbox(c, id);
	silo_client_exec_opts o = {.size = sizeof o, .argv = ARGV("sh", "-c", "echo hi; echo oops >&2; exit 3")};
	char *out = NULL, *eout = NULL;
	size_t ol = 0, el = 0;
	silo_client_exit ex = {0};
	CHECK(silo_client_exec_collect(c, id, &o, &out, &ol, &eout, &el, &ex, &err) == 0);
	CHECK_STR_EQ(out, "hi\n");
	CHECK_STR_EQ(eout, "oops\n");
	CHECK_INT_EQ(ex.exit_code, 3);
	silo_client_free_buf(out);
	silo_client_free_buf(eout);
	CHECK(silo_client_file_write(c, id, "/tmp/x", "1\0two", 5, 0600, &err) == 0);
	char *data = NULL;
	size_t dl = 0;
	CHECK(silo_client_file_read(c, id, "/tmp/x", &data, &dl, &err) == 0);
	CHECK(dl == 5 && data && memcmp(data, "1\0two", 5) == 0);
	silo_client_free_buf(data);
	CHECK(silo_client_stat(c, id, "/tmp/x", &json, &err) == 0);
	CHECK_CONTAINS(json, "\"mode\":\"0600\"");
	silo_client_free_buf(json);
	CHECK(silo_client_list(c, "provider=namespace", &json, &err) == 0);
	CHECK_CONTAINS(json, id);
	silo_client_free_buf(json);
	CHECK(silo_client_delete(c, id, 0, &json, &err) == 0);
	CHECK_CONTAINS(json, "\"state\":\"terminated\"");
	silo_client_free_buf(json);
	silo_client_free(c);
}

TEST(errors_carry_code_sandbox_and_errno)
{
	silo_client *c = connect_default();
	char id[SILO_ID_MAX];
	silo_error err = {0};
	CHECK(silo_client_get(c, "sb-nosuchthing", NULL, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_VM_NOT_FOUND);
	new_sandbox(c, id);
	char *data = NULL;
	size_t dl;
	CHECK(silo_client_file_read(c, id, "/no/such", &data, &dl, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_FILE_NOT_FOUND);
	CHECK_STR_EQ(err.vm_id, id);
	CHECK_INT_EQ(err.sys_errno, ENOENT);
	CHECK(silo_client_mkdir(c, id, "/tmp", 0, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_CONFLICT);
	CHECK(silo_client_create(c, "{\"provider\":\"namespace\",\"vcpus\":0}", 0, NULL, NULL, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_INVALID_CONFIG);
	CHECK_CONTAINS(err.message, "vcpus");
	CHECK(silo_client_create(c, "[vm]\nprovider = \"namespace\"\n[resources]\nvcpus = \"x\"\n", 1, NULL, NULL, &err) <
	      0);
	CHECK_INT_EQ(err.code, SILO_ERR_INVALID_CONFIG);
	silo_client_exec_opts bad = {.size = sizeof bad, .argv = ARGV("true"), .env = ARGV("NOEQUALS")};
	CHECK(silo_client_exec(c, id, &bad, NULL, NULL, NULL, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_INVALID_CONFIG);
	CHECK(silo_client_request(c, "GET", "/v1/nope", NULL, NULL, 0, NULL, NULL, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_NOT_FOUND);
	drop_sandbox(c, id);
	silo_client_free(c);
}

TEST(tcp_tokens_and_connection_rules)
{
	silo_client *c = NULL;
	silo_error err = {0};
	silo_client_opts ro = {.size = sizeof ro, .host = getenv("SILO_TEST_TCP"), .token = getenv("SILO_TEST_RO_TOKEN")};
	REQUIRE(silo_client_new(&ro, &c, &err) == 0);
	CHECK_STR_EQ(silo_client_target(c), getenv("SILO_TEST_TCP"));
	char *json = NULL;
	CHECK(silo_client_list(c, NULL, &json, &err) == 0);
	silo_client_free_buf(json);
	CHECK(silo_client_create(c, "{\"provider\":\"namespace\"}", 0, NULL, NULL, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_POLICY_DENIED);
	silo_client_free(c);
	silo_client_opts bad = {.size = sizeof bad, .host = getenv("SILO_TEST_TCP"), .token = "wrong"};
	REQUIRE(silo_client_new(&bad, &c, &err) == 0);
	CHECK(silo_client_list(c, NULL, NULL, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_UNAUTHORIZED);
	silo_client_free(c);
	silo_client_opts inj = {.size = sizeof inj, .host = getenv("SILO_TEST_TCP"), .token = "x\r\nX-Evil: 1"};
	CHECK(silo_client_new(&inj, &c, &err) < 0 && err.code == SILO_ERR_INVALID_CONFIG);
	silo_client_opts ftp = {.size = sizeof ftp, .host = "ftp://x"};
	CHECK(silo_client_new(&ftp, &c, &err) < 0 && err.code == SILO_ERR_INVALID_CONFIG);
	/* TLS files only with https://, a certificate only with its key (docs/remote.md) */
	silo_client_opts ca_http = {.size = sizeof ca_http, .host = getenv("SILO_TEST_TCP"), .ca = "/etc/ssl/ca.pem"};
	CHECK(silo_client_new(&ca_http, &c, &err) < 0 && err.code == SILO_ERR_INVALID_CONFIG);
	CHECK_CONTAINS(err.message, "need an https:// host");
	silo_client_opts half = {.size = sizeof half, .host = "https://127.0.0.1:1", .cert = "/c.pem"};
	CHECK(silo_client_new(&half, &c, &err) < 0 && err.code == SILO_ERR_INVALID_CONFIG);
	CHECK_CONTAINS(err.message, "both or neither");
	/* a caller built before the TLS fields: accepted, TLS from the environment */
	silo_client_opts old_abi = {.size = offsetof(silo_client_opts, ca), .host = getenv("SILO_TEST_TCP"),
				    .token = getenv("SILO_TEST_RO_TOKEN"), .ca = "ignored"};
	REQUIRE(silo_client_new(&old_abi, &c, &err) == 0);
	CHECK(silo_client_list(c, NULL, NULL, &err) == 0);
	silo_client_free(c);
	silo_client_opts small = {.size = 4};
	CHECK(silo_client_new(&small, &c, &err) < 0 && err.code == SILO_ERR_INVALID_CONFIG);
	silo_client_opts none = {.size = sizeof none, .socket = "/nonexistent/silod.sock"};
	REQUIRE(silo_client_new(&none, &c, &err) == 0);
	CHECK(silo_client_list(c, NULL, NULL, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_REMOTE_UNREACHABLE);
	CHECK_CONTAINS(err.message, "/nonexistent/silod.sock");
	silo_client_free(c);
	/* the CLI's environment rules */
	setenv("SILO_HOST", getenv("SILO_TEST_TCP"), 1);
	setenv("SILO_API_TOKEN", getenv("SILO_TEST_TOKEN"), 1);
	c = connect_default();
	CHECK_STR_EQ(silo_client_target(c), getenv("SILO_TEST_TCP"));
	CHECK(silo_client_request(c, "GET", "/v1/health", NULL, NULL, 0, &json, NULL, &err) == 0);
	CHECK_CONTAINS(json, "\"status\"");
	silo_client_free_buf(json);
	silo_client_free(c);
	unsetenv("SILO_HOST");
	unsetenv("SILO_SOCKET");
	setenv("SILO_RUNTIME_DIR", "/tmp/elsewhere", 1);
	c = connect_default();
	CHECK_STR_EQ(silo_client_target(c), "unix:/tmp/elsewhere/silod.sock");
	silo_client_free(c);
}

typedef struct seen {
	char buf[4096];
	size_t len;
	int chunks;
	double first_at, stop_after;
	struct timespec t0;
} seen;

static double since(struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static int on_out(void *ud, int stream, const void *data, size_t len)
{
	seen *s = ud;
	if (!s->chunks++)
		s->first_at = since(&s->t0);
	size_t k = len < sizeof s->buf - 1 - s->len ? len : sizeof s->buf - 1 - s->len;
	memcpy(s->buf + s->len, data, k);
	s->len += k;
	s->buf[s->len] = '\0';
	return s->stop_after > 0 && s->chunks >= s->stop_after;
}

TEST(exec_streams_env_cwd_stdin_timeout)
{
	silo_client *c = connect_default();
	char id[SILO_ID_MAX];
	silo_error err = {0};
	new_sandbox(c, id);
	seen s = {0};
	clock_gettime(CLOCK_MONOTONIC, &s.t0);
	silo_client_exec_opts o = {.size = sizeof o, .argv = ARGV("sh", "-c", "echo $A; pwd; cat; sleep 1.5; echo end"),
				   .env = ARGV("A=from-env"), .cwd = "/tmp", .stdin_data = "in", .stdin_len = 2};
	silo_client_exit ex = {0};
	CHECK(silo_client_exec(c, id, &o, on_out, &s, &ex, &err) == 0);
	double total = since(&s.t0);
	CHECK_STR_EQ(s.buf, "from-env\n/tmp\ninend\n");
	CHECK(s.first_at + 1.0 < total); /* streamed, not collected */
	CHECK_INT_EQ(ex.exit_code, 0);
	silo_client_exec_opts t = {.size = sizeof t, .argv = ARGV("sleep", "30"), .timeout_ms = 300};
	CHECK(silo_client_exec(c, id, &t, NULL, NULL, &ex, &err) == 0);
	CHECK(ex.timed_out);
	/* a callback that stops: 1, and the command is killed */
	seen stop = {.stop_after = 1};
	silo_client_exec_opts y = {.size = sizeof y, .argv = ARGV("sh", "-c", "while :; do echo y; sleep 0.05; done")};
	CHECK_INT_EQ(silo_client_exec(c, id, &y, on_out, &stop, &ex, &err), 1);
	struct timespec d = {1, 0};
	nanosleep(&d, NULL);
	char *procs = NULL;
	CHECK(silo_client_procs(c, id, &procs, &err) == 0);
	CHECK(procs && !strstr(procs, "echo y")); /* the disconnect killed it */
	silo_client_free_buf(procs);
	drop_sandbox(c, id);
	silo_client_free(c);
}

TEST(processes_pty_signal_wait)
{
	silo_client *c = connect_default();
	char id[SILO_ID_MAX], p[SILO_ID_MAX];
	silo_error err = {0};
	new_sandbox(c, id);
	silo_client_exec_opts o = {.size = sizeof o, .argv = ARGV("sleep", "60"), .tag = "sleeper"};
	REQUIRE(silo_client_spawn(c, id, &o, p, NULL, &err) == 0);
	CHECK(p[0] == 'p');
	CHECK(silo_client_proc_signal(c, id, "sleeper", "TERM", &err) == 0);
	silo_client_exit ex = {0};
	CHECK(silo_client_proc_wait(c, id, p, 10000, &ex, &err) == 0);
	CHECK_INT_EQ(ex.signal, 15);
	CHECK(silo_client_proc_remove(c, id, p, &err) == 0);
	CHECK(silo_client_proc_wait(c, id, p, 1000, &ex, &err) < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_PROCESS_NOT_FOUND);
	/* a PTY: its size, a resize, stdin */
	silo_client_exec_opts t = {.size = sizeof t, .argv = ARGV("sh", "-c", "stty size; read x; stty size; echo got:$x"),
				   .pty = 1, .rows = 30, .cols = 100, .stdin_open = 1};
	REQUIRE(silo_client_spawn(c, id, &t, p, NULL, &err) == 0);
	CHECK(silo_client_proc_resize(c, id, p, 40, 120, &err) == 0);
	CHECK(silo_client_proc_write(c, id, p, "abc\n", 4, 0, &err) == 0);
	seen s = {0};
	clock_gettime(CLOCK_MONOTONIC, &s.t0);
	CHECK(silo_client_proc_output(c, id, p, on_out, &s, &ex, &err) == 0);
	CHECK_CONTAINS(s.buf, "40 120");
	CHECK_CONTAINS(s.buf, "got:abc");
	CHECK_INT_EQ(ex.exit_code, 0);
	char *json = NULL;
	CHECK(silo_client_procs(c, id, &json, &err) == 0);
	CHECK_CONTAINS(json, p);
	silo_client_free_buf(json);
	drop_sandbox(c, id);
	silo_client_free(c);
}

static int collect_tar(void *ud, const void *data, size_t len)
{
	seen *s = ud;
	s->len += len;
	return 0;
}

TEST(dirs_move_remove_tar)
{
	silo_client *c = connect_default();
	char id[SILO_ID_MAX], *json = NULL;
	silo_error err = {0};
	new_sandbox(c, id);
	CHECK(silo_client_mkdir(c, id, "/tmp/a/b", 1, &err) == 0);
	CHECK(silo_client_file_write(c, id, "/tmp/a/b/f", "data", 4, -1, &err) == 0);
	CHECK(silo_client_list_dir(c, id, "/tmp/a", 2, &json, &err) == 0);
	CHECK_CONTAINS(json, "\"b/f\"");
	silo_client_free_buf(json);
	CHECK(silo_client_move(c, id, "/tmp/a/b/f", "/tmp/a/g", 1, &err) == 0);
	seen s = {0};
	CHECK(silo_client_tar_out(c, id, "/tmp/a", collect_tar, &s, &err) == 0);
	CHECK(s.len >= 2048 && s.len % 512 == 0);
	/* a tar made here: one file "t/h" */
	char tar[2048] = {0};
	strcpy(tar, "t/h");
	memcpy(tar + 100, "0000644", 7);
	memcpy(tar + 108, "0000000", 7);
	memcpy(tar + 116, "0000000", 7);
	memcpy(tar + 124, "00000000003", 11);
	memcpy(tar + 136, "00000000000", 11);
	tar[156] = '0';
	memcpy(tar + 257, "ustar", 6);
	memcpy(tar + 263, "00", 2);
	memset(tar + 148, ' ', 8);
	unsigned sum = 0;
	for (int i = 0; i < 512; i++)
		sum += (unsigned char)tar[i];
	snprintf(tar + 148, 8, "%06o", sum);
	memcpy(tar + 512, "hey", 3);
	CHECK(silo_client_tar_in(c, id, "/tmp/in", tar, sizeof tar, &err) == 0);
	char *data = NULL;
	size_t dl = 0;
	CHECK(silo_client_file_read(c, id, "/tmp/in/t/h", &data, &dl, &err) == 0);
	CHECK(dl == 3 && data && !memcmp(data, "hey", 3));
	silo_client_free_buf(data);
	CHECK(silo_client_remove(c, id, "/tmp/a", 1, &err) == 0);
	CHECK(silo_client_stat(c, id, "/tmp/a", NULL, &err) < 0 && err.code == SILO_ERR_FILE_NOT_FOUND);
	drop_sandbox(c, id);
	silo_client_free(c);
}

TEST(pause_snapshot_fork_restore)
{
	silo_client *c = connect_default();
	char id[SILO_ID_MAX], snap[SILO_ID_MAX], rid[SILO_ID_MAX], *json = NULL;
	silo_error err = {0};
	new_sandbox(c, id);
	CHECK(silo_client_pause(c, id, &err) == 0);
	silo_client_exec_opts o = {.size = sizeof o, .argv = ARGV("true")};
	CHECK(silo_client_exec(c, id, &o, NULL, NULL, NULL, &err) < 0 && err.code == SILO_ERR_CONFLICT);
	CHECK(silo_client_resume(c, id, &err) == 0);
	CHECK(silo_client_file_write(c, id, "/root/mark", "m", 1, -1, &err) == 0);
	if (silo_client_snapshot(c, id, "{\"tags\":[\"c-sdk\"]}", snap, NULL, &err) < 0) {
		drop_sandbox(c, id);
		if (err.code == SILO_ERR_NOT_SUPPORTED)
			SKIP("snapshots: %s", err.message);
		CHECK(0);
		return;
	}
	CHECK(silo_client_fork(c, id, 1, &json, &err) == 0);
	CHECK_CONTAINS(json, "\"sandboxes\"");
	char *f = json ? strstr(json, "\"sandboxes\":[\"") : NULL;
	if (f) {
		char fid[SILO_ID_MAX] = {0};
		sscanf(f + 14, "%63[^\"]", fid);
		drop_sandbox(c, fid);
	}
	silo_client_free_buf(json);
	CHECK(silo_client_restore(c, snap, rid, NULL, &err) == 0);
	char *data = NULL;
	size_t dl = 0;
	CHECK(silo_client_file_read(c, rid, "/root/mark", &data, &dl, &err) == 0);
	CHECK(dl == 1 && data && data[0] == 'm');
	silo_client_free_buf(data);
	drop_sandbox(c, rid);
	drop_sandbox(c, id);
	silo_client_free(c);
}

static int on_event(void *ud, const char *json, size_t len)
{
	seen *s = ud;
	s->chunks++;
	snprintf(s->buf + s->len, sizeof s->buf - s->len, "%s\n", json);
	s->len = strlen(s->buf);
	return 0;
}

static void *create_later(void *arg)
{
	silo_client *c = arg;
	struct timespec d = {0, 300 * 1000 * 1000};
	nanosleep(&d, NULL);
	char id[SILO_ID_MAX];
	new_sandbox(c, id);
	drop_sandbox(c, id);
	return NULL;
}

TEST(events_deploy_and_threads)
{
	silo_client *c = connect_default();
	silo_error err = {0};
	pthread_t th;
	pthread_create(&th, NULL, create_later, c); /* the same handle from another thread */
	seen s = {0};
	CHECK(silo_client_events(c, "types=ready,terminated&limit=2", on_event, &s, &err) == 0);
	pthread_join(th, NULL);
	CHECK_INT_EQ(s.chunks, 2);
	CHECK_CONTAINS(s.buf, "\"type\":\"ready\"");
	CHECK_CONTAINS(s.buf, "\"type\":\"terminated\"");
	char *json = NULL;
	CHECK(silo_client_deploy(c,
				 "{\"name\":\"c-agent\",\"restart\":\"never\",\"spec\":\"[vm]\\nname = \\\"x\\\"\\nprovider = "
				 "\\\"namespace\\\"\\n[resources]\\nvcpus = 1\\nmemory_mb = 128\\n\"}",
				 &json, &err) == 0);
	CHECK_CONTAINS(json, "\"c-agent\"");
	silo_client_free_buf(json);
	CHECK(silo_client_undeploy(c, "c-agent", &err) == 0);
	CHECK(silo_client_undeploy(c, "c-agent", &err) < 0 && err.code == SILO_ERR_VM_NOT_FOUND);
	silo_client_free(c);
}

TEST_MAIN(create_exec_files_delete, errors_carry_code_sandbox_and_errno, tcp_tokens_and_connection_rules,
	  exec_streams_env_cwd_stdin_timeout, processes_pty_signal_wait, dirs_move_remove_tar, pause_snapshot_fork_restore,
	  events_deploy_and_threads)
