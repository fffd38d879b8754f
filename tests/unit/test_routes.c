/* SPDX-License-Identifier: Apache-2.0
 * The two route tables (daemon/routes.c for silod, vmm/control_api.c for
 * silo-vmm) against their documentation, and the routing machinery they share
 * (lib/common/http_route.c, daemon/route.c).
 *
 * docs/openapi.yaml: every METHOD+path under `paths:` is a row of silod's
 * table and every row is there (compared as written, capture names included).
 * The reader is a minimal bounded one for the subset the file uses: a line
 * "paths:" opens the section, "  /path:" names a path, "    get:" (put, post,
 * delete, patch) a method; the next line at column 0 closes it.
 * docs/vmm.md: every `METHOD /path` in backticks is a route of silo-vmm's
 * table and every row appears at least once.
 */
#include <ctype.h>

#include "common/util.h"
#include "control_api.h"
#include "daemon/route.h"
#include "harness.h"

#define DOC_MAX (1u << 20)
#define DOC_ROUTES_MAX 512
#define LINE_MAX_ 4096

typedef struct doc_route {
	char method[8];
	char path[256];
	bool seen;
} doc_route;

static char *read_doc(const char *rel)
{
	const char *root = getenv("SILO_SOURCE_ROOT");
	if (!root)
		SKIP("SILO_SOURCE_ROOT is not set (run through meson test)");
	char p[4096];
	snprintf(p, sizeof p, "%s/%s", root, rel);
	char *text;
	size_t len;
	silo_error err;
	if (read_file(p, DOC_MAX, &text, &len, &err) < 0) {
		printf("# %s: %s\n", p, err.message);
		return NULL;
	}
	return text;
}

static void upper(char *dst, const char *src, size_t n, size_t cap)
{
	size_t i;
	for (i = 0; i < n && i + 1 < cap; i++)
		dst[i] = (char)toupper((unsigned char)src[i]);
	dst[i] = '\0';
}

/* METHOD+path pairs under `paths:`; -1 on a line or count beyond the bounds. */
static int openapi_routes(const char *text, doc_route *out, size_t *n)
{
	static const char *const methods[] = {"get", "put", "post", "delete", "patch"};
	bool in_paths = false;
	char cur[256] = "";
	*n = 0;
	for (const char *l = text; *l;) {
		const char *e = strchr(l, '\n');
		size_t len = e ? (size_t)(e - l) : strlen(l);
		if (len > LINE_MAX_)
			return -1;
		char line[LINE_MAX_ + 1];
		memcpy(line, l, len);
		line[len] = '\0';
		while (len && (line[len - 1] == ' ' || line[len - 1] == '\r'))
			line[--len] = '\0';
		l = e ? e + 1 : l + len;
		if (!strcmp(line, "paths:")) {
			in_paths = true;
			continue;
		}
		if (!in_paths || !len || line[0] == '#')
			continue;
		if (line[0] != ' ')
			break;   /* the next top-level key */
		if (!strncmp(line, "  /", 3) && line[len - 1] == ':' && len - 3 < sizeof cur) {
			memcpy(cur, line + 2, len - 3);
			cur[len - 3] = '\0';
			continue;
		}
		for (size_t i = 0; i < ARRAY_SIZE(methods); i++) {
			size_t ml = strlen(methods[i]);
			if (strncmp(line, "    ", 4) || line[4] == ' ' || strncmp(line + 4, methods[i], ml) || line[4 + ml] != ':')
				continue;
			if (*n == DOC_ROUTES_MAX || !cur[0])
				return -1;
			upper(out[*n].method, methods[i], ml, sizeof out[*n].method);
			snprintf(out[*n].path, sizeof out[*n].path, "%s", cur);
			out[*n].seen = false;
			(*n)++;
		}
	}
	return 0;
}

