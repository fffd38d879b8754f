/* SPDX-License-Identifier: Apache-2.0
 * The kvm provider: probe on this host (PVM => unavailable with a reason unless
 * SILO_KVM_FORCE=1), and spawn / connect / terminate of a real silo-vmm with the
 * project kernel (which only reaches early boot on PVM: connect must time out
 * with BOOT_TIMEOUT, terminate must leave nothing behind).
 * The jail (issue 21), with the in-tree payloads (tests/guest) as the guest: silo-vmm's
 * uid, capabilities, no_new_privs, seccomp, namespaces, root, cgroup and rlimits read from
 * /proc; host files asked for over its API (/etc/shadow as a drive, a snapshot into the
 * host); kill -9 of the VMM and of its relay; snapshot and restore through the jail;
 * reattach after a manager restart; spawn and restore from a thread that ends at once (silod
 * serves each request on a thread of its own): the VMM outlives it.
 */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>

#include "common/cgroup.h"
#include "common/util.h"
#include "core/provider.h"
#include "core/sandbox.h"
#include "image/image.h"
#include "harness.h"
#include "providers/ns.h"
#include "providers/vm.h"
#include "snapshot/snapshot.h"
#include "vmm_test.h"

TEST(probe_says_why)
{
	const provider_ops *p = provider_find("kvm");
	REQUIRE(p);
	unsetenv("SILO_KVM_FORCE");
	provider_info info = {.name = "kvm"};
	p->probe(&info);
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		CHECK(!info.available);
		CHECK_CONTAINS(info.reason, "/dev/kvm");
		return;
	}
	close(fd);
	if (hw_virt()) {
		CHECK(info.available);
		CHECK_STR_EQ(info.accel, "kvm");
	} else {
		CHECK(!info.available);
		CHECK_CONTAINS(info.reason, "PVM host: guest ring 0 is emulated; Linux guests cannot reach userspace");
		setenv("SILO_KVM_FORCE", "1", 1);
		provider_info f = {.name = "kvm"};
		p->probe(&f);
		CHECK(f.available);
		CHECK_STR_EQ(f.accel, "pvm");
		/* auto selection skips kvm here and says why */
		unsetenv("SILO_KVM_FORCE");
		char why[1024];
		silo_error err = {0};
		provider_select(NULL, "kvm,namespace", why, sizeof why, &err);
		CHECK_CONTAINS(why, "kvm: PVM host");
	}
}

/* GET / on silo-vmm's API socket (with curl, a real third-party client) contains want. */
static bool api_state_is(const char *rundir, const char *want)
{
	char cmd[4400];
	snprintf(cmd, sizeof cmd, "curl -s --max-time 5 --unix-socket %s/api.sock http://localhost/ | grep -qF '%s'",
		 rundir, want);
	return system(cmd) == 0;
}

/* silo-vmm's argv (NUL-separated): spawn returns after fork, so wait for the child's execve. */
static char *vmm_argv(pid_t pid, size_t *alen)
{
	char procf[64];
	snprintf(procf, sizeof procf, "/proc/%d/cmdline", (int)pid);
	char *argv = NULL;
	for (int i = 0; i < 500; i++) {
		free(argv);
		argv = NULL;
		if (read_file(procf, 1 << 16, &argv, alen, NULL) < 0)
			break;
		if (memmem(argv, *alen, "--serial-log-max", 16))
			return argv;
		usleep(10000);
	}
	return argv ? argv : xstrdup("");
}

/* A kvm sandbox named ID with a fresh run dir under /tmp, and a 1-vCPU 256 MiB spec. */
static int kvm_sandbox(sandbox *sb, vm_spec *spec, const char *id)
{
	memset(sb, 0, sizeof *sb);
	memset(spec, 0, sizeof *spec);
	snprintf(sb->id, sizeof sb->id, "%s", id);
	snprintf(sb->rundir, sizeof sb->rundir, "/tmp/silo-%s-XXXXXX", id);
	spec->memory_mb = 256;
	spec->vcpus = 1;
	return mkdtemp(sb->rundir) ? 0 : -1;
}

