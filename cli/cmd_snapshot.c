/* SPDX-License-Identifier: Apache-2.0
 * Snapshot verbs, thin clients of silod (docs/snapshots.md):
 *   silo snapshot ID [--tag T]... [--keep-paused] [--ttl SECONDS]
 *   silo snapshot ls | inspect SNAP [--verify] | rm SNAP... [--force] | gc [--max-age SECONDS]
 *   silo snapshot tag SNAP [+T|-T]...
 *   silo snapshots                 (= snapshot ls)
 *   silo restore SNAP              (SNAP = snapshot id or tag)
 *   silo fork ID -n N
 *   silo pause ID / silo resume ID
 * Every verb takes --json.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api_client.h"
#include "cli/cli.h"
#include "common/util.h"

/* pre + escaped id + post */
static char *path_for(const char *pre, const char *id, const char *post)
{
	char *e = api_escape(id);
	char *p = xasprintf("%s%s%s", pre, e, post);
	free(e);
	return p;
}

/* METHOD pre + escaped ID + post, with BODY (not consumed) -> parsed JSON
 * response (or error exit status). */
static int call_on(const char *method, const char *pre, const char *id, const char *post, json_t *body, bool json,
		   json_t **out)
{
	char *p = path_for(pre, id, post);
	int rc = cli_call_json(method, p, body, json, out);
	free(p);
	return rc;
}

/* The same, the answer shown by cli_call_show (with --json, else its member field). */
static int show_on(const char *method, const char *pre, const char *id, const char *post, json_t *body, bool json,
		   const char *field)
{
	char *p = path_for(pre, id, post);
	int rc = cli_call_show(method, p, body, json, field);
	free(p);
	return rc;
}

static void print_snapshot_row(json_t *s)
{
	if (json_object_get(s, "error")) {
		printf("%-18s %s\n", cli_jstr(s, "id"), cli_jstr(json_object_get(s, "error"), "message"));
		return;
	}
	json_t *tags = json_object_get(s, "tags");
	char t[256] = "";
	size_t off = 0, i;
	json_t *v;
	json_array_foreach(tags, i, v) off += (size_t)snprintf(t + off, off < sizeof t ? sizeof t - off : 0, "%s%s",
							       i ? "," : "", json_string_value(v));
	printf("%-18s %-9s %-10s %-16s %10" JSON_INTEGER_FORMAT "  %-24s %s%s%s\n", cli_jstr(s, "id"), cli_jstr(s, "kind"),
	       cli_jstr(s, "provider"), cli_jstr(s, "source"), json_integer_value(json_object_get(s, "bytes")), cli_jstr(s, "created"),
	       t[0] ? t : "-", json_object_get(s, "in_use_by") ? "  in use by " : "", cli_jstr(s, "in_use_by"));
}

static void print_snapshot_header(void)
{
	printf("%-18s %-9s %-10s %-16s %10s  %-24s %s\n", "ID", "KIND", "PROVIDER", "SOURCE", "BYTES", "CREATED", "TAGS");
}

static int snap_list(bool json)
{
	return cli_list("/v1/snapshots", "snapshots", json, print_snapshot_header, print_snapshot_row);
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (!*s || *end || s[0] == '-')
		return -1;
	*out = v;
	return 0;
}

static int snap_take(int argc, char **argv, bool json)
{
	const char *U = "ID [--tag T]... [--keep-paused] [--ttl SECONDS] [--json]";
	const char *id = NULL;
	json_t *body = json_object(), *tags = json_array();
	int rc = 0;
	for (int i = 1; i < argc && !rc; i++) {
		uint64_t v;
		if (!strcmp(argv[i], "--json"))
			continue;
		if (!strcmp(argv[i], "--tag") && i + 1 < argc)
			json_array_append_new(tags, json_string(argv[++i]));
		else if (!strcmp(argv[i], "--keep-paused"))
			json_object_set_new(body, "keep_paused", json_true());
		else if (!strcmp(argv[i], "--ttl") && i + 1 < argc && parse_u64(argv[i + 1], &v) == 0 && ++i)
			json_object_set_new(body, "ttl_s", json_integer((json_int_t)v));
		else if (argv[i][0] != '-' && !id)
			id = argv[i];
		else
			rc = cli_usage_error("snapshot", U, json);
	}
	if (!rc && !id)
		rc = cli_usage_error("snapshot", U, json);
	if (rc) {
		json_decref(body);
		json_decref(tags);
		return rc;
	}
	if (json_array_size(tags))
		json_object_set(body, "tags", tags);
	json_decref(tags);
	rc = show_on("POST", "/v1/sandboxes/", id, "/snapshot", body, json, "id");
	json_decref(body);
	return rc;
}

int cmd_snapshots(int argc, char **argv)
{
	return snap_list(cli_want_json(argc, argv));
}

