/* SPDX-License-Identifier: Apache-2.0
 * SQLite plumbing shared by the stores in registry.db (see sqldb.h).
 */
#include "registry/sqldb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

int sqldb_fail(sqldb *d, silo_error *err, const char *what)
{
	int ec = sqlite3_extended_errcode(d->db);
	return silo_fail(err, (ec & 0xff) == SQLITE_CONSTRAINT ? SILO_ERR_CONFLICT : SILO_ERR_IO_ERROR, 0,
			 "%s: %s: %s", d->label, what, sqlite3_errmsg(d->db));
}

int sqldb_exec(sqldb *d, const char *sql, silo_error *err)
{
	char *msg = NULL;
	if (sqlite3_exec(d->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		silo_fail(err, SILO_ERR_IO_ERROR, 0, "%s: %s", d->label, msg ? msg : "exec failed");
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

int sqldb_open(sqldb *d, const char *label, const char *path, const char *pragmas, silo_error *err)
{
	d->label = label;
	pthread_mutex_init(&d->lock, NULL);
	int rc = sqlite3_open_v2(path, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
				 NULL);
	if (rc != SQLITE_OK) {
		silo_fail(err, SILO_ERR_IO_ERROR, 0, "%s: open %s: %s", label, path,
			  d->db ? sqlite3_errmsg(d->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(d->db, 5000);
	if (pragmas && sqldb_exec(d, pragmas, err) < 0)
		goto fail;
	return 0;
fail:
	sqldb_close(d);
	return -1;
}

void sqldb_close(sqldb *d)
{
	sqlite3_close(d->db);
	d->db = NULL;
	pthread_mutex_destroy(&d->lock);
}

void *sqldb_store_open(size_t size, const sqldb_schema *s, const char *path, silo_error *err)
{
	sqldb *d = xcalloc(1, size);
	if (sqldb_open(d, s->label, path, s->pragmas, err) < 0) {
		free(d);
		return NULL;
	}
	if (sqldb_migrate_table(d, path, s->vtable, s->kind, s->migrations, s->n, err) < 0) {
		sqldb_store_close(d);
		return NULL;
	}
	return d;
}

void sqldb_store_close(void *store)
{
	if (!store)
		return;
	sqldb_close(store);
	free(store);
}

int sqldb_migrate_table(sqldb *d, const char *path, const char *vtable, const char *kind,
			const char *const *migrations, int n, silo_error *err)
{
	char sql[160];
	if (sqldb_exec(d, "BEGIN IMMEDIATE", err) < 0)
		return -1;
	snprintf(sql, sizeof sql, "CREATE TABLE IF NOT EXISTS %s (version INTEGER NOT NULL)", vtable);
	if (sqldb_exec(d, sql, err) < 0)
		goto fail;
	snprintf(sql, sizeof sql, "SELECT max(version) FROM %s", vtable);
	sqlite3_stmt *st = sqldb_stmt(d, err, "read schema version", sql);
	if (!st)
		goto fail;
	int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	sqlite3_finalize(st);
	if (v > n) {
		silo_fail(err, SILO_ERR_INVALID_CONFIG, 0, "%s: %s schema version %d is newer than this silo supports (%d)",
			  path, kind, v, n);
		goto fail;
	}
	for (; v < n; v++) {
		snprintf(sql, sizeof sql, "DELETE FROM %s; INSERT INTO %s VALUES (%d)", vtable, vtable, v + 1);
		if (sqldb_exec(d, migrations[v], err) < 0 || sqldb_exec(d, sql, err) < 0) {
			silo_error_prefix(err, "migrate %s to %s schema %d", path, kind, v + 1);
			goto fail;
		}
	}
	return sqldb_exec(d, "COMMIT", err);
fail:
	sqldb_exec(d, "ROLLBACK", NULL);
	return -1;
}

sqlite3_stmt *sqldb_stmt_v(sqldb *d, silo_error *err, const char *what, const char *sql, const sqldb_arg *args,
			   size_t n)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK) {
		sqldb_fail(d, err, what);
		sqlite3_finalize(st);
		return NULL;
	}
	for (size_t k = 0; k < n; k++) {
		const sqldb_arg *a = &args[k];
		int i = (int)k + 1;
		switch (a->type) {
		case 's':
			if (a->p)
				sqlite3_bind_text(st, i, a->p, -1, SQLITE_STATIC);
			else
				sqlite3_bind_null(st, i);
			break;
		case 'i':
			sqlite3_bind_int64(st, i, a->i);
			break;
		case 'd':
			sqlite3_bind_double(st, i, a->d);
			break;
		case 'b':
			sqlite3_bind_blob(st, i, a->p, a->len, SQLITE_STATIC);
			break;
		}
	}
	return st;
}

int sqldb_done(sqldb *d, sqlite3_stmt *st, const char *what, silo_error *err)
{
	if (!st)
		return -1;
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sqldb_fail(d, err, what);
	sqlite3_finalize(st);
	return rc;
}

int sqldb_run_locked_v(sqldb *d, silo_error *err, const char *what, const char *sql, const sqldb_arg *args, size_t n)
{
	pthread_mutex_lock(&d->lock);
	int rc = sqldb_done(d, sqldb_stmt_v(d, err, what, sql, args, n), what, err);
	pthread_mutex_unlock(&d->lock);
	return rc;
}

int sqldb_one_locked_v(sqldb *d, silo_error *err, const char *what, void (*row)(sqlite3_stmt *, void *), void *out,
		       const char *sql, const sqldb_arg *args, size_t n)
{
	pthread_mutex_lock(&d->lock);
	int rc = sqldb_one(d, sqldb_stmt_v(d, err, what, sql, args, n), row, out, what, err);
	pthread_mutex_unlock(&d->lock);
	return rc;
}

int sqldb_collect_locked_v(sqldb *d, silo_error *err, const char *what, size_t elem,
			   void (*row)(sqlite3_stmt *, void *), void (*release)(void *, size_t), void **out, size_t *n,
			   const char *sql, const sqldb_arg *args, size_t nargs)
{
	pthread_mutex_lock(&d->lock);
	int rc = sqldb_collect(d, sqldb_stmt_v(d, err, what, sql, args, nargs), elem, row, release, out, n, what, err);
	pthread_mutex_unlock(&d->lock);
	return rc;
}

int sqldb_one(sqldb *d, sqlite3_stmt *st, void (*row)(sqlite3_stmt *, void *), void *out, const char *what,
	      silo_error *err)
{
	if (!st)
		return -1;
	int r = sqlite3_step(st), rc;
	if (r == SQLITE_ROW) {
		if (row)
			row(st, out);
		rc = 0;
	} else {
		rc = r == SQLITE_DONE ? 1 : sqldb_fail(d, err, what);
	}
	sqlite3_finalize(st);
	return rc;
}

int sqldb_collect(sqldb *d, sqlite3_stmt *st, size_t elem, void (*row)(sqlite3_stmt *, void *),
		  void (*release)(void *, size_t), void **out, size_t *n, const char *what, silo_error *err)
{
	*out = NULL;
	*n = 0;
	if (!st)
		return -1;
	void *v = NULL;
	size_t cnt = 0, cap = 0;
	int r;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * elem);
		}
		row(st, (char *)v + cnt++ * elem);
	}
	int rc = 0;
	if (r != SQLITE_DONE) {
		rc = sqldb_fail(d, err, what);
		if (release)
			release(v, cnt);
		else
			free(v);
	} else {
		*out = v;
		*n = cnt;
	}
	sqlite3_finalize(st);
	return rc;
}

void sqldb_col_str(sqlite3_stmt *st, int i, char *dst, size_t len)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	snprintf(dst, len, "%s", s ? s : "");
}

char *sqldb_col_dup(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	return s ? xstrdup(s) : NULL;
}

void sqldb_row_int64(sqlite3_stmt *st, void *out)
{
	*(int64_t *)out = sqlite3_column_int64(st, 0);
}
