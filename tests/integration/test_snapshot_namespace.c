/* SPDX-License-Identifier: Apache-2.0
 * Snapshots of namespace sandboxes with the real agent, kernel, overlayfs and
 * cgroup freezer: state equality after restore (files written, a base file
 * deleted, modes, owners - across host id ranges), fork isolation (a write in one copy is invisible in the
 * others and in the parent), a snapshot of a restored sandbox (flattened
 * layers), keep-paused, a corrupted snapshot refused, /tmp, /run and /dev/shm
 * (tmpfs) kept across restore and fork (a symlink to a host file stays a
 * link; nothing on the host is written through it), a tmpfs over the
 * snapshot limit refused, and no residue.
 * Needs root; skips otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "core/sandbox.h"
#include "harness.h"
#include "sandbox_test.h"
#include "snapshot/snapshot.h"

static char tmpdir[] = "/tmp/silo-snap-ns.XXXXXX";

static void setup(void)
{
	sbt_namespace_setup(tmpdir, true);
}

static void teardown(void)
{
	CHECK_INT_EQ(sbt_run_residue(tmpdir, 0), 0);   /* every run directory is gone */
	rm_rf(tmpdir);
}

static void base_spec(vm_spec *s)
{
	sbt_spec(s, "snap", "namespace", 128);
}

/* stdout+stderr of sh -c script; "" on failure */
static const char *sh(sandbox *sb, const char *script, outbuf *o)
{
	return sbt_sh(sb, script, 0, o);
}

static void take(sandbox *sb, bool keep_paused, char id[SILO_ID_MAX], snap_info *info)
{
	snap_writer *w = NULL;
	silo_error err = {0};
	REQUIRE(snap_begin("snapshot", &w, &err) == 0);
	if (sandbox_snapshot(sb, snap_writer_payload(w), keep_paused, &err) < 0) {
		printf("# snapshot: %s\n", err.message);
		snap_abort(w);
		REQUIRE(0);
	}
	snap_meta meta = {.provider = sb->ops->name, .source = sb->id, .spec = &sb->spec};
	snprintf(id, SILO_ID_MAX, "%s", snap_writer_id(w));
	REQUIRE(snap_commit(w, &meta, NULL, &err) == 0);
	REQUIRE(snap_open(id, true, info, &err) == 0);
}

static sandbox *restore(const snap_info *info)
{
	return sbt_restore(info, 0, NULL);
}

static void destroy(sandbox *sb)
{
	sbt_destroy(sb, 1000);
}

static const char *const WRITE =
	"mkdir -p /root/work && echo v1 > /root/work/state.txt && chmod 640 /root/work/state.txt && "
	"chown 1000:1001 /root/work/state.txt && "
	"rm /etc/os-release && ln -s state.txt /root/work/link && echo ok";
static const char *const READ =
	"cat /root/work/state.txt; stat -c %a:%u:%g /root/work/state.txt; readlink /root/work/link; "
	"test -e /etc/os-release && echo os-release-present || echo os-release-gone; head -1 /etc/hosts";

/* Host uid of the sandbox's root (its user namespace's map). */
static uint32_t host_base(sandbox *sb)
{
	char p[64];
	snprintf(p, sizeof p, "/proc/%d/uid_map", (int)sb->pid);
	cleanup_free char *map = NULL;
	size_t n;
	unsigned long in = 1, out = 0, cnt = 0;
	if (read_file(p, 256, &map, &n, NULL) < 0 || sscanf(map, "%lu %lu %lu", &in, &out, &cnt) != 3 || in != 0)
		return 0;
	return (uint32_t)out;
}

/* Host uid owning PATH inside the sandbox, -1 if it cannot be seen. */
static long long host_owner(sandbox *sb, const char *path)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "/proc/%d/root%s", (int)sb->pid, path);
	struct stat st;
	return stat(p, &st) == 0 ? (long long)st.st_uid : -1;
}

/* uid of a file in the snapshot's payload (what the store keeps). */
static long long snap_payload_owner(const snap_info *info, const char *rel)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/%s", info->payload, rel);
	struct stat st;
	return lstat(p, &st) == 0 ? (long long)st.st_uid : -1;
}

