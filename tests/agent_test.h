/* SPDX-License-Identifier: Apache-2.0
 * The real silo-agent as an ordinary child process on a socketpair (--fd),
 * with a channel to it and a scratch directory: shared by the channel tests
 * (test_channel.c, test_channel_fs.c) and the process-table test (test_proc.c).
 */
#ifndef SILO_TESTS_AGENT_TEST_H
#define SILO_TESTS_AGENT_TEST_H

#include <sys/socket.h>
#include <sys/wait.h>

#include "common/util.h"
#include "core/channel.h"
#include "harness.h"
#include "wire.h"

typedef struct agent_proc {
	pid_t pid;
	chan *c;
	char dir[64];
} agent_proc;

/* The built silo-agent serving fd: flag is "--fd" (one connection) or "--listen-fd"
 * (a listening socket, successive connections). Its pid, -1 if it is not built. */
static inline pid_t spawn_agent_on(const char *flag, int fd)
{
	char path[4096];
	silo_error err;
	if (find_helper_binary("silo-agent", path, sizeof path, &err) < 0) {
		printf("# %s\n", err.message);
		return -1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		char fdstr[16];
		snprintf(fdstr, sizeof fdstr, "%d", fd);
		execl(path, "silo-agent", flag, fdstr, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static inline pid_t spawn_agent(int fd)
{
	return spawn_agent_on("--fd", fd);
}

static inline void start(agent_proc *a, int heartbeat_ms)
{
	int sv[2];
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	set_cloexec(sv[0], true);
	a->pid = spawn_agent(sv[1]);
	REQUIRE(a->pid > 0);
	close(sv[1]);
	chan_opts o = {.vm_id = "test", .heartbeat_ms = heartbeat_ms};
	agent_info info;
	silo_error err;
	a->c = chan_open(sv[0], &o, &info, &err);
	if (!a->c)
		printf("# chan_open: %s\n", err.message);
	REQUIRE(a->c);
	CHECK_INT_EQ(info.proto_version, WIRE_VERSION);
	CHECK_INT_EQ(info.pid, a->pid);
	snprintf(a->dir, sizeof a->dir, "/tmp/silo-chan-XXXXXX");
	REQUIRE(mkdtemp(a->dir));
}

static inline void stop(agent_proc *a)
{
	chan_close(a->c);
	int st;
	waitpid(a->pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0); /* agent exits cleanly when its fd closes */
	rm_rf(a->dir);
}

#endif
