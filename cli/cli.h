/* SPDX-License-Identifier: Apache-2.0
 * `silo` CLI: one table of verbs (cli/main.c); each verb group lives in cli/cmd_*.c.
 * A verb returns the process exit status. Errors are printed with cli_error().
 */
#ifndef SILO_CLI_H
#define SILO_CLI_H

#include <stdbool.h>

#include "common/error.h"

typedef struct cli_verb {
	const char *name;
	const char *summary;      /* one line for `silo help` */
	int (*fn)(int argc, char **argv);   /* argv[0] is the verb */
	/* `silo VERB --help` (exit 0): "silo VERB ARGS\n" then one line per option,
	 * each "  -x, --long ARG   what it does" */
	const char *usage;
	unsigned flags;           /* CLI_VERB_* */
} cli_verb;
#define CLI_VERB_CMD 1u       /* takes a command (exec, run): --help after its first word is the command's */

/* Print VERB's usage (from the verbs[] table) to f; -1 for an unknown verb. */
#include <stdio.h>
int cli_help(const char *verb, FILE *f);

/* Print "silo: CODE [vm]: message" (or the JSON error body with --json) and
 * return the exit status for it (125). */
int cli_error(const silo_error *err, bool json);
/* --isolation VALUE: 0 if "vm" or "any", else prints the error and returns its status. */
int cli_check_isolation(const char *v, bool json);
/* The warning for a sandbox that fell back from a VM provider to one sharing
 * the host kernel (stderr, also with --json). */
void cli_warn_isolation_fallback(const char *id, const char *provider, const char *why);

/* --network / --egress ENTRY... (run, create): set network.enabled and append
 * the entries to the spec's network.egress (validated: INVALID_CONFIG naming
 * the entry). Entries are strdup'ed into the spec. */
struct vm_spec;
int cli_apply_network(struct vm_spec *spec, bool network, char *const *egress, size_t n, silo_error *err);
/* An egress denial of an embedded sandbox, told on stderr (sandbox_opts.on_net). */
struct sandbox;
void cli_print_denial(void *ud, struct sandbox *sb, const char *json_record);

/* cmd_port.c: forward GUEST_PORT[=127.0.0.1:PORT|=/unix/path] of sandbox id
 * (POST /v1/sandboxes/ID/ports); *out = the forward's JSON. 0 or the exit status. */
struct api_client;
struct json_t;
int cli_port_publish(struct api_client *cl, const char *id, const char *spec, bool json, struct json_t **out);

/* cli_util.c: shared by the verbs that talk to silod. */
#include <jansson.h>
bool cli_want_json(int argc, char **argv);  /* --json before any "--" */
int cli_usage_error(const char *verb, const char *usage, bool json);
void cli_print_json(json_t *o);             /* indented, sorted keys */
const char *cli_jstr(json_t *o, const char *k);  /* "" when absent */
/* Append ?target=T&idempotency_key=K (those not NULL) to path (remote targets, docs/remote.md). */
void cli_remote_query(char *path, size_t len, const char *target, const char *idem_key);
json_int_t cli_jint(json_t *o, const char *k);
double cli_jnum(json_t *o, const char *k);
/* METHOD path [JSON body] to silod -> *out = parsed JSON response; 0, or the CLI exit status
 * after printing the error. */
int cli_call_json(const char *method, const char *path, json_t *body, bool json, json_t **out);
/* The same, then the answer on stdout: as JSON with --json, else its string member
 * field on a line, or each string of it when it is an array (nothing when field is
 * NULL). body is not consumed. 0, or the exit status. */
int cli_call_show(const char *method, const char *path, json_t *body, bool json, const char *field);
/* DELETE /v1/COLL/NAME + query for each of names[0..n) (rm, undeploy): with --json
 * the answers as one array at the end, else line(o) for each. The exit status of
 * the last failure (each is printed), or 0. */
int cli_delete_each(const char *coll, char *const *names, int n, const char *query, bool json,
		    void (*line)(json_t *o));
/* An answer queued for an offline target (docs/remote.md): "queued SEQ for target T"
 * on stdout and true; false (nothing printed) for any other answer. */
bool cli_print_queued(json_t *o);
/* cli_call_json for a verb that prints its own table: with --json the answer is
 * printed here and *out is NULL. */
