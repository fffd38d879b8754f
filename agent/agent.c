/* SPDX-License-Identifier: Apache-2.0
 * silo-agent: the static guest agent (docs/protocol.md).
 *
 * One poll() loop serves one host connection at a time: exec tasks with
 * pipes or a PTY, chunked file transfer, directory operations, heartbeat.
 * Everything from the host is length-checked by the codec; everything the
 * agent buffers is bounded (output queue high-water mark, task count), and
 * each exec task is flow-controlled both ways (docs/protocol.md "Flow
 * control"): a task's pipes are read only while the host has granted output
 * credit, so a child whose output nobody takes blocks in write(2); the host
 * may send stdin only against the stdin window, so the stdin buffer of a
 * task never exceeds WIRE_STDIN_WINDOW. Credit beyond a window from the host
 * is a protocol violation (the connection is dropped).
 * Beyond exec and single files: rename, listings with a depth, directory
 * watches (inotify, bounded: the agent reads events only while its send queue
 * has room, so a host that does not keep up makes the kernel queue overflow,
 * which is reported as `ovf`, never buffered here), and tar streams of trees
 * both ways (lib/archive), each run in a forked child as an exec task with
 * the same flow control as a command's output and stdin.
 * As PID 1 it also mounts the basics, reaps orphans and powers off.
 */
#include <dirent.h>
#include <grp.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "agent_net.h"
#include "archive/archive.h"
#include "common/sigset.h"
#include "wire.h"

#ifndef SILO_VERSION
#define SILO_VERSION "dev"
#endif

#define MAX_TASKS 1024
#define OUTQ_HIGH (4u * 1024u * 1024u)      /* stop reading children above this */
#define OUTQ_COMPACT (1024u * 1024u)        /* compact the send queue once this much is sent */
#define READ_CHUNK WIRE_CHUNK                /* a child's output per read: one frame's worth */
#define DRAIN_MS 200                         /* after exit, wait this long for pipe EOF */
#define LIST_FRAME_BYTES (256u * 1024u)
#define LIST_DEFAULT_MAX (1u << 20)         /* entries of one listing when the host sets no max */
#define WATCH_MAX_DIRS 4096                  /* directories one (recursive) watch follows */
#define WATCH_MAX_TASKS 64                   /* watches at once (each holds an inotify instance) */

enum task_kind { T_EXEC, T_FREAD, T_FWRITE, T_WATCH };

typedef struct watch_dir {
	int wd;
	char *rel;                /* "" for the watched directory itself */
} watch_dir;

typedef struct task {
	struct task *next;
	uint32_t id;
	enum task_kind kind;
	/* exec */
	pid_t pid;
	int out_fd, err_fd, in_fd;
	bool pty;
	uint8_t *in_buf;          /* stdin not yet written to the child, at most WIRE_STDIN_WINDOW */
	size_t in_len, in_off;
	bool in_eof;              /* close stdin once in_buf drains */
	uint32_t in_avail;        /* stdin bytes the host may still send (its credit) */
	uint32_t in_done;         /* stdin written (or dropped) but not yet credited back */
	uint32_t win;             /* output window (exec `win`) */
	uint32_t credit;          /* output bytes we may still send */
	bool discard;             /* the host wants no more output: read and drop */
	bool exited, timed_out;
	bool orphan;              /* its connection is gone: runs on, output discarded, id free */
	bool sock;                /* a tcp task (port forwarding): out_fd/in_fd are one socket, no process */
	int status;
	uint64_t start_ns, deadline_ns, drain_until_ns;
	uint64_t oom_at_start;    /* oom_kills() when it started */
	bool killed;              /* the host sent it SIGKILL (never reported as an OOM kill) */
	/* files */
	int file_fd;
	uint64_t max, sent;
	/* watch */
	int ino_fd;
	bool recursive;
	char *root_path;          /* the watched directory (recursive: to follow new subdirectories) */
	watch_dir *wds;
	size_t n_wds, cap_wds;
	wire_event *evs;          /* WIRE_MAX_EVS collected, sent once per round */
	uint32_t n_evs;
	size_t ev_bytes;
	bool ovf;
} task;

