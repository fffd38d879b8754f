/* SPDX-License-Identifier: Apache-2.0
 * virtio-net (device 1) with a stream-socket backend: every Ethernet frame
 * travels as a 4-byte big-endian length followed by the frame, the protocol
 * of QEMU's -netdev stream and of passt (docs/network.md). silo-vmm stays an
 * AF_UNIX-only process: the backend is an already connected socket (--net
 * fd=N), the host-side stack runs elsewhere under Silo's egress filter.
 *
 * Features: MAC only (no offloads, no mergeable buffers): a tx chain is one
 * virtio_net_hdr (12 bytes, version 1) plus one frame, an rx chain receives
 * one header plus one frame. The guest is hostile: a tx chain shorter than
 * the header or with a frame beyond VNET_MAX_FRAME is dropped (counted); a
 * frame from the backend that does not fit the guest's buffer is dropped
 * (counted); a backend length of 0 or beyond VNET_MAX_FRAME ends the backend.
 * Memory is bounded: at most VNET_TXBUF bytes wait for the backend (then tx
 * chains wait in the guest's ring) and VNET_RXBUF bytes wait for rx buffers
 * (then the backend is not read: passt sees a full socket).
 *
 * Locking: the queues and the buffers are touched under env.lock (the bus
 * lock behind virtio-mmio); the I/O thread takes it for every step.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "virtio.h"
#include "common/error.h"

#define VNET_HDR 12u
#define VNET_F_MAC (1ull << 5)

struct vnet_dev {
	int fd;                  /* the backend, nonblocking; -1 once it ended */
	uint8_t mac[6];
	virtio_io io;            /* env, and the thread woken when the guest gave rx buffers / tx work */
	uint8_t *tx;             /* frames (with their length) waiting for the backend */
	size_t tx_len, tx_off;
	uint8_t *rx;             /* bytes read from the backend, not yet given to the guest */
	size_t rx_len;
	uint8_t frame[VNET_HDR + VNET_MAX_FRAME];
	vnet_counters cnt;
	virtq_chain chain;
};

static void backend_end(vnet_dev *d, const char *why)
{
	if (d->fd < 0)
		return;
	fprintf(stderr, "silo-vmm: virtio-net: backend ended: %s\n", why);
	close(d->fd);
	d->fd = -1;
	d->tx_len = d->tx_off = 0;
	d->rx_len = 0;
}

/* Write what the backend takes now. env.lock held. */
static void flush_tx(vnet_dev *d)
{
	while (d->fd >= 0 && d->tx_off < d->tx_len) {
		ssize_t n = send(d->fd, d->tx + d->tx_off, d->tx_len - d->tx_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			backend_end(d, strerror(errno));
			return;
		}
		d->tx_off += (size_t)n;
	}
	if (d->tx_off == d->tx_len)
		d->tx_len = d->tx_off = 0;
}

static bool tx_room(const vnet_dev *d)
{
	return d->tx_len + 4 + VNET_MAX_FRAME <= VNET_TXBUF;
}

/* Drop what was sent from the front of the tx buffer. */
static void tx_compact(vnet_dev *d)
{
	if (!d->tx_off)
		return;
	memmove(d->tx, d->tx + d->tx_off, d->tx_len - d->tx_off);
	d->tx_len -= d->tx_off;
	d->tx_off = 0;
}

