/* SPDX-License-Identifier: Apache-2.0
 * The control socket of a supervisor: ROOT/ID/ctl.sock, SOCK_SEQPACKET, one
 * JSON object per message (at most RT_CTL_LINE_MAX bytes), descriptors passed
 * with SCM_RIGHTS. The socket is reached through /proc/self/fd/N/ctl.sock with N
 * an fd of the state directory, so a long --root (containerd's is
 * /run/containerd/runc/<namespace>) never meets sun_path's 108 bytes. Only root
 * may talk to a supervisor (SO_PEERCRED, checked by the supervisor; the state
 * directory is 0700 as well).
 *
 * Requests ({"op": ...}): start; kill {sig, all}; pause; resume; ps;
 * exec {process} + fds (stdin, stdout, stderr, or one pty slave), then
 * signal {sig} and resize {rows, cols} on the same connection. Replies:
 * {"ok": true, ...} or {"error": {"code": NAME, "message": TEXT}}; an exec's
 * connection then carries {"exit": CODE, "signal": SIG} when the process ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "common/util.h"
#include "runtime/rt.h"

int rt_ctl_connect(const char *id, silo_error *err)
{
	char dir[PATH_MAX];
	rt_dir(id, dir, sizeof dir);
	cleanup_close int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return silo_fail(err, SILO_ERR_VM_NOT_FOUND, errno, "container \"%s\" does not exist", id);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/" RT_CTL_SOCK, dfd);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "socket");
	int sz = (int)RT_CTL_LINE_MAX * 2;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		close(fd);
		return silo_fail(err, SILO_ERR_VM_NOT_FOUND, e, "container \"%s\": its supervisor does not answer", id);
	}
	return fd;
}

int rt_ctl_send(int fd, json_t *msg, const int *fds, int nfds, silo_error *err)
{
	char *txt = json_dumps(msg, JSON_COMPACT);
	if (!txt)
		return silo_fail(err, SILO_ERR_INTERNAL, ENOMEM, "control message");
	size_t len = strlen(txt);
	if (len > RT_CTL_LINE_MAX) {
		free(txt);
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "control message of %zu bytes (at most %u)", len,
				 RT_CTL_LINE_MAX);
	}
	int r = send_all_with_fds(fd, txt, len, fds, nfds < 0 ? 0 : nfds > 4 ? 4 : nfds);
	int e = errno;
	free(txt);
	if (r < 0)
		return silo_fail(err, SILO_ERR_VSOCK_DISCONNECTED, e, "control socket: send");
	return 0;
}

int rt_ctl_recv(int fd, json_t **msg, int *fds, int *nfds, int timeout_ms, silo_error *err)
{
	*msg = NULL;
	int want = nfds ? *nfds : 0;
	if (nfds)
		*nfds = 0;
	if (timeout_ms >= 0) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int pr;
		while ((pr = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
			;
		if (pr == 0)
			return silo_fail(err, SILO_ERR_TIMEOUT, ETIMEDOUT, "control socket: no answer in %d ms", timeout_ms);
	}
	cleanup_free char *buf = xmalloc(RT_CTL_LINE_MAX + 1);
	struct iovec iov = {.iov_base = buf, .iov_len = RT_CTL_LINE_MAX};
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(4 * sizeof(int))];
	} u;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b, .msg_controllen = sizeof u.b};
	ssize_t r;
	while ((r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (r < 0)
		return silo_fail(err, SILO_ERR_VSOCK_DISCONNECTED, errno, "control socket: receive");
	/* descriptors first: they must be closed whatever else is wrong */
	int got = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *v = (int *)CMSG_DATA(c);
		for (size_t i = 0; i < n; i++) {
			if (got < want)
				fds[got++] = v[i];
			else
				close(v[i]);
		}
	}
	if (nfds)
		*nfds = got;
	if (r == 0)
		return 0;   /* EOF */
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		for (int i = 0; i < got; i++)
			close(fds[i]);
		if (nfds)
			*nfds = 0;
		return silo_fail(err, SILO_ERR_PROTOCOL, EMSGSIZE, "control socket: a message over %u bytes",
				 RT_CTL_LINE_MAX);
	}
	buf[r] = '\0';
	json_error_t je;
	*msg = json_loadb(buf, (size_t)r, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(*msg)) {
		json_decref(*msg);
		*msg = NULL;
		for (int i = 0; i < got; i++)
			close(fds[i]);
		if (nfds)
			*nfds = 0;
		return silo_fail(err, SILO_ERR_PROTOCOL, 0, "control socket: not a JSON object: %s", je.text);
	}
	return 0;
}