static struct {
	int conn;                 /* current host connection or -1 */
	int listen_fd;            /* --listen-fd / --vsock, or -1 */
	const char *device;       /* --device */
	uint64_t reopen_at_ns;
	bool exit_on_disconnect;  /* --fd mode */
	bool handshaken;
	bool init;                /* PID-1 duties */
	bool poweroff;            /* in a VM: power off instead of exit */
	bool reboot_to_exit;      /* QEMU -no-reboot: reboot() ends the VM */
	bool shutting_down;
	int sfd;                  /* signalfd */
	uint8_t *in;              /* inbound frame buffer */
	size_t in_len;
	mp_buf outq;
	size_t outq_off;
	task *tasks;
	int n_tasks;
	bool verbose;
	int oom_fd;               /* --oom-fd: a file with an "oom_kill N" line, or -1 */
	int kmsg_fd;              /* in a VM: /dev/kmsg (non-blocking, from its end), or -1 */
	uint64_t kmsg_ooms;       /* OOM kills the kernel logged there so far */
} G = {.conn = -1, .listen_fd = -1, .sfd = -1, .oom_fd = -1, .kmsg_fd = -1};

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...)
{
	if (!G.verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("silo-agent: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* OOM kills in the sandbox, counted. Namespace: the sandbox cgroup's
 * memory.events (v2) or memory.oom_control (v1) "oom_kill N" line, a file the
 * provider opens on the host and hands over as --oom-fd. VM (the whole guest
 * is the sandbox): the kernel's "Killed process" records in /dev/kmsg, as the
 * guest kernel has no vm event counters (/proc/vmstat lacks oom_kill);
 * only kernel records (facility 0) count, so a guest process writing to
 * /dev/kmsg cannot fake one. A command counts as OOM-killed when it ended
 * with SIGKILL (or exit status 137: a shell reporting its child's SIGKILL)
 * and the count rose while it ran, unless its timeout or the host killed it.
 * The count is per sandbox: of two commands killed with SIGKILL at once, both
 * are reported. UINT64_MAX: no counter. */
static uint64_t kmsg_oom_kills(void)
{
	char rec[2048];
	for (;;) {
		ssize_t n = read(G.kmsg_fd, rec, sizeof rec - 1);   /* one record per read */
		if (n < 0 && errno == EPIPE)
			continue;   /* records were overwritten before we read them */
		if (n <= 0)
			break;
		rec[n] = '\0';
		char *semi = strchr(rec, ';');
		if (semi && strtoul(rec, NULL, 10) < 8 && strstr(semi, ": Killed process "))
			G.kmsg_ooms++;
	}
	return G.kmsg_ooms;
}

static uint64_t oom_kills(void)
{
	char buf[4096];
	if (G.oom_fd < 0)
		return G.kmsg_fd >= 0 ? kmsg_oom_kills() : UINT64_MAX;
	ssize_t n = pread(G.oom_fd, buf, sizeof buf - 1, 0);
	if (n <= 0)
		return UINT64_MAX;
	buf[n] = '\0';
	for (const char *l = buf;;) {
		if (!strncmp(l, "oom_kill ", 9))
			return strtoull(l + 9, NULL, 10);
		if (!(l = strchr(l, '\n')))
			return UINT64_MAX;
		l++;
	}
}

static bool oom_verdict(const task *t)
{
	bool sigkill = WIFSIGNALED(t->status) ? WTERMSIG(t->status) == SIGKILL : WEXITSTATUS(t->status) == 128 + SIGKILL;
	if (!sigkill || t->timed_out || t->killed || t->oom_at_start == UINT64_MAX)
		return false;
	uint64_t now = oom_kills();
	return now != UINT64_MAX && now > t->oom_at_start;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void set_nb(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* ---------------- outbound ---------------- */

static size_t outq_pending(void)
{
	return G.outq.len - G.outq_off;
}

static void send_msg(const wire_msg *m)
{
	if (G.conn < 0 || !G.handshaken)
		return;
	if (G.outq_off && G.outq_off == G.outq.len) {
		mp_buf_reset(&G.outq);
		G.outq_off = 0;
	}
	if (!wire_encode(&G.outq, m))
		logmsg("dropping oversized %s frame", wire_type_name(m->type));
}

static void send_error(uint32_t id, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void send_error(uint32_t id, int code, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	wire_msg m = {.type = WM_ERROR, .id = id, .present = WF_CODE | WF_MSG, .code = code, .msg = buf};
	send_msg(&m);
}

static void send_ok(uint32_t id)
{
	wire_msg m = {.type = WM_OK, .id = id};
	send_msg(&m);
}

static void send_credit(uint32_t id, uint32_t n)
{
	wire_msg m = {.type = WM_CREDIT, .id = id, .present = WF_N, .n = n};
	send_msg(&m);
}

static void flush_out(void)
{
	while (G.conn >= 0 && outq_pending()) {
		ssize_t n = write(G.conn, G.outq.p + G.outq_off, outq_pending());
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break; /* EAGAIN: poll for POLLOUT; errors surface on read */
		}
		G.outq_off += (size_t)n;
	}
	if (G.outq_off == G.outq.len) {
		mp_buf_reset(&G.outq);
		G.outq_off = 0;
	} else if (G.outq_off >= OUTQ_COMPACT) {
		/* A host that keeps up only just never empties the queue: move the
		 * unsent tail to the front so the buffer stays bounded. */
		memmove(G.outq.p, G.outq.p + G.outq_off, G.outq.len - G.outq_off);
		G.outq.len -= G.outq_off;
		G.outq_off = 0;
	}
}

/* ---------------- tasks ---------------- */

static task *task_find(uint32_t id)
{
	for (task *t = G.tasks; t; t = t->next)
		if (t->id == id && !t->orphan)
			return t;
	return NULL;
}

static task *task_new(uint32_t id, enum task_kind kind)
{
	if (G.n_tasks >= MAX_TASKS) {
		send_error(id, EAGAIN, "too many tasks (max %d)", MAX_TASKS);
		return NULL;
	}
	if (task_find(id)) {
		send_error(id, EEXIST, "task id %u already in use", id);
		return NULL;
	}
	task *t = calloc(1, sizeof *t);
	if (!t) {
		send_error(id, ENOMEM, "out of memory");
		return NULL;
	}
	t->id = id;
	t->kind = kind;
	t->out_fd = t->err_fd = t->in_fd = t->file_fd = t->ino_fd = -1;
	t->next = G.tasks;
	G.tasks = t;
	G.n_tasks++;
	return t;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void task_free(task *t)
{
	for (task **pp = &G.tasks; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	close_fd(&t->out_fd);
	close_fd(&t->err_fd);
	close_fd(&t->in_fd);
	close_fd(&t->file_fd);
	close_fd(&t->ino_fd);
	for (size_t i = 0; i < t->n_wds; i++)
		free(t->wds[i].rel);
	free(t->wds);
	free(t->root_path);
	for (uint32_t i = 0; i < t->n_evs; i++)
		free(t->evs[i].name);
	free(t->evs);
	free(t->in_buf);
	free(t);
	G.n_tasks--;
}

/* ---------------- exec ---------------- */

static const char *const default_env[] = {
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root",
	NULL,
};

static char **build_env(const wire_msg *m)
{
	size_t n = 0;
	char **env = calloc(m->envc + 4, sizeof *env);
	if (!env)
		return NULL;
	for (size_t i = 0; default_env[i]; i++) {
		size_t kl = strchr(default_env[i], '=') - default_env[i];
		bool overridden = false;
		for (uint32_t j = 0; j < m->envc; j++)
			if (!strncmp(m->env[j], default_env[i], kl + 1))
				overridden = true;
		if (!overridden)
			env[n++] = (char *)default_env[i];
	}
	if (m->pty) {
		bool has_term = false;
		for (uint32_t j = 0; j < m->envc; j++)
			if (!strncmp(m->env[j], "TERM=", 5))
				has_term = true;
		if (!has_term)
			env[n++] = "TERM=xterm";
	}
	for (uint32_t j = 0; j < m->envc; j++)
		env[n++] = m->env[j];
	env[n] = NULL;
	return env;
}

struct child_err {
	int stage;   /* 1 chdir, 2 setgid, 3 setuid, 4 exec, 5 pty */
	int err;
};

static void send_output(uint32_t id, int stream, const void *p, size_t n);
static void drop_connection(const char *why);

/* The host broke the flow-control rules: say why, then hang up (as for a
 * malformed frame; the agent holds the host to the limits it holds us to). */
static void host_violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void host_violation(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	send_error(0, EPROTO, "flow control: %s", buf);
	flush_out();
	drop_connection("flow-control violation");
}

static void exec_failed(task *t, const char *argv0, const char *cwd, struct child_err ce)
{
	static const char *const stage[] = {"?", "chdir", "setgid", "setuid", "exec", "pty"};
	char msg[512];
	int n = snprintf(msg, sizeof msg, "silo-agent: %s %s: %s\n", stage[ce.stage < 6 ? ce.stage : 0],
			 ce.stage == 4 ? argv0 : ce.stage == 1 && cwd ? cwd : "", strerror(ce.err));
	size_t len = (size_t)(n < (int)sizeof msg ? n : (int)sizeof msg - 1);
	if (!t->orphan && len <= t->credit) { /* always: the task's first output, < WIRE_MIN_WINDOW */
		t->credit -= (uint32_t)len;
		send_output(t->id, 2, msg, len);
	}
	t->exited = true;
	t->status = (ce.stage == 4 && ce.err == ENOENT) ? 127 << 8 : 126 << 8;
	t->drain_until_ns = 0;
	close_fd(&t->out_fd);
	close_fd(&t->err_fd);
	close_fd(&t->in_fd);
}

/* Close every fd above 2 in a forked child that does not exec (tar): the
 * channel, the listening socket and other tasks' pipes must not stay open. */
static void close_from(int lowfd)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, lowfd, ~0u, 0) == 0)
		return;
#endif
	for (int fd = lowfd; fd < 65536; fd++)
		close(fd);
}

static int tar_out_fd(void *ud, const void *buf, size_t n, silo_error *err)
{
	const char *p = buf;
	while (n) {
		ssize_t k = write(1, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "write the archive");
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static void tar_warn(void *ud, const char *msg)
{
	dprintf(2, "silo-agent: tar: %s\n", msg);
}

static ssize_t tar_in_read(void *ud, void *buf, size_t n, silo_error *err)
{
	for (;;) {
		ssize_t k = read(0, buf, n);
		if (k >= 0)
			return k;
		if (errno != EINTR)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "read the archive");
	}
}

static int mkdir_parents(char *path, mode_t mode);

/* The child of a tar_out / tar_in task: the archive on stdout / from stdin,
 * errors as one line on stderr, exit status 0 or 1. */
static int tar_child(const wire_msg *m)
{
	silo_error err = {0};
	int rc;
	if (m->type == WM_TAR_OUT) {
		archive_wopts o = {.warn = tar_warn};
		rc = archive_write(AT_FDCWD, m->path, &o, tar_out_fd, NULL, NULL, &err);
	} else {
		char *dir = strdup(m->path);
		int fd = dir && mkdir_parents(dir, 0755) == 0 ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
		if (fd < 0) {
			int e = errno;
			silo_fail(&err, e == ENOENT ? SILO_ERR_FILE_NOT_FOUND : SILO_ERR_IO_ERROR, e, "destination %s", m->path);
			rc = -1;
		} else {
			tar_reader *r = tar_reader_new(tar_in_read, NULL);
			archive_xopts o = {.owners = true, .keep_setid = true};
			rc = archive_extract(r, fd, &o, NULL, &err);
			tar_reader_free(r);
			close(fd);
		}
		free(dir);
		if (rc < 0) {   /* take the rest, so the host's stdin is never refused mid-way */
			char sink[4096];
			while (read(0, sink, sizeof sink) > 0)
				;
		}
	}
	if (rc < 0) {
		dprintf(2, "%s: %s\n", silo_code_name(err.code), err.message);
		return 1;
	}
	return 0;
}

/* Before forking a tar task: the path must exist (tar_out) or be a directory
 * or absent (tar_in); answers the error itself. */
static bool tar_precheck(const wire_msg *m)
{
	const char *what = m->type == WM_TAR_OUT ? "tar_out" : "tar_in";
	if (!m->path || m->path[0] != '/') {
		send_error(m->id, EINVAL, "%s: an absolute path is required", what);
		return false;
	}
	struct stat st;
	if (m->type == WM_TAR_OUT && lstat(m->path, &st) < 0) {
		int e = errno;
		send_error(m->id, e, "%s %s", what, m->path);
		return false;
	}
	if (m->type == WM_TAR_IN && stat(m->path, &st) == 0 && !S_ISDIR(st.st_mode)) {
		send_error(m->id, ENOTDIR, "%s %s", what, m->path);
		return false;
	}
	return true;
}

/* exec, tar_out and tar_in: a child with pipes (or a PTY) as an exec task. */
static void handle_exec(const wire_msg *m)
{
	bool tar = m->type != WM_EXEC;
	if (tar && !tar_precheck(m))
		return;
	if (!tar && (!(m->present & WF_ARGV) || m->argc == 0 || !m->argv[0][0])) {
		send_error(m->id, EINVAL, "exec: argv must be a non-empty array of strings");
		return;
	}
	if ((m->present & WF_SIG) || (m->pty && (m->rows > 4096 || m->cols > 4096))) {
		send_error(m->id, EINVAL, "exec: invalid field");
		return;
	}
	if ((m->present & WF_WIN) && (m->win < WIRE_MIN_WINDOW || m->win > WIRE_MAX_WINDOW)) {
		send_error(m->id, EINVAL, "exec: win must be %u..%u", WIRE_MIN_WINDOW, WIRE_MAX_WINDOW);
		return;
	}
	task *t = task_new(m->id, T_EXEC);
	if (!t)
		return;
	int out[2] = {-1, -1}, err[2] = {-1, -1}, in[2] = {-1, -1}, ep[2] = {-1, -1};
	int master = -1;
	char slave_name[64] = "";
	t->pty = m->pty && !tar;
	t->win = t->credit = (m->present & WF_WIN) ? m->win : WIRE_WINDOW;
	t->in_avail = WIRE_STDIN_WINDOW - (uint32_t)m->data_len; /* data_len <= WIRE_CHUNK == the window */
	if (pipe2(ep, O_CLOEXEC) < 0)
		goto sys_fail;
	if (t->pty) {
		master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0 ||
		    ptsname_r(master, slave_name, sizeof slave_name) != 0)
			goto sys_fail;
		struct winsize ws = {.ws_row = m->rows ? m->rows : 24, .ws_col = m->cols ? m->cols : 80};
		ioctl(master, TIOCSWINSZ, &ws);
	} else if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(in, O_CLOEXEC) < 0) {
		goto sys_fail;
	} else if (tar) {
		/* an archive moves in bulk: larger pipes, fewer wakeups (best effort) */
		fcntl(m->type == WM_TAR_OUT ? out[1] : in[1], F_SETPIPE_SZ, 1 << 20);
	}
	char **env = tar ? NULL : build_env(m);
	if (!tar && !env)
		goto sys_fail;
	pid_t pid = fork();
	if (pid < 0) {
		free(env);
		goto sys_fail;
	}
	if (pid == 0) {
		struct child_err ce = {0, 0};
		sigset_t all;
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		for (int s = 1; s < NSIG; s++)
			signal(s, SIG_DFL);
		if (tar) {
			setpgid(0, 0);
			dup2(in[0], 0), dup2(out[1], 1), dup2(err[1], 2);
			close_from(3);
			_exit(tar_child(m));
		}
		if (m->pty) {
			setsid();
			int s = open(slave_name, O_RDWR);
			if (s < 0) {
				ce = (struct child_err){5, errno};
				goto child_fail;
			}
			ioctl(s, TIOCSCTTY, 0);
			dup2(s, 0), dup2(s, 1), dup2(s, 2);
			if (s > 2)
				close(s);
		} else {
			setpgid(0, 0);
			dup2(in[0], 0), dup2(out[1], 1), dup2(err[1], 2);
		}
		if (m->cwd && chdir(m->cwd) < 0) {
			ce = (struct child_err){1, errno};
			goto child_fail;
		}
		/* Changing identity drops the agent's supplementary groups (root's). */
		if ((((m->present & WF_GID) && m->gid >= 0) || ((m->present & WF_UID) && m->uid >= 0)) &&
		    setgroups(0, NULL) < 0) {
			ce = (struct child_err){2, errno};
			goto child_fail;
		}
		if ((m->present & WF_GID) && m->gid >= 0 && setgid((gid_t)m->gid) < 0) {
			ce = (struct child_err){2, errno};
			goto child_fail;
		}
		if ((m->present & WF_UID) && m->uid >= 0 && setuid((uid_t)m->uid) < 0) {
			ce = (struct child_err){3, errno};
			goto child_fail;
		}
		execvpe(m->argv[0], m->argv, env);
		ce = (struct child_err){4, errno};
	child_fail:
		(void)!write(ep[1], &ce, sizeof ce);
		_exit(127);
	}
	free(env);
	close(ep[1]);
	ep[1] = -1;
	t->pid = pid;
	t->start_ns = now_ns();
	t->oom_at_start = oom_kills();
	if (m->present & WF_TIMEOUT && m->timeout)
		t->deadline_ns = t->start_ns + m->timeout * 1000000ull;
	if (t->pty) {
		t->out_fd = master;
		t->in_fd = dup(master);
		if (t->in_fd >= 0)
			fcntl(t->in_fd, F_SETFD, FD_CLOEXEC);
		master = -1;
	} else {
		close(out[1]), close(err[1]), close(in[0]);
		t->out_fd = out[0];
		t->err_fd = err[0];
		t->in_fd = in[1];
	}
	if (t->out_fd >= 0)
		set_nb(t->out_fd);
	if (t->err_fd >= 0)
		set_nb(t->err_fd);
	if (t->in_fd >= 0)
		set_nb(t->in_fd);
	if (m->data_len) {
		t->in_buf = malloc(m->data_len);
		if (t->in_buf) {
			memcpy(t->in_buf, m->data, m->data_len);
			t->in_len = m->data_len;
		}
	}
	t->in_eof = m->type == WM_TAR_OUT || (m->type == WM_EXEC && !m->flag); /* stdin not streamed: close after the initial data */
	struct child_err ce;
	ssize_t n;
	do {
		n = read(ep[0], &ce, sizeof ce);
	} while (n < 0 && errno == EINTR);
	close(ep[0]);
	wire_msg st = {.type = WM_STARTED, .id = t->id, .present = WF_PID, .pid = (uint32_t)pid};
	send_msg(&st);
	if (n == (ssize_t)sizeof ce)
		exec_failed(t, m->argv[0], m->cwd, ce);
	return;
sys_fail: {
	int e = errno;
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0) close(out[i]);
		if (err[i] >= 0) close(err[i]);
		if (in[i] >= 0) close(in[i]);
		if (ep[i] >= 0) close(ep[i]);
	}
	if (master >= 0)
		close(master);
	task_free(t);
	send_error(m->id, e, "exec");
}
}

static void send_output(uint32_t id, int stream, const void *p, size_t n)
{
	wire_msg m = {.type = WM_OUTPUT, .id = id, .present = WF_STREAM | WF_DATA, .stream = (uint32_t)stream,
		      .data = p, .data_len = n};
	send_msg(&m);
}

/* Output nobody will see (the host said discard, or its session is gone) is
 * read without credit; everything else only against the window. */
static bool output_unmetered(const task *t)
{
	return t->orphan || t->discard;
}

static void read_child(task *t, int *fd, int stream)
{
	static uint8_t buf[READ_CHUNK];
	size_t want = output_unmetered(t) ? sizeof buf : t->credit < sizeof buf ? t->credit : sizeof buf;
	if (want == 0)
		return;
	ssize_t n = read(*fd, buf, want);
	if (n > 0) {
		if (!output_unmetered(t)) {
			t->credit -= (uint32_t)n;
			send_output(t->id, stream, buf, (size_t)n);
		}
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	close_fd(fd); /* EOF, or EIO on a PTY whose slave closed */
	if (t->pty)
		close_fd(&t->in_fd);
}

/* n stdin bytes left the buffer (written to the child, or dropped because
 * its stdin is closed): give the host that much credit back, in batches of a
 * quarter window, or at once when the buffer ran empty. */
static void stdin_consumed(task *t, size_t n)
{
	t->in_done += (uint32_t)n;
	bool empty = t->in_off >= t->in_len;
	if (t->in_done && (t->in_done >= WIRE_STDIN_WINDOW / 4 || empty) && !t->orphan) {
		t->in_avail += t->in_done;
		send_credit(t->id, t->in_done);
		t->in_done = 0;
	}
}

static void drop_stdin(task *t)
{
	size_t n = t->in_len - t->in_off;
	free(t->in_buf);
	t->in_buf = NULL;
	t->in_len = t->in_off = 0;
	stdin_consumed(t, n);
}

static void write_child_stdin(task *t)
{
	while (t->in_off < t->in_len) {
		ssize_t n = write(t->in_fd, t->in_buf + t->in_off, t->in_len - t->in_off);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			/* EPIPE: the child closed stdin; drop the rest */
			break;
		}
		t->in_off += (size_t)n;
		stdin_consumed(t, (size_t)n);
	}
	drop_stdin(t);
	if (t->in_eof && t->in_fd >= 0) {
		if (t->sock)
			shutdown(t->in_fd, SHUT_WR);   /* the other fd keeps the socket open: send FIN */
		if (t->pty) {
			static const char eot = 4; /* ^D: end of input for the line discipline */
			(void)!write(t->in_fd, &eot, 1);
		}
		close_fd(&t->in_fd);
	}
}

static void handle_stdin(const wire_msg *m)
{
	task *t = task_find(m->id);
	if (!t || t->kind != T_EXEC) {
		send_error(m->id, ESRCH, "stdin: no such task %u", m->id);
		return;
	}
	if (m->data_len > t->in_avail) {
		host_violation("stdin of %zu bytes for task %u with %u bytes of credit", m->data_len, m->id,
			       t->in_avail);
		return;
	}
	t->in_avail -= (uint32_t)m->data_len;
	if (t->in_fd < 0) { /* already closed: data after EOF is dropped (and credited back) */
		stdin_consumed(t, m->data_len);
		return;
	}
	if (m->data_len) {
		size_t keep = t->in_len - t->in_off;
		uint8_t *nb = malloc(keep + m->data_len);
		if (!nb) {
			send_error(m->id, ENOMEM, "stdin: out of memory");
			return;
		}
		if (keep)
			memcpy(nb, t->in_buf + t->in_off, keep);
		memcpy(nb + keep, m->data, m->data_len);
		free(t->in_buf);
		t->in_buf = nb;
		t->in_len = keep + m->data_len;
		t->in_off = 0;
	}
	if (m->eof)
		t->in_eof = true;
	write_child_stdin(t);
}

static void handle_credit(const wire_msg *m)
{
	task *t = task_find(m->id);
	if (!t || t->kind != T_EXEC)
		return; /* the task ended while the credit was on its way */
	if (!(m->present & WF_N) || m->n == 0 || m->n > t->win - t->credit) {
		host_violation("credit of %u bytes for task %u exceeds its window (%u of %u bytes unused)", m->n, m->id,
			       t->credit, t->win);
		return;
	}
	t->credit += m->n;
}

static void handle_discard(const wire_msg *m)
{
	task *t = task_find(m->id);
	if (t && t->kind == T_EXEC)
		t->discard = true;
}

static void handle_signal(const wire_msg *m)
{
	task *t = task_find(m->id);
	if (!t || t->kind != T_EXEC || t->exited) {
		send_error(m->id, ESRCH, "signal: no running task %u", m->id);
		return;
	}
	if (!(m->present & WF_SIG) || m->sig < 1 || m->sig >= NSIG) {
		send_error(m->id, EINVAL, "signal: sig must be 1..%d", NSIG - 1);
		return;
	}
	if (t->sock) {   /* any signal closes a forwarded connection */
		close_fd(&t->out_fd);
		close_fd(&t->in_fd);
		return;
	}
	if (m->sig == SIGKILL)
		t->killed = true;
	kill(-t->pid, (int)m->sig);
}

static void handle_resize(const wire_msg *m)
{
	task *t = task_find(m->id);
	if (!t || !t->pty || t->out_fd < 0) {
		send_error(m->id, ESRCH, "resize: no PTY task %u", m->id);
		return;
	}
	if (!m->rows || !m->cols || m->rows > 4096 || m->cols > 4096) {
		send_error(m->id, EINVAL, "resize: rows/cols must be 1..4096");
		return;
	}
	struct winsize ws = {.ws_row = (unsigned short)m->rows, .ws_col = (unsigned short)m->cols};
	ioctl(t->out_fd, TIOCSWINSZ, &ws);
}

static void finish_exec(task *t)
{
	wire_msg m = {.type = WM_EXIT, .id = t->id, .present = WF_CODE | WF_SIG | WF_TIMEDOUT | WF_MS};
	if (oom_verdict(t))   /* now, not at reap: the kernel logs an OOM kill after its SIGKILL */
		m.present |= WF_OOM, m.oom = true;
	if (WIFSIGNALED(t->status)) {
		m.sig = WTERMSIG(t->status);
		m.code = 128 + m.sig;
	} else {
		m.code = WEXITSTATUS(t->status);
	}
	m.timed_out = t->timed_out;
	m.ms = (now_ns() - t->start_ns) / 1000000ull;
	if (!t->orphan)
		send_msg(&m);
	task_free(t);
}

/* ---------------- files ---------------- */

static void handle_fwrite(const wire_msg *m)
{
	task *t = task_find(m->id);
	if (m->flag) { /* first chunk */
		if (!m->path || !m->path[0]) {
			send_error(m->id, EINVAL, "fwrite: path required");
			return;
		}
		t = task_new(m->id, T_FWRITE);
		if (!t)
			return;
		mode_t mode = (m->present & WF_MODE) ? (mode_t)(m->mode & 07777) : 0644;
		t->file_fd = open(m->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, mode);
		if (t->file_fd < 0) {
			int e = errno;
			task_free(t);
			send_error(m->id, e, "fwrite: open %s", m->path);
			return;
		}
		if (m->present & WF_MODE)
			fchmod(t->file_fd, mode);
	} else if (!t || t->kind != T_FWRITE) {
		send_error(m->id, EBADF, "fwrite: no open transfer %u", m->id);
		return;
	}
	size_t off = 0;
	while (off < m->data_len) {
		ssize_t n = write(t->file_fd, m->data + off, m->data_len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			task_free(t);
			send_error(m->id, e, "fwrite: write");
			return;
		}
		off += (size_t)n;
	}
	if (m->eof) {
		int rc = fsync(t->file_fd) < 0 && errno != EINVAL ? errno : 0;
		if (close(t->file_fd) < 0 && !rc)
			rc = errno;
		t->file_fd = -1;
		task_free(t);
		if (rc)
			send_error(m->id, rc, "fwrite: close");
		else
			send_ok(m->id);
	}
}

static void handle_fread(const wire_msg *m)
{
	if (!m->path || !m->path[0]) {
		send_error(m->id, EINVAL, "fread: path required");
		return;
	}
	int fd = open(m->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		send_error(m->id, e, "fread: open %s", m->path);
		return;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || S_ISDIR(st.st_mode)) {
		close(fd);
		send_error(m->id, EISDIR, "fread: %s is a directory", m->path);
		return;
	}
	task *t = task_new(m->id, T_FREAD);
	if (!t) {
		close(fd);
		return;
	}
	t->file_fd = fd;
	t->max = (m->present & WF_MAX) ? m->max : 0;
}

static void pump_fread(task *t)
{
	static uint8_t buf[WIRE_CHUNK];
	ssize_t n = read(t->file_fd, buf, sizeof buf);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n < 0) {
		int e = errno;
		uint32_t id = t->id;
		task_free(t);
		send_error(id, e, "fread: read");
		return;
	}
	if (t->max && t->sent + (uint64_t)n > t->max) {
		uint32_t id = t->id;
		unsigned long long max = (unsigned long long)t->max;
		task_free(t);
		send_error(id, EFBIG, "fread: file exceeds the requested maximum of %llu bytes", max);
		return;
	}
	t->sent += (uint64_t)n;
	wire_msg m = {.type = WM_FDATA, .id = t->id, .present = WF_DATA | WF_EOF, .data = buf,
		      .data_len = (size_t)n, .eof = n == 0};
	send_msg(&m);
	if (n == 0)
		task_free(t);
}

static void fill_stat(wire_msg *m, const struct stat *st)
{
	m->present |= WF_EXISTS | WF_SIZE | WF_MODE | WF_MTIME | WF_UID | WF_GID;
	m->exists = true;
	m->size = (uint64_t)st->st_size;
	m->mode = st->st_mode;
	m->mtime = st->st_mtime;
	m->uid = st->st_uid;
	m->gid = st->st_gid;
}

static void handle_stat(const wire_msg *m)
{
	if (!m->path) {
		send_error(m->id, EINVAL, "stat: path required");
		return;
	}
	struct stat st;
	char link[WIRE_MAX_PATH + 1];
	wire_msg r = {.type = WM_STAT_R, .id = m->id, .present = WF_EXISTS};
	if (lstat(m->path, &st) == 0) {
		fill_stat(&r, &st);
		ssize_t n = S_ISLNK(st.st_mode) ? readlink(m->path, link, WIRE_MAX_PATH) : -1;
		if (n >= 0) {
			link[n] = '\0';
			r.present |= WF_LINK;
			r.link = link;
		}
	} else if (errno != ENOENT && errno != ENOTDIR) {
		int e = errno;
		send_error(m->id, e, "stat %s", m->path);
		return;
	}
	send_msg(&r);
}

/* A listing being sent: entries batch into list_r frames. */
typedef struct lister {
	uint32_t id;
	wire_dirent ents[256];
	char links[256][WIRE_MAX_PATH + 1];
	uint32_t n;
	size_t bytes;
	uint64_t sent, max;
	bool truncated;
} lister;

static void list_flush(lister *l, bool eof)
{
	if (!l->n && !eof)
		return;
	wire_msg r = {.type = WM_LIST_R, .id = l->id, .present = WF_ENTS | WF_EOF, .ents = l->ents, .n_ents = l->n,
		      .eof = eof};
	if (eof && l->truncated) {
		r.present |= WF_FLAG;
		r.flag = true;
	}
	send_msg(&r);
	for (uint32_t i = 0; i < l->n; i++)
		free(l->ents[i].name);
	l->n = 0;
	l->bytes = 0;
	/* a deep listing may fill the queue faster than the host takes it: let it drain */
	while (G.conn >= 0 && outq_pending() >= OUTQ_HIGH) {
		struct pollfd p = {.fd = G.conn, .events = POLLOUT};
		if (poll(&p, 1, 1000) <= 0 || (p.revents & (POLLERR | POLLHUP)))
			break;
		flush_out();
	}
}

/* Entries of dfd (relative names prefixed with rel), depth levels down. */
static void list_dir(lister *l, int dfd, const char *rel, uint32_t depth)
{
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return;
	}
	struct dirent *de;
	while (!l->truncated && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char name[WIRE_MAX_PATH + 1];
		int k = snprintf(name, sizeof name, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
		if (k < 0 || (size_t)k >= sizeof name)
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (l->sent == l->max) {
			l->truncated = true;
			break;
		}
		wire_dirent *e = &l->ents[l->n];
		*e = (wire_dirent){.name = strdup(name), .size = (uint64_t)st.st_size, .mode = st.st_mode,
				   .mtime = st.st_mtime, .uid = st.st_uid, .gid = st.st_gid};
		if (!e->name)
			continue;
		if (S_ISLNK(st.st_mode)) {
			ssize_t n = readlinkat(dirfd(d), de->d_name, l->links[l->n], WIRE_MAX_PATH);
			if (n >= 0) {
				l->links[l->n][n] = '\0';
				e->link = l->links[l->n];
			}
		}
		l->bytes += (size_t)k + 32 + (e->link ? strlen(e->link) : 0);
		l->n++;
		l->sent++;
		if (l->n == 256 || l->bytes > LIST_FRAME_BYTES)
			list_flush(l, false);
		if (S_ISDIR(st.st_mode) && depth > 1) {
			int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				list_dir(l, sub, name, depth - 1);
		}
	}
	closedir(d);
}

static void handle_list(const wire_msg *m)
{
	if (!m->path) {
		send_error(m->id, EINVAL, "list: path required");
		return;
	}
	uint32_t depth = (m->present & WF_DEPTH) ? m->depth : 1;
	if (depth < 1 || depth > WIRE_MAX_LIST_DEPTH) {
		send_error(m->id, EINVAL, "list: depth must be 1..%u", WIRE_MAX_LIST_DEPTH);
		return;
	}
	int dfd = open(m->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		int e = errno;
		if (dfd >= 0)
			close(dfd);
		send_error(m->id, e, "list %s", m->path);
		return;
	}
	lister *l = calloc(1, sizeof *l);
	if (!l) {
		close(dfd);
		send_error(m->id, ENOMEM, "list: out of memory");
		return;
	}
	l->id = m->id;
	l->max = (m->present & WF_MAX) && m->max ? m->max : LIST_DEFAULT_MAX;
	list_dir(l, dfd, "", depth);
	list_flush(l, true);
	free(l);
}

static int mkdir_parents(char *path, mode_t mode)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		int r = mkdir(path, 0755);
		*p = '/';
		if (r < 0 && errno != EEXIST)
			return -1;
	}
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return -1;
	struct stat st;
	if (stat(path, &st) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

static void handle_mkdir(const wire_msg *m)
{
	if (!m->path || !m->path[0]) {
		send_error(m->id, EINVAL, "mkdir: path required");
		return;
	}
	mode_t mode = (m->present & WF_MODE) ? (mode_t)(m->mode & 07777) : 0755;
	int r = m->flag ? mkdir_parents(m->path, mode) : mkdir(m->path, mode);
	if (r < 0) {
		int e = errno;
		send_error(m->id, e, "mkdir %s", m->path);
		return;
	}
	send_ok(m->id);
}

static int remove_tree(int dirfd, const char *name, dev_t dev, int depth)
{
	struct stat st;
	if (depth > 256) {
		errno = ELOOP;
		return -1;
	}
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dirfd, name, 0);
	if (st.st_dev != dev) {
		errno = EXDEV; /* never cross into another mount */
		return -1;
	}
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	int ret = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    remove_tree(fd, de->d_name, dev, depth + 1) < 0)
			ret = -1;
	closedir(d);
	if (ret == 0)
		ret = unlinkat(dirfd, name, AT_REMOVEDIR);
	return ret;
}

