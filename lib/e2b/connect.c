/* SPDX-License-Identifier: Apache-2.0
 * Connect envelopes, Connect errors and envd's request messages (connect.h).
 * Every function here is pure; the daemon (daemon/e2b_*.c) does the I/O.
 */
#include "e2b/connect.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

long connect_env_next(const void *buf, size_t len, uint32_t max, connect_env *out, silo_error *err)
{
	const uint8_t *b = buf;
	if (len < CONNECT_ENV_HDR)
		return 0;
	uint8_t flags = b[0];
	if (flags & ~(CONNECT_FLAG_COMPRESSED | CONNECT_FLAG_END))
		return silo_fail(err, SILO_ERR_PROTOCOL, 0, "Connect envelope: unknown flags 0x%02x", flags);
	if (flags & CONNECT_FLAG_COMPRESSED)
		return silo_fail(err, SILO_ERR_PROTOCOL, 0,
				 "Connect envelope: compressed message (no compression was negotiated)");
	uint32_t n = (uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4];
	if (n > max)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0,
				 "Connect envelope: message of %u bytes is above the limit of %u", n, max);
	if (len - CONNECT_ENV_HDR < n)
		return 0;
	out->flags = flags;
	out->data = (const char *)b + CONNECT_ENV_HDR;
	out->len = n;
	return (long)(CONNECT_ENV_HDR + n);
}

void connect_env_header(uint8_t hdr[CONNECT_ENV_HDR], uint8_t flags, uint32_t len)
{
	hdr[0] = flags;
	hdr[1] = (uint8_t)(len >> 24);
	hdr[2] = (uint8_t)(len >> 16);
	hdr[3] = (uint8_t)(len >> 8);
	hdr[4] = (uint8_t)len;
}

/* ---- errors: one table, silo code -> Connect code ---- */

static const struct {
	silo_code code;
	const char *connect;
} code_map[] = {
	{SILO_ERR_INVALID_CONFIG, "invalid_argument"},
	{SILO_ERR_RESOURCE_EXCEEDED, "resource_exhausted"},
	{SILO_ERR_MAX_VMS_EXCEEDED, "resource_exhausted"},
	{SILO_ERR_BOOT_TIMEOUT, "deadline_exceeded"},
	{SILO_ERR_VM_NOT_FOUND, "not_found"},
	{SILO_ERR_VSOCK_DISCONNECTED, "unavailable"},
	{SILO_ERR_POLICY_DENIED, "permission_denied"},
	{SILO_ERR_SECURITY_VIOLATION, "permission_denied"},
	{SILO_ERR_PROVIDER_UNAVAILABLE, "unavailable"},
	{SILO_ERR_TIMEOUT, "deadline_exceeded"},
	{SILO_ERR_PROTOCOL, "invalid_argument"},
	{SILO_ERR_UNAUTHORIZED, "unauthenticated"},
	{SILO_ERR_CONFLICT, "failed_precondition"},
	{SILO_ERR_NOT_SUPPORTED, "unimplemented"},
	{SILO_ERR_FILE_NOT_FOUND, "not_found"},
	{SILO_ERR_PROCESS_NOT_FOUND, "not_found"},
	{SILO_ERR_NOT_FOUND, "not_found"},
	{SILO_ERR_METHOD_NOT_ALLOWED, "unimplemented"},
	{SILO_ERR_PAYLOAD_TOO_LARGE, "resource_exhausted"},
	{SILO_ERR_UNSUPPORTED_MEDIA_TYPE, "invalid_argument"},
};

/* Connect's HTTP status per code (the protocol's table). */
static const struct {
	const char *name;
	unsigned status;
} status_map[] = {
	{"canceled", 499},          {"unknown", 500},          {"invalid_argument", 400}, {"deadline_exceeded", 504},
	{"not_found", 404},         {"already_exists", 409},   {"permission_denied", 403}, {"resource_exhausted", 429},
	{"failed_precondition", 400}, {"aborted", 409},        {"out_of_range", 400},     {"unimplemented", 501},
	{"internal", 500},          {"unavailable", 503},      {"data_loss", 500},        {"unauthenticated", 401},
};

