/* SPDX-License-Identifier: Apache-2.0
 * Deployments (see deploy.h, docs/deployments.md).
 *
 * Locking: d->lock guards the list of deployments and their in-memory fields;
 * it is never held across a manager call or a store write that can be slow,
 * except the short row writes that keep the store equal to the list. A
 * deployment being started, restarted or stopped is marked busy; others wait
 * on d->cond until it is not.
 *
 * Durability: the row is written before the sandbox is created (state
 * starting) and marked stopping before the sandbox is deleted, so a silod
 * killed at any point reconciles to a consistent set on the next start:
 * stopping rows are finished, sandboxes created for a row whose id was not yet
 * recorded are adopted (their metadata names the deployment), sandboxes that
 * name a deployment without a row are deleted, and rows without a live
 * sandbox are respawned per their restart policy (never: dropped).
 *
 * Bundles: <state dir>/bundles/<sha256>.tar and .tar.minisig, written (each
 * atomically) by deploy_bundle_put before any row names them; a row names its
 * bundle by sha256, and every (re)start verifies the stored copy against the
 * keyring again before unpacking it. Files no row names are removed once older
 * than DEPLOY_BUNDLE_KEEP_S (after an undeploy and at open), so an upload that
 * was never deployed does not stay, and one about to be deployed is not lost.
 */
#include "core/deploy_int.h"

/* ---- JSON views ---- */

static json_t *dep_json(deployer *d, const dstore_row *r)
{
	char created[40], updated[40];
	format_time_ms(r->created_ms, created, sizeof created);
	format_time_ms(r->updated_ms, updated, sizeof updated);
	json_t *ov = mgr_json_column(r->overrides_json, JSON_ARRAY);
	json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:I,s:i,s:s,s:s,s:o}", "name", r->name, "team", r->team,
			      "restart", r->restart, "state", r->state, "sandbox_id", r->sandbox_id, "vcpus",
			      (int)r->vcpus, "memory_mb", (json_int_t)r->memory_mb, "restarts", (int)r->restarts,
			      "created", created, "updated", updated, "overrides", ov);
	if (r->last_error[0])
		json_object_set_new(o, "last_error", json_string(r->last_error));
	if (r->bundle[0])
		json_object_set_new(o, "bundle", json_pack("{s:s,s:s,s:s}", "sha256", r->bundle, "key_id", r->bundle_key,
							   "dir", DEPLOY_BUNDLE_DIR));
	if (r->sandbox_id[0]) {
		json_t *sb;
		silo_error err;
		if (manager_get_json(d->m, r->sandbox_id, &sb, &err) == 0) {
			json_t *sub = json_object();
			const char *keys[] = {"state", "pid", "usage", "connected", "provider"};
			for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
				json_t *x = json_object_get(sb, keys[i]);
				if (x)
					json_object_set(sub, keys[i], x);
			}
			json_object_set_new(o, "sandbox", sub);
			json_decref(sb);
		}
	}
	return o;
}

/* ---- list helpers (d->lock held) ---- */

dep *deploy_find_dep(deployer *d, const char *name)
{
	for (dep *p = d->deps; p; p = p->next)
		if (!strcmp(p->row.name, name))
			return p;
	return NULL;
}

size_t deploy_count_locked(const deployer *d)
{
	size_t n = 0;
	for (const dep *p = d->deps; p; p = p->next)
		n++;
	return n;
}

static void unlink_dep(deployer *d, dep *x)
{
	for (dep **pp = &d->deps; *pp; pp = &(*pp)->next) {
		if (*pp == x) {
			*pp = x->next;
			break;
		}
	}
	dstore_row_clear(&x->row);
	free(x);
}

void deploy_copy_row(dstore_row *dst, const dstore_row *src)
{
	*dst = *src;
	dst->spec_toml = src->spec_toml ? xstrdup(src->spec_toml) : NULL;
	dst->overrides_json = src->overrides_json ? xstrdup(src->overrides_json) : NULL;
}