/* Every `METHOD /path` in backticks (the path ends at a space, '?', '[' or the backtick). */
static int backtick_routes(const char *text, doc_route *out, size_t *n)
{
	static const char *const methods[] = {"GET ", "PUT ", "POST ", "DELETE ", "PATCH "};
	*n = 0;
	for (const char *p = strchr(text, '`'); p; p = strchr(p + 1, '`')) {
		for (size_t i = 0; i < ARRAY_SIZE(methods); i++) {
			size_t ml = strlen(methods[i]);
			if (strncmp(p + 1, methods[i], ml) || p[1 + ml] != '/')
				continue;
			const char *s = p + 1 + ml;
			size_t pl = strcspn(s, "` ?[\n");
			if (*n == DOC_ROUTES_MAX || pl >= sizeof out[*n].path)
				return -1;
			memcpy(out[*n].method, methods[i], ml - 1);
			out[*n].method[ml - 1] = '\0';
			memcpy(out[*n].path, s, pl);
			out[*n].path[pl] = '\0';
			out[*n].seen = false;
			(*n)++;
		}
	}
	return 0;
}

/* The routes a document lists, read by reader (openapi_routes, backtick_routes). */
static size_t doc_routes(const char *rel, int (*reader)(const char *, doc_route *, size_t *), doc_route *doc)
{
	char *text = read_doc(rel);
	REQUIRE(text);
	size_t n;
	CHECK_INT_EQ(reader(text, doc, &n), 0);
	free(text);
	CHECK(n > 0);
	return n;
}

static bool method_known(const char *m)
{
	return !strcmp(m, "GET") || !strcmp(m, "PUT") || !strcmp(m, "POST") || !strcmp(m, "DELETE") || !strcmp(m, "PATCH");
}

/* Two patterns that match exactly the same paths (literals alike, captures at the same places). */
static bool same_shape(const char *a, const char *b)
{
	for (;;) {
		size_t la = strcspn(a + 1, "/"), lb = strcspn(b + 1, "/");
		bool ca = a[1] == '{', cb = b[1] == '{';
		if (ca != cb || (!ca && (la != lb || memcmp(a + 1, b + 1, la))))
			return false;
		a += 1 + la;
		b += 1 + lb;
		if (!*a || !*b)
			return !*a && !*b;
	}
}

static http_target tgt;   /* 16 KiB: not on the stack */

/* What every row of either table must be: a known method, a valid pattern. */
static void check_row(const char *method, const char *pattern, bool has_handler)
{
	printf("# %-6s %s\n", method, pattern);
	CHECK(method_known(method));
	CHECK(http_pattern_valid(pattern));
	CHECK(has_handler);
}

static void parse_ok(const char *raw, unsigned flags)
{
	silo_error err = {0};
	if (http_target_parse(raw, strlen(raw), flags, &tgt, &err) < 0)
		printf("# %s: %s\n", raw, err.message);
	REQUIRE(err.code == SILO_OK);
}

/* ---- silod ---- */

/* The row silod routes method + target to (the target parsed into tgt). */
static const api_route *row_of(const char *method, const char *target)
{
	char allow[96];
	silo_error err = {0};
	parse_ok(target, HTTP_TARGET_DECODE);
	const api_route *r = api_route_find(method, &tgt, target, allow, &err);
	if (!r)
		printf("# %s %s: %s\n", method, target, err.message);
	REQUIRE(r);
	return r;
}

TEST(silod_rows_well_formed)
{
	for (size_t i = 0; i < api_n_routes; i++) {
		const api_route *r = &api_routes[i];
		check_row(r->method, r->pattern, r->handler != NULL);
		CHECK((r->op == API_OP_FULL) == (r->group != NULL));
		CHECK(r->op == API_OP_ANY || r->op == API_OP_FULL || (r->op >= 0 && r->op < TOKEN_OP__COUNT));
		CHECK(r->reply < API_REPLY__COUNT);
		CHECK(!r->accept || r->accept[0]);
		if (!strcmp(r->method, "GET") || !strcmp(r->method, "DELETE"))
			CHECK_INT_EQ(r->body, API_BODY_NONE);
		/* every capture has a kind */
		parse_ok(r->pattern, 0);
		http_captures caps;
		CHECK(http_pattern_match(r->pattern, &tgt, &caps) >= 0);
		for (unsigned c = 0; c < caps.n; c++) {
			bool known = false;
			for (size_t k = 0; k < api_n_capture_kinds; k++)
				known |= !strcmp(api_capture_kinds[k].name, caps.name[c]);
			if (!known)
				printf("# %s: no capture kind for {%s}\n", r->pattern, caps.name[c]);
			CHECK(known);
		}
		for (size_t j = 0; j < i; j++) {
			const api_route *o = &api_routes[j];
			if (!strcmp(o->method, r->method) && !strcmp(o->pattern, r->pattern))
				printf("# duplicate row %s %s\n", r->method, r->pattern);
			CHECK(strcmp(o->method, r->method) || strcmp(o->pattern, r->pattern));
			/* one path, one pattern: {id} and {name} at the same place would be a coin toss */
			CHECK(!strcmp(o->pattern, r->pattern) || !same_shape(o->pattern, r->pattern));
		}
	}
}

