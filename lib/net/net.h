/* SPDX-License-Identifier: Apache-2.0
 * Sandbox networking, the owner's side (docs/network.md): starts a sandbox's
 * network supervisor (silo-net, net/silo-net.c) and talks to it over
 * RUNDIR/net.sock (lib/net/ctl.h): the guest's DNS queries go there, denial
 * records come back. Used by lib/core/sandbox.c for every provider, so
 * silod and embedded `silo run` behave the same.
 *
 * Process-wide settings (net_config_*) are made once at start by silod or
 * `silo run`, before any sandbox: the operator's hosts file and the
 * destinations no sandbox may reach (silod's own TCP listener).
 *
 * Threads: one reader per net_sb delivers DNS answers and denial records to
 * the callbacks; n->lock guards the socket for writers.
 */
#ifndef SILO_NET_NET_H
#define SILO_NET_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

typedef struct net_sb net_sb;

/* `--egress-hosts FILE`: read at each sandbox's start (the file may change;
 * a running sandbox keeps what it read). NULL clears. INVALID_CONFIG naming
 * the line when the file does not parse (checked here once). */
int net_config_hosts(const char *path, silo_error *err);
const char *net_config_hosts_path(void);
/* A destination no sandbox may reach ("127.0.0.1:7700"; "0.0.0.0:7700" =
 * that port on loopback and every host address). */
int net_config_never(const char *addr_port, silo_error *err);

typedef void (*net_dns_fn)(void *ud, uint32_t tag, const uint8_t *msg, size_t len);
typedef void (*net_denial_fn)(void *ud, const char *json_record);

typedef struct net_opts {
	const char *id;
	const char *rundir;
	char *const *egress;       /* the spec's network.egress */
	size_t n_egress;
	net_dns_fn on_dns;         /* from the reader thread */
	net_denial_fn on_denial;   /* from the reader thread */
	void *ud;
	uint32_t mtu;              /* VMs: the largest frame passt sends (0 = 1500) */
} net_opts;

/* VM providers: start silo-net with passt; *guest_fd is the other end of
 * passt's socket (QEMU's -netdev stream, silo-vmm's virtio-net), owned by the
 * caller. Call net_watch with the VMM's pid once it runs. */
int net_start_vm(const net_opts *o, int *guest_fd, net_sb **out, silo_error *err);
/* Namespace provider: start silo-net with pasta in the network namespace of
 * init_pid (watched too). */
int net_start_netns(const net_opts *o, pid_t init_pid, net_sb **out, silo_error *err);
/* silo-net exits when pid exits. */
int net_watch(net_sb *n, pid_t pid, silo_error *err);
/* After an owner restart: reconnect to a running silo-net. */
int net_reattach(const net_opts *o, net_sb **out, silo_error *err);
/* Forward a DNS query of the guest (dropped when it cannot be sent now). */
void net_dns_query(net_sb *n, uint32_t tag, const uint8_t *msg, size_t len);
/* Stop silo-net and its stack (SIGTERM, then SIGKILL) and free n. */
void net_stop(net_sb *n);
/* Disconnect without stopping (the owner exits, the sandbox lives on). */
void net_close(net_sb *n);
/* Anything of the network left for rundir (cleanup verification): appends
 * "silo-net pid N", "network stack pid N" to *out (strv). */
void net_residue(const char *rundir, char ***out);

/* Start time (clock ticks since boot, /proc/PID/stat field 22), 0 if gone. */
unsigned long long net_proc_start(pid_t pid);

#endif
