/* SPDX-License-Identifier: Apache-2.0
 * Target store (see target_store.h). Every statement goes through sqldb_stmt()
 * (registry/sqldb.h) under the store's mutex.
 */
#include "registry/target_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "registry/sqldb.h"

#define TSTORE_SCHEMA_VERSION 2

struct tstore {
	sqldb sq; /* first: sqldb_store_open */
};

/* Index i brings the target tables from version i to i+1. Append only. */
static const char *const migrations[] = {
	"CREATE TABLE targets ("
	"  name TEXT PRIMARY KEY,"
	"  url TEXT NOT NULL,"
	"  token TEXT NOT NULL,"
	"  ca TEXT, cert TEXT, key TEXT,"
	"  state TEXT NOT NULL DEFAULT 'online',"
	"  failures INTEGER NOT NULL DEFAULT 0,"
	"  added_ms INTEGER NOT NULL,"
	"  last_ok_ms INTEGER NOT NULL DEFAULT 0,"
	"  last_error TEXT NOT NULL DEFAULT '',"
	"  info TEXT NOT NULL DEFAULT '{}');"
	"CREATE TABLE remote_sandboxes ("
	"  id TEXT PRIMARY KEY,"
	"  name TEXT NOT NULL DEFAULT '',"
	"  target TEXT NOT NULL,"
	"  created_ms INTEGER NOT NULL);"
	"CREATE INDEX remote_sandboxes_name ON remote_sandboxes(name);"
	"CREATE TABLE target_queue ("
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  target TEXT NOT NULL,"
	"  method TEXT NOT NULL,"
	"  path TEXT NOT NULL,"
	"  ctype TEXT NOT NULL DEFAULT '',"
	"  body BLOB,"
	"  idem_key TEXT NOT NULL UNIQUE,"
	"  state TEXT NOT NULL DEFAULT 'pending',"
	"  created_ms INTEGER NOT NULL,"
	"  done_ms INTEGER NOT NULL DEFAULT 0,"
	"  result TEXT);"
	"CREATE INDEX target_queue_pending ON target_queue(target, state, seq);",
	/* 2: deployments placed on a target (also while their deploy is queued) */
	"CREATE TABLE remote_deployments ("
	"  name TEXT PRIMARY KEY,"
	"  target TEXT NOT NULL,"
	"  created_ms INTEGER NOT NULL);",
};
_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == TSTORE_SCHEMA_VERSION,
	       "one migration per target schema version");

int tstore_open(const char *path, tstore **out, silo_error *err)
{
	static const sqldb_schema schema = {
		.label = "target store",
		/* FULL: a queued operation is on disk before silod answers "queued" */
		.pragmas = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
		.vtable = "target_schema",
		.kind = "target",
		.migrations = migrations,
		.n = TSTORE_SCHEMA_VERSION,
	};
	tstore *s = sqldb_store_open(sizeof *s, &schema, path, err);
	if (!s)
		return -1;
	*out = s;
	return 0;
}

void tstore_close(tstore *s)
{
	sqldb_store_close(s);
}

/* ---- targets ---- */

int tstore_target_add(tstore *s, const tstore_target *t, silo_error *err)
{
	int rc = sqldb_run_locked(&s->sq, err, "insert target",
				  "INSERT INTO targets(name, url, token, ca, cert, key, state, added_ms, last_ok_ms, info) "
				  "VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
				  SQ_TEXT(t->name), SQ_TEXT(t->url), SQ_TEXT(t->token), SQ_TEXT(t->ca_pem), SQ_TEXT(t->cert_pem),
				  SQ_TEXT(t->key_pem), SQ_TEXT(t->state[0] ? t->state : "online"), SQ_INT(t->added_ms),
				  SQ_INT(t->last_ok_ms), SQ_TEXT(t->info_json ? t->info_json : "{}"));
	if (rc < 0 && err && err->code == SILO_ERR_CONFLICT)
		snprintf(err->message, sizeof err->message, "target '%s' already exists", t->name);
	return rc;
}

#define TARGET_COLS "name, url, token, ca, cert, key, state, failures, added_ms, last_ok_ms, last_error, info"

