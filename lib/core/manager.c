/* SPDX-License-Identifier: Apache-2.0
 * The manager (see manager.h). Locking:
 *   m->lock     the table of live sandboxes (entries, counts, allocation); never
 *               held across provider calls, registry writes or event delivery;
 *   e->lock     one per sandbox: its operation count, port forwards, deleting
 *               flag and last recorded state; e->idle is signalled when the
 *               last operation ends, so delete can wait for it (the sandbox's
 *               processes are in its process table, lib/core/proc.c);
 *   m->ev_lock  the subscriber list (events are delivered under it, in order);
 *   m->pend_lock the queue of state transitions on their way to the registry
 *               (group commit, below state_write): queued in the order the
 *               sandboxes moved, written by one flusher at a time, batch by
 *               batch in that order; not held across the registry write.
 * An entry stays allocated while m->lock says it is referenced (e->refs).
 * Recovery after a restart: every sandbox the registry lists as live is in the
 * table at once (e->recovering, no sb yet) and reattached by its own thread, so
 * silod serves requests meanwhile; operations on it wait for the outcome
 * (e->idle is signalled), a lost one leaves the table. manager_close waits for
 * the recovery threads (m->recovering under m->mon_lock).
 */
#include "core/cleanup.h"
#include "core/defaults.h"
#include "core/manager.h"
#include "core/portfwd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "core/mgr_internal.h"
#include "core/owner.h"
#include "core/proc.h"
#include "common/util.h"
#include "registry/registry.h"
#include "trust/trust.h"

#define DEFAULT_MAX 64
#define DEFAULT_GRACE_MS 3000

typedef struct mentry {
	struct mentry *next;
	manager *m;
	char id[SILO_ID_MAX];
	char name[SPEC_NAME_MAX + 1];
	char provider[32];
	vm_spec spec;
	uint64_t created_ms;
	sandbox *sb;                  /* NULL while provisioning */
	int refs;                     /* under m->lock */

	pthread_mutex_t lock;
	pthread_cond_t idle;
	int ops;                      /* operations in flight */
	bool deleting;
	bool recovering;              /* reattach after a restart in progress (sb NULL) */
	bool lost;                    /* ... and it failed: the entry leaves the table */
	bool unhealthy_reported;
	bool violated;                /* the guest left its scope: the monitor terminates it */
	pid_t client;                 /* bound client (owner.h); deleted when it is gone */
	unsigned long long client_start;
	char violation[256];          /* why */
	char state[16];               /* last state recorded in the registry */
	portfwd *fwd[MAX_PORT_FORWARDS];   /* port forwards into the sandbox (lib/core/portfwd.c) */
	size_t nfwd;
} mentry;

typedef struct subscriber {
	struct subscriber *next;
	int id;
	mgr_event_cb cb;
	void *ud;
} subscriber;

struct manager {
	manager_config cfg;
	char *state_dir;
	char *fallback;
	registry *reg;
	audit_log *audit;
	metrics *met;
	host_capacity cap;

	provider_info *providers;
	size_t nproviders;

	pthread_mutex_t lock;
	mentry *entries;
	size_t count;
	uint64_t alloc_vcpus, alloc_mb;

	pthread_mutex_t ev_lock;
	subscriber *subs;
	int next_sub;
	uint64_t ev_seq;
	uint64_t ev_reserved;         /* seqs up to this are recorded in STATE/events.seq */

	pthread_t monitor;
	bool monitor_running;
	int recovering;               /* recovery threads running (under mon_lock) */
	pthread_mutex_t mon_lock;
	pthread_cond_t mon_cond;
	bool stopping;
	uint64_t started_ms;
	struct mgr_pools *pools;      /* warm pools (mgr_pool.c) */

	pthread_mutex_t pend_lock;
	pthread_cond_t pend_cond;     /* a batch was written or refused */
	struct pending_state *pend, **pend_tail;
	size_t npend;
	bool pend_flushing;           /* a flusher is writing the head of the queue */
	uint64_t pend_enq, pend_done; /* transitions queued / written (or skipped), ever */
	uint64_t pend_fail_gen;       /* batches the registry refused */
};

/* A state transition not yet in the registry (see pend_lock). */
typedef struct pending_state {
	struct pending_state *next;
	char id[SILO_ID_MAX];
	char old_state[16], new_state[16];
	char *reason;
} pending_state;

#define MAX_PENDING_STATES 100000
#define STATE_BATCH 256               /* transitions per transaction at most */

struct mgr_pools **manager_pools_slot(manager *m)
{
	return &m->pools;
}

/* An operation slot on a live sandbox (manager_op_begin). */
struct mgr_op {
	manager *m;
	mentry *e;
};

struct mgr_exec {
	mgr_op op;
	proc *p;
	proc_reader *r;
	chan_output_cb cb;
	void *ud;
	bool waited;
	uint64_t start_ns;
	char actor[64];
	char cmd[256];
};

static const char *const event_names[MGR_EV__COUNT] = {
	[MGR_EV_READY] = "ready",
	[MGR_EV_SPAWNED] = "spawned",
	[MGR_EV_TERMINATED] = "terminated",
	[MGR_EV_STATE_CHANGE] = "state-change",
	[MGR_EV_HEALTH_WARNING] = "health-warning",
	[MGR_EV_SECURITY_VIOLATION] = "security-violation",
	[MGR_EV_ERROR] = "error",
	[MGR_EV_DEPLOYMENT] = "deployment",
	[MGR_EV_BUDGET_WARNING] = "budget-warning",
	[MGR_EV_BUDGET_EXCEEDED] = "budget-exceeded",
	[MGR_EV_ISOLATION_FALLBACK] = "isolation-fallback",
	[MGR_EV_EGRESS_DENIED] = "egress-denied",
	[MGR_EV_TARGET] = "target",
};

const char *mgr_event_name(mgr_event_type t)
{
	return (unsigned)t < MGR_EV__COUNT ? event_names[t] : "unknown";
}

json_t *mgr_event_json(const mgr_event *ev)
{
	char ts[40];
	format_time_ms(ev->ts_ms, ts, sizeof ts);
	json_t *o = json_pack("{s:I,s:s,s:s}", "seq", (json_int_t)ev->seq, "type", mgr_event_name(ev->type),
			      "time", ts);
	if (ev->sandbox_id[0])
		json_object_set_new(o, "sandbox_id", json_string(ev->sandbox_id));
	if (ev->prev_state[0] || ev->type == MGR_EV_STATE_CHANGE)
		json_object_set_new(o, "previous_state", json_string(ev->prev_state));
	if (ev->state[0])
		json_object_set_new(o, "state", json_string(ev->state));
	if (ev->code[0])
		json_object_set_new(o, "code", json_string(ev->code));
	if (ev->reason[0])
		json_object_set_new(o, "reason", json_string(ev->reason));
	if (ev->deployment[0])
		json_object_set_new(o, "deployment", json_string(ev->deployment));
	if (ev->team[0])
		json_object_set_new(o, "team", json_string(ev->team));
	return o;
}

/* ---- events ---- */

/* Event sequence numbers keep growing across restarts (kill -9 included):
 * STATE/events.seq holds a high-water mark reserved in blocks before any seq
 * below it is handed out; the next manager starts there. Under ev_lock. */
#define EV_SEQ_BLOCK 4096

static void seq_reserve(manager *m, uint64_t upto)
{
	char path[PATH_MAX], text[32];
	snprintf(path, sizeof path, "%s/events.seq", m->state_dir);
	int n = snprintf(text, sizeof text, "%" PRIu64 "\n", upto);
	silo_error err;
	if (write_file_atomic(path, text, (size_t)n, 0600, &err) < 0)
		log_warn("events: %s (sequence numbers may repeat after a restart)", err.message);
	m->ev_reserved = upto;   /* not retried on every event if the disk is full */
}

static void seq_load(manager *m)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/events.seq", m->state_dir);
	char *text = NULL;
	size_t len;
	silo_error err;
	if (read_file(path, 64, &text, &len, &err) == 0) {
		char *end;
		unsigned long long v = strtoull(text, &end, 10);
		if (end != text && (*end == '\n' || !*end))
			m->ev_seq = v;
	}
	free(text);
	m->ev_reserved = m->ev_seq;
}

static uint64_t next_seq(manager *m)
{
	uint64_t s = ++m->ev_seq;
	if (s > m->ev_reserved)
		seq_reserve(m, s + EV_SEQ_BLOCK);
	return s;
}

