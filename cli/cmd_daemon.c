/* SPDX-License-Identifier: Apache-2.0
 * CLI verbs that talk to silod over its HTTP API: ps, inspect, create/spawn,
 * exec, cp, rm, logs, events, top/stats; and `audit verify` (local file).
 * Every verb takes --json (machine-readable output; errors as the API's JSON body).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
#include "cli/api_client.h"
#include "cli/cli.h"
#include "common/util.h"

static int connect_or_fail(api_client **c, bool json)
{
	silo_error err;
	if (api_client_new(c, &err) < 0)
		return cli_error(&err, json);
	return 0;
}

/* ---- ps / top ---- */

static int list_sandboxes(int argc, char **argv, bool top)
{
	bool json = cli_want_json(argc, argv);
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'}, {"all", no_argument, NULL, 'a'},
		{"state", required_argument, NULL, 's'}, {"provider", required_argument, NULL, 'p'},
		{"name", required_argument, NULL, 'n'}, {"meta", required_argument, NULL, 'm'},
		{NULL, 0, NULL, 0},
	};
	const char *state = NULL, *provider = NULL, *name = NULL, *meta = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "a", opts, NULL)) != -1) {
		switch (c) {
		case 'j': break;
		case 'a': state = "all"; break;
		case 's': state = optarg; break;
		case 'p': provider = optarg; break;
		case 'n': name = optarg; break;
		case 'm': meta = optarg; break;
		default:
			return cli_usage_error(argv[0], "[--all] [--state S] [--provider P] [--name PREFIX] [--meta K=V] [--json]", json);
		}
	}
	char path[2048] = "/v1/sandboxes";
	size_t off = strlen(path);
	const char *keys[] = {"state", "provider", "name", "metadata"};
	const char *vals[] = {state, provider, name, meta};
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		if (!vals[i])
			continue;
		char *e = api_escape(vals[i]);
		off += (size_t)snprintf(path + off, sizeof path - off, "%c%s=%s", off == 13 ? '?' : '&', keys[i], e);
		free(e);
		if (off >= sizeof path)
			return cli_usage_error(argv[0], "filters too long", json);
	}
	json_t *o;
	int rc = cli_call_json("GET", path, NULL, json, &o);
	if (rc)
		return rc;
	json_t *a = json_object_get(o, "sandboxes");
	if (json) {
		cli_print_json(a);
	} else if (!top) {
		printf("%-16s %-20s %-10s %-12s %5s %8s  %s\n", "ID", "NAME", "PROVIDER", "STATE", "VCPUS", "MEM_MB", "CREATED [TARGET]");
		size_t i;
		json_t *s;
		json_array_foreach(a, i, s)
			printf("%-16s %-20s %-10s %-12s %5" JSON_INTEGER_FORMAT " %8" JSON_INTEGER_FORMAT "  %s%s%s\n", cli_jstr(s, "id"),
			       cli_jstr(s, "name"), cli_jstr(s, "provider"), cli_jstr(s, "state"), cli_jint(s, "vcpus"), cli_jint(s, "memory_mb"),
			       cli_jstr(s, "created"), cli_jstr(s, "target")[0] ? " @" : "", cli_jstr(s, "target"));
	} else {
		printf("%-16s %-20s %-10s %10s %10s %12s %12s\n", "ID", "NAME", "STATE", "CPU_S", "MEM_MB", "CHAN_TX", "CHAN_RX");
		size_t i;
		json_t *s;
		json_array_foreach(a, i, s) {
			json_t *u = json_object_get(s, "usage");
			printf("%-16s %-20s %-10s %10.2f %10.1f %12" JSON_INTEGER_FORMAT " %12" JSON_INTEGER_FORMAT "\n",
			       cli_jstr(s, "id"), cli_jstr(s, "name"), cli_jstr(s, "state"), (double)cli_jint(u, "cpu_ns") / 1e9,
			       (double)cli_jint(u, "memory_bytes") / 1048576.0, cli_jint(u, "channel_tx_bytes"),
			       cli_jint(u, "channel_rx_bytes"));
		}
	}
	json_decref(o);
	return 0;
}

int cmd_ps(int argc, char **argv)
{
	return list_sandboxes(argc, argv, false);
}

int cmd_top(int argc, char **argv)
{
	return list_sandboxes(argc, argv, true);
}

/* ---- inspect / logs ---- */

