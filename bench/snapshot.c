/* SPDX-License-Identifier: Apache-2.0
 * Snapshot, restore and fork latency; memory of N forks vs N cold sandboxes;
 * density (docs/benchmarks.md "Snapshots, restore, fork"; docs/snapshots.md).
 *
 *   snapshot [-n RUNS] [--forks N] [--density N] [--qemu RUNS]
 *
 * Namespace provider, through the same calls silod uses (sandbox.h + the
 * snapshot store), with a source sandbox holding 64 files of 16 KiB (1 MiB)
 * in its writable layer:
 *  - snapshot: freeze, copy the writable layer, thaw, hash + commit;
 *  - verify_full (SHA-256 of every file) and verify_cached (metadata walk,
 *    docs/snapshots.md "verification cache");
 *  - restore_cold: cached verification + new sandbox from the snapshot up to
 *    the agent handshake;
 *  - restore_warm: a warm-pool take: thaw a paused restored sandbox + ping;
 *  - fork_per_copy: (one snapshot + N restores) / N, per batch;
 *  - memory: RSS and PSS (smaps_rollup) of every process in N forks vs N
 *    cold sandboxes, and the memory cgroups' usage;
 *  - density: MemAvailable drop for --density idle forks (measured), then
 *    how many would fit in 20 GiB and on this host (extrapolated, linear).
 * With --qemu RUNS: qemu (TCG) snapshot and restore-to-ready as well.
 * Table on stderr, one JSON document on stdout (p50/p95/p99 ms).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_util.h"
#include "common/util.h"
#include "core/manager.h"
#include "core/sandbox.h"
#include "providers/ns.h"
#include "snapshot/snapshot.h"

static void print_series(const char *name, bench_series *s, const char *note)
{
	bench_sort(s->ms, (size_t)s->n);
	double min = s->n ? s->ms[0] : 0;
	fprintf(stderr, "%-26s n=%-4d failed=%-2d min %8.3f  p50 %8.3f  p95 %8.3f  p99 %8.3f  mean %8.3f ms\n", name,
		s->n, s->failed, min, bench_series_pct(s, 50), bench_series_pct(s, 95), bench_series_pct(s, 99), bench_series_mean(s));
	printf("  \"%s\": {\"n\": %d, \"failed\": %d, \"min_ms\": %.3f, \"p50_ms\": %.3f, \"p95_ms\": %.3f, "
	       "\"p99_ms\": %.3f, \"mean_ms\": %.3f, \"what\": \"%s\"}",
	       name, s->n, s->failed, min, bench_series_pct(s, 50), bench_series_pct(s, 95), bench_series_pct(s, 99), bench_series_mean(s), note);
}

static void base_spec(vm_spec *s, const char *provider)
{
	memset(s, 0, sizeof *s);
	snprintf(s->name, sizeof s->name, "bench-snap");
	s->provider = (char *)provider;
	s->vcpus = 1;
	s->memory_mb = !strcmp(provider, "qemu") ? 256 : 128;
	if (!strcmp(provider, "qemu"))
		s->image = "base";
}

static int sh(sandbox *sb, const char *script)
{
	char *argv[] = {"sh", "-c", (char *)script, NULL};
	exec_req req = {.argv = argv, .uid = -1, .gid = -1, .timeout_ms = 60000};
	exec_result res;
	silo_error err = {0};
	if (chan_exec(sb->ch, &req, NULL, NULL, &res, &err) < 0 || res.exit_code != 0)
		return -1;
	return 0;
}

static void destroy(sandbox *sb)
{
	cleanup_report rep = {0};
	silo_error err = {0};
	if (sandbox_destroy(sb, 0, &rep, &err) < 0)
		fprintf(stderr, "snapshot: destroy: %s\n", err.message);
	cleanup_report_free(&rep);
}

/* Take a snapshot of sb; id into id. ms or -1. */
static double take(sandbox *sb, const char *kind, char id[SILO_ID_MAX])
{
	silo_error err = {0};
	snap_writer *w;
	uint64_t t0 = now_mono_ns();
	if (snap_begin(kind, &w, &err) < 0)
		return -1;
	if (sandbox_snapshot(sb, snap_writer_payload(w), false, &err) < 0) {
		fprintf(stderr, "snapshot: %s\n", err.message);
		snap_abort(w);
		return -1;
	}
	snap_meta meta = {.provider = sb->ops->name, .source = sb->id, .spec = &sb->spec};
	snprintf(id, SILO_ID_MAX, "%s", snap_writer_id(w));
	if (snap_commit(w, &meta, NULL, &err) < 0) {
		fprintf(stderr, "snapshot: commit: %s\n", err.message);
		return -1;
	}
	return bench_ms_since(t0);
}

