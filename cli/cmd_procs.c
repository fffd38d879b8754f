/* SPDX-License-Identifier: Apache-2.0
 * Processes through silod (docs/openapi.yaml "Processes", "Interactive
 * sessions"): `silo exec -i/-t/-d`, `silo shell`, `silo procs`, `silo kill`,
 * `silo attach`, `silo wait`.
 *
 * An interactive session is a WebSocket (api_ws_open): our stdin goes out as
 * binary messages from a thread of its own, the main thread writes the
 * output and sends resizes; the exit status of the process becomes ours
 * (128 + signal when it was killed). With a terminal on stdin and a PTY
 * session, the terminal is put in raw mode (keys, ^C included, go to the
 * process) and restored on every way out: the end of the session, an error,
 * SIGTERM/SIGHUP/SIGINT/SIGQUIT to the CLI, and exit() from anywhere (atexit).
 * SIGWINCH sends the new size. `silo attach` detaches on ^] (0x1d) and leaves
 * the process running.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "cli/api_client.h"
#include "cli/cli.h"
#include "common/util.h"

#define DETACH_KEY 0x1d   /* ^] */

/* ---- the terminal ---- */

static struct termios saved_tio;
static volatile sig_atomic_t tio_saved;
static volatile sig_atomic_t winch, fatal_sig;

static void tty_restore(void)
{
	if (tio_saved) {
		tcsetattr(STDIN_FILENO, TCSADRAIN, &saved_tio);
		tio_saved = 0;
	}
}

static void on_fatal(int sig)
{
	fatal_sig = sig;
	tty_restore();   /* async-signal-safe: tcsetattr */
	signal(sig, SIG_DFL);
	raise(sig);
}

static void on_winch(int sig)
{
	winch = 1;
}

static int tty_raw(void)
{
	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tio) < 0)
		return -1;
	struct termios raw = saved_tio;
	cfmakeraw(&raw);
	tio_saved = 1;
	atexit(tty_restore);
	struct sigaction sa = {.sa_handler = on_fatal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	return tcsetattr(STDIN_FILENO, TCSADRAIN, &raw);
}

static void tty_size(unsigned *rows, unsigned *cols)
{
	struct winsize ws = {0};
	if ((ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) < 0 || !ws.ws_row) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0)
		ws.ws_row = 0;
	*rows = ws.ws_row ? ws.ws_row : 24;
	*cols = ws.ws_col ? ws.ws_col : 80;
}

/* ---- a session over a WebSocket ---- */

typedef struct session {
	ws_conn *ws;
	const char *sandbox;      /* its id (the OOM-kill note asks for its memory limit) */
	bool pty;
	bool detach_key;          /* attach: ^] detaches */
	bool stdin_open;          /* forward our stdin */
	atomic_bool detached;
	atomic_bool over;
} session;

static void *stdin_main(void *arg)
{
	session *s = arg;
	char buf[32768];
	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (atomic_load(&s->over))
			break;
		if (n <= 0) {
			ws_send_json(s->ws, json_pack("{s:b}", "eof", 1), NULL);
			break;
		}
		if (s->detach_key && memchr(buf, DETACH_KEY, (size_t)n)) {
			size_t k = (size_t)((char *)memchr(buf, DETACH_KEY, (size_t)n) - buf);
			if (k)
				ws_send(s->ws, WS_BINARY, buf, k, NULL, 0, NULL);
			atomic_store(&s->detached, true);
			ws_close(s->ws, WS_CLOSE_NORMAL, "detached");
			break;
		}
		if (ws_send(s->ws, WS_BINARY, buf, (size_t)n, NULL, 0, NULL) < 0)
			break;
	}
	return NULL;
}

