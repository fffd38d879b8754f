/* SPDX-License-Identifier: Apache-2.0 */
#include "common/util.h"
#include "silo-config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void cleanup_freep(void *p)
{
	void **pp = (void **)p;
	free(*pp);
}

void cleanup_closep(int *fd)
{
	if (*fd >= 0) {
		int e = errno;
		close(*fd);
		errno = e;
	}
}

void cleanup_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

void cleanup_strvp(char ***v)
{
	strv_free(*v);
}

/* libsilo's answer to running out of memory (xalloc.c): nothing sensible can continue. */
void silo_out_of_memory(void)
{
	static const char msg[] = "silo: out of memory\n";
	(void)!write(2, msg, sizeof msg - 1);
	abort();
}

void strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

size_t strv_len(char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

void strv_push(char ***v, char *s)
{
	size_t n = *v ? strv_len(*v) : 0;
	*v = xrealloc(*v, (n + 2) * sizeof **v);
	(*v)[n] = s;
	(*v)[n + 1] = NULL;
}

char **strv_dup(char *const *v)
{
	size_t n = strv_len(v);
	char **r = xcalloc(n + 1, sizeof *r);
	for (size_t i = 0; i < n; i++)
		r[i] = xstrdup(v[i]);
	return r;
}

int read_chunks(int fd, const char *path, size_t chunk,
		int (*fn)(void *ud, const void *buf, size_t n, silo_error *err), void *ud, silo_error *err)
{
	cleanup_free char *buf = xmalloc(chunk);
	for (;;) {
		ssize_t r = read(fd, buf, chunk);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "read %s", path);
		if (r == 0)
			return 0;
		if (fn(ud, buf, (size_t)r, err) < 0)
			return -1;
	}
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int send_all_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
	if (nfds < 0 || nfds > 8)
		return errno = EINVAL, -1;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int) * 8)];
	} cm;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfds) {
		memset(&cm, 0, sizeof cm);
		mh.msg_control = cm.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
	}
	ssize_t n;
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	return (size_t)n < len ? write_all(sock, (const char *)buf + n, len - (size_t)n) : 0;
}

int read_exact(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			return 1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int read_file(const char *path, size_t max, char **out, size_t *len, silo_error *err)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "open %s", path);
	size_t cap = 4096, n = 0;
	cleanup_free char *buf = xmalloc(cap + 1);
	for (;;) {
		if (n == cap) {
			if (cap >= max)
				return silo_fail(err, SILO_ERR_IO_ERROR, EFBIG, "read %s (limit %zu bytes)", path, max);
			cap = MIN(cap * 2, max);
			buf = xrealloc(buf, cap + 1);
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return silo_fail(err, SILO_ERR_IO_ERROR, errno, "read %s", path);
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	if (len)
		*len = n;
	*out = steal_pointer(&buf);
	return 0;
}

int write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode, silo_error *err)
{
	/* a temporary name of its own per call: two threads writing the same path at once
	 * must not write into one temporary file (one would rename the other's half) */
	static unsigned long seq;
	cleanup_free char *tmp =
		xasprintf("%s.tmp.%d.%lu", path, (int)getpid(), __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return silo_fail(err, SILO_ERR_IO_ERROR, errno, "create %s", tmp);
	if (write_all(fd, buf, len) < 0 || fsync(fd) < 0) {
		int e = errno;
		close(fd);
		unlink(tmp);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "write %s", tmp);
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return silo_fail(err, SILO_ERR_IO_ERROR, e, "rename %s", path);
	}
	return 0;
}

int set_cloexec(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFD);
	if (fl < 0)
		return -1;
	return fcntl(fd, F_SETFD, on ? (fl | FD_CLOEXEC) : (fl & ~FD_CLOEXEC));
}

int set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -1;
	return fcntl(fd, F_SETFL, on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK));
}

int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

static int rm_rf_at(int dirfd, const char *name, dev_t dev)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -1 : 0;
	if (st.st_dev != dev) {
		errno = EBUSY; /* a mount point: never recurse into it */
		return -1;
	}
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -1;
	}
	int ret = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (rm_rf_at(fd, de->d_name, dev) < 0)
			ret = -1;
	}
	closedir(d);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		ret = -1;
	return ret;
}

int rm_rf(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	return rm_rf_at(AT_FDCWD, path, st.st_dev);
}

int rm_rf_below(int dirfd, const char *name)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -1;
	return rm_rf_at(dirfd, name, st.st_dev);
}

bool path_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

bool path_is_safe_relative(const char *p)
{
	if (!p || !*p || *p == '/')
		return false;
	const char *s = p;
	while (*s) {
		const char *e = strchr(s, '/');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		if (n == 2 && s[0] == '.' && s[1] == '.')
			return false;
		if (!e)
			break;
		s = e + 1;
	}
	return true;
}

static const char *home_dir(void)
{
	const char *h = getenv("HOME");
	if (h && *h)
		return h;
	struct passwd *pw = getpwuid(getuid());
	return pw ? pw->pw_dir : "/tmp";
}

/* A silo directory: $var if set and not empty, else as_root for root (when
 * given), else NULL: the caller's per-user default. */
static const char *dir_override(const char *var, const char *as_root)
{
	const char *e = getenv(var);
	if (e && *e)
		return e;
	return as_root && geteuid() == 0 ? as_root : NULL;
}

