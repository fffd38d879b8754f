/* SPDX-License-Identifier: Apache-2.0
 * The process table of a sandbox (proc.h has the model, the bounds and the
 * locking rules). Output offsets are absolute byte counts since the process
 * started: the buffer holds [lo, hi) as a list of chunks, each reader is at
 * its pos in [lo, hi]; lo is the smallest pos of the attached readers.
 */
#include "core/proc.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"

#define SLICE_MS 200          /* longest channel wait, so closing is noticed */
#define PUMP_MAX (64u * 1024u)

typedef struct pchunk {
	struct pchunk *next;
	uint64_t off;
	int stream;
	size_t len;
	uint8_t data[];
} pchunk;

struct proc_reader {
	proc_reader *next;
	proc *p;
	uint64_t pos;
};

struct proc {
	proc *next;                /* table order: oldest first */
	proc_table *t;
	int refs;                  /* the table's while listed, plus every holder */
	bool listed;
	char id[PROC_ID_MAX];
	char tag[PROC_TAG_MAX + 1];
	uint32_t task, pid;
	char **argv;
	char *cwd;
	bool pty, session;
	uint64_t started_ms;
	/* output */
	pchunk *head, *tail;
	uint64_t lo, hi;
	bool pumping, out_done;
	proc_reader *readers;
	unsigned nreaders;
	/* the channel task */
	bool ready;                /* started: task and pid are set */
	int chan_busy;
	bool task_freed, discarded;
	bool exited, failed;
	exec_result res;
	silo_error err;
};

struct proc_table {
	chan *c;
	char vm_id[SILO_ID_MAX];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	proc *head;
	size_t count;              /* listed records */
	size_t alive;              /* allocated records (listed or still held) */
	uint64_t next_id;
	bool closing;
};

/* ---- helpers (t->lock held unless said otherwise) ---- */

static void wait_ms(proc_table *t, int ms)
{
	cond_wait_ms(&t->cond, &t->lock, (uint64_t)ms);
}

static int slice(int timeout_ms, uint64_t deadline)
{
	if (timeout_ms < 0)
		return SLICE_MS;
	uint64_t now = now_mono_ns();
	if (now >= deadline)
		return 0;
	uint64_t left = (deadline - now) / 1000000ull + 1;
	return left < SLICE_MS ? (int)left : SLICE_MS;
}

static void proc_free(proc *p)
{
	while (p->head) {
		pchunk *c = p->head;
		p->head = c->next;
		free(c);
	}
	strv_free(p->argv);
	free(p->cwd);
	free(p);
}

static void put_locked(proc *p)
{
	if (--p->refs > 0)
		return;
	proc_table *t = p->t;
	proc_free(p);
	t->alive--;
	pthread_cond_broadcast(&t->cond);
}

