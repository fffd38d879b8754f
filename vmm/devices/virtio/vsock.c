/* SPDX-License-Identifier: Apache-2.0
 * virtio-vsock emulated in userspace with Firecracker's hybrid scheme
 * (docs/vmm.md): the host connects to the unix socket uds_path and sends
 * "CONNECT <port>\n"; when the guest accepts, we answer "OK <host_port>\n" and
 * then relay bytes. A guest connection to CID 2 port P is relayed to the unix
 * socket "<uds_path>_P". Stream sockets only; credit-based flow control.
 *
 * Locking: all state (and the virtqueues) is touched under env.lock, which is
 * the bus lock when the device sits behind virtio-mmio.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/util.h"
#include "virtio.h"
#include "../../files.h"

#define OP_REQUEST 1
#define OP_RESPONSE 2
#define OP_RST 3
#define OP_SHUTDOWN 4
#define OP_RW 5
#define OP_CREDIT_UPDATE 6
#define OP_CREDIT_REQUEST 7
#define TYPE_STREAM 1
#define HOST_CID 2
#define MAX_CONNS 64
#define MAX_PENDING 256
#define BUF_ALLOC (256u * 1024)
#define MAX_PKT 65536

typedef struct __attribute__((packed)) vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
} vsock_hdr;

enum conn_state { C_FREE, C_HANDSHAKE, C_CONNECTING, C_ESTABLISHED, C_CLOSING };

typedef struct conn {
	enum conn_state state;
	int fd;
	uint32_t local_port, peer_port;
	char line[32];
	size_t line_len;
	uint32_t peer_buf_alloc, peer_fwd_cnt;
	uint32_t tx_cnt;        /* bytes sent to the guest */
	uint32_t fwd_cnt;       /* bytes from the guest written to the socket */
	uint32_t last_fwd_sent; /* fwd_cnt last advertised */
	bool host_eof;
} conn;

struct vsock_dev {
	virtio_io io;        /* env, and the thread woken when the guest gave rx buffers / tx work */
	char uds[108];       /* host side: where the host connects (ours to unlink if bound_here) */
	char connect_to[108]; /* guest-initiated connections go to <connect_to>_PORT (in-jail name) */
	bool bound_here;
	uint64_t guest_cid;
	int listen_fd;
	uint32_t next_port;
	conn conns[MAX_CONNS];
	vsock_hdr pending[MAX_PENDING];
	size_t npending;
	uint8_t buf[MAX_PKT];
	virtq_chain chain;
	uint64_t stats_rx, stats_tx, stats_rst;
};

static void queue_ctrl(vsock_dev *d, const conn *c, uint16_t op, uint32_t flags, uint32_t local, uint32_t peer)
{
	if (d->npending >= MAX_PENDING)
		return; /* the guest is not draining rx: drop control traffic rather than grow */
	vsock_hdr h = {.src_cid = HOST_CID, .dst_cid = d->guest_cid, .src_port = local, .dst_port = peer,
		       .type = TYPE_STREAM, .op = op, .flags = flags, .buf_alloc = BUF_ALLOC,
		       .fwd_cnt = c ? c->fwd_cnt : 0};
	d->pending[d->npending++] = h;
	if (op == OP_RST)
		d->stats_rst++;
}

static conn *find_conn(vsock_dev *d, uint32_t local, uint32_t peer)
{
	for (int i = 0; i < MAX_CONNS; i++) {
		conn *c = &d->conns[i];
		if (c->state >= C_CONNECTING && c->local_port == local && c->peer_port == peer)
			return c;
	}
	return NULL;
}

static conn *new_conn(vsock_dev *d, int fd)
{
	for (int i = 0; i < MAX_CONNS; i++)
		if (d->conns[i].state == C_FREE) {
			conn *c = &d->conns[i];
			memset(c, 0, sizeof *c);
			c->fd = fd;
			return c;
		}
	return NULL;
}

static void close_conn(conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->state = C_FREE;
}