static sandbox *restore(const snap_info *s)
{
	sandbox_opts o = {.restore_dir = s->payload, .restore_id = s->id, .restore_provider = s->provider,
			  .boot_timeout_ms = 120000};
	sandbox *sb = NULL;
	silo_error err = {0};
	if (sandbox_create(&s->spec, &o, &sb, &err) < 0)
		fprintf(stderr, "snapshot: restore: %s\n", err.message);
	return sb;
}

typedef struct memsum {
	uint64_t rss_kb, pss_kb, cg_bytes, procs;
} memsum;

static uint64_t field_kb(const char *txt, const char *key)
{
	const char *p = strstr(txt, key);
	return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

/* RSS/PSS of every process in the sandbox's cgroup + the memory cgroup usage. */
static void mem_of(sandbox *sb, memsum *m)
{
	cg_set cg;
	cg_paths(sb->id, &cg);
	for (int i = 0; i < cg.n; i++) {
		if (!strstr(cg.path[i], "/memory/") && !(cg.v2 && i == 0))
			continue;
		char p[PATH_MAX + 32], *txt = NULL;
		size_t n;
		snprintf(p, sizeof p, "%s/%s", cg.path[i], cg.v2 ? "memory.current" : "memory.usage_in_bytes");
		if (read_file(p, 64, &txt, &n, NULL) == 0)
			m->cg_bytes += strtoull(txt, NULL, 10);
		free(txt);
		txt = NULL;
		if (read_file(cg.procs[i], 1 << 16, &txt, &n, NULL) == 0) {
			for (char *s = strtok(txt, "\n"); s; s = strtok(NULL, "\n")) {
				char q[64], *sm = NULL;
				size_t l;
				snprintf(q, sizeof q, "/proc/%s/smaps_rollup", s);
				if (read_file(q, 1 << 16, &sm, &l, NULL) == 0) {
					m->rss_kb += field_kb(sm, "\nRss:");
					m->pss_kb += field_kb(sm, "\nPss:");
					m->procs++;
				}
				free(sm);
			}
		}
		free(txt);
	}
}

/* After 300 ms to settle: the memory of the n sandboxes in sb[] (NULL = failed
 * to start) into m, then destroy them. */
static void settle_measure_destroy(sandbox **sb, int n, memsum *m)
{
	usleep(300 * 1000);
	for (int i = 0; i < n; i++)
		if (sb[i])
			mem_of(sb[i], m);
	for (int i = 0; i < n; i++)
		if (sb[i])
			destroy(sb[i]);
}

static uint64_t mem_available_kb(void)
{
	char *txt = NULL;
	size_t n;
	uint64_t v = 0;
	if (read_file("/proc/meminfo", 1 << 16, &txt, &n, NULL) == 0)
		v = field_kb(txt, "MemAvailable:");
	free(txt);
	return v;
}

static void drop_caches(void)
{
	sync();
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		(void)!write(fd, "1", 1);
		close(fd);
	}
}

static int sh_cb(sandbox *sb, void *ud, silo_error *err)
{
	return sh(sb, ud);
}

/* manager_fork as silod runs it (registry, audit, events, parallel restores):
 * per copy = (snapshot + n restores) / n. */
