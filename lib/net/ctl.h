/* SPDX-License-Identifier: Apache-2.0
 * The control socket between a sandbox's owner (silod or embedded `silo run`,
 * lib/net/net.c) and its network supervisor (silo-net, net/silo-net.c):
 * RUNDIR/net.sock, a unix stream socket in the sandbox's 0700 run directory,
 * one owner connection at a time (a new one replaces the old: silod restart).
 *
 * Frame: u32 big-endian length of what follows, u8 type, payload.
 *
 *   'Q' owner -> net   u32 tag, DNS query from the guest (<= DNS_MAX_MSG)
 *   'R' net -> owner   u32 tag, DNS response for the guest
 *   'W' owner -> net   u32 pid: exit when that process exits (the VMM or init)
 *   'D' net -> owner   JSON denial record (docs/network.md "Denials")
 *
 * Frames longer than CTL_MAX_FRAME close the connection.
 */
#ifndef SILO_NET_CTL_H
#define SILO_NET_CTL_H

#include <stdint.h>

#define CTL_MAX_FRAME 8192u
#define CTL_SOCK "net.sock"
#define CTL_PIDFILE "net.pid"
#define CTL_LOG "net.log"
#define CTL_LOG_MAX (256u * 1024u)

/* Guest addressing (docs/network.md "Addresses"): the same in every sandbox. */
#define NET_GUEST_ADDR "10.0.2.15"
#define NET_GUEST_PREFIX 24
#define NET_GATEWAY "10.0.2.2"
#define NET_GATEWAY_ADDR 0x0a000202u

#endif
