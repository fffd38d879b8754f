/* SPDX-License-Identifier: Apache-2.0
 * The hybrid vsock device end to end without KVM: the test plays the guest
 * driver on real guest memory and virtqueues, the host side uses real unix
 * sockets: CONNECT/OK handshake, data both ways, guest-initiated connections to
 * <uds>_PORT, RST when nobody listens, malformed CONNECT lines, host EOF.
 */
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "common/util.h"
#include "devices/virtio/virtio.h"
#include "harness.h"

typedef struct __attribute__((packed)) hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
} hdr;

struct vdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

static guest_mem m;
static virtq rxq, txq;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static vsock_dev *dev;
static char dir[64], uds[128];
static uint16_t rx_seen, tx_avail;

static void publish(virtq *q, uint16_t head)
{
	uint16_t *idx = guest_mem_ptr(&m, q->avail + 2, 2);
	uint16_t *ring = guest_mem_ptr(&m, q->avail + 4, 2 * q->size);
	ring[*idx % q->size] = head;
	__atomic_store_n(idx, (uint16_t)(*idx + 1), __ATOMIC_RELEASE);
}

static void setup(void)
{
	silo_error err = {0};
	REQUIRE(guest_mem_create(&m, 1 << 20, &err) == 0);
	rxq = (virtq){.size = 16, .ready = true, .desc = 0x1000, .avail = 0x2000, .used = 0x3000};
	txq = (virtq){.size = 16, .ready = true, .desc = 0x4000, .avail = 0x5000, .used = 0x6000};
	for (int i = 0; i < 16; i++) {
		struct vdesc d = {0x10000 + 0x1000 * (uint64_t)i, 4096, VIRTQ_DESC_F_WRITE, 0};
		guest_mem_write(&m, rxq.desc + 16 * i, &d, sizeof d);
		publish(&rxq, (uint16_t)i);
	}
	strcpy(dir, "/tmp/silo-vsock-XXXXXX");
	REQUIRE(mkdtemp(dir));
	snprintf(uds, sizeof uds, "%s/v.sock", dir);
	dev = vsock_create(uds, 3, &err);
	REQUIRE(dev);
	vsock_env env = {.mem = &m, .rxq = &rxq, .txq = &txq, .lock = &lock};
	REQUIRE(vsock_start(dev, &env, &err) == 0);
}

static void teardown(void)
{
	vsock_destroy(dev);
	CHECK(access(uds, F_OK) != 0); /* the socket is removed */
	rm_rf(dir);
	guest_mem_destroy(&m);
}

/* Wait for the next rx packet; copy header and payload; recycle the buffer. */
static bool guest_recv(hdr *h, char *payload, size_t cap)
{
	for (int i = 0; i < 300; i++) {
		pthread_mutex_lock(&lock);
		uint16_t used = __atomic_load_n((uint16_t *)guest_mem_ptr(&m, rxq.used + 2, 2), __ATOMIC_ACQUIRE);
		if (used != rx_seen) {
			uint32_t e[2];
			guest_mem_read(&m, rxq.used + 4 + 8 * (rx_seen % 16), e, 8);
			rx_seen++;
			guest_mem_read(&m, 0x10000 + 0x1000 * (uint64_t)e[0], h, sizeof *h);
			size_t n = h->len < cap ? h->len : cap - 1;
			if (payload) {
				guest_mem_read(&m, 0x10000 + 0x1000 * (uint64_t)e[0] + sizeof *h, payload, n);
				payload[n] = 0;
			}
			publish(&rxq, (uint16_t)e[0]);
			vsock_process_rx(dev);
			pthread_mutex_unlock(&lock);
			return true;
		}
		pthread_mutex_unlock(&lock);
		usleep(10000);
	}
	return false;
}

static void guest_send(uint16_t op, uint32_t src_port, uint32_t dst_port, const char *data)
{
	uint32_t len = data ? (uint32_t)strlen(data) : 0;
	hdr h = {.src_cid = 3, .dst_cid = 2, .src_port = src_port, .dst_port = dst_port, .len = len,
		 .type = 1, .op = op, .buf_alloc = 65536};
	uint16_t slot = tx_avail++ % 16;
	uint64_t buf = 0x40000 + 0x1000 * (uint64_t)slot;
	guest_mem_write(&m, buf, &h, sizeof h);
	if (len)
		guest_mem_write(&m, buf + sizeof h, data, len);
	struct vdesc d = {buf, (uint32_t)sizeof h + len, 0, 0};
	pthread_mutex_lock(&lock);
	guest_mem_write(&m, txq.desc + 16 * slot, &d, sizeof d);
	publish(&txq, slot);
	vsock_process_tx(dev);
	pthread_mutex_unlock(&lock);
}

