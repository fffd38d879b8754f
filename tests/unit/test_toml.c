/* SPDX-License-Identifier: Apache-2.0
 * TOML 1.0 conformance cases: valid documents checked value by value, and
 * invalid ones checked for the exact "line:col: message" they produce.
 */
#include "harness.h"
#include "prop_test.h"

#include <math.h>
#include <stdint.h>
#include <time.h>

#include "common/util.h"
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

TEST(valid_edge_cases)
{
	toml_value *r = parse("a = \"\"\"\nx\"\"\"\r\nb = \"\"\"a \\   \n\n  b\"\"\"\n"
			      "3.14159 = \"pi\"\n\"\" = 1\nc = -0\nd = 1979-05-27t07:32:00z\n"
			      "e = [1, \"a\", {b = 1}, [2], ]\nf = [ ]\ng = [\n#c\n]\n"
			      "[ t . \"u\" . 'v' ]\nw = 1 #\tcomment with tab\n[[ aot ]]\n");
	REQUIRE(r);
	CHECK_STR_EQ(toml_get(r, "a")->u.str.ptr, "x"); /* newline after the opening quotes is trimmed */
	CHECK_STR_EQ(toml_get(r, "b")->u.str.ptr, "a b"); /* line-ending backslash eats blank lines */
	CHECK_STR_EQ(path(r, "3.14159")->u.str.ptr, "pi"); /* dotted bare key 3 -> 14159 */
	CHECK_INT_EQ(toml_get(r, "")->u.i, 1);
	CHECK_INT_EQ(toml_get(r, "c")->u.i, 0);
	CHECK(toml_get(r, "d")->type == TOML_DATETIME && toml_get(r, "d")->u.dt.minute == 32);
	CHECK_INT_EQ(toml_get(r, "e")->u.arr.n, 4);
	CHECK_INT_EQ(toml_get(r, "f")->u.arr.n, 0);
	CHECK_INT_EQ(toml_get(r, "g")->u.arr.n, 0);
	CHECK_INT_EQ(path(r, "t.u.v.w")->u.i, 1);
	CHECK(toml_get(r, "aot") && toml_get(r, "aot")->type == TOML_ARRAY && toml_get(r, "aot")->u.arr.n == 1);
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
	expect_error("x = {a = 1}\n[x]\n", "2:1: table 'x' is already defined at 1:1 as an inline table");
	expect_error("x = 1\n[x]\n", "2:1: table 'x' is already defined at 1:1 as an integer");
	expect_error("x = {a = 1}\nx.b = 2\n", "2:1: cannot add keys to 'x': it is an inline table defined at 1:1");
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
	expect_error("x = \"\\U00110000\"\n", "1:16: escape U+110000 is not a Unicode scalar value");
	expect_error("x = \"\\u00e\"\n", "1:11: expected 4 hex digits in unicode escape");
	expect_error("x = 0xffffffffffffffff1\n", "1:5: integer '0xffffffffffffffff1' does not fit in 64 bits");
	expect_error("x = .5\n", "1:5: invalid value '.5' (strings must be quoted)");
	expect_error("x = 1e\n", "1:5: invalid exponent in '1e'");
	expect_error("x = 1_\n", "1:5: '_' must be between digits in '1_'");
	expect_error("x = 0o8\n", "1:5: invalid integer '0o8'");
	expect_error("x = 0b102\n", "1:5: invalid digit '2' in base-2 integer '0b102'");
	expect_error("x = +0x10\n", "1:5: invalid integer '+0x10'");
	expect_error("x = 00.5\n", "1:5: leading zeros are not allowed in '00.5'");
	expect_error("x = 1.e5\n", "1:5: a digit must follow the decimal point in '1.e5'");
	expect_error("x = 1979-05-27T07:32\n", "1:5: invalid time in '1979-05-27T07:32' (expected HH:MM:SS[.frac])");
	expect_error("x = 2000-13-01\n", "1:5: date '2000-13-01' is out of range");
	expect_error("x = 07:60:00\n", "1:5: invalid time '07:60:00' (expected HH:MM:SS[.frac])");
	expect_error("x = 1979-05-27T07:32:00+25:00\n", "1:5: invalid UTC offset in '1979-05-27T07:32:00+25:00'");
	expect_error("x = tru\n", "1:5: invalid value 'tru' (strings must be quoted)");
	expect_error("[[a]]\n[a]\n", "2:1: table 'a' is already defined at 1:1 as an array of tables");
	expect_error("[a]\nb = 1\n[a.b]\n", "3:1: table 'a.b' is already defined at 2:1 as an integer");
	expect_error("a.b = 1\na.b.c = 2\n", "2:1: cannot add keys to 'a.b': it is an integer defined at 1:1");
	expect_error("x = 1\n[x.y]\n", "2:1: 'x' is an integer defined at 1:1, not a table");
	expect_error("x = [{a = 1}]\n[x.b]\n", "2:1: 'x' is an array defined at 1:1, not a table");
	expect_error("[a]\n  b = 1\n  b = 2\n", "3:3: duplicate key 'b' (first defined at 2:3)");
	expect_error("x = '''abc\n", "1:5: unterminated multi-line string");
	expect_error("x = \"\"\"a\"\"\"\"\"\"\n", "1:14: expected end of line, found '\"'");
	expect_error("'a\nb' = 1\n", "1:1: unterminated string");
	expect_error("[a]]\n", "1:4: expected end of line, found ']'");
	expect_error("x = \"\\x41\"\n", "1:7: invalid escape sequence '\\x'");
	expect_error("x = \"\xc0\x80\"\n", "1:6: invalid UTF-8 in string");     /* overlong */
	expect_error("a = 1\rb = 2\n", "1:6: expected end of line, found byte 0x0d"); /* lone CR */
	expect_error("x = \xc3\xa9\n", "1:5: expected a value, found byte 0xc3");
	expect_error("x = 07:32:00Z\n", "1:5: invalid time '07:32:00Z' (expected HH:MM:SS[.frac])");
	expect_error("x = 2023-02-29\n", "1:5: date '2023-02-29' is out of range");
	expect_error("x = 1e+_5\n", "1:5: '_' must be between digits in '1e+_5'");
	expect_error("x = \"\xed\xa0\x80\"\n", "1:6: invalid UTF-8 in string"); /* encoded surrogate */
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
	/* dotted keys, headers and arrays of tables nest too (found by fuzz-toml) */
	char deep[1024] = "", line[1100];
	for (int i = 0; i < 70; i++)
		strcat(deep, i ? ".a" : "a");
	snprintf(line, sizeof line, "[%s]\n", deep);
	CHECK(toml_parse(line, strlen(line), err, sizeof err) == NULL);
	CHECK_CONTAINS(err, "key nests deeper than 64 levels");
	snprintf(line, sizeof line, "%s = 1\n", deep);
	CHECK(toml_parse(line, strlen(line), err, sizeof err) == NULL);
	CHECK_CONTAINS(err, "key nests deeper than 64 levels");
	/* 40 header levels + 30 key levels: each alone is fine, together too deep */
	char h[200] = "", k[200] = "";
	for (int i = 0; i < 40; i++)
		strcat(h, i ? ".h" : "h");
	for (int i = 0; i < 30; i++)
		strcat(k, i ? ".k" : "k");
	snprintf(line, sizeof line, "[%s]\n%s = 1\n", h, k);
	CHECK(toml_parse(line, strlen(line), err, sizeof err) == NULL);
	CHECK_CONTAINS(err, "2:");
	CHECK_CONTAINS(err, "key nests deeper than 64 levels");
	snprintf(line, sizeof line, "[%s]\nk = [[[1]]]\n", deep + 2 * 7); /* 63 levels + array */
	CHECK(toml_parse(line, strlen(line), err, sizeof err) == NULL);
	CHECK_CONTAINS(err, "nesting deeper than 64 levels");
	/* each [[x]] crossing adds the array and its table */
	char aot[4096] = "";
	for (int i = 0; i < 33; i++) {
		strcat(aot, "[[");
		for (int j = 0; j <= i; j++)
			strcat(aot, j ? ".t" : "t");
		strcat(aot, "]]\n");
	}
	toml_value *ok = toml_parse(aot, strlen(aot), err, sizeof err);
	CHECK(ok == NULL);
	CHECK_CONTAINS(err, "nests deeper than 64 levels");
	toml_free(ok);
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

TEST(quoted_key_with_nul_is_a_key_of_its_own)
{
	/* TOML 1.0: a quoted key may hold any character, \u0000 included */
	toml_value *r = parse("\"a\\u0000b\" = 1\na = 2\n\"\\u0000\" = 3\n");
	REQUIRE(r);
	CHECK_INT_EQ(r->u.tab.n, 3);
	toml_value *a = toml_get(r, "a");
	REQUIRE(a);
	CHECK_INT_EQ(a->u.i, 2);                    /* "a\0b" is not "a" */
	toml_value *x = toml_get(r, "a" TOML_KEY_NUL "b");
	REQUIRE(x);
	CHECK_INT_EQ(x->u.i, 1);
	CHECK(toml_key_has_nul(r->u.tab.keys[0]) && !toml_key_has_nul(r->u.tab.keys[1]));
	toml_free(r);
	char err[256];
	/* still one key: a duplicate is refused */
	const char *dup = "\"a\\u0000\" = 1\n\"a\\u0000\" = 2\n";
	CHECK(toml_parse(dup, strlen(dup), err, sizeof err) == NULL);
	CHECK_CONTAINS(err, "2:");
	/* the raw bytes C0 80 are invalid UTF-8: they cannot spell such a key */
	const char *raw = "\"a\xC0\x80\" = 1\n";
	CHECK(toml_parse(raw, strlen(raw), err, sizeof err) == NULL);
}

TEST(positions_of_keys_and_values)
{
	toml_value *r = parse("# c\n[t]\n  key = \"v\"\n  a.b = 1\narr = [\n  10,\n  { x = true } ]\n");
	REQUIRE(r);
	toml_value *k = path(r, "t.key");
	REQUIRE(k);
	CHECK_INT_EQ(k->kline, 3);
	CHECK_INT_EQ(k->kcol, 3);
	CHECK_INT_EQ(k->line, 3);
	CHECK_INT_EQ(k->col, 9);
	toml_value *b = path(r, "t.a.b");
	REQUIRE(b);
	CHECK_INT_EQ(b->col, 9);
	CHECK_INT_EQ(b->kcol, 3);
	CHECK_INT_EQ(path(r, "t")->line, 2);
	toml_value *arr = path(r, "t.arr");
	REQUIRE(arr && arr->u.arr.n == 2);
	CHECK_INT_EQ(arr->u.arr.items[0]->line, 6);
	CHECK_INT_EQ(arr->u.arr.items[0]->col, 3);
	CHECK_INT_EQ(arr->u.arr.items[0]->kline, 0); /* array items have no key */
	toml_value *x = toml_get(arr->u.arr.items[1], "x");
	REQUIRE(x);
	CHECK_INT_EQ(x->line, 7);
	CHECK_INT_EQ(x->col, 9);
	CHECK_INT_EQ(x->kcol, 5);
	toml_free(r);
}

/* The fuzz seed that exercises every value type must be a valid document with the values it says. */
TEST(corpus_all_types)
{
	char fn[4096];
	snprintf(fn, sizeof fn, "%s/tests/fuzz/corpus/toml/all_types.toml", getenv("SILO_SOURCE_ROOT"));
	FILE *f = fopen(fn, "rb");
	if (!f)
		SKIP("SILO_SOURCE_ROOT not set (run through meson test)");
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	toml_value *r = parse(buf);
	REQUIRE(r);
	CHECK_STR_EQ(toml_get(r, "s1")->u.str.ptr, "basic \b\t\n\f\r\"\\ \xc3\xa9 \xf0\x9f\x98\x80");
	CHECK_STR_EQ(toml_get(r, "s2")->u.str.ptr, "literal \\n");
	CHECK_STR_EQ(toml_get(r, "s3")->u.str.ptr, "multi line \"\"quoted\"\" ");
	CHECK_STR_EQ(toml_get(r, "s4")->u.str.ptr, "raw ''x'' ");
	toml_value *i = toml_get(r, "i");
	REQUIRE(i && i->u.arr.n == 9);
	CHECK(i->u.arr.items[4]->u.i == 0xDEADBEEF && i->u.arr.items[5]->u.i == 0755);
	toml_value *fl = toml_get(r, "f");
	REQUIRE(fl && fl->u.arr.n == 15);
	CHECK(fl->u.arr.items[7]->u.f == 224617.445991);
	CHECK(isnan(fl->u.arr.items[12]->u.f) && isnan(fl->u.arr.items[13]->u.f));
	CHECK(fl->u.arr.items[14]->u.f == 0.0 && signbit(fl->u.arr.items[14]->u.f));
	toml_value *odt = toml_get(r, "odt");
	REQUIRE(odt && odt->u.arr.n == 4);
	CHECK(odt->u.arr.items[2]->u.dt.offset_minutes == 420 && odt->u.arr.items[2]->u.dt.nanosecond == 999999000);
	CHECK(odt->u.arr.items[3]->type == TOML_DATETIME); /* space instead of T */
	CHECK(toml_get(r, "ld")->type == TOML_LOCAL_DATE);
	CHECK(toml_get(r, "quoted key") && toml_get(r, "literal.key"));
	CHECK_INT_EQ(path(r, "a.b")->u.tab.n, 1);
	CHECK_INT_EQ(toml_get(toml_get(path(r, "a.b"), "c.d"), "e")->u.i, 3);
	CHECK_INT_EQ(path(r, "table.sub.x.k")->u.i, 1);
	toml_value *aot = toml_get(r, "aot");
	REQUIRE(aot && aot->u.arr.n == 2);
	CHECK_INT_EQ(path(aot->u.arr.items[0], "sub.m")->u.i, 2);
	CHECK_INT_EQ(toml_get(toml_get(aot->u.arr.items[1], "inner")->u.arr.items[0], "q")->u.i, 1);
	toml_free(r);
}

/* ---- property: random Unicode strings survive toml_quote -> parse, as keys and as values ---- */

static uint32_t rnd32(void)
{
	return (uint32_t)(rnd() >> 11);
}

static size_t put_utf8(char *o, uint32_t c)
{
	if (c < 0x80) return o[0] = (char)c, 1;
	if (c < 0x800) return o[0] = (char)(0xC0 | c >> 6), o[1] = (char)(0x80 | (c & 0x3F)), 2;
	if (c < 0x10000)
		return o[0] = (char)(0xE0 | c >> 12), o[1] = (char)(0x80 | (c >> 6 & 0x3F)), o[2] = (char)(0x80 | (c & 0x3F)), 3;
	o[0] = (char)(0xF0 | c >> 18), o[1] = (char)(0x80 | (c >> 12 & 0x3F));
	o[2] = (char)(0x80 | (c >> 6 & 0x3F)), o[3] = (char)(0x80 | (c & 0x3F));
	return 4;
}

/* Up to 24 code points, biased towards the characters that need escaping. */
static size_t gen_unicode(char *o, bool allow_nul)
{
	size_t n = rnd32() % 25, len = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t c;
		switch (rnd32() % 6) {
		case 0: c = rnd32() % 0x20; break;                       /* control characters */
		case 1: c = "\"\\'#=.[]{} \x7f"[rnd32() % 12]; break;    /* TOML syntax */
		case 2: c = 0x80 + rnd32() % (0x800 - 0x80); break;
		case 3: c = 0x800 + rnd32() % (0x10000 - 0x800); break;
		case 4: c = 0x10000 + rnd32() % (0x110000 - 0x10000); break;
		default: c = 0x20 + rnd32() % 0x5f; break;
		}
		if (c >= 0xD800 && c <= 0xDFFF)
			c = 0xFFFD;
		if (c == 0 && !allow_nul)
			c = 1;
		len += put_utf8(o + len, c);
	}
	o[len] = '\0';
	return len;
}

