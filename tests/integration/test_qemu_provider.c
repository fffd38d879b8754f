/* SPDX-License-Identifier: Apache-2.0
 * qemu provider against real QEMU and the real guest kernel, without a host
 * channel: probe accuracy, startup failure cleanup, boot-failure diagnostics from
 * the serial console (an initrd that is not an archive: the kernel panics), QMP
 * pause/resume, forced terminate with no residue, reattach. The guest is the
 * "base" image; nothing here talks to its agent. (A boot.cmdline cannot choose
 * init: tests/integration/test_qemu_jail.c.)
 *
 * Needs the kernel and the base image (scripts/prepare-images.sh): absent ->
 * FAIL, unless SILO_SKIP_VM_TESTS=1 (SKIP).
 */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "core/provider.h"
#include "core/sandbox.h"
#include "harness.h"
#include "image/image.h"
#include "qemu_test.h"

extern const provider_ops qemu_provider;

static void need_vm(void)
{
	qt_need_vm_image("base");
}

static void init_sb(sandbox *sb, const char *id)
{
	memset(sb, 0, sizeof *sb);
	snprintf(sb->id, sizeof sb->id, "%s", id);
	snprintf(sb->rundir, sizeof sb->rundir, "/tmp/silo-qemu-test-%d-%s", (int)getpid(), id);
	REQUIRE(mkdir_p(sb->rundir, 0700) == 0);
}

static void spec_init(vm_spec *s)
{
	memset(s, 0, sizeof *s);
	snprintf(s->name, sizeof s->name, "t");
	s->vcpus = 1;
	s->memory_mb = 256;
	s->image = "base";
}

/* A VM of spec_init's spec spawned as sandbox ID; the test terminates it. */
static void spawn_default(sandbox *sb, const char *id)
{
	init_sb(sb, id);
	vm_spec s;
	spec_init(&s);
	silo_error err = {0};
	REQUIRE(qemu_provider.spawn(sb, &s, &err) == 0);
}

static void check_no_residue(sandbox *sb, pid_t pid)
{
	char **res = NULL;
	qemu_provider.residue(sb, &res);
	if (res)
		for (char **r = res; *r; r++)
			printf("# residue: %s\n", *r);
	CHECK(res == NULL);
	strv_free(res);
	CHECK(!path_exists(sb->rundir));
	CHECK(kill(pid, 0) < 0);
}

/* The "status" of QMP query-status ("running", "paused"), asked through our own QMP client. */
static void qmp_status(const char *rundir, char *out, size_t len)
{
	char reply[8192];
	qmp(rundir, "{\"execute\":\"query-status\"}", reply, sizeof reply);
	out[0] = '\0';
	const char *st = strstr(reply, "\"status\": \"");
	if (st) {
		st += strlen("\"status\": \"");
		const char *q = strchr(st, '"');
		if (q)
			snprintf(out, len, "%.*s", (int)(q - st), st);
	}
}

TEST(probe_reports_version_and_accel)
{
	provider_info pi;
	qemu_provider.probe(&pi);
	CHECK_STR_EQ(pi.name, "qemu");
	FILE *f = popen("qemu-system-x86_64 --version 2>/dev/null | head -1", "r");
	REQUIRE(f);
	char line[256] = "";
	if (!fgets(line, sizeof line, f))
		line[0] = '\0';
	pclose(f);
	if (!line[0]) {
		CHECK(!pi.available);
		CHECK_CONTAINS(pi.reason, "qemu");
		return;
	}
	char want[64];
	unsigned a, b, c;
	REQUIRE(sscanf(strstr(line, "version ") + 8, "%u.%u.%u", &a, &b, &c) == 3);
	snprintf(want, sizeof want, "QEMU %u.%u.%u", a, b, c);
	CHECK_STR_EQ(pi.version, want);
	char *cpu = NULL;
	size_t len;
	REQUIRE(read_file("/proc/cpuinfo", 4u << 20, &cpu, &len, NULL) == 0);
	bool hw = strstr(cpu, " vmx") || strstr(cpu, " svm");
	free(cpu);
	/* KVM only when the jailed (unprivileged) QEMU can open /dev/kvm too */
	struct stat kst;
	bool jail_ok = stat("/dev/kvm", &kst) == 0 &&
		       ((kst.st_mode & 0006) == 0006 || ((kst.st_mode & 0060) == 0060 && kst.st_gid != 0));
	CHECK_STR_EQ(pi.accel, hw && access("/dev/kvm", R_OK | W_OK) == 0 && jail_ok ? "kvm" : "tcg");
	printf("# qemu: available=%d version=%s accel=%s%s%s\n", pi.available, pi.version, pi.accel,
	       pi.reason[0] ? " reason=" : "", pi.reason);
	/* a missing binary is reported, not fatal */
	setenv("SILO_QEMU", "/nonexistent/qemu-system-x86_64", 1);
	provider_info p2;
	qemu_provider.probe(&p2);
	CHECK(!p2.available);
	CHECK_CONTAINS(p2.reason, "not found");
	unsetenv("SILO_QEMU");
}

