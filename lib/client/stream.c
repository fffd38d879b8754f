/* SPDX-License-Identifier: Apache-2.0
 * Parsers of silod's streams for libsilo-client (see stream.h).
 */
#include "client/stream.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/util.h"

static int deliver(cl_lines *l, char *line, size_t n, cl_line_fn fn, void *ud, silo_error *err)
{
	line[n] = '\0';
	if (n && line[n - 1] == '\r')
		line[--n] = '\0';
	return fn(ud, line, n, err);
}

int cl_lines_feed(cl_lines *l, const char *p, size_t n, cl_line_fn fn, void *ud, silo_error *err)
{
	while (n) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;
		if (l->len + take > CL_LINE_MAX)
			return silo_fail(err, SILO_ERR_PROTOCOL, 0, "silod sent a line longer than %u bytes", CL_LINE_MAX);
		if (l->len + take + 1 > l->cap) {
			l->cap = MAX(l->cap * 2, l->len + take + 1);
			l->buf = xrealloc(l->buf, l->cap);
		}
		memcpy(l->buf + l->len, p, take);
		l->len += take;
		p += take;
		n -= take;
		if (!nl)
			break;
		p++, n--;
		size_t len = l->len;
		l->len = 0;
		int rc = deliver(l, l->buf, len, fn, ud, err);
		if (rc)
			return rc;
	}
	return 0;
}

int cl_lines_end(cl_lines *l, cl_line_fn fn, void *ud, silo_error *err)
{
	if (!l->len)
		return 0;
	size_t len = l->len;
	l->len = 0;
	if (len + 1 > l->cap) {
		l->buf = xrealloc(l->buf, len + 1);
		l->cap = len + 1;
	}
	return deliver(l, l->buf, len, fn, ud, err);
}

void cl_lines_free(cl_lines *l)
{
	free(l->buf);
	*l = (cl_lines){0};
}

void cl_error_from_body(long status, const char *body, size_t len, silo_error *err)
{
	json_t *o = body && len ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *e = json_object_get(o, "error");
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));
	const char *vm = json_string_value(json_object_get(e, "vm_id"));
	json_t *eno = json_object_get(e, "errno");
	silo_code sc = code ? silo_code_from_name(code) : SILO_ERR__COUNT;
	if (!code || !msg) {
		sc = status == 401 ? SILO_ERR_UNAUTHORIZED : status == 403 ? SILO_ERR_POLICY_DENIED
			: status == 404 ? SILO_ERR_NOT_FOUND : SILO_ERR_PROTOCOL;
		silo_fail(err, sc, 0, "silod answered HTTP %ld without an error body", status);
	} else {
		if (sc == SILO_ERR__COUNT) /* a code newer than this library: keep its name in the text */
			silo_fail(err, SILO_ERR_INTERNAL, 0, "%s: %s", code, msg);
		else
			silo_fail_vm(err, sc, 0, vm && *vm ? vm : NULL, "%s", msg);
		if (err && json_is_integer(eno) && json_integer_value(eno) > 0 && json_integer_value(eno) < 4096)
			err->sys_errno = (int)json_integer_value(eno);
	}
	json_decref(o);
}

static int64_t int_field(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

int cl_exec_line(const char *line, size_t len, silo_client_output_fn out, void *ud, silo_client_exit *res, bool *done,
		 silo_error *err)
{
	if (!len)
		return 0;
	json_error_t je;
	json_t *o = json_loadb(line, len, 0, &je);
	int rc = 0;
	if (!json_is_object(o)) {
		rc = silo_fail(err, SILO_ERR_PROTOCOL, 0, "silod sent an exec line that is not a JSON object: %s",
			       o ? "not an object" : je.text);
		goto out;
	}
	const char *stream = json_string_value(json_object_get(o, "stream"));
	json_t *ex = json_object_get(o, "exit_code");
	if (stream) {
		int which = !strcmp(stream, "stdout") ? SILO_CLIENT_STDOUT : !strcmp(stream, "stderr") ? SILO_CLIENT_STDERR : 0;
		const char *b64 = json_string_value(json_object_get(o, "data"));
		size_t blen = b64 ? strlen(b64) : 0;
		if (!which || !b64) {
			rc = silo_fail(err, SILO_ERR_PROTOCOL, 0, "silod sent an exec line with a bad stream or no data");
			goto out;
		}
		unsigned char *bin = xmalloc(blen / 4 * 3 + 3);
		size_t bin_len = 0;
		if (sodium_base642bin(bin, blen / 4 * 3 + 3, b64, blen, NULL, &bin_len, NULL,
				      sodium_base64_VARIANT_ORIGINAL) != 0) {
			free(bin);
			rc = silo_fail(err, SILO_ERR_PROTOCOL, 0, "silod sent an exec line whose data is not base64");
			goto out;
		}
		if (out && bin_len)
			rc = out(ud, which, bin, bin_len) ? 1 : 0;
		free(bin);
	} else if (json_is_integer(ex)) {
		if (res) {
			res->exit_code = (int)json_integer_value(ex);
			res->signal = (int)int_field(o, "signal");
			res->timed_out = json_is_true(json_object_get(o, "timed_out"));
			res->duration_ms = int_field(o, "duration_ms");
		}
		*done = true;
	} else if (json_is_object(json_object_get(o, "error"))) {
		cl_error_from_body(200, line, len, err);
		rc = -1;
	} else
		rc = silo_fail(err, SILO_ERR_PROTOCOL, 0, "silod sent an exec line of no known kind");
out:
	json_decref(o);
	return rc;
}

int cl_sse_line(cl_sse *s, const char *line, size_t len, silo_client_event_fn fn, void *ud, silo_error *err)
{
	if (!len) {
		if (!s->len)
			return 0;
		size_t n = s->len;
		s->len = 0;
		s->data[n] = '\0';
		return fn(ud, s->data, n) ? 1 : 0;
	}
	if (line[0] == ':' || len < 5 || memcmp(line, "data:", 5) != 0)
		return 0; /* a comment, id:, event:, retry: */
	const char *v = line + 5;
	size_t vl = len - 5;
	if (memchr(v, '\0', vl))
		return silo_fail(err, SILO_ERR_PROTOCOL, 0, "silod sent an event with a NUL byte in its data");
	if (vl && *v == ' ')
		v++, vl--;
	if (s->len + vl + 2 > CL_LINE_MAX)
		return silo_fail(err, SILO_ERR_PROTOCOL, 0, "silod sent an event larger than %u bytes", CL_LINE_MAX);
	if (s->len + vl + 2 > s->cap) {
		s->cap = MAX(s->cap * 2, s->len + vl + 2);
		s->data = xrealloc(s->data, s->cap);
	}
	if (s->len)
		s->data[s->len++] = '\n';
	memcpy(s->data + s->len, v, vl);
	s->len += vl;
	return 0;
}

void cl_sse_free(cl_sse *s)
{
	free(s->data);
	*s = (cl_sse){0};
}
