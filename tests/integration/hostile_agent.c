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
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int read_frame(int fd)
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
	while (len) {
		ssize_t r = read(fd, buf, len < sizeof buf ? len : sizeof buf);
		if (r <= 0)
			return -1;
		len -= (uint32_t)r;
	}
	return 0;
}

static void put(int fd, const void *p, size_t n)
{
	if (write(fd, p, n) != (ssize_t)n)
		_exit(3);
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
	for (;;) {
		int c = accept(3, NULL, NULL);
		if (c < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (read_frame(c) < 0) {   /* hello */
			close(c);
			continue;
		}
		if (!strcmp(mode, "handshake")) {
			static const unsigned char junk[] = {0, 0, 0, 3, 0xc1, 0xc1, 0xc1};   /* 0xc1: never used */
			put(c, junk, sizeof junk);
		} else {
			/* {"t":2,"id":0,"v":1,"agent":"evil","kernel":"x","pid":1} */
			static const unsigned char ok[] = {
				0x86, 0xa1, 't', 0x02, 0xa2, 'i', 'd', 0x00, 0xa1, 'v', 0x01,
				0xa5, 'a', 'g', 'e', 'n', 't', 0xa4, 'e', 'v', 'i', 'l',
				0xa6, 'k', 'e', 'r', 'n', 'e', 'l', 0xa1, 'x', 0xa3, 'p', 'i', 'd', 0x01,
			};
			unsigned char hdr[4] = {0, 0, 0, (unsigned char)sizeof ok};
			put(c, hdr, 4);
			put(c, ok, sizeof ok);
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
