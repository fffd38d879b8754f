/* SPDX-License-Identifier: Apache-2.0
 * Argument vectors of helper processes (argv.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/argv.h"
#include "common/util.h"

void argv_add(char ***v, const char *s)
{
	strv_push(v, xstrdup(s));
}

__attribute__((format(printf, 1, 0))) static char *vformat(const char *fmt, va_list ap)
{
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		silo_out_of_memory();
	return s;
}

void argv_addf(char ***v, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	strv_push(v, vformat(fmt, ap));
	va_end(ap);
}

void argv_addv(char ***v, ...)
{
	va_list ap;
	va_start(ap, v);
	for (const char *s; (s = va_arg(ap, const char *));)
		argv_add(v, s);
	va_end(ap);
}

void argv_optf(char ***v, const char *opt, const char *fmt, ...)
{
	argv_add(v, opt);
	va_list ap;
	va_start(ap, fmt);
	strv_push(v, vformat(fmt, ap));
	va_end(ap);
}
