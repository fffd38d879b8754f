/* SPDX-License-Identifier: Apache-2.0
 * The supervisor: one process per container, forked by `create` (rt.h has the
 * process model). It owns the sandbox and the container's stdio.
 *
 * Threads and what they own:
 *   main      creates the sandbox, waits for start (s->lock, s->cond), runs and
 *             relays the main process, then destroys the sandbox and ends the
 *             way the process ended;
 *   signals   sigwaitinfo() on the signals an engine sends the container pid
 *             (TERM, INT, HUP, QUIT, USR1, USR2, WINCH, ...): forwarded to the
 *             main process, WINCH as a pty resize;
 *   control   accepts on ctl.sock; each connection gets a thread (an exec lives
 *             as long as its process, with one more thread reading its signals);
 *   stdin     one pump per process with streamed stdin (its fd -> the agent);
 *   log       library warnings written to fd 2 go to the --log file.
 * s->lock guards the state fields below it, the process list and state.json
 * writes; the agent channel is thread-safe by itself (lib/core/channel.h).
 *
 * Stdio: the fds the engine gave `create` (0, 1, 2) are moved above 10 and
 * only ever carry the container's bytes; 0-2 become /dev/null and the log pipe.
 * With a terminal, the master of a fresh pty went to --console-socket and the
 * slave is the supervisor's controlling terminal (so a resize by the engine
 * arrives as SIGWINCH), in raw mode: the pty that the process sees is the
 * agent's, inside the sandbox.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "common/util.h"
#include "core/provider.h"
#include "core/sandbox.h"
#include "oci/oci.h"
#include "common/cgroup.h"
#include "providers/ns.h"
#include "runtime/rt.h"
#include "snapshot/snapshot.h"

#define COPY_MAX_BYTES (256ull << 20)   /* VM providers: bytes copied in for the bind mounts */
#define COPY_MAX_ENTRIES 20000

typedef struct sup sup;

/* One process in the sandbox: the main one or an exec. */
typedef struct proc {
	sup *s;
	uint32_t task;
	int in, out, err;          /* owned; pty: in == out (the slave), err -1; no stdin: in -1 */
	bool pty;
	int wake[2];               /* stops the stdin pump */
	pthread_t pump;
	bool pumping;
	bool out_broken;
	struct proc *next;
} proc;

struct sup {
	rt_config cfg;
	rt_state st;
	rt_settings set;
	sandbox *sb;
	int lfd;                   /* ctl.sock */
	int dirfd;                 /* the state directory */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* guarded by lock */
	bool start_asked, started, start_failed, ended;
	char start_error[SILO_ERROR_MSG_MAX];
	int kill_sig;              /* a kill before start */
	proc *main;
	proc *execs;
	bool paused;
	uint64_t t0, t_created, t_started, t_exited;   /* for --debug's timing line */
};

static sup S;

/* ---- state ---- */

static void set_status(rt_status st, int exit_code)
{
	pthread_mutex_lock(&S.lock);
	S.st.status = st;
	S.st.exit_code = exit_code;
	silo_error e = {0};
	if (rt_state_write(&S.st, &e) < 0)
		rt_log("warning", "state.json: %s", e.message);
	pthread_mutex_unlock(&S.lock);
}

/* ---- output and stdin of a process ---- */

static void on_output(void *ud, int stream, const void *buf, size_t len)
{
	proc *p = ud;
	int fd = stream == 2 && p->err >= 0 ? p->err : p->out;
	if (fd < 0 || p->out_broken)
		return;   /* nobody reads it: dropped (an engine that closed its end) */
	if (write_all(fd, buf, len) < 0)
		p->out_broken = true;
}

static void *stdin_pump(void *arg)
{
	proc *p = arg;
	char buf[65536];
	silo_error e = {0};
	for (;;) {
		struct pollfd pf[2] = {{.fd = p->in, .events = POLLIN}, {.fd = p->wake[0], .events = POLLIN}};
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[1].revents)
			break;
		ssize_t n = read(p->in, buf, sizeof buf);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			/* EOF: the process's stdin closes (a pty master that went away: EIO, nothing to send) */
			if (!p->pty)
				chan_exec_stdin(S.sb->ch, p->task, NULL, 0, true, &e);
			break;
		}
		if (chan_exec_stdin(S.sb->ch, p->task, buf, (size_t)n, false, &e) < 0)
			break;
	}
	return NULL;
}

static void proc_free(proc *p)
{
	if (!p)
		return;
	if (p->pumping) {
		(void)!write(p->wake[1], "x", 1);
		pthread_join(p->pump, NULL);
	}
	int fds[] = {p->in, p->out, p->err, p->wake[0], p->wake[1]};
	for (size_t i = 0; i < ARRAY_SIZE(fds); i++) {
		bool dup = false;
		for (size_t j = 0; j < i; j++)
			dup = dup || fds[j] == fds[i];
		if (fds[i] >= 0 && !dup)
			close(fds[i]);
	}
	free(p);
}

