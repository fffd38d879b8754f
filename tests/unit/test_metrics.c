/* SPDX-License-Identifier: Apache-2.0
 * Metrics: counters by error code, the error-rate watchdog, Prometheus text,
 * and usage sampling of a real process tree.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "harness.h"
#include "metrics/metrics.h"

TEST(error_codes_bump_specific_counters)
{
	metrics *m = metrics_new(0, 0);
	metrics_record_error(m, SILO_ERR_POLICY_DENIED);
	metrics_record_error(m, SILO_ERR_CHECKSUM_MISMATCH);
	metrics_record_error(m, SILO_ERR_PLUGIN_UNVERIFIED);
	metrics_record_error(m, SILO_ERR_PLUGIN_UNVERIFIED);
	metrics_record_error(m, SILO_ERR_BOOT_TIMEOUT);
	CHECK_INT_EQ(metrics_get(m, M_ERRORS_TOTAL), 5);
	CHECK_INT_EQ(metrics_get(m, M_POLICY_DENIALS_TOTAL), 1);
	CHECK_INT_EQ(metrics_get(m, M_CHECKSUM_FAILURES_TOTAL), 1);
	CHECK_INT_EQ(metrics_get(m, M_PLUGIN_VERIFICATION_FAILURES_TOTAL), 2);
	char *t = metrics_render(m, NULL, NULL, 0);
	CHECK_CONTAINS(t, "silo_errors_total 5\n");
	CHECK_CONTAINS(t, "silo_plugin_verification_failures_total 2\n");
	CHECK_CONTAINS(t, "silo_errors_by_code_total{code=\"BOOT_TIMEOUT\"} 1\n");
	CHECK_CONTAINS(t, "# TYPE silo_spawns_total counter\n");
	free(t);
	metrics_free(m);
}

TEST(watchdog_fires_once_per_window)
{
	metrics *m = metrics_new(3, 300);
	CHECK_INT_EQ(metrics_record_error(m, SILO_ERR_IO_ERROR), 0);
	CHECK_INT_EQ(metrics_record_error(m, SILO_ERR_IO_ERROR), 0);
	CHECK_INT_EQ(metrics_record_error(m, SILO_ERR_IO_ERROR), 0);
	CHECK(metrics_record_error(m, SILO_ERR_IO_ERROR) > 0);   /* 4 > 3 within 300 ms */
	CHECK_INT_EQ(metrics_record_error(m, SILO_ERR_IO_ERROR), 0);   /* already warned */
	CHECK_INT_EQ(metrics_get(m, M_HEALTH_WARNINGS_TOTAL), 1);
	struct timespec ts = {0, 400 * 1000000L};
	nanosleep(&ts, NULL);
	/* Spread out: errors further apart than the window never fire. */
	metrics *s = metrics_new(2, 100);
	for (int i = 0; i < 4; i++) {
		CHECK_INT_EQ(metrics_record_error(s, SILO_ERR_IO_ERROR), 0);
		struct timespec t2 = {0, 60 * 1000000L};
		nanosleep(&t2, NULL);
	}
	/* A new burst (4 > 3) after the window fires again. */
	for (int i = 0; i < 4; i++)
		metrics_record_error(m, SILO_ERR_IO_ERROR);
	CHECK_INT_EQ(metrics_get(m, M_HEALTH_WARNINGS_TOTAL), 2);
	metrics_free(s);
	metrics_free(m);
}

TEST(render_gauges_and_labels_escaped)
{
	metrics *m = metrics_new(0, 0);
	metrics_inc(m, M_SPAWNS_TOTAL, 7);
	metrics_gauges g = {.active = 2, .allocated_vcpus = 3, .allocated_memory_mb = 1024, .max_sandboxes = 9};
	metrics_sandbox sb[2] = {
		{.id = "sb-1", .provider = "namespace", .cpu_ns = 1500000000ull, .memory_bytes = 4096,
		 .chan_tx_bytes = 10, .chan_rx_bytes = 20},
		{.id = "we\"ird\\", .provider = "q\nemu"},
	};
	char *t = metrics_render(m, &g, sb, 2);
	CHECK_CONTAINS(t, "silo_spawns_total 7\n");
	CHECK_CONTAINS(t, "silo_sandboxes_active 2\n");
	CHECK_CONTAINS(t, "silo_allocated_vcpus 3\n");
	CHECK_CONTAINS(t, "silo_allocated_memory_bytes 1073741824\n");
	CHECK_CONTAINS(t, "silo_sandbox_cpu_seconds_total{sandbox=\"sb-1\",provider=\"namespace\"} 1.500000000\n");
	CHECK_CONTAINS(t, "silo_sandbox_memory_bytes{sandbox=\"sb-1\",provider=\"namespace\"} 4096\n");
	CHECK_CONTAINS(t, "silo_sandbox_channel_rx_bytes_total{sandbox=\"sb-1\",provider=\"namespace\"} 20\n");
	CHECK_CONTAINS(t, "sandbox=\"we\\\"ird\\\\\",provider=\"q\\nemu\"");
	/* Every non-comment line is "name[{labels}] value". */
	for (char *l = strtok(t, "\n"); l; l = strtok(NULL, "\n")) {
		if (l[0] == '#')
			continue;
		char *sp = strrchr(l, ' ');
		CHECK(sp != NULL);
		if (sp) {
			char *end;
			strtod(sp + 1, &end);
			CHECK(*end == '\0');
		}
	}
	free(t);
	metrics_free(m);
}

