/* SPDX-License-Identifier: Apache-2.0
 * silo-vmm's virtio-net without KVM (Linux guests cannot run under PVM here):
 * the test plays the guest driver on real guest memory and virtqueues, and
 * passt's end of the backend socket (a socketpair speaking QEMU's
 * length-prefixed frames). Frames both ways through the I/O thread; hostile
 * chains (short, oversized, with a write buffer), frames larger than the
 * guest's buffer, backend lengths of 0 and beyond 65535 (the backend ends), a
 * backend that does not read (the guest's tx waits in its ring, memory stays
 * bounded), a guest that gives no rx buffers (frames wait, in order). The jailed
 * silo-vmm runs the device under its seccomp filter (made before it, as preopen does):
 * frames both ways under that filter (a syscall off the list kills the test).
 */
#include <linux/seccomp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "common/util.h"
#include "devices/virtio/virtio.h"
#include "harness.h"
#include "seccomp_bpf.h"

struct vdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

enum { QS = 64, RXBUF = 0x100000, TXBUF = 0x200000, SLOT = 0x800 };   /* guest addresses */
static guest_mem m;
static virtq rxq, txq;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static vnet_dev *dev;
static int peer;          /* passt's end */
static uint16_t rx_seen, tx_avail, tx_seen;
static bool under_filter; /* setup enters silo-vmm's seccomp filter once the device exists */

static void publish(virtq *q, uint16_t head)
{
	uint16_t *idx = guest_mem_ptr(&m, q->avail + 2, 2);
	uint16_t *ring = guest_mem_ptr(&m, q->avail + 4, 2 * q->size);
	ring[*idx % q->size] = head;
	__atomic_store_n(idx, (uint16_t)(*idx + 1), __ATOMIC_RELEASE);
}

static uint16_t used_idx(virtq *q)
{
	return __atomic_load_n((uint16_t *)guest_mem_ptr(&m, q->used + 2, 2), __ATOMIC_ACQUIRE);
}

static void give_rx(uint16_t slot, uint32_t len)
{
	struct vdesc d = {RXBUF + (uint64_t)SLOT * slot, len, VIRTQ_DESC_F_WRITE, 0};
	guest_mem_write(&m, rxq.desc + 16 * slot, &d, sizeof d);
	publish(&rxq, slot);
}

