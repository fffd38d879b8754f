/* SPDX-License-Identifier: Apache-2.0
 * Owner side of sandbox networking (net.h). silo-net is double-forked into
 * its own session (it belongs to the sandbox, not to silod: it survives a
 * silod restart and is found again through RUNDIR/net.pid and net.sock).
 *
 * Locking: cfg_lock guards the process-wide settings; n->lock the control
 * socket's write side. The reader thread owns the read side and is joined
 * by net_stop/net_close after shutdown() of the socket.
 */
#include "net/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/fdread.h"
#include "common/util.h"
#include "net/ctl.h"
#include "net/hosts.h"

#define START_TIMEOUT_MS 10000

struct net_sb {
	int fd;
	pthread_mutex_t lock;
	pthread_t reader;
	bool have_reader;
	net_opts o;
	char id[SILO_ID_MAX];
	char rundir[4096];
};

static pthread_mutex_t cfg_lock = PTHREAD_MUTEX_INITIALIZER;
static char *cfg_hosts;
static char *cfg_never[16];
static size_t cfg_n_never;

int net_config_hosts(const char *path, silo_error *err)
{
	if (path) {
		hosts_map m;
		char why[512];
		if (!hosts_load(path, &m, why, sizeof why))
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "--egress-hosts: %s", why);
		hosts_free(&m);
	}
	pthread_mutex_lock(&cfg_lock);
	free(cfg_hosts);
	cfg_hosts = path ? xstrdup(path) : NULL;
	pthread_mutex_unlock(&cfg_lock);
	return 0;
}

const char *net_config_hosts_path(void)
{
	return cfg_hosts;
}

int net_config_never(const char *addr_port, silo_error *err)
{
	const char *colon = strrchr(addr_port, ':');
	char ip[64];
	struct in_addr a;
	if (!colon || (size_t)(colon - addr_port) >= sizeof ip || atoi(colon + 1) < 1 || atoi(colon + 1) > 65535)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "network: \"%s\" is not ADDR:PORT", addr_port);
	memcpy(ip, addr_port, (size_t)(colon - addr_port));
	ip[colon - addr_port] = '\0';
	if (!strcmp(ip, "localhost"))
		snprintf(ip, sizeof ip, "127.0.0.1");
	if (inet_pton(AF_INET, ip, &a) != 1)
		return 0;   /* an IPv6 listener: sandboxes have no IPv6 */
	pthread_mutex_lock(&cfg_lock);
	if (cfg_n_never < sizeof cfg_never / sizeof cfg_never[0])
		cfg_never[cfg_n_never++] = xasprintf("%s:%d", ip, atoi(colon + 1));
	pthread_mutex_unlock(&cfg_lock);
	return 0;
}

unsigned long long net_proc_start(pid_t pid)
{
	char p[64];
	snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
	char *buf = NULL;
	size_t len = 0;
	if (pid <= 0 || read_file(p, 4096, &buf, &len, NULL) < 0)
		return 0;
	const char *r = strrchr(buf, ')');
	unsigned long long v = 0;
	if (r && r[1] == ' ' && r[2] && r[2] != 'Z' && r[2] != 'X') {
		const char *s = r + 2;
		for (int field = 3; *s && field < 22; s++)
			if (*s == ' ')
				field++;
		for (; *s >= '0' && *s <= '9'; s++)
			v = v * 10 + (unsigned long long)(*s - '0');
	}
	free(buf);
	return v;
}

/* RUNDIR/net.pid: "SUPPID START STACKPID START". */
static int read_pids(const char *rundir, pid_t pid[2], unsigned long long start[2])
{
	char p[4200];
	snprintf(p, sizeof p, "%s/%s", rundir, CTL_PIDFILE);
	char *buf = NULL;
	size_t len = 0;
	if (read_file(p, 256, &buf, &len, NULL) < 0)
		return -1;
	int a = 0, b = 0;
	int n = sscanf(buf, "%d %llu %d %llu", &a, &start[0], &b, &start[1]);
	free(buf);
	pid[0] = a;
	pid[1] = b;
	return n == 4 ? 0 : -1;
}

static bool same_proc(pid_t pid, unsigned long long start)
{
	return pid > 0 && start && net_proc_start(pid) == start;
}

/* ---- control socket ---- */