/* Guest -> host: one packet from the tx queue. */
static void handle_guest_pkt(vsock_dev *d, const vsock_hdr *h, const virtq_chain *ch)
{
	if (h->type != TYPE_STREAM || h->dst_cid != HOST_CID || h->src_cid != d->guest_cid) {
		if (h->op != OP_RST)
			queue_ctrl(d, NULL, OP_RST, 0, h->dst_port, h->src_port);
		return;
	}
	conn *c = find_conn(d, h->dst_port, h->src_port);
	if (c) {
		c->peer_buf_alloc = h->buf_alloc;
		c->peer_fwd_cnt = h->fwd_cnt;
	}
	switch (h->op) {
	case OP_REQUEST: {
		if (c) {
			queue_ctrl(d, c, OP_RST, 0, h->dst_port, h->src_port);
			return;
		}
		char path[160];
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		int n = snprintf(path, sizeof path, "%s_%u", d->connect_to, h->dst_port);
		int fd = -1;
		if (n > 0 && (size_t)n < sizeof sa.sun_path) {
			memcpy(sa.sun_path, path, (size_t)n + 1);
			fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
				close(fd);
				fd = -1;
			}
		}
		conn *nc = fd >= 0 ? new_conn(d, fd) : NULL;
		if (!nc) {
			if (fd >= 0)
				close(fd);
			queue_ctrl(d, NULL, OP_RST, 0, h->dst_port, h->src_port);
			return;
		}
		nc->state = C_ESTABLISHED;
		nc->local_port = h->dst_port;
		nc->peer_port = h->src_port;
		nc->peer_buf_alloc = h->buf_alloc;
		nc->peer_fwd_cnt = h->fwd_cnt;
		queue_ctrl(d, nc, OP_RESPONSE, 0, nc->local_port, nc->peer_port);
		return;
	}
	case OP_RESPONSE:
		if (!c || c->state != C_CONNECTING) {
			queue_ctrl(d, NULL, OP_RST, 0, h->dst_port, h->src_port);
			return;
		}
		c->state = C_ESTABLISHED;
		char ok[32];
		int n = snprintf(ok, sizeof ok, "OK %u\n", c->local_port);
		if (write_all(c->fd, ok, (size_t)n) < 0) {
			queue_ctrl(d, c, OP_RST, 0, c->local_port, c->peer_port);
			close_conn(c);
		}
		return;
	case OP_RW: {
		if (!c || c->state < C_ESTABLISHED) {
			queue_ctrl(d, NULL, OP_RST, 0, h->dst_port, h->src_port);
			return;
		}
		uint64_t len = h->len;
		if (len > ch->readable - sizeof *h || len > MAX_PKT) {
			queue_ctrl(d, c, OP_RST, 0, c->local_port, c->peer_port);
			close_conn(c);
			return;
		}
		virtq_chain_read(&d->io.env.mem[0], ch, sizeof *h, d->buf, len);
		if (write_all(c->fd, d->buf, len) < 0) {
			queue_ctrl(d, c, OP_RST, 0, c->local_port, c->peer_port);
			close_conn(c);
			return;
		}
		c->fwd_cnt += (uint32_t)len;
		d->stats_tx += len;
		if (c->fwd_cnt - c->last_fwd_sent >= BUF_ALLOC / 4) {
			c->last_fwd_sent = c->fwd_cnt;
			queue_ctrl(d, c, OP_CREDIT_UPDATE, 0, c->local_port, c->peer_port);
		}
		return;
	}
	case OP_CREDIT_REQUEST:
		if (c)
			queue_ctrl(d, c, OP_CREDIT_UPDATE, 0, c->local_port, c->peer_port);
		return;
	case OP_CREDIT_UPDATE:
		return; /* credit recorded above */
	case OP_SHUTDOWN:
	case OP_RST:
		if (c) {
			if (h->op == OP_SHUTDOWN)
				queue_ctrl(d, c, OP_RST, 0, c->local_port, c->peer_port);
			close_conn(c);
		}
		return;
	default:
		queue_ctrl(d, c, OP_RST, 0, h->dst_port, h->src_port);
		if (c)
			close_conn(c);
		return;
	}
}

