/* SPDX-License-Identifier: Apache-2.0
 * virtio: split virtqueues (queue.c), the virtio-mmio v2 transport (mmio.c) and
 * the devices (blk.c, rng.c, vsock.c, net.c), each a static const virtio_device_ops,
 * and the I/O thread of the devices with a host-side backend (io.c).
 * The guest is hostile: every ring index, descriptor address, length and chain
 * is checked against guest RAM and the queue size before use.
 */
#ifndef SILO_VMM_VIRTIO_H
#define SILO_VMM_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

#include "../../vmm.h"

#define VIRTQ_MAX_SIZE 256
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTIO_F_VERSION_1 32

#define VIRTIO_STATUS_ACK 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED 128

typedef struct virtq {
	uint16_t size; /* negotiated QueueNum, power of two <= VIRTQ_MAX_SIZE */
	bool ready;
	uint64_t desc, avail, used; /* guest physical addresses */
	uint16_t last_avail;        /* next avail ring slot we will consume */
	uint16_t used_idx;
	bool broken; /* a malformed ring was seen: the device needs a reset */
} virtq;

typedef struct virtq_buf {
	uint64_t gpa;
	uint32_t len;
	bool write; /* device writes (guest reads) */
} virtq_buf;

typedef struct virtq_chain {
	uint16_t head;
	uint16_t n;
	virtq_buf bufs[VIRTQ_MAX_SIZE];
	uint64_t readable, writable; /* total bytes */
} virtq_chain;

/* Check that the three rings of a queue lie in guest RAM with the right alignment. */
bool virtq_layout_valid(const guest_mem *m, const virtq *q);
/* Take the next available chain. 1 = got one, 0 = ring empty, -1 = malformed (q->broken set,
 * reason in why). */
int virtq_pop(const guest_mem *m, virtq *q, virtq_chain *c, const char **why);
/* Return a chain to the guest with the number of bytes written. */
int virtq_push(const guest_mem *m, virtq *q, uint16_t head, uint32_t written);
/* Serve a request queue: hand each available chain to handle, which returns the bytes it
 * wrote, and give it back (at most 4 x VIRTQ_MAX_SIZE chains a call; stops at a malformed
 * ring). True if any chain was used. */
bool virtq_serve(const guest_mem *m, virtq *q, uint32_t (*handle)(void *dev, const guest_mem *m, const virtq_chain *c),
		 void *dev);
/* Scatter/gather helpers over a chain: copy from the readable part (skipping off bytes) and
 * into the writable part. Return bytes copied. */
uint64_t virtq_chain_read(const guest_mem *m, const virtq_chain *c, uint64_t off, void *dst, uint64_t len);
uint64_t virtq_chain_write(const guest_mem *m, const virtq_chain *c, uint64_t off, const void *src, uint64_t len);

struct virtio_mmio;
typedef struct virtio_device_ops {
	const char *name;
	uint32_t device_id;
	uint64_t features; /* device feature bits (VERSION_1 is added by the transport) */
	uint16_t num_queues;
	/* Config space reads/writes (offset relative to 0x100, bounds-checked by the transport). */
	void (*config_read)(void *dev, uint64_t off, uint8_t *data, uint32_t len);
	void (*config_write)(void *dev, uint64_t off, const uint8_t *data, uint32_t len);
	/* Process queue qi; return true if the used ring changed (interrupt the guest). */
	bool (*notify)(void *dev, struct virtio_mmio *t, int qi);
	void (*reset)(void *dev);
	void (*destroy)(void *dev);
} virtio_device_ops;

typedef struct virtio_mmio {
	vm *vm;
	const virtio_device_ops *ops;
	void *dev;
	uint64_t base;
	uint32_t irq;
	uint32_t status, dev_feat_sel, drv_feat_sel, queue_sel, interrupt_status, config_generation;
	uint64_t driver_features;
	virtq queues[8];
} virtio_mmio;

/* For config_read: copy the part of a device's size config bytes at off into data (the
 * transport zeroed all len bytes first, so the rest reads as zero). */
void virtio_config_copy(const void *cfg, size_t size, uint64_t off, uint8_t *data, uint32_t len);

/* Attach a device at base with irq (IOAPIC pin); appends "virtio_mmio.device=4K@0x..:irq" to
 * cmdline_extra if non-NULL (size cmdline_len). */
int virtio_mmio_attach(vm *v, uint64_t base, uint32_t irq, const virtio_device_ops *ops, void *dev,
		       virtio_mmio **out, silo_error *err);
/* Device-side: raise the used-buffer interrupt. */
void virtio_mmio_signal_used(virtio_mmio *t);