const char *silo_runtime_dir(void)
{
	static char buf[PATH_MAX];
	const char *d = dir_override("SILO_RUNTIME_DIR", "/run/silo");
	if (d)
		return d;
	const char *x = getenv("XDG_RUNTIME_DIR");
	snprintf(buf, sizeof buf, "%s/silo", x && *x ? x : "/tmp");
	return buf;
}

const char *silo_state_dir(void)
{
	static char buf[PATH_MAX];
	const char *d = dir_override("SILO_STATE_DIR", "/var/lib/silo");
	if (d)
		return d;
	snprintf(buf, sizeof buf, "%s/.local/share/silo", home_dir());
	return buf;
}

const char *silo_cache_dir(void)
{
	static char buf[PATH_MAX];
	const char *d = dir_override("SILO_CACHE_DIR", NULL);
	if (d)
		return d;
	snprintf(buf, sizeof buf, "%s/.cache/silo", home_dir());
	return buf;
}

void cond_init_monotonic(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
}

int cond_wait_deadline(pthread_cond_t *cv, pthread_mutex_t *lock, uint64_t deadline_ns)
{
	if (!deadline_ns)
		return pthread_cond_wait(cv, lock);
	struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000ull),
			      .tv_nsec = (long)(deadline_ns % 1000000000ull)};
	return pthread_cond_timedwait(cv, lock, &ts);
}

int cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *lock, uint64_t ms)
{
	return cond_wait_deadline(cv, lock, now_mono_ns() + ms * 1000000ull);
}

void signal_stop(pthread_mutex_t *lock, pthread_cond_t *cv, bool *flag)
{
	pthread_mutex_lock(lock);
	__atomic_store_n(flag, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(cv);
	pthread_mutex_unlock(lock);
}

uint64_t mono_deadline(int timeout_ms)
{
	return timeout_ms >= 0 ? now_mono_ns() + (uint64_t)timeout_ms * 1000000ull : 0;
}

uint64_t now_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t now_realtime_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

const char *format_time_ms(uint64_t epoch_ms, char *buf, size_t len)
{
	time_t t = (time_t)(epoch_ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	char tmp[32];
	strftime(tmp, sizeof tmp, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03uZ", tmp, (unsigned)(epoch_ms % 1000));
	return buf;
}

void random_bytes(void *buf, size_t len)
{
	char *p = buf;
	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			abort();
		}
		p += n;
		len -= (size_t)n;
	}
}

void random_id(const char *prefix, char *buf, size_t len)
{
	unsigned char r[6];
	random_bytes(r, sizeof r);
	snprintf(buf, len, "%s%02x%02x%02x%02x%02x%02x", prefix ? prefix : "sb-", r[0], r[1], r[2], r[3],
		 r[4], r[5]);
}

static int log_threshold = -1;

void silo_log(enum log_level lvl, const char *fmt, ...)
{
	if (log_threshold < 0) {
		const char *e = getenv("SILO_LOG");
		log_threshold = LOG_WARN;
		if (e) {
			if (!strcmp(e, "debug"))
				log_threshold = LOG_DEBUG;
			else if (!strcmp(e, "info"))
				log_threshold = LOG_INFO;
			else if (!strcmp(e, "error"))
				log_threshold = LOG_ERROR;
		}
	}
	if ((int)lvl < log_threshold)
		return;
	static const char *const names[] = {"debug", "info", "warn", "error"};
	char ts[40];
	format_time_ms(now_realtime_ms(), ts, sizeof ts);
	va_list ap;
	va_start(ap, fmt);
	char msg[2048];
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s silo[%d] %s: %s\n", ts, (int)getpid(), names[lvl], msg);
}

int find_helper_binary(const char *name, char *out, size_t len, silo_error *err)
{
	static const char *const subdirs[] = {"agent", "vmm", "net", "daemon", "cli"};
	const char *e = getenv("SILO_LIBEXEC_DIR");
	if (e && *e) {
		snprintf(out, len, "%s/%s", e, name);
		if (access(out, X_OK) == 0)
			return 0;
	}
	const char *roots[] = {getenv("SILO_BUILD_ROOT"), SILO_BUILD_ROOT};
	for (size_t r = 0; r < ARRAY_SIZE(roots); r++) {
		if (!roots[r] || !*roots[r])
			continue;
		for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++) {
			snprintf(out, len, "%s/%s/%s", roots[r], subdirs[i], name);
			if (access(out, X_OK) == 0)
				return 0;
		}
	}
	snprintf(out, len, "%s/%s", SILO_LIBEXECDIR, name);
	if (access(out, X_OK) == 0)
		return 0;
	return silo_fail(err, SILO_ERR_PROVIDER_UNAVAILABLE, ENOENT,
			 "helper binary %s not found (set SILO_LIBEXEC_DIR or build the tree)", name);
}

bool all_digits(const char *s, size_t n, size_t max)
{
	if (!n || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

size_t utf8_seq_len(const unsigned char *s, size_t left, uint32_t *cp_out)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t cp;
	if (c < 0x80) {
		*cp_out = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (left < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*cp_out = cp;
	return n;
}

long utf8_invalid_at(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t len = strlen(str);
	uint32_t cp;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq_len(s + i, len - i, &cp);
		if (!n)
			return (long)i;
		i += n;
	}
	return -1;
}
