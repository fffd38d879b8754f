/* SPDX-License-Identifier: Apache-2.0
 *
 * libsilo: hardware-isolated sandboxes for AI agents.
 *
 * Public C API. Handles are opaque. Every fallible function returns a
 * negative value (or NULL) and fills a caller-provided silo_error; the error
 * codes below are stable and documented in docs/errors.md.
 */
#ifndef SILO_SILO_H
#define SILO_SILO_H

#include <stddef.h>
#include <stdint.h>

#include <silo/error.h>

#ifdef __cplusplus
extern "C" {
#endif

SILO_PUBLIC const char *silo_version(void);

/* ---- specs (hac.toml, docs/hac-toml.md) ---- */
typedef struct silo_spec silo_spec;

SILO_PUBLIC silo_spec *silo_spec_parse(const char *toml, size_t len, silo_error *err);
SILO_PUBLIC silo_spec *silo_spec_load(const char *path, silo_error *err);
/* Template for "kvm", "qemu" or "namespace" (NULL: automatic provider). */
SILO_PUBLIC silo_spec *silo_spec_default(const char *provider, silo_error *err);
/* Canonical hac.toml; free() the result. */
SILO_PUBLIC char *silo_spec_format(const silo_spec *spec);
/* Set an environment variable for commands run in the sandbox. */
SILO_PUBLIC int silo_spec_set_env(silo_spec *spec, const char *key, const char *value, silo_error *err);
SILO_PUBLIC void silo_spec_free(silo_spec *spec);

/* ---- sandboxes (embedded: no daemon; see docs/openapi.yaml for silod) ---- */
typedef struct silo_sandbox silo_sandbox;

/* stream: 1 = stdout, 2 = stderr. Called on the thread that called
 * silo_sandbox_exec, in order, one call at a time. Output is never dropped and
 * is flow-controlled: while the callback runs, the command's further output
 * waits in the sandbox (the command blocks once about 1 MiB is pending), so a
 * slow callback slows only its own command down; other commands in the same
 * sandbox, from other threads, are unaffected. */
typedef void (*silo_output_fn)(void *userdata, int stream, const void *buf, size_t len);

typedef struct silo_exec_opts {
	const char *const *argv;      /* NULL-terminated, required */
	const char *const *env;       /* "K=V", NULL-terminated, or NULL */
	const char *cwd;              /* NULL = the spec's workdir or "/" */
	const void *stdin_data;       /* fed as the command reads it (any size) */
	size_t stdin_len;
	uint32_t timeout_ms;          /* 0 = none */
	silo_output_fn on_output;     /* NULL = discard output */
	void *userdata;
} silo_exec_opts;

typedef struct silo_exec_result {
	int exit_code;                /* 128+signal when killed */
	int signal;
	int timed_out;
	uint64_t duration_ms;
	int oom_killed;               /* the OOM killer ended it (exit_code 137; docs/protocol.md) */
} silo_exec_result;

/* Spawn and wait until the agent is ready (BOOT_TIMEOUT otherwise, nothing left behind). */
SILO_PUBLIC int silo_sandbox_create(const silo_spec *spec, silo_sandbox **out, silo_error *err);
SILO_PUBLIC const char *silo_sandbox_id(const silo_sandbox *sb);
/* Provider actually used ("namespace", "qemu", "kvm"). */
SILO_PUBLIC const char *silo_sandbox_provider(const silo_sandbox *sb);
SILO_PUBLIC int silo_sandbox_exec(silo_sandbox *sb, const silo_exec_opts *opts, silo_exec_result *res,
				  silo_error *err);
SILO_PUBLIC int silo_sandbox_write_file(silo_sandbox *sb, const char *path, const void *buf, size_t len,
					uint32_t mode, silo_error *err);
/* Read at most max bytes (0 = 64 MiB); *out is NUL-terminated, free() it. */
SILO_PUBLIC int silo_sandbox_read_file(silo_sandbox *sb, const char *path, size_t max, char **out,
				       size_t *len, silo_error *err);
/* Terminate, verify nothing is left on the host (CLEANUP_FAILED lists residue), free.
 * Every silo_proc and silo_watch of the sandbox must be closed first. */
SILO_PUBLIC int silo_sandbox_destroy(silo_sandbox *sb, silo_error *err);

/* ---- processes: background commands and PTY sessions ----
 * A process started here runs until it exits (or is killed), whether or not
 * a handle is open; its record (id "p1", "p2", ..., guest pid, tag) stays
 * until silo_proc_kill. Each open handle is a reader of its output: every
 * reader gets every byte, in order; output waits (the process blocks once
 * about 1.25 MiB is pending) until all open readers took it, and with no
 * handle open it is kept until one is opened (silo_proc_open). Nothing is
 * dropped. Handles are not thread-safe; use one per thread. */
typedef struct silo_proc silo_proc;

typedef struct silo_proc_opts {
	const char *const *argv;      /* NULL-terminated, required */
	const char *const *env;       /* "K=V", NULL-terminated, or NULL */
	const char *cwd;              /* NULL = the spec's workdir or "/" */
	uint32_t timeout_ms;          /* 0 = none: killed (SIGKILL to its group) when it expires */
	int stdin_open;               /* 1: stdin stays open for silo_proc_write (until eof); 0: closed */
	int pty;                      /* 1: a PTY (stdout and stderr both arrive as stream 1) */
	uint16_t rows, cols;          /* PTY size; 0 = 24x80 */
	const char *tag;              /* a unique name to find it by, or NULL (1-64 of [A-Za-z0-9_.-]) */
} silo_proc_opts;

typedef struct silo_proc_info {
	char id[16];                  /* "p3" */
	char tag[65];
	uint32_t pid;                 /* in the sandbox */
	char *command;                /* argv joined by spaces (owned) */
	int pty;
	uint64_t started_ms;          /* wall clock, ms since the epoch */
	int exited;                   /* 1: result is valid */
	silo_exec_result result;
	uint64_t buffered;            /* output held for readers */
} silo_proc_info;

SILO_PUBLIC int silo_proc_start(silo_sandbox *sb, const silo_proc_opts *o, silo_proc **out, silo_error *err);
/* A handle on an existing process: "p3", a pid in the sandbox, or a tag. */
SILO_PUBLIC int silo_proc_open(silo_sandbox *sb, const char *ref, silo_proc **out, silo_error *err);
SILO_PUBLIC const char *silo_proc_id(const silo_proc *p);
SILO_PUBLIC uint32_t silo_proc_pid(const silo_proc *p);
/* Output: > 0 bytes of *stream (1 stdout, 2 stderr); 0 once the process
 * exited and this handle has read everything; -1 with err (TIMEOUT when
 * nothing came within timeout_ms; < 0 waits). */
SILO_PUBLIC int64_t silo_proc_read(silo_proc *p, int *stream, void *buf, size_t cap, int timeout_ms, silo_error *err);
/* Stdin (silo_proc_opts.stdin_open): blocks while the process does not read;
 * eof != 0 closes it after buf (on a PTY: ^D). */
SILO_PUBLIC int silo_proc_write(silo_proc *p, const void *buf, size_t len, int eof, silo_error *err);
SILO_PUBLIC int silo_proc_signal(silo_proc *p, int sig, silo_error *err);
SILO_PUBLIC int silo_proc_resize(silo_proc *p, uint16_t rows, uint16_t cols, silo_error *err);
/* The exit status, without reading the output (timeout_ms < 0: wait). */
SILO_PUBLIC int silo_proc_wait(silo_proc *p, int timeout_ms, silo_exec_result *res, silo_error *err);
/* Kill it if it runs (SIGKILL to its group), drop its output, forget its record. */
SILO_PUBLIC int silo_proc_kill(silo_proc *p, silo_error *err);
/* Close the handle (the process runs on). */
SILO_PUBLIC void silo_proc_close(silo_proc *p);
/* Every record, oldest first; free with silo_proc_infos_free. */
SILO_PUBLIC int silo_sandbox_procs(silo_sandbox *sb, silo_proc_info **out, size_t *n, silo_error *err);
SILO_PUBLIC void silo_proc_infos_free(silo_proc_info *v, size_t n);

/* ---- files beyond one file (paths resolve inside the sandbox) ---- */
typedef struct silo_file_info {
	char *name;                   /* listing: relative to the directory ("a/b" below depth 1); stat: NULL */
	char *link;                   /* symlink target, or NULL */
	uint64_t size;
	uint32_t mode;                /* st_mode (type and permission bits) */
	int64_t mtime;                /* seconds */
	uint32_t uid, gid;
} silo_file_info;

/* FILE_NOT_FOUND when path does not exist. Free with silo_file_info_clear. */
SILO_PUBLIC int silo_sandbox_stat(silo_sandbox *sb, const char *path, silo_file_info *out, silo_error *err);
SILO_PUBLIC void silo_file_info_clear(silo_file_info *i);
/* Entries depth levels down (1 = the directory's own), at most max (0 = 1 Mi;
 * *truncated set when there were more; may be NULL). Symlinks are not followed. */
SILO_PUBLIC int silo_sandbox_list(silo_sandbox *sb, const char *path, uint32_t depth, uint64_t max,
				  silo_file_info **out, size_t *n, int *truncated, silo_error *err);
SILO_PUBLIC void silo_file_infos_free(silo_file_info *v, size_t n);
SILO_PUBLIC int silo_sandbox_mkdir(silo_sandbox *sb, const char *path, uint32_t mode, int parents, silo_error *err);
/* recursive: the tree, never following symlinks or crossing mounts; "/" is refused. */
SILO_PUBLIC int silo_sandbox_remove(silo_sandbox *sb, const char *path, int recursive, silo_error *err);
/* noreplace: CONFLICT if dst exists. */
SILO_PUBLIC int silo_sandbox_rename(silo_sandbox *sb, const char *src, const char *dst, int noreplace,
				    silo_error *err);
/* A tar stream (POSIX ustar/pax) of path and everything below it, written to
 * fd; its top entry is path's last component. */
SILO_PUBLIC int silo_sandbox_archive_get(silo_sandbox *sb, const char *path, int fd, silo_error *err);
/* Extract the tar stream read from fd below the directory path (created if
 * missing). Entries never escape path ("..", absolute names and symlinks in
 * the way are refused, naming the entry). */
SILO_PUBLIC int silo_sandbox_archive_put(silo_sandbox *sb, const char *path, int fd, silo_error *err);

/* ---- directory watches (inotify in the sandbox) ---- */
typedef struct silo_watch silo_watch;
enum { SILO_WATCH_CREATE = 1, SILO_WATCH_WRITE = 2, SILO_WATCH_REMOVE = 3, SILO_WATCH_RENAME = 4,
       SILO_WATCH_CHMOD = 5 };
typedef struct silo_watch_event {
	int kind;                     /* SILO_WATCH_* (RENAME: the old name; the new one comes as CREATE) */
	char *name;                   /* relative to the watched directory */
} silo_watch_event;
SILO_PUBLIC int silo_watch_start(silo_sandbox *sb, const char *path, int recursive, silo_watch **out,
				 silo_error *err);
/* Events so far (waiting up to timeout_ms for one). *lost > 0: events were
 * dropped (more than 4096 pending, or the kernel's queue overflowed): list
 * the directory again. Returns 1 when the watch ended (the directory is gone). */
SILO_PUBLIC int silo_watch_next(silo_watch *w, silo_watch_event **evs, size_t *n, uint64_t *lost, int timeout_ms,
				silo_error *err);
SILO_PUBLIC void silo_watch_events_free(silo_watch_event *v, size_t n);
SILO_PUBLIC void silo_watch_stop(silo_watch *w);

#ifdef __cplusplus
}
#endif
#endif /* SILO_SILO_H */