static void emit(manager *m, mgr_event_type type, const char *id, const char *prev, const char *state,
		 const char *code, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static void emit(manager *m, mgr_event_type type, const char *id, const char *prev, const char *state,
		 const char *code, const char *fmt, ...)
{
	mgr_event ev = {.type = type, .ts_ms = now_realtime_ms()};
	snprintf(ev.sandbox_id, sizeof ev.sandbox_id, "%s", id ? id : "");
	snprintf(ev.prev_state, sizeof ev.prev_state, "%s", prev ? prev : "");
	snprintf(ev.state, sizeof ev.state, "%s", state ? state : "");
	snprintf(ev.code, sizeof ev.code, "%s", code ? code : "");
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(ev.reason, sizeof ev.reason, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_lock(&m->ev_lock);
	ev.seq = next_seq(m);
	for (subscriber *s = m->subs; s; s = s->next)
		s->cb(s->ud, &ev);
	pthread_mutex_unlock(&m->ev_lock);
	log_debug("event %s %s %s", mgr_event_name(type), ev.sandbox_id, ev.reason);
}

void manager_emit(manager *m, mgr_event_type type, const char *sandbox_id, const char *deployment,
		  const char *team, const char *state, const char *code, const char *fmt, ...)
{
	mgr_event ev = {.type = type, .ts_ms = now_realtime_ms()};
	snprintf(ev.sandbox_id, sizeof ev.sandbox_id, "%s", sandbox_id ? sandbox_id : "");
	snprintf(ev.deployment, sizeof ev.deployment, "%s", deployment ? deployment : "");
	snprintf(ev.team, sizeof ev.team, "%s", team ? team : "");
	snprintf(ev.state, sizeof ev.state, "%s", state ? state : "");
	snprintf(ev.code, sizeof ev.code, "%s", code ? code : "");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ev.reason, sizeof ev.reason, fmt, ap);
	va_end(ap);
	if (type == MGR_EV_HEALTH_WARNING)
		metrics_inc(m->met, M_HEALTH_WARNINGS_TOTAL, 1);
	pthread_mutex_lock(&m->ev_lock);
	ev.seq = next_seq(m);
	for (subscriber *s = m->subs; s; s = s->next)
		s->cb(s->ud, &ev);
	pthread_mutex_unlock(&m->ev_lock);
	log_info("event %s %s %s %s", mgr_event_name(type), ev.deployment, ev.sandbox_id, ev.reason);
}

int manager_subscribe(manager *m, mgr_event_cb cb, void *ud)
{
	subscriber *s = xcalloc(1, sizeof *s);
	s->cb = cb;
	s->ud = ud;
	pthread_mutex_lock(&m->ev_lock);
	s->id = ++m->next_sub;
	s->next = m->subs;
	m->subs = s;
	pthread_mutex_unlock(&m->ev_lock);
	return s->id;
}

void manager_unsubscribe(manager *m, int sub_id)
{
	pthread_mutex_lock(&m->ev_lock);
	for (subscriber **pp = &m->subs; *pp; pp = &(*pp)->next) {
		if ((*pp)->id == sub_id) {
			subscriber *s = *pp;
			*pp = s->next;
			free(s);
			break;
		}
	}
	pthread_mutex_unlock(&m->ev_lock);
}

void manager_audit(manager *m, const char *actor, const char *sandbox_id, const char *event,
		   uint64_t duration_ms, json_t *details)
{
	silo_error e;
	if (audit_append(m->audit, actor ? actor : "silod", sandbox_id, event, duration_ms, details, &e) < 0)
		log_error("audit: %s", e.message);
}

/* ---- per-request timing (manager.h) ---- */

static __thread struct {
	bool on;
	unsigned n;
	uint64_t start, last;
	const char *name[MGR_TIMING_MAX];
	uint64_t ns[MGR_TIMING_MAX];
} tl_timing;

void mgr_timing_start(uint64_t since_ns)
{
	tl_timing.on = since_ns != 0;
	tl_timing.n = 0;
	tl_timing.start = tl_timing.last = since_ns;
}

void mgr_timing_mark(const char *name)
{
	if (!tl_timing.on)
		return;
	uint64_t now = now_mono_ns();
	unsigned i = MGR_TIMING_MAX - 1;   /* full: later marks fold into the last */
	if (tl_timing.n < MGR_TIMING_MAX) {
		i = tl_timing.n++;
		tl_timing.ns[i] = 0;
		tl_timing.name[i] = name;
	}
	tl_timing.ns[i] += now - tl_timing.last;
	tl_timing.last = now;
}

void mgr_timing_format(char *buf, size_t n)
{
	size_t off = 0;
	buf[0] = '\0';
	if (!tl_timing.on)
		return;
	for (unsigned i = 0; i < tl_timing.n && off < n; i++)
		off += (size_t)snprintf(buf + off, n - off, "%s;dur=%.3f, ", tl_timing.name[i], tl_timing.ns[i] / 1e6);
	if (off < n)
		snprintf(buf + off, n - off, "total;dur=%.3f", (now_mono_ns() - tl_timing.start) / 1e6);
	memset(&tl_timing, 0, sizeof tl_timing);
}

void mgr_audit_batch(manager *m, const audit_record *v, size_t n)
{
	silo_error e;
	if (n && audit_append_batch(m->audit, v, n, &e) < 0)
		log_error("audit: %s", e.message);
}

void manager_note_error(manager *m, const silo_error *err)
{
	unsigned n = metrics_record_error(m->met, err->code);
	if (err->code == SILO_ERR_SECURITY_VIOLATION)
		emit(m, MGR_EV_SECURITY_VIOLATION, err->vm_id, NULL, NULL, silo_code_name(err->code), "%s",
		     err->message);
	if (n)
		emit(m, MGR_EV_HEALTH_WARNING, NULL, NULL, NULL, silo_code_name(err->code),
		     "more than %u errors within %u ms (latest: %s: %s)", m->cfg.error_threshold,
		     m->cfg.error_window_ms, silo_code_name(err->code), err->message);
}

/* ---- table ---- */

static mentry *find_locked(manager *m, const char *id)
{
	for (mentry *e = m->entries; e; e = e->next)
		if (!strcmp(e->id, id))
			return e;
	/* A unique name of a live sandbox also resolves. */
	mentry *hit = NULL;
	for (mentry *e = m->entries; e; e = e->next) {
		if (!strcmp(e->name, id)) {
			if (hit)
				return NULL;
			hit = e;
		}
	}
	return hit;
}

static void entry_free(mentry *e)
{
	spec_free(&e->spec);
	pthread_mutex_destroy(&e->lock);
	pthread_cond_destroy(&e->idle);
	free(e);
}

static void unref(manager *m, mentry *e)
{
	pthread_mutex_lock(&m->lock);
	bool last = --e->refs == 0;
	pthread_mutex_unlock(&m->lock);
	if (last)
		entry_free(e);
}

/* Remove from the table (once) and drop the table's reference. */
static void unlink_entry(manager *m, mentry *e)
{
	bool found = false;
	pthread_mutex_lock(&m->lock);
	for (mentry **pp = &m->entries; *pp; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			found = true;
			m->count--;
			m->alloc_vcpus -= e->spec.vcpus;
			m->alloc_mb -= e->spec.memory_mb;
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
	if (found)
		unref(m, e);
}

/* Look up a live sandbox, taking a reference. A name that several live
 * sandboxes share is refused as ambiguous (CONFLICT), naming them. */
static mentry *get_entry(manager *m, const char *id, silo_error *err)
{
	pthread_mutex_lock(&m->lock);
	mentry *e = find_locked(m, id);
	if (e)
		e->refs++;
	char ids[256] = "";
	size_t nid = 0, off = 0;
	for (mentry *x = m->entries; !e && x; x = x->next)
		if (!strcmp(x->name, id) && off < sizeof ids - 1) {
			off += (size_t)snprintf(ids + off, sizeof ids - off, "%s%s", nid ? ", " : "", x->id);
			nid++;
		}
	pthread_mutex_unlock(&m->lock);
	if (!e && nid > 1)
		silo_fail(err, SILO_ERR_CONFLICT, 0, "name '%s' is ambiguous: %zu live sandboxes have it (%s); use an id",
			  id, nid, ids);
	else if (!e)
		silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, 0, id, "no live sandbox with id or name '%s'", id);
	return e;
}

/* With e->lock held: wait until a recovery in progress has an outcome; false
 * (and err set) if the sandbox was lost. */
static bool wait_recovered_locked(mentry *e, silo_error *err)
{
	while (e->recovering)
		pthread_cond_wait(&e->idle, &e->lock);
	if (e->lost)
		silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, 0, e->id, "sandbox %s was lost across the silod restart", e->id);
	return !e->lost;
}

static const char *meta_value(const vm_spec *s, const char *key)
{
	for (size_t i = 0; key && i < s->n_metadata; i++)
		if (!strcmp(s->metadata[i].key, key))
			return s->metadata[i].value;
	return NULL;
}

int manager_sandbox_spec(manager *m, const char *id_or_name, char rid[SILO_ID_MAX], char provider[32],
			 vm_spec *spec, silo_error *err)
{
	mentry *e = get_entry(m, id_or_name, err);
	if (!e)
		return -1;
	snprintf(rid, SILO_ID_MAX, "%s", e->id);
	pthread_mutex_lock(&e->lock);
	snprintf(provider, 32, "%s", e->provider[0] ? e->provider : e->spec.provider ? e->spec.provider : "");
	pthread_mutex_unlock(&e->lock);
	spec_copy(spec, &e->spec);
	unref(m, e);
	return 0;
}

/* The reaper (monitor) reads spec.timeout_s without e->lock: it is written
 * and read atomically. */
int manager_set_lifetime(manager *m, const char *id, uint32_t seconds_from_now, uint64_t *end_ms, silo_error *err)
{
	mentry *e = get_entry(m, id, err);
	if (!e)
		return -1;
	uint64_t now = now_realtime_ms(), age = now > e->created_ms ? now - e->created_ms : 0;
	uint64_t t = (age + 999) / 1000 + seconds_from_now;
	if (t > UINT32_MAX)
		t = UINT32_MAX;
	__atomic_store_n(&e->spec.timeout_s, (uint32_t)t, __ATOMIC_RELAXED);
	if (end_ms)
		*end_ms = e->created_ms + t * 1000;
	unref(m, e);
	return 0;
}

int manager_lifetime(manager *m, const char *id, uint64_t *created_ms, uint64_t *end_ms, silo_error *err)
{
	mentry *e = get_entry(m, id, err);
	if (!e)
		return -1;
	uint32_t t = __atomic_load_n(&e->spec.timeout_s, __ATOMIC_RELAXED);
	*created_ms = e->created_ms;
	*end_ms = t ? e->created_ms + (uint64_t)t * 1000 : 0;
	unref(m, e);
	return 0;
}

int manager_resolve(manager *m, const char *id_or_name, char out[SILO_ID_MAX], silo_error *err)
{
	mentry *e = get_entry(m, id_or_name, err);
	if (!e)
		return -1;
	snprintf(out, SILO_ID_MAX, "%s", e->id);
	unref(m, e);
	return 0;
}

/* ---- state recording ---- */

static bool is_violation(const char *reason)
{
	return reason && (strstr(reason, "PROTOCOL") || strstr(reason, "SECURITY_VIOLATION") ||
			  strstr(reason, "violation"));
}

/* Group commit of state transitions. state_write queues the transition (in
 * the order the sandboxes moved) and returns once it is in the registry, or
 * once the registry refused it. The first writer that finds no flush running
 * becomes the flusher: it writes everything queued (up to STATE_BATCH) in ONE
 * transaction (registry_set_states) without holding pend_lock; writers that
 * queue meanwhile wait, and the next batch is written by whichever of them
 * sees the flusher gone. So under load N takes cost one transaction, not N,
 * and each caller still returns only after the COMMIT holding its row.
 * A refused batch (a full state disk) stays queued, in order, and is retried
 * by the monitor (flush_pending); its writers return at once.
 * Across kill -9 (registry.h, Durability): a transition whose caller returned
 * is in the WAL; a batch being written is committed whole or not at all, and
 * none of its callers had returned (no reply was sent for it); recovery reads
 * every live sandbox's real state at the next start (recover), so a lost
 * transition is corrected there, never invented. */
static void free_pending(pending_state *p)
{
	free(p->reason);
	free(p);
}

/* With pend_lock held and no flusher: write the head of the queue; 0 or -1. */
static int flush_batch_locked(manager *m)
{
	reg_state_change v[STATE_BATCH];
	size_t n = 0;
	for (pending_state *p = m->pend; p && n < STATE_BATCH; p = p->next)
		v[n++] = (reg_state_change){p->id, p->old_state, p->new_state, p->reason};
	if (!n)
		return 0;
	m->pend_flushing = true;
	pthread_mutex_unlock(&m->pend_lock);
	silo_error err = {0};
	int rc = registry_set_states(m->reg, v, n, &err);
	pthread_mutex_lock(&m->pend_lock);
	if (rc == 0) {
		for (size_t i = 0; i < n; i++) {
			pending_state *p = m->pend;
			m->pend = p->next;
			free_pending(p);
		}
		if (!m->pend)
			m->pend_tail = &m->pend;
		m->npend -= n;
		m->pend_done += n;
	} else {
		m->pend_fail_gen++;
		log_error("registry: %s (%zu state writes kept, retried by the monitor)", err.message, m->npend);
	}
	m->pend_flushing = false;
	pthread_cond_broadcast(&m->pend_cond);
	return rc;
}

/* Record a state transition in the registry (group commit, above). */
static void state_write(manager *m, const char *id, const char *old, const char *new_state, const char *reason)
{
	pthread_mutex_lock(&m->pend_lock);
	if (m->npend >= MAX_PENDING_STATES) {
		pthread_mutex_unlock(&m->pend_lock);
		log_error("registry: %zu state writes pending; dropping %s -> %s of %s", m->npend, old, new_state, id);
		return;
	}
	pending_state *p = xcalloc(1, sizeof *p);
	snprintf(p->id, sizeof p->id, "%s", id);
	snprintf(p->old_state, sizeof p->old_state, "%s", old ? old : "");
	snprintf(p->new_state, sizeof p->new_state, "%s", new_state);
	p->reason = xstrdup(reason ? reason : "");
	*m->pend_tail = p;
	m->pend_tail = &p->next;
	m->npend++;
	uint64_t me = ++m->pend_enq, gen = m->pend_fail_gen;
	while (m->pend_done < me && m->pend_fail_gen == gen) {
		if (!m->pend_flushing)
			flush_batch_locked(m);
		else
			pthread_cond_wait(&m->pend_cond, &m->pend_lock);
	}
	pthread_mutex_unlock(&m->pend_lock);
}

/* The monitor's retry of what the registry refused. */
static void flush_pending(manager *m)
{
	pthread_mutex_lock(&m->pend_lock);
	while (m->pend && !m->pend_flushing && flush_batch_locked(m) == 0)
		;
	pthread_mutex_unlock(&m->pend_lock);
}