/* Is fd /dev/null (no stdin at all)? */
static bool is_dev_null(int fd)
{
	struct stat st;
	return fd < 0 || (fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3);
}

/* Start pr in the sandbox with p's fds (taken over by p). */
static int proc_start(proc *p, const rt_process *pr, silo_error *err)
{
	bool stream = !is_dev_null(p->in);
	uint16_t rows = pr->rows, cols = pr->cols;
	struct winsize ws;
	if (p->pty && ioctl(p->out, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
		rows = ws.ws_row;
		cols = ws.ws_col;
	}
	exec_req r = {
		.argv = pr->args,
		.env = pr->env,
		.cwd = pr->cwd,
		.stdin_stream = stream,
		.uid = pr->uid,
		.gid = pr->gid,
		.pty = p->pty,
		.rows = rows ? rows : 24,
		.cols = cols ? cols : 80,
	};
	if (pipe2(p->wake, O_CLOEXEC) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "pipe");
	if (chan_exec_start(S.sb->ch, &r, on_output, p, &p->task, err) < 0)
		return -1;
	if (stream && pthread_create(&p->pump, NULL, stdin_pump, p) == 0)
		p->pumping = true;
	return 0;
}

/* Wait for p's exit; the status as a wait status would say it (exit or signal). */
static int proc_wait(proc *p, int *code, int *sig)
{
	exec_result res = {0};
	silo_error e = {0};
	*code = 0;
	*sig = 0;
	if (chan_exec_wait(S.sb->ch, p->task, -1, &res, &e) < 0) {
		rt_log("error", "process %u: %s", p->task, e.message);
		*sig = SIGKILL;   /* the sandbox went away under it: as if killed */
		return -1;
	}
	if (res.signal)
		*sig = res.signal;
	else
		*code = res.exit_code & 0xff;
	return 0;
}

/* ---- the sandbox ---- */

static bool provider_usable(const char *name, bool explicit, char *why, size_t wlen)
{
	const provider_ops *ops = provider_find(name);
	if (!ops) {
		snprintf(why, wlen, "no provider \"%s\"", name);
		return false;
	}
	provider_info info = {.name = name};
	ops->probe(&info);
	if (!info.available) {
		snprintf(why, wlen, "%s: %s", name, info.reason);
		return false;
	}
	if (!strcmp(name, "qemu") && !strcmp(info.accel, "tcg") && !explicit && !S.set.tcg) {
		snprintf(why, wlen, "qemu: only software emulation (TCG) here, seconds per start (tcg = true in the "
				    "settings, or the run.silo.provider annotation, chooses it)");
		return false;
	}
	return true;
}

/* The provider: the run.silo.provider annotation, else the settings, else the
 * first usable of the fallback order (a VM provider when there is one). */
static int choose_provider(char *out, size_t len, silo_error *err)
{
	const char *want = json_string_value(json_object_get(S.cfg.annotations, "run.silo.provider"));
	if (want && !strcmp(want, "auto"))
		want = NULL;
	if (!want && S.set.provider[0])
		want = S.set.provider;
	char why[512] = "";
	if (want) {
		if (!provider_usable(want, true, why, sizeof why))
			return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, 0, "provider %s", why);
		snprintf(out, len, "%s", want);
		return 0;
	}
	char order[64], all[1024] = "";
	snprintf(order, sizeof order, "%s", S.set.fallback);
	for (char *save = NULL, *n = strtok_r(order, ", ", &save); n; n = strtok_r(NULL, ", ", &save)) {
		if (provider_usable(n, false, why, sizeof why)) {
			snprintf(out, len, "%s", n);
			return 0;
		}
		size_t at = strlen(all);
		snprintf(all + at, sizeof all - at, "%s%s", at ? "; " : "", why);
	}
	return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, 0, "no provider is available: %s", all);
}

/* Mounts the sandbox provides itself, or that make no sense in it. */
static bool mount_skipped(const rt_mount *m)
{
	static const char *const types[] = {"proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2", "securityfs",
					    "debugfs", "tracefs", "hugetlbfs"};
	for (size_t i = 0; m->type && i < ARRAY_SIZE(types); i++)
		if (!strcmp(m->type, types[i]))
			return true;
	static const char *const under[] = {"/proc", "/sys", "/dev"};
	for (size_t i = 0; i < ARRAY_SIZE(under); i++) {
		size_t n = strlen(under[i]);
		if (!strncmp(m->dest, under[i], n) && (m->dest[n] == '/' || m->dest[n] == '\0'))
			return true;
	}
	return !m->bind && !m->tmpfs;
}

