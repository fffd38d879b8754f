/* SPDX-License-Identifier: Apache-2.0
 * WebSocket framing and connections (ws.h). The receive buffer holds at most
 * one frame header plus WS_MAX_MESSAGE of payload; a message is reassembled
 * in it and handed out in place.
 */
#include "common/ws.h"

#include <errno.h>
#include <jansson.h>
#include <nettle/sha1.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

int ws_parse_header(const uint8_t *p, size_t n, bool from_client, ws_header *h, int *close_code, const char **why)
{
	*close_code = WS_CLOSE_PROTOCOL;
	if (n < 2)
		return 0;
	h->fin = p[0] & 0x80;
	h->opcode = p[0] & 0x0f;
	h->masked = p[1] & 0x80;
	if (p[0] & 0x70) {
		*why = "reserved bits set (no extension was negotiated)";
		return -1;
	}
	if (!(h->opcode <= 2 || (h->opcode >= 8 && h->opcode <= 10))) {
		*why = "unknown opcode";
		return -1;
	}
	if (h->masked != from_client) {
		*why = from_client ? "a client frame must be masked" : "a server frame must not be masked";
		return -1;
	}
	uint64_t len = p[1] & 0x7f;
	size_t off = 2;
	if (len == 126) {
		if (n < 4)
			return 0;
		len = (uint64_t)p[2] << 8 | p[3];
		off = 4;
		if (len < 126) {
			*why = "length not in its shortest form";
			return -1;
		}
	} else if (len == 127) {
		if (n < 10)
			return 0;
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | p[2 + i];
		off = 10;
		if (len >> 63) {
			*why = "length with the top bit set";
			return -1;
		}
		if (len <= 0xffff) {
			*why = "length not in its shortest form";
			return -1;
		}
	}
	if (h->opcode >= 8 && (len > 125 || !h->fin)) {
		*why = "a control frame longer than 125 bytes or fragmented";
		return -1;
	}
	if (len > WS_MAX_MESSAGE) {
		*close_code = WS_CLOSE_TOO_BIG;
		*why = "frame larger than 1 MiB";
		return -1;
	}
	if (h->masked) {
		if (n < off + 4)
			return 0;
		memcpy(h->mask, p + off, 4);
		off += 4;
	}
	h->len = len;
	h->size = off;
	return 1;
}

size_t ws_put_header(uint8_t *out, int opcode, bool fin, uint64_t len, const uint8_t *mask)
{
	size_t o = 0;
	out[o++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
	uint8_t m = mask ? 0x80 : 0;
	if (len < 126) {
		out[o++] = m | (uint8_t)len;
	} else if (len <= 0xffff) {
		out[o++] = m | 126;
		out[o++] = (uint8_t)(len >> 8);
		out[o++] = (uint8_t)len;
	} else {
		out[o++] = m | 127;
		for (int i = 7; i >= 0; i--)
			out[o++] = (uint8_t)(len >> (8 * i));
	}
	if (mask) {
		memcpy(out + o, mask, 4);
		o += 4;
	}
	return o;
}

void ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t off)
{
	for (size_t i = 0; i < n; i++)
		p[i] ^= mask[(off + i) & 3];
}

bool ws_key_valid(const char *s)
{
	if (!s || strlen(s) != WS_KEY_LEN)
		return false;
	unsigned char raw[18];
	size_t got = 0;
	return sodium_base642bin(raw, sizeof raw, s, WS_KEY_LEN, NULL, &got, NULL, sodium_base64_VARIANT_ORIGINAL) ==
		       0 &&
	       got == 16;
}

void ws_accept(const char *key, char out[WS_ACCEPT_LEN + 1])
{
	struct sha1_ctx ctx;
	uint8_t digest[SHA1_DIGEST_SIZE];
	sha1_init(&ctx);
	sha1_update(&ctx, strlen(key), (const uint8_t *)key);
	sha1_update(&ctx, sizeof ws_guid - 1, (const uint8_t *)ws_guid);
	sha1_digest(&ctx, sizeof digest, digest);
	sodium_bin2base64(out, WS_ACCEPT_LEN + 1, digest, sizeof digest, sodium_base64_VARIANT_ORIGINAL);
}

void ws_new_key(char out[WS_KEY_LEN + 1])
{
	uint8_t raw[16];
	random_bytes(raw, sizeof raw);
	sodium_bin2base64(out, WS_KEY_LEN + 1, raw, sizeof raw, sodium_base64_VARIANT_ORIGINAL);
}

