/* SPDX-License-Identifier: Apache-2.0
 * WebSocket (RFC 6455), both ends, for interactive sessions over HTTP
 * (silod's /session and /procs/{proc}/attach, the `silo` CLI; the message
 * layout on top is in docs/openapi.yaml, "Interactive sessions").
 *
 * Byte format of a frame: byte 0 = FIN(0x80) | RSV1-3 (must be 0) | opcode
 * (0 continuation, 1 text, 2 binary, 8 close, 9 ping, 10 pong); byte 1 =
 * MASK(0x80) | length 0..125, 126 (then 16 bits) or 127 (then 64 bits, top
 * bit 0), big-endian, in the fewest bytes; then the 4-byte mask key if MASK;
 * then the payload, XORed with the key when masked. Clients mask every frame,
 * servers none; each side refuses the other's violation.
 *
 * The peer is untrusted: ws_parse_header checks every header field before
 * anything is buffered, a message (fragments reassembled) is at most
 * WS_MAX_MESSAGE bytes, control frames at most 125 bytes and never
 * fragmented, unknown opcodes and reserved bits are refused, a continuation
 * without a message or a new message inside one is refused, text must be
 * UTF-8. A refusal closes the connection with the close code RFC 6455 names
 * (1002 protocol error, 1007 invalid text, 1009 too big) and the reason.
 */
#ifndef SILO_COMMON_WS_H
#define SILO_COMMON_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

#define WS_MAX_MESSAGE (1u << 20)
#define WS_SEND_STALL_MS 120000  /* a peer that takes nothing for this long is gone (silod's HTTP idle bound) */
#define WS_KEY_LEN 24            /* base64 of 16 bytes */
#define WS_ACCEPT_LEN 28         /* base64 of a SHA-1 */

enum { WS_CONT = 0, WS_TEXT = 1, WS_BINARY = 2, WS_CLOSE = 8, WS_PING = 9, WS_PONG = 10 };
enum { WS_CLOSE_NORMAL = 1000, WS_CLOSE_GOING_AWAY = 1001, WS_CLOSE_PROTOCOL = 1002, WS_CLOSE_BAD_DATA = 1007,
       WS_CLOSE_POLICY = 1008, WS_CLOSE_TOO_BIG = 1009, WS_CLOSE_ERROR = 1011 };

typedef struct ws_header {
	bool fin;
	int opcode;
	bool masked;
	uint8_t mask[4];
	uint64_t len;             /* payload bytes */
	size_t size;              /* header bytes */
} ws_header;

/* Parse a frame header from p (n bytes available). 1 = complete (h filled),
 * 0 = more bytes needed, -1 = refused: *close_code and *why say why. from_client
 * says which side sent it (clients must mask, servers must not). */
int ws_parse_header(const uint8_t *p, size_t n, bool from_client, ws_header *h, int *close_code, const char **why);
/* Write a frame header for len payload bytes into out (at most 14 bytes); mask
 * (4 bytes) for a client frame, NULL for a server frame. Returns its size. */
size_t ws_put_header(uint8_t *out, int opcode, bool fin, uint64_t len, const uint8_t *mask);
/* XOR n bytes at p with the key, starting at key offset off (off % 4). */
void ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t off);
/* Is s a valid Sec-WebSocket-Key (base64 of 16 bytes)? */
bool ws_key_valid(const char *s);
/* Sec-WebSocket-Accept for key: base64(SHA-1(key + RFC 6455 GUID)), NUL-terminated. */
void ws_accept(const char *key, char out[WS_ACCEPT_LEN + 1]);
/* A fresh random key into out (NUL-terminated). */
void ws_new_key(char out[WS_KEY_LEN + 1]);
/* Is this valid UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF)? */
bool ws_utf8_valid(const uint8_t *p, size_t n);

/* ---- a connection ---- */

/* The transport: read/write like read(2)/write(2) (-1 with errno; EAGAIN is
 * retried after poll on fd), fd for poll. */
typedef struct ws_io {
	ssize_t (*read)(void *ud, void *buf, size_t n);
	ssize_t (*write)(void *ud, const void *buf, size_t n);
	int fd;
	void *ud;
} ws_io;

typedef struct ws_conn ws_conn;

/* client: this end is the client (it masks). extra: bytes already read
 * after the HTTP upgrade (they are the start of the stream). */
ws_conn *ws_conn_new(const ws_io *io, bool client, const void *extra, size_t extra_len);
void ws_conn_free(ws_conn *c);
/* One data message within timeout_ms (< 0: no limit): 1 with *op (WS_TEXT or
 * WS_BINARY) and *data (valid until the next ws_recv), 0 on timeout, -1 when
 * the connection ended: a close from the peer (*err PROTOCOL "closed by the
 * peer: CODE reason", or code WS_CLOSE_NORMAL with sys_errno 0: *closed_normally),
 * EOF or an I/O error (REMOTE_UNREACHABLE), or a violation (PROTOCOL naming it;
 * the close frame was sent). Pings are answered, pongs dropped. One thread reads. */
int ws_recv(ws_conn *c, int *op, const uint8_t **data, size_t *len, int timeout_ms, silo_error *err);
/* Send one message: the concatenation of a (alen) and b (blen). Any thread. */
int ws_send(ws_conn *c, int op, const void *a, size_t alen, const void *b, size_t blen, silo_error *err);
/* Send a JSON object (the reference is taken) as one text message, compact. */
struct json_t;
int ws_send_json(ws_conn *c, struct json_t *o, silo_error *err);
/* Send a close frame (once). */
void ws_close(ws_conn *c, int code, const char *reason);
/* The peer sent a close (ws_recv returned -1 because of it). */
bool ws_peer_closed(const ws_conn *c);

#endif
