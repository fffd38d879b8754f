/* SPDX-License-Identifier: Apache-2.0
 * virtio-blk on a raw image file: IN, OUT, FLUSH, GET_ID; read-only option.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "virtio.h"
#include "../../files.h"

#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_FLUSH 9
#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define S_OK 0
#define S_IOERR 1
#define S_UNSUPP 2
#define MAX_IO (1u << 20)

typedef struct blk_dev {
	int fd;
	bool ro;
	uint64_t sectors;
	char id[20];
	uint8_t *buf;
} blk_dev;

void *virtio_blk_create(const char *path, bool read_only, const char *id, silo_error *err)
{
	int fd = vmm_open(path, !read_only, "drive", err);
	if (fd < 0)
		return NULL;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size % 512) {
		close(fd);
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "drive %s: must be a regular file whose size is a multiple of 512", path),
		       NULL;
	}
	blk_dev *b = calloc(1, sizeof *b);
	uint8_t *buf = malloc(MAX_IO);
	if (!b || !buf) {
		free(b);
		free(buf);
		close(fd);
		return silo_fail(err, SILO_ERR_INTERNAL, ENOMEM, "virtio-blk"), NULL;
	}
	b->fd = fd;
	b->ro = read_only;
	b->sectors = (uint64_t)st.st_size / 512;
	b->buf = buf;
	strncpy(b->id, id ? id : "silo", sizeof b->id);
	return b;
}

static void blk_destroy(void *d)
{
	blk_dev *b = d;
	if (!b)
		return;
	close(b->fd);
	free(b->buf);
	free(b);
}

static void blk_config_read(void *d, uint64_t off, uint8_t *data, uint32_t len)
{
	blk_dev *b = d;
	uint8_t cfg[8];
	memcpy(cfg, &b->sectors, 8); /* capacity; the rest of the config reads as zero */
	virtio_config_copy(cfg, sizeof cfg, off, data, len);
}

static uint8_t blk_request(blk_dev *b, const guest_mem *m, const virtq_chain *c, uint32_t *written)
{
	struct {
		uint32_t type, reserved;
		uint64_t sector;
	} h;
	*written = 0;
	if (c->readable < sizeof h || c->writable < 1)
		return S_IOERR;
	virtq_chain_read(m, c, 0, &h, sizeof h);
	uint64_t data_len = h.type == T_OUT ? c->readable - sizeof h : c->writable - 1;
	switch (h.type) {
	case T_IN:
	case T_OUT: {
		if (h.type == T_OUT && b->ro)
			return S_IOERR;
		if (data_len % 512 || data_len > MAX_IO || h.sector > b->sectors ||
		    data_len / 512 > b->sectors - h.sector)
			return S_IOERR;
		off_t pos = (off_t)(h.sector * 512);
		if (h.type == T_IN) {
			ssize_t n = pread(b->fd, b->buf, data_len, pos);
			if (n != (ssize_t)data_len)
				return S_IOERR;
			*written = (uint32_t)virtq_chain_write(m, c, 0, b->buf, data_len);
		} else {
			virtq_chain_read(m, c, sizeof h, b->buf, data_len);
			if (pwrite(b->fd, b->buf, data_len, pos) != (ssize_t)data_len)
				return S_IOERR;
		}
		return S_OK;
	}
	case T_FLUSH:
		return b->ro || fdatasync(b->fd) == 0 ? S_OK : S_IOERR;
	case T_GET_ID: {
		char id[20] = {0};
		memcpy(id, b->id, sizeof id);
		*written = (uint32_t)virtq_chain_write(m, c, 0, id, data_len < 20 ? data_len : 20);
		return S_OK;
	}
	default:
		return S_UNSUPP;
	}
}

/* One request: its status byte is the last writable byte of the chain. */
static uint32_t blk_handle(void *d, const guest_mem *m, const virtq_chain *c)
{
	uint32_t written = 0;
	uint8_t st = blk_request(d, m, c, &written);
	virtq_chain_write(m, c, c->writable - 1, &st, 1);
	return written + 1;
}

bool virtio_blk_process(void *d, const guest_mem *m, virtq *q)
{
	return virtq_serve(m, q, blk_handle, d);
}

static bool blk_notify(void *d, virtio_mmio *t, int qi)
{
	return virtio_blk_process(d, &t->vm->mem, &t->queues[qi]);
}

const virtio_device_ops virtio_blk_ops = {
	.name = "virtio-blk",
	.device_id = 2,
	.features = 1ULL << VIRTIO_BLK_F_FLUSH,
	.num_queues = 1,
	.config_read = blk_config_read,
	.notify = blk_notify,
	.destroy = blk_destroy,
};

/* Read-only drives offer VIRTIO_BLK_F_RO: a separate ops row so the table stays const. */
const virtio_device_ops virtio_blk_ro_ops = {
	.name = "virtio-blk",
	.device_id = 2,
	.features = (1ULL << VIRTIO_BLK_F_FLUSH) | (1ULL << VIRTIO_BLK_F_RO),
	.num_queues = 1,
	.config_read = blk_config_read,
	.notify = blk_notify,
	.destroy = blk_destroy,
};
