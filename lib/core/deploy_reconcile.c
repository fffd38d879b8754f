/* SPDX-License-Identifier: Apache-2.0
 * Deployments: reconcile at open.
 * Locking and durability: the rules at the top of deploy.c.
 */
#include "core/deploy_int.h"

void deploy_reconcile(deployer *d)
{
	dstore_row *rows;
	size_t n;
	silo_error err;
	if (dstore_list(d->st, &rows, &n, &err) < 0) {
		log_error("deploy: deploy_reconcile: %s", err.message);
		return;
	}
	/* Live sandboxes that name a deployment (metadata silo.deployment). */
	json_t *live = NULL;
	if (manager_list_json(d->m, NULL, &live, &err) < 0)
		live = json_array();
	uint64_t now = mono_ms();
	for (size_t i = 0; i < n; i++) {
		dstore_row *r = &rows[i];
		json_t *mine = NULL, *s;
		size_t j;
		json_array_foreach(live, j, s) {
			const char *dn = json_string_value(json_object_get(json_object_get(s, "metadata"), META_DEPLOYMENT));
			const char *id = json_string_value(json_object_get(s, "id"));
			if (dn && !strcmp(dn, r->name) && id && (!r->sandbox_id[0] || !strcmp(id, r->sandbox_id)))
				mine = s;
		}
		if (!strcmp(r->state, "stopping")) {
			if (mine)
				manager_delete(d->m, json_string_value(json_object_get(mine, "id")), "silod", 0, &err);
			dstore_delete(d->st, r->name, &err);
			manager_emit(d->m, MGR_EV_DEPLOYMENT, r->sandbox_id, r->name, r->team, "undeployed", NULL,
				     "undeploy finished after a silod restart");
			continue;
		}
		dep *p = xcalloc(1, sizeof *p);
		p->row = *r;
		r->spec_toml = r->overrides_json = NULL;
		if (mine) {
			snprintf(p->row.sandbox_id, sizeof p->row.sandbox_id, "%s",
				 json_string_value(json_object_get(mine, "id")));
			snprintf(p->row.state, sizeof p->row.state, "running");
			p->running_since_ms = p->accounted_ms = now;
			log_info("deploy %s: sandbox %s reattached", p->row.name, p->row.sandbox_id);
		} else if (!strcmp(p->row.restart, "never")) {
			dstore_delete(d->st, p->row.name, &err);
			manager_emit(d->m, MGR_EV_DEPLOYMENT, p->row.sandbox_id, p->row.name, p->row.team, "removed", NULL,
				     "sandbox lost across the silod restart; restart policy never: the deployment is removed");
			dstore_row_clear(&p->row);
			free(p);
			continue;
		} else {
			snprintf(p->row.last_error, sizeof p->row.last_error, "sandbox %s lost across the silod restart",
				 p->row.sandbox_id[0] ? p->row.sandbox_id : "(none yet)");
			p->row.sandbox_id[0] = '\0';
			snprintf(p->row.state, sizeof p->row.state, "backoff");
			p->next_attempt_ms = now;   /* respawn at once */
		}
		p->next = d->deps;
		d->deps = p;
		deploy_persist(d, p);
	}
	/* Sandboxes that name a deployment that no longer exists: delete them. */
	json_t *s;
	size_t j;
	json_array_foreach(live, j, s) {
		const char *dn = json_string_value(json_object_get(json_object_get(s, "metadata"), META_DEPLOYMENT));
		const char *id = json_string_value(json_object_get(s, "id"));
		if (!dn || !id)
			continue;
		dep *p = deploy_find_dep(d, dn);
		if (p && !strcmp(p->row.sandbox_id, id))
			continue;
		log_warn("deploy: deleting sandbox %s of deployment %s, which is not (or no longer) deployed", id, dn);
		if (manager_delete(d->m, id, "silod", 0, &err) < 0)
			log_warn("deploy: delete %s: %s", id, err.message);
	}
	json_decref(live);
	dstore_rows_free(rows, n);
	deploy_bundles_gc_locked(d);
}
