/* SPDX-License-Identifier: Apache-2.0
 * A consumer that can be stopped dead, for the tests of output flow control:
 * an output callback calls gate_pass(), which blocks until the test calls
 * gate_open(); gate_wait_entered() returns once a callback is stuck in there.
 * Header-only (pthreads), so the public-API test can use it too.
 */
#ifndef SILO_TESTS_GATE_H
#define SILO_TESTS_GATE_H

#include <pthread.h>
#include <stdbool.h>

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

#endif
