/* SPDX-License-Identifier: Apache-2.0
 * silo: command-line interface. Verbs are rows of one table.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/util.h"

static int cmd_help(int argc, char **argv);

/* `silo VERB --help`: each verb's usage, one line per option (tests/integration/test_cli_help.sh). */
static const char u_help[] = "silo help\n";
static const char u_version[] = "silo version\n";
#define LIST_OPTS \
	"  -a, --all          include terminated and error sandboxes\n" \
	"  --state S          only sandboxes in state S (running, paused, error, terminated, all)\n" \
	"  --provider P       only sandboxes of provider P\n" \
	"  --name PREFIX      only sandboxes whose name starts with PREFIX\n" \
	"  --meta K=V         only sandboxes with metadata K=V\n" \
	"  --json             print JSON\n"
static const char u_ps[] = "silo ps [OPTIONS]\n" LIST_OPTS;
static const char u_top[] = "silo top [OPTIONS]   (also: silo stats)\n" LIST_OPTS;
static const char u_inspect[] = "silo inspect ID\n"
				"  --json             print the JSON document (default)\n";
static const char u_create[] =
	"silo create [-f hac.toml | OPTIONS]   prints the new sandbox id\n"
	"  -f, --file FILE    the spec (hac.toml, docs/hac-toml.md); excludes the options below\n"
	"  --provider P       kvm, qemu or namespace (default: the first available)\n"
	"  --name N           a name, unique among live sandboxes\n"
	"  --image NAME       guest image (silo image ls)\n"
	"  --vcpus N          virtual CPUs\n"
	"  --memory MB        memory in MiB (128..65536)\n"
	"  --timeout S        lifetime in seconds; the sandbox is destroyed after it\n"
	"  -e, --env K=V      environment variable for every exec (repeatable)\n"
	"  --meta K=V         metadata (repeatable)\n"
	"  --isolation vm|any  vm: refuse to fall back to the namespace provider\n"
	"  --secret K[=V]     secret environment variable, never written or shown (repeatable)\n"
	"  --secret-file K=PATH  the same, read from PATH\n"
	"  -w, --workdir DIR  default working directory of every exec (created if missing)\n"
	"  -u, --user U       default user of every exec: uid[:gid] or name[:group]\n"
	"  --network          give the sandbox a network; it reaches only what --egress allows\n"
	"  --egress ENTRY     allow a destination (NAME[:PORT], *.DOMAIN, A.B.C.D[/N][:PORT], *); implies --network\n"
	"  --publish P[=A]    forward guest port P to 127.0.0.1:PORT or a unix socket path (repeatable)\n"
	"  --target NAME      place the sandbox on a remote target (silo target ls)\n"
	"  --idempotency-key K  queue the create if the target is offline; K makes a retry a no-op\n"
	"  --json             print the JSON reply\n";
static const char u_exec[] =
	"silo exec [OPTIONS] ID -- CMD [ARG...]   exits with CMD's status\n"
	"  -i, --interactive  stream stdin to the command (a session)\n"
	"  -t, --tty          run it on a terminal (a PTY; resized with ours)\n"
	"  -d, --detach       start it in the background and print its handle (silo procs)\n"
	"  --tag T            (-d) name the background process\n"
	"  -e K=V             environment variable (repeatable)\n"
	"  -w DIR             working directory\n"
	"  --timeout-ms N     kill the command after N ms\n"
	"  --json             print the NDJSON stream instead of the output\n";
static const char u_shell[] = "silo shell [OPTIONS] ID [-- SHELL [ARG...]]   login bash if the image has it, else sh\n"
			      "  -e K=V             environment variable (repeatable)\n"
			      "  -w DIR             working directory\n";
static const char u_procs[] = "silo procs ID   running processes, and background ones that exited (kept until kill --rm)\n"
			      "  --json             print the API's JSON\n";
static const char u_kill[] = "silo kill [OPTIONS] ID PROC [SIGNAL]   signal (default TERM) a process and its group\n"
			     "  PROC               a handle (p3), a pid in the sandbox, or a tag\n"
			     "  --rm               kill it (KILL) and forget it, with its unread output\n"
			     "  --json             print the API's JSON\n";
static const char u_attach[] =
	"silo attach [OPTIONS] ID PROC   its output, our stdin and terminal size; ^] detaches, its exit status is ours\n"
	"  --no-stdin         only watch: nothing is sent to its stdin\n";
