/* SPDX-License-Identifier: Apache-2.0
 * The commands of silo-oci (runtime/rt.h has the process model). Each takes
 * its options in runc's spellings ("--bundle DIR", "--bundle=DIR", "-b DIR")
 * and the container id as its first positional argument. Commands that change
 * a container take ROOT/ID/lock; the supervisor does the rest over ctl.sock.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "common/fdread.h"
#include "common/util.h"
#include "core/owner.h"
#include "core/provider.h"
#include "core/sandbox.h"
#include "runtime/rt.h"

#define START_TIMEOUT_MS 120000
#define STOP_WAIT_MS 15000

/* ---- options ---- */

typedef struct opt {
	const char *name;          /* long name */
	char short_name;           /* 0: none */
	bool value;                /* takes a value */
	const char **out;          /* value (or "1" for a flag) */
	char ***many;              /* repeatable value, appended (strv) */
} opt;

/* Options ("--name VALUE", "--name=VALUE", "-n VALUE", a flag "--name") until
 * "--"; other arguments are positionals (into pos). stop_after_id: everything
 * after the first positional is positional too (exec's command). */
static int parse(int argc, char **argv, opt *o, size_t n, char ***pos, bool stop_after_id, silo_error *err)
{
	*pos = xcalloc(1, sizeof **pos);
	size_t np = 0;
	bool done = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!done && !strcmp(a, "--")) {
			done = true;
			continue;
		}
		if (done || a[0] != '-' || !a[1]) {
			*pos = xrealloc(*pos, (np + 2) * sizeof **pos);
			(*pos)[np++] = argv[i];
			(*pos)[np] = NULL;
			done = done || stop_after_id;
			continue;
		}
		const char *name = a[1] == '-' ? a + 2 : a + 1;
		size_t nl = strcspn(name, "=");
		opt *hit = NULL;
		for (size_t k = 0; k < n && !hit; k++)
			if ((strlen(o[k].name) == nl && !strncmp(o[k].name, name, nl)) ||
			    (a[1] != '-' && nl == 1 && o[k].short_name == name[0]))
				hit = &o[k];
		if (!hit) {
			free(*pos);
			*pos = NULL;
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "unknown option %s", a);
		}
		const char *v = "1";
		if (hit->value) {
			if (name[nl] == '=')
				v = name + nl + 1;
			else if (i + 1 < argc)
				v = argv[++i];
			else {
				free(*pos);
				*pos = NULL;
				return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "option %s needs a value", a);
			}
		} else if (name[nl] == '=') {
			v = strcmp(name + nl + 1, "false") ? "1" : NULL;
		}
		if (hit->many && v) {
			size_t m = strv_len(*hit->many);
			*hit->many = xrealloc(*hit->many, (m + 2) * sizeof **hit->many);
			(*hit->many)[m] = xstrdup(v);
			(*hit->many)[m + 1] = NULL;
		} else if (hit->out) {
			*hit->out = v;
		}
	}
	return 0;
}

/* The id (first positional), checked. */
static const char *take_id(char **pos, silo_error *err)
{
	const char *id = pos ? pos[0] : NULL;
	if (!id) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "a container id is required");
		return NULL;
	}
	if (!rt_id_valid(id)) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
			  "container id \"%.64s\": expected 1-%d of [A-Za-z0-9_.+-], not starting with . or -", id, RT_ID_MAX);
		return NULL;
	}
	return id;
}

#define PARSE_ID(opts, stop)                                                                                   \
	silo_error err = {0};                                                                                  \
	cleanup_free char **pos = NULL;                                                                        \
	if (parse(argc, argv, opts, ARRAY_SIZE(opts), &pos, stop, &err) < 0)                                   \
		return rt_fail(&err);                                                                          \
	const char *id = take_id(pos, &err);                                                                   \
	if (!id)                                                                                               \
		return rt_fail(&err)

static int write_pid_file(const char *path, pid_t pid, silo_error *err)
{
	char txt[32];
	int n = snprintf(txt, sizeof txt, "%d", (int)pid);
	return write_file_atomic(path, txt, (size_t)n, 0644, err);
}

static void print_json(json_t *j, bool compact)
{
	char *t = json_dumps(j, compact ? JSON_COMPACT : JSON_INDENT(2));
	printf("%s\n", t ? t : "null");
	free(t);
}

