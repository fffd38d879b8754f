/* SPDX-License-Identifier: Apache-2.0
 * Shared by the benchmarks in bench/: sorting and nearest-rank percentiles of
 * samples, the mean, elapsed time, a growable sample array, and the
 * fixed-capacity series with a failure count that run_latency and snapshot
 * report, a silod of its own for the benches that talk HTTP (started and
 * stopped), the printing of a bench's JSON document, and the command line: each
 * bench lists its options in one bench_opt table (one row an option) that
 * bench_opts parses.
 */
#ifndef SILO_BENCH_UTIL_H
#define SILO_BENCH_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static inline void bench_sort(double *v, size_t n)
{
	qsort(v, n, sizeof *v, bench_cmp_double);
}

/* The P-th percentile (0..100) of V[0..N) sorted ascending, nearest rank
 * (V[round(P/100 * (N-1))]); EMPTY when N is 0. */
static inline double bench_pct(const double *v, size_t n, double p, double empty)
{
	if (n == 0)
		return empty;
	size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

static inline double bench_mean(const double *v, size_t n)
{
	double t = 0;
	for (size_t i = 0; i < n; i++)
		t += v[i];
	return n ? t / (double)n : 0;
}

static inline double bench_ms_since(uint64_t t0)
{
	return (double)(now_mono_ns() - t0) / 1e6;
}

static inline double bench_us_since(uint64_t t0)
{
	return (double)(now_mono_ns() - t0) / 1000.0;
}

/* Run argv with stdio on /dev/null and NAME=VALUE added to its environment
 * (nothing added when NAME is NULL); wall ms, or -1 if it failed. */
static inline double bench_timed_run_env(char *const *argv, const char *name, const char *value)
{
	uint64_t t0 = now_mono_ns();
	pid_t p = fork();
	if (p < 0)
		return -1;
	if (p == 0) {
		int nul = open("/dev/null", O_RDWR);
		dup2(nul, 0), dup2(nul, 1), dup2(nul, 2);
		if (name && setenv(name, value, 1) < 0)
			_exit(127);
		execvp(argv[0], argv);
		_exit(127);
	}
	int st;
	while (waitpid(p, &st, 0) < 0 && errno == EINTR)
		;
	double ms = bench_ms_since(t0);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? ms : -1;
}

static inline double bench_timed_run(char *const *argv)
{
	return bench_timed_run_env(argv, NULL, NULL);
}

/* Append X to the growable array *V of *N samples. */
static inline void bench_append(double **v, int *n, double x)
{
	*v = realloc(*v, sizeof(double) * (size_t)(*n + 1));
	(*v)[(*n)++] = x;
}

/* Up to a fixed capacity of samples in ms; a negative sample counts as failed. */
typedef struct bench_series {
	double *ms;
	int n, failed;
} bench_series;

static inline bench_series bench_series_new(int cap)
{
	bench_series s = {xcalloc((size_t)cap, sizeof(double)), 0, 0};
	return s;
}

static inline void bench_series_add(bench_series *s, double ms)
{
	if (ms < 0)
		s->failed++;
	else
		s->ms[s->n++] = ms;
}

static inline double bench_series_pct(const bench_series *s, double p)
{
	return bench_pct(s->ms, (size_t)s->n, p, 0);
}

static inline double bench_series_mean(const bench_series *s)
{
	return bench_mean(s->ms, (size_t)s->n);
}

/* One option of a bench's command line: NAME as typed ("--runs", "-n") and what
 * it sets through PTR: BOPT_INT an int, BOPT_U64 a uint64_t (base 0: decimal,
 * 0x hex), BOPT_DOUBLE a double, BOPT_STR a const char * (argv's own string),
 * BOPT_TRUE / BOPT_FALSE a bool (no value), BOPT_LIST a bench_list (repeatable). */
typedef enum { BOPT_INT, BOPT_U64, BOPT_DOUBLE, BOPT_STR, BOPT_TRUE, BOPT_FALSE, BOPT_LIST } bench_opt_kind;

typedef struct bench_opt {
	const char *name;
	bench_opt_kind kind;
	void *ptr;
} bench_opt;

/* The values of a repeatable option, at most MAX of them in V. */
typedef struct bench_list {
	const char **v;
	int n, max;
} bench_list;

/* Parse ARGV[1..] against OPTS (ended by a row whose name is NULL): "NAME VALUE"
 * or "NAME=VALUE" for the valued kinds, "NAME" alone for the flags. Range checks
 * stay the caller's. "--help" prints "usage: USAGE" on stdout and exits 0; an
 * unknown option, a missing value or a list past its max prints it on stderr and
 * exits 2. */
static inline void bench_opts(int argc, char **argv, const bench_opt *opts, const char *usage)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help")) {
			printf("usage: %s\n", usage);
			exit(0);
		}
		const bench_opt *o = opts;
		size_t len = strcspn(argv[i], "=");
		while (o->name && (strlen(o->name) != len || strncmp(o->name, argv[i], len)))
			o++;
		bool flag = o->kind == BOPT_TRUE || o->kind == BOPT_FALSE;
		const char *v = argv[i][len] == '=' ? argv[i] + len + 1 : NULL;
		if (!o->name || (flag && v) || (!flag && !v && i + 1 >= argc)) {
			fprintf(stderr, "usage: %s\n", usage);
			exit(2);
		}
		if (!flag && !v)
			v = argv[++i];
		switch (o->kind) {
		case BOPT_INT: *(int *)o->ptr = atoi(v); break;
		case BOPT_U64: *(uint64_t *)o->ptr = strtoull(v, NULL, 0); break;
		case BOPT_DOUBLE: *(double *)o->ptr = atof(v); break;
		case BOPT_STR: *(const char **)o->ptr = v; break;
		case BOPT_TRUE: *(bool *)o->ptr = true; break;
		case BOPT_FALSE: *(bool *)o->ptr = false; break;
		case BOPT_LIST: {
			bench_list *l = o->ptr;
			if (l->n == l->max) {
				fprintf(stderr, "%s: at most %d\n", o->name, l->max);
				exit(2);
			}
			l->v[l->n++] = v;
			break;
		}
		}
	}
}