TEST(openapi_and_silod_table_agree)
{
	static doc_route doc[DOC_ROUTES_MAX];
	size_t n = doc_routes("docs/openapi.yaml", openapi_routes, doc);
	for (size_t i = 0; i < api_n_routes; i++) {
		bool found = false;
		for (size_t j = 0; j < n; j++) {
			if (!strcmp(doc[j].method, api_routes[i].method) && !strcmp(doc[j].path, api_routes[i].pattern)) {
				found = doc[j].seen = true;
			}
		}
		if (!found)
			printf("# in daemon/routes.c, not in docs/openapi.yaml: %s %s\n", api_routes[i].method,
			       api_routes[i].pattern);
		CHECK(found);
	}
	for (size_t j = 0; j < n; j++) {
		if (!doc[j].seen)
			printf("# in docs/openapi.yaml, not in daemon/routes.c: %s %s\n", doc[j].method, doc[j].path);
		CHECK(doc[j].seen);
	}
}

TEST(openapi_reader_sees_a_missing_route)
{
	/* the comparison above can fail: the reader finds exactly what is there */
	static const char yaml[] = "openapi: 3.0.3\npaths:\n  /v1/health:\n    get:\n      summary: x\n"
				   "  /v1/x/{id}:\n    parameters:\n      - {name: id}\n    delete:\n    post:\n"
				   "components:\n  /v1/not-a-path:\n    get:\n";
	static doc_route doc[DOC_ROUTES_MAX];
	size_t n;
	CHECK_INT_EQ(openapi_routes(yaml, doc, &n), 0);
	REQUIRE(n == 3);
	CHECK_STR_EQ(doc[0].method, "GET");
	CHECK_STR_EQ(doc[0].path, "/v1/health");
	CHECK_STR_EQ(doc[1].method, "DELETE");
	CHECK_STR_EQ(doc[1].path, "/v1/x/{id}");
	CHECK_STR_EQ(doc[2].method, "POST");
}

TEST(lookup_most_specific_and_405)
{
	char allow[96];
	silo_error err;
	parse_ok("/v1/snapshots/gc", HTTP_TARGET_DECODE);
	const api_route *r = api_route_find("POST", &tgt, "/v1/snapshots/gc", allow, &err);
	REQUIRE(r);
	CHECK_STR_EQ(r->pattern, "/v1/snapshots/gc");
	/* GET on gc is not a snapshot called gc: the literal owns the path */
	CHECK(!api_route_find("GET", &tgt, "/v1/snapshots/gc", allow, &err));
	CHECK_INT_EQ(err.code, SILO_ERR_METHOD_NOT_ALLOWED);
	CHECK_STR_EQ(allow, "POST");
	parse_ok("/v1/snapshots/snap-1", HTTP_TARGET_DECODE);
	r = api_route_find("DELETE", &tgt, "/v1/snapshots/snap-1", allow, &err);
	REQUIRE(r);
	CHECK_STR_EQ(r->pattern, "/v1/snapshots/{snap}");
	parse_ok("/v1/sandboxes", HTTP_TARGET_DECODE);
	CHECK(!api_route_find("DELETE", &tgt, "/v1/sandboxes", allow, &err));
	CHECK_INT_EQ(err.code, SILO_ERR_METHOD_NOT_ALLOWED);
	CHECK_STR_EQ(allow, "GET, POST");
	CHECK_CONTAINS(err.message, "allowed: GET, POST");
	CHECK_INT_EQ(api_http_status(err.code), 405);
	for (const char *const *p = (const char *const[]){"/v1/nope", "/v1/sandboxes/", "/v1//sandboxes",
							  "/v1/sandboxes/a/b/c", "/", NULL};
	     *p; p++) {
		parse_ok(*p, HTTP_TARGET_DECODE);
		CHECK(!api_route_find("GET", &tgt, *p, allow, &err));
		CHECK_INT_EQ(err.code, SILO_ERR_NOT_FOUND);
		CHECK_INT_EQ(api_http_status(err.code), 404);
	}
	parse_ok("/v1/sandboxes/sb-1/exec", HTTP_TARGET_DECODE);
	r = api_route_find("POST", &tgt, "/", allow, &err);
	REQUIRE(r && r->reply == API_REPLY_NDJSON && r->op == TOKEN_OP_EXEC);
}

