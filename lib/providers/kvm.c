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
 * the serial log is capped keeping its tail (--serial-log-max). An ext4 image's root disk is
 * the first drive, read-only (/dev/vda, silo.root=/dev/vda). With spec.network, passt's
 * connected socket is silo-vmm's fd 4 (--net fd=4: virtio-net, opened before the jail like
 * every other file); such a sandbox is not snapshotted or restored (no virtio-net state).
 *
 * silo-vmm always runs jailed (vmm/jail.c; docs/vmm.md "kvm provider"): as a per-sandbox
 * uid leased from VM_UID_BASE (vm_uid_lease; its relay holds the lease, --hold-fd), in new
 * pid/mount/IPC/UTS/network namespaces whose root is RUNDIR/jail (root-owned; it holds only
 * the vsock socket), in the cgroup silo/<id>, without capabilities, with no_new_privs, its
 * seccomp allow-list and rlimits (RLIMIT_FSIZE = the largest file it may write). Every host
 * file it uses is opened before it enters the jail (kernel, initrd, drives, the scratch
 * disk, the serial log, its sockets); snapshot files are opened here and handed over the API
 * socket (SCM_RIGHTS, "fd:N"). sb->pid is silo-vmm's relay, started in its own session so
 * the sandbox outlives a silod restart (reattach finds it by the tag silo-<id> on its
 * command line); the VMM is the relay's only child. No parent-death signal: it follows the
 * thread that forks (in silod, the request's thread, which ends with the request); an owner
 * that dies is handled by its owner record and watchdog (core/owner.c). Templates
 * (core/template.c): k_template_identity names silo-vmm, the boot files and the host's KVM;
 * a template is an ordinary kvm snapshot, restored by k_restore. RUNDIR holds api.sock, serial.log,
 * vmm.log (silo-vmm's stderr), disk.img and jail/ (with jail/vsock.sock: the agent's
 * hybrid vsock socket).
 */
#include <errno.h>
#include <jansson.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/argv.h"
#include "common/cgroup.h"
#include "common/fdread.h"
#include "common/util.h"
#include "core/provider.h"
#include "core/sandbox.h"
#include "providers/ns.h"
#include "providers/vm.h"

#define AGENT_VSOCK_PORT 1024

#define VMM_BIN "silo-vmm"
#define JAIL_DIR "jail"              /* RUNDIR/jail: silo-vmm's root */
#define VSOCK_FILE JAIL_DIR "/vsock.sock"
#define LEASE_FD 3                   /* the uid lease, as silo-vmm's relay sees it */
#define NET_FD 4                     /* passt's socket (spec.network), silo-vmm's --net fd=4 */
_Static_assert(NET_FD == LEASE_FD + 1, "launch closes every descriptor above NET_FD (or LEASE_FD)");
#define SNAPSHOT_MARGIN_MIB 64       /* RLIMIT_FSIZE above guest RAM: the memory file's trailer */

static const char *const rundir_files[] = {VSOCK_FILE, "api.sock", "serial.log", "vmm.log", VM_SCRATCH_FILE};
static const vm_rundir rundir_layout = {rundir_files, ARRAY_SIZE(rundir_files), JAIL_DIR};

typedef struct kvm_state {
	bool is_child, exited;
	char vsock[PATH_MAX];
	char api[PATH_MAX];
} kvm_state;

static kvm_state *state_for(const sandbox *sb)
{
	kvm_state *k = xcalloc(1, sizeof *k);
	snprintf(k->vsock, sizeof k->vsock, "%s/" VSOCK_FILE, sb->rundir);
	snprintf(k->api, sizeof k->api, "%s/api.sock", sb->rundir);
	return k;
}

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
	if (find_helper_binary(VMM_BIN, bin, sizeof bin, NULL) < 0) {
		snprintf(info->reason, sizeof info->reason, "silo-vmm not found (set SILO_LIBEXEC_DIR or build the tree)");
		return;
	}
	if (geteuid() != 0) {
		snprintf(info->reason, sizeof info->reason,
			 "silo-vmm runs jailed (its own uid, namespaces and cgroup), which needs root");
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

/* ---------------------------------------------------------------- silo-vmm's command line */

/* "--drive PATH[,ro]": silo-vmm runs in RUNDIR, relative paths are resolved here; what names
 * the file in errors (a path with a comma, or one that does not resolve). */
static int add_drive(sandbox *sb, char ***av, const char *path, bool ro, const char *what, silo_error *err)
{
	if (strchr(path, ','))
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, sb->id, "%s: commas are not supported (%s)", what,
				    path);
	char abs[PATH_MAX];
	const char *p = path;
	if (p[0] != '/' && !(p = realpath(path, abs)))
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, errno, sb->id, "%s: %s", what, path);
	argv_optf(av, "--drive", "%s%s", p, ro ? ",ro" : "");
	return 0;
}