/* Size of a regular file in the snapshot's payload, 0 if there is none. */
static uint64_t payload_size(const snap_info *info, const char *rel)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/%s", info->payload, rel);
	struct stat st;
	return lstat(p, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
}

/* A running namespace sandbox; WRITE applied to it when WRITTEN. */
static sandbox *spawn(bool written)
{
	vm_spec s;
	base_spec(&s);
	sandbox *sb = NULL;
	silo_error err = {0};
	REQUIRE(sandbox_create(&s, NULL, &sb, &err) == 0);
	if (written) {
		outbuf o;
		CHECK_STR_EQ(sh(sb, WRITE, &o), "ok\n");
	}
	return sb;
}

/* Destroy n copies and their source, free the snapshot's info, end the test. */
static void end_forks(sandbox **f, int n, sandbox *src, snap_info *info)
{
	for (int i = 0; i < n; i++)
		destroy(f[i]);
	destroy(src);
	snap_info_free(info);
	teardown();
}

TEST(restore_equals_source)
{
	setup();
	sandbox *a = spawn(true);
	silo_error err = {0};
	outbuf o;
	char before[4096];
	snprintf(before, sizeof before, "%s", sh(a, READ, &o));
	CHECK_STR_EQ(before, "v1\n640:1000:1001\nstate.txt\nos-release-gone\n127.0.0.1\tlocalhost\n");
	char id[SILO_ID_MAX];
	snap_info info;
	take(a, false, id, &info);
	CHECK(sandbox_get_state(a) == SB_RUNNING);   /* resumed */
	CHECK(info.bytes == 3);   /* "v1\n"; the empty /tmp, /run, /dev/shm have no archive */
	sandbox *b = restore(&info);
	CHECK(strcmp(b->id, a->id) != 0);
	CHECK(sandbox_get_state(b) == SB_RUNNING);
	CHECK_STR_EQ(sh(b, READ, &o), before);
	/* ownership survived into another host id range: the snapshot stores the
	 * ids the sandbox saw, the restore maps them into b's own range */
	uint32_t ra = host_base(a), rb = host_base(b);
	CHECK(ra >= 65536 && rb >= 65536 && ra != rb);
	CHECK_INT_EQ(host_owner(b, "/root/work/state.txt"), rb + 1000);
	CHECK_INT_EQ(host_owner(a, "/root/work/state.txt"), ra + 1000);
	CHECK_INT_EQ(snap_payload_owner(&info, "layer/root/work/state.txt"), 1000);
	/* the source goes on working, and its later writes do not reach the copy */
	CHECK_STR_EQ(sh(a, "echo v2 > /root/work/state.txt; cat /root/work/state.txt", &o), "v2\n");
	CHECK_STR_EQ(sh(b, "cat /root/work/state.txt", &o), "v1\n");
	/* the snapshot is in use while b lives */
	CHECK(snap_delete(id, false, &err) < 0 && err.code == SILO_ERR_CONFLICT);
	destroy(b);
	destroy(a);
	CHECK(snap_delete(id, false, &err) == 0);
	snap_info_free(&info);
	teardown();
}

TEST(fork_isolation)
{
	setup();
	sandbox *parent = spawn(true);
	outbuf o;
	char id[SILO_ID_MAX];
	snap_info info;
	take(parent, false, id, &info);
	enum { N = 3 };
	sandbox *f[N];
	for (int i = 0; i < N; i++)
		f[i] = restore(&info);
	for (int i = 0; i < N; i++) {
		char cmd[128];
		snprintf(cmd, sizeof cmd, "echo fork%d > /root/work/state.txt; echo mine%d > /tmp/t; hostname", i, i);
		CHECK_STR_EQ(sh(f[i], cmd, &o), xasprintf("%s\n", f[i]->id));
	}
	for (int i = 0; i < N; i++) {
		char want[64];
		snprintf(want, sizeof want, "fork%d\nmine%d\n", i, i);
		CHECK_STR_EQ(sh(f[i], "cat /root/work/state.txt /tmp/t", &o), want);
		for (int j = 0; j < N; j++)
			CHECK(j == i || strcmp(f[i]->id, f[j]->id) != 0);
	}
	/* the parent did not see any fork's write */
	CHECK_STR_EQ(sh(parent, "cat /root/work/state.txt", &o), "v1\n");
	/* a fork's deletion stays in that fork */
	CHECK_STR_EQ(sh(f[0], "rm /root/work/state.txt; ls /root/work", &o), "link\n");
	CHECK_STR_EQ(sh(f[1], "ls /root/work", &o), "link\nstate.txt\n");
	end_forks(f, N, parent, &info);
}

