/* SPDX-License-Identifier: Apache-2.0
 * Deployment store (see deploy_store.h).
 */
#include "registry/deploy_store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"

#define DSTORE_SCHEMA_VERSION 2

struct dstore {
	sqlite3 *db;
	pthread_mutex_t lock;
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

static int db_fail(dstore *s, silo_error *err, const char *what)
{
	int ec = sqlite3_extended_errcode(s->db);
	return silo_fail(err, (ec & 0xff) == SQLITE_CONSTRAINT ? SILO_ERR_CONFLICT : SILO_ERR_IO_ERROR, 0,
			 "deployment store: %s: %s", what, sqlite3_errmsg(s->db));
}

static int exec_sql(dstore *s, const char *sql, silo_error *err)
{
	char *msg = NULL;
	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		silo_fail(err, SILO_ERR_IO_ERROR, 0, "deployment store: %s", msg ? msg : "exec failed");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int migrate(dstore *s, const char *path, silo_error *err)
{
	if (exec_sql(s, "BEGIN IMMEDIATE", err) < 0)
		return -1;
	if (exec_sql(s, "CREATE TABLE IF NOT EXISTS deploy_schema (version INTEGER NOT NULL)", err) < 0)
		goto fail;
	sqlite3_stmt *st = NULL;
	int v = 0;
	if (sqlite3_prepare_v2(s->db, "SELECT max(version) FROM deploy_schema", -1, &st, NULL) != SQLITE_OK) {
		db_fail(s, err, "read schema version");
		goto fail;
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (v > DSTORE_SCHEMA_VERSION) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0,
			  "%s: deployment schema version %d is newer than this silo supports (%d)", path, v,
			  DSTORE_SCHEMA_VERSION);
		goto fail;
	}
	for (; v < DSTORE_SCHEMA_VERSION; v++) {
		char setv[96];
		snprintf(setv, sizeof setv, "DELETE FROM deploy_schema; INSERT INTO deploy_schema VALUES (%d)", v + 1);
		if (exec_sql(s, migrations[v], err) < 0 || exec_sql(s, setv, err) < 0) {
			silo_error_prefix(err, "migrate %s to deployment schema %d", path, v + 1);
			goto fail;
		}
	}
	return exec_sql(s, "COMMIT", err);
fail:
	exec_sql(s, "ROLLBACK", NULL);
	return -1;
}

int dstore_open(const char *path, dstore **out, silo_error *err)
{
	dstore *s = xcalloc(1, sizeof *s);
	pthread_mutex_init(&s->lock, NULL);
	int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
				 NULL);
	if (rc != SQLITE_OK) {
		silo_fail(err, SILO_ERR_IO_ERROR, 0, "deployment store: open %s: %s", path,
			  s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(s->db, 5000);
	/* The registry already put the file in WAL mode; insist on it here too. */
	if (exec_sql(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", err) < 0 || migrate(s, path, err) < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	sqlite3_close(s->db);
	pthread_mutex_destroy(&s->lock);
	free(s);
	return -1;
}

void dstore_close(dstore *s)
{
	if (!s)
		return;
	sqlite3_close(s->db);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static int write_row(dstore *s, const dstore_row *r, bool replace, silo_error *err)
{
	sqlite3_stmt *st = NULL;
	int ret = -1;
	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db,
			       replace ? "INSERT OR REPLACE INTO agent_deployments(name, team, restart, state, "
					 "sandbox_id, spec, overrides, vcpus, memory_mb, restarts, created_ms, "
					 "updated_ms, last_error, bundle, bundle_key) "
					 "VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)"
				       : "INSERT INTO agent_deployments(name, team, restart, state, sandbox_id, spec, "
					 "overrides, vcpus, memory_mb, restarts, created_ms, updated_ms, last_error, "
					 "bundle, bundle_key) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15)",
			       -1, &st, NULL) != SQLITE_OK) {
		db_fail(s, err, "prepare");
		goto out;
	}
	sqlite3_bind_text(st, 1, r->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->team, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, r->restart, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, r->state, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, r->sandbox_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, r->spec_toml ? r->spec_toml : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, r->overrides_json ? r->overrides_json : "[]", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, r->vcpus);
	sqlite3_bind_int64(st, 9, (sqlite3_int64)r->memory_mb);
	sqlite3_bind_int64(st, 10, r->restarts);
	sqlite3_bind_int64(st, 11, (sqlite3_int64)r->created_ms);
	sqlite3_bind_int64(st, 12, (sqlite3_int64)r->updated_ms);
	sqlite3_bind_text(st, 13, r->last_error, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 14, r->bundle, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 15, r->bundle_key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE) {
		db_fail(s, err, replace ? "update deployment" : "insert deployment");
		if (err && err->code == SILO_ERR_CONFLICT)
			snprintf(err->message, sizeof err->message, "deployment '%s' already exists", r->name);
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	return ret;
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
	sqlite3_stmt *st = NULL;
	int ret = -1;
	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db, "DELETE FROM agent_deployments WHERE name = ?1", -1, &st, NULL) != SQLITE_OK) {
		db_fail(s, err, "prepare");
		goto out;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE) {
		db_fail(s, err, "delete deployment");
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static void col_str(sqlite3_stmt *st, int i, char *dst, size_t len)
{
	const char *v = (const char *)sqlite3_column_text(st, i);
	snprintf(dst, len, "%s", v ? v : "");
}

int dstore_list(dstore *s, dstore_row **out, size_t *n, silo_error *err)
{
	sqlite3_stmt *st = NULL;
	dstore_row *v = NULL;
	size_t k = 0, cap = 0;
	int ret = -1;
	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db,
			       "SELECT name, team, restart, state, sandbox_id, spec, overrides, vcpus, memory_mb, "
			       "restarts, created_ms, updated_ms, last_error, bundle, bundle_key FROM agent_deployments "
			       "ORDER BY name",
			       -1, &st, NULL) != SQLITE_OK) {
		db_fail(s, err, "prepare");
		goto out;
	}
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (k == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof *v);
		}
		dstore_row *r = &v[k++];
		memset(r, 0, sizeof *r);
		col_str(st, 0, r->name, sizeof r->name);
		col_str(st, 1, r->team, sizeof r->team);
		col_str(st, 2, r->restart, sizeof r->restart);
		col_str(st, 3, r->state, sizeof r->state);
		col_str(st, 4, r->sandbox_id, sizeof r->sandbox_id);
		const char *t = (const char *)sqlite3_column_text(st, 5);
		r->spec_toml = xstrdup(t ? t : "");
		t = (const char *)sqlite3_column_text(st, 6);
		r->overrides_json = xstrdup(t ? t : "[]");
		r->vcpus = (uint32_t)sqlite3_column_int64(st, 7);
		r->memory_mb = (uint64_t)sqlite3_column_int64(st, 8);
		r->restarts = (uint32_t)sqlite3_column_int64(st, 9);
		r->created_ms = (uint64_t)sqlite3_column_int64(st, 10);
		r->updated_ms = (uint64_t)sqlite3_column_int64(st, 11);
		col_str(st, 12, r->last_error, sizeof r->last_error);
		col_str(st, 13, r->bundle, sizeof r->bundle);
		col_str(st, 14, r->bundle_key, sizeof r->bundle_key);
	}
	if (rc != SQLITE_DONE) {
		db_fail(s, err, "list deployments");
		dstore_rows_free(v, k);
		goto out;
	}
	*out = v;
	*n = k;
	ret = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	return ret;
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
	if (!n)
		return 0;
	sqlite3_stmt *st = NULL;
	int ret = -1;
	pthread_mutex_lock(&s->lock);
	if (exec_sql(s, "BEGIN IMMEDIATE", err) < 0)
		goto out;
	if (sqlite3_prepare_v2(s->db,
			       "INSERT INTO agent_usage(team, agent, vcpu_ms, mib_ms) VALUES (?1, ?2, ?3, ?4) "
			       "ON CONFLICT(team, agent) DO UPDATE SET vcpu_ms = vcpu_ms + excluded.vcpu_ms, "
			       "mib_ms = mib_ms + excluded.mib_ms",
			       -1, &st, NULL) != SQLITE_OK) {
		db_fail(s, err, "prepare");
		goto rollback;
	}
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, v[i].team, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, v[i].agent, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)v[i].vcpu_ms);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)v[i].mib_ms);
		if (sqlite3_step(st) != SQLITE_DONE) {
			db_fail(s, err, "add usage");
			goto rollback;
		}
	}
	sqlite3_finalize(st);
	st = NULL;
	if (exec_sql(s, "COMMIT", err) < 0)
		goto rollback;
	ret = 0;
	goto out;