/* Record new_state for e (idempotent): registry row + history, events. */
static void record_state(mentry *e, const char *new_state, const char *reason)
{
	manager *m = e->m;
	char old[16];
	pthread_mutex_lock(&e->lock);
	if (!strcmp(e->state, new_state)) {
		pthread_mutex_unlock(&e->lock);
		return;
	}
	snprintf(old, sizeof old, "%s", e->state);
	snprintf(e->state, sizeof e->state, "%s", new_state);
	pthread_mutex_unlock(&e->lock);

	mgr_timing_mark("state-change");
	state_write(m, e->id, old, new_state, reason);
	mgr_timing_mark("registry");
	emit(m, MGR_EV_STATE_CHANGE, e->id, old, new_state, NULL, "%s", reason ? reason : "");
	if (!strcmp(new_state, "running") && !strcmp(old, "provisioning"))
		emit(m, MGR_EV_READY, e->id, NULL, new_state, NULL, "agent ready");
	else if (!strcmp(new_state, "terminated"))
		emit(m, MGR_EV_TERMINATED, e->id, old, new_state, NULL, "%s", reason ? reason : "");
	else if (!strcmp(new_state, "error")) {
		if (is_violation(reason)) {
			/* The guest left its scope: terminate it (from the monitor, not
			 * from this thread, which may be the channel's reader). */
			pthread_mutex_lock(&e->lock);
			e->violated = true;
			snprintf(e->violation, sizeof e->violation, "%s", reason);
			pthread_mutex_unlock(&e->lock);
			pthread_mutex_lock(&m->mon_lock);
			pthread_cond_broadcast(&m->mon_cond);
			pthread_mutex_unlock(&m->mon_lock);
			metrics_inc(m->met, M_SECURITY_VIOLATIONS_TOTAL, 1);
			emit(m, MGR_EV_SECURITY_VIOLATION, e->id, old, new_state, "SECURITY_VIOLATION", "%s",
			     reason ? reason : "");
		}
		emit(m, MGR_EV_ERROR, e->id, old, new_state, NULL, "%s", reason ? reason : "");
	}
}

static void on_state_cb(void *ud, sandbox *sb, sb_state old, sb_state new_state, const char *reason)
{
	(void)sb;
	(void)old;
	record_state((mentry *)ud, sb_state_name(new_state), reason);
}

/* An egress denial (docs/network.md "Denials"): counted, audited, published.
 * From the sandbox's network reader thread. The record is silo-net's JSON:
 * {kind, destination, rule, reason, suppressed, ts_ms}. */
static void on_net_cb(void *ud, sandbox *sb, const char *json)
{
	mentry *e = ud;
	manager *m = e->m;
	json_t *rec = json_loads(json, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(rec)) {
		json_decref(rec);
		return;
	}
	json_int_t suppressed = json_integer_value(json_object_get(rec, "suppressed"));
	metrics_inc(m->met, M_EGRESS_DENIALS_TOTAL, 1 + (uint64_t)(suppressed > 0 ? suppressed : 0));
	const char *kind = json_string_value(json_object_get(rec, "kind"));
	const char *dest = json_string_value(json_object_get(rec, "destination"));
	const char *why = json_string_value(json_object_get(rec, "reason"));
	json_object_del(rec, "ts_ms");
	manager_audit(m, "silod", sb->id, "egress-denied", 0, rec);
	emit(m, MGR_EV_EGRESS_DENIED, sb->id, NULL, NULL, "EGRESS_DENIED", "%s %s: %s", kind ? kind : "?",
	     dest ? dest : "?", why ? why : "");
	json_decref(rec);
}

/* ---- open / providers / recovery ---- */

static void probe_providers(manager *m)
{
	const provider_ops *const *all = provider_all();
	size_t n = 0;
	while (all && all[n])
		n++;
	m->providers = xcalloc(n ? n : 1, sizeof *m->providers);
	for (size_t i = 0; i < n; i++) {
		provider_info *pi = &m->providers[i];
		pi->name = all[i]->name;
		all[i]->probe(pi);
		pi->name = all[i]->name;
		log_info("provider %s: %s %s%s%s", pi->name, pi->available ? "available" : "unavailable",
			 pi->version, pi->available ? "" : ": ", pi->available ? "" : pi->reason);
	}
	m->nproviders = n;
}

json_t *manager_providers_json(manager *m)
{
	json_t *a = json_array();
	for (size_t i = 0; i < m->nproviders; i++) {
		provider_info *pi = &m->providers[i];
		json_t *o = json_pack("{s:s,s:s,s:s,s:b}", "name", pi->name, "version", pi->version, "accel",
				      pi->accel, "available", pi->available);
		if (!pi->available)
			json_object_set_new(o, "reason", json_string(pi->reason));
		json_array_append_new(a, o);
	}
	return a;
}

static mentry *entry_new(manager *m, const char *id, const vm_spec *spec)
{
	mentry *e = xcalloc(1, sizeof *e);
	e->m = m;
	snprintf(e->id, sizeof e->id, "%s", id);
	snprintf(e->name, sizeof e->name, "%s", spec->name);
	spec_copy(&e->spec, spec);
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->idle, NULL);
	e->refs = 1;   /* the table's */
	e->created_ms = now_realtime_ms();
	return e;
}

static void insert_locked(manager *m, mentry *e)
{
	e->next = m->entries;
	m->entries = e;
	m->count++;
	m->alloc_vcpus += e->spec.vcpus;
	m->alloc_mb += e->spec.memory_mb;
}

/* Tear down what a sandbox that could not be reattached left on the host
 * (owner.h: its recorded supervisor, cgroups, tagged processes, mounts, the
 * run dir below our runtime dir); the verification is recorded for GET and
 * retried at the next start if dirty. */
static void clean_dead(manager *m, const reg_sandbox *r)
{
	char expect[PATH_MAX];
	snprintf(expect, sizeof expect, "%s/sandboxes/%s", silo_runtime_dir(), r->id);
	cleanup_report rep;
	owner_reap_id(r->id, r->provider, &rep);
	silo_error err = {0};
	if (cleanup_record(m->state_dir, r->id, expect, &rep, &err) < 0)
		log_warn("recover %s: %s", r->id, err.message);
	cleanup_report_free(&rep);
}

static bool sweep_is_live(void *ud, const char *id)
{
	manager *m = ud;
	pthread_mutex_lock(&m->lock);
	bool live = false;
	for (mentry *e = m->entries; e && !live; e = e->next)
		live = !strcmp(e->id, id);
	pthread_mutex_unlock(&m->lock);
	return live;
}

static void sweep_reaped(void *ud, const char *id, const owner_rec *r, const cleanup_report *rep)
{
	manager *m = ud;
	json_t *res = json_array();
	for (char **p = rep->residual_paths; p && *p; p++)
		json_array_append_new(res, json_string(*p));
	json_t *d = json_pack("{s:s,s:i,s:b,s:o}", "owner", r ? (r->kind == SB_OWNER_PROCESS ? "run" : "silod") : "unknown",
			      "owner_pid", r ? (int)r->owner_pid : 0, "host_clean", rep->host_clean, "residue", res);
	manager_audit(m, "silod", id, "orphan-reaped", 0, d);
	json_decref(d);
	json_t *had = cleanup_load_json(m->state_dir, id);
	bool keep = had && rep->host_clean;   /* a terminate's or retry's record says more */
	json_decref(had);
	if (r && r->kind == SB_OWNER_DAEMON && !keep) {   /* one of ours: GET shows the verification */
		char rundir[PATH_MAX];
		snprintf(rundir, sizeof rundir, "%s/sandboxes/%s", silo_runtime_dir(), id);
		silo_error err = {0};
		if (cleanup_record(m->state_dir, id, rundir, rep, &err) < 0)
			log_warn("sweep %s: %s", id, err.message);
	}
}

/* A sandbox the previous silod left running: its row, being reattached. */
typedef struct recovery {
	manager *m;
	mentry *e;                    /* referenced */
	reg_sandbox row;
} recovery;

static void recover_lost(manager *m, const reg_sandbox *r, const silo_error *e2)
{
	char reason[600];
	snprintf(reason, sizeof reason, "lost across silod restart: %s: %.500s", silo_code_name(e2->code), e2->message);
	state_write(m, r->id, r->state, "error", reason);
	clean_dead(m, r);
	emit(m, MGR_EV_ERROR, r->id, r->state, "error", silo_code_name(e2->code), "%s", reason);
	manager_audit(m, "silod", r->id, "lost", 0, NULL);
	log_warn("recover %s: %s", r->id, reason);
}

static void *recover_main(void *arg)
{
	recovery *rv = arg;
	manager *m = rv->m;
	mentry *e = rv->e;
	reg_sandbox *r = &rv->row;
	silo_error e2 = {0};
	sandbox *sb = NULL;
	if (sandbox_reattach(r->id, &e->spec, r->provider, (pid_t)r->pid, &sb, &e2) == 0) {
		pthread_mutex_lock(&sb->lock);
		sb->on_state = on_state_cb;
		sb->on_state_ud = e;
		sb->on_net = on_net_cb;
		sb->on_net_ud = e;
		pthread_mutex_unlock(&sb->lock);
		/* denials queued by silo-net while silod was down arrive now */
		silo_error ne = {0};
		if (sandbox_net_reattach(sb, &ne) < 0)
			log_warn("recover %s: %s (it keeps running without DNS answers or denial records)", r->id,
				 ne.message);
		owner_adopt(sb, m->state_dir);
		pthread_mutex_lock(&e->lock);
		e->sb = sb;
		e->client = owner_client(sb, &e->client_start);
		e->recovering = false;
		pthread_cond_broadcast(&e->idle);
		pthread_mutex_unlock(&e->lock);
		if (strcmp(r->state, "running") != 0)
			record_state(e, sb_state_name(sandbox_get_state(sb)), "reattached after restart");
		manager_audit(m, "silod", r->id, "reattached", 0, NULL);
		log_info("recover %s: reattached (pid %" PRId64 ")", r->id, r->pid);
	} else {
		recover_lost(m, r, &e2);
		pthread_mutex_lock(&e->lock);
		e->lost = true;
		e->recovering = false;
		pthread_cond_broadcast(&e->idle);
		pthread_mutex_unlock(&e->lock);
		unlink_entry(m, e);
	}
	unref(m, e);
	reg_sandbox_clear(r);
	free(rv);
	pthread_mutex_lock(&m->mon_lock);
	m->recovering--;
	pthread_cond_broadcast(&m->mon_cond);
	pthread_mutex_unlock(&m->mon_lock);
	return NULL;
}

