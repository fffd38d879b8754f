/* SPDX-License-Identifier: Apache-2.0
 * The kvm provider: probe on this host (PVM => unavailable with a reason unless
 * SILO_KVM_FORCE=1), and spawn / connect / terminate of a real silo-vmm with the
 * project kernel (which only reaches early boot on PVM: connect must time out
 * with BOOT_TIMEOUT, terminate must leave nothing behind).
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

#include "common/util.h"
#include "core/provider.h"
#include "core/sandbox.h"
#include "harness.h"

static bool hw_virt(void)
{
	cleanup_free char *ci = NULL;
	size_t n = 0;
	if (read_file("/proc/cpuinfo", 16u << 20, &ci, &n, NULL) < 0)
		return false;
	return strstr(ci, " vmx") || strstr(ci, " svm");
}

TEST(probe_says_why)
{
	const provider_ops *p = provider_find("kvm");
	REQUIRE(p);
	unsetenv("SILO_KVM_FORCE");
	provider_info info = {.name = "kvm"};
	p->probe(&info);
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		CHECK(!info.available);
		CHECK_CONTAINS(info.reason, "/dev/kvm");
		return;
	}
	close(fd);
	if (hw_virt()) {
		CHECK(info.available);
		CHECK_STR_EQ(info.accel, "kvm");
	} else {
		CHECK(!info.available);
		CHECK_CONTAINS(info.reason, "PVM host: guest ring 0 is emulated; Linux guests cannot reach userspace");
		setenv("SILO_KVM_FORCE", "1", 1);
		provider_info f = {.name = "kvm"};
		p->probe(&f);
		CHECK(f.available);
		CHECK_STR_EQ(f.accel, "pvm");
		/* auto selection skips kvm here and says why */
		unsetenv("SILO_KVM_FORCE");
		char why[1024];
		silo_error err = {0};
		provider_select(NULL, "kvm,namespace", why, sizeof why, &err);
		CHECK_CONTAINS(why, "kvm: PVM host");
	}
}

/* GET / on silo-vmm's API socket (with curl, a real third-party client) contains want. */
static bool api_state_is(const char *rundir, const char *want)
{
	char cmd[4400];
	snprintf(cmd, sizeof cmd, "curl -s --max-time 5 --unix-socket %s/api.sock http://localhost/ | grep -qF '%s'",
		 rundir, want);
	return system(cmd) == 0;
}

