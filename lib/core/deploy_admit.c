/* SPDX-License-Identifier: Apache-2.0
 * Deployments: admission: quotas, budgets and fair waiting for host capacity.
 * Locking and durability: the rules at the top of deploy.c.
 */
#include "core/deploy_int.h"

/* Quota and budget checks for adding (vcpus, mb) to team t (d->lock held). */

int deploy_admit_locked(deployer *d, const char *tname, uint32_t vcpus, uint64_t mb, silo_error *err)
{
	const team *t = deploy_find_team(d, tname);
	if (d->teams.defined && !t)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "team: '%s' is not defined in %s", tname,
				 d->teams_file);
	if (!t)
		return 0;
	uint64_t n = 0, v = 0, m = 0;
	for (dep *p = d->deps; p; p = p->next) {
		if (strcmp(p->row.team, tname) != 0)
			continue;
		n++;
		v += p->row.vcpus;
		m += p->row.memory_mb;
	}
	if (t->max_sandboxes && n + 1 > t->max_sandboxes)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0,
				 "team %s quota max_sandboxes: %" PRIu64 " deployed, limit %u", tname, n, t->max_sandboxes);
	if (t->max_vcpus && v + vcpus > t->max_vcpus)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0,
				 "team %s quota max_vcpus: %" PRIu64 " in use + %u asked > limit %u", tname, v, vcpus,
				 t->max_vcpus);
	if (t->max_memory_mb && m + mb > t->max_memory_mb)
		return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0,
				 "team %s quota max_memory_mb: %" PRIu64 " in use + %" PRIu64 " asked > limit %" PRIu64,
				 tname, m, mb, t->max_memory_mb);
	if (t->budget > 0) {
		int ok;
		double c = deploy_team_cost_locked(d, tname, err, &ok);
		if (!ok)
			return -1;
		if (c >= t->budget)
			return silo_fail(err, SILO_ERR_RESOURCE_EXCEEDED, 0,
					 "team %s budget: %.6g spent of %.6g; the budget is exhausted", tname, c, t->budget);
	}
	return 0;
}

/* Deployments of team tname that hold (or are getting) a sandbox: queued ones do not count. */
static size_t team_placed_locked(deployer *d, const char *tname)
{
	size_t n = 0;
	for (dep *p = d->deps; p; p = p->next)
		n += !strcmp(p->row.team, tname) && strcmp(p->row.state, "queued") != 0;
	return n;
}

/* The waiter whose turn it is (d->lock held). */
static waiter *fair_first_locked(deployer *d)
{
	waiter *best = NULL;
	size_t best_n = 0;
	for (waiter *w = d->waiters; w; w = w->next) {
		size_t n = team_placed_locked(d, w->team);
		if (!best || n < best_n || (n == best_n && w->seq < best->seq)) {
			best = w;
			best_n = n;
		}
	}
	return best;
}

static bool capacity_error(const silo_error *err)
{
	return err->code == SILO_ERR_MAX_VMS_EXCEEDED || err->code == SILO_ERR_RESOURCE_EXCEEDED;
}

/* Spawn p's sandbox; when the host is full and the request may wait, queue it and retry on its
 * turn until the deadline. p is busy (the reconciler leaves it alone) and stays in d->deps. */
int deploy_spawn_fair(deployer *d, dep *p, const dstore_row *snap, const char *actor, int wait_ms,
		      char id[SILO_ID_MAX], silo_error *err)
{
	int rc = deploy_spawn(d, snap, actor, false, id, err);
	if (rc == 0 || wait_ms <= 0 || !capacity_error(err))
		return rc;
	uint64_t t0 = mono_ms(), deadline = t0 + (uint64_t)wait_ms;
	waiter w = {0};
	snprintf(w.team, sizeof w.team, "%s", snap->team);
	pthread_mutex_lock(&d->lock);
	w.seq = ++d->wseq;
	waiter **tail = &d->waiters;
	while (*tail)
		tail = &(*tail)->next;
	*tail = &w;
	snprintf(p->row.state, sizeof p->row.state, "queued");
	snprintf(p->row.last_error, sizeof p->row.last_error, "waiting for host capacity: %.200s", err->message);
	pthread_mutex_unlock(&d->lock);
	manager_emit(d->m, MGR_EV_DEPLOYMENT, NULL, snap->name, snap->team, "queued", silo_code_name(err->code),
		     "deployment %s queued for host capacity (up to %d ms): %s", snap->name, wait_ms, err->message);
	for (;;) {
		pthread_mutex_lock(&d->lock);
		/* Wait for our turn; a removal broadcasts, and capacity can also free up outside the
		 * deployer (a plain sandbox deleted), so look again every 250 ms. */
		bool expired = false;
		while (!d->stopping) {
			if (mono_ms() >= deadline) {
				expired = true;
				break;
			}
			if (fair_first_locked(d) == &w)
				break;
			cond_wait_ms(&d->cond, &d->lock, 250);
		}
		bool stop = d->stopping;
		if (!expired && !stop)
			snprintf(p->row.state, sizeof p->row.state, "starting");
		pthread_mutex_unlock(&d->lock);
		if (expired || stop) {
			rc = silo_fail(err, stop ? SILO_ERR_CONFLICT : err->code, 0,
				       "%s after waiting %" PRIu64 " ms for host capacity (%.300s)",
				       stop ? "silod is stopping" : "no room", mono_ms() - t0, err->message);
			break;
		}
		silo_error e2 = {0};
		rc = deploy_spawn(d, snap, actor, false, id, &e2);
		if (rc == 0)
			break;
		*err = e2;
		if (!capacity_error(err))
			break;
		pthread_mutex_lock(&d->lock);
		snprintf(p->row.state, sizeof p->row.state, "queued");
		pthread_mutex_unlock(&d->lock);
		/* Still full: let the next look come from the wait above, not a busy loop. */
		struct timespec pause = {0, 100 * 1000000L};
		nanosleep(&pause, NULL);
	}
	pthread_mutex_lock(&d->lock);
	for (waiter **q = &d->waiters; *q; q = &(*q)->next)
		if (*q == &w) {
			*q = w.next;
			break;
		}
	pthread_cond_broadcast(&d->cond); /* the next waiter's turn */
	pthread_mutex_unlock(&d->lock);
	return rc;
}
