/* SPDX-License-Identifier: Apache-2.0 */
#include "harness.h"
#include "common/error.h"
#include "common/util.h"

#include <errno.h>

TEST(code_names_round_trip)
{
	for (int i = 0; i < SILO_ERR__COUNT; i++) {
		const char *n = silo_code_name((silo_code)i);
		CHECK(strcmp(n, "UNKNOWN") != 0);
		CHECK_INT_EQ(silo_code_from_name(n), i);
	}
	CHECK_STR_EQ(silo_code_name(SILO_ERR__COUNT), "UNKNOWN");
	CHECK_INT_EQ(silo_code_from_name("NOPE"), SILO_ERR__COUNT);
}

TEST(stable_numbers)
{
	/* Public contract: these numbers never change (docs/errors.md). */
	CHECK_INT_EQ(SILO_ERR_INVALID_CONFIG, 1);
	CHECK_INT_EQ(SILO_ERR_MAX_VMS_EXCEEDED, 3);
	CHECK_INT_EQ(SILO_ERR_VM_NOT_FOUND, 5);
	CHECK_INT_EQ(SILO_ERR_CHECKSUM_MISMATCH, 9);
	CHECK_INT_EQ(SILO_ERR_IO_ERROR, 14);
	CHECK_INT_EQ(SILO_ERR_INTERNAL, 20);
	CHECK_INT_EQ(SILO_ERR_NOT_FOUND, 21);
	CHECK_INT_EQ(SILO_ERR_METHOD_NOT_ALLOWED, 22);
	CHECK_INT_EQ(SILO_ERR_PAYLOAD_TOO_LARGE, 23);
	CHECK_INT_EQ(SILO_ERR_UNSUPPORTED_MEDIA_TYPE, 24);
	CHECK_INT_EQ(SILO_ERR_FILE_NOT_FOUND, 25);
	CHECK_INT_EQ(SILO_ERR_PROCESS_NOT_FOUND, 26);
}

TEST(fail_prefix_and_vm)
{
	silo_error e;
	silo_error_clear(&e);
	CHECK_INT_EQ(silo_fail_vm(&e, SILO_ERR_BOOT_TIMEOUT, ETIMEDOUT, "sb-1", "agent not ready after %d ms", 50), -1);
	silo_error_prefix(&e, "spawn");
	CHECK_INT_EQ(e.code, SILO_ERR_BOOT_TIMEOUT);
	CHECK_STR_EQ(e.vm_id, "sb-1");
	CHECK_CONTAINS(e.message, "spawn: agent not ready after 50 ms: ");
	char buf[2048];
	CHECK_CONTAINS(silo_error_str(&e, buf, sizeof buf), "BOOT_TIMEOUT [sb-1]: spawn:");
	CHECK_INT_EQ(silo_fail(NULL, SILO_ERR_IO_ERROR, 0, "x"), -1); /* NULL err is allowed */
}

TEST(rm_rf_does_not_follow_symlinks)
{
	char dir[] = "/tmp/silo-ut-XXXXXX", keep[] = "/tmp/silo-keep-XXXXXX";
	REQUIRE(mkdtemp(dir) && mkdtemp(keep));
	char *f = xasprintf("%s/victim", keep);
	REQUIRE(write_file_atomic(f, "x", 1, 0600, NULL) == 0);
	char *sub = xasprintf("%s/a/b", dir);
	REQUIRE(mkdir_p(sub, 0700) == 0);
	char *ln = xasprintf("%s/a/link", dir);
	REQUIRE(symlink(keep, ln) == 0);
	CHECK_INT_EQ(rm_rf(dir), 0);
	CHECK(!path_exists(dir));
	CHECK(path_exists(f));
	rm_rf(keep);
	free(f), free(sub), free(ln);
}

TEST(safe_relative_paths)
{
	CHECK(path_is_safe_relative("a/b/c"));
	CHECK(!path_is_safe_relative("../x"));
	CHECK(!path_is_safe_relative("a/../../x"));
	CHECK(!path_is_safe_relative("/etc/passwd"));
	CHECK(!path_is_safe_relative(""));
	CHECK(path_is_safe_relative("a/..b"));
}

TEST_MAIN(code_names_round_trip, stable_numbers, fail_prefix_and_vm, rm_rf_does_not_follow_symlinks,
	  safe_relative_paths)