static void handle_remove(const wire_msg *m)
{
	if (!m->path || !m->path[0] || !strcmp(m->path, "/")) {
		send_error(m->id, EINVAL, "remove: refusing empty path or /");
		return;
	}
	struct stat st;
	int r;
	if (lstat(m->path, &st) < 0)
		r = -1;
	else if (!S_ISDIR(st.st_mode))
		r = unlink(m->path);
	else if (m->flag)
		r = remove_tree(AT_FDCWD, m->path, st.st_dev, 0);
	else
		r = rmdir(m->path);
	if (r < 0) {
		int e = errno;
		send_error(m->id, e, "remove %s", m->path);
		return;
	}
	send_ok(m->id);
}

static void handle_rename(const wire_msg *m)
{
	if (!m->path || !m->path[0] || !m->dst || !m->dst[0]) {
		send_error(m->id, EINVAL, "rename: path and dst required");
		return;
	}
	int r;
	if (m->flag) {   /* do not replace an existing dst */
#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE 1
#endif
		r = (int)syscall(SYS_renameat2, AT_FDCWD, m->path, AT_FDCWD, m->dst, RENAME_NOREPLACE);
		if (r < 0 && (errno == ENOSYS || errno == EINVAL)) {   /* old kernel or file system: check, then rename */
			struct stat st;
			if (lstat(m->dst, &st) == 0) {
				errno = EEXIST;
				r = -1;
			} else {
				r = rename(m->path, m->dst);
			}
		}
	} else {
		r = rename(m->path, m->dst);
	}
	if (r < 0) {
		int e = errno;
		send_error(m->id, e, "rename %s to %s", m->path, m->dst);
		return;
	}
	send_ok(m->id);
}

