/* SPDX-License-Identifier: Apache-2.0
 * End to end: real QEMU (TCG here, KVM where VT-x exists), the real guest
 * kernel, the real "python" image (Debian + python3, read-only ext4 under a
 * tmpfs overlay) and the real silo-agent over the virtio-serial channel.
 * python3 -c, file write/read, a PTY session, 5 sandboxes at once, graceful
 * terminate and a residue check (no QEMU process, sockets or run directory),
 * output flow control over virtio-serial (a stalled consumer holds the
 * guest process back, other tasks go on, nothing is lost), and protocol v4 in
 * a real guest: a PTY process of the process table resized while it runs, a
 * tar archive of a guest tree extracted on the host and a host tree extracted
 * in the guest, byte-exact with modes and symlinks.
 *
 * Needs the kernel and images (scripts/prepare-images.sh): absent -> FAIL,
 * unless SILO_SKIP_VM_TESTS=1 (SKIP).
 */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcntl.h>
#include <sys/mman.h>

#include "archive/archive.h"
#include "common/util.h"
#include "core/channel.h"
#include "core/fsops.h"
#include "core/proc.h"
#include "core/provider.h"
#include "core/sandbox.h"
#include "gate.h"
#include "harness.h"
#include "image/image.h"
#include "output_test.h"
#include "qemu_test.h"

extern const provider_ops qemu_provider;

#define BOOT_MS 60000    /* TCG on a loaded 2-core CI box; typically 1-4 s */

static void need_vm(void)
{
	qt_need_vm_image("python");
}

typedef struct vm {
	sandbox sb;
	pid_t pid;
	double ready_ms;
} vm;

static int vm_boot(vm *v, const char *id, const char *image, silo_error *err)
{
	memset(v, 0, sizeof *v);
	snprintf(v->sb.id, sizeof v->sb.id, "%s", id);
	snprintf(v->sb.rundir, sizeof v->sb.rundir, "/tmp/silo-qemu-e2e-%d-%s", (int)getpid(), id);
	if (mkdir_p(v->sb.rundir, 0700) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "mkdir %s", v->sb.rundir);
	vm_spec s = {0};
	snprintf(s.name, sizeof s.name, "%s", id);
	s.vcpus = 1;
	s.memory_mb = 256;
	s.image = (char *)image;
	uint64_t t0 = now_mono_ns();
	if (qemu_provider.spawn(&v->sb, &s, err) < 0)
		return -1;
	v->pid = v->sb.pid;
	qt_track_vm(v->pid);
	int fd = qemu_provider.connect(&v->sb, BOOT_MS, err);
	if (fd < 0)
		return -1;
	chan_opts o = {.vm_id = id, .handshake_timeout_ms = BOOT_MS, .heartbeat_ms = 1000};
	v->sb.ch = chan_open(fd, &o, &v->sb.agent, err);
	if (!v->sb.ch) {
		char diag[2048];
		qemu_provider.diagnostics(&v->sb, diag, sizeof diag);
		printf("# boot of %s failed; %s\n", id, diag);
		return -1;
	}
	v->ready_ms = (now_mono_ns() - t0) / 1e6;
	printf("# %s: agent ready in %.0f ms (kernel %s, agent %s)\n", id, v->ready_ms, v->sb.agent.kernel,
	       v->sb.agent.agent_version);
	return 0;
}

/* Terminate and check nothing is left. */
static void vm_destroy(vm *v)
{
	silo_error err = {0};
	CHECK_INT_EQ(qemu_provider.terminate(&v->sb, 5000, &err), 0);
	if (v->sb.ch) {
		chan_close(v->sb.ch);
		v->sb.ch = NULL;
	}
	char **res = NULL;
	qemu_provider.residue(&v->sb, &res);
	if (res)
		for (char **r = res; *r; r++)
			printf("# residue: %s\n", *r);
	CHECK(res == NULL);
	strv_free(res);
	CHECK(!path_exists(v->sb.rundir));
	if (v->pid > 0)
		CHECK(kill(v->pid, 0) < 0);
}

