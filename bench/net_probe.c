/* SPDX-License-Identifier: Apache-2.0
 * Static helper of bench/network.c, run inside sandboxes (uploaded through
 * the file API) and on the host for the baseline:
 *
 *   net_probe get IP PORT PATH     HTTP/1.0 GET; prints "BYTES SECONDS"
 *   net_probe connect IP PORT N    N connections, each connect + 1-byte echo
 *                                  round trip; prints N latencies in microseconds
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dial(const char *ip, int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		return -1;
	/* nonblocking, as user-mode stacks connect (Silo's egress supervisor
	 * answers those; docs/network.md) */
	int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (s < 0)
		return -1;
	if (connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
		struct pollfd p = {.fd = s, .events = POLLOUT};
		int e = 0;
		socklen_t l = sizeof e;
		if (errno != EINPROGRESS || poll(&p, 1, 10000) != 1 || getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &l) < 0 || e) {
			close(s);
			return -1;
		}
	}
	fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK);
	int one = 1;
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return s;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "get")) {
		double t0 = now();
		int s = dial(argv[2], atoi(argv[3]));
		if (s < 0) {
			perror("connect");
			return 1;
		}
		char req[512];
		int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", argv[4]);
		if (write(s, req, (size_t)n) != n)
			return 1;
		static char buf[1 << 20];
		unsigned long long total = 0;
		ssize_t r;
		while ((r = read(s, buf, sizeof buf)) > 0)
			total += (unsigned long long)r;
		printf("%llu %.6f\n", total, now() - t0);
		return r < 0;
	}
	if (argc == 5 && !strcmp(argv[1], "connect")) {
		int n = atoi(argv[4]);
		for (int i = 0; i < n; i++) {
			double t0 = now();
			int s = dial(argv[2], atoi(argv[3]));
			char c = 'x';
			if (s < 0 || write(s, &c, 1) != 1 || read(s, &c, 1) != 1) {
				printf("-1 ");
			} else {
				printf("%.1f ", (now() - t0) * 1e6);
			}
			if (s >= 0)
				close(s);
		}
		printf("\n");
		return 0;
	}
	fprintf(stderr, "usage: net_probe get IP PORT PATH | connect IP PORT N\n");
	return 2;
}
