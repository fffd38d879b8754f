/* SPDX-License-Identifier: Apache-2.0
 * qemu provider: a Linux microVM under qemu-system-x86_64 (-M microvm), jailed.
 *
 * KVM acceleration is used only when the CPU has real VT-x/AMD-V (vmx/svm in
 * /proc/cpuinfo) and /dev/kvm opens; otherwise TCG (this includes PVM hosts,
 * whose /dev/kvm cannot run a Linux guest to userspace). The agent channel is
 * a virtio-serial port named "silo.agent" whose host end is the unix socket
 * RUNDIR/agent.sock. Files in RUNDIR:
 *   agent.sock  agent channel        qmp.sock  QMP (stop/cont/quit/migrate)
 *     (both bound and listened on here, mode 0600, and handed to QEMU as fds)
 *   serial.log  guest console        qemu.log  QEMU's stderr and the jailer's
 *     (written by silo-jailer's relay, each capped keeping its tail: vmm/logcap.h)
 *   disk.img    the scratch disk: the guest's writable layer, the disk budget (vm.h)
 *   root/       empty on the host; the jail's root in QEMU's own mount namespace
 * QEMU never runs as root: silo-jailer (vmm/jailer.c) starts it as a per-sandbox
 * uid leased from VM_UID_BASE, in its own mount/net/ipc/uts namespaces whose root
 * holds only the QEMU binary, its libraries and firmware, the kernel and initrd
 * and /dev/null (+ /dev/kvm with KVM); drives come in as fds (-add-fd), with no
 * capabilities, no_new_privs, a seccomp filter on top of QEMU's -sandbox, rlimits
 * and the cgroup silo/<id>. sb->pid is the jailer (our child); QEMU is its child.
 * Boot: the guest kernel (PVH vmlinux) + the image's initramfs; ext4 images
 * are attached read-only as the first virtio-blk device and mounted by the
 * loader under an overlay whose upper layer is the scratch disk (silo.root=,
 * silo.scratch=). docs/providers.md ("qemu") and docs/images.md describe the details.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <linux/magic.h>
#include <time.h>
#include <unistd.h>

#include "common/argv.h"
#include "common/cgroup.h"
#include "common/fdread.h"
#include "common/unixsock.h"
#include "common/util.h"
#include "core/channel.h"
#include "core/provider.h"
#include "core/sandbox.h"
#include "image/image.h"
#include "providers/vm.h"
#include "snapshot/snapshot.h"
#include "trust/trust.h"

#define QEMU_DEFAULT_BIN "qemu-system-x86_64"
#define QEMU_CMDLINE_MAX 2048
#define QMP_LINE_MAX (64 * 1024)
#define QEMU_LOG_LIMIT (4ull << 20)      /* qemu.log cap */
#define SERIAL_TAIL_MAX 1500
#define JAILER_BIN "silo-jailer"
#define JAIL_OVERHEAD_MIB 512             /* QEMU + the TCG translation cache, on top of guest RAM */
#define JAIL_PIDS 256                     /* vCPUs + QEMU's I/O thread pool (64) + helpers */

typedef struct qemu_state {
	char agent_sock[PATH_MAX];
	char qmp_sock[PATH_MAX];
	char serial_log[PATH_MAX];
	char qemu_log[PATH_MAX];
	bool is_child;          /* we forked the jailer: reap with waitpid */
	bool exited;            /* reaped */
	int exit_status;
	char accel[8];
	uid_t uid;              /* the jail's uid (= gid), leased for this sandbox */
} qemu_state;

static const char *const rundir_files[] = {"agent.sock", "qmp.sock", "serial.log", "qemu.log", VM_SCRATCH_FILE};
/* root: empty on the host (the jail's tmpfs lives in QEMU's mount namespace) */
static const vm_rundir rundir_layout = {rundir_files, ARRAY_SIZE(rundir_files), "root"};

/* ---------------------------------------------------------------- helpers */

static int find_qemu(char *out, size_t len)
{
	const char *e = getenv("SILO_QEMU");
	if (e && *e) {
		snprintf(out, len, "%s", e);
		return access(out, X_OK) == 0 ? 0 : -1;
	}
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	cleanup_free char *dup = xstrdup(path);
	char *save = NULL;
	for (char *d = strtok_r(dup, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(out, len, "%s/%s", d, QEMU_DEFAULT_BIN);
		if (access(out, X_OK) == 0)
			return 0;
	}
	return -1;
}

static bool cpu_has_hw_virt(void)
{
	char *buf = NULL;
	size_t len = 0;
	if (read_file("/proc/cpuinfo", 4u << 20, &buf, &len, NULL) < 0)
		return false;
	bool found = false;
	for (char *line = buf; line && *line && !found;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (!strncmp(line, "flags", 5)) {
			char *save = NULL;
			for (char *t = strtok_r(line, " \t", &save); t; t = strtok_r(NULL, " \t", &save))
				if (!strcmp(t, "vmx") || !strcmp(t, "svm"))
					found = true;
			break; /* the first CPU is representative */
		}
		line = nl ? nl + 1 : NULL;
	}
	free(buf);
	return found;
}

/* Who may open /dev/kvm: 0 = anyone, a gid = that group, -1 = only root. */
static long long kvm_group(void)
{
	struct stat st;
	if (stat("/dev/kvm", &st) < 0)
		return -1;
	if ((st.st_mode & 0006) == 0006)
		return 0;
	if ((st.st_mode & 0060) == 0060 && st.st_gid != 0)
		return (long long)st.st_gid;
	return -1;
}

/* "kvm" when real hardware virtualization is usable by the jailed QEMU, else "tcg".
 * SILO_QEMU_ACCEL overrides (a forced kvm that the jail cannot use fails the spawn). */
static const char *pick_accel(char *why, size_t why_len)
{
	const char *o = getenv("SILO_QEMU_ACCEL");
	if (o && (!strcmp(o, "kvm") || !strcmp(o, "tcg"))) {
		snprintf(why, why_len, "forced by SILO_QEMU_ACCEL");
		return o;
	}
	if (!cpu_has_hw_virt()) {
		snprintf(why, why_len, "no vmx/svm CPU flag (e.g. PVM or nested without VT-x)");
		return "tcg";
	}
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, why_len, "/dev/kvm: %s", strerror(errno));
		return "tcg";
	}
	close(fd);
	if (geteuid() == 0 && kvm_group() < 0) {
		snprintf(why, why_len, "/dev/kvm opens only for root and QEMU runs as an unprivileged uid "
				       "(give it mode 0660 and a group, e.g. kvm)");
		return "tcg";
	}
	snprintf(why, why_len, "vmx/svm present and /dev/kvm usable");
	return "kvm";
}

/* Run `qemu --version`, return the first line (bounded, 3 s). */
static int qemu_version(const char *bin, char *out, size_t len)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		dup2(p[1], 1);
		int nul = open("/dev/null", O_RDWR);
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(nul, 2);
		}
		execl(bin, bin, "--version", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	char buf[512];
	fd_read_until(p[0], buf, sizeof buf, now_mono_ns() + 3000000000ull);
	close(p[0]);
	kill(pid, SIGKILL); /* no-op if it already exited */
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	/* "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u16)" */
	const char *v = strstr(buf, "version ");
	if (!v)
		return -1;
	v += strlen("version ");
	size_t i = 0;
	while (v[i] && (isdigit((unsigned char)v[i]) || v[i] == '.') && i < 30)
		i++;
	if (i == 0)
		return -1;
	snprintf(out, len, "QEMU %.*s", (int)i, v);
	return 0;
}

/* QEMU option values: a comma is written as ",,". Control characters are refused. */
static int qemu_escape(const char *in, char *out, size_t len)
{
	size_t o = 0;
	for (const char *p = in; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return -1;
		size_t need = *p == ',' ? 2 : 1;
		if (o + need >= len)
			return -1;
		out[o++] = *p;
		if (*p == ',')
			out[o++] = ',';
	}
	out[o] = '\0';
	return 0;
}

static int unix_connect(const char *path, silo_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof sa.sun_path)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, ENAMETOOLONG, "socket path too long: %s", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		close(fd);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "connect %s", path);
	}
	return fd;
}

