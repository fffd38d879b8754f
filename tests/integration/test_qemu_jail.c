/* SPDX-License-Identifier: Apache-2.0
 * The attacks of issue 21 on the VM providers, performed against real QEMU (TCG
 * here), the real guest kernel, the "base" image and the real agent:
 *   - QEMU must not run as host root: its uid, capabilities, no_new_privs, seccomp,
 *     namespaces, root directory, cgroup and rlimits, read from /proc/<qemu pid>;
 *     through its own QMP socket it cannot open a host file (/etc/shadow);
 *     kill -9 of QEMU or of its jailer leaves nothing behind;
 *   - a guest flooding its console cannot grow serial.log past the cap;
 *   - boot.cmdline cannot choose the root device or init (without a keyring Silo's
 *     parameters win; with one the spec is refused, for qemu and kvm);
 *   - the disk budget: ENOSPC in the guest at disk_mb, the host file bounded,
 *     uploads count, sparse writable drives count; the scratch disk survives a
 *     snapshot and restore.
 * Needs root, the kernel and the base image (scripts/prepare-images.sh): absent ->
 * FAIL, unless SILO_SKIP_VM_TESTS=1 (SKIP).
 */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "core/channel.h"
#include "core/provider.h"
#include "core/sandbox.h"
#include "harness.h"
#include "image/image.h"
#include "providers/ns.h"
#include "proc_test.h"
#include "qemu_test.h"
#include "sandbox_test.h"
#include "providers/vm.h"
#include "trust/trust.h"

extern const provider_ops qemu_provider;
extern const provider_ops kvm_provider;

#define BOOT_MS 60000 /* TCG on a loaded 2-core CI box; typically 1-3 s */

static void need_vm(void)
{
	qt_need_vm_image("base");
	if (geteuid() != 0)
		SKIP("the QEMU jail needs root (namespaces, uid change)");
	/* an empty keyring: the boot checks below must not depend on the host's */
	static char kr[64];
	snprintf(kr, sizeof kr, "/tmp/silo-jail-keyring-%d", (int)getpid());
	setenv("SILO_KEYRING_DIR", kr, 1);
}

typedef struct vm {
	sandbox sb;
	pid_t jailer;
} vm;

static void spec_base(vm_spec *s, const char *name)
{
	memset(s, 0, sizeof *s);
	snprintf(s->name, sizeof s->name, "%s", name);
	s->vcpus = 1;
	s->memory_mb = 256;
	s->image = "base";
}

static void vm_init(vm *v, const char *id)
{
	memset(v, 0, sizeof *v);
	snprintf(v->sb.id, sizeof v->sb.id, "%s-%d", id, (int)getpid());
	snprintf(v->sb.rundir, sizeof v->sb.rundir, "/tmp/silo-qemu-jail-%d-%s", (int)getpid(), id);
	REQUIRE(mkdir_p(v->sb.rundir, 0700) == 0);
}

/* After spawn or restore: remember the jailer; with agent, connect and open the channel. */
static int vm_attach(vm *v, bool agent, silo_error *err)
{
	v->jailer = v->sb.pid;
	qt_track_vm(v->jailer);
	if (!agent)
		return 0;
	int fd = qemu_provider.connect(&v->sb, BOOT_MS, err);
	if (fd < 0)
		return -1;
	chan_opts o = {.vm_id = v->sb.id, .handshake_timeout_ms = BOOT_MS, .heartbeat_ms = 1000};
	v->sb.ch = chan_open(fd, &o, &v->sb.agent, err);
	if (!v->sb.ch) {
		char diag[2048];
		qemu_provider.diagnostics(&v->sb, diag, sizeof diag);
		printf("# boot of %s failed: %.300s\n", v->sb.id, diag);
		return -1;
	}
	return 0;
}

/* spawn; with agent, connect and open the channel too */
static int vm_start(vm *v, const char *id, const vm_spec *s, bool agent, silo_error *err)
{
	vm_init(v, id);
	if (qemu_provider.spawn(&v->sb, s, err) < 0)
		return -1;
	return vm_attach(v, agent, err);
}

