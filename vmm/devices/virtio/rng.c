/* SPDX-License-Identifier: Apache-2.0
 * virtio-rng: fills each writable chain with getrandom() bytes (at most 64 KiB a chain).
 */
#include <stdlib.h>
#include <sys/random.h>

#include "virtio.h"
#include "common/error.h"

typedef struct rng_dev {
	uint8_t buf[65536];
} rng_dev;

void *virtio_rng_create(silo_error *err)
{
	rng_dev *r = calloc(1, sizeof *r);
	if (!r)
		silo_fail(err, SILO_ERR_INTERNAL, 0, "virtio-rng");
	return r;
}

static uint32_t rng_handle(void *d, const guest_mem *m, const virtq_chain *c)
{
	rng_dev *r = d;
	uint64_t n = c->writable < sizeof r->buf ? c->writable : sizeof r->buf;
	ssize_t got = n ? getrandom(r->buf, n, 0) : 0;
	return got > 0 ? (uint32_t)virtq_chain_write(m, c, 0, r->buf, (uint64_t)got) : 0;
}

bool virtio_rng_process(void *d, const guest_mem *m, virtq *q)
{
	return virtq_serve(m, q, rng_handle, d);
}

static bool rng_notify(void *d, virtio_mmio *t, int qi)
{
	return virtio_rng_process(d, &t->vm->mem, &t->queues[qi]);
}

static void rng_destroy(void *d)
{
	free(d);
}

const virtio_device_ops virtio_rng_ops = {
	.name = "virtio-rng",
	.device_id = 4,
	.num_queues = 1,
	.notify = rng_notify,
	.destroy = rng_destroy,
};
