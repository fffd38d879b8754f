/* SPDX-License-Identifier: Apache-2.0
 * A sandbox's network, provider-independent (docs/network.md): the
 * supervisor (silo-net, through lib/net/net.c) is started around the
 * provider's spawn according to provider_ops.net, the guest is configured
 * over the agent channel once it answers, the guest's DNS queries go from
 * the channel to the supervisor and back, and denial records go to
 * sb->on_net (the manager audits, counts and publishes them).
 *
 * Order: prepare (STREAM: silo-net + passt, sb->net_fd) -> provider spawn ->
 * spawned (STREAM: close our end, watch the VMM; NETNS: silo-net + pasta in
 * the namespace of sb->pid) -> agent ready -> ready (net message). Stop
 * before the provider terminates, so the reader thread is gone before the
 * channel is.
 */
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "core/sandbox.h"
#include "net/ctl.h"
#include "net/net.h"


static void on_denial(void *ud, const char *json)
{
	sandbox *sb = ud;
	if (sb->on_net)
		sb->on_net(sb->on_net_ud, sb, json);
	else
		log_warn("%s: egress denied: %s", sb->id, json);
}

static void on_dns_answer(void *ud, uint32_t tag, const uint8_t *msg, size_t len)
{
	sandbox *sb = ud;
	chan *c = sb->ch;
	if (c)
		chan_dns_reply(c, tag, msg, len);
}

void sandbox_net_on_dns(void *ud, uint32_t tag, const uint8_t *msg, size_t len)
{
	sandbox *sb = ud;
	if (sb->net)
		net_dns_query(sb->net, tag, msg, len);
}

static net_opts opts_of(sandbox *sb)
{
	return (net_opts){.id = sb->id, .rundir = sb->rundir, .egress = sb->spec.egress, .n_egress = sb->spec.n_egress,
			  .on_dns = on_dns_answer, .on_denial = on_denial, .ud = sb};
}

int sandbox_net_prepare(sandbox *sb, silo_error *err)
{
	sb->net_fd = -1;
	if (!sb->spec.network)
		return 0;
	if (sb->ops->net == PROVIDER_NET_NONE)
		return silo_fail_vm(err, SILO_ERR_NOT_SUPPORTED, 0, sb->id,
				    "network: the %s provider has no guest networking (use qemu or namespace)", sb->ops->name);
	if (sb->ops->net != PROVIDER_NET_STREAM)
		return 0;
	net_opts o = opts_of(sb);
	o.mtu = sb->ops->net_mtu;
	return net_start_vm(&o, &sb->net_fd, &sb->net, err);
}

int sandbox_net_spawned(sandbox *sb, silo_error *err)
{
	if (sb->net_fd >= 0) {
		close(sb->net_fd);   /* the VMM holds its own copy now */
		sb->net_fd = -1;
	}
	if (!sb->spec.network)
		return 0;
	if (sb->ops->net == PROVIDER_NET_STREAM)
		return net_watch(sb->net, sb->pid, err);
	net_opts o = opts_of(sb);
	return net_start_netns(&o, sb->pid, &sb->net, err);
}

int sandbox_net_ready(sandbox *sb, silo_error *err)
{
	if (!sb->spec.network)
		return 0;
	char cfg[64];
	snprintf(cfg, sizeof cfg, "%s/%d %s", NET_GUEST_ADDR, NET_GUEST_PREFIX, NET_GATEWAY);
	bool stream = sb->ops->net == PROVIDER_NET_STREAM;
	if (chan_net_config(sb->ch, cfg, sb->ops->net_mtu ? sb->ops->net_mtu : 1500, stream, err) < 0) {
		silo_error_prefix(err, "network: configuring the guest");
		return -1;
	}
	return 0;
}

int sandbox_net_reattach(sandbox *sb, silo_error *err)
{
	sb->net_fd = -1;
	if (!sb->spec.network)
		return 0;
	net_opts o = opts_of(sb);
	return net_reattach(&o, &sb->net, err);
}

void sandbox_net_stop(sandbox *sb)
{
	if (sb->net_fd >= 0) {
		close(sb->net_fd);
		sb->net_fd = -1;
	}
	net_stop(sb->net);
	sb->net = NULL;
}
