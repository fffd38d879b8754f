/* SPDX-License-Identifier: Apache-2.0
 * Host <-> agent wire protocol (docs/protocol.md).
 *
 * A frame is a 4-byte big-endian length followed by one MessagePack map.
 * Map keys are short strings; "t" (type) and "id" (task id) are always
 * present. Unknown keys are skipped (bounded), known keys are type-checked.
 * The same wire_msg struct encodes and decodes every message type; the
 * `present` bitmask says which optional fields are set.
 */
#ifndef SILO_PROTO_WIRE_H
#define SILO_PROTO_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mpack.h"

#define WIRE_VERSION 3                           /* 3: networking (net, dnsq, dnsr, tcp); 2: flow control */
#define WIRE_MAX_FRAME (1024u * 1024u + 4096u)   /* payload bytes, excluding the length */
#define WIRE_CHUNK (256u * 1024u)                /* max data per output/file chunk */
/* Flow control (docs/protocol.md "Flow control"): an exec task's output window
 * (exec `win`, bytes the agent may send before the host grants more credit) and
 * the stdin window the agent grants every exec task (inline stdin included). */
#define WIRE_WINDOW (1024u * 1024u)              /* default `win` */
#define WIRE_MIN_WINDOW (4u * 1024u)
#define WIRE_MAX_WINDOW (16u * 1024u * 1024u)
#define WIRE_STDIN_WINDOW (256u * 1024u)
_Static_assert(WIRE_STDIN_WINDOW >= WIRE_CHUNK, "inline stdin (one chunk) must fit the stdin window");
_Static_assert(WIRE_MIN_WINDOW <= WIRE_WINDOW && WIRE_WINDOW <= WIRE_MAX_WINDOW, "default window in range");
#define WIRE_MAX_ARGS 4096                       /* argv and env entries, each */
#define WIRE_MAX_STR (64u * 1024u)               /* one argv/env string */
#define WIRE_MAX_PATH 4096
#define WIRE_MAX_MSG 4096                        /* error messages, versions */
#define WIRE_MAX_ENTS 2048                       /* directory entries per frame */
#define WIRE_MAX_KEYS 64                         /* map keys per message */
#define WIRE_MAX_DEPTH 8                         /* nesting when skipping unknown values */

enum wire_type {
	WM_HELLO = 1,      /* host -> agent: v */
	WM_HELLO_OK = 2,   /* agent -> host: v, agent, kernel, pid */
	WM_EXEC = 10,      /* argv, [env], [cwd], [data=stdin], [flag=stdin_stream], [timeout], [uid], [gid], [pty, rows, cols], [win] */
	WM_STARTED = 11,   /* pid */
	WM_OUTPUT = 12,    /* stream (1|2), data */
	WM_STDIN = 13,     /* [data], [eof] */
	WM_SIGNAL = 14,    /* sig */
	WM_RESIZE = 15,    /* rows, cols */
	WM_EXIT = 16,      /* code, sig, timed_out, ms (duration) */
	WM_CREDIT = 17,    /* n: host -> agent: n more output bytes; agent -> host: n more stdin bytes */
	WM_DISCARD = 18,   /* host -> agent: drop the task's output from now on (exit still follows) */
	WM_FWRITE = 20,    /* path, [mode], data, [flag=first chunk: create+truncate], [eof] */
	WM_FREAD = 21,     /* path, [max] -> WM_FDATA... */
	WM_FDATA = 22,     /* data, [eof] */
	WM_STAT = 23,      /* path -> WM_STAT_R */
	WM_STAT_R = 24,    /* exists, size, mode, mtime, uid, gid */
	WM_LIST = 25,      /* path -> WM_LIST_R... */
	WM_LIST_R = 26,    /* ents, [eof] */
	WM_MKDIR = 27,     /* path, [mode], [flag=parents] -> WM_OK */
	WM_REMOVE = 28,    /* path, [flag=recursive] -> WM_OK */
	WM_OK = 29,
	WM_ERROR = 30,     /* code (errno), msg */
	WM_PING = 40,      /* [ms] -> WM_PONG with the same ms */
	WM_PONG = 41,
	WM_SHUTDOWN = 42,  /* -> WM_OK, then the agent powers off / exits */
	WM_NET = 50,       /* host -> agent: a = "ADDR/PREFIX GATEWAY", n = MTU, flag = configure eth0 -> WM_OK */
	WM_DNSQ = 51,      /* agent -> host, id 0: n = tag, d = a DNS query from the guest */
	WM_DNSR = 52,      /* host -> agent, id 0: n = tag, d = the DNS response */
	WM_TCP = 53,       /* host -> agent: n = port, [a = guest address], [win] -> started, output*, exit */
};
#define WIRE_MAX_DNS 4096                        /* a DNS message over the channel */

