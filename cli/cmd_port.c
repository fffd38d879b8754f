/* SPDX-License-Identifier: Apache-2.0
 * silo port: forward a sandbox's port to this host through silod
 * (docs/network.md "Port forwarding").
 *
 *   silo port ID                      list the forwards
 *   silo port ID PORT [--listen 127.0.0.1:HOSTPORT | --unix PATH]
 *   silo port ID PORT --rm            close every forward of PORT
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api_client.h"
#include "cli/cli.h"
#include "common/util.h"

static const char usage_text[] = "ID [PORT [--listen 127.0.0.1:HOSTPORT | --unix PATH | --rm]] [--json]";

static int parse_port(const char *s, long *port)
{
	char *end;
	*port = strtol(s, &end, 10);
	return *s && !*end && *port >= 1 && *port <= 65535 ? 0 : -1;
}

int cli_port_publish(api_client *cl, const char *id, const char *spec, bool json, json_t **out)
{
	/* GUEST_PORT[=127.0.0.1:PORT | =/unix/path] */
	char buf[4200];
	snprintf(buf, sizeof buf, "%s", spec);
	char *eq = strchr(buf, '=');
	if (eq)
		*eq++ = '\0';
	long port;
	silo_error err;
	if (parse_port(buf, &port) < 0) {
		silo_fail(&err, SILO_ERR_INVALID_CONFIG, 0, "--publish: expected GUEST_PORT[=127.0.0.1:PORT|=/path], got \"%s\"",
			  spec);
		return cli_error(&err, json);
	}
	json_t *body = json_pack("{s:i}", "port", (int)port);
	if (eq && eq[0] == '/')
		json_object_set_new(body, "unix", json_string(eq));
	else if (eq)
		json_object_set_new(body, "listen", json_string(eq));
	char *txt = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	char *e = api_escape(id), *resp = NULL, path[512];
	snprintf(path, sizeof path, "/v1/sandboxes/%s/ports", e);
	free(e);
	size_t rl = 0;
	int rc = api_call(cl, "POST", path, "application/json", txt, strlen(txt), &resp, &rl, &err);
	free(txt);
	if (rc < 0)
		return cli_error(&err, json);
	*out = json_loadb(resp ? resp : "", rl, 0, NULL);
	free(resp);
	return *out ? 0 : cli_error(&err, json);
}

int cmd_port(int argc, char **argv)
{
	bool json = cli_want_json(argc, argv);
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},     {"listen", required_argument, NULL, 'l'},
		{"unix", required_argument, NULL, 'u'}, {"rm", no_argument, NULL, 'r'},
		{NULL, 0, NULL, 0},
	};
	const char *listen = NULL, *unix_path = NULL;
	bool rm = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'j': break;
		case 'l': listen = optarg; break;
		case 'u': unix_path = optarg; break;
		case 'r': rm = true; break;
		default: return cli_usage_error(argv[0], usage_text, json);
		}
	}
	int npos = argc - optind;
	if (npos < 1 || npos > 2 || (npos == 1 && (listen || unix_path || rm)) || (listen && unix_path) ||
	    (rm && (listen || unix_path)))
		return cli_usage_error(argv[0], usage_text, json);
	const char *id = argv[optind];
	char *eid = api_escape(id), path[512];
	json_t *out = NULL;
	int rc;
	if (npos == 1) {
		snprintf(path, sizeof path, "/v1/sandboxes/%s/ports", eid);
		free(eid);
		if ((rc = cli_call_json("GET", path, NULL, json, &out)))
			return rc;
		if (json) {
			cli_print_json(out);
		} else {
			size_t i;
			json_t *f;
			json_array_foreach(json_object_get(out, "ports"), i, f)
				printf("%lld -> %s (%lld connections, %lld open)\n", (long long)cli_jint(f, "port"),
				       cli_jstr(f, "listen")[0] ? cli_jstr(f, "listen") : cli_jstr(f, "unix"),
				       (long long)cli_jint(f, "connections"), (long long)cli_jint(f, "open"));
		}
		json_decref(out);
		return 0;
	}
	long port;
	silo_error err;
	if (parse_port(argv[optind + 1], &port) < 0) {
		free(eid);
		silo_fail(&err, SILO_ERR_INVALID_CONFIG, 0, "port: expected 1-65535, got \"%s\"", argv[optind + 1]);
		return cli_error(&err, json);
	}
	if (rm) {
		snprintf(path, sizeof path, "/v1/sandboxes/%s/ports?port=%ld", eid, port);
		free(eid);
		if ((rc = cli_call_json("DELETE", path, NULL, json, &out)))
			return rc;
		if (json)
			cli_print_json(out);
		json_decref(out);
		return 0;
	}
	free(eid);
	api_client *cl;
	if (api_client_new(&cl, &err) < 0)
		return cli_error(&err, json);
	char spec[4200];
	snprintf(spec, sizeof spec, "%ld%s%s", port, listen || unix_path ? "=" : "", listen ? listen : unix_path ? unix_path : "");
	rc = cli_port_publish(cl, id, spec, json, &out);
	api_client_free(cl);
	if (rc)
		return rc;
	if (json)
		cli_print_json(out);
	else
		printf("%s\n", cli_jstr(out, "listen")[0] ? cli_jstr(out, "listen") : cli_jstr(out, "unix"));
	json_decref(out);
	return 0;
}
