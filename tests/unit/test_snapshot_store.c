/* SPDX-License-Identifier: Apache-2.0
 * The snapshot store on real files: commit/open/list/tags/delete/gc, and
 * rejection of corrupt or mismatched snapshots (a flipped payload byte, a
 * truncated file, an added or removed file, a damaged header, a wrong format
 * version), each naming the file. The tree copier never follows a symlink
 * planted in the source and keeps overlayfs whiteouts and opaque directories
 * (those two need root: skipped otherwise).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/util.h"
#include "harness.h"
#include "sandbox_test.h"
#include "snapshot/snapshot.h"

static char tmpdir[] = "/tmp/silo-snap-test.XXXXXX";

static void setup(void)
{
	REQUIRE(mkdtemp(tmpdir));
	sbt_setenv_dir("SILO_STATE_DIR", tmpdir, "state");
	sbt_setenv_dir("SILO_RUNTIME_DIR", tmpdir, "run");
}

static void teardown(void)
{
	rm_rf(tmpdir);
}

static void put(const char *dir, const char *rel, const char *text)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/%s", dir, rel);
	REQUIRE(write_file_atomic(p, text, strlen(text), 0644, NULL) == 0);
}

/* A snapshot with layer/{hello.txt, sub/data.bin, link -> /etc/passwd}. */
static void make_snapshot(const char *kind, char *const *tags, uint64_t ttl_ms, char id[SILO_ID_MAX])
{
	snap_writer *w = NULL;
	silo_error err = {0};
	REQUIRE(snap_begin(kind, &w, &err) == 0);
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/layer/sub", snap_writer_payload(w));
	REQUIRE(mkdir_p(p, 0755) == 0);
	snprintf(p, sizeof p, "%s/layer", snap_writer_payload(w));
	put(p, "hello.txt", "hello, snapshot\n");
	put(p, "sub/data.bin", "0123456789abcdefghijklmnopqrstuvwxyz");
	char l[PATH_MAX];
	snprintf(l, sizeof l, "%s/link", p);
	REQUIRE(symlink("/etc/passwd", l) == 0);
	vm_spec spec;
	REQUIRE(spec_default("namespace", &spec, &err) == 0);
	snprintf(spec.name, sizeof spec.name, "snaptest");
	snap_meta meta = {.provider = "namespace", .source = "sb-000000000001", .spec = &spec, .tags = tags,
			  .ttl_ms = ttl_ms};
	snap_info info;
	snprintf(id, SILO_ID_MAX, "%s", snap_writer_id(w));
	int rc = snap_commit(w, &meta, &info, &err);
	if (rc < 0)
		printf("# %s\n", err.message);
	REQUIRE(rc == 0);
	CHECK_STR_EQ(info.id, id);
	snap_info_free(&info);
	spec_free(&spec);
}

static void snap_file(const char *id, const char *rel, char *out, size_t len)
{
	char root[PATH_MAX];
	snap_root(root, sizeof root);
	snprintf(out, len, "%s/%s/%s", root, id, rel);
}

TEST(commit_open_verify)
{
	setup();
	char *tags[] = {"base", "v1", NULL};
	char id[SILO_ID_MAX];
	make_snapshot("snapshot", tags, 0, id);
	snap_info s;
	silo_error err = {0};
	REQUIRE(snap_open(id, true, &s, &err) == 0);
	CHECK_STR_EQ(s.provider, "namespace");
	CHECK_STR_EQ(s.source, "sb-000000000001");
	CHECK_STR_EQ(s.kind, "snapshot");
	CHECK_STR_EQ(s.spec.name, "snaptest");
	CHECK_INT_EQ(s.bytes, 16 + 36);
	CHECK_INT_EQ(s.entries, 5);   /* layer, layer/hello.txt, layer/link, layer/sub, layer/sub/data.bin */
	CHECK(s.tags && s.tags[0] && s.tags[1] && !s.tags[2]);
	CHECK_STR_EQ(s.tags[0], "base");
	/* the symlink was recorded as a link, not followed */
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/layer/link", s.payload);
	struct stat st;
	CHECK(lstat(p, &st) == 0 && S_ISLNK(st.st_mode));
	snap_info_free(&s);
	/* by tag */
	REQUIRE(snap_open("v1", true, &s, &err) == 0);
	CHECK_STR_EQ(s.id, id);
	snap_info_free(&s);
	json_t *list = NULL;
	REQUIRE(snap_list_json(&list, &err) == 0);
	CHECK_INT_EQ(json_array_size(list), 1);
	CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(list, 0), "id")), id);
	json_decref(list);
	/* unknown id/tag, and names that could escape the store */
	CHECK(snap_open("nope", false, &s, &err) < 0 && err.code == SILO_ERR_VM_NOT_FOUND);
	CHECK(snap_open("../state", false, &s, &err) < 0 && err.code == SILO_ERR_INVALID_CONFIG);
	CHECK(snap_open(".lock", false, &s, &err) < 0 && err.code == SILO_ERR_INVALID_CONFIG);
	teardown();
}

