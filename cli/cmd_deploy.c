/* SPDX-License-Identifier: Apache-2.0
 * CLI verbs for named agent deployments over the silod API (docs/deployments.md):
 *   silo deploy NAME [--team T] [--restart never|on-failure|always] [--set K=V]... [-f SPEC] [--wait S]
 *               [--bundle FILE [--bundle-sig SIG]] [--target T [--idempotency-key K]]
 *     -f sends SPEC.minisig too when it exists; --bundle uploads FILE (a tar signed as FILE.minisig
 *     or SIG) with PUT /v1/bundles/SHA256, then deploys it (unpacked at /opt/agent in the sandbox)
 *   silo undeploy NAME... [--grace S] [--idempotency-key K]
 *   silo deployments
 *   silo usage
 * Every verb takes --json.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <sodium.h>
#include <string.h>
#include <unistd.h>

#include "cli/api_client.h"
#include "cli/cli.h"
#include "common/util.h"
#include "trust/trust.h"

static void print_row(json_t *d)
{
	json_t *sb = json_object_get(d, "sandbox");
	printf("%-20s %-12s %-10s %-9s %-16s %5" JSON_INTEGER_FORMAT " %7" JSON_INTEGER_FORMAT " %8" JSON_INTEGER_FORMAT
	       "  %s\n",
	       cli_jstr(d, "name"), cli_jstr(d, "team"), cli_jstr(d, "restart"), cli_jstr(d, "state"), cli_jstr(d, "sandbox_id"),
	       cli_jint(d, "vcpus"), cli_jint(d, "memory_mb"), cli_jint(d, "restarts"), sb ? cli_jstr(sb, "state") : "-");
}

static void print_header(void)
{
	printf("%-20s %-12s %-10s %-9s %-16s %5s %7s %8s  %s\n", "NAME", "TEAM", "RESTART", "STATE", "SANDBOX", "VCPUS",
	       "MEM_MB", "RESTARTS", "SANDBOX_STATE");
}

static int sha_chunk(void *ud, const void *buf, size_t n, silo_error *err)
{
	(void)err;
	crypto_hash_sha256_update(ud, buf, (unsigned long long)n);
	return 0;
}

static bool collect_chunk(void *ud, const char *buf, size_t len)
{
	char **acc = ud;
	size_t have = *acc ? strlen(*acc) : 0;
	if (have + len > (1u << 20))
		return false;
	*acc = xrealloc(*acc, have + len + 1);
	memcpy(*acc + have, buf, len);
	(*acc)[have + len] = '\0';
	return true;
}

/* Upload FILE (signed: sig_path, else FILE.minisig) with PUT /v1/bundles/SHA256; sha gets the hash. */
static int upload_bundle(const char *file, const char *sig_path, char sha[65], bool json)
{
	silo_error err = {0};
	cleanup_free char *defsig = sig_path ? NULL : xasprintf("%s.minisig", file);
	cleanup_free char *sig = NULL;
	/* without one, the upload still goes: silod refuses it, audits and counts the refusal */
	if (read_file(sig_path ? sig_path : defsig, TRUST_SIG_FILE_MAX, &sig, NULL, &err) < 0 && sig_path)
		return cli_error(&err, json);
	cleanup_close int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		silo_fail(&err, SILO_ERR_IO_ERROR, errno, "--bundle %s", file);
		return cli_error(&err, json);
	}
	crypto_hash_sha256_state hs;
	crypto_hash_sha256_init(&hs);
	if (read_chunks(fd, file, 1u << 16, sha_chunk, &hs, &err) < 0)
		return cli_error(&err, json);
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_final(&hs, h);
	sodium_bin2hex(sha, 65, h, sizeof h);
	lseek(fd, 0, SEEK_SET);
	api_client *cl;
	if (api_client_new(&cl, &err) < 0)
		return cli_error(&err, json);
	cleanup_free char *esig = sig ? api_escape(sig) : NULL;
	cleanup_free char *path = esig ? xasprintf("/v1/bundles/%s?signature=%s", sha, esig) : xasprintf("/v1/bundles/%s", sha);
	cleanup_free char *resp = NULL;
	int rc = api_stream(cl, "PUT", path, "application/x-tar", NULL, 0, fd, collect_chunk, &resp, &err);
	api_client_free(cl);
	return rc < 0 ? cli_error(&err, json) : 0;
}

