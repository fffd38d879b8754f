/* SPDX-License-Identifier: Apache-2.0
 * silo-vmm start-up vs its peers on the same guest payload (tests/guest/pvh.S, a PVH ELF
 * that writes POST port 0x80 first, enters long mode, prints one line on COM1, writes the
 * boot-timer magic and exits through port 0xf4), N rounds, every variant once per round in
 * rotating order (the host is shared and noisy: compare within one run).
 *
 *   vmm_boot [N] [--accel kvm|tcg] [--peer-vmm [LABEL=]PATH]... [--no-qemu]
 *
 * Variants: this build's silo-vmm without and with its jail (--jail, a leased uid, as the
 * kvm provider runs it); each --peer-vmm (up to 3: another build of silo-vmm, e.g. main's)
 * without and with the same jail; QEMU microvm (-accel kvm if it works, else tcg).
 * Per variant, from fork() in this process: first guest instruction (silo-vmm reports the
 * CLOCK_MONOTONIC time of the POST write), first serial byte, exit, and exec (fork() ->
 * silo-vmm's main(), from its process_start_mono_us; builds that report it). From silo-vmm's
 * metrics line: process start (main) -> first guest instruction, process start -> VM ready,
 * VM start -> first guest instruction; each start-up step ("steps": us since process start,
 * "step_us": what the step took; docs/vmm.md "Start-up").
 * Host floor, in this process, every round: the bare KVM VM + vCPU (open /dev/kvm,
 * KVM_CREATE_VM, KVM_CREATE_VCPU, its kvm_run mapping) and the minimal VM of the same shape
 * as silo-vmm's (128 MiB memfd slot, irqchip, PIT, one vCPU) to its first guest instruction
 * (a real-mode `out 0x80` at 0x1000), with its own steps: what KVM costs here, not us.
 * ("kvm_only_us" of the kvm-* variants).
 * Output: one JSON object with p50/p95/p99 in microseconds.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "vmm_bench.h"
#include "common/util.h"
#include "providers/vm.h"
#include "silo-config.h"

enum { M_HOST, M_FIRST_INSN_SPAWN, M_EXEC, M_FIRST_INSN_PROC, M_SETUP, M_FIRST_INSN_VM, M_FIRST_BYTE, M_EXIT, M__N };
static const char *const mnames[M__N] = {
	"kvm_only_us", "spawn_to_first_guest_insn_us", "exec_fork_to_main_us", "process_start_to_first_guest_insn_us",
	"process_start_to_vm_ready_us", "vm_start_to_first_guest_insn_us", "spawn_to_first_serial_byte_us",
	"spawn_to_exit_us"};

typedef struct series {
	const char *name, *desc;
	char *const *argv;
	bool parse_metrics, qemu;
	int want_status;
	double *v[M__N];
	int n[M__N];
	vmm_steps steps[2]; /* [0] us since process start, [1] what each step took */
	int failures;
} series;

static void add(series *s, int m, double x)
{
	if (x >= 0)
		bench_append(&s->v[m], &s->n[m], x);
}

static double field(const char *text, const char *key)
{
	char k[64];
	snprintf(k, sizeof k, "\"%s\":", key);
	const char *p = strstr(text, k);
	return p ? strtod(p + strlen(k), NULL) : -1;
}

