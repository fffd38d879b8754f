/* SPDX-License-Identifier: Apache-2.0
 * Host side of the agent channel: handshake, a reader thread that
 * demultiplexes frames by task id, a heartbeat thread, and blocking
 * operations any number of threads may run at once.
 *
 * Locking: c->lock guards the task list, task state and connection state;
 * c->wlock serializes frame writes. The reader thread never blocks on a
 * consumer: exec output is queued per task, and the queue is bounded by the
 * task's window because the agent may only send against credit, which the
 * host grants as the consumer takes data (docs/protocol.md "Flow control";
 * output beyond the credit is a violation). Output callbacks therefore run on
 * the thread that drives the task (chan_exec_wait, chan_exec_stdin), without
 * c->lock held and one at a time per task (ctask.delivering), so a slow
 * consumer stalls only its own task. Likewise stdin is sent only against the
 * credit the agent grants. An exec task is freed only by its waiter, once its
 * EXIT arrived and its queue is empty, and no other thread is inside it.
 */
#include "core/channel.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/util.h"
#include "wire.h"

#define WRITE_TIMEOUT_MS 30000
/* chan_opts.resync: a hello unanswered this long is sent again */
#define HELLO_RESEND_MS 500

enum ctask_kind { CT_EXEC, CT_FWRITE, CT_FREAD, CT_STAT, CT_LIST, CT_SIMPLE, CT_PING, CT_WATCH };

/* Output received for an exec task and not yet taken by its consumer. */
typedef struct ochunk {
	struct ochunk *next;
	int stream;
	size_t len;
	uint8_t data[];
} ochunk;

typedef struct ctask {
	struct ctask *next;
	uint32_t id;
	enum ctask_kind kind;
	bool done, failed;
	silo_error err;
	/* exec */
	chan_output_cb cb;
	void *ud;
	exec_result res;
	/* exec output flow control: out_credit + queued + to_grant (+ a chunk being
	 * delivered) == win, so the queue never holds more than the window */
	uint32_t win;
	uint64_t out_credit;   /* output bytes the agent may still send */
	uint32_t to_grant;     /* taken by the consumer, not yet credited back */
	ochunk *qhead, *qtail;
	size_t qoff;           /* bytes of qhead already taken (chan_exec_read) */
	bool delivering;       /* a thread runs the callback on a chunk taken off the queue */
	bool discarding;       /* output is dropped (chan_exec_discard) */
	bool pull;             /* output only through chan_exec_read (exec_req.pull; tcp tasks): never to cb */
	bool started;          /* exec/tcp: the agent sent started: pid is the guest pid (tcp: 0) */
	uint32_t pid;
	/* exec stdin: sent only against the agent's credit */
	uint64_t in_credit;
	const uint8_t *in_src; /* pending stdin (the caller's buffer) */
	size_t in_left;
	bool in_eof;           /* send eof once in_src is out */
	bool in_sending;       /* a thread is writing a stdin frame */
	bool in_busy;          /* a chan_exec_stdin call owns in_src */
	/* fread */
	int dst_fd;
	mp_buf mem;       /* dst_fd < 0: collect in memory */
	uint64_t max, got;
	uint64_t last_ns;  /* last frame for this task (or request sent): idle timeout */
	/* stat / list */
	file_stat st;
	char *link;            /* stat: symlink target */
	dir_entry *ents;
	size_t n_ents, cap_ents;
	uint32_t depth;        /* list: components an entry name may have */
	uint64_t list_max;
	size_t ent_bytes;
	bool truncated;
	/* watch: established (ok) until done; events queued until taken */
	bool ready;
	watch_event *wq;
	size_t wn, wcap, wbytes;
	uint64_t wlost;
} ctask;

struct chan {
	int fd;
	chan_opts opts;
	char vm_id[SILO_ID_MAX];
	pthread_mutex_t lock, wlock;
	pthread_cond_t cond;      /* task completion, disconnect */
	pthread_cond_t hb_cond;   /* wakes the heartbeat thread on close */
	ctask *tasks;
	uint32_t next_id;
	bool connected, closing;
	silo_error dead;          /* why the channel died */
	pthread_t reader, hb;
	bool have_reader, have_hb;
	uint64_t last_rx_ns;
	bool paused;              /* the sandbox is frozen: no pings, no silence check */
	uint64_t tx, rx;
	uint8_t *rbuf;
	size_t rlen;
	unsigned spare_hello_oks; /* answers to repeated hellos (resync) that may still arrive */
};

/* ---------------- low-level I/O ---------------- */

static int send_frame(chan *c, const wire_msg *m, silo_error *err)
{
	mp_buf b;
	mp_buf_init(&b);
	if (!wire_encode(&b, m)) {
		mp_buf_free(&b);
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, EMSGSIZE, c->vm_id, "%s message too large",
				    wire_type_name(m->type));
	}
	pthread_mutex_lock(&c->wlock);
	size_t off = 0;
	int rc = 0;
	uint64_t deadline = now_mono_ns() + (uint64_t)WRITE_TIMEOUT_MS * 1000000ull;
	while (off < b.len) {
		pthread_mutex_lock(&c->lock);
		bool up = c->connected;
		pthread_mutex_unlock(&c->lock);
		if (!up) {
			rc = -1;
			break;
		}
		ssize_t n = send(c->fd, b.p + off, b.len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == ENOTSOCK)
			n = write(c->fd, b.p + off, b.len - off);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (now_mono_ns() > deadline) {
				errno = ETIMEDOUT;
				rc = -1;
				break;
			}
			struct pollfd p = {.fd = c->fd, .events = POLLOUT};
			poll(&p, 1, 100);
			continue;
		}
		rc = -1;
		break;
	}
	int e = errno;
	pthread_mutex_unlock(&c->wlock);
	if (rc == 0) {
		pthread_mutex_lock(&c->lock);
		c->tx += b.len;
		pthread_mutex_unlock(&c->lock);
	}
	mp_buf_free(&b);
	if (rc < 0)
		return silo_fail_vm(err, SILO_ERR_VSOCK_DISCONNECTED, e, c->vm_id, "send %s to agent",
				    wire_type_name(m->type));
	return 0;
}

/* Read what is available into rbuf. 1 = got bytes, 0 = timeout, -1 = EOF/error. */
static int fill(chan *c, int timeout_ms)
{
	size_t cap = WIRE_MAX_FRAME + 4;
	if (c->rlen == cap)
		return 1;
	struct pollfd p = {.fd = c->fd, .events = POLLIN};
	int r = poll(&p, 1, timeout_ms);
	if (r < 0)
		return errno == EINTR ? 0 : -1;
	if (r == 0)
		return 0;
	ssize_t n = read(c->fd, c->rbuf + c->rlen, cap - c->rlen);
	if (n < 0)
		return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
	if (n == 0)
		return -1;
	c->rlen += (size_t)n;
	pthread_mutex_lock(&c->lock);
	c->rx += (uint64_t)n;
	c->last_rx_ns = now_mono_ns();
	pthread_mutex_unlock(&c->lock);
	return 1;
}

/* Extract one decoded frame if complete. 1 = msg, 0 = need more, -1 = violation (why). */
static int next_frame(chan *c, wire_msg *m, char *why, size_t whylen)
{
	if (c->rlen < 4)
		return 0;
	uint32_t len;
	if (!wire_frame_len(c->rbuf, &len)) {
		snprintf(why, whylen, "frame length %u out of range 1..%u",
			 (unsigned)c->rbuf[0] << 24 | (unsigned)c->rbuf[1] << 16 | (unsigned)c->rbuf[2] << 8 |
				 c->rbuf[3],
			 WIRE_MAX_FRAME);
		return -1;
	}
	if (c->rlen - 4 < len)
		return 0;
	char err[160];
	bool ok = wire_decode(c->rbuf + 4, len, m, err, sizeof err);
	if (!ok) {
		wire_msg_free(m);
		snprintf(why, whylen, "malformed frame: %s", err);
		memmove(c->rbuf, c->rbuf + 4 + len, c->rlen - 4 - len);
		c->rlen -= 4 + len;
		return -1;
	}
	return 1;
}

/* After handling m (whose data points into rbuf), drop its bytes. */
static void consume_frame(chan *c)
{
	uint32_t len;
	wire_frame_len(c->rbuf, &len);
	memmove(c->rbuf, c->rbuf + 4 + len, c->rlen - 4 - len);
	c->rlen -= 4 + len;
}

/* ---------------- tasks ---------------- */