TEST(property_quote_parse_round_trip)
{
	rnd_seed_env();
	int ok = 0, n = 5000;
	for (int i = 0; i < n; i++) {
		char k[128], v[128];
		gen_unicode(k, false);
		size_t vlen = gen_unicode(v, true);
		char *qk = toml_quote(k, strlen(k)), *qv = toml_quote(v, vlen);
		char *doc = xasprintf("[t]\n%s = %s # c\n", qk, qv);
		char err[512];
		toml_value *r = toml_parse(doc, strlen(doc), err, sizeof err);
		toml_value *t = r ? toml_get(r, "t") : NULL;
		if (!t || t->u.tab.n != 1) {
			printf("# iteration %d: %s\n", i, r ? "lost the key" : err);
		} else {
			toml_value *got = t->u.tab.vals[0];
			if (strcmp(t->u.tab.keys[0], k) || got->type != TOML_STRING || got->u.str.len != vlen ||
			    memcmp(got->u.str.ptr, v, vlen))
				printf("# iteration %d: round trip differs for %s = %s\n", i, qk, qv);
			else
				ok++;
		}
		toml_free(r);
		free(doc), free(qk), free(qv);
	}
	CHECK_INT_EQ(ok, n);
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

TEST_MAIN(strings_all_forms, numbers, dates_and_times, tables_arrays_inline_dotted, valid_edge_cases,
	  invalid_documents_report_line_and_column, hostile_input_is_bounded, quoted_key_with_nul_is_a_key_of_its_own,
	  positions_of_keys_and_values, corpus_all_types,
	  quote_round_trip, property_quote_parse_round_trip)