static int build_spec(const char *provider, vm_spec *spec, silo_error *err)
{
	memset(spec, 0, sizeof *spec);
	snprintf(spec->name, sizeof spec->name, "oci");
	spec->provider = xstrdup(provider);
	bool ns = !strcmp(provider, "namespace");
	uint64_t mem_mb = S.cfg.memory_limit ? (S.cfg.memory_limit + (1 << 20) - 1) >> 20 : 0;
	spec->memory_mb = mem_mb ? (uint32_t)MIN(mem_mb, 65536) : S.set.memory_mb ? S.set.memory_mb : 512;
	if (spec->memory_mb < 128)
		spec->memory_mb = 128;
	uint32_t cpus = S.cfg.cpu_quota > 0 && S.cfg.cpu_period
				? (uint32_t)MIN(64, ((uint64_t)S.cfg.cpu_quota + S.cfg.cpu_period - 1) / S.cfg.cpu_period)
				: 0;
	spec->vcpus = cpus ? cpus : S.set.vcpus ? S.set.vcpus : 1;
	spec->pids_max = S.cfg.pids_limit > 0 ? (uint32_t)MIN(S.cfg.pids_limit, 1 << 22) : 0;
	spec->disk_mb = S.set.disk_mb;
	spec->oci_bundle = true;
	if (S.cfg.hostname && *S.cfg.hostname) {
		bool ok = strlen(S.cfg.hostname) < 64;
		for (const char *p = S.cfg.hostname; *p && ok; p++)
			ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
			     *p == '.';
		if (!ok)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "config: hostname: expected 1-63 of [A-Za-z0-9.-]");
		spec->hostname = xstrdup(S.cfg.hostname);
	}
	if (ns) {
		spec->rootfs = xstrdup(S.cfg.root);
		struct statfs sf;
		if (statfs(S.cfg.root, &sf) == 0 && sf.f_type == OVERLAYFS_SUPER_MAGIC &&
		    rt_overlay_layers(S.cfg.root, &spec->rootfs_layers, err) < 0)
			return -1;
		for (size_t i = 0; i < S.cfg.nmounts; i++) {
			const rt_mount *m = &S.cfg.mounts[i];
			if (mount_skipped(m))
				continue;
			if (spec->n_mounts >= SPEC_MAX_MOUNTS)
				return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0, "mounts: at most %d", SPEC_MAX_MOUNTS);
			spec_mount *x = &spec->mounts[spec->n_mounts++];
			x->type = m->bind ? SPEC_MOUNT_BIND : SPEC_MOUNT_TMPFS;
			x->source = m->bind ? xstrdup(m->source) : NULL;
			x->target = xstrdup(m->dest);
			x->read_only = m->ro;
			x->options = m->tmpfs_opts ? xstrdup(m->tmpfs_opts) : NULL;
		}
		return 0;
	}
	/* VM providers: the bundle's root as an ext4 disk, booted by the loader */
	char disk[PATH_MAX], loader[PATH_MAX];
	if (rt_rootfs_ext4(S.cfg.root, disk, sizeof disk, err) < 0 || oci_loader(loader, sizeof loader, err) < 0)
		return -1;
	spec->rootfs = xstrdup(disk);
	spec->initrd = xstrdup(loader);
	return 0;
}

/* VM providers: bind mounts become copies made at start (files and directories,
 * bounded); nothing is copied back. */
typedef struct copy_ctx {
	uint64_t bytes;
	size_t entries;
} copy_ctx;

static int copy_in(const char *src, const char *dst, copy_ctx *c, int depth, silo_error *err)
{
	struct stat st;
	if (lstat(src, &st) < 0)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, errno, "mount source %s", src);
	if (++c->entries > COPY_MAX_ENTRIES || depth > 64)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0, "mount %s: more than %d entries to copy into the VM",
				 src, COPY_MAX_ENTRIES);
	if (S_ISREG(st.st_mode)) {
		if ((c->bytes += (uint64_t)st.st_size) > COPY_MAX_BYTES)
			return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0,
					 "mount %s: more than %llu MiB to copy into the VM", src, COPY_MAX_BYTES >> 20);
		cleanup_close int fd = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s", src);
		return chan_file_write_fd(S.sb->ch, dst, fd, st.st_mode & 07777, err);
	}
	if (!S_ISDIR(st.st_mode))
		return 0;   /* symlinks, devices, sockets: not copied (docs/kubernetes.md) */
	if (chan_mkdir(S.sb->ch, dst, st.st_mode & 07777, true, err) < 0)
		return -1;
	DIR *d = opendir(src);
	if (!d)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "opendir %s", src);
	struct dirent *de;
	int rc = 0;
	while (rc == 0 && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		cleanup_free char *a = xasprintf("%s/%s", src, de->d_name);
		cleanup_free char *b = xasprintf("%s/%s", strcmp(dst, "/") ? dst : "", de->d_name);
		rc = copy_in(a, b, c, depth + 1, err);
	}
	closedir(d);
	return rc;
}

