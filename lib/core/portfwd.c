/* SPDX-License-Identifier: Apache-2.0
 * Port forwarding over the agent channel (portfwd.h). f->lock guards the
 * connection list and the counters; a connection is freed by its
 * guest->client thread after the client->guest thread has been joined.
 */
#include "core/portfwd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/util.h"

#define CHUNK (64u * 1024u)
#define WINDOW (1024u * 1024u)

typedef struct conn {
	struct conn *next;
	struct portfwd *f;
	int fd;                  /* the client */
	uint32_t task;
	pthread_t up, down;      /* client -> guest, guest -> client */
	bool up_started;
	bool done;               /* down has finished: the conn may be reaped */
} conn;

struct portfwd {
	chan *ch;
	char vm_id[SILO_ID_MAX];
	uint16_t guest_port;
	int lfd;
	int stop_fd;             /* eventfd: wakes the acceptor */
	char addr[128];
	bool unix_sock;
	pthread_t acceptor;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	conn *conns;
	unsigned open;
	uint64_t total;
	bool stopping;
};

const char *portfwd_address(const portfwd *f)
{
	return f->addr;
}

uint16_t portfwd_guest_port(const portfwd *f)
{
	return f->guest_port;
}

void portfwd_counts(portfwd *f, uint64_t *total, unsigned *open)
{
	pthread_mutex_lock(&f->lock);
	*total = f->total;
	*open = f->open;
	pthread_mutex_unlock(&f->lock);
}

/* client -> guest */
static void *up_main(void *arg)
{
	conn *c = arg;
	uint8_t *buf = xmalloc(CHUNK);
	for (;;) {
		ssize_t n = read(c->fd, buf, CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		silo_error e;
		if (n <= 0) {
			chan_exec_stdin(c->f->ch, c->task, NULL, 0, true, &e);   /* half-close */
			break;
		}
		if (chan_exec_stdin(c->f->ch, c->task, buf, (size_t)n, false, &e) < 0)
			break;   /* the guest side is gone */
	}
	free(buf);
	return NULL;
}

/* guest -> client; then wait for up, end the task, close. */
static void *down_main(void *arg)
{
	conn *c = arg;
	portfwd *f = c->f;
	uint8_t *buf = xmalloc(CHUNK);
	silo_error e;
	for (;;) {
		int stream;
		ssize_t n = chan_exec_read(f->ch, c->task, &stream, buf, CHUNK, 200, &e);
		if (n < 0 && e.code == SILO_ERR_TIMEOUT) {
			pthread_mutex_lock(&f->lock);
			bool stop = f->stopping;
			pthread_mutex_unlock(&f->lock);
			if (stop)
				break;
			continue;
		}
		if (n <= 0)
			break;   /* the guest's server closed (or the channel went) */
		if (write_all(c->fd, buf, (size_t)n) < 0)
			break;   /* the client went away */
	}
	free(buf);
	/* end both directions: the client sees EOF, the agent closes its socket */
	shutdown(c->fd, SHUT_RDWR);
	chan_exec_discard(f->ch, c->task, &e);
	chan_exec_signal(f->ch, c->task, SIGTERM, &e);
	if (c->up_started)
		pthread_join(c->up, NULL);
	exec_result res;
	chan_exec_wait(f->ch, c->task, 5000, &res, &e);
	close(c->fd);
	pthread_mutex_lock(&f->lock);
	c->done = true;
	f->open--;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

/* Join and free finished connections. f->lock held. */
static void reap_locked(portfwd *f)
{
	for (conn **pp = &f->conns; *pp;) {
		conn *c = *pp;
		if (!c->done) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		pthread_mutex_unlock(&f->lock);
		pthread_join(c->down, NULL);
		free(c);
		pthread_mutex_lock(&f->lock);
	}
}

static void serve(portfwd *f, int cfd)
{
	silo_error e;
	uint32_t task;
	if (chan_tcp_open(f->ch, NULL, f->guest_port, WINDOW, &task, &e) < 0) {
		/* nothing listens in the guest (or the channel is down): reset the client */
		log_debug("%s: forward to port %u: %s", f->vm_id, f->guest_port, e.message);
		struct linger lg = {.l_onoff = 1, .l_linger = 0};
		setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		close(cfd);
		return;
	}
	conn *c = xcalloc(1, sizeof *c);
	c->f = f;
	c->fd = cfd;
	c->task = task;
	pthread_mutex_lock(&f->lock);
	c->next = f->conns;
	f->conns = c;
	f->open++;
	f->total++;
	c->up_started = pthread_create(&c->up, NULL, up_main, c) == 0;
	if (pthread_create(&c->down, NULL, down_main, c) != 0) {
		/* cannot serve it: undo */
		f->conns = c->next;
		f->open--;
		pthread_mutex_unlock(&f->lock);
		shutdown(cfd, SHUT_RDWR);
		chan_exec_discard(f->ch, task, &e);
		chan_exec_signal(f->ch, task, SIGTERM, &e);
		if (c->up_started)
			pthread_join(c->up, NULL);
		exec_result res;
		chan_exec_wait(f->ch, task, 5000, &res, &e);
		close(cfd);
		free(c);
		return;
	}
	pthread_mutex_unlock(&f->lock);
}

static void *acceptor_main(void *arg)
{
	portfwd *f = arg;
	for (;;) {
		pthread_mutex_lock(&f->lock);
		reap_locked(f);
		while (f->open >= PORTFWD_MAX_CONNS && !f->stopping)
			pthread_cond_wait(&f->cond, &f->lock);
		bool stop = f->stopping;
		pthread_mutex_unlock(&f->lock);
		if (stop)
			break;
		struct pollfd p[2] = {{.fd = f->lfd, .events = POLLIN}, {.fd = f->stop_fd, .events = POLLIN}};
		if (poll(p, 2, 1000) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		int cfd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd >= 0)
			serve(f, cfd);
	}
	return NULL;
}

static int listen_tcp(portfwd *f, const char *where, silo_error *err)
{
	const char *colon = strrchr(where, ':');
	char host[64];
	if (!colon || (size_t)(colon - where) >= sizeof host)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "listen: expected 127.0.0.1:PORT, got \"%.64s\"", where);
	memcpy(host, where, (size_t)(colon - where));
	host[colon - where] = '\0';
	char *end;
	long port = strtol(colon + 1, &end, 10);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	if (!colon[1] || *end || port < 0 || port > 65535 ||
	    inet_pton(AF_INET, !strcmp(host, "localhost") ? "127.0.0.1" : host, &sa.sin_addr) != 1)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "listen: expected 127.0.0.1:PORT, got \"%.64s\"", where);
	if ((ntohl(sa.sin_addr.s_addr) >> 24) != 127)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "listen: %s is not a loopback address (a forward is only exposed on this host)", host);
	sa.sin_port = htons((uint16_t)port);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int one = 1;
	if (s >= 0)
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(s, 64) < 0) {
		int e = errno;
		if (s >= 0)
			close(s);
		return silo_fail(err, e == EADDRINUSE ? SILO_ERR_CONFLICT : SILO_ERR_IO_ERROR, e, "listen on %s", where);
	}
	socklen_t l = sizeof sa;
	getsockname(s, (struct sockaddr *)&sa, &l);
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof ip);
	snprintf(f->addr, sizeof f->addr, "%s:%u", ip, ntohs(sa.sin_port));
	f->lfd = s;
	return 0;
}