static ctask *task_add(chan *c, enum ctask_kind kind)
{
	ctask *t = xcalloc(1, sizeof *t);
	t->kind = kind;
	t->dst_fd = -1;
	mp_buf_init(&t->mem);
	pthread_mutex_lock(&c->lock);
	do {
		t->id = ++c->next_id;
	} while (t->id == 0);
	t->next = c->tasks;
	t->last_ns = now_mono_ns();
	c->tasks = t;
	if (!c->connected) {
		t->done = t->failed = true;
		t->err = c->dead;
	}
	pthread_mutex_unlock(&c->lock);
	return t;
}

static ctask *task_find_locked(chan *c, uint32_t id)
{
	for (ctask *t = c->tasks; t; t = t->next)
		if (t->id == id)
			return t;
	return NULL;
}

static void queue_free(ctask *t)
{
	while (t->qhead) {
		ochunk *ch = t->qhead;
		t->qhead = ch->next;
		free(ch);
	}
	t->qtail = NULL;
	t->qoff = 0;
}

static void task_free_entries(ctask *t)
{
	dir_entries_free(t->ents, t->n_ents);
	t->ents = NULL;
	t->n_ents = t->cap_ents = 0;
	watch_events_free(t->wq, t->wn);
	t->wq = NULL;
	t->wn = t->wcap = 0;
	free(t->link);
	t->link = NULL;
}

