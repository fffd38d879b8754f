/* SPDX-License-Identifier: Apache-2.0
 * Templates (lib/core/template.c) with a real QEMU TCG guest: the first start
 * of an image + shape boots cold and saves a template; the second restores it
 * (and the guest answers exec; two copies of it read different random bytes:
 * the host's hello reseeds the guest RNG); what the first sandbox wrote after it was ready
 * is not in the second (a template is the ready state, not a user's state);
 * --cold (sandbox_opts.cold) neither restores nor saves; a changed shape
 * (memory) or a rewritten kernel file (same path, same bytes: a new ctime) is a
 * new key and boots cold (and the stale template of the rewritten kernel is
 * removed); a template whose payload was tampered with is
 * refused, removed, and the start boots cold. Nothing is left behind.
 * Needs the kernel and base image (scripts/prepare-images.sh) and QEMU.
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
#include "image/image.h"
#include "sandbox_test.h"
#include "snapshot/snapshot.h"

static char tmpdir[] = "/tmp/silo-tpl-qemu.XXXXXX";

static void setup(void)
{
	sbt_qemu_setup(tmpdir);
	unsetenv("SILO_TEMPLATES");
}

static void teardown(void)
{
	CHECK_INT_EQ(sbt_run_residue(tmpdir, 1), 0);
	rm_rf(tmpdir);
}

static sandbox *start(const vm_spec *s, bool cold)
{
	sandbox_opts o = {.boot_timeout_ms = 120000, .cold = cold};
	sandbox *sb = NULL;
	silo_error err = {0};
	if (sandbox_create(s, &o, &sb, &err) < 0)
		printf("# start: %s\n", err.message);
	REQUIRE(sb);
	printf("# %s: %s in %llu ms (template %s)\n", sb->id, sb->from_template ? "restored" : "booted cold",
	       (unsigned long long)(sb->ready_ns / 1000000), sb->template_id[0] ? sb->template_id : "-");
	return sb;
}

/* Number of snapshots of kind "template" in the store. */
static size_t templates(void)
{
	json_t *l = NULL;
	silo_error err = {0};
	REQUIRE(snap_list_json(&l, &err) == 0);
	size_t i, n = 0;
	json_t *v;
	json_array_foreach(l, i, v)
		n += !strcmp(json_string_value(json_object_get(v, "kind")) ?: "", "template");
	json_decref(l);
	return n;
}

static void spec_base(vm_spec *s, int memory_mb)
{
	sbt_spec(s, "tpl", "qemu", memory_mb);
	s->image = "base";
}

TEST(second_start_restores)
{
	setup();
	vm_spec s;
	spec_base(&s, 256);
	outbuf o;
	sandbox *a = start(&s, false);
	CHECK(!a->from_template);
	REQUIRE(a->template_id[0]);
	CHECK_INT_EQ(templates(), 1);
	char tid[SILO_ID_MAX];
	snprintf(tid, sizeof tid, "%s", a->template_id);
	/* written after the template was taken: must not reach the next sandbox */
	CHECK_STR_EQ(sbt_sh(a, "echo mine > /root/after-ready && echo ok", 60000, &o), "ok\n");
	sbt_destroy(a, 2000);

	sandbox *b = start(&s, false);
	CHECK(b->from_template);
	CHECK_STR_EQ(b->template_id, tid);
	CHECK_STR_EQ(sbt_sh(b, "test -e /root/after-ready && echo leaked || echo clean", 60000, &o), "clean\n");
	CHECK_STR_EQ(sbt_sh(b, "echo hello", 60000, &o), "hello\n");
	/* two copies of one memory image: the host's hello seeds each guest RNG anew */
	sandbox *b2 = start(&s, false);
	CHECK(b2->from_template);
	const char *rnd = "head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'";
	char r1[128];
	snprintf(r1, sizeof r1, "%s", sbt_sh(b, rnd, 60000, &o));
	CHECK_INT_EQ(strlen(r1), 32);
	CHECK(strcmp(r1, sbt_sh(b2, rnd, 60000, &o)) != 0);
	sbt_destroy(b2, 2000);
	/* the store keeps a template a live sandbox was restored from */
	silo_error err = {0};
	CHECK(snap_delete(tid, false, &err) < 0);
	CHECK_STR_EQ(silo_code_name(err.code), "CONFLICT");
	sbt_destroy(b, 2000);

	/* --cold: neither restored nor saved */
	sandbox *c = start(&s, true);
	CHECK(!c->from_template);
	CHECK_STR_EQ(c->template_id, "");
	CHECK_INT_EQ(templates(), 1);
	sbt_destroy(c, 2000);

	/* another shape is another template */
	vm_spec s2;
	spec_base(&s2, 320);
	sandbox *d = start(&s2, false);
	CHECK(!d->from_template);
	CHECK(d->template_id[0] && strcmp(d->template_id, tid) != 0);
	CHECK_INT_EQ(templates(), 2);
	sbt_destroy(d, 2000);
	teardown();
}

TEST(changed_kernel_boots_cold)
{
	setup();
	char kernel[PATH_MAX], copy[PATH_MAX + 32];
	silo_error err = {0};
	REQUIRE(guest_kernel_path(kernel, sizeof kernel, &err) == 0);
	snprintf(copy, sizeof copy, "%s/vmlinux", tmpdir);
	char *cmd = xasprintf("cp '%s' '%s'", kernel, copy);
	REQUIRE(system(cmd) == 0);
	vm_spec s;
	spec_base(&s, 256);
	s.kernel = copy;
	sandbox *a = start(&s, false);
	CHECK(!a->from_template);
	char tid[SILO_ID_MAX];
	snprintf(tid, sizeof tid, "%s", a->template_id);
	REQUIRE(tid[0]);
	sbt_destroy(a, 2000);
	/* the same bytes written again under the same path: a new ctime, a new key */
	usleep(20000);
	REQUIRE(system(cmd) == 0);
	free(cmd);
	sandbox *b = start(&s, false);
	CHECK(!b->from_template);
	CHECK(b->template_id[0] && strcmp(b->template_id, tid) != 0);
	/* the stale one (same shape, old kernel) was removed by the new save */
	snap_info info;
	CHECK(snap_open(tid, false, &info, &err) < 0);
	CHECK_INT_EQ(templates(), 1);
	sbt_destroy(b, 2000);
	teardown();
}

TEST(tampered_template_refused)
{
	setup();
	vm_spec s;
	spec_base(&s, 256);
	sandbox *a = start(&s, false);
	char tid[SILO_ID_MAX];
	snprintf(tid, sizeof tid, "%s", a->template_id);
	REQUIRE(tid[0]);
	sbt_destroy(a, 2000);
	snap_info info;
	silo_error err = {0};
	REQUIRE(snap_open(tid, true, &info, &err) == 0);
	char vmstate[PATH_MAX + 64];
	snprintf(vmstate, sizeof vmstate, "%s/vmstate", info.payload);
	snap_info_free(&info);
	/* a hostile store: one byte of guest memory changed */
	sbt_flip_byte(vmstate, 4096, 0x01);
	sandbox *b = start(&s, false);
	CHECK(!b->from_template);
	CHECK(b->template_id[0] && strcmp(b->template_id, tid) != 0);
	CHECK(snap_open(tid, false, &info, &err) < 0);   /* removed */
	CHECK_INT_EQ(templates(), 1);
	outbuf o;
	CHECK_STR_EQ(sbt_sh(b, "echo hello", 60000, &o), "hello\n");
	sbt_destroy(b, 2000);
	teardown();
}

TEST_MAIN(second_start_restores, changed_kernel_boots_cold, tampered_template_refused)