static const char u_wait[] = "silo wait [OPTIONS] ID PROC   its exit status (128+signal) becomes ours\n"
			     "  --timeout-ms N     give up after N ms (TIMEOUT, status 125); default: no limit\n"
			     "  --json             print the API's JSON\n";
static const char u_cp[] =
	"silo cp [OPTIONS] SRC DST   one of SRC, DST is ID:/path; - is stdin/stdout\n"
	"  -r, --recursive    copy a directory tree (a tar stream both ways)\n"
	"  --mode OCTAL       mode of a file written into the sandbox (default 0644)\n"
	"  --json             errors as JSON\n";
static const char u_fs[] =
	"silo fs ls|stat|mkdir|mv|rm|watch [OPTIONS] ID:/path ...   files of a sandbox (paths resolve inside it)\n"
	"  ls ID:/dir         list a directory\n"
	"  stat ID:/path      type, size, mode, owner, time, symlink target\n"
	"  mkdir ID:/dir      create a directory\n"
	"  mv ID:/from /to    rename\n"
	"  rm ID:/path        remove\n"
	"  watch ID:/dir      print changes until ^C\n"
	"  -l                 (ls) long format\n"
	"  -d, --depth N      (ls) list N levels down (default 1)\n"
	"  -p                 (mkdir) with its parents\n"
	"  -m MODE            (mkdir) the mode (octal)\n"
	"  -n                 (mv) fail if the destination exists\n"
	"  -r                 (rm) a directory and everything in it; (watch) subdirectories too\n"
	"  --json             print JSON\n";
static const char u_rm[] = "silo rm [OPTIONS] ID...\n"
			   "  --grace-ms N       time the sandbox gets to stop before it is killed\n"
			   "  --json             print JSON\n";
static const char u_logs[] = "silo logs ID\n"
			     "  --tail BYTES       only the last BYTES of the log\n"
			     "  --json             print JSON\n";
static const char u_events[] = "silo events [OPTIONS]   streams until interrupted\n"
			       "  --sandbox ID       only events of one sandbox\n"
			       "  --types T,T        only these event types\n"
			       "  --count N          stop after N events\n"
			       "  --json             one JSON object per line\n";
static const char u_audit[] = "silo audit verify [FILE]   (default FILE: $SILO_STATE_DIR/audit.jsonl)\n"
			      "  --json             print JSON\n";
static const char u_image[] =
	"silo image build|add-tree|ls|verify|rm|import|inspect|gc ...\n"
	"  build NAME         build an image (base, python, namespace)\n"
	"  add-tree NAME DIR  record a directory tree (a namespace boot.rootfs)\n"
	"  ls                 list images and trees\n"
	"  verify NAME        check an image's sizes and SHA-256, or a tree's digest\n"
	"  rm NAME            remove an image\n"
	"  import SOURCE --name NAME   import an OCI layout, OCI/docker archive or rootfs tarball\n"
	"  inspect NAME       show an image, its layers and sandbox defaults (JSON)\n"
	"  gc                 remove layers no image uses\n"
	"  --force            rebuild or overwrite\n"
	"  --sign KEY         (build, add-tree) sign the manifest afterwards\n"
	"  --expires D        (with --sign) signature expiry\n"
	"  --name NAME        (import) the image name\n"
	"  --layers-for NAME  (import) store SOURCE as the namespace layers of the built image NAME\n"
	"  --format F         (import) auto, oci, docker or rootfs\n"
	"  --ref REF          (import) the image reference inside an OCI layout\n"
	"  --max-size BYTES   (import) bound on the unpacked size (K, M, G, T suffixes)\n"
	"  --max-entries N    (import) bound on the number of files\n"
	"  --skip-devices     (import) leave device nodes out\n"
	"  --json             print JSON\n";
