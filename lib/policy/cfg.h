/* SPDX-License-Identifier: Apache-2.0
 * Field helpers shared by the policy and tokens file parsers: errors that name the
 * file kind, line:column and field; names; bounded strings.
 */
#ifndef SILO_POLICY_CFG_H
#define SILO_POLICY_CFG_H

#include <stdbool.h>
#include <stddef.h>

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

#endif
