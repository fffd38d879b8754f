/* SPDX-License-Identifier: Apache-2.0
 * Exec round trips through libsilo-client (bench/sdk.sh): N runs of `true` in
 * the sandbox argv[1], one line per run with its latency in microseconds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "silo/client.h"

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	int n = atoi(argv[2]);
	silo_client *c;
	silo_error err;
	if (silo_client_new(NULL, &c, &err) < 0) {
		fprintf(stderr, "%s\n", err.message);
		return 1;
	}
	const char *const av[] = {"true", NULL};
	silo_client_exec_opts o = {.size = sizeof o, .argv = av};
	for (int i = 0; i < n; i++) {
		struct timespec a, b;
		silo_client_exit ex;
		clock_gettime(CLOCK_MONOTONIC, &a);
		if (silo_client_exec(c, argv[1], &o, NULL, NULL, &ex, &err) != 0 || ex.exit_code != 0) {
			fprintf(stderr, "exec: %s\n", err.message);
			return 1;
		}
		clock_gettime(CLOCK_MONOTONIC, &b);
		printf("%lld\n", (long long)(b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000);
	}
	silo_client_free(c);
	return 0;
}