int cmd_snapshot(int argc, char **argv)
{
	bool json = cli_want_json(argc, argv);
	const char *U = "ID [--tag T]... [--keep-paused] [--ttl S] | ls | inspect SNAP [--verify] | rm SNAP... "
			"[--force] | gc [--max-age S] | tag SNAP +T|-T... [--json]";
	if (argc < 2)
		return cli_usage_error("snapshot", U, json);
	const char *sub = argv[1];
	if (!strcmp(sub, "ls") || !strcmp(sub, "list"))
		return snap_list(json);
	if (!strcmp(sub, "inspect")) {
		const char *id = NULL;
		bool verify = false;
		for (int i = 2; i < argc; i++) {
			if (!strcmp(argv[i], "--verify"))
				verify = true;
			else if (strcmp(argv[i], "--json") != 0)
				id = argv[i];
		}
		if (!id)
			return cli_usage_error("snapshot", "inspect SNAP [--verify] [--json]", json);
		json_t *o;
		int rc = call_on("GET", "/v1/snapshots/", id, verify ? "?verify=true" : "", NULL, json, &o);
		if (rc)
			return rc;
		cli_print_json(o);
		json_decref(o);
		return 0;
	}
	if (!strcmp(sub, "rm")) {
		bool force = false;
		int rc = 0, n = 0;
		for (int i = 2; i < argc; i++)
			force |= !strcmp(argv[i], "--force") || !strcmp(argv[i], "-f");
		for (int i = 2; i < argc; i++) {
			if (argv[i][0] == '-')
				continue;
			n++;
			int r = show_on("DELETE", "/v1/snapshots/", argv[i], force ? "?force=true" : "", NULL, json, "id");
			if (r)
				rc = r;
		}
		return n ? rc : cli_usage_error("snapshot", "rm SNAP... [--force] [--json]", json);
	}
	if (!strcmp(sub, "gc")) {
		json_t *body = json_object();
		for (int i = 2; i < argc; i++) {
			uint64_t v;
			if (!strcmp(argv[i], "--max-age") && i + 1 < argc && parse_u64(argv[i + 1], &v) == 0) {
				json_object_set_new(body, "max_age_s", json_integer((json_int_t)v));
				i++;
			} else if (strcmp(argv[i], "--json") != 0) {
				json_decref(body);
				return cli_usage_error("snapshot", "gc [--max-age SECONDS] [--json]", json);
			}
		}
		int rc = cli_call_show("POST", "/v1/snapshots/gc", body, json, "removed");
		json_decref(body);
		return rc;
	}
	if (!strcmp(sub, "tag")) {
		const char *id = NULL;
		json_t *add = json_array(), *rm = json_array();
		for (int i = 2; i < argc; i++) {
			if (!strcmp(argv[i], "--json"))
				continue;
			if (!id)
				id = argv[i];
			else if (argv[i][0] == '-')
				json_array_append_new(rm, json_string(argv[i] + 1));
			else
				json_array_append_new(add, json_string(argv[i][0] == '+' ? argv[i] + 1 : argv[i]));
		}
		if (!id || json_array_size(add) + json_array_size(rm) == 0) {
			json_decref(add);
			json_decref(rm);
			return cli_usage_error("snapshot", "tag SNAP [+]TAG|-TAG... [--json]", json);
		}
		json_t *body = json_pack("{s:o,s:o}", "add", add, "remove", rm);
		json_t *o;
		int rc = call_on("POST", "/v1/snapshots/", id, "/tags", body, json, &o);
		json_decref(body);
		if (rc)
			return rc;
		if (json)
			cli_print_json(o);
		else
			print_snapshot_row(o);
		json_decref(o);
		return 0;
	}
	return snap_take(argc, argv, json);
}

int cmd_restore(int argc, char **argv)
{
	bool json = cli_want_json(argc, argv);
	const char *U = "SNAP [--json]   (SNAP = snapshot id or tag)";
	const char *snap = NULL;
	int bad = cli_operands(argc, argv, U, json, NULL, &snap, 1, 1);
	if (bad)
		return bad;
	return show_on("POST", "/v1/snapshots/", snap, "/restore", NULL, json, "id");
}

int cmd_fork(int argc, char **argv)
{
	bool json = cli_want_json(argc, argv);
	const char *U = "ID -n N [--json]";
	const char *id = NULL;
	uint64_t n = 1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			continue;
		if (!strcmp(argv[i], "-n") && i + 1 < argc) {
			if (parse_u64(argv[++i], &n) < 0 || n < 1 || n > 256) {
				silo_error e = {.code = SILO_ERR_INVALID_CONFIG};
				snprintf(e.message, sizeof e.message, "-n: expected an integer from 1 to 256, got \"%.40s\"",
					 argv[i]);
				return cli_error(&e, json);
			}
		} else if (argv[i][0] != '-' && !id) {
			id = argv[i];
		} else {
			return cli_usage_error("fork", U, json);
		}
	}
	if (!id)
		return cli_usage_error("fork", U, json);
	json_t *body = json_pack("{s:I}", "n", (json_int_t)n);
	int rc = show_on("POST", "/v1/sandboxes/", id, "/fork", body, json, "sandboxes");
	json_decref(body);
	return rc;
}

static int pause_resume(int argc, char **argv, const char *what)
{
	bool json = cli_want_json(argc, argv);
	int rc = 0, n = 0;
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-')
			continue;
		n++;
		char *post = xasprintf("/%s", what);
		json_t *o;
		int r = call_on("POST", "/v1/sandboxes/", argv[i], post, NULL, json, &o);
		free(post);
		if (r) {
			rc = r;
			continue;
		}
		if (json)
			cli_print_json(o);
		else
			printf("%s %s\n", cli_jstr(o, "id"), cli_jstr(o, "state"));
		json_decref(o);
	}
	return n ? rc : cli_usage_error(argv[0], "ID... [--json]", json);
}

int cmd_pause(int argc, char **argv)
{
	return pause_resume(argc, argv, "pause");
}

int cmd_resume(int argc, char **argv)
{
	return pause_resume(argc, argv, "resume");
}