static int get_one(int argc, char **argv, const char *sub)
{
	bool json = cli_want_json(argc, argv);
	const char *id = NULL;
	uint64_t tail = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			continue;
		if (!strcmp(argv[i], "--tail") && i + 1 < argc && sub) {
			tail = strtoull(argv[++i], NULL, 10);
			continue;
		}
		if (argv[i][0] == '-' || id)
			return cli_usage_error(argv[0], sub ? "ID [--tail BYTES] [--json]" : "ID [--json]", json);
		id = argv[i];
	}
	if (!id)
		return cli_usage_error(argv[0], sub ? "ID [--tail BYTES] [--json]" : "ID [--json]", json);
	char *eid = api_escape(id);
	char path[1024];
	if (sub && tail)
		snprintf(path, sizeof path, "/v1/sandboxes/%s/%s?tail=%" PRIu64, eid, sub, tail);
	else if (sub)
		snprintf(path, sizeof path, "/v1/sandboxes/%s/%s", eid, sub);
	else
		snprintf(path, sizeof path, "/v1/sandboxes/%s", eid);
	free(eid);
	json_t *o;
	int rc = cli_call_json("GET", path, NULL, json, &o);
	if (rc)
		return rc;
	if (!sub || json) {
		cli_print_json(o);
	} else {
		size_t i;
		json_t *s;
		json_array_foreach(json_object_get(o, "states"), i, s)
			printf("%s  %s -> %s  %s\n", cli_jstr(s, "time"), cli_jstr(s, "previous_state"), cli_jstr(s, "state"),
			       cli_jstr(s, "reason"));
		const char *k;
		json_t *v;
		json_object_foreach(json_object_get(o, "logs"), k, v)
			printf("==> %s <==\n%s%s", k, json_string_value(v),
			       json_string_length(v) && json_string_value(v)[json_string_length(v) - 1] != '\n' ? "\n" : "");
	}
	json_decref(o);
	return 0;
}

int cmd_inspect(int argc, char **argv)
{
	return get_one(argc, argv, NULL);
}

int cmd_logs(int argc, char **argv)
{
	return get_one(argc, argv, "logs");
}

/* ---- create ---- */

/* A created sandbox that fell back to a provider sharing the host kernel. */
static void warn_if_fell_back(json_t *sb)
{
	if (json_object_get(sb, "isolation_fallback"))
		cli_warn_isolation_fallback(cli_jstr(sb, "id"), cli_jstr(sb, "provider"), cli_jstr(sb, "isolation_fallback"));
}

static int kv_into(json_t *obj, const char *kv, const char *what, bool json)
{
	const char *eq = strchr(kv, '=');
	if (!eq || eq == kv) {
		silo_error e;
		silo_fail(&e, SILO_ERR_INVALID_CONFIG, 0, "%s: expected KEY=VALUE, got '%s'", what, kv);
		return cli_error(&e, json);
	}
	char *k = xstrndup(kv, (size_t)(eq - kv));
	json_object_set_new(obj, k, json_string(eq + 1));
	free(k);
	return 0;
}

