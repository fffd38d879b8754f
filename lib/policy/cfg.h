/* SPDX-License-Identifier: Apache-2.0
 * Field helpers shared by the policy and tokens file parsers: errors that name the
 * file kind, line:column and field; names; bounded strings; reading and parsing
 * a whole file.
 */
#ifndef SILO_POLICY_CFG_H
#define SILO_POLICY_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "spec/toml.h"

/* INVALID_CONFIG "<what> L:C: field: message" (the key's position when known). */
int cfg_field_err(silo_error *err, const char *what, const toml_value *v, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
/* 1..max bytes of [A-Za-z0-9_-]. */
bool cfg_valid_name(const char *s, size_t max);
/* A string of 1..max bytes without NUL. */
int cfg_get_string(const char *what, const toml_value *v, const char *field, size_t max, const char **out,
		   silo_error *err);

/* A configuration file kind: parse() fills the zeroed out (size bytes) from the
 * TOML root and returns -1 with err set on the first bad field; release()
 * frees whatever a failed parse left in out. */
typedef struct cfg_file {
	const char *what; /* "policy file": leads every message */
	size_t size;
	int (*parse)(const toml_value *root, void *out, silo_error *err);
	void (*release)(void *out);
} cfg_file;
/* Parse text (len bytes) into out; on failure out is released (zeroed). */
int cfg_parse(const cfg_file *f, const char *text, size_t len, void *out, silo_error *err);
/* Read path (at most TOML_MAX_INPUT bytes) and cfg_parse it; errors name the path. */
int cfg_load(const cfg_file *f, const char *path, void *out, silo_error *err);

/* The public entry points of a file kind whose result type is T (policy_set,
 * token_set): T_parse(text, len, out, err) and T_load(path, out, err), over
 * the parser parse_fn, with T_free releasing a failed parse. */
#define CFG_FILE_DEFINE(T, what_, parse_fn)                                                                 \
	static void T##_release_(void *p)                                                                   \
	{                                                                                                   \
		T##_free(p);                                                                                \
	}                                                                                                   \
	static const cfg_file T##_file_ = {                                                                 \
		.what = (what_), .size = sizeof(T), .parse = (parse_fn), .release = T##_release_};          \
	int T##_parse(const char *text, size_t len, T *out, silo_error *err)                                \
	{                                                                                                   \
		return cfg_parse(&T##_file_, text, len, out, err);                                          \
	}                                                                                                   \
	int T##_load(const char *path, T *out, silo_error *err)                                             \
	{                                                                                                   \
		return cfg_load(&T##_file_, path, out, err);                                                \
	}

/* free() each of v[0..n) (not v itself). */
void cfg_free_strs(char **v, size_t n);
/* The index of name in names[0..n) (an op table), or -1 (also for NULL). */
int cfg_name_index(const char *const *names, int n, const char *name);
/* The names of the bits set in mask, "a, b, c", or "none"; cut at len. */
void cfg_names_list(const char *const *names, int n, uint32_t mask, char *buf, size_t len);

#endif