/* Write p's row (d->lock held). */
void deploy_persist(deployer *d, dep *p)
{
	silo_error err;
	p->row.updated_ms = now_realtime_ms();
	if (dstore_put(d->st, &p->row, &err) < 0)
		log_error("deploy %s: %s", p->row.name, err.message);
}

void deploy_wait_idle(deployer *d, dep **pp, const char *name)
{
	while (*pp && (*pp)->busy) {
		pthread_cond_wait(&d->cond, &d->lock);
		*pp = deploy_find_dep(d, name);
	}
}

/* ---- spawning ---- */

/* Create the sandbox for a row and unpack its bundle (no lock held). note: count a
 * failure here (restarts); a deploy's failure is counted by the API that reports it. */
int deploy_spawn(deployer *d, const dstore_row *r, const char *actor, bool note, char id[SILO_ID_MAX],
		 silo_error *err)
{
	vm_spec spec = {0};
	if (spec_parse(r->spec_toml, strlen(r->spec_toml), &spec, err) < 0)
		return silo_error_prefix(err, "deployment %s: recorded spec", r->name), -1;
	mgr_create_opts o = {.actor = actor};
	int rc = manager_create(d->m, &spec, &o, id, err);
	spec_free(&spec);
	if (rc == 0 && r->bundle[0] && deploy_unpack_bundle(d, r, id, actor, err) < 0) {
		silo_error e2;
		if (manager_delete(d->m, id, "silod", 0, &e2) < 0)
			log_warn("deploy %s: delete %s after a failed unpack: %s", r->name, id, e2.message);
		rc = -1;
	}
	if (rc < 0 && note)
		manager_note_error(d->m, err);
	return rc;
}

uint64_t deploy_backoff_ms(deployer *d, uint32_t failures)
{
	uint64_t ms = (uint64_t)d->cfg.backoff_ms;
	for (uint32_t i = 1; i < failures && ms < (uint64_t)d->cfg.backoff_max_ms; i++)
		ms *= 2;
	return MIN(ms, (uint64_t)d->cfg.backoff_max_ms);
}

/* The sandbox of p is gone (failed: error/lost; else terminated). Apply the
 * restart policy (d->lock held). Returns true if p was removed. */
bool deploy_sandbox_gone(deployer *d, dep *p, bool failed, const char *why)
{
	bool restart = !strcmp(p->row.restart, "always") || (failed && !strcmp(p->row.restart, "on-failure"));
	char name[DSTORE_NAME_MAX + 1], tm[DSTORE_NAME_MAX + 1], sid[SILO_ID_MAX], policy[16];
	snprintf(name, sizeof name, "%s", p->row.name);
	snprintf(tm, sizeof tm, "%s", p->row.team);
	snprintf(sid, sizeof sid, "%s", p->row.sandbox_id);
	snprintf(policy, sizeof policy, "%s", p->row.restart);
	if (!restart) {
		silo_error err;
		if (dstore_delete(d->st, name, &err) < 0)
			log_error("deploy %s: %s", name, err.message);
		unlink_dep(d, p);
		pthread_cond_broadcast(&d->cond);
		manager_emit(d->m, MGR_EV_DEPLOYMENT, sid, name, tm, "removed", NULL,
			     "sandbox %s %s; restart policy %s: the deployment is removed", sid, why, policy);
		return true;
	}
	p->failures++;
	uint64_t delay = deploy_backoff_ms(d, p->failures);
	p->next_attempt_ms = mono_ms() + delay;
	snprintf(p->row.state, sizeof p->row.state, "backoff");
	snprintf(p->row.last_error, sizeof p->row.last_error, "sandbox %s %s", sid, why);
	p->row.sandbox_id[0] = '\0';
	deploy_persist(d, p);
	manager_emit(d->m, MGR_EV_HEALTH_WARNING, sid, name, tm, "backoff", failed ? "VSOCK_DISCONNECTED" : NULL,
		     "deployment %s: sandbox %s %s; restarting in %" PRIu64 " ms (restart policy %s, failure %u)", name,
		     sid, why, delay, p->row.restart, p->failures);
	return false;
}

