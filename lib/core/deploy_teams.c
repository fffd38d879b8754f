/* SPDX-License-Identifier: Apache-2.0
 * Deployments: the teams file: quotas, budgets, prices.
 * Locking and durability: the rules at the top of deploy.c.
 */
#include "core/deploy_int.h"

/* ---- teams file ---- */

static int num_value(const toml_value *v, const char *path, double max, double *out, silo_error *err)
{
	double x;
	if (v->type == TOML_INTEGER)
		x = (double)v->u.i;
	else if (v->type == TOML_FLOAT)
		x = v->u.f;
	else
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%d:%d: %s: expected a number, got %s", v->line,
				 v->col, path, toml_type_name(v->type));
	if (!(x >= 0) || x > max || isinf(x))
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%d:%d: %s: expected a number 0..%g", v->line, v->col,
				 path, max);
	*out = x;
	return 0;
}

static int int_value(const toml_value *v, const char *path, int64_t max, uint64_t *out, silo_error *err)
{
	if (v->type != TOML_INTEGER || v->u.i < 0 || v->u.i > max)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%d:%d: %s: expected an integer 0..%" PRId64, v->line,
				 v->col, path, max);
	*out = (uint64_t)v->u.i;
	return 0;
}

int deploy_parse_teams(const char *path, teams_cfg *out, silo_error *err)
{
	memset(out, 0, sizeof *out);
	char *text = NULL;
	size_t len;
	if (read_file(path, TOML_MAX_INPUT, &text, &len, err) < 0)
		return -1;
	char msg[512];
	toml_value *root = toml_parse(text, len, msg, sizeof msg);
	free(text);
	if (!root)
		return silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: %s", path, msg);
	int rc = -1;
	out->defined = true;
	out->v = xcalloc(MAX_TEAMS, sizeof *out->v);
	for (size_t i = 0; i < root->u.tab.n; i++) {
		const char *k = root->u.tab.keys[i];
		toml_value *v = root->u.tab.vals[i];
		if (!strcmp(k, "rates") && v->type == TOML_TABLE) {
			for (size_t j = 0; j < v->u.tab.n; j++) {
				const char *rk = v->u.tab.keys[j];
				char f[300];
				snprintf(f, sizeof f, "rates.%s", rk);
				double *dst = !strcmp(rk, "vcpu_second") ? &out->vcpu_second
					      : !strcmp(rk, "gib_second") ? &out->gib_second
									   : NULL;
				if (!dst) {
					silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
						  "%d:%d: %s: unknown key (expected vcpu_second, gib_second)",
						  v->u.tab.vals[j]->kline, v->u.tab.vals[j]->kcol, f);
					goto out;
				}
				if (num_value(v->u.tab.vals[j], f, 1e9, dst, err) < 0)
					goto out;
			}
		} else if (!strcmp(k, "teams") && v->type == TOML_TABLE) {
			for (size_t j = 0; j < v->u.tab.n; j++) {
				const char *tn = v->u.tab.keys[j];
				toml_value *tv = v->u.tab.vals[j];
				if (!valid_name(tn) || tv->type != TOML_TABLE) {
					silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
						  "%d:%d: teams.%.80s: expected a table named 1-64 of [A-Za-z0-9_-]",
						  tv->line, tv->col, tn);
					goto out;
				}
				if (out->n >= MAX_TEAMS) {
					silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "teams: at most %d teams", MAX_TEAMS);
					goto out;
				}
				team *t = &out->v[out->n++];
				snprintf(t->name, sizeof t->name, "%s", tn);
				for (size_t q = 0; q < tv->u.tab.n; q++) {
					const char *qk = tv->u.tab.keys[q];
					toml_value *qv = tv->u.tab.vals[q];
					char f[300];
					snprintf(f, sizeof f, "teams.%s.%s", tn, qk);
					uint64_t x;
					if (!strcmp(qk, "max_sandboxes")) {
						if (int_value(qv, f, 100000, &x, err) < 0)
							goto out;
						t->max_sandboxes = (uint32_t)x;
					} else if (!strcmp(qk, "max_vcpus")) {
						if (int_value(qv, f, 1 << 20, &x, err) < 0)
							goto out;
						t->max_vcpus = (uint32_t)x;
					} else if (!strcmp(qk, "max_memory_mb")) {
						if (int_value(qv, f, (int64_t)1 << 40, &x, err) < 0)
							goto out;
						t->max_memory_mb = x;
					} else if (!strcmp(qk, "budget")) {
						if (num_value(qv, f, 1e15, &t->budget, err) < 0)
							goto out;
					} else {
						silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
							  "%d:%d: %s: unknown key (expected max_sandboxes, max_vcpus, "
							  "max_memory_mb, budget)",
							  qv->kline, qv->kcol, f);
						goto out;
					}
				}
			}
		} else if (!strcmp(k, "rates") || !strcmp(k, "teams")) {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%d:%d: %s: expected a table, got %s", v->line, v->col, k,
				  toml_type_name(v->type));
			goto out;
		} else {
			silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
				  "%d:%d: %s: unknown key (expected a [rates] table and [teams.NAME] tables)", v->kline,
				  v->kcol, k);
			goto out;
		}
	}
	rc = 0;
out:
	toml_free(root);
	if (rc < 0) {
		silo_error_prefix(err, "%s", path);
		free(out->v);
		memset(out, 0, sizeof *out);
	}
	return rc;
}

int deploy_check_teams(const char *path, silo_error *err)
{
	teams_cfg t;
	if (deploy_parse_teams(path, &t, err) < 0)
		return -1;
	free(t.v);
	return 0;
}

const team *deploy_find_team(const deployer *d, const char *name)
{
	for (size_t i = 0; i < d->teams.n; i++)
		if (!strcmp(d->teams.v[i].name, name))
			return &d->teams.v[i];
	return NULL;
}
