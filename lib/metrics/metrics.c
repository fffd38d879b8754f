/* SPDX-License-Identifier: Apache-2.0
 * Manager metrics (see metrics.h).
 */
#include "metrics/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"

#define WINDOW_SLOTS 4096

struct metrics {
	pthread_mutex_t lock;
	uint64_t counters[M__COUNTER_COUNT];
	uint64_t errors_by_code[SILO_ERR__COUNT];
	unsigned threshold;
	unsigned window_ms;
	/* ring of recent error timestamps (ms, monotonic) */
	uint64_t *ring;
	size_t ring_len, ring_head;
	uint64_t last_warn_ms;
};

static const struct {
	const char *name;
	const char *help;
} counter_meta[M__COUNTER_COUNT] = {
	[M_SPAWNS_TOTAL] = {"silo_spawns_total", "Sandboxes spawned successfully."},
	[M_SPAWN_FAILURES_TOTAL] = {"silo_spawn_failures_total", "Sandbox creations that failed."},
	[M_TERMINATIONS_TOTAL] = {"silo_terminations_total", "Sandboxes terminated."},
	[M_ERRORS_TOTAL] = {"silo_errors_total", "Errors returned by the manager."},
	[M_POLICY_DENIALS_TOTAL] = {"silo_policy_denials_total", "Operations denied by policy."},
	[M_CHECKSUM_FAILURES_TOTAL] = {"silo_checksum_failures_total",
				       "Kernel/image/snapshot checksum or signature mismatches."},
	[M_PLUGIN_VERIFICATION_FAILURES_TOTAL] = {"silo_plugin_verification_failures_total",
						  "Plugin bundles that failed signature verification."},
	[M_SECURITY_VIOLATIONS_TOTAL] = {"silo_security_violations_total",
					 "Guest protocol or scope violations."},
	[M_HEALTH_WARNINGS_TOTAL] = {"silo_health_warnings_total", "Health warnings raised."},
	[M_API_REQUESTS_TOTAL] = {"silo_api_requests_total", "HTTP API requests served."},
	[M_EGRESS_DENIALS_TOTAL] = {"silo_egress_denials_total",
				    "Connections and DNS lookups of sandboxes refused by their egress allow-list."},
	[M_TARGET_PROBE_FAILURES_TOTAL] = {"silo_target_probe_failures_total",
					   "Health probes of remote targets that failed (docs/remote.md)."},
	[M_TARGET_OFFLINE_TOTAL] = {"silo_target_offline_total", "Times a remote target was marked offline."},
};

metrics *metrics_new(unsigned error_threshold, unsigned window_ms)
{
	metrics *m = xcalloc(1, sizeof *m);
	pthread_mutex_init(&m->lock, NULL);
	m->threshold = error_threshold;
	m->window_ms = window_ms;
	m->ring_len = error_threshold ? MIN((size_t)error_threshold + 1, (size_t)WINDOW_SLOTS) : 1;
	m->ring = xcalloc(m->ring_len, sizeof *m->ring);
	return m;
}

void metrics_free(metrics *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->lock);
	free(m->ring);
	free(m);
}

void metrics_inc(metrics *m, metric_counter c, uint64_t by)
{
	if ((unsigned)c >= M__COUNTER_COUNT)
		return;
	pthread_mutex_lock(&m->lock);
	m->counters[c] += by;
	pthread_mutex_unlock(&m->lock);
}

uint64_t metrics_get(metrics *m, metric_counter c)
{
	if ((unsigned)c >= M__COUNTER_COUNT)
		return 0;
	pthread_mutex_lock(&m->lock);
	uint64_t v = m->counters[c];
	pthread_mutex_unlock(&m->lock);
	return v;
}