rollback:
	exec_sql(s, "ROLLBACK", NULL);
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int dstore_usage_list(dstore *s, dstore_usage **out, size_t *n, silo_error *err)
{
	sqlite3_stmt *st = NULL;
	dstore_usage *v = NULL;
	size_t k = 0, cap = 0;
	int ret = -1;
	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db, "SELECT team, agent, vcpu_ms, mib_ms FROM agent_usage ORDER BY team, agent",
			       -1, &st, NULL) != SQLITE_OK) {
		db_fail(s, err, "prepare");
		goto out;
	}
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (k == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof *v);
		}
		dstore_usage *u = &v[k++];
		memset(u, 0, sizeof *u);
		col_str(st, 0, u->team, sizeof u->team);
		col_str(st, 1, u->agent, sizeof u->agent);
		u->vcpu_ms = (uint64_t)sqlite3_column_int64(st, 2);
		u->mib_ms = (uint64_t)sqlite3_column_int64(st, 3);
	}
	if (rc != SQLITE_DONE) {
		db_fail(s, err, "list usage");
		free(v);
		goto out;
	}
	*out = v;
	*n = k;
	ret = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int dstore_alert_once(dstore *s, const char *team, int level, double budget, bool *first, silo_error *err)
{
	sqlite3_stmt *st = NULL;
	int ret = -1;
	*first = false;
	pthread_mutex_lock(&s->lock);
	if (sqlite3_prepare_v2(s->db,
			       "INSERT OR IGNORE INTO budget_alerts(team, level, budget, ts_ms) VALUES (?1, ?2, ?3, ?4)",
			       -1, &st, NULL) != SQLITE_OK) {
		db_fail(s, err, "prepare");
		goto out;
	}
	sqlite3_bind_text(st, 1, team, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, level);
	sqlite3_bind_double(st, 3, budget);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)now_realtime_ms());
	if (sqlite3_step(st) != SQLITE_DONE) {
		db_fail(s, err, "record budget alert");
		goto out;
	}
	*first = sqlite3_changes(s->db) == 1;
	ret = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->lock);
	return ret;
}
