/* SPDX-License-Identifier: Apache-2.0
 * silod's streaming handlers (handlers.h): exec as NDJSON, events as SSE.
 *
 * Each returns an api_stream whose read() runs on the connection's thread
 * (libmicrohttpd: one thread per connection) and blocks in short slices,
 * polling the client socket between them, so a client that goes away is
 * noticed even when nothing is being written: its exec is killed and its
 * subscription dropped (nothing leaks). read() ends the stream when the
 * server stops.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "daemon/api_parse.h"
#include "daemon/handlers.h"

#define STREAM_QUEUE_MAX (256u * 1024u)   /* unsent NDJSON per stream, beyond the channel's window */
#define EXEC_READ_CHUNK (64u * 1024u)     /* output per NDJSON line */
#define EVENT_QUEUE_MAX 1024
#define EVENT_LIMIT_MAX 1000000
#define EXEC_BLOCK (64 * 1024)
#define EVENT_BLOCK (16 * 1024)
#define WAIT_SLICE_MS 200
#define KEEPALIVE_MS 15000

/* A mutex and a CLOCK_MONOTONIC condition variable for one stream. */
static void stream_sync_init(pthread_mutex_t *lock, pthread_cond_t *cv)
{
	pthread_mutex_init(lock, NULL);
	cond_init_monotonic(cv);
}

static void stream_wait_slice(pthread_cond_t *cv, pthread_mutex_t *lock)
{
	cond_wait_ms(cv, lock, WAIT_SLICE_MS);
}

/* A reader with nothing to send: wait one slice (true), or leave the lock
 * and end the stream when the client is gone or silod stops (false). */
static bool stream_idle(const api_ctx *ctx, int peer_fd, pthread_cond_t *cv, pthread_mutex_t *lock)
{
	if (api_stream_cut(ctx, peer_fd)) {
		pthread_mutex_unlock(lock);
		return false;
	}
	stream_wait_slice(cv, lock);
	return true;
}

/* ---- exec (NDJSON) ----
 * Nothing is dropped and memory stays bounded: a waiter thread takes output
 * from the channel (manager_exec_read) only while this stream holds less than
 * STREAM_QUEUE_MAX of unsent lines, and the transport sends lines as the
 * client's socket takes them. A slow client slows the process down, one that
 * stops reading stops it (blocked in write(2) once the channel's window is
 * full), per task (docs/protocol.md "Flow control"). Once the process has
 * exited, what the channel still holds (at most the window) is moved here and
 * the sandbox is released at once, so a stalled client never holds up a
 * delete (which discards the output of running tasks and kills them). */

typedef struct chunk {
	struct chunk *next;
	size_t len, off;
	char data[];
} chunk;

typedef struct exec_stream {
	const api_ctx *ctx;
	mgr_exec *x;                /* owned by the waiter; NULL once released */
	int fd;                     /* client socket, for disconnect detection */
	pthread_mutex_t lock;
	pthread_cond_t cond;        /* a line queued, a line sent, closing */
	chunk *head, *tail;
	size_t queued;
	bool done;                  /* exit line queued */
	bool closing;               /* client gone or silod stopping: the waiter kills the task */
	bool waiter_started;
	pthread_t waiter;
	api_exec_body body;
	exec_req rq;
	uint8_t buf[EXEC_READ_CHUNK];
} exec_stream;

static void push_chunk(exec_stream *st, chunk *ch)
{
	ch->off = 0;
	ch->next = NULL;
	if (st->tail)
		st->tail->next = ch;
	else
		st->head = ch;
	st->tail = ch;
	st->queued += ch->len;
	pthread_cond_broadcast(&st->cond);
}

/* {"stream":"stdout","data":"<base64>"}\n without building it twice. */
static chunk *output_line(int stream, const uint8_t *buf, size_t len)
{
	chunk *ch = xmalloc(sizeof *ch + api_output_line_max(len));
	ch->len = api_output_line(ch->data, stream, buf, len);
	return ch;
}

