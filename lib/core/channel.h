/* SPDX-License-Identifier: Apache-2.0
 * Host side of the host<->agent channel (docs/protocol.md).
 *
 * A chan owns one connected stream fd to silo-agent. After the versioned
 * handshake a reader thread demultiplexes frames by task id, so any number
 * of threads may run exec/file operations concurrently on one chan. Every
 * length read from the guest is bounded (the guest is hostile): a violation
 * closes the channel with SILO_ERR_PROTOCOL and is reported through
 * on_violation. Exec output and stdin are flow-controlled per task (a window
 * of credit, docs/protocol.md "Flow control"): output nobody takes stays in
 * the guest (the process blocks in write), never in host memory beyond the
 * window, and a stalled task never holds up another. Liveness: the host pings every heartbeat_ms; no frame from the
 * agent within 3 intervals marks the channel disconnected
 * (SILO_ERR_VSOCK_DISCONNECTED for every pending and later operation).
 */
#ifndef SILO_CORE_CHANNEL_H
#define SILO_CORE_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

typedef struct chan chan;

typedef struct chan_opts {
	const char *vm_id;            /* for error messages */
	int handshake_timeout_ms;     /* default 5000 */
	int heartbeat_ms;             /* default 1000; 0 disables pings */
	/* File, stat, list, mkdir and remove operations fail with TIMEOUT when the
	 * agent sends nothing for them for this long (a stuck or hostile agent that
	 * still answers pings must not hang the caller); default 30000. */
	int op_idle_ms;
	/* Reconnecting to a running agent (silod restart): the previous session
	 * may have left bytes on the way in either direction. The hello is repeated
	 * every 500 ms until answered (the guest drops what reaches a closed port),
	 * an agent error other than a version mismatch (it could not parse the rest
	 * of an old frame) is answered with a new hello, and unparseable bytes fail
	 * with VSOCK_DISCONNECTED so the caller reconnects on a clean stream. */
	bool resync;
	/* Called (from the reader thread) on a protocol violation or disconnect. */
	void (*on_violation)(void *ud, const char *what);
	void (*on_disconnect)(void *ud);
	/* A DNS query from the guest's stub (docs/network.md), from the reader
	 * thread: must not block. Answer with chan_dns_reply. NULL: dropped. */
	void (*on_dns)(void *ud, uint32_t tag, const uint8_t *msg, size_t len);
	void *ud;
} chan_opts;

typedef struct agent_info {
	uint32_t proto_version;
	char agent_version[32];
	char kernel[64];              /* uname -r in the guest */
	uint32_t pid;
} agent_info;

/* Take ownership of fd, do the handshake. On failure fd is closed. */
chan *chan_open(int fd, const chan_opts *opts, agent_info *info, silo_error *err);
void chan_close(chan *c);                     /* fails pending ops, joins the reader */
bool chan_is_connected(chan *c);
/* The sandbox is frozen (pause) or thawed: the heartbeat neither pings nor
 * counts silence while paused (lib/core/sandbox_snap.c). */
void chan_set_paused(chan *c, bool paused);
int chan_ping(chan *c, int timeout_ms, silo_error *err);
/* Bytes sent/received on this channel (metrics). */
void chan_stats(chan *c, uint64_t *tx_bytes, uint64_t *rx_bytes);

/* ---- exec ---- */
typedef struct exec_req {
	char *const *argv;            /* argv[0] looked up in PATH if it has no '/' */
	char *const *env;             /* "K=V" list, NULL-terminated, or NULL */
	const char *cwd;              /* NULL = "/" */
	const void *stdin_data;       /* fed then closed, unless stdin_stream; must stay valid until
				       * chan_exec_wait returns (more than one chunk is sent as the
				       * agent grants credit) */
	size_t stdin_len;
	bool stdin_stream;            /* caller sends stdin with chan_exec_stdin */
	uint32_t timeout_ms;          /* 0 = none; on expiry the agent kills the process group */
	int64_t uid, gid;             /* -1 = agent default (root in the sandbox) */
	bool pty;                     /* allocate a PTY; output arrives as stream 1 */
	uint16_t rows, cols;
	uint32_t window;              /* output window in bytes, WIRE_MIN_WINDOW..WIRE_MAX_WINDOW;
				       * 0 = WIRE_WINDOW (1 MiB). Host memory per task is bounded by it. */
	bool pull;                    /* output is taken only with chan_exec_read: chan_exec_stdin and
				       * chan_exec_status never deliver or drop it (lib/core/proc.c) */
} exec_req;

typedef struct exec_result {
	int exit_code;                /* valid when signal == 0 */
	int signal;                   /* terminating signal or 0 */
	bool timed_out;
	bool oom_killed;              /* the OOM killer ended it (the agent's verdict, docs/protocol.md) */
	uint64_t duration_ms;
} exec_result;

/* stream: 1 = stdout, 2 = stderr. Called on the thread that drives the task
 * (chan_exec_wait, chan_exec_stdin), one call at a time, in order. It may take
 * as long as it likes: until it returns, the task's output waits in the guest
 * (the process blocks once the window is full); other tasks are unaffected. */
