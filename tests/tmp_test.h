/* SPDX-License-Identifier: Apache-2.0
 * A temp dir per test case: tmp_path("silo-reg", "registry.db") makes /tmp/silo-reg-XXXXXX
 * and returns DIR/registry.db; the case ends with cleanup_tmp(path), which frees the
 * path and removes the dir. A case that makes its own dir may put it in tmpdir_ to have it removed.
 */
#ifndef SILO_TESTS_TMP_TEST_H
#define SILO_TESTS_TMP_TEST_H

#include "common/util.h"
#include "harness.h"

static char tmpdir_[64];

/* The end of a case: free path (what tmp_path returned, or NULL) and remove the dir. */
static __attribute__((unused)) void cleanup_tmp(char *path)
{
	free(path);
	if (tmpdir_[0])
		rm_rf(tmpdir_);
}

static __attribute__((unused)) char *tmp_path(const char *prefix, const char *name)
{
	snprintf(tmpdir_, sizeof tmpdir_, "/tmp/%s-XXXXXX", prefix);
	REQUIRE(mkdtemp(tmpdir_));
	return xasprintf("%s/%s", tmpdir_, name);
}

#endif
