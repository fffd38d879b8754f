/* SPDX-License-Identifier: Apache-2.0
 * Split virtqueue parsing against hostile rings, and the virtio-blk / virtio-rng
 * request handling on real guest memory and a real image file (no KVM needed).
 */
#include <fcntl.h>

#include "devices/virtio/virtio.h"
#include "harness.h"

#define DESC 0x1000
#define AVAIL 0x2000
#define USED 0x3000

struct vdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

static guest_mem m;
static virtq q;

static void setup(void)
{
	silo_error err = {0};
	REQUIRE(guest_mem_create(&m, 1 << 20, &err) == 0);
	q = (virtq){.size = 8, .ready = true, .desc = DESC, .avail = AVAIL, .used = USED};
}

static void desc(int i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	struct vdesc d = {addr, len, flags, next};
	REQUIRE(guest_mem_write(&m, DESC + 16 * i, &d, sizeof d) == 0);
}

static void publish(uint16_t head)
{
	uint16_t *idx = guest_mem_ptr(&m, AVAIL + 2, 2);
	uint16_t *ring = guest_mem_ptr(&m, AVAIL + 4, 16);
	ring[*idx % 8] = head;
	(*idx)++;
}

static int pop(virtq_chain *c, const char **why)
{
	return virtq_pop(&m, &q, c, why);
}

static virtq_chain chain;

TEST(valid_chain_and_used_ring)
{
	setup();
	desc(0, 0x10000, 16, VIRTQ_DESC_F_NEXT, 3);
	desc(3, 0x11000, 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 5);
	desc(5, 0x12000, 1, VIRTQ_DESC_F_WRITE, 0);
	publish(0);
	const char *why = NULL;
	CHECK_INT_EQ(pop(&chain, &why), 1);
	CHECK_INT_EQ(chain.n, 3);
	CHECK_INT_EQ(chain.readable, 16);
	CHECK_INT_EQ(chain.writable, 513);
	CHECK_INT_EQ(pop(&chain, &why), 0); /* empty now */
	CHECK(virtq_push(&m, &q, 0, 513) == 0);
	uint16_t used_idx;
	uint32_t e[2];
	guest_mem_read(&m, USED + 2, &used_idx, 2);
	guest_mem_read(&m, USED + 4, e, 8);
	CHECK_INT_EQ(used_idx, 1);
	CHECK_INT_EQ(e[0], 0);
	CHECK_INT_EQ(e[1], 513);
	/* scatter/gather across descriptors with an offset */
	uint8_t src[600];
	for (int i = 0; i < 600; i++)
		src[i] = (uint8_t)i;
	CHECK_INT_EQ(virtq_chain_write(&m, &chain, 10, src, 600), 503);
	CHECK_INT_EQ(*(uint8_t *)guest_mem_ptr(&m, 0x1100a, 1), 0);
	CHECK_INT_EQ(*(uint8_t *)guest_mem_ptr(&m, 0x12000, 1), (uint8_t)502);
}

static void expect_broken(const char *needle)
{
	const char *why = NULL;
	CHECK_INT_EQ(pop(&chain, &why), -1);
	CHECK(q.broken);
	CHECK_CONTAINS(why, needle);
	/* once broken, the queue yields nothing until reset */
	CHECK_INT_EQ(pop(&chain, &why), 0);
}

TEST(loop_is_rejected)
{
	setup();
	desc(0, 0x10000, 16, VIRTQ_DESC_F_NEXT, 1);
	desc(1, 0x10000, 16, VIRTQ_DESC_F_NEXT, 0);
	publish(0);
	expect_broken("loop");
}

TEST(next_out_of_range)
{
	setup();
	desc(0, 0x10000, 16, VIRTQ_DESC_F_NEXT, 8);
	publish(0);
	expect_broken("next index");
}

TEST(buffer_outside_memory)
{
	setup();
	desc(0, (1 << 20) - 8, 16, 0, 0);
	publish(0);
	expect_broken("outside guest memory");
	setup();
	desc(0, UINT64_MAX - 4, 16, 0, 0);
	publish(0);
	expect_broken("outside guest memory");
	setup();
	desc(0, 0x10000, 0, 0, 0);
	publish(0);
	expect_broken("outside guest memory");
}