/* setup() and a snapshot of make_snapshot's tree; p gets the path of its file rel, the one
 * the case tampers with. */
static void tampering_setup(char id[SILO_ID_MAX], const char *rel, char p[PATH_MAX])
{
	setup();
	make_snapshot("snapshot", NULL, 0, id);
	snap_file(id, rel, p, PATH_MAX);
}

TEST(flipped_payload_byte)
{
	char id[SILO_ID_MAX], p[PATH_MAX];
	tampering_setup(id, "payload/layer/sub/data.bin", p);
	sbt_flip_byte(p, 10, 0x01);
	sbt_expect_reject(id, SILO_ERR_CHECKSUM_MISMATCH, "payload/layer/sub/data.bin: SHA-256 mismatch");
	/* without verification the header alone still opens (listing works) */
	snap_info s;
	silo_error err;
	CHECK(snap_open(id, false, &s, &err) == 0);
	snap_info_free(&s);
	teardown();
}

TEST(verification_cache_does_not_hide_changes)
{
	setup();
	char id[SILO_ID_MAX], p[PATH_MAX], cache[PATH_MAX];
	make_snapshot("snapshot", NULL, 0, id);
	snap_info s;
	silo_error err = {0};
	snap_file(id, ".verified", cache, sizeof cache);
	REQUIRE(snap_open(id, true, &s, &err) == 0);   /* full check; too fresh to cache */
	snap_info_free(&s);
	CHECK(!path_exists(cache));
	usleep(2100 * 1000);
	REQUIRE(snap_open(id, true, &s, &err) == 0);   /* full check, remembered */
	snap_info_free(&s);
	CHECK(path_exists(cache));
	REQUIRE(snap_open(id, true, &s, &err) == 0);   /* cached */
	snap_info_free(&s);
	/* flip a byte and put the mtime back: the ctime still moves */
	snap_file(id, "payload/layer/hello.txt", p, sizeof p);
	struct stat st;
	REQUIRE(stat(p, &st) == 0);
	int fd = open(p, O_RDWR);
	REQUIRE(fd >= 0);
	REQUIRE(pwrite(fd, "J", 1, 0) == 1);
	struct timespec ts[2] = {st.st_atim, st.st_mtim};
	REQUIRE(futimens(fd, ts) == 0);
	close(fd);
	sbt_expect_reject(id, SILO_ERR_CHECKSUM_MISMATCH, "payload/layer/hello.txt: SHA-256 mismatch");
	CHECK(!path_exists(cache));   /* a failed check forgets the cache */
	/* put the byte back: verifies again (a fresh full check) */
	fd = open(p, O_RDWR);
	REQUIRE(fd >= 0 && pwrite(fd, "h", 1, 0) == 1);
	close(fd);
	REQUIRE(snap_open(id, true, &s, &err) == 0);
	snap_info_free(&s);
	/* a forged cache line for a changed tree does not help */
	REQUIRE(write_file_atomic(cache, "x y\n", 4, 0600, NULL) == 0);
	snap_file(id, "payload/layer/sub/data.bin", p, sizeof p);
	REQUIRE(truncate(p, 3) == 0);
	sbt_expect_reject(id, SILO_ERR_CHECKSUM_MISMATCH, "payload/layer/sub/data.bin: 3 bytes");
	teardown();
}

TEST(truncated_payload_file)
{
	char id[SILO_ID_MAX], p[PATH_MAX];
	tampering_setup(id, "payload/layer/hello.txt", p);
	REQUIRE(truncate(p, 5) == 0);
	sbt_expect_reject(id, SILO_ERR_CHECKSUM_MISMATCH, "payload/layer/hello.txt: 5 bytes, the manifest says 16");
	teardown();
}