TEST(captures_checked_by_kind)
{
	static const struct {
		const char *method, *target;
		silo_code code;   /* SILO_OK: accepted */
	} cases[] = {
		{"GET", "/v1/sandboxes/sb-0123456789ab", SILO_OK},
		{"GET", "/v1/sandboxes/my_box-1", SILO_OK},
		{"GET", "/v1/sandboxes/a%2Fb", SILO_ERR_VM_NOT_FOUND},   /* an escaped '/' stays in the id */
		{"GET", "/v1/sandboxes/a.b", SILO_ERR_VM_NOT_FOUND},
		{"GET", "/v1/sandboxes/a%0Ab", SILO_ERR_VM_NOT_FOUND},
		{"GET", "/v1/sandboxes/0123456789012345678901234567890123456789012345678901234567890123",
		 SILO_ERR_VM_NOT_FOUND},   /* 64 bytes: longer than any id */
		{"GET", "/v1/snapshots/tag.v1-2", SILO_OK},
		{"GET", "/v1/snapshots/..%2Fetc", SILO_ERR_INVALID_CONFIG},
		{"GET", "/v1/deployments/web", SILO_OK},
		{"GET", "/v1/deployments/a%20b", SILO_ERR_VM_NOT_FOUND},
		{"PUT", "/v1/bundles/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", SILO_OK},
		{"PUT", "/v1/bundles/0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
		 SILO_ERR_INVALID_CONFIG},
		{"PUT", "/v1/bundles/abc", SILO_ERR_INVALID_CONFIG},
		/* {proc}: a handle, a pid or a tag; anything else is no such process */
		{"GET", "/v1/sandboxes/sb-1/procs/p3", SILO_OK},
		{"GET", "/v1/sandboxes/sb-1/procs/4242/wait", SILO_OK},
		{"POST", "/v1/sandboxes/sb-1/procs/web.server-1/signal", SILO_OK},
		{"GET", "/v1/sandboxes/sb-1/procs/a%2F..%2Fb", SILO_ERR_PROCESS_NOT_FOUND},
		{"DELETE", "/v1/sandboxes/sb-1/procs/a%20b", SILO_ERR_PROCESS_NOT_FOUND},
		{"GET", "/v1/sandboxes/sb-1/procs/"
			"p12345678901234567890123456789012345678901234567890123456789012345/attach",
		 SILO_ERR_PROCESS_NOT_FOUND},   /* 66 bytes: longer than any tag */
		{"GET", "/v1/sandboxes/a.b/session", SILO_ERR_VM_NOT_FOUND},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		silo_error err = {0};
		const api_route *r = row_of(cases[i].method, cases[i].target);
		http_captures caps;
		REQUIRE(http_pattern_match(r->pattern, &tgt, &caps) >= 0);
		int rc = api_captures_check(r, &caps, &err);
		if ((rc == 0) != (cases[i].code == SILO_OK) || (rc < 0 && err.code != cases[i].code))
			printf("# %s: rc %d, %s %s\n", cases[i].target, rc, silo_code_name(err.code), err.message);
		CHECK_INT_EQ(rc < 0 ? err.code : SILO_OK, cases[i].code);
	}
}

