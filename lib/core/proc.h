/* SPDX-License-Identifier: Apache-2.0
 * The processes of one sandbox: every command started through silod or the
 * C API (foreground execs, PTY sessions, background commands), over the
 * sandbox's channel, as one table the HTTP API, the CLI, the C API and the
 * E2B layer share (docs/architecture.md "Processes").
 *
 * A process has a handle ("p1", "p2", ... never reused within the sandbox),
 * its guest pid, argv, start time, an optional tag (unique among the table's
 * processes), a pty flag and a kind: a *session* ends with its client (it is
 * killed when its last reader detaches, and forgotten), a *background*
 * process runs on until it exits and its record stays until removed.
 *
 * Output. Readers attach and detach at any time; each reads the same bytes
 * in order (fan-out). What is read moves from the channel (at most the task's
 * window, exec_req.window) into a buffer of at most PROC_BUF bytes, from
 * which a byte is released once every attached reader has read it. With no
 * reader attached nothing is released and nothing more is taken from the
 * channel, so output waits there, then in the guest, and the process blocks
 * in write(2): nothing is ever dropped, and memory per process is bounded by
 * window + PROC_BUF. A reader that attaches starts at the oldest byte still
 * held: the first reader of a background process gets everything it wrote
 * so far (up to the bounds, after which the process waited); a second reader
 * joining a running stream starts where the slowest reader is. Several readers
 * advance at the pace of the slowest: a stalled reader stalls the process, as
 * one client does. The exit status is known as soon as the process exits
 * (proc_wait), whether or not its output was read.
 *
 * Limits: PROC_MAX records per sandbox; starting one more first forgets the
 * oldest exited background process whose output was read to the end, else
 * fails with RESOURCE_EXCEEDED.
 *
 * Locking: t->lock guards the table, every proc's fields and every reader;
 * t->cond signals output, exit, detach and removal. The table lock is never
 * held across a channel call: a thread that calls into the channel for a
 * proc counts itself in p->chan_busy, and the channel task is freed (its exit
 * status collected) only by the last such thread once the output was taken
 * to the end (or discarded by proc_remove), so no channel call ever sees a
 * freed task. Records are reference-counted (proc_find/proc_put); a removed
 * proc stays readable by those who hold it and is freed with its last ref.
 */
#ifndef SILO_CORE_PROC_H
#define SILO_CORE_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/channel.h"

#define PROC_MAX 256
#define PROC_BUF (256u * 1024u)
#define PROC_TAG_MAX 64
#define PROC_ID_MAX 16

typedef struct proc_table proc_table;
typedef struct proc proc;
typedef struct proc_reader proc_reader;

typedef struct proc_opts {
	const char *tag;             /* 1..64 of [A-Za-z0-9_.-], not all digits, not "p<digits>"; or NULL */
	bool session;                /* killed when its last reader detaches, then forgotten */
} proc_opts;

typedef struct proc_info {
	char id[PROC_ID_MAX];        /* "p3" */
	char tag[PROC_TAG_MAX + 1];  /* "" if none */
	uint32_t pid;                /* in the guest */
	char **argv;                 /* copy (proc_info_free) */
	char *cwd;                   /* NULL: the agent default */
	bool pty, session;
	uint64_t started_ms;         /* wall clock */
	bool exited;
	exec_result res;             /* when exited */
	bool failed;                 /* the channel failed (the status is unknown) */
	unsigned readers;
	uint64_t buffered;           /* output held for readers (bytes) */
	uint64_t output_bytes;       /* output read from the process so far */
} proc_info;

/* The table of a sandbox with channel c (vm_id for messages). */
proc_table *proc_table_new(chan *c, const char *vm_id);
/* Close the table: no more starts; every waiting read, wait and stdin call
 * returns CONFLICT within a slice (200 ms); sessions are killed, with
 * kill_background every process (the others run on without a handle, their
 * output dropped by the agent once the channel closes). Idempotent. */
void proc_table_close(proc_table *t, bool kill_background);
/* Close, wait until every holder let go, free. */
void proc_table_free(proc_table *t, bool kill_background);

/* Start req (req->pull is set here) and wait until the agent started it (its
 * pid is known). A command that cannot be executed still starts (exit 127 or
 * 126 with the reason on stderr, as a shell does). *out holds a reference. */
int proc_start(proc_table *t, const exec_req *req, const proc_opts *o, proc **out, silo_error *err);
/* Find by handle ("p3"), guest pid ("1234") or tag (which can look like
 * neither); PROCESS_NOT_FOUND otherwise. The result holds a reference. */
proc *proc_find(proc_table *t, const char *ref, silo_error *err);
void proc_put(proc *p);
const char *proc_id(const proc *p);

/* Every record (running and exited), oldest first; free with proc_list_free. */
int proc_list(proc_table *t, proc_info **out, size_t *n);
void proc_info_of(proc *p, proc_info *out);
void proc_info_free(proc_info *i);
void proc_list_free(proc_info *v, size_t n);

/* Readers (see above). proc_read: > 0 bytes of *stream; 0 when the process has
 * exited and the reader has everything; -1 with err (TIMEOUT: nothing within
 * timeout_ms, < 0 waits forever; VSOCK_DISCONNECTED, PROTOCOL: the channel). */
proc_reader *proc_attach(proc *p);
ssize_t proc_read(proc_reader *r, int *stream, void *buf, size_t cap, int timeout_ms, silo_error *err);
void proc_detach(proc_reader *r);

/* Stdin: blocks while the agent's stdin window is full (the process is not
 * reading), up to timeout_ms (< 0: until the table closes), then TIMEOUT with
 * *taken (may be NULL) the bytes that went in; eof is sent after the last
 * byte. Signals go to the process group. ESRCH (INVALID_CONFIG) once the
 * process has exited. */
int proc_stdin(proc *p, const void *buf, size_t len, bool eof, int timeout_ms, size_t *taken, silo_error *err);
int proc_signal(proc *p, int sig, silo_error *err);
int proc_resize(proc *p, uint16_t rows, uint16_t cols, silo_error *err);
/* The exit status (timeout_ms < 0: wait forever; TIMEOUT while it runs). The
 * output is not touched. */
int proc_wait(proc *p, int timeout_ms, exec_result *res, silo_error *err);
/* Kill it if it runs (SIGKILL to its group, output discarded) and forget it. */
void proc_remove(proc *p);

/* "TERM", "SIGTERM", "15" -> 15; 0 if unknown. */
int proc_signal_number(const char *name);

#endif
