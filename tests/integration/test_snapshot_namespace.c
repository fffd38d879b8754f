/* SPDX-License-Identifier: Apache-2.0
 * Snapshots of namespace sandboxes with the real agent, kernel, overlayfs and
 * cgroup freezer: state equality after restore (files written, a base file
 * deleted, modes), fork isolation (a write in one copy is invisible in the
 * others and in the parent), a snapshot of a restored sandbox (flattened
 * layers), keep-paused, a corrupted snapshot refused, and no residue.
 * Needs root; skips otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "core/sandbox.h"
#include "harness.h"
#include "snapshot/snapshot.h"

static char tmpdir[] = "/tmp/silo-snap-ns.XXXXXX";

static void setup(void)
{
	if (geteuid() != 0)
		SKIP("the namespace provider needs root");
	if (!mkdtemp(tmpdir))
		SKIP("mkdtemp failed");
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/run", tmpdir);
	setenv("SILO_RUNTIME_DIR", p, 1);
	snprintf(p, sizeof p, "%s/cache", tmpdir);
	setenv("SILO_CACHE_DIR", p, 1);
	snprintf(p, sizeof p, "%s/state", tmpdir);
	setenv("SILO_STATE_DIR", p, 1);
	provider_info info = {0};
	const provider_ops *ops = provider_find("namespace");
	REQUIRE(ops);
	ops->probe(&info);
	if (!info.available)
		SKIP("namespace provider unavailable: %s", info.reason);
}

static void teardown(void)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/run/sandboxes", tmpdir);
	size_t left = 0;
	FILE *f = popen(xasprintf("ls -A '%s' 2>/dev/null | wc -l", p), "r");
	if (f) {
		if (fscanf(f, "%zu", &left) != 1)
			left = 0;
		pclose(f);
	}
	CHECK_INT_EQ(left, 0);   /* every run directory is gone */
	rm_rf(tmpdir);
}

static void base_spec(vm_spec *s)
{
	memset(s, 0, sizeof *s);
	snprintf(s->name, sizeof s->name, "snap");
	s->provider = "namespace";
	s->vcpus = 1;
	s->memory_mb = 128;
}

typedef struct outbuf {
	char data[4096];
	size_t len;
} outbuf;

static void collect(void *ud, int stream, const void *buf, size_t len)
{
	(void)stream;
	outbuf *o = ud;
	size_t n = MIN(len, sizeof o->data - 1 - o->len);
	memcpy(o->data + o->len, buf, n);
	o->len += n;
	o->data[o->len] = '\0';
}

/* stdout+stderr of sh -c script; "" on failure */
static const char *sh(sandbox *sb, const char *script, outbuf *o)
{
	char *argv[] = {"sh", "-c", (char *)script, NULL};
	exec_req req = {.argv = argv, .uid = -1, .gid = -1};
	silo_error err = {0};
	exec_result res;
	memset(o, 0, sizeof *o);
	if (chan_exec(sb->ch, &req, collect, o, &res, &err) < 0)
		printf("# exec: %s\n", err.message);
	return o->data;
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
	sandbox_opts o = {.restore_dir = info->payload, .restore_id = info->id, .restore_provider = info->provider};
	sandbox *sb = NULL;
	silo_error err = {0};
	if (sandbox_create(&info->spec, &o, &sb, &err) < 0)
		printf("# restore: %s\n", err.message);
	REQUIRE(sb);
	return sb;
}

static void destroy(sandbox *sb)
{
	cleanup_report rep = {0};
	silo_error err = {0};
	CHECK(sandbox_destroy(sb, 1000, &rep, &err) == 0);
	CHECK(rep.host_clean);
	cleanup_report_free(&rep);
}

/* Gone, or a zombie waiting for its reaper (the init is not our child). */
static bool pid_dead(pid_t pid)
{
	char p[64], *txt = NULL;
	size_t n;
	snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
	if (read_file(p, 4096, &txt, &n, NULL) < 0)
		return true;
	char *r = strrchr(txt, ')');
	bool dead = r && (r[2] == 'Z' || r[2] == 'X');
	free(txt);
	return dead;
}

