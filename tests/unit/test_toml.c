/* SPDX-License-Identifier: Apache-2.0
 * TOML 1.0 conformance cases: valid documents checked value by value, and
 * invalid ones checked for the exact "line:col: message" they produce.
 */
#include "harness.h"

#include <math.h>

#include "spec/toml.h"

static toml_value *parse(const char *s)
{
	char err[512];
	toml_value *v = toml_parse(s, strlen(s), err, sizeof err);
	if (!v)
		printf("# unexpected error: %s\n", err);
	return v;
}

static toml_value *path(toml_value *root, const char *dotted)
{
	char buf[256];
	snprintf(buf, sizeof buf, "%s", dotted);
	toml_value *v = root;
	for (char *k = strtok(buf, "."); k && v; k = strtok(NULL, "."))
		v = toml_get(v, k);
	return v;
}

TEST(strings_all_forms)
{
	toml_value *r = parse("a = \"tab\\there \\u00e9 \\U0001F600 \\\"q\\\" \\\\\"\n"
			      "b = 'C:\\path\\no escapes'\n"
			      "c = \"\"\"\nline1\nline2 \\\n    joined\"\"\"\n"
			      "d = '''\nraw \\n text'''\n"
			      "e = \"\"\"two quotes \"\" inside\"\"\"\n"
			      "f = \"\"\"ends with quotes\"\"\"\"\"\n"
			      "g = \"\"\n");
	REQUIRE(r);
	CHECK_STR_EQ(toml_get(r, "a")->u.str.ptr, "tab\there \xc3\xa9 \xf0\x9f\x98\x80 \"q\" \\");
	CHECK_STR_EQ(toml_get(r, "b")->u.str.ptr, "C:\\path\\no escapes");
	CHECK_STR_EQ(toml_get(r, "c")->u.str.ptr, "line1\nline2 joined");
	CHECK_STR_EQ(toml_get(r, "d")->u.str.ptr, "raw \\n text");
	CHECK_STR_EQ(toml_get(r, "e")->u.str.ptr, "two quotes \"\" inside");
	CHECK_STR_EQ(toml_get(r, "f")->u.str.ptr, "ends with quotes\"\"");
	CHECK_STR_EQ(toml_get(r, "g")->u.str.ptr, "");
	toml_free(r);
}

TEST(numbers)
{
	toml_value *r = parse("a = +99\nb = -17\nc = 1_000_000\nd = 0xDEAD_beef\ne = 0o755\nf = 0b1101\n"
			      "g = 9223372036854775807\nh = -9223372036854775808\n"
			      "i = 3.1415\nj = -0.01\nk = 5e+22\nl = 6.626e-34\nm = inf\nn = -inf\no = nan\np = 1_0.0_1\n");
	REQUIRE(r);
	CHECK_INT_EQ(toml_get(r, "a")->u.i, 99);
	CHECK_INT_EQ(toml_get(r, "b")->u.i, -17);
	CHECK_INT_EQ(toml_get(r, "c")->u.i, 1000000);
	CHECK_INT_EQ(toml_get(r, "d")->u.i, 0xDEADBEEF);
	CHECK_INT_EQ(toml_get(r, "e")->u.i, 0755);
	CHECK_INT_EQ(toml_get(r, "f")->u.i, 13);
	CHECK(toml_get(r, "g")->u.i == INT64_MAX);
	CHECK(toml_get(r, "h")->u.i == INT64_MIN);
	CHECK(toml_get(r, "i")->type == TOML_FLOAT && toml_get(r, "i")->u.f == 3.1415);
	CHECK(toml_get(r, "k")->u.f == 5e22);
	CHECK(isinf(toml_get(r, "m")->u.f) && toml_get(r, "m")->u.f > 0);
	CHECK(isinf(toml_get(r, "n")->u.f) && toml_get(r, "n")->u.f < 0);
	CHECK(isnan(toml_get(r, "o")->u.f));
	CHECK(toml_get(r, "p")->u.f == 10.01);
	toml_free(r);
}

