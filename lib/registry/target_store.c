/* SPDX-License-Identifier: Apache-2.0
 * Target store (see target_store.h). Every statement goes through stmt():
 * prepared with its parameters bound from a type string ('s' text or NULL,
 * 'i' int64), under the store's mutex.
 */
#include "registry/target_store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define TSTORE_SCHEMA_VERSION 2

struct tstore {
	sqlite3 *db;
	pthread_mutex_t lock;
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

static int db_fail(tstore *s, silo_error *err, const char *what)
{
	int ec = sqlite3_extended_errcode(s->db);
	return silo_fail(err, (ec & 0xff) == SQLITE_CONSTRAINT ? SILO_ERR_CONFLICT : SILO_ERR_IO_ERROR, 0,
			 "target store: %s: %s", what, sqlite3_errmsg(s->db));
}

static int exec_sql(tstore *s, const char *sql, silo_error *err)
{
	char *msg = NULL;
	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		silo_fail(err, SILO_ERR_IO_ERROR, 0, "target store: %s", msg ? msg : "exec failed");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* Prepare sql with its parameters (types: 's' text, may be NULL; 'i' int64).
 * The caller holds s->lock. */
static sqlite3_stmt *stmt(tstore *s, silo_error *err, const char *sql, const char *types, ...)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		db_fail(s, err, "prepare");
		return NULL;
	}
	va_list ap;
	va_start(ap, types);
	for (int i = 0; types[i]; i++) {
		if (types[i] == 's') {
			const char *v = va_arg(ap, const char *);
			if (v)
				sqlite3_bind_text(st, i + 1, v, -1, SQLITE_TRANSIENT);
			else
				sqlite3_bind_null(st, i + 1);
		} else {
			sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
		}
	}
	va_end(ap);
	return st;
}

/* Step a statement that returns no rows; finalize it. */
static int done(tstore *s, sqlite3_stmt *st, const char *what, silo_error *err)
{
	if (!st)
		return -1;
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(s, err, what);
	sqlite3_finalize(st);
	return rc;
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const char *v = (const char *)sqlite3_column_text(st, i);
	return v ? xstrdup(v) : NULL;
}

static void col_str(sqlite3_stmt *st, int i, char *dst, size_t len)
{
	const char *v = (const char *)sqlite3_column_text(st, i);
	snprintf(dst, len, "%s", v ? v : "");
}

/* Step st to the end, one element of elem bytes per row filled by row();
 * finalizes st. The caller holds s->lock. */
static int collect(tstore *s, sqlite3_stmt *st, size_t elem, void (*row)(sqlite3_stmt *, void *), void **out,
		   size_t *n, const char *what, silo_error *err)
{
	*out = NULL;
	*n = 0;
	if (!st)
		return -1;
	size_t cap = 0;
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 8;
			*out = xrealloc(*out, cap * elem);
		}
		row(st, (char *)*out + (*n)++ * elem);
	}
	int rc = r == SQLITE_DONE ? 0 : db_fail(s, err, what);
	sqlite3_finalize(st);
	return rc;
}

static int migrate(tstore *s, const char *path, silo_error *err)
{
	if (exec_sql(s, "BEGIN IMMEDIATE", err) < 0)
		return -1;
	if (exec_sql(s, "CREATE TABLE IF NOT EXISTS target_schema (version INTEGER NOT NULL)", err) < 0)
		goto fail;
	sqlite3_stmt *st = stmt(s, err, "SELECT max(version) FROM target_schema", "");
	if (!st)
		goto fail;
	int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	sqlite3_finalize(st);
	if (v > TSTORE_SCHEMA_VERSION) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: target schema version %d is newer than this silo supports (%d)",
			  path, v, TSTORE_SCHEMA_VERSION);
		goto fail;
	}
	for (; v < TSTORE_SCHEMA_VERSION; v++) {
		char setv[96];
		snprintf(setv, sizeof setv, "DELETE FROM target_schema; INSERT INTO target_schema VALUES (%d)", v + 1);
		if (exec_sql(s, migrations[v], err) < 0 || exec_sql(s, setv, err) < 0) {
			silo_error_prefix(err, "migrate %s to target schema %d", path, v + 1);
			goto fail;
		}
	}
	return exec_sql(s, "COMMIT", err);
fail:
	exec_sql(s, "ROLLBACK", NULL);
	return -1;
}