static void unlist_locked(proc *p)
{
	if (!p->listed)
		return;
	proc_table *t = p->t;
	for (proc **pp = &t->head; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	p->listed = false;
	t->count--;
	put_locked(p);
}

/* Enter the channel for p's task: false if the task is gone. */
static bool chan_enter_locked(proc *p)
{
	if (!p->ready || p->task_freed)
		return false;
	p->chan_busy++;
	return true;
}

/* Leave the channel; the last one out frees the task once its output was
 * taken to the end or discarded, collecting the exit status. */
static void chan_leave_locked(proc *p)
{
	p->chan_busy--;
	if (p->chan_busy || p->task_freed || !(p->out_done || p->discarded))
		return;
	p->task_freed = true;
	proc_table *t = p->t;
	p->refs++;   /* keep p while the lock is dropped */
	pthread_mutex_unlock(&t->lock);
	exec_result res = {0};
	silo_error e = {0};
	int rc = chan_exec_wait(t->c, p->task, 5000, &res, &e);
	pthread_mutex_lock(&t->lock);
	if (!p->exited && !p->failed) {
		if (rc == 0) {
			p->exited = true;
			p->res = res;
		} else {
			p->failed = true;
			p->err = e;
		}
	}
	pthread_cond_broadcast(&t->cond);
	put_locked(p);
}

static void release_locked(proc *p)
{
	if (!p->nreaders)
		return;   /* nobody attached: everything held stays for the next reader */
	uint64_t lo = UINT64_MAX;
	for (proc_reader *r = p->readers; r; r = r->next)
		lo = MIN(lo, r->pos);
	while (p->head && p->head->off + p->head->len <= lo) {
		pchunk *c = p->head;
		p->head = c->next;
		if (!p->head)
			p->tail = NULL;
		free(c);
	}
	p->lo = lo;
	pthread_cond_broadcast(&p->t->cond);
}

/* Kill the process (its group) and drop its output; the channel task then ends. */
static void discard_locked(proc *p)
{
	if (p->discarded)
		return;
	p->discarded = true;
	if (!chan_enter_locked(p))
		return;
	proc_table *t = p->t;
	pthread_mutex_unlock(&t->lock);
	silo_error e;
	chan_exec_discard(t->c, p->task, &e);
	chan_exec_signal(t->c, p->task, SIGKILL, &e);   /* ESRCH once it exited: fine */
	pthread_mutex_lock(&t->lock);
	chan_leave_locked(p);
}

/* ---- table ---- */

proc_table *proc_table_new(chan *c, const char *vm_id)
{
	proc_table *t = xcalloc(1, sizeof *t);
	t->c = c;
	snprintf(t->vm_id, sizeof t->vm_id, "%s", vm_id ? vm_id : "");
	pthread_mutex_init(&t->lock, NULL);
	cond_init_monotonic(&t->cond);
	return t;
}

/* The listed records, each with a reference (the lock may be dropped while
 * working on them); put_all releases them. */
static proc **hold_all_locked(proc_table *t, size_t *n)
{
	proc **all = xcalloc(t->count ? t->count : 1, sizeof *all);
	size_t k = 0;
	for (proc *p = t->head; p && k < t->count; p = p->next) {
		p->refs++;
		all[k++] = p;
	}
	*n = k;
	return all;
}

static void put_all_locked(proc **all, size_t n)
{
	for (size_t i = 0; i < n; i++)
		put_locked(all[i]);
	free(all);
}

static void close_locked(proc_table *t, bool kill_background)
{
	t->closing = true;
	pthread_cond_broadcast(&t->cond);
	size_t n;
	proc **all = hold_all_locked(t, &n);
	for (size_t i = 0; i < n; i++)
		if (all[i]->session || kill_background)
			discard_locked(all[i]);
	put_all_locked(all, n);
}

void proc_table_close(proc_table *t, bool kill_background)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	close_locked(t, kill_background);
	pthread_mutex_unlock(&t->lock);
}

void proc_table_free(proc_table *t, bool kill_background)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	close_locked(t, kill_background);
	/* every thread inside leaves within a slice and drops its references */
	while (t->head) {
		proc *p = t->head;
		p->refs++;
		unlist_locked(p);
		while (p->chan_busy)   /* leaving within a slice (a start: within its 30 s bound) */
			wait_ms(t, SLICE_MS);
		if (!p->task_freed && p->discarded) {
			p->chan_busy++;
			chan_leave_locked(p);   /* frees the task */
		}
		put_locked(p);
	}
	while (t->alive)
		wait_ms(t, SLICE_MS);
	pthread_mutex_unlock(&t->lock);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
	free(t);
}

static bool valid_tag(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > PROC_TAG_MAX)
		return false;
	bool digits = true, p_digits = s[0] == 'p' && n > 1;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			return false;
		digits &= c >= '0' && c <= '9';
		if (i > 0)
			p_digits &= c >= '0' && c <= '9';
	}
	return !digits && !p_digits;
}

/* Room for one more record: forget the oldest exited background process whose
 * output was read to the end. */
static bool make_room_locked(proc_table *t)
{
	if (t->count < PROC_MAX)
		return true;
	for (proc *p = t->head; p; p = p->next)
		if (!p->session && p->task_freed && p->lo == p->hi && !p->nreaders) {
			unlist_locked(p);
			return true;
		}
	return false;
}

