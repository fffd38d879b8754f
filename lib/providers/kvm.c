/* SPDX-License-Identifier: Apache-2.0
 * kvm provider: one silo-vmm process per sandbox (docs/vmm.md). The agent is
 * reached through silo-vmm's hybrid vsock: connect to <rundir>/vsock.sock, send
 * "CONNECT 1024\n", read "OK <port>\n", then the stream is the agent's.
 *
 * silo-vmm also serves its Firecracker-compatible API on <rundir>/api.sock; pause
 * and resume are PATCH /vm {"state": "Paused" | "Resumed"} there.
 *
 * Availability: /dev/kvm must open and the CPU must have vmx/svm. On a PVM host
 * (software nested virtualization, no vmx/svm) guest ring 0 is emulated and
 * Linux does not reach userspace, so the provider reports itself unavailable
 * unless SILO_KVM_FORCE=1.
 *
 * Like qemu.c (vm.h): the kernel command line is the user's boot.cmdline without
 * the parameters reserved to Silo, then Silo's own; the guest's writable layer is
 * the scratch disk RUNDIR/disk.img (the disk budget), attached last as
 * "--drive disk.img,id=silo-scratch" with a path relative to RUNDIR, silo-vmm's
 * working directory, so a snapshot restored in another sandbox opens its own copy;
 * the serial log is capped keeping its tail (--serial-log-max).
 */
#include <errno.h>
#include <jansson.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "core/provider.h"
#include "core/sandbox.h"
#include "image/image.h"
#include "providers/vm.h"
#include "trust/trust.h"

#define AGENT_VSOCK_PORT 1024

static const char *const rundir_files[] = {"vsock.sock", "api.sock", "serial.log", "vmm.log", VM_SCRATCH_FILE};

typedef struct kvm_state {
	bool is_child, exited;
	char vsock[PATH_MAX];
	char api[PATH_MAX];
} kvm_state;

static bool cpu_has_hw_virt(void)
{
	cleanup_free char *ci = NULL;
	size_t n = 0;
	if (read_file("/proc/cpuinfo", 16u << 20, &ci, &n, NULL) < 0)
		return false;
	for (char *l = ci; l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (!strncmp(l, "flags", 5)) {
			char *e = strchr(l, '\n');
			size_t len = e ? (size_t)(e - l) : strlen(l);
			char line[8192];
			snprintf(line, sizeof line, "%.*s ", (int)(len < sizeof line - 2 ? len : sizeof line - 2), l);
			return strstr(line, " vmx ") || strstr(line, " svm ");
		}
	return false;
}

static void k_probe(provider_info *info)
{
	info->available = false;
	snprintf(info->version, sizeof info->version, "silo-vmm %s", SILO_VERSION);
	snprintf(info->accel, sizeof info->accel, "none");
	char bin[PATH_MAX];
	if (find_helper_binary("silo-vmm", bin, sizeof bin, NULL) < 0) {
		snprintf(info->reason, sizeof info->reason, "silo-vmm not found (set SILO_LIBEXEC_DIR or build the tree)");
		return;
	}
	silo_error serr = {0};
	if (vm_scratch_probe(&serr) < 0) {
		snprintf(info->reason, sizeof info->reason, "%s", serr.message);
		return;
	}
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(info->reason, sizeof info->reason, "/dev/kvm: %s", strerror(errno));
		return;
	}
	close(fd);
	const char *force = getenv("SILO_KVM_FORCE");
	if (cpu_has_hw_virt()) {
		snprintf(info->accel, sizeof info->accel, "kvm");
	} else if (force && !strcmp(force, "1")) {
		snprintf(info->accel, sizeof info->accel, "pvm");
	} else {
		snprintf(info->accel, sizeof info->accel, "pvm");
		snprintf(info->reason, sizeof info->reason,
			 "PVM host: guest ring 0 is emulated; Linux guests cannot reach userspace (no vmx/svm; SILO_KVM_FORCE=1 overrides)");
		return;
	}
	info->available = true;
}

static int launch(sandbox *sb, kvm_state *k, const char *bin, const char *const *argv, silo_error *err);
static void remove_rundir_files(sandbox *sb);