static chunk *json_line(json_t *o)
{
	size_t len;
	char *s = api_json_text(o, &len);   /* compact JSON and a newline */
	json_decref(o);
	chunk *ch = xmalloc(sizeof *ch + len);
	memcpy(ch->data, s, len);
	ch->len = len;
	free(s);
	return ch;
}

/* Queue an output line once the client has room for it; an exited task's last
 * window goes in regardless. false: the stream is closing. */
static bool queue_output(exec_stream *st, chunk *ch)
{
	pthread_mutex_lock(&st->lock);
	while (!st->closing && st->queued >= STREAM_QUEUE_MAX && !manager_exec_ended(st->x))
		stream_wait_slice(&st->cond, &st->lock);
	bool ok = !st->closing;
	if (ok)
		push_chunk(st, ch);
	pthread_mutex_unlock(&st->lock);
	if (!ok)
		free(ch);
	return ok;
}

static void *exec_waiter(void *arg)
{
	exec_stream *st = arg;
	silo_error err = {0};
	int rc = 0;
	for (;;) {
		int stream;
		ssize_t n = manager_exec_read(st->x, &stream, st->buf, sizeof st->buf, WAIT_SLICE_MS, &err);
		if (n > 0) {
			if (!queue_output(st, output_line(stream, st->buf, (size_t)n)))
				break;
			continue;
		}
		if (n == 0)
			break;
		if (err.code != SILO_ERR_TIMEOUT) {
			rc = -1;
			break;
		}
		pthread_mutex_lock(&st->lock);
		bool closing = st->closing |= atomic_load(st->ctx->stopping);
		pthread_mutex_unlock(&st->lock);
		if (closing)
			break;
	}
	pthread_mutex_lock(&st->lock);
	bool closing = st->closing;
	pthread_mutex_unlock(&st->lock);
	json_t *o = NULL;
	exec_result res = {0};
	if (!closing && rc == 0)
		rc = manager_exec_wait(st->x, -1, &res, &err);
	if (closing) {
		/* nobody is listening: manager_exec_free drops the output and kills the task */
	} else if (rc == 0) {
		o = json_pack("{s:i,s:i,s:b,s:b,s:I}", "exit_code", res.exit_code, "signal", res.signal, "timed_out",
			      res.timed_out, "oom_killed", res.oom_killed, "duration_ms", (json_int_t)res.duration_ms);
	} else {
		manager_note_error(st->ctx->m, &err);
		o = api_error_json(&err);
	}
	/* Release the sandbox before the client has read everything. */
	manager_exec_free(st->x);
	pthread_mutex_lock(&st->lock);
	st->x = NULL;
	if (o)
		push_chunk(st, json_line(o));
	st->done = true;
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);
	return NULL;
}

static ssize_t exec_read(void *cls, char *buf, size_t max)
{
	exec_stream *st = cls;
	pthread_mutex_lock(&st->lock);
	for (;;) {
		if (st->head) {
			chunk *ch = st->head;
			size_t n = MIN(max, ch->len - ch->off);
			memcpy(buf, ch->data + ch->off, n);
			ch->off += n;
			if (ch->off == ch->len) {
				st->head = ch->next;
				if (!st->head)
					st->tail = NULL;
				st->queued -= ch->len;
				free(ch);
				pthread_cond_broadcast(&st->cond);   /* room for the waiter */
			}
			pthread_mutex_unlock(&st->lock);
			return (ssize_t)n;
		}
		if (st->done) {
			pthread_mutex_unlock(&st->lock);
			return API_STREAM_END;
		}
		if (!stream_idle(st->ctx, st->fd, &st->cond, &st->lock))
			return API_STREAM_ABORT;
	}
}