TEST(snapshot_of_restored_is_flattened)
{
	setup();
	sandbox *a = spawn(true);
	silo_error err = {0};
	outbuf o;
	char id1[SILO_ID_MAX], id2[SILO_ID_MAX];
	snap_info i1, i2;
	take(a, false, id1, &i1);
	destroy(a);
	sandbox *b = restore(&i1);
	/* second generation: change a file of the first layer, delete another,
	 * hide a directory of the base layer and replace it */
	CHECK_STR_EQ(sh(b, "echo v2 > /root/work/state.txt; rm /root/work/link; echo new > /root/work/n; "
			   "rm -rf /home; mkdir /home; echo h > /home/x; echo ok",
			&o),
		     "ok\n");
	take(b, false, id2, &i2);
	destroy(b);
	/* the first snapshot is no longer in use: gc may not touch it (tagged or
	 * not, it is not a fork), delete works */
	CHECK(snap_delete(id1, false, &err) == 0);
	sandbox *c = restore(&i2);
	CHECK_STR_EQ(sh(c, "cat /root/work/state.txt; ls /root/work; ls /home; test -e /etc/os-release || echo gone",
			&o),
		     "v2\nn\nstate.txt\nx\ngone\n");
	destroy(c);
	snap_info_free(&i1);
	snap_info_free(&i2);
	teardown();
}

TEST(keep_paused)
{
	setup();
	sandbox *a = spawn(false);
	silo_error err = {0};
	char id[SILO_ID_MAX];
	snap_info info;
	take(a, true, id, &info);
	CHECK(sandbox_get_state(a) == SB_PAUSED);
	/* paused for longer than three heartbeats: the channel must survive */
	usleep(3500 * 1000);
	CHECK(chan_is_connected(a->ch));
	REQUIRE(sandbox_resume(a, &err) == 0);
	outbuf o;
	CHECK_STR_EQ(sh(a, "echo alive", &o), "alive\n");
	snap_info_free(&info);
	/* destroying a paused (frozen) sandbox thaws it first and leaves nothing */
	REQUIRE(sandbox_pause(a, &err) == 0);
	CHECK(sandbox_get_state(a) == SB_PAUSED);
	pid_t pid = a->pid;
	destroy(a);
	CHECK(pid_dead(pid));
	teardown();
}

TEST(corrupt_snapshot_refused)
{
	setup();
	sandbox *a = spawn(true);
	char id[SILO_ID_MAX];
	snap_info info;
	take(a, false, id, &info);
	destroy(a);
	sbt_expect_tamper_caught(id, &info, "layer/root/work/state.txt", 0);
	snap_info_free(&info);
	teardown();
}

static const char *const TMPFS_WRITE =
	"mkdir /tmp/work && echo work > /tmp/work/f && chmod 604 /tmp/work/f && chown 1000:1001 /tmp/work/f && "
	"echo x > /run/x && echo y > /dev/shm/y && ln -s /etc/shadow /tmp/l && ln -s /etc /tmp/etc && echo ok";
static const char *const TMPFS_READ =
	"cat /tmp/work/f /run/x /dev/shm/y; stat -c %a:%u:%g /tmp/work/f; readlink /tmp/l; readlink /tmp/etc; "
	"stat -c %a /tmp /dev/shm";