static void target_row(sqlite3_stmt *st, void *p)
{
	tstore_target *t = p;
	memset(t, 0, sizeof *t);
	sqldb_col_str(st, 0, t->name, sizeof t->name);
	sqldb_col_str(st, 1, t->url, sizeof t->url);
	t->token = sqldb_col_dup(st, 2);
	t->ca_pem = sqldb_col_dup(st, 3);
	t->cert_pem = sqldb_col_dup(st, 4);
	t->key_pem = sqldb_col_dup(st, 5);
	sqldb_col_str(st, 6, t->state, sizeof t->state);
	t->failures = (uint32_t)sqlite3_column_int64(st, 7);
	t->added_ms = (uint64_t)sqlite3_column_int64(st, 8);
	t->last_ok_ms = (uint64_t)sqlite3_column_int64(st, 9);
	sqldb_col_str(st, 10, t->last_error, sizeof t->last_error);
	t->info_json = sqldb_col_dup(st, 11);
}

int tstore_target_get(tstore *s, const char *name, tstore_target *out, silo_error *err)
{
	int rc = sqldb_one_locked(&s->sq, err, "read target", target_row, out,
				  "SELECT " TARGET_COLS " FROM targets WHERE name = ?1", SQ_TEXT(name));
	if (rc > 0)
		rc = silo_fail(err, SILO_ERR_NOT_FOUND, 0, "no target named '%s' (silo target ls)", name);
	return rc;
}

static void release_targets(void *v, size_t n)
{
	tstore_targets_free(v, n);
}

int tstore_target_list(tstore *s, tstore_target **out, size_t *n, silo_error *err)
{
	return sqldb_collect_locked(&s->sq, err, "list targets", sizeof **out, target_row, release_targets,
				    (void **)out, n, "SELECT " TARGET_COLS " FROM targets ORDER BY name");
}

int tstore_target_remove(tstore *s, const char *name, silo_error *err)
{
	pthread_mutex_lock(&s->sq.lock);
	int rc = sqldb_run(&s->sq, err, "remove target", "DELETE FROM targets WHERE name = ?1", SQ_TEXT(name));
	if (rc == 0 && sqlite3_changes(s->sq.db) == 0)
		rc = silo_fail(err, SILO_ERR_NOT_FOUND, 0, "no target named '%s'", name);
	if (rc == 0)   /* its deployments are forgotten with it */
		rc = sqldb_run(&s->sq, err, "forget the target's deployments",
			       "DELETE FROM remote_deployments WHERE target = ?1", SQ_TEXT(name));
	pthread_mutex_unlock(&s->sq.lock);
	return rc;
}

int tstore_target_health(tstore *s, const char *name, const char *state, uint32_t failures, bool ok,
			 const char *last_error, const char *info_json, silo_error *err)
{
	return sqldb_run_locked(&s->sq, err, "update target",
				"UPDATE targets SET state = ?2, failures = ?3, last_ok_ms = CASE WHEN ?4 THEN ?5 ELSE "
				"last_ok_ms END, last_error = ?6, info = coalesce(?7, info) WHERE name = ?1",
				SQ_TEXT(name), SQ_TEXT(state), SQ_INT(failures), SQ_INT(ok), SQ_INT(now_realtime_ms()),
				SQ_TEXT(last_error), SQ_TEXT(info_json));
}

void tstore_target_clear(tstore_target *t)
{
	char *secret[2] = {t->token, t->key_pem};
	for (int i = 0; i < 2; i++)
		if (secret[i])
			explicit_bzero(secret[i], strlen(secret[i]));
	free(t->token);
	free(t->ca_pem);
	free(t->cert_pem);
	free(t->key_pem);
	free(t->info_json);
	memset(t, 0, sizeof *t);
}

void tstore_targets_free(tstore_target *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		tstore_target_clear(&v[i]);
	free(v);
}

/* ---- remote sandboxes ---- */

int tstore_sandbox_add(tstore *s, const tstore_sandbox *b, silo_error *err)
{
	return sqldb_run_locked(&s->sq, err, "record remote sandbox",
				"INSERT OR REPLACE INTO remote_sandboxes(id, name, target, created_ms) VALUES (?1,?2,?3,?4)",
				SQ_TEXT(b->id), SQ_TEXT(b->name), SQ_TEXT(b->target), SQ_INT(b->created_ms));
}

static void sandbox_row(sqlite3_stmt *st, void *p)
{
	tstore_sandbox *b = p;
	memset(b, 0, sizeof *b);
	sqldb_col_str(st, 0, b->id, sizeof b->id);
	sqldb_col_str(st, 1, b->name, sizeof b->name);
	sqldb_col_str(st, 2, b->target, sizeof b->target);
	b->created_ms = (uint64_t)sqlite3_column_int64(st, 3);
}