int deploy_create(deployer *d, const deploy_req *r, const char *actor, json_t **out, silo_error *err)
{
	const char *tname = r->team ? r->team : "default";
	const char *policy = r->restart ? r->restart : "on-failure";
	if (!valid_name(r->name))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "name: expected 1-64 of [A-Za-z0-9_-], got '%.80s'",
				 r->name ? r->name : "");
	if (!valid_name(tname))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "team: expected 1-64 of [A-Za-z0-9_-], got '%.80s'",
				 tname);
	if (!valid_policy(policy))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				 "restart: expected never, on-failure or always, got '%.40s'", policy);
	vm_spec spec = {0};
	if (deploy_load_spec(d, r, tname, actor, &spec, err) < 0)
		return -1;
	/* the bundle, verified before anything starts (and again before every start) */
	char bundle_key[17] = "";
	if (r->bundle) {
		bundle_map b;
		if (deploy_bundle_open(d, r->bundle, &b, err) < 0) {
			if (err->code == SILO_ERR_PLUGIN_UNVERIFIED)
				deploy_refuse_unverified(d, r->name, tname, NULL, "bundle", r->bundle, actor, err);
			spec_free(&spec);
			return silo_error_prefix(err, "deploy %s", r->name), -1;
		}
		int vrc = trust_bundle_walk(b.data, b.len, NULL, NULL, err);
		snprintf(bundle_key, sizeof bundle_key, "%s", b.res.keyid_hex);
		deploy_bundle_unmap(&b);
		if (vrc < 0) {
			spec_free(&spec);
			return silo_error_prefix(err, "deploy %s", r->name), -1;
		}
		char tar[PATH_MAX];
		deploy_bundle_path(d, r->bundle, "", tar, sizeof tar);
		utimensat(AT_FDCWD, tar, NULL, 0); /* in use from now on: not collected meanwhile */
	}
	json_t *ov = json_array();
	size_t nset = 0;
	for (const char *const *s = r->set; s && *s; s++, nset++) {
		if (nset >= MAX_OVERRIDES) {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "set: at most %d overrides", MAX_OVERRIDES);
			goto fail_spec;
		}
		if (deploy_apply_override(&spec, *s, err) < 0)
			goto fail_spec;
		json_array_append_new(ov, json_string(*s));
	}
	for (size_t i = 0; i < spec.n_secrets; i++)
		if (spec.secrets[i].src == SPEC_SECRET_VALUE) {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				  "sandbox.secrets.%s: a deployment restarts from its stored spec, which never holds a "
				  "secret's value: give it as {file = \"/host/path\"} or {env = \"NAME\"}",
				  spec.secrets[i].key);
			goto fail_spec;
		}
	snprintf(spec.name, sizeof spec.name, "%s", r->name);
	deploy_set_kv(spec.metadata, &spec.n_metadata, META_DEPLOYMENT, r->name);
	deploy_set_kv(spec.metadata, &spec.n_metadata, META_TEAM, tname);
	pthread_mutex_lock(&d->lock);
	deploy_normalize_fn norm = d->normalize;
	void *norm_ud = d->normalize_ud;
	pthread_mutex_unlock(&d->lock);
	if (norm && norm(norm_ud, &spec, err) < 0) {
		silo_error_prefix(err, "deploy %s", r->name);
		goto fail_spec;
	}
	if (spec_validate(&spec, err) < 0) {
		silo_error_prefix(err, "spec of %s", r->name);
		goto fail_spec;
	}
	/* Restarts re-create the sandbox from the stored text: it must parse back to this spec. */
	{
		char *text = spec_format(&spec);
		vm_spec back = {0};
		silo_error e2;
		bool same = text && spec_parse(text, strlen(text), &back, &e2) == 0 && spec_equal(&spec, &back);
		spec_free(&back);
		free(text);
		if (!same) {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				  "spec of %s: its canonical form does not parse back to the same spec", r->name);
			goto fail_spec;
		}
	}

	dep *p = xcalloc(1, sizeof *p);
	snprintf(p->row.name, sizeof p->row.name, "%s", r->name);
	snprintf(p->row.team, sizeof p->row.team, "%s", tname);
	snprintf(p->row.restart, sizeof p->row.restart, "%s", policy);
	snprintf(p->row.state, sizeof p->row.state, "starting");
	p->row.spec_toml = spec_format(&spec);
	p->row.overrides_json = json_dumps(ov, JSON_COMPACT);
	p->row.vcpus = spec.vcpus;
	p->row.memory_mb = spec.memory_mb;
	p->row.created_ms = p->row.updated_ms = now_realtime_ms();
	if (r->bundle) {
		snprintf(p->row.bundle, sizeof p->row.bundle, "%s", r->bundle);
		snprintf(p->row.bundle_key, sizeof p->row.bundle_key, "%s", bundle_key);
	}
	p->busy = true;
	json_decref(ov);
	ov = NULL;
	spec_free(&spec);

	pthread_mutex_lock(&d->lock);
	if (deploy_find_dep(d, r->name)) {
		pthread_mutex_unlock(&d->lock);
		silo_fail(err, SILO_ERR_CONFLICT, 0, "deployment '%s' already exists", r->name);
		goto fail_dep;
	}
	if (deploy_admit_locked(d, tname, p->row.vcpus, p->row.memory_mb, err) < 0) {
		pthread_mutex_unlock(&d->lock);
		goto fail_dep;
	}
	if (dstore_insert(d->st, &p->row, err) < 0) {
		pthread_mutex_unlock(&d->lock);
		goto fail_dep;
	}
	p->next = d->deps;
	d->deps = p;
	pthread_mutex_unlock(&d->lock);

	char id[SILO_ID_MAX];
	dstore_row snap;
	deploy_copy_row(&snap, &p->row);   /* p stays ours while busy */
	int rc = deploy_spawn_fair(d, p, &snap, actor, r->wait_ms, id, err);
	dstore_row_clear(&snap);
	pthread_mutex_lock(&d->lock);
	if (rc < 0) {
		silo_error e2;
		if (dstore_delete(d->st, r->name, &e2) < 0)
			log_error("deploy %s: %s", r->name, e2.message);
		unlink_dep(d, p);
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
		return silo_error_prefix(err, "deploy %s", r->name), -1;
	}
	snprintf(p->row.sandbox_id, sizeof p->row.sandbox_id, "%s", id);
	snprintf(p->row.state, sizeof p->row.state, "running");
	p->running_since_ms = p->accounted_ms = mono_ms();
	p->busy = false;
	deploy_persist(d, p);
	dstore_row view;
	deploy_copy_row(&view, &p->row);
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	manager_emit(d->m, MGR_EV_DEPLOYMENT, id, view.name, view.team, "running", NULL,
		     "deployed by %s (restart policy %s, %u vCPU, %" PRIu64 " MB)", actor ? actor : "silod", view.restart,
		     view.vcpus, view.memory_mb);
	*out = dep_json(d, &view);
	dstore_row_clear(&view);
	return 0;