int proc_start(proc_table *t, const exec_req *req, const proc_opts *o, proc **out, silo_error *err)
{
	static const proc_opts none;
	if (!o)
		o = &none;
	if (o->tag && !valid_tag(o->tag))
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, t->vm_id,
				    "tag \"%.80s\": expected 1-%d of [A-Za-z0-9_.-], neither all digits nor p<digits>", o->tag,
				    PROC_TAG_MAX);
	pthread_mutex_lock(&t->lock);
	const char *why = NULL;
	if (t->closing)
		why = "closing";
	for (proc *p = t->head; !why && o->tag && p; p = p->next)
		if (!strcmp(p->tag, o->tag) && !p->task_freed)
			why = "tag";
	if (!why && !make_room_locked(t))
		why = "full";
	if (why) {
		pthread_mutex_unlock(&t->lock);
		if (!strcmp(why, "tag"))
			return silo_fail_vm(err, SILO_ERR_CONFLICT, 0, t->vm_id,
					    "process tag \"%s\" is taken (by a process that runs or holds unread output)", o->tag);
		if (!strcmp(why, "full"))
			return silo_fail_vm(err, SILO_ERR_RESOURCE_EXCEEDED, 0, t->vm_id,
					    "%d processes are running or hold unread output in this sandbox (remove some)",
					    PROC_MAX);
		return silo_fail_vm(err, SILO_ERR_CONFLICT, 0, t->vm_id, "the sandbox is shutting down");
	}
	/* a tag of an exited process is taken over */
	for (proc *p = t->head; o->tag && p; p = p->next)
		if (!strcmp(p->tag, o->tag))
			p->tag[0] = '\0';
	proc *p = xcalloc(1, sizeof *p);
	p->t = t;
	p->refs = 2;   /* the table's and the caller's */
	p->listed = true;
	snprintf(p->id, sizeof p->id, "p%llu", (unsigned long long)++t->next_id);
	if (o->tag)
		snprintf(p->tag, sizeof p->tag, "%s", o->tag);
	p->argv = strv_dup(req->argv);
	p->cwd = req->cwd ? xstrdup(req->cwd) : NULL;
	p->pty = req->pty;
	p->session = o->session;
	p->started_ms = now_realtime_ms();
	p->chan_busy = 1;   /* starting */
	p->next = NULL;
	proc **pp = &t->head;
	while (*pp)
		pp = &(*pp)->next;
	*pp = p;
	t->count++;
	t->alive++;
	pthread_mutex_unlock(&t->lock);

	exec_req r = *req;
	r.pull = true;
	uint32_t task = 0, pid = 0;
	int rc = chan_exec_start(t->c, &r, NULL, NULL, &task, err);
	if (rc == 0) {
		p->task = task;
		rc = chan_exec_started(t->c, task, 30000, &pid, err);
		if (rc < 0) {
			silo_error e;
			chan_exec_discard(t->c, task, &e);
			chan_exec_wait(t->c, task, 5000, NULL, &e);
		}
	}
	pthread_mutex_lock(&t->lock);
	p->chan_busy--;
	if (rc < 0) {
		p->task_freed = true;
		unlist_locked(p);
		put_locked(p);
		pthread_mutex_unlock(&t->lock);
		silo_error_set_vm(err, t->vm_id);
		return -1;
	}
	p->pid = pid;
	p->ready = true;
	if (p->discarded) {   /* the table closed while it started */
		p->discarded = false;
		discard_locked(p);
	}
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	*out = p;
	return 0;
}

proc *proc_find(proc_table *t, const char *ref, silo_error *err)
{
	if (!ref || !*ref || strlen(ref) > PROC_TAG_MAX) {
		silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, t->vm_id, "process: expected a handle (p3), a pid or a tag");
		return NULL;
	}
	char *end;
	unsigned long pid = strtoul(ref, &end, 10);
	bool by_pid = ref[0] >= '0' && ref[0] <= '9' && !*end;
	pthread_mutex_lock(&t->lock);
	proc *found = NULL;
	for (proc *p = t->head; p && !found; p = p->next) {
		if (by_pid ? (p->pid == pid && !p->task_freed) : (!strcmp(p->id, ref) || (p->tag[0] && !strcmp(p->tag, ref))))
			found = p;
	}
	if (!found && by_pid)   /* an exited one, if no live process has that pid */
		for (proc *p = t->head; p && !found; p = p->next)
			if (p->pid == pid)
				found = p;
	if (found)
		found->refs++;
	pthread_mutex_unlock(&t->lock);
	if (!found)
		silo_fail_vm(err, SILO_ERR_PROCESS_NOT_FOUND, 0, t->vm_id, "no process \"%.64s\" in this sandbox", ref);
	return found;
}

void proc_put(proc *p)
{
	if (!p)
		return;
	proc_table *t = p->t;
	pthread_mutex_lock(&t->lock);
	put_locked(p);
	pthread_mutex_unlock(&t->lock);
}

const char *proc_id(const proc *p)
{
	return p->id;
}

