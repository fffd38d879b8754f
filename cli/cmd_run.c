/* SPDX-License-Identifier: Apache-2.0
 * `silo run [OPTIONS] -- CMD...`: create a sandbox, run CMD with live
 * stdout/stderr, destroy it, verify nothing is left, exit with CMD's status.
 * Goes through silod when one answers on its socket; embedded otherwise.
 * Embedded, the sandbox belongs to this process (lib/core/owner.h): a
 * watchdog tears it down if we die (kill -9 included) and once --timeout
 * plus RUN_DEADLINE_GRACE_MS has passed even if we hang; orphans of earlier
 * `silo run`s that died with their watchdog are swept before we create ours.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/api_client.h"
#include "cli/cli.h"
#include "net/net.h"
#include "common/util.h"
#include "core/defaults.h"
#include "core/owner.h"
#include "core/sandbox.h"

#define RUN_GRACE_MS 2000
/* after --timeout the agent kills the command; the whole sandbox goes this much later */
#define RUN_DEADLINE_GRACE_MS 5000

static volatile sig_atomic_t run_sig;

static void on_sig(int s)
{
	run_sig = s;
}

static void usage(FILE *f)
{
	cli_help("run", f);
}

static int out_errno;   /* writing the command's output failed: the command is killed */

static void out_cb(void *ud, int stream, const void *buf, size_t len)
{
	(void)ud;
	if (!out_errno && write_all(stream == 2 ? 2 : 1, buf, len) < 0)
		out_errno = errno ? errno : EIO;
}

static void own_free(vm_spec *s)
{
	free(s->provider);
	free(s->isolation);
	free(s->image);
	free(s->workdir);
	for (size_t i = 0; i < s->n_egress; i++)
		free(s->egress[i]);
	free(s->user);
	for (size_t i = 0; i < s->n_env; i++) {
		free(s->env[i].key);
		free(s->env[i].value);
	}
	spec_redact(s);
	for (size_t i = 0; i < s->n_secrets; i++) {
		free(s->secrets[i].key);
		free(s->secrets[i].ref);
	}
}

static void secrets_free(char **keys, char **vals, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(keys[i]);
		cli_secret_free(vals[i]);
	}
	free(keys);
	free(vals);
}

static uint64_t ms_since(uint64_t t0)
{
	return (now_mono_ns() - t0) / 1000000;
}

/* --time and the --timeout message: the same with and without silod. A status
 * < 0 prints the times only. */
static int report_run(const run_report *r, uint64_t total_ms, bool timing, bool json, unsigned long timeout_s,
		      int status)
{
	if (timing) {
		if (json)
			fprintf(stderr,
				"{\"sandbox\":\"%s\",\"start\":\"%s\",\"spawn_ms\":%llu,\"ready_ms\":%llu,\"exec_ms\":%llu,"
				"\"destroy_ms\":%llu,\"total_ms\":%llu}\n",
				r->id, r->from_template ? "template" : "cold", (unsigned long long)r->spawn_ms,
				(unsigned long long)r->ready_ms,
				(unsigned long long)r->exec_ms, (unsigned long long)r->destroy_ms,
				(unsigned long long)total_ms);
		else
			fprintf(stderr, "silo: time: %s, spawn %llu ms, ready %llu ms, exec %llu ms, destroy %llu ms, total %llu ms\n",
				r->from_template ? "template" : "cold", (unsigned long long)r->spawn_ms, (unsigned long long)r->ready_ms,
				(unsigned long long)r->exec_ms, (unsigned long long)r->destroy_ms,
				(unsigned long long)total_ms);
	}
	if (r->oom_killed && status >= 0 && !json)
		cli_note_oom(NULL, r->memory_mb);
	if (r->timed_out && status >= 0) {
		silo_error e;
		silo_fail_vm(&e, SILO_ERR_TIMEOUT, 0, r->id, "command killed after --timeout %lu s", timeout_s);
		cli_error(&e, json);
		return 124;
	}
	return status;
}