static int k_spawn(sandbox *sb, const vm_spec *spec, silo_error *err)
{
	char bin[PATH_MAX], kernel[PATH_MAX], initrd[PATH_MAX] = "";
	if (find_helper_binary("silo-vmm", bin, sizeof bin, err) < 0)
		return silo_error_set_vm(err, sb->id), -1;
	if (spec->kernel) {
		if (access(spec->kernel, R_OK) < 0)
			return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, errno, sb->id, "boot.kernel: %s", spec->kernel);
		snprintf(kernel, sizeof kernel, "%s", spec->kernel);
	} else if (guest_kernel_path(kernel, sizeof kernel, err) < 0) {
		return silo_error_set_vm(err, sb->id), -1;
	}
	if (spec->initrd) {
		if (access(spec->initrd, R_OK) < 0)
			return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, errno, sb->id, "boot.initrd: %s", spec->initrd);
		snprintf(initrd, sizeof initrd, "%s", spec->initrd);
	} else if (spec->image || !spec->kernel) {
		image_entry e;
		memset(&e, 0, sizeof e);
		if (image_lookup(spec->image ? spec->image : "base", &e, err) < 0 || image_verify(&e, err) < 0) {
			image_entry_free(&e);
			silo_error_prefix(err, "boot.image");
			return silo_error_set_vm(err, sb->id), -1;
		}
		snprintf(initrd, sizeof initrd, "%s", e.kind == IMAGE_KIND_EXT4 ? e.initrd.path : e.file.path);
		image_entry_free(&e);
	}
	/* with a keyring: every file that boots must match the signed manifest */
	bool keyring = false;
	if (trust_check_boot(kernel, initrd, NULL, &keyring, err) < 0)
		return silo_error_set_vm(err, sb->id), -1;
	uint64_t scratch_mb = 0, largest = 0;
	if (spec->n_drives >= 8)
		return silo_fail_vm(err, SILO_ERR_RESOURCE_EXCEEDED, 0, sb->id,
				    "drives: at most 7 with the kvm provider (silo-vmm has 8 drive slots, one is the "
				    "scratch disk)");
	if (vm_disk_budget(spec, &scratch_mb, &largest, err) < 0)
		return silo_error_set_vm(err, sb->id), -1;
	char silo_args[128];
	snprintf(silo_args, sizeof silo_args, "console=ttyS0 reboot=k panic=-1 quiet silo.scratch=/dev/vd%c",
		 (char)('a' + spec->n_drives));
	cleanup_free char *cmdline = NULL;
	if (vm_cmdline_compose(spec->cmdline, silo_args, keyring, &cmdline, err) < 0)
		return silo_error_set_vm(err, sb->id), -1;
	kvm_state *k = xcalloc(1, sizeof *k);
	snprintf(k->vsock, sizeof k->vsock, "%s/vsock.sock", sb->rundir);
	snprintf(k->api, sizeof k->api, "%s/api.sock", sb->rundir);
	char serial[PATH_MAX + 16], mem[16], vcpus[16], smax[32];
	snprintf(serial, sizeof serial, "%s/serial.log", sb->rundir);
	snprintf(mem, sizeof mem, "%u", spec->memory_mb ? spec->memory_mb : 256);
	snprintf(vcpus, sizeof vcpus, "%u", spec->vcpus ? spec->vcpus : 1);
	snprintf(smax, sizeof smax, "%llu", (unsigned long long)vm_serial_log_max());
	const char *argv[64];
	char drives[SPEC_MAX_DRIVES][PATH_MAX + 48];
	int n = 0;
	argv[n++] = bin;
	argv[n++] = "--kernel", argv[n++] = kernel;
	if (initrd[0])
		argv[n++] = "--initrd", argv[n++] = initrd;
	argv[n++] = "--mem", argv[n++] = mem;
	argv[n++] = "--vcpus", argv[n++] = vcpus;
	argv[n++] = "--serial-log", argv[n++] = serial;
	argv[n++] = "--serial-log-max", argv[n++] = smax;
	argv[n++] = "--vsock-uds", argv[n++] = k->vsock;
	argv[n++] = "--api-sock", argv[n++] = k->api;
	argv[n++] = "--id", argv[n++] = sb->id;
	argv[n++] = "--boot-timer";
	argv[n++] = "--rng";
	argv[n++] = "--cmdline", argv[n++] = cmdline;
	for (size_t i = 0; i < spec->n_drives && n < 60; i++) {
		if (strchr(spec->drives[i].path, ','))
			return free(k), silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, sb->id,
						     "drives[%zu].path: commas are not supported", i);
		/* silo-vmm runs in RUNDIR: relative paths are resolved here */
		char abs[PATH_MAX];
		const char *dp = spec->drives[i].path;
		if (dp[0] != '/' && !(dp = realpath(spec->drives[i].path, abs)))
			return free(k), silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, errno, sb->id, "drives[%zu].path: %s", i,
						     spec->drives[i].path);
		snprintf(drives[i], sizeof drives[i], "%s%s", dp, spec->drives[i].read_only ? ",ro" : "");
		argv[n++] = "--drive", argv[n++] = drives[i];
	}
	argv[n++] = "--drive", argv[n++] = VM_SCRATCH_FILE ",id=" VM_SCRATCH_SERIAL;
	argv[n] = NULL;
	if (vm_scratch_create(sb->rundir, scratch_mb, err) < 0)
		return free(k), silo_error_set_vm(err, sb->id), -1;
	if (launch(sb, k, bin, argv, err) < 0) {
		remove_rundir_files(sb);
		return -1;
	}
	return 0;
}