static qemu_state *state_for(sandbox *sb)
{
	qemu_state *q = xcalloc(1, sizeof *q);
	snprintf(q->agent_sock, sizeof q->agent_sock, "%s/agent.sock", sb->rundir);
	snprintf(q->qmp_sock, sizeof q->qmp_sock, "%s/qmp.sock", sb->rundir);
	snprintf(q->serial_log, sizeof q->serial_log, "%s/serial.log", sb->rundir);
	snprintf(q->qemu_log, sizeof q->qemu_log, "%s/qemu.log", sb->rundir);
	return q;
}

/* Is pid this sandbox's silo-jailer? Guards signals against pid reuse after a
 * reattach: the executable and the VM tag "silo-<id>" on its command line. */
static bool pid_is_jailer(pid_t pid, const char *id)
{
	return vm_proc_is(pid, JAILER_BIN, id);
}

static bool q_alive(sandbox *sb)
{
	qemu_state *q = sb->prov;
	if (sb->pid <= 0)
		return false;
	if (q && q->exited)
		return false;
	if (q && q->is_child) {
		int st;
		pid_t r = waitpid(sb->pid, &st, WNOHANG);
		if (r == sb->pid) {
			q->exited = true;
			q->exit_status = st;
			return false;
		}
		if (r < 0 && errno == ECHILD) /* reaped elsewhere */
			return kill(sb->pid, 0) == 0 && pid_is_jailer(sb->pid, sb->id) && !vm_proc_zombie(sb->pid);
		return true;
	}
	return kill(sb->pid, 0) == 0 && pid_is_jailer(sb->pid, sb->id) && !vm_proc_zombie(sb->pid);
}

/* Wait up to ms for the process to exit (reaping it if it is our child). */
static bool wait_exit(sandbox *sb, int ms)
{
	return vm_wait_exit(sb, q_alive, ms, 5);
}

/* Last `max` bytes of a file, non-printables replaced by '.', into out. */
static void file_tail(const char *path, size_t max, char *out, size_t len)
{
	out[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	struct stat st;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return;
	}
	if (max >= len)
		max = len - 1;
	off_t off = st.st_size > (off_t)max ? st.st_size - (off_t)max : 0;
	ssize_t n = pread(fd, out, max, off);
	close(fd);
	if (n <= 0) {
		out[0] = '\0';
		return;
	}
	out[n] = '\0';
	for (ssize_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)out[i];
		if (c != '\n' && (c < 0x20 || c >= 0x7f))
			out[i] = '.';
	}
}

/* ---------------------------------------------------------------- QMP */

/* Read one '\n'-terminated line (bounded) with a deadline. */
static int qmp_readline(int fd, char *buf, size_t len, uint64_t deadline, silo_error *err)
{
	size_t n = 0;
	for (;;) {
		if (n + 1 >= len)
			return silo_fail(err, SILO_ERR_PROTOCOL, 0, "QMP: line longer than %zu bytes", len);
		uint64_t now = now_mono_ns();
		if (now >= deadline)
			return silo_fail(err, SILO_ERR_TIMEOUT, ETIMEDOUT, "QMP: no reply");
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int pr = poll(&pfd, 1, (int)((deadline - now) / 1000000) + 1);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "QMP: poll");
		if (pr == 0)
			continue;
		ssize_t r = read(fd, buf + n, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "QMP: read");
		if (r == 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, ECONNRESET, "QMP: connection closed");
		if (buf[n] == '\n') {
			buf[n] = '\0';
			return (int)n;
		}
		n++;
	}
}

/* Wait for the reply to the last command: skip events, return 0 on "return" (its value
 * in *ret when ret is not NULL), -1 on "error". */
static int qmp_reply(int fd, uint64_t deadline, json_t **ret, silo_error *err)
{
	if (ret)
		*ret = NULL;
	cleanup_free char *line = xmalloc(QMP_LINE_MAX);
	for (int i = 0; i < 1000; i++) {
		if (qmp_readline(fd, line, QMP_LINE_MAX, deadline, err) < 0)
			return -1;
		json_t *j = json_loads(line, 0, NULL);
		if (!j)
			return silo_fail(err, SILO_ERR_PROTOCOL, 0, "QMP: malformed reply");
		int rc = 1;
		json_t *r = json_object_get(j, "return");
		if (r) {
			if (ret)
				*ret = json_incref(r);
			rc = 0;
		} else if (json_object_get(j, "error")) {
			const char *d = json_string_value(json_object_get(json_object_get(j, "error"), "desc"));
			silo_fail(err, SILO_ERR_IO_ERROR, 0, "QMP: %s", d ? d : "error");
			rc = -1;
		}
		json_decref(j);
		if (rc <= 0)
			return rc;
	}
	return silo_fail(err, SILO_ERR_PROTOCOL, 0, "QMP: too many events without a reply");
}

/* Run one QMP command ("stop", "cont", "quit", "query-status"). For "quit" a closed connection
 * after sending counts as success. */