static void recover(manager *m)
{
	reg_sandbox *v = NULL;
	size_t n = 0;
	silo_error err;
	reg_filter f = {.live_only = true};
	if (registry_list(m->reg, &f, &v, &n, &err) < 0) {
		log_error("recover: %s", err.message);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		reg_sandbox *r = &v[i];
		vm_spec spec = {0};
		silo_error e2 = {0};
		bool ok = false;
		if (!r->spec_toml || spec_parse(r->spec_toml, strlen(r->spec_toml), &spec, &e2) < 0) {
			if (!r->spec_toml)
				silo_fail(&e2, SILO_ERR_INTERNAL, 0, "no spec recorded");
		} else if (!strcmp(r->state, "provisioning")) {
			silo_fail(&e2, SILO_ERR_BOOT_TIMEOUT, 0, "silod stopped while the sandbox was provisioning");
		} else if (r->pid <= 0) {
			silo_fail(&e2, SILO_ERR_INTERNAL, 0, "no process recorded");
		} else {
			ok = true;
		}
		if (!ok) {
			recover_lost(m, r, &e2);
			spec_free(&spec);
			continue;
		}
		if (spec.n_secrets) {
			/* files and variables are read again; inline values were never stored */
			silo_error se = {0};
			if (spec_resolve_secrets(&spec, SPEC_SECRETS_KEEP_GOING, &se) < 0)
				log_warn("recover %s: %s", r->id, se.message);
			for (size_t k = 0; k < spec.n_secrets; k++)
				if (!spec.secrets[k].value)
					log_warn("recover %s: secret %s is not available after the restart: execs that do "
						 "not pass it are refused",
						 r->id, spec.secrets[k].key);
		}
		/* In the table now (listed, its name taken, counted); reattached in the background. */
		mentry *e = entry_new(m, r->id, &spec);
		spec_free(&spec);
		snprintf(e->provider, sizeof e->provider, "%s", r->provider);
		snprintf(e->state, sizeof e->state, "%s", r->state);
		e->created_ms = r->created_ms;
		e->recovering = true;
		recovery *rv = xcalloc(1, sizeof *rv);
		rv->m = m;
		rv->e = e;
		rv->row = *r;
		memset(r, 0, sizeof *r);   /* the row's strings move to rv */
		pthread_mutex_lock(&m->lock);
		insert_locked(m, e);
		e->refs++;   /* the recovery thread's */
		pthread_mutex_unlock(&m->lock);
		pthread_mutex_lock(&m->mon_lock);
		m->recovering++;
		pthread_mutex_unlock(&m->mon_lock);
		pthread_t th;
		if (pthread_create(&th, NULL, recover_main, rv) == 0)
			pthread_detach(th);
		else
			recover_main(rv);   /* no thread to spare: recover it here */
	}
	reg_sandboxes_free(v, n);
}

static void *monitor_main(void *arg);

int manager_open(const manager_config *cfg, manager **out, silo_error *err)
{
	manager *m = xcalloc(1, sizeof *m);
	m->cfg = *cfg;
	m->state_dir = xstrdup(cfg->state_dir ? cfg->state_dir : silo_state_dir());
	m->fallback = cfg->fallback ? xstrdup(cfg->fallback) : NULL;
	m->cfg.state_dir = m->state_dir;
	m->cfg.fallback = m->fallback;
	if (!m->cfg.max_sandboxes)
		m->cfg.max_sandboxes = DEFAULT_MAX;
	if (!m->cfg.grace_ms)
		m->cfg.grace_ms = DEFAULT_GRACE_MS;
	if (!m->cfg.error_window_ms)
		m->cfg.error_window_ms = 60000;
	if (!m->cfg.monitor_interval_ms)
		m->cfg.monitor_interval_ms = 500;
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_init(&m->ev_lock, NULL);
	pthread_mutex_init(&m->mon_lock, NULL);
	pthread_mutex_init(&m->pend_lock, NULL);
	pthread_cond_init(&m->pend_cond, NULL);
	m->pend_tail = &m->pend;
	cond_init_monotonic(&m->mon_cond);
	m->started_ms = now_realtime_ms();
	m->met = metrics_new(m->cfg.error_threshold, m->cfg.error_window_ms);

	if (mkdir_p(m->state_dir, 0700) < 0) {
		silo_fail(err, SILO_ERR_IO_ERROR, errno, "state dir %s", m->state_dir);
		goto fail;
	}
	char *real = realpath(m->state_dir, NULL);   /* ownership records name it (owner.h) */
	if (real) {
		free(m->state_dir);
		m->state_dir = real;
		m->cfg.state_dir = real;
	}
	if (host_capacity_read(&m->cap, err) < 0)
		goto fail;
	if (cfg->capacity_vcpus)
		m->cap.cpus = cfg->capacity_vcpus;
	if (cfg->capacity_memory_mb)
		m->cap.memory_mb = cfg->capacity_memory_mb;
	m->cap.cpu_overcommit = cfg->cpu_overcommit;
	m->cap.memory_overcommit = cfg->memory_overcommit;

	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/registry.db", m->state_dir);
	if (registry_open(path, &m->reg, err) < 0)
		goto fail;
	snprintf(path, sizeof path, "%s/audit.jsonl", m->state_dir);
	if (audit_open(path, &m->audit, err) < 0)
		goto fail;
	probe_providers(m);
	seq_load(m);
	manager_audit(m, "silod", NULL, "manager-start", 0, NULL);
	if (cfg->recover)
		recover(m);
	/* leftovers a previous terminate could not remove: try again now */
	int dirty = 0, cleaned = cleanup_retry_pending(m->state_dir, &dirty);
	if (cleaned || dirty) {
		json_t *d = json_pack("{s:i,s:i}", "cleaned", cleaned, "still_dirty", dirty);
		manager_audit(m, "silod", NULL, "cleanup-retry", 0, d);
		json_decref(d);
	}
	if (cfg->recover) {
		/* orphans in our runtime dir: dead `silo run`s, and sandboxes of this
		 * state dir that the registry could not give back (owner.h) */
		owner_sweep_opts so = {.state_dir = m->state_dir, .is_live = sweep_is_live, .ud = m,
				       .on_reaped = sweep_reaped};
		owner_sweep_stats st;
		owner_sweep(&so, &st);
		if (st.reaped) {
			json_t *d = json_pack("{s:i,s:i,s:i}", "reaped", st.reaped, "dirty", st.dirty, "live", st.live);
			manager_audit(m, "silod", NULL, "orphan-sweep", 0, d);
			json_decref(d);
		}
	}
	if (pthread_create(&m->monitor, NULL, monitor_main, m) != 0) {
		silo_fail(err, SILO_ERR_INTERNAL, errno, "cannot start the monitor thread");
		goto fail;
	}
	m->monitor_running = true;
	*out = m;
	return 0;
fail:
	manager_close(m, false);
	return -1;
}

/* ---- create / delete ---- */

/* With memory overcommitted, allocations may add up to more than the host has: idle
 * sandboxes touch little of their limit. What keeps that safe is this floor on what
 * the host really has free now (MemAvailable), checked at every create: 5 % of the
 * memory capacity, at least 256 MB. Under m->lock; reads /proc/meminfo (~20 us). */
static int memory_reserve_check(manager *m, silo_error *err)
{
	if (host_memory_overcommit(&m->cap) <= 1.0)
		return 0;
	uint64_t reserve = m->cap.memory_mb / 20 > 256 ? m->cap.memory_mb / 20 : 256;
	uint64_t avail = host_memory_available_mb();
	if (!avail || avail >= reserve)
		return 0;
	return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0,
			 "memory_mb: the host has %llu MB available, below the %llu MB reserve kept while memory is "
			 "overcommitted", (unsigned long long)avail, (unsigned long long)reserve);
}

/* A fork's admission, before its snapshot: would n more sandboxes of spec be
 * admitted now (count, vCPUs, memory: the rules of create_resolved)? Each copy
 * is still admitted on its own when it is created; this only refuses up front,
 * with the total, what would fail part way and be rolled back. */
int mgr_admit_copies(manager *m, const vm_spec *spec, unsigned n, silo_error *err)
{
	pthread_mutex_lock(&m->lock);
	size_t count = m->count;
	uint64_t vcpus = m->alloc_vcpus, mb = m->alloc_mb;
	pthread_mutex_unlock(&m->lock);
	if (count + n > m->cfg.max_sandboxes)
		return silo_fail(err, SILO_ERR_MAX_VMS_EXCEEDED, 0,
				 "n: %u copies would make %zu sandboxes, the configured maximum is %u", n, count + n,
				 m->cfg.max_sandboxes);
	for (unsigned i = 0; i < n; i++) {
		if (spec_check_capacity(spec, &m->cap, (uint32_t)(vcpus + (uint64_t)i * spec->vcpus),
					mb + (uint64_t)i * spec->memory_mb, err) < 0) {
			silo_error_prefix(err, "n: copy %u of %u (each %u vCPUs, %u MB; silod --cpu-overcommit and "
					  "--memory-overcommit set the ratios, docs/hac-toml.md \"Capacity\")",
					  i + 1, n, spec->vcpus, spec->memory_mb);
			return -1;
		}
	}
	return 0;
}

static void unique_id(manager *m, char id[SILO_ID_MAX])
{
	for (;;) {
		random_id("sb-", id, SILO_ID_MAX);
		reg_sandbox r;
		silo_error e;
		bool taken;
		pthread_mutex_lock(&m->lock);
		taken = find_locked(m, id) != NULL;
		pthread_mutex_unlock(&m->lock);
		if (!taken && registry_get(m->reg, id, &r, &e) == 0) {
			reg_sandbox_clear(&r);
			taken = true;
		}
		if (!taken)
			return;
	}
}

static char *metadata_json_text(const vm_spec *spec)
{
	json_t *o = json_object();
	for (size_t i = 0; i < spec->n_metadata; i++)
		json_object_set_new(o, spec->metadata[i].key, json_string(spec->metadata[i].value));
	char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return s;
}

/* Falling back from a vm provider to one that shares the host kernel is
 * never silent: a warning in the log, an isolation-fallback event and an
 * audit record, each with the reason every vm provider was skipped. */
static void note_fallback(manager *m, const char *actor, const char *id, const sandbox *sb)
{
	log_warn("%s: no vm provider available (%s): running with %s isolation (provider %s, shared host kernel)", id,
		 sb->fallback_why, provider_isolation(sb->ops), sb->ops->name);
	emit(m, MGR_EV_ISOLATION_FALLBACK, id, NULL, NULL, NULL,
	     "isolation %s (provider %s): no vm provider available: %.400s", provider_isolation(sb->ops), sb->ops->name,
	     sb->fallback_why);
	json_t *d = json_pack("{s:s,s:s,s:s}", "isolation", provider_isolation(sb->ops), "provider", sb->ops->name,
			      "reason", sb->fallback_why);
	manager_audit(m, actor, id, "isolation-fallback", 0, d);
	json_decref(d);
}

