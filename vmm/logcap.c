/* SPDX-License-Identifier: Apache-2.0
 * Capped logs that keep their tail (logcap.h has the format and the rules).
 */
#include "logcap.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

void logcap_init(logcap *l, int fd, uint64_t cap)
{
	memset(l, 0, sizeof *l);
	l->fd = fd;
	l->cap = cap < LOGCAP_MIN ? LOGCAP_MIN : cap;
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		l->capped = true;
		l->size = (uint64_t)st.st_size;
	}
}

static int pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
	const char *p = buf;
	while (n) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return -1;
		}
		p += w, n -= (size_t)w, off += (uint64_t)w;
	}
	return 0;
}

/* Keep the last `keep_old` bytes of the file behind a marker at offset 0. */
static int compact(logcap *l, uint64_t keep_old, uint64_t incoming_dropped)
{
	l->dropped += l->size - l->marker - keep_old + incoming_dropped;   /* the old marker is no output */
	char marker[160];
	int mlen = snprintf(marker, sizeof marker,
			    "[silo: %llu earlier bytes of this log were dropped (cap %llu bytes, the tail is kept)]\n",
			    (unsigned long long)l->dropped, (unsigned long long)l->cap);
	/* Move the kept bytes forward first (source is always past the marker), then the marker. */
	uint64_t src = l->size - keep_old, dst = (uint64_t)mlen;
	char buf[16384];
	for (uint64_t done = 0; done < keep_old;) {
		size_t chunk = keep_old - done < sizeof buf ? (size_t)(keep_old - done) : sizeof buf;
		ssize_t r = pread(l->fd, buf, chunk, (off_t)(src + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			return -1;
		}
		if (pwrite_all(l->fd, buf, (size_t)r, dst + done) < 0)
			return -1;
		done += (uint64_t)r;
	}
	if (pwrite_all(l->fd, marker, (size_t)mlen, 0) < 0 || ftruncate(l->fd, (off_t)(dst + keep_old)) < 0)
		return -1;
	l->size = dst + keep_old;
	l->marker = (uint64_t)mlen;
	return 0;
}

int logcap_write(logcap *l, const void *buf, size_t n)
{
	if (l->fd < 0) {
		errno = EBADF;
		return -1;
	}
	if (!l->capped)
		return write_all(l->fd, buf, n) < 0 ? -1 : 0;
	if (l->size + n > l->cap) {
		uint64_t half = l->cap / 2;
		if (n >= half) {
			/* the new bytes alone fill the kept half: keep their end only */
			uint64_t skip = n - half;
			if (compact(l, 0, skip) < 0)
				return -1;
			buf = (const char *)buf + skip;
			n = (size_t)half;
		} else if (compact(l, half - n < l->size - l->marker ? half - n : l->size - l->marker, 0) < 0) {
			return -1;
		}
	}
	if (pwrite_all(l->fd, buf, n, l->size) < 0)
		return -1;
	l->size += n;
	return 0;
}
