/* SPDX-License-Identifier: Apache-2.0
 * lib/archive: tar streams of trees. A tree with every kind of entry goes out
 * and back byte-exact (contents, modes, symlink targets, mtimes), GNU tar
 * reads what we write and we read what GNU tar writes, and hostile archives
 * (what a guest could send to `silo cp ID:/path DIR`) are refused naming the
 * entry with nothing written outside the destination: "..", absolute names,
 * a symlink then used as a directory, a symlink already in the destination,
 * hard links out of the archive, devices, FIFOs, a second top entry, setuid
 * bits, too many entries or bytes.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "archive/archive.h"
#include "common/util.h"
#include "harness.h"
#include "tree_test.h"

/* ---- helpers ---- */

static char *tmpdir(void)
{
	char *t = xstrdup("/tmp/silo-archive-XXXXXX");
	REQUIRE(mkdtemp(t));
	return t;
}

static int to_fd(void *ud, const void *buf, size_t n, silo_error *err)
{
	if (write_all(*(int *)ud, buf, n) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "write");
	return 0;
}

static ssize_t from_fd(void *ud, void *buf, size_t n, silo_error *err)
{
	ssize_t k = read(*(int *)ud, buf, n);
	if (k < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "read");
	return k;
}

static void put_file(const char *path, const char *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	REQUIRE(fd >= 0);
	REQUIRE(write_all(fd, data, len) == 0);
	REQUIRE(fchmod(fd, mode) == 0);
	close(fd);
}

/* Write path (below dirfd) as an archive into a memfd; returns it at offset 0. */
static int archive_of(const char *path, const char *name, archive_stats *st)
{
	int fd = memfd_create("tar", MFD_CLOEXEC);
	REQUIRE(fd >= 0);
	silo_error err = {0};
	archive_wopts o = {.name = name};
	REQUIRE(archive_write(AT_FDCWD, path, &o, to_fd, &fd, st, &err) == 0);
	REQUIRE(lseek(fd, 0, SEEK_SET) == 0);
	return fd;
}

static int extract_fd(int fd, const char *dest, const archive_xopts *o, archive_stats *st, silo_error *err)
{
	int root = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	REQUIRE(root >= 0);
	tar_reader *r = tar_reader_new(from_fd, &fd);
	int rc = archive_extract(r, root, o, st, err);
	tar_reader_free(r);
	close(root);
	return rc;
}

/* ---- a tiny hand-made tar writer for hostile archives ---- */

typedef struct tb {
	uint8_t *p;
	size_t len;
} tb;

