/* SPDX-License-Identifier: Apache-2.0
 * Helpers of the tests that extract hostile archives and compare trees
 * (tests/unit/test_archive.c, test_channel_fs.c, test_trust.c,
 * tests/fuzz/fuzz_oci_tar.c, fuzz_archive_extract.c). Only lib/common/util.h:
 * the fuzzers use it too.
 */
#ifndef SILO_TESTS_TREE_TEST_H
#define SILO_TESTS_TREE_TEST_H

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"

/* Entries of dir besides . and .. (0 when it cannot be read). */
static inline size_t tree_count(const char *dir)
{
	DIR *d = opendir(dir);
	size_t n = 0;
	struct dirent *de;
	while (d && (de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	if (d)
		closedir(d);
	return n;
}

/* A shell command's exit status (-1 when it did not exit). */
static inline int tree_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int tree_sh(const char *fmt, ...)
{
	char *cmd = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&cmd, fmt, ap) < 0)
		abort();
	va_end(ap);
	int rc = system(cmd);
	free(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* The extraction fuzzers' scratch directory /tmp/silo-fuzz-NAME-PID (removed
 * at exit): *root is emptied for each input, *outside must stay empty. */
static char tree_scratch_[64];

static inline void tree_scratch_remove_(void)
{
	rm_rf(tree_scratch_);
}

static inline const char *tree_scratch(const char *name, char root[128], char outside[128])
{
	if (!tree_scratch_[0]) {
		snprintf(tree_scratch_, sizeof tree_scratch_, "/tmp/silo-fuzz-%s-%d", name, (int)getpid());
		mkdir(tree_scratch_, 0700);
		atexit(tree_scratch_remove_);
	}
	snprintf(root, 128, "%s/root", tree_scratch_);
	snprintf(outside, 128, "%s/outside", tree_scratch_);
	rm_rf(root);
	if (mkdir(root, 0755) < 0 || (mkdir(outside, 0755) < 0 && !path_exists(outside)))
		abort();
	return tree_scratch_;
}

#endif
