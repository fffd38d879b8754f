/* SPDX-License-Identifier: Apache-2.0
 * Egress filter for the host-side stack and its connect() decisions
 * (stack.h). Order in the child: fds in place, every other fd closed,
 * filter loaded, listener handed to the parent over a socketpair and closed,
 * exec. The listener never exists in the stack after exec.
 */
#include "net/stack.h"

#include <arpa/inet.h>
#include <poll.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"

#ifndef MSG_FASTOPEN
#define MSG_FASTOPEN 0x20000000
#endif
#ifndef TCP_FASTOPEN_CONNECT
#define TCP_FASTOPEN_CONNECT 30
#endif
#ifndef TCP_REPAIR_WINDOW
#define TCP_REPAIR_WINDOW 29
#endif

#define R(ctx, act, call, ...) \
	(seccomp_rule_add(ctx, act, SCMP_SYS(call), __VA_ARGS__) == 0)

static bool build_filter(scmp_filter_ctx ctx, bool unix_dgram)
{
	bool ok = true;
	/* Every connect() is decided by the supervisor; bind() too: passt probes
	 * whether a destination is local by binding to it, and answers a free
	 * local port with a RST of its own (stack_handle refuses inet binds). */
	ok &= R(ctx, SCMP_ACT_NOTIFY, connect, 0);
	ok &= R(ctx, SCMP_ACT_NOTIFY, bind, 0);
	/* Sockets: TCP over IPv4/IPv6, unix stream, netlink; nothing else. */
	for (int fam = 0; fam < 64; fam++)
		if (fam != AF_UNIX && fam != AF_INET && fam != AF_INET6 && fam != AF_NETLINK)
			ok &= R(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), socket, 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)fam));
	ok &= R(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), socket, 1, SCMP_A0(SCMP_CMP_GE, 64));
	static const int stream_only[] = {AF_UNIX, AF_INET, AF_INET6};
	for (size_t i = unix_dgram ? 1 : 0; i < sizeof stream_only / sizeof stream_only[0]; i++)
		ok &= R(ctx, SCMP_ACT_ERRNO(EACCES), socket, 2, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)stream_only[i]),
			SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_DGRAM));
	/* datagrams with a destination: none of ours (unix dgram sockets, when
	 * allowed, serve ioctls such as if_nametoindex) */
	ok &= R(ctx, SCMP_ACT_ERRNO(EACCES), sendto, 1, SCMP_A4(SCMP_CMP_NE, 0));
	for (size_t i = 0; i < sizeof stream_only / sizeof stream_only[0]; i++)
		ok &= R(ctx, SCMP_ACT_ERRNO(EACCES), socket, 2, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)stream_only[i]),
			SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_RAW));
	for (size_t i = 0; i < sizeof stream_only / sizeof stream_only[0]; i++)
		ok &= R(ctx, SCMP_ACT_ERRNO(EACCES), socket, 2, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)stream_only[i]),
			SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_SEQPACKET));
	/* A connect without connect(): TCP fast open, and TCP repair. */
	ok &= R(ctx, SCMP_ACT_ERRNO(EPERM), sendto, 1, SCMP_A3(SCMP_CMP_MASKED_EQ, MSG_FASTOPEN, MSG_FASTOPEN));
	ok &= R(ctx, SCMP_ACT_ERRNO(EPERM), sendmsg, 1, SCMP_A2(SCMP_CMP_MASKED_EQ, MSG_FASTOPEN, MSG_FASTOPEN));
	ok &= R(ctx, SCMP_ACT_ERRNO(EPERM), sendmmsg, 1, SCMP_A3(SCMP_CMP_MASKED_EQ, MSG_FASTOPEN, MSG_FASTOPEN));
	static const int tcp_opts[] = {TCP_REPAIR, TCP_REPAIR_QUEUE, TCP_QUEUE_SEQ, TCP_REPAIR_OPTIONS,
				       TCP_REPAIR_WINDOW, TCP_FASTOPEN_CONNECT};
	for (size_t i = 0; i < sizeof tcp_opts / sizeof tcp_opts[0]; i++)
		ok &= R(ctx, SCMP_ACT_ERRNO(EPERM), setsockopt, 2, SCMP_A1(SCMP_CMP_EQ, IPPROTO_TCP),
			SCMP_A2(SCMP_CMP_EQ, (scmp_datum_t)tcp_opts[i]));
	/* No listening socket on the host, no connects behind our back. */
	ok &= R(ctx, SCMP_ACT_ERRNO(EPERM), listen, 0);
	ok &= R(ctx, SCMP_ACT_ERRNO(ENOSYS), io_uring_setup, 0);
	ok &= R(ctx, SCMP_ACT_ERRNO(ENOSYS), io_uring_enter, 0);
	ok &= R(ctx, SCMP_ACT_ERRNO(ENOSYS), io_uring_register, 0);
	ok &= R(ctx, SCMP_ACT_ERRNO(EPERM), ptrace, 0);
	ok &= R(ctx, SCMP_ACT_ERRNO(EPERM), process_vm_readv, 0);
	ok &= R(ctx, SCMP_ACT_ERRNO(EPERM), process_vm_writev, 0);
	ok &= R(ctx, SCMP_ACT_ERRNO(EPERM), pidfd_getfd, 0);
	return ok;
}