/* What spawn and restore give silo-vmm alike: the jail (RUNDIR/jail as its root, the
 * sandbox's leased uid, the cgroup silo/<id>, the machine's size as the jail's envelope,
 * RLIMIT_FSIZE), the files it opens before entering it (serial log, API and vsock sockets,
 * the image's root disk ROOTDISK ("" = none; read-only, first: /dev/vda), the user's
 * drives, the scratch disk) and the tag silo-<id>. *lease: the uid lease's fd. */
static int common_args(sandbox *sb, const vm_spec *spec, const char *bin, const char *rootdisk, bool scratch,
		       char ***av, int *lease, uint64_t *scratch_mb_out, silo_error *err)
{
	*lease = -1;
	uint64_t scratch_mb = 0, largest = 0;
	unsigned root = rootdisk[0] ? 1 : 0;
	if (root + spec->n_drives >= 8)
		return silo_fail_vm(err, SILO_ERR_RESOURCE_EXCEEDED, 0, sb->id,
				    "drives: at most %u with the kvm provider (silo-vmm has 8 drive slots, one is the "
				    "scratch disk%s)",
				    7 - root, root ? ", one the image's root disk" : "");
	if (vm_disk_budget(spec, &scratch_mb, &largest, err) < 0)
		return silo_error_set_vm(err, sb->id), -1;
	*scratch_mb_out = scratch_mb;
	unsigned mem = spec->memory_mb ? spec->memory_mb : 256, vcpus = spec->vcpus ? spec->vcpus : 1;
	/* no file it writes may grow past the largest one: a drive, the scratch disk, the serial
	 * log, a snapshot's memory file */
	uint64_t fsize = largest;
	if (((uint64_t)mem + SNAPSHOT_MARGIN_MIB) << 20 > fsize)
		fsize = ((uint64_t)mem + SNAPSHOT_MARGIN_MIB) << 20;
	if (vm_serial_log_max() > fsize)
		fsize = vm_serial_log_max();
	char jail[PATH_MAX + 16];
	snprintf(jail, sizeof jail, "%s/" JAIL_DIR, sb->rundir);
	/* the jail's root: root-owned and not writable by the VMM's uid (it gets no new files) */
	if ((mkdir(jail, 0755) < 0 && errno != EEXIST) || chmod(jail, 0755) < 0)
		return silo_fail_vm(err, SILO_ERR_IO_ERROR, errno, sb->id, "kvm: %s", jail);
	uid_t uid;
	if (vm_uid_lease(sb->id, &uid, lease, err) < 0)
		return silo_error_set_vm(err, sb->id), -1;
	argv_add(av, bin);
	argv_optf(av, "--id", "silo-%s", sb->id); /* the VM tag: cleanup sweeps and reattach find it */
	argv_addv(av, "--jail", jail, NULL);
	argv_optf(av, "--uid", "%u", (unsigned)uid);
	argv_optf(av, "--gid", "%u", (unsigned)uid);
	argv_addv(av, "--cgroup", sb->id, NULL);
	argv_optf(av, "--hold-fd", "%d", LEASE_FD);
	argv_optf(av, "--fsize", "%llu", (unsigned long long)fsize);
	argv_optf(av, "--mem", "%u", mem);
	argv_optf(av, "--vcpus", "%u", vcpus);
	argv_optf(av, "--serial-log", "%s/serial.log", sb->rundir);
	argv_optf(av, "--serial-log-max", "%llu", (unsigned long long)vm_serial_log_max());
	argv_optf(av, "--api-sock", "%s/api.sock", sb->rundir);
	argv_optf(av, "--vsock-uds", "%s/" VSOCK_FILE, sb->rundir);
	/* the root disk is read-only: any number of sandboxes share the file */
	if (root && add_drive(sb, av, rootdisk, true, "boot.image (its root disk)", err) < 0)
		return -1;
	for (size_t i = 0; i < spec->n_drives; i++) {
		char what[32];
		snprintf(what, sizeof what, "drives[%zu].path", i);
		if (add_drive(sb, av, spec->drives[i].path, spec->drives[i].read_only, what, err) < 0)
			return -1;
	}
	if (scratch)
		argv_addv(av, "--drive", VM_SCRATCH_FILE ",id=" VM_SCRATCH_SERIAL, NULL);
	return 0;
}

