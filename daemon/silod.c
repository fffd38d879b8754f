/* SPDX-License-Identifier: Apache-2.0
 * silod: the sandbox manager as a service (docs/architecture.md, docs/openapi.yaml).
 *
 *   silod [--socket PATH] [--socket-mode 0600] [--listen 127.0.0.1:PORT --token-file F]
 *         [--max-connections N] [--max-connections-per-ip N] [--header-timeout-s N]
 *         [--max-sandboxes N] [--boot-timeout-ms N] [--grace-ms N] [--fallback LIST]
 *         [--min-isolation vm|any]
 *         [--error-threshold N] [--error-window-ms N] [--capacity-vcpus N]
 *         [--capacity-memory-mb N] [--max-upload-mb N] [--max-upload-total-mb N]
 *         [--terminate-on-exit]
 *         [--policy-file F] [--tokens-file F] [--opa-url URL [--opa-timeout-ms N]]
 *         [--warm-pool SOURCE:K]...   (SOURCE: hac.toml path or snapshot=ID_OR_TAG)
 *         [--agents-dir DIR] [--teams FILE] [--deploy-interval-ms N]
 *         [--restart-backoff-ms N] [--restart-backoff-max-ms N] [--unhealthy-ms N]
 *
 * State (registry.db, audit.jsonl) lives in $SILO_STATE_DIR, the socket in
 * $SILO_RUNTIME_DIR/silod.sock. On SIGTERM/SIGINT silod stops serving and, by
 * default, leaves sandboxes running: the next silod reattaches them.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/util.h"
#include "core/manager.h"
#include "daemon/http_server.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: silod [OPTIONS]\n"
		"  --socket PATH            unix socket (default $SILO_RUNTIME_DIR/silod.sock)\n"
		"  --socket-mode MODE       file mode of the socket (default 0600)\n"
		"  --listen HOST:PORT       also listen on TCP; requires a bearer token\n"
		"  --token-file FILE        bearer token for TCP clients (or $SILO_API_TOKEN)\n"
		"  --tokens-file FILE       scoped bearer tokens, TOML (docs/policy.md)\n"
		"  --policy-file FILE       sandbox policies, TOML (docs/policy.md)\n"
		"  --opa-url URL            also ask an OPA data API for every policy decision\n"
		"  --opa-timeout-ms N       deadline for one OPA decision (default 2000; no answer = deny)\n"
		"  --max-connections N      TCP connections at once (default 4096; at most half of them\n"
		"                           unauthenticated: an old, slow one makes room for a new one)\n"
		"  --max-connections-per-ip N  TCP connections from one client address (default 64)\n"
		"  --header-timeout-s N     a TCP client must complete an authenticated request head\n"
		"                           within N s of connecting, however slowly it trickles (default 10)\n"
		"  --max-sandboxes N        concurrent sandboxes (default 64)\n"
		"  --boot-timeout-ms N      agent handshake deadline (default: spec/provider)\n"
		"  --grace-ms N             terminate grace period (default 3000)\n"
		"  --fallback LIST          provider fallback order (default kvm,qemu,namespace)\n"
		"  --min-isolation vm|any   vm: refuse every sandbox that would share the host kernel\n"
		"                           (namespace provider, by request, fallback or restore)\n"
		"  --error-threshold N      health-warning when more than N errors ...\n"
		"  --error-window-ms N      ... happen within this window (default 10 per 60000)\n"
		"  --capacity-vcpus N       host vCPUs to hand out (default: online CPUs)\n"
		"  --capacity-memory-mb N   host memory to hand out (default: from /proc/meminfo)\n"
		"  --max-upload-mb N        largest file upload/download (default 256)\n"
		"  --max-upload-total-mb N  request bodies held at once, all connections (default\n"
		"                           1024, at least --max-upload-mb); beyond: RESOURCE_EXCEEDED\n"
		"  --terminate-on-exit      destroy all sandboxes on SIGTERM instead of leaving them\n"
		"  --warm-pool SOURCE:K     keep K paused sandboxes ready for SOURCE (a hac.toml path,\n"
		"                           or snapshot=ID_OR_TAG); repeatable (docs/snapshots.md)\n"
		"  --agents-dir DIR         deployable agents: DIR/NAME.toml (docs/deployments.md)\n"
		"  --teams FILE             team quotas, budgets and the [rates] price table (TOML)\n"
		"  --deploy-interval-ms N   deployment health/usage period (default 500)\n"
		"  --restart-backoff-ms N   first restart delay, doubled per failure (default 1000)\n"
		"  --restart-backoff-max-ms N  longest restart delay (default 60000)\n"
		"  --unhealthy-ms N         agent channel down this long = failed (default 5000)\n");
}

static unsigned long num_arg(const char *opt, const char *v, unsigned long max)
{
	char *end;
	errno = 0;
	unsigned long x = strtoul(v, &end, 0);
	if (!*v || *end || errno || x > max || v[0] == '-')
		die(2, "%s: expected a number 0..%lu, got '%s'", opt, max, v);
	return x;
}

static unsigned long num_arg_min(const char *opt, const char *v, unsigned long min, unsigned long max)
{
	unsigned long x = num_arg(opt, v, max);
	if (x < min)
		die(2, "%s: expected a number %lu..%lu, got '%s'", opt, min, max, v);
	return x;
}

int main(int argc, char **argv)
{
	enum { O_SOCKET = 256, O_MODE, O_LISTEN, O_TOKEN, O_MAX, O_BOOT, O_GRACE, O_FALLBACK, O_ETHR, O_EWIN,
	       O_CAPV, O_CAPM, O_UPLOAD, O_UPTOTAL, O_TERM, O_POLICY, O_TOKENS, O_OPA, O_OPA_TMO, O_POOL, O_AGENTS, O_TEAMS, O_DINT,
	       O_BACK, O_BACKMAX, O_UNHEALTHY, O_MAXCONN, O_PERIP, O_HDRTMO, O_MINISO };
	static const struct option opts[] = {
		{"socket", required_argument, NULL, O_SOCKET},
		{"socket-mode", required_argument, NULL, O_MODE},
		{"listen", required_argument, NULL, O_LISTEN},
		{"token-file", required_argument, NULL, O_TOKEN},
		{"max-sandboxes", required_argument, NULL, O_MAX},
		{"boot-timeout-ms", required_argument, NULL, O_BOOT},
		{"grace-ms", required_argument, NULL, O_GRACE},
		{"fallback", required_argument, NULL, O_FALLBACK},
		{"min-isolation", required_argument, NULL, O_MINISO},
		{"max-connections", required_argument, NULL, O_MAXCONN},
		{"max-connections-per-ip", required_argument, NULL, O_PERIP},
		{"header-timeout-s", required_argument, NULL, O_HDRTMO},
		{"error-threshold", required_argument, NULL, O_ETHR},
		{"error-window-ms", required_argument, NULL, O_EWIN},
		{"capacity-vcpus", required_argument, NULL, O_CAPV},
		{"capacity-memory-mb", required_argument, NULL, O_CAPM},
		{"max-upload-mb", required_argument, NULL, O_UPLOAD},
		{"max-upload-total-mb", required_argument, NULL, O_UPTOTAL},
		{"terminate-on-exit", no_argument, NULL, O_TERM},
		{"policy-file", required_argument, NULL, O_POLICY},
		{"tokens-file", required_argument, NULL, O_TOKENS},
		{"opa-url", required_argument, NULL, O_OPA},
		{"opa-timeout-ms", required_argument, NULL, O_OPA_TMO},
		{"warm-pool", required_argument, NULL, O_POOL},
		{"agents-dir", required_argument, NULL, O_AGENTS},
		{"teams", required_argument, NULL, O_TEAMS},
		{"deploy-interval-ms", required_argument, NULL, O_DINT},
		{"restart-backoff-ms", required_argument, NULL, O_BACK},
		{"restart-backoff-max-ms", required_argument, NULL, O_BACKMAX},
		{"unhealthy-ms", required_argument, NULL, O_UNHEALTHY},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	manager_config mc = {.recover = true, .error_threshold = 10};
	api_config ac = {.socket_mode = 0600};
	deploy_config dc = {0};
	char sockbuf[4096];
	const char *token_file = NULL;
	bool terminate = false;
	const char *pools[16];
	int npools = 0;
	int c;
	while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
		switch (c) {
		case O_SOCKET: ac.socket_path = optarg; break;
		case O_MODE: ac.socket_mode = (unsigned)num_arg("--socket-mode", optarg, 0777); break;
		case O_LISTEN: ac.listen = optarg; break;
		case O_TOKEN: token_file = optarg; break;
		case O_MAX: mc.max_sandboxes = (unsigned)num_arg("--max-sandboxes", optarg, 100000); break;
		case O_BOOT: mc.boot_timeout_ms = (int)num_arg("--boot-timeout-ms", optarg, 3600000); break;
		case O_GRACE: mc.grace_ms = (int)num_arg("--grace-ms", optarg, 600000); break;
		case O_FALLBACK: mc.fallback = optarg; break;
		case O_MINISO:
			if (strcmp(optarg, "vm") && strcmp(optarg, "any"))
				die(2, "--min-isolation: expected vm or any, got '%s'", optarg);
			mc.min_isolation_vm = !strcmp(optarg, "vm");
			break;
		case O_MAXCONN: ac.max_connections = (unsigned)num_arg_min("--max-connections", optarg, 2, 65536); break;
		case O_PERIP:
			ac.max_connections_per_ip = (unsigned)num_arg_min("--max-connections-per-ip", optarg, 1, 65536);
			break;
		case O_HDRTMO: ac.header_timeout_s = (unsigned)num_arg_min("--header-timeout-s", optarg, 1, 3600); break;
		case O_ETHR: mc.error_threshold = (unsigned)num_arg("--error-threshold", optarg, 4000); break;
		case O_EWIN: mc.error_window_ms = (unsigned)num_arg("--error-window-ms", optarg, 86400000); break;
		case O_CAPV: mc.capacity_vcpus = (uint32_t)num_arg("--capacity-vcpus", optarg, 1 << 20); break;
		case O_CAPM: mc.capacity_memory_mb = num_arg("--capacity-memory-mb", optarg, 1ul << 40); break;
		case O_UPLOAD: ac.max_upload = (uint64_t)num_arg("--max-upload-mb", optarg, 1 << 20) << 20; break;
		case O_UPTOTAL:
			ac.max_upload_total = (uint64_t)num_arg_min("--max-upload-total-mb", optarg, 1, 1 << 22) << 20;
			break;
		case O_TERM: terminate = true; break;
		case O_POLICY: ac.policy_file = optarg; break;
		case O_TOKENS: ac.tokens_file = optarg; break;
		case O_OPA: ac.opa_url = optarg; break;
		case O_OPA_TMO: ac.opa_timeout_ms = (long)num_arg("--opa-timeout-ms", optarg, 600000); break;
		case O_POOL:
			if (npools == 16)
				die(2, "--warm-pool: at most 16");
			pools[npools++] = optarg;
			break;
		case O_AGENTS: dc.agents_dir = optarg; break;
		case O_TEAMS: dc.teams_file = optarg; break;
		case O_DINT: dc.interval_ms = (int)num_arg("--deploy-interval-ms", optarg, 60000); break;
		case O_BACK: dc.backoff_ms = (int)num_arg("--restart-backoff-ms", optarg, 3600000); break;
		case O_BACKMAX: dc.backoff_max_ms = (int)num_arg("--restart-backoff-max-ms", optarg, 86400000); break;
		case O_UNHEALTHY: dc.unhealthy_ms = (int)num_arg("--unhealthy-ms", optarg, 3600000); break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("silod %s\n", silo_version()); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	char *token = NULL;
	if (token_file) {
		size_t len;
		silo_error e;
		if (read_file(token_file, 4096, &token, &len, &e) < 0)
			die(1, "--token-file: %s", e.message);
		while (len && (token[len - 1] == '\n' || token[len - 1] == '\r' || token[len - 1] == ' '))
			token[--len] = '\0';
		if (len < 16)
			die(1, "--token-file: the token must be at least 16 characters");
	} else if (getenv("SILO_API_TOKEN") && *getenv("SILO_API_TOKEN")) {
		token = xstrdup(getenv("SILO_API_TOKEN"));
	}
	ac.token = token;
	if (dc.agents_dir && !path_exists(dc.agents_dir))
		die(1, "--agents-dir: %s does not exist", dc.agents_dir);
	if (dc.teams_file) {
		silo_error e;
		if (deploy_check_teams(dc.teams_file, &e) < 0)
			die(1, "--teams: %s", e.message);
	}

	const char *rt = silo_runtime_dir();
	if (mkdir_p(rt, 0700) < 0)
		die_errno(1, "runtime dir %s", rt);
	if (!ac.socket_path) {
		snprintf(sockbuf, sizeof sockbuf, "%s/silod.sock", rt);
		ac.socket_path = sockbuf;
	}
	const char *sd = silo_state_dir();
	if (mkdir_p(sd, 0700) < 0)
		die_errno(1, "state dir %s", sd);
	/* One silod per state dir. */
	char lockp[4096];
	snprintf(lockp, sizeof lockp, "%s/silod.lock", sd);
	int lockfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lockfd < 0)
		die_errno(1, "open %s", lockp);
	/* A POSIX lock, not flock(): it belongs to this process only, so a child
	 * forked in the middle of a spawn (not yet exec'd) cannot keep the state
	 * dir locked after a kill -9 and refuse the restart (found by bench/chaos). */
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	if (fcntl(lockfd, F_SETLK, &fl) < 0)
		die(1, "another silod is using the state dir %s (%s is locked)", sd, lockp);

	/* Every TCP connection is a descriptor: use the hard limit, not a login
	 * shell's soft 1024 (nothing in silod uses select()). */
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);   /* every thread inherits the mask */
	signal(SIGPIPE, SIG_IGN);

	silo_error err;
	manager *m;
	mc.state_dir = sd;
	if (manager_open(&mc, &m, &err) < 0) {
		char buf[SILO_ERROR_MSG_MAX + 64];
		die(1, "%s", silo_error_str(&err, buf, sizeof buf));
	}
	deployer *dep;
	dc.state_dir = sd;
	if (deploy_open(m, &dc, &dep, &err) < 0) {
		char buf[SILO_ERROR_MSG_MAX + 64];
		manager_close(m, false);
		die(1, "%s", silo_error_str(&err, buf, sizeof buf));
	}
	ac.deploy = dep;
	api_server *api;
	if (api_start(m, &ac, &api, &err) < 0) {
		char buf[SILO_ERROR_MSG_MAX + 64];
		deploy_close(dep);
		manager_close(m, false);
		die(1, "%s", silo_error_str(&err, buf, sizeof buf));
	}
	/* deployments pass the creation policy like any create */
	deploy_set_normalize(dep, api_normalize_spec, api);
	/* warm pools: templates pass the creation policy like the creates they serve */
	for (int i = 0; i < npools; i++) {
		char *src = xstrdup(pools[i]), *colon = strrchr(src, ':');
		unsigned long k = 0;
		char *end = NULL;
		if (colon)
			k = strtoul(colon + 1, &end, 10);
		bool bad = !colon || colon == src || !colon[1] || *end || k < 1 || k > 1024;
		if (!bad)
			*colon = '\0';
		int rc = bad ? -1 : manager_pool_add_normalized(m, src, (unsigned)k, api_normalize_spec, api, &err);
		free(src);
		if (rc < 0) {
			char buf[SILO_ERROR_MSG_MAX + 64];
			api_stop(api);
			deploy_close(dep);
			manager_close(m, false);
			if (bad)
				die(2, "--warm-pool: expected SOURCE:K with K 1..1024, got '%s'", pools[i]);
			die(1, "%s", silo_error_str(&err, buf, sizeof buf));
		}
	}
	if (manager_pools_start(m, &err) < 0) {
		char buf[SILO_ERROR_MSG_MAX + 64];
		api_stop(api);
		manager_close(m, false);
		die(1, "%s", silo_error_str(&err, buf, sizeof buf));
	}
	if (token) {
		memset(token, 0, strlen(token));
		free(token);
	}
	if (ac.listen) {
		/* the port actually bound: HOST:0 picks a free one (tests, benchmarks) */
		char host[64];
		snprintf(host, sizeof host, "%.*s", (int)(strrchr(ac.listen, ':') - ac.listen), ac.listen);
		fprintf(stderr, "silod %s: listening on %s and %s:%u\n", silo_version(), ac.socket_path, host,
			api_tcp_port(api));
	} else {
		fprintf(stderr, "silod %s: listening on %s\n", silo_version(), ac.socket_path);
	}
	int sig = 0;
	sigwait(&set, &sig);
	fprintf(stderr, "silod: signal %d, shutting down\n", sig);
	api_stop(api);
	deploy_close(dep);
	manager_close(m, terminate);
	close(lockfd);
	return 0;
}
