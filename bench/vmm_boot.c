/* SPDX-License-Identifier: Apache-2.0
 * silo-vmm start-up vs its peers on the same guest payload (tests/guest/pvh.S, a PVH ELF
 * that writes POST port 0x80 first, enters long mode, prints one line on COM1, writes the
 * boot-timer magic and exits through port 0xf4), N rounds, every variant once per round in
 * rotating order (the host is shared and noisy: compare within one run).
 *
 *   vmm_boot [N] [--accel kvm|tcg] [--peer-vmm PATH] [--no-qemu]
 *
 * Variants: this build's silo-vmm without and with its jail (--jail, a leased uid, as the
 * kvm provider runs it); with --peer-vmm, that silo-vmm (a release build of main from before
 * this work) without and with its --jail; QEMU microvm (-accel kvm if it works, else tcg).
 * Per variant, from fork() in this process: first guest instruction (silo-vmm reports the
 * CLOCK_MONOTONIC time of the POST write; this build only), first serial byte, exit. From
 * silo-vmm's metrics line: process start (main) -> first guest instruction, process start ->
 * VM ready, VM start -> first guest instruction; for this build each start-up step
 * ("steps": us since process start, docs/vmm.md "Start-up"). Output: one JSON object with
 * p50/p95/p99 in microseconds.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "common/util.h"
#include "providers/vm.h"
#include "silo-config.h"

enum { M_FIRST_INSN_SPAWN, M_FIRST_INSN_PROC, M_SETUP, M_FIRST_INSN_VM, M_FIRST_BYTE, M_EXIT, M__N };
static const char *const mnames[M__N] = {
	"spawn_to_first_guest_insn_us", "process_start_to_first_guest_insn_us", "process_start_to_vm_ready_us",
	"vm_start_to_first_guest_insn_us", "spawn_to_first_serial_byte_us", "spawn_to_exit_us"};

#define MAX_STEPS 40

typedef struct series {
	const char *name, *desc;
	char *const *argv;
	bool parse_metrics, qemu;
	int want_status;
	double *v[M__N];
	int n[M__N];
	/* this build: each step's samples by name, in first-seen order */
	char *step_name[MAX_STEPS];
	double *step_v[MAX_STEPS];
	int step_n[MAX_STEPS], nsteps;
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

/* "steps":{"a":1,"b":2} from the metrics line into the series. */
static void add_steps(series *s, const char *text)
{
	const char *p = strstr(text, "\"steps\":{");
	if (!p)
		return;
	for (p += 9; *p == '"';) {
		const char *e = strchr(p + 1, '"');
		if (!e || e[1] != ':')
			return;
		char name[64];
		snprintf(name, sizeof name, "%.*s", (int)(e - p - 1), p + 1);
		char *end;
		double v = strtod(e + 2, &end);
		int i;
		for (i = 0; i < s->nsteps && strcmp(s->step_name[i], name); i++)
			;
		if (i == s->nsteps && s->nsteps < MAX_STEPS)
			s->step_name[s->nsteps++] = xstrdup(name);
		if (i < s->nsteps)
			bench_append(&s->step_v[i], &s->step_n[i], v);
		p = *end == ',' ? end + 1 : end;
	}
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
	add_steps(s, ebuf);
}

static void pct3(const char *indent, const char *name, double *v, int n, bool comma)
{
	bench_sort(v, (size_t)n);
	printf("%s\"%s\": {\"n\": %d, \"p50\": %.0f, \"p95\": %.0f, \"p99\": %.0f}%s\n", indent, name, n,
	       bench_pct(v, (size_t)n, 50, -1), bench_pct(v, (size_t)n, 95, -1), bench_pct(v, (size_t)n, 99, -1),
	       comma ? "," : "");
}

static void print_series(series *s, bool last)
{
	printf("    \"%s\": {\n      \"cmd\": \"%s\",\n      \"failures\": %d,\n", s->name, s->desc, s->failures);
	int k = 0;
	for (int m = 0; m < M__N; m++)
		k += s->n[m] > 0;
	for (int m = 0; m < M__N; m++)
		if (s->n[m])
			pct3("      ", mnames[m], s->v[m], s->n[m], --k > 0 || s->nsteps);
	if (s->nsteps) {
		printf("      \"steps_us_since_process_start\": {\n");
		for (int i = 0; i < s->nsteps; i++)
			pct3("        ", s->step_name[i], s->step_v[i], s->step_n[i], i + 1 < s->nsteps);
		printf("      }\n");
	}
	printf("    }%s\n", last ? "" : ",");
}

int main(int argc, char **argv)
{
	int n = 100;
	const char *accel = NULL, *peer = NULL;
	bool qemu = true;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--accel") && i + 1 < argc)
			accel = argv[++i];
		else if (!strcmp(argv[i], "--peer-vmm") && i + 1 < argc)
			peer = argv[++i];
		else if (!strcmp(argv[i], "--no-qemu"))
			qemu = false;
		else if ((n = atoi(argv[i])) <= 0 || n > 100000)
			die(2, "usage: vmm_boot [N] [--accel kvm|tcg] [--peer-vmm PATH] [--no-qemu]");
	}
	if (peer && access(peer, X_OK))
		die(1, "vmm_boot: --peer-vmm %s is not executable", peer);
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
	char *p_plain[] = {(char *)peer, "--kernel", payload, "--boot-timer", "--mem", "128", "--timeout-ms", "10000", NULL};
	char *p_jail[] = {(char *)peer, "--kernel", payload, "--boot-timer", "--mem", "128", "--timeout-ms", "10000",
			  "--jail", jail, NULL};
	char accel_buf[16];
	char *qargv[] = {"qemu-system-x86_64", "-M", "microvm,x-option-roms=off,rtc=off", "-accel", accel_buf,
			 "-m", "128", "-kernel", payload, "-display", "none", "-monitor", "none", "-serial", "stdio",
			 "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-no-reboot", NULL};
	series all[5];
	int ns = 0;
	memset(all, 0, sizeof all);
	all[ns++] = (series){.name = "silo-vmm", .desc = "silo-vmm --kernel pvh.elf (this build, no jail)", .argv = v_plain,
			     .parse_metrics = true};
	all[ns++] = (series){.name = "silo-vmm-jailed",
			     .desc = "silo-vmm --jail DIR --uid U --gid U (this build, as the kvm provider runs it)",
			     .argv = v_jail, .parse_metrics = true};
	if (peer) {
		all[ns++] = (series){.name = "peer-silo-vmm-main", .desc = "silo-vmm of main before this work, no jail",
				     .argv = p_plain, .parse_metrics = true};
		all[ns++] = (series){.name = "peer-silo-vmm-main-jailed",
				     .desc = "silo-vmm of main before this work, its --jail (root, no uid)", .argv = p_jail,
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
	for (int i = 0; i < n; i++)
		for (int k = 0; k < ns; k++)
			run_once(&all[(i + k) % ns]);
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