static void count_free(void *ctx)
{
	(*(int *)ctx)++;
}

TEST(interactive_rows)
{
	/* the WebSocket routes are upgrade rows; what each needs of a scoped token */
	static const struct {
		const char *method, *target;
		api_reply_kind reply;
		int op;
	} cases[] = {
		{"GET", "/v1/sandboxes/sb-1/session", API_REPLY_UPGRADE, TOKEN_OP_EXEC},
		{"GET", "/v1/sandboxes/sb-1/procs/p1/attach", API_REPLY_UPGRADE, TOKEN_OP_EXEC},
		{"POST", "/v1/sandboxes/sb-1/procs", API_REPLY_JSON, TOKEN_OP_EXEC},
		{"GET", "/v1/sandboxes/sb-1/procs/p1/output", API_REPLY_NDJSON, TOKEN_OP_EXEC},
		{"GET", "/v1/sandboxes/sb-1/archive", API_REPLY_TAR, TOKEN_OP_FILE_READ},
		{"PUT", "/v1/sandboxes/sb-1/archive", API_REPLY_JSON, TOKEN_OP_FILE_WRITE},
		{"GET", "/v1/sandboxes/sb-1/fs/watch", API_REPLY_NDJSON, TOKEN_OP_FILE_READ},
		{"POST", "/v1/sandboxes/sb-1/fs/remove", API_REPLY_JSON, TOKEN_OP_FILE_WRITE},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const api_route *r = row_of(cases[i].method, cases[i].target);
		CHECK_INT_EQ(r->reply, cases[i].reply);
		CHECK_INT_EQ(r->op, cases[i].op);
	}
	api_reply rep = {.kind = API_REPLY_TAR};
	CHECK_STR_EQ(api_reply_content_type(&rep), "application/x-tar");
	/* an upgrade reply that is never sent is freed by its release, once */
	int freed = 0;
	api_reply up;
	memset(&up, 0, sizeof up);
	up.fd = -1;
	CHECK_INT_EQ(api_reply_upgrade(&up, &(api_upgrade){.protocol = "websocket", .free = count_free, .ctx = &freed}), 0);
	CHECK_INT_EQ(up.status, 101);
	api_reply_release(&up);
	api_reply_release(&up);
	CHECK_INT_EQ(freed, 1);
}

TEST(error_status_table)
{
	/* every code has its status; the HTTP ones their own */
	for (int c = 1; c < SILO_ERR__COUNT; c++)
		CHECK(api_http_status((silo_code)c) >= 400);
	CHECK_INT_EQ(api_http_status(SILO_ERR_NOT_FOUND), 404);
	CHECK_INT_EQ(api_http_status(SILO_ERR_VM_NOT_FOUND), 404);
	CHECK_INT_EQ(api_http_status(SILO_ERR_METHOD_NOT_ALLOWED), 405);
	CHECK_INT_EQ(api_http_status(SILO_ERR_PAYLOAD_TOO_LARGE), 413);
	CHECK_INT_EQ(api_http_status(SILO_ERR_UNSUPPORTED_MEDIA_TYPE), 415);
	CHECK_INT_EQ(api_http_status(SILO_ERR_UNAUTHORIZED), 401);
	CHECK_INT_EQ(api_http_status(SILO_ERR_FILE_NOT_FOUND), 404);
	CHECK_INT_EQ(api_http_status(SILO_ERR_PROCESS_NOT_FOUND), 404);
	CHECK_INT_EQ(api_http_status(SILO_ERR__COUNT), 500);
	silo_error e;
	silo_fail_vm(&e, SILO_ERR_IO_ERROR, EIO, "sb-1", "read");
	json_t *j = api_error_json(&e);
	CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(j, "error"), "code")), "IO_ERROR");
	CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(j, "error"), "vm_id")), "sb-1");
	CHECK_INT_EQ(json_integer_value(json_object_get(json_object_get(j, "error"), "errno")), EIO);
	json_decref(j);
}

/* ---- targets ---- */

