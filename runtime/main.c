/* SPDX-License-Identifier: Apache-2.0
 * silo-oci: the OCI runtime command line (as runc, crun and runsc have it) on
 * Silo sandboxes (runtime/rt.h, docs/kubernetes.md). Global options come
 * before the command; commands are rows of one table. Also reached as
 * `silo oci ...` through a link named silo-oci.
 *
 * Errors: a line on stderr and, with --log, one record in the log file
 * (--log-format json: {"level": "error", "msg": ..., "time": ...}, which is
 * what conmon and containerd's go-runc read back); exit status 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/util.h"
#include "runtime/rt.h"
#include "spec/toml.h"

rt_global rt_g = {.root = RT_DEFAULT_ROOT};

typedef struct rt_command {
	const char *name;
	const char *summary;
	int (*fn)(int argc, char **argv);
} rt_command;

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv);

static const rt_command commands[] = {
	{"create", "create a container (its sandbox) from a bundle: create [--bundle DIR] [--pid-file F] [--console-socket S] ID", rt_cmd_create},
	{"start", "run the process of a created container: start ID", rt_cmd_start},
	{"run", "create and start, then wait (unless --detach): run [--bundle DIR] [--detach] ID", rt_cmd_run},
	{"state", "print a container's state (JSON): state ID", rt_cmd_state},
	{"kill", "send a signal to the container's process: kill [--all] ID [SIGNAL]", rt_cmd_kill},
	{"delete", "delete a stopped container (--force: any): delete [--force] ID", rt_cmd_delete},
	{"exec", "run another process in a container: exec [--process F | ARGS] [--detach] [--pid-file F] [--tty] ID", rt_cmd_exec},
	{"ps", "list the host processes of a container: ps [--format table|json] ID", rt_cmd_ps},
	{"pause", "freeze a container: pause ID", rt_cmd_pause},
	{"resume", "thaw a paused container: resume ID", rt_cmd_resume},
	{"list", "list containers: list [--format table|json] [--quiet]", rt_cmd_list},
	{"features", "print what this runtime supports (JSON)", rt_cmd_features},
	{"spec", "write a default config.json: spec [--bundle DIR]", rt_cmd_spec},
	{"version", "print the version", cmd_version},
	{"help", "this help", cmd_help},
	/* commands: add rows above this line */
};

static int cmd_version(int argc, char **argv)
{
	printf("silo-oci version %s\nspec: %s\n", SILO_VERSION, RT_OCI_VERSION);
	return 0;
}

static int cmd_help(int argc, char **argv)
{
	printf("usage: silo-oci [--root DIR] [--log FILE] [--log-format text|json] [--systemd-cgroup] [--debug] COMMAND [ARGS]\n\n"
	       "An OCI runtime whose containers run in Silo sandboxes (docs/kubernetes.md).\n\ncommands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		printf("  %-9s %s\n", commands[i].name, commands[i].summary);
	return 0;
}

/* ---- logging ---- */

static void log_line(const char *level, const char *msg)
{
	if (!rt_g.log[0])
		return;
	int fd = open(rt_g.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	char when[40];
	format_time_ms(now_realtime_ms(), when, sizeof when);
	char *line;
	if (rt_g.log_json) {
		json_t *o = json_pack("{s:s,s:s,s:s}", "level", level, "msg", msg, "time", when);
		char *j = json_dumps(o, JSON_COMPACT);
		json_decref(o);
		line = xasprintf("%s\n", j ? j : "{}");
		free(j);
	} else {
		line = xasprintf("time=\"%s\" level=%s msg=\"%s\"\n", when, level, msg);
	}
	(void)!write_all(fd, line, strlen(line));
	free(line);
	close(fd);
}

void rt_log(const char *level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char msg[2048];
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_line(level, msg);
	if (rt_g.debug && !rt_g.supervisor && strcmp(level, "error") != 0)
		fprintf(stderr, "silo-oci: %s: %s\n", level, msg);
}

int rt_fail(const silo_error *err)
{
	char buf[SILO_ERROR_MSG_MAX + 128];
	silo_error_str(err, buf, sizeof buf);
	log_line("error", buf);
	fprintf(stderr, "silo-oci: %s\n", buf);
	return 1;
}

/* ---- settings ---- */

int rt_settings_load(rt_settings *s, silo_error *err)
{
	memset(s, 0, sizeof *s);
	snprintf(s->fallback, sizeof s->fallback, "kvm,qemu,namespace");
	const char *path = getenv("SILO_OCI_CONFIG");
	if (!path || !*path)
		path = "/etc/silo/oci.toml";
	cleanup_free char *text = NULL;
	size_t n = 0;
	silo_error e = {0};
	if (read_file(path, 65536, &text, &n, &e) < 0) {
		if (e.sys_errno == ENOENT && !getenv("SILO_OCI_CONFIG"))
			return 0;
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, e.sys_errno, "%s: %s", path, e.message);
	}
	char terr[256];
	toml_value *t = toml_parse(text, n, terr, sizeof terr);
	if (!t)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s:%s", path, terr);
	int rc = 0;
	for (size_t i = 0; i < t->u.tab.n && rc == 0; i++) {
		const char *k = t->u.tab.keys[i];
		const toml_value *v = t->u.tab.vals[i];
		bool str = v->type == TOML_STRING, num = v->type == TOML_INTEGER && v->u.i > 0 && v->u.i <= 1048576;
		if (!strcmp(k, "provider") && str && v->u.str.len < sizeof s->provider)
			snprintf(s->provider, sizeof s->provider, "%s", v->u.str.ptr);
		else if (!strcmp(k, "fallback") && str && v->u.str.len < sizeof s->fallback)
			snprintf(s->fallback, sizeof s->fallback, "%s", v->u.str.ptr);
		else if (!strcmp(k, "tcg") && v->type == TOML_BOOL)
			s->tcg = v->u.b;
		else if (!strcmp(k, "memory_mb") && num)
			s->memory_mb = (uint32_t)v->u.i;
		else if (!strcmp(k, "vcpus") && num && v->u.i <= 64)
			s->vcpus = (uint32_t)v->u.i;
		else if (!strcmp(k, "disk_mb") && num)
			s->disk_mb = (uint32_t)v->u.i;
		else
			rc = silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				       "%s:%d: %s: expected provider = \"kvm|qemu|namespace|auto\", fallback = \"kvm,qemu,namespace\", "
				       "tcg = true|false, memory_mb, vcpus or disk_mb = N",
				       path, v->kline, k);
	}
	toml_free(t);
	if (!strcmp(s->provider, "auto"))
		s->provider[0] = '\0';
	return rc;
}