int cmd_deploy(int argc, char **argv)
{
	bool json = cli_want_json(argc, argv);
	static const char *use = "NAME [--team T] [--restart never|on-failure|always] [--set KEY=VALUE]... [-f SPEC] "
				 "[--wait SECONDS] [--bundle FILE [--bundle-sig SIG]] [--target NAME [--idempotency-key K]] [--json]";
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},         {"team", required_argument, NULL, 't'},
		{"restart", required_argument, NULL, 'r'}, {"set", required_argument, NULL, 's'},
		{"file", required_argument, NULL, 'f'},    {"wait", required_argument, NULL, 'w'},
		{"bundle", required_argument, NULL, 'b'},  {"bundle-sig", required_argument, NULL, 'S'},
		{"target", required_argument, NULL, 'T'},  {"idempotency-key", required_argument, NULL, 'K'},
		{NULL, 0, NULL, 0},
	};
	json_t *body = json_object();
	json_t *set = json_array();
	const char *file = NULL, *bundle = NULL, *bundle_sig = NULL, *target = NULL, *idem_key = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "f:", opts, NULL)) != -1) {
		switch (c) {
		case 'j': break;
		case 'b': bundle = optarg; break;
		case 'S': bundle_sig = optarg; break;
		case 'T': target = optarg; break;       /* a remote target (docs/remote.md) */
		case 'K': idem_key = optarg; break;     /* queue it while the target is offline */
		case 't': json_object_set_new(body, "team", json_string(optarg)); break;
		case 'r': json_object_set_new(body, "restart", json_string(optarg)); break;
		case 's': json_array_append_new(set, json_string(optarg)); break;
		case 'f': file = optarg; break;
		case 'w': {
			char *e = NULL;
			long w = strtol(optarg, &e, 10);
			if (!*optarg || *e || w < 0 || w > 3600) {
				json_decref(body);
				json_decref(set);
				return cli_usage_error(argv[0], use, json);
			}
			json_object_set_new(body, "wait_s", json_integer(w));
			break;
		}
		default:
			json_decref(body);
			json_decref(set);
			return cli_usage_error(argv[0], use, json);
		}
	}
	if (optind != argc - 1 || (bundle_sig && !bundle) || (idem_key && !target)) {
		json_decref(body);
		json_decref(set);
		return cli_usage_error(argv[0], use, json);
	}
	json_object_set_new(body, "name", json_string(argv[optind]));
	if (json_array_size(set))
		json_object_set(body, "set", set);
	json_decref(set);
	if (file) {
		char *text;
		size_t len;
		silo_error err;
		if (read_file(file, 1 << 20, &text, &len, &err) < 0) {
			json_decref(body);
			return cli_error(&err, json);
		}
		json_object_set_new(body, "spec", json_stringn(text, len));
		free(text);
		/* with a keyring silod requires the spec's signature: send FILE.minisig when there is one */
		cleanup_free char *sp = xasprintf("%s.minisig", file);
		char *sig;
		if (read_file(sp, TRUST_SIG_FILE_MAX, &sig, &len, NULL) == 0) {
			json_object_set_new(body, "spec_signature", json_stringn(sig, len));
			free(sig);
		}
	}
	if (bundle) {
		char sha[65];
		int urc = upload_bundle(bundle, bundle_sig, sha, json);
		if (urc) {
			json_decref(body);
			return urc;
		}
		json_object_set_new(body, "bundle", json_string(sha));
	}
	json_t *o;
	char path[512] = "/v1/deployments";
	cli_remote_query(path, sizeof path, target, idem_key);
	int rc = cli_call_json("POST", path, body, json, &o);
	json_decref(body);
	if (rc)
		return rc;
	if (json)
		cli_print_json(o);
	else if (!cli_print_queued(o))
		printf("%s %s%s%s\n", cli_jstr(o, "name"), cli_jstr(o, "sandbox_id"), target ? " @" : "",
		       target ? target : "");
	json_decref(o);
	return 0;
}