TEST(target_segments_and_escapes)
{
	parse_ok("/", HTTP_TARGET_DECODE);
	CHECK_INT_EQ(tgt.nseg, 1);
	CHECK_STR_EQ(tgt.seg[0], "");
	parse_ok("/v1/a%20b/c%2Fd/", HTTP_TARGET_DECODE);
	REQUIRE(tgt.nseg == 4);
	CHECK_STR_EQ(tgt.seg[1], "a b");
	CHECK_STR_EQ(tgt.seg[2], "c/d");
	CHECK_STR_EQ(tgt.seg[3], "");
	parse_ok("/v1/a%20b", 0);   /* silo-vmm: as sent */
	CHECK_STR_EQ(tgt.seg[1], "a%20b");
	silo_error err;
	static const char *const bad[] = {"", "v1/x", "/a%zz", "/a%2", "/a%", "/a%00b", "/a b", "/a\tb", "/a\x7f",
					  "/x?a=%0", "/x?a=%00", "/x?=v",
					  "/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		err.code = SILO_OK;
		CHECK_INT_EQ(http_target_parse(bad[i], strlen(bad[i]), HTTP_TARGET_DECODE, &tgt, &err), -1);
		CHECK_INT_EQ(err.code, SILO_ERR_PROTOCOL);
	}
	char *big = xmalloc(HTTP_TARGET_MAX + 2);
	memset(big, 'a', HTTP_TARGET_MAX + 1);
	big[0] = '/';
	CHECK_INT_EQ(http_target_parse(big, HTTP_TARGET_MAX + 1, HTTP_TARGET_DECODE, &tgt, &err), -1);
	CHECK_CONTAINS(err.message, "longer than");
	CHECK_INT_EQ(http_target_parse(big, HTTP_TARGET_MAX, HTTP_TARGET_DECODE, &tgt, &err), 0);
	free(big);
}

TEST(target_query)
{
	parse_ok("/x?path=%2Ftmp%2Fa+b&mode=0644&flag&&empty=&metadata=k=v", HTTP_TARGET_DECODE);
	CHECK_INT_EQ(tgt.nparam, 5);
	CHECK_STR_EQ(http_target_query(&tgt, "path"), "/tmp/a b");
	CHECK_STR_EQ(http_target_query(&tgt, "mode"), "0644");
	CHECK_STR_EQ(http_target_query(&tgt, "flag"), "");
	CHECK_STR_EQ(http_target_query(&tgt, "empty"), "");
	CHECK_STR_EQ(http_target_query(&tgt, "metadata"), "k=v");
	CHECK(http_target_query(&tgt, "nope") == NULL);
	silo_error err;
	CHECK_INT_EQ(http_target_parse("/x?a=1&a=2", 10, HTTP_TARGET_DECODE, &tgt, &err), -1);
	CHECK_INT_EQ(err.code, SILO_ERR_INVALID_CONFIG);
	CHECK_CONTAINS(err.message, "query parameter a: given more than once");
	CHECK_INT_EQ(http_target_parse("/x?a=1&%61=2", 12, HTTP_TARGET_DECODE, &tgt, &err), -1);   /* %61 is a */
	char many[512] = "/x?";
	for (int i = 0; i <= HTTP_PARAMS_MAX; i++)
		snprintf(many + strlen(many), sizeof many - strlen(many), "p%d=1&", i);
	CHECK_INT_EQ(http_target_parse(many, strlen(many), HTTP_TARGET_DECODE, &tgt, &err), -1);
	CHECK_CONTAINS(err.message, "more than 32 parameters");
	/* the integer helper handlers use */
	parse_ok("/x?n=0x10&m=010&bad=1x&neg=-1&big=1001", HTTP_TARGET_DECODE);
	api_req q = {.target = &tgt};
	uint64_t v = 7;
	CHECK_INT_EQ(api_query_uint(&q, "absent", 1000, &v, &err), 0);
	CHECK_INT_EQ(v, 7);
	CHECK_INT_EQ(api_query_uint(&q, "n", 1000, &v, &err), 0);
	CHECK_INT_EQ(v, 16);
	CHECK_INT_EQ(api_query_uint(&q, "m", 1000, &v, &err), 0);
	CHECK_INT_EQ(v, 8);
	for (const char *const *k = (const char *const[]){"bad", "neg", "big", NULL}; *k; k++) {
		CHECK_INT_EQ(api_query_uint(&q, *k, 1000, &v, &err), -1);
		CHECK_CONTAINS(err.message, "query parameter");
		CHECK_INT_EQ(err.code, SILO_ERR_INVALID_CONFIG);
	}
}

