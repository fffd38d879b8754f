/* SPDX-License-Identifier: Apache-2.0
 * lib/e2b/connect.c: Connect envelopes and envd's request messages, every
 * refusal named (docs/e2b.md "Errors and bounds").
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "e2b/connect.h"
#include "harness.h"

static size_t env(uint8_t *out, uint8_t flags, const char *json)
{
	size_t n = strlen(json);
	connect_env_header(out, flags, (uint32_t)n);
	memcpy(out + CONNECT_ENV_HDR, json, n);
	return n + CONNECT_ENV_HDR;
}

TEST(envelopes_are_bounded_before_their_bytes)
{
	uint8_t b[64];
	connect_env e;
	silo_error err;
	size_t n = env(b, 0, "{\"a\":1}");
	CHECK_INT_EQ(connect_env_next(b, n, 100, &e, &err), (long)n);
	CHECK_INT_EQ(e.len, 7);
	CHECK(!memcmp(e.data, "{\"a\":1}", 7));
	/* partial: header, then a body shorter than announced */
	CHECK_INT_EQ(connect_env_next(b, 4, 100, &e, &err), 0);
	CHECK_INT_EQ(connect_env_next(b, n - 1, 100, &e, &err), 0);
	/* 2 GiB announced: refused on the header alone */
	const uint8_t big[5] = {0, 0x7f, 0xff, 0xff, 0xff};
	CHECK_INT_EQ(connect_env_next(big, 5, E2B_MSG_MAX, &e, &err), -1);
	CHECK_INT_EQ(err.code, SILO_ERR_RESOURCE_EXCEEDED);
	CHECK_CONTAINS(err.message, "above the limit");
	/* compressed and unknown flags */
	n = env(b, CONNECT_FLAG_COMPRESSED, "{}");
	CHECK_INT_EQ(connect_env_next(b, n, 100, &e, &err), -1);
	CHECK_CONTAINS(err.message, "compressed");
	n = env(b, 0x80, "{}");
	CHECK_INT_EQ(connect_env_next(b, n, 100, &e, &err), -1);
	CHECK_INT_EQ(err.code, SILO_ERR_PROTOCOL);
	/* end of stream */
	n = env(b, CONNECT_FLAG_END, "{}");
	CHECK_INT_EQ(connect_env_next(b, n, 100, &e, &err), (long)n);
	CHECK_INT_EQ(e.flags, CONNECT_FLAG_END);
}

TEST(connect_codes_and_statuses)
{
	CHECK_STR_EQ(connect_code(SILO_ERR_PROCESS_NOT_FOUND), "not_found");
	CHECK_STR_EQ(connect_code(SILO_ERR_INVALID_CONFIG), "invalid_argument");
	CHECK_STR_EQ(connect_code(SILO_ERR_UNAUTHORIZED), "unauthenticated");
	CHECK_STR_EQ(connect_code(SILO_ERR_INTERNAL), "internal");
	CHECK_INT_EQ(connect_http_status("not_found"), 404);
	CHECK_INT_EQ(connect_http_status("resource_exhausted"), 429);
	CHECK_INT_EQ(connect_http_status("nonsense"), 500);
	silo_error err;
	silo_fail(&err, SILO_ERR_CONFLICT, EEXIST, "exists");
	json_t *j = connect_error_json(&err);
	CHECK_STR_EQ(json_string_value(json_object_get(j, "code")), "already_exists");
	json_decref(j);
}

static int start(const char *json, e2b_start_req *r, silo_error *err)
{
	return e2b_start_parse(json, strlen(json), r, err);
}