static void task_remove(chan *c, ctask *t)
{
	pthread_mutex_lock(&c->lock);
	for (ctask **pp = &c->tasks; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	pthread_mutex_unlock(&c->lock);
	task_free_entries(t);
	queue_free(t);
	mp_buf_free(&t->mem);
	free(t);
}

static void task_fail_locked(ctask *t, const silo_error *e)
{
	if (t->done)
		return;
	t->done = t->failed = true;
	t->err = *e;
}

/* Wait until t is done or timeout_ms (<0 = forever). 0 done, -1 timeout. */
static int task_wait(chan *c, ctask *t, int timeout_ms)
{
	uint64_t deadline = mono_deadline(timeout_ms);
	pthread_mutex_lock(&c->lock);
	int rc = 0;
	while (!t->done) {
		if (cond_wait_deadline(&c->cond, &c->lock, deadline) == ETIMEDOUT) {
			rc = t->done ? 0 : -1;
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* Wait until t is done, failing it with TIMEOUT when the agent sent nothing
 * for it for op_idle_ms. 0 done (possibly failed), -1 idle timeout (err set). */
static int task_wait_idle(chan *c, ctask *t, const char *what, silo_error *err)
{
	uint64_t idle = (uint64_t)c->opts.op_idle_ms * 1000000ull;
	pthread_mutex_lock(&c->lock);
	while (!t->done) {
		cond_wait_ms(&c->cond, &c->lock, 100);
		if (!t->done && now_mono_ns() - t->last_ns > idle) {
			pthread_mutex_unlock(&c->lock);
			return silo_fail_vm(err, SILO_ERR_TIMEOUT, ETIMEDOUT, c->vm_id,
					    "the agent sent nothing for %s in %d ms (stuck or hostile agent)", what,
					    c->opts.op_idle_ms);
		}
	}
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* ---------------- connection death ---------------- */

static void mark_dead(chan *c, silo_code code, const char *why, bool violation)
{
	pthread_mutex_lock(&c->lock);
	if (!c->connected) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	c->connected = false;
	silo_fail_vm(&c->dead, code, 0, c->vm_id, "agent channel %s: %s",
		     violation ? "protocol violation" : "disconnected", why);
	for (ctask *t = c->tasks; t; t = t->next)
		task_fail_locked(t, &c->dead);
	pthread_cond_broadcast(&c->cond);
	pthread_cond_broadcast(&c->hb_cond);
	bool closing = c->closing;
	pthread_mutex_unlock(&c->lock);
	shutdown(c->fd, SHUT_RDWR);
	if (closing)
		return;
	if (violation) {
		log_warn("sandbox %s: agent protocol violation: %s", c->vm_id, why);
		if (c->opts.on_violation)
			c->opts.on_violation(c->opts.ud, why);
	}
	if (c->opts.on_disconnect)
		c->opts.on_disconnect(c->opts.ud);
}

/* ---------------- dispatch (reader thread) ---------------- */

/* The agent's errno decides the code: a missing path is FILE_NOT_FOUND (404
 * through silod), an existing one where none may be is CONFLICT, the rest
 * IO_ERROR; errno and the agent's message are kept. */
static void agent_error(silo_error *e, const char *vm_id, const wire_msg *m)
{
	int code = (m->present & WF_CODE) && m->code > 0 && m->code < 4096 ? (int)m->code : EIO;
	silo_code sc = code == ENOENT ? SILO_ERR_FILE_NOT_FOUND : code == EEXIST ? SILO_ERR_CONFLICT : SILO_ERR_IO_ERROR;
	silo_fail_vm(e, sc, code, vm_id, "agent: %s", m->msg ? m->msg : "error");
}

/* A name the agent reported below a directory: relative, 1..max_parts
 * components, none empty, "." or "..", at most WIRE_MAX_PATH bytes. */
static bool valid_rel_name(const char *n, uint32_t max_parts)
{
	if (!n[0] || n[0] == '/' || strlen(n) > WIRE_MAX_PATH)
		return false;
	uint32_t parts = 0;
	for (const char *p = n; *p;) {
		size_t k = strcspn(p, "/");
		if (k == 0 || k > 255 || (k == 1 && p[0] == '.') || (k == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (++parts > max_parts)
			return false;
		p += k;
		if (*p == '/' && !*++p)
			return false;   /* trailing slash */
	}
	return true;
}

/* Returns NULL on success or a violation description. */
static const char *dispatch(chan *c, const wire_msg *m)
{
	switch (m->type) {
	case WM_PONG:
		if (m->id == 0)
			return NULL; /* heartbeat: liveness is tracked by last_rx_ns */
		break;
	case WM_DNSQ:
		/* the guest's resolver asks (docs/network.md): not a task */
		if (m->id != 0 || !(m->present & WF_N) || !(m->present & WF_DATA) || m->data_len > WIRE_MAX_DNS)
			return "dnsq without id 0, a tag and at most 4096 bytes of data";
		if (c->opts.on_dns)
			c->opts.on_dns(c->opts.ud, m->n, m->data, m->data_len);
		return NULL;
	case WM_HELLO_OK:
		pthread_mutex_lock(&c->lock);
		bool spare = m->id == 0 && c->spare_hello_oks > 0;
		if (spare)
			c->spare_hello_oks--;
		pthread_mutex_unlock(&c->lock);
		return spare ? NULL : "unexpected message type from agent";
	case WM_STARTED: case WM_OUTPUT: case WM_EXIT: case WM_FDATA: case WM_STAT_R:
	case WM_LIST_R: case WM_OK: case WM_ERROR: case WM_CREDIT: case WM_WATCH_EV:
		break;
	default:
		return "unexpected message type from agent";
	}
	pthread_mutex_lock(&c->lock);
	ctask *t = task_find_locked(c, m->id);
	if (!t || t->done) {
		pthread_mutex_unlock(&c->lock);
		if (m->type == WM_ERROR && m->id == 0)
			log_warn("sandbox %s: agent error: %s", c->vm_id, m->msg ? m->msg : "?");
		return NULL; /* late frame for an abandoned task */
	}
	t->last_ns = now_mono_ns();
	const char *viol = NULL;
	bool wake = true;   /* output into a non-empty queue: its consumer is awake already */
	switch (m->type) {
	case WM_ERROR:
		agent_error(&t->err, c->vm_id, m);
		t->done = t->failed = true;
		break;
	case WM_STARTED:
		if (t->kind != CT_EXEC || t->started)
			viol = "started for a non-exec task, or twice";
		t->started = true;
		t->pid = m->pid;
		break;
	case WM_OUTPUT:
		if (t->kind != CT_EXEC) {
			viol = "output for a non-exec task";
		} else if (m->stream != 1 && m->stream != 2) {
			viol = "output stream must be 1 or 2";
		} else if (m->data_len > t->out_credit) {
			viol = "output beyond the granted window";
		} else {
			t->out_credit -= m->data_len;
			wake = !t->qhead;
			if (m->data_len && !t->discarding) {
				ochunk *ch = xmalloc(sizeof *ch + m->data_len);
				ch->next = NULL;
				ch->stream = (int)m->stream;
				ch->len = m->data_len;
				memcpy(ch->data, m->data, m->data_len);
				if (t->qtail)
					t->qtail->next = ch;
				else
					t->qhead = ch;
				t->qtail = ch;
			}
		}
		break;
	case WM_CREDIT:
		if (t->kind != CT_EXEC)
			viol = "credit for a non-exec task";
		else if (!(m->present & WF_N) || m->n == 0 || t->in_credit + m->n > WIRE_STDIN_WINDOW)
			viol = "stdin credit beyond the window";
		else
			t->in_credit += m->n;
		break;
	case WM_EXIT:
		if (t->kind != CT_EXEC) {
			viol = "exit for a non-exec task";
			break;
		}
		t->res.exit_code = (m->present & WF_CODE) && m->code >= 0 && m->code <= 255 ? (int)m->code : -1;
		t->res.signal = (m->present & WF_SIG) && m->sig > 0 && m->sig < 128 ? (int)m->sig : 0;
		t->res.timed_out = m->timed_out;
		t->res.oom_killed = m->oom;
		t->res.duration_ms = m->ms;
		if (t->res.exit_code < 0 && !t->res.signal)
			viol = "exit without a valid code";
		t->done = true;
		break;
	case WM_FDATA:
		if (t->kind != CT_FREAD) {
			viol = "file data for a non-read task";
			break;
		}
		if (t->max && t->got + m->data_len > t->max) {
			silo_fail_vm(&t->err, SILO_ERR_IO_ERROR, EFBIG, c->vm_id,
				     "file larger than the limit of %llu bytes", (unsigned long long)t->max);
			t->done = t->failed = true;
			break;
		}
		t->got += m->data_len;
		if (t->dst_fd >= 0) {
			if (m->data_len && write_all(t->dst_fd, m->data, m->data_len) < 0) {
				silo_fail_vm(&t->err, SILO_ERR_IO_ERROR, errno, c->vm_id, "write local file");
				t->done = t->failed = true;
				break;
			}
		} else {
			mp_put_raw(&t->mem, m->data, m->data_len);
		}
		if (m->eof)
			t->done = true;
		break;
	case WM_STAT_R:
		if (t->kind != CT_STAT) {
			viol = "stat reply for a non-stat task";
			break;
		}
		t->st.exists = m->exists;
		t->st.size = m->size;
		t->st.mode = m->mode;
		t->st.mtime_s = m->mtime;
		t->st.uid = (uint32_t)m->uid;
		t->st.gid = (uint32_t)m->gid;
		if (m->link && !t->link)
			t->link = xstrdup(m->link);
		t->done = true;
		break;
	case WM_LIST_R:
		if (t->kind != CT_LIST) {
			viol = "list reply for a non-list task";
			break;
		}
		if (t->n_ents + m->n_ents > t->list_max) {
			viol = "more directory entries than the listing's max";
			break;
		}
		for (uint32_t i = 0; i < m->n_ents && !viol; i++) {
			const wire_dirent *we = &m->ents[i];
			if (!valid_rel_name(we->name, t->depth)) {
				viol = "invalid directory entry name";
				break;
			}
			t->ent_bytes += strlen(we->name) + (we->link ? strlen(we->link) : 0) + 1;
			if (t->ent_bytes > CHAN_LIST_MAX_BYTES) {
				silo_fail_vm(&t->err, SILO_ERR_RESOURCE_EXCEEDED, 0, c->vm_id,
					     "the listing holds more than %u bytes of names (list with a smaller depth or max)",
					     CHAN_LIST_MAX_BYTES);
				t->done = t->failed = true;
				break;
			}
			if (t->n_ents == t->cap_ents) {
				t->cap_ents = t->cap_ents ? t->cap_ents * 2 : 64;
				t->ents = xrealloc(t->ents, t->cap_ents * sizeof *t->ents);
			}
			dir_entry *e = &t->ents[t->n_ents++];
			e->name = xstrdup(we->name);
			e->link = we->link ? xstrdup(we->link) : NULL;
			e->st = (file_stat){.exists = true, .size = we->size, .mode = we->mode,
					    .mtime_s = we->mtime, .uid = we->uid, .gid = we->gid};
		}
		if (m->eof && !t->done) {
			t->truncated = m->flag;
			t->done = true;
		}
		break;
	case WM_WATCH_EV:
		if (t->kind != CT_WATCH || !t->ready) {
			viol = "watch event for a task that is not an established watch";
			break;
		}
		for (uint32_t i = 0; i < m->n_evs; i++) {
			const wire_event *we = &m->evs[i];
			if (!valid_rel_name(we->name, WIRE_MAX_PATH)) {
				viol = "invalid watch event name";
				break;
			}
			size_t nl = strlen(we->name);
			if (t->wn >= CHAN_WATCH_QUEUE || t->wbytes + nl > CHAN_WATCH_QUEUE_BYTES) {
				t->wlost++;   /* nobody takes them: dropped and counted, as inotify does */
				continue;
			}
			if (t->wn == t->wcap) {
				t->wcap = t->wcap ? t->wcap * 2 : 64;
				t->wq = xrealloc(t->wq, t->wcap * sizeof *t->wq);
			}
			t->wq[t->wn++] = (watch_event){.kind = (int)we->kind, .name = xstrdup(we->name)};
			t->wbytes += nl;
		}
		if (m->ovf)
			t->wlost++;
		if (m->eof)
			t->done = true;
		break;
	case WM_PONG:
		if (t->kind != CT_PING)
			viol = "pong for a non-ping task";
		t->done = true;
		break;
	case WM_OK:
		if (t->kind == CT_WATCH && !t->ready)
			t->ready = true;
		else if (t->kind != CT_FWRITE && t->kind != CT_SIMPLE)
			viol = "ok for a task that expects data";
		else
			t->done = true;
		break;
	default:
		break;
	}
	if (viol) {
		/* the task must fail with the violation, not complete with what the bad frame said */
		silo_fail_vm(&t->err, SILO_ERR_PROTOCOL, 0, c->vm_id, "agent protocol violation: %s", viol);
		t->done = t->failed = true;
		wake = true;
	}
	if (wake)
		pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return viol;
}

/* Every way a channel stops (mark_dead, chan_close) shuts the socket down, which wakes
 * the reader's poll at once; the timeout is only a safety net. At 200 ms it woke every
 * idle sandbox's reader five times a second (1000 live: 5000 wakeups/s in silod), and it
 * hid that frames the handshake had read along with its reply waited for the next poll. */
#define READER_POLL_MS 5000

static void *reader_main(void *arg)
{
	chan *c = arg;
	char why[256];
	for (;;) {
		pthread_mutex_lock(&c->lock);
		bool stop = c->closing || !c->connected;
		pthread_mutex_unlock(&c->lock);
		if (stop)
			break;
		/* frames already buffered first: the handshake may have read past its reply */
		for (;;) {
			wire_msg m;
			int f = next_frame(c, &m, why, sizeof why);
			if (f == 0)
				break;
			if (f < 0) {
				mark_dead(c, SILO_ERR_PROTOCOL, why, true);
				return NULL;
			}
			const char *viol = dispatch(c, &m);
			wire_msg_free(&m);
			consume_frame(c);
			if (viol) {
				mark_dead(c, SILO_ERR_PROTOCOL, viol, true);
				return NULL;
			}
		}
		int r = fill(c, READER_POLL_MS);
		if (r < 0) {
			mark_dead(c, SILO_ERR_VSOCK_DISCONNECTED, "connection closed by the agent", false);
			break;
		}
	}
	return NULL;
}

static void *heartbeat_main(void *arg)
{
	chan *c = arg;
	uint64_t interval = (uint64_t)c->opts.heartbeat_ms * 1000000ull;
	for (;;) {
		uint64_t deadline = now_mono_ns() + interval;
		pthread_mutex_lock(&c->lock);
		while (!c->closing && c->connected && cond_wait_deadline(&c->hb_cond, &c->lock, deadline) != ETIMEDOUT)
			;
		bool stop = c->closing || !c->connected;
		uint64_t silent = now_mono_ns() - c->last_rx_ns;
		bool paused = c->paused;
		pthread_mutex_unlock(&c->lock);
		if (stop)
			break;
		if (paused)
			continue;
		if (silent > 3 * interval) {
			char why[96];
			snprintf(why, sizeof why, "no frame from the agent for %llu ms (heartbeat %d ms)",
				 (unsigned long long)(silent / 1000000ull), c->opts.heartbeat_ms);
			mark_dead(c, SILO_ERR_VSOCK_DISCONNECTED, why, false);
			break;
		}
		wire_msg p = {.type = WM_PING, .id = 0, .present = WF_MS, .ms = now_realtime_ms()};
		send_frame(c, &p, NULL);
	}
	return NULL;
}

/* ---------------- open / close ---------------- */

chan *chan_open(int fd, const chan_opts *opts, agent_info *info, silo_error *err)
{
	chan *c = xcalloc(1, sizeof *c);
	c->fd = fd;
	if (opts)
		c->opts = *opts;
	if (c->opts.handshake_timeout_ms <= 0)
		c->opts.handshake_timeout_ms = 5000;
	if (c->opts.heartbeat_ms < 0)
		c->opts.heartbeat_ms = 0;
	if (c->opts.op_idle_ms <= 0)
		c->opts.op_idle_ms = 30000;
	snprintf(c->vm_id, sizeof c->vm_id, "%s", c->opts.vm_id ? c->opts.vm_id : "");
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->wlock, NULL);
	cond_init_monotonic(&c->cond);
	cond_init_monotonic(&c->hb_cond);
	c->rbuf = xmalloc(WIRE_MAX_FRAME + 4);
	c->connected = true;
	c->last_rx_ns = now_mono_ns();
	set_nonblock(fd, true);
	set_cloexec(fd, true);

	/* fresh host entropy for the guest's RNG: a sandbox restored from a snapshot
	 * (a template, a fork) shares its RNG state with every other copy; the agent
	 * credits these bytes and forces a reseed (docs/protocol.md) */
	uint8_t seed[WIRE_HELLO_SEED];
	wire_msg hello = {.type = WM_HELLO, .id = 0, .present = WF_V, .v = WIRE_VERSION};
	if (getrandom(seed, sizeof seed, 0) == (ssize_t)sizeof seed) {
		hello.present |= WF_DATA;
		hello.data = seed;
		hello.data_len = sizeof seed;
	}
	if (send_frame(c, &hello, err) < 0)
		goto fail;
	uint64_t deadline = now_mono_ns() + (uint64_t)c->opts.handshake_timeout_ms * 1000000ull;
	uint64_t rehello_at = now_mono_ns() + HELLO_RESEND_MS * 1000000ull;
	for (;;) {
		wire_msg m;
		char why[256];
		int f = next_frame(c, &m, why, sizeof why);
		if (f < 0 && c->opts.resync) {
			/* the tail of the previous session's stream: a new connection starts clean */
			silo_fail_vm(err, SILO_ERR_VSOCK_DISCONNECTED, 0, c->vm_id,
				     "handshake: bytes of an earlier session (%s); reconnect", why);
			goto fail;
		}
		if (f < 0) {
			silo_fail_vm(err, SILO_ERR_PROTOCOL, 0, c->vm_id, "handshake: %s", why);
			goto fail;
		}
		if (f > 0 && c->opts.resync && m.type == WM_ERROR && m.id == 0 &&
		    !((m.present & WF_CODE) && m.code == EPROTONOSUPPORT)) {
			/* The agent could not parse what it got: the rest of an earlier
			 * session's frame before our hello. It hung up and listens again. */
			wire_msg_free(&m);
			consume_frame(c);
			rehello_at = now_mono_ns();
			continue;
		}
		if (f > 0 && (m.id != 0 || m.type == WM_PONG)) {
			/* Stale frames of an earlier session on the same device (the
			 * agent resyncs on our hello): skip; the deadline bounds this. */
			wire_msg_free(&m);
			consume_frame(c);
			continue;
		}
		if (f > 0) {
			if (m.type == WM_ERROR) {
				silo_fail_vm(err, SILO_ERR_PROTOCOL, 0, c->vm_id,
					     "handshake refused by agent: %s (host speaks protocol %d; the agent is "
					     "from another silo build)",
					     m.msg ? m.msg : "?", WIRE_VERSION);
				wire_msg_free(&m);
				goto fail;
			}
			if (m.type == WM_HELLO_OK && (m.present & WF_V) && m.v != WIRE_VERSION) {
				silo_fail_vm(err, SILO_ERR_PROTOCOL, 0, c->vm_id,
					     "handshake: agent speaks protocol %u, host speaks protocol %d (the agent is "
					     "from another silo build)",
					     m.v, WIRE_VERSION);
				wire_msg_free(&m);
				goto fail;
			}
			if (m.type != WM_HELLO_OK || !(m.present & WF_V)) {
				silo_fail_vm(err, SILO_ERR_PROTOCOL, 0, c->vm_id,
					     "handshake: expected hello_ok version %d, got %s version %u", WIRE_VERSION,
					     wire_type_name(m.type), m.v);
				wire_msg_free(&m);
				goto fail;
			}
			if (info) {
				memset(info, 0, sizeof *info);
				info->proto_version = m.v;
				snprintf(info->agent_version, sizeof info->agent_version, "%s", m.agent ? m.agent : "");
				snprintf(info->kernel, sizeof info->kernel, "%s", m.kernel ? m.kernel : "");
				info->pid = m.pid;
			}
			wire_msg_free(&m);
			consume_frame(c);
			break;
		}
		uint64_t now = now_mono_ns();
		if (now >= deadline) {
			silo_fail_vm(err, SILO_ERR_TIMEOUT, ETIMEDOUT, c->vm_id, "handshake: no answer from the agent in %d ms",
				     c->opts.handshake_timeout_ms);
			goto fail;
		}
		if (c->opts.resync && now >= rehello_at) {
			/* A hello that reached a closed port was dropped by the guest: say it again.
			 * The agent answers each one (a hello on an open session resyncs it). */
			if (send_frame(c, &hello, err) < 0)
				goto fail;
			c->spare_hello_oks++;
			rehello_at = now + HELLO_RESEND_MS * 1000000ull;
		}
		int r = fill(c, (int)MIN((deadline - now) / 1000000ull + 1, 200ull));
		if (r < 0) {
			silo_fail_vm(err, SILO_ERR_VSOCK_DISCONNECTED, errno, c->vm_id,
				     "handshake: agent closed the connection");
			goto fail;
		}
	}
	if (pthread_create(&c->reader, NULL, reader_main, c) != 0) {
		silo_fail_vm(err, SILO_ERR_INTERNAL, errno, c->vm_id, "start channel reader");
		goto fail;
	}
	c->have_reader = true;
	if (c->opts.heartbeat_ms > 0) {
		if (pthread_create(&c->hb, NULL, heartbeat_main, c) == 0)
			c->have_hb = true;
	}
	return c;
fail:
	c->closing = true;
	chan_close(c);
	return NULL;
}

void chan_close(chan *c)
{
	if (!c)
		return;
	signal_stop(&c->lock, &c->hb_cond, &c->closing);
	mark_dead(c, SILO_ERR_VSOCK_DISCONNECTED, "channel closed by the host", false);
	if (c->have_reader)
		pthread_join(c->reader, NULL);
	if (c->have_hb)
		pthread_join(c->hb, NULL);
	while (c->tasks)
		task_remove(c, c->tasks);
	close(c->fd);
	free(c->rbuf);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->wlock);
	pthread_cond_destroy(&c->cond);
	pthread_cond_destroy(&c->hb_cond);
	free(c);
}

bool chan_is_connected(chan *c)
{
	pthread_mutex_lock(&c->lock);
	bool up = c->connected;
	pthread_mutex_unlock(&c->lock);
	return up;
}

void chan_stats(chan *c, uint64_t *tx_bytes, uint64_t *rx_bytes)
{
	pthread_mutex_lock(&c->lock);
	if (tx_bytes)
		*tx_bytes = c->tx;
	if (rx_bytes)
		*rx_bytes = c->rx;
	pthread_mutex_unlock(&c->lock);
}

/* Send a request for task t and wait for completion; removes t. */
static int roundtrip(chan *c, ctask *t, wire_msg *req, int timeout_ms, silo_error *err)
{
	req->id = t->id;
	if (!t->done && send_frame(c, req, err) < 0) {
		task_remove(c, t);
		return -1;
	}
	if (timeout_ms < 0) {
		if (task_wait_idle(c, t, wire_type_name(req->type), err) < 0) {
			task_remove(c, t);
			return -1;
		}
	} else if (task_wait(c, t, timeout_ms) < 0) {
		task_remove(c, t);
		return silo_fail_vm(err, SILO_ERR_TIMEOUT, ETIMEDOUT, c->vm_id, "agent did not answer %s within %d ms",
				    wire_type_name(req->type), timeout_ms);
	}
	if (t->failed) {
		if (err)
			*err = t->err;
		task_remove(c, t);
		return -1;
	}
	return 0;
}

int chan_ping(chan *c, int timeout_ms, silo_error *err)
{
	ctask *t = task_add(c, CT_PING);
	wire_msg m = {.type = WM_PING, .present = WF_MS, .ms = now_realtime_ms()};
	if (roundtrip(c, t, &m, timeout_ms, err) < 0)
		return -1;
	task_remove(c, t);
	return 0;
}

/* ---------------- exec ---------------- */

static size_t count_strv(char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

/* The consumer took n output bytes: credit them back to the agent, a quarter
 * window at a time. c->lock held; dropped while sending. */
static void grant_locked(chan *c, ctask *t, size_t n)
{
	t->to_grant += (uint32_t)n;
	if (t->done || t->discarding || t->to_grant < t->win / 4)
		return;
	wire_msg m = {.type = WM_CREDIT, .id = t->id, .present = WF_N, .n = t->to_grant};
	t->out_credit += t->to_grant; /* before the agent can act on it */
	t->to_grant = 0;
	pthread_mutex_unlock(&c->lock);
	silo_error e;
	int rc = send_frame(c, &m, &e);
	pthread_mutex_lock(&c->lock);
	if (rc < 0)
		task_fail_locked(t, &e); /* the credit is lost: the task could never finish */
}

/* Send one piece of pending stdin if the agent's credit allows. c->lock held;
 * dropped while sending. true if a frame went out (or failed). */
static bool step_stdin_locked(chan *c, ctask *t)
{
	if (t->in_sending || t->done || (!t->in_left && !t->in_eof))
		return false;
	size_t n = MIN(MIN(t->in_left, (size_t)t->in_credit), (size_t)WIRE_CHUNK);
	if (n == 0 && t->in_left)
		return false; /* wait for credit */
	bool eof = t->in_eof && n == t->in_left;
	wire_msg m = {.type = WM_STDIN, .id = t->id, .present = WF_DATA | WF_EOF, .data = t->in_src, .data_len = n,
		      .eof = eof};
	if (n)
		t->in_src += n;
	t->in_left -= n;
	t->in_credit -= n;
	if (eof)
		t->in_eof = false;
	t->in_sending = true;
	pthread_mutex_unlock(&c->lock);
	silo_error e;
	int rc = send_frame(c, &m, &e);
	pthread_mutex_lock(&c->lock);
	t->in_sending = false;
	if (rc < 0)
		task_fail_locked(t, &e);
	pthread_cond_broadcast(&c->cond);
	return true;
}

/* Hand the oldest queued output chunk to the task's callback (NULL: drop it)
 * on this thread. c->lock held; dropped during the callback. */
static bool step_deliver_locked(chan *c, ctask *t, size_t *delivered)
{
	if (!t->qhead || t->delivering || t->pull)
		return false;
	ochunk *ch = t->qhead;
	t->qhead = ch->next;
	if (!t->qhead)
		t->qtail = NULL;
	size_t off = t->qoff, n = ch->len - off;
	t->qoff = 0;
	t->delivering = true;
	chan_output_cb cb = t->cb;
	void *ud = t->ud;
	pthread_mutex_unlock(&c->lock);
	if (cb)
		cb(ud, ch->stream, ch->data + off, n);
	free(ch);
	pthread_mutex_lock(&c->lock);
	t->delivering = false;
	grant_locked(c, t, n);
	pthread_cond_broadcast(&c->cond);
	*delivered = n;
	return true;
}

static bool exec_finished(const ctask *t)
{
	return t->done && !t->qhead && !t->delivering && !t->in_sending && !t->in_busy;
}

static bool stdin_idle(const ctask *t)
{
	return t->done || (!t->in_left && !t->in_eof && !t->in_sending && !t->in_busy);
}

static bool stdin_sent(const ctask *t)
{
	return t->done || (!t->in_left && !t->in_eof && !t->in_sending);
}

/* Wait for c->cond until woken or the CLOCK_MONOTONIC deadline (ns; 0 = none). c->lock held. */
static void cond_wait_until(chan *c, uint64_t deadline)
{
	cond_wait_deadline(&c->cond, &c->lock, deadline);
}

/* Drive an exec task on the calling thread (send stdin as credit comes,
 * deliver output to the callback) until `until` holds: 0, or -1 when
 * timeout_ms (< 0: none) passed. Once past the deadline at most one more
 * window of output is delivered, so a steady stream cannot hold the caller.
 * c->lock held. */
static int exec_drive_locked(chan *c, ctask *t, int timeout_ms, bool (*until)(const ctask *))
{
	uint64_t deadline = mono_deadline(timeout_ms);
	uint64_t late = 0;
	for (;;) {
		if (until(t))
			return 0;
		bool past = timeout_ms >= 0 && now_mono_ns() >= deadline;
		if (past && late >= t->win)
			return -1;
		if (step_stdin_locked(c, t))
			continue;
		size_t n = 0;
		if (step_deliver_locked(c, t, &n)) {
			if (past)
				late += n;
			continue;
		}
		if (past)
			return -1;
		cond_wait_until(c, deadline);
	}
}

/* Start an exec-like task (exec, tar_out, tar_in) whose request m is built;
 * stdin beyond one chunk goes out as the agent grants credit. */
static int start_exec_task(chan *c, wire_msg *m, uint32_t win, bool pull, chan_output_cb cb, void *ud,
			   const void *stdin_data, size_t stdin_len, bool stdin_stream, uint32_t *task_id,
			   silo_error *err)
{
	ctask *t = task_add(c, CT_EXEC);
	t->cb = cb;
	t->ud = ud;
	t->win = win;
	t->out_credit = win;
	t->pull = pull;
	m->id = t->id;
	m->present |= WF_WIN;
	m->win = win;
	bool big_stdin = stdin_len > WIRE_CHUNK;
	if (stdin_len && !big_stdin) {
		m->present |= WF_DATA;
		m->data = stdin_data;
		m->data_len = stdin_len;
	}
	t->in_credit = WIRE_STDIN_WINDOW - m->data_len;
	if (m->type == WM_EXEC) {
		m->present |= WF_FLAG;
		m->flag = stdin_stream || big_stdin;
	}
	if (t->done || send_frame(c, m, err) < 0) {
		if (t->done && err)
			*err = t->err;
		task_remove(c, t);
		return -1;
	}
	*task_id = t->id;
	if (big_stdin) {
		/* The rest goes out as the agent grants credit, from whichever thread
		 * drives the task; the first window right now. */
		pthread_mutex_lock(&c->lock);
		t->in_src = stdin_data;
		t->in_left = stdin_len;
		t->in_eof = !stdin_stream;
		while (step_stdin_locked(c, t))
			;
		pthread_mutex_unlock(&c->lock);
	}
	return 0;
}

/* An exec-kind task's output window (0 = WIRE_WINDOW); what names the task in the error. */
static int check_window(chan *c, uint32_t window, const char *what, uint32_t *win, silo_error *err)
{
	*win = window ? window : WIRE_WINDOW;
	if (*win < WIRE_MIN_WINDOW || *win > WIRE_MAX_WINDOW)
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, c->vm_id, "%s: window must be %u..%u bytes",
				    what, WIRE_MIN_WINDOW, WIRE_MAX_WINDOW);
	return 0;
}

int chan_exec_start(chan *c, const exec_req *req, chan_output_cb cb, void *ud, uint32_t *task_id,
		    silo_error *err)
{
	size_t argc = count_strv(req->argv), envc = count_strv(req->env);
	if (argc == 0)
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, c->vm_id, "exec: empty command");
	if (argc > WIRE_MAX_ARGS || envc > WIRE_MAX_ARGS)
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, c->vm_id, "exec: more than %d arguments or env entries",
				    WIRE_MAX_ARGS);
	uint32_t win;
	if (check_window(c, req->window, "exec", &win, err) < 0)
		return -1;
	if (req->pty && (req->rows > 4096 || req->cols > 4096))
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, c->vm_id, "exec: rows and cols must be 0..4096");
	wire_msg m = {.type = WM_EXEC, .present = WF_ARGV};
	m.argv = (char **)req->argv;
	m.argc = (uint32_t)argc;
	if (envc) {
		m.present |= WF_ENV;
		m.env = (char **)req->env;
		m.envc = (uint32_t)envc;
	}
	if (req->cwd) {
		m.present |= WF_CWD;
		m.cwd = (char *)req->cwd;
	}
	if (req->timeout_ms) {
		m.present |= WF_TIMEOUT;
		m.timeout = req->timeout_ms;
	}
	if (req->uid >= 0 && (req->uid || req->gid)) {
		m.present |= WF_UID;
		m.uid = req->uid;
	}
	if (req->gid >= 0 && (req->uid || req->gid)) {
		m.present |= WF_GID;
		m.gid = req->gid;
	}
	if (req->pty) {
		m.present |= WF_PTY | WF_ROWS | WF_COLS;
		m.pty = true;
		m.rows = req->rows;
		m.cols = req->cols;
	}
	return start_exec_task(c, &m, win, req->pull, cb, ud, req->stdin_data, req->stdin_len, req->stdin_stream,
			       task_id, err);
}

/* The exec task task_id, returned with c->lock held; NULL (unlocked) if none. */
static ctask *find_exec_lock(chan *c, uint32_t task_id, silo_error *err)
{
	pthread_mutex_lock(&c->lock);
	ctask *t = task_find_locked(c, task_id);
	if (!t || t->kind != CT_EXEC) {
		pthread_mutex_unlock(&c->lock);
		silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, c->vm_id, "no exec task %u", task_id);
		return NULL;
	}
	return t;
}

/* A finished task's outcome: its result into res, or its error. c->lock held. */
static int task_outcome_locked(const ctask *t, exec_result *res, silo_error *err)
{
	if (t->failed) {
		if (err)
			*err = t->err;
		return -1;
	}
	if (res)
		*res = t->res;
	return 0;
}

int chan_exec_wait(chan *c, uint32_t task_id, int timeout_ms, exec_result *res, silo_error *err)
{
	ctask *t = find_exec_lock(c, task_id, err);
	if (!t)
		return -1;
	if (exec_drive_locked(c, t, timeout_ms, exec_finished) < 0) {
		pthread_mutex_unlock(&c->lock);
		return silo_fail_vm(err, SILO_ERR_TIMEOUT, ETIMEDOUT, c->vm_id, "exec task %u still running after %d ms",
				    task_id, timeout_ms);
	}
	int rc = task_outcome_locked(t, res, err);
	pthread_mutex_unlock(&c->lock);
	task_remove(c, t);
	return rc;
}

ssize_t chan_exec_read(chan *c, uint32_t task_id, int *stream, void *buf, size_t cap, int timeout_ms,
		       silo_error *err)
{
	ctask *t = find_exec_lock(c, task_id, err);
	if (!t)
		return -1;
	if (cap == 0) {
		pthread_mutex_unlock(&c->lock);
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, c->vm_id, "exec read: empty buffer");
	}
	uint64_t deadline = mono_deadline(timeout_ms);
	for (;;) {
		if (step_stdin_locked(c, t))
			continue;
		if (t->qhead) {
			ochunk *ch = t->qhead;
			size_t n = MIN(cap, ch->len - t->qoff);
			memcpy(buf, ch->data + t->qoff, n);
			*stream = ch->stream;
			t->qoff += n;
			if (t->qoff == ch->len) {
				t->qhead = ch->next;
				if (!t->qhead)
					t->qtail = NULL;
				t->qoff = 0;
				free(ch);
			}
			grant_locked(c, t, n);
			pthread_mutex_unlock(&c->lock);
			return (ssize_t)n;
		}
		if (t->done) {
			pthread_mutex_unlock(&c->lock);
			return 0;
		}
		if (timeout_ms >= 0 && now_mono_ns() >= deadline) {
			pthread_mutex_unlock(&c->lock);
			return silo_fail_vm(err, SILO_ERR_TIMEOUT, ETIMEDOUT, c->vm_id, "no output from exec task %u in %d ms",
					    task_id, timeout_ms);
		}
		cond_wait_until(c, deadline);
	}
}