static int host_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(fd >= 0);
	REQUIRE(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
	return fd;
}

static ssize_t read_timeout(int fd, char *buf, size_t cap)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, 3000) != 1)
		return -2;
	ssize_t n = read(fd, buf, cap - 1);
	if (n >= 0)
		buf[n] = 0;
	return n;
}

TEST(host_initiated_stream)
{
	setup();
	int fd = host_connect(uds);
	REQUIRE(write_all(fd, "CONNECT 1024\n", 13) == 0);
	hdr h;
	char pl[256];
	REQUIRE(guest_recv(&h, pl, sizeof pl));
	CHECK_INT_EQ(h.op, 1);
	CHECK_INT_EQ(h.src_cid, 2);
	CHECK_INT_EQ(h.dst_cid, 3);
	CHECK_INT_EQ(h.dst_port, 1024);
	uint32_t host_port = h.src_port;
	guest_send(2, 1024, host_port, NULL); /* RESPONSE */
	char buf[128], want[64];
	CHECK(read_timeout(fd, buf, sizeof buf) > 0);
	snprintf(want, sizeof want, "OK %u\n", host_port);
	CHECK_STR_EQ(buf, want);
	REQUIRE(write_all(fd, "hello", 5) == 0);
	REQUIRE(guest_recv(&h, pl, sizeof pl));
	CHECK_INT_EQ(h.op, 5);
	CHECK_INT_EQ(h.len, 5);
	CHECK_STR_EQ(pl, "hello");
	guest_send(5, 1024, host_port, "world");
	CHECK(read_timeout(fd, buf, sizeof buf) == 5);
	CHECK_STR_EQ(buf, "world");
	/* host closes: the guest gets SHUTDOWN; its RST completes the close */
	close(fd);
	REQUIRE(guest_recv(&h, pl, sizeof pl));
	CHECK_INT_EQ(h.op, 4);
	guest_send(3, 1024, host_port, NULL);
	/* data to a closed connection is answered with RST */
	guest_send(5, 1024, host_port, "late");
	REQUIRE(guest_recv(&h, pl, sizeof pl));
	CHECK_INT_EQ(h.op, 3);
	teardown();
}

TEST(guest_initiated_stream_and_rst)
{
	setup();
	char path[200];
	snprintf(path, sizeof path, "%s_5000", uds);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strcpy(sa.sun_path, path);
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	REQUIRE(bind(l, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(l, 1) == 0);
	guest_send(1, 777, 5000, NULL); /* REQUEST */
	hdr h;
	char pl[64], buf[64];
	REQUIRE(guest_recv(&h, pl, sizeof pl));
	CHECK_INT_EQ(h.op, 2);
	CHECK_INT_EQ(h.src_port, 5000);
	CHECK_INT_EQ(h.dst_port, 777);
	int c = accept(l, NULL, NULL);
	REQUIRE(c >= 0);
	guest_send(5, 777, 5000, "ping");
	CHECK(read_timeout(c, buf, sizeof buf) == 4);
	CHECK_STR_EQ(buf, "ping");
	REQUIRE(write_all(c, "pong", 4) == 0);
	REQUIRE(guest_recv(&h, pl, sizeof pl));
	CHECK_INT_EQ(h.op, 5);
	CHECK_STR_EQ(pl, "pong");
	/* nobody listens on 6000 */
	guest_send(1, 778, 6000, NULL);
	REQUIRE(guest_recv(&h, pl, sizeof pl));
	CHECK_INT_EQ(h.op, 3);
	CHECK_INT_EQ(h.dst_port, 778);
	close(c);
	close(l);
	unlink(path);
	teardown();
}

TEST(malformed_connect_lines_are_closed)
{
	setup();
	const char *bad[] = {"CONNECT abc\n", "CONNECT \n", "HELLO 1\n", "CONNECT 99999999999\n",
			     "CONNECT 1234567890123456789012345678901234567890\n"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int fd = host_connect(uds);
		REQUIRE(write_all(fd, bad[i], strlen(bad[i])) == 0);
		char buf[32];
		ssize_t n = read_timeout(fd, buf, sizeof buf);
		CHECK(n == 0 || (n == -1 && errno == ECONNRESET)); /* closed, no OK */
		close(fd);
	}
	hdr h;
	CHECK(!guest_recv(&h, NULL, 0) || h.op != 1); /* no REQUEST reached the guest */
	teardown();
}

TEST_MAIN(host_initiated_stream, guest_initiated_stream_and_rst, malformed_connect_lines_are_closed)
