/* SPDX-License-Identifier: Apache-2.0
 * Spawn-to-agent-ready per provider (docs/benchmarks.md).
 *
 *   spawn_ready [-n ITER] [--providers kvm,qemu,namespace] [--images base,python] [--first]
 *
 * For every provider available on this machine (provider probe), create a
 * sandbox with sandbox_create() and take sb->ready_ns (create -> agent
 * handshake done) and sb->spawn_ns (create -> the provider's spawn returned:
 * for qemu, QEMU answers QMP inside its jail), then destroy it. The VM
 * providers are measured with both guest images: "base" (initramfs) and
 * "python" (ext4 root). Providers with templates (lib/core/template.c) get two
 * rows measured alternately in the same run: "cold" (sandbox_opts.cold) and
 * "template" (restored from the template a warm-up start saved), with the
 * ratio of their p50s. With --first, a third row "first" in the same
 * alternation: the first start of its key (the template is removed before
 * each), i.e. a cold boot plus the synchronous template save. Every row also
 * has the whole sandbox_create() call ("call", what a silod create waits
 * for): ready excludes the save, call includes it. One run, one table (stderr), one JSON document (stdout)
 * with p50/p95/p99 per row; unavailable providers are listed with their reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "common/util.h"
#include "core/provider.h"
#include "core/sandbox.h"
#include "snapshot/snapshot.h"

typedef struct row {
	char provider[32];
	char image[32];
	char accel[32];
	char version[64];
	const char *start;            /* "cold", "template" (restored from one), "first" (cold + save), "-" (no templates) */
	int n, failed, miss;          /* miss: a template start that booted cold */
	double *ms, *spawn_ms, *call_ms;
	char last_error[256];
} row;

static void row_init(row *r, const char *prov, const provider_info *pi, const char *image, const char *start, int iters)
{
	memset(r, 0, sizeof *r);
	snprintf(r->provider, sizeof r->provider, "%s", prov);
	snprintf(r->image, sizeof r->image, "%s", image ? image : "-");
	snprintf(r->accel, sizeof r->accel, "%s", pi->accel);
	snprintf(r->version, sizeof r->version, "%s", pi->version);
	r->start = start;
	r->ms = xcalloc((size_t)iters, sizeof *r->ms);
	r->spawn_ms = xcalloc((size_t)iters, sizeof *r->spawn_ms);
	r->call_ms = xcalloc((size_t)iters, sizeof *r->call_ms);
}

/* One start (cold: sandbox_opts.cold), recorded in r unless r is NULL (the
 * warm-up that saves the template), then destroy. */
static char last_tid[SILO_ID_MAX];   /* the template the last start restored or saved */

static void start_one(row *r, const provider_ops *ops, const char *image, bool cold)
{
	vm_spec s;
	memset(&s, 0, sizeof s);
	snprintf(s.name, sizeof s.name, "bench-%s", ops->name);
	s.provider = (char *)ops->name;
	s.vcpus = 1;
	s.memory_mb = 256;
	s.image = (char *)image;
	sandbox_opts o = {.fallback = ops->name, .boot_timeout_ms = 120000, .heartbeat_ms = 0, .cold = cold};
	sandbox *sb = NULL;
	silo_error err = {0};
	uint64_t t0 = now_mono_ns();
	int rc = sandbox_create(&s, &o, &sb, &err);
	double call = (now_mono_ns() - t0) / 1e6;
	if (rc < 0) {
		if (r) {
			r->failed++;
			snprintf(r->last_error, sizeof r->last_error, "%s", err.message);
		}
		return;
	}
	if (r) {
		r->spawn_ms[r->n] = sb->spawn_ns / 1e6;
		r->call_ms[r->n] = call;
		r->ms[r->n++] = sb->ready_ns / 1e6;
		r->miss += !cold && !strcmp(r->start, "template") && !sb->from_template;
		r->miss += !strcmp(r->start, "first") && (sb->from_template || !sb->template_id[0]);
	}
	if (sb->template_id[0])
		snprintf(last_tid, sizeof last_tid, "%s", sb->template_id);
	cleanup_report rep = {0};
	if (sandbox_destroy(sb, 5000, &rep, &err) < 0 && r) {
		r->failed++;
		snprintf(r->last_error, sizeof r->last_error, "destroy: %s", err.message);
	}
	cleanup_report_free(&rep);
}

