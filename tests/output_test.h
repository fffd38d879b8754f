/* SPDX-License-Identifier: Apache-2.0
 * An exec's output kept by stream, for output callbacks that may run on another thread:
 * out_collect appends stdout (stream 1) to data and stderr (stream 2) to err, truncating
 * at the buffer and keeping both NUL-terminated. out_reset empties one before an exec.
 * Tests and benches (bench/api_load) share it.
 */
#ifndef SILO_TESTS_OUTPUT_TEST_H
#define SILO_TESTS_OUTPUT_TEST_H

#include <pthread.h>
#include <string.h>

typedef struct outbuf {
	pthread_mutex_t mu;
	char data[8192];
	size_t len;
	char err[4096];
	size_t elen;
} outbuf;

static inline void out_reset(outbuf *o)
{
	memset(o, 0, sizeof *o);
	pthread_mutex_init(&o->mu, NULL);
}

static inline void out_collect(void *ud, int stream, const void *buf, size_t len)
{
	outbuf *o = ud;
	pthread_mutex_lock(&o->mu);
	char *dst = stream == 2 ? o->err : o->data;
	size_t *l = stream == 2 ? &o->elen : &o->len;
	size_t cap = (stream == 2 ? sizeof o->err : sizeof o->data) - 1;
	size_t n = len < cap - *l ? len : cap - *l;
	memcpy(dst + *l, buf, n);
	*l += n;
	dst[*l] = '\0';
	pthread_mutex_unlock(&o->mu);
}

#endif