static int create_resolved(manager *m, const vm_spec *spec, const mgr_create_opts *opts, char id_out[SILO_ID_MAX],
			   silo_error *err)
{
	uint64_t t0 = now_mono_ns();
	char id[SILO_ID_MAX] = "";
	char *toml = NULL, *meta = NULL;
	id_out[0] = '\0';
	if (spec_validate(spec, err) < 0)
		goto fail_early;
	mgr_timing_mark("validate");
	if (!opts->id && !opts->restore_dir && !opts->no_pool && !opts->cold && !spec->n_secrets &&
	    mgr_pool_take(m, spec, NULL, opts->actor, id_out) == 0)
		return 0;   /* a warm sandbox from the pool (never one for a spec with secrets) */
	if (opts->id) {
		snprintf(id, sizeof id, "%s", opts->id);
		reg_sandbox r;
		silo_error e2;
		if (registry_get(m->reg, id, &r, &e2) == 0) {
			reg_sandbox_clear(&r);
			silo_fail_vm(err, SILO_ERR_CONFLICT, 0, id, "sandbox id %s is already used", id);
			goto fail_early;
		}
	} else {
		unique_id(m, id);
	}

	/* Admission: count and capacity under the table lock, reserving both. */
	mentry *e = entry_new(m, id, spec);
	snprintf(e->state, sizeof e->state, "provisioning");
	pthread_mutex_lock(&m->lock);
	if (m->count >= m->cfg.max_sandboxes) {
		pthread_mutex_unlock(&m->lock);
		entry_free(e);
		silo_fail(err, SILO_ERR_MAX_VMS_EXCEEDED, 0,
			  "%zu sandboxes are running, the configured maximum is %u", m->count,
			  m->cfg.max_sandboxes);
		goto fail_early;
	}
	if (find_locked(m, id)) {
		pthread_mutex_unlock(&m->lock);
		entry_free(e);
		silo_fail_vm(err, SILO_ERR_CONFLICT, 0, id, "sandbox id %s is already used", id);
		goto fail_early;
	}
	if (spec_check_capacity(spec, &m->cap, (uint32_t)m->alloc_vcpus, m->alloc_mb, err) < 0 ||
	    memory_reserve_check(m, err) < 0) {
		pthread_mutex_unlock(&m->lock);
		entry_free(e);
		goto fail_early;
	}
	if (opts->admit) {
		size_t owned = 0;
		for (mentry *x = m->entries; x; x = x->next) {
			const char *v = meta_value(&x->spec, opts->owner_key);
			owned += v && opts->owner_value && !strcmp(v, opts->owner_value);
		}
		if (opts->admit(opts->admit_ud, owned, err) < 0) {
			pthread_mutex_unlock(&m->lock);
			entry_free(e);
			goto fail_early;
		}
	}
	e->deleting = true;   /* not usable until ready */
	insert_locked(m, e);
	e->refs++;            /* ours, for the duration of create */
	pthread_mutex_unlock(&m->lock);
	snprintf(id_out, SILO_ID_MAX, "%s", id);

	toml = spec_format(spec);
	meta = metadata_json_text(spec);
	reg_sandbox row = {0};
	snprintf(row.id, sizeof row.id, "%s", id);
	snprintf(row.name, sizeof row.name, "%s", spec->name);
	snprintf(row.provider, sizeof row.provider, "%s", spec->provider ? spec->provider : "");
	snprintf(row.state, sizeof row.state, "provisioning");
	row.vcpus = spec->vcpus;
	row.memory_mb = spec->memory_mb;
	row.spec_toml = toml;
	row.metadata_json = meta;
	row.created_ms = e->created_ms;
	int64_t dep = 0;
	if (registry_insert_deploy(m->reg, &row, opts->actor, &dep, err) < 0) {
		silo_error_prefix(err, "create %s", id);
		unlink_entry(m, e);
		unref(m, e);
		goto fail_early;
	}
	emit(m, MGR_EV_STATE_CHANGE, id, "", "provisioning", NULL, "created by %s",
	     opts->actor ? opts->actor : "silod");

	sandbox_opts so = {
		.id = id,
		.fallback = m->cfg.fallback,
		.require_vm = m->cfg.min_isolation_vm ? "silod --min-isolation vm" : NULL,
		.boot_timeout_ms = m->cfg.boot_timeout_ms,
		.on_state = on_state_cb,
		.on_state_ud = e,
		.on_net = on_net_cb,
		.on_net_ud = e,
		.restore_dir = opts->restore_dir,
		.restore_id = opts->restore_id,
		.restore_provider = opts->restore_provider,
		.owner = SB_OWNER_DAEMON,   /* survives us; swept only by a silod on this state dir */
		.owner_state_dir = m->state_dir,
		.owner_client = opts->bind_client,
		.cold = opts->cold,
	};
	sandbox *sb = NULL;
	bool refused = false;   /* a boot file did not match the signed manifest (lib/trust) */
	trust_watch_refusals(&refused);
	int created = sandbox_create(spec, &so, &sb, err);
	trust_watch_refusals(NULL);
	if (created < 0) {
		silo_error_set_vm(err, id);
		char reason[700];
		snprintf(reason, sizeof reason, "%s: %.600s", silo_code_name(err->code), err->message);
		record_state(e, "error", reason);
		uint64_t ms = (now_mono_ns() - t0) / 1000000;
		silo_error e2;
		registry_deploy_end(m->reg, dep, spec->provider, "failed", reason, ms, &e2);
		metrics_inc(m->met, M_SPAWN_FAILURES_TOTAL, 1);
		json_t *d = json_pack("{s:s,s:s}", "code", silo_code_name(err->code), "message", err->message);
		manager_audit(m, opts->actor, id, "create-failed", ms, d);
		if (err->code == SILO_ERR_CHECKSUM_MISMATCH && refused) {
			manager_audit(m, opts->actor, id, "supply-chain", ms, d);
			emit(m, MGR_EV_SECURITY_VIOLATION, id, NULL, NULL, "CHECKSUM_MISMATCH", "%.500s", err->message);
		}
		json_decref(d);
		unlink_entry(m, e);
		unref(m, e);
		free(toml);
		free(meta);
		return -1;   /* counted by the caller through manager_note_error */
	}
	uint64_t ms = (now_mono_ns() - t0) / 1000000;
	snprintf(e->provider, sizeof e->provider, "%s", sb->ops ? sb->ops->name : "");
	silo_error e2;
	if (registry_spawned(m->reg, id, e->provider, sb->pid, sb->rundir, dep, ms, &e2) < 0)
		log_error("registry: %s", e2.message);
	metrics_inc(m->met, M_SPAWNS_TOTAL, 1);
	if (sb->fell_back)
		note_fallback(m, opts->actor, id, sb);
	emit(m, MGR_EV_SPAWNED, id, NULL, NULL, NULL, "provider %s, pid %d, %" PRIu64 " ms", e->provider,
	     (int)sb->pid, ms);
	pthread_mutex_lock(&e->lock);
	e->sb = sb;
	e->client = owner_client(sb, &e->client_start);
	e->deleting = false;
	pthread_mutex_unlock(&e->lock);
	/* The sandbox reports running through the callback; make sure it is recorded. */
	record_state(e, sb_state_name(sandbox_get_state(sb)), "agent ready");
	json_t *d = json_pack("{s:s,s:s,s:i,s:i,s:I}", "name", spec->name, "provider", e->provider, "vcpus",
			      (int)spec->vcpus, "memory_mb", (int)spec->memory_mb, "pid", (json_int_t)sb->pid);
	manager_audit(m, opts->actor, id, "spawned", ms, d);
	json_decref(d);
	unref(m, e);
	free(toml);
	free(meta);
	return 0;
fail_early:
	free(toml);
	free(meta);
	/* Admission failures concern no sandbox: name one only once it existed. */
	silo_error_set_vm(err, id_out[0] ? id_out : NULL);
	return -1;
}

int manager_create(manager *m, const vm_spec *spec, const mgr_create_opts *opts, char id_out[SILO_ID_MAX],
		   silo_error *err)
{
	static const mgr_create_opts none = {0};
	if (!opts)
		opts = &none;
	id_out[0] = '\0';
	/* an imported image's Env, WorkingDir and User where the spec is silent:
	 * the spec stored and shown is the one the sandbox runs with */
	vm_spec rs;
	spec_copy(&rs, spec);
	if (image_defaults_apply(&rs, err) < 0) {
		spec_free(&rs);
		return -1;
	}
	if (!rs.n_secrets) {
		int rc = create_resolved(m, &rs, opts, id_out, err);
		spec_free(&rs);
		return rc;
	}
	/* the secrets' values, in memory only: read the files and variables now */
	for (size_t i = 0; opts->secrets_from && i < rs.n_secrets; i++) {
		spec_secret *x = &rs.secrets[i];
		for (size_t j = 0; !x->value && j < opts->secrets_from->n_secrets; j++) {
			const spec_secret *y = &opts->secrets_from->secrets[j];
			if (!strcmp(x->key, y->key) && x->src == y->src && y->value)
				x->value = xstrdup(y->value);
		}
	}
	int rc = spec_resolve_secrets(&rs, opts->restore_dir ? 0 : SPEC_SECRETS_STRICT, err);
	if (rc == 0)
		rc = create_resolved(m, &rs, opts, id_out, err);
	spec_free(&rs);
	return rc;
}

/* Close e's port forwards (their connections use the channel). */
static void stop_forwards(mentry *e)
{
	pthread_mutex_lock(&e->lock);
	portfwd *v[MAX_PORT_FORWARDS];
	size_t n = e->nfwd;
	memcpy(v, e->fwd, n * sizeof *v);
	e->nfwd = 0;
	pthread_mutex_unlock(&e->lock);
	for (size_t i = 0; i < n; i++)
		portfwd_stop(v[i]);
}

/* Stop what runs in e (sessions always, background processes with
 * kill_background) and wait until no operation is in flight: readers,
 * waiters and stdin writers return within a slice, streams of operations
 * (archives, watches) see manager_op_cancelled. */
static void quiesce(mentry *e, bool kill_background)
{
	stop_forwards(e);
	pthread_mutex_lock(&e->lock);
	sandbox *sb = e->sb;
	pthread_mutex_unlock(&e->lock);
	if (sb && sb->procs)
		proc_table_close(sb->procs, kill_background);
	pthread_mutex_lock(&e->lock);
	while (e->ops > 0)
		pthread_cond_wait(&e->idle, &e->lock);
	pthread_mutex_unlock(&e->lock);
}

static int destroy_entry(manager *m, mentry *e, const char *actor, int grace_ms, const char *why,
			 bool keep_state, silo_error *err)
{
	uint64_t t0 = now_mono_ns();
	quiesce(e, true);
	sandbox *sb = e->sb;
	if (keep_state) {
		/* Keep the recorded error state: detach our callback first. */
		pthread_mutex_lock(&sb->lock);
		sb->on_state = NULL;
		sb->on_state_ud = NULL;
		pthread_mutex_unlock(&sb->lock);
	} else {
		sandbox_set_state(sb, SB_STOPPING, why);   /* the history says why it stopped */
	}
	cleanup_report rep = {0};
	char rundir[PATH_MAX];
	snprintf(rundir, sizeof rundir, "%s", sb->rundir);
	int rc = sandbox_destroy(sb, grace_ms, &rep, err);
	silo_error ce = {0};
	if (cleanup_record(m->state_dir, e->id, rundir, &rep, &ce) < 0)   /* CleanupVerification */
		log_error("%s: %s", e->id, ce.message);
	pthread_mutex_lock(&e->lock);
	e->sb = NULL;
	pthread_mutex_unlock(&e->lock);
	uint64_t ms = (now_mono_ns() - t0) / 1000000;
	if (!keep_state)
		record_state(e, "terminated", why);
	metrics_inc(m->met, M_TERMINATIONS_TOTAL, 1);
	json_t *res = json_array();
	for (char **p = rep.residual_paths; p && *p; p++)
		json_array_append_new(res, json_string(*p));
	json_t *d = json_pack("{s:s,s:b,s:o}", "reason", why, "host_clean", rep.host_clean || !rep.residual_paths,
			      "residue", res);
	manager_audit(m, actor, e->id, "terminated", ms, d);
	json_decref(d);
	if (rc == 0 && rep.residual_paths) {
		size_t off = 0;
		char list[800] = "";
		for (char **p = rep.residual_paths; *p && off < sizeof list - 1; p++)
			off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", off ? ", " : "", *p);
		silo_fail_vm(err, SILO_ERR_CLEANUP_FAILED, 0, e->id, "terminate left behind: %s", list);
		rc = -1;
	}
	cleanup_report_free(&rep);
	unlink_entry(m, e);
	return rc;
}

int manager_delete(manager *m, const char *id, const char *actor, int grace_ms, silo_error *err)
{
	mentry *e = get_entry(m, id, err);
	if (!e)
		return -1;
	pthread_mutex_lock(&e->lock);
	if (!wait_recovered_locked(e, err)) {
		pthread_mutex_unlock(&e->lock);
		unref(m, e);
		return -1;
	}
	if (e->deleting || !e->sb) {
		bool prov = !e->sb;
		pthread_mutex_unlock(&e->lock);
		unref(m, e);
		return silo_fail_vm(err, SILO_ERR_CONFLICT, 0, id, "sandbox is %s",
				    prov ? "still provisioning" : "already being deleted");
	}
	e->deleting = true;
	pthread_mutex_unlock(&e->lock);
	int rc = destroy_entry(m, e, actor, grace_ms >= 0 ? grace_ms : m->cfg.grace_ms, "deleted", false, err);
	unref(m, e);
	return rc;
}