/* ---------------- watch ---------------- */

#define WATCH_MASK (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | \
		    IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK)

static int watch_add(task *t, const char *path, const char *rel);

/* Watch the subdirectories of rel (recursive watches), depth-bounded. */
static void watch_add_tree(task *t, const char *path, const char *rel, int depth)
{
	if (depth > 64)
		return;
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d)) && !t->ovf) {
		if (de->d_name[0] == '.' && (!de->d_name[1] || (de->d_name[1] == '.' && !de->d_name[2])))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
			continue;
		char sp[WIRE_MAX_PATH + 1], sr[WIRE_MAX_PATH + 1];
		int a = snprintf(sp, sizeof sp, "%s/%s", path, de->d_name);
		int b = snprintf(sr, sizeof sr, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
		if (a < 0 || b < 0 || (size_t)a >= sizeof sp || (size_t)b >= sizeof sr)
			continue;
		if (watch_add(t, sp, sr) == 0)
			watch_add_tree(t, sp, sr, depth + 1);
	}
	closedir(d);
}

static int watch_add(task *t, const char *path, const char *rel)
{
	if (t->n_wds >= WATCH_MAX_DIRS) {
		t->ovf = true;   /* the rest of the tree is not watched: the host learns it by the overflow flag */
		return -1;
	}
	int wd = inotify_add_watch(t->ino_fd, path, WATCH_MASK);
	if (wd < 0)
		return -1;
	for (size_t i = 0; i < t->n_wds; i++)
		if (t->wds[i].wd == wd)
			return 0;   /* already watched (a directory moved within the tree) */
	if (t->n_wds == t->cap_wds) {
		size_t nc = t->cap_wds ? t->cap_wds * 2 : 16;
		watch_dir *n = realloc(t->wds, nc * sizeof *n);
		if (!n)
			return -1;
		t->wds = n;
		t->cap_wds = nc;
	}
	char *r = strdup(rel);
	if (!r)
		return -1;
	t->wds[t->n_wds++] = (watch_dir){.wd = wd, .rel = r};
	return 0;
}

