/* SPDX-License-Identifier: Apache-2.0
 * Seeded randomness for the property tests and the stand-alone fuzz driver: rnd() is
 * xorshift64 over one state, rnd_seed(N) sets it (0 counts as 1). rnd_seed_env() takes
 * the seed from SILO_TEST_SEED, else the clock, and prints it as a TAP comment, so a
 * failing run replays with SILO_TEST_SEED=N.
 */
#ifndef SILO_TESTS_PROP_TEST_H
#define SILO_TESTS_PROP_TEST_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t rnd_state_ = 1;

static inline uint64_t rnd(void)
{
	rnd_state_ ^= rnd_state_ << 13;
	rnd_state_ ^= rnd_state_ >> 7;
	rnd_state_ ^= rnd_state_ << 17;
	return rnd_state_;
}

static inline void rnd_seed(uint64_t seed)
{
	rnd_state_ = seed ? seed : 1;
}

static inline void rnd_seed_env(void)
{
	const char *e = getenv("SILO_TEST_SEED");
	uint64_t seed = e ? strtoull(e, NULL, 10) : (uint64_t)time(NULL);
	printf("# seed %llu (SILO_TEST_SEED=%llu replays)\n", (unsigned long long)seed, (unsigned long long)seed);
	rnd_seed(seed);
}

#endif
