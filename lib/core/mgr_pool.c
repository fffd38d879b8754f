/* SPDX-License-Identifier: Apache-2.0
 * Warm pools (docs/snapshots.md "Warm pools"): per template, keep K sandboxes
 * ready and paused. A template is a spec (hac.toml) or a snapshot (id or tag,
 * resolved once at start). A create whose spec equals a spec template, or a
 * restore of a snapshot template, takes a ready sandbox (resume = thaw) and a
 * background thread refills the pool. Pooled sandboxes are ordinary manager
 * sandboxes (listed, counted against the limits, deletable); the pool keeps
 * only their ids and skips any that vanished. On manager_close the ready ones
 * are deleted (a paused sandbox must not be left for the next silod).
 *
 * Paused, per provider (held_providers[]): every pooled sandbox is in state
 * paused, so it refuses exec, files, snapshot and ports like any paused one
 * and runs no user code until taken. A VM guest (kvm, qemu) is also stopped
 * by its provider: an idle guest still burns CPU (timer ticks, and under TCG
 * the emulator). A namespace sandbox is only held (sandbox_hold): its agent,
 * blocked reading its socket, costs no CPU, and freezing it would cost a
 * cgroup freeze at fill and a thaw on every take, both waiting on the
 * kernel's cgroup mutex that all cgroup work on the host shares. The take of
 * a held sandbox flips its state; a snapshot of one freezes it first.
 *
 * A take is the hot path: one lock and a pointer move here, then the thaw,
 * one state row (group commit, manager.c) and one audit record. The refill
 * is not: a cold create costs tens of takes in CPU, so while takes keep coming
 * (less than QUIET_MS apart) the refill waits, for at most MAX_DEFER_MS from
 * the first take of the burst, then fills even if the burst goes on (a pool
 * emptied by a steady stream must still come back). It does not run at a
 * lower priority instead: a niced refill (or teardown) holding a kernel-wide
 * lock (the cgroup mutex a thaw also takes, the mount lock) stalls the takes
 * behind it, which measured worse (docs/benchmarks.md, Issue 20 silod).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "core/manager.h"
#include "core/mgr_internal.h"
#include "snapshot/snapshot.h"

#define POOL_ACTOR "silod:pool"
#define RETRY_MS 1000
#define QUIET_MS 100                  /* a burst of takes ends after this long without one */
#define MAX_DEFER_MS 2000             /* the refill waits for a burst at most this long */

typedef struct pool {
	struct pool *next;
	char label[PATH_MAX];         /* as given */
	vm_spec spec;                 /* spec template (or the snapshot's spec) */
	char snap[SILO_ID_MAX];       /* snapshot template id, "" for spec templates */
	unsigned k;
	char **ids;                   /* ready (paused or held) sandboxes */
	size_t n;
	uint64_t taken, filled, failures;
	char last_error[256];
} pool;

struct mgr_pools {
	manager *m;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pool *list;
	pthread_t thread;
	bool running, stop;
	uint64_t last_take_ns, burst_start_ns;   /* the current burst of takes (header) */
};

static void pool_free(pool *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->ids[i]);
	free(p->ids);
	spec_free(&p->spec);
	free(p);
}

int manager_pool_add(manager *m, const char *source, unsigned k, silo_error *err)
{
	return manager_pool_add_normalized(m, source, k, NULL, NULL, err);
}

int manager_pool_add_normalized(manager *m, const char *source, unsigned k, mgr_spec_fn normalize, void *ud,
				silo_error *err)
{
	if (k < 1 || k > 1024)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "warm pool %s: K must be 1..1024", source);
	pool *p = xcalloc(1, sizeof *p);
	snprintf(p->label, sizeof p->label, "%s", source);
	p->k = k;
	if (!strncmp(source, "snapshot=", 9)) {
		snap_info s;
		if (snap_open(source + 9, true, &s, err) < 0) {
			silo_error_prefix(err, "warm pool %s", source);
			free(p);
			return -1;
		}
		snprintf(p->snap, sizeof p->snap, "%s", s.id);
		spec_copy(&p->spec, &s.spec);
		snap_info_free(&s);
	} else if (spec_load(source, &p->spec, err) < 0 || spec_validate(&p->spec, err) < 0 ||
		   (normalize && normalize(ud, &p->spec, err) < 0)) {
		silo_error_prefix(err, "warm pool %s", source);
		free(p);
		return -1;
	}
	struct mgr_pools **slot = manager_pools_slot(m), *ps = *slot;
	if (!ps) {
		ps = xcalloc(1, sizeof *ps);
		ps->m = m;
		pthread_mutex_init(&ps->lock, NULL);
		cond_init_monotonic(&ps->cond);
		*slot = ps;
	}
	pthread_mutex_lock(&ps->lock);
	p->next = ps->list;
	ps->list = p;
	pthread_cond_broadcast(&ps->cond);
	pthread_mutex_unlock(&ps->lock);
	return 0;
}

