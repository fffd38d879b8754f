/* SPDX-License-Identifier: Apache-2.0
 * Image store (lib/image): manifest validation, SHA-256 verification with the
 * stamp cache, removal, kernel lookup. Real files in a private SILO_CACHE_DIR.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "harness.h"
#include "image/image.h"

static char cache[PATH_MAX];

static void setup_cache(void)
{
	snprintf(cache, sizeof cache, "/tmp/silo-imgtest-XXXXXX");
	REQUIRE(mkdtemp(cache) != NULL);
	setenv("SILO_CACHE_DIR", cache, 1);
	char d[PATH_MAX + 16];
	snprintf(d, sizeof d, "%s/images/x", cache);
	REQUIRE(mkdir_p(d, 0755) == 0);
}

static void write_str(const char *path, const char *s)
{
	REQUIRE(write_file_atomic(path, s, strlen(s), 0644, NULL) == 0);
}

/* Writes image file with content, returns its sha256 into hex. */
static void make_file(const char *path, const char *content, char hex[65])
{
	write_str(path, content);
	uint64_t sz;
	REQUIRE(image_sha256_file(path, hex, &sz, NULL) == 0);
	CHECK_INT_EQ(sz, strlen(content));
}

static void write_manifest(const char *body)
{
	char p[PATH_MAX];
	image_manifest_path(p, sizeof p);
	write_str(p, body);
}