/* ---- operations ---- */

/* Begin an operation on a live, ready sandbox: takes a ref and an op slot. */
static mentry *op_begin(manager *m, const char *id, silo_error *err)
{
	mentry *e = get_entry(m, id, err);
	if (!e)
		return NULL;
	pthread_mutex_lock(&e->lock);
	if (!wait_recovered_locked(e, err)) {
		pthread_mutex_unlock(&e->lock);
		unref(m, e);
		return NULL;
	}
	if (e->deleting || !e->sb || !e->sb->ch) {
		const char *why = !e->sb ? "still provisioning" : e->deleting ? "being deleted" : "not connected";
		pthread_mutex_unlock(&e->lock);
		silo_fail_vm(err, SILO_ERR_CONFLICT, 0, e->id, "sandbox is %s", why);
		unref(m, e);
		return NULL;
	}
	if (strcmp(e->state, "running") != 0) {
		char st[16];
		snprintf(st, sizeof st, "%s", e->state);
		pthread_mutex_unlock(&e->lock);
		silo_fail_vm(err, SILO_ERR_CONFLICT, 0, e->id, "sandbox is %s, not running", st);
		unref(m, e);
		return NULL;
	}
	e->ops++;
	pthread_mutex_unlock(&e->lock);
	return e;
}

static void op_end(manager *m, mentry *e)
{
	pthread_mutex_lock(&e->lock);
	if (--e->ops == 0)
		pthread_cond_broadcast(&e->idle);
	pthread_mutex_unlock(&e->lock);
	unref(m, e);
}

int manager_with_sandbox(manager *m, const char *id, bool allow_paused, mgr_sandbox_fn fn, void *ud,
			 silo_error *err)
{
	mentry *e = get_entry(m, id, err);
	if (!e)
		return -1;
	pthread_mutex_lock(&e->lock);
	if (!wait_recovered_locked(e, err)) {
		pthread_mutex_unlock(&e->lock);
		unref(m, e);
		return -1;
	}
	bool ok = !e->deleting && e->sb && e->sb->ch &&
		  (!strcmp(e->state, "running") || (allow_paused && !strcmp(e->state, "paused")));
	if (!ok) {
		char st[16];
		snprintf(st, sizeof st, "%s", !e->sb ? "provisioning" : e->deleting ? "being deleted" : e->state);
		pthread_mutex_unlock(&e->lock);
		unref(m, e);
		return silo_fail_vm(err, SILO_ERR_CONFLICT, 0, id, "sandbox is %s", st);
	}
	e->ops++;
	pthread_mutex_unlock(&e->lock);
	int rc = fn(e->sb, ud, err);
	if (rc < 0)
		silo_error_set_vm(err, e->id);
	op_end(m, e);
	return rc;
}

/* ---- operation slots, processes ---- */

int manager_op_begin(manager *m, const char *id, mgr_op **out, silo_error *err)
{
	mentry *e = op_begin(m, id, err);
	if (!e)
		return -1;
	mgr_op *op = xcalloc(1, sizeof *op);
	op->m = m;
	op->e = e;
	*out = op;
	return 0;
}

chan *manager_op_chan(mgr_op *op)
{
	return op->e->sb->ch;
}

proc_table *manager_op_procs(mgr_op *op)
{
	return op->e->sb->procs;
}

const char *manager_op_id(const mgr_op *op)
{
	return op->e->id;
}

bool manager_op_cancelled(mgr_op *op)
{
	pthread_mutex_lock(&op->e->lock);
	bool c = op->e->deleting;
	pthread_mutex_unlock(&op->e->lock);
	return c;
}

void manager_op_end(mgr_op *op)
{
	if (!op)
		return;
	op_end(op->m, op->e);
	free(op);
}

static void argv_text(char *const *argv, char *buf, size_t len)
{
	size_t off = 0;
	buf[0] = '\0';
	for (char *const *a = argv; a && *a && off < len - 1; a++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? " " : "", *a);
}

int manager_proc_start(mgr_op *op, const exec_req *req, const proc_opts *o, const char *actor, proc **out,
		       silo_error *err)
{
	mentry *e = op->e;
	/* the spec's env and secrets, then the request's own (which win) */
	char **env = spec_exec_env(&e->spec, req->env, err);
	if (!env) {
		silo_error_set_vm(err, e->id);
		return -1;
	}
	exec_req r = *req;
	r.env = env;
	if (!r.cwd)
		r.cwd = e->spec.workdir;   /* the spec's (or its image's) working directory */
	if (r.uid < 0 && r.gid < 0 && e->sb->exec_uid >= 0) {
		r.uid = e->sb->exec_uid;   /* the spec's (or its image's) user */
		r.gid = e->sb->exec_gid;
	}
	int rc = proc_start(e->sb->procs, &r, o, out, err);
	spec_env_free(env);
	if (rc < 0) {
		silo_error_set_vm(err, e->id);
		return -1;
	}
	if (o && !o->session) {   /* a session is audited when it ends (manager_exec_wait/free) */
		char cmd[256];
		argv_text(req->argv, cmd, sizeof cmd);
		json_t *d = json_pack("{s:s,s:s,s:s,s:b}", "command", cmd, "proc", proc_id(*out), "tag",
				      o->tag ? o->tag : "", "pty", req->pty);
		manager_audit(op->m, actor, e->id, "exec-background", 0, d);
		json_decref(d);
	}
	return 0;
}

int manager_exec_start(manager *m, const char *id, const exec_req *req, chan_output_cb cb, void *ud,
		       const char *actor, mgr_exec **out, silo_error *err)
{
	mentry *e = op_begin(m, id, err);
	if (!e)
		return -1;
	mgr_exec *x = xcalloc(1, sizeof *x);
	x->op = (mgr_op){m, e};
	proc_opts po = {.session = true};
	if (manager_proc_start(&x->op, req, &po, actor, &x->p, err) < 0) {
		op_end(m, e);
		free(x);
		return -1;
	}
	x->r = proc_attach(x->p);
	x->cb = cb;
	x->ud = ud;
	x->start_ns = now_mono_ns();
	snprintf(x->actor, sizeof x->actor, "%s", actor ? actor : "silod");
	argv_text(req->argv, x->cmd, sizeof x->cmd);
	*out = x;
	return 0;
}

static void audit_exec(mgr_exec *x, int rc, const exec_result *res, const char *why, const silo_error *err)
{
	json_t *d = rc == 0 ? json_pack("{s:s,s:s,s:i,s:i,s:b}", "command", x->cmd, "proc", proc_id(x->p), "exit_code",
					res->exit_code, "signal", res->signal, "timed_out", res->timed_out)
			    : json_pack("{s:s,s:s,s:s}", "command", x->cmd, "proc", proc_id(x->p), "error",
					err ? err->message : "");
	if (rc == 0 && res->oom_killed)
		json_object_set_new(d, "oom_killed", json_true());
	if (why)
		json_object_set_new(d, "error", json_string(why));
	manager_audit(x->op.m, x->actor, x->op.e->id, "exec", (now_mono_ns() - x->start_ns) / 1000000, d);
	json_decref(d);
}

int manager_exec_wait(mgr_exec *x, int timeout_ms, exec_result *res, silo_error *err)
{
	uint64_t deadline = mono_deadline(timeout_ms);
	int rc = 0;
	static __thread uint8_t buf[64 * 1024];
	while (x->cb) {   /* deliver the output on this thread */
		int left = timeout_ms < 0 ? -1 : (int)(now_mono_ns() >= deadline ? 0 : (deadline - now_mono_ns()) / 1000000);
		int stream;
		ssize_t n = proc_read(x->r, &stream, buf, sizeof buf, left, err);
		if (n > 0) {
			x->cb(x->ud, stream, buf, (size_t)n);
			continue;
		}
		if (n < 0 && err && err->code == SILO_ERR_TIMEOUT)
			return -1;   /* still running: the caller may wait again or free */
		rc = n < 0 ? -1 : 0;
		break;
	}
	exec_result r = {0};
	if (rc == 0) {
		rc = proc_wait(x->p, timeout_ms < 0 ? -1 : (int)(now_mono_ns() >= deadline ? 0 : (deadline - now_mono_ns()) / 1000000),
			       &r, err);
		if (rc < 0 && err && err->code == SILO_ERR_TIMEOUT)
			return -1;
	}
	if (res)
		*res = r;
	x->waited = true;
	audit_exec(x, rc, &r, NULL, err);
	if (rc < 0)
		silo_error_set_vm(err, x->op.e->id);
	return rc;
}

ssize_t manager_exec_read(mgr_exec *x, int *stream, void *buf, size_t cap, int timeout_ms, silo_error *err)
{
	ssize_t n = proc_read(x->r, stream, buf, cap, timeout_ms, err);
	if (n < 0)
		silo_error_set_vm(err, x->op.e->id);
	return n;
}

bool manager_exec_ended(mgr_exec *x)
{
	return proc_wait(x->p, 0, NULL, NULL) == 0;
}

int manager_exec_signal(mgr_exec *x, int sig, silo_error *err)
{
	return proc_signal(x->p, sig, err);
}

void manager_exec_free(mgr_exec *x)
{
	if (!x)
		return;
	proc_detach(x->r);   /* a session: killed (if it still runs) and forgotten */
	if (!x->waited) {
		silo_error err = {0};
		exec_result res = {0};
		int rc = proc_wait(x->p, 5000, &res, &err);
		audit_exec(x, rc, &res, "client went away; killed", &err);
	}
	proc_put(x->p);
	op_end(x->op.m, x->op.e);
	free(x);
}

/* ---- port forwarding (docs/network.md) ---- */

static json_t *fwd_json(const mentry *e, portfwd *f)
{
	uint64_t total;
	unsigned open;
	portfwd_counts(f, &total, &open);
	const char *a = portfwd_address(f);
	return json_pack("{s:s,s:i,s:s,s:I,s:i}", "id", e->id, "port", (int)portfwd_guest_port(f),
			 a[0] == '/' ? "unix" : "listen", a, "connections", (json_int_t)total, "open", (int)open);
}

int manager_port_add(manager *m, const char *id, uint16_t guest_port, const char *listen, const char *unix_path,
		     const char *actor, json_t **out, silo_error *err)
{
	mentry *e = op_begin(m, id, err);
	if (!e)
		return -1;
	pthread_mutex_lock(&e->lock);
	bool full = e->nfwd >= MAX_PORT_FORWARDS;
	pthread_mutex_unlock(&e->lock);
	portfwd *f = NULL;
	int rc = full ? silo_fail_vm(err, SILO_ERR_RESOURCE_EXCEEDED, 0, e->id, "at most %d port forwards per sandbox",
				     MAX_PORT_FORWARDS)
		      : portfwd_start(e->sb->ch, e->id, guest_port, listen, unix_path, &f, err);
	if (rc == 0) {
		pthread_mutex_lock(&e->lock);
		if (e->deleting || e->nfwd >= MAX_PORT_FORWARDS) {
			pthread_mutex_unlock(&e->lock);
			portfwd_stop(f);
			rc = silo_fail_vm(err, SILO_ERR_CONFLICT, 0, e->id, "sandbox is being deleted");
		} else {
			e->fwd[e->nfwd++] = f;
			*out = fwd_json(e, f);
			pthread_mutex_unlock(&e->lock);
			json_t *d = json_pack("{s:i,s:s}", "port", (int)guest_port, "address", portfwd_address(f));
			manager_audit(m, actor, e->id, "port-forward", 0, d);
			json_decref(d);
		}
	}
	op_end(m, e);
	return rc;
}