/* Devices */
extern const virtio_device_ops virtio_blk_ops;
extern const virtio_device_ops virtio_blk_ro_ops;
extern const virtio_device_ops virtio_rng_ops;
void *virtio_blk_create(const char *path, bool read_only, const char *id, silo_error *err);
void *virtio_rng_create(silo_error *err);
/* For tests: run a device's request handling on a queue without a transport. */
bool virtio_blk_process(void *dev, const guest_mem *m, virtq *q);
bool virtio_rng_process(void *dev, const guest_mem *m, virtq *q);

/* vsock.c: hybrid vsock. The environment names the guest memory, the rx/tx queues, the
 * lock that guards them and how to interrupt the guest (virtio-mmio glue or a test). */
typedef struct vsock_dev vsock_dev;
typedef struct vsock_env {
	const guest_mem *mem;
	virtq *rxq, *txq;
	pthread_mutex_t *lock;
	void (*signal)(void *arg);
	void *signal_arg;
} vsock_env;

/* io.c: the I/O thread of a device with a host-side backend (vsock, net). The thread
 * polls wake_fd (an eventfd) with the backend's descriptors and does its work under
 * env.lock; it returns once it sees stop (guarded by env.lock). */
typedef struct virtio_io {
	vsock_env env;
	int wake_fd;
	pthread_t thread;
	bool started, stop;
} virtio_io;
/* Create wake_fd: 0, or -1 with errno. */
int virtio_io_init(virtio_io *io);
/* Take env and start fn(arg); what names the device in errors. */
int virtio_io_start(virtio_io *io, const vsock_env *env, void *(*fn)(void *), void *arg, const char *what,
		    silo_error *err);
/* On a notify from virtio-mmio: start the thread with the transport's environment
 * (virtio_mmio_io_env) unless it runs. false if it could not start. */
bool virtio_io_notify_start(virtio_io *io, struct virtio_mmio *t, void *(*fn)(void *), void *arg);
/* Wake the thread; clear wake_fd (the thread, after poll says it is readable). */
void virtio_io_wake(virtio_io *io);
void virtio_io_drain(virtio_io *io);
/* Set stop, wake and join the thread if it runs; close wake_fd. */
void virtio_io_stop(virtio_io *io);
extern const virtio_device_ops virtio_vsock_ops;
vsock_dev *vsock_create(const char *uds_path, uint64_t guest_cid, silo_error *err);
/* Start the host-side I/O thread (virtio-mmio does this on the first notify). */
int vsock_start(vsock_dev *d, const vsock_env *env, silo_error *err);
/* Called with env->lock held after the guest notifies tx / rx. Return true if used rings changed. */
bool vsock_process_tx(vsock_dev *d);
bool vsock_process_rx(vsock_dev *d);
void vsock_destroy(vsock_dev *d);
/* The environment of a device with an I/O thread behind virtio-mmio: queue 0 rx, 1 tx, the
 * bus lock, the used-buffer interrupt (vsock, net). */
vsock_env virtio_mmio_io_env(virtio_mmio *t);

/* net.c: virtio-net over a stream socket speaking QEMU's length-prefixed
 * frames (passt; docs/network.md). Same environment shape as vsock. */
#define VNET_MAX_FRAME 65535u            /* Ethernet frame, without the virtio header */
#define VNET_TXBUF (512u * 1024u)        /* bytes waiting for the backend */
#define VNET_RXBUF (512u * 1024u)        /* bytes waiting for guest buffers */
typedef struct vnet_dev vnet_dev;
typedef vsock_env vnet_env;
typedef struct vnet_counters {
	uint64_t tx_frames, rx_frames;   /* guest -> backend, backend -> guest */
	uint64_t tx_dropped, rx_dropped; /* malformed tx chains; frames too big for the guest's buffer */
	uint64_t bad_chains;             /* virtq_pop refused a ring */
} vnet_counters;
extern const virtio_device_ops virtio_net_ops;
/* fd: a connected stream socket (taken over). */
vnet_dev *vnet_create(int fd, const uint8_t mac[6], silo_error *err);
int vnet_start(vnet_dev *d, const vnet_env *env, silo_error *err);
/* Called with env->lock held after the guest notifies tx / rx. Return true if used rings changed. */
bool vnet_process_tx(vnet_dev *d);
bool vnet_process_rx(vnet_dev *d);
void vnet_counters_get(vnet_dev *d, vnet_counters *out);
/* For tests and the fuzzer: append bytes as if read from the backend (env.lock held; no
 * I/O thread). Returns how many fitted. */
size_t vnet_feed(vnet_dev *d, const void *bytes, size_t len);
void vnet_destroy(vnet_dev *d);

#endif