/* Learn the exit status without waiting, if the channel has it. */
static void peek_exit_locked(proc *p)
{
	if (p->exited || p->failed || !chan_enter_locked(p))
		return;
	proc_table *t = p->t;
	pthread_mutex_unlock(&t->lock);
	exec_result res;
	silo_error e;
	bool ended = chan_exec_ended(t->c, p->task);
	int rc = ended ? chan_exec_status(t->c, p->task, 0, &res, &e) : 1;
	pthread_mutex_lock(&t->lock);
	if (rc == 0 && !p->exited) {
		p->exited = true;
		p->res = res;
	} else if (rc < 0 && !p->failed && !p->exited) {
		p->failed = true;
		p->err = e;
	}
	chan_leave_locked(p);
}

static void info_locked(proc *p, proc_info *i)
{
	memset(i, 0, sizeof *i);
	snprintf(i->id, sizeof i->id, "%s", p->id);
	snprintf(i->tag, sizeof i->tag, "%s", p->tag);
	i->pid = p->pid;
	i->argv = strv_dup(p->argv);
	i->cwd = p->cwd ? xstrdup(p->cwd) : NULL;
	i->pty = p->pty;
	i->session = p->session;
	i->started_ms = p->started_ms;
	i->exited = p->exited;
	i->res = p->res;
	i->failed = p->failed;
	i->readers = p->nreaders;
	i->buffered = p->hi - p->lo;
	i->output_bytes = p->hi;
}

void proc_info_of(proc *p, proc_info *out)
{
	proc_table *t = p->t;
	pthread_mutex_lock(&t->lock);
	peek_exit_locked(p);
	info_locked(p, out);
	pthread_mutex_unlock(&t->lock);
}

int proc_list(proc_table *t, proc_info **out, size_t *n)
{
	pthread_mutex_lock(&t->lock);
	size_t k;
	proc **all = hold_all_locked(t, &k);
	proc_info *v = xcalloc(k ? k : 1, sizeof *v);
	for (size_t i = 0; i < k; i++) {
		peek_exit_locked(all[i]);
		info_locked(all[i], &v[i]);
	}
	put_all_locked(all, k);
	pthread_mutex_unlock(&t->lock);
	*out = v;
	*n = k;
	return 0;
}

void proc_info_free(proc_info *i)
{
	strv_free(i->argv);
	free(i->cwd);
	i->argv = NULL;
	i->cwd = NULL;
}

void proc_list_free(proc_info *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		proc_info_free(&v[i]);
	free(v);
}

/* ---- readers ---- */

proc_reader *proc_attach(proc *p)
{
	proc_table *t = p->t;
	proc_reader *r = xcalloc(1, sizeof *r);
	pthread_mutex_lock(&t->lock);
	p->refs++;
	r->p = p;
	r->pos = p->lo;
	r->next = p->readers;
	p->readers = r;
	p->nreaders++;
	pthread_mutex_unlock(&t->lock);
	return r;
}