TEST(dates_and_times)
{
	toml_value *r = parse("a = 1979-05-27T07:32:00Z\nb = 1979-05-27T00:32:00.999999-07:00\n"
			      "c = 1979-05-27 07:32:00\nd = 1979-05-27\ne = 07:32:00.5\nf = 2024-02-29\n");
	REQUIRE(r);
	toml_value *a = toml_get(r, "a"), *b = toml_get(r, "b");
	CHECK(a->type == TOML_DATETIME && a->u.dt.year == 1979 && a->u.dt.hour == 7 && a->u.dt.offset_minutes == 0);
	CHECK(b->type == TOML_DATETIME && b->u.dt.offset_minutes == -420 && b->u.dt.nanosecond == 999999000);
	CHECK(toml_get(r, "c")->type == TOML_LOCAL_DATETIME);
	CHECK(toml_get(r, "d")->type == TOML_LOCAL_DATE);
	CHECK(toml_get(r, "e")->type == TOML_LOCAL_TIME && toml_get(r, "e")->u.dt.nanosecond == 500000000);
	CHECK(toml_get(r, "f")->u.dt.day == 29);
	toml_free(r);
}

TEST(tables_arrays_inline_dotted)
{
	toml_value *r = parse("title = \"x\" # comment\n"
			      "[owner]\nname = \"Tom\"\n"
			      "[a.b.c]\nd = 1\n"
			      "[a]\ne = 2\n"
			      "[fruit]\napple.color = \"red\"\napple.taste.sweet = true\n"
			      "[\"quoted key\".'lit']\nv = [1, 'two', [3.0], {x = 1}, ]\n"
			      "[[products]]\nname = \"Hammer\"\n"
			      "[[products]]\n"
			      "[[products]]\nname = \"Nail\"\n[products.dims]\nw = 1\n"
			      "[inline]\npoint = { x = 1, y.z = 2 }\nempty = {}\n"
			      "multi = [\n  1, # one\n  2,\n]\n");
	REQUIRE(r);
	CHECK_INT_EQ(path(r, "a.b.c.d")->u.i, 1);
	CHECK_INT_EQ(path(r, "a.e")->u.i, 2);
	CHECK(path(r, "fruit.apple.taste.sweet")->u.b);
	toml_value *v = path(r, "quoted key.lit.v");
	REQUIRE(v && v->type == TOML_ARRAY);
	CHECK_INT_EQ(v->u.arr.n, 4);
	CHECK(v->u.arr.items[3]->type == TOML_TABLE);
	toml_value *p = toml_get(r, "products");
	REQUIRE(p && p->type == TOML_ARRAY);
	CHECK_INT_EQ(p->u.arr.n, 3);
	CHECK_STR_EQ(toml_get(p->u.arr.items[2], "name")->u.str.ptr, "Nail");
	CHECK_INT_EQ(path(p->u.arr.items[2], "dims.w")->u.i, 1);
	CHECK_INT_EQ(path(r, "inline.point.y.z")->u.i, 2);
	CHECK_INT_EQ(path(r, "inline.multi")->u.arr.n, 2);
	/* key order is preserved */
	CHECK_STR_EQ(r->u.tab.keys[0], "title");
	CHECK_STR_EQ(r->u.tab.keys[1], "owner");
	toml_free(r);
}

static void expect_error(const char *doc, const char *want)
{
	char err[512];
	toml_value *v = toml_parse(doc, strlen(doc), err, sizeof err);
	if (v) {
		printf("# parsed but should fail: %s\n", doc);
		toml_free(v);
		test_failures_++;
		return;
	}
	if (strcmp(err, want)) {
		printf("# doc: %s\n#  got: %s\n# want: %s\n", doc, err, want);
		test_failures_++;
	}
}

