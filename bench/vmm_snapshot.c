/* SPDX-License-Identifier: Apache-2.0
 * silo-vmm snapshots: create, restore and fork latency, and the memory of N forks
 * versus N cold VMs, with the cold boot of the same guest measured in the same run.
 *
 *   vmm_snapshot [--runs N] [--forks K] [--cold C] [--mem MiB] [--peer-vmm PATH]
 *                (defaults 50, 20, min(K, 20), 128)
 *
 * Guest: tests/guest/fillburst.S (dirties 32 MiB of RAM, then prints a counter as fast as it
 * can: a restored copy prints within its first instructions, so "first guest output" after a
 * restore is when the restored guest runs, "ready" for this guest; for a Linux guest ready is
 * the agent answering, which is the kvm provider's template/restore path).
 *  - create: PUT /snapshot/create of the paused VM (RAM + SHA-256 + state), N/5 runs.
 *  - restore: a fresh `silo-vmm --api-sock` per run; from PUT /snapshot/load (resume,
 *    verify_memory false) to its answer and to the first byte the restored guest prints,
 *    and from fork() of the process to the answer (all of a restore: exec, jail, load) and to
 *    that byte; also with verify_memory true (N/5 runs).
 *    The same, interleaved in each round, for silo-vmm jailed as the kvm provider runs it
 *    (--jail, a leased uid, --mem as the envelope; the files passed as fds with the
 *    request, "fd:0"/"fd:1") and, with --peer-vmm, for that silo-vmm (a release build of
 *    main from before this work) loading the same snapshot.
 *    Per variant, silo-vmm's own step breakdown of the restore ("step_us" of its metrics
 *    line: snapshot_open, kvm_create_vm, guest_ram, irqchip, pit, vcpus, devices,
 *    snapshot_state, vcpu0_first_run; api_start_request is the wait for the request).
 *  - cold boot (peer): fork() of `silo-vmm --kernel fillburst.elf` to its first byte.
 *  - memory: K forks loaded paused (idle) vs C cold VMs paused after their first line
 *    (a cold boot of this guest takes ~1.5 s on PVM, hence C <= K):
 *    total RSS and PSS (/proc/PID/smaps_rollup), the drop of the host's MemAvailable per
 *    fork (includes KVM's kernel memory), and the forks that would fit in 20 GiB at that
 *    rate (an extrapolation, stated as such; run with --forks 1000 to measure it).
 * Output: one JSON object; latencies in microseconds with p50/p95/p99.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "vmm_bench.h"
#include "common/util.h"
#include "providers/vm.h"
#include "silo-config.h"

static char vmm[4096], guest[4096], dir[64];
static const char *exe; /* the silo-vmm spawn() runs (vmm, or the peer's) */

typedef struct vec {
	double *v;
	int n;
} vec;

static void push(vec *s, double x)
{
	bench_append(&s->v, &s->n, x);
}

static void print_vec(const char *name, vec *s, bool comma)
{
	bench_sort(s->v, (size_t)s->n);
	size_t n = (size_t)s->n;
	printf("    \"%s\": {\"n\": %d, \"p50\": %.0f, \"p95\": %.0f, \"p99\": %.0f}%s\n", name, s->n,
	       bench_pct(s->v, n, 50, -1), bench_pct(s->v, n, 95, -1), bench_pct(s->v, n, 99, -1), comma ? "," : "");
}

typedef struct proc {
	pid_t pid;
	int out; /* serial (stdout) pipe */
	char sock[128], errf[128]; /* errf: its stderr (the metrics line) */
	uint64_t t_spawn;
} proc;