static int vm_mounts(silo_error *err)
{
	copy_ctx c = {0};
	for (size_t i = 0; i < S.cfg.nmounts; i++) {
		const rt_mount *m = &S.cfg.mounts[i];
		if (mount_skipped(m))
			continue;
		if (m->tmpfs) {
			if (chan_mkdir(S.sb->ch, m->dest, 01777, true, err) < 0)
				return silo_error_prefix(err, "mount %s", m->dest), -1;
			rt_log("warning", "tmpfs %s: a directory of the VM's writable layer (no tmpfs mount)", m->dest);
			continue;
		}
		char parent[PATH_MAX];
		snprintf(parent, sizeof parent, "%s", m->dest);
		char *slash = strrchr(parent, '/');
		if (slash && slash != parent) {
			*slash = '\0';
			if (chan_mkdir(S.sb->ch, parent, 0755, true, err) < 0)
				return silo_error_prefix(err, "mount %s", m->dest), -1;
		}
		if (copy_in(m->source, m->dest, &c, 0, err) < 0)
			return silo_error_prefix(err, "mount %s (copied into the VM)", m->dest), -1;
	}
	return 0;
}

/* runc makes a missing cwd: so do we (owned by root, 0755). */
static int make_cwd(const char *cwd, silo_error *err)
{
	file_stat st = {0};
	silo_error e = {0};
	if (!cwd || !strcmp(cwd, "/") || (chan_stat(S.sb->ch, cwd, &st, &e) == 0 && st.exists))
		return 0;
	if (chan_mkdir(S.sb->ch, cwd, 0755, true, err) < 0)
		return silo_error_prefix(err, "process.cwd %s", cwd), -1;
	return 0;
}

static int create_sandbox(silo_error *err)
{
	char provider[16];
	if (choose_provider(provider, sizeof provider, err) < 0)
		return -1;
	vm_spec spec;
	int rc = build_spec(provider, &spec, err);
	char id[SILO_ID_MAX];
	random_id("oci-", id, sizeof id);
	/* the sandbox dies with this process: its watchdog (lib/core/owner.h) tears it
	 * down if the supervisor is killed, so kill -9 never leaves it behind */
	sandbox_opts so = {.id = id, .owner = SB_OWNER_PROCESS};
	const char *bt = getenv("SILO_BOOT_TIMEOUT_MS");
	if (bt && *bt)
		so.boot_timeout_ms = atoi(bt);
	if (rc == 0)
		rc = sandbox_create(&spec, &so, &S.sb, err);
	spec_free(&spec);
	if (rc < 0)
		return -1;
	snprintf(S.st.sandbox, sizeof S.st.sandbox, "%s", S.sb->id);
	snprintf(S.st.provider, sizeof S.st.provider, "%s", S.sb->ops->name);
	snprintf(S.st.silo_rundir, sizeof S.st.silo_rundir, "%s", silo_runtime_dir());
	S.st.sandbox_pid = S.sb->pid;
	if (strcmp(provider, "namespace") != 0 && vm_mounts(err) < 0)
		return -1;
	return S.cfg.has_process ? make_cwd(S.cfg.process.cwd, err) : 0;
}

/* ---- control connections ---- */

static void reply_error(int fd, const silo_error *e)
{
	json_t *r = json_pack("{s:{s:s,s:s}}", "error", "code", silo_code_name(e->code), "message", e->message);
	silo_error x = {0};
	rt_ctl_send(fd, r, NULL, 0, &x);
	json_decref(r);
}

static void reply_ok(int fd, json_t *extra)
{
	json_t *r = extra ? extra : json_object();
	json_object_set_new(r, "ok", json_true());
	silo_error x = {0};
	rt_ctl_send(fd, r, NULL, 0, &x);
	json_decref(r);
}

static int signal_procs(int sig, bool all, silo_error *err)
{
	pthread_mutex_lock(&S.lock);
	int rc = 0;
	if (!S.started) {
		/* before start: the process never runs; the container stops */
		S.kill_sig = sig;
		pthread_cond_broadcast(&S.cond);
	} else if (S.ended) {
		rc = silo_fail(err, SILO_ERR_CONFLICT, 0, "container not running");
	} else {
		rc = chan_exec_signal(S.sb->ch, S.main->task, sig, err);
		for (proc *p = S.execs; all && p; p = p->next) {
			silo_error e = {0};
			chan_exec_signal(S.sb->ch, p->task, sig, &e);
		}
	}
	pthread_mutex_unlock(&S.lock);
	return rc;
}