int tstore_sandbox_find(tstore *s, const char *id_or_name, tstore_sandbox *out, silo_error *err)
{
	return sqldb_one_locked(&s->sq, err, "find remote sandbox", sandbox_row, out,
				"SELECT id, name, target, created_ms FROM remote_sandboxes WHERE id = ?1 OR "
				"(name = ?1 AND name != '') ORDER BY id = ?1 DESC LIMIT 1", SQ_TEXT(id_or_name));
}

int tstore_sandbox_list(tstore *s, const char *target, tstore_sandbox **out, size_t *n, silo_error *err)
{
	return sqldb_collect_locked(&s->sq, err, "list remote sandboxes", sizeof **out, sandbox_row, NULL,
				    (void **)out, n,
				    "SELECT id, name, target, created_ms FROM remote_sandboxes WHERE ?1 IS NULL OR "
				    "target = ?1 ORDER BY created_ms, id", SQ_TEXT(target));
}

int tstore_sandbox_remove(tstore *s, const char *id, silo_error *err)
{
	return sqldb_run_locked(&s->sq, err, "forget remote sandbox", "DELETE FROM remote_sandboxes WHERE id = ?1",
				SQ_TEXT(id));
}

static int count(tstore *s, const char *sql, const char *target, int64_t *n, silo_error *err)
{
	pthread_mutex_lock(&s->sq.lock);
	int rc = sqldb_one(&s->sq, sqldb_stmt(&s->sq, err, "count", sql, SQ_TEXT(target)), sqldb_row_int64, n, "count",
			   err);
	if (rc > 0)
		rc = sqldb_fail(&s->sq, err, "count");
	pthread_mutex_unlock(&s->sq.lock);
	return rc;
}

int tstore_sandbox_count(tstore *s, const char *target, int64_t *n, silo_error *err)
{
	return count(s, "SELECT count(*) FROM remote_sandboxes WHERE target = ?1", target, n, err);
}

/* ---- deployments ---- */

int tstore_deploy_add(tstore *s, const char *name, const char *target, silo_error *err)
{
	return sqldb_run_locked(&s->sq, err, "record remote deployment",
				"INSERT OR REPLACE INTO remote_deployments(name, target, created_ms) VALUES (?1,?2,?3)",
				SQ_TEXT(name), SQ_TEXT(target), SQ_INT(now_realtime_ms()));
}

static void deploy_target_row(sqlite3_stmt *st, void *p)
{
	sqldb_col_str(st, 0, p, TSTORE_NAME_MAX + 1);
}

int tstore_deploy_find(tstore *s, const char *name, char target[TSTORE_NAME_MAX + 1], silo_error *err)
{
	return sqldb_one_locked(&s->sq, err, "find remote deployment", deploy_target_row, target,
				"SELECT target FROM remote_deployments WHERE name = ?1", SQ_TEXT(name));
}

int tstore_deploy_remove(tstore *s, const char *name, silo_error *err)
{
	return sqldb_run_locked(&s->sq, err, "forget remote deployment", "DELETE FROM remote_deployments WHERE name = ?1",
				SQ_TEXT(name));
}

int tstore_deploy_count(tstore *s, const char *target, int64_t *n, silo_error *err)
{
	return count(s, "SELECT count(*) FROM remote_deployments WHERE target = ?1", target, n, err);
}

/* ---- the queue ---- */

#define OP_COLS "seq, target, method, path, ctype, body, idem_key, state, created_ms, done_ms, result"

static void op_row(sqlite3_stmt *st, void *p)
{
	tstore_op *o = p;
	memset(o, 0, sizeof *o);
	o->seq = sqlite3_column_int64(st, 0);
	sqldb_col_str(st, 1, o->target, sizeof o->target);
	sqldb_col_str(st, 2, o->method, sizeof o->method);
	sqldb_col_str(st, 3, o->path, sizeof o->path);
	sqldb_col_str(st, 4, o->ctype, sizeof o->ctype);
	int bl = sqlite3_column_bytes(st, 5);
	const void *b = sqlite3_column_blob(st, 5);
	o->body = xmalloc((size_t)bl + 1);
	if (bl > 0)
		memcpy(o->body, b, (size_t)bl);
	o->body[bl] = '\0';
	o->body_len = (size_t)bl;
	sqldb_col_str(st, 6, o->idem_key, sizeof o->idem_key);
	sqldb_col_str(st, 7, o->state, sizeof o->state);
	o->created_ms = (uint64_t)sqlite3_column_int64(st, 8);
	o->done_ms = (uint64_t)sqlite3_column_int64(st, 9);
	o->result = sqldb_col_dup(st, 10);
}

