/* SPDX-License-Identifier: Apache-2.0
 * Helpers shared by the verbs that talk to silod (cmd_daemon.c, cmd_deploy.c, cmd_snapshot.c)
 * and by run/create for --secret and --secret-file.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api_client.h"
#include "cli/cli.h"
#include "common/util.h"
#include "spec/spec.h"

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

int cli_call_show(const char *method, const char *path, json_t *body, bool json, const char *field)
{
	json_t *o;
	int rc = cli_call_json(method, path, body, json, &o);
	if (rc)
		return rc;
	json_t *v = field ? json_object_get(o, field) : NULL, *e;
	size_t i;
	if (json)
		cli_print_json(o);
	else if (json_is_array(v))
		json_array_foreach(v, i, e) printf("%s\n", json_string_value(e));
	else if (field)
		printf("%s\n", cli_jstr(o, field));
	json_decref(o);
	return 0;
}

int cli_delete_each(const char *coll, char *const *names, int n, const char *query, bool json,
		    void (*line)(json_t *o))
{
	int rc = 0;
	json_t *results = json_array();
	for (int i = 0; i < n; i++) {
		char *e = api_escape(names[i]);
		char *path = xasprintf("/v1/%s/%s%s", coll, e, query);
		free(e);
		json_t *o;
		int r = cli_call_json("DELETE", path, NULL, json, &o);
		free(path);
		if (r) {
			rc = r;
			continue;
		}
		if (json)
			json_array_append(results, o);
		else
			line(o);
		json_decref(o);
	}
	if (json && json_array_size(results))
		cli_print_json(results);
	json_decref(results);
	return rc;
}

bool cli_print_queued(json_t *o)
{
	if (!json_object_get(o, "queued"))
		return false;
	printf("queued %" JSON_INTEGER_FORMAT " for target %s\n", cli_jint(o, "queued"), cli_jstr(o, "target"));
	return true;
}

int cli_call_table(const char *method, const char *path, json_t *body, bool json, json_t **out)
{
	int rc = cli_call_json(method, path, body, json, out);
	if (rc || !json)
		return rc;
	cli_print_json(*out);
	json_decref(*out);
	*out = NULL;
	return 0;
}

int cli_operands(int argc, char **argv, const char *u, bool json, const cli_opargs *oa, const char **ops, int min,
		 int max)
{
	static const cli_opargs none;
	if (!oa)
		oa = &none;
	int n = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--json"))
			continue;
		if (oa->flag && !strcmp(a, oa->flag)) {
			*oa->on = true;
			continue;
		}
		if (oa->valflag && !strcmp(a, oa->valflag) && i + 1 < argc) {
			*oa->val = strtoll(argv[++i], NULL, 10);
			continue;
		}
		bool neg_num = a[0] == '-' && a[1] >= '0' && a[1] <= '9' && n == max - 1 && n >= min;
		if ((a[0] == '-' && !neg_num) || n == max)
			return cli_usage_error(argv[0], u, json);
		ops[n++] = neg_num ? a + 1 : a;
	}
	return n < min ? cli_usage_error(argv[0], u, json) : 0;
}

int cli_sub_run(const cli_sub *subs, size_t n, void (*usage)(FILE *), int argc, char **argv)
{
	if (usage && (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < n && argc >= 2; i++)
		if (!strcmp(subs[i].name, argv[1]))
			return subs[i].fn(argc - 1, argv + 1);
	return -1;
}

bool cli_exit_oom(json_t *exit)
{
	return json_is_true(json_object_get(exit, "oom_killed"));
}

void cli_note_oom(const char *id, long long memory_mb)
{
	api_client *c;
	silo_error err;
	if (memory_mb <= 0 && id && api_client_new(&c, &err) == 0) {
		char *eid = api_escape(id), path[1024], *resp = NULL;
		size_t rl = 0;
		snprintf(path, sizeof path, "/v1/sandboxes/%s", eid);
		free(eid);
		if (api_call(c, "GET", path, NULL, NULL, 0, &resp, &rl, &err) == 0) {
			json_t *o = json_loadb(resp ? resp : "", rl, 0, NULL);
			memory_mb = o ? cli_jint(o, "memory_mb") : 0;
			json_decref(o);
		}
		free(resp);
		api_client_free(c);
	}
	if (memory_mb > 0)
		fprintf(stderr, "silo: command OOM-killed (memory limit %lld MiB)\n", memory_mb);
	else
		fprintf(stderr, "silo: command OOM-killed\n");
}

int cli_list(const char *path, const char *key, bool json, void (*header)(void), void (*row)(json_t *item))
{
	json_t *o;
	int rc = cli_call_json("GET", path, NULL, json, &o);
	if (rc)
		return rc;
	json_t *a = json_object_get(o, key);
	if (json) {
		cli_print_json(a);
	} else {
		header();
		size_t i;
		json_t *item;
		json_array_foreach(a, i, item)
			row(item);
	}
	json_decref(o);
	return 0;
}

/* A secret travels in JSON and TOML: UTF-8 text, bounded, not the redaction mark. */
static int check_secret_text(const char *opt, const char *key, const char *v, silo_error *err)
{
	json_t *t = strlen(v) <= SPEC_SECRET_MAX && strcmp(v, SPEC_SECRET_REDACTED) ? json_string(v) : NULL;
	if (t) {
		json_decref(t);
		return 0;
	}
	return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
			 "%s %s: a secret is UTF-8 text of at most %d bytes and not \"%s\" (encode binary secrets, e.g. "
			 "base64)",
			 opt, key, SPEC_SECRET_MAX, SPEC_SECRET_REDACTED);
}

