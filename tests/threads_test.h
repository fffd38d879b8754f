/* SPDX-License-Identifier: Apache-2.0
 * Concurrency cases: run_threads starts n threads of fn, thread i getting (void *)i, joins
 * them all and returns how many returned non-NULL (fn's way of saying it failed).
 */
#ifndef SILO_TESTS_THREADS_TEST_H
#define SILO_TESTS_THREADS_TEST_H

#include <pthread.h>

#include "harness.h"

static __attribute__((unused)) int run_threads(int n, void *(*fn)(void *))
{
	pthread_t t[64];
	REQUIRE(n > 0 && n <= 64);
	for (long i = 0; i < n; i++)
		REQUIRE(pthread_create(&t[i], NULL, fn, (void *)i) == 0);
	int failed = 0;
	for (int i = 0; i < n; i++) {
		void *rv = NULL;
		pthread_join(t[i], &rv);
		failed += rv != NULL;
	}
	return failed;
}

#endif