int tstore_op_add(tstore *s, tstore_op *op, silo_error *err)
{
	pthread_mutex_lock(&s->sq.lock);
	int rc = -1;
	sqlite3_stmt *st = sqldb_stmt(&s->sq, err, "queue operation",
				      "SELECT seq, state FROM target_queue WHERE idem_key = ?1", SQ_TEXT(op->idem_key));
	if (!st)
		goto out;
	if (sqlite3_step(st) == SQLITE_ROW) {
		op->seq = sqlite3_column_int64(st, 0);
		sqldb_col_str(st, 1, op->state, sizeof op->state);
		sqlite3_finalize(st);
		rc = 1;
		goto out;
	}
	sqlite3_finalize(st);
	op->created_ms = now_realtime_ms();
	snprintf(op->state, sizeof op->state, "pending");
	if (sqldb_run(&s->sq, err, "queue operation",
		      "INSERT INTO target_queue(target, method, path, ctype, body, idem_key, created_ms) "
		      "VALUES (?1,?2,?3,?4,?5,?6,?7)",
		      SQ_TEXT(op->target), SQ_TEXT(op->method), SQ_TEXT(op->path), SQ_TEXT(op->ctype),
		      SQ_BLOB(op->body ? op->body : "", op->body_len), SQ_TEXT(op->idem_key),
		      SQ_INT(op->created_ms)) == 0) {
		op->seq = sqlite3_last_insert_rowid(s->sq.db);
		rc = 0;
	}
out:
	pthread_mutex_unlock(&s->sq.lock);
	return rc;
}

int tstore_op_next(tstore *s, const char *target, tstore_op *out, silo_error *err)
{
	return sqldb_one_locked(&s->sq, err, "next queued operation", op_row, out,
				"SELECT " OP_COLS " FROM target_queue WHERE target = ?1 AND state IN ('pending', "
				"'applying') ORDER BY seq LIMIT 1", SQ_TEXT(target));
}

int tstore_op_finish(tstore *s, int64_t seq, const char *state, const char *result, silo_error *err)
{
	return sqldb_run_locked(&s->sq, err, "finish queued operation",
				"UPDATE target_queue SET state = ?2, result = ?3, done_ms = ?4 WHERE seq = ?1", SQ_INT(seq),
				SQ_TEXT(state), SQ_TEXT(result), SQ_INT(now_realtime_ms()));
}

int tstore_op_cancel(tstore *s, int64_t seq, silo_error *err)
{
	pthread_mutex_lock(&s->sq.lock);
	int rc = sqldb_run(&s->sq, err, "cancel queued operation",
			   "UPDATE target_queue SET state = 'cancelled', done_ms = ?2 WHERE seq = ?1 AND state = 'pending'",
			   SQ_INT(seq), SQ_INT(now_realtime_ms()));
	if (rc == 0 && sqlite3_changes(s->sq.db) == 0) {
		sqlite3_stmt *st = sqldb_stmt(&s->sq, err, "cancel queued operation",
					      "SELECT state FROM target_queue WHERE seq = ?1", SQ_INT(seq));
		if (st && sqlite3_step(st) == SQLITE_ROW)
			rc = silo_fail(err, SILO_ERR_CONFLICT, 0, "queued operation %lld is %s, not pending", (long long)seq,
				       (const char *)sqlite3_column_text(st, 0));
		else if (st)
			rc = silo_fail(err, SILO_ERR_NOT_FOUND, 0, "no queued operation %lld", (long long)seq);
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&s->sq.lock);
	return rc;
}

static void release_ops(void *v, size_t n)
{
	tstore_ops_free(v, n);
}

int tstore_op_list(tstore *s, const char *target, bool pending_only, tstore_op **out, size_t *n, silo_error *err)
{
	return sqldb_collect_locked(&s->sq, err, "list queued operations", sizeof **out, op_row, release_ops,
				    (void **)out, n,
				    "SELECT " OP_COLS " FROM target_queue WHERE (?1 IS NULL OR target = ?1) AND "
				    "(?2 = 0 OR state IN ('pending', 'applying')) ORDER BY seq", SQ_TEXT(target),
				    SQ_INT(pending_only));
}

int tstore_op_pending(tstore *s, const char *target, int64_t *n, silo_error *err)
{
	return count(s, "SELECT count(*) FROM target_queue WHERE target = ?1 AND state IN ('pending', 'applying')",
		     target, n, err);
}

void tstore_op_clear(tstore_op *op)
{
	free(op->body);
	free(op->result);
	memset(op, 0, sizeof *op);
}

void tstore_ops_free(tstore_op *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		tstore_op_clear(&v[i]);
	free(v);
}