bool ws_utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = p[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t k;
		uint32_t cp;
		if ((c & 0xe0) == 0xc0)
			k = 1, cp = c & 0x1f;
		else if ((c & 0xf0) == 0xe0)
			k = 2, cp = c & 0x0f;
		else if ((c & 0xf8) == 0xf0)
			k = 3, cp = c & 0x07;
		else
			return false;
		if (n - i <= k)
			return false;   /* truncated sequence */
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + j] & 0x3f);
		}
		if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

/* ---- connections ---- */

struct ws_conn {
	ws_io io;
	bool client;
	uint8_t *buf;                 /* received, not yet consumed */
	size_t len, cap;
	uint8_t *msg;                 /* the message being reassembled / handed out */
	size_t msg_len;
	int msg_op;                   /* 0: none in progress */
	bool eof, failed, peer_closed;
	pthread_mutex_t wlock;
	bool close_sent;
};

ws_conn *ws_conn_new(const ws_io *io, bool client, const void *extra, size_t extra_len)
{
	ws_conn *c = xcalloc(1, sizeof *c);
	c->io = *io;
	c->client = client;
	c->cap = WS_MAX_MESSAGE + 14;
	c->buf = xmalloc(c->cap);
	c->msg = xmalloc(WS_MAX_MESSAGE);
	if (extra_len > c->cap)
		extra_len = c->cap;
	if (extra_len)
		memcpy(c->buf, extra, extra_len);
	c->len = extra_len;
	pthread_mutex_init(&c->wlock, NULL);
	return c;
}

void ws_conn_free(ws_conn *c)
{
	if (!c)
		return;
	pthread_mutex_destroy(&c->wlock);
	free(c->buf);
	free(c->msg);
	free(c);
}

static int write_all_io(ws_conn *c, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = c->io.write(c->io.ud, p, n);
		if (k > 0) {
			p += k;
			n -= (size_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN) {
			struct pollfd pf = {.fd = c->io.fd, .events = POLLOUT};
			if (poll(&pf, 1, WS_SEND_STALL_MS) <= 0)
				return -1;   /* the peer stopped reading: gone, or stalled past the bound */
			continue;
		}
		return -1;
	}
	return 0;
}

static int send_frame(ws_conn *c, int op, const void *a, size_t alen, const void *b, size_t blen)
{
	uint8_t hdr[14], mask[4];
	if (c->client)
		random_bytes(mask, sizeof mask);
	size_t hl = ws_put_header(hdr, op, true, (uint64_t)(alen + blen), c->client ? mask : NULL);
	if (!c->client)
		return write_all_io(c, hdr, hl) < 0 || (alen && write_all_io(c, a, alen) < 0) ||
				       (blen && write_all_io(c, b, blen) < 0)
			       ? -1
			       : 0;
	/* a client masks: copy in pieces */
	if (write_all_io(c, hdr, hl) < 0)
		return -1;
	uint8_t tmp[16384];
	uint64_t off = 0;
	const uint8_t *parts[2] = {a, b};
	size_t lens[2] = {alen, blen};
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; i < lens[k];) {
			size_t n = MIN(sizeof tmp, lens[k] - i);
			memcpy(tmp, parts[k] + i, n);
			ws_mask(tmp, n, mask, off);
			if (write_all_io(c, tmp, n) < 0)
				return -1;
			off += n;
			i += n;
		}
	return 0;
}

int ws_send(ws_conn *c, int op, const void *a, size_t alen, const void *b, size_t blen, silo_error *err)
{
	pthread_mutex_lock(&c->wlock);
	int rc = c->close_sent ? -1 : send_frame(c, op, a, alen, b, blen);
	int e = errno;
	pthread_mutex_unlock(&c->wlock);
	if (rc < 0)
		return silo_fail(err, SILO_ERR_REMOTE_UNREACHABLE, c->close_sent ? 0 : e, "websocket: send");
	return 0;
}

int ws_send_json(ws_conn *c, json_t *o, silo_error *err)
{
	char *t = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!t)
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "websocket: a JSON message that cannot be written");
	int rc = ws_send(c, WS_TEXT, t, strlen(t), NULL, 0, err);
	free(t);
	return rc;
}

void ws_close(ws_conn *c, int code, const char *reason)
{
	pthread_mutex_lock(&c->wlock);
	if (!c->close_sent) {
		uint8_t body[125];
		size_t rl = reason ? MIN(strlen(reason), sizeof body - 2) : 0;
		body[0] = (uint8_t)(code >> 8);
		body[1] = (uint8_t)code;
		memcpy(body + 2, reason ? reason : "", rl);
		send_frame(c, WS_CLOSE, body, 2 + rl, NULL, 0);
		c->close_sent = true;
	}
	pthread_mutex_unlock(&c->wlock);
}

