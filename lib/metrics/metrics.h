/* SPDX-License-Identifier: Apache-2.0
 * Metrics: counters and gauges of the manager, rendered in the Prometheus text
 * exposition format (version 0.0.4), plus an error-rate watchdog: when more
 * than `threshold` errors happen within `window_ms`, metrics_record_error()
 * reports it once per window so the manager can raise a health-warning event.
 */
#ifndef SILO_METRICS_H
#define SILO_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "silo/silo.h"

typedef enum metric_counter {
	M_SPAWNS_TOTAL = 0,
	M_SPAWN_FAILURES_TOTAL,
	M_TERMINATIONS_TOTAL,
	M_ERRORS_TOTAL,
	M_POLICY_DENIALS_TOTAL,
	M_CHECKSUM_FAILURES_TOTAL,
	M_PLUGIN_VERIFICATION_FAILURES_TOTAL,
	M_SECURITY_VIOLATIONS_TOTAL,
	M_HEALTH_WARNINGS_TOTAL,
	M_API_REQUESTS_TOTAL,
	M_EGRESS_DENIALS_TOTAL,
	M_TARGET_PROBE_FAILURES_TOTAL,
	M_TARGET_OFFLINE_TOTAL,
	M__COUNTER_COUNT
} metric_counter;

typedef struct metrics metrics;

typedef struct metrics_gauges {
	uint64_t active;              /* sandboxes not terminated */
	uint64_t allocated_vcpus;
	uint64_t allocated_memory_mb;
	uint64_t max_sandboxes;
} metrics_gauges;

typedef struct metrics_sandbox {
	const char *id;
	const char *provider;
	const char *state;
	uint64_t cpu_ns;              /* cumulative CPU time */
	uint64_t memory_bytes;        /* resident memory */
	uint64_t chan_tx_bytes, chan_rx_bytes;
} metrics_sandbox;

metrics *metrics_new(unsigned error_threshold, unsigned window_ms);
void metrics_free(metrics *m);
void metrics_inc(metrics *m, metric_counter c, uint64_t by);
uint64_t metrics_get(metrics *m, metric_counter c);
/* Count one error with its code (also bumps the matching specific counter:
 * policy denials, checksum failures, plugin verification failures, security
 * violations). Returns the number of errors in the current window when this
 * error made it cross the threshold (once per window), else 0. */
unsigned metrics_record_error(metrics *m, silo_code code);
/* Prometheus text; caller frees. */
char *metrics_render(metrics *m, const metrics_gauges *g, const metrics_sandbox *sb, size_t n);

/* Resource usage of a sandbox's host side: the cgroup (v2 or v1 cpuacct/memory)
 * whose path contains `id` if pid is in one, else the sum over pid and its
 * descendants from /proc. 0 on success, -1 if the process is gone. */
int metrics_sample_usage(pid_t pid, const char *id, uint64_t *cpu_ns, uint64_t *mem_bytes);

#endif