int manager_port_list(manager *m, const char *id, json_t **out, silo_error *err)
{
	mentry *e = get_entry(m, id, err);
	if (!e)
		return -1;
	json_t *a = json_array();
	pthread_mutex_lock(&e->lock);
	for (size_t i = 0; i < e->nfwd; i++)
		json_array_append_new(a, fwd_json(e, e->fwd[i]));
	pthread_mutex_unlock(&e->lock);
	*out = json_pack("{s:s,s:o}", "id", e->id, "ports", a);
	unref(m, e);
	return 0;
}

int manager_port_remove(manager *m, const char *id, uint16_t guest_port, const char *actor, silo_error *err)
{
	mentry *e = get_entry(m, id, err);
	if (!e)
		return -1;
	portfwd *gone[MAX_PORT_FORWARDS];
	size_t n = 0;
	pthread_mutex_lock(&e->lock);
	for (size_t i = 0; i < e->nfwd;) {
		if (portfwd_guest_port(e->fwd[i]) == guest_port) {
			gone[n++] = e->fwd[i];
			e->fwd[i] = e->fwd[--e->nfwd];
		} else {
			i++;
		}
	}
	pthread_mutex_unlock(&e->lock);
	for (size_t i = 0; i < n; i++)
		portfwd_stop(gone[i]);
	int rc = 0;
	if (!n)
		rc = silo_fail_vm(err, SILO_ERR_VM_NOT_FOUND, 0, e->id, "no forward of port %u", guest_port);
	else {
		json_t *d = json_pack("{s:i,s:i}", "port", (int)guest_port, "closed", (int)n);
		manager_audit(m, actor, e->id, "port-forward-closed", 0, d);
		json_decref(d);
	}
	unref(m, e);
	return rc;
}

/* One file transfer with the guest, audited as file-put or file-get: put writes
 * fd's bytes to path with mode arg, get copies at most arg bytes of path to fd. */
static int file_xfer(manager *m, const char *id, const char *path, int fd, bool put, uint64_t arg,
		     const char *actor, silo_error *err)
{
	mentry *e = op_begin(m, id, err);
	if (!e)
		return -1;
	uint64_t t0 = now_mono_ns();
	int rc = put ? chan_file_write_fd(e->sb->ch, path, fd, (uint32_t)arg, err)
		     : chan_file_read_fd(e->sb->ch, path, fd, arg, err);
	if (rc < 0)
		silo_error_set_vm(err, e->id);
	json_t *d = json_pack("{s:s,s:b}", "path", path, "ok", rc == 0);
	manager_audit(m, actor, e->id, put ? "file-put" : "file-get", (now_mono_ns() - t0) / 1000000, d);
	json_decref(d);
	op_end(m, e);
	return rc;
}

int manager_file_put(manager *m, const char *id, const char *path, int src_fd, uint32_t mode,
		     const char *actor, silo_error *err)
{
	return file_xfer(m, id, path, src_fd, true, mode, actor, err);
}

int manager_file_get(manager *m, const char *id, const char *path, int dst_fd, uint64_t max_bytes,
		     const char *actor, silo_error *err)
{
	return file_xfer(m, id, path, dst_fd, false, max_bytes, actor, err);
}

/* ---- views ---- */

json_t *mgr_json_column(const char *text, json_type want)
{
	json_t *v = text ? json_loads(text, 0, NULL) : NULL;
	if (v && json_typeof(v) == want)
		return v;
	json_decref(v);
	return want == JSON_ARRAY ? json_array() : json_object();
}

static json_t *row_json(const reg_sandbox *r)
{
	char created[40], updated[40];
	format_time_ms(r->created_ms, created, sizeof created);
	format_time_ms(r->updated_ms, updated, sizeof updated);
	json_t *meta = mgr_json_column(r->metadata_json, JSON_OBJECT);
	json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:I,s:i,s:I,s:s,s:s,s:o}", "id", r->id, "name", r->name,
			      "provider", r->provider, "state", r->state, "pid", (json_int_t)r->pid, "vcpus",
			      (int)r->vcpus, "memory_mb", (json_int_t)r->memory_mb, "created", created, "updated",
			      updated, "metadata", meta);
	if (r->reason[0])
		json_object_set_new(o, "reason", json_string(r->reason));
	const provider_ops *p = provider_find(r->provider);
	if (p)   /* known once a provider was chosen */
		json_object_set_new(o, "isolation", json_string(provider_isolation(p)));
	return o;
}

/* Live details (agent, usage, channel bytes) for a sandbox in the table. */
static void add_live(manager *m, const char *id, json_t *o)
{
	silo_error err;
	mentry *e = get_entry(m, id, &err);
	if (!e)
		return;
	pthread_mutex_lock(&e->lock);
	sandbox *sb = e->sb;
	if (sb && !e->deleting) {
		e->ops++;
	} else {
		sb = NULL;
	}
	pthread_mutex_unlock(&e->lock);
	if (e->spec.n_secrets) {
		/* names and sources only: a value is never shown */
		json_t *sec = json_object();
		for (size_t i = 0; i < e->spec.n_secrets; i++) {
			const spec_secret *x = &e->spec.secrets[i];
			static const char *const src[] = {"value", "file", "env"};
			json_t *d = json_pack("{s:s,s:s,s:b}", "source", src[x->src], "value", SPEC_SECRET_REDACTED, "available",
					      x->value != NULL);
			if (x->ref)
				json_object_set_new(d, src[x->src], json_string(x->ref));
			json_object_set_new(sec, x->key, d);
		}
		json_object_set_new(o, "secrets", sec);
	}
	if (sb) {
		json_object_set_new(o, "rundir", json_string(sb->rundir));
		if (sb->fell_back)
			json_object_set_new(o, "isolation_fallback", json_string(sb->fallback_why));
		json_object_set_new(o, "agent", json_pack("{s:i,s:s,s:s,s:i}", "protocol",
							  (int)sb->agent.proto_version, "version",
							  sb->agent.agent_version, "kernel", sb->agent.kernel,
							  "pid", (int)sb->agent.pid));
		uint64_t cpu = 0, mem = 0, tx = 0, rx = 0;
		metrics_sample_usage(sb->pid, sb->id, &cpu, &mem);
		bool connected = false;
		if (sb->ch) {
			chan_stats(sb->ch, &tx, &rx);
			connected = chan_is_connected(sb->ch);
		}
		json_object_set_new(o, "usage", json_pack("{s:I,s:I,s:I,s:I}", "cpu_ns", (json_int_t)cpu,
							  "memory_bytes", (json_int_t)mem, "channel_tx_bytes",
							  (json_int_t)tx, "channel_rx_bytes", (json_int_t)rx));
		json_object_set_new(o, "connected", json_boolean(connected));
		json_object_set_new(o, "spawn_ms", json_integer((json_int_t)(sb->spawn_ns / 1000000)));
		json_object_set_new(o, "ready_ms", json_integer((json_int_t)(sb->ready_ns / 1000000)));
		/* templates (sandbox.h): restored from one, or booted cold (and maybe saved one) */
		json_object_set_new(o, "start", json_string(sb->from_template ? "template" : "cold"));
		if (sb->template_id[0])
			json_object_set_new(o, "template", json_string(sb->template_id));
		pthread_mutex_lock(&e->lock);
		if (--e->ops == 0)
			pthread_cond_broadcast(&e->idle);
		pthread_mutex_unlock(&e->lock);
	}
	unref(m, e);
}

int manager_get_json(manager *m, const char *id, json_t **out, silo_error *err)
{
	char rid[SILO_ID_MAX];
	if (manager_resolve(m, id, rid, err) < 0) {
		if (err->code == SILO_ERR_CONFLICT)
			return -1;   /* a name several live sandboxes share */
		snprintf(rid, sizeof rid, "%s", id);   /* not live: maybe a past one */
	}
	reg_sandbox r;
	mgr_timing_mark("resolve");
	if (registry_get(m->reg, rid, &r, err) < 0)
		return -1;
	mgr_timing_mark("registry-get");
	json_t *o = row_json(&r);
	if (r.spec_toml)
		json_object_set_new(o, "spec", json_string(r.spec_toml));
	reg_sandbox_clear(&r);
	add_live(m, rid, o);
	mgr_timing_mark("live");
	json_t *cv = cleanup_load_json(m->state_dir, rid);
	if (cv)
		json_object_set_new(o, "cleanup", cv);
	*out = o;
	return 0;
}

int manager_list_json(manager *m, const mgr_list_filter *f, json_t **out, silo_error *err)
{
	static const mgr_list_filter none = {0};
	if (!f)
		f = &none;
	reg_filter rf = {
		.state = f->state && strcmp(f->state, "all") != 0 ? f->state : NULL,
		.live_only = !f->state,
		.provider = f->provider,
		.name_prefix = f->name_prefix,
		.meta_key = f->meta_key,
		.meta_value = f->meta_value,
	};
	if (rf.state && sb_state_from_name(rf.state) < 0)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "state filter: unknown state '%s' (expected provisioning, running, paused, "
				 "stopping, terminated, error or all)",
				 rf.state);
	reg_sandbox *v;
	size_t n;
	if (registry_list(m->reg, &rf, &v, &n, err) < 0)
		return -1;
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *o = row_json(&v[i]);
		add_live(m, v[i].id, o);
		json_array_append_new(a, o);
	}
	reg_sandboxes_free(v, n);
	*out = a;
	return 0;
}

static json_t *tail_file(const char *path, size_t tail)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return NULL;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return NULL;
	}
	off_t off = st.st_size > (off_t)tail ? st.st_size - (off_t)tail : 0;
	size_t len = (size_t)(st.st_size - off);
	char *buf = xmalloc(len + 1);
	ssize_t got = pread(fd, buf, len, off);
	close(fd);
	if (got < 0)
		got = 0;
	/* Logs come from the guest: keep them as text, replacing invalid bytes. */
	for (ssize_t i = 0; i < got; i++)
		if ((unsigned char)buf[i] >= 0x80 || (buf[i] < 0x20 && buf[i] != '\n' && buf[i] != '\t'))
			buf[i] = '?';
	json_t *s = json_stringn(buf, (size_t)got);
	free(buf);
	return s;
}

int manager_logs_json(manager *m, const char *id, size_t tail_bytes, json_t **out, silo_error *err)
{
	char rid[SILO_ID_MAX];
	if (manager_resolve(m, id, rid, err) < 0)
		snprintf(rid, sizeof rid, "%s", id);
	reg_sandbox r;
	if (registry_get(m->reg, rid, &r, err) < 0)
		return -1;
	reg_state_row *rows;
	size_t n;
	if (registry_states(m->reg, rid, &rows, &n, err) < 0) {
		reg_sandbox_clear(&r);
		return -1;
	}
	json_t *states = json_array();
	for (size_t i = 0; i < n; i++) {
		char ts[40];
		format_time_ms(rows[i].ts_ms, ts, sizeof ts);
		json_array_append_new(states, json_pack("{s:s,s:s,s:s,s:s}", "time", ts, "previous_state",
							rows[i].old_state, "state", rows[i].new_state,
							"reason", rows[i].reason));
	}
	free(rows);
	json_t *logs = json_object();
	DIR *d = r.rundir[0] ? opendir(r.rundir) : NULL;
	if (d) {
		struct dirent *de;
		while ((de = readdir(d))) {
			size_t l = strlen(de->d_name);
			if (l < 5 || strcmp(de->d_name + l - 4, ".log") != 0)
				continue;
			char p[PATH_MAX];
			if ((size_t)snprintf(p, sizeof p, "%s/%s", r.rundir, de->d_name) >= sizeof p)
				continue;
			json_t *s = tail_file(p, tail_bytes ? tail_bytes : 64 * 1024);
			if (s)
				json_object_set_new(logs, de->d_name, s);
		}
		closedir(d);
	}
	*out = json_pack("{s:s,s:s,s:o,s:o}", "id", r.id, "state", r.state, "states", states, "logs", logs);
	reg_sandbox_clear(&r);
	return 0;
}