static int launch(sandbox *sb, const char *bin, char **argv, int lease, int net_fd, silo_error *err);
static void remove_rundir_files(sandbox *sb);

static int k_spawn(sandbox *sb, const vm_spec *spec, silo_error *err)
{
	char bin[PATH_MAX];
	if (find_helper_binary(VMM_BIN, bin, sizeof bin, err) < 0)
		return silo_error_set_vm(err, sb->id), -1;
	/* kernel, loader, and an ext4 image's root disk (first: /dev/vda) */
	vm_boot_plan bp;
	/* with a keyring: every file that boots must match the signed manifest */
	bool keyring = false;
	if (vm_plan_boot(sb->id, "kvm", spec, true, &keyring, &bp, err) < 0)
		return -1;
	if (spec->network && sb->net_fd < 0)
		return silo_fail_vm(err, SILO_ERR_INTERNAL, EBADF, sb->id, "kvm: network socket");
	unsigned root = bp.rootdisk[0] ? 1 : 0;
	char silo_args[256];
	snprintf(silo_args, sizeof silo_args, "console=ttyS0 reboot=k panic=-1 quiet%s silo.scratch=/dev/vd%c%s",
		 root ? " silo.root=/dev/vda" : "", (char)('a' + root + spec->n_drives), bp.hostname_arg);
	cleanup_free char *cmdline = NULL;
	if (vm_cmdline_compose(spec->cmdline, silo_args, keyring, &cmdline, err) < 0)
		return silo_error_set_vm(err, sb->id), -1;
	cleanup_strv char **av = NULL;
	int lease = -1;
	uint64_t scratch_mb = 0;
	if (common_args(sb, spec, bin, bp.rootdisk, true, &av, &lease, &scratch_mb, err) < 0)
		goto fail;
	argv_addv(&av, "--kernel", bp.kernel, NULL);
	if (bp.initrd[0])
		argv_addv(&av, "--initrd", bp.initrd, NULL);
	argv_addv(&av, "--boot-timer", "--rng", "--cmdline", cmdline, NULL);
	if (spec->network) /* virtio-net on passt's socket (docs/network.md) */
		argv_optf(&av, "--net", "fd=%d", NET_FD);
	if (vm_scratch_create(sb->rundir, scratch_mb, err) < 0) {
		silo_error_set_vm(err, sb->id);
		goto fail;
	}
	if (launch(sb, bin, av, lease, spec->network ? sb->net_fd : -1, err) < 0) {
		lease = -1; /* launch took it */
		goto fail;
	}
	return 0;
fail:
	if (lease >= 0)
		close(lease);
	remove_rundir_files(sb);
	return -1;
}