fail_dep:
	dstore_row_clear(&p->row);
	free(p);
	return -1;
fail_spec:
	json_decref(ov);
	spec_free(&spec);
	return -1;
}

/* Undeploy p (d->lock held on entry and exit; p must not be busy). */
int deploy_remove_locked(deployer *d, dep *p, int grace_ms, const char *actor, const char *why, dstore_row *final,
			 silo_error *err)
{
	p->busy = true;
	uint64_t now = mono_ms();
	if (!strcmp(p->row.state, "running") && p->accounted_ms && now > p->accounted_ms)
		deploy_add_pending(d, p->row.team, p->row.name, (now - p->accounted_ms) * p->row.vcpus,
			    (now - p->accounted_ms) * p->row.memory_mb);
	p->accounted_ms = now;
	snprintf(p->row.state, sizeof p->row.state, "stopping");
	deploy_persist(d, p);
	char sid[SILO_ID_MAX], name[DSTORE_NAME_MAX + 1];
	snprintf(sid, sizeof sid, "%s", p->row.sandbox_id);
	snprintf(name, sizeof name, "%s", p->row.name);
	pthread_mutex_unlock(&d->lock);
	int rc = 0;
	if (sid[0] && manager_delete(d->m, sid, actor, grace_ms, err) < 0) {
		if (err->code == SILO_ERR_VM_NOT_FOUND) {
			rc = 0;   /* already gone */
		} else if (err->code == SILO_ERR_CLEANUP_FAILED) {
			log_warn("undeploy %s: %s", name, err->message);
			rc = 0;   /* terminated; residue is reported by the manager's audit */
		} else {
			rc = -1;
		}
	}
	pthread_mutex_lock(&d->lock);
	if (rc < 0) {
		/* Still running (e.g. CONFLICT while the manager deletes it): keep it. */
		snprintf(p->row.state, sizeof p->row.state, "running");
		p->busy = false;
		deploy_persist(d, p);
		pthread_cond_broadcast(&d->cond);
		return -1;
	}
	silo_error e2;
	if (dstore_delete(d->st, name, &e2) < 0) {
		log_error("undeploy %s: %s", name, e2.message);
	}
	if (final) {
		deploy_copy_row(final, &p->row);
		snprintf(final->state, sizeof final->state, "undeployed");
	}
	char tm[DSTORE_NAME_MAX + 1];
	snprintf(tm, sizeof tm, "%s", p->row.team);
	unlink_dep(d, p);
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	manager_emit(d->m, MGR_EV_DEPLOYMENT, sid, name, tm, "undeployed", NULL, "%s", why);
	pthread_mutex_lock(&d->lock);
	return 0;
}