metrics *manager_metrics(manager *m)
{
	return m->met;
}

char *manager_metrics_text(manager *m)
{
	metrics_gauges g = {0};
	/* Snapshot the live set with references, then sample without the table lock. */
	pthread_mutex_lock(&m->lock);
	size_t n = m->count, k = 0;
	mentry **es = xcalloc(n ? n : 1, sizeof *es);
	for (mentry *e = m->entries; e && k < n; e = e->next) {
		e->refs++;
		es[k++] = e;
	}
	g.active = m->count;
	g.allocated_vcpus = m->alloc_vcpus;
	g.allocated_memory_mb = m->alloc_mb;
	g.max_sandboxes = m->cfg.max_sandboxes;
	pthread_mutex_unlock(&m->lock);
	metrics_sandbox *ms = xcalloc(k ? k : 1, sizeof *ms);
	size_t j = 0;
	for (size_t i = 0; i < k; i++) {
		mentry *e = es[i];
		pthread_mutex_lock(&e->lock);
		sandbox *sb = e->sb && !e->deleting ? e->sb : NULL;
		if (sb)
			e->ops++;
		pthread_mutex_unlock(&e->lock);
		if (!sb)
			continue;
		metrics_sandbox *s = &ms[j++];
		s->id = e->id;
		s->provider = e->provider;
		s->state = e->state;
		metrics_sample_usage(sb->pid, sb->id, &s->cpu_ns, &s->memory_bytes);
		if (sb->ch)
			chan_stats(sb->ch, &s->chan_tx_bytes, &s->chan_rx_bytes);
		pthread_mutex_lock(&e->lock);
		if (--e->ops == 0)
			pthread_cond_broadcast(&e->idle);
		pthread_mutex_unlock(&e->lock);
	}
	char *text = metrics_render(m->met, &g, ms, j);
	for (size_t i = 0; i < k; i++)
		unref(m, es[i]);
	free(ms);
	free(es);
	return text;
}

json_t *manager_health_json(manager *m)
{
	pthread_mutex_lock(&m->lock);
	size_t n = m->count;
	uint64_t v = m->alloc_vcpus, mb = m->alloc_mb;
	pthread_mutex_unlock(&m->lock);
	size_t avail = 0;
	for (size_t i = 0; i < m->nproviders; i++)
		avail += m->providers[i].available;
	return json_pack("{s:s,s:s,s:I,s:I,s:I,s:{s:I,s:I},s:{s:I,s:I},s:I}", "status", avail ? "ok" : "degraded",
			 "version", silo_version(), "uptime_ms", (json_int_t)(now_realtime_ms() - m->started_ms),
			 "sandboxes", (json_int_t)n, "max_sandboxes", (json_int_t)m->cfg.max_sandboxes,
			 "allocated", "vcpus", (json_int_t)v, "memory_mb", (json_int_t)mb, "capacity", "vcpus",
			 (json_int_t)m->cap.cpus, "memory_mb", (json_int_t)m->cap.memory_mb,
			 "providers_available", (json_int_t)avail);
}

/* ---- monitor ---- */

static void monitor_pass(manager *m)
{
	flush_pending(m);
	silo_error cerr;
	if (registry_checkpoint(m->reg, &cerr) < 0)   /* off the writers' path (registry.h) */
		log_warn("%s", cerr.message);
	pthread_mutex_lock(&m->lock);
	size_t n = m->count, k = 0;
	mentry **es = xcalloc(n ? n : 1, sizeof *es);
	for (mentry *e = m->entries; e && k < n; e = e->next) {
		e->refs++;
		es[k++] = e;
	}
	pthread_mutex_unlock(&m->lock);
	uint64_t now = now_realtime_ms();
	for (size_t i = 0; i < k; i++) {
		mentry *e = es[i];
		/* Hold an operation slot while looking at sb, so a concurrent delete
		 * waits for us before it frees the sandbox. */
		pthread_mutex_lock(&e->lock);
		sandbox *sb = e->sb && !e->deleting ? e->sb : NULL;
		if (sb)
			e->ops++;
		pthread_mutex_unlock(&e->lock);
		if (!sb)
			goto next;
		bool alive = sb->ops && sb->ops->alive ? sb->ops->alive(sb) : true;
		uint32_t life_s = __atomic_load_n(&e->spec.timeout_s, __ATOMIC_RELAXED);
		bool expired = life_s && now - e->created_ms > (uint64_t)life_s * 1000;
		bool orphaned = e->client > 0 && !owner_proc_alive(e->client, e->client_start);
		bool connected = sb->ch && chan_is_connected(sb->ch);
		pid_t pid = sb->pid;
		pthread_mutex_lock(&e->lock);
		if (--e->ops == 0)
			pthread_cond_broadcast(&e->idle);
		bool violated = e->violated;
		char why[256];
		snprintf(why, sizeof why, "%s", e->violation);
		pthread_mutex_unlock(&e->lock);
		if (violated) {
			pthread_mutex_lock(&e->lock);
			bool mine = !e->deleting && e->sb;
			e->deleting = true;
			pthread_mutex_unlock(&e->lock);
			if (!mine)
				goto next;
			silo_error err;
			json_t *d = json_pack("{s:s}", "reason", why);
			manager_audit(m, "silod", e->id, "security-violation", 0, d);
			json_decref(d);
			if (destroy_entry(m, e, "silod", 0, "terminated after a security violation", true, &err) < 0)
				log_warn("terminate %s after a violation: %s", e->id, err.message);
		} else if (!alive || expired || orphaned) {
			pthread_mutex_lock(&e->lock);
			bool mine = !e->deleting && e->sb;
			e->deleting = true;
			pthread_mutex_unlock(&e->lock);
			if (!mine)
				goto next;
			silo_error err;
			if (!alive) {
				char reason[256];
				snprintf(reason, sizeof reason, "sandbox process %d exited unexpectedly", (int)pid);
				record_state(e, "error", reason);
				silo_error ne;
				silo_fail_vm(&ne, SILO_ERR_VSOCK_DISCONNECTED, 0, e->id, "%s", reason);
				manager_note_error(m, &ne);
				if (destroy_entry(m, e, "silod", 0, reason, true, &err) < 0)
					log_warn("cleanup of dead %s: %s", e->id, err.message);
			} else {
				char reason[128];
				if (expired)
					snprintf(reason, sizeof reason, "lifetime of %u s expired", life_s);
				else
					snprintf(reason, sizeof reason, "its client (pid %d) exited", (int)e->client);
				if (destroy_entry(m, e, "silod", m->cfg.grace_ms, reason, false, &err) < 0)
					log_warn("%s %s: %s", expired ? "expire" : "unbind", e->id, err.message);
			}
		} else if (!connected) {
			pthread_mutex_lock(&e->lock);
			bool first = !e->unhealthy_reported;
			e->unhealthy_reported = true;
			char st[16];
			snprintf(st, sizeof st, "%s", e->state);
			pthread_mutex_unlock(&e->lock);
			if (first) {
				emit(m, MGR_EV_HEALTH_WARNING, e->id, NULL, st, "VSOCK_DISCONNECTED",
				     "the agent channel is disconnected (missed heartbeats)");
				metrics_inc(m->met, M_HEALTH_WARNINGS_TOTAL, 1);
			}
		}
next:
		unref(m, e);
	}
	free(es);
}

static void *monitor_main(void *arg)
{
	manager *m = arg;
	pthread_mutex_lock(&m->mon_lock);
	while (!m->stopping) {
		cond_wait_ms(&m->mon_cond, &m->mon_lock, m->cfg.monitor_interval_ms);
		if (m->stopping)
			break;
		pthread_mutex_unlock(&m->mon_lock);
		monitor_pass(m);
		pthread_mutex_lock(&m->mon_lock);
	}
	pthread_mutex_unlock(&m->mon_lock);
	return NULL;
}

/* Sandboxes left running at manager_close (see there). */
static pthread_mutex_t detached_lock = PTHREAD_MUTEX_INITIALIZER;
static sandbox **detached;
static size_t ndetached;

static void park_detached(sandbox *sb)
{
	pthread_mutex_lock(&detached_lock);
	detached = xrealloc(detached, (ndetached + 1) * sizeof *detached);
	detached[ndetached++] = sb;
	pthread_mutex_unlock(&detached_lock);
}

void manager_close(manager *m, bool terminate_all)
{
	if (!m)
		return;
	manager_pools_stop(m);
	if (m->monitor_running) {
		signal_stop(&m->mon_lock, &m->mon_cond, &m->stopping);
		pthread_join(m->monitor, NULL);
	}
	pthread_mutex_lock(&m->mon_lock);
	while (m->recovering > 0)
		pthread_cond_wait(&m->mon_cond, &m->mon_lock);
	pthread_mutex_unlock(&m->mon_lock);
	/* Drain the table: destroy (terminate_all) or just let go of each sandbox. */
	for (;;) {
		pthread_mutex_lock(&m->lock);
		mentry *e = m->entries;
		if (e)
			e->refs++;
		pthread_mutex_unlock(&m->lock);
		if (!e)
			break;
		pthread_mutex_lock(&e->lock);
		bool busy = e->deleting;
		e->deleting = true;
		pthread_mutex_unlock(&e->lock);
		if (busy) {
			/* Someone else is creating/deleting it; wait for them. */
			unref(m, e);
			struct timespec ts = {0, 10 * 1000000L};
			nanosleep(&ts, NULL);
			continue;
		}
		silo_error err;
		if (terminate_all && e->sb) {
			if (destroy_entry(m, e, "silod", m->cfg.grace_ms, "manager shutdown", false, &err) < 0)
				log_warn("shutdown %s: %s", e->id, err.message);
		} else {
			quiesce(e, false);
			if (e->sb) {
				/* Leave it running; the registry still lists it for recovery.
				 * Close our channel without terminating (background processes
				 * run on; their handles do not survive). sandbox.h has no way
				 * to free a handle without terminating the sandbox, so the
				 * handle is parked (reachable) until the process exits. */
				sandbox *sb = e->sb;
				pthread_mutex_lock(&sb->lock);
				sb->on_state = NULL;
				pthread_mutex_unlock(&sb->lock);
				sandbox_close_channel(sb, false);
				park_detached(sb);
			}
			unlink_entry(m, e);
		}
		unref(m, e);
	}
	if (m->audit)
		manager_audit(m, "silod", NULL, "manager-stop", 0, NULL);
	audit_close(m->audit);
	if (m->reg)
		flush_pending(m);
	for (pending_state *p = m->pend, *n; p; p = n) {
		n = p->next;
		log_error("registry: %s -> %s of %s never written", p->old_state, p->new_state, p->id);
		free_pending(p);
	}
	registry_close(m->reg);
	metrics_free(m->met);
	while (m->subs) {
		subscriber *s = m->subs;
		m->subs = s->next;
		free(s);
	}
	free(m->providers);
	free(m->state_dir);
	free(m->fallback);
	pthread_mutex_destroy(&m->lock);
	pthread_mutex_destroy(&m->ev_lock);
	pthread_mutex_destroy(&m->mon_lock);
	pthread_mutex_destroy(&m->pend_lock);
	pthread_cond_destroy(&m->pend_cond);
	pthread_cond_destroy(&m->mon_cond);
	free(m);
}