static void tb_entry(tb *b, const char *name, char type, const char *link, const char *data, size_t dlen, unsigned mode)
{
	size_t blocks = 1 + (dlen + 511) / 512;
	b->p = xrealloc(b->p, b->len + blocks * 512);
	uint8_t *h = b->p + b->len;
	memset(h, 0, blocks * 512);
	snprintf((char *)h, 100, "%s", name);
	snprintf((char *)h + 100, 8, "%07o", mode);
	snprintf((char *)h + 108, 8, "%07o", 0);
	snprintf((char *)h + 116, 8, "%07o", 0);
	snprintf((char *)h + 124, 12, "%011zo", dlen);
	snprintf((char *)h + 136, 12, "%011o", 1700000000);
	h[156] = (uint8_t)type;
	if (link)
		snprintf((char *)h + 157, 100, "%s", link);
	memcpy(h + 257, "ustar\0" "00", 8);
	memset(h + 148, ' ', 8);
	unsigned sum = 0;
	for (int i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	if (dlen)
		memcpy(h + 512, data, dlen);
	b->len += blocks * 512;
}

static int tb_fd(tb *b)
{
	b->p = xrealloc(b->p, b->len + 1024);
	memset(b->p + b->len, 0, 1024);
	int fd = memfd_create("hostile", MFD_CLOEXEC);
	REQUIRE(fd >= 0 && write_all(fd, b->p, b->len + 1024) == 0 && lseek(fd, 0, SEEK_SET) == 0);
	free(b->p);
	b->p = NULL;
	b->len = 0;
	return fd;
}

/* Extract a hostile archive into T/dest next to T/outside (and T/dest/escape ->
 * T/outside already there); it must fail with code naming want, and outside
 * must stay empty. */
static void expect_refused(tb *b, const archive_xopts *o, silo_code code, const char *want)
{
	char *t = tmpdir();
	char dest[256], outside[256], esc[256];
	snprintf(dest, sizeof dest, "%s/dest", t);
	snprintf(outside, sizeof outside, "%s/outside", t);
	snprintf(esc, sizeof esc, "%s/escape", dest);
	REQUIRE(mkdir(dest, 0755) == 0 && mkdir(outside, 0755) == 0 && symlink(outside, esc) == 0);
	int fd = tb_fd(b);
	silo_error err = {0};
	int rc = extract_fd(fd, dest, o, NULL, &err);
	close(fd);
	printf("# %s: %s\n", silo_code_name(err.code), err.message);
	CHECK_INT_EQ(rc, -1);
	CHECK_INT_EQ(err.code, code);
	CHECK_CONTAINS(err.message, want);
	CHECK_INT_EQ(tree_count(outside), 0);
	rm_rf(t);
	free(t);
}

/* ---- the tree used for round trips ---- */

static char big[3 * 1024 * 1024 + 17];

static void make_tree(const char *root)
{
	char p[1024];
	REQUIRE(mkdir(root, 0750) == 0);
	snprintf(p, sizeof p, "%s/empty", root);
	put_file(p, "", 0, 0600);
	snprintf(p, sizeof p, "%s/script.sh", root);
	put_file(p, "#!/bin/sh\necho hi\n", 18, 0755);
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (char)(i * 2654435761u >> 13);
	snprintf(p, sizeof p, "%s/big.bin", root);
	put_file(p, big, sizeof big, 0644);
	snprintf(p, sizeof p, "%s/sub", root);
	REQUIRE(mkdir(p, 0700) == 0);
	snprintf(p, sizeof p, "%s/sub/emptydir", root);
	REQUIRE(mkdir(p, 0755) == 0);
	snprintf(p, sizeof p, "%s/sub/readonly", root);
	REQUIRE(mkdir(p, 0555) == 0);
	/* a name over 100 bytes, in a path over 255 */
	char longname[201];
	memset(longname, 'n', 200);
	longname[200] = '\0';
	snprintf(p, sizeof p, "%s/sub/%s", root, longname);
	REQUIRE(mkdir(p, 0755) == 0);
	snprintf(p, sizeof p, "%s/sub/%s/%s.txt", root, longname, longname);
	put_file(p, "deep\n", 5, 0640);
	snprintf(p, sizeof p, "%s/rel-link", root);
	REQUIRE(symlink("script.sh", p) == 0);
	snprintf(p, sizeof p, "%s/abs-link", root);
	REQUIRE(symlink("/etc/passwd", p) == 0);
	snprintf(p, sizeof p, "%s/dangling", root);
	REQUIRE(symlink("no/such/target", p) == 0);
	char target[150];
	memset(target, 't', 149);
	target[149] = '\0';
	snprintf(p, sizeof p, "%s/long-target", root);
	REQUIRE(symlink(target, p) == 0);
	/* a fixed mtime on a file, to compare */
	snprintf(p, sizeof p, "%s/script.sh", root);
	struct timespec ts[2] = {{.tv_sec = 1600000000}, {.tv_sec = 1600000000}};
	REQUIRE(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW) == 0);
}

/* Same entries, contents, modes, link targets: "diff -r" plus a mode listing. */
static void check_same_tree(const char *a, const char *b)
{
	CHECK_INT_EQ(tree_sh("diff -r --no-dereference '%s' '%s' >&2", a, b), 0);
	CHECK_INT_EQ(tree_sh("cd '%s' && find . -printf '%%p %%m %%y %%l\\n' | sort > /tmp/silo-archive-a.$$ && "
			"cd '%s' && find . -printf '%%p %%m %%y %%l\\n' | sort | diff /tmp/silo-archive-a.$$ - >&2; "
			"r=$?; rm -f /tmp/silo-archive-a.$$; exit $r",
			a, b),
		     0);
}

