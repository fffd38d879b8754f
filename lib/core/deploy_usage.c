/* SPDX-License-Identifier: Apache-2.0
 * Deployments: usage, pricing and budgets.
 * Locking and durability: the rules at the top of deploy.c.
 */
#include "core/deploy_int.h"

/* ---- usage ---- */

static double price(const deployer *d, uint64_t vcpu_ms, uint64_t mib_ms)
{
	return (double)vcpu_ms / 1000.0 * d->teams.vcpu_second + (double)mib_ms / 1024.0 / 1000.0 * d->teams.gib_second;
}

/* Cost of a team so far: stored usage + not yet flushed (d->lock held). */
double deploy_team_cost_locked(deployer *d, const char *team_name, silo_error *err, int *ok)
{
	dstore_usage *u;
	size_t n;
	*ok = 0;
	if (dstore_usage_list(d->st, &u, &n, err) < 0)
		return 0;
	uint64_t v = 0, m = 0;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(u[i].team, team_name)) {
			v += u[i].vcpu_ms;
			m += u[i].mib_ms;
		}
	free(u);
	for (size_t i = 0; i < d->npending; i++)
		if (!strcmp(d->pending[i].team, team_name)) {
			v += d->pending[i].vcpu_ms;
			m += d->pending[i].mib_ms;
		}
	*ok = 1;
	return price(d, v, m);
}

void deploy_add_pending(deployer *d, const char *tm, const char *agent, uint64_t vcpu_ms, uint64_t mib_ms)
{
	for (size_t i = 0; i < d->npending; i++) {
		if (!strcmp(d->pending[i].team, tm) && !strcmp(d->pending[i].agent, agent)) {
			d->pending[i].vcpu_ms += vcpu_ms;
			d->pending[i].mib_ms += mib_ms;
			return;
		}
	}
	d->pending = xrealloc(d->pending, (d->npending + 1) * sizeof *d->pending);
	dstore_usage *u = &d->pending[d->npending++];
	memset(u, 0, sizeof *u);
	snprintf(u->team, sizeof u->team, "%s", tm);
	snprintf(u->agent, sizeof u->agent, "%s", agent);
	u->vcpu_ms = vcpu_ms;
	u->mib_ms = mib_ms;
}

void deploy_flush_usage_locked(deployer *d)
{
	silo_error err;
	if (!d->npending)
		return;
	if (dstore_usage_add(d->st, d->pending, d->npending, &err) < 0) {
		log_error("usage: %s", err.message);
		return;
	}
	free(d->pending);
	d->pending = NULL;
	d->npending = 0;
}