void proc_detach(proc_reader *r)
{
	if (!r)
		return;
	proc *p = r->p;
	proc_table *t = p->t;
	pthread_mutex_lock(&t->lock);
	for (proc_reader **pp = &p->readers; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	p->nreaders--;
	release_locked(p);
	if (!p->nreaders && p->session) {
		/* the session's client is gone: the process goes with it */
		discard_locked(p);
		unlist_locked(p);
	}
	pthread_cond_broadcast(&t->cond);
	put_locked(p);
	pthread_mutex_unlock(&t->lock);
	free(r);
}

/* Copy what r has not read yet from the held chunks. */
static size_t copy_out_locked(proc_reader *r, int *stream, void *buf, size_t cap)
{
	proc *p = r->p;
	for (pchunk *c = p->head; c; c = c->next) {
		if (r->pos >= c->off + c->len)
			continue;
		size_t skip = (size_t)(r->pos - c->off), n = MIN(cap, c->len - skip);
		memcpy(buf, c->data + skip, n);
		*stream = c->stream;
		r->pos += n;
		release_locked(p);
		return n;
	}
	return 0;
}

/* Take the next piece of output from the channel into the buffer (the one
 * pumping thread; the lock is dropped meanwhile). */
static void pump_locked(proc *p, int ms)
{
	proc_table *t = p->t;
	size_t room = PROC_BUF - (size_t)(p->hi - p->lo);
	if (!chan_enter_locked(p))
		return;
	p->pumping = true;
	pthread_mutex_unlock(&t->lock);
	static __thread uint8_t buf[PUMP_MAX];
	int stream = 1;
	silo_error e = {0};
	ssize_t n = chan_exec_read(t->c, p->task, &stream, buf, MIN(room, (size_t)PUMP_MAX), ms, &e);
	exec_result res;
	int st = n == 0 ? chan_exec_status(t->c, p->task, 0, &res, &e) : -1;   /* it has ended: no wait */
	pthread_mutex_lock(&t->lock);
	p->pumping = false;
	if (n > 0) {
		pchunk *c = xmalloc(sizeof *c + (size_t)n);
		c->next = NULL;
		c->off = p->hi;
		c->stream = stream;
		c->len = (size_t)n;
		memcpy(c->data, buf, (size_t)n);
		if (p->tail)
			p->tail->next = c;
		else
			p->head = c;
		p->tail = c;
		p->hi += (uint64_t)n;
	} else if (n == 0) {
		p->out_done = true;
		if (!p->exited && st == 0) {
			p->exited = true;
			p->res = res;
		}
	} else if (e.code != SILO_ERR_TIMEOUT && !p->failed) {
		p->failed = true;
		p->err = e;
		p->out_done = true;
	}
	pthread_cond_broadcast(&t->cond);
	chan_leave_locked(p);
}

ssize_t proc_read(proc_reader *r, int *stream, void *buf, size_t cap, int timeout_ms, silo_error *err)
{
	proc *p = r->p;
	proc_table *t = p->t;
	if (!cap)
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, t->vm_id, "read: empty buffer");
	uint64_t deadline = mono_deadline(timeout_ms);
	pthread_mutex_lock(&t->lock);
	ssize_t rc;
	for (;;) {
		size_t n = copy_out_locked(r, stream, buf, cap);
		if (n) {
			rc = (ssize_t)n;
			break;
		}
		if (p->failed && !p->exited) {
			if (err)
				*err = p->err;
			rc = -1;
			break;
		}
		if (p->out_done || p->discarded) {
			rc = 0;
			break;
		}
		if (t->closing) {
			rc = silo_fail_vm(err, SILO_ERR_CONFLICT, 0, t->vm_id, "the sandbox is shutting down");
			break;
		}
		int ms = slice(timeout_ms, deadline);
		if (timeout_ms >= 0 && ms == 0) {
			rc = silo_fail_vm(err, SILO_ERR_TIMEOUT, ETIMEDOUT, t->vm_id, "no output from %s in %d ms", p->id,
					  timeout_ms);
			break;
		}
		if (!p->pumping && p->hi - p->lo < PROC_BUF)
			pump_locked(p, ms);
		else
			wait_ms(t, ms);   /* another reader pumps, or the slowest reader must catch up */
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

/* ---- control ---- */

/* Run fn on p's live channel task; ESRCH when it is gone. */
static int with_task(proc *p, const char *what, silo_error *err)
{
	if (!p->task_freed && !p->discarded && chan_enter_locked(p))
		return 0;
	return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, ESRCH, p->t->vm_id, "%s: process %s is no longer running", what,
			    p->id);
}

int proc_stdin(proc *p, const void *buf, size_t len, bool eof, int timeout_ms, size_t *taken, silo_error *err)
{
	proc_table *t = p->t;
	const uint8_t *src = buf;
	size_t done = 0;
	uint64_t deadline = mono_deadline(timeout_ms);
	int rc = 0;
	pthread_mutex_lock(&t->lock);
	if (with_task(p, "stdin", err) < 0) {
		pthread_mutex_unlock(&t->lock);
		return -1;
	}
	for (;;) {
		if (t->closing) {
			rc = silo_fail_vm(err, SILO_ERR_CONFLICT, 0, t->vm_id, "the sandbox is shutting down");
			break;
		}
		int ms = slice(timeout_ms, deadline);
		if (timeout_ms >= 0 && ms == 0) {
			rc = silo_fail_vm(err, SILO_ERR_TIMEOUT, ETIMEDOUT, t->vm_id,
					  "stdin: %s took %zu of %zu bytes in %d ms (it is not reading its input)", p->id, done,
					  len, timeout_ms);
			break;
		}
		pthread_mutex_unlock(&t->lock);
		size_t k = 0;
		silo_error e = {0};
		int r = chan_exec_stdin_timed(t->c, p->task, src ? src + done : NULL, len - done, eof, ms, &k, &e);
		pthread_mutex_lock(&t->lock);
		done += k;
		if (r == 0)
			break;
		if (e.code != SILO_ERR_TIMEOUT) {
			if (err)
				*err = e;
			rc = -1;
			break;
		}
	}
	chan_leave_locked(p);
	pthread_mutex_unlock(&t->lock);
	if (taken)
		*taken = done;
	return rc;
}

static int simple_ctl(proc *p, const char *what, int sig, uint16_t rows, uint16_t cols, silo_error *err)
{
	proc_table *t = p->t;
	pthread_mutex_lock(&t->lock);
	if (with_task(p, what, err) < 0) {
		pthread_mutex_unlock(&t->lock);
		return -1;
	}
	pthread_mutex_unlock(&t->lock);
	int rc = sig ? chan_exec_signal(t->c, p->task, sig, err) : chan_exec_resize(t->c, p->task, rows, cols, err);
	pthread_mutex_lock(&t->lock);
	chan_leave_locked(p);
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int proc_signal(proc *p, int sig, silo_error *err)
{
	if (sig < 1 || sig > 64)
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, p->t->vm_id, "signal must be 1..64, got %d", sig);
	return simple_ctl(p, "signal", sig, 0, 0, err);
}

int proc_resize(proc *p, uint16_t rows, uint16_t cols, silo_error *err)
{
	if (!p->pty)
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, p->t->vm_id, "resize: process %s has no PTY", p->id);
	if (!rows || !cols || rows > 4096 || cols > 4096)
		return silo_fail_vm(err, SILO_ERR_INVALID_CONFIG, 0, p->t->vm_id, "resize: rows and cols must be 1..4096");
	return simple_ctl(p, "resize", 0, rows, cols, err);
}