static int qmp_command(qemu_state *q, const char *cmd, int timeout_ms, silo_error *err)
{
	uint64_t deadline = now_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
	cleanup_close int fd = unix_connect(q->qmp_sock, err);
	if (fd < 0)
		return -1;
	cleanup_free char *line = xmalloc(QMP_LINE_MAX);
	if (qmp_readline(fd, line, QMP_LINE_MAX, deadline, err) < 0) /* greeting */
		return -1;
	if (!strstr(line, "\"QMP\""))
		return silo_fail(err, SILO_ERR_PROTOCOL, 0, "QMP: unexpected greeting");
	static const char caps[] = "{\"execute\":\"qmp_capabilities\"}\n";
	if (write_all(fd, caps, sizeof caps - 1) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "QMP: write");
	if (qmp_reply(fd, deadline, NULL, err) < 0)
		return -1;
	char req[128];
	snprintf(req, sizeof req, "{\"execute\":\"%s\"}\n", cmd);
	if (write_all(fd, req, strlen(req)) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "QMP: write");
	silo_error e2 = {0};
	if (qmp_reply(fd, deadline, NULL, &e2) < 0) {
		if (!strcmp(cmd, "quit") && e2.sys_errno == ECONNRESET)
			return 0;
		if (err)
			*err = e2;
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- probe */

static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static char probe_bin[PATH_MAX];
static struct timespec probe_mtime;
static char probe_version[64];

static void q_probe(provider_info *info)
{
	memset(info, 0, sizeof *info);
	info->name = "qemu";
	char bin[PATH_MAX];
	if (find_qemu(bin, sizeof bin) < 0) {
		snprintf(info->accel, sizeof info->accel, "none");
		snprintf(info->reason, sizeof info->reason,
			 "%s not found (apt-get install qemu-system-x86, or set SILO_QEMU)", QEMU_DEFAULT_BIN);
		return;
	}
	struct stat st;
	if (stat(bin, &st) < 0) {
		snprintf(info->reason, sizeof info->reason, "%s: %s", bin, strerror(errno));
		return;
	}
	pthread_mutex_lock(&probe_lock);
	if (strcmp(probe_bin, bin) != 0 || probe_mtime.tv_sec != st.st_mtim.tv_sec ||
	    probe_mtime.tv_nsec != st.st_mtim.tv_nsec || !probe_version[0]) {
		probe_version[0] = '\0';
		if (qemu_version(bin, probe_version, sizeof probe_version) == 0) {
			snprintf(probe_bin, sizeof probe_bin, "%s", bin);
			probe_mtime = st.st_mtim;
		}
	}
	snprintf(info->version, sizeof info->version, "%s", probe_version);
	pthread_mutex_unlock(&probe_lock);
	char why[128];
	snprintf(info->accel, sizeof info->accel, "%s", pick_accel(why, sizeof why));
	if (!info->version[0]) {
		snprintf(info->reason, sizeof info->reason, "%s --version failed or printed no version", bin);
		return;
	}
	char kpath[PATH_MAX];
	silo_error kerr = {0};
	if (guest_kernel_path(kpath, sizeof kpath, &kerr) < 0 || find_helper_binary(JAILER_BIN, kpath, sizeof kpath, &kerr) < 0 ||
	    vm_scratch_probe(&kerr) < 0) {
		snprintf(info->reason, sizeof info->reason, "%s", kerr.message);
		return;
	}
	info->available = true;
}

/* ---------------------------------------------------------------- spawn */

/* ---------------------------------------------------------------- jail teardown */

/* and_dir: the core may still keep files there; then it removes the dir */
static void remove_rundir_files(sandbox *sb, bool and_dir)
{
	vm_rundir_remove(&rundir_layout, sb->rundir, and_dir);
}

/* Force the jail down: SIGKILL QEMU (the jailer then drains the logs, removes the
 * cgroup and exits), then the jailer if it lingers, then any cgroup left. */
static int stop_jail(sandbox *sb)
{
	return vm_stop_jail(sb, sb->pid, sb->id, q_alive, 5);
}

/* ---------------------------------------------------------------- the jail's files
 * What QEMU opens to start, found with strace on QEMU 7.2 (docs/providers.md): its
 * binary, the ELF interpreter and the shared libraries the dynamic loader resolves
 * (LD_TRACE_LOADED_OBJECTS, as ldd does, run once per QEMU binary), the TCG
 * accelerator module, and the microvm firmware (qboot.rom, pvh.bin; linuxboot*.bin
 * for bzImage kernels). Each is bound read-only at the path QEMU looks for it:
 * modules and firmware are found relative to the binary's directory. */

static pthread_mutex_t jf_lock = PTHREAD_MUTEX_INITIALIZER;
static char jf_key[PATH_MAX + 96];
static char **jf_pairs;   /* src, dst, src, dst, ... */

static void pair_add(char ***v, const char *src, const char *dst)
{
	size_t n = *v ? strv_len(*v) : 0;
	*v = xrealloc(*v, (n + 3) * sizeof **v);
	(*v)[n] = xstrdup(src);
	(*v)[n + 1] = xstrdup(dst);
	(*v)[n + 2] = NULL;
}

/* Run `env LD_TRACE_LOADED_OBJECTS=1 prog [arg]` (what ldd does: the dynamic loader
 * lists what it would map and exits without running prog) and add each library. */
static int trace_libs(const char *prog, const char *arg, char ***pairs, silo_error *err)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "pipe");
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]), close(p[1]);
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, errno, "fork");
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);
		dup2(nul, 0);
		dup2(p[1], 1);
		dup2(nul, 2);
		char *envp[] = {"LD_TRACE_LOADED_OBJECTS=1", NULL};
		char *argv[] = {(char *)prog, (char *)arg, NULL};
		execve(prog, argv, envp);
		_exit(127);
	}
	close(p[1]);
	cleanup_free char *out = xmalloc(64 * 1024);
	size_t n = fd_read_until(p[0], out, 64 * 1024, now_mono_ns() + 10000000000ull);
	close(p[0]);
	kill(pid, SIGKILL);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	/* "\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)", "\t/lib64/ld-linux-x86-64.so.2 (0x...)" */
	char *save = NULL;
	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *arrow = strstr(line, "=> "), *path = arrow ? arrow + 3 : line + strspn(line, " \t");
		if (!strncmp(path, "not found", 9))
			return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, 0, "qemu jail: %s: library %.*s not found",
					 arg ? arg : prog, (int)strcspn(line + 1, " "), line + 1);
		if (path[0] != '/')
			continue;   /* linux-vdso.so.1, statically linked */
		path[strcspn(path, " ")] = '\0';
		char real[PATH_MAX];
		if (!realpath(path, real))
			return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, errno, "qemu jail: %s", path);
		bool dup = false;
		for (char **q = *pairs; q && *q && !dup; q += 2)
			dup = !strcmp(q[1], path);
		if (!dup)
			pair_add(pairs, real, path);
	}
	if (!*pairs && strstr(out, "statically linked") == NULL && n == 0)
		return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, 0, "qemu jail: %s listed no libraries", prog);
	return 0;
}

/* "<dir of the real binary>/../<rel>" with the ".." resolved lexically. */
static void beside_bin(const char *real_bin, const char *rel, char *out, size_t len)
{
	char d[PATH_MAX];
	snprintf(d, sizeof d, "%s", real_bin);
	char *s = strrchr(d, '/');
	if (s)
		*s = '\0';
	s = strrchr(d, '/');   /* up one: /usr/bin -> /usr */
	if (s && s != d)
		*s = '\0';
	else
		d[0] = '\0';
	snprintf(out, len, "%s/%s", d, rel);
}

static int build_jail_files(const char *real_bin, char ***pairs, silo_error *err)
{
	pair_add(pairs, real_bin, real_bin);
	if (trace_libs(real_bin, "--version", pairs, err) < 0)
		return -1;
	/* the TCG accelerator is a module (Debian builds QEMU with modules); its own libraries too */
	static const char *const moddirs[] = {"lib/x86_64-linux-gnu/qemu", "lib64/qemu", "lib/qemu"};
	char interp[PATH_MAX] = "";
	for (char **q = *pairs; q && *q; q += 2)
		if (strstr(q[1], "/ld-linux"))
			snprintf(interp, sizeof interp, "%s", q[1]);
	for (size_t i = 0; i < ARRAY_SIZE(moddirs); i++) {
		char m[PATH_MAX + 64];
		beside_bin(real_bin, moddirs[i], m, sizeof m - 32);
		strcat(m, "/accel-tcg-x86_64.so");
		char real[PATH_MAX];
		if (!realpath(m, real))
			continue;
		pair_add(pairs, real, m);
		if (interp[0] && trace_libs(interp, real, pairs, err) < 0)
			return -1;
		break;
	}
	static const char *const fw[] = {"qboot.rom", "bios-microvm.bin", "pvh.bin", "linuxboot_dma.bin",
					 "linuxboot.bin", "multiboot_dma.bin"};
	char data[PATH_MAX];
	beside_bin(real_bin, "share/qemu", data, sizeof data);
	for (size_t i = 0; i < ARRAY_SIZE(fw); i++) {
		char f[PATH_MAX + 64], real[PATH_MAX];
		snprintf(f, sizeof f, "%s/%s", data, fw[i]);
		if (realpath(f, real))
			pair_add(pairs, real, f);
	}
	return 0;
}

/* The cached list for bin (rebuilt when the binary or any source file changed). */
static int jail_files(const char *bin, char ***out, silo_error *err)
{
	char real[PATH_MAX];
	struct stat st;
	if (!realpath(bin, real) || stat(real, &st) < 0)
		return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, errno, "qemu: %s", bin);
	char key[sizeof jf_key];
	snprintf(key, sizeof key, "%s %llu %lld.%09ld %lld", real, (unsigned long long)st.st_ino,
		 (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, (long long)st.st_size);
	pthread_mutex_lock(&jf_lock);
	bool fresh = jf_pairs && !strcmp(key, jf_key);
	for (char **q = jf_pairs; fresh && *q; q += 2)
		fresh = access(q[0], R_OK) == 0;   /* a library replaced by an upgrade */
	int rc = 0;
	if (!fresh) {
		char **pairs = NULL;
		rc = build_jail_files(real, &pairs, err);
		if (rc == 0) {
			strv_free(jf_pairs);
			jf_pairs = pairs;
			snprintf(jf_key, sizeof jf_key, "%s", key);
		} else {
			strv_free(pairs);
		}
	}
	if (rc == 0)
		*out = strv_dup(jf_pairs);
	pthread_mutex_unlock(&jf_lock);
	return rc;
}

/* Fds handed to the jailer: a source (close-on-exec, above FD_HIGH) and the number the
 * jailer and QEMU see it under. */
#define FD_HIGH 200
#define FD_FIRST 3
enum { MAX_PASS = 48 };
typedef struct fd_pass {
	int src[MAX_PASS], dst[MAX_PASS];
	int n;
} fd_pass;

static int pass_fd(fd_pass *fp, int fd)
{
	if (fd < 0)
		return -1;
	int hi = fcntl(fd, F_DUPFD_CLOEXEC, FD_HIGH);
	close(fd);
	if (hi < 0 || fp->n == MAX_PASS) {
		if (hi >= 0)
			close(hi);
		return -1;
	}
	fp->src[fp->n] = hi;
	fp->dst[fp->n] = FD_FIRST + fp->n;
	return fp->dst[fp->n++];
}

