/* SPDX-License-Identifier: Apache-2.0
 * Interactive sessions and file trees (docs/benchmarks.md "Interactive
 * sessions and archives"), through a real silod and a namespace sandbox, with
 * the peers measured in the same run:
 *
 *   keystroke   one byte into `cat` on a PTY and its echo back: through a
 *               silod WebSocket session (lib/common/ws.c on the unix socket),
 *               through the embedded C API's process table (libsilo
 *               in-process), and on a local PTY with no sandbox (the floor).
 *   archive     a tree (FILES files of SIZE bytes, plus SMALL files of 4 KiB)
 *               into the sandbox and back: PUT/GET .../archive (one tar
 *               stream) vs today's single-file API (PUT/GET .../files per
 *               file, after POST .../fs/mkdir for the directories); MB/s of
 *               file data, RUNS times each; the same for one 100 MB file.
 *
 *   interactive [--keys N] [--runs N] [--files N] [--size BYTES] [--small N] [--silod PATH]
 *
 * JSON on stdout (p50/p95/p99 us per keystroke; MB/s per transfer, median of
 * the runs), a table on stderr.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "archive/archive.h"
#include "bench_curl.h"
#include "bench_util.h"
#include "common/util.h"
#include "common/ws.h"
#include "core/proc.h"
#include "core/sandbox.h"

static int keys = 500, runs = 3, nfiles = 20, nsmall = 2000;
static uint64_t fsize = 10u << 20;
static char sock[4096], tmp[4096] = "/tmp/silo-bench-inter-XXXXXX";

/* ---- HTTP ---- */

static long http(const char *method, const char *path, const char *ctype, int upload_fd, const void *body, size_t blen,
		 int out_fd, resp *r)
{
	CURL *h = curl_easy_init();
	char url[8192];
	snprintf(url, sizeof url, "http://silod%s", path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, sock);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	struct curl_slist *hd = NULL;
	if (ctype) {
		char c[128];
		snprintf(c, sizeof c, "Content-Type: %s", ctype);
		hd = curl_slist_append(hd, c);
	}
	hd = curl_slist_append(hd, "Expect:");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
	FILE *in = NULL;
	if (upload_fd >= 0) {
		struct stat st;
		fstat(upload_fd, &st);
		in = fdopen(dup(upload_fd), "r");
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READDATA, in);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
	} else if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
	}
	FILE *out = out_fd >= 0 ? fdopen(dup(out_fd), "w") : NULL;
	if (out)
		curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
	else {
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	}
	long st = 0;
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
	if (in)
		fclose(in);
	if (out)
		fclose(out);
	curl_slist_free_all(hd);
	curl_easy_cleanup(h);
	return st;
}

static void drop(resp *r)
{
	free(r->buf);
	r->buf = NULL;
	r->len = 0;
}

/* ---- keystrokes ---- */

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static json_t *series_json(const char *what, double *us, int n)
{
	qsort(us, (size_t)n, sizeof *us, cmp);
	double p50 = bench_pct(us, (size_t)n, 50, 0), p95 = bench_pct(us, (size_t)n, 95, 0),
	       p99 = bench_pct(us, (size_t)n, 99, 0);
	fprintf(stderr, "  %-34s p50 %8.1f us  p95 %8.1f us  p99 %8.1f us  (%d)\n", what, p50, p95, p99, n);
	return json_pack("{s:f,s:f,s:f,s:i}", "p50_us", p50, "p95_us", p95, "p99_us", p99, "n", n);
}

