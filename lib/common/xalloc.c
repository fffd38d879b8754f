/* SPDX-License-Identifier: Apache-2.0
 * The allocation helpers of util.h, shared by libsilo and silo-agent (which
 * links this file without the rest of util.c). Running out of memory calls
 * silo_out_of_memory(), which each program defines: libsilo aborts (util.c),
 * the agent ends only the forked tar child that ran out (agent/agent_alloc.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		silo_out_of_memory();
	return p;
}

void *xcalloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);
	if (!p)
		silo_out_of_memory();
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *r = realloc(p, n ? n : 1);
	if (!r)
		silo_out_of_memory();
	return r;
}

char *xstrdup(const char *s)
{
	char *r = strdup(s ? s : "");
	if (!r)
		silo_out_of_memory();
	return r;
}

char *xstrndup(const char *s, size_t n)
{
	char *r = strndup(s, n);
	if (!r)
		silo_out_of_memory();
	return r;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		silo_out_of_memory();
	return s;
}