int chan_exec_discard(chan *c, uint32_t task_id, silo_error *err)
{
	ctask *t = find_exec_lock(c, task_id, err);
	if (!t)
		return -1;
	bool send = !t->done && !t->discarding;
	t->discarding = true;
	queue_free(t);
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	if (!send)
		return 0;
	wire_msg m = {.type = WM_DISCARD, .id = task_id};
	return send_frame(c, &m, err);
}

bool chan_exec_ended(chan *c, uint32_t task_id)
{
	pthread_mutex_lock(&c->lock);
	ctask *t = task_find_locked(c, task_id);
	bool ended = !t || t->done;
	pthread_mutex_unlock(&c->lock);
	return ended;
}

int chan_exec_started(chan *c, uint32_t task_id, int timeout_ms, uint32_t *pid, silo_error *err)
{
	ctask *t = find_exec_lock(c, task_id, err);
	if (!t)
		return -1;
	uint64_t deadline = mono_deadline(timeout_ms);
	while (!t->started && !t->done && (timeout_ms < 0 || now_mono_ns() < deadline))
		cond_wait_until(c, deadline);
	int rc = 0;
	if (t->failed || (!t->started && t->done)) {
		if (err)
			*err = t->err;
		rc = -1;
	} else if (!t->started) {
		rc = silo_fail_vm(err, SILO_ERR_TIMEOUT, ETIMEDOUT, c->vm_id, "the agent did not start task %u in %d ms",
				  task_id, timeout_ms);
	} else if (pid) {
		*pid = t->pid;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int chan_exec_status(chan *c, uint32_t task_id, int timeout_ms, exec_result *res, silo_error *err)
{
	ctask *t = find_exec_lock(c, task_id, err);
	if (!t)
		return -1;
	uint64_t deadline = mono_deadline(timeout_ms);
	while (!t->done) {
		if (timeout_ms >= 0 && now_mono_ns() >= deadline) {
			pthread_mutex_unlock(&c->lock);
			return silo_fail_vm(err, SILO_ERR_TIMEOUT, ETIMEDOUT, c->vm_id,
					    "exec task %u still running after %d ms", task_id, timeout_ms);
		}
		/* a callback task's output is delivered meanwhile (a pull task's waits) */
		size_t n;
		if (!step_stdin_locked(c, t) && !step_deliver_locked(c, t, &n))
			cond_wait_until(c, deadline);
	}
	int rc = task_outcome_locked(t, res, err);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int chan_exec(chan *c, const exec_req *req, chan_output_cb cb, void *ud, exec_result *res, silo_error *err)
{
	uint32_t id;
	if (chan_exec_start(c, req, cb, ud, &id, err) < 0)
		return -1;
	return chan_exec_wait(c, id, -1, res, err);
}

/* ---------------- networking ---------------- */

int chan_net_config(chan *c, const char *addr_gw, uint32_t mtu, bool configure_if, silo_error *err)
{
	ctask *t = task_add(c, CT_SIMPLE);
	wire_msg m = {.type = WM_NET, .present = WF_ADDR | WF_N | WF_FLAG, .addr = (char *)addr_gw, .n = mtu,
		      .flag = configure_if};
	if (roundtrip(c, t, &m, 10000, err) < 0)
		return -1;
	task_remove(c, t);
	return 0;
}

void chan_dns_reply(chan *c, uint32_t tag, const void *msg, size_t len)
{
	if (len > WIRE_MAX_DNS)
		return;
	wire_msg m = {.type = WM_DNSR, .id = 0, .present = WF_N | WF_DATA, .n = tag, .data = msg, .data_len = len};
	send_frame(c, &m, NULL);
}

int chan_tcp_open(chan *c, const char *addr, uint16_t port, uint32_t window, uint32_t *task_id, silo_error *err)
{
	if (port == 0)
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, c->vm_id, "tcp: port 1-65535");
	uint32_t win;
	if (check_window(c, window, "tcp", &win, err) < 0)
		return -1;
	wire_msg m = {.type = WM_TCP, .present = WF_N, .n = port};
	if (addr) {
		m.present |= WF_ADDR;
		m.addr = (char *)addr;
	}
	/* pull: one thread sends, another reads (port forwarding) */
	uint32_t id;
	if (start_exec_task(c, &m, win, true, NULL, NULL, NULL, 0, false, &id, err) < 0)
		return -1;
	if (chan_exec_started(c, id, 10000, NULL, err) < 0) {   /* the agent's connect() answered, or 10 s */
		chan_exec_discard(c, id, NULL);
		pthread_mutex_lock(&c->lock);
		ctask *t = task_find_locked(c, id);
		pthread_mutex_unlock(&c->lock);
		if (t)
			task_remove(c, t);
		return -1;
	}
	*task_id = id;
	return 0;
}

/* stdin/signal/resize only make sense for an exec task this chan still tracks. */
static int check_live_exec(chan *c, uint32_t task_id, const char *what, silo_error *err)
{
	pthread_mutex_lock(&c->lock);
	ctask *t = task_find_locked(c, task_id);
	bool live = t && t->kind == CT_EXEC && !t->done;
	pthread_mutex_unlock(&c->lock);
	if (!live)
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, ESRCH, c->vm_id, "%s: no running exec task %u", what,
				    task_id);
	return 0;
}

int chan_exec_stdin_timed(chan *c, uint32_t task_id, const void *buf, size_t len, bool eof, int timeout_ms,
			  size_t *taken, silo_error *err)
{
	if (taken)
		*taken = 0;
	if (check_live_exec(c, task_id, "stdin", err) < 0)
		return -1;
	if (!len && !eof)
		return 0;
	uint64_t t0 = now_mono_ns();
	ctask *t = find_exec_lock(c, task_id, err);
	if (!t)
		return -1;
	if (exec_drive_locked(c, t, timeout_ms, stdin_idle) < 0) { /* earlier stdin first */
		pthread_mutex_unlock(&c->lock);
		return silo_fail_vm(err, SILO_ERR_TIMEOUT, ETIMEDOUT, c->vm_id,
				    "stdin: exec task %u still busy with earlier input after %d ms", task_id, timeout_ms);
	}
	int left_ms = timeout_ms;
	if (timeout_ms >= 0) {
		uint64_t spent = (now_mono_ns() - t0) / 1000000ull;
		left_ms = spent >= (uint64_t)timeout_ms ? 0 : timeout_ms - (int)spent;
	}
	bool took = !t->done, timed_out = false;
	if (took) {
		t->in_busy = true;
		t->in_src = buf;
		t->in_left = len;
		t->in_eof = eof;
		timed_out = exec_drive_locked(c, t, left_ms, stdin_sent) < 0;
	}
	bool all = took && !t->in_left && !t->in_eof;
	if (taken && took)
		*taken = len - t->in_left;
	t->in_src = NULL; /* never keep the caller's buffer */
	t->in_left = 0;
	t->in_eof = false;
	t->in_busy = false;
	silo_error e = t->err;
	bool failed = t->failed, done = t->done;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	if (all)
		return 0;
	if (failed) {
		if (err)
			*err = e;
		return -1;
	}
	if (timed_out && !done)
		return silo_fail_vm(err, SILO_ERR_TIMEOUT, ETIMEDOUT, c->vm_id,
				    "stdin: exec task %u took only part of its input in %d ms (it is not reading)", task_id,
				    timeout_ms);
	return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, ESRCH, c->vm_id,
			    "stdin: exec task %u ended before taking all of its input", task_id);
}

