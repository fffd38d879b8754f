/* SPDX-License-Identifier: Apache-2.0
 * silo-vmm's Firecracker-compatible control API (--api-sock), end to end on this
 * machine's /dev/kvm with the tiny payloads from tests/guest: configure and start a
 * VM over HTTP, pause/resume a running guest (its serial output stops and restarts),
 * recover from a failed InstanceStart, refuse malformed HTTP and JSON with a clear
 * fault_message, run inside the jail, and interoperate with curl as Firecracker's
 * getting-started guide drives it. Skips when /dev/kvm cannot be opened.
 */
#include <fcntl.h>
#include <glob.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "harness.h"
#include "vmm_test.h"


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
		prctl(PR_SET_PDEATHSIG, SIGTERM); /* a failed REQUIRE ends the case: no VMM outlives it */
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
	/* Snapshot files the test made there. */
	char pat[128];
	snprintf(pat, sizeof pat, "%s/*.state", p->dir);
	glob_t g;
	for (int k = 0; k < 2; k++) {
		if (glob(pat, 0, NULL, &g) == 0) {
			for (size_t i = 0; i < g.gl_pathc; i++)
				unlink(g.gl_pathv[i]);
			globfree(&g);
		}
		snprintf(pat, sizeof pat, "%s/*.mem", p->dir);
	}
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

/* req() on a fresh connection, checking the status and that the answer contains each
 * string of the NULL-terminated list after status. */