static void check_clean(vm *v)
{
	char **res = NULL;
	qemu_provider.residue(&v->sb, &res);
	for (char **r = res; r && *r; r++)
		printf("# residue: %s\n", *r);
	CHECK(res == NULL);
	strv_free(res);
	CHECK(!path_exists(v->sb.rundir));
	CHECK(v->jailer <= 0 || kill(v->jailer, 0) < 0);
	cg_set cg;
	cg_paths(v->sb.id, &cg);
	for (int i = 0; i < cg.n; i++)
		CHECK(!path_exists(cg.path[i]));
}

static void vm_stop(vm *v)
{
	silo_error err = {0};
	if (v->sb.ch) {
		chan_close(v->sb.ch);
		v->sb.ch = NULL;
	}
	CHECK_INT_EQ(qemu_provider.terminate(&v->sb, 3000, &err), 0);
	check_clean(v);
}

/* sh -c SCRIPT in the guest (stdout and stderr in o); the exit code, -1 if the exec failed */
static int sh(vm *v, const char *script, outbuf *o)
{
	exec_result res;
	return sbt_exec_sh(stdout, &v->sb, script, 120000, o, &res) < 0 ? -1 : res.exit_code;
}

/* ---------------------------------------------------------------- the jail */

TEST(qemu_runs_unprivileged_and_sees_only_its_files)
{
	need_vm();
	vm a, b;
	vm_spec s;
	spec_base(&s, "jail");
	silo_error err = {0};
	REQUIRE(vm_start(&a, "ja", &s, true, &err) == 0);
	REQUIRE(vm_start(&b, "jb", &s, false, &err) == 0);
	pid_t q = proc_first_child(a.jailer), qb = proc_first_child(b.jailer);
	REQUIRE(q > 0 && qb > 0);
	char v[256];
	/* uid = gid: a per-sandbox id from the documented range, never 0; no groups; no
	 * capability of any kind, no_new_privs, two seccomp filters (QEMU's + the jailer's) */
	check_jailed_creds("qemu", q, qb, VM_UID_BASE, VM_UID_COUNT);
	REQUIRE(proc_value(q, "status", "Seccomp_filters:", v, sizeof v));
	CHECK(atoi(v) >= 2);
	/* its own mount, network, IPC and UTS namespaces */
	static const char *const nss[] = {"mnt", "net", "ipc", "uts"};
	for (size_t i = 0; i < ARRAY_SIZE(nss); i++)
		CHECK(!same_namespace(q, nss[i]));
	/* its root holds only its files: binary, libraries, firmware, kernel, initrd, /dev/null */
	char root[64];
	char **files = proc_root_files(q, root, sizeof root);
	size_t nfiles = 0;
	for (char **f = files; f && *f; f++, nfiles++) {
		const char *p = *f;
		bool ok = !strcmp(p, "/boot/kernel") || !strcmp(p, "/boot/initrd") || !strcmp(p, "/dev/null") ||
			  !strncmp(p, "/lib/", 5) || !strncmp(p, "/lib64/", 7) || !strncmp(p, "/usr/lib/", 9) ||
			  !strncmp(p, "/usr/bin/qemu-system-", 21) || !strncmp(p, "/usr/share/qemu/", 16);
		if (!ok)
			printf("# unexpected file in QEMU's root: %s\n", p);
		CHECK(ok);
	}
	printf("# QEMU's root holds %zu files\n", nfiles);
	CHECK(nfiles > 3 && nfiles < 120);
	strv_free(files);
	static const char *const absent[] = {"/etc", "/root", "/home", "/proc", "/sys", "/tmp", "/run", "/var"};
	check_absent_under(root, absent, ARRAY_SIZE(absent));
	/* every mount it sees is read-only */
	CHECK(check_mounts_read_only(q) > 3);
	/* its cgroup, and its rlimits */
	cleanup_free char *cgt = proc_text(q, "cgroup");
	REQUIRE(cgt);
	char want[128];
	snprintf(want, sizeof want, "/silo/%s", a.sb.id);
	CHECK_CONTAINS(cgt, want);
	REQUIRE(proc_value(q, "limits", "Max core file size", v, sizeof v));
	CHECK(!strncmp(v, "0 ", 2));
	REQUIRE(proc_value(q, "limits", "Max open files", v, sizeof v));
	CHECK(!strncmp(v, "1024 ", 5));
	REQUIRE(proc_value(q, "limits", "Max file size", v, sizeof v));
	CHECK(strtoull(v, NULL, 10) == (unsigned long long)SPEC_DISK_DEFAULT_MB << 20);
	/* and the guest still works */
	outbuf o;
	CHECK_INT_EQ(sh(&a, "echo hello from the jailed VM", &o), 0);
	CHECK_STR_EQ(o.data, "hello from the jailed VM\n");
	vm_stop(&a);
	vm_stop(&b);
}

