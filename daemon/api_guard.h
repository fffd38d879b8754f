/* SPDX-License-Identifier: Apache-2.0
 * Connection guard for silod's TCP listener (docs/security.md, "Slowloris"):
 * keeps clients that never finish an authenticated request from holding the
 * listener. A connection is "unauthenticated" from accept until the access
 * handler has seen a complete request head with a valid bearer token. Then:
 *
 *   - header deadline: an unauthenticated connection must complete its
 *     request (head and body) within header_timeout_s of accept, however
 *     steadily it trickles bytes; at the deadline its socket is shut down;
 *   - unauthenticated cap: at most max_unauthenticated of them at once; a new
 *     connection beyond that drops an old one instead of being refused (of
 *     the oldest few, the one that has sent the least per second, never one
 *     whose complete head is waiting to be read), so a flood of half-open
 *     connections cannot lock clients out;
 *   - total cap: max_connections live ones; a new connection beyond it first
 *     drops an unauthenticated one, and is refused only if there is none;
 *   - the per-address cap is libmicrohttpd's own PER_IP_CONNECTION_LIMIT,
 *     set by the caller next to these callbacks.
 *
 * Authenticated connections are left alone (libmicrohttpd's idle timeout
 * applies). The guard never closes a socket itself: it shuts it down, which
 * wakes the connection's thread, and libmicrohttpd closes it. Entries leave
 * the table in the CLOSED notification, which libmicrohttpd makes before it
 * closes the file descriptor; one mutex guards the table, so a shutdown
 * never reaches a descriptor number that was already reused.
 */
#ifndef SILO_DAEMON_API_GUARD_H
#define SILO_DAEMON_API_GUARD_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "common/error.h"

typedef struct conn_guard conn_guard;

typedef struct conn_guard_config {
	unsigned header_timeout_s;     /* 0 = 10 */
	unsigned max_unauthenticated;  /* 0 = 256 */
	/* live connections (not being dropped) at once, refused beyond; 0 = twice
	 * max_unauthenticated. libmicrohttpd's CONNECTION_LIMIT must leave room
	 * above it for dropped connections that are still winding down. */
	unsigned max_connections;
} conn_guard_config;

int conn_guard_start(const conn_guard_config *cfg, conn_guard **out, silo_error *err);
/* After MHD_stop_daemon of the listener it guards. */
void conn_guard_stop(conn_guard *g);

/* libmicrohttpd callbacks, cls = the guard: the accept policy (apc argument
 * of MHD_start_daemon) and MHD_OPTION_NOTIFY_CONNECTION. */
enum MHD_Result conn_guard_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen);
void conn_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
		       enum MHD_ConnectionNotificationCode code);
/* From the access handler, first call of a request: the head carried a valid
 * token. The connection is exempt from now on. */
void conn_guard_authenticated(struct MHD_Connection *c);

/* {"open", "unauthenticated", "header_timeouts", "evicted", "refused",
 *  "header_timeout_s", "max_connections", "max_unauthenticated"} for GET /v1/health. */
json_t *conn_guard_json(conn_guard *g);

#endif