static int run(vm *v, char *const *argv, outbuf *o, exec_result *res, bool pty, silo_error *err)
{
	out_reset(o);
	exec_req r = {.argv = argv, .uid = -1, .gid = -1, .timeout_ms = 60000, .pty = pty, .rows = 30, .cols = 100};
	return chan_exec(v->sb.ch, &r, out_collect, o, res, err);
}

/* vm_boot, or end the case (the failure printed, what was started terminated). */
static void vm_up(vm *v, const char *id, const char *image)
{
	silo_error err = {0};
	if (vm_boot(v, id, image, &err) < 0) {
		printf("# %s\n", err.message);
		qemu_provider.terminate(&v->sb, 0, NULL);
		REQUIRE(!"boot");
	}
}

TEST(python_print_files_and_overlay)
{
	need_vm();
	vm v;
	silo_error err = {0};
	vm_up(&v, "py1", "python");
	outbuf o;
	exec_result res;
	char *py[] = {"python3", "-c", "print(6*7)", NULL};
	REQUIRE(run(&v, py, &o, &res, false, &err) == 0);
	CHECK_INT_EQ(res.exit_code, 0);
	CHECK_INT_EQ(res.signal, 0);
	CHECK_STR_EQ(o.data, "42\n");

	/* write a file through the agent, read it back, and read it from python */
	static const char msg[] = "hello from the host\n";
	CHECK_INT_EQ(chan_file_write(v.sb.ch, "/root/hello.txt", msg, sizeof msg - 1, 0644, &err), 0);
	char *back = NULL;
	size_t blen = 0;
	CHECK_INT_EQ(chan_file_read(v.sb.ch, "/root/hello.txt", 4096, &back, &blen, &err), 0);
	CHECK(back && blen == sizeof msg - 1 && !memcmp(back, msg, blen));
	free(back);
	char *pyread[] = {"python3", "-c", "import sys; sys.stdout.write(open('/root/hello.txt').read().upper())", NULL};
	REQUIRE(run(&v, pyread, &o, &res, false, &err) == 0);
	CHECK_STR_EQ(o.data, "HELLO FROM THE HOST\n");
	/* python writes, the host reads */
	char *pywrite[] = {"python3", "-c", "open('/tmp/out.txt','w').write(str(sum(range(1000))))", NULL};
	REQUIRE(run(&v, pywrite, &o, &res, false, &err) == 0);
	CHECK_INT_EQ(res.exit_code, 0);
	back = NULL;
	CHECK_INT_EQ(chan_file_read(v.sb.ch, "/tmp/out.txt", 4096, &back, &blen, &err), 0);
	CHECK(back && blen == 6 && !memcmp(back, "499500", 6));
	free(back);

	/* root is an overlay: writable, while the image underneath stays read-only */
	char *sh[] = {"sh", "-c",
		      "echo x > /usr/silo-probe && cat /usr/silo-probe && "
		      "grep -c ' / overlay ' /proc/mounts && "
		      "(touch /.silo/lower/x 2>/dev/null && echo lower-writable || echo lower-ro)",
		      NULL};
	REQUIRE(run(&v, sh, &o, &res, false, &err) == 0);
	CHECK_STR_EQ(o.data, "x\n1\nlower-ro\n");
	/* failing commands report their status */
	char *fail[] = {"python3", "-c", "import sys; print('err', file=sys.stderr); sys.exit(3)", NULL};
	REQUIRE(run(&v, fail, &o, &res, false, &err) == 0);
	CHECK_INT_EQ(res.exit_code, 3);
	CHECK_STR_EQ(o.err, "err\n");
	vm_destroy(&v);
}

TEST(pty_session)
{
	need_vm();
	vm v;
	silo_error err = {0};
	vm_up(&v, "pty", "python");
	outbuf o;
	exec_result res;
	char *py[] = {"python3", "-c",
		      "import os; print(os.isatty(0), os.isatty(1), os.get_terminal_size().columns, "
		      "os.get_terminal_size().lines)",
		      NULL};
	REQUIRE(run(&v, py, &o, &res, true, &err) == 0);
	CHECK_INT_EQ(res.exit_code, 0);
	CHECK_CONTAINS(o.data, "True True 100 30");
	vm_destroy(&v);
}