TEST(qmp_cannot_open_host_files)
{
	need_vm();
	vm a;
	vm_spec s;
	spec_base(&s, "qmp");
	silo_error err = {0};
	REQUIRE(vm_start(&a, "qmp", &s, false, &err) == 0);
	char out[4096];
	/* hot-add a drive naming a host secret: the file does not exist in QEMU's root */
	qmp(a.sb.rundir,
	    "{\"execute\":\"blockdev-add\",\"arguments\":{\"driver\":\"file\",\"node-name\":\"x\","
	    "\"filename\":\"/etc/shadow\",\"read-only\":true}}",
	    out, sizeof out);
	printf("# blockdev-add /etc/shadow: %.200s\n", out);
	CHECK_CONTAINS(out, "\"error\"");
	CHECK_CONTAINS(out, "/etc/shadow");
	/* the same through the human monitor */
	qmp(a.sb.rundir,
	    "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":"
	    "\"drive_add 0 if=none,id=y,file=/etc/passwd,format=raw\"}}",
	    out, sizeof out);
	printf("# drive_add /etc/passwd: %.200s\n", out);
	CHECK(strstr(out, "Could not open") || strstr(out, "\"error\""));
	/* nor a way around it through /proc */
	qmp(a.sb.rundir,
	    "{\"execute\":\"blockdev-add\",\"arguments\":{\"driver\":\"file\",\"node-name\":\"z\","
	    "\"filename\":\"/proc/1/root/etc/shadow\",\"read-only\":true}}",
	    out, sizeof out);
	CHECK_CONTAINS(out, "\"error\"");
	/* its own kernel, opened for writing: a read-only file system */
	qmp(a.sb.rundir,
	    "{\"execute\":\"blockdev-add\",\"arguments\":{\"driver\":\"file\",\"node-name\":\"k\","
	    "\"filename\":\"/boot/kernel\"}}",
	    out, sizeof out);
	printf("# blockdev-add /boot/kernel read-write: %.200s\n", out);
	CHECK_CONTAINS(out, "\"error\"");
	/* creating a host file through a chardev */
	char host[128];
	snprintf(host, sizeof host, "/tmp/silo-jail-pwned-%d", (int)getpid());
	char *req = xasprintf("{\"execute\":\"chardev-add\",\"arguments\":{\"id\":\"c\",\"backend\":{\"type\":\"file\","
			      "\"data\":{\"out\":\"%s\"}}}}",
			      host);
	qmp(a.sb.rundir, req, out, sizeof out);
	free(req);
	CHECK_CONTAINS(out, "\"error\"");
	CHECK(!path_exists(host));
	/* QEMU survived all of it */
	qmp(a.sb.rundir, "{\"execute\":\"query-status\"}", out, sizeof out);
	CHECK_CONTAINS(out, "running");
	vm_stop(&a);
}

TEST(kill9_of_qemu_or_its_jailer_leaves_nothing)
{
	need_vm();
	vm_spec s;
	spec_base(&s, "k9");
	silo_error err = {0};
	/* QEMU killed: the jailer drains the logs, removes the cgroup and exits */
	vm a;
	REQUIRE(vm_start(&a, "k9q", &s, false, &err) == 0);
	pid_t q = proc_first_child(a.jailer);
	REQUIRE(q > 0);
	CHECK(kill(q, SIGKILL) == 0);
	uint64_t deadline = now_mono_ns() + 10000000000ull;
	while (qemu_provider.alive(&a.sb) && now_mono_ns() < deadline)
		usleep(10000);
	CHECK(!qemu_provider.alive(&a.sb));
	CHECK_INT_EQ(qemu_provider.terminate(&a.sb, 0, &err), 0);
	check_clean(&a);
	/* the jailer killed: QEMU dies with it (PR_SET_PDEATHSIG) */
	vm b;
	REQUIRE(vm_start(&b, "k9j", &s, false, &err) == 0);
	q = proc_first_child(b.jailer);
	REQUIRE(q > 0);
	CHECK(kill(b.jailer, SIGKILL) == 0);
	deadline = now_mono_ns() + 10000000000ull;
	char st[64];
	while (proc_value(q, "status", "State:", st, sizeof st) && st[0] != 'Z' && now_mono_ns() < deadline)
		usleep(10000);
	CHECK(!proc_value(q, "status", "State:", st, sizeof st) || st[0] == 'Z');
	CHECK_INT_EQ(qemu_provider.terminate(&b.sb, 0, &err), 0);
	check_clean(&b);
}

