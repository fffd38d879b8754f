/* SPDX-License-Identifier: Apache-2.0
 * qemu snapshots with a real QEMU TCG guest (guest kernel + base image, real
 * agent): snapshot a running VM through QEMU's migration stream, restore it
 * into a new sandbox and check guest-visible state: a file written before the
 * snapshot is there with the same bytes, a process started before the
 * snapshot is still running (memory and CPU state, not a reboot), the guest
 * clock continues, and the guest answers exec; two restores are independent;
 * a corrupted vmstate is refused before QEMU sees it; nothing is left behind.
 * Needs the kernel and base image (scripts/prepare-images.sh) and QEMU.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "core/sandbox.h"
#include "harness.h"
#include "image/image.h"
#include "sandbox_test.h"
#include "snapshot/snapshot.h"

static char tmpdir[] = "/tmp/silo-snap-qemu.XXXXXX";

static void setup(void)
{
	sbt_qemu_setup(tmpdir);
}

static void teardown(void)
{
	CHECK_INT_EQ(sbt_run_residue(tmpdir, 1), 0);
	rm_rf(tmpdir);
}

static const char *sh(sandbox *sb, const char *script, outbuf *o)
{
	return sbt_sh(sb, script, 60000, o);
}

static void qemu_spec(vm_spec *s)
{
	sbt_spec(s, "qsnap", "qemu", 256);
	s->image = "base";
}

static sandbox *boot_spec(const vm_spec *s)
{
	sandbox_opts o = {.boot_timeout_ms = 120000};
	sandbox *sb = NULL;
	silo_error err = {0};
	if (sandbox_create(s, &o, &sb, &err) < 0)
		printf("# boot: %s\n", err.message);
	REQUIRE(sb);
	return sb;
}

static sandbox *boot(void)
{
	vm_spec s;
	qemu_spec(&s);
	return boot_spec(&s);
}

static sandbox *restore(const snap_info *info, uint64_t *ms)
{
	return sbt_restore(info, 120000, ms);
}

static void destroy(sandbox *sb)
{
	sbt_destroy(sb, 2000);
}

TEST(restore_keeps_guest_state)
{
	setup();
	sandbox *a = boot();
	outbuf o;
	/* a file with random bytes, and a process that must survive */
	CHECK_STR_EQ(sh(a, "head -c 4096 /dev/urandom > /root/blob && md5sum /root/blob | cut -c1-32 > /root/sum && "
			   "(sleep 100000 & echo $! > /root/pid) && echo ok",
			&o),
		     "ok\n");
	char sum[64], pid[32], up[64];
	snprintf(sum, sizeof sum, "%s", sh(a, "cat /root/sum", &o));
	snprintf(pid, sizeof pid, "%s", sh(a, "cat /root/pid", &o));
	snprintf(up, sizeof up, "%s", sh(a, "cut -d. -f1 /proc/uptime", &o));
	REQUIRE(strlen(sum) == 33);
	snap_writer *w;
	silo_error err = {0};
	REQUIRE(snap_begin("snapshot", &w, &err) == 0);
	uint64_t t0 = now_mono_ns();
	int rc = sandbox_snapshot(a, snap_writer_payload(w), false, &err);
	if (rc < 0)
		printf("# snapshot: %s\n", err.message);
	REQUIRE(rc == 0);
	printf("# snapshot (QMP migrate to file) took %llu ms\n", (unsigned long long)((now_mono_ns() - t0) / 1000000));
	snap_meta meta = {.provider = "qemu", .source = a->id, .spec = &a->spec};
	char id[SILO_ID_MAX];
	snprintf(id, sizeof id, "%s", snap_writer_id(w));
	REQUIRE(snap_commit(w, &meta, NULL, &err) == 0);
	snap_info info;
	REQUIRE(snap_open(id, true, &info, &err) == 0);
	printf("# vmstate: %llu bytes\n", (unsigned long long)info.bytes);
	/* the source goes on, and diverges */
	CHECK(sandbox_get_state(a) == SB_RUNNING);
	CHECK_STR_EQ(sh(a, "echo changed > /root/blob; echo ok", &o), "ok\n");
	uint64_t ms;
	sandbox *b = restore(&info, &ms);
	printf("# restore-to-ready (QEMU start + incoming migration + agent handshake): %llu ms\n",
	       (unsigned long long)ms);
	CHECK(strcmp(a->id, b->id) != 0);
	CHECK_STR_EQ(sh(b, "md5sum /root/blob | cut -c1-32", &o), sum);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "kill -0 %.*s && echo alive", (int)strcspn(pid, "\n"), pid);
	CHECK_STR_EQ(sh(b, cmd, &o), "alive\n");
	long up_a = atol(up), up_b = atol(sh(b, "cut -d. -f1 /proc/uptime", &o));
	CHECK(up_b >= up_a);   /* the guest clock continued; a reboot would restart it near 0 */
	printf("# guest uptime before %ld s, after restore %ld s\n", up_a, up_b);
	CHECK_STR_EQ(sh(b, "echo hello from the restored guest", &o), "hello from the restored guest\n");
	/* a second restore is independent of the first */
	sandbox *c = restore(&info, &ms);
	CHECK_STR_EQ(sh(b, "echo b-only > /root/blob; cat /root/blob", &o), "b-only\n");
	CHECK_STR_EQ(sh(c, "md5sum /root/blob | cut -c1-32", &o), sum);
	CHECK_STR_EQ(sh(a, "cat /root/blob", &o), "changed\n");
	destroy(c);
	destroy(b);
	destroy(a);
	/* corruption of the migration stream is caught by the manifest */
	sbt_expect_tamper_caught(id, &info, "vmstate", 100000);
	snap_info_free(&info);
	teardown();
}

TEST(writable_drive_refused)
{
	setup();
	/* snapshot covers memory and devices, not disks: a writable drive is refused */
	char img[PATH_MAX];
	snprintf(img, sizeof img, "%s/scratch.img", tmpdir);
	int fd = open(img, O_CREAT | O_WRONLY, 0600);
	REQUIRE(fd >= 0 && ftruncate(fd, 1 << 20) == 0);
	close(fd);
	vm_spec s;
	qemu_spec(&s);
	s.drives[0] = (spec_drive){.id = "scratch", .path = img, .read_only = false};
	s.n_drives = 1;
	sandbox *sb = boot_spec(&s);
	silo_error err = {0};
	snap_writer *w;
	REQUIRE(snap_begin("snapshot", &w, &err) == 0);
	CHECK(sandbox_snapshot(sb, snap_writer_payload(w), false, &err) < 0);
	CHECK_STR_EQ(silo_code_name(err.code), "NOT_SUPPORTED");
	CHECK_CONTAINS(err.message, "drives[0]");
	CHECK(sandbox_get_state(sb) == SB_RUNNING);
	snap_abort(w);
	destroy(sb);
	teardown();
}

TEST_MAIN(restore_keeps_guest_state, writable_drive_refused)