static void exec_stream_free(void *cls)
{
	exec_stream *st = cls;
	if (st->waiter_started) {
		/* Client gone or stream finished: the waiter kills the process if it
		 * still runs and releases the exec. */
		pthread_mutex_lock(&st->lock);
		st->closing = !st->done;
		pthread_cond_broadcast(&st->cond);
		pthread_mutex_unlock(&st->lock);
		pthread_join(st->waiter, NULL);
	} else {
		manager_exec_free(st->x);   /* kills it if it was started */
	}
	while (st->head) {
		chunk *ch = st->head;
		st->head = ch->next;
		free(ch);
	}
	api_exec_body_free(&st->body);
	pthread_mutex_destroy(&st->lock);
	pthread_cond_destroy(&st->cond);
	free(st);
}

int h_exec(api_req *q, api_reply *r, silo_error *err)
{
	exec_stream *st = xcalloc(1, sizeof *st);
	st->ctx = q->ctx;
	st->fd = q->peer_fd;
	stream_sync_init(&st->lock, &st->cond);
	char rid[SILO_ID_MAX];
	if (api_exec_parse(q->body, q->len, &st->body, err) < 0)
		goto fail;
	st->rq = (exec_req){
		.argv = st->body.argv,
		.env = st->body.env,
		.cwd = st->body.cwd,
		.stdin_data = st->body.stdin_buf,
		.stdin_len = st->body.stdin_len,
		.timeout_ms = st->body.timeout_ms,
		.uid = st->body.uid,
		.gid = st->body.gid,
	};
	if (authz_sandbox(q->ctx->authz, q->ctx->m, q->who.tok, q->who.actor, TOKEN_OP_EXEC, api_cap(q, "id"),
			  st->body.cwd, st->body.argv, rid, err) < 0 ||
	    manager_exec_start(q->ctx->m, rid, &st->rq, NULL, NULL, q->who.actor, &st->x, err) < 0)
		goto fail;
	if (pthread_create(&st->waiter, NULL, exec_waiter, st) != 0) {
		exec_stream_free(st);   /* kills the process */
		return silo_fail(err, SILO_ERR_INTERNAL, 0, "cannot start an exec waiter thread");
	}
	st->waiter_started = true;
	return api_reply_stream(r, API_REPLY_NDJSON,
				&(api_stream){.read = exec_read, .free = exec_stream_free, .ctx = st, .block = EXEC_BLOCK});
fail:
	exec_stream_free(st);
	return -1;
}

/* ---- events (server-sent events) ---- */

typedef struct ev_stream {
	const api_ctx *ctx;
	int sub;                    /* subscription, or -1 */
	int fd;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char *q[EVENT_QUEUE_MAX];
	size_t qh, qn;
	uint64_t dropped;
	char filter_id[SILO_ID_MAX];
	uint32_t type_mask;
	uint64_t limit, sent;
	char *cur;
	size_t cur_len, cur_off;
	bool greeted;
	uint64_t last_write_ms;
} ev_stream;

static void ev_cb(void *ud, const mgr_event *ev)
{
	ev_stream *st = ud;
	if (st->filter_id[0] && strcmp(st->filter_id, ev->sandbox_id) != 0)
		return;
	if (!(st->type_mask & (1u << ev->type)))
		return;
	json_t *o = mgr_event_json(ev);
	char *data = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	char *msg = xasprintf("id: %" PRIu64 "\nevent: %s\ndata: %s\n\n", ev->seq, mgr_event_name(ev->type), data);
	free(data);
	pthread_mutex_lock(&st->lock);
	if (st->qn == EVENT_QUEUE_MAX) {
		st->dropped++;
		free(msg);
	} else {
		st->q[(st->qh + st->qn) % EVENT_QUEUE_MAX] = msg;
		st->qn++;
		pthread_cond_signal(&st->cond);
	}
	pthread_mutex_unlock(&st->lock);
}

