/* SPDX-License-Identifier: Apache-2.0
 * vmm/logcap.c: the capped log that keeps its tail. A seeded random stream of
 * writes (1 byte to 2x the cap) against a model of what was written: after every
 * write the file is at most the cap, it is the marker line followed by exactly the
 * newest bytes of the stream, and the marker counts every byte dropped.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "harness.h"
#include "logcap.h"

static uint64_t rng = 0x5eed1234abcdULL;
static uint64_t rnd(void)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return rng;
}

TEST(random_writes_keep_the_newest_bytes_under_the_cap)
{
	char path[] = "/tmp/silo-logcap-XXXXXX";
	int fd = mkstemp(path);
	REQUIRE(fd >= 0);
	const uint64_t cap = 65536;
	logcap l;
	logcap_init(&l, fd, cap);
	CHECK(l.capped);
	size_t total = 0, max_total = 3u << 20;
	uint8_t *stream = xmalloc(max_total + 2 * cap);
	char *file = xmalloc(cap + 1);
	for (int i = 0; total < max_total; i++) {
		size_t n = (size_t)(rnd() % 4 == 0 ? 1 + rnd() % (2 * cap) : 1 + rnd() % 300);
		for (size_t k = 0; k < n; k++)
			stream[total + k] = (uint8_t)(' ' + (total + k) % 90);
		REQUIRE(logcap_write(&l, stream + total, n) == 0);
		total += n;
		struct stat st;
		REQUIRE(fstat(fd, &st) == 0);
		CHECK((uint64_t)st.st_size <= cap);
		CHECK_INT_EQ((uint64_t)st.st_size, l.size);
		ssize_t got = pread(fd, file, cap, 0);
		REQUIRE(got == st.st_size);
		file[got] = '\0';
		size_t body = (size_t)got, dropped = 0;
		if (!strncmp(file, "[silo: ", 7)) {
			char *nl = strchr(file, '\n');
			REQUIRE(nl);
			CHECK(strstr(file, "earlier bytes of this log were dropped (cap 65536 bytes, the tail is kept)]") <
			      nl);
			dropped = (size_t)strtoull(file + 7, NULL, 10);
			body = (size_t)got - (size_t)(nl + 1 - file);
		}
		/* the body is exactly the newest bytes, and nothing else was lost */
		CHECK_INT_EQ(dropped + body, total);
		CHECK(!memcmp(file + got - body, stream + total - body, body));
		if (test_failures_) {
			printf("# write %d of %zu bytes (total %zu) broke it\n", i, n, total);
			break;
		}
	}
	printf("# %zu bytes through a %llu-byte cap\n", total, (unsigned long long)cap);
	free(stream);
	free(file);
	close(fd);
	unlink(path);
}

TEST(small_caps_are_raised_and_pipes_pass_through)
{
	char path[] = "/tmp/silo-logcap-XXXXXX";
	int fd = mkstemp(path);
	REQUIRE(fd >= 0);
	logcap l;
	logcap_init(&l, fd, 10);
	CHECK_INT_EQ(l.cap, LOGCAP_MIN);
	close(fd);
	unlink(path);
	int p[2];
	REQUIRE(pipe(p) == 0);
	logcap_init(&l, p[1], LOGCAP_MIN);
	CHECK(!l.capped);
	CHECK_INT_EQ(logcap_write(&l, "hello", 5), 0);
	char buf[8] = "";
	CHECK_INT_EQ(read(p[0], buf, sizeof buf), 5);
	CHECK(!memcmp(buf, "hello", 5));
	close(p[0]);
	close(p[1]);
	logcap_init(&l, -1, LOGCAP_MIN);
	CHECK_INT_EQ(logcap_write(&l, "x", 1), -1);
}

TEST_MAIN(random_writes_keep_the_newest_bytes_under_the_cap, small_caps_are_raised_and_pipes_pass_through)
