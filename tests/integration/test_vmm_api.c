/* SPDX-License-Identifier: Apache-2.0
 * silo-vmm's Firecracker-compatible control API (--api-sock), end to end on this
 * machine's /dev/kvm with the tiny payloads from tests/guest: configure and start a
 * VM over HTTP, pause/resume a running guest (its serial output stops and restarts),
 * recover from a failed InstanceStart, refuse malformed HTTP and JSON with a clear
 * fault_message, run inside the jail, and interoperate with curl as Firecracker's
 * getting-started guide drives it. Skips when /dev/kvm cannot be opened.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "harness.h"

static char vmm_path[4096], guest_dir[4096];

static void need_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		SKIP("/dev/kvm cannot be opened: %s", strerror(errno));
	close(fd);
	const char *b = getenv("SILO_BUILD_ROOT");
	REQUIRE(b);
	snprintf(vmm_path, sizeof vmm_path, "%s/vmm/silo-vmm", b);
	snprintf(guest_dir, sizeof guest_dir, "%s/vmm", b);
	REQUIRE(access(vmm_path, X_OK) == 0);
}

static void msleep(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

typedef struct vmm_proc {
	pid_t pid;
	char dir[64], sock[128], serial[128], err[128];
} vmm_proc;

/* Start silo-vmm --api-sock DIR/api.sock --serial-log DIR/serial plus extra args; wait for the socket. */
static void vmm_start(vmm_proc *p, const char *const *extra)
{
	snprintf(p->dir, sizeof p->dir, "/tmp/silo-vmm-api-XXXXXX");
	REQUIRE(mkdtemp(p->dir));
	snprintf(p->sock, sizeof p->sock, "%s/api.sock", p->dir);
	snprintf(p->serial, sizeof p->serial, "%s/serial", p->dir);
	snprintf(p->err, sizeof p->err, "%s/stderr", p->dir);
	const char *argv[32];
	int n = 0;
	argv[n++] = vmm_path;
	argv[n++] = "--api-sock";
	argv[n++] = p->sock;
	argv[n++] = "--serial-log";
	argv[n++] = p->serial;
	argv[n++] = "--id";
	argv[n++] = "test-vm";
	for (int i = 0; extra && extra[i] && n < 30; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	p->pid = fork();
	REQUIRE(p->pid >= 0);
	if (p->pid == 0) {
		int efd = open(p->err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(efd, 2);
		execv(vmm_path, (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 500 && access(p->sock, F_OK) != 0; i++)
		msleep(10);
	REQUIRE(access(p->sock, F_OK) == 0);
}

/* Wait for the process (SIGTERM first if term); returns its exit status. Checks that
 * the socket file is gone, then removes the temp dir. */
static int vmm_finish(vmm_proc *p, bool term)
{
	if (term)
		kill(p->pid, SIGTERM);
	int st = 0;
	while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
		;
	CHECK(access(p->sock, F_OK) != 0); /* the API socket is removed on exit */
	FILE *f = fopen(p->err, "r");
	char line[512];
	while (f && fgets(line, sizeof line, f))
		printf("# stderr: %s", line);
	if (f)
		fclose(f);
	unlink(p->serial);
	unlink(p->err);
	CHECK(rmdir(p->dir) == 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int api_connect(const char *sock)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(fd >= 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
	REQUIRE(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
	struct timeval tv = {.tv_sec = 10};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	return fd;
}

/* Read one response (headers + Content-Length body) from fd. Returns the status; body in out. */
static int read_response(int fd, char *out, size_t outlen)
{
	static char buf[131072];
	size_t len = 0;
	char *hend = NULL;
	size_t need = 0;
	for (;;) {
		if (!hend && (hend = memmem(buf, len, "\r\n\r\n", 4))) {
			char *cl = memmem(buf, (size_t)(hend - buf), "Content-Length: ", 16);
			need = (size_t)(hend - buf) + 4 + (cl ? strtoul(cl + 16, NULL, 10) : 0);
		}
		if (hend && len >= need)
			break;
		ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = 0;
	int status = 0;
	if (sscanf(buf, "HTTP/1.1 %d", &status) != 1)
		status = -1;
	if (out) {
		snprintf(out, outlen, "%s", hend ? hend + 4 : "");
		if (hend && need < len)
			out[need - (size_t)(hend + 4 - buf)] = 0;
	}
	return status;
}

/* One request on a fresh connection; body may be NULL. */
static int req(const char *sock, const char *method, const char *path, const char *body, char *out, size_t outlen)
{
	int fd = api_connect(sock);
	char head[512];
	size_t blen = body ? strlen(body) : 0;
	int n = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: %zu\r\n\r\n", method,
			 path, blen);
	REQUIRE(write(fd, head, (size_t)n) == n);
	if (blen)
		REQUIRE(write(fd, body, blen) == (ssize_t)blen);
	int st = read_response(fd, out, outlen);
	close(fd);
	printf("# %s %s -> %d %s\n", method, path, st, out ? out : "");
	return st;
}

/* Raw bytes on a fresh connection; returns the status of the first response. */
static int raw(const char *sock, const char *bytes, size_t len, char *out, size_t outlen)
{
	int fd = api_connect(sock);
	REQUIRE(write(fd, bytes, len) == (ssize_t)len);
	int st = read_response(fd, out, outlen);
	close(fd);
	printf("# raw (%zu bytes) -> %d %s\n", len, st, out ? out : "");
	return st;
}

static long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static const char *payload(const char *name)
{
	static char bufs[4][4096];
	static int i;
	char *b = bufs[i++ % 4];
	snprintf(b, 4096, "%s/%s", guest_dir, name);
	return b;
}

static void put_boot_source(const char *sock, const char *kernel)
{
	char body[4200], out[1024];
	snprintf(body, sizeof body, "{\"kernel_image_path\": \"%s\", \"boot_args\": \"console=ttyS0\"}", kernel);
	CHECK_INT_EQ(req(sock, "PUT", "/boot-source", body, out, sizeof out), 204);
}

TEST(configure_and_start_over_the_api)
{
	need_kvm();
	vmm_proc p;
	vmm_start(&p, NULL);
	char out[4096];
	CHECK_INT_EQ(req(p.sock, "GET", "/", NULL, out, sizeof out), 200);
	CHECK_CONTAINS(out, "\"state\":\"Not started\"");
	CHECK_CONTAINS(out, "\"id\":\"test-vm\"");
	CHECK_INT_EQ(req(p.sock, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}", out, sizeof out), 204);
	CHECK_INT_EQ(req(p.sock, "PATCH", "/machine-config", "{\"mem_size_mib\": 96}", out, sizeof out), 204);
	CHECK_INT_EQ(req(p.sock, "GET", "/machine-config", NULL, out, sizeof out), 200);
	CHECK_CONTAINS(out, "\"mem_size_mib\":96");
	CHECK_CONTAINS(out, "\"vcpu_count\":1");
	put_boot_source(p.sock, payload("elf64.elf"));
	CHECK_INT_EQ(req(p.sock, "GET", "/vm/config", NULL, out, sizeof out), 200);
	CHECK_CONTAINS(out, "elf64.elf");
	CHECK_CONTAINS(out, "\"mem_size_mib\":96");
	CHECK_INT_EQ(req(p.sock, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", out, sizeof out), 204);
	/* The payload prints a line and exits through the debug-exit port with 42. */
	CHECK_INT_EQ(vmm_finish(&p, false), 42);
}

TEST(pause_stops_the_guest_and_resume_continues_it)
{
	need_kvm();
	vmm_proc p;
	vmm_start(&p, NULL);
	char out[4096];
	put_boot_source(p.sock, payload("ticker.elf"));
	CHECK_INT_EQ(req(p.sock, "PATCH", "/vm", "{\"state\": \"Paused\"}", out, sizeof out), 400);
	CHECK_CONTAINS(out, "has not been started");
	CHECK_INT_EQ(req(p.sock, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", out, sizeof out), 204);
	for (int i = 0; i < 300 && file_size(p.serial) < 3; i++)
		msleep(10);
	CHECK(file_size(p.serial) >= 3);
	CHECK_INT_EQ(req(p.sock, "GET", "/", NULL, out, sizeof out), 200);
	CHECK_CONTAINS(out, "\"state\":\"Running\"");
	for (int round = 0; round < 3; round++) {
		CHECK_INT_EQ(req(p.sock, "PATCH", "/vm", "{\"state\": \"Paused\"}", out, sizeof out), 204);
		CHECK_INT_EQ(req(p.sock, "GET", "/", NULL, out, sizeof out), 200);
		CHECK_CONTAINS(out, "\"state\":\"Paused\"");
		long a = file_size(p.serial);
		msleep(300);
		long b = file_size(p.serial);
		printf("# round %d: paused, serial %ld -> %ld bytes over 300 ms\n", round, a, b);
		CHECK_INT_EQ(b, a); /* no guest instruction ran while paused */
		/* Pausing twice is fine (idempotent, as in Firecracker). */
		CHECK_INT_EQ(req(p.sock, "PATCH", "/vm", "{\"state\": \"Paused\"}", out, sizeof out), 204);
		CHECK_INT_EQ(req(p.sock, "PATCH", "/vm", "{\"state\": \"Resumed\"}", out, sizeof out), 204);
		long c = -1;
		for (int i = 0; i < 300; i++) {
			msleep(10);
			if ((c = file_size(p.serial)) > b)
				break;
		}
		printf("# round %d: resumed, serial %ld -> %ld bytes\n", round, b, c);
		CHECK(c > b);
	}
	CHECK_INT_EQ(req(p.sock, "PATCH", "/vm", "{\"state\": \"Stopped\"}", out, sizeof out), 400);
	CHECK_CONTAINS(out, "vm.state");
	CHECK_INT_EQ(req(p.sock, "PUT", "/boot-source", "{\"kernel_image_path\": \"/x\"}", out, sizeof out), 400);
	CHECK_CONTAINS(out, "not supported after starting");
	CHECK_INT_EQ(req(p.sock, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", out, sizeof out), 400);
	CHECK_CONTAINS(out, "already running");
	/* A paused VM still stops on SIGTERM. */
	CHECK_INT_EQ(req(p.sock, "PATCH", "/vm", "{\"state\": \"Paused\"}", out, sizeof out), 204);
	CHECK_INT_EQ(vmm_finish(&p, true), 0);
}

TEST(failed_start_is_reported_and_recoverable)
{
	need_kvm();
	vmm_proc p;
	vmm_start(&p, NULL);
	char out[4096];
	CHECK_INT_EQ(req(p.sock, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", out, sizeof out), 400);
	CHECK_CONTAINS(out, "boot-source first");
	put_boot_source(p.sock, "/nonexistent/vmlinux");
	CHECK_INT_EQ(req(p.sock, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", out, sizeof out), 400);
	CHECK_CONTAINS(out, "/nonexistent/vmlinux");
	CHECK_INT_EQ(req(p.sock, "PUT", "/drives/rootfs",
			 "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/nonexistent/disk.img\", \"is_root_device\": true, \"is_read_only\": false}",
			 out, sizeof out), 204);
	put_boot_source(p.sock, payload("elf64.elf"));
	CHECK_INT_EQ(req(p.sock, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", out, sizeof out), 400);
	CHECK_CONTAINS(out, "/nonexistent/disk.img");
	CHECK_INT_EQ(req(p.sock, "GET", "/", NULL, out, sizeof out), 200);
	CHECK_CONTAINS(out, "Not started");
	/* Fix the drive (same id replaces it) and start for real. */
	char disk[128], body[512];
	snprintf(disk, sizeof disk, "%s/disk.img", p.dir);
	int fd = open(disk, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	REQUIRE(fd >= 0 && ftruncate(fd, 1 << 20) == 0);
	close(fd);
	snprintf(body, sizeof body, "{\"drive_id\": \"rootfs\", \"path_on_host\": \"%s\", \"is_read_only\": true}", disk);
	CHECK_INT_EQ(req(p.sock, "PUT", "/drives/rootfs", body, out, sizeof out), 204);
	CHECK_INT_EQ(req(p.sock, "GET", "/vm/config", NULL, out, sizeof out), 200);
	CHECK_CONTAINS(out, "\"is_read_only\":true");
	CHECK(strstr(out, "nonexistent") == NULL);
	CHECK_INT_EQ(req(p.sock, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", out, sizeof out), 204);
	unlink(disk);
	CHECK_INT_EQ(vmm_finish(&p, false), 42);
}

TEST(malformed_requests_get_clear_errors)
{
	need_kvm();
	vmm_proc p;
	vmm_start(&p, NULL);
	char out[4096];
	static const struct {
		const char *method, *path, *body;
		int status;
		const char *needle;
	} cases[] = {
		{"PUT", "/boot-source", "{\"kernel_image_path\": ", 400, "invalid JSON at line 1"},
		{"PUT", "/boot-source", "", 400, "JSON body is required"},
		{"PUT", "/boot-source", "[1,2]", 400, "expected an object"},
		{"PUT", "/boot-source", "{\"kernel_image_path\": \"/k\", \"kernel_image_path\": \"/j\"}", 400, "duplicate"},
		{"PUT", "/boot-source", "{\"kernel_image_path\": \"/k\", \"bogus\": 1}", 400, "boot-source.bogus"},
		{"PUT", "/boot-source", "{\"boot_args\": \"x\"}", 400, "boot-source.kernel_image_path: required"},
		{"PUT", "/machine-config", "{\"vcpu_count\": 0, \"mem_size_mib\": 64}", 400, "machine-config.vcpu_count"},
		{"PUT", "/machine-config", "{\"vcpu_count\": 1}", 400, "machine-config.mem_size_mib: required"},
		{"PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64, \"smt\": true}", 400, "machine-config.smt"},
		{"PUT", "/drives/a", "{\"drive_id\": \"b\", \"path_on_host\": \"/d\"}", 400, "does not match"},
		{"PUT", "/drives/a", "{\"drive_id\": \"a\", \"path_on_host\": \"/d\", \"is_read_only\": 1}", 400, "is_read_only"},
		{"PUT", "/drives/", "{}", 404, "no such resource"},
		{"PUT", "/vsock", "{\"uds_path\": \"/tmp/v.sock\", \"guest_cid\": 2}", 400, "vsock.guest_cid"},
		{"PUT", "/actions", "{\"action_type\": \"FlushMetrics\"}", 400, "FlushMetrics"},
		{"PUT", "/actions", "{\"action\": \"InstanceStart\"}", 400, "actions.action"},
		{"PATCH", "/vm", "{\"state\": \"Paused\"}", 400, "has not been started"},
		{"DELETE", "/boot-source", NULL, 405, "method not allowed"},
		{"POST", "/", NULL, 405, "method not allowed"},
		{"GET", "/snapshot/create", NULL, 404, "no such resource"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		CHECK_INT_EQ(req(p.sock, cases[i].method, cases[i].path, cases[i].body, out, sizeof out), cases[i].status);
		CHECK_CONTAINS(out, "fault_message");
		CHECK_CONTAINS(out, cases[i].needle);
	}
	/* HTTP-level garbage. */
	static const char not_http[] = "HELLO\r\n\r\n";
	CHECK_INT_EQ(raw(p.sock, not_http, sizeof not_http - 1, out, sizeof out), 400);
	CHECK_CONTAINS(out, "request line");
	static const char http2[] = "GET / HTTP/2.0\r\n\r\n";
	CHECK_INT_EQ(raw(p.sock, http2, sizeof http2 - 1, out, sizeof out), 505);
	static const char ctl[] = "GET / HTTP/1.1\r\nX-A: \x01\r\n\r\n";
	CHECK_INT_EQ(raw(p.sock, ctl, sizeof ctl - 1, out, sizeof out), 400);
	CHECK_CONTAINS(out, "0x01");
	static const char badhdr[] = "GET / HTTP/1.1\r\nno colon here\r\n\r\n";
	CHECK_INT_EQ(raw(p.sock, badhdr, sizeof badhdr - 1, out, sizeof out), 400);
	CHECK_CONTAINS(out, "malformed header");
	static const char chunked[] = "PUT /boot-source HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
	CHECK_INT_EQ(raw(p.sock, chunked, sizeof chunked - 1, out, sizeof out), 501);
	static const char badlen[] = "PUT /boot-source HTTP/1.1\r\nContent-Length: -5\r\n\r\n";
	CHECK_INT_EQ(raw(p.sock, badlen, sizeof badlen - 1, out, sizeof out), 400);
	CHECK_CONTAINS(out, "Content-Length");
	static const char twolen[] = "PUT /boot-source HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}";
	CHECK_INT_EQ(raw(p.sock, twolen, sizeof twolen - 1, out, sizeof out), 400);
	static const char huge[] = "PUT /boot-source HTTP/1.1\r\nContent-Length: 51201\r\n\r\n";
	CHECK_INT_EQ(raw(p.sock, huge, sizeof huge - 1, out, sizeof out), 413);
	/* Headers that never end: refused at 8 KiB. */
	static char big[10000];
	memcpy(big, "GET / HTTP/1.1\r\n", 16);
	for (size_t i = 16; i < sizeof big; i++)
		big[i] = i % 80 == 79 ? '\n' : i % 80 == 78 ? '\r' : i % 80 < 4 ? 'X' : 'a';
	CHECK_INT_EQ(raw(p.sock, big, sizeof big, out, sizeof out), 431);
	/* Too many connections: the ninth is told so; the first eight still work. */
	int fds[8];
	for (int i = 0; i < 8; i++)
		fds[i] = api_connect(p.sock);
	msleep(100);
	int extra = api_connect(p.sock);
	CHECK_INT_EQ(read_response(extra, out, sizeof out), 503);
	close(extra);
	static const char get[] = "GET / HTTP/1.1\r\n\r\n";
	REQUIRE(write(fds[7], get, sizeof get - 1) == sizeof get - 1);
	CHECK_INT_EQ(read_response(fds[7], out, sizeof out), 200);
	for (int i = 0; i < 8; i++)
		close(fds[i]);
	msleep(50);
	/* Keep-alive and pipelining: two requests in one write, two answers in order. */
	int fd = api_connect(p.sock);
	static const char two[] = "GET / HTTP/1.1\r\n\r\nGET /machine-config HTTP/1.1\r\n\r\n";
	REQUIRE(write(fd, two, sizeof two - 1) == sizeof two - 1);
	CHECK_INT_EQ(read_response(fd, out, sizeof out), 200);
	CHECK_CONTAINS(out, "Not started");
	CHECK_INT_EQ(read_response(fd, out, sizeof out), 200);
	CHECK_CONTAINS(out, "vcpu_count");
	close(fd);
	/* After all that the VMM still answers and exits cleanly. */
	CHECK_INT_EQ(req(p.sock, "GET", "/", NULL, out, sizeof out), 200);
	CHECK_INT_EQ(vmm_finish(&p, true), 0);
}

TEST(config_file_boots_at_once_and_the_api_runs_in_the_jail)
{
	need_kvm();
	if (geteuid() != 0)
		SKIP("the jail needs root (namespaces, pivot_root)");
	char jail[] = "/tmp/silo-vmm-api-jail-XXXXXX", cfg[] = "/tmp/silo-vmm-api-cfg-XXXXXX";
	REQUIRE(mkdtemp(jail));
	int cfd = mkstemp(cfg);
	REQUIRE(cfd >= 0);
	dprintf(cfd, "{\"boot-source\": {\"kernel_image_path\": \"%s\"}, \"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 32}}\n",
		payload("ticker.elf"));
	close(cfd);
	const char *extra[] = {"--config", cfg, "--jail", jail, NULL};
	/* LeakSanitizer's exit-time scan needs ptrace, which the seccomp filter refuses. */
	setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
	vmm_proc p;
	vmm_start(&p, extra);
	char out[4096];
	for (int i = 0; i < 300 && file_size(p.serial) < 3; i++)
		msleep(10);
	CHECK_INT_EQ(req(p.sock, "GET", "/", NULL, out, sizeof out), 200);
	CHECK_CONTAINS(out, "Running");
	CHECK_INT_EQ(req(p.sock, "GET", "/vm/config", NULL, out, sizeof out), 200);
	CHECK_CONTAINS(out, "ticker.elf");
	CHECK_CONTAINS(out, "\"mem_size_mib\":32");
	/* Served by the API thread under the jail's seccomp filter: a syscall outside the
	 * allow-list would have killed the process. */
	CHECK_INT_EQ(req(p.sock, "PATCH", "/vm", "{\"state\": \"Paused\"}", out, sizeof out), 204);
	long a = file_size(p.serial);
	msleep(200);
	CHECK_INT_EQ(file_size(p.serial), a);
	CHECK_INT_EQ(req(p.sock, "PATCH", "/vm", "{\"state\": \"Resumed\"}", out, sizeof out), 204);
	CHECK_INT_EQ(req(p.sock, "PUT", "/drives/x", "{\"drive_id\": \"x\", \"path_on_host\": \"/d\"}", out, sizeof out), 400);
	/* The jailed VMM (the relay's child) sits in its own cgroup with the memory limit of
	 * guest RAM (32 MiB) + 512 MiB VMM overhead; the cgroup is gone after exit. */
	char path[256], cg[4096] = "", line[512];
	snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)p.pid, (int)p.pid);
	FILE *f = fopen(path, "r");
	int child = 0;
	if (f) {
		CHECK(fscanf(f, "%d", &child) == 1);
		fclose(f);
	}
	CHECK(child > 0);
	snprintf(path, sizeof path, "/proc/%d/cgroup", child);
	f = fopen(path, "r");
	bool v1 = access("/sys/fs/cgroup/memory/silo", F_OK) == 0;
	while (f && fgets(line, sizeof line, f)) {
		char *c = strrchr(line, ':');
		line[strcspn(line, "\n")] = 0;
		if (c && (v1 ? strstr(line, ":memory:") != NULL : !strncmp(line, "0::", 3)))
			snprintf(cg, sizeof cg, "%s%s", v1 ? "/sys/fs/cgroup/memory" : "/sys/fs/cgroup/unified", c + 1);
	}
	if (f)
		fclose(f);
	printf("# jailed VMM pid %d in cgroup %s\n", child, cg);
	CHECK_CONTAINS(cg, "/silo/vmm-test-vm-");
	char lim[4200];
	snprintf(lim, sizeof lim, "%s/%s", cg, v1 ? "memory.limit_in_bytes" : "memory.max");
	f = fopen(lim, "r");
	long long limit = 0;
	if (f) {
		CHECK(fscanf(f, "%lld", &limit) == 1);
		fclose(f);
	}
	CHECK_INT_EQ(limit, (32LL + 512) << 20);
	CHECK_INT_EQ(vmm_finish(&p, true), 0);
	CHECK(cg[0] && access(cg, F_OK) != 0);
	unlink(cfg);
	CHECK(rmdir(jail) == 0);
}

TEST(curl_drives_it_like_firecracker)
{
	need_kvm();
	if (system("curl --version >/dev/null 2>&1") != 0)
		SKIP("curl is not installed");
	vmm_proc p;
	vmm_start(&p, NULL);
	/* The request sequence of Firecracker's getting-started guide. */
	char cmd[8192];
	snprintf(cmd, sizeof cmd,
		 "set -e; s=%s; c() { curl -sS -f --unix-socket $s -H 'Accept: application/json' "
		 "-H 'Content-Type: application/json' \"$@\"; }; "
		 "c -X PUT http://localhost/machine-config -d '{\"vcpu_count\": 2, \"mem_size_mib\": 128}'; "
		 "c -X PUT http://localhost/boot-source -d '{\"kernel_image_path\": \"%s\", \"boot_args\": \"console=ttyS0 reboot=k panic=1 pci=off\"}'; "
		 "c -X PUT http://localhost/actions -d '{\"action_type\": \"InstanceStart\"}'; "
		 "c -X PATCH http://localhost/vm -d '{\"state\": \"Paused\"}'; "
		 "c http://localhost/ | grep -q '\"state\":\"Paused\"'; "
		 "c -X PATCH http://localhost/vm -d '{\"state\": \"Resumed\"}'; "
		 "c http://localhost/ | grep -q '\"state\":\"Running\"'; "
		 "! c -X PUT http://localhost/boot-source -d '{\"kernel_image_path\": \"/x\"}' 2>/dev/null",
		 p.sock, payload("ticker.elf"));
	CHECK_INT_EQ(system(cmd), 0);
	CHECK_INT_EQ(vmm_finish(&p, true), 0);
}

TEST(api_flag_errors)
{
	need_kvm();
	/* A socket path that cannot be bound, and an existing socket file. */
	char out[256];
	snprintf(out, sizeof out, "%s --api-sock /nonexistent/dir/api.sock 2>&1 | grep -q 'api-sock /nonexistent/dir/api.sock'",
		 vmm_path);
	CHECK_INT_EQ(system(out), 0);
	vmm_proc p;
	vmm_start(&p, NULL);
	snprintf(out, sizeof out, "%s --api-sock %s 2>&1 | grep -q 'the file exists'", vmm_path, p.sock);
	CHECK_INT_EQ(system(out), 0);
	snprintf(out, sizeof out, "%s --api-sock %s.2 --drive /x 2>&1 | grep -q 'configured over the API'", vmm_path, p.sock);
	CHECK_INT_EQ(system(out), 0);
	CHECK_INT_EQ(vmm_finish(&p, true), 0);
}

TEST_MAIN(configure_and_start_over_the_api, pause_stops_the_guest_and_resume_continues_it,
	  failed_start_is_reported_and_recoverable, malformed_requests_get_clear_errors,
	  config_file_boots_at_once_and_the_api_runs_in_the_jail, curl_drives_it_like_firecracker, api_flag_errors)
