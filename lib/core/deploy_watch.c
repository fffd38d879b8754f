/* SPDX-License-Identifier: Apache-2.0
 * Deployments: the watch thread: health, restarts, budgets.
 * Locking and durability: the rules at the top of deploy.c.
 */
#include "core/deploy_int.h"

/* ---- the watch thread ---- */

typedef struct snap {
	char name[DSTORE_NAME_MAX + 1];
	char sid[SILO_ID_MAX];
	bool due;                 /* backoff over: respawn */
} snap;

/* Look at one running deployment's sandbox (no lock held), then act under the lock. */
static void watch_one(deployer *d, const snap *s)
{
	json_t *o = NULL;
	silo_error err;
	bool gone = false, failed = false, connected = true;
	char why[256] = "";
	uint64_t mem = 0;
	if (manager_get_json(d->m, s->sid, &o, &err) < 0) {
		gone = true;
		failed = true;
		snprintf(why, sizeof why, "is not known to the manager");
	} else {
		const char *st = json_string_value(json_object_get(o, "state"));
		st = st ? st : "";
		if (!strcmp(st, "error") || !strcmp(st, "terminated")) {
			gone = true;
			failed = !strcmp(st, "error");
			const char *rs = json_string_value(json_object_get(o, "reason"));
			snprintf(why, sizeof why, "is %s (%.200s)", st, rs ? rs : "");
		} else {
			json_t *c = json_object_get(o, "connected");
			connected = !c || json_is_true(c);
			mem = (uint64_t)json_integer_value(json_object_get(json_object_get(o, "usage"), "memory_bytes"));
		}
	}
	json_decref(o);

	uint64_t now = mono_ms();
	pthread_mutex_lock(&d->lock);
	dep *p = deploy_find_dep(d, s->name);
	if (!p || p->busy || strcmp(p->row.sandbox_id, s->sid) != 0 || strcmp(p->row.state, "running") != 0) {
		pthread_mutex_unlock(&d->lock);
		return;   /* changed meanwhile */
	}
	/* Usage: allocation x time while running. */
	if (p->accounted_ms && now > p->accounted_ms) {
		uint64_t dt = now - p->accounted_ms;
		deploy_add_pending(d, p->row.team, p->row.name, dt * p->row.vcpus, dt * p->row.memory_mb);
	}
	p->accounted_ms = now;
	if (gone) {
		deploy_sandbox_gone(d, p, failed, why);
		pthread_mutex_unlock(&d->lock);
		return;
	}
	if (now - p->running_since_ms > (uint64_t)d->cfg.backoff_max_ms)
		p->failures = 0;   /* stable again: the next failure starts the backoff anew */
	char name[DSTORE_NAME_MAX + 1], tm[DSTORE_NAME_MAX + 1];
	snprintf(name, sizeof name, "%s", p->row.name);
	snprintf(tm, sizeof tm, "%s", p->row.team);
	uint64_t limit = p->row.memory_mb << 20;
	bool warn_mem = false, warn_chan = false, kill_it = false;
	if (mem > limit / 10 * 9) {
		warn_mem = !p->warned_memory;
		p->warned_memory = true;
	} else {
		p->warned_memory = false;
	}
	if (!connected) {
		if (!p->disconnected_since_ms)
			p->disconnected_since_ms = now;
		warn_chan = !p->warned_channel;
		p->warned_channel = true;
		kill_it = now - p->disconnected_since_ms >= (uint64_t)d->cfg.unhealthy_ms &&
			  strcmp(p->row.restart, "never") != 0;
	} else {
		p->disconnected_since_ms = 0;
		p->warned_channel = false;
	}
	if (kill_it)
		p->busy = true;
	uint64_t mem_mb = mem >> 20, lim_mb = p->row.memory_mb;
	pthread_mutex_unlock(&d->lock);

	if (warn_mem)
		manager_emit(d->m, MGR_EV_HEALTH_WARNING, s->sid, name, tm, "running", "RESOURCE_EXCEEDED",
			     "deployment %s uses %" PRIu64 " MB of its %" PRIu64 " MB", name, mem_mb, lim_mb);
	if (warn_chan)
		manager_emit(d->m, MGR_EV_HEALTH_WARNING, s->sid, name, tm, "running", "VSOCK_DISCONNECTED",
			     "deployment %s: the agent missed its heartbeats", name);
	if (kill_it) {
		if (manager_delete(d->m, s->sid, "silod", 0, &err) < 0 && err.code != SILO_ERR_VM_NOT_FOUND)
			log_warn("deploy %s: delete unhealthy %s: %s", name, s->sid, err.message);
		pthread_mutex_lock(&d->lock);
		p = deploy_find_dep(d, name);
		if (p) {
			p->busy = false;
			deploy_sandbox_gone(d, p, true, "stopped answering heartbeats");
		}
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
	}
}