/* ---- create, start, run ---- */

int rt_create(rt_create_opts *o, silo_error *err)
{
	char bundle[PATH_MAX];
	if (!realpath(o->bundle, bundle))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, errno, "--bundle %s", o->bundle);
	rt_settings set;
	if (rt_settings_load(&set, err) < 0)
		return -1;
	rt_config cfg;
	if (rt_config_load(bundle, &cfg, err) < 0)
		return -1;
	struct stat st;
	if (stat(cfg.root, &st) < 0 || !S_ISDIR(st.st_mode)) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, errno ? errno : ENOTDIR, "root.path %s: expected a directory", cfg.root);
		rt_config_free(&cfg);
		return -1;
	}
	char dir[PATH_MAX];
	rt_dir(o->id, dir, sizeof dir);
	if (mkdir_p(rt_g.root, 0700) < 0 || mkdir(dir, 0700) < 0) {
		int e = errno;
		rt_config_free(&cfg);
		if (e == EEXIST)
			return silo_fail(err, SILO_ERR_CONFLICT, e, "container with id \"%s\" already exists", o->id);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "mkdir %s", dir);
	}
	int rp[2];
	if (pipe2(rp, O_CLOEXEC) < 0) {
		rt_config_free(&cfg);
		rm_rf(dir);
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "pipe");
	}
	rt_create_opts co = *o;
	co.bundle = bundle;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(rp[0]);
		close(rp[1]);
		rt_config_free(&cfg);
		rm_rf(dir);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "fork");
	}
	if (pid == 0) {
		close(rp[0]);
		rt_supervise(&co, &cfg, rp[1]);
	}
	close(rp[1]);
	rt_config_free(&cfg);
	char buf[SILO_ERROR_MSG_MAX + 64];
	fd_read_until(rp[0], buf, sizeof buf, 0);
	close(rp[0]);
	o->pid = pid;
	if (!strncmp(buf, "OK ", 3)) {
		if (o->pid_file && write_pid_file(o->pid_file, pid, err) < 0) {
			kill(pid, SIGKILL);   /* delete cleans up what it leaves */
			return -1;
		}
		return 0;
	}
	int st2;
	while (waitpid(pid, &st2, 0) < 0 && errno == EINTR)
		;
	char code[40] = "INTERNAL";
	const char *msg = "the supervisor died before the sandbox was ready";
	if (buf[0] == 'E') {
		size_t cl = strcspn(buf + 1, " ");
		snprintf(code, sizeof code, "%.*s", (int)MIN(cl, sizeof code - 1), buf + 1);
		msg = buf[1 + cl] ? buf + 2 + cl : "";
	}
	silo_code c = silo_code_from_name(code);
	silo_fail(err, c == SILO_ERR__COUNT ? SILO_ERR_INTERNAL : c, 0, "%s", msg);
	rm_rf(dir);
	return -1;
}

static const char *def_bundle(const char *b)
{
	return b ? b : ".";
}

int rt_cmd_create(int argc, char **argv)
{
	const char *bundle = NULL, *pidf = NULL, *cons = NULL, *ign = NULL;
	opt o[] = {{"bundle", 'b', true, &bundle}, {"pid-file", 0, true, &pidf}, {"console-socket", 0, true, &cons},
		   {"no-pivot", 0, false, &ign},    {"no-new-keyring", 0, false, &ign}, {"preserve-fds", 0, true, &ign}};
	PARSE_ID(o, false);
	rt_create_opts co = {.id = id, .bundle = def_bundle(bundle), .pid_file = pidf, .console_socket = cons};
	if (rt_create(&co, &err) < 0)
		return rt_fail(&err);
	return 0;
}

int rt_cmd_start(int argc, char **argv)
{
	opt o[] = {{"detach", 'd', false, NULL}};
	PARSE_ID(o, false);
	rt_state st;
	if (rt_state_read(id, &st, &err) < 0)
		return rt_fail(&err);
	rt_status s = rt_state_status(&st);
	rt_state_free(&st);
	if (s != RT_CREATED) {
		silo_fail(&err, SILO_ERR_CONFLICT, 0, "cannot start a container that is %s", rt_status_name(s));
		return rt_fail(&err);
	}
	json_t *req = json_pack("{s:s}", "op", "start");
	int rc = rt_ctl_call(id, req, NULL, START_TIMEOUT_MS, &err);
	json_decref(req);
	return rc < 0 ? rt_fail(&err) : 0;
}