/* Fork and exec silo-vmm (stdout/stderr to RUNDIR/vmm.log, the uid lease on LEASE_FD, net_fd
 * (>= 0: passt's socket; the caller keeps its own) on NET_FD, no other descriptor, in RUNDIR,
 * in its own session: it outlives a silod restart). Takes lease. */
static int launch(sandbox *sb, const char *bin, char **argv, int lease, int net_fd, silo_error *err)
{
	/* out of the way of the numbers the child arranges */
	int hi = fcntl(lease, F_DUPFD_CLOEXEC, 200), e = errno;
	close(lease);
	int hnet = hi >= 0 && net_fd >= 0 ? fcntl(net_fd, F_DUPFD_CLOEXEC, 200) : -1;
	if (hi < 0 || (net_fd >= 0 && hnet < 0)) {
		e = hi < 0 ? e : errno;
		if (hi >= 0)
			close(hi);
		return silo_fail_vm(err, SILO_ERR_RESOURCE_EXCEEDED, e, sb->id, "kvm: descriptors for silo-vmm");
	}
	char log[PATH_MAX + 16];
	snprintf(log, sizeof log, "%s/vmm.log", sb->rundir);
	int lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	pid_t pid = lfd < 0 ? -1 : fork();
	if (pid < 0) {
		e = errno;
		close(hi);
		if (hnet >= 0)
			close(hnet);
		if (lfd < 0)
			return silo_fail_vm(err, SILO_ERR_INTERNAL, e, sb->id, "kvm: %s", log);
		close(lfd);
		return silo_fail_vm(err, SILO_ERR_RESOURCE_EXCEEDED, e, sb->id, "kvm: fork");
	}
	if (pid == 0) {
		/* async-signal-safe only from here (the manager is multi-threaded) */
		setsid();
		if (chdir(sb->rundir) < 0) /* the scratch disk is relative to it */
			_exit(127);
		int null = open("/dev/null", O_RDONLY);
		dup2(null, 0);
		dup2(lfd, 1);
		dup2(lfd, 2);
		/* hi and hnet are >= 200: these dup2s cannot close one another's source */
		if (dup2(hi, LEASE_FD) < 0 || (hnet >= 0 && dup2(hnet, NET_FD) < 0))
			_exit(127);
		for (int fd = hnet >= 0 ? NET_FD + 1 : LEASE_FD + 1; fd < 1024; fd++)
			close(fd);
		sigset_t all;
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		execv(bin, argv);
		_exit(127);
	}
	close(lfd);
	close(hi); /* the lease is the relay's now */
	if (hnet >= 0)
		close(hnet); /* silo-vmm's copy is its own */
	kvm_state *k = state_for(sb);
	k->is_child = true;
	sb->pid = pid;
	sb->prov = k;
	return 0;
}

/* ---------------------------------------------------------------- the processes */

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
		if (r == 0)
			return true;
	}
	return kill(sb->pid, 0) == 0 && vm_proc_is(sb->pid, VMM_BIN, sb->id) && !vm_proc_zombie(sb->pid);
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
	return vm_wait_exit(sb, k_alive, ms, 2);
}

static void remove_rundir_files(sandbox *sb)
{
	vm_rundir_remove(&rundir_layout, sb->rundir, true);
}

/* Force the jail down: SIGKILL the VMM (the relay then removes the sockets and the cgroup
 * and exits), then the relay if it lingers (the VMM has PR_SET_PDEATHSIG(SIGKILL)), then any
 * cgroup left. */
static int stop_jail(sandbox *sb)
{
	return vm_stop_jail(sb, sb->pid, sb->id, k_alive, 2);
}

static int k_terminate(sandbox *sb, int grace_ms, silo_error *err)
{
	kvm_state *k = sb->prov;
	if (k && k_alive(sb)) {
		kill(sb->pid, SIGTERM); /* the relay passes it on: silo-vmm stops its vCPUs and exits */
		wait_exit(sb, grace_ms > 0 ? grace_ms : 1000);
	}
	if (k && stop_jail(sb) < 0)
		return silo_fail_vm(err, SILO_ERR_CLEANUP_FAILED, 0, sb->id, "silo-vmm pid %d survived SIGKILL", (int)sb->pid);
	if (!k)
		vm_cgroup_remove(sb->id);
	remove_rundir_files(sb);
	free(k);
	sb->prov = NULL;
	return 0;
}