TEST(start_requests)
{
	e2b_start_req r;
	silo_error err;
	REQUIRE(start("{\"process\":{\"cmd\":\"/bin/bash\",\"args\":[\"-l\",\"-c\",\"echo hi\"],\"envs\":{\"A\":\"b c\"},"
		      "\"cwd\":\"/tmp\"},\"pty\":{\"size\":{\"rows\":24,\"cols\":80}},\"tag\":\"t\",\"stdin\":true}",
		      &r, &err) == 0);
	CHECK_STR_EQ(r.argv[0], "/bin/bash");
	CHECK_STR_EQ(r.argv[3], "echo hi");
	CHECK(r.argv[4] == NULL);
	CHECK_STR_EQ(r.env[0], "A=b c");
	CHECK_STR_EQ(r.cwd, "/tmp");
	CHECK(r.pty && r.rows == 24 && r.cols == 80 && r.stdin_open);
	CHECK_STR_EQ(r.tag, "t");
	e2b_start_free(&r);
	/* refusals name the field (NULL: refused, no field to name) */
	static const struct {
		const char *json, *field;
	} bad[] = {
		{"{}", "process"},
		{"{\"process\":{\"args\":[]}}", "cmd"},
		{"{\"process\":{\"cmd\":\"x\",\"args\":[1]}}", "args[0]"},
		{"{\"process\":{\"cmd\":\"x\",\"envs\":{\"A=B\":\"c\"}}}", "envs.A=B"},
		{"{\"process\":{\"cmd\":\"a\\u0000b\"}}", "NUL"},
		{"{\"process\":{\"cmd\":\"x\"},\"pty\":{\"size\":{\"rows\":5000,\"cols\":1}}}", "pty.size"},
		{"{\"process\":{\"cmd\":\"x\"},\"process\":{\"cmd\":\"y\"}}", NULL},
		{"[1]", NULL},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK_INT_EQ(start(bad[i].json, &r, &err), -1);
		if (bad[i].field)
			CHECK_CONTAINS(err.message, bad[i].field);
	}
	/* too many args */
	size_t cap = 64 + (size_t)E2B_ARGS_MAX * 4;
	char *big = malloc(cap);
	REQUIRE(big);
	strcpy(big, "{\"process\":{\"cmd\":\"x\",\"args\":[");
	for (unsigned i = 0; i < E2B_ARGS_MAX; i++)
		strcat(big, i ? ",\"a\"" : "\"a\"");
	strcat(big, "]}}");
	CHECK_INT_EQ(start(big, &r, &err), -1);
	CHECK_CONTAINS(err.message, "at most");
	free(big);
}

TEST(selectors_inputs_signals)
{
	silo_error err;
	e2b_selector s;
	json_t *o = json_loads("{\"process\":{\"pid\":42},\"input\":{\"stdin\":\"aGVsbG8\"},\"signal\":\"SIGNAL_SIGTERM\"}", 0,
			       NULL);
	REQUIRE(o);
	REQUIRE(e2b_selector_parse(o, "process", &s, &err) == 0);
	CHECK(!s.by_tag && s.pid == 42);
	e2b_input in;
	REQUIRE(e2b_input_parse(o, "input", &in, &err) == 0);   /* unpadded base64 */
	CHECK(in.len == 5 && !memcmp(in.data, "hello", 5) && !in.pty);
	free(in.data);
	int sig;
	REQUIRE(e2b_signal_parse(o, &sig, &err) == 0);
	CHECK_INT_EQ(sig, 15);
	json_decref(o);
	o = json_loads("{\"process\":{\"pid\":1,\"tag\":\"x\"},\"input\":{\"pty\":\"_-8\"},\"signal\":\"SIGNAL_SIGHUP\"}", 0,
		       NULL);
	CHECK_INT_EQ(e2b_selector_parse(o, "process", &s, &err), -1);
	CHECK_CONTAINS(err.message, "not both");
	REQUIRE(e2b_input_parse(o, "input", &in, &err) == 0);   /* URL-safe alphabet */
	CHECK(in.pty && in.len == 2 && in.data[0] == 0xff && in.data[1] == 0xef);
	free(in.data);
	CHECK_INT_EQ(e2b_signal_parse(o, &sig, &err), -1);
	CHECK_CONTAINS(err.message, "signal");
	json_decref(o);
	o = json_loads("{\"process\":{},\"input\":{\"stdin\":\"!!!\"}}", 0, NULL);
	CHECK_INT_EQ(e2b_selector_parse(o, "process", &s, &err), -1);
	CHECK_INT_EQ(e2b_input_parse(o, "input", &in, &err), -1);
	CHECK_CONTAINS(err.message, "base64");
	json_decref(o);
}

TEST(stream_input_events)
{
	silo_error err;
	e2b_si_event ev;
	const char *a = "{\"start\":{\"process\":{\"tag\":\"job\"}}}";
	REQUIRE(e2b_stream_input_parse(a, strlen(a), &ev, &err) == 0);
	CHECK(ev.kind == E2B_SI_START && ev.sel.by_tag && !strcmp(ev.sel.tag, "job"));
	const char *b = "{\"data\":{\"input\":{\"stdin\":\"eA==\"}}}";
	REQUIRE(e2b_stream_input_parse(b, strlen(b), &ev, &err) == 0);
	CHECK(ev.kind == E2B_SI_DATA && ev.in.len == 1 && ev.in.data[0] == 'x');
	free(ev.in.data);
	const char *c = "{\"start\":{},\"data\":{}}";
	CHECK_INT_EQ(e2b_stream_input_parse(c, strlen(c), &ev, &err), -1);
	CHECK_CONTAINS(err.message, "one of");
}

TEST_MAIN(envelopes_are_bounded_before_their_bytes, connect_codes_and_statuses, start_requests,
	  selectors_inputs_signals, stream_input_events)
