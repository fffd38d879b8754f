/* SPDX-License-Identifier: Apache-2.0
 * Image import (lib/oci) with archives crafted byte by byte: every hostile
 * archive the import must refuse (traversal, absolute names, symlinks used as a
 * path prefix, devices, hard links out of the tree or to symlinks, bombs, entry
 * floods, huge or malformed headers, duplicates, whiteouts aimed outside), each
 * checked for the error naming the entry and for nothing written outside the
 * store; then layer semantics (whiteouts, opaque directories, owners, modes,
 * xattrs, hard links, FIFOs) checked in the layer store, through a real overlay
 * mount of the lower layers, and in the ext4 image (debugfs); shared layers
 * stored once, gc, a layer held by a sandbox, kill -9 during an import.
 * Needs root (the import does); each case has its own SILO_CACHE_DIR.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include "common/util.h"
#include "harness.h"
#include "image/image.h"
#include "oci/oci.h"
#include "oci_test.h"

typedef struct env {
	char dir[64];
	char cache[128], outside[128], loader[128], src[160];
} env;

static void env_setup(env *e)
{
	if (geteuid() != 0)
		SKIP("image import needs root");
	snprintf(e->dir, sizeof e->dir, "/tmp/silo-oci-XXXXXX");
	REQUIRE(mkdtemp(e->dir));
	snprintf(e->cache, sizeof e->cache, "%s/cache", e->dir);
	snprintf(e->outside, sizeof e->outside, "%s/outside", e->dir);
	snprintf(e->loader, sizeof e->loader, "%s/loader.cpio.gz", e->dir);
	snprintf(e->src, sizeof e->src, "%s/src", e->dir);
	REQUIRE(mkdir(e->cache, 0755) == 0 && mkdir(e->outside, 0755) == 0);
	REQUIRE(write_bytes(e->loader, "not really a loader", 19) == 0);
	setenv("SILO_CACHE_DIR", e->cache, 1);
	setenv("SILO_KERNEL", "/nonexistent", 1);   /* entries without a kernel: fine for these tests */
}