static const char *const WRITE =
	"mkdir -p /root/work && echo v1 > /root/work/state.txt && chmod 640 /root/work/state.txt && "
	"rm /etc/os-release && ln -s state.txt /root/work/link && echo ok";
static const char *const READ =
	"cat /root/work/state.txt; stat -c %a /root/work/state.txt; readlink /root/work/link; "
	"test -e /etc/os-release && echo os-release-present || echo os-release-gone; head -1 /etc/hosts";

TEST(restore_equals_source)
{
	setup();
	vm_spec s;
	base_spec(&s);
	sandbox *a = NULL;
	silo_error err = {0};
	REQUIRE(sandbox_create(&s, NULL, &a, &err) == 0);
	outbuf o;
	CHECK_STR_EQ(sh(a, WRITE, &o), "ok\n");
	char before[4096];
	snprintf(before, sizeof before, "%s", sh(a, READ, &o));
	CHECK_STR_EQ(before, "v1\n640\nstate.txt\nos-release-gone\n127.0.0.1\tlocalhost\n");
	char id[SILO_ID_MAX];
	snap_info info;
	take(a, false, id, &info);
	CHECK(sandbox_get_state(a) == SB_RUNNING);   /* resumed */
	CHECK(info.bytes == 3);                      /* "v1\n" */
	sandbox *b = restore(&info);
	CHECK(strcmp(b->id, a->id) != 0);
	CHECK(sandbox_get_state(b) == SB_RUNNING);
	CHECK_STR_EQ(sh(b, READ, &o), before);
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
	vm_spec s;
	base_spec(&s);
	sandbox *parent = NULL;
	silo_error err = {0};
	REQUIRE(sandbox_create(&s, NULL, &parent, &err) == 0);
	outbuf o;
	CHECK_STR_EQ(sh(parent, WRITE, &o), "ok\n");
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
	for (int i = 0; i < N; i++)
		destroy(f[i]);
	destroy(parent);
	snap_info_free(&info);
	teardown();
}

TEST(snapshot_of_restored_is_flattened)
{
	setup();
	vm_spec s;
	base_spec(&s);
	sandbox *a = NULL;
	silo_error err = {0};
	REQUIRE(sandbox_create(&s, NULL, &a, &err) == 0);
	outbuf o;
	CHECK_STR_EQ(sh(a, WRITE, &o), "ok\n");
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
	vm_spec s;
	base_spec(&s);
	sandbox *a = NULL;
	silo_error err = {0};
	REQUIRE(sandbox_create(&s, NULL, &a, &err) == 0);
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
	vm_spec s;
	base_spec(&s);
	sandbox *a = NULL;
	silo_error err = {0};
	REQUIRE(sandbox_create(&s, NULL, &a, &err) == 0);
	outbuf o;
	CHECK_STR_EQ(sh(a, WRITE, &o), "ok\n");
	char id[SILO_ID_MAX];
	snap_info info;
	take(a, false, id, &info);
	destroy(a);
	char p[PATH_MAX + 64];
	snprintf(p, sizeof p, "%s/layer/root/work/state.txt", info.payload);
	int fd = open(p, O_WRONLY);
	REQUIRE(fd >= 0);
	REQUIRE(pwrite(fd, "V", 1, 0) == 1);
	close(fd);
	snap_info again;
	CHECK(snap_open(id, true, &again, &err) < 0);
	CHECK_STR_EQ(silo_code_name(err.code), "CHECKSUM_MISMATCH");
	CHECK_CONTAINS(err.message, "payload/layer/root/work/state.txt: SHA-256 mismatch");
	snap_info_free(&info);
	teardown();
}

TEST_MAIN(restore_equals_source, fork_isolation, snapshot_of_restored_is_flattened, keep_paused,
	  corrupt_snapshot_refused)