int deploy_remove(deployer *d, const char *name, int grace_ms, const char *actor, json_t **out, silo_error *err)
{
	pthread_mutex_lock(&d->lock);
	dep *p = deploy_find_dep(d, name);
	deploy_wait_idle(d, &p, name);
	if (!p) {
		pthread_mutex_unlock(&d->lock);
		return silo_fail(err, SILO_ERR_VM_NOT_FOUND, 0, "no deployment named '%.80s'", name);
	}
	char why[128];
	snprintf(why, sizeof why, "undeployed by %s", actor ? actor : "silod");
	dstore_row final;
	int rc = deploy_remove_locked(d, p, grace_ms, actor, why, &final, err);
	if (rc == 0)
		deploy_bundles_gc_locked(d);
	pthread_mutex_unlock(&d->lock);
	if (rc < 0)
		return silo_error_prefix(err, "undeploy %s", name), -1;
	json_t *o = dep_json(d, &final);
	json_object_del(o, "sandbox");
	dstore_row_clear(&final);
	*out = o;
	return 0;
}

int deploy_get_json(deployer *d, const char *name, json_t **out, silo_error *err)
{
	pthread_mutex_lock(&d->lock);
	dep *p = deploy_find_dep(d, name);
	if (!p) {
		pthread_mutex_unlock(&d->lock);
		return silo_fail(err, SILO_ERR_VM_NOT_FOUND, 0, "no deployment named '%.80s'", name);
	}
	dstore_row r;
	deploy_copy_row(&r, &p->row);
	pthread_mutex_unlock(&d->lock);
	*out = dep_json(d, &r);
	json_object_set_new(*out, "spec", json_string(r.spec_toml ? r.spec_toml : ""));
	dstore_row_clear(&r);
	return 0;
}