int cli_call_table(const char *method, const char *path, json_t *body, bool json, json_t **out);
/* An exit object ({"exit_code", ..., "oom_killed"}) says the OOM killer ended the command. */
bool cli_exit_oom(json_t *exit);
/* "silo: command OOM-killed (memory limit N MiB)" on stderr; memory_mb <= 0: ask
 * silod for sandbox id's limit (left out if that fails). */
void cli_note_oom(const char *id, long long memory_mb);
/* GET path and list the array under key: as JSON with --json, else header()
 * then row() for each element. 0, or the CLI exit status. */
int cli_list(const char *path, const char *key, bool json, void (*header)(void), void (*row)(json_t *item));
/* A verb's operands (min..max of them, into ops) and its one flag (flag sets *on)
 * or one flag with a number (valflag N sets *val); oa may be NULL; --json is
 * skipped. A last optional operand "-9" (kill's signal) is taken as "9". 0, or
 * the usage error's status (usage u). */
typedef struct cli_opargs {
	const char *flag;
	bool *on;
	const char *valflag;
	long long *val;
} cli_opargs;
int cli_operands(int argc, char **argv, const char *u, bool json, const cli_opargs *oa, const char **ops, int min,
		 int max);
/* A verb's subcommands (config, token, trust), one row each; an alias is a row of
 * its own. fn gets argv from the subcommand's name on. */
typedef struct cli_sub {
	const char *name;
	int (*fn)(int argc, char **argv);
} cli_sub;
/* silo VERB SUB ARGS...: with usage, no SUB or -h/--help prints it (stderr and 2 /
 * stdout and 0); the row of subs[0..n) named SUB runs; -1 when none is (the verb
 * reports it). */
int cli_sub_run(const cli_sub *subs, size_t n, void (*usage)(FILE *), int argc, char **argv);
/* "ID:/path" -> id, path; a plain local path ("./a:/b" too) returns false. */
bool cli_split_remote(const char *s, char *id, size_t idlen, const char **path);

/* --secret NAME=VALUE | NAME, or --secret-file NAME=PATH (file: the file, read here,
 * one trailing newline dropped). A bare NAME marks an env value secret: marked is the
 * value of `-e NAME=...` on the same command line (the caller then drops that -e),
 * else the CLI's own $NAME is taken. Values are handed to silod or the sandbox only;
 * free them with cli_secret_free. */
int cli_secret_arg(const char *opt, const char *arg, bool file, const char *marked, char **key, char **value,
		   silo_error *err);
void cli_secret_free(char *value);

/* Verb entry points (one line per verb; keep sorted by file). */
int cmd_version(int argc, char **argv);
/* cmd_daemon.c: verbs over the silod API */
int cmd_ps(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_create(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_cp(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_events(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_audit(int argc, char **argv);
/* cmd_image.c */
int cmd_image(int argc, char **argv);
/* cmd_run.c */
int cmd_run(int argc, char **argv);
/* cmd_config.c */
int cmd_config(int argc, char **argv);
/* cmd_deploy.c */
int cmd_deploy(int argc, char **argv);
int cmd_undeploy(int argc, char **argv);
int cmd_deployments(int argc, char **argv);
int cmd_usage(int argc, char **argv);
/* cmd_trust.c */
int cmd_trust(int argc, char **argv);
/* cmd_token.c */
int cmd_token(int argc, char **argv);
int cmd_port(int argc, char **argv);
/* context.c */
int cmd_context(int argc, char **argv);
/* cmd_target.c */
int cmd_target(int argc, char **argv);
/* cmd_procs.c: processes, interactive sessions */
int cmd_shell(int argc, char **argv);
int cmd_procs(int argc, char **argv);
int cmd_kill(int argc, char **argv);
int cmd_attach(int argc, char **argv);
int cmd_wait(int argc, char **argv);
/* `silo exec` with -i, -t or -d: req is the exec JSON (argv, env, cwd, timeout_ms). */
int cli_exec_session(const char *id, json_t *req, bool tty, bool interactive, bool detach, const char *tag, bool json);
/* cmd_fs.c: files beyond one file, tar copies */
int cmd_fs(int argc, char **argv);
/* `silo cp` of a directory (-r): args are SRC DST, one of them ID:/path. */
int cli_cp_tree(const char *src, const char *dst, bool json);
/* verbs: add declarations above this line */

/* cmd_snapshot.c */
int cmd_snapshot(int argc, char **argv);
int cmd_snapshots(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_fork(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_resume(int argc, char **argv);

#endif