int chan_exec_stdin(chan *c, uint32_t task_id, const void *buf, size_t len, bool eof, silo_error *err)
{
	return chan_exec_stdin_timed(c, task_id, buf, len, eof, -1, NULL, err);
}

int chan_exec_signal(chan *c, uint32_t task_id, int sig, silo_error *err)
{
	if (check_live_exec(c, task_id, "signal", err) < 0)
		return -1;
	wire_msg m = {.type = WM_SIGNAL, .id = task_id, .present = WF_SIG, .sig = sig};
	return send_frame(c, &m, err);
}

int chan_exec_resize(chan *c, uint32_t task_id, uint16_t rows, uint16_t cols, silo_error *err)
{
	if (check_live_exec(c, task_id, "resize", err) < 0)
		return -1;
	wire_msg m = {.type = WM_RESIZE, .id = task_id, .present = WF_ROWS | WF_COLS, .rows = rows, .cols = cols};
	return send_frame(c, &m, err);
}

/* ---------------- files ---------------- */

static int check_path(chan *c, const char *path, silo_error *err)
{
	if (!path || !*path || strlen(path) > WIRE_MAX_PATH)
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, c->vm_id, "path must be 1..%d bytes", WIRE_MAX_PATH);
	return 0;
}

static int file_write_src(chan *c, const char *path, int src_fd, const void *buf, size_t len, uint32_t mode,
			  silo_error *err)
{
	if (check_path(c, path, err) < 0)
		return -1;
	ctask *t = task_add(c, CT_FWRITE);
	cleanup_free uint8_t *chunk = src_fd >= 0 ? xmalloc(WIRE_CHUNK) : NULL;
	const uint8_t *p = buf;
	bool first = true;
	for (;;) {
		size_t n;
		if (src_fd >= 0) {
			ssize_t r;
			do {
				r = read(src_fd, chunk, WIRE_CHUNK);
			} while (r < 0 && errno == EINTR);
			if (r < 0) {
				int e = errno;
				/* Abort the transfer: the agent sees the connection-level task never finish; send
				 * an eof so it closes the file, then report the local error. */
				wire_msg m = {.type = WM_FWRITE, .id = t->id, .present = WF_EOF | WF_FLAG,
					      .eof = true, .flag = first, .path = (char *)path};
				if (first)
					m.present |= WF_PATH;
				send_frame(c, &m, NULL);
				task_remove(c, t);
				return silo_fail_vm(err, SILO_ERR_IO_ERROR, e, c->vm_id, "read local file");
			}
			n = (size_t)r;
		} else {
			n = MIN(len, (size_t)WIRE_CHUNK);
		}
		bool eof = src_fd >= 0 ? n == 0 : n == len;
		wire_msg m = {.type = WM_FWRITE, .id = t->id, .present = WF_DATA | WF_EOF | WF_FLAG,
			      .data = src_fd >= 0 ? chunk : p, .data_len = n, .eof = eof, .flag = first};
		if (first) {
			m.present |= WF_PATH | WF_MODE;
			m.path = (char *)path;
			m.mode = mode ? mode : 0644;
		}
		pthread_mutex_lock(&c->lock);
		bool stop = t->done;
		pthread_mutex_unlock(&c->lock);
		if (stop || send_frame(c, &m, err) < 0)
			break;
		first = false;
		if (src_fd < 0) {
			p += n;
			len -= n;
		}
		if (eof)
			break;
	}
	pthread_mutex_lock(&c->lock);
	t->last_ns = now_mono_ns();   /* the idle clock starts after the last chunk went out */
	pthread_mutex_unlock(&c->lock);
	int rc = 0;
	if (task_wait_idle(c, t, "write", err) < 0) {
		silo_error_prefix(err, "write %s", path);
		rc = -1;
	} else if (t->failed) {
		if (err)
			*err = t->err;
		silo_error_prefix(err, "write %s", path);
		rc = -1;
	}
	task_remove(c, t);
	return rc;
}