static int api_call_fds(sandbox *sb, const char *method, const char *path, const char *body, const int *fds, int nfds,
			int timeout_ms, silo_error *err);

static int k_reattach(sandbox *sb, silo_error *err)
{
	if (sb->pid <= 0 || kill(sb->pid, 0) < 0 || !vm_proc_is(sb->pid, VMM_BIN, sb->id) || !vm_proc_child(sb->pid))
		return silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, 0, sb->id, "kvm: silo-vmm %d or its VM is gone",
				    (int)sb->pid);
	kvm_state *k = state_for(sb);
	if (!path_exists(k->api)) {
		free(k);
		return silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, ENOENT, sb->id, "kvm: %s/api.sock is gone", sb->rundir);
	}
	k->is_child = false;
	sb->prov = k;
	/* A VM paused when the previous manager went away comes back running (its agent must
	 * answer the reattach handshake); harmless if it runs. */
	api_call_fds(sb, "PATCH", "/vm", "{\"state\":\"Resumed\"}", NULL, 0, 3000, NULL);
	return 0;
}

/* ---------------------------------------------------------------- the API client */

/* One request to silo-vmm's API, with fds passed alongside (SCM_RIGHTS, named "fd:0".. in
 * the body); returns the HTTP status (-1 when unreachable). The response is bounded (4 KiB)
 * and only its status line is used; fault_message goes to err. */
static int api_call_fds(sandbox *sb, const char *method, const char *path, const char *body, const int *fds, int nfds,
			int timeout_ms, silo_error *err)
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
	/* the descriptors go with the request's first bytes */
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || send_all_with_fds(fd, req, strlen(req), fds, nfds) < 0) {
		int e = errno;
		close(fd);
		return silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, e, sb->id, "kvm: silo-vmm API %s", k->api);
	}
	char resp[4096];
	fd_read_until(fd, resp, sizeof resp, now_mono_ns() + (uint64_t)timeout_ms * 1000000ULL);
	close(fd);
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
	return api_call_fds(sb, "PATCH", "/vm", "{\"state\":\"Paused\"}", NULL, 0, 5000, err) < 0 ? -1 : 0;
}

static int k_resume(sandbox *sb, silo_error *err)
{
	return api_call_fds(sb, "PATCH", "/vm", "{\"state\":\"Resumed\"}", NULL, 0, 5000, err) < 0 ? -1 : 0;
}

/* ---------------------------------------------------------------- snapshots */