TEST(invalid_documents_report_line_and_column)
{
	expect_error("a = 1\na = 2\n", "2:1: duplicate key 'a' (first defined at 1:1)");
	expect_error("[t]\n[t]\n", "2:1: table 't' is already defined at 1:1");
	expect_error("x = \"unterminated\n", "1:5: unterminated string");
	expect_error("x = 01\n", "1:5: leading zeros are not allowed in '01'");
	expect_error("x = 1__0\n", "1:5: '_' must be between digits in '1__0'");
	expect_error("x = 9223372036854775808\n", "1:5: integer '9223372036854775808' does not fit in 64 bits");
	expect_error("x = \"\\q\"\n", "1:7: invalid escape sequence '\\q'");
	expect_error("x = \"\\uD800\"\n", "1:12: escape U+D800 is not a Unicode scalar value");
	expect_error("x = 1979-02-30\n", "1:5: date '1979-02-30' is out of range");
	expect_error("x = 25:00:00\n", "1:5: invalid time '25:00:00' (expected HH:MM:SS[.frac])");
	expect_error("x = bare\n", "1:5: invalid value 'bare' (strings must be quoted)");
	expect_error("x = 1 y = 2\n", "1:7: expected end of line, found 'y'");
	expect_error("x = { a = 1, }\n", "1:14: trailing comma is not allowed in an inline table");
	expect_error("x = { a = 1\n", "1:12: expected ',' or '}' in inline table (inline tables must be on one line)");
	expect_error("x = {a = 1}\n[x]\n", "2:1: table 'x' is already defined at 1:1");
	expect_error("x = {a = 1}\nx.b = 2\n", "2:1: cannot add keys to 'x': it is a table defined at 1:1");
	expect_error("a = [1]\n[[a]]\n", "2:1: cannot define array of tables 'a': already defined at 1:1 as a static array");
	expect_error("[fruit]\napple.color = 1\n[fruit.apple]\n", "3:1: table 'fruit.apple' is already defined at 2:1");
	expect_error("[a b]\n", "1:4: expected ']' to close the table header");
	expect_error("key\n", "1:4: expected '=' after key");
	expect_error("= 1\n", "1:1: invalid character '=' in key (bare keys are A-Za-z0-9_-)");
	expect_error("x = [1, 2\n", "2:1: unterminated array");
	expect_error("x = \"a\x01" "b\"\n", "1:7: control character 0x01 in string (use an escape)");
	expect_error("x = \"\xff\"\n", "1:6: invalid UTF-8 in string");
	expect_error("x = 1 # \x7f\n", "1:9: control character 0x7f in comment");
	expect_error("x = 1.\n", "1:5: a digit must follow the decimal point in '1.'");
	expect_error("x = 0x\n", "1:5: invalid integer '0x'");
}

TEST(hostile_input_is_bounded)
{
	/* deep nesting stops at the depth limit instead of exhausting the stack */
	size_t n = 10000;
	char *doc = malloc(n + 8);
	memcpy(doc, "x = ", 4);
	memset(doc + 4, '[', n);
	doc[n + 4] = '\0';
	char err[512];
	CHECK(toml_parse(doc, strlen(doc), err, sizeof err) == NULL);
	CHECK_CONTAINS(err, "nesting deeper than 64 levels");
	free(doc);
	/* oversized documents are refused up front */
	size_t big = TOML_MAX_INPUT + 1;
	doc = malloc(big);
	memset(doc, '#', big);
	CHECK(toml_parse(doc, big, err, sizeof err) == NULL);
	CHECK_CONTAINS(err, "document larger than");
	free(doc);
	/* embedded NUL bytes are control characters */
	CHECK(toml_parse("x = 1\0", 6, err, sizeof err) == NULL);
}

TEST(quote_round_trip)
{
	const char raw[] = "a\"b\\c\n\t\x01\x7f \xc3\xa9";
	char *q = toml_quote(raw, sizeof raw - 1);
	char *doc = malloc(strlen(q) + 8);
	sprintf(doc, "k = %s\n", q);
	toml_value *r = parse(doc);
	REQUIRE(r);
	CHECK(toml_get(r, "k")->u.str.len == sizeof raw - 1 && !memcmp(toml_get(r, "k")->u.str.ptr, raw, sizeof raw - 1));
	toml_free(r);
	free(q);
	free(doc);
}

TEST_MAIN(strings_all_forms, numbers, dates_and_times, tables_arrays_inline_dotted,
	  invalid_documents_report_line_and_column, hostile_input_is_bounded, quote_round_trip)