/* A provider with templates: cold and template starts alternate, so both rows
 * see the same machine load (this host is shared); one warm-up start saves the
 * template first. Without templates: one row. */
static void measure(row *rows, int *nrows, const provider_ops *ops, const provider_info *pi, const char *image,
		    int iters, bool first)
{
	bool tpl = ops->template_identity && !(getenv("SILO_TEMPLATES") && !strcmp(getenv("SILO_TEMPLATES"), "0"));
	row *c = &rows[(*nrows)++], *t = NULL, *f = NULL;
	row_init(c, ops->name, pi, image, tpl ? "cold" : "-", iters);
	if (tpl) {
		t = &rows[(*nrows)++];
		row_init(t, ops->name, pi, image, "template", iters);
		if (first) {
			f = &rows[(*nrows)++];
			row_init(f, ops->name, pi, image, "first", iters);
		}
		start_one(NULL, ops, image, false);
	}
	for (int i = 0; i < iters; i++) {
		start_one(c, ops, image, tpl);
		if (t)
			start_one(t, ops, image, false);
		if (f) {
			/* drop the template: this start saves a new one (the next template row restores it) */
			silo_error e = {0};
			if (last_tid[0] && snap_delete(last_tid, false, &e) < 0)
				fprintf(stderr, "spawn_ready: template %s: %s\n", last_tid, e.message);
			start_one(f, ops, image, false);
		}
	}
	for (row *r = c; r && r <= (f ? f : t ? t : c); r++) {
		bench_sort(r->ms, (size_t)r->n);
		bench_sort(r->spawn_ms, (size_t)r->n);
		bench_sort(r->call_ms, (size_t)r->n);
	}
}