static void pass_close(fd_pass *fp)
{
	for (int i = 0; i < fp->n; i++)
		close(fp->src[i]);
	fp->n = 0;
}

#define QEMU_NET_MTU 65520   /* virtio-net host_mtu: big frames, far fewer of them under TCG */

/* network = true (docs/network.md): the guest's NIC is a virtio-net device on
 * QEMU's stream netdev, connected to passt through a socket handed in as an
 * fd (QEMU stays AF_UNIX-only and opens nothing). */
static int add_network(sandbox *sb, const vm_spec *spec, fd_pass *fp, char ***a, char ***qa, silo_error *err)
{
	int nfd = sb->net_fd >= 0 ? pass_fd(fp, fcntl(sb->net_fd, F_DUPFD_CLOEXEC, 3)) : (errno = EBADF, -1);
	if (nfd < 0)
		return silo_fail_vm(err, SILO_ERR_IO_ERROR, errno, sb->id, "qemu: network socket");
	argv_optf(a, "--keep-fd", "%d", nfd);
	argv_optf(qa, "-netdev", "stream,id=net0,server=off,addr.type=fd,addr.str=%d", nfd);
	argv_optf(qa, "-device", "virtio-net-device,netdev=net0,host_mtu=%u%s%s", QEMU_NET_MTU,
		  spec->mac ? ",mac=" : "", spec->mac ? spec->mac : "");
	return 0;
}

typedef enum { SCRATCH_CREATE, SCRATCH_EXISTS, SCRATCH_NONE } scratch_mode;

/* Start QEMU for spec in its jail; with incoming, under -incoming defer (a snapshot
 * is loaded over QMP afterwards, see q_restore). scratch: create RUNDIR/disk.img from
 * the disk budget, use the one q_restore made (scratch_mb MiB), or none (a snapshot
 * taken before the scratch disk existed). */