int deploy_list_json(deployer *d, json_t **out, silo_error *err)
{
	(void)err;
	pthread_mutex_lock(&d->lock);
	size_t n = deploy_count_locked(d);
	dstore_row *rows = xcalloc(n ? n : 1, sizeof *rows);
	size_t k = 0;
	for (dep *p = d->deps; p; p = p->next)
		deploy_copy_row(&rows[k++], &p->row);
	pthread_mutex_unlock(&d->lock);
	/* Sorted by name, like the store. */
	for (size_t i = 1; i < k; i++)
		for (size_t j = i; j > 0 && strcmp(rows[j - 1].name, rows[j].name) > 0; j--) {
			dstore_row t = rows[j];
			rows[j] = rows[j - 1];
			rows[j - 1] = t;
		}
	json_t *a = json_array();
	for (size_t i = 0; i < k; i++)
		json_array_append_new(a, dep_json(d, &rows[i]));
	dstore_rows_free(rows, k);
	*out = a;
	return 0;
}

/* ---- open / deploy_reconcile / close ---- */

void deploy_set_normalize(deployer *d, deploy_normalize_fn fn, void *ud)
{
	pthread_mutex_lock(&d->lock);
	d->normalize = fn;
	d->normalize_ud = ud;
	pthread_mutex_unlock(&d->lock);
}

int deploy_open(manager *m, const deploy_config *cfg, deployer **out, silo_error *err)
{
	deployer *d = xcalloc(1, sizeof *d);
	d->m = m;
	d->cfg = *cfg;
	if (!d->cfg.interval_ms)
		d->cfg.interval_ms = 500;
	if (!d->cfg.backoff_ms)
		d->cfg.backoff_ms = 1000;
	if (!d->cfg.backoff_max_ms)
		d->cfg.backoff_max_ms = 60000;
	if (d->cfg.backoff_max_ms < d->cfg.backoff_ms)
		d->cfg.backoff_max_ms = d->cfg.backoff_ms;
	if (!d->cfg.unhealthy_ms)
		d->cfg.unhealthy_ms = 5000;
	d->agents_dir = cfg->agents_dir ? xstrdup(cfg->agents_dir) : NULL;
	d->teams_file = cfg->teams_file ? xstrdup(cfg->teams_file) : NULL;
	d->bundles_dir = xasprintf("%s/bundles", cfg->state_dir ? cfg->state_dir : silo_state_dir());
	pthread_mutex_init(&d->lock, NULL);
	cond_init_monotonic(&d->cond);
	d->sub = -1;
	if (d->teams_file && deploy_parse_teams(d->teams_file, &d->teams, err) < 0)
		goto fail;
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/registry.db", cfg->state_dir ? cfg->state_dir : silo_state_dir());
	if (dstore_open(path, &d->st, err) < 0)
		goto fail;
	deploy_reconcile(d);
	d->sub = manager_subscribe(m, deploy_on_event, d);
	if (pthread_create(&d->thread, NULL, deploy_thread_main, d) != 0) {
		silo_fail(err, SILO_ERR_INTERNAL, errno, "cannot start the deployment thread");
		goto fail;
	}
	d->thread_running = true;
	*out = d;
	return 0;
fail:
	deploy_close(d);
	return -1;
}

void deploy_close(deployer *d)
{
	if (!d)
		return;
	if (d->sub >= 0)
		manager_unsubscribe(d->m, d->sub);
	if (d->thread_running) {
		signal_stop(&d->lock, &d->cond, &d->stopping);
		pthread_join(d->thread, NULL);
	}
	pthread_mutex_lock(&d->lock);
	deploy_flush_usage_locked(d);
	pthread_mutex_unlock(&d->lock);
	while (d->deps) {
		dep *p = d->deps;
		d->deps = p->next;
		dstore_row_clear(&p->row);
		free(p);
	}
	free(d->pending);
	dstore_close(d->st);
	free(d->teams.v);
	free(d->agents_dir);
	free(d->teams_file);
	free(d->bundles_dir);
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->cond);
	free(d);
}