bool vnet_process_tx(vnet_dev *d)
{
	const guest_mem *m = d->io.env.mem;
	virtq *q = d->io.env.txq;
	bool any = false, stalled;
	int budget = 0;
again:
	stalled = false;
	for (;;) {
		if (!tx_room(d)) {
			flush_tx(d);
			tx_compact(d);
			if (!tx_room(d)) {
				stalled = true;   /* the backend is slow: the rest waits in the guest's ring */
				break;
			}
		}
		if (budget++ == VIRTQ_MAX_SIZE) {
			virtio_io_wake(&d->io);   /* more may wait: the thread comes back for them */
			break;
		}
		int r = virtq_pop(m, q, &d->chain, NULL);
		if (r <= 0) {
			if (r < 0)
				d->cnt.bad_chains++;
			break;
		}
		const virtq_chain *c = &d->chain;
		if (c->readable < VNET_HDR + 14 || c->readable - VNET_HDR > VNET_MAX_FRAME || c->writable) {
			d->cnt.tx_dropped++;
		} else {
			uint32_t len = (uint32_t)(c->readable - VNET_HDR);
			uint8_t *p = d->tx + d->tx_len;
			p[0] = (uint8_t)(len >> 24);
			p[1] = (uint8_t)(len >> 16);
			p[2] = (uint8_t)(len >> 8);
			p[3] = (uint8_t)len;
			if (virtq_chain_read(m, c, VNET_HDR, p + 4, len) == len && d->fd >= 0) {
				d->tx_len += 4 + len;
				d->cnt.tx_frames++;
			} else {
				d->cnt.tx_dropped++;
			}
		}
		virtq_push(m, q, c->head, 0);
		any = true;
	}
	flush_tx(d);
	/* Stalled, but the backend took the rest meanwhile: no POLLOUT will
	 * come for the chains still in the ring, so take them now. */
	if (stalled && tx_room(d))
		goto again;
	/* bytes left: the I/O thread waits for POLLOUT (told from a vCPU; the
	 * thread itself looks at tx before it polls) */
	if (d->tx_off < d->tx_len && !(d->io.started && pthread_equal(pthread_self(), d->io.thread)))
		virtio_io_wake(&d->io);
	return any;
}

bool vnet_process_rx(vnet_dev *d)
{
	const guest_mem *m = d->io.env.mem;
	virtq *q = d->io.env.rxq;
	bool any = false;
	size_t off = 0;
	while (d->rx_len - off >= 4) {
		const uint8_t *p = d->rx + off;
		uint32_t len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
		if (len == 0 || len > VNET_MAX_FRAME) {
			char why[64];
			snprintf(why, sizeof why, "frame length %u out of range", len);
			backend_end(d, why);
			return any;
		}
		if (d->rx_len - off - 4 < len)
			break;
		int r = virtq_pop(m, q, &d->chain, NULL);
		if (r < 0)
			d->cnt.bad_chains++;
		if (r <= 0)
			break;   /* no buffer: the frame waits, the backend is not read meanwhile */
		const virtq_chain *c = &d->chain;
		uint32_t written = 0;
		if (c->writable < VNET_HDR + len) {
			d->cnt.rx_dropped++;
		} else {
			memset(d->frame, 0, VNET_HDR);
			d->frame[10] = 1;   /* num_buffers */
			memcpy(d->frame + VNET_HDR, p + 4, len);
			written = (uint32_t)virtq_chain_write(m, c, 0, d->frame, VNET_HDR + len);
			d->cnt.rx_frames++;
		}
		virtq_push(m, q, c->head, written);
		any = true;
		off += 4 + len;
	}
	if (off) {
		memmove(d->rx, d->rx + off, d->rx_len - off);
		d->rx_len -= off;
	}
	return any;
}

