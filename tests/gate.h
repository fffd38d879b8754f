/* SPDX-License-Identifier: Apache-2.0
 * A consumer that can be stopped dead, for the tests of output flow control:
 * an output callback calls gate_pass(), which blocks until the test calls
 * gate_open(); gate_wait_entered() returns once a callback is stuck in there
 * (gate_wait_entered_for gives up after a while). Header-only (pthreads), so
 * the public-API test and bench/exec_stream can use it too.
 */
#ifndef SILO_TESTS_GATE_H
#define SILO_TESTS_GATE_H

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

typedef struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool open, entered;
} gate;

#define GATE_INIT {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER}

static inline void gate_pass(gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->entered = true;
	pthread_cond_broadcast(&g->cv);
	while (!g->open)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
}

static inline void gate_open(gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->open = true;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

static inline void gate_wait_entered(gate *g)
{
	pthread_mutex_lock(&g->mu);
	while (!g->entered)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
}

/* gate_wait_entered for at most MS milliseconds: true if a callback is stuck in the gate. */
static inline bool gate_wait_entered_for(gate *g, int ms)
{
	struct timespec end;
	clock_gettime(CLOCK_REALTIME, &end);   /* the condition variable's clock */
	end.tv_sec += ms / 1000;
	end.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (end.tv_nsec >= 1000000000L)
		end.tv_sec++, end.tv_nsec -= 1000000000L;
	pthread_mutex_lock(&g->mu);
	while (!g->entered && pthread_cond_timedwait(&g->cv, &g->mu, &end) == 0)
		;
	bool e = g->entered;
	pthread_mutex_unlock(&g->mu);
	return e;
}

#endif