static void print_undeployed(json_t *o)
{
	if (!cli_print_queued(o))
		printf("%s\n", cli_jstr(o, "name"));
}

int cmd_undeploy(int argc, char **argv)
{
	bool json = cli_want_json(argc, argv);
	static const char *use = "NAME... [--grace SECONDS] [--idempotency-key K] [--json]";
	long grace = -1;
	const char *idem_key = NULL;
	char **names = xcalloc((size_t)argc, sizeof *names);
	int n = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			continue;
		if (!strcmp(argv[i], "--grace") && i + 1 < argc) {
			char *end;
			errno = 0;
			grace = strtol(argv[++i], &end, 10);
			if (!*argv[i] || *end || errno || grace < 0 || grace > 600) {
				silo_error e = {.code = SILO_ERR_INVALID_CONFIG};
				snprintf(e.message, sizeof e.message, "--grace: expected seconds 0..600, got '%.32s'", argv[i]);
				free(names);
				return cli_error(&e, json);
			}
			continue;
		}
		if (!strcmp(argv[i], "--idempotency-key") && i + 1 < argc) {   /* a target offline: queue it */
			idem_key = argv[++i];
			continue;
		}
		if (argv[i][0] == '-') {
			free(names);
			return cli_usage_error(argv[0], use, json);
		}
		names[n++] = argv[i];
	}
	if (!n || (idem_key && n > 1)) {   /* one key names one operation */
		free(names);
		return cli_usage_error(argv[0], use, json);
	}
	char query[512] = "";
	if (grace >= 0)
		snprintf(query, sizeof query, "?grace=%ld", grace);
	cli_remote_query(query, sizeof query, NULL, idem_key);
	int rc = cli_delete_each("deployments", names, n, query, json, print_undeployed);
	free(names);
	return rc;
}

int cmd_deployments(int argc, char **argv)
{
	bool json = cli_want_json(argc, argv);
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--json") != 0)
			return cli_usage_error(argv[0], "[--json]", json);
	return cli_list("/v1/deployments", "deployments", json, print_header, print_row);
}

int cmd_usage(int argc, char **argv)
{
	bool json = cli_want_json(argc, argv);
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--json") != 0)
			return cli_usage_error(argv[0], "[--json]", json);
	json_t *o;
	int rc = cli_call_table("GET", "/v1/usage", NULL, json, &o);
	if (rc || !o)
		return rc;
	json_t *rates = json_object_get(o, "rates");
	printf("rates: %g per vCPU-second, %g per GiB-second\n\n", cli_jnum(rates, "vcpu_second"), cli_jnum(rates, "gib_second"));
	printf("%-20s %-20s %12s %12s %12s %12s %8s\n", "TEAM", "AGENT", "VCPU_S", "GIB_S", "COST", "BUDGET", "USED");
	const char *k;
	json_t *t;
	json_object_foreach(json_object_get(o, "teams"), k, t) {
		json_t *b = json_object_get(t, "budget");
		char budget[32] = "-", used[32] = "-";
		if (b) {
			snprintf(budget, sizeof budget, "%.4f", json_number_value(b));
			snprintf(used, sizeof used, "%.0f%%%s", cli_jnum(t, "budget_used_pct"),
				 json_is_true(json_object_get(t, "budget_exhausted")) ? "!" : "");
		}
		printf("%-20s %-20s %12.2f %12.4f %12.4f %12s %8s\n", k, "*", cli_jnum(t, "vcpu_seconds"), cli_jnum(t, "gib_seconds"),
		       cli_jnum(t, "cost"), budget, used);
		size_t i;
		json_t *a;
		json_array_foreach(json_object_get(t, "agents"), i, a)
			printf("%-20s %-20s %12.2f %12.4f %12.4f\n", "", cli_jstr(a, "agent"), cli_jnum(a, "vcpu_seconds"),
			       cli_jnum(a, "gib_seconds"), cli_jnum(a, "cost"));
	}
	json_decref(o);
	return 0;
}
