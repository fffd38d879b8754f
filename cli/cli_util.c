/* SPDX-License-Identifier: Apache-2.0
 * Helpers shared by the verbs that talk to silod (cmd_daemon.c, cmd_deploy.c, cmd_snapshot.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api_client.h"
#include "cli/cli.h"
#include "common/util.h"

bool cli_want_json(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "--json"))
			return true;
	}
	return false;
}

int cli_usage_error(const char *verb, const char *usage, bool json)
{
	silo_error e = {.code = SILO_ERR_INVALID_CONFIG};
	snprintf(e.message, sizeof e.message, "usage: silo %s %s", verb, usage);
	return cli_error(&e, json);
}

void cli_print_json(json_t *o)
{
	char *s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
	printf("%s\n", s);
	free(s);
}

const char *cli_jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

json_int_t cli_jint(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

double cli_jnum(json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

int cli_call_json(const char *method, const char *path, json_t *body, bool json, json_t **out)
{
	*out = NULL;
	api_client *c;
	silo_error err;
	if (api_client_new(&c, &err) < 0)
		return cli_error(&err, json);
	char *txt = body ? json_dumps(body, JSON_COMPACT) : NULL;
	char *resp = NULL;
	size_t rl = 0;
	int rc = api_call(c, method, path, txt ? "application/json" : NULL, txt, txt ? strlen(txt) : 0, &resp, &rl,
			  &err);
	free(txt);
	api_client_free(c);
	if (rc < 0)
		return cli_error(&err, json);
	*out = json_loadb(resp ? resp : "", rl, 0, NULL);
	free(resp);
	if (!*out) {
		silo_fail(&err, SILO_ERR_PROTOCOL, 0, "silod answered %s %s with a body that is not JSON", method, path);
		return cli_error(&err, json);
	}
	return 0;
}