/* Run the variant once; serial on stdout (pipe), metrics on stderr. */
static void run_once(series *s)
{
	int out[2], err[2];
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
		die_errno(1, "pipe");
	uint64_t t0 = now_mono_ns();
	pid_t pid = fork();
	if (pid == 0) {
		dup2(out[1], 1);
		dup2(err[1], 2);
		execvp(s->argv[0], s->argv);
		_exit(127);
	}
	close(out[1]);
	close(err[1]);
	char buf[4096], ebuf[8192];
	size_t got = 0, egot = 0;
	double first = -1;
	struct pollfd p[2] = {{.fd = out[0], .events = POLLIN}, {.fd = err[0], .events = POLLIN}};
	int open_fds = 2;
	while (open_fds) {
		if (poll(p, 2, 10000) <= 0)
			break;
		for (int i = 0; i < 2; i++) {
			if (!(p[i].revents & (POLLIN | POLLHUP)))
				continue;
			ssize_t n = i == 0 ? read(out[0], buf + got, sizeof buf - 1 - got)
					   : read(err[0], ebuf + egot, sizeof ebuf - 1 - egot);
			if (n <= 0) {
				p[i].fd = -1;
				open_fds--;
				continue;
			}
			if (i == 0 && first < 0)
				first = (double)(now_mono_ns() - t0) / 1000.0;
			if (i == 0)
				got += (size_t)n;
			else
				egot += (size_t)n;
		}
	}
	int st = 0;
	waitpid(pid, &st, 0);
	double exit_us = (double)(now_mono_ns() - t0) / 1000.0;
	close(out[0]);
	close(err[0]);
	buf[got] = 0;
	ebuf[egot] = 0;
	if (!strstr(buf, "silo pvh payload OK") || !WIFEXITED(st) || WEXITSTATUS(st) != s->want_status) {
		fprintf(stderr, "vmm_boot: %s: unexpected result (status %d): %s %s\n", s->name,
			WIFEXITED(st) ? WEXITSTATUS(st) : -1, buf, ebuf);
		s->failures++;
		return;
	}
	add(s, M_FIRST_BYTE, first);
	add(s, M_EXIT, exit_us);
	if (!s->parse_metrics)
		return;
	double setup = field(ebuf, "vm_setup_us"), post = field(ebuf, "first_post_us"), mono = field(ebuf, "first_post_mono_us");
	add(s, M_SETUP, setup);
	add(s, M_FIRST_INSN_VM, post);
	if (setup >= 0 && post >= 0)
		add(s, M_FIRST_INSN_PROC, setup + post);
	if (mono > 0)
		add(s, M_FIRST_INSN_SPAWN, mono - (double)t0 / 1000.0);
	double pmono = field(ebuf, "process_start_mono_us");
	if (pmono > 0)
		add(s, M_EXEC, pmono - (double)t0 / 1000.0);
	vmm_steps_parse(&s->steps[0], ebuf, "steps");
	vmm_steps_parse(&s->steps[1], ebuf, "step_us");
}

static void print_series(series *s, bool last)
{
	printf("    \"%s\": {\n      \"cmd\": \"%s\",\n      \"failures\": %d,\n", s->name, s->desc, s->failures);
	int k = 0;
	for (int m = 0; m < M__N; m++)
		k += s->n[m] > 0;
	bool steps = s->steps[0].count || s->steps[1].count;
	for (int m = 0; m < M__N; m++)
		if (s->n[m])
			vmm_pct3("      ", mnames[m], s->v[m], s->n[m], --k > 0 || steps);
	if (s->steps[0].count)
		vmm_steps_print("      ", "steps_us_since_process_start", &s->steps[0], s->steps[1].count > 0);
	if (s->steps[1].count)
		vmm_steps_print("      ", "step_took_us", &s->steps[1], false);
	printf("    }%s\n", last ? "" : ",");
}

/* The host floor: what KVM itself costs for the VM silo-vmm builds, in this process (no
 * exec, no jail, no devices, no CPUID): the bare VM + vCPU, and the minimal VM of the same
 * shape to its first guest instruction, each step timed. -1 if /dev/kvm fails. */
static double since_us(uint64_t *t)
{
	uint64_t now = now_mono_ns();
	double d = (double)(now - *t) / 1000.0;
	*t = now;
	return d;
}

static double kvm_bare(void)
{
	uint64_t t0 = now_mono_ns();
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), vmfd = -1, cpu = -1;
	long sz = kvm < 0 ? -1 : ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	void *run = MAP_FAILED;
	if (sz > 0 && (vmfd = ioctl(kvm, KVM_CREATE_VM, 0)) >= 0 && (cpu = ioctl(vmfd, KVM_CREATE_VCPU, 0)) >= 0)
		run = mmap(NULL, (size_t)sz, PROT_READ | PROT_WRITE, MAP_SHARED, cpu, 0);
	double us = run == MAP_FAILED ? -1 : bench_us_since(t0);
	if (run != MAP_FAILED)
		munmap(run, (size_t)sz);
	int fds[] = {cpu, vmfd, kvm};
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return us;
}

