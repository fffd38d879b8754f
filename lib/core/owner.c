/* SPDX-License-Identifier: Apache-2.0
 * Ownership records, the watchdog and the orphan sweep (rules in owner.h).
 *
 * Consistency across kill -9: the record is published complete and locked
 * (rec_publish) before the run directory exists and unlinked only after the run directory
 * is gone, so any run directory of ours has a record naming its owner. The
 * record is rewritten in place (pwrite + ftruncate) under its lock; readers
 * read it only while holding that lock. The watchdog is forked before the
 * provider starts anything (the owner is single-threaded then in `silo run`;
 * it uses only its inherited copy of the sandbox handle and the record), so an
 * owner killed in the middle of a spawn still has its sandbox torn down.
 */
#include "core/owner.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "core/cleanup.h"

#define OWNER_MAGIC "silo-owner 1"
#define UNPARSED_GRACE_S 60   /* a record being written is never older than this */

enum { WD_DONE = 1, WD_DEADLINE = 2 };
typedef struct wd_msg {
	uint32_t type;
	uint32_t pad;
	uint64_t value;   /* WD_DEADLINE: ms from now, 0 = none */
} wd_msg;

struct owner_state {
	int fd;           /* the record, locked (LOCK_EX) for the sandbox's life */
	int wd_sock;      /* our end of the socket pair to the watchdog, -1 if none */
	pid_t wd_pid;
	owner_rec rec;
	char path[PATH_MAX + SILO_ID_MAX + 2];
};

/* ---------------------------------------------------------------- records */

static const char *kind_name(sb_owner k)
{
	return k == SB_OWNER_PROCESS ? "run" : k == SB_OWNER_DAEMON ? "silod" : "none";
}

int owner_format(const owner_rec *r, char *buf, size_t len)
{
	int n = snprintf(buf, len, OWNER_MAGIC "\nkind %s\nowner %d %llu\n", kind_name(r->kind), (int)r->owner_pid,
			 r->owner_start);
	if (r->wd_pid > 0)
		n += snprintf(buf + n, len - (size_t)n, "watchdog %d %llu\n", (int)r->wd_pid, r->wd_start);
	if (r->sb_pid > 0)
		n += snprintf(buf + n, len - (size_t)n, "sandbox %d %llu\n", (int)r->sb_pid, r->sb_start);
	if (r->provider[0])
		n += snprintf(buf + n, len - (size_t)n, "provider %s\n", r->provider);
	if (r->state_dir[0])
		n += snprintf(buf + n, len - (size_t)n, "state %s\n", r->state_dir);
	if (r->client_pid > 0)
		n += snprintf(buf + n, len - (size_t)n, "client %d %llu\n", (int)r->client_pid, r->client_start);
	return n < 0 || (size_t)n >= len ? -1 : n;
}

static int parse_pid(const char *v, pid_t *pid, unsigned long long *start)
{
	char *end;
	errno = 0;
	long p = strtol(v, &end, 10);
	if (errno || end == v || *end != ' ' || p <= 0 || p > 4194304)
		return -1;
	const char *s = end + 1;
	if (!isdigit((unsigned char)*s))
		return -1;
	unsigned long long st = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*pid = (pid_t)p;
	*start = st;
	return 0;
}