int deploy_usage_json(deployer *d, json_t **out, silo_error *err)
{
	pthread_mutex_lock(&d->lock);
	deploy_flush_usage_locked(d);
	dstore_usage *u;
	size_t n;
	if (dstore_usage_list(d->st, &u, &n, err) < 0) {
		pthread_mutex_unlock(&d->lock);
		return -1;
	}
	json_t *teams = json_object();
	/* Every configured team appears, also without usage. */
	for (size_t i = 0; i < d->teams.n; i++)
		json_object_set_new(teams, d->teams.v[i].name,
				    json_pack("{s:I,s:I,s:f,s:f,s:f,s:o}", "vcpu_ms", (json_int_t)0, "mib_ms",
					      (json_int_t)0, "vcpu_seconds", 0.0, "gib_seconds", 0.0, "cost", 0.0,
					      "agents", json_array()));
	for (size_t i = 0; i < n; i++) {
		json_t *t = json_object_get(teams, u[i].team);
		if (!t) {
			t = json_pack("{s:I,s:I,s:f,s:f,s:f,s:o}", "vcpu_ms", (json_int_t)0, "mib_ms", (json_int_t)0,
				      "vcpu_seconds", 0.0, "gib_seconds", 0.0, "cost", 0.0, "agents", json_array());
			json_object_set_new(teams, u[i].team, t);
		}
		json_t *a = json_pack("{s:s,s:I,s:I,s:f,s:f,s:f}", "agent", u[i].agent, "vcpu_ms",
				      (json_int_t)u[i].vcpu_ms, "mib_ms", (json_int_t)u[i].mib_ms, "vcpu_seconds",
				      (double)u[i].vcpu_ms / 1000.0, "gib_seconds", (double)u[i].mib_ms / 1024000.0,
				      "cost", price(d, u[i].vcpu_ms, u[i].mib_ms));
		json_array_append_new(json_object_get(t, "agents"), a);
		json_int_t v = json_integer_value(json_object_get(t, "vcpu_ms")) + (json_int_t)u[i].vcpu_ms;
		json_int_t m = json_integer_value(json_object_get(t, "mib_ms")) + (json_int_t)u[i].mib_ms;
		json_object_set_new(t, "vcpu_ms", json_integer(v));
		json_object_set_new(t, "mib_ms", json_integer(m));
		json_object_set_new(t, "vcpu_seconds", json_real((double)v / 1000.0));
		json_object_set_new(t, "gib_seconds", json_real((double)m / 1024000.0));
		json_object_set_new(t, "cost", json_real(price(d, (uint64_t)v, (uint64_t)m)));
	}
	free(u);
	const char *k;
	json_t *t;
	json_object_foreach(teams, k, t) {
		const team *tc = deploy_find_team(d, k);
		uint64_t cnt = 0, v = 0, m = 0;
		for (dep *p = d->deps; p; p = p->next)
			if (!strcmp(p->row.team, k)) {
				cnt++;
				v += p->row.vcpus;
				m += p->row.memory_mb;
			}
		json_object_set_new(t, "deployments", json_integer((json_int_t)cnt));
		json_object_set_new(t, "allocated", json_pack("{s:I,s:I}", "vcpus", (json_int_t)v, "memory_mb",
							     (json_int_t)m));
		if (tc) {
			json_object_set_new(t, "quota", json_pack("{s:I,s:I,s:I}", "max_sandboxes",
								 (json_int_t)tc->max_sandboxes, "max_vcpus",
								 (json_int_t)tc->max_vcpus, "max_memory_mb",
								 (json_int_t)tc->max_memory_mb));
			if (tc->budget > 0) {
				double c = json_real_value(json_object_get(t, "cost"));
				json_object_set_new(t, "budget", json_real(tc->budget));
				json_object_set_new(t, "budget_used_pct", json_real(100.0 * c / tc->budget));
				json_object_set_new(t, "budget_exhausted", json_boolean(c >= tc->budget));
			}
		}
	}
	pthread_mutex_unlock(&d->lock);
	*out = json_pack("{s:{s:f,s:f},s:o}", "rates", "vcpu_second", d->teams.vcpu_second, "gib_second",
			 d->teams.gib_second, "teams", teams);
	return 0;
}

/* Budgets: alert at 80%, stop the team's deployments at 100% (d->lock held). */
void deploy_check_budgets_locked(deployer *d)
{
	for (size_t i = 0; i < d->teams.n; i++) {
		const team *t = &d->teams.v[i];
		if (!(t->budget > 0))
			continue;
		silo_error err;
		int ok;
		double c = deploy_team_cost_locked(d, t->name, &err, &ok);
		if (!ok)
			continue;
		bool first = false;
		if (c >= 0.8 * t->budget && dstore_alert_once(d->st, t->name, 80, t->budget, &first, &err) == 0 && first) {
			pthread_mutex_unlock(&d->lock);
			manager_emit(d->m, MGR_EV_BUDGET_WARNING, NULL, NULL, t->name, NULL, NULL,
				     "team %s spent %.6g of its budget %.6g (%.0f%%)", t->name, c, t->budget,
				     100.0 * c / t->budget);
			pthread_mutex_lock(&d->lock);
		}
		if (c < t->budget)
			continue;
		if (dstore_alert_once(d->st, t->name, 100, t->budget, &first, &err) == 0 && first) {
			pthread_mutex_unlock(&d->lock);
			manager_emit(d->m, MGR_EV_BUDGET_EXCEEDED, NULL, NULL, t->name, NULL, "RESOURCE_EXCEEDED",
				     "team %s spent %.6g, its budget is %.6g: its deployments are stopped", t->name, c,
				     t->budget);
			pthread_mutex_lock(&d->lock);
		}
		/* Hard stop: undeploy every deployment of the team. */
		for (;;) {
			dep *p = d->deps;
			while (p && (strcmp(p->row.team, t->name) != 0))
				p = p->next;
			if (!p)
				break;
			char name[DSTORE_NAME_MAX + 1];
			snprintf(name, sizeof name, "%s", p->row.name);
			deploy_wait_idle(d, &p, name);
			if (!p)
				continue;
			char why[256];
			snprintf(why, sizeof why, "team %s budget %.6g exhausted (spent %.6g)", t->name, t->budget, c);
			if (deploy_remove_locked(d, p, 0, "silod", why, NULL, &err) < 0) {
				log_error("budget stop %s: %s", name, err.message);
				break;
			}
		}
	}
}