TEST(startup_failure_reports_qemu_error_and_cleans_up)
{
	need_vm();
	sandbox sb;
	init_sb(&sb, "bad");
	vm_spec s;
	spec_init(&s);
	/* a drive QEMU cannot use: a directory */
	s.n_drives = 1;
	s.drives[0].path = sb.rundir;
	s.drives[0].read_only = true;
	silo_error err = {0};
	CHECK_INT_EQ(qemu_provider.spawn(&sb, &s, &err), -1);
	CHECK_CONTAINS(err.message, "qemu exited during startup");
	CHECK_STR_EQ(err.vm_id, "bad");
	CHECK(sb.prov == NULL);
	char **res = NULL;
	qemu_provider.residue(&sb, &res);
	CHECK(res == NULL);
	strv_free(res);
	rmdir(sb.rundir);

	/* bad inputs are refused before QEMU starts, naming the field */
	init_sb(&sb, "bad2");
	spec_init(&s);
	s.kernel = "/nonexistent/vmlinux";
	silo_error e2 = {0};
	CHECK_INT_EQ(qemu_provider.spawn(&sb, &s, &e2), -1);
	CHECK_CONTAINS(e2.message, "boot.kernel");
	spec_init(&s);
	s.image = "no-such-image";
	silo_error e3 = {0};
	CHECK_INT_EQ(qemu_provider.spawn(&sb, &s, &e3), -1);
	CHECK_CONTAINS(e3.message, "boot.image");
	spec_init(&s);
	s.cmdline = "console=ttyS0\nevil";
	silo_error e4 = {0};
	CHECK_INT_EQ(qemu_provider.spawn(&sb, &s, &e4), -1);
	CHECK_CONTAINS(e4.message, "boot.cmdline");
	CHECK(sb.pid == 0);
	rmdir(sb.rundir);
}

TEST(boot_failure_diagnostics_show_serial_console)
{
	need_vm();
	sandbox sb;
	init_sb(&sb, "panic");
	vm_spec s;
	spec_init(&s);
	/* an initrd that is no archive: no init anywhere, the kernel panics */
	char junk[PATH_MAX];
	snprintf(junk, sizeof junk, "%s.junk-initrd", sb.rundir);
	REQUIRE(write_file_atomic(junk, "this is not a cpio archive\n", 27, 0644, NULL) == 0);
	s.initrd = junk;
	silo_error err = {0};
	REQUIRE(qemu_provider.spawn(&sb, &s, &err) == 0);
	pid_t pid = sb.pid;
	/* the kernel finds no init, panics, panic=-1 reboots, -no-reboot exits QEMU */
	uint64_t deadline = now_mono_ns() + 60000000000ull;
	while (qemu_provider.alive(&sb) && now_mono_ns() < deadline)
		usleep(20000);
	CHECK(!qemu_provider.alive(&sb));
	silo_error e2 = {0};
	CHECK_INT_EQ(qemu_provider.connect(&sb, 200, &e2), -1);
	char diag[4096];
	qemu_provider.diagnostics(&sb, diag, sizeof diag);
	char shown[301];
	snprintf(shown, sizeof shown, "%s", diag);
	for (char *c = shown; *c; c++)
		if (*c == '\n')
			*c = ' ';
	printf("# diagnostics: %s\n", shown);
	CHECK_CONTAINS(diag, "qemu exited");
	CHECK_CONTAINS(diag, "Kernel panic");
	CHECK_INT_EQ(qemu_provider.terminate(&sb, 1000, &err), 0);
	check_no_residue(&sb, pid);
	unlink(junk);
}