int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"provider", required_argument, NULL, 'p'}, {"spec", required_argument, NULL, 'f'},
		{"image", required_argument, NULL, 'i'},    {"env", required_argument, NULL, 'e'},
		{"workdir", required_argument, NULL, 'w'},  {"timeout", required_argument, NULL, 't'},
		{"memory", required_argument, NULL, 'm'},   {"cpus", required_argument, NULL, 'c'},
		{"json", no_argument, NULL, 'j'},           {"time", no_argument, NULL, 'T'},
		{"isolation", required_argument, NULL, 'I'},
		{"help", no_argument, NULL, 'h'},           {"secret", required_argument, NULL, 'S'},
		{"secret-file", required_argument, NULL, 'F'}, {"network", no_argument, NULL, 'N'},
		{"egress", required_argument, NULL, 'E'},   {"egress-hosts", required_argument, NULL, 'H'},
		{"cold", no_argument, NULL, 'C'},
		{NULL, 0, NULL, 0},
	};
	bool network = false;
	const char *egress_hosts = NULL;
	char **egress = NULL;
	size_t negress = 0;
	char **sec_keys = NULL, **sec_vals = NULL;
	size_t nsec = 0;
	struct {
		const char *arg;
		bool file;
	} *sargs = NULL;
	size_t nsargs = 0;
	const char *provider = NULL, *spec_path = NULL, *image = NULL, *workdir = NULL, *isolation = NULL;
	char **env = NULL;
	size_t nenv = 0;
	unsigned long timeout_s = 0, memory = 0, cpus = 0;
	bool json = false, timing = false, cold = false;
	silo_error err = {0};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+p:f:i:e:w:t:m:c:h", opts, NULL)) != -1) {
		char *end = NULL;
		switch (c) {
		case 'p': provider = optarg; break;
		case 'f': spec_path = optarg; break;
		case 'i': image = optarg; break;
		case 'w': workdir = optarg; break;
		case 'j': json = true; break;
		case 'C': cold = true; break;
		case 'I': {
			int r = cli_check_isolation(optarg, json);
			if (r) {
				strv_free(env);
				return r;
			}
			isolation = optarg;
			break;
		}
		case 'T': timing = true; break;
		case 'N': network = true; break;
		case 'H': egress_hosts = optarg; break;
		case 'E':
			network = true;
			egress = xrealloc(egress, (negress + 2) * sizeof *egress);
			egress[negress++] = xstrdup(optarg);
			egress[negress] = NULL;
			break;
		case 'e':
			if (!strchr(optarg, '=') || optarg[0] == '=') {
				silo_fail(&err, SILO_ERR_INVALID_CONFIG, 0, "-e: expected KEY=VALUE, got \"%s\"", optarg);
				strv_free(env);
				return cli_error(&err, json);
			}
			env = xrealloc(env, (nenv + 2) * sizeof *env);
			env[nenv++] = xstrdup(optarg);
			env[nenv] = NULL;
			break;
		case 't':
		case 'm':
		case 'c': {
			errno = 0;
			unsigned long v = strtoul(optarg, &end, 10);
			const char *name = c == 't' ? "--timeout" : c == 'm' ? "--memory" : "--cpus";
			unsigned long max = c == 't' ? 86400 * 365 : c == 'm' ? 65536 : 64;
			/* memory: the spec's minimum (hac.toml resources.memory_mb; kvm test payloads go lower) */
			bool kvm = provider && !strcmp(provider, "kvm");
			unsigned long min = c == 't' ? 0 : c == 'm' ? (kvm ? 16 : 128) : 1;
			if (errno || !end || *end || !*optarg || optarg[0] == '-' || v > max || v < min) {
				silo_fail(&err, SILO_ERR_INVALID_CONFIG, 0, "%s: expected an integer in %lu..%lu, got \"%s\"",
					  name, min, max, optarg);
				strv_free(env);
				return cli_error(&err, json);
			}
			*(c == 't' ? &timeout_s : c == 'm' ? &memory : &cpus) = v;
			break;
		}
		case 'S':
		case 'F':
			/* after -e is known: a bare --secret NAME marks -e NAME=... secret */
			sargs = xrealloc(sargs, (nsargs + 1) * sizeof *sargs);
			sargs[nsargs].arg = optarg;
			sargs[nsargs++].file = c == 'F';
			break;
		case 'h':
			usage(stdout);
			strv_free(env);
			free(sargs);
			return 0;
		default:
			usage(stderr);
			strv_free(env);
			free(sargs);
			return 2;
		}
	}
	for (size_t i = 0; i < nsargs; i++) {
		const char *a = sargs[i].arg;
		size_t kl = strlen(a);
		ssize_t at = -1; /* the -e entry a bare --secret NAME marks */
		for (size_t j = 0; !strchr(a, '=') && !sargs[i].file && j < nenv; j++)
			if (!strncmp(env[j], a, kl) && env[j][kl] == '=')
				at = (ssize_t)j;
		char *k, *v;
		if (cli_secret_arg(sargs[i].file ? "--secret-file" : "--secret", a, sargs[i].file,
				   at >= 0 ? env[at] + kl + 1 : NULL, &k, &v, &err) < 0) {
			strv_free(env);
			free(sargs);
			secrets_free(sec_keys, sec_vals, nsec);
			return cli_error(&err, json);
		}
		if (at >= 0) {
			explicit_bzero(env[at], strlen(env[at]));
			free(env[at]);
			memmove(&env[at], &env[at + 1], (nenv - (size_t)at) * sizeof *env); /* with the NULL */
			nenv--;
		}
		sec_keys = xrealloc(sec_keys, (nsec + 1) * sizeof *sec_keys);
		sec_vals = xrealloc(sec_vals, (nsec + 1) * sizeof *sec_vals);
		sec_keys[nsec] = k;
		sec_vals[nsec++] = v;
	}
	free(sargs);
	/* without a command: the image's Entrypoint + Cmd */
	char **cmd = argv + optind, **image_cmd = NULL;
	if (optind >= argc && (!image || image_default_argv(image, &image_cmd) != 1)) {
		usage(stderr);
		silo_fail(&err, SILO_ERR_INVALID_CONFIG, 0,
			  "run: no command given (silo run -- CMD...), and %s", image ? "the image has no Entrypoint or Cmd" : "no --image");
		strv_free(env);
		secrets_free(sec_keys, sec_vals, nsec);
		return cli_error(&err, json);
	}
	if (image_cmd)
		cmd = image_cmd;

	vm_spec spec = {0};
	bool loaded = false;
	if (spec_path) {
		if (spec_load(spec_path, &spec, &err) < 0) {
			strv_free(env);
			secrets_free(sec_keys, sec_vals, nsec);
			return cli_error(&err, json);
		}
		loaded = true;
	} else {
		snprintf(spec.name, sizeof spec.name, "run");
		spec.vcpus = 1;
		spec.memory_mb = 512;
	}
	/* command-line overrides; keep the loaded spec's strings owned by spec_free */
	char *ov_provider = provider ? xstrdup(provider) : NULL;
	char *ov_image = image ? xstrdup(image) : NULL;
	if (ov_provider) {
		if (loaded)
			free(spec.provider);
		spec.provider = ov_provider;
	}
	if (ov_image) {
		if (loaded)
			free(spec.image);
		spec.image = ov_image;
	}
	if (isolation) {   /* the spec field: silod and the embedded path both enforce it */
		if (loaded)
			free(spec.isolation);
		spec.isolation = xstrdup(isolation);
	}
	if (!timeout_s && spec.timeout_s)
		timeout_s = spec.timeout_s;   /* the spec's lifetime bounds the command */
	if (memory)
		spec.memory_mb = (uint32_t)memory;
	if (cpus)
		spec.vcpus = (uint32_t)cpus;
	bool daemon = api_daemon_available();
	char **xenv = NULL;
	int rc;
	/* --secret/--secret-file join the spec's [sandbox.secrets] as inline values */
	for (size_t i = 0; i < nsec; i++)
		spec_set_secret(&spec, sec_keys[i], SPEC_SECRET_VALUE, NULL, sec_vals[i]);
	secrets_free(sec_keys, sec_vals, nsec);
	int nrc = cli_apply_network(&spec, network, egress, negress, &err);
	strv_free(egress);
	/* embedded: an imported image's Env, WorkingDir and User (silod applies them itself) */
	if (nrc < 0 || (!daemon && image_defaults_apply(&spec, &err) < 0)) {
		strv_free(env);
		rc = cli_error(&err, json);
		goto out;
	}
	const char *cwd = workdir ? workdir : spec.workdir;
	if (nsec && spec_validate(&spec, &err) < 0) {
		strv_free(env);
		rc = cli_error(&err, json);
		goto out;
	}
	if (daemon) {
		/* silod adds the spec's env and secrets to every exec itself: -e only */
		xenv = env;
	} else {
		/* embedded: the spec's env, its secrets (files and variables read here), then -e */
		if (spec_resolve_secrets(&spec, SPEC_SECRETS_STRICT, &err) < 0 ||
		    !(xenv = spec_exec_env(&spec, env, &err))) {
			strv_free(env);
			rc = cli_error(&err, json);
			goto out;
		}
		strv_free(env);
	}

	if (daemon && egress_hosts)
		fprintf(stderr, "silo: warning: --egress-hosts is ignored: silod runs this sandbox with its own "
				"--egress-hosts\n");
	if (!daemon && egress_hosts && net_config_hosts(egress_hosts, &err) < 0) {
		rc = cli_error(&err, json);
		goto out;
	}
	if (daemon) {
		/* silod is running: it owns sandboxes, registry and audit. The body carries
		 * inline secret values to silod, which keeps them in memory only. */
		char *toml = spec_format_with_secrets(&spec);
		cleanup_free char *in = NULL;
		size_t in_len = 0;
		if (!isatty(0)) {
			size_t cap = 0;
			for (;;) {
				if (cap - in_len < 65536)
					in = xrealloc(in, cap = cap ? cap * 2 : 65536);
				ssize_t r = read(0, in + in_len, cap - in_len);
				if (r < 0 && errno == EINTR)
					continue;
				if (r <= 0)
					break;
				in_len += (size_t)r;
			}
		}
		run_report rr;
		uint64_t t_run = now_mono_ns();
		rc = daemon_run(toml, cmd, xenv, cwd, in, in_len, (uint32_t)(timeout_s * 1000), json, cold, timing, &rr);
		if (rr.id[0])
			rc = report_run(&rr, ms_since(t_run), timing, json, timeout_s, rc);
		explicit_bzero(toml, strlen(toml));
		free(toml);
		goto out;
	}

	uint64_t t0 = now_mono_ns();
	sandbox *sb = NULL;
	owner_sweep_stats swept;
	owner_sweep(NULL, &swept);
	if (swept.reaped)
		log_info("run: swept %d orphaned sandbox(es) of dead `silo run`s (%d still dirty)", swept.reaped,
			 swept.dirty);
	sandbox_opts so = {.owner = SB_OWNER_PROCESS, .cold = cold};
	/* SILO_BOOT_TIMEOUT_MS: override the spec/provider boot timeout (tests, slow hosts). */
	const char *bt = getenv("SILO_BOOT_TIMEOUT_MS");
	if (bt && *bt)
		so.boot_timeout_ms = atoi(bt);
	so.on_net = cli_print_denial;   /* embedded: denials are told on stderr */
	if (sandbox_create(&spec, &so, &sb, &err) < 0) {
		rc = cli_error(&err, json);
		goto out;
	}
	uint64_t spawn_ms = sb->spawn_ns / 1000000, ready_ms = sb->ready_ns / 1000000;
	if (sb->fell_back)
		cli_warn_isolation_fallback(sb->id, sb->ops->name, sb->fallback_why);

	struct sigaction sa = {.sa_handler = on_sig}, old_int, old_term, old_pipe;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	struct sigaction ign = {.sa_handler = SIG_IGN};
	sigaction(SIGPIPE, &ign, &old_pipe);

	uint64_t t_exec = now_mono_ns();
	bool feed = !isatty(0);
	exec_req req = {
		.argv = cmd,
		.env = xenv,
		.cwd = cwd,
		.stdin_stream = feed,
		.timeout_ms = (uint32_t)(timeout_s * 1000),
		.uid = sb->exec_uid,   /* the spec's (or its image's) user, -1 = root */
		.gid = sb->exec_gid,
	};
	exec_result res = {0};
	uint32_t task = 0;
	int status = 0;
	bool exec_failed = false;
	if (chan_exec_start(sb->ch, &req, out_cb, NULL, &task, &err) < 0) {
		exec_failed = true;
	} else {
		if (timeout_s)
			sandbox_set_deadline(sb, timeout_s * 1000 + RUN_DEADLINE_GRACE_MS);
		bool in_open = feed, forwarded = false;
		char buf[65536];
		bool out_killed = false;
		for (;;) {
			if (out_errno && !out_killed) {
				silo_error e2;
				chan_exec_signal(sb->ch, task, SIGKILL, &e2);
				out_killed = true;
			}
			if (run_sig) {
				/* First Ctrl-C/SIGTERM is forwarded to the command; a second one kills it. */
				silo_error e2;
				chan_exec_signal(sb->ch, task, forwarded ? SIGKILL : (int)run_sig, &e2);
				forwarded = true;
				run_sig = 0;
			}
			if (in_open) {
				struct pollfd p = {.fd = 0, .events = POLLIN};
				int pr = poll(&p, 1, 0);
				if (pr > 0) {
					ssize_t r = read(0, buf, sizeof buf);
					if (r < 0 && errno == EINTR)
						continue;
					if (chan_exec_stdin(sb->ch, task, buf, r > 0 ? (size_t)r : 0, r <= 0, &err) < 0 ||
					    r <= 0)
						in_open = false;
					continue;
				}
			}
			/* Output reaches out_cb only while we wait (it is flow-controlled:
			 * a slow stdout of ours slows the command down, nothing is lost). */
			silo_error we = {0};
			int wr = chan_exec_wait(sb->ch, task, in_open ? 50 : 100, &res, &we);
			if (wr == 0)
				break;
			if (we.code != SILO_ERR_TIMEOUT) {
				err = we;
				exec_failed = true;
				break;
			}
		}
	}
	uint64_t exec_ms = ms_since(t_exec);
	if (!exec_failed)
		status = res.signal ? 128 + res.signal : res.exit_code;

	uint64_t t_destroy = now_mono_ns();
	cleanup_report rep = {0};
	silo_error derr = {0};
	char id[SILO_ID_MAX];
	snprintf(id, sizeof id, "%s", sb->id);
	bool from_template = sb->from_template;
	int drc = sandbox_destroy(sb, RUN_GRACE_MS, &rep, &derr);
	uint64_t destroy_ms = ms_since(t_destroy);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGPIPE, &old_pipe, NULL);
	run_report rr = {.spawn_ms = spawn_ms, .ready_ms = ready_ms, .exec_ms = exec_ms, .destroy_ms = destroy_ms,
			 .timed_out = !exec_failed && res.timed_out, .oom_killed = !exec_failed && res.oom_killed,
			 .memory_mb = spec.memory_mb, .from_template = from_template};
	snprintf(rr.id, sizeof rr.id, "%s", id);
	report_run(&rr, ms_since(t0), timing, json, timeout_s, -1);   /* --time; the timeout below */
	if (drc < 0 || !rep.host_clean) {
		if (drc == 0)
			silo_fail_vm(&derr, SILO_ERR_CLEANUP_FAILED, 0, id, "residue after destroy");
		cleanup_report_free(&rep);
		if (exec_failed)
			cli_error(&err, json);
		rc = cli_error(&derr, json);
		goto out;
	}
	cleanup_report_free(&rep);
	if (exec_failed) {
		rc = cli_error(&err, json);
		goto out;
	}
	if (out_errno == EPIPE) {
		rc = 128 + SIGPIPE;   /* our reader went away: end like a writer killed by SIGPIPE */
		goto out;
	}
	if (out_errno) {
		silo_fail_vm(&err, SILO_ERR_IO_ERROR, out_errno, id, "write the command's output");
		rc = cli_error(&err, json);
		goto out;
	}
	rc = report_run(&rr, 0, false, json, timeout_s, status);
out:
	strv_free(image_cmd);
	if (daemon)
		strv_free(xenv);
	else
		spec_env_free(xenv);
	if (loaded)
		spec_free(&spec);
	else
		own_free(&spec);
	return rc;
}
