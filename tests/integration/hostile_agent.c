/* SPDX-License-Identifier: Apache-2.0
 * A hostile guest agent for tests/integration/test_violation.sh: installed as
 * /sbin/silo-agent of a namespace sandbox's root directory, it accepts the
 * host's connection on fd 3 (like `silo-agent --listen-fd 3`) and then breaks
 * the protocol (docs/protocol.md). Built static by the test (no libraries in
 * that root), so it uses no silo code: the frames are written by hand.
 *
 * /mode in its root selects what it does:
 *   after-handshake  answer hello with a valid hello_ok, wait 1 s, then send a
 *                    frame header claiming 4 GiB (a violation from the length alone)
 *   handshake        answer hello with a frame that is not MessagePack
 *   overrun          answer hello and pings, then answer the first exec with
 *                    8 MiB of output at once, ignoring the output window and
 *                    the host's credit (docs/protocol.md "Flow control")
 *   tar-out          answer hello and pings, and every tar_out with the bytes
 *                    of /evil.tar in its root (a hostile archive, within the
 *                    window) and exit 0: what `silo cp -r ID:/x DIR` must refuse
 * Frames from the host are recognised by their first keys, which the host
 * always encodes first: {"t": type, "id": task, ...}.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/wire.h"   /* WIRE_VERSION, WM_HELLO_OK: the numbers live there only */