static void bench_mgr_fork(int runs, int n, const char *state, bench_series *per_copy, bench_series *restores_only)
{
	manager_config mc = {.state_dir = state, .max_sandboxes = (unsigned)n + 4, .fallback = "namespace",
			     .grace_ms = 1};
	manager *m = NULL;
	silo_error err = {0};
	if (manager_open(&mc, &m, &err) < 0) {
		fprintf(stderr, "snapshot: manager_open: %s\n", err.message);
		return;
	}
	vm_spec spec;
	base_spec(&spec, "namespace");
	char src[SILO_ID_MAX];
	if (manager_create(m, &spec, NULL, src, &err) < 0 ||
	    manager_with_sandbox(m, src, false, sh_cb,
				 "mkdir -p /root/data && for i in $(seq 1 64); do head -c 16384 /dev/urandom > "
				 "/root/data/f$i; done",
				 &err) < 0) {
		fprintf(stderr, "snapshot: manager source: %s\n", err.message);
		manager_close(m, true);
		return;
	}
	for (int r = 0; r < runs; r++) {
		json_t *out = NULL;
		uint64_t t0 = now_mono_ns();
		if (manager_fork(m, src, (unsigned)n, "bench", &out, &err) < 0) {
			fprintf(stderr, "snapshot: manager_fork: %s\n", err.message);
			bench_series_add(per_copy, -1);
			continue;
		}
		double total = bench_ms_since(t0);
		bench_series_add(per_copy, total / n);
		bench_series_add(restores_only, (double)json_integer_value(json_object_get(out, "fork_us")) / 1000.0 / n);
		size_t i;
		json_t *v;
		json_array_foreach(json_object_get(out, "sandboxes"), i, v)
		{
			silo_error e2;
			manager_delete(m, json_string_value(v), "bench", 0, &e2);
		}
		json_decref(out);
		snap_gc(UINT64_MAX, NULL, NULL);
	}
	manager_close(m, true);
}

static void bench_qemu(int runs)
{
	vm_spec spec;
	base_spec(&spec, "qemu");
	sandbox *src = NULL;
	silo_error err = {0};
	sandbox_opts o = {.boot_timeout_ms = 120000};
	if (sandbox_create(&spec, &o, &src, &err) < 0) {
		fprintf(stderr, "snapshot: qemu unavailable: %s\n", err.message);
		printf(",\n  \"qemu\": {\"unavailable\": \"%s\"}", "sandbox_create failed (see stderr)");
		return;
	}
	sh(src, "head -c 1048576 /dev/urandom > /root/blob");
	bench_series s_snap = bench_series_new(runs), s_rest = bench_series_new(runs);
	char last[SILO_ID_MAX] = "";
	uint64_t bytes = 0;
	for (int i = 0; i < runs; i++) {
		char id[SILO_ID_MAX];
		double ms = take(src, "snapshot", id);
		bench_series_add(&s_snap, ms);
		if (ms < 0)
			continue;
		snap_info s;
		if (snap_open(id, false, &s, &err) < 0)
			continue;
		bytes = s.bytes;
		uint64_t t0 = now_mono_ns();
		if (snap_verify(&s, &err) == 0) {
			sandbox *r = restore(&s);
			bench_series_add(&s_rest, r ? bench_ms_since(t0) : -1);
			if (r)
				destroy(r);
		} else {
			bench_series_add(&s_rest, -1);
		}
		snap_info_free(&s);
		if (last[0])
			snap_delete(last, true, NULL);
		snprintf(last, sizeof last, "%s", id);
	}
	if (last[0])
		snap_delete(last, true, NULL);
	destroy(src);
	printf(",\n");
	print_series("qemu_snapshot", &s_snap, "QMP stop + migrate to fd (pipe -> payload/vmstate) + cont + hash");
	printf(",\n");
	print_series("qemu_restore_cold", &s_rest,
		     "verify vmstate SHA-256 + QEMU start -incoming + load + cont + agent handshake");
	printf(",\n  \"qemu_vmstate_bytes\": %llu", (unsigned long long)bytes);
	free(s_snap.ms);
	free(s_rest.ms);
}