static void watch_flush(task *t, bool eof)
{
	if (!t->n_evs && !t->ovf && !eof)
		return;
	wire_msg m = {.type = WM_WATCH_EV, .id = t->id, .present = WF_EVS | WF_OVF | WF_EOF, .evs = t->evs,
		      .n_evs = t->n_evs, .ovf = t->ovf, .eof = eof};
	send_msg(&m);
	for (uint32_t i = 0; i < t->n_evs; i++)
		free(t->evs[i].name);
	t->n_evs = 0;
	t->ev_bytes = 0;
	t->ovf = false;
}

static void watch_event(task *t, uint32_t kind, const char *rel, const char *name)
{
	char full[WIRE_MAX_PATH + 1];
	int k = snprintf(full, sizeof full, "%s%s%s", rel, rel[0] && name[0] ? "/" : "", name);
	if (k < 0 || (size_t)k >= sizeof full)
		return;
	/* inotify coalesces identical consecutive events; so do we, within a frame */
	if (t->n_evs && t->evs[t->n_evs - 1].kind == kind && !strcmp(t->evs[t->n_evs - 1].name, full))
		return;
	if (t->n_evs == WIRE_MAX_EVS || t->ev_bytes + (size_t)k + 16 > LIST_FRAME_BYTES)
		watch_flush(t, false);
	char *c = strdup(full);
	if (!c) {
		t->ovf = true;
		return;
	}
	t->evs[t->n_evs++] = (wire_event){.kind = kind, .name = c};
	t->ev_bytes += (size_t)k + 16;
}

static void handle_watch(const wire_msg *m)
{
	if (!m->path || m->path[0] != '/') {
		send_error(m->id, EINVAL, "watch: an absolute path is required");
		return;
	}
	int watches = 0;
	for (task *x = G.tasks; x; x = x->next)
		watches += x->kind == T_WATCH;
	if (watches >= WATCH_MAX_TASKS) {
		send_error(m->id, EAGAIN, "watch: at most %d watches at once", WATCH_MAX_TASKS);
		return;
	}
	struct stat st;
	int se = stat(m->path, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
	if (se) {
		send_error(m->id, se, "watch %s", m->path);
		return;
	}
	task *t = task_new(m->id, T_WATCH);
	if (!t)
		return;
	errno = 0;
	t->recursive = m->flag;
	t->root_path = strdup(m->path);
	t->evs = calloc(WIRE_MAX_EVS, sizeof *t->evs);
	t->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (!t->evs || !t->root_path || t->ino_fd < 0 || watch_add(t, m->path, "") < 0) {
		int e = errno ? errno : ENOMEM;
		task_free(t);
		send_error(m->id, e, "watch %s", m->path);
		return;
	}
	if (t->recursive)
		watch_add_tree(t, m->path, "", 0);
	send_ok(m->id);
	if (t->ovf)
		watch_flush(t, false);
}

static void handle_cancel(const wire_msg *m)
{
	task *t = task_find(m->id);
	if (t && t->kind == T_WATCH)
		task_free(t);
}

static const char *watch_rel(task *t, int wd, size_t *idx)
{
	for (size_t i = 0; i < t->n_wds; i++)
		if (t->wds[i].wd == wd) {
			*idx = i;
			return t->wds[i].rel;
		}
	return NULL;
}

/* Read what inotify has for t, turn it into events, send them. false: the watch ended. */
static bool pump_watch(task *t)
{
	_Alignas(struct inotify_event) char buf[16384];
	bool gone = false;
	for (;;) {
		ssize_t n = read(t->ino_fd, buf, sizeof buf);
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			p += sizeof *ev + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				t->ovf = true;
				continue;
			}
			size_t idx = 0;
			const char *rel = watch_rel(t, ev->wd, &idx);
			if (!rel)
				continue;
			const char *name = ev->len ? ev->name : "";
			if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
				if (!rel[0]) {
					gone = true;   /* the watched directory itself went away */
				} else if (ev->mask & IN_IGNORED) {
					free(t->wds[idx].rel);
					t->wds[idx] = t->wds[--t->n_wds];
				}
				continue;
			}
			uint32_t kind = ev->mask & IN_CREATE     ? WEV_CREATE
					: ev->mask & IN_MOVED_TO   ? WEV_CREATE
					: ev->mask & IN_MOVED_FROM ? WEV_RENAME
					: ev->mask & IN_DELETE     ? WEV_REMOVE
					: ev->mask & IN_MODIFY     ? WEV_WRITE
					: ev->mask & IN_ATTRIB     ? WEV_CHMOD
								   : 0;
			if (!kind)
				continue;
			char rel_copy[WIRE_MAX_PATH + 1];
			snprintf(rel_copy, sizeof rel_copy, "%s", rel);   /* watch_add may move t->wds */
			watch_event(t, kind, rel_copy, name);
			if (t->recursive && (ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO))) {
				/* follow a new directory (and what was created in it before its watch) */
				char sub[WIRE_MAX_PATH + 1], abs_[WIRE_MAX_PATH + 1];
				int k = snprintf(sub, sizeof sub, "%s%s%s", rel_copy, rel_copy[0] ? "/" : "", name);
				int a = snprintf(abs_, sizeof abs_, "%s/%s", t->root_path, sub);
				if (k > 0 && (size_t)k < sizeof sub && a > 0 && (size_t)a < sizeof abs_ &&
				    watch_add(t, abs_, sub) == 0)
					watch_add_tree(t, abs_, sub, 1);
			}
		}
	}
	watch_flush(t, gone);
	return !gone;
}