static void env_done(env *e)
{
	rm_rf(e->dir);
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static int do_import(env *e, const char *name, const oci_import_opts *extra, silo_error *err)
{
	oci_import_opts o = extra ? *extra : (oci_import_opts){0};
	o.source = e->src;
	o.name = name;
	o.loader = e->loader;
	oci_import_result r;
	memset(err, 0, sizeof *err);
	int rc = oci_import(&o, &r, err);
	if (rc < 0)
		printf("# import: %s\n", err->message);
	return rc;
}

/* Import t as a rootfs tarball (gzip'd when gz). */
static int import_tar(env *e, tw *t, bool gz, const oci_import_opts *extra, silo_error *err)
{
	size_t n = t->n;
	unsigned char *b = gz ? gzip_bytes(t->b, t->n, &n) : t->b;
	REQUIRE(write_bytes(e->src, b, n) == 0);
	if (gz)
		free(b);
	return do_import(e, "t", extra, err);
}

/* After a refused import: no layer, no staging, no image, nothing outside, and
 * nothing but the known files in the test directory. */
static void check_clean(env *e)
{
	char p[256];
	snprintf(p, sizeof p, "%s/oci/layers/sha256", e->cache);
	CHECK_INT_EQ(count_entries(p), 0);
	snprintf(p, sizeof p, "%s/oci/tmp", e->cache);
	CHECK_INT_EQ(count_entries(p), 0);
	CHECK_INT_EQ(count_entries(e->outside), 0);
	CHECK_INT_EQ(count_entries(e->dir), 4);   /* cache, outside, loader, src */
	image_entry ie;
	silo_error err;
	CHECK(image_lookup("t", &ie, &err) < 0);
	snprintf(p, sizeof p, "%s/images/t", e->cache);
	CHECK(!path_exists(p));
}

/* A one-entry-after-setup hostile archive must fail with code, naming needle. */
static void refuse(env *e, tw *t, bool gz, const oci_import_opts *extra, silo_code code, const char *needle)
{
	silo_error err;
	CHECK_INT_EQ(import_tar(e, t, gz, extra, &err), -1);
	CHECK_INT_EQ(err.code, code);
	CHECK_CONTAINS(err.message, needle);
	check_clean(e);
}

TEST(traversal_dotdot)
{
	env e;
	env_setup(&e);
	tw t = {0};
	tw_dir(&t, "a/", 0755);
	tw_file(&t, "a/../../outside/x", "pwned");
	tw_end(&t);
	refuse(&e, &t, false, NULL, SILO_ERR_INVALID_CONFIG, "entry \"a/../../outside/x\": name has a \"..\" component");
	free(t.b);
	env_done(&e);
}

TEST(absolute_name)
{
	env e;
	env_setup(&e);
	char abs[256];
	snprintf(abs, sizeof abs, "%s/abs", e.outside);
	tw t = {0};
	char kv[300];
	snprintf(kv, sizeof kv, "path=%s", abs);
	tw_pax(&t, (const char *[]){kv}, 1);
	tw_file(&t, "ignored", "pwned");
	tw_end(&t);
	refuse(&e, &t, false, NULL, SILO_ERR_INVALID_CONFIG, "is an absolute path");
	CHECK(!path_exists(abs));
	free(t.b);
	env_done(&e);
}

TEST(symlink_prefix_absolute)
{
	env e;
	env_setup(&e);
	tw t = {0};
	tw_sym(&t, "evil", e.outside);
	tw_file(&t, "evil/pwned", "x");
	tw_end(&t);
	refuse(&e, &t, false, NULL, SILO_ERR_INVALID_CONFIG,
	       "entry \"evil/pwned\": \"evil\" is a symlink in this layer; refusing to write through it");
	free(t.b);
	env_done(&e);
}

TEST(symlink_prefix_relative)
{
	env e;
	env_setup(&e);
	tw t = {0};
	tw_dir(&t, "d/", 0755);
	tw_sym(&t, "d/up", "../../../../../../../../../../..");
	tw_file(&t, "d/up/tmp/pwned", "x");
	tw_end(&t);
	refuse(&e, &t, true, NULL, SILO_ERR_INVALID_CONFIG, "\"d/up\" is a symlink");
	CHECK(!path_exists("/tmp/pwned"));
	/* a symlink inside the tree is not a path prefix either */
	tw u = {0};
	tw_dir(&u, "real/", 0755);
	tw_sym(&u, "alias", "real");
	tw_dir(&u, "alias/sub/", 0755);
	tw_end(&u);
	refuse(&e, &u, false, NULL, SILO_ERR_INVALID_CONFIG, "\"alias\" is a symlink");
	free(t.b);
	free(u.b);
	env_done(&e);
}

TEST(device_nodes)
{
	env e;
	env_setup(&e);
	tw t = {0};
	tw_dir(&t, "dev/", 0755);
	tw_hdr(&t, "dev/sda", '4', 0, 0660, 0, 6, NULL, 8, 0);
	tw_file(&t, "etc-file", "ok");
	tw_end(&t);
	refuse(&e, &t, false, NULL, SILO_ERR_INVALID_CONFIG,
	       "entry \"dev/sda\": block device 8:0: device nodes are refused (--skip-devices drops them)");
	/* --skip-devices: imported, the node dropped and counted */
	oci_import_opts o = {.skip_devices = true};
	silo_error err;
	REQUIRE(import_tar(&e, &t, false, &o, &err) == 0);
	char **dirs;
	size_t n;
	REQUIRE(oci_image_lowerdirs("t", &dirs, &n, &err) == 0 && n == 1);
	char p[4200];
	snprintf(p, sizeof p, "%s/dev/sda", dirs[0]);
	CHECK(!path_exists(p));
	snprintf(p, sizeof p, "%s/etc-file", dirs[0]);
	CHECK(path_exists(p));
	json_t *info;
	REQUIRE(oci_image_info("t", &info, &err) == 0 && info);
	CHECK_INT_EQ(json_integer_value(json_object_get(json_object_get(info, "dropped"), "devices")), 1);
	CHECK_CONTAINS(json_string_value(json_object_get(json_object_get(info, "dropped"), "names")), "dev/sda");
	json_decref(info);
	strv_free(dirs);
	free(t.b);
	env_done(&e);
}

TEST(hardlinks_out_of_tree)
{
	env e;
	env_setup(&e);
	struct {
		const char *target, *needle;
	} cases[] = {
		{"../../../../etc/passwd", "hard link target has a \"..\" component"},
		{"/etc/passwd", "hard link target is an absolute path"},
		{"nosuch", "hard link target \"nosuch\" is not an earlier entry of this layer"},
		{"lnk", "hard link to the symlink \"lnk\" (refused)"},
		{"dir", "hard link target \"dir\" is not a regular file"},
		{"sub/x", "\"sub\" is a symlink"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		tw t = {0};
		tw_sym(&t, "lnk", "/etc/passwd");
		tw_dir(&t, "dir/", 0755);
		tw_sym(&t, "sub", "/etc");
		tw_link(&t, "h", cases[i].target);
		tw_end(&t);
		refuse(&e, &t, false, NULL, SILO_ERR_INVALID_CONFIG, cases[i].needle);
		free(t.b);
	}
	env_done(&e);
}

TEST(decompression_bomb)
{
	env e;
	env_setup(&e);
	/* 64 MiB of zeros, about 64 KiB gzip'd; the limit is 8 MiB */
	tw t = {0};
	size_t big = 64u << 20;
	tw_hdr(&t, "zeros", '0', big, 0644, 0, 0, NULL, 0, 0);
	unsigned char *z = calloc(1, big);
	tw_put(&t, z, big);
	free(z);
	tw_end(&t);
	size_t gl;
	unsigned char *g = gzip_bytes(t.b, t.n, &gl);
	CHECK(gl < (1u << 20));
	free(t.b);
	REQUIRE(write_bytes(e.src, g, gl) == 0);
	free(g);
	oci_import_opts o = {.max_bytes = 8u << 20};
	silo_error err;
	CHECK_INT_EQ(do_import(&e, "t", &o, &err), -1);
	CHECK_INT_EQ(err.code, SILO_ERR_RESOURCE_EXCEEDED);
	CHECK_CONTAINS(err.message, "expands past the import size limit of 8388608 bytes");
	check_clean(&e);
	env_done(&e);
}

TEST(entry_flood)
{
	env e;
	env_setup(&e);
	tw t = {0};
	for (int i = 0; i < 100; i++) {
		char n[32];
		snprintf(n, sizeof n, "f%03d", i);
		tw_file(&t, n, "");
	}
	tw_end(&t);
	oci_import_opts o = {.max_entries = 50};
	refuse(&e, &t, false, &o, SILO_ERR_RESOURCE_EXCEEDED, "entry \"f050\": more than 50 entries in the import");
	free(t.b);
	env_done(&e);
}

TEST(malformed_headers)
{
	env e;
	env_setup(&e);
	/* a pax header of 2 MiB */
	tw a = {0};
	tw_hdr(&a, "PaxHeader", 'x', 2u << 20, 0644, 0, 0, NULL, 0, 0);
	unsigned char *pad = calloc(1, 2u << 20);
	tw_put(&a, pad, 2u << 20);
	free(pad);
	tw_end(&a);
	refuse(&e, &a, true, NULL, SILO_ERR_INVALID_CONFIG, "pax header of 2097152 bytes (limit 1048576)");
	/* a GNU long name of 8 KiB */
	tw b = {0};
	tw_hdr(&b, "././@LongLink", 'L', 8192, 0644, 0, 0, NULL, 0, 0);
	unsigned char *nm = malloc(8192);
	memset(nm, 'a', 8192);
	tw_put(&b, nm, 8192);
	free(nm);
	tw_file(&b, "x", "y");
	tw_end(&b);
	refuse(&e, &b, false, NULL, SILO_ERR_INVALID_CONFIG, "GNU long name of 8192 bytes (limit 4097)");
	/* a pax record whose length runs past the header */
	tw c = {0};
	tw_hdr(&c, "PaxHeader", 'x', 16, 0644, 0, 0, NULL, 0, 0);
	tw_put(&c, "999 path=aaaa\n\n\n", 16);
	tw_pad(&c);
	tw_file(&c, "x", "y");
	tw_end(&c);
	refuse(&e, &c, false, NULL, SILO_ERR_INVALID_CONFIG, "pax header: malformed record length");
	/* a bad checksum */
	tw d = {0};
	tw_file(&d, "x", "y");
	d.b[0] ^= 1;
	tw_end(&d);
	refuse(&e, &d, false, NULL, SILO_ERR_INVALID_CONFIG, "bad header checksum");
	/* sparse files and unknown types */
	tw s = {0};
	tw_hdr(&s, "sparse", 'S', 0, 0644, 0, 0, NULL, 0, 0);
	tw_end(&s);
	refuse(&e, &s, false, NULL, SILO_ERR_INVALID_CONFIG, "unsupported entry type 'S'");
	/* a size in base-256 that is negative */
	tw f = {0};
	tw_file(&f, "x", "");
	memset(f.b + 124, 0xff, 12);
	unsigned sum = 0;
	memset(f.b + 148, ' ', 8);
	for (int i = 0; i < 512; i++)
		sum += f.b[i];
	snprintf((char *)f.b + 148, 8, "%06o", sum);
	tw_end(&f);
	refuse(&e, &f, false, NULL, SILO_ERR_INVALID_CONFIG, "size: not a valid number");
	/* truncated in the middle of file data */
	tw g = {0};
	tw_hdr(&g, "x", '0', 100000, 0644, 0, 0, NULL, 0, 0);
	tw_put(&g, "abc", 3);
	refuse(&e, &g, false, NULL, SILO_ERR_INVALID_CONFIG, "truncated");
	free(a.b), free(b.b), free(c.b), free(d.b), free(s.b), free(f.b), free(g.b);
	env_done(&e);
}

TEST(duplicates_and_whiteouts)
{
	env e;
	env_setup(&e);
	tw a = {0};
	tw_file(&a, "etc/passwd", "root");
	tw_file(&a, "etc/passwd", "evil");
	tw_end(&a);
	refuse(&e, &a, false, NULL, SILO_ERR_INVALID_CONFIG, "\"etc/passwd\" already exists in this layer");
	tw b = {0};
	tw_dir(&b, "d/", 0755);
	tw_dir(&b, "d/", 0700);
	tw_end(&b);
	refuse(&e, &b, false, NULL, SILO_ERR_INVALID_CONFIG, "entry \"d/\": \"d\" already exists");
	tw c = {0};
	tw_file(&c, "x", "1");
	tw_file(&c, ".wh.x", "");
	tw_end(&c);
	refuse(&e, &c, false, NULL, SILO_ERR_INVALID_CONFIG, "entry \".wh.x\": \"x\" already exists");
	const char *bad_wh[] = {"../.wh.etc", "a/.wh..", "a/.wh...", ".wh.", "a/.wh.b/c", ".wh..wh..opq",
				"a/.wh..wh.other"};
	const char *needles[] = {"\"..\" component", "not a valid whiteout name", "not a valid whiteout name",
				 "not a valid whiteout name", "reserved for whiteouts", "opaque marker on the image root",
				 "not a valid whiteout name"};
	for (size_t i = 0; i < ARRAY_SIZE(bad_wh); i++) {
		tw w = {0};
		tw_file(&w, bad_wh[i], "");
		tw_end(&w);
		refuse(&e, &w, false, NULL, SILO_ERR_INVALID_CONFIG, needles[i]);
		free(w.b);
	}
	free(a.b), free(b.b), free(c.b);
	env_done(&e);
}

/* ---- layer semantics ---- */
static const unsigned char cap_v2[20] = {0, 0, 0, 2, 0x00, 0x20, 0, 0};   /* cap_net_raw, revision 2 */

static void build_layers(tw *l1, tw *l2, tw *l3)
{
	tw_dir(l1, "./", 0755);
	tw_dir(l1, "etc/", 0755);
	tw_file(l1, "etc/keep", "old\n");
	tw_file(l1, "etc/gone", "bye\n");
	tw_dir(l1, "opq/", 0755);
	tw_file(l1, "opq/old", "hidden\n");
	tw_dir(l1, "bin/", 0755);
	const char *k[] = {"SCHILY.xattr.user.test", "SCHILY.xattr.security.capability", "SCHILY.xattr.trusted.overlay.redirect",
			   "SCHILY.xattr.security.selinux", "SCHILY.xattr.user.overlay.opaque"};
	const void *v[] = {"hello", cap_v2, "/etc", "system_u:object_r:bin_t", "y"};
	size_t vl[] = {5, sizeof cap_v2, 4, 23, 1};
	tw_pax_bin(l1, k, v, vl, 5);
	tw_file_mode(l1, "bin/tool", "#!/bin/sh\n", 10, 04755, 0, 0);
	tw_file_mode(l1, "home-file", "secret", 6, 0640, 1000, 1001);
	tw_dir(l1, "data/", 0750);
	tw_file(l1, "data/hard1", "linked\n");
	tw_link(l1, "data/hard2", "data/hard1");
	tw_hdr(l1, "fifo", '6', 0, 0600, 0, 0, NULL, 0, 0);
	tw_sym(l1, "lnk", "/etc/keep");
	tw_end(l1);
	/* l2: delete etc/gone, replace etc/keep, opaque opq/ with one new file */
	tw_file(l2, "etc/.wh.gone", "");
	tw_file(l2, "etc/keep", "new\n");
	tw_dir(l2, "opq/", 0700);
	tw_file(l2, "opq/.wh..wh..opq", "");
	tw_file(l2, "opq/new", "fresh\n");
	tw_end(l2);
	/* l3: delete one name of the hard link pair; a directory replaces a file */
	tw_file(l3, "data/.wh.hard1", "");
	tw_dir(l3, "home-file/", 0755);
	tw_end(l3);
}

static char *slurp(const char *path)
{
	char *t = NULL;
	size_t n;
	return read_file(path, 1 << 20, &t, &n, NULL) == 0 ? t : NULL;
}

static bool file_is(const char *dir, const char *rel, const char *want)
{
	char p[4300];
	snprintf(p, sizeof p, "%s/%s", dir, rel);
	char *t = slurp(p);
	bool ok = t && !strcmp(t, want);
	if (!ok)
		printf("# %s: \"%s\", expected \"%s\"\n", p, t ? t : "(missing)", want);
	free(t);
	return ok;
}

/* Run debugfs -R cmd on img, output into buf. */
static void debugfs(const char *img, const char *cmd, char *buf, size_t len)
{
	char line[4400];
	snprintf(line, sizeof line, "debugfs -R '%s' '%s' 2>/dev/null", cmd, img);
	FILE *f = popen(line, "r");
	size_t n = f ? fread(buf, 1, len - 1, f) : 0;
	buf[n] = '\0';
	if (f)
		pclose(f);
}

TEST(layers_whiteouts_opaque_attrs)
{
	env e;
	env_setup(&e);
	tw l1 = {0}, l2 = {0}, l3 = {0};
	build_layers(&l1, &l2, &l3);
	tw *ls[] = {&l1, &l2, &l3};
	REQUIRE(oci_layout(e.src, ls, 3, true,
			   "\"Env\":[\"PATH=/bin\",\"FOO=bar baz\"],\"WorkingDir\":\"/data\",\"User\":\"1000:1001\","
			   "\"Entrypoint\":[\"/bin/tool\"],\"Cmd\":[\"--flag\",\"x y\"]",
			   "v1") == 0);
	silo_error err;
	REQUIRE(do_import(&e, "img", NULL, &err) == 0);
	char **dirs;
	size_t n;
	REQUIRE(oci_image_lowerdirs("img", &dirs, &n, &err) == 0);
	REQUIRE(n == 3);   /* topmost first */
	/* the layer store: overlay form */
	char p[4300];
	struct stat sb;
	snprintf(p, sizeof p, "%s/etc/gone", dirs[1]);
	CHECK(lstat(p, &sb) == 0 && S_ISCHR(sb.st_mode) && sb.st_rdev == makedev(0, 0));
	snprintf(p, sizeof p, "%s/opq", dirs[1]);
	char v[8] = "";
	CHECK(getxattr(p, "trusted.overlay.opaque", v, sizeof v) == 1 && v[0] == 'y');
	snprintf(p, sizeof p, "%s/bin/tool", dirs[2]);
	CHECK(lstat(p, &sb) == 0 && (sb.st_mode & 07777) == 04755);
	unsigned char cap[32];
	CHECK(getxattr(p, "security.capability", cap, sizeof cap) == (ssize_t)sizeof cap_v2);
	CHECK(getxattr(p, "user.test", v, sizeof v) == 5 && !memcmp(v, "hello", 5));
	CHECK(getxattr(p, "trusted.overlay.redirect", v, sizeof v) < 0);
	CHECK(getxattr(p, "user.overlay.opaque", v, sizeof v) < 0);
	CHECK(getxattr(p, "security.selinux", v, sizeof v) < 0);
	snprintf(p, sizeof p, "%s/home-file", dirs[2]);
	CHECK(lstat(p, &sb) == 0 && sb.st_uid == 1000 && sb.st_gid == 1001 && (sb.st_mode & 0777) == 0640);
	snprintf(p, sizeof p, "%s/data/hard1", dirs[2]);
	struct stat h2;
	char p2[4300];
	snprintf(p2, sizeof p2, "%s/data/hard2", dirs[2]);
	CHECK(lstat(p, &sb) == 0 && lstat(p2, &h2) == 0 && sb.st_ino == h2.st_ino && sb.st_nlink == 2);
	snprintf(p, sizeof p, "%s/fifo", dirs[2]);
	CHECK(lstat(p, &sb) == 0 && S_ISFIFO(sb.st_mode));
	snprintf(p, sizeof p, "%s/lnk", dirs[2]);
	char lt[64] = "";
	CHECK(readlink(p, lt, sizeof lt - 1) > 0 && !strcmp(lt, "/etc/keep"));
	/* defaults and what was dropped */
	json_t *info;
	REQUIRE(oci_image_info("img", &info, &err) == 0 && info);
	json_t *d = json_object_get(info, "defaults");
	CHECK_STR_EQ(json_string_value(json_object_get(d, "working_dir")), "/data");
	CHECK_STR_EQ(json_string_value(json_object_get(d, "user")), "1000:1001");
	CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(d, "env"), 1)), "FOO=bar baz");
	CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(d, "entrypoint"), 0)), "/bin/tool");
	CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(d, "cmd"), 1)), "x y");
	CHECK_STR_EQ(json_string_value(json_object_get(info, "ref")), "v1");
	const char *dropped = json_string_value(json_object_get(json_object_get(info, "dropped"), "names"));
	CHECK_CONTAINS(dropped, "trusted.overlay.redirect");
	CHECK_CONTAINS(dropped, "security.selinux");
	CHECK_CONTAINS(dropped, "user.overlay.opaque");
	CHECK_INT_EQ(json_integer_value(json_object_get(json_object_get(info, "dropped"), "xattrs")), 3);
	const char *img = json_string_value(json_object_get(json_object_get(info, "rootfs"), "path"));
	REQUIRE(img);
	/* the same view through a real read-only overlay of the lower layers (what the
	 * namespace provider mounts) */
	pid_t pid = fork();
	if (pid == 0) {
		char mnt[128], opts[4096 * 3 + 16];
		snprintf(mnt, sizeof mnt, "%s/mnt", e.dir);
		mkdir(mnt, 0755);
		if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
			_exit(77);
		snprintf(opts, sizeof opts, "lowerdir=%s:%s:%s", dirs[0], dirs[1], dirs[2]);
		if (mount("overlay", mnt, "overlay", MS_RDONLY, opts) < 0) {
			printf("# overlay mount: %s\n", strerror(errno));
			_exit(1);
		}
		bool ok = file_is(mnt, "etc/keep", "new\n") && file_is(mnt, "opq/new", "fresh\n") &&
			  file_is(mnt, "data/hard2", "linked\n");
		char q[256];
		snprintf(q, sizeof q, "%s/etc/gone", mnt);
		ok = ok && !path_exists(q);
		snprintf(q, sizeof q, "%s/opq/old", mnt);
		ok = ok && !path_exists(q);
		snprintf(q, sizeof q, "%s/data/hard1", mnt);
		ok = ok && !path_exists(q);
		struct stat s2;
		snprintf(q, sizeof q, "%s/home-file", mnt);
		ok = ok && lstat(q, &s2) == 0 && S_ISDIR(s2.st_mode);
		fflush(stdout);
		_exit(ok ? 0 : 1);
	}
	int st;
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* and in the ext4 image the VM boots */
	char out[8192];
	debugfs(img, "cat /etc/keep", out, sizeof out);
	CHECK_STR_EQ(out, "new\n");
	debugfs(img, "ls -l /opq", out, sizeof out);
	CHECK_CONTAINS(out, "new");
	CHECK(!strstr(out, "old"));
	debugfs(img, "ls -l /etc", out, sizeof out);
	CHECK(!strstr(out, "gone"));
	debugfs(img, "stat /bin/tool", out, sizeof out);
	CHECK_CONTAINS(out, "Mode:  04755");
	debugfs(img, "ea_list /bin/tool", out, sizeof out);
	CHECK_CONTAINS(out, "user.test");
	CHECK_CONTAINS(out, "security.capability");
	CHECK(!strstr(out, "trusted"));
	debugfs(img, "stat /data/hard2", out, sizeof out);
	CHECK_CONTAINS(out, "Links: 1");
	debugfs(img, "ls -l /data", out, sizeof out);
	CHECK(!strstr(out, "hard1"));
	debugfs(img, "stat /opq", out, sizeof out);
	CHECK_CONTAINS(out, "Mode:  0700");   /* the directory's attributes come from the upper layer */
	debugfs(img, "stat /home-file", out, sizeof out);
	CHECK_CONTAINS(out, "Type: directory");
	debugfs(img, "stat /fifo", out, sizeof out);
	CHECK_CONTAINS(out, "Type: FIFO");
	json_decref(info);
	strv_free(dirs);
	free(l1.b), free(l2.b), free(l3.b);
	env_done(&e);
}