TEST(roundtrip_byte_exact_with_modes_and_symlinks)
{
	char *t = tmpdir();
	char src[256], dst[256];
	snprintf(src, sizeof src, "%s/src", t);
	snprintf(dst, sizeof dst, "%s/dst", t);
	make_tree(src);
	REQUIRE(mkdir(dst, 0755) == 0);
	archive_stats ws = {0}, xs = {0};
	int fd = archive_of(src, NULL, &ws);
	printf("# wrote %llu entries (%llu files, %llu dirs, %llu symlinks), %llu bytes of data\n",
	       (unsigned long long)ws.entries, (unsigned long long)ws.files, (unsigned long long)ws.dirs,
	       (unsigned long long)ws.symlinks, (unsigned long long)ws.bytes);
	CHECK_INT_EQ(ws.files, 4);
	CHECK_INT_EQ(ws.symlinks, 4);
	CHECK_INT_EQ(ws.skipped, 0);
	silo_error err = {0};
	archive_xopts xo = {.single_root = true};
	int rc = extract_fd(fd, dst, &xo, &xs, &err);
	CHECK_INT_EQ(rc, 0);
	CHECK_INT_EQ(xs.files, ws.files);
	CHECK_INT_EQ(xs.bytes, ws.bytes);
	char got[300];
	snprintf(got, sizeof got, "%s/src", dst);
	check_same_tree(src, got);
	struct stat st;
	snprintf(got, sizeof got, "%s/src/script.sh", dst);
	REQUIRE(stat(got, &st) == 0);
	CHECK_INT_EQ(st.st_mtime, 1600000000);
	/* rename_root puts the tree under another name, "" into the destination itself */
	REQUIRE(lseek(fd, 0, SEEK_SET) == 0);
	archive_xopts ren = {.single_root = true, .rename_root = "renamed"};
	CHECK_INT_EQ(extract_fd(fd, dst, &ren, NULL, &err), 0);
	snprintf(got, sizeof got, "%s/renamed", dst);
	check_same_tree(src, got);
	close(fd);
	tree_sh("chmod -R u+w '%s'; rm -rf '%s'", t, t);
	free(t);
}