TEST(spawn_connect_timeout_terminate_clean)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		SKIP("/dev/kvm cannot be opened");
	close(fd);
	char kernel[4096];
	snprintf(kernel, sizeof kernel, "%s/kernel/current/vmlinux", silo_cache_dir());
	if (access(kernel, R_OK) != 0)
		SKIP("no guest kernel at %s", kernel);
	if (hw_virt())
		SKIP("hardware virtualization present: the kernel would boot for real (covered by the e2e tests)");
	static sandbox sb;
	vm_spec spec;
	REQUIRE(kvm_sandbox(&sb, &spec, "kvmtest") == 0);
	const provider_ops *p = provider_find("kvm");
	spec.kernel = kernel;
	spec.cmdline = (char *)"noxsave rdinit=/bin/sh";
	silo_error err = {0};
	REQUIRE(p->spawn(&sb, &spec, &err) == 0);
	CHECK(sb.pid > 0);
	CHECK(p->alive(&sb));
	/* what silo-vmm was given: the user's parameters minus rdinit, then Silo's (the scratch
	 * disk is vda: no other drive), the scratch disk relative to its working directory (the
	 * run dir), a capped serial log */
	char procf[64], cwd[4200] = "";
	size_t alen = 0;
	cleanup_free char *argv = vmm_argv(sb.pid, &alen);
	bool saw_cmdline = false, saw_drive = false, saw_max = false;
	for (size_t o = 0; o < alen; o += strlen(argv + o) + 1) {
		const char *a = argv + o;
		if (!strcmp(a, "noxsave console=ttyS0 reboot=k panic=-1 quiet silo.scratch=/dev/vda"))
			saw_cmdline = true;
		saw_drive = saw_drive || !strcmp(a, "disk.img,id=silo-scratch");
		saw_max = saw_max || !strcmp(a, "16777216");
		CHECK(!strstr(a, "rdinit"));
	}
	CHECK(saw_cmdline && saw_drive && saw_max);
	snprintf(procf, sizeof procf, "/proc/%d/cwd", (int)sb.pid);
	CHECK(readlink(procf, cwd, sizeof cwd - 1) > 0 && !strcmp(cwd, sb.rundir));
	char disk[4200];
	snprintf(disk, sizeof disk, "%s/disk.img", sb.rundir);
	struct stat dst;
	CHECK(stat(disk, &dst) == 0 && dst.st_size == (off_t)SPEC_DISK_DEFAULT_MB << 20);
	/* Linux stays in early boot here: the agent never answers */
	int c = p->connect(&sb, 1500, &err);
	CHECK(c < 0);
	CHECK_INT_EQ(err.code, SILO_ERR_BOOT_TIMEOUT);
	char serial[4200];
	snprintf(serial, sizeof serial, "%s/serial.log", sb.rundir);
	cleanup_free char *log = NULL;
	size_t n = 0;
	CHECK(read_file(serial, 1 << 20, &log, &n, NULL) == 0);
	/* Pause and resume through silo-vmm's API socket; its GET / reports the state. */
	CHECK(p->pause(&sb, &err) == 0);
	CHECK(api_state_is(sb.rundir, "\"state\":\"Paused\""));
	CHECK(api_state_is(sb.rundir, "\"id\":\"silo-kvmtest\""));
	CHECK(p->pause(&sb, &err) == 0); /* idempotent */
	/* Snapshot (paused) and restore into a second sandbox: a new silo-vmm maps the saved RAM
	 * copy-on-write and carries on from the same point of the (early-boot) kernel. */
	char snapdir[] = "/tmp/silo-kvm-snap-XXXXXX";
	REQUIRE(mkdtemp(snapdir));
	CHECK(p->snapshot(&sb, snapdir, &err) == 0);
	char f[4200];
	snprintf(f, sizeof f, "%s/vm.mem", snapdir);
	CHECK(access(f, R_OK) == 0);
	snprintf(f, sizeof f, "%s/vm.state", snapdir);
	CHECK(access(f, R_OK) == 0);
	snprintf(f, sizeof f, "%s/disk.sparse", snapdir);   /* the scratch disk, compact */
	CHECK(stat(f, &dst) == 0 && dst.st_size < (32 << 20));
	CHECK(p->resume(&sb, &err) == 0);
	CHECK(api_state_is(sb.rundir, "\"state\":\"Running\""));
	static sandbox sb2;
	memset(&sb2, 0, sizeof sb2);
	snprintf(sb2.id, sizeof sb2.id, "kvmrestored");
	snprintf(sb2.rundir, sizeof sb2.rundir, "/tmp/silo-kvm-prov2-XXXXXX");
	REQUIRE(mkdtemp(sb2.rundir));
	CHECK(p->restore(&sb2, &spec, snapdir, &err) == 0);
	CHECK(p->alive(&sb2));
	CHECK(api_state_is(sb2.rundir, "\"state\":\"Running\""));
	CHECK(api_state_is(sb2.rundir, "\"id\":\"silo-kvmrestored\""));
	char cfgcmd[4400];
	snprintf(cfgcmd, sizeof cfgcmd, "curl -s --max-time 5 --unix-socket %s/api.sock http://localhost/vm/config | grep -qF '\"mem_size_mib\":256'",
		 sb2.rundir);
	CHECK_INT_EQ(system(cfgcmd), 0);
	snprintf(disk, sizeof disk, "%s/disk.img", sb2.rundir);   /* its own copy of the scratch disk */
	CHECK(stat(disk, &dst) == 0 && dst.st_size == (off_t)SPEC_DISK_DEFAULT_MB << 20);
	pid_t pid2 = sb2.pid;
	CHECK(p->terminate(&sb2, 2000, &err) == 0);
	CHECK(kill(pid2, 0) != 0);
	CHECK(access(sb2.rundir, F_OK) != 0);
	/* A corrupt snapshot is refused and leaves nothing behind. */
	snprintf(f, sizeof f, "%s/vm.state", snapdir);
	FILE *fp = fopen(f, "r+");
	REQUIRE(fp);
	fseek(fp, 100, SEEK_SET);
	fputc('X', fp);
	fclose(fp);
	REQUIRE(mkdtemp(strcpy(sb2.rundir, "/tmp/silo-kvm-prov3-XXXXXX")));
	CHECK(p->restore(&sb2, &spec, snapdir, &err) == -1);
	CHECK_CONTAINS(err.message, "vm.state");
	CHECK(access(sb2.rundir, F_OK) != 0);
	snprintf(f, sizeof f, "rm -rf %s", snapdir);
	CHECK_INT_EQ(system(f), 0);
	char diag[512];
	p->diagnostics(&sb, diag, sizeof diag);
	CHECK_CONTAINS(diag, "silo-vmm");
	pid_t pid = sb.pid;
	CHECK(p->terminate(&sb, 2000, &err) == 0);
	CHECK(kill(pid, 0) != 0);
	CHECK(access(sb.rundir, F_OK) != 0); /* rundir and its files are gone */
	/* bad spec fields are named */
	spec.kernel = (char *)"/nonexistent/vmlinux";
	CHECK(p->spawn(&sb, &spec, &err) == -1);
	CHECK_CONTAINS(err.message, "boot.kernel");
}

/* An ext4 image (python, or an imported one): its root disk is the first drive,
 * read-only (any number of sandboxes share the file), named by silo.root=; the
 * scratch disk follows; the image's loader is the initrd. Under PVM the kernel
 * stays in early boot: what silo-vmm was given is the check. */