static ssize_t ev_read(void *cls, char *buf, size_t max)
{
	ev_stream *st = cls;
	pthread_mutex_lock(&st->lock);
	for (;;) {
		if (st->cur) {
			size_t n = MIN(max, st->cur_len - st->cur_off);
			memcpy(buf, st->cur + st->cur_off, n);
			st->cur_off += n;
			if (st->cur_off == st->cur_len) {
				free(st->cur);
				st->cur = NULL;
			}
			st->last_write_ms = now_mono_ns() / 1000000;
			pthread_mutex_unlock(&st->lock);
			return (ssize_t)n;
		}
		if (st->limit && st->sent >= st->limit) {
			pthread_mutex_unlock(&st->lock);
			return API_STREAM_END;
		}
		if (!st->greeted) {
			st->greeted = true;
			st->cur = xstrdup(": silod event stream\n\n");
		} else if (st->dropped) {
			st->cur = xasprintf("event: overflow\ndata: {\"dropped\":%" PRIu64 "}\n\n", st->dropped);
			st->dropped = 0;
		} else if (st->qn) {
			st->cur = st->q[st->qh];
			st->qh = (st->qh + 1) % EVENT_QUEUE_MAX;
			st->qn--;
			st->sent++;
		} else if (now_mono_ns() / 1000000 - st->last_write_ms > KEEPALIVE_MS) {
			st->cur = xstrdup(": keepalive\n\n");
		}
		if (st->cur) {
			st->cur_len = strlen(st->cur);
			st->cur_off = 0;
			continue;
		}
		if (!stream_idle(st->ctx, st->fd, &st->cond, &st->lock))
			return API_STREAM_ABORT;
	}
}

static void ev_free(void *cls)
{
	ev_stream *st = cls;
	if (st->sub >= 0)
		manager_unsubscribe(st->ctx->m, st->sub);   /* no callback runs after this returns */
	for (size_t i = 0; i < st->qn; i++)
		free(st->q[(st->qh + i) % EVENT_QUEUE_MAX]);
	free(st->cur);
	pthread_mutex_destroy(&st->lock);
	pthread_cond_destroy(&st->cond);
	free(st);
}

/* ?types=a,b: the mask of the event types named. */
static int event_types(const char *types, uint32_t *mask, silo_error *err)
{
	*mask = 0;
	char *dup = xstrdup(types), *save = NULL;
	int rc = 0;
	for (char *t = strtok_r(dup, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save)) {
		int found = -1;
		for (int i = 0; i < MGR_EV__COUNT; i++)
			if (!strcmp(t, mgr_event_name((mgr_event_type)i)))
				found = i;
		if (found < 0)
			rc = silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				       "query parameter types: unknown event type '%.32s' (expected ready, spawned, "
				       "terminated, state-change, health-warning, security-violation, error)",
				       t);
		else
			*mask |= 1u << found;
	}
	free(dup);
	return rc;
}

int h_events(api_req *q, api_reply *r, silo_error *err)
{
	ev_stream *st = xcalloc(1, sizeof *st);
	st->ctx = q->ctx;
	st->sub = -1;
	st->fd = q->peer_fd;
	st->type_mask = (1u << MGR_EV__COUNT) - 1;
	stream_sync_init(&st->lock, &st->cond);
	const char *types = api_query(q, "types");
	if (api_query_uint(q, "limit", EVENT_LIMIT_MAX, &st->limit, err) < 0 ||
	    authz_events(q->ctx->authz, q->ctx->m, q->who.tok, q->who.actor, api_query(q, "sandbox"), st->filter_id,
			 err) < 0 ||
	    (types && event_types(types, &st->type_mask, err) < 0)) {
		ev_free(st);
		return -1;
	}
	st->last_write_ms = now_mono_ns() / 1000000;
	st->sub = manager_subscribe(q->ctx->m, ev_cb, st);
	return api_reply_stream(r, API_REPLY_SSE,
				&(api_stream){.read = ev_read, .free = ev_free, .ctx = st, .block = EVENT_BLOCK});
}