TEST(usage_of_a_real_process_tree)
{
	/* A parent with a busy child: the tree's CPU time must grow. */
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		setpgid(0, 0);
		pid_t c = fork();
		if (c == 0) {
			volatile unsigned long x = 0;
			for (;;)
				x++;
		}
		pause();
		_exit(0);
	}
	setpgid(pid, pid);
	/* Sample until the spinning child has used 100 ms of CPU (on a loaded host it may
	 * get far less than its wall time); a sampler that misses the child never gets there. */
	uint64_t cpu = 0, mem = 0;
	for (int i = 0; i < 100; i++) {
		struct timespec ts = {0, 100 * 1000000L};
		nanosleep(&ts, NULL);
		CHECK_INT_EQ(metrics_sample_usage(pid, "no-such-cgroup-id", &cpu, &mem), 0);
		if (cpu >= 100000000ull)
			break;
	}
	CHECK(cpu >= 100000000ull);   /* the child's CPU time is counted in the tree */
	CHECK(mem > 0);
	kill(-pid, SIGKILL);
	waitpid(pid, NULL, 0);
	CHECK(metrics_sample_usage(pid, "x", &cpu, &mem) < 0);
}

TEST(usage_prefers_the_sandbox_cgroup)
{
	const char *base = "/sys/fs/cgroup/memory";
	char procs[128];
	snprintf(procs, sizeof procs, "%s/cgroup.procs", base);
	if (geteuid() != 0 || !path_exists(procs))
		SKIP("needs root and the cgroup v1 memory controller at %s", base);
	char id[40], dir[256];
	random_id("mtest-", id, sizeof id);
	snprintf(dir, sizeof dir, "%s/%s", base, id);
	if (mkdir(dir, 0755) < 0)
		SKIP("cannot create a memory cgroup: %s", strerror(errno));
	int go[2];
	REQUIRE(pipe(go) == 0);
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		char c;
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(1);
		/* Charged to the cgroup: allocated after the move. */
		size_t n = 16u << 20;
		volatile char *p = malloc(n);
		for (size_t i = 0; p && i < n; i += 4096)
			p[i] = 1;
		pause();
		_exit(0);
	}
	close(go[0]);
	char cp[300], pidtxt[32];
	snprintf(cp, sizeof cp, "%s/cgroup.procs", dir);
	int n = snprintf(pidtxt, sizeof pidtxt, "%d", (int)pid);
	silo_error e;
	int fd = open(cp, O_WRONLY | O_CLOEXEC);
	REQUIRE(fd >= 0);
	CHECK(write(fd, pidtxt, (size_t)n) == n);
	close(fd);
	CHECK(write(go[1], "x", 1) == 1);
	struct timespec ts = {0, 300 * 1000000L};
	nanosleep(&ts, NULL);
	uint64_t cpu = 0, mem = 0;
	CHECK_INT_EQ(metrics_sample_usage(pid, id, &cpu, &mem), 0);
	char up[300];
	snprintf(up, sizeof up, "%s/memory.usage_in_bytes", dir);
	char *buf;
	size_t len;
	REQUIRE(read_file(up, 64, &buf, &len, &e) == 0);
	uint64_t usage = strtoull(buf, NULL, 10);
	free(buf);
	CHECK(mem >= 16u << 20);
	/* the figure is the cgroup's (it moves a little between the two reads) */
	CHECK(mem <= usage + (4u << 20) && usage <= mem + (4u << 20));
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(go[1]);
	CHECK(rmdir(dir) == 0);
}

TEST_MAIN(error_codes_bump_specific_counters, watchdog_fires_once_per_window,
	  render_gauges_and_labels_escaped, usage_of_a_real_process_tree, usage_prefers_the_sandbox_cgroup)