TEST(shared_layer_stored_once_and_gc)
{
	env e;
	env_setup(&e);
	tw base = {0}, top = {0};
	tw_file(&base, "etc/os-release", "ID=test\n");
	tw_end(&base);
	tw_file(&top, "app", "hello\n");
	tw_end(&top);
	tw *one[] = {&base}, *two[] = {&base, &top};
	char srcb[200];
	snprintf(srcb, sizeof srcb, "%s/src2", e.dir);
	REQUIRE(oci_layout(e.src, one, 1, true, "", "a") == 0);
	REQUIRE(oci_layout(srcb, two, 2, false, "", "b") == 0);   /* same layer, other compression */
	silo_error err;
	oci_import_opts o = {0};
	oci_import_result r;
	o.loader = e.loader;
	o.source = e.src;
	o.name = "a";
	REQUIRE(oci_import(&o, &r, &err) == 0);
	CHECK_INT_EQ(r.new_layers, 1);
	o.source = srcb;
	o.name = "b";
	REQUIRE(oci_import(&o, &r, &err) == 0);
	CHECK_INT_EQ(r.n_layers, 2);
	CHECK_INT_EQ(r.new_layers, 1);
	char ld[256];
	snprintf(ld, sizeof ld, "%s/oci/layers/sha256", e.cache);
	CHECK_INT_EQ(count_entries(ld), 2);
	oci_image_usage *u;
	size_t n;
	oci_store_usage tot;
	REQUIRE(oci_usage(&u, &n, &tot, &err) == 0 && n == 2);
	CHECK(u[0].shared > 0 && u[0].shared == u[1].shared);
	CHECK_INT_EQ(tot.n_layers, 2);
	free(u);
	/* import again under the same name: CONFLICT, then --force replaces */
	CHECK_INT_EQ(oci_import(&o, &r, &err), -1);
	CHECK_INT_EQ(err.code, SILO_ERR_CONFLICT);
	o.force = true;
	REQUIRE(oci_import(&o, &r, &err) == 0);
	CHECK_INT_EQ(r.new_layers, 0);
	char nd[256];
	snprintf(nd, sizeof nd, "%s/images/b", e.cache);
	CHECK_INT_EQ(count_entries(nd), 1);   /* the replaced directory is gone */
	/* rm a: its layer stays (b uses it); gc keeps both */
	REQUIRE(image_remove("a", &err) == 0);
	oci_gc_result g;
	REQUIRE(oci_gc(&g, &err) == 0);
	CHECK_INT_EQ(g.layers_removed, 0);
	CHECK_INT_EQ(g.layers_kept, 2);
	/* a sandbox holds b's layers: after rm b, gc must skip them */
	char **dirs;
	size_t nd2;
	REQUIRE(oci_image_lowerdirs("b", &dirs, &nd2, &err) == 0 && nd2 == 2);
	int *fds;
	REQUIRE(oci_layers_hold(dirs, nd2, &fds, &err) == 0);
	REQUIRE(image_remove("b", &err) == 0);
	REQUIRE(oci_gc(&g, &err) == 0);
	CHECK_INT_EQ(g.layers_busy, 2);
	CHECK_INT_EQ(count_entries(ld), 2);
	for (size_t i = 0; i < nd2; i++)
		close(fds[i]);
	free(fds);
	strv_free(dirs);
	REQUIRE(oci_gc(&g, &err) == 0);
	CHECK_INT_EQ(g.layers_removed, 2);
	CHECK(g.bytes_freed > 0);
	CHECK_INT_EQ(count_entries(ld), 0);
	free(base.b), free(top.b);
	env_done(&e);
}