unsigned metrics_record_error(metrics *m, silo_code code)
{
	uint64_t now = now_mono_ns() / 1000000ull;
	unsigned crossed = 0;
	pthread_mutex_lock(&m->lock);
	m->counters[M_ERRORS_TOTAL]++;
	if ((unsigned)code < SILO_ERR__COUNT)
		m->errors_by_code[code]++;
	switch (code) {
	case SILO_ERR_POLICY_DENIED:
		m->counters[M_POLICY_DENIALS_TOTAL]++;
		break;
	case SILO_ERR_CHECKSUM_MISMATCH:
		m->counters[M_CHECKSUM_FAILURES_TOTAL]++;
		break;
	case SILO_ERR_PLUGIN_UNVERIFIED:
		m->counters[M_PLUGIN_VERIFICATION_FAILURES_TOTAL]++;
		break;
	case SILO_ERR_SECURITY_VIOLATION:
		m->counters[M_SECURITY_VIOLATIONS_TOTAL]++;
		break;
	default:
		break;
	}
	if (m->threshold) {
		/* The ring holds the last threshold+1 error times: if the oldest of them
		 * is within the window, more than `threshold` errors happened in it. */
		m->ring[m->ring_head] = now;
		m->ring_head = (m->ring_head + 1) % m->ring_len;
		uint64_t oldest = m->ring[m->ring_head];
		bool full = oldest != 0;
		if (full && now - oldest <= m->window_ms &&
		    (m->last_warn_ms == 0 || now - m->last_warn_ms > m->window_ms)) {
			m->last_warn_ms = now;
			m->counters[M_HEALTH_WARNINGS_TOTAL]++;
			crossed = (unsigned)m->ring_len;
		}
	}
	pthread_mutex_unlock(&m->lock);
	return crossed;
}

/* ---- rendering ---- */

typedef struct sbuf {
	char *p;
	size_t len, cap;
} sbuf;

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		int n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		b->cap = MAX(b->cap * 2, b->len + (size_t)n + 256);
		b->p = xrealloc(b->p, b->cap);
	}
}

/* Label values: escape backslash, quote and newline (exposition format). */
static void sb_label(sbuf *b, const char *s)
{
	for (; s && *s; s++) {
		if (*s == '\\')
			sb_printf(b, "\\\\");
		else if (*s == '"')
			sb_printf(b, "\\\"");
		else if (*s == '\n')
			sb_printf(b, "\\n");
		else
			sb_printf(b, "%c", *s);
	}
}

static void gauge(sbuf *b, const char *name, const char *help, uint64_t v)
{
	sb_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %" PRIu64 "\n", name, help, name, name, v);
}

static void per_sandbox(sbuf *b, const char *name, const char *type, const char *help,
			const metrics_sandbox *sb, size_t n, size_t field)
{
	sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
	for (size_t i = 0; i < n; i++) {
		uint64_t v = 0;
		switch (field) {
		case 0: v = sb[i].cpu_ns; break;
		case 1: v = sb[i].memory_bytes; break;
		case 2: v = sb[i].chan_tx_bytes; break;
		default: v = sb[i].chan_rx_bytes; break;
		}
		sb_printf(b, "%s{sandbox=\"", name);
		sb_label(b, sb[i].id);
		sb_printf(b, "\",provider=\"");
		sb_label(b, sb[i].provider);
		if (field == 0)
			sb_printf(b, "\"} %.9f\n", (double)v / 1e9);
		else
			sb_printf(b, "\"} %" PRIu64 "\n", v);
	}
}

char *metrics_render(metrics *m, const metrics_gauges *g, const metrics_sandbox *sb, size_t n)
{
	sbuf b = {0};
	uint64_t c[M__COUNTER_COUNT], by_code[SILO_ERR__COUNT];
	pthread_mutex_lock(&m->lock);
	memcpy(c, m->counters, sizeof c);
	memcpy(by_code, m->errors_by_code, sizeof by_code);
	pthread_mutex_unlock(&m->lock);
	for (int i = 0; i < M__COUNTER_COUNT; i++)
		sb_printf(&b, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n", counter_meta[i].name,
			  counter_meta[i].help, counter_meta[i].name, counter_meta[i].name, c[i]);
	sb_printf(&b, "# HELP silo_errors_by_code_total Errors by public error code.\n"
		      "# TYPE silo_errors_by_code_total counter\n");
	for (int i = 1; i < SILO_ERR__COUNT; i++)
		if (by_code[i])
			sb_printf(&b, "silo_errors_by_code_total{code=\"%s\"} %" PRIu64 "\n",
				  silo_code_name((silo_code)i), by_code[i]);
	gauge(&b, "silo_sandboxes_active", "Sandboxes not terminated.", g ? g->active : 0);
	gauge(&b, "silo_allocated_vcpus", "vCPUs allocated to active sandboxes.", g ? g->allocated_vcpus : 0);
	gauge(&b, "silo_allocated_memory_bytes", "Memory allocated to active sandboxes.",
	      g ? g->allocated_memory_mb * 1024 * 1024 : 0);
	gauge(&b, "silo_max_sandboxes", "Configured maximum of concurrent sandboxes.",
	      g ? g->max_sandboxes : 0);
	per_sandbox(&b, "silo_sandbox_cpu_seconds_total", "counter", "Host CPU time used by the sandbox.",
		    sb, n, 0);
	per_sandbox(&b, "silo_sandbox_memory_bytes", "gauge", "Resident memory of the sandbox on the host.",
		    sb, n, 1);
	per_sandbox(&b, "silo_sandbox_channel_tx_bytes_total", "counter",
		    "Bytes sent to the sandbox agent.", sb, n, 2);
	per_sandbox(&b, "silo_sandbox_channel_rx_bytes_total", "counter",
		    "Bytes received from the sandbox agent.", sb, n, 3);
	if (!b.p)
		b.p = xstrdup("");
	return b.p;
}