/* Fill guest rx buffers: control packets first, then data within the guest's credit. */
static bool fill_rx(vsock_dev *d)
{
	const guest_mem *m = d->io.env.mem;
	virtq *q = d->io.env.rxq;
	bool used = false;
	while (d->npending) {
		int r = virtq_pop(m, q, &d->chain, NULL);
		if (r <= 0)
			return used;
		vsock_hdr h = d->pending[0];
		memmove(d->pending, d->pending + 1, (d->npending - 1) * sizeof *d->pending);
		d->npending--;
		uint32_t w = (uint32_t)virtq_chain_write(m, &d->chain, 0, &h, sizeof h);
		virtq_push(m, q, d->chain.head, w);
		used = true;
	}
	for (int i = 0; i < MAX_CONNS; i++) {
		conn *c = &d->conns[i];
		if (c->state != C_ESTABLISHED || c->host_eof)
			continue;
		uint32_t credit = c->peer_buf_alloc - (c->tx_cnt - c->peer_fwd_cnt);
		if (credit == 0 || credit > c->peer_buf_alloc)
			continue;
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		if (poll(&p, 1, 0) <= 0)
			continue;
		int r = virtq_pop(m, q, &d->chain, NULL);
		if (r <= 0)
			return used;
		uint64_t room = d->chain.writable > sizeof(vsock_hdr) ? d->chain.writable - sizeof(vsock_hdr) : 0;
		if (room > credit)
			room = credit;
		if (room > MAX_PKT)
			room = MAX_PKT;
		ssize_t n = room ? recv(c->fd, d->buf, room, MSG_DONTWAIT) : -1;
		vsock_hdr h = {.src_cid = HOST_CID, .dst_cid = d->guest_cid, .src_port = c->local_port,
			       .dst_port = c->peer_port, .type = TYPE_STREAM, .buf_alloc = BUF_ALLOC,
			       .fwd_cnt = c->fwd_cnt};
		if (n > 0) {
			h.op = OP_RW;
			h.len = (uint32_t)n;
			c->tx_cnt += (uint32_t)n;
			d->stats_rx += (uint64_t)n;
			virtq_chain_write(m, &d->chain, sizeof h, d->buf, (uint64_t)n);
		} else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
			h.op = OP_SHUTDOWN;
			h.flags = 3; /* no more receives or sends */
			c->host_eof = true;
		} else {
			h.op = OP_CREDIT_UPDATE; /* spurious wakeup: harmless */
		}
		virtq_chain_write(m, &d->chain, 0, &h, sizeof h);
		virtq_push(m, q, d->chain.head, (uint32_t)(sizeof h + (n > 0 ? (size_t)n : 0)));
		used = true;
	}
	return used;
}

bool vsock_process_tx(vsock_dev *d)
{
	const guest_mem *m = d->io.env.mem;
	virtq *q = d->io.env.txq;
	bool used = false;
	for (int budget = 0; budget < 4 * VIRTQ_MAX_SIZE; budget++) {
		if (virtq_pop(m, q, &d->chain, NULL) <= 0)
			break;
		vsock_hdr h;
		if (d->chain.readable >= sizeof h) {
			virtq_chain_read(m, &d->chain, 0, &h, sizeof h);
			handle_guest_pkt(d, &h, &d->chain);
		}
		virtq_push(m, q, d->chain.head, 0);
		used = true;
	}
	used |= fill_rx(d);
	virtio_io_wake(&d->io);
	return used;
}

bool vsock_process_rx(vsock_dev *d)
{
	bool used = fill_rx(d);
	virtio_io_wake(&d->io);
	return used;
}

/* Host side: accept, read the CONNECT line, start the guest handshake. */
static void host_handshake(vsock_dev *d, conn *c)
{
	char ch;
	ssize_t n;
	while ((n = recv(c->fd, &ch, 1, MSG_DONTWAIT)) == 1) {
		if (ch == '\n') {
			c->line[c->line_len] = 0;
			char *end = NULL;
			unsigned long port = 0;
			if (!strncmp(c->line, "CONNECT ", 8)) {
				errno = 0;
				port = strtoul(c->line + 8, &end, 10);
			}
			if (!end || *end || end == c->line + 8 || errno || port > UINT32_MAX) {
				close_conn(c);
				return;
			}
			c->peer_port = (uint32_t)port;
			c->local_port = d->next_port++;
			if (d->next_port < (1u << 30))
				d->next_port = 1u << 30;
			c->state = C_CONNECTING;
			queue_ctrl(d, c, OP_REQUEST, 0, c->local_port, c->peer_port);
			return;
		}
		if (c->line_len >= sizeof c->line - 1) {
			close_conn(c); /* a CONNECT line is short: anything longer is not one */
			return;
		}
		c->line[c->line_len++] = ch;
	}
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
		close_conn(c);
}