typedef struct par {
	vm v;
	char id[16];
	int rc;
	char out[64];
	char msg[512];
} par;

static void *par_main(void *arg)
{
	par *p = arg;
	silo_error err = {0};
	p->rc = vm_boot(&p->v, p->id, "python", &err);
	if (p->rc == 0) {
		outbuf o;
		exec_result res;
		char code[64];
		snprintf(code, sizeof code, "print('%s', 6*7)", p->id);
		char *py[] = {"python3", "-c", code, NULL};
		p->rc = run(&p->v, py, &o, &res, false, &err);
		snprintf(p->out, sizeof p->out, "%s", o.data);
	}
	if (p->rc < 0)
		snprintf(p->msg, sizeof p->msg, "%s", err.message);
	return NULL;
}

TEST(five_sandboxes_at_once)
{
	need_vm();
	par ps[5];
	pthread_t th[5];
	memset(ps, 0, sizeof ps);
	uint64_t t0 = now_mono_ns();
	for (int i = 0; i < 5; i++) {
		snprintf(ps[i].id, sizeof ps[i].id, "par%d", i);
		REQUIRE(pthread_create(&th[i], NULL, par_main, &ps[i]) == 0);
	}
	for (int i = 0; i < 5; i++)
		pthread_join(th[i], NULL);
	printf("# 5 sandboxes booted and ran python in %.0f ms\n", (now_mono_ns() - t0) / 1e6);
	for (int i = 0; i < 5; i++) {
		if (ps[i].rc < 0)
			printf("# %s: %s\n", ps[i].id, ps[i].msg);
		CHECK_INT_EQ(ps[i].rc, 0);
		char want[64];
		snprintf(want, sizeof want, "%s 42\n", ps[i].id);
		CHECK_STR_EQ(ps[i].out, want);
		/* each VM is its own QEMU process */
		for (int j = 0; j < i; j++)
			CHECK(ps[i].v.pid != ps[j].v.pid);
	}
	for (int i = 0; i < 5; i++)
		vm_destroy(&ps[i].v);
}

typedef struct flood {
	vm *v;
	gate g;             /* the consumer stops dead until the gate opens */
	uint64_t bytes;
	exec_result res;
	int rc;
	silo_error err;
} flood;

static void gated_count(void *ud, int stream, const void *buf, size_t len)
{
	flood *f = ud;
	gate_pass(&f->g);
	if (stream == 1)
		f->bytes += len;
}

static void *flood_main(void *p)
{
	flood *f = p;
	char *argv[] = {"head", "-c", "16777216", "/dev/zero", NULL};
	exec_req r = {.argv = argv, .uid = -1, .gid = -1, .timeout_ms = 300000};
	f->rc = chan_exec(f->v->sb.ch, &r, gated_count, f, &f->res, &f->err);
	return NULL;
}

TEST(output_flow_control_over_virtio_serial)
{
	need_vm();
	vm v;
	silo_error err = {0};
	vm_up(&v, "flow", "base");
	flood f = {.v = &v, .g = GATE_INIT};
	pthread_t th;
	REQUIRE(pthread_create(&th, NULL, flood_main, &f) == 0);
	gate_wait_entered(&f.g);
	/* One task stalled in its consumer: another runs, the channel stays up. */
	uint64_t rx0, rx1;
	chan_stats(v.sb.ch, NULL, &rx0);
	outbuf o;
	exec_result res;
	char *t[] = {"echo", "still here", NULL};
	uint64_t t0 = now_mono_ns();
	REQUIRE(run(&v, t, &o, &res, false, &err) == 0);
	printf("# exec round trip while a 16 MiB task is stalled: %.1f ms\n", (now_mono_ns() - t0) / 1e6);
	CHECK_STR_EQ(o.data, "still here\n");
	usleep(1500000); /* > the heartbeat's 3 intervals */
	CHECK(chan_is_connected(v.sb.ch));
	chan_stats(v.sb.ch, NULL, &rx1);
	printf("# received while stalled: %llu bytes, then %llu more in 1.5 s\n", (unsigned long long)rx0,
	       (unsigned long long)(rx1 - rx0));
	CHECK(rx1 < 4u * 1024 * 1024);
	t0 = now_mono_ns();
	gate_open(&f.g);
	pthread_join(th, NULL);
	double s = (now_mono_ns() - t0) / 1e9;
	printf("# 16 MiB over virtio-serial (TCG) after the stall: %.2f s, %.1f MB/s\n", s, 16.777216 / s);
	if (f.rc < 0)
		printf("# %s\n", f.err.message);
	CHECK_INT_EQ(f.rc, 0);
	CHECK_INT_EQ(f.res.exit_code, 0);
	CHECK_INT_EQ(f.bytes, 16777216);
	vm_destroy(&v);
}

