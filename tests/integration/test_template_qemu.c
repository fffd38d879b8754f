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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

/* The uid of the jailed QEMU of sb (sb->pid, or its first child if that is
 * still root: the jailer). */
static uid_t qemu_uid(const sandbox *sb)
{
	pid_t pid = sb->pid;
	for (int depth = 0; depth < 3 && pid > 0; depth++) {
		char p[64], *txt = NULL;
		size_t n;
		snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
		unsigned uid = 0;
		if (read_file(p, 1 << 16, &txt, &n, NULL) == 0 && strstr(txt, "\nUid:"))
			sscanf(strstr(txt, "\nUid:") + 5, "%u", &uid);
		free(txt);
		if (uid)
			return (uid_t)uid;
		snprintf(p, sizeof p, "/proc/%d/task/%d/children", (int)pid, (int)pid);
		txt = NULL;
		pid = read_file(p, 4096, &txt, &n, NULL) == 0 ? atoi(txt) : 0;
		free(txt);
	}
	return 0;
}

/* errno of open(path) as uid (0 = it opened). */
static int open_as(uid_t uid, const char *path)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(uid) < 0 || setuid(uid) < 0)
			_exit(255);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		_exit(fd < 0 ? errno : 0);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
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
	/* exec-only: not in the key, not in the store */
	s.env[0] = (spec_kv){.key = (char *)"WHO", .value = (char *)"first-creator"};
	s.n_env = 1;
	outbuf o;
	sandbox *a = start(&s, false);
	CHECK(!a->from_template);
	REQUIRE(a->template_id[0]);
	CHECK_INT_EQ(templates(), 1);
	char tid[SILO_ID_MAX];
	snprintf(tid, sizeof tid, "%s", a->template_id);
	snap_info ti;
	silo_error terr = {0};
	REQUIRE(snap_open(tid, false, &ti, &terr) == 0);
	CHECK(ti.have_spec && ti.spec.n_env == 0 && !strcmp(ti.spec.name, "template"));
	CHECK(strstr(ti.spec_toml, "first-creator") == NULL);
	snap_info_free(&ti);
	/* written after the template was taken: must not reach the next sandbox */
	CHECK_STR_EQ(sbt_sh(a, "echo mine > /root/after-ready && echo ok", 60000, &o), "ok\n");
	sbt_destroy(a, 2000);

	/* another creator (name, env) and `image` unset: the same template (the
	 * spec's env reaches execs through the manager: templates-paths checks it) */
	s.image = NULL;
	snprintf(s.name, sizeof s.name, "tpl-other");
	s.env[0].value = (char *)"second-creator";
	sandbox *b = start(&s, false);
	CHECK(b->from_template);
	CHECK_STR_EQ(b->template_id, tid);
	CHECK_STR_EQ(sbt_sh(b, "test -e /root/after-ready && echo leaked || echo clean", 60000, &o), "clean\n");
	CHECK_STR_EQ(sbt_sh(b, "echo hello", 60000, &o), "hello\n");
	/* a QEMU taken over by its guest runs as the jail's uid: it cannot read the
	 * template (files 0600, directories 0700, root's), nor rewrite it */
	uid_t ju = qemu_uid(b);
	REQUIRE(ju != 0);
	REQUIRE(snap_open(tid, false, &ti, &terr) == 0);
	char vmstate[PATH_MAX + 64];
	snprintf(vmstate, sizeof vmstate, "%s/vmstate", ti.payload);
	snap_info_free(&ti);
	CHECK_INT_EQ(open_as(ju, vmstate), EACCES);
	struct stat vst;
	CHECK(stat(vmstate, &vst) == 0 && vst.st_uid == 0 && (vst.st_mode & 077) == 0);
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

/* Start spec s twice, rewriting file (same bytes, same path: a new ctime, as
 * any rebuild) in between: the second start boots cold under a new key and
 * its save removes the stale template. */
static void rewritten_boots_cold(vm_spec *s, const char *src, const char *file)
{
	char *cmd = xasprintf("cp '%s' '%s'", src, file);
	REQUIRE(system(cmd) == 0);
	size_t before = templates();
	sandbox *a = start(s, false);
	CHECK(!a->from_template);
	char tid[SILO_ID_MAX];
	snprintf(tid, sizeof tid, "%s", a->template_id);
	REQUIRE(tid[0]);
	sbt_destroy(a, 2000);
	usleep(20000);
	REQUIRE(system(cmd) == 0);
	free(cmd);
	sandbox *b = start(s, false);
	CHECK(!b->from_template);
	CHECK(b->template_id[0] && strcmp(b->template_id, tid) != 0);
	/* the stale one (same shape, old file) was removed by the new save */
	snap_info info;
	silo_error err = {0};
	CHECK(snap_open(tid, false, &info, &err) < 0);
	CHECK_INT_EQ(templates(), before + 1);
	sbt_destroy(b, 2000);
}

/* The guest kernel, and where a test's copy of it goes. */
static void kernel_paths(char kernel[PATH_MAX], char copy[PATH_MAX + 32])
{
	silo_error err = {0};
	REQUIRE(guest_kernel_path(kernel, PATH_MAX, &err) == 0);
	snprintf(copy, PATH_MAX + 32, "%s/vmlinux", tmpdir);
}