/* ---------------------------------------------------------------- serial log */

TEST(serial_log_is_capped_under_a_console_flood)
{
	need_vm();
	setenv("SILO_SERIAL_LOG_MAX", "131072", 1);   /* 128 KiB: a flood of ~700 KB stays fast under TCG */
	vm a;
	vm_spec s;
	spec_base(&s, "flood");
	silo_error err = {0};
	REQUIRE(vm_start(&a, "flood", &s, true, &err) == 0);
	char log[PATH_MAX + 16];
	snprintf(log, sizeof log, "%s/serial.log", a.sb.rundir);
	outbuf o;
	/* the guest writes ~720 KB to its console, then an end mark */
	CHECK_INT_EQ(sh(&a,
			"i=0; while [ $i -lt 4000 ]; do echo \"flood line $i ...................................."
			"............................................................................................"
			"..\"; i=$((i+1)); done > /dev/console; echo SILO-FLOOD-END > /dev/console",
			&o),
		     0);
	/* the relay drains asynchronously: wait for the end mark, checking the size all along */
	uint64_t deadline = now_mono_ns() + 60000000000ull;
	off_t biggest = 0;
	bool end = false;
	while (!end && now_mono_ns() < deadline) {
		struct stat st;
		if (stat(log, &st) == 0 && st.st_size > biggest)
			biggest = st.st_size;
		cleanup_free char *t = NULL;
		size_t n = 0;
		if (read_file(log, 1 << 20, &t, &n, NULL) == 0)
			end = strstr(t, "SILO-FLOOD-END") != NULL;
		if (!end)
			usleep(50000);
	}
	CHECK(end);
	printf("# serial.log never exceeded %lld bytes (cap 131072)\n", (long long)biggest);
	CHECK(biggest <= 131072);
	cleanup_free char *t = NULL;
	size_t n = 0;
	REQUIRE(read_file(log, 1 << 20, &t, &n, NULL) == 0);
	CHECK(n <= 131072);
	/* the head says what was dropped; the tail is the newest output */
	CHECK(!strncmp(t, "[silo: ", 7));
	CHECK_CONTAINS(t, "earlier bytes of this log were dropped");
	CHECK_CONTAINS(t, "flood line 3999 ");
	CHECK(strstr(t, "flood line 0 ") == NULL);
	char diag[4096];
	qemu_provider.diagnostics(&a.sb, diag, sizeof diag);
	CHECK_CONTAINS(diag, "SILO-FLOOD-END");
	vm_stop(&a);
	unsetenv("SILO_SERIAL_LOG_MAX");
}

/* ---------------------------------------------------------------- boot.cmdline */

/* An ext4 image holding a marker and an "init": the unsigned root an attacker offers. */
static void make_evil_disk(const char *dir, char *out, size_t len)
{
	char tree[PATH_MAX];
	snprintf(tree, sizeof tree, "%s/evil-tree", dir);
	snprintf(out, len, "%s/evil.img", dir);
	char *cmd = xasprintf("set -e; mkdir -p %s/sbin; echo pwned > %s/UNSIGNED-ROOT; "
			      "printf '#!/bin/sh\\necho pwned > /dev/console\\n' > %s/sbin/init; chmod 755 %s/sbin/init; "
			      "truncate -s 16M %s; mkfs.ext4 -q -F -d %s %s",
			      tree, tree, tree, tree, out, tree, out);
	int rc = system(cmd);
	free(cmd);
	REQUIRE(rc == 0);
}

