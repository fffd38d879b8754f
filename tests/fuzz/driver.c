/* SPDX-License-Identifier: Apache-2.0
 * Stand-alone fuzz driver for builds without libFuzzer: replays every file of
 * the corpus directory, then feeds random mutations of corpus entries (bit
 * flips, byte sets, truncation, duplication, splicing) until --seconds runs out.
 * The seed is printed so a failure can be replayed (--seed=N).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "prop_test.h"

#define MIN_(a, b) ((a) < (b) ? (a) : (b))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT (64 * 1024)

static uint8_t *corpus[4096];
static size_t corpus_len[4096];
static size_t n_corpus;


static void load_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) && n_corpus < 4096) {
		if (de->d_name[0] == '.')
			continue;
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		FILE *f = fopen(path, "rb");
		if (!f)
			continue;
		uint8_t *buf = malloc(FUZZ_MAX_INPUT);
		size_t n = fread(buf, 1, FUZZ_MAX_INPUT, f);
		fclose(f);
		corpus[n_corpus] = buf;
		corpus_len[n_corpus++] = n;
	}
	closedir(d);
}

int main(int argc, char **argv)
{
	double seconds = 10;
	uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20);
	for (int i = 1; i < argc; i++) {
		if (!strncmp(argv[i], "--seconds=", 10))
			seconds = atof(argv[i] + 10);
		else if (!strncmp(argv[i], "--seed=", 7))
			seed = strtoull(argv[i] + 7, NULL, 10);
		else
			load_dir(argv[i]);
	}
	if (!seed)
		seed = 1;
	rnd_seed(seed);
	printf("driver: seed=%llu corpus=%zu\n", (unsigned long long)seed, n_corpus);
	fflush(stdout);
	for (size_t i = 0; i < n_corpus; i++)
		LLVMFuzzerTestOneInput(corpus[i], corpus_len[i]);
	static uint8_t buf[FUZZ_MAX_INPUT];
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	unsigned long long runs = 0;
	for (;;) {
		if ((runs & 255) == 0) {
			clock_gettime(CLOCK_MONOTONIC, &t);
			if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 > seconds)
				break;
		}
		size_t n = 0;
		if (n_corpus && rnd() % 8) {
			size_t k = rnd() % n_corpus;
			n = corpus_len[k];
			memcpy(buf, corpus[k], n);
		} else {
			n = rnd() % 256;
			for (size_t i = 0; i < n; i++)
				buf[i] = (uint8_t)rnd();
		}
		int muts = 1 + (int)(rnd() % 8);
		for (int m = 0; m < muts; m++) {
			switch (rnd() % 6) {
			case 0: if (n) buf[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8)); break;
			case 1: if (n) buf[rnd() % n] = (uint8_t)rnd(); break;
			case 2: if (n) n = rnd() % n; break;
			case 3: if (n && n < FUZZ_MAX_INPUT / 2) { size_t a = rnd() % n; size_t l = rnd() % (n - a) + 1; memmove(buf + n, buf + a, l); n += l; } break;
			case 4: if (n_corpus) { size_t k = rnd() % n_corpus; size_t a = n ? rnd() % n : 0; size_t l = MIN_(corpus_len[k], FUZZ_MAX_INPUT - a); memcpy(buf + a, corpus[k], l); if (a + l > n) n = a + l; } break;
			default: if (n) { static const uint8_t interesting[] = {0, 0xff, 0x7f, 0x80, 0xc0, 0xc1, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, '"', '[', ']', '=', '\n', '.'}; buf[rnd() % n] = interesting[rnd() % sizeof interesting]; } break;
			}
		}
		LLVMFuzzerTestOneInput(buf, n);
		runs++;
	}
	printf("driver: Done %llu runs in %.0f s\n", runs, seconds);
	return 0;
}