int cmd_create(int argc, char **argv)
{
	bool json = cli_want_json(argc, argv);
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'}, {"file", required_argument, NULL, 'f'},
		{"provider", required_argument, NULL, 'p'}, {"name", required_argument, NULL, 'n'},
		{"vcpus", required_argument, NULL, 'c'}, {"memory", required_argument, NULL, 'm'},
		{"env", required_argument, NULL, 'e'}, {"meta", required_argument, NULL, 'M'},
		{"image", required_argument, NULL, 'i'}, {"timeout", required_argument, NULL, 't'},
		{"isolation", required_argument, NULL, 'I'}, {"workdir", required_argument, NULL, 'w'},
		{"user", required_argument, NULL, 'u'},
		{"secret", required_argument, NULL, 'S'}, {"secret-file", required_argument, NULL, 'F'},
		{"network", no_argument, NULL, 'N'}, {"egress", required_argument, NULL, 'E'},
		{"publish", required_argument, NULL, 'P'},
		{"target", required_argument, NULL, 'T'}, {"idempotency-key", required_argument, NULL, 'K'},
		{NULL, 0, NULL, 0},
	};
	const char *file = NULL, *isolation = NULL, *target = NULL, *idem_key = NULL;
	json_t *body = json_object(), *env = json_object(), *meta = json_object(), *secrets = json_object();
	json_t *egress = json_array(), *publish = json_array();
	bool network = false;
	struct {
		const char *arg;
		bool file;
	} *sargs = NULL;
	size_t nsargs = 0;
	int c, rc = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "f:e:w:u:", opts, NULL)) != -1) {
		switch (c) {
		case 'S':
		case 'F':
			/* after -e is known: a bare --secret NAME marks -e NAME=... secret */
			sargs = xrealloc(sargs, (nsargs + 1) * sizeof *sargs);
			sargs[nsargs].arg = optarg;
			sargs[nsargs++].file = c == 'F';
			break;
		case 'j': break;
		case 'f': file = optarg; break;
		case 'p': json_object_set_new(body, "provider", json_string(optarg)); break;
		case 'n': json_object_set_new(body, "name", json_string(optarg)); break;
		case 'i': json_object_set_new(body, "image", json_string(optarg)); break;
		case 'w': json_object_set_new(body, "workdir", json_string(optarg)); break;
		case 'u': json_object_set_new(body, "user", json_string(optarg)); break;
		case 'c': json_object_set_new(body, "vcpus", json_integer(strtoll(optarg, NULL, 10))); break;
		case 'm': json_object_set_new(body, "memory_mb", json_integer(strtoll(optarg, NULL, 10))); break;
		case 't': json_object_set_new(body, "timeout_s", json_integer(strtoll(optarg, NULL, 10))); break;
		case 'e': rc = kv_into(env, optarg, "--env", json); break;
		case 'M': rc = kv_into(meta, optarg, "--meta", json); break;
		case 'I':
			isolation = optarg;
			rc = cli_check_isolation(optarg, json);
			break;
		case 'N': network = true; break;
		case 'E': json_array_append_new(egress, json_string(optarg)); break;
		case 'P': json_array_append_new(publish, json_string(optarg)); break;
		case 'T': target = optarg; break;       /* a remote target (docs/remote.md) */
		case 'K': idem_key = optarg; break;
		default: rc = cli_usage_error(argv[0], "[-f hac.toml | --provider P --name N --vcpus N --memory MB "
						   "--image I --timeout S -e K=V -w DIR -u USER --meta K=V] [--isolation vm|any] "
						   "[--secret K[=V]] [--secret-file K=PATH] [--network] [--egress ENTRY]... "
						   "[--publish GUEST_PORT[=127.0.0.1:PORT|=/unix/path]]... "
						   "[--target NAME [--idempotency-key K]] [--json]", json);
		}
		if (rc)
			goto out;
	}
	if (optind != argc) {
		rc = cli_usage_error(argv[0], "takes no positional arguments (use -f FILE)", json);
		goto out;
	}
	for (size_t i = 0; i < nsargs; i++) {
		const char *a = sargs[i].arg, *eq = strchr(a, '=');
		json_t *marked = eq || sargs[i].file ? NULL : json_object_get(env, a);
		char *k, *v;
		silo_error se;
		if (cli_secret_arg(sargs[i].file ? "--secret-file" : "--secret", a, sargs[i].file, json_string_value(marked),
				   &k, &v, &se) < 0) {
			rc = cli_error(&se, json);
			goto out;
		}
		if (marked)
			json_object_del(env, k);
		json_object_set_new(secrets, k, json_string(v));
		free(k);
		cli_secret_free(v);
	}
	char *payload = NULL;
	size_t len = 0;
	const char *ctype;
	silo_error err;
	if (file) {
		if (json_object_size(body) || json_object_size(env) || json_object_size(meta) || network ||
		    json_array_size(egress)) {
			rc = cli_usage_error(argv[0], "-f cannot be combined with other spec options", json);
			goto out;
		}
		if (read_file(strcmp(file, "-") ? file : "/dev/stdin", 1 << 20, &payload, &len, &err) < 0) {
			rc = cli_error(&err, json);
			goto out;
		}
		ctype = "application/toml";
		if (json_object_size(secrets)) {
			/* the spec and the secrets in one JSON body (held in memory by silod) */
			json_t *b2 = json_pack("{s:s%,s:O}", "spec", payload, len, "secrets", secrets);
			free(payload);
			payload = json_dumps(b2, JSON_COMPACT);
			json_decref(b2);
			len = strlen(payload);
			ctype = "application/json";
		}
	} else {
		if (json_object_size(env))
			json_object_set(body, "env", env);
		if (json_object_size(meta))
			json_object_set(body, "metadata", meta);
		if (json_object_size(secrets))
			json_object_set(body, "secrets", secrets);
		if (network || json_array_size(egress))
			json_object_set_new(body, "network", json_true());
		if (json_array_size(egress))
			json_object_set(body, "egress", egress);
		payload = json_dumps(body, JSON_COMPACT);
		len = strlen(payload);
		ctype = "application/json";
	}
	api_client *cl;
	if ((rc = connect_or_fail(&cl, json)))
		goto out_payload;
	char *resp;
	char path[1024];
	snprintf(path, sizeof path, "/v1/sandboxes%s%s", isolation ? "?isolation=" : "", isolation ? isolation : "");
	cli_remote_query(path, sizeof path, target, idem_key);
	if (api_call(cl, "POST", path, ctype, payload, len, &resp, NULL, &err) < 0) {
		rc = cli_error(&err, json);
	} else {
		json_t *o = json_loads(resp, 0, NULL);
		warn_if_fell_back(o);
		json_t *ports = json_array();
		size_t i;
		json_t *pv;
		json_array_foreach(publish, i, pv) {
			/* --publish: a port forward right away (silo port ID PORT) */
			json_t *f = NULL;
			if ((rc = cli_port_publish(cl, cli_jstr(o, "id"), json_string_value(pv), json, &f)))
				break;
			if (!json)
				fprintf(stderr, "silo: port %lld -> %s\n", (long long)cli_jint(f, "port"),
					cli_jstr(f, "listen")[0] ? cli_jstr(f, "listen") : cli_jstr(f, "unix"));
			json_array_append_new(ports, f);
		}
		if (json_array_size(ports))
			json_object_set(o, "ports", ports);
		json_decref(ports);
		if (json)
			cli_print_json(o);
		else if (!cli_print_queued(o))
			printf("%s\n", cli_jstr(o, "id"));
		json_decref(o);
		free(resp);
	}
	api_client_free(cl);