static const char u_run[] =
	"silo run [OPTIONS] -- CMD [ARG...]   create, run CMD, destroy; exits with CMD's status\n"
	"  -p, --provider P   kvm, qemu or namespace\n"
	"  --isolation vm|any  vm: refuse to fall back to the namespace provider (shared host kernel)\n"
	"  -f, --spec FILE    a hac.toml spec\n"
	"  -i, --image NAME   guest image\n"
	"  -e, --env K=V      environment variable (repeatable)\n"
	"  -w, --workdir DIR  working directory\n"
	"  -t, --timeout S    kill the command after S seconds: exit 124 and a TIMEOUT message\n"
	"  -m, --memory MB    memory in MiB (128..65536)\n"
	"  -c, --cpus N       virtual CPUs (1..64)\n"
	"  --secret K[=V]     secret environment variable; K alone marks -e K=V or takes $K\n"
	"  --secret-file K=P  the same, read from the file P (one trailing newline dropped)\n"
	"  --network          give the sandbox a network; it reaches only what --egress allows\n"
	"  --egress ENTRY     allow a destination (NAME[:PORT], *.DOMAIN, A.B.C.D[/N][:PORT], *); implies --network\n"
	"  --egress-hosts F   resolve names from this hosts(5) file first (without silod)\n"
	"  --cold             boot cold: do not restore (or save) the image + shape's template snapshot\n"
	"  --time             print spawn/ready/exec/destroy times on stderr\n"
	"  --json             errors as a JSON object on stdout; --time as JSON on stderr\n";
static const char u_config[] = "silo config validate|format|default ...\n"
			       "  validate FILE...   check specs (exit 125 with line:col: field on error)\n"
			       "  format FILE        print the canonical form\n"
			       "  default PROVIDER   print a default spec (kvm, qemu or namespace)\n"
			       "  --capacity         (validate) also check against this host's capacity\n"
			       "  --write            (format) rewrite FILE in place\n"
			       "  --json             (validate) print JSON\n";
static const char u_deploy[] =
	"silo deploy NAME [OPTIONS]   deploy agents/NAME.toml\n"
	"  --team T           the team it is accounted to\n"
	"  --restart R        never, on-failure or always\n"
	"  --set KEY=VALUE    override a spec field (repeatable)\n"
	"  -f, --file SPEC    the spec (default agents/NAME.toml)\n"
	"  --wait SECONDS     wait until it runs\n"
	"  --bundle FILE      the agent bundle\n"
	"  --bundle-sig SIG   the bundle's signature\n"
	"  --target NAME      deploy on a remote target (docs/remote.md)\n"
	"  --idempotency-key K  with --target: queue it while the target is offline\n"
	"  --json             print JSON\n";
static const char u_undeploy[] = "silo undeploy NAME...\n"
				 "  --grace SECONDS    time to stop (0..600)\n"
				 "  --idempotency-key K  (one NAME on an offline target) queue it\n"
				 "  --json             print JSON\n";
static const char u_deployments[] = "silo deployments\n"
				    "  --json             print JSON\n";
static const char u_usage[] = "silo usage\n"
			      "  --json             print JSON\n";
static const char u_snapshot[] =
	"silo snapshot ID [OPTIONS] | ls | inspect SNAP | rm SNAP... | gc | tag SNAP +T|-T...\n"
	"  --tag T            (ID) tag the snapshot (repeatable)\n"
	"  --keep-paused      (ID) leave the sandbox paused afterwards\n"
	"  --ttl S            (ID) the snapshot expires after S seconds\n"
	"  --verify           (inspect) verify the snapshot's files\n"
	"  -f, --force        (rm) remove even if in use\n"
	"  --max-age S        (gc) remove snapshots older than S seconds\n"
	"  --json             print JSON\n";
static const char u_snapshots[] = "silo snapshots\n"
				  "  --json             print JSON\n";
static const char u_restore[] = "silo restore SNAP   (a snapshot id or tag)\n"
				"  --json             print JSON\n";
static const char u_fork[] = "silo fork ID -n N\n"
			     "  -n N               number of copies\n"
			     "  --json             print JSON\n";
static const char u_pause[] = "silo pause ID...\n"
			      "  --json             print JSON\n";
static const char u_resume[] = "silo resume ID...\n"
			       "  --json             print JSON\n";
static const char u_trust[] =
	"silo trust keygen|add-key|list|rm-key|sign|verify|verify-bundle|check-boot ...\n"
	"  keygen -p PUB -s SEC          new key pair (minisign format)\n"
	"  add-key PUB                   trust a public key\n"
	"  list                          trusted keys\n"
	"  rm-key KEYID                  stop trusting a key\n"
	"  sign [FILE]                   write FILE.minisig (default FILE: the image manifest)\n"
	"  verify [FILE]                 check FILE.minisig against the keyring\n"
	"  verify-bundle FILE            check an agent/plugin bundle\n"
	"  check-boot                    the signed-manifest check run before every boot\n"
	"  -p PUB                        (keygen, verify) public key file\n"
	"  -s SEC                        (keygen, sign) secret key file\n"
	"  -t COMMENT                    (sign) trusted comment\n"
	"  -l                            (sign) legacy signature\n"
	"  -x SIG                        (sign, verify) signature file\n"
	"  --version N                   (sign) manifest version\n"
	"  --expires D                   (sign) expiry: 90d, 12h, 30m, 45s or a date\n"
	"  --manifest                    (sign) FILE is a manifest\n"
	"  --password-file F             (sign) the secret key's password\n"
	"  --image NAME                  (check-boot) the image to check\n"
	"  --json                        (list) print JSON\n";
