/* SPDX-License-Identifier: Apache-2.0
 * Split virtqueues (virtio 1.x, 2.6). Indirect descriptors are not offered.
 */
#include <stdlib.h>
#include <string.h>

#include "virtio.h"

struct vdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

bool virtq_layout_valid(const guest_mem *m, const virtq *q)
{
	if (q->size == 0 || q->size > VIRTQ_MAX_SIZE || (q->size & (q->size - 1)))
		return false;
	if ((q->desc & 15) || (q->avail & 1) || (q->used & 3))
		return false;
	uint64_t n = q->size;
	return guest_mem_ptr(m, q->desc, 16 * n) && guest_mem_ptr(m, q->avail, 6 + 2 * n) &&
	       guest_mem_ptr(m, q->used, 6 + 8 * n);
}

static uint16_t rd16(const guest_mem *m, uint64_t gpa)
{
	uint16_t v = 0;
	guest_mem_read(m, gpa, &v, 2);
	return v;
}

int virtq_pop(const guest_mem *m, virtq *q, virtq_chain *c, const char **why)
{
	const char *dummy;
	if (!why)
		why = &dummy;
	*why = NULL;
	if (!q->ready || q->broken)
		return 0;
	if (!virtq_layout_valid(m, q)) {
		*why = "queue rings outside guest memory";
		goto broken;
	}
	uint16_t avail_idx = __atomic_load_n((uint16_t *)guest_mem_ptr(m, q->avail + 2, 2), __ATOMIC_ACQUIRE);
	uint16_t pending = (uint16_t)(avail_idx - q->last_avail);
	if (pending == 0)
		return 0;
	if (pending > q->size) {
		*why = "avail index ran ahead of the queue size";
		goto broken;
	}
	uint16_t head = rd16(m, q->avail + 4 + 2ULL * (q->last_avail % q->size));
	if (head >= q->size) {
		*why = "avail ring entry is not a descriptor index";
		goto broken;
	}
	c->head = head;
	c->n = 0;
	c->readable = c->writable = 0;
	uint16_t i = head;
	bool seen_write = false;
	for (;;) {
		if (c->n >= q->size) {
			*why = "descriptor chain longer than the queue (loop)";
			goto broken;
		}
		struct vdesc d;
		guest_mem_read(m, q->desc + 16ULL * i, &d, sizeof d);
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			*why = "indirect descriptor (not negotiated)";
			goto broken;
		}
		if (d.len == 0 || !guest_mem_ptr(m, d.addr, d.len)) {
			*why = "descriptor buffer outside guest memory";
			goto broken;
		}
		bool w = d.flags & VIRTQ_DESC_F_WRITE;
		if (!w && seen_write) {
			*why = "readable descriptor after a writable one";
			goto broken;
		}
		seen_write |= w;
		c->bufs[c->n++] = (virtq_buf){d.addr, d.len, w};
		if (w)
			c->writable += d.len;
		else
			c->readable += d.len;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			break;
		if (d.next >= q->size) {
			*why = "descriptor next index out of range";
			goto broken;
		}
		i = d.next;
	}
	q->last_avail++;
	return 1;
broken:
	q->broken = true;
	return -1;
}

int virtq_push(const guest_mem *m, virtq *q, uint16_t head, uint32_t written)
{
	if (!virtq_layout_valid(m, q))
		return -1;
	uint64_t slot = q->used + 4 + 8ULL * (q->used_idx % q->size);
	uint32_t e[2] = {head, written};
	guest_mem_write(m, slot, e, sizeof e);
	q->used_idx++;
	__atomic_store_n((uint16_t *)guest_mem_ptr(m, q->used + 2, 2), q->used_idx, __ATOMIC_RELEASE);
	return 0;
}

bool virtq_serve(const guest_mem *m, virtq *q, uint32_t (*handle)(void *dev, const guest_mem *m, const virtq_chain *c),
		 void *dev)
{
	virtq_chain *c = malloc(sizeof *c);
	if (!c)
		return false;
	bool any = false;
	for (int budget = 0; budget < 4 * VIRTQ_MAX_SIZE; budget++) {
		if (virtq_pop(m, q, c, NULL) <= 0)
			break;
		virtq_push(m, q, c->head, handle(dev, m, c));
		any = true;
	}
	free(c);
	return any;
}

static uint64_t chain_copy(const guest_mem *m, const virtq_chain *c, bool write, uint64_t off, uint8_t *p,
			   uint64_t len)
{
	uint64_t done = 0;
	for (uint16_t i = 0; i < c->n && done < len; i++) {
		const virtq_buf *b = &c->bufs[i];
		if (b->write != write)
			continue;
		if (off >= b->len) {
			off -= b->len;
			continue;
		}
		uint64_t n = b->len - off;
		if (n > len - done)
			n = len - done;
		/* Validated in virtq_pop; checked again because guest RAM is the only authority. */
		uint8_t *g = guest_mem_ptr(m, b->gpa + off, n);
		if (!g)
			break;
		if (write)
			memcpy(g, p + done, n);
		else
			memcpy(p + done, g, n);
		done += n;
		off = 0;
	}
	return done;
}

uint64_t virtq_chain_read(const guest_mem *m, const virtq_chain *c, uint64_t off, void *dst, uint64_t len)
{
	return chain_copy(m, c, false, off, dst, len);
}

uint64_t virtq_chain_write(const guest_mem *m, const virtq_chain *c, uint64_t off, const void *src, uint64_t len)
{
	return chain_copy(m, c, true, off, (uint8_t *)src, len);
}