typedef void (*chan_output_cb)(void *ud, int stream, const void *buf, size_t len);

/* Blocking convenience: start, stream output to cb, wait for exit. */
int chan_exec(chan *c, const exec_req *req, chan_output_cb cb, void *ud, exec_result *res,
	      silo_error *err);
/* Asynchronous form. Output is queued (at most the window) until a call takes
 * it: either chan_exec_wait/chan_exec_stdin hand it to cb (NULL: dropped), or
 * the caller pulls it with chan_exec_read (then pass cb NULL and call
 * chan_exec_wait only after chan_exec_read returned 0). One consumer per task. */
int chan_exec_start(chan *c, const exec_req *req, chan_output_cb cb, void *ud, uint32_t *task_id,
		    silo_error *err);
/* Deliver output and send pending stdin until the task has exited and all of
 * its output was delivered, or timeout_ms (< 0: forever) passed
 * (SILO_ERR_TIMEOUT; the task runs on; call again). Frees the task. */
int chan_exec_wait(chan *c, uint32_t task_id, int timeout_ms, exec_result *res, silo_error *err);
/* Take up to cap bytes of the task's output (of one stream: *stream), waiting
 * up to timeout_ms (< 0: forever) for some. > 0: bytes; 0: the task has ended
 * and everything was taken (chan_exec_wait then returns at once); -1: error,
 * SILO_ERR_TIMEOUT when nothing arrived in time. Taking output grants the agent
 * credit for more. */
ssize_t chan_exec_read(chan *c, uint32_t task_id, int *stream, void *buf, size_t cap, int timeout_ms,
		       silo_error *err);
/* Nobody will take this task's output any more (client gone, sandbox being
 * deleted): drop what is queued and tell the agent to read and drop the rest,
 * so the task can end without a consumer. The exit still arrives. */
int chan_exec_discard(chan *c, uint32_t task_id, silo_error *err);
/* Wait (timeout_ms < 0: forever) until the agent has started the task: 0 with
 * the guest pid (pid may be NULL); -1 if the start failed (err: the agent's
 * reason, e.g. FILE_NOT_FOUND for a tar of a missing path; free the task with
 * chan_exec_wait) or TIMEOUT. */
int chan_exec_started(chan *c, uint32_t task_id, int timeout_ms, uint32_t *pid, silo_error *err);
/* The task's exit (or failure) has arrived: only what is queued remains to be taken. */
bool chan_exec_ended(chan *c, uint32_t task_id);
/* Wait (timeout_ms < 0: forever) until the task's exit has arrived, whatever
 * output is still queued, and copy it to res; the task stays (its output can
 * still be read; free it with chan_exec_wait). -1: TIMEOUT, or the task failed
 * (err is its error). A pull task's output is never touched. */
int chan_exec_status(chan *c, uint32_t task_id, int timeout_ms, exec_result *res, silo_error *err);
/* Send stdin; blocks while the agent's stdin window is full (the process is
 * not reading), delivering the task's output to its callback meanwhile. Fails
 * with ESRCH if the task ends before taking everything. */
int chan_exec_stdin(chan *c, uint32_t task_id, const void *buf, size_t len, bool eof, silo_error *err);
/* The same, giving up after timeout_ms (< 0: never) with TIMEOUT; *taken (may
 * be NULL) = the bytes of buf the agent was sent (eof went out only if all were). */
int chan_exec_stdin_timed(chan *c, uint32_t task_id, const void *buf, size_t len, bool eof, int timeout_ms,
			  size_t *taken, silo_error *err);
int chan_exec_signal(chan *c, uint32_t task_id, int sig, silo_error *err);
int chan_exec_resize(chan *c, uint32_t task_id, uint16_t rows, uint16_t cols, silo_error *err);

/* ---- tar streams of trees (lib/archive, docs/protocol.md tar_out/tar_in) ----
 * Both are exec tasks (the agent forks a child that writes or reads the
 * archive): chan_exec_read takes the archive of a tar_out (stream 1; stream 2
 * carries warnings and, on failure, one error line), chan_exec_stdin feeds a
 * tar_in (then eof), chan_exec_wait gives the status: exit code 0 = complete,
 * 1 = failed (the message is on stream 2). Both are pull tasks. A missing
 * tar_out path, or a tar_in path that is not a directory, fails the start
 * (FILE_NOT_FOUND, IO_ERROR ENOTDIR). */
int chan_tar_out_start(chan *c, const char *path, uint32_t window, uint32_t *task_id, silo_error *err);
int chan_tar_in_start(chan *c, const char *path, uint32_t *task_id, silo_error *err);

/* ---- files ---- */
typedef struct file_stat {
	uint64_t size;
	uint32_t mode;                /* st_mode */
	int64_t mtime_s;
	uint32_t uid, gid;
	bool exists;
} file_stat;

typedef struct dir_entry {
	char *name;                   /* depth 1: a name; deeper: a relative path "a/b" */
	char *link;                   /* symlink target, or NULL */
	file_stat st;
} dir_entry;

