/* SPDX-License-Identifier: Apache-2.0
 * Fuzz what an E2B client sends to silod's envd plane (lib/e2b/connect.c):
 * a body of Connect envelopes (a StreamInput client stream) and each message
 * in it through every request decoder (StartRequest, StreamInputRequest,
 * SendInput's selector and input, SendSignal, Update's pty size). Checks: no
 * crash or leak; an envelope never reaches past the buffer nor above its
 * bound; a decoded start has argv[0] and bounded argv/env counts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "e2b/connect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode_all(const char *msg, size_t len)
{
	silo_error err;
	e2b_start_req st;
	if (e2b_start_parse(msg, len, &st, &err) == 0) {
		if (!st.argv || !st.argv[0])
			abort();
		size_t n = 0;
		while (st.argv[n])
			n++;
		if (n > E2B_ARGS_MAX)
			abort();
		e2b_start_free(&st);
	}
	e2b_si_event ev;
	if (e2b_stream_input_parse(msg, len, &ev, &err) == 0)
		free(ev.in.data);
	json_t *o = e2b_json_parse(msg, len, &err);
	if (o) {
		e2b_selector sel;
		e2b_input in;
		int sig;
		uint16_t r, c;
		bool present;
		(void)e2b_selector_parse(o, "process", &sel, &err);
		if (e2b_input_parse(o, "input", &in, &err) == 0) {
			if (in.len > E2B_MSG_MAX)
				abort();
			free(in.data);
		}
		(void)e2b_signal_parse(o, &sig, &err);
		(void)e2b_pty_size_parse(o, &r, &c, &present, &err);
		json_decref(o);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The whole input as one unary message, then as a stream of envelopes. */
	decode_all((const char *)data, size);
	size_t off = 0;
	while (off < size) {
		connect_env env;
		silo_error err;
		long n = connect_env_next(data + off, size - off, 1u << 16, &env, &err);
		if (n <= 0)
			break;
		if ((size_t)n > size - off || env.len > (1u << 16) || env.data + env.len > (const char *)data + size)
			abort();
		decode_all(env.data, env.len);
		off += (size_t)n;
	}
	return 0;
}
