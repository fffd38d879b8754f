/* SPDX-License-Identifier: Apache-2.0
 * SQLite plumbing shared by the registry, the deployment store and the target
 * store (all in registry.db). Internal to lib/registry.
 *   - One connection per store, serialized by the store's mutex: callers lock
 *     sqldb.lock around every statement; nothing here takes it but the
 *     *_locked forms (a store operation that is one statement alone).
 *   - Every failure goes through sqldb_fail(): "<label>: <what>: <sqlite text>",
 *     SILO_ERR_CONFLICT for a constraint violation, SILO_ERR_IO_ERROR otherwise.
 *   - A statement is prepared with its parameters bound in one call
 *     (sqldb_stmt); parameters are bound SQLITE_STATIC, so they must outlive
 *     the statement (a caller's arguments do). A NULL text binds SQL NULL.
 *   - sqldb_done/sqldb_one/sqldb_collect step and always finalize, and accept
 *     the NULL a failed sqldb_stmt returned (the error is already in err).
 *   - Transactions stay with the callers (sqldb_exec "BEGIN IMMEDIATE" ...).
 */
#ifndef SILO_REGISTRY_SQLDB_H
#define SILO_REGISTRY_SQLDB_H

#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

typedef struct sqldb {
	sqlite3 *db;
	pthread_mutex_t lock;
	const char *label; /* "registry", "deployment store", ... (static) */
} sqldb;

/* Open (or create) path, full-mutex, 5 s busy timeout, then run pragmas
 * (may be NULL). On failure everything is released and -1 returned. */
int sqldb_open(sqldb *d, const char *label, const char *path, const char *pragmas, silo_error *err);
void sqldb_close(sqldb *d);

/* Fill err from the connection's last error; returns -1. */
int sqldb_fail(sqldb *d, silo_error *err, const char *what);
/* sqlite3_exec one or more statements; err may be NULL (rollback paths). */
int sqldb_exec(sqldb *d, const char *sql, silo_error *err);

/* Bring a store's tables forward from the version kept in table `vtable`
 * (one row, created on demand) to n, in one transaction: migrations[i] goes
 * from version i to i+1. `kind` names the schema in messages ("deployment"). */
int sqldb_migrate_table(sqldb *d, const char *path, const char *vtable, const char *kind,
			const char *const *migrations, int n, silo_error *err);

/* A store's file: its label, pragmas (may be NULL) and schema (the version
 * table, the kind named in messages, migrations[0..n)). */
typedef struct sqldb_schema {
	const char *label;
	const char *pragmas;
	const char *vtable;
	const char *kind;
	const char *const *migrations;
	int n;
} sqldb_schema;
/* A store of size bytes whose first member is its sqldb: allocated, opened
 * (sqldb_open, then sqldb_migrate_table), or NULL with err set and nothing
 * left. sqldb_store_close closes and frees one (NULL: nothing). */
void *sqldb_store_open(size_t size, const sqldb_schema *s, const char *path, silo_error *err);
void sqldb_store_close(void *store);

typedef struct sqldb_arg {
	char type; /* 's' text (NULL = SQL NULL), 'i' int64, 'd' double, 'b' blob */
	const void *p;
	int64_t i;
	double d;
	int len;
} sqldb_arg;

#define SQ_TEXT(v) ((sqldb_arg){.type = 's', .p = (v)})
#define SQ_INT(v) ((sqldb_arg){.type = 'i', .i = (int64_t)(v)})
#define SQ_REAL(v) ((sqldb_arg){.type = 'd', .d = (v)})
#define SQ_BLOB(v, n) ((sqldb_arg){.type = 'b', .p = (v), .len = (int)(n)})

/* The parameters SQ_TEXT(a), SQ_INT(b), ... (maybe none) as "args, n". */
#define SQLDB_ARGS(...)                                                                                 \
	(const sqldb_arg[]){{0}, __VA_ARGS__} + 1, sizeof((const sqldb_arg[]){{0}, __VA_ARGS__}) / sizeof(sqldb_arg) - 1

sqlite3_stmt *sqldb_stmt_v(sqldb *d, silo_error *err, const char *what, const char *sql, const sqldb_arg *args,
			   size_t n);
/* sqldb_stmt(d, err, what, sql, SQ_TEXT(a), SQ_INT(b), ...): parameter k is ?k.
 * NULL (err filled, message naming `what`) if the statement does not prepare. */
#define sqldb_stmt(d, err, what, sql, ...) sqldb_stmt_v((d), (err), (what), (sql), SQLDB_ARGS(__VA_ARGS__))

/* Step a statement that returns no rows, finalize it. */
int sqldb_done(sqldb *d, sqlite3_stmt *st, const char *what, silo_error *err);
/* sqldb_done with the statement built in place. */
#define sqldb_run(d, err, what, sql, ...) sqldb_done((d), sqldb_stmt((d), (err), (what), (sql), __VA_ARGS__), (what), (err))

/* Step once: a row is handed to row() (may be NULL) and 0 returned; no row
 * returns 1 (err untouched); failure -1. Finalizes st. */
int sqldb_one(sqldb *d, sqlite3_stmt *st, void (*row)(sqlite3_stmt *, void *), void *out, const char *what,
	      silo_error *err);
/* Step st to the end, one element of elem bytes per row filled by row();
 * on failure the rows so far go to release(v, n) (NULL: free(v)) and *out is
 * NULL with *n 0. Finalizes st. */
int sqldb_collect(sqldb *d, sqlite3_stmt *st, size_t elem, void (*row)(sqlite3_stmt *, void *),
		  void (*release)(void *, size_t), void **out, size_t *n, const char *what, silo_error *err);

/* A row callback for sqldb_one: column 0 into the int64_t at out. */
void sqldb_row_int64(sqlite3_stmt *st, void *out);

/* A store operation that is one statement alone, under d->lock, the statement
 * built in place (parameters last, as sqldb_stmt): sqldb_run, sqldb_one and
 * sqldb_collect with `what` naming both the statement and the step. */
int sqldb_run_locked_v(sqldb *d, silo_error *err, const char *what, const char *sql, const sqldb_arg *args, size_t n);
#define sqldb_run_locked(d, err, what, sql, ...) sqldb_run_locked_v((d), (err), (what), (sql), SQLDB_ARGS(__VA_ARGS__))
int sqldb_one_locked_v(sqldb *d, silo_error *err, const char *what, void (*row)(sqlite3_stmt *, void *), void *out,
		       const char *sql, const sqldb_arg *args, size_t n);
#define sqldb_one_locked(d, err, what, row, out, sql, ...)                                               \
	sqldb_one_locked_v((d), (err), (what), (row), (out), (sql), SQLDB_ARGS(__VA_ARGS__))
int sqldb_collect_locked_v(sqldb *d, silo_error *err, const char *what, size_t elem,
			   void (*row)(sqlite3_stmt *, void *), void (*release)(void *, size_t), void **out, size_t *n,
			   const char *sql, const sqldb_arg *args, size_t nargs);
#define sqldb_collect_locked(d, err, what, elem, row, release, out, n, sql, ...)                         \
	sqldb_collect_locked_v((d), (err), (what), (elem), (row), (release), (out), (n), (sql), SQLDB_ARGS(__VA_ARGS__))

/* Column i as text into a fixed buffer ("" for NULL), or as an owned copy (NULL for NULL). */
void sqldb_col_str(sqlite3_stmt *st, int i, char *dst, size_t len);
char *sqldb_col_dup(sqlite3_stmt *st, int i);

#endif