static const char u_token[] =
	"silo token create --file FILE --name NAME [OPTIONS]   prints the secret once\n"
	"  --file FILE        the tokens file (created 0600; silod --tokens-file)\n"
	"  --name NAME        the token's name\n"
	"  --operations LIST  create, delete, exec, file_read, file_write, inspect, list, events, metrics\n"
	"  --providers LIST   providers it may use\n"
	"  --sandbox-ids LIST  sandboxes it may touch\n"
	"  --name-prefixes LIST  sandbox name prefixes it may use\n"
	"  --max-sandboxes N  bound on its live sandboxes\n"
	"  --policy NAME      the policy applied to its sandboxes\n";

static const char u_context[] =
	"silo context add|ls|use|rm|inspect ...   (silo --context NAME VERB uses one for a command)\n"
	"  add NAME URL       a silod endpoint: unix:///path, http://127.0.0.1:PORT or https://HOST:PORT\n"
	"  ls                 list contexts (the one in use is marked)\n"
	"  use NAME           make NAME the default (default: the local socket)\n"
	"  rm NAME            remove a context\n"
	"  inspect NAME       show a context (never its token)\n"
	"  --token-file F     (add) the API token, copied into the context (0600)\n"
	"  --ca F             (add) the CA certificate that signed silod's certificate (PEM)\n"
	"  --cert F           (add) client certificate for mutual TLS (PEM)\n"
	"  --key F            (add) its private key (PEM)\n"
	"  --insecure         (add) allow plain http to a non-loopback address\n"
	"  -f, --force        (rm) remove even the context in use\n"
	"  --json             print JSON\n";
static const char u_target[] =
	"silo target add|ls|rm|queue|cancel ...   remote silods this silod places sandboxes on\n"
	"  add NAME URL       validate (reachable, token, version, providers) and record a target\n"
	"  ls                 targets: state, last seen, latency, capacity, queue length\n"
	"  rm NAME            forget a target (refused while it has sandboxes)\n"
	"  queue NAME         operations queued for an offline target\n"
	"  cancel NAME SEQ    cancel a queued operation\n"
	"  --token-file F     (add) a token of the target's silod\n"
	"  --ca F             (add) the CA certificate of the target's TLS listener\n"
	"  --cert F           (add) client certificate for mutual TLS\n"
	"  --key F            (add) its private key\n"
	"  -f, --force        (rm) forget it even with sandboxes\n"
	"  --json             print JSON\n";
static const char u_port[] = "silo port ID [PORT [OPTIONS]]   list forwards, or forward guest port PORT to this host\n"
			     "  --listen ADDR:PORT  listen on this TCP address (default 127.0.0.1, a free port)\n"
			     "  --unix PATH        listen on a unix socket instead\n"
			     "  --rm               remove the forward\n"
			     "  --json             print JSON\n";