TEST(sha256_known_vector)
{
	setup_cache();
	char p[PATH_MAX + 16], hex[65];
	snprintf(p, sizeof p, "%s/abc", cache);
	make_file(p, "abc", hex);
	CHECK_STR_EQ(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	rm_rf(cache);
}

TEST(parse_rejects_bad_fields)
{
	static const struct {
		const char *json, *want;
	} cases[] = {
		{"{", "image manifest: line"},
		{"[]", "expected {\"images\""},
		{"{\"images\":[{\"name\":\"Bad!\",\"kind\":\"ext4\"}]}", "images[0].name"},
		{"{\"images\":[{\"name\":\"a\",\"kind\":\"qcow2\"}]}", "kind"},
		{"{\"images\":[{\"name\":\"a\",\"kind\":\"initramfs\",\"path\":\"rel/x\",\"sha256\":\"00\",\"size\":1}]}",
		 "path: expected an absolute path"},
		{"{\"images\":[{\"name\":\"a\",\"kind\":\"initramfs\",\"path\":\"/a/../b\",\"sha256\":\"00\",\"size\":1}]}",
		 "path: expected an absolute path"},
		{"{\"images\":[{\"name\":\"a\",\"kind\":\"initramfs\",\"path\":\"/x\",\"sha256\":\"00\",\"size\":1}]}",
		 "sha256: expected 64"},
		{"{\"images\":[{\"name\":\"a\",\"kind\":\"initramfs\",\"path\":\"/x\",\"sha256\":"
		 "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\",\"size\":-1}]}",
		 "size: expected a non-negative"},
		{"{\"images\":[{\"name\":\"a\",\"kind\":\"ext4\",\"path\":\"/x\",\"sha256\":"
		 "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\",\"size\":3}]}",
		 "initrd: an ext4 image needs"},
		{"{\"images\":[{\"name\":\"a\",\"kind\":\"initramfs\",\"path\":\"/x\",\"sha256\":"
		 "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\",\"size\":3},"
		 "{\"name\":\"a\",\"kind\":\"initramfs\",\"path\":\"/y\",\"sha256\":"
		 "\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\",\"size\":3}]}",
		 "listed twice"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		image_entry *v = (image_entry *)1;
		size_t n = 99;
		silo_error err = {0};
		CHECK_INT_EQ(image_manifest_parse(cases[i].json, strlen(cases[i].json), &v, &n, &err), -1);
		CHECK_INT_EQ(err.code, SILO_ERR_INVALID_CONFIG);
		CHECK_CONTAINS(err.message, cases[i].want);
		CHECK(v == NULL);
		CHECK_INT_EQ(n, 0);
	}
	/* oversized input is refused before parsing */
	size_t big = IMAGE_MANIFEST_MAX + 1;
	char *huge = xmalloc(big);
	memset(huge, ' ', big);
	image_entry *v;
	size_t n;
	silo_error err = {0};
	CHECK_INT_EQ(image_manifest_parse(huge, big, &v, &n, &err), -1);
	CHECK_CONTAINS(err.message, "limit");
	free(huge);
}

TEST(lookup_verify_remove)
{
	setup_cache();
	char img[PATH_MAX + 32], ird[PATH_MAX + 32], h1[65], h2[65];
	snprintf(img, sizeof img, "%s/images/x/rootfs.ext4", cache);
	snprintf(ird, sizeof ird, "%s/images/x/loader.cpio.gz", cache);
	make_file(img, "root filesystem bytes", h1);
	make_file(ird, "loader", h2);
	char *m = xasprintf("{\"version\":1,\"images\":[{\"name\":\"x\",\"kind\":\"ext4\",\"path\":\"%s\","
			    "\"sha256\":\"%s\",\"size\":21,\"created\":\"2026-01-01T00:00:00Z\","
			    "\"initrd\":{\"path\":\"%s\",\"sha256\":\"%s\",\"size\":6},"
			    "\"kernel\":{\"key\":\"abc\",\"path\":\"/k/vmlinux\"}}]}",
			    img, h1, ird, h2);
	write_manifest(m);
	free(m);

	image_entry e;
	silo_error err = {0};
	REQUIRE(image_lookup("x", &e, &err) == 0);
	CHECK_INT_EQ(e.kind, IMAGE_KIND_EXT4);
	CHECK_STR_EQ(e.file.path, img);
	CHECK_STR_EQ(e.initrd.path, ird);
	CHECK_STR_EQ(e.kernel_key, "abc");
	CHECK_STR_EQ(e.created, "2026-01-01T00:00:00Z");
	CHECK_INT_EQ(image_verify(&e, &err), 0);
	char stamp[PATH_MAX + 48];
	snprintf(stamp, sizeof stamp, "%s.verified", img);
	CHECK(path_exists(stamp));

	/* same size, different bytes, new mtime: the stamp no longer matches -> mismatch */
	struct timespec ts = {0, 20 * 1000 * 1000};
	nanosleep(&ts, NULL);
	write_str(img, "ROOT filesystem bytes");
	silo_error e2 = {0};
	CHECK_INT_EQ(image_verify(&e, &e2), -1);
	CHECK_INT_EQ(e2.code, SILO_ERR_CHECKSUM_MISMATCH);
	CHECK_CONTAINS(e2.message, "manifest says");
	/* size change is caught without hashing */
	write_str(img, "short");
	silo_error e3 = {0};
	CHECK_INT_EQ(image_verify(&e, &e3), -1);
	CHECK_INT_EQ(e3.code, SILO_ERR_CHECKSUM_MISMATCH);
	CHECK_CONTAINS(e3.message, "bytes, manifest says 21");

	image_entry e5;
	silo_error e6 = {0};
	CHECK_INT_EQ(image_lookup("nope", &e5, &e6), -1);
	CHECK(!strstr(e6.message, "silo image build nope"));   /* not a name it can build */
	CHECK_CONTAINS(e6.message, "silo image import SOURCE --name nope");
	/* a typo gets the closest name, and how to build it if it is not built yet */
	silo_error e9 = {0};
	CHECK_INT_EQ(image_lookup("pyhton", &e5, &e9), -1);
	CHECK_CONTAINS(e9.message, "did you mean \"python\"? (build it: silo image build python)");
	CHECK(!strstr(e9.message, "build pyhton"));
	silo_error e10 = {0};
	CHECK_INT_EQ(image_lookup("python", &e5, &e10), -1);
	CHECK_CONTAINS(e10.message, "(build it: silo image build python)");
	silo_error e11 = {0};
	CHECK_INT_EQ(image_lookup("xx", &e5, &e11), -1);   /* one edit from "x", which is built */
	CHECK_CONTAINS(e11.message, "did you mean \"x\"?");

	CHECK_INT_EQ(image_remove("x", &err), 0);
	CHECK(!path_exists(img));
	CHECK(!path_exists(ird));
	CHECK(!path_exists(stamp));
	image_entry *v;
	size_t n;
	CHECK_INT_EQ(image_list(&v, &n, &err), 0);
	CHECK_INT_EQ(n, 0);
	image_entries_free(v, n);
	silo_error e7 = {0};
	CHECK_INT_EQ(image_remove("x", &e7), -1);
	CHECK_CONTAINS(e7.message, "no image named");
	silo_error e8 = {0};
	CHECK_INT_EQ(image_remove("../etc", &e8), -1);
	CHECK_CONTAINS(e8.message, "not a valid image name");
	image_entry_free(&e);
	rm_rf(cache);
}

TEST(missing_manifest_is_empty_and_kernel_lookup)
{
	setup_cache();
	image_entry *v;
	size_t n = 5;
	CHECK_INT_EQ(image_list(&v, &n, NULL), 0);
	CHECK_INT_EQ(n, 0);
	char k[PATH_MAX];
	silo_error err = {0};
	unsetenv("SILO_KERNEL");
	CHECK_INT_EQ(guest_kernel_path(k, sizeof k, &err), -1);
	CHECK_INT_EQ(err.code, SILO_ERR_PROVIDER_UNAVAILABLE);
	CHECK_CONTAINS(err.message, "build-kernel.sh");
	char kp[PATH_MAX + 32], hex[65];
	snprintf(kp, sizeof kp, "%s/vmlinux", cache);
	make_file(kp, "ELF", hex);
	setenv("SILO_KERNEL", kp, 1);
	CHECK_INT_EQ(guest_kernel_path(k, sizeof k, &err), 0);
	CHECK_STR_EQ(k, kp);
	rm_rf(cache);
}

TEST_MAIN(sha256_known_vector, parse_rejects_bad_fields, lookup_verify_remove,
	  missing_manifest_is_empty_and_kernel_lookup)