out_payload:
	if (payload)
		explicit_bzero(payload, len);
	free(payload);
out:
	json_decref(body);
	json_decref(env);
	json_decref(meta);
	json_decref(secrets);
	json_decref(egress);
	json_decref(publish);
	free(sargs);
	return rc;
}

/* ---- rm ---- */

static void print_id(json_t *o)
{
	printf("%s\n", cli_jstr(o, "id"));
}

int cmd_rm(int argc, char **argv)
{
	bool json = cli_want_json(argc, argv);
	long grace = -1;
	int rc = 0;
	char **ids = xcalloc((size_t)argc, sizeof *ids);
	int n = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			continue;
		if (!strcmp(argv[i], "--grace-ms") && i + 1 < argc) {
			grace = strtol(argv[++i], NULL, 10);
			continue;
		}
		if (argv[i][0] == '-') {
			free(ids);
			return cli_usage_error(argv[0], "[--grace-ms N] ID... [--json]", json);
		}
		ids[n++] = argv[i];
	}
	if (!n) {
		free(ids);
		return cli_usage_error(argv[0], "[--grace-ms N] ID... [--json]", json);
	}
	char query[64] = "";
	if (grace >= 0)
		snprintf(query, sizeof query, "?grace_ms=%ld", grace);
	rc = cli_delete_each("sandboxes", ids, n, query, json, print_id);
	free(ids);
	return rc;
}

/* ---- exec ---- */

typedef struct exec_out {
	char *line;
	size_t len, cap;
	unsigned char *dec;         /* decoded output of one line */
	size_t dec_cap;
	bool json;
	int exit_status;
	bool oom_killed;
	bool got_exit;
	bool timed_out;
	silo_error err;
	bool failed;
	int write_errno;            /* writing our stdout/stderr failed: stop the stream */
} exec_out;

/* Decode base64 output and write it to f (blocking: a slow reader of ours
 * slows the stream down, silod and the sandbox follow). false on a write error. */
static bool exec_write(exec_out *o, FILE *f, const char *b64, size_t bl)
{
	size_t cap = bl / 4 * 3 + 3, got = 0;
	if (cap > o->dec_cap) {
		o->dec = xrealloc(o->dec, cap);
		o->dec_cap = cap;
	}
	if (sodium_base642bin(o->dec, cap, b64, bl, NULL, &got, NULL, sodium_base64_VARIANT_ORIGINAL) != 0)
		return true;   /* not ours to judge: silod only sends valid base64 */
	if ((got && fwrite(o->dec, 1, got, f) != got) || fflush(f) != 0) {
		o->write_errno = errno ? errno : EIO;
		return false;
	}
	return true;
}

/* The output lines silod writes, {"stream":"stdout","data":"..."}, without a
 * JSON parse of each (they are up to 90 KB); anything else goes to jansson. */
static int exec_fast_line(exec_out *o, const char *line, size_t len)
{
	static const char out[] = "{\"stream\":\"stdout\",\"data\":\"", err[] = "{\"stream\":\"stderr\",\"data\":\"";
	size_t pl = sizeof out - 1;
	if (o->json || len < pl + 2 || memcmp(line + len - 2, "\"}", 2) != 0)
		return -1;
	FILE *f = !memcmp(line, out, pl) ? stdout : !memcmp(line, err, pl) ? stderr : NULL;
	if (!f || memchr(line + pl, '"', len - pl - 2))
		return -1;
	return exec_write(o, f, line + pl, len - pl - 2) ? 1 : 0;
}

static bool exec_line(exec_out *o, const char *line, size_t len)
{
	int fast = exec_fast_line(o, line, len);
	if (fast >= 0)
		return fast == 1;
	if (o->json) {
		fwrite(line, 1, len, stdout);
		fputc('\n', stdout);
	}
	json_t *j = json_loadb(line, len, 0, NULL);
	if (!j)
		return true;
	const char *stream = json_string_value(json_object_get(j, "stream"));
	bool ok = true;
	if (stream && !o->json) {
		const char *b64 = cli_jstr(j, "data");
		ok = exec_write(o, !strcmp(stream, "stderr") ? stderr : stdout, b64, strlen(b64));
	} else if (json_object_get(j, "exit_code")) {
		o->got_exit = true;
		int sig = (int)cli_jint(j, "signal");
		o->exit_status = sig ? 128 + sig : (int)cli_jint(j, "exit_code");
		o->timed_out = json_is_true(json_object_get(j, "timed_out"));
		o->oom_killed = cli_exit_oom(j);
	} else if (json_object_get(j, "error")) {
		char *s = json_dumps(j, JSON_COMPACT);
		api_error_from_body(500, s, &o->err);
		free(s);
		o->failed = true;
	}
	json_decref(j);
	return ok;
}