/* ---------------- connection ---------------- */

/* The host session ended (hangup or re-handshake): file transfers die with it;
 * exec tasks keep running with their output discarded and stdin closed, and
 * their ids are released so the next session may reuse them. */
static void orphan_tasks(void)
{
	for (task *t = G.tasks, *nx; t; t = nx) {
		nx = t->next;
		if (t->kind != T_EXEC) {
			task_free(t);
			continue;
		}
		t->orphan = true;
		close_fd(&t->in_fd);
		drop_stdin(t);
	}
}

static void drop_connection(const char *why)
{
	logmsg("host connection closed: %s", why);
	if (G.conn >= 0)
		close(G.conn);
	G.conn = -1;
	G.handshaken = false;
	G.in_len = 0;
	mp_buf_reset(&G.outq);
	G.outq_off = 0;
	orphan_tasks();
	if (G.exit_on_disconnect)
		G.shutting_down = true;
	if (G.device)
		G.reopen_at_ns = now_ns() + 50 * 1000000ull;
}

static void do_shutdown(void);

/* ---------------- networking (agent_net.c) ---------------- */

static void handle_net(const wire_msg *m)
{
	char msg[256] = "";
	int e = anet_configure(m->addr, (m->present & WF_N) ? m->n : 0, m->flag, msg, sizeof msg);
	if (e)
		send_error(m->id, e, "net: %s", msg);
	else
		send_ok(m->id);
}

static void send_dnsq(uint32_t tag, const uint8_t *q, size_t len)
{
	wire_msg m = {.type = WM_DNSQ, .id = 0, .present = WF_N | WF_DATA, .n = tag, .data = q, .data_len = len};
	send_msg(&m);
}

static void handle_dnsr(const wire_msg *m)
{
	if ((m->present & WF_N) && (m->present & WF_DATA))
		anet_reply(m->n, m->data, m->data_len);
}

/* A connection to a port in the guest, carried like an exec task: stdin is
 * what the host sends, output what the guest's server answers (docs/protocol.md). */
static void handle_tcp(const wire_msg *m)
{
	if (!(m->present & WF_N) || ((m->present & WF_WIN) && (m->win < WIRE_MIN_WINDOW || m->win > WIRE_MAX_WINDOW))) {
		send_error(m->id, EINVAL, "tcp: n (the port) and a win of %u..%u expected", WIRE_MIN_WINDOW,
			   WIRE_MAX_WINDOW);
		return;
	}
	task *t = task_new(m->id, T_EXEC);
	if (!t)
		return;
	int s = anet_tcp_connect(m->addr, m->n);
	if (s < 0) {
		task_free(t);
		send_error(m->id, -s, "tcp: connect to %s:%u", m->addr ? m->addr : "127.0.0.1", m->n);
		return;
	}
	t->sock = true;
	t->out_fd = s;
	t->in_fd = fcntl(s, F_DUPFD_CLOEXEC, 3);
	t->win = t->credit = (m->present & WF_WIN) ? m->win : WIRE_WINDOW;
	t->in_avail = WIRE_STDIN_WINDOW;
	t->start_ns = now_ns();
	wire_msg st = {.type = WM_STARTED, .id = t->id, .present = WF_PID, .pid = 0};
	send_msg(&st);
}

/* <linux/random.h>'s (musl has no kernel headers here) */
#ifndef RNDADDENTROPY
#define RNDADDENTROPY _IOW('R', 0x03, int[2])
#endif
#ifndef RNDRESEEDCRNG
#define RNDRESEEDCRNG _IO('R', 0x07)
#endif

/* The host's hello carries fresh entropy: a guest restored from a snapshot
 * (template, fork) would otherwise produce the same random numbers as every
 * other copy. Credited, then the CRNG is reseeded now, not at its next interval. */
static void reseed(const wire_msg *m)
{
	if (!(m->present & WF_DATA) || m->data_len != WIRE_HELLO_SEED)
		return;
	struct {
		int entropy_count;
		int buf_size;
		uint8_t buf[WIRE_HELLO_SEED];
	} e = {.entropy_count = WIRE_HELLO_SEED * 8, .buf_size = WIRE_HELLO_SEED};
	memcpy(e.buf, m->data, WIRE_HELLO_SEED);
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	/* EPERM: a namespace sandbox, which shares the host kernel's RNG */
	if (fd >= 0 && (ioctl(fd, RNDADDENTROPY, &e) < 0 || ioctl(fd, RNDRESEEDCRNG) < 0) && errno != EPERM)
		logmsg("reseed: %s", strerror(errno));
	if (fd >= 0)
		close(fd);
	explicit_bzero(&e, sizeof e);
}

static void handle_msg(const wire_msg *m)
{
	if (G.handshaken && m->type == WM_HELLO) {
		/* Resync: the host reconnected (e.g. to a virtio-serial port)
		 * without the agent seeing a hangup. Start a new session. */
		logmsg("hello on an open session: resync");
		orphan_tasks();
		G.handshaken = false;
	}
	if (!G.handshaken) {
		if (m->type != WM_HELLO) {
			/* Not yet handshaken: say why, then hang up. */
			G.handshaken = true;
			send_error(m->id, EPROTO, "expected hello, got %s", wire_type_name(m->type));
			flush_out();
			drop_connection("no hello");
			return;
		}
		G.handshaken = true;
		if (m->v != WIRE_VERSION) {
			send_error(m->id, EPROTONOSUPPORT, "protocol version %u not supported (agent speaks %u)",
				   m->v, WIRE_VERSION);
			flush_out();
			drop_connection("version mismatch");
			return;
		}
		reseed(m);
		struct utsname u;
		uname(&u);
		wire_msg r = {.type = WM_HELLO_OK, .id = m->id, .present = WF_V | WF_AGENT | WF_KERNEL | WF_PID,
			      .v = WIRE_VERSION, .agent = SILO_VERSION, .kernel = u.release,
			      .pid = (uint32_t)getpid()};
		send_msg(&r);
		return;
	}
	switch (m->type) {
	case WM_EXEC: case WM_TAR_OUT: case WM_TAR_IN: handle_exec(m); break;
	case WM_RENAME: handle_rename(m); break;
	case WM_WATCH: handle_watch(m); break;
	case WM_CANCEL: handle_cancel(m); break;
	case WM_STDIN: handle_stdin(m); break;
	case WM_CREDIT: handle_credit(m); break;
	case WM_DISCARD: handle_discard(m); break;
	case WM_SIGNAL: handle_signal(m); break;
	case WM_RESIZE: handle_resize(m); break;
	case WM_FWRITE: handle_fwrite(m); break;
	case WM_FREAD: handle_fread(m); break;
	case WM_STAT: handle_stat(m); break;
	case WM_LIST: handle_list(m); break;
	case WM_MKDIR: handle_mkdir(m); break;
	case WM_REMOVE: handle_remove(m); break;
	case WM_NET: handle_net(m); break;
	case WM_DNSR: handle_dnsr(m); break;
	case WM_TCP: handle_tcp(m); break;
	case WM_PING: {
		wire_msg r = {.type = WM_PONG, .id = m->id, .present = m->present & WF_MS, .ms = m->ms};
		send_msg(&r);
		break;
	}
	case WM_SHUTDOWN:
		send_ok(m->id);
		flush_out();
		do_shutdown();
		break;
	default:
		send_error(m->id, ENOSYS, "unknown message type %u", m->type);
		break;
	}
}

