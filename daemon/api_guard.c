/* SPDX-License-Identifier: Apache-2.0
 * Connection guard for the TCP listeners, and the drain after a refusal
 * decided on a request head (see api_guard.h for the rules).
 *
 * Locking: g->lock guards the list of unauthenticated connections (oldest
 * first, so the deadline scan stops at the first young one), every entry's
 * flags and the counters. An entry lives from the STARTED notification to
 * the CLOSED one; it is on the list only while unauthenticated.
 */
#include "daemon/api_guard.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <linux/tcp.h>   /* struct tcp_info with tcpi_bytes_received (glibc's lacks it) */
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/util.h"

#define REAP_INTERVAL_MS 100
#define VICTIM_SAMPLE 8      /* oldest unauthenticated connections weighed for eviction */

typedef struct guard_conn {
	struct guard_conn *prev, *next;   /* the unauthenticated list */
	struct conn_guard *g;
	int fd;
	uint64_t start_ns;
	bool listed;                      /* unauthenticated, on the list */
	bool dropped;                     /* shut down by us; waiting for CLOSED */
} guard_conn;

struct conn_guard {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t reaper;
	bool stopping;
	uint64_t timeout_ns;
	unsigned max_unauth, max_live;
	guard_conn *head, *tail;
	unsigned n_open, n_unauth;        /* n_unauth: listed and not dropped */
	unsigned n_dropping;              /* dropped, CLOSED not yet notified */
	uint64_t n_timeouts, n_evicted, n_refused;
};

static void unlist_locked(conn_guard *g, guard_conn *e)
{
	if (!e->listed)
		return;
	if (e->prev)
		e->prev->next = e->next;
	else
		g->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		g->tail = e->prev;
	e->prev = e->next = NULL;
	e->listed = false;
	if (!e->dropped)
		g->n_unauth--;
}

/* Shut the socket down; libmicrohttpd's thread for it sees EOF and closes it. */
static void drop_locked(conn_guard *g, guard_conn *e)
{
	e->dropped = true;
	g->n_unauth--;
	g->n_dropping++;
	shutdown(e->fd, SHUT_RDWR);
}