TEST(graceful_terminate_via_agent)
{
	need_vm();
	vm v;
	silo_error err = {0};
	vm_up(&v, "grace", "base");
	/* base image: busybox userland, agent as PID 1 */
	outbuf o;
	exec_result res;
	char *sh[] = {"sh", "-c", "readlink /proc/1/exe", NULL};
	REQUIRE(run(&v, sh, &o, &res, false, &err) == 0);
	CHECK_STR_EQ(o.data, "/sbin/silo-agent\n");
	/* the agent powers the guest off (reboot=t + -no-reboot): QEMU exits by itself */
	uint64_t t0 = now_mono_ns();
	CHECK_INT_EQ(chan_shutdown(v.sb.ch, &err), 0);
	while (qemu_provider.alive(&v.sb) && now_mono_ns() - t0 < 30000000000ull)
		usleep(10000);
	CHECK(!qemu_provider.alive(&v.sb));
	printf("# guest power-off via the agent: %.0f ms\n", (now_mono_ns() - t0) / 1e6);
	vm_destroy(&v);
}

static int to_fd(void *ud, const void *buf, size_t n, silo_error *err)
{
	return write_all(*(int *)ud, buf, n) < 0 ? silo_fail(err, SILO_ERR_IO_ERROR, errno, "write") : 0;
}

static ssize_t from_fd(void *ud, void *buf, size_t n, silo_error *err)
{
	ssize_t k = read(*(int *)ud, buf, n);
	return k < 0 ? silo_fail(err, SILO_ERR_IO_ERROR, errno, "read") : k;
}