static bool exec_chunk(void *ud, const char *buf, size_t len)
{
	exec_out *o = ud;
	while (len) {
		const char *nl = memchr(buf, '\n', len);
		size_t n = nl ? (size_t)(nl - buf) : len;
		if (o->len + n + 1 > o->cap) {
			if (o->len + n > (64u << 20))
				return false;   /* a line that long is not from silod */
			o->cap = MAX(o->cap * 2, o->len + n + 1);
			o->line = xrealloc(o->line, o->cap);
		}
		memcpy(o->line + o->len, buf, n);
		o->len += n;
		if (!nl)
			break;
		bool ok = exec_line(o, o->line, o->len);
		o->len = 0;
		if (!ok)
			return false;   /* our stdout failed: hang up, silod kills the command */
		buf += n + 1;
		len -= n + 1;
	}
	return true;
}

/* After the stream: the verb's status (the command's, or a CLI error). */
static int exec_status(exec_out *o, bool json)
{
	silo_error err;
	if (o->len && !o->write_errno)
		exec_line(o, o->line, o->len);
	if (o->write_errno) {
		silo_fail(&err, SILO_ERR_IO_ERROR, o->write_errno, "write the command's output");
		return cli_error(&err, json);
	}
	if (o->failed)
		return cli_error(&o->err, false);
	if (!o->got_exit) {
		silo_fail(&err, SILO_ERR_PROTOCOL, 0, "exec stream ended without an exit status");
		return cli_error(&err, json);
	}
	return o->exit_status;
}

int cmd_exec(int argc, char **argv)
{
	bool json = cli_want_json(argc, argv);
	const char *u = "[--json] [-i] [-t] [-d [--tag T]] [-e K=V] [-w DIR] [--timeout-ms N] ID -- CMD [ARG...]";
	json_t *req = json_object(), *env = json_object(), *av = json_array();
	bool in = false, tty = false, detach = false;
	const char *id = NULL, *tag = NULL;
	int i, rc = 0;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--")) {
			i++;
			break;
		}
		if (!strcmp(a, "--json"))
			continue;
		if (a[0] == '-' && a[1] && strspn(a + 1, "itd") == strlen(a + 1)) {   /* -i -t -d -it -ti -id ... */
			in |= strchr(a, 'i') != NULL;
			tty |= strchr(a, 't') != NULL;
			detach |= strchr(a, 'd') != NULL;
		} else if (!strcmp(a, "--interactive")) {
			in = true;
		} else if (!strcmp(a, "--tty")) {
			tty = true;
		} else if (!strcmp(a, "--detach")) {
			detach = true;
		} else if (!strcmp(a, "--tag") && i + 1 < argc) {
			tag = argv[++i];
		} else if (!strcmp(a, "-e") && i + 1 < argc) {
			if ((rc = kv_into(env, argv[++i], "-e", json)))
				goto out;
		} else if (!strcmp(a, "-w") && i + 1 < argc) {
			json_object_set_new(req, "cwd", json_string(argv[++i]));
		} else if (!strcmp(a, "--timeout-ms") && i + 1 < argc) {
			json_object_set_new(req, "timeout_ms", json_integer(strtoll(argv[++i], NULL, 10)));
		} else if (a[0] == '-') {
			rc = cli_usage_error(argv[0], u, json);
			goto out;
		} else if (!id) {
			id = a;
		} else {
			break;   /* command without "--" */
		}
	}
	if (!id || i >= argc) {
		rc = cli_usage_error(argv[0], u, json);
		goto out;
	}
	for (; i < argc; i++)
		json_array_append_new(av, json_string(argv[i]));
	json_object_set(req, "argv", av);
	if (json_object_size(env))
		json_object_set(req, "env", env);
	silo_error err;
	if ((tag && !detach) || (detach && (in || tty))) {
		rc = cli_usage_error(argv[0], "-d (a background process, --tag names it) takes neither -i nor -t", json);
		goto out;
	}
	if (in || tty || detach) {   /* a session (stdin streamed, a PTY) or a background process */
		rc = cli_exec_session(id, req, tty, in, detach, tag, json);
		goto out;
	}
	char *body = json_dumps(req, JSON_COMPACT);
	char *eid = api_escape(id);
	char path[1024];
	snprintf(path, sizeof path, "/v1/sandboxes/%s/exec", eid);
	free(eid);
	api_client *cl;
	if ((rc = connect_or_fail(&cl, json))) {
		free(body);
		goto out;
	}
	exec_out o = {.json = json};
	if (api_stream(cl, "POST", path, "application/json", body, strlen(body), -1, exec_chunk, &o, &err) < 0)
		rc = cli_error(&err, json);
	else
		rc = exec_status(&o, json);
	fflush(stdout);
	if (o.got_exit && o.oom_killed && !json)
		cli_note_oom(id, 0);
	free(o.line);
	free(o.dec);
	free(body);
	api_client_free(cl);
out:
	json_decref(req);
	json_decref(env);
	json_decref(av);
	return rc;
}

/* ---- run through the daemon ---- */