/* DIR/vm.state and DIR/vm.mem, opened here (the jailed VMM cannot name them). */
static int open_snapshot_files(sandbox *sb, const char *dir, bool create, int fds[2], silo_error *err)
{
	static const char *const names[2] = {"vm.state", "vm.mem"};
	for (int i = 0; i < 2; i++) {
		char p[PATH_MAX + 16];
		snprintf(p, sizeof p, "%s/%s", dir, names[i]);
		fds[i] = open(p, (create ? O_RDWR | O_CREAT | O_TRUNC : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fds[i] < 0) {
			int e = errno;
			if (i)
				close(fds[0]);
			return silo_fail_vm(err, create ? SILO_ERR_IO_ERROR : SILO_ERR_CHECKSUM_MISMATCH, e, sb->id, "snapshot %s",
					    p);
		}
	}
	return 0;
}

/* Snapshot: silo-vmm writes the two files opened here (the core paused the VM), then the
 * scratch disk's allocated extents go beside them. */
static int k_snapshot(sandbox *sb, const char *dir, silo_error *err)
{
	if (sb->spec.network) /* silo-vmm saves no virtio-net state yet (docs/network.md "Snapshots") */
		return silo_fail_vm(err, SILO_ERR_NOT_SUPPORTED, 0, sb->id,
				    "snapshot: the kvm provider cannot snapshot a sandbox with network (use qemu)");
	int fds[2];
	if (open_snapshot_files(sb, dir, true, fds, err) < 0)
		return -1;
	int rc = api_call_fds(sb, "PUT", "/snapshot/create",
			      "{\"snapshot_type\":\"Full\",\"snapshot_path\":\"fd:0\",\"mem_file_path\":\"fd:1\"}", fds, 2,
			      120000, err);
	close(fds[0]);
	close(fds[1]);
	if (rc < 0)
		return -1;
	/* the scratch disk beside it (paused: virtio-blk writes are synchronous pwrites) */
	cleanup_free char *disk = xasprintf("%s/" VM_SCRATCH_FILE, sb->rundir),
			  *out = xasprintf("%s/" VM_SCRATCH_SNAP, dir);
	uint64_t bytes = 0;
	if (path_exists(disk) && vm_scratch_save(disk, out, &bytes, err) < 0)
		return silo_error_set_vm(err, sb->id), -1;
	return 0;
}

/* PUT /snapshot/load of DIR's files (open as fds) into the VMM just started for sb. */
static int load_snapshot(sandbox *sb, const char *dir, const int fds[2], silo_error *err)
{
	kvm_state *k = sb->prov;
	/* The socket appears once silo-vmm listens (before its jail: a few ms). */
	for (int i = 0; i < 10000 && access(k->api, F_OK) != 0 && k_alive(sb); i++) {
		struct timespec ts = {0, 500 * 1000};
		nanosleep(&ts, NULL);
	}
	json_t *b = json_pack("{s:s,s:{s:s,s:s},s:b,s:b,s:s}", "snapshot_path", "fd:0", "mem_backend", "backend_type",
			      "File", "backend_path", "fd:1", "resume_vm", 1, "verify_memory", 0, "vsock_uds_path", k->vsock);
	cleanup_free char *body = json_dumps(b, JSON_COMPACT);
	json_decref(b);
	if (api_call_fds(sb, "PUT", "/snapshot/load", body, fds, 2, 60000, err) < 0) {
		/* silo-vmm names the files fd:0 and fd:1 */
		silo_error_prefix(err, "%s/vm.state (fd:0), %s/vm.mem (fd:1)", dir, dir);
		return -1;
	}
	return 0;
}

/* Restore: a fresh jailed silo-vmm (API only, the drives, scratch disk and sockets opened
 * before its jail) loads DIR/vm.{state,mem} passed as fds: RAM is mapped copy-on-write from
 * the payload, the vsock socket is this sandbox's own. The caller verified DIR. */
static int k_restore(sandbox *sb, const vm_spec *spec, const char *dir, silo_error *err)
{
	static const vm_spec none;
	if (!spec)
		spec = &none;
	if (spec->network)
		return silo_fail_vm(err, SILO_ERR_NOT_SUPPORTED, 0, sb->id,
				    "restore: the kvm provider cannot restore a sandbox with network (use qemu)");
	char bin[PATH_MAX];
	if (find_helper_binary(VMM_BIN, bin, sizeof bin, err) < 0)
		return silo_error_set_vm(err, sb->id), -1;
	/* the snapshot's drives include an ext4 image's root disk: opened before the jail too */
	vm_boot_plan bp = {0};
	if ((spec->image || spec->rootfs) && vm_plan_boot(sb->id, "kvm", spec, true, NULL, &bp, err) < 0)
		return -1;
	int fds[2];
	if (open_snapshot_files(sb, dir, false, fds, err) < 0)
		return -1;
	/* the snapshot's scratch disk becomes this sandbox's RUNDIR/disk.img (opened relative to RUNDIR) */
	cleanup_free char *snap_disk = xasprintf("%s/" VM_SCRATCH_SNAP, dir),
			  *disk = xasprintf("%s/" VM_SCRATCH_FILE, sb->rundir);
	cleanup_strv char **av = NULL;
	int lease = -1, rc = -1;
	uint64_t scratch_mb;
	if (path_exists(snap_disk) && vm_scratch_load(snap_disk, disk, 0, err) < 0) {
		silo_error_set_vm(err, sb->id);
		goto fail;
	}
	if (common_args(sb, spec, bin, bp.rootdisk, path_exists(disk), &av, &lease, &scratch_mb, err) < 0)
		goto fail;
	if (launch(sb, bin, av, lease, -1, err) < 0) {
		lease = -1; /* launch took it */
		goto fail;
	}
	if (load_snapshot(sb, dir, fds, err) < 0) {
		silo_error e2 = {0};
		k_terminate(sb, 1000, &e2);
		goto out;
	}
	rc = 0;
	goto out;
fail:
	if (lease >= 0)
		close(lease);
	remove_rundir_files(sb);
out:
	close(fds[0]);
	close(fds[1]);
	return rc;
}

/* Templates (lib/core/template.c): what a restore of a template depends on beyond the spec.
 * The boot files as for qemu (kernel, initramfs with the agent, root disk), silo-vmm itself
 * (its snapshot format and device model), and the host's KVM: the saved vCPU state (CPUID,
 * MSRs, XSAVE layout) is only valid on the same kind of CPU and KVM, so the CPU model, the
 * hardware-virtualization flag and the kernel release are part of it. */
static int k_template_identity(const vm_spec *spec, char **out, silo_error *err)
{
	char bin[PATH_MAX];
	if (find_helper_binary(VMM_BIN, bin, sizeof bin, err) < 0)
		return -1;
	vm_boot_plan bp;
	bool keyring = false;
	/* with a keyring: the boot files must match the signed manifest, as for a cold boot */
	if (vm_plan_boot("", "kvm", spec, true, &keyring, &bp, err) < 0)
		return -1;
	struct utsname u;
	if (uname(&u) < 0)
		return silo_fail(err, SILO_ERR_INTERNAL, errno, "kvm: uname");
	char model[256] = "";
	cleanup_free char *ci = NULL;
	size_t n = 0;
	if (read_file("/proc/cpuinfo", 16u << 20, &ci, &n, NULL) == 0) {
		char *m = strstr(ci, "model name");
		if (m)
			snprintf(model, sizeof model, "%.*s", (int)strcspn(m, "\n"), m);
	}
	*out = xasprintf("host=%s %s %s\n%s\nkeyring=%d\n", cpu_has_hw_virt() ? "vmx/svm" : "pvm", u.release, u.machine,
			 model, (int)keyring);
	if (vm_file_identity("kvm", "silo-vmm", bin, out, err) < 0 || vm_file_identity("kvm", "kernel", bp.kernel, out, err) < 0 ||
	    vm_file_identity("kvm", "initrd", bp.initrd, out, err) < 0 ||
	    vm_file_identity("kvm", "rootdisk", bp.rootdisk, out, err) < 0) {
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

static void k_residue(sandbox *sb, char ***out)
{
	bool relay = sb->pid > 0 && kill(sb->pid, 0) == 0 && vm_proc_is(sb->pid, VMM_BIN, sb->id) &&
		     !vm_proc_zombie(sb->pid);
	vm_residue(&rundir_layout, sb->id, sb->rundir, relay ? sb->pid : 0, "silo-vmm relay", "silo-vmm", out);
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
	.net = PROVIDER_NET_STREAM, /* silo-vmm's virtio-net on passt (docs/network.md) */
	.probe = k_probe,
	.spawn = k_spawn,
	.connect = k_connect,
	.terminate = k_terminate,
	.alive = k_alive,
	.reattach = k_reattach,
	.pause = k_pause,
	.resume = k_resume,
	.snapshot = k_snapshot,
	.restore = k_restore,
	.residue = k_residue,
	.diagnostics = k_diagnostics,
	.template_identity = k_template_identity,
};
