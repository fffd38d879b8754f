/* SPDX-License-Identifier: Apache-2.0
 * The agent's part of sandbox networking (docs/network.md): configure the
 * guest's interface, the DNS stub on 127.0.0.1:53 (UDP and TCP) whose
 * queries go to the host over the channel (dnsq/dnsr), and connections for
 * port forwarding (tcp tasks). Enforcement is on the host: nothing here
 * decides what the sandbox may reach.
 */
#ifndef SILO_AGENT_NET_H
#define SILO_AGENT_NET_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ANET_MAX_FDS 18   /* udp, tcp listener, 16 tcp clients */

/* net message: "ADDR/PREFIX GATEWAY"; configure eth0 (VM) or wait until the
 * host's stack has (namespace). Starts the DNS stub and points
 * /etc/resolv.conf at it. 0 or an errno with msg. */
int anet_configure(const char *addr_gw, uint32_t mtu, bool configure_if, char *msg, size_t msglen);

/* Sends one query to the host (agent.c: a dnsq frame). */
typedef void (*anet_send_fn)(uint32_t tag, const uint8_t *q, size_t len);
/* Fill up to ANET_MAX_FDS pollfds; returns how many. */
int anet_pollfds(struct pollfd *p);
/* After poll: handle the n entries anet_pollfds filled. */
void anet_handle(const struct pollfd *p, int n, anet_send_fn send);
/* A dnsr frame from the host. */
void anet_reply(uint32_t tag, const uint8_t *d, size_t len);

/* Connect to addr (NULL: 127.0.0.1) : port in the guest for a tcp task;
 * a nonblocking connected socket, or -errno. */
int anet_tcp_connect(const char *addr, uint32_t port);

#endif