static volatile sig_atomic_t run_interrupted;

static void on_run_signal(int sig)
{
	run_interrupted = sig;
}

static bool run_chunk(void *ud, const char *buf, size_t len)
{
	if (run_interrupted)
		return false;   /* abort the stream; the sandbox is deleted below */
	return exec_chunk(ud, buf, len);
}

int daemon_run(const char *toml, char *const *argv, char *const *env, const char *cwd,
	       const void *stdin_data, size_t stdin_len, uint32_t timeout_ms, bool json, bool cold, bool times,
	       run_report *rep)
{
	memset(rep, 0, sizeof *rep);
	api_client *cl;
	int rc = connect_or_fail(&cl, json);
	if (rc)
		return rc;
	silo_error err;
	char *resp = NULL;
	/* over the unix socket the sandbox is bound to this process: silod deletes
	 * it if we die (kill -9 included) before our DELETE below */
	const char *create = getenv("SILO_HOST") ? (cold ? "/v1/sandboxes?cold=1" : "/v1/sandboxes")
			     : cold		 ? "/v1/sandboxes?bind=client&cold=1"
						 : "/v1/sandboxes?bind=client";
	if (api_call(cl, "POST", create, "application/toml", toml, strlen(toml), &resp, NULL, &err) < 0) {
		api_client_free(cl);
		return cli_error(&err, json);
	}
	json_t *o = json_loads(resp, 0, NULL);
	free(resp);
	char *id = rep->id;
	snprintf(rep->id, sizeof rep->id, "%s", cli_jstr(o, "id"));
	warn_if_fell_back(o);
	json_decref(o);
	char path[256];

	struct sigaction sa = {.sa_handler = on_run_signal}, old_int, old_term;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	api_client_set_abort(cl, &run_interrupted);

	json_t *req = json_object(), *av = json_array();
	for (char *const *a = argv; a && *a; a++)
		json_array_append_new(av, json_string(*a));
	json_object_set_new(req, "argv", av);
	if (env && *env) {
		json_t *e = json_object();
		for (char *const *kv = env; *kv; kv++) {
			const char *eq = strchr(*kv, '=');
			if (!eq)
				continue;
			char *k = xstrndup(*kv, (size_t)(eq - *kv));
			json_object_set_new(e, k, json_string(eq + 1));
			free(k);
		}
		json_object_set_new(req, "env", e);
	}
	if (cwd)
		json_object_set_new(req, "cwd", json_string(cwd));
	if (timeout_ms)
		json_object_set_new(req, "timeout_ms", json_integer(timeout_ms));
	if (stdin_data && stdin_len) {
		size_t bl = sodium_base64_encoded_len(stdin_len, sodium_base64_VARIANT_ORIGINAL);
		char *b64 = xmalloc(bl);
		sodium_bin2base64(b64, bl, stdin_data, stdin_len, sodium_base64_VARIANT_ORIGINAL);
		json_object_set_new(req, "stdin", json_string(b64));
		free(b64);
	}
	char *body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	snprintf(path, sizeof path, "/v1/sandboxes/%s/exec", id);
	exec_out eo = {.json = false};   /* the command's output as it is, as without silod */
	uint64_t t_exec = now_mono_ns();
	if (api_stream(cl, "POST", path, "application/json", body, strlen(body), -1, run_chunk, &eo, &err) < 0 &&
	    !run_interrupted) {
		rc = cli_error(&err, json);
	} else if (run_interrupted) {
		rc = 128 + run_interrupted;
	} else {
		rc = exec_status(&eo, json);
		rep->timed_out = eo.timed_out;
		rep->oom_killed = eo.oom_killed;
	}
	rep->exec_ms = (now_mono_ns() - t_exec) / 1000000;
	free(body);
	free(eo.line);
	free(eo.dec);
	fflush(stdout);
	api_client_set_abort(cl, NULL);
	snprintf(path, sizeof path, "/v1/sandboxes/%s", id);
	if ((times || rep->oom_killed) && api_call(cl, "GET", path, NULL, NULL, 0, &resp, NULL, &err) == 0) {
		/* its spawn/ready times, its memory limit: a round trip only when reported */
		o = json_loads(resp, 0, NULL);
		rep->spawn_ms = (uint64_t)cli_jint(o, "spawn_ms");
		rep->memory_mb = (uint32_t)cli_jint(o, "memory_mb");
		rep->ready_ms = (uint64_t)cli_jint(o, "ready_ms");
		rep->from_template = !strcmp(cli_jstr(o, "start"), "template");
		json_decref(o);
		free(resp);
	}
	uint64_t t_destroy = now_mono_ns();
	if (api_call(cl, "DELETE", path, NULL, NULL, 0, NULL, NULL, &err) < 0) {
		int r2 = cli_error(&err, json);
		if (!rc)
			rc = r2;
	}
	rep->destroy_ms = (now_mono_ns() - t_destroy) / 1000000;
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	api_client_free(cl);
	return rc;
}

/* ---- cp ---- */