TEST(spawn_connect_timeout_terminate_clean)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		SKIP("/dev/kvm cannot be opened");
	close(fd);
	char kernel[4096];
	snprintf(kernel, sizeof kernel, "%s/kernel/current/vmlinux", silo_cache_dir());
	if (access(kernel, R_OK) != 0)
		SKIP("no guest kernel at %s", kernel);
	if (hw_virt())
		SKIP("hardware virtualization present: the kernel would boot for real (covered by the e2e tests)");
	const provider_ops *p = provider_find("kvm");
	static sandbox sb;
	memset(&sb, 0, sizeof sb);
	snprintf(sb.id, sizeof sb.id, "kvmtest");
	snprintf(sb.rundir, sizeof sb.rundir, "/tmp/silo-kvm-prov-XXXXXX");
	REQUIRE(mkdtemp(sb.rundir));
	vm_spec spec;
	memset(&spec, 0, sizeof spec);
	spec.kernel = kernel;
	spec.memory_mb = 256;
	spec.vcpus = 1;
	spec.cmdline = (char *)"noxsave rdinit=/bin/sh";
	silo_error err = {0};
	REQUIRE(p->spawn(&sb, &spec, &err) == 0);
	CHECK(sb.pid > 0);
	CHECK(p->alive(&sb));
	/* what silo-vmm was given: the user's parameters minus rdinit, then Silo's (the scratch
	 * disk is vda: no other drive), the scratch disk relative to its working directory (the
	 * run dir), a capped serial log */
	char procf[64], cwd[4200] = "";
	snprintf(procf, sizeof procf, "/proc/%d/cmdline", (int)sb.pid);
	cleanup_free char *argv = NULL;
	size_t alen = 0;
	/* spawn returns after fork: wait for the child's execve */
	for (int i = 0; i < 500; i++) {
		free(argv);
		argv = NULL;
		REQUIRE(read_file(procf, 1 << 16, &argv, &alen, NULL) == 0);
		if (memmem(argv, alen, "--serial-log-max", 16))
			break;
		usleep(10000);
	}
	bool saw_cmdline = false, saw_drive = false, saw_max = false;
	for (size_t o = 0; o < alen; o += strlen(argv + o) + 1) {
		const char *a = argv + o;
		if (!strcmp(a, "noxsave console=ttyS0 reboot=k panic=-1 quiet silo.scratch=/dev/vda"))
			saw_cmdline = true;
		saw_drive = saw_drive || !strcmp(a, "disk.img,id=silo-scratch");
		saw_max = saw_max || !strcmp(a, "16777216");
		CHECK(!strstr(a, "rdinit"));
	}
	CHECK(saw_cmdline && saw_drive && saw_max);
	snprintf(procf, sizeof procf, "/proc/%d/cwd", (int)sb.pid);
	CHECK(readlink(procf, cwd, sizeof cwd - 1) > 0 && !strcmp(cwd, sb.rundir));
	char disk[4200];
	snprintf(disk, sizeof disk, "%s/disk.img", sb.rundir);
	struct stat dst;
	CHECK(stat(disk, &dst) == 0 && dst.st_size == (off_t)SPEC_DISK_DEFAULT_MB << 20);
	/* Linux stays in early boot here: the agent never answers */
	int c = p->connect(&sb, 1500, &err);
	CHECK(c < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_BOOT_TIMEOUT);
	char serial[4200];
	snprintf(serial, sizeof serial, "%s/serial.log", sb.rundir);
	cleanup_free char *log = NULL;
	size_t n = 0;
	CHECK(read_file(serial, 1 << 20, &log, &n, NULL) == 0);
	/* Pause and resume through silo-vmm's API socket; its GET / reports the state. */
	CHECK(p->pause(&sb, &err) == 0);
	CHECK(api_state_is(sb.rundir, "\"state\":\"Paused\""));
	CHECK(api_state_is(sb.rundir, "\"id\":\"kvmtest\""));
	CHECK(p->pause(&sb, &err) == 0); /* idempotent */
	/* Snapshot (paused) and restore into a second sandbox: a new silo-vmm maps the saved RAM
	 * copy-on-write and carries on from the same point of the (early-boot) kernel. */
	char snapdir[] = "/tmp/silo-kvm-snap-XXXXXX";
	REQUIRE(mkdtemp(snapdir));
	CHECK(p->snapshot(&sb, snapdir, &err) == 0);
	char f[4200];
	snprintf(f, sizeof f, "%s/vm.mem", snapdir);
	CHECK(access(f, R_OK) == 0);
	snprintf(f, sizeof f, "%s/vm.state", snapdir);
	CHECK(access(f, R_OK) == 0);
	snprintf(f, sizeof f, "%s/disk.sparse", snapdir);   /* the scratch disk, compact */
	CHECK(stat(f, &dst) == 0 && dst.st_size < (32 << 20));
	CHECK(p->resume(&sb, &err) == 0);
	CHECK(api_state_is(sb.rundir, "\"state\":\"Running\""));
	static sandbox sb2;
	memset(&sb2, 0, sizeof sb2);
	snprintf(sb2.id, sizeof sb2.id, "kvmrestored");
	snprintf(sb2.rundir, sizeof sb2.rundir, "/tmp/silo-kvm-prov2-XXXXXX");
	REQUIRE(mkdtemp(sb2.rundir));
	CHECK(p->restore(&sb2, &spec, snapdir, &err) == 0);
	CHECK(p->alive(&sb2));
	CHECK(api_state_is(sb2.rundir, "\"state\":\"Running\""));
	CHECK(api_state_is(sb2.rundir, "\"id\":\"kvmrestored\""));
	char cfgcmd[4400];
	snprintf(cfgcmd, sizeof cfgcmd, "curl -s --max-time 5 --unix-socket %s/api.sock http://localhost/vm/config | grep -qF '\"mem_size_mib\":256'",
		 sb2.rundir);
	CHECK_INT_EQ(system(cfgcmd), 0);
	snprintf(disk, sizeof disk, "%s/disk.img", sb2.rundir);   /* its own copy of the scratch disk */
	CHECK(stat(disk, &dst) == 0 && dst.st_size == (off_t)SPEC_DISK_DEFAULT_MB << 20);
	pid_t pid2 = sb2.pid;
	CHECK(p->terminate(&sb2, 2000, &err) == 0);
	CHECK(kill(pid2, 0) != 0);
	CHECK(access(sb2.rundir, F_OK) != 0);
	/* A corrupt snapshot is refused and leaves nothing behind. */
	snprintf(f, sizeof f, "%s/vm.state", snapdir);
	FILE *fp = fopen(f, "r+");
	REQUIRE(fp);
	fseek(fp, 100, SEEK_SET);
	fputc('X', fp);
	fclose(fp);
	REQUIRE(mkdtemp(strcpy(sb2.rundir, "/tmp/silo-kvm-prov3-XXXXXX")));
	CHECK(p->restore(&sb2, &spec, snapdir, &err) == -1);
	CHECK_CONTAINS(err.message, "vm.state");
	CHECK(access(sb2.rundir, F_OK) != 0);
	snprintf(f, sizeof f, "rm -rf %s", snapdir);
	CHECK_INT_EQ(system(f), 0);
	char diag[512];
	p->diagnostics(&sb, diag, sizeof diag);
	CHECK_CONTAINS(diag, "silo-vmm");
	pid_t pid = sb.pid;
	CHECK(p->terminate(&sb, 2000, &err) == 0);
	CHECK(kill(pid, 0) != 0);
	CHECK(access(sb.rundir, F_OK) != 0); /* rundir and its files are gone */
	/* bad spec fields are named */
	spec.kernel = (char *)"/nonexistent/vmlinux";
	CHECK(p->spawn(&sb, &spec, &err) == -1);
	CHECK_CONTAINS(err.message, "boot.kernel");
}

TEST_MAIN(probe_says_why, spawn_connect_timeout_terminate_clean)