/* a local PTY running cat: the floor */
static json_t *keys_local(void)
{
	int master;
	pid_t pid = forkpty(&master, NULL, NULL, NULL);
	if (pid == 0) {
		execlp("cat", "cat", (char *)NULL);
		_exit(127);
	}
	double *us = xcalloc((size_t)keys, sizeof *us);
	char c;
	for (int i = 0; i < keys; i++) {
		uint64_t t0 = now_mono_ns();
		if (write(master, "k", 1) != 1 || read(master, &c, 1) != 1)
			break;
		us[i] = bench_us_since(t0);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(master);
	json_t *o = series_json("local PTY (no sandbox)", us, keys);
	free(us);
	return o;
}

/* the embedded C API: the sandbox's process table in this process */
static json_t *keys_embedded(void)
{
	vm_spec spec = {0};
	silo_error err;
	if (spec_default("namespace", &spec, &err) < 0)
		die(1, "%s", err.message);
	sandbox *sb;
	if (sandbox_create(&spec, NULL, &sb, &err) < 0)
		die(1, "embedded sandbox: %s", err.message);
	char *argv[] = {"cat", NULL};
	exec_req r = {.argv = argv, .uid = -1, .gid = -1, .pty = true, .stdin_stream = true};
	proc *p;
	if (proc_start(sb->procs, &r, NULL, &p, &err) < 0)
		die(1, "%s", err.message);
	proc_reader *rd = proc_attach(p);
	double *us = xcalloc((size_t)keys, sizeof *us);
	for (int i = 0; i < keys; i++) {
		uint64_t t0 = now_mono_ns();
		proc_stdin(p, "k", 1, false, 5000, NULL, &err);
		char buf[64];
		int stream;
		if (proc_read(rd, &stream, buf, sizeof buf, 5000, &err) <= 0)
			break;
		us[i] = bench_us_since(t0);
	}
	proc_detach(rd);
	proc_remove(p);
	proc_put(p);
	sandbox_destroy(sb, 0, NULL, &err);
	spec_free(&spec);
	json_t *o = series_json("embedded C API (process table)", us, keys);
	free(us);
	return o;
}

static ssize_t sock_rd(void *ud, void *b, size_t n)
{
	return recv(*(int *)ud, b, n, MSG_DONTWAIT);
}

static ssize_t sock_wr(void *ud, const void *b, size_t n)
{
	return send(*(int *)ud, b, n, MSG_NOSIGNAL);
}

/* silod: a WebSocket session on the unix socket */
static json_t *keys_silod(const char *id)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		die_errno(1, "connect %s", sock);
	char key[WS_KEY_LEN + 1];
	ws_new_key(key);
	char *rq = xasprintf("GET /v1/sandboxes/%s/session HTTP/1.1\r\nHost: silod\r\nUpgrade: websocket\r\n"
			     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
			     id, key);
	write_all(fd, rq, strlen(rq));
	free(rq);
	char head[4096];
	size_t hl = 0;
	while (!memmem(head, hl, "\r\n\r\n", 4) && hl < sizeof head) {
		ssize_t k = read(fd, head + hl, sizeof head - hl);
		if (k <= 0)
			die(1, "websocket handshake");
		hl += (size_t)k;
	}
	char *end = (char *)memmem(head, hl, "\r\n\r\n", 4) + 4;
	ws_io io = {sock_rd, sock_wr, fd, &fd};
	ws_conn *ws = ws_conn_new(&io, true, end, hl - (size_t)(end - head));
	const char *start = "{\"argv\":[\"cat\"],\"pty\":true,\"stdin_open\":true}";
	silo_error err;
	ws_send(ws, WS_TEXT, start, strlen(start), NULL, 0, &err);
	int op;
	const uint8_t *d;
	size_t n;
	if (ws_recv(ws, &op, &d, &n, 10000, &err) != 1)
		die(1, "session start: %s", err.message);
	double *us = xcalloc((size_t)keys, sizeof *us);
	for (int i = 0; i < keys; i++) {
		uint64_t t0 = now_mono_ns();
		ws_send(ws, WS_BINARY, "k", 1, NULL, 0, &err);
		for (;;) {
			if (ws_recv(ws, &op, &d, &n, 5000, &err) != 1)
				die(1, "session: %s", err.message);
			if (op == WS_BINARY && n >= 2 && memchr(d + 1, 'k', n - 1))
				break;
		}
		us[i] = bench_us_since(t0);
	}
	ws_close(ws, WS_CLOSE_NORMAL, NULL);
	ws_conn_free(ws);
	close(fd);
	json_t *o = series_json("silod WebSocket session", us, keys);
	free(us);
	return o;
}

/* ---- archives vs files ---- */

static int to_fd(void *ud, const void *b, size_t n, silo_error *err)
{
	return write_all(*(int *)ud, b, n) < 0 ? silo_fail(err, SILO_ERR_IO_ERROR, errno, "write") : 0;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp);
	return v[n / 2];
}

