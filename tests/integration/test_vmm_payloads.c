/* SPDX-License-Identifier: Apache-2.0
 * silo-vmm end to end on this machine's /dev/kvm with the tiny payloads from
 * tests/guest: serial output, exit reasons, exit status, boot timer, signals,
 * timeouts and bad input. Skips when /dev/kvm cannot be opened.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <time.h>

#include "harness.h"
#include "vmm_test.h"


static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return strdup("");
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = 0;
	fclose(f);
	return strdup(buf);
}

typedef struct run_result {
	int status; /* exit status, or 128+signal */
	char *serial, *err;
	long long serial_size;
} run_result;

/* Run silo-vmm with args (NULL-terminated, payload names expanded by caller);
 * if kill_after_ms > 0, send SIGTERM then. */
static run_result run_vmm(const char *const *args, int kill_after_ms)
{
	char serial[] = "/tmp/silo-vmm-test-serial-XXXXXX", errf[] = "/tmp/silo-vmm-test-err-XXXXXX";
	int sfd = mkstemp(serial), efd = mkstemp(errf);
	REQUIRE(sfd >= 0 && efd >= 0);
	const char *argv[32];
	int n = 0;
	argv[n++] = vmm_path;
	argv[n++] = "--serial-log";
	argv[n++] = serial;
	for (int i = 0; args[i] && n < 30; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		dup2(efd, 2);
		execv(vmm_path, (char *const *)argv);
		_exit(127);
	}
	if (kill_after_ms > 0) {
		struct timespec ts = {kill_after_ms / 1000, (kill_after_ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		kill(pid, SIGTERM);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	run_result r = {.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st)};
	r.serial = slurp(serial);
	r.err = slurp(errf);
	struct stat sst;
	r.serial_size = stat(serial, &sst) == 0 ? (long long)sst.st_size : -1;
	unlink(serial);
	unlink(errf);
	close(sfd);
	close(efd);
	for (char *l = r.err, *e; l && *l; l = e ? e + 1 : NULL) {
		e = strchr(l, '\n');
		printf("# stderr: %.*s\n", e ? (int)(e - l) : (int)strlen(l), l);
	}
	return r;
}

/* run_vmm(args, 0), then check its exit status, its whole serial log (serial NULL: not
 * checked) and that its stderr holds each string of the NULL-terminated list after serial. */
static run_result expect_vmm(const char *const *args, int status, const char *serial, ...)
{
	run_result r = run_vmm(args, 0);
	CHECK_INT_EQ(r.status, status);
	if (serial)
		CHECK_STR_EQ(r.serial, serial);
	va_list ap;
	va_start(ap, serial);
	for (const char *want; (want = va_arg(ap, const char *));)
		CHECK_CONTAINS(r.err, want);
	va_end(ap);
	return r;
}


TEST(realmode_serial_bootimer_i8042_reset)
{
	need_kvm();
	const char *a[] = {"--payload", payload("realmode.bin"), "--boot-timer", "--timeout-ms", "20000", NULL};
	run_result r = expect_vmm(a, 0, "silo real-mode payload OK\n", "\"exit_reason\":\"reset\"",
				  "boot-timer: guest signalled after", NULL);
	CHECK(!strstr(r.err, "\"boot_timer_us\":-1"));
	CHECK(!strstr(r.err, "\"first_post_us\":-1"));
}

TEST(longmode_mmio_boot_timer_debug_exit)
{
	need_kvm();
	const char *a[] = {"--payload", payload("longmode.bin"), "--boot-timer", "--timeout-ms", "20000", NULL};
	run_result r = expect_vmm(a, 0, "silo long-mode payload OK\nmmio read all-ones OK\nboot timer written, exiting\n",
				  "\"exit_reason\":\"debug-exit\"", NULL);
	CHECK_CONTAINS(r.err, "\"unhandled_io\":1"); /* the deliberate read of 0xe0000000 */
	CHECK(!strstr(r.err, "\"boot_timer_us\":-1"));
}

TEST(longmode_two_vcpus_aps_wait_for_sipi)
{
	need_kvm();
	const char *a[] = {"--payload", payload("longmode.bin"), "--vcpus", "2", "--timeout-ms", "20000", NULL};
	/* Only the BSP runs the payload: the line appears exactly once. Without --boot-timer
	 * the device is absent: the MMIO write is unhandled. */
	expect_vmm(a, 0, "silo long-mode payload OK\nmmio read all-ones OK\nboot timer written, exiting\n",
		   "\"boot_timer_us\":-1", "\"unhandled_io\":2", NULL);
}

TEST(elf64_direct_boot_exit_status)
{
	need_kvm();
	const char *a[] = {"--kernel", payload("elf64.elf"), "--boot-timer", "--mem", "64", "--timeout-ms", "20000", NULL};
	expect_vmm(a, 42, "silo elf64 payload OK\n", "\"exit_code\":42", NULL);
}

/* A guest flooding its console (512 KiB, tests/guest/flood.S) against a 64 KiB cap: the
 * log never grows past the cap, says how much it dropped, and ends with the newest bytes. */
TEST(serial_flood_is_capped_keeping_the_tail)
{
	need_kvm();
	const char *a[] = {"--kernel", payload("flood.elf"), "--mem", "64", "--serial-log-max", "65536",
			   "--timeout-ms", "60000", NULL};
	run_result r = expect_vmm(a, 0, NULL, NULL);
	printf("# serial log: %lld bytes after a 512 KiB flood (cap 65536)\n", r.serial_size);
	CHECK(r.serial_size > 0 && r.serial_size <= 65536);
	CHECK(!strncmp(r.serial, "[silo: ", 7));
	CHECK_CONTAINS(r.serial, "earlier bytes of this log were dropped (cap 65536 bytes");
	size_t n = strlen(r.serial);
	CHECK(n >= 10 && !strcmp(r.serial + n - 10, "FLOOD-END\n"));
	unsigned long long dropped = strtoull(r.serial + 7, NULL, 10);
	CHECK(dropped >= 512 * 1024 + 10 - 65536 && dropped <= 512 * 1024);
	/* a cap below the minimum is refused, naming the option */
	const char *b[] = {"--kernel", payload("flood.elf"), "--serial-log-max", "100", NULL};
	expect_vmm(b, 2, NULL, "--serial-log-max", NULL);
}

TEST(hlt_without_irqchip_exits)
{
	need_kvm();
	const char *a[] = {"--payload", payload("hlt.bin"), "--no-irqchip", "--timeout-ms", "20000", NULL};
	expect_vmm(a, 0, "H\n", "\"exit_reason\":\"halt\"", NULL);
}

TEST(hlt_with_irqchip_times_out)
{
	need_kvm();
	const char *a[] = {"--payload", payload("hlt.bin"), "--timeout-ms", "300", NULL};
	expect_vmm(a, 124, NULL, "\"exit_reason\":\"timeout\"", NULL);
}

TEST(sigterm_stops_cleanly)
{
	need_kvm();
	const char *a[] = {"--payload", payload("hlt.bin"), "--vcpus", "2", NULL};
	run_result r = run_vmm(a, 500);
	CHECK_INT_EQ(r.status, 0);
	CHECK_STR_EQ(r.serial, "H\n");
	CHECK_CONTAINS(r.err, "\"exit_reason\":\"signal\"");
}

/* A 1 MiB disk image under /tmp whose sector 0 starts "silo-blk-sector0: hello guest\n". */
static void make_disk(char *path)
{
	strcpy(path, "/tmp/silo-vmm-disk-XXXXXX");
	int fd = mkstemp(path);
	REQUIRE(fd >= 0);
	static const char line[] = "silo-blk-sector0: hello guest\n";
	REQUIRE(write(fd, line, sizeof line) == (ssize_t)sizeof line); /* includes the NUL */
	REQUIRE(ftruncate(fd, 1 << 20) == 0);
	close(fd);
}

/* Run virtio_blk.bin with a fresh disk (make_disk) attached as --drive DISK,OPTS (plus
 * EXTRA, an option or NULL): it exits 0 printing WANT_SERIAL. SECTOR1 gets the first
 * 17 bytes of sector 1, where the guest writes "written by guest\n"; the disk is removed. */
static void blk_run(const char *opts, const char *extra, const char *want_serial, char sector1[32])
{
	char disk[64], drive[128];
	make_disk(disk);
	snprintf(drive, sizeof drive, "%s,%s", disk, opts);
	const char *a[] = {"--payload", payload("virtio_blk.bin"), "--drive", drive, "--timeout-ms", "20000", extra, NULL};
	expect_vmm(a, 0, want_serial, NULL);
	memset(sector1, 0, 32);
	int fd = open(disk, O_RDONLY);
	CHECK(pread(fd, sector1, 17, 512) == 17);
	close(fd);
	unlink(disk);
}

TEST(virtio_blk_guest_driver_rw)
{
	need_kvm();
	char sector1[32];
	blk_run("id=silo-test-disk", "--rng", "silo-blk-sector0: hello guest\nid=silo-test-disk\nwrite status=0\nflush status=0\n",
		sector1);
	CHECK_STR_EQ(sector1, "written by guest\n");
}

TEST(virtio_blk_guest_driver_read_only)
{
	need_kvm();
	char sector1[32];
	/* the write fails with VIRTIO_BLK_S_IOERR; the default id is "silo" */
	blk_run("ro", NULL, "silo-blk-sector0: hello guest\nid=silo\nwrite status=1\nflush status=0\n", sector1);
	CHECK(sector1[0] == 0);
	const char *a2[] = {"--payload", payload("virtio_blk.bin"), "--drive", "/tmp,bogus", NULL};
	expect_vmm(a2, 1, NULL, "unknown option \"bogus\"", NULL);
}

TEST(vsock_uds_lifecycle)
{
	need_kvm();
	char dir[] = "/tmp/silo-vmm-vsock-XXXXXX", uds[128];
	REQUIRE(mkdtemp(dir));
	snprintf(uds, sizeof uds, "%s/v.sock", dir);
	const char *a[] = {"--payload", payload("hlt.bin"), "--vsock-uds", uds, "--timeout-ms", "700", NULL};
	pid_t pid = fork();
	if (pid == 0) {
		run_result r = run_vmm(a, 0);
		_exit(r.status == 124 ? 0 : 1);
	}
	usleep(300 * 1000);
	struct stat st;
	CHECK(stat(uds, &st) == 0 && S_ISSOCK(st.st_mode));
	int ws = 0;
	waitpid(pid, &ws, 0);
	CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	CHECK(access(uds, F_OK) != 0); /* removed on exit */
	CHECK(rmdir(dir) == 0);          /* nothing else left behind */
	const char *a2[] = {"--payload", payload("hlt.bin"), "--vsock-uds", "/nonexistent-dir/v.sock", NULL};
	expect_vmm(a2, 1, NULL, "--vsock-uds: listen on /nonexistent-dir/v.sock", NULL);
}

TEST(jail_namespaces_seccomp_caps_and_cleanup)
{
	need_kvm();
	if (geteuid() != 0)
		SKIP("the jail needs root (namespaces, pivot_root)");
	char dir[] = "/tmp/silo-vmm-jail-XXXXXX", sockdir[] = "/tmp/silo-vmm-jsock-XXXXXX", uds[128];
	REQUIRE(mkdtemp(dir) && mkdtemp(sockdir));
	snprintf(uds, sizeof uds, "%s/v.sock", sockdir);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		/* LeakSanitizer's exit-time tracer (clone+ptrace) is outside the allow-list. */
		setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		/* --netns new: the network namespace older kernels get (Landlock ABI < 6) */
		execl(vmm_path, vmm_path, "--payload", payload("hlt.bin"), "--jail", dir, "--vsock-uds", uds,
		      "--timeout-ms", "1500", "--netns", "new", (char *)NULL);
		_exit(127);
	}
	usleep(500 * 1000);
	pid_t jailed = proc_first_child(pid);
	CHECK(jailed > 0);
	if (jailed > 0) {
		cleanup_free char *st = proc_text(jailed, "status");
		CHECK_CONTAINS(st, "Seccomp:\t2");
		CHECK_CONTAINS(st, "NoNewPrivs:\t1");
		CHECK_CONTAINS(st, "CapEff:\t0000000000000000");
		CHECK_CONTAINS(st, "CapBnd:\t0000000000000000");
		CHECK_CONTAINS(st, "NSpid:"); /* pid 1 in its own namespace */
		CHECK(st && strstr(st, "\t1\n") != NULL);
		CHECK(!same_namespace(jailed, "net"));
		char p1[64];
		/* its root is the (empty) jail directory, not the host's / */
		snprintf(p1, sizeof p1, "/proc/%d/root/etc", (int)jailed);
		CHECK(access(p1, F_OK) != 0);
		snprintf(p1, sizeof p1, "/proc/%d/root/.", (int)jailed);
		struct stat s1, s2;
		CHECK(stat(p1, &s1) == 0 && stat(dir, &s2) == 0 && s1.st_ino == s2.st_ino);
	}
	int ws = 0;
	waitpid(pid, &ws, 0);
	CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 124); /* the timeout, relayed through the jail parent */
	CHECK(access(uds, F_OK) != 0);
	CHECK(rmdir(dir) == 0);
	CHECK(rmdir(sockdir) == 0);
}