/* ---- global options ---- */

/* "--name VALUE", "--name=VALUE" or "-name ..." (Go's flag package accepts one dash). */
static const char *opt_value(const char *a, const char *name, int *i, int argc, char **argv)
{
	const char *p = a[0] == '-' && a[1] == '-' ? a + 2 : a[0] == '-' ? a + 1 : NULL;
	size_t n = strlen(name);
	if (!p || strncmp(p, name, n) != 0)
		return NULL;
	if (p[n] == '=')
		return p + n + 1;
	if (p[n] == '\0' && *i + 1 < argc)
		return argv[++*i];
	return NULL;
}

static bool opt_flag(const char *a, const char *name)
{
	const char *p = a[0] == '-' && a[1] == '-' ? a + 2 : a[0] == '-' ? a + 1 : NULL;
	size_t n = strlen(name);
	return p && !strncmp(p, name, n) && (p[n] == '\0' || !strcmp(p + n, "=true"));
}

int main(int argc, char **argv)
{
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i], *v;
		if ((v = opt_value(a, "root", &i, argc, argv))) {
			if (v[0] != '/' || strlen(v) >= sizeof rt_g.root - RT_ID_MAX - 16) {
				fprintf(stderr, "silo-oci: --root: expected an absolute path, got \"%s\"\n", v);
				return 1;
			}
			snprintf(rt_g.root, sizeof rt_g.root, "%s", v);
		} else if ((v = opt_value(a, "log", &i, argc, argv))) {
			snprintf(rt_g.log, sizeof rt_g.log, "%s", v);
		} else if ((v = opt_value(a, "log-format", &i, argc, argv))) {
			if (strcmp(v, "json") && strcmp(v, "text")) {
				fprintf(stderr, "silo-oci: --log-format: expected text or json, got \"%s\"\n", v);
				return 1;
			}
			rt_g.log_json = !strcmp(v, "json");
		} else if (opt_flag(a, "systemd-cgroup")) {
			rt_log("warning", "--systemd-cgroup is ignored: a container's limits are its sandbox's "
					  "(cgroupfs under the provider), not a systemd unit");
		} else if (opt_flag(a, "debug")) {
			rt_g.debug = true;
		} else if (opt_flag(a, "version") || !strcmp(a, "-v")) {
			return cmd_version(0, NULL);
		} else if (opt_flag(a, "help") || !strcmp(a, "-h")) {
			return cmd_help(0, NULL);
		} else if ((v = opt_value(a, "criu", &i, argc, argv)) || (v = opt_value(a, "rootless", &i, argc, argv))) {
			(void)v;   /* accepted for compatibility; no checkpointing, always root */
		} else {
			fprintf(stderr, "silo-oci: unknown global option %s (see silo-oci --help)\n", a);
			return 1;
		}
	}
	/* the log-format line above may have come after --log-format's own warning */
	if (i >= argc)
		return cmd_help(0, NULL);
	for (size_t k = 0; k < ARRAY_SIZE(commands); k++)
		if (!strcmp(commands[k].name, argv[i]))
			return commands[k].fn(argc - i, argv + i);
	silo_error e;
	silo_fail(&e, SILO_ERR_NOT_SUPPORTED, 0, "unknown command \"%.64s\" (see silo-oci --help)", argv[i]);
	return rt_fail(&e);
}
