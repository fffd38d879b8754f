/* SPDX-License-Identifier: Apache-2.0
 * silod exec request bodies: accepted shapes and errors that name the field.
 */
#include <stdlib.h>
#include <string.h>

#include "daemon/api_parse.h"
#include "harness.h"

static int parse(const char *body, api_exec_body *b, silo_error *e)
{
	memset(b, 0, sizeof *b);
	memset(e, 0, sizeof *e);
	return api_exec_parse(body, strlen(body), b, e);
}

TEST(full_body)
{
	api_exec_body b;
	silo_error e;
	REQUIRE(parse("{\"argv\":[\"sh\",\"-c\",\"echo hi\"],\"env\":{\"A\":\"1\",\"B\":\"x=y\"},\"cwd\":\"/tmp\","
		      "\"stdin\":\"aGVsbG8=\",\"timeout_ms\":1500,\"uid\":1000,\"gid\":100}", &b, &e) == 0);
	CHECK_STR_EQ(b.argv[0], "sh");
	CHECK_STR_EQ(b.argv[2], "echo hi");
	CHECK(b.argv[3] == NULL);
	CHECK_STR_EQ(b.env[0], "A=1");
	CHECK_STR_EQ(b.env[1], "B=x=y");
	CHECK_STR_EQ(b.cwd, "/tmp");
	CHECK_INT_EQ(b.stdin_len, 5);
	CHECK(memcmp(b.stdin_buf, "hello", 5) == 0);
	CHECK_INT_EQ(b.timeout_ms, 1500);
	CHECK_INT_EQ(b.uid, 1000);
	CHECK_INT_EQ(b.gid, 100);
	api_exec_body_free(&b);
}

TEST(defaults)
{
	api_exec_body b;
	silo_error e;
	REQUIRE(parse("{\"argv\":[\"true\"]}", &b, &e) == 0);
	CHECK(b.env == NULL);
	CHECK(b.cwd == NULL);
	CHECK_INT_EQ(b.uid, -1);
	CHECK_INT_EQ(b.gid, -1);
	CHECK_INT_EQ(b.timeout_ms, 0);
	api_exec_body_free(&b);
}

TEST(errors_name_the_field)
{
	static const struct {
		const char *body, *needle;
	} cases[] = {
		{"", "invalid JSON"},
		{"[1]", "expected a JSON object"},
		{"{\"argv\":[]}", "argv"},
		{"{\"argv\":\"ls\"}", "argv"},
		{"{\"argv\":[\"ls\",1]}", "argv[1]"},
		{"{\"argv\":[\"a\\u0000b\"]}", "u0000"},
		{"{\"argv\":[\"ls\"],\"env\":{\"A=B\":\"1\"}}", "env.A=B"},
		{"{\"argv\":[\"ls\"],\"env\":{\"A\":2}}", "env.A"},
		{"{\"argv\":[\"ls\"],\"cwd\":\"rel\"}", "cwd"},
		{"{\"argv\":[\"ls\"],\"stdin\":\"!!!\"}", "stdin"},
		{"{\"argv\":[\"ls\"],\"timeout_ms\":-1}", "timeout_ms"},
		{"{\"argv\":[\"ls\"],\"uid\":\"root\"}", "uid"},
		{"{\"argv\":[\"ls\"],\"bogus\":1}", "bogus"},
		{"{\"argv\":[\"ls\"],\"argv\":[\"ls\"]}", "duplicate"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		api_exec_body b;
		silo_error e;
		CHECK(parse(cases[i].body, &b, &e) < 0);
		CHECK_INT_EQ(e.code, SILO_ERR_INVALID_CONFIG);
		CHECK_CONTAINS(e.message, cases[i].needle);
		api_exec_body_free(&b);
	}
}

TEST(argv_bound)
{
	size_t n = MAX_ARGV + 1;
	char *body = malloc(n * 4 + 32);
	strcpy(body, "{\"argv\":[");
	for (size_t i = 0; i < n; i++)
		strcat(body, i ? ",\"a\"" : "\"a\"");
	strcat(body, "]}");
	api_exec_body b;
	silo_error e;
	CHECK(parse(body, &b, &e) < 0);
	CHECK_CONTAINS(e.message, "argv");
	api_exec_body_free(&b);
	free(body);
}

TEST_MAIN(full_body, defaults, errors_name_the_field, argv_bound)
