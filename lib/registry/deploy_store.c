/* SPDX-License-Identifier: Apache-2.0
 * Deployment store (see deploy_store.h).
 */
#include "registry/deploy_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "registry/sqldb.h"

#define DSTORE_SCHEMA_VERSION 2

struct dstore {
	sqldb sq; /* first: sqldb_store_open */
};

/* Index i brings the deploy tables from version i to i+1. Append only. */
static const char *const migrations[] = {
	"CREATE TABLE agent_deployments ("
	"  name TEXT PRIMARY KEY,"
	"  team TEXT NOT NULL,"
	"  restart TEXT NOT NULL,"
	"  state TEXT NOT NULL,"
	"  sandbox_id TEXT NOT NULL DEFAULT '',"
	"  spec TEXT NOT NULL,"
	"  overrides TEXT NOT NULL DEFAULT '[]',"
	"  vcpus INTEGER NOT NULL,"
	"  memory_mb INTEGER NOT NULL,"
	"  restarts INTEGER NOT NULL DEFAULT 0,"
	"  created_ms INTEGER NOT NULL,"
	"  updated_ms INTEGER NOT NULL,"
	"  last_error TEXT NOT NULL DEFAULT '');"
	"CREATE TABLE agent_usage ("
	"  team TEXT NOT NULL,"
	"  agent TEXT NOT NULL,"
	"  vcpu_ms INTEGER NOT NULL DEFAULT 0,"
	"  mib_ms INTEGER NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (team, agent));"
	"CREATE TABLE budget_alerts ("
	"  team TEXT NOT NULL,"
	"  level INTEGER NOT NULL,"
	"  budget REAL NOT NULL,"
	"  ts_ms INTEGER NOT NULL,"
	"  PRIMARY KEY (team, level, budget));",
	/* 2: the signed bundle a deployment unpacks (docs/deployments.md) */
	"ALTER TABLE agent_deployments ADD COLUMN bundle TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE agent_deployments ADD COLUMN bundle_key TEXT NOT NULL DEFAULT '';",
};
_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == DSTORE_SCHEMA_VERSION,
	       "one migration per deploy schema version");

int dstore_open(const char *path, dstore **out, silo_error *err)
{
	static const sqldb_schema schema = {
		.label = "deployment store",
		/* The registry already put the file in WAL mode; insist on it here too. */
		.pragmas = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
		.vtable = "deploy_schema",
		.kind = "deployment",
		.migrations = migrations,
		.n = DSTORE_SCHEMA_VERSION,
	};
	dstore *s = sqldb_store_open(sizeof *s, &schema, path, err);
	if (!s)
		return -1;
	*out = s;
	return 0;
}

void dstore_close(dstore *s)
{
	sqldb_store_close(s);
}

static int write_row(dstore *s, const dstore_row *r, bool replace, silo_error *err)
{
	pthread_mutex_lock(&s->sq.lock);
	int rc = sqldb_run(&s->sq, err, replace ? "update deployment" : "insert deployment",
			   replace ? "INSERT OR REPLACE INTO agent_deployments(name, team, restart, state, "
				     "sandbox_id, spec, overrides, vcpus, memory_mb, restarts, created_ms, "
				     "updated_ms, last_error, bundle, bundle_key) "
				     "VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)"
				   : "INSERT INTO agent_deployments(name, team, restart, state, sandbox_id, spec, "
				     "overrides, vcpus, memory_mb, restarts, created_ms, updated_ms, last_error, "
				     "bundle, bundle_key) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)",
			   SQ_TEXT(r->name), SQ_TEXT(r->team), SQ_TEXT(r->restart), SQ_TEXT(r->state),
			   SQ_TEXT(r->sandbox_id), SQ_TEXT(r->spec_toml ? r->spec_toml : ""),
			   SQ_TEXT(r->overrides_json ? r->overrides_json : "[]"), SQ_INT(r->vcpus), SQ_INT(r->memory_mb),
			   SQ_INT(r->restarts), SQ_INT(r->created_ms), SQ_INT(r->updated_ms), SQ_TEXT(r->last_error),
			   SQ_TEXT(r->bundle), SQ_TEXT(r->bundle_key));
	if (rc < 0 && err && err->code == SILO_ERR_CONFLICT)
		snprintf(err->message, sizeof err->message, "deployment '%s' already exists", r->name);
	pthread_mutex_unlock(&s->sq.lock);
	return rc;
}

int dstore_put(dstore *s, const dstore_row *r, silo_error *err)
{
	return write_row(s, r, true, err);
}

int dstore_insert(dstore *s, const dstore_row *r, silo_error *err)
{
	return write_row(s, r, false, err);
}

int dstore_delete(dstore *s, const char *name, silo_error *err)
{
	return sqldb_run_locked(&s->sq, err, "delete deployment", "DELETE FROM agent_deployments WHERE name = ?1",
				SQ_TEXT(name));
}