/* Read one frame; its first bytes (up to 64) land in head. */
static int read_frame(int fd, unsigned char *head, size_t *head_len)
{
	unsigned char h[4], buf[4096];
	size_t got = 0;
	while (got < 4) {
		ssize_t r = read(fd, h + got, 4 - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	uint32_t len = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
	*head_len = 0;
	while (len) {
		ssize_t r = read(fd, buf, len < sizeof buf ? len : sizeof buf);
		if (r <= 0)
			return -1;
		if (*head_len == 0) {
			*head_len = (size_t)r < 64 ? (size_t)r : 64;
			memcpy(head, buf, *head_len);
		}
		len -= (uint32_t)r;
	}
	return 0;
}

/* A MessagePack unsigned int at p (fixint, uint8/16/32); bytes used, 0 if not one. */
static size_t get_uint(const unsigned char *p, size_t n, uint32_t *v)
{
	size_t k = n < 1 ? 0 : p[0] < 0x80 ? 1 : p[0] == 0xcc ? 2 : p[0] == 0xcd ? 3 : p[0] == 0xce ? 5 : 0;
	if (k == 0 || k > n)
		return 0;
	*v = k == 1 ? p[0] : 0;
	for (size_t i = 1; i < k; i++)
		*v = *v << 8 | p[i];
	return k;
}

/* Type and task id of a host frame: {"t": T, "id": ID, ...}. */
static int frame_type_id(const unsigned char *p, size_t n, uint32_t *t, uint32_t *id)
{
	size_t o = (n && (p[0] & 0xf0) == 0x80) ? 1 : (n >= 3 && p[0] == 0xde) ? 3 : 0;
	if (!o || o + 2 > n || p[o] != 0xa1 || p[o + 1] != 't')
		return -1;
	o += 2;
	size_t k = get_uint(p + o, n - o, t);
	if (!k)
		return -1;
	o += k;
	if (o + 3 > n || p[o] != 0xa2 || p[o + 1] != 'i' || p[o + 2] != 'd')
		return -1;
	o += 3;
	return get_uint(p + o, n - o, id) ? 0 : -1;
}

static void put(int fd, const void *p, size_t n)
{
	if (write(fd, p, n) != (ssize_t)n)
		_exit(3);
}

/* {"t":T,"id":ID,...} header of a reply: map of n entries. */
static unsigned char *reply_head(unsigned char *p, unsigned n, unsigned t, uint32_t id)
{
	*p++ = (unsigned char)(0x80 | n), *p++ = 0xa1, *p++ = 't', *p++ = (unsigned char)t;
	*p++ = 0xa2, *p++ = 'i', *p++ = 'd', *p++ = 0xce;
	*p++ = (unsigned char)(id >> 24), *p++ = (unsigned char)(id >> 16), *p++ = (unsigned char)(id >> 8),
	*p++ = (unsigned char)id;
	return p;
}

/* {"t":12,"id":ID,"s":1,"d":bin32 of len bytes} up to its data, which the caller writes at the end. */
static unsigned char *output_head(unsigned char *p, uint32_t id, uint32_t len)
{
	p = reply_head(p, 4, 12, id);
	*p++ = 0xa1, *p++ = 's', *p++ = 1;
	*p++ = 0xa1, *p++ = 'd', *p++ = 0xc6;
	*p++ = (unsigned char)(len >> 24), *p++ = (unsigned char)(len >> 16), *p++ = (unsigned char)(len >> 8),
	*p++ = (unsigned char)len;
	return p;
}

/* Write the length of the frame that ends at end into its first 4 bytes; its size. */
static size_t seal(unsigned char *frame, unsigned char *end)
{
	uint32_t len = (uint32_t)(end - frame - 4);
	frame[0] = (unsigned char)(len >> 24), frame[1] = (unsigned char)(len >> 16);
	frame[2] = (unsigned char)(len >> 8), frame[3] = (unsigned char)len;
	return (size_t)(end - frame);
}

static void send_framed(int c, unsigned char *frame, unsigned char *end)
{
	put(c, frame, seal(frame, end));
}

/* Read frames until one of type want arrives (its task id in *id), answering pings
 * ({"t":41,"id":0}) and ignoring the rest; -1 once the host hangs up. */
static int next_request(int c, uint32_t want, uint32_t *id)
{
	static const unsigned char pong[] = {0, 0, 0, 8, 0x82, 0xa1, 't', 0x29, 0xa2, 'i', 'd', 0x00};
	unsigned char head[64];
	size_t hl;
	uint32_t t;
	while (read_frame(c, head, &hl) == 0) {
		if (frame_type_id(head, hl, &t, id) < 0)
			continue;
		if (t == 40)
			put(c, pong, sizeof pong);
		else if (t == want)
			return 0;
	}
	return -1;
}

/* Answer pings; on each exec send 32 x 256 KiB of output for its task at once,
 * never reading the host's credit. */
static void overrun(int c)
{
	uint32_t id;
	while (next_request(c, 10, &id) == 0) {
		enum { CHUNK = 256 * 1024 };
		static unsigned char frame[4 + 24 + CHUNK];
		unsigned char *p = output_head(frame + 4, id, CHUNK);
		memset(p, 'x', CHUNK);
		size_t n = seal(frame, p + CHUNK);
		for (int i = 0; i < 32; i++)
			if (write(c, frame, n) != (ssize_t)n)
				break;
	}
	close(c);
}

/* Answer pings; answer each tar_out (34) with started, /evil.tar as output on
 * stream 1 (at most 64 KiB: inside any window the host grants), exit 0. */
static void tar_out(int c)
{
	static unsigned char tar[65536], frame[4 + 32 + sizeof tar];
	size_t tl = 0;
	FILE *f = fopen("/evil.tar", "r");
	if (f) {
		tl = fread(tar, 1, sizeof tar, f);
		fclose(f);
	}
	uint32_t id;
	while (next_request(c, 34, &id) == 0) {
		unsigned char *p = reply_head(frame + 4, 3, 11, id);   /* started, pid 1 */
		*p++ = 0xa3, *p++ = 'p', *p++ = 'i', *p++ = 'd', *p++ = 1;
		send_framed(c, frame, p);
		p = output_head(frame + 4, id, (uint32_t)tl);
		memcpy(p, tar, tl);
		send_framed(c, frame, p + tl);
		p = reply_head(frame + 4, 4, 16, id);   /* exit: code 0, ms 1 */
		*p++ = 0xa4, *p++ = 'c', *p++ = 'o', *p++ = 'd', *p++ = 'e', *p++ = 0;
		*p++ = 0xa2, *p++ = 'm', *p++ = 's', *p++ = 1;
		send_framed(c, frame, p);
	}
	close(c);
}

int main(void)
{
	char mode[32] = "after-handshake";
	FILE *f = fopen("/mode", "r");
	if (f) {
		if (!fgets(mode, sizeof mode, f))
			mode[0] = '\0';
		fclose(f);
		mode[strcspn(mode, "\n")] = '\0';
	}
	unsigned char head[64];
	size_t hl;
	for (;;) {
		int c = accept(3, NULL, NULL);
		if (c < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (read_frame(c, head, &hl) < 0) {   /* hello */
			close(c);
			continue;
		}
		if (!strcmp(mode, "handshake")) {
			static const unsigned char junk[] = {0, 0, 0, 3, 0xc1, 0xc1, 0xc1};   /* 0xc1: never used */
			put(c, junk, sizeof junk);
		} else {
			/* {"t":WM_HELLO_OK,"id":0,"v":WIRE_VERSION,"agent":"evil","kernel":"x","pid":1} */
			_Static_assert(WM_HELLO_OK < 128 && WIRE_VERSION < 128, "positive fixints");
			static const unsigned char ok[] = {
				0x86, 0xa1, 't', WM_HELLO_OK, 0xa2, 'i', 'd', 0x00, 0xa1, 'v', WIRE_VERSION,
				0xa5, 'a', 'g', 'e', 'n', 't', 0xa4, 'e', 'v', 'i', 'l',
				0xa6, 'k', 'e', 'r', 'n', 'e', 'l', 0xa1, 'x', 0xa3, 'p', 'i', 'd', 0x01,
			};
			unsigned char hdr[4] = {0, 0, 0, (unsigned char)sizeof ok};
			put(c, hdr, 4);
			put(c, ok, sizeof ok);
			if (!strcmp(mode, "overrun")) {
				overrun(c);
				continue;
			}
			if (!strcmp(mode, "tar-out")) {
				tar_out(c);
				continue;
			}
			sleep(1);
			static const unsigned char huge[] = {0xff, 0xff, 0xff, 0xff};
			put(c, huge, sizeof huge);
		}
		/* Keep the connection until the host hangs up (or kills us). */
		char b[256];
		while (read(c, b, sizeof b) > 0)
			;
		close(c);
	}
}