int tstore_open(const char *path, tstore **out, silo_error *err)
{
	tstore *s = xcalloc(1, sizeof *s);
	pthread_mutex_init(&s->lock, NULL);
	int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
				 NULL);
	if (rc != SQLITE_OK) {
		silo_fail(err, SILO_ERR_IO_ERROR, 0, "target store: open %s: %s", path,
			  s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(s->db, 5000);
	/* FULL: a queued operation is on disk before silod answers "queued" */
	if (exec_sql(s, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", err) < 0 || migrate(s, path, err) < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	sqlite3_close(s->db);
	pthread_mutex_destroy(&s->lock);
	free(s);
	return -1;
}

void tstore_close(tstore *s)
{
	if (!s)
		return;
	sqlite3_close(s->db);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* ---- targets ---- */

int tstore_target_add(tstore *s, const tstore_target *t, silo_error *err)
{
	pthread_mutex_lock(&s->lock);
	int rc = done(s,
		      stmt(s, err,
			   "INSERT INTO targets(name, url, token, ca, cert, key, state, added_ms, last_ok_ms, info) "
			   "VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
			   "sssssssiis", t->name, t->url, t->token, t->ca_pem, t->cert_pem, t->key_pem,
			   t->state[0] ? t->state : "online", (int64_t)t->added_ms, (int64_t)t->last_ok_ms,
			   t->info_json ? t->info_json : "{}"),
		      "insert target", err);
	pthread_mutex_unlock(&s->lock);
	if (rc < 0 && err && err->code == SILO_ERR_CONFLICT)
		snprintf(err->message, sizeof err->message, "target '%s' already exists", t->name);
	return rc;
}

#define TARGET_COLS "name, url, token, ca, cert, key, state, failures, added_ms, last_ok_ms, last_error, info"

static void target_row(sqlite3_stmt *st, void *p)
{
	tstore_target *t = p;
	memset(t, 0, sizeof *t);
	col_str(st, 0, t->name, sizeof t->name);
	col_str(st, 1, t->url, sizeof t->url);
	t->token = col_dup(st, 2);
	t->ca_pem = col_dup(st, 3);
	t->cert_pem = col_dup(st, 4);
	t->key_pem = col_dup(st, 5);
	col_str(st, 6, t->state, sizeof t->state);
	t->failures = (uint32_t)sqlite3_column_int64(st, 7);
	t->added_ms = (uint64_t)sqlite3_column_int64(st, 8);
	t->last_ok_ms = (uint64_t)sqlite3_column_int64(st, 9);
	col_str(st, 10, t->last_error, sizeof t->last_error);
	t->info_json = col_dup(st, 11);
}

int tstore_target_get(tstore *s, const char *name, tstore_target *out, silo_error *err)
{
	pthread_mutex_lock(&s->lock);
	sqlite3_stmt *st = stmt(s, err, "SELECT " TARGET_COLS " FROM targets WHERE name = ?1", "s", name);
	int rc = -1;
	if (st) {
		int r = sqlite3_step(st);
		if (r == SQLITE_ROW) {
			target_row(st, out);
			rc = 0;
		} else if (r == SQLITE_DONE) {
			silo_fail(err, SILO_ERR_NOT_FOUND, 0, "no target named '%s' (silo target ls)", name);
		} else {
			db_fail(s, err, "read target");
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int tstore_target_list(tstore *s, tstore_target **out, size_t *n, silo_error *err)
{
	pthread_mutex_lock(&s->lock);
	int rc = collect(s, stmt(s, err, "SELECT " TARGET_COLS " FROM targets ORDER BY name", ""), sizeof **out,
			 target_row, (void **)out, n, "list targets", err);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int tstore_target_remove(tstore *s, const char *name, silo_error *err)
{
	pthread_mutex_lock(&s->lock);
	int rc = done(s, stmt(s, err, "DELETE FROM targets WHERE name = ?1", "s", name), "remove target", err);
	if (rc == 0 && sqlite3_changes(s->db) == 0)
		rc = silo_fail(err, SILO_ERR_NOT_FOUND, 0, "no target named '%s'", name);
	if (rc == 0)   /* its deployments are forgotten with it */
		rc = done(s, stmt(s, err, "DELETE FROM remote_deployments WHERE target = ?1", "s", name),
			  "forget the target's deployments", err);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int tstore_target_health(tstore *s, const char *name, const char *state, uint32_t failures, bool ok,
			 const char *last_error, const char *info_json, silo_error *err)
{
	pthread_mutex_lock(&s->lock);
	int rc = done(s,
		      stmt(s, err,
			   "UPDATE targets SET state = ?2, failures = ?3, last_ok_ms = CASE WHEN ?4 THEN ?5 ELSE "
			   "last_ok_ms END, last_error = ?6, info = coalesce(?7, info) WHERE name = ?1",
			   "ssiiiss", name, state, (int64_t)failures, (int64_t)ok, (int64_t)now_realtime_ms(), last_error,
			   info_json),
		      "update target", err);
	pthread_mutex_unlock(&s->lock);
	return rc;
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
	pthread_mutex_lock(&s->lock);
	int rc = done(s,
		      stmt(s, err, "INSERT OR REPLACE INTO remote_sandboxes(id, name, target, created_ms) VALUES (?1,?2,?3,?4)",
			   "sssi", b->id, b->name, b->target, (int64_t)b->created_ms),
		      "record remote sandbox", err);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static void sandbox_row(sqlite3_stmt *st, void *p)
{
	tstore_sandbox *b = p;
	memset(b, 0, sizeof *b);
	col_str(st, 0, b->id, sizeof b->id);
	col_str(st, 1, b->name, sizeof b->name);
	col_str(st, 2, b->target, sizeof b->target);
	b->created_ms = (uint64_t)sqlite3_column_int64(st, 3);
}

int tstore_sandbox_find(tstore *s, const char *id_or_name, tstore_sandbox *out, silo_error *err)
{
	pthread_mutex_lock(&s->lock);
	sqlite3_stmt *st = stmt(s, err,
				"SELECT id, name, target, created_ms FROM remote_sandboxes WHERE id = ?1 OR "
				"(name = ?1 AND name != '') ORDER BY id = ?1 DESC LIMIT 1",
				"s", id_or_name);
	int rc = -1;
	if (st) {
		int r = sqlite3_step(st);
		if (r == SQLITE_ROW) {
			sandbox_row(st, out);
			rc = 0;
		} else {
			rc = r == SQLITE_DONE ? 1 : db_fail(s, err, "find remote sandbox");
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int tstore_sandbox_list(tstore *s, const char *target, tstore_sandbox **out, size_t *n, silo_error *err)
{
	pthread_mutex_lock(&s->lock);
	int rc = collect(s,
			 stmt(s, err,
			      "SELECT id, name, target, created_ms FROM remote_sandboxes WHERE ?1 IS NULL OR target = ?1 "
			      "ORDER BY created_ms, id",
			      "s", target),
			 sizeof **out, sandbox_row, (void **)out, n, "list remote sandboxes", err);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int tstore_sandbox_remove(tstore *s, const char *id, silo_error *err)
{
	pthread_mutex_lock(&s->lock);
	int rc = done(s, stmt(s, err, "DELETE FROM remote_sandboxes WHERE id = ?1", "s", id), "forget remote sandbox",
		      err);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static int count(tstore *s, const char *sql, const char *target, int64_t *n, silo_error *err)
{
	pthread_mutex_lock(&s->lock);
	sqlite3_stmt *st = stmt(s, err, sql, "s", target);
	int rc = -1;
	if (st) {
		if (sqlite3_step(st) == SQLITE_ROW) {
			*n = sqlite3_column_int64(st, 0);
			rc = 0;
		} else {
			db_fail(s, err, "count");
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int tstore_sandbox_count(tstore *s, const char *target, int64_t *n, silo_error *err)
{
	return count(s, "SELECT count(*) FROM remote_sandboxes WHERE target = ?1", target, n, err);
}

/* ---- deployments ---- */

int tstore_deploy_add(tstore *s, const char *name, const char *target, silo_error *err)
{
	pthread_mutex_lock(&s->lock);
	int rc = done(s,
		      stmt(s, err, "INSERT OR REPLACE INTO remote_deployments(name, target, created_ms) VALUES (?1,?2,?3)",
			   "ssi", name, target, (int64_t)now_realtime_ms()),
		      "record remote deployment", err);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int tstore_deploy_find(tstore *s, const char *name, char target[TSTORE_NAME_MAX + 1], silo_error *err)
{
	pthread_mutex_lock(&s->lock);
	sqlite3_stmt *st = stmt(s, err, "SELECT target FROM remote_deployments WHERE name = ?1", "s", name);
	int rc = -1;
	if (st) {
		int r = sqlite3_step(st);
		if (r == SQLITE_ROW) {
			col_str(st, 0, target, TSTORE_NAME_MAX + 1);
			rc = 0;
		} else {
			rc = r == SQLITE_DONE ? 1 : db_fail(s, err, "find remote deployment");
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int tstore_deploy_remove(tstore *s, const char *name, silo_error *err)
{
	pthread_mutex_lock(&s->lock);
	int rc = done(s, stmt(s, err, "DELETE FROM remote_deployments WHERE name = ?1", "s", name),
		      "forget remote deployment", err);
	pthread_mutex_unlock(&s->lock);
	return rc;
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
	col_str(st, 1, o->target, sizeof o->target);
	col_str(st, 2, o->method, sizeof o->method);
	col_str(st, 3, o->path, sizeof o->path);
	col_str(st, 4, o->ctype, sizeof o->ctype);
	int bl = sqlite3_column_bytes(st, 5);
	const void *b = sqlite3_column_blob(st, 5);
	o->body = xmalloc((size_t)bl + 1);
	if (bl > 0)
		memcpy(o->body, b, (size_t)bl);
	o->body[bl] = '\0';
	o->body_len = (size_t)bl;
	col_str(st, 6, o->idem_key, sizeof o->idem_key);
	col_str(st, 7, o->state, sizeof o->state);
	o->created_ms = (uint64_t)sqlite3_column_int64(st, 8);
	o->done_ms = (uint64_t)sqlite3_column_int64(st, 9);
	o->result = col_dup(st, 10);
}

int tstore_op_add(tstore *s, tstore_op *op, silo_error *err)
{
	pthread_mutex_lock(&s->lock);
	int rc = -1;
	sqlite3_stmt *st = stmt(s, err, "SELECT seq, state FROM target_queue WHERE idem_key = ?1", "s", op->idem_key);
	if (!st)
		goto out;
	if (sqlite3_step(st) == SQLITE_ROW) {
		op->seq = sqlite3_column_int64(st, 0);
		col_str(st, 1, op->state, sizeof op->state);
		sqlite3_finalize(st);
		rc = 1;
		goto out;
	}
	sqlite3_finalize(st);
	op->created_ms = now_realtime_ms();
	snprintf(op->state, sizeof op->state, "pending");
	if (sqlite3_prepare_v2(s->db,
			       "INSERT INTO target_queue(target, method, path, ctype, body, idem_key, created_ms) "
			       "VALUES (?1,?2,?3,?4,?5,?6,?7)",
			       -1, &st, NULL) != SQLITE_OK) {
		db_fail(s, err, "prepare");
		goto out;
	}
	sqlite3_bind_text(st, 1, op->target, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, op->method, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, op->path, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, op->ctype, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, op->body ? op->body : "", (int)op->body_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, op->idem_key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, (sqlite3_int64)op->created_ms);
	if (done(s, st, "queue operation", err) == 0) {
		op->seq = sqlite3_last_insert_rowid(s->db);
		rc = 0;
	}
out:
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int tstore_op_next(tstore *s, const char *target, tstore_op *out, silo_error *err)
{
	pthread_mutex_lock(&s->lock);
	sqlite3_stmt *st = stmt(s, err,
				"SELECT " OP_COLS " FROM target_queue WHERE target = ?1 AND state IN ('pending', 'applying') "
				"ORDER BY seq LIMIT 1",
				"s", target);
	int rc = -1;
	if (st) {
		int r = sqlite3_step(st);
		if (r == SQLITE_ROW) {
			op_row(st, out);
			rc = 0;
		} else {
			rc = r == SQLITE_DONE ? 1 : db_fail(s, err, "next queued operation");
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int tstore_op_finish(tstore *s, int64_t seq, const char *state, const char *result, silo_error *err)
{
	pthread_mutex_lock(&s->lock);
	int rc = done(s,
		      stmt(s, err, "UPDATE target_queue SET state = ?2, result = ?3, done_ms = ?4 WHERE seq = ?1", "issi",
			   seq, state, result, (int64_t)now_realtime_ms()),
		      "finish queued operation", err);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int tstore_op_cancel(tstore *s, int64_t seq, silo_error *err)
{
	pthread_mutex_lock(&s->lock);
	int rc = done(s,
		      stmt(s, err,
			   "UPDATE target_queue SET state = 'cancelled', done_ms = ?2 WHERE seq = ?1 AND state = 'pending'",
			   "ii", seq, (int64_t)now_realtime_ms()),
		      "cancel queued operation", err);
	if (rc == 0 && sqlite3_changes(s->db) == 0) {
		sqlite3_stmt *st = stmt(s, err, "SELECT state FROM target_queue WHERE seq = ?1", "i", seq);
		if (st && sqlite3_step(st) == SQLITE_ROW)
			rc = silo_fail(err, SILO_ERR_CONFLICT, 0, "queued operation %lld is %s, not pending", (long long)seq,
				       (const char *)sqlite3_column_text(st, 0));
		else if (st)
			rc = silo_fail(err, SILO_ERR_NOT_FOUND, 0, "no queued operation %lld", (long long)seq);
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int tstore_op_list(tstore *s, const char *target, bool pending_only, tstore_op **out, size_t *n, silo_error *err)
{
	pthread_mutex_lock(&s->lock);
	int rc = collect(s,
			 stmt(s, err,
			      "SELECT " OP_COLS " FROM target_queue WHERE (?1 IS NULL OR target = ?1) AND "
			      "(?2 = 0 OR state IN ('pending', 'applying')) ORDER BY seq",
			      "si", target, (int64_t)pending_only),
			 sizeof **out, op_row, (void **)out, n, "list queued operations", err);
	pthread_mutex_unlock(&s->lock);
	return rc;
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