static int send_frame(net_sb *n, char type, const void *a, size_t alen, const void *b, size_t blen)
{
	uint8_t hdr[5];
	uint32_t l = (uint32_t)(alen + blen + 1);
	hdr[0] = (uint8_t)(l >> 24);
	hdr[1] = (uint8_t)(l >> 16);
	hdr[2] = (uint8_t)(l >> 8);
	hdr[3] = (uint8_t)l;
	hdr[4] = (uint8_t)type;
	struct iovec iov[3] = {{hdr, 5}, {(void *)a, alen}, {(void *)b, blen}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 3};
	pthread_mutex_lock(&n->lock);
	ssize_t w = n->fd >= 0 ? sendmsg(n->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) : -1;
	pthread_mutex_unlock(&n->lock);
	/* a frame is small: all or nothing on an unclogged socket; a partial
	 * write would desync, so the connection is dropped then */
	if (w >= 0 && (size_t)w != 5 + alen + blen) {
		shutdown(n->fd, SHUT_RDWR);
		return -1;
	}
	return w < 0 ? -1 : 0;
}

static void *reader_main(void *arg)
{
	net_sb *n = arg;
	uint8_t *b = xmalloc(CTL_MAX_FRAME + 4);
	size_t have = 0;
	for (;;) {
		ssize_t r = read(n->fd, b + have, CTL_MAX_FRAME + 4 - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		have += (size_t)r;
		for (;;) {
			if (have < 4)
				break;
			uint32_t len = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
			if (len < 1 || len > CTL_MAX_FRAME)
				goto out;
			if (have < 4 + (size_t)len)
				break;
			uint8_t type = b[4];
			const uint8_t *p = b + 5;
			size_t plen = len - 1;
			if (type == 'R' && plen > 4 && n->o.on_dns)
				n->o.on_dns(n->o.ud, (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3], p + 4,
					    plen - 4);
			else if (type == 'D' && n->o.on_denial) {
				char *s = xmalloc(plen + 1);
				memcpy(s, p, plen);
				s[plen] = '\0';
				n->o.on_denial(n->o.ud, s);
				free(s);
			}
			memmove(b, b + 4 + len, have - 4 - len);
			have -= 4 + len;
		}
	}
out:
	free(b);
	return NULL;
}

static int connect_ctl(net_sb *n, silo_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if ((size_t)snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s", n->rundir, CTL_SOCK) >= sizeof sa.sun_path)
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, ENAMETOOLONG, n->id, "network: control socket path");
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		if (s >= 0)
			close(s);
		return silo_fail_vm(err, SILO_ERR_IO_ERROR, e, n->id, "network: connect to %s", sa.sun_path);
	}
	n->fd = s;
	if (pthread_create(&n->reader, NULL, reader_main, n) != 0) {
		close(s);
		n->fd = -1;
		return silo_fail_vm(err, SILO_ERR_INTERNAL, errno, n->id, "network: reader thread");
	}
	n->have_reader = true;
	return 0;
}

static net_sb *sb_new(const net_opts *o)
{
	net_sb *n = xcalloc(1, sizeof *n);
	n->fd = -1;
	pthread_mutex_init(&n->lock, NULL);
	n->o = *o;
	n->o.egress = NULL;   /* only needed at start */
	snprintf(n->id, sizeof n->id, "%s", o->id);
	snprintf(n->rundir, sizeof n->rundir, "%s", o->rundir);
	return n;
}