int main(int argc, char **argv)
{
	int iters = 10;
	bool first = false;
	const char *only = NULL, *only_images = NULL;
	const bench_opt opts[] = {
		{"-n", BOPT_INT, &iters},          {"--providers", BOPT_STR, &only}, {"--images", BOPT_STR, &only_images},
		{"--first", BOPT_TRUE, &first}, {NULL, 0, NULL},
	};
	bench_opts(argc, argv, opts,
		   "spawn_ready [-n ITER] [--providers kvm,qemu,namespace] [--images base,python] [--first]");
	if (iters < 1 || iters > 10000) {
		fprintf(stderr, "spawn_ready: -n must be 1..10000\n");
		return 2;
	}
	row rows[24];
	int nrows = 0;
	char unavail[2048] = "";
	size_t ul = 0;
	for (const provider_ops *const *p = provider_all(); *p && nrows < 12; p++) {
		const provider_ops *ops = *p;
		if (only) {
			char pat[64];
			snprintf(pat, sizeof pat, ",%s,", ops->name);
			char list[256];
			snprintf(list, sizeof list, ",%s,", only);
			if (!strstr(list, pat))
				continue;
		}
		provider_info pi;
		ops->probe(&pi);
		if (!pi.available) {
			char *esc = xstrdup(pi.reason);
			for (char *c = esc; *c; c++)
				if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
					*c = '\'';
			ul += (size_t)snprintf(unavail + ul, sizeof unavail - ul, "%s{\"provider\":\"%s\",\"reason\":\"%s\"}",
					       ul ? "," : "", ops->name, esc);
			if (ul >= sizeof unavail)
				ul = sizeof unavail - 1;
			free(esc);
			fprintf(stderr, "%-10s unavailable: %s\n", ops->name, pi.reason);
			continue;
		}
		const char *images[2] = {NULL, NULL};
		if (!strcmp(ops->name, "qemu") || !strcmp(ops->name, "kvm")) {
			images[0] = "base";
			images[1] = "python";
		}
		for (int k = 0; k < 2 && (k == 0 || images[k]); k++) {
			if (only_images && images[k]) {
				char pat[64], list[256];
				snprintf(pat, sizeof pat, ",%s,", images[k]);
				snprintf(list, sizeof list, ",%s,", only_images);
				if (!strstr(list, pat))
					continue;
			}
			measure(rows, &nrows, ops, &pi, images[k], iters, first);
		}
	}
	fprintf(stderr, "\n%-10s %-8s %-6s %-8s %5s %6s %9s %9s %9s %9s %12s %9s %9s %8s\n", "provider", "image", "accel",
		"start", "n", "failed", "p50 ms", "p95 ms", "p99 ms", "max ms", "spawn p50", "call p50", "call p95", "vs cold");
	printf("{\"benchmark\":\"spawn_to_agent_ready\",\"iterations\":%d,\"results\":[", iters);
	for (int i = 0; i < nrows; i++) {
		row *r = &rows[i];
		double p50 = bench_pct(r->ms, (size_t)r->n, 50, 0), p95 = bench_pct(r->ms, (size_t)r->n, 95, 0), p99 = bench_pct(r->ms, (size_t)r->n, 99, 0);
		double mx = r->n ? r->ms[r->n - 1] : 0;
		double sp50 = bench_pct(r->spawn_ms, (size_t)r->n, 50, 0), sp95 = bench_pct(r->spawn_ms, (size_t)r->n, 95, 0);
		/* a template row follows its cold row: the ratio of p50s, the target (<= 0.4) */
		const row *cold = !strcmp(r->start, "template") && i > 0 ? &rows[i - 1] : NULL;
		double c50 = bench_pct(r->call_ms, (size_t)r->n, 50, 0), c95 = bench_pct(r->call_ms, (size_t)r->n, 95, 0);
		double cp50 = cold ? bench_pct(cold->ms, (size_t)cold->n, 50, 0) : 0, ratio = cp50 > 0 ? p50 / cp50 : 0;
		fprintf(stderr, "%-10s %-8s %-6s %-8s %5d %6d %9.1f %9.1f %9.1f %9.1f %12.1f %9.1f %9.1f", r->provider,
			r->image, r->accel, r->start, r->n, r->failed, p50, p95, p99, mx, sp50, c50, c95);
		if (cold)
			fprintf(stderr, " %7.2fx", ratio);
		fputc('\n', stderr);
		if (r->failed)
			fprintf(stderr, "           last error: %s\n", r->last_error);
		if (r->miss)
			fprintf(stderr, "           %d start(s) not as the row says (template: booted cold; first: saved none)\n",
				r->miss);
		printf("%s{\"provider\":\"%s\",\"image\":\"%s\",\"accel\":\"%s\",\"version\":\"%s\",\"start\":\"%s\","
		       "\"n\":%d,\"failed\":%d,\"template_misses\":%d,\"p50_ms\":%.1f,\"p95_ms\":%.1f,\"p99_ms\":%.1f,"
		       "\"min_ms\":%.1f,\"max_ms\":%.1f,\"spawn_p50_ms\":%.1f,\"spawn_p95_ms\":%.1f,\"call_p50_ms\":%.1f,"
		       "\"call_p95_ms\":%.1f",
		       i ? "," : "", r->provider, r->image, r->accel, r->version, r->start, r->n, r->failed, r->miss, p50,
		       p95, p99, r->n ? r->ms[0] : 0, mx, sp50, sp95, c50, c95);
		if (cold)
			printf(",\"p50_vs_cold\":%.3f", ratio);
		printf("}");
	}
	for (int i = 0; i < nrows; i++) {
		free(rows[i].ms);
		free(rows[i].spawn_ms);
		free(rows[i].call_ms);
	}
	printf("],\"unavailable\":[%s]}\n", unavail);
	return 0;
}