TEST(added_and_removed_files)
{
	char id[SILO_ID_MAX], p[PATH_MAX];
	tampering_setup(id, "payload/layer/zzz-extra", p);
	put("/", p, "x");
	sbt_expect_reject(id, SILO_ERR_CHECKSUM_MISMATCH, "payload/layer/zzz-extra is not in the manifest");
	unlink(p);
	snap_file(id, "payload/layer/sub/data.bin", p, sizeof p);
	REQUIRE(unlink(p) == 0);
	sbt_expect_reject(id, SILO_ERR_CHECKSUM_MISMATCH, "payload/layer/sub/data.bin is missing");
	/* a file replaced by a symlink to the same content */
	teardown();
}

TEST(replaced_by_symlink)
{
	char id[SILO_ID_MAX], p[PATH_MAX];
	tampering_setup(id, "payload/layer/hello.txt", p);
	REQUIRE(unlink(p) == 0);
	REQUIRE(symlink("/etc/hostname", p) == 0);
	sbt_expect_reject(id, SILO_ERR_CHECKSUM_MISMATCH, "payload/layer/hello.txt: the manifest says file, found symlink");
	teardown();
}

TEST(damaged_header)
{
	char id[SILO_ID_MAX], p[PATH_MAX];
	tampering_setup(id, SNAP_HEADER, p);
	char *txt = NULL;
	size_t len;
	REQUIRE(read_file(p, 1 << 20, &txt, &len, NULL) == 0);
	/* flip one digit of created_ms: still valid JSON, caught by the header SHA-256 */
	char *c = strstr(txt, "\"created_ms\": ");
	REQUIRE(c);
	c += strlen("\"created_ms\": ");
	*c = *c == '1' ? '2' : '1';
	REQUIRE(write_file_atomic(p, txt, len, 0600, NULL) == 0);
	sbt_expect_reject(id, SILO_ERR_CHECKSUM_MISMATCH, "snapshot.json: header SHA-256 mismatch");
	/* truncated: not JSON any more */
	REQUIRE(write_file_atomic(p, txt, len / 2, 0600, NULL) == 0);
	sbt_expect_reject(id, SILO_ERR_CHECKSUM_MISMATCH, "snapshot.json is corrupt");
	/* missing */
	REQUIRE(unlink(p) == 0);
	sbt_expect_reject(id, SILO_ERR_VM_NOT_FOUND, id);
	free(txt);
	teardown();
}

TEST(wrong_version)
{
	char id[SILO_ID_MAX], p[PATH_MAX];
	tampering_setup(id, SNAP_HEADER, p);
	json_t *h = json_load_file(p, 0, NULL);
	REQUIRE(h);
	json_object_set_new(h, "version", json_integer(2));
	REQUIRE(json_dump_file(h, p, JSON_INDENT(1)) == 0);
	sbt_expect_reject(id, SILO_ERR_INVALID_CONFIG, "version 2 is not supported (this silo reads version 1)");
	json_object_set_new(h, "version", json_integer(1));
	json_object_set_new(h, "format", json_string("qcow2"));
	REQUIRE(json_dump_file(h, p, JSON_INDENT(1)) == 0);
	sbt_expect_reject(id, SILO_ERR_INVALID_CONFIG, "format: expected \"silo-snapshot\"");
	json_decref(h);
	teardown();
}

