/* SPDX-License-Identifier: Apache-2.0
 * fd_read_until (fdread.h).
 */
#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include "common/fdread.h"
#include "common/util.h"

size_t fd_read_until(int fd, char *buf, size_t cap, uint64_t deadline_ns)
{
	size_t got = 0;
	while (got < cap - 1) {
		if (deadline_ns) {
			uint64_t now = now_mono_ns();
			if (now >= deadline_ns)
				break;
			struct pollfd p = {.fd = fd, .events = POLLIN};
			int pr = poll(&p, 1, (int)((deadline_ns - now) / 1000000u) + 1);
			if (pr < 0 && errno == EINTR)
				continue;
			if (pr <= 0)
				break;
		}
		ssize_t r = read(fd, buf + got, cap - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	buf[got] = '\0';
	return got;
}