static const char *const attacks[] = {
	"silo.root=/dev/vda", "root=/dev/vda rootfstype=ext4", "init=/sbin/init", "rdinit=/sbin/init",
	"quiet -- --channel /dev/ttyS0", "silo.scratch=/dev/vda", "retain-initrd", "resume=/dev/vda",
	"silo-root=/dev/vda", "rootwait", "resume_offset=8",
};

TEST(cmdline_cannot_choose_root_or_init_without_a_keyring)
{
	need_vm();
	vm a;
	char dir[] = "/tmp/silo-jail-evil-XXXXXX";
	REQUIRE(mkdtemp(dir));
	char disk[PATH_MAX];
	make_evil_disk(dir, disk, sizeof disk);
	vm_spec s;
	spec_base(&s, "cmd");
	s.n_drives = 1;
	s.drives[0].path = disk;
	s.drives[0].read_only = true;
	s.cmdline = "loglevel=4 silo.root=/dev/vda root=/dev/vda rootfstype=ext4 init=/sbin/init "
		    "rdinit=/sbin/init silo.scratch=/dev/vda -- --channel /dev/ttyS0";
	silo_error err = {0};
	/* the unsigned drive is vda; Silo's scratch disk is vdb */
	if (vm_start(&a, "cmd", &s, true, &err) < 0) {
		printf("# %s\n", err.message);
		qemu_provider.terminate(&a.sb, 0, NULL);
		REQUIRE(!"boot");
	}
	outbuf o;
	CHECK_INT_EQ(sh(&a, "cat /proc/cmdline", &o), 0);
	printf("# guest /proc/cmdline: %s", o.data);
	CHECK_CONTAINS(o.data, "loglevel=4");   /* harmless parameters pass */
	CHECK(!strstr(o.data, "silo.root"));
	CHECK(!strstr(o.data, "rdinit"));
	CHECK(!strstr(o.data, "init=/sbin/init"));
	CHECK(!strstr(o.data, "root=/dev/vda"));
	CHECK(!strstr(o.data, " -- "));
	CHECK_CONTAINS(o.data, "silo.scratch=/dev/vdb");
	CHECK(!strstr(o.data, "silo.scratch=/dev/vda"));
	/* PID 1 is the agent, the root is Silo's (the initramfs under the scratch disk) */
	CHECK_INT_EQ(sh(&a, "cat /proc/1/comm; test -e /UNSIGNED-ROOT && echo UNSIGNED; "
			    "grep -c ' / overlay ' /proc/mounts; test -x /.silo/lower/sbin/silo-agent && echo silo-lower",
			&o),
		     0);
	CHECK_STR_EQ(o.data, "silo-agent\n1\nsilo-lower\n");
	vm_stop(&a);
	char *cmd = xasprintf("rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	free(cmd);
}

static int hook_calls;
static char hook_msg[512];
static void hook(void *ud, const silo_error *e)
{
	(void)ud;
	hook_calls++;
	snprintf(hook_msg, sizeof hook_msg, "%s", e->message);
}

/* A private cache whose manifest (a copy of the real one) is signed by a fresh key
 * in a private keyring. */
static void signed_cache(const char *dir)
{
	char real[PATH_MAX], p[PATH_MAX + 64], q[PATH_MAX + 64];
	snprintf(real, sizeof real, "%s", silo_cache_dir());
	snprintf(p, sizeof p, "%s/cache/images", dir);
	REQUIRE(mkdir_p(p, 0755) == 0);
	snprintf(p, sizeof p, "%s/kernel", real);
	snprintf(q, sizeof q, "%s/cache/kernel", dir);
	REQUIRE(symlink(p, q) == 0);
	snprintf(p, sizeof p, "%s/images/manifest.json", real);
	cleanup_free char *m = NULL;
	size_t ml = 0;
	REQUIRE(read_file(p, 1 << 20, &m, &ml, NULL) == 0);
	snprintf(q, sizeof q, "%s/cache/images/manifest.json", dir);
	REQUIRE(write_file_atomic(q, m, ml, 0644, NULL) == 0);
	char pub[PATH_MAX + 16], key[PATH_MAX + 16], kr[PATH_MAX + 16];
	snprintf(pub, sizeof pub, "%s/k.pub", dir);
	snprintf(key, sizeof key, "%s/k.key", dir);
	snprintf(kr, sizeof kr, "%s/keyring", dir);
	silo_error err = {0};
	REQUIRE(trust_keygen(pub, key, NULL, &err) == 0);
	REQUIRE(trust_keyring_add(kr, pub, NULL, &err) == 0);
	trust_seckey sk;
	REQUIRE(trust_seckey_load(key, NULL, &sk, &err) == 0);
	/* versioned, as `silo trust sign` does: an unversioned manifest signature is refused */
	char *tc = trust_versioned_comment("manifest.json", (uint64_t)time(NULL), time(NULL) + TRUST_DEFAULT_EXPIRY_S);
	REQUIRE(trust_sign_file(&sk, q, NULL, tc, false, &err) == 0);
	free(tc);
	char cache[PATH_MAX + 16];
	snprintf(cache, sizeof cache, "%s/cache", dir);
	setenv("SILO_CACHE_DIR", cache, 1);
	setenv("SILO_KEYRING_DIR", kr, 1);
}

TEST(cmdline_choosing_root_or_init_is_refused_with_a_keyring)
{
	need_vm();
	char dir[] = "/tmp/silo-jail-trust-XXXXXX";
	REQUIRE(mkdtemp(dir));
	vm a;
	vm_init(&a, "trust");
	char disk[PATH_MAX];
	make_evil_disk(dir, disk, sizeof disk);
	signed_cache(dir);
	trust_set_violation_hook(hook, NULL);
	for (size_t i = 0; i < ARRAY_SIZE(attacks); i++) {
		for (int k = 0; k < 2; k++) {
			const provider_ops *ops = k ? &kvm_provider : &qemu_provider;
			vm_spec s;
			spec_base(&s, "trust");
			s.n_drives = 1;
			s.drives[0].path = disk;
			s.drives[0].read_only = true;
			s.cmdline = (char *)attacks[i];
			silo_error err = {0};
			hook_calls = 0;
			a.sb.pid = 0;
			if (ops->spawn(&a.sb, &s, &err) == 0) {
				printf("# %s booted with boot.cmdline \"%s\"\n", ops->name, attacks[i]);
				CHECK(!"refused");
				ops->terminate(&a.sb, 0, NULL);
				mkdir_p(a.sb.rundir, 0700);
				continue;
			}
			CHECK_INT_EQ(err.code, SILO_ERR_CHECKSUM_MISMATCH);
			CHECK_CONTAINS(err.message, "supply chain");
			CHECK_CONTAINS(err.message, "boot.cmdline");
			CHECK_INT_EQ(hook_calls, 1);
			CHECK_CONTAINS(hook_msg, "boot.cmdline");
			CHECK(a.sb.pid == 0 && a.sb.prov == NULL);
			if (i == 0)
				printf("# %s: %s\n", ops->name, err.message);
		}
	}
	/* nothing was started or created */
	DIR *d = opendir(a.sb.rundir);
	REQUIRE(d);
	int entries = 0;
	for (struct dirent *de; (de = readdir(d));)
		entries += de->d_name[0] != '.';
	closedir(d);
	CHECK_INT_EQ(entries, 0);
	rmdir(a.sb.rundir);
	/* the signed images themselves boot (the refusal is the command line's, not the keyring's) */
	vm_spec s;
	spec_base(&s, "trust");
	s.cmdline = "loglevel=4";
	silo_error err = {0};
	if (vm_start(&a, "trust", &s, true, &err) < 0)
		printf("# %s\n", err.message);
	CHECK(a.sb.ch != NULL);
	vm_stop(&a);
	trust_set_violation_hook(NULL, NULL);
	char *cmd = xasprintf("rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	free(cmd);
}

/* ---------------------------------------------------------------- disk budget */

TEST(disk_budget_enospc_in_the_guest_and_bounded_on_the_host)
{
	need_vm();
	vm a;
	vm_spec s;
	spec_base(&s, "disk");
	s.disk_mb = 48;
	silo_error err = {0};
	REQUIRE(vm_start(&a, "disk", &s, true, &err) == 0);
	char img[PATH_MAX + 16];
	snprintf(img, sizeof img, "%s/disk.img", a.sb.rundir);
	struct stat st;
	REQUIRE(stat(img, &st) == 0);
	CHECK_INT_EQ(st.st_size, 48ll << 20);
	/* the root is the overlay on it; its lower layer (the initramfs, in RAM) is read-only */
	outbuf o;
	CHECK_INT_EQ(sh(&a, "grep -c ' / overlay ' /proc/mounts; touch /.silo/lower/x 2>/dev/null && echo lower-writable "
			    "|| echo lower-ro", &o),
		     0);
	CHECK_STR_EQ(o.data, "1\nlower-ro\n");
	/* fill it from the guest */
	int rc = sh(&a, "dd if=/dev/zero of=/fill bs=1M count=200 2>&1 | grep -v records", &o);
	printf("# dd (exit %d): %s", rc, o.data);
	CHECK_CONTAINS(o.data, "No space left on device");
	CHECK_INT_EQ(sh(&a, "sync; stat -c %s /fill", &o), 0);
	unsigned long long written = strtoull(o.data, NULL, 10);
	printf("# the guest wrote %llu bytes before ENOSPC (disk_mb 48)\n", written);
	CHECK(written > (40ull << 20) && written <= (48ull << 20));
	/* the host file never grows past the budget */
	REQUIRE(stat(img, &st) == 0);
	CHECK_INT_EQ(st.st_size, 48ll << 20);
	printf("# disk.img: %lld bytes apparent, %lld allocated\n", (long long)st.st_size,
	       (long long)st.st_blocks * 512);
	CHECK((unsigned long long)st.st_blocks * 512 <= (48ull << 20) + (1u << 20));
	/* QEMU itself cannot grow any file past it either */
	char v[128];
	REQUIRE(proc_value(proc_first_child(a.jailer), "limits", "Max file size", v, sizeof v));
	CHECK_INT_EQ(strtoull(v, NULL, 10), 48ll << 20);
	/* uploads count against the budget */
	size_t up = 8u << 20;
	char *buf = xcalloc(1, up);
	silo_error e2 = {0};
	CHECK_INT_EQ(chan_file_write(a.sb.ch, "/upload.bin", buf, up, 0644, &e2), -1);
	printf("# upload into a full disk: %s\n", e2.message);
	CHECK_INT_EQ(sh(&a, "rm /fill", &o), 0);
	silo_error e3 = {0};
	CHECK_INT_EQ(chan_file_write(a.sb.ch, "/upload.bin", buf, up, 0644, &e3), 0);
	free(buf);
	vm_stop(&a);
}

TEST(sparse_writable_drives_count_against_the_budget)
{
	need_vm();
	vm a;
	vm_init(&a, "sparse");
	char d1[PATH_MAX + 16], d2[PATH_MAX + 16];
	snprintf(d1, sizeof d1, "%s.sparse.img", a.sb.rundir);
	snprintf(d2, sizeof d2, "%s.small.img", a.sb.rundir);
	int fd = open(d1, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	REQUIRE(fd >= 0 && ftruncate(fd, 200ll << 20) == 0);
	close(fd);
	fd = open(d2, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	REQUIRE(fd >= 0 && ftruncate(fd, 20ll << 20) == 0);
	close(fd);
	vm_spec s;
	spec_base(&s, "sparse");
	s.disk_mb = 64;
	s.n_drives = 1;
	s.drives[0].path = d1;   /* writable, could grow the host disk by 200 MiB */
	silo_error err = {0};
	CHECK_INT_EQ(qemu_provider.spawn(&a.sb, &s, &err), -1);
	CHECK_INT_EQ(err.code, SILO_ERR_INVALID_CONFIG);
	CHECK_CONTAINS(err.message, "disk_mb");
	CHECK_CONTAINS(err.message, "drives");
	CHECK(a.sb.pid == 0);
	/* 20 MiB of possible growth: the scratch disk gets the other 44 */
	s.drives[0].path = d2;
	REQUIRE(vm_start(&a, "sparse", &s, false, &err) == 0);
	char img[PATH_MAX + 16];
	snprintf(img, sizeof img, "%s/disk.img", a.sb.rundir);
	struct stat st;
	REQUIRE(stat(img, &st) == 0);
	CHECK_INT_EQ(st.st_size, 44ll << 20);
	vm_stop(&a);
	unlink(d1);
	unlink(d2);
}

TEST(scratch_disk_survives_snapshot_and_restore)
{
	need_vm();
	vm a, b;
	vm_spec s;
	spec_base(&s, "snap");
	silo_error err = {0};
	REQUIRE(vm_start(&a, "snapa", &s, true, &err) == 0);
	a.sb.spec = s;   /* what sandbox_create would have kept: the snapshot records its size */
	outbuf o;
	CHECK_INT_EQ(sh(&a, "echo kept-on-the-scratch-disk > /data.txt && sync", &o), 0);
	char dir[] = "/tmp/silo-jail-snap-XXXXXX";
	REQUIRE(mkdtemp(dir));
	chan_close(a.sb.ch);
	a.sb.ch = NULL;
	REQUIRE(qemu_provider.pause(&a.sb, &err) == 0);
	if (qemu_provider.snapshot(&a.sb, dir, &err) < 0)
		printf("# snapshot: %s\n", err.message);
	vm_stop(&a);
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/disk.sparse", dir);
	struct stat st;
	REQUIRE(stat(p, &st) == 0);
	printf("# disk.sparse: %lld bytes for a %d MiB disk\n", (long long)st.st_size, SPEC_DISK_DEFAULT_MB);
	CHECK(st.st_size > 0 && st.st_size < (32ll << 20));
	vm_init(&b, "snapb");
	if (qemu_provider.restore(&b.sb, &s, dir, &err) < 0) {
		printf("# restore: %s\n", err.message);
		REQUIRE(!"restore");
	}
	REQUIRE(vm_attach(&b, true, &err) == 0);
	CHECK_INT_EQ(sh(&b, "cat /data.txt", &o), 0);
	CHECK_STR_EQ(o.data, "kept-on-the-scratch-disk\n");
	snprintf(p, sizeof p, "%s/disk.img", b.sb.rundir);
	REQUIRE(stat(p, &st) == 0);
	CHECK_INT_EQ(st.st_size, (long long)SPEC_DISK_DEFAULT_MB << 20);
	vm_stop(&b);
	char *cmd = xasprintf("rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	free(cmd);
}

TEST(kvm_acceleration_needs_dev_kvm_usable_by_the_jail)
{
	need_vm();
	struct stat st;
	if (stat("/dev/kvm", &st) < 0)
		SKIP("no /dev/kvm on this host");
	bool root_only = (st.st_mode & 0006) != 0006 && !((st.st_mode & 0060) == 0060 && st.st_gid != 0);
	setenv("SILO_QEMU_ACCEL", "kvm", 1);
	vm a;
	vm_spec s;
	spec_base(&s, "kvm");
	silo_error err = {0};
	if (root_only) {
		vm_init(&a, "kvm");
		CHECK_INT_EQ(qemu_provider.spawn(&a.sb, &s, &err), -1);
		CHECK_INT_EQ(err.code, SILO_ERR_PROVIDER_UNAVAILABLE);
		CHECK_CONTAINS(err.message, "/dev/kvm");
		printf("# /dev/kvm mode %o: %s\n", st.st_mode & 0777, err.message);
		CHECK(a.sb.pid == 0);
		rmdir(a.sb.rundir);
	} else {
		/* QEMU starts under KVM in its jail, /dev/kvm is the one device node besides /dev/null */
		REQUIRE(vm_start(&a, "kvm", &s, false, &err) == 0);
		char p[64];
		snprintf(p, sizeof p, "/proc/%d/root/dev/kvm", (int)proc_first_child(a.jailer));
		CHECK(path_exists(p));
		vm_stop(&a);
	}
	unsetenv("SILO_QEMU_ACCEL");
}

TEST_MAIN(qemu_runs_unprivileged_and_sees_only_its_files, qmp_cannot_open_host_files,
	  kill9_of_qemu_or_its_jailer_leaves_nothing, serial_log_is_capped_under_a_console_flood,
	  cmdline_cannot_choose_root_or_init_without_a_keyring, cmdline_choosing_root_or_init_is_refused_with_a_keyring,
	  disk_budget_enospc_in_the_guest_and_bounded_on_the_host, sparse_writable_drives_count_against_the_budget,
	  scratch_disk_survives_snapshot_and_restore, kvm_acceleration_needs_dev_kvm_usable_by_the_jail)