int chan_file_write_fd(chan *c, const char *path, int src_fd, uint32_t mode, silo_error *err)
{
	return file_write_src(c, path, src_fd, NULL, 0, mode, err);
}

int chan_file_write(chan *c, const char *path, const void *buf, size_t len, uint32_t mode, silo_error *err)
{
	return file_write_src(c, path, -1, buf, len, mode, err);
}

static int file_read(chan *c, const char *path, int dst_fd, uint64_t max, ctask **out, silo_error *err)
{
	if (check_path(c, path, err) < 0)
		return -1;
	ctask *t = task_add(c, CT_FREAD);
	t->dst_fd = dst_fd;
	t->max = max;
	wire_msg m = {.type = WM_FREAD, .present = WF_PATH, .path = (char *)path};
	if (max) {
		m.present |= WF_MAX;
		m.max = max;
	}
	m.id = t->id;
	if (!t->done && send_frame(c, &m, err) < 0) {
		task_remove(c, t);
		return -1;
	}
	if (task_wait_idle(c, t, "read", err) < 0) {
		silo_error_prefix(err, "read %s", path);
		task_remove(c, t);
		return -1;
	}
	if (t->failed) {
		if (err)
			*err = t->err;
		silo_error_prefix(err, "read %s", path);
		task_remove(c, t);
		return -1;
	}
	*out = t;
	return 0;
}

