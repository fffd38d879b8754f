/* SPDX-License-Identifier: Apache-2.0
 * silo-vmm boots the project's guest kernel (built into $SILO_CACHE_DIR/kernel/current
 * by images/) as far as this machine allows: under PVM (no vmx/svm) Linux only gets
 * through early boot, so the test waits for the kernel's first lines on the serial
 * log; the boot to userspace runs only with hardware virtualization.
 */
#include <fcntl.h>
#include <signal.h>
#include <time.h>

#include "common/util.h"
#include "harness.h"
#include "vmm_test.h"

static char kdir[4096];

static void need(const char *kernel_file)
{
	need_kvm();
	snprintf(kdir, sizeof kdir, "%s/kernel/current", silo_cache_dir());
	char p[4200];
	snprintf(p, sizeof p, "%s/%s", kdir, kernel_file);
	if (access(p, R_OK) != 0)
		SKIP("no guest kernel at %s (build it with images/)", p);
}

/* Boot kernel_file and wait up to wait_s for needle in the serial log. */
static char *boot_until(const char *kernel_file, const char *needle, int wait_s, const char *extra)
{
	char serial[] = "/tmp/silo-vmm-linux-XXXXXX";
	int sfd = mkstemp(serial);
	REQUIRE(sfd >= 0);
	char kernel[4200];
	snprintf(kernel, sizeof kernel, "%s/%s", kdir, kernel_file);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 2);
		execl(vmm_path, vmm_path, "--kernel", kernel, "--mem", "256", "--serial-log", serial, "--rng",
		      "--cmdline",
		      "console=ttyS0 earlyprintk=serial,ttyS0 reboot=k panic=-1 noxsave "
		      "clearcpuid=popcnt,cx16,smap,smep,fsgsbase,rdpid,invpcid,pcid,pku,umip",
		      "--timeout-ms", "600000", extra, (char *)NULL);
		_exit(127);
	}
	char *log = NULL;
	uint64_t deadline = now_mono_ns() + (uint64_t)wait_s * 1000000000ULL;
	for (;;) {
		free(log);
		log = NULL;
		size_t n;
		if (read_file(serial, 1u << 20, &log, &n, NULL) < 0)
			log = xstrdup("");
		if (strstr(log, needle) || now_mono_ns() > deadline)
			break;
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			pid = -1;
			break;
		}
		usleep(100 * 1000);
	}
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
	close(sfd);
	unlink(serial);
	return log;
}

TEST(pvh_vmlinux_reaches_early_boot)
{
	need("vmlinux");
	char *log = boot_until("vmlinux", "BIOS-e820", 30, "--vcpus=1");
	CHECK_CONTAINS(log, "Linux version");
	/* our command line, with the virtio-mmio device we attached, and our e820 map */
	CHECK_CONTAINS(log, "virtio_mmio.device=4K@0xd0001000:5");
	CHECK_CONTAINS(log, "BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable");
	free(log);
}

TEST(bzimage_reaches_early_boot)
{
	need("bzImage");
	if (!hw_virt())
		SKIP("PVM host: the bzImage decompressor printed nothing within 100 s here (emulated ring 0); bzImage boot is tested with vmx/svm only");
	char *log = boot_until("bzImage", "Linux version", 60, "--vcpus=1");
	CHECK_CONTAINS(log, "Linux version");
	free(log);
}

TEST(linux_boots_to_userspace)
{
	need("vmlinux");
	if (!hw_virt())
		SKIP("PVM host: guest ring 0 is emulated; Linux guests cannot reach userspace");
	char *log = boot_until("vmlinux", "Run /init", 60, "--vcpus=2");
	CHECK_CONTAINS(log, "Run /init");
	free(log);
}

TEST_MAIN(pvh_vmlinux_reaches_early_boot, bzimage_reaches_early_boot, linux_boots_to_userspace)