static int q_start(sandbox *sb, const vm_spec *spec, bool incoming, scratch_mode scratch, uint64_t scratch_mb,
		   silo_error *err)
{
	char bin[PATH_MAX], jailer[PATH_MAX];
	if (find_qemu(bin, sizeof bin) < 0)
		return silo_fail_vm(err, SILO_ERR_PROVIDER_UNAVAILABLE, ENOENT, sb->id,
				    "qemu: %s not found (apt-get install qemu-system-x86, or set SILO_QEMU)",
				    QEMU_DEFAULT_BIN);
	if (find_helper_binary(JAILER_BIN, jailer, sizeof jailer, err) < 0)
		return silo_error_set_vm(err, sb->id), -1;
	vm_boot_plan bp;
	/* with a keyring: every file that boots must match the signed manifest */
	bool keyring = false;
	if (vm_plan_boot(sb->id, "qemu", spec, false, &keyring, &bp, err) < 0)
		return -1;
	uint64_t budget_mb = 0, largest = 0;
	if (vm_disk_budget(spec, &budget_mb, &largest, err) < 0)
		return silo_error_set_vm(err, sb->id), -1;
	if (scratch == SCRATCH_CREATE)
		scratch_mb = budget_mb;
	if (scratch != SCRATCH_NONE && scratch_mb << 20 > largest)
		largest = scratch_mb << 20;
	/* drives: the image root disk first (=/dev/vda), the spec's drives, the scratch disk last */
	unsigned nd = (bp.rootdisk[0] ? 1 : 0) + (unsigned)spec->n_drives + (scratch != SCRATCH_NONE);
	if (nd > 16)
		return silo_fail_vm(err, SILO_ERR_RESOURCE_EXCEEDED, 0, sb->id, "drives: at most 16 block devices");
	char why[128];
	const char *accel = pick_accel(why, sizeof why);
	long long kvm_gid = 0;
	if (!strcmp(accel, "kvm") && geteuid() == 0 && (kvm_gid = kvm_group()) < 0)
		return silo_fail_vm(err, SILO_ERR_PROVIDER_UNAVAILABLE, EACCES, sb->id,
				    "qemu: /dev/kvm can only be opened by root, and QEMU runs as an unprivileged uid: "
				    "give /dev/kvm mode 0660 and a group (Debian's udev rule uses group kvm)");

	char silo_args[256], scratch_arg[32] = "";
	if (scratch != SCRATCH_NONE)
		snprintf(scratch_arg, sizeof scratch_arg, " silo.scratch=/dev/vd%c", (char)('a' + nd - 1));
	snprintf(silo_args, sizeof silo_args,
		 /* silo.poweroff=reboot: without ACPI a power-off only halts; the agent reboots
		  * instead and -no-reboot turns that into a QEMU exit; no_timer_check: under TCG on a
		  * loaded host the kernel's IO-APIC timer check can miss its ticks and panic ("IO-APIC +
		  * timer doesn't work"), seen with five guests booting at once on 2 busy cores */
		 "console=ttyS0 reboot=t panic=-1 random.trust_cpu=on no_timer_check silo.poweroff=reboot%s%s%s%s",
		 getenv("SILO_QEMU_VERBOSE") ? "" : " quiet", bp.rootdisk[0] ? " silo.root=/dev/vda" : "", scratch_arg,
		 bp.hostname_arg);
	cleanup_free char *cmdline = NULL;
	if (vm_cmdline_compose(spec->cmdline, silo_args, keyring, &cmdline, err) < 0)
		return silo_error_set_vm(err, sb->id), -1;

	qemu_state *q = state_for(sb);
	for (size_t i = 0; i < ARRAY_SIZE(rundir_files); i++) {
		if (scratch == SCRATCH_EXISTS && !strcmp(rundir_files[i], VM_SCRATCH_FILE))
			continue;
		char p[PATH_MAX + 32];
		snprintf(p, sizeof p, "%s/%s", sb->rundir, rundir_files[i]);
		unlink(p);
	}
	snprintf(q->accel, sizeof q->accel, "%s", accel);
	char **a = NULL;
	fd_pass fp = {0};
	char **files = NULL;
	char p[PATH_MAX + 64];
	cleanup_free char *real_bin = NULL;
	int rc = -1;
	snprintf(p, sizeof p, "%s/root", sb->rundir);
	if (mkdir(p, 0700) < 0 && errno != EEXIST) {
		silo_fail_vm(err, SILO_ERR_IO_ERROR, errno, sb->id, "mkdir %s", p);
		goto fail;
	}
	if (scratch == SCRATCH_CREATE && vm_scratch_create(sb->rundir, scratch_mb, err) < 0) {
		silo_error_set_vm(err, sb->id);
		goto fail;
	}
	if (jail_files(bin, &files, err) < 0) {
		silo_error_set_vm(err, sb->id);
		goto fail;
	}
	/* fds: 3 agent socket, 4 QMP socket, 5 the uid lease (kept by the jailer only), then drives */
	int agent_fd = pass_fd(&fp, unix_listen(q->agent_sock, "qemu", err));
	int qmp_fd = agent_fd < 0 ? -1 : pass_fd(&fp, unix_listen(q->qmp_sock, "qemu", err));
	if (qmp_fd < 0)
		goto fail_err;
	int lease = -1;
	if (vm_uid_lease(sb->id, &q->uid, &lease, err) < 0 || (lease = pass_fd(&fp, lease)) < 0)
		goto fail_err;

	/* silo-jailer's own arguments */
	real_bin = realpath(bin, NULL);
	argv_addv(&a, jailer, "--id", sb->id, "--root", p, NULL);
	if (geteuid() == 0) {
		argv_optf(&a, "--uid", "%u", (unsigned)q->uid);
		argv_optf(&a, "--gid", "%u", (unsigned)q->uid);
		if (kvm_gid > 0)
			argv_optf(&a, "--group", "%lld", kvm_gid);
		uint64_t mem = (spec->memory_mb ? spec->memory_mb : 512) + JAIL_OVERHEAD_MIB;
		struct statfs sfs;
		/* a scratch disk on tmpfs is RAM charged to QEMU's cgroup */
		if (scratch != SCRATCH_NONE && statfs(sb->rundir, &sfs) == 0 && sfs.f_type == TMPFS_MAGIC)
			mem += scratch_mb;
		argv_optf(&a, "--memory-mib", "%llu", (unsigned long long)mem);
		argv_optf(&a, "--cpus", "%u", (spec->vcpus ? spec->vcpus : 1) + 1);
		argv_optf(&a, "--pids", "%d", JAIL_PIDS);
	}
	argv_optf(&a, "--nproc", "%d", JAIL_PIDS);
	argv_optf(&a, "--fsize", "%llu", (unsigned long long)(largest > (1u << 20) ? largest : (1u << 20)));
	argv_optf(&a, "--hold-fd", "%d", lease);
	argv_optf(&a, "--keep-fd", "%d", agent_fd);
	argv_optf(&a, "--keep-fd", "%d", qmp_fd);
	argv_optf(&a, "--log", "1:%llu:%s", (unsigned long long)vm_serial_log_max(), q->serial_log);
	argv_optf(&a, "--log", "2:%llu:%s", QEMU_LOG_LIMIT, q->qemu_log);
	for (char **f = files; f && *f; f += 2)
		argv_addv(&a, "--ro", f[0], f[1], NULL);
	argv_addv(&a, "--ro", bp.kernel, "/boot/kernel", NULL);
	if (bp.initrd[0])
		argv_addv(&a, "--ro", bp.initrd, "/boot/initrd", NULL);
	argv_addv(&a, "--dev", "/dev/null", "/dev/null", NULL);   /* QEMU probes OFD locks on it */
	if (!strcmp(accel, "kvm"))
		argv_addv(&a, "--dev", "/dev/kvm", "/dev/kvm", NULL);

	/* QEMU, as the jail sees it */
	char **qa = NULL;
	argv_add(&qa, real_bin ? real_bin : bin);
	argv_optf(&qa, "-name", "silo-%s", sb->id);
	argv_addv(&qa, "-M", "microvm,acpi=off", "-accel", !strcmp(accel, "kvm") ? "kvm" : "tcg,tb-size=128", "-cpu",
		  !strcmp(accel, "kvm") ? "host" : "max", NULL);
	argv_optf(&qa, "-m", "%u", spec->memory_mb ? spec->memory_mb : 512);
	argv_optf(&qa, "-smp", "%u", spec->vcpus ? spec->vcpus : 1);
	argv_addv(&qa, "-nodefaults", "-no-user-config", "-nographic", "-no-reboot", NULL);
	/* QEMU's own seccomp filter: a guest that escapes into QEMU cannot exec, setuid or
	 * use obsolete syscalls (the jailer's filter is stacked under it) */
	argv_addv(&qa, "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny", NULL);
	argv_addv(&qa, "-kernel", "/boot/kernel", NULL);
	if (bp.initrd[0])
		argv_addv(&qa, "-initrd", "/boot/initrd", NULL);
	argv_addv(&qa, "-append", cmdline, NULL);
	/* the console goes to QEMU's stdout: a pipe the jailer drains into serial.log */
	argv_addv(&qa, "-chardev", "stdio,id=serial0,signal=off", "-serial", "chardev:serial0", NULL);
	argv_addv(&qa, "-device", "virtio-serial-device", NULL);
	argv_optf(&qa, "-chardev", "socket,id=agent,fd=%d,server=on,wait=off", agent_fd);
	argv_addv(&qa, "-device", "virtserialport,chardev=agent,name=silo.agent", NULL);
	argv_optf(&qa, "-chardev", "socket,id=qmp,fd=%d,server=on,wait=off", qmp_fd);
	argv_addv(&qa, "-mon", "chardev=qmp,mode=control", NULL);
	argv_addv(&qa, "-device", "virtio-rng-device", NULL);
	if (spec->network && add_network(sb, spec, &fp, &a, &qa, err) < 0)
		goto fail;
	if (incoming)
		argv_addv(&qa, "-incoming", "defer", NULL);
	/* Drives come in as fds in an fdset (-add-fd): QEMU opens no drive path. A writable
	 * drive gets a read-only and a read-write fd (QEMU opens both ways). */
	unsigned set = 1;
	for (size_t i = 0; i <= spec->n_drives + 1; i++) {
		const char *path, *what = NULL;
		bool ro = true;
		char did[32], serial[64];
		char scratch_path[PATH_MAX + 32];
		if (i == 0) {
			if (!bp.rootdisk[0])
				continue;
			path = bp.rootdisk, what = "boot.rootfs";
			snprintf(did, sizeof did, "root");
			serial[0] = '\0';
		} else if (i <= spec->n_drives) {
			const spec_drive *d = &spec->drives[i - 1];
			if (!d->path) {
				silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, sb->id, "drives[%zu].path: missing", i - 1);
				goto fail;
			}
			if (d->root && bp.rootdisk[0]) {
				silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, sb->id,
					     "drives[%zu].root: the image already provides the root disk", i - 1);
				goto fail;
			}
			path = d->path, ro = d->read_only;
			snprintf(did, sizeof did, "d%zu", i - 1);
			/* the serial carries the spec id for in-guest lookup */
			if (!d->id || qemu_escape(d->id, serial, sizeof serial) < 0 || strlen(serial) > 20)
				snprintf(serial, sizeof serial, "drive%zu", i - 1);
		} else {
			if (scratch == SCRATCH_NONE)
				continue;
			snprintf(scratch_path, sizeof scratch_path, "%s/" VM_SCRATCH_FILE, sb->rundir);
			path = scratch_path, ro = false;
			snprintf(did, sizeof did, "scratch");
			snprintf(serial, sizeof serial, VM_SCRATCH_SERIAL);
		}
		int rfd = pass_fd(&fp, open(path, O_RDONLY | O_CLOEXEC));
		int wfd = ro ? 0 : pass_fd(&fp, open(path, O_RDWR | O_CLOEXEC));
		if (rfd < 0 || wfd < 0) {
			int e = errno;
			if (what)
				silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, e, sb->id, "%s: %s", what, path);
			else if (i <= spec->n_drives)
				silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, e, sb->id, "drives[%zu].path: %s", i - 1, path);
			else
				silo_fail_vm(err, SILO_ERR_IO_ERROR, e, sb->id, "scratch disk %s", path);
			goto fail;
		}
		for (int k = 0; k < (ro ? 1 : 2); k++) {
			argv_optf(&qa, "-add-fd", "fd=%d,set=%u", k ? wfd : rfd, set);
			argv_optf(&a, "--keep-fd", "%d", k ? wfd : rfd);
		}
		/* The scratch disk is this sandbox's alone: no image locking. (With two fds of the file
		 * in the fdset, QEMU's own read-only and read-write descriptions would conflict when it
		 * re-takes its locks on "cont" after a migration.) */
		argv_optf(&qa, "-drive", "id=%s,file=/dev/fdset/%u,format=raw,if=none%s%s", did, set,
			  ro ? ",readonly=on" : "", !strcmp(did, "scratch") ? ",file.locking=off" : "");
		argv_optf(&qa, "-device", "virtio-blk-device,drive=%s%s%s", did, serial[0] ? ",serial=" : "", serial);
		set++;
	}
	argv_add(&a, "--");
	for (char **q_arg = qa; q_arg && *q_arg; q_arg++)
		argv_add(&a, *q_arg);
	strv_free(qa);

	/* the jailer's own messages (before its logs exist, or about the cgroup) append to qemu.log */
	int logfd = open(q->qemu_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (logfd < 0) {
		silo_fail_vm(err, SILO_ERR_IO_ERROR, errno, sb->id, "qemu: open %s", q->qemu_log);
		goto fail;
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(logfd);
		silo_fail_vm(err, SILO_ERR_IO_ERROR, e, sb->id, "qemu: fork");
		goto fail;
	}
	if (pid == 0) {
		/* async-signal-safe only from here (the manager is multi-threaded) */
		setsid();   /* QEMU must outlive a silod restart (reattach) */
		int nul = open("/dev/null", O_RDONLY);
		if (nul >= 0)
			dup2(nul, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		for (int i = 0; i < fp.n; i++)
			if (dup2(fp.src[i], fp.dst[i]) < 0)
				_exit(127);
		for (int fd = FD_FIRST + fp.n; fd < 1024; fd++) /* close_range is not in every libc we build with */
			close(fd);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		execv(jailer, a);
		dprintf(2, "silo: exec %s: %s\n", jailer, strerror(errno));
		_exit(127);
	}
	close(logfd);
	pass_close(&fp);   /* the listening sockets and drive fds are QEMU's now; the lease the jailer's */
	sb->pid = pid;
	q->is_child = true;
	sb->prov = q;

	/* Wait until QEMU answers on QMP (machine init done, devices realized), or died:
	 * report its stderr (and the jailer's). */
	uint64_t deadline = now_mono_ns() + 10000000000ull;
	for (;;) {
		if (!q_alive(sb)) {
			char tail[1024];
			file_tail(q->qemu_log, 600, tail, sizeof tail);
			silo_fail_vm(err, SILO_ERR_IO_ERROR, 0, sb->id, "qemu exited during startup (status %d): %s",
				     WIFEXITED(q->exit_status) ? WEXITSTATUS(q->exit_status) : 128 + WTERMSIG(q->exit_status),
				     tail[0] ? tail : "(no output)");
			goto fail_started;
		}
		if (qmp_command(q, "query-status", 2000, NULL) == 0)
			break;
		if (now_mono_ns() >= deadline) {
			silo_fail_vm(err, SILO_ERR_BOOT_TIMEOUT, ETIMEDOUT, sb->id,
				     "qemu did not answer on QMP within 10 s");
			goto fail_started;
		}
		struct timespec ts = {0, 2 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	strv_free(a);
	strv_free(files);
	return 0;

fail_err:
	silo_error_set_vm(err, sb->id);
	goto fail;
fail_started:
	stop_jail(sb);
	sb->prov = NULL;
	sb->pid = 0;
fail:
	pass_close(&fp);
	remove_rundir_files(sb, false);
	strv_free(a);
	strv_free(files);
	free(q);
	return rc;
}

static int q_spawn(sandbox *sb, const vm_spec *spec, silo_error *err)
{
	return q_start(sb, spec, false, SCRATCH_CREATE, 0, err);
}

/* ---------------------------------------------------------------- connect */

static int q_connect(sandbox *sb, int timeout_ms, silo_error *err)
{
	qemu_state *q = sb->prov;
	if (!q)
		return silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, 0, sb->id, "qemu: sandbox not running");
	uint64_t deadline = now_mono_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000ull;
	for (;;) {
		silo_error e2 = {0};
		int fd = unix_connect(q->agent_sock, &e2);
		if (fd >= 0)
			return fd;
		if (!q_alive(sb))
			return silo_fail_vm(err, SILO_ERR_VSOCK_DISCONNECTED, 0, sb->id,
					    "qemu: the VM exited before the agent channel was connected");
		if (now_mono_ns() >= deadline) {
			if (err)
				*err = e2;
			silo_error_prefix(err, "qemu: agent channel");
			silo_error_set_vm(err, sb->id);
			return -1;
		}
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

/* ---------------------------------------------------------------- terminate */

static int q_terminate(sandbox *sb, int grace_ms, silo_error *err)
{
	qemu_state *q = sb->prov;
	if (!q) {
		vm_cgroup_remove(sb->id);
		remove_rundir_files(sb, true);
		return 0;
	}
	if (q_alive(sb)) {
		/* 1. ask the agent to power off (guest reboot=t + -no-reboot => QEMU exits) */
		if (sb->ch && chan_is_connected(sb->ch) && grace_ms > 0) {
			if (chan_shutdown(sb->ch, NULL) == 0)
				wait_exit(sb, grace_ms);
		}
		/* 2. QMP quit: QEMU exits cleanly, flushing writable drives */
		if (q_alive(sb) && qmp_command(q, "quit", 1000, NULL) == 0)
			wait_exit(sb, 2000);
	}
	/* 3. force (QEMU, then the jailer), and the cgroup if the jailer could not remove it */
	if (stop_jail(sb) < 0)
		return silo_fail_vm(err, SILO_ERR_CLEANUP_FAILED, 0, sb->id, "silo-jailer pid %d survived SIGKILL",
				    (int)sb->pid);
	/* reap a child that exited on its own */
	if (q->is_child && !q->exited) {
		int st;
		if (waitpid(sb->pid, &st, 0) == sb->pid)
			q->exited = true;
	}
	remove_rundir_files(sb, true);
	free(q);
	sb->prov = NULL;
	return 0;
}

static bool q_alive_op(sandbox *sb)
{
	return q_alive(sb);
}

static int q_reattach(sandbox *sb, silo_error *err)
{
	if (sb->pid <= 0 || kill(sb->pid, 0) < 0 || !pid_is_jailer(sb->pid, sb->id) || !vm_proc_child(sb->pid))
		return silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, 0, sb->id, "qemu: jailer %d or its QEMU is gone",
				    (int)sb->pid);
	qemu_state *q = state_for(sb);
	if (!path_exists(q->agent_sock)) {
		free(q);
		return silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, ENOENT, sb->id, "qemu: %s/agent.sock is gone",
				    sb->rundir);
	}
	q->is_child = false;
	sb->prov = q;
	/* A VM paused when the previous manager went away comes back running
	 * (its agent must answer the reattach handshake); harmless if running. */
	qmp_command(q, "cont", 3000, NULL);
	return 0;
}

/* pause ("stop") and resume ("cont") of a running VM */
static int q_run_state(sandbox *sb, const char *cmd, silo_error *err)
{
	qemu_state *q = sb->prov;
	if (!q || !q_alive(sb))
		return silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, 0, sb->id, "qemu: sandbox not running");
	if (qmp_command(q, cmd, 3000, err) < 0) {
		silo_error_set_vm(err, sb->id);
		return -1;
	}
	return 0;
}

static int q_pause(sandbox *sb, silo_error *err)
{
	return q_run_state(sb, "stop", err);
}

static int q_resume(sandbox *sb, silo_error *err)
{
	return q_run_state(sb, "cont", err);
}

static void q_residue(sandbox *sb, char ***out)
{
	bool relay = sb->pid > 0 && kill(sb->pid, 0) == 0 && pid_is_jailer(sb->pid, sb->id) && !vm_proc_zombie(sb->pid);
	vm_residue(&rundir_layout, sb->id, sb->rundir, relay ? sb->pid : 0, "silo-jailer", "qemu", out);
}

/* BOOT_TIMEOUT diagnostics: the tail of the guest console and of QEMU's stderr. */
static void q_diagnostics(sandbox *sb, char *buf, size_t len)
{
	char serial[SERIAL_TAIL_MAX + 1], qlog[400];
	char p[PATH_MAX + 32];
	snprintf(p, sizeof p, "%s/serial.log", sb->rundir);
	file_tail(p, SERIAL_TAIL_MAX, serial, sizeof serial);
	snprintf(p, sizeof p, "%s/qemu.log", sb->rundir);
	file_tail(p, 300, qlog, sizeof qlog);
	snprintf(buf, len, "qemu %s; serial console tail: %s%s%s",
		 q_alive(sb) ? "running" : "exited", serial[0] ? serial : "(empty)",
		 qlog[0] ? "; qemu: " : "", qlog);
}


/* ---------------------------------------------------------------- snapshots
 * QEMU's own migration stream, over an fd handed to QMP (getfd + "fd:"): the
 * -sandbox filter forbids exec: URIs, and QEMU 7.2 has no file: URI. Saving
 * goes through a pipe that this process drains into payload/vmstate, bounded
 * by snap_max_bytes() (QEMU itself runs under RLIMIT_FSIZE = its largest
 * writable file). The scratch disk is saved beside it, after the stream (the VM is
 * stopped and its block devices flushed then), as payload/disk.sparse: only its
 * allocated extents (vm.h), so a snapshot costs what the guest wrote, not disk_mb.
 * Loading rebuilds RUNDIR/disk.img from it and hands QEMU the stream under
 * -incoming defer; the VM starts running when the stream is loaded.
 * payload/qemu.json records what must be the same on restore (accelerator, guest
 * kernel, machine size, scratch disk size; no scratch_mb = a snapshot from before
 * the scratch disk, restored without one). */

#define VMSTATE "vmstate"
#define QEMU_META "qemu.json"
#define MIGRATE_TIMEOUT_MS 180000

/* Open a QMP session: greeting + capabilities. */
static int qmp_open(qemu_state *q, uint64_t deadline, silo_error *err)
{
	int fd = unix_connect(q->qmp_sock, err);
	if (fd < 0)
		return -1;
	cleanup_free char *line = xmalloc(QMP_LINE_MAX);
	static const char caps[] = "{\"execute\":\"qmp_capabilities\"}\n";
	if (qmp_readline(fd, line, QMP_LINE_MAX, deadline, err) < 0 || !strstr(line, "\"QMP\"") ||
	    write_all(fd, caps, sizeof caps - 1) < 0 || qmp_reply(fd, deadline, NULL, err) < 0) {
		close(fd);
		if (err && !err->code)
			silo_fail(err, SILO_ERR_PROTOCOL, 0, "QMP: unexpected greeting");
		return -1;
	}
	return fd;
}

/* Send one command (with pass_fd as SCM_RIGHTS when >= 0) and return its
 * "return" value (*ret may be NULL). Events in between are skipped. */
static int qmp_call(int fd, const char *req, int pass_fd, uint64_t deadline, json_t **ret, silo_error *err)
{
	if (ret)
		*ret = NULL;
	if (send_all_with_fds(fd, req, strlen(req), &pass_fd, pass_fd >= 0) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "QMP: send");
	return qmp_reply(fd, deadline, ret, err);
}

/* Poll query-migrate until completed (0) or failed (-1). */
static int wait_migration(sandbox *sb, int qfd, uint64_t deadline, silo_error *err)
{
	for (;;) {
		json_t *r = NULL;
		if (qmp_call(qfd, "{\"execute\":\"query-migrate\"}\n", -1, deadline, &r, err) < 0)
			return -1;
		const char *st = json_string_value(json_object_get(r, "status"));
		char desc[256];
		snprintf(desc, sizeof desc, "%s",
			 json_string_value(json_object_get(r, "error-desc")) ? json_string_value(json_object_get(r, "error-desc"))
									   : "");
		bool done = st && !strcmp(st, "completed");
		bool failed = st && (!strcmp(st, "failed") || !strcmp(st, "cancelled"));
		char sts[32];
		snprintf(sts, sizeof sts, "%s", st ? st : "none");
		json_decref(r);
		if (done)
			return 0;
		if (failed)
			return silo_fail_vm(err, SILO_ERR_IO_ERROR, 0, sb->id, "qemu: migration %s%s%s", sts,
					    desc[0] ? ": " : "", desc);
		if (now_mono_ns() >= deadline)
			return silo_fail_vm(err, SILO_ERR_TIMEOUT, ETIMEDOUT, sb->id,
					    "qemu: migration did not complete within %d s (status %s)",
					    MIGRATE_TIMEOUT_MS / 1000, sts);
		if (!q_alive(sb))
			return silo_fail_vm(err, SILO_ERR_IO_ERROR, 0, sb->id, "qemu exited during migration");
		struct timespec ts = {0, 2 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

typedef struct drain_job {
	int in, out;
	uint64_t max, bytes;
	int err;          /* errno, EFBIG when over max */
} drain_job;

static void *drain_main(void *arg)
{
	drain_job *d = arg;
	char *buf = xmalloc(1 << 20);
	for (;;) {
		ssize_t r = read(d->in, buf, 1 << 20);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r < 0)
				d->err = errno;
			break;
		}
		if (d->bytes + (uint64_t)r > d->max) {
			d->err = EFBIG;
			break;   /* closing our end makes QEMU's writes fail: migration fails */
		}
		if (write_all(d->out, buf, (size_t)r) < 0) {
			d->err = errno;
			break;
		}
		d->bytes += (uint64_t)r;
	}
	free(buf);
	close(d->in);
	d->in = -1;
	return NULL;
}

static int kernel_identity(const vm_spec *spec, char *path, size_t len, long long *size, silo_error *err)
{
	vm_boot_plan bp;
	if (vm_plan_boot("", "qemu", spec, false, NULL, &bp, err) < 0)
		return -1;
	struct stat st;
	if (stat(bp.kernel, &st) < 0)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, errno, "qemu: guest kernel %s", bp.kernel);
	snprintf(path, len, "%s", bp.kernel);
	*size = (long long)st.st_size;
	return 0;
}

/* A template's key: the accelerator, the keyring and each boot file's
 * identity (vm_file_identity). */
static int q_template_identity(const vm_spec *spec, char **out, silo_error *err)
{
	char bin[PATH_MAX], why[128];
	if (find_qemu(bin, sizeof bin) < 0)
		return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, 0, "qemu: %s not found", QEMU_DEFAULT_BIN);
	vm_boot_plan bp;
	bool keyring = false;
	/* with a keyring: the boot files must match the signed manifest, as for a cold boot */
	if (vm_plan_boot("", "qemu", spec, false, &keyring, &bp, err) < 0)
		return -1;
	*out = xasprintf("accel=%s\nkeyring=%d\n", pick_accel(why, sizeof why), (int)keyring);
	if (vm_file_identity("qemu", "qemu", bin, out, err) < 0 || vm_file_identity("qemu", "kernel", bp.kernel, out, err) < 0 ||
	    vm_file_identity("qemu", "initrd", bp.initrd, out, err) < 0 || vm_file_identity("qemu", "rootdisk", bp.rootdisk, out, err) < 0) {
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

static int q_snapshot(sandbox *sb, const char *dir, silo_error *err)
{
	qemu_state *q = sb->prov;
	if (!q || !q_alive(sb))
		return silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, 0, sb->id, "qemu: sandbox not running");
	for (size_t i = 0; i < sb->spec.n_drives; i++)
		if (!sb->spec.drives[i].read_only)
			return silo_fail_vm(err, SILO_ERR_NOT_SUPPORTED, 0, sb->id,
					    "qemu: drives[%zu] is writable: snapshots cover memory and device state, "
					    "not writable disks (make it read_only)",
					    i);
	char kpath[PATH_MAX], p[PATH_MAX + 32];
	long long ksize = 0;
	if (kernel_identity(&sb->spec, kpath, sizeof kpath, &ksize, err) < 0) {
		silo_error_set_vm(err, sb->id);
		return -1;
	}
	snprintf(p, sizeof p, "%s/" VMSTATE, dir);
	cleanup_close int out = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0)
		return silo_fail_vm(err, SILO_ERR_IO_ERROR, errno, sb->id, "qemu: create %s", p);
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return silo_fail_vm(err, SILO_ERR_IO_ERROR, errno, sb->id, "qemu: pipe");
	fcntl(pfd[0], F_SETPIPE_SZ, 1 << 20);
	drain_job d = {.in = pfd[0], .out = out, .max = snap_max_bytes()};
	pthread_t th;
	if (pthread_create(&th, NULL, drain_main, &d) != 0) {
		close(pfd[0]);
		close(pfd[1]);
		return silo_fail_vm(err, SILO_ERR_INTERNAL, 0, sb->id, "qemu: drain thread");
	}
	uint64_t deadline = now_mono_ns() + (uint64_t)MIGRATE_TIMEOUT_MS * 1000000ull;
	int rc = -1;
	int qfd = qmp_open(q, deadline, err);
	if (qfd >= 0) {
		if (qmp_call(qfd, "{\"execute\":\"migrate-set-parameters\",\"arguments\":{\"max-bandwidth\":"
				  "1099511627776}}\n",
			     -1, deadline, NULL, err) == 0 &&
		    qmp_call(qfd, "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"silo-snap\"}}\n", pfd[1],
			     deadline, NULL, err) == 0) {
			close(pfd[1]);
			pfd[1] = -1;
			if (qmp_call(qfd, "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"fd:silo-snap\"}}\n", -1,
				     deadline, NULL, err) == 0)
				rc = wait_migration(sb, qfd, deadline, err);
		}
		close(qfd);
	}
	if (pfd[1] >= 0)
		close(pfd[1]);
	if (rc < 0) {
		/* unblock the drain thread if QEMU still holds the write end */
		qfd = qmp_open(q, now_mono_ns() + 2000000000ull, NULL);
		if (qfd >= 0) {
			qmp_call(qfd, "{\"execute\":\"migrate_cancel\"}\n", -1, now_mono_ns() + 2000000000ull, NULL, NULL);
			close(qfd);
		}
	}
	pthread_join(th, NULL);
	if (rc == 0 && d.err)
		rc = silo_fail_vm(err, d.err == EFBIG ? SILO_ERR_RESOURCE_EXCEEDED : SILO_ERR_IO_ERROR, d.err, sb->id,
				  "qemu: writing %s%s", p,
				  d.err == EFBIG ? ": larger than the snapshot limit ($SILO_SNAPSHOT_MAX_MB)" : "");
	if (rc == 0 && fsync(out) < 0)
		rc = silo_fail_vm(err, SILO_ERR_IO_ERROR, errno, sb->id, "qemu: fsync %s", p);
	/* the scratch disk (absent for a sandbox restored from an older snapshot) */
	char disk[PATH_MAX + 32];
	snprintf(disk, sizeof disk, "%s/" VM_SCRATCH_FILE, sb->rundir);
	struct stat dst;
	uint64_t scratch_mb = 0, scratch_bytes = 0;
	if (rc == 0 && stat(disk, &dst) == 0) {
		scratch_mb = (uint64_t)dst.st_size >> 20;
		snprintf(p, sizeof p, "%s/" VM_SCRATCH_SNAP, dir);
		rc = vm_scratch_save(disk, p, &scratch_bytes, err);
		if (rc == 0 && d.bytes + scratch_bytes > snap_max_bytes())
			rc = silo_fail_vm(err, SILO_ERR_RESOURCE_EXCEEDED, EFBIG, sb->id,
					  "qemu: snapshot of %llu bytes (vmstate + scratch disk) is larger than the "
					  "snapshot limit ($SILO_SNAPSHOT_MAX_MB)",
					  (unsigned long long)(d.bytes + scratch_bytes));
	}
	if (rc < 0) {
		silo_error_set_vm(err, sb->id);
		return -1;
	}
	json_t *meta = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I}", "accel", q->accel, "kernel", kpath,
				 "kernel_size", (json_int_t)ksize, "memory_mb",
				 (json_int_t)(sb->spec.memory_mb ? sb->spec.memory_mb : 512), "vcpus",
				 (json_int_t)(sb->spec.vcpus ? sb->spec.vcpus : 1), "vmstate_bytes", (json_int_t)d.bytes,
				 "scratch_mb", (json_int_t)scratch_mb, "scratch_bytes", (json_int_t)scratch_bytes);
	char *txt = json_dumps(meta, JSON_INDENT(1) | JSON_SORT_KEYS);
	json_decref(meta);
	snprintf(p, sizeof p, "%s/" QEMU_META, dir);
	rc = write_file_atomic(p, txt, strlen(txt), 0600, err);
	free(txt);
	if (rc < 0)
		silo_error_set_vm(err, sb->id);
	return rc;
}