TEST(ext4_image_root_disk_read_only)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		SKIP("/dev/kvm cannot be opened");
	close(fd);
	image_entry e;
	silo_error err = {0};
	if (image_lookup("python", &e, &err) < 0 || e.kind != IMAGE_KIND_EXT4)
		SKIP("no ext4 image \"python\" in %s (scripts/prepare-images.sh)", silo_cache_dir());
	if (hw_virt())
		SKIP("hardware virtualization present: the image would boot for real (covered by the e2e tests)");
	static sandbox sb;
	vm_spec spec;
	REQUIRE(kvm_sandbox(&sb, &spec, "kvmext4") == 0);
	const provider_ops *p = provider_find("kvm");
	spec.image = (char *)"python";
	spec.cmdline = (char *)"noxsave";
	REQUIRE(p->spawn(&sb, &spec, &err) == 0);
	size_t alen = 0;
	cleanup_free char *argv = vmm_argv(sb.pid, &alen);
	char rootro[4200];
	snprintf(rootro, sizeof rootro, "%s,ro", e.file.path);
	int drive = 0, root_at = -1, scratch_at = -1;
	bool cmd_ok = false, initrd_ok = false;
	const char *prev = "";
	for (size_t o = 0; o < alen; o += strlen(argv + o) + 1) {
		const char *a = argv + o;
		if (!strcmp(prev, "--drive")) {
			if (!strcmp(a, rootro))
				root_at = drive;
			if (!strcmp(a, "disk.img,id=silo-scratch"))
				scratch_at = drive;
			drive++;
		}
		if (!strcmp(prev, "--initrd"))
			initrd_ok = !strcmp(a, e.initrd.path);
		if (strstr(a, "console=ttyS0") && strstr(a, "silo.root=/dev/vda silo.scratch=/dev/vdb"))
			cmd_ok = true;
		prev = a;
	}
	CHECK_INT_EQ(root_at, 0);
	CHECK_INT_EQ(scratch_at, 1);
	CHECK(cmd_ok);
	CHECK(initrd_ok);
	pid_t pid = sb.pid;
	CHECK(p->terminate(&sb, 1000, &err) == 0);
	CHECK(kill(pid, 0) != 0);
	image_entry_free(&e);
}

/* ---------------------------------------------------------------- the jail */

static void need_jail(void)
{
	need_kvm();
	if (geteuid() != 0)
		SKIP("the kvm provider runs silo-vmm jailed, which needs root");
}

/* Spawn a sandbox whose "kernel" is an in-tree payload (it runs here, unlike Linux). */
static void spawn_payload(sandbox *sb, const char *id, const char *name)
{
	memset(sb, 0, sizeof *sb);
	snprintf(sb->id, sizeof sb->id, "%s", id);
	snprintf(sb->rundir, sizeof sb->rundir, "/tmp/silo-kvm-jail-XXXXXX");
	REQUIRE(mkdtemp(sb->rundir));
	vm_spec spec;
	memset(&spec, 0, sizeof spec);
	spec.kernel = (char *)payload(name);
	spec.memory_mb = 128;
	spec.vcpus = 1;
	silo_error err = {0};
	const provider_ops *p = provider_find("kvm");
	if (p->spawn(sb, &spec, &err) != 0)
		printf("# spawn: %s\n", err.message);
	REQUIRE(sb->pid > 0);
}

/* The jailed VMM: the relay's only child, once it is up (its API socket exists). */
static pid_t jailed_vmm(const sandbox *sb)
{
	char api[4200];
	snprintf(api, sizeof api, "%s/api.sock", sb->rundir);
	for (int i = 0; i < 1000; i++) {
		pid_t c = access(api, F_OK) == 0 ? proc_first_child(sb->pid) : 0;
		/* past its jail: the relay's child has dropped to its uid */
		char uid[128];
		if (c > 0 && proc_value(c, "status", "Uid:", uid, sizeof uid) && atoi(uid) != 0)
			return c;
		usleep(5000);
	}
	return 0;
}


/* One request to a silo-vmm API socket; the status, the response in out. */
static int http(const char *sock, const char *method, const char *path, const char *body, char *out, size_t len)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
	out[0] = 0;
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	char req[4096];
	int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n%s", method,
			 path, strlen(body), body);
	size_t got = 0;
	if (write_all(fd, req, (size_t)n) == 0)
		for (ssize_t r; got < len - 1 && (r = read(fd, out + got, len - 1 - got)) > 0;)
			got += (size_t)r;
	close(fd);
	out[got] = 0;
	int status = -1;
	sscanf(out, "HTTP/1.1 %d", &status);
	printf("# %s %s -> %d %s\n", method, path, status, strstr(out, "{") ? strstr(out, "{") : "");
	return status;
}