static void read_conn(void)
{
	for (;;) {
		size_t cap = WIRE_MAX_FRAME + 4;
		if (G.in_len == cap)
			break;
		ssize_t n = read(G.conn, G.in + G.in_len, cap - G.in_len);
		if (n == 0) {
			drop_connection("EOF");
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				drop_connection(strerror(errno));
			break;
		}
		G.in_len += (size_t)n;
		break;
	}
	size_t off = 0;
	while (G.conn >= 0 && G.in_len - off >= 4) {
		uint32_t len;
		if (!wire_frame_len(G.in + off, &len)) {
			G.handshaken = true;
			send_error(0, EMSGSIZE, "frame length must be 1..%u", WIRE_MAX_FRAME);
			flush_out();
			drop_connection("bad frame length");
			return;
		}
		if (G.in_len - off - 4 < len)
			break;
		wire_msg m;
		char err[128];
		if (!wire_decode(G.in + off + 4, len, &m, err, sizeof err)) {
			wire_msg_free(&m);
			G.handshaken = true;
			send_error(0, EBADMSG, "malformed frame: %s", err);
			flush_out();
			drop_connection("malformed frame");
			return;
		}
		handle_msg(&m);
		wire_msg_free(&m);
		off += 4 + len;
	}
	if (G.conn >= 0 && off) {
		memmove(G.in, G.in + off, G.in_len - off);
		G.in_len -= off;
	}
}

static void try_open_device(void)
{
	int fd = open(G.device, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		G.reopen_at_ns = now_ns() + 100 * 1000000ull;
		return;
	}
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, 0) == 1 && (p.revents & POLLHUP)) {
		close(fd); /* host side not connected yet */
		G.reopen_at_ns = now_ns() + 50 * 1000000ull;
		return;
	}
	if (isatty(fd)) { /* a serial console or hvc port: bytes, not lines */
		struct termios tio;
		if (tcgetattr(fd, &tio) == 0) {
			cfmakeraw(&tio);
			tcsetattr(fd, TCSANOW, &tio);
		}
	}
	G.conn = fd;
	G.reopen_at_ns = 0;
}

/* ---------------- children, signals, shutdown ---------------- */

static void reap(void)
{
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (task *t = G.tasks; t; t = t->next)
			if (t->kind == T_EXEC && t->pid == pid && !t->exited) {
				t->exited = true;
				t->status = st;
				t->drain_until_ns = now_ns() + DRAIN_MS * 1000000ull;
			}
	}
}

static void kill_all_tasks(void)
{
	for (task *t = G.tasks; t; t = t->next)
		if (t->kind == T_EXEC && !t->exited && !t->sock)
			kill(-t->pid, SIGKILL);
}

static void do_shutdown(void)
{
	G.shutting_down = true;
}

static void final_exit(void)
{
	kill_all_tasks();
	if (G.init) {
		kill(-1, SIGKILL);
		while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
			;
	}
	flush_out();
	if (G.poweroff) {
		sync();
		reboot(G.reboot_to_exit ? RB_AUTOBOOT : RB_POWER_OFF);
	}
	_exit(0);
}

static void on_signal_dummy(int s)
{
	(void)s;
}

