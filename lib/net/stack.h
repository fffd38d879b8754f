/* SPDX-License-Identifier: Apache-2.0
 * The host-side user-mode network stack of a sandbox (passt for VMs, pasta
 * for the namespace provider; docs/network.md) run under Silo's egress
 * filter, and the decisions on what it may connect to.
 *
 * stack_spawn forks, installs a seccomp filter in the child and execs the
 * stack. The filter (stacked under the stack's own) makes every connect()
 * a user notification (SECCOMP_RET_USER_NOTIF) answered by the caller
 * through stack_handle: the destination is read from the stack's memory,
 * decided, and for an allowed one the supervisor connects the stack's own
 * socket itself (a duplicate taken with pidfd_getfd) to the address it
 * checked, so a change of the stack's memory after the check cannot redirect
 * the connection. A denied one is connected to the caller's refuser (a
 * listener that resets every connection at once: the guest's connect
 * succeeds and the connection is reset before any byte moves), or, without
 * one, fails with ECONNREFUSED. (passt 2023.03 answers a refused connect
 * with a RST lacking the ACK bit, which a guest in SYN-SENT ignores and
 * retries for two minutes: hence the refuser; docs/network.md.) The filter also confines what could reach a destination
 * without connect(): sockets other than TCP/IPv4/IPv6, unix stream and
 * netlink are refused, so are TCP fast open (a connect inside sendto), TCP
 * repair, listen(), io_uring (connect without a syscall), ptrace and the
 * foreign ABIs (i386, x32: killed).
 */
#ifndef SILO_NET_STACK_H
#define SILO_NET_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "net/netpol.h"

/* argv[0] is the path to exec. fds[i] becomes fd 3+i in the child; its
 * stdout and stderr go to out_fd, stdin is /dev/null. unix_dgram: allow
 * AF_UNIX datagram sockets (pasta's if_nametoindex needs one; sendto with
 * an address stays refused). *notify_fd receives the filter's listener (only
 * the caller holds it). -1 with why on failure. */
int stack_spawn(char *const argv[], const int *fds, size_t n_fds, int out_fd, bool unix_dgram, pid_t *pid,
		int *notify_fd, char *why, size_t whylen);

/* A decision was made about a connect() of the stack and answered with
 * result (0 or the errno the stack saw; called on the thread of stack_handle). */
typedef void (*stack_decided_fn)(void *ud, uint32_t addr, uint16_t port, const netpol_verdict *v, int result);

/* Receive and answer one notification from notify_fd (readable). refuse_to:
 * where denied connections go (NULL: ECONNREFUSED). 0 handled, -1 on a fatal
 * error of the listener (errno set). */
struct sockaddr_in;
int stack_handle(int notify_fd, netpol *p, const struct sockaddr_in *refuse_to, stack_decided_fn cb, void *ud);

#endif