const char *connect_code(silo_code code)
{
	for (size_t i = 0; i < sizeof code_map / sizeof code_map[0]; i++)
		if (code_map[i].code == code)
			return code_map[i].connect;
	return code == SILO_OK ? "unknown" : "internal";
}

unsigned connect_http_status(const char *name)
{
	for (size_t i = 0; i < sizeof status_map / sizeof status_map[0]; i++)
		if (!strcmp(status_map[i].name, name))
			return status_map[i].status;
	return 500;
}

json_t *connect_error_json(const silo_error *err)
{
	/* EEXIST on a create (MakeDir) is Connect's already_exists, which the SDK
	 * turns into "false" rather than an error. */
	const char *c = err->code == SILO_ERR_CONFLICT && err->sys_errno == EEXIST ? "already_exists"
										   : connect_code(err->code);
	return json_pack("{s:s,s:s}", "code", c, "message", err->message);
}

/* ---- JSON ---- */

json_t *e2b_json_parse(const char *buf, size_t len, silo_error *err)
{
	json_error_t je;
	json_t *o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!o) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "request message: invalid JSON at byte %d: %s", je.position,
			  je.text);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "request message: expected a JSON object");
		return NULL;
	}
	return o;
}

static json_t *member(json_t *obj, const char *camel, const char *snake)
{
	json_t *v = json_object_get(obj, camel);
	if ((!v || json_is_null(v)) && snake)
		v = json_object_get(obj, snake);
	return v && !json_is_null(v) ? v : NULL;
}

int e2b_json_string(json_t *obj, const char *camel, const char *snake, size_t max, const char **out,
		    silo_error *err)
{
	json_t *v = member(obj, camel, snake);
	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_string(v))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: expected a string", camel);
	size_t n = json_string_length(v);
	if (n > max)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: longer than %zu bytes", camel, max);
	if (memchr(json_string_value(v), 0, n))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: contains a NUL byte", camel);
	*out = json_string_value(v);
	return 0;
}

int e2b_json_bool(json_t *obj, const char *camel, const char *snake, bool *out, silo_error *err)
{
	json_t *v = member(obj, camel, snake);
	*out = false;
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: expected true or false", camel);
	*out = json_is_true(v);
	return 0;
}

int e2b_json_u32(json_t *obj, const char *camel, const char *snake, uint32_t *out, silo_error *err)
{
	json_t *v = member(obj, camel, snake);
	*out = 0;
	if (!v)
		return 0;
	if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= UINT32_MAX) {
		*out = (uint32_t)json_integer_value(v);
		return 0;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t n = json_string_length(v);
		uint64_t x = 0;
		if (n && n <= 10 && strspn(s, "0123456789") == n) {
			for (size_t i = 0; i < n; i++)
				x = x * 10 + (uint64_t)(s[i] - '0');
			if (x <= UINT32_MAX) {
				*out = (uint32_t)x;
				return 0;
			}
		}
	}
	return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: expected an unsigned 32-bit integer", camel);
}

int e2b_json_bytes(json_t *obj, const char *name, size_t max, uint8_t **out, size_t *len, silo_error *err)
{
	*out = NULL;
	*len = 0;
	json_t *v = member(obj, name, NULL);
	if (!v)
		return 0;
	if (!json_is_string(v))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: expected base64 bytes", name);
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	if (n == 0)
		return 0;
	if (n / 4 * 3 > max + 2)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0, "%s: more than %zu bytes", name, max);
	uint8_t *b = xmalloc(n / 4 * 3 + 3);
	static const int variants[] = {sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
				       sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
	for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
		size_t got = 0;
		const char *end = NULL;
		if (sodium_base642bin(b, n / 4 * 3 + 3, s, n, NULL, &got, &end, variants[i]) == 0 && end == s + n) {
			if (got > max)
				break;
			*out = b;
			*len = got;
			return 0;
		}
	}
	free(b);
	return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: not base64 (or more than %zu bytes)", name, max);
}

char *e2b_base64(const void *buf, size_t len)
{
	size_t n = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
	char *s = xmalloc(n);
	sodium_bin2base64(s, n, buf, len, sodium_base64_VARIANT_ORIGINAL);
	return s;
}