static void *vnet_thread(void *arg)
{
	vnet_dev *d = arg;
	for (;;) {
		pthread_mutex_lock(d->io.env.lock);
		bool stop = d->io.stop;
		int fd = d->fd;
		bool want_in = fd >= 0 && d->rx_len + 4 + VNET_MAX_FRAME <= VNET_RXBUF;
		bool want_out = fd >= 0 && d->tx_off < d->tx_len;
		pthread_mutex_unlock(d->io.env.lock);
		if (stop)
			return NULL;
		struct pollfd p[2] = {{.fd = d->io.wake_fd, .events = POLLIN},
				      {.fd = fd, .events = (short)((want_in ? POLLIN : 0) | (want_out ? POLLOUT : 0))}};
		if (poll(p, fd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
			return NULL;
		if (p[0].revents & POLLIN)
			virtio_io_drain(&d->io);
		pthread_mutex_lock(d->io.env.lock);
		bool signal = false;
		if (d->fd >= 0 && fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t n = recv(d->fd, d->rx + d->rx_len, VNET_RXBUF - d->rx_len, MSG_DONTWAIT);
			if (n > 0)
				d->rx_len += (size_t)n;
			else if (n == 0 || (errno != EAGAIN && errno != EINTR))
				backend_end(d, n == 0 ? "closed by the stack" : strerror(errno));
		}
		/* deliver what fits, and move tx on (a slow backend made the guest wait) */
		if (d->io.env.rxq->ready)
			signal |= vnet_process_rx(d);
		if (d->io.env.txq->ready)
			signal |= vnet_process_tx(d);
		if (signal && d->io.env.signal)
			d->io.env.signal(d->io.env.signal_arg);
		pthread_mutex_unlock(d->io.env.lock);
	}
}

vnet_dev *vnet_create(int fd, const uint8_t mac[6], silo_error *err)
{
	vnet_dev *d = calloc(1, sizeof *d);
	if (!d) {
		silo_fail(err, SILO_ERR_INTERNAL, ENOMEM, "virtio-net");
		return NULL;
	}
	d->tx = malloc(VNET_TXBUF);
	d->rx = malloc(VNET_RXBUF);
	int wake = virtio_io_init(&d->io);
	int fl = fcntl(fd, F_GETFL);
	int type = 0;
	socklen_t tl = sizeof type;
	if (!d->tx || !d->rx || wake < 0 || fl < 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
	    type != SOCK_STREAM) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, fl < 0 ? EBADF : 0,
			  "virtio-net: fd %d is not a connected stream socket", fd);
		free(d->tx);
		free(d->rx);
		virtio_io_stop(&d->io);
		free(d);
		return NULL;
	}
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	d->fd = fd;
	memcpy(d->mac, mac, 6);
	return d;
}

int vnet_start(vnet_dev *d, const vnet_env *env, silo_error *err)
{
	return virtio_io_start(&d->io, env, vnet_thread, d, "virtio-net", err);
}

size_t vnet_feed(vnet_dev *d, const void *bytes, size_t len)
{
	size_t n = VNET_RXBUF - d->rx_len < len ? VNET_RXBUF - d->rx_len : len;
	memcpy(d->rx + d->rx_len, bytes, n);
	d->rx_len += n;
	return n;
}

void vnet_counters_get(vnet_dev *d, vnet_counters *out)
{
	*out = d->cnt;
}

void vnet_destroy(vnet_dev *d)
{
	if (!d)
		return;
	virtio_io_stop(&d->io);
	if (d->fd >= 0)
		close(d->fd);
	free(d->tx);
	free(d->rx);
	free(d);
}

/* virtio-mmio glue: queue 0 rx, 1 tx. */
static bool vnet_notify(void *dev, virtio_mmio *t, int qi)
{
	vnet_dev *d = dev;
	if (!virtio_io_notify_start(&d->io, t, vnet_thread, d))
		return false;
	if (qi == 0) {
		virtio_io_wake(&d->io);   /* new rx buffers: the thread may read the backend again */
		return vnet_process_rx(d);
	}
	return qi == 1 ? vnet_process_tx(d) : false;
}

static void vnet_config_read(void *dev, uint64_t off, uint8_t *data, uint32_t len)
{
	vnet_dev *d = dev;
	uint8_t cfg[8] = {0};
	memcpy(cfg, d->mac, 6);   /* then status (unused without VIRTIO_NET_F_STATUS) */
	virtio_config_copy(cfg, sizeof cfg, off, data, len);
}

static void vnet_destroy_op(void *dev)
{
	vnet_destroy(dev);
}

const virtio_device_ops virtio_net_ops = {
	.name = "virtio-net",
	.device_id = 1,
	.features = VNET_F_MAC,
	.num_queues = 2,
	.config_read = vnet_config_read,
	.notify = vnet_notify,
	.destroy = vnet_destroy_op,
};