static json_t *host_pids(void)
{
	json_t *a = json_array();
	json_array_append_new(a, json_integer(getpid()));
	if (!S.sb)
		return a;
	if (strcmp(S.sb->ops->name, "namespace") != 0) {
		if (S.sb->pid > 0)
			json_array_append_new(a, json_integer(S.sb->pid));
		return a;
	}
	cg_set cg;
	cg_paths(S.sb->id, &cg);
	for (int i = 0; i < cg.n; i++) {
		char p[PATH_MAX + 16];
		snprintf(p, sizeof p, "%s/cgroup.procs", cg.path[i]);
		cleanup_free char *txt = NULL;
		size_t n = 0;
		if (read_file(p, 1u << 20, &txt, &n, NULL) < 0)
			continue;
		for (char *save = NULL, *l = strtok_r(txt, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
			json_array_append_new(a, json_integer(atoi(l)));
		break;   /* one hierarchy lists them all */
	}
	return a;
}

/* An exec: its own process, relayed over the fds that came with the request. */
typedef struct exec_conn {
	int fd;
	proc *p;
} exec_conn;

static void *exec_reader(void *arg)
{
	exec_conn *x = arg;
	for (;;) {
		json_t *m = NULL;
		silo_error e = {0};
		if (rt_ctl_recv(x->fd, &m, NULL, NULL, -1, &e) < 0 || !m)
			break;
		const char *op = json_string_value(json_object_get(m, "op"));
		if (op && !strcmp(op, "signal")) {
			int sig = (int)json_integer_value(json_object_get(m, "sig"));
			if (sig >= 1 && sig <= 64)
				chan_exec_signal(S.sb->ch, x->p->task, sig, &e);
		} else if (op && !strcmp(op, "resize")) {
			json_int_t r = json_integer_value(json_object_get(m, "rows")),
				   c = json_integer_value(json_object_get(m, "cols"));
			if (r >= 1 && r <= 4096 && c >= 1 && c <= 4096)
				chan_exec_resize(S.sb->ch, x->p->task, (uint16_t)r, (uint16_t)c, &e);
		}
		json_decref(m);
	}
	/* the relay is gone (killed): so is its process */
	silo_error e = {0};
	chan_exec_signal(S.sb->ch, x->p->task, SIGKILL, &e);
	return NULL;
}

static void run_exec(int fd, json_t *req, int *fds, int nfds)
{
	silo_error err = {0};
	rt_process pr;
	bool tty = json_is_true(json_object_get(req, "tty"));
	int prc = rt_process_parse(json_object_get(req, "process"), "process", &pr, &err);
	if (prc == 0 && ((tty && nfds != 1) || (!tty && nfds != 3))) {
		silo_fail(&err, SILO_ERR_PROTOCOL, 0, "exec: expected %d descriptors, got %d", tty ? 1 : 3, nfds);
		rt_process_free(&pr);
		prc = -1;
	}
	if (prc < 0) {
		reply_error(fd, &err);
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		return;
	}
	proc *p = xcalloc(1, sizeof *p);
	p->s = &S;
	p->wake[0] = p->wake[1] = -1;
	p->pty = tty;
	p->in = fds[0];
	p->out = tty ? fds[0] : fds[1];
	p->err = tty ? -1 : fds[2];
	pthread_mutex_lock(&S.lock);
	bool running = S.started && !S.ended;
	pthread_mutex_unlock(&S.lock);
	int rc = running ? proc_start(p, &pr, &err)
			 : silo_fail(&err, SILO_ERR_CONFLICT, 0, "cannot exec in a container that is not running");
	rt_process_free(&pr);
	if (rc < 0) {
		reply_error(fd, &err);
		proc_free(p);
		return;
	}
	pthread_mutex_lock(&S.lock);
	p->next = S.execs;
	S.execs = p;
	pthread_mutex_unlock(&S.lock);
	reply_ok(fd, json_pack("{s:I}", "task", (json_int_t)p->task));
	exec_conn x = {.fd = fd, .p = p};
	pthread_t rd;
	bool reading = pthread_create(&rd, NULL, exec_reader, &x) == 0;
	int code, sig;
	proc_wait(p, &code, &sig);
	json_t *m = json_pack("{s:i,s:i}", "exit", code, "signal", sig);
	rt_ctl_send(fd, m, NULL, 0, &err);
	json_decref(m);
	shutdown(fd, SHUT_RDWR);
	if (reading)
		pthread_join(rd, NULL);
	pthread_mutex_lock(&S.lock);
	for (proc **pp = &S.execs; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	pthread_mutex_unlock(&S.lock);
	proc_free(p);
}

static void *conn_thread(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct ucred cr;
	socklen_t cl = sizeof cr;
	silo_error err = {0};
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 || cr.uid != 0) {
		close(fd);
		return NULL;
	}
	json_t *req = NULL;
	int fds[4], nfds = 4;
	if (rt_ctl_recv(fd, &req, fds, &nfds, 10000, &err) < 0 || !req) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		close(fd);
		return NULL;
	}
	const char *op = json_string_value(json_object_get(req, "op"));
	op = op ? op : "";
	if (strcmp(op, "exec") != 0)
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
	if (!strcmp(op, "exec")) {
		run_exec(fd, req, fds, nfds);
	} else if (!strcmp(op, "start")) {
		pthread_mutex_lock(&S.lock);
		bool ok = !S.start_asked && !S.kill_sig;
		if (ok) {
			S.start_asked = true;
			pthread_cond_broadcast(&S.cond);
			while (!S.started && !S.start_failed)
				pthread_cond_wait(&S.cond, &S.lock);
		}
		bool failed = S.start_failed;
		char why[SILO_ERROR_MSG_MAX];
		snprintf(why, sizeof why, "%s", S.start_error);
		pthread_mutex_unlock(&S.lock);
		if (!ok)
			reply_error(fd, (silo_fail(&err, SILO_ERR_CONFLICT, 0, "container is not created (already started or killed)"), &err));
		else if (failed)
			reply_error(fd, (silo_fail(&err, SILO_ERR_INTERNAL, 0, "%s", why), &err));
		else
			reply_ok(fd, NULL);
	} else if (!strcmp(op, "kill")) {
		int sig = (int)json_integer_value(json_object_get(req, "sig"));
		if (sig < 1 || sig > 64)
			reply_error(fd, (silo_fail(&err, SILO_ERR_INVALID_CONFIG, 0, "kill: signal %d", sig), &err));
		else if (signal_procs(sig, json_is_true(json_object_get(req, "all")), &err) < 0)
			reply_error(fd, &err);
		else
			reply_ok(fd, NULL);
	} else if (!strcmp(op, "pause") || !strcmp(op, "resume")) {
		bool pause = !strcmp(op, "pause");
		pthread_mutex_lock(&S.lock);
		bool running = S.started && !S.ended && S.paused != pause;
		pthread_mutex_unlock(&S.lock);
		int rc = !running ? silo_fail(&err, SILO_ERR_CONFLICT, 0, "container is %s", pause ? "not running" : "not paused")
			 : pause  ? sandbox_pause(S.sb, &err)
				  : sandbox_resume(S.sb, &err);
		if (rc == 0) {
			pthread_mutex_lock(&S.lock);
			S.paused = pause;
			pthread_mutex_unlock(&S.lock);
			set_status(pause ? RT_PAUSED : RT_RUNNING, 0);
			reply_ok(fd, NULL);
		} else {
			reply_error(fd, &err);
		}
	} else if (!strcmp(op, "ps")) {
		reply_ok(fd, json_pack("{s:o}", "pids", host_pids()));
	} else {
		reply_error(fd, (silo_fail(&err, SILO_ERR_PROTOCOL, 0, "unknown operation \"%.32s\"", op), &err));
	}
	json_decref(req);
	close(fd);
	return NULL;
}

static void *control_thread(void *arg)
{
	(void)arg;
	for (;;) {
		int c = accept4(S.lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return NULL;   /* closed at the end */
		}
		pthread_t t;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &at, conn_thread, (void *)(intptr_t)c) != 0)
			close(c);
		pthread_attr_destroy(&at);
	}
}