static void *reaper_main(void *arg)
{
	conn_guard *g = arg;
	pthread_mutex_lock(&g->lock);
	while (!g->stopping) {
		uint64_t now = now_mono_ns();
		for (guard_conn *e = g->head; e && now - e->start_ns >= g->timeout_ns; e = e->next) {
			if (!e->dropped) {
				drop_locked(g, e);
				g->n_timeouts++;
			}
		}
		cond_wait_ms(&g->wake, &g->lock, REAP_INTERVAL_MS);
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

int conn_guard_start(const conn_guard_config *cfg, conn_guard **out, silo_error *err)
{
	conn_guard *g = xcalloc(1, sizeof *g);
	g->timeout_ns = (uint64_t)(cfg->header_timeout_s ? cfg->header_timeout_s : 10) * 1000000000ull;
	g->max_unauth = cfg->max_unauthenticated ? cfg->max_unauthenticated : 256;
	g->max_live = cfg->max_connections ? cfg->max_connections : 2 * g->max_unauth;
	pthread_mutex_init(&g->lock, NULL);
	cond_init_monotonic(&g->wake);
	int rc = pthread_create(&g->reaper, NULL, reaper_main, g);
	if (rc != 0) {
		pthread_cond_destroy(&g->wake);
		pthread_mutex_destroy(&g->lock);
		free(g);
		return silo_fail(err, SILO_ERR_INTERNAL, rc, "connection guard thread");
	}
	*out = g;
	return 0;
}

void conn_guard_stop(conn_guard *g)
{
	if (!g)
		return;
	signal_stop(&g->lock, &g->wake, &g->stopping);
	pthread_join(g->reaper, NULL);
	/* The listener is stopped: every connection got its CLOSED notification. */
	pthread_cond_destroy(&g->wake);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

/* Has the peer already sent a complete request head that libmicrohttpd has
 * not read yet? Such a connection is about to be authenticated (or refused)
 * and must not lose its slot to a flood: only its thread has not run yet.
 * MSG_PEEK leaves the bytes for libmicrohttpd. */
static bool head_waiting(int fd)
{
	char buf[8192];
	ssize_t n = recv(fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
	return n >= 4 && memmem(buf, (size_t)n, "\r\n\r\n", 4) != NULL;
}

/* Bytes the peer has sent per second of the connection's age (the kernel's
 * count). A client sends its request in one go; a slow client trickles, and
 * cannot make up for it with bulk: a complete head is answered (401 closes),
 * an endless one hits libmicrohttpd's header size limit. */
static double recv_rate(const guard_conn *e, uint64_t now)
{
	struct tcp_info ti;
	socklen_t l = sizeof ti;
	memset(&ti, 0, sizeof ti);
	if (getsockopt(e->fd, IPPROTO_TCP, TCP_INFO, &ti, &l) < 0)
		return 0;
	return (double)ti.tcpi_bytes_received / ((double)(now - e->start_ns) / 1e9 + 1e-3);
}

/* The connection to drop for a new one: of the VICTIM_SAMPLE oldest
 * unauthenticated ones that are not holding a complete head yet to be read,
 * the one that has sent the least per second; else the oldest; NULL if none.
 * Oldest first gives a new client the longest time to be served; the rate
 * keeps one whose request was read but not yet handled (its thread has not
 * run) from losing its slot to a flood. */
static guard_conn *victim_locked(conn_guard *g)
{
	uint64_t now = now_mono_ns();
	guard_conn *oldest = NULL, *best = NULL;
	double best_rate = 0;
	int seen = 0;
	for (guard_conn *e = g->head; e && seen < VICTIM_SAMPLE; e = e->next) {
		if (e->dropped)
			continue;
		if (!oldest)
			oldest = e;
		if (head_waiting(e->fd))
			continue;
		seen++;
		double r = recv_rate(e, now);
		if (!best || r < best_rate) {
			best = e;
			best_rate = r;
		}
	}
	return best ? best : oldest;
}

enum MHD_Result conn_guard_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	(void)addr;
	(void)addrlen;
	conn_guard *g = cls;
	pthread_mutex_lock(&g->lock);
	/* Full: an unauthenticated connection makes room. Refusing the new one
	 * instead would let whoever holds the slots keep every client out. Live
	 * connections are those not yet dropped: a dropped one still counts for
	 * libmicrohttpd until its thread has wound down, which the caller's
	 * CONNECTION_LIMIT leaves room for. */
	unsigned live = g->n_open - g->n_dropping;
	if (g->n_unauth >= g->max_unauth || (live >= g->max_live && g->n_unauth)) {
		guard_conn *v = victim_locked(g);
		if (v) {
			drop_locked(g, v);
			g->n_evicted++;
			live--;
		}
	}
	enum MHD_Result ok = live < g->max_live ? MHD_YES : MHD_NO;
	if (ok == MHD_NO)
		g->n_refused++;
	pthread_mutex_unlock(&g->lock);
	return ok;
}

void conn_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
		       enum MHD_ConnectionNotificationCode code)
{
	conn_guard *g = cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		guard_conn *e = xcalloc(1, sizeof *e);
		e->g = g;
		e->fd = ci ? ci->connect_fd : -1;
		e->start_ns = now_mono_ns();
		pthread_mutex_lock(&g->lock);
		g->n_open++;
		if (e->fd >= 0) {
			e->listed = true;
			e->prev = g->tail;
			if (g->tail)
				g->tail->next = e;
			else
				g->head = e;
			g->tail = e;
			g->n_unauth++;
		}
		pthread_mutex_unlock(&g->lock);
		*socket_context = e;
		return;
	}
	guard_conn *e = *socket_context;
	if (!e)
		return;
	pthread_mutex_lock(&g->lock);
	unlist_locked(g, e);
	g->n_open--;
	if (e->dropped)
		g->n_dropping--;
	pthread_mutex_unlock(&g->lock);
	free(e);
	*socket_context = NULL;
}

void conn_guard_authenticated(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	guard_conn *e = ci ? ci->socket_context : NULL;
	if (!e)
		return;
	pthread_mutex_lock(&e->g->lock);
	unlist_locked(e->g, e);
	pthread_mutex_unlock(&e->g->lock);
}

/* ---- refusals decided on the head (api_guard.h) ---- */

#define DRAIN_SLACK (64u << 10)   /* chunk and TLS record framing around CONN_DRAIN_MAX body bytes */

void conn_drain_refused(struct MHD_Connection *c, enum MHD_RequestTerminationCode toe)
{
	if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
		return;   /* the reply did not go out: nothing to save */
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	uint64_t declared = cl ? strtoull(cl, NULL, 10) : 0;
	if ((!te && declared == 0) || declared > CONN_DRAIN_MAX)
		return;
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!ci)
		return;
	int fd = ci->connect_fd;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (ci && ci->tls_session)
		(void)gnutls_bye((gnutls_session_t)ci->tls_session, GNUTLS_SHUT_WR);
	shutdown(fd, SHUT_WR);
	char buf[16384];
	uint64_t left = (uint64_t)CONN_DRAIN_MAX + DRAIN_SLACK;
	uint64_t deadline = now_mono_ns() + CONN_DRAIN_MS * 1000000ull;
	while (left) {
		uint64_t now = now_mono_ns();
		if (now >= deadline)
			return;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int rc = poll(&p, 1, (int)((deadline - now + 999999) / 1000000));
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return;
		ssize_t n = recv(fd, buf, MIN(sizeof buf, left), MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			return;   /* the client closed (or reset): done */
		left -= (uint64_t)n;
	}
}

json_t *conn_guard_json(conn_guard *g)
{
	pthread_mutex_lock(&g->lock);
	json_t *o = json_pack("{s:i,s:i,s:I,s:I,s:I,s:I,s:i,s:i}", "open", (int)(g->n_open - g->n_dropping),
			      "unauthenticated", (int)g->n_unauth, "header_timeouts", (json_int_t)g->n_timeouts, "evicted",
			      (json_int_t)g->n_evicted, "refused", (json_int_t)g->n_refused, "header_timeout_s",
			      (json_int_t)(g->timeout_ns / 1000000000ull), "max_connections", (int)g->max_live,
			      "max_unauthenticated", (int)g->max_unauth);
	pthread_mutex_unlock(&g->lock);
	return o;
}