TEST(jail_runs_the_virtio_payload)
{
	need_kvm();
	if (geteuid() != 0)
		SKIP("the jail needs root (namespaces, pivot_root)");
	setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
	char dir[] = "/tmp/silo-vmm-jail-XXXXXX", disk[64];
	REQUIRE(mkdtemp(dir));
	make_disk(disk);
	const char *a[] = {"--payload", payload("virtio_blk.bin"), "--drive", disk, "--jail", dir, "--timeout-ms", "20000", NULL};
	expect_vmm(a, 0, "silo-blk-sector0: hello guest\nid=silo\nwrite status=0\nflush status=0\n", NULL);
	unlink(disk);
	CHECK(rmdir(dir) == 0);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	REQUIRE(f);
	fputs(text, f);
	fclose(f);
}

TEST(firecracker_style_config_file)
{
	need_kvm();
	char dir[] = "/tmp/silo-vmm-cfg-XXXXXX", cfg[128], disk[64], json[2048];
	REQUIRE(mkdtemp(dir));
	make_disk(disk);
	snprintf(cfg, sizeof cfg, "%s/vm.json", dir);
	snprintf(json, sizeof json,
		 "{\"boot-source\": {\"kernel_image_path\": \"%s\", \"boot_args\": \"console=ttyS0\"},\n"
		 " \"machine-config\": {\"vcpu_count\": 2, \"mem_size_mib\": 64},\n"
		 " \"drives\": [{\"drive_id\": \"rootfs\", \"path_on_host\": \"%s\", \"is_root_device\": true, \"is_read_only\": true}],\n"
		 " \"vsock\": {\"guest_cid\": 3, \"uds_path\": \"%s/v.sock\"}}\n",
		 payload("elf64.elf"), disk, dir);
	write_text(cfg, json);
	const char *a[] = {"--config", cfg, "--boot-timer", "--timeout-ms", "20000", NULL};
	expect_vmm(a, 42, "silo elf64 payload OK\n", NULL);
	char uds[160];
	snprintf(uds, sizeof uds, "%s/v.sock", dir);
	CHECK(access(uds, F_OK) != 0);
	static const struct {
		const char *json, *msg;
	} bad[] = {
		{"{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"network-interfaces\": []}", "config: network-interfaces: unknown"},
		{"{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"machine-config\": {\"mem_size_mib\": 5000}}", "machine-config.mem_size_mib: expected an integer in 1..3072"},
		{"{\"machine-config\": {}}", "boot-source: required"},
		{"{\"boot-source\": {\"kernel_image_path\": 7}}", "boot-source.kernel_image_path: expected a non-empty string"},
		{"{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"drives\": [{\"drive_id\": \"a\"}]}", "drives[0].path_on_host: required"},
		{"{\"boot-source\": {\"kernel_image_path\": \"/k\"}, \"vsock\": {\"uds_path\": \"/x\", \"guest_cid\": 2}}", "vsock.guest_cid"},
		{"{\"boot-source\": ", "line 1"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		write_text(cfg, bad[i].json);
		const char *b[] = {"--config", cfg, NULL};
		expect_vmm(b, 2, NULL, bad[i].msg, NULL);
	}
	const char *c2[] = {"--config", cfg, "--kernel", payload("elf64.elf"), NULL};
	expect_vmm(c2, 2, NULL, NULL);
	unlink(cfg);
	unlink(disk);
	CHECK(rmdir(dir) == 0);
}

TEST(bad_input_is_rejected_with_field_names)
{
	need_kvm();
	const char *a1[] = {"--payload", payload("hlt.bin"), "--mem", "0", NULL};
	expect_vmm(a1, 2, NULL, "--mem", NULL);
	const char *a2[] = {"--kernel", payload("hlt.bin"), NULL};
	expect_vmm(a2, 1, NULL, "kernel: not an ELF file", NULL);
	const char *a3[] = {"--payload", "/nonexistent/payload.bin", NULL};
	expect_vmm(a3, 1, NULL, "/nonexistent/payload.bin", NULL);
	const char *a4[] = {"--payload", payload("hlt.bin"), "--vcpus", "2", "--no-irqchip", NULL};
	expect_vmm(a4, 2, NULL, NULL);
	const char *a5[] = {"--payload", payload("hlt.bin"), "--kernel", payload("elf64.elf"), NULL};
	expect_vmm(a5, 2, NULL, NULL);
}

TEST_MAIN(realmode_serial_bootimer_i8042_reset, serial_flood_is_capped_keeping_the_tail, longmode_mmio_boot_timer_debug_exit,
	  longmode_two_vcpus_aps_wait_for_sipi, elf64_direct_boot_exit_status, hlt_without_irqchip_exits,
	  hlt_with_irqchip_times_out, sigterm_stops_cleanly, virtio_blk_guest_driver_rw,
	  virtio_blk_guest_driver_read_only, vsock_uds_lifecycle, jail_namespaces_seccomp_caps_and_cleanup,
	  jail_runs_the_virtio_payload, firecracker_style_config_file, bad_input_is_rejected_with_field_names)