bool ws_peer_closed(const ws_conn *c)
{
	return c->peer_closed;
}

static int violation(ws_conn *c, int code, const char *why, silo_error *err)
{
	c->failed = true;
	ws_close(c, code, why);
	return silo_fail(err, SILO_ERR_PROTOCOL, 0, "websocket: %s", why);
}

/* Read more into buf within timeout_ms: 1 got bytes, 0 timeout, -1 EOF/error. */
static int fill(ws_conn *c, int timeout_ms)
{
	if (c->len == c->cap)
		return 1;
	struct pollfd pf = {.fd = c->io.fd, .events = POLLIN};
	int r = poll(&pf, 1, timeout_ms);
	if (r < 0)
		return errno == EINTR ? 0 : -1;
	if (r == 0)
		return 0;
	ssize_t n = c->io.read(c->io.ud, c->buf + c->len, c->cap - c->len);
	if (n < 0)
		return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
	if (n == 0)
		return -1;
	c->len += (size_t)n;
	return 1;
}

static void consume(ws_conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

int ws_recv(ws_conn *c, int *op, const uint8_t **data, size_t *len, int timeout_ms, silo_error *err)
{
	uint64_t deadline = mono_deadline(timeout_ms);
	if (c->failed || c->peer_closed || c->eof)
		return silo_fail(err, SILO_ERR_REMOTE_UNREACHABLE, 0, "websocket: the connection has ended");
	for (;;) {
		ws_header h;
		int code;
		const char *why = NULL;
		int p = ws_parse_header(c->buf, c->len, !c->client, &h, &code, &why);
		if (p < 0)
			return violation(c, code, why, err);
		if (p > 0 && c->len >= h.size + h.len) {
			uint8_t *payload = c->buf + h.size;
			if (h.masked)
				ws_mask(payload, (size_t)h.len, h.mask, 0);
			if (h.opcode >= 8) {   /* control */
				if (h.opcode == WS_PING) {
					pthread_mutex_lock(&c->wlock);
					if (!c->close_sent)
						send_frame(c, WS_PONG, payload, (size_t)h.len, NULL, 0);
					pthread_mutex_unlock(&c->wlock);
				} else if (h.opcode == WS_CLOSE) {
					int cc = h.len >= 2 ? payload[0] << 8 | payload[1] : WS_CLOSE_NORMAL;
					char reason[126] = "";
					if (h.len > 2)
						snprintf(reason, sizeof reason, "%.*s", (int)h.len - 2, (const char *)payload + 2);
					c->peer_closed = true;
					ws_close(c, cc == WS_CLOSE_NORMAL ? WS_CLOSE_NORMAL : WS_CLOSE_GOING_AWAY, NULL);
					return silo_fail(err, cc == WS_CLOSE_NORMAL ? SILO_ERR_REMOTE_UNREACHABLE : SILO_ERR_PROTOCOL,
							 0, "websocket: closed by the peer (%d%s%s)", cc, reason[0] ? " " : "",
							 reason);
				}
				consume(c, h.size + (size_t)h.len);
				continue;
			}
			if (h.opcode == WS_CONT ? !c->msg_op : c->msg_op)
				return violation(c, WS_CLOSE_PROTOCOL,
						 h.opcode == WS_CONT ? "a continuation frame without a message"
								     : "a new message inside a fragmented one",
						 err);
			if (h.opcode != WS_CONT) {
				c->msg_op = h.opcode;
				c->msg_len = 0;
			}
			if (c->msg_len + h.len > WS_MAX_MESSAGE)
				return violation(c, WS_CLOSE_TOO_BIG, "message larger than 1 MiB", err);
			memcpy(c->msg + c->msg_len, payload, (size_t)h.len);
			c->msg_len += (size_t)h.len;
			consume(c, h.size + (size_t)h.len);
			if (!h.fin)
				continue;
			int mop = c->msg_op;
			c->msg_op = 0;
			if (mop == WS_TEXT && !ws_utf8_valid(c->msg, c->msg_len))
				return violation(c, WS_CLOSE_BAD_DATA, "text message is not UTF-8", err);
			*op = mop;
			*data = c->msg;
			*len = c->msg_len;
			return 1;
		}
		int ms = -1;
		if (timeout_ms >= 0) {
			uint64_t now = now_mono_ns();
			if (now >= deadline)
				return 0;
			ms = (int)((deadline - now) / 1000000ull) + 1;
		}
		int f = fill(c, ms);
		if (f < 0) {
			c->eof = true;
			return silo_fail(err, SILO_ERR_REMOTE_UNREACHABLE, 0, "websocket: the peer went away");
		}
	}
}