static void sb_free(net_sb *n)
{
	if (n->fd >= 0)
		shutdown(n->fd, SHUT_RDWR);
	if (n->have_reader)
		pthread_join(n->reader, NULL);
	if (n->fd >= 0)
		close(n->fd);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

/* Start silo-net with the given stack fd flag ("--vm-fd" / "--netns-fd") and
 * fd; wait for its status line. */
static int spawn(net_sb *n, const net_opts *o, const char *fd_flag, int stack_fd, pid_t watch, silo_error *err)
{
	char bin[4096], stack[4096];
	if (find_helper_binary("silo-net", bin, sizeof bin, err) < 0)
		return -1;
	const char *stack_name = !strcmp(fd_flag, "--vm-fd") ? "passt" : "pasta";
	const char *env_stack = getenv(!strcmp(stack_name, "passt") ? "SILO_PASST" : "SILO_PASTA");
	if (env_stack && *env_stack)
		snprintf(stack, sizeof stack, "%s", env_stack);
	else
		snprintf(stack, sizeof stack, "/usr/bin/%s", stack_name);
	if (access(stack, X_OK) < 0)
		return silo_fail_vm(err, SILO_ERR_PROVIDER_UNAVAILABLE, errno, n->id,
				    "network: %s (Debian package passt) is needed for network = true", stack);
	int hosts_fd = -1;
	pthread_mutex_lock(&cfg_lock);
	if (cfg_hosts) {
		hosts_fd = open(cfg_hosts, O_RDONLY | O_CLOEXEC);
		if (hosts_fd < 0) {
			int e = errno;
			pthread_mutex_unlock(&cfg_lock);
			return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, e, n->id, "--egress-hosts %s", cfg_hosts);
		}
	}
	char **argv = NULL;
	size_t argc = 0, cap = 0;
#define ARG(s) do { if (argc + 2 > cap) { cap = cap ? cap * 2 : 32; argv = xrealloc(argv, cap * sizeof *argv); } \
		argv[argc++] = xstrdup(s); argv[argc] = NULL; } while (0)
	char num[32], tag[SILO_ID_MAX + 8];
	ARG(bin);
	snprintf(tag, sizeof tag, "silo-%s", n->id);   /* the cleanup sweep finds processes by it */
	ARG("--id");
	ARG(tag + 5);
	ARG("--rundir");
	ARG(n->rundir);
	ARG("--stack");
	ARG(stack);
	ARG("--status-fd");
	ARG("3");
	ARG(fd_flag);
	ARG("4");
	if (hosts_fd >= 0) {
		ARG("--hosts-fd");
		ARG("5");
	}
	for (size_t i = 0; i < o->n_egress; i++) {
		ARG("--egress");
		ARG(o->egress[i]);
	}
	for (size_t i = 0; i < cfg_n_never; i++) {
		ARG("--never");
		ARG(cfg_never[i]);
	}
	if (watch > 0) {
		snprintf(num, sizeof num, "%d", (int)watch);
		ARG("--watch-pid");
		ARG(num);
	}
	if (o->mtu) {
		snprintf(num, sizeof num, "%u", o->mtu);
		ARG("--mtu");
		ARG(num);
	}
	ARG(tag);   /* ignored operand: the tag on the command line */
#undef ARG
	pthread_mutex_unlock(&cfg_lock);
	int st[2];
	if (pipe2(st, O_CLOEXEC) < 0) {
		int e = errno;
		strv_free(argv);
		if (hosts_fd >= 0)
			close(hosts_fd);
		return silo_fail_vm(err, SILO_ERR_INTERNAL, e, n->id, "network: pipe");
	}
	pid_t mid = fork();
	if (mid == 0) {
		/* intermediate: a new session, then silo-net as an orphan */
		setsid();
		pid_t c = fork();
		if (c != 0)
			_exit(c < 0 ? 1 : 0);
		int nul = open("/dev/null", O_RDWR);
		int a = fcntl(st[1], F_DUPFD, 16), b = fcntl(stack_fd, F_DUPFD, 16);
		int h = hosts_fd >= 0 ? fcntl(hosts_fd, F_DUPFD, 16) : -1;
		if (nul < 0 || a < 0 || b < 0 || dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(nul, 2) < 0 ||
		    dup2(a, 3) < 0 || dup2(b, 4) < 0 || (h >= 0 && dup2(h, 5) < 0))
			_exit(127);
		syscall(SYS_close_range, h >= 0 ? 6u : 5u, ~0u, 0);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		for (int sg = 1; sg < NSIG; sg++)
			signal(sg, SIG_DFL);   /* silod ignores SIGPIPE; silo-net starts clean */
		execv(bin, argv);
		_exit(127);
	}
	close(st[1]);
	if (hosts_fd >= 0)
		close(hosts_fd);
	strv_free(argv);
	if (mid < 0) {
		int e = errno;
		close(st[0]);
		return silo_fail_vm(err, SILO_ERR_INTERNAL, e, n->id, "network: fork");
	}
	waitpid(mid, NULL, 0);
	char buf[600];
	fd_read_until(st[0], buf, sizeof buf, now_mono_ns() + (uint64_t)START_TIMEOUT_MS * 1000000ull);
	close(st[0]);
	if (strncmp(buf, "ok", 2)) {
		buf[strcspn(buf, "\n")] = '\0';
		pid_t pid[2];
		unsigned long long start[2];
		if (read_pids(n->rundir, pid, start) == 0)
			for (int i = 0; i < 2; i++)
				if (same_proc(pid[i], start[i]))
					kill(pid[i], SIGKILL);
		return silo_fail_vm(err, SILO_ERR_PROVIDER_UNAVAILABLE, 0, n->id, "network: silo-net: %s",
				    buf[0] ? (strncmp(buf, "error: ", 7) ? buf : buf + 7) : "no answer in time");
	}
	return connect_ctl(n, err);
}