static void expect(const char *sock, const char *method, const char *path, const char *body, int status, ...)
{
	static char out[65536];
	CHECK_INT_EQ(req(sock, method, path, body, out, sizeof out), status);
	va_list ap;
	va_start(ap, status);
	for (const char *want; (want = va_arg(ap, const char *));)
		CHECK_CONTAINS(out, want);
	va_end(ap);
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


static void put_boot_source(const char *sock, const char *kernel)
{
	char body[4200];
	snprintf(body, sizeof body, "{\"kernel_image_path\": \"%s\", \"boot_args\": \"console=ttyS0\"}", kernel);
	expect(sock, "PUT", "/boot-source", body, 204, NULL);
}

TEST(configure_and_start_over_the_api)
{
	need_kvm();
	vmm_proc p;
	vmm_start(&p, NULL);
	expect(p.sock, "GET", "/", NULL, 200, "\"state\":\"Not started\"", "\"id\":\"test-vm\"", NULL);
	expect(p.sock, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}", 204, NULL);
	expect(p.sock, "PATCH", "/machine-config", "{\"mem_size_mib\": 96}", 204, NULL);
	expect(p.sock, "GET", "/machine-config", NULL, 200, "\"mem_size_mib\":96", "\"vcpu_count\":1", NULL);
	put_boot_source(p.sock, payload("elf64.elf"));
	expect(p.sock, "GET", "/vm/config", NULL, 200, "elf64.elf", "\"mem_size_mib\":96", NULL);
	expect(p.sock, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", 204, NULL);
	/* The payload prints a line and exits through the debug-exit port with 42. */
	CHECK_INT_EQ(vmm_finish(&p, false), 42);
}

TEST(pause_stops_the_guest_and_resume_continues_it)
{
	need_kvm();
	vmm_proc p;
	vmm_start(&p, NULL);
	put_boot_source(p.sock, payload("ticker.elf"));
	expect(p.sock, "PATCH", "/vm", "{\"state\": \"Paused\"}", 400, "has not been started", NULL);
	expect(p.sock, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", 204, NULL);
	for (int i = 0; i < 300 && file_size(p.serial) < 3; i++)
		msleep(10);
	CHECK(file_size(p.serial) >= 3);
	expect(p.sock, "GET", "/", NULL, 200, "\"state\":\"Running\"", NULL);
	for (int round = 0; round < 3; round++) {
		expect(p.sock, "PATCH", "/vm", "{\"state\": \"Paused\"}", 204, NULL);
		expect(p.sock, "GET", "/", NULL, 200, "\"state\":\"Paused\"", NULL);
		long a = file_size(p.serial);
		msleep(300);
		long b = file_size(p.serial);
		printf("# round %d: paused, serial %ld -> %ld bytes over 300 ms\n", round, a, b);
		CHECK_INT_EQ(b, a); /* no guest instruction ran while paused */
		/* Pausing twice is fine (idempotent, as in Firecracker). */
		expect(p.sock, "PATCH", "/vm", "{\"state\": \"Paused\"}", 204, NULL);
		expect(p.sock, "PATCH", "/vm", "{\"state\": \"Resumed\"}", 204, NULL);
		long c = -1;
		for (int i = 0; i < 300; i++) {
			msleep(10);
			if ((c = file_size(p.serial)) > b)
				break;
		}
		printf("# round %d: resumed, serial %ld -> %ld bytes\n", round, b, c);
		CHECK(c > b);
	}
	expect(p.sock, "PATCH", "/vm", "{\"state\": \"Stopped\"}", 400, "vm.state", NULL);
	expect(p.sock, "PUT", "/boot-source", "{\"kernel_image_path\": \"/x\"}", 400, "not supported after starting", NULL);
	expect(p.sock, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", 400, "already running", NULL);
	/* A paused VM still stops on SIGTERM. */
	expect(p.sock, "PATCH", "/vm", "{\"state\": \"Paused\"}", 204, NULL);
	CHECK_INT_EQ(vmm_finish(&p, true), 0);
}

TEST(failed_start_is_reported_and_recoverable)
{
	need_kvm();
	vmm_proc p;
	vmm_start(&p, NULL);
	char out[4096];
	expect(p.sock, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", 400, "boot-source first", NULL);
	put_boot_source(p.sock, "/nonexistent/vmlinux");
	expect(p.sock, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", 400, "/nonexistent/vmlinux", NULL);
	CHECK_INT_EQ(req(p.sock, "PUT", "/drives/rootfs",
			 "{\"drive_id\": \"rootfs\", \"path_on_host\": \"/nonexistent/disk.img\", \"is_root_device\": true, \"is_read_only\": false}",
			 out, sizeof out), 204);
	put_boot_source(p.sock, payload("elf64.elf"));
	expect(p.sock, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", 400, "/nonexistent/disk.img", NULL);
	expect(p.sock, "GET", "/", NULL, 200, "Not started", NULL);
	/* Fix the drive (same id replaces it) and start for real. */
	char disk[128], body[512];
	snprintf(disk, sizeof disk, "%s/disk.img", p.dir);
	int fd = open(disk, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	REQUIRE(fd >= 0 && ftruncate(fd, 1 << 20) == 0);
	close(fd);
	snprintf(body, sizeof body, "{\"drive_id\": \"rootfs\", \"path_on_host\": \"%s\", \"is_read_only\": true}", disk);
	expect(p.sock, "PUT", "/drives/rootfs", body, 204, NULL);
	CHECK_INT_EQ(req(p.sock, "GET", "/vm/config", NULL, out, sizeof out), 200);
	CHECK_CONTAINS(out, "\"is_read_only\":true");
	CHECK(strstr(out, "nonexistent") == NULL);
	expect(p.sock, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", 204, NULL);
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
		{"GET", "/snapshot/create", NULL, 405, "method not allowed"},
		{"GET", "/metrics", NULL, 404, "no such resource"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		CHECK_INT_EQ(req(p.sock, cases[i].method, cases[i].path, cases[i].body, out, sizeof out), cases[i].status);
		CHECK_CONTAINS(out, "fault_message");
		CHECK_CONTAINS(out, cases[i].needle);
	}
	/* HTTP-level garbage: the status, and what the answer names (NULL: nothing checked). */
	static const struct {
		const char *req;
		int status;
		const char *needle;
	} garbage[] = {
		{"HELLO\r\n\r\n", 400, "request line"},
		{"GET / HTTP/2.0\r\n\r\n", 505, NULL},
		{"GET / HTTP/1.1\r\nX-A: \x01\r\n\r\n", 400, "0x01"},
		{"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400, "malformed header"},
		{"PUT /boot-source HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 501, NULL},
		{"PUT /boot-source HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400, "Content-Length"},
		{"PUT /boot-source HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400, NULL},
		{"PUT /boot-source HTTP/1.1\r\nContent-Length: 51201\r\n\r\n", 413, NULL},
	};
	for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
		CHECK_INT_EQ(raw(p.sock, garbage[i].req, strlen(garbage[i].req), out, sizeof out), garbage[i].status);
		if (garbage[i].needle)
			CHECK_CONTAINS(out, garbage[i].needle);
	}
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
	/* both answers may come in one read: collect until the second body is complete */
	char both[8192] = "";
	size_t got = 0;
	for (int tries = 0; tries < 50 && !(strstr(both, "vcpu_count") && strchr(strstr(both, "vcpu_count"), '}'));
	     tries++) {
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		if (poll(&pf, 1, 100) <= 0)
			continue;
		ssize_t n = read(fd, both + got, sizeof both - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		both[got] = 0;
	}
	both[got] = 0;
	char *second = strstr(both + 1, "HTTP/1.1 ");
	CHECK(strncmp(both, "HTTP/1.1 200", 12) == 0);
	CHECK(second && strncmp(second, "HTTP/1.1 200", 12) == 0);
	char *first_body = strstr(both, "Not started");
	CHECK(first_body && (!second || first_body < second));   /* in order */
	CHECK(second && strstr(second, "vcpu_count"));
	close(fd);
	/* After all that the VMM still answers and exits cleanly. */
	expect(p.sock, "GET", "/", NULL, 200, NULL);
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
	for (int i = 0; i < 300 && file_size(p.serial) < 3; i++)
		msleep(10);
	expect(p.sock, "GET", "/", NULL, 200, "Running", NULL);
	expect(p.sock, "GET", "/vm/config", NULL, 200, "ticker.elf", "\"mem_size_mib\":32", NULL);
	/* Served by the API thread under the jail's seccomp filter: a syscall outside the
	 * allow-list would have killed the process. */
	expect(p.sock, "PATCH", "/vm", "{\"state\": \"Paused\"}", 204, NULL);
	long a = file_size(p.serial);
	msleep(200);
	CHECK_INT_EQ(file_size(p.serial), a);
	expect(p.sock, "PATCH", "/vm", "{\"state\": \"Resumed\"}", 204, NULL);
	expect(p.sock, "PUT", "/drives/x", "{\"drive_id\": \"x\", \"path_on_host\": \"/d\"}", 400, NULL);
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
	snprintf(out, sizeof out, "%s --api-sock %s.2 --initrd /x 2>&1 | grep -q 'configured over the API'", vmm_path, p.sock);
	CHECK_INT_EQ(system(out), 0);
	/* with the API only, --drive opens the file for the API to name later: it must exist */
	snprintf(out, sizeof out, "%s --api-sock %s.3 --drive /nonexistent/disk.img 2>&1 | grep -q -- '--drive: /nonexistent/disk.img'",
		 vmm_path, p.sock);
	CHECK_INT_EQ(system(out), 0);
	CHECK_INT_EQ(vmm_finish(&p, true), 0);
}

/* ---- snapshots ---- */

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return strdup("");
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = 0;
	fclose(f);
	return strdup(buf);
}

/* Lines of 8 hex digits (the counter payload) must be consecutive; returns the number of
 * complete lines and the first/last values, or -1 at the first gap. */
static long consecutive(const char *text, unsigned long *first, unsigned long *last)
{
	long n = 0;
	unsigned long prev = 0;
	for (const char *l = text; *l;) {
		const char *e = strchr(l, '\n');
		if (!e)
			break; /* a partial last line */
		unsigned long v = strtoul(l, NULL, 16);
		if (e - l != 8) {
			printf("# bad line \"%.*s\"\n", (int)(e - l), l);
			return -1;
		}
		if (n && v != prev + 1) {
			printf("# gap: %lx after %lx\n", v, prev);
			return -1;
		}
		if (!n)
			*first = v;
		*last = prev = v;
		n++;
		l = e + 1;
	}
	return n;
}

static void snap_paths(const vmm_proc *p, char *st, char *mem, const char *tag)
{
	sprintf(st, "%s/%s.state", p->dir, tag);
	sprintf(mem, "%s/%s.mem", p->dir, tag);
}

static int snap_create(const vmm_proc *p, const char *st, const char *mem, char *out, size_t outlen)
{
	char body[1024];
	snprintf(body, sizeof body, "{\"snapshot_type\": \"Full\", \"snapshot_path\": \"%s\", \"mem_file_path\": \"%s\"}", st, mem);
	return req(p->sock, "PUT", "/snapshot/create", body, out, outlen);
}

static int snap_load(const vmm_proc *p, const char *st, const char *mem, const char *extra, char *out, size_t outlen)
{
	char body[1200];
	snprintf(body, sizeof body,
		 "{\"snapshot_path\": \"%s\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"%s\"}%s}", st,
		 mem, extra ? extra : "");
	return req(p->sock, "PUT", "/snapshot/load", body, out, outlen);
}

/* A counter VM running for a moment, then paused and snapshotted into dir/s.{state,mem}.
 * Returns the serial output at the moment of the snapshot. */
static char *counter_snapshot(vmm_proc *a, char *st, char *mem)
{
	const char *extra[] = {"--kernel", payload("counter.elf"), "--mem", "16", NULL};
	vmm_start(a, extra);
	for (int i = 0; i < 300 && file_size(a->serial) < 30; i++)
		msleep(10);
	char out[2048];
	CHECK_INT_EQ(snap_create(a, "/tmp/never.state", "/tmp/never.mem", out, sizeof out), 400);
	CHECK_CONTAINS(out, "pause the microVM first");
	CHECK(access("/tmp/never.mem", F_OK) != 0);
	expect(a->sock, "PATCH", "/vm", "{\"state\": \"Paused\"}", 204, NULL);
	snap_paths(a, st, mem, "s");
	CHECK_INT_EQ(snap_create(a, st, mem, out, sizeof out), 204);
	return slurp(a->serial);
}

static void cleanup_snap(const char *st, const char *mem)
{
	unlink(st);
	unlink(mem);
}

TEST(snapshot_restore_continues_the_guest)
{
	need_kvm();
	vmm_proc a, b;
	char st[256], mem[256], out[4096];
	char *before = counter_snapshot(&a, st, mem);
	unsigned long f0 = 0, l0 = 0, f1 = 0, l1 = 0;
	long n0 = consecutive(before, &f0, &l0);
	printf("# snapshot taken after %ld lines (last %lx)\n", n0, l0);
	CHECK(n0 >= 2);
	/* The original keeps running after its snapshot. */
	expect(a.sock, "PATCH", "/vm", "{\"state\": \"Resumed\"}", 204, NULL);
	vmm_start(&b, NULL);
	CHECK_INT_EQ(snap_load(&b, st, mem, ", \"resume_vm\": true", out, sizeof out), 204);
	expect(b.sock, "GET", "/", NULL, 200, "Running", NULL);
	expect(b.sock, "GET", "/vm/config", NULL, 200, "counter.elf", "\"mem_size_mib\":16", NULL);
	for (int i = 0; i < 300 && file_size(b.serial) < 40; i++)
		msleep(10);
	char *after = slurp(b.serial);
	/* The restored guest finishes the line it was printing and counts on from there. */
	size_t lb = strlen(before);
	char *joined = malloc(lb + strlen(after) + 1);
	strcpy(joined, before);
	strcat(joined, after);
	long n1 = consecutive(joined, &f1, &l1);
	printf("# before + after restore: %ld consecutive lines %lx..%lx\n", n1, f1, l1);
	CHECK(n1 > n0 + 2);
	CHECK_INT_EQ(f1, 1);
	free(joined);
	free(before);
	free(after);
	expect(b.sock, "PUT", "/snapshot/load", "{}", 400, "before the microVM starts", NULL);
	CHECK_INT_EQ(vmm_finish(&b, true), 0);
	cleanup_snap(st, mem);
	CHECK_INT_EQ(vmm_finish(&a, true), 0);
}

TEST(snapshot_of_a_restored_vm_has_identical_memory)
{
	need_kvm();
	vmm_proc a, b;
	char st[256], mem[256], st2[256], mem2[256], out[4096];
	free(counter_snapshot(&a, st, mem));
	vmm_start(&b, NULL);
	/* Loaded paused: nothing runs until Resumed. */
	CHECK_INT_EQ(snap_load(&b, st, mem, ", \"resume_vm\": false", out, sizeof out), 204);
	expect(b.sock, "GET", "/", NULL, 200, "Paused", NULL);
	msleep(200);
	CHECK_INT_EQ(file_size(b.serial), 0);
	snap_paths(&b, st2, mem2, "again");
	CHECK_INT_EQ(snap_create(&b, st2, mem2, out, sizeof out), 204);
	/* Guest RAM is byte-for-byte the same (the trailers differ: new snapshot id). */
	long sz = file_size(mem);
	CHECK(sz > 4096);
	CHECK_INT_EQ(file_size(mem2), sz);
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "cmp -n %ld %s %s", sz - 4096, mem, mem2);
	CHECK_INT_EQ(system(cmd), 0);
	snprintf(cmd, sizeof cmd, "cmp -s %s %s", mem, mem2);
	CHECK(system(cmd) != 0);
	expect(b.sock, "PATCH", "/vm", "{\"state\": \"Resumed\"}", 204, NULL);
	for (int i = 0; i < 300 && file_size(b.serial) < 20; i++)
		msleep(10);
	CHECK(file_size(b.serial) >= 20);
	CHECK_INT_EQ(vmm_finish(&b, true), 0);
	CHECK_INT_EQ(vmm_finish(&a, true), 0);
	cleanup_snap(st, mem);
}

TEST(forks_from_one_snapshot_are_isolated)
{
	need_kvm();
	vmm_proc a, f[3];
	char st[256], mem[256], out[4096];
	char *before = counter_snapshot(&a, st, mem);
	unsigned long first = 0, last = 0;
	CHECK(consecutive(before, &first, &last) >= 2);
	for (int i = 0; i < 3; i++) {
		vmm_start(&f[i], NULL);
		CHECK_INT_EQ(snap_load(&f[i], st, mem, ", \"resume_vm\": true, \"verify_memory\": false", out, sizeof out), 204);
	}
	for (int i = 0; i < 3; i++)
		for (int k = 0; k < 300 && file_size(f[i].serial) < 60; k++)
			msleep(10);
	/* Each fork counts on from the snapshot in its own copy of RAM: were the counter page
	 * shared, the forks' increments would interleave and leave gaps. */
	for (int i = 0; i < 3; i++) {
		char *after = slurp(f[i].serial);
		char *joined = malloc(strlen(before) + strlen(after) + 1);
		strcpy(joined, before);
		strcat(joined, after);
		unsigned long f1 = 0, l1 = 0;
		long n = consecutive(joined, &f1, &l1);
		printf("# fork %d: %ld consecutive lines up to %lx\n", i, n, l1);
		CHECK(n > 5);
		free(joined);
		free(after);
	}
	for (int i = 0; i < 3; i++)
		CHECK_INT_EQ(vmm_finish(&f[i], true), 0);
	/* The forks' writes never reached the file: it still verifies. */
	vmm_start(&f[0], NULL);
	CHECK_INT_EQ(snap_load(&f[0], st, mem, ", \"verify_memory\": true", out, sizeof out), 204);
	CHECK_INT_EQ(vmm_finish(&f[0], true), 0);
	free(before);
	CHECK_INT_EQ(vmm_finish(&a, true), 0);
	cleanup_snap(st, mem);
}

static void copy_file(const char *from, const char *to)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "cp %s %s", from, to);
	REQUIRE(system(cmd) == 0);
}

static void poke(const char *path, long off, unsigned char xor_with)
{
	int fd = open(path, O_RDWR);
	REQUIRE(fd >= 0);
	unsigned char c;
	REQUIRE(pread(fd, &c, 1, off) == 1);
	c ^= xor_with;
	REQUIRE(pwrite(fd, &c, 1, off) == 1);
	close(fd);
}

TEST(corrupt_or_mismatched_snapshots_are_refused)
{
	need_kvm();
	vmm_proc a, a2, b;
	char st[256], mem[256], st2[256], mem2[256], bad[256], badm[256], out[4096];
	free(counter_snapshot(&a, st, mem));
	/* A second, unrelated snapshot of the same size. */
	free(counter_snapshot(&a2, st2, mem2));
	vmm_start(&b, NULL);
	snprintf(bad, sizeof bad, "%s/bad.state", b.dir);
	snprintf(badm, sizeof badm, "%s/bad.mem", b.dir);
	long ssz = file_size(st), msz = file_size(mem);
	struct {
		const char *what, *needle;
		bool mem_bad;
	} cases[] = {
		{"flipped state byte", "SHA-256 mismatch", false},
		{"truncated state", "truncated", false},
		{"version 2", "format version 2", false},
		{"bad magic", "bad magic", false},
		{"flipped RAM byte", "SHA-256 of guest memory", true},
		{"truncated memory", "size does not match", true},
		{"another snapshot's memory", "does not belong", true},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		copy_file(st, bad);
		copy_file(mem, badm);
		switch (i) {
		case 0: poke(bad, ssz / 2, 0x40); break;
		case 1: REQUIRE(truncate(bad, ssz - 100) == 0); break;
		case 2: poke(bad, 8, 3); break; /* version 1 -> 2 */
		case 3: poke(bad, 0, 0x20); break;
		case 4: poke(badm, 0x300000, 0x01); break; /* the counter */
		case 5: REQUIRE(truncate(badm, msz - 4096) == 0); break;
		case 6: copy_file(mem2, badm); break;
		}
		int status = snap_load(&b, bad, badm, NULL, out, sizeof out);
		printf("# %s -> %d\n", cases[i].what, status);
		CHECK_INT_EQ(status, 400);
		CHECK_CONTAINS(out, cases[i].needle);
		CHECK_CONTAINS(out, cases[i].mem_bad ? badm : bad);
		expect(b.sock, "GET", "/", NULL, 200, "Not started", NULL);
	}
	/* verify_memory: false skips the RAM hash (documented trade-off), nothing else. */
	copy_file(st, bad);
	copy_file(mem, badm);
	poke(badm, 0x300000, 0x01);
	CHECK_INT_EQ(snap_load(&b, bad, badm, ", \"verify_memory\": false", out, sizeof out), 204);
	CHECK_INT_EQ(vmm_finish(&b, true), 0);
	/* Field errors. */
	vmm_start(&b, NULL);
	expect(b.sock, "PUT", "/snapshot/load", "{\"snapshot_path\": \"/x\", \"mem_backend\": {\"backend_type\": \"Uffd\", \"backend_path\": \"/y\"}}", 400, "backend_type", NULL);
	expect(b.sock, "PUT", "/snapshot/load", "{\"snapshot_path\": \"/x\", \"mem_file_path\": \"/y\", \"bogus\": 1}", 400, "snapshot.bogus", NULL);
	expect(b.sock, "PUT", "/snapshot/load", "{\"snapshot_path\": \"/x\"}", 400, "mem_file_path", NULL);
	CHECK_INT_EQ(req(b.sock, "PUT", "/snapshot/create", "{\"snapshot_path\": \"/x\", \"mem_file_path\": \"/y\"}", out, sizeof out), 400);
	CHECK_CONTAINS(out, "not been started");
	CHECK_INT_EQ(snap_load(&b, "/nonexistent/s.state", mem, NULL, out, sizeof out), 400);
	CHECK_CONTAINS(out, "/nonexistent/s.state");
	/* And the good snapshot still loads after all the refusals. */
	CHECK_INT_EQ(snap_load(&b, st, mem, ", \"resume_vm\": true", out, sizeof out), 204);
	CHECK_INT_EQ(vmm_finish(&b, true), 0);
	CHECK_INT_EQ(vmm_finish(&a2, true), 0);
	CHECK_INT_EQ(vmm_finish(&a, true), 0);
}

TEST_MAIN(configure_and_start_over_the_api, pause_stops_the_guest_and_resume_continues_it,
	  failed_start_is_reported_and_recoverable, malformed_requests_get_clear_errors,
	  config_file_boots_at_once_and_the_api_runs_in_the_jail, curl_drives_it_like_firecracker, api_flag_errors,
	  snapshot_restore_continues_the_guest, snapshot_of_a_restored_vm_has_identical_memory,
	  forks_from_one_snapshot_are_isolated, corrupt_or_mismatched_snapshots_are_refused)
