/* SPDX-License-Identifier: Apache-2.0
 * lib/common/ws: the RFC 6455 handshake key, frame headers (every refusal a
 * hostile client or server could provoke), UTF-8, and two connected ends on
 * a socketpair: fragments, pings, a close handshake, a message too big, bad
 * text, an unmasked client frame.
 */
#include <pthread.h>
#include <sys/socket.h>

#include "common/util.h"
#include "common/ws.h"
#include "harness.h"

TEST(accept_key_of_rfc6455)
{
	char out[WS_ACCEPT_LEN + 1];
	ws_accept("dGhlIHNhbXBsZSBub25jZQ==", out);
	CHECK_STR_EQ(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	CHECK(ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=="));
	CHECK(!ws_key_valid("dGhlIHNhbXBsZSBub25jZQ"));
	CHECK(!ws_key_valid("not base64 at all!!!!!!!"));
	CHECK(!ws_key_valid(NULL));
	char k[WS_KEY_LEN + 1];
	ws_new_key(k);
	CHECK(ws_key_valid(k));
}

static int parse(const char *hex, bool from_client, int *code, const char **why)
{
	uint8_t b[32];
	size_t n = strlen(hex) / 2;
	for (size_t i = 0; i < n; i++)
		sscanf(hex + 2 * i, "%2hhx", &b[i]);
	ws_header h;
	*why = "";
	return ws_parse_header(b, n, from_client, &h, code, why);
}

TEST(headers_are_checked_before_anything_is_buffered)
{
	int code;
	const char *why;
	CHECK_INT_EQ(parse("8105", false, &code, &why), 1);                 /* server text, 5 bytes */
	CHECK_INT_EQ(parse("818511223344", true, &code, &why), 1);          /* client masked */
	CHECK_INT_EQ(parse("81", true, &code, &why), 0);                    /* needs more */
	CHECK_INT_EQ(parse("8105", true, &code, &why), -1);                 /* client unmasked */
	CHECK_CONTAINS(why, "must be masked");
	CHECK_INT_EQ(parse("818511223344", false, &code, &why), -1);        /* server masked */
	CHECK_INT_EQ(parse("c18511223344", true, &code, &why), -1);         /* RSV1 */
	CHECK_CONTAINS(why, "reserved bits");
	CHECK_INT_EQ(parse("838511223344", true, &code, &why), -1);         /* opcode 3 */
	CHECK_CONTAINS(why, "unknown opcode");
	CHECK_INT_EQ(parse("81fe000511223344", true, &code, &why), -1);     /* 16-bit length for 5 */
	CHECK_CONTAINS(why, "shortest form");
	CHECK_INT_EQ(parse("81ff000000000000ffff11223344", true, &code, &why), -1);
	CHECK_CONTAINS(why, "shortest form");
	CHECK_INT_EQ(parse("81ff800000000000000011223344", true, &code, &why), -1);
	CHECK_CONTAINS(why, "top bit");
	CHECK_INT_EQ(parse("81ff000000000020000011223344", true, &code, &why), -1);   /* 2 MiB */
	CHECK_INT_EQ(code, WS_CLOSE_TOO_BIG);
	CHECK_INT_EQ(parse("89fe007e11223344", true, &code, &why), -1);     /* ping of 126 bytes */
	CHECK_CONTAINS(why, "control frame");
	CHECK_INT_EQ(parse("098011223344", true, &code, &why), -1);         /* fragmented ping */
}

TEST(utf8)
{
	CHECK(ws_utf8_valid((const uint8_t *)"héllo €𝄞", strlen("héllo €𝄞")));
	CHECK(!ws_utf8_valid((const uint8_t *)"\xc0\xaf", 2));        /* overlong */
	CHECK(!ws_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));    /* surrogate */
	CHECK(!ws_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
	CHECK(!ws_utf8_valid((const uint8_t *)"\xe2\x82", 2));         /* truncated */
	CHECK(!ws_utf8_valid((const uint8_t *)"\xff", 1));
}

static ssize_t rd(void *ud, void *b, size_t n)
{
	return read(*(int *)ud, b, n);
}

static ssize_t wr(void *ud, const void *b, size_t n)
{
	return write(*(int *)ud, b, n);
}

typedef struct pair {
	int fd[2];
	ws_conn *client, *server;
} pair;

static void open_pair(pair *p)
{
	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd) == 0);
	ws_io ci = {rd, wr, p->fd[0], &p->fd[0]}, si = {rd, wr, p->fd[1], &p->fd[1]};
	p->client = ws_conn_new(&ci, true, NULL, 0);
	p->server = ws_conn_new(&si, false, NULL, 0);
}

static void close_pair(pair *p)
{
	ws_conn_free(p->client);
	ws_conn_free(p->server);
	close(p->fd[0]);
	close(p->fd[1]);
}