TEST(readable_after_writable)
{
	setup();
	desc(0, 0x10000, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	desc(1, 0x10000, 16, 0, 0);
	publish(0);
	expect_broken("readable descriptor after");
}

TEST(indirect_and_bad_heads)
{
	setup();
	desc(0, 0x10000, 16, VIRTQ_DESC_F_INDIRECT, 0);
	publish(0);
	expect_broken("indirect");
	setup();
	publish(9);
	expect_broken("not a descriptor index");
	setup();
	uint16_t idx = 100;
	guest_mem_write(&m, AVAIL + 2, &idx, 2);
	expect_broken("ran ahead");
}

TEST(ring_layout_checks)
{
	setup();
	CHECK(virtq_layout_valid(&m, &q));
	q.size = 6;
	CHECK(!virtq_layout_valid(&m, &q));
	q.size = 512;
	CHECK(!virtq_layout_valid(&m, &q));
	q.size = 8;
	q.desc = DESC + 8;
	CHECK(!virtq_layout_valid(&m, &q));
	q.desc = (1 << 20) - 64;
	CHECK(!virtq_layout_valid(&m, &q));
	const char *why = NULL;
	CHECK_INT_EQ(pop(&chain, &why), -1);
}

static void *make_blk(bool ro, char *path)
{
	strcpy(path, "/tmp/silo-vmm-blk-XXXXXX");
	int fd = mkstemp(path);
	REQUIRE(fd >= 0);
	char sec[1024] = "sector zero";
	strcpy(sec + 512, "sector one");
	REQUIRE(write(fd, sec, sizeof sec) == (ssize_t)sizeof sec);
	close(fd);
	silo_error err = {0};
	void *b = virtio_blk_create(path, ro, "disk-7", &err);
	REQUIRE(b);
	return b;
}

static uint8_t blk_req(void *b, uint32_t type, uint64_t sector, uint32_t data_len, bool data_write)
{
	struct {
		uint32_t type, reserved;
		uint64_t sector;
	} h = {type, 0, sector};
	guest_mem_write(&m, 0x10000, &h, sizeof h);
	desc(0, 0x10000, 16, VIRTQ_DESC_F_NEXT, 1);
	if (data_len) {
		desc(1, 0x11000, data_len, VIRTQ_DESC_F_NEXT | (data_write ? VIRTQ_DESC_F_WRITE : 0), 2);
		desc(2, 0x12000, 1, VIRTQ_DESC_F_WRITE, 0);
	} else {
		desc(0, 0x10000, 16, VIRTQ_DESC_F_NEXT, 2);
		desc(2, 0x12000, 1, VIRTQ_DESC_F_WRITE, 0);
	}
	*(uint8_t *)guest_mem_ptr(&m, 0x12000, 1) = 0xee;
	publish(0);
	CHECK(virtio_blk_process(b, &m, &q));
	return *(uint8_t *)guest_mem_ptr(&m, 0x12000, 1);
}

TEST(blk_requests)
{
	setup();
	char path[64];
	void *b = make_blk(false, path);
	CHECK_INT_EQ(blk_req(b, 0, 1, 512, true), 0);
	CHECK_STR_EQ((char *)guest_mem_ptr(&m, 0x11000, 1), "sector one");
	CHECK_INT_EQ(blk_req(b, 0, 2, 512, true), 1);  /* past the end */
	CHECK_INT_EQ(blk_req(b, 0, 1, 1024, true), 1); /* runs past the end */
	CHECK_INT_EQ(blk_req(b, 0, UINT64_MAX, 512, true), 1);
	CHECK_INT_EQ(blk_req(b, 0, 0, 100, true), 1); /* not a sector multiple */
	strcpy((char *)guest_mem_ptr(&m, 0x11000, 1), "from guest");
	CHECK_INT_EQ(blk_req(b, 1, 0, 512, false), 0);
	CHECK_INT_EQ(blk_req(b, 8, 0, 20, true), 0);
	CHECK_STR_EQ((char *)guest_mem_ptr(&m, 0x11000, 1), "disk-7");
	CHECK_INT_EQ(blk_req(b, 4, 0, 0, false), 0);
	CHECK_INT_EQ(blk_req(b, 77, 0, 0, false), 2); /* unsupported */
	virtio_blk_ops.destroy(b);
	char buf[16] = {0};
	int fd = open(path, O_RDONLY);
	CHECK(read(fd, buf, 10) == 10);
	close(fd);
	CHECK_STR_EQ(buf, "from guest");
	unlink(path);
	/* read-only: writes fail, reads work */
	setup();
	b = make_blk(true, path);
	CHECK_INT_EQ(blk_req(b, 1, 0, 512, false), 1);
	CHECK_INT_EQ(blk_req(b, 0, 0, 512, true), 0);
	CHECK_STR_EQ((char *)guest_mem_ptr(&m, 0x11000, 1), "sector zero");
	virtio_blk_ops.destroy(b);
	unlink(path);
	silo_error err = {0};
	CHECK(virtio_blk_create("/nonexistent/img", false, NULL, &err) == NULL);
	CHECK_CONTAINS(err.message, "/nonexistent/img");
}

TEST(rng_fills_buffers)
{
	setup();
	silo_error err = {0};
	void *r = virtio_rng_create(&err);
	REQUIRE(r);
	desc(0, 0x11000, 64, VIRTQ_DESC_F_WRITE, 0);
	publish(0);
	CHECK(virtio_rng_process(r, &m, &q));
	uint32_t e[2];
	guest_mem_read(&m, USED + 4, e, 8);
	CHECK_INT_EQ(e[1], 64);
	int zeros = 0;
	for (int i = 0; i < 64; i++)
		zeros += *(uint8_t *)guest_mem_ptr(&m, 0x11000 + i, 1) == 0;
	CHECK(zeros < 16);
	virtio_rng_ops.destroy(r);
}

TEST_MAIN(valid_chain_and_used_ring, loop_is_rejected, next_out_of_range, buffer_outside_memory,
	  readable_after_writable, indirect_and_bad_heads, ring_layout_checks, blk_requests, rng_fills_buffers)