/* The listener, or -1 with the child's message ("Ewhat: why") in msg. */
static int recv_fd(int sock, char *msg, size_t msglen)
{
	struct iovec iov = {.iov_base = msg, .iov_len = msglen - 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
	ssize_t n;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	msg[n > 0 ? n : 0] = '\0';
	struct cmsghdr *cm = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
	if (!cm || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len != CMSG_LEN(sizeof(int)))
		return -1;
	int fd;
	memcpy(&fd, CMSG_DATA(cm), sizeof fd);
	return fd;
}

/* In the child: report why, exit. */
static void child_die(int sock, const char *what)
{
	char buf[200];
	int e = errno;
	int n = snprintf(buf, sizeof buf, "E%s: %s", what, strerror(e));
	if (write(sock, buf, (size_t)n) < 0) {
		/* nothing left to tell */
	}
	_exit(127);
}

int stack_spawn(char *const argv[], const int *fds, size_t n_fds, int out_fd, bool unix_dgram, pid_t *pid,
		int *notify_fd, char *why, size_t whylen)
{
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		snprintf(why, whylen, "socketpair: %s", strerror(errno));
		return -1;
	}
	pid_t c = fork();
	if (c < 0) {
		snprintf(why, whylen, "fork: %s", strerror(errno));
		close(sp[0]);
		close(sp[1]);
		return -1;
	}
	if (c == 0) {
		close(sp[0]);
		sigset_t all;
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		/* ignored signals survive exec: pasta 2023.03 dies when it finds SIGPIPE
		 * already ignored (its check reads signal()'s previous handler) */
		for (int sg = 1; sg < NSIG; sg++)
			signal(sg, SIG_DFL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		/* fds: first out of the way (above every target), then into place */
		int base = 64 + (int)n_fds;
		int moved[16];
		if (n_fds > 16)
			child_die(sp[1], "too many fds");
		for (size_t i = 0; i < n_fds; i++)
			if ((moved[i] = fcntl(fds[i], F_DUPFD, base)) < 0)
				child_die(sp[1], "dup");
		int rep = fcntl(sp[1], F_DUPFD_CLOEXEC, base);
		int out = fcntl(out_fd, F_DUPFD, base);
		int nul = open("/dev/null", O_RDONLY);
		if (rep < 0 || out < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
			child_die(sp[1], "stdio");
		for (size_t i = 0; i < n_fds; i++)
			if (dup2(moved[i], 3 + (int)i) < 0)
				child_die(sp[1], "dup2");
		int keep_rep = 3 + (int)n_fds;
		if (dup3(rep, keep_rep, O_CLOEXEC) < 0)
			child_die(sp[1], "dup3");
		if (syscall(SYS_close_range, (unsigned)keep_rep + 1, ~0u, 0) < 0)
			child_die(keep_rep, "close_range");
		scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
		if (!ctx)
			child_die(keep_rep, "seccomp_init");
		/* Foreign ABIs (int 0x80, x32) would bypass the native rules: kill. */
		seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
		if (!build_filter(ctx, unix_dgram)) {
			errno = EINVAL;
			child_die(keep_rep, "seccomp rules");
		}
		int rc = seccomp_load(ctx);
		if (rc < 0) {
			errno = -rc;
			child_die(keep_rep, "seccomp_load");
		}
		int nfd = seccomp_notify_fd(ctx);
		if (nfd < 0 || send_all_with_fds(keep_rep, "F", 1, &nfd, 1) < 0)
			child_die(keep_rep, "seccomp listener");
		close(nfd);
		seccomp_release(ctx);
		execv(argv[0], argv);
		child_die(keep_rep, argv[0]);
	}
	close(sp[1]);
	char msg[200];
	int nfd = recv_fd(sp[0], msg, sizeof msg);
	if (nfd < 0) {
		snprintf(why, whylen, "starting %s: %s", argv[0], msg[0] == 'E' ? msg + 1 : "no seccomp listener");
		close(sp[0]);
		kill(c, SIGKILL);
		waitpid(c, NULL, 0);
		return -1;
	}
	/* exec succeeded when the report socket closes without an 'E' message */
	char buf[200] = "";
	ssize_t n;
	do
		n = read(sp[0], buf, sizeof buf - 1);
	while (n < 0 && errno == EINTR);
	close(sp[0]);
	if (n > 0) {
		buf[n] = '\0';
		snprintf(why, whylen, "starting %s: %s", argv[0], buf[0] == 'E' ? buf + 1 : buf);
		close(nfd);
		kill(c, SIGKILL);
		waitpid(c, NULL, 0);
		return -1;
	}
	set_cloexec(nfd, true);
	*pid = c;
	*notify_fd = nfd;
	return 0;
}

/* Read the target's sockaddr (len bytes at addr) into out. */
static bool read_target(pid_t pid, uint64_t addr, void *out, size_t len)
{
	struct iovec local = {.iov_base = out, .iov_len = len};
	struct iovec remote = {.iov_base = (void *)(uintptr_t)addr, .iov_len = len};
	return process_vm_readv(pid, &local, 1, &remote, 1, 0) == (ssize_t)len;
}

static void respond(int fd, struct seccomp_notif *req, struct seccomp_notif_resp *resp, int64_t val, int err)
{
	resp->id = req->id;
	resp->val = val;
	resp->error = err ? -err : 0;
	resp->flags = 0;
	if (seccomp_notify_respond(fd, resp) < 0 && errno != ENOENT)
		log_debug("seccomp respond: %s", strerror(errno));
}

/* Connect the target's socket ourselves (pidfd_getfd) to sa. Returns 0 or an errno. */
static int connect_for(pid_t pid, int target_fd, const void *sa, socklen_t salen, int notify_fd, uint64_t id,
		       const struct sockaddr_in *refuse_to)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pfd < 0)
		return ECONNREFUSED;
	int s = (int)syscall(SYS_pidfd_getfd, pfd, target_fd, 0);
	int e = errno;
	close(pfd);
	if (s < 0)
		return e == EBADF ? EBADF : ECONNREFUSED;
	/* the fd must still belong to the thread that asked */
	if (seccomp_notify_id_valid(notify_fd, id) != 0) {
		close(s);
		return ECONNREFUSED;
	}
	int fl = fcntl(s, F_GETFL);
	int rc = 0;
	if (fl < 0 || !(fl & O_NONBLOCK)) {
		rc = EOPNOTSUPP;   /* a blocking connect would stall the supervisor: the stack never does that */
	} else if (connect(s, (const struct sockaddr *)sa, salen) < 0) {
		rc = errno;
	}
	if (rc == EINPROGRESS && refuse_to) {
		/* A local refusal has happened by now (loopback answers inside
		 * connect()): send the stack to the refuser instead, so the guest
		 * gets a reset it accepts rather than passt's ACK-less one. */
		int soe = 0;
		socklen_t l = sizeof soe;
		struct pollfd pf = {.fd = s, .events = POLLOUT};
		const struct sockaddr_in *in = sa;
		bool loopback = in->sin_family == AF_INET && (ntohl(in->sin_addr.s_addr) >> 24) == 127;
		if (poll(&pf, 1, loopback ? 5 : 0) == 1 && getsockopt(s, SOL_SOCKET, SO_ERROR, &soe, &l) == 0 &&
		    soe == ECONNREFUSED) {
			struct sockaddr unspec = {.sa_family = AF_UNSPEC};
			connect(s, &unspec, sizeof unspec);   /* SS_CONNECTING -> unconnected, then again */
			rc = connect(s, (const struct sockaddr *)refuse_to, sizeof *refuse_to) < 0 ? errno : 0;
		}
	}
	close(s);
	return rc;
}

