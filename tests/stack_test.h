/* SPDX-License-Identifier: Apache-2.0
 * Serving the connect filter of a process started by stack_spawn, for the
 * network test and bench/network: stack_pump answers its notifications with
 * policy P until its output pipe closes (or nothing happens for IDLE_MS) and
 * keeps what it wrote.
 */
#ifndef SILO_TESTS_STACK_TEST_H
#define SILO_TESTS_STACK_TEST_H

#include <poll.h>
#include <unistd.h>

#include "net/stack.h"

/* Serve NFD with P (CB, UD: stack_handle's) while reading the process's output
 * pipe OUT into BUF (at most CAP - 1 bytes, NUL-terminated). Returns how many
 * notifications stack_handle failed to answer. */
static inline int stack_pump(int nfd, int out, netpol *p, stack_decided_fn cb, void *ud, int idle_ms, char *buf,
			     size_t cap)
{
	size_t len = 0;
	int failed = 0;
	for (;;) {
		struct pollfd pf[2] = {{.fd = nfd, .events = POLLIN}, {.fd = out, .events = POLLIN}};
		if (poll(pf, 2, idle_ms) <= 0)
			break;
		if (pf[0].revents & POLLIN)
			failed += stack_handle(nfd, p, NULL, cb, ud) != 0;
		if (pf[1].revents & (POLLIN | POLLHUP)) {
			ssize_t k = read(out, buf + len, cap - 1 - len);
			if (k <= 0)
				break;
			len += (size_t)k;
		}
	}
	buf[len] = '\0';
	return failed;
}

#endif