static void *vsock_thread(void *arg)
{
	vsock_dev *d = arg;
	for (;;) {
		struct pollfd p[MAX_CONNS + 2];
		int idx[MAX_CONNS + 2];
		int n = 0;
		pthread_mutex_lock(d->io.env.lock);
		if (d->io.stop) {
			pthread_mutex_unlock(d->io.env.lock);
			break;
		}
		p[n] = (struct pollfd){.fd = d->io.wake_fd, .events = POLLIN};
		idx[n++] = -1;
		p[n] = (struct pollfd){.fd = d->listen_fd, .events = POLLIN};
		idx[n++] = -2;
		for (int i = 0; i < MAX_CONNS; i++) {
			conn *c = &d->conns[i];
			bool want = c->state == C_HANDSHAKE ||
				    (c->state == C_ESTABLISHED && !c->host_eof &&
				     c->peer_buf_alloc - (c->tx_cnt - c->peer_fwd_cnt) > 0);
			if (want) {
				p[n] = (struct pollfd){.fd = c->fd, .events = POLLIN};
				idx[n++] = i;
			}
		}
		pthread_mutex_unlock(d->io.env.lock);
		if (poll(p, (nfds_t)n, 1000) < 0 && errno != EINTR)
			break;
		pthread_mutex_lock(d->io.env.lock);
		if (p[0].revents & POLLIN)
			virtio_io_drain(&d->io);
		if (p[1].revents & POLLIN) {
			int fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0) {
				conn *c = new_conn(d, fd);
				if (c)
					c->state = C_HANDSHAKE;
				else
					close(fd);
			}
		}
		for (int k = 2; k < n; k++)
			if (p[k].revents && d->conns[idx[k]].state == C_HANDSHAKE)
				host_handshake(d, &d->conns[idx[k]]);
		if (fill_rx(d) && d->io.env.signal)
			d->io.env.signal(d->io.env.signal_arg);
		pthread_mutex_unlock(d->io.env.lock);
	}
	return NULL;
}

vsock_dev *vsock_create(const char *uds_path, uint64_t guest_cid, silo_error *err)
{
	struct sockaddr_un sa;
	if (strlen(uds_path) >= sizeof sa.sun_path - 12)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "vsock: uds_path \"%s\" is too long", uds_path), NULL;
	if (guest_cid < 3 || guest_cid > UINT32_MAX)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "vsock: guest_cid %llu must be 3..2^32-1",
				 (unsigned long long)guest_cid), NULL;
	vsock_dev *d = calloc(1, sizeof *d);
	if (!d)
		return silo_fail(err, SILO_ERR_INTERNAL, ENOMEM, "vsock"), NULL;
	snprintf(d->uds, sizeof d->uds, "%s", uds_path);
	/* a socket bound before the jail keeps its host path; connections the guest opens are
	 * made from inside the jail */
	snprintf(d->connect_to, sizeof d->connect_to, "%s", vmm_files_jail_path(uds_path));
	d->guest_cid = guest_cid;
	d->next_port = 1u << 30;
	if (virtio_io_init(&d->io) < 0) {
		silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, errno, "vsock: eventfd");
		free(d);
		return NULL;
	}
	d->listen_fd = vmm_listen(uds_path, &d->bound_here, err);
	if (d->listen_fd < 0) {
		silo_error_prefix(err, "vsock");
		virtio_io_stop(&d->io);
		free(d);
		return NULL;
	}
	return d;
}

int vsock_start(vsock_dev *d, const vsock_env *env, silo_error *err)
{
	return virtio_io_start(&d->io, env, vsock_thread, d, "vsock", err);
}

void vsock_destroy(vsock_dev *d)
{
	if (!d)
		return;
	virtio_io_stop(&d->io);
	for (int i = 0; i < MAX_CONNS; i++)
		if (d->conns[i].state != C_FREE)
			close_conn(&d->conns[i]);
	close(d->listen_fd);
	if (d->bound_here)
		unlink(d->uds);
	free(d);
}

/* virtio-mmio glue: queues 0 rx, 1 tx, 2 event. */
static bool vsock_notify(void *dev, virtio_mmio *t, int qi)
{
	vsock_dev *d = dev;
	if (!virtio_io_notify_start(&d->io, t, vsock_thread, d))
		return false;
	return qi == 1 ? vsock_process_tx(d) : qi == 0 ? vsock_process_rx(d) : false;
}

static void vsock_config_read(void *dev, uint64_t off, uint8_t *data, uint32_t len)
{
	vsock_dev *d = dev;
	virtio_config_copy(&d->guest_cid, sizeof d->guest_cid, off, data, len);
}

static void vsock_destroy_op(void *dev)
{
	vsock_destroy(dev);
}

const virtio_device_ops virtio_vsock_ops = {
	.name = "virtio-vsock",
	.device_id = 19,
	.num_queues = 3,
	.config_read = vsock_config_read,
	.notify = vsock_notify,
	.destroy = vsock_destroy_op,
};