/* Start silo-vmm with extra args and --api-sock; serial to a pipe. Waits for the socket. */
static void spawn(proc *p, int idx, const char *const *extra)
{
	snprintf(p->sock, sizeof p->sock, "%s/api-%d.sock", dir, idx);
	snprintf(p->errf, sizeof p->errf, "%s/err-%d.log", dir, idx);
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) < 0)
		die_errno(1, "pipe");
	const char *argv[16];
	int n = 0;
	argv[n++] = exe;
	argv[n++] = "--api-sock";
	argv[n++] = p->sock;
	for (int i = 0; extra && extra[i]; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	p->t_spawn = now_mono_ns();
	p->pid = fork();
	if (p->pid == 0) {
		dup2(fds[1], 1);
		int ef = open(p->errf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(ef, 2);
		execv(exe, (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	p->out = fds[0];
	for (int i = 0; i < 5000 && access(p->sock, F_OK) != 0; i++)
		usleep(200);
}

/* Time of the first serial byte (us since t0), or -1 after 10 s (a restore) or 60 s (a cold
 * boot: the guest dirties 32 MiB in PVM's emulated ring 0 first, seconds on a loaded host). */
static double first_byte_within(proc *p, uint64_t t0, int ms)
{
	struct pollfd pf = {.fd = p->out, .events = POLLIN};
	char c;
	if (poll(&pf, 1, ms) <= 0 || read(p->out, &c, 1) != 1)
		return -1;
	return bench_us_since(t0);
}

static double first_byte(proc *p, uint64_t t0)
{
	return first_byte_within(p, t0, 10000);
}

static double first_byte_cold(proc *p, uint64_t t0)
{
	return first_byte_within(p, t0, 60000);
}

/* SIGTERM and wait; with took, the step durations of its metrics line into it. */
static void stop_steps(proc *p, vmm_steps *took)
{
	kill(p->pid, SIGTERM);
	waitpid(p->pid, NULL, 0);
	close(p->out);
	unlink(p->sock);
	cleanup_free char *e = NULL;
	size_t el = 0;
	if (took && read_file(p->errf, 1 << 20, &e, &el, NULL) == 0)
		vmm_steps_parse(took, e, "step_us");
	unlink(p->errf);
}

static void stop(proc *p)
{
	stop_steps(p, NULL);
}

static int http_fds(const char *sock, const char *method, const char *path, const char *body, const int *fds, int nfds);

static int http(const char *sock, const char *method, const char *path, const char *body)
{
	return http_fds(sock, method, path, body, NULL, 0);
}

/* The request in one sendmsg, with nfds descriptors passed alongside (SCM_RIGHTS). */
static int http_fds(const char *sock, const char *method, const char *path, const char *body, const int *fds, int nfds)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	char req[2048], resp[2048];
	int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n%s", method,
			 path, strlen(body), body);
	size_t got = 0;
	if (send_all_with_fds(fd, req, (size_t)n, fds, nfds) == 0)
		for (ssize_t r; got < sizeof resp - 1 && (r = read(fd, resp + got, sizeof resp - 1 - got)) > 0;)
			got += (size_t)r;
	close(fd);
	resp[got] = 0;
	int status = -1;
	sscanf(resp, "HTTP/1.1 %d", &status);
	if (status >= 300)
		fprintf(stderr, "vmm_snapshot: %s %s: %s\n", method, path, resp);
	return status;
}

/* MemAvailable in KiB: its drop while K VMs exist counts kernel memory (KVM vCPU and MMU
 * structures, page tables) that PSS does not. */
static long mem_available(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	long v = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "MemAvailable: %ld", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

/* RSS and PSS in KiB of pid (smaps_rollup). */
static void mem_of(pid_t pid, long *rss, long *pss)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
	FILE *f = fopen(path, "r");
	*rss = *pss = 0;
	while (f && fgets(line, sizeof line, f)) {
		sscanf(line, "Rss: %ld", rss);
		sscanf(line, "Pss: %ld", pss);
	}
	if (f)
		fclose(f);
}

/* Add the RSS and PSS of the n processes in p[] to *rss and *pss, then stop them. */
static void measure_stop(proc *p, int n, long *rss, long *pss)
{
	for (int i = 0; i < n; i++) {
		long r, s;
		mem_of(p[i].pid, &r, &s);
		*rss += r;
		*pss += s;
	}
	for (int i = 0; i < n; i++)
		stop(&p[i]);
}

int main(int argc, char **argv)
{
	int runs = 50, forks = 20, ncold = -1, mem = 128;
	const char *peer = NULL;
	const bench_opt opts[] = {
		{"--runs", BOPT_INT, &runs}, {"--forks", BOPT_INT, &forks},    {"--cold", BOPT_INT, &ncold},
		{"--mem", BOPT_INT, &mem},   {"--peer-vmm", BOPT_STR, &peer}, {NULL, 0, NULL},
	};
	bench_opts(argc, argv, opts, "vmm_snapshot [--runs N] [--forks K] [--cold C] [--mem MiB] [--peer-vmm PATH]");
	if (ncold < 0)
		ncold = forks < 20 ? forks : 20;
	if (ncold < 1 || ncold > forks)
		die(2, "vmm_snapshot: --cold 1..K");
	if (runs < 5 || forks < 1 || forks > 2000 || mem < 64 || mem > 3072)
		die(2, "vmm_snapshot: --runs >= 5, --forks 1..2000, --mem 64..3072");
	const char *root = getenv("SILO_BUILD_ROOT") ? getenv("SILO_BUILD_ROOT") : SILO_BUILD_ROOT;
	snprintf(vmm, sizeof vmm, "%s/vmm/silo-vmm", root);
	snprintf(guest, sizeof guest, "%s/vmm/fillburst.elf", root);
	if (access(vmm, X_OK) || access(guest, R_OK))
		die(1, "vmm_snapshot: build %s and %s first", vmm, guest);
	if (peer && access(peer, X_OK))
		die(1, "vmm_snapshot: --peer-vmm %s is not executable", peer);
	exe = vmm;
	snprintf(dir, sizeof dir, "/tmp/silo-bench-snap-XXXXXX");
	if (!mkdtemp(dir))
		die_errno(1, "mkdtemp");
	char memarg[16], st[128], mf[128], body[1024];
	snprintf(memarg, sizeof memarg, "%d", mem);
	snprintf(st, sizeof st, "%s/s.state", dir);
	snprintf(mf, sizeof mf, "%s/s.mem", dir);
	const char *cold_args[] = {"--kernel", guest, "--mem", memarg, NULL};

	/* The source VM and its snapshot; create latency measured on it. */
	proc src;
	spawn(&src, 0, cold_args);
	if (first_byte_cold(&src, src.t_spawn) < 0 || http(src.sock, "PATCH", "/vm", "{\"state\":\"Paused\"}") != 204) {
		stop(&src); /* not left running */
		rmdir(dir);
		die(1, "vmm_snapshot: source VM did not start (no output within 60 s)");
	}
	vec create = {0};
	snprintf(body, sizeof body, "{\"snapshot_path\":\"%s\",\"mem_file_path\":\"%s\"}", st, mf);
	for (int i = 0; i < runs / 5; i++) {
		uint64_t t0 = now_mono_ns();
		if (http(src.sock, "PUT", "/snapshot/create", body) != 204)
			die(1, "vmm_snapshot: create failed");
		push(&create, bench_us_since(t0));
	}
	stop(&src);

	/* The restore variants: this build; this build jailed as the kvm provider runs it (an
	 * empty root-owned jail directory, a leased uid, the files passed as fds); the peer. */
	char jail[] = "/tmp/silo-bench-snapjail-XXXXXX", us[16];
	uid_t uid = 0;
	int lease = -1;
	silo_error lerr = {0};
	if (!mkdtemp(jail) || chmod(jail, 0755) < 0 || vm_uid_lease("bench-vmm-snapshot", &uid, &lease, &lerr) < 0)
		die(1, "vmm_snapshot: jail %s: %s", jail, lerr.message);
	snprintf(us, sizeof us, "%u", (unsigned)uid);
	const char *jail_args[] = {"--jail", jail, "--uid", us, "--gid", us, "--mem", memarg, NULL};
	struct {
		const char *name, *exe;
		const char *const *extra;
		bool fds;
		vec api, spawn_api, first, spawn_first;
		vmm_steps took;
	} var[3] = {{.name = "", .exe = vmm}, {.name = "_jailed", .exe = vmm, .extra = jail_args, .fds = true},
		    {.name = "_peer_main", .exe = peer}};
	int nvar = peer ? 3 : 2;
	vec load_first_verified = {0}, cold = {0};
	int fails = 0;
	for (int i = 0; i < runs; i++) {
		for (int k = 0; k < nvar; k++) {
			int vi = (i + k) % nvar;
			for (int verify = 0; verify <= (vi == 0 && i < runs / 5); verify++) {
				proc p;
				exe = var[vi].exe;
				spawn(&p, 1, var[vi].extra);
				int fds[2] = {-1, -1};
				if (var[vi].fds) {
					fds[0] = open(st, O_RDONLY | O_CLOEXEC);
					fds[1] = open(mf, O_RDONLY | O_CLOEXEC);
				}
				snprintf(body, sizeof body,
					 "{\"snapshot_path\":\"%s\",\"mem_backend\":{\"backend_type\":\"File\",\"backend_path\":\"%s\"},"
					 "\"resume_vm\":true,\"verify_memory\":%s}",
					 var[vi].fds ? "fd:0" : st, var[vi].fds ? "fd:1" : mf, verify ? "true" : "false");
				uint64_t t0 = now_mono_ns();
				int s = http_fds(p.sock, "PUT", "/snapshot/load", body, fds, var[vi].fds ? 2 : 0);
				double api = bench_us_since(t0);
				double fb = s == 204 ? first_byte(&p, t0) : -1;
				if (var[vi].fds) {
					close(fds[0]);
					close(fds[1]);
				}
				if (fb < 0) {
					fails++;
				} else if (verify) {
					push(&load_first_verified, fb);
				} else {
					push(&var[vi].api, api);
					push(&var[vi].spawn_api, (double)(t0 - p.t_spawn) / 1000.0 + api);
					push(&var[vi].first, fb);
					push(&var[vi].spawn_first, (double)(t0 - p.t_spawn) / 1000.0 + fb);
				}
				stop_steps(&p, verify ? NULL : &var[vi].took);
			}
		}
		exe = vmm;
		/* Peer: cold boot of the same guest, interleaved. */
		proc c;
		spawn(&c, 2, cold_args);
		double fb = first_byte_cold(&c, c.t_spawn);
		if (fb < 0)
			fails++;
		else
			push(&cold, fb);
		stop(&c);
	}
	close(lease);
	rmdir(jail);
	exe = vmm;

	/* Memory: K idle forks vs K cold VMs paused after their first line. */
	proc *fp = calloc((size_t)forks, sizeof *fp);
	long frss = 0, fpss = 0, crss = 0, cpss = 0;
	vec fork_each = {0};
	long avail0 = mem_available();
	uint64_t tf = now_mono_ns();
	snprintf(body, sizeof body,
		 "{\"snapshot_path\":\"%s\",\"mem_backend\":{\"backend_type\":\"File\",\"backend_path\":\"%s\"},"
		 "\"resume_vm\":false,\"verify_memory\":false}",
		 st, mf);
	for (int i = 0; i < forks; i++) {
		uint64_t t0 = now_mono_ns();
		spawn(&fp[i], 100 + i, NULL);
		if (http(fp[i].sock, "PUT", "/snapshot/load", body) != 204)
			fails++;
		push(&fork_each, bench_us_since(t0));
	}
	double fork_total_ms = bench_us_since(tf) / 1000.0;
	usleep(200 * 1000);
	long avail1 = mem_available();
	measure_stop(fp, forks, &frss, &fpss);
	for (int i = 0; i < ncold; i++) {
		spawn(&fp[i], 100 + i, cold_args);
		if (first_byte_cold(&fp[i], fp[i].t_spawn) < 0 || http(fp[i].sock, "PATCH", "/vm", "{\"state\":\"Paused\"}") != 204)
			fails++;
	}
	measure_stop(fp, ncold, &crss, &cpss);
	free(fp);
	unlink(st);
	unlink(mf);
	rmdir(dir);

	cleanup_free char *ci = NULL;
	size_t cl = 0;
	bool hw = read_file("/proc/cpuinfo", 16u << 20, &ci, &cl, NULL) == 0 && (strstr(ci, " vmx") || strstr(ci, " svm"));
	printf("{\n  \"bench\": \"vmm_snapshot\",\n  \"guest\": \"tests/guest/fillburst.S (32 MiB dirtied, prints without delay)\",\n"
	       "  \"ready\": \"restore_load_to_first_guest_output: the restored guest's first serial byte\",\n"
	       "  \"mem_mib\": %d,\n  \"runs\": %d,\n  \"failures\": %d,\n  \"host_kvm\": \"%s\",\n  \"latency_us\": {\n",
	       mem, runs, fails, hw ? "hardware (vmx/svm)" : "PVM (no vmx/svm: guest ring 0 emulated)");
	print_vec("snapshot_create", &create, true);
	for (int k = 0; k < nvar; k++) {
		char nm[96];
		snprintf(nm, sizeof nm, "restore_load_request%s", var[k].name);
		print_vec(nm, &var[k].api, true);
		snprintf(nm, sizeof nm, "restore_spawn_to_load_answered%s", var[k].name);
		print_vec(nm, &var[k].spawn_api, true);
		snprintf(nm, sizeof nm, "restore_load_to_first_guest_output%s", var[k].name);
		print_vec(nm, &var[k].first, true);
		snprintf(nm, sizeof nm, "restore_spawn_to_first_guest_output%s", var[k].name);
		print_vec(nm, &var[k].spawn_first, true);
	}
	print_vec("restore_verified_load_to_first_guest_output", &load_first_verified, true);
	print_vec("fork_spawn_and_load_each", &fork_each, true);
	print_vec("peer_cold_boot_spawn_to_first_guest_output", &cold, false);
	printf("  },\n  \"restore_step_took_us\": {\n");
	for (int k = 0; k < nvar; k++) {
		char nm[96];
		snprintf(nm, sizeof nm, "restore%s", var[k].name);
		vmm_steps_print("    ", nm, &var[k].took, k + 1 < nvar);
	}
	double pss_per_fork_mib = (double)fpss / forks / 1024.0;
	double host_per_fork_mib = (double)(avail0 - avail1) / forks / 1024.0;
	printf("  },\n  \"memory\": {\n    \"forks\": %d,\n    \"fork_total_ms\": %.1f,\n"
	       "    \"forks_rss_total_mib\": %.1f,\n    \"forks_pss_total_mib\": %.1f,\n    \"cold_vms\": %d,\n"
	       "    \"cold_rss_total_mib\": %.1f,\n    \"cold_pss_total_mib\": %.1f,\n"
	       "    \"pss_per_idle_fork_mib\": %.2f,\n    \"host_memavailable_drop_per_fork_mib\": %.2f,\n"
	       "    \"idle_forks_in_20_gib_extrapolated_from_memavailable\": %.0f\n  }\n}\n",
	       forks, fork_total_ms, frss / 1024.0, fpss / 1024.0, ncold, crss / 1024.0, cpss / 1024.0, pss_per_fork_mib,
	       host_per_fork_mib, host_per_fork_mib > 0 ? 20.0 * 1024 / host_per_fork_mib : 0);
	vec *all[] = {&create, &load_first_verified, &fork_each, &cold};
	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		free(all[i]->v);
	for (int k = 0; k < nvar; k++) {
		free(var[k].api.v);
		free(var[k].spawn_api.v);
		free(var[k].first.v);
		free(var[k].spawn_first.v);
	}
	return fails ? 1 : 0;
}