TEST(two_ends_talk)
{
	pair p;
	open_pair(&p);
	silo_error err = {0};
	REQUIRE(ws_send(p.client, WS_BINARY, "\x00", 1, "abc", 3, &err) == 0);
	int op;
	const uint8_t *d;
	size_t n;
	REQUIRE(ws_recv(p.server, &op, &d, &n, 1000, &err) == 1);
	CHECK_INT_EQ(op, WS_BINARY);
	CHECK(n == 4 && !memcmp(d, "\0abc", 4));
	/* a fragmented text message with a ping in the middle, written by hand (masked) */
	uint8_t raw[64];
	size_t o = 0;
	uint8_t key[4] = {1, 2, 3, 4};
	uint8_t part1[] = "hel", part2[] = "lo";
	o += ws_put_header(raw + o, WS_TEXT, false, 3, key);
	memcpy(raw + o, part1, 3);
	ws_mask(raw + o, 3, key, 0);
	o += 3;
	o += ws_put_header(raw + o, WS_PING, true, 0, key);
	o += ws_put_header(raw + o, WS_CONT, true, 2, key);
	memcpy(raw + o, part2, 2);
	ws_mask(raw + o, 2, key, 0);
	o += 2;
	REQUIRE(write_all(p.fd[0], raw, o) == 0);
	REQUIRE(ws_recv(p.server, &op, &d, &n, 1000, &err) == 1);
	CHECK_INT_EQ(op, WS_TEXT);
	CHECK(n == 5 && !memcmp(d, "hello", 5));
	/* the client got the pong (dropped) and then a message */
	REQUIRE(ws_send(p.server, WS_TEXT, "{\"exit_code\":0}", 15, NULL, 0, &err) == 0);
	REQUIRE(ws_recv(p.client, &op, &d, &n, 1000, &err) == 1);
	CHECK(n == 15 && op == WS_TEXT);
	/* nothing more: a timeout */
	CHECK_INT_EQ(ws_recv(p.client, &op, &d, &n, 50, &err), 0);
	/* close handshake */
	ws_close(p.client, WS_CLOSE_NORMAL, "bye");
	CHECK_INT_EQ(ws_recv(p.server, &op, &d, &n, 1000, &err), -1);
	CHECK(ws_peer_closed(p.server));
	CHECK_CONTAINS(err.message, "1000 bye");
	CHECK_INT_EQ(ws_recv(p.client, &op, &d, &n, 1000, &err), -1);
	CHECK(ws_peer_closed(p.client));
	close_pair(&p);
}

static void *write_big(void *arg)
{
	int fd = *(int *)arg;
	static uint8_t big[512 * 1024 + 1];
	uint8_t hdr[14], key[4] = {0};
	for (int i = 0; i < 2; i++) {
		size_t hl = ws_put_header(hdr, i ? WS_CONT : WS_BINARY, false, sizeof big, key);
		if (write_all(fd, hdr, hl) < 0 || write_all(fd, big, sizeof big) < 0)
			break;
	}
	return NULL;
}

TEST(violations_close_with_the_right_code)
{
	pair p;
	open_pair(&p);
	silo_error err = {0};
	int op;
	const uint8_t *d;
	size_t n;
	/* an unmasked client frame */
	REQUIRE(write_all(p.fd[0], "\x82\x01x", 3) == 0);
	CHECK_INT_EQ(ws_recv(p.server, &op, &d, &n, 1000, &err), -1);
	CHECK_INT_EQ(err.code, SILO_ERR_PROTOCOL);
	CHECK_CONTAINS(err.message, "must be masked");
	/* the client sees the close with 1002 */
	CHECK_INT_EQ(ws_recv(p.client, &op, &d, &n, 1000, &err), -1);
	CHECK_CONTAINS(err.message, "1002");
	close_pair(&p);
	/* a message of 1 MiB + 2 in fragments (written by a thread: the socket buffer is smaller) */
	open_pair(&p);
	pthread_t th;
	REQUIRE(pthread_create(&th, NULL, write_big, &p.fd[0]) == 0);
	CHECK_INT_EQ(ws_recv(p.server, &op, &d, &n, 5000, &err), -1);
	CHECK_CONTAINS(err.message, "larger than 1 MiB");
	shutdown(p.fd[1], SHUT_RDWR);
	pthread_join(th, NULL);
	close_pair(&p);
	/* text that is not UTF-8 */
	open_pair(&p);
	REQUIRE(ws_send(p.client, WS_TEXT, "\xff\xfe", 2, NULL, 0, &err) == 0);
	CHECK_INT_EQ(ws_recv(p.server, &op, &d, &n, 1000, &err), -1);
	CHECK_CONTAINS(err.message, "not UTF-8");
	CHECK_INT_EQ(ws_recv(p.client, &op, &d, &n, 1000, &err), -1);
	CHECK_CONTAINS(err.message, "1007");
	close_pair(&p);
	/* EOF mid-frame */
	open_pair(&p);
	REQUIRE(write_all(p.fd[0], "\x82\x85\0\0\0\0ab", 8) == 0);
	shutdown(p.fd[0], SHUT_WR);
	CHECK_INT_EQ(ws_recv(p.server, &op, &d, &n, 1000, &err), -1);
	CHECK_INT_EQ(err.code, SILO_ERR_REMOTE_UNREACHABLE);
	close_pair(&p);
}

TEST_MAIN(accept_key_of_rfc6455, headers_are_checked_before_anything_is_buffered, utf8, two_ends_talk,
	  violations_close_with_the_right_code)