static const cli_verb verbs[] = {
	{"context", "named silod endpoints (context add|ls|use|rm|inspect; silo --context NAME VERB)", cmd_context, u_context},
	{"target", "remote silods to place sandboxes on (target add|ls|rm|queue|cancel; create --target)", cmd_target, u_target},
	{"help", "show this help", cmd_help, u_help},
	{"version", "print the silo version", cmd_version, u_version},
	{"ps", "list sandboxes known to silod", cmd_ps, u_ps},
	{"inspect", "show one sandbox (JSON)", cmd_inspect, u_inspect},
	{"create", "create a sandbox through silod (-f hac.toml or options)", cmd_create, u_create},
	{"spawn", "same as create", cmd_create, u_create},
	{"exec", "run a command in a sandbox through silod (-it: a terminal, -d: in the background)", cmd_exec, u_exec, CLI_VERB_CMD},
	{"shell", "an interactive shell in a sandbox", cmd_shell, u_shell},
	{"procs", "list the processes of a sandbox", cmd_procs, u_procs},
	{"kill", "signal a process of a sandbox (kill ID PROC [SIG]), --rm forgets it", cmd_kill, u_kill},
	{"attach", "attach to a process of a sandbox (^] detaches)", cmd_attach, u_attach},
	{"wait", "wait for a process of a sandbox; its exit status becomes ours", cmd_wait, u_wait},
	{"cp", "copy files into or out of a sandbox (ID:/path; -r for directories)", cmd_cp, u_cp},
	{"fs", "files of a sandbox (fs ls|stat|mkdir|mv|rm|watch ID:/path)", cmd_fs, u_fs},
	{"rm", "terminate and remove sandboxes", cmd_rm, u_rm},
	{"logs", "state history and logs of a sandbox", cmd_logs, u_logs},
	{"events", "stream silod events", cmd_events, u_events},
	{"top", "per-sandbox CPU, memory and channel bytes", cmd_top, u_top},
	{"stats", "same as top", cmd_top, u_top},
	{"audit", "verify the audit log (audit verify [FILE])", cmd_audit, u_audit},
	{"image", "build, import, list and remove guest images (image build|import|ls|inspect|verify|rm|gc)", cmd_image, u_image},
	{"run", "run a command in a fresh sandbox, then destroy it (run -- CMD...)", cmd_run, u_run, CLI_VERB_CMD},
	{"config", "validate, format or print default hac.toml specs", cmd_config, u_config},
	{"deploy", "deploy a named agent (agents/NAME.toml) that keeps running", cmd_deploy, u_deploy},
	{"undeploy", "stop a deployed agent and forget it (undeploy NAME [--grace S])", cmd_undeploy, u_undeploy},
	{"deployments", "list deployed agents", cmd_deployments, u_deployments},
	{"usage", "usage, cost and budget per team and agent", cmd_usage, u_usage},
	{"snapshot", "snapshot a sandbox (snapshot ID [--tag T]), or snapshot ls|inspect|rm|gc|tag", cmd_snapshot, u_snapshot},
	{"snapshots", "list snapshots", cmd_snapshots, u_snapshots},
	{"restore", "restore a snapshot (id or tag) into a new sandbox", cmd_restore, u_restore},
	{"fork", "N copy-on-write copies of a running sandbox (fork ID -n N)", cmd_fork, u_fork},
	{"pause", "pause (freeze) sandboxes", cmd_pause, u_pause},
	{"resume", "resume paused sandboxes", cmd_resume, u_resume},
	{"trust", "keyring and signatures (trust keygen|add-key|list|sign|verify|verify-bundle|check-boot)", cmd_trust, u_trust},
	{"token", "add a scoped API token to a silod tokens file (token create)", cmd_token, u_token},
	{"port", "forward a sandbox port to this host (port ID PORT [--listen A:P|--unix PATH|--rm])", cmd_port, u_port},
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

int cli_help(const char *verb, FILE *f)
{
	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++) {
		if (!strcmp(verbs[i].name, verb) && verbs[i].usage) {
			fprintf(f, "usage: %s", verbs[i].usage);
			return 0;
		}
	}
	return -1;
}

/* --help or -h among the verb's options (before "--"; for a verb that runs a
 * command, before its first word, which may begin the command). */
static bool wants_help(const cli_verb *v, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			return false;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return true;
		if ((v->flags & CLI_VERB_CMD) && argv[i][0] != '-')
			return false;
	}
	return false;
}

int main(int argc, char **argv)
{
	/* silo --context NAME VERB ...: the endpoint for this command (cli/context.h) */
	while (argc >= 3 && (!strcmp(argv[1], "--context") || !strncmp(argv[1], "--context=", 10))) {
		bool eq = argv[1][9] == '=';
		setenv("SILO_CONTEXT", eq ? argv[1] + 10 : argv[2], 1);
		argc -= eq ? 1 : 2;
		argv += eq ? 1 : 2;
	}
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
		return cmd_help(argc, argv);
	if (!strcmp(argv[1], "--version"))
		return cmd_version(argc, argv);
	for (size_t i = 0; i < ARRAY_SIZE(verbs); i++)
		if (!strcmp(verbs[i].name, argv[1])) {
			if (wants_help(&verbs[i], argc - 1, argv + 1) && cli_help(verbs[i].name, stdout) == 0)
				return 0;
			return verbs[i].fn(argc - 1, argv + 1);
		}
	fprintf(stderr, "silo: unknown verb '%s' (see `silo help`)\n", argv[1]);
	return 2;
}