int owner_parse(const char *txt, size_t len, owner_rec *out, silo_error *err)
{
	memset(out, 0, sizeof *out);
	if (len > OWNER_REC_MAX)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "owner record: %zu bytes, at most %d", len,
				 OWNER_REC_MAX);
	if (memchr(txt, '\0', len))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "owner record: NUL byte");
	char buf[OWNER_REC_MAX + 1];
	memcpy(buf, txt, len);
	buf[len] = '\0';
	int line = 0;
	bool have_kind = false, have_owner = false;
	char *save = NULL;
	for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		line++;
		if (line == 1) {
			if (strcmp(l, OWNER_MAGIC) != 0)
				return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
						 "owner record: line 1: expected \"" OWNER_MAGIC "\"");
			continue;
		}
		char *sp = strchr(l, ' ');
		if (!sp || sp == l || !sp[1])
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "owner record: line %d: expected \"KEY VALUE\"",
					 line);
		*sp = '\0';
		const char *k = l, *v = sp + 1;
		int bad = 0;
		if (!strcmp(k, "kind")) {
			out->kind = !strcmp(v, "run") ? SB_OWNER_PROCESS : !strcmp(v, "silod") ? SB_OWNER_DAEMON : SB_OWNER_NONE;
			bad = out->kind == SB_OWNER_NONE;
			have_kind = true;
		} else if (!strcmp(k, "owner")) {
			bad = parse_pid(v, &out->owner_pid, &out->owner_start);
			have_owner = true;
		} else if (!strcmp(k, "watchdog")) {
			bad = parse_pid(v, &out->wd_pid, &out->wd_start);
		} else if (!strcmp(k, "sandbox")) {
			bad = parse_pid(v, &out->sb_pid, &out->sb_start);
		} else if (!strcmp(k, "client")) {
			bad = parse_pid(v, &out->client_pid, &out->client_start);
		} else if (!strcmp(k, "provider")) {
			bad = strlen(v) >= sizeof out->provider;
			for (const char *p = v; !bad && *p; p++)
				bad = !islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '-' && *p != '_';
			if (!bad)
				snprintf(out->provider, sizeof out->provider, "%s", v);
		} else if (!strcmp(k, "state")) {
			bad = v[0] != '/' || strlen(v) >= sizeof out->state_dir;
			if (!bad)
				snprintf(out->state_dir, sizeof out->state_dir, "%s", v);
		} else {
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "owner record: line %d: unknown key \"%.40s\"",
					 line, k);
		}
		if (bad)
			return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "owner record: line %d: bad %s \"%.80s\"", line,
					 k, v);
	}
	if (line == 0)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "owner record: empty");
	if (!have_kind || !have_owner)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "owner record: missing %s",
				 !have_kind ? "kind" : "owner");
	if (out->kind == SB_OWNER_DAEMON && !out->state_dir[0])
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "owner record: kind silod without state");
	return 0;
}

static int rec_write(int fd, const owner_rec *r)
{
	char buf[OWNER_REC_MAX];
	int n = owner_format(r, buf, sizeof buf);
	if (n < 0)
		return -1;
	if (pwrite(fd, buf, (size_t)n, 0) != n || ftruncate(fd, n) < 0)
		return -1;
	return 0;
}

static int rec_read(int fd, owner_rec *r, silo_error *err)
{
	char buf[OWNER_REC_MAX + 1];
	ssize_t n = pread(fd, buf, sizeof buf, 0);
	if (n < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "owner record");
	return owner_parse(buf, (size_t)n, r, err);
}

/* Create the record at path with r's content, locked, in one step: written
 * into an unnamed file (O_TMPFILE) and linked in only when complete, so a
 * record is never seen empty or half-written, even if we die right here.
 * Returns the locked fd; -1 with errno (EEXIST: the id is taken). Without
 * O_TMPFILE: O_EXCL, lock, write (an empty record of a writer that died in
 * between is left alone by sweeps for UNPARSED_GRACE_S). */
static int rec_publish(const char *dir, const char *path, const owner_rec *r)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	bool tmp = fd >= 0;
	if (!tmp)
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -1;
	/* blocks at most while a sweeper that opened a new file looks at it */
	while (flock(fd, LOCK_EX) < 0 && errno == EINTR)
		;
	if (rec_write(fd, r) < 0)
		goto fail;
	if (tmp) {
		char self[64];
		snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
		if (linkat(AT_FDCWD, self, AT_FDCWD, path, AT_SYMLINK_FOLLOW) < 0)
			goto fail;
	}
	return fd;
fail:;
	int e = errno;
	if (!tmp)
		unlink(path);
	close(fd);
	errno = e;
	return -1;
}