static int listen_unix(portfwd *f, const char *path, silo_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (path[0] != '/' || strlen(path) >= sizeof sa.sun_path)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "unix: expected an absolute path of at most %zu bytes",
				 sizeof sa.sun_path - 1);
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	/* no umask games in a threaded server: with the usual 022 the socket is
	 * born without write (connect) permission for others, then made 0600 */
	int rc = s < 0 ? -1 : bind(s, (struct sockaddr *)&sa, sizeof sa);
	if (rc == 0 && chmod(path, 0600) < 0) {
		rc = -1;
		unlink(path);
	}
	if (rc < 0 || listen(s, 64) < 0) {
		int e = errno;
		if (s >= 0)
			close(s);
		return silo_fail(err, e == EADDRINUSE ? SILO_ERR_CONFLICT : SILO_ERR_IO_ERROR, e, "unix socket %s", path);
	}
	snprintf(f->addr, sizeof f->addr, "%s", path);
	f->unix_sock = true;
	f->lfd = s;
	return 0;
}

int portfwd_start(chan *ch, const char *vm_id, uint16_t guest_port, const char *where, const char *unix_path,
		  portfwd **out, silo_error *err)
{
	*out = NULL;
	if (guest_port == 0)
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, vm_id, "port: expected 1-65535");
	if (!!where == !!unix_path)
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, vm_id, "port: give either listen or unix");
	portfwd *f = xcalloc(1, sizeof *f);
	f->ch = ch;
	f->guest_port = guest_port;
	f->lfd = f->stop_fd = -1;
	snprintf(f->vm_id, sizeof f->vm_id, "%s", vm_id ? vm_id : "");
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	int rc = where ? listen_tcp(f, where, err) : listen_unix(f, unix_path, err);
	if (rc == 0 && (f->stop_fd = eventfd(0, EFD_CLOEXEC)) < 0)
		rc = silo_fail(err, SILO_ERR_INTERNAL, errno, "eventfd");
	if (rc == 0 && pthread_create(&f->acceptor, NULL, acceptor_main, f) != 0)
		rc = silo_fail(err, SILO_ERR_INTERNAL, errno, "port forward thread");
	if (rc < 0) {
		silo_error_set_vm(err, vm_id);
		if (f->lfd >= 0)
			close(f->lfd);
		if (f->unix_sock)
			unlink(f->addr);
		if (f->stop_fd >= 0)
			close(f->stop_fd);
		pthread_mutex_destroy(&f->lock);
		pthread_cond_destroy(&f->cond);
		free(f);
		return -1;
	}
	*out = f;
	return 0;
}

void portfwd_stop(portfwd *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	f->stopping = true;
	pthread_cond_broadcast(&f->cond);
	/* reset the clients: their threads see EOF/errors and finish */
	for (conn *c = f->conns; c; c = c->next)
		if (!c->done)
			shutdown(c->fd, SHUT_RDWR);
	pthread_mutex_unlock(&f->lock);
	uint64_t one = 1;
	if (write(f->stop_fd, &one, sizeof one) < 0) {
		/* the acceptor also wakes every second */
	}
	pthread_join(f->acceptor, NULL);
	pthread_mutex_lock(&f->lock);
	while (f->open)
		pthread_cond_wait(&f->cond, &f->lock);
	for (conn *c = f->conns; c; c = c->next)
		c->done = true;
	reap_locked(f);
	pthread_mutex_unlock(&f->lock);
	close(f->lfd);
	if (f->unix_sock)
		unlink(f->addr);
	close(f->stop_fd);
	pthread_mutex_destroy(&f->lock);
	pthread_cond_destroy(&f->cond);
	free(f);
}
