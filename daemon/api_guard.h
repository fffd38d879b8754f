/* SPDX-License-Identifier: Apache-2.0
 * Connection guard for silod's TCP listener and the E2B server (docs/security.md,
 * "Slowloris"; the drain after a refusal decided on a request head, for every
 * listener, is at the end):
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

/* A refusal decided on a request head (401, 403, 404, 413 by Content-Length,
 * 415, ...) is answered at once, before one byte of the body is read, and the
 * connection closes; nothing of the body is ever stored. Closing a socket with
 * unread bytes makes the kernel reset the connection, and a client still
 * sending its body (most do not wait for 100 Continue) then fails on the
 * reset instead of reading the reply (undici: "fetch failed"). So, from the
 * NOTIFY_COMPLETED callback of such a request (the reply is out), this shuts
 * our side down (TLS close_notify, then FIN: the client reads the reply and
 * the end of the stream) and reads and discards what the client still sends
 * until it closes: at most CONN_DRAIN_MAX bytes (and their framing) within
 * CONN_DRAIN_MS, on the connection's own thread. Only for a declared body of
 * at most CONN_DRAIN_MAX or a chunked one; a larger one is closed at once.
 * Works on TCP and unix sockets; the caller owns the body budget, which
 * drained bytes never touch. */
#define CONN_DRAIN_MAX (1u << 20)
#define CONN_DRAIN_MS 2000
void conn_drain_refused(struct MHD_Connection *c, enum MHD_RequestTerminationCode toe);

/* {"open", "unauthenticated", "header_timeouts", "evicted", "refused",
 *  "header_timeout_s", "max_connections", "max_unauthenticated"} for GET /v1/health. */
json_t *conn_guard_json(conn_guard *g);

#endif
