/* SPDX-License-Identifier: Apache-2.0
 * OCI hooks (runtime-spec config.md "POSIX-platform Hooks"), run on the host:
 * createRuntime and prestart when the sandbox exists (before `create`
 * returns), poststart after the process started (a failure is a warning),
 * poststop by `delete`. createContainer and startContainer would run inside the
 * container's namespaces, which a sandbox does not share with the host: they
 * are run like createRuntime, on the host, once the sandbox exists
 * (docs/kubernetes.md). Each hook gets the state JSON on stdin, its own env
 * only, and is killed at its timeout.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "runtime/rt.h"

static int run_hook(const rt_hook *h, const char *state, silo_error *err)
{
	int in[2];
	if (pipe2(in, O_CLOEXEC) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "hook %s: pipe", h->path);
	pid_t pid = fork();
	if (pid < 0) {
		close(in[0]);
		close(in[1]);
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "hook %s: fork", h->path);
	}
	if (pid == 0) {
		dup2(in[0], 0);
		int nul = open("/dev/null", O_WRONLY);
		if (nul >= 0) {
			dup2(nul, 1);
			dup2(nul, 2);
		}
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		char *const noargs[] = {h->path, NULL};
		char *const noenv[] = {NULL};
		execve(h->path, h->args && h->args[0] ? h->args : noargs, h->env ? h->env : noenv);
		_exit(127);
	}
	close(in[0]);
	(void)!write_all(in[1], state, strlen(state));
	close(in[1]);
	uint64_t end = h->timeout_s ? now_mono_ns() + (uint64_t)h->timeout_s * 1000000000ull : 0;
	int st = 0;
	for (;;) {
		pid_t r = waitpid(pid, &st, end ? WNOHANG : 0);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "hook %s: waitpid", h->path);
		if (end && now_mono_ns() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return silo_fail(err, SILO_ERR_TIMEOUT, ETIMEDOUT, "hook %s: killed after its timeout of %d s", h->path,
					 h->timeout_s);
		}
		struct timespec ts = {0, 5 * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "hook %s failed (%s %d)", h->path,
				 WIFEXITED(st) ? "exit status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	return 0;
}

int rt_run_hooks(const rt_config *c, int kind, const rt_state *st, silo_error *err)
{
	if (!c->nhooks[kind] && !(kind == RT_HOOK_CREATE_RUNTIME && (c->nhooks[RT_HOOK_CREATE_CONTAINER] ||
								      c->nhooks[RT_HOOK_START_CONTAINER])))
		return 0;
	json_t *j = rt_state_json(st);
	char *txt = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	int rc = 0;
	int kinds[3] = {kind, -1, -1};
	if (kind == RT_HOOK_CREATE_RUNTIME) {
		kinds[1] = RT_HOOK_CREATE_CONTAINER;
		kinds[2] = RT_HOOK_START_CONTAINER;
	}
	for (int k = 0; k < 3 && rc == 0; k++)
		for (size_t i = 0; kinds[k] >= 0 && i < c->nhooks[kinds[k]] && rc == 0; i++)
			rc = run_hook(&c->hooks[kinds[k]][i], txt, err);
	free(txt);
	return rc;
}