TEST(pty_resize_and_archives_in_a_real_guest)
{
	need_vm();
	vm v;
	silo_error err = {0};
	vm_up(&v, "v3", "python");
	/* a PTY process of the process table: resized while it waits for input */
	proc_table *t = proc_table_new(v.sb.ch, "v3");
	char *sh[] = {"sh", "-c", "stty size; read x; stty size; echo \"got $x\"", NULL};
	exec_req r = {.argv = sh, .uid = -1, .gid = -1, .pty = true, .rows = 30, .cols = 100, .stdin_stream = true};
	proc *p;
	REQUIRE(proc_start(t, &r, NULL, &p, &err) == 0);
	proc_reader *rd = proc_attach(p);
	char out[512] = "";
	size_t n = 0;
	int stream;
	while (!strstr(out, "30 100")) {   /* the size it started with */
		ssize_t k = proc_read(rd, &stream, out + n, sizeof out - 1 - n, 30000, &err);
		REQUIRE(k > 0);
		n += (size_t)k;
		out[n] = '\0';
	}
	CHECK_INT_EQ(proc_resize(p, 40, 120, &err), 0);
	CHECK_INT_EQ(proc_stdin(p, "hi\r", 3, false, 10000, NULL, &err), 0);
	for (;;) {
		ssize_t k = proc_read(rd, &stream, out + n, sizeof out - 1 - n, 30000, &err);
		if (k <= 0)
			break;
		n += (size_t)k;
		out[n] = '\0';
	}
	for (char *c = out; *c; c++)
		if (*c == '\r' || *c == '\n')
			*c = '|';
	printf("# PTY output: %s\n", out);
	CHECK_CONTAINS(out, "40 120");
	CHECK_CONTAINS(out, "got hi");
	proc_detach(rd);
	proc_put(p);
	proc_table_free(t, true);

	/* a guest tree out as tar, extracted on the host */
	outbuf o;
	exec_result res;
	char *mk[] = {"sh", "-c",
		      "mkdir -p /root/t/sub && head -c 2000000 /dev/urandom > /root/t/big && echo hi > /root/t/sub/a && "
		      "chmod 0640 /root/t/sub/a && chmod 0710 /root/t/sub && ln -s sub/a /root/t/lnk && "
		      "sha256sum /root/t/big | cut -d' ' -f1",
		      NULL};
	REQUIRE(run(&v, mk, &o, &res, false, &err) == 0);
	char guest_sum[65];
	snprintf(guest_sum, sizeof guest_sum, "%.64s", o.data);
	int fd = memfd_create("tar", MFD_CLOEXEC);
	uint64_t bytes = 0, t0 = now_mono_ns();
	int rc = fs_archive_get_fd(v.sb.ch, "/root/t", fd, NULL, NULL, &bytes, &err);
	if (rc < 0)
		printf("# %s\n", err.message);
	REQUIRE(rc == 0);
	printf("# archive out of the guest: %llu bytes in %.0f ms\n", (unsigned long long)bytes, (now_mono_ns() - t0) / 1e6);
	char dir[] = "/tmp/silo-qemu-tar-XXXXXX";
	REQUIRE(mkdtemp(dir));
	REQUIRE(lseek(fd, 0, SEEK_SET) == 0);
	int root = open(dir, O_RDONLY | O_DIRECTORY);
	tar_reader *tr = tar_reader_new(from_fd, &fd);
	archive_xopts xo = {.single_root = true};
	CHECK_INT_EQ(archive_extract(tr, root, &xo, NULL, &err), 0);
	tar_reader_free(tr);
	close(fd);
	char cmd[512];
	snprintf(cmd, sizeof cmd,
		 "cd %s/t && test \"$(sha256sum big | cut -d' ' -f1)\" = %s && test \"$(stat -c %%a sub/a sub)\" = \"640\n710\" && "
		 "test \"$(readlink lnk)\" = sub/a",
		 dir, guest_sum);
	CHECK_INT_EQ(system(cmd), 0);
	/* a host tree in, extracted by the agent in the guest */
	fd = memfd_create("tar2", MFD_CLOEXEC);
	archive_wopts wo = {.name = "back"};
	snprintf(cmd, sizeof cmd, "%s/t", dir);
	REQUIRE(archive_write(AT_FDCWD, cmd, &wo, to_fd, &fd, NULL, &err) == 0);
	REQUIRE(lseek(fd, 0, SEEK_SET) == 0);
	t0 = now_mono_ns();
	rc = fs_archive_put_fd(v.sb.ch, "/root/in", fd, NULL, NULL, &bytes, &err);
	if (rc < 0)
		printf("# %s\n", err.message);
	CHECK_INT_EQ(rc, 0);
	printf("# archive into the guest: %llu bytes in %.0f ms\n", (unsigned long long)bytes, (now_mono_ns() - t0) / 1e6);
	close(fd);
	char *chk[] = {"sh", "-c", "cd /root/in/back && sha256sum big | cut -d' ' -f1 && stat -c %a sub/a sub && readlink lnk",
		       NULL};
	REQUIRE(run(&v, chk, &o, &res, false, &err) == 0);
	char want[256];
	snprintf(want, sizeof want, "%s\n640\n710\nsub/a\n", guest_sum);
	CHECK_STR_EQ(o.data, want);
	close(root);
	rm_rf(dir);
	vm_destroy(&v);
}

TEST_MAIN(python_print_files_and_overlay, pty_session, five_sandboxes_at_once, graceful_terminate_via_agent,
	  output_flow_control_over_virtio_serial, pty_resize_and_archives_in_a_real_guest)
