/* SPDX-License-Identifier: Apache-2.0
 * silo config validate|format|default: hac.toml tooling (docs/hac-toml.md).
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "common/util.h"
#include "spec/spec.h"

static void usage(FILE *f)
{
	fputs("usage: silo config validate [--json] [--capacity] FILE...\n"
	      "       silo config format [--write] FILE\n"
	      "       silo config default PROVIDER      (kvm, qemu or namespace)\n"
	      "Exit status: 0 if valid, 125 with INVALID_CONFIG (line:col: field: expected ...) otherwise.\n",
	      f);
}

static int validate(int argc, char **argv)
{
	bool json = false, capacity = false;
	int files = 0, bad = 0;
	json_t *results = json_array();
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
			continue;
		}
		if (!strcmp(argv[i], "--capacity")) {
			capacity = true;
			continue;
		}
		files++;
		vm_spec s;
		silo_error err;
		silo_error_clear(&err);
		int rc = spec_load(argv[i], &s, &err);
		if (rc == 0 && capacity) {
			host_capacity host;
			rc = host_capacity_read(&host, &err);
			if (rc == 0)
				rc = spec_check_capacity(&s, &host, 0, 0, &err);
			if (rc < 0)
				silo_error_prefix(&err, "%s", argv[i]);
		}
		if (rc < 0) {
			bad++;
			if (json)
				json_array_append_new(results, json_pack("{s:s,s:b,s:s,s:s}", "file", argv[i], "valid", 0, "code",
									 silo_code_name(err.code), "message", err.message));
			else
				cli_error(&err, false);
			continue;
		}
		if (json)
			json_array_append_new(results, json_pack("{s:s,s:b,s:s}", "file", argv[i], "valid", 1, "name", s.name));
		else
			printf("%s: OK (%s, %u vCPUs, %u MB)\n", argv[i], s.name, s.vcpus, s.memory_mb);
		spec_free(&s);
	}
	if (!files) {
		json_decref(results);
		usage(stderr);
		return 2;
	}
	if (json) {
		char *out = json_dumps(results, JSON_INDENT(2));
		printf("%s\n", out);
		free(out);
	}
	json_decref(results);
	return bad ? silo_code_exit_status(SILO_ERR_INVALID_CONFIG) : 0;
}

static int format(int argc, char **argv)
{
	bool write = false;
	const char *file = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--write"))
			write = true;
		else if (!file)
			file = argv[i];
		else {
			usage(stderr);
			return 2;
		}
	}
	if (!file) {
		usage(stderr);
		return 2;
	}
	vm_spec s;
	silo_error err;
	if (spec_load(file, &s, &err) < 0)
		return cli_error(&err, false);
	/* the user's own file: inline secrets stay as written (only stored copies redact them) */
	char *txt = spec_format_with_secrets(&s);
	spec_free(&s);
	int rc = 0;
	if (write) {
		struct stat st;
		mode_t mode = stat(file, &st) == 0 ? st.st_mode & 0777 : 0644; /* a 0600 file stays 0600 */
		if (write_file_atomic(file, txt, strlen(txt), mode, &err) < 0)
			rc = cli_error(&err, false);
	} else {
		fputs(txt, stdout);
	}
	explicit_bzero(txt, strlen(txt));
	free(txt);
	return rc;
}

static int dflt(int argc, char **argv)
{
	if (argc != 2) {
		usage(stderr);
		return 2;
	}
	vm_spec s;
	silo_error err;
	if (spec_default(argv[1], &s, &err) < 0)
		return cli_error(&err, false);
	char *txt = spec_format(&s);
	fputs(txt, stdout);
	free(txt);
	spec_free(&s);
	return 0;
}

int cmd_config(int argc, char **argv)
{
	static const cli_sub subs[] = {{"validate", validate}, {"format", format}, {"default", dflt}};
	int rc = cli_sub_run(subs, ARRAY_SIZE(subs), usage, argc, argv);
	if (rc >= 0)
		return rc;
	fprintf(stderr, "silo config: unknown subcommand '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
