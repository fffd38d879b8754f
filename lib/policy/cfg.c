/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "common/util.h"

int cfg_field_err(silo_error *err, const char *what, const toml_value *v, const char *field, const char *fmt, ...)
{
	char msg[700];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	int line = v ? (v->kline ? v->kline : v->line) : 0, col = v ? (v->kline ? v->kcol : v->col) : 0;
	if (line)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s %d:%d: %s: %s", what, line, col, field, msg);
	return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: %s: %s", what, field, msg);
}

bool cfg_valid_name(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '-' || *p == '_'))
			return false;
	return true;
}

int cfg_get_string(const char *what, const toml_value *v, const char *field, size_t max, const char **out,
		   silo_error *err)
{
	if (v->type != TOML_STRING)
		return cfg_field_err(err, what, v, field, "expected a string, got %s", toml_type_name(v->type));
	if (strlen(v->u.str.ptr) != v->u.str.len || v->u.str.len == 0 || v->u.str.len > max)
		return cfg_field_err(err, what, v, field, "expected 1-%zu bytes without NUL", max);
	*out = v->u.str.ptr;
	return 0;
}

void cfg_free_strs(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
}

int cfg_name_index(const char *const *names, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (name && !strcmp(name, names[i]))
			return i;
	return -1;
}

void cfg_names_list(const char *const *names, int n, uint32_t mask, char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = '\0';
	for (int i = 0; i < n && off < len; i++)
		if (mask & (1u << i))
			off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "", names[i]);
	if (!off)
		snprintf(buf, len, "none");
}

int cfg_parse(const cfg_file *f, const char *text, size_t len, void *out, silo_error *err)
{
	memset(out, 0, f->size);
	char perr[512];
	toml_value *root = toml_parse(text, len, perr, sizeof perr);
	if (!root)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s %s", f->what, perr);
	int rc = f->parse(root, out, err);
	toml_free(root);
	if (rc < 0)
		f->release(out);
	return rc;
}

int cfg_load(const cfg_file *f, const char *path, void *out, silo_error *err)
{
	char *text;
	size_t len;
	if (read_file(path, TOML_MAX_INPUT, &text, &len, err) < 0) {
		silo_error_prefix(err, "%s %s", f->what, path);
		return -1;
	}
	int rc = cfg_parse(f, text, len, out, err);
	free(text);
	if (rc < 0)
		silo_error_prefix(err, "%s", path);
	return rc;
}
