/* SPDX-License-Identifier: Apache-2.0
 * The I/O bus: non-overlapping port and MMIO ranges, each owned by one device.
 */
#include <string.h>

#include "vmm.h"

void bus_init(bus *b)
{
	memset(b, 0, sizeof *b);
	pthread_mutex_init(&b->lock, NULL);
}

void bus_destroy(bus *b)
{
	pthread_mutex_destroy(&b->lock);
}

int bus_register(bus *b, bus_space space, uint64_t base, uint64_t len, const bus_device_ops *ops,
		 void *opaque, silo_error *err)
{
	if (!len || base + len < base)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "bus: %s: empty or wrapping range", ops->name);
	if (space == BUS_PIO && base + len > 0x10000)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "bus: %s: port range beyond 0xffff", ops->name);
	if (b->n >= VMM_MAX_BUS_DEVICES)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0, "bus: too many devices");
	for (size_t i = 0; i < b->n; i++) {
		const bus_range *r = &b->ranges[i];
		if (r->space == space && base < r->base + r->len && r->base < base + len)
			return silo_fail(err, SILO_ERR_INTERNAL, 0,
					 "bus: %s [0x%llx+0x%llx] overlaps %s [0x%llx+0x%llx]", ops->name,
					 (unsigned long long)base, (unsigned long long)len, r->ops->name,
					 (unsigned long long)r->base, (unsigned long long)r->len);
	}
	b->ranges[b->n++] = (bus_range){space, base, len, ops, opaque};
	return 0;
}

bool bus_access(bus *b, bus_space space, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	if (len == 0 || len > 8)
		return false;
	pthread_mutex_lock(&b->lock);
	for (size_t i = 0; i < b->n; i++) {
		const bus_range *r = &b->ranges[i];
		if (r->space != space || addr < r->base || addr - r->base >= r->len)
			continue;
		uint64_t off = addr - r->base;
		/* An access straddling the end of the range is cut to what fits. */
		uint32_t n = (uint32_t)(r->len - off < len ? r->len - off : len);
		if (!is_write)
			memset(data, 0xff, len);
		if (is_write && r->ops->write)
			r->ops->write(r->opaque, off, data, n);
		else if (!is_write && r->ops->read)
			r->ops->read(r->opaque, off, data, n);
		pthread_mutex_unlock(&b->lock);
		return true;
	}
	b->unhandled++;
	pthread_mutex_unlock(&b->lock);
	if (!is_write)
		memset(data, 0xff, len);
	return false;
}