TEST(jailed_vmm_runs_unprivileged_and_sees_only_its_files)
{
	need_jail();
	const provider_ops *p = provider_find("kvm");
	static sandbox a, b;
	spawn_payload(&a, "kvmjaila", "ticker.elf");
	spawn_payload(&b, "kvmjailb", "ticker.elf");
	pid_t v = jailed_vmm(&a), vb = jailed_vmm(&b);
	REQUIRE(v > 0 && vb > 0);
	char s[256];
	/* the relay runs in its own session (the sandbox outlives a silod restart) */
	REQUIRE(proc_value(a.pid, "status", "NSsid:", s, sizeof s));
	CHECK_INT_EQ(atoi(s), a.pid);
	/* uid = gid: leased from the VM range, one per sandbox, never 0; no groups; no capability
	 * of any kind, no_new_privs, its seccomp filter */
	unsigned r = check_jailed_creds("silo-vmm", v, vb, VM_UID_BASE, VM_UID_COUNT);
	/* every thread (vCPU, API, vsock): none kept root or escaped the filter (credentials,
	 * capabilities and seccomp are per thread). They start after the uid drop that
	 * jailed_vmm saw: wait for them. */
	for (int i = 0; i < 500 && proc_value(v, "status", "Threads:", s, sizeof s) && atoi(s) < 3; i++)
		usleep(10000);
	char taskdir[64];
	snprintf(taskdir, sizeof taskdir, "/proc/%d/task", (int)v);
	DIR *td = opendir(taskdir);
	REQUIRE(td);
	int nthreads = 0;
	for (struct dirent *de; (de = readdir(td));) {
		if (de->d_name[0] == '.')
			continue;
		char f[96];
		snprintf(f, sizeof f, "task/%s/status", de->d_name);
		nthreads++;
		REQUIRE(proc_value(v, f, "Uid:", s, sizeof s));
		CHECK_INT_EQ((unsigned)atol(s), r);
		REQUIRE(proc_value(v, f, "CapEff:", s, sizeof s));
		CHECK_STR_EQ(s, "0000000000000000");
		REQUIRE(proc_value(v, f, "CapBnd:", s, sizeof s));
		CHECK_STR_EQ(s, "0000000000000000");
		REQUIRE(proc_value(v, f, "NoNewPrivs:", s, sizeof s));
		CHECK_STR_EQ(s, "1");
		REQUIRE(proc_value(v, f, "Seccomp:", s, sizeof s));
		CHECK_STR_EQ(s, "2");
	}
	closedir(td);
	printf("# silo-vmm runs %d threads\n", nthreads);
	CHECK(nthreads >= 3); /* main, vCPU 0, API (and vsock) */
	/* its own pid (it is pid 1 there), mount, IPC and UTS namespaces; a network namespace of
	 * its own only where the kernel lacks Landlock ABI 6 (abstract unix sockets scoped) */
	static const char *const nss[] = {"pid", "mnt", "ipc", "uts"};
	for (size_t i = 0; i < ARRAY_SIZE(nss); i++)
		CHECK(!same_namespace(v, nss[i]));
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, 1 /* LANDLOCK_CREATE_RULESET_VERSION */);
	printf("# Landlock ABI %ld: %s\n", abi, abi >= 6 ? "scoped, the host's network namespace" : "own network namespace");
	CHECK(abi >= 6 || !same_namespace(v, "net"));
	REQUIRE(proc_value(v, "status", "NSpid:", s, sizeof s));
	CHECK_CONTAINS(s, "\t1");
	/* its root is RUNDIR/jail, read-only, holding nothing but its vsock socket */
	char root[64];
	char **files = proc_root_files(v, root, sizeof root);
	for (char **f = files; f && *f; f++) {
		printf("# in silo-vmm's root: %s\n", *f);
		CHECK_STR_EQ(*f, "/vsock.sock");
	}
	CHECK_INT_EQ((int)strv_len(files), 1);
	strv_free(files);
	static const char *const absent[] = {"/etc", "/proc", "/sys", "/dev", "/tmp", "/root", "/run", "/usr"};
	check_absent_under(root, absent, ARRAY_SIZE(absent));
	CHECK_INT_EQ(check_mounts_read_only(v), 1); /* one mount: the jail root */
	/* the old root is detached: ".." of its root is its root (before the detach it led to the
	 * host's "/"), and the process that detached it (root, outside the seccomp filter) is
	 * gone: the VMM has no child left */
	char dot[96], dotdot[96];
	snprintf(dot, sizeof dot, "%s/.", root);
	snprintf(dotdot, sizeof dotdot, "%s/..", root);
	struct stat sd, sdd;
	REQUIRE(stat(dot, &sd) == 0 && stat(dotdot, &sdd) == 0);
	CHECK(sd.st_dev == sdd.st_dev && sd.st_ino == sdd.st_ino);
	char children[96];
	snprintf(children, sizeof children, "/proc/%d/task/%d/children", (int)v, (int)v);
	bool childless = false;
	for (int i = 0; i < 200 && !childless; i++) {
		cleanup_free char *kids = NULL;
		size_t kl = 0;
		childless = read_file(children, 4096, &kids, &kl, NULL) == 0 && kl == 0;
		if (!childless)
			usleep(10000);
	}
	CHECK(childless);
	/* no descriptor it holds is a directory (an fd to a host directory would lead out) */
	char fdd[64];
	snprintf(fdd, sizeof fdd, "/proc/%d/fd", (int)v);
	int nfd = 0;
	for (int fd = 0; fd < 512; fd++) {
		char fp[96];
		struct stat st;
		snprintf(fp, sizeof fp, "%s/%d", fdd, fd);
		if (stat(fp, &st) == 0) {
			nfd++;
			CHECK(!S_ISDIR(st.st_mode));
		}
	}
	CHECK(nfd > 3);
	/* its cgroup silo/<id>, sized for RAM + overhead; rlimits */
	REQUIRE(proc_value(v, "cgroup", "", s, sizeof s));
	cleanup_free char *cgs = proc_text(v, "cgroup");
	REQUIRE(cgs);
	CHECK_CONTAINS(cgs, "/silo/kvmjaila");
	cg_set cg;
	cg_paths("kvmjaila", &cg);
	if (!cg.v2) {
		char lim[PATH_MAX + 32];
		snprintf(lim, sizeof lim, "/sys/fs/cgroup/memory/silo/kvmjaila/memory.limit_in_bytes");
		cleanup_free char *lv = NULL;
		size_t ll = 0;
		REQUIRE(read_file(lim, 64, &lv, &ll, NULL) == 0);
		CHECK_INT_EQ(atoll(lv), (128LL + 512) << 20);
	}
	REQUIRE(proc_value(v, "limits", "Max open files", s, sizeof s));
	CHECK(!strncmp(s, "256", 3));
	REQUIRE(proc_value(v, "limits", "Max core file size", s, sizeof s));
	CHECK(s[0] == '0');
	REQUIRE(proc_value(v, "limits", "Max file size", s, sizeof s));
	CHECK(atoll(s) >= (long long)SPEC_DISK_DEFAULT_MB << 20 && atoll(s) < (1LL << 34));
	silo_error err = {0};
	CHECK(p->terminate(&a, 2000, &err) == 0);
	CHECK(p->terminate(&b, 2000, &err) == 0);
	CHECK(kill(v, 0) != 0 && kill(vb, 0) != 0);
	CHECK(access(a.rundir, F_OK) != 0 && access(b.rundir, F_OK) != 0);
}