/* ---- process.proto ---- */

int e2b_selector_parse(json_t *obj, const char *field, e2b_selector *out, silo_error *err)
{
	memset(out, 0, sizeof *out);
	json_t *s = member(obj, field, NULL);
	if (!s || !json_is_object(s))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: expected a process selector {pid | tag}", field);
	const char *tag;
	if (e2b_json_string(s, "tag", NULL, E2B_TAG_MAX, &tag, err) < 0 ||
	    e2b_json_u32(s, "pid", NULL, &out->pid, err) < 0) {
		silo_error_prefix(err, "%s", field);
		return -1;
	}
	if (tag && member(s, "pid", NULL))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: give pid or tag, not both", field);
	if (tag) {
		if (!*tag)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s.tag: empty", field);
		out->by_tag = true;
		snprintf(out->tag, sizeof out->tag, "%s", tag);
	} else if (!out->pid) {
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: expected a pid (> 0) or a tag", field);
	}
	return 0;
}

void e2b_start_free(e2b_start_req *r)
{
	strv_free(r->argv);
	strv_free(r->env);
	free(r->cwd);
	free(r->tag);
	memset(r, 0, sizeof *r);
}

static int start_process(json_t *p, e2b_start_req *out, silo_error *err)
{
	const char *cmd, *cwd;
	if (e2b_json_string(p, "cmd", NULL, E2B_STR_MAX, &cmd, err) < 0 ||
	    e2b_json_string(p, "cwd", NULL, E2B_STR_MAX, &cwd, err) < 0)
		return -1;
	if (!cmd || !*cmd)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "cmd: required");
	if (cwd && *cwd)
		out->cwd = xstrdup(cwd);
	json_t *args = member(p, "args", NULL);
	if (args && !json_is_array(args))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "args: expected an array of strings");
	size_t na = args ? json_array_size(args) : 0;
	if (na >= E2B_ARGS_MAX)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "args: at most %u entries", E2B_ARGS_MAX - 1);
	out->argv = xcalloc(na + 2, sizeof *out->argv);
	out->argv[0] = xstrdup(cmd);
	for (size_t i = 0; i < na; i++) {
		json_t *a = json_array_get(args, i);
		if (!json_is_string(a) || json_string_length(a) > E2B_STR_MAX ||
		    memchr(json_string_value(a), 0, json_string_length(a)))
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
					 "args[%zu]: expected a string of at most %u bytes without NUL", i, E2B_STR_MAX);
		out->argv[i + 1] = xstrdup(json_string_value(a));
	}
	json_t *envs = member(p, "envs", NULL);
	if (envs && !json_is_object(envs))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "envs: expected an object of strings");
	size_t ne = envs ? json_object_size(envs) : 0;
	if (ne > E2B_ENVS_MAX)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "envs: at most %u entries", E2B_ENVS_MAX);
	if (ne) {
		out->env = xcalloc(ne + 1, sizeof *out->env);
		size_t i = 0;
		const char *k;
		json_t *v;
		json_object_foreach(envs, k, v) {
			if (!*k || strchr(k, '=') || strlen(k) > 256 || !json_is_string(v) ||
			    json_string_length(v) > E2B_STR_MAX || memchr(json_string_value(v), 0, json_string_length(v)))
				return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
						 "envs.%.64s: expected a name (1-256 bytes, no '=') and a string value", k);
			out->env[i++] = xasprintf("%s=%s", k, json_string_value(v));
		}
	}
	return 0;
}

int e2b_pty_size_parse(json_t *obj, uint16_t *rows, uint16_t *cols, bool *present, silo_error *err)
{
	*rows = *cols = 0;
	*present = false;
	json_t *pty = member(obj, "pty", NULL);
	if (!pty)
		return 0;
	if (!json_is_object(pty))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "pty: expected an object");
	*present = true;
	json_t *size = member(pty, "size", NULL);
	if (!size)
		return 0;
	if (!json_is_object(size))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "pty.size: expected {rows, cols}");
	uint32_t r, c;
	if (e2b_json_u32(size, "rows", NULL, &r, err) < 0 || e2b_json_u32(size, "cols", NULL, &c, err) < 0) {
		silo_error_prefix(err, "pty.size");
		return -1;
	}
	if (r > 4096 || c > 4096)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "pty.size: rows and cols are at most 4096");
	*rows = (uint16_t)r;
	*cols = (uint16_t)c;
	return 0;
}