/* Optional-field bits for wire_msg.present. */
enum wire_field {
	WF_V = 1u << 0, WF_ARGV = 1u << 1, WF_ENV = 1u << 2, WF_CWD = 1u << 3,
	WF_PATH = 1u << 4, WF_MSG = 1u << 5, WF_AGENT = 1u << 6, WF_KERNEL = 1u << 7,
	WF_DATA = 1u << 8, WF_STREAM = 1u << 9, WF_CODE = 1u << 10, WF_SIG = 1u << 11,
	WF_TIMEDOUT = 1u << 12, WF_MS = 1u << 13, WF_UID = 1u << 14, WF_GID = 1u << 15,
	WF_PTY = 1u << 16, WF_ROWS = 1u << 17, WF_COLS = 1u << 18, WF_MODE = 1u << 19,
	WF_EOF = 1u << 20, WF_FLAG = 1u << 21, WF_SIZE = 1u << 22, WF_MTIME = 1u << 23,
	WF_PID = 1u << 24, WF_EXISTS = 1u << 25, WF_MAX = 1u << 26, WF_ENTS = 1u << 27,
	WF_TIMEOUT = 1u << 28, WF_WIN = 1u << 29, WF_N = 1u << 30, WF_ADDR = 1u << 31,
};

typedef struct wire_dirent {
	char *name;
	uint64_t size;
	uint32_t mode;
	int64_t mtime;
	uint32_t uid, gid;
} wire_dirent;

typedef struct wire_msg {
	uint32_t type;
	uint32_t id;
	uint32_t present;
	uint32_t v;
	char **argv;      /* NULL-terminated; decode allocates */
	uint32_t argc;
	char **env;
	uint32_t envc;
	char *cwd, *path, *msg, *agent, *kernel, *addr;   /* NUL-free, NUL-terminated */
	const uint8_t *data;   /* decode: points into the frame; encode: caller's */
	size_t data_len;
	uint32_t stream;
	int64_t code, sig;
	bool timed_out, pty, eof, flag, exists;
	uint64_t ms, size, max, timeout;
	int64_t uid, gid, mtime;
	uint32_t rows, cols, mode, pid;
	uint32_t win, n;       /* exec: output window; credit: bytes granted */
	wire_dirent *ents;
	uint32_t n_ents;
} wire_msg;

/* Encode msg as a complete frame (length prefix included) appended to b.
 * Returns false if the payload would exceed WIRE_MAX_FRAME or on OOM. */
bool wire_encode(mp_buf *b, const wire_msg *m);
/* Decode one frame payload (without the length prefix). On failure returns
 * false and writes "byte N: what" into err. out must be freed with
 * wire_msg_free (also after a failure). Strings in out are copies; data
 * points into payload. */
bool wire_decode(const uint8_t *payload, size_t len, wire_msg *out, char *err, size_t errlen);
void wire_msg_free(wire_msg *m);
/* Parse a 4-byte length prefix; false if 0 or > WIRE_MAX_FRAME. */
bool wire_frame_len(const uint8_t hdr[4], uint32_t *len);
const char *wire_type_name(uint32_t t);

#endif
