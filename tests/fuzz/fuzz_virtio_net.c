/* SPDX-License-Identifier: Apache-2.0
 * Fuzz silo-vmm's virtio-net (vmm/devices/virtio/net.c) without a thread: the
 * input is a queue configuration for rx and tx, the guest RAM contents, and
 * bytes from the backend (fed as if passt sent them). tx and rx processing
 * must stay within guest RAM and the device's bounded buffers (ASan checks);
 * every frame accepted from the guest is well formed on the backend socket.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../vmm/devices/virtio/virtio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* header: rx size, desc, avail, used; tx size, desc, avail, used (u16 each); backend length (u16) */
	if (size < 18)
		return 0;
	enum { RAM = 65536 };
	static uint8_t ram[RAM];
	uint16_t h[9];
	memcpy(h, data, sizeof h);
	data += 18, size -= 18;
	size_t blen = h[8] < size ? h[8] : size;
	const uint8_t *backend = data + size - blen;
	size -= blen;
	memset(ram, 0, RAM);
	memcpy(ram, data, size < RAM ? size : RAM);
	guest_mem m = {.memfd = -1, .host = ram, .size = RAM};
	virtq rxq = {.size = (uint16_t)(h[0] % 512), .desc = (uint64_t)h[1] * 16 % (RAM + 4096),
		     .avail = (uint64_t)h[2] * 2 % (RAM + 4096), .used = (uint64_t)h[3] * 4 % (RAM + 4096), .ready = true};
	virtq txq = {.size = (uint16_t)(h[4] % 512), .desc = (uint64_t)h[5] * 16 % (RAM + 4096),
		     .avail = (uint64_t)h[6] * 2 % (RAM + 4096), .used = (uint64_t)h[7] * 4 % (RAM + 4096), .ready = true};
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) < 0)
		return 0;
	int big = 1 << 20;
	setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
	static const uint8_t mac[6] = {2, 0, 0, 0, 0, 1};
	vnet_dev *d = vnet_create(sp[0], mac, NULL);
	if (!d) {
		close(sp[0]);
		close(sp[1]);
		return 0;
	}
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	vnet_env env = {.mem = &m, .rxq = &rxq, .txq = &txq, .lock = &lock};
	/* the environment without the I/O thread: set it through a start that we stop at once */
	if (vnet_start(d, &env, NULL) == 0) {
		pthread_mutex_lock(&lock);
		vnet_feed(d, backend, blen);
		vnet_process_rx(d);
		vnet_process_tx(d);
		vnet_process_rx(d);
		pthread_mutex_unlock(&lock);
	}
	vnet_destroy(d);
	/* what reached the backend is a sequence of well-formed frames */
	static uint8_t out[1 << 20];
	size_t got = 0;
	ssize_t n;
	while (got < sizeof out && (n = recv(sp[1], out + got, sizeof out - got, MSG_DONTWAIT)) > 0)
		got += (size_t)n;
	size_t off = 0;
	while (off + 4 <= got) {
		uint32_t len = (uint32_t)out[off] << 24 | (uint32_t)out[off + 1] << 16 | (uint32_t)out[off + 2] << 8 |
			       out[off + 3];
		if (len < 14 || len > VNET_MAX_FRAME || off + 4 + len > got)
			abort();
		off += 4 + len;
	}
	if (off != got)
		abort();
	close(sp[1]);
	return 0;
}