/* Providers whose pooled sandboxes are held rather than stopped (header). */
static const char *const held_providers[] = {"namespace"};

static int park_fn(sandbox *sb, void *ud, silo_error *err)
{
	bool *held = ud;
	*held = false;
	for (size_t i = 0; i < sizeof held_providers / sizeof *held_providers; i++)
		if (!strcmp(sb->ops->name, held_providers[i]))
			*held = true;
	return *held ? sandbox_hold(sb, err) : sandbox_pause(sb, err);
}

/* Pause (or hold) a fresh pooled sandbox, with its "paused" record. */
static int park(manager *m, const char *id, silo_error *err)
{
	uint64_t t0 = now_mono_ns();
	bool held = false;
	int rc = manager_with_sandbox(m, id, false, park_fn, &held, err);
	json_t *d = json_pack("{s:b,s:b}", "ok", rc == 0, "held", held);
	manager_audit(m, POOL_ACTOR, id, "paused", (now_mono_ns() - t0) / 1000000, d);
	json_decref(d);
	return rc;
}

/* Make one ready sandbox for p (no lock held). */
static int fill_one(manager *m, pool *p, char id[SILO_ID_MAX], silo_error *err)
{
	int rc = p->snap[0] ? mgr_restore_nopool(m, p->snap, POOL_ACTOR, id, err)
			    : manager_create(m, &p->spec, &(mgr_create_opts){.actor = POOL_ACTOR, .no_pool = true}, id,
					     err);
	if (rc < 0)
		return -1;
	if (park(m, id, err) < 0) {
		silo_error e2;
		manager_delete(m, id, POOL_ACTOR, 0, &e2);
		return -1;
	}
	return 0;
}

static void *fill_main(void *arg)
{
	struct mgr_pools *ps = arg;
	pthread_mutex_lock(&ps->lock);
	while (!ps->stop) {
		pool *need = NULL;
		/* forget ready sandboxes that were deleted behind our back */
		for (pool *p = ps->list; p; p = p->next) {
			for (size_t i = 0; i < p->n;) {
				char rid[SILO_ID_MAX];
				if (manager_resolve(ps->m, p->ids[i], rid, NULL) < 0) {
					free(p->ids[i]);
					p->ids[i] = p->ids[--p->n];
				} else {
					i++;
				}
			}
			if (!need && p->n < p->k)
				need = p;
		}
		if (!need) {
			cond_wait_ms(&ps->cond, &ps->lock, RETRY_MS);
			continue;
		}
		uint64_t now = now_mono_ns(), quiet_at = ps->last_take_ns + QUIET_MS * 1000000ull,
			 give_up = ps->burst_start_ns + MAX_DEFER_MS * 1000000ull;
		if (ps->last_take_ns && now < quiet_at && now < give_up) {   /* a burst of takes is on */
			uint64_t until = quiet_at < give_up ? quiet_at : give_up;
			cond_wait_ms(&ps->cond, &ps->lock, (until - now) / 1000000 + 1);
			continue;
		}
		pthread_mutex_unlock(&ps->lock);
		char id[SILO_ID_MAX];
		silo_error err = {0};
		int rc = fill_one(ps->m, need, id, &err);
		pthread_mutex_lock(&ps->lock);
		if (rc == 0) {
			need->ids = xrealloc(need->ids, (need->n + 1) * sizeof *need->ids);
			need->ids[need->n++] = xstrdup(id);
			need->filled++;
		} else {
			need->failures++;
			snprintf(need->last_error, sizeof need->last_error, "%s: %s", silo_code_name(err.code),
				 err.message);
			log_warn("warm pool %s: %s", need->label, need->last_error);
			if (!ps->stop)
				cond_wait_ms(&ps->cond, &ps->lock, RETRY_MS);
		}
	}
	pthread_mutex_unlock(&ps->lock);
	return NULL;
}

int manager_pools_start(manager *m, silo_error *err)
{
	struct mgr_pools *ps = *manager_pools_slot(m);
	if (!ps || ps->running)
		return 0;
	int e = pthread_create(&ps->thread, NULL, fill_main, ps);
	if (e)
		return silo_fail(err, SILO_ERR_INTERNAL, e, "warm pool thread");
	ps->running = true;
	return 0;
}