static int listen_ctl(silo_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/" RT_CTL_SOCK, S.dirfd);
	S.lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (S.lfd < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "socket");
	unlinkat(S.dirfd, RT_CTL_SOCK, 0);
	int sz = (int)RT_CTL_LINE_MAX * 2;
	setsockopt(S.lfd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
	if (bind(S.lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(S.lfd, 64) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "control socket %s/%s", rt_g.root, RT_CTL_SOCK);
	return 0;
}

/* ---- signals and the log ---- */

static const int relayed[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT, SIGALRM};

static void *signal_thread(void *arg)
{
	sigset_t set;
	sigemptyset(&set);
	for (size_t i = 0; i < ARRAY_SIZE(relayed); i++)
		sigaddset(&set, relayed[i]);
	for (;;) {
		int sig = sigwaitinfo(&set, NULL);
		if (sig < 0)
			continue;
		silo_error e = {0};
		pthread_mutex_lock(&S.lock);
		proc *m = S.started && !S.ended ? S.main : NULL;
		pthread_mutex_unlock(&S.lock);
		if (sig == SIGWINCH) {
			struct winsize ws;
			if (m && m->pty && ioctl(m->out, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col)
				chan_exec_resize(S.sb->ch, m->task, ws.ws_row, ws.ws_col, &e);
			continue;
		}
		if (sig == SIGCONT && !m)
			continue;
		signal_procs(sig, false, &e);
	}
	return NULL;
}

static void *log_thread(void *arg)
{
	FILE *f = fdopen((int)(intptr_t)arg, "r");
	char line[2048];
	while (f && fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0])
			rt_log("warning", "%s", line);
	}
	return NULL;
}

/* ---- the end ---- */

/* Namespace provider: what the container wrote to its root goes back into the
 * bundle's root (through an engine's overlay mount: into its container layer),
 * so, as under runc, the engine sees the changes of a stopped container (podman
 * diff, commit, a restart). The sandbox's writable layer is read as a snapshot
 * (ids mapped back to the sandbox's own) and applied without following links. */
static void write_back(void)
{
	if (!S.sb || strcmp(S.sb->ops->name, "namespace") != 0 || S.cfg.root_ro)
		return;
	/* podman run --rm: the root goes away with the container, nobody will look */
	const char *rm = json_string_value(json_object_get(S.cfg.annotations, "io.podman.annotations.autoremove"));
	if (rm && !strcasecmp(rm, "true"))
		return;
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s/oci-diff-XXXXXX", silo_runtime_dir());
	if (mkdir_p(silo_runtime_dir(), 0700) < 0 || !mkdtemp(dir)) {
		rt_log("warning", "write back: mkdtemp %s: %s", dir, strerror(errno));
		return;
	}
	char layer[PATH_MAX + 16];
	snprintf(layer, sizeof layer, "%s/layer", dir);
	silo_error e = {0};
	size_t skipped = 0;
	if (sandbox_snapshot(S.sb, dir, true, &e) < 0 || snap_apply_tree(layer, S.cfg.root, snap_max_bytes(), &skipped, &e) < 0)
		rt_log("warning", "the container's changes to its root were not written back: %s", e.message);
	rm_rf(dir);
}

__attribute__((noreturn)) static void finish(int code, int sig, bool ran)
{
	S.t_exited = now_mono_ns();
	if (ran)
		write_back();
	uint64_t t_wb = now_mono_ns();
	set_status(RT_STOPPED, sig ? 128 + sig : code);
	if (S.sb) {
		cleanup_report rep = {0};
		silo_error e = {0};
		if (sandbox_destroy(S.sb, 0, &rep, &e) < 0)
			rt_log("error", "destroy sandbox: %s", e.message);
		cleanup_report_free(&rep);
		S.sb = NULL;
	}
	if (rt_g.debug && S.t_created) {
		uint64_t t_end = now_mono_ns();
		rt_log("debug", "timing: sandbox ready %.1f ms, waited for start %.1f ms, ran %.1f ms, write-back %.1f ms, "
				"destroy %.1f ms",
		       (double)(S.t_created - S.t0) / 1e6, S.t_started ? (double)(S.t_started - S.t_created) / 1e6 : 0.0,
		       S.t_started ? (double)(S.t_exited - S.t_started) / 1e6 : 0.0, (double)(t_wb - S.t_exited) / 1e6,
		       (double)(t_end - t_wb) / 1e6);
	}
	if (S.lfd >= 0) {
		shutdown(S.lfd, SHUT_RDWR);
		unlinkat(S.dirfd, RT_CTL_SOCK, 0);
	}
	/* end by the same signal, as runc's init would: the engine reports 128 + sig */
	rt_exit_as(code, sig);
}

/* ---- entry ---- */

static void report(int fd, const silo_error *err)
{
	char buf[SILO_ERROR_MSG_MAX + 64];
	int n = err ? snprintf(buf, sizeof buf, "E%s %s", silo_code_name(err->code), err->message)
		    : snprintf(buf, sizeof buf, "OK %d", (int)getpid());
	(void)!write_all(fd, buf, (size_t)MIN((size_t)n, sizeof buf - 1));
	close(fd);
}

/* Move the engine's stdio above 10; 0-2 become /dev/null and the log pipe. */
static int take_stdio(int io[3], silo_error *err)
{
	for (int i = 0; i < 3; i++) {
		io[i] = fcntl(i, F_DUPFD_CLOEXEC, 10);
		if (io[i] < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "stdio");
	}
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	int lp[2];
	if (nul < 0 || pipe2(lp, O_CLOEXEC) < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "/dev/null");
	dup2(nul, 0);
	dup2(nul, 1);
	dup2(lp[1], 2);
	close(nul);
	close(lp[1]);
	pthread_t t;
	if (pthread_create(&t, NULL, log_thread, (void *)(intptr_t)lp[0]) == 0)
		pthread_detach(t);
	return 0;
}

__attribute__((noreturn)) void rt_supervise(const rt_create_opts *o, rt_config *cfg, int report_fd)
{
	silo_error err = {0};
	S.cfg = *cfg;
	S.lfd = -1;
	S.t0 = now_mono_ns();
	rt_g.supervisor = true;
	pthread_mutex_init(&S.lock, NULL);
	pthread_cond_init(&S.cond, NULL);
	setsid();
	/* signals the engine sends to the container pid are relayed by one thread */
	sigset_t set;
	sigemptyset(&set);
	for (size_t i = 0; i < ARRAY_SIZE(relayed); i++)
		sigaddset(&set, relayed[i]);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	int io[3] = {-1, -1, -1}, slave = -1;
	char dir[PATH_MAX];
	rt_dir(o->id, dir, sizeof dir);
	S.dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (S.dirfd < 0) {
		silo_fail(&err, SILO_ERR_IO_ERROR, errno, "%s", dir);
		report(report_fd, &err);
		_exit(1);
	}
	if (rt_settings_load(&S.set, &err) < 0 || take_stdio(io, &err) < 0)
		goto fail;
	if (cfg->has_process && cfg->process.terminal) {
		if (!o->console_socket) {
			silo_fail(&err, SILO_ERR_INVALID_CONFIG, 0, "process.terminal is true: --console-socket is required");
			goto fail;
		}
		if (rt_console(o->console_socket, &slave, &err) < 0)
			goto fail;
		ioctl(slave, TIOCSCTTY, 0);
		/* with a terminal the engine's stdio is create's own, not the container's
		 * (as runc's init does not inherit it): an engine that reads create's output
		 * until EOF (containerd's go-runc) must not wait for us */
		for (int i = 0; i < 3; i++) {
			close(io[i]);
			io[i] = -1;
		}
	}
	/* the state the commands read from now on */
	snprintf(S.st.id, sizeof S.st.id, "%s", o->id);
	snprintf(S.st.bundle, sizeof S.st.bundle, "%s", o->bundle);
	snprintf(S.st.rootfs, sizeof S.st.rootfs, "%s", cfg->root);
	format_time_ms(now_realtime_ms(), S.st.created, sizeof S.st.created);
	S.st.annotations = json_incref(cfg->annotations);
	S.st.pid = getpid();
	char pst;
	ns_proc_stat(getpid(), &pst, &S.st.starttime);
	S.st.status = RT_CREATING;
	if (rt_state_write(&S.st, &err) < 0 || listen_ctl(&err) < 0)
		goto fail;
	if (create_sandbox(&err) < 0)
		goto fail;
	/* the hooks see the state the container is in once create returns */
	S.st.status = RT_CREATED;
	if (rt_run_hooks(cfg, RT_HOOK_CREATE_RUNTIME, &S.st, &err) < 0 ||
	    rt_run_hooks(cfg, RT_HOOK_PRESTART, &S.st, &err) < 0)
		goto fail;
	set_status(RT_CREATED, 0);
	S.t_created = now_mono_ns();
	pthread_t ct, st;
	if (pthread_create(&ct, NULL, control_thread, NULL) != 0 || pthread_create(&st, NULL, signal_thread, NULL) != 0) {
		silo_fail(&err, SILO_ERR_INTERNAL, errno, "threads");
		goto fail;
	}
	report(report_fd, NULL);
	report_fd = -1;

	/* created: wait for start (or a kill) */
	pthread_mutex_lock(&S.lock);
	while (!S.start_asked && !S.kill_sig)
		pthread_cond_wait(&S.cond, &S.lock);
	int ksig = S.kill_sig;
	pthread_mutex_unlock(&S.lock);
	if (ksig) {
		rt_log("info", "killed before start (signal %d)", ksig);
		finish(0, ksig, false);
	}
	proc *m = xcalloc(1, sizeof *m);
	m->s = &S;
	m->wake[0] = m->wake[1] = -1;
	m->pty = slave >= 0;
	m->in = m->pty ? slave : io[0];
	m->out = m->pty ? slave : io[1];
	m->err = m->pty ? -1 : io[2];
	int rc = cfg->has_process ? proc_start(m, &cfg->process, &err)
				  : silo_fail(&err, SILO_ERR_INVALID_CONFIG, 0, "config: process is required to start a container");
	pthread_mutex_lock(&S.lock);
	S.main = m;
	if (rc < 0) {
		S.start_failed = true;
		snprintf(S.start_error, sizeof S.start_error, "%s", err.message);
	} else {
		S.started = true;
	}
	pthread_cond_broadcast(&S.cond);
	pthread_mutex_unlock(&S.lock);
	if (rc < 0) {
		rt_log("error", "start: %s", err.message);
		finish(127, 0, false);
	}
	set_status(RT_RUNNING, 0);
	S.t_started = now_mono_ns();
	silo_error he = {0};
	if (rt_run_hooks(cfg, RT_HOOK_POSTSTART, &S.st, &he) < 0)
		rt_log("warning", "poststart hook: %s", he.message);
	int code, sig;
	proc_wait(m, &code, &sig);
	pthread_mutex_lock(&S.lock);
	S.ended = true;
	pthread_mutex_unlock(&S.lock);
	finish(code, sig, true);
fail:
	rt_log("error", "create: %s", err.message);
	report(report_fd, &err);
	if (S.sb) {
		cleanup_report rep = {0};
		silo_error e = {0};
		sandbox_destroy(S.sb, 0, &rep, &e);
		cleanup_report_free(&rep);
	}
	if (S.lfd >= 0)
		unlinkat(S.dirfd, RT_CTL_SOCK, 0);
	_exit(1);
}