/* Run the session to its end: the process's exit status, or the CLI's error status. */
static int session_loop(session *s, const char *what, bool json)
{
	pthread_t th;
	bool have_thread = false;
	if (s->stdin_open || s->detach_key)
		have_thread = pthread_create(&th, NULL, stdin_main, s) == 0;
	struct sigaction sa = {.sa_handler = on_winch};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGWINCH, &sa, NULL);
	int status = -1;
	silo_error err = {0};
	for (;;) {
		if (winch && s->pty) {
			winch = 0;
			unsigned rows, cols;
			tty_size(&rows, &cols);
			ws_send_json(s->ws, json_pack("{s:{s:i,s:i}}", "resize", "rows", rows, "cols", cols), NULL);
		}
		int op;
		const uint8_t *d;
		size_t n;
		int r = ws_recv(s->ws, &op, &d, &n, 200, &err);
		if (r == 0)
			continue;
		if (r < 0)
			break;
		if (op == WS_BINARY && n >= 1) {
			if (write_all(d[0] == 2 ? STDERR_FILENO : STDOUT_FILENO, d + 1, n - 1) < 0) {
				silo_fail(&err, SILO_ERR_IO_ERROR, errno, "write the output");
				status = -2;
				break;
			}
			continue;
		}
		json_t *o = json_loadb((const char *)d, n, 0, NULL);
		if (json_object_get(o, "exit_code")) {
			int sig = (int)cli_jint(o, "signal");
			status = sig ? 128 + sig : (int)cli_jint(o, "exit_code");
			if (json)
				cli_print_json(o);
			else if (cli_exit_oom(o))
				cli_note_oom(s->sandbox, 0);
		} else if (json_object_get(o, "error")) {
			char *t = json_dumps(o, JSON_COMPACT);
			api_error_from_body(500, t, &err);
			free(t);
			status = -2;
		} else if (json_object_get(o, "warning")) {
			json_t *w = json_object_get(o, "warning");
			if (!s->pty)
				fprintf(stderr, "silo: warning: %s\n", cli_jstr(w, "message"));
		}
		json_decref(o);
	}
	atomic_store(&s->over, true);
	tty_restore();
	if (atomic_load(&s->detached)) {
		fprintf(stderr, "\r\nsilo: detached from %s (it keeps running)\n", what);
		return 0;
	}
	if (have_thread)
		pthread_detach(th);   /* it may sit in read(0); the process ends with us */
	if (status >= 0)
		return status;
	if (status == -1 && !err.code)
		silo_fail(&err, SILO_ERR_PROTOCOL, 0, "the session ended without an exit status");
	return cli_error(&err, json);
}

static void urlpath(char *out, size_t len, const char *id, const char *fmt_tail, const char *proc)
{
	char *eid = api_escape(id), *ep = proc ? api_escape(proc) : NULL;
	snprintf(out, len, "/v1/sandboxes/%s%s%s%s", eid, fmt_tail, ep ? ep : "", "");
	free(eid);
	free(ep);
}

/* Open a WebSocket on path; the first server message must be {"proc", "pid"}. */
static int open_session(const char *path, json_t *start, session *s, api_ws **w, bool json)
{
	api_client *cl;
	silo_error err;
	if (api_client_new(&cl, &err) < 0)
		return cli_error(&err, json);
	int rc = api_ws_open(cl, path, w, &err);
	api_client_free(cl);
	if (rc < 0)
		return cli_error(&err, json);
	s->ws = api_ws_conn(*w);
	if (start && ws_send_json(s->ws, json_incref(start), NULL) < 0) {
		silo_fail(&err, SILO_ERR_REMOTE_UNREACHABLE, 0, "send the start request");
		return cli_error(&err, json);
	}
	int op;
	const uint8_t *d;
	size_t n;
	if (ws_recv(s->ws, &op, &d, &n, 60000, &err) != 1 || op != WS_TEXT) {
		if (!err.code)
			silo_fail(&err, SILO_ERR_TIMEOUT, 0, "no answer to the session request");
		return cli_error(&err, json);
	}
	json_t *o = json_loadb((const char *)d, n, 0, NULL);
	if (json_object_get(o, "error")) {
		char *t = json_dumps(o, JSON_COMPACT);
		api_error_from_body(400, t, &err);
		free(t);
		json_decref(o);
		return cli_error(&err, json);
	}
	s->pty = json_is_true(json_object_get(o, "pty"));
	json_decref(o);
	return 0;
}

/* ---- exec -i / -t / -d ---- */

int cli_exec_session(const char *id, json_t *req, bool tty, bool interactive, bool detach, const char *tag, bool json)
{
	if (tag)
		json_object_set_new(req, "tag", json_string(tag));
	if (detach) {
		/* a background process: print its handle */
		char path[1024];
		urlpath(path, sizeof path, id, "/procs", NULL);
		return cli_call_show("POST", path, req, json, "proc");
	}
	json_object_set_new(req, "stdin_open", json_boolean(interactive));
	if (tty) {
		unsigned rows, cols;
		tty_size(&rows, &cols);
		json_object_set_new(req, "pty", json_true());
		json_object_set_new(req, "rows", json_integer(rows));
		json_object_set_new(req, "cols", json_integer(cols));
	}
	char path[1024];
	urlpath(path, sizeof path, id, "/session", NULL);
	session s = {.sandbox = id, .stdin_open = interactive};
	api_ws *w = NULL;
	int rc = open_session(path, req, &s, &w, json);
	if (rc) {
		api_ws_close(w);
		return rc;
	}
	if (tty && interactive)
		tty_raw();
	rc = session_loop(&s, "the session", json);
	api_ws_close(w);
	return rc;
}

