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

#define WIRE_VERSION 4                           /* 4: networking (net, dnsq, dnsr, tcp) and rename, list
                                                  * depth/max/link, watch, tar streams; 2: flow control */
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
#define WIRE_MAX_EVS 1024                        /* watch events per frame */
#define WIRE_MAX_LIST_DEPTH 16                   /* list `depth` */
#define WIRE_MAX_KEYS 64                         /* map keys per message */
#define WIRE_MAX_DEPTH 8                         /* nesting when skipping unknown values */

enum wire_type {
	WM_HELLO = 1,      /* host -> agent: v [, data: WIRE_HELLO_SEED bytes of host entropy] */
	WM_HELLO_OK = 2,   /* agent -> host: v, agent, kernel, pid */
	WM_EXEC = 10,      /* argv, [env], [cwd], [data=stdin], [flag=stdin_stream], [timeout], [uid], [gid], [pty, rows, cols], [win] */
	WM_STARTED = 11,   /* pid */
	WM_OUTPUT = 12,    /* stream (1|2), data */
	WM_STDIN = 13,     /* [data], [eof] */
	WM_SIGNAL = 14,    /* sig */
	WM_RESIZE = 15,    /* rows, cols */
	WM_EXIT = 16,      /* code, sig, timed_out, ms (duration), [oom] */
	WM_CREDIT = 17,    /* n: host -> agent: n more output bytes; agent -> host: n more stdin bytes */
	WM_DISCARD = 18,   /* host -> agent: drop the task's output from now on (exit still follows) */
	WM_CANCEL = 19,    /* host -> agent: end a watch (no reply; unknown ids are ignored) */
	WM_FWRITE = 20,    /* path, [mode], data, [flag=first chunk: create+truncate], [eof] */
	WM_FREAD = 21,     /* path, [max] -> WM_FDATA... */
	WM_FDATA = 22,     /* data, [eof] */
	WM_STAT = 23,      /* path -> WM_STAT_R */
	WM_STAT_R = 24,    /* exists, size, mode, mtime, uid, gid, [link] */
	WM_LIST = 25,      /* path, [depth], [max] -> WM_LIST_R... */
	WM_LIST_R = 26,    /* ents, [eof], [flag=truncated at max] */
	WM_MKDIR = 27,     /* path, [mode], [flag=parents] -> WM_OK */
	WM_REMOVE = 28,    /* path, [flag=recursive] -> WM_OK */
	WM_OK = 29,
	WM_ERROR = 30,     /* code (errno), msg */
	WM_RENAME = 31,    /* path, dst, [flag=do not replace] -> WM_OK */
	WM_WATCH = 32,     /* path, [flag=recursive] -> WM_OK, WM_WATCH_EV... */
	WM_WATCH_EV = 33,  /* evs, [ovf] */
	WM_TAR_OUT = 34,   /* path, [win] -> like exec: WM_STARTED, WM_OUTPUT (the tar stream on 1), WM_EXIT */
	WM_TAR_IN = 35,    /* path -> like exec with streamed stdin (the tar stream): WM_STARTED, WM_EXIT */
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
/* hello's data: entropy the agent credits to the guest's RNG and reseeds with */
#define WIRE_HELLO_SEED 32
#define WF_V        (UINT64_C(1) << 0)
#define WF_ARGV     (UINT64_C(1) << 1)
#define WF_ENV      (UINT64_C(1) << 2)
#define WF_CWD      (UINT64_C(1) << 3)
#define WF_PATH     (UINT64_C(1) << 4)
#define WF_MSG      (UINT64_C(1) << 5)
#define WF_AGENT    (UINT64_C(1) << 6)
#define WF_KERNEL   (UINT64_C(1) << 7)
#define WF_DATA     (UINT64_C(1) << 8)
#define WF_STREAM   (UINT64_C(1) << 9)
#define WF_CODE     (UINT64_C(1) << 10)
#define WF_SIG      (UINT64_C(1) << 11)
#define WF_TIMEDOUT (UINT64_C(1) << 12)
#define WF_MS       (UINT64_C(1) << 13)
#define WF_UID      (UINT64_C(1) << 14)
#define WF_GID      (UINT64_C(1) << 15)
#define WF_PTY      (UINT64_C(1) << 16)
#define WF_ROWS     (UINT64_C(1) << 17)
#define WF_COLS     (UINT64_C(1) << 18)
#define WF_MODE     (UINT64_C(1) << 19)
#define WF_EOF      (UINT64_C(1) << 20)
#define WF_FLAG     (UINT64_C(1) << 21)
#define WF_SIZE     (UINT64_C(1) << 22)
#define WF_MTIME    (UINT64_C(1) << 23)
#define WF_PID      (UINT64_C(1) << 24)
#define WF_EXISTS   (UINT64_C(1) << 25)
#define WF_MAX      (UINT64_C(1) << 26)
#define WF_ENTS     (UINT64_C(1) << 27)
#define WF_TIMEOUT  (UINT64_C(1) << 28)
#define WF_WIN      (UINT64_C(1) << 29)
#define WF_N        (UINT64_C(1) << 30)
#define WF_DST      (UINT64_C(1) << 31)
#define WF_DEPTH    (UINT64_C(1) << 32)
#define WF_LINK     (UINT64_C(1) << 33)
#define WF_EVS      (UINT64_C(1) << 34)
#define WF_OVF      (UINT64_C(1) << 35)
#define WF_ADDR     (UINT64_C(1) << 36)   /* net */
#define WF_OOM      (UINT64_C(1) << 37)   /* exit: the OOM killer ended it */

/* Watch event kinds (wire_event.kind). */
enum wire_ev_kind {
	WEV_CREATE = 1,    /* created, or moved in */
	WEV_WRITE = 2,     /* written and closed, or modified */
	WEV_REMOVE = 3,    /* deleted, or moved out */
	WEV_RENAME = 4,    /* renamed within the watched tree: name is the old name */
	WEV_CHMOD = 5,     /* metadata (mode, owner, times) */
	WEV__MAX = WEV_CHMOD,
};

typedef struct wire_event {
	uint32_t kind;
	char *name;       /* relative to the watched directory; may contain '/' (recursive) */
} wire_event;

typedef struct wire_dirent {
	char *name;       /* depth 1: one component; deeper: a relative path ("a/b") */
	uint64_t size;
	uint32_t mode;
	int64_t mtime;
	uint32_t uid, gid;
	char *link;       /* symlink target, or NULL (the optional 7th element) */
} wire_dirent;

typedef struct wire_msg {
	uint32_t type;
	uint32_t id;
	uint64_t present;
	uint32_t v;
	char **argv;      /* NULL-terminated; decode allocates */
	uint32_t argc;
	char **env;
	uint32_t envc;
	char *cwd, *path, *msg, *agent, *kernel, *dst, *link, *addr;   /* NUL-free, NUL-terminated */
	const uint8_t *data;   /* decode: points into the frame; encode: caller's */
	size_t data_len;
	uint32_t stream;
	int64_t code, sig;
	bool timed_out, pty, eof, flag, exists, ovf, oom;
	uint64_t ms, size, max, timeout;
	int64_t uid, gid, mtime;
	uint32_t rows, cols, mode, pid;
	uint32_t win, n;       /* exec: output window; credit: bytes granted */
	uint32_t depth;        /* list: levels below path (1 = its entries) */
	wire_dirent *ents;
	uint32_t n_ents;
	wire_event *evs;
	uint32_t n_evs;
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