static void rec_dir(char *buf, size_t len)
{
	snprintf(buf, len, "%s/owners", silo_runtime_dir());
}

static bool id_ok(const char *id)
{
	size_t n = strlen(id);
	if (!n || n >= SILO_ID_MAX)
		return false;
	for (const char *p = id; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			return false;
	return true;
}

/* ---------------------------------------------------------------- /proc */

bool owner_proc_start(pid_t pid, unsigned long long *start)
{
	if (pid <= 0)
		return false;
	char p[64], buf[1024];
	snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	char *r = strrchr(buf, ')');
	if (!r || r[1] != ' ' || r[2] == 'Z' || r[2] == 'X')
		return false;
	char *s = r + 2;
	for (int field = 3; *s && field < 22; s++)
		if (*s == ' ')
			field++;
	*start = strtoull(s, NULL, 10);
	return true;
}

bool owner_proc_alive(pid_t pid, unsigned long long start)
{
	unsigned long long s;
	return owner_proc_start(pid, &s) && (!start || s == start);
}

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* SIGKILL exactly the process pid started at start (never a reused pid) and
 * wait up to ms for it to be gone. */
static void kill_exact(pid_t pid, unsigned long long start, int ms)
{
	int pfd = pidfd_open_(pid);
	if (!owner_proc_alive(pid, start)) {   /* checked after the pidfd pins the process */
		if (pfd >= 0)
			close(pfd);
		return;
	}
	if (pfd >= 0) {
		if (syscall(SYS_pidfd_send_signal, pfd, SIGKILL, NULL, 0) == 0) {
			struct pollfd p = {.fd = pfd, .events = POLLIN};
			while (poll(&p, 1, ms) < 0 && errno == EINTR)
				;
		}
		close(pfd);
		return;
	}
	kill(pid, SIGKILL);
	uint64_t end = now_mono_ns() + (uint64_t)ms * 1000000ull;
	while (owner_proc_alive(pid, start) && now_mono_ns() < end) {
		struct timespec ts = {0, 5 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

/* ---------------------------------------------------------------- reaping */

void owner_reap(const char *id, const owner_rec *r, cleanup_report *rep)
{
	memset(rep, 0, sizeof *rep);
	char rundir[PATH_MAX];
	snprintf(rundir, sizeof rundir, "%s/sandboxes/%s", silo_runtime_dir(), id);
	if (r && r->sb_pid > 0 && r->sb_start)
		kill_exact(r->sb_pid, r->sb_start, OWNER_TEARDOWN_MS);
	/* the provider's own leftovers (namespace: its init by RUNDIR/pid, cgroups;
	 * VMs: socket and log files), then everything tied to the id */
	if (r && r->provider[0])
		sandbox_terminate_orphan(id, r->provider);
	char **left = NULL;
	cleanup_release(id, rundir, OWNER_TEARDOWN_MS, &left);
	rep->terminated = !(r && r->sb_pid > 0 && owner_proc_alive(r->sb_pid, r->sb_start));
	if (!rep->terminated)
		cleanup_add(&left, "supervising process survived SIGKILL");
	rep->host_clean = left == NULL;
	rep->residual_paths = left;
}

void owner_reap_id(const char *id, const char *provider, cleanup_report *rep)
{
	owner_rec r = {0};
	char path[PATH_MAX + SILO_ID_MAX + 2], dir[PATH_MAX];
	rec_dir(dir, sizeof dir);
	snprintf(path, sizeof path, "%s/%s", dir, id);
	int fd = id_ok(id) ? open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK) : -1;
	silo_error err = {0};
	bool have = fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 && rec_read(fd, &r, &err) == 0;
	if (!have) {
		memset(&r, 0, sizeof r);
		snprintf(r.provider, sizeof r.provider, "%s", provider ? provider : "");
	}
	owner_reap(id, &r, rep);
	/* also a record that does not parse: the caller's registry says the id is its own */
	if (fd >= 0 && rep->host_clean)
		unlink(path);
	if (fd >= 0)
		close(fd);
}

/* ---------------------------------------------------------------- watchdog */

/* The watchdog: reap sb when its owner dies without saying "done" or the
 * deadline passes. lockfd is the record (the lock is shared with the owner). */
__attribute__((noreturn)) static void watchdog_main(sandbox *sb, int lockfd, int rd, int ownfd, pid_t owner)
{
	setsid();
	prctl(PR_SET_NAME, "silo-watchdog", 0, 0, 0);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	static const int dfl[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM};
	for (size_t i = 0; i < ARRAY_SIZE(dfl); i++)
		signal(dfl[i], SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	/* keep stderr for warnings; everything else of the owner's is closed */
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul >= 0) {
		dup2(nul, 0);
		dup2(nul, 1);
	}
	/* the three we keep go to 3, 4, 5 (via fds above any of them), the rest is
	 * closed whatever the descriptor limit */
	int keep[3] = {lockfd, rd, ownfd};
	for (int i = 0; i < 3; i++)
		if (keep[i] >= 0)
			keep[i] = fcntl(keep[i], F_DUPFD_CLOEXEC, 64);
	for (int i = 0; i < 3; i++)
		if (keep[i] >= 0 && (dup3(keep[i], 3 + i, O_CLOEXEC) < 0 || close(keep[i]) < 0))
			_exit(1);
	lockfd = keep[0] >= 0 ? 3 : -1;
	rd = keep[1] >= 0 ? 4 : -1;
	ownfd = keep[2] >= 0 ? 5 : -1;
	if (syscall(SYS_close_range, 6, ~0U, 0) < 0) {
		long max = sysconf(_SC_OPEN_MAX);
		for (int fd = 6; fd < (max > 0 && max < 1 << 20 ? max : 1 << 16); fd++)
			close(fd);
	}
	uint64_t deadline = 0;
	const char *why = "its owner exited";
	for (;;) {
		struct pollfd p[2] = {{.fd = rd, .events = POLLIN}, {.fd = ownfd, .events = POLLIN}};
		int timeout = ownfd < 0 ? 200 : -1;
		if (deadline) {
			uint64_t now = now_mono_ns();
			int left = now >= deadline ? 0 : (int)((deadline - now) / 1000000ull) + 1;
			if (timeout < 0 || left < timeout)
				timeout = left;
		}
		int n = poll(p, ownfd < 0 ? 1 : 2, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n > 0 && (p[0].revents & (POLLIN | POLLHUP))) {
			wd_msg m;
			ssize_t r = read(rd, &m, sizeof m);
			if (r < 0 && errno == EINTR)
				continue;
			if (r == (ssize_t)sizeof m && m.type == WD_DONE)
				_exit(0);
			if (r == (ssize_t)sizeof m && m.type == WD_DEADLINE) {
				deadline = m.value ? now_mono_ns() + m.value * 1000000ull : 0;
				continue;
			}
			break;   /* EOF (or garbage): the owner is gone */
		}
		if (n > 0 && ownfd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
			break;
		if (ownfd < 0 && getppid() != owner)
			break;
		if (deadline && now_mono_ns() >= deadline) {
			why = "its deadline passed (the owner is stuck)";
			break;
		}
	}
	owner_rec rec;
	silo_error err = {0};
	if (rec_read(lockfd, &rec, &err) < 0) {
		/* unreadable: the handle still knows the provider */
		memset(&rec, 0, sizeof rec);
		rec.kind = SB_OWNER_PROCESS;
		snprintf(rec.provider, sizeof rec.provider, "%s", sb->ops->name);
	}
	cleanup_report rep;
	owner_reap(sb->id, &rec, &rep);
	if (rep.host_clean) {
		char p[PATH_MAX];
		rec_dir(p, sizeof p);
		size_t l = strlen(p);
		snprintf(p + l, sizeof p - l, "/%s", sb->id);
		unlink(p);
		log_info("watchdog: sandbox %s torn down: %s", sb->id, why);
	} else {
		log_warn("watchdog: sandbox %s torn down (%s) but left: %s", sb->id, why,
			 rep.residual_paths && rep.residual_paths[0] ? rep.residual_paths[0] : "?");
	}
	_exit(rep.host_clean ? 0 : 1);
}

static pid_t watchdog_start(sandbox *sb, int lockfd, int *wr, silo_error *err)
{
	pid_t me = getpid();
	int ownfd = pidfd_open_(me);   /* -1 on kernels without pidfds: poll getppid() */
	if (ownfd >= 0)
		set_cloexec(ownfd, true);
	int p[2];
	/* a socket pair, not a pipe: send() with MSG_NOSIGNAL never raises SIGPIPE
	 * in the owner when the watchdog is already gone (it left at a deadline) */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0) {
		if (ownfd >= 0)
			close(ownfd);
		return silo_fail_vm(err, SILO_ERR_IO_ERROR, errno, sb->id, "watchdog: socketpair");
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		if (ownfd >= 0)
			close(ownfd);
		return silo_fail_vm(err, SILO_ERR_RESOURCE_EXCEEDED, e, sb->id, "watchdog: fork");
	}
	if (pid == 0) {
		close(p[1]);
		watchdog_main(sb, lockfd, p[0], ownfd, me);
	}
	close(p[0]);
	if (ownfd >= 0)
		close(ownfd);
	*wr = p[1];
	return pid;
}

/* Watchdogs told "done" but not yet reaped: the owner does not wait for them
 * (that costs a scheduling round of the watchdog on every destroy, ~15 ms on
 * a loaded host); they are reaped without blocking at the next begin/end. */
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t done_wd[64];
static size_t ndone;

static void reap_done(void)
{
	pthread_mutex_lock(&done_lock);
	for (size_t i = 0; i < ndone;) {
		if (waitpid(done_wd[i], NULL, WNOHANG) != 0)
			done_wd[i] = done_wd[--ndone];
		else
			i++;
	}
	pthread_mutex_unlock(&done_lock);
}

static void reap_later(pid_t wd)
{
	pthread_mutex_lock(&done_lock);
	bool room = ndone < ARRAY_SIZE(done_wd);
	if (room)
		done_wd[ndone++] = wd;
	pthread_mutex_unlock(&done_lock);
	if (!room)
		while (waitpid(wd, NULL, 0) < 0 && errno == EINTR)
			;
	reap_done();
}

static void wd_send(struct owner_state *o, uint32_t type, uint64_t value)
{
	if (o->wd_sock < 0)
		return;
	wd_msg m = {.type = type, .value = value};
	ssize_t n;
	while ((n = send(o->wd_sock, &m, sizeof m, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof m && errno != EPIPE)   /* EPIPE: it already left */
		log_warn("watchdog: %s", strerror(errno));
}

/* ---------------------------------------------------------------- the owner */

int owner_begin(sandbox *sb, sb_owner kind, const char *state_dir, pid_t client, silo_error *err)
{
	if (kind == SB_OWNER_NONE)
		return 0;
	if (kind == SB_OWNER_DAEMON && (!state_dir || state_dir[0] != '/'))
		return silo_fail_vm(err, SILO_ERR_INTERNAL, 0, sb->id, "owner: a silod owner needs its state dir");
	reap_done();
	struct owner_state *o = xcalloc(1, sizeof *o);
	o->fd = o->wd_sock = -1;
	char dir[PATH_MAX];
	rec_dir(dir, sizeof dir);
	if (mkdir_p(dir, 0700) < 0) {
		silo_fail_vm(err, SILO_ERR_IO_ERROR, errno, sb->id, "owner: mkdir %s", dir);
		goto fail;
	}
	snprintf(o->path, sizeof o->path, "%s/%s", dir, sb->id);
	o->rec.kind = kind;
	o->rec.owner_pid = getpid();
	owner_proc_start(o->rec.owner_pid, &o->rec.owner_start);
	snprintf(o->rec.provider, sizeof o->rec.provider, "%s", sb->ops ? sb->ops->name : "");
	if (kind == SB_OWNER_DAEMON)
		snprintf(o->rec.state_dir, sizeof o->rec.state_dir, "%s", state_dir);
	if (client > 0 && owner_proc_start(client, &o->rec.client_start))
		o->rec.client_pid = client;
	o->fd = rec_publish(dir, o->path, &o->rec);
	if (o->fd < 0) {
		silo_fail_vm(err, errno == EEXIST ? SILO_ERR_CONFLICT : SILO_ERR_IO_ERROR, errno, sb->id,
			     "owner record %s", o->path);
		goto fail;
	}
	if (kind == SB_OWNER_PROCESS) {
		o->wd_pid = watchdog_start(sb, o->fd, &o->wd_sock, err);
		if (o->wd_pid < 0) {
			o->wd_pid = 0;
			goto fail_unlink;
		}
		o->rec.wd_pid = o->wd_pid;
		if (!owner_proc_start(o->wd_pid, &o->rec.wd_start))
			o->rec.wd_start = 0;
		if (rec_write(o->fd, &o->rec) < 0) {
			silo_fail_vm(err, SILO_ERR_IO_ERROR, errno, sb->id, "owner record %s", o->path);
			goto fail_unlink;
		}
	}
	sb->own = o;
	return 0;
fail_unlink:
	unlink(o->path);
	if (o->wd_pid > 0) {
		wd_send(o, WD_DONE, 0);
		close(o->wd_sock);
		waitpid(o->wd_pid, NULL, 0);
	}
fail:
	if (o->fd >= 0)
		close(o->fd);
	free(o);
	return -1;
}

void owner_note_spawn(sandbox *sb)
{
	struct owner_state *o = sb->own;
	if (!o || sb->pid <= 0)
		return;
	o->rec.sb_pid = sb->pid;
	if (!owner_proc_start(sb->pid, &o->rec.sb_start))
		o->rec.sb_start = 0;
	if (rec_write(o->fd, &o->rec) < 0)
		log_warn("%s: owner record: %s", sb->id, strerror(errno));
}

void owner_set_deadline(sandbox *sb, uint64_t ms)
{
	if (sb->own)
		wd_send(sb->own, WD_DEADLINE, ms);
}

void owner_end(sandbox *sb, bool host_clean)
{
	struct owner_state *o = sb->own;
	if (!o)
		return;
	sb->own = NULL;
	/* unlinked while still locked, so no sweeper can claim it in between */
	if (host_clean)
		unlink(o->path);
	if (o->wd_pid > 0) {
		wd_send(o, WD_DONE, 0);   /* it exits on reading this, even if we exit first */
		close(o->wd_sock);
		reap_later(o->wd_pid);
	}
	close(o->fd);
	free(o);
}

void owner_adopt(sandbox *sb, const char *state_dir)
{
	if (sb->own || !state_dir)
		return;
	struct owner_state *o = xcalloc(1, sizeof *o);
	o->wd_sock = -1;
	char dir[PATH_MAX];
	rec_dir(dir, sizeof dir);
	mkdir_p(dir, 0700);
	snprintf(o->path, sizeof o->path, "%s/%s", dir, sb->id);
	o->rec.kind = SB_OWNER_DAEMON;
	o->rec.owner_pid = getpid();
	owner_proc_start(o->rec.owner_pid, &o->rec.owner_start);
	snprintf(o->rec.provider, sizeof o->rec.provider, "%s", sb->ops ? sb->ops->name : "");
	snprintf(o->rec.state_dir, sizeof o->rec.state_dir, "%s", state_dir);
	o->fd = open(o->path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (o->fd >= 0 && flock(o->fd, LOCK_EX | LOCK_NB) == 0) {
		owner_rec old;
		silo_error err = {0};
		if (rec_read(o->fd, &old, &err) == 0 && old.client_pid > 0) {   /* keep the binding */
			o->rec.client_pid = old.client_pid;
			o->rec.client_start = old.client_start;
		}
	} else if (o->fd < 0 && errno == ENOENT) {   /* a sandbox from before records */
		o->fd = rec_publish(dir, o->path, &o->rec);
	} else {
		close(o->fd);
		o->fd = -1;
	}
	if (o->fd < 0) {
		log_warn("%s: owner record %s: %s", sb->id, o->path, strerror(errno));
		free(o);
		return;
	}
	sb->own = o;
	owner_note_spawn(sb);   /* writes the record */
}

pid_t owner_client(const sandbox *sb, unsigned long long *start)
{
	if (!sb->own || sb->own->rec.client_pid <= 0)
		return 0;
	*start = sb->own->rec.client_start;
	return sb->own->rec.client_pid;
}

/* ---------------------------------------------------------------- sweep */

/* May this caller tear down the sandbox of record r (lock already held)? */
static bool is_orphan(const owner_sweep_opts *o, const char *id, const owner_rec *r)
{
	if (r->kind == SB_OWNER_PROCESS)
		return !owner_proc_alive(r->owner_pid, r->owner_start) &&
		       !(r->wd_pid > 0 && owner_proc_alive(r->wd_pid, r->wd_start));
	/* kind silod: only the silod of that state dir, for what it did not reattach */
	return o->state_dir && !strcmp(r->state_dir, o->state_dir) && !(o->is_live && o->is_live(o->ud, id));
}

void owner_sweep(const owner_sweep_opts *o, owner_sweep_stats *st)
{
	static const owner_sweep_opts none = {0};
	owner_sweep_stats local = {0};
	if (!o)
		o = &none;
	if (!st)
		st = &local;
	memset(st, 0, sizeof *st);
	char dir[PATH_MAX];
	rec_dir(dir, sizeof dir);
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *id = de->d_name;
		if (id[0] == '.' || !id_ok(id))
			continue;
		char path[PATH_MAX + SILO_ID_MAX + 2];
		snprintf(path, sizeof path, "%s/%s", dir, id);
		int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		if (fd < 0)
			continue;
		st->seen++;
		struct stat sbuf;
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			st->live++;   /* its owner (or watchdog, or another sweeper) holds it */
			close(fd);
			continue;
		}
		if (fstat(fd, &sbuf) < 0 || !S_ISREG(sbuf.st_mode) || sbuf.st_nlink == 0) {
			close(fd);   /* unlinked by its owner meanwhile: gone, not ours */
			continue;
		}
		owner_rec r;
		silo_error err = {0};
		bool parsed = rec_read(fd, &r, &err) == 0;
		if (!parsed && time(NULL) - sbuf.st_mtime < UNPARSED_GRACE_S) {
			st->live++;   /* created a moment ago, not yet written */
			close(fd);
			continue;
		}
		if (parsed && !is_orphan(o, id, &r)) {
			if (r.kind == SB_OWNER_PROCESS || (o->state_dir && !strcmp(r.state_dir, o->state_dir)))
				st->live++;
			close(fd);
			continue;
		}
		if (!parsed)
			log_warn("sweep %s: %s; tearing down what is named after it", id, err.message);
		cleanup_report rep;
		owner_reap(id, parsed ? &r : NULL, &rep);
		st->reaped++;
		if (rep.host_clean)
			unlink(path);
		else
			st->dirty++;
		log_info("sweep: orphaned sandbox %s (%s, owner %d) torn down%s%s", id, parsed ? kind_name(r.kind) : "?",
			 parsed ? (int)r.owner_pid : 0, rep.host_clean ? "" : "; left: ",
			 rep.host_clean ? "" : rep.residual_paths[0]);
		if (o->on_reaped)
			o->on_reaped(o->ud, id, parsed ? &r : NULL, &rep);
		cleanup_report_free(&rep);
		close(fd);
	}
	closedir(d);
}
