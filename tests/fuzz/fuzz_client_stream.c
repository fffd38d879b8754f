/* SPDX-License-Identifier: Apache-2.0
 * Fuzz libsilo-client's parsers of silod's bytes (lib/client/stream.c) with a
 * hostile server's answer: the body split into chunks at arbitrary places
 * (the first byte picks the chunk size), through the line splitter into the
 * exec-line parser and the server-sent-events parser, and the whole input as
 * an error body. Checks: every line handed out is at most CL_LINE_MAX bytes
 * and has no '\n'; output chunks are non-empty and of a known stream; an exit
 * line ends the stream (a later line fails); an error always carries a valid
 * code and a NUL-terminated message; no crash, leak or hang.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct st {
	cl_sse sse;
	bool done;
	silo_client_exit res;
	size_t out_bytes;
} st;

static int on_out(void *ud, int stream, const void *d, size_t len)
{
	st *s = ud;
	if ((stream != SILO_CLIENT_STDOUT && stream != SILO_CLIENT_STDERR) || !len)
		abort();
	s->out_bytes += len;
	return 0;
}

static int on_event(void *ud, const char *json, size_t len)
{
	if (strlen(json) != len)
		abort();
	return 0;
}

static int line(void *ud, char *l, size_t len, silo_error *err)
{
	st *s = ud;
	if (len > CL_LINE_MAX || memchr(l, '\n', len) || l[len] != '\0')
		abort();
	if (cl_sse_line(&s->sse, l, len, on_event, s, err) < 0)
		return -1;
	if (s->done)
		return 0;
	return cl_exec_line(l, len, on_out, s, &s->res, &s->done, err) < 0 ? 0 : 0;
}

static void check_err(const silo_error *e)
{
	if (e->code <= SILO_OK || e->code >= SILO_ERR__COUNT || !memchr(e->message, '\0', sizeof e->message))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	size_t chunk = (size_t)data[0] % 64 + 1;
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	st s = {0};
	cl_lines l = {0};
	silo_error err = {0};
	int rc = 0;
	for (size_t off = 0; off < n && rc == 0; off += chunk)
		rc = cl_lines_feed(&l, p + off, off + chunk <= n ? chunk : n - off, line, &s, &err);
	if (rc == 0)
		rc = cl_lines_end(&l, line, &s, &err);
	if (rc < 0)
		check_err(&err);
	cl_lines_free(&l);
	cl_sse_free(&s.sse);
	silo_error e2 = {0};
	cl_error_from_body(400 + data[0] % 200, p, n, &e2);
	check_err(&e2);
	return 0;
}