/* -n RUNS (1..100000) and --silo PATH, which defaults to cli/silo of the build tree
 * the bench runs from. 0 when usable, else the exit status (the error is printed). */
static inline int bench_args_silo(int argc, char **argv, const char *name, int *runs, char *silo, size_t len)
{
	const char *path = NULL;
	const bench_opt opts[] = {{"-n", BOPT_INT, runs}, {"--silo", BOPT_STR, &path}, {NULL, 0, NULL}};
	char usage[128];
	snprintf(usage, sizeof usage, "%s [-n RUNS] [--silo PATH]", name);
	bench_opts(argc, argv, opts, usage);
	snprintf(silo, len, "%s", path ? path : "");
	if (*runs < 1 || *runs > 100000)
		return fprintf(stderr, "%s: -n must be 1..100000\n", name), 2;
	if (!silo[0]) {
		/* bench/NAME -> cli/silo in the same build tree */
		char self[4096];
		ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
		if (n > 0) {
			self[n] = '\0';
			char *sl = strrchr(self, '/');
			if (sl)
				*sl = '\0';
			snprintf(silo, len, "%s/../cli/silo", self);
		}
	}
	if (access(silo, X_OK) < 0)
		return fprintf(stderr, "%s: %s: not found (build the tree or pass --silo)\n", name, silo), 1;
	return 0;
}


/* Fresh state and runtime dirs under TMP (a mkdtemp template, rewritten):
 * TMP/state and TMP/run, made and set as SILO_STATE_DIR and SILO_RUNTIME_DIR
 * in this process. -1 with errno on failure. */
static inline int bench_private_dirs(char *tmp)
{
	if (!mkdtemp(tmp))
		return -1;
	char state[PATH_MAX], run[PATH_MAX];
	snprintf(state, sizeof state, "%s/state", tmp);
	snprintf(run, sizeof run, "%s/run", tmp);
	if (mkdir_p(state, 0700) < 0 || mkdir_p(run, 0700) < 0)
		return -1;
	setenv("SILO_STATE_DIR", state, 1);
	setenv("SILO_RUNTIME_DIR", run, 1);
	return 0;
}

/* bench_private_dirs for a silod: SOCK gets its API socket's path. */
static inline int bench_silod_dirs(char *tmp, char *sock, size_t socklen)
{
	if (bench_private_dirs(tmp) < 0)
		return -1;
	snprintf(sock, socklen, "%s/silod.sock", getenv("SILO_RUNTIME_DIR"));
	return 0;
}

/* Start a silod (argv: path and options, NULL-terminated; stderr to /dev/null)
 * in fresh dirs (bench_silod_dirs). The pid, or -1. */
static inline pid_t bench_spawn_silod(char *const argv[], char *tmp, char *sock, size_t socklen)
{
	if (bench_silod_dirs(tmp, sock, socklen) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		if (fd >= 0)
			dup2(fd, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* Stop the silod of bench_spawn_silod (SIGTERM, reaped; none when pid <= 0)
 * and remove its dirs under TMP. */
static inline void bench_silod_stop(pid_t pid, const char *tmp)
{
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
	rm_rf(tmp);
}

/* The bench's result document on stdout: indented (JSON_INDENT(2) | flags),
 * one line break, flushed. doc stays the caller's. */
static inline void bench_print_json(json_t *doc, size_t flags)
{
	char *txt = json_dumps(doc, JSON_INDENT(2) | flags);
	printf("%s\n", txt);
	fflush(stdout);
	free(txt);
}

#endif
