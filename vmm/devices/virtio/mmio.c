/* SPDX-License-Identifier: Apache-2.0
 * virtio-mmio transport, version 2 (virtio 1.x, 4.2.2). One 4 KiB page per
 * device; the device logic lives behind virtio_device_ops.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "virtio.h"

#define R_MAGIC 0x000
#define R_VERSION 0x004
#define R_DEVICE_ID 0x008
#define R_VENDOR_ID 0x00c
#define R_DEV_FEATURES 0x010
#define R_DEV_FEATURES_SEL 0x014
#define R_DRV_FEATURES 0x020
#define R_DRV_FEATURES_SEL 0x024
#define R_QUEUE_SEL 0x030
#define R_QUEUE_NUM_MAX 0x034
#define R_QUEUE_NUM 0x038
#define R_QUEUE_READY 0x044
#define R_QUEUE_NOTIFY 0x050
#define R_INT_STATUS 0x060
#define R_INT_ACK 0x064
#define R_STATUS 0x070
#define R_QUEUE_DESC_LO 0x080
#define R_QUEUE_DESC_HI 0x084
#define R_QUEUE_DRIVER_LO 0x090
#define R_QUEUE_DRIVER_HI 0x094
#define R_QUEUE_DEVICE_LO 0x0a0
#define R_QUEUE_DEVICE_HI 0x0a4
#define R_CONFIG_GEN 0x0fc
#define R_CONFIG 0x100

static uint64_t dev_features(const virtio_mmio *t)
{
	return t->ops->features | (1ULL << VIRTIO_F_VERSION_1);
}

static virtq *cur_queue(virtio_mmio *t)
{
	return t->queue_sel < t->ops->num_queues ? &t->queues[t->queue_sel] : NULL;
}

static void transport_reset(virtio_mmio *t)
{
	t->status = t->dev_feat_sel = t->drv_feat_sel = t->queue_sel = t->interrupt_status = 0;
	t->driver_features = 0;
	memset(t->queues, 0, sizeof t->queues);
	if (t->ops->reset)
		t->ops->reset(t->dev);
}

void virtio_mmio_signal_used(virtio_mmio *t)
{
	t->interrupt_status |= 1;
	if (!t->vm->cfg.irqchip || t->vm->vm_fd < 0)
		return;
	struct kvm_irq_level l = {.irq = t->irq, .level = 1};
	ioctl(t->vm->vm_fd, KVM_IRQ_LINE, &l); /* edge: raise and lower */
	l.level = 0;
	ioctl(t->vm->vm_fd, KVM_IRQ_LINE, &l);
}

static void signal_used(void *arg)
{
	virtio_mmio_signal_used(arg);
}

vsock_env virtio_mmio_io_env(virtio_mmio *t)
{
	return (vsock_env){.mem = &t->vm->mem, .rxq = &t->queues[0], .txq = &t->queues[1],
			   .lock = &t->vm->bus.lock, .signal = signal_used, .signal_arg = t};
}

void virtio_config_copy(const void *cfg, size_t size, uint64_t off, uint8_t *data, uint32_t len)
{
	if (off < size)
		memcpy(data, (const uint8_t *)cfg + off, len < size - off ? len : size - off);
}

static void mmio_read(void *opaque, uint64_t off, uint8_t *data, uint32_t len)
{
	virtio_mmio *t = opaque;
	if (off >= R_CONFIG) {
		memset(data, 0, len);
		if (t->ops->config_read)
			t->ops->config_read(t->dev, off - R_CONFIG, data, len);
		return;
	}
	uint32_t v = 0;
	if (len != 4 || (off & 3)) {
		memset(data, 0xff, len); /* registers are 32-bit only */
		return;
	}
	virtq *q = cur_queue(t);
	switch (off) {
	case R_MAGIC: v = 0x74726976; break; /* "virt" */
	case R_VERSION: v = 2; break;
	case R_DEVICE_ID: v = t->ops->device_id; break;
	case R_VENDOR_ID: v = 0x4f4c4953; break; /* "SILO" */
	case R_DEV_FEATURES:
		v = t->dev_feat_sel == 0 ? (uint32_t)dev_features(t)
		    : t->dev_feat_sel == 1 ? (uint32_t)(dev_features(t) >> 32) : 0;
		break;
	case R_QUEUE_NUM_MAX: v = q ? VIRTQ_MAX_SIZE : 0; break;
	case R_QUEUE_READY: v = q ? q->ready : 0; break;
	case R_INT_STATUS: v = t->interrupt_status; break;
	case R_STATUS: v = t->status; break;
	case R_CONFIG_GEN: v = t->config_generation; break;
	default: v = 0; break;
	}
	memcpy(data, &v, 4);
}