TEST(bad_digests_and_manifests)
{
	env e;
	env_setup(&e);
	tw l = {0};
	tw_file(&l, "x", "y");
	tw_end(&l);
	tw *ls[] = {&l};
	REQUIRE(oci_layout(e.src, ls, 1, true, "", "latest") == 0);
	/* flip a byte of the layer blob: its digest no longer matches */
	char cmd[512];
	snprintf(cmd, sizeof cmd,
		 "for f in %s/blobs/sha256/*; do if gzip -t $f 2>/dev/null; then printf 'Z' | dd of=$f bs=1 seek=20 conv=notrunc status=none; fi; done",
		 e.src);
	REQUIRE(system(cmd) == 0);
	silo_error err;
	CHECK_INT_EQ(do_import(&e, "t", NULL, &err), -1);
	CHECK(err.code == SILO_ERR_CHECKSUM_MISMATCH || err.code == SILO_ERR_INVALID_CONFIG);
	check_clean(&e);
	/* a blob path that is a symlink out of the source: refused, nothing read */
	rm_rf(e.src);
	REQUIRE(oci_layout(e.src, ls, 1, false, "", "latest") == 0);
	snprintf(cmd, sizeof cmd, "cd %s && ln -sf /etc/passwd index.json", e.src);
	REQUIRE(system(cmd) == 0);
	CHECK_INT_EQ(do_import(&e, "t", NULL, &err), -1);
	CHECK_CONTAINS(err.message, "index.json (leads outside the source)");
	check_clean(&e);
	/* a manifest list with two platforms and no --ref */
	rm_rf(e.src);
	REQUIRE(oci_layout(e.src, ls, 1, false, "", "latest") == 0);
	char idx[300], *text = NULL;
	size_t n;
	snprintf(idx, sizeof idx, "%s/index.json", e.src);
	REQUIRE(read_file(idx, 1 << 16, &text, &n, NULL) == 0);
	json_t *j = json_loads(text, 0, NULL);
	free(text);
	json_t *m = json_array_get(json_object_get(j, "manifests"), 0);
	json_array_append(json_object_get(j, "manifests"), m);
	char *dump = json_dumps(j, 0);
	json_decref(j);
	REQUIRE(write_bytes(idx, dump, strlen(dump)) == 0);
	free(dump);
	CHECK_INT_EQ(do_import(&e, "t", NULL, &err), -1);
	CHECK_CONTAINS(err.message, "choose one with --ref");
	oci_import_opts o = {.ref = "nope"};
	CHECK_INT_EQ(do_import(&e, "t", &o, &err), -1);
	CHECK_CONTAINS(err.message, "no image tagged \"nope\"");
	check_clean(&e);
	free(l.b);
	env_done(&e);
}