static void make_tree(const char *dir, int files, uint64_t size, int small)
{
	mkdir_p(dir, 0755);
	char *buf = xmalloc(1 << 20);
	random_bytes(buf, 1 << 20);
	char p[4200];
	for (int i = 0; i < files; i++) {
		snprintf(p, sizeof p, "%s/big%02d", dir, i);
		int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		for (uint64_t left = size; left;) {
			size_t k = (size_t)MIN(left, (uint64_t)(1 << 20));
			write_all(fd, buf, k);
			left -= k;
		}
		close(fd);
	}
	for (int i = 0; i < small; i++) {
		snprintf(p, sizeof p, "%s/small/d%02d", dir, i / 100);
		mkdir_p(p, 0755);
		snprintf(p, sizeof p, "%s/small/d%02d/f%04d", dir, i / 100, i);
		int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		write_all(fd, buf + i, 4096);
		close(fd);
	}
	free(buf);
}

typedef struct ent {
	char rel[256];
	bool dir;
} ent;

static ent *walk(const char *root, int *n)
{
	ent *v = NULL;
	*n = 0;
	char cmd[4300];
	snprintf(cmd, sizeof cmd, "cd '%s' && find . -mindepth 1 -printf '%%y %%P\\n' | sort", root);
	FILE *f = popen(cmd, "r");
	char line[512];
	while (f && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = '\0';
		v = xrealloc(v, sizeof *v * (size_t)(*n + 1));
		v[*n].dir = line[0] == 'd';
		snprintf(v[*n].rel, sizeof v[*n].rel, "%s", line + 2);
		(*n)++;
	}
	if (f)
		pclose(f);
	return v;
}

/* rm -r /work in sandbox id (the body's length without its NUL). */
static void clear_work(const char *id)
{
	static const char body[] = "{\"path\":\"/work\",\"recursive\":true}";
	char path[512];
	resp rs = {0};
	snprintf(path, sizeof path, "/v1/sandboxes/%s/fs/remove", id);
	http("POST", path, "application/json", -1, body, sizeof body - 1, -1, &rs);
	drop(&rs);
}

/* MB/s in and out, tar vs files, for the tree at src (data bytes). */
static json_t *transfer(const char *label, const char *id, const char *src, uint64_t data)
{
	double ain[16], aout[16], fin[16], fout[16];
	int nent;
	ent *ents = walk(src, &nent);
	int tarfd = memfd_create("tar", MFD_CLOEXEC);
	archive_wopts wo = {.name = "t"};
	silo_error err;
	if (archive_write(AT_FDCWD, src, &wo, to_fd, &tarfd, NULL, &err) < 0)
		die(1, "%s", err.message);
	for (int r = 0; r < runs; r++) {
		char path[512];
		resp rs = {0};
		/* archive in */
		clear_work(id);
		lseek(tarfd, 0, SEEK_SET);
		uint64_t t0 = now_mono_ns();
		snprintf(path, sizeof path, "/v1/sandboxes/%s/archive?path=/work", id);
		if (http("PUT", path, "application/x-tar", tarfd, NULL, 0, -1, &rs) != 200)
			die(1, "PUT archive: %s", rs.buf ? rs.buf : "?");
		drop(&rs);
		ain[r] = (double)data / 1e6 / (bench_ms_since(t0) / 1e3);
		/* archive out */
		int out = memfd_create("out", MFD_CLOEXEC);
		t0 = now_mono_ns();
		snprintf(path, sizeof path, "/v1/sandboxes/%s/archive?path=/work/t", id);
		if (http("GET", path, NULL, -1, NULL, 0, out, &rs) != 200)
			die(1, "GET archive");
		aout[r] = (double)data / 1e6 / (bench_ms_since(t0) / 1e3);
		close(out);
		/* files in: mkdir for each directory, PUT each file */
		clear_work(id);
		t0 = now_mono_ns();
		for (int i = -1; i < nent; i++) {
			char b[600], lp[4500];
			if (i < 0 || ents[i].dir) {
				int bl = snprintf(b, sizeof b, "{\"path\":\"/work/t%s%s\",\"parents\":true}", i < 0 ? "" : "/",
						  i < 0 ? "" : ents[i].rel);
				snprintf(path, sizeof path, "/v1/sandboxes/%s/fs/mkdir", id);
				http("POST", path, "application/json", -1, b, (size_t)bl, -1, &rs);
				drop(&rs);
				continue;
			}
			snprintf(lp, sizeof lp, "%s/%s", src, ents[i].rel);
			int fd = open(lp, O_RDONLY);
			snprintf(path, sizeof path, "/v1/sandboxes/%s/files?path=/work/t/%s", id, ents[i].rel);
			if (http("PUT", path, "application/octet-stream", fd, NULL, 0, -1, &rs) != 200)
				die(1, "PUT file: %s", rs.buf ? rs.buf : "?");
			drop(&rs);
			close(fd);
		}
		fin[r] = (double)data / 1e6 / (bench_ms_since(t0) / 1e3);
		/* files out */
		t0 = now_mono_ns();
		for (int i = 0; i < nent; i++) {
			if (ents[i].dir)
				continue;
			int o2 = memfd_create("o", MFD_CLOEXEC);
			snprintf(path, sizeof path, "/v1/sandboxes/%s/files?path=/work/t/%s", id, ents[i].rel);
			if (http("GET", path, NULL, -1, NULL, 0, o2, &rs) != 200)
				die(1, "GET file");
			close(o2);
		}
		fout[r] = (double)data / 1e6 / (bench_ms_since(t0) / 1e3);
	}
	close(tarfd);
	free(ents);
	double a_in = median(ain, runs), a_out = median(aout, runs), f_in = median(fin, runs), f_out = median(fout, runs);
	fprintf(stderr, "  %-22s archive in %7.1f MB/s  out %7.1f MB/s | files in %7.1f MB/s  out %7.1f MB/s\n", label,
		a_in, a_out, f_in, f_out);
	return json_pack("{s:I,s:i,s:f,s:f,s:f,s:f}", "data_bytes", (json_int_t)data, "entries", nent,
			 "archive_in_MBps", a_in, "archive_out_MBps", a_out, "files_in_MBps", f_in, "files_out_MBps", f_out);
}