int e2b_start_parse(const char *buf, size_t len, e2b_start_req *out, silo_error *err)
{
	memset(out, 0, sizeof *out);
	json_t *o = e2b_json_parse(buf, len, err);
	if (!o)
		return -1;
	int rc = -1;
	json_t *p = member(o, "process", NULL);
	const char *tag;
	if (!p || !json_is_object(p)) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "process: required (cmd, args, envs, cwd)");
		goto out;
	}
	if (start_process(p, out, err) < 0) {
		silo_error_prefix(err, "process");
		goto out;
	}
	if (e2b_pty_size_parse(o, &out->rows, &out->cols, &out->pty, err) < 0 ||
	    e2b_json_string(o, "tag", NULL, E2B_TAG_MAX, &tag, err) < 0 ||
	    e2b_json_bool(o, "stdin", NULL, &out->stdin_open, err) < 0)
		goto out;
	if (tag && *tag)
		out->tag = xstrdup(tag);
	rc = 0;
out:
	json_decref(o);
	if (rc < 0)
		e2b_start_free(out);
	return rc;
}

int e2b_input_parse(json_t *obj, const char *field, e2b_input *out, silo_error *err)
{
	memset(out, 0, sizeof *out);
	json_t *in = member(obj, field, NULL);
	if (!in)
		return 0;   /* an empty input is no bytes */
	if (!json_is_object(in))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: expected {stdin | pty}", field);
	bool s = member(in, "stdin", NULL) != NULL, p = member(in, "pty", NULL) != NULL;
	if (s && p)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: give stdin or pty, not both", field);
	out->pty = p;
	if (e2b_json_bytes(in, p ? "pty" : "stdin", E2B_MSG_MAX, &out->data, &out->len, err) < 0) {
		silo_error_prefix(err, "%s", field);
		return -1;
	}
	return 0;
}

int e2b_signal_parse(json_t *obj, int *sig, silo_error *err)
{
	json_t *v = member(obj, "signal", NULL);
	*sig = 0;
	if (v && json_is_string(v)) {
		const char *s = json_string_value(v);
		if (!strcmp(s, "SIGNAL_SIGKILL"))
			*sig = 9;
		else if (!strcmp(s, "SIGNAL_SIGTERM"))
			*sig = 15;
	} else if (v && json_is_integer(v) && (json_integer_value(v) == 9 || json_integer_value(v) == 15)) {
		*sig = (int)json_integer_value(v);
	}
	if (!*sig)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "signal: expected SIGNAL_SIGKILL or SIGNAL_SIGTERM");
	return 0;
}

int e2b_stream_input_parse(const char *json, size_t len, e2b_si_event *out, silo_error *err)
{
	memset(out, 0, sizeof *out);
	json_t *o = e2b_json_parse(json, len, err);
	if (!o)
		return -1;
	int rc = -1;
	json_t *st = member(o, "start", NULL), *data = member(o, "data", NULL), *ka = member(o, "keepalive", NULL);
	if ((st != NULL) + (data != NULL) + (ka != NULL) != 1) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "StreamInputRequest: expected one of start, data, keepalive");
		goto out;
	}
	if (st) {
		out->kind = E2B_SI_START;
		if (!json_is_object(st) || e2b_selector_parse(st, "process", &out->sel, err) < 0) {
			if (!json_is_object(st))
				silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "start: expected an object");
			goto out;
		}
	} else if (data) {
		out->kind = E2B_SI_DATA;
		if (!json_is_object(data)) {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "data: expected an object");
			goto out;
		}
		if (e2b_input_parse(data, "input", &out->in, err) < 0)
			goto out;
	} else {
		out->kind = E2B_SI_KEEPALIVE;
	}
	rc = 0;
out:
	json_decref(o);
	return rc;
}