void cli_secret_free(char *value);

int cli_secret_arg(const char *opt, const char *arg, bool file, const char *marked, char **key, char **value,
		   silo_error *err)
{
	*key = *value = NULL;
	const char *eq = strchr(arg, '=');
	size_t kl = eq ? (size_t)(eq - arg) : strlen(arg);
	bool ok = kl > 0 && kl <= 256 && !isdigit((unsigned char)arg[0]);
	for (size_t i = 0; i < kl && ok; i++)
		ok = isalnum((unsigned char)arg[i]) || arg[i] == '_';
	if (!ok || (file && !eq))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: expected %s, with NAME of [A-Za-z_][A-Za-z0-9_]*", opt,
				 file ? "NAME=PATH" : "NAME=VALUE, or NAME (the value of -e NAME=..., else of $NAME here)");
	*key = xstrndup(arg, kl);
	if (file) {
		if (spec_read_secret_file(eq + 1, value, err) < 0) {
			silo_error_prefix(err, "%s %s", opt, *key);
			goto fail;
		}
		if (check_secret_text(opt, *key, *value, err) < 0) {
			cli_secret_free(*value);
			*value = NULL;
			goto fail;
		}
		return 0;
	}
	const char *v = eq ? eq + 1 : marked ? marked : getenv(*key);
	if (!v) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s %s: no value given, no -e %s=..., and $%s is not set", opt,
			  *key, *key, *key);
		goto fail;
	}
	if (check_secret_text(opt, *key, v, err) < 0)
		goto fail;
	*value = xstrdup(v);
	return 0;
fail:
	free(*key);
	*key = NULL;
	return -1;
}

void cli_secret_free(char *value)
{
	if (value) {
		explicit_bzero(value, strlen(value));
		free(value);
	}
}

int cli_apply_network(vm_spec *spec, bool network, char *const *egress, size_t n, silo_error *err)
{
	if (!network && !n)
		return 0;
	spec->network = true;
	for (size_t i = 0; i < n; i++) {
		if (spec->n_egress == SPEC_MAX_EGRESS)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--egress: at most %d entries", SPEC_MAX_EGRESS);
		spec->egress[spec->n_egress++] = xstrdup(egress[i]);
	}
	return spec_validate(spec, err);
}

void cli_print_denial(void *ud, struct sandbox *sb, const char *json_record)
{
	(void)ud;
	(void)sb;
	json_t *o = json_loads(json_record, 0, NULL);
	const char *rule = cli_jstr(o, "rule");
	if (rule[0])
		fprintf(stderr, "silo: egress denied: %s %s: %s (entry \"%s\")\n", cli_jstr(o, "kind"),
			cli_jstr(o, "destination"), cli_jstr(o, "reason"), rule);
	else
		fprintf(stderr, "silo: egress denied: %s %s: %s\n", cli_jstr(o, "kind"), cli_jstr(o, "destination"),
			cli_jstr(o, "reason"));
	json_decref(o);
}

/* "ID:/path" -> id, path; a plain local path returns false. */
bool cli_split_remote(const char *s, char *id, size_t idlen, const char **path)
{
	const char *colon = strchr(s, ':');
	if (!colon || colon == s || colon[1] != '/' || (size_t)(colon - s) >= idlen)
		return false;
	if (memchr(s, '/', (size_t)(colon - s)))
		return false;   /* "./a:/b" is a local path */
	memcpy(id, s, (size_t)(colon - s));
	id[colon - s] = '\0';
	*path = colon + 1;
	return true;
}

/* Append ?target=T&idempotency_key=K (those given) to path. */
void cli_remote_query(char *path, size_t len, const char *target, const char *idem_key)
{
	const char *qk[2] = {"target", "idempotency_key"}, *qv[2] = {target, idem_key};
	for (int i = 0; i < 2; i++) {
		if (!qv[i])
			continue;
		char *e = api_escape(qv[i]);
		size_t off = strlen(path);
		snprintf(path + off, len - off, "%c%s=%s", strchr(path, '?') ? '&' : '?', qk[i], e);
		free(e);
	}
}
