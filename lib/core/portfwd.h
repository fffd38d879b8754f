/* SPDX-License-Identifier: Apache-2.0
 * Port forwarding into a sandbox (docs/network.md "Port forwarding"): a
 * listener on the host (127.0.0.1:PORT or a unix socket) whose every
 * connection becomes a tcp task on the agent channel to 127.0.0.1:GUEST_PORT
 * inside the sandbox. It needs no guest network at all (every provider, with
 * or without network = true): the bytes travel over the channel with its
 * per-task credit windows, so a slow client slows the guest's server down and
 * nothing is buffered without bound.
 *
 * Threads: one acceptor per forward; two per connection (client -> guest,
 * guest -> client). fwd_stop closes the listener, resets every connection
 * and joins all threads; the caller keeps the channel open until then.
 * At most PORTFWD_MAX_CONNS connections per forward (more wait in the
 * listener's backlog).
 */
#ifndef SILO_CORE_PORTFWD_H
#define SILO_CORE_PORTFWD_H

#include <stdint.h>

#include "common/error.h"
#include "core/channel.h"

#define PORTFWD_MAX_CONNS 64

typedef struct portfwd portfwd;

/* listen: "127.0.0.1:PORT" (PORT 0 = any free one; loopback addresses only)
 * or NULL with unix_path: a unix socket created there (mode 0600, must not
 * exist). */
int portfwd_start(chan *ch, const char *vm_id, uint16_t guest_port, const char *listen, const char *unix_path,
		  portfwd **out, silo_error *err);
/* "127.0.0.1:34567" or the unix path. */
const char *portfwd_address(const portfwd *f);
uint16_t portfwd_guest_port(const portfwd *f);
/* Connections accepted so far and open now. */
void portfwd_counts(portfwd *f, uint64_t *total, unsigned *open);
/* Stop: close the listener (and remove a unix socket), reset every open
 * connection, join every thread, free. */
void portfwd_stop(portfwd *f);

#endif