static double kvm_floor(series *s)
{
	uint64_t t0 = now_mono_ns(), t = t0;
	size_t mem = 128u << 20;
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), vmfd = -1, cpu = -1, mfd = -1;
	long sz = kvm < 0 ? -1 : ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	uint8_t *ram = MAP_FAILED;
	struct kvm_run *run = MAP_FAILED;
	double total = -1, st[6];
	if (sz <= 0 || (vmfd = ioctl(kvm, KVM_CREATE_VM, 0)) < 0 || ioctl(vmfd, KVM_SET_TSS_ADDR, 0xfffbd000ul) < 0)
		goto out;
	st[0] = since_us(&t);
	if ((mfd = memfd_create("floor", MFD_CLOEXEC)) < 0 || ftruncate(mfd, (off_t)mem) < 0 ||
	    (ram = mmap(NULL, mem, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, mfd, 0)) == MAP_FAILED)
		goto out;
	struct kvm_userspace_memory_region r = {.memory_size = mem, .userspace_addr = (uint64_t)(uintptr_t)ram};
	if (ioctl(vmfd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		goto out;
	st[1] = since_us(&t);
	if (ioctl(vmfd, KVM_CREATE_IRQCHIP, 0) < 0)
		goto out;
	st[2] = since_us(&t);
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
	if (ioctl(vmfd, KVM_CREATE_PIT2, &pit) < 0)
		goto out;
	st[3] = since_us(&t);
	if ((cpu = ioctl(vmfd, KVM_CREATE_VCPU, 0)) < 0 ||
	    (run = mmap(NULL, (size_t)sz, PROT_READ | PROT_WRITE, MAP_SHARED, cpu, 0)) == MAP_FAILED)
		goto out;
	st[4] = since_us(&t);
	static const uint8_t code[] = {0xe6, 0x80, 0xf4}; /* out 0x80, al; hlt */
	memcpy(ram + 0x1000, code, sizeof code);
	struct kvm_sregs sr;
	struct kvm_regs rg = {.rip = 0x1000, .rflags = 2};
	if (ioctl(cpu, KVM_GET_SREGS, &sr) < 0)
		goto out;
	sr.cs.base = 0, sr.cs.selector = 0;
	if (ioctl(cpu, KVM_SET_SREGS, &sr) < 0 || ioctl(cpu, KVM_SET_REGS, &rg) < 0)
		goto out;
	while (ioctl(cpu, KVM_RUN, 0) < 0 && errno == EINTR)
		;
	if (run->exit_reason != KVM_EXIT_IO || run->io.port != 0x80)
		goto out;
	st[5] = since_us(&t);
	total = bench_us_since(t0);
	static const char *const names[] = {"kvm_create_vm", "guest_ram", "irqchip", "pit", "vcpu", "first_guest_insn"};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		vmm_steps_add(&s->steps[1], names[i], st[i]);
out:
	if (run != MAP_FAILED)
		munmap(run, (size_t)sz);
	if (ram != MAP_FAILED)
		munmap(ram, mem);
	int fds[] = {cpu, mfd, vmfd, kvm};
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (total < 0)
		s->failures++;
	return total;
}

int main(int argc, char **argv)
{
	int n = 100, npeers = 0;
	const char *accel = NULL;
	char *peer[3], *peer_label[3];
	bool qemu = true;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--accel") && i + 1 < argc) {
			accel = argv[++i];
		} else if (!strcmp(argv[i], "--peer-vmm") && i + 1 < argc && npeers < 3) {
			char *a = argv[++i], *eq = strchr(a, '=');
			peer_label[npeers] = eq ? xasprintf("%.*s", (int)(eq - a), a) : xasprintf("peer%d", npeers + 1);
			peer[npeers] = eq ? eq + 1 : a;
			if (access(peer[npeers], X_OK))
				die(1, "vmm_boot: --peer-vmm %s is not executable", peer[npeers]);
			npeers++;
		} else if (!strcmp(argv[i], "--no-qemu")) {
			qemu = false;
		} else if ((n = atoi(argv[i])) <= 0 || n > 100000) {
			die(2, "usage: vmm_boot [N] [--accel kvm|tcg] [--peer-vmm [LABEL=]PATH]... (at most 3) [--no-qemu]");
		}
	}
	const char *root = getenv("SILO_BUILD_ROOT") ? getenv("SILO_BUILD_ROOT") : SILO_BUILD_ROOT;
	char vmm[4096], payload[4096];
	snprintf(vmm, sizeof vmm, "%s/vmm/silo-vmm", root);
	snprintf(payload, sizeof payload, "%s/vmm/pvh.elf", root);
	if (access(vmm, X_OK) || access(payload, R_OK))
		die(1, "vmm_boot: build %s and %s first", vmm, payload);
	/* the jail as the kvm provider sets it up: an empty root-owned directory, a leased uid */
	char jail[] = "/tmp/silo-bench-vmmjail-XXXXXX";
	if (!mkdtemp(jail) || chmod(jail, 0755) < 0)
		die_errno(1, "mkdtemp");
	uid_t uid = 0;
	int lease = -1;
	silo_error err = {0};
	if (vm_uid_lease("bench-vmm-boot", &uid, &lease, &err) < 0)
		die(1, "vmm_boot: %s", err.message);
	char us[16];
	snprintf(us, sizeof us, "%u", (unsigned)uid);
	char *v_plain[] = {vmm, "--kernel", payload, "--boot-timer", "--mem", "128", "--timeout-ms", "10000", NULL};
	char *v_jail[] = {vmm, "--kernel", payload, "--boot-timer", "--mem", "128", "--timeout-ms", "10000",
			  "--jail", jail, "--uid", us, "--gid", us, NULL};
	char *p_plain[3][9], *p_jail[3][15];
	for (int k = 0; k < npeers; k++) {
		memcpy(p_plain[k], v_plain, sizeof v_plain);
		memcpy(p_jail[k], v_jail, sizeof v_jail);
		p_plain[k][0] = p_jail[k][0] = peer[k];
	}
	char accel_buf[16];
	char *qargv[] = {"qemu-system-x86_64", "-M", "microvm,x-option-roms=off,rtc=off", "-accel", accel_buf,
			 "-m", "128", "-kernel", payload, "-display", "none", "-monitor", "none", "-serial", "stdio",
			 "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-no-reboot", NULL};
	series all[10];
	int ns = 0;
	memset(all, 0, sizeof all);
	all[ns++] = (series){.name = "silo-vmm", .desc = "silo-vmm --kernel pvh.elf (this build, no jail)", .argv = v_plain,
			     .parse_metrics = true};
	all[ns++] = (series){.name = "silo-vmm-jailed",
			     .desc = "silo-vmm --jail DIR --uid U --gid U (this build, as the kvm provider runs it)",
			     .argv = v_jail, .parse_metrics = true};
	for (int k = 0; k < npeers; k++) {
		all[ns++] = (series){.name = xasprintf("%s-silo-vmm", peer_label[k]),
				     .desc = xasprintf("%s, no jail", peer[k]), .argv = p_plain[k], .parse_metrics = true};
		all[ns++] = (series){.name = xasprintf("%s-silo-vmm-jailed", peer_label[k]),
				     .desc = xasprintf("%s --jail DIR --uid U --gid U", peer[k]), .argv = p_jail[k],
				     .parse_metrics = true};
	}
	if (qemu) {
		if (!accel) {
			/* QEMU with KVM if it works on this host, else TCG */
			snprintf(accel_buf, sizeof accel_buf, "kvm");
			series probe = {.name = "probe", .argv = qargv, .want_status = 1};
			run_once(&probe);
			accel = probe.failures ? "tcg" : "kvm";
		}
		snprintf(accel_buf, sizeof accel_buf, "%s", accel);
		/* isa-debug-exit: (0 << 1) | 1 */
		all[ns++] = (series){.name = "qemu-microvm", .desc = !strcmp(accel, "kvm") ? "qemu-system-x86_64 -M microvm -accel kvm"
											 : "qemu-system-x86_64 -M microvm -accel tcg",
				     .argv = qargv, .want_status = 1, .qemu = true};
	}
	/* the host floor, measured in the same rounds */
	series bare = {.name = "kvm-bare-vm-vcpu", .desc = "in this process: open /dev/kvm, KVM_CREATE_VM, KVM_CREATE_VCPU, mmap kvm_run"};
	series floor = {.name = "kvm-minimal-vm",
			.desc = "in this process: VM, 128 MiB memfd slot, irqchip, PIT2, vCPU, real-mode out 0x80 (first guest insn)"};
	for (int i = 0; i < n; i++) {
		for (int k = 0; k < ns; k++)
			run_once(&all[(i + k) % ns]);
		double b = kvm_bare(), f = kvm_floor(&floor);
		if (b < 0)
			bare.failures++;
		add(&bare, M_HOST, b);
		add(&floor, M_HOST, f);
	}
	all[ns++] = bare;
	all[ns++] = floor;
	int fails = 0;
	for (int k = 0; k < ns; k++)
		fails += all[k].failures;
	cleanup_free char *ci = NULL;
	size_t cl = 0;
	bool hw = read_file("/proc/cpuinfo", 16u << 20, &ci, &cl, NULL) == 0 && (strstr(ci, " vmx") || strstr(ci, " svm"));
	double load[3] = {0};
	FILE *la = fopen("/proc/loadavg", "r");
	if (la) {
		if (fscanf(la, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3)
			load[0] = -1;
		fclose(la);
	}
	printf("{\n  \"bench\": \"vmm_boot\",\n  \"rounds\": %d,\n  \"failures\": %d,\n  \"payload\": \"tests/guest/pvh.S\",\n"
	       "  \"host_kvm\": \"%s\",\n  \"loadavg_at_end\": [%.2f, %.2f, %.2f],\n  \"variants\": {\n",
	       n, fails, hw ? "hardware (vmx/svm)" : "PVM (no vmx/svm: guest ring 0 emulated)", load[0], load[1], load[2]);
	for (int k = 0; k < ns; k++)
		print_series(&all[k], k + 1 == ns);
	printf("  }\n}\n");
	close(lease);
	rmdir(jail);
	return fails ? 1 : 0;
}