static bool write_chunk(void *ud, const char *buf, size_t len)
{
	return write_all(*(int *)ud, buf, len) == 0;
}

int cmd_cp(int argc, char **argv)
{
	bool json = cli_want_json(argc, argv);
	const char *u = "[-r] [--mode OCTAL] SRC DST  (one of them ID:/path; - is stdin/stdout)";
	const char *args[2] = {NULL, NULL};
	int n = 0;
	unsigned long mode = 0644;
	bool recursive = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			continue;
		if (!strcmp(argv[i], "--mode") && i + 1 < argc) {
			mode = strtoul(argv[++i], NULL, 8);
			continue;
		}
		if (!strcmp(argv[i], "-r") || !strcmp(argv[i], "-R") || !strcmp(argv[i], "--recursive")) {
			recursive = true;
			continue;
		}
		if (n == 2 || (argv[i][0] == '-' && argv[i][1]))
			return cli_usage_error(argv[0], u, json);
		args[n++] = argv[i];
	}
	if (n != 2)
		return cli_usage_error(argv[0], u, json);
	char sid[128], did[128];
	const char *spath, *dpath;
	bool sremote = cli_split_remote(args[0], sid, sizeof sid, &spath);
	bool dremote = cli_split_remote(args[1], did, sizeof did, &dpath);
	if (sremote == dremote)
		return cli_usage_error(argv[0], u, json);
	silo_error err;
	struct stat lst;
	if (dremote && strcmp(args[0], "-") && stat(args[0], &lst) == 0 && S_ISDIR(lst.st_mode) && !recursive) {
		silo_fail(&err, SILO_ERR_INVALID_CONFIG, 0, "cp: %s is a directory (copy it with -r)", args[0]);
		return cli_error(&err, json);
	}
	if (recursive)
		return cli_cp_tree(args[0], args[1], json);
	api_client *cl;
	int rc = connect_or_fail(&cl, json);
	if (rc)
		return rc;
	char path[8192];
	const char *id = sremote ? sid : did;
	char *eid = api_escape(id), *ep = api_escape(sremote ? spath : dpath);
	if (dremote)
		snprintf(path, sizeof path, "/v1/sandboxes/%s/files?path=%s&mode=0%lo", eid, ep, mode & 07777);
	else
		snprintf(path, sizeof path, "/v1/sandboxes/%s/files?path=%s", eid, ep);
	free(eid);
	free(ep);
	if (dremote) {
		int fd = strcmp(args[0], "-") ? open(args[0], O_RDONLY | O_CLOEXEC) : 0;
		struct stat st;
		if (fd < 0) {
			silo_fail(&err, SILO_ERR_IO_ERROR, errno, "open %s", args[0]);
			rc = cli_error(&err, json);
		} else if (fd > 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
			close(fd);
			silo_fail(&err, SILO_ERR_INVALID_CONFIG, 0, "cp: %s is a directory (copy it with -r)", args[0]);
			rc = cli_error(&err, json);
		} else {
			if (api_stream(cl, "PUT", path, "application/octet-stream", NULL, 0, fd, NULL, NULL, &err) < 0)
				rc = cli_error(&err, json);
			else if (json)
				printf("{\"id\":\"%s\",\"path\":\"%s\"}\n", did, dpath);
			if (fd > 0)
				close(fd);
		}
	} else {
		char tmp[4200] = "";
		int fd = 1;
		if (strcmp(args[1], "-") != 0) {
			snprintf(tmp, sizeof tmp, "%s.silo-cp-XXXXXX", args[1]);
			fd = mkstemp(tmp);
		}
		if (fd < 0) {
			silo_fail(&err, SILO_ERR_IO_ERROR, errno, "create %s", args[1]);
			rc = cli_error(&err, json);
		} else if (api_stream(cl, "GET", path, NULL, NULL, 0, -1, write_chunk, &fd, &err) < 0) {
			if (err.sys_errno == EISDIR)
				silo_error_prefix(&err, "%s is a directory (copy it with -r)", args[0]);
			rc = cli_error(&err, json);
			if (tmp[0]) {
				close(fd);
				unlink(tmp);
			}
		} else if (tmp[0]) {
			fchmod(fd, 0644);
			close(fd);
			if (rename(tmp, args[1]) < 0) {
				silo_fail(&err, SILO_ERR_IO_ERROR, errno, "rename to %s", args[1]);
				unlink(tmp);
				rc = cli_error(&err, json);
			}
		}
	}
	api_client_free(cl);
	return rc;
}

/* ---- events ---- */

typedef struct sse {
	char *buf;
	size_t len, cap;
	bool json;
	char event[64];
	char *data;
} sse;

