/* SPDX-License-Identifier: Apache-2.0
 * Small shared helpers: cleanup attributes, checked allocation, I/O loops,
 * paths and clocks. Anything here is used by more than one area.
 */
#ifndef SILO_COMMON_UTIL_H
#define SILO_COMMON_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "common/error.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define UNUSED __attribute__((unused))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* ---- cleanup attributes (bubblewrap/crun style) ---- */
void cleanup_freep(void *p);
void cleanup_closep(int *fd);
void cleanup_fclosep(FILE **f);
void cleanup_strvp(char ***v);
#define cleanup_free __attribute__((cleanup(cleanup_freep)))
#define cleanup_close __attribute__((cleanup(cleanup_closep)))
#define cleanup_fclose __attribute__((cleanup(cleanup_fclosep)))
#define cleanup_strv __attribute__((cleanup(cleanup_strvp)))

/* Hand ownership out of a cleanup variable. */
static inline void *steal_pointer_(void *pp)
{
	void **p = (void **)pp;
	void *r = *p;
	*p = NULL;
	return r;
}
#define steal_pointer(pp) steal_pointer_(pp)
static inline int steal_fd(int *fd)
{
	int r = *fd;
	*fd = -1;
	return r;
}

/* ---- allocation (xalloc.c): on OOM silo_out_of_memory(), which does not return ---- */
__attribute__((noreturn)) void silo_out_of_memory(void);
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void strv_free(char **v);
size_t strv_len(char *const *v);
char **strv_dup(char *const *v);
/* Append s (taken) to the NULL-terminated *v (which may be NULL). */
void strv_push(char ***v, char *s);

/* ---- fd I/O ---- */
/* Write all of buf, retrying on EINTR/short writes. 0 or -1 with errno. */
int write_all(int fd, const void *buf, size_t len);
/* Read fd to EOF in chunks of `chunk` bytes, passing each to fn (which may fail and stop the
 * read). IO_ERROR names path when a read fails. */
int read_chunks(int fd, const char *path, size_t chunk,
		int (*fn)(void *ud, const void *buf, size_t n, silo_error *err), void *ud, silo_error *err);
/* Write all of buf to a socket, passing nfds (<= 8) descriptors with its first bytes
 * (SCM_RIGHTS, one sendmsg). 0 or -1 with errno. */
int send_all_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds);
/* Read exactly len bytes. 0 ok, -1 error (errno), 1 on EOF before len. */
int read_exact(int fd, void *buf, size_t len);
/* Read a whole file, at most max bytes (else EFBIG). NUL-terminated; *len excludes NUL. */
int read_file(const char *path, size_t max, char **out, size_t *len, silo_error *err);
/* Write a file atomically (tmp + fsync + rename) with mode. */
int write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode, silo_error *err);
int set_cloexec(int fd, bool on);
int set_nonblock(int fd, bool on);

/* ---- paths ---- */
int mkdir_p(const char *path, mode_t mode);
/* Remove a tree without following symlinks and without crossing mount points. */
int rm_rf(const char *path);
/* The same for the entry name of directory dirfd (name is not resolved further). */
int rm_rf_below(int dirfd, const char *name);
bool path_exists(const char *path);
/* Reject "..", absolute-escape tricks and embedded NULs in a relative path component list. */
bool path_is_safe_relative(const char *p);

/* Directory for runtime state: $SILO_RUNTIME_DIR, else /run/silo (root) or $XDG_RUNTIME_DIR/silo. */
const char *silo_runtime_dir(void);
/* Directory for persistent state: $SILO_STATE_DIR, else /var/lib/silo (root) or ~/.local/share/silo. */
const char *silo_state_dir(void);
/* Directory for caches (kernels, images): $SILO_CACHE_DIR, else ~/.cache/silo. */
const char *silo_cache_dir(void);

/* Locate a helper binary ("silo-agent", "silo-vmm", ...): $SILO_LIBEXEC_DIR/name,
 * then the build tree (agent/, vmm/, daemon/, cli/ under the meson build root),
 * then the install libexecdir. 0 on success, -1 (PROVIDER_UNAVAILABLE) if absent. */
int find_helper_binary(const char *name, char *out, size_t len, silo_error *err);

/* s[0..n) is 1..max decimal digits. */
bool all_digits(const char *s, size_t n, size_t max);

/* Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF), the one
 * validator of the tree (TOML, --set overrides). utf8_seq_len: the length of the
 * sequence at s (at most left bytes) with its code point in *cp, or 0 if invalid.
 * utf8_invalid_at: the offset of the first bad byte of str, or -1 if it is valid. */
size_t utf8_seq_len(const unsigned char *s, size_t left, uint32_t *cp);
long utf8_invalid_at(const char *str);

/* ---- time ---- */
uint64_t now_mono_ns(void);
/* A condition variable whose timed waits count on CLOCK_MONOTONIC (deadlines
 * from now_mono_ns), so a wall-clock step neither stalls nor hurries them. */
void cond_init_monotonic(pthread_cond_t *cv);
/* now_mono_ns() + timeout_ms, or 0 (no deadline) if timeout_ms < 0. */
uint64_t mono_deadline(int timeout_ms);
/* Wait on a cond_init_monotonic cv (lock held) until woken or the deadline
 * (now_mono_ns() ns; 0 = none), or for ms: pthread_cond_(timed)wait's result. */
int cond_wait_deadline(pthread_cond_t *cv, pthread_mutex_t *lock, uint64_t deadline_ns);
int cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *lock, uint64_t ms);
/* A stop request: *flag = true (a release store, for readers without the
 * lock) under lock, and every waiter on cv woken. */
void signal_stop(pthread_mutex_t *lock, pthread_cond_t *cv, bool *flag);
uint64_t now_realtime_ms(void);
/* RFC 3339 UTC with milliseconds into buf (>= 32 bytes). */
const char *format_time_ms(uint64_t epoch_ms, char *buf, size_t len);

/* ---- ids ---- */
/* Random id "sb-" + 12 hex chars (or prefix + 12 hex) into buf. */
void random_id(const char *prefix, char *buf, size_t len);
void random_bytes(void *buf, size_t len);

/* ---- logging (stderr; SILO_LOG=debug|info|warn|error, default warn) ---- */
enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
void silo_log(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_debug(...) silo_log(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) silo_log(LOG_INFO, __VA_ARGS__)
#define log_warn(...) silo_log(LOG_WARN, __VA_ARGS__)
#define log_error(...) silo_log(LOG_ERROR, __VA_ARGS__)

#endif
