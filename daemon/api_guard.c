/* SPDX-License-Identifier: Apache-2.0
 * Connection guard for the TCP listener (see api_guard.h for the rules).
 *
 * Locking: g->lock guards the list of unauthenticated connections (oldest
 * first, so the deadline scan stops at the first young one), every entry's
 * flags and the counters. An entry lives from the STARTED notification to
 * the CLOSED one; it is on the list only while unauthenticated.
 */
#include "daemon/api_guard.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/util.h"

#define REAP_INTERVAL_MS 100

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
	unsigned max_unauth;
	guard_conn *head, *tail;
	unsigned n_open, n_unauth;        /* n_unauth: listed and not dropped */
	uint64_t n_timeouts, n_evicted;
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
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += REAP_INTERVAL_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&g->wake, &g->lock, &ts);
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

int conn_guard_start(const conn_guard_config *cfg, conn_guard **out, silo_error *err)
{
	conn_guard *g = xcalloc(1, sizeof *g);
	g->timeout_ns = (uint64_t)(cfg->header_timeout_s ? cfg->header_timeout_s : 10) * 1000000000ull;
	g->max_unauth = cfg->max_unauthenticated ? cfg->max_unauthenticated : 256;
	pthread_mutex_init(&g->lock, NULL);
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&g->wake, &a);
	pthread_condattr_destroy(&a);
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
	pthread_mutex_lock(&g->lock);
	g->stopping = true;
	pthread_cond_broadcast(&g->wake);
	pthread_mutex_unlock(&g->lock);
	pthread_join(g->reaper, NULL);
	/* The listener is stopped: every connection got its CLOSED notification. */
	pthread_cond_destroy(&g->wake);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

enum MHD_Result conn_guard_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	(void)addr;
	(void)addrlen;
	conn_guard *g = cls;
	pthread_mutex_lock(&g->lock);
	/* Full: the oldest unauthenticated connection makes room. Refusing the new
	 * one instead would let whoever holds the slots keep every client out. */
	if (g->n_unauth >= g->max_unauth) {
		for (guard_conn *e = g->head; e; e = e->next) {
			if (!e->dropped) {
				drop_locked(g, e);
				g->n_evicted++;
				break;
			}
		}
	}
	pthread_mutex_unlock(&g->lock);
	return MHD_YES;
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

json_t *conn_guard_json(conn_guard *g)
{
	pthread_mutex_lock(&g->lock);
	json_t *o = json_pack("{s:i,s:i,s:I,s:I,s:I,s:i}", "open", (int)g->n_open, "unauthenticated", (int)g->n_unauth,
			      "header_timeouts", (json_int_t)g->n_timeouts, "evicted", (json_int_t)g->n_evicted,
			      "header_timeout_s", (json_int_t)(g->timeout_ns / 1000000000ull), "max_unauthenticated",
			      (int)g->max_unauth);
	pthread_mutex_unlock(&g->lock);
	return o;
}