static void sse_dispatch(sse *s)
{
	if (!s->data)
		return;
	if (s->json) {
		printf("%s\n", s->data);
	} else {
		json_t *o = json_loads(s->data, 0, NULL);
		if (o) {
			printf("%s %-18s %-16s %s%s%s%s%s\n", cli_jstr(o, "time"), cli_jstr(o, "type")[0] ? cli_jstr(o, "type") : s->event,
			       cli_jstr(o, "sandbox_id")[0] ? cli_jstr(o, "sandbox_id") : "-", cli_jstr(o, "previous_state"),
			       cli_jstr(o, "previous_state")[0] ? "->" : "", cli_jstr(o, "state"), cli_jstr(o, "state")[0] ? " " : "",
			       cli_jstr(o, "reason"));
			json_decref(o);
		}
	}
	fflush(stdout);
	free(s->data);
	s->data = NULL;
	s->event[0] = '\0';
}

static bool sse_chunk(void *ud, const char *buf, size_t len)
{
	sse *s = ud;
	for (size_t i = 0; i < len; i++) {
		if (buf[i] != '\n') {
			if (s->len + 1 >= s->cap) {
				if (s->cap > (1u << 20))
					return false;
				s->cap = s->cap ? s->cap * 2 : 1024;
				s->buf = xrealloc(s->buf, s->cap);
			}
			s->buf[s->len++] = buf[i];
			continue;
		}
		if (s->len == 0) {
			sse_dispatch(s);
			continue;
		}
		s->buf[s->len] = '\0';
		if (!strncmp(s->buf, "data: ", 6)) {
			free(s->data);
			s->data = xstrdup(s->buf + 6);
		} else if (!strncmp(s->buf, "event: ", 7)) {
			snprintf(s->event, sizeof s->event, "%s", s->buf + 7);
		}
		s->len = 0;
	}
	return true;
}

int cmd_events(int argc, char **argv)
{
	bool json = cli_want_json(argc, argv);
	const char *sandbox = NULL, *types = NULL;
	long count = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			continue;
		if (!strcmp(argv[i], "--sandbox") && i + 1 < argc)
			sandbox = argv[++i];
		else if (!strcmp(argv[i], "--types") && i + 1 < argc)
			types = argv[++i];
		else if (!strcmp(argv[i], "--count") && i + 1 < argc)
			count = strtol(argv[++i], NULL, 10);
		else
			return cli_usage_error(argv[0], "[--sandbox ID] [--types T,T] [--count N] [--json]", json);
	}
	char path[1024] = "/v1/events";
	size_t off = strlen(path);
	char sep = '?';
	if (sandbox) {
		char *e = api_escape(sandbox);
		off += (size_t)snprintf(path + off, sizeof path - off, "%csandbox=%s", sep, e);
		sep = '&';
		free(e);
	}
	if (types) {
		char *e = api_escape(types);
		off += (size_t)snprintf(path + off, sizeof path - off, "%ctypes=%s", sep, e);
		sep = '&';
		free(e);
	}
	if (count > 0)
		snprintf(path + off, sizeof path - off, "%climit=%ld", sep, count);
	api_client *cl;
	int rc = connect_or_fail(&cl, json);
	if (rc)
		return rc;
	sse s = {.json = json};
	silo_error err;
	if (api_stream(cl, "GET", path, NULL, NULL, 0, -1, sse_chunk, &s, &err) < 0)
		rc = cli_error(&err, json);
	sse_dispatch(&s);
	free(s.buf);
	free(s.data);
	api_client_free(cl);
	return rc;
}

/* ---- audit ---- */

int cmd_audit(int argc, char **argv)
{
	bool json = cli_want_json(argc, argv);
	const char *file = NULL;
	bool verify = false;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			continue;
		if (!verify && !strcmp(argv[i], "verify"))
			verify = true;
		else if (verify && !file && argv[i][0] != '-')
			file = argv[i];
		else
			return cli_usage_error(argv[0], "verify [FILE] [--json]  (default: $SILO_STATE_DIR/audit.jsonl)", json);
	}
	if (!verify)
		return cli_usage_error(argv[0], "verify [FILE] [--json]  (default: $SILO_STATE_DIR/audit.jsonl)", json);
	char def[4096];
	if (!file) {
		snprintf(def, sizeof def, "%s/audit.jsonl", silo_state_dir());
		file = def;
	}
	audit_verify_result r;
	silo_error err;
	int rc = audit_verify(file, &r, &err);
	if (rc < 0)
		return cli_error(&err, json);
	if (json) {
		json_t *o = json_pack("{s:s,s:b,s:I}", "file", file, "intact", rc == 0, "records", (json_int_t)r.records);
		if (rc) {
			json_object_set_new(o, "bad_line", json_integer((json_int_t)r.bad_line));
			json_object_set_new(o, "reason", json_string(r.why));
		}
		char *s = json_dumps(o, JSON_COMPACT);
		printf("%s\n", s);
		free(s);
		json_decref(o);
	} else if (rc == 0) {
		printf("%s: intact, %" PRIu64 " records\n", file, r.records);
	} else {
		fprintf(stderr, "silo: %s: tampered: first bad line %" PRIu64 ": %s\n", file, r.bad_line, r.why);
	}
	return rc == 0 ? 0 : 1;
}