int chan_file_read_fd(chan *c, const char *path, int dst_fd, uint64_t max_bytes, silo_error *err)
{
	ctask *t;
	if (file_read(c, path, dst_fd, max_bytes, &t, err) < 0)
		return -1;
	task_remove(c, t);
	return 0;
}

int chan_file_read(chan *c, const char *path, size_t max, char **out, size_t *len, silo_error *err)
{
	ctask *t;
	if (file_read(c, path, -1, max ? max : (64u << 20), &t, err) < 0)
		return -1;
	mp_put_raw(&t->mem, "", 1);
	if (t->mem.oom) {
		task_remove(c, t);
		return silo_fail_vm(err, SILO_ERR_IO_ERROR, ENOMEM, c->vm_id, "read %s", path);
	}
	*len = (size_t)t->got;
	*out = (char *)t->mem.p;
	t->mem.p = NULL;
	task_remove(c, t);
	return 0;
}

int chan_tar_out_start(chan *c, const char *path, uint32_t window, uint32_t *task_id, silo_error *err)
{
	uint32_t win;
	if (check_path(c, path, err) < 0 || check_window(c, window, "tar_out", &win, err) < 0)
		return -1;
	wire_msg m = {.type = WM_TAR_OUT, .present = WF_PATH, .path = (char *)path};
	return start_exec_task(c, &m, win, true, NULL, NULL, NULL, 0, true, task_id, err);
}