static void respawn_one(deployer *d, const snap *s)
{
	pthread_mutex_lock(&d->lock);
	dep *p = deploy_find_dep(d, s->name);
	if (!p || p->busy || strcmp(p->row.state, "backoff") != 0) {
		pthread_mutex_unlock(&d->lock);
		return;
	}
	p->busy = true;
	dstore_row r;
	deploy_copy_row(&r, &p->row);
	pthread_mutex_unlock(&d->lock);
	char id[SILO_ID_MAX];
	silo_error err;
	int rc = deploy_spawn(d, &r, "silod", true, id, &err);
	pthread_mutex_lock(&d->lock);
	p = deploy_find_dep(d, s->name);
	if (rc == 0) {
		snprintf(p->row.sandbox_id, sizeof p->row.sandbox_id, "%s", id);
		snprintf(p->row.state, sizeof p->row.state, "running");
		p->row.restarts++;
		p->running_since_ms = p->accounted_ms = mono_ms();
		p->disconnected_since_ms = 0;
		p->warned_channel = p->warned_memory = false;
	} else {
		p->failures++;
		p->next_attempt_ms = mono_ms() + deploy_backoff_ms(d, p->failures);
		snprintf(p->row.last_error, sizeof p->row.last_error, "restart: %s: %.400s", silo_code_name(err.code),
			 err.message);
	}
	p->busy = false;
	deploy_persist(d, p);
	uint32_t restarts = p->row.restarts;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	if (rc == 0)
		manager_emit(d->m, MGR_EV_DEPLOYMENT, id, r.name, r.team, "running", NULL,
			     "restarted (restart %u, policy %s)", restarts, r.restart);
	else
		manager_emit(d->m, MGR_EV_HEALTH_WARNING, NULL, r.name, r.team, "backoff", silo_code_name(err.code),
			     "deployment %s: restart failed: %s", r.name, err.message);
	dstore_row_clear(&r);
}

static void tick(deployer *d)
{
	pthread_mutex_lock(&d->lock);
	size_t n = deploy_count_locked(d);
	snap *v = xcalloc(n ? n : 1, sizeof *v);
	size_t k = 0;
	uint64_t now = mono_ms();
	for (dep *p = d->deps; p; p = p->next) {
		if (p->busy)
			continue;
		if (!strcmp(p->row.state, "running") && p->row.sandbox_id[0]) {
			snprintf(v[k].name, sizeof v[k].name, "%s", p->row.name);
			snprintf(v[k].sid, sizeof v[k].sid, "%s", p->row.sandbox_id);
			k++;
		} else if (!strcmp(p->row.state, "backoff") && now >= p->next_attempt_ms) {
			snprintf(v[k].name, sizeof v[k].name, "%s", p->row.name);
			v[k].due = true;
			k++;
		}
	}
	pthread_mutex_unlock(&d->lock);
	for (size_t i = 0; i < k && !__atomic_load_n(&d->stopping, __ATOMIC_ACQUIRE); i++) {
		if (v[i].due)
			respawn_one(d, &v[i]);
		else
			watch_one(d, &v[i]);
	}
	free(v);
	pthread_mutex_lock(&d->lock);
	deploy_flush_usage_locked(d);
	if (!d->stopping)   /* d->lock held */
		deploy_check_budgets_locked(d);
	pthread_mutex_unlock(&d->lock);
}

void *deploy_thread_main(void *arg)
{
	deployer *d = arg;
	pthread_mutex_lock(&d->lock);
	while (!d->stopping) {
		if (!d->wake)
			cond_wait_ms(&d->cond, &d->lock, d->cfg.interval_ms);
		d->wake = false;
		if (d->stopping)
			break;
		pthread_mutex_unlock(&d->lock);
		tick(d);
		pthread_mutex_lock(&d->lock);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

/* A sandbox stopped: look now rather than at the next period. Called under
 * the manager's event lock, sometimes from this module while d->lock is held
 * (deploy_sandbox_gone emits): so only try the lock; a missed wake-up costs one period. */
void deploy_on_event(void *ud, const mgr_event *ev)
{
	deployer *d = ud;
	if (ev->type != MGR_EV_ERROR && ev->type != MGR_EV_TERMINATED)
		return;
	if (pthread_mutex_trylock(&d->lock) == 0) {
		d->wake = true;
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
	}
}