static void row_to_deployment(sqlite3_stmt *st, void *p)
{
	dstore_row *r = p;
	memset(r, 0, sizeof *r);
	sqldb_col_str(st, 0, r->name, sizeof r->name);
	sqldb_col_str(st, 1, r->team, sizeof r->team);
	sqldb_col_str(st, 2, r->restart, sizeof r->restart);
	sqldb_col_str(st, 3, r->state, sizeof r->state);
	sqldb_col_str(st, 4, r->sandbox_id, sizeof r->sandbox_id);
	const char *t = (const char *)sqlite3_column_text(st, 5);
	r->spec_toml = xstrdup(t ? t : "");
	t = (const char *)sqlite3_column_text(st, 6);
	r->overrides_json = xstrdup(t ? t : "[]");
	r->vcpus = (uint32_t)sqlite3_column_int64(st, 7);
	r->memory_mb = (uint64_t)sqlite3_column_int64(st, 8);
	r->restarts = (uint32_t)sqlite3_column_int64(st, 9);
	r->created_ms = (uint64_t)sqlite3_column_int64(st, 10);
	r->updated_ms = (uint64_t)sqlite3_column_int64(st, 11);
	sqldb_col_str(st, 12, r->last_error, sizeof r->last_error);
	sqldb_col_str(st, 13, r->bundle, sizeof r->bundle);
	sqldb_col_str(st, 14, r->bundle_key, sizeof r->bundle_key);
}

static void release_rows(void *v, size_t n)
{
	dstore_rows_free(v, n);
}

int dstore_list(dstore *s, dstore_row **out, size_t *n, silo_error *err)
{
	static const char what[] = "list deployments";
	return sqldb_collect_locked(&s->sq, err, what, sizeof **out, row_to_deployment, release_rows, (void **)out, n,
				    "SELECT name, team, restart, state, sandbox_id, spec, overrides, vcpus, memory_mb, "
				    "restarts, created_ms, updated_ms, last_error, bundle, bundle_key FROM "
				    "agent_deployments ORDER BY name");
}

void dstore_row_clear(dstore_row *r)
{
	free(r->spec_toml);
	free(r->overrides_json);
	r->spec_toml = r->overrides_json = NULL;
}

void dstore_rows_free(dstore_row *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dstore_row_clear(&v[i]);
	free(v);
}

int dstore_usage_add(dstore *s, const dstore_usage *v, size_t n, silo_error *err)
{
	static const char what[] = "add usage";
	if (!n)
		return 0;
	int ret = -1;
	pthread_mutex_lock(&s->sq.lock);
	if (sqldb_exec(&s->sq, "BEGIN IMMEDIATE", err) < 0)
		goto out;
	sqlite3_stmt *st = sqldb_stmt(&s->sq, err, what,
				      "INSERT INTO agent_usage(team, agent, vcpu_ms, mib_ms) VALUES (?1, ?2, ?3, ?4) "
				      "ON CONFLICT(team, agent) DO UPDATE SET vcpu_ms = vcpu_ms + excluded.vcpu_ms, "
				      "mib_ms = mib_ms + excluded.mib_ms");
	int rc = st ? 0 : -1;
	for (size_t i = 0; i < n && rc == 0; i++) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, v[i].team, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, v[i].agent, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)v[i].vcpu_ms);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)v[i].mib_ms);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = sqldb_fail(&s->sq, err, what);
	}
	sqlite3_finalize(st);
	if (rc == 0 && sqldb_exec(&s->sq, "COMMIT", err) == 0)
		ret = 0;
	else
		sqldb_exec(&s->sq, "ROLLBACK", NULL);
out:
	pthread_mutex_unlock(&s->sq.lock);
	return ret;
}

static void row_to_usage(sqlite3_stmt *st, void *p)
{
	dstore_usage *u = p;
	memset(u, 0, sizeof *u);
	sqldb_col_str(st, 0, u->team, sizeof u->team);
	sqldb_col_str(st, 1, u->agent, sizeof u->agent);
	u->vcpu_ms = (uint64_t)sqlite3_column_int64(st, 2);
	u->mib_ms = (uint64_t)sqlite3_column_int64(st, 3);
}

int dstore_usage_list(dstore *s, dstore_usage **out, size_t *n, silo_error *err)
{
	static const char what[] = "list usage";
	return sqldb_collect_locked(&s->sq, err, what, sizeof **out, row_to_usage, NULL, (void **)out, n,
				    "SELECT team, agent, vcpu_ms, mib_ms FROM agent_usage ORDER BY team, agent");
}

int dstore_alert_once(dstore *s, const char *team, int level, double budget, bool *first, silo_error *err)
{
	*first = false;
	pthread_mutex_lock(&s->sq.lock);
	int rc = sqldb_run(&s->sq, err, "record budget alert",
			   "INSERT OR IGNORE INTO budget_alerts(team, level, budget, ts_ms) VALUES (?1, ?2, ?3, ?4)",
			   SQ_TEXT(team), SQ_INT(level), SQ_REAL(budget), SQ_INT(now_realtime_ms()));
	if (rc == 0)
		*first = sqlite3_changes(s->sq.db) == 1;
	pthread_mutex_unlock(&s->sq.lock);
	return rc;
}