int proc_wait(proc *p, int timeout_ms, exec_result *res, silo_error *err)
{
	proc_table *t = p->t;
	uint64_t deadline = mono_deadline(timeout_ms);
	pthread_mutex_lock(&t->lock);
	int rc;
	for (bool asked = false;; asked = true) {
		if (p->exited) {
			if (res)
				*res = p->res;
			rc = 0;
			break;
		}
		if (p->failed) {
			if (err)
				*err = p->err;
			rc = -1;
			break;
		}
		if (t->closing) {
			rc = silo_fail_vm(err, SILO_ERR_CONFLICT, 0, t->vm_id, "the sandbox is shutting down");
			break;
		}
		int ms = slice(timeout_ms, deadline);
		if (timeout_ms >= 0 && ms == 0 && asked) {
			rc = silo_fail_vm(err, SILO_ERR_TIMEOUT, ETIMEDOUT, t->vm_id, "%s still running after %d ms", p->id,
					  timeout_ms);
			break;
		}
		if (!chan_enter_locked(p)) {
			wait_ms(t, ms ? ms : 1);   /* the task is being freed: its status is on its way */
			continue;
		}
		pthread_mutex_unlock(&t->lock);
		exec_result r;
		silo_error e = {0};
		int k = chan_exec_status(t->c, p->task, ms, &r, &e);   /* ms 0: only asks */
		pthread_mutex_lock(&t->lock);
		if (k == 0 && !p->exited) {
			p->exited = true;
			p->res = r;
		} else if (k < 0 && e.code != SILO_ERR_TIMEOUT && !p->failed && !p->exited) {
			p->failed = true;
			p->err = e;
		}
		chan_leave_locked(p);
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

void proc_remove(proc *p)
{
	proc_table *t = p->t;
	pthread_mutex_lock(&t->lock);
	if (!p->exited || !p->out_done)
		discard_locked(p);
	unlist_locked(p);
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

int proc_signal_number(const char *name)
{
	static const struct {
		const char *n;
		int s;
	} names[] = {{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"KILL", SIGKILL}, {"USR1", SIGUSR1},
		     {"USR2", SIGUSR2}, {"PIPE", SIGPIPE}, {"ALRM", SIGALRM}, {"TERM", SIGTERM}, {"CONT", SIGCONT},
		     {"STOP", SIGSTOP}, {"TSTP", SIGTSTP}, {"WINCH", SIGWINCH}};
	if (!name || !*name)
		return 0;
	if (name[0] >= '0' && name[0] <= '9') {
		char *end;
		long v = strtol(name, &end, 10);
		return !*end && v >= 1 && v <= 64 ? (int)v : 0;
	}
	const char *n = strncasecmp(name, "SIG", 3) ? name : name + 3;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (!strcasecmp(n, names[i].n))
			return names[i].s;
	return 0;
}