/* kill -9 an import at two points: while layers are extracted, and right after
 * a layer was renamed into the store; nothing may be visible, gc cleans up. */
TEST(kill9_during_import)
{
	env e;
	env_setup(&e);
	tw l = {0};
	for (int i = 0; i < 800; i++) {
		char nm[64];
		snprintf(nm, sizeof nm, "d%02d/f%05d", i % 50, i);
		tw_file_mode(&l, nm, "0123456789abcdef0123456789abcdef", 32, 0644, 0, 0);
	}
	tw_end(&l);
	tw l2 = {0};
	tw_file(&l2, "late", "z");
	tw_end(&l2);
	tw *ls[] = {&l, &l2};
	REQUIRE(oci_layout(e.src, ls, 2, true, "", "latest") == 0);
	char tmpd[256], layers[256];
	snprintf(tmpd, sizeof tmpd, "%s/oci/tmp", e.cache);
	snprintf(layers, sizeof layers, "%s/oci/layers/sha256", e.cache);
	for (int point = 0; point < 2; point++) {
		pid_t pid = fork();
		if (pid == 0) {
			silo_error err;
			do_import(&e, "t", NULL, &err);
			_exit(0);
		}
		bool hit = false;
		for (int i = 0; i < 20000 && !hit; i++) {
			if (point == 0) {
				char cmd[400];
				snprintf(cmd, sizeof cmd, "%s/oci/tmp", e.cache);
				DIR *d = opendir(cmd);
				struct dirent *de;
				while (d && (de = readdir(d)) && !hit) {
					char q[600];
					snprintf(q, sizeof q, "%s/%s/layer-0/root/d10", cmd, de->d_name);
					hit = path_exists(q);
				}
				if (d)
					closedir(d);
			} else {
				hit = count_entries(layers) >= 1;
			}
			if (!hit)
				usleep(500);
		}
		kill(pid, SIGKILL);
		int st;
		waitpid(pid, &st, 0);
		CHECK(hit);
		image_entry ie;
		silo_error err;
		CHECK(image_lookup("t", &ie, &err) < 0);
		oci_gc_result g;
		REQUIRE(oci_gc(&g, &err) == 0);
		CHECK_INT_EQ(count_entries(tmpd), 0);
		CHECK_INT_EQ(count_entries(layers), 0);
	}
	/* and the import still works afterwards */
	silo_error err;
	CHECK_INT_EQ(do_import(&e, "t", NULL, &err), 0);
	free(l.b), free(l2.b);
	env_done(&e);
}