int cmd_shell(int argc, char **argv)
{
	bool json = cli_want_json(argc, argv);
	const char *u = "[-e K=V] [-w DIR] ID [-- SHELL [ARG...]]";
	json_t *req = json_object(), *env = json_object(), *av = json_array();
	const char *id = NULL;
	int i, rc = 0;
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--")) {
			i++;
			break;
		}
		if (!strcmp(argv[i], "--json"))
			continue;
		if (!strcmp(argv[i], "-e") && i + 1 < argc) {
			const char *kv = argv[++i], *eq = strchr(kv, '=');
			if (!eq || eq == kv) {
				rc = cli_usage_error(argv[0], u, json);
				goto out;
			}
			char *k = xstrndup(kv, (size_t)(eq - kv));
			json_object_set_new(env, k, json_string(eq + 1));
			free(k);
		} else if (!strcmp(argv[i], "-w") && i + 1 < argc) {
			json_object_set_new(req, "cwd", json_string(argv[++i]));
		} else if (argv[i][0] == '-' || id) {
			rc = cli_usage_error(argv[0], u, json);
			goto out;
		} else {
			id = argv[i];
		}
	}
	if (!id) {
		rc = cli_usage_error(argv[0], u, json);
		goto out;
	}
	if (i < argc) {
		for (; i < argc; i++)
			json_array_append_new(av, json_string(argv[i]));
	} else {
		json_array_append_new(av, json_string("/bin/sh"));
		json_array_append_new(av, json_string("-c"));
		json_array_append_new(av, json_string("if command -v bash >/dev/null 2>&1; then exec bash -l; fi; exec sh -l"));
	}
	json_object_set(req, "argv", av);
	if (json_object_size(env))
		json_object_set(req, "env", env);
	rc = cli_exec_session(id, req, true, true, false, NULL, json);
out:
	json_decref(req);
	json_decref(env);
	json_decref(av);
	return rc;
}

/* ---- procs / kill / attach / wait ---- */

static void format_age(const char *started, char *out, size_t len)
{
	snprintf(out, len, "%.19s", started);
	for (char *p = out; *p; p++)
		if (*p == 'T')
			*p = ' ';
}

int cmd_procs(int argc, char **argv)
{
	bool json = cli_want_json(argc, argv);
	const char *u = "[--json] ID";
	const char *id = NULL;
	int bad = cli_operands(argc, argv, u, json, NULL, &id, 1, 1);
	if (bad)
		return bad;
	char path[1024];
	urlpath(path, sizeof path, id, "/procs", NULL);
	json_t *o;
	int rc = cli_call_table("GET", path, NULL, json, &o);
	if (rc || !o)
		return rc;
	printf("%-6s %-8s %-12s %-8s %-5s %-19s %s\n", "PROC", "PID", "TAG", "STATE", "EXIT", "STARTED", "COMMAND");
	json_t *a = json_object_get(o, "procs"), *p;
	size_t k;
	json_array_foreach(a, k, p) {
		char cmd[200] = "", started[32], exitc[8] = "-";
		size_t off = 0, j;
		json_t *s;
		json_array_foreach(json_object_get(p, "argv"), j, s)
			off += (size_t)snprintf(cmd + off, off < sizeof cmd ? sizeof cmd - off : 0, "%s%s", j ? " " : "",
						json_string_value(s));
		format_age(cli_jstr(p, "started_at"), started, sizeof started);
		json_t *ex = json_object_get(p, "exit");
		if (ex)
			snprintf(exitc, sizeof exitc, "%d", (int)cli_jint(ex, "exit_code"));
		const char *tag = cli_jstr(p, "tag");
		printf("%-6s %-8lld %-12s %-8s %-5s %-19s %s%s\n", cli_jstr(p, "proc"), (long long)cli_jint(p, "pid"),
		       tag[0] ? tag : "-", cli_jstr(p, "state"), exitc, started, cmd,
		       json_is_true(json_object_get(p, "pty")) ? " (pty)" : "");
	}
	json_decref(o);
	return 0;
}

