/* SPDX-License-Identifier: Apache-2.0
 * silo target add|ls|rm|queue|cancel: the remote targets of a silod
 * (daemon/targets.h, docs/remote.md). add reads the token and PEM files here
 * and sends them to silod, which checks the target before keeping it.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api_client.h"
#include "cli/cli.h"
#include "common/util.h"

static const char usage_text[] =
	"add NAME URL --token-file F [--ca F] [--cert F --key F] | ls | rm NAME [--force] | queue NAME | "
	"cancel NAME SEQ  [--json]";

static int add(int argc, char **argv, bool json)
{
	static const struct option opts[] = {
		{"token-file", required_argument, NULL, 't'}, {"ca", required_argument, NULL, 'a'},
		{"cert", required_argument, NULL, 'c'},       {"key", required_argument, NULL, 'k'},
		{"json", no_argument, NULL, 'j'},             {NULL, 0, NULL, 0},
	};
	const char *files[4] = {NULL};   /* token, ca, cert, key */
	static const char *const member[4] = {"token", "ca", "cert", "key"};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 't': files[0] = optarg; break;
		case 'a': files[1] = optarg; break;
		case 'c': files[2] = optarg; break;
		case 'k': files[3] = optarg; break;
		case 'j': break;
		default: return cli_usage_error("target", usage_text, json);
		}
	}
	if (argc - optind != 2 || !files[0])
		return cli_usage_error("target", usage_text, json);
	json_t *body = json_pack("{s:s,s:s}", "name", argv[optind], "url", argv[optind + 1]);
	for (int i = 0; i < 4; i++) {
		if (!files[i])
			continue;
		char *buf;
		size_t len;
		silo_error err;
		if (read_file(files[i], 1 << 20, &buf, &len, &err) < 0) {
			json_decref(body);
			return cli_error(&err, json);
		}
		while (i == 0 && len && strchr("\r\n\t ", buf[len - 1]))
			buf[--len] = '\0';
		json_object_set_new(body, member[i], json_stringn(buf, len));
		explicit_bzero(buf, len);
		free(buf);
	}
	int rc = cli_call_show("POST", "/v1/targets", body, json, "name");
	json_decref(body);
	return rc;
}

static void target_header(void)
{
	printf("%-16s %-8s %-32s %-10s %9s %6s  %s\n", "NAME", "STATE", "URL", "VERSION", "SANDBOXES", "QUEUED",
	       "LAST ERROR");
}

static void target_row(json_t *t)
{
	printf("%-16s %-8s %-32s %-10s %9" JSON_INTEGER_FORMAT " %6" JSON_INTEGER_FORMAT "  %s\n", cli_jstr(t, "name"),
	       cli_jstr(t, "state"), cli_jstr(t, "url"), cli_jstr(json_object_get(t, "info"), "version"),
	       cli_jint(t, "sandboxes"), cli_jint(t, "queued"), cli_jstr(t, "last_error"));
}

static void queue_header(void)
{
	printf("%6s %-10s %-7s %-40s %s\n", "SEQ", "STATE", "METHOD", "PATH", "KEY");
}

static void queue_row(json_t *x)
{
	printf("%6" JSON_INTEGER_FORMAT " %-10s %-7s %-40s %s\n", cli_jint(x, "seq"), cli_jstr(x, "state"),
	       cli_jstr(x, "method"), cli_jstr(x, "path"), cli_jstr(x, "idempotency_key"));
}

static int ls(bool json)
{
	return cli_list("/v1/targets", "targets", json, target_header, target_row);
}

static int queue(const char *name, bool json)
{
	char *e = api_escape(name), path[256];
	snprintf(path, sizeof path, "/v1/targets/%s/queue", e);
	free(e);
	return cli_list(path, "queue", json, queue_header, queue_row);
}

int cmd_target(int argc, char **argv)
{
	bool json = cli_want_json(argc, argv);
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		printf("usage: silo target %s\n"
		       "Remote silods this silod places sandboxes on (silo create --target NAME); docs/remote.md.\n",
		       usage_text);
		return argc < 2 ? 2 : 0;
	}
	const char *sub = argv[1];
	if (!strcmp(sub, "add"))
		return add(argc - 1, argv + 1, json);
	const char *pos[3] = {NULL};
	int np = 0;
	bool force = false;
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			continue;
		if (!strcmp(argv[i], "--force") || !strcmp(argv[i], "-f"))
			force = true;
		else if (np < 3)
			pos[np++] = argv[i];
		else
			return cli_usage_error("target", usage_text, json);
	}
	if ((!strcmp(sub, "ls") || !strcmp(sub, "list")) && np == 0)
		return ls(json);
	if (!strcmp(sub, "queue") && np == 1)
		return queue(pos[0], json);
	if ((!strcmp(sub, "rm") || !strcmp(sub, "cancel")) && np == (sub[0] == 'r' ? 1 : 2)) {
		char *e = api_escape(pos[0]), path[512];
		if (sub[0] == 'r')
			snprintf(path, sizeof path, "/v1/targets/%s%s", e, force ? "?force=true" : "");
		else
			snprintf(path, sizeof path, "/v1/targets/%s/queue?seq=%.20s", e, pos[1]);
		free(e);
		json_t *o;
		int rc = cli_call_json("DELETE", path, NULL, json, &o);
		if (rc)
			return rc;
		if (json)
			cli_print_json(o);
		else
			printf("%s\n", sub[0] == 'r' ? pos[0] : pos[1]);
		json_decref(o);
		return 0;
	}
	return cli_usage_error("target", usage_text, json);
}
