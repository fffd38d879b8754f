/* SPDX-License-Identifier: Apache-2.0
 * silo token create: add a scoped API token to a silod tokens file
 * (docs/policy.md). The file keeps only the SHA-256 of the secret; the
 * secret is printed once.
 */
#include <errno.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/util.h"
#include "policy/token.h"
#include "spec/toml.h"

static void usage(FILE *f)
{
	fputs("usage: silo token create --file FILE --name NAME [--operations LIST] [--providers LIST]\n"
	      "                         [--sandbox-ids LIST] [--name-prefixes LIST] [--max-sandboxes N]\n"
	      "                         [--policy NAME]\n"
	      "Appends a [[tokens]] entry (the secret's SHA-256) to FILE (created 0600) and prints the\n"
	      "secret once. LIST is comma-separated. operations: create, delete, exec, file_read,\n"
	      "file_write, inspect, list, events, metrics (default: all). silod reads FILE with\n"
	      "--tokens-file at start.\n",
	      f);
}

/* ",a,b" -> ["a", "b"] as TOML. */
static void put_list(char **buf, const char *key, const char *csv)
{
	if (!csv)
		return;
	char *out = xasprintf("%s%s = [", *buf, key);
	free(*buf);
	char *dup = xstrdup(csv), *save = NULL;
	bool first = true;
	for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *q = toml_quote(t, strlen(t));
		char *n = xasprintf("%s%s%s", out, first ? "" : ", ", q);
		free(q);
		free(out);
		out = n;
		first = false;
	}
	free(dup);
	*buf = xasprintf("%s]\n", out);
	free(out);
}

static int create(int argc, char **argv)
{
	enum { O_FILE = 256, O_NAME, O_OPS, O_PROV, O_IDS, O_PREF, O_MAX, O_POLICY };
	static const struct option opts[] = {
		{"file", required_argument, NULL, O_FILE},       {"name", required_argument, NULL, O_NAME},
		{"operations", required_argument, NULL, O_OPS},  {"providers", required_argument, NULL, O_PROV},
		{"sandbox-ids", required_argument, NULL, O_IDS}, {"name-prefixes", required_argument, NULL, O_PREF},
		{"max-sandboxes", required_argument, NULL, O_MAX}, {"policy", required_argument, NULL, O_POLICY},
		{"help", no_argument, NULL, 'h'},                {NULL, 0, NULL, 0},
	};
	const char *file = NULL, *name = NULL, *ops = NULL, *prov = NULL, *ids = NULL, *pref = NULL, *max = NULL,
		   *pol = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_FILE: file = optarg; break;
		case O_NAME: name = optarg; break;
		case O_OPS: ops = optarg; break;
		case O_PROV: prov = optarg; break;
		case O_IDS: ids = optarg; break;
		case O_PREF: pref = optarg; break;
		case O_MAX: max = optarg; break;
		case O_POLICY: pol = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!file || !name || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (max && (!*max || strspn(max, "0123456789") != strlen(max) || strlen(max) > 6)) {
		fprintf(stderr, "silo token: --max-sandboxes: expected a number 1..100000, got '%s'\n", max);
		return 2;
	}
	if (sodium_init() < 0)
		die(1, "libsodium init failed");
	silo_error err = {0};
	char *old = NULL;
	size_t oldlen = 0;
	if (path_exists(file) && read_file(file, TOML_MAX_INPUT, &old, &oldlen, &err) < 0)
		return cli_error(&err, false);
	unsigned char raw[32], h[crypto_hash_sha256_BYTES];
	random_bytes(raw, sizeof raw);
	char secret[5 + 64 + 1] = "silo_";
	for (size_t i = 0; i < sizeof raw; i++)
		snprintf(secret + 5 + 2 * i, 3, "%02x", raw[i]);
	crypto_hash_sha256(h, (const unsigned char *)secret, strlen(secret));
	char hex[65];
	for (size_t i = 0; i < sizeof h; i++)
		snprintf(hex + 2 * i, 3, "%02x", h[i]);
	char *qn = toml_quote(name, strlen(name));
	const char *sep = !oldlen ? "" : old[oldlen - 1] == '\n' ? "\n" : "\n\n";
	char *block = xasprintf("%s%s[[tokens]]\nname = %s\nsha256 = \"%s\"\n", old ? old : "", sep, qn, hex);
	free(qn);
	put_list(&block, "operations", ops);
	put_list(&block, "providers", prov);
	put_list(&block, "sandbox_ids", ids);
	put_list(&block, "name_prefixes", pref);
	if (max) {
		char *n = xasprintf("%smax_sandboxes = %s\n", block, max);
		free(block);
		block = n;
	}
	if (pol) {
		char *q = toml_quote(pol, strlen(pol));
		char *n = xasprintf("%spolicy = %s\n", block, q);
		free(q);
		free(block);
		block = n;
	}
	/* Only a file silod will accept is written. */
	token_set ts;
	int rc = token_set_parse(block, strlen(block), &ts, &err);
	if (rc == 0) {
		token_set_free(&ts);
		rc = write_file_atomic(file, block, strlen(block), 0600, &err);
	}
	free(block);
	free(old);
	if (rc < 0) {
		silo_error_prefix(&err, "%s", file);
		sodium_memzero(secret, sizeof secret);
		return cli_error(&err, false);
	}
	printf("%s\n", secret);
	sodium_memzero(secret, sizeof secret);
	return 0;
}

int cmd_token(int argc, char **argv)
{
	static const cli_sub subs[] = {{"create", create}};
	int rc = cli_sub_run(subs, ARRAY_SIZE(subs), usage, argc, argv);
	if (rc >= 0)
		return rc;
	fprintf(stderr, "silo token: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