TEST(gnu_tar_reads_ours_and_we_read_gnu_tar)
{
	if (tree_sh("tar --version >/dev/null 2>&1") != 0)
		SKIP("GNU tar not installed");
	char *t = tmpdir();
	char src[256], a[256], b[256], tarf[256];
	snprintf(src, sizeof src, "%s/src", t);
	snprintf(a, sizeof a, "%s/by-gnu", t);
	snprintf(b, sizeof b, "%s/by-us", t);
	snprintf(tarf, sizeof tarf, "%s/ours.tar", t);
	make_tree(src);
	REQUIRE(mkdir(a, 0755) == 0 && mkdir(b, 0755) == 0);
	int fd = open(tarf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	silo_error err = {0};
	REQUIRE(fd >= 0 && archive_write(AT_FDCWD, src, NULL, to_fd, &fd, NULL, &err) == 0);
	close(fd);
	CHECK_INT_EQ(tree_sh("tar -C '%s' -xpf '%s'", a, tarf), 0);
	char got[300];
	snprintf(got, sizeof got, "%s/src", a);
	check_same_tree(src, got);
	/* GNU tar's own archive (GNU format, long names) through our reader */
	CHECK_INT_EQ(tree_sh("tar -C '%s' --format=gnu -cf '%s/gnu.tar' src && tar -C '%s' --format=pax -cf '%s/pax.tar' src", t,
			t, t, t),
		     0);
	const char *fmts[] = {"gnu", "pax"};
	for (int i = 0; i < 2; i++) {
		char f[300], d[300];
		snprintf(f, sizeof f, "%s/%s.tar", t, fmts[i]);
		snprintf(d, sizeof d, "%s/from-%s", t, fmts[i]);
		REQUIRE(mkdir(d, 0755) == 0);
		fd = open(f, O_RDONLY);
		REQUIRE(fd >= 0);
		archive_xopts xo = {.single_root = true};
		int rc = extract_fd(fd, d, &xo, NULL, &err);
		if (rc < 0)
			printf("# %s: %s\n", fmts[i], err.message);
		CHECK_INT_EQ(rc, 0);
		close(fd);
		snprintf(got, sizeof got, "%s/src", d);
		check_same_tree(src, got);
	}
	tree_sh("chmod -R u+w '%s'; rm -rf '%s'", t, t);
	free(t);
}

static char warnings[4096];
static void collect_warn(void *ud, const char *msg)
{
	size_t l = strlen(warnings);
	snprintf(warnings + l, sizeof warnings - l, "%s\n", msg);
}

TEST(writer_skips_sockets_fifos_and_mount_points)
{
	char *t = tmpdir();
	char p[512];
	snprintf(p, sizeof p, "%s/fifo", t);
	REQUIRE(mkfifo(p, 0600) == 0);
	snprintf(p, sizeof p, "%s/sock", t);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", p);
	REQUIRE(s >= 0 && bind(s, (struct sockaddr *)&sa, sizeof sa) == 0);
	snprintf(p, sizeof p, "%s/file", t);
	put_file(p, "x", 1, 0644);
	snprintf(p, sizeof p, "%s/mnt", t);
	REQUIRE(mkdir(p, 0755) == 0);
	bool mounted = geteuid() == 0 && unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
		       mount("tmpfs", p, "tmpfs", 0, "size=1m") == 0;
	if (mounted) {
		snprintf(p, sizeof p, "%s/mnt/inside", t);
		put_file(p, "secret", 6, 0644);
	}
	int fd = memfd_create("tar", MFD_CLOEXEC);
	archive_stats st = {0};
	archive_wopts o = {.warn = collect_warn};
	silo_error err = {0};
	REQUIRE(archive_write(AT_FDCWD, t, &o, to_fd, &fd, &st, &err) == 0);
	for (char *l = warnings, *nl; (nl = strchr(l, '\n')); l = nl + 1)
		printf("# warning: %.*s\n", (int)(nl - l), l);
	CHECK_INT_EQ(st.files, 1);
	CHECK_CONTAINS(warnings, "a FIFO");
	CHECK_CONTAINS(warnings, "a socket");
	if (mounted) {
		CHECK_CONTAINS(warnings, "mount point");
		CHECK_INT_EQ(st.skipped, 3);
		umount2(p, MNT_DETACH);
		snprintf(p, sizeof p, "%s/mnt", t);
		umount2(p, MNT_DETACH);
	}
	close(fd);
	close(s);
	rm_rf(t);
	free(t);
}

/* ---- hostile archives ---- */

TEST(refuses_dotdot_and_absolute_names)
{
	tb b = {0};
	tb_entry(&b, "../evil", '0', NULL, "x", 1, 0644);
	expect_refused(&b, NULL, SILO_ERR_INVALID_CONFIG, "path traversal refused");
	tb_entry(&b, "ok/../../evil", '0', NULL, "x", 1, 0644);
	expect_refused(&b, NULL, SILO_ERR_INVALID_CONFIG, "path traversal refused");
	tb_entry(&b, "/tmp/evil", '0', NULL, "x", 1, 0644);
	expect_refused(&b, NULL, SILO_ERR_INVALID_CONFIG, "absolute path");
}

TEST(never_writes_through_a_symlink)
{
	tb b = {0};
	/* the archive makes a symlink to outside, then uses it as a directory */
	tb_entry(&b, "link", '2', "../outside", NULL, 0, 0777);
	tb_entry(&b, "link/pwned", '0', NULL, "x", 1, 0644);
	expect_refused(&b, NULL, SILO_ERR_INVALID_CONFIG, "is a symlink or not a directory");
	/* a symlink that was in the destination before (dest/escape -> outside) */
	tb_entry(&b, "escape/pwned", '0', NULL, "x", 1, 0644);
	expect_refused(&b, NULL, SILO_ERR_INVALID_CONFIG, "is a symlink or not a directory");
	/* a file entry over that symlink replaces the link, never writes its target */
	char *t = tmpdir();
	char dest[256], outside[256], p[300];
	snprintf(dest, sizeof dest, "%s/dest", t);
	snprintf(outside, sizeof outside, "%s/outside", t);
	REQUIRE(mkdir(dest, 0755) == 0 && mkdir(outside, 0755) == 0);
	snprintf(p, sizeof p, "%s/victim", outside);
	put_file(p, "original", 8, 0644);
	char lnk[300];
	snprintf(lnk, sizeof lnk, "%s/escape", dest);
	REQUIRE(symlink(p, lnk) == 0);
	tb_entry(&b, "escape", '0', NULL, "overwritten", 11, 0644);
	int fd = tb_fd(&b);
	silo_error err = {0};
	CHECK_INT_EQ(extract_fd(fd, dest, NULL, NULL, &err), 0);
	close(fd);
	char *got = NULL;
	size_t gl;
	REQUIRE(read_file(p, 100, &got, &gl, &err) == 0);
	CHECK_STR_EQ(got, "original");
	free(got);
	struct stat st;
	CHECK(lstat(lnk, &st) == 0 && S_ISREG(st.st_mode));
	rm_rf(t);
	free(t);
}

TEST(hard_links_only_to_files_of_the_archive)
{
	tb b = {0};
	tb_entry(&b, "h", '1', "/etc/passwd", NULL, 0, 0644);
	expect_refused(&b, NULL, SILO_ERR_INVALID_CONFIG, "absolute path");
	tb_entry(&b, "h", '1', "../outside/x", NULL, 0, 0644);
	expect_refused(&b, NULL, SILO_ERR_INVALID_CONFIG, "path traversal refused");
	tb_entry(&b, "h", '1', "escape", NULL, 0, 0644);   /* exists in dest, not from the archive */
	expect_refused(&b, NULL, SILO_ERR_INVALID_CONFIG, "not a file extracted earlier");
	/* a real one works */
	char *t = tmpdir();
	tb_entry(&b, "f", '0', NULL, "data", 4, 0644);
	tb_entry(&b, "h", '1', "f", NULL, 0, 0644);
	int fd = tb_fd(&b);
	silo_error err = {0};
	archive_stats st = {0};
	CHECK_INT_EQ(extract_fd(fd, t, NULL, &st, &err), 0);
	CHECK_INT_EQ(st.hardlinks, 1);
	close(fd);
	rm_rf(t);
	free(t);
}

TEST(refuses_devices_fifos_and_a_second_root)
{
	tb b = {0};
	tb_entry(&b, "null", '3', NULL, NULL, 0, 0666);
	expect_refused(&b, NULL, SILO_ERR_INVALID_CONFIG, "device entries are not extracted");
	tb_entry(&b, "disk", '4', NULL, NULL, 0, 0666);
	expect_refused(&b, NULL, SILO_ERR_INVALID_CONFIG, "device entries are not extracted");
	tb_entry(&b, "fifo", '6', NULL, NULL, 0, 0666);
	expect_refused(&b, NULL, SILO_ERR_INVALID_CONFIG, "FIFO entries are not extracted");
	archive_xopts one = {.single_root = true};
	tb_entry(&b, "top/", '5', NULL, NULL, 0, 0755);
	tb_entry(&b, "top/a", '0', NULL, "a", 1, 0644);
	tb_entry(&b, "other", '0', NULL, "b", 1, 0644);
	expect_refused(&b, &one, SILO_ERR_INVALID_CONFIG, "outside the archive's top entry");
}

TEST(strips_setuid_and_bounds_entries_and_bytes)
{
	char *t = tmpdir();
	tb b = {0};
	tb_entry(&b, "suid", '0', NULL, "#!/bin/sh\n", 10, 06755);
	int fd = tb_fd(&b);
	silo_error err = {0};
	CHECK_INT_EQ(extract_fd(fd, t, NULL, NULL, &err), 0);
	close(fd);
	char p[300];
	snprintf(p, sizeof p, "%s/suid", t);
	struct stat st;
	REQUIRE(stat(p, &st) == 0);
	CHECK_INT_EQ(st.st_mode & 07777, 0755);
	rm_rf(t);
	free(t);
	archive_xopts few = {.max_entries = 3};
	for (int i = 0; i < 5; i++) {
		char n[16];
		snprintf(n, sizeof n, "f%d", i);
		tb_entry(&b, n, '0', NULL, "x", 1, 0644);
	}
	expect_refused(&b, &few, SILO_ERR_RESOURCE_EXCEEDED, "more than 3 entries");
	archive_xopts small = {.max_bytes = 1000};
	static char blob[4000];
	tb_entry(&b, "blob", '0', NULL, blob, sizeof blob, 0644);
	expect_refused(&b, &small, SILO_ERR_RESOURCE_EXCEEDED, "more than 1000 bytes");
}

TEST(truncated_and_garbage_archives_fail_cleanly)
{
	tb b = {0};
	tb_entry(&b, "f", '0', NULL, "data", 4, 0644);
	b.len -= 512;   /* cut the data block */
	b.p = xrealloc(b.p, b.len + 1024);
	int fd = memfd_create("t", MFD_CLOEXEC);
	REQUIRE(write_all(fd, b.p, b.len) == 0 && lseek(fd, 0, SEEK_SET) == 0);
	free(b.p);
	char *t = tmpdir();
	silo_error err = {0};
	CHECK_INT_EQ(extract_fd(fd, t, NULL, NULL, &err), -1);
	CHECK_CONTAINS(err.message, "truncated");
	close(fd);
	fd = memfd_create("g", MFD_CLOEXEC);
	REQUIRE(write_all(fd, "this is not a tar archive at all, padded to a block.......", 58) == 0);
	static const char zeros[512];
	REQUIRE(write_all(fd, zeros, 512 - 58) == 0 && lseek(fd, 0, SEEK_SET) == 0);
	CHECK_INT_EQ(extract_fd(fd, t, NULL, NULL, &err), -1);
	CHECK_CONTAINS(err.message, "checksum");
	close(fd);
	rm_rf(t);
	free(t);
}

TEST_MAIN(roundtrip_byte_exact_with_modes_and_symlinks, gnu_tar_reads_ours_and_we_read_gnu_tar,
	  writer_skips_sockets_fifos_and_mount_points, refuses_dotdot_and_absolute_names, never_writes_through_a_symlink,
	  hard_links_only_to_files_of_the_archive, refuses_devices_fifos_and_a_second_root,
	  strips_setuid_and_bounds_entries_and_bytes, truncated_and_garbage_archives_fail_cleanly)
