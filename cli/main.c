/* SPDX-License-Identifier: Apache-2.0
 * silo: command-line interface. Verbs are rows of one table.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/util.h"

static int cmd_help(int argc, char **argv);

static const cli_verb verbs[] = {
	{"help", "show this help", cmd_help},
	{"version", "print the silo version", cmd_version},
	{"ps", "list sandboxes known to silod", cmd_ps},
	{"inspect", "show one sandbox (JSON)", cmd_inspect},
	{"create", "create a sandbox through silod (-f hac.toml or options)", cmd_create},
	{"spawn", "same as create", cmd_create},
	{"exec", "run a command in a sandbox through silod (-it: a terminal, -d: in the background)", cmd_exec},
	{"shell", "an interactive shell in a sandbox", cmd_shell},
	{"procs", "list the processes of a sandbox", cmd_procs},
	{"kill", "signal a process of a sandbox (kill ID PROC [SIG]), --rm forgets it", cmd_kill},
	{"attach", "attach to a process of a sandbox (^] detaches)", cmd_attach},
	{"wait", "wait for a process of a sandbox; its exit status becomes ours", cmd_wait},
	{"cp", "copy files into or out of a sandbox (ID:/path; -r for directories)", cmd_cp},
	{"fs", "files of a sandbox (fs ls|stat|mkdir|mv|rm|watch ID:/path)", cmd_fs},
	{"rm", "terminate and remove sandboxes", cmd_rm},
	{"logs", "state history and logs of a sandbox", cmd_logs},
	{"events", "stream silod events", cmd_events},
	{"top", "per-sandbox CPU, memory and channel bytes", cmd_top},
	{"stats", "same as top", cmd_top},
	{"audit", "verify the audit log (audit verify [FILE])", cmd_audit},
	{"image", "build, import, list and remove guest images (image build|import|ls|inspect|verify|rm|gc)", cmd_image},
	{"run", "run a command in a fresh sandbox, then destroy it (run -- CMD...)", cmd_run},
	{"config", "validate, format or print default hac.toml specs", cmd_config},
	{"deploy", "deploy a named agent (agents/NAME.toml) that keeps running", cmd_deploy},
	{"undeploy", "stop a deployed agent and forget it (undeploy NAME [--grace S])", cmd_undeploy},
	{"deployments", "list deployed agents", cmd_deployments},
	{"usage", "usage, cost and budget per team and agent", cmd_usage},
	{"snapshot", "snapshot a sandbox (snapshot ID [--tag T]), or snapshot ls|inspect|rm|gc|tag", cmd_snapshot},
	{"snapshots", "list snapshots", cmd_snapshots},
	{"restore", "restore a snapshot (id or tag) into a new sandbox", cmd_restore},
	{"fork", "N copy-on-write copies of a running sandbox (fork ID -n N)", cmd_fork},
	{"pause", "pause (freeze) sandboxes", cmd_pause},
	{"resume", "resume paused sandboxes", cmd_resume},
	{"trust", "keyring and signatures (trust keygen|add-key|list|sign|verify|verify-bundle|check-boot)", cmd_trust},
	{"token", "add a scoped API token to a silod tokens file (token create)", cmd_token},
	/* verbs: add rows above this line */
};

int cmd_version(int argc, char **argv)
{
	printf("silo %s\n", silo_version());
	return 0;
}

static int cmd_help(int argc, char **argv)
{
	printf("usage: silo VERB [OPTIONS] [ARGS]\n\nverbs:\n");
	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
		printf("  %-12s %s\n", verbs[i].name, verbs[i].summary);
	printf("\n`silo VERB --help` describes a verb. Errors: docs/errors.md.\n");
	return 0;
}

int cli_error(const silo_error *err, bool json)
{
	if (json) {
		json_t *o = json_pack("{s:{s:s,s:s,s:s,s:i}}", "error", "code", silo_code_name(err->code),
				      "message", err->message, "vm_id", err->vm_id, "errno", err->sys_errno);
		char *s = json_dumps(o, JSON_COMPACT);
		printf("%s\n", s);
		free(s);
		json_decref(o);
	} else {
		char buf[SILO_ERROR_MSG_MAX + 128];
		fprintf(stderr, "silo: %s\n", silo_error_str(err, buf, sizeof buf));
	}
	return silo_code_exit_status(err->code);
}

int cli_check_isolation(const char *v, bool json)
{
	if (!strcmp(v, "vm") || !strcmp(v, "any"))
		return 0;
	silo_error e;
	silo_fail(&e, SILO_ERR_INVALID_CONFIG, 0, "--isolation: expected vm or any, got \"%.32s\"", v);
	return cli_error(&e, json);
}

void cli_warn_isolation_fallback(const char *id, const char *provider, const char *why)
{
	fprintf(stderr,
		"silo: warning: no VM provider is available (%s); sandbox %s runs in the %s provider, which shares the "
		"host kernel (weaker isolation). Use --isolation vm to refuse instead.\n",
		why && *why ? why : "none usable", id, provider);
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
		return cmd_help(argc, argv);
	if (!strcmp(argv[1], "--version"))
		return cmd_version(argc, argv);
	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
		if (!strcmp(verbs[i].name, argv[1]))
			return verbs[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "silo: unknown verb '%s' (see `silo help`)\n", argv[1]);
	return 2;
}