TEST(changed_kernel_or_agent_boots_cold)
{
	setup();
	char kernel[PATH_MAX], copy[PATH_MAX + 32];
	silo_error err = {0};
	kernel_paths(kernel, copy);
	vm_spec s;
	spec_base(&s, 256);
	s.kernel = copy;
	rewritten_boots_cold(&s, kernel, copy);
	/* the agent travels in the initramfs: a rebuilt agent is a rewritten initramfs */
	image_entry e;
	REQUIRE(image_lookup("base", &e, &err) == 0);
	char initrd[PATH_MAX + 32];
	snprintf(initrd, sizeof initrd, "%s/initramfs", tmpdir);
	vm_spec s2;
	spec_base(&s2, 256);
	s2.image = NULL;
	s2.initrd = initrd;
	rewritten_boots_cold(&s2, e.kind == IMAGE_KIND_EXT4 ? e.initrd.path : e.file.path, initrd);
	image_entry_free(&e);
	teardown();
}

typedef struct {
	const vm_spec *s;
	sandbox *sb;
} start_job;

static void *start_main(void *arg)
{
	start_job *j = arg;
	j->sb = start(j->s, false);
	return NULL;
}

TEST(concurrent_first_starts_one_template)
{
	setup();
	vm_spec s;
	spec_base(&s, 256);
	start_job j[2] = {{.s = &s}, {.s = &s}};
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		REQUIRE(pthread_create(&th[i], NULL, start_main, &j[i]) == 0);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	CHECK_INT_EQ(templates(), 1);
	sandbox *c = start(&s, false);
	CHECK(c->from_template);
	for (int i = 0; i < 2; i++)
		sbt_destroy(j[i].sb, 2000);
	sbt_destroy(c, 2000);
	teardown();
}

static bool in(json_t *ids, const char *id)
{
	size_t i;
	json_t *v;
	json_array_foreach(ids, i, v)
		if (!strcmp(json_string_value(v), id))
			return true;
	return false;
}

static uint64_t template_bytes(const char *id)
{
	snap_info info;
	silo_error err = {0};
	REQUIRE(snap_open(id, false, &info, &err) == 0);
	uint64_t b = info.bytes;
	snap_info_free(&info);
	return b;
}

/* tpl_gc: a template whose boot file is gone is stale; beyond
 * SILO_TEMPLATE_MAX_MB the least recently used go, the ones in use stay. */
static char *start_keep_id(const vm_spec *s, bool want_restored)
{
	sandbox *a = start(s, false);
	CHECK(a->from_template == want_restored);
	char *id = xstrdup(a->template_id);
	sbt_destroy(a, 2000);
	return id;
}

TEST(gc_stale_and_size_bound)
{
	setup();
	char kernel[PATH_MAX], copy[PATH_MAX + 32];
	silo_error err = {0};
	kernel_paths(kernel, copy);
	char *cmd = xasprintf("cp '%s' '%s'", kernel, copy);
	REQUIRE(system(cmd) == 0);
	free(cmd);
	vm_spec sk, s256, s320, s288;
	spec_base(&sk, 256);
	sk.kernel = copy;
	spec_base(&s256, 256);
	spec_base(&s320, 320);
	spec_base(&s288, 288);
	char *t_k = start_keep_id(&sk, false), *t256 = start_keep_id(&s256, false),
	     *t320 = start_keep_id(&s320, false);
	CHECK_INT_EQ(templates(), 3);
	/* the kernel it booted is gone: stale; the others are current */
	REQUIRE(unlink(copy) == 0);
	json_t *removed = json_array();
	CHECK_INT_EQ(tpl_gc(true, removed, &err), 0);
	CHECK_INT_EQ(json_array_size(removed), 1);
	CHECK(in(removed, t_k));
	json_decref(removed);
	CHECK_INT_EQ(templates(), 2);
	/* t256 used after t320: t320 is the least recently used */
	sleep(1);
	free(start_keep_id(&s256, true));
	/* room for about two and a half: the third save evicts t320 only */
	uint64_t mb = (template_bytes(t256) * 5 / 2) >> 20;
	char v[32];
	snprintf(v, sizeof v, "%llu", (unsigned long long)mb);
	setenv("SILO_TEMPLATE_MAX_MB", v, 1);
	char *t288 = start_keep_id(&s288, false);
	snap_info info;
	CHECK(snap_open(t320, false, &info, &err) < 0);
	CHECK_INT_EQ(templates(), 2);
	/* a template in use is never collected, whatever the bound */
	sandbox *u = start(&s288, false);
	CHECK(u->from_template);
	setenv("SILO_TEMPLATE_MAX_MB", "1", 1);
	removed = json_array();
	CHECK_INT_EQ(tpl_gc(true, removed, &err), 0);
	CHECK(in(removed, t256) && !in(removed, t288));
	json_decref(removed);
	CHECK_INT_EQ(templates(), 1);
	sbt_destroy(u, 2000);
	unsetenv("SILO_TEMPLATE_MAX_MB");
	free(t_k);
	free(t256);
	free(t320);
	free(t288);
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

TEST_MAIN(second_start_restores, changed_kernel_or_agent_boots_cold, concurrent_first_starts_one_template,
	  gc_stale_and_size_bound, tampered_template_refused)