TEST(rootfs_tarball_formats)
{
	env e;
	env_setup(&e);
	tw t = {0};
	tw_dir(&t, "./", 0755);
	tw_file(&t, "./etc/hostname", "box\n");
	const char *kv[] = {"path=./usr/share/a-very-long-directory-name-that-does-not-fit-in-the-ustar-name-field/and-a-long-file-name.txt"};
	tw_pax(&t, kv, 1);
	tw_file(&t, "short", "long name\n");
	tw_end(&t);
	silo_error err;
	REQUIRE(import_tar(&e, &t, true, NULL, &err) == 0);
	char **dirs;
	size_t n;
	REQUIRE(oci_image_lowerdirs("t", &dirs, &n, &err) == 0 && n == 1);
	CHECK(file_is(dirs[0], "etc/hostname", "box\n"));
	CHECK(file_is(dirs[0],
		      "usr/share/a-very-long-directory-name-that-does-not-fit-in-the-ustar-name-field/and-a-long-file-name.txt",
		      "long name\n"));
	json_t *info;
	REQUIRE(oci_image_info("t", &info, &err) == 0 && info);
	CHECK_STR_EQ(json_string_value(json_object_get(info, "format")), "rootfs");
	json_decref(info);
	strv_free(dirs);
	/* the same bytes again (uncompressed this time): the layer is stored already */
	oci_import_opts o = {.force = true};
	oci_import_result r;
	REQUIRE(write_bytes(e.src, t.b, t.n) == 0);
	o.source = e.src;
	o.name = "t";
	o.loader = e.loader;
	REQUIRE(oci_import(&o, &r, &err) == 0);
	CHECK_INT_EQ(r.new_layers, 0);
	/* a directory that is neither layout is refused */
	char d[200];
	snprintf(d, sizeof d, "%s/plain", e.dir);
	mkdir(d, 0755);
	o.source = d;
	CHECK_INT_EQ(oci_import(&o, &r, &err), -1);
	CHECK_CONTAINS(err.message, "a directory must be an OCI image layout");
	/* an OCI archive whose index.json is a FIFO: refused at once, not a hang */
	tw f = {0};
	tw_file(&f, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
	tw_hdr(&f, "index.json", '6', 0, 0644, 0, 0, NULL, 0, 0);
	tw_end(&f);
	REQUIRE(write_bytes(e.src, f.b, f.n) == 0);
	o.source = e.src;
	o.name = "fifo";
	CHECK_INT_EQ(oci_import(&o, &r, &err), -1);
	CHECK_CONTAINS(err.message, "source: index.json is not a regular file");
	free(f.b);
	/* bad names */
	o.source = e.src;
	o.name = "Bad/Name";
	CHECK_INT_EQ(oci_import(&o, &r, &err), -1);
	CHECK_CONTAINS(err.message, "--name: \"Bad/Name\" is not a valid image name");
	o.name = "debootstrap";
	CHECK_INT_EQ(oci_import(&o, &r, &err), -1);
	CHECK_CONTAINS(err.message, "is reserved");
	free(t.b);
	env_done(&e);
}

TEST_MAIN(traversal_dotdot, absolute_name, symlink_prefix_absolute, symlink_prefix_relative, device_nodes,
	  hardlinks_out_of_tree, decompression_bomb, entry_flood, malformed_headers, duplicates_and_whiteouts,
	  layers_whiteouts_opaque_attrs, shared_layer_stored_once_and_gc, bad_digests_and_manifests, kill9_during_import,
	  rootfs_tarball_formats)