TEST(api_cannot_make_the_jailed_vmm_open_host_files)
{
	need_jail();
	/* 1. The provider's running VM: no drives after start, no snapshot into the host. */
	const provider_ops *p = provider_find("kvm");
	static sandbox a;
	spawn_payload(&a, "kvmapiatk", "ticker.elf");
	REQUIRE(jailed_vmm(&a) > 0);
	char api[4200], out[2048], body[1024];
	snprintf(api, sizeof api, "%s/api.sock", a.rundir);
	CHECK_INT_EQ(http(api, "PUT", "/drives/x", "{\"drive_id\":\"x\",\"path_on_host\":\"/etc/shadow\",\"is_root_device\":false,\"is_read_only\":true}", out, sizeof out), 400);
	CHECK_INT_EQ(http(api, "PATCH", "/vm", "{\"state\":\"Paused\"}", out, sizeof out), 204);
	char pwn[] = "/tmp/silo-kvm-pwn-XXXXXX";
	REQUIRE(mkdtemp(pwn));
	snprintf(body, sizeof body, "{\"snapshot_path\":\"%s/s\",\"mem_file_path\":\"%s/m\"}", pwn, pwn);
	CHECK_INT_EQ(http(api, "PUT", "/snapshot/create", body, out, sizeof out), 400);
	CHECK_CONTAINS(out, pwn);
	char f[128];
	snprintf(f, sizeof f, "%s/s", pwn);
	CHECK(access(f, F_OK) != 0); /* nothing appeared on the host */
	snprintf(f, sizeof f, "%s/m", pwn);
	CHECK(access(f, F_OK) != 0);
	rmdir(pwn);
	/* nor inside its own root (read-only) */
	CHECK_INT_EQ(http(api, "PUT", "/snapshot/create", "{\"snapshot_path\":\"/s\",\"mem_file_path\":\"/m\"}", out, sizeof out), 400);
	CHECK_INT_EQ(http(api, "PATCH", "/vm", "{\"state\":\"Resumed\"}", out, sizeof out), 204);
	silo_error err = {0};
	CHECK(p->terminate(&a, 2000, &err) == 0);

	/* 2. A jailed silo-vmm configured over its API (as the provider's restores run): the
	 * paths a request names are resolved inside the jail root. */
	char dir[] = "/tmp/silo-kvm-apij-XXXXXX";
	REQUIRE(mkdtemp(dir));
	char jail[128], sock[128];
	snprintf(jail, sizeof jail, "%s/jail", dir);
	snprintf(sock, sizeof sock, "%s/api.sock", dir);
	REQUIRE(mkdir(jail, 0755) == 0);
	uid_t uid;
	int lease = -1;
	REQUIRE(vm_uid_lease("kvmapiatk2", &uid, &lease, &err) == 0);
	char us[16];
	snprintf(us, sizeof us, "%u", (unsigned)uid);
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		execl(vmm_path, vmm_path, "--api-sock", sock, "--jail", jail, "--uid", us, "--gid", us, "--id", "silo-kvmapiatk2",
		      (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 1000 && access(sock, F_OK) != 0; i++)
		usleep(5000);
	snprintf(body, sizeof body, "{\"kernel_image_path\":\"%s\"}", payload("ticker.elf"));
	CHECK_INT_EQ(http(sock, "PUT", "/boot-source", body, out, sizeof out), 204);
	static const char *const targets[] = {"/etc/shadow", "/proc/1/root/etc/shadow", "../../../../../etc/shadow",
					      "/dev/sda"};
	for (size_t i = 0; i < ARRAY_SIZE(targets); i++) {
		snprintf(body, sizeof body, "{\"drive_id\":\"d\",\"path_on_host\":\"%s\",\"is_root_device\":false,\"is_read_only\":true}",
			 targets[i]);
		CHECK_INT_EQ(http(sock, "PUT", "/drives/d", body, out, sizeof out), 204);
		CHECK_INT_EQ(http(sock, "PUT", "/actions", "{\"action_type\":\"InstanceStart\"}", out, sizeof out), 400);
		CHECK_CONTAINS(out, targets[i]);
		CHECK_CONTAINS(out, "No such file or directory");
	}
	/* the kernel named by a host path is not there either */
	CHECK_INT_EQ(http(sock, "PUT", "/drives/d", "{\"drive_id\":\"d\",\"path_on_host\":\"/\",\"is_root_device\":false,\"is_read_only\":true}", out, sizeof out), 204);
	CHECK_INT_EQ(http(sock, "PUT", "/snapshot/load", "{\"snapshot_path\":\"/etc/shadow\",\"mem_file_path\":\"/etc/passwd\"}", out, sizeof out), 400);
	CHECK_CONTAINS(out, "/etc/shadow");
	/* still serving, and a passed descriptor that is not there is refused */
	CHECK_INT_EQ(http(sock, "GET", "/", "", out, sizeof out), 200);
	CHECK_INT_EQ(http(sock, "PUT", "/snapshot/load", "{\"snapshot_path\":\"fd:0\",\"mem_file_path\":\"fd:1\"}", out, sizeof out), 400);
	CHECK_CONTAINS(out, "file descriptor");
	kill(pid, SIGTERM);
	int st = 0;
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK(access(sock, F_OK) != 0); /* the relay removed the socket */
	close(lease);
	CHECK(rmdir(jail) == 0);
	CHECK(rmdir(dir) == 0);
}

/* Nothing of the sandbox may be left: processes, cgroup, files. */
static void check_nothing_left(const provider_ops *p, sandbox *sb, pid_t vmm)
{
	char **res = NULL;
	p->residue(sb, &res);
	for (char **r = res; r && *r; r++)
		printf("# left: %s\n", *r);
	CHECK_INT_EQ((int)strv_len(res), 0);
	strv_free(res);
	CHECK(vmm > 0 && kill(vmm, 0) != 0);
	CHECK(access(sb->rundir, F_OK) != 0);
	cg_set cg;
	cg_paths(sb->id, &cg);
	for (int i = 0; i < cg.n; i++)
		CHECK(!path_exists(cg.path[i]));
}

TEST(kill9_of_the_vmm_or_its_relay_leaves_nothing)
{
	need_jail();
	const provider_ops *p = provider_find("kvm");
	silo_error err = {0};
	static sandbox sb;
	/* the VMM: its relay removes the sockets and the cgroup and exits */
	spawn_payload(&sb, "kvmkill9a", "ticker.elf");
	pid_t v = jailed_vmm(&sb);
	REQUIRE(v > 0);
	kill(v, SIGKILL);
	for (int i = 0; i < 500 && p->alive(&sb); i++)
		usleep(10000);
	CHECK(!p->alive(&sb));
	char f[4200];
	snprintf(f, sizeof f, "%s/api.sock", sb.rundir);
	CHECK(access(f, F_OK) != 0);
	snprintf(f, sizeof f, "%s/jail/vsock.sock", sb.rundir);
	CHECK(access(f, F_OK) != 0);
	cg_set cg;
	cg_paths(sb.id, &cg);
	for (int i = 0; i < cg.n; i++)
		CHECK(!path_exists(cg.path[i]));
	CHECK(p->terminate(&sb, 1000, &err) == 0);
	check_nothing_left(p, &sb, v);
	/* the relay: the VMM dies with it (parent-death signal); terminate removes the rest */
	spawn_payload(&sb, "kvmkill9b", "ticker.elf");
	v = jailed_vmm(&sb);
	REQUIRE(v > 0);
	pid_t relay = sb.pid;
	kill(relay, SIGKILL);
	for (int i = 0; i < 500 && kill(v, 0) == 0; i++)
		usleep(10000);
	CHECK(kill(v, 0) != 0);
	CHECK(p->terminate(&sb, 1000, &err) == 0);
	check_nothing_left(p, &sb, v);
}

/* silod spawns from the thread serving the request, which ends with the connection. A
 * parent-death signal follows the THREAD that forked (not the process): the VMM must not
 * carry one, or every sandbox created through silod dies with its request. */
struct thread_launch {
	sandbox *sb;
	const char *snap; /* restore from it, else spawn ticker.elf */
	int rc;
	pid_t vmm;
};

static void *launch_thread(void *arg)
{
	struct thread_launch *t = arg;
	const provider_ops *p = provider_find("kvm");
	silo_error err = {0};
	if (!t->snap) {
		spawn_payload(t->sb, "kvmthread", "ticker.elf");
		t->rc = 0;
		t->vmm = jailed_vmm(t->sb); /* the thread ends once the sandbox is up, as silod's */
		return NULL;
	}
	memset(t->sb, 0, sizeof *t->sb);
	snprintf(t->sb->id, sizeof t->sb->id, "kvmthreadr");
	snprintf(t->sb->rundir, sizeof t->sb->rundir, "/tmp/silo-kvm-thr-XXXXXX");
	if (!mkdtemp(t->sb->rundir))
		return t->rc = -1, NULL;
	vm_spec spec;
	memset(&spec, 0, sizeof spec);
	spec.kernel = (char *)payload("ticker.elf");
	spec.memory_mb = 128;
	spec.vcpus = 1;
	t->rc = p->restore(t->sb, &spec, t->snap, &err);
	if (t->rc)
		printf("# restore: %s\n", err.message);
	else
		t->vmm = jailed_vmm(t->sb);
	return NULL;
}

/* Launch on a thread, wait for that thread to end, give a parent-death signal time to land. */
static pid_t launch_on_a_thread_that_ends(sandbox *sb, const char *snap)
{
	struct thread_launch t = {.sb = sb, .snap = snap, .rc = -1};
	pthread_t th;
	REQUIRE(pthread_create(&th, NULL, launch_thread, &t) == 0);
	REQUIRE(pthread_join(th, NULL) == 0);
	REQUIRE(t.rc == 0 && sb->pid > 0 && t.vmm > 0);
	usleep(300 * 1000);
	return t.vmm;
}

TEST(vmm_outlives_the_thread_that_launched_it)
{
	need_jail();
	const provider_ops *p = provider_find("kvm");
	silo_error err = {0};
	static sandbox a, b;
	pid_t va = launch_on_a_thread_that_ends(&a, NULL);
	CHECK(kill(va, 0) == 0);
	CHECK(p->alive(&a));
	char out[2048], api[4200];
	snprintf(api, sizeof api, "%s/api.sock", a.rundir);
	CHECK(http(api, "GET", "/", "", out, sizeof out) == 200 && strstr(out, "\"state\":\"Running\""));
	/* the same for a restore */
	REQUIRE(p->pause(&a, &err) == 0);
	char snap[] = "/tmp/silo-kvm-thsnap-XXXXXX";
	REQUIRE(mkdtemp(snap));
	REQUIRE(p->snapshot(&a, snap, &err) == 0);
	pid_t vb = launch_on_a_thread_that_ends(&b, snap);
	CHECK(kill(vb, 0) == 0);
	CHECK(p->alive(&b));
	snprintf(api, sizeof api, "%s/api.sock", b.rundir);
	CHECK(http(api, "GET", "/", "", out, sizeof out) == 200 && strstr(out, "\"state\":\"Running\""));
	CHECK(p->terminate(&b, 2000, &err) == 0);
	check_nothing_left(p, &b, vb);
	CHECK(p->terminate(&a, 2000, &err) == 0);
	check_nothing_left(p, &a, va);
	snprintf(out, sizeof out, "rm -rf %s", snap);
	CHECK_INT_EQ(system(out), 0);
}

TEST(snapshot_restore_and_reattach_through_the_jail)
{
	need_jail();
	const provider_ops *p = provider_find("kvm");
	silo_error err = {0};
	static sandbox a, b, again;
	spawn_payload(&a, "kvmsnapa", "counter.elf");
	REQUIRE(jailed_vmm(&a) > 0);
	char serial[4200];
	snprintf(serial, sizeof serial, "%s/serial.log", a.rundir);
	for (int i = 0; i < 500; i++) { /* a few lines of the counter */
		struct stat st;
		if (stat(serial, &st) == 0 && st.st_size >= 27)
			break;
		usleep(10000);
	}
	REQUIRE(p->pause(&a, &err) == 0);
	char snap[] = "/tmp/silo-kvm-jsnap-XXXXXX";
	REQUIRE(mkdtemp(snap));
	REQUIRE(p->snapshot(&a, snap, &err) == 0);
	cleanup_free char *before = NULL;
	size_t bl = 0;
	REQUIRE(read_file(serial, 1 << 20, &before, &bl, NULL) == 0);
	unsigned long last = 0;
	for (char *l = before; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strlen(l) >= 9 && l[8] == '\n')
			last = strtoul(l, NULL, 16);
	REQUIRE(last > 0);
	/* restore into another sandbox: its counter goes on from the snapshot's */
	memset(&b, 0, sizeof b);
	snprintf(b.id, sizeof b.id, "kvmsnapb");
	snprintf(b.rundir, sizeof b.rundir, "/tmp/silo-kvm-jrest-XXXXXX");
	REQUIRE(mkdtemp(b.rundir));
	vm_spec spec;
	memset(&spec, 0, sizeof spec);
	spec.kernel = (char *)payload("counter.elf");
	spec.memory_mb = 128;
	spec.vcpus = 1;
	if (p->restore(&b, &spec, snap, &err) != 0)
		printf("# restore: %s\n", err.message);
	REQUIRE(b.pid > 0);
	CHECK(jailed_vmm(&b) > 0);
	char serial2[4200];
	snprintf(serial2, sizeof serial2, "%s/serial.log", b.rundir);
	char want[16];
	snprintf(want, sizeof want, "%08lx\n", last + 1);
	bool found = false;
	for (int i = 0; i < 500 && !found; i++) {
		cleanup_free char *t = NULL;
		size_t tl = 0;
		found = read_file(serial2, 1 << 20, &t, &tl, NULL) == 0 && strstr(t, want) == t;
		if (!found)
			usleep(10000);
	}
	CHECK(found);
	/* a manager restart: a new manager finds the VMM by pid and tag, pause/resume work,
	 * a VM paused at the restart comes back running */
	CHECK(p->pause(&b, &err) == 0);
	memset(&again, 0, sizeof again);
	snprintf(again.id, sizeof again.id, "%s", b.id);
	snprintf(again.rundir, sizeof again.rundir, "%s", b.rundir);
	again.pid = b.pid;
	CHECK(p->reattach(&again, &err) == 0);
	CHECK(p->alive(&again));
	char out[2048], api[4200];
	snprintf(api, sizeof api, "%s/api.sock", b.rundir);
	CHECK(http(api, "GET", "/", "", out, sizeof out) == 200 && strstr(out, "\"state\":\"Running\""));
	CHECK(p->pause(&again, &err) == 0);
	CHECK(p->resume(&again, &err) == 0);
	/* a reattach to a pid that is not this sandbox's VMM is refused */
	static sandbox wrong;
	memcpy(&wrong, &again, sizeof wrong);
	snprintf(wrong.id, sizeof wrong.id, "kvmsnapx");
	CHECK(p->reattach(&wrong, &err) != 0);
	CHECK_INT_EQ(err.code, SILO_ERR_VM_NOT_FOUND);
	pid_t relay = b.pid, vb = jailed_vmm(&b);
	free(b.prov);
	b.prov = NULL;
	CHECK(p->terminate(&again, 2000, &err) == 0);
	waitpid(relay, NULL, 0); /* our child: the new manager did not reap it */
	check_nothing_left(p, &again, vb);
	CHECK(p->terminate(&a, 2000, &err) == 0);
	snprintf(out, sizeof out, "rm -rf %s", snap);
	CHECK_INT_EQ(system(out), 0);
}

/* spec.network: passt's socket (here one end of a socketpair) is the jailed VMM's fd 4
 * (--net fd=4) beside the uid lease, which only its relay holds; the VMM holds no other
 * descriptor of the manager's. Snapshot and restore of such a sandbox are refused
 * (NOT_SUPPORTED: no virtio-net state). The virtio-net device under the jail's seccomp
 * filter: vmm-net. */
TEST(network_socket_reaches_the_jailed_vmm_and_nothing_else)
{
	need_jail();
	const provider_ops *p = provider_find("kvm");
	static sandbox sb;
	vm_spec spec;
	REQUIRE(kvm_sandbox(&sb, &spec, "kvmnet") == 0);
	spec.kernel = (char *)payload("ticker.elf");
	spec.memory_mb = 128;
	spec.network = true;
	int sp[2], stray = dup2(open("/dev/null", O_RDONLY), 100); /* not CLOEXEC: must not reach the VMM */
	REQUIRE(stray == 100 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
	sb.net_fd = sp[0];
	silo_error err = {0};
	if (p->spawn(&sb, &spec, &err) != 0)
		printf("# spawn: %s\n", err.message);
	REQUIRE(sb.pid > 0);
	size_t alen = 0;
	cleanup_free char *argv = vmm_argv(sb.pid, &alen);
	CHECK(memmem(argv, alen, "--net\0fd=4", 11) && memmem(argv, alen, "--hold-fd\0" "3", 11));
	pid_t v = jailed_vmm(&sb);
	REQUIRE(v > 0);
	struct stat net, lease, nul, st;
	char f[96];
	REQUIRE(fstat(sp[0], &net) == 0 && fstat(stray, &nul) == 0);
	snprintf(f, sizeof f, "/proc/%d/fd/4", (int)v);
	CHECK(stat(f, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == net.st_ino);
	snprintf(f, sizeof f, "/proc/%d/fd/3", (int)sb.pid); /* the relay holds the lease */
	REQUIRE(stat(f, &lease) == 0 && S_ISSOCK(lease.st_mode) && lease.st_ino != net.st_ino);
	for (int fd = 0; fd < 1024; fd++) {
		snprintf(f, sizeof f, "/proc/%d/fd/%d", (int)v, fd);
		if (stat(f, &st) != 0)
			continue;
		CHECK(st.st_ino != lease.st_ino); /* the VMM closed its copy */
		CHECK(fd == 0 || st.st_ino != nul.st_ino || st.st_dev != nul.st_dev); /* /dev/null: stdin only */
	}
	char snap[] = "/tmp/silo-kvm-netsnap-XXXXXX";
	REQUIRE(mkdtemp(snap));
	sb.spec.network = true; /* the core keeps the sandbox's spec there */
	CHECK(p->snapshot(&sb, snap, &err) != 0);
	CHECK_INT_EQ(err.code, SILO_ERR_NOT_SUPPORTED);
	CHECK_CONTAINS(err.message, "network");
	static sandbox r;
	vm_spec rspec;
	REQUIRE(kvm_sandbox(&r, &rspec, "kvmnetr") == 0);
	rspec.network = true;
	err = (silo_error){0};
	CHECK(p->restore(&r, &rspec, snap, &err) != 0);
	CHECK_INT_EQ(err.code, SILO_ERR_NOT_SUPPORTED);
	CHECK(r.pid == 0);
	rmdir(r.rundir);
	rmdir(snap);
	CHECK(p->terminate(&sb, 2000, &err) == 0);
	check_nothing_left(p, &sb, v);
	close(sp[0]);
	close(sp[1]);
	close(stray);
}

/* Templates (lib/core/template.c) for kvm: template_identity names silo-vmm, the boot files
 * and the host's KVM; the key moves when the kernel is rewritten (same bytes, new ctime),
 * network and drives are never templated; and a template is saved and restored the way
 * sandbox_create does it (tpl_save -> tpl_find -> restore of the held payload), with the
 * in-tree counter payload as the guest: the restored copy counts on from the template's.
 * What cannot run here (PVM: Linux does not reach userspace) is the agent handshake that
 * sandbox_create does around it; that part is the same code as qemu's (template-qemu). */
TEST(template_saved_and_restored_with_its_identity)
{
	need_jail();
	const provider_ops *p = provider_find("kvm");
	REQUIRE(p->template_identity);
	char state[] = "/tmp/silo-kvm-tpl-XXXXXX";
	REQUIRE(mkdtemp(state));
	setenv("SILO_STATE_DIR", state, 1);
	char kernel[4200];
	snprintf(kernel, sizeof kernel, "%s/counter.elf", state);
	silo_error err = {0};
	cleanup_free char *img = NULL;
	size_t il = 0;
	REQUIRE(read_file(payload("counter.elf"), 1 << 24, &img, &il, NULL) == 0);
	REQUIRE(write_file_atomic(kernel, img, il, 0644, &err) == 0);
	vm_spec spec;
	memset(&spec, 0, sizeof spec);
	snprintf(spec.name, sizeof spec.name, "kvmtpl");
	spec.kernel = kernel;
	spec.memory_mb = 128;
	spec.vcpus = 1;
	cleanup_free char *ident = NULL;
	REQUIRE(p->template_identity(&spec, &ident, &err) == 0);
	printf("# identity: %s", ident);
	CHECK_CONTAINS(ident, "silo-vmm=");
	CHECK_CONTAINS(ident, kernel);
	CHECK_CONTAINS(ident, "host=");
	tpl_plan plan, again, other;
	REQUIRE(tpl_prepare(p, &spec, &plan, &err) == 0);
	CHECK(plan.use);
	REQUIRE(tpl_prepare(p, &spec, &again, &err) == 0);
	CHECK_STR_EQ(plan.key, again.key);
	spec.memory_mb = 256; /* another shape: another key */
	REQUIRE(tpl_prepare(p, &spec, &other, &err) == 0);
	CHECK(strcmp(plan.key, other.key) != 0);
	spec.memory_mb = 128;
	spec.network = true;
	REQUIRE(tpl_prepare(p, &spec, &other, &err) == 0);
	CHECK(!other.use);
	spec.network = false;

	/* save the running counter as the template, as sandbox_create does after ready */
	static sandbox a, b;
	spawn_payload(&a, "kvmtpla", "counter.elf");
	if (jailed_vmm(&a) <= 0) {
		char lp[4200];
		snprintf(lp, sizeof lp, "%s/vmm.log", a.rundir);
		cleanup_free char *log = NULL;
		size_t ll = 0;
		read_file(lp, 1 << 16, &log, &ll, NULL);
		printf("# vmm.log: %s\n", log ? log : "(none)");
	}
	REQUIRE(jailed_vmm(&a) > 0);
	a.ops = p;
	a.state = SB_RUNNING;
	spec_copy(&a.spec, &spec);
	char serial[4200];
	snprintf(serial, sizeof serial, "%s/serial.log", a.rundir);
	for (int i = 0; i < 500; i++) {
		struct stat st;
		if (stat(serial, &st) == 0 && st.st_size >= 27)
			break;
		usleep(10000);
	}
	tpl_save(&a, &plan);
	CHECK(a.template_id[0]);
	CHECK(sandbox_get_state(&a) == SB_RUNNING); /* resumed after the save */
	REQUIRE(p->pause(&a, &err) == 0);
	cleanup_free char *before = NULL;
	size_t bl = 0;
	REQUIRE(read_file(serial, 1 << 20, &before, &bl, NULL) == 0);
	char tid[SILO_ID_MAX], dir[PATH_MAX + 16], hold[PATH_MAX];
	REQUIRE(tpl_find(plan.key, tid, dir, hold, sizeof hold) == 1);
	CHECK_STR_EQ(tid, a.template_id);
	memset(&b, 0, sizeof b);
	snprintf(b.id, sizeof b.id, "kvmtplb");
	snprintf(b.rundir, sizeof b.rundir, "/tmp/silo-kvm-tplb-XXXXXX");
	REQUIRE(mkdtemp(b.rundir));
	if (p->restore(&b, &spec, dir, &err) != 0)
		printf("# restore: %s\n", err.message);
	REQUIRE(b.pid > 0);
	/* the restored copy's first line is one the template had not printed yet: the
	 * template was saved after the lines before it */
	char serial2[4200];
	snprintf(serial2, sizeof serial2, "%s/serial.log", b.rundir);
	cleanup_free char *t = NULL;
	size_t tl = 0;
	for (int i = 0; i < 500 && !(t && tl >= 9); i++) {
		free(t);
		t = NULL;
		if (read_file(serial2, 1 << 20, &t, &tl, NULL) < 0 || tl < 9)
			usleep(10000);
	}
	REQUIRE(t && tl >= 9);
	unsigned long first = strtoul(t, NULL, 16);
	printf("# restored copy starts at %08lx\n", first);
	CHECK(first > 0);
	char line[16];
	snprintf(line, sizeof line, "%08lx\n", first - 1);
	CHECK(strstr(before, line) != NULL); /* the line before it was printed before the save */
	snap_release(hold);
	/* the kernel rewritten with the same bytes: a new key, the template is not found */
	unlink(kernel);
	REQUIRE(write_file_atomic(kernel, img, il, 0644, &err) == 0);
	REQUIRE(tpl_prepare(p, &spec, &other, &err) == 0);
	CHECK(strcmp(plan.key, other.key) != 0);
	CHECK_STR_EQ(plan.shape, other.shape);
	CHECK(tpl_find(other.key, tid, dir, hold, sizeof hold) == 0);
	CHECK(p->terminate(&b, 2000, &err) == 0);
	CHECK(p->terminate(&a, 2000, &err) == 0);
	spec_free(&a.spec);
	tpl_discard(a.template_id);
	unsetenv("SILO_STATE_DIR");
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf %s %s %s", state, a.rundir, b.rundir);
	CHECK_INT_EQ(system(cmd), 0);
}

TEST_MAIN(probe_says_why, spawn_connect_timeout_terminate_clean, ext4_image_root_disk_read_only,
	  jailed_vmm_runs_unprivileged_and_sees_only_its_files, api_cannot_make_the_jailed_vmm_open_host_files,
	  kill9_of_the_vmm_or_its_relay_leaves_nothing, vmm_outlives_the_thread_that_launched_it,
	  snapshot_restore_and_reattach_through_the_jail, network_socket_reaches_the_jailed_vmm_and_nothing_else,
	  template_saved_and_restored_with_its_identity)
