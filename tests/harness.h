/* SPDX-License-Identifier: Apache-2.0
 * Minimal TAP test harness. Each case runs in a forked child so a crash or
 * sanitizer abort fails that case only. Meson runs binaries with
 * protocol: 'tap' and counts every case.
 *
 *   TEST(parse_empty) { CHECK(x == 1); CHECK_STR_EQ(a, b); }
 *   TEST_MAIN(parse_empty, other_case)
 *
 * SKIP("reason") ends a case as skipped (a one-line reason, never a silent pass).
 * A case's stdout (its own printf, a program it runs) reaches the TAP stream as
 * comments: a line that does not start with '#' gets "# " in front, so meson never
 * sees an unknown TAP line.
 * Environment: TEST_FILTER=substr runs matching cases only.
 */
#ifndef SILO_TESTS_HARNESS_H
#define SILO_TESTS_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct test_case {
	const char *name;
	void (*fn)(void);
} test_case;

static int test_failures_;

#define TEST(name) static void name(void)

#define TEST_SKIP_CODE 77

__attribute__((noreturn, format(printf, 1, 2), unused)) static void SKIP(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	FILE *f = fopen(getenv("TEST_SKIP_FILE_") ? getenv("TEST_SKIP_FILE_") : "/dev/null", "w");
	if (f) {
		fputs(buf, f);
		fclose(f);
	}
	fflush(stdout);
	_exit(TEST_SKIP_CODE);
}

/* A failed check: "# FILE:LINE: " and the message (printf-style) as a TAP comment;
 * the case fails when it ends. */
#define TEST_FAIL_(...)                                      \
	do {                                                 \
		printf("# %s:%d: ", __FILE__, __LINE__);     \
		printf(__VA_ARGS__);                         \
		putchar('\n');                               \
		test_failures_++;                            \
	} while (0)