static int start_common(const net_opts *o, const char *flag, int stack_fd, pid_t watch, net_sb **out,
			silo_error *err)
{
	net_sb *n = sb_new(o);
	if (spawn(n, o, flag, stack_fd, watch, err) < 0) {
		net_stop(n);
		return -1;
	}
	*out = n;
	return 0;
}

int net_start_vm(const net_opts *o, int *guest_fd, net_sb **out, silo_error *err)
{
	*out = NULL;
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return silo_fail_vm(err, SILO_ERR_INTERNAL, errno, o->id, "network: socketpair");
	int rc = start_common(o, "--vm-fd", sp[1], 0, out, err);
	close(sp[1]);
	if (rc < 0) {
		close(sp[0]);
		return -1;
	}
	*guest_fd = sp[0];
	return 0;
}

int net_start_netns(const net_opts *o, pid_t init_pid, net_sb **out, silo_error *err)
{
	*out = NULL;
	char p[64];
	snprintf(p, sizeof p, "/proc/%d/ns/net", (int)init_pid);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return silo_fail_vm(err, SILO_ERR_INTERNAL, errno, o->id, "network: open %s", p);
	int rc = start_common(o, "--netns-fd", fd, init_pid, out, err);
	close(fd);
	return rc;
}

int net_watch(net_sb *n, pid_t pid, silo_error *err)
{
	uint8_t p[4] = {(uint8_t)(pid >> 24), (uint8_t)(pid >> 16), (uint8_t)(pid >> 8), (uint8_t)pid};
	if (send_frame(n, 'W', p, 4, NULL, 0) < 0)
		return silo_fail_vm(err, SILO_ERR_IO_ERROR, errno, n->id, "network: silo-net is not answering");
	return 0;
}

int net_reattach(const net_opts *o, net_sb **out, silo_error *err)
{
	*out = NULL;
	net_sb *n = sb_new(o);
	pid_t pid[2];
	unsigned long long start[2];
	if (read_pids(n->rundir, pid, start) < 0 || !same_proc(pid[0], start[0])) {
		sb_free(n);
		return silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, ESRCH, o->id, "network: silo-net is gone");
	}
	if (connect_ctl(n, err) < 0) {
		sb_free(n);
		return -1;
	}
	*out = n;
	return 0;
}

void net_dns_query(net_sb *n, uint32_t tag, const uint8_t *msg, size_t len)
{
	if (!n || len > CTL_MAX_FRAME - 8)
		return;
	uint8_t t[4] = {(uint8_t)(tag >> 24), (uint8_t)(tag >> 16), (uint8_t)(tag >> 8), (uint8_t)tag};
	send_frame(n, 'Q', t, 4, msg, len);
}

void net_close(net_sb *n)
{
	if (n)
		sb_free(n);
}

void net_stop(net_sb *n)
{
	if (!n)
		return;
	pid_t pid[2];
	unsigned long long start[2];
	if (read_pids(n->rundir, pid, start) == 0) {
		if (same_proc(pid[0], start[0]))
			kill(pid[0], SIGTERM);   /* it kills the stack */
		for (int i = 0; i < 200 && (same_proc(pid[0], start[0]) || same_proc(pid[1], start[1])); i++) {
			struct timespec ts = {0, 10 * 1000000L};
			nanosleep(&ts, NULL);
		}
		for (int i = 0; i < 2; i++)
			if (same_proc(pid[i], start[i]))
				kill(pid[i], SIGKILL);
		for (int i = 0; i < 100 && (same_proc(pid[0], start[0]) || same_proc(pid[1], start[1])); i++) {
			struct timespec ts = {0, 10 * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
	sb_free(n);
}

void net_residue(const char *rundir, char ***out)
{
	pid_t pid[2];
	unsigned long long start[2];
	if (read_pids(rundir, pid, start) < 0)
		return;
	static const char *const what[2] = {"silo-net", "network stack"};
	for (int i = 0; i < 2; i++)
		if (same_proc(pid[i], start[i])) {
			size_t k = strv_len(*out);
			*out = xrealloc(*out, (k + 2) * sizeof **out);
			(*out)[k] = xasprintf("%s pid %d", what[i], (int)pid[i]);
			(*out)[k + 1] = NULL;
		}
}