static void setup_signals(void)
{
	sigset_t set = sigset_of(SIGCHLD, SIGTERM, SIGINT, SIGHUP, 0);
	/* PID 1 in a pid namespace ignores signals with SIG_DFL: install handlers. */
	struct sigaction sa = {.sa_handler = on_signal_dummy};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	G.sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static void mount_basics(void)
{
	mkdir("/proc", 0555), mkdir("/sys", 0555), mkdir("/dev", 0755), mkdir("/tmp", 01777);
	mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	if (access("/dev/null", F_OK) != 0)
		mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	mkdir("/dev/pts", 0755);
	if (access("/dev/pts/ptmx", F_OK) != 0)
		mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620");
	if (access("/dev/ptmx", F_OK) != 0)
		symlink("pts/ptmx", "/dev/ptmx");
	mkdir("/dev/shm", 01777);
	mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	mkdir("/run", 0755);
	mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
}

/* Kernel command line: silo.channel=/dev/... , silo.hostname=NAME,
 * silo.poweroff=reboot|poweroff, silo.verbose */
static void parse_cmdline(char *dev, size_t devlen, char *host, size_t hostlen)
{
	FILE *f = fopen("/proc/cmdline", "r");
	if (!f)
		return;
	char line[4096];
	if (!fgets(line, sizeof line, f))
		line[0] = '\0';
	fclose(f);
	for (char *tok = strtok(line, " \n"); tok; tok = strtok(NULL, " \n")) {
		if (!strncmp(tok, "silo.channel=", 13))
			snprintf(dev, devlen, "%s", tok + 13);
		else if (!strncmp(tok, "silo.hostname=", 14))
			snprintf(host, hostlen, "%s", tok + 14);
		else if (!strcmp(tok, "silo.poweroff=reboot"))
			G.reboot_to_exit = true;
		else if (!strcmp(tok, "silo.verbose"))
			G.verbose = true;
	}
}

/* Find the virtio-serial port named "silo.agent" (no udev in the guest). */
static bool find_virtio_port(char *out, size_t len)
{
	DIR *d = opendir("/sys/class/virtio-ports");
	if (!d)
		return false;
	struct dirent *de;
	bool found = false;
	while (!found && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char p[512], name[64] = "";
		snprintf(p, sizeof p, "/sys/class/virtio-ports/%s/name", de->d_name);
		FILE *f = fopen(p, "r");
		if (!f)
			continue;
		if (fgets(name, sizeof name, f)) {
			name[strcspn(name, "\n")] = '\0';
			if (!strcmp(name, "silo.agent")) {
				snprintf(out, len, "/dev/%.200s", de->d_name);
				found = true;
			}
		}
		fclose(f);
	}
	closedir(d);
	return found;
}

static int vsock_listen(unsigned port)
{
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
	struct {
		unsigned short svm_family, svm_reserved1;
		unsigned int svm_port, svm_cid;
		unsigned char svm_zero[4];
	} addr = {.svm_family = AF_VSOCK, .svm_port = port, .svm_cid = 0xffffffffu /* VMADDR_CID_ANY */};
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 4) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void usage(FILE *f)
{
	fputs("usage: silo-agent [--init] [--poweroff|--reboot-exit] [--hostname NAME] [--oom-fd N]\n"
	      "                  [--verbose]\n"
	      "                  [--fd N | --listen-fd N | --device PATH | --vsock PORT]\n"
	      "Serves the silo wire protocol (docs/protocol.md) on one channel.\n"
	      "  --fd N         serve an already-connected stream fd; exit when it closes\n"
	      "  --listen-fd N  accept connections on an inherited listening socket, one at a time\n"
	      "  --device PATH  a character device (virtio-serial port); reopened after host hangup\n"
	      "  --vsock PORT   listen on AF_VSOCK PORT\n"
	      "  --init         PID-1 duties: mount /proc /sys /dev /tmp, reap orphans\n"
	      "  --poweroff     power the machine off on shutdown (default when PID 1 in a VM)\n"
	      "  --reboot-exit  reboot(RB_AUTOBOOT) on shutdown instead (QEMU -no-reboot)\n"
	      "  --hostname N   set the hostname at start\n"
	      "  --oom-fd N     read OOM kills from this file's \"oom_kill N\" line (a cgroup's\n"
	      "                 memory.events or memory.oom_control; in a VM: /dev/kmsg)\n"
	      "  --verbose      log connections and errors to stderr\n"
	      "A hello on an open session starts a new session (resync after a host reconnect).\n"
	      "As PID 1 without a channel option it reads silo.channel=, silo.hostname=,\n"
	      "silo.poweroff=reboot and silo.verbose from /proc/cmdline, then looks for the\n"
	      "virtio-serial port named silo.agent, then listens on vsock port 1024.\n",
	      f);
}

int main(int argc, char **argv)
{
	int fd = -1, lfd = -1, vport = -1;
	char device[256] = "", hostname[65] = "";
	bool poweroff_flag = false;
	G.init = getpid() == 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--fd") && v)
			fd = atoi(v), i++;
		else if (!strcmp(a, "--listen-fd") && v)
			lfd = atoi(v), i++;
		else if (!strcmp(a, "--device") && v)
			snprintf(device, sizeof device, "%s", v), i++;
		else if (!strcmp(a, "--vsock") && v)
			vport = atoi(v), i++;
		else if (!strcmp(a, "--oom-fd") && v)
			G.oom_fd = atoi(v), i++;
		else if (!strcmp(a, "--hostname") && v)
			snprintf(hostname, sizeof hostname, "%s", v), i++;
		else if (!strcmp(a, "--init"))
			G.init = true;
		else if (!strcmp(a, "--poweroff"))
			poweroff_flag = true;
		else if (!strcmp(a, "--reboot-exit"))
			poweroff_flag = G.reboot_to_exit = true;
		else if (!strcmp(a, "--verbose"))
			G.verbose = true;
		else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "--version")) {
			printf("silo-agent %s (protocol %d)\n", SILO_VERSION, WIRE_VERSION);
			return 0;
		} else {
			fprintf(stderr, "silo-agent: unknown argument '%s'\n", a);
			usage(stderr);
			return 2;
		}
	}
	bool have_channel = fd >= 0 || lfd >= 0 || device[0] || vport >= 0;
	if (G.init)
		mount_basics();
	if (getpid() == 1 && !have_channel) {
		/* In a VM as the kernel's init. */
		G.poweroff = true;
		parse_cmdline(device, sizeof device, hostname, sizeof hostname);
		if (!device[0] && !find_virtio_port(device, sizeof device)) {
			for (int tries = 0; tries < 50 && !device[0]; tries++) {
				usleep(20000);
				find_virtio_port(device, sizeof device);
			}
			if (!device[0])
				vport = 1024;
		}
	}
	if (poweroff_flag)
		G.poweroff = true;
	if (G.oom_fd >= 0) {
		fcntl(G.oom_fd, F_SETFD, FD_CLOEXEC);   /* never leak it into tasks */
	} else if (G.poweroff) {
		G.kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (G.kmsg_fd >= 0)
			lseek(G.kmsg_fd, 0, SEEK_END);
	}
	if (hostname[0] && sethostname(hostname, strlen(hostname)) < 0)
		fprintf(stderr, "silo-agent: sethostname %s: %s\n", hostname, strerror(errno));
	G.in = malloc(WIRE_MAX_FRAME + 4);
	if (!G.in) {
		fprintf(stderr, "silo-agent: out of memory\n");
		if (G.poweroff)
			final_exit(); /* never return from PID 1 in a VM: that panics the kernel */
		return 1;
	}
	mp_buf_init(&G.outq);
	setup_signals();
	if (fd >= 0) {
		G.conn = fd;
		G.exit_on_disconnect = true;
		set_nb(fd);
		fcntl(fd, F_SETFD, FD_CLOEXEC); /* never leak the channel into tasks */
	} else if (lfd >= 0) {
		G.listen_fd = lfd;
		set_nb(lfd);
		fcntl(lfd, F_SETFD, FD_CLOEXEC);
	} else if (device[0]) {
		G.device = device;
		try_open_device();
	} else if (vport >= 0) {
		G.listen_fd = vsock_listen((unsigned)vport);
		if (G.listen_fd < 0) {
			fprintf(stderr, "silo-agent: vsock port %d: %s\n", vport, strerror(errno));
			if (G.poweroff)
				final_exit();
			return 1;
		}
	} else {
		usage(stderr);
		return 2;
	}
	logmsg("ready (pid %d)", (int)getpid());

	for (;;) {
		if (G.shutting_down)
			final_exit();
		/* a watch task takes one slot, an exec task up to 3; networking up to ANET_MAX_FDS */
		struct pollfd pfd[2 + 3 * MAX_TASKS + 1 + ANET_MAX_FDS];
		task *owner[2 + 3 * MAX_TASKS + 1 + ANET_MAX_FDS];
		int which[2 + 3 * MAX_TASKS + 1 + ANET_MAX_FDS];
		int n = 0;
		uint64_t now = now_ns();
		int timeout_ms = -1;
		if (G.device && G.conn < 0 && G.reopen_at_ns && now >= G.reopen_at_ns)
			try_open_device();
		/* Still closed (the host is not connected yet): wake up for the next try,
		 * or a host that reconnects later is never seen. */
		if (G.device && G.conn < 0 && G.reopen_at_ns)
			timeout_ms = G.reopen_at_ns > now ? (int)((G.reopen_at_ns - now) / 1000000ull) + 1 : 0;
		pfd[n] = (struct pollfd){.fd = G.sfd, .events = POLLIN};
		owner[n] = NULL, which[n++] = 0;
		int conn_idx = -1;
		if (G.conn >= 0) {
			conn_idx = n;
			pfd[n] = (struct pollfd){.fd = G.conn, .events = POLLIN};
			owner[n] = NULL, which[n++] = 1;
		} else if (G.listen_fd >= 0) {
			pfd[n] = (struct pollfd){.fd = G.listen_fd, .events = POLLIN};
			owner[n] = NULL, which[n++] = 2;
		}
		bool room = outq_pending() < OUTQ_HIGH || G.conn < 0;
		for (task *t = G.tasks, *nx; t; t = nx) {
			nx = t->next;
			if (t->kind == T_EXEC) {
				if (t->sock && !t->exited && t->out_fd < 0) {
					/* the guest's server closed (or the host hung up): the task ends */
					close_fd(&t->in_fd);
					drop_stdin(t);
					t->exited = true;
					t->status = 0;
				}
				bool may_read = room && (output_unmetered(t) || t->credit > 0);
				if (t->exited && !may_read && (t->out_fd >= 0 || t->err_fd >= 0))
					t->drain_until_ns = now + DRAIN_MS * 1000000ull; /* the drain window runs only while we may read */
				if (t->exited && ((t->out_fd < 0 && t->err_fd < 0) || now >= t->drain_until_ns)) {
					if (G.conn >= 0)
						finish_exec(t);
					else
						task_free(t);
					continue;
				}
				if (!t->exited && t->deadline_ns && now >= t->deadline_ns) {
					kill(-t->pid, SIGKILL);
					t->timed_out = true;
					t->deadline_ns = 0;
				}
				if (t->deadline_ns) {
					int ms = (int)((t->deadline_ns - now) / 1000000ull) + 1;
					if (timeout_ms < 0 || ms < timeout_ms)
						timeout_ms = ms;
				}
				if (t->exited) {
					int ms = (int)((t->drain_until_ns - now) / 1000000ull) + 1;
					if (timeout_ms < 0 || ms < timeout_ms)
						timeout_ms = ms;
				}
				if (may_read && t->out_fd >= 0) {
					pfd[n] = (struct pollfd){.fd = t->out_fd, .events = POLLIN};
					owner[n] = t, which[n++] = 10;
				}
				if (may_read && t->err_fd >= 0) {
					pfd[n] = (struct pollfd){.fd = t->err_fd, .events = POLLIN};
					owner[n] = t, which[n++] = 11;
				}
				if (t->in_fd >= 0 && (t->in_len > t->in_off || t->in_eof)) {
					pfd[n] = (struct pollfd){.fd = t->in_fd, .events = POLLOUT};
					owner[n] = t, which[n++] = 12;
				}
			} else if (t->kind == T_FREAD && room && G.conn >= 0) {
				timeout_ms = 0; /* regular files are always readable */
			} else if (t->kind == T_WATCH && room && G.conn >= 0) {
				/* read events only while they can be sent: the kernel queue takes the
				 * rest and overflows (IN_Q_OVERFLOW -> ovf) instead of our memory */
				pfd[n] = (struct pollfd){.fd = t->ino_fd, .events = POLLIN};
				owner[n] = t, which[n++] = 13;
			}
		}
		int net_at = n;
		int net_n = anet_pollfds(&pfd[n]);
		for (int k = 0; k < net_n; k++)
			owner[n + k] = NULL, which[n + k] = 20;
		n += net_n;
		/* Frames queued while building the set (exits, file chunks) go out now. */
		flush_out();
		if (conn_idx >= 0 && G.conn >= 0 && outq_pending())
			pfd[conn_idx].events |= POLLOUT;
		int r = poll(pfd, (nfds_t)n, timeout_ms);
		if (r < 0 && errno != EINTR) {
			fprintf(stderr, "silo-agent: poll: %s\n", strerror(errno));
			final_exit(); /* kills the tasks; powers off in a VM */
		}
		for (task *t = G.tasks, *nx; t; t = nx) {
			nx = t->next;
			if (t->kind == T_FREAD && G.conn >= 0 && outq_pending() < OUTQ_HIGH)
				pump_fread(t);
		}
		if (r <= 0)
			continue;
		if (net_n)
			anet_handle(&pfd[net_at], net_n, send_dnsq);   /* without a host the queries are dropped */
		for (int i = 0; i < n; i++) {
			if (!pfd[i].revents)
				continue;
			task *t = owner[i];
			switch (which[i]) {
			case 0: {
				struct signalfd_siginfo si;
				while (read(G.sfd, &si, sizeof si) == (ssize_t)sizeof si) {
					if (si.ssi_signo == SIGCHLD)
						reap();
					else
						G.shutting_down = true;
				}
				reap();
				break;
			}
			case 1:
				if (pfd[i].revents & POLLOUT)
					flush_out();
				if (G.conn >= 0 && (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
					read_conn();
				break;
			case 2: {
				int c = accept4(G.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
				if (c >= 0) {
					G.conn = c;
					G.handshaken = false;
					G.in_len = 0;
				}
				break;
			}
			case 10: case 11: {
				/* The task may have been freed by an earlier entry in this round. */
				bool live = false;
				for (task *x = G.tasks; x; x = x->next)
					live |= x == t;
				if (live)
					read_child(t, which[i] == 10 ? &t->out_fd : &t->err_fd, which[i] == 10 ? 1 : 2);
				break;
			}
			case 13: {
				bool live = false;
				for (task *x = G.tasks; x; x = x->next)
					live |= x == t;
				if (live && !pump_watch(t))
					task_free(t);
				break;
			}
			case 12: {
				bool live = false;
				for (task *x = G.tasks; x; x = x->next)
					live |= x == t;
				if (live && t->in_fd >= 0) {
					if (pfd[i].revents & (POLLERR | POLLHUP)) {
						close_fd(&t->in_fd);
						drop_stdin(t);
					} else {
						write_child_stdin(t);
					}
				}
				break;
			}
			default:
				break;
			}
		}
		flush_out();
	}
}