/* ---- usage sampling ---- */

static int read_u64_file(const char *path, const char *key, uint64_t *out)
{
	char *buf = NULL;
	size_t len;
	silo_error e;
	if (read_file(path, 64 * 1024, &buf, &len, &e) < 0)
		return -1;
	int ret = -1;
	if (!key) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(buf, &end, 10);
		if (!errno && end != buf) {
			*out = v;
			ret = 0;
		}
	} else {
		size_t kl = strlen(key);
		for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
			if (!strncmp(l, key, kl) && l[kl] == ' ') {
				*out = strtoull(l + kl + 1, NULL, 10);
				ret = 0;
				break;
			}
		}
	}
	free(buf);
	return ret;
}

/* Find the cgroup paths of pid for the unified hierarchy and the v1 cpuacct and
 * memory controllers; only those that mention id count as the sandbox's own. */
static int sample_cgroup(pid_t pid, const char *id, uint64_t *cpu_ns, uint64_t *mem, bool *got_cpu_out,
			 bool *got_mem_out, char procs[PATH_MAX])
{
	procs[0] = '\0';
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
	char *buf = NULL;
	size_t len;
	silo_error e;
	if (read_file(path, 64 * 1024, &buf, &len, &e) < 0)
		return -1;
	bool got_cpu = false, got_mem = false;
	for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n")) {
		char *c1 = strchr(l, ':');
		char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		*c2 = '\0';
		const char *ctrls = c1 + 1, *cg = c2 + 1;
		if (!id || !strstr(cg, id))
			continue;
		char f[4096];
		uint64_t v;
		/* the sandbox's own cgroup lists its processes: the tree without a /proc scan */
		if (!procs[0] && (!*ctrls || strstr(ctrls, "memory") || strstr(ctrls, "pids")))
			snprintf(procs, PATH_MAX, "/sys/fs/cgroup/%s%s/cgroup.procs",
				 !*ctrls ? "unified" : strstr(ctrls, "memory") ? "memory" : "pids", cg);
		if (!*ctrls) {
			snprintf(f, sizeof f, "/sys/fs/cgroup/unified%s/cpu.stat", cg);
			if (!got_cpu && read_u64_file(f, "usage_usec", &v) == 0) {
				*cpu_ns = v * 1000;
				got_cpu = true;
			}
			snprintf(f, sizeof f, "/sys/fs/cgroup/unified%s/memory.current", cg);
			if (!got_mem && read_u64_file(f, NULL, &v) == 0) {
				*mem = v;
				got_mem = true;
			}
		} else if (strstr(ctrls, "cpuacct") && !got_cpu) {
			snprintf(f, sizeof f, "/sys/fs/cgroup/cpuacct%s/cpuacct.usage", cg);
			if (read_u64_file(f, NULL, &v) == 0) {
				*cpu_ns = v;
				got_cpu = true;
			}
		} else if (strstr(ctrls, "memory") && !got_mem) {
			snprintf(f, sizeof f, "/sys/fs/cgroup/memory%s/memory.usage_in_bytes", cg);
			if (read_u64_file(f, NULL, &v) == 0) {
				*mem = v;
				got_mem = true;
			}
		}
	}
	free(buf);
	*got_cpu_out = got_cpu;
	*got_mem_out = got_mem;
	return 0;
}

static int proc_stat(pid_t pid, pid_t *ppid, uint64_t *ticks, uint64_t *rss_pages)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	char *buf = NULL;
	size_t len;
	silo_error e;
	if (read_file(path, 8192, &buf, &len, &e) < 0)
		return -1;
	/* comm may contain spaces and parens: fields start after the last ')'. */
	char *p = strrchr(buf, ')');
	int ret = -1;
	if (p) {
		char state;
		int pp;
		unsigned long ut, st;
		long rss;
		if (sscanf(p + 2,
			   "%c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d %*u %*u %ld",
			   &state, &pp, &ut, &st, &rss) == 5) {
			*ppid = pp;
			*ticks = (uint64_t)ut + st;
			*rss_pages = rss > 0 ? (uint64_t)rss : 0;
			ret = 0;
		}
	}
	free(buf);
	return ret;
}