int main(int argc, char **argv)
{
	const char *silod = NULL;
	const bench_opt opts[] = {
		{"--keys", BOPT_INT, &keys},   {"--runs", BOPT_INT, &runs},   {"--files", BOPT_INT, &nfiles},
		{"--size", BOPT_U64, &fsize},  {"--small", BOPT_INT, &nsmall}, {"--silod", BOPT_STR, &silod},
		{NULL, 0, NULL},
	};
	bench_opts(argc, argv, opts, "interactive [--keys N] [--runs N] [--files N] [--size BYTES] [--small N] [--silod PATH]");
	if (keys < 1 || runs < 1 || runs > 16)
		die(2, "--keys >= 1, --runs 1..16");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	char path[4096];
	bench_find_silod(&silod, path);
	char *sargv[] = {(char *)silod, NULL};
	pid_t dp = bench_spawn_silod(sargv, tmp, sock, sizeof sock);   /* also sets the dirs for the embedded sandbox */
	if (dp < 0)
		die_errno(1, "start silod");
	fprintf(stderr, "interactive sessions and archives (namespace provider)\n");
	json_t *kl = keys_local(), *ke = keys_embedded();
	resp r = {0};
	for (int i = 0; i < 200 && http("GET", "/v1/health", NULL, -1, NULL, 0, -1, &r) != 200; i++) {
		drop(&r);
		usleep(50000);
	}
	drop(&r);
	const char *body = "{\"provider\":\"namespace\",\"name\":\"bench\",\"vcpus\":1,\"memory_mb\":512}";
	if (http("POST", "/v1/sandboxes", "application/json", -1, body, strlen(body), -1, &r) != 201)
		die(1, "create: %s", r.buf ? r.buf : "?");
	json_t *sb = json_loads(r.buf, 0, NULL);
	char id[64];
	snprintf(id, sizeof id, "%s", json_string_value(json_object_get(sb, "id")));
	json_decref(sb);
	drop(&r);
	json_t *ks = keys_silod(id);
	char tree[4200], one[4200];
	snprintf(tree, sizeof tree, "%s/tree", tmp);
	snprintf(one, sizeof one, "%s/one", tmp);
	make_tree(tree, nfiles, fsize, nsmall);
	make_tree(one, 1, 100u << 20, 0);
	json_t *t1 = transfer("tree", id, tree, (uint64_t)nfiles * fsize + (uint64_t)nsmall * 4096);
	json_t *t2 = transfer("one 100 MB file", id, one, 100u << 20);
	json_t *out = json_pack("{s:{s:o,s:o,s:o},s:{s:o,s:o}}", "keystroke", "silod_websocket", ks, "embedded_proc", ke,
				"local_pty_floor", kl, "archive", "tree", t1, "one_file", t2);
	bench_print_json(out, 0);
	json_decref(out);
	char p2[256];
	snprintf(p2, sizeof p2, "/v1/sandboxes/%s?grace_ms=0", id);
	http("DELETE", p2, NULL, -1, NULL, 0, -1, &r);
	drop(&r);
	bench_silod_stop(dp, tmp);
	return 0;
}