TEST(tmpfs_kept)
{
	setup();
	struct stat shadow0;
	REQUIRE(lstat("/etc/shadow", &shadow0) == 0);
	sandbox *a = spawn(false);
	outbuf o;
	CHECK_STR_EQ(sh(a, TMPFS_WRITE, &o), "ok\n");
	char want[512];
	snprintf(want, sizeof want, "%s", sh(a, TMPFS_READ, &o));
	CHECK_STR_EQ(want, "work\nx\ny\n604:1000:1001\n/etc/shadow\n/etc\n1777\n1777\n");
	char id[SILO_ID_MAX];
	snap_info info;
	take(a, false, id, &info);
	/* the archives are payload entries: the manifest checksums them */
	CHECK(payload_size(&info, "tmpfs/tmp.tar") > 0 && payload_size(&info, "tmpfs/run.tar") > 0 &&
	      payload_size(&info, "tmpfs/dev-shm.tar") > 0);
	CHECK(info.bytes == payload_size(&info, "tmpfs/tmp.tar") + payload_size(&info, "tmpfs/run.tar") +
				    payload_size(&info, "tmpfs/dev-shm.tar"));
	/* a restore and two forks (a fork is a restore of a fork snapshot) */
	enum { N = 3 };
	sandbox *f[N];
	for (int i = 0; i < N; i++) {
		f[i] = restore(&info);
		CHECK_STR_EQ(sh(f[i], TMPFS_READ, &o), want);
		CHECK_STR_EQ(sh(f[i], "test -L /tmp/l && test -L /tmp/etc && echo links", &o), "links\n");
		/* owners in the copy's own host id range */
		CHECK_INT_EQ(host_owner(f[i], "/tmp/work/f"), host_base(f[i]) + 1000);
	}
	/* the copies are independent */
	CHECK_STR_EQ(sh(f[0], "echo changed > /tmp/work/f; cat /tmp/work/f", &o), "changed\n");
	CHECK_STR_EQ(sh(f[1], "cat /tmp/work/f", &o), "work\n");
	CHECK_STR_EQ(sh(a, "cat /tmp/work/f", &o), "work\n");
	/* the host's /etc/shadow was neither followed nor written */
	struct stat shadow1;
	REQUIRE(lstat("/etc/shadow", &shadow1) == 0);
	CHECK(shadow1.st_ino == shadow0.st_ino && shadow1.st_size == shadow0.st_size &&
	      shadow1.st_mtim.tv_sec == shadow0.st_mtim.tv_sec && shadow1.st_mtim.tv_nsec == shadow0.st_mtim.tv_nsec);
	end_forks(f, N, a, &info);
}

TEST(tmpfs_over_limit_refused)
{
	setup();
	sandbox *a = spawn(false);
	outbuf o;
	CHECK_STR_EQ(sh(a, "head -c 3145728 /dev/zero > /dev/shm/big && echo ok", &o), "ok\n");
	setenv("SILO_SNAPSHOT_MAX_MB", "2", 1);
	snap_writer *w = NULL;
	silo_error err = {0};
	REQUIRE(snap_begin("snapshot", &w, &err) == 0);
	CHECK(sandbox_snapshot(a, snap_writer_payload(w), false, &err) < 0);
	snap_abort(w);
	unsetenv("SILO_SNAPSHOT_MAX_MB");
	CHECK_STR_EQ(silo_code_name(err.code), "RESOURCE_EXCEEDED");
	CHECK_CONTAINS(err.message, "/tmp, /run and /dev/shm together are larger than the snapshot limit of 2 MiB");
	CHECK_CONTAINS(err.message, "snapshot of /dev/shm");
	/* the sandbox goes on running */
	CHECK(sandbox_get_state(a) == SB_RUNNING);
	CHECK_STR_EQ(sh(a, "wc -c < /dev/shm/big", &o), "3145728\n");
	destroy(a);
	teardown();
}

TEST_MAIN(restore_equals_source, fork_isolation, snapshot_of_restored_is_flattened, keep_paused,
	  corrupt_snapshot_refused, tmpfs_kept, tmpfs_over_limit_refused)