/* Fork and exec silo-vmm (stdout/stderr to RUNDIR/vmm.log); takes ownership of k. */
static int launch(sandbox *sb, kvm_state *k, const char *bin, const char *const *argv, silo_error *err)
{
	char log[PATH_MAX + 16];
	snprintf(log, sizeof log, "%s/vmm.log", sb->rundir);
	int lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (lfd < 0) {
		free(k);
		return silo_fail_vm(err, SILO_ERR_INTERNAL, errno, sb->id, "kvm: %s", log);
	}
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		close(lfd);
		free(k);
		return silo_fail_vm(err, SILO_ERR_RESOURCE_EXCEEDED, errno, sb->id, "kvm: fork");
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* no orphaned VMMs if the manager dies */
		if (getppid() != parent || chdir(sb->rundir) < 0)   /* the scratch disk is relative to it */
			_exit(127);
		int null = open("/dev/null", O_RDONLY);
		dup2(null, 0);
		dup2(lfd, 1);
		dup2(lfd, 2);
		sigset_t all;
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	close(lfd);
	k->is_child = true;
	sb->pid = pid;
	sb->prov = k;
	return 0;
}

static bool k_alive(sandbox *sb)
{
	kvm_state *k = sb->prov;
	if (sb->pid <= 0 || (k && k->exited))
		return false;
	if (k && k->is_child) {
		int st;
		pid_t r = waitpid(sb->pid, &st, WNOHANG);
		if (r == sb->pid) {
			k->exited = true;
			return false;
		}
	}
	return kill(sb->pid, 0) == 0;
}

/* One attempt: connect, CONNECT line, wait for "OK <port>\n". -1 when the VMM
 * closed (nobody listens in the guest yet) or on timeout. */
static int try_connect(const char *path, int wait_ms)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path)
		return -1;
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	char line[32];
	int n = snprintf(line, sizeof line, "CONNECT %d\n", AGENT_VSOCK_PORT);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || write_all(fd, line, (size_t)n) < 0) {
		close(fd);
		return -1;
	}
	size_t got = 0;
	uint64_t deadline = now_mono_ns() + (uint64_t)wait_ms * 1000000ULL;
	while (got < sizeof line - 1) {
		uint64_t now = now_mono_ns();
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (now >= deadline || poll(&p, 1, (int)((deadline - now) / 1000000) + 1) <= 0)
			break;
		ssize_t r = read(fd, line + got, 1); /* byte-wise: no agent bytes consumed */
		if (r <= 0)
			break;
		if (line[got++] == '\n') {
			line[got] = 0;
			if (!strncmp(line, "OK ", 3))
				return fd;
			break;
		}
	}
	close(fd);
	return -1;
}