TEST(pause_resume_and_forced_terminate)
{
	need_vm();
	sandbox sb;
	spawn_default(&sb, "pause");
	silo_error err = {0};
	pid_t pid = sb.pid;
	CHECK(qemu_provider.alive(&sb));
	/* the agent socket accepts connections (QEMU is the server) */
	int fd = qemu_provider.connect(&sb, 5000, &err);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	char st[32];
	qmp_status(sb.rundir, st, sizeof st);
	CHECK_STR_EQ(st, "running");
	REQUIRE(qemu_provider.pause(&sb, &err) == 0);
	qmp_status(sb.rundir, st, sizeof st);
	CHECK_STR_EQ(st, "paused");
	REQUIRE(qemu_provider.resume(&sb, &err) == 0);
	qmp_status(sb.rundir, st, sizeof st);
	CHECK_STR_EQ(st, "running");
	CHECK(qemu_provider.alive(&sb));
	/* no host channel: terminate falls back to QMP quit, then SIGKILL */
	uint64_t t1 = now_mono_ns();
	CHECK_INT_EQ(qemu_provider.terminate(&sb, 500, &err), 0);
	printf("# terminate took %.0f ms\n", (now_mono_ns() - t1) / 1e6);
	check_no_residue(&sb, pid);
	silo_error e2 = {0};
	CHECK_INT_EQ(qemu_provider.pause(&sb, &e2), -1);
}

TEST(reattach_after_manager_restart)
{
	need_vm();
	sandbox sb;
	spawn_default(&sb, "reatt");
	silo_error err = {0};
	pid_t pid = sb.pid;
	/* a "new manager" knows only the id, rundir and pid (registry); the jailer is not its child */
	sandbox sb2;
	memset(&sb2, 0, sizeof sb2);
	snprintf(sb2.id, sizeof sb2.id, "%s", sb.id);
	snprintf(sb2.rundir, sizeof sb2.rundir, "%s", sb.rundir);
	sb2.pid = pid;
	REQUIRE(qemu_provider.reattach(&sb2, &err) == 0);
	CHECK(qemu_provider.alive(&sb2));
	CHECK_INT_EQ(qemu_provider.pause(&sb2, &err), 0);
	CHECK_INT_EQ(qemu_provider.resume(&sb2, &err), 0);
	int fd = qemu_provider.connect(&sb2, 5000, &err);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	CHECK_INT_EQ(qemu_provider.terminate(&sb2, 500, &err), 0);
	/* the original parent reaps the zombie; the reattached view must already call it gone */
	CHECK(!qemu_provider.alive(&sb2));
	int st;
	waitpid(pid, &st, 0);
	free(sb.prov);
	sb.prov = NULL;
	check_no_residue(&sb2, pid);
	/* a pid that is not this sandbox's jailer is refused */
	sandbox sb3;
	memset(&sb3, 0, sizeof sb3);
	snprintf(sb3.id, sizeof sb3.id, "x");
	snprintf(sb3.rundir, sizeof sb3.rundir, "/tmp");
	sb3.pid = getpid();
	silo_error e2 = {0};
	CHECK_INT_EQ(qemu_provider.reattach(&sb3, &e2), -1);
	CHECK_INT_EQ(e2.code, SILO_ERR_VM_NOT_FOUND);
}

TEST_MAIN(probe_reports_version_and_accel, startup_failure_reports_qemu_error_and_cleans_up,
	  boot_failure_diagnostics_show_serial_console, pause_resume_and_forced_terminate,
	  reattach_after_manager_restart)