void manager_pools_stop(manager *m)
{
	struct mgr_pools **slot = manager_pools_slot(m), *ps = *slot;
	if (!ps)
		return;
	signal_stop(&ps->lock, &ps->cond, &ps->stop);
	if (ps->running)
		pthread_join(ps->thread, NULL);
	for (pool *p = ps->list, *next; p; p = next) {
		next = p->next;
		for (size_t i = 0; i < p->n; i++) {
			silo_error e;
			if (manager_delete(m, p->ids[i], POOL_ACTOR, 0, &e) < 0 && e.code != SILO_ERR_VM_NOT_FOUND)
				log_warn("warm pool %s: delete %s: %s", p->label, p->ids[i], e.message);
		}
		pool_free(p);
	}
	pthread_cond_destroy(&ps->cond);
	pthread_mutex_destroy(&ps->lock);
	free(ps);
	*slot = NULL;
}

static int thaw_fn(sandbox *sb, void *ud, silo_error *err)
{
	(void)ud;
	return sandbox_resume(sb, err);
}

int mgr_pool_take(manager *m, const vm_spec *spec, const char *snap_id, const char *actor, char id_out[SILO_ID_MAX])
{
	struct mgr_pools *ps = *manager_pools_slot(m);
	if (!ps)
		return 1;
	for (;;) {
		char *id = NULL;
		pool *from = NULL;
		pthread_mutex_lock(&ps->lock);
		for (pool *p = ps->list; p && !id; p = p->next) {
			bool match = snap_id ? !strcmp(p->snap, snap_id) : (!p->snap[0] && spec_equal(&p->spec, spec));
			if (match && p->n) {
				id = p->ids[--p->n];
				from = p;
			}
		}
		if (id) {
			from->taken++;
			uint64_t now = now_mono_ns();
			bool first = now - ps->last_take_ns > QUIET_MS * 1000000ull;
			if (first)
				ps->burst_start_ns = now;
			ps->last_take_ns = now;
			if (first)   /* the refill learns of the burst (and then waits for its end) */
				pthread_cond_broadcast(&ps->cond);
		}
		pthread_mutex_unlock(&ps->lock);
		mgr_timing_mark("pool");
		if (!id)
			return 1;
		uint64_t t0 = now_mono_ns();
		silo_error e;
		/* the thaw without manager_resume's own "resumed" record: one record
		 * per take says both */
		int rc = manager_with_sandbox(m, id, true, thaw_fn, NULL, &e);
		mgr_timing_mark("resume");
		if (rc == 0) {
			snprintf(id_out, SILO_ID_MAX, "%s", id);
			json_t *d = json_pack("{s:s,s:I,s:b}", "pool", from->label, "duration_us",
					      (json_int_t)((now_mono_ns() - t0) / 1000), "resumed", 1);
			manager_audit(m, actor, id, "pool-take", (now_mono_ns() - t0) / 1000000, d);
			json_decref(d);
			mgr_timing_mark("audit");
			free(id);
			return 0;
		}
		/* gone or broken: drop it and try the next one */
		log_warn("warm pool: %s could not be resumed: %s", id, e.message);
		silo_error e2;
		manager_delete(m, id, POOL_ACTOR, 0, &e2);
		free(id);
	}
}

json_t *manager_pools_json(manager *m)
{
	json_t *a = json_array();
	struct mgr_pools *ps = *manager_pools_slot(m);
	if (!ps)
		return a;
	pthread_mutex_lock(&ps->lock);
	for (pool *p = ps->list; p; p = p->next) {
		json_t *ids = json_array();
		for (size_t i = 0; i < p->n; i++)
			json_array_append_new(ids, json_string(p->ids[i]));
		json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:o,s:I,s:I,s:I}", "template", p->label, "name", p->spec.name,
				      "k", (json_int_t)p->k, "ready", (json_int_t)p->n, "ready_ids", ids, "taken",
				      (json_int_t)p->taken, "filled", (json_int_t)p->filled, "failures",
				      (json_int_t)p->failures);
		if (p->snap[0])
			json_object_set_new(o, "snapshot", json_string(p->snap));
		if (p->last_error[0])
			json_object_set_new(o, "last_error", json_string(p->last_error));
		json_array_append_new(a, o);
	}
	pthread_mutex_unlock(&ps->lock);
	return a;
}