static void set_status(virtio_mmio *t, uint32_t s)
{
	if (s == 0) {
		transport_reset(t);
		return;
	}
	if ((s & VIRTIO_STATUS_FEATURES_OK) && !(t->status & VIRTIO_STATUS_FEATURES_OK)) {
		/* Accept only a subset of what we offer, and only modern drivers. */
		if ((t->driver_features & ~dev_features(t)) ||
		    !(t->driver_features & (1ULL << VIRTIO_F_VERSION_1)))
			s &= ~(uint32_t)VIRTIO_STATUS_FEATURES_OK;
	}
	t->status = s & 0xff;
}

static void mmio_write(void *opaque, uint64_t off, const uint8_t *data, uint32_t len)
{
	virtio_mmio *t = opaque;
	if (off >= R_CONFIG) {
		if (t->ops->config_write)
			t->ops->config_write(t->dev, off - R_CONFIG, data, len);
		return;
	}
	if (len != 4 || (off & 3))
		return;
	uint32_t v;
	memcpy(&v, data, 4);
	virtq *q = cur_queue(t);
	/* Queue registers may change only while the queue is not ready. */
	bool q_writable = q && !q->ready && !(t->status & VIRTIO_STATUS_DRIVER_OK);
	switch (off) {
	case R_DEV_FEATURES_SEL: t->dev_feat_sel = v; break;
	case R_DRV_FEATURES_SEL: t->drv_feat_sel = v; break;
	case R_DRV_FEATURES:
		if (t->status & VIRTIO_STATUS_FEATURES_OK)
			break;
		if (t->drv_feat_sel == 0)
			t->driver_features = (t->driver_features & ~0xffffffffULL) | v;
		else if (t->drv_feat_sel == 1)
			t->driver_features = (t->driver_features & 0xffffffffULL) | ((uint64_t)v << 32);
		break;
	case R_QUEUE_SEL: t->queue_sel = v; break;
	case R_QUEUE_NUM:
		if (q_writable)
			q->size = (v && v <= VIRTQ_MAX_SIZE && !(v & (v - 1))) ? (uint16_t)v : 0;
		break;
	case R_QUEUE_READY:
		if (!q)
			break;
		if (v == 1 && !q->ready) {
			if (!virtq_layout_valid(&t->vm->mem, q)) {
				t->status |= VIRTIO_STATUS_NEEDS_RESET;
				break;
			}
			q->ready = true;
		} else if (v == 0) {
			q->ready = false;
		}
		break;
	case R_QUEUE_NOTIFY:
		if (v < t->ops->num_queues && (t->status & VIRTIO_STATUS_DRIVER_OK) && t->queues[v].ready) {
			if (t->ops->notify(t->dev, t, (int)v))
				virtio_mmio_signal_used(t);
			if (t->queues[v].broken)
				t->status |= VIRTIO_STATUS_NEEDS_RESET;
		}
		break;
	case R_INT_ACK: t->interrupt_status &= ~v; break;
	case R_STATUS: set_status(t, v); break;
	case R_QUEUE_DESC_LO: if (q_writable) q->desc = (q->desc & ~0xffffffffULL) | v; break;
	case R_QUEUE_DESC_HI: if (q_writable) q->desc = (q->desc & 0xffffffffULL) | ((uint64_t)v << 32); break;
	case R_QUEUE_DRIVER_LO: if (q_writable) q->avail = (q->avail & ~0xffffffffULL) | v; break;
	case R_QUEUE_DRIVER_HI: if (q_writable) q->avail = (q->avail & 0xffffffffULL) | ((uint64_t)v << 32); break;
	case R_QUEUE_DEVICE_LO: if (q_writable) q->used = (q->used & ~0xffffffffULL) | v; break;
	case R_QUEUE_DEVICE_HI: if (q_writable) q->used = (q->used & 0xffffffffULL) | ((uint64_t)v << 32); break;
	default: break;
	}
}

static const bus_device_ops virtio_mmio_bus_ops = {.name = "virtio-mmio", .read = mmio_read, .write = mmio_write};

int virtio_mmio_attach(vm *v, uint64_t base, uint32_t irq, const virtio_device_ops *ops, void *dev,
		       virtio_mmio **out, silo_error *err)
{
	if (ops->num_queues > 8 || v->nvirtio >= 16) {
		if (ops->destroy)
			ops->destroy(dev);
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "virtio: %s: too many queues or devices", ops->name);
	}
	virtio_mmio *t = calloc(1, sizeof *t);
	if (!t) {
		if (ops->destroy)
			ops->destroy(dev);
		return silo_fail(err, SILO_ERR_INTERNAL, ENOMEM, "virtio-mmio");
	}
	t->vm = v;
	t->ops = ops;
	t->dev = dev;
	t->base = base;
	t->irq = irq;
	if (bus_register(&v->bus, BUS_MMIO, base, 0x1000, &virtio_mmio_bus_ops, t, err) < 0) {
		virtio_mmio_destroy(t);
		return -1;
	}
	v->virtio[v->nvirtio++] = t;
	if (out)
		*out = t;
	return 0;
}

void virtio_mmio_destroy(virtio_mmio *t)
{
	if (!t)
		return;
	if (t->ops->destroy)
		t->ops->destroy(t->dev);
	free(t);
}