int rt_ctl_call(const char *id, json_t *req, json_t **reply, int timeout_ms, silo_error *err)
{
	if (reply)
		*reply = NULL;
	cleanup_close int fd = rt_ctl_connect(id, err);
	if (fd < 0)
		return -1;
	if (rt_ctl_send(fd, req, NULL, 0, err) < 0)
		return -1;
	json_t *r = NULL;
	if (rt_ctl_recv(fd, &r, NULL, NULL, timeout_ms, err) < 0)
		return -1;
	if (!r)
		return silo_fail(err, SILO_ERR_VSOCK_DISCONNECTED, 0, "container \"%s\": the supervisor hung up", id);
	json_t *e = json_object_get(r, "error");
	if (e) {
		const char *code = json_string_value(json_object_get(e, "code"));
		const char *m = json_string_value(json_object_get(e, "message"));
		silo_code c = code ? silo_code_from_name(code) : SILO_ERR_INTERNAL;
		silo_fail(err, c == SILO_ERR__COUNT ? SILO_ERR_INTERNAL : c, 0, "%s", m ? m : "error");
		json_decref(r);
		return -1;
	}
	if (reply)
		*reply = r;
	else
		json_decref(r);
	return 0;
}

/* ---- the console socket (runc's --console-socket protocol) ---- */

int rt_console(const char *socket_path, int *slave, silo_error *err)
{
	*slave = -1;
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0) {
		int e = errno;
		if (m >= 0)
			close(m);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "pty");
	}
	char name[64];
	int s = -1;
	if (ptsname_r(m, name, sizeof name) != 0 || (s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
		int e = errno;
		close(m);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "pty slave");
	}
	/* raw: the pty the process sees is the agent's, inside the sandbox; this one only carries bytes */
	struct termios t;
	if (tcgetattr(s, &t) == 0) {
		cfmakeraw(&t);
		tcsetattr(s, TCSANOW, &t);
	}
	/* a long socket path (sun_path holds 108 bytes) is reached through its directory's fd */
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", socket_path);
	char *slash = strrchr(dir, '/');
	const char *base = slash ? slash + 1 : dir;
	if (slash)
		*slash = '\0';
	cleanup_close int dfd = open(slash ? (dir[0] ? dir : "/") : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int n = snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/%s", dfd, base);
	int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (dfd < 0 || n >= (int)sizeof sa.sun_path || c < 0 || connect(c, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		if (c >= 0)
			close(c);
		close(m);
		close(s);
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, e, "--console-socket %s", socket_path);
	}
	int r = send_all_with_fds(c, name, strlen(name), &m, 1);
	int e = errno;
	close(c);
	close(m);
	if (r < 0) {
		close(s);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "--console-socket %s: send the pty", socket_path);
	}
	*slave = s;
	return 0;
}

/* ---- ending as a process ended ---- */

__attribute__((noreturn)) void rt_exit_as(int code, int sig)
{
	if (sig) {
		/* no core dump of ours for the container's SIGSEGV; raise() aims at this
		 * thread, the only one with the signal unblocked, so no sigwaiting thread
		 * of a supervisor takes it instead */
		struct rlimit none = {0, 0};
		setrlimit(RLIMIT_CORE, &none);
		prctl(PR_SET_DUMPABLE, 0);
		signal(sig, SIG_DFL);
		sigset_t one;
		sigemptyset(&one);
		sigaddset(&one, sig);
		pthread_sigmask(SIG_UNBLOCK, &one, NULL);
		raise(sig);
		_exit(128 + sig);
	}
	_exit(code);
}
