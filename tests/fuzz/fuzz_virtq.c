/* SPDX-License-Identifier: Apache-2.0
 * Fuzz the split-virtqueue parser (vmm/devices/virtio/queue.c): the input is
 * a queue configuration followed by the guest RAM contents. Every chain that
 * virtq_pop accepts must lie entirely within guest RAM, be at most queue-size
 * long and have readable buffers before writable ones; pushing and copying
 * through it must stay in bounds (ASan checks the rest).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../vmm/devices/virtio/virtio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* header: size(2) desc(2) avail(2) used(2) last_avail(2), offsets are in 16-byte units */
	if (size < 10)
		return 0;
	enum { RAM = 16384 };
	static uint8_t ram[RAM];
	memset(ram, 0, RAM);
	size_t n = size - 10 < RAM ? size - 10 : RAM;
	memcpy(ram, data + 10, n);
	guest_mem m = {.memfd = -1, .host = ram, .size = RAM};
	virtq q = {0};
	uint16_t h[5];
	memcpy(h, data, sizeof h);
	q.size = h[0] % 512;
	q.desc = (uint64_t)h[1] * 16 % (RAM + 4096);
	q.avail = (uint64_t)h[2] * 2 % (RAM + 4096);
	q.used = (uint64_t)h[3] * 4 % (RAM + 4096);
	q.last_avail = h[4];
	q.used_idx = h[4];
	q.ready = true;
	static virtq_chain c;
	uint8_t buf[256];
	for (int i = 0; i < 64; i++) {
		const char *why = NULL;
		int r = virtq_pop(&m, &q, &c, &why);
		if (r < 0) {
			if (!why || !q.broken)
				abort();
			break;
		}
		if (r == 0)
			break;
		if (c.n == 0 || c.n > q.size)
			abort();
		bool w = false;
		for (uint16_t k = 0; k < c.n; k++) {
			if (!guest_mem_ptr(&m, c.bufs[k].gpa, c.bufs[k].len))
				abort();
			if (w && !c.bufs[k].write)
				abort();
			w |= c.bufs[k].write;
		}
		virtq_chain_read(&m, &c, 3, buf, sizeof buf);
		virtq_chain_write(&m, &c, 5, buf, sizeof buf);
		if (virtq_push(&m, &q, c.head, 7) < 0)
			abort();
	}
	return 0;
}
