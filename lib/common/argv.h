/* SPDX-License-Identifier: Apache-2.0
 * Building the argument vector of a helper process (argv.c): a NULL-terminated
 * strv (util.h; free with strv_free, or cleanup_strv) that starts as NULL. Every
 * argument is copied; out of memory is silo_out_of_memory().
 */
#ifndef SILO_COMMON_ARGV_H
#define SILO_COMMON_ARGV_H

void argv_add(char ***v, const char *s);
void argv_addf(char ***v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Several arguments, up to a NULL. */
void argv_addv(char ***v, ...) __attribute__((sentinel));
/* An option and its formatted value: "--opt" "value". */
void argv_optf(char ***v, const char *opt, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