static int k_connect(sandbox *sb, int timeout_ms, silo_error *err)
{
	kvm_state *k = sb->prov;
	if (!k)
		return silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, 0, sb->id, "kvm: sandbox not running");
	uint64_t deadline = now_mono_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000ULL;
	for (;;) {
		int fd = try_connect(k->vsock, 1000);
		if (fd >= 0)
			return fd;
		if (!k_alive(sb))
			return silo_fail_vm(err, SILO_ERR_VSOCK_DISCONNECTED, 0, sb->id,
					    "kvm: silo-vmm exited before the agent answered on vsock port %d",
					    AGENT_VSOCK_PORT);
		if (now_mono_ns() >= deadline)
			return silo_fail_vm(err, SILO_ERR_BOOT_TIMEOUT, 0, sb->id,
					    "kvm: the agent did not accept vsock port %d within %d ms",
					    AGENT_VSOCK_PORT, timeout_ms);
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

static bool wait_exit(sandbox *sb, int ms)
{
	uint64_t deadline = now_mono_ns() + (uint64_t)ms * 1000000ULL;
	while (k_alive(sb)) {
		if (now_mono_ns() >= deadline)
			return false;
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return true;
}

static void remove_rundir_files(sandbox *sb)
{
	for (size_t i = 0; i < ARRAY_SIZE(rundir_files); i++) {
		char p[PATH_MAX + 32];
		snprintf(p, sizeof p, "%s/%s", sb->rundir, rundir_files[i]);
		unlink(p);
	}
	rmdir(sb->rundir);
}

static int k_terminate(sandbox *sb, int grace_ms, silo_error *err)
{
	kvm_state *k = sb->prov;
	if (k && k_alive(sb)) {
		kill(sb->pid, SIGTERM); /* silo-vmm stops its vCPUs and exits */
		if (!wait_exit(sb, grace_ms > 0 ? grace_ms : 1000)) {
			kill(sb->pid, SIGKILL);
			if (!wait_exit(sb, 5000))
				return silo_fail_vm(err, SILO_ERR_CLEANUP_FAILED, 0, sb->id,
						    "silo-vmm pid %d survived SIGKILL", (int)sb->pid);
		}
	}
	remove_rundir_files(sb);
	free(k);
	sb->prov = NULL;
	return 0;
}

/* One request to silo-vmm's API; returns the HTTP status (-1 when unreachable). The
 * response is bounded (4 KiB) and only its status line is used; fault_message goes to err. */
static int api_call(sandbox *sb, const char *method, const char *path, const char *body, int timeout_ms,
		    silo_error *err)
{
	kvm_state *k = sb->prov;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (!k || strlen(k->api) >= sizeof sa.sun_path)
		return silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, 0, sb->id, "kvm: sandbox not running");
	strcpy(sa.sun_path, k->api);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return silo_fail_vm(err, SILO_ERR_RESOURCE_EXCEEDED, errno, sb->id, "kvm: socket");
	cleanup_free char *req = xasprintf("%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
					   "Content-Length: %zu\r\n\r\n%s",
					   method, path, strlen(body), body);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || write_all(fd, req, strlen(req)) < 0) {
		int e = errno;
		close(fd);
		return silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, e, sb->id, "kvm: silo-vmm API %s", k->api);
	}
	char resp[4096];
	size_t got = 0;
	uint64_t deadline = now_mono_ns() + (uint64_t)timeout_ms * 1000000ULL;
	for (;;) {
		uint64_t now = now_mono_ns();
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (got == sizeof resp - 1 || now >= deadline || poll(&p, 1, (int)((deadline - now) / 1000000) + 1) <= 0)
			break;
		ssize_t r = read(fd, resp + got, sizeof resp - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	resp[got] = 0;
	int status = 0;
	if (sscanf(resp, "HTTP/1.1 %d", &status) != 1)
		return silo_fail_vm(err, SILO_ERR_PROTOCOL, 0, sb->id, "kvm: silo-vmm API: no HTTP answer to %s %s",
				    method, path);
	if (status >= 300) {
		const char *m = strstr(resp, "\"fault_message\":\"");
		silo_fail_vm(err, status == 400 ? SILO_ERR_CONFLICT : SILO_ERR_INTERNAL, 0, sb->id,
			     "kvm: %s %s: HTTP %d %.*s", method, path, status, m ? (int)strcspn(m + 17, "\"") : 0,
			     m ? m + 17 : "");
		return -1;
	}
	return status;
}

static int k_pause(sandbox *sb, silo_error *err)
{
	return api_call(sb, "PATCH", "/vm", "{\"state\":\"Paused\"}", 5000, err) < 0 ? -1 : 0;
}

static int k_resume(sandbox *sb, silo_error *err)
{
	return api_call(sb, "PATCH", "/vm", "{\"state\":\"Resumed\"}", 5000, err) < 0 ? -1 : 0;
}

/* Snapshot: silo-vmm writes DIR/vm.state and DIR/vm.mem (the core paused the VM). */
static int k_snapshot(sandbox *sb, const char *dir, silo_error *err)
{
	cleanup_free char *st = xasprintf("%s/vm.state", dir), *mem = xasprintf("%s/vm.mem", dir);
	json_t *b = json_pack("{s:s,s:s,s:s}", "snapshot_type", "Full", "snapshot_path", st, "mem_file_path", mem);
	cleanup_free char *body = json_dumps(b, JSON_COMPACT);
	json_decref(b);
	if (api_call(sb, "PUT", "/snapshot/create", body, 120000, err) < 0)
		return -1;
	/* the scratch disk beside it (paused: virtio-blk writes are synchronous pwrites) */
	cleanup_free char *disk = xasprintf("%s/" VM_SCRATCH_FILE, sb->rundir),
			  *out = xasprintf("%s/" VM_SCRATCH_SNAP, dir);
	uint64_t bytes = 0;
	if (path_exists(disk) && vm_scratch_save(disk, out, &bytes, err) < 0)
		return silo_error_set_vm(err, sb->id), -1;
	return 0;
}

/* Restore: a fresh silo-vmm (API only) loads DIR/vm.{state,mem}: RAM is mapped copy-on-write
 * from the payload, the vsock socket is this sandbox's own. The caller verified DIR. */
static int k_restore(sandbox *sb, const vm_spec *spec, const char *dir, silo_error *err)
{
	(void)spec;
	char bin[PATH_MAX];
	if (find_helper_binary("silo-vmm", bin, sizeof bin, err) < 0)
		return silo_error_set_vm(err, sb->id), -1;
	/* the snapshot's scratch disk becomes this sandbox's RUNDIR/disk.img (opened relative to RUNDIR) */
	cleanup_free char *snap_disk = xasprintf("%s/" VM_SCRATCH_SNAP, dir),
			  *disk = xasprintf("%s/" VM_SCRATCH_FILE, sb->rundir);
	if (path_exists(snap_disk) && vm_scratch_load(snap_disk, disk, 0, err) < 0)
		return silo_error_set_vm(err, sb->id), -1;
	kvm_state *k = xcalloc(1, sizeof *k);
	snprintf(k->vsock, sizeof k->vsock, "%s/vsock.sock", sb->rundir);
	snprintf(k->api, sizeof k->api, "%s/api.sock", sb->rundir);
	char serial[PATH_MAX + 16], smax[32];
	snprintf(serial, sizeof serial, "%s/serial.log", sb->rundir);
	snprintf(smax, sizeof smax, "%llu", (unsigned long long)vm_serial_log_max());
	const char *argv[] = {bin, "--api-sock", k->api, "--id", sb->id, "--serial-log", serial, "--serial-log-max", smax, NULL};
	if (launch(sb, k, bin, argv, err) < 0)
		return -1;
	/* The socket appears once silo-vmm listens. */
	for (int i = 0; i < 500 && access(k->api, F_OK) != 0 && k_alive(sb); i++) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	cleanup_free char *st = xasprintf("%s/vm.state", dir), *mem = xasprintf("%s/vm.mem", dir);
	json_t *b = json_pack("{s:s,s:{s:s,s:s},s:b,s:b,s:s}", "snapshot_path", st, "mem_backend", "backend_type", "File",
			      "backend_path", mem, "resume_vm", 1, "verify_memory", 0, "vsock_uds_path", k->vsock);
	cleanup_free char *body = json_dumps(b, JSON_COMPACT);
	json_decref(b);
	if (api_call(sb, "PUT", "/snapshot/load", body, 60000, err) < 0) {
		silo_error e2 = {0};
		k_terminate(sb, 1000, &e2);
		return -1;
	}
	return 0;
}

static void k_residue(sandbox *sb, char ***out)
{
	size_t n = strv_len(*out);
	for (size_t i = 0; i < ARRAY_SIZE(rundir_files); i++) {
		char p[PATH_MAX + 32];
		snprintf(p, sizeof p, "%s/%s", sb->rundir, rundir_files[i]);
		if (!path_exists(p))   /* only what is really left */
			continue;
		*out = xrealloc(*out, (n + 2) * sizeof **out);
		(*out)[n++] = xstrdup(p);
		(*out)[n] = NULL;
	}
}

static void k_diagnostics(sandbox *sb, char *buf, size_t len)
{
	char p[PATH_MAX + 32];
	snprintf(p, sizeof p, "%s/vmm.log", sb->rundir);
	cleanup_free char *t = NULL;
	size_t n = 0;
	if (read_file(p, 1u << 20, &t, &n, NULL) < 0 || !n) {
		snprintf(buf, len, "silo-vmm wrote nothing");
		return;
	}
	size_t room = len > 12 ? len - 12 : 0;
	snprintf(buf, len, "silo-vmm: %s", n > room ? t + n - room : t);
}

const provider_ops kvm_provider = {
	.name = "kvm",
	.vm = true,
	.probe = k_probe,
	.spawn = k_spawn,
	.connect = k_connect,
	.terminate = k_terminate,
	.alive = k_alive,
	.pause = k_pause,
	.resume = k_resume,
	.snapshot = k_snapshot,
	.restore = k_restore,
	.residue = k_residue,
	.diagnostics = k_diagnostics,
};