TEST(tags_and_delete)
{
	setup();
	char id[SILO_ID_MAX];
	make_snapshot("snapshot", NULL, 0, id);
	silo_error err = {0};
	char *add[] = {"golden", NULL}, *bad[] = {"no/slash", NULL}, *snapish[] = {"snap-x", NULL};
	REQUIRE(snap_set_tags(id, add, NULL, &err) == 0);
	snap_info s;
	REQUIRE(snap_open("golden", true, &s, &err) == 0);   /* the header SHA-256 was recomputed */
	snap_info_free(&s);
	CHECK(snap_set_tags(id, bad, NULL, &err) < 0 && err.code == SILO_ERR_INVALID_CONFIG);
	CHECK_CONTAINS(err.message, "no/slash");
	CHECK(snap_set_tags(id, snapish, NULL, &err) < 0 && err.code == SILO_ERR_INVALID_CONFIG);
	REQUIRE(snap_set_tags(id, NULL, add, &err) == 0);
	CHECK(snap_open("golden", false, &s, &err) < 0 && err.code == SILO_ERR_VM_NOT_FOUND);
	/* in use by a "live sandbox" (a run directory naming it) */
	char rd[PATH_MAX];
	snprintf(rd, sizeof rd, "%s/sandboxes/sb-user", silo_runtime_dir());
	REQUIRE(mkdir_p(rd, 0700) == 0);
	REQUIRE(snap_mark_use(rd, id, &err) == 0);
	CHECK(snap_delete(id, false, &err) < 0 && err.code == SILO_ERR_CONFLICT);
	CHECK_CONTAINS(err.message, "sb-user");
	rm_rf(rd);
	REQUIRE(snap_delete(id, false, &err) == 0);
	CHECK(snap_open(id, false, &s, &err) < 0 && err.code == SILO_ERR_VM_NOT_FOUND);
	CHECK(snap_delete(id, false, &err) < 0 && err.code == SILO_ERR_VM_NOT_FOUND);
	teardown();
}

TEST(gc)
{
	setup();
	char keep[SILO_ID_MAX], fork_used[SILO_ID_MAX], fork_free[SILO_ID_MAX], expired[SILO_ID_MAX],
		untagged[SILO_ID_MAX];
	char *tags[] = {"keep", NULL};
	make_snapshot("snapshot", tags, 0, keep);
	make_snapshot("fork", NULL, 0, fork_used);
	make_snapshot("fork", NULL, 0, fork_free);
	make_snapshot("snapshot", tags, 1, expired);
	make_snapshot("snapshot", NULL, 0, untagged);
	usleep(5000);
	silo_error err = {0};
	char rd[PATH_MAX];
	snprintf(rd, sizeof rd, "%s/sandboxes/sb-fork1", silo_runtime_dir());
	REQUIRE(mkdir_p(rd, 0700) == 0);
	REQUIRE(snap_mark_use(rd, fork_used, &err) == 0);
	/* an abandoned writer (its pid is gone) */
	snap_writer *w;
	REQUIRE(snap_begin("snapshot", &w, &err) == 0);
	char pidf[PATH_MAX];
	snprintf(pidf, sizeof pidf, "%s/../pid", snap_writer_payload(w));
	REQUIRE(write_file_atomic(pidf, "999999999\n", 10, 0600, NULL) == 0);
	json_t *removed = NULL;
	REQUIRE(snap_gc(UINT64_MAX, &removed, &err) == 0);
	CHECK_INT_EQ(json_array_size(removed), 2);   /* fork_free, expired */
	json_decref(removed);
	snap_info s;
	CHECK(snap_open(keep, true, &s, &err) == 0);
	snap_info_free(&s);
	CHECK(snap_open(fork_used, true, &s, &err) == 0);
	snap_info_free(&s);
	CHECK(snap_open(untagged, true, &s, &err) == 0);
	snap_info_free(&s);
	CHECK(snap_open(fork_free, false, &s, &err) < 0);
	CHECK(snap_open(expired, false, &s, &err) < 0);
	CHECK(!path_exists(snap_writer_payload(w)));
	free(w);   /* its directory is gone: nothing to abort */
	/* with an age limit, untagged snapshots go too; the used fork stays */
	REQUIRE(snap_gc(0, &removed, &err) == 0);
	CHECK_INT_EQ(json_array_size(removed), 1);
	json_decref(removed);
	CHECK(snap_open(untagged, false, &s, &err) < 0);
	rm_rf(rd);
	REQUIRE(snap_gc(UINT64_MAX, &removed, &err) == 0);
	CHECK_INT_EQ(json_array_size(removed), 1);   /* the fork, now unused */
	json_decref(removed);
	/* a fork snapshot committed with a hold is safe from gc until released */
	snap_writer *w2;
	REQUIRE(snap_begin("fork", &w2, &err) == 0);
	vm_spec spec;
	REQUIRE(spec_default("namespace", &spec, &err) == 0);
	char hold[PATH_MAX + 128] = "";
	snap_meta meta = {.provider = "namespace", .source = "sb-x", .spec = &spec, .hold_out = hold,
			  .hold_len = sizeof hold};
	char hid[SILO_ID_MAX];
	snprintf(hid, sizeof hid, "%s", snap_writer_id(w2));
	REQUIRE(snap_commit(w2, &meta, NULL, &err) == 0);
	spec_free(&spec);
	CHECK(path_exists(hold));
	CHECK_CONTAINS(hold, hid);
	REQUIRE(snap_gc(UINT64_MAX, &removed, &err) == 0);
	CHECK_INT_EQ(json_array_size(removed), 0);
	json_decref(removed);
	CHECK(snap_delete(hid, false, &err) < 0 && err.code == SILO_ERR_CONFLICT);
	snap_release(hold);
	REQUIRE(snap_gc(UINT64_MAX, &removed, &err) == 0);
	CHECK_INT_EQ(json_array_size(removed), 1);
	json_decref(removed);
	teardown();
}