int chan_tar_in_start(chan *c, const char *path, uint32_t *task_id, silo_error *err)
{
	if (check_path(c, path, err) < 0)
		return -1;
	wire_msg m = {.type = WM_TAR_IN, .present = WF_PATH, .path = (char *)path};
	return start_exec_task(c, &m, WIRE_MIN_WINDOW, true, NULL, NULL, NULL, 0, true, task_id, err);
}

int chan_stat_link(chan *c, const char *path, file_stat *st, char **link, silo_error *err)
{
	if (check_path(c, path, err) < 0)
		return -1;
	ctask *t = task_add(c, CT_STAT);
	wire_msg m = {.type = WM_STAT, .present = WF_PATH, .path = (char *)path};
	if (roundtrip(c, t, &m, -1, err) < 0)
		return -1;
	*st = t->st;
	if (link) {
		*link = t->link;
		t->link = NULL;
	}
	task_remove(c, t);
	return 0;
}

int chan_stat(chan *c, const char *path, file_stat *st, silo_error *err)
{
	return chan_stat_link(c, path, st, NULL, err);
}

int chan_list_opts(chan *c, const char *path, const list_opts *o, dir_entry **entries, size_t *n, bool *truncated,
		   silo_error *err)
{
	if (check_path(c, path, err) < 0)
		return -1;
	uint32_t depth = o && o->depth ? o->depth : 1;
	uint64_t max = o && o->max ? o->max : CHAN_LIST_MAX;
	if (depth > WIRE_MAX_LIST_DEPTH)
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, c->vm_id, "list: depth must be 1..%d",
				    WIRE_MAX_LIST_DEPTH);
	if (max > CHAN_LIST_MAX)
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, c->vm_id, "list: at most %u entries", CHAN_LIST_MAX);
	ctask *t = task_add(c, CT_LIST);
	t->depth = depth;
	t->list_max = max;
	wire_msg m = {.type = WM_LIST, .present = WF_PATH | WF_DEPTH | WF_MAX, .path = (char *)path, .depth = depth,
		      .max = max};
	if (roundtrip(c, t, &m, -1, err) < 0)
		return -1;
	*entries = t->ents;
	*n = t->n_ents;
	if (truncated)
		*truncated = t->truncated;
	t->ents = NULL;
	t->n_ents = 0;
	task_remove(c, t);
	return 0;
}

int chan_list(chan *c, const char *path, dir_entry **entries, size_t *n, silo_error *err)
{
	return chan_list_opts(c, path, NULL, entries, n, NULL, err);
}

void dir_entries_free(dir_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].name);
		free(e[i].link);
	}
	free(e);
}

/* ---------------- watches ---------------- */

int chan_watch_start(chan *c, const char *path, bool recursive, uint32_t *watch_id, silo_error *err)
{
	if (check_path(c, path, err) < 0)
		return -1;
	ctask *t = task_add(c, CT_WATCH);
	wire_msg m = {.type = WM_WATCH, .id = t->id, .present = WF_PATH | WF_FLAG, .path = (char *)path,
		      .flag = recursive};
	if (!t->done && send_frame(c, &m, err) < 0) {
		task_remove(c, t);
		return -1;
	}
	/* wait for ok (ready) or the error, bounded by the idle timeout */
	uint64_t idle = (uint64_t)c->opts.op_idle_ms * 1000000ull;
	pthread_mutex_lock(&c->lock);
	while (!t->ready && !t->done && now_mono_ns() - t->last_ns <= idle)
		cond_wait_until(c, now_mono_ns() + 100 * 1000000ull);
	bool ok = t->ready && !t->failed;
	silo_error e = t->err;
	bool idle_out = !t->ready && !t->done;
	pthread_mutex_unlock(&c->lock);
	if (!ok) {
		task_remove(c, t);
		if (idle_out)
			return silo_fail_vm(err, SILO_ERR_TIMEOUT, ETIMEDOUT, c->vm_id,
					    "the agent sent nothing for watch in %d ms (stuck or hostile agent)",
					    c->opts.op_idle_ms);
		if (err)
			*err = e;
		return -1;
	}
	*watch_id = t->id;
	return 0;
}

int chan_watch_read(chan *c, uint32_t watch_id, watch_event **evs, size_t *n, uint64_t *lost, int timeout_ms,
		    silo_error *err)
{
	*evs = NULL;
	*n = 0;
	if (lost)
		*lost = 0;
	pthread_mutex_lock(&c->lock);
	ctask *t = task_find_locked(c, watch_id);
	if (!t || t->kind != CT_WATCH) {
		pthread_mutex_unlock(&c->lock);
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, c->vm_id, "no watch %u", watch_id);
	}
	uint64_t deadline = mono_deadline(timeout_ms);
	while (!t->wn && !t->wlost && !t->done && (timeout_ms < 0 || now_mono_ns() < deadline))
		cond_wait_until(c, deadline);
	*evs = t->wq;
	*n = t->wn;
	if (lost)
		*lost = t->wlost;
	t->wq = NULL;
	t->wn = t->wcap = t->wbytes = 0;
	t->wlost = 0;
	int rc = 0;
	if (t->done && !*n) {
		rc = t->failed ? -1 : 1;
		if (t->failed && err)
			*err = t->err;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void watch_events_free(watch_event *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i].name);
	free(e);
}

void chan_watch_stop(chan *c, uint32_t watch_id)
{
	pthread_mutex_lock(&c->lock);
	ctask *t = task_find_locked(c, watch_id);
	bool found = t && t->kind == CT_WATCH;
	bool live = found && !t->done;
	pthread_mutex_unlock(&c->lock);
	if (!found)
		return;
	if (live) {
		wire_msg m = {.type = WM_CANCEL, .id = watch_id};
		send_frame(c, &m, NULL);
	}
	task_remove(c, t);
}

static int simple_op(chan *c, wire_msg *m, silo_error *err)
{
	ctask *t = task_add(c, CT_SIMPLE);
	if (roundtrip(c, t, m, -1, err) < 0)
		return -1;
	task_remove(c, t);
	return 0;
}

int chan_mkdir(chan *c, const char *path, uint32_t mode, bool parents, silo_error *err)
{
	if (check_path(c, path, err) < 0)
		return -1;
	wire_msg m = {.type = WM_MKDIR, .present = WF_PATH | WF_MODE | WF_FLAG, .path = (char *)path,
		      .mode = mode ? mode : 0755, .flag = parents};
	return simple_op(c, &m, err);
}

int chan_remove(chan *c, const char *path, bool recursive, silo_error *err)
{
	if (check_path(c, path, err) < 0)
		return -1;
	wire_msg m = {.type = WM_REMOVE, .present = WF_PATH | WF_FLAG, .path = (char *)path, .flag = recursive};
	return simple_op(c, &m, err);
}

int chan_rename(chan *c, const char *src, const char *dst, bool noreplace, silo_error *err)
{
	if (check_path(c, src, err) < 0 || check_path(c, dst, err) < 0)
		return -1;
	wire_msg m = {.type = WM_RENAME, .present = WF_PATH | WF_DST | WF_FLAG, .path = (char *)src, .dst = (char *)dst,
		      .flag = noreplace};
	return simple_op(c, &m, err);
}

int chan_shutdown(chan *c, silo_error *err)
{
	wire_msg m = {.type = WM_SHUTDOWN};
	ctask *t = task_add(c, CT_SIMPLE);
	m.id = t->id;
	if (!t->done && send_frame(c, &m, err) < 0) {
		task_remove(c, t);
		return -1;
	}
	/* The agent answers OK then goes away; a disconnect right after counts as success. */
	task_wait(c, t, 5000);
	int rc = 0;
	pthread_mutex_lock(&c->lock);
	bool ok = t->done && (!t->failed || t->err.code == SILO_ERR_VSOCK_DISCONNECTED);
	pthread_mutex_unlock(&c->lock);
	if (!ok)
		rc = silo_fail_vm(err, SILO_ERR_TIMEOUT, ETIMEDOUT, c->vm_id, "agent did not acknowledge shutdown");
	task_remove(c, t);
	return rc;
}

void chan_set_paused(chan *c, bool paused)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->paused = paused;
	c->last_rx_ns = now_mono_ns();   /* silence while frozen does not count */
	pthread_mutex_unlock(&c->lock);
}
