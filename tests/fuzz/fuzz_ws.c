/* SPDX-License-Identifier: Apache-2.0
 * Fuzz the server side of a WebSocket (lib/common/ws.c) with bytes a hostile
 * client sends after the upgrade: every message handed out is at most
 * WS_MAX_MESSAGE bytes and text is UTF-8; no crash, leak or hang (the input
 * ends, so every ws_recv ends).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ssize_t rd(void *ud, void *b, size_t n)
{
	return read(*(int *)ud, b, n);
}

static ssize_t wr(void *ud, const void *b, size_t n)
{
	(void)ud, (void)b;
	return (ssize_t)n;   /* replies (pongs, close) go nowhere */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		abort();
	/* the first bytes arrive as "extra" (read with the HTTP request), the rest on the socket */
	size_t extra = size ? data[0] % 16 : 0;
	if (extra > size)
		extra = size;
	ws_io io = {rd, wr, sv[1], &sv[1]};
	ws_conn *c = ws_conn_new(&io, false, data, extra);
	size_t off = extra;
	while (off < size) {   /* a socketpair buffers well over the fuzzer's max_len */
		ssize_t k = write(sv[0], data + off, size - off);
		if (k <= 0)
			abort();
		off += (size_t)k;
	}
	shutdown(sv[0], SHUT_WR);
	for (;;) {
		int op;
		const uint8_t *d;
		size_t n;
		silo_error err;
		int r = ws_recv(c, &op, &d, &n, 1000, &err);
		if (r <= 0)
			break;
		if (n > WS_MAX_MESSAGE || (op != WS_TEXT && op != WS_BINARY) || (op == WS_TEXT && !ws_utf8_valid(d, n)))
			abort();
	}
	ws_conn_free(c);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