int rt_cmd_run(int argc, char **argv)
{
	const char *bundle = NULL, *pidf = NULL, *cons = NULL, *detach = NULL, *ign = NULL;
	opt o[] = {{"bundle", 'b', true, &bundle},      {"pid-file", 0, true, &pidf},
		   {"console-socket", 0, true, &cons},    {"detach", 'd', false, &detach},
		   {"no-pivot", 0, false, &ign},          {"no-new-keyring", 0, false, &ign},
		   {"preserve-fds", 0, true, &ign},       {"keep", 0, false, &ign}};
	PARSE_ID(o, false);
	rt_create_opts co = {.id = id, .bundle = def_bundle(bundle), .pid_file = pidf, .console_socket = cons};
	if (rt_create(&co, &err) < 0)
		return rt_fail(&err);
	json_t *req = json_pack("{s:s}", "op", "start");
	int rc = rt_ctl_call(id, req, NULL, START_TIMEOUT_MS, &err);
	json_decref(req);
	if (rc < 0)
		return rt_fail(&err);
	if (detach)
		return 0;
	/* the supervisor is our child: end as it ends */
	int st;
	while (waitpid(co.pid, &st, 0) < 0 && errno == EINTR)
		;
	rt_exit_as(WIFEXITED(st) ? WEXITSTATUS(st) : 0, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* ---- state, list ---- */

int rt_cmd_state(int argc, char **argv)
{
	opt o[] = {{"format", 'f', true, NULL}};
	PARSE_ID(o, false);
	rt_state st;
	if (rt_state_read(id, &st, &err) < 0)
		return rt_fail(&err);
	json_t *j = rt_state_json(&st);
	print_json(j, false);
	json_decref(j);
	rt_state_free(&st);
	return 0;
}

int rt_cmd_list(int argc, char **argv)
{
	const char *format = NULL, *quiet = NULL;
	opt o[] = {{"format", 'f', true, &format}, {"quiet", 'q', false, &quiet}};
	silo_error err = {0};
	cleanup_free char **pos = NULL;
	if (parse(argc, argv, o, ARRAY_SIZE(o), &pos, false, &err) < 0)
		return rt_fail(&err);
	bool json = format && !strcmp(format, "json");
	json_t *arr = json_array();
	DIR *d = opendir(rt_g.root);
	struct dirent *de;
	if (!json && !quiet)
		printf("%-24s %-8s %-10s %-40s %-30s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER");
	while (d && (de = readdir(d))) {
		rt_state st;
		silo_error e = {0};
		if (de->d_name[0] == '.' || rt_state_read(de->d_name, &st, &e) < 0)
			continue;
		json_t *j = rt_state_json(&st);
		if (quiet)
			printf("%s\n", st.id);
		else if (!json)
			printf("%-24s %-8lld %-10s %-40s %-30s %s\n", st.id, json_integer_value(json_object_get(j, "pid")),
			       json_string_value(json_object_get(j, "status")), st.bundle, st.created, "root");
		json_array_append_new(arr, j);
		rt_state_free(&st);
	}
	if (d)
		closedir(d);
	if (json && !quiet)
		print_json(arr, false);
	json_decref(arr);
	return 0;
}

/* ---- kill, pause, resume ---- */

int rt_cmd_kill(int argc, char **argv)
{
	const char *all = NULL;
	opt o[] = {{"all", 'a', false, &all}};
	PARSE_ID(o, false);
	int sig = pos[1] ? rt_signal_parse(pos[1]) : SIGTERM;
	if (sig < 0) {
		silo_fail(&err, SILO_ERR_INVALID_CONFIG, 0, "unknown signal \"%.32s\"", pos[1]);
		return rt_fail(&err);
	}
	rt_state st;
	if (rt_state_read(id, &st, &err) < 0)
		return rt_fail(&err);
	rt_status s = rt_state_status(&st);
	pid_t pid = st.pid;
	rt_state_free(&st);
	if (s == RT_STOPPED || s == RT_CREATING) {
		silo_fail(&err, SILO_ERR_CONFLICT, 0, "container not running");
		return rt_fail(&err);
	}
	json_t *req = json_pack("{s:s,s:i,s:b}", "op", "kill", "sig", sig, "all", all != NULL);
	int rc = rt_ctl_call(id, req, NULL, 10000, &err);
	json_decref(req);
	if (rc < 0 && sig == SIGKILL && err.code != SILO_ERR_CONFLICT) {
		/* a supervisor that does not answer: kill it; delete removes what it leaves */
		rt_log("warning", "kill: the supervisor did not answer (%s): SIGKILL to pid %d", err.message, (int)pid);
		kill(pid, SIGKILL);
		return 0;
	}
	return rc < 0 ? rt_fail(&err) : 0;
}

static int simple_op(int argc, char **argv, const char *op)
{
	opt o[] = {{"x-unused", 0, false, NULL}};
	PARSE_ID(o, false);
	json_t *req = json_pack("{s:s}", "op", op);
	int rc = rt_ctl_call(id, req, NULL, 60000, &err);
	json_decref(req);
	return rc < 0 ? rt_fail(&err) : 0;
}

int rt_cmd_pause(int argc, char **argv)
{
	return simple_op(argc, argv, "pause");
}

int rt_cmd_resume(int argc, char **argv)
{
	return simple_op(argc, argv, "resume");
}

/* ---- delete ---- */

static bool wait_supervisor(const rt_state *st, int ms)
{
	uint64_t end = now_mono_ns() + (uint64_t)ms * 1000000ull;
	while (rt_supervisor_alive(st)) {
		int wst;
		waitpid(st->pid, &wst, WNOHANG);   /* our child when `run` deletes */
		if (now_mono_ns() > end)
			return false;
		struct timespec ts = {0, 5 * 1000000L};
		nanosleep(&ts, NULL);
	}
	return true;
}

/* The supervisor died without destroying its sandbox (kill -9): its watchdog
 * tears it down (lib/core/owner.h); wait for that, and reap what is left if the
 * watchdog died too. */
static int cleanup_sandbox(const rt_state *st, silo_error *err)
{
	if (!st->sandbox[0] || !st->silo_rundir[0])
		return 0;
	setenv("SILO_RUNTIME_DIR", st->silo_rundir, 1);
	char rundir[PATH_MAX * 2], rec[PATH_MAX * 2];
	snprintf(rundir, sizeof rundir, "%s/sandboxes/%s", st->silo_rundir, st->sandbox);
	snprintf(rec, sizeof rec, "%s/owners/%s", st->silo_rundir, st->sandbox);
	uint64_t end = now_mono_ns() + (uint64_t)(OWNER_TEARDOWN_MS + 2000) * 1000000ull;
	while ((path_exists(rundir) || path_exists(rec)) && now_mono_ns() < end) {
		struct timespec ts = {0, 10 * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (!path_exists(rundir) && !path_exists(rec))
		return 0;
	rt_log("info", "delete %s: sandbox %s outlived its supervisor and watchdog: reaping it", st->id, st->sandbox);
	cleanup_report rep = {0};
	owner_reap_id(st->sandbox, st->provider, &rep);
	int rc = rep.residual_paths ? silo_fail(err, SILO_ERR_CLEANUP_FAILED, 0, "sandbox %s: %s is left", st->sandbox,
						rep.residual_paths[0])
				    : 0;
	cleanup_report_free(&rep);
	return rc;
}

int rt_cmd_delete(int argc, char **argv)
{
	const char *force = NULL;
	opt o[] = {{"force", 'f', false, &force}};
	PARSE_ID(o, false);
	char dir[PATH_MAX];
	rt_dir(id, dir, sizeof dir);
	rt_state st;
	if (rt_state_read(id, &st, &err) < 0) {
		/* an aborted create may leave a directory without state.json (as runc) */
		if (path_exists(dir) && err.code == SILO_ERR_VM_NOT_FOUND) {
			rm_rf(dir);
			if (force)
				return 0;
		}
		return force && err.code == SILO_ERR_VM_NOT_FOUND ? 0 : rt_fail(&err);
	}
	cleanup_close int lk = rt_lock(id, &err);
	if (lk < 0) {
		rt_state_free(&st);
		return rt_fail(&err);
	}
	rt_status s = rt_state_status(&st);
	if ((s == RT_RUNNING || s == RT_PAUSED) && !force) {
		rt_state_free(&st);
		silo_fail(&err, SILO_ERR_CONFLICT, 0, "cannot delete container %s that is not stopped: %s (--force kills it)", id,
			  rt_status_name(s));
		return rt_fail(&err);
	}
	if (rt_supervisor_alive(&st)) {
		if (s != RT_STOPPED) {
			json_t *req = json_pack("{s:s,s:i,s:b}", "op", "kill", "sig", SIGKILL, "all", 1);
			silo_error ke = {0};
			rt_ctl_call(id, req, NULL, 5000, &ke);
			json_decref(req);
		}
		if (!wait_supervisor(&st, STOP_WAIT_MS)) {
			rt_log("warning", "delete %s: the supervisor (pid %d) did not end: SIGKILL", id, (int)st.pid);
			kill(st.pid, SIGKILL);
			wait_supervisor(&st, 5000);
		}
	}
	int rc = cleanup_sandbox(&st, &err);
	rt_config cfg;
	silo_error ce = {0};
	if (rt_config_load(st.bundle, &cfg, &ce) == 0) {
		st.status = RT_STOPPED;
		silo_error he = {0};
		if (rt_run_hooks(&cfg, RT_HOOK_POSTSTOP, &st, &he) < 0)
			rt_log("warning", "poststop hook: %s", he.message);
		rt_config_free(&cfg);
	}
	rt_state_free(&st);
	if (rm_rf(dir) < 0 && path_exists(dir) && rc == 0)
		rc = silo_fail(&err, SILO_ERR_CLEANUP_FAILED, errno, "remove %s", dir);
	return rc < 0 ? rt_fail(&err) : 0;
}

/* ---- exec ---- */

/* Relay an exec: send the request with its fds, then forward our signals (a
 * resize on SIGWINCH) until the process's exit arrives, and end the same way.
 * ready (>= 0): "OK" or the error goes there once the process started. */
__attribute__((noreturn)) static void exec_relay(const char *id, json_t *req, int *fds, int nfds, int tty_fd,
						 int ready)
{
	silo_error err = {0};
	sigset_t set;
	sigemptyset(&set);
	const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT, SIGALRM};
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		sigaddset(&set, sigs[i]);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	int c = rt_ctl_connect(id, &err);
	json_t *r = NULL;
	if (c < 0 || rt_ctl_send(c, req, fds, nfds, &err) < 0 || rt_ctl_recv(c, &r, NULL, NULL, START_TIMEOUT_MS, &err) < 0)
		goto fail;
	if (!r) {
		silo_fail(&err, SILO_ERR_VSOCK_DISCONNECTED, 0, "the supervisor hung up");
		goto fail;
	}
	if (json_object_get(r, "error")) {
		json_t *e = json_object_get(r, "error");
		silo_code code = silo_code_from_name(json_string_value(json_object_get(e, "code")));
		silo_fail(&err, code == SILO_ERR__COUNT ? SILO_ERR_INTERNAL : code, 0, "%s",
			  json_string_value(json_object_get(e, "message")));
		goto fail;
	}
	json_decref(r);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (ready >= 0) {
		(void)!write(ready, "OK", 2);
		close(ready);
	}
	for (;;) {
		struct pollfd pf[2] = {{.fd = c, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
		if (poll(pf, 2, -1) < 0)
			continue;
		if (pf[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
				json_t *m;
				struct winsize ws;
				if (si.ssi_signo == SIGWINCH)
					m = tty_fd >= 0 && ioctl(tty_fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row
						    ? json_pack("{s:s,s:i,s:i}", "op", "resize", "rows", ws.ws_row, "cols", ws.ws_col)
						    : NULL;
				else
					m = json_pack("{s:s,s:i}", "op", "signal", "sig", (int)si.ssi_signo);
				if (m)
					rt_ctl_send(c, m, NULL, 0, &err);
				json_decref(m);
			}
		}
		if (pf[0].revents) {
			json_t *m = NULL;
			if (rt_ctl_recv(c, &m, NULL, NULL, 0, &err) < 0 || !m)
				rt_exit_as(0, SIGKILL);   /* the supervisor is gone: so is the process */
			json_t *ex = json_object_get(m, "exit");
			if (ex)
				rt_exit_as((int)json_integer_value(ex), (int)json_integer_value(json_object_get(m, "signal")));
			json_decref(m);
		}
	}
fail:
	if (ready >= 0) {
		char buf[SILO_ERROR_MSG_MAX + 64];
		int n = snprintf(buf, sizeof buf, "E%s %s", silo_code_name(err.code), err.message);
		(void)!write_all(ready, buf, (size_t)MIN((size_t)n, sizeof buf - 1));
		_exit(1);
	}
	_exit(rt_fail(&err) ? 255 : 255);
}

int rt_cmd_exec(int argc, char **argv)
{
	const char *procf = NULL, *detach = NULL, *pidf = NULL, *cons = NULL, *tty = NULL, *cwd = NULL, *user = NULL,
		   *ign = NULL;
	char **envs = NULL, **gids = NULL, **caps = NULL;
	opt o[] = {{"process", 'p', true, &procf},        {"detach", 'd', false, &detach},
		   {"pid-file", 0, true, &pidf},           {"console-socket", 0, true, &cons},
		   {"tty", 't', false, &tty},              {"cwd", 0, true, &cwd},
		   {"env", 'e', true, NULL, &envs},        {"user", 'u', true, &user},
		   {"additional-gids", 'g', true, NULL, &gids}, {"cap", 'c', true, NULL, &caps},
		   {"no-new-privs", 0, false, &ign},       {"apparmor", 0, true, &ign},
		   {"process-label", 0, true, &ign},       {"preserve-fds", 0, true, &ign},
		   {"ignore-paused", 0, false, &ign},      {"cgroup", 0, true, &ign}};
	silo_error err = {0};
	cleanup_free char **pos = NULL;
	cleanup_strv char **envs_c = NULL, **gids_c = NULL, **caps_c = NULL;
	int prc = parse(argc, argv, o, ARRAY_SIZE(o), &pos, true, &err);
	envs_c = envs, gids_c = gids, caps_c = caps;
	if (prc < 0)
		return rt_fail(&err);
	const char *id = take_id(pos, &err);
	if (!id)
		return rt_fail(&err);
	rt_state st;
	if (rt_state_read(id, &st, &err) < 0)
		return rt_fail(&err);
	rt_status s = rt_state_status(&st);
	char bundle[PATH_MAX];
	snprintf(bundle, sizeof bundle, "%s", st.bundle);
	rt_state_free(&st);
	if (s != RT_RUNNING) {
		silo_fail(&err, SILO_ERR_CONFLICT, 0, "cannot exec in a container that is %s", rt_status_name(s));
		return rt_fail(&err);
	}
	rt_process pr;
	if (procf) {
		cleanup_free char *txt = NULL;
		size_t n = 0;
		if (read_file(procf, RT_CONFIG_MAX, &txt, &n, &err) < 0)
			return rt_fail(&err);
		json_t *j = json_loadb(txt, n, JSON_REJECT_DUPLICATES, NULL);
		int rc = rt_process_parse(j, "process", &pr, &err);
		json_decref(j);
		if (rc < 0)
			return rt_fail(&err);
	} else {
		/* the container's process as defaults (runc does the same), then the options */
		rt_config cfg;
		if (rt_config_load(bundle, &cfg, &err) < 0)
			return rt_fail(&err);
		pr = cfg.process;
		memset(&cfg.process, 0, sizeof cfg.process);
		rt_config_free(&cfg);
		if (!pr.cwd)
			pr.cwd = xstrdup("/");
		if (!pos[1]) {
			rt_process_free(&pr);
			silo_fail(&err, SILO_ERR_INVALID_CONFIG, 0, "exec: a command (ARGS after the id) or --process is required");
			return rt_fail(&err);
		}
		strv_free(pr.args);
		pr.args = strv_dup(pos + 1);
		pr.terminal = tty != NULL;
		if (cwd) {
			free(pr.cwd);
			pr.cwd = xstrdup(cwd);
		}
		for (char **e = envs; e && *e; e++) {
			size_t m = strv_len(pr.env);
			pr.env = xrealloc(pr.env, (m + 2) * sizeof *pr.env);
			pr.env[m] = xstrdup(*e);
			pr.env[m + 1] = NULL;
		}
		if (user) {
			unsigned long u = 0, g = 0;
			char *end;
			u = strtoul(user, &end, 10);
			if (*end == ':')
				g = strtoul(end + 1, &end, 10);
			if (*end || end == user) {
				rt_process_free(&pr);
				silo_fail(&err, SILO_ERR_INVALID_CONFIG, 0, "--user: expected UID[:GID], got \"%.32s\"", user);
				return rt_fail(&err);
			}
			pr.uid = (uint32_t)u;
			pr.gid = (uint32_t)g;
		}
	}
	json_t *req = json_pack("{s:s,s:o,s:b}", "op", "exec", "process", rt_process_json(&pr), "tty", pr.terminal);
	bool terminal = pr.terminal;
	rt_process_free(&pr);
	int fds[3], nfds = 3, tty_fd = -1;
	if (terminal) {
		if (cons) {
			if (rt_console(cons, &tty_fd, &err) < 0) {
				json_decref(req);
				return rt_fail(&err);
			}
		} else if (isatty(0)) {
			tty_fd = 0;   /* our own terminal (runc exec -t in a shell) */
			struct termios t;
			if (tcgetattr(0, &t) == 0) {
				cfmakeraw(&t);
				tcsetattr(0, TCSANOW, &t);
			}
		} else {
			json_decref(req);
			silo_fail(&err, SILO_ERR_INVALID_CONFIG, 0, "exec --tty needs --console-socket or a terminal on stdin");
			return rt_fail(&err);
		}
		fds[0] = tty_fd;
		nfds = 1;
	} else {
		fds[0] = 0, fds[1] = 1, fds[2] = 2;
	}
	if (!detach) {
		if (pidf && write_pid_file(pidf, getpid(), &err) < 0)
			return rt_fail(&err);
		exec_relay(id, req, fds, nfds, tty_fd, -1);
	}
	int rp[2];
	if (pipe2(rp, O_CLOEXEC) < 0)
		return rt_fail((silo_fail(&err, SILO_ERR_IO_ERROR, errno, "pipe"), &err));
	pid_t pid = fork();
	if (pid < 0)
		return rt_fail((silo_fail(&err, SILO_ERR_IO_ERROR, errno, "fork"), &err));
	if (pid == 0) {
		close(rp[0]);
		setsid();
		if (tty_fd > 0)
			ioctl(tty_fd, TIOCSCTTY, 0);
		exec_relay(id, req, fds, nfds, tty_fd, rp[1]);
	}
	close(rp[1]);
	json_decref(req);
	char buf[SILO_ERROR_MSG_MAX + 64];
	ssize_t n = read(rp[0], buf, sizeof buf - 1);
	close(rp[0]);
	buf[n > 0 ? n : 0] = '\0';
	if (strncmp(buf, "OK", 2) != 0) {
		int wst;
		waitpid(pid, &wst, 0);
		size_t cl = strcspn(buf + 1, " ");
		char code[40];
		snprintf(code, sizeof code, "%.*s", (int)MIN(cl, sizeof code - 1), buf[0] ? buf + 1 : "INTERNAL");
		silo_code c = silo_code_from_name(code);
		silo_fail(&err, c == SILO_ERR__COUNT ? SILO_ERR_INTERNAL : c, 0, "%s",
			  buf[0] && buf[1 + cl] ? buf + 2 + cl : "the exec relay died");
		return rt_fail(&err);
	}
	if (pidf && write_pid_file(pidf, pid, &err) < 0)
		return rt_fail(&err);
	return 0;
}

/* ---- ps ---- */

int rt_cmd_ps(int argc, char **argv)
{
	const char *format = NULL;
	opt o[] = {{"format", 'f', true, &format}};
	PARSE_ID(o, false);
	json_t *req = json_pack("{s:s}", "op", "ps"), *r = NULL;
	int rc = rt_ctl_call(id, req, &r, 10000, &err);
	json_decref(req);
	if (rc < 0)
		return rt_fail(&err);
	json_t *pids = json_object_get(r, "pids"), *x;
	if (format && !strcmp(format, "json")) {
		print_json(pids, true);
	} else {
		printf("%-8s %s\n", "PID", "CMD");
		size_t i;
		json_array_foreach(pids, i, x)
		{
			char p[64];
			snprintf(p, sizeof p, "/proc/%lld/cmdline", json_integer_value(x));
			cleanup_free char *cmd = NULL;
			size_t n = 0;
			if (read_file(p, 4096, &cmd, &n, NULL) < 0)
				continue;
			for (size_t k = 0; k + 1 < n; k++)
				if (!cmd[k])
					cmd[k] = ' ';
			printf("%-8lld %s\n", json_integer_value(x), cmd);
		}
	}
	json_decref(r);
	return 0;
}

/* ---- features, spec ---- */

int rt_cmd_features(int argc, char **argv)
{
	rt_settings set;
	silo_error err = {0};
	if (rt_settings_load(&set, &err) < 0)
		return rt_fail(&err);
	json_t *f = json_pack(
		"{s:s,s:s,s:[s,s,s,s,s,s],s:[s,s,s,s,s,s,s,s,s,s],s:{s:[],s:[],s:{s:b,s:b,s:b,s:b},s:{s:b},s:{s:b},s:{s:b}},s:{s:s,s:s,s:s}}",
		"ociVersionMin", "1.0.0", "ociVersionMax", "1.1.0", "hooks", "prestart", "createRuntime", "createContainer",
		"startContainer", "poststart", "poststop", "mountOptions", "bind", "rbind", "ro", "rw", "nosuid", "nodev",
		"noexec", "size", "mode", "nr_inodes", "linux", "namespaces", "capabilities", "cgroup", "v1", 0, "v2", 0,
		"systemd", 0, "systemdUser", 0, "seccomp", "enabled", 0, "apparmor", "enabled", 0, "selinux", "enabled", 0,
		"annotations", "run.silo.provider", "kvm, qemu, namespace or auto: the sandbox provider",
		"io.github.silo.version", SILO_VERSION, "io.github.silo.isolation",
		"every container is a Silo sandbox (a VM, or a user-namespace sandbox): its own confinement replaces "
		"namespaces, capabilities, seccomp and cgroups of the spec");
	/* the settings in effect (/etc/silo/oci.toml or $SILO_OCI_CONFIG) */
	json_t *an = json_object_get(f, "annotations");
	json_object_set_new(an, "io.github.silo.oci.provider", json_string(set.provider[0] ? set.provider : "auto"));
	json_object_set_new(an, "io.github.silo.oci.fallback", json_string(set.fallback));
	print_json(f, false);
	json_decref(f);
	return 0;
}

int rt_cmd_spec(int argc, char **argv)
{
	const char *bundle = NULL;
	opt o[] = {{"bundle", 'b', true, &bundle}, {"rootless", 0, false, NULL}};
	silo_error err = {0};
	cleanup_free char **pos = NULL;
	if (parse(argc, argv, o, ARRAY_SIZE(o), &pos, false, &err) < 0)
		return rt_fail(&err);
	char p[PATH_MAX + 16];
	snprintf(p, sizeof p, "%s/config.json", def_bundle(bundle));
	if (path_exists(p)) {
		silo_fail(&err, SILO_ERR_CONFLICT, EEXIST, "%s exists", p);
		return rt_fail(&err);
	}
	static const char tmpl[] =
		"{\n  \"ociVersion\": \"" RT_OCI_VERSION "\",\n  \"process\": {\n    \"terminal\": true,\n"
		"    \"user\": {\"uid\": 0, \"gid\": 0},\n    \"args\": [\"sh\"],\n"
		"    \"env\": [\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\", \"TERM=xterm\"],\n"
		"    \"cwd\": \"/\"\n  },\n  \"root\": {\"path\": \"rootfs\", \"readonly\": true},\n"
		"  \"hostname\": \"silo\",\n  \"mounts\": [\n"
		"    {\"destination\": \"/proc\", \"type\": \"proc\", \"source\": \"proc\"},\n"
		"    {\"destination\": \"/dev\", \"type\": \"tmpfs\", \"source\": \"tmpfs\"}\n  ],\n"
		"  \"annotations\": {\"run.silo.provider\": \"auto\"}\n}\n";
	if (write_file_atomic(p, tmpl, sizeof tmpl - 1, 0644, &err) < 0)
		return rt_fail(&err);
	return 0;
}