TEST(copy_tree_hostile_source)
{
	setup();
	char src[PATH_MAX], dst[PATH_MAX], p[PATH_MAX];
	snprintf(src, sizeof src, "%s/upper", tmpdir);
	snprintf(dst, sizeof dst, "%s/copy", tmpdir);
	snprintf(p, sizeof p, "%s/etc", src);
	REQUIRE(mkdir_p(p, 0755) == 0);
	put(src, "etc/motd", "hi\n");
	/* symlinks pointing out of the tree are copied as links, never followed */
	snprintf(p, sizeof p, "%s/escape", src);
	REQUIRE(symlink("/etc", p) == 0);
	snprintf(p, sizeof p, "%s/etc/shadow-link", src);
	REQUIRE(symlink("/etc/shadow", p) == 0);
	/* a FIFO is skipped (opening it would block) */
	snprintf(p, sizeof p, "%s/fifo", src);
	REQUIRE(mkfifo(p, 0600) == 0);
	/* a name that is not UTF-8 */
	put(src, "bad\xff\x01name", "x");
	bool root = geteuid() == 0;
	if (root) {
		snprintf(p, sizeof p, "%s/etc/deleted", src);
		REQUIRE(mknod(p, S_IFCHR | 0000, makedev(0, 0)) == 0);
		snprintf(p, sizeof p, "%s/etc", src);
		REQUIRE(setxattr(p, "trusted.overlay.opaque", "y", 1, 0) == 0);
	}
	size_t skipped = 0;
	silo_error err = {0};
	REQUIRE(snap_copy_tree(src, dst, 1 << 20, &skipped, &err) == 0);
	CHECK_INT_EQ(skipped, 1);
	struct stat st;
	snprintf(p, sizeof p, "%s/escape", dst);
	CHECK(lstat(p, &st) == 0 && S_ISLNK(st.st_mode));
	snprintf(p, sizeof p, "%s/etc/passwd", dst);
	CHECK(!path_exists(p));
	json_t *a = NULL, *b = NULL;
	REQUIRE(snap_manifest(src, &a, NULL, &err) == 0);
	REQUIRE(snap_manifest(dst, &b, NULL, &err) == 0);
	/* identical manifests except the skipped FIFO */
	size_t i;
	json_t *e;
	json_array_foreach(a, i, e) if (!strcmp(json_string_value(json_object_get(e, "path")), "fifo"))
	{
		json_array_remove(a, i);
		break;
	}
	CHECK(json_equal(a, b));
	char *dump = json_dumps(b, JSON_COMPACT);
	CHECK_CONTAINS(dump, "bad%ff%01name");
	if (root) {
		CHECK_CONTAINS(dump, "\"type\":\"whiteout\"");
		CHECK_CONTAINS(dump, "\"opaque\":true");
	}
	free(dump);
	json_decref(a);
	json_decref(b);
	/* the size limit */
	rm_rf(dst);
	CHECK(snap_copy_tree(src, dst, 2, &skipped, &err) < 0 && err.code == SILO_ERR_RESOURCE_EXCEEDED);
	teardown();
}

TEST_MAIN(commit_open_verify, flipped_payload_byte, verification_cache_does_not_hide_changes, truncated_payload_file, added_and_removed_files,
	  replaced_by_symlink, damaged_header, wrong_version, tags_and_delete, gc, copy_tree_hostile_source)
