/* SPDX-License-Identifier: Apache-2.0
 * silo-vmm vs QEMU microvm on the same guest payload (tests/guest/pvh.S, a PVH
 * ELF that enters long mode, prints one line on COM1, writes the boot-timer
 * magic and exits through port 0xf4), N runs each, interleaved.
 *
 *   vmm_boot [N] [--accel kvm|tcg]      (default 100, QEMU accel: kvm if it works, else tcg)
 *
 * Per VMM, from fork() in this process: first serial byte, process exit.
 * silo-vmm also reports from inside (its metrics line): process start -> VM
 * ready (vm_setup), VM start -> first guest instruction (POST port 0x80 write),
 * process start -> first guest instruction, VM start -> boot-timer write.
 * Output: one JSON object with p50/p95/p99 in microseconds.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "common/util.h"
#include "silo-config.h"

enum { M_FIRST_BYTE, M_EXIT, M_SETUP, M_FIRST_INSN_VM, M_FIRST_INSN_PROC, M_BOOT_TIMER, M__N };
static const char *const mnames[M__N] = {"spawn_to_first_serial_byte_us", "spawn_to_exit_us",
					 "vm_setup_us", "vm_start_to_first_guest_insn_us",
					 "process_start_to_first_guest_insn_us", "vm_start_to_boot_timer_us"};

typedef struct series {
	double *v[M__N];
	int n[M__N];
} series;

static void series_free(series *s)
{
	for (int m = 0; m < M__N; m++)
		free(s->v[m]);
}

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

/* Run argv; serial on stdout (pipe). Returns 0 when the expected line was seen. */
static int run_once(char *const argv[], series *s, bool parse_metrics, int want_status)
{
	int out[2], err[2];
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
		return -1;
	uint64_t t0 = now_mono_ns();
	pid_t pid = fork();
	if (pid == 0) {
		dup2(out[1], 1);
		dup2(err[1], 2);
		execvp(argv[0], argv);
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
	if (!strstr(buf, "silo pvh payload OK") || !WIFEXITED(st) || WEXITSTATUS(st) != want_status) {
		fprintf(stderr, "vmm_boot: %s: unexpected result (status %d): %s %s\n", argv[0],
			WIFEXITED(st) ? WEXITSTATUS(st) : -1, buf, ebuf);
		return -1;
	}
	add(s, M_FIRST_BYTE, first);
	add(s, M_EXIT, exit_us);
	if (parse_metrics) {
		double setup = field(ebuf, "vm_setup_us"), post = field(ebuf, "first_post_us");
		add(s, M_SETUP, setup);
		add(s, M_FIRST_INSN_VM, post);
		if (setup >= 0 && post >= 0)
			add(s, M_FIRST_INSN_PROC, setup + post);
		add(s, M_BOOT_TIMER, field(ebuf, "boot_timer_us"));
	}
	return 0;
}

static void print_series(const char *name, series *s, const char *extra, bool last)
{
	printf("  \"%s\": {%s", name, extra);
	bool firstm = true;
	for (int m = 0; m < M__N; m++) {
		if (!s->n[m])
			continue;
		bench_sort(s->v[m], (size_t)s->n[m]);
		printf("%s\n    \"%s\": {\"n\": %d, \"p50\": %.0f, \"p95\": %.0f, \"p99\": %.0f}", firstm && !*extra ? "" : ",",
		       mnames[m], s->n[m], bench_pct(s->v[m], (size_t)s->n[m], 50, -1),
		       bench_pct(s->v[m], (size_t)s->n[m], 95, -1), bench_pct(s->v[m], (size_t)s->n[m], 99, -1));
		firstm = false;
	}
	printf("\n  }%s\n", last ? "" : ",");
}

int main(int argc, char **argv)
{
	int n = 100;
	const char *accel = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--accel") && i + 1 < argc)
			accel = argv[++i];
		else if ((n = atoi(argv[i])) <= 0 || n > 100000)
			die(2, "usage: vmm_boot [N] [--accel kvm|tcg]");
	}
	const char *root = getenv("SILO_BUILD_ROOT") ? getenv("SILO_BUILD_ROOT") : SILO_BUILD_ROOT;
	char vmm[4096], payload[4096];
	snprintf(vmm, sizeof vmm, "%s/vmm/silo-vmm", root);
	snprintf(payload, sizeof payload, "%s/vmm/pvh.elf", root);
	if (access(vmm, X_OK) || access(payload, R_OK))
		die(1, "vmm_boot: build %s and %s first", vmm, payload);
	char *vargv[] = {vmm, "--kernel", payload, "--boot-timer", "--mem", "128", "--timeout-ms", "10000", NULL};
	char accel_buf[16];
	char *qargv[] = {"qemu-system-x86_64", "-M", "microvm,x-option-roms=off,rtc=off", "-accel", accel_buf,
			 "-m", "128", "-kernel", payload, "-display", "none", "-monitor", "none", "-serial", "stdio",
			 "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-no-reboot", NULL};
	series sv = {0}, sq = {0};
	if (!accel) {
		/* QEMU with KVM if it works on this host, else TCG */
		snprintf(accel_buf, sizeof accel_buf, "kvm");
		series probe = {0};
		accel = run_once(qargv, &probe, false, 1) == 0 ? "kvm" : "tcg";
		series_free(&probe);
	}
	snprintf(accel_buf, sizeof accel_buf, "%s", accel);
	int fails = 0;
	for (int i = 0; i < n; i++) {
		fails += run_once(vargv, &sv, true, 0) < 0;
		fails += run_once(qargv, &sq, false, 1) < 0; /* isa-debug-exit: (0 << 1) | 1 */
	}
	bool hw = false;
	cleanup_free char *ci = NULL;
	size_t cl = 0;
	if (read_file("/proc/cpuinfo", 16u << 20, &ci, &cl, NULL) == 0)
		hw = strstr(ci, " vmx") || strstr(ci, " svm");
	printf("{\n  \"bench\": \"vmm_boot\",\n  \"runs\": %d,\n  \"failures\": %d,\n  \"payload\": \"tests/guest/pvh.S\",\n"
	       "  \"host_kvm\": \"%s\",\n",
	       n, fails, hw ? "hardware (vmx/svm)" : "PVM (no vmx/svm: guest ring 0 emulated)");
	print_series("silo-vmm", &sv, "", false);
	char extra[128];
	snprintf(extra, sizeof extra, "\"cmd\": \"qemu-system-x86_64 -M microvm -accel %s\"", accel);
	print_series("qemu-microvm", &sq, extra, true);
	printf("}\n");
	series_free(&sv);
	series_free(&sq);
	return fails ? 1 : 0;
}