TEST(patterns)
{
	CHECK(http_pattern_valid("/"));
	CHECK(http_pattern_valid("/v1/sandboxes/{id}/exec"));
	static const char *const bad[] = {"", "v1", "/v1/", "//x", "/{}", "/{ID}", "/a{id}", "/{a}/{a}", "/{a-b}",
					  "/x?y", "/{a}/{b}/{c}/{d}/{e}"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (http_pattern_valid(bad[i]))
			printf("# accepted: '%s'\n", bad[i]);
		CHECK(!http_pattern_valid(bad[i]));
	}
	parse_ok("/v1/sandboxes/x/exec", 0);
	http_captures caps;
	int literal = http_pattern_match("/v1/sandboxes/x/exec", &tgt, &caps);
	int capture = http_pattern_match("/v1/sandboxes/{id}/exec", &tgt, &caps);
	CHECK(capture >= 0 && literal > capture);
	CHECK_STR_EQ(http_capture(&caps, "id"), "x");
	CHECK(http_capture(&caps, "other") == NULL);
	CHECK_INT_EQ(http_pattern_match("/v1/sandboxes/{id}", &tgt, NULL), -1);
	CHECK_INT_EQ(http_pattern_match("/v1/sandboxes/{id}/exec/more", &tgt, NULL), -1);
	parse_ok("/v1/sandboxes//exec", 0);
	CHECK_INT_EQ(http_pattern_match("/v1/sandboxes/{id}/exec", &tgt, NULL), -1);   /* captures are non-empty */
}

/* ---- silo-vmm ---- */

TEST(vmm_rows_well_formed)
{
	for (size_t i = 0; i < vmm_api_n_routes; i++) {
		const vmm_route *r = &vmm_api_routes[i];
		check_row(r->method, r->pattern, r->fn != NULL);
		CHECK(strcmp(r->method, "GET") || !r->body);
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(vmm_api_routes[j].method, r->method) || strcmp(vmm_api_routes[j].pattern, r->pattern));
	}
}

TEST(vmm_md_and_vmm_table_agree)
{
	static doc_route doc[DOC_ROUTES_MAX];
	size_t n = doc_routes("docs/vmm.md", backtick_routes, doc);
	static bool row_seen[64];
	REQUIRE(vmm_api_n_routes <= ARRAY_SIZE(row_seen));
	http_table tab = HTTP_TABLE(vmm_api_routes, vmm_api_n_routes, vmm_route);
	for (size_t j = 0; j < n; j++) {
		silo_error err;
		char allow[64];
		long i = -1;
		if (http_target_parse(doc[j].path, strlen(doc[j].path), 0, &tgt, &err) == 0)
			i = http_route_lookup(&tab, doc[j].method, &tgt, allow, sizeof allow);
		if (i < 0)
			printf("# in docs/vmm.md, not in vmm/control_api.c: %s %s\n", doc[j].method, doc[j].path);
		CHECK(i >= 0);
		if (i >= 0)
			row_seen[i] = true;
	}
	for (size_t i = 0; i < vmm_api_n_routes; i++) {
		if (!row_seen[i])
			printf("# in vmm/control_api.c, not in docs/vmm.md: %s %s\n", vmm_api_routes[i].method,
			       vmm_api_routes[i].pattern);
		CHECK(row_seen[i]);
	}
}

TEST_MAIN(silod_rows_well_formed, openapi_and_silod_table_agree, openapi_reader_sees_a_missing_route,
	  lookup_most_specific_and_405, captures_checked_by_kind, interactive_rows, error_status_table, target_segments_and_escapes,
	  target_query, patterns, vmm_rows_well_formed, vmm_md_and_vmm_table_agree)