int main(int argc, char **argv)
{
	int runs = 50, forks = 16, density = 100, qemu_runs = 0;
	const bench_opt opts[] = {
		{"-n", BOPT_INT, &runs},           {"--forks", BOPT_INT, &forks},
		{"--density", BOPT_INT, &density}, {"--qemu", BOPT_INT, &qemu_runs},
		{NULL, 0, NULL},
	};
	bench_opts(argc, argv, opts, "snapshot [-n RUNS] [--forks N] [--density N] [--qemu RUNS]");
	if (runs < 1 || runs > 10000 || forks < 1 || forks > 256 || density < 0 || density > 5000 || qemu_runs < 0) {
		fprintf(stderr, "snapshot: -n 1..10000, --forks 1..256, --density 0..5000\n");
		return 2;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "snapshot: the namespace provider needs root\n");
		return 1;
	}
	/* private store and run directories */
	char tmp[] = "/tmp/silo-bench-snap.XXXXXX", p[PATH_MAX];
	if (bench_private_dirs(tmp) < 0)
		return 1;

	vm_spec spec;
	base_spec(&spec, "namespace");
	silo_error err = {0};
	sandbox *src = NULL;
	sandbox_opts so = {.fallback = "namespace"};
	if (sandbox_create(&spec, &so, &src, &err) < 0) {
		fprintf(stderr, "snapshot: sandbox_create: %s\n", err.message);
		rm_rf(tmp);
		return 1;
	}
	if (sh(src, "mkdir -p /root/data && for i in $(seq 1 64); do head -c 16384 /dev/urandom > /root/data/f$i; "
		    "done") < 0) {
		fprintf(stderr, "snapshot: preparing the source failed\n");
		destroy(src);
		rm_rf(tmp);
		return 1;
	}
	bench_series s_snap = bench_series_new(runs), s_cold = bench_series_new(runs), s_verify = bench_series_new(runs), s_warm = bench_series_new(runs),
	       s_fork = bench_series_new(runs * forks), s_spawn = bench_series_new(runs), s_vcached = bench_series_new(runs);
	char sid[SILO_ID_MAX] = "";
	/* snapshot */
	for (int i = 0; i < runs; i++) {
		char id[SILO_ID_MAX];
		double ms = take(src, "snapshot", id);
		bench_series_add(&s_snap, ms);
		if (ms >= 0 && !sid[0])
			snprintf(sid, sizeof sid, "%s", id);
		else if (ms >= 0)
			snap_delete(id, true, NULL);
	}
	snap_info s;
	if (!sid[0] || snap_open(sid, true, &s, &err) < 0) {
		fprintf(stderr, "snapshot: no snapshot: %s\n", err.message);
		destroy(src);
		rm_rf(tmp);
		bench_series *all[] = {&s_snap, &s_cold, &s_verify, &s_warm, &s_fork, &s_spawn, &s_vcached};
		for (size_t i = 0; i < ARRAY_SIZE(all); i++)
			free(all[i]->ms);
		return 1;
	}
	/* the verification cache only takes trees older than 2 s (coarse ctime) */
	usleep(2100 * 1000);
	char vcache[PATH_MAX + 32];
	snprintf(vcache, sizeof vcache, "%s/.verified", s.dir);
	/* cold restore (verify + restore + handshake), and spawn as the peer */
	for (int i = 0; i < runs; i++) {
		unlink(vcache);
		uint64_t t0 = now_mono_ns();
		int vrc = snap_verify(&s, &err);   /* full: hashes every byte, then caches */
		bench_series_add(&s_verify, vrc == 0 ? bench_ms_since(t0) : -1);
		t0 = now_mono_ns();
		vrc = snap_verify(&s, &err);       /* cached: a metadata walk */
		bench_series_add(&s_vcached, vrc == 0 ? bench_ms_since(t0) : -1);
		sandbox *r = vrc == 0 ? restore(&s) : NULL;
		bench_series_add(&s_cold, r ? bench_ms_since(t0) : -1);
		if (!r)
			continue;
		/* warm: pause (as the pool keeps it), then take = thaw + ping */
		if (sandbox_pause(r, &err) == 0) {
			uint64_t t1 = now_mono_ns();
			int rc = sandbox_resume(r, &err);
			if (rc == 0)
				rc = chan_ping(r->ch, 5000, &err);
			bench_series_add(&s_warm, rc == 0 ? bench_ms_since(t1) : -1);
		}
		destroy(r);
		sandbox *c = NULL;
		t0 = now_mono_ns();
		if (sandbox_create(&spec, &so, &c, &err) == 0) {
			bench_series_add(&s_spawn, bench_ms_since(t0));
			destroy(c);
		} else {
			bench_series_add(&s_spawn, -1);
		}
	}
	/* fork batches: one snapshot + N restores, per copy */
	sandbox **fk = xcalloc((size_t)forks, sizeof *fk);
	for (int b = 0; b < runs; b++) {
		char fid[SILO_ID_MAX];
		uint64_t t0 = now_mono_ns();
		if (take(src, "fork", fid) < 0)
			continue;
		snap_info f;
		if (snap_open(fid, true, &f, &err) < 0)
			continue;
		int ok = 0;
		for (int i = 0; i < forks; i++)
			if ((fk[i] = restore(&f)))
				ok++;
		double per = bench_ms_since(t0) / forks;
		for (int i = 0; i < forks; i++) {
			bench_series_add(&s_fork, fk[i] ? per : -1);
			if (fk[i])
				destroy(fk[i]);
		}
		(void)ok;
		snap_info_free(&f);
		snap_delete(fid, true, NULL);
	}
	/* memory: N forks vs N cold sandboxes, idle */
	memsum mf = {0}, mc = {0};
	{
		char fid[SILO_ID_MAX];
		snap_info f;
		if (take(src, "fork", fid) >= 0 && snap_open(fid, true, &f, &err) == 0) {
			for (int i = 0; i < forks; i++)
				fk[i] = restore(&f);
			settle_measure_destroy(fk, forks, &mf);
			snap_info_free(&f);
			snap_delete(fid, true, NULL);
		}
		for (int i = 0; i < forks; i++)
			if (sandbox_create(&spec, &so, &fk[i], &err) < 0)
				fk[i] = NULL;
		/* same state as the forks: the 1 MiB written into each cold one */
		for (int i = 0; i < forks; i++)
			if (fk[i])
				sh(fk[i], "mkdir -p /root/data && for i in $(seq 1 64); do head -c 16384 /dev/urandom > "
					  "/root/data/f$i; done");
		settle_measure_destroy(fk, forks, &mc);
	}
	/* density: MemAvailable drop for `density` idle forks */
	uint64_t avail0 = 0, avail1 = 0;
	int made = 0;
	double per_kb = 0;
	memsum md = {0};
	if (density > 0) {
		sandbox **d = xcalloc((size_t)density, sizeof *d);
		char fid[SILO_ID_MAX];
		snap_info f;
		drop_caches();
		usleep(200 * 1000);
		avail0 = mem_available_kb();
		if (take(src, "fork", fid) >= 0 && snap_open(fid, true, &f, &err) == 0) {
			for (int i = 0; i < density; i++) {
				if (!(d[i] = restore(&f)))
					break;
				made++;
			}
			usleep(500 * 1000);
			avail1 = mem_available_kb();
			for (int i = 0; i < made; i++)
				mem_of(d[i], &md);
			for (int i = 0; i < made; i++)
				destroy(d[i]);
			snap_info_free(&f);
			snap_delete(fid, true, NULL);
		}
		free(d);
		if (made)
			per_kb = (double)(avail0 > avail1 ? avail0 - avail1 : 0) / made;
	}
	destroy(src);
	uint64_t layer_bytes = s.bytes;
	bench_series s_mfork = bench_series_new(runs), s_mrest = bench_series_new(runs);
	snprintf(p, sizeof p, "%s/mgr-state", tmp);
	bench_mgr_fork(runs, forks, p, &s_mfork, &s_mrest);
	snap_info_free(&s);

	printf("{\n  \"benchmark\": \"snapshot\",\n");
	printf("  \"runs\": %d, \"forks\": %d, \"cpus\": %ld, \"layer_bytes\": %llu,\n", runs, forks,
	       sysconf(_SC_NPROCESSORS_ONLN), (unsigned long long)layer_bytes);
	const struct {
		const char *name;
		bench_series *s;
		const char *what;
	} rows[] = {
		{"ns_snapshot", &s_snap, "freeze + copy writable layer (64 x 16 KiB) + thaw + SHA-256 + commit"},
		{"ns_verify_full", &s_verify, "SHA-256 of every payload entry against the manifest"},
		{"ns_verify_cached", &s_vcached, "verification cache hit: metadata walk of the payload"},
		{"ns_restore_cold", &s_cold, "cached verify + namespace sandbox over the snapshot layer + agent handshake"},
		{"ns_restore_warm", &s_warm, "warm pool take: thaw a paused restored sandbox + agent ping"},
		{"ns_spawn_cold", &s_spawn, "peer: sandbox_create from scratch (no snapshot)"},
		{"ns_fork_per_copy", &s_fork, "(one snapshot + N restores to ready) / N, sequential, sandbox API"},
		{"mgr_fork_per_copy", &s_mfork,
		 "manager_fork(N) wall / N: snapshot + verify + N parallel restores, registry + audit (as silod)"},
		{"mgr_fork_restores_per_copy", &s_mrest, "manager_fork: restore phase only / N"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(rows); i++) {
		if (i)
			printf(",\n");
		print_series(rows[i].name, rows[i].s, rows[i].what);
	}
	double gib20_kb = 20.0 * 1024 * 1024;
	uint64_t host_kb = avail0;
	fprintf(stderr, "memory of %d idle forks: RSS %llu KiB, PSS %llu KiB, cgroups %llu KiB (%llu procs)\n", forks,
		(unsigned long long)mf.rss_kb, (unsigned long long)mf.pss_kb, (unsigned long long)(mf.cg_bytes >> 10),
		(unsigned long long)mf.procs);
	fprintf(stderr, "memory of %d idle cold:  RSS %llu KiB, PSS %llu KiB, cgroups %llu KiB (%llu procs)\n", forks,
		(unsigned long long)mc.rss_kb, (unsigned long long)mc.pss_kb, (unsigned long long)(mc.cg_bytes >> 10),
		(unsigned long long)mc.procs);
	printf(",\n  \"memory\": {\"n\": %d, \"forks\": {\"rss_kb\": %llu, \"pss_kb\": %llu, \"cgroup_kb\": %llu}, "
	       "\"cold\": {\"rss_kb\": %llu, \"pss_kb\": %llu, \"cgroup_kb\": %llu}}",
	       forks, (unsigned long long)mf.rss_kb, (unsigned long long)mf.pss_kb,
	       (unsigned long long)(mf.cg_bytes >> 10), (unsigned long long)mc.rss_kb, (unsigned long long)mc.pss_kb,
	       (unsigned long long)(mc.cg_bytes >> 10));
	if (made) {
		fprintf(stderr,
			"density: %d idle forks made MemAvailable drop %lld KiB (%.0f KiB each; PSS %.0f KiB each); "
			"extrapolated: %.0f in 20 GiB, %.0f in this host's %llu MiB available\n",
			made, (long long)avail0 - (long long)avail1, per_kb, (double)md.pss_kb / made,
			per_kb > 0 ? gib20_kb / per_kb : 0, per_kb > 0 ? (double)host_kb / per_kb : 0,
			(unsigned long long)(host_kb >> 10));
		printf(",\n  \"density\": {\"measured_idle_forks\": %d, \"mem_available_drop_kb\": %lld, "
		       "\"per_sandbox_kb\": %.0f, \"pss_per_sandbox_kb\": %.0f, \"extrapolated_in_20GiB\": %.0f, "
		       "\"extrapolated_on_host\": %.0f, \"host_available_mb\": %llu, "
		       "\"method\": \"linear extrapolation of the measured MemAvailable drop per idle fork\"}",
		       made, (long long)avail0 - (long long)avail1, per_kb, (double)md.pss_kb / made,
		       per_kb > 0 ? gib20_kb / per_kb : 0, per_kb > 0 ? (double)host_kb / per_kb : 0,
		       (unsigned long long)(host_kb >> 10));
	}
	if (qemu_runs > 0)
		bench_qemu(qemu_runs);
	printf("\n}\n");
	rm_rf(tmp);
	free(fk);
	int failed = s_snap.failed || s_cold.failed || s_fork.failed;
	bench_series *all[] = {&s_snap, &s_cold, &s_verify, &s_warm, &s_fork, &s_spawn, &s_mfork, &s_mrest, &s_vcached};
	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		free(all[i]->ms);
	return failed ? 1 : 0;
}