#define CHECK(cond)                                              \
	do {                                                     \
		if (!(cond))                                     \
			TEST_FAIL_("CHECK failed: %s", #cond);   \
	} while (0)

#define REQUIRE(cond)                                                                       \
	do {                                                                                \
		if (!(cond)) {                                                              \
			printf("# %s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond); \
			fflush(stdout);                                                     \
			_exit(1);                                                           \
		}                                                                           \
	} while (0)

#define CHECK_INT_EQ(a, b)                                                               \
	do {                                                                             \
		long long a_ = (long long)(a), b_ = (long long)(b);                      \
		if (a_ != b_)                                                            \
			TEST_FAIL_("%s == %s failed: %lld != %lld", #a, #b, a_, b_);     \
	} while (0)

#define CHECK_STR_EQ(a, b)                                                                    \
	do {                                                                                  \
		const char *a_ = (a), *b_ = (b);                                              \
		if (!a_ || !b_ || strcmp(a_, b_) != 0)                                        \
			TEST_FAIL_("%s == %s failed: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)", \
				   b_ ? b_ : "(null)");                                       \
	} while (0)

#define CHECK_CONTAINS(hay, needle)                                                           \
	do {                                                                                  \
		const char *h_ = (hay), *n_ = (needle);                                       \
		if (!h_ || !strstr(h_, n_))                                                   \
			TEST_FAIL_("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", n_); \
	} while (0)

/* Copy what a case wrote to its stdout pipe, as TAP comments. buf keeps a partial line. */
static inline void test_relay_(char *buf, size_t *len, bool end)
{
	size_t start = 0;
	for (size_t i = 0; i < *len; i++) {
		if (buf[i] != '\n')
			continue;
		printf("%s%.*s\n", buf[start] == '#' ? "" : "# ", (int)(i - start), buf + start);
		start = i + 1;
	}
	if (start == 0 && *len == 4096) /* one line longer than the buffer: cut it */
		start = *len, printf("# %.*s\n", (int)*len, buf);
	if (end && start < *len)
		printf("%s%.*s\n", buf[start] == '#' ? "" : "# ", (int)(*len - start), buf + start), start = *len;
	memmove(buf, buf + start, *len - start);
	*len -= start;
}

/* Wait for the case, relaying its stdout until it exits (not until EOF: a process it
 * leaked may hold the pipe), then what is left in the pipe. */
static inline int test_wait_relay_(pid_t pid, int rfd)
{
	char buf[4096];
	size_t len = 0;
	int st = 0;
	for (;;) {
		struct pollfd p = {.fd = rfd, .events = POLLIN};
		if (rfd >= 0 && poll(&p, 1, 100) > 0) {
			ssize_t r = read(rfd, buf + len, sizeof buf - len);
			if (r > 0) {
				len += (size_t)r;
				test_relay_(buf, &len, false);
				continue;
			}
			if (r == 0 || errno != EINTR) {
				close(rfd);
				rfd = -1;
			}
		}
		pid_t w = waitpid(pid, &st, rfd >= 0 ? WNOHANG : 0);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR)
			break;
	}
	if (rfd >= 0) {
		fcntl(rfd, F_SETFL, O_NONBLOCK);
		ssize_t r;
		while ((r = read(rfd, buf + len, sizeof buf - len)) > 0) {
			len += (size_t)r;
			test_relay_(buf, &len, false);
		}
		close(rfd);
	}
	test_relay_(buf, &len, true);
	return st;
}

static inline int test_run_all_(const test_case *cases, size_t n)
{
	const char *filter = getenv("TEST_FILTER");
	char skipfile[] = "/tmp/silo-test-skip-XXXXXX";
	int sfd = mkstemp(skipfile);
	if (sfd >= 0)
		close(sfd);
	setenv("TEST_SKIP_FILE_", skipfile, 1);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("1..%zu\n", n);
	int failed = 0;
	for (size_t i = 0; i < n; i++) {
		if (filter && !strstr(cases[i].name, filter)) {
			printf("ok %zu - %s # SKIP filtered out\n", i + 1, cases[i].name);
			continue;
		}
		fflush(stdout);
		int out[2] = {-1, -1};
		if (pipe2(out, O_CLOEXEC) < 0)
			out[0] = out[1] = -1;
		pid_t pid = fork();
		if (pid == 0) {
			if (out[1] >= 0) {
				dup2(out[1], STDOUT_FILENO);
				close(out[0]);
				close(out[1]);
			}
			test_failures_ = 0;
			cases[i].fn();
			fflush(stdout);
			_exit(test_failures_ ? 1 : 0);
		}
		if (out[1] >= 0)
			close(out[1]);
		int st = test_wait_relay_(pid, out[0]);
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
			printf("ok %zu - %s\n", i + 1, cases[i].name);
		} else if (WIFEXITED(st) && WEXITSTATUS(st) == TEST_SKIP_CODE) {
			char reason[512] = "";
			FILE *f = fopen(skipfile, "r");
			if (f) {
				if (!fgets(reason, sizeof reason, f))
					reason[0] = '\0';
				fclose(f);
			}
			printf("ok %zu - %s # SKIP %s\n", i + 1, cases[i].name, reason);
		} else {
			failed++;
			if (WIFSIGNALED(st))
				printf("# killed by signal %d\n", WTERMSIG(st));
			printf("not ok %zu - %s\n", i + 1, cases[i].name);
		}
	}
	unlink(skipfile);
	return failed ? 1 : 0;
}

#define TEST_ENTRY_(fn) {#fn, fn},
#define TEST_MAIN(...)                                                                   \
	int main(void)                                                                   \
	{                                                                                \
		static const test_case cases_[] = {TEST_FOREACH_(TEST_ENTRY_, __VA_ARGS__)}; \
		return test_run_all_(cases_, sizeof cases_ / sizeof cases_[0]);          \
	}

/* Up to 64 cases per TEST_MAIN. */
#define TEST_FE_1(m, x) m(x)
#define TEST_FE_2(m, x, ...) m(x) TEST_FE_1(m, __VA_ARGS__)
#define TEST_FE_3(m, x, ...) m(x) TEST_FE_2(m, __VA_ARGS__)
#define TEST_FE_4(m, x, ...) m(x) TEST_FE_3(m, __VA_ARGS__)
#define TEST_FE_5(m, x, ...) m(x) TEST_FE_4(m, __VA_ARGS__)
#define TEST_FE_6(m, x, ...) m(x) TEST_FE_5(m, __VA_ARGS__)
#define TEST_FE_7(m, x, ...) m(x) TEST_FE_6(m, __VA_ARGS__)
#define TEST_FE_8(m, x, ...) m(x) TEST_FE_7(m, __VA_ARGS__)
#define TEST_FE_9(m, x, ...) m(x) TEST_FE_8(m, __VA_ARGS__)
#define TEST_FE_10(m, x, ...) m(x) TEST_FE_9(m, __VA_ARGS__)
#define TEST_FE_11(m, x, ...) m(x) TEST_FE_10(m, __VA_ARGS__)
#define TEST_FE_12(m, x, ...) m(x) TEST_FE_11(m, __VA_ARGS__)
#define TEST_FE_13(m, x, ...) m(x) TEST_FE_12(m, __VA_ARGS__)
#define TEST_FE_14(m, x, ...) m(x) TEST_FE_13(m, __VA_ARGS__)
#define TEST_FE_15(m, x, ...) m(x) TEST_FE_14(m, __VA_ARGS__)
#define TEST_FE_16(m, x, ...) m(x) TEST_FE_15(m, __VA_ARGS__)
#define TEST_FE_17(m, x, ...) m(x) TEST_FE_16(m, __VA_ARGS__)
#define TEST_FE_18(m, x, ...) m(x) TEST_FE_17(m, __VA_ARGS__)
#define TEST_FE_19(m, x, ...) m(x) TEST_FE_18(m, __VA_ARGS__)
#define TEST_FE_20(m, x, ...) m(x) TEST_FE_19(m, __VA_ARGS__)
#define TEST_FE_21(m, x, ...) m(x) TEST_FE_20(m, __VA_ARGS__)
#define TEST_FE_22(m, x, ...) m(x) TEST_FE_21(m, __VA_ARGS__)
#define TEST_FE_23(m, x, ...) m(x) TEST_FE_22(m, __VA_ARGS__)
#define TEST_FE_24(m, x, ...) m(x) TEST_FE_23(m, __VA_ARGS__)
#define TEST_FE_25(m, x, ...) m(x) TEST_FE_24(m, __VA_ARGS__)
#define TEST_FE_26(m, x, ...) m(x) TEST_FE_25(m, __VA_ARGS__)
#define TEST_FE_27(m, x, ...) m(x) TEST_FE_26(m, __VA_ARGS__)
#define TEST_FE_28(m, x, ...) m(x) TEST_FE_27(m, __VA_ARGS__)
#define TEST_FE_29(m, x, ...) m(x) TEST_FE_28(m, __VA_ARGS__)
#define TEST_FE_30(m, x, ...) m(x) TEST_FE_29(m, __VA_ARGS__)
#define TEST_FE_31(m, x, ...) m(x) TEST_FE_30(m, __VA_ARGS__)
#define TEST_FE_32(m, x, ...) m(x) TEST_FE_31(m, __VA_ARGS__)
#define TEST_FE_33(m, x, ...) m(x) TEST_FE_32(m, __VA_ARGS__)
#define TEST_FE_34(m, x, ...) m(x) TEST_FE_33(m, __VA_ARGS__)
#define TEST_FE_35(m, x, ...) m(x) TEST_FE_34(m, __VA_ARGS__)
#define TEST_FE_36(m, x, ...) m(x) TEST_FE_35(m, __VA_ARGS__)
#define TEST_FE_37(m, x, ...) m(x) TEST_FE_36(m, __VA_ARGS__)
#define TEST_FE_38(m, x, ...) m(x) TEST_FE_37(m, __VA_ARGS__)
#define TEST_FE_39(m, x, ...) m(x) TEST_FE_38(m, __VA_ARGS__)
#define TEST_FE_40(m, x, ...) m(x) TEST_FE_39(m, __VA_ARGS__)
#define TEST_FE_41(m, x, ...) m(x) TEST_FE_40(m, __VA_ARGS__)
#define TEST_FE_42(m, x, ...) m(x) TEST_FE_41(m, __VA_ARGS__)
#define TEST_FE_43(m, x, ...) m(x) TEST_FE_42(m, __VA_ARGS__)
#define TEST_FE_44(m, x, ...) m(x) TEST_FE_43(m, __VA_ARGS__)
#define TEST_FE_45(m, x, ...) m(x) TEST_FE_44(m, __VA_ARGS__)
#define TEST_FE_46(m, x, ...) m(x) TEST_FE_45(m, __VA_ARGS__)
#define TEST_FE_47(m, x, ...) m(x) TEST_FE_46(m, __VA_ARGS__)
#define TEST_FE_48(m, x, ...) m(x) TEST_FE_47(m, __VA_ARGS__)
#define TEST_FE_49(m, x, ...) m(x) TEST_FE_48(m, __VA_ARGS__)
#define TEST_FE_50(m, x, ...) m(x) TEST_FE_49(m, __VA_ARGS__)
#define TEST_FE_51(m, x, ...) m(x) TEST_FE_50(m, __VA_ARGS__)
#define TEST_FE_52(m, x, ...) m(x) TEST_FE_51(m, __VA_ARGS__)
#define TEST_FE_53(m, x, ...) m(x) TEST_FE_52(m, __VA_ARGS__)
#define TEST_FE_54(m, x, ...) m(x) TEST_FE_53(m, __VA_ARGS__)
#define TEST_FE_55(m, x, ...) m(x) TEST_FE_54(m, __VA_ARGS__)
#define TEST_FE_56(m, x, ...) m(x) TEST_FE_55(m, __VA_ARGS__)
#define TEST_FE_57(m, x, ...) m(x) TEST_FE_56(m, __VA_ARGS__)
#define TEST_FE_58(m, x, ...) m(x) TEST_FE_57(m, __VA_ARGS__)
#define TEST_FE_59(m, x, ...) m(x) TEST_FE_58(m, __VA_ARGS__)
#define TEST_FE_60(m, x, ...) m(x) TEST_FE_59(m, __VA_ARGS__)
#define TEST_FE_61(m, x, ...) m(x) TEST_FE_60(m, __VA_ARGS__)
#define TEST_FE_62(m, x, ...) m(x) TEST_FE_61(m, __VA_ARGS__)
#define TEST_FE_63(m, x, ...) m(x) TEST_FE_62(m, __VA_ARGS__)
#define TEST_FE_64(m, x, ...) m(x) TEST_FE_63(m, __VA_ARGS__)
#define TEST_FE_N_(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, _17, _18, \
		   _19, _20, _21, _22, _23, _24, _25, _26, _27, _28, _29, _30, _31, _32, _33, _34,  \
		   _35, _36, _37, _38, _39, _40, _41, _42, _43, _44, _45, _46, _47, _48, _49, _50,  \
		   _51, _52, _53, _54, _55, _56, _57, _58, _59, _60, _61, _62, _63, _64, N, ...)    \
	TEST_FE_##N
#define TEST_FOREACH_(m, ...)                                                                   \
	TEST_FE_N_(__VA_ARGS__, 64, 63, 62, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, \
		   47, 46, 45, 44, 43, 42, 41, 40, 39, 38, 37, 36, 35, 34, 33, 32, 31, 30, 29, 28, \
		   27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, \
		   6, 5, 4, 3, 2, 1)(m, __VA_ARGS__)

#endif
