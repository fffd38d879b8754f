/* SPDX-License-Identifier: Apache-2.0
 * Shared by bench/vmm_boot.c and bench/vmm_snapshot.c: silo-vmm's metrics line
 * ("silo-vmm: metrics {...}" on stderr at exit) into per-step samples, printed as
 * p50/p95/p99. "steps" are us since process start, "step_us" what each step took
 * (docs/vmm.md "Start-up").
 */
#ifndef SILO_BENCH_VMM_BENCH_H
#define SILO_BENCH_VMM_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "common/util.h"

#define VMM_BENCH_MAX_STEPS 40

/* Each step's samples by name, in first-seen order. */
typedef struct vmm_steps {
	char *name[VMM_BENCH_MAX_STEPS];
	double *v[VMM_BENCH_MAX_STEPS];
	int n[VMM_BENCH_MAX_STEPS], count;
} vmm_steps;

static inline void vmm_steps_add(vmm_steps *t, const char *name, double v)
{
	int i;
	for (i = 0; i < t->count && strcmp(t->name[i], name); i++)
		;
	if (i == t->count && t->count < VMM_BENCH_MAX_STEPS)
		t->name[t->count++] = xstrdup(name);
	if (i < t->count)
		bench_append(&t->v[i], &t->n[i], v);
}

/* "key":{"a":1,"b":2} of a metrics line into t. */
static inline void vmm_steps_parse(vmm_steps *t, const char *text, const char *key)
{
	char k[32];
	snprintf(k, sizeof k, "\"%s\":{", key);
	const char *p = strstr(text, k);
	if (!p)
		return;
	for (p += strlen(k); *p == '"';) {
		const char *e = strchr(p + 1, '"');
		if (!e || e[1] != ':')
			return;
		char name[64];
		snprintf(name, sizeof name, "%.*s", (int)(e - p - 1), p + 1);
		char *end;
		double v = strtod(e + 2, &end);
		vmm_steps_add(t, name, v);
		p = *end == ',' ? end + 1 : end;
	}
}

static inline void vmm_pct3(const char *indent, const char *name, double *v, int n, bool comma)
{
	bench_sort(v, (size_t)n);
	printf("%s\"%s\": {\"n\": %d, \"p50\": %.0f, \"p95\": %.0f, \"p99\": %.0f}%s\n", indent, name, n,
	       bench_pct(v, (size_t)n, 50, -1), bench_pct(v, (size_t)n, 95, -1), bench_pct(v, (size_t)n, 99, -1),
	       comma ? "," : "");
}

/* "key": {"step": {...}, ...} at indent (indent + 2 spaces for the steps). */
static inline void vmm_steps_print(const char *indent, const char *key, vmm_steps *t, bool comma)
{
	char in2[32];
	snprintf(in2, sizeof in2, "%s  ", indent);
	printf("%s\"%s\": {\n", indent, key);
	for (int i = 0; i < t->count; i++)
		vmm_pct3(in2, t->name[i], t->v[i], t->n[i], i + 1 < t->count);
	printf("%s}%s\n", indent, comma ? "," : "");
}

#endif