typedef struct list_opts {
	uint32_t depth;               /* levels below path, 1..WIRE_MAX_LIST_DEPTH; 0 = 1 */
	uint64_t max;                 /* entries; 0 = CHAN_LIST_MAX. More: *truncated */
} list_opts;
#define CHAN_LIST_MAX (1u << 20)
#define CHAN_LIST_MAX_BYTES (32u << 20)   /* names and link targets of one listing */

/* Stream src_fd into path in the guest (chunked); mode applies on create. */
int chan_file_write_fd(chan *c, const char *path, int src_fd, uint32_t mode, silo_error *err);
int chan_file_write(chan *c, const char *path, const void *buf, size_t len, uint32_t mode, silo_error *err);
/* Stream path from the guest into dst_fd (chunked); at most max_bytes (0 = no limit). */
int chan_file_read_fd(chan *c, const char *path, int dst_fd, uint64_t max_bytes, silo_error *err);
int chan_file_read(chan *c, const char *path, size_t max, char **out, size_t *len, silo_error *err);
int chan_stat(chan *c, const char *path, file_stat *st, silo_error *err);
/* The same, with a symlink's target in *link (malloc'd; NULL for other types). */
int chan_stat_link(chan *c, const char *path, file_stat *st, char **link, silo_error *err);
int chan_list(chan *c, const char *path, dir_entry **entries, size_t *n, silo_error *err);
/* With a depth and a bound; *truncated (may be NULL) says the bound cut it. The
 * agent's names are checked: relative, at most depth components, no "", "."
 * or ".." (else PROTOCOL); more than CHAN_LIST_MAX entries or
 * CHAN_LIST_MAX_BYTES of names fail with RESOURCE_EXCEEDED. */
int chan_list_opts(chan *c, const char *path, const list_opts *o, dir_entry **entries, size_t *n, bool *truncated,
		   silo_error *err);
void dir_entries_free(dir_entry *e, size_t n);
int chan_mkdir(chan *c, const char *path, uint32_t mode, bool parents, silo_error *err);
int chan_remove(chan *c, const char *path, bool recursive, silo_error *err);
/* ---- networking (docs/network.md) ---- */

/* Configure the guest's network: addr_gw "ADDR/PREFIX GATEWAY", the MTU;
 * configure_if: the agent sets up eth0 (VMs), else it waits for the host's
 * stack to have done it (namespace). Starts the guest's DNS stub. */
int chan_net_config(chan *c, const char *addr_gw, uint32_t mtu, bool configure_if, silo_error *err);
/* Answer a query delivered to on_dns (dropped when the channel is down). */
void chan_dns_reply(chan *c, uint32_t tag, const void *msg, size_t len);
/* Open a TCP connection to addr (NULL: 127.0.0.1) : port inside the guest
 * (port forwarding). It is an exec-like task: send with chan_exec_stdin
 * (eof = half-close), take the guest's bytes with chan_exec_read (stream 1),
 * close with chan_exec_signal, end with chan_exec_wait. window as exec_req. */
int chan_tcp_open(chan *c, const char *addr, uint16_t port, uint32_t window, uint32_t *task_id, silo_error *err);

/* rename(2) in the guest; with noreplace an existing dst is EEXIST (CONFLICT). */
int chan_rename(chan *c, const char *src, const char *dst, bool noreplace, silo_error *err);

/* ---- directory watches (inotify in the agent) ----
 * Events are queued per watch, at most CHAN_WATCH_QUEUE events (and
 * CHAN_WATCH_QUEUE_BYTES of names) until taken; beyond that they are dropped
 * and counted, and the next chan_watch_read says so (*lost > 0), as does an
 * overflow in the guest (the kernel's inotify queue, or more than 4096
 * directories under a recursive watch: *lost is then at least 1). A consumer
 * that sees lost events should list the directory again. */
#define CHAN_WATCH_QUEUE 4096
#define CHAN_WATCH_QUEUE_BYTES (1u << 20)
typedef struct watch_event {
	int kind;                     /* WEV_CREATE, WEV_WRITE, WEV_REMOVE, WEV_RENAME, WEV_CHMOD (wire.h) */
	char *name;                   /* relative to the watched directory */
} watch_event;
/* Start watching a directory (recursive: its subdirectories too, new ones included). */
int chan_watch_start(chan *c, const char *path, bool recursive, uint32_t *watch_id, silo_error *err);
/* Take the queued events (waiting up to timeout_ms, < 0 forever, for at least
 * one, or for a loss or the end). *n = 0 with return 0: timeout. Returns 1
 * when the watch has ended (the directory went away; after the last events).
 * Free *evs with watch_events_free. */
int chan_watch_read(chan *c, uint32_t watch_id, watch_event **evs, size_t *n, uint64_t *lost, int timeout_ms,
		    silo_error *err);
void watch_events_free(watch_event *e, size_t n);
/* Stop and forget the watch. */
void chan_watch_stop(chan *c, uint32_t watch_id);
/* Ask the agent to power the guest off (or exit, in a namespace sandbox). */
int chan_shutdown(chan *c, silo_error *err);

#endif