static void setup(int sndbuf)
{
	silo_error err = {0};
	REQUIRE(guest_mem_create(&m, 8 << 20, &err) == 0);
	rxq = (virtq){.size = QS, .ready = true, .desc = 0x1000, .avail = 0x2000, .used = 0x3000};
	txq = (virtq){.size = QS, .ready = true, .desc = 0x4000, .avail = 0x5000, .used = 0x6000};
	int sp[2];
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
	if (sndbuf) {
		setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
		setsockopt(sp[1], SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof sndbuf);
	}
	static const uint8_t mac[6] = {2, 0, 0, 0, 0, 1};
	dev = vnet_create(sp[0], mac, &err);
	REQUIRE(dev);
	peer = sp[1];
	if (under_filter) { /* this thread and the device's I/O thread, as in the jail */
		struct sock_fprog prog = {.len = (unsigned short)ARRAY_SIZE(vmm_seccomp_bpf),
					  .filter = (struct sock_filter *)vmm_seccomp_bpf};
		REQUIRE(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
		REQUIRE(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0);
	}
	vnet_env env = {.mem = &m, .rxq = &rxq, .txq = &txq, .lock = &lock};
	REQUIRE(vnet_start(dev, &env, &err) == 0);
	rx_seen = tx_avail = tx_seen = 0;
}

static void teardown(void)
{
	vnet_destroy(dev);
	close(peer);
	guest_mem_destroy(&m);
}

/* The guest sends one chain: the 12-byte header then len bytes of frame (of fill), split
 * over buffers of at most 32 KiB; extra_write adds a write descriptor (hostile). */
static void guest_tx(uint32_t len, uint8_t fill, bool extra_write, uint32_t hdr_len)
{
	/* 21 slots of 3 descriptors (a 65 KiB frame needs 3 of 32 KiB): at most 21 chains in flight */
	uint16_t head = (uint16_t)(tx_avail % 21 * 3);
	uint64_t buf = TXBUF + (uint64_t)(tx_avail % 21) * 0x20000;
	uint8_t *p = guest_mem_ptr(&m, buf, hdr_len + len);
	memset(p, 0, hdr_len);
	memset(p + hdr_len, fill, len);
	uint32_t total = hdr_len + len, off = 0;
	uint16_t k = 0;
	while (off < total || (extra_write && k == 0)) {
		uint32_t piece = total - off > 32768 ? 32768 : total - off;
		bool last = off + piece >= total && !extra_write;
		struct vdesc d = {buf + off, piece, last ? 0 : VIRTQ_DESC_F_NEXT, (uint16_t)(head + k + 1)};
		guest_mem_write(&m, txq.desc + 16 * (head + k), &d, sizeof d);
		off += piece;
		k++;
		if (off >= total)
			break;
	}
	if (extra_write) {
		struct vdesc d = {buf + 0x10000, 64, VIRTQ_DESC_F_WRITE, 0};
		guest_mem_write(&m, txq.desc + 16 * (head + k), &d, sizeof d);
	}
	tx_avail++;
	pthread_mutex_lock(&lock);
	publish(&txq, head);
	vnet_process_tx(dev);
	pthread_mutex_unlock(&lock);
}

/* passt's side: read one length-prefixed frame (timeout_ms). Returns its length or -1. */
static long peer_read_frame(uint8_t *buf, size_t cap, int timeout_ms)
{
	size_t got = 0, want = 4;
	uint8_t hdr[4];
	while (got < want) {
		struct pollfd p = {.fd = peer, .events = POLLIN};
		if (poll(&p, 1, timeout_ms) <= 0)
			return -1;
		uint8_t *dst = got < 4 ? hdr + got : buf + got - 4;
		size_t room = got < 4 ? 4 - got : want - got;
		ssize_t n = read(peer, dst, room);
		if (n <= 0)
			return -1;
		got += (size_t)n;
		if (got == 4) {
			want = 4 + ((uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3]);
			if (want - 4 > cap)
				return -1;
		}
	}
	return (long)(want - 4);
}

static void peer_send_frame(uint32_t len, uint8_t fill)
{
	uint8_t *b = xmalloc(4 + len);
	b[0] = (uint8_t)(len >> 24), b[1] = (uint8_t)(len >> 16), b[2] = (uint8_t)(len >> 8), b[3] = (uint8_t)len;
	memset(b + 4, fill, len);
	REQUIRE(write_all(peer, b, 4 + len) == 0);
	free(b);
}

/* Wait for the next used rx entry: its length and the frame's first byte. */
static bool guest_rx(uint32_t *len, uint8_t *first, uint8_t *num_buffers)
{
	for (int i = 0; i < 300; i++) {
		pthread_mutex_lock(&lock);
		if (used_idx(&rxq) != rx_seen) {
			uint32_t e[2];
			guest_mem_read(&m, rxq.used + 4 + 8 * (rx_seen % QS), e, 8);
			rx_seen++;
			*len = e[1];
			uint8_t h[13];
			guest_mem_read(&m, RXBUF + (uint64_t)SLOT * e[0], h, sizeof h);
			*num_buffers = h[10];
			*first = h[12];
			pthread_mutex_unlock(&lock);
			return true;
		}
		pthread_mutex_unlock(&lock);
		usleep(10000);
	}
	return false;
}

static void frames_both_ways_run(void)
{
	setup(0);
	guest_tx(60, 0xab, false, 12);
	uint8_t buf[70000];
	CHECK_INT_EQ(peer_read_frame(buf, sizeof buf, 2000), 60);
	CHECK(buf[0] == 0xab && buf[59] == 0xab);
	for (uint16_t i = 0; i < 4; i++)
		give_rx(i, SLOT);
	pthread_mutex_lock(&lock);
	vnet_process_rx(dev);
	pthread_mutex_unlock(&lock);
	peer_send_frame(1514, 0x11);
	peer_send_frame(60, 0x22);
	uint32_t len;
	uint8_t first, nb;
	REQUIRE(guest_rx(&len, &first, &nb));
	CHECK(len == 12 + 1514 && first == 0x11 && nb == 1);
	REQUIRE(guest_rx(&len, &first, &nb));
	CHECK(len == 12 + 60 && first == 0x22);
	vnet_counters c;
	vnet_counters_get(dev, &c);
	CHECK(c.tx_frames == 1 && c.rx_frames == 2 && !c.tx_dropped && !c.rx_dropped);
	teardown();
}

TEST(frames_both_ways)
{
	frames_both_ways_run();
}

TEST(frames_both_ways_under_the_jails_seccomp_filter)
{
	under_filter = true;
	frames_both_ways_run();
}

TEST(hostile_tx_chains_are_dropped)
{
	setup(0);
	guest_tx(0, 0, false, 8);          /* shorter than the virtio header */
	guest_tx(10, 1, false, 12);        /* shorter than an Ethernet header */
	guest_tx(65536, 2, false, 12);     /* a frame beyond 65535 bytes */
	guest_tx(60, 3, true, 12);         /* a device-writable buffer in a tx chain */
	guest_tx(64, 4, false, 12);        /* a good one after all that */
	uint8_t buf[70000];
	CHECK_INT_EQ(peer_read_frame(buf, sizeof buf, 2000), 64);
	CHECK(buf[0] == 4);
	vnet_counters c;
	vnet_counters_get(dev, &c);
	CHECK_INT_EQ(c.tx_dropped, 4);
	CHECK_INT_EQ(c.tx_frames, 1);
	CHECK_INT_EQ(used_idx(&txq), 5);   /* every chain went back to the guest */
	teardown();
}

TEST(frames_that_do_not_fit_and_bad_lengths)
{
	setup(0);
	give_rx(0, 100);                   /* too small for a 1514-byte frame */
	give_rx(1, SLOT);
	pthread_mutex_lock(&lock);
	vnet_process_rx(dev);
	pthread_mutex_unlock(&lock);
	peer_send_frame(1514, 0x33);
	peer_send_frame(60, 0x44);
	uint32_t len;
	uint8_t first, nb;
	REQUIRE(guest_rx(&len, &first, &nb));
	CHECK_INT_EQ(len, 0);              /* dropped, the buffer returned empty */
	REQUIRE(guest_rx(&len, &first, &nb));
	CHECK(len == 72 && first == 0x44);
	vnet_counters c;
	vnet_counters_get(dev, &c);
	CHECK_INT_EQ(c.rx_dropped, 1);
	/* a length of 0 ends the backend: passt's end sees EOF */
	uint8_t zero[4] = {0, 0, 0, 0};
	REQUIRE(write_all(peer, zero, 4) == 0);
	char x;
	struct pollfd p = {.fd = peer, .events = POLLIN};
	CHECK(poll(&p, 1, 3000) == 1 && read(peer, &x, 1) == 0);
	teardown();
	setup(0);
	uint8_t big[4] = {0, 1, 0x11, 0x70};   /* 70000 */
	REQUIRE(write_all(peer, big, 4) == 0);
	CHECK(poll(&p, 1, 3000) == 1 && read(peer, &x, 1) == 0);
	teardown();
}

TEST(a_backend_that_does_not_read_stalls_the_guest_not_memory)
{
	setup(8192);
	/* 20 chains of 60 KB frames: more than the 512 KiB tx buffer plus the socket holds */
	for (int i = 0; i < 20; i++)
		guest_tx(60000, (uint8_t)i, false, 12);
	usleep(200000);
	uint16_t done = used_idx(&txq);
	CHECK(done < 20);                  /* the rest waits in the guest's ring */
	printf("# %u of 20 chains taken while the backend does not read\n", done);
	/* now read everything: the remaining chains move and arrive in order */
	uint8_t *buf = xmalloc(70000);
	int frames = 0;
	for (int i = 0; i < 20; i++) {
		long n = peer_read_frame(buf, 70000, 3000);
		if (n != 60000 || buf[0] != (uint8_t)i) {
			vnet_counters c;
			vnet_counters_get(dev, &c);
			printf("# frame %d: length %ld, first byte %u; chains taken %u, tx frames %llu, dropped %llu\n", i, n,
			       n > 0 ? buf[0] : 0, used_idx(&txq), (unsigned long long)c.tx_frames,
			       (unsigned long long)c.tx_dropped);
			break;
		}
		frames++;
	}
	CHECK_INT_EQ(frames, 20);
	CHECK_INT_EQ(used_idx(&txq), 20);
	free(buf);
	teardown();
}

TEST(no_rx_buffers_frames_wait_in_order)
{
	setup(0);
	for (int i = 0; i < 20; i++)
		peer_send_frame(100, (uint8_t)(0x50 + i));
	usleep(100000);
	CHECK_INT_EQ(used_idx(&rxq), 0);
	for (uint16_t i = 0; i < QS; i++)
		give_rx(i, SLOT);
	pthread_mutex_lock(&lock);
	vnet_process_rx(dev);
	pthread_mutex_unlock(&lock);
	bool order = true;
	for (int i = 0; i < 20; i++) {
		uint32_t len;
		uint8_t first, nb;
		if (!guest_rx(&len, &first, &nb) || first != 0x50 + i || len != 112)
			order = false;
	}
	CHECK(order);
	teardown();
}

TEST(not_a_stream_socket_is_refused)
{
	int sp[2];
	REQUIRE(socketpair(AF_UNIX, SOCK_DGRAM, 0, sp) == 0);
	silo_error err = {0};
	static const uint8_t mac[6] = {2, 0, 0, 0, 0, 1};
	CHECK(vnet_create(sp[0], mac, &err) == NULL);
	CHECK_CONTAINS(err.message, "not a connected stream socket");
	close(sp[0]);
	close(sp[1]);
}

TEST_MAIN(frames_both_ways, frames_both_ways_under_the_jails_seccomp_filter, hostile_tx_chains_are_dropped, frames_that_do_not_fit_and_bad_lengths,
	  a_backend_that_does_not_read_stalls_the_guest_not_memory, no_rx_buffers_frames_wait_in_order,
	  not_a_stream_socket_is_refused)