static int q_restore(sandbox *sb, const vm_spec *spec, const char *dir, silo_error *err)
{
	char p[PATH_MAX + 32], why[128];
	snprintf(p, sizeof p, "%s/" QEMU_META, dir);
	cleanup_free char *txt = NULL;
	size_t n;
	if (read_file(p, 64 * 1024, &txt, &n, err) < 0) {
		silo_error_set_vm(err, sb->id);
		return -1;
	}
	json_t *meta = json_loadb(txt, n, JSON_REJECT_DUPLICATES, NULL);
	const char *accel = json_string_value(json_object_get(meta, "accel"));
	json_int_t ksize = json_integer_value(json_object_get(meta, "kernel_size"));
	json_int_t mem = json_integer_value(json_object_get(meta, "memory_mb"));
	json_int_t cpus = json_integer_value(json_object_get(meta, "vcpus"));
	json_int_t scratch_mb = json_integer_value(json_object_get(meta, "scratch_mb"));
	const char *now_accel = pick_accel(why, sizeof why);
	char kpath[PATH_MAX];
	long long now_ksize = 0;
	int rc = 0;
	if (!json_is_object(meta) || !accel)
		rc = silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, sb->id, "qemu: %s is malformed", p);
	else if (strcmp(accel, now_accel) != 0)
		rc = silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, sb->id,
				  "qemu: %s: taken under %s, this host runs %s: a migration stream does not cross "
				  "accelerators",
				  p, accel, now_accel);
	else if (mem != (json_int_t)(spec->memory_mb ? spec->memory_mb : 512) ||
		 cpus != (json_int_t)(spec->vcpus ? spec->vcpus : 1))
		rc = silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, sb->id,
				  "qemu: %s: memory_mb/vcpus differ from the snapshot's spec", p);
	else if (kernel_identity(spec, kpath, sizeof kpath, &now_ksize, err) < 0)
		rc = -1;
	else if (scratch_mb < 0 || scratch_mb > SPEC_DISK_MAX_MB)
		rc = silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, sb->id, "qemu: %s: scratch_mb %lld out of range", p,
				  (long long)scratch_mb);
	else if (now_ksize != ksize)
		rc = silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, sb->id,
				  "qemu: %s: the guest kernel %s changed since the snapshot (%lld bytes, was %lld)", p,
				  kpath, now_ksize, (long long)ksize);
	json_decref(meta);
	if (rc < 0) {
		silo_error_set_vm(err, sb->id);
		return -1;
	}
	snprintf(p, sizeof p, "%s/" VMSTATE, dir);
	cleanup_close int in = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0)
		return silo_fail_vm(err, SILO_ERR_CHECKSUM_MISMATCH, errno, sb->id, "qemu: open %s", p);
	if (scratch_mb > 0) {
		char snap_disk[PATH_MAX + 32], disk[PATH_MAX + 32];
		snprintf(snap_disk, sizeof snap_disk, "%s/" VM_SCRATCH_SNAP, dir);
		snprintf(disk, sizeof disk, "%s/" VM_SCRATCH_FILE, sb->rundir);
		if (vm_scratch_load(snap_disk, disk, (uint64_t)scratch_mb << 20, err) < 0) {
			silo_error_set_vm(err, sb->id);
			return -1;
		}
	}
	if (q_start(sb, spec, true, scratch_mb > 0 ? SCRATCH_EXISTS : SCRATCH_NONE, (uint64_t)scratch_mb, err) < 0)
		return -1;
	qemu_state *q = sb->prov;
	uint64_t deadline = now_mono_ns() + (uint64_t)MIGRATE_TIMEOUT_MS * 1000000ull;
	rc = -1;
	int qfd = qmp_open(q, deadline, err);
	if (qfd >= 0) {
		if (qmp_call(qfd, "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"silo-snap\"}}\n", in, deadline,
			     NULL, err) == 0 &&
		    qmp_call(qfd, "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"fd:silo-snap\"}}\n", -1,
			     deadline, NULL, err) == 0)
			rc = wait_migration(sb, qfd, deadline, err);
		/* the source was stopped for the snapshot and QEMU carries that run
		 * state over: start the vCPUs */
		if (rc == 0)
			rc = qmp_call(qfd, "{\"execute\":\"cont\"}\n", -1, deadline, NULL, err);
		close(qfd);
	}
	if (rc < 0) {
		char diag[600];
		file_tail(q->qemu_log, 400, diag, sizeof diag);
		if (diag[0] && strlen(err->message) + strlen(diag) + 16 < sizeof err->message)
			strcat(strcat(err->message, "; qemu: "), diag);
		silo_error e2;
		q_terminate(sb, 0, &e2);
		silo_error_set_vm(err, sb->id);
		return -1;
	}
	return 0;
}

const provider_ops qemu_provider = {
	.name = "qemu",
	.vm = true,
	.net = PROVIDER_NET_STREAM,   /* -netdev stream to passt (docs/network.md) */
	.net_mtu = QEMU_NET_MTU,
	.probe = q_probe,
	.spawn = q_spawn,
	.connect = q_connect,
	.terminate = q_terminate,
	.alive = q_alive_op,
	.reattach = q_reattach,
	.pause = q_pause,
	.resume = q_resume,
	.residue = q_residue,
	.diagnostics = q_diagnostics,
	.snapshot = q_snapshot,
	.restore = q_restore,
	.template_identity = q_template_identity,
};