/* Clock ticks and pages to ns and bytes. */
static void to_units(uint64_t ticks, uint64_t pages, uint64_t *cpu_ns, uint64_t *mem)
{
	long hz = sysconf(_SC_CLK_TCK);
	long page = sysconf(_SC_PAGESIZE);
	*cpu_ns = ticks * (1000000000ull / (uint64_t)(hz > 0 ? hz : 100));
	*mem = pages * (uint64_t)(page > 0 ? page : 4096);
}

static int sample_proc_tree(pid_t root, uint64_t *cpu_ns, uint64_t *mem)
{
	pid_t pp;
	uint64_t ticks, rss;
	if (proc_stat(root, &pp, &ticks, &rss) < 0)
		return -1;
	/* Collect the tree: repeat passes over /proc until no new descendant appears
	 * (bounded: at most 16 passes, enough for any reasonable depth ordering). */
	size_t cap = 64, n = 1;
	pid_t *tree = xmalloc(cap * sizeof *tree);
	tree[0] = root;
	uint64_t tot_ticks = ticks, tot_rss = rss;
	for (int pass = 0; pass < 16; pass++) {
		bool added = false;
		DIR *d = opendir("/proc");
		if (!d)
			break;
		struct dirent *de;
		while ((de = readdir(d))) {
			char *end;
			long v = strtol(de->d_name, &end, 10);
			if (*end || v <= 0)
				continue;
			pid_t pid = (pid_t)v;
			bool known = false;
			for (size_t i = 0; i < n && !known; i++)
				known = tree[i] == pid;
			if (known || proc_stat(pid, &pp, &ticks, &rss) < 0)
				continue;
			bool child = false;
			for (size_t i = 0; i < n && !child; i++)
				child = tree[i] == pp;
			if (!child)
				continue;
			if (n == cap) {
				cap *= 2;
				tree = xrealloc(tree, cap * sizeof *tree);
			}
			tree[n++] = pid;
			tot_ticks += ticks;
			tot_rss += rss;
			added = true;
		}
		closedir(d);
		if (!added)
			break;
	}
	free(tree);
	to_units(tot_ticks, tot_rss, cpu_ns, mem);
	return 0;
}

/* The processes listed in a cgroup.procs file: summed CPU time and RSS. -1 if unreadable. */
static int sample_procs_file(const char *procs, uint64_t *cpu_ns, uint64_t *mem)
{
	char *buf = NULL;
	size_t len;
	silo_error e;
	if (read_file(procs, 1 << 20, &buf, &len, &e) < 0)
		return -1;
	uint64_t tot_ticks = 0, tot_rss = 0;
	for (char *l = buf; *l;) {
		char *end;
		long v = strtol(l, &end, 10);
		if (end == l)
			break;
		pid_t pp;
		uint64_t ticks, rss;
		if (v > 0 && proc_stat((pid_t)v, &pp, &ticks, &rss) == 0) {
			tot_ticks += ticks;
			tot_rss += rss;
		}
		l = end + (*end == '\n');
	}
	free(buf);
	to_units(tot_ticks, tot_rss, cpu_ns, mem);
	return 0;
}

int metrics_sample_usage(pid_t pid, const char *id, uint64_t *cpu_ns, uint64_t *mem_bytes)
{
	*cpu_ns = 0;
	*mem_bytes = 0;
	if (pid <= 0)
		return -1;
	/* Prefer the sandbox's own cgroup for each figure (it also counts exited
	 * children and page cache); take what it lacks (e.g. no cpuacct for it on a
	 * v1 host) from the process tree. */
	uint64_t c = 0, mm = 0;
	bool got_cpu = false, got_mem = false;
	char procs[PATH_MAX];
	if (sample_cgroup(pid, id, &c, &mm, &got_cpu, &got_mem, procs) < 0)
		return -1;   /* the process is gone */
	if (!got_cpu || !got_mem) {
		/* the cgroup's process list when there is one (a /proc scan per sandbox made
		 * listing N sandboxes cost N x every process on the host: 1.3 s at 100) */
		uint64_t pc = 0, pm = 0;
		if ((!procs[0] || sample_procs_file(procs, &pc, &pm) < 0) && sample_proc_tree(pid, &pc, &pm) < 0)
			return -1;
		if (!got_cpu)
			c = pc;
		if (!got_mem)
			mm = pm;
	}
	*cpu_ns = c;
	*mem_bytes = mm;
	return 0;
}