int cmd_kill(int argc, char **argv)
{
	bool json = cli_want_json(argc, argv);
	const char *u = "[--rm] [--json] ID PROC [SIGNAL]";
	const char *args[3] = {NULL, NULL, NULL};
	bool rm = false;
	int bad = cli_operands(argc, argv, u, json, &(cli_opargs){.flag = "--rm", .on = &rm}, args, 2, 3);
	if (bad)
		return bad;
	if (rm && args[2])
		return cli_usage_error(argv[0], u, json);
	char path[1024];
	urlpath(path, sizeof path, args[0], "/procs/", args[1]);
	if (rm)
		return cli_call_show("DELETE", path, NULL, json, NULL);
	strncat(path, "/signal", sizeof path - strlen(path) - 1);
	json_t *b = json_pack("{s:s}", "signal", args[2] ? args[2] : "TERM");
	int rc = cli_call_show("POST", path, b, json, NULL);
	json_decref(b);
	return rc;
}

int cmd_wait(int argc, char **argv)
{
	bool json = cli_want_json(argc, argv);
	const char *u = "[--timeout-ms N] [--json] ID PROC";
	const char *args[2] = {NULL, NULL};
	long long timeout = -1;
	int bad = cli_operands(argc, argv, u, json, &(cli_opargs){.valflag = "--timeout-ms", .val = &timeout}, args, 2, 2);
	if (bad)
		return bad;
	uint64_t deadline = timeout >= 0 ? now_mono_ns() + (uint64_t)timeout * 1000000ull : 0;
	for (;;) {   /* the server waits up to an hour per request */
		uint64_t left = 3600000;
		if (timeout >= 0) {
			uint64_t now = now_mono_ns();
			left = now >= deadline ? 0 : (deadline - now) / 1000000ull;
		}
		char path[1200], base[1024];
		urlpath(base, sizeof base, args[0], "/procs/", args[1]);
		snprintf(path, sizeof path, "%s/wait?timeout_ms=%llu", base, (unsigned long long)MIN(left, 3600000ull));
		api_client *cl;
		silo_error err;
		if (api_client_new(&cl, &err) < 0)
			return cli_error(&err, json);
		char *resp = NULL;
		int rc = api_call(cl, "GET", path, NULL, NULL, 0, &resp, NULL, &err);
		api_client_free(cl);
		if (rc < 0 && err.code == SILO_ERR_TIMEOUT && (timeout < 0 || now_mono_ns() < deadline)) {
			free(resp);
			continue;
		}
		if (rc < 0)
			return cli_error(&err, json);
		json_t *o = json_loads(resp, 0, NULL);
		free(resp);
		if (json)
			cli_print_json(o);
		json_t *ex = json_object_get(o, "exit");
		int sig = (int)cli_jint(ex, "signal"), code = (int)cli_jint(ex, "exit_code");
		if (!json && cli_exit_oom(ex))
			cli_note_oom(args[0], 0);
		json_decref(o);
		return sig ? 128 + sig : code;
	}
}

int cmd_attach(int argc, char **argv)
{
	bool json = cli_want_json(argc, argv);
	const char *u = "[--no-stdin] ID PROC";
	const char *args[2] = {NULL, NULL};
	bool no_stdin = false;
	int bad = cli_operands(argc, argv, u, json, &(cli_opargs){.flag = "--no-stdin", .on = &no_stdin}, args, 2, 2);
	if (bad)
		return bad;
	char path[1200], base[1024];
	urlpath(base, sizeof base, args[0], "/procs/", args[1]);
	snprintf(path, sizeof path, "%s/attach", base);
	bool tty = isatty(STDIN_FILENO);
	session s = {.sandbox = args[0], .stdin_open = !no_stdin, .detach_key = tty && !no_stdin};
	api_ws *w = NULL;
	int rc = open_session(path, NULL, &s, &w, json);
	if (rc) {
		api_ws_close(w);
		return rc;
	}
	if (tty && s.pty && !no_stdin) {
		tty_raw();
		winch = 1;   /* our size now */
	}
	char what[128];
	snprintf(what, sizeof what, "%s", args[1]);
	rc = session_loop(&s, what, json);
	api_ws_close(w);
	return rc;
}