int stack_handle(int notify_fd, netpol *p, const struct sockaddr_in *refuse_to, stack_decided_fn cb, void *ud)
{
	struct seccomp_notif *req = NULL;
	struct seccomp_notif_resp *resp = NULL;
	if (seccomp_notify_alloc(&req, &resp) < 0)
		return -1;
	int rc = seccomp_notify_receive(notify_fd, req);
	if (rc < 0) {
		seccomp_notify_free(req, resp);
		errno = -rc;
		return errno == EINTR || errno == ENOENT ? 0 : -1;
	}
	int target_fd = (int)req->data.args[0];
	uint64_t uaddr = req->data.args[1];
	uint64_t ulen = req->data.args[2];
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	size_t len = ulen > sizeof ss ? sizeof ss : (size_t)ulen;
	if (len < sizeof(sa_family_t) || !read_target(req->pid, uaddr, &ss, len) ||
	    seccomp_notify_id_valid(notify_fd, req->id) != 0) {
		respond(notify_fd, req, resp, 0, len < sizeof(sa_family_t) ? EINVAL : EFAULT);
		seccomp_notify_free(req, resp);
		return 0;
	}
	if (req->data.nr == __NR_bind) {
		/* inet binds would only probe for free local ports (the stack listens
		 * nowhere); everything else (netlink) goes on */
		if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
			respond(notify_fd, req, resp, 0, EADDRNOTAVAIL);
		} else {
			resp->id = req->id;
			resp->error = 0;
			resp->val = 0;
			resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
			seccomp_notify_respond(notify_fd, resp);
		}
		seccomp_notify_free(req, resp);
		return 0;
	}
	switch (ss.ss_family) {
	case AF_UNSPEC:
		/* dissolves an association: reaches nothing */
		resp->id = req->id;
		resp->error = 0;
		resp->val = 0;
		resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
		seccomp_notify_respond(notify_fd, resp);
		break;
	case AF_INET6: {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		if (len < sizeof *s6 || !IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			respond(notify_fd, req, resp, 0, ENETUNREACH);   /* IPv4 only */
			break;
		}
		struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = s6->sin6_port};
		memcpy(&sin.sin_addr, &s6->sin6_addr.s6_addr[12], 4);
		netpol_verdict v;
		netpol_check(p, ntohl(sin.sin_addr.s_addr), ntohs(sin.sin_port), &v);
		/* a v4-mapped address on an IPv6 socket: connect the v6 socket to it */
		struct sockaddr_in6 c6 = *s6;
		if (!v.allow && refuse_to) {
			/* the same refuser, as a v4-mapped address */
			memset(&c6.sin6_addr, 0, sizeof c6.sin6_addr);
			c6.sin6_addr.s6_addr[10] = c6.sin6_addr.s6_addr[11] = 0xff;
			memcpy(&c6.sin6_addr.s6_addr[12], &refuse_to->sin_addr, 4);
			c6.sin6_port = refuse_to->sin_port;
		}
		int e = v.allow || refuse_to ? connect_for(req->pid, target_fd, &c6, sizeof c6, notify_fd, req->id, NULL)
					     : ECONNREFUSED;
		respond(notify_fd, req, resp, 0, e);
		if (cb)
			cb(ud, ntohl(sin.sin_addr.s_addr), ntohs(sin.sin_port), &v, e);
		break;
	}
	case AF_INET: {
		if (len < sizeof(struct sockaddr_in)) {
			respond(notify_fd, req, resp, 0, EINVAL);
			break;
		}
		struct sockaddr_in sin;
		memcpy(&sin, &ss, sizeof sin);
		netpol_verdict v;
		netpol_check(p, ntohl(sin.sin_addr.s_addr), ntohs(sin.sin_port), &v);
		int e = v.allow	   ? connect_for(req->pid, target_fd, &sin, sizeof sin, notify_fd, req->id, refuse_to)
			: refuse_to ? connect_for(req->pid, target_fd, refuse_to, sizeof *refuse_to, notify_fd, req->id, NULL)
				    : ECONNREFUSED;
		respond(notify_fd, req, resp, 0, e);
		if (cb)
			cb(ud, ntohl(sin.sin_addr.s_addr), ntohs(sin.sin_port), &v, e);
		break;
	}
	default:
		/* unix, netlink, ...: the stack needs none of them to reach the network */
		respond(notify_fd, req, resp, 0, EACCES);
		break;
	}
	seccomp_notify_free(req, resp);
	return 0;
}
